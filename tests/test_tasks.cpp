// The supervised tasks: metrics against hand-worked cases (conlleval's chunk rules on IOB1 and
// BIO, macro-F1, BLEU), and the CLI end to end on small generated data for every task (train,
// predict, eval, resume; numeric feature input for classify and seq2seq) plus bad inputs that
// must give one error line naming file and line.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "recur/core/error.h"
#include "recur/tasks/metrics.h"
#include "recur/tasks/tasks.h"
#include "recur/train/model_file.h"
#include "recur/data/task_data.h"

#include "cli_run.h"
#include "test_util.h"

namespace fs = std::filesystem;

namespace recur {
namespace {

// ---------------------------------------------------------------- metrics

using Tags = std::vector<std::string>;

TEST(ConllChunks, Iob1AndBioGiveTheSameEntities) {
  // "U.N. official Ekeus heads for Baghdad ." with two adjacent ORG entities at the end.
  const Tags iob1 = {"I-ORG", "O", "I-PER", "I-PER", "O", "I-LOC", "I-ORG", "B-ORG"};
  const Tags bio = {"B-ORG", "O", "B-PER", "I-PER", "O", "B-LOC", "B-ORG", "B-ORG"};
  const std::vector<Chunk> want = {{"ORG", 0, 1}, {"PER", 2, 4}, {"LOC", 5, 6}, {"ORG", 6, 7}, {"ORG", 7, 8}};
  EXPECT_EQ(conll_chunks(iob1), want);
  EXPECT_EQ(conll_chunks(bio), want);
}

TEST(ConllChunks, IllFormedSequencesFollowConlleval) {
  // An I- after O starts a chunk; a type change inside starts another; E-/S- end chunks.
  EXPECT_EQ(conll_chunks({"O", "I-PER", "I-LOC", "O"}), (std::vector<Chunk>{{"PER", 1, 2}, {"LOC", 2, 3}}));
  EXPECT_EQ(conll_chunks({"B-PER", "E-PER", "S-LOC"}), (std::vector<Chunk>{{"PER", 0, 2}, {"LOC", 2, 3}}));
  EXPECT_TRUE(conll_chunks({"O", "O"}).empty());
}

TEST(TagEvalTest, CountsLikeConlleval) {
  TagEval e;
  // gold: PER(0,2) LOC(3,4); predicted: PER(0,1) LOC(3,4) MISC(4,5)
  e.add({"B-PER", "I-PER", "O", "B-LOC", "O"}, {"B-PER", "O", "O", "B-LOC", "B-MISC"});
  EXPECT_EQ(e.all.gold, 2);
  EXPECT_EQ(e.all.predicted, 3);
  EXPECT_EQ(e.all.correct, 1);
  EXPECT_NEAR(e.all.f1(), 2 * (1.0 / 3) * 0.5 / (1.0 / 3 + 0.5), 1e-12);
  EXPECT_EQ(e.tokens, 5);
  EXPECT_EQ(e.tokens_correct, 3);
  EXPECT_THROW(e.add({"O"}, {"O", "O"}), Error);
}

TEST(ClassEvalTest, AccuracyMacroF1AndConfusion) {
  ClassEval c({"a", "b", "c"});
  c.add(0, 0);
  c.add(0, 1);
  c.add(1, 1);
  c.add(2, 2);
  EXPECT_DOUBLE_EQ(c.accuracy(), 0.75);
  // F1: a 2*1/(2+1) = 2/3, b 2*1/(1+2) = 2/3, c 1
  EXPECT_NEAR(c.macro_f1(), (2.0 / 3 + 2.0 / 3 + 1) / 3, 1e-12);
  EXPECT_EQ(c.confusion[0][1], 1);
  EXPECT_NE(c.report().find("confusion"), std::string::npos);
}

// sacreBLEU's algorithm re-implemented in Python (tools/gen_bleu_golden.py; sacrebleu itself is
// not installable here): 13a tokens and corpus statistics must be equal, BLEU to 1e-12.
nlohmann::json bleu_golden() {
  std::ifstream f(std::string(RECUR_GOLDEN_DIR) + "/bleu/bleu.json");
  EXPECT_TRUE(f.good()) << "tests/golden/bleu/bleu.json";
  return nlohmann::json::parse(f);
}

TEST(Bleu13a, TokenizerMatchesSacrebleu) {
  const nlohmann::json g = bleu_golden();
  ASSERT_GE(g["tokenize_13a"].size(), 20u);
  for (const auto& c : g["tokenize_13a"])
    EXPECT_EQ(tokenize_13a(c["text"].get<std::string>()), c["tokens"].get<std::vector<std::string>>()) << c["text"];
}

TEST(Bleu13a, CorpusBleuMatchesSacrebleu) {
  const nlohmann::json g = bleu_golden();
  ASSERT_GE(g["corpus"].size(), 10u);
  for (const auto& c : g["corpus"]) {
    SCOPED_TRACE(c["name"].get<std::string>());
    CorpusBleu b({.lowercase = c["lowercase"].get<bool>(), .unknown = c["unknown"].get<std::string>()});
    const auto hyps = c["hypotheses"].get<std::vector<std::string>>();
    const auto refs = c["references"].get<std::vector<std::vector<std::string>>>();
    for (size_t i = 0; i < hyps.size(); ++i) b.add(hyps[i], refs[i]);
    for (int n = 0; n < 4; ++n) {
      EXPECT_EQ(b.correct[n], c["correct"][size_t(n)].get<int64_t>()) << "order " << n + 1;
      EXPECT_EQ(b.total[n], c["total"][size_t(n)].get<int64_t>()) << "order " << n + 1;
    }
    EXPECT_EQ(b.sys_len, c["sys_len"].get<int64_t>());
    EXPECT_EQ(b.ref_len, c["ref_len"].get<int64_t>());
    EXPECT_EQ(b.exact, c["exact"].get<int64_t>());
    EXPECT_EQ(b.segments, int64_t(hyps.size()));
    const double want = c["bleu"].get<double>() / 100;
    EXPECT_NEAR(b.bleu(), want, 1e-12 * std::max(1.0, want));
  }
}

TEST(Bleu13a, NoReferencesIsAnError) {
  CorpusBleu b;
  EXPECT_THROW(b.add("a b", {}), Error);
}

// Singleton word dropout's two steps: counting the training words, then replacing the positions
// of words seen once, each with probability p; specials and other words are never touched.
TEST(WordDropout, OnlyWordsSeenOnceBecomeUnknown) {
  const int64_t V = 8;
  std::vector<int64_t> counts;
  TaskExample a, b;
  a.words = {2, 3, 3, 4, 1};  // 1 = <eos>
  b.words = {5, 4, 0, 6};     // 0 = <unk>
  count_words(a, V, counts);
  count_words(b, V, counts);
  EXPECT_EQ(counts, (std::vector<int64_t>{1, 1, 1, 2, 2, 1, 1, 0}));
  const std::vector<int32_t> ids{2, 3, 5, 1, 0, 6, 4, 7, 2};
  Rng rng(3);
  std::vector<int32_t> all = ids;
  EXPECT_EQ(drop_singleton_words(all, counts, 1.0, rng), 4);
  EXPECT_EQ(all, (std::vector<int32_t>{0, 3, 0, 1, 0, 0, 4, 7, 0}));
  // p = 0 draws nothing: the generator is where it was.
  std::vector<int32_t> none = ids;
  Rng before = rng;
  EXPECT_EQ(drop_singleton_words(none, counts, 0.0, rng), 0);
  EXPECT_EQ(none, ids);
  EXPECT_EQ(rng.uniform(), before.uniform());
  // p = 0.3 over 10,000 singleton positions: the count is binomial (sd 46), and the same seed
  // replaces the same positions.
  std::vector<int32_t> many(10000, 2), again = many;
  Rng r1(9), r2(9);
  const int64_t n = drop_singleton_words(many, counts, 0.3, r1);
  EXPECT_GT(n, 2800);
  EXPECT_LT(n, 3200);
  EXPECT_EQ(drop_singleton_words(again, counts, 0.3, r2), n);
  EXPECT_EQ(many, again);
  std::vector<int32_t> bad = ids;
  EXPECT_THROW(drop_singleton_words(bad, counts, 1.5, rng), Error);
  TaskExample c;
  c.words = {9};
  c.line = 7;
  try {
    count_words(c, V, counts);
    FAIL() << "an id outside the vocabulary was counted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("input line 7: word id 9 outside the vocabulary of 8"), std::string::npos) << e.what();
  }
}

TEST(SplitWords, FrenchSpacesAndPunctuation) {
  EXPECT_EQ(split_words("Cours\u202f!", true), (std::vector<std::string>{"cours", "!"}));
  EXPECT_EQ(split_words("Cours !", true), (std::vector<std::string>{"cours", "!"}));
  EXPECT_EQ(split_words("I don't know, Tom.", true), (std::vector<std::string>{"i", "don't", "know", ",", "tom", "."}));
  EXPECT_EQ(split_words("\u00abOui\u00bb", false), (std::vector<std::string>{"\u00ab", "Oui", "\u00bb"}));
}

// ---------------------------------------------------------------- CLI

using Result = recur::test::CliResult;
using recur::test::slurp;

class CliTasks : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("recur_cli_tasks_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ec;
    if (!HasFailure()) fs::remove_all(dir_, ec);
  }
  std::string write(const std::string& name, const std::string& bytes) {
    std::ofstream(dir_ / name, std::ios::binary) << bytes;
    return (dir_ / name).string();
  }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  Result run(const std::string& args) { return recur::test::run_recur(args, dir_); }
  void expect_one_line_error(const std::string& args, const std::string& needle) {
    SCOPED_TRACE(args);
    const Result r = run(args);
    EXPECT_NE(r.rc, 0);
    ASSERT_FALSE(r.err.empty());
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_EQ(r.err.rfind("recur: error: ", 0), 0u) << r.err;
    EXPECT_NE(r.err.find(needle), std::string::npos) << "expected \"" << needle << "\" in: " << r.err;
  }
  // Steps of the metrics lines of `type`, in file order.
  std::vector<int64_t> steps(const std::string& run_dir, const std::string& type) {
    std::vector<int64_t> out;
    std::istringstream in(slurp(fs::path(run_dir) / "metrics.jsonl"));
    std::string line;
    while (std::getline(in, line)) {
      const auto j = nlohmann::json::parse(line);
      if (j.at("type") == type) out.push_back(j.at("step").get<int64_t>());
    }
    return out;
  }
  static std::string tiny() { return "--hidden 16 --embed 8 --batch 8 --threads 1 --log-every 5 --quiet "; }
  fs::path dir_;
};

// Deterministic pseudo-random stream for generated data.
struct Lcg {
  uint32_t x = 12345;
  uint32_t next(uint32_t n) { return ((x = x * 1103515245u + 12345u) >> 16) % n; }
};

std::string classify_data(int n, bool csv) {
  const char* pos[] = {"good", "great", "fine"};
  const char* neg[] = {"bad", "awful", "poor"};
  const char* fill[] = {"the", "movie", "was", "a", "plot", "very"};
  Lcg r;
  std::string s = csv ? "text,label\n" : "";
  for (int i = 0; i < n; ++i) {
    const bool y = r.next(2);
    std::string t;
    for (uint32_t k = 0, m = 1 + r.next(4); k < m; ++k) t += std::string(fill[r.next(6)]) + " ";
    t += y ? pos[r.next(3)] : neg[r.next(3)];
    s += csv ? "\"" + t + "\"," + (y ? "pos" : "neg") + "\n" : t + "\t" + (y ? "pos" : "neg") + "\n";
  }
  return s;
}

std::string tag_data(int n) {
  const char* names[] = {"Smith", "Jones", "Lee"};
  const char* places[] = {"Paris", "Rome", "Oslo"};
  Lcg r;
  std::string s = "-DOCSTART- -X- O\n\n";
  for (int i = 0; i < n; ++i) {
    for (uint32_t k = 0, m = 1 + r.next(3); k < m; ++k) {
      const uint32_t c = r.next(3);
      if (c == 0) s += std::string("mr X O\n") + names[r.next(3)] + " X B-PER\n";
      else if (c == 1) s += std::string("in X O\n") + places[r.next(3)] + " X B-LOC\n";
      else s += "the X O\n";
    }
    s += "\n";
  }
  return s;
}

std::string pair_data(int n) {
  const char* d[] = {"zero", "one", "two", "three", "four"};
  Lcg r;
  std::string s;
  for (int i = 0; i < n; ++i) {
    std::vector<std::string> w;
    for (uint32_t k = 0, m = 1 + r.next(3); k < m; ++k) w.push_back(d[r.next(5)]);
    std::string a, b;
    for (size_t k = 0; k < w.size(); ++k) a += (k ? " " : "") + w[k];
    for (size_t k = w.size(); k-- > 0;) b += w[k] + (k ? " " : "");
    s += a + "\t" + b + "\n";
  }
  return s;
}

TEST_F(CliTasks, ClassifyTrainPredictEvalResume) {
  const std::string data = write("train.tsv", classify_data(200, false));
  Result r = run("train " + data + " --task classify --bidirectional --epochs 2 --out " + path("run") + " " + tiny());
  ASSERT_EQ(r.rc, 0) << r.err;
  ASSERT_TRUE(fs::exists(path("run/last.safetensors")));
  r = run("classify " + path("run/last.safetensors") + " 'the movie was good' 'very bad'");
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("neg=0."), std::string::npos) << r.out;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 2);
  r = run("eval " + path("run/last.safetensors") + " " + data);
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("accuracy"), std::string::npos);
  EXPECT_NE(r.out.find("macro-F1"), std::string::npos);
  EXPECT_NE(r.out.find("confusion"), std::string::npos);
  // The run directory is checked before anything is read (shared with the language model's loop).
  expect_one_line_error("train " + data + " --task classify --epochs 1 --out " + path("run") + " " + tiny(),
                        "already holds a run");
  expect_one_line_error("train " + data + " --task classify --epochs 1 --out " + data + " " + tiny(),
                        "is not a directory");
  // Resume to 3 epochs: the step count goes on and no step is logged twice.
  const auto before = steps(path("run"), "valid");
  r = run("train " + data + " --resume --epochs 3 --out " + path("run") + " " + tiny());
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.err.find("resumed from"), std::string::npos) << r.err;
  const auto after = steps(path("run"), "valid");
  ASSERT_EQ(after.size(), before.size() + 1);
  EXPECT_GT(after.back(), before.back());
  // Resuming on other data is refused rather than silently changing the run.
  const std::string other = write("other.tsv", classify_data(150, false));
  expect_one_line_error("train " + other + " --resume --epochs 4 --out " + path("run") + " " + tiny(),
                        "resuming needs the same training data");
  // A CSV with a header, binary (sigmoid) output, stdin input.
  const std::string csv = write("train.csv", classify_data(120, true));
  r = run("train " + csv + " --task classify --binary --epochs 1 --out " + path("bin") + " " + tiny());
  ASSERT_EQ(r.rc, 0) << r.err;
  r = run("classify " + path("bin/last.safetensors") + " < " + data);
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 200);
}

