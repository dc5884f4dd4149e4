// The supervised tasks on top of the composable model. See tasks.h.
#include "recur/tasks/tasks.h"
#include "task_records.h"

#include "recur/core/file_io.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <map>
#include <numeric>
#include <set>

#include "json_fields.h"
#include "quote.h"
#include "recur/tasks/metrics.h"
#include "recur/core/safetensors.h"
#include "recur/train/model_file.h"
#include "recur/model/sampler.h"
#include "recur/data/text_data.h"

namespace recur {

namespace fs = std::filesystem;

const char* task_kind_name(TaskKind kind) {
  switch (kind) {
    case TaskKind::classify: return "classify";
    case TaskKind::tag: return "tag";
    case TaskKind::seq2seq: return "seq2seq";
    case TaskKind::generate: return "generate";
  }
  return "?";
}

bool is_task_kind(std::string_view n) { return n == "classify" || n == "tag" || n == "seq2seq" || n == "generate"; }

TaskKind parse_task_kind(std::string_view n) {
  if (n == "classify") return TaskKind::classify;
  if (n == "tag") return TaskKind::tag;
  if (n == "seq2seq") return TaskKind::seq2seq;
  if (n == "generate") return TaskKind::generate;
  throw Error("task " + quote_name(n) + ": expected classify, tag, seq2seq or generate");
}

int32_t TaskModel::label_id(std::string_view label) const {
  for (size_t i = 0; i < labels.size(); ++i)
    if (labels[i] == label) return int32_t(i);
  return -1;
}

std::string TaskModel::labels_for_message() const {
  std::string known;
  for (size_t i = 0; i < labels.size() && i < 12; ++i) known += (i ? ", " : "") + labels[i];
  if (labels.size() > 12) known += ", ...";
  return known;
}

// ---------------------------------------------------------------- reading

std::vector<std::string> code_points(std::string_view s) {
  std::vector<std::string> out;
  for_each_token(TokenLevel::chars, s, [&](std::string_view c) { out.emplace_back(c); });
  return out;
}

std::string task_word(const TaskSpec& task, std::string_view word) {
  return task.lower_words ? ascii_lower(word) : std::string(word);
}

RawExample raw_example_of(const TaskSpec& task, TaggedSentence&& s) {
  RawExample e;
  e.input = std::move(s.tokens);
  e.output = std::move(s.tags);
  // A trained model's files come converted into its labels' scheme (a fresh run converts
  // after detecting the scheme: resolve_tag_schemes).
  if (task.converts_tags() && !e.output.empty()) e.output = convert_tags(e.output, task.file_scheme, task.train_scheme);
  e.lines = std::move(s.lines);
  e.before = std::move(s.before);
  e.after = std::move(s.after);
  e.line = s.line;
  return e;
}

RawExample raw_example_of(const TaskSpec& task, LabelledText&& r, const std::string& origin) {
  RawExample e;
  e.input = split_words(r.text, task.lowercase);
  if (e.input.empty()) throw FormatError(origin + ":" + std::to_string(r.line) + ": no words in the text");
  e.label = std::move(r.label);
  e.line = r.line;
  return e;
}

RawExample raw_example_of(const TaskSpec& task, TextPair&& p, const std::string& origin) {
  RawExample e;
  e.input = split_words(p.source, task.lowercase);
  e.output = split_words(p.target, task.lowercase);
  e.source_text = std::move(p.source);
  e.target_text = std::move(p.target);
  e.line = p.line;
  if (e.input.empty()) throw FormatError(origin + ":" + std::to_string(p.line) + ": empty source");
  return e;
}

std::vector<RawExample> read_task_file(const TaskSpec& task, const std::string& path, bool with_targets,
                                       int64_t* features_width, int64_t expect_width) {
  std::vector<RawExample> out;
  if (task.features) {
    if (task.kind == TaskKind::generate)
      throw Error("--features: numeric input is for the classify, tag and seq2seq tasks");
    const bool s2s = task.kind == TaskKind::seq2seq;
    FeatureFileOptions fo;
    fo.target_text = s2s;
    fo.width = expect_width;
    // Labels stay required for classify / tag (their readers always had them); a seq2seq file
    // to translate may leave the target column out.
    fo.require_last = with_targets || !s2s || expect_width <= 0;
    int64_t F = 0;
    for (auto& s : read_feature_sequences(path, &F, fo)) {
      RawExample e;
      e.features = std::move(s.values);
      e.steps = s.steps;
      e.line = s.line;
      e.id = s.id;
      if (s2s) {
        e.output = split_words(s.target, task.lowercase);
        e.target_text = s.target;
        if (with_targets && e.output.empty())
          throw FormatError(input_name(path) + ":" + std::to_string(s.line) + ": sequence " + quote_name(s.id) +
                            " has no target words; expected the target text in the last field");
      } else if (task.kind == TaskKind::tag) {
        e.output = s.labels;
      } else {
        for (const auto& l : s.labels)
          if (l != s.labels[0])
            throw FormatError(input_name(path) + ":" + std::to_string(s.line) + ": sequence " + quote_name(s.id) +
                              " has labels " + quote_name(s.labels[0]) + " and " + quote_name(l) +
                              "; expected one label per sequence for classification");
        e.label = s.labels[0];
      }
      out.push_back(std::move(e));
    }
    if (features_width) *features_width = F;
    return out;
  }
  switch (task.kind) {
    case TaskKind::tag: {
      ConllOptions o = task.conll;
      o.require_tags = with_targets;
      for (auto& s : read_conll(path, o)) out.push_back(raw_example_of(task, std::move(s)));
      break;
    }
    case TaskKind::classify: {
      TableOptions o = task.table;
      o.require_labels = with_targets;
      for (auto& r : read_labelled_texts(path, o)) out.push_back(raw_example_of(task, std::move(r), input_name(path)));
      break;
    }
    case TaskKind::seq2seq: {
      for (auto& p : read_pairs(path, with_targets)) out.push_back(raw_example_of(task, std::move(p), input_name(path)));
      break;
    }
    case TaskKind::generate: {
      std::error_code ec;
      if (fs::is_directory(path, ec)) {
        std::vector<fs::path> files;
        for (const auto& de : fs::directory_iterator(path))
          if (de.path().extension() == ".txt") files.push_back(de.path());
        std::sort(files.begin(), files.end());
        if (files.empty()) throw FormatError(input_name(path) + ": no *.txt files; expected one file of texts per condition");
        for (const auto& f : files) {
          const std::string text = read_text_file(f.string());
          int64_t lineno = 0;
          for (std::string_view line : split_lines(text)) {
            ++lineno;
            RawExample e;
            e.output = code_points(line);
            if (e.output.empty()) continue;
            e.label = f.stem().string();
            e.line = lineno;
            out.push_back(std::move(e));
          }
        }
      } else {
        const std::string text = read_text_file(path);
        int64_t lineno = 0;
        for (std::string_view line : split_lines(text)) {
          ++lineno;
          if (line.empty()) continue;
          const size_t tab = line.find('\t');
          if (tab == std::string_view::npos || tab == 0)
            throw FormatError(input_name(path) + ":" + std::to_string(lineno) + ": expected 'condition<TAB>text'");
          RawExample e;
          e.label = std::string(line.substr(0, tab));
          e.output = code_points(line.substr(tab + 1));
          e.line = lineno;
          if (e.output.empty()) throw FormatError(input_name(path) + ":" + std::to_string(lineno) + ": empty text");
          out.push_back(std::move(e));
        }
      }
      if (out.empty()) throw FormatError(input_name(path) + ": no texts to learn");
      break;
    }
  }
  return out;
}

int64_t task_features_width(const TaskModel& m) {
  if (!m.task.features) return 0;
  const char* name = m.task.kind == TaskKind::seq2seq ? "src" : "features";
  for (const auto& in : m.spec.inputs)
    if (in.name == name && in.kind == InputKind::features) return in.size;
  throw Error(std::string("model: no numeric input '") + name + "'");
}

std::vector<RawExample> raw_examples_from_texts(const TaskModel& m, const std::vector<std::string>& texts,
                                               const std::string& origin) {
  std::vector<RawExample> raw;
  int64_t line = 0;
  for (const auto& t : texts) {
    ++line;
    RawExample e;
    const std::string src = t.substr(0, t.find('\t'));
    e.input = split_words(src, m.task.lowercase);
    e.line = line;
    if (e.input.empty()) throw FormatError(origin + ":" + std::to_string(line) + ": empty text; expected at least one word");
    raw.push_back(std::move(e));
  }
  return raw;
}

void apply_column_overrides(TaskSpec& t, const TaskColumnOverrides& o) {
  // The same conversion and checks as recur train's flags (model_task.cpp task_spec_of).
  auto col = [](int64_t c, const char* flag, bool last_ok) {
    if (c < 0 || (c == 0 && !last_ok))
      throw Error(std::string(flag) + ": got " + std::to_string(c) + ", expected a 1-based column" +
                  (last_ok ? " or 0 (last)" : ""));
    return c == 0 ? int64_t(-1) : c - 1;
  };
  if (o.text_column) t.table.text_column = col(*o.text_column, "--text-column", false);
  if (o.label_column) t.table.label_column = col(*o.label_column, "--label-column", true);
  if (o.token_column) t.conll.token_column = col(*o.token_column, "--token-column", false);
  if (o.tag_column) t.conll.tag_column = col(*o.tag_column, "--tag-column", true);
  if (o.header) {
    if (*o.header < -1 || *o.header > 1) throw Error("--header: got " + std::to_string(*o.header) + ", expected 1, 0 or -1");
    t.table.header = *o.header;
  }
}

std::vector<RawExample> read_task_file(const TaskModel& m, const std::string& path, bool with_targets) {
  return read_task_file(m.task, path, with_targets, nullptr, task_features_width(m));
}

// ---------------------------------------------------------------- building

TaskCounts count_task_examples(const TaskSpec& task, const std::vector<RawExample>& train) {
  TaskCounts c;
  c.targets = TokenCounter(task.kind == TaskKind::generate ? TokenLevel::chars : TokenLevel::words);
  for (const auto& e : train) {
    if (!task.features && task.kind != TaskKind::generate)
      for (const auto& w : e.input) c.words.add_token(task_word(task, w));
    if (task.char_rnn)
      for (const auto& w : e.input) c.chars.add_text(w);
    if (task.kind == TaskKind::seq2seq || task.kind == TaskKind::generate)
      for (const auto& w : e.output) c.targets.add_token(w);
    if (task.kind == TaskKind::tag) c.labels.insert(e.output.begin(), e.output.end());
    else if (task.kind != TaskKind::seq2seq) c.labels.insert(e.label);
  }
  return c;
}

VocabGrowth extend_task_vocab(TaskModel& m, const std::vector<RawExample>& train, const TaskVocabOptions& vo, Rng& rng) {
  const TaskCounts counts = count_task_examples(m.task, train);
  auto grow = [](Vocab& vocab, const TokenCounter& counted, const VocabOptions& opts) -> int64_t {
    const int64_t before = vocab.size();
    vocab = vocab.extended(counted, opts);
    return vocab.size() - before;
  };
  const VocabOptions vopts{vo.max_vocab, vo.min_count};
  VocabGrowth g;
  const TaskKind k = m.task.kind;
  if (!m.task.features && k != TaskKind::generate) {
    g.words = grow(m.words, counts.words, vopts);
    model_grow_tokens(m.spec, m.params, k == TaskKind::seq2seq ? "src" : "words", m.words.size(), rng);
  }
  if (m.task.char_rnn) {
    g.chars = grow(m.chars, counts.chars, {});
    model_grow_tokens(m.spec, m.params, "chars", m.chars.size(), rng);
  }
  if (k == TaskKind::seq2seq || k == TaskKind::generate) {
    g.targets = grow(m.targets, counts.targets, k == TaskKind::generate ? VocabOptions{} : vopts);
    model_grow_tokens(m.spec, m.params, "tgt", m.targets.size(), rng);
    model_grow_head(m.spec, m.params, "out", m.targets.size(), rng);
  }
  return g;
}

TaskModel build_task_model(const TaskSpec& task, const std::vector<RawExample>& train, const TaskVocabOptions& vo,
                           const TaskModelOptions& mo, int64_t features_width, Rng& rng) {
  if (train.empty()) throw Error("no training examples");
  return build_task_model_from_counts(task, count_task_examples(task, train), vo, mo, features_width, rng);
}

TaskModel build_task_model_from_counts(const TaskSpec& task, const TaskCounts& counts, const TaskVocabOptions& vo,
                                       const TaskModelOptions& mo, int64_t features_width, Rng& rng) {
  TaskModel m;
  m.task = task;
  const VocabOptions vopts{vo.max_vocab, vo.min_count};
  // Vocabularies and labels from the training data; labels sorted so ids do not depend on order.
  if (!task.features && task.kind != TaskKind::generate) {
    m.words = Vocab::build(counts.words, vopts);
    if (!vo.extra_words.empty()) {
      std::vector<std::string> tokens(m.words.tokens().begin() + Vocab::num_special, m.words.tokens().end());
      std::set<std::string_view> added;  // a vectors file may repeat a word
      // With lower_words a cased vector word could never be looked up: only the words already
      // in the form the vocabulary reads join (a cased vectors file lends its lower-case rows).
      for (const std::string& w : vo.extra_words)
        if (task_word(task, w) == w && !m.words.contains(w) && added.insert(w).second) tokens.push_back(w);
      m.words = Vocab::from_tokens(TokenLevel::words, tokens);
    }
  }
  if (task.char_rnn) m.chars = Vocab::build(counts.chars, {});
  if (task.kind == TaskKind::seq2seq || task.kind == TaskKind::generate)
    m.targets = Vocab::build(counts.targets, task.kind == TaskKind::generate ? VocabOptions{} : vopts);
  m.labels.assign(counts.labels.begin(), counts.labels.end());
  if ((task.kind == TaskKind::classify) && m.labels.size() < 2)
    throw Error("classification needs at least two labels in the training data, got " + std::to_string(m.labels.size()));
  if (task.binary && m.labels.size() != 2)
    throw Error("--binary: needs exactly two labels, got " + std::to_string(m.labels.size()));

  if (task.features && features_width < 1)
    throw Error("--features: got " + std::to_string(features_width) + " features per step, expected at least 1");
  RnnConfig rc = mo.rnn;
  ModelSpec& s = m.spec;
  auto drop = [&](const std::string& name, const std::string& in) { return mo.dropout > 0 ? s.dropout(name, in, mo.dropout) : in; };
  switch (task.kind) {
    case TaskKind::classify:
    case TaskKind::tag: {
      std::string x;
      if (task.features) {
        x = s.features("features", features_width);
      } else {
        s.tokens("words", m.words.size());
        x = s.embedding("emb", "words", mo.embed, mo.freeze_embeddings);
        if (task.char_rnn) {
          s.tokens("chars", m.chars.size());
          s.embedding("char_emb", "chars", mo.char_embed);
          s.rnn("char_rnn", "char_emb", {.cell = CellType::lstm, .hidden_size = mo.char_hidden, .bidirectional = true});
          x = s.concat("word_repr", {x, "char_rnn.final"});
        }
        x = drop("emb_drop", x);
      }
      s.rnn("rnn", x, rc);
      std::string h = "rnn";
      if (task.kind == TaskKind::classify) h = mo.pool ? s.pool("pool", "rnn", *mo.pool) : "rnn.final";
      h = drop("rnn_drop", h);
      s.linear("out", h, task.kind == TaskKind::classify && task.binary ? 1 : int64_t(m.labels.size()));
      if (task.kind == TaskKind::tag && task.crf) s.crf("crf", "out");
      break;
    }
    case TaskKind::seq2seq: {
      // The source: token ids through an embedding, or numeric features read as they are.
      if (task.features) s.features("src", features_width);
      else s.tokens("src", m.words.size());
      s.tokens("tgt", m.targets.size());
      const std::string se =
          task.features ? "src" : drop("src_drop", s.embedding("src_emb", "src", mo.embed, mo.freeze_embeddings));
      s.rnn("enc", se, rc);
      RnnConfig dc = rc;
      dc.bidirectional = false;  // a decoder reads only the past
      std::string init = "enc";
      if (rc.bidirectional) init = s.bridge("bridge", "enc.final", "dec");
      const std::string te = drop("tgt_drop", s.embedding("tgt_emb", "tgt", mo.embed));
      s.rnn("dec", te, dc, init);
      if (mo.attention) {
        const std::string a = s.attention("attn", "dec", "enc", *mo.attention, dc.state_size(), mo.input_feed);
        s.linear("out", drop("attn_drop", a), m.targets.size());
      } else {
        s.linear("out", drop("dec_drop", "dec"), m.targets.size());
      }
      break;
    }
    case TaskKind::generate: {
      RnnConfig dc = rc;
      dc.bidirectional = false;
      s.tokens("cond", int64_t(m.labels.size()), false);
      s.tokens("tgt", m.targets.size());
      s.embedding("cond_emb", "cond", mo.embed);
      if (!task.condition_every_step) s.bridge("bridge", "cond_emb", "dec");
      std::string te = drop("tgt_drop", s.embedding("tgt_emb", "tgt", mo.embed));
      // [T, B, E] next to [B, E]: the condition is repeated at every step (model.h, concat).
      if (task.condition_every_step) te = s.concat("dec_in", {te, "cond_emb"});
      s.rnn("dec", te, dc, task.condition_every_step ? "" : "bridge");
      s.linear("out", drop("dec_drop", "dec"), m.targets.size());
      break;
    }
  }
  s.validate();
  m.params = model_init_params<float>(s, rng);
  return m;
}

std::vector<TaskExample> encode_task_examples(const TaskModel& m, const std::vector<RawExample>& raw, bool with_targets,
                                              const std::string& origin) {
  std::vector<TaskExample> out;
  out.reserve(raw.size());
  auto label_of = [&](const std::string& l, int64_t line) {
    const int32_t id = m.label_id(l);
    if (id < 0)
      throw FormatError(origin + ":" + std::to_string(line) + ": label " + quote_name(l) +
                        " was not seen in training; expected one of: " + m.labels_for_message());
    return id;
  };
  for (const RawExample& r : raw) {
    TaskExample e;
    e.line = r.line;
    if (m.task.kind == TaskKind::seq2seq) {
      e.source_text = r.source_text;
      e.target_text = r.target_text;
      if (!m.task.features) e.source_words = r.input;
    }
    if (m.task.features) {
      const int64_t F = task_features_width(m);
      if (r.steps < 1 || int64_t(r.features.size()) != r.steps * F)
        throw FormatError(origin + ":" + std::to_string(r.line) + ": " + std::to_string(r.steps ? r.features.size() / size_t(r.steps) : 0) +
                          " features per step; the model reads " + std::to_string(F));
      e.features = r.features;
      e.steps = r.steps;
    } else if (m.task.kind != TaskKind::generate) {
      for (const auto& w : r.input) e.words.push_back(m.words.id(task_word(m.task, w)));
      e.steps = int64_t(e.words.size());
      if (m.task.char_rnn)
        for (const auto& w : r.input) {
          std::vector<int32_t> c;
          for (const auto& cp : code_points(w)) {
            if (int64_t(c.size()) >= m.task.max_word_chars) break;
            c.push_back(m.chars.id(cp));
          }
          if (c.empty()) c.push_back(Vocab::unk_id);
          e.chars.push_back(std::move(c));
        }
    }
    if (m.task.kind == TaskKind::generate) {
      e.label = label_of(r.label, r.line);  // the condition is the input, always needed
    }
    if (with_targets) {
      switch (m.task.kind) {
        case TaskKind::classify: e.label = label_of(r.label, r.line); break;
        case TaskKind::tag:
          for (const auto& t : r.output) {
            const int32_t id = m.label_id(t);
            if (id < 0) {
              e.targets.clear();
              e.unseen_gold = r.output;
              break;
            }
            e.targets.push_back(id);
          }
          break;
        case TaskKind::seq2seq:
        case TaskKind::generate:
          for (const auto& t : r.output) e.targets.push_back(m.targets.id(t));
          break;
      }
    }
    out.push_back(std::move(e));
  }
  return out;
}

// ---------------------------------------------------------------- batches and loss

namespace {

// Decoder input <eos> y1..yn and target y1..yn <eos>, padded to the longest in the batch.
void decoder_rows(std::span<const TaskExample* const> ex, ModelInput<float>& tgt, std::vector<int32_t>& targets) {
  const int64_t B = int64_t(ex.size());
  int64_t T = 1;
  for (const auto* e : ex) T = std::max<int64_t>(T, int64_t(e->targets.size()) + 1);
  tgt.steps = T;
  tgt.batch = B;
  tgt.ids.assign(size_t(T * B), Vocab::eos_id);
  tgt.lengths.resize(size_t(B));
  targets.assign(size_t(T * B), -1);
  for (int64_t b = 0; b < B; ++b) {
    const auto& y = ex[size_t(b)]->targets;
    const int64_t n = int64_t(y.size());
    tgt.lengths[size_t(b)] = n + 1;
    for (int64_t t = 0; t < n; ++t) {
      tgt.ids[size_t((t + 1) * B + b)] = y[size_t(t)];
      targets[size_t(t * B + b)] = y[size_t(t)];
    }
    targets[size_t(n * B + b)] = Vocab::eos_id;
  }
}

}  // namespace

void count_words(const TaskExample& e, int64_t vocab, std::vector<int64_t>& counts) {
  if (int64_t(counts.size()) < vocab) counts.resize(size_t(vocab), 0);
  for (const int32_t id : e.words) {
    if (id < 0 || id >= vocab)
      throw Error("count_words: input line " + std::to_string(e.line) + ": word id " + std::to_string(id) +
                  " outside the vocabulary of " + std::to_string(vocab));
    ++counts[size_t(id)];
  }
}

int64_t drop_singleton_words(std::vector<int32_t>& ids, const std::vector<int64_t>& counts, double p, Rng& rng) {
  if (!(p >= 0 && p <= 1)) throw Error("drop_singleton_words: p = " + std::to_string(p) + ", expected [0, 1]");
  if (p == 0) return 0;  // no draws: a run without it keeps its dropout masks
  int64_t dropped = 0;
  for (int32_t& id : ids) {
    if (id < Vocab::num_special || id >= int32_t(counts.size()) || counts[size_t(id)] != 1) continue;
    if (rng.uniform() < p) {
      id = Vocab::unk_id;
      ++dropped;
    }
  }
  return dropped;
}

TaskBatch make_task_batch(const TaskModel& m, std::span<const TaskExample* const> ex) {
  TaskBatch tb;
  const int64_t B = int64_t(ex.size());
  if (B < 1) throw Error("make_task_batch: empty batch");
  tb.batch = B;
  const TaskKind k = m.task.kind;
  if (k == TaskKind::generate) {
    ModelInput<float> cond;
    cond.batch = B;
    for (const auto* e : ex) cond.ids.push_back(e->label);
    tb.inputs["cond"] = std::move(cond);
    decoder_rows(ex, tb.inputs["tgt"], tb.targets);
    tb.steps = tb.inputs["tgt"].steps;
    return tb;
  }
  int64_t T = 1;
  for (const auto* e : ex) T = std::max(T, e->steps);
  ModelInput<float> x;
  x.steps = T;
  x.batch = B;
  x.lengths.resize(size_t(B));
  for (int64_t b = 0; b < B; ++b) {
    if (ex[size_t(b)]->steps < 1) throw Error("input line " + std::to_string(ex[size_t(b)]->line) + ": empty sequence");
    x.lengths[size_t(b)] = ex[size_t(b)]->steps;
  }
  if (m.task.features) {
    const int64_t F = task_features_width(m);
    x.features = Tensor<float>({T, B, F});
    for (int64_t b = 0; b < B; ++b)
      for (int64_t t = 0; t < ex[size_t(b)]->steps; ++t)
        std::copy_n(ex[size_t(b)]->features.data() + t * F, F, x.features.ptr() + (t * B + b) * F);
  } else {
    x.ids.assign(size_t(T * B), Vocab::eos_id);
    for (int64_t b = 0; b < B; ++b)
      for (int64_t t = 0; t < ex[size_t(b)]->steps; ++t) x.ids[size_t(t * B + b)] = ex[size_t(b)]->words[size_t(t)];
  }
  const std::string xname = k == TaskKind::seq2seq ? "src" : m.task.features ? "features" : "words";
  if (m.task.char_rnn) {
    // One character sequence per word position [Tc, T*B]; padding positions get one <eos>.
    ModelInput<float> c;
    int64_t Tc = 1;
    for (const auto* e : ex)
      for (const auto& w : e->chars) Tc = std::max<int64_t>(Tc, int64_t(w.size()));
    const int64_t N = T * B;
    c.steps = Tc;
    c.batch = N;
    c.ids.assign(size_t(Tc * N), Vocab::eos_id);
    c.lengths.assign(size_t(N), 1);
    for (int64_t b = 0; b < B; ++b)
      for (int64_t t = 0; t < ex[size_t(b)]->steps; ++t) {
        const auto& w = ex[size_t(b)]->chars[size_t(t)];
        const int64_t n = t * B + b;
        c.lengths[size_t(n)] = int64_t(w.size());
        for (size_t j = 0; j < w.size(); ++j) c.ids[j * size_t(N) + size_t(n)] = w[j];
      }
    tb.inputs["chars"] = std::move(c);
  }
  tb.inputs[xname] = std::move(x);
  switch (k) {
    case TaskKind::classify:
      tb.steps = 0;
      for (const auto* e : ex) {
        tb.targets.push_back(e->label);
        tb.binary.push_back(e->label == 1 ? 1.f : 0.f);
      }
      break;
    case TaskKind::tag:
      tb.steps = T;
      tb.targets.assign(size_t(T * B), -1);
      for (int64_t b = 0; b < B; ++b)
        for (size_t t = 0; t < ex[size_t(b)]->targets.size(); ++t) tb.targets[t * size_t(B) + size_t(b)] = ex[size_t(b)]->targets[t];
      break;
    case TaskKind::seq2seq:
      decoder_rows(ex, tb.inputs["tgt"], tb.targets);
      tb.steps = tb.inputs["tgt"].steps;
      break;
    case TaskKind::generate: break;
  }
  return tb;
}

namespace {

// Sentence lengths [B] of a tag batch: its targets [T*B] are -1 beyond each sentence's end.
std::vector<int64_t> tag_lengths(const TaskBatch& tb) {
  const int64_t B = tb.batch, T = tb.steps;
  std::vector<int64_t> len(size_t(B), 0);
  for (int64_t b = 0; b < B; ++b)
    while (len[size_t(b)] < T && tb.targets[size_t(len[size_t(b)] * B + b)] >= 0) ++len[size_t(b)];
  return len;
}

int64_t crf_layer(const TaskModel& m) {
  if (!m.task.crf) return -1;
  const int64_t i = m.spec.layer_index("crf");
  if (i < 0) throw Error("internal: a CRF tagger without its 'crf' layer");
  return i;
}

CrfConstraints crf_constraints(const TaskModel& m) { return tag_scheme_constraints(m.labels, m.task.train_scheme); }

// The CRF's sequence loss of a tag batch; grads (nullptr: none) receives its parameters' gradients.
LossSum crf_task_loss(const TaskModel& m, const Tensor<float>& out, const TaskBatch& tb, Tensor<float>* grad_out,
                      ModelGrads<float>* grads, double grad_scale) {
  const size_t k = size_t(crf_layer(m));
  const LayerParams<float>& p = m.params.layers[k];
  CrfGrads<float> g{.emissions = grad_out};
  if (grads) {
    g.transitions = &grads->layers[k].weight;
    g.start_end = &grads->layers[k].bias;
  }
  const std::vector<int64_t> len = tag_lengths(tb);
  return crf_nll(out, std::span<const int64_t>(len), std::span<const int32_t>(tb.targets), {p.weight, p.bias},
                 crf_constraints(m), g, grad_scale);
}

}  // namespace

LossSum task_loss(const TaskModel& m, const Tensor<float>& out, const TaskBatch& tb, Tensor<float>* grad_out,
                  double grad_scale) {
  if (m.task.kind == TaskKind::tag && m.task.crf) {
    bool any = false;
    for (int32_t t : tb.targets) any |= t >= 0;
    if (!any) return {};
    return crf_task_loss(m, out, tb, grad_out, nullptr, grad_scale);
  }
  if (m.task.kind == TaskKind::classify && m.task.binary) {
    bool any = false;
    for (int32_t t : tb.targets) any |= t >= 0;
    if (!any) return {};
    return sigmoid_binary_cross_entropy(out, std::span<const float>(tb.binary), {}, grad_out, grad_scale);
  }
  bool any = false;
  for (int32_t t : tb.targets) any |= t >= 0;
  if (!any) return {};
  return softmax_cross_entropy(out, std::span<const int32_t>(tb.targets), {}, grad_out, grad_scale);
}

int64_t task_target_count(const TaskModel&, const TaskBatch& tb) {
  int64_t count = 0;
  for (int32_t t : tb.targets) count += t >= 0;
  return count;
}

LossSum task_forward_backward(const TaskModel& m, const TaskBatch& tb, const ModelForwardOptions& opts,
                              ModelCache<float>& cache, ModelGrads<float>* grads, int64_t total_targets,
                              const LayerDoneFn& layer_done) {
  model_forward(m.spec, m.params, tb.inputs, opts, cache);
  const Tensor<float>& out = model_output(m.spec, cache, "out");
  if (!grads) return task_loss(m, out, tb, nullptr, 0.0);
  // The mean over target positions: count them first, then scale the gradient by 1/count. The
  // gradient goes straight into the head's slot (model_grad_slot): no copy in backward.
  const int64_t count = total_targets > 0 ? total_targets : task_target_count(m, tb);
  Tensor<float>& g = model_grad_slot(m.spec, cache, "out");
  const double scale = count > 0 ? 1.0 / double(count) : 0.0;
  const bool crf = m.task.kind == TaskKind::tag && m.task.crf && task_target_count(m, tb) > 0;
  const LossSum ls = crf ? crf_task_loss(m, out, tb, &g, grads, scale) : task_loss(m, out, tb, &g, scale);
  if (ls.count == 0) return ls;  // no targets: nothing to learn, and g was not written
  model_backward(m.spec, m.params, tb.inputs, cache, {{"out", &g}}, *grads, layer_done);
  return ls;
}

// ---------------------------------------------------------------- prediction

namespace {

template <typename F>
void for_batches(const std::vector<TaskExample>& ex, int64_t batch, F&& f) {
  std::vector<const TaskExample*> ptrs;
  for (size_t i = 0; i < ex.size(); i += size_t(batch)) {
    ptrs.clear();
    for (size_t j = i; j < std::min(ex.size(), i + size_t(batch)); ++j) ptrs.push_back(&ex[j]);
    f(i, std::span<const TaskExample* const>(ptrs));
  }
}

}  // namespace

std::vector<std::vector<double>> classify_probabilities(const TaskModel& m, const std::vector<TaskExample>& ex,
                                                        int64_t batch) {
  std::vector<std::vector<double>> out(ex.size());
  ModelCache<float> cache;
  for_batches(ex, batch, [&](size_t i0, std::span<const TaskExample* const> b) {
    const TaskBatch tb = make_task_batch(m, b);
    model_forward(m.spec, m.params, tb.inputs, {}, cache);
    const Tensor<float>& logits = model_output(m.spec, cache, "out");
    const int64_t C = logits.dim(1);
    for (size_t k = 0; k < b.size(); ++k) {
      std::vector<double>& p = out[i0 + k];
      if (m.task.binary) {
        const double z = logits.data[k];
        const double p1 = 1.0 / (1.0 + std::exp(-z));
        p = {1.0 - p1, p1};
      } else {
        std::vector<double> row(logits.data.begin() + int64_t(k) * C, logits.data.begin() + int64_t(k + 1) * C);
        p.resize(size_t(C));
        softmax<double>(row, p);
      }
    }
  });
  return out;
}

void check_ensemble(std::span<const TaskModel> models, std::span<const std::string> names) {
  if (models.empty()) throw Error("an ensemble needs at least one model");
  if (names.size() != models.size()) throw Error("check_ensemble: one name per model expected");
  const TaskModel& first = models[0];
  for (size_t k = 0; k < models.size(); ++k) {
    const TaskModel& m = models[k];
    if (m.task.kind != TaskKind::classify)
      throw Error("--ensemble: members must be classify models; " + names[k] + " is a " + task_kind_name(m.task.kind) +
                  " model");
    if (m.task.features != first.task.features || m.task.lowercase != first.task.lowercase)
      throw Error("--ensemble: " + names[k] + " reads its input otherwise than " + names[0] +
                  " (numeric features or lower-casing); expected members that read the same text alike");
    if (m.labels != first.labels) {
      auto list = [](const std::vector<std::string>& l) {
        std::string s;
        for (const std::string& x : l) s += (s.empty() ? "" : " ") + x;
        return s;
      };
      throw Error("--ensemble: " + names[k] + " has the labels [" + list(m.labels) + "], " + names[0] + " [" +
                  list(first.labels) + "]; expected the same labels in the same order");
    }
  }
}

std::vector<std::vector<double>> ensemble_probabilities(std::span<const TaskModel> models,
                                                        std::span<const std::vector<TaskExample>> examples,
                                                        int64_t batch) {
  std::vector<std::string> names;
  for (size_t k = 0; k < models.size(); ++k) names.push_back("member " + std::to_string(k + 1));
  check_ensemble(models, names);
  if (examples.size() != models.size()) throw Error("ensemble_probabilities: one example list per member expected");
  const size_t n = examples[0].size();
  std::vector<std::vector<double>> sum;
  for (size_t k = 0; k < models.size(); ++k) {
    if (examples[k].size() != n)
      throw Error("ensemble_probabilities: " + names[k] + " has " + std::to_string(examples[k].size()) +
                  " examples, member 1 " + std::to_string(n));
    auto p = classify_probabilities(models[k], examples[k], batch);  // [N][C]
    if (k == 0) {
      sum = std::move(p);
      continue;
    }
    for (size_t i = 0; i < n; ++i)
      for (size_t c = 0; c < sum[i].size(); ++c) sum[i][c] += p[i][c];
  }
  const double inv = 1.0 / double(models.size());
  for (auto& row : sum)
    for (double& v : row) v *= inv;
  return sum;
}

std::vector<std::vector<int32_t>> tag_predictions(const TaskModel& m, const std::vector<TaskExample>& ex, int64_t batch) {
  std::vector<std::vector<int32_t>> out(ex.size());
  ModelCache<float> cache;
  for_batches(ex, batch, [&](size_t i0, std::span<const TaskExample* const> b) {
    const TaskBatch tb = make_task_batch(m, b);
    model_forward(m.spec, m.params, tb.inputs, {}, cache);
    const Tensor<float>& logits = model_output(m.spec, cache, "out");  // [T, B, C]
    const int64_t B = int64_t(b.size()), C = logits.dim(2);
    if (m.task.crf) {
      const LayerParams<float>& p = m.params.layers[size_t(crf_layer(m))];
      std::vector<int64_t> len(static_cast<size_t>(B));
      for (int64_t k = 0; k < B; ++k) len[size_t(k)] = b[size_t(k)]->steps;
      auto paths = crf_viterbi(logits, std::span<const int64_t>(len), {p.weight, p.bias}, crf_constraints(m));
      for (int64_t k = 0; k < B; ++k) out[i0 + size_t(k)] = std::move(paths[size_t(k)]);
      return;
    }
    for (int64_t k = 0; k < B; ++k)
      for (int64_t t = 0; t < b[size_t(k)]->steps; ++t) {
        const float* row = logits.ptr() + (t * B + k) * C;
        out[i0 + size_t(k)].push_back(int32_t(std::max_element(row, row + C) - row));
      }
  });
  return out;
}

std::vector<std::vector<int32_t>> translate(const TaskModel& m, const std::vector<TaskExample>& ex,
                                            const DecodeOptions& opts, int64_t batch) {
  if (m.task.kind != TaskKind::seq2seq) throw Error("translate: the model is not a seq2seq model");
  if (opts.beam < 1) throw Error("--beam: expected >= 1, got " + std::to_string(opts.beam));
  std::vector<std::vector<int32_t>> out(ex.size());
  ModelCache<float> cache;
  ModelStepper<float> stepper(m.spec, m.params, {.precision = m.precision});  // "tgt" -> "dec" -> "out"
  const DecodeTokens tokens{.start = Vocab::eos_id, .end = Vocab::eos_id};
  // The encoder runs once per batch (model_forward); the decoder is stepped, all hypotheses of
  // the batch's beams together.
  for_batches(ex, batch, [&](size_t i0, std::span<const TaskExample* const> b) {
    TaskBatch tb = make_task_batch(m, b);
    tb.inputs.erase("tgt");
    StepperStart<float> start = stepper.start(std::move(tb.inputs), int64_t(b.size()), cache);
    auto ys = opts.beam == 1 ? greedy_decode(stepper, std::move(start), tokens, opts.max_length)
                             : beam_decode(stepper, std::move(start), tokens, opts);
    for (size_t k = 0; k < ys.size(); ++k) out[i0 + k] = std::move(ys[k]);
  });
  return out;
}

std::vector<int32_t> generate_conditioned(const TaskModel& m, int32_t label, const GenerateTaskOptions& opts, Rng& rng) {
  if (m.task.kind != TaskKind::generate) throw Error("generate: the model is not a conditioned generator");
  if (label < 0 || label >= int32_t(m.labels.size())) throw Error("generate: condition id out of range");
  ModelInputs<float> in;
  in["cond"].batch = 1;
  in["cond"].ids = {label};
  ModelCache<float> cache;
  ModelStepper<float> stepper(m.spec, m.params, {.precision = m.precision});
  SampleDecodeOptions so;
  so.sample.temperature = opts.temperature;
  so.sample.argmax = opts.argmax;
  so.max_length = opts.max_length;
  so.banned = Vocab::unk_id;  // never a training target
  return sample_decode(stepper, stepper.start(std::move(in), 1, cache), {.start = Vocab::eos_id, .end = Vocab::eos_id},
                       so, rng);
}

std::string task_output_text(const TaskModel& m, const std::vector<int32_t>& ids) {
  std::string s;
  const bool chars = m.targets.level() == TokenLevel::chars;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (!chars && i) s += ' ';
    s += m.targets.token(ids[i]);
  }
  return s;
}

