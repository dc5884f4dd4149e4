// Composable models (model.h): finite-difference gradients of every head (per-step and
// final-state), the concatenation of word and per-word character features, the
// encoder-decoder links (direct state and bridge), dropout with fixed masks and feature
// inputs; the JSON round trip; PyTorch goldens of a BiLSTM tagger, a many-to-one classifier,
// an encoder-decoder state link, and the bridge (output, loss and every parameter gradient).
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <tuple>
#include <vector>

#include "gradcheck.h"
#include "recur/core/loss.h"
#include "recur/model/model.h"
#include "recur/core/safetensors.h"

namespace recur {
namespace {

using test::GradCheckInput;

// A model, a batch, and a loss sum(out ⊙ weights) over chosen outputs, so every output element
// gets an O(1) random gradient.
struct Problem {
  ModelSpec spec;
  ModelParams<double> params;
  ModelInputs<double> inputs;
  std::vector<std::string> heads;
  std::map<std::string, Tensor<double>> weights;
  bool training = false;

  double run(ModelGrads<double>* grads) {
    ModelCache<double> cache;
    Rng rng(3);  // the same dropout masks every call
    model_forward(spec, params, inputs, {.training = training, .rng = &rng, .wanted = {}}, cache);
    double loss = 0;
    std::map<std::string, const Tensor<double>*> g;
    for (const auto& h : heads) {
      const Tensor<double>& out = model_output(spec, cache, h);
      auto& w = weights[h];
      if (w.shape != out.shape) {
        Rng wr(h.size() + 17);
        w = Tensor<double>(out.shape);
        for (auto& v : w.data) v = wr.uniform(-1, 1);
      }
      for (size_t i = 0; i < out.data.size(); ++i) loss += out.data[i] * w.data[i];
      g[h] = &w;
    }
    if (grads) model_backward(spec, params, inputs, cache, g, *grads);
    return loss;
  }