// recur classify / eval --ensemble: the members' class probabilities averaged, each member
// reading the text through its own vocabulary (B knows words A lacks, C is a sigmoid model);
// the ensemble's loss is that of the averaged distribution, and one model alone scores as
// evaluate_task scores it; members that cannot be averaged are refused naming the file.
TEST_F(CliTasks, ClassifyEnsembleAveragesItsMembers) {
  const std::string data = write("train.tsv", classify_data(200, false));
  const std::string more = write("more.tsv", classify_data(200, false) + "a superb plot\tpos\nsuperb\tpos\n"
                                                                            "dreadful\tneg\nthe dreadful movie\tneg\n");
  ASSERT_EQ(run("train " + data + " --task classify --epochs 1 --out " + path("a") + " " + tiny()).rc, 0);
  ASSERT_EQ(run("train " + more + " --task classify --bidirectional --pool max --epochs 1 --seed 2 --out " +
                path("b") + " " + tiny()).rc, 0);
  ASSERT_EQ(run("train " + data + " --task classify --binary --epochs 1 --seed 3 --out " + path("c") + " " + tiny()).rc, 0);
  const std::string A = path("a/last.safetensors"), B = path("b/last.safetensors"), C = path("c/last.safetensors");
  const std::string texts = " 'a superb plot' 'very bad' 'the dreadful movie was good'";
  // [text][label] probabilities and labels of `recur classify ARGS --json`.
  auto classify = [&](const std::string& args, std::vector<std::string>* labels = nullptr) {
    const Result r = run("classify " + args + " --json");
    EXPECT_EQ(r.rc, 0) << r.err;
    std::vector<std::vector<double>> out;
    std::istringstream in(r.out);
    for (std::string line; std::getline(in, line);) {
      const auto j = nlohmann::json::parse(line);
      out.push_back({j.at("probabilities").at("neg").get<double>(), j.at("probabilities").at("pos").get<double>()});
      if (labels) labels->push_back(j.at("label").get<std::string>());
    }
    return out;
  };
  const auto pa = classify(A + texts), pb = classify(B + texts), pc = classify(C + texts);
  std::vector<std::string> labels;
  const auto pe = classify(A + " --ensemble " + B + " --ensemble " + C + texts, &labels);
  ASSERT_EQ(pe.size(), 3u);
  ASSERT_EQ(pa.size(), 3u);
  ASSERT_EQ(pb.size(), 3u);
  ASSERT_EQ(pc.size(), 3u);
  bool members_differ = false;
  for (size_t i = 0; i < 3; ++i) {
    for (size_t c = 0; c < 2; ++c) {
      EXPECT_NEAR(pe[i][c], (pa[i][c] + pb[i][c] + pc[i][c]) / 3, 1e-12) << "text " << i << " label " << c;
      members_differ |= std::abs(pa[i][c] - pb[i][c]) > 1e-3;
    }
    EXPECT_EQ(labels[i], pe[i][1] > pe[i][0] ? "pos" : "neg");
  }
  EXPECT_TRUE(members_differ) << "the members should be different models";
  // A comma-separated list is the same ensemble.
  EXPECT_EQ(classify(A + " --ensemble " + B + "," + C + texts), pe);

  // eval: accuracy and loss of the averaged probabilities of the file's texts.
  const auto pf = classify(A + " --ensemble " + B + "," + C + " --file " + data);
  std::vector<std::string> gold;
  {
    std::istringstream in(classify_data(200, false));
    for (std::string line; std::getline(in, line);) gold.push_back(line.substr(line.find('\t') + 1));
  }
  ASSERT_EQ(pf.size(), gold.size());
  double loss = 0;
  int64_t right = 0;
  for (size_t i = 0; i < gold.size(); ++i) {
    const size_t g = gold[i] == "pos" ? 1 : 0;
    loss -= std::log(pf[i][g]);
    right += (pf[i][1] > pf[i][0]) == (g == 1);
  }
  Result r = run("eval " + A + " " + data + " --json --ensemble " + B + " --ensemble " + C);
  ASSERT_EQ(r.rc, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j.at("ensemble").get<int64_t>(), 3);
  EXPECT_NEAR(j.at("value").get<double>(), double(right) / double(gold.size()), 1e-12);
  EXPECT_NEAR(j.at("loss").get<double>(), loss / double(gold.size()), 1e-9);
  r = run("eval " + A + " " + data + " --ensemble " + B);
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("ensemble    2 models"), std::string::npos) << r.out;

  // One model as an ensemble scores as the model itself (the loss in double from float logits).
  const TaskModel a = load_task_checkpoint(A).model;
  const auto ex = encode_task_examples(a, read_task_file(a, data, true), true, data);
  const TaskEvalResult single = evaluate_task(a, ex, {});
  const std::vector<TaskModel> one{a};
  const std::vector<std::vector<TaskExample>> one_ex{ex};
  const TaskEvalResult as_ensemble = evaluate_ensemble(one, one_ex, {});
  EXPECT_NEAR(as_ensemble.loss.mean(), single.loss.mean(), 1e-5 * single.loss.mean());
  EXPECT_EQ(as_ensemble.loss.count, single.loss.count);
  EXPECT_EQ(as_ensemble.metric, single.metric);

  // Members that cannot be averaged.
  const std::string three = write("three.tsv", classify_data(60, false) + "so so\tmixed\n");
  ASSERT_EQ(run("train " + three + " --task classify --epochs 1 --out " + path("d") + " " + tiny()).rc, 0);
  expect_one_line_error("classify " + A + " --ensemble " + path("d/last.safetensors") + " 'good'",
                        path("d/last.safetensors") + " has the labels [mixed neg pos]");
  ASSERT_EQ(run("train " + write("tags.txt", tag_data(20)) + " --task tag --epochs 1 --out " + path("t") + " " + tiny()).rc, 0);
  expect_one_line_error("eval " + A + " " + data + " --ensemble " + path("t/last.safetensors"),
                        "members must be classify models; " + path("t/last.safetensors") + " is a tag model");
  expect_one_line_error("eval " + path("t/last.safetensors") + " " + path("tags.txt") + " --ensemble " + A,
                        "--ensemble: for classify models");
  expect_one_line_error("classify " + A + " --ensemble " + data + " 'good'", "train.tsv");
  ASSERT_EQ(run("train " + data + " --task classify --keep-case --epochs 1 --out " + path("k") + " " + tiny()).rc, 0);
  expect_one_line_error("classify " + A + " --ensemble " + path("k/last.safetensors") + " 'good'",
                        "reads its input otherwise than");
}

