// Checkpoints written by recur's version-1 formats ("recur-lm" and "recur-model") keep loading and
// give the same numbers. tests/fixtures/v1/ holds five small models trained by the v1 code
// (commit 30d3d74, before the engine rework) and, in *.expected, exactly what that recur printed
// for the commands below (tests/fixtures/v1/make_v1_fixtures.sh made both). Each test runs the
// same commands with today's recur and compares the output byte for byte: evaluation numbers,
// per-token scores, tags, translations and seeded samples.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "cli_run.h"

namespace fs = std::filesystem;

namespace {

const fs::path kFixtures = fs::path(RECUR_SOURCE_DIR) / "tests" / "fixtures" / "v1";

class CheckpointV1 : public ::testing::Test {
 protected:
  void SetUp() override {
    // The commands name their files relative to the fixture folder (the output repeats them), so
    // they run in a copy of it.
    dir_ = fs::temp_directory_path() /
           ("recur_v1_" + std::to_string(::getpid()) + "_" + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    for (const auto& e : fs::directory_iterator(kFixtures)) fs::copy(e.path(), dir_ / e.path().filename());
  }
  void TearDown() override {
    std::error_code ec;
    if (!HasFailure()) fs::remove_all(dir_, ec);
  }

  // Takes out of `out` the lines today's recur adds to what v1 printed (issue 18), checking each:
  // eval's "counts" line, whose total must be the "tokens N scored" line's N, tag's
  // "-DOCSTART-" line (the tag "O" appended) with the blank line after it, and seq2seq eval's
  // "references" line (issue 17: how BLEU was scored). Returns their number.
  static int strip_added_lines(std::string& out) {
    std::istringstream in(out);
    std::string line, kept, scored;
    int added = 0;
    bool skip_blank = false;
    while (std::getline(in, line)) {
      if (skip_blank && line.empty()) {
        skip_blank = false;
        continue;
      }
      skip_blank = false;
      if (line.rfind("tokens      ", 0) == 0) scored = line.substr(12, line.find(" scored") - 12);
      if (line.rfind("counts      ", 0) == 0) {
        EXPECT_FALSE(scored.empty()) << line;
        EXPECT_EQ(line.substr(line.rfind(" = ") + 3), scored + " scored") << line;
        ++added;
        continue;
      }
      if (line.rfind("references  ", 0) == 0) {
        EXPECT_NE(line.find("sacreBLEU 13a tokens, exp smoothing"), std::string::npos) << line;
        ++added;
        continue;
      }
      if (line.rfind("-DOCSTART-", 0) == 0) {
        EXPECT_EQ(line.substr(line.size() - 2), " O") << line;
        skip_blank = true;
        ++added;
        continue;
      }
      kept += line + "\n";
    }
    out = kept;
    return added;
  }

  // Runs each command as make_v1_fixtures.sh did (`recur ARGS --threads 1 2>&1`) and compares
  // the concatenated output with NAME.expected, less the `added` lines that today's recur prints
  // in addition (strip_added_lines). `changed` lists lines whose v1 text is wrong by design, as
  // (v1 line, today's line): the expected text gets today's line in place of each v1 one.
  void expect_same_output(const std::string& name, const std::vector<std::string>& commands, int added = 0,
                          const std::vector<std::pair<std::string, std::string>>& changed = {}) {
    std::string out;
    for (const std::string& args : commands) {
      const fs::path o = dir_ / "out.txt";
      const std::string cmd = "cd '" + dir_.string() + "' && '" + RECUR_CLI + "' " + args + " --threads 1 >'" +
                              o.string() + "' 2>&1";
      const int status = std::system(cmd.c_str());
      ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << args << "\n" << recur::test::slurp(o);
      out += recur::test::slurp(o);
    }
    EXPECT_EQ(strip_added_lines(out), added);
    std::string want = recur::test::slurp(kFixtures / (name + ".expected"));
    for (const auto& [v1, today] : changed) {
      const std::string from = v1 + "\n", to = today + "\n";
      size_t n = 0;
      for (size_t i = 0; (i = want.find(from, i)) != std::string::npos; i += to.size(), ++n) want.replace(i, from.size(), to);
      EXPECT_GT(n, 0u) << "no line '" << v1 << "' in " << name << ".expected";
    }
    if (out == want) return;
    // Printed metrics may differ in their last printed digit only: the product kernels (OpenBLAS
    // or oneDNN's sgemm) and the compiler (GCC's release build, clang's sanitizer build) sum in
    // different orders, and a loss printed to 6 decimals can round either way. Every other
    // character must be the same.
    EXPECT_TRUE(same_up_to_last_digit(out, want)) << "output:\n" << out << "\nexpected:\n" << want;
  }

  // Whitespace-separated tokens equal, except numbers printed with the same number of decimals
  // d, which may differ by one unit in the last place (10^-d).
  static bool same_up_to_last_digit(const std::string& a, const std::string& b) {
    std::istringstream la(a), lb(b);
    std::string x, y;
    while (true) {
      const bool ga = bool(std::getline(la, x)), gb = bool(std::getline(lb, y));
      if (ga != gb) return false;
      if (!ga) return true;
      std::istringstream ta(x), tb(y);
      std::string u, v;
      while (true) {
        const bool ha = bool(ta >> u), hb = bool(tb >> v);
        if (ha != hb) return false;
        if (!ha) break;
        if (u == v) continue;
        const size_t du = u.find('.'), dv = v.find('.');
        if (du == std::string::npos || dv == std::string::npos || u.size() - du != v.size() - dv) return false;
        char* end_u = nullptr;
        char* end_v = nullptr;
        const double nu = std::strtod(u.c_str(), &end_u), nv = std::strtod(v.c_str(), &end_v);
        if (*end_u != '\0' || *end_v != '\0') return false;
        const double ulp = std::pow(10.0, -double(u.size() - du - 1));
        if (std::abs(nu - nv) > 1.5 * ulp) return false;
      }
    }
  }

  fs::path dir_;
};

TEST_F(CheckpointV1, CharLanguageModel) {
  expect_same_output("lm_char", {"eval lm_char.safetensors lm_eval.txt",
                                 "score lm_char.safetensors 'the cat sat.' 'a bird sings' --per-token",
                                 "sample lm_char.safetensors --length 60 --seed 11 --temperature 0.9 --prime 'the '"},
                     1);
}

TEST_F(CheckpointV1, WordLanguageModelInLinesMode) {
  expect_same_output("lm_word", {"eval lm_word.safetensors lm_eval.txt",
                                 "score lm_word.safetensors 'the cat sat on the mat .' 'birds sing'",
                                 "sample lm_word.safetensors --count 3 --seed 12"},
                     1);
}

TEST_F(CheckpointV1, TaggerWithCharacterRnn) {
  expect_same_output("tagger", {"eval tagger.safetensors tag_eval.conll", "tag tagger.safetensors tag_eval.conll"}, 1);
}

// v1 printed BLEU 0.00: unsmoothed BLEU is 0 without a 4-gram match. Issue 17 made BLEU
// sacreBLEU's (13a tokens, exp smoothing), so that line changes, and only to the value the
// independent Python oracle gives for the same outputs and references
// (tests/golden/bleu/bleu.json, case "v1 fixture seq2seq"); the loss, exact match, decoded
// outputs and every other line must still be v1's, byte for byte.
TEST_F(CheckpointV1, Seq2seqGreedyAndBeam) {
  std::ifstream f(std::string(RECUR_GOLDEN_DIR) + "/bleu/bleu.json");
  ASSERT_TRUE(f.good());
  const nlohmann::json golden = nlohmann::json::parse(f);
  double bleu = -1;  // sacreBLEU's percent
  for (const auto& c : golden["corpus"])
    if (c["name"].get<std::string>().rfind("v1 fixture seq2seq", 0) == 0) bleu = c["bleu"].get<double>();
  ASSERT_GE(bleu, 0);
  char today[64];
  std::snprintf(today, sizeof today, "BLEU        %.2f", bleu);
  expect_same_output("seq2seq", {"eval seq2seq.safetensors s2s_eval.txt", "eval seq2seq.safetensors s2s_eval.txt --beam 3",
                                 "translate seq2seq.safetensors 'red green' 'blue black white'",
                                 "translate seq2seq.safetensors --beam 3 'red green' 'blue black white'"},
                     2, {{"BLEU        0.00", today}});
}

TEST_F(CheckpointV1, MusicModel) {
  expect_same_output("music", {"eval music.safetensors music_eval.txt", "sample music.safetensors --length 40 --seed 13"}, 1);
}

}  // namespace
