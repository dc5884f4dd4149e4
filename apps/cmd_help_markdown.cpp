// recur help-markdown - the generated section of docs/cli.md: every command's own --help, in
// the order `recur --help` lists them, so the reference cannot drift from the CLI.
// scripts/update_cli_docs.sh splices it between the markers of docs/cli.md and
// tests/test_cli_docs.cpp fails when the committed file differs from what this prints now.
// Hidden from `recur --help` (an empty group): it is for the docs, not for users.
#include <cstdio>
#include <string>

#include "commands.h"

namespace recur::cli {
namespace {

// `parent` is the command line before sub's name ("recur", "recur midi").
void document(const CLI::App* sub, const std::string& parent, std::string& out) {
  const std::string path = parent + " " + sub->get_name();
  out += "### `" + path + "`\n\n```text\n" + sub->help(parent) + "```\n\n";
  for (const CLI::App* child : sub->get_subcommands([](const CLI::App* c) { return !c->get_group().empty(); }))
    document(child, path, out);
}

}  // namespace

void add_help_markdown(CLI::App& app) {
  CLI::App* sub = app.add_subcommand("help-markdown", "Print every command's --help as Markdown (docs/cli.md)");
  sub->group("");
  sub->callback([&app] {
    std::string out;
    for (const CLI::App* c : app.get_subcommands([](const CLI::App* c) { return !c->get_group().empty(); }))
      document(c, "recur", out);
    std::fwrite(out.data(), 1, out.size(), stdout);  // checked at exit (main.cpp)
  });
}

}  // namespace recur::cli