// --pool max / mean: the head reads the rnn's outputs pooled over time. The model file says so,
// classify and eval read it back, a resumed run keeps it, and the flag is refused where it has
// no meaning.
TEST_F(CliTasks, ClassifyPooledOverTime) {
  const std::string data = write("train.tsv", classify_data(200, false));
  for (const std::string mode : {"max", "mean"}) {
    const std::string run_dir = path("pool_" + mode);
    Result r = run("train " + data + " --task classify --bidirectional --pool " + mode + " --epochs 1 --out " + run_dir +
                   " " + tiny());
    ASSERT_EQ(r.rc, 0) << r.err;
    r = run("info " + run_dir + "/last.safetensors");
    ASSERT_EQ(r.rc, 0) << r.err;
    EXPECT_NE(r.out.find("pool(pool " + mode + ")"), std::string::npos) << r.out;
    r = run("classify " + run_dir + "/last.safetensors 'the movie was good'");
    ASSERT_EQ(r.rc, 0) << r.err;
    EXPECT_NE(r.out.find("neg=0."), std::string::npos) << r.out;
    r = run("eval " + run_dir + "/last.safetensors " + data);
    ASSERT_EQ(r.rc, 0) << r.err;
    EXPECT_NE(r.out.find("accuracy"), std::string::npos) << r.out;
    r = run("train " + data + " --resume --epochs 2 --out " + run_dir + " " + tiny());
    ASSERT_EQ(r.rc, 0) << r.err;
    r = run("info " + run_dir + "/last.safetensors");
    EXPECT_NE(r.out.find("pool(pool " + mode + ")"), std::string::npos) << r.out;
  }
  // Without --pool the head reads the final state, as before.
  Result r = run("train " + data + " --task classify --epochs 1 --out " + path("last") + " " + tiny());
  ASSERT_EQ(r.rc, 0) << r.err;
  r = run("info " + path("last/last.safetensors"));
  EXPECT_EQ(r.out.find("pool("), std::string::npos) << r.out;
  expect_one_line_error("train " + write("t.txt", tag_data(20)) + " --task tag --pool max --out " + path("t"),
                        "--pool: does not apply to --task tag");
  expect_one_line_error("train " + data + " --task classify --pool sum --out " + path("s"), "--pool");
  expect_one_line_error("train " + data + " --task classify --init-from " + path("last/last.safetensors") +
                            " --pool max --out " + path("i"),
                        "--pool: not with --init-from");
}

// --word-dropout (singleton dropout): the words seen once are read as <unk> at some of their
// training occurrences. It changes training, draws nothing when 0 (the same losses as without
// the flag), resumes mid-epoch to the same losses as one run (its draws come from the saved
// dropout generator), and is refused where it means nothing.
TEST_F(CliTasks, WordDropoutReplacesSingletonsWhileTraining) {
  std::string text = tag_data(120);
  for (int i = 0; i < 20; ++i) text += "mr X O\nZorkov" + std::to_string(i) + " X B-PER\n\n";
  const std::string data = write("train.txt", text);
  const std::string opts =
      " --task tag --valid-fraction 0 --dropout 0.2 --batch 16 --hidden 16 --embed 8 --threads 1 --log-every 5";
  Result r = run("train " + data + opts + " --word-dropout 0.5 --steps 30 --out " + path("wd"));
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE((r.out + r.err).find("--word-dropout 0.5: 20 words of the vocabulary's"), std::string::npos) << r.err;
  ASSERT_EQ(run("train " + data + opts + " --quiet --steps 30 --out " + path("off")).rc, 0);
  ASSERT_EQ(run("train " + data + opts + " --quiet --word-dropout 0 --steps 30 --out " + path("zero")).rc, 0);
  auto losses = [&](const std::string& d) { return recur::test::metric_losses(d); };
  ASSERT_EQ(losses(path("wd")).size(), 6u);
  EXPECT_EQ(losses(path("off")), losses(path("zero")));
  EXPECT_NE(losses(path("off")), losses(path("wd")));
  ASSERT_EQ(run("train " + data + opts + " --quiet --word-dropout 0.5 --steps 12 --out " + path("two")).rc, 0);
  r = run("train " + data + opts + " --quiet --steps 30 --resume --out " + path("two"));
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(losses(path("wd")), losses(path("two")));
  expect_one_line_error("train " + data + " --task lm --word-dropout 0.5 --out " + path("lm"),
                        "--word-dropout: does not apply to --task lm");
  expect_one_line_error("train " + data + " --task tag --word-dropout 1.5 --out " + path("p"),
                        "--word-dropout: got 1.5, expected a probability in [0, 1]");
  expect_one_line_error("train " + data + " --task classify --features --word-dropout 0.5 --out " + path("f"),
                        "--word-dropout: got 0.5, expected a word task on tokens, not --features");
}

TEST_F(CliTasks, TagTrainPredictEvalWithCharacters) {
  const std::string data = write("train.txt", tag_data(120));
  Result r = run("train " + data + " --task tag --char-rnn --bidirectional --epochs 2 --out " + path("run") + " " + tiny());
  ASSERT_EQ(r.rc, 0) << r.err;
  r = run("tag " + path("run/last.safetensors") + " " + data);
  ASSERT_EQ(r.rc, 0) << r.err;
  // Every line comes back, a tag appended: the document separator first (tagged O), its blank
  // line, then the token lines.
  ASSERT_EQ(r.out.rfind("-DOCSTART- -X- O O\n\n", 0), 0u) << r.out.substr(0, 80);
  const std::string first = r.out.substr(std::string("-DOCSTART- -X- O O\n\n").size());
  EXPECT_EQ(first.rfind("mr X O ", 0) == 0 || first.rfind("in X O ", 0) == 0 || first.rfind("the X O ", 0) == 0, true)
      << first.substr(0, 80);
  r = run("eval " + path("run/last.safetensors") + " " + data);
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("entities    precision"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("accuracy"), std::string::npos);
  // A token-only file can be tagged too.
  const std::string plain = write("plain.txt", "mr\nSmith\nin\nRome\n\nthe\n");
  r = run("tag " + path("run/last.safetensors") + " " + plain);
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 7);  // 5 tokens, 2 sentence ends
  // --lower-words: the model file says so, the output keeps the words as written, and the flag
  // is refused where it cannot apply.
  r = run("train " + data + " --task tag --char-rnn --lower-words --epochs 1 --out " + path("lower") + " " + tiny());
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_TRUE(load_task_checkpoint(path("lower/last.safetensors")).model.task.lower_words);
  const std::string cased = write("cased.txt", "Mr\nSMITH\n");
  r = run("tag " + path("lower/last.safetensors") + " " + cased);
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(r.out.rfind("Mr ", 0), 0u) << r.out;
  EXPECT_NE(r.out.find("\nSMITH "), std::string::npos) << r.out;
  r = run("train " + data + " --task classify --lower-words --out " + path("x") + " " + tiny());
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.err.find("--lower-words: does not apply to --task classify"), std::string::npos) << r.err;
  r = run("train " + data + " --task tag --init-from " + path("run/last.safetensors") + " --lower-words --out " + path("y"));
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.err.find("--lower-words: not with --init-from"), std::string::npos) << r.err;
}

// --char-rnn for a classifier: each word's characters (a BiLSTM over them) join its embedding,
// so two words the vocabulary does not know read differently when spelt differently; the model
// file says so, classify, eval, a resumed run and an ensemble with a word-only member read it
// back, and it is refused with --features and in a model file of a task that has no words.
TEST_F(CliTasks, ClassifyWithCharacters) {
  const std::string data = write("train.tsv", classify_data(200, false));
  Result r = run("train " + data + " --task classify --char-rnn --char-embed 4 --char-hidden 4 --bidirectional --pool max "
                 "--epochs 2 --out " + path("chr") + " " + tiny());
  ASSERT_EQ(r.rc, 0) << r.err;
  ASSERT_EQ(run("train " + data + " --task classify --bidirectional --pool max --epochs 2 --out " + path("wrd") + " " +
                tiny()).rc, 0);
  const std::string C = path("chr/last.safetensors"), W = path("wrd/last.safetensors");
  r = run("info " + C);
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("char_rnn(rnn lstm 1x4 bi)"), std::string::npos) << r.out;
  {
    const TaskCheckpoint ck = load_task_checkpoint(C);
    EXPECT_TRUE(ck.model.task.char_rnn);
    EXPECT_GT(ck.model.chars.size(), 10);
  }
  // Neither "goodish" nor "badish" is a training word: both are <unk> to the word vocabulary.
  auto probs = [&](const std::string& model, const std::string& text) {
    const Result c = run("classify " + model + " '" + text + "' --json");
    EXPECT_EQ(c.rc, 0) << c.err;
    const size_t at = c.out.find("\"probabilities\"");
    EXPECT_NE(at, std::string::npos) << c.out;
    return at == std::string::npos ? c.out : c.out.substr(at);
  };
  EXPECT_NE(probs(C, "the movie was goodish"), probs(C, "the movie was badish"));
  EXPECT_EQ(probs(W, "the movie was goodish"), probs(W, "the movie was badish"));
  r = run("eval " + C + " " + data + " --json");
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("\"metric\":\"accuracy\""), std::string::npos) << r.out;
  r = run("eval " + C + " " + data + " --ensemble " + W + " --json");
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("\"ensemble\":2"), std::string::npos) << r.out;
  r = run("train " + data + " --resume --epochs 3 --out " + path("chr") + " " + tiny());
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_TRUE(load_task_checkpoint(C).model.task.char_rnn);
  const std::string feats = write("f.csv", "0.5,1\n0.25,0\n");
  expect_one_line_error("train " + feats + " --task classify --features --char-rnn --out " + path("f"),
                        "--char-rnn: got true, expected a word task on tokens (classify, tag), not --features");
  for (const std::string task : {"classify", "tag"}) {
    const std::string file = task == "tag" ? write("t.txt", tag_data(20)) : data;
    expect_one_line_error("train " + file + " --task " + task + " --char-embed 4 --out " + path("e" + task),
                          "--char-embed: got 4, expected with --char-rnn");
    expect_one_line_error("train " + file + " --task " + task + " --char-hidden 6 --out " + path("h" + task),
                          "--char-hidden: got 6, expected with --char-rnn");
  }
  // A translation model whose file claims characters: refused by name, not read with an input it lacks.
  ASSERT_EQ(run("train " + write("pairs.txt", pair_data(60)) + " --task seq2seq --epochs 1 --out " + path("s2s") + " " +
                tiny()).rc, 0);
  ModelFile f = load_model_file(path("s2s/last.safetensors"));
  const std::string no_chars = "\"char_rnn\":false";
  const size_t at = f.task.find(no_chars);
  ASSERT_NE(at, std::string::npos) << f.task;
  f.task.replace(at, no_chars.size(), "\"char_rnn\":true");
  save_model_file(path("s2s_chars.safetensors"), f);
  test::expect_one_line_error<FormatError>([&] { load_task_checkpoint(path("s2s_chars.safetensors")); },
                                           {"s2s_chars.safetensors", "\"char_rnn\"", "false for a seq2seq model"});
}

