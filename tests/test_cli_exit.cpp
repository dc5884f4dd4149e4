// The CLI's exit statuses as documented in docs/cli.md (0 success, 1 error, 2 usage error) and
// write errors on standard output: `recur info MODEL > /dev/full` used to exit 0, and usage
// errors exited with CLI11's internal codes (109 for an unknown flag).
#include <gtest/gtest.h>
#include <unistd.h>

#include <csignal>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "cli_run.h"
#include "recur/version.h"

namespace fs = std::filesystem;

namespace {

class CliExit : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("recur_cli_exit_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ec;
    if (!HasFailure()) fs::remove_all(dir_, ec);
  }
  recur::test::CliResult run(const std::string& args) { return recur::test::run_recur(args, dir_); }
  // Runs `recur ARGS > /dev/full` (stderr to a file) and returns the exit status and stderr.
  recur::test::CliResult run_to_full_disk(const std::string& args) {
    const std::string err = (dir_ / "stderr.txt").string();
    const std::string cmd = "'" + std::string(RECUR_CLI) + "' " + args + " >/dev/full 2>'" + err + "'";
    const int status = std::system(cmd.c_str());
    return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, "", recur::test::slurp(err)};
  }
  fs::path dir_;
};

const std::string kFixtures = std::string(RECUR_SOURCE_DIR) + "/tests/fixtures/v1/";

TEST_F(CliExit, UsageErrorsExitTwoWithOneLine) {
  for (const std::string& args : std::vector<std::string>{"train --no-such-flag x", "info", "sample " + kFixtures + "lm_char.safetensors --threads -3",
                                 "frobnicate", "sample " + kFixtures + "lm_char.safetensors --length many"}) {
    const auto r = run(args);
    EXPECT_EQ(r.rc, 2) << args << ": " << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << args << ": " << r.err;
    EXPECT_EQ(r.err.rfind("recur: error: ", 0), 0u) << args << ": " << r.err;
  }
}

TEST_F(CliExit, HelpAndVersionExitZero) {
  for (const char* args : {"--help", "train --help", "--version"}) {
    const auto r = run(args);
    EXPECT_EQ(r.rc, 0) << args << ": " << r.err;
    EXPECT_FALSE(r.out.empty()) << args;
  }
}

