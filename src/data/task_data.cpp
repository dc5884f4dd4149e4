// Readers of the task data files. See task_data.h.
#include "recur/data/task_data.h"

#include <cctype>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <unordered_map>

#include "quote.h"
#include "recur/core/error.h"
#include "recur/core/file_io.h"
#include "recur/data/text_data.h"

namespace recur {

namespace {

[[noreturn]] void bad_line(const std::string& path, int64_t line, const std::string& what) {
  throw FormatError(path + ":" + std::to_string(line) + ": " + what);
}

std::vector<std::string> split_space(std::string_view s) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && is_token_space(s[i])) ++i;
    size_t j = i;
    while (j < s.size() && !is_token_space(s[j])) ++j;
    if (j > i) out.emplace_back(s.substr(i, j - i));
    i = j;
  }
  return out;
}

// The one reader of delimited tables (labelled texts, feature sequences): RFC 4180 records.
// Fields are separated by `delim`; in CSV (delim ',') a field that starts with '"' runs to the
// closing quote, across line ends (a quoted newline is part of the field), with "" for a quote;
// anywhere else a quote is an ordinary character, and TSV has no quoting at all (a tab cannot
// be in a field). A record ends at an unquoted line end ("\n" or "\r\n"). `line` is the record's
// first line, so messages name the line where a multi-line record starts; `blank` marks a record
// of nothing but spaces (skipped by the readers, as blank lines always were).
}  // namespace

namespace detail {
struct Record {
  std::vector<std::string> fields;
  int64_t line = 0;
  bool blank = true;
};
}  // namespace detail

namespace {
using detail::Record;

// `line` is the first line's number. With `consumed` (reading a file a block at a time), a record
// that the text ends inside (an open quoted field, or no line end yet) is left for the next block:
// *consumed is where it starts and `line` its line number on return.
std::vector<Record> split_records(std::string_view s, char delim, const std::string& path, int64_t& line,
                                  size_t* consumed = nullptr) {
  std::vector<Record> out;
  size_t i = 0;
  while (i < s.size()) {
    const size_t record_start = i;
    const int64_t record_line = line;
    auto incomplete = [&] {
      *consumed = record_start;
      line = record_line;
      return out;
    };
    Record r;
    r.line = line;
    std::string cur;
    bool fresh = true;
    while (true) {
      if (i >= s.size()) {
        if (consumed) return incomplete();
        r.fields.push_back(std::move(cur));
        break;
      }
      const char c = s[i];
      if (fresh && c == '"' && delim == ',') {
        const int64_t opened = line;
        r.blank = false;
        ++i;
        while (true) {
          if (i >= s.size()) {
            if (consumed) return incomplete();
            bad_line(path, opened, "unterminated quoted field; expected a closing '\"' (a quoted field may span lines)");
          }
          if (s[i] == '"') {
            if (i + 1 < s.size() && s[i + 1] == '"') {
              cur += '"';
              i += 2;
              continue;
            }
            ++i;
            break;
          }
          if (s[i] == '\n') ++line;
          cur += s[i++];
        }
        fresh = false;
        continue;
      }
      const bool crlf = c == '\r' && (i + 1 == s.size() || s[i + 1] == '\n');
      if (c == '\n' || crlf) {
        r.fields.push_back(std::move(cur));
        i += crlf && i + 1 < s.size() ? 2 : 1;
        ++line;
        break;
      }
      if (c == delim) {
        if (!is_token_space(c)) r.blank = false;
        r.fields.push_back(std::move(cur));
        cur.clear();
        fresh = true;
        ++i;
        continue;
      }
      if (!is_token_space(c)) r.blank = false;
      cur += c;
      ++i;
      fresh = false;
    }
    out.push_back(std::move(r));
  }
  if (consumed) *consumed = s.size();
  return out;
}

int64_t column(int64_t c, size_t n) { return c < 0 ? int64_t(n) + c : c; }

// A whole field as a float: a finite number within float's range. Checking only the double let
// 1e300 through, which the conversion turns into an infinite feature or weight (and the C++
// standard leaves out-of-range conversions undefined).
bool parse_float(const std::string& field, float& out) {
  char* end = nullptr;
  const double v = std::strtod(field.c_str(), &end);
  if (field.empty() || end != field.c_str() + field.size() || !std::isfinite(v) ||
      std::fabs(v) > double(std::numeric_limits<float>::max()))
    return false;
  out = float(v);
  return true;
}

}  // namespace

