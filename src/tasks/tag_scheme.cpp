#include "recur/tasks/tag_scheme.h"

#include "recur/core/error.h"
#include "recur/tasks/metrics.h"

namespace recur {

namespace {

// A chunk tag's prefix letter and type: "B-PER" -> ('B', "PER"), "O" -> ('O', ""); a tag that
// is not a chunk tag -> ('?', tag).
std::pair<char, std::string> parse_tag(const std::string& t) {
  if (t == "O") return {'O', ""};
  if (t.size() >= 3 && t[1] == '-' && (t[0] == 'B' || t[0] == 'I' || t[0] == 'E' || t[0] == 'S'))
    return {t[0], t.substr(2)};
  return {'?', t};
}

}  // namespace

const char* tag_scheme_name(TagScheme s) {
  switch (s) {
    case TagScheme::none: return "none";
    case TagScheme::iob1: return "iob1";
    case TagScheme::bio: return "bio";
    case TagScheme::bioes: return "bioes";
  }
  return "?";
}

TagScheme parse_tag_scheme(std::string_view n) {
  if (n == "none") return TagScheme::none;
  if (n == "iob1") return TagScheme::iob1;
  if (n == "bio") return TagScheme::bio;
  if (n == "bioes") return TagScheme::bioes;
  throw Error("tag scheme '" + std::string(n) + "': expected iob1, bio, bioes or none");
}

TagScheme detect_tag_scheme(const std::vector<std::vector<std::string>>& sentences) {
  bool es = false, i_starts = false;
  for (const auto& tags : sentences) {
    char prev = 'O';
    std::string ptype;
    for (const auto& t : tags) {
      const auto [p, type] = parse_tag(t);
      if (p == '?') return TagScheme::none;
      if (p == 'E' || p == 'S') es = true;
      if (p == 'I' && (prev == 'O' || ptype != type)) i_starts = true;
      prev = p;
      ptype = type;
    }
  }
  if (es) return TagScheme::bioes;
  return i_starts ? TagScheme::iob1 : TagScheme::bio;
}

std::vector<std::string> convert_tags(const std::vector<std::string>& tags, TagScheme from, TagScheme to) {
  if (from == TagScheme::none || to == TagScheme::none) return tags;
  std::vector<std::string> out(tags.size(), "O");
  int64_t prev_end = -1;
  std::string prev_type;
  for (const Chunk& c : conll_chunks(tags)) {
    const int64_t n = c.end - c.begin;
    for (int64_t i = c.begin; i < c.end; ++i) {
      char p = 'I';
      switch (to) {
        case TagScheme::iob1:
          // B- only where the chunk touches a previous one of the same type.
          p = i == c.begin && prev_end == c.begin && prev_type == c.type ? 'B' : 'I';
          break;
        case TagScheme::bio: p = i == c.begin ? 'B' : 'I'; break;
        case TagScheme::bioes: p = n == 1 ? 'S' : i == c.begin ? 'B' : i == c.end - 1 ? 'E' : 'I'; break;
        case TagScheme::none: break;
      }
      out[size_t(i)] = std::string(1, p) + "-" + c.type;
    }
    prev_end = c.end;
    prev_type = c.type;
  }
  return out;
}

CrfConstraints tag_scheme_constraints(const std::vector<std::string>& labels, TagScheme s) {
  CrfConstraints k;
  if (s == TagScheme::none) return k;
  const size_t C = labels.size();
  k.transitions.assign(C * C, 1);
  k.start.assign(C, 1);
  k.end.assign(C, 1);
  for (size_t j = 0; j < C; ++j) {
    const auto [pj, tj] = parse_tag(labels[j]);
    // bioes: a chunk must open with B- or S- and close with E- or S-.
    if (s == TagScheme::bio && pj == 'I') k.start[j] = 0;
    if (s == TagScheme::iob1 && pj == 'B') k.start[j] = 0;
    if (s == TagScheme::bioes) {
      if (pj == 'I' || pj == 'E') k.start[j] = 0;
      if (pj == 'B' || pj == 'I') k.end[j] = 0;
    }
    for (size_t i = 0; i < C; ++i) {
      const auto [pi, ti] = parse_tag(labels[i]);
      const bool inside_same = (pi == 'B' || pi == 'I') && ti == tj;
      bool ok = true;
      switch (s) {
        case TagScheme::bio: ok = pj != 'I' || inside_same; break;
        case TagScheme::iob1: ok = pj != 'B' || inside_same; break;
        case TagScheme::bioes:
          if (pi == 'B' || pi == 'I') ok = (pj == 'I' || pj == 'E') && ti == tj;  // an open chunk goes on or closes
          else ok = pj != 'I' && pj != 'E';                                         // nothing open: O, B- or S-
          break;
        case TagScheme::none: break;
      }
      k.transitions[i * C + j] = ok ? 1 : 0;
    }
  }
  return k;
}

}  // namespace recur
