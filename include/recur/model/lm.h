// recur/model/lm.h - a recurrent language model: token ids -> embedding (or one-hot) -> dropout ->
// stacked recurrent network -> dropout -> linear decoder -> softmax cross-entropy.
//
// The layout and the tensor names follow PyTorch's word_language_model example (encoder,
// rnn, decoder) and Zaremba et al. 2014: dropout sits on the non-recurrent connections only
// (embedding output, between layers via RnnConfig::dropout, last layer output).
//
// Shapes (glossary in tensor.h): ids and targets [T, B] time-major; embeddings [T, B, E];
// recurrent output [T, B, D*R]; logits [T*B, V].
#pragma once

#include <cstdint>
#include <span>
#include <type_traits>
#include <string>
#include <vector>

#include "recur/core/loss.h"
#include "recur/core/random.h"
#include "recur/core/rnn.h"
#include "recur/core/tensor.h"

namespace recur {

struct LmConfig {
  int64_t vocab_size = 0;  // V
  int64_t embed_size = 0;  // E; 0 = one-hot input (char-rnn style), then rnn.input_size = V
  RnnConfig rnn;           // rnn.input_size must be E (or V for one-hot)
  double dropout = 0.0;    // on the embedding output and on the last recurrent layer's output

  int64_t input_size() const { return embed_size > 0 ? embed_size : vocab_size; }
  void validate() const;  // throws Error naming the field
};

template <typename T>
struct LmParams {
  Tensor<T> encoder;    // "encoder.weight" [V, E]; empty for one-hot input
  RnnParams<T> rnn;     // "rnn.<PyTorch name>"
  Tensor<T> decoder_w;  // "decoder.weight" [V, D*R]
  Tensor<T> decoder_b;  // "decoder.bias"   [V]
};

// Same layout as LmParams. The encoder gradient is dense storage, but only the rows in
// encoder_rows (sorted, distinct) are nonzero after a backward pass: sparse row gradients.
template <typename T>
struct LmGrads {
  Tensor<T> encoder;
  RnnGrads<T> rnn;
  Tensor<T> decoder_w;
  Tensor<T> decoder_b;
  std::vector<int32_t> encoder_rows;
  void zero();
};

template <typename T>
struct LmCache {
  Tensor<T> x;             // [T, B, I] recurrent input after dropout (embeddings or one-hot)
  Tensor<T> x_mask;        // [T, B, I] dropout mask of the embeddings, empty when not training
  Tensor<T> h;             // [T, B, D*R] recurrent output after dropout
  Tensor<T> h_mask;        // [T, B, D*R] dropout mask, empty when not training
  Tensor<T> logits;        // [T*B, V] softmax inputs of the last forward (scoring, sampling)
  Tensor<T> grad_logits;   // [T*B, V]
  RnnCache<T> rnn;
  std::vector<T> mask;       // [T*B] loss weights of the last batch (empty = all ones)
  std::vector<int32_t> ids;  // [T*B] copy of the input ids for the embedding backward
  Tensor<T> grad_h, grad_x;  // backward scratch
  std::vector<int32_t> step_targets;  // [B] all -1: lm_step's "no target" row, kept so a step allocates nothing
};

// Where an LM batch comes from: ids, targets and (lines mode) lengths and mask.
struct LmBatch {
  std::span<const int32_t> input;   // [T, B]
  std::span<const int32_t> target;  // [T, B]; -1 = ignored
  std::span<const float> mask;      // [T, B] or empty (all valid)
  std::vector<int64_t> lengths;     // [B] or empty (all T)
  int64_t steps = 0, batch = 0;     // T, B
};

// Initialisation. init_scale > 0: every parameter U(-s, s) (Zaremba et al.). init_scale == 0:
// PyTorch word_language_model's scheme: encoder and decoder U(-0.1, 0.1), decoder bias 0,
// recurrent layers PyTorch's default U(-1/sqrt(H), 1/sqrt(H)).
template <typename T>
LmParams<T> lm_init_params(const LmConfig& cfg, Rng& rng, double init_scale = 0.0);
template <typename T>
LmGrads<T> lm_zero_grads(const LmConfig& cfg);
template <typename T>
void lm_check_params(const LmConfig& cfg, const LmParams<T>& params);

// Visits every parameter as (checkpoint name, tensor): "encoder.weight", "rnn.weight_ih_l0",
// ..., "decoder.weight", "decoder.bias". Works for LmParams and LmGrads, const or not.
template <typename P, typename F>
void lm_for_each_param(const LmConfig& cfg, P& p, F&& f) {
  if (cfg.embed_size > 0) f(std::string("encoder.weight"), p.encoder);
  rnn_for_each_param(cfg.rnn, p.rnn.dirs, [&](const std::string& name, auto& t) { f("rnn." + name, t); });
  f(std::string("decoder.weight"), p.decoder_w);
  f(std::string("decoder.bias"), p.decoder_b);
}

struct LmForwardOptions {
  bool training = false;  // dropout on
  Rng* rng = nullptr;     // dropout masks; required when training with dropout
  // The recurrent layers' implementation (rnn.h); callers that read cache.rnn.dirs ask for
  // RnnBackend::reference, whose forward keeps the per-step record there.
  RnnBackend backend = RnnBackend::automatic;
};

// Forward and loss. state: initial state in, final state out (zeros when empty tensors).
// grad_scale != 0 also runs the backward pass and accumulates dLoss/dparam * grad_scale into
// grads (pass 1 / loss.count for a mean loss, 1 for a sum). Returns the summed loss and the
// number of target tokens that counted.
template <typename T>
LossSum lm_forward_backward(const LmConfig& cfg, const LmParams<T>& params, const LmBatch& batch,
                            RnnState<T>& state, const LmForwardOptions& opts, LmCache<T>& cache,
                            std::type_identity_t<LmGrads<T>>* grads, double grad_scale);

// One step for generation and scoring: ids [B] -> logits [B, V], state advanced in place.
// Uses the same code path as training (T = 1), so the same model gives the same numbers.
template <typename T>
void lm_step(const LmConfig& cfg, const LmParams<T>& params, std::span<const int32_t> ids, RnnState<T>& state,
             LmCache<T>& cache, Tensor<T>& logits);

}  // namespace recur
