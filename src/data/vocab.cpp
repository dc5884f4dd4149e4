#include "recur/data/vocab.h"

#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "json_parse.h"

namespace recur {

const char* token_level_name(TokenLevel level) { return level == TokenLevel::chars ? "chars" : "words"; }

TokenLevel parse_token_level(std::string_view name) {
  if (name == "chars") return TokenLevel::chars;
  if (name == "words") return TokenLevel::words;
  throw Error("token level: got \"" + std::string(name) + "\", expected \"chars\" or \"words\"");
}

void TokenCounter::add_token(std::string_view token, int64_t n) {
  total_ += n;
  if (auto it = counts_.find(token); it != counts_.end())
    it->second += n;
  else
    counts_.emplace(std::string(token), n);
}

void TokenCounter::add_text(std::string_view text, std::string_view origin) {
  for_each_token(level_, text, [&](std::string_view tok) { add_token(tok); }, origin);
}

std::string OovStats::summary() const {
  char buf[160];
  std::snprintf(buf, sizeof buf, "%lld tokens, %lld <unk> (%.2f%%), %lld out of vocabulary", (long long)tokens,
                (long long)unk, 100.0 * unk_rate(), (long long)oov);
  return buf;
}

OovStats& OovStats::operator+=(const OovStats& o) {
  tokens += o.tokens, unk += o.unk, oov += o.oov;
  return *this;
}

namespace {
std::string token_problem(TokenLevel level, const std::string& tok);
std::string json_quoted(const std::string& s);
}  // namespace

Vocab::Vocab(TokenLevel level) : level_(level) {
  tokens_ = {std::string(unk_token), std::string(eos_token)};
  index();
}

void Vocab::index() {
  ids_.clear();
  ids_.reserve(tokens_.size());
  std::fill(std::begin(byte_ids_), std::end(byte_ids_), unk_id);
  for (size_t i = 0; i < tokens_.size(); ++i) {
    ids_.emplace(tokens_[i], int32_t(i));
    if (level_ == TokenLevel::chars && tokens_[i].size() == 1) byte_ids_[static_cast<unsigned char>(tokens_[i][0])] = int32_t(i);
  }
}

Vocab Vocab::build(const TokenCounter& counts, const VocabOptions& opts) {
  if (opts.max_vocab != 0 && opts.max_vocab < num_special)
    throw Error("vocab options: max_vocab = " + std::to_string(opts.max_vocab) +
                ", expected 0 (unlimited) or >= 2 (it counts <unk> and <eos>)");
  if (opts.min_count < 1)
    throw Error("vocab options: min_count = " + std::to_string(opts.min_count) + ", expected >= 1");
  std::vector<std::pair<std::string_view, int64_t>> items;
  items.reserve(counts.counts().size());
  for (const auto& [tok, n] : counts.counts())
    if (n >= opts.min_count && tok != unk_token && tok != eos_token) items.emplace_back(tok, n);
  // A total order (count, then bytes), so hash-map iteration order cannot leak into the ids.
  std::sort(items.begin(), items.end(), [](const auto& a, const auto& b) {
    return a.second != b.second ? a.second > b.second : a.first < b.first;
  });
  if (opts.max_vocab > 0 && int64_t(items.size()) > opts.max_vocab - num_special)
    items.resize(size_t(opts.max_vocab - num_special));
  Vocab v(counts.level());
  v.tokens_.reserve(items.size() + num_special);
  for (const auto& [tok, n] : items) {
    v.tokens_.emplace_back(tok);
    // TokenCounter::add_token takes any bytes; a bad entry must not reach a checkpoint.
    if (auto p = token_problem(v.level_, v.tokens_.back()); !p.empty())
      throw Error("vocab build: token " + json_quoted(v.tokens_.back()) + ": " + p);
  }
  v.index();
  return v;
}

namespace {
// Empty string when `tok` is acceptable as a non-special token at `level`, else what is wrong.
std::string token_problem(TokenLevel level, const std::string& tok) {
  if (tok == Vocab::unk_token || tok == Vocab::eos_token) return "special token outside its fixed id";
  if (level == TokenLevel::words) {
    if (tok.empty()) return "empty word; expected a non-empty string";
    for (char c : tok)
      if (is_token_space(c)) return "word contains whitespace; expected none";
    return {};
  }
  char32_t cp;
  const char* reason = nullptr;
  if (tok.empty()) return "empty; expected exactly one code point";
  const int len = utf8_next(tok, 0, cp, &reason);
  if (len == 0) return std::string("invalid UTF-8: ") + reason;
  if (size_t(len) != tok.size()) return "more than one code point; expected exactly one";
  return {};
}

std::string json_quoted(const std::string& s) { return nlohmann::json(s).dump(-1, ' ', true, nlohmann::json::error_handler_t::replace); }
}  // namespace

Vocab Vocab::extended(const TokenCounter& counts, const VocabOptions& opts) const {
  TokenCounter fresh(level_);
  for (const auto& [token, n] : counts.counts())
    if (!contains(token)) fresh.add_token(token, n);
  VocabOptions o = opts;
  if (o.max_vocab > 0) {
    if (o.max_vocab <= size()) return *this;
    o.max_vocab = o.max_vocab - size() + num_special;  // room for the new ones, with build()'s specials
  }
  const Vocab added = build(fresh, o);
  std::vector<std::string> tokens(tokens_.begin() + num_special, tokens_.end());
  tokens.insert(tokens.end(), added.tokens_.begin() + num_special, added.tokens_.end());
  return from_tokens(level_, tokens);
}

Vocab Vocab::from_tokens(TokenLevel level, const std::vector<std::string>& tokens) {
  Vocab v(level);
  v.tokens_.reserve(tokens.size() + num_special);
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (auto p = token_problem(level, tokens[i]); !p.empty())
      throw Error("vocab tokens[" + std::to_string(i) + "] " + json_quoted(tokens[i]) + ": " + p);
    if (auto [it, fresh] = v.ids_.emplace(tokens[i], int32_t(v.tokens_.size())); !fresh)
      throw Error("vocab tokens[" + std::to_string(i) + "] " + json_quoted(tokens[i]) + ": duplicate of id " +
                  std::to_string(it->second) + "; expected unique tokens");
    v.tokens_.push_back(tokens[i]);
  }
  v.index();
  return v;
}

