// The graph's inference stepper (stepper.h) against model_forward (the training code path run on
// the whole teacher-forced sequence) for every cell variant, and the decoders over it
// (decoding.h): beam 1 is greedy, a batched beam search gives each example what a search of its
// own gives, and beam search finds the best-scoring output an exhaustive search finds.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "cell_variants.h"
#include "recur/core/threads.h"
#include "recur/model/decoding.h"
#include "recur/model/stepper.h"

namespace {

using namespace recur;

using test::CellVariant;

template <typename T>
double max_abs_diff(const T* a, const T* b, int64_t n) {
  double m = 0;
  for (int64_t i = 0; i < n; ++i) m = std::max(m, std::fabs(double(a[i]) - double(b[i])));
  return m;
}

// attend_*: the encoder-decoder shapes with an attention layer (attention.h) between the decoder
// and the head: general over a unidirectional encoder, additive over a bidirectional one.
// attend_fed: general attention over a bidirectional encoder with input feeding (the decoder
// reads the attention's previous output, StepperStart::feed).
enum class Start { encoder, bridge, condition_every_step, attend_general, attend_additive_bi, attend_fed };

const char* start_name(Start s) {
  switch (s) {
    case Start::encoder: return "from encoder";
    case Start::bridge: return "from bridge";
    case Start::condition_every_step: return "condition every step";
    case Start::attend_general: return "general attention";
    case Start::attend_additive_bi: return "additive attention, bidirectional encoder";
    case Start::attend_fed: return "general attention fed back, bidirectional encoder";
  }
  return "?";
}
const Start kStarts[] = {Start::encoder,        Start::bridge,           Start::condition_every_step,
                         Start::attend_general, Start::attend_additive_bi, Start::attend_fed};

// The task models' shapes (tasks.cpp build_task_model): an encoder-decoder whose decoder starts
// from the encoder's final state, or (bidirectional encoder) from a bridge of it; or a
// conditioned generator whose condition joins every step's input. Dropout layers sit on the
// path as the CLI's models have them (off at inference).
ModelSpec make_spec(const RnnConfig& rnn, Start start, int64_t Vs, int64_t Vt, int64_t E) {
  ModelSpec s;
  if (start == Start::condition_every_step) {
    s.tokens("cond", 4, false);
    s.tokens("tgt", Vt);
    s.embedding("cond_emb", "cond", 3);
    const std::string te = s.dropout("tgt_drop", s.embedding("tgt_emb", "tgt", E), 0.3);
    s.rnn("dec", s.concat("dec_in", {te, "cond_emb"}), rnn);
  } else {
    s.tokens("src", Vs);
    s.tokens("tgt", Vt);
    RnnConfig enc = rnn;
    enc.bidirectional = start == Start::bridge || start == Start::attend_additive_bi || start == Start::attend_fed;
    s.rnn("enc", s.embedding("src_emb", "src", E), enc);
    std::string init = "enc";
    if (enc.bidirectional) init = s.bridge("bridge", "enc.final", "dec");
    s.rnn("dec", s.embedding("tgt_emb", "tgt", E), rnn, init);
  }
  if (start == Start::attend_general || start == Start::attend_additive_bi || start == Start::attend_fed) {
    const AttentionScore score = start == Start::attend_additive_bi ? AttentionScore::additive : AttentionScore::general;
    s.linear("out", s.dropout("attn_drop", s.attention("attn", "dec", "enc", score, 6, start == Start::attend_fed), 0.2),
             Vt);
    s.validate();
    return s;
  }
  s.linear("out", s.dropout("dec_drop", "dec", 0.2), Vt);
  s.validate();
  return s;
}

// The batch's other inputs: sources of different lengths, or conditions.
template <typename T>
ModelInputs<T> other_inputs(Start start, int64_t B, int64_t Vs, Rng& rng) {
  ModelInputs<T> in;
  if (start == Start::condition_every_step) {
    in["cond"].batch = B;
    for (int64_t b = 0; b < B; ++b) in["cond"].ids.push_back(int32_t(rng.below(4)));
    return in;
  }
  ModelInput<T>& src = in["src"];
  src.steps = 5;
  src.batch = B;
  for (int64_t i = 0; i < 5 * B; ++i) src.ids.push_back(int32_t(rng.below(uint64_t(Vs))));
  for (int64_t b = 0; b < B; ++b) src.lengths.push_back(5 - b % 3);
  return in;
}

template <typename T>
void check_against_model_forward(double tol) {
  const int64_t Vs = 7, Vt = 9, E = 4, H = 5, Tt = 4;
  int cases = 0;
  for (const CellVariant& v : test::cell_variants())
    for (Start start : kStarts)
      for (int64_t layers : {1, 2})
        for (int64_t B : {1, 3}) {
          const RnnConfig rnn = v.applied_to({.hidden_size = H, .num_layers = layers}, 3);
          const ModelSpec spec = make_spec(rnn, start, Vs, Vt, E);
          Rng rng(uint64_t(100 + cases));
          ModelParams<T> params = model_init_params<T>(spec, rng);
          // U(-0.5, 0.5) everywhere: far from linear, and embeddings as large as the rest.
          model_for_each_param(spec, params, [&](const std::string&, Tensor<T>& t, bool) {
            for (T& x : t.data) x = T(rng.uniform() - 0.5);
          });
          ModelInputs<T> in = other_inputs<T>(start, B, Vs, rng);
          ModelInput<T>& tgt = in["tgt"];
          tgt.steps = Tt;
          tgt.batch = B;
          for (int64_t i = 0; i < Tt * B; ++i) tgt.ids.push_back(int32_t(rng.below(uint64_t(Vt))));
          ModelCache<T> cache;
          model_forward(spec, params, in, {}, cache);
          const Tensor<T> ref = model_output(spec, cache, "out");  // [Tt, B, Vt]

          ModelStepper<T> stepper(spec, params);
          ModelInputs<T> others = in;
          others.erase("tgt");
          ModelCache<T> cache2;
          StepperStart<T> s = stepper.start(others, B, cache2);
          EXPECT_EQ(stepper.context_width(), start == Start::condition_every_step ? 3 : 0);
          Tensor<T> logits;
          const std::string where = v.name + " " + start_name(start) + " layers " + std::to_string(layers) + " B " +
                                    std::to_string(B);
          for (int64_t t = 0; t < Tt; ++t) {
            const std::vector<int32_t> ids(tgt.ids.begin() + t * B, tgt.ids.begin() + (t + 1) * B);
            stepper.step(ids, s, logits);
            ASSERT_EQ(logits.shape, (Shape{B, Vt})) << where;
            ASSERT_LE(max_abs_diff(logits.ptr(), ref.ptr() + t * B * Vt, B * Vt), tol) << where << " step " << t;
          }
          ++cases;
        }
  EXPECT_EQ(cases, 8 * 6 * 2 * 2);
}

TEST(ModelStepper, MatchesModelForwardInDouble) { check_against_model_forward<double>(1e-12); }
// Float: the whole-sequence forward does the input side as one product over all steps, the
// stepper one per step, so sums are rounded in a different order.
TEST(ModelStepper, MatchesModelForwardInFloat) { check_against_model_forward<float>(2e-5); }

// Batch-1 products of large matrices are split by rows across threads (step_kernels.cpp): the
// same bits on one and two threads.
TEST(ModelStepper, TwoThreadsGiveTheSameBitsAsOne) {
  const RnnConfig rnn{.cell = CellType::lstm, .hidden_size = 256, .num_layers = 2};
  const ModelSpec spec = make_spec(rnn, Start::encoder, 50, 1200, 64);
  Rng rng(5);
  const ModelParams<float> params = model_init_params<float>(spec, rng);
  Tensor<float> logits[2];
  RnnState<float> states[2];
  // The start runs the encoder through model_forward, whose products OpenBLAS threads in its own
  // way (its OpenMP build's partition, and so the rounding, follows the thread count on some
  // processors: issue 13); the steps from one start are the stepper's own and must match.
  StepperStart<float> start;
  {
    set_num_threads(1);
    ModelStepper<float> stepper(spec, params);
    Rng r(9);
    ModelCache<float> cache;
    start = stepper.start(other_inputs<float>(Start::encoder, 1, 50, r), 1, cache);
  }
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    ModelStepper<float> stepper(spec, params);
    StepperStart<float> s = start;
    for (int32_t id : {1, 17, 1199, 0}) stepper.step(std::span<const int32_t>(&id, 1), s.state, s.context, logits[threads - 1]);
    states[threads - 1] = s.state;
  }
  set_num_threads(1);
  EXPECT_EQ(logits[0].data, logits[1].data);
  EXPECT_EQ(states[0].h.data, states[1].h.data);
  EXPECT_EQ(states[0].c.data, states[1].c.data);
}

