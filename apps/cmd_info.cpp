// recur info MODEL - what a checkpoint holds: architecture, size, vocabulary, training progress.
#include <cmath>
#include <cstdio>
#include <memory>
#include <string>

#include "commands.h"
#include "lm_cli_util.h"
#include "recur/music/music_corpus.h"
#include "recur/tasks/model_info.h"
#include "recur/tasks/trainer.h"
#include "recur/train/model_file.h"
#include "task_cli.h"

namespace recur::cli {
namespace {

std::string shown(const std::string& tok) {
  if (tok == "\n") return "\\n";
  if (tok == "\t") return "\\t";
  if (tok == " ") return "' '";
  return tok;
}

void run(const std::string& path, bool json) {
  if (json) {
    std::printf("%s\n", model_info_json(path).c_str());
    return;
  }
  if (is_task_model(path)) return run_task_info(path);
  const Checkpoint ck = load_checkpoint(path);
  const LmModel& m = ck.model;
  const FileFormat ff = read_file_format(path);
  std::printf("file         %s (format %s v%d)\n", path.c_str(), ff.format.c_str(), ff.version);
  std::printf("model        %s\n", lm_spec_summary(m.spec).c_str());
  std::printf("parameters   %lld\n", (long long)lm_param_count(m.spec));
  if (m.precision != Precision::f32)
    std::printf("precision    %s (an inference-only export: recur export)\n", std::string(precision_name(m.precision)).c_str());
  if (is_music_task(m.task)) std::printf("task         %s\n", music_task_summary(music_task_from_json(m.task, path)).c_str());
  std::string top;
  for (int32_t i = Vocab::num_special; i < m.vocab.size() && i < Vocab::num_special + 12; ++i)
    top += " " + shown(m.vocab.token(i));
  std::printf("vocabulary   %lld %s (<unk> <eos> then %s:%s%s)\n", (long long)m.vocab.size(),
              token_level_name(m.vocab.level()), is_music_task(m.task) ? "in the encoding's order" : "by frequency",
              top.c_str(), m.vocab.size() > Vocab::num_special + 12 ? " ..." : "");
  if (ck.train_state.empty()) {
    std::printf("training     no training state (cannot be resumed)\n");
    return;
  }
  const TrainProgress p = train_progress_from_json(ck.train_state, path);
  const TrainOptions& o = p.options;
  std::printf("trained      step %lld, %lld epoch(s) complete, %lld tokens, %s\n", (long long)p.step,
              (long long)p.epoch, (long long)p.tokens_seen, format_duration(p.elapsed_s).c_str());
  std::printf("data         %s\n", p.data_path.c_str());
  std::printf("optimizer    %s, lr %g now, batch %lld, seq-len %lld, clip-norm %g, seed %llu\n",
              std::string(optimizer_name(o.optimizer.type)).c_str(), p.lr, (long long)o.batch, (long long)o.seq_len,
              o.clip_norm, (unsigned long long)o.seed);
  if (std::isfinite(p.best_valid_loss)) {
    const double v = p.best_valid_loss;
    if (m.spec.level == TokenLevel::chars)
      std::printf("best valid   loss %.4f, bpc %.4f at step %lld\n", v, v / std::log(2.0), (long long)p.best_step);
    else
      std::printf("best valid   loss %.4f, perplexity %.2f at step %lld\n", v, std::exp(v), (long long)p.best_step);
  } else {
    std::printf("best valid   none yet\n");
  }
}

}  // namespace

void add_info(CLI::App& app) {
  auto path = std::make_shared<std::string>();
  auto json = std::make_shared<bool>(false);
  CLI::App* sub = app.add_subcommand(
      "info", "Architecture, parameter count, vocabulary and training progress of a model of any kind (lm, music, "
              "classify, tag, seq2seq, generate)");
  sub->add_option("MODEL", *path, "Checkpoint (.safetensors)")->required();
  sub->add_flag("--json", *json, "Print one JSON object instead (docs/cli.md): kind, parameters, the raw train_state");
  sub->callback([path, json] { run(*path, *json); });
}

}  // namespace recur::cli
