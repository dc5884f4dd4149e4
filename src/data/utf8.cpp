#include "recur/data/utf8.h"

#include <cstdio>

namespace recur {

int utf8_next(std::string_view bytes, size_t pos, char32_t& cp, const char** reason) noexcept {
  auto fail = [&](const char* why) {
    if (reason) *reason = why;
    return 0;
  };
  const auto* s = reinterpret_cast<const unsigned char*>(bytes.data());
  const size_t n = bytes.size();
  const unsigned b0 = s[pos];
  if (b0 < 0x80) {
    cp = b0;
    return 1;
  }
  int len;
  char32_t min;
  if (b0 < 0xC0) return fail("unexpected continuation byte; expected a lead byte");
  if (b0 < 0xE0) {
    len = 2, min = 0x80, cp = b0 & 0x1F;
  } else if (b0 < 0xF0) {
    len = 3, min = 0x800, cp = b0 & 0x0F;
  } else if (b0 < 0xF8) {
    len = 4, min = 0x10000, cp = b0 & 0x07;
  } else {
    return fail("invalid lead byte 0xF8..0xFF; expected 0x00..0xF4");
  }
  for (int i = 1; i < len; ++i) {
    if (pos + size_t(i) >= n) return fail("truncated multi-byte sequence at end of input; expected continuation bytes");
    const unsigned b = s[pos + size_t(i)];
    if ((b & 0xC0) != 0x80) return fail("truncated multi-byte sequence; expected a continuation byte 0x80..0xBF");
    cp = (cp << 6) | (b & 0x3F);
  }
  if (cp < min) return fail("overlong encoding; expected the shortest form");
  if (cp >= 0xD800 && cp <= 0xDFFF) return fail("UTF-16 surrogate U+D800..U+DFFF; expected a scalar value");
  if (cp > utf8_max_code_point) return fail("code point above U+10FFFF");
  return len;
}

size_t utf8_find_invalid(std::string_view bytes, const char** reason) noexcept {
  size_t pos = 0;
  char32_t cp;
  while (pos < bytes.size()) {
    // ASCII runs dominate real text; skip them without the full decoder.
    if (static_cast<unsigned char>(bytes[pos]) < 0x80) {
      ++pos;
      continue;
    }
    const int len = utf8_next(bytes, pos, cp, reason);
    if (len == 0) return pos;
    pos += size_t(len);
  }
  return std::string_view::npos;
}

std::string utf8_error_message(std::string_view origin, std::string_view bytes, size_t offset,
                               const char* reason) {
  // Line and column are only computed on the error path, so validation stays a single scan.
  size_t line = 1, line_start = 0;
  for (size_t i = 0; i < offset && i < bytes.size(); ++i)
    if (bytes[i] == '\n') ++line, line_start = i + 1;
  char byte_hex[8];
  std::snprintf(byte_hex, sizeof byte_hex, "0x%02X",
                offset < bytes.size() ? unsigned(static_cast<unsigned char>(bytes[offset])) : 0u);
  return std::string(origin) + ": invalid UTF-8 at byte " + std::to_string(offset) + " (line " +
         std::to_string(line) + ", column " + std::to_string(offset - line_start + 1) + ", byte " +
         byte_hex + "): " + (reason ? reason : "invalid sequence");
}

void utf8_validate(std::string_view bytes, std::string_view origin) {
  const char* reason = nullptr;
  const size_t bad = utf8_find_invalid(bytes, &reason);
  if (bad != std::string_view::npos) throw FormatError(utf8_error_message(origin, bytes, bad, reason));
}

std::u32string utf8_decode(std::string_view bytes, std::string_view origin) {
  std::u32string out;
  out.reserve(bytes.size());
  size_t pos = 0;
  while (pos < bytes.size()) {
    char32_t cp;
    const char* reason = nullptr;
    const int len = utf8_next(bytes, pos, cp, &reason);
    if (len == 0) throw FormatError(utf8_error_message(origin, bytes, pos, reason));
    out.push_back(cp);
    pos += size_t(len);
  }
  return out;
}

size_t utf8_length(std::string_view bytes, std::string_view origin) {
  size_t count = 0, pos = 0;
  while (pos < bytes.size()) {
    char32_t cp;
    const char* reason = nullptr;
    const int len = utf8_next(bytes, pos, cp, &reason);
    if (len == 0) throw FormatError(utf8_error_message(origin, bytes, pos, reason));
    ++count;
    pos += size_t(len);
  }
  return count;
}

void utf8_append(std::string& out, char32_t cp) {
  if ((cp >= 0xD800 && cp <= 0xDFFF) || cp > utf8_max_code_point) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "U+%04X", unsigned(cp));
    throw Error(std::string("utf8_append: ") + buf + " is not a Unicode scalar value; expected U+0000..U+10FFFF without surrogates");
  }
  if (cp < 0x80) {
    out.push_back(char(cp));
  } else if (cp < 0x800) {
    out.push_back(char(0xC0 | (cp >> 6)));
    out.push_back(char(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(char(0xE0 | (cp >> 12)));
    out.push_back(char(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(char(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(char(0xF0 | (cp >> 18)));
    out.push_back(char(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(char(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(char(0x80 | (cp & 0x3F)));
  }
}

std::string utf8_encode(char32_t cp) {
  std::string out;
  utf8_append(out, cp);
  return out;
}

std::string utf8_encode(std::u32string_view cps) {
  std::string out;
  out.reserve(cps.size());
  for (char32_t cp : cps) utf8_append(out, cp);
  return out;
}

}  // namespace recur
