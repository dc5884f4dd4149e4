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

}  // namespace recur::cli
