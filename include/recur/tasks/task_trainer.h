// recur/tasks/task_trainer.h - training a task model (tasks.h) from its data files: shuffled,
// length-bucketed padded batches, the shared optimizer and clipping (optim.h), validation with
// the task's metric, last/best checkpoints, metrics.jsonl and an exact resume.
//
// A run directory holds last.safetensors, best.safetensors (best validation metric: entity F1,
// accuracy, or -loss for seq2seq / generate) and metrics.jsonl with one JSON object per line:
// {"type":"train"|"valid"|"test","step","epoch","loss","<metric>","grad_norm","examples_per_s",
//  "lr","elapsed_s"}. Data order and dropout come from generators seeded by `seed` whose state,
// with the position in the epoch and the optimizer moments, is in the checkpoint, so a resumed
// run continues exactly where it stopped.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <limits>
#include <string>

#include "recur/core/optim.h"
#include "recur/tasks/tasks.h"

namespace recur {

struct TaskTrainOptions {
  TaskSpec task;
  std::string data_path, valid_path, test_path;
  double valid_fraction = 0.1;  // held out of the training data when there is no valid_path
  TaskVocabOptions vocab;
  TaskModelOptions model;
  std::string embeddings_path;  // GloVe / word2vec text for the word embedding; empty = none

  OptimizerConfig optimizer;  // lr <= 0: the optimizer's default (trainer.h default_lr)
  int64_t batch = 32;
  double clip_norm = 5.0;  // 0 = off
  double lr_decay = 1.0;   // lr = lr0 * lr_decay^(epoch - 1)
  int64_t epochs = 0, steps = 0;  // all budgets 0: 10 epochs
  double time_limit = 0;
  uint64_t seed = 1;
  int64_t valid_every = 0;  // 0 = each epoch end
  int64_t log_every = 50;
  int64_t eval_batch = 64;

  std::string out_dir;
  std::string resume_path;
  bool force = false;

  void validate() const;  // Error "--<flag>: got <value>, expected <range>"
};

struct TaskLog {
  std::string type;  // "train", "valid", "test"
  int64_t step = 0;
  double epoch = 0, loss = 0, metric = 0;
  std::string metric_name;  // empty on train lines
  double grad_norm = 0, examples_per_s = 0, lr = 0, elapsed_s = 0;
};

struct TaskTrainObserver {
  std::function<void(const TaskLog&)> on_log;
  std::function<void(const std::string&)> on_note;
};

struct TaskTrainResult {
  int64_t step = 0, epoch = 0;
  bool interrupted = false, nothing_to_do = false;
  double best_metric = -std::numeric_limits<double>::infinity();
  std::string metric_name;
  std::string last_path, best_path;
};

TaskTrainResult train_task(const TaskTrainOptions& opts, const TaskTrainObserver& obs,
                           const std::atomic<bool>* stop = nullptr);

}  // namespace recur
