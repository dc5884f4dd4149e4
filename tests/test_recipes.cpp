// scripts/recipe.sh (and the default validation split recipes rely on): every recipe runs end to end on small files given through TRAIN=/TEST=, with
// a few seconds of training, and prints its metric as the last line; the split it selects on is
// a part of TRAIN, never TEST; bad names and missing files are one-line errors with exit 2.
// Needs nothing from ../shared: the files are written here.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <tuple>

#include "cli_run.h"
#include "recur/tasks/tasks.h"

namespace fs = std::filesystem;
using recur::test::CliResult;
using recur::test::slurp;

namespace {

struct RecipeDir {
  fs::path dir;
  explicit RecipeDir(const std::string& name) {
    dir = fs::temp_directory_path() / ("recur_recipe_" + name + "_" + std::to_string(::getpid()));
    fs::remove_all(dir);
    fs::create_directories(dir);
  }
  ~RecipeDir() { fs::remove_all(dir); }
  fs::path write(const std::string& name, const std::string& text) const {
    std::ofstream(dir / name, std::ios::binary) << text;
    return dir / name;
  }
};

// Runs `TRAIN=.. TEST=.. [VALID=..] TIME=SECS RECUR=<built recur> bash scripts/recipe.sh ARGS`,
// on one thread unless ENV says THREADS=.
CliResult run_recipe(const std::string& args, const fs::path& dir, const std::string& env) {
  const std::string out = (dir / "stdout.txt").string(), err = (dir / "stderr.txt").string();
  const std::string cmd = "THREADS=1 " + env + " OUT='" + (dir / "run").string() + "' RECUR='" + RECUR_CLI + "' bash '" +
                          RECUR_SOURCE_DIR + "/scripts/recipe.sh' " + args + " >'" + out + "' 2>'" + err + "'";
  const int status = std::system(cmd.c_str());
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, slurp(out), slurp(err)};
}

std::string last_line(const std::string& s) {
  std::string t = s;
  while (!t.empty() && t.back() == '\n') t.pop_back();
  const size_t nl = t.rfind('\n');
  return nl == std::string::npos ? t : t.substr(nl + 1);
}

// Sentences whose label is the presence of a word, so a few seconds of training learn something.
std::string labelled_lines(int n, int offset) {
  std::string s;
  const char* good[] = {"great", "good", "lovely", "fine"};
  const char* bad[] = {"awful", "bad", "poor", "broken"};
  for (int i = 0; i < n; ++i) {
    const int k = i + offset;
    const bool pos = k % 2 == 0;
    s += std::string("the phone is ") + (pos ? good[k % 4] : bad[k % 4]) + " and arrived on day " +
         std::to_string(k % 7) + "\t" + (pos ? "1" : "0") + "\n";
  }
  return s;
}

// The words of a GloVe text file (the first field of each line), as the recipes' vectors hold them.
std::set<std::string> vector_words(const fs::path& path) {
  std::set<std::string> words;
  std::istringstream vec(slurp(path));
  for (std::string line; std::getline(vec, line);) words.insert(line.substr(0, line.find(' ')));
  return words;
}

std::string conll_sentences(int n, int offset) {
  std::string s;
  const char* names[] = {"John", "Mary", "Paris", "Berlin"};
  const char* types[] = {"I-PER", "I-PER", "I-LOC", "I-LOC"};
  for (int i = 0; i < n; ++i) {
    const int k = (i + offset) % 4;
    s += std::string(names[k]) + " NNP I-NP " + types[k] + "\nwent VBD I-VP O\nhome NN I-NP O\n. . O O\n\n";
  }
  return s;
}

}  // namespace

