// recur/tasks/lm_text.h - using a trained language model on text: generate, score, evaluate.
//
// Framing. Every model reads a line the way it saw lines in training:
//   words (stream or lines) and chars in lines mode: the line is preceded by <eos> (in stream
//     data every line follows the previous line's <eos>; in lines mode <eos> is the start
//     symbol) and ends with <eos>.
//   chars in stream mode: the line is preceded by '\n' and ends with '\n' (the previous and
//     own line break); if the vocabulary has no '\n', by <eos> as above.
// Scoring counts the line-end token as one of the sentence's tokens (as SRILM counts </s>).
//
// Out-of-vocabulary input (a prime or a scored sentence) is read as <unk>, which every
// vocabulary has (id 0), and counted, so it is reported rather than a crash.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "recur/train/checkpoint.h"
#include "recur/core/loss.h"
#include "recur/core/random.h"
#include "recur/model/sampler.h"

namespace recur {

class PreparedCorpus;  // data/prepared.h

struct GenerateOptions {
  SampleOptions sample;
  int64_t length = 500;  // tokens to generate; in lines mode and for word models a cap (they stop at <eos>)
  std::string prime;     // text fed first and printed as the start of the sample
};

// What generate_text did with the prime.
struct PrimeInfo {
  int64_t tokens = 0;
  std::vector<std::string> unknown;  // distinct prime tokens absent from the vocabulary (fed as <unk>)
};

// Generates one sample from a zero state and calls emit(piece) as text is produced (the prime
// first, then each token; word models put a space between words). Stream char models emit
// exactly `length` tokens; other models stop after <eos> (not emitted) or `length` tokens.
// Throws Error for invalid options, FormatError for a prime that is not valid UTF-8.
PrimeInfo generate_text(const LmModel& model, const GenerateOptions& opts, Rng& rng,
                        const std::function<void(std::string_view)>& emit);

struct TokenScore {
  std::string token;  // as written in the input ("<eos>" for the line end)
  double logprob = 0;  // natural log of p(token | preceding tokens)
  bool oov = false;    // not in the vocabulary, scored as <unk>
};

struct SentenceScore {
  double logprob = 0;  // natural log, sum over tokens
  int64_t tokens = 0;  // scored tokens, line end included
  int64_t oov = 0;
  std::vector<TokenScore> per_token;  // filled when asked for
  double log10prob() const;
  double perplexity() const;  // exp(-logprob / tokens)
};

// Scores one line (no '\n' inside; a trailing '\r' is dropped). Throws FormatError naming
// `origin` for invalid UTF-8 in a char model's input.
SentenceScore score_sentence(const LmModel& model, std::string_view sentence, bool per_token,
                             std::string_view origin = "<sentence>");

struct EvalOptions {
  int64_t batch = 10;    // B; stream mode: parallel streams (clamped to the data), lines: examples per batch
  int64_t seq_len = 64;  // T, stream mode chunk length (the state is carried, so it only affects speed)
};

struct EvalResult {
  LossSum loss;  // summed natural-log cross-entropy over scored tokens
  OovStats oov;
  int64_t batch = 0;   // B actually used
  // What the model read, behind the gap between oov.tokens and loss.count (count_explanation).
  bool lines_mode = false;
  int64_t ids = 0;         // tokens the model read, with the <eos> ending each line (word streams)
  int64_t lines = 0;       // lines mode: examples (lines with a token)
  int64_t stream_len = 0;  // stream mode: tokens per stream (ids / batch, the rest left out)
  double mean() const { return loss.mean(); }
  double perplexity() const;
  double bits_per_token() const;  // bits per character for a char model
};

// Why loss.count (scored) differs from oov.tokens, with the numbers: `recur eval`'s "counts" line.
// Stream mode: the text is cut into `batch` streams of `stream_len` (the tokens left over at the end
// are not read) and the first token of each stream has no prediction; word streams read an <eos>
// per line. Lines mode: each line's tokens and the <eos> ending it are predicted.
std::string count_explanation(const EvalResult& r);

// Mean loss over `text` read in the model's mode (stream: one sequence cut into `batch`
// streams with the state carried; lines: one example per line). Throws Error if the text is
// too short to form one batch.
EvalResult evaluate_text(const LmModel& model, std::string_view text, const EvalOptions& opts,
                         std::string_view origin = "<text>");
// The same over a prepared corpus (data/prepared.h), read a batch window at a time: the numbers
// evaluate_text gives on the text it was prepared from. Its vocabulary must be the model's (a
// corpus prepared with `recur prepare --vocab` of the training corpus) and its level and mode
// the model's; anything else is an Error naming the corpus and what differs.
EvalResult evaluate_prepared(const LmModel& model, const PreparedCorpus& corpus, const EvalOptions& opts);

}  // namespace recur
