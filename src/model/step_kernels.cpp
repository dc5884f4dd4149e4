// One inference step of a stack of recurrent layers: see step_kernels.h.
#include "step_kernels.h"

#include <algorithm>
#include <cstring>
#include <type_traits>

#include <immintrin.h>
#include <omp.h>

#include "blas.h"
#include "cell_kernels.h"
#include "isa.h"
#include "recur/core/error.h"

namespace recur::detail {

namespace {

// GCC 12's AVX-512 reduction intrinsics start from _mm512_undefined and warn about it.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#ifndef __clang__  // clang has no such group, and says so
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

// out[r] = dot(W row r, x) for R rows of W [R, K], 16 lanes at a time: R rows stream at once and
// share each load of x.
template <int R>
[[gnu::target("avx512f,avx512dq,avx512vl")]] void dot_rows_avx512(const float* w, int64_t K, const float* x, float* out) {
  __m512 acc[R];
  for (int r = 0; r < R; ++r) acc[r] = _mm512_setzero_ps();
  int64_t k = 0;
  for (; k + 16 <= K; k += 16) {
    const __m512 xv = _mm512_loadu_ps(x + k);
    for (int r = 0; r < R; ++r) acc[r] = _mm512_fmadd_ps(_mm512_loadu_ps(w + r * K + k), xv, acc[r]);
  }
  if (k < K) {
    const __mmask16 m = __mmask16((1u << (K - k)) - 1);
    const __m512 xv = _mm512_maskz_loadu_ps(m, x + k);
    for (int r = 0; r < R; ++r) acc[r] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, w + r * K + k), xv, acc[r]);
  }
  for (int r = 0; r < R; ++r) out[r] = _mm512_reduce_add_ps(acc[r]);
}
#pragma GCC diagnostic pop

// y[n] = beta * y[n] + dot(W row n, x) for n in [lo, hi): batch-1 generation's products, bound
// by reading W (a 2x512 LSTM's 13 MB per token). OpenBLAS's sgemv read it at about 53 GB/s
// here, oneDNN's packed RNN step at 62; eight rows streamed side by side come closer to the
// latter. beta is 0 (y not read) or 1.
void gemv_rows_avx512(int64_t lo, int64_t hi, int64_t K, const float* x, const float* W, float beta, float* y) {
  constexpr int kRows = 8;
  float d[kRows];
  int64_t n = lo;
  for (; n + kRows <= hi; n += kRows) {
    dot_rows_avx512<kRows>(W + n * K, K, x, d);
    for (int r = 0; r < kRows; ++r) y[n + r] = beta == 0.0f ? d[r] : beta * y[n + r] + d[r];
  }
  for (; n < hi; ++n) {
    dot_rows_avx512<1>(W + n * K, K, x, d);
    y[n] = beta == 0.0f ? d[0] : beta * y[n] + d[0];
  }
}

// The rows [lo, hi) of a batch-1 product.
template <typename T>
void gemv_rows(int64_t lo, int64_t hi, int64_t N, int64_t K, const T* x, const T* W, T beta, T* y) {
  if constexpr (std::is_same_v<T, float>) {
    if (use_avx512() && (beta == 0.0f || beta == 1.0f)) return gemv_rows_avx512(lo, hi, K, x, W, beta, y);
  }
  if (hi > lo) blas::gemm(false, true, 1, hi - lo, K, T(1), x, K, W + lo * K, K, beta, y + lo, N);
}

// The packed layout of a float W [N, K] for batch-1 products: panels of 16 rows, each stored
// column by column, panel[p][k][j] = W[16p + j][k] (the last panel padded with zeros), so a
// panel's product reads one contiguous stream and keeps 16 outputs in one register: no
// horizontal sums, and one stream where the row kernel above runs eight. Measured on a 2x512
// LSTM's 4 MiB matrices: about 2.5x the row kernel's bandwidth (BENCHMARKS.md "Packed panels").
constexpr int64_t kPanel = 16;