std::string task_output_words_text(const TaskModel& m, const std::vector<std::string>& words) {
  std::string s;
  const bool chars = m.targets.level() == TokenLevel::chars;
  for (size_t i = 0; i < words.size(); ++i) {
    if (!chars && i) s += ' ';
    s += words[i];
  }
  return s;
}

bool task_has_attention(const TaskModel& m) {
  const int64_t i = m.spec.layer_index("attn");
  return m.task.kind == TaskKind::seq2seq && i >= 0 && m.spec.layers[size_t(i)].kind == LayerKind::attention;
}

std::vector<std::vector<std::vector<float>>> attention_alignments(const TaskModel& m, const std::vector<TaskExample>& ex,
                                                                  const std::vector<std::vector<int32_t>>& outputs,
                                                                  int64_t batch) {
  if (!task_has_attention(m)) throw Error("the model has no attention (recur train --task seq2seq --attention ...)");
  if (outputs.size() != ex.size()) throw Error("attention_alignments: " + std::to_string(outputs.size()) + " outputs for " +
                                               std::to_string(ex.size()) + " examples");
  // The decoded outputs as targets: the decoder reads <eos> y1 .. yn, as it did while decoding.
  std::vector<TaskExample> forced(ex.begin(), ex.end());
  for (size_t i = 0; i < forced.size(); ++i) forced[i].targets = outputs[i];
  const size_t a = size_t(m.spec.layer_index("attn"));
  std::vector<std::vector<std::vector<float>>> out(ex.size());
  ModelCache<float> cache;
  for_batches(forced, batch, [&](size_t i0, std::span<const TaskExample* const> b) {
    const TaskBatch tb = make_task_batch(m, b);
    model_forward(m.spec, m.params, tb.inputs, {.training = false, .rng = nullptr, .wanted = {"attn"}}, cache);
    const Tensor<float>& w = cache.layers[a].attn.weights;  // [Tt, B, Ts]
    const int64_t B = w.dim(1), Ts = w.dim(2);
    for (int64_t k = 0; k < B; ++k) {
      const TaskExample& e = *b[size_t(k)];
      const int64_t rows = int64_t(e.targets.size()) + 1, len = e.steps;
      auto& al = out[i0 + size_t(k)];
      al.assign(size_t(rows), std::vector<float>(size_t(len)));
      for (int64_t t = 0; t < rows; ++t)
        std::copy(w.ptr() + (t * B + k) * Ts, w.ptr() + (t * B + k) * Ts + len, al[size_t(t)].begin());
    }
  });
  return out;
}

