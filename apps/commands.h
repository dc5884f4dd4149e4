// apps/commands.h - the subcommands of the `recur` tool. Each lives in its own cmd_*.cpp,
// registers its options on the parent app and does its work through the library; main.cpp
// only dispatches and turns exceptions into one-line errors.
#pragma once

#include <CLI/CLI.hpp>

namespace recur::cli {

// Registration hooks, one per command file. Keep this list sorted.
// (add new commands here and in register_all in main.cpp)
void add_eval(CLI::App& app);    // recur eval MODEL FILE
void add_info(CLI::App& app);    // recur info MODEL
void add_midi(CLI::App& app);  // recur midi encode|decode|roundtrip
void add_sample(CLI::App& app);  // recur sample MODEL
void add_score(CLI::App& app);   // recur score MODEL [SENTENCE...]
void add_train(CLI::App& app);   // recur train DATA --out DIR

}  // namespace recur::cli
