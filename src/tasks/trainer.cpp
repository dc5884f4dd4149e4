#include "recur/tasks/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <new>
#include <optional>
#include <sstream>

#include "json_fields.h"
#include "recur/data/prepared.h"
#include "recur/tasks/tasks.h"
#include "run_dir.h"
#include "train_tasks.h"

namespace recur {

namespace fs = std::filesystem;

namespace {

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

// Which tasks each flag means something for; a flag given for another task is refused by name
// rather than silently ignored. Flags absent from this table apply to every task.
struct FlagScope {
  const char* flag;
  std::vector<std::string> tasks;
  const char* why;  // what the flag is for
};
const std::vector<FlagScope>& flag_scopes() {
  static const std::vector<FlagScope> s = {
      {"--seq-len", {"lm", "music"}, "the BPTT chunk of a token stream; task models batch whole examples"},
      {"--mode", {"lm", "music"}, "stream or lines of a token stream; task models read whole examples"},
      {"--level", {"lm"}, "chars or words of a text; the task and the music encoding fix the tokens"},
      {"--max-vocab", {"lm", "classify", "tag", "seq2seq"},
       "a word vocabulary cap; the music encoding and a generator's characters are kept whole"},
      {"--min-count", {"lm", "classify", "tag", "seq2seq"},
       "a word vocabulary cut; the music encoding and a generator's characters are kept whole"},
      {"--tie-weights", {"lm", "music"}, "a language model's decoder sharing its input embedding"},
      {"--char-rnn", {"classify", "tag"}, "a character BiLSTM per word of a classifier or tagger"},
      {"--char-embed", {"classify", "tag"}, "the character embedding of --char-rnn"},
      {"--char-hidden", {"classify", "tag"}, "the character LSTM of --char-rnn"},
      {"--crf", {"tag"}, "a CRF output layer over a tagger's tag sequence"},
      {"--attention", {"seq2seq"}, "attention of a decoder over its encoder's outputs"},
      {"--pool", {"classify"}, "how a classifier reads its rnn's outputs"},
      {"--word-dropout", {"classify", "tag"}, "unknown words simulated while training a word classifier or tagger"},
      {"--input-feed", {"seq2seq"}, "a decoder reading its attention's previous output"},
      {"--extend-vocab", {"lm", "classify", "tag", "seq2seq", "generate"},
       "vocabularies grown for --init-from; the music encoding is fixed"},
      {"--tag-scheme", {"tag"}, "the chunk tag scheme a tagger is trained in"},
      {"--condition-every-step", {"generate"}, "where a generator reads its condition"},
      {"--binary", {"classify"}, "a two-class classifier's sigmoid output"},
      {"--features", {"classify", "tag", "seq2seq"}, "numeric input sequences of a task model"},
      {"--keep-case", {"classify", "seq2seq"}, "the lower-casing of classify and seq2seq text"},
      {"--lower-words", {"tag"}, "a tagger's word vocabulary reading words lower-cased"},
      {"--embeddings", {"classify", "tag", "seq2seq"}, "pre-trained word vectors of a word task model"},
      {"--freeze-embeddings", {"classify", "tag", "seq2seq"}, "pre-trained word vectors of a word task model"},
      {"--embeddings-vocab", {"classify", "tag", "seq2seq"}, "pre-trained word vectors of a word task model"},
      {"--text-column", {"classify"}, "the text column of a classification table"},
      {"--label-column", {"classify"}, "the label column of a classification table"},
      {"--header", {"classify"}, "the header row of a classification table"},
      {"--token-column", {"tag"}, "the token column of a CoNLL file"},
      {"--tag-column", {"tag"}, "the tag column of a CoNLL file"},
  };
  return s;
}

void check_flags_apply(const TrainOptions& o) {
  for (const FlagScope& f : flag_scopes()) {
    if (!o.given.count(f.flag)) continue;
    if (std::find(f.tasks.begin(), f.tasks.end(), o.task) != f.tasks.end()) continue;
    throw Error(std::string(f.flag) + ": does not apply to --task " + o.task + " (" + f.why + ")");
  }
}

}  // namespace

bool TrainOptions::is_model_task() const { return is_task_kind(task); }


void TrainOptions::validate() const {
  if (task != "lm" && task != "music" && !is_model_task())
    bad("--task", task, "lm, music, classify, tag, seq2seq or generate");
  if (data_path.empty()) throw Error("DATA: missing; expected a training file");
  if (out_dir.empty()) throw Error("--out: missing; expected the run directory");
  // Standard input can be read once: one input at most may be "-".
  if ((data_path == "-") + (valid_path == "-") + (test_path == "-") + (embeddings_path == "-") > 1)
    throw Error("DATA, --valid, --test and --embeddings: more than one is '-'; standard input can be read only once");
  check_flags_apply(*this);
  if (!resume_path.empty()) {
    // A resumed run continues its own weights and vocabularies. The model a fine-tuning run
    // started from stays in its saved options as history, not as a choice of this invocation.
    if (given.count("--init-from"))
      bad("--init-from", init_from, "a fresh run's starting model; a --resume'd run continues its own weights");
    if (given.count("--extend-vocab"))
      bad("--extend-vocab", "true", "with a fresh --init-from run; a --resume'd run keeps the vocabularies it has");
  } else if (!init_from.empty()) {
    // The model comes whole from the checkpoint: a flag that would shape another one is refused
    // (--min-count and --max-vocab choose the new words of --extend-vocab).
    for (const char* f : {"--cell", "--gru-reset", "--layers", "--hidden", "--embed", "--proj", "--peephole",
                          "--bidirectional", "--dropout", "--init-scale", "--char-rnn",
                          "--char-embed", "--char-hidden", "--condition-every-step", "--binary", "--features",
                          "--keep-case", "--lower-words", "--embeddings", "--freeze-embeddings", "--embeddings-vocab", "--text-column", "--label-column",
                          "--token-column", "--tag-column", "--attention", "--input-feed", "--tie-weights", "--pool"})
      if (given.count(f))
        throw Error(std::string(f) + ": not with --init-from " + init_from +
                    "; the architecture, vocabularies and data columns come from that model");
    for (const char* f : {"--min-count", "--max-vocab"})
      if (given.count(f) && !extend_vocab)
        throw Error(std::string(f) + ": not with --init-from " + init_from +
                    " alone; the vocabularies come from that model (with --extend-vocab it chooses the new words)");
  } else if (extend_vocab) {
    bad("--extend-vocab", "true", "with --init-from MODEL (a new model's vocabularies come from its data anyway)");
  }
  if (task == "music" && (!valid_path.empty() || !test_path.empty()))
    throw Error(std::string(valid_path.empty() ? "--test" : "--valid") +
                ": not used with --task music; validation pieces are held out from DATA (--valid-fraction) and JSB "
                "JSON files bring their own valid/test split");
  if (bidirectional && (!is_model_task() || task == "generate"))
    throw Error("--bidirectional: does not apply to --task " + task +
                " (it predicts the next token, so it cannot read the future; --bidirectional is for tag, classify and "
                "seq2seq)");
  if (is_model_task()) check_int("--embed", embed, 1, "a size >= 1 for a task model");
  if (pool != "last" && pool != "max" && pool != "mean") bad("--pool", pool, "last, max or mean");
  check_real("--word-dropout", word_dropout, 0, 1, false, false, "a probability in [0, 1]");
  if (word_dropout > 0 && features) bad("--word-dropout", num(word_dropout), "a word task on tokens, not --features");
  if (lower_words && features) bad("--lower-words", "true", "a tagger on words, not --features");
  if (char_rnn && features) bad("--char-rnn", "true", "a word task on tokens (classify, tag), not --features");
  // Their sizes shape the character BiLSTM only: without it they would be silently ignored.
  if (!char_rnn && given.count("--char-embed")) bad("--char-embed", std::to_string(char_embed), "with --char-rnn");
  if (!char_rnn && given.count("--char-hidden")) bad("--char-hidden", std::to_string(char_hidden), "with --char-rnn");
  if (attention != "none" && attention != "dot" && attention != "general" && attention != "additive")
    bad("--attention", attention, "none, dot, general or additive");
  if (input_feed && attention == "none")
    bad("--input-feed", "true", "with --attention dot, general or additive (it feeds the attention's output back)");
  if (attention == "dot" && bidirectional)
    throw Error("--attention dot: the decoder's outputs (" + std::to_string(proj > 0 ? proj : hidden) +
                " wide) and the bidirectional encoder's (" + std::to_string(2 * (proj > 0 ? proj : hidden)) +
                ") cannot be multiplied; expected general or additive with --bidirectional");
  if (!embeddings_path.empty() && features) bad("--embeddings", embeddings_path, "a word task (classify, tag, seq2seq) on tokens");
  if (embeddings_vocab && (embeddings_path.empty() || embeddings_path == "-"))
    bad("--embeddings-vocab", "true", "with --embeddings FILE (a file: its words are read before its vectors)");
  check_int("--char-embed", char_embed, 1, "a size >= 1");
  check_int("--char-hidden", char_hidden, 1, "a size >= 1");
  if (valid_fraction != kValidFractionAuto)
    check_real("--valid-fraction", valid_fraction, 0, 1, false, true, "a fraction in [0, 1)");
  if (max_vocab != 0 && max_vocab < 3) bad("--max-vocab", std::to_string(max_vocab), "0 (unlimited) or >= 3");
  check_int("--min-count", min_count, 1, "an integer >= 1");
  check_int("--layers", layers, 1, "an integer >= 1");
  check_int("--hidden", hidden, 1, "an integer >= 1");
  check_int("--embed", embed, -1, "-1 (auto), 0 (one-hot) or a size >= 1");
  check_int("--proj", proj, 0, "0 (none) or a size >= 1");
  if (proj > 0 && cell != CellType::lstm) bad("--proj", std::to_string(proj), "0 unless --cell lstm");
  if (tie_weights && !is_model_task()) {
    // The decoder's weight [V, R] becomes the embedding [V, E]: the shapes must agree.
    const int64_t r = proj > 0 ? proj : hidden;
    const int64_t e = embed >= 0 ? embed : (level == TokenLevel::words ? hidden : 0);
    if (e != r)
      throw Error("--tie-weights: the decoder's weight [V, " + std::to_string(r) + "] would be the input embedding [V, " +
                  std::to_string(e) + "]; expected --embed " + std::to_string(r) + " (the recurrent output width: " +
                  (proj > 0 ? "--proj" : "--hidden") + "), got " +
                  (e == 0 ? std::string("a one-hot input (--embed 0, or -1 for chars)") : "--embed " + std::to_string(e)));
  }
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
  check_int("--warmup", warmup, 0, "0 (off) or a number of steps >= 1");
  check_int("--epochs", epochs, 0, "an integer >= 0");
  check_int("--steps", steps, 0, "an integer >= 0");
  check_real("--time", time_limit, 0, kInf, false, true, "seconds >= 0");
  check_int("--valid-every", valid_every, 0, "an integer >= 0");
  check_int("--patience", patience, 0, "0 (off) or a count of validations >= 1");
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
                              {"tie_weights", o.tie_weights},
                              {"dropout", o.dropout},
                              {"init_scale", o.init_scale},
                              {"precision", std::string(precision_name(o.precision))},
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
                              {"diverge_factor", o.diverge_factor},
                              {"init_from", o.init_from},
                              {"patience", o.patience},
                              {"task", o.task},
                              {"bidirectional", o.bidirectional},
                              {"char_rnn", o.char_rnn},
                              {"char_embed", o.char_embed},
                              {"char_hidden", o.char_hidden},
                              {"condition_every_step", o.condition_every_step},
                              {"binary", o.binary},
                              {"features", o.features},
                              {"keep_case", o.keep_case},
                              {"embeddings_path", o.embeddings_path},
                              {"freeze_embeddings", o.freeze_embeddings},
                              {"text_column", o.text_column},
                              {"label_column", o.label_column},
                              {"token_column", o.token_column},
                              {"tag_column", o.tag_column},
                              {"header", o.header}};
  // Written only when used, so the options of other runs keep their bytes.
  if (o.crf) j["crf"] = true;
  if (o.embeddings_vocab) j["embeddings_vocab"] = true;
  if (o.attention != "none") j["attention"] = o.attention;
  if (o.pool != "last") j["pool"] = o.pool;
  if (o.word_dropout != 0) j["word_dropout"] = o.word_dropout;
  if (o.input_feed) j["input_feed"] = true;
  if (o.lower_words) j["lower_words"] = true;
  if (o.extend_vocab) j["extend_vocab"] = true;
  if (o.warmup != 0) j["warmup"] = o.warmup;
  if (o.tag_scheme != "auto") j["tag_scheme"] = o.tag_scheme;
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
  if (f.has("tie_weights")) o.tie_weights = f.boolean("tie_weights");  // absent before issue 17: untied
  o.dropout = f.number("dropout");
  o.init_scale = f.number("init_scale");
  if (f.has("precision")) {  // absent before issue 13: float32
    const std::string p = f.string("precision");
    if (p != "f32" && p != "bf16") f.fail("precision", "\"f32\" or \"bf16\"");
    o.precision = parse_precision(p, "precision");
  }
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
  if (f.has("warmup")) o.warmup = f.integer("warmup", 0);  // absent before --warmup
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
  if (f.has("init_from")) o.init_from = f.string("init_from");  // absent before issue 17
  if (f.has("patience")) o.patience = f.integer("patience", 0);  // absent before issue 17: off
  if (f.has("task")) {  // version 2; a version-1 language model's options have none of these
    o.task = f.string("task");
    o.bidirectional = f.boolean("bidirectional");
    o.char_rnn = f.boolean("char_rnn");
    o.char_embed = f.integer("char_embed", 1);
    o.char_hidden = f.integer("char_hidden", 1);
    o.condition_every_step = f.boolean("condition_every_step");
    o.binary = f.boolean("binary");
    o.features = f.boolean("features");
    o.keep_case = f.boolean("keep_case");
    o.embeddings_path = f.string("embeddings_path");
    o.freeze_embeddings = f.boolean("freeze_embeddings");
    o.text_column = f.integer("text_column", 0);
    o.label_column = f.integer("label_column", 0);
    o.token_column = f.integer("token_column", 0);
    o.tag_column = f.integer("tag_column", 0);
    o.header = f.integer("header", -1, 1);
    if (f.has("crf")) o.crf = f.boolean("crf");
    if (f.has("embeddings_vocab")) o.embeddings_vocab = f.boolean("embeddings_vocab");
    if (f.has("attention")) o.attention = f.string("attention");
    if (f.has("pool")) o.pool = f.string("pool");
    if (f.has("word_dropout")) o.word_dropout = f.number("word_dropout");
    if (f.has("input_feed")) o.input_feed = f.boolean("input_feed");
    if (f.has("lower_words")) o.lower_words = f.boolean("lower_words");
    if (f.has("extend_vocab")) o.extend_vocab = f.boolean("extend_vocab");
    if (f.has("tag_scheme")) o.tag_scheme = f.string("tag_scheme");
  }
  f.finish();
  return o;
}


