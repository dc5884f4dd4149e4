// recur show MODEL TEXT -o page.html - the activation page (recur/diag/show_page.h): every token
// of a text coloured by a hidden unit's activation or a gate's value, with the model's top
// next-token predictions on hover.
#include <cstdio>
#include <memory>
#include <string>

#include "commands.h"
#include "lm_cli_util.h"
#include "recur/data/text_data.h"
#include "recur/diag/show_page.h"

namespace recur::cli {
namespace {

struct ShowArgs {
  std::string model, text, out;
  ShowPageOptions page;
  int threads = 0;
};

void run(ShowArgs& a) {
  apply_threads(a.threads);
  if (a.out.empty()) throw Error("show: -o/--output: missing; expected the HTML page to write ('-' = standard output)");
  if (a.text.empty() == a.page.file.empty())
    throw Error("show: expected the text as TEXT or --file FILE (one of them)");
  const std::string text = a.page.file.empty() ? a.text : read_text_file(a.page.file);  // '-' = stdin
  a.page.validate();  // before the model is loaded
  a.page.note = [](const std::string& line) { std::fprintf(stderr, "recur: %s\n", line.c_str()); };
  const bool to_stdout = a.out == "-";
  const ShowPageSummary s =
      write_show_page(load_model(a.model, "show needs a language model (lm)"), text, to_stdout ? "" : a.out, a.page);
  if (to_stdout) std::fwrite(s.html.data(), 1, s.html.size(), stdout);  // checked at exit (main.cpp)
  // The summary goes where it does not mix with the page.
  std::fprintf(to_stdout ? stderr : stdout, "%s%s: %lld tokens, %lld units of the %s (most variable: unit %lld)\n",
               to_stdout ? "recur: wrote " : "wrote ", to_stdout ? "<stdout>" : a.out.c_str(), (long long)s.tokens,
               (long long)s.units, s.quantity.c_str(), (long long)s.best_unit);
}

}  // namespace

void add_show(CLI::App& app) {
  auto a = std::make_shared<ShowArgs>();
  CLI::App* sub = app.add_subcommand(
      "show", "Write an HTML page that colours a text by a hidden unit's activation or a gate, with predictions on hover");
  sub->add_option("MODEL", a->model, "A checkpoint of `recur train`")->required();
  sub->add_option("TEXT", a->text, "The text to show (or --file)");
  sub->add_option("--file", a->page.file, "Read the text from this file instead ('-' = stdin)");
  sub->add_option("-o,--output", a->out, "The HTML page to write ('-' = standard output)");
  // The old spelling, kept so that scripts keep working; hidden from --help (empty group).
  sub->add_option("--out", a->out, "The HTML page to write (old spelling of -o)")->group("");
  sub->add_option("--layer", a->page.layer, "Layer, 1..L (0 = the last)")->capture_default_str();
  sub->add_option("--gate", a->page.gate, "none = the hidden state h; or a gate: i f g o (LSTM), r z n (GRU)")
      ->check(CLI::IsMember({"none", "i", "f", "g", "o", "r", "z", "n"}))
      ->capture_default_str();
  sub->add_option("--max-tokens", a->page.max_tokens, "Show at most this many tokens")->capture_default_str();
  sub->add_option("--top", a->page.top, "Next-token predictions shown on hover")->capture_default_str();
  add_threads_option(sub, a->threads);
  sub->callback([a] { run(*a); });
}

}  // namespace recur::cli