TEST(Recipes, ListNamesEveryRecipeAndUnknownNamesExitTwo) {
  RecipeDir d("list");
  CliResult r = run_recipe("--list", d.dir, "");
  ASSERT_EQ(r.rc, 0) << r.err;
  for (const char* n : {"conll-ner", "wnut-ner", "uci-sentiment", "emojify", "eng-fra", "ptb-small", "jsb-music"})
    EXPECT_NE(r.out.find(n), std::string::npos) << n;
  r = run_recipe("no-such-recipe", d.dir, "");
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.err.find("unknown recipe 'no-such-recipe'"), std::string::npos) << r.err;
  r = run_recipe("uci-sentiment", d.dir, "TRAIN='" + (d.dir / "missing.txt").string() + "' TIME=1");
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.err.find("cannot read"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("missing.txt"), std::string::npos) << r.err;
}

TEST(Recipes, ClassificationRecipeSelectsOnTrainAndReportsTest) {
  RecipeDir d("uci");
  const fs::path train = d.write("train.txt", labelled_lines(200, 0));
  const fs::path test = d.write("test.txt", labelled_lines(40, 1000));
  const CliResult r = run_recipe("uci-sentiment --epochs 3", d.dir,
                                 "UNLABELLED='' TRAIN='" + train.string() + "' TEST='" + test.string() + "' TIME=20");
  ASSERT_EQ(r.rc, 0) << r.err;
  const std::string last = last_line(r.out);
  std::smatch m;
  ASSERT_TRUE(std::regex_match(last, m, std::regex(R"(uci-sentiment: accuracy ([0-9.]+)% on .*test\.txt)"))) << last;
  const double acc = std::stod(m[1]);
  EXPECT_GE(acc, 0.0);
  EXPECT_LE(acc, 100.0);
  // The model was selected on 15% of TRAIN (30 of 200 lines), the test file untouched.
  EXPECT_NE(r.err.find("170 training and 30 validation examples"), std::string::npos) << r.err;
  // It started from vectors learned on TRAIN's text as the classifier splits it (--task-words):
  // every word of these lines has its vector.
  std::smatch v;
  ASSERT_TRUE(std::regex_search(r.err, v, std::regex(R"(words\.vec: vectors for ([0-9]+) of ([0-9]+) words)"))) << r.err;
  EXPECT_GT(std::stoi(v[1]), 0);
  EXPECT_EQ(v[1], v[2]);
  // Ten members, seeds 1-5 on each of two sets of vectors, each trained again on all 200 lines
  // for its best epoch count (the user's --epochs 3 bounds the first training only), and the
  // last line is their ensemble.
  size_t retrained = 0;
  for (size_t at = 0; (at = r.err.find("200 training and 0 validation examples", at)) != std::string::npos; ++at)
    ++retrained;
  EXPECT_EQ(retrained, 10u) << r.err;
  EXPECT_NE(r.err.find("member 9 (vectors 2, seed 5): best epoch"), std::string::npos) << r.err;
  // A first training leaves its metrics (the epoch was read from them), not its checkpoints.
  EXPECT_TRUE(fs::exists(d.dir / "run/member9/metrics.jsonl"));
  EXPECT_FALSE(fs::exists(d.dir / "run/member9/best.safetensors"));
  EXPECT_FALSE(fs::exists(d.dir / "run/member9/last.safetensors"));
  EXPECT_NE(slurp(d.dir / "run/data/words.vec"), slurp(d.dir / "run/data/words2.vec"));
  std::string members;
  for (int k = 1; k < 10; ++k) members += (k > 1 ? "," : "") + (d.dir / "run" / ("all" + std::to_string(k)) / "last.safetensors").string();
  const CliResult e = recur::test::run_recur(
      "eval '" + (d.dir / "run/all0/last.safetensors").string() + "' '" + test.string() + "' --ensemble '" + members + "' --json", d.dir);
  ASSERT_EQ(e.rc, 0) << e.err;
  std::smatch ev;
  ASSERT_TRUE(std::regex_search(e.out, ev, std::regex(R"("value":([0-9.eE+-]+))"))) << e.out;
  EXPECT_NEAR(std::stod(ev[1]) * 100, acc, 0.006);
  // The members read each word's characters too (--char-rnn).
  const CliResult info = recur::test::run_recur("info '" + (d.dir / "run/all0/last.safetensors").string() + "'", d.dir);
  ASSERT_EQ(info.rc, 0) << info.err;
  EXPECT_NE(info.out.find("char_rnn(rnn lstm 1x25 bi)"), std::string::npos) << info.out;
}

