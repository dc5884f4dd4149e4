// Library-level tests of checkpoint.h: round trip of everything a checkpoint holds, and a
// one-line FormatError naming the file and the field for every kind of bad file.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "test_util.h"
#include "recur/train/checkpoint.h"
#include "recur/core/safetensors.h"
#include "recur/tasks/tasks.h"

namespace fs = std::filesystem;
using namespace recur;

namespace {

LmModel small_model(CellType cell, int64_t embed) {
  TokenCounter counter(TokenLevel::chars);
  counter.add_text("hello world\n");
  LmModel m;
  m.vocab = Vocab::build(counter);
  m.spec.level = TokenLevel::chars;
  m.spec.mode = TextMode::stream;
  m.spec.lm.vocab_size = m.vocab.size();
  m.spec.lm.embed_size = embed;
  m.spec.lm.dropout = 0.25;
  m.spec.lm.rnn.cell = cell;
  m.spec.lm.rnn.gru_reset = GruReset::before;
  m.spec.lm.rnn.input_size = m.spec.lm.input_size();
  m.spec.lm.rnn.hidden_size = 5;
  m.spec.lm.rnn.num_layers = 2;
  Rng rng(3);
  m.params = lm_init_params<float>(m.spec.lm, rng, 0.1);
  return m;
}

using CheckpointTest = test::TempDirTest;

template <typename Fn>
void expect_format_error(Fn&& fn, std::initializer_list<std::string> parts) {
  test::expect_one_line_error<FormatError>(fn, parts);
}

// Rewrites a valid checkpoint with one metadata value replaced (or removed when value is empty).
void rewrite(const std::string& from, const std::string& to, const std::string& key, const std::string& value) {
  const SafetensorsReader rd = SafetensorsReader::open(from);
  SafetensorsWriter w;
  for (const auto& [k, v] : rd.metadata())
    if (k != key) w.set_metadata(k, v);
  if (!value.empty()) w.set_metadata(key, value);
  for (const auto& name : rd.names()) w.add(name, rd.get<float>(name));
  w.write(to);
}

TEST_F(CheckpointTest, RoundTripKeepsEverything) {
  for (CellType cell : {CellType::lstm, CellType::gru, CellType::rnn_relu}) {
    for (int64_t embed : {0, 4}) {
      Checkpoint ck;
      ck.model = small_model(cell, embed);
      ck.train_state = R"({"step":3})";
      ck.tensors["optim.decoder.bias.exp_avg"] = Tensor<float>({ck.model.spec.lm.vocab_size}, 0.5f);
      ck.tensors["train.state.h"] = Tensor<float>({2, 1, 5}, -1.0f);
      const std::string p = path("m.safetensors");
      save_checkpoint(p, ck);
      const Checkpoint back = load_checkpoint(p);
      EXPECT_EQ(lm_spec_to_json(back.model.spec), lm_spec_to_json(ck.model.spec));
      EXPECT_EQ(back.model.vocab, ck.model.vocab);
      EXPECT_EQ(back.train_state, ck.train_state);
      ASSERT_EQ(back.tensors.size(), 2u);
      EXPECT_EQ(back.tensors.at("optim.decoder.bias.exp_avg").data, ck.tensors.at("optim.decoder.bias.exp_avg").data);
      EXPECT_EQ(back.tensors.at("train.state.h").shape, (Shape{2, 1, 5}));
      std::vector<std::vector<float>> a, b;
      model_for_each_param(ck.model.graph(), ck.model.params, [&](const std::string&, const Tensor<float>& t, bool) { a.push_back(t.data); });
      model_for_each_param(back.model.graph(), back.model.params, [&](const std::string&, const Tensor<float>& t, bool) { b.push_back(t.data); });
      EXPECT_EQ(a, b);
      // PyTorch-compatible names.
      const SafetensorsReader rd = SafetensorsReader::open(p);
      EXPECT_TRUE(rd.contains("rnn.weight_ih_l0"));
      EXPECT_TRUE(rd.contains("rnn.weight_hh_l1"));
      EXPECT_TRUE(rd.contains("decoder.weight"));
      EXPECT_EQ(rd.contains("encoder.weight"), embed > 0);
      // Written as a model file like every recur model (one checkpoint format).
      EXPECT_EQ(rd.metadata().at("format"), "recur-model");
      EXPECT_EQ(rd.metadata().at("format_version"), "2");
      EXPECT_TRUE(rd.metadata().count("vocab.tokens"));
    }
  }
  EXPECT_FALSE(fs::exists(path("m.safetensors.tmp")));
}

TEST_F(CheckpointTest, SaveRefusesBadModels) {
  Checkpoint ck;
  ck.model = small_model(CellType::lstm, 0);
  ck.model.params.layers[size_t(ck.model.graph().layer_index("decoder"))].bias.data[1] = std::nanf("");
  EXPECT_THROW(save_checkpoint(path("nan.safetensors"), ck), Error);
  EXPECT_FALSE(fs::exists(path("nan.safetensors")));
  ck.model = small_model(CellType::lstm, 0);
  ck.model.spec.lm.rnn.bidirectional = true;
  try {
    save_checkpoint(path("bi.safetensors"), ck);
    ADD_FAILURE() << "bidirectional LM saved";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot read the future"), std::string::npos);
  }
  ck.model = small_model(CellType::lstm, 0);
  ck.tensors["stray"] = Tensor<float>({1});
  EXPECT_THROW(save_checkpoint(path("stray.safetensors"), ck), Error);
}

// A file in the version-1 language-model layout ("recur-lm"), as recur wrote before the model
// file (tests/fixtures/v1 holds real ones; this one is made from a model the test controls).
void write_v1(const Checkpoint& ck, const std::string& path) {
  SafetensorsWriter w;
  w.set_metadata("format", "recur-lm");
  w.set_metadata("format_version", "1");
  w.set_metadata("config", lm_spec_to_json(ck.model.spec));
  w.set_metadata("vocab", ck.model.vocab.to_json());
  if (!ck.train_state.empty()) w.set_metadata("train_state", ck.train_state);
  model_for_each_param(ck.model.graph(), ck.model.params, [&](const std::string& n, const Tensor<float>& t, bool) { w.add(n, t); });
  for (const auto& [n, t] : ck.tensors) w.add(n, t);
  w.write(path);
}

TEST_F(CheckpointTest, VersionOneFilesLoadLikeTheSameModelSavedToday) {
  Checkpoint ck;
  ck.model = small_model(CellType::lstm, 4);
  ck.train_state = R"({"step":3})";
  write_v1(ck, path("v1.safetensors"));
  save_checkpoint(path("v2.safetensors"), ck);
  const Checkpoint a = load_checkpoint(path("v1.safetensors")), b = load_checkpoint(path("v2.safetensors"));
  EXPECT_EQ(lm_spec_to_json(a.model.spec), lm_spec_to_json(b.model.spec));
  EXPECT_EQ(a.model.vocab, b.model.vocab);
  EXPECT_EQ(a.train_state, b.train_state);
  std::vector<std::vector<float>> va, vb;
  model_for_each_param(a.model.graph(), a.model.params, [&](const std::string&, const Tensor<float>& t, bool) { va.push_back(t.data); });
  model_for_each_param(b.model.graph(), b.model.params, [&](const std::string&, const Tensor<float>& t, bool) { vb.push_back(t.data); });
  EXPECT_EQ(va, vb);
}

TEST_F(CheckpointTest, BadModelFilesGiveOneLineErrors) {
  Checkpoint ck;
  ck.model = small_model(CellType::gru, 4);
  const std::string good = path("good.safetensors"), bad = path("bad.safetensors");
  save_checkpoint(good, ck);
  const std::string task = SafetensorsReader::open(good).metadata().at("task");
  auto with = [&](const std::string& from, const std::string& to) {
    std::string c = task;
    const size_t at = c.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    return c.replace(at, from.size(), to);
  };
  rewrite(good, bad, "format_version", "3");
  expect_format_error([&] { load_checkpoint(bad); }, {bad, "format_version 3", "newer recur"});
  rewrite(good, bad, "task", with("\"kind\":\"lm\"", "\"kind\":\"tag\""));
  expect_format_error([&] { load_checkpoint(bad); }, {bad, "\"kind\"", "not a language model"});
  rewrite(good, bad, "task", with("\"hidden_size\":5", "\"hidden_size\":6"));
  expect_format_error([&] { load_checkpoint(bad); }, {bad, "\"model\"", "config"});
  rewrite(good, bad, "task", with("\"kind\":\"lm\"", "\"kind\":\"lm\",\"colour\":1"));
  expect_format_error([&] { load_checkpoint(bad); }, {bad, "\"colour\""});
  rewrite(good, bad, "task", with("\"kind\":\"lm\"", "\"kind\":\"lm\",\"tokens\":[1]"));
  expect_format_error([&] { load_checkpoint(bad); }, {bad, "\"tokens\"", "object"});
  rewrite(good, bad, "task", with("\"level\":\"chars\"", "\"level\":\"words\""));
  expect_format_error([&] { load_checkpoint(bad); }, {bad, "vocab.tokens", "level"});
  rewrite(good, bad, "vocab.tokens", "");
  expect_format_error([&] { load_checkpoint(bad); }, {bad, "vocab.tokens"});
  rewrite(good, bad, "task", "");
  expect_format_error([&] { load_checkpoint(bad); }, {bad, "\"task\"", "missing"});
  // A task model is not a language model, and the other way round.
  EXPECT_FALSE(is_task_checkpoint(good));
  EXPECT_TRUE(is_task_checkpoint(std::string(RECUR_SOURCE_DIR) + "/tests/fixtures/v1/tagger.safetensors"));
  expect_format_error([&] { load_checkpoint(std::string(RECUR_SOURCE_DIR) + "/tests/fixtures/v1/tagger.safetensors"); },
                      {"tagger.safetensors", "not a language model"});
}

TEST_F(CheckpointTest, BadFilesGiveOneLineErrors) {
  Checkpoint ck;
  ck.model = small_model(CellType::gru, 4);
  const std::string good = path("good.safetensors");
  write_v1(ck, good);  // the version-1 layout's checks: the model-file ones are above
  const std::string bad = path("bad.safetensors");

  rewrite(good, bad, "format_version", "2");
  expect_format_error([&] { load_checkpoint(bad); }, {bad, "format_version 2", "recur-lm"});
  rewrite(good, bad, "format_version", "one");
  expect_format_error([&] { load_checkpoint(bad); }, {bad, "format_version"});
  rewrite(good, bad, "format", "");
  expect_format_error([&] { load_checkpoint(bad); }, {bad, "\"format\"", "not a recur language model"});
  rewrite(good, bad, "format", "something-else");
  expect_format_error([&] { load_checkpoint(bad); }, {bad, "format"});
  rewrite(good, bad, "config", "");
  expect_format_error([&] { load_checkpoint(bad); }, {bad, "\"config\"", "missing"});
  rewrite(good, bad, "config", "{not json");
  expect_format_error([&] { load_checkpoint(bad); }, {bad, "config", "JSON"});

  const std::string cfg = lm_spec_to_json(ck.model.spec);
  auto with = [&](const std::string& from, const std::string& to) {
    std::string c = cfg;
    const size_t at = c.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    return c.replace(at, from.size(), to);
  };
  rewrite(good, bad, "config", with("\"hidden_size\":5", "\"hidden_size\":\"5\""));
  expect_format_error([&] { load_checkpoint(bad); }, {bad, "\"hidden_size\"", "integer"});
  rewrite(good, bad, "config", with("\"cell\":\"gru\"", "\"cell\":\"tree\""));
  expect_format_error([&] { load_checkpoint(bad); }, {bad, "\"cell\""});
  rewrite(good, bad, "config", with("\"level\":\"chars\"", "\"level\":\"bytes\""));
  expect_format_error([&] { load_checkpoint(bad); }, {bad, "\"level\""});
  rewrite(good, bad, "config", with("\"hidden_size\":5", "\"hidden_size\":6"));
  expect_format_error([&] { load_checkpoint(bad); }, {bad, "expected shape"});
  rewrite(good, bad, "config", with("\"vocab_size\":", "\"colour\":1,\"vocab_size\":"));
  expect_format_error([&] { load_checkpoint(bad); }, {bad, "unknown field \"colour\""});
  rewrite(good, bad, "config", with("\"bidirectional\":false", "\"bidirectional\":true"));
  expect_format_error([&] { load_checkpoint(bad); }, {bad, "cannot read the future"});
  rewrite(good, bad, "vocab", "");
  expect_format_error([&] { load_checkpoint(bad); }, {bad, "\"vocab\""});
  rewrite(good, bad, "extra", "1");
  expect_format_error([&] { load_checkpoint(bad); }, {bad, "extra"});

  // Truncated and garbled bytes.
  std::ifstream in(good, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string bytes = ss.str();
  for (size_t cut : {size_t(0), size_t(5), size_t(100), bytes.size() - 1}) {
    std::ofstream(bad, std::ios::binary | std::ios::trunc) << bytes.substr(0, cut);
    expect_format_error([&] { load_checkpoint(bad); }, {bad});
  }
  expect_format_error([&] { load_checkpoint(path("missing.safetensors")); }, {"missing.safetensors"});
}

}  // namespace
