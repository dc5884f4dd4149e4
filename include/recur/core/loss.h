// recur/core/loss.h - losses over logits, returned as (sum, count) with their gradients, and the
// softmax row helpers used by sampling and scoring.
//
// Shapes use the glossary in tensor.h: N scored positions (N = T*B for a time-major batch),
// V vocabulary / classes. Logits may be [N, V] or any [..., V] (e.g. [T, B, V] straight from
// linear_forward); leading dimensions are flattened into N.
//
// Losses are returned as a sum and a count of the positions that contributed (as Marian
// does) rather than a mean: summing over batches and dividing once gives the exact
// per-token loss and perplexity however much padding each batch had. The gradient is scaled
// by grad_scale, so pass 1 / count for the mean loss's gradient, 1 for the sum's.
//
// Masks are per-position weights, normally 0 (padding) or 1. A position with weight 0
// contributes nothing to the sum, the count or the gradient; any other weight w scales its
// loss and gradient by w and counts once.
#pragma once

#include <cstdint>
#include <span>
#include <type_traits>

#include "recur/core/tensor.h"

namespace recur {

struct LossSum {
  double sum = 0;     // sum of mask-weighted per-position losses
  int64_t count = 0;  // positions that contributed

  double mean() const { return count > 0 ? sum / double(count) : 0.0; }  // 0 for an empty batch
  LossSum& operator+=(const LossSum& o) {
    sum += o.sum;
    count += o.count;
    return *this;
  }
};

// Parameter types that name T without taking part in deduction (T comes from the logits), so
// a std::vector<T>, a span or {} can be passed for a mask or target list, nullptr for a gradient.
template <typename T>
using ValuesOf = std::type_identity_t<std::span<const T>>;
template <typename T>
using GradOut = std::type_identity_t<Tensor<T>>*;

// Softmax cross-entropy: loss_i = logsumexp(logits[i, :]) - logits[i, targets[i]].
//   logits [..., V]; targets [N], each in [0, V) or -1 (ignored, like PyTorch's ignore_index);
//   mask [N] or empty (all ones); grad_logits resized to logits' shape and overwritten with
//   grad_scale * mask_i * (softmax(logits[i, :]) - onehot(targets[i])), zero rows for ignored
//   positions; nullptr for loss only.
// Log-sum-exp subtracts the row max and accumulates in double, also for float logits.
// Throws ShapeError on sizes, Error naming the position of a target outside [0, V) other than -1.
template <typename T>
LossSum softmax_cross_entropy(const Tensor<T>& logits, std::span<const int32_t> targets, ValuesOf<T> mask,
                              GradOut<T> grad_logits, double grad_scale);

// The output layer's bias taken into the loss: a fused output layer and loss. The layer's
// product wrote x W^T alone (a model forward with ModelForwardOptions::bias_to_loss); the loss
// adds the bias to each row as it first reads it and sums the gradient's columns while it
// scales them, so the [N, V] logits (7M values for a 10,000-word PTB head) are passed over
// once, not three times (the bias written, the product reading it back, the column sums).
template <typename T>
struct LossBias {
  const Tensor<T>* bias = nullptr;  // [V], required
  Tensor<T>* grad = nullptr;        // [V], accumulated: += column sums of grad_logits; nullptr to skip
};

// softmax_cross_entropy of logits + bias (the bias broadcast over rows), with the logits
// updated in place to logits + bias, every row (ignored ones too), so they are the layer's usual
// output afterwards. The bias gradient is summed in fixed blocks of rows added in order: the
// same bits at any thread count (not necessarily the bits of a plain row-by-row sum).
// Throws as softmax_cross_entropy, and ShapeError when bias or its gradient is not [V].
template <typename T>
LossSum softmax_cross_entropy_with_bias(Tensor<T>& logits, const LossBias<T>& bias, std::span<const int32_t> targets,
                                        ValuesOf<T> mask, GradOut<T> grad_logits, double grad_scale);

// Sigmoid binary cross-entropy on logits (PyTorch's BCEWithLogitsLoss), element-wise:
//   loss_i = max(x, 0) - x*y + log1p(exp(-|x|)), which never overflows.
//   logits any shape, N = its element count ([N], [T, B] or [B, C] multi-label alike);
//   targets [N] in [0, 1] (soft labels allowed); mask [N] or empty; grad_logits resized to
//   logits' shape and overwritten with grad_scale * mask_i * (sigmoid(x_i) - y_i), or nullptr.
// Throws ShapeError on sizes, Error naming the position of a target outside [0, 1].
template <typename T>
LossSum sigmoid_binary_cross_entropy(const Tensor<T>& logits, ValuesOf<T> targets, ValuesOf<T> mask,
                                     GradOut<T> grad_logits, double grad_scale);

// Row helpers. One row: in [V], out [V]; out may alias in. Throws ShapeError if sizes differ.
// Name T when passing containers or mixed spans: softmax<float>(vec_in, vec_out).
template <typename T>
void softmax(std::span<const T> in, std::span<T> out);
template <typename T>
void log_softmax(std::span<const T> in, std::span<T> out);

// Every row of logits [..., V]; out resized to logits' shape (out may be logits itself).
template <typename T>
void softmax(const Tensor<T>& logits, Tensor<T>& out);
template <typename T>
void log_softmax(const Tensor<T>& logits, Tensor<T>& out);

}  // namespace recur
