// Embedding, linear and loss layers: finite-difference gradient checks, hand-computed and
// PyTorch golden values, float/double agreement and the error messages on bad input.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "gradcheck.h"
#include "recur/model/embedding.h"
#include "recur/model/linear.h"
#include "recur/core/loss.h"
#include "recur/core/random.h"
#include "recur/core/threads.h"

namespace recur {
namespace {

using test::GradCheckOptions;

Tensor<double> randn(Shape shape, Rng& rng, double scale = 1.0) {
  Tensor<double> t(std::move(shape));
  for (double& v : t.data) v = scale * rng.normal();
  return t;
}

// sum(a * b): turns a tensor output into a scalar loss whose gradient is b, with entries of
// order 1 so finite differences are not swamped by rounding.
double dot(const Tensor<double>& a, const Tensor<double>& b) {
  EXPECT_EQ(a.shape, b.shape);
  double s = 0;
  for (size_t i = 0; i < a.data.size(); ++i) s += a.data[i] * b.data[i];
  return s;
}

// Runs fn, expecting exception E whose message contains every one of `parts`.
template <typename E, typename Fn>
void expect_throw_with(Fn fn, const std::vector<std::string>& parts) {
  try {
    fn();
    ADD_FAILURE() << "no exception thrown";
  } catch (const E& e) {
    const std::string msg = e.what();
    for (const std::string& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' not in: " << msg;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "wrong exception type: " << e.what();
  }
}

double rel_diff(double a, double b) { return std::abs(a - b) / std::max(1e-300, std::max(std::abs(a), std::abs(b))); }

// ---------------------------------------------------------------------------------------------
// The checker itself: it must catch a wrong gradient and say where.

TEST(GradCheck, CatchesWrongGradientAndNamesIt) {
  Tensor<double> a({3}), b({2, 2});
  a.data = {0.5, -1.0, 2.0};
  b.data = {1.0, 2.0, 3.0, 4.0};
  auto loss = [&] {  // sum a^3 + sum b^2
    double s = 0;
    for (double v : a.data) s += v * v * v;
    for (double v : b.data) s += v * v;
    return s;
  };
  Tensor<double> ga({3}), gb({2, 2});
  for (size_t i = 0; i < 3; ++i) ga.data[i] = 3 * a.data[i] * a.data[i];
  for (size_t i = 0; i < 4; ++i) gb.data[i] = 2 * b.data[i];
  EXPECT_GRADCHECK(loss, {{"a", &a, &ga}, {"b", &b, &gb}});
  EXPECT_EQ(a.data, (std::vector<double>{0.5, -1.0, 2.0}));  // restored exactly

  gb.data[2] *= 1.001;
  const ::testing::AssertionResult r = test::gradcheck_ok(loss, {{"a", &a, &ga}, {"b", &b, &gb}});
  EXPECT_FALSE(r);
  EXPECT_NE(std::string(r.message()).find("b[2]"), std::string::npos) << r.message();

  // Sampling: at most max_per_tensor elements of each tensor are perturbed.
  const test::GradCheckResult sampled = test::grad_check(loss, {{"a", &a, &ga}, {"b", &b, &gb}}, {.max_per_tensor = 2});
  EXPECT_EQ(sampled.checked, 4);
}

// ---------------------------------------------------------------------------------------------
// Embedding

TEST(Embedding, ForwardCopiesRows) {
  Rng rng(1);
  const Tensor<double> w = randn({4, 3}, rng);
  const std::vector<int32_t> ids = {2, 0, 2};
  Tensor<double> out;
  embedding_forward(w, std::span<const int32_t>(ids), out);
  ASSERT_EQ(out.shape, (Shape{3, 3}));
  for (int64_t i = 0; i < 3; ++i)
    for (int64_t e = 0; e < 3; ++e) EXPECT_EQ(out.data[size_t(i * 3 + e)], w.data[size_t(ids[size_t(i)] * 3 + e)]);
}

TEST(Embedding, GradCheckWithRepeatedIds) {
  Rng rng(2);
  const int64_t vocab = 7, width = 4;
  Tensor<double> w = randn({vocab, width}, rng);
  const std::vector<int32_t> ids = {1, 3, 1, 5, 1, 0};  // id 1 three times; 2, 4, 6 never
  const Tensor<double> r = randn({int64_t(ids.size()), width}, rng);
  Tensor<double> out;
  auto loss = [&] {
    embedding_forward(w, std::span<const int32_t>(ids), out);
    return dot(out, r);
  };

  Tensor<double> gw({vocab, width});
  std::vector<int32_t> touched = {99};  // stale content must be replaced
  embedding_backward(std::span<const int32_t>(ids), r, gw, &touched);
  EXPECT_EQ(touched, (std::vector<int32_t>{0, 1, 3, 5}));
  for (int32_t row : {2, 4, 6})
    for (int64_t e = 0; e < width; ++e) EXPECT_EQ(gw.data[size_t(row * width + e)], 0.0);
  EXPECT_GRADCHECK(loss, {{"weight", &w, &gw}});
}

TEST(Embedding, BackwardAccumulatesAndTakesSequenceShape) {
  Rng rng(3);
  const std::vector<int32_t> ids = {0, 2, 2, 1, 0, 2};  // T = 3, B = 2
  const Tensor<double> g_flat = randn({6, 2}, rng);
  Tensor<double> g_seq = g_flat;
  g_seq.shape = {3, 2, 2};  // same rows, time-major

  Tensor<double> once({3, 2}), twice({3, 2});
  embedding_backward(std::span<const int32_t>(ids), g_flat, once);
  embedding_backward(std::span<const int32_t>(ids), g_seq, twice);
  embedding_backward(std::span<const int32_t>(ids), g_flat, twice);
  for (size_t i = 0; i < once.data.size(); ++i) EXPECT_NEAR(twice.data[i], 2 * once.data[i], 1e-15);
}

TEST(Embedding, BadInputThrowsAndLeavesGradientUntouched) {
  Tensor<double> w({5, 3}), out;
  const std::vector<int32_t> bad = {0, 4, 5, 1};
  expect_throw_with<Error>([&] { embedding_forward(w, std::span<const int32_t>(bad), out); },
                           {"embedding_forward", "ids[2] = 5", "[0, 5)"});
  const std::vector<int32_t> neg = {-1};
  expect_throw_with<Error>([&] { embedding_forward(w, std::span<const int32_t>(neg), out); }, {"ids[0] = -1"});
  Tensor<double> w1({15});
  expect_throw_with<ShapeError>([&] { embedding_forward(w1, std::span<const int32_t>(neg), out); },
                                {"embedding_forward: weight", "[V, E]", "got [15]"});

  Tensor<double> gw({5, 3}, 1.0), g({4, 3}, 1.0);
  expect_throw_with<Error>([&] { embedding_backward(std::span<const int32_t>(bad), g, gw); },
                           {"embedding_backward", "ids[2] = 5"});
  for (double v : gw.data) EXPECT_EQ(v, 1.0);
  Tensor<double> g_wrong({4, 2});
  const std::vector<int32_t> ok = {0, 1, 2, 3};
  expect_throw_with<ShapeError>([&] { embedding_backward(std::span<const int32_t>(ok), g_wrong, gw); },
                                {"embedding_backward: grad_out", "[4, 3]", "got [4, 2]"});
}

// ---------------------------------------------------------------------------------------------
// Linear

TEST(Linear, ForwardMatchesLoops) {
  Rng rng(4);
  const Tensor<double> w = randn({3, 4}, rng), b = randn({3}, rng), x = randn({2, 4}, rng);
  Tensor<double> y;
  linear_forward(w, b, x, y);
  ASSERT_EQ(y.shape, (Shape{2, 3}));
  for (int64_t n = 0; n < 2; ++n)
    for (int64_t c = 0; c < 3; ++c) {
      double ref = b.data[size_t(c)];
      for (int64_t f = 0; f < 4; ++f) ref += x.data[size_t(n * 4 + f)] * w.data[size_t(c * 4 + f)];
      EXPECT_NEAR(y.data[size_t(n * 3 + c)], ref, 1e-14);
    }
  Tensor<double> y_nobias;
  linear_forward(w, Tensor<double>(), x, y_nobias);
  for (int64_t n = 0; n < 2; ++n)
    for (int64_t c = 0; c < 3; ++c)
      EXPECT_NEAR(y_nobias.data[size_t(n * 3 + c)], y.data[size_t(n * 3 + c)] - b.data[size_t(c)], 1e-14);
}

// x is [T, B, F] per step (N = T*B) or [B, F] for a final state (N = B).
void linear_gradcheck(const Shape& x_shape, bool with_bias) {
  Rng rng(5);
  const int64_t in_f = x_shape.back(), out_f = 5;
  Tensor<double> w = randn({out_f, in_f}, rng), b = with_bias ? randn({out_f}, rng) : Tensor<double>();
  Tensor<double> x = randn(x_shape, rng);
  Shape y_shape = x_shape;
  y_shape.back() = out_f;
  const Tensor<double> r = randn(y_shape, rng);
  Tensor<double> y;
  auto loss = [&] {
    linear_forward(w, b, x, y);
    return dot(y, r);
  };

  // Pre-filled weight and bias gradients check that backward adds rather than overwrites.
  Tensor<double> gw({out_f, in_f}, 0.5), gb({out_f}, 0.25), gx;
  linear_backward(w, x, r, gw, with_bias ? &gb : nullptr, &gx);
  EXPECT_EQ(gx.shape, x_shape);
  for (double& v : gw.data) v -= 0.5;
  for (double& v : gb.data) v -= 0.25;
  std::vector<test::GradCheckInput> inputs = {{"weight", &w, &gw}, {"x", &x, &gx}};
  if (with_bias) inputs.push_back({"bias", &b, &gb});
  EXPECT_GRADCHECK(loss, inputs);
}

TEST(Linear, GradCheckPerStepSequence) { linear_gradcheck({3, 2, 4}, true); }
TEST(Linear, GradCheckFinalState) { linear_gradcheck({2, 4}, true); }
TEST(Linear, GradCheckNoBias) { linear_gradcheck({3, 2, 4}, false); }

TEST(Linear, BadShapesThrow) {
  Tensor<double> w({3, 4}), b({3}), x({2, 4}), y;
  Tensor<double> x_bad({2, 5}), b_bad({4}), w_bad({12});
  expect_throw_with<ShapeError>([&] { linear_forward(w, b, x_bad, y); },
                                {"linear_forward: x", "expected shape [2, 4]", "got [2, 5]"});
  expect_throw_with<ShapeError>([&] { linear_forward(w, b_bad, x, y); }, {"linear_forward: bias", "[3]", "got [4]"});
  expect_throw_with<ShapeError>([&] { linear_forward(w_bad, b, x, y); }, {"linear_forward: weight", "[C, F]"});
  Tensor<double> x_rank1({4});
  expect_throw_with<ShapeError>([&] { linear_forward(w, b, x_rank1, y); }, {"linear_forward: x", "got [4]"});

  Tensor<double> dy({2, 3}), gw({3, 4}), gb({3}), gx;
  Tensor<double> dy_bad({2, 2}), gw_bad({4, 3}), gb_bad({2});
  expect_throw_with<ShapeError>([&] { linear_backward(w, x, dy_bad, gw, &gb, &gx); },
                                {"linear_backward: dy", "[2, 3]", "got [2, 2]"});
  expect_throw_with<ShapeError>([&] { linear_backward(w, x, dy, gw_bad, &gb, &gx); },
                                {"linear_backward: grad_weight", "[3, 4]", "got [4, 3]"});
  expect_throw_with<ShapeError>([&] { linear_backward(w, x, dy, gw, &gb_bad, &gx); },
                                {"linear_backward: grad_bias", "[3]", "got [2]"});
}

// ---------------------------------------------------------------------------------------------
// Softmax cross-entropy

struct CeCase {
  Tensor<double> logits;
  std::vector<int32_t> targets;
  std::vector<double> mask;
};

// Six positions over five classes: one ignored by target, one by mask, one by both, and one
// with mask weight 0.5 (masks are weights, not just flags).
CeCase ce_case() {
  Rng rng(6);
  CeCase c;
  c.logits = randn({2, 3, 5}, rng, 2.0);  // [T, B, V]
  c.targets = {4, -1, 0, 2, -1, 3};
  c.mask = {1, 1, 0, 0.5, 0, 1};
  return c;
}

TEST(SoftmaxCrossEntropy, GradCheckWithMaskAndIgnoredTargets) {
  CeCase c = ce_case();
  Tensor<double> grad;
  const LossSum at = softmax_cross_entropy(c.logits, c.targets, c.mask, &grad, 1.0);
  EXPECT_EQ(at.count, 3);  // positions 0, 3, 5
  const double scale = 1.0 / double(at.count);
  softmax_cross_entropy(c.logits, c.targets, c.mask, &grad, scale);
  ASSERT_EQ(grad.shape, c.logits.shape);
  for (int64_t row : {1, 2, 4})
    for (int64_t v = 0; v < 5; ++v) EXPECT_EQ(grad.data[size_t(row * 5 + v)], 0.0) << "row " << row;
  auto loss = [&] { return scale * softmax_cross_entropy(c.logits, c.targets, c.mask, nullptr, 1.0).sum; };
  EXPECT_GRADCHECK(loss, {{"logits", &c.logits, &grad}});
}

TEST(SoftmaxCrossEntropy, HandComputedValues) {
  // Row 0: equal logits, loss ln 2. Row 1: loss log(e + e^2 + e^3) - 3. Row 2: extreme
  // logits, which a naive exp() would overflow: loss 1000 exactly.
  Tensor<double> logits({3, 3});
  logits.data = {0, 0, -INFINITY, 1, 2, 3, 1000, -1000, 0};
  const std::vector<int32_t> targets = {0, 2, 1};
  Tensor<double> grad;
  const LossSum l = softmax_cross_entropy(logits, targets, {}, &grad, 1.0);
  const double row1 = std::log(std::exp(1.0) + std::exp(2.0) + std::exp(3.0)) - 3.0;
  EXPECT_EQ(l.count, 3);
  EXPECT_NEAR(l.sum, std::log(2.0) + row1 + 2000.0, 1e-12);
  EXPECT_NEAR(l.mean(), l.sum / 3, 1e-15);
  // Row 0 gradient: softmax (0.5, 0.5, 0) minus onehot(0).
  EXPECT_NEAR(grad.data[0], -0.5, 1e-15);
  EXPECT_NEAR(grad.data[1], 0.5, 1e-15);
  EXPECT_EQ(grad.data[2], 0.0);
  // Row 2: all mass on class 0, target 1.
  EXPECT_NEAR(grad.data[6], 1.0, 1e-15);
  EXPECT_NEAR(grad.data[7], -1.0, 1e-15);
  for (double g : grad.data) EXPECT_TRUE(std::isfinite(g));
}

TEST(SoftmaxCrossEntropy, CountExcludesMaskedAndFullyMaskedIsEmpty) {
  CeCase c = ce_case();
  const LossSum all = softmax_cross_entropy(c.logits, c.targets, {}, nullptr, 1.0);
  EXPECT_EQ(all.count, 4);  // only the two -1 targets are dropped
  const LossSum masked = softmax_cross_entropy(c.logits, c.targets, c.mask, nullptr, 1.0);
  EXPECT_EQ(masked.count, 3);

  const std::vector<double> zeros(6, 0.0);
  Tensor<double> grad({1}, 7.0);
  const LossSum none = softmax_cross_entropy(c.logits, c.targets, zeros, &grad, 1.0);
  EXPECT_EQ(none.sum, 0.0);
  EXPECT_EQ(none.count, 0);
  EXPECT_EQ(none.mean(), 0.0);
  EXPECT_EQ(grad.shape, c.logits.shape);
  for (double g : grad.data) EXPECT_EQ(g, 0.0);

  const std::vector<int32_t> ignored(6, -1);
  const LossSum none2 = softmax_cross_entropy(c.logits, ignored, {}, nullptr, 1.0);
  EXPECT_EQ(none2.sum, 0.0);
  EXPECT_EQ(none2.count, 0);

  LossSum total = masked;
  total += none;
  total += all;
  EXPECT_EQ(total.count, 7);
  EXPECT_DOUBLE_EQ(total.sum, masked.sum + all.sum);
}

TEST(SoftmaxCrossEntropy, BadInputThrows) {
  Tensor<double> logits({2, 5});
  const std::vector<int32_t> bad = {1, 5};
  expect_throw_with<Error>([&] { softmax_cross_entropy(logits, bad, {}, nullptr, 1.0); },
                           {"softmax_cross_entropy", "targets[1] = 5", "[0, 5)"});
  const std::vector<int32_t> bad_neg = {-2, 0};
  expect_throw_with<Error>([&] { softmax_cross_entropy(logits, bad_neg, {}, nullptr, 1.0); }, {"targets[0] = -2"});
  const std::vector<int32_t> three = {0, 1, 2};
  expect_throw_with<ShapeError>([&] { softmax_cross_entropy(logits, three, {}, nullptr, 1.0); },
                                {"softmax_cross_entropy: targets", "expected shape [2]", "got [3]"});
  const std::vector<int32_t> ok = {0, 1};
  const std::vector<double> mask3 = {1, 1, 1};
  expect_throw_with<ShapeError>([&] { softmax_cross_entropy(logits, ok, mask3, nullptr, 1.0); },
                                {"softmax_cross_entropy: mask", "[2]", "got [3]"});
  Tensor<double> rank1({5});
  expect_throw_with<ShapeError>([&] { softmax_cross_entropy(rank1, ok, {}, nullptr, 1.0); },
                                {"softmax_cross_entropy: logits", "[N, V]", "got [5]"});
}

// The output layer's bias taken into the loss (a fused head): the same loss and logit gradient
// as the unfused loss of logits + bias, the logits left as logits + bias in every row (ignored
// and masked ones too), and the bias gradient accumulated as the column sums of the logit
// gradient; its own gradient checked by finite differences.
TEST(SoftmaxCrossEntropy, WithBiasIsTheLossOfLogitsPlusBias) {
  CeCase c = ce_case();
  Rng rng(9);
  Tensor<double> bias = randn({5}, rng, 1.5);
  Tensor<double> biased = c.logits;  // [T, B, V]
  for (size_t i = 0; i < biased.data.size(); ++i) biased.data[i] += bias.data[i % 5];
  const double scale = 0.25;
  Tensor<double> want_grad;
  const LossSum want = softmax_cross_entropy(biased, c.targets, c.mask, &want_grad, scale);

  Tensor<double> logits = c.logits, grad, grad_bias({5}, 0.5);  // accumulates onto 0.5
  const LossSum got = softmax_cross_entropy_with_bias(logits, {.bias = &bias, .grad = &grad_bias}, c.targets, c.mask,
                                                      &grad, scale);
  EXPECT_EQ(got.count, want.count);
  EXPECT_NEAR(got.sum, want.sum, 1e-13);
  ASSERT_EQ(logits.shape, biased.shape);
  EXPECT_EQ(logits.data, biased.data);  // every row, ignored ones included
  ASSERT_EQ(grad.shape, want_grad.shape);
  for (size_t i = 0; i < grad.data.size(); ++i) EXPECT_NEAR(grad.data[i], want_grad.data[i], 1e-15) << i;
  for (int64_t v = 0; v < 5; ++v) {
    double colsum = 0.5;
    for (int64_t row = 0; row < 6; ++row) colsum += want_grad.data[size_t(row * 5 + v)];
    EXPECT_NEAR(grad_bias.data[size_t(v)], colsum, 1e-15) << v;
  }
  // Without a bias gradient asked for, and without any gradient: the same loss, the bias untouched.
  Tensor<double> again = c.logits;
  EXPECT_NEAR(softmax_cross_entropy_with_bias(again, {.bias = &bias}, c.targets, c.mask, nullptr, 1.0).sum, want.sum, 1e-13);
  EXPECT_EQ(again.data, biased.data);

  grad_bias.zero();
  softmax_cross_entropy_with_bias(logits = c.logits, {.bias = &bias, .grad = &grad_bias}, c.targets, c.mask, &grad, scale);
  auto loss = [&] {
    Tensor<double> l = c.logits;
    return scale * softmax_cross_entropy_with_bias(l, {.bias = &bias}, c.targets, c.mask, nullptr, 1.0).sum;
  };
  EXPECT_GRADCHECK(loss, {{"bias", &bias, &grad_bias}});
}

TEST(SoftmaxCrossEntropy, WithBiasRefusesABiasOfTheWrongSize) {
  CeCase c = ce_case();
  Tensor<double> four({4}), five({5}), grad4({4});
  expect_throw_with<ShapeError>([&] { softmax_cross_entropy_with_bias(c.logits, {.bias = &four}, c.targets, {}, nullptr, 1.0); },
                                {"softmax_cross_entropy_with_bias: bias", "[5]", "got [4]"});
  expect_throw_with<ShapeError>(
      [&] { softmax_cross_entropy_with_bias(c.logits, {.bias = &five, .grad = &grad4}, c.targets, {}, nullptr, 1.0); },
      {"softmax_cross_entropy_with_bias: bias gradient", "[5]", "got [4]"});
  expect_throw_with<Error>([&] { softmax_cross_entropy_with_bias(c.logits, {}, c.targets, {}, nullptr, 1.0); },
                           {"softmax_cross_entropy_with_bias", "no bias"});
  const std::vector<int32_t> bad = {0, 1, 2, 3, 4, 5};
  expect_throw_with<Error>([&] { softmax_cross_entropy_with_bias(c.logits, {.bias = &five}, bad, {}, nullptr, 1.0); },
                           {"softmax_cross_entropy_with_bias", "targets[5] = 5", "[0, 5)"});
}

// float: the vector kernels (AVX-512 where the processor has it, AVX2 under RECUR_ISA=avx2, a
// second ctest registration) against the double loss, and the same bits at 1, 2 and 3 threads:
// rows wide enough to be split over threads, bias sums over row blocks added in a fixed order.
TEST(SoftmaxCrossEntropy, FloatWithBiasMatchesDoubleAndIsTheSameAtAnyThreadCount) {
  const int64_t N = 203, V = 1009;  // odd sizes: partial vectors and a partial block of rows
  Rng rng(12);
  const Tensor<double> orig_d = randn({N, V}, rng, 3.0), bias_d = randn({V}, rng, 2.0);
  std::vector<int32_t> targets(static_cast<size_t>(N));
  std::vector<float> mask_f(size_t(N), 1.0f);
  std::vector<double> mask_d(size_t(N), 1.0);
  for (int64_t i = 0; i < N; ++i) targets[size_t(i)] = i % 17 == 3 ? -1 : int32_t(rng.below(uint64_t(V)));
  mask_f[7] = 0, mask_d[7] = 0;
  Tensor<double> logits_d = orig_d, grad_d, grad_bias_d({V});
  const LossSum want =
      softmax_cross_entropy_with_bias(logits_d, {.bias = &bias_d, .grad = &grad_bias_d}, targets, mask_d, &grad_d, 1.0 / 190);
  const Tensor<float> bias = tensor_cast<float>(bias_d);
  std::vector<LossSum> losses;
  std::vector<Tensor<float>> grads, grad_biases, outs;
  for (int threads : {1, 2, 3}) {
    set_num_threads(threads);
    Tensor<float> logits = tensor_cast<float>(orig_d), grad, grad_bias({V});
    losses.push_back(
        softmax_cross_entropy_with_bias(logits, {.bias = &bias, .grad = &grad_bias}, targets, mask_f, &grad, 1.0 / 190));
    grads.push_back(grad);
    grad_biases.push_back(grad_bias);
    outs.push_back(logits);
  }
  set_num_threads(1);
  for (size_t k = 1; k < losses.size(); ++k) {
    EXPECT_EQ(losses[k].sum, losses[0].sum) << k + 1 << " threads";
    EXPECT_EQ(losses[k].count, losses[0].count);
    EXPECT_EQ(grads[k].data, grads[0].data) << k + 1 << " threads";
    EXPECT_EQ(grad_biases[k].data, grad_biases[0].data) << k + 1 << " threads";
    EXPECT_EQ(outs[k].data, outs[0].data) << k + 1 << " threads";
  }
  EXPECT_EQ(losses[0].count, want.count);
  EXPECT_NEAR(losses[0].sum, want.sum, 1e-6 * want.sum);
  double worst = 0, worst_bias = 0;
  for (size_t i = 0; i < grad_d.data.size(); ++i) worst = std::max(worst, std::abs(double(grads[0].data[i]) - grad_d.data[i]));
  for (int64_t v = 0; v < V; ++v)
    worst_bias = std::max(worst_bias, std::abs(double(grad_biases[0].data[size_t(v)]) - grad_bias_d.data[size_t(v)]));
  EXPECT_LT(worst, 1e-7);
  EXPECT_LT(worst_bias, 1e-6);
  for (size_t i = 0; i < orig_d.data.size(); ++i)
    ASSERT_EQ(outs[0].data[i], float(orig_d.data[i]) + bias.data[i % size_t(V)]) << i;
}

// ---------------------------------------------------------------------------------------------
// Sigmoid binary cross-entropy

TEST(SigmoidBce, GradCheckWithMask) {
  Rng rng(7);
  Tensor<double> logits = randn({2, 4}, rng, 2.0);
  std::vector<double> targets(8), mask = {1, 1, 0, 1, 0.5, 1, 1, 0};
  for (double& t : targets) t = rng.uniform();
  targets[0] = 0, targets[1] = 1;
  Tensor<double> grad;
  const LossSum at = sigmoid_binary_cross_entropy(logits, targets, mask, &grad, 0.25);
  EXPECT_EQ(at.count, 6);
  EXPECT_EQ(grad.data[2], 0.0);
  EXPECT_EQ(grad.data[7], 0.0);
  auto loss = [&] { return 0.25 * sigmoid_binary_cross_entropy(logits, targets, mask, nullptr, 1.0).sum; };
  EXPECT_GRADCHECK(loss, {{"logits", &logits, &grad}});
}

TEST(SigmoidBce, HandComputedValues) {
  Tensor<double> logits({6});
  logits.data = {0.0, 2.0, -3.0, 0.7, 800.0, -800.0};
  const std::vector<double> targets = {1.0, 0.0, 0.25, 0.6, 1.0, 1.0};
  Tensor<double> grad;
  const LossSum l = sigmoid_binary_cross_entropy(logits, targets, {}, &grad, 1.0);
  // Textbook -(y log s + (1-y) log(1-s)) where it is safe to evaluate; extremes by hand.
  double ref = 0;
  for (size_t i = 0; i < 4; ++i) {
    const double s = 1.0 / (1.0 + std::exp(-logits.data[i])), y = targets[i];
    ref += -(y * std::log(s) + (1 - y) * std::log(1 - s));
    EXPECT_NEAR(grad.data[i], s - y, 1e-15);
  }
  ref += 0.0 + 800.0;  // x = 800, y = 1: loss ~ e^-800; x = -800, y = 1: loss 800
  EXPECT_EQ(l.count, 6);
  EXPECT_NEAR(l.sum, ref, 1e-12);
  EXPECT_EQ(grad.data[4], 0.0);
  EXPECT_EQ(grad.data[5], -1.0);
}

TEST(SigmoidBce, CountAndBadInput) {
  Tensor<double> logits({3});
  const std::vector<double> targets = {0, 1, 0.5}, zeros = {0, 0, 0};
  const LossSum none = sigmoid_binary_cross_entropy(logits, targets, zeros, nullptr, 1.0);
  EXPECT_EQ(none.sum, 0.0);
  EXPECT_EQ(none.count, 0);
  const std::vector<double> bad = {0, 1.5, 0};
  expect_throw_with<Error>([&] { sigmoid_binary_cross_entropy(logits, bad, {}, nullptr, 1.0); },
                           {"sigmoid_binary_cross_entropy", "targets[1] = 1.5", "[0, 1]"});
  const std::vector<double> two = {0, 1};
  expect_throw_with<ShapeError>([&] { sigmoid_binary_cross_entropy(logits, two, {}, nullptr, 1.0); },
                                {"sigmoid_binary_cross_entropy: targets", "[3]", "got [2]"});
  expect_throw_with<ShapeError>([&] { sigmoid_binary_cross_entropy(logits, targets, two, nullptr, 1.0); },
                                {"sigmoid_binary_cross_entropy: mask", "[3]", "got [2]"});
}

// ---------------------------------------------------------------------------------------------
// Softmax helpers

TEST(Softmax, RowsAndInPlace) {
  Tensor<double> logits({2, 3});
  logits.data = {1, 2, 3, 1000, 0, -1000};
  Tensor<double> p, lp;
  softmax(logits, p);
  log_softmax(logits, lp);
  ASSERT_EQ(p.shape, logits.shape);
  for (int64_t r = 0; r < 2; ++r) {
    double s = 0;
    for (int64_t j = 0; j < 3; ++j) {
      s += p.data[size_t(r * 3 + j)];
      EXPECT_NEAR(std::exp(lp.data[size_t(r * 3 + j)]), p.data[size_t(r * 3 + j)], 1e-15);
    }
    EXPECT_NEAR(s, 1.0, 1e-15);
  }
  EXPECT_NEAR(lp.data[3], 0.0, 1e-15);
  EXPECT_NEAR(lp.data[5], -2000.0, 1e-12);

  std::vector<float> row = {1, 2, 3};
  softmax<float>(row, row);
  EXPECT_NEAR(row[2], 1.0 / (1.0 + std::exp(-1.0) + std::exp(-2.0)), 1e-7);
  std::vector<float> shorter(2);
  expect_throw_with<ShapeError>([&] { log_softmax<float>(row, shorter); }, {"log_softmax: out", "[3]", "got [2]"});
}

// ---------------------------------------------------------------------------------------------
// The layers chained (ids -> embedding -> linear -> cross-entropy), checked end to end, which
// also exercises each backward consuming the previous one's gradient.

TEST(Layers, ChainedGradCheck) {
  Rng rng(8);
  const int64_t vocab = 6, width = 3, classes = 4;
  Tensor<double> emb = randn({vocab, width}, rng), w = randn({classes, width}, rng), b = randn({classes}, rng);
  const std::vector<int32_t> ids = {2, 5, 2, 0, 1, 5};  // T = 3, B = 2
  const std::vector<int32_t> targets = {1, 3, -1, 0, 2, 2};
  const std::vector<double> mask = {1, 1, 1, 1, 0, 1};
  Tensor<double> x, y, dy;
  auto forward = [&](Tensor<double>* grad) {
    embedding_forward(emb, std::span<const int32_t>(ids), x);
    x.shape = {3, 2, width};
    linear_forward(w, b, x, y);
    return softmax_cross_entropy(y, targets, mask, grad, 0.25);
  };
  auto loss = [&] { return 0.25 * forward(nullptr).sum; };

  forward(&dy);
  Tensor<double> gemb({vocab, width}), gw({classes, width}), gb({classes}), dx;
  linear_backward(w, x, dy, gw, &gb, &dx);
  embedding_backward(std::span<const int32_t>(ids), dx, gemb);
  EXPECT_GRADCHECK(loss, {{"embedding", &emb, &gemb}, {"weight", &w, &gw}, {"bias", &b, &gb}});
}

// ---------------------------------------------------------------------------------------------
// float32 runs the same code path as float64 and agrees to float precision.

TEST(Layers, FloatMatchesDouble) {
  Rng rng(9);
  const Tensor<double> w = randn({5, 4}, rng), b = randn({5}, rng), x = randn({3, 2, 4}, rng);
  const Tensor<double> dy = randn({3, 2, 5}, rng);
  Tensor<double> y64, gw64({5, 4}), gb64({5}), gx64;
  Tensor<float> y32, gw32({5, 4}), gb32({5}), gx32;
  linear_forward(w, b, x, y64);
  linear_forward(tensor_cast<float>(w), tensor_cast<float>(b), tensor_cast<float>(x), y32);
  linear_backward(w, x, dy, gw64, &gb64, &gx64);
  linear_backward(tensor_cast<float>(w), tensor_cast<float>(x), tensor_cast<float>(dy), gw32, &gb32, &gx32);
  auto expect_close = [](const Tensor<double>& a, const Tensor<float>& f, const char* what) {
    ASSERT_EQ(a.shape, f.shape) << what;
    for (size_t i = 0; i < a.data.size(); ++i)
      EXPECT_NEAR(a.data[i], double(f.data[i]), 2e-5) << what << "[" << i << "]";
  };
  expect_close(y64, y32, "y");
  expect_close(gw64, gw32, "grad_weight");
  expect_close(gb64, gb32, "grad_bias");
  expect_close(gx64, gx32, "grad_x");

  const std::vector<int32_t> ids = {3, 1, 3};
  const Tensor<double> emb = randn({4, 5}, rng), gout = randn({3, 5}, rng);
  Tensor<double> e64, ge64({4, 5});
  Tensor<float> e32, ge32({4, 5});
  embedding_forward(emb, std::span<const int32_t>(ids), e64);
  embedding_forward(tensor_cast<float>(emb), std::span<const int32_t>(ids), e32);
  embedding_backward(std::span<const int32_t>(ids), gout, ge64);
  embedding_backward(std::span<const int32_t>(ids), tensor_cast<float>(gout), ge32);
  expect_close(e64, e32, "embedding out");
  expect_close(ge64, ge32, "embedding grad");

  const CeCase c = ce_case();
  const std::vector<float> mask32(c.mask.begin(), c.mask.end());
  Tensor<double> g64;
  Tensor<float> g32;
  const LossSum l64 = softmax_cross_entropy(c.logits, c.targets, c.mask, &g64, 0.5);
  const LossSum l32 = softmax_cross_entropy(tensor_cast<float>(c.logits), c.targets, mask32, &g32, 0.5);
  EXPECT_EQ(l64.count, l32.count);
  EXPECT_LT(rel_diff(l64.sum, l32.sum), 1e-6);
  expect_close(g64, g32, "ce grad");

  const Tensor<double> bl = randn({7}, rng, 3.0);
  std::vector<double> bt(7);
  for (double& t : bt) t = rng.uniform();
  const std::vector<float> bt32(bt.begin(), bt.end());
  Tensor<double> bg64;
  Tensor<float> bg32;
  const LossSum b64 = sigmoid_binary_cross_entropy(bl, bt, {}, &bg64, 1.0);
  const LossSum b32 = sigmoid_binary_cross_entropy(tensor_cast<float>(bl), bt32, {}, &bg32, 1.0);
  EXPECT_EQ(b64.count, b32.count);
  EXPECT_LT(rel_diff(b64.sum, b32.sum), 1e-6);
  expect_close(bg64, bg32, "bce grad");
}

// ---------------------------------------------------------------------------------------------
// PyTorch goldens (tools/gen_loss_golden.py, tests/golden/loss/README.md).

nlohmann::json read_golden(const std::string& name) {
  const std::string path = std::string(RECUR_GOLDEN_DIR) + "/loss/" + name;
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot open " + path);
  return nlohmann::json::parse(in);
}

void expect_golden(const LossSum& got, const Tensor<double>& grad, const nlohmann::json& g) {
  EXPECT_LT(rel_diff(got.sum, g.at("sum").get<double>()), 1e-12) << got.sum << " vs " << g.at("sum").get<double>();
  EXPECT_EQ(got.count, g.at("count").get<int64_t>());
  const auto want = g.at("grad_logits").get<std::vector<double>>();
  ASSERT_EQ(grad.data.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i)
    EXPECT_LE(std::abs(grad.data[i] - want[i]), 1e-12 * std::max(std::abs(grad.data[i]), std::abs(want[i])))
        << "grad_logits[" << i << "]: " << grad.data[i] << " vs " << want[i];
}

TEST(Golden, CrossEntropyMatchesPyTorch) {
  const nlohmann::json g = read_golden("cross_entropy.json");
  Tensor<double> logits({g.at("n").get<int64_t>(), g.at("v").get<int64_t>()});
  logits.data = g.at("logits").get<std::vector<double>>();
  const auto targets = g.at("targets").get<std::vector<int32_t>>();
  const auto mask = g.at("mask").get<std::vector<double>>();
  Tensor<double> grad;
  const LossSum l = softmax_cross_entropy(logits, targets, mask, &grad, g.at("grad_scale").get<double>());
  expect_golden(l, grad, g);
}

TEST(Golden, BceWithLogitsMatchesPyTorch) {
  const nlohmann::json g = read_golden("bce_with_logits.json");
  Tensor<double> logits({g.at("n").get<int64_t>()});
  logits.data = g.at("logits").get<std::vector<double>>();
  const auto targets = g.at("targets").get<std::vector<double>>();
  const auto mask = g.at("mask").get<std::vector<double>>();
  Tensor<double> grad;
  const LossSum l = sigmoid_binary_cross_entropy(logits, targets, mask, &grad, g.at("grad_scale").get<double>());
  expect_golden(l, grad, g);
}

}  // namespace
}  // namespace recur