  void check(const std::string& what) {
    Rng rng(7);
    params = model_init_params<double>(spec, rng);
    // Larger than the default init so every gate is exercised away from zero.
    model_for_each_param(spec, params, [&](const std::string&, Tensor<double>& t, bool) {
      for (auto& v : t.data) v = rng.uniform(-0.6, 0.6);
    });
    ModelGrads<double> grads = model_zero_grads<double>(spec);
    run(&grads);
    std::vector<Tensor<double>*> values;
    model_for_each_param(spec, params, [&](const std::string&, Tensor<double>& t, bool) { values.push_back(&t); });
    std::vector<GradCheckInput> in;
    size_t k = 0;
    std::vector<bool> trainable;
    model_for_each_param(spec, grads, [&](const std::string& name, Tensor<double>& g, bool tr) {
      if (tr) in.push_back({name, values[k], &g});
      ++k;
    });
    ASSERT_FALSE(in.empty());
    EXPECT_GRADCHECK([&] { return run(nullptr); }, in, {.eps = 1e-5, .max_per_tensor = 200, .floor = 1e-3}) << what;
  }
};

ModelInput<double> tokens(int64_t T, int64_t B, int64_t V, std::vector<int64_t> lengths, uint64_t seed) {
  ModelInput<double> in;
  Rng rng(seed);
  in.steps = T;
  in.batch = B;
  in.lengths = std::move(lengths);
  const int64_t n = T > 0 ? T * B : B;
  for (int64_t i = 0; i < n; ++i) in.ids.push_back(int32_t(rng.below(uint64_t(V))));
  return in;
}

RnnConfig cfg(CellType cell, int64_t H, int64_t L, bool bi) {
  return {.cell = cell, .hidden_size = H, .num_layers = L, .bidirectional = bi};
}

TEST(ModelGradients, PerStepHeadOnStackedBiLstm) {
  Problem p;
  p.spec.tokens("words", 9);
  p.spec.embedding("emb", "words", 3);
  p.spec.rnn("rnn", "emb", cfg(CellType::lstm, 4, 2, true));
  p.spec.linear("out", "rnn", 5);
  p.inputs["words"] = tokens(5, 3, 9, {5, 2, 4}, 1);
  p.heads = {"out"};
  p.check("tagger head");
}

TEST(ModelGradients, FinalStateHeadOnBiGruAndUniRnn) {
  for (CellType cell : {CellType::gru, CellType::rnn_tanh}) {
    Problem p;
    p.spec.tokens("words", 8);
    p.spec.embedding("emb", "words", 3);
    p.spec.rnn("rnn", "emb", cfg(cell, 4, 2, cell == CellType::gru));
    p.spec.linear("out", "rnn.final", 3);
    p.inputs["words"] = tokens(4, 3, 8, {4, 1, 3}, 2);
    p.heads = {"out"};
    p.check(std::string("classifier head ") + std::string(cell_name(cell)));
  }
}

// Max and mean over time of a ragged bidirectional LSTM's outputs, into a classifier head.
TEST(ModelGradients, PooledOverTimeRaggedBiLstm) {
  for (PoolMode mode : {PoolMode::max, PoolMode::mean}) {
    Problem p;
    p.spec.tokens("words", 9);
    p.spec.embedding("emb", "words", 3);
    p.spec.rnn("rnn", "emb", cfg(CellType::lstm, 4, 1, true));
    p.spec.pool("pool", "rnn", mode);
    p.spec.linear("out", "pool", 3);
    p.inputs["words"] = tokens(5, 3, 9, {5, 2, 4}, 5);
    p.heads = {"out"};
    p.check(std::string("pool ") + pool_mode_name(mode));
  }
}

// The pooled values themselves, against loops over the rnn's outputs: only the steps before
// each example's length count (the rnn writes zeros past it, which a max would otherwise see
// when every real value is negative).
TEST(ModelPool, MaxAndMeanOverEachExamplesOwnSteps) {
  for (PoolMode mode : {PoolMode::max, PoolMode::mean}) {
    ModelSpec spec;
    spec.tokens("words", 9);
    spec.embedding("emb", "words", 3);
    spec.rnn("rnn", "emb", cfg(CellType::gru, 4, 1, false));
    spec.pool("pool", "rnn", mode);
    Rng rng(11);
    const ModelParams<double> params = model_init_params<double>(spec, rng);
    ModelInputs<double> in;
    in["words"] = tokens(6, 3, 9, {6, 1, 3}, 8);
    ModelCache<double> cache;
    model_forward(spec, params, in, {}, cache);
    const Tensor<double>& h = model_output(spec, cache, "rnn");  // [6, 3, 4]
    const Tensor<double>& y = model_output(spec, cache, "pool");  // [3, 4]
    ASSERT_EQ(y.shape, (Shape{3, 4}));
    const int64_t lens[] = {6, 1, 3};
    for (int64_t b = 0; b < 3; ++b)
      for (int64_t k = 0; k < 4; ++k) {
        double want = mode == PoolMode::max ? -1e300 : 0;
        for (int64_t t = 0; t < lens[b]; ++t) {
          const double v = h.data[size_t((t * 3 + b) * 4 + k)];
          want = mode == PoolMode::max ? std::max(want, v) : want + v / double(lens[b]);
        }
        EXPECT_NEAR(y.data[size_t(b * 4 + k)], want, 1e-15) << pool_mode_name(mode) << " b " << b << " k " << k;
      }
  }
}

TEST(ModelSpecJson, PoolRoundTripsAndIsChecked) {
  ModelSpec s;
  s.tokens("words", 9);
  s.embedding("emb", "words", 3);
  s.rnn("rnn", "emb", cfg(CellType::lstm, 4, 1, true));
  s.pool("pool", "rnn", PoolMode::mean);
  s.linear("out", "pool", 2);
  s.validate();
  const ModelSpec back = model_spec_from_json(model_spec_to_json(s), "t");
  EXPECT_EQ(model_spec_to_json(back), model_spec_to_json(s));
  EXPECT_EQ(back.layers[2].pool, PoolMode::mean);
  EXPECT_FALSE(back.is_sequence("pool"));
  EXPECT_EQ(back.width("pool"), 8);
  EXPECT_NE(model_spec_summary(back).find("pool(pool mean)"), std::string::npos);
  std::string bad = model_spec_to_json(s);
  bad.replace(bad.find("\"mean\""), 6, "\"sum\"");
  try {
    model_spec_from_json(bad, "f.safetensors");
    FAIL() << "a pool mode 'sum' was accepted";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("f.safetensors: model: layers[2]"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("mode"), std::string::npos) << e.what();
  }
  ModelSpec v;  // a vector cannot be pooled over time
  v.tokens("words", 9);
  v.embedding("emb", "words", 3);
  v.rnn("rnn", "emb", cfg(CellType::lstm, 4, 1, false));
  v.pool("pool", "rnn.final", PoolMode::max);
  try {
    v.validate();
    FAIL() << "a pool over a vector was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("must be a sequence of features"), std::string::npos) << e.what();
  }
}

TEST(ModelGradients, CharacterFeaturesConcatenatedPerWord) {
  // words [T=3, B=2]; chars [Tc=4, N=T*B=6]: one character sequence per word position.
  Problem p;
  p.spec.tokens("words", 7);
  p.spec.tokens("chars", 5);
  p.spec.embedding("wemb", "words", 3);
  p.spec.embedding("cemb", "chars", 2);
  p.spec.rnn("crnn", "cemb", cfg(CellType::lstm, 2, 1, true));
  p.spec.concat("cat", {"wemb", "crnn.final"});
  p.spec.rnn("rnn", "cat", cfg(CellType::gru, 3, 1, true));
  p.spec.linear("out", "rnn", 4);
  p.inputs["words"] = tokens(3, 2, 7, {3, 2}, 3);
  p.inputs["chars"] = tokens(4, 6, 5, {4, 1, 3, 2, 4, 1}, 4);
  p.heads = {"out"};
  p.check("char features");
}

TEST(ModelGradients, EncoderDecoderDirectStateLink) {
  for (CellType cell : {CellType::lstm, CellType::gru}) {
    Problem p;
    p.spec.tokens("src", 6);
    p.spec.tokens("tgt", 7);
    p.spec.embedding("semb", "src", 3);
    p.spec.rnn("enc", "semb", cfg(cell, 4, 2, false));
    p.spec.embedding("temb", "tgt", 3);
    p.spec.rnn("dec", "temb", cfg(cell, 4, 2, false), "enc");
    p.spec.linear("out", "dec", 7);
    p.inputs["src"] = tokens(5, 3, 6, {5, 3, 1}, 5);
    p.inputs["tgt"] = tokens(4, 3, 7, {2, 4, 3}, 6);
    p.heads = {"out"};
    p.check(std::string("encoder-decoder ") + std::string(cell_name(cell)));
  }
}

TEST(ModelGradients, BidirectionalEncoderBridgeToDecoder) {
  Problem p;
  p.spec.tokens("src", 6);
  p.spec.tokens("tgt", 7);
  p.spec.embedding("semb", "src", 3);
  p.spec.rnn("enc", "semb", cfg(CellType::lstm, 3, 1, true));
  p.spec.bridge("bridge", "enc.final", "dec");
  p.spec.embedding("temb", "tgt", 3);
  p.spec.rnn("dec", "temb", cfg(CellType::lstm, 4, 2, false), "bridge");
  p.spec.linear("out", "dec", 7);
  p.inputs["src"] = tokens(4, 2, 6, {4, 2}, 7);
  p.inputs["tgt"] = tokens(3, 2, 7, {3, 1}, 8);
  p.heads = {"out"};
  p.check("bridge");
}

TEST(ModelGradients, ConditionEmbeddingInitialisesGenerator) {
  Problem p;
  p.spec.tokens("cond", 4, false);  // one label per example
  p.spec.tokens("tgt", 6);
  p.spec.embedding("cemb", "cond", 3);
  p.spec.bridge("bridge", "cemb", "dec");
  p.spec.embedding("temb", "tgt", 3);
  p.spec.rnn("dec", "temb", cfg(CellType::gru, 4, 1, false), "bridge");
  p.spec.linear("out", "dec", 6);
  p.inputs["cond"] = tokens(0, 3, 4, {}, 9);
  p.inputs["tgt"] = tokens(4, 3, 6, {4, 2, 3}, 10);
  p.heads = {"out"};
  p.check("conditioned generator");
}

TEST(ModelGradients, ConditionRepeatedAtEveryStep) {
  // One-to-many with the condition in every step's input: cat(tgt_emb [T, B, 3], cond_emb [B, 2]).
  Problem p;
  p.spec.tokens("cond", 4, false);
  p.spec.tokens("tgt", 6);
  p.spec.embedding("cemb", "cond", 2);
  p.spec.embedding("temb", "tgt", 3);
  p.spec.concat("x", {"temb", "cemb"});
  p.spec.rnn("dec", "x", cfg(CellType::lstm, 4, 1, false));
  p.spec.linear("out", "dec", 6);
  p.inputs["cond"] = tokens(0, 3, 4, {}, 12);
  p.inputs["tgt"] = tokens(4, 3, 6, {4, 2, 3}, 13);
  p.heads = {"out"};
  p.check("per-step condition");
}

TEST(ModelGradients, FeatureInputDropoutAndTwoHeads) {
  Problem p;
  p.spec.features("x", 3);
  p.spec.rnn("rnn", "x", cfg(CellType::lstm, 4, 1, false));
  p.spec.dropout("drop", "rnn", 0.3);
  p.spec.linear("tags", "drop", 2);
  p.spec.linear("cls", "rnn.final", 3);
  ModelInput<double> x;
  x.steps = 4;
  x.batch = 2;
  x.lengths = {4, 3};
  x.features = Tensor<double>({4, 2, 3});
  Rng rng(11);
  for (auto& v : x.features.data) v = rng.uniform(-1, 1);
  p.inputs["x"] = x;
  p.heads = {"tags", "cls"};
  p.training = true;
  p.check("features, dropout, two heads");
}

TEST(ModelGradients, FrozenEmbeddingGetsNoGradient) {
  ModelSpec s;
  s.tokens("w", 5);
  s.embedding("emb", "w", 2, true);
  s.rnn("rnn", "emb", cfg(CellType::lstm, 3, 1, false));
  s.linear("out", "rnn.final", 2);
  Rng rng(1);
  ModelParams<float> params = model_init_params<float>(s, rng);
  ModelGrads<float> grads = model_zero_grads<float>(s);
  const auto refs = model_param_refs(s, params, grads);
  for (const auto& r : refs) EXPECT_NE(r.name, "emb.weight");
  EXPECT_EQ(refs.size(), 6u);  // rnn 4 + out 2
}

// The language model's pieces in a graph's JSON: one-hot input and a tied head round trip, and
// the tie is written only when set (untied files keep their bytes).
TEST(ModelSpecJson, OneHotAndTiedHeadRoundTrip) {
  ModelSpec s;
  s.tokens("ids", 9);
  s.embedding("encoder", "ids", 4);
  s.onehot("chars", "ids");
  s.concat("both", {"encoder", "chars"});
  s.rnn("rnn", "both", cfg(CellType::gru, 4, 1, false));
  s.linear("decoder", "rnn", 9, "encoder");
  s.validate();
  EXPECT_EQ(s.width("chars"), 9);
  EXPECT_EQ(s.layer("rnn").rnn.input_size, 13);
  const std::string j = model_spec_to_json(s);
  EXPECT_NE(j.find(R"("tie":"encoder")"), std::string::npos) << j;
  EXPECT_NE(j.find(R"("kind":"onehot")"), std::string::npos) << j;
  const ModelSpec t = model_spec_from_json(j, "x.safetensors");
  EXPECT_EQ(model_spec_to_json(t), j);
  EXPECT_EQ(t.layer("decoder").tie, "encoder");
  // encoder 9*4, rnn 3*4*(13+4) + 2*3*4, decoder bias 9 (its matrix is the encoder's)
  EXPECT_EQ(model_param_count(t), 9 * 4 + 3 * 4 * 17 + 24 + 9);
  ModelSpec untied = s;
  untied.layers.back().tie.clear();
  EXPECT_EQ(model_spec_to_json(untied).find("tie"), std::string::npos);
  ModelSpec bad = s;
  bad.layers[2].tie = "encoder";  // a concat layer
  EXPECT_THROW(bad.validate(), Error);
}

TEST(ModelSpecJson, RoundTripsAndRefusesBadGraphs) {
  ModelSpec s;
  s.tokens("src", 6);
  s.embedding("semb", "src", 3);
  s.rnn("enc", "semb", cfg(CellType::lstm, 3, 1, true));
  s.bridge("bridge", "enc.final", "dec");
  s.tokens("tgt", 7);
  s.embedding("temb", "tgt", 3);
  s.rnn("dec", "temb", cfg(CellType::gru, 4, 2, false), "bridge");
  s.dropout("d", "dec", 0.1);
  s.linear("out", "d", 7);
  s.validate();
  const std::string j = model_spec_to_json(s);
  const ModelSpec t = model_spec_from_json(j, "x.safetensors");
  EXPECT_EQ(model_spec_to_json(t), j);
  EXPECT_EQ(model_param_count(t), model_param_count(s));

  ModelSpec bad = s;
  bad.layers.back().inputs = {"nope"};
  EXPECT_THROW(bad.validate(), Error);
  ModelSpec bad2;
  bad2.tokens("w", 5);
  bad2.rnn("rnn", "w", cfg(CellType::lstm, 3, 1, false));  // token ids straight into an rnn
  EXPECT_THROW(bad2.validate(), Error);
  ModelSpec bad3;
  bad3.tokens("a", 5);
  bad3.embedding("e", "a", 2);
  bad3.rnn("enc", "e", cfg(CellType::lstm, 3, 1, true));
  bad3.rnn("dec", "e", cfg(CellType::lstm, 3, 1, false), "enc");  // bidirectional state into a unidirectional rnn
  EXPECT_THROW(bad3.validate(), Error);
  try {
    model_spec_from_json(R"({"inputs":[],"layers":[{"name":"x","kind":"conv","inputs":[]}]})", "m.safetensors");
    FAIL();
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("m.safetensors: model: layers[0]"), std::string::npos) << e.what();
  }
}

// ---------------------------------------------------------------- PyTorch goldens

// tools/gen_model_golden.py: the same models as torch.nn modules in float64; inputs, weights
// under the module's state_dict names, and the outputs.
void check_golden(const std::string& file, ModelSpec spec, const std::string& head, bool per_example_lengths) {
  const std::string path = std::string(RECUR_GOLDEN_DIR) + "/model/" + file;
  if (!std::filesystem::exists(path)) GTEST_SKIP() << path << " missing";
  const SafetensorsReader rd = SafetensorsReader::open(path);
  Rng rng(1);
  ModelParams<double> params = model_init_params<double>(spec, rng);  // shapes; values come from the file
  model_for_each_param(spec, params, [&](const std::string& name, Tensor<double>& t, bool) { t = rd.get<double>(name, t.shape); });
  Shape ids_shape;
  const std::vector<int64_t> ids = rd.get_int("input.ids", &ids_shape);
  ModelInput<double> in;
  in.steps = ids_shape[0];
  in.batch = ids_shape[1];
  for (int64_t v : ids) in.ids.push_back(int32_t(v));
  if (per_example_lengths) in.lengths = rd.get_int("input.lengths");
  ModelInputs<double> inputs{{"words", in}};
  ModelCache<double> cache;
  model_forward(spec, params, inputs, {}, cache);
  const Tensor<double>& out = model_output(spec, cache, head);
  const Tensor<double> want = rd.get<double>("output", out.shape);
  for (int64_t t = 0; t < out.numel(); ++t) {
    // Per-step outputs past a sequence's length are padding (PyTorch's pad_packed_sequence gives
    // zeros before the head, the linear layer's bias after it): compare valid rows only.
    if (out.rank() == 3) {
      const int64_t C = out.dim(2), row = t / C, step = row / in.batch, b = row % in.batch;
      if (!in.lengths.empty() && step >= in.lengths[size_t(b)]) continue;
    }
    EXPECT_NEAR(out.data[size_t(t)], want.data[size_t(t)], 1e-10) << file << " element " << t;
  }
}

TEST(ModelGolden, BiLstmTaggerMatchesPyTorch) {
  ModelSpec s;
  s.tokens("words", 11);
  s.embedding("emb", "words", 4);
  s.rnn("rnn", "emb", cfg(CellType::lstm, 5, 2, true));
  s.linear("out", "rnn", 3);
  check_golden("bilstm_tagger.safetensors", s, "out", true);
}

TEST(ModelGolden, ManyToOneClassifierMatchesPyTorch) {
  ModelSpec s;
  s.tokens("words", 11);
  s.embedding("emb", "words", 4);
  s.rnn("rnn", "emb", cfg(CellType::lstm, 5, 1, true));
  s.linear("out", "rnn.final", 2);
  check_golden("classifier.safetensors", s, "out", true);
}

}  // namespace
}  // namespace recur

