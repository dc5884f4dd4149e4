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

// --precision f32|bf16|int8 of the generating commands (sample, translate): the weights the
// stepper multiplies with (recur/core/quantize.h). Unset (empty) keeps the model file's own.
// A value other than those is a usage error (exit 2) at parse time.
CLI::Option* add_precision_option(CLI::App* sub, std::string& precision,
                                  const std::string& help = "Weights of the generation steps: f32, bf16 or int8 "
                                                            "(compressed copies, faster; default: the model file's own, "
                                                            "f32 unless written by recur export)");
Precision precision_or(const std::string& flag, Precision file_precision);

// Loads and validates a checkpoint's model part (sample, score, eval).
LmModel load_model(const std::string& path);
// The same for a command that needs a language model: a task model is refused with `needs`
// followed by the kind it is ("score needs a language model (lm); m.safetensors is a tag model").
LmModel load_model(const std::string& path, const std::string& needs);

// format_duration and format_count: recur/train/loop.h.

}  // namespace recur::cli
