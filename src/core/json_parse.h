// src/core/json_parse.h - the one entry point through which every reader parses JSON (checkpoint
// metadata, safetensors headers, vocabularies, batcher and training states, JSB chorales).
//
// A file is untrusted, and nlohmann::json leaves three things to its caller:
// - nesting depth: a document nested 100,000 deep parses, and the recursive dump() or a
//   recursive walk of it then overflows the stack;
// - numbers past a double's range: 1e400 throws out_of_range with a message naming no file;
// - duplicate keys: nlohmann keeps the last one, so two readers of the same file could see
//   different values.
// parse_json checks all three in a first pass over the text with a SAX handler (linear; the
// callback form of nlohmann's parser is not: it rescans an object's members after each nested
// value ends, which made a safetensors header of 40,000 tensors take minutes), then builds the
// document. Every refusal is recur's one-line FormatError naming `where`.
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace recur {

// Deeper than any JSON recur writes (checkpoint configs nest 3 levels, JSB chorales 4).
inline constexpr int kMaxJsonDepth = 64;

struct JsonLimits {
  int max_depth = kMaxJsonDepth;  // nested arrays and objects; the top-level value is depth 1
};

// Parses `text` as one JSON document. Throws FormatError naming `where`: "JSON syntax error at
// byte N; expected <expected>", "JSON nests deeper than N levels", "number out of range",
// "duplicate key 'k'".
nlohmann::json parse_json(std::string_view text, const std::string& where, const std::string& expected,
                          const JsonLimits& limits = {});
nlohmann::ordered_json parse_ordered_json(std::string_view text, const std::string& where, const std::string& expected,
                                          const JsonLimits& limits = {});

}  // namespace recur
