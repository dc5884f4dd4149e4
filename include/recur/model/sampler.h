// recur/model/sampler.h - drawing the next token from one row of logits (text generation).
//
// The pipeline is the one of HF transformers' generate() and char-rnn's sample.lua, in this
// order:
//   1. temperature: s_i = logits_i / temperature
//   2. softmax (stable: the max is subtracted first; computed in double for float logits)
//   3. top-k: keep the k most probable tokens (0 = off)
//   4. top-p (nucleus): keep the smallest set of most probable tokens whose cumulative
//      probability is >= p; at least one token is always kept (1 = off)
//   5. renormalise what is left and draw once.
// Ties in probability are broken by the lowest token id everywhere (argmax, top-k, top-p), so
// the result never depends on the sort's stability.
//
// Logits of -inf mean "never this token" (masked vocabulary entries); NaN and +inf are errors.
//
// Randomness: a non-argmax call draws exactly one rng.uniform() (inverse CDF over the kept
// tokens in id order); an argmax call draws nothing. The generator's state after n tokens
// therefore depends only on the seed and n, never on the logits or the options, which makes
// generation reproducible and resumable from a checkpointed Rng::state() and keeps two runs
// that differ only in top-k/top-p on the same random stream.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "recur/core/random.h"

namespace recur {

struct SampleOptions {
  double temperature = 1.0;  // > 0; < 1 sharpens, > 1 flattens; argmax ignores it (but validates)
  int64_t top_k = 0;         // >= 0; 0 = off; k >= V is the same as off
  double top_p = 1.0;        // in (0, 1]; 1 = off
  bool argmax = false;       // greedy decoding: the most likely token, no draw

  // Throws Error naming the option and its allowed range.
  void validate() const;
};

// Reusable buffers; keep one per generating thread. After the first call with the largest
// vocabulary no call allocates.
struct SamplerScratch {
  std::vector<double> probs;     // [V] the distribution being filtered, then the final one
  std::vector<int32_t> order;    // [<= V] candidate ids, partially sorted by probability
};

// The distribution the next sample_token call with the same arguments draws from: [V],
// non-negative, summing to 1 (up to rounding), zero outside the kept set; one-hot for argmax.
// The span points into scratch.probs and is valid until scratch is next used.
// Throws Error on invalid options, empty logits, a NaN or +inf logit, or all logits -inf.
std::span<const double> sample_distribution(std::span<const float> logits, const SampleOptions& opts,
                                            SamplerScratch& scratch);
std::span<const double> sample_distribution(std::span<const double> logits, const SampleOptions& opts,
                                            SamplerScratch& scratch);

// One token id in [0, V). See the file comment for the draw discipline.
int32_t sample_token(std::span<const float> logits, const SampleOptions& opts, Rng& rng, SamplerScratch& scratch);
int32_t sample_token(std::span<const double> logits, const SampleOptions& opts, Rng& rng,
                     SamplerScratch& scratch);

}  // namespace recur
