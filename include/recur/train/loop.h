// recur/train/loop.h - the one training loop of `recur train`, for every task.
//
// A task (the language model on text or music, tag, classify, seq2seq, generate) implements
// TrainTask: it owns its data, model and checkpoint format and answers "next batch",
// "forward-backward", "evaluate", "state to and from JSON". train() owns everything else, the
// same for every task:
//   * the run directory (run_dir.h): last.safetensors at every evaluation point, at the end and
//     when stopped; best.safetensors at the best validation score; metrics.jsonl
//   * the budget (epochs and steps count from the start of the run, seconds per invocation;
//     all 0 = 10 epochs), interruption (`stop`, polled after each step)
//   * the step, in llm.c's order: batch, zero gradients, forward-backward, divergence check,
//     clip (norm, then value), diagnostics, learning rate, update
//   * the learning-rate schedule (schedule.h), divergence checks, the logging window, ETA
//   * validation with the task's metric and its direction, the final test on the best model
//   * resume: one train_state JSON (below) with the task's own state inside, so a run stopped at
//     any step and resumed logs bit-identical losses (same thread count)
//
// train_state (checkpoint metadata, JSON object):
//   {"format":"recur-train","version":2,"step","epoch","batch_in_epoch","lr","schedule":{..},
//    "best_score","best_loss","best_metric","best_step","patience_best","bad_validations",
//    "first_loss","dropout_rng","optimizer",
//    "optimizer_steps","window":{..},"elapsed_s","tokens_seen","examples_seen",
//    "options":{the caller's options, verbatim},"task":{the task's state_json()}}
// Training tensors the loop adds to a checkpoint: the optimizer's "optim.*"; the task adds its
// own (e.g. the language model's carried state "train.state.*").
//
// metrics.jsonl lines: {"type":"train"|"valid"|"test","step","epoch","loss","ppl","bpc",
//   "<metric>" (valid/test: "f1", "accuracy", "bleu"; tasks selecting on loss show ppl only),
//   "grad_norm","clip_rate","tokens_per_s","examples_per_s","lr","elapsed_s"}; NaN (null) where a
//   value does not apply. Train lines of a data-parallel run add "comm_wait_s" (rank 0's wait
//   for gradient sums per step). With diagnostics_every, also the task's {"type":"diag",...} lines.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "recur/core/loss.h"
#include "recur/core/optim.h"
#include "recur/core/random.h"
#include "recur/core/tensor.h"
#include "recur/train/communicator.h"
#include "recur/train/schedule.h"

