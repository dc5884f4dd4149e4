// The language model as a TrainTask (train/loop.h): text in stream mode (truncated BPTT, the
// state carried between chunks) or lines mode, or a token corpus (music). This is the one file
// that calls the language model's code: lm_init_params, lm_forward_backward, evaluate_text,
// lm_layer_diagnostics, load/save_checkpoint.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <optional>

#include "json_fields.h"
#include "lm_batch.h"
#include "recur/data/prepared.h"
#include <filesystem>
#include "recur/diag/diagnostics.h"
#include "recur/tasks/lm_text.h"
#include "recur/tasks/tasks.h"
#include "train_tasks.h"

namespace recur::detail {

namespace fs = std::filesystem;

namespace {

std::string check_same(const char* flag, const std::string& mine, const std::string& saved, const std::string& ck) {
  if (mine == saved) return {};
  return flag + std::string(" ") + mine + " does not match the checkpoint's " + saved + " (" + ck +
         "); a resumed run keeps the model and data layout";
}

LmSpec spec_of(const TrainOptions& o, int64_t vocab) {
  LmSpec spec;
  spec.level = o.level;
  spec.mode = o.mode;
  spec.lm.vocab_size = vocab;
  spec.lm.embed_size = o.embed >= 0 ? o.embed : (o.level == TokenLevel::words ? o.hidden : 0);
  spec.lm.dropout = o.dropout;
  spec.lm.tie_weights = o.tie_weights;
  RnnConfig& rc = spec.lm.rnn;
  rc.cell = o.cell;
  rc.gru_reset = o.gru_reset;
  rc.input_size = spec.lm.input_size();
  rc.hidden_size = o.hidden;
  rc.proj_size = o.proj;
  rc.num_layers = o.layers;
  rc.peephole = o.peephole;
  rc.dropout = o.dropout;
  spec.validate();
  return spec;
}

// A resumed run may change training choices but not the model's shape or the data layout.
// fine_tuned: the run started from --init-from, whose model's shape was never its options' (its
// shape flags were refused), so only the data layout and the batch are compared.
void check_resumed_spec(const LmSpec& spec, const LmSpec& s, int64_t batch, int64_t saved_batch, const std::string& p,
                        bool fine_tuned) {
  std::string err;
  auto chk = [&](const char* flag, const std::string& mine, const std::string& saved) {
    if (err.empty()) err = check_same(flag, mine, saved, p);
  };
  const RnnConfig& rc = spec.lm.rnn;
  chk("--mode", text_mode_name(spec.mode), text_mode_name(s.mode));
  if (fine_tuned) {
    chk("--batch", std::to_string(batch), std::to_string(saved_batch));
    if (!err.empty()) throw Error(err);
    return;
  }
  chk("--level", token_level_name(spec.level), token_level_name(s.level));
  chk("--cell", std::string(cell_name(rc.cell)), std::string(cell_name(s.lm.rnn.cell)));
  if (rc.cell == CellType::gru)
    chk("--gru-reset", std::string(gru_reset_name(rc.gru_reset)), std::string(gru_reset_name(s.lm.rnn.gru_reset)));
  chk("--layers", std::to_string(rc.num_layers), std::to_string(s.lm.rnn.num_layers));
  chk("--hidden", std::to_string(rc.hidden_size), std::to_string(s.lm.rnn.hidden_size));
  chk("--embed", std::to_string(spec.lm.embed_size), std::to_string(s.lm.embed_size));
  chk("--proj", std::to_string(rc.proj_size), std::to_string(s.lm.rnn.proj_size));
  chk("--peephole", rc.peephole ? "on" : "off", s.lm.rnn.peephole ? "on" : "off");
  chk("--tie-weights", spec.lm.tie_weights ? "on" : "off", s.lm.tie_weights ? "on" : "off");
  chk("--batch", std::to_string(batch), std::to_string(saved_batch));
  if (!err.empty()) throw Error(err);
}

class LmTask final : public TrainTask {
 public:
  LmTask(const TrainOptions& o, const TokenCorpus* corpus, ResumeState* resume, const NoteFn& note) : o_(o) {
    Checkpoint ck;
    if (!o.resume_path.empty()) {
      ck = load_checkpoint(o.resume_path);
      if (ck.train_state.empty())
        throw FormatError(o.resume_path + ": metadata \"train_state\": missing; this model cannot be resumed");
      resume->train_state = ck.train_state;
      resume->tensors = std::move(ck.tensors);
      saved_batch_ = train_progress_from_json(ck.train_state, o.resume_path).options.batch;
      if (!o.init_from.empty()) o_.level = ck.model.spec.level;  // a fine-tuned run: the level is its model's
    }
    if (!o.init_from.empty() && o.resume_path.empty()) {
      // Fine-tuning: the model, vocabulary and token level are the checkpoint's; the data are read
      // at its level (a --level that differs is refused rather than silently overridden).
      if (is_task_checkpoint(o.init_from))
        throw Error("--init-from " + o.init_from + ": a task model; --task " + o.task + " needs a language model");
      ck = load_checkpoint(o.init_from);
      init_ = true;
      const TokenLevel level = ck.model.spec.level;
      if (o.given.count("--level") && o.level != level)
        throw Error("--level " + std::string(token_level_name(o.level)) + ": not with --init-from " + o.init_from +
                    ", a model of " + token_level_name(level) + "; the level comes from that model");
      o_.level = level;
    }
    read_data(corpus, note);
    build_model(corpus, ck, note);
    check_eval_corpora();
    make_batches();
    graph_ = model_.graph();
    grads_ = model_zero_grads<float>(graph_);
    // Sparse embedding gradients (model.h), dense once they are summed over ranks (set_shard).
    refs_ = model_param_refs_sparse(graph_, model_.params, grads_);
    final_refs_ = final_refs_after_layer(graph_, refs_);
    if (train_oov_.oov > 0 || (o.level == TokenLevel::words && train_oov_.unk > 0))
      note("training data: " + train_oov_.summary());
    note_precision(graph_, o_, o_.seq_len, o_.mode == TextMode::lines, note);
  }

