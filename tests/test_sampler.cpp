// Token sampling: exact supports of top-k / top-p on hand-made distributions, the draw
// discipline (one uniform per call), and empirical frequencies against the distribution.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "recur/core/error.h"
#include "recur/model/sampler.h"

namespace recur {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// Logits whose softmax is exactly `probs` on paper (log p, shifted so it is not trivially 0-based).
template <typename T>
std::vector<T> logits_of(const std::vector<double>& probs) {
  std::vector<T> out;
  for (const double p : probs) out.push_back(p > 0 ? T(std::log(p) + 3.0) : -std::numeric_limits<T>::infinity());
  return out;
}

// Ids with non-zero probability in the distribution sample_token would draw from.
template <typename T>
std::vector<int32_t> support(const std::vector<T>& logits, const SampleOptions& opts) {
  SamplerScratch sc;
  const auto probs = sample_distribution(std::span<const T>(logits), opts, sc);
  std::vector<int32_t> ids;
  for (size_t i = 0; i < probs.size(); ++i)
    if (probs[i] > 0) ids.push_back(int32_t(i));
  return ids;
}

SampleOptions top_p(double p) {
  SampleOptions o;
  o.top_p = p;
  return o;
}
SampleOptions top_k(int64_t k) {
  SampleOptions o;
  o.top_k = k;
  return o;
}

TEST(Sampler, ArgmaxIgnoresRandomnessAndBreaksTiesByLowestId) {
  const std::vector<float> logits{0.5f, 2.0f, -1.0f, 2.0f, 1.9f};
  SampleOptions o;
  o.argmax = true;
  o.temperature = 7.0;  // ignored
  Rng rng(1);
  SamplerScratch sc;
  const auto state = rng.state();
  for (int i = 0; i < 10; ++i) EXPECT_EQ(sample_token(logits, o, rng, sc), 1);
  EXPECT_EQ(rng.state(), state) << "argmax must not consume random numbers";
}

TEST(Sampler, TopKOneIsArgmax) {
  Rng gen(5);
  Rng rng(6);
  SamplerScratch sc;
  for (int trial = 0; trial < 200; ++trial) {
    std::vector<float> logits(37);
    for (auto& v : logits) v = float(gen.normal() * 3);
    if (trial % 3 == 0) logits[size_t(trial) % 37] = kNegInf;
    if (trial % 5 == 0) logits[4] = logits[30] = 50.0f;  // a tie: the lower id wins
    SampleOptions greedy;
    greedy.argmax = true;
    const int32_t expect = sample_token(logits, greedy, rng, sc);
    SampleOptions k1 = top_k(1);
    k1.temperature = 0.7;
    EXPECT_EQ(sample_token(logits, k1, rng, sc), expect);
    if (trial % 5 == 0) {
      EXPECT_EQ(expect, 4);
    }
  }
}

TEST(Sampler, TopKKeepsTheKLargest) {
  const std::vector<float> logits{1.0f, 4.0f, 3.0f, kNegInf, 2.0f, 3.0f, 0.0f};
  EXPECT_EQ(support(logits, top_k(1)), (std::vector<int32_t>{1}));
  EXPECT_EQ(support(logits, top_k(2)), (std::vector<int32_t>{1, 2}));  // 2 and 5 tie: lower id
  EXPECT_EQ(support(logits, top_k(3)), (std::vector<int32_t>{1, 2, 5}));
  EXPECT_EQ(support(logits, top_k(4)), (std::vector<int32_t>{1, 2, 4, 5}));
  // k beyond the tokens that have any probability: the -inf token stays out.
  EXPECT_EQ(support(logits, top_k(100)), (std::vector<int32_t>{0, 1, 2, 4, 5, 6}));
  EXPECT_EQ(support(logits, top_k(0)), support(logits, top_k(100)));

  // The kept probabilities are the renormalised softmax of the survivors.
  SamplerScratch sc;
  const auto probs = sample_distribution(std::span<const float>(logits), top_k(3), sc);
  const double e4 = std::exp(4.0), e3 = std::exp(3.0);
  EXPECT_NEAR(probs[1], e4 / (e4 + 2 * e3), 1e-12);
  EXPECT_NEAR(probs[2], e3 / (e4 + 2 * e3), 1e-12);
  EXPECT_NEAR(probs[5], e3 / (e4 + 2 * e3), 1e-12);
}

template <typename T>
void check_top_p_supports() {
  // Sorted by probability: 3 (0.4), 0 (0.3), 4 (0.2), 1 (0.06), 2 (0.04).
  const auto logits = logits_of<T>({0.3, 0.06, 0.04, 0.4, 0.2});
  EXPECT_EQ(support(logits, top_p(0.01)), (std::vector<int32_t>{3}));  // always at least one
  EXPECT_EQ(support(logits, top_p(0.4)), (std::vector<int32_t>{3}));   // boundary: 0.4 >= 0.4
  EXPECT_EQ(support(logits, top_p(0.4001)), (std::vector<int32_t>{0, 3}));
  EXPECT_EQ(support(logits, top_p(0.7)), (std::vector<int32_t>{0, 3}));  // boundary: 0.7 >= 0.7
  EXPECT_EQ(support(logits, top_p(0.7001)), (std::vector<int32_t>{0, 3, 4}));
  EXPECT_EQ(support(logits, top_p(0.9)), (std::vector<int32_t>{0, 3, 4}));  // boundary
  EXPECT_EQ(support(logits, top_p(0.95)), (std::vector<int32_t>{0, 1, 3, 4}));
  EXPECT_EQ(support(logits, top_p(0.96)), (std::vector<int32_t>{0, 1, 3, 4}));  // boundary
  EXPECT_EQ(support(logits, top_p(0.9601)), (std::vector<int32_t>{0, 1, 2, 3, 4}));
  EXPECT_EQ(support(logits, top_p(1.0)), (std::vector<int32_t>{0, 1, 2, 3, 4}));

  // Renormalised over the nucleus.
  SamplerScratch sc;
  const auto probs = sample_distribution(std::span<const T>(logits), top_p(0.7), sc);
  EXPECT_NEAR(probs[3], 0.4 / 0.7, 1e-6);
  EXPECT_NEAR(probs[0], 0.3 / 0.7, 1e-6);
}

TEST(Sampler, TopPExactSupportFloat) { check_top_p_supports<float>(); }
TEST(Sampler, TopPExactSupportDouble) { check_top_p_supports<double>(); }

TEST(Sampler, TopPAppliesAfterTopK) {
  // Top-2 leaves {3: 0.4, 0: 0.3} renormalised to {4/7, 3/7}; p = 0.5 then keeps only 3,
  // whereas on the full distribution p = 0.5 would keep {3, 0}.
  const auto logits = logits_of<float>({0.3, 0.06, 0.04, 0.4, 0.2});
  SampleOptions o = top_k(2);
  o.top_p = 0.5;
  EXPECT_EQ(support(logits, o), (std::vector<int32_t>{3}));
  EXPECT_EQ(support(logits, top_p(0.5)), (std::vector<int32_t>{0, 3}));
}

TEST(Sampler, SmallTemperatureApproachesArgmax) {
  const std::vector<float> logits{1.0f, 1.5f, 0.2f, 1.4f};
  SamplerScratch sc;
  double prev = 0;
  for (const double temp : {10.0, 1.0, 0.3, 0.1, 0.03}) {
    SampleOptions o;
    o.temperature = temp;
    const double p_best = sample_distribution(std::span<const float>(logits), o, sc)[1];
    EXPECT_GT(p_best, prev) << "temperature " << temp;
    prev = p_best;
  }
  EXPECT_GT(prev, 0.96);
  SampleOptions cold;
  cold.temperature = 1e-6;  // (logit - max) / T underflows to -inf-like, no overflow
  Rng rng(3);
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(sample_token(logits, cold, rng, sc), 1);
  cold.temperature = 1e-300;
  EXPECT_EQ(sample_token(logits, cold, rng, sc), 1);
}

void expect_frequencies(const std::vector<float>& logits, const SampleOptions& opts, uint64_t seed) {
  SamplerScratch sc;
  const auto p = sample_distribution(std::span<const float>(logits), opts, sc);
  const std::vector<double> expected(p.begin(), p.end());
  const int n = 20000;
  std::vector<int> counts(logits.size(), 0);
  Rng rng(seed);
  for (int i = 0; i < n; ++i) ++counts[size_t(sample_token(logits, opts, rng, sc))];
  for (size_t i = 0; i < logits.size(); ++i) {
    if (expected[i] == 0) {
      EXPECT_EQ(counts[i], 0) << "token " << i << " is outside the support";
      continue;
    }
    const double sigma = std::sqrt(n * expected[i] * (1 - expected[i]));
    EXPECT_NEAR(counts[i], n * expected[i], 4 * sigma + 1e-9) << "token " << i;
  }
}

TEST(Sampler, EmpiricalFrequenciesMatchProbabilities) {
  const std::vector<float> logits{0.1f, 1.2f, -0.7f, kNegInf, 0.9f, 2.0f, -3.0f, 0.0f};
  SampleOptions plain;
  expect_frequencies(logits, plain, 11);
  // Check the expected distribution itself against a hand-computed softmax.
  SamplerScratch sc;
  const auto p = sample_distribution(std::span<const float>(logits), plain, sc);
  double z = 0;
  for (const float v : logits) z += std::exp(double(v));
  for (size_t i = 0; i < logits.size(); ++i) EXPECT_NEAR(p[i], std::exp(double(logits[i])) / z, 1e-12);

  SampleOptions warm;
  warm.temperature = 1.7;
  expect_frequencies(logits, warm, 12);
  SampleOptions filtered = top_k(5);
  filtered.top_p = 0.8;
  filtered.temperature = 0.8;
  expect_frequencies(logits, filtered, 13);
}

TEST(Sampler, DeterministicAndOneDrawPerCall) {
  const std::vector<float> logits{0.3f, -0.2f, 1.1f, 0.8f, kNegInf, 0.0f};
  SampleOptions o;
  o.top_k = 4;
  o.top_p = 0.9;
  SamplerScratch sc1, sc2;
  Rng a(42), b(42), shadow(42);
  for (int i = 0; i < 500; ++i) {
    ASSERT_EQ(sample_token(logits, o, a, sc1), sample_token(logits, o, b, sc2));
    shadow.uniform();
    ASSERT_EQ(a.state(), shadow.state()) << "call " << i << " did not draw exactly one uniform";
  }
  // Resuming from a saved state continues the same stream.
  Rng resumed(0);
  resumed.set_state(a.state());
  for (int i = 0; i < 50; ++i) ASSERT_EQ(sample_token(logits, o, a, sc1), sample_token(logits, o, resumed, sc2));
  // The scratch does not reallocate once sized.
  const double* probs_before = sc1.probs.data();
  const int32_t* order_before = sc1.order.data();
  for (int i = 0; i < 20; ++i) sample_token(logits, o, a, sc1);
  EXPECT_EQ(sc1.probs.data(), probs_before);
  EXPECT_EQ(sc1.order.data(), order_before);
}

TEST(Sampler, DoubleLogitsMatchFloat) {
  const std::vector<float> lf{0.3f, -0.2f, 1.1f, 0.8f, kNegInf, 0.0f};
  const std::vector<double> ld(lf.begin(), lf.end());
  SampleOptions o;
  o.temperature = 0.9;
  SamplerScratch sc;
  Rng a(9), b(9);
  for (int i = 0; i < 200; ++i) ASSERT_EQ(sample_token(lf, o, a, sc), sample_token(ld, o, b, sc));
}

TEST(Sampler, NegativeInfinityLogits) {
  const std::vector<float> logits{kNegInf, kNegInf, 0.0f, kNegInf, -1.0f};
  Rng rng(4);
  SamplerScratch sc;
  for (int i = 0; i < 2000; ++i) {
    const int32_t t = sample_token(logits, SampleOptions{}, rng, sc);
    ASSERT_TRUE(t == 2 || t == 4) << t;
  }
  const std::vector<float> one{kNegInf, 5.0f, kNegInf};
  EXPECT_EQ(sample_token(one, SampleOptions{}, rng, sc), 1);
  EXPECT_EQ(sample_token(one, top_p(0.001), rng, sc), 1);
  const std::vector<float> none{kNegInf, kNegInf};
  EXPECT_THROW(sample_token(none, SampleOptions{}, rng, sc), Error);
}

TEST(Sampler, ValidationErrorsNameTheOption) {
  const std::vector<float> logits{0.0f, 1.0f};
  Rng rng(0);
  SamplerScratch sc;
  const auto message = [&](const SampleOptions& o) -> std::string {
    try {
      sample_token(logits, o, rng, sc);
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  };
  for (const double t : {0.0, -1.0, std::nan(""), std::numeric_limits<double>::infinity()}) {
    SampleOptions o;
    o.temperature = t;
    EXPECT_NE(message(o).find("temperature must be finite and > 0"), std::string::npos) << message(o);
  }
  SampleOptions k;
  k.top_k = -1;
  EXPECT_NE(message(k).find("top_k must be >= 0"), std::string::npos) << message(k);
  for (const double p : {0.0, -0.1, 1.5, std::nan("")}) {
    SampleOptions o = top_p(p);
    EXPECT_NE(message(o).find("top_p must be in (0, 1]"), std::string::npos) << message(o);
  }
  SampleOptions greedy;
  greedy.argmax = true;
  greedy.top_p = 2;
  EXPECT_THROW(sample_token(logits, greedy, rng, sc), Error);  // argmax still validates

  const std::vector<float> empty;
  EXPECT_THROW(sample_token(empty, SampleOptions{}, rng, sc), Error);
  const std::vector<float> nan_logit{0.0f, std::nanf("")};
  try {
    sample_token(nan_logit, SampleOptions{}, rng, sc);
    ADD_FAILURE() << "nan logit accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("logits[1] is nan"), std::string::npos) << e.what();
  }
  const std::vector<float> pos_inf{std::numeric_limits<float>::infinity(), 0.0f};
  EXPECT_THROW(sample_token(pos_inf, SampleOptions{}, rng, sc), Error);
}

}  // namespace
}  // namespace recur