// A flag with a --no- form is listed by its two names, not CLI11's "--crf,--no-crf{false}"; the
// choice lists of other options keep their braces.
TEST_F(CliExit, HelpListsANegatableFlagByItsTwoNames) {
  const auto r = run("train --help");
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("  --crf,--no-crf  "), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("{false}"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("{true}"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("--cell TEXT:{lstm,gru,rnn,rnn_tanh,rnn_relu}=lstm"), std::string::npos) << r.out;
}

// The version has one source, CMake's project(VERSION ...): the generated header and the CLI must
// both carry it (RECUR_PROJECT_VERSION is passed by tests/CMakeLists.txt from the same variable).
TEST_F(CliExit, VersionIsTheProjectVersion) {
  EXPECT_STREQ(recur::kVersion, RECUR_PROJECT_VERSION);
  EXPECT_EQ(std::to_string(RECUR_VERSION_MAJOR) + "." + std::to_string(RECUR_VERSION_MINOR) + "." +
                std::to_string(RECUR_VERSION_PATCH),
            RECUR_PROJECT_VERSION);
  const auto r = run("--version");
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(r.out, std::string("recur ") + RECUR_PROJECT_VERSION + "\n");
}

TEST_F(CliExit, RuntimeErrorsExitOne) {
  const auto r = run("info '" + (dir_ / "absent.safetensors").string() + "'");
  EXPECT_EQ(r.rc, 1) << r.err;
  EXPECT_NE(r.err.find("absent.safetensors"), std::string::npos) << r.err;
}

TEST_F(CliExit, StandardOutputWriteErrorsAreErrors) {
  // A MIDI file to encode, written by recur itself.
  const std::string tokens = (dir_ / "tune.txt").string(), midi = (dir_ / "tune.mid").string();
  { std::ofstream(tokens) << "VELOCITY_19 NOTE_ON_60 TIME_SHIFT_500 NOTE_OFF_60\n"; }
  ASSERT_EQ(run("midi decode '" + tokens + "' -o '" + midi + "'").rc, 0);
  const std::string lm = kFixtures + "lm_char.safetensors";
  for (const std::string& args : std::vector<std::string>{"info " + lm, "sample " + lm + " --length 20 --seed 1", "score " + lm + " 'the cat'",
                                 "eval " + lm + " " + kFixtures + "lm_eval.txt", "midi encode '" + midi + "'",
                                 "info " + kFixtures + "tagger.safetensors"}) {
    const auto r = run_to_full_disk(args);
    EXPECT_EQ(r.rc, 1) << args << ": " << r.err;
    EXPECT_NE(r.err.find("recur: error: standard output: write failed"), std::string::npos)
        << args << ": " << r.err;
  }
}

// Under a file-size limit (ulimit -f) a write fails with a one-line error naming the file, the
// previous file stays as it was and no temporary is left: recur used to die of SIGXFSZ without a
// word, leaving *.tmp.<pid> files.
TEST_F(CliExit, FileSizeLimitIsAReportedErrorAndKeepsThePreviousFile) {
  std::string tune = "VELOCITY_19";
  for (int i = 0; i < 400; ++i) tune += " NOTE_ON_" + std::to_string(48 + i % 24) + " TIME_SHIFT_100 NOTE_OFF_" + std::to_string(48 + i % 24);
  const std::string tokens = (dir_ / "tune.txt").string(), midi = (dir_ / "tune.mid").string();
  { std::ofstream(tokens) << tune << "\n"; }
  ASSERT_EQ(run("midi decode '" + tokens + "' -o '" + midi + "'").rc, 0);
  const std::string out = (dir_ / "out.txt").string();
  { std::ofstream(out) << "previous content\n"; }
  // ulimit -f counts 1024-byte blocks: 1 block is far less than the 400-note token file.
  const std::string err = (dir_ / "err.txt").string();
  const std::string cmd = "ulimit -f 1; '" + std::string(RECUR_CLI) + "' midi encode '" + midi + "' -o '" + out + "' 2>'" + err + "'";
  const int status = std::system(("bash -c \"" + cmd + "\"").c_str());
  ASSERT_TRUE(WIFEXITED(status)) << "killed by a signal";
  EXPECT_EQ(WEXITSTATUS(status), 1);
  const std::string msg = recur::test::slurp(err);
  EXPECT_NE(msg.find("out.txt: cannot write the token file: File too large"), std::string::npos) << msg;
  EXPECT_EQ(std::count(msg.begin(), msg.end(), '\n'), 1) << msg;
  EXPECT_EQ(recur::test::slurp(out), "previous content\n");
  for (const auto& e : fs::directory_iterator(dir_))
    EXPECT_EQ(e.path().filename().string().find(".tmp."), std::string::npos) << e.path();
}

// Training under a file-size limit: the checkpoint write fails with a one-line error and an exit
// status of 1, not a silent death by SIGXFSZ, and no temporary file is left in the run directory.
TEST_F(CliExit, TrainingUnderAFileSizeLimitReportsTheFailedWrite) {
  const std::string data = (dir_ / "data.txt").string(), out = (dir_ / "run").string();
  {
    std::ofstream f(data);
    for (int i = 0; i < 200; ++i) f << "the quick brown fox jumps over the lazy dog " << i << "\n";
  }
  const std::string err = (dir_ / "err.txt").string();
  const std::string cmd = "ulimit -f 4; '" + std::string(RECUR_CLI) + "' train '" + data + "' --out '" + out +
                          "' --hidden 32 --layers 1 --steps 3 --threads 1 --quiet 2>'" + err + "'";
  const int status = std::system(("bash -c \"" + cmd + "\"").c_str());
  ASSERT_TRUE(WIFEXITED(status)) << "killed by a signal";
  EXPECT_EQ(WEXITSTATUS(status), 1);
  const std::string msg = recur::test::slurp(err);
  const size_t last = msg.rfind("recur: error: ");
  ASSERT_NE(last, std::string::npos) << msg;
  EXPECT_NE(msg.find("File too large", last), std::string::npos) << msg;
  for (const auto& e : fs::recursive_directory_iterator(dir_))
    EXPECT_EQ(e.path().filename().string().find(".tmp."), std::string::npos) << e.path();
}

// recur tag -o writes its file whole, as standard output would show it, and a failed write names
// the file and leaves the previous one (it used to write in place).
TEST_F(CliExit, TagOutputFileIsWrittenWhole) {
  const std::string model = kFixtures + "tagger.safetensors", input = kFixtures + "tag_eval.conll";
  const auto to_stdout = run("tag " + model + " " + input);
  ASSERT_EQ(to_stdout.rc, 0) << to_stdout.err;
  const std::string out = (dir_ / "tags.txt").string();
  const auto to_file = run("tag " + model + " " + input + " -o '" + out + "'");
  ASSERT_EQ(to_file.rc, 0) << to_file.err;
  EXPECT_EQ(recur::test::slurp(out), to_stdout.out);
  const std::string missing = (dir_ / "no_dir" / "tags.txt").string();
  const auto bad = run("tag " + model + " " + input + " -o '" + missing + "'");
  EXPECT_EQ(bad.rc, 1);
  EXPECT_NE(bad.err.find(missing + ": cannot write the tagged file: No such file or directory"), std::string::npos) << bad.err;
}

// A model too large for the memory there is: one line naming the sizes' flags, exit 1, instead of
// std::bad_alloc naming nothing (--hidden 1000000). The address-space limit stands in for a
// smaller machine; AddressSanitizer reserves more address space than that, so it is skipped there.
TEST_F(CliExit, ModelTooLargeForMemoryNamesTheFlags) {
  if (std::getenv("ASAN_OPTIONS")) GTEST_SKIP() << "ulimit -v and AddressSanitizer's shadow memory do not mix";
  const std::string data = (dir_ / "data.txt").string();
  {
    std::ofstream f(data);
    for (int i = 0; i < 50; ++i) f << "hello world " << i << "\n";
  }
  const std::string err = (dir_ / "err.txt").string();
  const std::string cmd = "ulimit -v 4000000; '" + std::string(RECUR_CLI) + "' train '" + data + "' --out '" +
                          (dir_ / "run").string() + "' --hidden 1000000 --steps 1 --threads 1 2>'" + err + "'";
  const int status = std::system(("bash -c \"" + cmd + "\"").c_str());
  ASSERT_TRUE(WIFEXITED(status)) << "killed by a signal";
  EXPECT_EQ(WEXITSTATUS(status), 1);
  const std::string msg = recur::test::slurp(err);
  EXPECT_NE(msg.find("recur: error: out of memory"), std::string::npos) << msg;
  EXPECT_NE(msg.find("--hidden 1000000"), std::string::npos) << msg;
  EXPECT_EQ(std::count(msg.begin(), msg.end(), '\n'), 1) << msg;
}

// Anywhere else an allocation fails, the error still names the request: the command line with
// its files, one line, exit 1 (it used to print "std::bad_alloc" alone). A sparse safetensors
// file declares a 400 MB tensor without using the disk; 500 MB of address space holds recur and
// its libraries (OpenBLAS alone maps 135 MB at start-up and spins forever below about 400 MB)
// but not that tensor as well.
TEST_F(CliExit, OutOfMemoryAnywhereNamesTheCommandLine) {
  if (std::getenv("ASAN_OPTIONS")) GTEST_SKIP() << "ulimit -v and AddressSanitizer's shadow memory do not mix";
  const std::string model = (dir_ / "sparse.safetensors").string();
  {
    const std::string header = R"({"w":{"dtype":"F32","shape":[100000000],"data_offsets":[0,400000000]}})";
    std::ofstream f(model, std::ios::binary);
    const uint64_t n = header.size();
    for (int i = 0; i < 8; ++i) f.put(char((n >> (8 * i)) & 0xff));
    f << header;
  }
  std::filesystem::resize_file(model, std::filesystem::file_size(model) + 400000000);  // a hole
  const std::string err = (dir_ / "err.txt").string();
  const std::string cmd = "ulimit -v 500000; timeout 60 '" + std::string(RECUR_CLI) + "' info '" + model + "' >/dev/null 2>'" + err + "'";
  const int status = std::system(("bash -c \"" + cmd + "\"").c_str());
  ASSERT_TRUE(WIFEXITED(status)) << "killed by a signal";
  EXPECT_EQ(WEXITSTATUS(status), 1);
  const std::string msg = recur::test::slurp(err);
  EXPECT_NE(msg.find("recur: error: out of memory running 'recur info " + model + "'"), std::string::npos) << msg;
  EXPECT_EQ(std::count(msg.begin(), msg.end(), '\n'), 1) << msg;
}


// Ctrl-C during training (apps/signals.h). The first SIGINT finishes the step, saves and exits
// 130 with a checkpoint that resumes; a second one ends the process by SIGINT itself.
// Interrupting the LSTM's oneDNN backward with a signal handler on the computing thread used to
// corrupt the heap in about one interrupted step in three ("corrupted size vs. prev_size"): the
// kernel's signal frame overwrote what oneDNN's JIT code keeps below its stack pointer. The loop
// below interrupts several runs at whatever step they are in; with the handler back, it fails
// with an abort (killed by SIGABRT) more often than not.
class CliSignal : public CliExit {
 protected:
  // Starts `recur ARGS...` with stdout and stderr in files of dir_; returns its pid.
  pid_t spawn(const std::vector<std::string>& args) {
    std::vector<std::string> argv{RECUR_CLI};
    argv.insert(argv.end(), args.begin(), args.end());
    const std::string out = (dir_ / "stdout.txt").string(), err = (dir_ / "stderr.txt").string();
    const pid_t pid = ::fork();
    if (pid == 0) {
      std::vector<char*> a;
      for (auto& s : argv) a.push_back(s.data());
      a.push_back(nullptr);
      if (!std::freopen(out.c_str(), "w", stdout) || !std::freopen(err.c_str(), "w", stderr)) ::_exit(127);
      ::execv(a[0], a.data());
      ::_exit(127);
    }
    return pid;
  }
  // Waits (at most a minute: a guard against a hang, not a timing) until `file` holds `needle`.
  static bool wait_for(const fs::path& file, const std::string& needle, pid_t pid) {
    for (int i = 0; i < 6000; ++i) {
      if (recur::test::slurp(file).find(needle) != std::string::npos) return true;
      int status = 0;
      if (::waitpid(pid, &status, WNOHANG) == pid) return false;  // ended before it got there
      ::usleep(10000);
    }
    return false;
  }
  std::string data() {
    const std::string p = (dir_ / "data.txt").string();
    std::ofstream f(p);
    for (int i = 0; i < 3000; ++i) f << "the quick brown fox " << i % 97 << " jumps over the lazy dog\n";
    return p;
  }
};

TEST_F(CliSignal, CtrlCSavesAndExits130AndTheRunResumes) {
  const std::string d = data(), out = (dir_ / "run").string();
  std::vector<std::string> args{"train", d, "--out", out, "--hidden", "128", "--layers", "2", "--seq-len", "64",
                                "--batch", "16", "--epochs", "1000", "--log-every", "1", "--threads", "1"};
  int last_step = 0;
  for (int round = 0; round < 4; ++round) {
    const size_t before = recur::test::slurp(fs::path(out) / "metrics.jsonl").size();
    const pid_t pid = spawn(args);
    ASSERT_GT(pid, 0);
    // Wait for a step of this invocation, then interrupt at some later point of the next ones.
    for (int i = 0; i < 6000 && recur::test::slurp(fs::path(out) / "metrics.jsonl").size() <= before; ++i)
      ::usleep(10000);
    ::usleep(20000 + 37000 * round);
    ASSERT_EQ(::kill(pid, SIGINT), 0);
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    const std::string err = recur::test::slurp(dir_ / "stderr.txt");
    ASSERT_TRUE(WIFEXITED(status)) << "round " << round << ": killed by signal "
                                   << (WIFSIGNALED(status) ? WTERMSIG(status) : 0) << "\n" << err;
    EXPECT_EQ(WEXITSTATUS(status), 130) << err;
    const size_t at = err.find("stopped at step ");
    ASSERT_NE(at, std::string::npos) << err;
    const int step = std::atoi(err.c_str() + at + 16);
    EXPECT_GT(step, last_step) << "round " << round << " did not continue the run\n" << err;
    last_step = step;
    EXPECT_NE(err.find("--resume"), std::string::npos) << "no hint how to continue\n" << err;
    if (round == 0) args.push_back("--resume");
  }
}

TEST_F(CliSignal, ASecondCtrlCEndsTheProcessAtOnce) {
  const std::string d = data(), out = (dir_ / "run").string();
  // Steps of a second or more, so that the second signal lands while the first step still runs.
  const pid_t pid = spawn({"train", d, "--out", out, "--hidden", "1024", "--layers", "1", "--seq-len", "200",
                           "--batch", "64", "--steps", "100", "--log-every", "1", "--threads", "1"});
  ASSERT_GT(pid, 0);
  ASSERT_TRUE(wait_for(dir_ / "stderr.txt", "parameters", pid)) << recur::test::slurp(dir_ / "stderr.txt");
  ASSERT_EQ(::kill(pid, SIGINT), 0);
  ::usleep(200000);
  ASSERT_EQ(::kill(pid, SIGINT), 0);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFSIGNALED(status)) << "exit " << WEXITSTATUS(status) << "\n" << recur::test::slurp(dir_ / "stderr.txt");
  EXPECT_EQ(WTERMSIG(status), SIGINT);
  EXPECT_FALSE(fs::exists(fs::path(out) / "last.safetensors"));
}

}  // namespace
