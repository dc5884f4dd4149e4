// The task models (classify, tag, seq2seq, generate; tasks.h) as a TrainTask (train/loop.h):
// shuffled, length-bucketed padded batches of whole examples, validation with the task's metric.
#include <algorithm>
#include <cmath>
#include <cstdio>

#include "json_fields.h"
#include "quote.h"
#include "recur/diag/diagnostics.h"
#include "recur/tasks/prepared_task.h"
#include "recur/tasks/tasks.h"
#include "task_records.h"
#include "train_tasks.h"

namespace recur::detail {

namespace {

// The batches of one epoch: a seeded shuffle, then examples of similar length grouped into the
// same batch (less padding) within windows of 50 batches, then the batches shuffled again.
// `len(i)`: example i's max(input steps, target tokens). The text path and a prepared corpus give
// the same lengths, so the same batches.
template <typename Len>
std::vector<std::vector<int64_t>> epoch_batches(int64_t n, Len&& len, int64_t batch, uint64_t seed, int64_t epoch) {
  Rng rng(seed ^ kOrderSeed ^ (uint64_t(epoch) * 0x9e3779b97f4a7c15ULL));
  std::vector<int64_t> idx(static_cast<size_t>(n));
  for (size_t i = 0; i < idx.size(); ++i) idx[i] = int64_t(i);
  for (size_t i = idx.size(); i > 1; --i) std::swap(idx[i - 1], idx[size_t(rng.below(i))]);
  const size_t window = size_t(batch) * 50;
  for (size_t s = 0; s < idx.size(); s += window) {
    const auto e = idx.begin() + int64_t(std::min(idx.size(), s + window));
    std::stable_sort(idx.begin() + int64_t(s), e, [&](int64_t a, int64_t b) { return len(a) < len(b); });
  }
  std::vector<std::vector<int64_t>> out;
  for (size_t s = 0; s < idx.size(); s += size_t(batch))
    out.emplace_back(idx.begin() + int64_t(s), idx.begin() + int64_t(std::min(idx.size(), s + size_t(batch))));
  for (size_t i = out.size(); i > 1; --i) std::swap(out[i - 1], out[size_t(rng.below(i))]);
  return out;
}

TaskSpec task_spec_of(const TrainOptions& o) {
  TaskSpec t;
  t.kind = parse_task_kind(o.task);
  t.char_rnn = o.char_rnn;
  t.crf = o.crf;
  t.binary = o.binary;
  t.condition_every_step = o.condition_every_step;
  t.features = o.features;
  t.lowercase = !o.keep_case;
  t.lower_words = o.lower_words;
  auto col = [](int64_t c, const char* flag, bool last_ok) {
    if (c < 0 || (c == 0 && !last_ok))
      throw Error(std::string(flag) + ": got " + std::to_string(c) + ", expected a 1-based column" +
                  (last_ok ? " or 0 (last)" : ""));
    return c == 0 ? int64_t(-1) : c - 1;
  };
  t.table.text_column = col(o.text_column, "--text-column", false);
  t.table.label_column = col(o.label_column, "--label-column", true);
  t.table.header = int(o.header);
  t.conll.token_column = col(o.token_column, "--token-column", false);
  t.conll.tag_column = col(o.tag_column, "--tag-column", true);
  return t;
}

TaskModelOptions model_options_of(const TrainOptions& o) {
  TaskModelOptions m;
  RnnConfig& r = m.rnn;
  r.cell = o.cell;
  r.gru_reset = o.gru_reset;
  r.hidden_size = o.hidden;
  r.num_layers = o.layers;
  r.proj_size = o.proj;
  r.peephole = o.peephole;
  r.bidirectional = o.bidirectional;
  r.dropout = r.num_layers > 1 ? o.dropout : 0.0;
  m.embed = o.embed;
  m.dropout = o.dropout;
  m.char_embed = o.char_embed;
  m.char_hidden = o.char_hidden;
  m.freeze_embeddings = o.freeze_embeddings;
  if (o.attention != "none") m.attention = parse_attention_score(o.attention);
  if (o.pool != "last") m.pool = o.pool == "max" ? PoolMode::max : PoolMode::mean;
  m.input_feed = o.input_feed;
  return m;
}

// A task's validation and test sets are task files, read whole: a prepared corpus given there is
// named as what it is rather than failing as "a directory".
void refuse_prepared_eval_file(const char* flag, const std::string& path) {
  if (!path.empty() && (is_prepared_task_corpus(path) || is_prepared_corpus(path)))
    throw Error(std::string(flag) + " " + path +
                ": a prepared corpus; a task's validation and test sets are task files (CoNLL, TSV/CSV, pairs), read whole");
}

class ModelTask final : public TrainTask {
 public:
  ModelTask(const TrainOptions& o, ResumeState* resume, const NoteFn& note) : o_(o) {
    const bool resuming = !o.resume_path.empty();
    TaskCheckpoint ck;
    if (resuming) {
      ck = load_task_checkpoint(o.resume_path);
      if (ck.train_state.empty())
        throw FormatError(o.resume_path + ": metadata \"train_state\": missing; this model cannot be resumed");
      resume->train_state = ck.train_state;
      resume->tensors = std::move(ck.tensors);
      model_ = std::move(ck.model);
    }
    const bool init = !resuming && !o.init_from.empty();
    if (init) {
      if (!is_task_checkpoint(o.init_from))
        throw Error("--init-from " + o.init_from + ": a language model; --task " + o.task + " needs a " + o.task + " model");
      model_ = load_task_checkpoint(o.init_from).model;
      if (task_kind_name(model_.task.kind) != o.task)
        throw Error("--init-from " + o.init_from + ": a " + task_kind_name(model_.task.kind) + " model; --task " + o.task +
                    " needs a " + o.task + " model");
      // The options refuse --word-dropout with --features; a model fine-tuned here may read numbers.
      if (o.word_dropout > 0 && model_.task.features)
        throw Error("--word-dropout: " + o.init_from + " reads numeric feature sequences; expected a word task on tokens");
    }
    if (is_prepared_task_corpus(o.data_path)) {
      if (init && o.extend_vocab)
        throw Error("--extend-vocab: not with the prepared corpus " + o.data_path +
                    "; give the task file itself, whose new words are counted as it is read");
      read_prepared(resuming || init, note);
    } else {
      read_data(resuming || init);
    }
    if (!resuming && !init) build_model(note);
    if (init && o.extend_vocab) {
      // New words get rows drawn from the run's seed, after everything else the seed draws.
      Rng grow_rng(o.seed ^ kGrowSeed);
      const VocabGrowth g = extend_task_vocab(
          model_, raw_train_, {.max_vocab = o.max_vocab, .min_count = o.min_count, .extra_words = {}}, grow_rng);
      note("--extend-vocab: " + std::to_string(g.words) + " new words" +
           (model_.task.char_rnn ? ", " + std::to_string(g.chars) + " new characters" : std::string()) +
           (model_.task.kind == TaskKind::seq2seq || model_.task.kind == TaskKind::generate
                ? ", " + std::to_string(g.targets) + " new target tokens"
                : std::string()) +
           " from " + o.data_path);
    }
    if (init)
      note("initialised from " + o.init_from + " (its architecture, " +
           (o.extend_vocab ? "vocabularies grown by the new data's tokens" : "vocabularies") +
           " and weights; a fresh optimizer)");
    if (!prepared_) train_ = encode_task_examples(model_, raw_train_, true, o.data_path);
    else check_prepared_labels();
    valid_ = encode_task_examples(model_, raw_valid_, true, valid_origin_);
    test_ = encode_task_examples(model_, raw_test_, true, o.test_path);
    raw_train_.clear();
    raw_valid_.clear();
    raw_test_.clear();
    if (train_size() == 0) throw Error(o.data_path + ": no training examples left after the hold-out");
    if (o.word_dropout > 0) count_training_words(note);
    grads_ = model_zero_grads<float>(model_.spec);
    // Sparse embedding gradients (model.h), dense once they are summed over ranks (set_shard).
    refs_ = model_param_refs_sparse(model_.spec, model_.params, grads_);
    final_refs_ = final_refs_after_layer(model_.spec, refs_);
    batches_ = make_batches();
    if (!resuming)
      note(task_model_summary(model_) + "; " + std::to_string(train_size()) + " training and " +
           std::to_string(valid_.size()) + " validation examples");
    note_precision(model_.spec, o, 1, true, note);
  }

