// rnn_reference GOLDEN OUT float|double - the C++ side of python/tests/test_rnn.py: runs one
// tests/golden/rnn case (its parameters, input, lengths, initial states and upstream gradients)
// through rnn_forward and rnn_backward as a C++ program would, and writes what they return to
// OUT (safetensors: output, h_n, c_n, grad.input, grad.h0, grad.c0, grad.<parameter>). The test
// runs the same case through recur.RNN and expects every value bit for bit.
#include <cstdio>
#include <exception>
#include <sstream>
#include <string>
#include <vector>

#include "recur/core/rnn.h"
#include "recur/core/safetensors.h"

namespace {

using namespace recur;

const std::string& meta(const SafetensorsReader& rd, const std::string& key) {
  const auto it = rd.metadata().find(key);
  if (it == rd.metadata().end()) throw Error(rd.origin() + ": metadata has no '" + key + "'");
  return it->second;
}

template <typename T>
Tensor<T> load(const SafetensorsReader& rd, const std::string& name) {
  return tensor_cast<T>(rd.get<double>(name));
}

template <typename T>
void run(const std::string& golden, const std::string& out) {
  const SafetensorsReader rd = SafetensorsReader::open(golden);
  RnnConfig cfg;
  cfg.cell = parse_cell(meta(rd, "cell"));
  cfg.input_size = std::stoll(meta(rd, "input_size"));
  cfg.hidden_size = std::stoll(meta(rd, "hidden_size"));
  cfg.proj_size = std::stoll(meta(rd, "proj_size"));
  cfg.num_layers = std::stoll(meta(rd, "num_layers"));
  cfg.bidirectional = std::stoll(meta(rd, "bidirectional")) != 0;
  cfg.validate();
  const bool lstm = cfg.has_cell_state();

  RnnParams<T> params;
  params.dirs = rnn_zero_grads<T>(cfg).dirs;
  rnn_for_each_param(cfg, params.dirs, [&](const std::string& name, Tensor<T>& t) { t = load<T>(rd, name); });
  rnn_check_params(cfg, params);
  const Tensor<T> input = load<T>(rd, "input");
  // All sequences full: empty lengths, as the Python test passes None.
  std::vector<int64_t> lengths;
  std::stringstream ss(meta(rd, "lengths"));
  bool all_full = true;
  for (std::string item; std::getline(ss, item, ',');) {
    lengths.push_back(std::stoll(item));
    all_full = all_full && lengths.back() == input.dim(0);
  }
  if (all_full) lengths.clear();
  RnnState<T> state0;
  state0.h = load<T>(rd, "h0");
  if (lstm) state0.c = load<T>(rd, "c0");

  Tensor<T> output;
  RnnState<T> state_n;
  RnnCache<T> cache;
  rnn_forward(cfg, params, input, lengths, state0, ForwardOptions{}, output, state_n, cache);
  RnnState<T> grad_n;
  grad_n.h = load<T>(rd, "grad_h_n");
  if (lstm) grad_n.c = load<T>(rd, "grad_c_n");
  RnnGrads<T> grads = rnn_zero_grads<T>(cfg);
  Tensor<T> grad_input;
  RnnState<T> grad_state0;
  rnn_backward(cfg, params, input, cache, load<T>(rd, "grad_output"), grad_n, grads, &grad_input, &grad_state0);

  SafetensorsWriter w;
  w.add("output", output);
  w.add("h_n", state_n.h);
  w.add("grad.input", grad_input);
  w.add("grad.h0", grad_state0.h);
  if (lstm) {
    w.add("c_n", state_n.c);
    w.add("grad.c0", grad_state0.c);
  }
  rnn_for_each_param(cfg, grads.dirs, [&](const std::string& name, const Tensor<T>& g) { w.add("grad." + name, g); });
  w.write(out);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4 || (std::string(argv[3]) != "float" && std::string(argv[3]) != "double")) {
    std::fprintf(stderr, "usage: rnn_reference GOLDEN.safetensors OUT.safetensors float|double\n");
    return 2;
  }
  try {
    if (std::string(argv[3]) == "float") run<float>(argv[1], argv[2]);
    else run<double>(argv[1], argv[2]);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "rnn_reference: %s\n", e.what());
    return 1;
  }
  return 0;
}
