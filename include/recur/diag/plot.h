// recur/diag/plot.h - pictures of a training run and of the gradient experiment, drawn by gnuplot
// (Debian's gnuplot-nox: its pngcairo and svg terminals). recur writes the data as plain
// columns and a gnuplot script into a private temporary directory and runs gnuplot on it
// without a shell; every figure is written as PNG and SVG, each replaced whole (gnuplot draws
// into a temporary beside it, which is synced and renamed).
#pragma once

#include <string>
#include <vector>

#include "recur/diag/diagnostics.h"

namespace recur {

// The gnuplot executable's path, or "" when it is not installed.
std::string find_gnuplot();
// Throws Error "--plots needs gnuplot ..." (with the install command) when it is missing;
// `what` names the option or command that needs it.
void require_gnuplot(const std::string& what);

// From a run directory's metrics.jsonl, writes into out_dir (created when missing):
//   loss.png/svg         training and validation loss (and test, when there is one) by step
//   grad.png/svg         gradient norm, clipping rate and learning rate by step
//   diagnostics.png/svg  (only when the run recorded --diagnostics lines) state-gradient decay
//                        with distance, per-position gradients, gradient norm before/after
//                        clipping, saturated-gate fraction and mean forget/update gate by step
// Returns the paths written. Throws Error naming the file for a missing or unreadable
// metrics.jsonl, a run without training lines, or a gnuplot failure (its last message).
std::vector<std::string> plot_run(const std::string& run_dir, const std::string& out_dir);

// One figure (diagnose_gradients.png/svg in out_dir) of gradient_experiment's profiles: one
// panel per variant, the three cells in each, log scale. Returns the paths written.
std::vector<std::string> plot_gradient_experiment(const std::vector<GradientProfile>& profiles,
                                                  const GradientExperimentOptions& opts, const std::string& out_dir);

// One sentence's attention (recur translate --attention-plot): the source words, the output
// words (with the closing <eos>) and the weights [output][source], rows summing to 1.
struct AttentionPlot {
  std::vector<std::string> source, output;
  std::vector<std::vector<float>> weights;
};
// A heat map per sentence - source words across the top, output words down the side, the
// weight as shade (0 white, 1 dark blue) - written to out_dir/attention-<n>.png and .svg (n from
// 1, in input order). Returns the paths written. Throws Error for rows that do not match the
// words, missing gnuplot (require_gnuplot's message) or a gnuplot failure.
std::vector<std::string> plot_attention(const std::vector<AttentionPlot>& sentences, const std::string& out_dir);

}  // namespace recur
