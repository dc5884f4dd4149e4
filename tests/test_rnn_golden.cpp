// test_rnn_golden.cpp - recur's recurrent core against PyTorch.
//
// Every tests/golden/rnn/<case>.safetensors (written by tools/gen_rnn_golden.py, see the README
// there) holds a config, parameters, input, initial states, upstream gradients and PyTorch's
// forward results and gradients in float64. Each case runs rnn_forward + rnn_backward in double
// (relative error <= 1e-9) and in float (<= 1e-4), where relative error = max|a - b| / max|b|.
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <map>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "recur/core/cell.h"
#include "recur/core/rnn.h"
#include "recur/core/safetensors.h"
#include "recur/core/tensor.h"

namespace {

namespace fs = std::filesystem;
using recur::RnnConfig;
using recur::SafetensorsReader;
using recur::Shape;
using recur::Tensor;

const std::string kGoldenRnnDir = std::string(RECUR_GOLDEN_DIR) + "/rnn";

std::vector<std::string> golden_files() {
  std::vector<std::string> files;
  std::error_code ec;
  if (!fs::is_directory(kGoldenRnnDir, ec)) return files;
  for (const auto& e : fs::directory_iterator(kGoldenRnnDir, ec))
    if (e.is_regular_file() && e.path().extension() == ".safetensors") files.push_back(e.path().string());
  std::sort(files.begin(), files.end());
  return files;
}

std::string case_name(const std::string& path) { return fs::path(path).stem().string(); }

const std::string& meta(const SafetensorsReader& rd, const std::string& key) {
  auto it = rd.metadata().find(key);
  if (it == rd.metadata().end()) throw std::runtime_error(rd.origin() + ": metadata has no '" + key + "'");
  return it->second;
}

int64_t meta_int(const SafetensorsReader& rd, const std::string& key) {
  const std::string& s = meta(rd, key);
  size_t used = 0;
  int64_t v = std::stoll(s, &used);
  if (used != s.size()) throw std::runtime_error(rd.origin() + ": metadata '" + key + "' is not an integer: " + s);
  return v;
}

std::vector<int64_t> parse_lengths(const std::string& s) {
  std::vector<int64_t> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) out.push_back(std::stoll(item));
  return out;
}

RnnConfig config_from(const SafetensorsReader& rd) {
  RnnConfig cfg;
  cfg.cell = recur::parse_cell(meta(rd, "cell"));
  cfg.input_size = meta_int(rd, "input_size");
  cfg.hidden_size = meta_int(rd, "hidden_size");
  cfg.proj_size = meta_int(rd, "proj_size");
  cfg.num_layers = meta_int(rd, "num_layers");
  cfg.bidirectional = meta_int(rd, "bidirectional") != 0;
  cfg.bias = true;
  cfg.dropout = 0.0;
  cfg.validate();
  return cfg;
}

std::string index_str(const Shape& shape, int64_t flat) {
  std::vector<int64_t> idx(shape.size());
  for (size_t k = shape.size(); k-- > 0;) {
    idx[k] = flat % shape[k];
    flat /= shape[k];
  }
  return recur::shape_str(idx);
}

// Relative error max|a - b| / max(max|b|, 1e-30) of `got` against the float64 golden `want`.
template <typename T>
void expect_close(const std::string& where, const std::string& name, const Tensor<T>& got,
                  const Tensor<double>& want, double tol) {
  if (got.shape != want.shape || got.numel() != want.numel()) {
    ADD_FAILURE() << where << " " << name << ": shape " << recur::shape_str(got.shape) << " ("
                  << got.numel() << " values), golden " << recur::shape_str(want.shape);
    return;
  }
  double max_b = 0.0, max_diff = 0.0;
  int64_t worst = -1;
  for (int64_t i = 0; i < want.numel(); ++i) {
    max_b = std::max(max_b, std::abs(want.data[size_t(i)]));
    const double diff = std::abs(double(got.data[size_t(i)]) - want.data[size_t(i)]);
    if (!(diff <= max_diff)) {  // also catches NaN
      max_diff = diff;
      worst = i;
      if (std::isnan(diff)) break;
    }
  }
  const double rel = max_diff / std::max(max_b, 1e-30);
  if (!(rel <= tol)) {
    ADD_FAILURE() << where << " " << name << ": relative error " << rel << " > " << tol << " (max|golden| " << max_b
                  << ", worst at " << index_str(want.shape, worst) << ": got " << double(got.data[size_t(worst)])
                  << ", golden " << want.data[size_t(worst)] << ")";
  }
}

