// tests/gradcheck.h - finite-difference gradient checker for the test suite (header only).
//
// Use: compute the analytic gradients once at the current point, then hand the checker a
// loss closure that recomputes the scalar loss from the inputs it captured by reference:
//
//   Tensor<double> w = ..., dw = ...;        // dw = analytic dL/dw at the current w
//   auto loss = [&] { return my_forward_and_loss(w, x); };
//   EXPECT_GRADCHECK(loss, {{"w", &w, &dw}, {"x", &x, &dx}});
//   EXPECT_GRADCHECK(loss, {{"w", &w, &dw}}, {.tolerance = 1e-5, .max_per_tensor = 64});
//
// Each checked element x is moved to x + eps and x - eps (eps = 1e-6), the loss recomputed,
// and the central difference (L+ - L-) / (2 eps) compared with the analytic value by
// relative error |a - n| / max(floor, |a| + |n|), floor = 1e-8 by default. Inputs are
// restored exactly afterwards.
// Tensors with more than max_per_tensor elements are checked on a seeded random subset.
// The analytic gradients are copied first, so the closure may overwrite them.
//
// Numerical noise is about 1e-16 * |L| / eps, so keep the loss O(1) and avoid elements whose
// true gradient is tiny but nonzero (e.g. weight the outputs by random values of order 1), or
// raise `floor` so such elements are judged by absolute error |a - n| / floor instead.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <numeric>
#include <sstream>
#include <string>
#include <vector>

#include "recur/core/random.h"
#include "recur/core/tensor.h"

namespace recur::test {

struct GradCheckInput {
  std::string name;
  Tensor<double>* value;       // perturbed in place, restored afterwards
  const Tensor<double>* grad;  // analytic dL/dvalue, same shape as value
};

struct GradCheckOptions {
  double eps = 1e-6;
  double tolerance = 1e-6;       // largest relative error accepted
  int64_t max_per_tensor = 512;  // larger tensors are sampled; <= 0 checks every element
  double floor = 1e-8;           // denominator floor: max(floor, |a| + |n|)
  uint64_t seed = 1;             // picks the sample of a large tensor
};

struct GradCheckResult {
  double worst_rel_error = 0;
  std::string worst;  // "w[3]: analytic 0.25, numeric 0.2500001, rel error 2e-07"
  int64_t checked = 0;
};

inline double grad_rel_error(double a, double n, double floor = 1e-8) {
  return std::abs(a - n) / std::max(floor, std::abs(a) + std::abs(n));
}

inline GradCheckResult grad_check(const std::function<double()>& loss, const std::vector<GradCheckInput>& inputs,
                                  const GradCheckOptions& opt = {}) {
  GradCheckResult res;
  Rng rng(opt.seed);
  for (const GradCheckInput& in : inputs) {
    if (in.value->shape != in.grad->shape)
      throw std::invalid_argument("grad_check: " + in.name + " has shape " + shape_str(in.value->shape) +
                                  " but its gradient " + shape_str(in.grad->shape));
    const std::vector<double> analytic = in.grad->data;
    const int64_t n = in.value->numel();

    std::vector<int64_t> idx(static_cast<size_t>(n));
    std::iota(idx.begin(), idx.end(), int64_t(0));
    if (opt.max_per_tensor > 0 && n > opt.max_per_tensor) {
      // Partial Fisher-Yates: the first max_per_tensor entries become a uniform sample.
      for (int64_t i = 0; i < opt.max_per_tensor; ++i) {
        const int64_t j = i + int64_t(rng.below(uint64_t(n - i)));
        std::swap(idx[size_t(i)], idx[size_t(j)]);
      }
      idx.resize(size_t(opt.max_per_tensor));
      std::sort(idx.begin(), idx.end());
    }

    for (int64_t i : idx) {
      double& x = in.value->data[size_t(i)];
      const double x0 = x;
      // Divide by the step actually taken (x0 + eps is rounded), not by the nominal 2 eps.
      const double xp = x0 + opt.eps, xm = x0 - opt.eps;
      x = xp;
      const double lp = loss();
      x = xm;
      const double lm = loss();
      x = x0;
      const double numeric = (lp - lm) / (xp - xm);
      const double a = analytic[size_t(i)];
      const double err = grad_rel_error(a, numeric, opt.floor);
      ++res.checked;
      if (err > res.worst_rel_error || std::isnan(err)) {
        res.worst_rel_error = std::isnan(err) ? std::numeric_limits<double>::infinity() : err;
        std::ostringstream os;
        os.precision(10);
        os << in.name << "[" << i << "]: analytic " << a << ", numeric " << numeric << ", rel error " << err;
        res.worst = os.str();
      }
    }
  }
  return res;
}

// For EXPECT_TRUE / ASSERT_TRUE: fails with the worst element's name, index and values.
inline ::testing::AssertionResult gradcheck_ok(const std::function<double()>& loss,
                                               const std::vector<GradCheckInput>& inputs,
                                               const GradCheckOptions& opt = {}) {
  const GradCheckResult r = grad_check(loss, inputs, opt);
  if (r.worst_rel_error <= opt.tolerance)
    return ::testing::AssertionSuccess() << r.checked << " elements, worst " << r.worst;
  return ::testing::AssertionFailure() << "gradient check failed (tolerance " << opt.tolerance << ", " << r.checked
                                       << " elements checked), worst " << r.worst;
}

}  // namespace recur::test

// EXPECT_GRADCHECK(loss, {{"name", &value, &grad}, ...} [, GradCheckOptions{...}])
#define EXPECT_GRADCHECK(loss, ...) EXPECT_TRUE(::recur::test::gradcheck_ok(loss, __VA_ARGS__))
#define ASSERT_GRADCHECK(loss, ...) ASSERT_TRUE(::recur::test::gradcheck_ok(loss, __VA_ARGS__))