// ---- CoNLL ----

ConllStream::ConllStream(std::string origin, const ConllOptions& opts) : origin_(std::move(origin)), opts_(opts) {}

void ConllStream::flush(std::vector<TaggedSentence>& out) {
  if (!cur_.tokens.empty()) {
    out.push_back(std::move(cur_));
    ++sentences_;
  }
  cur_ = TaggedSentence();
}

void ConllStream::feed(std::string_view text, std::vector<TaggedSentence>& out) {
  const std::string& path = origin_;
  for (std::string_view line : split_lines(text)) {
    ++lineno_;
    const std::vector<std::string> cols = split_space(line);
    if (cols.empty() || cols[0] == "-DOCSTART-") {
      flush(out);
      between_.emplace_back(line);
      continue;
    }
    if (cur_.tokens.empty()) cur_.before = std::move(between_), between_.clear();
    if (ncols_ == 0) {
      ncols_ = cols.size();
      first_line_ = lineno_;
    }
    const size_t ncols = ncols_;
    if (cols.size() != ncols)
      bad_line(path, lineno_, std::to_string(cols.size()) + " columns; expected " + std::to_string(ncols) +
                                  " as on line " + std::to_string(first_line_) + " (ragged columns)");
    const int64_t tc = opts_.token_column, gc = column(opts_.tag_column, ncols);
    if (tc < 0 || tc >= int64_t(ncols))
      bad_line(path, lineno_, "no token column " + std::to_string(tc + 1) + "; the line has " + std::to_string(ncols));
    const bool has_tag = ncols >= 2 && gc >= 0 && gc < int64_t(ncols) && gc != tc;
    if (opts_.require_tags && !has_tag)
      bad_line(path, lineno_, "missing tag column (" + std::to_string(ncols) + " column" + (ncols == 1 ? "" : "s") +
                                  "); expected 'token tag' with the tag in column " +
                                  (opts_.tag_column < 0 ? std::string("last") : std::to_string(opts_.tag_column + 1)));
    if (cur_.tokens.empty()) cur_.line = lineno_;
    cur_.tokens.push_back(cols[size_t(tc)]);
    if (has_tag) cur_.tags.push_back(cols[size_t(gc)]);
    cur_.lines.emplace_back(line);
  }
}

void ConllStream::finish(std::vector<TaggedSentence>& out) {
  flush(out);
  if (!out.empty()) out.back().after = std::move(between_);
  if (sentences_ == 0)
    throw FormatError(origin_ + ": no sentences; expected 'token tag' lines with blank lines between sentences");
}

std::vector<TaggedSentence> read_conll(const std::string& file, const ConllOptions& opts) {
  const std::string text = read_text_file(file);
  ConllStream reader(input_name(file), opts);  // in messages: "<stdin>" for "-"
  std::vector<TaggedSentence> out;
  reader.feed(text, out);
  reader.finish(out);
  return out;
}

// ---- labelled text tables ----

TableStream::TableStream(std::string origin, const TableOptions& opts) : origin_(std::move(origin)), opts_(opts) {
  delim_ = opts.delimiter;
  if (delim_ == 0) delim_ = origin_.size() >= 4 && ascii_lower(origin_.substr(origin_.size() - 4)) == ".csv" ? ',' : '\t';
}

