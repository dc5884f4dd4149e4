// Data-parallel training over MPI (train/communicator.h, docs/distributed.md): `mpirun -np N
// recur train` against one process, repeats, resume across rank counts, a killed rank and ranks
// started with different flags. Needs mpirun and a recur built with MPI (scripts/setup.sh test
// installs Open MPI); skipped with the reason otherwise.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "cli_run.h"
#include "recur/train/communicator.h"
#include "test_util.h"

namespace fs = std::filesystem;
using recur::test::CliResult;
using recur::test::run_recur;

namespace {

// Environment of every mpirun below. Under the sanitizer suite (scripts/sanitize.sh), leak
// checking is off for the ranks only: Open MPI keeps allocations of its plugins, which it
// unloads at MPI_Finalize, so LeakSanitizer reports them from "<unknown module>" frames that no
// suppression can name. Address and UB checks stay on, and every other test checks leaks.
const std::string kMpiEnv = "ASAN_OPTIONS=\"${ASAN_OPTIONS:-}:detect_leaks=0\" OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 ";

struct Lcg {
  uint64_t s = 12345;
  uint32_t next(uint32_t n) {
    s = s * 6364136223846793005ULL + 1442695040888963407ULL;
    return uint32_t((s >> 33) % n);
  }
};

// The train and valid lines of a run's metrics.jsonl.
struct Curve {
  std::vector<double> train, valid;
  std::vector<std::string> train_text;  // the loss as written, for bit-identity
};

Curve read_curve(const fs::path& run) {
  Curve c;
  std::ifstream in(run / "metrics.jsonl");
  std::string line;
  while (std::getline(in, line)) {
    const auto j = nlohmann::json::parse(line);
    if (j.at("type") == "train") {
      c.train.push_back(j.at("loss").get<double>());
      c.train_text.push_back(j.at("loss").dump());
    } else if (j.at("type") == "valid") {
      c.valid.push_back(j.at("loss").get<double>());
    }
  }
  return c;
}

double max_rel_diff(const std::vector<double>& a, const std::vector<double>& b) {
  double m = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) m = std::max(m, std::fabs(a[i] - b[i]) / std::fabs(a[i]));
  return m;
}

class Distributed : public recur::test::TempDirTest {
 protected:
  void SetUp() override {
    if (!recur::built_with_mpi()) GTEST_SKIP() << "recur was built without MPI (RECUR_MPI; libopenmpi-dev)";
    if (std::system("command -v mpirun >/dev/null 2>&1") != 0) GTEST_SKIP() << "mpirun not found (openmpi-bin)";
    TempDirTest::SetUp();
    Lcg r;
    std::string text;
    for (int i = 0; i < 200; ++i) text += "the quick brown fox jumps over the lazy dog " + std::to_string(r.next(97)) + "\n";
    write("text.txt", text);
    std::string tag;
    const char* names[] = {"Smith", "Jones", "Lee"};
    const char* places[] = {"Paris", "Rome", "Oslo"};
    for (int i = 0; i < 80; ++i) {
      for (uint32_t k = 0, m = 1 + r.next(4); k < m; ++k) {
        const uint32_t c = r.next(3);
        if (c == 0) tag += std::string("mr X O\n") + names[r.next(3)] + " X B-PER\n";
        else if (c == 1) tag += std::string("in X O\n") + places[r.next(3)] + " X B-LOC\n";
        else tag += "the X O\n";
      }
      tag += "\n";
    }
    write("tag.txt", tag);
    const char* digits[] = {"zero", "one", "two", "three", "four"};
    std::string pairs;
    for (int i = 0; i < 80; ++i) {
      std::vector<std::string> w;
      for (uint32_t k = 0, m = 1 + r.next(4); k < m; ++k) w.push_back(digits[r.next(5)]);
      std::string a, b;
      for (size_t k = 0; k < w.size(); ++k) a += (k ? " " : "") + w[k];
      for (size_t k = w.size(); k-- > 0;) b += w[k] + (k ? " " : "");
      pairs += a + "\t" + b + "\n";
    }
    write("pairs.txt", pairs);
  }
  void write(const std::string& name, const std::string& bytes) { std::ofstream(dir_ / name, std::ios::binary) << bytes; }