  std::vector<ParamRef<float>> params() override { return refs_; }
  int64_t batches_per_epoch() const override { return int64_t(batches_.size()); }
  int64_t epoch() const override { return epoch_; }
  bool next_batch() override {
    if (batch_in_epoch_ >= int64_t(batches_.size())) {
      ++epoch_;
      batch_in_epoch_ = 0;
      batches_ = make_batches();
      return false;
    }
    batch_idx_ = &batches_[size_t(batch_in_epoch_)];
    ++batch_in_epoch_;
    return true;
  }
  void zero_grads() override {
    if (ranks_ > 1) grads_.zero();  // the sum over ranks filled rows backward did not list
    else model_zero_touched(model_.spec, grads_);
  }
  void set_shard(int rank, int size) override {
    if (o_.batch < size)
      throw Error("--batch " + std::to_string(o_.batch) + " is smaller than the " + std::to_string(size) +
                  " ranks; expected at least one example per rank");
    rank_ = rank;
    ranks_ = size;
  }
  int64_t batch_targets() override {
    // This rank's examples of the global batch: pointers into the examples in memory, or read
    // from the prepared corpus (only this rank's).
    const std::vector<int64_t>& idx = *batch_idx_;
    const Shard sh = shard_of(int64_t(idx.size()), rank_, ranks_);
    ptrs_.clear();
    if (prepared_) {
      std::vector<RawExample> raw;
      for (int64_t k = sh.begin; k < sh.end; ++k) raw.push_back(read_prepared_example(idx[size_t(k)]));
      fetched_ = encode_task_examples(model_, raw, true, o_.data_path);
      for (const TaskExample& e : fetched_) ptrs_.push_back(&e);
    } else {
      for (int64_t k = sh.begin; k < sh.end; ++k) ptrs_.push_back(&train_[size_t(idx[size_t(k)])]);
    }
    mine_ = std::span<const TaskExample* const>(ptrs_);
    if (mine_.empty()) return 0;  // the short last batch left this rank none
    batch_ = make_task_batch(model_, mine_);
    return task_target_count(model_, batch_);
  }
  StepResult forward_backward(Rng& dropout, int64_t total_targets, const GradsReadyFn& ready) override {
    if (mine_.empty()) return {LossSum{}, 0};
    if (!word_counts_.empty()) drop_singleton_words(batch_.inputs.at("words").ids, word_counts_, o_.word_dropout, dropout);
    const LossSum ls = task_forward_backward(model_, batch_, {.training = true, .rng = &dropout, .precision = o_.precision, .wanted = {}}, cache_,
                                             &grads_, total_targets, layer_done_for(ready, final_refs_));
    return {ls, int64_t(mine_.size())};
  }
  bool has_split(EvalSplit s) const override { return s == EvalSplit::valid ? !valid_.empty() : !test_.empty(); }
  EvalSummary evaluate(EvalSplit s, const std::string& weights_path) override {
    const bool test = s == EvalSplit::test;
    // seq2seq validates on the loss (decoding every evaluation would cost more than training);
    // the final test decodes for BLEU.
    const TaskEvalOptions eo{.batch = o_.eval_batch, .decode = {}, .decode_outputs = test};
    const TaskModel m = weights_path.empty() ? TaskModel() : load_task_checkpoint(weights_path).model;
    const TaskEvalResult r = evaluate_task(weights_path.empty() ? model_ : m, test ? test_ : valid_, eo);
    EvalSummary e{.loss = r.loss, .examples = int64_t((test ? test_ : valid_).size()), .metric = r.metric,
                  .metric_name = r.metric_name, .higher_is_better = true};
    // generate (and seq2seq without decoding) select on the loss, shown as ppl, not as -loss.
    if (r.metric_name == "neg_loss") {
      e.metric = std::nan("");
      e.metric_name.clear();
      e.higher_is_better = false;
    }
    return e;
  }
  bool loss_per_char() const override { return model_.task.kind == TaskKind::generate; }
  std::string state_json() const override {
    nlohmann::ordered_json j = {{"epoch", epoch_},
                                {"batch_in_epoch", batch_in_epoch_},
                                {"valid_path", valid_path_},
                                {"train_examples", train_size()}};
    return j.dump();
  }
  void set_state_json(const std::string& json, const std::string& origin) override {
    JsonFields f(std::string_view(json), origin);
    epoch_ = f.integer("epoch", 0);
    batch_in_epoch_ = f.integer("batch_in_epoch", 0);
    const std::string saved_valid = f.string("valid_path");
    const int64_t n = f.integer("train_examples", 0);
    f.finish();
    if (saved_valid != valid_path_)
      throw Error("--valid " + valid_path_ + " does not match the checkpoint's " +
                  (saved_valid.empty() ? std::string("held-out split") : saved_valid) + " (" + o_.resume_path +
                  "); a resumed run keeps its data layout");
    if (n != train_size())
      throw Error(o_.data_path + ": " + std::to_string(train_size()) + " training examples, but " + o_.resume_path +
                  " was trained on " + std::to_string(n) + "; resuming needs the same training data");
    batches_ = make_batches();
    if (batch_in_epoch_ > int64_t(batches_.size())) f.fail("batch_in_epoch", "at most the batches of an epoch");
  }
  void write_checkpoint(const std::string& path, const std::string& train_state,
                        std::map<std::string, Tensor<float>> tensors) override {
    save_task_checkpoint(path, model_, train_state, tensors);  // from the live model, no copy
  }
  void restore_tensors(std::map<std::string, Tensor<float>>&, const std::string&) override {}
  std::string diagnostics_json(const DiagContext& c) override {
    const StepDiagnostics d{.step = c.step, .epoch = c.epoch, .grad_norm = c.grad_norm,
                            .grad_norm_clipped = c.grad_norm_clipped, .clipped = c.clipped, .clip_rate = c.clip_rate,
                            .layers = model_layer_diagnostics(model_.spec, model_.params, batch_.inputs, cache_)};
    return recur::diagnostics_json(d);
  }

