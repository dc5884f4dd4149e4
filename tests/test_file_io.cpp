// core/file_io.h: the atomic writer every file goes through, and the clean-up of temporaries left
// by killed processes.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <vector>

#include "cli_run.h"
#include "recur/core/error.h"
#include "recur/core/file_io.h"

namespace fs = std::filesystem;
using namespace recur;

namespace {

class FileIo : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("recur_file_io_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  size_t entries() const { return size_t(std::distance(fs::directory_iterator(dir_), fs::directory_iterator())); }
  fs::path dir_;
};

// A pid that belonged to a process which has exited and been reaped.
pid_t dead_pid() {
  const pid_t pid = ::fork();
  if (pid == 0) ::_exit(0);
  ::waitpid(pid, nullptr, 0);
  return pid;
}

TEST_F(FileIo, WritesAndReplacesWholeFiles) {
  write_file_atomic(path("a.txt"), "first");
  EXPECT_EQ(recur::test::slurp(path("a.txt")), "first");
  write_file_atomic(path("a.txt"), std::string(100000, 'x'));
  EXPECT_EQ(recur::test::slurp(path("a.txt")), std::string(100000, 'x'));
  write_file_atomic(path("empty.txt"), "");
  EXPECT_TRUE(fs::exists(path("empty.txt")));
  EXPECT_EQ(entries(), 2u);  // no temporaries left
}

// A file of pieces (a checkpoint's header and tensors) is their concatenation, empty pieces
// included, and still leaves no temporary behind.
TEST_F(FileIo, WritesPiecesInOrder) {
  const std::string big(300000, 'x');
  const std::vector<std::string_view> pieces{"head", "", big, "tail"};
  write_file_atomic(path("p.bin"), pieces);
  EXPECT_EQ(recur::test::slurp(path("p.bin")), "head" + big + "tail");
  write_file_atomic(path("p.bin"), std::span<const std::string_view>());
  EXPECT_EQ(recur::test::slurp(path("p.bin")), "");
  EXPECT_EQ(entries(), 1u);
}

TEST_F(FileIo, FailureKeepsTheOldFileAndNamesThePath) {
  write_file_atomic(path("a.txt"), "old");
  // A file-size limit in a child (SIGXFSZ ignored, as the CLI does): the write fails with EFBIG.
  const pid_t pid = ::fork();
  if (pid == 0) {
    std::signal(SIGXFSZ, SIG_IGN);
    const rlimit lim{1000, 1000};
    ::setrlimit(RLIMIT_FSIZE, &lim);
    try {
      write_file_atomic(path("a.txt"), std::string(5000, 'n'));
      ::_exit(2);
    } catch (const Error& e) {
      const std::string msg = e.what();
      ::_exit(msg.find("a.txt: cannot write the file: File too large") != std::string::npos ? 0 : 3);
    }
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "2: no error; 3: wrong message";
  EXPECT_EQ(recur::test::slurp(path("a.txt")), "old");
  EXPECT_EQ(entries(), 1u);
  try {
    write_file_atomic(path("no/such/dir/a.txt"), "x");
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no/such/dir/a.txt: cannot write the file: No such file"), std::string::npos) << e.what();
  }
}

TEST_F(FileIo, StaleTemporariesOfDeadProcessesAreRemoved) {
  const std::string dead = std::to_string(dead_pid()), mine = std::to_string(::getpid());
  for (const std::string& name : std::vector<std::string>{"last.safetensors.tmp." + dead, "best.safetensors.tmp." + dead + ".3",
                                 "last.safetensors.tmp." + mine + ".0", "metrics.jsonl.tmp.1", "notes.tmp.x", "keep.txt"})
    std::ofstream(path(name)) << "x";
  // pid 1 is alive (init): its file stays; so do ours, and names that are not temporaries.
  EXPECT_EQ(remove_stale_temporaries(dir_.string()), 2);
  EXPECT_FALSE(fs::exists(path("last.safetensors.tmp." + dead)));
  EXPECT_FALSE(fs::exists(path("best.safetensors.tmp." + dead + ".3")));
  EXPECT_TRUE(fs::exists(path("last.safetensors.tmp." + mine + ".0")));
  EXPECT_TRUE(fs::exists(path("metrics.jsonl.tmp.1")));
  EXPECT_TRUE(fs::exists(path("notes.tmp.x")));
  EXPECT_TRUE(fs::exists(path("keep.txt")));
  EXPECT_EQ(remove_stale_temporaries(path("absent")), 0);
}

}  // namespace
