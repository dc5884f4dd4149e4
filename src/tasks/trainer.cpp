#include "recur/tasks/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>

#include "json_fields.h"
#include "lm_batch.h"
#include "run_dir.h"
#include "recur/diag/diagnostics.h"
#include "recur/tasks/lm_text.h"

namespace recur {

namespace fs = std::filesystem;

namespace {

// Each random stream gets its own generator, seeded from --seed, so that e.g. changing the
// dropout rate never changes the data order.
constexpr uint64_t kOrderSeed = 0x6f72646572ULL;    // "order"
constexpr uint64_t kDropoutSeed = 0x64726f70ULL;    // "drop"
constexpr uint64_t kHoldoutSeed = 0x686f6c64ULL;    // "hold"

std::string num(double x) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", x);
  return buf;
}

[[noreturn]] void bad(const char* flag, const std::string& got, const char* expected) {
  throw Error(std::string(flag) + ": got " + got + ", expected " + expected);
}
void check_int(const char* flag, int64_t v, int64_t lo, const char* expected) {
  if (v < lo) bad(flag, std::to_string(v), expected);
}
void check_real(const char* flag, double v, double lo, double hi, bool lo_open, bool hi_open, const char* expected) {
  const bool ok = std::isfinite(v) && (lo_open ? v > lo : v >= lo) && (hi_open ? v < hi : v <= hi);
  if (!ok) bad(flag, num(v), expected);
}
constexpr double kInf = std::numeric_limits<double>::infinity();

}  // namespace

void TrainOptions::validate() const {
  if (data_path.empty()) throw Error("DATA: missing; expected a UTF-8 text file to train on");
  if (out_dir.empty()) throw Error("--out: missing; expected the run directory");
  if (bidirectional)
    throw Error(
        "--bidirectional: a language model predicts the next token, so it cannot read the future: --bidirectional is "
        "for tag/classify tasks");
  check_real("--valid-fraction", valid_fraction, 0, 1, false, true, "a fraction in [0, 1)");
  if (max_vocab != 0 && max_vocab < 3) bad("--max-vocab", std::to_string(max_vocab), "0 (unlimited) or >= 3");
  check_int("--min-count", min_count, 1, "an integer >= 1");
  check_int("--layers", layers, 1, "an integer >= 1");
  check_int("--hidden", hidden, 1, "an integer >= 1");
  check_int("--embed", embed, -1, "-1 (auto), 0 (one-hot) or a size >= 1");
  check_int("--proj", proj, 0, "0 (none) or a size >= 1");
  if (proj > 0 && cell != CellType::lstm) bad("--proj", std::to_string(proj), "0 unless --cell lstm");
  if (proj >= hidden && proj > 0) bad("--proj", std::to_string(proj), "a size below --hidden");
  if (peephole && cell != CellType::lstm) bad("--peephole", "true", "only with --cell lstm");
  check_real("--dropout", dropout, 0, 1, false, true, "a probability in [0, 1)");
  check_real("--init-scale", init_scale, 0, kInf, false, true, "0 (PyTorch's default init) or a scale > 0");
  if (optimizer.lr < 0 || !std::isfinite(optimizer.lr)) bad("--lr", num(optimizer.lr), "a learning rate > 0");
  try {
    optimizer.validate();
  } catch (const Error& e) {
    throw Error(std::string("--optimizer settings: ") + e.what());
  }
  check_int("--batch", batch, 1, "an integer >= 1");
  check_int("--seq-len", seq_len, 1, "an integer >= 1");
  check_real("--clip-norm", clip_norm, 0, kInf, false, true, "0 (off) or a norm > 0");
  check_real("--clip-value", clip_value, 0, kInf, false, true, "0 (off) or a value > 0");
  check_real("--lr-decay", lr_decay, 0, 1, true, false, "a factor in (0, 1]");
  check_int("--decay-after", decay_after, 0, "an epoch count >= 0");
  check_real("--plateau-decay", plateau_decay, 0, 1, false, true, "0 (off) or a factor in (0, 1)");
  check_int("--plateau-patience", plateau_patience, 0, "an integer >= 0");
  check_int("--epochs", epochs, 0, "an integer >= 0");
  check_int("--steps", steps, 0, "an integer >= 0");
  check_real("--time", time_limit, 0, kInf, false, true, "seconds >= 0");
  check_int("--valid-every", valid_every, 0, "an integer >= 0");
  check_int("--log-every", log_every, 1, "an integer >= 1");
  check_int("--eval-batch", eval_batch, 1, "an integer >= 1");
  check_int("--diagnostics", diagnostics_every, 0, "0 (off) or a step interval >= 1");
  if (diverge_factor != 0 && !(diverge_factor > 1 && std::isfinite(diverge_factor)))
    bad("--diverge-factor", num(diverge_factor), "0 (off) or a factor > 1");
}

double default_lr(OptimizerType type) {
  switch (type) {
    case OptimizerType::sgd: return 1.0;
    case OptimizerType::adam: return 0.002;
    case OptimizerType::adagrad: return 0.01;
    case OptimizerType::rmsprop: return 0.002;
  }
  return 0.001;
}

