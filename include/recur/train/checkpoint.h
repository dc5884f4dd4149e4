// recur/train/checkpoint.h - one .safetensors file that holds a trained language model and, when it
// comes from a training run, everything needed to resume that run exactly.
//
// Written as a model file (train/model_file.h, "recur-model" version 2), like every recur model:
//   tensors   the LM graph's parameters under PyTorch word_language_model names
//             ("encoder.weight", "rnn.weight_ih_l0", ..., "decoder.weight", "decoder.bias"), F32;
//             training tensors under "optim." (optimizer moments, see optim.h) and "train."
//             (e.g. the recurrent state carried between stream chunks), F32.
//   metadata  "task": {"kind": "lm", "config": the LmSpec (level, mode, sizes), "tokens": what
//             the tokens mean when they are not plain text (e.g. {"task":"music",...}, see
//             music_corpus.h), absent for text}; "model": the graph (lm_model_spec of the
//             config, checked to agree with it); "vocab.tokens"; "train_state" (train/loop.h).
// Read: that, and the version-1 language-model format ("format": "recur-lm", "format_version":
// "1", metadata "config", "vocab", "train_state", "task"), the same tensors. The "format"
// metadata picks the reader.
//
// Loading treats the file as untrusted: every metadata field is checked for presence and type,
// unknown fields and tensors are refused, all parameter shapes are checked against the config,
// and a format_version above the one this build writes is refused as "written by a newer
// recur". Every error is one FormatError line naming the file and the field.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "recur/core/quantize.h"
#include "recur/model/lm.h"
#include "recur/data/text_data.h"
#include "recur/data/vocab.h"

namespace recur {

// The version-1 language-model format, read but no longer written (save_checkpoint writes a
// "recur-model" file, train/model_file.h).
inline constexpr std::string_view kCheckpointFormat = "recur-lm";
inline constexpr int kCheckpointVersion = 1;

// What a language model is: the network plus how text becomes tokens and examples.
struct LmSpec {
  LmConfig lm;
  TokenLevel level = TokenLevel::chars;
  TextMode mode = TextMode::stream;

  void validate() const;  // LmConfig::validate plus "a language model cannot be bidirectional"
};

// {"vocab_size":..,"embed_size":..,"dropout":..,"level":"chars","mode":"stream",
//  "rnn":{"cell":"lstm","gru_reset":"after","input_size":..,"hidden_size":..,"proj_size":..,
//         "num_layers":..,"bidirectional":false,"peephole":false,"bias":true,"dropout":..}}
std::string lm_spec_to_json(const LmSpec& spec);
// Throws FormatError "<origin>: config: \"<field>\": <what was expected>".
LmSpec lm_spec_from_json(std::string_view json, std::string_view origin);

// One line for `recur info` and logs: "lstm 2x128 (one-hot input), chars, stream, V=65".
std::string lm_spec_summary(const LmSpec& spec);
int64_t lm_param_count(const LmSpec& spec);  // model_param_count of the LM's graph

// A usable model: enough to sample, score and evaluate.
struct LmModel {
  LmSpec spec;
  Vocab vocab;
  ModelParams<float> params;  // the graph of lm_model_spec(spec.lm) (lm.h)
  // The "task" metadata: a JSON object text, or empty for a text language model. The checkpoint
  // only checks that it is an object; its owner (music_corpus.h for "music") reads the fields.
  std::string task;
  // The precision generation runs in (stepper.h): the file's own (model_file.h: an export's bf16
  // or int8, else f32); `recur sample --precision` overrides it. save_checkpoint ignores it.
  Precision precision = Precision::f32;

  ModelSpec graph() const;  // lm_model_spec(spec.lm)
};

struct Checkpoint {
  LmModel model;
  std::string train_state;                      // JSON object text; empty for a bare model
  std::map<std::string, Tensor<float>> tensors;  // "optim.*" and "train.*" training tensors
};

// Checks the model (spec, vocab size and level, parameter shapes, finite values) and writes
// atomically (temporary file, fsync, rename). Throws Error naming the path.
void save_checkpoint(const std::string& path, const Checkpoint& ckpt);

// Reads and validates everything except the contents of train_state, which the trainer checks
// when it resumes (and `recur info` when it reports). Throws FormatError naming the path.
Checkpoint load_checkpoint(const std::string& path);

// `recur export`: the model of a checkpoint (any model file or version this build reads, a
// language or a task model) written to `out` without its training state, its weight matrices
// stored in `precision` (model_file.h; f32 keeps them as they are). Returns the file's task kind.
std::string export_model(const std::string& in, const std::string& out, Precision precision);

// True when every parameter value is finite (no NaN or infinity).
bool lm_params_finite(const LmSpec& spec, const ModelParams<float>& params);

}  // namespace recur
