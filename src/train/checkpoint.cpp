#include "recur/train/checkpoint.h"

#include <cmath>
#include <set>

#include "json_fields.h"
#include "quote.h"
#include "recur/core/rnn_io.h"
#include "recur/core/safetensors.h"
#include "recur/train/model_file.h"

namespace recur {

void LmSpec::validate() const {
  if (lm.rnn.bidirectional)
    throw Error(
        "a language model predicts the next token, so it cannot read the future: --bidirectional is for tag/classify "
        "tasks");
  lm.validate();
}

std::string lm_spec_to_json(const LmSpec& spec) {
  const RnnConfig& r = spec.lm.rnn;
  nlohmann::ordered_json rnn = {{"cell", cell_name(r.cell)},
                                {"gru_reset", gru_reset_name(r.gru_reset)},
                                {"input_size", r.input_size},
                                {"hidden_size", r.hidden_size},
                                {"proj_size", r.proj_size},
                                {"num_layers", r.num_layers},
                                {"bidirectional", r.bidirectional},
                                {"peephole", r.peephole},
                                {"bias", r.bias},
                                {"dropout", r.dropout}};
  nlohmann::ordered_json j = {{"level", token_level_name(spec.level)},
                              {"mode", text_mode_name(spec.mode)},
                              {"vocab_size", spec.lm.vocab_size},
                              {"embed_size", spec.lm.embed_size},
                              {"dropout", spec.lm.dropout},
                              {"rnn", rnn}};
  if (spec.lm.tie_weights) j["tie_weights"] = true;  // written only when set: untied files keep their bytes
  return j.dump();
}

LmSpec lm_spec_from_json(std::string_view json, std::string_view origin) {
  JsonFields f(json, std::string(origin) + ": config");
  LmSpec s;
  const std::string level = f.string("level");
  if (level == "chars") s.level = TokenLevel::chars;
  else if (level == "words") s.level = TokenLevel::words;
  else f.fail("level", "\"chars\" or \"words\"");
  const std::string mode = f.string("mode");
  if (mode == "stream") s.mode = TextMode::stream;
  else if (mode == "lines") s.mode = TextMode::lines;
  else f.fail("mode", "\"stream\" or \"lines\"");
  s.lm.vocab_size = f.integer("vocab_size", Vocab::num_special, int64_t(1) << 31);
  s.lm.embed_size = f.integer("embed_size", 0, int64_t(1) << 24);
  s.lm.dropout = f.number("dropout");
  if (f.has("tie_weights")) s.lm.tie_weights = f.boolean("tie_weights");  // absent: untied (files before issue 17)
  JsonFields r = f.object("rnn");
  f.finish();
  s.lm.rnn = read_rnn_config(r);
  try {
    s.validate();
  } catch (const FormatError&) {
    throw;
  } catch (const Error& e) {
    throw FormatError(std::string(origin) + ": config: " + e.what());
  }
  return s;
}

std::string lm_spec_summary(const LmSpec& spec) {
  const RnnConfig& r = spec.lm.rnn;
  std::string s = std::string(cell_name(r.cell));
  if (r.cell == CellType::gru && r.gru_reset == GruReset::before) s += " (reset before)";
  if (r.peephole) s += " (peephole)";
  // Appends rather than `"literal" + std::to_string(..)`: g++ 12 raises a false -Wrestrict on that.
  s.append(" ").append(std::to_string(r.num_layers)).append("x").append(std::to_string(r.hidden_size));
  if (r.proj_size > 0) s.append(" proj ").append(std::to_string(r.proj_size));
  if (spec.lm.embed_size > 0) s.append(", embedding ").append(std::to_string(spec.lm.embed_size));
  else s.append(", one-hot input");
  if (spec.lm.tie_weights) s.append(", decoder tied to the embedding");
  if (spec.lm.dropout > 0 || r.dropout > 0) {
    char buf[64];
    std::snprintf(buf, sizeof buf, ", dropout %g", spec.lm.dropout);
    s += buf;
  }
  s += std::string(", ") + token_level_name(spec.level) + ", " + text_mode_name(spec.mode) + " mode, vocabulary " +
       std::to_string(spec.lm.vocab_size);
  return s;
}

int64_t lm_param_count(const LmSpec& spec) { return model_param_count(lm_model_spec(spec.lm)); }

ModelSpec LmModel::graph() const { return lm_model_spec(spec.lm); }

bool lm_params_finite(const LmSpec& spec, const ModelParams<float>& params) {
  bool ok = true;
  model_for_each_param(lm_model_spec(spec.lm), params, [&](const std::string&, const Tensor<float>& t, bool) {
    for (float v : t.data)
      if (!std::isfinite(v)) {
        ok = false;
        return;
      }
  });
  return ok;
}

namespace {

// The task record of a language model in a model file: {"kind": "lm", "config": the LmSpec,
// "tokens": what the tokens mean when they are not plain text (the v1 "task" metadata, e.g.
// music_corpus.h's record), absent for text}.
std::string lm_task_record(const LmModel& m) {
  nlohmann::ordered_json j = {{"kind", "lm"}, {"config", nlohmann::ordered_json::parse(lm_spec_to_json(m.spec))}};
  if (!m.task.empty()) j["tokens"] = nlohmann::ordered_json::parse(m.task);
  return j.dump();
}

void check_vocab(const std::string& path, const LmModel& m, const std::string& where) {
  if (m.vocab.level() != m.spec.level)
    throw FormatError(path + ": " + where + ": level " + token_level_name(m.vocab.level()) + ", but config says " +
                      token_level_name(m.spec.level));
  if (m.vocab.size() != m.spec.lm.vocab_size)
    throw FormatError(path + ": " + where + ": " + std::to_string(m.vocab.size()) +
                      " tokens, but config says vocab_size " + std::to_string(m.spec.lm.vocab_size));
}

}  // namespace

namespace {

// The model file of a language model (without training state).
ModelFile lm_model_file(const LmModel& m) {
  ModelFile f;
  f.task = lm_task_record(m);
  f.spec = m.graph();
  f.params = m.params;  // save_model_file checks the shapes and refuses NaN or infinite weights
  f.vocabs.emplace("tokens", m.vocab);
  return f;
}

}  // namespace

void save_checkpoint(const std::string& path, const Checkpoint& ckpt) {
  const LmModel& m = ckpt.model;
  m.spec.validate();
  if (m.vocab.size() != m.spec.lm.vocab_size || m.vocab.level() != m.spec.level)
    throw Error(path + ": vocabulary (" + std::to_string(m.vocab.size()) + " " + token_level_name(m.vocab.level()) +
                ") does not match the model (" + std::to_string(m.spec.lm.vocab_size) + " " +
                token_level_name(m.spec.level) + ")");
  if (!m.task.empty()) JsonFields(std::string_view(m.task), path + ": task record");  // an object, checked before writing
  ModelFile f = lm_model_file(m);
  f.train_state = ckpt.train_state;
  f.tensors = ckpt.tensors;
  save_model_file(path, f);
}

namespace {

// A "recur-model" file whose task record is a language model's (version 2).
Checkpoint load_lm_model_file(const SafetensorsReader& rd) {
  const std::string& path = rd.origin();
  ModelFile f = load_model_file(rd);
  JsonFields task(std::string_view(f.task), path + ": metadata \"task\"");
  const std::string kind = task.string("kind");
  if (kind != "lm")
    throw FormatError(path + ": metadata \"task\": \"kind\" is \"" + kind + "\": a " + kind +
                      " model, not a language model");
  Checkpoint ck;
  LmModel& m = ck.model;
  m.spec = lm_spec_from_json(task.raw("config").dump(), path + ": metadata \"task\"");
  if (task.has("tokens")) {
    const auto& t = task.raw("tokens");
    if (!t.is_object()) task.fail("tokens", "a JSON object");
    m.task = t.dump();
  }
  task.finish();
  // The graph is derived from the config; a file whose graph says otherwise is not one recur wrote.
  if (model_spec_to_json(f.spec) != model_spec_to_json(m.graph()))
    throw FormatError(path + ": metadata \"model\": the graph is not the one the language model's config describes");
  auto v = f.vocabs.find("tokens");
  if (v == f.vocabs.end() || f.vocabs.size() != 1)
    throw FormatError(path + ": metadata: expected exactly one vocabulary, \"vocab.tokens\", for a language model");
  m.vocab = std::move(v->second);
  check_vocab(path, m, "metadata \"vocab.tokens\"");
  m.params = std::move(f.params);
  m.precision = f.precision;
  ck.train_state = std::move(f.train_state);
  ck.tensors = std::move(f.tensors);
  return ck;
}

}  // namespace

Checkpoint load_checkpoint(const std::string& path) {
  const SafetensorsReader rd = SafetensorsReader::open(path);
  // The format decides the reader: never a guess from which keys happen to be there.
  if (rd.metadata().count("format") && rd.metadata().at("format") == kModelFileFormat) return load_lm_model_file(rd);
  const auto& meta = rd.metadata();
  auto field = [&](const char* key) -> const std::string& {
    auto it = meta.find(key);
    if (it == meta.end())
      throw FormatError(path + ": metadata \"" + key + "\": missing; expected a recur language model checkpoint");
    return it->second;
  };
  if (!meta.count("format"))
    throw FormatError(path + ": metadata \"format\": missing; not a recur language model checkpoint");
  if (field("format") != kCheckpointFormat)
    throw FormatError(path + ": metadata \"format\": got " + quote_name(field("format")) +
                      ", expected 'recur-model' (or 'recur-lm', the version-1 language models)");
  const std::string& ver = field("format_version");
  char* end = nullptr;
  const long v = std::strtol(ver.c_str(), &end, 10);
  if (ver.empty() || end != ver.c_str() + ver.size() || v < 1)
    throw FormatError(path + ": metadata \"format_version\": got " + quote_name(ver) + ", expected a positive integer");
  if (v > kCheckpointVersion)
    throw FormatError(path + ": format_version " + ver + " of \"recur-lm\" is not one recur wrote; this build reads up to " +
                      std::to_string(kCheckpointVersion) + " (later language models are \"recur-model\" files)");
  for (const auto& [key, value] : meta) {
    (void)value;
    if (key != "format" && key != "format_version" && key != "config" && key != "vocab" && key != "train_state" &&
        key != "task")
      throw FormatError(path + ": metadata " + quote_name(key) + ": unknown key; expected only format, format_version, "
                        "config, vocab, train_state, task");
  }

  Checkpoint ck;
  LmModel& m = ck.model;
  m.spec = lm_spec_from_json(field("config"), path);
  m.vocab = Vocab::from_json(field("vocab"), path + ": metadata \"vocab\"");
  check_vocab(path, m, "metadata \"vocab\"");
  if (meta.count("train_state")) {
    ck.train_state = meta.at("train_state");
    JsonFields(std::string_view(ck.train_state), path + ": metadata \"train_state\"");  // syntax and object check only
  }
  if (meta.count("task")) {
    m.task = meta.at("task");
    JsonFields(std::string_view(m.task), path + ": metadata \"task\"");  // syntax and object check only
  }

  // The LM graph's layers under their v1 tensor names (lm.h), read in v1's order so a file with
  // several problems reports the same one first.
  const LmConfig& c = m.spec.lm;
  const ModelSpec graph = m.graph();
  m.params.layers.resize(graph.layers.size());
  auto at = [&](const char* layer) -> LayerParams<float>& { return m.params.layers[size_t(graph.layer_index(layer))]; };
  if (c.embed_size > 0) at("encoder").weight = rd.get<float>("encoder.weight", {c.vocab_size, c.embed_size});
  at("rnn").rnn.dirs = rnn_load_params<float>(c.rnn, rd, "rnn.").dirs;
  if (!c.tie_weights) at("decoder").weight = rd.get<float>("decoder.weight", {c.vocab_size, c.rnn.output_size()});
  at("decoder").bias = rd.get<float>("decoder.bias", {c.vocab_size});
  model_check_params(graph, m.params);
  std::set<std::string> model_names;
  model_for_each_param(graph, m.params, [&](const std::string& name, const Tensor<float>&, bool) { model_names.insert(name); });
  for (const std::string& name : rd.names()) {
    if (model_names.count(name)) continue;
    if (name.rfind("optim.", 0) == 0 || name.rfind("train.", 0) == 0) {
      ck.tensors[name] = rd.get<float>(name);
      continue;
    }
    throw FormatError(path + ": unexpected tensor " + quote_name(name) + " for a " + lm_spec_summary(m.spec) +
                      " model");
  }
  if (!lm_params_finite(m.spec, m.params)) throw FormatError(path + ": model weights contain NaN or infinity");
  return ck;
}

std::string export_model(const std::string& in, const std::string& out, Precision precision) {
  const SafetensorsReader rd = SafetensorsReader::open(in);
  ModelFile f;
  if (rd.metadata().count("format") && rd.metadata().at("format") == kModelFileFormat) {
    f = load_model_file(rd);  // a task model or a language model, carried whole
  } else {
    f = lm_model_file(load_checkpoint(in).model);  // the version-1 language-model format
  }
  JsonFields task(std::string_view(f.task), in + ": metadata \"task\"");
  const std::string kind = task.string("kind");
  f.train_state.clear();
  f.tensors.clear();
  f.precision = precision;
  save_model_file(out, f);
  return kind;
}

}  // namespace recur
