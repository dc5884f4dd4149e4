// The one inference stepper (ModelStepper, stepper.h) on the language model's graph against
// lm_step (the training code path run with T = 1) for every cell variant, input kind (embedding,
// one-hot, and an embedding tied to the decoder), depth and batch size; a bidirectional LM cannot be stepped and is refused.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "recur/model/lm.h"
#include "recur/model/stepper.h"
#include "recur/core/threads.h"
#include "cell_variants.h"

namespace {

using namespace recur;

using test::CellVariant;

template <typename T>
double max_abs_diff(const Tensor<T>& a, const Tensor<T>& b) {
  EXPECT_EQ(a.shape, b.shape);
  double m = 0;
  for (size_t i = 0; i < a.data.size() && i < b.data.size(); ++i) m = std::max(m, std::fabs(double(a.data[i] - b.data[i])));
  return m;
}

// A stepper over the LM graph and its start: the zero state, carried from step to step.
template <typename T>
struct LmStep {
  LmStep(const LmConfig& cfg, const ModelParams<T>& params) : stepper(lm_model_spec(cfg), params, lm_stepper_options()) {}
  ModelStepper<T> stepper;
  StepperStart<T> start;
  void begin(int64_t B) {
    ModelCache<T> cache;
    start = stepper.start({}, B, cache);
  }
  void step(std::span<const int32_t> ids, Tensor<T>& logits) { stepper.step(ids, start.state, start.context, logits); }
};

template <typename T>
void check_all(double tol) {
  const int64_t V = 11, H = 6;
  int cases = 0;
  for (const CellVariant& v : test::cell_variants())
    for (int64_t embed : {int64_t(0), int64_t(5), int64_t(-1)})  // -1: tied decoder, E = R
      for (int64_t layers : {1, 2})
        for (bool bidir : {false})
          for (bool bias : {true, false})
            for (int64_t B : {1, 3}) {
              LmConfig cfg;
              cfg.vocab_size = V;
              cfg.rnn = v.applied_to({.hidden_size = H, .num_layers = layers, .bidirectional = bidir, .bias = bias}, 3);
              cfg.tie_weights = embed < 0;
              cfg.embed_size = cfg.tie_weights ? cfg.rnn.output_size() : embed;
              cfg.rnn.input_size = cfg.input_size();
              Rng rng(uint64_t(17 + cases));
              const ModelSpec spec = lm_model_spec(cfg);
              const ModelParams<T> params = lm_init_params<T>(cfg, rng, 0.5);  // U(-0.5, 0.5): far from linear
              LmStep<T> fast(cfg, params);
              fast.begin(B);
              EXPECT_EQ(fast.stepper.has_input_table(), embed != 0 && !bidir) << v.name;
              EXPECT_EQ(fast.stepper.vocab(), V);
              EXPECT_EQ(fast.stepper.classes(), V);
              EXPECT_EQ(fast.stepper.context_width(), 0);
              RnnState<T> ref_state;
              const RnnState<T>& fast_state = fast.start.state;
              ModelCache<T> cache;
              Tensor<T> ref_logits, fast_logits;
              for (int t = 0; t < 4; ++t) {
                std::vector<int32_t> ids;
                for (int64_t b = 0; b < B; ++b) ids.push_back(int32_t(rng.below(uint64_t(V))));
                lm_step<T>(spec, params, ids, ref_state, cache, ref_logits);
                fast.step(ids, fast_logits);
                const std::string where = v.name + " embed " + std::to_string(embed) + " layers " +
                                          std::to_string(layers) + (bidir ? " bi" : "") + (bias ? "" : " nobias") +
                                          " B " + std::to_string(B) + " step " + std::to_string(t);
                ASSERT_LE(max_abs_diff(ref_logits, fast_logits), tol) << where;
                ASSERT_LE(max_abs_diff(ref_state.h, fast_state.h), tol) << where;
                if (v.cell == CellType::lstm) {
                  ASSERT_LE(max_abs_diff(ref_state.c, fast_state.c), tol) << where;
                }
              }
              ++cases;
            }
  EXPECT_EQ(cases, 8 * 3 * 2 * 1 * 2 * 2);
}

TEST(LmStepper, RefusesABidirectionalLanguageModel) {
  LmConfig cfg;
  cfg.vocab_size = 7;
  cfg.embed_size = 4;
  cfg.rnn = {.cell = CellType::gru, .input_size = 4, .hidden_size = 5, .bidirectional = true};
  Rng rng(1);
  const ModelParams<float> params = lm_init_params<float>(cfg, rng);
  try {
    ModelStepper<float> s(lm_model_spec(cfg), params, lm_stepper_options());
    FAIL() << "a bidirectional rnn was stepped";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("bidirectional"), std::string::npos) << e.what();
  }
}

TEST(LmStepper, MatchesLmStepInDouble) { check_all<double>(1e-12); }
TEST(LmStepper, MatchesLmStepInFloat) { check_all<float>(2e-5); }

// With more than one thread, batch-1 products of large matrices are split by rows across the
// threads (step_kernels.cpp): same numbers as lm_step, and the same bits as one thread.
TEST(LmStepper, SplitProductsGiveTheSameResultOnTwoThreads) {
  LmConfig cfg;
  cfg.vocab_size = 300;
  cfg.embed_size = 0;  // one-hot: layer 0's input is a column of W_ih, the products are W_hh's
  cfg.rnn = {.cell = CellType::lstm, .input_size = 300, .hidden_size = 256, .num_layers = 2};
  Rng rng(3);
  const ModelParams<float> params = lm_init_params<float>(cfg, rng, 0.1);
  Tensor<float> logits[2], ref_logits;
  RnnState<float> states[2], ref_state;
  ModelCache<float> cache;
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    LmStep<float> stepper(cfg, params);
    stepper.begin(1);
    for (int32_t id : {5, 17, 299, 0}) stepper.step(std::span<const int32_t>(&id, 1), logits[threads - 1]);
    states[threads - 1] = stepper.start.state;
  }
  set_num_threads(1);
  for (int32_t id : {5, 17, 299, 0}) lm_step<float>(lm_model_spec(cfg), params, std::span<const int32_t>(&id, 1), ref_state, cache, ref_logits);
  EXPECT_EQ(logits[0].data, logits[1].data);
  EXPECT_EQ(states[0].h.data, states[1].h.data);
  EXPECT_LE(max_abs_diff(logits[1], ref_logits), 2e-5);
  EXPECT_LE(max_abs_diff(states[1].c, ref_state.c), 2e-5);
}

TEST(LmStepper, RejectsIdsOutsideTheVocabularyAndWrongStates) {
  LmConfig cfg;
  cfg.vocab_size = 7;
  cfg.embed_size = 4;
  cfg.rnn = {.cell = CellType::lstm, .input_size = 4, .hidden_size = 5};
  Rng rng(1);
  const ModelParams<float> params = lm_init_params<float>(cfg, rng);
  LmStep<float> stepper(cfg, params);
  stepper.begin(1);
  Tensor<float> logits;
  const std::vector<int32_t> bad = {7};
  EXPECT_THROW(stepper.step(bad, logits), Error);
  const std::vector<int32_t> one = {3}, two = {3, 4};
  stepper.step(one, logits);
  EXPECT_THROW(stepper.step(two, logits), ShapeError);  // a state for batch 1, ids for batch 2
  RnnState<float> empty;  // an empty state would silently start from zeros: refused
  EXPECT_THROW(stepper.stepper.step(one, empty, stepper.start.context, logits), ShapeError);
}

}  // namespace
