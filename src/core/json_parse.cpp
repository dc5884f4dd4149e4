#include "json_parse.h"

#include <set>
#include <vector>

#include "quote.h"
#include "recur/core/error.h"

namespace recur {

namespace {

// Parser messages quote raw input bytes; keep them printable and on one line.
std::string printable(std::string s) {
  for (char& c : s)
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) c = '?';
  return s;
}

// The checking pass: a SAX handler that keeps only the key sets of the open objects.
class CheckingHandler : public nlohmann::json_sax<nlohmann::json> {
 public:
  CheckingHandler(const std::string& where, const std::string& expected, const JsonLimits& limits)
      : where_(where), expected_(expected), limits_(limits) {}

  bool null() override { return true; }
  bool boolean(bool) override { return true; }
  bool number_integer(number_integer_t) override { return true; }
  bool number_unsigned(number_unsigned_t) override { return true; }
  bool number_float(number_float_t, const string_t&) override { return true; }
  bool string(string_t&) override { return true; }
  bool binary(binary_t&) override { return true; }
  bool start_object(std::size_t) override {
    open(true);
    return true;
  }
  bool key(string_t& k) override {
    if (!keys_.back().insert(k).second)
      throw FormatError(where_ + ": duplicate key " + quote_name(k) + " in the JSON; expected " + expected_);
    return true;
  }
  bool end_object() override {
    keys_.pop_back();
    --depth_;
    return true;
  }
  bool start_array(std::size_t) override {
    open(false);
    return true;
  }
  bool end_array() override {
    --depth_;
    return true;
  }
  bool parse_error(std::size_t position, const std::string&, const nlohmann::detail::exception& e) override {
    // 406: nlohmann's "number overflow parsing '1e400'"; its text starts with a bracketed id.
    if (e.id == 406) {
      std::string what = e.what();
      const size_t cut = what.find("] ");
      if (cut != std::string::npos) what = what.substr(cut + 2);
      throw FormatError(where_ + ": " + printable(what) + ": number out of range of a double; expected " + expected_);
    }
    // position counts characters read, the failing one included: report the 0-based offset.
    throw FormatError(where_ + ": JSON syntax error at byte " + std::to_string(position > 0 ? position - 1 : 0) +
                      "; expected " + expected_);
  }

 private:
  void open(bool object) {
    if (++depth_ > limits_.max_depth)
      throw FormatError(where_ + ": JSON nests deeper than " + std::to_string(limits_.max_depth) + " levels; expected " +
                        expected_);
    if (object) keys_.emplace_back();
  }

  const std::string& where_;
  const std::string& expected_;
  const JsonLimits& limits_;
  int depth_ = 0;
  std::vector<std::set<std::string>> keys_;  // one per open object
};

template <typename Json>
Json parse(std::string_view text, const std::string& where, const std::string& expected, const JsonLimits& limits) {
  CheckingHandler check(where, expected, limits);
  nlohmann::json::sax_parse(text.begin(), text.end(), &check);
  // The text is known to be valid, shallow and free of overflowing numbers now.
  return Json::parse(text.begin(), text.end());
}

}  // namespace

nlohmann::json parse_json(std::string_view text, const std::string& where, const std::string& expected,
                          const JsonLimits& limits) {
  return parse<nlohmann::json>(text, where, expected, limits);
}

nlohmann::ordered_json parse_ordered_json(std::string_view text, const std::string& where, const std::string& expected,
                                          const JsonLimits& limits) {
  return parse<nlohmann::ordered_json>(text, where, expected, limits);
}

}  // namespace recur