TEST(Recipes, ClassificationRecipeTakesItsSeedAndMemberCount) {
  RecipeDir d("uci_members");
  const fs::path train = d.write("train.txt", labelled_lines(100, 0));
  const fs::path test = d.write("test.txt", labelled_lines(20, 1000));
  const std::string files = "UNLABELLED='' TRAIN='" + train.string() + "' TEST='" + test.string() + "' TIME=8";
  CliResult r = run_recipe("uci-sentiment --epochs 2 --seed 7", d.dir, "MEMBERS=2 " + files);
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.err.find("member 0 (vectors 1, seed 7)"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("member 1 (vectors 1, seed 8)"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("member 3 (vectors 2, seed 8)"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("member 4"), std::string::npos) << r.err;
  EXPECT_TRUE(std::regex_search(last_line(r.out), std::regex(R"(^uci-sentiment: accuracy [0-9.]+% on )"))) << r.out;
  // Two threads train two members side by side, one thread each: the same members, so the same
  // ensemble to the last digit of its loss (a generous TIME: no member may be cut short).
  const std::string slow = "UNLABELLED='' TRAIN='" + train.string() + "' TEST='" + test.string() + "' TIME=240";
  const auto ensemble_eval = [&] {
    const fs::path run = d.dir / "run";
    return recur::test::run_recur("eval '" + (run / "all0/last.safetensors").string() + "' '" + test.string() +
                                      "' --ensemble '" + (run / "all1/last.safetensors").string() + "," +
                                      (run / "all2/last.safetensors").string() + "," +
                                      (run / "all3/last.safetensors").string() + "' --json",
                                  d.dir);
  };
  r = run_recipe("uci-sentiment --epochs 2 --seed 7", d.dir, "MEMBERS=2 " + slow);
  ASSERT_EQ(r.rc, 0) << r.err;
  const CliResult one = ensemble_eval();
  r = run_recipe("uci-sentiment --epochs 2 --seed 7", d.dir, "MEMBERS=2 THREADS=2 " + slow);
  ASSERT_EQ(r.rc, 0) << r.err;
  const CliResult two = ensemble_eval();
  ASSERT_EQ(one.rc, 0) << one.err;
  EXPECT_NE(one.out.find("\"loss\":"), std::string::npos) << one.out;
  EXPECT_EQ(one.out, two.out);
  r = run_recipe("uci-sentiment", d.dir, "MEMBERS=none " + files);
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.err.find("MEMBERS='none'"), std::string::npos) << r.err;
  r = run_recipe("uci-sentiment --seed=x", d.dir, "MEMBERS=1 " + files);
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.err.find("--seed 'x', expected a non-negative integer"), std::string::npos) << r.err;
  // --seed=S reads as --seed S.
  r = run_recipe("uci-sentiment --seed=9 --epochs=1", d.dir, "MEMBERS=1 " + files);
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.err.find("member 1 (vectors 2, seed 9)"), std::string::npos) << r.err;
}

