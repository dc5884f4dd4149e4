// PyTorch interoperability of recur's safetensors files: recur writes a network's parameters,
// tools/check_torch_interop.py loads them into torch.nn with load_state_dict(strict=True),
// runs a forward pass and dumps PyTorch's state_dict back; the parameters must return bit for
// bit and the dump must load through recur's own loader. Skipped without /usr/bin/python3 + torch.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "recur/core/random.h"
#include "recur/core/rnn.h"
#include "recur/core/rnn_io.h"

namespace recur {
namespace {

namespace fs = std::filesystem;

// tests/golden/../.. is the repository root; the tools are not installed anywhere else.
const std::string kTool = std::string(RECUR_GOLDEN_DIR) + "/../../tools/check_torch_interop.py";
const std::string kPython = "/usr/bin/python3";

bool torch_available() {
  static const bool ok = std::system((kPython + " -c 'import torch' >/dev/null 2>&1").c_str()) == 0;
  return ok;
}

class TempDir {
 public:
  TempDir() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    path_ = fs::temp_directory_path() / ("recur_torch_" + std::to_string(::getpid()) + "_" + info->name());
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  fs::path path_;
};

template <typename T>
Tensor<T> uniform(Shape shape, Rng& rng) {
  Tensor<T> t(std::move(shape));
  for (T& v : t.data) v = T(rng.uniform(-1.0, 1.0));
  return t;
}

// Filled here rather than by rnn_init_params so that only the I/O code is under test.
template <typename T>
RnnParams<T> make_params(const RnnConfig& cfg, Rng& rng) {
  const int64_t G = cfg.gates(), H = cfg.hidden_size, R = cfg.state_size();
  RnnParams<T> p;
  for (int64_t l = 0; l < cfg.num_layers; ++l)
    for (int64_t d = 0; d < cfg.directions(); ++d) {
      DirectionParams<T> dp;
      dp.w_ih = uniform<T>({G * H, cfg.layer_input_size(l)}, rng);
      dp.w_hh = uniform<T>({G * H, R}, rng);
      if (cfg.bias) {
        dp.b_ih = uniform<T>({G * H}, rng);
        dp.b_hh = uniform<T>({G * H}, rng);
      }
      if (cfg.proj_size > 0) dp.w_hr = uniform<T>({cfg.proj_size, H}, rng);
      p.dirs.push_back(std::move(dp));
    }
  return p;
}

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

template <typename T>
void check_round_trip_through_torch(const RnnConfig& cfg, const std::string& prefix) {
  if (!torch_available()) GTEST_SKIP() << kPython << " cannot import torch";
  TempDir dir;
  const std::string in = dir.file("recur.safetensors"), out = dir.file("torch.safetensors"), log = dir.file("log");
  constexpr int64_t steps = 4, batch = 2;  // T, B

  Rng rng(42);
  auto params = make_params<T>(cfg, rng);
  SafetensorsWriter w;
  rnn_add_params(w, cfg, params, prefix);
  w.add("input", uniform<T>({steps, batch, cfg.input_size}, rng));  // [T, B, I]
  w.set_metadata("cell", std::string(cell_name(cfg.cell)));
  w.write(in);

  const std::string cmd = kPython + " " + kTool + " " + in + " --dump " + out +
                          (prefix.empty() ? "" : " --prefix " + prefix) + " >" + log + " 2>&1";
  const int status = std::system(cmd.c_str());
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << cmd << "\n" << slurp(log);

  // PyTorch's own state_dict, written by the Python tool: same names, dtypes and bits.
  const auto theirs = SafetensorsReader::open(out);
  const auto ours = SafetensorsReader::open(in);
  int compared = 0;
  rnn_for_each_param(cfg, params.dirs, [&](const std::string& name, Tensor<T>& t) {
    const std::string full = prefix + name;
    ASSERT_TRUE(theirs.contains(full)) << full;
    EXPECT_EQ(theirs.info(full).dtype, ours.info(full).dtype) << full;
    const Tensor<T> back = theirs.get<T>(full, t.shape);
    EXPECT_EQ(std::memcmp(back.ptr(), t.ptr(), t.data.size() * sizeof(T)), 0) << full << " changed bits";
    ++compared;
  });
  EXPECT_GT(compared, 0);

  // And recur reads PyTorch's file back: same config, same parameters.
  EXPECT_EQ(rnn_config_summary(rnn_infer_config(theirs, cfg.cell, prefix)), rnn_config_summary(cfg));
  const auto reloaded = rnn_load_params<T>(cfg, theirs, prefix);
  EXPECT_EQ(reloaded.dirs[0].w_ih.data, params.dirs[0].w_ih.data);

  // PyTorch's forward on recur's saved weights equals recur's own forward.
  const int64_t LD = cfg.num_layers * cfg.directions();
  const Tensor<T> x = ours.get<T>("input");
  Tensor<T> y;
  RnnState<T> sn;
  RnnCache<T> cache;
  rnn_forward(cfg, params, x, {}, {}, {}, y, sn, cache);
  const double tol = std::is_same_v<T, float> ? 1e-5 : 1e-12;
  auto expect_close = [&](const std::string& name, const Tensor<T>& mine, const Shape& shape) {
    const Tensor<T> torch_t = theirs.get<T>(name, shape);
    double worst = 0;
    for (size_t i = 0; i < mine.data.size(); ++i) worst = std::max(worst, std::abs(double(mine.data[i]) - double(torch_t.data[i])));
    EXPECT_LE(worst, tol) << name << ": recur and PyTorch differ by " << worst;
  };
  expect_close("output", y, {steps, batch, cfg.output_size()});  // [T, B, D*R]
  expect_close("h_n", sn.h, {LD, batch, cfg.state_size()});       // [L*D, B, R]
  if (cfg.has_cell_state()) expect_close("c_n", sn.c, {LD, batch, cfg.hidden_size});  // [L*D, B, H]
}

TEST(TorchInterop, LstmProjectionBidirectionalTwoLayersFloat) {
  RnnConfig cfg;
  cfg.cell = CellType::lstm;
  cfg.input_size = 3;
  cfg.hidden_size = 5;
  cfg.proj_size = 2;
  cfg.num_layers = 2;
  cfg.bidirectional = true;
  check_round_trip_through_torch<float>(cfg, "");
}

TEST(TorchInterop, GruNoBiasThreeLayersDoubleWithPrefix) {
  RnnConfig cfg;
  cfg.cell = CellType::gru;
  cfg.input_size = 4;
  cfg.hidden_size = 3;
  cfg.num_layers = 3;
  cfg.bias = false;
  check_round_trip_through_torch<double>(cfg, "encoder.rnn.");
}

TEST(TorchInterop, ReluRnnBidirectionalFloat) {
  RnnConfig cfg;
  cfg.cell = CellType::rnn_relu;
  cfg.input_size = 2;
  cfg.hidden_size = 6;
  cfg.bidirectional = true;
  check_round_trip_through_torch<float>(cfg, "");
}

// The tool must refuse what PyTorch cannot represent rather than load a different network.
TEST(TorchInterop, ToolRejectsConfigMismatch) {
  if (!torch_available()) GTEST_SKIP() << kPython << " cannot import torch";
  TempDir dir;
  RnnConfig cfg;
  cfg.cell = CellType::lstm;
  cfg.input_size = 3;
  cfg.hidden_size = 4;
  Rng rng(1);
  SafetensorsWriter w;
  rnn_add_params(w, cfg, make_params<float>(cfg, rng));
  // A stray reverse-direction tensor: strict loading must fail, not ignore it.
  w.add("weight_ih_l0_reverse", uniform<float>({16, 3}, rng));
  w.set_metadata("cell", "lstm");
  w.write(dir.file("bad.safetensors"));
  const std::string cmd =
      kPython + " " + kTool + " " + dir.file("bad.safetensors") + " >" + dir.file("log") + " 2>&1";
  const int status = std::system(cmd.c_str());
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 1) << slurp(dir.file("log"));
  EXPECT_NE(slurp(dir.file("log")).find("load_state_dict(strict=True) refused"), std::string::npos)
      << slurp(dir.file("log"));
}

}  // namespace
}  // namespace recur
