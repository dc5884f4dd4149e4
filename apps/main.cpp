// recur command-line tool: thin dispatch to the library. Every failure is one line on stderr,
// "recur: error: <what>", and a non-zero exit status.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <exception>
#include <string>

#include "commands.h"

namespace recur::cli {
namespace {
void register_all(CLI::App& app) {
  add_train(app);
  add_classify(app);
  add_tag(app);
  add_translate(app);
  add_sample(app);
  add_score(app);
  add_eval(app);
  add_info(app);
  add_midi(app);
  add_music_stats(app);
  add_diagnose(app);
  add_plot(app);
  add_show(app);
  (void)app;
}
}  // namespace
}  // namespace recur::cli

int main(int argc, char** argv) {
  CLI::App app{"recur: recurrent sequence models (RNN, GRU, LSTM) trained by backpropagation through time"};
  app.set_version_flag("--version", "recur 0.1.0");
  app.require_subcommand(1);
  app.failure_message([](const CLI::App*, const CLI::Error& e) {
    return std::string("recur: error: ") + e.what() + " (run with --help for usage)\n";
  });
  recur::cli::register_all(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "recur: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