  std::vector<ParamRef<float>> params() override { return refs_; }
  int64_t batches_per_epoch() const override {
    return stream_ ? stream_->batches_per_epoch() : lines_->batches_per_epoch();
  }
  int64_t epoch() const override { return stream_ ? stream_->epoch() : lines_->epoch(); }
  bool next_batch() override {
    const bool ok = stream_ ? stream_->next(batch_) : lines_->next(batch_);
    // A new pass over the text starts from zeros, as in PyTorch's word_language_model.
    if (!ok) carry_ = RnnState<float>();
    return ok;
  }
  void zero_grads() override {
    if (ranks_ > 1) grads_.zero();  // the sum over ranks filled rows backward did not list
    else model_zero_touched(graph_, grads_);
  }
  void set_shard(int rank, int size) override {
    if (o_.batch < size)
      throw Error("--batch " + std::to_string(o_.batch) + " is smaller than the " + std::to_string(size) +
                  " ranks; expected at least one " + (o_.mode == TextMode::stream ? "stream" : "line") + " per rank");
    rank_ = rank;
    ranks_ = size;
  }
  int64_t batch_targets() override {
    cur_ = &batch_;
    if (ranks_ > 1) {
      const Shard sh = shard_of(batch_.batch(), rank_, ranks_);
      mine_ = batch_columns(batch_, sh.begin, sh.end);
      cur_ = &mine_;
    }
    return cur_->tokens();
  }
  StepResult forward_backward(Rng& dropout, int64_t total_targets, const GradsReadyFn& ready) override {
    if (total_targets <= 0) throw Error("internal: a training batch without target tokens");
    // Stream chunks are slices of one text, not examples: only lines mode counts examples.
    const int64_t examples = o_.mode == TextMode::lines ? cur_->batch() : 0;
    if (cur_->tokens() == 0) return {LossSum{}, examples};  // the short last batch left this rank none
    RnnState<float> fresh;
    RnnState<float>& state = o_.mode == TextMode::stream ? carry_ : fresh;
    const LossSum ls = lm_forward_backward<float>(graph_, model_.params, lm_batch_of(*cur_, o_.mode), state,
                                                  {.training = true, .rng = &dropout, .precision = o_.precision, .wanted = {}}, cache_, &grads_,
                                                  1.0 / double(total_targets), layer_done_for(ready, final_refs_));
    return {ls, examples};
  }
  // Stream mode: each rank carries the state of its own streams; a checkpoint holds all of them,
  // so a resume with any rank count takes its streams' rows back out.
  void gather_for_checkpoint(const Communicator& comm) override {
    if (ranks_ == 1 || o_.mode != TextMode::stream) return;
    full_carry_ = RnnState<float>();
    const bool have = !carry_.h.empty();
    double any = have ? 1.0 : 0.0;
    comm.allreduce_max(std::span<double>(&any, 1));
    if (any == 0) return;
    if (!have) throw Error("internal: ranks disagree on whether a state is carried");
    full_carry_.h = gather_rows(comm, carry_.h);
    if (!carry_.c.empty()) full_carry_.c = gather_rows(comm, carry_.c);
  }
  bool has_split(EvalSplit s) const override {
    return s == EvalSplit::valid ? !valid_text_.empty() || valid_prepared_ : !test_text_.empty() || test_prepared_;
  }
  EvalSummary evaluate(EvalSplit s, const std::string& weights_path) override {
    const bool test = s == EvalSplit::test;
    const LmModel m = weights_path.empty() ? LmModel() : load_checkpoint(weights_path).model;
    const LmModel& model = weights_path.empty() ? model_ : m;
    const EvalOptions eo{.batch = o_.eval_batch, .seq_len = o_.seq_len};
    const PreparedCorpus* prepared = (test ? test_prepared_ : valid_prepared_).get();
    const EvalResult er = prepared ? evaluate_prepared(model, *prepared, eo)
                                   : evaluate_text(model, test ? test_text_ : valid_text_, eo,
                                                   test ? o_.test_path : valid_origin_);
    return {.loss = er.loss, .examples = 0, .metric = std::nan(""), .metric_name = "", .higher_is_better = false};
  }
  bool loss_per_char() const override { return model_.spec.level == TokenLevel::chars; }
  std::string state_json() const override {
    nlohmann::ordered_json j = {{"data_path", o_.data_path},
                                {"data_bytes", data_bytes_},
                                {"batcher", nlohmann::ordered_json::parse(stream_ ? stream_->state_json()
                                                                                   : lines_->state_json())}};
    return j.dump();
  }
  void set_state_json(const std::string& json, const std::string& origin) override {
    JsonFields f(std::string_view(json), origin);
    const std::string path = f.string("data_path");
    const int64_t bytes = f.integer("data_bytes", 0);
    const auto& b = f.raw("batcher");
    if (!b.is_object()) f.fail("batcher", "an object");
    f.finish();
    if (bytes != data_bytes_)
      throw Error(o_.data_path + ": " + std::to_string(data_bytes_) + " bytes, but " + o_.resume_path +
                  " was trained on " + std::to_string(bytes) + " bytes of " + path +
                  "; resuming needs the same training data");
    if (stream_) stream_->set_state_json(b.dump(), origin + ": \"batcher\"");
    else lines_->set_state_json(b.dump(), origin + ": \"batcher\"");
  }
  void write_checkpoint(const std::string& path, const std::string& train_state,
                        std::map<std::string, Tensor<float>> tensors) override {
    Checkpoint c;
    c.model = model_;
    c.train_state = train_state;
    c.tensors = std::move(tensors);
    const RnnState<float>& carry = ranks_ > 1 ? full_carry_ : carry_;
    if (o_.mode == TextMode::stream && !carry.h.empty()) {
      c.tensors["train.state.h"] = carry.h;
      if (!carry.c.empty()) c.tensors["train.state.c"] = carry.c;
    }
    save_checkpoint(path, c);
  }
  void restore_tensors(std::map<std::string, Tensor<float>>& t, const std::string& origin) override {
    const LmConfig& cfg = model_.spec.lm;
    if (o_.mode != TextMode::stream || !t.count("train.state.h")) return;
    const int64_t LD = cfg.rnn.num_layers, B = o_.batch;
    carry_.h = std::move(t["train.state.h"]);
    check_shape(origin + ": tensor 'train.state.h'", carry_.h.shape, {LD, B, cfg.rnn.state_size()});
    t.erase("train.state.h");
    if (!cfg.rnn.has_cell_state()) return;
    auto it = t.find("train.state.c");
    if (it == t.end()) throw FormatError(origin + ": missing tensor 'train.state.c'");
    carry_.c = std::move(it->second);
    check_shape(origin + ": tensor 'train.state.c'", carry_.c.shape, {LD, B, cfg.rnn.hidden_size});
    t.erase(it);
    if (ranks_ > 1) {  // this rank's streams only
      const Shard sh = shard_of(B, rank_, ranks_);
      carry_.h = rows_of_state(carry_.h, sh);
      carry_.c = rows_of_state(carry_.c, sh);
    }
  }
  std::string diagnostics_json(const DiagContext& c) override {
    const StepDiagnostics d{.step = c.step, .epoch = c.epoch, .grad_norm = c.grad_norm,
                            .grad_norm_clipped = c.grad_norm_clipped, .clipped = c.clipped, .clip_rate = c.clip_rate,
                            .layers = lm_layer_diagnostics(graph_, model_.params, cache_)};
    return recur::diagnostics_json(d);
  }

