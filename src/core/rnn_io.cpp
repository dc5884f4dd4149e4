#include "recur/core/rnn_io.h"

#include <algorithm>
#include <set>
#include <string_view>
#include <utility>
#include <vector>

#include "quote.h"

namespace recur {

namespace {

constexpr std::string_view kKinds[] = {"weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr", "weight_peep"};

// A state_dict name split into its parts: "<kind>_l<layer>[_reverse]".
struct ParamName {
  std::string kind;
  int64_t layer = 0;
  bool reverse = false;
};

// Accepts exactly the spellings rnn_param_name produces (no leading zeros), so anything else
// under the prefix, e.g. "embedding.weight", is left alone.
bool parse_param_name(std::string_view s, ParamName& out) {
  for (std::string_view kind : kKinds) {
    if (!s.starts_with(kind) || s.substr(kind.size()).substr(0, 2) != "_l") continue;
    std::string_view rest = s.substr(kind.size() + 2);
    size_t digits = 0;
    while (digits < rest.size() && rest[digits] >= '0' && rest[digits] <= '9') ++digits;
    if (digits == 0 || digits > 9 || (digits > 1 && rest[0] == '0')) return false;
    int64_t layer = 0;
    for (size_t i = 0; i < digits; ++i) layer = layer * 10 + (rest[i] - '0');
    rest.remove_prefix(digits);
    bool reverse = false;
    if (rest == "_reverse")
      reverse = true;
    else if (!rest.empty())
      return false;
    out = ParamName{std::string(kind), layer, reverse};
    return true;
  }
  return false;
}

// (state_dict name, expected shape) of every parameter of cfg, in PyTorch's order.
std::vector<std::pair<std::string, Shape>> expected_layout(const RnnConfig& cfg) {
  const int64_t G = cfg.gates(), H = cfg.hidden_size, P = cfg.proj_size, R = cfg.state_size();
  const int64_t D = cfg.directions();
  // Shape-only tensors (no data) let rnn_for_each_param supply names and order.
  std::vector<DirectionParams<float>> dirs(size_t(cfg.num_layers * D));
  for (int64_t l = 0; l < cfg.num_layers; ++l)
    for (int64_t d = 0; d < D; ++d) {
      auto& p = dirs[size_t(l * D + d)];
      p.w_ih.shape = {G * H, cfg.layer_input_size(l)};
      p.w_hh.shape = {G * H, R};
      p.b_ih.shape = {G * H};
      p.b_hh.shape = {G * H};
      p.w_hr.shape = {P, H};
      p.w_peep.shape = {3, H};
    }
  std::vector<std::pair<std::string, Shape>> out;
  rnn_for_each_param(cfg, dirs, [&](const std::string& name, Tensor<float>& t) { out.emplace_back(name, t.shape); });
  return out;
}

// Why a parameter-like tensor has no place in cfg, as a hint for the error message.
std::string extra_reason(const RnnConfig& cfg, const ParamName& p) {
  if (p.reverse && !cfg.bidirectional) return "the file is bidirectional but the config is not";
  if (p.layer >= cfg.num_layers)
    return "the file has layer " + std::to_string(p.layer) + " but the config has " +
           std::to_string(cfg.num_layers) + " layer(s)";
  if (p.kind.starts_with("bias") && !cfg.bias) return "the file has biases but the config has bias=no";
  if (p.kind == "weight_hr" && cfg.proj_size == 0) return "the file has a projection but the config has P=0";
  if (p.kind == "weight_peep" && !cfg.peephole) return "the file has peepholes but the config has none";
  return "the config has no such parameter";
}

// Presence, shapes and extras, without reading any data.
void check_file(const RnnConfig& cfg, const SafetensorsReader& reader, const std::string& prefix) {
  const std::string& origin = reader.origin();
  std::set<std::string> expected;
  for (const auto& [name, shape] : expected_layout(cfg)) {
    const std::string full = prefix + name;
    expected.insert(full);
    if (!reader.contains(full))
      throw FormatError(origin + ": missing tensor " + quote_name(full) + " (expected shape " + shape_str(shape) + " for " +
                        rnn_config_summary(cfg) + ")");
    const Shape& got = reader.info(full).shape;
    if (got != shape)
      throw FormatError(origin + ": tensor " + quote_name(full) + ": expected shape " + shape_str(shape) + " for " +
                        rnn_config_summary(cfg) + ", got " + shape_str(got));
  }
  std::vector<std::pair<std::string, ParamName>> extras;
  for (const std::string& full : reader.names()) {
    ParamName p;
    if (full.starts_with(prefix) && !expected.count(full) &&
        parse_param_name(std::string_view(full).substr(prefix.size()), p))
      extras.emplace_back(full, p);
  }
  if (!extras.empty())
    throw FormatError(origin + ": unexpected tensor " + quote_name(extras[0].first) +
                      (extras.size() > 1 ? " (and " + std::to_string(extras.size() - 1) + " more)" : std::string()) +
                      " for " + rnn_config_summary(cfg) + ": " + extra_reason(cfg, extras[0].second));
}

}  // namespace

std::string rnn_config_summary(const RnnConfig& cfg) {
  std::string s(cell_name(cfg.cell));
  if (cfg.cell == CellType::gru) s += " reset=" + std::string(gru_reset_name(cfg.gru_reset));
  s += " I=" + std::to_string(cfg.input_size) + " H=" + std::to_string(cfg.hidden_size);
  if (cfg.proj_size > 0) s += " P=" + std::to_string(cfg.proj_size);
  s += " L=" + std::to_string(cfg.num_layers) + " D=" + std::to_string(cfg.directions());
  s += cfg.bias ? " bias=yes" : " bias=no";
  if (cfg.cell == CellType::lstm) s += cfg.peephole ? " peephole=yes" : " peephole=no";
  return s;
}

template <typename T>
RnnParams<T> rnn_load_params(const RnnConfig& cfg, const SafetensorsReader& reader, const std::string& prefix) {
  cfg.validate();
  check_file(cfg, reader, prefix);
  RnnParams<T> params;
  params.dirs.resize(size_t(cfg.num_layers * cfg.directions()));
  rnn_for_each_param(cfg, params.dirs,
                     [&](const std::string& name, Tensor<T>& t) { t = reader.get<T>(prefix + name); });
  return params;
}

template <typename T>
void rnn_add_params(SafetensorsWriter& writer, const RnnConfig& cfg, const RnnParams<T>& params,
                    const std::string& prefix) {
  cfg.validate();
  const size_t count = size_t(cfg.num_layers * cfg.directions());
  if (params.dirs.size() != count)
    throw ShapeError("rnn_add_params: " + std::to_string(params.dirs.size()) + " layer-directions, expected " +
                     std::to_string(count) + " for " + rnn_config_summary(cfg));
  // The visitor only reads; the cast keeps this compiling with a rnn_for_each_param that
  // accepts only a mutable vector (the original signature in rnn.h).
  auto& dirs = const_cast<std::vector<DirectionParams<T>>&>(params.dirs);
  std::vector<std::pair<std::string, const Tensor<T>*>> tensors;
  rnn_for_each_param(cfg, dirs, [&](const std::string& name, Tensor<T>& t) { tensors.emplace_back(name, &t); });
  const auto layout = expected_layout(cfg);
  // Check all before adding any, so a bad tensor leaves the writer unchanged.
  for (size_t i = 0; i < layout.size(); ++i) {
    const Tensor<T>& t = *tensors[i].second;
    check_shape("rnn_add_params: " + prefix + layout[i].first, t.shape, layout[i].second);
    if (t.numel() != shape_numel(t.shape))
      throw ShapeError("rnn_add_params: " + prefix + layout[i].first + " has " + std::to_string(t.numel()) +
                       " values for shape " + shape_str(t.shape));
  }
  for (const auto& [name, t] : tensors) writer.add(prefix + name, *t);
}

RnnConfig rnn_infer_config(const SafetensorsReader& reader, CellType cell, const std::string& prefix) {
  const std::string& origin = reader.origin();
  RnnConfig cfg;
  cfg.cell = cell;
  cfg.bias = false;
  int64_t max_layer = -1;
  std::string first_hr;
  for (const std::string& full : reader.names()) {
    ParamName p;
    if (!full.starts_with(prefix) || !parse_param_name(std::string_view(full).substr(prefix.size()), p)) continue;
    max_layer = std::max(max_layer, p.layer);
    if (p.reverse) cfg.bidirectional = true;
    if (p.kind.starts_with("bias")) cfg.bias = true;
    if (p.kind == "weight_peep") cfg.peephole = true;
    if (p.kind == "weight_hr" && (first_hr.empty() || (p.layer == 0 && !p.reverse))) first_hr = full;
  }
  if (max_layer < 0)
    throw FormatError(origin + ": no RNN parameters under prefix " + quote_name(prefix) + " (expected e.g. " +
                      quote_name(prefix + "weight_ih_l0") + ")");
  cfg.num_layers = max_layer + 1;

  const std::string w_ih = prefix + "weight_ih_l0";
  if (!reader.contains(w_ih)) throw FormatError(origin + ": missing tensor " + quote_name(w_ih));
  const Shape& s = reader.info(w_ih).shape;  // [G*H, I]
  const int64_t G = gate_count(cell);
  if (s.size() != 2 || s[0] % G != 0)
    throw FormatError(origin + ": tensor " + quote_name(w_ih) + " has shape " + shape_str(s) + ", expected [G*H, I] with G=" +
                      std::to_string(G) + " for " + std::string(cell_name(cell)));
  cfg.hidden_size = s[0] / G;
  cfg.input_size = s[1];
  if (!first_hr.empty()) {
    const Shape& hr = reader.info(first_hr).shape;  // [P, H]
    if (hr.size() != 2)
      throw FormatError(origin + ": tensor " + quote_name(first_hr) + " has shape " + shape_str(hr) + ", expected [P, H]");
    cfg.proj_size = hr[0];
  }
  try {
    cfg.validate();
  } catch (const Error& e) {
    throw FormatError(origin + ": parameters under prefix " + quote_name(prefix) + " do not form a valid network: " + e.what());
  }
  // Every tensor, not just the ones sizes were read from, must agree with the inferred config.
  check_file(cfg, reader, prefix);
  return cfg;
}

template RnnParams<float> rnn_load_params<float>(const RnnConfig&, const SafetensorsReader&, const std::string&);
template RnnParams<double> rnn_load_params<double>(const RnnConfig&, const SafetensorsReader&, const std::string&);
template void rnn_add_params<float>(SafetensorsWriter&, const RnnConfig&, const RnnParams<float>&, const std::string&);
template void rnn_add_params<double>(SafetensorsWriter&, const RnnConfig&, const RnnParams<double>&,
                                     const std::string&);

}  // namespace recur
