#include "lm_cli_util.h"

#include <cmath>
#include <cstdio>

#include "recur/core/threads.h"

namespace recur::cli {

void add_threads_option(CLI::App* sub, int& threads) {
  sub->add_option("--threads", threads, "threads for BLAS and oneDNN (0 = the libraries' defaults)")
      ->check(CLI::Range(0, 1024))
      ->capture_default_str();
}

void apply_threads(int threads) {
  set_num_threads(threads);
}

LmModel load_model(const std::string& path) { return load_checkpoint(path).model; }

std::string format_duration(double s) {
  if (!(s >= 0) || !std::isfinite(s)) return "?";
  char buf[32];
  const long t = long(std::llround(s));
  if (t >= 3600) std::snprintf(buf, sizeof buf, "%ldh%02ldm", t / 3600, (t / 60) % 60);
  else if (t >= 60) std::snprintf(buf, sizeof buf, "%ldm%02lds", t / 60, t % 60);
  else std::snprintf(buf, sizeof buf, "%lds", t);
  return buf;
}

std::string format_count(double x) {
  char buf[32];
  if (x >= 1e6) std::snprintf(buf, sizeof buf, "%.1fM", x / 1e6);
  else if (x >= 1e4) std::snprintf(buf, sizeof buf, "%.1fk", x / 1e3);
  else std::snprintf(buf, sizeof buf, "%.0f", x);
  return buf;
}

}  // namespace recur::cli