namespace recur {
namespace {

TEST(ModelGolden, EncoderDecoderStateLinkMatchesPyTorch) {
  const std::string path = std::string(RECUR_GOLDEN_DIR) + "/model/seq2seq.safetensors";
  if (!std::filesystem::exists(path)) GTEST_SKIP() << path << " missing";
  const RnnConfig lstm{.cell = CellType::lstm, .hidden_size = 4, .num_layers = 2};
  ModelSpec s;
  s.tokens("src", 7);
  s.tokens("tgt", 6);
  s.embedding("src_emb", "src", 3);
  s.rnn("enc", "src_emb", lstm);
  s.embedding("tgt_emb", "tgt", 3);
  s.rnn("dec", "tgt_emb", lstm, "enc");
  s.linear("out", "dec", 6);
  const SafetensorsReader rd = SafetensorsReader::open(path);
  Rng rng(1);
  ModelParams<double> params = model_init_params<double>(s, rng);
  model_for_each_param(s, params, [&](const std::string& name, Tensor<double>& t, bool) { t = rd.get<double>(name, t.shape); });
  ModelInputs<double> inputs;
  for (const char* name : {"src", "tgt"}) {
    Shape shape;
    const auto ids = rd.get_int(std::string("input.") + name, &shape);
    ModelInput<double>& in = inputs[name];
    in.steps = shape[0];
    in.batch = shape[1];
    for (int64_t v : ids) in.ids.push_back(int32_t(v));
    in.lengths = rd.get_int(std::string("input.") + name + "_lengths");
  }
  ModelCache<double> cache;
  model_forward(s, params, inputs, {}, cache);
  const Tensor<double>& out = model_output(s, cache, "out");
  const Tensor<double> want = rd.get<double>("output", out.shape);
  const auto& len = inputs["tgt"].lengths;
  for (int64_t i = 0; i < out.numel(); ++i) {
    const int64_t row = i / 6, t = row / 3, b = row % 3;
    if (t >= len[size_t(b)]) continue;  // padding
    EXPECT_NEAR(out.data[size_t(i)], want.data[size_t(i)], 1e-10) << "element " << i;
  }
}

}  // namespace
}  // namespace recur

