// recur/tasks/trainer.h - `recur train` for every task: one options struct with every flag,
// validated per task, mapped onto the task's TrainTask (lm_task.h, model_task.h) and run by the
// one loop (train/loop.h).
//
// A run lives in one directory (loop.h): last.safetensors, best.safetensors, metrics.jsonl.
// Determinism: parameter init, dropout and data order draw from generators seeded by
// TrainOptions::seed; their states, the data position, the recurrent state carried between
// stream chunks, the optimizer moments and the logging window are all in the checkpoint, so a
// run stopped at any step and resumed logs bit-identical losses to an uninterrupted one, at any
// thread count (core/threads.h: past 7 threads with set_deterministic, --deterministic).
//
// Divergence: a non-finite loss or gradient norm, or a loss above diverge_factor times the
// first step's loss, stops the run with an Error; no checkpoint is written after that point,
// so the last good one stays.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <limits>
#include <set>
#include <string>
#include <string_view>

#include "recur/train/checkpoint.h"
#include "recur/train/loop.h"
#include "recur/core/optim.h"
#include "recur/data/corpus.h"

namespace recur {

inline constexpr double kValidFractionAuto = -1;
inline constexpr double kValidAutoExamples = 200;
// The share of `examples` training examples to hold out for `fraction` (kValidFractionAuto or
// [0, 1)); task models: 200 examples within 5%..20%, else 5%.
inline double valid_fraction_for(double fraction, int64_t examples, bool task_model) {
  if (fraction != kValidFractionAuto) return fraction;
  if (!task_model || examples <= 0) return 0.05;
  const double f = kValidAutoExamples / double(examples);
  return f < 0.05 ? 0.05 : f > 0.2 ? 0.2 : f;
}

struct TrainOptions {
  // "lm" (text), "music" (a TokenCorpus the caller makes, music_corpus.h), "classify", "tag",
  // "seq2seq" or "generate".
  std::string task = "lm";
  // The flags given on the command line ("--seq-len", ...): a flag given for a task it does not
  // apply to is refused by name (validate), a resumed run takes every flag not given from the
  // checkpoint (resume_options), and the task models' own defaults fill those not given.
  std::set<std::string> given;

  // Data.
  std::string data_path;
  std::string valid_path;        // empty: hold out valid_fraction of the training lines
  std::string test_path;         // empty: no final test report
  // [0, 1); 0 = no validation unless valid_path; kValidFractionAuto (the default): 5% of the
  // lines for language models and music, and for task models kValidAutoExamples examples kept
  // between 5% and 20% of the file (valid_fraction_for), so a small file still validates on
  // enough examples to tell epochs apart and a large one does not lose more than it needs.
  double valid_fraction = kValidFractionAuto;
  TokenLevel level = TokenLevel::chars;
  TextMode mode = TextMode::stream;
  int64_t max_vocab = 0;  // 0 = unlimited
  int64_t min_count = 1;

  // Model.
  CellType cell = CellType::lstm;
  GruReset gru_reset = GruReset::after;
  int64_t layers = 2;
  int64_t hidden = 128;
  int64_t embed = -1;  // -1: chars one-hot, words embed = hidden; 0: one-hot
  int64_t proj = 0;
  bool peephole = false;
  bool tie_weights = false;    // lm / music: the decoder's weight is the input embedding (needs embed = R)
  bool bidirectional = false;  // refused with the reason (kept so the refusal is the library's)
  double dropout = 0.0;        // on embeddings, between layers and on the last layer's output
  double init_scale = 0.0;     // > 0: every weight U(-s, s); 0: PyTorch's default scheme
  // --precision bf16: mixed precision, the recurrent layers' matrix products in bfloat16 with
  // float32 accumulation, weights, optimizer state and loss (rnn.h ForwardOptions::precision);
  // a layer or batch bf16 does not apply to trains in float32, and the run says so once.
  Precision precision = Precision::f32;

  // Optimisation.
  OptimizerConfig optimizer;  // lr <= 0: the optimizer's default (see default_lr)
  int64_t batch = 32;
  int64_t seq_len = 64;       // stream mode BPTT length
  double clip_norm = 5.0;     // 0 = off
  double clip_value = 0.0;    // 0 = off
  double lr_decay = 1.0;      // lr = lr0 * lr_decay^max(0, epoch - decay_after) (epoch 1-based)
  int64_t decay_after = 0;
  double plateau_decay = 0.0;    // (0, 1): multiply lr by it when validation does not improve; 0 = off
  int64_t plateau_patience = 0;  // evaluations without improvement tolerated before decaying
  int64_t warmup = 0;            // steps of linear learning-rate warm-up (schedule.h), 0 = off

  // Budget: the first limit reached stops the run (epochs and steps count from the start of
  // the run, also after a resume; seconds count per invocation). All 0: 10 epochs.
  int64_t epochs = 0;
  int64_t steps = 0;
  double time_limit = 0.0;

  uint64_t seed = 1;
  int64_t valid_every = 0;    // steps between evaluations; 0 = at each epoch end
  int64_t log_every = 50;     // steps between metrics lines
  int64_t eval_batch = 10;
  double diverge_factor = 10.0;  // 0 = only non-finite losses count as divergence
  // Early stopping: stop after this many validations in a row without improving on the best
  // validation metric (loss where the task selects on it); 0 = off. best.safetensors keeps the
  // best model; the count is saved, so --resume continues it (loop.h LoopOptions::patience).
  int64_t patience = 0;

