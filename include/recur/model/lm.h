// recur/model/lm.h - a recurrent language model: token ids -> embedding (or one-hot) -> dropout ->
// stacked recurrent network -> dropout -> linear decoder -> softmax cross-entropy, built as a
// model.h layer graph (lm_model_spec) and trained through the graph's forward and backward.
//
// The layout and the tensor names follow PyTorch's word_language_model example (encoder,
// rnn, decoder) and Zaremba et al. 2014: dropout sits on the non-recurrent connections only
// (embedding output, between layers via RnnConfig::dropout, last layer output).
//
// Shapes (glossary in tensor.h): ids and targets [T, B] time-major; embeddings [T, B, E];
// recurrent output [T, B, D*R]; logits [T, B, V] (the loss reads them as [T*B, V]).
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
#include "recur/model/model.h"
#include "recur/model/stepper.h"

namespace recur {

struct LmConfig {
  int64_t vocab_size = 0;  // V
  int64_t embed_size = 0;  // E; 0 = one-hot input (char-rnn style), then rnn.input_size = V
  RnnConfig rnn;           // rnn.input_size must be E (or V for one-hot)
  double dropout = 0.0;    // on the embedding output and on the last recurrent layer's output
  // The decoder's weight [V, R] is the encoder's matrix [V, E] (Press & Wolf 2017, Inan et al.
  // 2017): fewer parameters and a regulariser; needs an embedding with E = R (the last layer's
  // output width, rnn.output_size()). The decoder keeps its own bias.
  bool tie_weights = false;

  int64_t input_size() const { return embed_size > 0 ? embed_size : vocab_size; }
  void validate() const;  // throws Error naming the field
};

// Where an LM batch comes from: ids, targets and (lines mode) lengths and mask.
struct LmBatch {
  std::span<const int32_t> input;   // [T, B]
  std::span<const int32_t> target;  // [T, B]; -1 = ignored
  std::span<const float> mask;      // [T, B] or empty (all valid)
  std::vector<int64_t> lengths;     // [B] or empty (all T)
  int64_t steps = 0, batch = 0;     // T, B
};

// The language model as a model.h graph, layers in this order:
//   input   "ids"       tokens [T, B], vocabulary V
//   layer   "encoder"   embedding [V, E]      (embed_size > 0)   -> "encoder.weight"
//           "onehot"    one-hot rows [T,B,V]  (embed_size == 0)
//           "drop_in"   dropout p             (present at p = 0 too: the layout never changes)
//           "rnn"       the RnnConfig          -> "rnn.weight_ih_l0", ...
//           "drop_out"  dropout p
//           "decoder"   linear [V, D*R]       -> "decoder.weight", "decoder.bias"
//                       (tie_weights: tied to "encoder", so only "decoder.bias" is its own)
// so the parameter names are PyTorch word_language_model's and recur-lm v1's. The dropout
// layers draw their masks in the order v1's LM did (input, rnn's between-layer, output), so a
// seeded run draws the same masks.
ModelSpec lm_model_spec(const LmConfig& cfg);

// The LM's initialisation as model_init_params options. init_scale > 0: every parameter
// U(-s, s) (Zaremba et al.). init_scale == 0: PyTorch word_language_model's scheme: encoder and
// decoder U(-0.1, 0.1), decoder bias 0, recurrent layers PyTorch's default U(-1/sqrt(H), 1/sqrt(H)).
ModelInitOptions lm_init_options(double init_scale);
template <typename T>
ModelParams<T> lm_init_params(const LmConfig& cfg, Rng& rng, double init_scale = 0.0);

// Checks that a graph has the LM's interface: one per-step tokens input, an rnn layer "rnn"
// (its state is what stream mode carries) and a last layer of V outputs per position (the
// logits). Throws Error naming what is missing.
void lm_check_spec(const ModelSpec& spec);

// Forward and loss. state: the rnn layer's initial state in, final state out (zeros when empty
// tensors): stream mode's truncated-BPTT carry, a constant of the chunk. grad_scale != 0 also
// runs the backward pass and accumulates dLoss/dparam * grad_scale into grads (pass
// 1 / loss.count for a mean loss, 1 for a sum); the embedding's LayerGrads::rows lists the rows
// touched. Returns the summed loss and the number of target tokens that counted. The logits
// [T, B, V] stay in the cache: model_output(spec, cache, spec.layers.back().name).
template <typename T>
LossSum lm_forward_backward(const ModelSpec& spec, const ModelParams<T>& params, const LmBatch& batch, RnnState<T>& state,
                            const ModelForwardOptions& opts, ModelCache<T>& cache,
                            std::type_identity_t<ModelGrads<T>>* grads, double grad_scale,
                            const LayerDoneFn& layer_done = {});

// The stepped path of the LM graph for ModelStepper (stepper.h): tokens "ids", rnn "rnn", head
// "decoder". Sampling and music generation step an LM through it:
//   ModelStepper<float> s(lm_model_spec(cfg), params, lm_stepper_options());
//   StepperStart<float> st = s.start({}, B, cache);  // zero state
//   s.step(ids, st.state, st.context, logits);       // ids [B] -> logits [B, V]
// `precision`: the weights the steps multiply with (StepperOptions::precision).
StepperOptions lm_stepper_options(Precision precision = Precision::f32);

// One step through the training code path (T = 1): ids [B] -> logits [B, V], state advanced in
// place. The stepper's reference in tests; generation uses ModelStepper.
// Uses the same code path as training (T = 1), so the same model gives the same numbers.
template <typename T>
void lm_step(const ModelSpec& spec, const ModelParams<T>& params, std::span<const int32_t> ids, RnnState<T>& state,
             ModelCache<T>& cache, Tensor<T>& logits);

}  // namespace recur
