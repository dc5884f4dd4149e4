// apps/task_cli.h - the task side of the shared commands: the task options of `recur train`, `recur eval` and `recur sample --condition` on a task model
// (tasks.h). The task-only commands (classify, tag, translate) live in cmd_tasks.cpp.
#pragma once

#include <CLI/CLI.hpp>

#include <memory>
#include <string>
#include <vector>

#include "recur/tasks/trainer.h"

namespace recur::cli {

// Registers the task options (--char-rnn, --binary, --embeddings, columns, ...) of `recur train`;
// the library refuses them by name for the tasks they do not apply to (trainer.h).
void add_task_train_options(CLI::App* train, TrainOptions& o);

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