  // `recur train` on `data` with a tiny model, logging every step.
  std::string train_args(const std::string& data, const std::string& out, const std::string& extra) const {
    return "train '" + path(data) + "' --out '" + path(out) + "' --hidden 16 --threads 1 --log-every 1 --quiet " + extra;
  }
  // The same through mpirun with `ranks` processes (one thread each).
  CliResult mpi(int ranks, const std::string& args, const std::string& out_name = "mpi") const {
    const std::string out = path(out_name + "_stdout.txt"), err = path(out_name + "_stderr.txt");
    const std::string cmd = kMpiEnv + "mpirun --allow-run-as-root --oversubscribe -np " +
                            std::to_string(ranks) + " '" + RECUR_CLI + "' " + args + " >'" + out + "' 2>'" + err + "'";
    const int status = std::system(cmd.c_str());
    return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, recur::test::slurp(out), recur::test::slurp(err)};
  }
  CliResult one(const std::string& args) const { return run_recur(args, dir_, "OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1"); }

  // N ranks against one process on the same global batch: the loss curve within float rounding.
  void expect_matches_one_process(int ranks, const std::string& data, const std::string& extra) {
    const CliResult a = one(train_args(data, "one", extra));
    ASSERT_EQ(a.rc, 0) << a.err;
    const CliResult b = mpi(ranks, train_args(data, "many", extra));
    ASSERT_EQ(b.rc, 0) << b.out << b.err;
    const Curve ca = read_curve(dir_ / "one"), cb = read_curve(dir_ / "many");
    ASSERT_GE(ca.train.size(), 20u);
    ASSERT_EQ(ca.train.size(), cb.train.size());
    ASSERT_EQ(ca.valid.size(), cb.valid.size());
    EXPECT_LE(max_rel_diff(ca.train, cb.train), 1e-5);
    EXPECT_LE(max_rel_diff(ca.valid, cb.valid), 1e-5);
    // The losses move (a run that trained nothing would match too): the last five steps' mean
    // below the first five's.
    const auto mean5 = [](auto first) { return (first[0] + first[1] + first[2] + first[3] + first[4]) / 5; };
    EXPECT_LT(mean5(ca.train.end() - 5), mean5(ca.train.begin()));
  }
};

TEST_F(Distributed, LmStreamTwoRanksMatchOneProcess) {
  expect_matches_one_process(2, "text.txt", "--layers 2 --batch 8 --seq-len 16 --steps 40");
}

TEST_F(Distributed, LmLinesThreeRanksUnevenSplitMatchOneProcess) {
  // 8 lines over 3 ranks: 3 + 3 + 2, and the last batch of an epoch leaves a rank fewer or none.
  expect_matches_one_process(3, "text.txt", "--mode lines --batch 8 --steps 40");
}

TEST_F(Distributed, TaggerTwoRanksMatchOneProcess) {
  expect_matches_one_process(2, "tag.txt", "--task tag --embed 8 --batch 8 --steps 30");
}

TEST_F(Distributed, Seq2seqThreeRanksMatchOneProcess) {
  expect_matches_one_process(3, "pairs.txt", "--task seq2seq --embed 8 --batch 8 --steps 30");
}

TEST_F(Distributed, RepeatedRunGivesIdenticalBits) {
  const std::string extra = "--layers 2 --batch 8 --seq-len 16 --steps 30 --dropout 0.2";
  ASSERT_EQ(mpi(2, train_args("text.txt", "a", extra)).rc, 0);
  ASSERT_EQ(mpi(2, train_args("text.txt", "b", extra)).rc, 0);
  const Curve a = read_curve(dir_ / "a"), b = read_curve(dir_ / "b");
  ASSERT_EQ(a.train.size(), 30u);
  EXPECT_EQ(a.train_text, b.train_text);
  EXPECT_EQ(a.valid, b.valid);
}

TEST_F(Distributed, ResumesWithAnotherRankCountAndOneProcess) {
  // Stream mode: the carried state of every rank's streams is in the checkpoint and is split
  // again by the resuming ranks. 2 ranks to step 20, then 3 ranks to 30, then 1 process to 40,
  // against one uninterrupted process.
  const std::string model = "--layers 1 --batch 6 --seq-len 16 --valid-every 10";
  ASSERT_EQ(one(train_args("text.txt", "straight", model + " --steps 40")).rc, 0);
  const CliResult a = mpi(2, train_args("text.txt", "split", model + " --steps 20"));
  ASSERT_EQ(a.rc, 0) << a.err;
  const CliResult b = mpi(3, train_args("text.txt", "split", "--resume --steps 30"));
  ASSERT_EQ(b.rc, 0) << b.out << b.err;
  const CliResult c = one(train_args("text.txt", "split", "--resume --steps 40"));
  ASSERT_EQ(c.rc, 0) << c.err;
  const Curve s = read_curve(dir_ / "straight"), p = read_curve(dir_ / "split");
  ASSERT_EQ(s.train.size(), 40u);
  ASSERT_EQ(p.train.size(), 40u);
  EXPECT_LE(max_rel_diff(s.train, p.train), 1e-5);
}