 private:
  // A prepared corpus (prepared.h) stays on disk: its ids are read a batch at a time. It is not
  // split (its lines were never held together), so validation comes from --valid only.
  bool read_prepared(const NoteFn& note) {
    const TrainOptions& o = o_;
    if (!is_prepared_corpus(o.data_path)) return false;
    prepared_ = std::make_unique<PreparedCorpus>(o.data_path);
    data_bytes_ = prepared_->manifest().source_bytes;
    if (!o.valid_path.empty()) read_eval_split(o.valid_path, valid_text_, valid_prepared_);
    else if (o.valid_fraction > 0 || o.valid_fraction == kValidFractionAuto)
      note(o.data_path + " is a prepared corpus, which is not split: training without validation (pass --valid FILE)");
    if (!o.test_path.empty()) read_eval_split(o.test_path, test_text_, test_prepared_);
    return true;
  }

  // --valid / --test: a text file, or a corpus prepared with the training vocabulary (`recur
  // prepare --vocab`), which stays on disk like the training corpus.
  void read_eval_split(const std::string& path, std::string& text, std::unique_ptr<PreparedCorpus>& prepared) {
    if (is_prepared_corpus(path)) prepared = std::make_unique<PreparedCorpus>(path);
    else text = read_text_file(path);
    if (&text == &valid_text_) valid_origin_ = path;
  }

