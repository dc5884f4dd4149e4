#include "recur/core/loss.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "activations.h"
#include "layer_checks.h"

namespace recur {

namespace {

// Row maximum, the shift that keeps every exp() argument <= 0. -inf for an empty row.
template <typename T>
double row_max(const T* x, int64_t n) {
  double m = -std::numeric_limits<double>::infinity();
  for (int64_t j = 0; j < n; ++j) m = std::max(m, double(x[j]));
  return m;
}
// The same, vectorised. noinline: GCC 12 vectorised the out-of-line copy but not the one it
// inlined into softmax_cross_entropy (perf showed scalar vmaxss there).
[[gnu::noinline]] double row_max(const float* x, int64_t n) {
  float m = -std::numeric_limits<float>::infinity();
#pragma omp simd reduction(max : m)
  for (int64_t j = 0; j < n; ++j) m = x[j] > m ? x[j] : m;
  return m;
}

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
// scalar exp cost as much as the output layer's GEMM. double: libm, so the float64
// verification path stays exact.
double exp_shifted(const double* x, int64_t n, double m, double* out) {
  double s = 0;
  for (int64_t j = 0; j < n; ++j) {
    const double e = std::exp(x[j] - m);
    s += e;
    if (out) out[j] = e;
  }
  return s;
}
[[gnu::noinline]] double exp_shifted(const float* x, int64_t n, double m, float* out) {
  const float mf = float(m);  // m is the row's largest float, so exact
  // Float partial sums of 256 terms (each <= 1) vectorise; a double accumulator in the same loop
  // kept GCC 12 from vectorising the clamp inside exp_f. The blocks are summed in double.
  double s = 0;
  for (int64_t j0 = 0; j0 < n; j0 += 256) {
    const int64_t j1 = std::min(n, j0 + 256);
    float b = 0;
    if (out) {
#pragma omp simd reduction(+ : b)
      for (int64_t j = j0; j < j1; ++j) {
        const float e = act::exp_f(x[j] - mf);
        out[j] = e;
        b += e;
      }
    } else {
#pragma omp simd reduction(+ : b)
      for (int64_t j = j0; j < j1; ++j) b += act::exp_f(x[j] - mf);
    }
    s += double(b);
  }
  return s;
}

// g[0, n) *= k. Out of line: inside the OpenMP-outlined row loop GCC 12 left it scalar.
template <typename T>
[[gnu::noinline]] void scale_row(T* g, int64_t n, T k) {
#pragma omp simd
  for (int64_t j = 0; j < n; ++j) g[j] *= k;
}

void check_mask_size(const char* fn, size_t mask_size, int64_t n) {
  if (mask_size != 0) detail::check_size(std::string(fn) + ": mask", int64_t(mask_size), n);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Softmax cross-entropy. Loss and gradient come out of the same pass over each row: the
// shifted exponentials are written to the gradient row while summing, then rescaled, so each
// logit costs one exp().

template <typename T>
LossSum softmax_cross_entropy(const Tensor<T>& logits, std::span<const int32_t> targets, ValuesOf<T> mask,
                              GradOut<T> grad_logits, double grad_scale) {
  const char* fn = "softmax_cross_entropy";
  const detail::Rows rows = detail::as_rows("softmax_cross_entropy: logits", logits.shape, "[N, V]");
  const int64_t n_rows = rows.n, vocab = rows.f;
  detail::check_size("softmax_cross_entropy: targets", int64_t(targets.size()), n_rows);
  check_mask_size(fn, mask.size(), n_rows);
  for (size_t i = 0; i < targets.size(); ++i) {
    if (targets[i] != -1 && (targets[i] < 0 || targets[i] >= vocab))
      throw Error(std::string(fn) + ": targets[" + std::to_string(i) + "] = " + std::to_string(targets[i]) +
                  " is out of range [0, " + std::to_string(vocab) + ") and not -1 (ignore)");
  }
  if (grad_logits) grad_logits->resize(logits.shape);

  // Rows are independent: with several threads they are split among them (when the rows are
  // wide enough to pay for it), each row's loss kept apart and the losses summed in row order
  // afterwards, so the result does not depend on the thread count.
  // One buffer per calling thread; the OpenMP workers must write into the caller's, hence the
  // reference (inside the parallel region the name would mean each worker's own).
  thread_local std::vector<double> row_loss_buffer;
  std::vector<double>& row_loss = row_loss_buffer;  // [N] NaN = row ignored
  row_loss.resize(size_t(n_rows));
  const bool parallel = n_rows > 1 && n_rows * vocab >= (int64_t(1) << 16);
#pragma omp parallel for schedule(static) if (parallel)
  for (int64_t i = 0; i < n_rows; ++i) {
    const T* x = logits.ptr() + i * vocab;
    const double w = mask.empty() ? 1.0 : double(mask[size_t(i)]);
    const int32_t t = targets[size_t(i)];
    T* g = grad_logits ? grad_logits->ptr() + i * vocab : nullptr;
    if (t == -1 || w == 0) {
      if (g) std::fill_n(g, vocab, T(0));
      row_loss[size_t(i)] = std::numeric_limits<double>::quiet_NaN();
      continue;
    }
    const double m = row_max(x, vocab);
    const double s = exp_shifted(x, vocab, m, g);
    row_loss[size_t(i)] = w * (m + std::log(s) - double(x[t]));
    if (g) {
      scale_row(g, vocab, T(grad_scale * w / s));
      g[t] = T(double(g[t]) - grad_scale * w);
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
  template LossSum sigmoid_binary_cross_entropy<T>(const Tensor<T>&, ValuesOf<T>, ValuesOf<T>, GradOut<T>, double); \
  template void softmax<T>(std::span<const T>, std::span<T>);                                                       \
  template void log_softmax<T>(std::span<const T>, std::span<T>);                                                   \
  template void softmax<T>(const Tensor<T>&, Tensor<T>&);                                                           \
  template void log_softmax<T>(const Tensor<T>&, Tensor<T>&);

RECUR_INSTANTIATE_LOSS(float)
RECUR_INSTANTIATE_LOSS(double)
#undef RECUR_INSTANTIATE_LOSS

}  // namespace recur
