// End-to-end tests of the language-model commands (train, sample, score, eval, info) through
// the built `recur` binary, on small generated text in a temporary directory. Models are tiny
// (hidden 16, a few steps) so the whole file runs in seconds.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
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

class CliLm : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("recur_cli_lm_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    // A small corpus with structure a model picks up in a few steps.
    std::string text;
    const char* words[] = {"the", "cat", "sat", "on", "a", "mat", "dog", "ran", "to", "red", "house", "and"};
    uint32_t x = 12345;
    for (int line = 0; line < 120; ++line) {
      const int n = 3 + int((x = x * 1103515245u + 12345u) >> 16) % 6;
      for (int i = 0; i < n; ++i) {
        if (i) text += ' ';
        text += words[((x = x * 1103515245u + 12345u) >> 16) % 12];
      }
      text += '\n';
    }
    data_ = write("data.txt", text);
  }
  void TearDown() override {
    std::error_code ec;
    if (!HasFailure()) fs::remove_all(dir_, ec);
  }

  std::string write(const std::string& name, const std::string& bytes) {
    const fs::path p = dir_ / name;
    std::ofstream(p, std::ios::binary) << bytes;
    return p.string();
  }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  // Runs `recur <args>` (args are shell words, already quoted where needed).
  Result run(const std::string& args) { return recur::test::run_recur(args, dir_); }

  // A small, fast model: stream chars unless `extra` says otherwise.
  std::string tiny(const std::string& extra = "--layers 1") const {
    return "--hidden 16 --batch 4 --seq-len 12 --threads 1 --log-every 1 " + extra;
  }

  // The "loss" of every "train" line of a run's metrics, as written (full precision text).
  std::vector<std::string> train_losses(const std::string& run_dir) { return recur::test::metric_losses(run_dir); }

  // Fails with exactly one error line, the last on stderr ("recur: <note>" lines may come
  // before it when a run got as far as printing notes, as a diverging run does).
  void expect_one_line_error(const std::string& args, const std::string& needle, bool notes_allowed = false) {
    SCOPED_TRACE(args);
    const Result r = run(args);
    EXPECT_NE(r.rc, 0);
    ASSERT_FALSE(r.err.empty());
    ASSERT_EQ(r.err.back(), '\n');
    const size_t start = r.err.rfind('\n', r.err.size() - 2);
    const std::string last = r.err.substr(start == std::string::npos ? 0 : start + 1);
    EXPECT_EQ(last.rfind("recur: error: ", 0), 0u) << r.err;
    if (!notes_allowed) {
      EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    }
    EXPECT_EQ(r.err.find("recur: error: "), r.err.rfind("recur: error: ")) << "more than one error line: " << r.err;
    EXPECT_NE(last.find(needle), std::string::npos) << "expected \"" << needle << "\" in: " << r.err;
  }

  fs::path dir_;
  std::string data_;
};

