#include "recur/train/model_file.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "json_fields.h"
#include "quote.h"
#include "recur/core/safetensors.h"

namespace recur {

namespace {

const std::string& metadata_field(const SafetensorsReader& rd, const char* key, const char* expected) {
  auto it = rd.metadata().find(key);
  if (it == rd.metadata().end())
    throw FormatError(rd.origin() + ": metadata \"" + key + "\": missing; expected " + expected);
  return it->second;
}

FileFormat file_format_of(const SafetensorsReader& rd) {
  FileFormat f;
  f.format = metadata_field(rd, "format", "a recur checkpoint (\"recur-model\" or \"recur-lm\")");
  const std::string& v = metadata_field(rd, "format_version", "a version number");
  // Digits only, no sign or leading zero, and small enough for an int: a version is a counter.
  const bool digits = !v.empty() && v.size() <= 6 && std::all_of(v.begin(), v.end(), [](char c) { return c >= '0' && c <= '9'; });
  if (!digits || v[0] == '0')
    throw FormatError(rd.origin() + ": metadata \"format_version\": got " + quote_name(v) + ", expected a positive integer");
  f.version = std::stoi(v);
  return f;
}

bool is_vocab_name(std::string_view name) {
  return std::find(std::begin(kModelFileVocabs), std::end(kModelFileVocabs), name) != std::end(kModelFileVocabs);
}

void check_object(const std::string& json, const std::string& where) {
  JsonFields f(std::string_view(json), where);  // throws FormatError unless it is one JSON object
  (void)f;
}

// The parameters an export of `precision` stores compressed: the weight matrices of rnn, linear
// and embedding layers (what generation multiplies or looks up); none for f32. `params` gives
// the shapes (checked against `spec` by the caller).
std::set<std::string> compressed_weights(const ModelSpec& spec, const ModelParams<float>& params, Precision precision) {
  std::set<std::string> out;
  if (precision == Precision::f32) return out;
  model_for_each_param(spec, params, [&](const std::string& n, const Tensor<float>& t, bool) {
    const std::string layer = n.substr(0, n.find('.'));
    const int64_t i = spec.layer_index(layer);
    if (i < 0 || t.rank() != 2) return;
    const LayerKind k = spec.layers[size_t(i)].kind;
    if (k == LayerKind::rnn || k == LayerKind::linear || k == LayerKind::embedding) out.insert(n);
  });
  return out;
}

}  // namespace

FileFormat read_file_format(const std::string& path) { return file_format_of(SafetensorsReader::open(path)); }
FileFormat read_file_format(const SafetensorsReader& file) { return file_format_of(file); }

void save_model_file(const std::string& path, const ModelFile& file) {
  ModelFileView view{.task = file.task, .spec = file.spec, .params = file.params, .vocabs = {},
                     .train_state = file.train_state, .tensors = file.tensors, .precision = file.precision};
  for (const auto& [name, vocab] : file.vocabs) view.vocabs.emplace(name, &vocab);
  save_model_file(path, view);
}

void save_model_file(const std::string& path, const ModelFileView& file) {
  file.spec.validate();
  model_check_params(file.spec, file.params);
  bool finite = true;
  model_for_each_param(file.spec, file.params, [&](const std::string&, const Tensor<float>& t, bool) {
    for (float v : t.data) finite = finite && std::isfinite(v);
  });
  if (!finite) throw Error(path + ": refusing to save a model with NaN or infinite weights");
  SafetensorsWriter w;
  w.set_metadata("format", std::string(kModelFileFormat));
  w.set_metadata("format_version", std::to_string(kModelFileVersion));
  w.set_metadata("task", file.task);
  w.set_metadata("model", model_spec_to_json(file.spec));
  for (const auto& [name, vocab] : file.vocabs) {
    if (!is_vocab_name(name)) throw Error(path + ": vocabulary " + quote_name(name) + " has no place in a model file");
    w.set_metadata("vocab." + name, vocab->to_json());
  }
  if (!file.train_state.empty()) w.set_metadata("train_state", file.train_state);
  if (file.precision != Precision::f32) {
    if (!file.train_state.empty() || !file.tensors.empty())
      throw Error(path + ": a " + std::string(precision_name(file.precision)) +
                  " export is for inference and holds no training state");
    w.set_metadata("precision", std::string(precision_name(file.precision)));
  }
  const std::set<std::string> compressed = compressed_weights(file.spec, file.params, file.precision);
  model_for_each_param(file.spec, file.params, [&](const std::string& n, const Tensor<float>& t, bool) {
    if (!compressed.count(n)) return w.add_view(n, t);  // `file` outlives w.write
    const QuantizedMatrix q = quantize_matrix(t.ptr(), t.dim(0), t.dim(1), file.precision, {.panels = false});
    if (q.precision == Precision::bf16) {
      w.add_bytes(n, DType::bf16, t.shape, std::string(reinterpret_cast<const char*>(q.bf16.data()), q.bf16.size() * 2));
    } else {
      w.add_bytes(n, DType::i8, t.shape, std::string(reinterpret_cast<const char*>(q.q.data()), q.q.size()));
      Tensor<float> scale({t.dim(0)});
      scale.data = q.scale;
      w.add(n + ".scale", scale);
    }
  });
  for (const auto& [name, t] : file.tensors) {
    if (name.rfind("optim.", 0) != 0 && name.rfind("train.", 0) != 0)
      throw Error(path + ": training tensor " + quote_name(name) + " must be named optim.* or train.*");
    w.add_view(name, t);
  }
  w.write(path);
}

ModelFile load_model_file(const std::string& path) { return load_model_file(SafetensorsReader::open(path)); }

ModelFile load_model_file(const SafetensorsReader& rd) {
  const std::string& path = rd.origin();
  const FileFormat ff = file_format_of(rd);
  if (ff.format != kModelFileFormat)
    throw FormatError(path + ": metadata \"format\": got " + quote_name(ff.format) + ", expected 'recur-model'");
  if (ff.version > kModelFileVersion)
    throw FormatError(path + ": format_version " + std::to_string(ff.version) + " was written by a newer recur; this build reads versions 1 to " +
                      std::to_string(kModelFileVersion));
  const auto& meta = rd.metadata();
  ModelFile file;
  for (const auto& [key, value] : meta) {
    if (key == "format" || key == "format_version" || key == "task" || key == "model") continue;
    if (key == "precision") {
      try {
        file.precision = parse_precision(value, "");
      } catch (const Error&) {
        throw FormatError(path + ": metadata \"precision\": got " + quote_name(value) + ", expected bf16 or int8");
      }
      if (file.precision == Precision::f32)
        throw FormatError(path + ": metadata \"precision\": got " + quote_name(value) + ", expected bf16 or int8 (float32 files have none)");
      continue;
    }
    if (key == "train_state") {
      check_object(value, path + ": metadata \"train_state\"");
      file.train_state = value;
    } else if (key.rfind("vocab.", 0) == 0 && is_vocab_name(std::string_view(key).substr(6))) {
      file.vocabs.emplace(key.substr(6), Vocab::from_json(value, path + ": metadata " + quote_name(key)));
    } else {
      throw FormatError(path + ": metadata " + quote_name(key) + ": unknown key");
    }
  }
  file.task = metadata_field(rd, "task", "the task record");
  check_object(file.task, path + ": metadata \"task\"");
  file.spec = model_spec_from_json(metadata_field(rd, "model", "the model graph"), path);
  {
    Rng rng(0);
    file.params = model_init_params<float>(file.spec, rng);  // the shapes; every value is read below
  }
  std::set<std::string> names;
  const std::set<std::string> compressed = compressed_weights(file.spec, file.params, file.precision);
  model_for_each_param(file.spec, file.params, [&](const std::string& n, Tensor<float>& t, bool) {
    names.insert(n);
    if (!compressed.count(n) || file.precision == Precision::bf16) {  // BF16 converts to float exactly
      t = rd.get<float>(n, t.shape);
      return;
    }
    // int8: q [N, K] I8 and scale [N] F32, checked before a value is used.
    const TensorInfo& info = rd.info(n);
    if (info.dtype != DType::i8 || info.shape != t.shape)
      throw FormatError(path + ": tensor " + quote_name(n) + ": expected I8 " + shape_str(t.shape) + " in an int8 export, got " +
                        std::string(dtype_name(info.dtype)) + " " + shape_str(info.shape));
    const Tensor<float> scale = rd.get<float>(n + ".scale", {t.dim(0)});
    names.insert(n + ".scale");
    const std::vector<int64_t> q = rd.get_int(n);
    const int64_t K = t.dim(1);
    for (int64_t r = 0; r < t.dim(0); ++r) {
      const float s = scale.data[size_t(r)];
      if (!std::isfinite(s) || s < 0)
        throw FormatError(path + ": tensor " + quote_name(n + ".scale") + ": row " + std::to_string(r) +
                          ": expected a finite scale >= 0");
      for (int64_t k = 0; k < K; ++k) {
        const int64_t v = q[size_t(r * K + k)];
        if (v < -127) throw FormatError(path + ": tensor " + quote_name(n) + ": value -128 at (" + std::to_string(r) + ", " +
                                        std::to_string(k) + "); expected -127..127");
        t.data[size_t(r * K + k)] = s * float(v);
      }
    }
  });
  for (const std::string& n : rd.names()) {
    if (names.count(n)) continue;
    if (n.rfind("optim.", 0) == 0 || n.rfind("train.", 0) == 0) {
      file.tensors[n] = rd.get<float>(n);
      continue;
    }
    throw FormatError(path + ": unexpected tensor " + quote_name(n) + " for this model");
  }
  return file;
}

}  // namespace recur
