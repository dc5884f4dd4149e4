// apps/lm_cli_util.h - pieces shared by the language-model commands (train, sample, score,
// eval, info): thread count, model loading, number formatting.
#pragma once

#include <CLI/CLI.hpp>

#include <string>

#include "recur/train/checkpoint.h"

namespace recur::cli {

// --threads N: threads of OpenBLAS and oneDNN (0 = leave their own defaults; see recur/core/threads.h).
// Products are partitioned by thread count, so an exact resume wants the same N as the run it
// continues.
void add_threads_option(CLI::App* sub, int& threads);
void apply_threads(int threads);

// Loads and validates a checkpoint's model part (sample, score, eval).
LmModel load_model(const std::string& path);

std::string format_duration(double seconds);  // "1h02m", "3m20s", "12s"
std::string format_count(double x);           // "45.2k", "1.3M", "812"

}  // namespace recur::cli
