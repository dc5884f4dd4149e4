// recur/tasks/trainer.h - training a language model on a text file, with validation, checkpoints,
// metrics and an exact resume.
//
// A run lives in one directory:
//   last.safetensors  written at every evaluation point (epoch end or --valid-every steps),
//                     at the end of the run and when stopped by a signal
//   best.safetensors  the model with the lowest validation loss so far
//   metrics.jsonl     one JSON object per logged value set: {"type":"train"|"valid"|"test",
//                     "step","epoch","loss","ppl","bpc","grad_norm","clip_rate","tokens_per_s",
//                     "lr","elapsed_s"}; losses in full (round-trip) precision; with
//                     diagnostics_every, also {"type":"diag",...} lines (diagnostics.h)
//
// Determinism: parameter init, dropout and data order draw from generators seeded by
// TrainOptions::seed; their states, the data position, the recurrent state carried between
// stream chunks, the optimizer moments and the logging window are all in the checkpoint, so a
// run stopped at any step and resumed logs bit-identical losses to an uninterrupted one (with
// the same thread count: BLAS results may depend on it).
//
// Divergence: a non-finite loss or gradient norm, or a loss above diverge_factor times the
// first step's loss, stops the run with an Error; no checkpoint is written after that point
// (and save_checkpoint refuses non-finite weights anyway), so the last good one stays.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <string_view>

#include "recur/train/checkpoint.h"
#include "recur/core/optim.h"
#include "recur/data/corpus.h"

namespace recur {

struct TrainOptions {
  // Data.
  std::string data_path;
  std::string valid_path;        // empty: hold out valid_fraction of the training lines
  std::string test_path;         // empty: no final test report
  double valid_fraction = 0.05;  // [0, 1); 0 = no validation unless valid_path
  TokenLevel level = TokenLevel::chars;
  TextMode mode = TextMode::stream;
  int64_t max_vocab = 0;  // 0 = unlimited
  int64_t min_count = 1;

  // Model.
  CellType cell = CellType::lstm;
  GruReset gru_reset = GruReset::after;
  int64_t layers = 2;
  int64_t hidden = 128;
  int64_t embed = -1;  // -1: chars one-hot, words embed = hidden; 0: one-hot
  int64_t proj = 0;
  bool peephole = false;
  bool bidirectional = false;  // refused with the reason (kept so the refusal is the library's)
  double dropout = 0.0;        // on embeddings, between layers and on the last layer's output
  double init_scale = 0.0;     // > 0: every weight U(-s, s); 0: PyTorch's default scheme

  // Optimisation.
  OptimizerConfig optimizer;  // lr <= 0: the optimizer's default (see default_lr)
  int64_t batch = 32;
  int64_t seq_len = 64;       // stream mode BPTT length
  double clip_norm = 5.0;     // 0 = off
  double clip_value = 0.0;    // 0 = off
  double lr_decay = 1.0;      // lr = lr0 * lr_decay^max(0, epoch - decay_after) (epoch 1-based)
  int64_t decay_after = 0;
  double plateau_decay = 0.0;    // (0, 1): multiply lr by it when validation does not improve; 0 = off
  int64_t plateau_patience = 0;  // evaluations without improvement tolerated before decaying

  // Budget: the first limit reached stops the run (epochs and steps count from the start of
  // the run, also after a resume; seconds count per invocation). All 0: 10 epochs.
  int64_t epochs = 0;
  int64_t steps = 0;
  double time_limit = 0.0;

  uint64_t seed = 1;
  int64_t valid_every = 0;    // steps between evaluations; 0 = at each epoch end
  int64_t log_every = 50;     // steps between metrics lines
  int64_t eval_batch = 10;
  double diverge_factor = 10.0;  // 0 = only non-finite losses count as divergence

  std::string out_dir;
  std::string resume_path;  // checkpoint to continue from; empty = a fresh run
  bool force = false;       // a fresh run may replace an existing run in out_dir
  // Every N steps (0 = off) a {"type":"diag"} line in metrics.jsonl: per-layer state-gradient
  // profiles, gate saturation, gradient norm before/after clipping (diagnostics.h). A reporting
  // choice of this invocation: not saved in the checkpoint, so --resume does not inherit it.
  int64_t diagnostics_every = 0;

  // Throws Error "--<flag>: got <value>, expected <range>" for the first bad value.
  void validate() const;
};

double default_lr(OptimizerType type);  // sgd 1, adam 0.002, adagrad 0.01, rmsprop 0.002

// TrainOptions as JSON (kept in the checkpoint's train_state), and back. The CLI uses the
// saved options as the defaults of a resumed run.
std::string train_options_to_json(const TrainOptions& o);
TrainOptions train_options_from_json(std::string_view json, std::string_view origin);

// The progress of a run as saved in a checkpoint (the parts `recur info` shows).
struct TrainProgress {
  int64_t step = 0;
  int64_t epoch = 0;  // completed epochs
  double lr = 0;
  double best_valid_loss = std::numeric_limits<double>::infinity();
  int64_t best_step = 0;
  double elapsed_s = 0;
  int64_t tokens_seen = 0;
  std::string data_path;
  TrainOptions options;
};
// Throws FormatError naming `origin` and the field.
TrainProgress train_progress_from_json(std::string_view train_state, std::string_view origin);

// One logged set of values; NaN where a value does not apply (bpc of a word model, the
// gradient norm of a validation).
struct TrainLog {
  std::string type;  // "train", "valid", "test"
  int64_t step = 0;
  double epoch = 0;  // fractional: completed epochs + share of the current one
  double loss = 0, ppl = 0, bpc = 0;
  double grad_norm = 0, clip_rate = 0, tokens_per_s = 0, lr = 0, elapsed_s = 0;
  double eta_s = -1;  // seconds to the end of the budget, -1 when unknown
};

// What the caller sees while training runs (the CLI prints; tests may record).
struct TrainObserver {
  std::function<void(const TrainLog&)> on_log;       // every metrics.jsonl line
  std::function<void(const TrainLog&)> on_progress;  // every step (running window), for a live line
  std::function<void(const std::string&)> on_note;   // one-line notes ("resumed from ...")
};

struct TrainResult {
  int64_t step = 0;
  int64_t epoch = 0;
  bool interrupted = false;  // stopped by TrainControl::stop
  bool nothing_to_do = false;  // a resumed run whose budget was already reached
  double best_valid_loss = std::numeric_limits<double>::infinity();
  std::string last_path, best_path;  // best_path empty when there was no validation
};

// `stop` is polled after each step (set it from a signal handler): the run then writes
// last.safetensors and returns with interrupted = true.
TrainResult train_language_model(const TrainOptions& opts, const TrainObserver& obs,
                                 const std::atomic<bool>* stop = nullptr);
// Trains on a TokenCorpus (data/corpus.h) instead of opts.data_path.
TrainResult train_language_model(const TrainOptions& opts, const TokenCorpus& corpus, const TrainObserver& obs,
                                 const std::atomic<bool>* stop = nullptr);

}  // namespace recur
