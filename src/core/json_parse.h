// src/core/json_parse.h - the one entry point through which every reader parses JSON (checkpoint
// metadata, vocabularies, batcher and training states, JSB chorales, metrics lines).
//
// A file is untrusted, and nlohmann::json leaves two things to its caller: nesting depth (a
// document nested 100,000 deep parses, and the recursive dump() or a recursive walk of it then
// overflows the stack) and numbers past a double's range (1e400 throws out_of_range with a
// message that names no file). parse_json refuses both while parsing, with recur's one-line
// FormatError naming `where`, so no reader can forget either.
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace recur {

// Deeper than any JSON recur writes (checkpoint configs nest 3 levels, JSB chorales 4).
inline constexpr int kMaxJsonDepth = 64;

// Parses `text` as one JSON document. Throws FormatError "<where>: JSON syntax error at byte N;
// expected <expected>", "<where>: JSON nests deeper than 64 levels" or "<where>: number out of
// range ...".
nlohmann::json parse_json(std::string_view text, const std::string& where, const std::string& expected);
nlohmann::ordered_json parse_ordered_json(std::string_view text, const std::string& where, const std::string& expected);

}  // namespace recur