 private:
  void read_data(bool resuming) {
    const TrainOptions& o = o_;
    if (is_prepared_corpus(o.data_path))
      throw Error(o.data_path + ": a prepared text corpus (recur prepare without --task); --task " + o.task +
                  " reads a task file or a corpus prepared with recur prepare --task " + o.task);
    const TaskSpec task = resuming ? model_.task : task_spec_of(o);
    refuse_prepared_eval_file("--valid", o.valid_path);
    refuse_prepared_eval_file("--test", o.test_path);
    valid_path_ = o.valid_path;
    // Feature files: F comes from the training file (or the resumed model) and binds the others.
    raw_train_ = read_task_file(task, o.data_path, true, &F_, resuming ? task_features_width(model_) : 0);
    valid_origin_ = valid_path_;
    if (!valid_path_.empty()) {
      raw_valid_ = read_task_file(task, valid_path_, true, nullptr, F_);
    } else if (const double vf = valid_fraction_for(o.valid_fraction, int64_t(raw_train_.size()), true);
               vf > 0 && raw_train_.size() >= 10) {
      // A seeded random hold-out (the same on resume: it depends only on the seed and the file).
      Rng hr(o.seed ^ kHoldoutSeed);
      std::vector<RawExample> keep;
      for (auto& e : raw_train_) (hr.uniform() < vf ? raw_valid_ : keep).push_back(std::move(e));
      raw_train_ = std::move(keep);
      valid_origin_ = o.data_path + " (held-out " + std::to_string(raw_valid_.size()) + " examples)";
    }
    if (!o.test_path.empty()) raw_test_ = read_task_file(task, o.test_path, true, nullptr, F_);
    // A fresh tagger: the files' scheme is detected from the training tags and every file's
    // tags converted into the train scheme; a resumed one read them converted already (its
    // TaskSpec has the schemes).
    if (!resuming && task.kind == TaskKind::tag) {
      tag_task_ = task;
      resolve_tag_schemes(tag_task_, o.tag_scheme, raw_train_, {&raw_train_, &raw_valid_, &raw_test_});
    }
  }

