// train/model_file.h: the checkpoint file of a model graph. Round trip of everything it holds,
// the format and version read before anything else (v1 fixtures of both formats included), and a
// one-line FormatError naming the file and the field for each kind of bad file.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>

#include "test_util.h"
#include "recur/core/safetensors.h"
#include "recur/train/model_file.h"

namespace fs = std::filesystem;
using namespace recur;

namespace {

const fs::path kFixtures = fs::path(RECUR_SOURCE_DIR) / "tests" / "fixtures" / "v1";

ModelFile small_file() {
  TokenCounter words(TokenLevel::words);
  words.add_text("the cat sat on the mat\n");
  TokenCounter chars(TokenLevel::chars);
  chars.add_text("the cat\n");
  ModelFile f;
  f.vocabs.emplace("words", Vocab::build(words));
  f.vocabs.emplace("chars", Vocab::build(chars));
  const std::string in = f.spec.tokens("words", f.vocabs.at("words").size());
  const std::string emb = f.spec.embedding("emb", in, 3);
  RnnConfig rc;
  rc.cell = CellType::gru;
  rc.hidden_size = 4;
  rc.bidirectional = true;
  const std::string rnn = f.spec.rnn("rnn", emb, rc);
  f.spec.linear("out", rnn, 5);
  Rng rng(7);
  f.params = model_init_params<float>(f.spec, rng);
  f.task = R"({"kind":"tag","labels":["O","B-PER"]})";
  f.train_state = R"({"step":12})";
  f.tensors["optim.out.bias.exp_avg"] = Tensor<float>({5}, 0.25f);
  f.tensors["train.state.h"] = Tensor<float>({2, 1, 4}, -1.0f);
  return f;
}

std::vector<std::vector<float>> values(const ModelFile& f) {
  std::vector<std::vector<float>> v;
  model_for_each_param(f.spec, f.params, [&](const std::string&, const Tensor<float>& t, bool) { v.push_back(t.data); });
  return v;
}

// A copy of `from` with one metadata value replaced (removed when value is empty) and, when
// extra_tensor is set, one more tensor.
void rewrite(const std::string& from, const std::string& to, const std::string& key, const std::string& value,
             const std::string& extra_tensor = "") {
  const SafetensorsReader rd = SafetensorsReader::open(from);
  SafetensorsWriter w;
  for (const auto& [k, v] : rd.metadata())
    if (k != key) w.set_metadata(k, v);
  if (!value.empty()) w.set_metadata(key, value);
  for (const auto& name : rd.names()) w.add(name, rd.get<float>(name));
  if (!extra_tensor.empty()) w.add(extra_tensor, Tensor<float>({1}, 0.0f));
  w.write(to);
}

template <typename Fn>
void expect_error(Fn&& fn, std::initializer_list<std::string> parts) {
  test::expect_one_line_error<Error>(fn, parts);
}

using ModelFileTest = test::TempDirTest;

TEST_F(ModelFileTest, RoundTripKeepsEverything) {
  const ModelFile f = small_file();
  const std::string p = path("m.safetensors");
  save_model_file(p, f);
  const FileFormat ff = read_file_format(p);
  EXPECT_EQ(ff.format, "recur-model");
  EXPECT_EQ(ff.version, kModelFileVersion);
  const ModelFile back = load_model_file(p);
  EXPECT_EQ(model_spec_to_json(back.spec), model_spec_to_json(f.spec));
  EXPECT_EQ(values(back), values(f));
  ASSERT_EQ(back.vocabs.size(), 2u);
  EXPECT_EQ(back.vocabs.at("words"), f.vocabs.at("words"));
  EXPECT_EQ(back.vocabs.at("chars"), f.vocabs.at("chars"));
  EXPECT_EQ(back.task, f.task);
  EXPECT_EQ(back.train_state, f.train_state);
  ASSERT_EQ(back.tensors.size(), 2u);
  EXPECT_EQ(back.tensors.at("optim.out.bias.exp_avg").data, f.tensors.at("optim.out.bias.exp_avg").data);
  EXPECT_EQ(back.tensors.at("train.state.h").shape, (Shape{2, 1, 4}));
  // PyTorch's state_dict names for the recurrent layer, reverse direction included.
  const SafetensorsReader rd = SafetensorsReader::open(p);
  EXPECT_TRUE(rd.contains("rnn.weight_hh_l0_reverse"));
  EXPECT_TRUE(rd.contains("out.bias"));
}

TEST_F(ModelFileTest, FormatAndVersionOfTheV1Fixtures) {
  const FileFormat lm = read_file_format((kFixtures / "lm_char.safetensors").string());
  EXPECT_EQ(lm.format, "recur-lm");
  EXPECT_EQ(lm.version, 1);
  const FileFormat tagger = read_file_format((kFixtures / "tagger.safetensors").string());
  EXPECT_EQ(tagger.format, "recur-model");
  EXPECT_EQ(tagger.version, 1);
  // A v1 model file reads as it is; a language-model file is not a model file.
  const ModelFile t = load_model_file((kFixtures / "tagger.safetensors").string());
  EXPECT_GE(t.spec.layer_index("out"), 0);
  EXPECT_TRUE(t.vocabs.count("words"));
  EXPECT_FALSE(t.train_state.empty());
  const std::string lm_path = (kFixtures / "lm_char.safetensors").string();
  expect_error([&] { load_model_file(lm_path); }, {lm_path, "\"format\"", "'recur-lm'", "expected 'recur-model'"});
}

TEST_F(ModelFileTest, SaveRefusesBadModels) {
  ModelFile f = small_file();
  f.tensors["momentum"] = Tensor<float>({1}, 0.0f);
  expect_error([&] { save_model_file(path("a.safetensors"), f); }, {"a.safetensors", "'momentum'", "optim.* or train.*"});
  f = small_file();
  f.vocabs.emplace("labels", f.vocabs.at("words"));
  expect_error([&] { save_model_file(path("b.safetensors"), f); }, {"b.safetensors", "'labels'"});
  f = small_file();
  f.params.layers.back().bias.data[0] = std::nanf("");
  expect_error([&] { save_model_file(path("c.safetensors"), f); }, {"c.safetensors", "NaN"});
  EXPECT_FALSE(fs::exists(path("a.safetensors")) || fs::exists(path("b.safetensors")) || fs::exists(path("c.safetensors")));
}

TEST_F(ModelFileTest, BadFilesGiveOneLineErrors) {
  const std::string good = path("good.safetensors"), bad = path("bad.safetensors");
  save_model_file(good, small_file());
  auto load = [&] { load_model_file(bad); };
  rewrite(good, bad, "format_version", "1");
  EXPECT_NO_THROW(load_model_file(bad));  // version 1 has the same layout
  rewrite(good, bad, "format_version", "3");
  expect_error(load, {bad, "format_version 3", "newer recur"});
  for (const char* v : {"two", "02", "-1", "0", "", "1234567"}) {
    rewrite(good, bad, "format_version", v);
    expect_error(load, {bad, "\"format_version\""});
  }
  rewrite(good, bad, "format", "");
  expect_error(load, {bad, "\"format\"", "missing"});
  rewrite(good, bad, "format", "recur-lm");
  expect_error(load, {bad, "'recur-lm'"});
  rewrite(good, bad, "task", "[1,2]");
  expect_error(load, {bad, "\"task\"", "JSON object"});
  rewrite(good, bad, "train_state", "{");
  expect_error(load, {bad, "\"train_state\"", "JSON"});
  rewrite(good, bad, "vocab.labels", "{}");
  expect_error(load, {bad, "'vocab.labels'", "unknown key"});
  rewrite(good, bad, "extra", "x");
  expect_error(load, {bad, "'extra'", "unknown key"});
  rewrite(good, bad, "model", "");
  expect_error(load, {bad, "\"model\"", "missing"});
  rewrite(good, bad, "", "", "stray.weight");
  expect_error(load, {bad, "'stray.weight'", "unexpected tensor"});
  expect_error([&] { read_file_format(path("absent.safetensors")); }, {"absent.safetensors"});
}

}  // namespace