TEST_F(CliTasks, ResumeMidEpochLogsTheSameLossesAsOneRun) {
  const std::string data = write("train.txt", tag_data(120));
  const std::string opts = " --task tag --dropout 0.2 --batch 16 --hidden 16 --embed 8 --threads 1 --log-every 5 --quiet";
  ASSERT_EQ(run("train " + data + opts + " --steps 30 --out " + path("one")).rc, 0);
  ASSERT_EQ(run("train " + data + opts + " --steps 12 --out " + path("two")).rc, 0);
  const Result r = run("train " + data + opts + " --steps 30 --resume --out " + path("two"));
  ASSERT_EQ(r.rc, 0) << r.err;
  auto losses = [&](const std::string& d) { return recur::test::metric_losses(d); };
  EXPECT_EQ(losses(path("one")), losses(path("two")));
  EXPECT_EQ(losses(path("one")).size(), 6u);
}

TEST_F(CliTasks, Seq2seqTrainTranslateGreedyAndBeam) {
  const std::string data = write("pairs.txt", pair_data(200));
  Result r = run("train " + data + " --task seq2seq --bidirectional --epochs 2 --out " + path("run") + " " + tiny());
  ASSERT_EQ(r.rc, 0) << r.err;
  r = run("translate " + path("run/last.safetensors") + " 'one two' 'three'");
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 2);
  r = run("translate " + path("run/last.safetensors") + " --beam 3 --length-penalty 0.7 'one two'");
  ASSERT_EQ(r.rc, 0) << r.err;
  r = run("eval " + path("run/last.safetensors") + " " + data + " --beam 2");
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("BLEU"), std::string::npos);
  EXPECT_NE(r.out.find("exact match"), std::string::npos);
}

// A seq2seq model exported to int8 (and bf16) translates through its compressed weights by
// default, and in any precision on request; the export holds no training state.
TEST_F(CliTasks, Seq2seqExportTranslatesInEveryPrecision) {
  const std::string data = write("pairs.txt", pair_data(200));
  Result r = run("train " + data + " --task seq2seq --bidirectional --attention general --epochs 2 --out " + path("run") + " " + tiny());
  ASSERT_EQ(r.rc, 0) << r.err;
  for (const char* p : {"int8", "bf16"}) {
    const std::string out = path(std::string("m_") + p + ".safetensors");
    r = run("export " + path("run/last.safetensors") + " " + out + " --precision " + p);
    ASSERT_EQ(r.rc, 0) << r.err;
    EXPECT_NE(r.err.find(std::string("wrote ") + out + ": " + p + " seq2seq model"), std::string::npos) << r.err;
    EXPECT_LT(std::filesystem::file_size(out), std::filesystem::file_size(path("run/last.safetensors")) / 3);
    for (const char* flags : {"", "--precision f32", "--precision int8 --beam 3"}) {
      r = run("translate " + out + " " + flags + " 'one two' 'three'");
      ASSERT_EQ(r.rc, 0) << p << " " << flags << ": " << r.err;
      EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 2) << r.out;
    }
  }
  r = run("translate " + path("run/last.safetensors") + " --precision bf16 'one two'");
  ASSERT_EQ(r.rc, 0) << r.err;
  r = run("translate " + path("run/last.safetensors") + " --precision int4 'one two'");
  EXPECT_EQ(r.rc, 2) << r.err;
  EXPECT_NE(r.err.find("--precision: got 'int4', expected f32, bf16 or int8"), std::string::npos) << r.err;
  r = run("export " + path("run/last.safetensors") + " " + path("run/last.safetensors") + " --precision int8");
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.err.find("would replace the model it reads"), std::string::npos) << r.err;
}

// BLEU's references are the file's texts, all targets of the same source together, lowercased
// when the model lowercases. The v1 fixture model (lowercasing) translates "red green" to
// "green red", "blue black white" to "white blue red black" and "white red blue" to "blue blue
// red black" (tests/fixtures/v1/seq2seq.expected and test_checkpoint_v1).
TEST_F(CliTasks, Seq2seqBleuGroupsReferencesBySource) {
  const std::string model = std::string(RECUR_SOURCE_DIR) + "/tests/fixtures/v1/seq2seq.safetensors";
  const std::string data = write("refs.txt",
                                 "red green\tRED GREEN\n"
                                 "blue black white\twhite blue red black purple\n"
                                 "red green\tGreen red\n"
                                 "white red blue\tblue blue red black\n");
  const Result r = run("eval '" + model + "' " + data + " --threads 1");
  ASSERT_EQ(r.rc, 0) << r.err;
  // Three sources, four references; "Green red" matches once lowercased; the second source's
  // only reference has a word more than the output.
  EXPECT_NE(r.out.find("exact match 66.67% (2 of 3)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("references  4 for 3 sources; sacreBLEU 13a tokens, exp smoothing, lowercased (-lc)"),
            std::string::npos)
      << r.out;
}

TEST_F(CliTasks, ConditionedGeneration) {
  fs::create_directories(dir_ / "names");
  write("names/Alpha.txt", "Aaron\nAbel\nAdam\nAlan\nAlbert\nAlex\nAmos\nAndy\nArt\nAxel\nAbe\nAce\n");
  write("names/Zulu.txt", "Zack\nZane\nZeke\nZeno\nZion\nZoe\nZora\nZuri\nZed\nZia\nZev\nZola\n");
  Result r = run("train " + path("names") + " --task generate --epochs 3 --out " + path("run") + " " + tiny());
  ASSERT_EQ(r.rc, 0) << r.err;
  r = run("sample " + path("run/last.safetensors") + " --condition Zulu --count 3 --seed 2");
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 3);
  EXPECT_EQ(r.out.rfind("Zulu\t", 0), 0u) << r.out;
  expect_one_line_error("sample " + path("run/last.safetensors") + " --condition Nope", "--condition: Nope");
  // The condition in every step's input instead of the initial state.
  r = run("train " + path("names") + " --task generate --condition-every-step --epochs 2 --out " + path("every") + " " + tiny());
  ASSERT_EQ(r.rc, 0) << r.err;
  r = run("sample " + path("every/last.safetensors") + " --count 2");
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 4);  // 2 per label
}

TEST_F(CliTasks, NumericFeatureSequences) {
  // Sequences of 2 features; the label is whether the first feature rises.
  std::string s = "id,x,y,label\n";
  Lcg r;
  for (int i = 0; i < 60; ++i) {
    const bool up = r.next(2);
    for (int t = 0; t < 4; ++t)
      s += std::to_string(i) + "," + std::to_string(up ? t : 4 - t) + "," + std::to_string(r.next(10) / 10.0) + "," +
           (up ? "up" : "down") + "\n";
  }
  const std::string data = write("seq.csv", s);
  Result res = run("train " + data + " --task classify --features --epochs 2 --out " + path("run") + " " + tiny());
  ASSERT_EQ(res.rc, 0) << res.err;
  // Fine-tuning it cannot drop words: it reads none (the flag check alone sees no --features).
  expect_one_line_error("train " + data + " --task classify --init-from " + path("run/last.safetensors") +
                            " --word-dropout 0.5 --epochs 1 --out " + path("wd") + " --batch 8 --threads 1 --quiet",
                        "--word-dropout: " + path("run/last.safetensors") +
                            " reads numeric feature sequences; expected a word task on tokens");
  res = run("eval " + path("run/last.safetensors") + " " + data);
  ASSERT_EQ(res.rc, 0) << res.err;
  EXPECT_NE(res.out.find("accuracy"), std::string::npos);
}

// Numeric series -> tokens: 2 to 5 integer values (and a noise feature); the target says for
// each step after the first whether the value went "up" or "down". CSV
// "sequence_id,x,noise,target" with the target text on a sequence's first row (quoted on odd
// sequences, to read quoting too); without the target column when with_targets is false.
std::string series_data(int n, uint32_t seed, bool with_targets) {
  Lcg r{seed};
  std::string s = with_targets ? "id,x,noise,target\n" : "id,x,noise\n";
  for (int i = 0; i < n; ++i) {
    std::vector<int> x{int(r.next(10))};
    for (uint32_t t = 1, T = 2 + r.next(4); t < T; ++t) {
      int v = int(r.next(10));
      while (v == x.back()) v = int(r.next(10));
      x.push_back(v);
    }
    std::string target = i % 2 ? "\"" : "";
    for (size_t t = 1; t < x.size(); ++t) {
      if (t > 1) target += ' ';
      target += x[t] > x[t - 1] ? "up" : "down";
    }
    if (i % 2) target += '"';
    for (size_t t = 0; t < x.size(); ++t) {
      // (appended piece by piece: "s" + std::string trips GCC 12's -Wrestrict false positive)
      s += 's';
      s += std::to_string(i);
      s += ',';
      s += std::to_string(x[t]);
      s += ',';
      s += std::to_string(r.next(100) / 100.0);
      if (with_targets) {
        s += ',';
        if (t == 0) s += target;
      }
      s += '\n';
    }
  }
  return s;
}