  int64_t train_size() const { return prepared_ ? prepared_->size() : int64_t(train_.size()); }

  // --word-dropout: how often each word id occurs in the training examples (a prepared corpus is
  // read through once for it).
  void count_training_words(const NoteFn& note) {
    const int64_t V = model_.words.size();
    word_counts_.assign(size_t(V), 0);
    if (prepared_) {
      for (int64_t i = 0; i < train_size(); ++i) {
        const std::vector<RawExample> raw{read_prepared_example(i)};
        for (const TaskExample& e : encode_task_examples(model_, raw, true, o_.data_path)) count_words(e, V, word_counts_);
      }
    } else {
      for (const TaskExample& e : train_) count_words(e, V, word_counts_);
    }
    int64_t once = 0;
    for (int64_t id = Vocab::num_special; id < V; ++id) once += word_counts_[size_t(id)] == 1;
    char p[32];
    std::snprintf(p, sizeof p, "%g", o_.word_dropout);
    note("--word-dropout " + std::string(p) + ": " + std::to_string(once) + " words of the vocabulary's " +
         std::to_string(V) + " occur once in the training data; each of their training occurrences is read as <unk> "
         "with that probability");
  }

  std::vector<std::vector<int64_t>> make_batches() const {
    if (prepared_)
      return epoch_batches(prepared_->size(), [&](int64_t i) { return prepared_->length(i); }, o_.batch, o_.seed, epoch_);
    return epoch_batches(
        int64_t(train_.size()),
        [&](int64_t i) { return std::max<int64_t>(train_[size_t(i)].steps, int64_t(train_[size_t(i)].targets.size())); },
        o_.batch, o_.seed, epoch_);
  }

