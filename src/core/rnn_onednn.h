// Internal: the recurrent core's float path on Intel oneDNN's RNN primitives (rnn_onednn.cpp).
//
// rnn.cpp calls these per layer and direction, exactly where the reference path calls
// scan_forward / scan_backward, with the same buffers and the same meaning, so dropout between
// layers, bidirectional outputs and the state arguments are shared by both paths. Only
// full-length batches come here (onednn_unsupported): oneDNN's RNN primitives have no
// per-sequence lengths.
//
// Everything oneDNN needs between calls (primitive descriptors, primitives, memories in the
// primitives' own layouts, workspaces) lives in an OnednnRnn held by RnnCache::onednn, built
// once per shape and reused, so a training loop allocates nothing in the steady state.
// Unlike the reference path, the oneDNN path does not fill RnnCache::dirs: the per-step record
// stays in oneDNN's opaque workspace (see rnn_recompute_step_record in rnn.h).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "recur/core/rnn.h"

#ifdef RECUR_HAVE_ONEDNN
namespace dnnl {
struct engine;
struct stream;
}  // namespace dnnl
#endif

namespace recur::detail {

#ifdef RECUR_HAVE_ONEDNN
namespace onednn {
// The process's CPU engine, and the calling thread's stream (primitives run synchronously in
// it): every oneDNN call of recur's, the RNN primitives here and blas_bf16.cpp's matmul.
const dnnl::engine& cpu_engine();
const dnnl::stream& cpu_stream();
}  // namespace onednn
#endif

// Whether this build links oneDNN (CMake found the `dnnl` package: RECUR_HAVE_ONEDNN).
bool onednn_built();

// Why the oneDNN path cannot run a float forward of this configuration over `steps` steps
// with these lengths (as given to rnn_forward: empty = all T), or "" if it can.
std::string onednn_unsupported(const RnnConfig& cfg, int64_t steps, const std::vector<int64_t>& lengths);

// Whether oneDNN is expected to beat the reference path on a call of this shape, which is what
// RnnBackend::automatic asks besides support. oneDNN pays a fixed price per call (the weights
// are reordered into its layouts and back, every call, since they change every step) and per
// step and primitive, which small batches, short sequences and narrow layers do not amortise:
// sampling one step at B = 1 runs ~15x slower on it, batch-1 sequences ~1.3x, a tiny model ~5x
// (measured on the reference machine, an AMD Zen 4 core, oneDNN 2.6.3; bench/bench_rnn).
bool onednn_pays_off(const RnnConfig& cfg, int64_t steps, int64_t batch);

// One layer and direction, as rnn.cpp's Scan.
struct OnednnScan {
  const RnnConfig& cfg;
  const DirectionParams<float>& p;
  int64_t index;                  // l * D + d: which slot of OnednnRnn
  int64_t steps, batch, in_size;  // T, B, I_layer
  bool reverse;                   // d == 1
  bool training;                  // keep the workspace backward needs
  bool bf16 = false;              // products in bfloat16 (rnn_bf16_unsupported(cfg) == "")
};

// Forward of one direction (scan_forward's contract):
//   x   [T, B, I]               layer input (read again by onednn_backward: keep it unchanged)
//   h0  [B, R], c0 [B, H]       initial state (c0 ignored unless LSTM)
//   y   [T, B, ldy]             output, this direction's R columns start at y
//   hn  [B, R], cn [B, H]       final state
// `state` is created on first use; `slots` = L * D.
void onednn_forward(std::shared_ptr<OnednnRnn>& state, int64_t slots, const OnednnScan& s, const float* x,
                    const float* h0, const float* c0, float* y, int64_t ldy, float* hn, float* cn);

// Backward of the last onednn_forward of this direction (scan_backward's contract):
//   x    [T, B, I]              the forward's layer input
//   dy   [T, B, ldy]            gradient of this direction's output columns
//   dhn  [B, R], dcn [B, H]     gradient of the final state (nullptr = zero)
//   grad                        accumulated into (+=)
//   dx   [T, B, I]              accumulated (+=), nullptr to skip
//   dh0  [B, R], dc0 [B, H]     gradient of the initial state, overwritten (nullptr to skip)
// A forward run without `training` is run again here with a workspace first.
void onednn_backward(OnednnRnn& state, const OnednnScan& s, const float* x, const float* dy, int64_t ldy,
                     const float* dhn, const float* dcn, DirectionParams<float>& grad, float* dx, float* dh0,
                     float* dc0);

// The initial state the last forward of slot `index` started from: h0 [B, R], c0 [B, H]
// (c0 nullptr unless LSTM). For recomputing the reference path's per-step record.
// Creates the cache's state and its slots before the two directions of a layer run at once
// (onednn_forward would otherwise create them lazily from both threads).
void onednn_prepare(std::shared_ptr<OnednnRnn>& state, int64_t slots);

void onednn_initial_state(const OnednnRnn& state, int64_t index, const float** h0, const float** c0);

}  // namespace recur::detail
