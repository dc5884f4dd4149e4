// Fault tests (issue 15): recur killed with SIGKILL at random moments of training, including
// while a checkpoint's temporary file exists, resumes to the same bits as a run never killed;
// a full disk (a small tmpfs) and a file-size limit (RLIMIT_FSIZE) during training, sampling and
// MIDI writing end in a one-line error and exit 1 with the previous files intact and no
// temporary file left. test_cli_exit.cpp covers standard output on /dev/full, `midi encode -o`
// under a size limit and a first training run under one; this file covers the rest.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/inotify.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "cli_run.h"
#include "test_util.h"
#include "recur/core/error.h"
#include "recur/data/task_data.h"
#include "recur/data/text_data.h"
#include "recur/data/vocab.h"
#include "recur/music/jsb_chorales.h"
#include "recur/music/music_tokens.h"

namespace fs = std::filesystem;
using recur::test::slurp;

namespace {

const std::string kFixtures = std::string(RECUR_SOURCE_DIR) + "/tests/fixtures/v1/";

std::string quote(const std::string& s) { return "'" + s + "'"; }

// Names of temporary files (`*.tmp.<pid>.<n>`) anywhere under `dir`.
std::vector<std::string> temporaries(const fs::path& dir) {
  std::vector<std::string> found;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::recursive_directory_iterator(); it.increment(ec))
    if (it->path().filename().string().find(".tmp.") != std::string::npos) found.push_back(it->path().string());
  return found;
}

// metrics.jsonl without its wall-clock fields (speeds and elapsed time), which no two runs share.
std::string metrics_without_times(const fs::path& run) {
  static const std::regex times(R"re("(tokens_per_s|examples_per_s|elapsed_s)":[-+0-9.eE]+)re");
  return std::regex_replace(slurp(run / "metrics.jsonl"), times, "\"$1\":T");
}

// A checkpoint's bytes with the run's wall-clock time (train_state's elapsed_s, in the header's
// metadata) masked, and the header's trailing padding dropped: the header otherwise, and every tensor byte, must be the same.
std::string checkpoint_without_times(const fs::path& file) {
  const std::string bytes = slurp(file);
  if (bytes.size() < 8) return bytes;
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = n << 8 | uint8_t(bytes[size_t(i)]);
  if (n > bytes.size() - 8) return bytes;
  static const std::regex elapsed(R"re(elapsed_s(\\?)":[-+0-9.eE]+)re");
  std::string header = std::regex_replace(bytes.substr(8, n), elapsed, "elapsed_s$1\":T");
  header.erase(header.find_last_not_of(' ') + 1);  // the padding to 8 bytes follows the length
  return header + "|" + bytes.substr(8 + n);
}