TEST_F(CliTasks, Seq2seqFromNumericFeatures) {
  const std::string data = write("train.csv", series_data(400, 1, true));
  const std::string test = write("test.csv", series_data(50, 2, true));
  const std::string opts = " --hidden 32 --embed 8 --batch 8 --threads 1 --quiet ";
  Result r = run("train " + data + " --task seq2seq --features --bidirectional --epochs 40 --out " + path("run") + opts);
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.err.find("seq2seq on 2 features per step"), std::string::npos) << r.err;
  // The checkpoint records numeric input of width 2 ("src" of kind features).
  r = run("info " + path("run/last.safetensors"));
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("input        src        features 2 per step"), std::string::npos) << r.out;
  // Held-out sequences: greedy and beam decoding both get (nearly) all of them right.
  for (const std::string beam : {"1", "3"}) {
    r = run("eval " + path("run/last.safetensors") + " " + test + " --beam " + beam);
    ASSERT_EQ(r.rc, 0) << r.err;
    const size_t at = r.out.find("exact match ");
    ASSERT_NE(at, std::string::npos) << r.out;
    EXPECT_GE(std::atof(r.out.c_str() + at + 12), 85.0) << r.out;
    EXPECT_NE(r.out.find("BLEU"), std::string::npos);
  }
  // Translate a file without the target column: one "id<TAB>tokens" line per sequence.
  const std::string pred = write("pred.csv", series_data(6, 3, false));
  for (const std::string extra : {"", " --beam 3 --length-penalty 0.7"}) {
    r = run("translate " + path("run/last.safetensors") + " --features " + pred + extra);
    ASSERT_EQ(r.rc, 0) << r.err;
    EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 6) << r.out;
    EXPECT_EQ(r.out.rfind("s0\t", 0), 0u) << r.out;
    EXPECT_NE(r.out.find("\ns5\t"), std::string::npos) << r.out;
  }
  // With the target column too (ignored), as for eval.
  r = run("translate " + path("run/last.safetensors") + " --features " + test);
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 50);
  // A wrong number of features per step is one line naming file and line.
  const std::string narrow = write("narrow.csv", "s1,0.5\ns1,0.7\n");
  expect_one_line_error("translate " + path("run/last.safetensors") + " --features " + narrow,
                        "narrow.csv:1: 2 fields, but the model reads 2 features per step");
  const std::string wide = write("wide.csv", "id,a,b,c,d,target\ns1,1,2,3,4,up\n");
  expect_one_line_error("eval " + path("run/last.safetensors") + " " + wide,
                        "wide.csv:1: 6 fields, but the model reads 2 features per step");
  // One extra feature column where the target would be: its changing values are caught.
  const std::string extra = write("extra.csv", "s1,1,0.5,0.1\ns1,2,0.5,0.2\n");
  expect_one_line_error("translate " + path("run/last.safetensors") + " --features " + extra,
                        "extra.csv:2: sequence 's1' has a second target '0.2'");
  // Text for a features model, features for a text model.
  expect_one_line_error("translate " + path("run/last.safetensors") + " 'one two'", "expected --features FILE");
  ASSERT_EQ(run("train " + write("pairs.txt", pair_data(40)) + " --task seq2seq --epochs 1 --out " + path("text") + " " + tiny()).rc, 0);
  expect_one_line_error("translate " + path("text/last.safetensors") + " --features " + pred, "reads text, not numeric features");
  // Resume: the step count goes on, no step is logged twice.
  const auto before = steps(path("run"), "valid");
  r = run("train " + data + " --resume --epochs 41 --out " + path("run") + opts);
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.err.find("resumed from"), std::string::npos) << r.err;
  const auto after = steps(path("run"), "valid");
  ASSERT_EQ(after.size(), before.size() + 1);
  EXPECT_GT(after.back(), before.back());
  // Resuming on a file of another width is refused naming the file and line.
  expect_one_line_error("train " + wide + " --resume --epochs 42 --out " + path("run") + opts,
                        "wide.csv:1: 6 fields, but the model reads 2 features per step");
}

TEST_F(CliTasks, Seq2seqFeatureFileErrorsNameFileAndLine) {
  auto bad = [&](const std::string& name, const std::string& text, const std::string& needle) {
    expect_one_line_error("train " + write(name, text) + " --task seq2seq --features --out " + path("r_" + name), needle);
  };
  // Ragged rows.
  bad("ragged.csv", "id,x,y,target\ns1,1,2,up\ns1,3,down\n", "ragged.csv:3: 3 fields; expected 4 as on line 1 (ragged columns)");
  // A value that is not a number.
  bad("nan.csv", "s1,1,2,up\ns1,x3,4,\n", "nan.csv:2: field 2 'x3'; expected a finite number");
  bad("inf.csv", "s1,1,2,up\ns1,inf,4,\n", "inf.csv:2: field 2 'inf'; expected a finite number");
  // Too few columns for an id, a feature and the target.
  bad("short.csv", "s1,up\n", "short.csv:1: 2 fields; expected 'sequence_id,f1,...,fF,target'");
  // A sequence without its target (an empty target sequence) on its first row.
  bad("empty.csv", "s1,1,2,up\ns2,1,2,\ns2,3,4,\n", "empty.csv:2: sequence 's2' has an empty target on its first row");
  // Two different targets for one sequence.
  bad("two.csv", "s1,1,2,up\ns1,3,4,down\n", "two.csv:2: sequence 's1' has a second target 'down' (line 1 has 'up')");
  // A sequence id that comes back after another sequence (its rows must be together).
  bad("back.csv", "s1,1,2,up\ns2,1,2,down\ns1,5,6,\n", "back.csv:3: sequence 's1' started on line 1 and comes back");
  // A row without a sequence id.
  bad("noid.csv", "s1,1,2,up\n,1,2,\n", "noid.csv:2: empty sequence id");
  // A header only: no sequences.
  bad("header.csv", "id,x,y,target\n", "header.csv: no sequences");
  // A file of pairs passed as features.
  bad("pairs.txt", "one two\tdown up\n", "pairs.txt:1: 1 field; expected 'sequence_id,f1,...,fF,target'");
  // classify and tag read the same files (the last column a label) with the same checks.
  expect_one_line_error("train " + path("ragged.csv") + " --task classify --features --out " + path("c1"),
                        "ragged.csv:3: 3 fields; expected 4 as on line 1 (ragged columns)");
  expect_one_line_error("train " + write("back_tag.csv", "s1,1,O\ns2,1,O\ns1,5,O\n") + " --task tag --features --out " + path("t1"),
                        "back_tag.csv:3: sequence 's1' started on line 1 and comes back");
  // Numeric input is not for the generator.
  expect_one_line_error("train " + write("g.txt", "a\tb\n") + " --task generate --features --out " + path("g"),
                        "--features: does not apply to --task generate");
}