TEST(Recipes, TaggingRecipeReportsEntityF1OnTheGivenTest) {
  RecipeDir d("ner");
  const fs::path train = d.write("train.conll", conll_sentences(60, 0));
  const fs::path test = d.write("test.conll", conll_sentences(8, 1));
  // Word vectors from the training tokens and one small file of running text (UNLABELLED), so
  // the test needs no corpus.
  const fs::path text = d.write("text.txt", "Germany's capital, Berlin, isn't small.\nGermany's capital, Berlin, isn't small.\n");
  const CliResult r = run_recipe("conll-ner --epochs 2 --hidden 8 --char-hidden 4 --char-embed 4", d.dir,
                                 "UNLABELLED='" + text.string() + "' TRAIN='" + train.string() + "' TEST='" + test.string() +
                                     "' TIME=20");
  ASSERT_EQ(r.rc, 0) << r.err;
  // The running text was split as CoNLL files are before the vectors were learned: its words
  // are the tagger's words ("germany" and "'s", never "germany's" or "berlin,").
  const std::set<std::string> vec_words = vector_words(d.dir / "run/data/words.vec");
  for (const char* w : {"germany", "'s", "capital", ",", "berlin", "is", "n't", "small", "."})
    EXPECT_TRUE(vec_words.count(w)) << w;
  for (const char* w : {"germany's", "capital,", "berlin,", "isn't", "small."}) EXPECT_FALSE(vec_words.count(w)) << w;
  std::smatch m;
  const std::string last = last_line(r.out);
  ASSERT_TRUE(std::regex_match(last, m, std::regex(R"(conll-ner: entity F1 ([0-9.]+) on .*test\.conll)"))) << last;
  EXPECT_LE(std::stod(m[1]), 100.0);
  // Selected on examples drawn from TRAIN's 60 sentences (a tenth on average), not on TEST's 8.
  std::smatch n;
  ASSERT_TRUE(std::regex_search(r.err, n, std::regex(R"(([0-9]+) training and ([0-9]+) validation examples)"))) << r.err;
  EXPECT_EQ(std::stoi(n[1]) + std::stoi(n[2]), 60);
  EXPECT_GT(std::stoi(n[2]), 0);
  // The tagger started from the vectors recur embed learned first.
  EXPECT_TRUE(std::regex_search(r.err, std::regex(R"(words\.vec: vectors for [1-9][0-9]* of [0-9]+ words \(fine-tuned\))")))
      << r.err;
}

TEST(Recipes, WnutRecipeAddsTheVectorsWordsToTheVocabulary) {
  RecipeDir d("wnut");
  const fs::path train = d.write("train.conll", conll_sentences(60, 0));
  const fs::path test = d.write("test.conll", conll_sentences(8, 1));
  const CliResult r = run_recipe("wnut-ner --epochs 2 --hidden 8 --char-hidden 4 --char-embed 4", d.dir,
                                 "UNLABELLED='' TRAIN='" + train.string() + "' TEST='" + test.string() + "' TIME=20");
  ASSERT_EQ(r.rc, 0) << r.err;
  const std::string last = last_line(r.out);
  EXPECT_TRUE(std::regex_match(last, std::regex(R"(wnut-ner: entity F1 [0-9.]+ on .*test\.conll)"))) << last;
  // The tagger started from the learned vectors. It reads its words lower-cased and the vectors
  // were learned from lower-cased text, so every vocabulary word has one (were only one side
  // lower-cased, "John" or "john" would have none).
  std::smatch m;
  ASSERT_TRUE(std::regex_search(r.err, m, std::regex(R"(words\.vec: vectors for ([0-9]+) of ([0-9]+) words)"))) << r.err;
  EXPECT_GT(std::stoi(m[1]), 0);
  EXPECT_EQ(m[1].str(), m[2].str()) << r.err;
  EXPECT_TRUE(recur::load_task_checkpoint((d.dir / "run/best.safetensors").string()).model.task.lower_words);
}

// --no-FLAG turns off a switch the recipe sets: the tagger reads words as written, and its
// vectors are learned from the text as written too.
TEST(Recipes, NoFlagTurnsOffARecipesSwitch) {
  RecipeDir d("wnut_no");
  const fs::path train = d.write("train.conll", conll_sentences(60, 0));
  const fs::path test = d.write("test.conll", conll_sentences(8, 1));
  const CliResult r = run_recipe("wnut-ner --epochs 1 --hidden 8 --char-hidden 4 --char-embed 4 --no-lower-words", d.dir,
                                 "UNLABELLED='' TRAIN='" + train.string() + "' TEST='" + test.string() + "' TIME=20");
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_FALSE(recur::load_task_checkpoint((d.dir / "run/best.safetensors").string()).model.task.lower_words);
  const std::set<std::string> vec_words = vector_words(d.dir / "run/data/words.vec");
  EXPECT_TRUE(vec_words.count("John"));
  EXPECT_FALSE(vec_words.count("john"));
}