template <typename T>
Tensor<T> load(const SafetensorsReader& rd, const std::string& name, const Shape& shape) {
  return recur::tensor_cast<T>(rd.get<double>(name, shape));
}

template <typename T>
void run_case(const std::string& path, double tol) {
  const std::string where = case_name(path) + (std::is_same_v<T, double> ? " [double]" : " [float]");
  SCOPED_TRACE(where);
  const SafetensorsReader rd = SafetensorsReader::open(path);
  const RnnConfig cfg = config_from(rd);
  const bool lstm = cfg.has_cell_state();
  const int64_t L = cfg.num_layers, D = cfg.directions(), H = cfg.hidden_size, R = cfg.state_size();

  const Tensor<double> input_d = rd.get<double>("input");
  ASSERT_EQ(input_d.rank(), 3) << where << " input: " << recur::shape_str(input_d.shape);
  const int64_t steps = input_d.dim(0), batch = input_d.dim(1);
  ASSERT_EQ(input_d.dim(2), cfg.input_size) << where << " input: " << recur::shape_str(input_d.shape);
  const std::vector<int64_t> golden_lengths = parse_lengths(meta(rd, "lengths"));
  ASSERT_EQ(int64_t(golden_lengths.size()), batch) << where << " metadata lengths";
  for (int64_t n : golden_lengths) ASSERT_TRUE(n >= 1 && n <= steps) << where << " length " << n;
  // All full length: exercise the "empty = all T" path.
  const bool all_full = std::all_of(golden_lengths.begin(), golden_lengths.end(), [&](int64_t n) { return n == steps; });
  const std::vector<int64_t> lengths = all_full ? std::vector<int64_t>{} : golden_lengths;

  // Parameters by state_dict name, shapes as recur expects them; every parameter in the file
  // must be one recur knows.
  recur::RnnParams<T> params;
  params.dirs = recur::rnn_zero_grads<T>(cfg).dirs;
  std::set<std::string> param_names;
  recur::rnn_for_each_param(cfg, params.dirs, [&](const std::string& name, Tensor<T>& t) {
    param_names.insert(name);
    t = load<T>(rd, name, t.shape);
  });
  recur::rnn_check_params(cfg, params);
  const std::set<std::string> io_names = {"input", "h0", "c0", "output", "h_n", "c_n", "grad_output", "grad_h_n", "grad_c_n"};
  for (const std::string& name : rd.names()) {
    if (name.rfind("grad.", 0) == 0 || io_names.count(name)) continue;
    EXPECT_TRUE(param_names.count(name)) << where << ": golden parameter " << name << " not visited by rnn_for_each_param";
  }

  const Tensor<T> input = recur::tensor_cast<T>(input_d);
  recur::RnnState<T> state0;
  state0.h = load<T>(rd, "h0", {L * D, batch, R});
  if (lstm) state0.c = load<T>(rd, "c0", {L * D, batch, H});

  // Forward.
  Tensor<T> output;
  recur::RnnState<T> state_n;
  recur::RnnCache<T> cache;
  recur::ForwardOptions opts;
  recur::rnn_forward(cfg, params, input, lengths, state0, opts, output, state_n, cache);

  expect_close(where, "output", output, rd.get<double>("output"), tol);
  expect_close(where, "h_n", state_n.h, rd.get<double>("h_n"), tol);
  if (lstm) expect_close(where, "c_n", state_n.c, rd.get<double>("c_n"), tol);
  if (output.shape == Shape{steps, batch, cfg.output_size()}) {
    const int64_t F = cfg.output_size();
    for (int64_t b = 0; b < batch; ++b)
      for (int64_t t = golden_lengths[size_t(b)]; t < steps; ++t)
        for (int64_t f = 0; f < F; ++f) {
          const T v = output.data[size_t((t * batch + b) * F + f)];
          if (v != T(0)) {
            ADD_FAILURE() << where << " output: nonzero " << double(v) << " past length " << golden_lengths[size_t(b)]
                          << " at [" << t << ", " << b << ", " << f << "]";
            t = steps;  // one message per sequence
            break;
          }
        }
  }

  // Backward.
  const Tensor<T> grad_output = load<T>(rd, "grad_output", {steps, batch, cfg.output_size()});
  recur::RnnState<T> grad_state_n;
  grad_state_n.h = load<T>(rd, "grad_h_n", {L * D, batch, R});
  if (lstm) grad_state_n.c = load<T>(rd, "grad_c_n", {L * D, batch, H});
  recur::RnnGrads<T> grads = recur::rnn_zero_grads<T>(cfg);
  Tensor<T> grad_input({1}, T(123));  // wrong shape and garbage: must be resized and overwritten
  recur::RnnState<T> grad_state0;
  grad_state0.h = Tensor<T>({1}, T(123));
  recur::rnn_backward(cfg, params, input, cache, grad_output, grad_state_n, grads, &grad_input, &grad_state0);

  const Tensor<double> golden_grad_input = rd.get<double>("grad.input");
  const Tensor<double> golden_grad_h0 = rd.get<double>("grad.h0");
  const Tensor<double> golden_grad_c0 = lstm ? rd.get<double>("grad.c0") : Tensor<double>();
  expect_close(where, "grad.input", grad_input, golden_grad_input, tol);
  expect_close(where, "grad.h0", grad_state0.h, golden_grad_h0, tol);
  if (lstm) expect_close(where, "grad.c0", grad_state0.c, golden_grad_c0, tol);
  std::map<std::string, Tensor<double>> golden_grads;
  recur::rnn_for_each_param(cfg, grads.dirs, [&](const std::string& name, Tensor<T>& g) {
    golden_grads[name] = rd.get<double>("grad." + name);
    expect_close(where, "grad." + name, g, golden_grads[name], tol);
  });

  // A second backward of the same forward accumulates into the parameter gradients (twice the
  // golden) and overwrites grad_input / grad_state0 (the golden again): the cache is read-only.
  recur::rnn_backward(cfg, params, input, cache, grad_output, grad_state_n, grads, &grad_input, &grad_state0);
  const std::string again = where + " (second backward)";
  expect_close(again, "grad.input", grad_input, golden_grad_input, tol);
  expect_close(again, "grad.h0", grad_state0.h, golden_grad_h0, tol);
  if (lstm) expect_close(again, "grad.c0", grad_state0.c, golden_grad_c0, tol);
  recur::rnn_for_each_param(cfg, grads.dirs, [&](const std::string& name, Tensor<T>& g) {
    Tensor<double> twice = golden_grads.at(name);
    for (double& v : twice.data) v *= 2.0;
    expect_close(again, "grad." + name + " accumulated x2", g, twice, tol);
  });
}

