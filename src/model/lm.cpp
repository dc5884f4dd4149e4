// The language model's forward and backward, side by side. See lm.h for the data flow.
#include "recur/model/lm.h"

#include <algorithm>
#include <cmath>

#include "recur/model/embedding.h"
#include "recur/model/linear.h"

namespace recur {

namespace {

// Inverted dropout: keeps each unit with probability 1-p and scales it by 1/(1-p).
template <typename T>
void apply_dropout(Tensor<T>& x, Tensor<T>& mask, double p, Rng& rng) {
  mask.resize(x.shape);
  const T keep_scale = T(1.0 / (1.0 - p));
  for (size_t i = 0; i < x.data.size(); ++i) {
    mask.data[i] = rng.uniform() < p ? T(0) : keep_scale;
    x.data[i] *= mask.data[i];
  }
}

template <typename T>
void multiply_in_place(Tensor<T>& x, const Tensor<T>& mask) {
  for (size_t i = 0; i < x.data.size(); ++i) x.data[i] *= mask.data[i];
}

}  // namespace

void LmConfig::validate() const {
  if (vocab_size < 1) throw Error("LmConfig: vocab_size must be positive, got " + std::to_string(vocab_size));
  if (embed_size < 0) throw Error("LmConfig: embed_size must be >= 0 (0 = one-hot), got " + std::to_string(embed_size));
  if (rnn.input_size != input_size())
    throw Error("LmConfig: rnn.input_size must equal " + std::string(embed_size > 0 ? "embed_size" : "vocab_size (one-hot)") +
                " = " + std::to_string(input_size()) + ", got " + std::to_string(rnn.input_size));
  if (!(dropout >= 0.0 && dropout < 1.0)) throw Error("LmConfig: dropout must be in [0, 1), got " + std::to_string(dropout));
  rnn.validate();
}

template <typename T>
void LmGrads<T>::zero() {
  encoder.zero();
  rnn.zero();
  decoder_w.zero();
  decoder_b.zero();
  encoder_rows.clear();
}

template <typename T>
LmGrads<T> lm_zero_grads(const LmConfig& cfg) {
  cfg.validate();
  LmGrads<T> g;
  if (cfg.embed_size > 0) g.encoder = Tensor<T>({cfg.vocab_size, cfg.embed_size});
  g.rnn = rnn_zero_grads<T>(cfg.rnn);
  g.decoder_w = Tensor<T>({cfg.vocab_size, cfg.rnn.output_size()});
  g.decoder_b = Tensor<T>({cfg.vocab_size});
  return g;
}

template <typename T>
LmParams<T> lm_init_params(const LmConfig& cfg, Rng& rng, double init_scale) {
  cfg.validate();
  LmParams<T> p;
  if (init_scale > 0) {
    p.rnn = rnn_init_params_uniform<T>(cfg.rnn, rng, init_scale);
  } else {
    p.rnn = rnn_init_params<T>(cfg.rnn, rng);
  }
  const double s = init_scale > 0 ? init_scale : 0.1;
  auto fill = [&](Tensor<T>& t) {
    for (auto& v : t.data) v = T(rng.uniform(-s, s));
  };
  if (cfg.embed_size > 0) {
    p.encoder = Tensor<T>({cfg.vocab_size, cfg.embed_size});
    fill(p.encoder);
  }
  p.decoder_w = Tensor<T>({cfg.vocab_size, cfg.rnn.output_size()});
  fill(p.decoder_w);
  p.decoder_b = Tensor<T>({cfg.vocab_size});
  if (init_scale > 0) fill(p.decoder_b);
  return p;
}

template <typename T>
void lm_check_params(const LmConfig& cfg, const LmParams<T>& params) {
  cfg.validate();
  if (cfg.embed_size > 0) check_shape("lm parameter encoder.weight", params.encoder.shape, {cfg.vocab_size, cfg.embed_size});
  rnn_check_params(cfg.rnn, params.rnn);
  check_shape("lm parameter decoder.weight", params.decoder_w.shape, {cfg.vocab_size, cfg.rnn.output_size()});
  check_shape("lm parameter decoder.bias", params.decoder_b.shape, {cfg.vocab_size});
}

template <typename T>
LossSum lm_forward_backward(const LmConfig& cfg, const LmParams<T>& params, const LmBatch& batch,
                            RnnState<T>& state, const LmForwardOptions& opts, LmCache<T>& cache,
                            std::type_identity_t<LmGrads<T>>* grads, double grad_scale) {
  const int64_t Tn = batch.steps, B = batch.batch, V = cfg.vocab_size, I = cfg.input_size();
  const int64_t DR = cfg.rnn.output_size();
  if (Tn < 1 || B < 1) throw ShapeError("lm batch: expected T, B >= 1, got T = " + std::to_string(Tn) + ", B = " + std::to_string(B));
  if (int64_t(batch.input.size()) != Tn * B || int64_t(batch.target.size()) != Tn * B)
    throw ShapeError("lm batch: expected " + std::to_string(Tn * B) + " input and target ids ([T, B]), got " +
                     std::to_string(batch.input.size()) + " and " + std::to_string(batch.target.size()));
  if (!batch.mask.empty() && int64_t(batch.mask.size()) != Tn * B)
    throw ShapeError("lm batch: expected mask of " + std::to_string(Tn * B) + " values ([T, B]), got " +
                     std::to_string(batch.mask.size()));
  const bool backward = grads != nullptr && grad_scale != 0.0;
  const double p_drop = opts.training ? cfg.dropout : 0.0;
  if ((p_drop > 0 || (opts.training && cfg.rnn.dropout > 0)) && !opts.rng)
    throw Error("lm_forward_backward: training with dropout needs LmForwardOptions::rng");

  // Encoder: [T, B] ids -> [T, B, I].
  cache.ids.assign(batch.input.begin(), batch.input.end());
  if (cfg.embed_size > 0) {
    embedding_forward(params.encoder, std::span<const int32_t>(cache.ids), cache.x);
    cache.x.shape = {Tn, B, I};
  } else {
    cache.x.resize({Tn, B, I});
    cache.x.zero();
    for (int64_t k = 0; k < Tn * B; ++k) {
      const int32_t id = cache.ids[size_t(k)];
      if (id < 0 || id >= V)
        throw Error("lm input: token id " + std::to_string(id) + " at position " + std::to_string(k) +
                    " is outside the vocabulary [0, " + std::to_string(V) + ")");
      cache.x.data[size_t(k * I + id)] = T(1);
    }
  }
  if (p_drop > 0) apply_dropout(cache.x, cache.x_mask, p_drop, *opts.rng);
  else cache.x_mask = Tensor<T>();

  // Recurrent layers: [T, B, I] -> [T, B, D*R].
  RnnState<T> state_n;
  rnn_forward(cfg.rnn, params.rnn, cache.x, batch.lengths, state, {.training = opts.training, .rng = opts.rng, .backend = opts.backend},
              cache.h, state_n, cache.rnn);
  state = std::move(state_n);
  if (p_drop > 0) apply_dropout(cache.h, cache.h_mask, p_drop, *opts.rng);
  else cache.h_mask = Tensor<T>();

  // Decoder and loss: [T, B, D*R] -> [T*B, V]. A zero mask weight removes a position from
  // the sum and the count alike (padding never skews perplexity).
  linear_forward(params.decoder_w, params.decoder_b, cache.h, cache.logits);
  cache.logits.shape = {Tn * B, V};
  cache.mask.assign(batch.mask.begin(), batch.mask.end());
  const LossSum loss = softmax_cross_entropy(cache.logits, batch.target, std::span<const T>(cache.mask),
                                             backward ? &cache.grad_logits : nullptr, grad_scale);
  if (!backward) return loss;

  // Backward, mirror order.
  cache.h.shape = {Tn * B, DR};
  cache.grad_h.resize({Tn * B, DR});
  linear_backward(params.decoder_w, cache.h, cache.grad_logits, grads->decoder_w, &grads->decoder_b, &cache.grad_h);
  cache.h.shape = {Tn, B, DR};
  cache.grad_h.shape = {Tn, B, DR};
  if (!cache.h_mask.empty()) multiply_in_place(cache.grad_h, cache.h_mask);
  const bool need_dx = cfg.embed_size > 0;
  rnn_backward(cfg.rnn, params.rnn, cache.x, cache.rnn, cache.grad_h, RnnState<T>(), grads->rnn,
               need_dx ? &cache.grad_x : nullptr, nullptr);
  if (need_dx) {
    if (!cache.x_mask.empty()) multiply_in_place(cache.grad_x, cache.x_mask);
    cache.grad_x.shape = {Tn * B, I};
    std::vector<int32_t> rows;
    embedding_backward(std::span<const int32_t>(cache.ids), cache.grad_x, grads->encoder, &rows);
    // Merge with rows touched by earlier accumulations into the same grads.
    std::vector<int32_t> merged;
    merged.reserve(rows.size() + grads->encoder_rows.size());
    std::set_union(rows.begin(), rows.end(), grads->encoder_rows.begin(), grads->encoder_rows.end(),
                   std::back_inserter(merged));
    grads->encoder_rows = std::move(merged);
  }
  return loss;
}

template <typename T>
void lm_step(const LmConfig& cfg, const LmParams<T>& params, std::span<const int32_t> ids, RnnState<T>& state,
             LmCache<T>& cache, Tensor<T>& logits) {
  const int64_t B = int64_t(ids.size());
  cache.step_targets.assign(ids.size(), -1);
  LmBatch batch{.input = ids, .target = cache.step_targets, .mask = {}, .lengths = {}, .steps = 1, .batch = B};
  lm_forward_backward<T>(cfg, params, batch, state, {}, cache, nullptr, 0.0);
  logits = cache.logits;
}

#define RECUR_INSTANTIATE(T)                                                                                   \
  template struct LmGrads<T>;                                                                                  \
  template LmGrads<T> lm_zero_grads<T>(const LmConfig&);                                                       \
  template LmParams<T> lm_init_params<T>(const LmConfig&, Rng&, double);                                       \
  template void lm_check_params<T>(const LmConfig&, const LmParams<T>&);                                       \
  template LossSum lm_forward_backward<T>(const LmConfig&, const LmParams<T>&, const LmBatch&, RnnState<T>&,   \
                                          const LmForwardOptions&, LmCache<T>&, LmGrads<T>*, double);          \
  template void lm_step<T>(const LmConfig&, const LmParams<T>&, std::span<const int32_t>, RnnState<T>&,        \
                           LmCache<T>&, Tensor<T>&);
RECUR_INSTANTIATE(float)
RECUR_INSTANTIATE(double)
#undef RECUR_INSTANTIATE

}  // namespace recur