TEST(ModelStepper, RejectsOtherGraphsBadIdsAndStates) {
  const RnnConfig rnn{.cell = CellType::gru, .hidden_size = 4};
  const ModelSpec spec = make_spec(rnn, Start::encoder, 5, 6, 3);
  Rng rng(1);
  const ModelParams<float> params = model_init_params<float>(spec, rng);
  // The encoder reads "src", not the stepped input; a head must read the stepped layer.
  EXPECT_THROW(ModelStepper<float>(spec, params, {.tokens = "tgt", .rnn = "enc", .head = "out"}), Error);
  EXPECT_THROW(ModelStepper<float>(spec, params, {.tokens = "tgt", .rnn = "dec", .head = "dec"}), Error);
  EXPECT_THROW(ModelStepper<float>(spec, params, {.tokens = "nope", .rnn = "dec", .head = "out"}), Error);
  ModelStepper<float> stepper(spec, params);
  ModelCache<float> cache;
  Rng r(2);
  StepperStart<float> s = stepper.start(other_inputs<float>(Start::encoder, 2, 5, r), 2, cache);
  Tensor<float> logits;
  const std::vector<int32_t> bad = {1, 6}, one = {1};
  EXPECT_THROW(stepper.step(bad, s.state, s.context, logits), Error);
  EXPECT_THROW(stepper.step(one, s.state, s.context, logits), ShapeError);  // a state for batch 2
}

