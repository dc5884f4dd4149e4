// src/json_fields.h - strict reading of JSON objects from untrusted files: every field must be
// present with the right type, and fields nobody asked for are refused (a typo or a field from
// a newer writer must not be silently ignored). Errors are one-line FormatErrors
// "<where>: \"<field>\": got <value>, expected <what>". Internal to the library.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <string_view>

#include "recur/core/error.h"
#include "recur/core/random.h"
#include "recur/core/rnn.h"
#include "json_parse.h"

namespace recur {

class JsonFields {
 public:
  // Parses `text` as one JSON object; `where` prefixes every error ("model.safetensors: config").
  JsonFields(std::string_view text, std::string where) : where_(std::move(where)) {
    j_ = parse_json(text, where_, "a JSON object");
    if (!j_.is_object()) throw FormatError(where_ + ": got " + std::string(j_.type_name()) + ", expected a JSON object");
  }
  JsonFields(nlohmann::json j, std::string where) : j_(std::move(j)), where_(std::move(where)) {
    if (!j_.is_object()) throw FormatError(where_ + ": got " + std::string(j_.type_name()) + ", expected a JSON object");
  }

  const std::string& where() const { return where_; }
  bool has(const char* name) const { return j_.contains(name); }

  const nlohmann::json& raw(const char* name) {
    seen_.insert(name);
    auto it = j_.find(name);
    if (it == j_.end()) throw FormatError(where_ + ": \"" + name + "\": missing field");
    return *it;
  }
  [[noreturn]] void fail(const char* name, const std::string& expected) const {
    auto it = j_.find(name);
    std::string got = it == j_.end() ? std::string("nothing") : it->dump();
    if (got.size() > 60) got = got.substr(0, 57) + "...";
    throw FormatError(where_ + ": \"" + name + "\": got " + got + ", expected " + expected);
  }

  int64_t integer(const char* name, int64_t lo = std::numeric_limits<int64_t>::min(),
                  int64_t hi = std::numeric_limits<int64_t>::max()) {
    const auto& v = raw(name);
    if (!v.is_number_integer()) fail(name, "an integer");
    const bool too_big = v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(std::numeric_limits<int64_t>::max());
    const int64_t x = too_big ? 0 : v.get<int64_t>();
    if (too_big || x < lo || x > hi) fail(name, "an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
    return x;
  }
  // Finite numbers; `allow_null` maps null to +infinity (used for "no value yet").
  double number(const char* name, bool allow_null = false) {
    const auto& v = raw(name);
    if (allow_null && v.is_null()) return std::numeric_limits<double>::infinity();
    if (!v.is_number()) fail(name, allow_null ? "a number or null" : "a number");
    const double x = v.get<double>();
    if (!std::isfinite(x)) fail(name, "a finite number");
    return x;
  }
  bool boolean(const char* name) {
    const auto& v = raw(name);
    if (!v.is_boolean()) fail(name, "true or false");
    return v.get<bool>();
  }
  std::string string(const char* name) {
    const auto& v = raw(name);
    if (!v.is_string()) fail(name, "a string");
    return v.get<std::string>();
  }
  JsonFields object(const char* name) {
    const auto& v = raw(name);
    if (!v.is_object()) fail(name, "an object");
    return JsonFields(v, where_ + ": \"" + name + "\"");
  }
  // A 64-bit generator state as 4 hex strings (doubles in other JSON readers would round).
  Rng::State rng_state(const char* name) {
    const auto& v = raw(name);
    Rng::State s{};
    if (!v.is_array() || v.size() != s.size()) fail(name, "an array of 4 16-digit hex strings");
    for (size_t i = 0; i < s.size(); ++i) {
      const std::string str = v[i].is_string() ? v[i].get<std::string>() : std::string();
      char* end = nullptr;
      const unsigned long long x = str.size() == 16 ? std::strtoull(str.c_str(), &end, 16) : 0;
      if (str.size() != 16 || end != str.c_str() + 16) fail(name, "an array of 4 16-digit hex strings");
      s[i] = uint64_t(x);
    }
    return s;
  }

  // Refuses any field that was not read.
  void finish() const {
    for (auto it = j_.begin(); it != j_.end(); ++it)
      if (!seen_.count(it.key())) {
        std::string key = it.key();
        if (key.size() > 40) key = key.substr(0, 37) + "...";
        throw FormatError(where_ + ": unknown field \"" + key + "\"; expected only the fields this version writes");
      }
  }

 private:
  nlohmann::json j_;
  std::string where_;
  std::set<std::string> seen_;
};

inline nlohmann::json rng_state_json(const Rng::State& s) {
  nlohmann::json a = nlohmann::json::array();
  for (uint64_t w : s) {
    char buf[24];
    std::snprintf(buf, sizeof buf, "%016llx", (unsigned long long)w);
    a.push_back(buf);
  }
  return a;
}

// +infinity ("no value yet") as null, since JSON has no infinity.
inline nlohmann::json number_or_null(double x) { return std::isfinite(x) ? nlohmann::json(x) : nlohmann::json(); }

// An RnnConfig as checkpoints write it ({"cell", "gru_reset", "input_size", ...}); every field
// is required, checked for range and consumed (finish()). Used by LM and task checkpoints alike.
inline RnnConfig read_rnn_config(JsonFields& r) {
  RnnConfig c;
  const std::string cell = r.string("cell");
  if (cell != "rnn_tanh" && cell != "rnn_relu" && cell != "gru" && cell != "lstm")
    r.fail("cell", "\"rnn_tanh\", \"rnn_relu\", \"gru\" or \"lstm\"");
  c.cell = parse_cell(cell);
  const std::string reset = r.string("gru_reset");
  if (reset != "after" && reset != "before") r.fail("gru_reset", "\"after\" or \"before\"");
  c.gru_reset = parse_gru_reset(reset);
  c.input_size = r.integer("input_size", 1, int64_t(1) << 31);
  c.hidden_size = r.integer("hidden_size", 1, int64_t(1) << 24);
  c.proj_size = r.integer("proj_size", 0, int64_t(1) << 24);
  c.num_layers = r.integer("num_layers", 1, 1024);
  c.bidirectional = r.boolean("bidirectional");
  c.peephole = r.boolean("peephole");
  c.bias = r.boolean("bias");
  c.dropout = r.number("dropout");
  r.finish();
  return c;
}

}  // namespace recur