// Runs a shell command line (bash, so that `ulimit` works) and returns its exit status, or -1
// when it was killed by a signal (SIGXFSZ would be one).
int shell(const std::string& cmd) {
  const int status = std::system(("bash -c " + quote(cmd)).c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

class Fault : public recur::test::TempDirTest {
 protected:
  void SetUp() override {
    TempDirTest::SetUp();
    data_ = path("data.txt");
    std::ofstream f(data_);
    for (int i = 0; i < 120; ++i) f << "the quick brown fox " << i % 7 << " jumps over the lazy dog\n";
  }
  // The training command of every run here: a tiny model, a checkpoint every step so that kill
  // points fall inside checkpoint writes often, one thread so the bits do not depend on the
  // machine.
  std::vector<std::string> train_args(const std::string& out, bool resume) const {
    std::vector<std::string> a = {RECUR_CLI, "train", data_, "--out", out, "--hidden", "24", "--layers", "1",
                                  "--seq-len", "16", "--batch", "4", "--steps", std::to_string(kSteps),
                                  "--valid-every", "1", "--seed", "5", "--threads", "1", "--quiet"};
    if (resume) a.push_back("--resume");
    return a;
  }

  // Starts `args` with stdout/stderr to files in the test directory; returns the child's pid.
  pid_t spawn(const std::vector<std::string>& args) const {
    const std::string log = path("child.log");
    const pid_t pid = ::fork();
    if (pid == 0) {
      std::FILE* f = std::freopen(log.c_str(), "a", stdout);
      if (f) ::dup2(::fileno(stdout), 2);
      std::vector<char*> argv;
      for (const auto& s : args) argv.push_back(const_cast<char*>(s.c_str()));
      argv.push_back(nullptr);
      ::setenv("OPENBLAS_NUM_THREADS", "1", 1);
      ::setenv("OMP_NUM_THREADS", "1", 1);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    return pid;
  }
  static int wait_status(pid_t pid) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    return status;
  }
  // Runs to the end; the exit status (-1 for a signal).
  int run_to_end(const std::vector<std::string>& args) const {
    const int status = wait_status(spawn(args));
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

  // Finishes a run that was killed: resume if a checkpoint exists, otherwise start again (a run
  // killed before its first checkpoint has nothing to resume).
  void finish(const std::string& out) const {
    const bool has_checkpoint = fs::exists(fs::path(out) / "last.safetensors");
    EXPECT_EQ(run_to_end(train_args(out, has_checkpoint)), 0) << slurp(path("child.log"));
  }

  static constexpr int kSteps = 12;
  std::string data_;
};

// SIGKILL at seeded random moments, then resume: the final checkpoint and the logged metrics are
// the same bits as those of a run never interrupted, and no temporary file is left behind.
TEST_F(Fault, KillNineAtRandomMomentsThenResumeIsBitIdentical) {
  const std::string ref = path("ref");
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_EQ(run_to_end(train_args(ref, false)), 0) << slurp(path("child.log"));
  const double ref_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  const std::string ref_model = checkpoint_without_times(fs::path(ref) / "last.safetensors");
  ASSERT_FALSE(ref_model.empty());

  std::mt19937 rng(20261202);  // seeded: the same kill points on every run of the test
  for (int trial = 0; trial < 3; ++trial) {
    const std::string out = path("killed" + std::to_string(trial));
    // Kill once or twice per trial, each time a random fraction of the reference run's time in.
    const int kills = 1 + trial % 2;
    for (int k = 0; k < kills; ++k) {
      const bool resume = fs::exists(fs::path(out) / "last.safetensors");
      const pid_t pid = spawn(train_args(out, resume));
      const int delay_us = std::uniform_int_distribution<int>(0, static_cast<int>(ref_ms * 1000))(rng);
      std::this_thread::sleep_for(std::chrono::microseconds(delay_us));
      ::kill(pid, SIGKILL);
      wait_status(pid);
    }
    finish(out);
    EXPECT_TRUE(checkpoint_without_times(fs::path(out) / "last.safetensors") == ref_model) << "trial " << trial << ": checkpoints differ";
    EXPECT_EQ(metrics_without_times(out), metrics_without_times(ref)) << "trial " << trial;
    EXPECT_TRUE(temporaries(out).empty()) << temporaries(out).front();
  }
}

// SIGKILL while a checkpoint's temporary file exists (seen through inotify on the run directory):
// the temporary stays behind after the kill, the resumed run removes it, and the result is the
// same bits as the uninterrupted run.
TEST_F(Fault, KillNineInsideACheckpointWriteThenResumeIsBitIdentical) {
  const std::string ref = path("ref");
  ASSERT_EQ(run_to_end(train_args(ref, false)), 0) << slurp(path("child.log"));
  const std::string ref_model = checkpoint_without_times(fs::path(ref) / "last.safetensors");

  std::mt19937 rng(15);
  int caught = 0;
  for (int attempt = 0; attempt < 12 && caught < 2; ++attempt) {
    const std::string out = path("killed" + std::to_string(attempt));
    fs::create_directories(out);
    const int fd = ::inotify_init1(IN_CLOEXEC);
    ASSERT_GE(fd, 0);
    ASSERT_GE(::inotify_add_watch(fd, out.c_str(), IN_CREATE), 0);
    // Skip a random number of temporaries first so the kill lands in a later checkpoint.
    int skip = std::uniform_int_distribution<int>(0, 5)(rng);
    const pid_t pid = spawn(train_args(out, false));
    alignas(inotify_event) char buf[4096];
    bool killed = false;
    while (!killed) {
      const ssize_t n = ::read(fd, buf, sizeof buf);
      if (n <= 0) break;
      for (char* p = buf; p < buf + n && !killed;) {
        const auto* ev = reinterpret_cast<const inotify_event*>(p);
        if (ev->len > 0 && std::string(ev->name).find(".tmp.") != std::string::npos && skip-- <= 0) {
          ::kill(pid, SIGKILL);
          killed = true;
        }
        p += sizeof(inotify_event) + ev->len;
      }
      // The run ended without a kill: stop watching.
      int status = 0;
      if (!killed && ::waitpid(pid, &status, WNOHANG) == pid) break;
    }
    ::close(fd);
    if (killed) wait_status(pid);
    if (!killed || temporaries(out).empty()) {
      fs::remove_all(out);
      continue;
    }
    ++caught;
    finish(out);
    EXPECT_TRUE(checkpoint_without_times(fs::path(out) / "last.safetensors") == ref_model) << "attempt " << attempt << ": checkpoints differ";
    EXPECT_EQ(metrics_without_times(out), metrics_without_times(ref)) << "attempt " << attempt;
    const auto left = temporaries(out);
    EXPECT_TRUE(left.empty()) << left.front();
  }
  EXPECT_GE(caught, 1) << "no kill landed while a checkpoint's temporary file existed";
}

// A run killed inside its first checkpoint write has no last.safetensors, so it is continued by
// starting afresh (--resume refuses); that fresh start removes the dead process's temporary too.
TEST_F(Fault, FreshStartAfterAKillInTheFirstCheckpointWriteRemovesTheTemporary) {
  const std::string out = path("run");
  fs::create_directories(out);
  // A pid that no process has: the pid limit is below 2^22.
  const std::string stale = out + "/last.safetensors.tmp.4999999.0";
  { std::ofstream(stale) << "half a checkpoint"; }
  ASSERT_EQ(run_to_end(train_args(out, false)), 0) << slurp(path("child.log"));
  EXPECT_FALSE(fs::exists(stale));
  EXPECT_TRUE(temporaries(out).empty()) << temporaries(out).front();
}

// A resumed run under a file-size limit: exit 1 with the failed write's error, the previous
// last.safetensors and metrics kept, no temporary left.
TEST_F(Fault, FileSizeLimitDuringResumedTrainingKeepsTheLastCheckpoint) {
  const std::string out = path("run");
  ASSERT_EQ(run_to_end(train_args(out, false)), 0) << slurp(path("child.log"));
  const std::string before = slurp(fs::path(out) / "last.safetensors");
  auto args = train_args(out, true);
  args[std::find(args.begin(), args.end(), "--steps") - args.begin() + 1] = std::to_string(kSteps + 4);
  std::string cmd = "ulimit -f 2;";
  for (const auto& a : args) cmd += " '" + a + "'";
  cmd += " 2>'" + path("err.txt") + "' >/dev/null";
  const int rc = shell(cmd);
  EXPECT_EQ(rc, 1);
  const std::string err = slurp(path("err.txt"));
  EXPECT_NE(err.find("File too large"), std::string::npos) << err;
  EXPECT_EQ(slurp(fs::path(out) / "last.safetensors"), before);
  EXPECT_TRUE(temporaries(dir_).empty()) << temporaries(dir_).front();
}

// `recur sample --midi-out` and `recur midi decode -o` under a file-size limit: exit 1, one line
// naming the file and "File too large", the previous file intact, no temporary left.
TEST_F(Fault, FileSizeLimitDuringMidiWritesKeepsThePreviousFile) {
  const std::string music = kFixtures + "music.safetensors";
  const std::string mid = path("piece.mid");
  { std::ofstream(mid) << "previous piece\n"; }
  std::string tune = "VELOCITY_19";
  for (int i = 0; i < 600; ++i) tune += " NOTE_ON_" + std::to_string(48 + i % 24) + " TIME_SHIFT_100 NOTE_OFF_" + std::to_string(48 + i % 24);
  { std::ofstream(path("tune.txt")) << tune << "\n"; }
  for (const std::string& args : std::vector<std::string>{
           "sample '" + music + "' --midi-out '" + mid + "' --length 3000 --seed 3",
           "midi decode '" + path("tune.txt") + "' -o '" + mid + "'"}) {
    const int rc = shell("ulimit -f 1; '" + std::string(RECUR_CLI) + "' " + args + " >/dev/null 2>'" + path("err.txt") + "'");
    EXPECT_EQ(rc, 1) << args;
    const std::string err = slurp(path("err.txt"));
    EXPECT_NE(err.find(mid), std::string::npos) << args << ": " << err;
    EXPECT_NE(err.find("File too large"), std::string::npos) << args << ": " << err;
    EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << args << ": " << err;
    EXPECT_EQ(slurp(mid), "previous piece\n") << args;
    EXPECT_TRUE(temporaries(dir_).empty()) << args << ": " << temporaries(dir_).front();
  }
}

// How to mount a private tmpfs here: `unshare -m` (root) or `unshare -rm` (user and mount
// namespace, no root needed where user namespaces are allowed). The mount lives as long as the
// command, so nothing is left mounted whatever happens. Empty if neither works.
std::string private_mount_prefix(const fs::path& probe) {
  fs::create_directories(probe);
  for (const std::string prefix : {"unshare -m", "unshare -rm"}) {
    const std::string cmd = prefix + " sh -c \"mount -t tmpfs -o size=64k tmpfs '" + probe.string() + "'\" >/dev/null 2>&1";
    if (std::system(cmd.c_str()) == 0) return prefix;
  }
  return "";
}

// A full disk: a 1 MiB tmpfs holding a finished run and a good MIDI file, then filled to the last
// block. Resumed training, `sample --midi-out` and `midi decode -o` each exit 1 with "No space
// left on device" naming the file; the previous files are byte for byte what they were and no
// temporary is left. The checks run inside the mount namespace (a script) and report to files.
TEST_F(Fault, FullDiskKeepsThePreviousFilesAndSaysSo) {
  const std::string prefix = private_mount_prefix(dir_ / "probe");
  if (prefix.empty()) GTEST_SKIP() << "cannot mount a tmpfs here (neither `unshare -m` nor `unshare -rm` may mount): full-disk test skipped";
  const std::string out = path("run");
  ASSERT_EQ(run_to_end(train_args(out, false)), 0) << slurp(path("child.log"));
  std::string tune = "VELOCITY_19";
  for (int i = 0; i < 600; ++i) tune += " NOTE_ON_" + std::to_string(48 + i % 24) + " TIME_SHIFT_100 NOTE_OFF_" + std::to_string(48 + i % 24);
  { std::ofstream(path("tune.txt")) << tune << "\n"; }
  { std::ofstream(path("piece.mid")) << "previous piece\n"; }
  auto resume = train_args("DISK/run", true);
  resume[std::find(resume.begin(), resume.end(), "--steps") - resume.begin() + 1] = std::to_string(kSteps + 4);
  std::string train_cmd;
  for (const auto& a : resume) train_cmd += (a.rfind("DISK", 0) == 0 ? "\"$D" + a.substr(4) + "\"" : "'" + a + "'") + " ";
  const std::string cli = "'" + std::string(RECUR_CLI) + "'";
  const std::vector<std::string> commands = {
      train_cmd,
      cli + " sample '" + kFixtures + "music.safetensors' --midi-out \"$D/piece.mid\" --length 3000 --seed 3",
      cli + " midi decode '" + path("tune.txt") + "' -o \"$D/piece.mid\""};
  std::ofstream script(path("full_disk.sh"));
  script << "set -u\nD='" << path("disk") << "'\nR='" << dir_.string() << "'\n"
         << "mkdir -p \"$D\" && mount -t tmpfs -o size=1m tmpfs \"$D\" || exit 99\n"
         << "cp -r \"$R/run\" \"$D/run\" && cp \"$R/piece.mid\" \"$D/piece.mid\" || exit 98\n"
         << "dd if=/dev/zero of=\"$D/fill\" bs=1k 2>/dev/null\n"  // fails when the disk is full
         << "export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1\n";
  for (size_t i = 0; i < commands.size(); ++i) {
    script << commands[i] << " >/dev/null 2>\"$R/err" << i << ".txt\"; echo $? >\"$R/rc" << i << ".txt\"\n"
           << "cmp -s \"$D/run/last.safetensors\" \"$R/run/last.safetensors\" && cmp -s \"$D/run/metrics.jsonl\" \"$R/run/metrics.jsonl\""
           << " && cmp -s \"$D/piece.mid\" \"$R/piece.mid\" && echo same >\"$R/cmp" << i << ".txt\"\n"
           << "find \"$D\" -name '*.tmp.*' >\"$R/tmp" << i << ".txt\"\n";
  }
  script.close();
  const int rc = std::system((prefix + " bash '" + path("full_disk.sh") + "'").c_str());
  ASSERT_TRUE(WIFEXITED(rc) && WEXITSTATUS(rc) < 98) << "the full-disk script could not set up: " << rc;
  for (size_t i = 0; i < commands.size(); ++i) {
    const std::string n = std::to_string(i);
    const std::string err = slurp(path("err" + n + ".txt"));
    EXPECT_EQ(slurp(path("rc" + n + ".txt")), "1\n") << commands[i] << ": " << err;
    const size_t last = err.rfind("recur: error: ");
    ASSERT_NE(last, std::string::npos) << commands[i] << ": " << err;
    EXPECT_NE(err.find("No space left on device", last), std::string::npos) << commands[i] << ": " << err;
    EXPECT_NE(err.find(path("disk"), last), std::string::npos) << commands[i] << ": " << err;
    EXPECT_EQ(slurp(path("cmp" + n + ".txt")), "same\n") << commands[i] << ": a previous file changed";
    EXPECT_EQ(slurp(path("tmp" + n + ".txt")), "") << commands[i] << ": temporaries left";
  }
}

// Size caps on readers that hold a whole file in memory. A sparse file (ftruncate) is as large as
// the cap plus one byte at no cost in disk or time; the reader refuses it by its size, before
// reading, with one line naming the file and the limit.
void sparse_file(const std::string& path, int64_t size) {
  { std::ofstream(path) << "x"; }
  fs::resize_file(path, uintmax_t(size));
}

template <typename Fn>
std::string format_error_of(Fn&& fn) {
  try {
    fn();
  } catch (const recur::FormatError& e) {
    return e.what();
  }
  return "(no FormatError)";
}

TEST_F(Fault, TextFileOverTheSizeLimitIsRefusedBeforeReading) {
  const std::string big = path("big.txt");
  sparse_file(big, recur::kTextFileMaxBytes + 1);
  const std::string msg = format_error_of([&] { recur::read_text_file(big); });
  EXPECT_NE(msg.find(big + ": " + std::to_string(recur::kTextFileMaxBytes + 1) + " bytes exceeds the limit of " +
                     std::to_string(recur::kTextFileMaxBytes)),
            std::string::npos)
      << msg;
  // The same through the CLI: one line, exit 1, at once (the file is not read).
  const auto r = recur::test::run_recur("train '" + big + "' --out '" + path("run") + "' --steps 1", dir_);
  EXPECT_EQ(r.rc, 1) << r.err;
  EXPECT_NE(r.err.find("exceeds the limit"), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
}

// /dev/zero used to be read forever; a device is refused, a pipe is still read.
TEST_F(Fault, TextReaderRefusesDevicesAndReadsPipes) {
  const std::string msg = format_error_of([] { recur::read_text_file("/dev/zero"); });
  EXPECT_NE(msg.find("/dev/zero: is a device"), std::string::npos) << msg;
  const auto r = recur::test::run_recur("train /dev/zero --out '" + path("run") + "' --steps 1", dir_);
  EXPECT_EQ(r.rc, 1) << r.err;
  EXPECT_NE(r.err.find("/dev/zero: is a device"), std::string::npos) << r.err;
  // A pipe (process substitution) still works and gives the same text as the file.
  const int rc = shell("'" + std::string(RECUR_CLI) + "' train <(cat '" + data_ + "') --out '" + path("piped") +
                       "' --hidden 8 --steps 2 --threads 1 --quiet >/dev/null 2>'" + path("err.txt") + "'");
  EXPECT_EQ(rc, 0) << slurp(path("err.txt"));
}

TEST_F(Fault, JsbFileOverTheSizeLimitIsRefused) {
  const std::string big = path("big.json");
  sparse_file(big, recur::kJsbMaxBytes + 1);
  const std::string msg = format_error_of([&] { recur::read_jsb_chorales(big); });
  EXPECT_NE(msg.find(big + ": " + std::to_string(recur::kJsbMaxBytes + 1) + " bytes exceeds the limit"), std::string::npos) << msg;
  const std::string dev = format_error_of([] { recur::read_jsb_chorales("/dev/zero"); });
  EXPECT_NE(dev.find("/dev/zero: not a regular file"), std::string::npos) << dev;
}

TEST_F(Fault, TokenFileOverTheSizeLimitIsRefused) {
  const std::string big = path("big_tokens.txt");
  sparse_file(big, recur::kTokenFileMaxBytes + 1);
  const std::string msg = format_error_of([&] { recur::read_token_file(big); });
  EXPECT_NE(msg.find(big + ": " + std::to_string(recur::kTokenFileMaxBytes + 1) + " bytes exceeds the limit"), std::string::npos) << msg;
  const std::string dev = format_error_of([] { recur::read_token_file("/dev/zero"); });
  EXPECT_NE(dev.find("/dev/zero: not a regular file"), std::string::npos) << dev;
}

// Word vectors are read a line at a time; a line past the cap (a file without newlines, a
// sparse file of zeros) is refused at its line instead of being read whole.
TEST_F(Fault, WordVectorLineOverTheLimitIsRefused) {
  const std::string big = path("vectors.txt");
  sparse_file(big, recur::kWordVectorsMaxLineBytes * 4);
  const std::string msg = format_error_of([&] { recur::word_vectors_dim(big); });
  EXPECT_NE(msg.find(big + ":1"), std::string::npos) << msg;
  EXPECT_NE(msg.find("longer than " + std::to_string(recur::kWordVectorsMaxLineBytes) + " bytes"), std::string::npos) << msg;
  const std::string dev = format_error_of([] { recur::word_vectors_dim("/dev/zero"); });
  EXPECT_NE(dev.find("/dev/zero: not a regular file"), std::string::npos) << dev;
  // An ordinary file still loads.
  { std::ofstream(path("ok.txt")) << "cat 0.5 0.25\ndog 1 2\n"; }
  EXPECT_EQ(recur::word_vectors_dim(path("ok.txt")), 2);
}

}  // namespace
