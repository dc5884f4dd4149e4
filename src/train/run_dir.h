// src/train/run_dir.h - the run directory the training loop (loop.cpp) writes:
// last.safetensors, best.safetensors and metrics.jsonl under --out. Internal to the library.
#pragma once

#include <cstdint>
#include <fstream>
#include <string>

namespace recur::detail {

// Before anything is read: --out must be a directory or absent, and a fresh run (not resuming)
// may not start over an existing one unless forced. Throws Error saying which and what to pass.
void check_run_dir(const std::string& out_dir, bool resuming, bool force);

// Creates the directory (only once the inputs have been checked, so a bad input leaves nothing
// behind) and opens metrics.jsonl for appending lines. A fresh run (--force over an old one)
// removes an old best.safetensors so it cannot look current, and truncates the metrics; a
// resumed run keeps the metrics lines up to the checkpoint's step (a torn last line is dropped),
// rewritten through a temporary file, so no step is logged twice.
// Throws Error naming the directory or file that cannot be created or written.
std::ofstream open_run_metrics(const std::string& out_dir, bool resuming, int64_t step);

}  // namespace recur::detail
