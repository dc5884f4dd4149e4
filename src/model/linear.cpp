#include "recur/model/linear.h"

#include <omp.h>

#include <algorithm>
#include <type_traits>
#include <vector>

#include "blas.h"
#include "layer_checks.h"

namespace recur {

namespace {

// Below this many multiply-adds the rounding of x and W to bf16 costs more than the faster
// product saves (a PTB output layer is 700 x 10000 x 200 = 1.4G).
constexpr int64_t kBf16Macs = int64_t(1) << 22;

template <typename T>
bool use_bf16(const LinearOptions& opts, int64_t m, int64_t n, int64_t k) {
  return std::is_same_v<T, float> && opts.precision == Precision::bf16 && m * n * k >= kBf16Macs && cpu_has_bf16();
}

// The bfloat16 copies of one call's operands, per thread (a step allocates nothing).
struct Bf16Operands {
  std::vector<uint16_t> x, w, dy;
};
Bf16Operands& bf16_operands() {
  thread_local Bf16Operands o;
  return o;
}
template <typename T>
const uint16_t* as_bf16(const T* src, int64_t n, std::vector<uint16_t>& out) {
  out.resize(size_t(n));
  if constexpr (std::is_same_v<T, float>) floats_to_bf16(src, out.data(), n);
  return out.data();
}

// dy [N, C] rounded into dy16 and its column sums added to db [C], in one pass over dy: the
// sum reads each piece of a row just after its rounding, while it is still in cache (a PTB
// output layer's dy is 4-7M floats, too many to read twice from memory). Threads take blocks of
// columns, each column summed over rows in order, so the sums are the same at any thread count
// and equal to the float32 path's row-by-row sum.
void round_and_sum_rows(const float* dy, int64_t N, int64_t C, std::vector<uint16_t>& dy16, float* db) {
  dy16.resize(size_t(N * C));
  uint16_t* out = dy16.data();
  constexpr int64_t kCols = 512;  // 20 blocks for a 10000-word vocabulary: even shares for 2 or 4 threads
  const int64_t blocks = (C + kCols - 1) / kCols;
  const bool parallel = N * C >= (int64_t(1) << 20) && blocks > 1 && !omp_in_parallel() && omp_get_max_threads() > 1;
#pragma omp parallel for schedule(static) if (parallel)
  for (int64_t blk = 0; blk < blocks; ++blk) {
    const int64_t c0 = blk * kCols, w = std::min(kCols, C - c0);
    float* sum = db + c0;
    for (int64_t n = 0; n < N; ++n) {
      const float* row = dy + n * C + c0;
      floats_to_bf16(row, out + n * C + c0, w);
      for (int64_t c = 0; c < w; ++c) sum[c] += row[c];
    }
  }
}

}  // namespace

template <typename T>
void linear_forward(const Tensor<T>& weight, const Tensor<T>& bias, const Tensor<T>& x, Tensor<T>& y,
                    const LinearOptions& opts) {
  detail::check_rank("linear_forward: weight", weight.shape, 2, "[C, F]");
  const int64_t out_f = weight.dim(0), in_f = weight.dim(1);
  // Only a default-constructed tensor means "no bias", so a wrongly sized one is still caught.
  const bool has_bias = !(bias.shape.empty() && bias.data.empty());
  if (has_bias) check_shape("linear_forward: bias", bias.shape, {out_f});
  const detail::Rows rows = detail::as_rows("linear_forward: x", x.shape, "[N, F]");
  check_shape("linear_forward: x", x.shape, detail::with_last(x.shape, in_f));

  y.resize(detail::with_last(x.shape, out_f));
  T* yp = y.ptr();
  const T* bp = has_bias ? bias.ptr() : nullptr;
  // Whatever path is taken, the cache ends up holding this forward's operands or nothing.
  // (Emptied only where it is not refilled: refilling a vector of the same size writes no zeros.)
  const auto drop_cache = [&] {
    if (!opts.bf16_cache) return;
    opts.bf16_cache->x.clear();
    opts.bf16_cache->w.clear();
  };
  if (in_f == 0) {
    drop_cache();
    // No product at all: y is the bias, or zeros.
    if (!has_bias) return y.zero();
    for (int64_t n = 0; n < rows.n; ++n) std::copy_n(bp, out_f, yp + n * out_f);
    return;
  }
  if constexpr (std::is_same_v<T, float>) {
    if (use_bf16<T>(opts, rows.n, out_f, in_f)) {
      // Rounded into the caller's cache when there is one, so backward need not round again.
      Bf16Operands& scratch = bf16_operands();
      std::vector<uint16_t>& xs = opts.bf16_cache ? opts.bf16_cache->x : scratch.x;
      std::vector<uint16_t>& ws = opts.bf16_cache ? opts.bf16_cache->w : scratch.w;
      const uint16_t* x16 = as_bf16(x.ptr(), rows.n * in_f, xs);          // [N, F]
      const uint16_t* w16 = as_bf16(weight.ptr(), out_f * in_f, ws);      // [C, F]
      // The bias is added by the product itself (oneDNN's bias argument), not in a pass of its own.
      if (blas::gemm_bf16(false, true, rows.n, out_f, in_f, x16, in_f, w16, in_f, 0.0f, yp, out_f, bp)) return;
      // no bf16 kernel for this shape: the float32 product below, and nothing kept for backward
    }
  }
  drop_cache();
  blas::gemm(false, true, rows.n, out_f, in_f, T(1), x.ptr(), in_f, weight.ptr(), in_f, T(0), yp, out_f, bp);
}

template <typename T>
void linear_backward(const Tensor<T>& weight, const Tensor<T>& x, const Tensor<T>& dy, Tensor<T>& grad_weight,
                     std::type_identity_t<Tensor<T>>* grad_bias, std::type_identity_t<Tensor<T>>* grad_x,
                     const LinearOptions& opts) {
  detail::check_rank("linear_backward: weight", weight.shape, 2, "[C, F]");
  const int64_t out_f = weight.dim(0), in_f = weight.dim(1);
  const detail::Rows rows = detail::as_rows("linear_backward: x", x.shape, "[N, F]");
  check_shape("linear_backward: x", x.shape, detail::with_last(x.shape, in_f));
  check_shape("linear_backward: dy", dy.shape, detail::with_last(x.shape, out_f));
  check_shape("linear_backward: grad_weight", grad_weight.shape, {out_f, in_f});
  if (grad_bias) check_shape("linear_backward: grad_bias", grad_bias->shape, {out_f});

  // bf16: dy, x and W rounded once for both products; x and W taken from the forward's cache
  // when it holds them.
  const uint16_t *dy16 = nullptr, *x16 = nullptr, *w16 = nullptr;
  bool bias_done = false;  // bf16: grad_bias summed while dy was rounded
  if (use_bf16<T>(opts, rows.n, out_f, in_f)) {
    Bf16Operands& b = bf16_operands();
    const LinearBf16Cache* kept = opts.bf16_cache;
    if constexpr (std::is_same_v<T, float>) {
      if (grad_bias) {
        round_and_sum_rows(dy.ptr(), rows.n, out_f, b.dy, grad_bias->ptr());  // [N, C]
        bias_done = true;
      }
    }
    dy16 = bias_done ? b.dy.data() : as_bf16(dy.ptr(), rows.n * out_f, b.dy);  // [N, C]
    x16 = kept && int64_t(kept->x.size()) == rows.n * in_f ? kept->x.data() : as_bf16(x.ptr(), rows.n * in_f, b.x);  // [N, F]
    if (grad_x)
      w16 = kept && int64_t(kept->w.size()) == out_f * in_f ? kept->w.data()
                                                            : as_bf16(weight.ptr(), out_f * in_f, b.w);  // [C, F]
  }

  // dW[C, F] += dy^T[C, N] x[N, F]
  if (rows.n > 0) {
    bool done = false;
    if constexpr (std::is_same_v<T, float>)
      done = dy16 && blas::gemm_bf16(true, false, out_f, in_f, rows.n, dy16, out_f, x16, in_f, 1.0f, grad_weight.ptr(), in_f);
    if (!done)
      blas::gemm(true, false, out_f, in_f, rows.n, T(1), dy.ptr(), out_f, x.ptr(), in_f, T(1), grad_weight.ptr(), in_f);
  }

  if (grad_bias && !bias_done) {
    // Row-wise so dy is read once in memory order.
    T* db = grad_bias->ptr();
    for (int64_t n = 0; n < rows.n; ++n) {
      const T* row = dy.ptr() + n * out_f;
      for (int64_t c = 0; c < out_f; ++c) db[c] += row[c];
    }
  }

  if (grad_x) {
    // dx[N, F] = dy[N, C] W[C, F]. With C = 0 the product is empty and the GEMM might not
    // touch dx at all, so zero it explicitly rather than rely on BLAS's beta = 0 handling.
    grad_x->resize(x.shape);
    if (out_f == 0) {
      grad_x->zero();
    } else {
      bool done = false;
      if constexpr (std::is_same_v<T, float>)
        done = dy16 && blas::gemm_bf16(false, false, rows.n, in_f, out_f, dy16, out_f, w16, in_f, 0.0f, grad_x->ptr(), in_f);
      if (!done)
        blas::gemm(false, false, rows.n, in_f, out_f, T(1), dy.ptr(), out_f, weight.ptr(), in_f, T(0), grad_x->ptr(),
                   in_f);
    }
  }
}

template void linear_forward<float>(const Tensor<float>&, const Tensor<float>&, const Tensor<float>&, Tensor<float>&,
                                    const LinearOptions&);
template void linear_forward<double>(const Tensor<double>&, const Tensor<double>&, const Tensor<double>&,
                                     Tensor<double>&, const LinearOptions&);
template void linear_backward<float>(const Tensor<float>&, const Tensor<float>&, const Tensor<float>&, Tensor<float>&,
                                     Tensor<float>*, Tensor<float>*, const LinearOptions&);
template void linear_backward<double>(const Tensor<double>&, const Tensor<double>&, const Tensor<double>&,
                                      Tensor<double>&, Tensor<double>*, Tensor<double>*, const LinearOptions&);

}  // namespace recur
