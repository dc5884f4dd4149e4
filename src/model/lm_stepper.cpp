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
LmStepper<T>::LmStepper(const LmConfig& cfg, const LmParams<T>& params) : cfg_(cfg), p_(&params) {
  lm_check_params(cfg_, params);
  const int64_t E = cfg_.embed_size;
  rnn_ = std::make_unique<detail::RnnStackStep<T>>(cfg_.rnn, params.rnn,
                                                   E > 0 ? detail::StepInput::embedding : detail::StepInput::one_hot,
                                                   E > 0 ? &params.encoder : nullptr, cfg_.vocab_size);
}

template <typename T>
LmStepper<T>::~LmStepper() = default;

template <typename T>
LmStepper<T>::LmStepper(const LmStepper& o)
    : cfg_(o.cfg_), p_(o.p_), rnn_(std::make_unique<detail::RnnStackStep<T>>(*o.rnn_)) {}

template <typename T>
LmStepper<T>& LmStepper<T>::operator=(const LmStepper& o) {
  if (this != &o) {
    cfg_ = o.cfg_;
    p_ = o.p_;
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
  const LmParams<T>& P = *p_;
  const int64_t B = int64_t(ids.size()), V = cfg_.vocab_size, DR = cfg_.rnn.directions() * cfg_.rnn.state_size();
  if (B < 1) throw ShapeError("LmStepper::step: expected at least one id");
  for (int64_t b = 0; b < B; ++b)
    if (ids[size_t(b)] < 0 || ids[size_t(b)] >= V)
      throw Error("lm input: token id " + std::to_string(ids[size_t(b)]) + " at position " + std::to_string(b) +
                  " is outside the vocabulary [0, " + std::to_string(V) + ")");
  rnn_->step(ids, B, state);

  // Decoder: logits [B, V] = y W^T + b.
  logits.resize({B, V});
  for (int64_t b = 0; b < B; ++b) std::memcpy(logits.ptr() + b * V, P.decoder_b.ptr(), size_t(V) * sizeof(T));
  detail::step_product(B, V, DR, rnn_->output(), P.decoder_w.ptr(), T(1), logits.ptr(), V);
}

template class LmStepper<float>;
template class LmStepper<double>;

}  // namespace recur