// y[16p + j] (j < 16, rows below `rows` only) = beta * y + panel p . x, for panels [p0, p1).
// Four accumulators over k mod 4 (the FMA's latency), summed in a fixed order: every output's
// bits depend on K alone, never on which thread ran its panel.
[[gnu::target("avx512f")]] void gemv_panels_avx512(int64_t p0, int64_t p1, int64_t rows, int64_t K, const float* x,
                                                    const float* P, float beta, float* y) {
  for (int64_t p = p0; p < p1; ++p) {
    const float* w = P + p * K * kPanel;  // [K, 16]
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int64_t k = 0;
    for (; k + 4 <= K; k += 4) {
      a0 = _mm512_fmadd_ps(_mm512_loadu_ps(w + k * kPanel), _mm512_set1_ps(x[k]), a0);
      a1 = _mm512_fmadd_ps(_mm512_loadu_ps(w + (k + 1) * kPanel), _mm512_set1_ps(x[k + 1]), a1);
      a2 = _mm512_fmadd_ps(_mm512_loadu_ps(w + (k + 2) * kPanel), _mm512_set1_ps(x[k + 2]), a2);
      a3 = _mm512_fmadd_ps(_mm512_loadu_ps(w + (k + 3) * kPanel), _mm512_set1_ps(x[k + 3]), a3);
    }
    for (; k < K; ++k) a0 = _mm512_fmadd_ps(_mm512_loadu_ps(w + k * kPanel), _mm512_set1_ps(x[k]), a0);
    __m512 acc = _mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3));
    const int64_t left = rows - p * kPanel;
    const __mmask16 m = left >= kPanel ? __mmask16(0xFFFF) : __mmask16((1u << left) - 1);
    if (beta != 0.0f) acc = _mm512_add_ps(acc, _mm512_maskz_loadu_ps(m, y + p * kPanel));
    _mm512_mask_storeu_ps(y + p * kPanel, m, acc);
  }
}

// The threads a batch-1 product of N rows of K splits its rows among: one, unless W is large
// enough to pay for the fork (4 MiB per layer of a 2x512 LSTM is split; a 1x128 model's
// 256 KiB stays on one thread). The row kernel and the panel kernel both follow it.
int batch1_threads(int64_t N, int64_t K) {
  const int threads = omp_get_max_threads();
  return threads < 2 || N * K < (int64_t(1) << 18) || N < 64 ? 1 : threads;
}

}  // namespace

// At B = 1 this is a matrix-vector product, on the threads batch1_threads gives.
template <typename T>
void step_product(int64_t B, int64_t N, int64_t K, const T* x, const T* W, T beta, T* y, int64_t ldy) {
  if (B != 1) {
    blas::gemm(false, true, B, N, K, T(1), x, K, W, K, beta, y, ldy);
    return;
  }
  const int threads = batch1_threads(N, K);
  if (threads == 1) {
    gemv_rows(0, N, N, K, x, W, beta, y);
    return;
  }
#pragma omp parallel num_threads(threads)
  {
    const int64_t t = omp_get_thread_num(), n = omp_get_num_threads();
    const int64_t lo = (N * t / n) & ~int64_t(15), hi = t + 1 == n ? N : (N * (t + 1) / n) & ~int64_t(15);
    gemv_rows(lo, hi, N, K, x, W, beta, y);
  }
}

