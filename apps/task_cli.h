// apps/task_cli.h - the task side of the shared commands: the task options of `recur train`, `recur eval` and `recur sample --condition` on a task model
// (tasks.h). The task-only commands (classify, tag, translate) live in cmd_tasks.cpp.
#pragma once

#include <CLI/CLI.hpp>

#include <memory>
#include <string>
#include <vector>

#include "recur/tasks/tasks.h"
#include "recur/tasks/trainer.h"

namespace recur::cli {

// Registers the task options (--char-rnn, --binary, --embeddings, columns, ...) of `recur train`;
// the library refuses them by name for the tasks they do not apply to (trainer.h).
void add_task_train_options(CLI::App* train, TrainOptions& o);

// The column and header options of a command that reads a task file with a trained model (eval,
// classify, tag): only those given override the model's own (TaskColumnOverrides).
struct ColumnCli {
  int64_t text_column = 1, label_column = 0, token_column = 1, tag_column = 0;
  int header = -1;
  CLI::Option *text = nullptr, *label = nullptr, *token = nullptr, *tag = nullptr, *head = nullptr;
  TaskColumnOverrides overrides() const;
};
// table: --text-column --header (and --label-column with labels); conll: --token-column (and
// --tag-column with labels).
void add_task_column_options(CLI::App* sub, ColumnCli& c, bool table, bool conll, bool labels);

// --ensemble MODEL (eval, classify): more classify models whose probabilities are averaged
// with MODEL's; load_ensemble reads them (the column overrides applied to each) and checks them
// with MODEL (check_ensemble, tasks.h), MODEL first in the result.
void add_ensemble_option(CLI::App* sub, std::vector<std::string>& members);
std::vector<TaskModel> load_ensemble(const TaskModel& first, const std::string& first_path,
                                     const std::vector<std::string>& members, const TaskColumnOverrides& cols);

// `recur eval MODEL FILE` on a task model: the task's metrics (options: --beam, columns, ...).
void add_task_eval_options(CLI::App* eval);
bool is_task_model(const std::string& path);
void run_task_eval(const std::string& model, const std::string& file, int threads, bool json, const std::string& out);

// `recur info MODEL` on a task model: task, structure, vocabularies, labels, training progress.
void run_task_info(const std::string& model);

// `recur sample MODEL --condition LABEL` on a conditioned generator.
void add_task_sample_options(CLI::App* sample);
struct TaskSampleRequest {
  int64_t count = 1;
  double temperature = 1;
  bool argmax = false;
  uint64_t seed = 1;
  int64_t max_length = 50;
  int threads = 0;
  bool json = false;    // JSON Lines {condition, text}
  std::string out;      // -o: empty or '-' = standard output
  std::string precision;  // --precision, empty = the file's
};
void run_task_sample(const std::string& model, const TaskSampleRequest& request);

}  // namespace recur::cli
