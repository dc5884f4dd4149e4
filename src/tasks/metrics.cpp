// Task metrics. The chunk rules are conlleval.pl's (CoNLL-2000 shared task script), written
// out so IOB1 and BIO files score the same way the official script scores them.
#include "recur/tasks/metrics.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "recur/core/error.h"

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

void BleuEval::add(const std::vector<std::string>& ref, const std::vector<std::string>& hyp) {
  ++sentences;
  exact += ref == hyp;
  hyp_len += int64_t(hyp.size());
  ref_len += int64_t(ref.size());
  for (size_t n = 1; n <= 4; ++n) {
    if (hyp.size() < n) continue;
    std::map<std::vector<std::string>, int64_t> rc;
    for (size_t i = 0; i + n <= ref.size(); ++i) ++rc[std::vector<std::string>(ref.begin() + i, ref.begin() + i + n)];
    for (size_t i = 0; i + n <= hyp.size(); ++i) {
      auto it = rc.find(std::vector<std::string>(hyp.begin() + i, hyp.begin() + i + n));
      if (it != rc.end() && it->second > 0) {
        --it->second;
        ++matches[n - 1];
      }
    }
    totals[n - 1] += int64_t(hyp.size() - n + 1);
  }
}

double BleuEval::bleu() const {
  double log_sum = 0;
  for (int n = 0; n < 4; ++n) {
    if (matches[n] == 0 || totals[n] == 0) return 0.0;
    log_sum += std::log(double(matches[n]) / double(totals[n]));
  }
  const double bp = hyp_len < ref_len ? std::exp(1.0 - double(ref_len) / double(std::max<int64_t>(hyp_len, 1))) : 1.0;
  return bp * std::exp(log_sum / 4);
}

}  // namespace recur
