// recur/model/linear.h - fully connected layer y = x W^T + b (PyTorch nn.Linear's layout), forward
// and backward, each a single GEMM over all rows.
//
// Shapes use the glossary in tensor.h: F input features, C output features, N rows. x may be
// [N, F] or any [..., F]; its leading dimensions are flattened into N, so a whole time-major
// sequence [T, B, F] (N = T*B) and a final state [B, F] (N = B) go through the same call.
#pragma once

#include <cstdint>
#include <type_traits>
#include <vector>

#include "recur/core/quantize.h"
#include "recur/core/tensor.h"

namespace recur {

// The bfloat16 copies of x and W that a bf16 forward rounded, kept for its backward, which then
// rounds only dy (a PTB output layer's W is 2M values, which were rounded twice per step).
// Both empty when the forward multiplied in float32.
struct LinearBf16Cache {
  std::vector<uint16_t> x;  // [N, F] bfloat16 bits
  std::vector<uint16_t> w;  // [C, F] bfloat16 bits
};

struct LinearOptions {
  // bf16 (recur train --precision bf16): x, W and dy are rounded to bfloat16 for the products,
  // which accumulate in float32 (oneDNN's AVX512-BF16 matmul); y and every gradient stay float32.
  // Products too small to pay for the rounding, a double layer, and a build or processor without
  // the kernels (blas.h gemm_bf16) multiply in float32.
  Precision precision = Precision::f32;
  // bf16 only, optional: forward writes its rounded x and W here (or empties it), and backward
  // uses them instead of rounding again. The caller promises that backward gets the same x and
  // weight as the forward that filled it (a model's layer cache between one forward and its
  // backward); sizes that do not match are rounded afresh.
  LinearBf16Cache* bf16_cache = nullptr;
};

// y = x W^T + b.
//   weight [C, F]; bias [C] or empty (no bias); x [..., F]; y resized to [..., C], overwritten.
template <typename T>
void linear_forward(const Tensor<T>& weight, const Tensor<T>& bias, const Tensor<T>& x, Tensor<T>& y,
                    const LinearOptions& opts = {});

// Gradients of linear_forward given dy = dL/dy:
//   grad_weight += dy^T x        grad_weight [C, F], accumulated
//   grad_bias   += colsum(dy)    grad_bias [C], accumulated; nullptr when there is no bias
//   grad_x       = dy W          grad_x resized to x's shape and overwritten; nullptr to skip
//                                (e.g. the first layer, whose input is data)
//   weight [C, F]; x [..., F] as given to forward; dy [..., C] with x's leading dimensions.
// Weight and bias gradients accumulate so several steps or calls can share one buffer;
// grad_x is overwritten because it is a fresh value flowing back, not a parameter gradient.
// The optional outputs take no part in deducing T, so nullptr can be passed for them.
template <typename T>
void linear_backward(const Tensor<T>& weight, const Tensor<T>& x, const Tensor<T>& dy, Tensor<T>& grad_weight,
                     std::type_identity_t<Tensor<T>>* grad_bias, std::type_identity_t<Tensor<T>>* grad_x,
                     const LinearOptions& opts = {});

}  // namespace recur
