// recur/train/schedule.h - the one learning-rate schedule of `recur train`, with one meaning for
// every task (language model, music, tag, classify, seq2seq, generate):
//
//   lr(epoch) = lr0 * decay^max(0, epoch - decay_after) * plateau_scale      (epoch 1-based)
//               * min(1, step / warmup)                                      (step 1-based)
//
// The last factor is a linear warm-up over the first `warmup` steps (Goyal et al. 2017; the
// Transformer's recipe without its decay), off with warmup 0: large batches and Adam's first
// steps, whose moment estimates rest on a few gradients, start gently.
// i.e. the first decay_after epochs train at lr0 (with decay_after 0 the decay already applies to
// epoch 1, as char-rnn's schedule does), and plateau_scale starts at 1 and is multiplied by
// plateau_decay whenever validation has not improved for more than plateau_patience scheduled
// evaluations in a row. "Improved" is the task's selection score: validation loss, or the metric
// (F1, accuracy) for tasks that select on it. The plateau state is saved with the run, so a
// resumed run follows the same schedule.
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <string_view>

namespace recur {

struct LrScheduleOptions {
  double lr0 = 0.002;
  double decay = 1.0;         // (0, 1]
  int64_t decay_after = 0;    // epochs at lr0 before decay applies
  double plateau_decay = 0;   // (0, 1) or 0 = off
  int64_t plateau_patience = 0;
  int64_t warmup = 0;         // steps of linear warm-up, 0 = off
};

struct LrSchedule {
  LrScheduleOptions opts;
  double plateau_scale = 1;
  int64_t plateau_bad = 0;  // scheduled evaluations since the last improvement
  // Lower is better (the loop negates metrics where higher is better); +inf until the first.
  double plateau_best = std::numeric_limits<double>::infinity();

  // The rate of step `step` (1-based; 0 = ignore the warm-up) while training the epoch after
  // `completed_epochs` complete ones.
  double lr(int64_t completed_epochs, int64_t step = 0) const;
  // One scheduled validation with selection score `score` (lower is better). Returns true when
  // the plateau rule just lowered the rate.
  bool on_validation(double score);

  std::string state_json() const;  // {"plateau_scale":..,"plateau_bad":..,"plateau_best":..|null}
  // Throws FormatError naming `origin` and the field.
  void set_state_json(std::string_view json, std::string_view origin);
};

}  // namespace recur
