// src/cell_kernels.h - the element-wise part of one cell step for one batch row, forward only:
// what follows the gate products. Equations and gate order: include/recur/core/cell.h. Used by the
// inference stepper (step_kernels.cpp); the loops vectorise under `#pragma omp simd` (float
// activations from activations.h).
#pragma once

#include <algorithm>
#include <cstdint>

#include "activations.h"

namespace recur::kernels {

// RNN: g [H] pre-activations -> h [H].
template <typename T>
inline void rnn_row(int64_t H, bool relu, const T* g, T* h) {
  if (relu) {
#pragma omp simd
    for (int64_t j = 0; j < H; ++j) h[j] = std::max(g[j], T(0));
  } else {
#pragma omp simd
    for (int64_t j = 0; j < H; ++j) h[j] = act::tanh(g[j]);
  }
}

// LSTM: g [4H] pre-activations (i, f, g, o; input side, biases and W_hh h), c_prev [H], peephole
// rows (zeros without peepholes) -> c_next [H], h~ = o * tanh(c_next) [H].
template <typename T>
inline void lstm_row(int64_t H, const T* g, const T* c_prev, const T* wci, const T* wcf, const T* wco, T* c_next,
                     T* h_til) {
#pragma omp simd
  for (int64_t j = 0; j < H; ++j) {
    const T i_g = act::sigmoid(g[j] + wci[j] * c_prev[j]);
    const T f_g = act::sigmoid(g[H + j] + wcf[j] * c_prev[j]);
    const T g_g = act::tanh(g[2 * H + j]);
    const T c = f_g * c_prev[j] + i_g * g_g;
    const T o_g = act::sigmoid(g[3 * H + j] + wco[j] * c);
    c_next[j] = c;
    h_til[j] = o_g * act::tanh(c);
  }
}

// GRU, reset after the product: g [3H] input side (b_ih + b_hh for r, z; b_in only for n),
// hp [3H] = W_hh h_prev, b_hn [H] -> h_next [H].
template <typename T>
inline void gru_after_row(int64_t H, const T* g, const T* hp, const T* b_hn, const T* h_prev, T* h_next) {
#pragma omp simd
  for (int64_t j = 0; j < H; ++j) {
    const T r = act::sigmoid(g[j] + hp[j]);
    const T z = act::sigmoid(g[H + j] + hp[H + j]);
    const T n = act::tanh(g[2 * H + j] + r * (hp[2 * H + j] + b_hn[j]));
    h_next[j] = (T(1) - z) * n + z * h_prev[j];
  }
}

// GRU, reset before the product, first half: g [3H] input side with all biases, hp [2H] =
// W_h{r,z} h_prev -> g[0:2H] = r, z after the sigmoid, rh [H] = r * h_prev (input of W_hn).
template <typename T>
inline void gru_before_rz_row(int64_t H, T* g, const T* hp, const T* h_prev, T* rh) {
#pragma omp simd
  for (int64_t j = 0; j < 2 * H; ++j) g[j] = act::sigmoid(g[j] + hp[j]);
#pragma omp simd
  for (int64_t j = 0; j < H; ++j) rh[j] = g[j] * h_prev[j];
}

// Second half: g[2H:3H] now holds W_in x + b + W_hn (r * h_prev) -> h_next [H].
template <typename T>
inline void gru_before_out_row(int64_t H, const T* g, const T* h_prev, T* h_next) {
#pragma omp simd
  for (int64_t j = 0; j < H; ++j) {
    const T z = g[H + j];
    const T n = act::tanh(g[2 * H + j]);
    h_next[j] = (T(1) - z) * n + z * h_prev[j];
  }
}

}  // namespace recur::kernels
