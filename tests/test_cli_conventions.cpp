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
#include "test_util.h"

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

class CliConventions : public recur::test::TempDirTest {
 protected:
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

// ---- 2. --quiet ----

TEST_F(CliConventions, QuietPrintsOnlyTheFinalResultAndMetricsKeepEverything) {
  const std::string data = write("train.txt", word_text(120)), test = write("test.txt", word_text(20));
  const std::string args = " --level word --epochs 3 --test '" + test + "'" + kTiny;
  const Result loud = run("train '" + data + "' --out '" + path("loud") + "'" + args);
  ASSERT_EQ(loud.rc, 0) << loud.err;
  const Result quiet = run("train '" + data + "' --out '" + path("quiet") + "' --quiet" + args);
  ASSERT_EQ(quiet.rc, 0) << quiet.err;
  const auto count = [](const std::string& s, const std::string& prefix) {
    int n = 0;
    for (const std::string& l : lines_of(s)) n += l.rfind(prefix, 0) == 0;
    return n;
  };
  // Without --quiet one validation line per epoch; with it none, and no train lines.
  EXPECT_EQ(count(loud.out, "valid step"), 3) << loud.out;
  EXPECT_EQ(count(quiet.out + quiet.err, "valid"), 0) << quiet.out << quiet.err;
  EXPECT_EQ(count(quiet.out + quiet.err, "step "), 0) << quiet.out << quiet.err;
  // The final result: the test line and the saved models with the best validation loss.
  EXPECT_EQ(count(quiet.out, "test  step"), 1) << quiet.out;
  EXPECT_NE(quiet.err.find("recur: saved " + path("quiet") + "/last.safetensors and "), std::string::npos) << quiet.err;
  EXPECT_NE(quiet.err.find("(valid loss "), std::string::npos) << quiet.err;
  // metrics.jsonl is the same record either way: every train, valid and test line.
  int train = 0, valid = 0, tst = 0;
  for (const auto& j : metrics(path("quiet"))) {
    train += j.at("type") == "train";
    valid += j.at("type") == "valid";
    tst += j.at("type") == "test";
  }
  EXPECT_EQ(valid, 3);
  EXPECT_EQ(tst, 1);
  EXPECT_EQ(train, last_train_step(path("quiet")));  // --log-every 1: one line per step
  EXPECT_GT(train, 3);
}

// ---- 3. resume hints that are true ----

TEST_F(CliConventions, TimeBudgetStopPrintsAHintThatContinuesTheRun) {
  // Names with a space: the hint must quote them for the shell.
  const std::string data = write("train data.txt", word_text(200));
  const std::string run_dir = path("timed run");
  const Result first = run("train '" + data + "' --out '" + run_dir + "' --level word --time 1 --quiet" + kTiny);
  ASSERT_EQ(first.rc, 0) << first.err;
  EXPECT_NE(first.err.find("--time budget of 1 s"), std::string::npos) << first.err;
  const std::string key = "recur: continue with: recur ";
  const size_t at = first.err.find(key);
  ASSERT_NE(at, std::string::npos) << first.err;
  const std::string hint = first.err.substr(at + key.size(), first.err.find('\n', at) - at - key.size());
  EXPECT_NE(hint.find("--resume"), std::string::npos) << hint;
  EXPECT_NE(hint.find("--time 1"), std::string::npos) << hint;
  const int64_t before = last_train_step(run_dir);
  ASSERT_GT(before, 0);
  // Followed literally, the hint continues the run from where it stopped.
  const Result second = run(hint);
  ASSERT_EQ(second.rc, 0) << second.err;
  EXPECT_EQ(second.err.find("nothing to do"), std::string::npos) << second.err;
  EXPECT_NE(second.err.find("resumed from " + run_dir + "/last.safetensors at step " + std::to_string(before)),
            std::string::npos) << second.err;
  EXPECT_GT(last_train_step(run_dir), before);
}

TEST_F(CliConventions, NothingToDoNamesTheBudgetAndTheFlagThatRaisesIt) {
  const std::string data = write("train.txt", word_text(60));
  ASSERT_EQ(run("train '" + data + "' --out '" + path("s") + "' --level word --steps 3 --quiet" + std::string(kTiny)).rc, 0);
  Result r = run("train '" + data + "' --out '" + path("s") + "' --resume");
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.err.find("nothing to do: the run in " + path("s") + " is at step 3"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("meets its --steps budget of 3; pass a larger --steps"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("continue with"), std::string::npos) << r.err;  // a finished run has no hint
  ASSERT_EQ(run("train '" + data + "' --out '" + path("e") + "' --level word --epochs 1 --quiet" + std::string(kTiny)).rc, 0);
  r = run("train '" + data + "' --out '" + path("e") + "' --resume");
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.err.find("meets its --epochs budget of 1; pass a larger --epochs"), std::string::npos) << r.err;
  // Raising it continues.
  r = run("train '" + data + "' --out '" + path("e") + "' --resume --epochs 2");
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(r.err.find("nothing to do"), std::string::npos) << r.err;
}

// ---- 4. eval explains its counts ----

TEST_F(CliConventions, EvalExplainsWhyScoredDiffersFromTokens) {
  const std::string data = write("train.txt", word_text(60));
  // Char stream: 20 characters (newlines included) cut into 3 streams of 6, 2 left out, and the
  // first character of each stream unpredicted: 3 x 5 = 15 scored.
  ASSERT_EQ(run("train '" + data + "' --out '" + path("c") + "' --steps 2 --quiet" + std::string(kTiny)).rc, 0);
  const std::string chars = write("c.txt", "the cat sat\non a ma\n");  // 12 + 8 = 20
  Result r = run("eval '" + path("c") + "/last.safetensors' '" + chars + "' --batch 3");
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("tokens      15 scored; 20 tokens"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("counts      20 tokens read as 3 streams of 6 (the last 2 left out); the first token of each "
                       "stream has no prediction: 3 x 5 = 15 scored"),
            std::string::npos) << r.out;
  // Word stream: 9 words and an <eos> per line (3) = 12 read, 2 streams of 6: 2 x 5 = 10 scored.
  const std::string words = write("w.txt", "the cat\nsat on a\nmat dog ran to\n");
  ASSERT_EQ(run("train '" + data + "' --out '" + path("w") + "' --level word --steps 2 --quiet" + std::string(kTiny)).rc, 0);
  r = run("eval '" + path("w") + "/last.safetensors' '" + words + "' --batch 2");
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("tokens      10 scored; 9 tokens"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("counts      9 tokens + 3 <eos> (one per line) = 12 read as 2 streams of 6; the first token of "
                       "each stream has no prediction: 2 x 5 = 10 scored"),
            std::string::npos) << r.out;
  // Lines mode: every token and each line's <eos>: 9 + 3 = 12 scored.
  ASSERT_EQ(run("train '" + data + "' --out '" + path("l") + "' --level word --mode lines --steps 2 --quiet" +
                std::string(kTiny)).rc, 0);
  r = run("eval '" + path("l") + "/last.safetensors' '" + words + "'");
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("tokens      12 scored; 9 tokens"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("counts      3 lines; each line's tokens and the <eos> ending it are predicted: 9 + 3 <eos> = 12 "
                       "scored"),
            std::string::npos) << r.out;
}

// ---- 5. info: a human summary for every kind, the raw state only with --json ----

TEST_F(CliConventions, InfoSummarizesEveryModelKindAndJsonHasTheRawState) {
  struct Kind {
    std::string kind, file, train;
  };
  std::string gen;
  for (int i = 0; i < 40; ++i) gen += std::string(i % 2 ? "A\tabab" : "B\tcdcd") + (i % 3 ? "a" : "") + "\n";
  std::string cls, tag, s2s;
  for (int i = 0; i < 40; ++i) {
    cls += std::string(i % 2 ? "good fine film" : "bad poor film") + "\t" + (i % 2 ? "pos" : "neg") + "\n";
    tag += std::string(i % 2 ? "mr X O\nSmith X B-PER\n\n" : "in X O\nRome X B-LOC\n\n");
    s2s += std::string(i % 2 ? "one two\ttwo one" : "three\tthree") + "\n";
  }
  const std::vector<Kind> kinds = {
      {"lm", write("lm.txt", word_text(40)), "--level word"},
      {"classify", write("cls.tsv", cls), "--task classify"},
      {"tag", write("tag.txt", tag), "--task tag"},
      {"seq2seq", write("s2s.tsv", s2s), "--task seq2seq"},
      {"generate", write("gen.tsv", gen), "--task generate"},
  };
  for (const Kind& k : kinds) {
    SCOPED_TRACE(k.kind);
    const std::string out = path("run_" + k.kind);
    const Result t = run("train '" + k.file + "' --out '" + out + "' " + k.train + " --steps 3 --quiet" + kTiny);
    ASSERT_EQ(t.rc, 0) << t.err;
    const std::string model = out + "/last.safetensors";
    const Result h = run("info '" + model + "'");
    ASSERT_EQ(h.rc, 0) << h.err;
    EXPECT_NE(h.out.find("trained      step 3, "), std::string::npos) << h.out;
    EXPECT_NE(h.out.find("data         " + k.file), std::string::npos) << h.out;
    EXPECT_EQ(h.out.find("train_state"), std::string::npos) << h.out;
    EXPECT_EQ(h.out.find('{'), std::string::npos) << h.out;
    const Result j = run("info '" + model + "' --json");
    ASSERT_EQ(j.rc, 0) << j.err;
    const nlohmann::json v = nlohmann::json::parse(j.out);  // throws (fails) if not JSON
    EXPECT_EQ(v.at("kind"), k.kind);
    EXPECT_EQ(v.at("file"), model);
    EXPECT_EQ(v.at("format"), "recur-model");
    EXPECT_GE(v.at("format_version").get<int>(), 1);
    EXPECT_GT(v.at("parameters").get<int64_t>(), 0);
    ASSERT_TRUE(v.at("train_state").is_object()) << j.out;
    EXPECT_EQ(v.at("train_state").at("step"), 3);
    if (k.kind == "lm") EXPECT_GT(v.at("vocabulary").get<int64_t>(), 12);
    else if (k.kind == "seq2seq") EXPECT_TRUE(v.at("labels").is_array());
    else EXPECT_EQ(v.at("labels").size(), k.kind == "tag" ? 3u : 2u);  // O B-PER B-LOC; pos neg; A B
  }
  // Music and the version-1 fixtures: a summary, and JSON naming the kind.
  for (const auto& [file, kind] : std::vector<std::pair<std::string, std::string>>{
           {"music", "music"}, {"tagger", "tag"}, {"seq2seq", "seq2seq"}, {"lm_char", "lm"}}) {
    SCOPED_TRACE(file);
    const std::string model = kFixtures + file + ".safetensors";
    const Result h = run("info " + model);
    ASSERT_EQ(h.rc, 0) << h.err;
    EXPECT_EQ(h.out.find('{'), std::string::npos) << h.out;
    EXPECT_NE(h.out.find("\ntrained      step "), std::string::npos) << h.out;
    const Result j = run("info " + model + " --json");
    ASSERT_EQ(j.rc, 0) << j.err;
    const nlohmann::json v = nlohmann::json::parse(j.out);
    EXPECT_EQ(v.at("kind"), kind);
    EXPECT_GT(v.at("parameters").get<int64_t>(), 0);
    EXPECT_TRUE(v.contains("train_state"));
  }
}

}  // namespace
