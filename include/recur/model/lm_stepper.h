// recur/model/lm_stepper.h - a language model stepped one token at a time for generation: the
// inference-only counterpart of lm_step. It reads the LM graph's parameters (lm.h) by layer name.
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
#include <span>
#include <vector>

#include "recur/model/lm.h"

namespace recur {

template <typename T>
class LmStepper {
 public:
  // params: the graph of lm_model_spec(cfg) (lm.h); checks the parameters' shapes.
  LmStepper(const LmConfig& cfg, const ModelParams<T>& params);

  // ids [B] -> logits [B, V]; state: [L*D, B, R] (and c) advanced in place, zeros when empty.
  // Throws Error for an id outside [0, V) or a state of the wrong shape.
  void step(std::span<const int32_t> ids, RnnState<T>& state, Tensor<T>& logits);

  bool has_input_table() const { return !table_.empty(); }

 private:
  LmConfig cfg_;
  const Tensor<T>* encoder_ = nullptr;  // "encoder.weight" [V, E]; null for one-hot input
  const RnnParams<T>* rnn_ = nullptr;
  const Tensor<T>* decoder_w_ = nullptr;  // [V, D*R]
  const Tensor<T>* decoder_b_ = nullptr;  // [V]
  Tensor<T> table_;               // [V, G*H] layer 0 input side per token (biases included), or empty
  std::vector<Tensor<T>> bias_;   // [L*D] [G*H] b_ih + b_hh, except GRU-after's b_hn (inside the reset)
  Tensor<T> zeros_;               // [3*H] stand-in for absent peepholes and biases
  // scratch, [B, ...]
  Tensor<T> x_, y_;               // layer input [B, I_layer] and output [B, D*R]
  Tensor<T> g_, hp_;              // [B, G*H] gate pre-activations and recurrent products
  Tensor<T> h_til_, c_next_, rh_; // [B, H]
};

}  // namespace recur