void TableStream::feed(std::string_view text, std::vector<LabelledText>& out) {
  if (pending_.empty()) {
    size_t used = 0;
    take(split_records(text, delim_, origin_, next_line_, &used), out);
    pending_.assign(text.substr(used));
  } else {
    pending_.append(text);
    size_t used = 0;
    take(split_records(pending_, delim_, origin_, next_line_, &used), out);
    pending_.erase(0, used);
  }
}

void TableStream::finish(std::vector<LabelledText>& out) {
  take(split_records(pending_, delim_, origin_, next_line_), out);
  pending_.clear();
  if (rows_ == 0) throw FormatError(origin_ + ": no examples; expected text and label rows");
}

void TableStream::take(std::vector<Record> records, std::vector<LabelledText>& out) {
  const std::string& path = origin_;
  const TableOptions& opts = opts_;
  for (Record& rec : records) {
    if (rec.blank) continue;  // blank lines
    const int64_t lineno = rec.line;
    const std::vector<std::string>& f = rec.fields;
    if (first_) {
      // A header row is skipped before the row width is fixed: its width may differ from the
      // rows' (the Emojify test file has a header of 2 fields over rows of 4).
      first_ = false;
      bool header = opts.header == 1;
      const int64_t htc = column(opts.text_column, f.size()), hlc = column(opts.label_column, f.size());
      if (opts.header < 0 && f.size() >= 2 && htc >= 0 && htc < int64_t(f.size()) && hlc >= 0 &&
          hlc < int64_t(f.size()) && hlc != htc) {
        const std::string l = ascii_lower(f[size_t(hlc)]), t = ascii_lower(f[size_t(htc)]);
        header = l == "label" || l == "labels" || l == "class" || l == "sentiment" || l == "category" || l == "target" ||
                 t == "text" || t == "sentence";
      }
      if (header) continue;
    }
    if (nfields_ == 0) {
      nfields_ = f.size();
      first_line_ = lineno;
    }
    const size_t nfields = nfields_;
    if (f.size() != nfields)
      bad_line(path, lineno, std::to_string(f.size()) + " fields; expected " + std::to_string(nfields) + " as on line " +
                                 std::to_string(first_line_) + " (ragged columns)");
    const int64_t tc = column(opts.text_column, nfields), lc = column(opts.label_column, nfields);
    if (tc < 0 || tc >= int64_t(nfields))
      bad_line(path, lineno, "no text column " + std::to_string(opts.text_column + 1) + "; the row has " + std::to_string(nfields));
    const bool has_label = nfields >= 2 && lc >= 0 && lc < int64_t(nfields) && lc != tc;
    if (opts.require_labels && !has_label)
      bad_line(path, lineno, "missing label column (" + std::to_string(nfields) + " field(s)); expected text and label");
    LabelledText e;
    e.text = f[size_t(tc)];
    if (split_space(e.text).empty()) bad_line(path, lineno, "empty text; expected at least one word");
    if (has_label) {
      const auto w = split_space(f[size_t(lc)]);
      if (w.size() != 1) bad_line(path, lineno, "label " + quote_name(f[size_t(lc)]) + "; expected one word");
      e.label = w[0];
    }
    e.line = lineno;
    out.push_back(std::move(e));
    ++rows_;
  }
}

std::vector<LabelledText> read_labelled_texts(const std::string& file, const TableOptions& opts) {
  const std::string text = read_text_file(file);
  TableStream reader(input_name(file), opts);  // in messages: "<stdin>" for "-"
  std::vector<LabelledText> out;
  reader.feed(text, out);
  reader.finish(out);
  return out;
}

// ---- sequence pairs ----

