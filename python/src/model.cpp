// python/src/model.cpp - recur.load(path) -> recur.Model: a trained language model or task model
// (classify, tag, seq2seq, generate) with what the CLI's commands do with it (sample, score,
// eval, tag, classify, translate), each calling the same library function as the command, and
// its weights as numpy views under PyTorch's names.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "common.h"
#include "recur/core/file_io.h"
#include "recur/core/random.h"
#include "recur/data/prepared.h"
#include "recur/data/text_data.h"
#include "recur/tasks/lm_text.h"
#include "recur/tasks/model_info.h"
#include "recur/tasks/tasks.h"
#include "recur/train/checkpoint.h"

namespace recur::python {
namespace {

struct PyModel {
  std::string path;
  std::string kind;  // model_info.h's kind: lm, music, classify, tag, seq2seq, generate
  bool is_task = false;
  LmModel lm;
  TaskModel task;

  ModelSpec spec() const { return is_task ? task.spec : lm.graph(); }
  ModelParams<float>& params() { return is_task ? task.params : lm.params; }
};

// The precision a generating call steps in: its precision= argument for the call's duration,
// else the model file's own (recur/core/quantize.h, `--precision` of the CLI).
class PrecisionFor {
 public:
  PrecisionFor(PyModel& m, const py::object& precision) : m_(m), saved_(m.is_task ? m.task.precision : m.lm.precision) {
    if (precision.is_none()) return;
    const Precision p = parse_precision(precision.cast<std::string>(), "precision");
    (m.is_task ? m.task.precision : m.lm.precision) = p;
  }
  ~PrecisionFor() { (m_.is_task ? m_.task.precision : m_.lm.precision) = saved_; }
  PrecisionFor(const PrecisionFor&) = delete;
  PrecisionFor& operator=(const PrecisionFor&) = delete;

