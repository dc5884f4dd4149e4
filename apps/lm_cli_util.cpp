#include "lm_cli_util.h"

#include <cmath>
#include <cstdio>

#include "recur/core/threads.h"
#include "recur/tasks/tasks.h"

namespace recur::cli {

void add_threads_option(CLI::App* sub, int& threads) {
  sub->add_option("--threads", threads, "threads for BLAS and oneDNN (0 = the libraries' defaults)")
      ->check(CLI::Range(0, 1024))
      ->capture_default_str();
}

CLI::Option* add_precision_option(CLI::App* sub, std::string& precision, const std::string& help) {
  const CLI::Validator known(
      [](std::string& s) -> std::string {
        try {
          parse_precision(s, "");
          return "";
        } catch (const Error&) {
          return "got '" + s + "', expected f32, bf16 or int8";
        }
      },
      "f32|bf16|int8");
  return sub->add_option("--precision", precision, help)->check(known);
}

Precision precision_or(const std::string& flag, Precision file_precision) {
  return flag.empty() ? file_precision : parse_precision(flag, "--precision");
}

void apply_threads(int threads) {
  set_num_threads(threads);
}

LmModel load_model(const std::string& path) { return load_checkpoint(path).model; }

LmModel load_model(const std::string& path, const std::string& needs) {
  if (is_task_checkpoint(path))
    throw Error(needs + "; " + path + " is a " + task_kind_name(load_task_checkpoint(path).model.task.kind) + " model");
  return load_model(path);
}

}  // namespace recur::cli
