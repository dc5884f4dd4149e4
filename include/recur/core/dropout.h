// recur/core/dropout.h - inverted dropout, the one implementation that the recurrent network's
// between-layer dropout (rnn.h) and the model graph's dropout layer (model.h) share.
//
// Kept units are scaled by 1/(1-p), so evaluation needs no rescaling. The mask holds 0 or
// 1/(1-p) per element, drawn in storage order with one Rng::uniform() each, so a seeded run
// draws the same masks whichever caller asks.
#pragma once

#include "recur/core/random.h"
#include "recur/core/tensor.h"

namespace recur {

// x *= mask, with mask (resized to x's shape, overwritten) drawn now. 0 <= p < 1.
template <typename T>
void dropout_forward_in_place(Tensor<T>& x, Tensor<T>& mask, double p, Rng& rng) {
  mask.resize(x.shape);
  const T keep = T(1.0 / (1.0 - p));
  for (size_t i = 0; i < x.data.size(); ++i) {
    mask.data[i] = rng.uniform() < p ? T(0) : keep;
    x.data[i] *= mask.data[i];
  }
}

// The backward of dropout_forward_in_place: grad *= mask (same shape).
template <typename T>
void dropout_backward_in_place(Tensor<T>& grad, const Tensor<T>& mask) {
  for (size_t i = 0; i < grad.data.size(); ++i) grad.data[i] *= mask.data[i];
}

}  // namespace recur
