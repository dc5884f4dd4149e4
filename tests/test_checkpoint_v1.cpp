// Checkpoints written by recur's version-1 formats ("recur-lm" and "recur-model") keep loading and
// give the same numbers. tests/fixtures/v1/ holds five small models trained by the v1 code
// (commit 30d3d74, before the engine rework) and, in *.expected, exactly what that recur printed
// for the commands below (tests/fixtures/v1/make_v1_fixtures.sh made both). Each test runs the
// same commands with today's recur and compares the output byte for byte: evaluation numbers,
// per-token scores, tags, translations and seeded samples.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <sstream>
#include <string>
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
  // eval's "counts" line, whose total must be the "tokens N scored" line's N, and tag's
  // "-DOCSTART-" line (the tag "O" appended) with the blank line after it. Returns their number.
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
  // in addition (strip_added_lines).
  void expect_same_output(const std::string& name, const std::vector<std::string>& commands, int added = 0) {
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
    EXPECT_EQ(out, recur::test::slurp(kFixtures / (name + ".expected")));
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

TEST_F(CheckpointV1, Seq2seqGreedyAndBeam) {
  expect_same_output("seq2seq", {"eval seq2seq.safetensors s2s_eval.txt", "eval seq2seq.safetensors s2s_eval.txt --beam 3",
                                 "translate seq2seq.safetensors 'red green' 'blue black white'",
                                 "translate seq2seq.safetensors --beam 3 'red green' 'blue black white'"});
}

TEST_F(CheckpointV1, MusicModel) {
  expect_same_output("music", {"eval music.safetensors music_eval.txt", "sample music.safetensors --length 40 --seed 13"}, 1);
}

}  // namespace
