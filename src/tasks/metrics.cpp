// Task metrics. The chunk rules are conlleval.pl's (CoNLL-2000 shared task script), written
// out so IOB1 and BIO files score the same way the official script scores them.
#include "recur/tasks/metrics.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <utility>

#include "recur/core/error.h"
#include "recur/data/task_data.h"

namespace recur {

namespace {

// "B-PER" -> ("B", "PER"); "O" -> ("O", ""); a tag without '-' is its own type with prefix "I"
// unless it is "O" (conlleval's split: guessed tags "PER" count as I-PER).
std::pair<std::string, std::string> split_tag(const std::string& tag) {
  if (tag == "O" || tag.empty()) return {"O", ""};
  const size_t dash = tag.find('-');
  if (dash == std::string::npos || dash == 0) return {"I", tag};
  return {tag.substr(0, dash), tag.substr(dash + 1)};
}

// conlleval endOfChunk(prevTag, tag, prevType, type)
bool end_of_chunk(const std::string& pt, const std::string& t, const std::string& ptype, const std::string& type) {
  if (pt == "E" || pt == "S") return true;
  if (pt == "B" && (t == "B" || t == "S" || t == "O")) return true;
  if (pt == "I" && (t == "B" || t == "S" || t == "O")) return true;
  if (pt != "O" && ptype != type) return true;
  return false;
}

// conlleval startOfChunk(prevTag, tag, prevType, type)
bool start_of_chunk(const std::string& pt, const std::string& t, const std::string& ptype, const std::string& type) {
  if (t == "B" || t == "S") return true;
  if ((pt == "E" || pt == "S" || pt == "O") && (t == "E" || t == "I")) return true;
  if (t != "O" && ptype != type) return true;
  return false;
}

}  // namespace

std::vector<Chunk> conll_chunks(const std::vector<std::string>& tags) {
  std::vector<Chunk> out;
  std::string pt = "O", ptype;
  int64_t begin = -1;
  for (size_t i = 0; i <= tags.size(); ++i) {
    auto [t, type] = i < tags.size() ? split_tag(tags[i]) : std::pair<std::string, std::string>{"O", ""};
    if (begin >= 0 && end_of_chunk(pt, t, ptype, type)) {
      out.push_back({ptype, begin, int64_t(i)});
      begin = -1;
    }
    if (start_of_chunk(pt, t, ptype, type)) begin = int64_t(i);
    pt = t;
    ptype = type;
  }
  return out;
}

void TagEval::add(const std::vector<std::string>& gold, const std::vector<std::string>& predicted) {
  if (gold.size() != predicted.size())
    throw Error("tag evaluation: " + std::to_string(gold.size()) + " gold tags but " +
                std::to_string(predicted.size()) + " predicted");
  for (size_t i = 0; i < gold.size(); ++i) {
    ++tokens;
    tokens_correct += gold[i] == predicted[i];
  }
  const auto g = conll_chunks(gold), p = conll_chunks(predicted);
  for (const Chunk& c : g) {
    ++all.gold;
    ++by_type[c.type].gold;
    if (std::find(p.begin(), p.end(), c) != p.end()) {
      ++all.correct;
      ++by_type[c.type].correct;
    }
  }
  for (const Chunk& c : p) {
    ++all.predicted;
    ++by_type[c.type].predicted;
  }
}

std::string TagEval::report() const {
  char buf[256];
  std::string s;
  std::snprintf(buf, sizeof buf, "tokens      %lld, %lld gold entities, %lld predicted, %lld correct\n",
                (long long)tokens, (long long)all.gold, (long long)all.predicted, (long long)all.correct);
  s += buf;
  std::snprintf(buf, sizeof buf, "accuracy    %.2f%% (tokens)\n", 100 * accuracy());
  s += buf;
  std::snprintf(buf, sizeof buf, "entities    precision %.2f%%, recall %.2f%%, F1 %.2f\n", 100 * all.precision(),
                100 * all.recall(), 100 * all.f1());
  s += buf;
  for (const auto& [type, sc] : by_type) {
    std::snprintf(buf, sizeof buf, "  %-10s precision %6.2f%%, recall %6.2f%%, F1 %6.2f  (%lld gold)\n", type.c_str(),
                  100 * sc.precision(), 100 * sc.recall(), 100 * sc.f1(), (long long)sc.gold);
    s += buf;
  }
  return s;
}

ClassEval::ClassEval(std::vector<std::string> l) : labels(std::move(l)) {
  confusion.assign(labels.size(), std::vector<int64_t>(labels.size(), 0));
}

void ClassEval::add(int64_t gold, int64_t predicted) {
  const int64_t C = int64_t(labels.size());
  if (gold < 0 || gold >= C || predicted < 0 || predicted >= C) throw Error("class evaluation: label id out of range");
  ++confusion[size_t(gold)][size_t(predicted)];
}

int64_t ClassEval::total() const {
  int64_t n = 0;
  for (const auto& r : confusion)
    for (int64_t v : r) n += v;
  return n;
}

double ClassEval::accuracy() const {
  int64_t ok = 0;
  for (size_t i = 0; i < confusion.size(); ++i) ok += confusion[i][i];
  const int64_t n = total();
  return n ? double(ok) / double(n) : 0.0;
}

double ClassEval::macro_f1() const {
  const size_t C = labels.size();
  if (C == 0) return 0.0;
  double sum = 0;
  for (size_t c = 0; c < C; ++c) {
    int64_t tp = confusion[c][c], gold = 0, pred = 0;
    for (size_t k = 0; k < C; ++k) {
      gold += confusion[c][k];
      pred += confusion[k][c];
    }
    sum += gold + pred > 0 ? 2.0 * double(tp) / double(gold + pred) : 0.0;
  }
  return sum / double(C);
}

std::string ClassEval::report() const {
  char buf[256];
  std::string s;
  std::snprintf(buf, sizeof buf, "examples    %lld\naccuracy    %.2f%%\nmacro-F1    %.4f\n", (long long)total(),
                100 * accuracy(), macro_f1());
  s += buf;
  size_t w = 6;
  for (const auto& l : labels) w = std::max(w, std::min<size_t>(l.size(), 20));
  s += "confusion (rows gold, columns predicted)\n";
  std::snprintf(buf, sizeof buf, "  %*s", int(w), "");
  s += buf;
  for (const auto& l : labels) {
    std::snprintf(buf, sizeof buf, " %*.*s", int(w), int(w), l.c_str());
    s += buf;
  }
  s += "\n";
  for (size_t g = 0; g < labels.size(); ++g) {
    std::snprintf(buf, sizeof buf, "  %*.*s", int(w), int(w), labels[g].c_str());
    s += buf;
    for (size_t p = 0; p < labels.size(); ++p) {
      std::snprintf(buf, sizeof buf, " %*lld", int(w), (long long)confusion[g][p]);
      s += buf;
    }
    s += "\n";
  }
  return s;
}

namespace {

// The code point at s[i] (UTF-8) and its length in bytes; a malformed byte is itself (length 1).
std::pair<uint32_t, size_t> code_point_at(std::string_view s, size_t i) {
  const auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = b(i);
  const size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
  if (n <= 1 || i + n > s.size()) return {c, 1};
  uint32_t cp = c & (0x7F >> n);
  for (size_t k = 1; k < n; ++k) {
    if ((b(i + k) & 0xC0) != 0x80) return {c, 1};
    cp = (cp << 6) | (b(i + k) & 0x3F);
  }
  return {cp, n};
}

// Python's str.isspace(), which str.split() and str.rstrip() use.
bool python_space(uint32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

std::vector<std::string> python_split(std::string_view s) {
  std::vector<std::string> out;
  std::string cur;
  for (size_t i = 0; i < s.size();) {
    const auto [cp, n] = code_point_at(s, i);
    if (python_space(cp)) {
      if (!cur.empty()) out.push_back(std::move(cur));
      cur.clear();
    } else {
      cur.append(s.substr(i, n));
    }
    i += n;
  }
  if (!cur.empty()) out.push_back(std::move(cur));
  return out;
}

std::string_view python_rstrip(std::string_view s) {
  size_t end = 0;  // one past the last non-space code point
  for (size_t i = 0; i < s.size();) {
    const auto [cp, n] = code_point_at(s, i);
    i += n;
    if (!python_space(cp)) end = i;
  }
  return s.substr(0, end);
}

void replace_all(std::string& s, std::string_view from, std::string_view to) {
  std::string out;
  size_t i = 0;
  for (size_t j; (j = s.find(from, i)) != std::string::npos; i = j + from.size()) {
    out.append(s, i, j - i);
    out += to;
  }
  out.append(s, i);
  s = std::move(out);
}

bool digit(char c) { return c >= '0' && c <= '9'; }

// TokenizerRegexp's first pattern: [\{-\~\[-\` -\&\(-\+\:-\@\/].
bool spaced_13a(char c) {
  return (c >= '{' && c <= '~') || (c >= '[' && c <= '`') || (c >= ' ' && c <= '&') || (c >= '(' && c <= '+') ||
         (c >= ':' && c <= '@') || c == '/';
}

// One left-to-right pass of re.sub with a two-character pattern: where match(s[i], s[i+1]),
// write emit(a, b) and go on after both (matches do not overlap), else copy s[i]. Byte-wise
// equals code-point-wise here: every pattern has an ASCII side, and a non-ASCII side only
// matches [^0-9], which no continuation byte could start a match against.
template <class Match, class Emit>
std::string pair_pass(const std::string& s, Match match, Emit emit) {
  std::string out;
  out.reserve(s.size() + s.size() / 4);
  size_t i = 0;
  while (i < s.size()) {
    if (i + 1 < s.size() && match(s[i], s[i + 1])) {
      emit(out, s[i], s[i + 1]);
      i += 2;
    } else {
      out += s[i++];
    }
  }
  return out;
}

using Ngram = std::vector<std::string>;

std::map<Ngram, int64_t> ngram_counts(const std::vector<std::string>& w, size_t n) {
  std::map<Ngram, int64_t> c;
  for (size_t i = 0; i + n <= w.size(); ++i) ++c[Ngram(w.begin() + ptrdiff_t(i), w.begin() + ptrdiff_t(i + n))];
  return c;
}

}  // namespace

std::vector<std::string> tokenize_13a(std::string_view text) {
  std::string line(text);
  replace_all(line, "<skipped>", "");
  replace_all(line, "-\n", "");
  replace_all(line, "\n", " ");
  if (line.find('&') != std::string::npos) {
    replace_all(line, "&quot;", "\"");
    replace_all(line, "&amp;", "&");
    replace_all(line, "&lt;", "<");
    replace_all(line, "&gt;", ">");
  }
  std::string s = " ";
  for (char c : line) {
    if (spaced_13a(c)) {
      s += ' ';
      s += c;
      s += ' ';
    } else {
      s += c;
    }
  }
  s += ' ';
  auto period = [](char c) { return c == '.' || c == ','; };
  // ([^0-9])([\.,]) -> "\1 \2 "
  s = pair_pass(s, [&](char a, char b) { return !digit(a) && period(b); },
                [](std::string& o, char a, char b) { o += a, o += ' ', o += b, o += ' '; });
  // ([\.,])([^0-9]) -> " \1 \2"
  s = pair_pass(s, [&](char a, char b) { return period(a) && !digit(b); },
                [](std::string& o, char a, char b) { o += ' ', o += a, o += ' ', o += b; });
  // ([0-9])(-) -> "\1 \2 "
  s = pair_pass(s, [](char a, char b) { return digit(a) && b == '-'; },
                [](std::string& o, char a, char b) { o += a, o += ' ', o += b, o += ' '; });
  return python_split(s);
}

void CorpusBleu::add(std::string_view hypothesis, const std::vector<std::string>& refs) {
  if (refs.empty()) throw Error("BLEU: a hypothesis without references");
  // BLEU._preprocess_segment: lowercase, rstrip, tokenise.
  auto tokens = [&](std::string_view t) {
    if (!options.lowercase) return tokenize_13a(python_rstrip(t));
    const std::string l = ascii_lower(t);
    return tokenize_13a(python_rstrip(l));
  };
  const std::vector<std::string> h = tokens(hypothesis);
  std::vector<std::vector<std::string>> rs;
  for (const auto& r : refs) rs.push_back(tokens(r));
  auto unknown = [&](const std::string& w) { return !options.unknown.empty() && w.find(options.unknown) != std::string::npos; };
  const bool has_unknown = std::any_of(h.begin(), h.end(), unknown);
  for (size_t n = 1; n <= 4; ++n) {
    std::map<Ngram, int64_t> ref_max;
    for (const auto& r : rs)
      for (const auto& [g, c] : ngram_counts(r, n)) ref_max[g] = std::max(ref_max[g], c);
    for (const auto& [g, c] : ngram_counts(h, n)) {
      if (std::any_of(g.begin(), g.end(), unknown)) continue;
      const auto it = ref_max.find(g);
      if (it != ref_max.end()) correct[n - 1] += std::min(c, it->second);
    }
    total[n - 1] += h.size() >= n ? int64_t(h.size() - n + 1) : 0;
  }
  // The closest reference length, the shorter on a tie (_get_closest_ref_len).
  int64_t best_diff = -1, best_len = -1;
  for (const auto& r : rs) {
    const int64_t len = int64_t(r.size()), diff = std::abs(int64_t(h.size()) - len);
    if (best_diff < 0 || diff < best_diff || (diff == best_diff && len < best_len)) best_diff = diff, best_len = len;
  }
  sys_len += int64_t(h.size());
  ref_len += best_len;
  ++segments;
  references += int64_t(refs.size());
  if (!has_unknown && std::find(rs.begin(), rs.end(), h) != rs.end()) ++exact;
}

double CorpusBleu::bleu() const {
  // compute_bleu with smooth_method='exp', in sacreBLEU's percent units, then / 100.
  double log_sum = 0, smooth = 1;
  for (int n = 0; n < 4; ++n) {
    if (total[n] == 0) return 0.0;  // the loop's break leaves a zero precision: log 0
    double p;
    if (correct[n] == 0) {
      smooth *= 2;
      p = 100.0 / (smooth * double(total[n]));
    } else {
      p = 100.0 * double(correct[n]) / double(total[n]);
    }
    log_sum += std::log(p);
  }
  double bp = 1.0;
  if (sys_len < ref_len) bp = sys_len > 0 ? std::exp(1.0 - double(ref_len) / double(sys_len)) : 0.0;
  return bp * std::exp(log_sum / 4) / 100.0;
}

}  // namespace recur