void PairStream::feed(std::string_view text, std::vector<TextPair>& out) {
  const std::string& path = origin_;
  for (std::string_view line : split_lines(text)) {
    const int64_t lineno = ++lineno_;
    if (split_space(line).empty()) continue;
    const size_t tab = line.find('\t');
    TextPair p;
    p.line = lineno;
    p.source = std::string(line.substr(0, tab));
    if (tab != std::string_view::npos) {
      std::string_view rest = line.substr(tab + 1);
      p.target = std::string(rest.substr(0, rest.find('\t')));
    } else if (require_target_) {
      bad_line(path, lineno, "no tab; expected 'source<TAB>target'");
    }
    if (split_space(p.source).empty()) bad_line(path, lineno, "empty source; expected at least one word");
    if (require_target_ && split_space(p.target).empty()) bad_line(path, lineno, "empty target; expected at least one word");
    out.push_back(std::move(p));
    ++pairs_;
  }
}

void PairStream::finish() const {
  if (pairs_ == 0) throw FormatError(origin_ + ": no pairs; expected 'source<TAB>target' lines");
}

std::vector<TextPair> read_pairs(const std::string& file, bool require_target) {
  const std::string text = read_text_file(file);
  PairStream reader(input_name(file), require_target);  // in messages: "<stdin>" for "-"
  std::vector<TextPair> out;
  reader.feed(text, out);
  reader.finish();
  return out;
}

std::vector<FeatureSequence> read_feature_sequences(const std::string& file, int64_t* width,
                                                    const FeatureFileOptions& opts) {
  const std::string text = read_text_file(file);
  const std::string path = input_name(file);  // in messages: "<stdin>" for "-"
  const char* last_name = opts.target_text ? "target" : "label";
  const int64_t F0 = opts.width;
  std::vector<FeatureSequence> out;
  std::unordered_map<std::string, int64_t> started;  // id -> first line, for ids that come back
  size_t nfields = 0;
  bool has_last = true;
  int64_t lineno = 0, first_line = 0, F = 0;
  int64_t first = 1;
  for (Record& rec : split_records(text, ',', path, first)) {
    if (rec.blank) continue;
    lineno = rec.line;
    const std::vector<std::string>& f = rec.fields;
    if (nfields == 0) {
      nfields = f.size();
      first_line = lineno;
      if (F0 > 0) {
        // A trained model's width: F + 2 fields, or F + 1 when the last column may be left out.
        const bool ok = int64_t(nfields) == F0 + 2 || (!opts.require_last && int64_t(nfields) == F0 + 1);
        if (!ok)
          bad_line(path, lineno, std::to_string(nfields) + " fields, but the model reads " + std::to_string(F0) +
                                     " features per step; expected 'sequence_id,f1,...,f" + std::to_string(F0) +
                                     (opts.require_last ? std::string(",") + last_name + "' (" + std::to_string(F0 + 2) + " fields)"
                                                        : std::string("' (") + std::to_string(F0 + 1) + " fields), optionally followed by the " + last_name));
        F = F0;
        has_last = int64_t(nfields) == F0 + 2;
      } else {
        if (nfields < 3)
          bad_line(path, lineno, std::to_string(nfields) + " field" + (nfields == 1 ? "" : "s") +
                                     "; expected 'sequence_id,f1,...,fF," + last_name + "' (at least 3 fields)");
        F = int64_t(nfields) - 2;
      }
      // A header row: its first feature is not a number.
      char* end = nullptr;
      std::strtod(f[1].c_str(), &end);
      if (end == f[1].c_str()) continue;
    }
    if (f.size() != nfields)
      bad_line(path, lineno, std::to_string(f.size()) + " fields; expected " + std::to_string(nfields) + " as on line " +
                                 std::to_string(first_line) + " (ragged columns)");
    if (split_space(f[0]).empty()) bad_line(path, lineno, "empty sequence id; expected an id in the first field");
    if (out.empty() || out.back().id != f[0]) {
      auto [it, fresh] = started.emplace(f[0], lineno);
      if (!fresh)
        bad_line(path, lineno, "sequence " + quote_name(f[0]) + " started on line " + std::to_string(it->second) +
                                   " and comes back after other sequences; expected its rows together");
      out.push_back({});
      out.back().id = f[0];
      out.back().line = lineno;
    }
    FeatureSequence& s = out.back();
    for (size_t k = 1; k <= size_t(F); ++k) {
      float v = 0;
      if (!parse_float(f[k], v))
        bad_line(path, lineno, "field " + std::to_string(k + 1) + " " + quote_name(f[k]) +
                                   "; expected a finite number (|x| <= 3.4e38, a float)");
      s.values.push_back(v);
    }
    if (has_last) {
      const std::string& cell = f.back();
      if (opts.target_text) {
        const bool blank = split_space(cell).empty();
        if (s.steps == 0) {
          if (blank && opts.require_last)
            bad_line(path, lineno, "sequence " + quote_name(s.id) +
                                       " has an empty target on its first row; expected the target text in the last field");
          s.target = cell;
        } else if (!blank && cell != s.target) {
          if (split_space(s.target).empty())
            bad_line(path, lineno, "sequence " + quote_name(s.id) + " has its target here, not on its first row (line " +
                                       std::to_string(s.line) + "); expected the target text on the first row");
          bad_line(path, lineno, "sequence " + quote_name(s.id) + " has a second target " + quote_name(cell) + " (line " +
                                     std::to_string(s.line) + " has " + quote_name(s.target) +
                                     "); expected the target on the sequence's first row only" +
                                     (F0 > 0 ? ", and " + std::to_string(F0) + " features per step" : std::string()));
        }
      } else {
        const auto w = split_space(cell);
        if (w.size() != 1) bad_line(path, lineno, "label " + quote_name(cell) + "; expected one word");
        s.labels.push_back(w[0]);
      }
    }
    ++s.steps;
  }
  if (out.empty())
    throw FormatError(path + ": no sequences; expected 'sequence_id,f1,...,fF," + last_name + "' rows");
  if (width) *width = F;
  return out;
}