template <typename T>
StepMatrix<T>::StepMatrix(const T* w_, int64_t N, int64_t K, Precision p) : w(w_), rows(N), cols(K) {
  if constexpr (std::is_same_v<T, float>) {
    if (p == Precision::f32 && use_avx512() && N >= kPanel && K >= 1) {
      // A copy of W in panels (see gemv_panels_avx512), 64-byte aligned inside `packed` (the
      // kernel reads it unaligned, so a copied StepMatrix stays correct).
      const int64_t panels = (N + kPanel - 1) / kPanel;
      packed.assign(size_t(panels * K * kPanel + 16), 0.0f);
      packed_off = size_t((64 - reinterpret_cast<uintptr_t>(packed.data()) % 64) % 64 / sizeof(float));
      float* P = packed.data() + packed_off;
      for (int64_t n = 0; n < N; ++n)
        for (int64_t k = 0; k < K; ++k) P[((n / kPanel) * K + k) * kPanel + n % kPanel] = w[n * K + k];
    }
  }
  if (p == Precision::f32) return;
  if constexpr (std::is_same_v<T, float>) {
    q.push_back(quantize_matrix(w, N, K, p));
  } else {
    throw Error("stepper: " + std::string(precision_name(p)) + " weights apply to float32 models only");
  }
}

template <typename T>
void StepMatrix<T>::product(int64_t B, int64_t row0, int64_t n, const T* x, T beta, T* y, int64_t ldy) const {
  if constexpr (std::is_same_v<T, float>) {
    if (!q.empty()) return quantized_product(B, x, q[0], row0, n, beta, y, ldy);
    if (B == 1 && !packed.empty() && row0 % kPanel == 0 && (beta == 0.0f || beta == 1.0f)) {
      // The panels of rows [row0, row0 + n): whole panels per thread (batch1_threads).
      const float* P = packed.data() + packed_off + (row0 / kPanel) * cols * kPanel;
      const int64_t panels = (n + kPanel - 1) / kPanel;
      const int threads = batch1_threads(n, cols);
      if (threads == 1) return gemv_panels_avx512(0, panels, n, cols, x, P, beta, y);
#pragma omp parallel num_threads(threads)
      {
        const int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
        gemv_panels_avx512(panels * t / nt, panels * (t + 1) / nt, n, cols, x, P, beta, y);
      }
      return;
    }
  }
  step_product(B, n, cols, x, w + row0 * cols, beta, y, ldy);
}

namespace {

// Layer 0's per-token table is built when it stays this small (a char-level model's is well
// under 1 MiB; a 10k-word model's would be tens of MiB and cost more to build than it saves).
constexpr size_t kMaxTableBytes = size_t(4) << 20;

}  // namespace

template <typename T>
RnnStackStep<T>::RnnStackStep(const RnnConfig& cfg, const RnnParams<T>& params, StepInput input,
                              const Tensor<T>* embedding, int64_t vocab, Precision precision)
    : cfg_(cfg), p_(&params), input_(input), emb_(embedding), V_(vocab) {
  const RnnConfig& r = cfg_;
  const int64_t H = r.hidden_size, GH = r.gates() * H;
  if (int64_t(params.dirs.size()) != r.num_layers * r.directions())
    throw ShapeError("RnnStackStep: " + std::to_string(params.dirs.size()) + " parameter sets for " +
                     std::to_string(r.num_layers * r.directions()) + " layers and directions");
  if (input == StepInput::embedding && (!embedding || embedding->rank() != 2 || embedding->dim(0) != vocab ||
                                        embedding->dim(1) != r.input_size))
    throw ShapeError("RnnStackStep: expected an embedding [" + std::to_string(vocab) + ", " +
                     std::to_string(r.input_size) + "]");
  if (input == StepInput::one_hot && r.input_size != vocab)
    throw ShapeError("RnnStackStep: one-hot input of " + std::to_string(vocab) + " tokens into a layer of input " +
                     std::to_string(r.input_size));
  const bool gru_after = r.cell == CellType::gru && r.gru_reset == GruReset::after;
  zeros_ = Tensor<T>({std::max<int64_t>(3 * H, GH)});
  bias_.resize(params.dirs.size());
  for (size_t k = 0; k < bias_.size(); ++k) {
    bias_[k] = Tensor<T>({GH});
    if (!r.bias) continue;
    const auto& p = params.dirs[k];
    for (int64_t j = 0; j < GH; ++j)
      bias_[k].data[size_t(j)] = p.b_ih.data[size_t(j)] + (gru_after && j >= 2 * H ? T(0) : p.b_hh.data[size_t(j)]);
  }
  const int64_t E = r.input_size;
  const bool table = input == StepInput::embedding && r.directions() == 1 && size_t(V_ * GH) * sizeof(T) <= kMaxTableBytes;
  for (int64_t l = 0; l < r.num_layers; ++l)
    for (int64_t d = 0; d < r.directions(); ++d) {
      const DirectionParams<T>& p = params.dirs[size_t(l * r.directions() + d)];
      // Layer 0's W_ih is read per token (table, one-hot column) except from input rows.
      const bool ih_product = l > 0 || (!table && input != StepInput::one_hot);
      w_ih_.emplace_back(p.w_ih.ptr(), GH, r.layer_input_size(l), ih_product ? precision : Precision::f32);
      w_hh_.emplace_back(p.w_hh.ptr(), GH, r.state_size(), precision);
      if (r.proj_size > 0) w_hr_.emplace_back(p.w_hr.ptr(), r.proj_size, H, precision);
    }
  if (table) {
    table_ = Tensor<T>({V_, GH});
    for (int64_t v = 0; v < V_; ++v) std::memcpy(table_.ptr() + v * GH, bias_[0].ptr(), size_t(GH) * sizeof(T));
    blas::gemm(false, true, V_, GH, E, T(1), embedding->ptr(), E, params.dirs[0].w_ih.ptr(), E, T(1), table_.ptr(),
               GH);
  }
}

