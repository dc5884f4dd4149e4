// The library's internal kernels against plain reference loops: the GEMM wrapper (including its
// matrix-vector route for one output row or column) and the vectorised float activations.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "activations.h"
#include "blas.h"
#include "recur/core/loss.h"
#include "recur/core/optim.h"
#include "recur/core/threads.h"
#include "recur/core/random.h"

namespace {

// C[m, n] = alpha * op(A) op(B) + beta * C in double, from the same strided storage.
template <typename T>
std::vector<double> reference_gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, double alpha,
                                   const std::vector<T>& a, int64_t lda, const std::vector<T>& b, int64_t ldb,
                                   double beta, const std::vector<T>& c, int64_t ldc) {
  std::vector<double> out(c.begin(), c.end());
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double s = 0;
      for (int64_t p = 0; p < k; ++p) {
        const double av = ta ? a[size_t(p * lda + i)] : a[size_t(i * lda + p)];
        const double bv = tb ? b[size_t(j * ldb + p)] : b[size_t(p * ldb + j)];
        s += av * bv;
      }
      out[size_t(i * ldc + j)] = alpha * s + beta * double(c[size_t(i * ldc + j)]);
    }
  return out;
}

template <typename T>
void check_gemm_shapes(double tol) {
  recur::Rng rng(3);
  struct Shape {
    int64_t m, n, k;
  };
  // One output row (batch-1 steps), one output column, both, and a general product; leading
  // dimensions padded so that strides are exercised.
  for (const Shape s : {Shape{1, 37, 19}, Shape{23, 1, 17}, Shape{1, 1, 9}, Shape{5, 7, 11}, Shape{1, 8, 0}})
    for (bool ta : {false, true})
      for (bool tb : {false, true}) {
        const int64_t lda = (ta ? s.m : s.k) + 3, ldb = (tb ? s.k : s.n) + 2, ldc = s.n + 4;
        const int64_t arows = ta ? s.k : s.m, brows = tb ? s.n : s.k;
        std::vector<T> a(size_t(std::max<int64_t>(arows, 1) * lda)), b(size_t(std::max<int64_t>(brows, 1) * ldb)),
            c(size_t(s.m * ldc));
        for (auto* v : {&a, &b, &c})
          for (auto& x : *v) x = T(rng.uniform(-1, 1));
        const auto want = reference_gemm(ta, tb, s.m, s.n, s.k, 0.75, a, lda, b, ldb, 0.5, c, ldc);
        recur::blas::gemm(ta, tb, s.m, s.n, s.k, T(0.75), a.data(), lda, b.data(), ldb, T(0.5), c.data(), ldc);
        for (size_t e = 0; e < c.size(); ++e)
          ASSERT_NEAR(double(c[e]), want[e], tol)
              << "m=" << s.m << " n=" << s.n << " k=" << s.k << " ta=" << ta << " tb=" << tb << " element " << e;
      }
}

TEST(Gemm, MatchesReferenceIncludingMatrixVectorShapes) {
  check_gemm_shapes<double>(1e-12);
  check_gemm_shapes<float>(1e-5);
}

TEST(Activations, FloatFormsMatchDoubleLibm) {
  double worst_exp = 0, worst_tanh = 0, worst_sigmoid = 0;
  for (float x = -95.f; x < 95.f; x += 0.00137f) {
    const double xd = x;
    if (x > -87.f && x < 88.f)
      worst_exp = std::max(worst_exp, std::fabs(recur::act::exp_f(x) - std::exp(xd)) / std::exp(xd));
    worst_tanh = std::max(worst_tanh, std::fabs(recur::act::tanh_f(x) - std::tanh(xd)));
    worst_sigmoid = std::max(worst_sigmoid, std::fabs(recur::act::sigmoid_f(x) - 1.0 / (1.0 + std::exp(-xd))));
  }
  EXPECT_LT(worst_exp, 3e-7);  // a few float ulps
  EXPECT_LT(worst_tanh, 2e-7);
  EXPECT_LT(worst_sigmoid, 2e-7);
  EXPECT_EQ(recur::act::sigmoid_f(-200.f), recur::act::sigmoid_f(-200.f));  // no NaN at the clamp
  EXPECT_EQ(recur::act::tanh_f(50.f), 1.0f);
  EXPECT_EQ(recur::act::tanh_f(-50.f), -1.0f);
}

