// The language model end to end in the library, built as a model.h layer graph (lm.h): gradients
// of the whole model against finite differences (every cell variant, embedding and one-hot
// input, dropout with fixed masks, padded batches, a carried state, tied weights), the graph's
// layout and initialisation, and a task that only a working recurrence can solve, learned by
// LSTM and GRU but not by the basic RNN.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "cell_variants.h"
#include "gradcheck.h"
#include "recur/model/lm.h"
#include "recur/core/optim.h"
#include "recur/core/safetensors.h"

namespace recur {
namespace {

using test::GradCheckInput;

struct LmProblem {
  LmConfig cfg;
  ModelSpec spec;  // lm_model_spec(cfg), or a variant of it (tied weights)
  ModelParams<double> params;
  std::vector<int32_t> input, target;  // [T, B]
  std::vector<float> mask;             // [T, B] or empty
  std::vector<int64_t> lengths;        // [B] or empty
  int64_t T = 5, B = 3;
  RnnState<double> state0;

  LmBatch batch() const {
    return {.input = input, .target = target, .mask = mask, .lengths = lengths, .steps = T, .batch = B};
  }
  LossSum run(ModelGrads<double>* grads, bool training) const {
    RnnState<double> state = state0;  // the carried state of stream mode: a constant of the chunk
    ModelCache<double> cache;
    Rng rng(11);  // the same dropout masks on every call
    return lm_forward_backward(spec, params, batch(), state, {.training = training, .rng = &rng}, cache, grads, 1.0);
  }
};

LmProblem make_lm(const RnnConfig& rnn, int64_t embed, bool padded, double dropout) {
  LmProblem p;
  const int64_t V = 7;
  p.cfg.vocab_size = V;
  p.cfg.embed_size = embed;
  p.cfg.dropout = dropout;
  p.cfg.rnn = rnn;
  p.cfg.rnn.input_size = embed > 0 ? embed : V;
  p.cfg.rnn.dropout = dropout;
  p.spec = lm_model_spec(p.cfg);
  Rng rng(5);
  p.params = lm_init_params<double>(p.cfg, rng, 0.5);
  for (int64_t k = 0; k < p.T * p.B; ++k) {
    p.input.push_back(int32_t(rng.below(uint64_t(V))));
    p.target.push_back(int32_t(rng.below(uint64_t(V))));
  }
  if (padded) {
    p.lengths = {5, 2, 4};
    for (int64_t t = 0; t < p.T; ++t)
      for (int64_t b = 0; b < p.B; ++b) p.mask.push_back(t < p.lengths[size_t(b)] ? 1.f : 0.f);
  }
  p.state0 = rnn_zero_state<double>(p.cfg.rnn, p.B);
  for (auto& v : p.state0.h.data) v = rng.uniform(-0.5, 0.5);
  for (auto& v : p.state0.c.data) v = rng.uniform(-0.5, 0.5);
  return p;
}
LmProblem make_lm(CellType cell, int64_t embed, bool padded, double dropout) {
  return make_lm(RnnConfig{.cell = cell, .hidden_size = 4, .num_layers = 2}, embed, padded, dropout);
}

void check_lm_gradients(LmProblem p, bool training, const std::string& what) {
  ModelGrads<double> grads = model_zero_grads<double>(p.spec);
  const LossSum loss = p.run(&grads, training);
  ASSERT_GT(loss.count, 0);
  std::vector<Tensor<double>*> values;
  model_for_each_param(p.spec, p.params, [&](const std::string&, Tensor<double>& t, bool) { values.push_back(&t); });
  std::vector<GradCheckInput> inputs;
  size_t k = 0;
  model_for_each_param(p.spec, grads, [&](const std::string& name, Tensor<double>& g, bool) {
    inputs.push_back({name, values[k++], &g});
  });
  ASSERT_EQ(k, values.size());
  EXPECT_GRADCHECK([&] { return p.run(nullptr, training).sum; }, inputs, {.eps = 1e-5, .max_per_tensor = 0, .floor = 1e-3})
      << what;
}

TEST(LmGradients, EmbeddingLstmMatchesFiniteDifferences) { check_lm_gradients(make_lm(CellType::lstm, 3, false, 0), false, "lstm"); }
TEST(LmGradients, OneHotGruMatchesFiniteDifferences) { check_lm_gradients(make_lm(CellType::gru, 0, false, 0), false, "gru"); }
TEST(LmGradients, PaddedBatchMatchesFiniteDifferences) {
  check_lm_gradients(make_lm(CellType::lstm, 3, true, 0), false, "padded");
}
TEST(LmGradients, DropoutWithFixedMasksMatchesFiniteDifferences) {
  check_lm_gradients(make_lm(CellType::lstm, 3, true, 0.3), true, "dropout");
}

// Every cell variant of the core, with embedding and with one-hot input, from a carried
// (nonzero) state, as the LM graph.
TEST(LmGradients, EveryCellVariantEmbeddingAndOneHotMatchFiniteDifferences) {
  for (const auto& v : test::cell_variants())
    for (int64_t embed : {int64_t(3), int64_t(0)}) {
      const RnnConfig rc = v.applied_to({.hidden_size = 4, .num_layers = 2}, 3);
      check_lm_gradients(make_lm(rc, embed, false, 0), false, v.name + (embed > 0 ? " embedding" : " one-hot"));
    }
}

TEST(LmGradients, DropoutEveryCellFamilyMatchesFiniteDifferences) {
  for (CellType cell : {CellType::rnn_tanh, CellType::gru}) check_lm_gradients(make_lm(cell, 0, false, 0.3), true, "dropout");
}

// The LM graph with its decoder tied to the encoder (E = R): the shared matrix's gradient sums
// the embedding's and the head's use.
LmProblem make_tied_lm(CellType cell) {
  LmProblem p = make_lm(RnnConfig{.cell = cell, .hidden_size = 3, .num_layers = 1}, 3, false, 0);
  ModelSpec s;
  s.tokens("ids", p.cfg.vocab_size);
  s.embedding("encoder", "ids", 3);
  s.rnn("rnn", "encoder", p.cfg.rnn);
  s.linear("decoder", "rnn", p.cfg.vocab_size, "encoder");
  s.validate();
  p.spec = s;
  Rng rng(9);
  p.params = model_init_params<double>(s, rng, {.scheme = ModelInitOptions::Scheme::uniform, .scale = 0.5});
  return p;
}

TEST(LmGradients, TiedWeightsMatchFiniteDifferences) {
  for (CellType cell : {CellType::lstm, CellType::gru}) {
    LmProblem p = make_tied_lm(cell);
    std::vector<std::string> names;
    model_for_each_param(p.spec, p.params, [&](const std::string& n, Tensor<double>&, bool) { names.push_back(n); });
    EXPECT_EQ(std::count(names.begin(), names.end(), "decoder.weight"), 0) << "a tied head has no matrix of its own";
    EXPECT_EQ(names.back(), "decoder.bias");
    check_lm_gradients(p, false, "tied");
    // Every row of the shared matrix has a gradient now: the rows list says so.
    ModelGrads<double> g = model_zero_grads<double>(p.spec);
    p.run(&g, false);
    EXPECT_EQ(g.layers[0].rows.size(), size_t(p.cfg.vocab_size));
  }
}

TEST(LmGraph, TiedWeightsOfAnotherShapeAreRefused) {
  ModelSpec s;
  s.tokens("ids", 7);
  s.embedding("encoder", "ids", 3);
  s.rnn("rnn", "encoder", RnnConfig{.cell = CellType::lstm, .hidden_size = 4});
  s.linear("decoder", "rnn", 7, "encoder");
  try {
    s.validate();
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("model layer 'decoder' (linear): tie 'encoder': expected size"), std::string::npos)
        << e.what();
  }
}

// LmConfig::tie_weights (`recur train --tie-weights`) builds the tied graph itself: the same
// layers as the untied LM with the decoder's matrix taken from "encoder", gradient-checked with
// dropout on (fixed masks) and with a projected LSTM, whose output width is proj.
TEST(LmGradients, TieWeightsConfigMatchesFiniteDifferences) {
  for (const auto& [cell, proj] : {std::pair{CellType::lstm, int64_t(0)}, std::pair{CellType::gru, int64_t(0)},
                                   std::pair{CellType::lstm, int64_t(3)}}) {
    const int64_t R = proj > 0 ? proj : 4;
    RnnConfig rc{.cell = cell, .hidden_size = 4, .proj_size = proj, .num_layers = 2};
    LmProblem p = make_lm(rc, R, true, 0.3);
    p.cfg.tie_weights = true;
    p.spec = lm_model_spec(p.cfg);
    Rng rng(5);
    p.params = lm_init_params<double>(p.cfg, rng, 0.5);
    EXPECT_EQ(p.spec.layer("decoder").tie, "encoder");
    std::vector<std::string> names;
    model_for_each_param(p.spec, p.params, [&](const std::string& n, Tensor<double>&, bool) { names.push_back(n); });
    EXPECT_EQ(std::count(names.begin(), names.end(), "decoder.weight"), 0) << "the shared matrix is stored once";
    EXPECT_EQ(std::count(names.begin(), names.end(), "encoder.weight"), 1);
    const std::string what = std::string(cell_name(cell)) + " proj " + std::to_string(proj);
    check_lm_gradients(p, true, "tie_weights " + what);
    // The untied model with the same sizes has V * R more parameters.
    LmConfig untied = p.cfg;
    untied.tie_weights = false;
    EXPECT_EQ(model_param_count(lm_model_spec(untied)) - model_param_count(p.spec), p.cfg.vocab_size * R) << what;
  }
}

TEST(LmGraph, TieWeightsConfigRefusesOneHotAndOtherWidths) {
  auto message = [](int64_t embed, int64_t hidden) {
    LmConfig c{.vocab_size = 7, .embed_size = embed,
               .rnn = {.cell = CellType::lstm, .input_size = embed > 0 ? embed : 7, .hidden_size = hidden}};
    c.tie_weights = true;
    try {
      (void)lm_model_spec(c);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message(0, 4).find("tied weights: the decoder would share the input embedding, but the input is one-hot"),
            std::string::npos)
      << message(0, 4);
  EXPECT_NE(message(3, 4).find("E must equal the recurrent output width 4 (hidden, or proj when set); got embedding size 3"),
            std::string::npos)
      << message(3, 4);
  EXPECT_EQ(message(4, 4), "no error");
}

// The graph's parameter names are recur-lm v1's and PyTorch word_language_model's.
TEST(LmGraph, LayersAndParameterNamesAreWordLanguageModels) {
  LmConfig cfg{.vocab_size = 7, .embed_size = 3, .rnn = {.cell = CellType::lstm, .input_size = 3, .hidden_size = 4, .num_layers = 2}};
  const ModelSpec s = lm_model_spec(cfg);
  std::vector<std::string> layers;
  for (const auto& l : s.layers) layers.push_back(l.name);
  EXPECT_EQ(layers, (std::vector<std::string>{"encoder", "drop_in", "rnn", "drop_out", "decoder"}));
  ModelParams<float> p = model_zero_params<float>(s);
  std::vector<std::string> names;
  model_for_each_param(s, p, [&](const std::string& n, Tensor<float>&, bool) { names.push_back(n); });
  EXPECT_EQ(names.front(), "encoder.weight");
  EXPECT_EQ(names[1], "rnn.weight_ih_l0");
  EXPECT_EQ(names[names.size() - 2], "decoder.weight");
  EXPECT_EQ(names.back(), "decoder.bias");
  cfg.embed_size = 0;
  cfg.rnn.input_size = 7;
  const ModelSpec oh = lm_model_spec(cfg);
  EXPECT_EQ(oh.layers[0].kind, LayerKind::onehot);
  EXPECT_EQ(oh.width("onehot"), 7);
}

// init_scale > 0: every parameter in [-s, s] and the decoder bias drawn; 0: word_language_model's
// scheme with the decoder bias 0 and encoder/decoder in [-0.1, 0.1].
TEST(LmGraph, InitialisationSchemes) {
  LmConfig cfg{.vocab_size = 11, .embed_size = 5, .rnn = {.cell = CellType::gru, .input_size = 5, .hidden_size = 40}};
  const ModelSpec s = lm_model_spec(cfg);
  Rng rng(3);
  ModelParams<float> p = lm_init_params<float>(cfg, rng, 0.05);
  double max_abs = 0, bias_abs = 0;
  model_for_each_param(s, p, [&](const std::string& n, Tensor<float>& t, bool) {
    for (float v : t.data) max_abs = std::max(max_abs, double(std::fabs(v)));
    if (n == "decoder.bias")
      for (float v : t.data) bias_abs = std::max(bias_abs, double(std::fabs(v)));
  });
  EXPECT_LE(max_abs, 0.05);
  EXPECT_GT(bias_abs, 0.0);
  ModelParams<float> q = lm_init_params<float>(cfg, rng, 0.0);
  const size_t dec = size_t(s.layer_index("decoder")), enc = size_t(s.layer_index("encoder"));
  for (float v : q.layers[dec].bias.data) EXPECT_EQ(v, 0.f);
  double enc_abs = 0, rnn_abs = 0;
  for (float v : q.layers[enc].weight.data) enc_abs = std::max(enc_abs, double(std::fabs(v)));
  for (float v : q.layers[dec].weight.data) enc_abs = std::max(enc_abs, double(std::fabs(v)));
  for (float v : q.layers[size_t(s.layer_index("rnn"))].rnn.dirs[0].w_hh.data) rnn_abs = std::max(rnn_abs, double(std::fabs(v)));
  EXPECT_LE(enc_abs, 0.1);
  EXPECT_GT(enc_abs, 0.05);
  EXPECT_LE(rnn_abs, 1.0 / std::sqrt(40.0));  // PyTorch's default, 0.158 > 0.1
  EXPECT_GT(rnn_abs, 0.1);
}

// Sparse embedding-row gradients: only the rows of ids in the batch are listed and nonzero.
TEST(LmGradients, EmbeddingRowsAreTheBatchsIds) {
  LmProblem p = make_lm(CellType::lstm, 3, false, 0);
  for (auto& id : p.input) id = id % 4;  // ids 4..6 never occur
  ModelGrads<double> g = model_zero_grads<double>(p.spec);
  p.run(&g, false);
  const LayerGrads<double>& e = g.layers[size_t(p.spec.layer_index("encoder"))];
  std::vector<int32_t> want(p.input.begin(), p.input.end());
  std::sort(want.begin(), want.end());
  want.erase(std::unique(want.begin(), want.end()), want.end());
  EXPECT_EQ(e.rows, want);
  for (int64_t v = 4; v < 7; ++v)
    for (int64_t j = 0; j < 3; ++j) EXPECT_EQ(e.weight.data[size_t(v * 3 + j)], 0.0);
  g.zero();
  EXPECT_TRUE(g.layers[size_t(p.spec.layer_index("encoder"))].rows.empty());
}

// model_param_refs_sparse and model_zero_touched: training steps (zero, forward and backward,
// clip, Adam) give the dense path's bits, with the table's unused rows untouched, a tied matrix
// (every row listed) too; and model_zero_touched leaves every gradient zero.
TEST(LmGradients, SparseRowTrainingStepsAreTheDenseOnesBits) {
  for (const bool tied : {false, true}) {
    LmProblem dense = tied ? make_tied_lm(CellType::gru) : make_lm(CellType::lstm, 3, false, 0);
    if (!tied)
      for (auto& id : dense.input) id = id % 4;  // ids 4..6 never occur: their rows stay unlisted
    LmProblem sparse = dense;
    ModelGrads<double> gd = model_zero_grads<double>(dense.spec), gs = model_zero_grads<double>(sparse.spec);
    const std::vector<ParamRef<double>> rd = model_param_refs(dense.spec, dense.params, gd);
    const std::vector<ParamRef<double>> rs = model_param_refs_sparse(sparse.spec, sparse.params, gs);
    const size_t enc = size_t(dense.spec.layer_index("encoder"));
    int hinted = 0;
    for (const ParamRef<double>& r : rs)
      if (r.rows) {
        ++hinted;
        EXPECT_EQ(r.rows, &gs.layers[enc].rows);
        EXPECT_EQ(r.row_size, 3);
      }
    EXPECT_EQ(hinted, 1) << "the embedding's table, and nothing else";
    OptimizerConfig c;
    c.type = OptimizerType::adam;
    c.lr = 0.05;
    Optimizer<double> od(c, rd), os(c, rs);
    for (int step = 0; step < 4; ++step) {
      gd.zero();
      model_zero_touched(sparse.spec, gs);
      for (const ParamRef<double>& r : rs)
        for (int64_t j = 0; j < r.size; ++j) ASSERT_EQ(r.grad[j], 0.0) << r.name << " after model_zero_touched";
      dense.run(&gd, false);
      sparse.run(&gs, false);
      std::vector<int32_t> ids(dense.input.begin(), dense.input.end());
      std::sort(ids.begin(), ids.end());
      ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
      EXPECT_EQ(gs.layers[enc].rows.size(), tied ? size_t(dense.cfg.vocab_size) : ids.size());
      if (!tied) {
        EXPECT_LT(ids.size(), size_t(dense.cfg.vocab_size));
      }
      EXPECT_EQ(clip_grad_norm(rd, 0.1), clip_grad_norm(rs, 0.1)) << "step " << step;
      od.step();
      os.step();
      for (size_t i = 0; i < rd.size(); ++i)
        for (int64_t j = 0; j < rd[i].size; ++j)
          ASSERT_EQ(rd[i].value[j], rs[i].value[j]) << rd[i].name << "[" << j << "], tied " << tied << ", step " << step;
    }
  }
}

// model_zero_touched refuses gradients of another graph and a listed row outside the table.
TEST(LmGradients, ZeroTouchedRefusesWhatDoesNotFit) {
  LmProblem p = make_lm(CellType::lstm, 3, false, 0);
  ModelGrads<double> g = model_zero_grads<double>(p.spec);
  ModelGrads<double> short_grads = g;
  short_grads.layers.pop_back();
  auto message = [](const auto& f) -> std::string {
    try {
      f();
    } catch (const Error& e) {
      return e.what();
    }
    return "(no error)";
  };
  EXPECT_THROW(model_zero_touched(p.spec, short_grads), ShapeError);
  EXPECT_NE(message([&] { model_zero_touched(p.spec, short_grads); }).find("model_zero_touched: gradients do not match the spec"),
            std::string::npos);
  g.layers[size_t(p.spec.layer_index("encoder"))].rows = {int32_t(p.cfg.vocab_size)};
  EXPECT_NE(message([&] { model_zero_touched(p.spec, g); }).find("model_zero_touched: row 7 outside the table"),
            std::string::npos);
}

TEST(LmLoss, PaddingNeverCountsAndSumIsMaskWeighted) {
  LmProblem p = make_lm(CellType::lstm, 3, true, 0);
  const LossSum padded = p.run(nullptr, false);
  EXPECT_EQ(padded.count, 5 + 2 + 4);
  // Changing targets at padded positions must not change the loss.
  for (int64_t t = 0; t < p.T; ++t)
    for (int64_t b = 0; b < p.B; ++b)
      if (t >= p.lengths[size_t(b)]) p.target[size_t(t * p.B + b)] = (p.target[size_t(t * p.B + b)] + 1) % 7;
  EXPECT_EQ(p.run(nullptr, false).sum, padded.sum);
}

// lm_forward_backward leaves the head's bias to the loss (ModelForwardOptions::bias_to_loss,
// softmax_cross_entropy_with_bias). The option itself: the head's output without the bias and
// its backward leaving the bias gradient alone, everything else as without it; and the fused
// step equal to the unfused one (forward, loss, backward) in every output and gradient.
TEST(LmLoss, TheHeadsBiasInTheLossIsTheUnfusedStep) {
  LmProblem p = make_lm(CellType::lstm, 3, true, 0);
  const std::string head = p.spec.layers.back().name;
  const size_t h = p.spec.layers.size() - 1;
  const Tensor<double>& bias = p.params.layers[h].bias;
  ASSERT_EQ(bias.numel(), 7);

  // Unfused: the graph with its bias, the plain loss, the graph's backward.
  ModelCache<double> plain;
  ModelInput<double>& in = plain.inputs[p.spec.inputs[0].name];
  in.ids = p.input;
  in.steps = p.T;
  in.batch = p.B;
  in.lengths = p.lengths;
  const StateOverrides<double> carry{{"rnn", &p.state0}};
  model_forward(p.spec, p.params, plain.inputs, {}, plain, carry);
  ASSERT_FALSE(plain.layers.back().bias_to_loss);
  Tensor<double> logits = model_output(p.spec, plain, head);  // [T, B, V]
  logits.shape = {p.T * p.B, 7};
  const std::vector<double> mask(p.mask.begin(), p.mask.end());
  Tensor<double> glogits;
  const LossSum want = softmax_cross_entropy(logits, p.target, mask, &glogits, 1.0);
  glogits.shape = {p.T, p.B, 7};
  ModelGrads<double> want_grads = model_zero_grads<double>(p.spec);
  model_backward(p.spec, p.params, plain.inputs, plain, {{head, &glogits}}, want_grads);

  // The option alone: output = logits - bias, and no bias gradient from the backward.
  ModelCache<double> nobias;
  nobias.inputs = plain.inputs;
  model_forward(p.spec, p.params, nobias.inputs, {.bias_to_loss = true}, nobias, carry);
  ASSERT_TRUE(nobias.layers.back().bias_to_loss);
  const Tensor<double>& out = model_output(p.spec, nobias, head);
  for (int64_t i = 0; i < out.numel(); ++i)
    EXPECT_NEAR(out.data[size_t(i)] + bias.data[size_t(i % 7)], logits.data[size_t(i)], 1e-14) << i;
  ModelGrads<double> g_nobias = model_zero_grads<double>(p.spec);
  model_backward(p.spec, p.params, nobias.inputs, nobias, {{head, &glogits}}, g_nobias);
  for (double v : g_nobias.layers[h].bias.data) EXPECT_EQ(v, 0.0);
  for (size_t i = 0; i < g_nobias.layers[h].weight.data.size(); ++i)
    EXPECT_EQ(g_nobias.layers[h].weight.data[i], want_grads.layers[h].weight.data[i]);

  // Fused (lm_forward_backward): the same loss, logits and gradients.
  ModelGrads<double> got_grads = model_zero_grads<double>(p.spec);
  ModelCache<double> cache;
  RnnState<double> state = p.state0;
  const LossSum got = lm_forward_backward(p.spec, p.params, p.batch(), state, {}, cache, &got_grads, 1.0);
  EXPECT_EQ(got.count, want.count);
  EXPECT_NEAR(got.sum, want.sum, 1e-12);
  const Tensor<double>& fused_logits = model_output(p.spec, cache, head);
  for (int64_t i = 0; i < fused_logits.numel(); ++i) EXPECT_NEAR(fused_logits.data[size_t(i)], logits.data[size_t(i)], 1e-14);
  std::vector<const Tensor<double>*> a, b;
  model_for_each_param(p.spec, got_grads, [&](const std::string&, const Tensor<double>& g, bool) { a.push_back(&g); });
  model_for_each_param(p.spec, want_grads, [&](const std::string&, const Tensor<double>& g, bool) { b.push_back(&g); });
  ASSERT_EQ(a.size(), b.size());
  for (size_t k = 0; k < a.size(); ++k)
    for (size_t i = 0; i < a[k]->data.size(); ++i) EXPECT_NEAR(a[k]->data[i], b[k]->data[i], 1e-13) << k << " " << i;
}

TEST(LmStep, OneStepEqualsSequenceForward) {
  LmProblem p = make_lm(CellType::gru, 3, false, 0);
  // Full forward over T steps, then the same tokens one at a time through lm_step.
  RnnState<double> s_full = p.state0;
  ModelCache<double> cache;
  std::vector<int32_t> no_target(p.input.size(), -1);
  LmBatch b = p.batch();
  b.target = no_target;
  lm_forward_backward(p.spec, p.params, b, s_full, {}, cache, nullptr, 0.0);
  const Tensor<double> all_logits = model_output(p.spec, cache, "decoder");  // [T, B, V]
  RnnState<double> s = p.state0;
  Tensor<double> logits;
  for (int64_t t = 0; t < p.T; ++t) {
    lm_step(p.spec, p.params, std::span<const int32_t>(p.input).subspan(size_t(t * p.B), size_t(p.B)), s, cache, logits);
    for (int64_t i = 0; i < p.B * 7; ++i) EXPECT_NEAR(logits.data[size_t(i)], all_logits.data[size_t(t * p.B * 7 + i)], 1e-12);
  }
  for (size_t i = 0; i < s.h.data.size(); ++i) EXPECT_NEAR(s.h.data[i], s_full.h.data[i], 1e-12);
}

// ---------------------------------------------------------------- PyTorch goldens

// tools/gen_lm_golden.py: word_language_model-style modules in float64 (embedding or one-hot
// input, a given initial state, tied weights): logits, final state, summed loss and every
// parameter's gradient, against the LM graph's forward and backward.
void check_lm_golden(const std::string& file, const ModelSpec& spec, bool lstm) {
  const std::string path = std::string(RECUR_GOLDEN_DIR) + "/model/" + file;
  const SafetensorsReader rd = SafetensorsReader::open(path);
  ModelParams<double> params = model_zero_params<double>(spec);
  int64_t n_params = 0;
  model_for_each_param(spec, params, [&](const std::string& name, Tensor<double>& t, bool) {
    t = rd.get<double>(name, t.shape);
    ++n_params;
  });
  Shape ids_shape;
  std::vector<int32_t> ids, targets;
  for (int64_t v : rd.get_int("input.ids", &ids_shape)) ids.push_back(int32_t(v));
  for (int64_t v : rd.get_int("input.targets")) targets.push_back(int32_t(v));
  const int64_t Tn = ids_shape.at(0), B = ids_shape.at(1);
  RnnState<double> state;
  state.h = rd.get<double>("input.h0");
  if (lstm) state.c = rd.get<double>("input.c0");
  ModelCache<double> cache;
  ModelGrads<double> grads = model_zero_grads<double>(spec);
  const LmBatch batch{.input = ids, .target = targets, .mask = {}, .lengths = {}, .steps = Tn, .batch = B};
  const LossSum loss = lm_forward_backward<double>(spec, params, batch, state, {}, cache, &grads, 1.0);
  EXPECT_EQ(loss.count, Tn * B - 2) << file;  // two targets are -1
  EXPECT_NEAR(loss.sum, rd.get<double>("loss").data.at(0), 1e-10) << file;
  auto expect_near = [&](const Tensor<double>& got, const std::string& name) {
    const Tensor<double> want = rd.get<double>(name, got.shape);
    for (size_t i = 0; i < got.data.size(); ++i) EXPECT_NEAR(got.data[i], want.data[i], 1e-10) << file << " " << name << " [" << i << "]";
  };
  expect_near(model_output(spec, cache, spec.layers.back().name), "output");
  expect_near(state.h, "state.h");
  if (lstm) expect_near(state.c, "state.c");
  int64_t n_grads = 0;
  model_for_each_param(spec, grads, [&](const std::string& name, const Tensor<double>& g, bool) {
    expect_near(g, "grad." + name);
    ++n_grads;
  });
  EXPECT_EQ(n_grads, n_params);
  EXPECT_GE(n_grads, 5);
}

TEST(LmGolden, EmbeddingLstmMatchesPyTorch) {
  LmConfig cfg{.vocab_size = 7, .embed_size = 3, .rnn = {.cell = CellType::lstm, .input_size = 3, .hidden_size = 4, .num_layers = 2}};
  check_lm_golden("lm_lstm_embedding.safetensors", lm_model_spec(cfg), true);
}

TEST(LmGolden, OneHotGruMatchesPyTorch) {
  LmConfig cfg{.vocab_size = 7, .embed_size = 0, .rnn = {.cell = CellType::gru, .input_size = 7, .hidden_size = 5, .num_layers = 2}};
  check_lm_golden("lm_gru_onehot.safetensors", lm_model_spec(cfg), false);
}

// The same PyTorch module through LmConfig::tie_weights (what --tie-weights builds).
TEST(LmGolden, TieWeightsConfigMatchesPyTorch) {
  LmConfig cfg{.vocab_size = 7, .embed_size = 4, .rnn = {.cell = CellType::lstm, .input_size = 4, .hidden_size = 4}};
  cfg.tie_weights = true;
  check_lm_golden("lm_lstm_tied.safetensors", lm_model_spec(cfg), true);
}

TEST(LmGolden, TiedWeightsMatchPyTorch) {
  ModelSpec s;
  s.tokens("ids", 7);
  s.embedding("encoder", "ids", 4);
  s.dropout("drop_in", "encoder", 0.0);
  s.rnn("rnn", "drop_in", RnnConfig{.cell = CellType::lstm, .hidden_size = 4});
  s.dropout("drop_out", "rnn", 0.0);
  s.linear("decoder", "drop_out", 7, "encoder");
  check_lm_golden("lm_lstm_tied.safetensors", s, true);
}

// The "remember the first token" task: a sequence starts with a key token in {2, 3}, then
// `gap` distractor tokens; only at the last step must the model name the key. Nothing but
// the recurrent state can carry it across the gap, so a broken recurrence stays at chance
// (loss ln 2 ~ 0.69). This is the classic long-dependency experiment (Hochreiter &
// Schmidhuber 1997; Bengio et al. 1994): gated cells bridge long gaps, the basic RNN's
// gradient vanishes. The LSTM uses the usual forget-gate bias (Gers et al. 2000).
struct CopyTask {
  CellType cell = CellType::lstm;
  int64_t gap = 40, steps = 600, hidden = 32;
  double forget_bias = 3.0, lr = 0.003;
  // As in PyTorch, whether the LSTM escapes its initial plateau within the step budget
  // depends on the initial weights (4 of seeds 1-5 do at these settings); the suite is
  // deterministic, so the seed is fixed.
  uint64_t seed = 1;
};

// Returns the mean loss of the last 50 training steps.
double train_copy_task(const CopyTask& task) {
  const int64_t V = 6, B = 32, T = task.gap + 1;
  LmConfig cfg;
  cfg.vocab_size = V;
  cfg.embed_size = 8;
  cfg.rnn = {.cell = task.cell, .input_size = 8, .hidden_size = task.hidden};
  Rng rng(task.seed);
  const ModelSpec spec = lm_model_spec(cfg);
  ModelParams<float> model = lm_init_params<float>(cfg, rng);
  LayerParams<float>& encoder = model.layers[size_t(spec.layer_index("encoder"))];
  LayerParams<float>& decoder = model.layers[size_t(spec.layer_index("decoder"))];
  // PyTorch's defaults for the modules around the cell: nn.Embedding N(0, 1), nn.Linear
  // U(-1/sqrt(H), 1/sqrt(H)). The task is sensitive to them.
  for (auto& v : encoder.weight.data) v = float(rng.normal());
  const double bound = 1.0 / std::sqrt(double(task.hidden));
  for (auto* t : {&decoder.weight, &decoder.bias})
    for (auto& v : t->data) v = float(rng.uniform(-bound, bound));
  rnn_set_forget_bias(cfg.rnn, model.layers[size_t(spec.layer_index("rnn"))].rnn, task.forget_bias);  // no-op for GRU and RNN
  ModelGrads<float> grads = model_zero_grads<float>(spec);
  std::vector<ParamRef<float>> refs = model_param_refs(spec, model, grads);
  OptimizerConfig oc;
  oc.type = OptimizerType::adam;
  oc.lr = task.lr;
  Optimizer<float> opt(oc, refs);
  std::vector<int32_t> input(size_t(T * B)), target(size_t(T * B), -1);
  ModelCache<float> cache;
  double recent = 0;
  int64_t recent_n = 0;
  for (int64_t step = 0; step < task.steps; ++step) {
    for (int64_t b = 0; b < B; ++b) {
      const int32_t key = int32_t(2 + rng.below(2));
      input[size_t(b)] = key;
      for (int64_t t = 1; t < T; ++t) input[size_t(t * B + b)] = int32_t(4 + rng.below(2));
      target[size_t((T - 1) * B + b)] = key;
    }
    RnnState<float> state;
    grads.zero();
    LmBatch batch{.input = input, .target = target, .mask = {}, .lengths = {}, .steps = T, .batch = B};
    const LossSum l = lm_forward_backward(spec, model, batch, state, {}, cache, &grads, 1.0 / double(B));
    clip_grad_norm(refs, 1.0);
    opt.step();
    if (step >= task.steps - 50) {
      recent += l.mean();
      ++recent_n;
    }
  }
  return recent / double(recent_n);
}

TEST(LmLearning, LstmAndGruRememberAcrossLongGapsWhereBasicRnnStruggles) {
  const double lstm = train_copy_task({.cell = CellType::lstm});
  const double gru = train_copy_task({.cell = CellType::gru});
  const double rnn = train_copy_task({.cell = CellType::rnn_tanh});
  std::printf("copy task, gap 40, 600 steps: final loss lstm %.4f gru %.4f rnn %.4f (chance %.4f)\n", lstm, gru, rnn,
              std::log(2.0));
  EXPECT_LT(lstm, 0.1);
  EXPECT_LT(gru, 0.1);
  EXPECT_GT(rnn, 0.5);  // still near chance
}

TEST(LmLearning, ShortGapIsLearnedByEveryCell) {
  // With a gap of 3 the basic RNN learns too: its failure above is the distance.
  EXPECT_LT(train_copy_task({.cell = CellType::rnn_tanh, .gap = 3}), 0.1);
}

}  // namespace
}  // namespace recur
