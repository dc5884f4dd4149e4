// recur/model/decoding.h - greedy decoding, beam search and sampling over the graph's stepper
// (stepper.h): seq2seq translation and conditioned generation (tasks.h) run through these.
//
// Every function starts from a StepperStart (the rnn's initial state and context for B
// examples, from ModelStepper::start) and feeds `start` as the first token of every output.
//
// Greedy: all B rows advance together until each has produced `end` or max_length tokens; a row
// that has finished keeps being fed (its outputs are ignored), so every step is the same product
// over B rows as model_forward's and the logits are its bits.
//
// Beam search keeps, per example, the `beam` best live hypotheses by total log-probability
// (log-softmax of the logits, summed in double). All live hypotheses of all examples advance in
// one step of up to B*beam rows; after each step the state rows are reordered by a gather, and
// an example whose search is over leaves the batch. Per example and step:
//   - each live hypothesis proposes its `beam` most likely next tokens (ties: lower id first);
//   - the candidates are ranked by total log-probability (ties: earlier hypothesis, then the
//     order above), and the best are taken until `beam` live ones are kept;
//   - a candidate that is `end`, or any candidate at step max_length, is finished instead: its
//     score is logp / n^length_penalty with n its length counting `end` (length_penalty 0: the
//     raw logp), and it replaces the best finished one if strictly better; it does not count
//     towards `beam`.
//   - a live hypothesis that can no longer beat the best finished one leaves the search: with
//     length_penalty <= 0 when its logp is below the best score, otherwise when its
//     logp / (max_length + 1)^length_penalty is (log-probabilities only fall, and that is the
//     largest a finished score can be). Its candidates would rank below all that can still win,
//     so this changes no result, only the work; the search of an example stops when no live
//     hypothesis remains. (Before the stepper, only the length_penalty <= 0 case stopped early,
//     and only when the best live hypothesis was hopeless: the same results, more steps.)
// The result is the best finished hypothesis (without `end`).
#pragma once

#include <cstdint>
#include <vector>

#include "recur/core/random.h"
#include "recur/model/sampler.h"
#include "recur/model/stepper.h"

namespace recur {

struct DecodeOptions {
  int64_t beam = 1;              // 1 = greedy
  double length_penalty = 1.0;   // beam: score = log p / length^alpha (0 = raw log p)
  int64_t max_length = 50;       // output tokens, <eos> not counted
};

// The decoder's first input and the token that ends an output (tasks use <eos> for both).
struct DecodeTokens {
  int32_t start = 0;
  int32_t end = 0;
};

// Output ids (without `end`) per example, B of them. Error for max_length < 0.
std::vector<std::vector<int32_t>> greedy_decode(ModelStepper<float>& stepper, StepperStart<float> start,
                                                const DecodeTokens& tokens, int64_t max_length);
// Error for beam < 1 or max_length < 0.
std::vector<std::vector<int32_t>> beam_decode(ModelStepper<float>& stepper, StepperStart<float> start,
                                              const DecodeTokens& tokens, const DecodeOptions& opts);

struct SampleDecodeOptions {
  SampleOptions sample;
  int64_t max_length = 50;  // tokens drawn at most, `end` included
  int32_t banned = -1;      // a token never drawn (<unk>, never a training target), -1 = none
};
// One output for a batch of one: tokens drawn by sample_token until `end` (not included) or
// max_length draws.
std::vector<int32_t> sample_decode(ModelStepper<float>& stepper, StepperStart<float> start, const DecodeTokens& tokens,
                                   const SampleDecodeOptions& opts, Rng& rng);

}  // namespace recur
