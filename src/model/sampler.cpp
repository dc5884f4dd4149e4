#include "recur/model/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "recur/core/error.h"

namespace recur {

void SampleOptions::validate() const {
  // !(x > 0) rather than x <= 0 so that NaN is rejected too.
  if (!(temperature > 0) || !std::isfinite(temperature))
    throw Error("sampling option temperature must be finite and > 0, got " + std::to_string(temperature));
  if (top_k < 0) throw Error("sampling option top_k must be >= 0 (0 = off), got " + std::to_string(top_k));
  if (!(top_p > 0 && top_p <= 1))
    throw Error("sampling option top_p must be in (0, 1] (1 = off), got " + std::to_string(top_p));
}

namespace {

// Index of the largest finite-or--inf logit, lowest id on ties; checks every value.
template <typename T>
int32_t checked_argmax(std::span<const T> logits) {
  if (logits.empty()) throw Error("sample_token: logits are empty");
  if (logits.size() > size_t(std::numeric_limits<int32_t>::max()))
    throw Error("sample_token: vocabulary of " + std::to_string(logits.size()) + " does not fit a token id");
  int32_t best = -1;
  for (size_t i = 0; i < logits.size(); ++i) {
    const T v = logits[i];
    if (std::isnan(v) || v == std::numeric_limits<T>::infinity())
      throw Error("sample_token: logits[" + std::to_string(i) + "] is " + (std::isnan(v) ? "nan" : "+inf"));
    if (v == -std::numeric_limits<T>::infinity()) continue;
    if (best < 0 || v > logits[size_t(best)]) best = int32_t(i);  // strict >: lowest id wins ties
  }
  if (best < 0) throw Error("sample_token: every logit is -inf, no token can be drawn");
  return best;
}

template <typename T>
std::span<const double> distribution(std::span<const T> logits, const SampleOptions& opts, SamplerScratch& sc) {
  opts.validate();
  const int32_t best = checked_argmax(logits);
  const size_t V = logits.size();
  auto& probs = sc.probs;
  probs.assign(V, 0.0);  // no allocation once capacity has reached V
  if (opts.argmax) {
    probs[size_t(best)] = 1.0;
    return probs;
  }

  // Softmax of (logit - max) / temperature: subtracting before dividing keeps every exponent
  // <= 0 even for a tiny temperature, where logit / temperature alone could overflow to inf.
  // -inf logits give exp(-inf) = 0 and drop out of the candidate list.
  const double top = double(logits[size_t(best)]);
  auto& order = sc.order;
  order.clear();
  for (size_t i = 0; i < V; ++i) {
    const double e = std::exp((double(logits[i]) - top) / opts.temperature);
    probs[i] = e;
    if (e > 0) order.push_back(int32_t(i));
  }
  // More probable first, lower id first among equals: a strict weak order with no ties, so
  // nth_element / sort give the same kept set on every platform.
  const auto before = [&probs](int32_t a, int32_t b) {
    return probs[size_t(a)] != probs[size_t(b)] ? probs[size_t(a)] > probs[size_t(b)] : a < b;
  };
  size_t kept = order.size();

  if (opts.top_k > 0 && size_t(opts.top_k) < kept) {
    kept = size_t(opts.top_k);
    std::nth_element(order.begin(), order.begin() + std::ptrdiff_t(kept), order.end(), before);
  }
  if (opts.top_p < 1) {
    std::sort(order.begin(), order.begin() + std::ptrdiff_t(kept), before);
    double mass = 0;  // of the top-k survivors, so p applies to the renormalised distribution
    for (size_t j = 0; j < kept; ++j) mass += probs[size_t(order[j])];
    // The slack absorbs rounding of the logits themselves (a float log(0.3) is off by ~1e-7
    // relative), so a hand-made distribution hits its boundary exactly: with probabilities
    // {0.5, 0.3, 0.2} and p = 0.8 the set is {0.5, 0.3}, as on paper.
    const double slack = 16 * double(std::numeric_limits<T>::epsilon());
    const double target = (opts.top_p - slack) * mass;
    double cum = 0;
    size_t j = 0;
    while (j < kept) {
      cum += probs[size_t(order[j++])];
      if (cum >= target) break;
    }
    kept = j;  // >= 1: the loop body runs at least once
  }
  for (size_t j = kept; j < order.size(); ++j) probs[size_t(order[j])] = 0;

  // Renormalise in id order (a fixed summation order, so the result does not depend on how
  // the candidates happened to be permuted).
  double total = 0;
  for (const double p : probs) total += p;
  for (double& p : probs) p /= total;
  return probs;
}

template <typename T>
int32_t draw(std::span<const T> logits, const SampleOptions& opts, Rng& rng, SamplerScratch& sc) {
  if (opts.argmax) {
    opts.validate();
    return checked_argmax(logits);  // no draw: greedy decoding leaves the generator untouched
  }
  const std::span<const double> probs = distribution(logits, opts, sc);
  // Inverse CDF in id order with exactly one uniform. u < 1, but the cumulative sum may end a
  // rounding error short of 1, so the fallback is the last token that has any probability.
  const double u = rng.uniform();
  double cum = 0;
  int32_t last = -1;
  for (size_t i = 0; i < probs.size(); ++i) {
    if (probs[i] <= 0) continue;
    last = int32_t(i);
    cum += probs[i];
    if (u < cum) return last;
  }
  return last;  // >= 0: distribution() guarantees at least one positive probability
}

}  // namespace

std::span<const double> sample_distribution(std::span<const float> logits, const SampleOptions& opts,
                                            SamplerScratch& scratch) {
  return distribution(logits, opts, scratch);
}
std::span<const double> sample_distribution(std::span<const double> logits, const SampleOptions& opts,
                                            SamplerScratch& scratch) {
  return distribution(logits, opts, scratch);
}

int32_t sample_token(std::span<const float> logits, const SampleOptions& opts, Rng& rng, SamplerScratch& scratch) {
  return draw(logits, opts, rng, scratch);
}
int32_t sample_token(std::span<const double> logits, const SampleOptions& opts, Rng& rng,
                     SamplerScratch& scratch) {
  return draw(logits, opts, rng, scratch);
}

}  // namespace recur
