// The project's rule "functions short enough to read", enforced: no function or lambda body in
// src/, include/, apps/ or python/src/ runs over kMaxBodyLines lines, except the allow-list below. Bodies are
// found with a brace matcher that first blanks out comments, string and character literals
// (raw strings too) and preprocessor lines, so a brace in a comment, a string or a macro
// cannot open or close a body. The matcher itself is tested on small snippets first, so a
// scanner that finds nothing cannot pass the real check.
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

namespace {

namespace fs = std::filesystem;

// A body counts from the line of its "{" to the line of its "}", both included.
constexpr int kMaxBodyLines = 150;

struct AllowedLong {
  const char* file;  // relative to the source root
  const char* name;  // the function's unqualified name
  const char* why;   // printed when the entry goes stale
};

// Each entry must still match a function over the limit: a stale entry fails the test, so the
// list can only shrink.
const AllowedLong kAllowed[] = {
    {"src/core/rnn.cpp", "scan_forward", "the reference time loop: one pass over the steps, kept whole to be read"},
    {"src/core/rnn.cpp", "scan_backward", "the reference backward time loop, the mirror of scan_forward"},
};

bool ident_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

// Whether the '"' at i opens a raw string: R, u8R, uR, UR or LR as a whole token before it.
bool raw_string_prefix(const std::string& src, size_t i) {
  if (i == 0 || src[i - 1] != 'R') return false;
  size_t start = i - 1;
  for (const std::string_view p : {"u8", "u", "U", "L"})
    if (start >= p.size() && std::string_view(src).substr(start - p.size(), p.size()) == p) {
      start -= p.size();
      break;
    }
  return start == 0 || !ident_char(src[start - 1]);
}

// The source with comments, string and character literals and preprocessor lines replaced by
// spaces; line breaks are kept, so line numbers stay those of the file.
std::string blank_non_code(const std::string& src) {
  std::string out = src;
  const size_t n = src.size();
  auto blank = [&](size_t from, size_t to) {  // [from, to)
    for (size_t k = from; k < to && k < n; ++k)
      if (out[k] != '\n') out[k] = ' ';
  };
  bool line_start = true;  // only whitespace so far on this line
  size_t i = 0;
  while (i < n) {
    const char c = src[i];
    if (c == '\n') {
      line_start = true;
      ++i;
      continue;
    }
    if (line_start && c == '#') {  // a preprocessor line, with its backslash continuations
      size_t j = i;
      while (j < n && !(src[j] == '\n' && (j == 0 || src[j - 1] != '\\'))) ++j;
      blank(i, j);
      i = j;
      continue;
    }
    if (!std::isspace(static_cast<unsigned char>(c))) line_start = false;
    if (c == '/' && i + 1 < n && src[i + 1] == '/') {
      size_t j = i;
      while (j < n && !(src[j] == '\n' && src[j - 1] != '\\')) ++j;
      blank(i, j);
      i = j;
    } else if (c == '/' && i + 1 < n && src[i + 1] == '*') {
      const size_t end = src.find("*/", i + 2);
      const size_t j = end == std::string::npos ? n : end + 2;
      blank(i, j);
      i = j;
    } else if (c == '"' && raw_string_prefix(src, i)) {
      // R"delim( ... )delim": nothing inside is special.
      const size_t open = src.find('(', i + 1);
      if (open == std::string::npos) return out;
      std::string close = ")";
      close.append(src, i + 1, open - i - 1);
      close += '"';
      const size_t end = src.find(close, open + 1);
      const size_t j = end == std::string::npos ? n : end + close.size();
      blank(i, j);
      i = j;
    } else if (c == '"' || c == '\'') {
      size_t j = i + 1;
      while (j < n && src[j] != c && src[j] != '\n') j += src[j] == '\\' ? 2 : 1;
      blank(i, j + 1);
      i = j + 1;
    } else if (std::isdigit(static_cast<unsigned char>(c)) && (i == 0 || !ident_char(src[i - 1]))) {
      // A number, whose digit separators (1'000) are not character literals.
      size_t j = i;
      while (j < n && (ident_char(src[j]) || src[j] == '.' || src[j] == '\'' ||
                       ((src[j] == '+' || src[j] == '-') && std::strchr("eEpP", src[j - 1]) != nullptr)))
        ++j;
      i = j;
    } else if (ident_char(c)) {
      while (i < n && ident_char(src[i])) ++i;
    } else {
      ++i;
    }
  }
  return out;
}

struct Body {
  std::string name;  // the function's name, or "lambda"
  int line = 0;      // of the "{"
  int lines = 0;     // from the "{" line to the "}" line, both included
};

// Position of the "(" or "{" matching the ")" or "}" at `close`, or npos.
size_t matching_open(const std::string& code, size_t close) {
  const char open_char = code[close] == ')' ? '(' : '{';
  int depth = 0;
  for (size_t k = close + 1; k-- > 0;) {
    if (code[k] == code[close]) ++depth;
    else if (code[k] == open_char && --depth == 0) return k;
  }
  return std::string::npos;
}

// Index just past the last non-space before `end`.
size_t skip_space_back(const std::string& code, size_t end) {
  while (end > 0 && std::isspace(static_cast<unsigned char>(code[end - 1]))) --end;
  return end;
}

std::string word_before(const std::string& code, size_t end) {
  end = skip_space_back(code, end);
  size_t b = end;
  while (b > 0 && ident_char(code[b - 1])) --b;
  return code.substr(b, end - b);
}

const std::vector<std::string> kQualifiers = {"const", "noexcept", "override", "final", "mutable",
                                              "volatile", "constexpr", "try"};
bool is_qualifier(const std::string& w) {
  return std::find(kQualifiers.begin(), kQualifiers.end(), w) != kQualifiers.end();
}

// `end` moved back over qualifiers (const, noexcept(...), mutable, &, ...) after a parameter list.
size_t skip_qualifiers(const std::string& code, size_t end) {
  for (;;) {
    end = skip_space_back(code, end);
    if (end == 0) return end;
    if (code[end - 1] == '&') {
      --end;
      continue;
    }
    const std::string w = word_before(code, end);
    if (!w.empty() && is_qualifier(w)) {
      end -= w.size();
      continue;
    }
    if (code[end - 1] == ')') {
      const size_t open = matching_open(code, end - 1);
      if (open != std::string::npos && word_before(code, open) == "noexcept") {
        end = skip_space_back(code, open) - std::string("noexcept").size();
        continue;
      }
    }
    return end;
  }
}

// `end` moved back over a trailing return type "-> T" that follows a parameter list.
size_t skip_trailing_return(const std::string& code, size_t end) {
  const size_t arrow = end < 2 ? std::string::npos : code.rfind("->", end - 2);
  if (arrow == std::string::npos) return end;
  for (size_t k = arrow + 2; k < end; ++k)
    if (!ident_char(code[k]) && !std::isspace(static_cast<unsigned char>(code[k])) &&
        std::strchr(":<>,*&", code[k]) == nullptr)
      return end;
  const size_t before = skip_qualifiers(code, arrow);
  return before > 0 && code[before - 1] == ')' ? arrow : end;
}

// The name before the "(" at `open`: an identifier, or "operator" for operator==( and the like.
std::string name_before(const std::string& code, size_t open) {
  const std::string w = word_before(code, open);
  if (!w.empty()) return w;
  size_t b = skip_space_back(code, open);
  for (int k = 0; k < 3 && b > 0 && std::strchr("=!<>+-*/%&|^~[]()", code[b - 1]) != nullptr; ++k) --b;
  return word_before(code, b) == "operator" ? "operator" : "";
}

// If the "{" at `brace` opens a function or lambda body, its name ("lambda" for a lambda);
// otherwise "". A body follows a lambda's capture "]" or a parameter list ")" that is not a
// control statement's condition, after qualifiers, a trailing return type or a constructor's
// member initialisers.
std::string body_name(const std::string& code, size_t brace) {
  static const std::vector<std::string> control = {"if", "for", "while", "switch", "catch", "constexpr"};
  size_t end = skip_qualifiers(code, skip_trailing_return(code, skip_space_back(code, brace)));
  if (end == 0) return "";
  if (code[end - 1] == ']') return "lambda";
  if (code[end - 1] != ')' && code[end - 1] != '}') return "";
  for (;;) {
    const size_t open = matching_open(code, end - 1);
    if (open == std::string::npos) return "";
    const size_t before = skip_space_back(code, open);
    if (before == 0) return "";
    if (code[end - 1] == ')' && code[before - 1] == ']') return "lambda";
    const std::string name = name_before(code, open);
    if (name.empty() || std::find(control.begin(), control.end(), name) != control.end()) return "";
    if (name == "operator") return name;
    // A member initialiser follows ", " or a single ":" (not "::") and comes after the ")" of
    // the parameters or another initialiser.
    const size_t prev = skip_space_back(code, before - name.size());
    const bool sep = prev > 0 && (code[prev - 1] == ',' || (code[prev - 1] == ':' && (prev < 2 || code[prev - 2] != ':')));
    const size_t p = sep ? skip_space_back(code, prev - 1) : 0;
    if (sep && p > 0 && (code[p - 1] == ')' || code[p - 1] == '}')) {
      end = p;
      continue;
    }
    if (code[end - 1] == '}') return "";  // a braced initialiser, not a parameter list
    return name;
  }
}

std::vector<Body> function_bodies(const std::string& src) {
  const std::string code = blank_non_code(src);
  std::vector<Body> bodies;
  std::vector<std::pair<size_t, int>> open;  // position and line of each unclosed "{"
  int line = 1;
  for (size_t i = 0; i < code.size(); ++i) {
    if (code[i] == '\n') ++line;
    else if (code[i] == '{') open.emplace_back(i, line);
    else if (code[i] == '}' && !open.empty()) {
      const auto [pos, first] = open.back();
      open.pop_back();
      const std::string name = body_name(code, pos);
      if (!name.empty()) bodies.push_back({name, first, line - first + 1});
    }
  }
  return bodies;
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string lines_of(int n, const std::string& line) {
  std::string s;
  for (int i = 0; i < n; ++i) s += line + "\n";
  return s;
}

// ---- the matcher on snippets ---------------------------------------------------------------------

TEST(SourceScan, FindsFunctionsAndLambdasNotBlocks) {
  const std::string src =
      "namespace a {\n"                                        // 1
      "struct S { int f() const { return 1; } };\n"            // 2
      "int g(int x) noexcept(true) {\n"                        // 3
      "  if (x) { x = 2; }\n"                                  // 4
      "  for (int i = 0; i < 3; ++i) { x += i; }\n"            // 5
      "  auto l = [&](int y) mutable -> int { return y; };\n"  // 6
      "  p->run([x] { return 0; });\n"                         // 7
      "  int v[] = {1, 2};\n"                                  // 8
      "  if constexpr (true) { } else { }\n"                   // 9
      "  { x = 1; } { x = 2; }\n"                              // 10
      "  return x;\n"                                          // 11
      "}\n"                                                    // 12
      "S::S(int a) : x_(a), y_{a}, z_(a) {\n"                  // 13
      "}\n"                                                    // 14
      "S& S::operator+=(const S& o) { return *this; }\n"       // 15
      "bool T::operator()(int k) const& { return k; }\n"       // 16
      "auto h() -> std::vector<int> { return {}; }\n"          // 17
      "Q::Q() : v_{1} {}\n"                                    // 18
      "}  // namespace a\n";
  const std::vector<Body> b = function_bodies(src);
  std::vector<std::string> names;
  for (const Body& x : b) names.push_back(x.name + "@" + std::to_string(x.line) + "+" + std::to_string(x.lines));
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"Q@18+1", "S@13+2", "f@2+1", "g@3+10", "h@17+1", "lambda@6+1",
                                             "lambda@7+1", "operator@15+1", "operator@16+1"}));
}