  // A prepared validation or test corpus must hold the model's ids: checked before the first
  // step, not after the first epoch.
  void check_eval_corpora() const {
    for (const PreparedCorpus* c : {valid_prepared_.get(), test_prepared_.get()}) {
      if (!c) continue;
      const PreparedManifest& m = c->manifest();
      if (m.level != model_.spec.level || m.mode != model_.spec.mode)
        throw Error(c->dir() + ": prepared as " + token_level_name(m.level) + "/" + text_mode_name(m.mode) +
                    ", but this run trains " + token_level_name(model_.spec.level) + "/" +
                    text_mode_name(model_.spec.mode) + "; prepare it with the same --level and --mode");
      if (!(c->vocab() == model_.vocab))
        throw Error(c->dir() + "/vocab.json: " + std::to_string(c->vocab().size()) + " tokens (hash " +
                    vocab_hash_hex(c->vocab()) + ") differ from the training vocabulary (" +
                    std::to_string(model_.vocab.size()) + " tokens, hash " + vocab_hash_hex(model_.vocab) +
                    "); prepare it with --vocab of the training corpus");
    }
  }

  void read_data(const TokenCorpus* corpus, const NoteFn& note) {
    if (!corpus && read_prepared(note)) return;
    if (corpus && !corpus->prepared.empty()) {  // music prepared on disk: its splits are prepared corpora
      const std::string dir = corpus->prepared;
      prepared_ = std::make_unique<PreparedCorpus>((fs::path(dir) / "train").string());
      data_bytes_ = prepared_->manifest().source_bytes;
      if (fs::exists(fs::path(dir) / "valid")) valid_prepared_ = std::make_unique<PreparedCorpus>((fs::path(dir) / "valid").string());
      if (fs::exists(fs::path(dir) / "test")) test_prepared_ = std::make_unique<PreparedCorpus>((fs::path(dir) / "test").string());
      valid_origin_ = dir + " (validation pieces)";
      return;
    }
    const TrainOptions& o = o_;
    const std::string text = corpus ? corpus->train : read_text_file(o.data_path);
    data_bytes_ = int64_t(text.size());
    if (corpus) {  // already split by its maker
      train_text_ = corpus->train;
      valid_text_ = corpus->valid;
      test_text_ = corpus->test;
      valid_origin_ = o.data_path + " (validation pieces)";
    } else if (!o.valid_path.empty()) {
      read_eval_split(o.valid_path, valid_text_, valid_prepared_);
      train_text_ = text;
    } else if (valid_fraction_for(o.valid_fraction, 0, false) > 0 && split_lines(text).size() >= 2) {
      // Stream data keeps running text intact (the last lines, as char-rnn does); lines are
      // independent examples, so a random sample is the fairer hold-out.
      TextSplit sp = holdout_split(text, {.fraction = valid_fraction_for(o.valid_fraction, 0, false),
                                         .seed = o.seed ^ kHoldoutSeed,
                                         .contiguous = o.mode == TextMode::stream});
      train_text_ = std::move(sp.train);
      valid_text_ = std::move(sp.valid);
      valid_origin_ = o.data_path + " (held-out " + std::to_string(sp.valid_lines) + " lines)";
    } else {
      train_text_ = text;
      if (valid_fraction_for(o.valid_fraction, 0, false) > 0) note(o.data_path + " has a single line: training without validation");
    }
    // Read now, so a bad test file fails before hours of training rather than after.
    if (!corpus && !o.test_path.empty()) read_eval_split(o.test_path, test_text_, test_prepared_);
  }

