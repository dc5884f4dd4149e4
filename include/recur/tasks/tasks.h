// recur/tasks/tasks.h - the supervised tasks the CLI trains, built from the composable model
// (model.h): sequence classification (many-to-one), tagging (many-to-many, equal lengths),
// sequence-to-sequence (encoder-decoder) and conditioned generation (one-to-many).
//
// A TaskModel is a ModelSpec with fixed layer and input names that the task code relies on:
//   inputs  "words" [T, B] | "features" [T, B, F]; "chars" [Tc, T*B] (--char-rnn);
//           "src" [Ts, B] and "tgt" [Tt, B] (seq2seq; with features "src" is [Ts, B, F]);
//           "cond" [B] and "tgt" (generate)
//           (generate with condition_every_step: "cond" is concatenated to every step's input)
//   layers  "out" the logits head: [B, C] (classify; C = 1 for binary), [T, B, C] (tag),
//           [Tt, B, V] (seq2seq, generate); "dec" the decoder of seq2seq / generate
// Decoders read <eos> as their start symbol and are trained with teacher forcing: input
// <eos> y1 .. yn, target y1 .. yn <eos>.
//
// Checkpoint: a model file (train/model_file.h, format "recur-model", written as version 2,
// versions 1 and 2 read) whose "task" record is the TaskSpec and labels (JSON; "features": true
// for numeric input), with vocabularies "words", "chars" and "targets" where used.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <span>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "recur/core/loss.h"
#include "recur/core/quantize.h"
#include "recur/model/decoding.h"
#include "recur/model/model.h"
#include "recur/core/random.h"
#include "recur/data/task_data.h"
#include "recur/data/vocab.h"
#include "recur/tasks/tag_scheme.h"