TEST(SourceScan, BracesInCommentsStringsAndLiteralsDoNotCount) {
  const std::string src =
      "// void fake() {\n"
      "/* } { */\n"
      "const char* s = \"}{\\\"}\";\n"
      "const char* r = R\"X(\n)\" } { \n)X\";\n"
      "const char* u = u8R\"(})\";\n"
      "char c = '}', d = '\\'', e = '{';\n"
      "long big = 1'000'000;\n"
      "#define BLOCK(x) { \\\n  x; }\n"
      "int real() {\n"
      "  return '{';\n"
      "}\n";
  const std::vector<Body> b = function_bodies(src);
  ASSERT_EQ(b.size(), 1u);
  EXPECT_EQ(b[0].name, "real");
  EXPECT_EQ(b[0].line, 12);
  EXPECT_EQ(b[0].lines, 3);
}

TEST(SourceScan, CountsLongBodiesToTheLine) {
  const std::string at_limit = "void ok() {\n" + lines_of(kMaxBodyLines - 2, "  ;") + "}\n";
  const std::string over = "void too_long() {\n" + lines_of(kMaxBodyLines - 1, "  ;") + "}\n";
  const std::vector<Body> a = function_bodies(at_limit), b = function_bodies(over);
  ASSERT_EQ(a.size(), 1u);
  ASSERT_EQ(b.size(), 1u);
  EXPECT_EQ(a[0].lines, kMaxBodyLines);
  EXPECT_EQ(b[0].lines, kMaxBodyLines + 1);
  EXPECT_EQ(b[0].name, "too_long");
}

