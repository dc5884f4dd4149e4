// Command-line conventions of issue 18 through the built `recur` binary: `tag` writes every input
// line, `train --quiet` prints only the final result, a time-budget stop prints a resume hint that
// works when followed literally, `eval` explains its counts, and `info` summarizes every model kind
// (the raw train_state only with --json).
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "cli_run.h"

namespace fs = std::filesystem;

namespace {

using Result = recur::test::CliResult;
using recur::test::slurp;

const std::string kFixtures = std::string(RECUR_SOURCE_DIR) + "/tests/fixtures/v1/";

std::vector<std::string> lines_of(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  std::string l;
  while (std::getline(in, l)) out.push_back(l);
  return out;
}

class CliConventions : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("recur_cli_conv_" + std::to_string(::getpid()) + "_" +
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
  // The metrics.jsonl lines of a run directory, parsed.
  std::vector<nlohmann::json> metrics(const std::string& run_dir) {
    std::vector<nlohmann::json> out;
    for (const std::string& l : lines_of(slurp(fs::path(run_dir) / "metrics.jsonl")))
      if (!l.empty()) out.push_back(nlohmann::json::parse(l));
    return out;
  }
  int64_t last_train_step(const std::string& run_dir) {
    int64_t s = -1;
    for (const auto& j : metrics(run_dir))
      if (j.at("type") == "train") s = j.at("step").get<int64_t>();
    return s;
  }
  fs::path dir_;
};

// Word text of 120 lines from a 12-word vocabulary.
std::string word_text(int lines) {
  const char* words[] = {"the", "cat", "sat", "on", "a", "mat", "dog", "ran", "to", "red", "house", "and"};
  uint32_t x = 12345;
  std::string text;
  for (int line = 0; line < lines; ++line) {
    const int n = 3 + int((x = x * 1103515245u + 12345u) >> 16) % 6;
    for (int i = 0; i < n; ++i) text += std::string(i ? " " : "") + words[((x = x * 1103515245u + 12345u) >> 16) % 12];
    text += '\n';
  }
  return text;
}

const char* kTiny = " --hidden 8 --embed 8 --batch 4 --threads 1 --log-every 1 ";

// ---- 1. tag keeps every input line, document separators included ----

TEST_F(CliConventions, TagWritesEveryInputLineDocstartIncluded) {
  const std::string input =
      "-DOCSTART- -X- O O\n\nAnna NNP I-NP I-PER\nworks VBZ I-VP O\n\n-DOCSTART- -X- O O\n\n"
      "Peter NNP I-NP I-PER\nsleeps VBZ I-VP O\n. . O O\n\n";
  const std::string file = write("in.conll", input);
  const Result r = run("tag " + kFixtures + "tagger.safetensors '" + file + "' --threads 1");
  ASSERT_EQ(r.rc, 0) << r.err;
  const auto in = lines_of(input), out = lines_of(r.out);
  ASSERT_EQ(out.size(), in.size()) << r.out;
  for (size_t i = 0; i < in.size(); ++i) {
    SCOPED_TRACE("line " + std::to_string(i + 1));
    if (in[i].empty()) {
      EXPECT_EQ(out[i], "");
    } else if (in[i].rfind("-DOCSTART-", 0) == 0) {
      EXPECT_EQ(out[i], in[i] + " O");  // the column count of the token lines (conlleval)
    } else {
      ASSERT_EQ(out[i].rfind(in[i] + " ", 0), 0u) << out[i];
      const std::string tag = out[i].substr(in[i].size() + 1);
      EXPECT_TRUE(tag == "O" || tag == "I-PER" || tag == "I-LOC") << tag;
    }
  }
}

}  // namespace
