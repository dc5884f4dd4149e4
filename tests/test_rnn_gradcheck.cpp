// Finite-difference checks of the recurrent core in float64, for every cell and layer
// configuration, including those PyTorch lacks (peepholes, reset-before GRU), dropout,
// truncated BPTT and the chaining of chunks; plus the shape errors of the public API.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "cell_variants.h"
#include "gradcheck.h"
#include "recur/core/rnn.h"

namespace recur {
namespace {

using test::GradCheckInput;

struct Case {
  std::string name;
  RnnConfig cfg;
  std::vector<int64_t> lengths;  // empty = all T
};

Tensor<double> random_tensor(Shape shape, Rng& rng, double scale = 1.0) {
  Tensor<double> t(std::move(shape));
  for (auto& v : t.data) v = rng.uniform(-scale, scale);
  return t;
}

double dot(const Tensor<double>& a, const Tensor<double>& b) {
  double s = 0;
  for (size_t i = 0; i < a.data.size(); ++i) s += a.data[i] * b.data[i];
  return s;
}

// All the tensors of one check: inputs, upstream weights of the loss, analytic gradients.
struct Problem {
  RnnConfig cfg;
  std::vector<int64_t> lengths;
  RnnParams<double> params;
  Tensor<double> x;        // [T, B, I]
  RnnState<double> s0;     // initial state
  Tensor<double> w_out;    // [T, B, D*R] loss weights of the output
  RnnState<double> w_fin;  // loss weights of the final state
  double dropout_seed = 0;