  std::string out_dir;
  std::string resume_path;  // checkpoint to continue from; empty = a fresh run
  // Fine-tuning (task models): a fresh run (new data, fresh optimizer and schedule) whose model
  // - architecture, vocabularies, labels and weights - is this checkpoint's. Architecture and
  // vocabulary flags are refused with it; the data must fit the model (a label it does not know
  // is an error naming file and line). Empty = a new model.
  std::string init_from;
  bool extend_vocab = false;  // with init_from: the new data's tokens join the model's vocabularies (tasks.h extend_task_vocab)
  bool force = false;       // a fresh run may replace an existing run in out_dir
  // Every N steps (0 = off) a {"type":"diag"} line in metrics.jsonl: per-layer state-gradient
  // profiles, gate saturation, gradient norm before/after clipping (diagnostics.h). A reporting
  // choice of this invocation: not saved in the checkpoint, so --resume does not inherit it.
  int64_t diagnostics_every = 0;

  // Task models (classify, tag, seq2seq, generate; see tasks.h and docs/tasks.md).
  bool char_rnn = false;              // classify, tag: a character BiLSTM per word
  bool crf = false;                   // tag: a CRF output layer (tasks.h TaskSpec::crf)
  std::string attention = "none";     // seq2seq: none, dot, general or additive (tasks.h TaskModelOptions)
  std::string pool = "last";          // classify: last (the rnn's final state), max or mean over time
  // classify and tag on words: each training occurrence of a word seen once in the training
  // examples is read as <unk> with this probability (Lample et al. 2016's singleton dropout), so
  // the model learns what to make of words it has never seen; 0 = off. Drawn from the dropout
  // generator (its state is saved), only in training batches.
  double word_dropout = 0;
  bool input_feed = false;            // seq2seq with attention: the attention's output feeds the next step
  std::string tag_scheme = "auto";    // tag: the labels' scheme: auto (file's own; bioes with crf), iob1, bio, bioes
  int64_t char_embed = 25, char_hidden = 25;
  bool condition_every_step = false;  // generate
  bool binary = false;                // classify: one sigmoid output
  bool features = false;              // classify/tag/seq2seq: numeric CSV input
  bool keep_case = false;             // classify/seq2seq: no lower-casing
  bool lower_words = false;           // tag: the word vocabulary reads words lower-cased (TaskSpec::lower_words)
  std::string embeddings_path;        // pre-trained word vectors
  bool embeddings_vocab = false;      // the vectors' words join the input vocabulary after the training words
  bool freeze_embeddings = false;
  int64_t text_column = 1, label_column = 0, token_column = 1, tag_column = 0;  // 1-based; 0 = last
  int64_t header = -1;                // classify: 1 header, 0 none, -1 guess

  bool is_model_task() const;  // classify, tag, seq2seq or generate
  // Throws Error "--<flag>: got <value>, expected <range>" for the first bad value, or
  // "--<flag>: does not apply to --task <task> (<why>)" for a given flag the task cannot use.
  void validate() const;
};

// A resumed run: the options saved in opts.resume_path's train_state, overridden by the flags in
// opts.given (resume_path, out_dir, time_limit, diagnostics_every and force are this
// invocation's). The checkpoint may be a language model or a task model. Throws FormatError for
// a checkpoint without a resumable (version-2) train_state.
TrainOptions resume_options(const TrainOptions& opts);

// How to go on after a run ended early, as one line: "continue with: recur train DATA --out DIR
// --resume [--time S]" for a run stopped by its time budget (seconds count per invocation, so the
// hint gives this invocation's again) or interrupted; empty for a run that ended on its budget.
// `data` are the DATA arguments as given; each is shell-quoted where needed.
std::string resume_hint(const TrainOptions& o, const TrainResult& r, const std::vector<std::string>& data);
// The note of a resumed run whose step/epoch budget is already met (r.nothing_to_do): which
// budget, and the flag that raises it.
std::string nothing_to_do_message(const TrainOptions& o, const TrainResult& r);

double default_lr(OptimizerType type);  // sgd 1, adam 0.002, adagrad 0.01, rmsprop 0.002

// TrainOptions as JSON (kept in the checkpoint's train_state), and back. The CLI uses the
// saved options as the defaults of a resumed run.
std::string train_options_to_json(const TrainOptions& o);
TrainOptions train_options_from_json(std::string_view json, std::string_view origin);

// The progress of a run as saved in a checkpoint (the parts `recur info` shows).
struct TrainProgress {
  int64_t step = 0;
  int64_t epoch = 0;  // completed epochs
  double lr = 0;
  double best_valid_loss = std::numeric_limits<double>::infinity();
  int64_t best_step = 0;
  double elapsed_s = 0;
  int64_t tokens_seen = 0;
  std::string data_path;
  TrainOptions options;
};
// Throws FormatError naming `origin` and the field.
TrainProgress train_progress_from_json(std::string_view train_state, std::string_view origin);

// `stop` is polled after each step (set it from a signal handler): the run then writes
// last.safetensors and returns with interrupted = true.
TrainResult train_language_model(const TrainOptions& opts, const TrainObserver& obs,
                                 const std::atomic<bool>* stop = nullptr);
// Trains on a TokenCorpus (data/corpus.h) instead of opts.data_path (--task music).
TrainResult train_language_model(const TrainOptions& opts, const TokenCorpus& corpus, const TrainObserver& obs,
                                 const std::atomic<bool>* stop = nullptr);

// Every task but music: opts.task picks the language model or a task model.
TrainResult train_run(const TrainOptions& opts, const TrainObserver& obs, const std::atomic<bool>* stop = nullptr);

}  // namespace recur
