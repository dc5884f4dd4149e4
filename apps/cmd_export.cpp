// recur export MODEL OUT --precision int8|bf16|f32 - an inference-only copy of a model: its
// weights without the training state, the matrices compressed (recur/train/model_file.h).
#include <sys/stat.h>

#include <cstdio>
#include <memory>
#include <string>

#include "commands.h"
#include "lm_cli_util.h"
#include "recur/train/checkpoint.h"

namespace recur::cli {
namespace {

struct ExportArgs {
  std::string model, out, precision;
};

// "3.49 MB", "904 kB", "812 bytes".
std::string file_size(const std::string& path) {
  struct stat st {};
  const double n = ::stat(path.c_str(), &st) == 0 ? double(st.st_size) : 0.0;
  char buf[32];
  if (n >= 1e6) std::snprintf(buf, sizeof buf, "%.2f MB", n / 1e6);
  else if (n >= 1e3) std::snprintf(buf, sizeof buf, "%.0f kB", n / 1e3);
  else std::snprintf(buf, sizeof buf, "%.0f bytes", n);
  return buf;
}

void run(const ExportArgs& a) {
  const Precision p = parse_precision(a.precision, "--precision");
  if (a.out == a.model) throw Error(a.out + ": the export would replace the model it reads; choose another OUT");
  const std::string kind = export_model(a.model, a.out, p);
  std::fprintf(stderr, "recur: wrote %s: %s %s model, %s (from %s)\n", a.out.c_str(), std::string(precision_name(p)).c_str(),
               kind.c_str(), file_size(a.out).c_str(), file_size(a.model).c_str());
}

}  // namespace

void add_export(CLI::App& app) {
  auto a = std::make_shared<ExportArgs>();
  CLI::App* sub = app.add_subcommand(
      "export", "Write an inference-only copy of a model: no training state, weights compressed to bf16 or int8");
  sub->add_option("MODEL", a->model, "Checkpoint (.safetensors) written by recur train")->required();
  sub->add_option("OUT", a->out, "The export (.safetensors); sample and translate use its precision by default")->required();
  add_precision_option(sub, a->precision,
                       "int8 (per-row scales, a quarter of the size), bf16 (half) or f32 (the weights as they are)")
      ->required();
  sub->callback([a] { run(*a); });
}

}  // namespace recur::cli