TEST_F(CliLm, TrainSampleScoreEvalInfoOnChars) {
  const std::string run_dir = path("run");
  Result r = run("train '" + data_ + "' --out '" + run_dir + "' " + tiny("--layers 1 --steps 20 --valid-every 10"));
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_TRUE(fs::exists(run_dir + "/last.safetensors"));
  EXPECT_TRUE(fs::exists(run_dir + "/best.safetensors"));
  // Not a terminal: plain lines, no carriage-return updates.
  EXPECT_EQ(r.out.find('\r'), std::string::npos);
  EXPECT_NE(r.out.find("step 20 | epoch"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("bpc"), std::string::npos);

  // Every metrics line is JSON with the documented fields.
  std::istringstream metrics(slurp(run_dir + "/metrics.jsonl"));
  std::string line;
  int train = 0, valid = 0;
  while (std::getline(metrics, line)) {
    const auto j = nlohmann::json::parse(line);
    for (const char* k : {"type", "step", "epoch", "loss", "ppl", "bpc", "grad_norm", "clip_rate", "tokens_per_s", "lr",
                          "elapsed_s"})
      EXPECT_TRUE(j.contains(k)) << k << " missing in " << line;
    train += j["type"] == "train";
    valid += j["type"] == "valid";
  }
  EXPECT_EQ(train, 20);
  EXPECT_EQ(valid, 2);

  const std::string model = run_dir + "/best.safetensors";
  const Result s1 = run("sample '" + model + "' --length 80 --seed 7 --prime 'the '");
  const Result s2 = run("sample '" + model + "' --length 80 --seed 7 --prime 'the '");
  ASSERT_EQ(s1.rc, 0) << s1.err;
  EXPECT_EQ(s1.out, s2.out);
  EXPECT_EQ(s1.out.rfind("the ", 0), 0u) << s1.out;
  const Result s3 = run("sample '" + model + "' --length 80 --seed 8 --prime 'the '");
  EXPECT_NE(s1.out, s3.out);
  const Result greedy = run("sample '" + model + "' --length 40 --argmax --count 2");
  ASSERT_EQ(greedy.rc, 0) << greedy.err;
  const Result topk = run("sample '" + model + "' --length 40 --top-k 3 --top-p 0.9 --temperature 0.7");
  EXPECT_EQ(topk.rc, 0) << topk.err;

  // A prime with characters the model never saw: read as <unk> with a warning, no crash.
  const Result oov = run("sample '" + model + "' --length 10 --prime 'zé€'");
  EXPECT_EQ(oov.rc, 0) << oov.err;
  EXPECT_NE(oov.err.find("warning"), std::string::npos) << oov.err;
  EXPECT_EQ(oov.out.rfind("zé€", 0), 0u);

  const Result sc = run("score '" + model + "' 'the cat sat' 'a dog ran' --per-token");
  ASSERT_EQ(sc.rc, 0) << sc.err;
  EXPECT_NE(sc.out.find("ln_prob\tlog10_prob\ttokens\toov\tppl\tsentence"), std::string::npos);
  EXPECT_NE(sc.out.find("\tthe cat sat\n"), std::string::npos) << sc.out;
  EXPECT_NE(sc.out.find("p="), std::string::npos);
  EXPECT_NE(sc.out.find("# 2 sentence(s)"), std::string::npos);
  const Result sc_oov = run("score '" + model + "' 'zzz qq'");
  EXPECT_NE(sc_oov.out.find("out of vocabulary"), std::string::npos);
  EXPECT_NE(sc_oov.out.find("\t7\t5\t"), std::string::npos) << sc_oov.out;  // z z z, space, q q, \n: 7 tokens, 5 OOV
  const std::string sentences = write("sentences.txt", "the cat\n\nred house\n");
  const Result scf = run("score '" + model + "' --file '" + sentences + "'");
  EXPECT_NE(scf.out.find("# 2 sentence(s)"), std::string::npos) << scf.out;

  const Result ev = run("eval '" + model + "' '" + data_ + "'");
  ASSERT_EQ(ev.rc, 0) << ev.err;
  EXPECT_NE(ev.out.find("perplexity"), std::string::npos);
  EXPECT_NE(ev.out.find("bpc"), std::string::npos);

  const Result info = run("info '" + model + "'");
  ASSERT_EQ(info.rc, 0) << info.err;
  for (const char* k : {"lstm 1x16", "parameters", "vocabulary", "step 20", "best valid"})
    EXPECT_NE(info.out.find(k), std::string::npos) << k << " missing in " << info.out;
}

TEST_F(CliLm, WordLevelStreamAndLinesModes) {
  const std::string valid = write("valid.txt", "the cat ran\na red dog\n");
  const std::string test = write("test.txt", "the house sat\nzebra on a mat\n");
  Result r = run("train '" + data_ + "' --out '" + path("w") + "' --level word --max-vocab 10 --valid '" + valid +
                 "' --test '" + test + "' --cell gru " + tiny("--layers 1 --epochs 2 --embed 8"));
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("ppl"), std::string::npos);
  const std::string metrics = slurp(path("w") + "/metrics.jsonl");
  EXPECT_NE(metrics.find("\"type\":\"test\""), std::string::npos);
  const std::string wm = path("w") + "/best.safetensors";
  const Result s = run("sample '" + wm + "' --count 3 --length 30 --seed 2");
  ASSERT_EQ(s.rc, 0) << s.err;
  EXPECT_EQ(std::count(s.out.begin(), s.out.end(), '\n'), 3) << s.out;  // word models stop at <eos>: one line each
  const Result info = run("info '" + wm + "'");
  EXPECT_NE(info.out.find("vocabulary   10 words"), std::string::npos) << info.out;
  const Result sc = run("score '" + wm + "' 'the zebra'");
  EXPECT_NE(sc.out.find("\t3\t1\t"), std::string::npos) << sc.out;  // the zebra <eos>: 3 tokens, 1 OOV

  // Lines mode: every sample is one example on its own line.
  r = run("train '" + data_ + "' --out '" + path("l") + "' --mode lines --cell rnn " + tiny("--steps 10"));
  ASSERT_EQ(r.rc, 0) << r.err;
  const Result ls = run("sample '" + path("l") + "/last.safetensors' --count 4 --length 50");
  ASSERT_EQ(ls.rc, 0) << ls.err;
  EXPECT_EQ(std::count(ls.out.begin(), ls.out.end(), '\n'), 4) << ls.out;
  const Result ev = run("eval '" + path("l") + "/last.safetensors' '" + valid + "'");
  EXPECT_EQ(ev.rc, 0) << ev.err;
}

