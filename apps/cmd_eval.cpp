// recur eval MODEL FILE - loss, perplexity and bits per character of a model on a text file.
#include <cmath>
#include <cstdio>
#include <memory>
#include <string>

#include "commands.h"
#include "lm_cli_util.h"
#include "recur/tasks/lm_text.h"
#include "task_cli.h"

namespace recur::cli {
namespace {

struct EvalArgs {
  std::string model, file;
  EvalOptions opts;
  int threads = 0;
};

void run(const EvalArgs& a) {
  if (is_task_model(a.model)) return run_task_eval(a.model, a.file, a.threads);
  apply_threads(a.threads);
  const LmModel model = load_model(a.model);
  const std::string text = read_text_file(a.file);
  const EvalResult r = evaluate_text(model, text, a.opts, a.file);
  std::printf("file        %s\n", a.file.c_str());
  std::printf("model       %s\n", lm_spec_summary(model.spec).c_str());
  std::printf("tokens      %lld scored; %s\n", (long long)r.loss.count, r.oov.summary().c_str());
  std::printf("counts      %s\n", count_explanation(r).c_str());
  std::printf("loss        %.6f nats/token\n", r.mean());
  std::printf("perplexity  %.4f\n", r.perplexity());
  if (model.spec.level == TokenLevel::chars) std::printf("bpc         %.6f bits/character\n", r.bits_per_token());
  else std::printf("bits/token  %.6f\n", r.bits_per_token());
}

}  // namespace

void add_eval(CLI::App& app) {
  auto a = std::make_shared<EvalArgs>();
  CLI::App* sub = app.add_subcommand("eval", "Loss, perplexity and bits per character of a model on a text file");
  sub->add_option("MODEL", a->model, "Checkpoint (.safetensors)")->required();
  sub->add_option("FILE", a->file, "Text to evaluate, read in the model's mode (stream or lines)")->required();
  sub->add_option("--batch", a->opts.batch, "Parallel streams (stream mode; the text is cut into this many) or lines per batch")
      ->check(CLI::Range(int64_t(1), int64_t(1) << 20))
      ->capture_default_str();
  sub->add_option("--seq-len", a->opts.seq_len, "Chunk length (stream mode; speed only, the state is carried)")
      ->check(CLI::Range(int64_t(1), int64_t(1) << 20))
      ->capture_default_str();
  add_task_eval_options(sub);
  add_threads_option(sub, a->threads);
  sub->callback([a] { run(*a); });
}

}  // namespace recur::cli
