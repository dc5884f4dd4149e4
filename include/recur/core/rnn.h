// recur/core/rnn.h - a recurrent network: L stacked layers of D directions of any cell, run over a
// time-major batch of variable-length sequences, forward and backward through time.
//
// Structure follows PyTorch ATen's RNN.cpp: a cell is one step, a direction scans it over time,
// bidirectional and stacked networks are compositions. For each layer and direction the input
// projection for all T steps is one GEMM outside the time loop; inside the loop only the
// recurrent GEMM and fused element-wise gate code run, on buffers allocated before the loop.
//
// Variable lengths follow PyTorch's packed-sequence semantics without sorting: step t of
// sequence b is valid iff t < lengths[b]; outputs past a sequence's length are zero, its final
// state is the state after its last valid step, and the reverse direction starts at its own
// last valid step from the initial state.
//
// Two implementations run the same arithmetic (RnnBackend): the hand-written reference path
// (rnn.cpp, any cell, float and double, variable lengths) and, for float, Intel oneDNN's RNN
// primitives (rnn_onednn.cpp), chosen per call by ForwardOptions::backend.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "recur/core/cell.h"
#include "recur/core/random.h"
#include "recur/core/quantize.h"
#include "recur/core/tensor.h"

namespace recur {

struct RnnConfig {
  CellType cell = CellType::lstm;
  GruReset gru_reset = GruReset::after;  // GRU only
  int64_t input_size = 0;                // I
  int64_t hidden_size = 0;               // H
  int64_t proj_size = 0;                 // P, LSTM only; 0 = no projection
  int64_t num_layers = 1;                // L
  bool bidirectional = false;            // D = 2 if set
  bool peephole = false;                 // LSTM only
  bool bias = true;
  double dropout = 0.0;  // on the outputs of every layer but the last, in training only

  int64_t directions() const { return bidirectional ? 2 : 1; }              // D
  int64_t gates() const { return gate_count(cell); }                         // G
  int64_t state_size() const { return proj_size > 0 ? proj_size : hidden_size; }  // R
  int64_t output_size() const { return directions() * state_size(); }        // D * R
  int64_t layer_input_size(int64_t layer) const { return layer == 0 ? input_size : output_size(); }
  bool has_cell_state() const { return cell == CellType::lstm; }
  void validate() const;  // throws Error naming the offending field
};

// Parameters of one layer and direction, PyTorch's names and layouts.
template <typename T>
struct DirectionParams {
  Tensor<T> w_ih;    // weight_ih_l{k}: [G*H, I_layer]
  Tensor<T> w_hh;    // weight_hh_l{k}: [G*H, R]
  Tensor<T> b_ih;    // bias_ih_l{k}:   [G*H]   (empty if !bias)
  Tensor<T> b_hh;    // bias_hh_l{k}:   [G*H]   (empty if !bias)
  Tensor<T> w_hr;    // weight_hr_l{k}: [P, H]  (LSTM with projection only)
  Tensor<T> w_peep;  // weight_peep_l{k}: [3, H] rows (i, f, o) (peephole LSTM only; not in PyTorch)
};

// Index of layer l, direction d in the params/grads/state vectors: l * D + d (PyTorch's order).
template <typename T>
struct RnnParams {
  std::vector<DirectionParams<T>> dirs;  // [L * D]
};

// Same layout as RnnParams; a separate type so the two cannot be swapped by mistake.
template <typename T>
struct RnnGrads {
  std::vector<DirectionParams<T>> dirs;  // [L * D]
  void zero();
};

// Recurrent state between calls (initial state in, final state out).
template <typename T>
struct RnnState {
  Tensor<T> h;  // [L*D, B, R]
  Tensor<T> c;  // [L*D, B, H]  (LSTM only, else empty)
};

// What the reference path's forward keeps for backward, step by step. Reused across calls:
// buffers grow, never shrink. The oneDNN path keeps its own record in oneDNN's workspace and
// leaves these empty (RnnCache::backend says which path ran); rnn_step_record gives the
// record of either.
template <typename T>
struct DirectionCache {
  Tensor<T> gates;  // [T, B, G*H] post-activation gate values (RNN: h; GRU: r,z,n; LSTM: i,f,g,o)
  Tensor<T> h;      // [T+1, B, R] h[0] = initial state, h[t+1] = state after step t (held when invalid)
  Tensor<T> c;      // [T+1, B, H] LSTM cell states, c[0] = initial
  Tensor<T> aux;    // [T, B, H] GRU after: W_hn h + b_hn; GRU before: r * h; LSTMP: o * tanh(c) pre-projection
};

// Scratch memory reused across calls so the steady state allocates nothing: take() hands out
// consecutive pieces of one buffer that only ever grows.
template <typename T>
class Workspace {
 public:
  void reserve(size_t n) {
    if (buf_.size() < n) buf_.resize(n);
    used_ = 0;
  }
  T* take(size_t n) {  // n values, uninitialised; reserve() must have covered them
    T* p = buf_.data() + used_;
    used_ += n;
    return p;
  }

