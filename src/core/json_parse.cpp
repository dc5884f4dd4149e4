#include "json_parse.h"

#include "recur/core/error.h"

namespace recur {

namespace {

// Parser messages quote raw input bytes; keep them printable and on one line.
std::string printable(std::string s) {
  for (char& c : s)
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) c = '?';
  return s;
}

template <typename Json>
Json parse(std::string_view text, const std::string& where, const std::string& expected) {
  // The callback sees every value's depth before it is stored, so a deep document is refused
  // after kMaxJsonDepth levels instead of being built.
  auto limit_depth = [&](int depth, typename Json::parse_event_t, Json&) {
    if (depth >= kMaxJsonDepth)  // depth counts from 0 at the top-level value
      throw FormatError(where + ": JSON nests deeper than " + std::to_string(kMaxJsonDepth) + " levels; expected " + expected);
    return true;
  };
  try {
    return Json::parse(text.begin(), text.end(), limit_depth);
  } catch (const typename Json::parse_error& e) {
    throw FormatError(where + ": JSON syntax error at byte " + std::to_string(e.byte) + "; expected " + expected);
  } catch (const typename Json::out_of_range& e) {
    // nlohmann's text is "[json.exception.out_of_range.406] number overflow parsing '1e400'".
    std::string what = e.what();
    const size_t cut = what.find("] ");
    if (cut != std::string::npos) what = what.substr(cut + 2);
    throw FormatError(where + ": " + printable(what) + ": number out of range of a double; expected " + expected);
  } catch (const typename Json::exception& e) {
    throw FormatError(where + ": invalid JSON (" + printable(e.what()) + "); expected " + expected);
  }
}

}  // namespace

nlohmann::json parse_json(std::string_view text, const std::string& where, const std::string& expected) {
  return parse<nlohmann::json>(text, where, expected);
}

nlohmann::ordered_json parse_ordered_json(std::string_view text, const std::string& where, const std::string& expected) {
  return parse<nlohmann::ordered_json>(text, where, expected);
}

}  // namespace recur
