// recur/data/task_data.h - reading the data files of the supervised tasks: CoNLL-style tagged
// sentences, labelled text tables (TSV/CSV), tab-separated sequence pairs, numeric feature
// sequences (CSV, one row per step, with labels or a target text) and pre-trained word
// vectors (GloVe / word2vec text).
//
// Every reader takes the whole file through read_text_file (UTF-8 checked) and reports a bad
// line as one FormatError "<path>:<line>: <what>; expected <what>". The CoNLL, table and pair
// readers also come as streams fed a run of lines at a time (`recur prepare --task`), which
// give the same records and messages.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "recur/core/tensor.h"
#include "recur/data/vocab.h"

namespace recur {

// ---- CoNLL: one "token ... tag" line per token, blank lines between sentences ----
struct ConllOptions {
  int64_t token_column = 0;  // 0-based
  int64_t tag_column = -1;   // 0-based; -1 = the last column
  bool require_tags = true;  // false: a file of tokens only (tagging new text) is accepted
};
struct TaggedSentence {
  std::vector<std::string> tokens;
  std::vector<std::string> tags;   // empty when the file has no tag column
  std::vector<std::string> lines;  // the original lines (for writing predictions back)
  // The lines that are not tokens (blank lines, "-DOCSTART-" lines) just before this sentence,
  // and on the last sentence those after it, verbatim: `recur tag` writes every input line.
  std::vector<std::string> before, after;
  int64_t line = 0;                // first line, 1-based
};
// "-DOCSTART-" lines separate documents and are not tokens (kept in before/after). Every token line must have as many
// columns as the file's first one (ragged columns are an error naming the line).
std::vector<TaggedSentence> read_conll(const std::string& path, const ConllOptions& opts);

// The same, a run of whole lines at a time: `recur prepare --task tag` reads a file of any size
// in bounded memory (TextBlockReader, text_data.h) and gets the sentences read_conll gives, with
// the same line numbers and messages. read_conll is this fed the whole text.
class ConllStream {
 public:
  ConllStream(std::string origin, const ConllOptions& opts);
  // The sentences these lines complete are appended to `out` (a sentence may span calls).
  void feed(std::string_view lines, std::vector<TaggedSentence>& out);
  // The last sentence, with the lines after it in `after` when it is in `out`; FormatError when
  // the whole text held no sentence.
  void finish(std::vector<TaggedSentence>& out);

 private:
  void flush(std::vector<TaggedSentence>& out);
  std::string origin_;
  ConllOptions opts_;
  TaggedSentence cur_;
  std::vector<std::string> between_;
  size_t ncols_ = 0;
  int64_t first_line_ = 0, lineno_ = 0, sentences_ = 0;
};

// ---- labelled text tables ----
struct TableOptions {
  int64_t text_column = 0;    // 0-based
  int64_t label_column = -1;  // -1 = the last column
  char delimiter = 0;         // 0: ',' for *.csv, else '\t'
  int header = -1;            // -1: auto (first row's label cell is "label"/"class"/"sentiment"/...), 0 no, 1 yes
  bool require_labels = true;
};
struct LabelledText {
  std::string text, label;  // label empty when not required and absent
  int64_t line = 0;
};
// CSV is RFC 4180: a field may be quoted ("a, b" with "" for a quote), and a quoted field may span
// lines (a record then starts at the line named in messages); TSV has no quoting. Rows must all
// have the first data row's
// field count (a header, skipped, may have another width: a header "text,label" over rows
// "sentence,label,,"); an empty text is an error naming its line.
std::vector<LabelledText> read_labelled_texts(const std::string& path, const TableOptions& opts);

namespace detail {
struct Record;  // one table record (task_data.cpp)
}
// read_labelled_texts a run of whole lines at a time (as ConllStream); a quoted CSV field that
// spans lines may span runs: the unfinished record waits for the next run.
class TableStream {
 public:
  TableStream(std::string origin, const TableOptions& opts);  // origin *.csv: ',' unless opts.delimiter
  void feed(std::string_view lines, std::vector<LabelledText>& out);
  void finish(std::vector<LabelledText>& out);  // FormatError: an unterminated quote, no rows at all