// ---- version-1 train_state (read for `recur info` only) ----

// What `recur info` needs of a version-1 language model's train_state; other fields are read
// (so a damaged one is still refused) but unused.
struct RunState {
  int64_t step = 0, epoch = 0;
  double lr = 0, best_valid_loss = kInf;
  int64_t best_step = 0;
  double elapsed_s = 0;
  int64_t tokens_seen = 0;
  std::string data_path;
};

RunState run_state_from_json(std::string_view json, std::string_view origin, TrainOptions* opts) {
  JsonFields f(json, std::string(origin) + ": metadata \"train_state\"");
  RunState s;
  s.step = f.integer("step", 0);
  s.epoch = f.integer("epoch", 0);
  f.integer("batch_in_epoch", 0);
  s.lr = f.number("lr");
  f.number("plateau_scale");
  f.integer("plateau_bad", 0);
  f.number("plateau_best", true);
  s.best_valid_loss = f.number("best_valid_loss", true);
  s.best_step = f.integer("best_step", 0);
  f.number("first_loss", true);
  f.rng_state("dropout_rng");
  f.integer("optimizer_steps", 0);
  f.object("window");
  s.elapsed_s = f.number("elapsed_s");
  s.tokens_seen = f.integer("tokens_seen", 0);
  s.data_path = f.string("data_path");
  f.integer("data_bytes", 0);
  if (!f.raw("batcher").is_object()) f.fail("batcher", "an object");
  JsonFields of = f.object("options");
  const TrainOptions o = options_from_fields(of);
  if (opts) *opts = o;
  f.finish();
  return s;
}

}  // namespace

