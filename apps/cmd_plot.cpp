// recur plot RUN_DIR - learning curves and training diagnostics as PNG and SVG (plot.h).
#include <cstdio>
#include <memory>
#include <string>

#include "commands.h"
#include "recur/diag/plot.h"

namespace recur::cli {

void add_plot(CLI::App& app) {
  struct Args {
    std::string run_dir, out;
  };
  auto a = std::make_shared<Args>();
  CLI::App* sub = app.add_subcommand(
      "plot", "Draw a training run's learning curves and diagnostics (loss, grad, diagnostics .png/.svg) with gnuplot");
  sub->add_option("RUN_DIR", a->run_dir, "Run directory of `recur train` (holds metrics.jsonl)")->required();
  sub->add_option("--out", a->out, "Where the figures go (default: RUN_DIR)");
  sub->callback([a] {
    require_gnuplot("recur plot");
    for (const std::string& f : plot_run(a->run_dir, a->out.empty() ? a->run_dir : a->out))
      std::printf("wrote %s\n", f.c_str());
  });
}

}  // namespace recur::cli