 private:
  PyModel& m_;
  Precision saved_;
};

// A ValueError (recur.Error) naming the model's kind when a method does not apply to it.
void need(const PyModel& m, std::initializer_list<std::string_view> kinds, const std::string& what) {
  for (std::string_view k : kinds)
    if (m.kind == k) return;
  std::string want;
  for (std::string_view k : kinds) want += (want.empty() ? "" : " or ") + std::string(k);
  throw Error(m.path + ": a " + m.kind + " model; " + what + " applies to models of kind " + want);
}

PyModel load(const std::string& path) {
  PyModel m;
  m.path = path;
  m.kind = nlohmann::json::parse(model_info_json(path)).at("kind").get<std::string>();
  m.is_task = is_task_checkpoint(path);
  if (m.is_task) m.task = load_task_checkpoint(path).model;
  else m.lm = load_checkpoint(path).model;
  return m;
}

// Names of the parameters of `layer` (all layers when empty), with the layer prefix removed
// when a layer is named, so that a recurrent layer's dict is PyTorch's nn.LSTM/GRU/RNN one.
template <typename F>
void for_each_param(PyModel& m, const std::string& layer, F&& f) {
  const ModelSpec spec = m.spec();
  if (!layer.empty() && spec.layer_index(layer) < 0) {
    std::string names;
    for (const LayerSpec& l : spec.layers) names += (names.empty() ? "" : ", ") + l.name;
    throw Error("layer: the model has no layer '" + layer + "' (its layers: " + names + ")");
  }
  const std::string prefix = layer.empty() ? "" : layer + ".";
  model_for_each_param(spec, m.params(), [&](const std::string& name, Tensor<float>& t, bool) {
    if (prefix.empty()) f(name, t);
    else if (name.rfind(prefix, 0) == 0) f(name.substr(prefix.size()), t);
  });
}

py::dict state_dict(py::object self, const std::string& layer) {
  PyModel& m = self.cast<PyModel&>();
  py::dict d;
  for_each_param(m, layer, [&](const std::string& name, Tensor<float>& t) { d[py::str(name)] = view(t, self); });
  return d;
}

void load_state_dict(PyModel& m, const py::dict& d, const std::string& layer) {
  std::set<std::string> want;
  for_each_param(m, layer, [&](const std::string& name, Tensor<float>&) { want.insert(name); });
  for (const auto& item : d) {
    const std::string name = py::str(item.first);
    if (!want.count(name))
      throw Error("load_state_dict: unexpected tensor '" + name + "' for " + m.path +
                  (layer.empty() ? "" : " layer '" + layer + "'") + " (expected " + std::to_string(want.size()) +
                  " tensors; see state_dict())");
  }
  for (const std::string& name : want)
    if (!d.contains(py::str(name))) throw Error("load_state_dict: missing tensor '" + name + "'");
  // Checked first, then copied: a bad dict changes nothing.
  std::vector<std::pair<Tensor<float>*, Tensor<float>>> staged;
  for_each_param(m, layer, [&](const std::string& name, Tensor<float>& t) {
    Tensor<float> src = to_tensor<float>(d[py::str(name)], name);
    check_shape(name, src.shape, t.shape);
    staged.emplace_back(&t, std::move(src));
  });
  for (auto& [dst, src] : staged) std::copy(src.data.begin(), src.data.end(), dst->data.begin());
}

void save(const PyModel& m, const std::string& path) {
  if (m.is_task) {
    TaskCheckpoint ck;
    ck.model = m.task;
    save_task_checkpoint(path, ck);
  } else {
    Checkpoint ck;
    ck.model = m.lm;
    save_checkpoint(path, ck);
  }
}

// Texts as given (one str or a list), or the lines of `file`: `recur classify/translate`'s input.
std::vector<std::string> gather_texts(const py::object& texts, const std::string& file, std::string& origin) {
  if (!texts.is_none() && !file.empty()) throw Error("texts and file: expected one of them");
  if (!file.empty()) {
    origin = file;
    std::vector<std::string> out;
    const std::string text = read_text_file(file);
    for (std::string_view l : split_lines(text)) out.emplace_back(l);
    return out;
  }
  if (texts.is_none()) throw Error("texts: expected a str or a list of str, or file=PATH");
  origin = "texts";
  if (py::isinstance<py::str>(texts)) return {texts.cast<std::string>()};
  return texts.cast<std::vector<std::string>>();
}

py::object sample(PyModel& m, const py::object& length_obj, const py::object& count_obj, double temperature,
                  int64_t top_k, double top_p, bool argmax, const std::string& prime, uint64_t seed,
                  const py::object& condition_obj, const py::object& precision) {
  need(m, {"lm", "generate"}, "sample");
  const PrecisionFor in_precision(m, precision);
  const int64_t count = count_obj.is_none() ? 1 : count_obj.cast<int64_t>();
  if (count < 1) throw Error("count: got " + std::to_string(count) + ", expected >= 1");
  Rng rng(seed);
  std::vector<std::string> out;
  if (m.kind == "generate") {
    if (!prime.empty()) throw Error(m.path + ": a generate model; prime applies to language models only");
    if (top_k != 0 || top_p != 1.0)
      throw Error(m.path + ": a generate model; top_k and top_p apply to language models only");
    if (condition_obj.is_none())
      throw Error("condition: " + m.path + " generates for one of its " + std::to_string(m.task.labels.size()) +
                  " labels (model.labels); expected condition=LABEL");
    const std::string c = condition_obj.cast<std::string>();
    const int32_t id = m.task.label_id(c);
    if (id < 0) throw Error("condition: " + c + " is not one of the model's " + std::to_string(m.task.labels.size()) + " labels");
    GenerateTaskOptions go{.temperature = temperature,
                           .max_length = length_obj.is_none() ? 50 : length_obj.cast<int64_t>(),
                           .argmax = argmax};
    SampleOptions so{.temperature = temperature, .argmax = argmax};
    so.validate();
    if (go.max_length < 1) throw Error("length: got " + std::to_string(go.max_length) + ", expected >= 1");
    for (int64_t i = 0; i < count; ++i) out.push_back(task_output_text(m.task, generate_conditioned(m.task, id, go, rng)));
  } else {
    if (!condition_obj.is_none()) throw Error(m.path + ": a language model; condition applies to generate models only");
    GenerateOptions g;
    g.sample = SampleOptions{.temperature = temperature, .top_k = top_k, .top_p = top_p, .argmax = argmax};
    g.sample.validate();
    g.length = length_obj.is_none() ? 500 : length_obj.cast<int64_t>();
    if (g.length < 1) throw Error("length: got " + std::to_string(g.length) + ", expected >= 1");
    g.prime = prime;
    for (int64_t i = 0; i < count; ++i) {
      std::string s;
      const PrimeInfo info = generate_text(m.lm, g, rng, [&](std::string_view piece) { s.append(piece); });
      if (i == 0 && !info.unknown.empty()) {
        std::string list;
        for (size_t k = 0; k < info.unknown.size() && k < 10; ++k) list += (k ? " " : "") + info.unknown[k];
        const std::string msg = "prime: " + std::to_string(info.unknown.size()) +
                                " token(s) not in the model's vocabulary, read as <unk>: " + list;
        if (PyErr_WarnEx(PyExc_UserWarning, msg.c_str(), 1) != 0) throw py::error_already_set();
      }
      out.push_back(std::move(s));
    }
  }
  if (count_obj.is_none()) return py::str(out[0]);
  return py::cast(out);
}

py::dict score_dict(const SentenceScore& s) {
  py::dict d;
  d["logprob"] = s.logprob;
  d["log10prob"] = s.log10prob();
  d["tokens"] = s.tokens;
  d["oov"] = s.oov;
  d["perplexity"] = s.perplexity();
  if (!s.per_token.empty()) {
    py::list toks;
    for (const TokenScore& t : s.per_token) toks.append(py::make_tuple(t.token, t.logprob, t.oov));
    d["per_token"] = toks;
  }
  return d;
}

py::object score(const PyModel& m, const py::object& sentences, bool per_token) {
  need(m, {"lm"}, "score");
  if (py::isinstance<py::str>(sentences))
    return score_dict(score_sentence(m.lm, sentences.cast<std::string>(), per_token, "sentence"));
  py::list out;
  for (const std::string& s : sentences.cast<std::vector<std::string>>())
    out.append(score_dict(score_sentence(m.lm, s, per_token, "sentences")));
  return out;
}

py::dict evaluate(const PyModel& m, const std::string& file, const py::object& batch_obj, int64_t seq_len, int64_t beam,
                  double length_penalty, int64_t max_length) {
  py::dict d;
  if (m.is_task) {
    const auto raw = read_task_file(m.task, file, true);
    const auto ex = encode_task_examples(m.task, raw, true, file);
    TaskEvalOptions o;
    if (!batch_obj.is_none()) o.batch = batch_obj.cast<int64_t>();
    o.decode = DecodeOptions{.beam = beam, .length_penalty = length_penalty, .max_length = max_length};
    const TaskEvalResult r = evaluate_task(m.task, ex, o);
    d["loss"] = r.loss.mean();
    d["targets"] = r.loss.count;
    d["metric"] = r.metric;
    d["metric_name"] = r.metric_name;
    d["report"] = r.report;
    return d;
  }
  need(m, {"lm", "classify", "tag", "seq2seq", "generate"}, "evaluate");
  EvalOptions o;
  if (!batch_obj.is_none()) o.batch = batch_obj.cast<int64_t>();
  o.seq_len = seq_len;
  const EvalResult r = file != "-" && is_prepared_corpus(file) ? evaluate_prepared(m.lm, PreparedCorpus(file), o)
                                                                : evaluate_text(m.lm, read_text_file(file), o, file);
  d["loss"] = r.mean();
  d["perplexity"] = r.perplexity();
  d["bits_per_token"] = r.bits_per_token();
  d["tokens"] = r.loss.count;
  d["oov"] = r.oov.oov;
  d["unk"] = r.oov.unk;
  d["counts"] = count_explanation(r);
  return d;
}

py::list tag(const PyModel& m, const std::string& file, const std::string& output) {
  need(m, {"tag"}, "tag");
  const auto raw = read_task_file(m.task, file, false);
  const auto ex = encode_task_examples(m.task, raw, false, file);
  const auto pred = tag_predictions(m.task, ex);
  // As `recur tag -o FILE`: the input's lines with the predicted tag appended, written whole.
  if (!output.empty()) write_file_atomic(output, tagged_text(m.task, raw, pred), "the tagged file");
  py::list out;
  for (const auto& sentence : pred) {
    py::list tags;
    for (const std::string& t : tag_output_strings(m.task, sentence)) tags.append(t);  // the file's scheme
    out.append(tags);
  }
  return out;
}

py::object classify(const PyModel& m, const py::object& texts, const std::string& file) {
  need(m, {"classify"}, "classify");
  std::vector<RawExample> raw;
  std::string origin;
  if (m.task.task.features) {
    // Numeric input: a file in training's format (the label column present, its values ignored).
    if (!texts.is_none() || file.empty())
      throw Error(m.path + " reads numeric feature sequences; expected file=CSV instead of texts");
    raw = read_task_file(m.task, file, false);
    origin = file;
  } else {
    raw = raw_examples_from_texts(m.task, gather_texts(texts, file, origin), origin);
  }
  const auto probs = classify_probabilities(m.task, encode_task_examples(m.task, raw, false, origin));
  py::list out;
  for (const auto& p : probs) {
    const size_t best = size_t(std::max_element(p.begin(), p.end()) - p.begin());
    py::dict all;
    for (size_t c = 0; c < p.size(); ++c) all[py::str(m.task.labels[c])] = p[c];
    out.append(py::make_tuple(m.task.labels[best], all));
  }
  if (py::isinstance<py::str>(texts)) return out[0];
  return out;
}

py::object translate(PyModel& m, const py::object& texts, const std::string& file, int64_t beam,
                     double length_penalty, int64_t max_length, const py::object& precision) {
  need(m, {"seq2seq"}, "translate");
  const PrecisionFor in_precision(m, precision);
  const DecodeOptions decode{.beam = beam, .length_penalty = length_penalty, .max_length = max_length};
  if (beam < 1) throw Error("beam: got " + std::to_string(beam) + ", expected >= 1 (1 = greedy)");
  if (m.task.task.features) {
    // Numeric sources: a features CSV; (sequence_id, output) per sequence, as `recur translate --features`.
    if (!texts.is_none() || file.empty())
      throw Error(m.path + " reads numeric feature sequences (" + std::to_string(task_features_width(m.task)) +
                  " per step); expected file=CSV instead of texts");
    const auto raw = read_task_file(m.task, file, false);
    const auto outs = recur::translate(m.task, encode_task_examples(m.task, raw, false, file), decode);
    py::list out;
    for (size_t i = 0; i < outs.size(); ++i) out.append(py::make_tuple(raw[i].id, task_output_text(m.task, outs[i])));
    return out;
  }
  std::string origin;
  const auto raw = raw_examples_from_texts(m.task, gather_texts(texts, file, origin), origin);
  py::list out;
  for (const auto& ids : recur::translate(m.task, encode_task_examples(m.task, raw, false, origin), decode))
    out.append(task_output_text(m.task, ids));
  if (py::isinstance<py::str>(texts)) return out[0];
  return out;
}

}  // namespace

void register_model(py::module_& m) {
  py::class_<PyModel>(m, "Model", R"(A trained model as recur.load(path) returns it: a language model (kind "lm"; "music" for
one trained on MIDI) or a task model (kind "classify", "tag", "seq2seq", "generate").

Each method is one CLI command on the same library code; one that does not apply to the
model's kind raises recur.Error (a ValueError) naming the kind.)")
      .def_readonly("path", &PyModel::path)
      .def_readonly("kind", &PyModel::kind, "lm, music, classify, tag, seq2seq or generate")
      .def_property_readonly(
          "labels", [](const PyModel& m) { return m.is_task ? m.task.labels : std::vector<std::string>{}; },
          "Classes (classify), tags (tag) or conditions (generate); empty for other kinds.")
      .def_property_readonly(
          "precision",
          [](const PyModel& m) { return std::string(precision_name(m.is_task ? m.task.precision : m.lm.precision)); },
          "How the file stores its weights and generation steps by default: \"f32\", or an export's \"bf16\" or \"int8\".")
      .def_property_readonly(
          "summary", [](const PyModel& m) { return m.is_task ? task_model_summary(m.task) : lm_spec_summary(m.lm.spec); },
          "One line, as `recur info` shows it.")
      .def_property_readonly(
          "graph",
          [](const PyModel& m) { return py::module_::import("json").attr("loads")(model_spec_to_json(m.spec())); },
          "The model's layer graph (recur/model/model.h) as the checkpoint stores it: {\"inputs\": [...], \"layers\": [...]}.")
      .def("state_dict", &state_dict, py::arg("layer") = "",
           R"(state_dict(layer="") -> dict of numpy arrays

The parameters as writable float32 views (no copy) under the checkpoint's names: PyTorch's
word_language_model names for a language model ("encoder.weight", "rnn.weight_ih_l0", ...,
"decoder.weight", "decoder.bias"), "<layer>.<name>" for a task model. With layer="rnn" only
that layer's tensors with the prefix removed, i.e. exactly torch.nn.LSTM/GRU/RNN's state_dict
(weight_ih_l0, weight_hh_l0, bias_ih_l0, bias_hh_l0, ..._reverse, weight_hr_l0).)")
      .def("load_state_dict", &load_state_dict, py::arg("state_dict"), py::arg("layer") = "",
           R"(load_state_dict(state_dict, layer="")

Copies parameters back from a dict of arrays (numpy, or torch tensors numpy converts) under the
names state_dict(layer) uses. Strict: a missing, extra or misshapen tensor raises recur.Error
and changes nothing.)")
      .def("save", &save, py::arg("path"),
           "save(path)\n\nWrites the model (without training state) as a .safetensors file the CLI and recur.load\n"
           "read, atomically (a temporary file renamed over path).")
      .def("sample", &sample, py::arg("length") = py::none(), py::kw_only(), py::arg("count") = py::none(),
           py::arg("temperature") = 1.0, py::arg("top_k") = 0, py::arg("top_p") = 1.0, py::arg("argmax") = false,
           py::arg("prime") = "", py::arg("seed") = 1, py::arg("condition") = py::none(), py::arg("precision") = py::none(),
           R"(sample(length=None, *, count=None, temperature=1.0, top_k=0, top_p=1.0, argmax=False, prime="",
       seed=1, condition=None, precision=None) -> str, or list of str when count is given

`recur sample`. Language models (kind lm): length tokens (default 500; stream char models
exactly that many, others stop at <eos>), the prime fed first and returned as the sample's
start (tokens not in the vocabulary are read as <unk> with a UserWarning). Generate models:
condition=LABEL (one of model.labels), length = the longest output (default 50). The same seed
gives the same samples as the CLI's --seed. precision "f32", "bf16" or "int8" steps with
compressed copies of the weights (the CLI's --precision; default: model.precision).)")
      .def("score", &score, py::arg("sentences"), py::kw_only(), py::arg("per_token") = false,
           R"(score(sentences, *, per_token=False) -> dict, or list of dicts for a list

`recur score` (language models): for each sentence {"logprob" (natural log), "log10prob",
"tokens" (line end included), "oov", "perplexity"} and with per_token a "per_token" list of
(token, logprob, oov).)")
      .def("evaluate", &evaluate, py::arg("file"), py::kw_only(), py::arg("batch") = py::none(), py::arg("seq_len") = 64,
           py::arg("beam") = 1, py::arg("length_penalty") = 1.0, py::arg("max_length") = 50,
           R"(evaluate(file, *, batch=None, seq_len=64, beam=1, length_penalty=1.0, max_length=50) -> dict

`recur eval MODEL FILE`. Language models: {"loss" (nats/token), "perplexity", "bits_per_token",
"tokens" (scored), "oov", "unk", "counts"} with batch (default 10) and seq_len as the CLI's.
Task models: {"loss", "targets", "metric", "metric_name" (f1, accuracy, bleu, neg_loss),
"report" (the CLI's text)}; batch (default 64), and beam, length_penalty, max_length for seq2seq.)")
      .def("tag", &tag, py::arg("file"), py::kw_only(), py::arg("output") = "",
           R"(tag(file, *, output="") -> list of lists of tags

`recur tag` (tag models): the predicted tags of each sentence of a CoNLL-style file. With
output=PATH also writes the CLI's tagged file there (atomically).)")
      .def("classify", &classify, py::arg("texts") = py::none(), py::kw_only(), py::arg("file") = "",
           R"(classify(texts=None, *, file="") -> (label, {label: probability}), or a list of them

`recur classify` (classify models): one text (str) gives one result, a list a list. file=PATH
reads one text per line instead (a tab ends the text); models trained on numeric features
take their CSV as file.)")
      .def("translate", &translate, py::arg("texts") = py::none(), py::kw_only(), py::arg("file") = "",
           py::arg("beam") = 1, py::arg("length_penalty") = 1.0, py::arg("max_length") = 50, py::arg("precision") = py::none(),
           R"(translate(texts=None, *, file="", beam=1, length_penalty=1.0, max_length=50, precision=None) -> str, or a list

`recur translate` (seq2seq models): one sentence (str) gives one output, a list a list; file=PATH
reads one sentence per line. beam 1 is greedy. Models trained on numeric features take their
CSV as file and give (sequence_id, output) pairs. precision as in sample.)")
      .def("__repr__", [](const PyModel& m) { return "<recur.Model " + m.kind + " '" + m.path + "'>"; });

  m.def(
      "export",
      [](const std::string& model, const std::string& out, const std::string& precision) {
        if (out == model) throw Error(out + ": the export would replace the model it reads; choose another out");
        export_model(model, out, parse_precision(precision, "precision"));
      },
      py::arg("model"), py::arg("out"), py::kw_only(), py::arg("precision"),
      R"(export(model, out, *, precision)

`recur export`: writes an inference-only copy of the model file `model` to `out`, without its
training state, its weight matrices stored in precision "int8" (per-row scales, a quarter of
the size), "bf16" (half) or "f32". Loaded, its samples and translations step in that precision.)");
  m.def("load", &load, py::arg("path"),
        R"(load(path) -> recur.Model

Loads a checkpoint written by `recur train` or recur.train (best.safetensors, last.safetensors)
or Model.save: a language model or a task model. Raises recur.FormatError naming the file and
the field for anything malformed.)");
}

}  // namespace recur::python
