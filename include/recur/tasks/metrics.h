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

// Corpus BLEU-4 (Papineni et al. 2002): clipped n-gram precisions summed over the corpus, geometric
// mean of n = 1..4, brevity penalty exp(1 - r/c) when c < r; 0 when any precision is 0 (no
// smoothing, like multi-bleu.perl). One reference per hypothesis; tokens already split.
struct BleuEval {
  int64_t matches[4] = {0, 0, 0, 0}, totals[4] = {0, 0, 0, 0};
  int64_t hyp_len = 0, ref_len = 0;
  int64_t sentences = 0, exact = 0;
  void add(const std::vector<std::string>& reference, const std::vector<std::string>& hypothesis);
  double bleu() const;  // in [0, 1]
  double exact_match() const { return sentences ? double(exact) / double(sentences) : 0.0; }
};

}  // namespace recur