template <typename T>
T* RnnStackStep<T>::input(int64_t B) {
  x_.resize({B, cfg_.input_size});
  return x_.ptr();
}

template <typename T>
void RnnStackStep<T>::step(std::span<const int32_t> ids, int64_t B, RnnState<T>& state) {
  const RnnConfig& r = cfg_;
  const RnnParams<T>& P = *p_;
  const int64_t L = r.num_layers, D = r.directions(), H = r.hidden_size, R = r.state_size();
  const int64_t G = r.gates(), GH = G * H, DR = D * R, E = r.input_size;
  const bool lstm = r.cell == CellType::lstm, gru = r.cell == CellType::gru;
  if (state.h.empty()) {
    state.h.resize({L * D, B, R});
    state.h.zero();
  }
  if (lstm && state.c.empty()) {
    state.c.resize({L * D, B, H});
    state.c.zero();
  }
  check_shape("step state h", state.h.shape, {L * D, B, R});
  if (lstm) check_shape("step state c", state.c.shape, {L * D, B, H});

  g_.resize({B, GH});
  hp_.resize({B, GH});
  h_til_.resize({B, H});
  c_next_.resize({B, H});
  rh_.resize({B, H});
  if (input_ == StepInput::embedding && table_.empty()) {  // embedding rows [B, E]: layer 0's input
    x_.resize({B, E});
    for (int64_t b = 0; b < B; ++b)
      std::memcpy(x_.ptr() + b * E, emb_->ptr() + int64_t(ids[size_t(b)]) * E, size_t(E) * sizeof(T));
  }
  if (input_ == StepInput::rows) check_shape("step input", x_.shape, {B, E});

  for (int64_t l = 0; l < L; ++l) {
    y_.resize({B, DR});
    for (int64_t d = 0; d < D; ++d) {
      const int64_t k = l * D + d;
      const DirectionParams<T>& p = P.dirs[size_t(k)];
      T* g = g_.ptr();  // [B, G*H]
      // Input side.
      if (l == 0 && !table_.empty()) {
        for (int64_t b = 0; b < B; ++b)
          std::memcpy(g + b * GH, table_.ptr() + int64_t(ids[size_t(b)]) * GH, size_t(GH) * sizeof(T));
      } else if (l == 0 && input_ == StepInput::one_hot) {  // column ids[b] of W_ih [G*H, V]
        for (int64_t b = 0; b < B; ++b) {
          const T* col = p.w_ih.ptr() + ids[size_t(b)];
          const T* bias = bias_[size_t(k)].ptr();
          for (int64_t j = 0; j < GH; ++j) g[b * GH + j] = bias[j] + col[j * V_];
        }
      } else {
        for (int64_t b = 0; b < B; ++b) std::memcpy(g + b * GH, bias_[size_t(k)].ptr(), size_t(GH) * sizeof(T));
        w_ih_[size_t(k)].product(B, 0, GH, x_.ptr(), T(1), g, GH);
      }

      T* h = state.h.ptr() + k * B * R;                 // [B, R] h_prev in, h_next out
      T* c = lstm ? state.c.ptr() + k * B * H : nullptr;  // [B, H]
      T* h_new = h_til_.ptr();                          // [B, H] (R = H except LSTMP)
      if (r.cell == CellType::rnn_tanh || r.cell == CellType::rnn_relu) {
        w_hh_[size_t(k)].product(B, 0, H, h, T(1), g, GH);
        for (int64_t b = 0; b < B; ++b) kernels::rnn_row(H, r.cell == CellType::rnn_relu, g + b * GH, h_new + b * H);
      } else if (gru && r.gru_reset == GruReset::after) {
        w_hh_[size_t(k)].product(B, 0, GH, h, T(0), hp_.ptr(), GH);
        const T* b_hn = r.bias ? p.b_hh.ptr() + 2 * H : zeros_.ptr();
        for (int64_t b = 0; b < B; ++b)
          kernels::gru_after_row(H, g + b * GH, hp_.ptr() + b * GH, b_hn, h + b * R, h_new + b * H);
      } else if (gru) {
        w_hh_[size_t(k)].product(B, 0, 2 * H, h, T(0), hp_.ptr(), GH);
        for (int64_t b = 0; b < B; ++b)
          kernels::gru_before_rz_row(H, g + b * GH, hp_.ptr() + b * GH, h + b * R, rh_.ptr() + b * H);
        w_hh_[size_t(k)].product(B, 2 * H, H, rh_.ptr(), T(1), g + 2 * H, GH);
        for (int64_t b = 0; b < B; ++b) kernels::gru_before_out_row(H, g + b * GH, h + b * R, h_new + b * H);
      } else {  // LSTM
        w_hh_[size_t(k)].product(B, 0, GH, h, T(1), g, GH);
        const T* z = zeros_.ptr();
        const bool peep = r.peephole;
        for (int64_t b = 0; b < B; ++b)
          kernels::lstm_row(H, g + b * GH, c + b * H, peep ? p.w_peep.ptr() : z, peep ? p.w_peep.ptr() + H : z,
                            peep ? p.w_peep.ptr() + 2 * H : z, c_next_.ptr() + b * H, h_new + b * H);
        std::memcpy(c, c_next_.ptr(), size_t(B * H) * sizeof(T));
      }
      if (r.proj_size > 0) {  // LSTMP: the state is W_hr h~ [B, P]
        w_hr_[size_t(k)].product(B, 0, R, h_new, T(0), h, R);
      } else {
        std::memcpy(h, h_new, size_t(B * R) * sizeof(T));
      }
      for (int64_t b = 0; b < B; ++b) std::memcpy(y_.ptr() + b * DR + d * R, h + b * R, size_t(R) * sizeof(T));
    }
    std::swap(x_, y_);  // this layer's output is the next one's input
  }
}

template void step_product<float>(int64_t, int64_t, int64_t, const float*, const float*, float, float*, int64_t);
template void step_product<double>(int64_t, int64_t, int64_t, const double*, const double*, double, double*, int64_t);
template struct StepMatrix<float>;
template struct StepMatrix<double>;
template class RnnStackStep<float>;
template class RnnStackStep<double>;

}  // namespace recur::detail