TEST_F(CliTasks, BadInputsGiveOneLineNamingFileAndLine) {
  const std::string ragged = write("ragged.tsv", "good movie\tpos\nbad\tneg\textra\n");
  expect_one_line_error("train " + ragged + " --task classify --out " + path("r1"), "ragged.tsv:2: 3 fields; expected 2");
  const std::string ragged_tag = write("ragged.txt", "a X O\nb O\n\n");
  expect_one_line_error("train " + ragged_tag + " --task tag --out " + path("r2"), "ragged.txt:2: 2 columns; expected 3");
  const std::string missing = write("missing.txt", "a\nb\n\n");
  expect_one_line_error("train " + missing + " --task tag --out " + path("r3"), "missing.txt:1: missing tag column");
  const std::string empty_text = write("empty.tsv", "good movie\tpos\n \tneg\n");
  expect_one_line_error("train " + empty_text + " --task classify --out " + path("r4"), "empty.tsv:2: empty text");
  const std::string empty_src = write("empty_src.txt", "one\tone\n\ttwo\n");
  expect_one_line_error("train " + empty_src + " --task seq2seq --out " + path("r5"), "empty_src.txt:2: empty source");
  const std::string no_sentence = write("blank.txt", "\n\n-DOCSTART- -X- O\n\n");
  expect_one_line_error("train " + no_sentence + " --task tag --out " + path("r6"), "blank.txt: no sentences");
  // Unknown label at test time.
  const std::string data = write("train.tsv", classify_data(60, false));
  ASSERT_EQ(run("train " + data + " --task classify --epochs 1 --out " + path("ok") + " " + tiny()).rc, 0);
  const std::string test = write("test.tsv", "good movie\tpos\nbad plot\tmeh\n");
  expect_one_line_error("eval " + path("ok/last.safetensors") + " " + test, "test.tsv:2: label 'meh' was not seen in training");
  const std::string tags = write("tags.txt", tag_data(20));
  // A tag never seen in training is not an error: the sentence is left out of the loss and its
  // entity counts as missed, as conlleval counts it (3 gold entities, the ORG one among them).
  const std::string new_tags = write("new_tags.txt", "mr X O\nSmith X B-PER\n\nmr X O\nSmith X B-ORG\n\nin X O\nRome X B-LOC\n\n");
  for (const char* crf : {"", " --crf"}) {
    const std::string dir = path(std::string("tg") + (*crf ? "crf" : ""));
    ASSERT_EQ(run("train " + tags + " --task tag --epochs 1 --out " + dir + crf + " " + tiny()).rc, 0);
    const auto r = run("eval " + dir + "/last.safetensors " + new_tags);
    ASSERT_EQ(r.rc, 0) << r.err;
    EXPECT_NE(r.out.find("unseen      1 sentence(s) hold tags not seen in training (B-ORG)"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("tokens      6, 3 gold entities"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("ORG        precision   0.00%, recall   0.00%"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("(4 targets)"), std::string::npos) << "the unseen sentence is out of the loss\n" << r.out;
    // recur info says how the tags are modelled, and which version of the file it read (it
    // said v1 for every task model).
    const auto info = run("info " + dir + "/last.safetensors");
    EXPECT_NE(info.out.find("/last.safetensors (format recur-model v2)"), std::string::npos) << info.out;
    EXPECT_NE(info.out.find(*crf ? "tags         file scheme bio, trained and decoded as bioes, written back as bio; CRF"
                                 : "tags         file scheme bio, trained as is; per-token softmax"),
              std::string::npos)
        << info.out;
  }
  // A task model handed to the wrong command.
  expect_one_line_error("translate " + path("ok/last.safetensors") + " hello",
                        "translate needs a seq2seq model (recur train --task seq2seq); " + path("ok/last.safetensors") +
                            " is a classify model");
  // Pre-trained vectors with a wrong number of values.
  const std::string vec = write("vec.txt", "good 0.1 0.2\nbad 0.3\n");
  expect_one_line_error("train " + data + " --task classify --embeddings " + vec + " --out " + path("r7"), "vec.txt:2: 1 values; expected 2");
}

TEST_F(CliTasks, PretrainedEmbeddingsLoadFrozenOrFineTuned) {
  const std::string data = write("train.tsv", classify_data(60, false));
  const std::string vec = write("vec.txt", "2 3\ngood 0.1 0.2 0.3\nbad -0.1 -0.2 -0.3\nmovie 0 0 1\n");
  Result r = run("train " + data + " --task classify --embeddings " + vec + " --freeze-embeddings --epochs 1 --out " +
                 path("run") + " " + tiny());
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.err.find("vectors for 3 of"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("(frozen)"), std::string::npos) << r.err;

  // --embeddings-vocab: a word only the vectors know joins the vocabulary with its vector (frozen,
  // it stays exactly that), after the training words, whose ids do not move; without the flag it
  // is <unk>. The flag is kept by a resumed run.
  write("vec2.txt", "2 3\ngood 0.1 0.2 0.3\nzebra 0.5 -0.5 0.25\nzebra 9 9 9\n");
  r = run("train " + data + " --task classify --embeddings " + path("vec2.txt") +
          " --embeddings-vocab --freeze-embeddings --epochs 1 --out " + path("ext") + " " + tiny());
  ASSERT_EQ(r.rc, 0) << r.err;
  const TaskModel plain = load_task_checkpoint(path("run/last.safetensors")).model;
  const TaskModel ext = load_task_checkpoint(path("ext/last.safetensors")).model;
  EXPECT_FALSE(plain.words.contains("zebra"));
  ASSERT_TRUE(ext.words.contains("zebra"));
  EXPECT_EQ(ext.words.size(), plain.words.size() + 1);  // once, though the file repeats it
  for (int32_t i = 0; i < plain.words.size(); ++i) EXPECT_EQ(ext.words.token(i), plain.words.token(i));
  const Tensor<float>& w = ext.params.layers[size_t(ext.spec.layer_index("emb"))].weight;
  const int32_t z = ext.words.id("zebra");
  EXPECT_EQ(z, int32_t(plain.words.size()));
  ASSERT_EQ(w.dim(1), 3);
  EXPECT_FLOAT_EQ(w.data[size_t(z) * 3 + 0], 0.5f);  // the first line of a repeated word wins
  EXPECT_FLOAT_EQ(w.data[size_t(z) * 3 + 1], -0.5f);
  EXPECT_FLOAT_EQ(w.data[size_t(z) * 3 + 2], 0.25f);
  r = run("train " + data + " --out " + path("ext") + " --resume --epochs 2");
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_TRUE(load_task_checkpoint(path("ext/last.safetensors")).model.words.contains("zebra"));
  expect_one_line_error("train " + data + " --task classify --embeddings-vocab --out " + path("bad") + " " + tiny(),
                        "--embeddings-vocab: got true, expected with --embeddings FILE");
}

// A finite double past float's range (1e300) used to pass the finiteness check and become an
// infinite feature or embedding weight when converted to float.
TEST(FloatFields, ValuesPastFloatRangeAreRefusedNamingFileAndLine) {
  const fs::path dir = fs::temp_directory_path() / ("recur_float_fields_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  auto file = [&](const std::string& name, const std::string& text) {
    std::ofstream(dir / name) << text;
    return (dir / name).string();
  };
  auto message = [](auto&& fn) -> std::string {
    try {
      fn();
    } catch (const FormatError& e) {
      return e.what();
    }
    return "(accepted)";
  };
  const std::string csv = file("huge.csv", "s1,1,2,up\ns1,-1e300,4,down\n");
  int64_t width = 0;
  EXPECT_NE(message([&] { read_feature_sequences(csv, &width); }).find("huge.csv:2: field 2 '-1e300'; expected a finite number"),
            std::string::npos);
  // The largest float itself is still a value.
  const std::string edge = file("edge.csv", "s1,3.4028234e38,2,up\n");
  EXPECT_EQ(read_feature_sequences(edge, &width).at(0).values.at(0), std::numeric_limits<float>::max());

  const std::string vec = file("vec.txt", "good 0.5 1e39\n");
  Vocab vocab = Vocab::from_tokens(TokenLevel::words, {"good"});
  Tensor<float> weight(Shape{vocab.size(), 2});
  EXPECT_NE(message([&] { load_word_vectors(vec, vocab, weight); }).find("vec.txt:1: value '1e39'; expected a finite number"),
            std::string::npos);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace recur

namespace recur {
namespace {

// --attention (attention.h): a word-reversing model attends, its alignment tables are written by
// translate --show-attention, and --replace-unk copies the most attended source word over an
// output <unk>.
TEST_F(CliTasks, Seq2seqAttentionShowsAlignmentsAndReplacesUnknownWords) {
  const std::string data = write("pairs.txt", pair_data(300));
  Result r = run("train " + data + " --task seq2seq --attention additive --bidirectional --epochs 3 --out " + path("run") +
                 " " + tiny());
  ASSERT_EQ(r.rc, 0) << r.err;
  r = run("info " + path("run/last.safetensors"));
  EXPECT_NE(r.out.find("attn(attention additive 16)"), std::string::npos) << r.out;
  r = run("translate " + path("run/last.safetensors") + " --show-attention " + path("align.tsv") + " 'one two three' 'four'");
  ASSERT_EQ(r.rc, 0) << r.err;
  // One table per sentence: the source words across, then a row per output word and <eos>
  // whose weights sum to 1 (3 decimals each).
  std::istringstream tables(slurp(path("align.tsv")));
  std::istringstream outs(r.out);
  std::string line, out;
  for (const std::vector<std::string>& src : {std::vector<std::string>{"one", "two", "three"}, {"four"}}) {
    ASSERT_TRUE(std::getline(outs, out));
    ASSERT_TRUE(std::getline(tables, line));
    std::string want;
    for (const auto& w : src) want += "\t" + w;
    EXPECT_EQ(line, want);
    std::vector<std::string> rows;
    while (std::getline(tables, line) && !line.empty()) {
      std::istringstream cells(line);
      std::string word, v;
      std::getline(cells, word, '\t');
      rows.push_back(word);
      double sum = 0;
      int n = 0;
      while (std::getline(cells, v, '\t')) {
        sum += std::stod(v);
        ++n;
      }
      EXPECT_EQ(n, int(src.size())) << line;
      EXPECT_NEAR(sum, 1.0, 0.002) << line;
    }
    ASSERT_FALSE(rows.empty());
    EXPECT_EQ(rows.back(), "<eos>");
    std::string joined;
    for (size_t k = 0; k + 1 < rows.size(); ++k) joined += (k ? " " : "") + rows[k];
    EXPECT_EQ(joined, out) << "the rows are the output's words";
  }
  // --attention-plot: one heat map per sentence, PNG and SVG, when gnuplot is installed (the
  // install scripts add it); without it the error says so before anything is decoded.
  r = run("translate " + path("run/last.safetensors") + " --attention-plot " + path("plots") + " 'one two three' 'four'");
  if (std::system("command -v gnuplot >/dev/null 2>&1") == 0) {
    ASSERT_EQ(r.rc, 0) << r.err;
    for (const char* f : {"attention-1.png", "attention-1.svg", "attention-2.png", "attention-2.svg"}) {
      const std::string bytes = slurp(path(std::string("plots/") + f));
      ASSERT_GT(bytes.size(), 200u) << f;
      if (std::string(f).ends_with(".png")) EXPECT_EQ(bytes.substr(1, 3), "PNG") << f;
      else EXPECT_NE(bytes.find("<svg"), std::string::npos) << f;
    }
    EXPECT_NE(slurp(path("plots/attention-1.svg")).find("three"), std::string::npos) << "the source words label the axis";
    EXPECT_FALSE(fs::exists(path("plots/attention-3.png")));
  } else {
    EXPECT_EQ(r.rc, 1);
    EXPECT_NE(r.err.find("--attention-plot needs gnuplot"), std::string::npos) << r.err;
  }
  // The dot score cannot multiply a bidirectional encoder's 2R-wide outputs with R-wide queries.
  expect_one_line_error("train " + data + " --task seq2seq --attention dot --bidirectional --out " + path("dot") + " " + tiny(),
                        "--attention dot: the decoder's outputs (16 wide) and the bidirectional encoder's (32)");
  // Without attention there is nothing to show.
  ASSERT_EQ(run("train " + data + " --task seq2seq --epochs 1 --out " + path("plain") + " " + tiny()).rc, 0);
  expect_one_line_error("translate " + path("plain/last.safetensors") + " --replace-unk 'one'",
                        "--replace-unk: " + path("plain/last.safetensors") + " has no attention");
}

// --input-feed (model.h LayerSpec::feed): the decoder reads the attention's previous output. The
// model says so, a run stopped mid-epoch and resumed logs the losses of one run (dropout on,
// so the rng state is carried too), it learns the reversing task, translate decodes with the
// fed output (greedy and beam) and shows its alignments; misuses are one-line errors.
TEST_F(CliTasks, Seq2seqInputFeedTrainsResumesAndTranslates) {
  const std::string data = write("pairs.txt", pair_data(300));
  const std::string opts = " --task seq2seq --attention general --input-feed --bidirectional --dropout 0.2 " + tiny();
  ASSERT_EQ(run("train " + data + opts + " --steps 40 --out " + path("one")).rc, 0);
  ASSERT_EQ(run("train " + data + opts + " --steps 17 --out " + path("two")).rc, 0);
  Result r = run("train " + data + opts + " --steps 40 --resume --out " + path("two"));
  ASSERT_EQ(r.rc, 0) << r.err;
  auto losses = [&](const std::string& d) { return recur::test::metric_losses(d); };
  EXPECT_EQ(losses(path("one")), losses(path("two")));
  EXPECT_EQ(losses(path("one")).size(), 8u);
  r = run("info " + path("one/last.safetensors"));
  EXPECT_NE(r.out.find("dec(rnn lstm 1x16 from bridge fed by attn)"), std::string::npos) << r.out;

  ASSERT_EQ(run("train " + data + opts + " --epochs 12 --lr 0.01 --out " + path("long")).rc, 0);
  r = run("eval " + path("long/best.safetensors") + " " + data);
  ASSERT_EQ(r.rc, 0) << r.err;
  const size_t at = r.out.find("exact match");
  ASSERT_NE(at, std::string::npos) << r.out;
  EXPECT_GT(std::stod(r.out.substr(r.out.find_first_of("0123456789", at))), 50.0) << r.out;
  for (const char* beam : {"", " --beam 3"}) {
    r = run("translate " + path("long/best.safetensors") + beam + " 'one two three' 'four zero'");
    ASSERT_EQ(r.rc, 0) << r.err;
    EXPECT_EQ(r.out, "three two one\nzero four\n") << beam;
  }
  r = run("translate " + path("long/best.safetensors") + " --show-attention - 'one two'");
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("\tone\ttwo"), std::string::npos) << r.out;

  expect_one_line_error("train " + data + " --task seq2seq --input-feed --out " + path("bad") + " " + tiny(),
                        "--input-feed: got true, expected with --attention dot, general or additive");
  expect_one_line_error("train " + data + " --task tag --input-feed --out " + path("bad") + " " + tiny(),
                        "--input-feed: does not apply to --task tag");
  expect_one_line_error("train " + data + " --task seq2seq --init-from " + path("long/best.safetensors") +
                            " --input-feed --threads 1 --out " + path("bad"),
                        "--input-feed: not with --init-from");
}

// --extend-vocab: fine-tuning a tagger on text with a new name gives the name its own row (and
// the summary one more word); without the flag it reads as <unk>. Misuses are one-line errors.
TEST_F(CliTasks, InitFromExtendVocabAddsTheNewDatasWords) {
  const std::string data = write("train.conll", tag_data(120));
  ASSERT_EQ(run("train " + data + " --task tag --epochs 1 --out " + path("base") + " " + tiny()).rc, 0);
  std::string text = tag_data(120);
  for (size_t at; (at = text.find("Smith")) != std::string::npos;) text.replace(at, 5, "Garcia");
  const std::string fresh = write("new.conll", text);
  const std::string base = path("base/last.safetensors");
  Result r = run("train " + fresh + " --task tag --init-from " + base + " --extend-vocab --epochs 1 --threads 1 --out " +
                 path("grown"));
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.err.find("--extend-vocab: 1 new words from " + fresh), std::string::npos) << r.err;
  const std::string words_before = run("info " + base).out, words_after = run("info " + path("grown/last.safetensors")).out;
  auto word_count = [](const std::string& info) {  // "input words tokens N ids"
    std::smatch m;
    return std::regex_search(info, m, std::regex("words +tokens (\\d+) ids")) ? std::stoll(m[1]) : -1LL;
  };
  ASSERT_GT(word_count(words_before), 2) << words_before;
  EXPECT_EQ(word_count(words_after), word_count(words_before) + 1) << words_after;
  // A fine-tuned run resumes like any other (its --init-from is history, not this run's choice),
  // keeping its grown vocabulary; --init-from or --extend-vocab given again with --resume is refused.
  r = run("train " + fresh + " --resume --epochs 2 --threads 1 --out " + path("grown"));
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.err.find("resumed from"), std::string::npos) << r.err;
  EXPECT_EQ(word_count(run("info " + path("grown/last.safetensors")).out), word_count(words_before) + 1);
  expect_one_line_error("train " + fresh + " --resume --init-from " + base + " --epochs 3 --out " + path("grown"),
                        "--init-from: got " + base + ", expected a fresh run's starting model");
  expect_one_line_error("train " + fresh + " --resume --extend-vocab --epochs 3 --out " + path("grown"),
                        "--extend-vocab: got true, expected with a fresh --init-from run");
  r = run("train " + fresh + " --task tag --init-from " + base + " --epochs 1 --threads 1 --out " + path("kept"));
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(word_count(run("info " + path("kept/last.safetensors")).out), word_count(words_before));
  // --min-count chooses the new words only with --extend-vocab.
  r = run("train " + fresh + " --task tag --init-from " + base + " --extend-vocab --min-count 100000 --epochs 1 --threads 1 "
          "--out " + path("none"));
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.err.find("--extend-vocab: 0 new words"), std::string::npos) << r.err;
  expect_one_line_error("train " + fresh + " --task tag --init-from " + base + " --min-count 2 --out " + path("bad"),
                        "--min-count: not with --init-from " + base + " alone");
  expect_one_line_error("train " + fresh + " --task tag --extend-vocab --out " + path("bad") + " " + tiny(),
                        "--extend-vocab: got true, expected with --init-from MODEL");
  expect_one_line_error("train " + fresh + " --task music --extend-vocab --init-from " + base + " --out " + path("bad"),
                        "--extend-vocab: does not apply to --task music");
}

// --extend-vocab for a word language model: the new text's words join the vocabulary (its
// embedding and decoder grow, tied or not); a one-hot character model cannot grow and says so.
TEST_F(CliTasks, LanguageModelInitFromExtendVocab) {
  std::string a, b;
  const char* animals[] = {"cat", "dog", "cow"};
  const char* others[] = {"owl", "yak"};
  for (int i = 0; i < 200; ++i) {
    a += std::string("the ") + animals[i % 3] + " sat on the mat\n";
    b += std::string("the ") + (i % 2 ? others[i % 2] : animals[i % 3]) + " sat on the rug\n";
  }
  const std::string ta = write("a.txt", a), tb = write("b.txt", b);
  const std::string lm = " --level word --embed 8 --hidden 8 --batch 4 --seq-len 8 --threads 1 --quiet ";
  for (const std::string tie : {"", "--tie-weights"}) {
    SCOPED_TRACE(tie);
    ASSERT_EQ(run("train " + ta + lm + tie + " --steps 10 --force --out " + path("lm_a")).rc, 0);
    Result r = run("train " + tb + " --init-from " + path("lm_a/last.safetensors") +
                   " --extend-vocab --steps 5 --threads 1 --force --out " + path("lm_b"));
    ASSERT_EQ(r.rc, 0) << r.err;
    EXPECT_NE(r.err.find("--extend-vocab: 2 new words from " + tb), std::string::npos) << r.err;  // rug, yak
    // The fine-tuned run resumes (its level and shape are its model's, not its saved defaults').
    r = run("train " + tb + " --resume --steps 8 --threads 1 --out " + path("lm_b"));
    ASSERT_EQ(r.rc, 0) << r.err;
    EXPECT_NE(r.err.find("resumed from"), std::string::npos) << r.err;
    r = run("score " + path("lm_b/last.safetensors") + " 'the yak sat on the rug' --per-token");
    ASSERT_EQ(r.rc, 0) << r.err;
    EXPECT_NE(r.out.find(" 0 out of vocabulary"), std::string::npos) << r.out;
    r = run("score " + path("lm_a/last.safetensors") + " 'the yak sat on the rug' --per-token");
    EXPECT_NE(r.out.find(" 2 out of vocabulary"), std::string::npos) << r.out;
  }
  ASSERT_EQ(run("train " + ta + " --level char --embed 0 --hidden 8 --batch 4 --seq-len 8 --threads 1 --quiet --steps 3 "
                "--force --out " + path("char")).rc, 0);
  expect_one_line_error("train " + tb + " --init-from " + path("char/last.safetensors") + " --extend-vocab --force --out " +
                            path("bad"),
                        "reads one-hot rows (trained with --embed 0)");
}

TEST_F(CliTasks, Seq2seqReplaceUnkCopiesTheMostAttendedSourceWord) {
  // A copy task: four colours, one of them replaced by a name seen once. With --min-count 2 no
  // name is in either vocabulary, so the model writes <unk> where the name was; it learns to
  // copy by attending to the word it writes, so the <unk> attends to the source's <unk>.
  const char* colours[] = {"red", "green", "blue", "black", "white", "pink", "gray", "brown", "gold", "teal"};
  Lcg g;
  std::string pairs;
  for (int i = 0; i < 600; ++i) {
    std::vector<std::string> w;
    for (int k = 0; k < 4; ++k) w.push_back(colours[g.next(10)]);
    w[g.next(4)] = "n" + std::to_string(i);
    const std::string text = w[0] + " " + w[1] + " " + w[2] + " " + w[3];
    pairs += text + "\t" + text + "\n";
  }
  const std::string data = write("copy.txt", pairs);
  Result r = run("train " + data + " --task seq2seq --attention general --min-count 2 --epochs 20 --out " + path("run") +
                 " --hidden 32 --embed 16 --batch 16 --threads 1 --quiet");
  ASSERT_EQ(r.rc, 0) << r.err;
  const std::string model = path("run/last.safetensors");
  r = run("translate " + model + " 'red x1 blue gold' 'pink teal zz9 gray'");
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(r.out, "red <unk> blue gold\npink teal <unk> gray\n");
  r = run("translate " + model + " --replace-unk 'red x1 blue gold' 'pink teal zz9 gray'");
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(r.out, "red x1 blue gold\npink teal zz9 gray\n");
  // Hand-set alignments decide which source word comes through.
  const TaskModel m = load_task_checkpoint(model).model;
  const std::vector<int32_t> out{m.targets.id("red"), Vocab::unk_id};
  ASSERT_NE(out[0], Vocab::unk_id);
  EXPECT_EQ(replace_unknown_words(m, out, {{0.9f, 0.1f}, {0.2f, 0.8f}, {0.5f, 0.5f}}, {"name", "w7"}),
            (std::vector<std::string>{"red", "w7"}));
  EXPECT_EQ(replace_unknown_words(m, out, {{0.9f, 0.1f}, {0.7f, 0.3f}, {0.5f, 0.5f}}, {"name", "w7"}),
            (std::vector<std::string>{"red", "name"}));
  // No source words (numeric features): the <unk> stays.
  EXPECT_EQ(replace_unknown_words(m, out, {{0.9f, 0.1f}, {0.2f, 0.8f}}, {}), (std::vector<std::string>{"red", "<unk>"}));
  // eval --replace-unk scores the replaced words: the copied names now match.
  const std::string test = write("test.txt", "red x1 blue gold\tred x1 blue gold\npink teal zz9 gray\tpink teal zz9 gray\n");
  r = run("eval " + model + " " + test + " --json");
  ASSERT_EQ(r.rc, 0) << r.err;
  const double plain = nlohmann::json::parse(r.out)["value"].get<double>();
  r = run("eval " + model + " " + test + " --json --replace-unk");
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_GT(nlohmann::json::parse(r.out)["value"].get<double>(), plain);
}

}  // namespace
}  // namespace recur