TEST_F(Distributed, RanksWithDifferentFlagsAreRefusedByName) {
  // MPMD launch: rank 1 gets another seed.
  const std::string args0 = train_args("text.txt", "run", "--batch 4 --steps 5 --seed 1");
  const std::string args1 = train_args("text.txt", "run", "--batch 4 --steps 5 --seed 2");
  const std::string out = path("mm_stdout.txt"), err = path("mm_stderr.txt");
  const std::string cmd = kMpiEnv + "mpirun --allow-run-as-root --oversubscribe -np 1 '" + std::string(RECUR_CLI) +
                          "' " + args0 + " : -np 1 '" + RECUR_CLI + "' " + args1 + " >'" + out + "' 2>'" + err + "'";
  const int status = std::system(cmd.c_str());
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_NE(WEXITSTATUS(status), 0);
  const std::string e = recur::test::slurp(err);
  EXPECT_NE(e.find("rank 1 of 2 differs from rank 0"), std::string::npos) << e;
  EXPECT_FALSE(fs::exists(dir_ / "run" / "last.safetensors"));
}

// The pid of the process whose environment says it is MPI rank `rank` and whose command line
// holds `marker`.
pid_t find_rank(int rank, const std::string& marker) {
  for (const auto& e : fs::directory_iterator("/proc")) {
    const std::string name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    const std::string cmdline = recur::test::slurp(e.path() / "cmdline"), env = recur::test::slurp(e.path() / "environ");
    if (cmdline.find(marker) == std::string::npos || cmdline.find("mpirun") != std::string::npos) continue;
    if (env.find(std::string("OMPI_COMM_WORLD_RANK=") + std::to_string(rank) + '\0') != std::string::npos) return pid_t(std::stoi(name));
  }
  return -1;
}

TEST_F(Distributed, AKilledRankEndsTheJobAndTheCheckpointStaysIntact) {
  const std::string args =
      train_args("text.txt", "killed", "--layers 2 --batch 8 --seq-len 32 --steps 1000000 --valid-every 5");
  const std::string out = path("k_stdout.txt"), err = path("k_stderr.txt");
  const std::string cmd = kMpiEnv + "mpirun --allow-run-as-root --oversubscribe -np 2 '" + std::string(RECUR_CLI) +
                          "' " + args + " >'" + out + "' 2>'" + err + "' & echo $! > '" + path("mpirun.pid") + "'; wait";
  std::thread job([&] { (void)std::system(cmd.c_str()); });
  // Whatever fails below, the job is ended and the thread joined (no run left behind).
  struct Reaper {
    std::thread& t;
    std::string pid_file;
    ~Reaper() {
      if (!t.joinable()) return;
      const std::string p = recur::test::slurp(pid_file);
      if (!p.empty()) ::kill(pid_t(std::stoi(p)), SIGKILL);
      t.join();
    }
  } reaper{job, path("mpirun.pid")};
  const fs::path last = dir_ / "killed" / "last.safetensors";
  const auto t0 = std::chrono::steady_clock::now();
  while (!fs::exists(last) && std::chrono::steady_clock::now() - t0 < std::chrono::seconds(60))
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  ASSERT_TRUE(fs::exists(last)) << recur::test::slurp(err);
  const pid_t victim = find_rank(1, path("killed"));
  ASSERT_GT(victim, 0);
  ASSERT_EQ(::kill(victim, SIGKILL), 0);
  const auto t_kill = std::chrono::steady_clock::now();
  job.join();
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_kill).count();
  EXPECT_LT(secs, 10.0);
  const std::string e = recur::test::slurp(err);
  EXPECT_NE(e.find("rank 1"), std::string::npos) << e;
  // Rank 0 was stopped wherever it was, perhaps inside a checkpoint write: the file that is
  // there is whole (written atomically) and loads.
  const CliResult info = run_recur("info '" + last.string() + "'", dir_);
  EXPECT_EQ(info.rc, 0) << info.err;
}

}  // namespace