TEST_F(CliLm, InterruptedAndResumedRunIsBitIdentical) {
  for (const std::string mode : {"stream", "lines"}) {
    SCOPED_TRACE(mode);
    // Dropout and two layers, so the dropout generator, the carried state and the optimizer
    // moments all have to come back exactly.
    const std::string opts = tiny("--layers 2 --dropout 0.3 --valid-every 4 --mode " + mode);
    const std::string a = path("a_" + mode), b = path("b_" + mode);
    ASSERT_EQ(run("train '" + data_ + "' --out '" + a + "' " + opts + " --steps 9").rc, 0);
    ASSERT_EQ(run("train '" + data_ + "' --out '" + b + "' " + opts + " --steps 5").rc, 0);
    const Result r = run("train '" + data_ + "' --out '" + b + "' --resume --steps 9");
    ASSERT_EQ(r.rc, 0) << r.err;
    EXPECT_NE(r.err.find("resumed from"), std::string::npos);
    const auto la = train_losses(a), lb = train_losses(b);
    EXPECT_EQ(la.size(), 9u);
    EXPECT_EQ(la, lb);
    // The final weights agree too: same samples from both runs.
    EXPECT_EQ(run("sample '" + a + "/last.safetensors' --length 30").out,
              run("sample '" + b + "/last.safetensors' --length 30").out);
  }
  // Resuming a run that already met its budget is a no-op, not an error.
  const Result again = run("train '" + data_ + "' --out '" + path("b_stream") + "' --resume");
  EXPECT_EQ(again.rc, 0) << again.err;
  EXPECT_NE(again.err.find("nothing to do"), std::string::npos) << again.err;
}

TEST_F(CliLm, DivergenceKeepsTheLastGoodCheckpoint) {
  const std::string d = path("div");
  ASSERT_EQ(run("train '" + data_ + "' --out '" + d + "' " + tiny("--layers 1 --steps 2")).rc, 0);
  const std::string before = slurp(d + "/last.safetensors");
  expect_one_line_error("train '" + data_ + "' --out '" + d +
                            "' --resume --optimizer sgd --lr 1e6 --clip-norm 0 --steps 60",
                        "training diverged at step", true);
  EXPECT_EQ(slurp(d + "/last.safetensors"), before);
}

