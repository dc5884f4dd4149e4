#include "recur/model/linear.h"

#include <algorithm>
#include <type_traits>

#include "blas.h"
#include "layer_checks.h"

namespace recur {

template <typename T>
void linear_forward(const Tensor<T>& weight, const Tensor<T>& bias, const Tensor<T>& x, Tensor<T>& y) {
  detail::check_rank("linear_forward: weight", weight.shape, 2, "[C, F]");
  const int64_t out_f = weight.dim(0), in_f = weight.dim(1);
  // Only a default-constructed tensor means "no bias", so a wrongly sized one is still caught.
  const bool has_bias = !(bias.shape.empty() && bias.data.empty());
  if (has_bias) check_shape("linear_forward: bias", bias.shape, {out_f});
  const detail::Rows rows = detail::as_rows("linear_forward: x", x.shape, "[N, F]");
  check_shape("linear_forward: x", x.shape, detail::with_last(x.shape, in_f));

  // Seed y with the bias (or zeros) and let the GEMM add onto it (beta = 1): one pass over y
  // instead of a separate bias pass, and correct even when F = 0 and the GEMM adds nothing.
  y.resize(detail::with_last(x.shape, out_f));
  T* yp = y.ptr();
  if (!has_bias) {
    y.zero();
  } else {
    for (int64_t n = 0; n < rows.n; ++n) std::copy_n(bias.ptr(), out_f, yp + n * out_f);
  }
  if (in_f > 0) blas::gemm(false, true, rows.n, out_f, in_f, T(1), x.ptr(), in_f, weight.ptr(), in_f, T(1), yp, out_f);
}

template <typename T>
void linear_backward(const Tensor<T>& weight, const Tensor<T>& x, const Tensor<T>& dy, Tensor<T>& grad_weight,
                     std::type_identity_t<Tensor<T>>* grad_bias, std::type_identity_t<Tensor<T>>* grad_x) {
  detail::check_rank("linear_backward: weight", weight.shape, 2, "[C, F]");
  const int64_t out_f = weight.dim(0), in_f = weight.dim(1);
  const detail::Rows rows = detail::as_rows("linear_backward: x", x.shape, "[N, F]");
  check_shape("linear_backward: x", x.shape, detail::with_last(x.shape, in_f));
  check_shape("linear_backward: dy", dy.shape, detail::with_last(x.shape, out_f));
  check_shape("linear_backward: grad_weight", grad_weight.shape, {out_f, in_f});
  if (grad_bias) check_shape("linear_backward: grad_bias", grad_bias->shape, {out_f});

  // dW[C, F] += dy^T[C, N] x[N, F]
  if (rows.n > 0)
    blas::gemm(true, false, out_f, in_f, rows.n, T(1), dy.ptr(), out_f, x.ptr(), in_f, T(1), grad_weight.ptr(), in_f);

  if (grad_bias) {
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
      blas::gemm(false, false, rows.n, in_f, out_f, T(1), dy.ptr(), out_f, weight.ptr(), in_f, T(0), grad_x->ptr(),
                 in_f);
    }
  }
}

template void linear_forward<float>(const Tensor<float>&, const Tensor<float>&, const Tensor<float>&, Tensor<float>&);
template void linear_forward<double>(const Tensor<double>&, const Tensor<double>&, const Tensor<double>&,
                                     Tensor<double>&);
template void linear_backward<float>(const Tensor<float>&, const Tensor<float>&, const Tensor<float>&, Tensor<float>&,
                                     Tensor<float>*, Tensor<float>*);
template void linear_backward<double>(const Tensor<double>&, const Tensor<double>&, const Tensor<double>&,
                                      Tensor<double>&, Tensor<double>*, Tensor<double>*);

}  // namespace recur