namespace recur {

inline constexpr std::string_view kTrainStateFormat = "recur-train";
inline constexpr int kTrainStateVersion = 2;

// What one step trained on.
struct StepResult {
  LossSum loss;          // summed over target tokens (the gradient is that of the mean)
  int64_t examples = 0;  // sequences (stream chunks count their rows)
};

enum class EvalSplit { valid, test };

// One evaluation. metric_name empty: the task selects on the loss (shown as ppl / bpc).
struct EvalSummary {
  LossSum loss;
  int64_t examples = 0;
  double metric = std::numeric_limits<double>::quiet_NaN();
  std::string metric_name;  // "f1", "accuracy", "bleu"; empty = the loss
  bool higher_is_better = true;
};

// Everything the loop knows about a step, for the task's diagnostics line.
struct DiagContext {
  int64_t step = 0;
  double epoch = 0;
  double grad_norm = 0, grad_norm_clipped = 0;
  bool clipped = false;
  double clip_rate = 0;  // since the previous diagnostics line
};

// ready(first): params()[first..] hold their final gradients for this step (called during
// backward, with first decreasing), so the loop can start summing them over ranks.
using GradsReadyFn = std::function<void(size_t first)>;

class TrainTask {
 public:
  virtual ~TrainTask() = default;
  // The trainable parameters with their gradients; stable for the task's lifetime.
  virtual std::vector<ParamRef<float>> params() = 0;
  virtual int64_t batches_per_epoch() const = 0;
  // Moves to the next training batch; false at an epoch end (the task is then at the start of
  // the next epoch and epoch() has advanced).
  virtual bool next_batch() = 0;
  virtual int64_t epoch() const = 0;  // completed epochs
  // Zeroes every gradient of the model (the task knows its layout: sparse rows, frozen layers).
  virtual void zero_grads() = 0;
  // Data parallelism (communicator.h): this process takes the rows shard_of(B, rank, size) of
  // every global batch (streams in stream mode, sequences otherwise). Called once, before the
  // first batch and before a resume; one process takes every row.
  virtual void set_shard(int rank, int size) = 0;
  // Target tokens in this process's rows of the current batch (the loop sums them over ranks).
  virtual int64_t batch_targets() = 0;
  // Forward and backward of this process's rows of the current batch into the (zeroed)
  // gradients of params(), scaled by 1 / total_targets: the mean loss over the global batch's
  // target tokens once the ranks' gradients are summed.
  // `ready` (may be empty) is called as gradients become final (GradsReadyFn).
  virtual StepResult forward_backward(Rng& dropout, int64_t total_targets, const GradsReadyFn& ready) = 0;
  // Called on every rank before each checkpoint: brings per-rank training state (stream mode's
  // carried state of each rank's streams) together so that rank 0 writes all of it.
  virtual void gather_for_checkpoint(const Communicator& comm) { (void)comm; }
  virtual bool has_split(EvalSplit split) const = 0;
  // weights_path non-empty: evaluate the model saved there (the final test on the best model).
  virtual EvalSummary evaluate(EvalSplit split, const std::string& weights_path) = 0;
  // Whether the loss is per character (bpc is then shown).
  virtual bool loss_per_char() const = 0;
  // The task's own resumable state (data position, ...), a JSON object.
  virtual std::string state_json() const = 0;
  virtual void set_state_json(const std::string& json, const std::string& origin) = 0;
  // Writes the model with train_state and the loop's training tensors (plus the task's own).
  virtual void write_checkpoint(const std::string& path, const std::string& train_state,
                                std::map<std::string, Tensor<float>> tensors) = 0;
  // Takes the task's own tensors out of a resumed checkpoint's training tensors.
  virtual void restore_tensors(std::map<std::string, Tensor<float>>& tensors, const std::string& origin) = 0;
  // One {"type":"diag",...} metrics line of the last forward_backward (before the update).
  virtual std::string diagnostics_json(const DiagContext& ctx) = 0;
};

struct LoopOptions {
  OptimizerConfig optimizer;  // lr > 0: the resolved lr0
  double clip_norm = 5.0, clip_value = 0.0;  // 0 = off
  LrScheduleOptions schedule;  // lr0 is optimizer.lr
  int64_t epochs = 0, steps = 0;
  double time_limit = 0;
  uint64_t seed = 1;  // the dropout generator's seed
  int64_t valid_every = 0;  // 0 = each epoch end
  int64_t log_every = 50;
  int64_t diagnostics_every = 0;
  double diverge_factor = 10.0;  // 0 = only non-finite values count
  // Early stopping: stop after this many scheduled validations in a row (epoch ends or
  // valid_every) without a better score than every earlier scheduled one; 0 = off. The count is
  // in train_state, so a resumed run stops where one run would have; best.safetensors holds the
  // best model either way.
  int64_t patience = 0;
  std::string out_dir;
  bool resuming = false;
  std::string resume_path;  // for messages
  std::string options_json;  // saved verbatim under "options"
  // The processes of a data-parallel run; null: Communicator::world(). Rank 0 alone writes the
  // run directory and calls the observer; every rank returns the same TrainResult.
  const Communicator* comm = nullptr;
};

// A resumed checkpoint's training part, read by the task that knows the file format.
struct ResumeState {
  std::string train_state;
  std::map<std::string, Tensor<float>> tensors;
};

// One logged set of values; NaN where a value does not apply.
struct TrainLog {
  std::string type;  // "train", "valid", "test"
  int64_t step = 0;
  double epoch = 0;  // fractional
  double loss = 0, ppl = 0, bpc = 0;
  double metric = std::numeric_limits<double>::quiet_NaN();
  std::string metric_name;  // valid / test lines of tasks with a metric
  double grad_norm = 0, clip_rate = 0, tokens_per_s = 0, examples_per_s = 0, lr = 0, elapsed_s = 0;
  double eta_s = -1;  // seconds to the end of the budget, -1 when unknown
  int ranks = 1;      // processes of a data-parallel run (tokens/s are then the whole job's)
  // Data parallelism: seconds per step this rank waited for gradient sums after its backward
  // (the communication that backward did not hide); NaN with one process.
  double comm_wait_s = std::numeric_limits<double>::quiet_NaN();
};

// The one progress line of every task: "step 40 | epoch 1.25 | loss 1.2345 | ppl 3.44 | grad ...
// | clip 0% | 12.3k tok/s | 456 ex/s | lr 0.002 | ETA 1m02s" (examples/s only where it differs
// from tokens/s); valid/test lines show the loss, ppl or bpc and the metric.
std::string format_train_log(const TrainLog& log);
std::string format_count(double x);      // 1234 -> "1.23k"
std::string format_duration(double s);   // 62 -> "1m02s"

struct TrainObserver {
  std::function<void(const TrainLog&)> on_log;       // every metrics.jsonl line
  std::function<void(const TrainLog&)> on_progress;  // every step (running window), for a live line
  std::function<void(const std::string&)> on_note;   // one-line notes ("resumed from ...")
};

struct TrainResult {
  int64_t step = 0;
  int64_t epoch = 0;
  bool interrupted = false;
  bool nothing_to_do = false;  // a resumed run whose budget was already reached
  bool out_of_time = false;    // stopped by this invocation's time budget, its step/epoch budget not met
  bool early_stopped = false;  // stopped by LoopOptions::patience (also: resumed after such a stop)
  double best_valid_loss = std::numeric_limits<double>::infinity();
  double best_metric = std::numeric_limits<double>::quiet_NaN();
  std::string metric_name;  // empty: selected on the loss
  std::string last_path, best_path;  // best_path empty when there was no validation
};

// Runs the loop. The caller has checked the run directory (run_dir.h) and built the task; with
// opts.resuming, `resume` holds the checkpoint's train_state and training tensors.
// Throws Error on divergence (the last good checkpoint stays).
TrainResult train(TrainTask& task, const LoopOptions& opts, ResumeState resume, const TrainObserver& obs,
                  const std::atomic<bool>* stop = nullptr);

// The progress of a run as saved in a train_state (what `recur info` shows).
struct TrainStateSummary {
  int64_t step = 0, epoch = 0;
  double lr = 0;
  double best_valid_loss = std::numeric_limits<double>::infinity();
  int64_t best_step = 0;
  double elapsed_s = 0;
  int64_t tokens_seen = 0;
  std::string options_json;  // "options"
};
// True for a train_state written by this loop (format "recur-train"), false for a version-1 one.
bool is_loop_train_state(std::string_view train_state);
// Throws FormatError naming `origin` and the field.
TrainStateSummary train_state_summary(std::string_view train_state, std::string_view origin);

}  // namespace recur
