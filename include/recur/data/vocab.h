// recur/data/vocab.h - token <-> id mapping for character- and word-level language models.
//
// Tokens:
//   words: maximal runs of non-whitespace bytes, whitespace being ASCII only (space \t \n \v \f
//          \r), so U+00A0 or U+0085 inside a sentence stays part of a token instead of silently
//          splitting it (see shared/data/README.md for data sets that contain them).
//   chars: one token per Unicode code point (strictly decoded, see utf8.h).
//
// Special tokens, always present, with fixed ids so a model's output layer and a checkpoint's
// vocabulary can never disagree about them:
//   id 0  "<unk>"  every token absent from the vocabulary. A literal "<unk>" word in the text
//                  (Penn Treebank has them) maps here too and is never a second entry.
//   id 1  "<eos>"  end of sequence. words: appended after every line (a literal "<eos>" word
//                  also maps here). chars, `lines` mode: the line end, and the start symbol too
//                  (as "\n" is in the dinosaur-names exercise); the line's '\n' is not a token.
//                  chars, `stream` mode: '\n' stays an ordinary character token and <eos> does
//                  not occur in the data (its output row simply never gets a target).
//   A char-level vocabulary cannot collide with the specials: they are not single code points.
//
// Ordering: the specials, then by descending count, ties by ascending byte order of the token
// (= code point order). Byte order rather than first occurrence makes the ids independent of
// line order, so a shuffled or re-split corpus gives the same vocabulary.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "recur/core/error.h"
#include "recur/data/utf8.h"

namespace recur {

enum class TokenLevel { chars, words };

const char* token_level_name(TokenLevel level);                // "chars" / "words"
TokenLevel parse_token_level(std::string_view name);           // throws Error on anything else

struct VocabOptions {
  int64_t max_vocab = 0;  // total size including the 2 specials; 0 = unlimited, else >= 2
  int64_t min_count = 1;  // tokens seen fewer times map to <unk>; >= 1
};

// Heterogeneous lookup, so the per-token path can look up a string_view without a temporary.
struct TokenHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};
using TokenMap = std::unordered_map<std::string, int64_t, TokenHash, std::equal_to<>>;

// Calls fn(std::string_view token) for each token of `text` at `level`, without allocating.
// chars: throws FormatError (naming `origin` and the byte offset) on invalid UTF-8.
template <typename Fn>
void for_each_token(TokenLevel level, std::string_view text, Fn&& fn, std::string_view origin = "<text>");

bool is_token_space(char c);  // the ASCII whitespace that separates words

// Token frequencies, the input of Vocab::build.
class TokenCounter {
 public:
  explicit TokenCounter(TokenLevel level) : level_(level) {}
  TokenLevel level() const { return level_; }
  void add_token(std::string_view token, int64_t n = 1);
  // Every token of `text` (chars: every code point, '\n' included; words: whitespace split).
  void add_text(std::string_view text, std::string_view origin = "<text>");
  const TokenMap& counts() const { return counts_; }
  int64_t total() const { return total_; }  // tokens added, specials included

 private:
  TokenLevel level_;
  TokenMap counts_;
  int64_t total_ = 0;
};

// How many tokens of an encoded text fell outside the vocabulary.
struct OovStats {
  int64_t tokens = 0;  // tokens encoded (appended <eos> not counted)
  int64_t unk = 0;     // tokens that got unk_id, literal "<unk>" included
  int64_t oov = 0;     // tokens absent from the vocabulary (literal "<unk>" excluded)
  double unk_rate() const { return tokens ? double(unk) / double(tokens) : 0.0; }
  std::string summary() const;  // "887521 tokens, 45020 <unk> (5.07%), 0 out of vocabulary"
  OovStats& operator+=(const OovStats& o);
};

class Vocab {
 public:
  static constexpr int32_t unk_id = 0;
  static constexpr int32_t eos_id = 1;
  static constexpr int32_t num_special = 2;
  static constexpr std::string_view unk_token = "<unk>";
  static constexpr std::string_view eos_token = "<eos>";