  // Example i of the prepared corpus as read_task_file would give it for this model: tags
  // converted into the model's scheme.
  RawExample read_prepared_example(int64_t i) const {
    RawExample e = prepared_->read(i);
    const TaskSpec& t = model_.task;
    if (t.kind == TaskKind::tag && t.converts_tags()) e.output = convert_tags(e.output, t.file_scheme, t.train_scheme);
    return e;
  }

  // A prepared task corpus (prepared_task.h) stays on disk: a batch's examples are read when it
  // comes. Its task and columns are the manifest's; like a prepared text corpus it is not split,
  // so validation comes from --valid (a task file, read whole).
  void read_prepared(bool resuming, const NoteFn& note) {
    const TrainOptions& o = o_;
    prepared_ = std::make_unique<PreparedTaskCorpus>(o.data_path);
    const PreparedTaskManifest& pm = prepared_->manifest();
    const std::string where = prepared_->manifest_path();
    if (task_kind_name(pm.task.kind) != o.task)
      throw Error("--task " + o.task + " does not match the prepared corpus's task " + task_kind_name(pm.task.kind) +
                  " (" + where + "); prepare the file again with --task " + o.task);
    for (const char* flag : {"--keep-case", "--token-column", "--tag-column", "--text-column", "--label-column", "--header"})
      if (o.given.count(flag))
        throw Error(std::string(flag) + ": the prepared corpus fixes how its file was read (" + where +
                    "); prepare the file again with " + flag + " or leave it out");
    if (o.given.count("--valid-fraction"))
      throw Error("--valid-fraction: a prepared corpus is not split (" + where + "); pass --valid FILE");
    refuse_prepared_eval_file("--valid", o.valid_path);
    refuse_prepared_eval_file("--test", o.test_path);
    TaskSpec task = resuming ? model_.task : task_spec_of(o);
    if (!resuming) {
      task.lowercase = pm.task.lowercase;
      task.conll = pm.task.conll;
      task.table = pm.task.table;
    }
    valid_path_ = o.valid_path;
    valid_origin_ = valid_path_;
    if (!valid_path_.empty()) raw_valid_ = read_task_file(task, valid_path_, true);
    else if (!resuming) note(o.data_path + " is a prepared corpus, which is not split: training without validation (pass --valid FILE)");
    if (!o.test_path.empty()) raw_test_ = read_task_file(task, o.test_path, true);
    if (!resuming && task.kind == TaskKind::tag) {
      // The scheme prepare detected over every sentence is the one the text path detects in the
      // same file's training sentences (all of them: the corpus is not split).
      choose_tag_schemes(task, o.tag_scheme, pm.tag_scheme);
      if (task.converts_tags())
        for (auto* f : {&raw_valid_, &raw_test_})
          for (auto& e : *f)
            if (!e.output.empty()) e.output = convert_tags(e.output, task.file_scheme, task.train_scheme);
    }
    tag_task_ = task;
  }