namespace recur {
namespace {

// extend_task_vocab (--init-from MODEL --extend-vocab): new words join after the old ones, the
// old ids and everything the model computes on them stay, labels do not grow.
RawExample words_example(const std::string& in, const std::string& out) {
  RawExample e;
  e.input = split_words(in, false);
  e.output = split_words(out, false);
  e.steps = int64_t(e.input.size());
  return e;
}

// The head's outputs [T, B, C] of `m` for `raw` (its first C columns compared by the caller).
Tensor<float> head_outputs(const TaskModel& m, const std::vector<RawExample>& raw) {
  const std::vector<TaskExample> ex = encode_task_examples(m, raw, true, "test");
  std::vector<const TaskExample*> ptrs;
  for (const auto& e : ex) ptrs.push_back(&e);
  const TaskBatch b = make_task_batch(m, ptrs);
  ModelCache<float> cache;
  model_forward(m.spec, m.params, b.inputs, {}, cache);
  return model_output(m.spec, cache, "out");
}

void expect_same_leading_columns(const Tensor<float>& old_out, const Tensor<float>& new_out, const std::string& what) {
  ASSERT_EQ(old_out.rank(), new_out.rank()) << what;
  const int64_t C = old_out.shape.back(), C2 = new_out.shape.back(), rows = old_out.numel() / C;
  ASSERT_EQ(new_out.numel() / C2, rows) << what;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < C; ++c)
      ASSERT_NEAR(new_out.data[size_t(r * C2 + c)], old_out.data[size_t(r * C + c)], 1e-5) << what << " row " << r;
}

TEST(ExtendTaskVocab, Seq2seqGrowsSourceTargetAndHeadKeepingOldOutputs) {
  TaskSpec task;
  task.kind = TaskKind::seq2seq;
  const std::vector<RawExample> a = {words_example("red green", "green red"), words_example("blue red", "red blue"),
                                     words_example("green", "green")};
  TaskModelOptions mo;
  mo.rnn = {.cell = CellType::lstm, .hidden_size = 6};
  mo.embed = 4;
  mo.attention = AttentionScore::general;
  mo.input_feed = true;
  Rng rng(1);
  TaskModel m = build_task_model(task, a, {}, mo, 0, rng);
  const TaskModel before = m;
  const std::vector<RawExample> b = {words_example("red pink pink", "pink pink red"), words_example("teal", "teal"),
                                     words_example("pink", "pink")};
  Rng g(2);
  const VocabGrowth vg = extend_task_vocab(m, b, {}, g);
  EXPECT_EQ(vg.words, 2);
  EXPECT_EQ(vg.targets, 2);
  EXPECT_EQ(vg.chars, 0);
  for (int32_t i = 0; i < int32_t(before.words.size()); ++i) EXPECT_EQ(m.words.token(i), before.words.token(i));
  for (int32_t i = 0; i < int32_t(before.targets.size()); ++i) EXPECT_EQ(m.targets.token(i), before.targets.token(i));
  const int32_t V = int32_t(before.words.size());
  EXPECT_EQ(m.words.id("pink"), V);  // three times, before teal's once
  EXPECT_EQ(m.words.id("teal"), V + 1);
  EXPECT_EQ(m.targets.id("pink"), int32_t(before.targets.size()));
  EXPECT_EQ(m.spec.layer("out").size, m.targets.size());
  EXPECT_EQ(m.params.layers[size_t(m.spec.layer_index("out"))].weight.dim(0), m.targets.size());
  // New rows are drawn, not zeros; the old ones are untouched.
  const Tensor<float>& e0 = before.params.layers[size_t(before.spec.layer_index("src_emb"))].weight;
  const Tensor<float>& e1 = m.params.layers[size_t(m.spec.layer_index("src_emb"))].weight;
  EXPECT_TRUE(std::equal(e0.data.begin(), e0.data.end(), e1.data.begin()));
  EXPECT_NE(e1.data.back(), 0.0f);
  for (float x : std::vector<float>(e1.data.begin() + e0.numel(), e1.data.end())) EXPECT_LE(std::abs(x), 0.1f);
  // On the old words the model computes what it did; the new outputs are extra columns.
  expect_same_leading_columns(head_outputs(before, a), head_outputs(m, a), "seq2seq");
  // --min-count 2 leaves teal out; --max-vocab caps the total.
  TaskModel counted = before;
  Rng g2(2);
  EXPECT_EQ(extend_task_vocab(counted, b, {.max_vocab = 0, .min_count = 2, .extra_words = {}}, g2).words, 1);
  EXPECT_FALSE(counted.words.contains("teal"));
  TaskModel capped = before;
  Rng g3(2);
  EXPECT_EQ(extend_task_vocab(capped, b, {.max_vocab = V + 1, .min_count = 1, .extra_words = {}}, g3).words, 1);
  EXPECT_EQ(capped.words.size(), V + 1);
  EXPECT_TRUE(capped.words.contains("pink"));
  // Growing again with nothing new changes nothing.
  TaskModel again = m;
  Rng g4(3);
  const VocabGrowth none = extend_task_vocab(again, b, {}, g4);
  EXPECT_EQ(none.words + none.targets, 0);
  EXPECT_EQ(again.params.layers[size_t(again.spec.layer_index("src_emb"))].weight.data, e1.data);
}

// A tagger small enough to build in microseconds: BiLSTM 5 per direction, word embedding 4,
// character BiLSTM 3 over 3-d character embeddings.
TaskModelOptions small_char_tagger() {
  TaskModelOptions mo;
  mo.rnn = {.cell = CellType::lstm, .hidden_size = 5, .bidirectional = true};
  mo.embed = 4;
  mo.char_embed = 3;
  mo.char_hidden = 3;
  return mo;
}

TEST(ExtendTaskVocab, TaggerGrowsWordsAndCharactersButNotTags) {
  TaskSpec task;
  task.kind = TaskKind::tag;
  task.char_rnn = true;
  const std::vector<RawExample> a = {words_example("mr Smith", "O B-PER"), words_example("in Rome", "O B-LOC")};
  const TaskModelOptions mo = small_char_tagger();
  Rng rng(4);
  TaskModel m = build_task_model(task, a, {}, mo, 0, rng);
  const TaskModel before = m;
  Rng g(5);
  const VocabGrowth vg = extend_task_vocab(m, {words_example("mr Zoë", "O B-PER")}, {}, g);
  EXPECT_EQ(vg.words, 1);
  EXPECT_EQ(vg.chars, 2);  // Z and ë (o is in "Rome")
  EXPECT_EQ(vg.targets, 0);
  EXPECT_TRUE(m.chars.contains("ë"));
  EXPECT_EQ(m.labels, before.labels);
  expect_same_leading_columns(head_outputs(before, a), head_outputs(m, a), "tagger");
  // A tag the model does not know does not become a class: the sentence is scored, not trained on.
  const std::vector<TaskExample> unseen = encode_task_examples(m, {words_example("mr Zoë", "O B-ORG")}, true, "new.conll");
  EXPECT_TRUE(unseen.at(0).targets.empty());
  EXPECT_EQ(m.labels.size(), before.labels.size());
}

// A classifier with characters grows them as the tagger does, and reads its old texts as before.
TEST(ExtendTaskVocab, ClassifierGrowsWordsAndCharacters) {
  TaskSpec task;
  task.kind = TaskKind::classify;
  task.char_rnn = true;
  auto text = [](const std::string& words, const std::string& label) {
    RawExample e = words_example(words, "");
    e.label = label;
    return e;
  };
  const std::vector<RawExample> a = {text("good film", "pos"), text("bad plot", "neg")};
  const TaskModelOptions mo = small_char_tagger();
  Rng rng(4);
  TaskModel m = build_task_model(task, a, {}, mo, 0, rng);
  EXPECT_EQ(m.chars.size(), Vocab::num_special + 11);  // g o d f i l m b a p t
  const TaskModel before = m;
  Rng g(5);
  const VocabGrowth vg = extend_task_vocab(m, {text("zany film", "pos")}, {}, g);
  EXPECT_EQ(vg.words, 1);
  EXPECT_EQ(vg.chars, 3);  // z, n, y
  EXPECT_TRUE(m.chars.contains("z"));
  EXPECT_EQ(m.labels, before.labels);
  expect_same_leading_columns(head_outputs(before, a), head_outputs(m, a), "classifier");
}

// --lower-words: one word row for every case of a word (the vocabulary counts them together),
// while the characters still see the case; the choice travels in the model file, and a tagger
// without it keeps the cases apart.
TEST(LowerWords, OneWordRowForEveryCaseCharactersKeepTheCase) {
  TaskSpec task;
  task.kind = TaskKind::tag;
  task.char_rnn = true;
  task.lower_words = true;
  const std::vector<RawExample> train = {words_example("Paris is in FRANCE", "B-LOC O O B-LOC"),
                                         words_example("paris Ünï", "B-LOC O")};
  const TaskModelOptions mo = small_char_tagger();
  Rng rng(4);
  const TaskModel m = build_task_model(task, train, {}, mo, 0, rng);
  EXPECT_TRUE(m.words.contains("paris"));
  EXPECT_TRUE(m.words.contains("france"));
  EXPECT_FALSE(m.words.contains("Paris"));
  EXPECT_FALSE(m.words.contains("FRANCE"));
  EXPECT_TRUE(m.words.contains("Ünï"));  // ASCII letters only: Ü stays
  {  // both cases counted as one word: "paris" is seen twice, each cased form once
    Rng r(4);
    const TaskModel twice = build_task_model(task, train, {.max_vocab = 0, .min_count = 2, .extra_words = {}}, mo, 0, r);
    EXPECT_TRUE(twice.words.contains("paris"));
    EXPECT_FALSE(twice.words.contains("france"));
  }
  {  // vector words join only in the form the vocabulary reads: "Berlin" would be a dead row
    Rng r(4);
    const TaskModel v = build_task_model(task, train, {.max_vocab = 0, .min_count = 1, .extra_words = {"Berlin", "berlin", "rome", "Paris"}}, mo, 0, r);
    EXPECT_TRUE(v.words.contains("berlin"));
    EXPECT_TRUE(v.words.contains("rome"));
    EXPECT_FALSE(v.words.contains("Berlin"));
    EXPECT_FALSE(v.words.contains("Paris"));
    EXPECT_EQ(v.words.size(), m.words.size() + 2);
  }
  const std::vector<TaskExample> ex =
      encode_task_examples(m, {words_example("Paris PARIS paris France", "B-LOC B-LOC B-LOC B-LOC")}, true, "t");
  ASSERT_EQ(ex.at(0).words.size(), 4u);
  const int32_t paris = m.words.id("paris");
  EXPECT_EQ(ex[0].words, (std::vector<int32_t>{paris, paris, paris, m.words.id("france")}));
  EXPECT_NE(ex[0].chars[0][0], ex[0].chars[2][0]);  // 'P' and 'p' are different characters
  EXPECT_EQ(ex[0].chars[0][0], m.chars.id("P"));

  const fs::path dir = fs::temp_directory_path() / ("recur_lower_words_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const std::string file = (dir / "m.safetensors").string();
  save_task_checkpoint(file, {.model = m, .train_state = {}, .tensors = {}});
  const TaskModel back = load_task_checkpoint(file).model;
  EXPECT_TRUE(back.task.lower_words);
  EXPECT_EQ(encode_task_examples(back, {words_example("PARIS", "B-LOC")}, true, "t").at(0).words,
            std::vector<int32_t>{paris});
  fs::remove_all(dir);

  task.lower_words = false;
  Rng rng2(4);
  const TaskModel cased = build_task_model(task, train, {}, mo, 0, rng2);
  EXPECT_TRUE(cased.words.contains("Paris"));
  EXPECT_NE(cased.words.id("Paris"), cased.words.id("paris"));
  EXPECT_EQ(cased.words.id("PARIS"), Vocab::unk_id);
  Rng rng3(4);
  const TaskModel cased2 = build_task_model(task, train, {.max_vocab = 0, .min_count = 2, .extra_words = {}}, mo, 0, rng3);
  EXPECT_FALSE(cased2.words.contains("paris"));
  EXPECT_FALSE(cased2.words.contains("Paris"));
}

}  // namespace
}  // namespace recur
