// Training diagnostics (diagnostics.h): the per-step hidden-state gradients against the core's
// own backward and against finite differences in double, gate statistics on hand-made gate
// values, and the diagnostics lines a training run records against a direct recomputation.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "lm_batch.h"
#include "recur/train/checkpoint.h"
#include "recur/diag/diagnostics.h"
#include "recur/core/optim.h"
#include "recur/core/loss.h"
#include "recur/core/rnn.h"
#include "recur/model/model.h"
#include "recur/data/text_data.h"
#include "recur/tasks/trainer.h"

namespace recur {
namespace {

namespace fs = std::filesystem;

struct Case {
  std::string name;
  RnnConfig cfg;
  std::vector<int64_t> lengths;  // empty = all T
  double dropout = 0;            // between layers, training mode
};

RnnConfig make_cfg(CellType cell, int64_t layers, bool bidir, int64_t proj = 0, bool peep = false,
                   GruReset reset = GruReset::after) {
  RnnConfig c;
  c.cell = cell;
  c.gru_reset = reset;
  c.input_size = 3;
  c.hidden_size = 4;
  c.proj_size = proj;
  c.num_layers = layers;
  c.bidirectional = bidir;
  c.peephole = peep;
  return c;
}

std::vector<Case> cases() {
  std::vector<Case> cs;
  for (CellType cell : {CellType::rnn_tanh, CellType::rnn_relu, CellType::gru, CellType::lstm}) {
    const std::string n(cell_name(cell));
    cs.push_back({n + "_1layer", make_cfg(cell, 1, false), {}, 0});
    cs.push_back({n + "_2layers", make_cfg(cell, 2, false), {}, 0});
    cs.push_back({n + "_2layers_ragged_dropout", make_cfg(cell, 2, false), {5, 2, 4}, 0.3});
    cs.push_back({n + "_bidir_ragged", make_cfg(cell, 2, true), {5, 3, 1}, 0});
  }
  cs.push_back({"gru_before", make_cfg(CellType::gru, 2, false, 0, false, GruReset::before), {}, 0});
  cs.push_back({"lstmp_peephole", make_cfg(CellType::lstm, 2, false, 2, true), {5, 4, 2}, 0});
  for (auto& c : cs) c.cfg.dropout = c.dropout;
  return cs;
}

struct Problem {
  RnnConfig cfg;
  std::vector<int64_t> lengths;
  RnnParams<double> params;
  Tensor<double> x;      // [T, B, I]
  RnnState<double> s0;   // initial state
  Tensor<double> w_out;  // [T, B, D*R]: loss = <output, w_out>, so dLoss/doutput = w_out
};

Problem make_problem(const Case& c, int64_t T = 5, int64_t B = 3) {
  Rng rng(11);
  Problem p;
  p.cfg = c.cfg;
  p.lengths = c.lengths;
  p.params = rnn_init_params<double>(c.cfg, rng);
  // Larger weights than the default init so every gate works away from its linear regime.
  rnn_for_each_param(c.cfg, p.params.dirs, [&](const std::string&, Tensor<double>& t) {
    for (auto& v : t.data) v = rng.uniform(-0.8, 0.8);
  });
  p.x = Tensor<double>({T, B, c.cfg.input_size});
  for (auto& v : p.x.data) v = rng.uniform(-1, 1);
  p.s0 = rnn_zero_state<double>(c.cfg, B);
  for (auto* t : {&p.s0.h, &p.s0.c})
    for (auto& v : t->data) v = rng.uniform(-1, 1);
  p.w_out = Tensor<double>({T, B, c.cfg.output_size()});
  for (auto& v : p.w_out.data) v = rng.uniform(-1, 1);
  return p;
}

// (1) Slot 0 of every forward direction (slot T of a reverse one) is the initial state, whose
// gradient the core's own rnn_backward returns as grad_state0.
TEST(StateGrads, InitialStateEqualsCoreGradState0) {
  for (const Case& c : cases()) {
    SCOPED_TRACE(c.name);
    Problem p = make_problem(c);
    Tensor<double> out;
    RnnState<double> sn;
    RnnCache<double> cache;
    Rng rng(3);
    rnn_forward(c.cfg, p.params, p.x, p.lengths, p.s0, {.training = c.dropout > 0, .rng = &rng}, out, sn, cache);
    const StateGrads<double> sg = rnn_state_grads(c.cfg, p.params, p.x, cache, p.w_out);
    RnnGrads<double> grads = rnn_zero_grads<double>(c.cfg);
    RnnState<double> gs0;
    rnn_backward(c.cfg, p.params, p.x, cache, p.w_out, RnnState<double>(), grads, nullptr, &gs0);
    const int64_t T = p.x.dim(0), B = p.x.dim(1), R = c.cfg.state_size(), H = c.cfg.hidden_size;
    const int64_t D = c.cfg.directions();
    ASSERT_EQ(int64_t(sg.h.size()), c.cfg.num_layers * D);
    for (int64_t k = 0; k < c.cfg.num_layers * D; ++k) {
      const int64_t init = k % D == 1 ? T : 0;
      ASSERT_EQ(sg.h[size_t(k)].shape, (Shape{T + 1, B, R}));
      for (int64_t e = 0; e < B * R; ++e)
        EXPECT_NEAR(sg.h[size_t(k)].data[size_t(init * B * R + e)], gs0.h.data[size_t(k * B * R + e)], 1e-12)
            << "layer-direction " << k << " element " << e;
      if (c.cfg.has_cell_state()) {
        for (int64_t e = 0; e < B * H; ++e)
          EXPECT_NEAR(sg.c[size_t(k)].data[size_t(init * B * H + e)], gs0.c.data[size_t(k * B * H + e)], 1e-12);
      }
    }
  }
}

// The loss of `p` with the state of layer `layer` at slot `slot` (forward direction) replaced
// by `h` + the perturbation: that slot is the output of step slot-1 and the state entering
// step slot, so the layer is rerun from there and every layer above on the changed output.
double loss_with_state(const Problem& p, int64_t layer, int64_t slot, int64_t b, int64_t j, double eps) {
  const RnnConfig& cfg = p.cfg;
  const int64_t T = p.x.dim(0), B = p.x.dim(1), R = cfg.state_size(), H = cfg.hidden_size;
  RnnConfig c1 = cfg;
  c1.num_layers = 1;
  c1.dropout = 0;
  Tensor<double> x = p.x;
  for (int64_t l = 0; l < cfg.num_layers; ++l) {
    c1.input_size = cfg.layer_input_size(l);
    RnnParams<double> p1;
    p1.dirs = {p.params.dirs[size_t(l)]};
    RnnState<double> s0;
    s0.h = Tensor<double>({1, B, R});
    std::copy_n(p.s0.h.ptr() + l * B * R, B * R, s0.h.ptr());
    if (cfg.has_cell_state()) {
      s0.c = Tensor<double>({1, B, H});
      std::copy_n(p.s0.c.ptr() + l * B * H, B * H, s0.c.ptr());
    }
    Tensor<double> y;
    RnnState<double> sn;
    RnnCache<double> cache;
    rnn_forward(c1, p1, x, {}, s0, {}, y, sn, cache);
    if (l == layer) {
      // The states of this layer up to the slot are unchanged; perturb the slot, rerun after it.
      Tensor<double> st({1, B, R});
      std::copy_n(cache.dirs[0].h.ptr() + slot * B * R, B * R, st.ptr());
      st.data[size_t(b * R + j)] += eps;
      if (slot >= 1) std::copy_n(st.ptr(), B * R, y.ptr() + (slot - 1) * B * R);
      if (slot < T) {
        RnnState<double> s;
        s.h = st;
        if (cfg.has_cell_state()) {
          s.c = Tensor<double>({1, B, H});
          std::copy_n(cache.dirs[0].c.ptr() + slot * B * H, B * H, s.c.ptr());
        }
        Tensor<double> xs({T - slot, B, c1.input_size}), ys;
        std::copy_n(x.ptr() + slot * B * c1.input_size, (T - slot) * B * c1.input_size, xs.ptr());
        RnnCache<double> c2;
        rnn_forward(c1, p1, xs, {}, s, {}, ys, sn, c2);
        std::copy_n(ys.ptr(), (T - slot) * B * R, y.ptr() + slot * B * R);
      }
    }
    x = y;
  }
  double l = 0;
  for (size_t i = 0; i < x.data.size(); ++i) l += x.data[i] * p.w_out.data[i];
  return l;
}

// (2) Every slot of every layer against central finite differences of the loss.
TEST(StateGrads, MatchFiniteDifferences) {
  for (CellType cell : {CellType::rnn_tanh, CellType::gru, CellType::lstm}) {
    for (int64_t proj : {int64_t(0), int64_t(2)}) {
      if (proj > 0 && cell != CellType::lstm) continue;
      Case c{std::string(cell_name(cell)) + (proj ? "_proj" : ""), make_cfg(cell, 2, false, proj), {}, 0};
      SCOPED_TRACE(c.name);
      Problem p = make_problem(c);
      Tensor<double> out;
      RnnState<double> sn;
      RnnCache<double> cache;
      rnn_forward(c.cfg, p.params, p.x, {}, p.s0, {}, out, sn, cache);
      const StateGrads<double> sg = rnn_state_grads(c.cfg, p.params, p.x, cache, p.w_out);
      const int64_t T = p.x.dim(0), B = p.x.dim(1), R = c.cfg.state_size();
      const double eps = 1e-6;
      for (int64_t l = 0; l < 2; ++l)
        for (int64_t s = 0; s <= T; ++s)
          for (int64_t b = 0; b < B; ++b)
            for (int64_t j = 0; j < R; ++j) {
              const double fd = (loss_with_state(p, l, s, b, j, eps) - loss_with_state(p, l, s, b, j, -eps)) / (2 * eps);
              const double an = sg.h[size_t(l)].data[size_t((s * B + b) * R + j)];
              EXPECT_NEAR(an, fd, 1e-7 * std::max(1.0, std::abs(fd)))
                  << "layer " << l << " slot " << s << " row " << b << " unit " << j;
            }
    }
  }
}

// (3) last_step_only is the gradient of the last valid step's loss: the same as zeroing the
// upstream gradient of every other step by hand. And the norms index by slot and by distance.
TEST(StateGrads, LastStepOnlyAndDistanceNorms) {
  Case c{"lstm_ragged", make_cfg(CellType::lstm, 2, false), {5, 3, 1}, 0};
  Problem p = make_problem(c);
  Tensor<double> out;
  RnnState<double> sn;
  RnnCache<double> cache;
  rnn_forward(c.cfg, p.params, p.x, p.lengths, p.s0, {}, out, sn, cache);
  const int64_t T = 5, B = 3, R = c.cfg.state_size();
  Tensor<double> masked = p.w_out;
  for (int64_t t = 0; t < T; ++t)
    for (int64_t b = 0; b < B; ++b)
      if (t != p.lengths[size_t(b)] - 1) std::fill_n(masked.ptr() + (t * B + b) * R, R, 0.0);
  const StateGrads<double> a = rnn_state_grads(c.cfg, p.params, p.x, cache, p.w_out, {.last_step_only = true});
  const StateGrads<double> m = rnn_state_grads(c.cfg, p.params, p.x, cache, masked);
  for (size_t k = 0; k < a.h.size(); ++k)
    for (size_t e = 0; e < a.h[k].data.size(); ++e) EXPECT_DOUBLE_EQ(a.h[k].data[e], m.h[k].data[e]);

  // Hand-made [T+1 = 3, B = 2, R = 1] gradient: slot norms and distance norms.
  Tensor<double> g({3, 2, 1});
  g.data = {1, 2, 3, 4, 5, 6};  // slot 0: (1, 2), slot 1: (3, 4), slot 2: (5, 6)
  const std::vector<double> sn_ = slot_norms(g);
  EXPECT_DOUBLE_EQ(sn_[0], std::sqrt(5.0));
  EXPECT_DOUBLE_EQ(sn_[1], 5.0);
  EXPECT_DOUBLE_EQ(sn_[2], std::sqrt(61.0));
  const std::vector<double> full = distance_norms(g, {});
  EXPECT_DOUBLE_EQ(full[0], sn_[2]);
  EXPECT_DOUBLE_EQ(full[2], sn_[0]);
  // Row 1 has length 1: its last step's state is slot 1 (distance 0), its initial state
  // distance 1; it has nothing at distance 2.
  const std::vector<double> rag = distance_norms(g, {2, 1});
  EXPECT_DOUBLE_EQ(rag[0], std::sqrt(25.0 + 16.0));
  EXPECT_DOUBLE_EQ(rag[1], std::sqrt(9.0 + 4.0));
  EXPECT_DOUBLE_EQ(rag[2], 1.0);
}

// (4) Saturation and mean gate values on hand-made gate arrays.
TEST(GateStats, HandMadeLstm) {
  RnnConfig cfg = make_cfg(CellType::lstm, 1, false);
  cfg.hidden_size = 2;
  // [T = 2, B = 2, G*H = 8], gate order i, f, g, o; row 1 has length 1, so its step 1 holds
  // values that would change every count if they were looked at.
  Tensor<double> g({2, 2, 8});
  g.data = {
      // t = 0, b = 0: i saturated low, f saturated high, g saturated (|tanh| > 0.95), o not
      0.01, 0.50, 0.99, 0.90, -0.97, 0.20, 0.50, 0.60,
      // t = 0, b = 1
      0.50, 0.50, 0.96, 0.10, 0.30, 0.96, 0.04, 0.50,
      // t = 1, b = 0
      0.60, 0.02, 0.50, 0.50, 0.10, -0.10, 0.97, 0.97,
      // t = 1, b = 1: past the length
      0.00, 0.00, 0.00, 0.00, 1.00, 1.00, 0.00, 0.00};
  const GateStats s = gate_stats(cfg, g, {2, 1});
  ASSERT_EQ(s.gates.size(), 4u);
  EXPECT_EQ(s.gates[0].name, "i");
  EXPECT_EQ(s.gates[0].kind, "sigmoid");
  EXPECT_EQ(s.gates[2].kind, "tanh");
  EXPECT_EQ(s.gates[0].count, 6);
  EXPECT_DOUBLE_EQ(s.gates[0].saturated, 2.0 / 6);  // 0.01, 0.02
  EXPECT_DOUBLE_EQ(s.gates[1].saturated, 2.0 / 6);  // 0.99, 0.96
  EXPECT_DOUBLE_EQ(s.gates[2].saturated, 2.0 / 6);  // -0.97, 0.96
  EXPECT_DOUBLE_EQ(s.gates[3].saturated, 3.0 / 6);  // 0.04, 0.97, 0.97
  EXPECT_DOUBLE_EQ(s.saturated, 9.0 / 24);
  EXPECT_NEAR(s.gates[1].mean, (0.99 + 0.90 + 0.96 + 0.10 + 0.50 + 0.50) / 6, 1e-15);
  EXPECT_NEAR(s.keep_mean, s.gates[1].mean, 0);
  EXPECT_NEAR(s.gates[2].mean, (-0.97 + 0.20 + 0.30 + 0.96 + 0.10 - 0.10) / 6, 1e-15);
}

TEST(GateStats, HandMadeGruAndRnn) {
  RnnConfig gru = make_cfg(CellType::gru, 1, false);
  gru.hidden_size = 1;
  Tensor<float> g({2, 1, 3});  // r, z, n
  g.data = {0.5f, 0.96f, 0.99f, 0.03f, 0.2f, -0.5f};
  const GateStats s = gate_stats(gru, g, {});
  EXPECT_EQ(s.gates[1].name, "z");
  EXPECT_DOUBLE_EQ(s.gates[0].saturated, 0.5);
  EXPECT_DOUBLE_EQ(s.gates[1].saturated, 0.5);
  EXPECT_DOUBLE_EQ(s.gates[2].saturated, 0.5);
  EXPECT_NEAR(s.keep_mean, (0.96 + 0.2) / 2, 1e-7);

  RnnConfig rnn = make_cfg(CellType::rnn_tanh, 1, false);
  rnn.hidden_size = 2;
  Tensor<double> h({1, 2, 2});
  h.data = {0.99, -0.96, 0.5, 0.95};  // 0.95 itself is not beyond 0.95
  const GateStats r = gate_stats(rnn, h, {});
  EXPECT_DOUBLE_EQ(r.saturated, 0.5);
  EXPECT_TRUE(std::isnan(r.keep_mean));
  RnnConfig relu = rnn;
  relu.cell = CellType::rnn_relu;
  h.data = {0.0, 2.0, 0.0, 0.0};  // relu: zeros are dead units
  EXPECT_DOUBLE_EQ(gate_stats(relu, h, {}).saturated, 0.75);
  EXPECT_THROW(gate_stats(rnn, Tensor<double>({1, 2, 3}), {}), ShapeError);
}

// (5) What `train --diagnostics` records equals a direct recomputation with the core's
// backward: a one-step run with a learning rate so small that the saved weights are the
// initial ones, so the first chunk can be replayed from the checkpoint.
TEST(TrainDiagnostics, RecordedValuesMatchDirectComputation) {
  const fs::path dir = fs::temp_directory_path() / ("recur_diag_test_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::string text;
  for (int i = 0; i < 60; ++i) text += "the quick brown fox jumps over the lazy dog " + std::to_string(i % 7) + "\n";
  const std::string data = (dir / "data.txt").string();
  std::ofstream(data) << text;

  TrainOptions o;
  o.data_path = data;
  o.out_dir = (dir / "run").string();
  o.valid_fraction = 0;
  o.layers = 2;
  o.hidden = 8;
  o.batch = 4;
  o.seq_len = 12;
  o.steps = 1;
  o.log_every = 1;
  o.clip_norm = 0.05;  // small enough to fire
  o.optimizer.type = OptimizerType::sgd;
  o.optimizer.lr = 1e-30;  // float weights do not move
  o.diagnostics_every = 1;
  train_language_model(o, {});

  nlohmann::json diag, train;
  {
    std::ifstream in(dir / "run" / "metrics.jsonl");
    std::string line;
    while (std::getline(in, line)) {
      auto j = nlohmann::json::parse(line);
      if (j["type"] == "diag") diag = j;
      if (j["type"] == "train") train = j;
    }
  }
  ASSERT_FALSE(diag.is_null()) << "no diag line";
  EXPECT_EQ(diag["step"], 1);
  EXPECT_DOUBLE_EQ(diag["grad_norm"].get<double>(), train["grad_norm"].get<double>());
  EXPECT_TRUE(diag["clipped"].get<bool>());
  EXPECT_DOUBLE_EQ(diag["clip_rate"].get<double>(), 1.0);
  EXPECT_NEAR(diag["grad_norm_clipped"].get<double>(), 0.05, 1e-6);
  ASSERT_EQ(diag["layers"].size(), 2u);

  // Replay step 1: same weights, same first chunk, zero initial state.
  const Checkpoint ck = load_checkpoint((dir / "run" / "last.safetensors").string());
  const LmConfig& cfg = ck.model.spec.lm;
  StreamBatcher batches(encode_stream(ck.model.vocab, text), {.batch_size = 4, .seq_len = 12, .drop_last = false});
  TextBatch tb;
  ASSERT_TRUE(batches.next(tb));
  const ModelSpec graph = ck.model.graph();
  ModelGrads<float> grads = model_zero_grads<float>(graph);
  ModelCache<float> cache;
  RnnState<float> state;
  // The reference path keeps every step's gates in the rnn layer's cache (read by gate_stats below).
  lm_forward_backward<float>(graph, ck.model.params, lm_batch_of(tb, TextMode::stream), state,
                             {.backend = RnnBackend::reference}, cache, &grads, 1.0 / double(tb.tokens()));
  double sq = 0;
  model_for_each_param(graph, grads, [&](const std::string&, const Tensor<float>& g, bool) {
    for (float v : g.data) sq += double(v) * double(v);
  });
  EXPECT_NEAR(diag["grad_norm"].get<double>(), std::sqrt(sq), 1e-6 * std::sqrt(sq));
  // The core's own backward: grad_state0 is dLoss/dh at slot 0 of every layer.
  RnnGrads<float> rg = rnn_zero_grads<float>(cfg.rnn);
  RnnState<float> gs0;
  const size_t rnn_at = size_t(graph.layer_index("rnn"));
  LayerCache<float>& rnn_cache = cache.layers[rnn_at];
  const Tensor<float>& rnn_x = model_output(graph, cache, graph.layers[rnn_at].inputs[0]);
  rnn_backward(cfg.rnn, ck.model.params.layers[rnn_at].rnn, rnn_x, rnn_cache.rnn, rnn_cache.grad_out, RnnState<float>(), rg,
               nullptr, &gs0);
  const std::vector<LayerDiagnostics> direct = lm_layer_diagnostics(graph, ck.model.params, cache);
  const int64_t B = 4, R = 8, T = 12;
  for (int64_t l = 0; l < 2; ++l) {
    SCOPED_TRACE("layer " + std::to_string(l));
    const auto& rec = diag["layers"][size_t(l)];
    ASSERT_EQ(rec["grad_h"].size(), size_t(T + 1));
    ASSERT_EQ(rec["grad_h_last"].size(), size_t(T + 1));
    double n0 = 0;
    for (int64_t e = 0; e < B * R; ++e) n0 += double(gs0.h.data[size_t(l * B * R + e)]) * gs0.h.data[size_t(l * B * R + e)];
    EXPECT_NEAR(rec["grad_h"][0].get<double>(), std::sqrt(n0), 1e-5 * std::sqrt(n0));
    for (int64_t s = 0; s <= T; ++s) {
      EXPECT_NEAR(rec["grad_h"][size_t(s)].get<double>(), direct[size_t(l)].grad_h[size_t(s)],
                  1e-6 * direct[size_t(l)].grad_h[size_t(s)]);
      EXPECT_NEAR(rec["grad_h_last"][size_t(s)].get<double>(), direct[size_t(l)].grad_h_last[size_t(s)],
                  1e-6 * direct[size_t(l)].grad_h_last[size_t(s)] + 1e-30);
    }
    // The last slot's gradient is only its own output's; the last step's loss reaches far back.
    EXPECT_GT(rec["grad_h_last"][0].get<double>(), 0);
    const GateStats gs = gate_stats(cfg.rnn, rnn_cache.rnn.dirs[size_t(l)].gates, {});
    EXPECT_NEAR(rec["saturated"].get<double>(), gs.saturated, 1e-12);
    EXPECT_NEAR(rec["keep_mean"].get<double>(), gs.keep_mean, 1e-12);
    EXPECT_NEAR(rec["gates"]["f"]["mean"].get<double>(), gs.gates[1].mean, 1e-12);
  }
  fs::remove_all(dir);
}


// The model-graph version (task models) against the language model's on the same network:
// embedding -> 2-layer LSTM -> linear, the same weights, batch and mean loss. Ragged lengths
// via a padded final step. Also: a classifier read only through its final state still shows a
// gradient profile (the final state's gradient enters at the last slot).
TEST(ModelDiagnostics, MatchTheLanguageModelsOnAnEquivalentModel) {
  const int64_t V = 7, E = 5, H = 6, Tn = 5, B = 3;
  LmConfig cfg;
  cfg.vocab_size = V;
  cfg.embed_size = E;
  cfg.rnn.cell = CellType::lstm;
  cfg.rnn.input_size = E;
  cfg.rnn.hidden_size = H;
  cfg.rnn.num_layers = 2;
  Rng rng(3);
  const ModelSpec graph = lm_model_spec(cfg);  // the language model as built for training
  const ModelParams<double> lp = lm_init_params<double>(cfg, rng, 0.5);
  std::vector<int32_t> input(size_t(Tn * B)), target(size_t(Tn * B));
  for (size_t i = 0; i < input.size(); ++i) {
    input[i] = int32_t(rng.below(uint64_t(V)));
    target[i] = int32_t(rng.below(uint64_t(V)));
  }
  const std::vector<int64_t> lengths = {5, 3, 4};
  std::vector<double> mask(size_t(Tn * B), 1.0);
  for (int64_t t = 0; t < Tn; ++t)
    for (int64_t b = 0; b < B; ++b)
      if (t >= lengths[size_t(b)]) {
        mask[size_t(t * B + b)] = 0;
        target[size_t(t * B + b)] = -1;
      }
  // The language model.
  ModelCache<double> lc;
  ModelGrads<double> lg = model_zero_grads<double>(graph);
  RnnState<double> st;
  LmBatch batch{.input = input, .target = target, .mask = {}, .lengths = lengths, .steps = Tn, .batch = B};
  std::vector<float> fmask(mask.begin(), mask.end());
  batch.mask = fmask;
  const LossSum ls = lm_forward_backward<double>(graph, lp, batch, st, {.backend = RnnBackend::reference}, lc, &lg, 1.0);
  const auto lm_d = lm_layer_diagnostics(graph, lp, lc);

  // The same network as a model graph.
  ModelSpec spec;
  spec.tokens("words", V);
  spec.embedding("emb", "words", E);
  RnnConfig rc = cfg.rnn;
  spec.rnn("rnn", "emb", rc);
  spec.linear("out", "rnn", V);
  ModelParams<double> mp = model_init_params<double>(spec, rng);
  auto lm_layer = [&](const char* name) -> const LayerParams<double>& { return lp.layers[size_t(graph.layer_index(name))]; };
  mp.layers[0].weight = lm_layer("encoder").weight;
  mp.layers[1].rnn = lm_layer("rnn").rnn;
  mp.layers[2].weight = lm_layer("decoder").weight;
  mp.layers[2].bias = lm_layer("decoder").bias;
  ModelInputs<double> in;
  in["words"] = ModelInput<double>{.ids = input, .features = {}, .steps = Tn, .batch = B, .lengths = lengths};
  ModelCache<double> mc;
  model_forward(spec, mp, in, {}, mc);
  const Tensor<double>& out = model_output(spec, mc, "out");
  Tensor<double> logits = out;
  logits.shape = {Tn * B, V};
  Tensor<double> grad;
  const LossSum ms = softmax_cross_entropy<double>(logits, target, {}, &grad, 1.0);
  ASSERT_NEAR(ms.sum, ls.sum, 1e-9);
  grad.shape = out.shape;
  ModelGrads<double> mg = model_zero_grads<double>(spec);
  model_backward(spec, mp, in, mc, {{"out", &grad}}, mg);
  const auto md = model_layer_diagnostics(spec, mp, in, mc);

  ASSERT_EQ(md.size(), lm_d.size());
  for (size_t l = 0; l < md.size(); ++l) {
    SCOPED_TRACE(l);
    EXPECT_EQ(md[l].layer, int64_t(l));
    EXPECT_EQ(md[l].name, "rnn." + std::to_string(l));
    ASSERT_EQ(md[l].grad_h.size(), lm_d[l].grad_h.size());
    ASSERT_EQ(md[l].grad_h_last.size(), lm_d[l].grad_h_last.size());
    for (size_t k = 0; k < md[l].grad_h.size(); ++k) {
      EXPECT_NEAR(md[l].grad_h[k], lm_d[l].grad_h[k], 1e-10 * (1 + lm_d[l].grad_h[k]));
      EXPECT_NEAR(md[l].grad_h_last[k], lm_d[l].grad_h_last[k], 1e-10 * (1 + lm_d[l].grad_h_last[k]));
    }
    EXPECT_GT(md[l].grad_h[1], 0.0);
    EXPECT_NEAR(md[l].gates.saturated, lm_d[l].gates.saturated, 1e-12);
    EXPECT_NEAR(md[l].gates.keep_mean, lm_d[l].gates.keep_mean, 1e-12);
  }

  // A classifier: only rnn.final reaches the loss. Its profile is the final state's gradient
  // carried back through time: nonzero at the last slot and at the initial one.
  ModelSpec cs;
  cs.tokens("words", V);
  cs.embedding("emb", "words", E);
  cs.rnn("rnn", "emb", rc);
  cs.linear("out", "rnn.final", 2);
  ModelParams<double> cp = model_init_params<double>(cs, rng);
  ModelCache<double> cc;
  model_forward(cs, cp, in, {}, cc);
  Tensor<double> cg = model_output(cs, cc, "out");
  for (double& x : cg.data) x = 0.25;
  ModelGrads<double> cgr = model_zero_grads<double>(cs);
  model_backward(cs, cp, in, cc, {{"out", &cg}}, cgr);
  const auto cd = model_layer_diagnostics(cs, cp, in, cc);
  ASSERT_EQ(cd.size(), 2u);
  EXPECT_GT(cd[1].grad_h.back(), 0.0);   // the final state of the top layer
  EXPECT_GT(cd[1].grad_h.front(), 0.0);  // reached the initial state
  EXPECT_GT(cd[0].grad_h.front(), 0.0);  // and the layer below
}

TEST(TrainDiagnostics, OptionIsValidated) {
  TrainOptions o;
  o.data_path = "x";
  o.out_dir = "y";
  o.diagnostics_every = -1;
  EXPECT_THROW(o.validate(), Error);
}

TEST(GradientExperiment, BasicRnnVanishesFirst) {
  GradientExperimentOptions o;
  o.gap = 60;
  o.hidden = 24;
  o.batch = 8;
  const std::vector<GradientProfile> ps = gradient_experiment(o);
  ASSERT_EQ(ps.size(), 9u);
  auto get = [&](const std::string& cell, const std::string& variant) {
    for (const auto& p : ps)
      if (p.cell == cell && p.variant == variant) return p;
    ADD_FAILURE() << cell << " " << variant;
    return GradientProfile{};
  };
  const int64_t rnn = get("rnn_tanh", "default").vanish_distance;
  auto later = [&](int64_t d) { return d < 0 || d > rnn; };  // -1: never vanished within the gap
  ASSERT_GT(rnn, 0);
  EXPECT_TRUE(later(get("lstm", "default").vanish_distance));
  EXPECT_TRUE(later(get("gru", "default").vanish_distance));
  // Large recurrent weights make the basic RNN's gradient grow going back.
  EXPECT_GT(get("rnn_tanh", "large").max_ratio, 10.0);
  const GradientProfile clipped = get("rnn_tanh", "clipped");
  EXPECT_LT(clipped.clip_factor, 1.0);
  EXPECT_NEAR(clipped.norm[5] / get("rnn_tanh", "large").norm[5], clipped.clip_factor, 1e-12);
  EXPECT_THROW(gradient_experiment({.gap = 0}), Error);
}

// The printed summary: one row per profile, "> gap" where the gradient never vanished, the
// training loss only on the trained variant.
TEST(GradientExperiment, SummaryRows) {
  GradientExperimentOptions o;
  o.gap = 40;
  o.hidden = 8;
  o.batch = 2;
  o.seed = 9;
  GradientProfile a;
  a.cell = "rnn_tanh";
  a.variant = "default";
  a.param_grad_norm = 0.5;
  a.vanish_distance = 12;
  a.max_ratio = 1;
  GradientProfile b;
  b.cell = "lstm";
  b.variant = "trained";
  b.param_grad_norm = 2.25;
  b.clip_factor = 0.25;
  b.max_ratio = 3.5;
  b.train_loss = 1.125;
  const std::string s = gradient_experiment_summary({a, b}, o);
  EXPECT_EQ(s.rfind("gradient of the loss at step 40 w.r.t. the hidden state k steps earlier; hidden 8, batch 2, "
                    "seed 9\n", 0), 0u) << s;
  EXPECT_NE(s.find("\nrnn_tanh   init                     12          1          0.5            1            -\n"),
            std::string::npos) << s;
  EXPECT_NE(s.find("\nlstm       trained                > 40        3.5         2.25         0.25       1.1250\n"),
            std::string::npos) << s;
}

}  // namespace
}  // namespace recur