  // A class the model does not know (a fine-tuned model, --init-from) is an error before the first
  // step, as the file path's encoding makes it, not when its batch comes.
  void check_prepared_labels() const {
    if (model_.task.kind != TaskKind::classify) return;
    for (const std::string& l : prepared_->labels().strings)
      if (model_.label_id(l) < 0)
        throw FormatError(prepared_->manifest_path() + ": label " + quote_name(l) +
                          " was not seen in training; expected one of: " + model_.labels_for_message());
  }

  // A fresh model's vocabularies and labels from the prepared corpus's tables: the counts of the
  // strings the text path would count (tags converted: one pass over the sentences).
  TaskCounts prepared_counts(const TaskSpec& task) const {
    TaskCounts c;
    const TaskTable& in = prepared_->inputs();
    for (size_t i = 0; i < in.strings.size(); ++i) {
      c.words.add_token(task_word(task, in.strings[i]), in.counts[i]);
      if (task.char_rnn)
        for (const std::string& cp : code_points(in.strings[i])) c.chars.add_token(cp, in.counts[i]);
    }
    const TaskTable& out = prepared_->outputs();
    if (task.kind == TaskKind::seq2seq)
      for (size_t i = 0; i < out.strings.size(); ++i) c.targets.add_token(out.strings[i], out.counts[i]);
    if (task.kind == TaskKind::classify) c.labels.insert(prepared_->labels().strings.begin(), prepared_->labels().strings.end());
    if (task.kind == TaskKind::tag) {
      if (!task.converts_tags()) {
        c.labels.insert(out.strings.begin(), out.strings.end());
      } else {
        for (int64_t i = 0; i < prepared_->size(); ++i) {
          const RawExample e = prepared_->read(i);
          for (auto& t : convert_tags(e.output, task.file_scheme, task.train_scheme)) c.labels.insert(std::move(t));
        }
      }
    }
    return c;
  }

