// apps/lm_cli_util.h - pieces shared by the language-model commands (train, sample, score,
// eval, info): thread count, model loading, number formatting.
#pragma once

#include <CLI/CLI.hpp>

#include <string>

#include "recur/train/checkpoint.h"
#include "recur/train/loop.h"

namespace recur::cli {

// --threads N: the threads of the products, oneDNN and recur's loops (0 = OMP_NUM_THREADS; recur/core/threads.h).
// Products are partitioned by thread count, so an exact resume wants the same N as the run it
// continues.
void add_threads_option(CLI::App* sub, int& threads);
void apply_threads(int threads);

// Loads and validates a checkpoint's model part (sample, score, eval).
LmModel load_model(const std::string& path);
// The same for a command that needs a language model: a task model is refused with `needs`
// followed by the kind it is ("score needs a language model (lm); m.safetensors is a tag model").
LmModel load_model(const std::string& path, const std::string& needs);

// format_duration and format_count: recur/train/loop.h.

}  // namespace recur::cli
