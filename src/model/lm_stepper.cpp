// The generation stepper: see lm_stepper.h. The recurrent layers' step is step_kernels.h's,
// shared with the graph's stepper (stepper.h); what is left here is the language model's shape.
#include "recur/model/lm_stepper.h"

#include <algorithm>
#include <cstring>

#include <string>

#include "step_kernels.h"
#include "recur/core/error.h"

namespace recur {

template <typename T>
LmStepper<T>::LmStepper(const LmConfig& cfg, const ModelParams<T>& params) : cfg_(cfg) {
  // The graph's parameters, found by the LM graph's layer names (lm.h).
  const ModelSpec spec = lm_model_spec(cfg_);
  model_check_params(spec, params);
  const int64_t E = cfg_.embed_size;
  const Tensor<T>* encoder = E > 0 ? &params.layers[size_t(spec.layer_index("encoder"))].weight : nullptr;
  const LayerParams<T>& dec = params.layers[size_t(spec.layer_index("decoder"))];
  decoder_w_ = &dec.weight;
  decoder_b_ = &dec.bias;
  rnn_ = std::make_unique<detail::RnnStackStep<T>>(cfg_.rnn, params.layers[size_t(spec.layer_index("rnn"))].rnn,
                                                   E > 0 ? detail::StepInput::embedding : detail::StepInput::one_hot,
                                                   encoder, cfg_.vocab_size);
}

template <typename T>
LmStepper<T>::~LmStepper() = default;

template <typename T>
LmStepper<T>::LmStepper(const LmStepper& o)
    : cfg_(o.cfg_), decoder_w_(o.decoder_w_), decoder_b_(o.decoder_b_), rnn_(std::make_unique<detail::RnnStackStep<T>>(*o.rnn_)) {}

template <typename T>
LmStepper<T>& LmStepper<T>::operator=(const LmStepper& o) {
  if (this != &o) {
    cfg_ = o.cfg_;
    decoder_w_ = o.decoder_w_;
    decoder_b_ = o.decoder_b_;
    rnn_ = std::make_unique<detail::RnnStackStep<T>>(*o.rnn_);
  }
  return *this;
}

template <typename T>
bool LmStepper<T>::has_input_table() const {
  return rnn_->has_input_table();
}

template <typename T>
void LmStepper<T>::step(std::span<const int32_t> ids, RnnState<T>& state, Tensor<T>& logits) {
  const int64_t B = int64_t(ids.size()), V = cfg_.vocab_size, DR = cfg_.rnn.directions() * cfg_.rnn.state_size();
  if (B < 1) throw ShapeError("LmStepper::step: expected at least one id");
  for (int64_t b = 0; b < B; ++b)
    if (ids[size_t(b)] < 0 || ids[size_t(b)] >= V)
      throw Error("lm input: token id " + std::to_string(ids[size_t(b)]) + " at position " + std::to_string(b) +
                  " is outside the vocabulary [0, " + std::to_string(V) + ")");
  rnn_->step(ids, B, state);

  // Decoder: logits [B, V] = y W^T + b.
  logits.resize({B, V});
  for (int64_t b = 0; b < B; ++b) std::memcpy(logits.ptr() + b * V, decoder_b_->ptr(), size_t(V) * sizeof(T));
  detail::step_product(B, V, DR, rnn_->output(), decoder_w_->ptr(), T(1), logits.ptr(), V);
}

template class LmStepper<float>;
template class LmStepper<double>;

}  // namespace recur