// ---- decoding

struct DecodeCase {
  ModelSpec spec;
  ModelParams<float> params;
  Start start;
};

// Random models far enough from uniform that outputs differ between examples and stop at
// different lengths (logits scaled up through the head).
DecodeCase decode_case(Start start, uint64_t seed) {
  DecodeCase c;
  c.start = start;
  c.spec = make_spec({.cell = CellType::lstm, .hidden_size = 8}, start, 7, 6, 5);
  Rng rng(seed);
  c.params = model_init_params<float>(c.spec, rng);
  model_for_each_param(c.spec, c.params, [&](const std::string& n, Tensor<float>& t, bool) {
    const double scale = n.rfind("out.", 0) == 0 ? 6.0 : 1.5;
    for (float& x : t.data) x = float(scale * (rng.uniform() - 0.5));
  });
  return c;
}

constexpr DecodeTokens kTokens{.start = 1, .end = 1};

TEST(Decoding, BeamOfOneIsGreedy) {
  for (Start start : kStarts)
    for (uint64_t seed = 1; seed <= 6; ++seed) {
      DecodeCase c = decode_case(start, seed);
      ModelStepper<float> stepper(c.spec, c.params);
      Rng r(seed);
      const ModelInputs<float> in = other_inputs<float>(start, 4, 7, r);
      ModelCache<float> cache;
      const auto greedy = greedy_decode(stepper, stepper.start(in, 4, cache), kTokens, 7);
      const auto beam = beam_decode(stepper, stepper.start(in, 4, cache), kTokens, {.beam = 1, .max_length = 7});
      EXPECT_EQ(greedy, beam) << start_name(start) << " seed " << seed;
    }
}

