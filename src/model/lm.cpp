// The language model as a layer graph: its spec, initialisation, loss and one step. See lm.h.
#include "recur/model/lm.h"

#include <algorithm>
#include <cmath>


namespace recur {

void LmConfig::validate() const {
  if (vocab_size < 1) throw Error("LmConfig: vocab_size must be positive, got " + std::to_string(vocab_size));
  if (embed_size < 0) throw Error("LmConfig: embed_size must be >= 0 (0 = one-hot), got " + std::to_string(embed_size));
  if (rnn.input_size != input_size())
    throw Error("LmConfig: rnn.input_size must equal " + std::string(embed_size > 0 ? "embed_size" : "vocab_size (one-hot)") +
                " = " + std::to_string(input_size()) + ", got " + std::to_string(rnn.input_size));
  if (!(dropout >= 0.0 && dropout < 1.0)) throw Error("LmConfig: dropout must be in [0, 1), got " + std::to_string(dropout));
  rnn.validate();
  if (tie_weights && embed_size == 0)
    throw Error("tied weights: the decoder would share the input embedding, but the input is one-hot (embed_size 0); "
                "expected an embedding size equal to the recurrent output " + std::to_string(rnn.output_size()));
  if (tie_weights && embed_size != rnn.output_size())
    throw Error("tied weights: the decoder's weight [V, " + std::to_string(rnn.output_size()) +
                "] is the embedding [V, E], so E must equal the recurrent output width " +
                std::to_string(rnn.output_size()) + " (hidden, or proj when set); got embedding size " +
                std::to_string(embed_size));
}

ModelSpec lm_model_spec(const LmConfig& cfg) {
  cfg.validate();
  ModelSpec s;
  std::string x = s.tokens("ids", cfg.vocab_size);
  x = cfg.embed_size > 0 ? s.embedding("encoder", x, cfg.embed_size) : s.onehot("onehot", x);
  // The dropout layers are there at p = 0 too, so the layer list (and ModelParams' layout) does
  // not depend on dropout, a training choice that a resumed run may change.
  x = s.dropout("drop_in", x, cfg.dropout);
  x = s.rnn("rnn", x, cfg.rnn);
  x = s.dropout("drop_out", x, cfg.dropout);
  s.linear("decoder", x, cfg.vocab_size, cfg.tie_weights ? "encoder" : "");
  s.validate();
  return s;
}

StepperOptions lm_stepper_options(Precision precision) {
  return {.tokens = "ids", .rnn = "rnn", .head = "decoder", .precision = precision};
}

ModelInitOptions lm_init_options(double init_scale) {
  if (init_scale < 0) throw Error("lm init_scale must be >= 0 (0 = word_language_model's scheme), got " + std::to_string(init_scale));
  if (init_scale > 0) return {.scheme = ModelInitOptions::Scheme::uniform, .scale = init_scale};
  return {.scheme = ModelInitOptions::Scheme::word_lm, .scale = 0.0};
}

template <typename T>
ModelParams<T> lm_init_params(const LmConfig& cfg, Rng& rng, double init_scale) {
  return model_init_params<T>(lm_model_spec(cfg), rng, lm_init_options(init_scale));
}

void lm_check_spec(const ModelSpec& spec) {
  if (spec.inputs.size() != 1 || spec.inputs[0].kind != InputKind::tokens || !spec.inputs[0].per_step)
    throw Error("language model graph: expected exactly one per-step tokens input");
  const int64_t r = spec.layer_index("rnn");
  if (r < 0 || spec.layers[size_t(r)].kind != LayerKind::rnn)
    throw Error("language model graph: expected an rnn layer named \"rnn\" (the state stream mode carries)");
  if (spec.layers.empty() || spec.width(spec.layers.back().name) != spec.inputs[0].size ||
      !spec.is_sequence(spec.layers.back().name))
    throw Error("language model graph: expected the last layer to give " + std::to_string(spec.inputs[0].size) +
                " logits per position (the vocabulary)");
}

template <typename T>
LossSum lm_forward_backward(const ModelSpec& spec, const ModelParams<T>& params, const LmBatch& batch, RnnState<T>& state,
                            const ModelForwardOptions& opts, ModelCache<T>& cache,
                            std::type_identity_t<ModelGrads<T>>* grads, double grad_scale,
                            const LayerDoneFn& layer_done) {
  lm_check_spec(spec);
  const int64_t Tn = batch.steps, B = batch.batch, V = spec.inputs[0].size;
  if (Tn < 1 || B < 1) throw ShapeError("lm batch: expected T, B >= 1, got T = " + std::to_string(Tn) + ", B = " + std::to_string(B));
  if (int64_t(batch.input.size()) != Tn * B || int64_t(batch.target.size()) != Tn * B)
    throw ShapeError("lm batch: expected " + std::to_string(Tn * B) + " input and target ids ([T, B]), got " +
                     std::to_string(batch.input.size()) + " and " + std::to_string(batch.target.size()));
  if (!batch.mask.empty() && int64_t(batch.mask.size()) != Tn * B)
    throw ShapeError("lm batch: expected mask of " + std::to_string(Tn * B) + " values ([T, B]), got " +
                     std::to_string(batch.mask.size()));
  const bool backward = grads != nullptr && grad_scale != 0.0;

  // Forward through the graph: ids [T, B] -> logits [T, B, V], the carried state as the rnn's
  // initial state (no gradient flows into it: truncated BPTT).
  ModelInput<T>& in = cache.inputs[spec.inputs[0].name];
  in.ids.assign(batch.input.begin(), batch.input.end());
  in.steps = Tn;
  in.batch = B;
  in.lengths = batch.lengths;
  const StateOverrides<T> carry{{"rnn", &state}};
  // The head's bias is added, and its gradient summed, inside the loss's pass over the logits.
  ModelForwardOptions fwd = opts;
  fwd.bias_to_loss = true;
  model_forward(spec, params, cache.inputs, fwd, cache, carry);
  state = model_rnn_state_n(spec, cache, "rnn");

  // Loss on [T*B, V]. A zero mask weight removes a position from the sum and the count alike
  // (padding never skews perplexity).
  // The gradient goes straight into the head's own slot, so backward does not copy [T, B, V].
  const std::string& head = spec.layers.back().name;
  Tensor<T>& logits = cache.layers.back().out.data;
  Tensor<T>* grad_logits = backward ? &model_grad_slot(spec, cache, head) : nullptr;
  logits.shape = {Tn * B, V};
  cache.loss_mask.assign(batch.mask.begin(), batch.mask.end());
  const std::span<const T> mask(cache.loss_mask);
  const size_t h = spec.layers.size() - 1;
  const LossBias<T> head_bias{.bias = &params.layers[h].bias, .grad = backward ? &grads->layers[h].bias : nullptr};
  const LossSum loss = cache.layers.back().bias_to_loss
                           ? softmax_cross_entropy_with_bias(logits, head_bias, batch.target, mask, grad_logits, grad_scale)
                           : softmax_cross_entropy(logits, batch.target, mask, grad_logits, grad_scale);
  logits.shape = {Tn, B, V};
  if (!backward) return loss;
  grad_logits->shape = {Tn, B, V};
  model_backward(spec, params, cache.inputs, cache, {{head, grad_logits}}, *grads, layer_done);
  return loss;
}

template <typename T>
void lm_step(const ModelSpec& spec, const ModelParams<T>& params, std::span<const int32_t> ids, RnnState<T>& state,
             ModelCache<T>& cache, Tensor<T>& logits) {
  const int64_t B = int64_t(ids.size());
  cache.targets.assign(ids.size(), -1);
  LmBatch batch{.input = ids, .target = cache.targets, .mask = {}, .lengths = {}, .steps = 1, .batch = B};
  lm_forward_backward<T>(spec, params, batch, state, {}, cache, nullptr, 0.0);
  logits = cache.layers.back().out.data;
  logits.shape = {B, spec.inputs[0].size};
}

#define RECUR_INSTANTIATE(T)                                                                                        \
  template ModelParams<T> lm_init_params<T>(const LmConfig&, Rng&, double);                                         \
  template LossSum lm_forward_backward<T>(const ModelSpec&, const ModelParams<T>&, const LmBatch&, RnnState<T>&,    \
                                          const ModelForwardOptions&, ModelCache<T>&, ModelGrads<T>*, double,       \
                                          const LayerDoneFn&);                                                      \
  template void lm_step<T>(const ModelSpec&, const ModelParams<T>&, std::span<const int32_t>, RnnState<T>&,         \
                           ModelCache<T>&, Tensor<T>&);
RECUR_INSTANTIATE(float)
RECUR_INSTANTIATE(double)
#undef RECUR_INSTANTIATE

}  // namespace recur