  // loss = <output, w_out> + <h_n, w_fin.h> + <c_n, w_fin.c>
  double loss(bool training = false) const {
    Tensor<double> out;
    RnnState<double> sn;
    RnnCache<double> cache;
    Rng rng(7);
    rnn_forward(cfg, params, x, lengths, s0, {.training = training, .rng = &rng}, out, sn, cache);
    double l = dot(out, w_out) + dot(sn.h, w_fin.h);
    if (cfg.has_cell_state()) l += dot(sn.c, w_fin.c);
    return l;
  }
};

Problem make_problem(const Case& c, int64_t T = 4, int64_t B = 3) {
  Rng rng(42);
  Problem p;
  p.cfg = c.cfg;
  p.lengths = c.lengths;
  p.params = rnn_init_params<double>(c.cfg, rng);
  // Larger weights than the default init keep the gates away from linear regimes.
  rnn_for_each_param(c.cfg, p.params.dirs, [&](const std::string&, Tensor<double>& t) {
    for (auto& v : t.data) v = rng.uniform(-0.8, 0.8);
  });
  p.x = random_tensor({T, B, c.cfg.input_size}, rng);
  p.s0 = rnn_zero_state<double>(c.cfg, B);
  p.w_fin = rnn_zero_state<double>(c.cfg, B);
  for (auto* t : {&p.s0.h, &p.s0.c, &p.w_fin.h, &p.w_fin.c})
    for (auto& v : t->data) v = rng.uniform(-1, 1);
  p.w_out = random_tensor({T, B, c.cfg.output_size()}, rng);
  return p;
}

void check_gradients(const Case& c, bool training) {
  Problem p = make_problem(c);
  Tensor<double> out, dx;
  RnnState<double> sn, ds0;
  RnnCache<double> cache;
  Rng rng(7);
  rnn_forward(p.cfg, p.params, p.x, p.lengths, p.s0, {.training = training, .rng = &rng}, out, sn, cache);
  RnnGrads<double> grads = rnn_zero_grads<double>(p.cfg);
  rnn_backward(p.cfg, p.params, p.x, cache, p.w_out, p.w_fin, grads, &dx, &ds0);

  std::vector<GradCheckInput> inputs{{"input", &p.x, &dx}, {"h0", &p.s0.h, &ds0.h}};
  if (p.cfg.has_cell_state()) inputs.push_back({"c0", &p.s0.c, &ds0.c});
  std::vector<Tensor<double>*> values;
  rnn_for_each_param(p.cfg, p.params.dirs, [&](const std::string&, Tensor<double>& t) { values.push_back(&t); });
  size_t k = 0;
  rnn_for_each_param(p.cfg, grads.dirs, [&](const std::string& name, Tensor<double>& g) {
    inputs.push_back({name, values[k++], &g});
  });
  EXPECT_GRADCHECK([&] { return p.loss(training); }, inputs, {.eps = 1e-5, .tolerance = 1e-6, .max_per_tensor = 0, .floor = 1e-3})
      << "case " << c.name << (training ? " (training, dropout)" : "");
}

std::vector<Case> all_cases() {
  std::vector<Case> cases;
  for (const auto& v : test::cell_variants())
    for (int64_t layers : {1, 2})
      for (bool bidir : {false, true})
        for (bool ragged : {false, true}) {
          const RnnConfig cfg =
              v.applied_to({.input_size = 3, .hidden_size = 4, .num_layers = layers, .bidirectional = bidir}, 2);
          std::string name = v.name + "_l" + std::to_string(layers) + (bidir ? "_bi" : "_uni") + (ragged ? "_ragged" : "");
          cases.push_back({name, cfg, ragged ? std::vector<int64_t>{4, 1, 3} : std::vector<int64_t>{}});
        }
  return cases;
}

void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

class RnnGradCheck : public ::testing::TestWithParam<Case> {};

TEST_P(RnnGradCheck, MatchesFiniteDifferences) { check_gradients(GetParam(), false); }

class RnnRaggedBatch : public ::testing::TestWithParam<Case> {};

TEST_P(RnnRaggedBatch, OutputsPastLengthAreZeroAndFinalStateIsLastValid) {
  const Case& c = GetParam();
  Problem p = make_problem(c);
  Tensor<double> out;
  RnnState<double> sn;
  RnnCache<double> cache;
  rnn_forward(p.cfg, p.params, p.x, p.lengths, p.s0, {}, out, sn, cache);
  const int64_t T = p.x.dim(0), B = p.x.dim(1), DR = p.cfg.output_size();
  for (int64_t t = 0; t < T; ++t)
    for (int64_t b = 0; b < B; ++b)
      for (int64_t j = 0; j < DR; ++j)
        if (t >= p.lengths[size_t(b)]) {
          EXPECT_EQ(out.data[size_t((t * B + b) * DR + j)], 0.0) << c.name;
        }
  // Running sequence b alone, truncated to its length, must give the same final state and
  // outputs: this is what packed sequences mean.
  for (int64_t b = 0; b < B; ++b) {
    const int64_t len = p.lengths[size_t(b)];
    Tensor<double> xb({len, 1, p.cfg.input_size});
    for (int64_t t = 0; t < len; ++t)
      for (int64_t i = 0; i < p.cfg.input_size; ++i)
        xb.data[size_t(t * p.cfg.input_size + i)] = p.x.data[size_t((t * B + b) * p.cfg.input_size + i)];
    RnnState<double> s0b = rnn_zero_state<double>(p.cfg, 1);
    const int64_t LD = p.cfg.num_layers * p.cfg.directions(), R = p.cfg.state_size(), H = p.cfg.hidden_size;
    for (int64_t k = 0; k < LD; ++k) {
      for (int64_t j = 0; j < R; ++j) s0b.h.data[size_t(k * R + j)] = p.s0.h.data[size_t((k * B + b) * R + j)];
      if (p.cfg.has_cell_state())
        for (int64_t j = 0; j < H; ++j) s0b.c.data[size_t(k * H + j)] = p.s0.c.data[size_t((k * B + b) * H + j)];
    }
    Tensor<double> outb;
    RnnState<double> snb;
    RnnCache<double> cb;
    rnn_forward(p.cfg, p.params, xb, {}, s0b, {}, outb, snb, cb);
    for (int64_t t = 0; t < len; ++t)
      for (int64_t j = 0; j < DR; ++j)
        EXPECT_NEAR(outb.data[size_t(t * DR + j)], out.data[size_t((t * B + b) * DR + j)], 1e-12) << c.name;
    for (int64_t k = 0; k < LD; ++k)
      for (int64_t j = 0; j < R; ++j)
        EXPECT_NEAR(snb.h.data[size_t(k * R + j)], sn.h.data[size_t((k * B + b) * R + j)], 1e-12) << c.name;
  }
}

std::vector<Case> ragged_cases() {
  std::vector<Case> r;
  for (const Case& c : all_cases())
    if (!c.lengths.empty()) r.push_back(c);
  return r;
}

INSTANTIATE_TEST_SUITE_P(AllConfigurations, RnnGradCheck, ::testing::ValuesIn(all_cases()),
                         [](const auto& info) { return info.param.name; });
INSTANTIATE_TEST_SUITE_P(AllConfigurations, RnnRaggedBatch, ::testing::ValuesIn(ragged_cases()),
                         [](const auto& info) { return info.param.name; });

TEST(RnnDropout, GradientsMatchFiniteDifferencesWithFixedMask) {
  for (CellType cell : {CellType::gru, CellType::lstm}) {
    RnnConfig cfg{.cell = cell, .input_size = 3, .hidden_size = 4, .num_layers = 3, .bidirectional = true, .dropout = 0.4};
    check_gradients({std::string(cell_name(cell)) + "_dropout", cfg, {4, 2, 3}}, true);
  }
}

TEST(RnnDropout, OnlyInTrainingAndInverted) {
  RnnConfig cfg{.cell = CellType::lstm, .input_size = 3, .hidden_size = 8, .num_layers = 2, .dropout = 0.5};
  Problem p = make_problem({"lstm", cfg, {}});
  Tensor<double> eval1, eval2, train;
  RnnState<double> sn;
  RnnCache<double> cache;
  rnn_forward(cfg, p.params, p.x, {}, p.s0, {}, eval1, sn, cache);
  Rng rng(3);
  rnn_forward(cfg, p.params, p.x, {}, p.s0, {.training = true, .rng = &rng}, train, sn, cache);
  rnn_forward(cfg, p.params, p.x, {}, p.s0, {}, eval2, sn, cache);
  EXPECT_EQ(eval1.data, eval2.data);
  EXPECT_NE(eval1.data, train.data);
  ASSERT_EQ(cache.dropout_masks.size(), 0u);  // the last forward was not training
  rnn_forward(cfg, p.params, p.x, {}, p.s0, {.training = true, .rng = &rng}, train, sn, cache);
  ASSERT_EQ(cache.dropout_masks.size(), 1u);
  int64_t zeros = 0;
  for (double m : cache.dropout_masks[0].data) {
    EXPECT_TRUE(m == 0.0 || m == 2.0) << m;
    zeros += m == 0.0;
  }
  const double rate = double(zeros) / double(cache.dropout_masks[0].numel());
  EXPECT_GT(rate, 0.25);
  EXPECT_LT(rate, 0.75);
}

// Truncated BPTT: the second chunk starts from the first chunk's final state as a constant.
// Its gradient is therefore the finite difference of L1(theta) + L2(theta; s fixed).
TEST(RnnTruncatedBptt, GradientTreatsCarriedStateAsConstant) {
  for (CellType cell : {CellType::rnn_tanh, CellType::gru, CellType::lstm}) {
    RnnConfig cfg{.cell = cell, .input_size = 3, .hidden_size = 4, .num_layers = 2};
    Problem p1 = make_problem({"c1", cfg, {}}, 3, 2);
    Problem p2 = make_problem({"c2", cfg, {}}, 3, 2);
    p2.params = p1.params;
    Tensor<double> out;
    RnnState<double> carried;
    RnnCache<double> cache1, cache2;
    rnn_forward(cfg, p1.params, p1.x, {}, p1.s0, {}, out, carried, cache1);
    p2.s0 = carried;
    RnnGrads<double> grads = rnn_zero_grads<double>(cfg);
    rnn_backward(cfg, p1.params, p1.x, cache1, p1.w_out, p1.w_fin, grads, nullptr, nullptr);
    RnnState<double> sn;
    rnn_forward(cfg, p2.params, p2.x, {}, p2.s0, {}, out, sn, cache2);
    rnn_backward(cfg, p2.params, p2.x, cache2, p2.w_out, p2.w_fin, grads, nullptr, nullptr);  // accumulates

    std::vector<GradCheckInput> inputs;
    std::vector<Tensor<double>*> values;
    rnn_for_each_param(cfg, p1.params.dirs, [&](const std::string&, Tensor<double>& t) { values.push_back(&t); });
    size_t k = 0;
    rnn_for_each_param(cfg, grads.dirs, [&](const std::string& n, Tensor<double>& g) { inputs.push_back({n, values[k++], &g}); });
    auto loss = [&] {
      p2.params = p1.params;  // shared weights, carried state p2.s0 stays fixed
      return p1.loss() + p2.loss();
    };
    EXPECT_GRADCHECK(loss, inputs, {.eps = 1e-5, .max_per_tensor = 0, .floor = 1e-3}) << cell_name(cell);
  }
}

// Full BPTT over T1 + T2 steps equals two chunks when the second chunk's initial-state
// gradient is fed back as the first chunk's final-state gradient.
TEST(RnnTruncatedBptt, ChainedChunksEqualFullSequence) {
  RnnConfig cfg{.cell = CellType::lstm, .input_size = 3, .hidden_size = 5, .proj_size = 3, .num_layers = 2, .peephole = true};
  Problem full = make_problem({"full", cfg, {}}, 6, 2);
  const int64_t T1 = 2, B = 2, I = 3, DR = cfg.output_size();
  auto slice = [&](const Tensor<double>& t, int64_t from, int64_t to, int64_t F) {
    Tensor<double> s({to - from, B, F});
    std::copy(t.data.begin() + from * B * F, t.data.begin() + to * B * F, s.data.begin());
    return s;
  };
  Tensor<double> out;
  RnnState<double> sn_full, ds0_full;
  RnnCache<double> cache;
  rnn_forward(cfg, full.params, full.x, {}, full.s0, {}, out, sn_full, cache);
  RnnGrads<double> g_full = rnn_zero_grads<double>(cfg);
  Tensor<double> dx_full;
  rnn_backward(cfg, full.params, full.x, cache, full.w_out, full.w_fin, g_full, &dx_full, &ds0_full);

  Tensor<double> x1 = slice(full.x, 0, T1, I), x2 = slice(full.x, T1, 6, I);
  Tensor<double> w1 = slice(full.w_out, 0, T1, DR), w2 = slice(full.w_out, T1, 6, DR);
  RnnState<double> s1, s2, ds_mid, ds0;
  RnnCache<double> c1, c2;
  Tensor<double> o1, o2, dx1, dx2;
  rnn_forward(cfg, full.params, x1, {}, full.s0, {}, o1, s1, c1);
  rnn_forward(cfg, full.params, x2, {}, s1, {}, o2, s2, c2);
  RnnGrads<double> g = rnn_zero_grads<double>(cfg);
  rnn_backward(cfg, full.params, x2, c2, w2, full.w_fin, g, &dx2, &ds_mid);
  rnn_backward(cfg, full.params, x1, c1, w1, ds_mid, g, &dx1, &ds0);
  for (size_t i = 0; i < sn_full.h.data.size(); ++i) EXPECT_NEAR(s2.h.data[i], sn_full.h.data[i], 1e-13);
  for (size_t i = 0; i < ds0.h.data.size(); ++i) EXPECT_NEAR(ds0.h.data[i], ds0_full.h.data[i], 1e-12);
  for (size_t i = 0; i < ds0.c.data.size(); ++i) EXPECT_NEAR(ds0.c.data[i], ds0_full.c.data[i], 1e-12);
  for (size_t d = 0; d < g.dirs.size(); ++d) {
    for (size_t i = 0; i < g.dirs[d].w_hh.data.size(); ++i) EXPECT_NEAR(g.dirs[d].w_hh.data[i], g_full.dirs[d].w_hh.data[i], 1e-12);
    for (size_t i = 0; i < g.dirs[d].w_peep.data.size(); ++i)
      EXPECT_NEAR(g.dirs[d].w_peep.data[i], g_full.dirs[d].w_peep.data[i], 1e-12);
  }
  for (size_t i = 0; i < dx1.data.size(); ++i) EXPECT_NEAR(dx1.data[i], dx_full.data[i], 1e-12);
}

TEST(RnnShapes, ErrorsNameWhatWasExpectedAndGiven) {
  RnnConfig cfg{.cell = CellType::gru, .input_size = 3, .hidden_size = 4, .num_layers = 2, .bidirectional = true};
  Rng rng(1);
  RnnParams<double> params = rnn_init_params<double>(cfg, rng);
  Tensor<double> out;
  RnnState<double> sn;
  RnnCache<double> cache;
  auto expect_error = [&](auto&& f, const std::string& needle) {
    try {
      f();
      ADD_FAILURE() << "no error, expected one containing: " << needle;
    } catch (const ShapeError& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  Tensor<double> x({5, 2, 3});
  expect_error([&] { rnn_forward(cfg, params, Tensor<double>({5, 2, 4}), {}, {}, {}, out, sn, cache); },
               "rnn input: expected shape [T, B, 3] with T, B >= 1, got [5, 2, 4]");
  expect_error([&] { rnn_forward(cfg, params, x, {5}, {}, {}, out, sn, cache); }, "expected 2 entries");
  expect_error([&] { rnn_forward(cfg, params, x, {5, 6}, {}, {}, out, sn, cache); }, "lengths[1] = 6");
  expect_error([&] { rnn_forward(cfg, params, x, {0, 5}, {}, {}, out, sn, cache); }, "lengths[0] = 0");
  RnnState<double> bad_state{Tensor<double>({4, 3, 4}), {}};
  expect_error([&] { rnn_forward(cfg, params, x, {}, bad_state, {}, out, sn, cache); },
               "rnn initial state h: expected shape [4, 2, 4], got [4, 3, 4]");
  RnnParams<double> bad = params;
  bad.dirs[3].w_ih = Tensor<double>({12, 3});
  expect_error([&] { rnn_forward(cfg, bad, x, {}, {}, {}, out, sn, cache); },
               "rnn parameter weight_ih_l1_reverse: expected shape [12, 8], got [12, 3]");
  rnn_forward(cfg, params, x, {}, {}, {}, out, sn, cache);
  RnnGrads<double> grads = rnn_zero_grads<double>(cfg);
  expect_error([&] { rnn_backward(cfg, params, x, cache, Tensor<double>({5, 2, 4}), {}, grads, nullptr, nullptr); },
               "rnn_backward grad_output: expected shape [5, 2, 8], got [5, 2, 4]");
}

TEST(RnnConfigTest, InvalidConfigurationsAreRefused) {
  auto refused = [](RnnConfig c) {
    try {
      c.validate();
      return false;
    } catch (const Error&) {
      return true;
    }
  };
  EXPECT_TRUE(refused({.cell = CellType::lstm, .input_size = 0, .hidden_size = 4}));
  EXPECT_TRUE(refused({.cell = CellType::lstm, .input_size = 3, .hidden_size = 0}));
  EXPECT_TRUE(refused({.cell = CellType::gru, .input_size = 3, .hidden_size = 4, .proj_size = 2}));
  EXPECT_TRUE(refused({.cell = CellType::rnn_tanh, .input_size = 3, .hidden_size = 4, .peephole = true}));
  EXPECT_TRUE(refused({.cell = CellType::lstm, .input_size = 3, .hidden_size = 4, .proj_size = 4}));
  EXPECT_TRUE(refused({.cell = CellType::lstm, .input_size = 3, .hidden_size = 4, .num_layers = 0}));
  EXPECT_TRUE(refused({.cell = CellType::lstm, .input_size = 3, .hidden_size = 4, .dropout = 1.0}));
  EXPECT_FALSE(refused({.cell = CellType::lstm, .input_size = 3, .hidden_size = 4, .proj_size = 2, .peephole = true}));
}

}  // namespace
}  // namespace recur
