// recur diagnose gradients - the vanishing/exploding-gradient experiment (diagnostics.h) as one
// figure and a printed summary.
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>

#include "commands.h"
#include "recur/diag/diagnostics.h"
#include "recur/diag/plot.h"

namespace recur::cli {
namespace {

struct DiagnoseArgs {
  GradientExperimentOptions o;
  std::string out = ".";
  bool no_plot = false;
};

void run_gradients(const DiagnoseArgs& a) {
  // Checked before the experiment so a missing gnuplot fails at once.
  if (!a.no_plot) require_gnuplot("recur diagnose gradients");
  const std::vector<GradientProfile> profiles = gradient_experiment(a.o);
  const std::string summary = gradient_experiment_summary(profiles, a.o);
  std::fwrite(summary.data(), 1, summary.size(), stdout);
  if (!a.no_plot) {
    const auto files = plot_gradient_experiment(profiles, a.o, a.out);
    std::printf("\nwrote");
    for (const auto& f : files) std::printf(" %s", f.c_str());
    std::printf("\n");
  }
}

}  // namespace

void add_diagnose(CLI::App& app) {
  CLI::App* sub = app.add_subcommand("diagnose", "Experiments that show how recurrent networks train");
  sub->require_subcommand(1);
  auto a = std::make_shared<DiagnoseArgs>();
  CLI::App* g = sub->add_subcommand(
      "gradients",
      "Vanishing and exploding gradients on a long-dependency task: basic RNN, GRU and LSTM side by side");
  g->add_option("--gap", a->o.gap, "Steps between the signal token and the answer")->capture_default_str();
  g->add_option("--hidden", a->o.hidden, "Hidden units of each cell")->capture_default_str();
  g->add_option("--batch", a->o.batch, "Sequences averaged over")->capture_default_str();
  g->add_option("--seed", a->o.seed, "Seed of the data and the initialisation")->capture_default_str();
  g->add_option("--large-scale", a->o.large_scale, "Factor on the recurrent weights of the large init")
      ->capture_default_str();
  g->add_option("--clip-norm", a->o.clip_norm, "Max gradient norm of the clipped variant")->capture_default_str();
  g->add_option("--threshold", a->o.threshold, "Relative norm at which the gradient counts as vanished")
      ->capture_default_str();
  g->add_option("--keep-bias", a->o.keep_bias, "Initial bias of the LSTM forget and GRU update gates")
      ->capture_default_str();
  g->add_option("--train-steps", a->o.train_steps, "Adam steps of the trained variant (0 = skip it)")
      ->capture_default_str();
  g->add_option("--train-lr", a->o.train_lr, "Learning rate of the trained variant")->capture_default_str();
  g->add_option("--out", a->out, "Directory of diagnose_gradients.png/svg")->capture_default_str();
  g->add_flag("--no-plot", a->no_plot, "Print the summary only");
  g->callback([a] { run_gradients(*a); });
}

}  // namespace recur::cli
