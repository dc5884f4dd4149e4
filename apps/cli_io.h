// apps/cli_io.h - the input/output conventions every command shares (docs/cli.md, "Conventions"):
// '-' for standard input wherever a file is read (recur/core/file_io.h read_input), `-o/--output
// PATH` (or '-') for a command's result, `--json` for a machine-readable one.
#pragma once

#include <CLI/CLI.hpp>

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace recur::cli {

// -o/--output PATH: where the command's result goes; empty or '-' is standard output. `what`
// says what is written, for --help.
CLI::Option* add_output_option(CLI::App* sub, std::string& out, const std::string& what);

// --json: one JSON object, or JSON Lines for per-item commands (`shape` says which, for --help).
CLI::Option* add_json_flag(CLI::App* sub, bool& json, const std::string& shape);

// The result `text` to standard output (out empty or '-'; a failed write is caught at exit,
// main.cpp) or written whole and atomically to `out` (core/file_io.h), so a failed write leaves
// the previous file.
void write_result(const std::string& out, std::string_view text, const std::string& what = "the result");

// One JSON value as one line (JSON Lines and single objects alike end with '\n'). Non-finite
// numbers become null (JSON has no NaN).
std::string json_line(const nlohmann::ordered_json& j);

// A number for JSON: null when not finite.
nlohmann::ordered_json json_number(double v);

}  // namespace recur::cli
