// apps/commands.h - the subcommands of the `recur` tool. Each lives in its own cmd_*.cpp,
// registers its options on the parent app and does its work through the library; main.cpp
// only dispatches and turns exceptions into one-line errors.
#pragma once

#include <CLI/CLI.hpp>

namespace recur::cli {

// Registration hooks, one per command file. Keep this list sorted.
// (add new commands here and in register_all in main.cpp)
void add_diagnose(CLI::App& app);  // recur diagnose gradients
void add_classify(CLI::App& app);  // recur classify MODEL [TEXT...]
void add_embed(CLI::App& app);   // recur embed TEXT... --out VECTORS
void add_eval(CLI::App& app);    // recur eval MODEL FILE
void add_export(CLI::App& app);  // recur export MODEL OUT --precision P
void add_help_markdown(CLI::App& app);  // recur help-markdown (hidden): docs/cli.md's generated section
void add_info(CLI::App& app);    // recur info MODEL
void add_midi(CLI::App& app);  // recur midi encode|decode|roundtrip
void add_music_stats(CLI::App& app);  // recur music-stats SOURCE...
void add_plot(CLI::App& app);  // recur plot RUN_DIR
void add_prepare(CLI::App& app);  // recur prepare INPUT... --out DIR
void add_sample(CLI::App& app);  // recur sample MODEL
void add_score(CLI::App& app);   // recur score MODEL [SENTENCE...]
void add_show(CLI::App& app);  // recur show MODEL TEXT --out page.html
void add_tag(CLI::App& app);        // recur tag MODEL FILE
void add_train(CLI::App& app);   // recur train DATA --out DIR
void add_translate(CLI::App& app);  // recur translate MODEL [TEXT...]

}  // namespace recur::cli
