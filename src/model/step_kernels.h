// src/model/step_kernels.h - one inference step of a stack of recurrent layers: the inner part of
// the graph stepper (stepper.h), which every inference path uses. Private to the library.
//
// Per layer and direction one step is
//   g [B, G*H] = input side (table row, W_ih column, or x W_ih^T) + folded biases
//   recurrent product(s) with W_hh, then the cell's element-wise kernel (cell_kernels.h),
// exactly the reference path's scan_forward (rnn.cpp) for T = 1 without its caches: the same
// products in the same order, so at batch > 1 the numbers are the training path's bits.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "recur/core/quantize.h"
#include "recur/core/rnn.h"
#include "recur/core/tensor.h"

namespace recur::detail {

// y[B, N] = beta * y + x[B, K] W[N, K]^T, rows of y ldy apart. At B = 1 the rows of W are split
// among the threads once W is large enough to pay for the fork; each output is one dot product
// either way, so the result does not depend on the thread count.
template <typename T>
void step_product(int64_t B, int64_t N, int64_t K, const T* x, const T* W, T beta, T* y, int64_t ldy);

// A weight matrix W [N, K] of a step's products, in float or compressed (quantize.h).
template <typename T>
struct StepMatrix {
  const T* w = nullptr;             // [N, K] the float weights (the parameters themselves)
  int64_t rows = 0, cols = 0;       // N, K
  std::vector<QuantizedMatrix> q;   // its compressed copy (one, or none for f32)
  // f32 on AVX-512: a copy of W in panels of 16 rows, column by column ([ceil(N/16), K, 16],
  // zero-padded), starting packed_off floats in (64-byte aligned), read by batch-1 products;
  // empty otherwise.
  std::vector<T> packed;
  size_t packed_off = 0;

  // precision f32 keeps W; bf16 and int8 (T = float only, Error otherwise) compress it.
  StepMatrix(const T* w, int64_t N, int64_t K, Precision p);
  StepMatrix() = default;
  // y[B, n] = beta * y + x[B, K] W[row0 .. row0 + n, K]^T, rows of y ldy apart.
  void product(int64_t B, int64_t row0, int64_t n, const T* x, T beta, T* y, int64_t ldy) const;
};

// How layer 0 reads its input in RnnStackStep::step.
enum class StepInput {
  embedding,  // ids through the embedding [V, E] (per-token table when small)
  one_hot,    // ids as one-hot vectors: column ids[b] of W_ih [G*H, V]
  rows,       // the caller has written the input rows [B, I] into input(B)
};

// The recurrent layers of a model stepped one token at a time. Keeps pointers to the parameters
// (and the embedding): build a new one after they change.
template <typename T>
class RnnStackStep {
 public:
  // embedding: [V, E] for StepInput::embedding, else null; V: the vocabulary for one_hot /
  // embedding ids. Layer 0's input side per token, table[v] = W_ih e_v + b [V, G*H], is built
  // for a unidirectional embedding input when it stays small (a char-level model's).
  // precision: how the products' weights are stored (quantize.h); the embedding, the per-token
  // table, biases and peepholes stay in T.
  RnnStackStep(const RnnConfig& cfg, const RnnParams<T>& params, StepInput input, const Tensor<T>* embedding,
               int64_t vocab, Precision precision = Precision::f32);

  // Layer 0's input rows [B, I] for StepInput::rows, to be filled before step().
  T* input(int64_t B);
  // ids [B] (ignored for rows, already checked against V by the caller) -> output() [B, D*R];
  // state h [L*D, B, R] (and c [L*D, B, H]) advanced in place, zeros when empty.
  void step(std::span<const int32_t> ids, int64_t B, RnnState<T>& state);
  const T* output() const { return x_.ptr(); }  // [B, D*R] the last layer's output

  bool has_input_table() const { return !table_.empty(); }

 private:
  RnnConfig cfg_;
  const RnnParams<T>* p_;
  StepInput input_;
  const Tensor<T>* emb_;
  int64_t V_;
  std::vector<StepMatrix<T>> w_ih_, w_hh_, w_hr_;  // [L*D] W_ih [G*H, I], W_hh [G*H, R], W_hr [P, H]
  Tensor<T> table_;               // [V, G*H] layer 0 input side per token (biases included), or empty
  std::vector<Tensor<T>> bias_;   // [L*D] [G*H] b_ih + b_hh, except GRU-after's b_hn (inside the reset)
  Tensor<T> zeros_;               // [3*H] stand-in for absent peepholes and biases
  // scratch, [B, ...]
  Tensor<T> x_, y_;               // layer input [B, I_layer] and output [B, D*R]
  Tensor<T> g_, hp_;              // [B, G*H] gate pre-activations and recurrent products
  Tensor<T> h_til_, c_next_, rh_; // [B, H]
};

}  // namespace recur::detail