TEST_F(CliLm, BadInputsGiveOneLineErrors) {
  const std::string run_dir = path("ok");
  ASSERT_EQ(run("train '" + data_ + "' --out '" + run_dir + "' " + tiny("--layers 1 --steps 2")).rc, 0);
  const std::string model = run_dir + "/last.safetensors";
  const std::string bytes = slurp(model);
  const std::string truncated = write("truncated.safetensors", bytes.substr(0, bytes.size() / 2));
  std::string flipped = bytes;
  flipped[12] = '#';  // inside the JSON header
  const std::string corrupt = write("corrupt.safetensors", flipped);
  const std::string empty = write("empty.txt", "");
  const std::string bad = write("bad.txt", "abc\ndef\xC3\x28xyz\n");
  const std::string out = path("x");

  expect_one_line_error("train '" + path("missing.txt") + "' --out '" + out + "'", "no such file");
  expect_one_line_error("train '" + empty + "' --out '" + out + "'", "empty");
  expect_one_line_error("train '" + bad + "' --out '" + out + "'", "invalid UTF-8 at byte 7");
  expect_one_line_error("train '" + dir_.string() + "' --out '" + out + "'", "is a directory");
  expect_one_line_error("train '" + data_ + "' --out '" + out + "' --no-such-flag", "--no-such-flag");
  expect_one_line_error("train '" + data_ + "' --out '" + out + "' --lr -1", "--lr");
  expect_one_line_error("train '" + data_ + "' --out '" + out + "' --dropout 1", "--dropout");
  expect_one_line_error("train '" + data_ + "' --out '" + out + "' --hidden 0", "--hidden");
  expect_one_line_error("train '" + data_ + "' --out '" + out + "' --cell banana", "--cell");
  expect_one_line_error("train '" + data_ + "' --out '" + out + "' --bidirectional", "cannot read the future");
  expect_one_line_error("train '" + data_ + "' --out '" + run_dir + "'", "--resume");
  expect_one_line_error("train '" + data_ + "' --out '" + empty + "'", "is not a directory");
  expect_one_line_error("train '" + data_ + "' --out '" + run_dir + "' --resume --hidden 32", "--hidden 32");
  expect_one_line_error("train '" + bad + "' --out '" + run_dir + "' --resume", "bad.txt");
  EXPECT_FALSE(fs::exists(out)) << "a failed run must not leave a directory behind";

  expect_one_line_error("sample '" + truncated + "'", "truncated.safetensors");
  expect_one_line_error("sample '" + corrupt + "'", "corrupt.safetensors");
  expect_one_line_error("sample '" + path("missing.safetensors") + "'", "missing.safetensors");
  expect_one_line_error("sample '" + data_ + "'", "data.txt");
  expect_one_line_error("sample '" + model + "' --temperature 0", "temperature");
  expect_one_line_error("sample '" + model + "' --top-p 1.5", "top_p");
  expect_one_line_error("sample '" + model + "' --length -3", "--length");
  expect_one_line_error("sample '" + model + "' --prime-file '" + bad + "'", "invalid UTF-8");
  expect_one_line_error("score '" + model + "'", "no sentences");
  expect_one_line_error("score '" + truncated + "' 'the cat'", "truncated.safetensors");
  expect_one_line_error("eval '" + model + "' '" + empty + "'", "empty");
  expect_one_line_error("eval '" + model + "' '" + bad + "'", "invalid UTF-8");
  expect_one_line_error("info '" + corrupt + "'", "corrupt.safetensors");
  expect_one_line_error("bogus-command", "subcommand");

  // --help works for every command and exits 0.
  for (const char* cmd : {"train", "sample", "score", "eval", "info"}) {
    const Result h = run(std::string(cmd) + " --help");
    EXPECT_EQ(h.rc, 0) << cmd;
    EXPECT_NE(h.out.find("Usage"), std::string::npos) << cmd;
  }
}

}  // namespace
