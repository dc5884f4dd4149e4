// recur/model/embedding.h - token embedding lookup and its sparse gradient.
//
// Shapes use the glossary in tensor.h: V vocabulary, E embedding width, N looked-up ids
// (N = T*B for a time-major batch: id (t, b) at t*B + b, so out reshaped to [T, B, E] is the
// embedded sequence with no copy).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "recur/core/tensor.h"

namespace recur {

// out[i, :] = weight[ids[i], :].
//   weight [V, E]; ids [N]; out resized to [N, E] and overwritten.
// Throws ShapeError if weight is not rank 2, Error naming the position and value of the first
// id outside [0, V). Nothing is written when it throws.
template <typename T>
void embedding_forward(const Tensor<T>& weight, std::span<const int32_t> ids, Tensor<T>& out);

// grad_weight[ids[i], :] += grad_out[i, :] for every i (repeated ids add up).
//   ids [N]; grad_out [..., E] with N rows ([N, E] or [T, B, E]); grad_weight [V, E], accumulated.
// Only rows named in ids are read or written, so the cost is O(N*E) however large V is.
// touched_rows, if given, is overwritten with the distinct rows touched, ascending, so an
// optimizer or clipper can visit only those (callers accumulating over several calls merge).
// Throws like embedding_forward; grad_weight is unchanged when it throws.
template <typename T>
void embedding_backward(std::span<const int32_t> ids, const Tensor<T>& grad_out, Tensor<T>& grad_weight,
                        std::vector<int32_t>* touched_rows = nullptr);

}  // namespace recur