std::string train_options_to_json(const TrainOptions& o) {
  const OptimizerConfig& c = o.optimizer;
  nlohmann::ordered_json opt = {{"type", optimizer_name(c.type)}, {"lr", c.lr}, {"weight_decay", c.weight_decay},
                                {"momentum", c.momentum},          {"dampening", c.dampening},
                                {"nesterov", c.nesterov},          {"beta1", c.beta1},
                                {"beta2", c.beta2},                {"adam_eps", c.adam_eps},
                                {"amsgrad", c.amsgrad},            {"lr_decay", c.lr_decay},
                                {"initial_accumulator_value", c.initial_accumulator_value},
                                {"adagrad_eps", c.adagrad_eps},    {"alpha", c.alpha},
                                {"rmsprop_eps", c.rmsprop_eps},    {"centered", c.centered}};
  nlohmann::ordered_json j = {{"data_path", o.data_path},
                              {"valid_path", o.valid_path},
                              {"test_path", o.test_path},
                              {"valid_fraction", o.valid_fraction},
                              {"level", token_level_name(o.level)},
                              {"mode", text_mode_name(o.mode)},
                              {"max_vocab", o.max_vocab},
                              {"min_count", o.min_count},
                              {"cell", cell_name(o.cell)},
                              {"gru_reset", gru_reset_name(o.gru_reset)},
                              {"layers", o.layers},
                              {"hidden", o.hidden},
                              {"embed", o.embed},
                              {"proj", o.proj},
                              {"peephole", o.peephole},
                              {"dropout", o.dropout},
                              {"init_scale", o.init_scale},
                              {"optimizer", opt},
                              {"batch", o.batch},
                              {"seq_len", o.seq_len},
                              {"clip_norm", o.clip_norm},
                              {"clip_value", o.clip_value},
                              {"lr_decay", o.lr_decay},
                              {"decay_after", o.decay_after},
                              {"plateau_decay", o.plateau_decay},
                              {"plateau_patience", o.plateau_patience},
                              {"epochs", o.epochs},
                              {"steps", o.steps},
                              {"time_limit", o.time_limit},
                              {"seed", o.seed},
                              {"valid_every", o.valid_every},
                              {"log_every", o.log_every},
                              {"eval_batch", o.eval_batch},
                              {"diverge_factor", o.diverge_factor}};
  return j.dump();
}