std::string ascii_lower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = char(c - 'A' + 'a');
  return out;
}

std::vector<std::string> split_words(std::string_view text, bool lc) {
  std::vector<std::string> out;
  std::string cur;
  auto flush = [&] {
    if (!cur.empty()) out.push_back(lc ? ascii_lower(cur) : cur);
    cur.clear();
  };
  for (size_t i = 0; i < text.size();) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    // U+00A0 (C2 A0), U+202F (E2 80 AF), U+2009 (E2 80 89): spaces in French typography.
    if (c == 0xC2 && i + 1 < text.size() && static_cast<unsigned char>(text[i + 1]) == 0xA0) {
      flush();
      i += 2;
      continue;
    }
    if (c == 0xE2 && i + 2 < text.size() && static_cast<unsigned char>(text[i + 1]) == 0x80 &&
        (static_cast<unsigned char>(text[i + 2]) == 0xAF || static_cast<unsigned char>(text[i + 2]) == 0x89)) {
      flush();
      i += 3;
      continue;
    }
    // « and » (C2 AB, C2 BB) are punctuation tokens.
    if (c == 0xC2 && i + 1 < text.size() &&
        (static_cast<unsigned char>(text[i + 1]) == 0xAB || static_cast<unsigned char>(text[i + 1]) == 0xBB)) {
      flush();
      out.emplace_back(text.substr(i, 2));
      i += 2;
      continue;
    }
    if (is_token_space(char(c))) {
      flush();
      ++i;
      continue;
    }
    // ASCII punctuation splits off, except an apostrophe or hyphen inside a word ("don't", "peut-être").
    if (c < 0x80 && std::ispunct(c)) {
      const bool inner = (c == '\'' || c == '-') && !cur.empty() && i + 1 < text.size() &&
                         !is_token_space(text[i + 1]) && !std::ispunct(static_cast<unsigned char>(text[i + 1]));
      if (!inner) {
        flush();
        out.emplace_back(1, char(c));
        ++i;
        continue;
      }
    }
    cur += char(c);
    ++i;
  }
  flush();
  return out;
}

