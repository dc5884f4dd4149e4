// recur eval MODEL FILE - the metrics of a model of any kind on a file: loss, perplexity and bits
// per character of a language model; the task's own metrics for a task model.
#include <cmath>
#include <cstdio>
#include <memory>
#include <string>

#include "cli_io.h"
#include "commands.h"
#include "lm_cli_util.h"
#include "recur/core/file_io.h"
#include "recur/data/prepared.h"
#include "recur/music/music_corpus.h"
#include "recur/tasks/lm_text.h"
#include "task_cli.h"

namespace recur::cli {
namespace {

struct EvalArgs {
  std::string model, file, out;
  EvalOptions opts;
  bool json = false;
  int threads = 0;
};

void run(const EvalArgs& a) {
  if (is_task_model(a.model)) return run_task_eval(a.model, a.file, a.threads, a.json, a.out);
  apply_threads(a.threads);
  const LmModel model = load_model(a.model);
  const std::string name = input_name(a.file);
  // A prepared corpus (recur prepare --vocab of the training corpus) is read from disk a window
  // at a time; anything else is text.
  const EvalResult r = a.file != "-" && is_prepared_corpus(a.file)
                           ? evaluate_prepared(model, PreparedCorpus(a.file), a.opts)
                           : evaluate_text(model, read_text_file(a.file), a.opts, name);
  const bool chars = model.spec.level == TokenLevel::chars;
  if (a.json) {
    nlohmann::ordered_json j = {{"file", name},
                                {"kind", is_music_task(model.task) ? "music" : "lm"},
                                {"model", lm_spec_summary(model.spec)},
                                {"scored", r.loss.count},
                                {"tokens", r.oov.tokens},
                                {"unk", r.oov.unk},
                                {"oov", r.oov.oov},
                                {"counts", count_explanation(r)},
                                {"loss", json_number(r.mean())},
                                {"perplexity", json_number(r.perplexity())},
                                {chars ? "bpc" : "bits_per_token", json_number(r.bits_per_token())}};
    return write_result(a.out, json_line(j), "the evaluation");
  }
  char buf[256];
  std::string s = "file        " + name + "\n";
  s += "model       " + lm_spec_summary(model.spec) + "\n";
  s += "tokens      " + std::to_string(r.loss.count) + " scored; " + r.oov.summary() + "\n";
  s += "counts      " + count_explanation(r) + "\n";
  std::snprintf(buf, sizeof buf, "loss        %.6f nats/token\nperplexity  %.4f\n", r.mean(), r.perplexity());
  s += buf;
  if (chars) std::snprintf(buf, sizeof buf, "bpc         %.6f bits/character\n", r.bits_per_token());
  else std::snprintf(buf, sizeof buf, "bits/token  %.6f\n", r.bits_per_token());
  s += buf;
  write_result(a.out, s, "the evaluation");
}

}  // namespace

void add_eval(CLI::App& app) {
  auto a = std::make_shared<EvalArgs>();
  CLI::App* sub = app.add_subcommand(
      "eval",
      "The metrics of a model of any kind on a file with targets. Language models (lm, music): mean loss (nats per "
      "token), perplexity and bits per character (char models) or per token, with the counts explained. classify: "
      "loss, accuracy, macro-F1 and the confusion matrix. tag: loss, token accuracy and entity precision/recall/F1 "
      "(conlleval), overall and per type. seq2seq: loss, corpus BLEU (sacreBLEU 13a tokens, exp smoothing, against the file's text with all references of a source) and exact matches of the decoded outputs (--beam). generate: loss per character and "
      "perplexity");
  sub->add_option("MODEL", a->model, "Checkpoint (.safetensors) of any kind")->required();
  sub->add_option("FILE", a->file,
                  "Data in the training format of the model's task ('-' = stdin); language models read it in their "
                  "mode (stream or lines), or a corpus prepared with recur prepare --vocab of the training corpus")
      ->required();
  add_output_option(sub, a->out, "the report");
  add_json_flag(sub, a->json, "one JSON object");
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
