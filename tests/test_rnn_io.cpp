// RNN parameters in safetensors under PyTorch's state_dict names: round trips, config
// mismatches in both directions, and config inference. Also the config vocabulary of cell.h.
#include "recur/core/rnn_io.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <functional>

#include "recur/core/random.h"

namespace recur {
namespace {

const std::string kOrigin = "lstm.safetensors";

// Filled independently of rnn_init_params so this test needs only the I/O code.
template <typename T>
RnnParams<T> make_params(const RnnConfig& cfg, uint64_t seed) {
  Rng rng(seed);
  const int64_t G = cfg.gates(), H = cfg.hidden_size, P = cfg.proj_size, R = cfg.state_size();
  auto fill = [&](Shape s) {
    Tensor<T> t(std::move(s));
    for (T& v : t.data) v = T(rng.uniform(-1.0, 1.0));
    return t;
  };
  RnnParams<T> p;
  for (int64_t l = 0; l < cfg.num_layers; ++l)
    for (int64_t d = 0; d < cfg.directions(); ++d) {
      DirectionParams<T> dp;
      dp.w_ih = fill({G * H, cfg.layer_input_size(l)});
      dp.w_hh = fill({G * H, R});
      if (cfg.bias) {
        dp.b_ih = fill({G * H});
        dp.b_hh = fill({G * H});
      }
      if (P > 0) dp.w_hr = fill({P, H});
      if (cfg.peephole) dp.w_peep = fill({3, H});
      p.dirs.push_back(std::move(dp));
    }
  return p;
}

RnnConfig lstmp_config() {
  RnnConfig cfg;
  cfg.cell = CellType::lstm;
  cfg.input_size = 3;
  cfg.hidden_size = 5;
  cfg.proj_size = 2;
  cfg.num_layers = 2;
  cfg.bidirectional = true;
  return cfg;
}

template <typename T>
SafetensorsReader saved(const RnnConfig& cfg, const RnnParams<T>& p, const std::string& prefix = "") {
  SafetensorsWriter w;
  rnn_add_params(w, cfg, p, prefix);
  return SafetensorsReader::from_bytes(w.serialize(), kOrigin);
}

template <typename T>
void expect_same(const RnnConfig& cfg, RnnParams<T> a, RnnParams<T> b) {
  ASSERT_EQ(a.dirs.size(), b.dirs.size());
  std::vector<std::pair<std::string, Tensor<T>*>> ta, tb;
  rnn_for_each_param(cfg, a.dirs, [&](const std::string& n, Tensor<T>& t) { ta.emplace_back(n, &t); });
  rnn_for_each_param(cfg, b.dirs, [&](const std::string& n, Tensor<T>& t) { tb.emplace_back(n, &t); });
  ASSERT_EQ(ta.size(), tb.size());
  for (size_t i = 0; i < ta.size(); ++i) {
    EXPECT_EQ(ta[i].second->shape, tb[i].second->shape) << ta[i].first;
    EXPECT_EQ(ta[i].second->data, tb[i].second->data) << ta[i].first;
  }
}

void expect_format_error(const std::function<void()>& f, std::vector<std::string> phrases) {
  try {
    f();
    ADD_FAILURE() << "no exception; expected one containing '" << phrases.at(0) << "'";
  } catch (const FormatError& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.rfind(kOrigin + ": ", 0), 0u) << msg;
    for (const auto& p : phrases) EXPECT_NE(msg.find(p), std::string::npos) << "missing '" << p << "' in: " << msg;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "wrong exception type: " << e.what();
  }
}

// The file without one tensor, or with one more.
SafetensorsReader edited(const SafetensorsReader& r, const std::string& drop, const std::string& add = "",
                         const Shape& add_shape = {}) {
  SafetensorsWriter w;
  for (const auto& n : r.names())
    if (n != drop) w.add(n, r.get<float>(n));
  if (!add.empty()) w.add(add, Tensor<float>(add_shape));
  return SafetensorsReader::from_bytes(w.serialize(), kOrigin);
}

TEST(RnnIo, ParamNamesFollowPyTorch) {
  EXPECT_EQ(rnn_param_name("weight_ih", 0, 0), "weight_ih_l0");
  EXPECT_EQ(rnn_param_name("bias_hh", 1, 1), "bias_hh_l1_reverse");
  EXPECT_EQ(rnn_param_name("weight_hr", 12, 0), "weight_hr_l12");
  EXPECT_THROW(rnn_param_name("weight_xx", 0, 0), Error);
  EXPECT_THROW(rnn_param_name("weight_ih", 0, 2), Error);

  const auto cfg = lstmp_config();
  const auto r = saved(cfg, make_params<float>(cfg, 1));
  // Exactly nn.LSTM(3, 5, num_layers=2, bidirectional=True, proj_size=2).state_dict().keys().
  std::vector<std::string> expected;
  for (const char* l : {"l0", "l1"})
    for (const char* suffix : {"", "_reverse"})
      for (const char* kind : {"weight_ih_", "weight_hh_", "bias_ih_", "bias_hh_", "weight_hr_"})
        expected.push_back(std::string(kind) + l + suffix);
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(r.names(), expected);
  EXPECT_EQ(r.info("weight_ih_l1_reverse").shape, (Shape{20, 4}));  // [G*H, D*P]
  EXPECT_EQ(r.info("weight_hh_l0").shape, (Shape{20, 2}));          // [G*H, P]
  EXPECT_EQ(r.info("weight_hr_l0").shape, (Shape{2, 5}));           // [P, H]
}

TEST(RnnIo, RoundTripLstmProjectionBidirectionalTwoLayers) {
  const auto cfg = lstmp_config();
  const auto p = make_params<float>(cfg, 7);
  expect_same(cfg, p, rnn_load_params<float>(cfg, saved(cfg, p)));

  const auto pd = make_params<double>(cfg, 8);
  const auto r = saved(cfg, pd);
  EXPECT_EQ(r.info("weight_ih_l0").dtype, DType::f64);
  expect_same(cfg, pd, rnn_load_params<double>(cfg, r));
  // A double file loads as float by rounding.
  RnnParams<float> rounded;
  for (const auto& d : pd.dirs)
    rounded.dirs.push_back({tensor_cast<float>(d.w_ih), tensor_cast<float>(d.w_hh), tensor_cast<float>(d.b_ih),
                            tensor_cast<float>(d.b_hh), tensor_cast<float>(d.w_hr), tensor_cast<float>(d.w_peep)});
  expect_same(cfg, rounded, rnn_load_params<float>(cfg, r));
}

TEST(RnnIo, RoundTripOtherCellsAndPeephole) {
  RnnConfig gru;
  gru.cell = CellType::gru;
  gru.input_size = 4;
  gru.hidden_size = 3;
  gru.num_layers = 3;
  gru.bias = false;
  const auto pg = make_params<double>(gru, 2);
  expect_same(gru, pg, rnn_load_params<double>(gru, saved(gru, pg)));

  RnnConfig peep = lstmp_config();
  peep.peephole = true;
  peep.proj_size = 0;
  const auto pp = make_params<float>(peep, 3);
  const auto r = saved(peep, pp);
  EXPECT_TRUE(r.contains("weight_peep_l1_reverse"));
  expect_same(peep, pp, rnn_load_params<float>(peep, r));
}

TEST(RnnIo, PrefixSelectsOneModule) {
  const auto cfg = lstmp_config();
  const auto p = make_params<float>(cfg, 4);
  SafetensorsWriter w;
  rnn_add_params(w, cfg, p, "encoder.rnn.");
  rnn_add_params(w, cfg, make_params<float>(cfg, 5), "decoder.rnn.");
  w.add("encoder.embedding.weight", Tensor<float>({10, 3}));
  const auto r = SafetensorsReader::from_bytes(w.serialize(), kOrigin);
  expect_same(cfg, p, rnn_load_params<float>(cfg, r, "encoder.rnn."));
  const auto inferred = rnn_infer_config(r, CellType::lstm, "decoder.rnn.");
  EXPECT_EQ(inferred.hidden_size, 5);
  expect_format_error([&] { rnn_load_params<float>(cfg, r); }, {"missing tensor 'weight_ih_l0'"});
}

TEST(RnnIo, MissingTensor) {
  const auto cfg = lstmp_config();
  const auto r = edited(saved(cfg, make_params<float>(cfg, 1)), "bias_hh_l1_reverse");
  expect_format_error([&] { rnn_load_params<float>(cfg, r); },
                      {"missing tensor 'bias_hh_l1_reverse'", "expected shape [20]", "lstm I=3 H=5 P=2 L=2 D=2"});
  // A file saved without biases does not load into a config with them.
  RnnConfig nobias = cfg;
  nobias.bias = false;
  const auto r2 = saved(nobias, make_params<float>(nobias, 1));
  expect_format_error([&] { rnn_load_params<float>(cfg, r2); }, {"missing tensor 'bias_ih_l0'"});
}

TEST(RnnIo, WrongShape) {
  const auto cfg = lstmp_config();
  const auto r = saved(cfg, make_params<float>(cfg, 1));
  RnnConfig other = cfg;
  other.input_size = 4;
  expect_format_error([&] { rnn_load_params<float>(other, r); },
                      {"tensor 'weight_ih_l0'", "expected shape [20, 4]", "got [20, 3]"});
  other = cfg;
  other.proj_size = 3;
  expect_format_error([&] { rnn_load_params<float>(other, r); },
                      {"tensor 'weight_hh_l0'", "expected shape [20, 3]", "got [20, 2]"});
}

TEST(RnnIo, ExtraTensorsAreAConfigMismatch) {
  const auto cfg = lstmp_config();
  const auto r = saved(cfg, make_params<float>(cfg, 1));
  // A file matching a unidirectional config plus one reverse-direction tensor.
  RnnConfig uni = cfg;
  uni.bidirectional = false;
  SafetensorsWriter w;
  rnn_add_params(w, uni, make_params<float>(uni, 2));
  w.add("weight_ih_l0_reverse", Tensor<float>({20, 3}));
  const auto r_uni = SafetensorsReader::from_bytes(w.serialize(), kOrigin);
  expect_format_error([&] { rnn_load_params<float>(uni, r_uni); },
                      {"unexpected tensor 'weight_ih_l0_reverse'", "bidirectional but the config is not"});

  RnnConfig one_layer = cfg;
  one_layer.num_layers = 1;
  expect_format_error([&] { rnn_load_params<float>(one_layer, r); },
                      {"unexpected tensor 'bias_hh_l1' (and 9 more)", "has layer 1 but the config has 1 layer"});

  const auto r_peep = edited(r, "", "weight_peep_l0", {3, 5});
  expect_format_error([&] { rnn_load_params<float>(cfg, r_peep); },
                      {"unexpected tensor 'weight_peep_l0'", "peepholes"});
  // Names that only resemble parameters are someone else's tensors.
  const auto r_other = edited(r, "", "weight_ih_l0_extra", {1});
  EXPECT_NO_THROW(rnn_load_params<float>(cfg, r_other));
}

TEST(RnnIo, InferConfig) {
  const auto cfg = lstmp_config();
  const auto got = rnn_infer_config(saved(cfg, make_params<float>(cfg, 1)), CellType::lstm);
  EXPECT_EQ(got.cell, CellType::lstm);
  EXPECT_EQ(got.input_size, 3);
  EXPECT_EQ(got.hidden_size, 5);
  EXPECT_EQ(got.proj_size, 2);
  EXPECT_EQ(got.num_layers, 2);
  EXPECT_TRUE(got.bidirectional);
  EXPECT_TRUE(got.bias);
  EXPECT_FALSE(got.peephole);

  RnnConfig gru;
  gru.cell = CellType::gru;
  gru.input_size = 7;
  gru.hidden_size = 2;
  gru.num_layers = 3;
  gru.bias = false;
  const auto g = rnn_infer_config(saved(gru, make_params<double>(gru, 1)), CellType::gru);
  EXPECT_EQ(rnn_config_summary(g), rnn_config_summary(gru));
  EXPECT_EQ(rnn_config_summary(g), "gru reset=after I=7 H=2 L=3 D=1 bias=no");

  RnnConfig peep = cfg;
  peep.peephole = true;
  EXPECT_TRUE(rnn_infer_config(saved(peep, make_params<float>(peep, 1)), CellType::lstm).peephole);
}

TEST(RnnIo, InferConfigRejectsInconsistentFiles) {
  const auto cfg = lstmp_config();
  const auto r = saved(cfg, make_params<float>(cfg, 1));
  // 20 rows are 4 gates of 5 but not 3 gates of anything.
  expect_format_error([&] { rnn_infer_config(r, CellType::gru); }, {"tensor 'weight_ih_l0'", "G=3"});
  // As RNN cells, G=1 gives H=20, which contradicts weight_hr's [2, 5] - and a projection is lstm-only.
  expect_format_error([&] { rnn_infer_config(r, CellType::rnn_tanh); }, {"proj_size is for lstm only"});
  expect_format_error([&] { rnn_infer_config(r, CellType::lstm, "enc."); }, {"no RNN parameters under prefix 'enc.'"});
  // One tensor of the wrong shape among otherwise consistent ones.
  const auto bad = edited(edited(r, "weight_hh_l1"), "", "weight_hh_l1", {20, 3});
  expect_format_error([&] { rnn_infer_config(bad, CellType::lstm); },
                      {"tensor 'weight_hh_l1'", "expected shape [20, 2]", "got [20, 3]"});
  // A layer with a hole: layer 1 exists only through its bias.
  RnnConfig one = cfg;
  one.num_layers = 1;
  const auto holey = edited(saved(one, make_params<float>(one, 1)), "", "bias_ih_l1", {20});
  expect_format_error([&] { rnn_infer_config(holey, CellType::lstm); }, {"missing tensor 'weight_ih_l1'"});
}

TEST(RnnIo, AddParamsChecksShapes) {
  const auto cfg = lstmp_config();
  auto p = make_params<float>(cfg, 1);
  p.dirs[3].w_hr = Tensor<float>({2, 4});
  SafetensorsWriter w;
  try {
    rnn_add_params(w, cfg, p);
    ADD_FAILURE() << "no exception";
  } catch (const ShapeError& e) {
    EXPECT_NE(std::string(e.what()).find("weight_hr_l1_reverse: expected shape [2, 5], got [2, 4]"), std::string::npos)
        << e.what();
  }
  EXPECT_TRUE(SafetensorsReader::from_bytes(w.serialize(), kOrigin).names().empty()) << "partial write";
  p.dirs.pop_back();
  EXPECT_THROW(rnn_add_params(w, cfg, p), ShapeError);
}

TEST(CellConfig, NamesRoundTrip) {
  for (CellType c : {CellType::rnn_tanh, CellType::rnn_relu, CellType::gru, CellType::lstm})
    EXPECT_EQ(parse_cell(cell_name(c)), c);
  EXPECT_EQ(parse_cell("rnn"), CellType::rnn_tanh);
  EXPECT_EQ(gate_count(CellType::rnn_relu), 1);
  EXPECT_EQ(gate_count(CellType::gru), 3);
  EXPECT_EQ(gate_count(CellType::lstm), 4);
  EXPECT_EQ(parse_gru_reset(gru_reset_name(GruReset::before)), GruReset::before);
  EXPECT_EQ(parse_gru_reset("after"), GruReset::after);
  EXPECT_THROW(parse_cell("LSTM"), Error);
  EXPECT_THROW(parse_gru_reset("middle"), Error);
}

TEST(CellConfig, Validate) {
  auto expect_invalid = [](const RnnConfig& c, const std::string& phrase) {
    try {
      c.validate();
      ADD_FAILURE() << "valid: " << rnn_config_summary(c);
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(phrase), std::string::npos) << e.what();
    }
  };
  const RnnConfig ok = lstmp_config();
  EXPECT_NO_THROW(ok.validate());
  RnnConfig c = ok;
  c.input_size = 0;
  expect_invalid(c, "input_size");
  c = ok;
  c.hidden_size = -1;
  expect_invalid(c, "hidden_size");
  c = ok;
  c.num_layers = 0;
  expect_invalid(c, "num_layers");
  c = ok;
  c.proj_size = 5;
  expect_invalid(c, "proj_size must be smaller than hidden_size");
  c = ok;
  c.cell = CellType::gru;
  expect_invalid(c, "proj_size is for lstm only");
  c.proj_size = 0;
  c.peephole = true;
  expect_invalid(c, "peephole is for lstm only");
  c = ok;
  c.dropout = 1.0;
  expect_invalid(c, "dropout");
}

}  // namespace
}  // namespace recur
