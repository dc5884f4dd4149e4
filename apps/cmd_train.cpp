// recur train DATA --out DIR - every task (trainer.h): this file only declares the options and
// calls the library, which validates them per task, resumes and runs the one loop (loop.h).
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "commands.h"
#include "lm_cli_util.h"
#include "music_cli_util.h"
#include "signals.h"
#include "recur/core/threads.h"
#include "recur/diag/plot.h"
#include "recur/tasks/trainer.h"
#include "task_cli.h"

namespace recur::cli {
namespace {

std::atomic<bool> g_stop{false};

struct TrainArgs {
  TrainOptions o;
  std::string level = "char", mode = "stream", cell = "lstm", gru_reset = "after", optimizer = "adam";
  std::string precision = "f32";
  int threads = 0;
  bool deterministic = false;  // --deterministic: the same bits at any --threads (core/threads.h)
  bool quiet = false;
  bool plots = false;            // --plots: recur plot's figures in --out when the run ends
  std::string diagnostics;       // --diagnostics [N]: "" = every 100 steps
  CLI::Option* diagnostics_opt = nullptr;
  bool resume_last = false;  // --resume without a file: DIR/last.safetensors
  std::vector<std::string> data;  // DATA: one file, or (--task music) music files and folders
  MusicTrainArgs music;
  CLI::App* sub = nullptr;
};

// --diagnostics takes an optional step interval; alone it means every 100 steps.
int64_t diagnostics_interval(const std::string& s) {
  if (s.empty()) return 100;
  size_t used = 0;
  long long n = -1;
  try {
    n = std::stoll(s, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != s.size() || n < 1) throw Error("--diagnostics: got " + s + ", expected a step interval >= 1");
  return n;
}

void to_options(TrainArgs& a) {
  TrainOptions& o = a.o;
  o.level = a.level == "char" || a.level == "chars" ? TokenLevel::chars : TokenLevel::words;
  o.mode = parse_text_mode(a.mode);
  o.cell = parse_cell(a.cell);
  o.gru_reset = parse_gru_reset(a.gru_reset);
  o.optimizer.type = parse_optimizer(a.optimizer);
  o.precision = parse_precision(a.precision, "--precision");
  if (o.precision == Precision::int8)
    throw Error("--precision: got 'int8', expected f32 or bf16 (int8 is for generation: recur export, recur sample)");
  // The library refuses flags a task cannot use and resumes with the flags not given again.
  for (const CLI::Option* opt : a.sub->get_options())
    if (opt->count() > 0 && !opt->get_lnames().empty()) o.given.insert("--" + opt->get_lnames()[0]);
}

class Printer {
 public:
  explicit Printer(bool quiet) : quiet_(quiet), tty_(::isatty(STDOUT_FILENO) != 0) {}

  void progress(const TrainLog& l) {
    if (!tty_ || quiet_) return;
    const auto now = std::chrono::steady_clock::now();
    if (now - last_draw_ < std::chrono::milliseconds(100)) return;
    last_draw_ = now;
    std::printf("\r\033[K%s", format_train_log(l).c_str());
    std::fflush(stdout);
    live_ = true;
  }
  void log(const TrainLog& l) {
    // --quiet: of the logged lines only the final result (the test split); metrics.jsonl keeps all.
    if (quiet_ && l.type != "test") return;
    if (live_) std::printf("\r\033[K");
    live_ = false;
    std::printf("%s\n", format_train_log(l).c_str());
    std::fflush(stdout);
  }
  void note(const std::string& s) {
    if (live_) std::printf("\r\033[K");
    live_ = false;
    std::fflush(stdout);
    std::fprintf(stderr, "recur: %s\n", s.c_str());
  }

 private:
  bool quiet_, tty_;
  bool live_ = false;
  std::chrono::steady_clock::time_point last_draw_{};
};

void run(TrainArgs& a) {
  to_options(a);
  TrainOptions& o = a.o;
  if (a.resume_last) {
    o.resume_path = (std::filesystem::path(o.out_dir) / "last.safetensors").string();
    if (!std::filesystem::exists(o.resume_path))
      throw Error(o.out_dir + ": no last.safetensors to resume from; start a fresh run without --resume");
  }
  if (a.diagnostics_opt->count() > 0) o.diagnostics_every = diagnostics_interval(a.diagnostics);
  // A resumed run takes its settings (the task too) from the checkpoint; flags given again override.
  if (!o.resume_path.empty()) o = resume_options(o);
  const bool music = o.task == "music";
  if (music && !o.given.count("--level")) o.level = TokenLevel::words;
  if (music) apply_prepared_music(a.music, a.data, o);
  if (!music && a.data.size() != 1)
    throw Error("DATA: got " + std::to_string(a.data.size()) + " inputs, expected one file (several are for --task music)");
  o.data_path.clear();
  for (const std::string& d : a.data) o.data_path += (o.data_path.empty() ? "" : " ") + d;
  apply_threads(a.threads);
  set_deterministic(a.deterministic);
  if (a.plots) require_gnuplot("--plots");  // before hours of training, not after
  Printer printer(a.quiet);
  TrainObserver obs;
  obs.on_progress = [&](const TrainLog& l) { printer.progress(l); };
  obs.on_log = [&](const TrainLog& l) { printer.log(l); };
  obs.on_note = [&](const std::string& s) { printer.note(s); };
  // A data-parallel run (mpirun -np N recur train ...) talks through rank 0 only.
  const bool leader = Communicator::world().rank() == 0;
  if (!leader) obs = TrainObserver();
  g_stop.store(false);
  // First Ctrl-C: finish the step, save, exit 130; a second one kills as usual (signals.h).
  std::optional<StopOnSignal> stop_on_signal(std::in_place, g_stop);
  std::string saved_task;  // a resumed music run's "task" metadata
  if (music) o.validate();  // before the corpus is read, not after
  if (music && !o.resume_path.empty()) saved_task = load_checkpoint(o.resume_path).model.task;
  const TrainResult r = music ? train_language_model(o, music_training_corpus(a.music, a.data, o, saved_task, obs.on_note),
                                                     obs, &g_stop)
                              : train_run(o, obs, &g_stop);
  stop_on_signal.reset();
  if (!leader) {
    if (r.interrupted) throw CLI::RuntimeError(130);
    return;
  }
  if (r.nothing_to_do) {
    printer.note(nothing_to_do_message(o, r));
    return;
  }
  std::string msg = "saved " + r.last_path;
  if (!r.best_path.empty()) {
    char buf[96];
    const double v = r.best_valid_loss;
    if (!r.metric_name.empty()) std::snprintf(buf, sizeof buf, " (valid %s %.4f)", r.metric_name.c_str(), r.best_metric);
    else if (o.level == TokenLevel::chars && !o.is_model_task())
      std::snprintf(buf, sizeof buf, " (valid loss %.4f, bpc %.4f)", v, v / std::log(2.0));
    else std::snprintf(buf, sizeof buf, " (valid loss %.4f, ppl %.2f)", v, std::exp(v));
    msg += " and " + r.best_path + buf;
  }
  printer.note(msg);
  if (a.plots)
    for (const std::string& f : plot_run(o.out_dir, o.out_dir)) printer.note("wrote " + f);
  if (const std::string hint = resume_hint(o, r, a.data); !hint.empty()) printer.note(hint);
  if (r.interrupted) throw CLI::RuntimeError(130);
}

}  // namespace

void add_train(CLI::App& app) {
  auto a = std::make_shared<TrainArgs>();
  TrainOptions& o = a->o;
  CLI::App* sub = app.add_subcommand("train", "Train a language model (text, music) or a task model (classify, tag, seq2seq, generate)");
  sub->add_option("DATA", a->data, "Training text (UTF-8; '-' = stdin); --task music: MIDI, ABC or JSB JSON files or folders")
      ->required();
  sub->footer(built_with_mpi()
                  ? "Data-parallel training: mpirun -np N recur train ... (each rank takes its share of every "
                    "batch; docs/distributed.md)."
                  : "Data-parallel training over MPI: this recur was built without MPI; install libopenmpi-dev "
                    "(scripts/setup.sh test) and rebuild, then mpirun -np N recur train ... (docs/distributed.md).");
  sub->add_option("--task", o.task, "lm: language model on text; music: on MIDI files (docs/music.md); classify, tag, seq2seq, generate: docs/tasks.md")
                    ->check(CLI::IsMember({"lm", "music", "classify", "tag", "seq2seq", "generate"}))->capture_default_str();
  sub->add_option("--out", o.out_dir, "Run directory: last/best.safetensors, metrics.jsonl (a directory of several files, hence not -o)")->required();
  a->sub = sub;
  auto* resume = sub->add_option("--resume", o.resume_path,
                                 "Continue the run in --out (or from FILE); settings not given again come from it")
                     ->expected(0, 1);
  sub->add_flag("--force", o.force, "Start a fresh run even if --out already holds one");
  sub->add_option("--init-from", o.init_from,
                  "Fine-tune: a fresh run (new data, fresh optimizer) starting from this model's architecture, "
                  "vocabularies and weights (any task; new tokens read as <unk> unless --extend-vocab)");
  sub->add_flag("--extend-vocab", o.extend_vocab,
                "With --init-from: the new data's tokens the model lacks (words, characters, target words) join its "
                "vocabularies with fresh embedding and output rows, chosen by --min-count and --max-vocab; without it "
                "they read as <unk> (not for one-hot character models or music)");
  const std::string d = "Data";
  sub->add_option("--valid", o.valid_path, "Validation text ('-' = stdin; default: hold out --valid-fraction)")->group(d);
  sub->add_option("--test", o.test_path, "Test text, evaluated with the best model at the end ('-' = stdin)")->group(d);
  sub->add_option("--valid-fraction", o.valid_fraction,
                  "Share of lines held out when there is no --valid (default: 5%; task models: 200 examples, "
                  "at least 5% and at most 20%)")
               ->group(d);
  sub->add_option("--level", a->level, "Tokens: char (code points) or word (whitespace)")
               ->check(CLI::IsMember({"char", "word", "chars", "words"}))->capture_default_str()->group(d);
  sub->add_option("--mode", a->mode, "stream: one text, truncated BPTT; lines: one example per line")
               ->check(CLI::IsMember({"stream", "lines"}))->capture_default_str()->group(d);
  sub->add_option("--max-vocab", o.max_vocab, "Vocabulary size cap incl. <unk>, <eos> (0 = all)")
               ->capture_default_str()->group(d);
  sub->add_option("--min-count", o.min_count, "Rarer tokens become <unk>")->capture_default_str()->group(d);

  const std::string m = "Model";
  sub->add_option("--cell", a->cell, "Recurrent cell")
               ->check(CLI::IsMember({"lstm", "gru", "rnn", "rnn_tanh", "rnn_relu"}))->capture_default_str()->group(m);
  sub->add_option("--gru-reset", a->gru_reset, "GRU reset gate: after (PyTorch/cuDNN) or before (Cho et al.)")
               ->check(CLI::IsMember({"after", "before"}))->capture_default_str()->group(m);
  sub->add_option("--layers", o.layers, "Stacked layers")->capture_default_str()->group(m);
  sub->add_option("--hidden", o.hidden, "Hidden units per layer")->capture_default_str()->group(m);
  sub->add_option("--embed", o.embed, "Embedding size (-1: one-hot for chars, = hidden for words; 0: one-hot)")
               ->capture_default_str()->group(m);
  sub->add_option("--proj", o.proj, "LSTM projection size (0 = none)")->capture_default_str()->group(m);
  sub->add_flag("--peephole,!--no-peephole", o.peephole, "LSTM peephole connections")->group(m);
  sub->add_flag("--tie-weights,!--no-tie-weights", o.tie_weights,
                "Language model: the decoder's weight is the input embedding (needs --embed = --hidden, or --proj)")
      ->group(m);
  sub->add_flag("--bidirectional,!--no-bidirectional", o.bidirectional, "Refused: a language model cannot read the future")->group(m);
  sub->add_option("--dropout", o.dropout, "Dropout on embeddings, between layers and on the output")
               ->capture_default_str()->group(m);
  sub->add_option("--init-scale", o.init_scale, "Init every weight U(-s, s) (0 = PyTorch's default scheme)")
               ->capture_default_str()->group(m);
  add_precision_option(sub, a->precision,
                       "f32 or bf16: mixed precision, the recurrent layers' products in bfloat16 with float32 weights, "
                       "optimizer and loss (oneDNN, AVX512-BF16; where it does not apply the run says so and trains in "
                       "float32)")
      ->group(m);

  const std::string t = "Training";
  sub->add_option("--optimizer", a->optimizer, "Optimizer")
                    ->check(CLI::IsMember({"sgd", "adam", "adagrad", "rmsprop"}))->capture_default_str()->group(t);
  sub->add_option("--lr", o.optimizer.lr, "Learning rate (0 = sgd 1, adam 0.002, adagrad 0.01, rmsprop 0.002)")
                   ->group(t);
  o.optimizer.lr = 0;
  sub->add_option("--momentum", o.optimizer.momentum, "SGD/RMSprop momentum")->group(t);
  sub->add_option("--weight-decay", o.optimizer.weight_decay, "L2 penalty")->group(t);
  sub->add_option("--batch", o.batch, "Parallel streams (stream) or examples per batch (lines)")
               ->capture_default_str()->group(t);
  sub->add_option("--seq-len", o.seq_len, "BPTT steps per chunk (stream mode)")->capture_default_str()->group(t);
  sub->add_option("--clip-norm", o.clip_norm, "Clip the global gradient norm (0 = off)")
               ->capture_default_str()->group(t);
  sub->add_option("--clip-value", o.clip_value, "Clip each gradient value (0 = off)")
               ->capture_default_str()->group(t);
  sub->add_option("--lr-decay", o.lr_decay, "Multiply lr by this each epoch after --decay-after")
               ->capture_default_str()->group(t);
  sub->add_option("--decay-after", o.decay_after, "Epochs at the full lr before --lr-decay applies")
               ->capture_default_str()->group(t);
  sub->add_option("--plateau-decay", o.plateau_decay, "Multiply lr by this when validation stops improving (0 = off)")
               ->capture_default_str()->group(t);
  sub->add_option("--plateau-patience", o.plateau_patience, "Evaluations without improvement before decaying")
               ->capture_default_str()->group(t);
  sub->add_option("--warmup", o.warmup, "Steps of linear learning-rate warm-up: step s of the first N trains at lr*s/N (0 = off)")
               ->capture_default_str()->group(t);
  sub->add_option("--epochs", o.epochs, "Stop after this many epochs in total (all budgets 0: 10 epochs)")
               ->group(t);
  sub->add_option("--steps", o.steps, "Stop after this many steps in total")->group(t);
  sub->add_option("--time", o.time_limit, "Stop after this many seconds (this invocation)")->group(t);
  sub->add_option("--seed", o.seed, "Seed of init, dropout and data order")->capture_default_str()->group(t);
  sub->add_option("--diverge-factor", o.diverge_factor, "Stop when the loss exceeds this times the first (0 = off)")
               ->capture_default_str()->group(t);
  sub->add_option("--patience", o.patience,
                  "Early stopping: stop after this many validations in a row without a better validation metric "
                  "(0 = off); best.safetensors keeps the best model")
               ->capture_default_str()->group(t);

  const std::string r = "Reporting";
  sub->add_option("--valid-every", o.valid_every, "Steps between validations and checkpoints (0 = each epoch)")
               ->capture_default_str()->group(r);
  sub->add_option("--log-every", o.log_every, "Steps between logged lines")->capture_default_str()->group(r);
  sub->add_option("--eval-batch", o.eval_batch, "Batch size of validation and test")
               ->capture_default_str()->group(r);
  sub->add_flag("--quiet", a->quiet, "Print only notes (warnings, resume hints), errors and the final result: no train or validation lines (metrics.jsonl keeps them)")->group(r);
  a->diagnostics_opt = sub->add_option("--diagnostics", a->diagnostics,
                                       "Every N steps (default 100) log hidden-state gradients, gate saturation and "
                                       "clipping to metrics.jsonl (type diag)")
                           ->expected(0, 1)->type_name("[N]")->group(r);
  sub->add_flag("--plots", a->plots, "At the end write recur plot's PNG/SVG figures into --out (needs gnuplot)")->group(r);
  add_music_train_options(sub, a->music);
  add_task_train_options(sub, o);
  add_threads_option(sub, a->threads);
  sub->add_flag("--deterministic", a->deterministic,
                "The same bits at any --threads: oneDNN's recurrent layers run on one thread (without it "
                "their gradients' last bits can depend on the count past 7 threads)");
  sub->callback([a, resume] {
    // --resume without a value is the run directory's last checkpoint.
    a->resume_last = resume->count() > 0 && a->o.resume_path.empty();
    run(*a);
  });
}

}  // namespace recur::cli
