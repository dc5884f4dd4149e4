// The oneDNN backend of the recurrent core against the reference backend, in float: every
// configuration oneDNN runs (each cell, peephole and projection LSTMs too, 1 and 2 layers,
// uni- and bidirectional, with and without bias, nonzero initial states, nonzero final-state
// gradients, dropout between layers) must give the same outputs, final states and gradients
// up to float rounding; what it does not run (ragged batches, double) must fall back under
// `automatic` and be refused under `onednn`; `automatic` keeps calls too small to gain on the
// reference path; the per-step record diagnostics read is recomputed for oneDNN caches.
// Without oneDNN in the build only the fallback tests run.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "recur/diag/diagnostics.h"
#include "recur/core/error.h"
#include "recur/core/rnn.h"
#include "cell_variants.h"

namespace recur {
namespace {

using test::CellVariant;
using test::cell_variants;

struct Case {
  std::string name;
  RnnConfig cfg;
};

void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

std::vector<Case> all_cases() {
  std::vector<Case> cases;
  for (const CellVariant& v : cell_variants())
    for (int64_t layers : {1, 2})
      for (bool bidir : {false, true})
        for (bool bias : {true, false}) {
          // H = 12: not a multiple of oneDNN's vector width, so tails are exercised.
          const RnnConfig cfg = v.applied_to(
              {.input_size = 5, .hidden_size = 12, .num_layers = layers, .bidirectional = bidir, .bias = bias}, 6);
          cases.push_back({v.name + "_l" + std::to_string(layers) + (bidir ? "_bi" : "_uni") + (bias ? "" : "_nobias"),
                           cfg});
        }
  return cases;
}

// Everything one comparison needs, in float.
struct Problem {
  RnnConfig cfg;
  RnnParams<float> params;
  Tensor<float> x;             // [T, B, I]
  RnnState<float> s0;          // nonzero initial state
  Tensor<float> grad_out;      // [T, B, D*R]
  RnnState<float> grad_fin;    // nonzero final-state gradient
};

// weight_scale: weights uniform in +-weight_scale / sqrt(H). Twice the default init keeps
// gates away from their linear regimes and ReLU units both dead and alive, yet the network
// stable: in a chaotic one (much larger weights, many steps) any rounding difference grows
// exponentially and no two float implementations agree.
Problem make_problem(const RnnConfig& cfg, int64_t T, int64_t B, uint64_t seed = 42, double weight_scale = 2.0) {
  Rng rng(seed);
  Problem p;
  p.cfg = cfg;
  p.params = rnn_init_params_uniform<float>(cfg, rng, weight_scale / std::sqrt(double(cfg.hidden_size)));
  p.x = Tensor<float>({T, B, cfg.input_size});
  for (auto& v : p.x.data) v = float(rng.uniform(-1, 1));
  p.s0 = rnn_zero_state<float>(cfg, B);
  p.grad_fin = rnn_zero_state<float>(cfg, B);
  for (auto* t : {&p.s0.h, &p.s0.c, &p.grad_fin.h, &p.grad_fin.c})
    for (auto& v : t->data) v = float(rng.uniform(-1, 1));
  p.grad_out = Tensor<float>({T, B, cfg.output_size()});
  for (auto& v : p.grad_out.data) v = float(rng.uniform(-1, 1));
  return p;
}

// What forward and backward produce.
struct Result {
  RnnBackend ran = RnnBackend::automatic;
  Tensor<float> out, grad_input;
  RnnState<float> state_n, grad_state0;
  RnnGrads<float> grads;
};

Result run(const Problem& p, RnnBackend backend, const std::vector<int64_t>& lengths = {}, bool training = false,
           uint64_t dropout_seed = 7) {
  Result r;
  RnnCache<float> cache;
  Rng rng(dropout_seed);
  rnn_forward(p.cfg, p.params, p.x, lengths, p.s0, {.training = training, .rng = &rng, .backend = backend}, r.out,
              r.state_n, cache);
  r.ran = cache.backend;
  r.grads = rnn_zero_grads<float>(p.cfg);
  rnn_backward(p.cfg, p.params, p.x, cache, p.grad_out, p.grad_fin, r.grads, &r.grad_input, &r.grad_state0);
  return r;
}

// max |a - b| <= tol * max(1, max |a|): float rounding, relative to the tensor's magnitude.
::testing::AssertionResult close(const std::string& what, const Tensor<float>& a, const Tensor<float>& b,
                                 double tol = 1e-4) {
  if (a.shape != b.shape)
    return ::testing::AssertionFailure() << what << ": shapes " << shape_str(a.shape) << " vs " << shape_str(b.shape);
  double diff = 0, mag = 1;
  size_t worst = 0;
  for (size_t i = 0; i < a.data.size(); ++i) {
    const double d = std::abs(double(a.data[i]) - double(b.data[i]));
    if (!(d <= diff)) diff = d, worst = i;  // NaN counts as worst
    mag = std::max(mag, std::abs(double(a.data[i])));
  }
  if (diff <= tol * mag) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << what << ": max |diff| " << diff << " at [" << worst << "] ("
                                       << a.data[worst] << " vs " << b.data[worst] << "), allowed " << tol * mag;
}

void expect_same(const RnnConfig& cfg, const Result& ref, const Result& dnn, double tol = 1e-4) {
  EXPECT_TRUE(close("output", ref.out, dnn.out, tol));
  EXPECT_TRUE(close("state_n.h", ref.state_n.h, dnn.state_n.h, tol));
  EXPECT_TRUE(close("state_n.c", ref.state_n.c, dnn.state_n.c, tol));
  EXPECT_TRUE(close("grad_input", ref.grad_input, dnn.grad_input, tol));
  EXPECT_TRUE(close("grad_state0.h", ref.grad_state0.h, dnn.grad_state0.h, tol));
  EXPECT_TRUE(close("grad_state0.c", ref.grad_state0.c, dnn.grad_state0.c, tol));
  std::vector<const Tensor<float>*> theirs;
  rnn_for_each_param(cfg, dnn.grads.dirs, [&](const std::string&, const Tensor<float>& g) { theirs.push_back(&g); });
  size_t k = 0;
  rnn_for_each_param(cfg, ref.grads.dirs, [&](const std::string& name, const Tensor<float>& g) {
    EXPECT_TRUE(close("grad " + name, g, *theirs[k++], tol));
  });
}

#define SKIP_WITHOUT_ONEDNN() \
  if (!rnn_onednn_available()) GTEST_SKIP() << "recur was built without oneDNN"

class RnnOnednn : public ::testing::TestWithParam<Case> {};

TEST_P(RnnOnednn, MatchesReference) {
  SKIP_WITHOUT_ONEDNN();
  const Problem p = make_problem(GetParam().cfg, /*T=*/7, /*B=*/3);
  const Result ref = run(p, RnnBackend::reference);
  const Result dnn = run(p, RnnBackend::onednn);
  EXPECT_EQ(ref.ran, RnnBackend::reference);
  EXPECT_EQ(dnn.ran, RnnBackend::onednn);
  expect_same(p.cfg, ref, dnn);
}

INSTANTIATE_TEST_SUITE_P(AllCells, RnnOnednn, ::testing::ValuesIn(all_cases()),
                         [](const auto& info) { return info.param.name; });

RnnConfig config(CellType cell, int64_t layers = 1, bool bidir = false, int64_t hidden = 12) {
  RnnConfig cfg;
  cfg.cell = cell;
  cfg.input_size = 5;
  cfg.hidden_size = hidden;
  cfg.num_layers = layers;
  cfg.bidirectional = bidir;
  return cfg;
}

// Sizes where oneDNN's kernels block and vectorise (H a multiple of 16, B above one row),
// over more steps, where rounding differences accumulate.
TEST(RnnOnednnLarger, MatchesReference) {
  SKIP_WITHOUT_ONEDNN();
  for (const CellVariant& v : cell_variants()) {
    SCOPED_TRACE(v.name);
    RnnConfig cfg = v.applied_to(config(v.cell, 2, true, 64), 24);
    cfg.input_size = 40;
    const Problem p = make_problem(cfg, /*T=*/30, /*B=*/9);
    expect_same(cfg, run(p, RnnBackend::reference), run(p, RnnBackend::onednn), 2e-4);
  }
}

// Wide enough for `automatic` to pick oneDNN at B >= 4, T >= 10 (G * H >= 384).
RnnConfig wide(const CellVariant& v, int64_t layers = 2, bool bidir = true) {
  return v.applied_to(
      config(v.cell, layers, bidir, std::max<int64_t>(12, (384 + gate_count(v.cell) - 1) / gate_count(v.cell))), 6);
}

TEST(RnnOnednnFallback, AutomaticUsesOnednnWhereItPaysOff) {
  SKIP_WITHOUT_ONEDNN();
  const Problem p = make_problem(config(CellType::lstm, 1, false, 96), 10, 4);
  EXPECT_EQ(run(p, RnnBackend::automatic).ran, RnnBackend::onednn);
  EXPECT_EQ(run(p, RnnBackend::automatic, {10, 10, 10, 10}).ran, RnnBackend::onednn);  // all lengths = T
  EXPECT_EQ(rnn_onednn_unsupported<float>(p.cfg, 10, {}), "");
  // Too small to amortise oneDNN's per-call and per-step costs: one step (sampling), one
  // sequence, a narrow layer.
  EXPECT_EQ(run(make_problem(p.cfg, 1, 4), RnnBackend::automatic).ran, RnnBackend::reference);
  EXPECT_EQ(run(make_problem(p.cfg, 10, 1), RnnBackend::automatic).ran, RnnBackend::reference);
  EXPECT_EQ(run(make_problem(config(CellType::lstm, 1, false, 12), 10, 4), RnnBackend::automatic).ran,
            RnnBackend::reference);
  // Each eligible cell is taken at a size that pays off.
  for (const CellVariant& v : cell_variants()) {
    SCOPED_TRACE(v.name);
    EXPECT_EQ(run(make_problem(wide(v), 10, 4), RnnBackend::automatic).ran, RnnBackend::onednn);
  }
}

// Ragged batches run on the reference path under `automatic`: identical, not just close.
TEST(RnnOnednnFallback, RaggedLengthsUseReference) {
  for (const CellVariant& v : cell_variants()) {
    SCOPED_TRACE(v.name);
    const Problem p = make_problem(wide(v), 10, 4);
    const std::vector<int64_t> lengths{10, 3, 7, 10};
    const Result a = run(p, RnnBackend::automatic, lengths);
    const Result r = run(p, RnnBackend::reference, lengths);
    EXPECT_EQ(a.ran, RnnBackend::reference);
    EXPECT_EQ(a.out.data, r.out.data);
    EXPECT_EQ(a.state_n.h.data, r.state_n.h.data);
    EXPECT_EQ(a.grad_input.data, r.grad_input.data);
    EXPECT_EQ(a.grads.dirs[0].w_hh.data, r.grads.dirs[0].w_hh.data);
  }
}

TEST(RnnOnednnFallback, OnednnRefusesWhatItCannotRun) {
  const Problem p = make_problem(config(CellType::gru), 6, 3);
  Tensor<float> out;
  RnnState<float> sn;
  RnnCache<float> cache;
  try {
    rnn_forward(p.cfg, p.params, p.x, {6, 2, 4}, p.s0, {.backend = RnnBackend::onednn}, out, sn, cache);
    FAIL() << "expected an Error for ragged lengths";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("RnnBackend::onednn cannot run this call"), std::string::npos) << msg;
    EXPECT_NE(msg.find(rnn_onednn_available() ? "lengths[1] = 2" : "without oneDNN"), std::string::npos) << msg;
  }
  // double: oneDNN computes in float.
  Rng rng(1);
  const RnnConfig cfg = config(CellType::lstm);
  const RnnParams<double> params = rnn_init_params<double>(cfg, rng);
  Tensor<double> x({4, 2, 5}), out_d;
  RnnState<double> sn_d;
  RnnCache<double> cache_d;
  EXPECT_THROW(rnn_forward(cfg, params, x, {}, {}, {.backend = RnnBackend::onednn}, out_d, sn_d, cache_d), Error);
  rnn_forward(cfg, params, x, {}, {}, {.backend = RnnBackend::automatic}, out_d, sn_d, cache_d);
  EXPECT_EQ(cache_d.backend, RnnBackend::reference);
}

// Dropout between layers: the same generator seed draws the same masks on both paths.
TEST(RnnOnednnTraining, DropoutBetweenLayersMatches) {
  SKIP_WITHOUT_ONEDNN();
  for (CellType cell : {CellType::lstm, CellType::gru, CellType::rnn_tanh}) {
    RnnConfig cfg = config(cell, 3, true);
    cfg.dropout = 0.4;
    const Problem p = make_problem(cfg, 6, 4);
    const Result ref = run(p, RnnBackend::reference, {}, /*training=*/true, 99);
    const Result dnn = run(p, RnnBackend::onednn, {}, /*training=*/true, 99);
    EXPECT_EQ(dnn.ran, RnnBackend::onednn);
    expect_same(cfg, ref, dnn);
    // And the masks were applied: a different seed changes the output.
    const Result other = run(p, RnnBackend::onednn, {}, true, 100);
    EXPECT_FALSE(close("output", dnn.out, other.out));
  }
}

// Backward after an inference forward (no workspace kept) reruns the forward for it.
TEST(RnnOnednnTraining, BackwardAfterInferenceForward) {
  SKIP_WITHOUT_ONEDNN();
  const Problem p = make_problem(config(CellType::lstm, 2, true), 5, 3);
  expect_same(p.cfg, run(p, RnnBackend::reference, {}, false), run(p, RnnBackend::onednn, {}, false));
  expect_same(p.cfg, run(p, RnnBackend::reference, {}, false), run(p, RnnBackend::onednn, {}, true));
}

// One cache through changing shapes and backends, gradients accumulating (+=) across calls,
// no initial state and skipped input / initial-state gradients: every call as a fresh one.
TEST(RnnOnednnCache, ReusedAcrossShapesBackendsAndAccumulation) {
  SKIP_WITHOUT_ONEDNN();
  const RnnConfig cfg = config(CellType::gru, 2, true);
  RnnCache<float> cache;
  RnnGrads<float> grads_ref = rnn_zero_grads<float>(cfg), grads_dnn = rnn_zero_grads<float>(cfg);
  struct Call {
    int64_t T, B;
    RnnBackend backend;
  };
  const std::vector<Call> calls{{7, 3, RnnBackend::onednn},    {5, 3, RnnBackend::onednn},
                                {7, 3, RnnBackend::onednn},    {7, 2, RnnBackend::reference},
                                {7, 3, RnnBackend::automatic}, {4, 5, RnnBackend::onednn},
                                {9, 1, RnnBackend::onednn},    {5, 3, RnnBackend::onednn}};
  uint64_t seed = 1;
  for (const Call& c : calls) {
    SCOPED_TRACE("T = " + std::to_string(c.T) + ", B = " + std::to_string(c.B));
    Problem p = make_problem(cfg, c.T, c.B, seed++);
    Tensor<float> out_ref, out_dnn, dx_ref, dx_dnn;
    RnnState<float> sn_ref, sn_dnn;
    RnnCache<float> fresh;
    rnn_forward(cfg, p.params, p.x, {}, {}, {.backend = RnnBackend::reference}, out_ref, sn_ref, fresh);
    rnn_backward(cfg, p.params, p.x, fresh, p.grad_out, {}, grads_ref, &dx_ref, nullptr);
    rnn_forward(cfg, p.params, p.x, {}, {}, {.backend = c.backend}, out_dnn, sn_dnn, cache);
    rnn_backward(cfg, p.params, p.x, cache, p.grad_out, {}, grads_dnn, &dx_dnn, nullptr);
    EXPECT_TRUE(close("output", out_ref, out_dnn));
    EXPECT_TRUE(close("state_n.h", sn_ref.h, sn_dnn.h));
    EXPECT_TRUE(close("grad_input", dx_ref, dx_dnn));
    // No grad_input wanted: the parameter gradients are unaffected.
    rnn_backward(cfg, p.params, p.x, cache, p.grad_out, {}, grads_dnn, nullptr, nullptr);
    rnn_backward(cfg, p.params, p.x, fresh, p.grad_out, {}, grads_ref, nullptr, nullptr);
  }
  size_t k = 0;
  std::vector<const Tensor<float>*> dnn;
  rnn_for_each_param(cfg, grads_dnn.dirs, [&](const std::string&, const Tensor<float>& g) { dnn.push_back(&g); });
  rnn_for_each_param(cfg, grads_ref.dirs, [&](const std::string& name, const Tensor<float>& g) {
    EXPECT_TRUE(close("accumulated grad " + name, g, *dnn[k++]));
  });
}

// Training forwards of p on both backends into their caches, dropout drawn from generators of
// the same seed (so the masks agree).
void forward_both_backends(const Problem& p, uint64_t seed, RnnCache<float>& ref, RnnCache<float>& dnn) {
  Tensor<float> out;
  RnnState<float> sn;
  Rng rng_ref(seed), rng_dnn(seed);
  rnn_forward(p.cfg, p.params, p.x, {}, p.s0, {.training = true, .rng = &rng_ref, .backend = RnnBackend::reference},
              out, sn, ref);
  rnn_forward(p.cfg, p.params, p.x, {}, p.s0, {.training = true, .rng = &rng_dnn, .backend = RnnBackend::onednn},
              out, sn, dnn);
}

// The per-step record a oneDNN forward does not keep is recomputed for diagnostics.
TEST(RnnOnednnCache, StepRecordMatchesReference) {
  SKIP_WITHOUT_ONEDNN();
  for (const CellVariant& v : cell_variants()) {
    SCOPED_TRACE(v.name);
    RnnConfig cfg = v.applied_to(config(v.cell, 2, true), 6);
    cfg.dropout = 0.3;
    const Problem p = make_problem(cfg, 6, 3);
    RnnCache<float> ref, dnn;
    forward_both_backends(p, 5, ref, dnn);
    ASSERT_EQ(dnn.backend, RnnBackend::onednn);
    EXPECT_TRUE(dnn.dirs[0].gates.empty());  // nothing stale to misread
    std::vector<DirectionCache<float>> scratch, unused;
    const auto& rec = rnn_step_record(cfg, p.params, p.x, dnn, scratch);
    EXPECT_EQ(&rnn_step_record(cfg, p.params, p.x, ref, unused), &ref.dirs);
    ASSERT_EQ(rec.size(), ref.dirs.size());
    for (size_t k = 0; k < rec.size(); ++k) {
      SCOPED_TRACE("layer-direction " + std::to_string(k));
      EXPECT_TRUE(close("gates", ref.dirs[k].gates, rec[k].gates));
      EXPECT_TRUE(close("h", ref.dirs[k].h, rec[k].h));
      EXPECT_TRUE(close("c", ref.dirs[k].c, rec[k].c));
      EXPECT_TRUE(close("aux", ref.dirs[k].aux, rec[k].aux));
    }
  }
}

// Diagnostics read the per-step record: on a oneDNN cache they recompute it and agree.
TEST(RnnOnednnCache, StateGradientsOfOnednnForward) {
  SKIP_WITHOUT_ONEDNN();
  for (CellType cell : {CellType::lstm, CellType::gru}) {
    RnnConfig cfg = config(cell, 2, false);
    cfg.dropout = 0.25;
    const Problem p = make_problem(cfg, 8, 3);
    RnnCache<float> ref, dnn;
    forward_both_backends(p, 3, ref, dnn);
    const StateGrads<float> a = rnn_state_grads(cfg, p.params, p.x, ref, p.grad_out);
    const StateGrads<float> b = rnn_state_grads(cfg, p.params, p.x, dnn, p.grad_out);
    ASSERT_EQ(a.h.size(), b.h.size());
    for (size_t k = 0; k < a.h.size(); ++k) {
      EXPECT_TRUE(close("dLoss/dh", a.h[k], b.h[k]));
      if (cell == CellType::lstm) {
        EXPECT_TRUE(close("dLoss/dc", a.c[k], b.c[k]));
      }
    }
  }
}

}  // namespace
}  // namespace recur