class RnnGolden : public ::testing::TestWithParam<std::string> {};

TEST_P(RnnGolden, MatchesPyTorchDouble) { run_case<double>(GetParam(), 1e-9); }
TEST_P(RnnGolden, MatchesPyTorchFloat) { run_case<float>(GetParam(), 1e-4); }

INSTANTIATE_TEST_SUITE_P(Cases, RnnGolden, ::testing::ValuesIn(golden_files()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           std::string name = case_name(info.param);
                           for (char& ch : name)
                             if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
                           return name;
                         });
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(RnnGolden);

// Fails loudly when the golden files are missing, instead of passing with zero cases.
TEST(RnnGoldenFiles, Present) {
  const auto files = golden_files();
  EXPECT_FALSE(files.empty()) << "no *.safetensors in " << kGoldenRnnDir
                              << " (regenerate with /usr/bin/python3 tools/gen_rnn_golden.py)";
  bool per_cell[4] = {false, false, false, false};
  for (const auto& f : files) {
    const std::string n = case_name(f);
    per_cell[0] |= n.rfind("rnn_tanh", 0) == 0;
    per_cell[1] |= n.rfind("rnn_relu", 0) == 0;
    per_cell[2] |= n.rfind("gru", 0) == 0;
    per_cell[3] |= n.rfind("lstm", 0) == 0;
  }
  EXPECT_TRUE(per_cell[0] && per_cell[1] && per_cell[2] && per_cell[3])
      << "golden files in " << kGoldenRnnDir << " do not cover every cell";
}

}  // namespace