namespace recur {
namespace {

// tools/gen_model_golden.py bridge cases: an rnn whose initial (h, c) of every layer and
// direction comes from a bridge tanh(W x + b). Output, the mean cross-entropy over the
// non-padding targets and every parameter's gradient must match PyTorch (float64).
void check_bridge_golden(const std::string& file, const ModelSpec& s) {
  const std::string path = std::string(RECUR_GOLDEN_DIR) + "/model/" + file;
  if (!std::filesystem::exists(path)) GTEST_SKIP() << path << " missing";
  s.validate();
  const SafetensorsReader rd = SafetensorsReader::open(path);
  Rng rng(1);
  ModelParams<double> params = model_init_params<double>(s, rng);
  model_for_each_param(s, params, [&](const std::string& name, Tensor<double>& t, bool) { t = rd.get<double>(name, t.shape); });
  ModelInputs<double> inputs;
  for (const InputSpec& spec_in : s.inputs) {
    Shape shape;
    const auto ids = rd.get_int("input." + spec_in.name, &shape);
    ModelInput<double>& in = inputs[spec_in.name];
    for (int64_t v : ids) in.ids.push_back(int32_t(v));
    if (spec_in.per_step) {
      in.steps = shape[0];
      in.batch = shape[1];
      in.lengths = rd.get_int("input." + spec_in.name + "_lengths");
    } else {
      in.batch = shape[0];
    }
  }
  ModelCache<double> cache;
  model_forward(s, params, inputs, {}, cache);
  const Tensor<double>& out = model_output(s, cache, "out");
  const Tensor<double> want = rd.get<double>("output", out.shape);
  const auto& len = inputs["tgt"].lengths;
  const int64_t B = out.dim(1), V = out.dim(2);
  for (int64_t i = 0; i < out.numel(); ++i) {
    const int64_t row = i / V, t = row / B, b = row % B;
    if (t >= len[size_t(b)]) continue;  // padding
    EXPECT_NEAR(out.data[size_t(i)], want.data[size_t(i)], 1e-10) << file << " output element " << i;
  }
  // Loss and gradients.
  std::vector<int32_t> targets;
  for (int64_t v : rd.get_int("input.targets")) targets.push_back(int32_t(v));
  int64_t count = 0;
  for (int32_t t : targets) count += t >= 0;
  Tensor<double> g;
  const LossSum loss = softmax_cross_entropy<double>(out, targets, {}, &g, 1.0 / double(count));
  EXPECT_NEAR(loss.mean(), rd.get<double>("loss", {1}).data[0], 1e-9) << file << " loss";
  ModelGrads<double> grads = model_zero_grads<double>(s);
  model_backward(s, params, inputs, cache, {{"out", &g}}, grads);
  int64_t compared = 0;
  model_for_each_param(s, grads, [&](const std::string& name, const Tensor<double>& gt, bool) {
    const Tensor<double> gw = rd.get<double>("grad." + name, gt.shape);
    double worst = 0;
    for (size_t k = 0; k < gt.data.size(); ++k) worst = std::max(worst, std::abs(gt.data[k] - gw.data[k]));
    EXPECT_LE(worst, 1e-9) << file << " gradient of " << name;
    ++compared;
  });
  // Every gradient in the file has a parameter here (nothing left unchecked).
  int64_t in_file = 0;
  for (const std::string& n : rd.names()) in_file += n.rfind("grad.", 0) == 0;
  EXPECT_EQ(compared, in_file) << file;
}

TEST(ModelGolden, BridgeFromBidirectionalGruIntoProjectedLstmMatchesPyTorch) {
  RnnConfig enc{.cell = CellType::gru, .hidden_size = 4, .num_layers = 2, .bidirectional = true};
  RnnConfig dec{.cell = CellType::lstm, .hidden_size = 4, .proj_size = 3, .num_layers = 2};
  ModelSpec s;
  s.tokens("src", 7);
  s.tokens("tgt", 6);
  s.embedding("src_emb", "src", 3);
  s.rnn("enc", "src_emb", enc);
  s.bridge("bridge", "enc.final", "dec");
  s.embedding("tgt_emb", "tgt", 3);
  s.rnn("dec", "tgt_emb", dec, "bridge");
  s.linear("out", "dec", 6);
  ASSERT_EQ(s.bridge_size(s.layer("bridge")), 2 * 3 + 2 * 4);
  check_bridge_golden("bridge_seq2seq.safetensors", s);
}

TEST(ModelGolden, LabelThroughBridgeIntoBidirectionalLstmMatchesPyTorch) {
  RnnConfig dec{.cell = CellType::lstm, .hidden_size = 3, .num_layers = 2, .bidirectional = true};
  ModelSpec s;
  s.tokens("cond", 3, false);
  s.tokens("tgt", 6);
  s.embedding("cond_emb", "cond", 4);
  s.bridge("bridge", "cond_emb", "dec");
  s.embedding("tgt_emb", "tgt", 3);
  s.rnn("dec", "tgt_emb", dec, "bridge");
  s.linear("out", "dec", 6);
  ASSERT_EQ(s.bridge_size(s.layer("bridge")), 4 * 3 + 4 * 3);
  check_bridge_golden("bridge_conditioned.safetensors", s);
}

}  // namespace
}  // namespace recur

