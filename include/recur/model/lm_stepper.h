// recur/model/lm_stepper.h - a language model stepped one token at a time for generation: the
// inference-only counterpart of lm_step.
//
// lm_step runs the training code path with T = 1 (caches, masks, loss); generation needs none of
// that, and at batch 1 every product is a matrix-vector product, so the fixed costs dominate.
// LmStepper prepares once what does not change while the parameters stay fixed:
//   - layer 0's input side per token, table[v] = W_ih e_v + b  [V, G*H], when it is small
//     (char-level vocabularies; one-hot input reads a column of W_ih instead),
//   - the biases folded as the reference path folds them,
// and then runs only the products and the element-wise cell kernels. Results equal lm_step's
// up to float rounding (tests/test_lm_stepper.cpp checks every cell variant).
//
// The stepper keeps a pointer to the parameters: build a new one after they change (it costs one
// [V, E] x [E, G*H] product at most).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "recur/model/lm.h"

namespace recur {

namespace detail {
template <typename T>
class RnnStackStep;
}  // namespace detail

template <typename T>
class LmStepper {
 public:
  // params: the graph of lm_model_spec(cfg) (lm.h); checks the parameters' shapes.
  LmStepper(const LmConfig& cfg, const ModelParams<T>& params);
  ~LmStepper();
  LmStepper(const LmStepper& o);
  LmStepper& operator=(const LmStepper& o);

  // ids [B] -> logits [B, V]; state: [L*D, B, R] (and c) advanced in place, zeros when empty.
  // Throws Error for an id outside [0, V) or a state of the wrong shape.
  void step(std::span<const int32_t> ids, RnnState<T>& state, Tensor<T>& logits);

  bool has_input_table() const;

 private:
  LmConfig cfg_;
  const Tensor<T>* decoder_w_ = nullptr;  // "decoder.weight" [V, D*R]
  const Tensor<T>* decoder_b_ = nullptr;  // "decoder.bias" [V]
  // The recurrent layers (src/model/step_kernels.h, shared with the graph's stepper, stepper.h).
  std::unique_ptr<detail::RnnStackStep<T>> rnn_;
};

}  // namespace recur