TEST(Decoding, BatchedBeamEqualsOneExampleAtATime) {
  int64_t differing = 0;
  // With attention the batched search reorders each hypothesis's memory with its state, and a
  // padded source attends over its own positions only: alone, it has no padding.
  for (Start start : kStarts)
    for (uint64_t seed = 1; seed <= 4; ++seed)
      for (double alpha : {0.0, 1.0}) {
        DecodeCase c = decode_case(start, seed);
        ModelStepper<float> stepper(c.spec, c.params);
        const int64_t B = 5;
        Rng r(seed);
        const ModelInputs<float> in = other_inputs<float>(start, B, 7, r);
        const DecodeOptions opts{.beam = 3, .length_penalty = alpha, .max_length = 6};
        ModelCache<float> cache;
        const auto batched = beam_decode(stepper, stepper.start(in, B, cache), kTokens, opts);
        // The batch split into single examples.
        for (int64_t b = 0; b < B; ++b) {
          ModelInputs<float> one;
          for (const auto& [name, x] : in) {
            ModelInput<float>& o = one[name];
            o.batch = 1;
            o.steps = x.steps;
            const int64_t T = std::max<int64_t>(x.steps, 1);
            for (int64_t t = 0; t < T; ++t) o.ids.push_back(x.ids[size_t(t * B + b)]);
            if (!x.lengths.empty()) {
              o.lengths = {x.lengths[size_t(b)]};
              o.steps = x.lengths[size_t(b)];  // no padding when alone
              o.ids.resize(size_t(o.steps));
            }
          }
          const auto alone = beam_decode(stepper, stepper.start(one, 1, cache), kTokens, opts);
          EXPECT_EQ(batched[size_t(b)], alone[0]) << start_name(start) << " seed " << seed << " example " << b;
        }
        for (int64_t b = 1; b < B; ++b) differing += batched[size_t(b)] != batched[0];
      }
  EXPECT_GT(differing, 0);  // the examples are not all decoded alike
}

// A beam at least as wide as the number of live prefixes (5^3 = 125 non-<eos> prefixes of length
// 3 for V = 6) keeps them all, so it must find what an exhaustive search finds: every output up
// to max_length scored by length-normalised log-probability (log-softmax in double here), the
// best strictly greater score winning. This checks the scores, the length penalty, <eos> and
// max_length handling and the early stop together.
TEST(Decoding, WideBeamFindsTheBestScoringOutput) {
  for (Start start : {Start::encoder, Start::condition_every_step})
    for (double alpha : {0.0, 0.7, 1.0})
      for (uint64_t seed = 1; seed <= 3; ++seed) {
        DecodeCase c = decode_case(start, seed);
        ModelStepper<float> stepper(c.spec, c.params);
        Rng r(seed);
        const ModelInputs<float> in = other_inputs<float>(start, 1, 7, r);
        ModelCache<float> cache;
        const int64_t L = 3, V = 6;
        const StepperStart<float> s0 = stepper.start(in, 1, cache);
        // Exhaustive: every prefix extended by every token, in double.
        double best = -std::numeric_limits<double>::infinity();
        std::vector<int32_t> best_ids;
        std::function<void(std::vector<int32_t>&, double, RnnState<float>)> walk = [&](std::vector<int32_t>& ids,
                                                                                         double lp, RnnState<float> st) {
          Tensor<float> logits;
          Tensor<float> ctx = s0.context;
          const int32_t last = ids.empty() ? kTokens.start : ids.back();
          stepper.step(std::span<const int32_t>(&last, 1), st, ctx, logits);
          double m = -1e300, sum = 0;
          for (float x : logits.data) m = std::max(m, double(x));
          for (float x : logits.data) sum += std::exp(double(x) - m);
          const double lse = m + std::log(sum);
          for (int32_t tok = 0; tok < V; ++tok) {
            const double l = lp + double(logits.data[size_t(tok)]) - lse;
            if (tok == kTokens.end || int64_t(ids.size()) == L) {
              const double sc = alpha > 0 ? l / std::pow(double(ids.size() + 1), alpha) : l;
              if (sc > best) {
                best = sc;
                best_ids = ids;
              }
              continue;
            }
            ids.push_back(tok);
            walk(ids, l, st);
            ids.pop_back();
          }
        };
        std::vector<int32_t> ids;
        walk(ids, 0.0, s0.state);
        const auto beam = beam_decode(stepper, s0, kTokens, {.beam = 216, .length_penalty = alpha, .max_length = L});
        EXPECT_EQ(beam[0], best_ids) << start_name(start) << " alpha " << alpha << " seed " << seed;
      }
}

}  // namespace
