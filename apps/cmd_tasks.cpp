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
#include "recur/diag/plot.h"
#include "recur/tasks/model_info.h"
#include "recur/train/model_file.h"
#include "cli_io.h"
#include "recur/tasks/tasks.h"
#include "recur/data/text_data.h"
#include "task_cli.h"

namespace recur::cli {

namespace {

// Lines of a file, or of standard input when path is "-" (the one reader: core/file_io.h).
std::vector<std::string> read_lines(const std::string& path) {
  const std::string text = read_text_file(path);
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

// A model of kind `want`; the messages name the kinds the command accepts and the kind it got.
// `needs` is the start of the message, e.g. "tag needs a tag model (recur train --task tag)".
TaskModel load_task(const std::string& path, TaskKind want, const std::string& needs) {
  if (!is_task_checkpoint(path)) {
    (void)read_file_format(path);  // not a model file at all: its own error, naming what is wrong
    throw FormatError(needs + "; " + path + " is a language or music model");
  }
  TaskModel m = load_task_checkpoint(path).model;
  if (m.task.kind != want) throw Error(needs + "; " + path + " is a " + task_kind_name(m.task.kind) + " model");
  return m;
}

struct EvalCli {
  DecodeOptions decode;
  bool replace_unk = false;
  int64_t batch = 64;
  ColumnCli columns;
  std::vector<std::string> ensemble;  // classify: more members averaged with MODEL
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
  sub->add_flag("--char-rnn,!--no-char-rnn", o.char_rnn, "classify, tag: a character BiLSTM per word joins its word embedding (unknown and misspelt words)")->group(g);
  sub->add_option("--char-embed", o.char_embed, "--char-rnn: character embedding size")->capture_default_str()->group(g);
  sub->add_option("--char-hidden", o.char_hidden, "--char-rnn: character LSTM size per direction")->capture_default_str()->group(g);
  sub->add_flag("--crf,!--no-crf", o.crf, "tag: a linear-chain CRF output layer (sequence loss, Viterbi decoding under the tag scheme's constraints)")->group(g);
  sub->add_option("--attention", o.attention,
                  "seq2seq: the decoder attends over the encoder's outputs (Luong et al. 2015): dot, general "
                  "(bilinear) or additive (Bahdanau); none = the encoder's final state only")
      ->check(CLI::IsMember({"none", "dot", "general", "additive"}))->capture_default_str()->group(g);
  sub->add_option("--pool", o.pool,
                  "classify: what the head reads: last = the rnn's final state (each direction's last step), max or "
                  "mean = each feature's maximum or mean over the text's steps (Keras GlobalMaxPooling1D)")
      ->check(CLI::IsMember({"last", "max", "mean"}))->capture_default_str()->group(g);
  sub->add_option("--word-dropout", o.word_dropout,
                  "classify, tag: probability with which a training occurrence of a word seen once in the training "
                  "data is read as <unk> (singleton dropout, Lample et al. 2016), so the model learns to use the "
                  "context and characters of words it has not seen")
      ->capture_default_str()->group(g);
  sub->add_flag("--input-feed,!--no-input-feed", o.input_feed,
                "seq2seq with --attention: input feeding (Luong et al. 2015), each decoder step also reads the "
                "attention's output of the step before, so it knows what it attended to")->group(g);
  sub->add_option("--tag-scheme", o.tag_scheme,
                  "tag: scheme the model is trained in; the file's own is detected, and output and scores stay in it. "
                  "auto = the file's own (bioes with --crf)")
      ->check(CLI::IsMember({"auto", "iob1", "bio", "bioes"}))->capture_default_str()->group(g);
  sub->add_flag("--condition-every-step", o.condition_every_step,
                "generate: feed the condition to every step's input instead of the initial state")->group(g);
  sub->add_flag("--binary", o.binary, "classify: two labels with one sigmoid output (BCE)")->group(g);
  sub->add_flag("--features", o.features,
                "classify/tag/seq2seq: DATA is numeric CSV 'sequence_id,f1,...,fF,label', one row per step "
                "(seq2seq: the target text in the last column of a sequence's first row)")->group(g);
  sub->add_flag("--keep-case", o.keep_case, "classify/seq2seq: do not lower-case the text")->group(g);
  sub->add_flag("--lower-words,!--no-lower-words", o.lower_words,
                "tag: the word embedding reads each word lower-cased (ASCII), as uncased vectors such as GloVe 6B "
                "expect; the character RNN and the output keep the word as written")
      ->group(g);
  sub->add_option("--embeddings", o.embeddings_path, "Pre-trained word vectors (GloVe / word2vec text); --embed follows them")->group(g);
  sub->add_flag("--freeze-embeddings,!--no-freeze-embeddings", o.freeze_embeddings, "Keep --embeddings fixed instead of fine-tuning them")->group(g);
  sub->add_flag("--embeddings-vocab,!--no-embeddings-vocab", o.embeddings_vocab,
                "The --embeddings file's words join the vocabulary after the training words, so a word the training "
                "data lacks keeps its vector instead of becoming <unk>")
      ->group(g);
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
  sub->add_flag("--replace-unk", e.replace_unk,
                "seq2seq with --attention: score the outputs with each <unk> replaced by the most attended source word")
      ->group(g);
  add_ensemble_option(sub, e.ensemble);
  add_task_column_options(sub, e.columns, true, true, true);
}

void add_ensemble_option(CLI::App* sub, std::vector<std::string>& members) {
  // One model per occurrence (or a comma-separated list), so that MODEL and FILE after it stay
  // positionals.
  sub->add_option("--ensemble", members,
                  "classify: more classify models of the same labels (other seeds or splits); the class "
                  "probabilities of MODEL and these are averaged, each reading the text through its own vocabulary. "
                  "Repeat the flag or separate the files with commas")
      ->expected(1)
      ->allow_extra_args(false)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll)
      ->delimiter(',')
      ->group("Task models");
}

std::vector<TaskModel> load_ensemble(const TaskModel& first, const std::string& first_path,
                                     const std::vector<std::string>& members, const TaskColumnOverrides& cols) {
  std::vector<TaskModel> models{first};
  std::vector<std::string> names{first_path};
  for (const std::string& path : members) {
    models.push_back(load_task(path, TaskKind::classify, "--ensemble: members must be classify models"));
    apply_column_overrides(models.back().task, cols);
    names.push_back(path);
  }
  check_ensemble(models, names);
  return models;
}

bool is_task_model(const std::string& path) { return is_task_checkpoint(path); }

void add_task_column_options(CLI::App* sub, ColumnCli& c, bool table, bool conll, bool labels) {
  const std::string g = "Columns (as recur train; default: the model's own)";
  if (table) {
    c.text = sub->add_option("--text-column", c.text_column, "classify: 1-based text column")->group(g);
    if (labels) c.label = sub->add_option("--label-column", c.label_column, "classify: 1-based label column (0 = last)")->group(g);
    c.head = sub->add_option("--header", c.header, "classify: 1 = first row is a header, 0 = no header, -1 = guess")
                 ->check(CLI::Range(-1, 1))->group(g);
  }
  if (conll) {
    c.token = sub->add_option("--token-column", c.token_column, "tag: 1-based token column")->group(g);
    if (labels) c.tag = sub->add_option("--tag-column", c.tag_column, "tag: 1-based tag column (0 = last)")->group(g);
  }
}

TaskColumnOverrides ColumnCli::overrides() const {
  TaskColumnOverrides o;
  auto given = [](CLI::Option* opt) { return opt && opt->count() > 0; };
  if (given(text)) o.text_column = text_column;
  if (given(label)) o.label_column = label_column;
  if (given(token)) o.token_column = token_column;
  if (given(tag)) o.tag_column = tag_column;
  if (given(head)) o.header = header;
  return o;
}

void run_task_eval(const std::string& path, const std::string& file, int threads, bool json, const std::string& out) {
  apply_threads(threads);
  TaskModel m = load_task_checkpoint(path).model;
  apply_column_overrides(m.task, eval_cli().columns.overrides());
  const std::string name = input_name(file);
  const auto raw = read_task_file(m, file, true);
  const auto ex = encode_task_examples(m, raw, true, name);
  TaskEvalOptions o;
  o.decode = eval_cli().decode;
  o.replace_unk = eval_cli().replace_unk;
  if (o.replace_unk && m.task.kind != TaskKind::seq2seq)
    throw Error("--replace-unk: for seq2seq models with attention; " + path + " is a " + task_kind_name(m.task.kind) + " model");
  const std::vector<std::string>& members = eval_cli().ensemble;
  if (!members.empty() && m.task.kind != TaskKind::classify)
    throw Error("--ensemble: for classify models; " + path + " is a " + task_kind_name(m.task.kind) + " model");
  TaskEvalResult r;
  if (members.empty()) {
    r = evaluate_task(m, ex, o);
  } else {
    // Every member reads the same raw examples (the file is read once: it may be stdin).
    const std::vector<TaskModel> models = load_ensemble(m, path, members, eval_cli().columns.overrides());
    std::vector<std::vector<TaskExample>> per_member{ex};
    for (size_t k = 1; k < models.size(); ++k) per_member.push_back(encode_task_examples(models[k], raw, true, name));
    r = evaluate_ensemble(models, per_member, o);
  }
  if (json) {
    nlohmann::ordered_json j = {{"file", name},
                                {"kind", task_kind_name(m.task.kind)},
                                {"model", task_model_summary(m)},
                                {"ensemble", int64_t(members.size() + 1)},
                                {"examples", int64_t(ex.size())},
                                {"targets", r.loss.count},
                                {"loss", json_number(r.loss.mean())},
                                {"metric", r.metric_name},
                                {"value", json_number(r.metric)}};
    return write_result(out, json_line(j), "the evaluation");
  }
  std::string head = "file        " + name + "\nmodel       " + task_model_summary(m) + "\n";
  if (!members.empty())
    head += "ensemble    " + std::to_string(members.size() + 1) + " models, their probabilities averaged\n";
  write_result(out, head + r.report, "the evaluation");
}

// ---------------------------------------------------------------- info

void run_task_info(const std::string& path) {
  const TaskCheckpoint ck = load_task_checkpoint(path);
  const TaskModel& m = ck.model;
  const FileFormat ff = read_file_format(path);  // v1 and v2 task models both load here
  std::printf("file         %s (format %s v%d)\n", path.c_str(), ff.format.c_str(), ff.version);
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
  if (m.task.kind == TaskKind::tag) {
    const TaskSpec& t = m.task;
    std::string how = t.file_scheme == TagScheme::none ? "not chunk tags (no scheme)"
                      : std::string("file scheme ") + tag_scheme_name(t.file_scheme) +
                            (t.converts_tags() ? std::string(", trained and decoded as ") + tag_scheme_name(t.train_scheme) +
                                                     ", written back as " + tag_scheme_name(t.file_scheme)
                                               : ", trained as is");
    how += t.crf ? (t.train_scheme == TagScheme::none ? "; CRF output (Viterbi)"
                                                      : "; CRF output (Viterbi, the scheme's transitions only)")
                 : "; per-token softmax";
    std::printf("tags         %s\n", how.c_str());
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

void run_task_sample(const std::string& path, const TaskSampleRequest& q) {
  apply_threads(q.threads);
  TaskModel m = load_task(path, TaskKind::generate, "sample needs a language, music or generate model");
  m.precision = precision_or(q.precision, m.precision);
  std::vector<int32_t> conds;
  const std::string& c = sample_cli().condition;
  if (c.empty()) {
    for (size_t i = 0; i < m.labels.size(); ++i) conds.push_back(int32_t(i));
  } else {
    const int32_t id = m.label_id(c);
    if (id < 0) throw Error("--condition: " + c + " is not one of the model's " + std::to_string(m.labels.size()) + " labels");
    conds.push_back(id);
  }
  Rng rng(q.seed);
  GenerateTaskOptions go{.temperature = q.temperature, .max_length = q.max_length, .argmax = q.argmax};
  std::string text;
  for (int32_t id : conds)
    for (int64_t i = 0; i < q.count; ++i) {
      const auto out = generate_conditioned(m, id, go, rng);
      const std::string& label = m.labels[size_t(id)];
      if (q.json) text += json_line({{"condition", label}, {"text", task_output_text(m, out)}});
      else text += label + "\t" + task_output_text(m, out) + "\n";
    }
  write_result(q.out, text, "the samples");
}

// ---------------------------------------------------------------- classify, tag, translate

namespace {

struct PredictArgs {
  std::string model, file, out, features;
  std::string show_attention;  // translate: where the alignment tables go
  std::string attention_plot;  // translate: the folder of the heat maps
  bool replace_unk = false;    // translate: <unk> -> the most attended source word
  std::vector<std::string> texts;
  DecodeOptions decode;
  ColumnCli columns;
  bool json = false;
  int threads = 0;
  std::string precision;  // translate: --precision, empty = the file's
  std::vector<std::string> ensemble;  // classify: more members averaged with MODEL
};

// One classified example: the best label then every label's probability, or a JSON line.
std::string classified(const TaskModel& m, const std::vector<double>& p, const nlohmann::ordered_json& key, bool json) {
  const size_t best = size_t(std::max_element(p.begin(), p.end()) - p.begin());
  if (json) {
    nlohmann::ordered_json probs = nlohmann::ordered_json::object();
    for (size_t c = 0; c < p.size(); ++c) probs[m.labels[c]] = p[c];
    nlohmann::ordered_json j = key;
    j["label"] = m.labels[best];
    j["probabilities"] = probs;
    return json_line(j);
  }
  std::string line = m.labels[best];
  char buf[32];
  for (size_t c = 0; c < p.size(); ++c) {
    std::snprintf(buf, sizeof buf, "=%.4f", p[c]);
    line += "\t" + m.labels[c] + buf;
  }
  return line + "\n";
}

// MODEL's class probabilities [N][C] of raw, or with --ensemble the members' averaged.
std::vector<std::vector<double>> class_probabilities(const TaskModel& m, const PredictArgs& a,
                                                     const std::vector<RawExample>& raw, const std::string& origin) {
  if (a.ensemble.empty()) return classify_probabilities(m, encode_task_examples(m, raw, false, origin));
  const std::vector<TaskModel> models = load_ensemble(m, a.model, a.ensemble, a.columns.overrides());
  std::vector<std::vector<TaskExample>> per_member;
  for (const TaskModel& member : models) per_member.push_back(encode_task_examples(member, raw, false, origin));
  return ensemble_probabilities(models, per_member);
}

void run_classify(const PredictArgs& a) {
  apply_threads(a.threads);
  TaskModel m = load_task(a.model, TaskKind::classify, "classify needs a classify model (recur train --task classify)");
  const TaskColumnOverrides cols = a.columns.overrides();
  apply_column_overrides(m.task, cols);
  std::string text;
  if (m.task.features || cols.any()) {
    // A file in training's format: numeric features (the label column present, its values
    // ignored), or a table read with the column options (its label column, if any, ignored).
    if (!a.texts.empty()) throw Error("TEXT: " + std::string(m.task.features ? "a features model reads --file" : "the column options read --file") + "; expected --file FILE or standard input");
    const std::string file = a.file.empty() ? "-" : a.file;
    const auto raw = read_task_file(m, file, false);
    const auto probs = class_probabilities(m, a, raw, input_name(file));
    for (size_t i = 0; i < probs.size(); ++i) {
      nlohmann::ordered_json key = m.task.features ? nlohmann::ordered_json{{"id", raw[i].id}} : nlohmann::ordered_json{{"line", raw[i].line}};
      text += classified(m, probs[i], key, a.json);
    }
    return write_result(a.out, text, "the labels");
  }
  const std::string origin = !a.texts.empty() ? "TEXT" : input_name(a.file.empty() ? "-" : a.file);
  const auto texts = gather_texts(a.texts, a.file);
  const auto raw = raw_examples_from_texts(m, texts, origin);
  const auto probs = class_probabilities(m, a, raw, origin);
  for (size_t i = 0; i < probs.size(); ++i) {
    const std::string src = texts[i].substr(0, texts[i].find('\t'));
    text += classified(m, probs[i], {{"text", src}}, a.json);
  }
  write_result(a.out, text, "the labels");
}

void run_tag(const PredictArgs& a) {
  apply_threads(a.threads);
  TaskModel m = load_task(a.model, TaskKind::tag, "tag needs a tag model (recur train --task tag)");
  apply_column_overrides(m.task, a.columns.overrides());
  const auto raw = read_task_file(m, a.file, false);
  const auto ex = encode_task_examples(m, raw, false, input_name(a.file));
  const auto pred = tag_predictions(m, ex);
  if (a.json) {
    // JSON Lines: one object per sentence.
    std::string text;
    for (size_t i = 0; i < raw.size(); ++i) {
      nlohmann::ordered_json tags = nlohmann::ordered_json::array();
      for (const std::string& t : tag_output_strings(m, pred[i])) tags.push_back(t);  // the file's scheme
      text += json_line({{"line", raw[i].line}, {"tokens", raw[i].input}, {"tags", tags}});
    }
    return write_result(a.out, text, "the tagged file");
  }
  // A file is written whole (core/file_io.h), so a failed write leaves the previous one.
  write_result(a.out, tagged_text(m, raw, pred), "the tagged file");
}

void run_translate(const PredictArgs& a) {
  apply_threads(a.threads);
  TaskModel m = load_task(a.model, TaskKind::seq2seq, "translate needs a seq2seq model (recur train --task seq2seq)");
  m.precision = precision_or(a.precision, m.precision);
  std::string text;
  if (m.task.features || !a.features.empty()) {
    // Numeric sources: a features CSV (training's format, the target column optional); one
    // "sequence_id<TAB>output" line per sequence.
    if (!m.task.features)
      throw Error("--features: " + a.model + " reads text, not numeric features; pass TEXT or --file");
    if (!a.texts.empty() || !a.file.empty() || a.features.empty())
      throw Error(a.model + " reads numeric feature sequences (" + std::to_string(task_features_width(m)) +
                  " per step); expected --features FILE instead of TEXT or --file");
    // Attention over numeric steps has no source words to show or copy.
    if (!a.show_attention.empty() || !a.attention_plot.empty() || a.replace_unk)
      throw Error(std::string(a.replace_unk ? "--replace-unk" : !a.show_attention.empty() ? "--show-attention" : "--attention-plot") +
                  ": needs source words; " + a.model + " reads numeric feature sequences");
    const auto raw = read_task_file(m, a.features, false);
    const auto ex = encode_task_examples(m, raw, false, input_name(a.features));
    const auto outs = translate(m, ex, a.decode);
    for (size_t i = 0; i < outs.size(); ++i) {
      if (a.json) text += json_line({{"id", raw[i].id}, {"output", task_output_text(m, outs[i])}});
      else text += raw[i].id + "\t" + task_output_text(m, outs[i]) + "\n";
    }
    return write_result(a.out, text, "the translations");
  }
  const std::string origin = !a.texts.empty() ? "TEXT" : input_name(a.file.empty() ? "-" : a.file);
  const auto texts = gather_texts(a.texts, a.file);
  const auto ex = encode_task_examples(m, raw_examples_from_texts(m, texts, origin), false, origin);
  const bool attend = !a.show_attention.empty() || a.replace_unk || !a.attention_plot.empty();
  if (attend && !task_has_attention(m))
    throw Error(std::string(a.replace_unk ? "--replace-unk" : !a.show_attention.empty() ? "--show-attention" : "--attention-plot") +
                ": " + a.model + " has no attention; train it with recur train --task seq2seq --attention general (or dot, additive)");
  if (!a.attention_plot.empty()) require_gnuplot("--attention-plot");  // before decoding, not after
  const auto outs = translate(m, ex, a.decode);
  const auto align = attend ? attention_alignments(m, ex, outs) : std::vector<std::vector<std::vector<float>>>();
  std::string tables;
  std::vector<AttentionPlot> plots;
  for (size_t i = 0; i < outs.size(); ++i) {
    std::vector<std::string> words;
    for (int32_t id : outs[i]) words.push_back(m.targets.token(id));
    if (a.replace_unk) words = replace_unknown_words(m, outs[i], align[i], ex[i].source_words);
    const std::string out = task_output_words_text(m, words);
    if (!a.show_attention.empty()) tables += attention_table(ex[i].source_words, words, align[i]);
    if (!a.attention_plot.empty()) {
      AttentionPlot p{.source = ex[i].source_words, .output = words, .weights = align[i]};
      p.output.push_back(m.targets.token(Vocab::eos_id));  // the last row: the step that ended the sentence
      plots.push_back(std::move(p));
    }
    if (a.json) text += json_line({{"source", texts[i].substr(0, texts[i].find('\t'))}, {"output", out}});
    else text += out + "\n";
  }
  // The tables first: a failed write of them leaves no translations claiming they were shown.
  if (!a.show_attention.empty()) write_result(a.show_attention, tables, "the attention tables");
  if (!a.attention_plot.empty())
    for (const std::string& f : plot_attention(plots, a.attention_plot))
      if (f.ends_with(".png")) std::fprintf(stderr, "recur: wrote %s (and .svg)\n", f.c_str());
  write_result(a.out, text, "the translations");
}

}  // namespace

void add_classify(CLI::App& app) {
  auto a = std::make_shared<PredictArgs>();
  CLI::App* sub = app.add_subcommand("classify", "Label texts with a sequence classifier (needs a classify model: recur train --task classify)");
  sub->add_option("MODEL", a->model, "Checkpoint written by recur train --task classify")->required();
  sub->add_option("TEXT", a->texts, "Texts to classify (default: --file, or one text per line on stdin)");
  sub->add_option("--file", a->file, "One text per line ('-' = stdin); a tab ends the text; with a column option a TSV/CSV table");
  add_output_option(sub, a->out, "the labels");
  add_json_flag(sub, a->json, "JSON Lines, one {text|line|id, label, probabilities} object per text");
  add_ensemble_option(sub, a->ensemble);
  add_task_column_options(sub, a->columns, true, false, false);
  add_threads_option(sub, a->threads);
  sub->callback([a] { run_classify(*a); });
}

void add_tag(CLI::App& app) {
  auto a = std::make_shared<PredictArgs>();
  CLI::App* sub = app.add_subcommand("tag", "Tag a CoNLL-style file with a sequence tagger (needs a tag model: recur train --task tag)");
  sub->add_option("MODEL", a->model, "Checkpoint written by recur train --task tag")->required();
  sub->add_option("FILE", a->file, "One token per line (further columns kept), blank lines between sentences; '-' = stdin")->required();
  add_output_option(sub, a->out, "the tagged file");
  add_json_flag(sub, a->json, "JSON Lines, one {line, tokens, tags} object per sentence");
  add_task_column_options(sub, a->columns, false, true, false);
  add_threads_option(sub, a->threads);
  sub->callback([a] { run_tag(*a); });
}

void add_translate(CLI::App& app) {
  auto a = std::make_shared<PredictArgs>();
  CLI::App* sub = app.add_subcommand("translate", "Translate with an encoder-decoder (needs a seq2seq model: recur train --task seq2seq)");
  sub->add_option("MODEL", a->model, "Checkpoint written by recur train --task seq2seq")->required();
  sub->add_option("TEXT", a->texts, "Sentences (default: --file, or one per line on stdin)");
  sub->add_option("--file", a->file, "One sentence per line ('-' = stdin); a tab ends the sentence");
  sub->add_option("--features", a->features,
                  "Models trained with --features: CSV 'sequence_id,f1,...,fF[,target]', one row per step "
                  "('-' = stdin); prints 'sequence_id<TAB>output' per sequence");
  add_output_option(sub, a->out, "the translations");
  add_json_flag(sub, a->json, "JSON Lines, one {source|id, output} object per sentence");
  sub->add_option("--beam", a->decode.beam, "Beam width (1 = greedy)")->check(CLI::Range(int64_t(1), int64_t(1000)))->capture_default_str();
  sub->add_option("--length-penalty", a->decode.length_penalty, "Beam: score = log p / length^alpha (0 = off)")
      ->capture_default_str();
  sub->add_option("--max-length", a->decode.max_length, "Longest output in tokens")->capture_default_str();
  sub->add_option("--show-attention", a->show_attention,
                  "Models with --attention: write each sentence's attention weights to FILE ('-' = stdout), a "
                  "tab-separated table: source words across, one row per output word and <eos>");
  sub->add_option("--attention-plot", a->attention_plot,
                  "Models with --attention: draw each sentence's attention as a heat map, DIR/attention-N.png and .svg "
                  "(needs gnuplot)");
  sub->add_flag("--replace-unk", a->replace_unk,
                "Models with --attention: replace each <unk> in the output by the source word attended to most at "
                "that step");
  add_threads_option(sub, a->threads);
  add_precision_option(sub, a->precision);
  sub->callback([a] { run_translate(*a); });
}

}  // namespace recur::cli