namespace {

TrainOptions options_from_fields(JsonFields& f) {
  TrainOptions o;
  o.data_path = f.string("data_path");
  o.valid_path = f.string("valid_path");
  o.test_path = f.string("test_path");
  o.valid_fraction = f.number("valid_fraction");
  const std::string level = f.string("level");
  if (level != "chars" && level != "words") f.fail("level", "\"chars\" or \"words\"");
  o.level = parse_token_level(level);
  const std::string mode = f.string("mode");
  if (mode != "stream" && mode != "lines") f.fail("mode", "\"stream\" or \"lines\"");
  o.mode = parse_text_mode(mode);
  o.max_vocab = f.integer("max_vocab", 0);
  o.min_count = f.integer("min_count", 1);
  const std::string cell = f.string("cell");
  if (cell != "rnn_tanh" && cell != "rnn_relu" && cell != "gru" && cell != "lstm") f.fail("cell", "a cell name");
  o.cell = parse_cell(cell);
  const std::string reset = f.string("gru_reset");
  if (reset != "after" && reset != "before") f.fail("gru_reset", "\"after\" or \"before\"");
  o.gru_reset = parse_gru_reset(reset);
  o.layers = f.integer("layers", 1);
  o.hidden = f.integer("hidden", 1);
  o.embed = f.integer("embed", -1);
  o.proj = f.integer("proj", 0);
  o.peephole = f.boolean("peephole");
  o.dropout = f.number("dropout");
  o.init_scale = f.number("init_scale");
  {
    JsonFields g = f.object("optimizer");
    OptimizerConfig& c = o.optimizer;
    const std::string type = g.string("type");
    if (type != "sgd" && type != "adam" && type != "adagrad" && type != "rmsprop")
      g.fail("type", "\"sgd\", \"adam\", \"adagrad\" or \"rmsprop\"");
    c.type = parse_optimizer(type);
    c.lr = g.number("lr");
    c.weight_decay = g.number("weight_decay");
    c.momentum = g.number("momentum");
    c.dampening = g.number("dampening");
    c.nesterov = g.boolean("nesterov");
    c.beta1 = g.number("beta1");
    c.beta2 = g.number("beta2");
    c.adam_eps = g.number("adam_eps");
    c.amsgrad = g.boolean("amsgrad");
    c.lr_decay = g.number("lr_decay");
    c.initial_accumulator_value = g.number("initial_accumulator_value");
    c.adagrad_eps = g.number("adagrad_eps");
    c.alpha = g.number("alpha");
    c.rmsprop_eps = g.number("rmsprop_eps");
    c.centered = g.boolean("centered");
    g.finish();
  }
  o.batch = f.integer("batch", 1);
  o.seq_len = f.integer("seq_len", 1);
  o.clip_norm = f.number("clip_norm");
  o.clip_value = f.number("clip_value");
  o.lr_decay = f.number("lr_decay");
  o.decay_after = f.integer("decay_after", 0);
  o.plateau_decay = f.number("plateau_decay");
  o.plateau_patience = f.integer("plateau_patience", 0);
  o.epochs = f.integer("epochs", 0);
  o.steps = f.integer("steps", 0);
  o.time_limit = f.number("time_limit");
  {
    const auto& s = f.raw("seed");
    if (!s.is_number_unsigned() && !(s.is_number_integer() && s.get<int64_t>() >= 0)) f.fail("seed", "an integer >= 0");
    o.seed = s.get<uint64_t>();
  }
  o.valid_every = f.integer("valid_every", 0);
  o.log_every = f.integer("log_every", 1);
  o.eval_batch = f.integer("eval_batch", 1);
  o.diverge_factor = f.number("diverge_factor");
  f.finish();
  return o;
}

// The accumulators behind one metrics line; saved so a resumed run logs the same values.
struct Window {
  double loss_sum = 0;  // summed per-token losses
  int64_t tokens = 0;
  double grad_norm_sum = 0;
  int64_t clipped = 0;  // steps where clipping changed the gradient
  int64_t steps = 0;
};

// Everything of a run's progress that is not a tensor.
struct RunState {
  int64_t step = 0;
  int64_t epoch = 0;  // completed epochs (= the batcher's epoch)
  int64_t batch_in_epoch = 0;
  double lr = 0;
  double plateau_scale = 1;
  int64_t plateau_bad = 0;
  double plateau_best = kInf;
  double best_valid_loss = kInf;
  int64_t best_step = 0;
  double first_loss = kInf;  // +inf until the first step
  Rng::State dropout_rng{};
  int64_t optimizer_steps = 0;
  Window window;
  double elapsed_s = 0;
  int64_t tokens_seen = 0;
  std::string data_path;
  int64_t data_bytes = 0;
  std::string batcher;  // the batcher's state_json()
};

std::string run_state_to_json(const RunState& s, const TrainOptions& o) {
  nlohmann::ordered_json w = {{"loss_sum", s.window.loss_sum},
                              {"tokens", s.window.tokens},
                              {"grad_norm_sum", s.window.grad_norm_sum},
                              {"clipped", s.window.clipped},
                              {"steps", s.window.steps}};
  nlohmann::ordered_json j = {{"step", s.step},
                              {"epoch", s.epoch},
                              {"batch_in_epoch", s.batch_in_epoch},
                              {"lr", s.lr},
                              {"plateau_scale", s.plateau_scale},
                              {"plateau_bad", s.plateau_bad},
                              {"plateau_best", number_or_null(s.plateau_best)},
                              {"best_valid_loss", number_or_null(s.best_valid_loss)},
                              {"best_step", s.best_step},
                              {"first_loss", number_or_null(s.first_loss)},
                              {"dropout_rng", rng_state_json(s.dropout_rng)},
                              {"optimizer_steps", s.optimizer_steps},
                              {"window", w},
                              {"elapsed_s", s.elapsed_s},
                              {"tokens_seen", s.tokens_seen},
                              {"data_path", s.data_path},
                              {"data_bytes", s.data_bytes},
                              {"batcher", nlohmann::ordered_json::parse(s.batcher)},
                              {"options", nlohmann::ordered_json::parse(train_options_to_json(o))}};
  return j.dump();
}

RunState run_state_from_json(std::string_view json, std::string_view origin, TrainOptions* opts) {
  JsonFields f(json, std::string(origin) + ": metadata \"train_state\"");
  RunState s;
  s.step = f.integer("step", 0);
  s.epoch = f.integer("epoch", 0);
  s.batch_in_epoch = f.integer("batch_in_epoch", 0);
  s.lr = f.number("lr");
  s.plateau_scale = f.number("plateau_scale");
  s.plateau_bad = f.integer("plateau_bad", 0);
  s.plateau_best = f.number("plateau_best", true);
  s.best_valid_loss = f.number("best_valid_loss", true);
  s.best_step = f.integer("best_step", 0);
  s.first_loss = f.number("first_loss", true);
  s.dropout_rng = f.rng_state("dropout_rng");
  s.optimizer_steps = f.integer("optimizer_steps", 0);
  {
    JsonFields w = f.object("window");
    s.window.loss_sum = w.number("loss_sum");
    s.window.tokens = w.integer("tokens", 0);
    s.window.grad_norm_sum = w.number("grad_norm_sum");
    s.window.clipped = w.integer("clipped", 0);
    s.window.steps = w.integer("steps", 0);
    w.finish();
  }
  s.elapsed_s = f.number("elapsed_s");
  s.tokens_seen = f.integer("tokens_seen", 0);
  s.data_path = f.string("data_path");
  s.data_bytes = f.integer("data_bytes", 0);
  const auto& b = f.raw("batcher");
  if (!b.is_object()) f.fail("batcher", "an object");
  s.batcher = b.dump();
  JsonFields of = f.object("options");
  const TrainOptions o = options_from_fields(of);
  if (opts) *opts = o;
  f.finish();
  return s;
}

// Streams of the current run: chunked stream or padded lines.
struct Batches {
  std::optional<StreamBatcher> stream;
  std::optional<LinesBatcher> lines;
  bool next(TextBatch& b) { return stream ? stream->next(b) : lines->next(b); }
  int64_t per_epoch() const { return stream ? stream->batches_per_epoch() : lines->batches_per_epoch(); }
  int64_t epoch() const { return stream ? stream->epoch() : lines->epoch(); }
  std::string state_json() const { return stream ? stream->state_json() : lines->state_json(); }
  void set_state_json(const std::string& j, const std::string& origin) {
    if (stream) stream->set_state_json(j, origin);
    else lines->set_state_json(j, origin);
  }
};

// Keeps the metrics of steps <= `step` (the checkpoint's) so a resumed run does not log the
// steps after it twice.
std::string check_same(const char* flag, const std::string& mine, const std::string& saved, const std::string& ck) {
  if (mine == saved) return {};
  return flag + std::string(" ") + mine + " does not match the checkpoint's " + saved + " (" + ck +
         "); a resumed run keeps the model and data layout";
}

}  // namespace