  // --extend-vocab: the training text's tokens the model lacks join its vocabulary after the old
  // ones (Vocab::extended, chosen by --min-count and --max-vocab), with embedding and decoder
  // rows drawn as a new model's (model_grow_tokens, model_grow_head). A one-hot input's width is
  // the first layer's input size, and a prepared corpus's ids are of its own vocabulary: refused.
  void extend_vocab(const NoteFn& note) {
    const TrainOptions& o = o_;
    if (prepared_)
      throw Error("--extend-vocab: not with the prepared corpus " + prepared_->dir() +
                  "; its ids are of the vocabulary it was prepared with; give the text itself");
    if (model_.spec.lm.embed_size == 0)
      throw Error("--extend-vocab: " + o.init_from + " reads one-hot rows (trained with --embed 0), whose width is " +
                  "its first layer's input size; its vocabulary cannot grow");
    TokenCounter counts(model_.spec.level);
    count_tokens(counts, train_text_, o.mode, o.data_path);
    const int64_t before = model_.vocab.size();
    model_.vocab = model_.vocab.extended(counts, {o.max_vocab, o.min_count});
    ModelSpec graph = model_.graph();
    Rng rng(o.seed ^ kGrowSeed);
    model_grow_tokens(graph, model_.params, "ids", model_.vocab.size(), rng);  // a tied decoder grows with it
    if (!model_.spec.lm.tie_weights) model_grow_head(graph, model_.params, "decoder", model_.vocab.size(), rng);
    model_.spec.lm.vocab_size = model_.vocab.size();
    note("--extend-vocab: " + std::to_string(model_.vocab.size() - before) + " new " + token_level_name(model_.spec.level) +
         " from " + o.data_path);
  }

