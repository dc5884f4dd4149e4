// Library-level tests of show_page.h: the data in the page is what the model computes when it
// is stepped token by token (lm_step, the T = 1 path), the options are checked, and the page
// is replaced whole. tests/test_cli_diag.cpp opens the page in a browser.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "recur/core/error.h"
#include "recur/diag/show_page.h"
#include "recur/model/lm.h"

namespace fs = std::filesystem;
using namespace recur;
using json = nlohmann::json;

namespace {

LmModel small_model(CellType cell, int64_t layers) {
  TokenCounter counter(TokenLevel::chars);
  counter.add_text("hello world\nhow low\n");
  LmModel m;
  m.vocab = Vocab::build(counter);
  m.spec.level = TokenLevel::chars;
  m.spec.mode = TextMode::stream;
  m.spec.lm.vocab_size = m.vocab.size();
  m.spec.lm.embed_size = 4;
  m.spec.lm.rnn.cell = cell;
  m.spec.lm.rnn.input_size = m.spec.lm.input_size();
  m.spec.lm.rnn.hidden_size = 6;
  m.spec.lm.rnn.num_layers = layers;
  Rng rng(7);
  m.params = lm_init_params<float>(m.spec.lm, rng, 0.5);
  return m;
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The JSON the page carries in <script type="application/json" id="recur-data">.
json page_data(const std::string& html) {
  const std::string open = "<script type=\"application/json\" id=\"recur-data\">";
  const size_t a = html.find(open);
  EXPECT_NE(a, std::string::npos);
  const size_t b = html.find("</script>", a);
  EXPECT_NE(b, std::string::npos);
  return json::parse(html.substr(a + open.size(), b - a - open.size()));
}

class ShowPage : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("recur_show_page_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

// Every shown token's h of the picked layer and its top predictions match a token-by-token run
// that starts after a line break, as the page says it reads the text.
TEST_F(ShowPage, ValuesAndPredictionsAreTheModelsStepByStep) {
  const LmModel m = small_model(CellType::lstm, 2);
  const std::string text = "hello world\nhow";
  ShowPageOptions o;
  o.layer = 1;
  o.top = 3;
  const fs::path out = dir_ / "p.html";
  const ShowPageSummary s = write_show_page(m, text, out.string(), o);
  const json d = page_data(slurp(out));
  EXPECT_EQ(s.tokens, 15);  // 11 + line break + 3
  EXPECT_EQ(s.units, 6);
  EXPECT_EQ(s.quantity, "hidden state h of layer 1");
  ASSERT_EQ(d["tokens"].size(), 15u);
  EXPECT_EQ(d["tokens"][11], "\n");
  EXPECT_EQ(d["tokens"][12], "h");
  ASSERT_EQ(d["values"].size(), 6u);
  const double scale = d["scale"].get<double>();

  const LmConfig& cfg = m.spec.lm;
  const int64_t V = cfg.vocab_size, R = cfg.rnn.state_size();
  RnnState<float> state;
  ModelCache<float> cache;
  Tensor<float> logits;
  const ModelSpec graph = m.graph();
  std::vector<int32_t> ids = {m.vocab.id("\n")};
  for (const auto& t : d["tokens"]) ids.push_back(m.vocab.id(t.get<std::string>()));
  std::vector<std::vector<double>> h(6);
  lm_step<float>(graph, m.params, std::span<const int32_t>(&ids[0], 1), state, cache, logits);  // the line break
  for (size_t i = 0; i + 1 < ids.size(); ++i) {
    lm_step<float>(graph, m.params, std::span<const int32_t>(&ids[i + 1], 1), state, cache, logits);
    // state.h [L, B=1, R]: layer 0 is the one picked (--layer 1).
    for (int64_t u = 0; u < R; ++u) {
      h[size_t(u)].push_back(state.h.ptr()[u]);
      EXPECT_NEAR(d["values"][size_t(u)][i].get<double>() / scale, state.h.ptr()[u], 0.6 / scale)
          << "unit " << u << " token " << i;
    }
    // The top 3 of the softmax of this step's logits, most likely first.
    std::vector<double> p(static_cast<size_t>(V));
    const float mx = *std::max_element(logits.ptr(), logits.ptr() + V);
    double sum = 0;
    for (int64_t v = 0; v < V; ++v) sum += p[size_t(v)] = std::exp(double(logits.ptr()[v]) - mx);
    std::vector<int32_t> order(static_cast<size_t>(V));
    for (int32_t v = 0; v < V; ++v) order[size_t(v)] = v;
    std::sort(order.begin(), order.end(), [&](int32_t x, int32_t y) { return p[size_t(x)] > p[size_t(y)]; });
    ASSERT_EQ(d["preds"][i].size(), 3u);
    for (size_t k = 0; k < 3; ++k) {
      const int32_t id = order[k];
      const std::string tok = id == Vocab::eos_id ? std::string(Vocab::eos_token) : m.vocab.token(id);
      EXPECT_EQ(d["preds"][i][k][0], tok) << "token " << i << " rank " << k;
      EXPECT_NEAR(d["preds"][i][k][1].get<double>(), p[size_t(id)] / sum, 0.6e-4) << "token " << i << " rank " << k;
    }
  }
  // The page opens on the unit whose h varies most.
  size_t best = 0;
  double best_var = -1;
  for (size_t u = 0; u < h.size(); ++u) {
    double mean = 0, var = 0;
    for (double x : h[u]) mean += x / double(h[u].size());
    for (double x : h[u]) var += (x - mean) * (x - mean);
    if (var > best_var) best_var = var, best = u;
  }
  EXPECT_EQ(d["best_unit"], best);
  EXPECT_EQ(s.best_unit, int64_t(best));
  // tanh-bounded h: the colour scale is the range it can reach.
  EXPECT_EQ(d["lo"], -1.0);
  EXPECT_EQ(d["hi"], 1.0);
}

TEST_F(ShowPage, GateValuesAndTheirRange) {
  const LmModel m = small_model(CellType::gru, 1);
  ShowPageOptions o;
  o.gate = "n";  // GRU's candidate: a tanh gate
  const fs::path out = dir_ / "g.html";
  const ShowPageSummary s = write_show_page(m, "how low", out.string(), o);
  const json d = page_data(slurp(out));
  EXPECT_EQ(s.quantity, "gate n of layer 1");
  EXPECT_EQ(d["symbol"], "n");
  EXPECT_EQ(d["lo"], -1.0);
  EXPECT_EQ(d["hi"], 1.0);
  o.gate = "z";  // a sigmoid gate: 0..1, and every value inside
  write_show_page(m, "how low", out.string(), o);
  const json z = page_data(slurp(out));
  EXPECT_EQ(z["lo"], 0.0);
  for (const auto& unit : z["values"])
    for (const auto& v : unit) {
      EXPECT_GE(v.get<int64_t>(), 0);
      EXPECT_LE(v.get<int64_t>(), 1000);
    }
}

TEST_F(ShowPage, CutsLongTextsAndSaysSo) {
  const LmModel m = small_model(CellType::rnn_tanh, 1);
  ShowPageOptions o;
  o.max_tokens = 4;
  std::vector<std::string> notes;
  o.note = [&](const std::string& n) { notes.push_back(n); };
  const ShowPageSummary s = write_show_page(m, "hello world", (dir_ / "c.html").string(), o);
  EXPECT_EQ(s.tokens, 4);
  ASSERT_EQ(notes.size(), 1u);
  EXPECT_EQ(notes[0], "showing the first 4 of 11 tokens (--max-tokens)");
  EXPECT_EQ(page_data(slurp(dir_ / "c.html"))["tokens"].size(), 4u);
}

TEST_F(ShowPage, RejectsOptionsThatDoNotFitTheModel) {
  const LmModel lstm = small_model(CellType::lstm, 2), rnn = small_model(CellType::rnn_tanh, 1);
  const std::string out = (dir_ / "x.html").string();
  auto message = [&](const LmModel& m, const std::string& text, const ShowPageOptions& o) {
    try {
      write_show_page(m, text, out, o);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  auto with = [](auto set) {
    ShowPageOptions o;
    set(o);
    return o;
  };
  EXPECT_EQ(message(lstm, "hi", with([](ShowPageOptions& o) { o.layer = 3; })),
            "--layer: got 3, expected 1..2 (0 = the last)");
  EXPECT_EQ(message(lstm, "hi", with([](ShowPageOptions& o) { o.gate = "r"; })),
            "--gate: got r, expected none or a gate of this lstm model (i, f, g, o)");
  EXPECT_EQ(message(rnn, "hi", with([](ShowPageOptions& o) { o.gate = "i"; })),
            "--gate: got i, expected none or a gate of this rnn_tanh model (it has none)");
  EXPECT_EQ(message(lstm, "hi", with([](ShowPageOptions& o) { o.max_tokens = 0; })),
            "--max-tokens: got 0, expected >= 1");
  EXPECT_EQ(message(lstm, "hi", with([](ShowPageOptions& o) { o.top = 0; })), "--top: got 0, expected >= 1");
  EXPECT_EQ(message(lstm, "", {}), "show: the text has no tokens");
  EXPECT_NE(message(lstm, "bad \xff", {}).find("TEXT: invalid UTF-8 at byte 4"), std::string::npos);
  EXPECT_NE(message(lstm, "bad \xff", with([](ShowPageOptions& o) { o.file = "in.txt"; })).find("in.txt: invalid UTF-8"),
            std::string::npos);
  EXPECT_FALSE(fs::exists(out)) << "a failed call must not leave a page";
}

// The page is replaced whole: no temporary file stays, and a directory that cannot take the
// file is named in the error.
TEST_F(ShowPage, WritesThePageWhole) {
  const LmModel m = small_model(CellType::lstm, 1);
  const fs::path out = dir_ / "w.html";
  { std::ofstream(out) << "old"; }
  write_show_page(m, "how", out.string(), {});
  const std::string html = slurp(out);
  EXPECT_EQ(html.rfind("<!DOCTYPE html>", 0), 0u);
  EXPECT_NE(html.find("</html>"), std::string::npos);
  EXPECT_EQ(std::distance(fs::directory_iterator(dir_), fs::directory_iterator{}), 1);
  const std::string missing = (dir_ / "no" / "w.html").string();
  try {
    write_show_page(m, "how", missing, {});
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()).rfind(missing + ": cannot write the page: ", 0), 0u) << e.what();
  }
}

}  // namespace