 private:
  std::vector<T> buf_;
  size_t used_ = 0;
};

// Which implementation runs rnn_forward and the rnn_backward that follows it.
enum class RnnBackend {
  // oneDNN where it supports the call (rnn_onednn_unsupported) and is expected to be faster:
  // batches of B >= 4 sequences of T >= 10 steps with G * H >= 384 (an LSTM of H >= 96);
  // smaller calls, such as sampling one step at a time, run faster on the reference path.
  automatic,
  reference,  // the hand-written scans of rnn.cpp: every configuration, float and double
  onednn,     // Intel oneDNN's RNN primitives; rnn_forward throws Error where they do not apply
};

namespace detail {
struct OnednnRnn;  // oneDNN primitives, memories and workspaces of one cache (rnn_onednn.cpp)
}

template <typename T>
struct RnnCache {
  RnnBackend backend = RnnBackend::reference;  // the path of the cached forward: reference or onednn
  bool bf16 = false;                          // the cached forward's products were bf16 (ForwardOptions::precision)
  int64_t steps = 0, batch = 0;               // T, B of the cached forward
  std::vector<int64_t> lengths;               // [B]
  std::vector<DirectionCache<T>> dirs;        // [L * D]
  std::vector<Tensor<T>> layer_outputs;       // [L-1] inputs of layers 1..L-1, after dropout: [T, B, D*R]
  std::vector<Tensor<T>> dropout_masks;       // [L-1] [T, B, D*R], 0 or 1/(1-p); empty when not training
  Workspace<T> work;                          // per-direction scratch of forward and backward
  Workspace<T> work_reverse;                  // the reverse direction's: the two run at once
  Tensor<T> grad_input_reverse;               // backward: [T, B, I] the reverse direction's part of dx
  Tensor<T> zero_state;                       // [B * max(R, H)] zeros when no initial state is given
  Tensor<T> grad_between[2];                  // backward: gradients w.r.t. inner layer outputs
  // The oneDNN path's primitives and workspaces, built on first use and kept per shape; a copy
  // of the cache shares them (and so its last forward) with the original.
  std::shared_ptr<detail::OnednnRnn> onednn;
};

struct ForwardOptions {
  bool training = false;  // enables dropout between layers
  Rng* rng = nullptr;     // required when training with dropout > 0
  // Which implementation runs; rnn_backward follows the forward's. Both compute the same
  // function (float results agree to rounding). Callers that read RnnCache::dirs directly
  // ask for `reference` (or use rnn_step_record).
  RnnBackend backend = RnnBackend::automatic;
  // bf16: mixed precision. The layer's matrix products take bfloat16 inputs, h and weights and
  // accumulate in float32 (oneDNN's bf16 RNN primitives); the weights given (float32 master
  // copies), c, the outputs handed back and every gradient stay float32. Where bf16 does not
  // apply (rnn_bf16_unsupported says why) the call runs in float32; RnnCache::bf16 tells which.
  Precision precision = Precision::f32;
};

// Whether this build has the oneDNN backend (CMake found oneDNN: Debian's libdnnl-dev).
bool rnn_onednn_available();
// "" if RnnBackend::onednn can run a forward of this configuration over `steps` steps with
// these lengths (as rnn_forward takes them), else why not:
// oneDNN needs T = float, a build with oneDNN, and every sequence of full length T (empty
// lengths or all equal to T); ragged batches run on the reference path.
template <typename T>
std::string rnn_onednn_unsupported(const RnnConfig& cfg, int64_t steps, const std::vector<int64_t>& lengths);
// "" if ForwardOptions::precision bf16 applies to a forward of this configuration, else why not
// (one line): it needs oneDNN (float, full-length sequences), a processor with AVX512-BF16
// (RECUR_ISA=avx2 simulates one without), and no peepholes or projection.
template <typename T>
std::string rnn_bf16_unsupported(const RnnConfig& cfg, int64_t steps, const std::vector<int64_t>& lengths);

// Allocates parameters with PyTorch's default init U(-1/sqrt(H), 1/sqrt(H)) (peepholes too).
template <typename T>
RnnParams<T> rnn_init_params(const RnnConfig& cfg, Rng& rng);
// Same as rnn_init_params, then uniform(-scale, scale) for every parameter (Zaremba et al.).
template <typename T>
RnnParams<T> rnn_init_params_uniform(const RnnConfig& cfg, Rng& rng, double scale);
// Sets every LSTM forget-gate bias to `value` (b_ih's f block; b_hh's f block to 0), as
// Keras' unit_forget_bias and Jozefowicz et al. 2015 recommend (value 1): the cell then keeps
// its memory from the start, which long dependencies need. No-op for other cells.
template <typename T>
void rnn_set_forget_bias(const RnnConfig& cfg, RnnParams<T>& params, double value);
template <typename T>
RnnGrads<T> rnn_zero_grads(const RnnConfig& cfg);
template <typename T>
RnnState<T> rnn_zero_state(const RnnConfig& cfg, int64_t batch);

// Throws ShapeError naming the tensor, expected and given shape.
template <typename T>
void rnn_check_params(const RnnConfig& cfg, const RnnParams<T>& params);

// PyTorch state_dict name of a parameter: kind is "weight_ih", "weight_hh", "bias_ih",
// "bias_hh", "weight_hr" or "weight_peep"; e.g. ("weight_ih", 1, 1) -> "weight_ih_l1_reverse".
std::string rnn_param_name(std::string_view kind, int64_t layer, int64_t direction);

// Visits every present parameter tensor as (state_dict name, tensor), in PyTorch's order.
// `dirs` is RnnParams::dirs or RnnGrads::dirs, const or not.
template <typename Dirs, typename F>
void rnn_for_each_param(const RnnConfig& cfg, Dirs& dirs, F&& f) {
  const int64_t D = cfg.directions();
  for (int64_t l = 0; l < cfg.num_layers; ++l)
    for (int64_t d = 0; d < D; ++d) {
      auto& p = dirs[size_t(l * D + d)];
      f(rnn_param_name("weight_ih", l, d), p.w_ih);
      f(rnn_param_name("weight_hh", l, d), p.w_hh);
      if (cfg.bias) {
        f(rnn_param_name("bias_ih", l, d), p.b_ih);
        f(rnn_param_name("bias_hh", l, d), p.b_hh);
      }
      if (cfg.proj_size > 0) f(rnn_param_name("weight_hr", l, d), p.w_hr);
      if (cfg.peephole) f(rnn_param_name("weight_peep", l, d), p.w_peep);
    }
}

// Forward over a batch.
//   input   [T, B, I]
//   lengths [B] with 1 <= lengths[b] <= T, or empty for all T
//   state0  initial state (h [L*D, B, R], c [L*D, B, H]); empty tensors mean zeros
//   output  [T, B, D*R] (resized)
//   state_n final state (resized)
template <typename T>
void rnn_forward(const RnnConfig& cfg, const RnnParams<T>& params, const Tensor<T>& input,
                 const std::vector<int64_t>& lengths, const RnnState<T>& state0, const ForwardOptions& opts,
                 Tensor<T>& output, RnnState<T>& state_n, RnnCache<T>& cache);

// The reference path's per-step record (gates, h, c, aux of every layer-direction, as
// DirectionCache documents) of the forward held in `cache`: cache.dirs itself when the
// reference path ran; for a oneDNN forward, recomputed into `scratch` by the reference scans
// from the cached layer inputs (after dropout) and initial states, equal to what the
// reference forward would have kept up to float rounding. For diagnostics, not for speed.
template <typename T>
const std::vector<DirectionCache<T>>& rnn_step_record(const RnnConfig& cfg, const RnnParams<T>& params,
                                                      const Tensor<T>& input, const RnnCache<T>& cache,
                                                      std::vector<DirectionCache<T>>& scratch);

// Backward through time of the last forward held in `cache` (whose scratch memory it uses).
//   grad_output  [T, B, D*R]                   dLoss/doutput (values past a length are ignored)
//   grad_state_n final-state gradients, same shapes as state_n; empty tensors mean zeros
//   grads        accumulated into (+=), so the caller zeroes them once per step
//   grad_input   [T, B, I] (resized, overwritten); pass nullptr to skip
//   grad_state0  initial-state gradients (resized, overwritten); nullptr to skip. Truncated BPTT
//                simply drops it: the carried state is a constant of the next chunk.
template <typename T>
void rnn_backward(const RnnConfig& cfg, const RnnParams<T>& params, const Tensor<T>& input,
                  RnnCache<T>& cache, const Tensor<T>& grad_output, const RnnState<T>& grad_state_n,
                  RnnGrads<T>& grads, std::type_identity_t<Tensor<T>>* grad_input,
                  std::type_identity_t<RnnState<T>>* grad_state0);

}  // namespace recur
