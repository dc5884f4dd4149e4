// recur embed (tasks/word_vectors.h): the skip-gram loss's gradients by finite differences, a
// seed's determinism, neighbours on a corpus whose two word groups never meet, the GloVe file
// read back by recur train --embeddings, and one-line errors for bad input.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <algorithm>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "cli_run.h"
#include "gradcheck.h"
#include "recur/core/error.h"
#include "recur/core/random.h"
#include "recur/data/task_data.h"
#include "recur/tasks/word_vectors.h"

namespace fs = std::filesystem;

namespace recur {
namespace {

TEST(WordVectors, SgnsLossGradientsMatchFiniteDifferences) {
  const int64_t D = 7, K = 4;  // the context and three noise words
  Rng rng(5);
  Tensor<double> v({D}), u({K, D}), gv({D}), gu({K, D});
  for (auto& x : v.data) x = rng.uniform(-1, 1);
  for (auto& x : u.data) x = rng.uniform(-1, 1);
  auto loss = [&](Tensor<double>* gvp, Tensor<double>* gup) {
    std::vector<std::span<const double>> us;
    std::vector<std::span<double>> gus;
    Tensor<double> scratch_v({D}), scratch_u({K, D});
    Tensor<double>& a = gvp ? *gvp : scratch_v;
    Tensor<double>& b = gup ? *gup : scratch_u;
    for (int64_t k = 0; k < K; ++k) {
      us.emplace_back(u.ptr() + k * D, size_t(D));
      gus.emplace_back(b.ptr() + k * D, size_t(D));
    }
    return sgns_loss<double>(std::span<const double>(v.data), us, std::span<double>(a.data), gus);
  };
  const double l = loss(&gv, &gu);
  // By hand: -log s(u0.v) - sum log s(-uk.v).
  double want = 0;
  for (int64_t k = 0; k < K; ++k) {
    double dot = 0;
    for (int64_t d = 0; d < D; ++d) dot += u.data[size_t(k * D + d)] * v.data[size_t(d)];
    want += k == 0 ? std::log1p(std::exp(-dot)) : std::log1p(std::exp(dot));
  }
  EXPECT_NEAR(l, want, 1e-12);
  EXPECT_GRADCHECK([&] { return loss(nullptr, nullptr); }, {{"v", &v, &gv}, {"u", &u, &gu}});
}

// Two word groups that only ever share a sentence with their own group.
std::vector<std::vector<std::string>> two_groups(int sentences) {
  const std::vector<std::string> a = {"apple", "pear", "plum", "fig", "lime"}, b = {"car", "bus", "train", "tram", "van"};
  Rng rng(9);
  std::vector<std::vector<std::string>> out;
  for (int i = 0; i < sentences; ++i) {
    const auto& g = i % 2 ? a : b;
    std::vector<std::string> s;
    for (int k = 0; k < 8; ++k) s.push_back(g[rng.below(g.size())]);
    out.push_back(s);
  }
  return out;
}

double cosine(const WordVectors& v, size_t i, size_t j) {
  const int64_t D = v.vectors.dim(1);
  double dot = 0, ni = 0, nj = 0;
  for (int64_t d = 0; d < D; ++d) {
    const double x = v.vectors.data[i * size_t(D) + size_t(d)], y = v.vectors.data[j * size_t(D) + size_t(d)];
    dot += x * y;
    ni += x * x;
    nj += y * y;
  }
  return dot / std::sqrt(ni * nj);
}

TEST(WordVectors, NeighboursComeFromTheirOwnGroupAndASeedRepeats) {
  WordVectorOptions o;
  o.dim = 16;
  o.min_count = 1;
  o.subsample = 0;
  o.epochs = 5;
  const auto corpus = two_groups(400);
  const WordVectors v = train_word_vectors(corpus, o);
  ASSERT_EQ(v.words.size(), 10u);
  auto group = [](const std::string& w) { return w == "apple" || w == "pear" || w == "plum" || w == "fig" || w == "lime"; };
  for (size_t i = 0; i < v.words.size(); ++i) {
    size_t best = i == 0 ? 1 : 0;
    for (size_t j = 0; j < v.words.size(); ++j)
      if (j != i && cosine(v, i, j) > cosine(v, i, best)) best = j;
    EXPECT_EQ(group(v.words[i]), group(v.words[best])) << v.words[i] << "'s nearest is " << v.words[best];
  }
  // The same seed gives the same vectors; another seed others.
  EXPECT_EQ(train_word_vectors(corpus, o).vectors.data, v.vectors.data);
  o.seed = 2;
  EXPECT_NE(train_word_vectors(corpus, o).vectors.data, v.vectors.data);
  // Words under min_count are neither trained nor written; none at all is an error.
  o.min_count = 100000;
  EXPECT_THROW(train_word_vectors(corpus, o), Error);
}

class EmbedCli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("recur_embed_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ec;
    if (!HasFailure()) fs::remove_all(dir_, ec);
  }
  std::string write(const std::string& name, const std::string& text) {
    std::ofstream(dir_ / name) << text;
    return (dir_ / name).string();
  }
  test::CliResult run(const std::string& args) { return test::run_recur(args, dir_); }
  fs::path dir_;
};

TEST_F(EmbedCli, WritesGloveTextThatTrainingReads) {
  std::string conll = "-DOCSTART- -X- O\n\n", text;
  for (const auto& s : two_groups(200)) {
    for (const auto& w : s) {
      conll += w + " NN O\n";
      text += w + " ";
    }
    conll += "\n";
    text += "\n";
  }
  const std::string c = write("train.conll", conll), t = write("text.txt", text);
  const std::string vec = (dir_ / "vec.txt").string();
  test::CliResult r = run("embed " + c + " --conll --dim 8 --min-count 1 --epochs 2 --out " + vec);
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.err.find("1600 tokens in 200 sentences; 10 words seen 1 times or more"), std::string::npos) << r.err;
  // Ten lines of a word and 8 values; the plain text of the same words gives the same counts.
  std::ifstream in(vec);
  std::string line;
  int lines = 0;
  while (std::getline(in, line)) {
    ++lines;
    std::istringstream cells(line);
    std::string w;
    cells >> w;
    int n = 0;
    double x;
    while (cells >> x) ++n;
    EXPECT_EQ(n, 8) << line;
  }
  EXPECT_EQ(lines, 10);
  r = run("embed " + t + " --dim 8 --min-count 1 --epochs 2 --out " + (dir_ / "vec2.txt").string());
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.err.find("1600 tokens in 200 sentences"), std::string::npos) << r.err;
  // recur train reads them as pre-trained vectors.
  r = run("train " + c + " --task tag --embeddings " + vec + " --epochs 1 --hidden 8 --batch 8 --threads 1 --quiet --out " +
          (dir_ / "run").string());
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.err.find("vectors for 10 of"), std::string::npos) << r.err;
  // Bad input: one line each.
  auto one_line = [&](const std::string& args, const std::string& want) {
    const test::CliResult e = run(args);
    EXPECT_NE(e.rc, 0) << args;
    EXPECT_EQ(e.err.rfind("recur: error: ", 0), 0u) << e.err;
    EXPECT_NE(e.err.find(want), std::string::npos) << e.err;
    EXPECT_EQ(std::count(e.err.begin(), e.err.end(), '\n'), 1) << e.err;
  };
  one_line("embed " + (dir_ / "missing.txt").string() + " --out " + vec, "missing.txt");
  one_line("embed " + t + " --dim 0 --out " + vec, "--dim: got 0, expected a size in [1, 65536]");
  one_line("embed " + write("empty.txt", "\n\n") + " --out " + vec, "no word occurs 5 times or more in 0 tokens");
}