// The default validation split of a task model: 200 examples, kept between 5% and 20% of the
// file (a 100-line file validates on about 20, not 5; a 10,000-line one on about 500, not 2,000).
// eng-fra: an attention model (recur info shows the layer), beam 5 with unk replacement, BLEU on
// TEST's pairs; the best epoch chosen on a split of TRAIN.
TEST(Recipes, TranslationRecipeTrainsAttentionAndReportsBleu) {
  RecipeDir d("mt");
  std::string pairs, test;
  const char* en[] = {"red", "green", "blue", "black"};
  const char* fr[] = {"rouge", "vert", "bleu", "noir"};
  for (int i = 0; i < 120; ++i) {
    const int a = i % 4, b = (i / 4) % 4;
    (i % 10 == 0 ? test : pairs) += std::string("the ") + en[a] + " " + en[b] + " car .\tla voiture " + fr[a] + " " + fr[b] + " .\n";
  }
  const fs::path train_file = d.write("train.txt", pairs), test_file = d.write("test.txt", test);
  const CliResult r = run_recipe("eng-fra --epochs 2 --hidden 16 --embed 8", d.dir,
                                 "TRAIN='" + train_file.string() + "' TEST='" + test_file.string() + "' TIME=20");
  ASSERT_EQ(r.rc, 0) << r.err;
  std::smatch m;
  const std::string last = last_line(r.out);
  ASSERT_TRUE(std::regex_match(last, m, std::regex(R"(eng-fra: BLEU ([0-9.]+) \(beam 5\) on .*test\.txt)"))) << last;
  EXPECT_LE(std::stod(m[1]), 100.0);
  EXPECT_NE(r.err.find("attn(attention general 16)"), std::string::npos) << r.err;
  // Selected on a part of TRAIN's 108 pairs (5%, drawn per example), not on TEST's 12.
  std::smatch n;
  ASSERT_TRUE(std::regex_search(r.err, n, std::regex(R"(([0-9]+) training and ([0-9]+) validation examples)"))) << r.err;
  EXPECT_EQ(std::stoi(n[1]) + std::stoi(n[2]), 108);
  EXPECT_GT(std::stoi(n[2]), 0);
}

TEST(ValidationDefault, TaskModelsHoldOutEnoughExamplesAndLanguageModelsFivePercent) {
  RecipeDir d("validdefault");
  for (const auto& [lines, lo, hi] : {std::tuple{100, 12, 30}, std::tuple{1000, 160, 240}, std::tuple{10000, 420, 580}}) {
    const fs::path train = d.write("train" + std::to_string(lines) + ".txt", labelled_lines(lines, 0));
    const CliResult r = recur::test::run_recur(
        "train '" + train.string() + "' --task classify --steps 1 --hidden 4 --embed 4 --threads 1 --force --out '" +
            (d.dir / "run").string() + "'",
        d.dir);
    ASSERT_EQ(r.rc, 0) << r.err;
    std::smatch n;
    ASSERT_TRUE(std::regex_search(r.err, n, std::regex(R"(([0-9]+) training and ([0-9]+) validation examples)"))) << r.err;
    EXPECT_EQ(std::stoi(n[1]) + std::stoi(n[2]), lines);
    EXPECT_GE(std::stoi(n[2]), lo) << lines << " lines";
    EXPECT_LE(std::stoi(n[2]), hi) << lines << " lines";
    // An explicit --valid-fraction is taken as given.
    const CliResult g = recur::test::run_recur(
        "train '" + train.string() + "' --task classify --valid-fraction 0.5 --steps 1 --hidden 4 --embed 4 --threads 1 "
        "--force --out '" + (d.dir / "run").string() + "'",
        d.dir);
    ASSERT_EQ(g.rc, 0) << g.err;
    ASSERT_TRUE(std::regex_search(g.err, n, std::regex(R"(([0-9]+) training and ([0-9]+) validation examples)"))) << g.err;
    EXPECT_NEAR(std::stoi(n[2]), lines / 2, lines / 5 + 10);
  }
}
