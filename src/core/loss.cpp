#include "recur/core/loss.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "activations.h"
#include "isa.h"
#include "layer_checks.h"

namespace recur {

namespace {

// The float kernels, twice (softmax_rows.inc).
namespace rows_avx2 {
#include "softmax_rows.inc"
}  // namespace rows_avx2
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512dq,avx512vl")
namespace rows_avx512 {
#include "softmax_rows.inc"
}  // namespace rows_avx512
#pragma GCC pop_options
#else
namespace rows_avx512 = rows_avx2;  // clang builds (the sanitizer and fuzzing trees): the baseline only
#endif

struct RowKernels {
  float (*row_max)(const float*, int64_t);
  float (*add_bias_max)(float*, const float*, int64_t);
  double (*exp_shifted)(const float*, int64_t, float, float*);
  void (*scale_row)(float*, int64_t, float);
  void (*scale_row_sum)(float*, int64_t, float, float*);
};
const RowKernels& row_kernels() {
  static const RowKernels k = detail::use_avx512()
                                  ? RowKernels{rows_avx512::row_max, rows_avx512::add_bias_max, rows_avx512::exp_shifted,
                                               rows_avx512::scale_row, rows_avx512::scale_row_sum}
                                  : RowKernels{rows_avx2::row_max, rows_avx2::add_bias_max, rows_avx2::exp_shifted,
                                               rows_avx2::scale_row, rows_avx2::scale_row_sum};
  return k;
}

// The row helpers for any T: double's are plain loops with libm's exp, so the float64
// verification path stays exact; float's are the vector kernels above.

// Row maximum. -inf for an empty row.
template <typename T>
double row_max(const T* x, int64_t n) {
  double m = -std::numeric_limits<double>::infinity();
  for (int64_t j = 0; j < n; ++j) m = std::max(m, double(x[j]));
  return m;
}
double row_max(const float* x, int64_t n) { return row_kernels().row_max(x, n); }

// x[j] += b[j]; returns the new maximum.
double add_bias_max(double* x, const double* b, int64_t n) {
  double m = -std::numeric_limits<double>::infinity();
  for (int64_t j = 0; j < n; ++j) {
    x[j] += b[j];
    m = std::max(m, x[j]);
  }
  return m;
}
double add_bias_max(float* x, const float* b, int64_t n) { return row_kernels().add_bias_max(x, b, n); }

// log(sum_j exp(x_j)), accumulated in double whatever T is.
template <typename T>
double log_sum_exp(const T* x, int64_t n) {
  const double m = row_max(x, n);
  double s = 0;
  for (int64_t j = 0; j < n; ++j) s += std::exp(double(x[j]) - m);
  return m + std::log(s);
}

// sum_j exp(x_j - m), also writing each term to out[j] unless out is null. float: the
// vectorised exp of activations.h (a few ulp) with the sum in double; at V = 10000 libm's
// scalar exp cost as much as the output layer's GEMM.
double exp_shifted(const double* x, int64_t n, double m, double* out) {
  double s = 0;
  for (int64_t j = 0; j < n; ++j) {
    const double e = std::exp(x[j] - m);
    s += e;
    if (out) out[j] = e;
  }
  return s;
}
double exp_shifted(const float* x, int64_t n, double m, float* out) {
  return row_kernels().exp_shifted(x, n, float(m), out);  // m is the row's largest float, so exact
}

// g[0, n) *= k, and with part: part[j] += the scaled g[j].
void scale_row(double* g, int64_t n, double k) {
  for (int64_t j = 0; j < n; ++j) g[j] *= k;
}
void scale_row(float* g, int64_t n, float k) { row_kernels().scale_row(g, n, k); }
void scale_row_sum(double* g, int64_t n, double k, double* part) {
  for (int64_t j = 0; j < n; ++j) {
    g[j] *= k;
    part[j] += g[j];
  }
}
void scale_row_sum(float* g, int64_t n, float k, float* part) { row_kernels().scale_row_sum(g, n, k, part); }

void check_mask_size(const char* fn, size_t mask_size, int64_t n) {
  if (mask_size != 0) detail::check_size(std::string(fn) + ": mask", int64_t(mask_size), n);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Softmax cross-entropy. Loss and gradient come out of the same pass over each row: the
// shifted exponentials are written to the gradient row while summing, then rescaled, so each
// logit costs one exp().

namespace {

// Rows per partial column sum of a fused bias's gradient: the partial sums are of fixed blocks
// of rows, added up in block order, so the sum does not depend on how threads split the rows.
constexpr int64_t kBiasRows = 16;
int64_t bias_blocks(int64_t n_rows) { return (n_rows + kBiasRows - 1) / kBiasRows; }

// The shared body of both softmax_cross_entropy forms, on arguments check_xent_args passed.
// logits [rows.n, rows.f] are written only when bias is given (x += b in place); part:
// [bias_blocks(N), V] zeros, or null.
template <typename T>
LossSum softmax_xent(detail::Rows rows, T* logits, std::span<const int32_t> targets, std::span<const T> mask,
                     Tensor<T>* grad_logits, double grad_scale, const T* bias, T* part) {
  const int64_t n_rows = rows.n, vocab = rows.f;
  // Rows are independent: with several threads blocks of them are split among the threads
  // (when the rows are wide enough to pay for it), each row's loss kept apart and the losses
  // summed in row order afterwards, so the result does not depend on the thread count.
  // One buffer per calling thread; the OpenMP workers must write into the caller's, hence the
  // reference (inside the parallel region the name would mean each worker's own).
  thread_local std::vector<double> row_loss_buffer;
  std::vector<double>& row_loss = row_loss_buffer;  // [N] NaN = row ignored
  row_loss.resize(size_t(n_rows));
  const int64_t blocks = bias_blocks(n_rows);
  const bool parallel = n_rows > 1 && n_rows * vocab >= (int64_t(1) << 16);
#pragma omp parallel for schedule(static) if (parallel)
  for (int64_t blk = 0; blk < blocks; ++blk) {
    T* bpart = part ? part + blk * vocab : nullptr;
    for (int64_t i = blk * kBiasRows; i < std::min(n_rows, (blk + 1) * kBiasRows); ++i) {
      T* x = logits + i * vocab;
      const double w = mask.empty() ? 1.0 : double(mask[size_t(i)]);
      const int32_t t = targets[size_t(i)];
      T* g = grad_logits ? grad_logits->ptr() + i * vocab : nullptr;
      // The bias goes into every row, also the ignored ones: the logits are read afterwards
      // (sampling, scoring).
      const double bm = bias ? double(add_bias_max(x, bias, vocab)) : 0.0;
      if (t == -1 || w == 0) {
        if (g) std::fill_n(g, vocab, T(0));
        row_loss[size_t(i)] = std::numeric_limits<double>::quiet_NaN();
        continue;
      }
      const double m = bias ? bm : row_max(x, vocab);
      const double s = exp_shifted(x, vocab, m, g);
      row_loss[size_t(i)] = w * (m + std::log(s) - double(x[t]));
      if (g) {
        const T k = T(grad_scale * w / s);
        if (bpart) scale_row_sum(g, vocab, k, bpart);
        else scale_row(g, vocab, k);
        g[t] = T(double(g[t]) - grad_scale * w);
        if (bpart) bpart[t] -= T(grad_scale * w);
      }
    }
  }
  LossSum loss;
  for (int64_t i = 0; i < n_rows; ++i) {
    const int32_t t = targets[size_t(i)];
    if (t == -1 || (!mask.empty() && double(mask[size_t(i)]) == 0)) continue;
    loss.sum += row_loss[size_t(i)];
    loss.count += 1;
  }
  return loss;
}

// The checks both forms share; returns the logits' [N, V].
detail::Rows check_xent_args(const char* fn, const Shape& shape, std::span<const int32_t> targets, size_t mask_size) {
  const detail::Rows rows = detail::as_rows(std::string(fn) + ": logits", shape, "[N, V]");
  detail::check_size(std::string(fn) + ": targets", int64_t(targets.size()), rows.n);
  check_mask_size(fn, mask_size, rows.n);
  for (size_t i = 0; i < targets.size(); ++i) {
    if (targets[i] != -1 && (targets[i] < 0 || targets[i] >= rows.f))
      throw Error(std::string(fn) + ": targets[" + std::to_string(i) + "] = " + std::to_string(targets[i]) +
                  " is out of range [0, " + std::to_string(rows.f) + ") and not -1 (ignore)");
  }
  return rows;
}

}  // namespace

template <typename T>
LossSum softmax_cross_entropy(const Tensor<T>& logits, std::span<const int32_t> targets, ValuesOf<T> mask,
                              GradOut<T> grad_logits, double grad_scale) {
  const char* fn = "softmax_cross_entropy";
  const detail::Rows rows = check_xent_args(fn, logits.shape, targets, mask.size());
  if (grad_logits) grad_logits->resize(logits.shape);
  // Without a bias the logits are only read.
  return softmax_xent(rows, const_cast<T*>(logits.ptr()), targets, mask, grad_logits, grad_scale,
                      static_cast<const T*>(nullptr), static_cast<T*>(nullptr));
}

template <typename T>
LossSum softmax_cross_entropy_with_bias(Tensor<T>& logits, const LossBias<T>& bias, std::span<const int32_t> targets,
                                        ValuesOf<T> mask, GradOut<T> grad_logits, double grad_scale) {
  const char* fn = "softmax_cross_entropy_with_bias";
  const detail::Rows rows = check_xent_args(fn, logits.shape, targets, mask.size());
  const int64_t vocab = rows.f, blocks = bias_blocks(rows.n);
  if (!bias.bias) throw Error(std::string(fn) + ": no bias given");
  check_shape(std::string(fn) + ": bias", bias.bias->shape, {vocab});
  if (bias.grad) check_shape(std::string(fn) + ": bias gradient", bias.grad->shape, {vocab});
  if (grad_logits) grad_logits->resize(logits.shape);
  const bool sums = bias.grad && grad_logits;
  thread_local std::vector<T> part_buffer;
  std::vector<T>& part = part_buffer;  // [blocks, V] partial column sums of the gradient
  if (sums) part.assign(size_t(blocks * vocab), T(0));
  const LossSum loss = softmax_xent(rows, logits.ptr(), targets, mask, grad_logits, grad_scale, bias.bias->ptr(),
                                    sums ? part.data() : static_cast<T*>(nullptr));
  if (sums) {
    // grad_bias[v] += the block sums in block order: the same bits at any thread count.
    T* db = bias.grad->ptr();
    const T* p = part.data();
#pragma omp parallel for schedule(static) if (blocks * vocab >= (int64_t(1) << 16))
    for (int64_t v = 0; v < vocab; ++v) {
      T s = T(0);
      for (int64_t b = 0; b < blocks; ++b) s += p[b * vocab + v];
      db[v] += s;
    }
  }
  return loss;
}

// ---------------------------------------------------------------------------------------------
// Sigmoid binary cross-entropy, element-wise.

template <typename T>
LossSum sigmoid_binary_cross_entropy(const Tensor<T>& logits, ValuesOf<T> targets, ValuesOf<T> mask,
                                     GradOut<T> grad_logits, double grad_scale) {
  const char* fn = "sigmoid_binary_cross_entropy";
  const int64_t n = logits.numel();
  detail::check_size("sigmoid_binary_cross_entropy: targets", int64_t(targets.size()), n);
  check_mask_size(fn, mask.size(), n);
  for (size_t i = 0; i < targets.size(); ++i) {
    if (!(targets[i] >= T(0) && targets[i] <= T(1)))  // also rejects NaN
      throw Error(std::string(fn) + ": targets[" + std::to_string(i) + "] = " + std::to_string(targets[i]) +
                  " is outside [0, 1]");
  }
  if (grad_logits) grad_logits->resize(logits.shape);

  LossSum loss;
  for (int64_t i = 0; i < n; ++i) {
    const double w = mask.empty() ? 1.0 : double(mask[size_t(i)]);
    if (w == 0) {
      if (grad_logits) grad_logits->data[size_t(i)] = T(0);
      continue;
    }
    const double x = double(logits.data[size_t(i)]), y = double(targets[size_t(i)]);
    // exp(-|x|) <= 1, so neither the loss nor the sigmoid below can overflow.
    const double e = std::exp(-std::abs(x));
    loss.sum += w * (std::max(x, 0.0) - x * y + std::log1p(e));
    loss.count += 1;
    if (grad_logits) {
      const double sig = x >= 0 ? 1.0 / (1.0 + e) : e / (1.0 + e);
      grad_logits->data[size_t(i)] = T(grad_scale * w * (sig - y));
    }
  }
  return loss;
}

// ---------------------------------------------------------------------------------------------
// Softmax rows. Reading in[j] before writing out[j] at the same index keeps in-place use safe.

template <typename T>
void softmax(std::span<const T> in, std::span<T> out) {
  detail::check_size("softmax: out", int64_t(out.size()), int64_t(in.size()));
  const int64_t n = int64_t(in.size());
  const double m = row_max(in.data(), n);
  double s = 0;
  for (int64_t j = 0; j < n; ++j) {
    const double e = std::exp(double(in[size_t(j)]) - m);
    s += e;
    out[size_t(j)] = T(e);
  }
  for (int64_t j = 0; j < n; ++j) out[size_t(j)] = T(double(out[size_t(j)]) / s);
}

template <typename T>
void log_softmax(std::span<const T> in, std::span<T> out) {
  detail::check_size("log_softmax: out", int64_t(out.size()), int64_t(in.size()));
  const double lse = log_sum_exp(in.data(), int64_t(in.size()));
  for (size_t j = 0; j < in.size(); ++j) out[j] = T(double(in[j]) - lse);
}

namespace {

// Applies a row function to every row of [..., V]; a rank-1 tensor is one row.
template <typename T, typename RowFn>
void for_each_row(const char* what, const Tensor<T>& logits, Tensor<T>& out, RowFn row_fn) {
  if (logits.rank() < 1)
    throw ShapeError(std::string(what) + ": expected shape [..., V], got " + shape_str(logits.shape));
  const int64_t vocab = logits.shape.back();
  const int64_t n_rows = vocab > 0 ? logits.numel() / vocab : 0;
  out.resize(logits.shape);  // no-op when out is logits
  for (int64_t i = 0; i < n_rows; ++i)
    row_fn(std::span<const T>(logits.ptr() + i * vocab, size_t(vocab)),
           std::span<T>(out.ptr() + i * vocab, size_t(vocab)));
}

}  // namespace

template <typename T>
void softmax(const Tensor<T>& logits, Tensor<T>& out) {
  for_each_row("softmax: logits", logits, out, [](std::span<const T> in, std::span<T> o) { softmax<T>(in, o); });
}

template <typename T>
void log_softmax(const Tensor<T>& logits, Tensor<T>& out) {
  for_each_row("log_softmax: logits", logits, out,
               [](std::span<const T> in, std::span<T> o) { log_softmax<T>(in, o); });
}

#define RECUR_INSTANTIATE_LOSS(T)                                                                                   \
  template LossSum softmax_cross_entropy<T>(const Tensor<T>&, std::span<const int32_t>, ValuesOf<T>, GradOut<T>,    \
                                            double);                                                                \
  template LossSum softmax_cross_entropy_with_bias<T>(Tensor<T>&, const LossBias<T>&, std::span<const int32_t>,     \
                                                      ValuesOf<T>, GradOut<T>, double);                             \
  template LossSum sigmoid_binary_cross_entropy<T>(const Tensor<T>&, ValuesOf<T>, ValuesOf<T>, GradOut<T>, double); \
  template void softmax<T>(std::span<const T>, std::span<T>);                                                       \
  template void log_softmax<T>(std::span<const T>, std::span<T>);                                                   \
  template void softmax<T>(const Tensor<T>&, Tensor<T>&);                                                           \
  template void log_softmax<T>(const Tensor<T>&, Tensor<T>&);

RECUR_INSTANTIATE_LOSS(float)
RECUR_INSTANTIATE_LOSS(double)
#undef RECUR_INSTANTIATE_LOSS

}  // namespace recur
