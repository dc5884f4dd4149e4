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
#include <vector>

#include <nlohmann/json.hpp>

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

// "step:loss" of every metrics line of `type` ("train", "valid", "test") in a run folder's
// metrics.jsonl, the loss as written (full precision text): what resume and prepared-corpus
// tests compare for bit-identical runs.
inline std::vector<std::string> metric_losses(const std::filesystem::path& run_dir, const char* type = "train") {
  std::vector<std::string> out;
  std::istringstream in(slurp(run_dir / "metrics.jsonl"));
  std::string line;
  while (std::getline(in, line)) {
    const auto j = nlohmann::json::parse(line);
    if (j.at("type") == type) out.push_back(std::to_string(j.at("step").get<int64_t>()) + ":" + j.at("loss").dump());
  }
  return out;
}

}  // namespace recur::test