 private:
  void take(std::vector<detail::Record> records, std::vector<LabelledText>& out);
  std::string origin_;
  TableOptions opts_;
  char delim_ = '\t';
  std::string pending_;  // an unfinished record
  int64_t next_line_ = 1, first_line_ = 0, rows_ = 0;
  size_t nfields_ = 0;
  bool first_ = true;
};

// ---- sequence pairs: "source<TAB>target" per line (further columns ignored) ----
struct TextPair {
  std::string source, target;
  int64_t line = 0;
};
std::vector<TextPair> read_pairs(const std::string& path, bool require_target = true);
// read_pairs a run of whole lines at a time (as ConllStream).
class PairStream {
 public:
  PairStream(std::string origin, bool require_target) : origin_(std::move(origin)), require_target_(require_target) {}
  void feed(std::string_view lines, std::vector<TextPair>& out);
  void finish() const;  // FormatError when the whole text held no pair

 private:
  std::string origin_;
  bool require_target_;
  int64_t lineno_ = 0, pairs_ = 0;
};

// ---- numeric feature sequences: CSV "sequence_id,f1,...,fF,last" (header optional; RFC 4180
// quoting as for tables, so a target text may hold commas and line breaks) ----
// One row per step; consecutive rows with the same id form one sequence (an id that comes back
// after another sequence is an error). The last column holds
//   labels (classify, tag): one word per row, a tag per step or the sequence's class repeated
//                           (constant within a sequence: checked by the caller);
//   a target text (seq2seq, target_text): the sequence's target on its first row, later rows
//                           leave the cell empty or repeat it; quote it when it holds commas.
// A first row whose first feature is not a number is a header.
struct FeatureFileOptions {
  bool target_text = false;  // the last column is a seq2seq target text instead of per-row labels
  int64_t width = 0;         // F of a trained model, checked on every row; 0: F = fields - 2
  bool require_last = true;  // false (with width > 0): the last column may be left out
                             // (prediction input: F + 1 fields, or F + 2 with it)
};
struct FeatureSequence {
  std::string id;
  std::vector<float> values;        // [T, F]
  std::vector<std::string> labels;  // [T] (labels; empty for target_text or without the column)
  std::string target;               // target_text: the target text (empty without the column)
  int64_t steps = 0;
  int64_t line = 0;  // first row, 1-based
};
std::vector<FeatureSequence> read_feature_sequences(const std::string& path, int64_t* width,
                                                    const FeatureFileOptions& opts = {});

// ---- words ----
// ASCII letters lower-cased, every other byte kept (UTF-8 stays valid, "Ünï" -> "Ünï"). The one
// lower-casing of words: classifier and seq2seq text, a tagger's --lower-words, `recur embed
// --lower` and BLEU's lowercase option, so they all agree on what a lower-cased word is.
std::string ascii_lower(std::string_view s);

// Lower-cases ASCII (optional) and splits on whitespace (ASCII, U+00A0, U+202F, U+2009) and
// around punctuation, so "Cours !" and "Cours\u202f!" give the same tokens.
std::vector<std::string> split_words(std::string_view text, bool lowercase);

// Reads GloVe ("word v1 ... vD") or word2vec text (the same after a "count dim" header line)
// and copies the vector of every vocabulary word found into weight [V, dim] (rows of words
// not in the file are left as they are). Returns how many rows were filled; words match
// exactly (lower-cased task text matches GloVe's lower-case vocabulary). Throws FormatError naming path:line on a wrong number of values.
// The file is read a line at a time (memory: one line plus the embedding), so its size is not
// limited; a line longer than kWordVectorsMaxLineBytes (a 300-d GloVe line is about 3 KB) is
// refused, and so is a path that is not a regular file (a device such as /dev/zero).
inline constexpr int64_t kWordVectorsMaxLineBytes = int64_t(1) << 20;
int64_t load_word_vectors(const std::string& path, const Vocab& vocab, Tensor<float>& weight);
int64_t word_vectors_dim(const std::string& path);  // D of the file's first vector line
// The words of a vectors file in file order (--embeddings-vocab), each line checked as
// load_word_vectors checks it.
std::vector<std::string> word_vectors_words(const std::string& path);

}  // namespace recur
