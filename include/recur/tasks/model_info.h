// include/recur/tasks/model_info.h - `recur info --json`: what a checkpoint holds as one JSON
// object (the shape is documented in docs/cli.md and kept stable).
#pragma once

#include <string>

namespace recur {

// {"file", "format", "format_version", "kind" (lm, music, classify, tag, seq2seq, generate),
//  "parameters", "vocabulary" (language models: tokens incl. <unk> <eos>), "labels" (task
//  models: classes, tags or conditions), "train_state" (the saved training state as written, or
//  null when the model has none)}. Throws what loading the checkpoint throws.
std::string model_info_json(const std::string& path);

// `recur info`'s line for a train_state that train_progress_from_json does not read (a task
// model of recur's version-1 trainer): "step S, E epoch(s) complete, 1m02s (version-1 trainer)"
// from the fields it has; empty when it has no step.
std::string train_state_brief(const std::string& state);

}  // namespace recur