std::string attention_table(const std::vector<std::string>& source_words, const std::vector<std::string>& output_words,
                            const std::vector<std::vector<float>>& alignment) {
  std::string s;
  for (const std::string& w : source_words) s += "\t" + w;
  s += "\n";
  char buf[32];
  for (size_t t = 0; t < alignment.size(); ++t) {
    s += t < output_words.size() ? output_words[t] : std::string("<eos>");
    for (float v : alignment[t]) {
      std::snprintf(buf, sizeof buf, "\t%.3f", double(v));
      s += buf;
    }
    s += "\n";
  }
  return s + "\n";
}

std::vector<std::string> replace_unknown_words(const TaskModel& m, const std::vector<int32_t>& output,
                                               const std::vector<std::vector<float>>& alignment,
                                               const std::vector<std::string>& source_words,
                                               std::vector<bool>* replaced) {
  std::vector<std::string> words;
  if (replaced) replaced->assign(output.size(), false);
  for (size_t j = 0; j < output.size(); ++j) {
    if (output[j] != Vocab::unk_id || j >= alignment.size() || alignment[j].empty() || source_words.empty()) {
      words.push_back(m.targets.token(output[j]));
      continue;
    }
    const auto& row = alignment[j];  // the step that produced output j
    const size_t best = size_t(std::max_element(row.begin(), row.end()) - row.begin());
    const bool found = best < source_words.size();
    words.push_back(found ? source_words[best] : m.targets.token(output[j]));
    if (replaced) (*replaced)[j] = found;
  }
  return words;
}