  explicit Vocab(TokenLevel level = TokenLevel::words);  // the two specials only

  // By frequency (see the ordering note above). Literal specials in `counts` are skipped;
  // throws Error for options out of range or a kept token that is not valid for the level.
  static Vocab build(const TokenCounter& counts, const VocabOptions& opts = {});
  // Ids in the given order after the specials; throws Error on duplicates, specials or
  // tokens that are not valid for the level (chars: exactly one code point; words: non-empty,
  // no whitespace).
  static Vocab from_tokens(TokenLevel level, const std::vector<std::string>& tokens);
  // This vocabulary with the tokens of `counts` it lacks appended (fine-tuning on new data):
  // every existing id unchanged, the new ones ordered and cut by opts among themselves as build()
  // orders and cuts, opts.max_vocab capping the total (0 = none; nothing added at or past it).
  Vocab extended(const TokenCounter& counts, const VocabOptions& opts = {}) const;

  TokenLevel level() const { return level_; }
  int64_t size() const { return int64_t(tokens_.size()); }
  int32_t id(std::string_view token) const;  // unk_id when unknown
  bool contains(std::string_view token) const;  // specials included
  const std::string& token(int32_t id) const;   // throws Error when out of range
  const std::vector<std::string>& tokens() const { return tokens_; }

  // Appends the ids of `text`'s tokens to `out` (no <eos>; see text_data.h for the per-mode
  // framing). chars: throws FormatError naming `origin` and the byte offset on bad UTF-8.
  // words: bytes are split, not decoded (read_text_file has already validated a file).
  void tokenize(std::string_view text, std::vector<int32_t>& out, OovStats* stats = nullptr,
                std::string_view origin = "<text>") const;
  std::vector<int32_t> tokenize(std::string_view text) const;

  // chars: concatenation, <eos> as "\n"; words: tokens joined by one space, <eos> as "\n" with
  // no space around it. <unk> comes out as the text "<unk>". Throws Error for an id out of range.
  std::string detokenize(std::span<const int32_t> ids) const;

  // {"format":"recur.vocab","version":1,"level":"words","tokens":["<unk>","<eos>",...]}
  std::string to_json() const;
  // Throws FormatError "<origin>: <where>: <what was expected>" for malformed JSON, a wrong
  // format/version/level, non-string tokens, missing or misplaced specials, duplicates.
  static Vocab from_json(std::string_view json, std::string_view origin = "vocab");

  bool operator==(const Vocab& o) const { return level_ == o.level_ && tokens_ == o.tokens_; }

 private:
  void index();  // rebuilds the lookup tables from tokens_

  TokenLevel level_;
  std::vector<std::string> tokens_;
  std::unordered_map<std::string, int32_t, TokenHash, std::equal_to<>> ids_;
  int32_t byte_ids_[256];  // chars: single-byte tokens (ASCII, most of real text) skip hashing
};

// ---- implementation of the template -----------------------------------------------------------

inline bool is_token_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

template <typename Fn>
void for_each_token(TokenLevel level, std::string_view text, Fn&& fn, std::string_view origin) {
  const size_t n = text.size();
  if (level == TokenLevel::words) {
    size_t i = 0;
    while (i < n) {
      while (i < n && is_token_space(text[i])) ++i;
      const size_t start = i;
      while (i < n && !is_token_space(text[i])) ++i;
      if (i > start) fn(text.substr(start, i - start));
    }
    return;
  }
  size_t i = 0;
  while (i < n) {
    char32_t cp;
    const char* reason = nullptr;
    const int len = utf8_next(text, i, cp, &reason);
    if (len == 0) throw FormatError(utf8_error_message(origin, text, i, reason));
    fn(text.substr(i, size_t(len)));
    i += size_t(len);
  }
}

}  // namespace recur
