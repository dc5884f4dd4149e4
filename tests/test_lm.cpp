// The language model end to end in the library: gradients of the whole model against finite
// differences (embedding and one-hot input, dropout, padded batches), and a task that only a
// working recurrence can solve, learned by LSTM and GRU but not by the basic RNN.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "gradcheck.h"
#include "recur/model/lm.h"
#include "recur/core/optim.h"

namespace recur {
namespace {

using test::GradCheckInput;

struct LmProblem {
  LmConfig cfg;
  LmParams<double> params;
  std::vector<int32_t> input, target;  // [T, B]
  std::vector<float> mask;             // [T, B] or empty
  std::vector<int64_t> lengths;        // [B] or empty
  int64_t T = 5, B = 3;
  RnnState<double> state0;

  LmBatch batch() const {
    return {.input = input, .target = target, .mask = mask, .lengths = lengths, .steps = T, .batch = B};
  }
  LossSum run(LmGrads<double>* grads, bool training) const {
    RnnState<double> state = state0;
    LmCache<double> cache;
    Rng rng(11);  // the same dropout masks on every call
    return lm_forward_backward(cfg, params, batch(), state, {.training = training, .rng = &rng}, cache, grads, 1.0);
  }
};

LmProblem make_lm(CellType cell, int64_t embed, bool padded, double dropout) {
  LmProblem p;
  const int64_t V = 7;
  p.cfg.vocab_size = V;
  p.cfg.embed_size = embed;
  p.cfg.dropout = dropout;
  p.cfg.rnn = {.cell = cell, .input_size = embed > 0 ? embed : V, .hidden_size = 4, .num_layers = 2, .dropout = dropout};
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

void check_lm_gradients(LmProblem p, bool training, const std::string& what) {
  LmGrads<double> grads = lm_zero_grads<double>(p.cfg);
  const LossSum loss = p.run(&grads, training);
  ASSERT_GT(loss.count, 0);
  std::vector<Tensor<double>*> values;
  lm_for_each_param(p.cfg, p.params, [&](const std::string&, Tensor<double>& t) { values.push_back(&t); });
  std::vector<GradCheckInput> inputs;
  size_t k = 0;
  lm_for_each_param(p.cfg, grads, [&](const std::string& name, Tensor<double>& g) { inputs.push_back({name, values[k++], &g}); });
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

TEST(LmStep, OneStepEqualsSequenceForward) {
  LmProblem p = make_lm(CellType::gru, 3, false, 0);
  // Full forward over T steps, then the same tokens one at a time through lm_step.
  RnnState<double> s_full = p.state0;
  LmCache<double> cache;
  std::vector<int32_t> no_target(p.input.size(), -1);
  LmBatch b = p.batch();
  b.target = no_target;
  lm_forward_backward(p.cfg, p.params, b, s_full, {}, cache, nullptr, 0.0);
  const Tensor<double> all_logits = cache.logits;  // [T*B, V]
  RnnState<double> s = p.state0;
  Tensor<double> logits;
  for (int64_t t = 0; t < p.T; ++t) {
    lm_step(p.cfg, p.params, std::span<const int32_t>(p.input).subspan(size_t(t * p.B), size_t(p.B)), s, cache, logits);
    for (int64_t i = 0; i < p.B * 7; ++i) EXPECT_NEAR(logits.data[size_t(i)], all_logits.data[size_t(t * p.B * 7 + i)], 1e-12);
  }
  for (size_t i = 0; i < s.h.data.size(); ++i) EXPECT_NEAR(s.h.data[i], s_full.h.data[i], 1e-12);
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
  LmParams<float> params = lm_init_params<float>(cfg, rng);
  // PyTorch's defaults for the modules around the cell: nn.Embedding N(0, 1), nn.Linear
  // U(-1/sqrt(H), 1/sqrt(H)). The task is sensitive to them.
  for (auto& v : params.encoder.data) v = float(rng.normal());
  const double bound = 1.0 / std::sqrt(double(task.hidden));
  for (auto* t : {&params.decoder_w, &params.decoder_b})
    for (auto& v : t->data) v = float(rng.uniform(-bound, bound));
  rnn_set_forget_bias(cfg.rnn, params.rnn, task.forget_bias);     // no-op for GRU and RNN
  LmGrads<float> grads = lm_zero_grads<float>(cfg);
  std::vector<ParamRef<float>> refs;
  std::vector<Tensor<float>*> values;
  lm_for_each_param(cfg, params, [&](const std::string&, Tensor<float>& t) { values.push_back(&t); });
  size_t k = 0;
  lm_for_each_param(cfg, grads, [&](const std::string& n, Tensor<float>& g) { refs.push_back(param_ref(n, *values[k++], g)); });
  OptimizerConfig oc;
  oc.type = OptimizerType::adam;
  oc.lr = task.lr;
  Optimizer<float> opt(oc, refs);
  std::vector<int32_t> input(size_t(T * B)), target(size_t(T * B), -1);
  LmCache<float> cache;
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
    const LossSum l = lm_forward_backward(cfg, params, batch, state, {}, cache, &grads, 1.0 / double(B));
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
