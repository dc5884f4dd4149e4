// recur/train/model_file.h - the checkpoint file of a model.h graph: what every recur model is
// saved as (format "recur-model"), and the one place that reads a checkpoint's format and
// version before anything else, so loading never guesses.
//
// One .safetensors file:
//   tensors   the graph's parameters under their names ("<layer>.weight", "<layer>.bias",
//             "<layer>.weight_ih_l0", ...: PyTorch's state_dict names), F32; training tensors
//             under "optim." (optimizer moments) and "train." (e.g. a carried recurrent state)
//   metadata  "format": "recur-model", "format_version": "1" or "2",
//             "task": the task record (JSON object: its "kind" and what the task code needs),
//             "model": the graph (model_spec_to_json),
//             "vocab.<name>": Vocab::to_json() for each vocabulary the task uses,
//             "train_state": the training loop's JSON, absent for a bare model,
//             "precision": "bf16" or "int8" for an inference-only export (recur export), absent
//             (float32) otherwise.
// An export stores the weight matrices of its rnn, linear and embedding layers compressed
// (quantize.h): bf16 as BF16 tensors; int8 as I8 tensors "<name>" [N, K] beside F32 row scales
// "<name>.scale" [N], W = scale[n] * q[n, k]. It holds no training state. Loading gives the
// float32 values the compressed weights stand for, so every path reads an export; quantising
// them again gives back the stored integers (and the scales up to a float rounding), so generation
// in the file's precision computes with the exported weights.
// Version 1 is what recur wrote before the engine rework (task models only); version 2 has the
// same layout and holds every model, the language model included (task record {"kind": "lm"},
// train/checkpoint.h). The older language-model format ("recur-lm" version 1) is read by
// train/checkpoint.h's own loader; read_file_format tells the two apart.
//
// The file is untrusted: metadata keys, the graph and every parameter's shape are checked, and
// unknown keys or tensors are refused; errors are one FormatError line naming the file and field.
#pragma once

#include <map>
#include <string>
#include <string_view>

#include "recur/core/quantize.h"
#include "recur/core/tensor.h"
#include "recur/data/vocab.h"
#include "recur/model/model.h"

namespace recur {

class SafetensorsReader;

inline constexpr std::string_view kModelFileFormat = "recur-model";
inline constexpr int kModelFileVersion = 2;  // what this build writes

// The "format" and "format_version" metadata of a recur checkpoint. Throws FormatError naming
// the file when it is not a safetensors file, has no such metadata, or the version is not a
// positive integer; the caller decides which (format, version) pairs it reads.
struct FileFormat {
  std::string format;  // "recur-model", "recur-lm"
  int version = 0;
};
FileFormat read_file_format(const std::string& path);
FileFormat read_file_format(const SafetensorsReader& file);  // a file already open

// Vocabulary names a model file may hold: input words, characters of words, output tokens, and
// the single vocabulary of a language model.
inline constexpr std::string_view kModelFileVocabs[] = {"words", "chars", "targets", "tokens"};

struct ModelFile {
  std::string task;   // JSON object text; read by the task code, only checked to be an object here
  ModelSpec spec;
  ModelParams<float> params;
  std::map<std::string, Vocab> vocabs;           // by name, see kModelFileVocabs
  std::string train_state;                       // JSON object text; empty for a bare model
  std::map<std::string, Tensor<float>> tensors;  // "optim.*" and "train.*"
  Precision precision = Precision::f32;           // how the matrices are stored (f32 unless an export)
};

// Checks the graph, the parameters (shapes, finite values) and the tensor names, then writes
// version kModelFileVersion atomically; with precision bf16 or int8, compressed as above (Error
// if the file has training state). Throws Error naming the path.
void save_model_file(const std::string& path, const ModelFile& file);

// A ModelFile's parts by reference, for save_model_file to write a training checkpoint (the
// weights and Adam's two moments, 200 MB for a 160,000-word table) straight from the buffers
// they live in, without a copy of each first. Everything referred to must outlive the call.
struct ModelFileView {
  const std::string& task;
  const ModelSpec& spec;
  const ModelParams<float>& params;
  std::map<std::string, const Vocab*> vocabs;
  const std::string& train_state;
  const std::map<std::string, Tensor<float>>& tensors;
  Precision precision = Precision::f32;
};
void save_model_file(const std::string& path, const ModelFileView& file);

// Reads "recur-model" versions 1 and 2; anything else is refused by name ("written by a newer
// recur" for a higher version). Throws FormatError naming the path and the field or tensor.
ModelFile load_model_file(const std::string& path);
ModelFile load_model_file(const SafetensorsReader& file);  // a file already open

}  // namespace recur
