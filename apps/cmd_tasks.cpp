// recur classify | tag | translate, and the task side of train, eval and sample (task_cli.h).
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "commands.h"
#include "lm_cli_util.h"
#include "recur/core/file_io.h"
#include "recur/tasks/model_info.h"
#include "recur/tasks/tasks.h"
#include "recur/data/text_data.h"
#include "task_cli.h"

namespace recur::cli {

namespace {

// Lines of a file, or of stdin when path is "-".
std::vector<std::string> read_lines(const std::string& path) {
  std::string text;
  if (path == "-") {
    text.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  } else {
    text = read_text_file(path);
  }
  std::vector<std::string> out;
  for (std::string_view l : split_lines(text)) out.emplace_back(l);
  return out;
}

// Texts from arguments, --file, or stdin when neither is given.
std::vector<std::string> gather_texts(const std::vector<std::string>& args, const std::string& file) {
  if (!args.empty() && !file.empty()) throw Error("TEXT and --file: expected one of them");
  if (!args.empty()) return args;
  return read_lines(file.empty() ? "-" : file);
}

TaskModel load_task(const std::string& path, TaskKind want) {
  if (!is_task_checkpoint(path))
    throw FormatError(path + ": not a task model (metadata \"format\" 'recur-model'); train one with recur train --task " +
                      task_kind_name(want));
  TaskModel m = load_task_checkpoint(path).model;
  if (m.task.kind != want)
    throw Error(path + ": a " + std::string(task_kind_name(m.task.kind)) + " model; this command needs a " +
                task_kind_name(want) + " model");
  return m;
}

struct EvalCli {
  DecodeOptions decode;
  int64_t batch = 64;
};
EvalCli& eval_cli() {
  static EvalCli e;
  return e;
}
struct SampleCli {
  std::string condition;
};
SampleCli& sample_cli() {
  static SampleCli s;
  return s;
}

}  // namespace

// ---------------------------------------------------------------- train

void add_task_train_options(CLI::App* sub, TrainOptions& o) {
  const std::string g = "Tasks (--task classify|tag|seq2seq|generate)";
  sub->add_flag("--char-rnn", o.char_rnn, "tag: a character BiLSTM per word feeds the tagger (unknown words)")->group(g);
  sub->add_option("--char-embed", o.char_embed, "tag --char-rnn: character embedding size")->capture_default_str()->group(g);
  sub->add_option("--char-hidden", o.char_hidden, "tag --char-rnn: character LSTM size per direction")->capture_default_str()->group(g);
  sub->add_flag("--condition-every-step", o.condition_every_step,
                "generate: feed the condition to every step's input instead of the initial state")->group(g);
  sub->add_flag("--binary", o.binary, "classify: two labels with one sigmoid output (BCE)")->group(g);
  sub->add_flag("--features", o.features,
                "classify/tag/seq2seq: DATA is numeric CSV 'sequence_id,f1,...,fF,label', one row per step "
                "(seq2seq: the target text in the last column of a sequence's first row)")->group(g);
  sub->add_flag("--keep-case", o.keep_case, "classify/seq2seq: do not lower-case the text")->group(g);
  sub->add_option("--embeddings", o.embeddings_path, "Pre-trained word vectors (GloVe / word2vec text); --embed follows them")->group(g);
  sub->add_flag("--freeze-embeddings", o.freeze_embeddings, "Keep --embeddings fixed instead of fine-tuning them")->group(g);
  sub->add_option("--text-column", o.text_column, "classify: 1-based text column")->capture_default_str()->group(g);
  sub->add_option("--label-column", o.label_column, "classify: 1-based label column (0 = last)")->capture_default_str()->group(g);
  sub->add_option("--token-column", o.token_column, "tag: 1-based token column")->capture_default_str()->group(g);
  sub->add_option("--tag-column", o.tag_column, "tag: 1-based tag column (0 = last)")->capture_default_str()->group(g);
  sub->add_option("--header", o.header, "classify: 1 = first row is a header, 0 = no header, -1 = guess")
      ->check(CLI::Range(-1, 1))->capture_default_str()->group(g);
}

// ---------------------------------------------------------------- eval

void add_task_eval_options(CLI::App* sub) {
  EvalCli& e = eval_cli();
  const std::string g = "Task models";
  sub->add_option("--beam", e.decode.beam, "seq2seq: beam width (1 = greedy)")->capture_default_str()->group(g);
  sub->add_option("--length-penalty", e.decode.length_penalty, "seq2seq beam: score = log p / length^alpha (0 = off)")
      ->capture_default_str()->group(g);
  sub->add_option("--max-length", e.decode.max_length, "seq2seq: longest output")->capture_default_str()->group(g);
}

bool is_task_model(const std::string& path) { return is_task_checkpoint(path); }

void run_task_eval(const std::string& path, const std::string& file, int threads) {
  apply_threads(threads);
  const TaskModel m = load_task_checkpoint(path).model;
  const auto raw = read_task_file(m, file, true);
  const auto ex = encode_task_examples(m, raw, true, file);
  TaskEvalOptions o;
  o.decode = eval_cli().decode;
  const TaskEvalResult r = evaluate_task(m, ex, o);
  std::printf("file        %s\nmodel       %s\n%s", file.c_str(), task_model_summary(m).c_str(), r.report.c_str());
}

// ---------------------------------------------------------------- info

void run_task_info(const std::string& path) {
  const TaskCheckpoint ck = load_task_checkpoint(path);
  const TaskModel& m = ck.model;
  std::printf("file         %s (format recur-model v1)\n", path.c_str());
  std::printf("task         %s\n", task_model_summary(m).c_str());
  for (const InputSpec& in : m.spec.inputs)
    std::printf("input        %-10s %s %lld%s\n", in.name.c_str(), in.kind == InputKind::features ? "features" : "tokens",
                (long long)in.size, in.kind == InputKind::features ? " per step" : in.per_step ? " ids" : " ids, one per example");
  for (const LayerSpec& l : m.spec.layers) {
    std::string ins;
    for (const auto& i : l.inputs) ins += (ins.empty() ? "" : ", ") + i;
    std::printf("layer        %-10s %-9s <- %s%s\n", l.name.c_str(), layer_kind_name(l.kind), ins.c_str(),
                l.init.empty() ? "" : (" (initial state from " + l.init + ")").c_str());
  }
  if (!m.labels.empty()) {
    std::string ls;
    for (size_t i = 0; i < m.labels.size() && i < 20; ++i) ls += (i ? " " : "") + m.labels[i];
    if (m.labels.size() > 20) ls += " ...";
    std::printf("labels       %zu: %s\n", m.labels.size(), ls.c_str());
  }
  if (ck.train_state.empty()) {
    std::printf("training     no training state (cannot be resumed)\n");
    return;
  }
  // The raw train_state (RNG words included) only with --json (model_info.h).
  TrainProgress p;
  try {
    p = train_progress_from_json(ck.train_state, path);
  } catch (const Error&) {
    const std::string brief = train_state_brief(ck.train_state);
    std::printf("trained      %s; recur info --json shows the whole train_state\n",
                brief.empty() ? "a train_state this recur cannot read" : brief.c_str());
    return;
  }
  std::printf("trained      step %lld, %lld epoch(s) complete, %lld targets, %s\n", (long long)p.step,
              (long long)p.epoch, (long long)p.tokens_seen, format_duration(p.elapsed_s).c_str());
  std::printf("data         %s\n", p.data_path.c_str());
  std::printf("optimizer    %s, lr %g now, batch %lld, seed %llu\n", std::string(optimizer_name(p.options.optimizer.type)).c_str(),
              p.lr, (long long)p.options.batch, (unsigned long long)p.options.seed);
  if (std::isfinite(p.best_valid_loss))
    std::printf("best valid   loss %.4f at step %lld\n", p.best_valid_loss, (long long)p.best_step);
  else
    std::printf("best valid   none yet\n");
}

// ---------------------------------------------------------------- sample

void add_task_sample_options(CLI::App* sub) {
  sub->add_option("--condition", sample_cli().condition,
                  "Conditioned generators (--task generate): the label to generate for (default: every label)");
}

void run_task_sample(const std::string& path, int64_t count, double temperature, bool argmax, uint64_t seed,
                     int64_t max_length, int threads) {
  apply_threads(threads);
  const TaskModel m = load_task(path, TaskKind::generate);
  std::vector<int32_t> conds;
  const std::string& c = sample_cli().condition;
  if (c.empty()) {
    for (size_t i = 0; i < m.labels.size(); ++i) conds.push_back(int32_t(i));
  } else {
    const int32_t id = m.label_id(c);
    if (id < 0) throw Error("--condition: " + c + " is not one of the model's " + std::to_string(m.labels.size()) + " labels");
    conds.push_back(id);
  }
  Rng rng(seed);
  GenerateTaskOptions go{.temperature = temperature, .max_length = max_length, .argmax = argmax};
  for (int32_t id : conds)
    for (int64_t i = 0; i < count; ++i) {
      const auto out = generate_conditioned(m, id, go, rng);
      std::printf("%s\t%s\n", m.labels[size_t(id)].c_str(), task_output_text(m, out).c_str());
    }
}

// ---------------------------------------------------------------- classify, tag, translate

namespace {

struct PredictArgs {
  std::string model, file, out, features;
  std::vector<std::string> texts;
  DecodeOptions decode;
  int threads = 0;
};

void run_classify(const PredictArgs& a) {
  apply_threads(a.threads);
  const TaskModel m = load_task(a.model, TaskKind::classify);
  if (m.task.features) {
    // Numeric input: the file in training's format (the label column present, its values ignored).
    const auto raw = read_task_file(m, a.file.empty() ? "-" : a.file, false);
    const auto probs = classify_probabilities(m, encode_task_examples(m, raw, false, a.file));
    for (const auto& p : probs) {
      const size_t best = size_t(std::max_element(p.begin(), p.end()) - p.begin());
      std::printf("%s", m.labels[best].c_str());
      for (size_t c = 0; c < p.size(); ++c) std::printf("\t%s=%.4f", m.labels[c].c_str(), p[c]);
      std::printf("\n");
    }
    return;
  }
  const std::string origin = !a.texts.empty() ? "TEXT" : a.file.empty() ? "<stdin>" : a.file;
  const auto texts = gather_texts(a.texts, a.file);
  const auto ex = encode_task_examples(m, raw_examples_from_texts(m, texts, origin), false, origin);
  const auto probs = classify_probabilities(m, ex);
  for (const auto& p : probs) {
    const size_t best = size_t(std::max_element(p.begin(), p.end()) - p.begin());
    std::printf("%s", m.labels[best].c_str());
    for (size_t c = 0; c < p.size(); ++c) std::printf("\t%s=%.4f", m.labels[c].c_str(), p[c]);
    std::printf("\n");
  }
}

void run_tag(const PredictArgs& a) {
  apply_threads(a.threads);
  const TaskModel m = load_task(a.model, TaskKind::tag);
  const auto raw = read_task_file(m, a.file, false);
  const auto ex = encode_task_examples(m, raw, false, a.file);
  const auto pred = tag_predictions(m, ex);
  // A file is written whole (core/file_io.h), so a failed write leaves the previous one.
  const std::string text = tagged_text(m, raw, pred);
  if (a.out.empty()) std::fwrite(text.data(), 1, text.size(), stdout);  // checked at exit (main.cpp)
  else write_file_atomic(a.out, text, "the tagged file");
}

void run_translate(const PredictArgs& a) {
  apply_threads(a.threads);
  const TaskModel m = load_task(a.model, TaskKind::seq2seq);
  if (m.task.features || !a.features.empty()) {
    // Numeric sources: a features CSV (training's format, the target column optional); one
    // "sequence_id<TAB>output" line per sequence.
    if (!m.task.features)
      throw Error("--features: " + a.model + " reads text, not numeric features; pass TEXT or --file");
    if (!a.texts.empty() || !a.file.empty() || a.features.empty())
      throw Error(a.model + " reads numeric feature sequences (" + std::to_string(task_features_width(m)) +
                  " per step); expected --features FILE instead of TEXT or --file");
    const auto raw = read_task_file(m, a.features, false);
    const auto ex = encode_task_examples(m, raw, false, a.features);
    const auto outs = translate(m, ex, a.decode);
    for (size_t i = 0; i < outs.size(); ++i)
      std::printf("%s\t%s\n", raw[i].id.c_str(), task_output_text(m, outs[i]).c_str());
    return;
  }
  const std::string origin = !a.texts.empty() ? "TEXT" : a.file.empty() ? "<stdin>" : a.file;
  const auto texts = gather_texts(a.texts, a.file);
  const auto ex = encode_task_examples(m, raw_examples_from_texts(m, texts, origin), false, origin);
  for (const auto& ids : translate(m, ex, a.decode)) std::printf("%s\n", task_output_text(m, ids).c_str());
}

}  // namespace

void add_classify(CLI::App& app) {
  auto a = std::make_shared<PredictArgs>();
  CLI::App* sub = app.add_subcommand("classify", "Label texts with a sequence classifier (recur train --task classify)");
  sub->add_option("MODEL", a->model, "Checkpoint written by recur train --task classify")->required();
  sub->add_option("TEXT", a->texts, "Texts to classify (default: --file, or one text per line on stdin)");
  sub->add_option("--file", a->file, "One text per line ('-' = stdin); a tab ends the text");
  add_threads_option(sub, a->threads);
  sub->callback([a] { run_classify(*a); });
}

void add_tag(CLI::App& app) {
  auto a = std::make_shared<PredictArgs>();
  CLI::App* sub = app.add_subcommand("tag", "Tag a CoNLL-style file with a sequence tagger (recur train --task tag)");
  sub->add_option("MODEL", a->model, "Checkpoint written by recur train --task tag")->required();
  sub->add_option("FILE", a->file, "One token per line (further columns kept), blank lines between sentences")->required();
  sub->add_option("-o,--output", a->out, "Write here instead of stdout");
  add_threads_option(sub, a->threads);
  sub->callback([a] { run_tag(*a); });
}

void add_translate(CLI::App& app) {
  auto a = std::make_shared<PredictArgs>();
  CLI::App* sub = app.add_subcommand("translate", "Translate with an encoder-decoder (recur train --task seq2seq)");
  sub->add_option("MODEL", a->model, "Checkpoint written by recur train --task seq2seq")->required();
  sub->add_option("TEXT", a->texts, "Sentences (default: --file, or one per line on stdin)");
  sub->add_option("--file", a->file, "One sentence per line ('-' = stdin); a tab ends the sentence");
  sub->add_option("--features", a->features,
                  "Models trained with --features: CSV 'sequence_id,f1,...,fF[,target]', one row per step; "
                  "prints 'sequence_id<TAB>output' per sequence");
  sub->add_option("--beam", a->decode.beam, "Beam width (1 = greedy)")->check(CLI::Range(int64_t(1), int64_t(1000)))->capture_default_str();
  sub->add_option("--length-penalty", a->decode.length_penalty, "Beam: score = log p / length^alpha (0 = off)")
      ->capture_default_str();
  sub->add_option("--max-length", a->decode.max_length, "Longest output in tokens")->capture_default_str();
  add_threads_option(sub, a->threads);
  sub->callback([a] { run_translate(*a); });
}

}  // namespace recur::cli