int32_t Vocab::id(std::string_view token) const {
  if (level_ == TokenLevel::chars && token.size() == 1) return byte_ids_[static_cast<unsigned char>(token[0])];
  auto it = ids_.find(token);
  return it == ids_.end() ? unk_id : it->second;
}

bool Vocab::contains(std::string_view token) const { return ids_.find(token) != ids_.end(); }

const std::string& Vocab::token(int32_t id) const {
  if (id < 0 || id >= size())
    throw Error("vocab: id " + std::to_string(id) + " out of range; expected 0.." + std::to_string(size() - 1));
  return tokens_[size_t(id)];
}

void Vocab::tokenize(std::string_view text, std::vector<int32_t>& out, OovStats* stats,
                     std::string_view origin) const {
  if (!stats) {
    for_each_token(level_, text, [&](std::string_view tok) { out.push_back(id(tok)); }, origin);
    return;
  }
  for_each_token(
      level_, text,
      [&](std::string_view tok) {
        const int32_t i = id(tok);
        out.push_back(i);
        ++stats->tokens;
        if (i == unk_id) {
          ++stats->unk;
          if (tok != unk_token) ++stats->oov;
        }
      },
      origin);
}

std::vector<int32_t> Vocab::tokenize(std::string_view text) const {
  std::vector<int32_t> out;
  tokenize(text, out);
  return out;
}