// ---------------------------------------------------------------- evaluation

namespace {

// What an output <unk> becomes in the text BLEU scores: U+FFFD, a token that CorpusBleu never
// lets match (BleuOptions::unknown), whatever the references hold.
constexpr std::string_view kBleuUnknown = "\xEF\xBF\xBD";

// The output ids as detokenised text for BLEU: characters joined; words joined by spaces, except
// a "." or "," between two digits ("3 . 5" -> "3.5", one token in 13a as in the reference). 13a
// splits the other punctuation itself, so spaces around it change no token.
// `replaced`: the words after unk replacement (replace_unknown_words), or null.
// `words`/`replaced` (with --replace-unk): replace_unknown_words' output and which <unk>s it replaced.
std::string scoring_text(const TaskModel& m, const std::vector<int32_t>& ids, const std::vector<std::string>* words = nullptr,
                         const std::vector<bool>* replaced = nullptr) {
  const bool chars = m.targets.level() == TokenLevel::chars;
  std::vector<std::string> w;
  for (size_t i = 0; i < ids.size(); ++i) {
    const bool unk = ids[i] == Vocab::unk_id;
    // A replaced <unk> is the source word; one left <unk> (no attention) never matches.
    w.push_back(words && replaced && (*replaced)[i] ? (*words)[i]
                : unk                               ? std::string(kBleuUnknown)
                                                    : m.targets.token(ids[i]));
  }
  auto digit_at = [](const std::string& s, bool last) {
    return !s.empty() && std::isdigit(static_cast<unsigned char>(last ? s.back() : s.front()));
  };
  std::string s;
  for (size_t i = 0; i < w.size(); ++i) {
    const bool glue = chars || i == 0 ||
                      ((w[i] == "." || w[i] == ",") && digit_at(w[i - 1], true) && i + 1 < w.size() &&
                       digit_at(w[i + 1], false)) ||
                      (i >= 2 && (w[i - 1] == "." || w[i - 1] == ",") && digit_at(w[i - 2], true) && digit_at(w[i], false));
    if (!glue) s += ' ';
    s += w[i];
  }
  return s;
}

// Accuracy, macro-F1 and the confusion matrix of the probabilities' arg-max [N][C] into r.
void add_class_metrics(const std::vector<std::string>& labels, const std::vector<TaskExample>& ex,
                       const std::vector<std::vector<double>>& probs, TaskEvalResult& r) {
  ClassEval ce(labels);
  for (size_t i = 0; i < ex.size(); ++i)
    ce.add(ex[i].label, int64_t(std::max_element(probs[i].begin(), probs[i].end()) - probs[i].begin()));
  r.metric = ce.accuracy();
  r.metric_name = "accuracy";
  r.report += ce.report();
}

}  // namespace

