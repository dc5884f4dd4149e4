// recur/model/crf.h - a linear-chain conditional random field over per-token emission scores
// (Lafferty et al. 2001; the tagger output of Lample et al. 2016): its negative log-likelihood
// with the gradient from forward-backward marginals, and Viterbi decoding.
//
// Shapes use the glossary in tensor.h: T steps, B batch, C tags. For a sentence y_0 .. y_{L-1}
// of length L the score is
//   s(y) = start[y_0] + sum_t emissions[t, y_t] + sum_{t>0} transitions[y_{t-1}, y_t] + end[y_{L-1}]
// and the loss is log Z - s(gold), Z summing exp(s) over every allowed path (forward algorithm,
// log-sum-exp with the maximum subtracted, in double whatever T is).
//
// Constraints (tag schemes, tasks/tag_scheme.h) are allowed-masks: a forbidden transition, start
// or end scores -inf in the loss and in decoding alike, so a forbidden path has probability zero
// and is never decoded. They are not parameters: the scores of forbidden cells still exist (and
// get zero gradient), so a model file does not depend on the scheme's rules.
//
// The loss is returned as LossSum (core/loss.h) with count = the tagged tokens, so sum / count is
// the per-token loss and a batch's mean uses the same divisor as softmax tagging.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "recur/core/loss.h"
#include "recur/core/tensor.h"

namespace recur {

// Which transitions a scheme allows; empty vectors allow everything.
struct CrfConstraints {
  std::vector<uint8_t> transitions;  // [C, C]: 1 when tag j may follow tag i (row i, column j)
  std::vector<uint8_t> start, end;   // [C]: 1 when a sentence may start / end with the tag
  bool empty() const { return transitions.empty() && start.empty() && end.empty(); }
};

// The CRF's parameters as the model graph keeps them (model.h layer kind crf).
template <typename T>
struct CrfParamsRef {
  const Tensor<T>& transitions;  // [C, C]: score of tag j following tag i
  const Tensor<T>& start_end;    // [2, C]: row 0 the start score of a tag, row 1 its end score
};

// Gradients to accumulate (+=) into; nullptr members are skipped.
template <typename T>
struct CrfGrads {
  Tensor<T>* emissions = nullptr;    // [T, B, C], resized and overwritten (not accumulated), like loss.h
  Tensor<T>* transitions = nullptr;  // [C, C], accumulated
  Tensor<T>* start_end = nullptr;    // [2, C], accumulated
};

// Negative log-likelihood of tags, summed over the batch.
//   emissions [T, B, C]; lengths [B] with 0 <= lengths[b] <= T (0: the sentence is skipped);
//   tags [T * B] time-major, tags[t * B + b] in [0, C) for t < lengths[b] (positions beyond are
//   ignored). Gradients are grad_scale * d(sum)/d(.), emissions' zero beyond each length.
// Throws ShapeError on sizes, Error naming the sentence when a tag is out of range or the gold
// path is forbidden by the constraints (its loss would be infinite).
template <typename T>
LossSum crf_nll(const Tensor<T>& emissions, std::span<const int64_t> lengths, std::span<const int32_t> tags,
                const CrfParamsRef<T>& params, const CrfConstraints& constraints, const CrfGrads<T>& grads,
                double grad_scale);

// The best allowed path of each sentence (Viterbi): [B][lengths[b]]. Ties go to the lower tag.
template <typename T>
std::vector<std::vector<int32_t>> crf_viterbi(const Tensor<T>& emissions, std::span<const int64_t> lengths,
                                              const CrfParamsRef<T>& params, const CrfConstraints& constraints);

// log Z of one sentence alone (tests and diagnostics): emissions [L, C].
template <typename T>
double crf_log_partition(const Tensor<T>& emissions, const CrfParamsRef<T>& params, const CrfConstraints& constraints);

}  // namespace recur
