// apps/task_cli.h - the task side of the shared commands: `recur train --task
// classify|tag|seq2seq|generate`, `recur eval` and `recur sample --condition` on a task model
// (tasks.h). The task-only commands (classify, tag, translate) live in cmd_tasks.cpp.
#pragma once

#include <CLI/CLI.hpp>

#include <memory>
#include <string>
#include <vector>

#include "recur/tasks/trainer.h"

namespace recur::cli {

struct TaskTrainCliArgs;  // the task options of `recur train` (cmd_tasks.cpp)

// Registers the task options (--char-rnn, --binary, --embeddings, columns, ...) on `recur train`.
std::shared_ptr<TaskTrainCliArgs> add_task_train_options(CLI::App* train);
// True when this `recur train` is a task run: --task names one, or --resume points at a task model.
bool is_task_train(const std::string& task, const TrainOptions& o, bool resume_last);
// Runs it. The shared options (model sizes, optimizer, budget, --out, --resume) come from `o`.
void run_task_train(TaskTrainCliArgs& args, const std::string& task, const std::vector<std::string>& data,
                    const TrainOptions& o, bool resume_last, bool quiet, int threads);

// `recur eval MODEL FILE` on a task model: the task's metrics (options: --beam, ...).
void add_task_eval_options(CLI::App* eval);
bool is_task_model(const std::string& path);
void run_task_eval(const std::string& model, const std::string& file, int threads);

// `recur info MODEL` on a task model: task, structure, vocabularies, labels, training progress.
void run_task_info(const std::string& model);

// `recur sample MODEL --condition LABEL` on a conditioned generator.
void add_task_sample_options(CLI::App* sample);
void run_task_sample(const std::string& model, int64_t count, double temperature, bool argmax, uint64_t seed,
                     int64_t max_length, int threads);

}  // namespace recur::cli