TaskEvalResult evaluate_ensemble(std::span<const TaskModel> models, std::span<const std::vector<TaskExample>> examples,
                                 const TaskEvalOptions& opts) {
  const auto probs = ensemble_probabilities(models, examples, opts.batch);  // checks the members
  const std::vector<TaskExample>& ex = examples[0];
  TaskEvalResult r;
  // The ensemble's loss is that of its averaged distribution (not the mean of the members'
  // losses): what a user of the averaged probabilities is scored by.
  for (size_t i = 0; i < ex.size(); ++i) {
    if (ex[i].label < 0 || size_t(ex[i].label) >= probs[i].size())
      throw Error("evaluate_ensemble: example " + std::to_string(i + 1) + " has no label");
    r.loss += LossSum{-std::log(std::max(probs[i][size_t(ex[i].label)], 1e-300)), 1};
  }
  char buf[160];
  std::snprintf(buf, sizeof buf, "loss        %.6f (%lld targets; the members' averaged probabilities)\n",
                r.loss.mean(), (long long)r.loss.count);
  r.report = buf;
  add_class_metrics(models[0].labels, ex, probs, r);
  return r;
}

TaskEvalResult evaluate_task(const TaskModel& m, const std::vector<TaskExample>& ex, const TaskEvalOptions& opts) {
  TaskEvalResult r;
  ModelCache<float> cache;
  for_batches(ex, opts.batch, [&](size_t, std::span<const TaskExample* const> b) {
    const TaskBatch tb = make_task_batch(m, b);
    r.loss += task_forward_backward(m, tb, {}, cache, nullptr);
  });
  char buf[160];
  std::snprintf(buf, sizeof buf, "loss        %.6f (%lld targets)\n", r.loss.mean(), (long long)r.loss.count);
  r.report = buf;
  switch (m.task.kind) {
    case TaskKind::classify:
      add_class_metrics(m.labels, ex, classify_probabilities(m, ex, opts.batch), r);
      break;
    case TaskKind::tag: {
      const auto pred = tag_predictions(m, ex, opts.batch);
      TagEval te;
      std::set<std::string> unseen;  // tags of the file the model never saw
      int64_t unseen_sentences = 0;
      for (size_t i = 0; i < ex.size(); ++i) {
        // Both in the file's scheme: the entities the user's file and output hold.
        std::vector<std::string> gold = tag_output_strings(m, ex[i].targets);
        if (!ex[i].unseen_gold.empty()) {
          ++unseen_sentences;
          gold = m.task.converts_tags() ? convert_tags(ex[i].unseen_gold, m.task.train_scheme, m.task.file_scheme)
                                        : ex[i].unseen_gold;
          for (size_t t = 0; t < gold.size() && t < ex[i].unseen_gold.size(); ++t)
            if (m.label_id(ex[i].unseen_gold[t]) < 0) unseen.insert(gold[t]);  // named as in the file
        }
        te.add(gold, tag_output_strings(m, pred[i]));
      }
      r.metric = te.all.f1();
      r.metric_name = "f1";
      if (unseen_sentences > 0) {
        std::string names;
        for (const std::string& t : unseen) names += (names.empty() ? "" : ", ") + t;
        r.report += "unseen      " + std::to_string(unseen_sentences) + " sentence(s) hold tags not seen in training (" +
                    names + "): left out of the loss; their entities count as missed\n";
      }
      r.report += te.report();
      break;
    }
    case TaskKind::seq2seq: {
      r.metric_name = "bleu";
      if (!opts.decode_outputs) {
        r.metric = -r.loss.mean();
        r.metric_name = "neg_loss";
        break;
      }
      const auto hyp = translate(m, ex, opts.decode, opts.batch);
      // One segment per distinct source text, with all its targets in the file as references
      // (the first example's output stands for the source: the model sees the same input).
      std::vector<size_t> first;                       // segment -> its first example
      std::vector<std::vector<std::string>> refs;      // segment -> reference texts
      std::map<std::string, size_t> segment_of;        // source text -> segment
      for (size_t i = 0; i < ex.size(); ++i) {
        const std::string& src = ex[i].source_text;
        auto [it, fresh] = segment_of.try_emplace(src, refs.size());
        if (fresh || src.empty()) {
          it->second = refs.size();
          first.push_back(i);
          refs.emplace_back();
        }
        refs[it->second].push_back(ex[i].target_text);
      }
      CorpusBleu be({.lowercase = m.task.lowercase, .unknown = std::string(kBleuUnknown)});
      const bool replace = opts.replace_unk && task_has_attention(m);
      if (opts.replace_unk && !replace)
        throw Error("--replace-unk: the model has no attention to copy source words by (recur train --attention)");
      std::vector<std::vector<std::vector<float>>> align;
      if (replace) align = attention_alignments(m, ex, hyp, opts.batch);
      for (size_t s = 0; s < refs.size(); ++s) {
        const size_t i = first[s];
        if (!replace) {
          be.add(scoring_text(m, hyp[i]), refs[s]);
          continue;
        }
        std::vector<bool> replaced;
        const auto words = replace_unknown_words(m, hyp[i], align[i], ex[i].source_words, &replaced);
        be.add(scoring_text(m, hyp[i], &words, &replaced), refs[s]);
      }
      r.metric = be.bleu();
      std::snprintf(buf, sizeof buf, "decoder     %s\nBLEU        %.2f\nexact match %.2f%% (%lld of %lld)\n",
                    opts.decode.beam > 1 ? ("beam " + std::to_string(opts.decode.beam)).c_str() : "greedy",
                    100 * be.bleu(), 100 * be.exact_match(), (long long)be.exact, (long long)be.segments);
      r.report += buf;
      std::snprintf(buf, sizeof buf,
                    "references  %lld for %lld sources; sacreBLEU 13a tokens, exp smoothing%s, <unk> never matches%s\n",
                    (long long)be.references, (long long)be.segments, m.task.lowercase ? ", lowercased (-lc)" : "",
                    replace ? " (each replaced by the most attended source word first)" : "");
      r.report += buf;
      break;
    }
    case TaskKind::generate:
      r.metric = -r.loss.mean();
      r.metric_name = "neg_loss";
      std::snprintf(buf, sizeof buf, "perplexity  %.4f\n", std::exp(r.loss.mean()));
      r.report += buf;
      break;
  }
  return r;
}