// --task-words: the vectors' words are the tokens a classify or seq2seq model reads (split around
// punctuation, lower-cased with --lower as those models do by default), so each finds its row.
TEST_F(EmbedCli, TaskWordsAreTheTokensOfAClassifier) {
  EmbeddingCorpusOptions o;
  o.task_words = true;
  o.lowercase = true;
  const std::string t = write("reviews.txt", "Great phone, LOVED it!\nBad.\n");
  const auto s = read_embedding_corpus({t}, o);
  ASSERT_EQ(s.size(), 2u);
  EXPECT_EQ(s[0], split_words("Great phone, LOVED it!", true));
  EXPECT_EQ(s[0], (std::vector<std::string>{"great", "phone", ",", "loved", "it", "!"}));
  EXPECT_EQ(s[1], (std::vector<std::string>{"bad", "."}));
  o.task_words = false;
  EXPECT_EQ(read_embedding_corpus({t}, o)[0], (std::vector<std::string>{"great", "phone,", "loved", "it!"}));
  // Through the CLI into a classifier: every word of the table has its vector.
  std::string table, text;
  for (int i = 0; i < 60; ++i) {
    table += i % 2 ? "Good movie, really good!\tpos\n" : "Bad movie; really bad.\tneg\n";
    text += i % 2 ? "Good movie, really good!\n" : "Bad movie; really bad.\n";
  }
  const std::string vec = (dir_ / "task.vec").string();
  test::CliResult r = run("embed " + write("text2.txt", text) + " --task-words --lower --dim 4 --min-count 1 --epochs 1 --out " + vec);
  ASSERT_EQ(r.rc, 0) << r.err;
  r = run("train " + write("table.tsv", table) + " --task classify --embeddings " + vec +
          " --epochs 1 --hidden 4 --batch 8 --threads 1 --quiet --out " + (dir_ / "cls").string());
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.err.find("vectors for 8 of 8 words"), std::string::npos) << r.err;  // every word but <unk>, <eos>
  r = run("embed " + t + " --task-words --conll --out " + vec);
  EXPECT_NE(r.rc, 0);
}

}  // namespace
}  // namespace recur
