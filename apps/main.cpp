// recur command-line tool: thin dispatch to the library. Every failure is one line on stderr,
// "recur: error: <what>", and a documented exit status (docs/cli.md): 0 success, 1 error,
// 2 usage error (an unknown flag, a missing argument, a value out of range), 130 interrupted.
#include <CLI/CLI.hpp>

#include <csignal>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>
#include <new>
#include <iostream>
#include <memory>
#include <string>

#include "commands.h"
#include "recur/train/communicator.h"
#include "recur/version.h"
#include "signals.h"

namespace recur::cli {
namespace {
void register_all(CLI::App& app) {
  add_train(app);
  add_prepare(app);
  add_classify(app);
  add_tag(app);
  add_translate(app);
  add_sample(app);
  add_score(app);
  add_eval(app);
  add_embed(app);
  add_export(app);
  add_info(app);
  add_midi(app);
  add_music_stats(app);
  add_diagnose(app);
  add_plot(app);
  add_show(app);
  add_help_markdown(app);  // last: it documents the others
}
}  // namespace
}  // namespace recur::cli

namespace {

constexpr int kExitError = 1, kExitUsage = 2;

// CLI11 2.1 writes a flag with a --no- form as "--crf,--no-crf{false}": the braces are its
// notation for the value the negated name stores, and read like a value to type. Both names
// are the whole story.
class HelpFormatter : public CLI::Formatter {
 public:
  std::string make_option_name(const CLI::Option* opt, bool is_positional) const override {
    std::string name = CLI::Formatter::make_option_name(opt, is_positional);
    if (is_positional) return name;
    for (size_t open; (open = name.find('{')) != std::string::npos;) {
      const size_t close = name.find('}', open);
      if (close == std::string::npos) break;
      name.erase(open, close - open + 1);
    }
    return name;
  }
};

// What the command printed must have reached standard output: a full disk or a closed pipe is
// an error, not a success with a truncated result (recur info MODEL > /dev/full exited 0).
int check_stdout(int status) {
  std::cout.flush();
  const bool cout_failed = !std::cout;
  errno = 0;
  const bool failed = std::fflush(stdout) != 0 || std::ferror(stdout) || cout_failed;
  if (!failed) return status;
  const int err = errno;
  std::fprintf(stderr, "recur: error: standard output: write failed%s%s\n", err ? ": " : "", err ? std::strerror(err) : "");
  return status == 0 ? kExitError : status;
}

// The command line as typed, for an error that can only name the request as a whole.
std::string command_line(int argc, char** argv) {
  std::string s = "recur";
  for (int i = 1; i < argc; ++i) (s += ' ') += argv[i];
  return s.size() > 300 ? s.substr(0, 297) + "..." : s;
}

}  // namespace

int main(int argc, char** argv) {
  // Past a file-size limit (ulimit -f) the kernel sends SIGXFSZ, whose default action kills the
  // process silently and leaves its temporary file behind; ignored, the write fails with EFBIG
  // and is reported like any other failed write.
  std::signal(SIGXFSZ, SIG_IGN);
  // Before any thread exists, so that every thread inherits the blocked mask (signals.h).
  recur::cli::start_signal_watcher();
  // Named, so that --help says "Usage: recur ..." and not the path it was started by (the man page
  // is generated from --help in the build tree).
  CLI::App app{"recur: recurrent sequence models (RNN, GRU, LSTM) trained by backpropagation through time", "recur"};
  app.set_version_flag("--version", "recur " RECUR_VERSION_STRING);
  app.require_subcommand(1);
  app.formatter(std::make_shared<HelpFormatter>());  // before the subcommands, which copy it
  app.failure_message([](const CLI::App*, const CLI::Error& e) {
    return std::string("recur: error: ") + e.what() + " (run with --help for usage)\n";
  });
  recur::cli::register_all(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version arrive as ParseErrors whose code is 0, and an interrupted run as a
    // RuntimeError(130); CLI11's own codes for usage errors (100-127) become the documented 2.
    const int code = app.exit(e);
    return check_stdout(code >= 100 && code <= 127 ? kExitUsage : code);
  } catch (const std::bad_alloc&) {
    // Where the flag or file that sized an allocation is known, the library names it (training's
    // --hidden/--layers/--embed/--batch, the text reader's file); elsewhere the request as typed
    // is the best account of what asked for more memory than there is.
    const std::string msg = "out of memory running '" + command_line(argc, argv) +
                            "'; expected inputs and options whose sizes fit this machine's memory";
    recur::abort_job_if_distributed("recur: error: " + recur::job_rank_prefix() + msg, kExitError);
    std::fprintf(stderr, "recur: error: %s\n", msg.c_str());
    return check_stdout(kExitError);
  } catch (const std::exception& e) {
    // One rank of a data-parallel run that cannot go on ends the whole job at once (the others
    // would wait for it in their next allreduce), naming itself.
    recur::abort_job_if_distributed(std::string("recur: error: ") + recur::job_rank_prefix() + e.what(), kExitError);
    std::fprintf(stderr, "recur: error: %s\n", e.what());
    return check_stdout(kExitError);
  }
  return check_stdout(0);
}