std::string Vocab::detokenize(std::span<const int32_t> ids) const {
  std::string out;
  bool line_start = true;
  for (int32_t i : ids) {
    if (i == eos_id) {
      out.push_back('\n');
      line_start = true;
      continue;
    }
    const std::string& tok = token(i);
    if (level_ == TokenLevel::words && !line_start) out.push_back(' ');
    out += tok;
    line_start = false;
  }
  return out;
}

std::string Vocab::to_json() const {
  nlohmann::json j;
  j["format"] = "recur.vocab";
  j["version"] = 1;
  j["level"] = token_level_name(level_);
  j["unk_id"] = unk_id;
  j["eos_id"] = eos_id;
  j["tokens"] = tokens_;
  return j.dump();
}

Vocab Vocab::from_json(std::string_view json, std::string_view origin) {
  const std::string o(origin);
  const nlohmann::json j = parse_json(json, o, "a vocabulary object");
  auto fail = [&](const std::string& where, const std::string& what) -> FormatError {
    return FormatError(o + ": " + where + ": " + what);
  };
  if (!j.is_object()) throw fail("top level", std::string("got ") + j.type_name() + ", expected an object");
  auto field = [&](const char* name) -> const nlohmann::json& {
    auto it = j.find(name);
    if (it == j.end()) throw fail(std::string("\"") + name + "\"", "missing field");
    return *it;
  };
  const auto& format = field("format");
  if (!format.is_string() || format.get<std::string>() != "recur.vocab")
    throw fail("\"format\"", "got " + format.dump() + ", expected \"recur.vocab\"");
  const auto& version = field("version");
  if (!version.is_number_integer() || version.get<int64_t>() != 1)
    throw fail("\"version\"", "got " + version.dump() + ", expected 1");
  const auto& level_j = field("level");
  if (!level_j.is_string() || (level_j.get<std::string>() != "chars" && level_j.get<std::string>() != "words"))
    throw fail("\"level\"", "got " + level_j.dump() + ", expected \"chars\" or \"words\"");
  const TokenLevel level = parse_token_level(level_j.get<std::string>());
  // The ids are fixed by this build; a file that claims others was written by something else.
  for (auto [name, want] : {std::pair{"unk_id", unk_id}, std::pair{"eos_id", eos_id}}) {
    auto it = j.find(name);
    if (it != j.end() && (!it->is_number_integer() || it->get<int64_t>() != want))
      throw fail(std::string("\"") + name + "\"", "got " + it->dump() + ", expected " + std::to_string(want));
  }
  const auto& toks = field("tokens");
  if (!toks.is_array()) throw fail("\"tokens\"", std::string("got ") + toks.type_name() + ", expected an array of strings");
  if (toks.size() < size_t(num_special))
    throw fail("\"tokens\"", "has " + std::to_string(toks.size()) + " entries, expected at least \"<unk>\" and \"<eos>\"");
  std::vector<std::string> rest;
  rest.reserve(toks.size());
  std::unordered_map<std::string_view, size_t> seen;
  seen.reserve(toks.size());
  for (size_t i = 0; i < toks.size(); ++i) {
    const std::string where = "tokens[" + std::to_string(i) + "]";
    if (!toks[i].is_string()) throw fail(where, std::string("got ") + toks[i].type_name() + ", expected a string");
    const std::string& t = toks[i].get_ref<const std::string&>();
    if (i < size_t(num_special)) {
      const std::string_view want = i == size_t(unk_id) ? unk_token : eos_token;
      if (t != want) throw fail(where, "got " + json_quoted(t) + ", expected \"" + std::string(want) + "\"");
      continue;
    }
    // Checked here as well as in from_tokens so the message carries the file's own index.
    if (auto p = token_problem(level, t); !p.empty()) throw fail(where, json_quoted(t) + ": " + p);
    if (auto [it, fresh] = seen.emplace(t, i); !fresh)
      throw fail(where, json_quoted(t) + " duplicates tokens[" + std::to_string(it->second) + "]; expected unique tokens");
    rest.push_back(t);
  }
  return from_tokens(level, rest);
}

}  // namespace recur