// ---------------------------------------------------------------- checkpoints

namespace {

std::string task_json(const TaskModel& m) {
  const TaskSpec& t = m.task;
  nlohmann::ordered_json j = {{"kind", task_kind_name(t.kind)},
                              {"binary", t.binary},
                              {"lowercase", t.lowercase},
                              {"char_rnn", t.char_rnn},
                              {"features", t.features},
                              {"condition_every_step", t.condition_every_step},
                              {"max_word_chars", t.max_word_chars},
                              {"token_column", t.conll.token_column},
                              {"tag_column", t.conll.tag_column},
                              {"text_column", t.table.text_column},
                              {"label_column", t.table.label_column},
                              {"labels", m.labels}};
  // Written only for taggers that use them, so every other model file keeps its bytes.
  if (t.crf) j["crf"] = true;
  if (t.lower_words) j["lower_words"] = true;
  if (t.file_scheme != TagScheme::none || t.train_scheme != TagScheme::none) {
    j["file_scheme"] = tag_scheme_name(t.file_scheme);
    j["train_scheme"] = tag_scheme_name(t.train_scheme);
  }
  return j.dump();
}

void task_from_json(TaskModel& m, std::string_view json, const std::string& origin) {
  JsonFields f(json, origin + ": metadata \"task\"");
  TaskSpec& t = m.task;
  const std::string kind = f.string("kind");
  if (!is_task_kind(kind)) f.fail("kind", "\"classify\", \"tag\", \"seq2seq\" or \"generate\"");
  t.kind = parse_task_kind(kind);
  t.binary = f.boolean("binary");
  t.lowercase = f.boolean("lowercase");
  t.char_rnn = f.boolean("char_rnn");
  t.features = f.boolean("features");
  t.condition_every_step = f.boolean("condition_every_step");
  // Characters are read per word of a word classifier or tagger; any other task has no words to spell.
  if (t.char_rnn && (t.features || (t.kind != TaskKind::tag && t.kind != TaskKind::classify)))
    f.fail("char_rnn", "false for a " + kind + (t.features ? " model on --features" : " model"));
  t.max_word_chars = f.integer("max_word_chars", 1, 1 << 20);
  t.conll.token_column = f.integer("token_column", 0, 1 << 20);
  t.conll.tag_column = f.integer("tag_column", -(1 << 20), 1 << 20);
  t.table.text_column = f.integer("text_column", -(1 << 20), 1 << 20);
  t.table.label_column = f.integer("label_column", -(1 << 20), 1 << 20);
  const auto& l = f.raw("labels");
  if (!l.is_array()) f.fail("labels", "an array of strings");
  for (const auto& x : l) {
    if (!x.is_string()) f.fail("labels", "an array of strings");
    m.labels.push_back(x.get<std::string>());
  }
  // Absent in files from before CRFs and tag schemes: no CRF, tags as they are.
  if (f.has("crf")) t.crf = f.boolean("crf");
  if (f.has("lower_words")) t.lower_words = f.boolean("lower_words");  // absent before issue 17's lowering
  auto scheme = [&](const char* name) {
    if (!f.has(name)) return TagScheme::none;
    const std::string v = f.string(name);
    if (v != "none" && v != "iob1" && v != "bio" && v != "bioes") f.fail(name, "\"none\", \"iob1\", \"bio\" or \"bioes\"");
    return parse_tag_scheme(v);
  };
  t.file_scheme = scheme("file_scheme");
  t.train_scheme = scheme("train_scheme");
  f.finish();
}

// The inputs and head the task code relies on, checked against the loaded model's structure.
void check_task_structure(const TaskModel& m, const std::string& origin) {
  // size 0: a features input (any F >= 1); else a tokens input over a vocabulary of that size.
  auto need_input = [&](const char* name, int64_t size) {
    for (const auto& in : m.spec.inputs)
      if (in.name == name) {
        const bool want_features = size == 0;
        if ((in.kind == InputKind::features) != want_features)
          throw FormatError(origin + ": model input '" + name + "' is " +
                            (in.kind == InputKind::features ? "numeric features" : "tokens") + " but metadata \"task\" says " +
                            (want_features ? "\"features\": true" : "\"features\": false"));
        if (size > 0 && in.size != size)
          throw FormatError(origin + ": model input '" + name + "' has size " + std::to_string(in.size) +
                            " but its vocabulary " + std::to_string(size));
        return;
      }
    throw FormatError(origin + ": model has no input '" + std::string(name) + "' for a " + task_kind_name(m.task.kind) + " task");
  };
  if (m.spec.layer_index("out") < 0) throw FormatError(origin + ": model has no 'out' layer");
  const TaskKind k = m.task.kind;
  if (k == TaskKind::seq2seq || k == TaskKind::generate) {
    need_input("tgt", m.targets.size());
    if (m.spec.layer_index("dec") < 0) throw FormatError(origin + ": model has no 'dec' layer");
    if (k == TaskKind::seq2seq) need_input("src", m.task.features ? 0 : m.words.size());
    else need_input("cond", int64_t(m.labels.size()));
  } else if (m.task.features) {
    need_input("features", 0);
  } else {
    need_input("words", m.words.size());
    if (m.task.char_rnn) need_input("chars", m.chars.size());
  }
  const int64_t C = m.spec.width("out");
  const int64_t want = k == TaskKind::seq2seq || k == TaskKind::generate ? m.targets.size()
                       : (k == TaskKind::classify && m.task.binary)      ? 1
                                                                         : int64_t(m.labels.size());
  if (C != want)
    throw FormatError(origin + ": layer 'out' has " + std::to_string(C) + " outputs, expected " + std::to_string(want));
  if (m.task.crf) {
    const int64_t i = m.spec.layer_index("crf");
    if (k != TaskKind::tag) throw FormatError(origin + ": metadata \"task\": \"crf\" is for tag models");
    if (i < 0 || m.spec.layers[size_t(i)].kind != LayerKind::crf || m.spec.layers[size_t(i)].inputs.at(0) != "out")
      throw FormatError(origin + ": metadata \"task\" says \"crf\": true but the model has no crf layer 'crf' on 'out'");
  }
}

}  // namespace