  void build_model(const TokenCorpus* corpus, Checkpoint& ck, const NoteFn& note) {
    const TrainOptions& o = o_;
    const bool resuming = !o.resume_path.empty();
    if (init_) {
      // The checkpoint's model as it is, with a fresh optimizer; its vocabulary is kept, so new
      // words read as <unk> (counted in the note on the training data's unknown tokens).
      const std::string task = corpus ? corpus->task : "";
      if (task.empty() != ck.model.task.empty() ||
          (!task.empty() && nlohmann::json::parse(task) != nlohmann::json::parse(ck.model.task)))
        throw Error("--init-from " + o.init_from + ": trained with task " + (ck.model.task.empty() ? "lm" : ck.model.task) +
                    ", but this run's data is " + (task.empty() ? "text (--task lm)" : task) +
                    "; fine-tuning keeps the model's tokens");
      if (corpus && !(corpus->vocab == ck.model.vocab))
        throw Error("--init-from " + o.init_from + ": its " + std::to_string(ck.model.vocab.size()) +
                    " tokens differ from this corpus's " + std::to_string(corpus->vocab.size()));
      if (prepared_ && !(prepared_->vocab() == ck.model.vocab))
        throw Error(prepared_->dir() + "/vocab.json: " + std::to_string(prepared_->vocab().size()) + " tokens (hash " +
                    vocab_hash_hex(prepared_->vocab()) + ") differ from the vocabulary of " + o.init_from + " (" +
                    std::to_string(ck.model.vocab.size()) + " tokens, hash " + vocab_hash_hex(ck.model.vocab) +
                    "); prepare the corpus with --vocab of that model");
      model_ = std::move(ck.model);
      const LmSpec spec = spec_of(o, model_.vocab.size());
      model_.spec.mode = o.mode;
      model_.spec.lm.dropout = spec.lm.dropout;  // training choices, not shapes
      model_.spec.lm.rnn.dropout = model_.spec.lm.rnn.num_layers > 1 ? spec.lm.rnn.dropout : 0.0;
      if (o.extend_vocab) extend_vocab(note);
      note("initialised from " + o.init_from + " (its architecture, vocabulary of " + std::to_string(model_.vocab.size()) +
           " " + token_level_name(model_.spec.level) + (o.extend_vocab ? " grown by the new text's" : "") +
           " and weights; a fresh optimizer)");
      return;
    }
    if (resuming) {
      model_ = std::move(ck.model);
      // Compared as JSON values: a loaded record comes back with its keys in another order.
      if (corpus && (corpus->task.empty() || model_.task.empty()
                         ? corpus->task != model_.task
                         : nlohmann::json::parse(corpus->task) != nlohmann::json::parse(model_.task)))
        throw Error(o.resume_path + ": trained with task " + (model_.task.empty() ? "lm" : model_.task) +
                    ", but this run's data is " + corpus->task + "; a resumed run keeps the data layout");
      if (prepared_ && !(model_.vocab == prepared_->vocab()))
        throw Error(prepared_->dir() + "/vocab.json: " + std::to_string(prepared_->vocab().size()) +
                    " tokens (hash " + vocab_hash_hex(prepared_->vocab()) + ") differ from the vocabulary of " +
                    o.resume_path + " (" + std::to_string(model_.vocab.size()) + " tokens, hash " +
                    vocab_hash_hex(model_.vocab) + "); resuming needs the corpus the run was trained on");
    } else if (corpus) {
      model_.vocab = corpus->vocab;
      model_.task = corpus->task;
    } else if (prepared_) {
      model_.vocab = prepared_->vocab();
    } else {
      model_.vocab = build_vocab(train_text_, o.level, o.mode, {o.max_vocab, o.min_count}, o.data_path);
      if (model_.vocab.size() <= Vocab::num_special)
        throw Error(o.data_path + ": no tokens to learn; expected text with at least one " +
                    (o.level == TokenLevel::words ? "word" : "character"));
    }
    const LmSpec spec = spec_of(o, model_.vocab.size());
    if (resuming) {
      check_resumed_spec(spec, model_.spec, o.batch, saved_batch_, o.resume_path, !o.init_from.empty());
      // Dropout is a training choice, not a shape: a resumed run may change it.
      model_.spec.lm.dropout = spec.lm.dropout;
      model_.spec.lm.rnn.dropout = spec.lm.rnn.dropout;
    } else {
      model_.spec = spec;
      Rng init_rng(o.seed);
      model_.params = lm_init_params<float>(spec.lm, init_rng, o.init_scale);
      note("vocabulary: " + std::to_string(model_.vocab.size()) + " " + token_level_name(o.level) + "; " +
           std::to_string(lm_param_count(model_.spec)) + " parameters; " + lm_spec_summary(model_.spec));
    }
  }