namespace recur {

enum class TaskKind { classify, tag, seq2seq, generate };
const char* task_kind_name(TaskKind kind);          // "classify", "tag", "seq2seq", "generate"
TaskKind parse_task_kind(std::string_view name);    // Error on anything else
bool is_task_kind(std::string_view name);

struct TaskSpec {
  TaskKind kind = TaskKind::classify;
  bool binary = false;     // classify with two labels: one sigmoid output (BCE) instead of softmax
  bool lowercase = true;   // classify / seq2seq text is lower-cased (ASCII) before splitting
  bool char_rnn = false;   // classify, tag on words: a character BiLSTM per word joins the word's embedding
  // tag: the word vocabulary reads each word ASCII lower-cased ("Paris" and "paris" one row, as
  // uncased vectors such as GloVe 6B expect); the character BiLSTM and the output keep the word
  // as written, so the case is still seen (Lample et al. 2016, Ma and Hovy 2016).
  bool lower_words = false;
  bool features = false;   // classify / tag / seq2seq (source side): numeric feature sequences instead of tokens
  bool condition_every_step = false;  // generate: the condition joins every step's input instead of
                                      // making the initial state
  int64_t max_word_chars = 30;  // with char_rnn: longer words are cut
  // tag: a linear-chain CRF (layer "crf" after "out", model/crf.h) scores whole tag sequences
  // and decodes with Viterbi under the train scheme's constraints.
  bool crf = false;
  // tag: the scheme of the data files (detected from the training file) and the one the model's
  // labels are in. Files are converted file -> train when read, predictions train -> file when
  // shown or scored, so metrics and output are in the file's own scheme. none: no conversion.
  TagScheme file_scheme = TagScheme::none, train_scheme = TagScheme::none;
  bool converts_tags() const { return file_scheme != TagScheme::none && (crf || file_scheme != train_scheme); }
  ConllOptions conll;      // tag: the columns the model was trained on (defaults when tagging)
  TableOptions table;      // classify: likewise
};

// Sizes of the model the CLI builds for a task.
struct TaskModelOptions {
  RnnConfig rnn;                 // cell, hidden_size, num_layers, bidirectional, proj_size, peephole, dropout
  int64_t embed = 100;           // word / token embedding width
  double dropout = 0.0;          // on embeddings and before the head
  int64_t char_embed = 25, char_hidden = 25;  // with char_rnn
  bool freeze_embeddings = false;             // pre-trained vectors stay as loaded
  // seq2seq: Luong attention of the decoder over the encoder's outputs (layer "attn" between
  // "dec" and "out", width R; attention.h); none = the decoder reads only its initial state.
  std::optional<AttentionScore> attention;
  // seq2seq with attention: input feeding (Luong et al. 2015 section 3.3), the decoder reads the
  // attention's previous output beside each target embedding (LayerSpec::feed).
  bool input_feed = false;
  // classify: the head reads the rnn's outputs pooled over time (layer "pool", model.h
  // ModelSpec::pool) instead of its final state; none = the final state (last step of each
  // direction).
  std::optional<PoolMode> pool;
};

struct TaskModel {
  TaskSpec task;
  ModelSpec spec;
  ModelParams<float> params;
  Vocab words{TokenLevel::words};    // input tokens (classify, tag, seq2seq source)
  Vocab chars{TokenLevel::chars};    // with char_rnn
  Vocab targets{TokenLevel::words};  // seq2seq target words; generate: characters
  std::vector<std::string> labels;   // classes, tags or conditions
  // The precision generation and translation step in (stepper.h): the file's own (an export's
  // bf16 or int8, else f32); `--precision` overrides it.
  Precision precision = Precision::f32;
  int32_t label_id(std::string_view label) const;  // -1 when unknown
  // The labels for an error message: "a, b, c", the first 12 then ", ..." when there are more.
  std::string labels_for_message() const;
};

// One example as the model reads it.
struct TaskExample {
  std::vector<int32_t> words;                // [T] input ids (tokens input)
  std::vector<std::vector<int32_t>> chars;   // [T][characters] (with char_rnn)
  std::vector<float> features;               // [T, F] (features input)
  int64_t steps = 0;                         // T
  std::vector<int32_t> targets;              // tag: [T] label ids; seq2seq / generate: output ids without <eos>
  int32_t label = -1;                        // classify: the class; generate: the condition
  int64_t line = 0;                          // where it came from (messages)
  // seq2seq: the pair's texts as in the file. BLEU scores against target_text, never against
  // target ids (an out-of-vocabulary word would become <unk> and match an output <unk>), and
  // takes every target of the same source_text as a reference ("" groups nothing: features).
  std::string source_text, target_text;
  std::vector<std::string> source_words;  // seq2seq on text: the source as split (unk replacement)
  // tag, a sentence holding a tag the model never saw in training (a rare type that fell into
  // the held-out part, or a test file's own): its gold tags as read (in the training scheme),
  // and `targets` stays empty. The sentence is left out of the loss (there is no id to score)
  // and scored in F1 like any other: the unseen tag's entities count as missed, as conlleval
  // would count them.
  std::vector<std::string> unseen_gold;
};

// An example as read from a file, before vocabularies.
struct RawExample {
  std::vector<std::string> input;   // words / tokens (empty for features)
  std::vector<float> features;      // [T, F]
  int64_t steps = 0;
  std::vector<std::string> output;  // tags (tag), target words (seq2seq), characters (generate)
  std::string label;                // classify class, generate condition
  std::vector<std::string> lines;   // tag: the file's lines of the sentence (written back by `recur tag`)
  std::vector<std::string> before, after;  // tag: blank and -DOCSTART- lines around it (task_data.h)
  std::string id;                   // features: the sequence id
  std::string source_text, target_text;  // seq2seq: the texts as in the file (TaskExample)
  int64_t line = 0;
};

// Reads a task's data file. tag: CoNLL; classify: TSV/CSV; seq2seq: "source<TAB>target";
// generate: "condition<TAB>text" lines, or a directory whose *.txt files are named after their
// condition with one text per line. With task.features (classify, tag, seq2seq) a features CSV
// "sequence_id,f1,...,fF,label|target" (task_data.h read_feature_sequences; seq2seq: the target
// text on a sequence's first row). with_targets = false accepts files without the label / tag /
// target column (prediction input; a features file keeps its label column except for seq2seq).
// *features_width is set for feature data; expect_width > 0 is the F every row must have.
std::vector<RawExample> read_task_file(const TaskSpec& task, const std::string& path, bool with_targets,
                                       int64_t* features_width = nullptr, int64_t expect_width = 0);
// Column and header options given when a trained model reads a file (recur eval, classify, tag),
// as `recur train` takes them: 1-based columns, 0 = the last; header 1 = the first row is a
// header, 0 = none, -1 = guess. Unset ones keep what the model was trained with.
struct TaskColumnOverrides {
  std::optional<int64_t> text_column, label_column;  // classify tables
  std::optional<int64_t> token_column, tag_column;   // tag (CoNLL)
  std::optional<int> header;                         // classify tables
  bool any() const { return text_column || label_column || token_column || tag_column || header; }
};
// Applies them to `task`; a column < 1 (or < 0 where 0 means the last) is an Error naming the flag.
void apply_column_overrides(TaskSpec& task, const TaskColumnOverrides& o);
// The same for a trained model: feature files are checked against the model's F.
std::vector<RawExample> read_task_file(const TaskModel& model, const std::string& path, bool with_targets);
// Bare texts as prediction input of a classifier or an encoder-decoder (`recur classify`,
// `recur translate`, the Python module): each text up to its first tab, split into words as in
// training (lower-cased unless the model keeps case). An empty text is a FormatError
// "<origin>:<n>: empty text; ..." (n counts from 1).
std::vector<RawExample> raw_examples_from_texts(const TaskModel& model, const std::vector<std::string>& texts,
                                               const std::string& origin);
// F of a model that reads numeric features ("features", or seq2seq "src"); 0 for token input.
int64_t task_features_width(const TaskModel& model);

struct TaskVocabOptions {
  int64_t max_vocab = 0;  // 0 = unlimited
  int64_t min_count = 1;
  // Input words appended after the counted vocabulary (and its --max-vocab / --min-count cut),
  // in this order, leaving out those it has: the words of pre-trained vectors
  // (--embeddings-vocab), so a word the training data lacks keeps its vector instead of <unk>.
  std::vector<std::string> extra_words;
};

// Builds the vocabularies and labels from training examples, then the model (parameters
// initialised from rng). features_width is F for feature input.
TaskModel build_task_model(const TaskSpec& task, const std::vector<RawExample>& train, const TaskVocabOptions& vocab,
                           const TaskModelOptions& model, int64_t features_width, Rng& rng);

// Fine-tuning on data with new words (recur train --init-from MODEL --extend-vocab): the words of
// `train` the model lacks (input words; a --char-rnn tagger's characters; a seq2seq model's target
// words, a generator's target characters) are appended to its vocabularies, in a vocabulary's
// own order (count, then bytes) among themselves, those seen at least vo.min_count times (characters:
// all) and up to vo.max_vocab in all (0 = no cap; input words and target words each). Their
// embedding rows, and the head's rows for new targets, are drawn as a new model's
// (model_grow_tokens, model_grow_head); existing ids and weights are unchanged, so the model
// computes what it did on every old word. Labels do not grow (an unknown one stays an error).
struct VocabGrowth {
  int64_t words = 0, chars = 0, targets = 0;  // tokens added to each
};
VocabGrowth extend_task_vocab(TaskModel& model, const std::vector<RawExample>& train, const TaskVocabOptions& vo, Rng& rng);

// Maps words and labels to ids. An unknown label (a class, tag or condition the model was not
// trained on) is a FormatError "<origin>:<line>: label 'x' was not seen in training (...)".
// with_targets = false leaves targets and labels empty.
std::vector<TaskExample> encode_task_examples(const TaskModel& model, const std::vector<RawExample>& raw,
                                              bool with_targets, const std::string& origin);

// A padded, time-major batch and its loss targets.
struct TaskBatch {
  ModelInputs<float> inputs;
  std::vector<int32_t> targets;  // softmax targets: [B] or [T*B] (-1 = padding)
  std::vector<float> binary;     // binary classify: [B] in {0, 1}
  int64_t steps = 0, batch = 0;  // of the head's output
};
TaskBatch make_task_batch(const TaskModel& model, std::span<const TaskExample* const> examples);

// Singleton word dropout (recur train --word-dropout, Lample et al. 2016): a word seen once in
// the training data is read as <unk> at some of its training occurrences, so the model learns
// what to do with the unknown words of new text from the context and characters.
//   count_words: adds each example's word ids into counts [V] (grown to V = vocab, the words
//     vocabulary's size; ids outside [0, V) are refused).
//   drop_singleton_words: each position of ids whose word has count 1 (never a special: <unk>,
//     <eos>, padding) becomes <unk> with probability p, one draw of rng per such position, in
//     order. Returns how many were replaced.
void count_words(const TaskExample& example, int64_t vocab, std::vector<int64_t>& counts);
int64_t drop_singleton_words(std::vector<int32_t>& ids, const std::vector<int64_t>& counts, double p, Rng& rng);

// Loss of the head's output for a batch; grad_out (nullptr: none) is d(loss * grad_scale)/dout.
// With a CRF (tag) the loss is the sequence NLL (crf_nll), count = the tagged tokens; the CRF's
// own parameter gradients come only through task_forward_backward.
LossSum task_loss(const TaskModel& model, const Tensor<float>& out, const TaskBatch& batch, Tensor<float>* grad_out,
                  double grad_scale);

// Forward (and, with grads, backward with the mean loss) of one batch.
// The loss's target positions in a batch (what the mean divides by).
int64_t task_target_count(const TaskModel& model, const TaskBatch& batch);
// total_targets > 0: scale the gradient by 1 / total_targets (a data-parallel rank's share of a
// larger batch) instead of by this batch's own count.
LossSum task_forward_backward(const TaskModel& model, const TaskBatch& batch, const ModelForwardOptions& opts,
                              ModelCache<float>& cache, ModelGrads<float>* grads, int64_t total_targets = 0,
                              const LayerDoneFn& layer_done = {});

// ---- prediction ----

// classify: class probabilities [C] per example.
std::vector<std::vector<double>> classify_probabilities(const TaskModel& model, const std::vector<TaskExample>& examples,
                                                        int64_t batch = 64);
// classify ensembles (recur eval / classify --ensemble): classifiers trained apart (other seeds,
// other validation splits) on the same labels, whose class probabilities are averaged per
// example, the standard remedy for the seed-to-seed spread of a small data set. Each member
// reads the text through its own vocabulary, so the examples come per member:
// examples[k] = encode_task_examples(models[k], raw, ...) of the same raw examples [N].
// check_ensemble: an Error naming names[k] when a member is not a classify model, reads text
// otherwise than the first (lower-casing, features) or has other labels (names or order).
void check_ensemble(std::span<const TaskModel> models, std::span<const std::string> names);
// The averaged probabilities [N][C]; checks as check_ensemble ("member k" for names) and that
// every member has N examples.
std::vector<std::vector<double>> ensemble_probabilities(std::span<const TaskModel> models,
                                                        std::span<const std::vector<TaskExample>> examples,
                                                        int64_t batch = 64);
// tag: the most likely tag id per token (labels in the train scheme): the arg-max of each
// token's scores, or with a CRF the best allowed sequence (Viterbi).
std::vector<std::vector<int32_t>> tag_predictions(const TaskModel& model, const std::vector<TaskExample>& examples,
                                                  int64_t batch = 64);

// tag: one sentence's label ids as the user sees them: in the file's scheme (TaskSpec).
std::vector<std::string> tag_output_strings(const TaskModel& model, const std::vector<int32_t>& ids);

// tag, before training: the file's scheme detected from `train` (whose tags must still be in
// it), the train scheme chosen from `requested` ("auto": the file's own, BIOES with a CRF; or
// "iob1", "bio", "bioes") and every sentence of `files` converted into it. Error when a chunk
// scheme is requested for tags that are not chunk tags.
void resolve_tag_schemes(TaskSpec& task, std::string_view requested, const std::vector<RawExample>& train,
                         const std::vector<std::vector<RawExample>*>& files);

// tag: `recur tag`'s output. Every input line in order with the predicted tag appended as a last
// column (conlleval's layout when the input has gold tags); "-DOCSTART-" lines get "O" (the tag
// conlleval gives a document boundary, and the same column count as the token lines) and blank
// lines stay blank. Each sentence ends with a blank line, the input's own when it has one.
// Features models (no lines) write the tags alone.
std::string tagged_text(const TaskModel& model, const std::vector<RawExample>& raw,
                        const std::vector<std::vector<int32_t>>& pred);

// seq2seq: output ids (without <eos>) per example; DecodeOptions and the decoding semantics are
// in decoding.h (greedy a batch at a time, beam search with all hypotheses of a batch stepped
// together).
std::vector<std::vector<int32_t>> translate(const TaskModel& model, const std::vector<TaskExample>& examples,
                                            const DecodeOptions& opts, int64_t batch = 64);

struct GenerateTaskOptions {
  double temperature = 1.0;
  int64_t max_length = 50;
  bool argmax = false;
};
// generate: one sample (output ids) for condition `label`.
std::vector<int32_t> generate_conditioned(const TaskModel& model, int32_t label, const GenerateTaskOptions& opts,
                                          Rng& rng);

// Output ids -> text (words joined by spaces; characters concatenated).
std::string task_output_text(const TaskModel& model, const std::vector<int32_t>& ids);

// ---- attention (seq2seq models trained with --attention) ----
bool task_has_attention(const TaskModel& model);
// Where the decoder looked: for each example, one row per output token and a last one for the
// <eos> that ended it, each the attention weights over the source positions
// [outputs[i].size() + 1][source length]. Computed by a teacher-forced pass over the decoded
// outputs, which gives the decoder the inputs it had at each step. Error without attention.
std::vector<std::vector<std::vector<float>>> attention_alignments(const TaskModel& model,
                                                                  const std::vector<TaskExample>& ex,
                                                                  const std::vector<std::vector<int32_t>>& outputs,
                                                                  int64_t batch = 64);
// An output's words with each <unk> replaced by the source word the decoder attended to most at
// that step (Luong et al. 2015b's unk replacement: names and numbers are copied through);
// `alignment` from attention_alignments, `source_words` as the model read them (TaskExample).
// `replaced` (optional): set to which positions were an <unk> replaced by a source word.
std::vector<std::string> replace_unknown_words(const TaskModel& model, const std::vector<int32_t>& output,
                                               const std::vector<std::vector<float>>& alignment,
                                               const std::vector<std::string>& source_words,
                                               std::vector<bool>* replaced = nullptr);
// One sentence's alignment as a tab-separated table: a header row of the source words, then a row
// per output word (and one for <eos>) with its weights, 3 decimals, and a blank line after.
std::string attention_table(const std::vector<std::string>& source_words, const std::vector<std::string>& output_words,
                            const std::vector<std::vector<float>>& alignment);
// Words -> text as task_output_text joins them.
std::string task_output_words_text(const TaskModel& model, const std::vector<std::string>& words);

// ---- evaluation ----
struct TaskEvalOptions {
  int64_t batch = 64;
  DecodeOptions decode;  // seq2seq
  bool decode_outputs = true;  // seq2seq: run the decoder for BLEU / exact match (else loss only)
  bool replace_unk = false;    // seq2seq with attention: score outputs after unk replacement
};
struct TaskEvalResult {
  LossSum loss;
  double metric = 0;          // tag: entity F1; classify: accuracy; seq2seq: BLEU; generate: -loss
  std::string metric_name;    // "f1", "accuracy", "bleu", "neg_loss"
  std::string report;         // multi-line report for `recur eval`
};
TaskEvalResult evaluate_task(const TaskModel& model, const std::vector<TaskExample>& examples,
                             const TaskEvalOptions& opts);

// A classify ensemble's metrics, as evaluate_task's for one classifier: the loss is the mean of
// -log(averaged probability of the gold label), then accuracy, macro-F1 and the confusion matrix
// of the averaged probabilities' arg-max. examples as for ensemble_probabilities, with targets.
TaskEvalResult evaluate_ensemble(std::span<const TaskModel> models, std::span<const std::vector<TaskExample>> examples,
                                 const TaskEvalOptions& opts);

// ---- checkpoints ----
inline constexpr std::string_view kTaskCheckpointFormat = "recur-model";
struct TaskCheckpoint {
  TaskModel model;
  std::string train_state;                        // JSON object text; empty for a bare model
  std::map<std::string, Tensor<float>> tensors;   // "optim.*"
};
void save_task_checkpoint(const std::string& path, const TaskCheckpoint& ck);
// The same file from the parts by reference: a training loop's checkpoint of its live model
// and optimizer state, written without copying them into a TaskCheckpoint first.
void save_task_checkpoint(const std::string& path, const TaskModel& model, const std::string& train_state,
                          const std::map<std::string, Tensor<float>>& tensors);
TaskCheckpoint load_task_checkpoint(const std::string& path);
// True when `path` is a safetensors file whose metadata format is "recur-model".
bool is_task_checkpoint(const std::string& path);
std::string task_model_summary(const TaskModel& model);  // one line

}  // namespace recur
