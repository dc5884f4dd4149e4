// recur/data/utf8.h - strict UTF-8 decoding and encoding (RFC 3629).
//
// Text files are untrusted input, and a code point is the token unit of character-level models,
// so decoding is strict: overlong forms, UTF-16 surrogates (U+D800..U+DFFF), values above
// U+10FFFF, stray continuation bytes and truncated sequences are all rejected rather than
// replaced, because a silently substituted U+FFFD would become a vocabulary entry.
// Errors are FormatError, one line: "<origin>: invalid UTF-8 at byte N (line L, column C): why".
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "recur/core/error.h"

namespace recur {

inline constexpr char32_t utf8_max_code_point = 0x10FFFF;

// Decodes the sequence starting at bytes[pos] (pos < bytes.size()) into `cp` and returns its
// length in bytes (1..4). Returns 0 for an invalid sequence and, if `reason` is given, points it
// at a static description. Never throws; the building block for loops that must not allocate.
int utf8_next(std::string_view bytes, size_t pos, char32_t& cp, const char** reason = nullptr) noexcept;

// Offset of the first invalid sequence, or std::string_view::npos when `bytes` is valid.
size_t utf8_find_invalid(std::string_view bytes, const char** reason = nullptr) noexcept;

// Throws FormatError naming `origin` and the byte offset (plus line and column) of the first
// invalid sequence.
void utf8_validate(std::string_view bytes, std::string_view origin = "<string>");

// Whole-string decoding; throws like utf8_validate.
std::u32string utf8_decode(std::string_view bytes, std::string_view origin = "<string>");

// Number of code points; throws like utf8_validate.
size_t utf8_length(std::string_view bytes, std::string_view origin = "<string>");

// Appends the encoding of `cp`; throws Error for a surrogate or a value above U+10FFFF.
void utf8_append(std::string& out, char32_t cp);
std::string utf8_encode(char32_t cp);
std::string utf8_encode(std::u32string_view cps);

// The FormatError text for an invalid sequence at `offset` (used by the functions above and
// by callers that validate a slice of a larger file and want file offsets in the message).
std::string utf8_error_message(std::string_view origin, std::string_view bytes, size_t offset,
                               const char* reason);

}  // namespace recur