std::string task_model_summary(const TaskModel& m) {
  std::string s = std::string(task_kind_name(m.task.kind));
  if (m.task.binary) s += " (binary)";
  if (m.task.features) s += " on " + std::to_string(task_features_width(m)) + " features per step";
  s += ": " + model_spec_summary(m.spec) + "; " + std::to_string(model_param_count(m.spec)) + " parameters";
  if (!m.labels.empty()) s += "; " + std::to_string(m.labels.size()) + " labels";
  if (m.words.size() > Vocab::num_special) s += "; " + std::to_string(m.words.size()) + " words";
  if (m.targets.size() > Vocab::num_special) s += "; " + std::to_string(m.targets.size()) + " output tokens";
  return s;
}

void save_task_checkpoint(const std::string& path, const TaskCheckpoint& ck) {
  save_task_checkpoint(path, ck.model, ck.train_state, ck.tensors);
}

void save_task_checkpoint(const std::string& path, const TaskModel& m, const std::string& train_state,
                          const std::map<std::string, Tensor<float>>& tensors) {
  model_check_params(m.spec, m.params);
  check_task_structure(m, path);
  const std::string task = task_json(m);
  ModelFileView f{.task = task, .spec = m.spec, .params = m.params, .vocabs = {}, .train_state = train_state,
                  .tensors = tensors};
  if (m.words.size() > Vocab::num_special) f.vocabs.emplace("words", &m.words);
  if (m.chars.size() > Vocab::num_special) f.vocabs.emplace("chars", &m.chars);
  if (m.targets.size() > Vocab::num_special) f.vocabs.emplace("targets", &m.targets);
  save_model_file(path, f);
}