TrainProgress train_progress_from_json(std::string_view train_state, std::string_view origin) {
  TrainProgress p;
  const RunState s = run_state_from_json(train_state, origin, &p.options);
  p.step = s.step;
  p.epoch = s.epoch;
  p.lr = s.lr;
  p.best_valid_loss = s.best_valid_loss;
  p.best_step = s.best_step;
  p.elapsed_s = s.elapsed_s;
  p.tokens_seen = s.tokens_seen;
  p.data_path = s.data_path;
  return p;
}

TrainOptions train_options_from_json(std::string_view json, std::string_view origin) {
  JsonFields f(json, std::string(origin));
  return options_from_fields(f);
}

// `corpus` null: read opts.data_path (and valid/test files) as text.
static TrainResult train_language_model_impl(const TrainOptions& opts, const TokenCorpus* corpus, const TrainObserver& obs,
                                      const std::atomic<bool>* stop) {
  using clock = std::chrono::steady_clock;
  const auto t_start = clock::now();
  opts.validate();
  auto note = [&](const std::string& s) {
    if (obs.on_note) obs.on_note(s);
  };

  const fs::path dir(opts.out_dir);
  const std::string last_path = (dir / "last.safetensors").string();
  const std::string best_path = (dir / "best.safetensors").string();
  const bool resuming = !opts.resume_path.empty();
  detail::check_run_dir(opts.out_dir, resuming, opts.force);

  // ---- checkpoint to resume from ----
  Checkpoint ck;
  RunState rs;
  TrainOptions saved_opts;
  if (resuming) {
    ck = load_checkpoint(opts.resume_path);
    if (ck.train_state.empty())
      throw FormatError(opts.resume_path + ": metadata \"train_state\": missing; this model cannot be resumed");
    rs = run_state_from_json(ck.train_state, opts.resume_path, &saved_opts);
  }

  // ---- data ----
  const std::string text = corpus ? corpus->train : read_text_file(opts.data_path);
  if (resuming && int64_t(text.size()) != rs.data_bytes)
    throw Error(opts.data_path + ": " + std::to_string(text.size()) + " bytes, but " + opts.resume_path +
                " was trained on " + std::to_string(rs.data_bytes) + " bytes of " + rs.data_path +
                "; resuming needs the same training data");
  std::string train_text, valid_text, test_text;
  std::string valid_origin;
  if (corpus) {  // already split by its maker
    train_text = corpus->train;
    valid_text = corpus->valid;
    test_text = corpus->test;
    valid_origin = opts.data_path + " (validation pieces)";
  } else if (!opts.valid_path.empty()) {
    valid_text = read_text_file(opts.valid_path);
    valid_origin = opts.valid_path;
    train_text = text;
  } else if (opts.valid_fraction > 0 && split_lines(text).size() >= 2) {
    // Stream data keeps running text intact (the last lines, as char-rnn does); lines are
    // independent examples, so a random sample is the fairer hold-out.
    TextSplit sp = holdout_split(text, {.fraction = opts.valid_fraction,
                                        .seed = opts.seed ^ kHoldoutSeed,
                                        .contiguous = opts.mode == TextMode::stream});
    train_text = std::move(sp.train);
    valid_text = std::move(sp.valid);
    valid_origin = opts.data_path + " (held-out " + std::to_string(sp.valid_lines) + " lines)";
  } else {
    train_text = text;
    if (opts.valid_fraction > 0) note(opts.data_path + " has a single line: training without validation");
  }
  // Read now, so a bad test file fails before hours of training rather than after.
  if (!corpus && !opts.test_path.empty()) test_text = read_text_file(opts.test_path);
  const bool has_valid = !valid_text.empty();

  // ---- model ----
  LmModel model;
  if (resuming) {
    model = std::move(ck.model);
    if (corpus && corpus->task != model.task)
      throw Error(opts.resume_path + ": trained with task " + (model.task.empty() ? "lm" : model.task) +
                  ", but this run's data is " + corpus->task + "; a resumed run keeps the data layout");
  } else if (corpus) {
    model.vocab = corpus->vocab;
    model.task = corpus->task;
  } else {
    model.vocab = build_vocab(train_text, opts.level, opts.mode, {opts.max_vocab, opts.min_count}, opts.data_path);
    if (model.vocab.size() <= Vocab::num_special)
      throw Error(opts.data_path + ": no tokens to learn; expected text with at least one " +
                  (opts.level == TokenLevel::words ? "word" : "character"));
  }
  LmSpec spec;
  spec.level = opts.level;
  spec.mode = opts.mode;
  spec.lm.vocab_size = model.vocab.size();
  spec.lm.embed_size = opts.embed >= 0 ? opts.embed : (opts.level == TokenLevel::words ? opts.hidden : 0);
  spec.lm.dropout = opts.dropout;
  RnnConfig& rc = spec.lm.rnn;
  rc.cell = opts.cell;
  rc.gru_reset = opts.gru_reset;
  rc.input_size = spec.lm.input_size();
  rc.hidden_size = opts.hidden;
  rc.proj_size = opts.proj;
  rc.num_layers = opts.layers;
  rc.peephole = opts.peephole;
  rc.dropout = opts.dropout;
  spec.validate();
  if (resuming) {
    const LmSpec& s = model.spec;
    const std::string& p = opts.resume_path;
    std::string err;
    auto chk = [&](const char* flag, const std::string& mine, const std::string& saved) {
      if (err.empty()) err = check_same(flag, mine, saved, p);
    };
    chk("--level", token_level_name(spec.level), token_level_name(s.level));
    chk("--mode", text_mode_name(spec.mode), text_mode_name(s.mode));
    chk("--cell", std::string(cell_name(rc.cell)), std::string(cell_name(s.lm.rnn.cell)));
    if (rc.cell == CellType::gru)
      chk("--gru-reset", std::string(gru_reset_name(rc.gru_reset)), std::string(gru_reset_name(s.lm.rnn.gru_reset)));
    chk("--layers", std::to_string(rc.num_layers), std::to_string(s.lm.rnn.num_layers));
    chk("--hidden", std::to_string(rc.hidden_size), std::to_string(s.lm.rnn.hidden_size));
    chk("--embed", std::to_string(spec.lm.embed_size), std::to_string(s.lm.embed_size));
    chk("--proj", std::to_string(rc.proj_size), std::to_string(s.lm.rnn.proj_size));
    chk("--peephole", rc.peephole ? "on" : "off", s.lm.rnn.peephole ? "on" : "off");
    chk("--batch", std::to_string(opts.batch), std::to_string(saved_opts.batch));
    if (!err.empty()) throw Error(err);
    // Dropout is a training choice, not a shape: a resumed run may change it.
    model.spec.lm.dropout = spec.lm.dropout;
    model.spec.lm.rnn.dropout = spec.lm.rnn.dropout;
  } else {
    model.spec = spec;
    Rng init_rng(opts.seed);
    model.params = lm_init_params<float>(spec.lm, init_rng, opts.init_scale);
  }
  const LmConfig& cfg = model.spec.lm;
  const ModelSpec graph = model.graph();  // the LM as a layer graph (lm.h)

  // ---- batches ----
  Batches batches;
  OovStats train_oov;
  try {
    if (opts.mode == TextMode::stream) {
      batches.stream.emplace(encode_stream(model.vocab, train_text, &train_oov, opts.data_path),
                             StreamOptions{.batch_size = opts.batch, .seq_len = opts.seq_len, .drop_last = false});
    } else {
      batches.lines.emplace(encode_lines(model.vocab, train_text, &train_oov, opts.data_path),
                            LinesOptions{.batch_size = opts.batch, .shuffle = true, .seed = opts.seed ^ kOrderSeed});
    }
  } catch (const FormatError&) {
    throw;
  } catch (const Error& e) {
    throw Error(opts.data_path + ": too little training data for --batch " + std::to_string(opts.batch) + ": " +
                e.what());
  }

  // ---- optimizer ----
  ModelGrads<float> grads = model_zero_grads<float>(graph);
  std::vector<ParamRef<float>> refs = model_param_refs(graph, model.params, grads);
  OptimizerConfig oc = opts.optimizer;
  if (oc.lr <= 0) oc.lr = default_lr(oc.type);
  const double lr0 = oc.lr;
  Optimizer<float> optimizer(oc, refs);

  // ---- state ----
  RnnState<float> carry;  // stream mode: the state handed from one chunk to the next
  Rng dropout_rng(opts.seed ^ kDropoutSeed);
  if (resuming) {
    batches.set_state_json(rs.batcher, opts.resume_path + ": metadata \"train_state\": \"batcher\"");
    dropout_rng.set_state(rs.dropout_rng);
    const bool same_optimizer = saved_opts.optimizer.type == oc.type;
    if (same_optimizer) {
      optimizer.set_steps(rs.optimizer_steps);
      for (auto& [name, t] : optimizer.state_tensors()) {
        auto it = ck.tensors.find(name);
        if (it == ck.tensors.end())
          throw FormatError(opts.resume_path + ": missing tensor '" + name + "' (optimizer state of " +
                            std::string(optimizer_name(oc.type)) + ")");
        if (it->second.shape != t->shape)
          throw FormatError(opts.resume_path + ": tensor '" + name + "': expected shape " + shape_str(t->shape) +
                            ", got " + shape_str(it->second.shape));
        t->data = it->second.data;
        ck.tensors.erase(it);
      }
    } else {
      note(std::string("optimizer changed from ") + std::string(optimizer_name(saved_opts.optimizer.type)) + " to " +
           std::string(optimizer_name(oc.type)) + ": its state starts fresh");
    }
    if (opts.mode == TextMode::stream && ck.tensors.count("train.state.h")) {
      const int64_t LD = cfg.rnn.num_layers, B = opts.batch;
      carry.h = std::move(ck.tensors["train.state.h"]);
      check_shape(opts.resume_path + ": tensor 'train.state.h'", carry.h.shape, {LD, B, cfg.rnn.state_size()});
      ck.tensors.erase("train.state.h");
      if (cfg.rnn.has_cell_state()) {
        auto it = ck.tensors.find("train.state.c");
        if (it == ck.tensors.end()) throw FormatError(opts.resume_path + ": missing tensor 'train.state.c'");
        carry.c = std::move(it->second);
        check_shape(opts.resume_path + ": tensor 'train.state.c'", carry.c.shape, {LD, B, cfg.rnn.hidden_size});
        ck.tensors.erase(it);
      }
    }
    for (const auto& [name, t] : ck.tensors) {
      (void)t;
      if (!same_optimizer && name.rfind("optim.", 0) == 0) continue;
      throw FormatError(opts.resume_path + ": unexpected tensor '" + name + "' for this run");
    }
    note("resumed from " + opts.resume_path + " at step " + std::to_string(rs.step) + ", epoch " +
         std::to_string(rs.epoch));
  } else {
    rs.data_path = opts.data_path;
    rs.data_bytes = int64_t(text.size());
    note("vocabulary: " + std::to_string(model.vocab.size()) + " " + token_level_name(opts.level) + "; " +
         std::to_string(lm_param_count(model.spec)) + " parameters; " + lm_spec_summary(model.spec));
  }
  if (train_oov.oov > 0 || (opts.level == TokenLevel::words && train_oov.unk > 0))
    note("training data: " + train_oov.summary());

  // ---- budget ----
  int64_t max_epochs = opts.epochs, max_steps = opts.steps;
  if (max_epochs == 0 && max_steps == 0 && opts.time_limit == 0) max_epochs = 10;
  TrainResult result;
  result.last_path = last_path;
  auto budget_done = [&](double run_s) {
    return (max_steps > 0 && rs.step >= max_steps) || (max_epochs > 0 && rs.epoch >= max_epochs) ||
           (opts.time_limit > 0 && run_s >= opts.time_limit);
  };
  if (resuming && budget_done(0)) {
    result.nothing_to_do = true;
    result.step = rs.step;
    result.epoch = rs.epoch;
    result.best_valid_loss = rs.best_valid_loss;
    return result;
  }

  // ---- metrics ---- (the directory is created only now, so a bad input leaves nothing behind)
  std::ofstream metrics = detail::open_run_metrics(opts.out_dir, resuming, rs.step);
  const bool chars = opts.level == TokenLevel::chars;
  const double ln2 = std::log(2.0);
  auto write_log = [&](const TrainLog& l) {
    nlohmann::ordered_json j = {{"type", l.type},   {"step", l.step},     {"epoch", l.epoch},
                                {"loss", l.loss},   {"ppl", l.ppl},       {"bpc", l.bpc},
                                {"grad_norm", l.grad_norm}, {"clip_rate", l.clip_rate},
                                {"tokens_per_s", l.tokens_per_s}, {"lr", l.lr}, {"elapsed_s", l.elapsed_s}};
    metrics << j.dump() << '\n';
    metrics.flush();
    if (obs.on_log) obs.on_log(l);
  };

  const double elapsed0 = rs.elapsed_s;
  auto run_seconds = [&] { return std::chrono::duration<double>(clock::now() - t_start).count(); };
  const int64_t bpe = batches.per_epoch();
  auto epoch_frac = [&] { return double(rs.epoch) + (bpe > 0 ? double(rs.batch_in_epoch) / double(bpe) : 0.0); };
  auto current_lr = [&] {
    const int64_t e = rs.epoch + 1;  // 1-based epoch being trained
    return lr0 * std::pow(opts.lr_decay, double(std::max<int64_t>(0, e - opts.decay_after))) * rs.plateau_scale;
  };

  auto make_checkpoint = [&]() {
    Checkpoint c;
    c.model = model;
    rs.batcher = batches.state_json();
    rs.dropout_rng = dropout_rng.state();
    rs.optimizer_steps = optimizer.steps();
    rs.elapsed_s = elapsed0 + run_seconds();
    c.train_state = run_state_to_json(rs, opts);
    for (auto& [name, t] : optimizer.state_tensors()) c.tensors[name] = *t;
    if (opts.mode == TextMode::stream && !carry.h.empty()) {
      c.tensors["train.state.h"] = carry.h;
      if (!carry.c.empty()) c.tensors["train.state.c"] = carry.c;
    }
    return c;
  };
  auto diverged = [&](const std::string& what) {
    std::string kept = fs::exists(last_path) ? "last good checkpoint " + last_path + " kept"
                                             : "no checkpoint was written";
    throw Error("training diverged at step " + std::to_string(rs.step) + " (" + what + "); " + kept +
                "; try a lower --lr or --clip-norm");
  };
  auto fmt_loss = [](double x) {
    char b[40];
    std::snprintf(b, sizeof b, "loss=%.6g", x);
    return std::string(b);
  };

  // Validation, best/last checkpoints. `scheduled` points (epoch ends, --valid-every) also drive
  // the plateau schedule; the extra one at the end of a run must not, or a run split in two would
  // train differently from one in a piece.
  int64_t last_eval_step = -1;
  auto eval_point = [&](bool scheduled) {
    last_eval_step = rs.step;
    if (has_valid) {
      const auto t0 = clock::now();
      const EvalResult er = evaluate_text(model, valid_text, {.batch = opts.eval_batch, .seq_len = opts.seq_len},
                                          valid_origin);
      const double secs = std::chrono::duration<double>(clock::now() - t0).count();
      const double vl = er.mean();
      if (!std::isfinite(vl)) diverged("validation " + fmt_loss(vl));
      TrainLog l{.type = "valid", .step = rs.step, .epoch = epoch_frac(), .loss = vl, .ppl = std::exp(vl),
                 .bpc = chars ? vl / ln2 : std::nan(""), .grad_norm = std::nan(""), .clip_rate = std::nan(""),
                 .tokens_per_s = secs > 0 ? double(er.loss.count) / secs : 0.0, .lr = rs.lr,
                 .elapsed_s = elapsed0 + run_seconds()};
      write_log(l);
      if (scheduled) {
        if (vl < rs.plateau_best) {
          rs.plateau_best = vl;
          rs.plateau_bad = 0;
        } else if (opts.plateau_decay > 0 && ++rs.plateau_bad > opts.plateau_patience) {
          rs.plateau_scale *= opts.plateau_decay;
          rs.plateau_bad = 0;
          note("validation loss did not improve: learning rate now " + num(current_lr()));
        }
      }
      if (vl < rs.best_valid_loss) {
        rs.best_valid_loss = vl;
        rs.best_step = rs.step;
        save_checkpoint(best_path, make_checkpoint());
        result.best_path = best_path;
      }
    }
    save_checkpoint(last_path, make_checkpoint());
  };

  // ---- the loop ----
  TextBatch tb;
  ModelCache<float> cache;
  int64_t steps_this_run = 0;
  int64_t diag_steps = 0, diag_clipped = 0;  // --diagnostics: clip rate since its last line
  auto window_t0 = clock::now();
  while (!budget_done(run_seconds())) {
    if (!batches.next(tb)) {  // end of an epoch: the batcher has moved to the next one
      rs.epoch = batches.epoch();
      rs.batch_in_epoch = 0;
      carry = RnnState<float>();  // a new pass over the text starts from zeros, as in PyTorch's example
      if (opts.valid_every == 0) eval_point(true);
      continue;
    }
    ++rs.step;
    ++rs.batch_in_epoch;
    ++steps_this_run;
    const int64_t count = tb.tokens();
    if (count <= 0) throw Error("internal: a training batch without target tokens");
    rs.lr = current_lr();
    grads.zero();
    RnnState<float> fresh;
    RnnState<float>& state = opts.mode == TextMode::stream ? carry : fresh;
    const LossSum ls = lm_forward_backward<float>(graph, model.params, lm_batch_of(tb, opts.mode), state,
                                                  {.training = true, .rng = &dropout_rng}, cache, &grads,
                                                  1.0 / double(count));
    const double loss = ls.mean();
    if (!std::isfinite(loss)) diverged(fmt_loss(loss));
    if (!std::isfinite(rs.first_loss)) rs.first_loss = loss;
    if (opts.diverge_factor > 0 && loss > opts.diverge_factor * rs.first_loss)
      diverged(fmt_loss(loss) + ", above " + num(opts.diverge_factor) + "x the first step's " + num(rs.first_loss));
    bool clipped = false;
    double norm;
    if (opts.clip_norm > 0) {
      norm = clip_grad_norm(refs, opts.clip_norm);
      clipped = norm > opts.clip_norm;
    } else {
      norm = grad_norm(refs);
    }
    if (!std::isfinite(norm)) diverged("gradient norm " + num(norm));
    if (opts.clip_value > 0 && clip_grad_value(refs, opts.clip_value) > 0) clipped = true;
    if (opts.diagnostics_every > 0) {  // before the update: the profiles belong to this step's weights
      ++diag_steps;
      diag_clipped += clipped;
      if (rs.step % opts.diagnostics_every == 0) {
        const StepDiagnostics d{.step = rs.step, .epoch = epoch_frac(), .grad_norm = norm,
                                .grad_norm_clipped = grad_norm(refs), .clipped = clipped,
                                .clip_rate = double(diag_clipped) / double(diag_steps),
                                .layers = lm_layer_diagnostics(graph, model.params, cache)};
        metrics << diagnostics_json(d) << '\n';
        metrics.flush();
        diag_steps = diag_clipped = 0;
      }
    }
    optimizer.set_lr(rs.lr);
    optimizer.step();

    Window& w = rs.window;
    w.loss_sum += ls.sum;
    w.tokens += ls.count;
    w.grad_norm_sum += norm;
    w.clipped += clipped;
    w.steps += 1;
    rs.tokens_seen += ls.count;

    const bool log_now = rs.step % opts.log_every == 0;
    if (obs.on_progress || log_now) {
      const double run_s = run_seconds();
      const double wl = w.loss_sum / double(w.tokens);
      const double wsecs = std::chrono::duration<double>(clock::now() - window_t0).count();
      double eta = -1;
      if (steps_this_run > 0 && run_s > 0) {
        const double rate = double(steps_this_run) / run_s;  // steps per second
        double remaining = kInf;
        if (max_steps > 0) remaining = std::min(remaining, double(max_steps - rs.step) / rate);
        if (max_epochs > 0)
          remaining = std::min(remaining, double((max_epochs - rs.epoch) * bpe - rs.batch_in_epoch) / rate);
        if (opts.time_limit > 0) remaining = std::min(remaining, opts.time_limit - run_s);
        if (std::isfinite(remaining)) eta = std::max(0.0, remaining);
      }
      TrainLog l{.type = "train", .step = rs.step, .epoch = epoch_frac(), .loss = wl, .ppl = std::exp(wl),
                 .bpc = chars ? wl / ln2 : std::nan(""), .grad_norm = w.grad_norm_sum / double(w.steps),
                 .clip_rate = double(w.clipped) / double(w.steps),
                 .tokens_per_s = wsecs > 0 ? double(w.tokens) / wsecs : 0.0, .lr = rs.lr,
                 .elapsed_s = elapsed0 + run_s, .eta_s = eta};
      if (obs.on_progress) obs.on_progress(l);
      if (log_now) {
        write_log(l);
        w = Window();
        window_t0 = clock::now();
      }
    }
    if (opts.valid_every > 0 && rs.step % opts.valid_every == 0) eval_point(true);
    if (stop && stop->load()) {
      result.interrupted = true;
      break;
    }
  }
  if (last_eval_step != rs.step) eval_point(false);
  if (result.interrupted) note("stopped at step " + std::to_string(rs.step) + "; continue with --resume");

  // ---- final test report, on the best model when there is one ----
  if (!result.interrupted && !test_text.empty()) {
    const bool use_best = fs::exists(best_path) && rs.best_step > 0;
    LmModel test_model = use_best ? load_checkpoint(best_path).model : model;
    const EvalResult er =
        evaluate_text(test_model, test_text, {.batch = opts.eval_batch, .seq_len = opts.seq_len}, opts.test_path);
    const double tl = er.mean();
    write_log({.type = "test", .step = use_best ? rs.best_step : rs.step, .epoch = epoch_frac(), .loss = tl,
               .ppl = std::exp(tl), .bpc = chars ? tl / ln2 : std::nan(""), .grad_norm = std::nan(""),
               .clip_rate = std::nan(""), .tokens_per_s = 0, .lr = rs.lr, .elapsed_s = elapsed0 + run_seconds()});
  }
  result.step = rs.step;
  result.epoch = rs.epoch;
  result.best_valid_loss = rs.best_valid_loss;
  if (fs::exists(best_path) && result.best_path.empty() && rs.best_step > 0) result.best_path = best_path;
  return result;
}

TrainResult train_language_model(const TrainOptions& opts, const TrainObserver& obs, const std::atomic<bool>* stop) {
  return train_language_model_impl(opts, nullptr, obs, stop);
}

TrainResult train_language_model(const TrainOptions& opts, const TokenCorpus& corpus, const TrainObserver& obs,
                                 const std::atomic<bool>* stop) {
  if (opts.level != TokenLevel::words) throw Error("--level: a token corpus is word-level; expected --level word");
  return train_language_model_impl(opts, &corpus, obs, stop);
}

}  // namespace recur