// ---- the rule on the project ---------------------------------------------------------------------

TEST(SourceRules, NoFunctionOverTheLimitOutsideTheAllowList) {
  const fs::path root = RECUR_SOURCE_DIR;
  std::vector<std::string> too_long;
  std::vector<int> allowed_hits(std::size(kAllowed), 0);
  size_t files = 0, bodies = 0;
  for (const char* dir : {"src", "include", "apps", "python/src"}) {
    ASSERT_TRUE(fs::is_directory(root / dir)) << (root / dir);
    for (const auto& e : fs::recursive_directory_iterator(root / dir)) {
      const std::string ext = e.path().extension().string();
      if (!e.is_regular_file() || (ext != ".h" && ext != ".cpp")) continue;
      ++files;
      const std::string rel = e.path().lexically_relative(root).generic_string();
      for (const Body& b : function_bodies(slurp(e.path()))) {
        ++bodies;
        if (b.lines <= kMaxBodyLines) continue;
        bool allowed = false;
        for (size_t k = 0; k < std::size(kAllowed); ++k)
          if (rel == kAllowed[k].file && b.name == kAllowed[k].name) allowed = true, ++allowed_hits[k];
        if (!allowed)
          too_long.push_back(rel + ":" + std::to_string(b.line) + ": " + b.name + " body is " + std::to_string(b.lines) +
                             " lines; expected at most " + std::to_string(kMaxBodyLines));
      }
    }
  }
  // Guards against a scanner that silently sees nothing.
  EXPECT_GT(files, 50u);
  EXPECT_GT(bodies, 500u);
  for (const std::string& t : too_long) ADD_FAILURE() << t;
  for (size_t k = 0; k < std::size(kAllowed); ++k)
    EXPECT_GT(allowed_hits[k], 0) << "stale allow-list entry: " << kAllowed[k].file << ": " << kAllowed[k].name
                                  << " has no body over " << kMaxBodyLines << " lines; remove it from kAllowed (it was: " << kAllowed[k].why << ")";
}

}  // namespace