// The float softmax cross-entropy (vectorised exp, float partial sums) against the double one
// (libm, exact) on the same logits: a wide vocabulary so that several 256-term blocks and a
// ragged last block are summed, large logits so that the shift by the row maximum matters.
TEST(SoftmaxCrossEntropy, FloatPathMatchesDoublePath) {
  const int64_t N = 7, V = 10001;
  recur::Rng rng(5);
  recur::Tensor<float> lf({N, V});
  recur::Tensor<double> ld({N, V});
  for (size_t i = 0; i < lf.data.size(); ++i) {
    lf.data[i] = float(rng.uniform(-30, 30));
    ld.data[i] = double(lf.data[i]);
  }
  std::vector<int32_t> targets = {0, 5, V - 1, -1, 17, 256, 9999};
  const std::vector<float> mf = {1, 1, 1, 1, 0.5f, 0, 2};
  const std::vector<double> md(mf.begin(), mf.end());
  recur::Tensor<float> gf;
  recur::Tensor<double> gd;
  const auto a = recur::softmax_cross_entropy<float>(lf, targets, mf, &gf, 0.25);
  const auto b = recur::softmax_cross_entropy<double>(ld, targets, md, &gd, 0.25);
  EXPECT_EQ(a.count, b.count);
  EXPECT_NEAR(a.sum, b.sum, 1e-5 * std::fabs(b.sum));
  double worst = 0;
  for (size_t i = 0; i < gd.data.size(); ++i) worst = std::max(worst, std::fabs(double(gf.data[i]) - gd.data[i]));
  EXPECT_LT(worst, 1e-6);
  const auto c = recur::softmax_cross_entropy<float>(lf, targets, mf, nullptr, 0.0);  // loss only
  EXPECT_NEAR(c.sum, b.sum, 1e-5 * std::fabs(b.sum));
}

// The loss rows, the gradient norm and Adam's update are split across threads when large
// (loss.cpp, optim.cpp); CI runs one thread, so two are set here: every bit must match.
TEST(Threads, LossNormAndAdamDoNotDependOnTheThreadCount) {
  const int64_t N = 64, V = 5000, P = 100003;
  recur::Rng rng(9);
  recur::Tensor<float> logits({N, V});
  for (auto& x : logits.data) x = float(rng.uniform(-8, 8));
  std::vector<int32_t> targets;
  for (int64_t i = 0; i < N; ++i) targets.push_back(i % 7 == 3 ? -1 : int32_t(rng.below(uint64_t(V))));
  recur::Tensor<float> grads[2];
  double loss[2], norm[2];
  recur::Tensor<float> values[2];
  for (int k = 0; k < 2; ++k) {
    recur::set_num_threads(k + 1);
    loss[k] = recur::softmax_cross_entropy<float>(logits, targets, {}, &grads[k], 1.0 / 55).sum;
    recur::Rng init(4);
    recur::Tensor<float> value({P}), grad({P});
    for (int64_t j = 0; j < P; ++j) {
      value.data[size_t(j)] = float(init.uniform(-1, 1));
      grad.data[size_t(j)] = float(init.uniform(-3, 3));
    }
    std::vector<recur::ParamRef<float>> refs = {recur::param_ref("w", value, grad)};
    recur::Optimizer<float> adam({.type = recur::OptimizerType::adam, .lr = 0.01}, refs);
    norm[k] = recur::clip_grad_norm(refs, 1.0);
    adam.step();
    adam.step();
    values[k] = value;
  }
  recur::set_num_threads(1);
  EXPECT_EQ(loss[0], loss[1]);
  EXPECT_EQ(grads[0].data, grads[1].data);
  EXPECT_EQ(norm[0], norm[1]);
  EXPECT_EQ(values[0].data, values[1].data);
}

}  // namespace
