#include "cli_io.h"

#include <cmath>
#include <cstdio>

#include "recur/core/file_io.h"

namespace recur::cli {

CLI::Option* add_output_option(CLI::App* sub, std::string& out, const std::string& what) {
  return sub->add_option("-o,--output", out, "Write " + what + " to this file ('-' or none = standard output)");
}

CLI::Option* add_json_flag(CLI::App* sub, bool& json, const std::string& shape) {
  return sub->add_flag("--json", json, "Print " + shape + " instead of text (docs/cli.md)");
}

void write_result(const std::string& out, std::string_view text, const std::string& what) {
  if (out.empty() || out == "-") std::fwrite(text.data(), 1, text.size(), stdout);
  else write_file_atomic(out, text, what);
}

std::string json_line(const nlohmann::ordered_json& j) {
  // Invalid UTF-8 in a token (a byte-level vocabulary) is replaced rather than thrown on.
  return j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n";
}

nlohmann::ordered_json json_number(double v) { return std::isfinite(v) ? nlohmann::ordered_json(v) : nullptr; }

}  // namespace recur::cli