bool is_task_checkpoint(const std::string& path) {
  try {
    const SafetensorsReader rd = SafetensorsReader::open(path);
    if (read_file_format(rd).format != kTaskCheckpointFormat) return false;
    // Language models are model files too ({"kind": "lm"}, train/checkpoint.h).
    const auto task = rd.metadata().find("task");
    if (task == rd.metadata().end()) return true;  // load_task_checkpoint reports what is missing
    JsonFields f(std::string_view(task->second), path);
    return !f.has("kind") || !f.raw("kind").is_string() || f.raw("kind").get<std::string>() != "lm";
  } catch (const Error&) {
    return false;
  }
}

TaskCheckpoint load_task_checkpoint(const std::string& path) {
  ModelFile f = load_model_file(path);
  TaskCheckpoint ck;
  TaskModel& m = ck.model;
  task_from_json(m, f.task, path);
  for (const auto& [name, vocab] : f.vocabs) {
    if (name == "words") m.words = vocab;
    else if (name == "chars") m.chars = vocab;
    else if (name == "targets") m.targets = vocab;
    else throw FormatError(path + ": metadata " + quote_name("vocab." + name) + ": a " + task_kind_name(m.task.kind) +
                           " model has no such vocabulary");
  }
  m.spec = std::move(f.spec);
  m.params = std::move(f.params);
  m.precision = f.precision;
  check_task_structure(m, path);
  ck.train_state = std::move(f.train_state);
  ck.tensors = std::move(f.tensors);
  return ck;
}

std::vector<std::string> tag_output_strings(const TaskModel& m, const std::vector<int32_t>& ids) {
  std::vector<std::string> tags;
  tags.reserve(ids.size());
  for (int32_t id : ids) tags.push_back(m.labels.at(size_t(id)));
  if (m.task.converts_tags()) tags = convert_tags(tags, m.task.train_scheme, m.task.file_scheme);
  return tags;
}

void resolve_tag_schemes(TaskSpec& task, std::string_view requested, const std::vector<RawExample>& train,
                         const std::vector<std::vector<RawExample>*>& files) {
  if (task.kind != TaskKind::tag) return;
  std::vector<std::vector<std::string>> tags;
  tags.reserve(train.size());
  for (const auto& e : train) tags.push_back(e.output);
  choose_tag_schemes(task, requested, detect_tag_scheme(tags));
  if (!task.converts_tags()) return;
  for (auto* f : files)
    for (auto& e : *f)
      if (!e.output.empty()) e.output = convert_tags(e.output, task.file_scheme, task.train_scheme);
}

void choose_tag_schemes(TaskSpec& task, std::string_view requested, TagScheme detected) {
  if (requested != "auto" && requested != "iob1" && requested != "bio" && requested != "bioes")
    throw Error("--tag-scheme " + std::string(requested) + ": expected auto, iob1, bio or bioes");
  task.file_scheme = detected;
  if (task.file_scheme == TagScheme::none) {
    if (requested != "auto")
      throw Error("--tag-scheme " + std::string(requested) +
                  ": the training file's tags are not chunk tags (O, B-X, I-X, E-X, S-X), so they have no scheme");
    task.train_scheme = TagScheme::none;
    return;
  }
  task.train_scheme = requested != "auto" ? parse_tag_scheme(requested)
                      : task.crf          ? TagScheme::bioes  // the CRF's best (BENCHMARKS.md)
                                          : task.file_scheme;
}

std::string tagged_text(const TaskModel& model, const std::vector<RawExample>& raw,
                        const std::vector<std::vector<int32_t>>& pred) {
  std::string text;
  bool after_sentence = false;  // the next blank line is the one ending the sentence just written
  const auto others = [&](const std::vector<std::string>& lines) {
    for (const std::string& l : lines) {
      const bool blank = l.find_first_not_of(" \t\r") == std::string::npos;
      if (blank && after_sentence) {
        after_sentence = false;
        continue;
      }
      text += blank ? "\n" : l + " O\n";
      after_sentence = false;
    }
  };
  for (size_t i = 0; i < raw.size() && i < pred.size(); ++i) {
    others(raw[i].before);
    const std::vector<std::string> tags = tag_output_strings(model, pred[i]);
    for (size_t t = 0; t < tags.size(); ++t) {
      const std::string& line = model.task.features || t >= raw[i].lines.size() ? std::string() : raw[i].lines[t];
      if (!line.empty()) text += line + " ";
      text += tags[t] + "\n";
    }
    text += "\n";
    after_sentence = true;
    others(raw[i].after);
  }
  return text;
}

}  // namespace recur
