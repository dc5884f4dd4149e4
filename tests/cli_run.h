// tests/cli_run.h - running the `recur` binary from a test (header only).
//
//   const CliResult r = run_recur("train data.txt --out run --steps 2", dir);
//   EXPECT_EQ(r.rc, 0) << r.err;
//
// stdout and stderr go through files in `dir` so that both are kept whole whatever their size.
#pragma once

#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace recur::test {

struct CliResult {
  int rc = -1;  // exit status, -1 if the process did not exit normally
  std::string out, err;
};

inline std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Runs `[env] recur ARGS`; ARGS are shell words, already quoted where needed.
inline CliResult run_recur(const std::string& args, const std::filesystem::path& dir, const std::string& env = "") {
  const std::string out = (dir / "stdout.txt").string(), err = (dir / "stderr.txt").string();
  const std::string cmd = env + " '" + RECUR_CLI + "' " + args + " >'" + out + "' 2>'" + err + "'";
  const int status = std::system(cmd.c_str());
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, slurp(out), slurp(err)};
}

}  // namespace recur::test