  void make_batches() {
    const TrainOptions& o = o_;
    try {
      if (prepared_ && o.mode == TextMode::stream)
        stream_.emplace(prepared_->tokens(), StreamOptions{.batch_size = o.batch, .seq_len = o.seq_len, .drop_last = false});
      else if (prepared_)
        lines_.emplace(prepared_->lines(), LinesOptions{.batch_size = o.batch, .shuffle = true, .seed = o.seed ^ kOrderSeed});
      else if (o.mode == TextMode::stream)
        stream_.emplace(encode_stream(model_.vocab, train_text_, &train_oov_, o.data_path),
                        StreamOptions{.batch_size = o.batch, .seq_len = o.seq_len, .drop_last = false});
      else
        lines_.emplace(encode_lines(model_.vocab, train_text_, &train_oov_, o.data_path),
                       LinesOptions{.batch_size = o.batch, .shuffle = true, .seed = o.seed ^ kOrderSeed});
    } catch (const FormatError&) {
      throw;
    } catch (const Error& e) {
      throw Error(o.data_path + ": too little training data for --batch " + std::to_string(o.batch) + ": " + e.what());
    }
  }

  // [K, B, X] -> [K, end - begin, X]: the batch rows of a carried state.
  static Tensor<float> rows_of_state(const Tensor<float>& s, Shard sh) {
    if (s.empty()) return s;
    const int64_t K = s.dim(0), B = s.dim(1), X = s.dim(2), n = sh.size();
    Tensor<float> out({K, n, X});
    for (int64_t k = 0; k < K; ++k)
      std::copy_n(s.ptr() + (k * B + sh.begin) * X, n * X, out.ptr() + k * n * X);
    return out;
  }
  // The inverse over all ranks: every rank's [K, b_r, X] -> [K, B, X].
  Tensor<float> gather_rows(const Communicator& comm, const Tensor<float>& mine) const {
    const int64_t K = mine.dim(0), X = mine.dim(2), B = o_.batch;
    const std::vector<float> all = comm.allgatherv(std::span<const float>(mine.data));
    if (int64_t(all.size()) != K * B * X) throw Error("internal: gathered carried state has the wrong size");
    Tensor<float> out({K, B, X});
    int64_t off = 0;
    for (int r = 0; r < ranks_; ++r) {
      const Shard sh = shard_of(B, r, ranks_);
      for (int64_t k = 0; k < K; ++k) {
        std::copy_n(all.data() + off, sh.size() * X, out.ptr() + (k * B + sh.begin) * X);
        off += sh.size() * X;
      }
    }
    return out;
  }

  TrainOptions o_;
  bool init_ = false;  // --init-from: build_model takes the checkpoint's model
  int rank_ = 0, ranks_ = 1;  // data parallelism: this process's rows of every batch
  TextBatch mine_;            // [T, b] this rank's columns of batch_ (several ranks)
  const TextBatch* cur_ = &batch_;  // what forward_backward trains on: batch_ or mine_
  RnnState<float> full_carry_;  // stream mode, several ranks: every rank's carried state, for checkpoints
  std::string train_text_, valid_text_, test_text_, valid_origin_;
  std::unique_ptr<PreparedCorpus> prepared_;  // DATA is a prepared corpus: read from disk, train_text_ unused
  std::unique_ptr<PreparedCorpus> valid_prepared_, test_prepared_;  // --valid / --test prepared corpora
  int64_t data_bytes_ = 0, saved_batch_ = 0;
  LmModel model_;
  std::optional<StreamBatcher> stream_;
  std::optional<LinesBatcher> lines_;
  OovStats train_oov_;
  TextBatch batch_;
  RnnState<float> carry_;  // stream mode: the state handed from one chunk to the next
  ModelSpec graph_;  // the model as a layer graph (lm_model_spec), its parameters in model_.params
  ModelGrads<float> grads_;
  ModelCache<float> cache_;
  std::vector<ParamRef<float>> refs_;
  std::vector<size_t> final_refs_;  // final_refs_after_layer(graph_, refs_)
};

}  // namespace

std::unique_ptr<TrainTask> make_lm_task(const TrainOptions& opts, const TokenCorpus* corpus, ResumeState* resume,
                                        const NoteFn& note) {
  return std::make_unique<LmTask>(opts, corpus, resume, note);
}

}  // namespace recur::detail
