#include "run_dir.h"

#include "json_parse.h"

#include <filesystem>

#include <nlohmann/json.hpp>

#include "recur/core/error.h"
#include "recur/core/file_io.h"

namespace recur::detail {

namespace fs = std::filesystem;

namespace {

void truncate_metrics(const std::string& path, int64_t step) {
  std::ifstream in(path);
  if (!in) return;
  std::string kept, line;
  while (std::getline(in, line)) {
    try {
      const auto j = parse_json(line, path, "a metrics line");
      if (j.contains("step") && j["step"].is_number_integer() && j["step"].get<int64_t>() <= step) kept += line + "\n";
    } catch (const FormatError&) {
      // A torn last line from a killed run: dropped.
    }
  }
  in.close();
  write_file_atomic(path, kept, "the metrics");
}

}  // namespace

void check_run_dir(const std::string& out_dir, bool resuming, bool force) {
  const fs::path dir(out_dir);
  const std::string last_path = (dir / "last.safetensors").string();
  std::error_code ec;
  if (fs::exists(dir, ec) && !fs::is_directory(dir, ec))
    throw Error(out_dir + ": exists and is not a directory; expected a run directory for --out");
  if (!resuming && fs::exists(last_path, ec) && !force)
    throw Error(out_dir + ": already holds a run (" + last_path + "); pass --resume to continue it or --force to start over");
}

std::ofstream open_run_metrics(const std::string& out_dir, bool resuming, int64_t step) {
  const fs::path dir(out_dir);
  const std::string metrics_path = (dir / "metrics.jsonl").string();
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw Error(out_dir + ": cannot create the run directory: " + ec.message());
  // Temporaries of a run killed while writing a checkpoint or the metrics (their pid is gone);
  // also on a fresh start, which is how a run killed inside its first checkpoint write goes on.
  remove_stale_temporaries(out_dir);
  if (resuming) {
    truncate_metrics(metrics_path, step);
  } else {
    fs::remove(dir / "best.safetensors", ec);
  }
  std::ofstream metrics(metrics_path, resuming ? std::ios::app : std::ios::trunc);
  if (!metrics) throw Error(metrics_path + ": cannot open for writing");
  return metrics;
}

}  // namespace recur::detail