  void build_model(const NoteFn& note) {
    const TrainOptions& o = o_;
    Rng init_rng(o.seed);
    TaskModelOptions mo = model_options_of(o);
    if (!o.embeddings_path.empty()) mo.embed = word_vectors_dim(o.embeddings_path);
    TaskSpec task = task_spec_of(o);
    if (task.kind == TaskKind::tag || prepared_) task = tag_task_;  // with the schemes (and columns) read_* resolved
    TaskVocabOptions vo{.max_vocab = o.max_vocab, .min_count = o.min_count, .extra_words = {}};
    if (o.embeddings_vocab) vo.extra_words = word_vectors_words(o.embeddings_path);
    model_ = prepared_ ? build_task_model_from_counts(task, prepared_counts(task), vo, mo, F_, init_rng)
                       : build_task_model(task, raw_train_, vo, mo, F_, init_rng);
    if (o.init_scale > 0) {  // --init-scale: every trainable weight U(-s, s), as for the language model
      Rng r(o.seed);
      model_for_each_param(model_.spec, model_.params, [&](const std::string&, Tensor<float>& t, bool trainable) {
        if (!trainable) return;
        for (float& x : t.data) x = float(r.uniform(-o.init_scale, o.init_scale));
      });
    }
    if (!o.embeddings_path.empty()) {
      const std::string emb = task.kind == TaskKind::seq2seq ? "src_emb" : "emb";
      Tensor<float>& w = model_.params.layers[size_t(model_.spec.layer_index(emb))].weight;
      const int64_t found = load_word_vectors(o.embeddings_path, model_.words, w);
      note(o.embeddings_path + ": vectors for " + std::to_string(found) + " of " +
           std::to_string(model_.words.size() - Vocab::num_special) + " words" +
           (o.freeze_embeddings ? " (frozen)" : " (fine-tuned)"));
    }
  }

  TrainOptions o_;
  TaskModel model_;
  TaskSpec tag_task_;  // a fresh tagger's spec with its tag schemes (read_data)
  int64_t F_ = 0;
  std::string valid_path_, valid_origin_;
  std::vector<RawExample> raw_train_, raw_valid_, raw_test_;
  std::vector<TaskExample> train_, valid_, test_;
  std::vector<int64_t> word_counts_;  // [V] --word-dropout: occurrences in the training examples; empty: off
  std::vector<std::vector<int64_t>> batches_;
  int64_t epoch_ = 0, batch_in_epoch_ = 0;
  std::vector<size_t> final_refs_;  // final_refs_after_layer(model_.spec, refs_)
  std::unique_ptr<PreparedTaskCorpus> prepared_;  // training examples on disk (else train_)
  std::vector<TaskExample> fetched_;               // prepared: this rank's examples of the batch
  const std::vector<int64_t>* batch_idx_ = nullptr;  // the global batch: indices into the training examples
  std::vector<const TaskExample*> ptrs_;  // this rank's examples of the batch
  int rank_ = 0, ranks_ = 1;             // data parallelism: this process's rows of every batch
  std::span<const TaskExample* const> mine_;  // this rank's examples of ptrs_
  TaskBatch batch_;
  ModelGrads<float> grads_;
  ModelCache<float> cache_;
  std::vector<ParamRef<float>> refs_;
};

}  // namespace

std::vector<size_t> final_refs_after_layer(const ModelSpec& spec, const std::vector<ParamRef<float>>& refs) {
  // Parameter names are "<layer>.<tensor>" (model_for_each_param).
  std::vector<size_t> first(spec.layers.size() + 1, 0);
  for (size_t i = 0; i <= spec.layers.size(); ++i)
    for (size_t k = 0; k < refs.size(); ++k) {
      const int64_t layer = spec.layer_index(refs[k].name.substr(0, refs[k].name.find('.')));
      if (layer < 0) throw Error("internal: parameter " + refs[k].name + " names no layer");
      if (size_t(layer) < i) first[i] = k + 1;
    }
  first.pop_back();
  return first;
}

std::unique_ptr<TrainTask> make_model_task(const TrainOptions& opts, ResumeState* resume, const NoteFn& note) {
  return std::make_unique<ModelTask>(opts, resume, note);
}

}  // namespace recur::detail