namespace recur {
namespace {

// Attention (attention.h): a bidirectional LSTM encoder's outputs attended by a decoder (an
// LSTM unless told), for each score. The memory is ragged (source lengths 5, 2, 4), so the
// masking is covered. feed: input feeding, the decoder reads [target embedding; the attention's
// previous output] (tools/gen_attention_golden.py writes both kinds).
ModelSpec attention_seq2seq(AttentionScore score, int64_t Q, CellType cell = CellType::lstm, int64_t layers = 1,
                            bool feed = false) {
  ModelSpec s;
  s.tokens("src", 7);
  s.tokens("tgt", 6);
  s.embedding("src_emb", "src", 3);
  s.rnn("enc", "src_emb", {.cell = CellType::lstm, .hidden_size = 4, .num_layers = 1, .bidirectional = true});
  s.embedding("tgt_emb", "tgt", 3);
  s.rnn("dec", "tgt_emb", {.cell = cell, .hidden_size = Q, .num_layers = layers});
  s.attention("attn", "dec", "enc", score, 4, feed);
  s.linear("out", "attn", 6);
  return s;
}

TEST(ModelGolden, AttentionMatchesPyTorchForEveryScore) {
  check_bridge_golden("attention_dot.safetensors", attention_seq2seq(AttentionScore::dot, 8));
  check_bridge_golden("attention_general.safetensors", attention_seq2seq(AttentionScore::general, 5));
  check_bridge_golden("attention_additive.safetensors", attention_seq2seq(AttentionScore::additive, 5));
}

TEST(ModelGradients, AttentionOverARaggedBidirectionalEncoder) {
  for (auto [score, Q] : {std::pair{AttentionScore::dot, int64_t(8)}, std::pair{AttentionScore::general, int64_t(5)},
                          std::pair{AttentionScore::additive, int64_t(5)}}) {
    Problem p;
    p.spec = attention_seq2seq(score, Q);
    p.inputs["src"] = tokens(5, 3, 7, {5, 2, 4}, 11);
    p.inputs["tgt"] = tokens(4, 3, 6, {3, 4, 1}, 12);
    p.heads = {"out"};
    p.check(std::string("attention ") + attention_score_name(score));
  }
}

// Input feeding over ragged targets (3, 4, 1), so ended sequences keeping their state are
// covered; a 2-layer LSTM, a GRU and a 1-layer LSTM decoder.
ModelSpec attention_feed_seq2seq(AttentionScore score, int64_t Q, CellType cell, int64_t layers) {
  return attention_seq2seq(score, Q, cell, layers, /*feed=*/true);
}

TEST(ModelGolden, InputFeedingMatchesPyTorchForEveryScore) {
  const ModelSpec general = attention_feed_seq2seq(AttentionScore::general, 5, CellType::lstm, 2);
  EXPECT_EQ(general.layer("dec").rnn.input_size, 3 + 4);
  EXPECT_EQ(general.layer("dec").feed, "attn");
  check_bridge_golden("attention_feed_general.safetensors", general);
  check_bridge_golden("attention_feed_additive.safetensors", attention_feed_seq2seq(AttentionScore::additive, 5, CellType::gru, 1));
  check_bridge_golden("attention_feed_dot.safetensors", attention_feed_seq2seq(AttentionScore::dot, 8, CellType::lstm, 1));
}

// Finite differences through the fed steps, including the outputs past a target's length (the
// loss here weighs every position) and the encoder's gradient through the memory and the keys.
TEST(ModelGradients, InputFeedingThroughTimeOverARaggedBatch) {
  for (auto [score, Q, cell, layers] :
       {std::tuple{AttentionScore::general, int64_t(5), CellType::lstm, int64_t(2)},
        std::tuple{AttentionScore::additive, int64_t(5), CellType::gru, int64_t(1)},
        std::tuple{AttentionScore::dot, int64_t(8), CellType::rnn_tanh, int64_t(1)}}) {
    Problem p;
    p.spec = attention_feed_seq2seq(score, Q, cell, layers);
    p.inputs["src"] = tokens(5, 3, 7, {5, 2, 4}, 11);
    p.inputs["tgt"] = tokens(4, 3, 6, {3, 4, 1}, 12);
    p.heads = {"out"};
    p.check(std::string("input feeding ") + attention_score_name(score));
  }
}

// The decoder started from a bridge and read by a second head through its final state: the
// state gradient enters the fed steps from both ends.
TEST(ModelGradients, InputFeedingFromABridgeWithTheFinalStateRead) {
  Problem p;
  ModelSpec& s = p.spec;
  s.tokens("src", 7);
  s.tokens("tgt", 6);
  s.embedding("src_emb", "src", 3);
  s.rnn("enc", "src_emb", {.cell = CellType::gru, .hidden_size = 3, .bidirectional = true});
  s.bridge("bridge", "enc.final", "dec");
  s.embedding("tgt_emb", "tgt", 3);
  s.rnn("dec", "tgt_emb", {.cell = CellType::lstm, .hidden_size = 4, .proj_size = 3, .num_layers = 2}, "bridge");
  s.attention("attn", "dec", "enc", AttentionScore::general, 5, true);
  s.linear("out", "attn", 6);
  s.linear("final_head", "dec.final", 2);
  p.inputs["src"] = tokens(5, 3, 7, {5, 2, 4}, 21);
  p.inputs["tgt"] = tokens(4, 3, 6, {2, 4, 3}, 22);
  p.heads = {"out", "final_head"};
  p.check("input feeding from a bridge");
}

TEST(ModelSpecJson, InputFeedingRoundTripsAndIsChecked) {
  const ModelSpec s = attention_feed_seq2seq(AttentionScore::general, 5, CellType::lstm, 2);
  const std::string json = model_spec_to_json(s);
  const ModelSpec back = model_spec_from_json(json, "m");
  EXPECT_EQ(back.layer("dec").feed, "attn");
  EXPECT_EQ(model_spec_to_json(back), json);
  EXPECT_NE(model_spec_summary(s).find("fed by attn"), std::string::npos) << model_spec_summary(s);
  // A plain graph's JSON has no "feed" field (older files keep their bytes).
  EXPECT_EQ(model_spec_to_json(attention_seq2seq(AttentionScore::general, 5)).find("feed"), std::string::npos);
  auto expect_invalid = [](ModelSpec bad, const std::string& want) {
    try {
      bad.validate();
      ADD_FAILURE() << "accepted: " << want;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(want), std::string::npos) << e.what();
    }
  };
  ModelSpec wrong = s;
  wrong.layers[size_t(wrong.layer_index("dec"))].feed = "out";
  expect_invalid(wrong, "must be a later attention layer whose query is 'dec'");
  wrong = s;
  wrong.layers[size_t(wrong.layer_index("dec"))].rnn.input_size = 3;
  expect_invalid(wrong, "plus the fed attention's 4");
  // The query must be an rnn layer.
  ModelSpec q;
  q.features("a", 2);
  q.features("m", 3);
  EXPECT_THROW(q.attention("x", "a", "m", AttentionScore::general, 3, true), Error);
}

TEST(ModelSpecJson, AttentionRoundTripsAndIsChecked) {
  const ModelSpec s = attention_seq2seq(AttentionScore::additive, 5);
  const ModelSpec back = model_spec_from_json(model_spec_to_json(s), "m");
  ASSERT_EQ(back.layers.size(), s.layers.size());
  EXPECT_EQ(back.layers[4].kind, LayerKind::attention);
  EXPECT_EQ(back.layers[4].score, AttentionScore::additive);
  EXPECT_EQ(back.layers[4].size, 4);
  EXPECT_EQ(model_spec_to_json(back), model_spec_to_json(s));
  // 8 + 5 inputs into W_c [4, 13]; W_q [4, 5], W_k [4, 8], v [1, 4]; the rest as before.
  ModelSpec no_attn = s;
  no_attn.layers.erase(no_attn.layers.begin() + 4);
  no_attn.layers.back().inputs = {"dec"};
  no_attn.layers.back().size = 6;
  EXPECT_EQ(model_param_count(s) - model_param_count(no_attn), 4 * 13 + 4 * 5 + 4 * 8 + 4 + (4 + 1) * 6 - (5 + 1) * 6);
  // The dot score needs one width.
  EXPECT_THROW(attention_seq2seq(AttentionScore::dot, 5).validate(), Error);
  try {
    model_spec_from_json(R"({"inputs":[{"name":"a","kind":"features","per_step":true,"size":2}],"layers":[)"
                         R"({"name":"x","kind":"attention","inputs":["a","a"],"size":3,"score":"cosine"}]})",
                         "m.safetensors");
    FAIL();
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("m.safetensors: model: layers[0]: \"score\": got \"cosine\", expected \"dot\", \"general\" or \"additive\""),
              std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace recur
