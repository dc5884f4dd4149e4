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

std::string variant_label(const std::string& v) {
  if (v == "default") return "init";
  if (v == "trained") return "trained";
  if (v == "large") return "large init";
  return "large+clip";
}

void run_gradients(const DiagnoseArgs& a) {
  // Checked before the experiment so a missing gnuplot fails at once.
  if (!a.no_plot) require_gnuplot("recur diagnose gradients");
  const std::vector<GradientProfile> profiles = gradient_experiment(a.o);
  std::printf("gradient of the loss at step %lld w.r.t. the hidden state k steps earlier; hidden %lld, batch %lld, "
              "seed %llu\n",
              (long long)a.o.gap, (long long)a.o.hidden, (long long)a.o.batch, (unsigned long long)a.o.seed);
  std::printf("vanish = first k where the norm < %g x its value at k = 0; growth = max over k of that ratio\n\n",
              a.o.threshold);
  std::printf("%-10s %-12s %14s %10s %12s %12s %12s\n", "cell", "weights", "vanish (steps)", "growth", "param grad",
              "clip factor", "train loss");
  for (const GradientProfile& p : profiles) {
    const std::string vanish = p.vanish_distance < 0 ? "> " + std::to_string(a.o.gap) : std::to_string(p.vanish_distance);
    char loss[32] = "-";
    if (p.variant == "trained") std::snprintf(loss, sizeof loss, "%.4f", p.train_loss);
    std::printf("%-10s %-12s %14s %10.3g %12.4g %12.3g %12s\n", p.cell.c_str(), variant_label(p.variant).c_str(),
                vanish.c_str(), p.max_ratio, p.param_grad_norm, p.clip_factor, loss);
  }
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
