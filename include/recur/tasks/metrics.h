// recur/tasks/metrics.h - task metrics: CoNLL entity precision/recall/F1 (the conlleval script's
// chunk rules), token accuracy, classification accuracy / macro-F1 / confusion matrix, and
// corpus BLEU / exact match for generated sequences.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace recur {

// A chunk (entity) as conlleval sees it: type and token span [begin, end).
struct Chunk {
  std::string type;
  int64_t begin = 0, end = 0;
  bool operator==(const Chunk&) const = default;
};

// The chunks of one sentence's tags by conlleval's startOfChunk / endOfChunk rules, which read
// IOB1 (I- starts a chunk after O or another type; B- only between two same-type chunks), BIO
// (IOB2: B- starts every chunk) and IOBES alike, so either scheme is scored correctly without
// being declared. "O" and tags without a prefix other than O count as outside / single chunks
// as conlleval does ("-X-" / "[...]" markers are not used).
std::vector<Chunk> conll_chunks(const std::vector<std::string>& tags);

struct ChunkScores {
  int64_t correct = 0, predicted = 0, gold = 0;  // chunks
  double precision() const { return predicted ? double(correct) / double(predicted) : 0.0; }
  double recall() const { return gold ? double(correct) / double(gold) : 0.0; }
  double f1() const {
    const double p = precision(), r = recall();
    return p + r > 0 ? 2 * p * r / (p + r) : 0.0;
  }
};

struct TagEval {
  ChunkScores all;
  std::map<std::string, ChunkScores> by_type;
  int64_t tokens = 0, tokens_correct = 0;
  double accuracy() const { return tokens ? double(tokens_correct) / double(tokens) : 0.0; }
  // Adds one sentence; gold and predicted must have the same length (Error otherwise).
  void add(const std::vector<std::string>& gold, const std::vector<std::string>& predicted);
  std::string report() const;  // conlleval-style lines
};

struct ClassEval {
  std::vector<std::string> labels;          // C
  std::vector<std::vector<int64_t>> confusion;  // [gold][predicted], C x C
  explicit ClassEval(std::vector<std::string> labels);
  void add(int64_t gold, int64_t predicted);
  int64_t total() const;
  double accuracy() const;
  double macro_f1() const;  // mean over classes of per-class F1 (a class with no gold and no predictions counts 0)
  std::string report() const;  // accuracy, macro-F1, per-class P/R/F1, confusion matrix
};

// sacreBLEU's default tokenisation "13a" (mteval-v13a.pl as sacrebleu 2.x's Tokenizer13a writes
// it): "<skipped>" removed, "-\n" joined, "\n" a space, &quot; &amp; &lt; &gt; decoded; then a
// space around each of { | } ~ [ \ ] ^ _ ` ! " # $ % & ( ) * + : ; < = > ? @ /, around "." and
// "," unless between digits (each side checked in its own pass, as the regexes do), and after
// a "-" that follows a digit; split at whitespace as Python's str.split() (Unicode spaces:
// U+00A0, U+202F, U+3000, ...). Apostrophes and other hyphens stay inside words.
std::vector<std::string> tokenize_13a(std::string_view line);

struct BleuOptions {
  // Lowercase hypotheses and references first (sacreBLEU's -lc), ASCII letters only: the
  // lowercasing recur applies to a model's text (split_words), so a model that lowercases is
  // scored against references lowercased the same way.
  bool lowercase = false;
  // A hypothesis token that contains this string never matches (recur writes an output <unk> as
  // it), so an unknown word cannot score against anything; "" for none.
  std::string unknown;
};

// Corpus BLEU-4 as sacreBLEU's corpus_bleu with its defaults (tokenize='13a', smooth_method='exp',
// no effective order), with any number of references per hypothesis: n-gram counts clipped by
// their largest count in any one reference, per segment the reference length closest to the
// hypothesis's (the shorter on a tie), brevity penalty exp(1 - r/c) when c < r; a precision
// with no match becomes 1 / (2^k * total) for the k-th such order; 0 when an order has no
// hypothesis n-grams at all. Oracle: tools/gen_bleu_golden.py (tests/golden/bleu/).
struct CorpusBleu {
  BleuOptions options;
  int64_t correct[4] = {0, 0, 0, 0}, total[4] = {0, 0, 0, 0};  // matched / hypothesis n-grams, n = 1..4
  int64_t sys_len = 0, ref_len = 0;                           // hypothesis and closest-reference tokens
  int64_t segments = 0, references = 0, exact = 0;
  explicit CorpusBleu(BleuOptions o = {}) : options(std::move(o)) {}
  // One segment: the hypothesis text and all its references' texts (at least one).
  void add(std::string_view hypothesis, const std::vector<std::string>& references);
  double bleu() const;  // in [0, 1] (sacreBLEU's score / 100)
  // Segments whose 13a tokens equal those of one of their references (no unknown word).
  double exact_match() const { return segments ? double(exact) / double(segments) : 0.0; }
};

}  // namespace recur