namespace {
// std::getline with a cap on the line's length, so a file without newlines is not read whole.
bool vectors_getline(std::istream& in, std::string& line, const std::string& path, int64_t lineno) {
  line.clear();
  int c;
  while ((c = in.get()) != std::char_traits<char>::eof()) {
    if (c == '\n') return true;
    if (int64_t(line.size()) >= kWordVectorsMaxLineBytes)
      bad_line(path, lineno, "longer than " + std::to_string(kWordVectorsMaxLineBytes) + " bytes; expected 'word v1 ... vD'");
    line.push_back(char(c));
  }
  return !line.empty();
}

std::ifstream open_vectors(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::exists(path, ec) && !std::filesystem::is_regular_file(path, ec))
    throw FormatError(path + ": not a regular file; expected a GloVe or word2vec text file");
  return std::ifstream(path, std::ios::binary);
}
}  // namespace

int64_t word_vectors_dim(const std::string& path) {
  std::ifstream in = open_vectors(path);
  if (!in) throw FormatError(path + ": cannot open; expected a GloVe or word2vec text file");
  std::string line;
  int64_t lineno = 0;
  while (vectors_getline(in, line, path, lineno + 1)) {
    ++lineno;
    const auto f = split_space(line);
    if (f.empty()) continue;
    if (lineno == 1 && f.size() == 2) continue;  // word2vec "count dim" header
    if (f.size() < 2) bad_line(path, lineno, "expected a word and its vector");
    return int64_t(f.size()) - 1;
  }
  throw FormatError(path + ": no vectors; expected 'word v1 ... vD' lines");
}

namespace {
// Calls fn(lineno, fields) for every vector line of a D-wide vectors file (blank lines and a
// word2vec "count dim" header skipped), after checking the line holds a word and D values.
template <typename Fn>
void for_each_vector_line(const std::string& path, int64_t D, Fn&& fn) {
  std::ifstream in = open_vectors(path);
  if (!in) throw FormatError(path + ": cannot open; expected a GloVe or word2vec text file");
  std::string line;
  int64_t lineno = 0;
  while (vectors_getline(in, line, path, lineno + 1)) {
    ++lineno;
    const auto f = split_space(line);
    if (f.empty() || (lineno == 1 && f.size() == 2)) continue;
    if (int64_t(f.size()) != D + 1)
      bad_line(path, lineno, std::to_string(f.size() - 1) + " values; expected " + std::to_string(D) + " as on the first vector line");
    fn(lineno, f);
  }
}
}  // namespace

std::vector<std::string> word_vectors_words(const std::string& path) {
  std::vector<std::string> words;
  for_each_vector_line(path, word_vectors_dim(path), [&](int64_t, const auto& f) { words.push_back(f[0]); });
  return words;
}

int64_t load_word_vectors(const std::string& path, const Vocab& vocab, Tensor<float>& weight) {
  const int64_t D = word_vectors_dim(path);
  if (weight.rank() != 2 || weight.dim(1) != D)
    throw Error(path + ": vectors have " + std::to_string(D) + " dimensions; the embedding has " +
                std::to_string(weight.rank() == 2 ? weight.dim(1) : 0) + " (pass --embed " + std::to_string(D) + ")");
  int64_t found = 0;
  std::vector<bool> done(size_t(vocab.size()), false);
  // The first line of a word wins; words the vocabulary lacks, and the specials, are skipped.
  for_each_vector_line(path, D, [&](int64_t lineno, const auto& f) {
    const int32_t id = vocab.contains(f[0]) ? vocab.id(f[0]) : -1;
    if (id < Vocab::num_special || done[size_t(id)]) return;
    float* row = weight.ptr() + int64_t(id) * D;
    for (int64_t k = 0; k < D; ++k)
      if (!parse_float(f[size_t(k + 1)], row[k]))
        bad_line(path, lineno, "value " + quote_name(f[size_t(k + 1)]) + "; expected a finite number (|x| <= 3.4e38, a float)");
    done[size_t(id)] = true;
    ++found;
  });
  return found;
}

}  // namespace recur
