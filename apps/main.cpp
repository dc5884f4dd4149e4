// recur command-line tool: thin dispatch to the library.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <exception>

int main(int argc, char** argv) {
  CLI::App app{"recur: recurrent sequence models (RNN, GRU, LSTM) trained by backpropagation through time"};
  app.set_version_flag("--version", "recur 0.1.0");
  app.require_subcommand(0, 1);
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