TrainProgress train_progress_from_json(std::string_view train_state, std::string_view origin) {
  TrainProgress p;
  if (is_loop_train_state(train_state)) {
    const TrainStateSummary t = train_state_summary(train_state, origin);
    p.options = train_options_from_json(t.options_json, std::string(origin) + ": metadata \"train_state\": \"options\"");
    p.step = t.step;
    p.epoch = t.epoch;
    p.lr = t.lr;
    p.best_valid_loss = t.best_valid_loss;
    p.best_step = t.best_step;
    p.elapsed_s = t.elapsed_s;
    p.tokens_seen = t.tokens_seen;
    p.data_path = p.options.data_path;
    return p;
  }
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

// ---- resume ----

namespace {

using Copy = std::function<void(const TrainOptions&, TrainOptions&)>;
#define RECUR_FLAG(flag, field) {flag, [](const TrainOptions& s, TrainOptions& d) { d.field = s.field; }}

// Every flag a resumed run takes from the checkpoint unless given again (not --time,
// --diagnostics, --out, --resume, --force: choices of this invocation).
const std::vector<std::pair<std::string, Copy>>& inherited_flags() {
  static const std::vector<std::pair<std::string, Copy>> t = {
      RECUR_FLAG("--task", task), RECUR_FLAG("--valid", valid_path), RECUR_FLAG("--test", test_path),
      RECUR_FLAG("--valid-fraction", valid_fraction), RECUR_FLAG("--level", level), RECUR_FLAG("--mode", mode),
      RECUR_FLAG("--max-vocab", max_vocab), RECUR_FLAG("--min-count", min_count), RECUR_FLAG("--cell", cell),
      RECUR_FLAG("--gru-reset", gru_reset), RECUR_FLAG("--layers", layers), RECUR_FLAG("--hidden", hidden),
      RECUR_FLAG("--embed", embed), RECUR_FLAG("--proj", proj), RECUR_FLAG("--peephole", peephole),
      RECUR_FLAG("--tie-weights", tie_weights),
      RECUR_FLAG("--bidirectional", bidirectional), RECUR_FLAG("--dropout", dropout),
      RECUR_FLAG("--init-scale", init_scale), RECUR_FLAG("--precision", precision), RECUR_FLAG("--optimizer", optimizer.type),
      RECUR_FLAG("--lr", optimizer.lr), RECUR_FLAG("--momentum", optimizer.momentum),
      RECUR_FLAG("--weight-decay", optimizer.weight_decay), RECUR_FLAG("--batch", batch),
      RECUR_FLAG("--seq-len", seq_len), RECUR_FLAG("--clip-norm", clip_norm), RECUR_FLAG("--clip-value", clip_value),
      RECUR_FLAG("--lr-decay", lr_decay), RECUR_FLAG("--decay-after", decay_after),
      RECUR_FLAG("--plateau-decay", plateau_decay), RECUR_FLAG("--plateau-patience", plateau_patience),
      RECUR_FLAG("--warmup", warmup),
      RECUR_FLAG("--epochs", epochs), RECUR_FLAG("--steps", steps), RECUR_FLAG("--seed", seed),
      RECUR_FLAG("--diverge-factor", diverge_factor), RECUR_FLAG("--patience", patience),
      RECUR_FLAG("--valid-every", valid_every),
      RECUR_FLAG("--log-every", log_every), RECUR_FLAG("--eval-batch", eval_batch),
      RECUR_FLAG("--char-rnn", char_rnn), RECUR_FLAG("--char-embed", char_embed),
      RECUR_FLAG("--char-hidden", char_hidden), RECUR_FLAG("--condition-every-step", condition_every_step),
      RECUR_FLAG("--binary", binary), RECUR_FLAG("--features", features), RECUR_FLAG("--keep-case", keep_case),
      RECUR_FLAG("--lower-words", lower_words),
      RECUR_FLAG("--embeddings", embeddings_path), RECUR_FLAG("--freeze-embeddings", freeze_embeddings),
      RECUR_FLAG("--embeddings-vocab", embeddings_vocab),
      RECUR_FLAG("--text-column", text_column), RECUR_FLAG("--label-column", label_column),
      RECUR_FLAG("--token-column", token_column), RECUR_FLAG("--tag-column", tag_column),
      RECUR_FLAG("--header", header), RECUR_FLAG("--crf", crf), RECUR_FLAG("--tag-scheme", tag_scheme),
      RECUR_FLAG("--attention", attention), RECUR_FLAG("--input-feed", input_feed), RECUR_FLAG("--pool", pool),
      RECUR_FLAG("--word-dropout", word_dropout), RECUR_FLAG("--extend-vocab", extend_vocab)};
  return t;
}
#undef RECUR_FLAG

std::string checkpoint_train_state(const std::string& path) {
  return is_task_checkpoint(path) ? load_task_checkpoint(path).train_state : load_checkpoint(path).train_state;
}

// Defaults of the task models where the language model's make no sense for them.
TrainOptions with_task_defaults(TrainOptions o) {
  if (!o.is_model_task() || !o.resume_path.empty()) return o;
  if (!o.given.count("--layers")) o.layers = 1;
  if (!o.given.count("--embed")) o.embed = 100;
  if (!o.given.count("--eval-batch")) o.eval_batch = 64;
  return o;
}

LoopOptions loop_options(const TrainOptions& o) {
  LoopOptions l;
  l.optimizer = o.optimizer;
  if (l.optimizer.lr <= 0) l.optimizer.lr = default_lr(o.optimizer.type);
  l.clip_norm = o.clip_norm;
  l.clip_value = o.clip_value;
  l.schedule = {.lr0 = l.optimizer.lr, .decay = o.lr_decay, .decay_after = o.decay_after,
                .plateau_decay = o.plateau_decay, .plateau_patience = o.plateau_patience,
                .warmup = o.warmup};
  l.epochs = o.epochs;
  l.steps = o.steps;
  l.time_limit = o.time_limit;
  l.seed = o.seed;
  l.valid_every = o.valid_every;
  l.log_every = o.log_every;
  l.diagnostics_every = o.diagnostics_every;
  l.diverge_factor = o.diverge_factor;
  l.patience = o.patience;
  l.out_dir = o.out_dir;
  l.resuming = !o.resume_path.empty();
  l.resume_path = o.resume_path;
  l.options_json = train_options_to_json(o);
  return l;
}

// A prepared corpus fixes the level, mode and vocabulary options it was made with: they come
// from its manifest, and a flag given with another value is refused by name rather than
// silently training on data other than the flag says.
TrainOptions with_prepared_corpus(TrainOptions o) {
  if (o.task != "lm" || !is_prepared_corpus(o.data_path)) return o;
  const std::string manifest =
      fs::is_directory(o.data_path) ? (fs::path(o.data_path) / "manifest.json").string() : o.data_path;
  const PreparedManifest m = read_prepared_manifest(manifest);
  auto fixed = [&](const char* flag, const std::string& mine, const std::string& theirs, const char* prepare_flag) {
    if (o.given.count(flag) && mine != theirs)
      throw Error(std::string(flag) + " " + mine + " does not match the prepared corpus's " + theirs + " (" + manifest +
                  "); prepare the text again with " + prepare_flag + " " + mine + " or leave " + flag + " out");
  };
  fixed("--level", token_level_name(o.level), token_level_name(m.level), "--level");
  fixed("--mode", text_mode_name(o.mode), text_mode_name(m.mode), "--mode");
  fixed("--max-vocab", std::to_string(o.max_vocab), std::to_string(m.vocab_options.max_vocab), "--max-vocab");
  fixed("--min-count", std::to_string(o.min_count), std::to_string(m.vocab_options.min_count), "--min-count");
  if (o.given.count("--valid-fraction") && o.valid_fraction > 0 && o.valid_path.empty())
    throw Error("--valid-fraction: a prepared corpus is not split (" + manifest +
                "); keep the validation text apart and pass it with --valid");
  o.level = m.level;
  o.mode = m.mode;
  o.max_vocab = m.vocab_options.max_vocab;
  o.min_count = m.vocab_options.min_count;
  return o;
}

// `corpus` null: everything but music.
TrainResult run_task(const TrainOptions& in, const TokenCorpus* corpus, const TrainObserver& obs,
                     const std::atomic<bool>* stop) {
  const TrainOptions o = with_prepared_corpus(with_task_defaults(in.resume_path.empty() ? in : resume_options(in)));
  o.validate();
  if (o.task == "music" && !corpus) throw Error("--task music: the music corpus is made by the caller (music_corpus.h)");
  detail::check_run_dir(o.out_dir, !o.resume_path.empty(), o.force);
  const detail::NoteFn note = [&](const std::string& s) {
    if (obs.on_note) obs.on_note(s);
  };
  ResumeState resume;
  // The sizes behind an allocation that cannot be met come from these flags: name them rather
  // than end in std::bad_alloc (--hidden 1000000 did).
  const auto out_of_memory = [&](const char* what) {
    return Error(std::string("out of memory ") + what + " (--hidden " + std::to_string(o.hidden) + ", --layers " +
                 std::to_string(o.layers) + ", --embed " + std::to_string(o.embed) + ", --batch " +
                 std::to_string(o.batch) + "); expected sizes that fit this machine's memory");
  };
  std::unique_ptr<TrainTask> task;
  try {
    task = o.is_model_task() ? detail::make_model_task(o, &resume, note) : detail::make_lm_task(o, corpus, &resume, note);
  } catch (const std::bad_alloc&) {
    throw out_of_memory("building the model and its data");
  }
  try {
    return train(*task, loop_options(o), std::move(resume), obs, stop);
  } catch (const std::bad_alloc&) {
    throw out_of_memory("while training");
  }
}

}  // namespace

TrainOptions resume_options(const TrainOptions& opts) {
  const std::string& path = opts.resume_path;
  const std::string state = checkpoint_train_state(path);
  if (state.empty()) throw FormatError(path + ": metadata \"train_state\": missing; this model cannot be resumed");
  if (!is_loop_train_state(state))
    throw FormatError(path + ": metadata \"train_state\": written by recur's version-1 trainer, which this recur "
                      "cannot resume (the model still loads for sample, eval and info); start a fresh run");
  const TrainStateSummary t = train_state_summary(state, path);
  const TrainOptions saved = train_options_from_json(t.options_json, path + ": metadata \"train_state\": \"options\"");
  if (opts.given.count("--task") && opts.task != saved.task)
    throw Error("--task " + opts.task + " does not match the checkpoint's " + saved.task + " (" + path +
                "); a resumed run keeps its task");
  TrainOptions o = saved;
  for (const auto& [flag, copy] : inherited_flags())
    if (opts.given.count(flag)) copy(opts, o);
  o.given = opts.given;
  o.data_path = opts.data_path;
  o.out_dir = opts.out_dir;
  o.resume_path = opts.resume_path;
  o.force = opts.force;
  o.time_limit = opts.time_limit;
  o.diagnostics_every = opts.diagnostics_every;
  return o;
}

namespace {
// A word a POSIX shell reads back as itself.
std::string shell_word(const std::string& w) {
  if (!w.empty() && w.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./=:,+@%") ==
                        std::string::npos)
    return w;
  std::string q = "'";
  for (char c : w) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}
}  // namespace

std::string resume_hint(const TrainOptions& o, const TrainResult& r, const std::vector<std::string>& data) {
  if (!r.interrupted && !r.out_of_time) return "";
  std::string cmd = "recur train";
  // Appended piece by piece: GCC 12 warns (-Wrestrict, a false positive) on " " + word here.
  for (const std::string& d : data) cmd.append(" ").append(shell_word(d));
  cmd.append(" --out ").append(shell_word(o.out_dir)).append(" --resume");
  // Without --time a resumed run has no time budget: the saved --epochs/--steps, or 10 epochs
  // when the run had none (trainer.h), which a run on a time budget alone may already have met.
  if (o.time_limit > 0) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g", o.time_limit);
    cmd += std::string(" --time ") + buf;
  }
  return "continue with: " + cmd;
}

std::string nothing_to_do_message(const TrainOptions& o, const TrainResult& r) {
  if (r.early_stopped)
    return "nothing to do: the run in " + o.out_dir + " stopped early at step " + std::to_string(r.step) +
           " (--patience " + std::to_string(o.patience) + "); pass a larger --patience to continue it";
  std::string met;
  if (o.steps > 0 && r.step >= o.steps) met = "its --steps budget of " + std::to_string(o.steps) + "; pass a larger --steps";
  else if (o.epochs > 0) met = "its --epochs budget of " + std::to_string(o.epochs) + "; pass a larger --epochs";
  else
    met = "the default budget of 10 epochs (none of --epochs, --steps, --time given); pass --time SECONDS or "
          "--epochs or --steps above it";
  return "nothing to do: the run in " + o.out_dir + " is at step " + std::to_string(r.step) + ", epoch " +
         std::to_string(r.epoch) + ", which already meets " + met + " to continue it";
}

TrainResult train_run(const TrainOptions& opts, const TrainObserver& obs, const std::atomic<bool>* stop) {
  return run_task(opts, nullptr, obs, stop);
}

TrainResult train_language_model(const TrainOptions& opts, const TrainObserver& obs, const std::atomic<bool>* stop) {
  if (opts.task != "lm") throw Error("--task " + opts.task + ": not a language model on text; use train_run");
  return run_task(opts, nullptr, obs, stop);
}

TrainResult train_language_model(const TrainOptions& opts, const TokenCorpus& corpus, const TrainObserver& obs,
                                 const std::atomic<bool>* stop) {
  if (opts.level != TokenLevel::words) throw Error("--level: a token corpus is word-level; expected --level word");
  return run_task(opts, &corpus, obs, stop);
}

}  // namespace recur
