// Composable models: every layer kind's forward and backward side by side. See model.h.
#include "recur/model/model.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "json_fields.h"
#include "recur/core/dropout.h"
#include "quote.h"
#include "recur/model/embedding.h"
#include "recur/model/linear.h"

namespace recur {

namespace {

// A parsed reference: a model input, a layer's output or an rnn layer's final state.
struct Ref {
  int64_t input = -1, layer = -1;
  bool final = false;
};

Ref resolve(const ModelSpec& s, std::string_view ref) {
  Ref r;
  std::string_view base = ref;
  if (ref.size() > 6 && ref.substr(ref.size() - 6) == ".final") {
    base = ref.substr(0, ref.size() - 6);
    r.final = true;
  }
  for (size_t i = 0; i < s.inputs.size(); ++i)
    if (!r.final && s.inputs[i].name == base) r.input = int64_t(i);
  if (r.input < 0) r.layer = s.layer_index(base);
  if (r.input < 0 && r.layer < 0) throw Error("model: unknown reference " + quote_name(ref));
  if (r.final && s.layers[size_t(r.layer)].kind != LayerKind::rnn)
    throw Error("model: " + quote_name(ref) + ": only an rnn layer has a .final state");
  return r;
}

[[noreturn]] void layer_error(const LayerSpec& l, const std::string& what) {
  throw Error("model layer " + quote_name(l.name) + " (" + layer_kind_name(l.kind) + "): " + what);
}

// Adds src into dst; an empty dst (no gradient yet) takes a copy.
template <typename T>
void add_to(Tensor<T>& dst, const Tensor<T>& src) {
  if (dst.empty()) {
    dst.shape = src.shape;
    dst.data.assign(src.data.begin(), src.data.end());
    return;
  }
  for (size_t i = 0; i < dst.data.size(); ++i) dst.data[i] += src.data[i];
}

template <typename T>
void clear(Tensor<T>& t) {
  t.data.clear();
  t.shape.clear();
}

int64_t rows_of(const Shape& s) { return s.size() == 3 ? s[0] * s[1] : s.at(0); }

// Where the value `ref` denotes lies after the last forward: an identity dropout's is its
// input's (a layer's, dropout_layer_forward makes sure).
template <typename T>
Ref resolve_value(const ModelSpec& spec, const ModelCache<T>& cache, std::string_view ref) {
  Ref r = resolve(spec, ref);
  while (r.layer >= 0 && size_t(r.layer) < cache.layers.size() && cache.layers[size_t(r.layer)].done &&
         cache.layers[size_t(r.layer)].identity)
    r = resolve(spec, spec.layers[size_t(r.layer)].inputs[0]);
  return r;
}

}  // namespace

const char* layer_kind_name(LayerKind kind) {
  switch (kind) {
    case LayerKind::embedding: return "embedding";
    case LayerKind::rnn: return "rnn";
    case LayerKind::linear: return "linear";
    case LayerKind::concat: return "concat";
    case LayerKind::dropout: return "dropout";
    case LayerKind::bridge: return "bridge";
    case LayerKind::onehot: return "onehot";
    case LayerKind::crf: return "crf";
    case LayerKind::attention: return "attention";
    case LayerKind::pool: return "pool";
  }
  return "?";
}

const char* pool_mode_name(PoolMode mode) { return mode == PoolMode::max ? "max" : "mean"; }

// ---------------------------------------------------------------- spec and builders

int64_t ModelSpec::layer_index(std::string_view name) const {
  for (size_t i = 0; i < layers.size(); ++i)
    if (layers[i].name == name) return int64_t(i);
  return -1;
}

const LayerSpec& ModelSpec::layer(std::string_view name) const {
  const int64_t i = layer_index(name);
  if (i < 0) throw Error("model: no layer " + quote_name(name));
  return layers[size_t(i)];
}

int64_t ModelSpec::bridge_size(const LayerSpec& bridge) const {
  const RnnConfig& c = layer(bridge.target).rnn;
  const int64_t k = c.num_layers * c.directions();
  return k * c.state_size() + (c.has_cell_state() ? k * c.hidden_size : 0);
}

int64_t ModelSpec::width(std::string_view ref) const {
  const Ref r = resolve(*this, ref);
  if (r.input >= 0) {
    const InputSpec& in = inputs[size_t(r.input)];
    return in.kind == InputKind::tokens ? 0 : in.size;
  }
  const LayerSpec& l = layers[size_t(r.layer)];
  switch (l.kind) {
    case LayerKind::embedding:
    case LayerKind::linear:
    case LayerKind::attention: return l.size;
    case LayerKind::rnn: return l.rnn.output_size();
    case LayerKind::onehot: return inputs[size_t(resolve(*this, l.inputs.at(0)).input)].size;
    case LayerKind::dropout:
    case LayerKind::crf:
    case LayerKind::pool: return width(l.inputs.at(0));
    case LayerKind::bridge: return bridge_size(l);
    case LayerKind::concat: {
      int64_t w = 0;
      for (const auto& i : l.inputs) w += width(i);
      return w;
    }
  }
  return 0;
}

bool ModelSpec::is_sequence(std::string_view ref) const {
  const Ref r = resolve(*this, ref);
  if (r.input >= 0) {
    const InputSpec& in = inputs[size_t(r.input)];
    return in.kind == InputKind::features || in.per_step;
  }
  const LayerSpec& l = layers[size_t(r.layer)];
  switch (l.kind) {
    case LayerKind::rnn: return !r.final;
    case LayerKind::bridge:
    case LayerKind::pool: return false;
    case LayerKind::concat:
      return std::any_of(l.inputs.begin(), l.inputs.end(), [&](const std::string& i) { return is_sequence(i); });
    default: return is_sequence(l.inputs.at(0));
  }
}

std::string ModelSpec::tokens(const std::string& name, int64_t vocab, bool per_step) {
  inputs.push_back(InputSpec{.name = name, .kind = InputKind::tokens, .per_step = per_step, .size = vocab});
  return name;
}
std::string ModelSpec::features(const std::string& name, int64_t w) {
  inputs.push_back({.name = name, .kind = InputKind::features, .per_step = true, .size = w});
  return name;
}
namespace {
LayerSpec& add_layer(std::vector<LayerSpec>& layers, const std::string& name, LayerKind kind,
                     std::vector<std::string> inputs) {
  LayerSpec& l = layers.emplace_back();
  l.name = name;
  l.kind = kind;
  l.inputs = std::move(inputs);
  return l;
}
}  // namespace

std::string ModelSpec::embedding(const std::string& name, const std::string& input, int64_t dim, bool frozen) {
  LayerSpec& l = add_layer(layers, name, LayerKind::embedding, {input});
  l.size = dim;
  l.frozen = frozen;
  return name;
}
std::string ModelSpec::rnn(const std::string& name, const std::string& input, RnnConfig cfg, const std::string& init) {
  cfg.input_size = width(input);
  LayerSpec& l = add_layer(layers, name, LayerKind::rnn, {input});
  l.rnn = cfg;
  l.init = init;
  return name;
}
std::string ModelSpec::linear(const std::string& name, const std::string& input, int64_t out, const std::string& tie) {
  LayerSpec& l = add_layer(layers, name, LayerKind::linear, {input});
  l.size = out;
  l.tie = tie;
  return name;
}
std::string ModelSpec::onehot(const std::string& name, const std::string& input) {
  add_layer(layers, name, LayerKind::onehot, {input});
  return name;
}
std::string ModelSpec::concat(const std::string& name, const std::vector<std::string>& ins) {
  add_layer(layers, name, LayerKind::concat, ins);
  return name;
}
std::string ModelSpec::pool(const std::string& name, const std::string& input, PoolMode mode) {
  add_layer(layers, name, LayerKind::pool, {input}).pool = mode;
  return name;
}
std::string ModelSpec::crf(const std::string& name, const std::string& input) {
  add_layer(layers, name, LayerKind::crf, {input}).size = width(input);
  return name;
}

std::string ModelSpec::attention(const std::string& name, const std::string& query, const std::string& memory,
                                 AttentionScore score, int64_t size, bool feed) {
  if (feed) {
    const int64_t q = layer_index(query);
    if (q < 0 || layers[size_t(q)].kind != LayerKind::rnn)
      throw Error("model layer " + quote_name(name) + ": input feeding needs the query " + quote_name(query) +
                  " to be an rnn layer");
    LayerSpec& r = layers[size_t(q)];
    if (!r.feed.empty()) throw Error("model layer " + quote_name(name) + ": " + quote_name(query) + " is already fed by " +
                                     quote_name(r.feed));
    r.feed = name;
    r.rnn.input_size += size;
  }
  LayerSpec& l = add_layer(layers, name, LayerKind::attention, {query, memory});
  l.score = score;
  l.size = size;
  return name;
}

std::string ModelSpec::dropout(const std::string& name, const std::string& input, double p) {
  add_layer(layers, name, LayerKind::dropout, {input}).p = p;
  return name;
}
std::string ModelSpec::bridge(const std::string& name, const std::string& input, const std::string& target) {
  add_layer(layers, name, LayerKind::bridge, {input}).target = target;
  return name;
}

void ModelSpec::validate() const {
  auto bad_name = [](const std::string& n) {
    return n.empty() || n.find('.') != std::string::npos || n.find(' ') != std::string::npos;
  };
  std::vector<std::string> seen;
  for (const InputSpec& in : inputs) {
    if (bad_name(in.name)) throw Error("model input " + quote_name(in.name) + ": expected a non-empty name without '.'");
    if (std::find(seen.begin(), seen.end(), in.name) != seen.end()) throw Error("model input " + quote_name(in.name) + ": duplicate name");
    seen.push_back(in.name);
    if (in.size < 1) throw Error("model input " + quote_name(in.name) + ": size must be >= 1");
  }
  // Each layer may only reference what is defined before it; check on a growing prefix.
  ModelSpec prefix;
  prefix.inputs = inputs;
  for (const LayerSpec& l : layers) {
    if (bad_name(l.name)) layer_error(l, "expected a non-empty name without '.' or spaces");
    if (std::find(seen.begin(), seen.end(), l.name) != seen.end()) layer_error(l, "duplicate name");
    if (!l.tie.empty() && l.kind != LayerKind::linear) layer_error(l, "tie is for linear layers only");
    seen.push_back(l.name);
    const size_t want_inputs = l.kind == LayerKind::concat ? 0 : l.kind == LayerKind::attention ? 2 : 1;
    if (want_inputs ? l.inputs.size() != want_inputs : l.inputs.size() < 2)
      layer_error(l, want_inputs == 2 ? "expected two inputs (query, memory)"
                     : want_inputs    ? "expected exactly one input"
                                      : "expected two or more inputs");
    for (const auto& i : l.inputs) {
      try {
        (void)resolve(prefix, i);
      } catch (const Error& e) {
        layer_error(l, std::string("input: ") + e.what() + " (inputs must be defined before the layer)");
      }
      const bool tokens = prefix.width(i) == 0;
      const bool reads_tokens = l.kind == LayerKind::embedding || l.kind == LayerKind::onehot;
      if (tokens != reads_tokens)
        layer_error(l, reads_tokens ? "input " + quote_name(i) + " must be a tokens input"
                                    : "input " + quote_name(i) + " is token ids; embed it first");
    }
    const std::string& in0 = l.inputs[0];
    switch (l.kind) {
      case LayerKind::embedding:
        if (resolve(prefix, in0).input < 0) layer_error(l, "input must be a model input");
        if (l.size < 1) layer_error(l, "size (embedding width) must be >= 1");
        break;
      case LayerKind::onehot:
        if (resolve(prefix, in0).input < 0 || !prefix.inputs[size_t(resolve(prefix, in0).input)].per_step)
          layer_error(l, "input must be a per-step tokens model input");
        break;
      case LayerKind::linear:
        if (l.size < 1) layer_error(l, "size (output features) must be >= 1");
        if (!l.tie.empty()) {
          const int64_t k = prefix.layer_index(l.tie);
          if (k < 0 || prefix.layers[size_t(k)].kind != LayerKind::embedding)
            layer_error(l, "tie " + quote_name(l.tie) + ": expected an earlier embedding layer");
          const LayerSpec& e = prefix.layers[size_t(k)];
          const int64_t V = prefix.inputs[size_t(resolve(prefix, e.inputs[0]).input)].size;
          if (e.frozen) layer_error(l, "tie " + quote_name(l.tie) + ": a frozen embedding cannot be tied to a trained head");
          if (l.size != V || prefix.width(in0) != e.size)
            layer_error(l, "tie " + quote_name(l.tie) + ": expected size = the embedding's vocabulary " + std::to_string(V) +
                               " and input width = its width " + std::to_string(e.size) + ", got " + std::to_string(l.size) +
                               " and " + std::to_string(prefix.width(in0)));
        }
        break;
      case LayerKind::dropout:
        if (!(l.p >= 0 && l.p < 1)) layer_error(l, "p must be in [0, 1)");
        break;
      case LayerKind::concat:
      case LayerKind::bridge: break;
      case LayerKind::pool:
        if (!prefix.is_sequence(in0) || prefix.width(in0) < 1)
          layer_error(l, "input " + quote_name(in0) + " must be a sequence of features");
        break;
      case LayerKind::attention:
        if (l.size < 1) layer_error(l, "size (attention width) must be >= 1");
        for (const auto& i : l.inputs)
          if (!prefix.is_sequence(i) || prefix.width(i) < 1)
            layer_error(l, "input " + quote_name(i) + " must be a sequence of features");
        if (l.score == AttentionScore::dot && prefix.width(l.inputs[0]) != prefix.width(l.inputs[1]))
          layer_error(l, "the dot score needs query and memory of one width, got " + std::to_string(prefix.width(l.inputs[0])) +
                             " and " + std::to_string(prefix.width(l.inputs[1])) + "; use general or additive");
        break;
      case LayerKind::crf:
        if (resolve(prefix, in0).layer < 0 || !prefix.is_sequence(in0))
          layer_error(l, "input " + quote_name(in0) + " must be an earlier layer's sequence of emission scores");
        if (l.size < 1 || l.size != prefix.width(in0))
          layer_error(l, "size " + std::to_string(l.size) + " must be the input's width " + std::to_string(prefix.width(in0)) +
                             " (the number of tags)");
        break;
      case LayerKind::rnn: {
        try {
          l.rnn.validate();
        } catch (const Error& e) {
          layer_error(l, e.what());
        }
        if (!prefix.is_sequence(in0)) layer_error(l, "input " + quote_name(in0) + " must be a sequence");
        // With input feeding the fed attention's output joins the input (checked below).
        const int64_t fi = l.feed.empty() ? -1 : layer_index(l.feed);
        const int64_t fed = fi >= 0 && layers[size_t(fi)].kind == LayerKind::attention ? layers[size_t(fi)].size : 0;
        if ((l.feed.empty() || fed > 0) && l.rnn.input_size != prefix.width(in0) + fed)  // else the feed check below
          layer_error(l, "rnn input_size " + std::to_string(l.rnn.input_size) + " does not match the input's width " +
                             std::to_string(prefix.width(in0)) +
                             (l.feed.empty() ? "" : " plus the fed attention's " + std::to_string(fed)));
        if (!l.init.empty()) {
          const int64_t k = prefix.layer_index(l.init);
          if (k < 0) layer_error(l, "init " + quote_name(l.init) + ": no earlier layer of that name");
          const LayerSpec& src = prefix.layers[size_t(k)];
          if (src.kind == LayerKind::bridge) {
            if (src.target != l.name) layer_error(l, "init bridge " + quote_name(l.init) + " targets another layer");
          } else if (src.kind == LayerKind::rnn) {
            const RnnConfig &a = src.rnn, &b = l.rnn;
            if (a.num_layers != b.num_layers || a.directions() != b.directions() || a.state_size() != b.state_size() ||
                a.hidden_size != b.hidden_size || a.has_cell_state() != b.has_cell_state())
              layer_error(l, "init " + quote_name(l.init) + ": its state has another shape (layers, directions, sizes or "
                                                             "cell); put a bridge between them");
          } else {
            layer_error(l, "init " + quote_name(l.init) + " must be an rnn or a bridge layer");
          }
        }
        break;
      }
    }
    if (l.kind == LayerKind::bridge && prefix.is_sequence(in0))
      layer_error(l, "input " + quote_name(in0) + " must be a vector (e.g. an rnn's .final or a per-example embedding)");
    if (l.kind == LayerKind::linear || l.kind == LayerKind::dropout || l.kind == LayerKind::concat || l.kind == LayerKind::bridge)
      for (const auto& i : l.inputs)
        if (prefix.width(i) < 1) layer_error(l, "input " + quote_name(i) + " has no features");
    prefix.layers.push_back(l);
  }
  // Input feeding: the fed attention comes later, attends with this rnn's outputs over a memory
  // that is ready before the rnn runs.
  for (const LayerSpec& l : layers) {
    if (l.kind != LayerKind::rnn || l.feed.empty()) continue;
    const int64_t a = layer_index(l.feed), self = layer_index(l.name);
    if (a < 0 || layers[size_t(a)].kind != LayerKind::attention || a < self || layers[size_t(a)].inputs[0] != l.name)
      layer_error(l, "feed " + quote_name(l.feed) + " must be a later attention layer whose query is " + quote_name(l.name));
    if (l.rnn.bidirectional) layer_error(l, "feed: a bidirectional rnn cannot read the attention's previous output");
    const Ref m = resolve(*this, layers[size_t(a)].inputs[1]);
    if (m.layer >= self)
      layer_error(l, "feed " + quote_name(l.feed) + ": its memory " + quote_name(layers[size_t(a)].inputs[1]) +
                         " must be computed before " + quote_name(l.name));
    for (const LayerSpec& o : layers)
      if (&o != &l && o.kind == LayerKind::rnn && o.feed == l.feed)
        layer_error(o, "feed " + quote_name(l.feed) + ": the attention already feeds " + quote_name(l.name));
  }
  // Bridges: the target must come later and name the bridge as its init.
  for (const LayerSpec& l : layers) {
    if (l.kind != LayerKind::bridge) continue;
    const int64_t t = layer_index(l.target);
    if (t < 0 || layers[size_t(t)].kind != LayerKind::rnn || layers[size_t(t)].init != l.name || t < layer_index(l.name))
      layer_error(l, "target " + quote_name(l.target) + " must be a later rnn layer with init = " + quote_name(l.name));
  }
}

// ---------------------------------------------------------------- JSON

std::string model_spec_to_json(const ModelSpec& spec) {
  nlohmann::ordered_json ins = nlohmann::ordered_json::array(), ls = nlohmann::ordered_json::array();
  for (const InputSpec& in : spec.inputs)
    ins.push_back({{"name", in.name},
                   {"kind", in.kind == InputKind::tokens ? "tokens" : "features"},
                   {"per_step", in.per_step},
                   {"size", in.size}});
  for (const LayerSpec& l : spec.layers) {
    nlohmann::ordered_json j = {{"name", l.name}, {"kind", layer_kind_name(l.kind)}, {"inputs", l.inputs}};
    switch (l.kind) {
      case LayerKind::embedding: j["size"] = l.size; j["frozen"] = l.frozen; break;
      case LayerKind::linear:
        j["size"] = l.size;
        if (!l.tie.empty()) j["tie"] = l.tie;  // written only when set: untied files keep their bytes
        break;
      case LayerKind::onehot: break;
      case LayerKind::dropout: j["p"] = l.p; break;
      case LayerKind::crf: j["size"] = l.size; break;
      case LayerKind::pool: j["mode"] = pool_mode_name(l.pool); break;
      case LayerKind::attention:
        j["size"] = l.size;
        j["score"] = attention_score_name(l.score);
        break;
      case LayerKind::bridge: j["target"] = l.target; break;
      case LayerKind::concat: break;
      case LayerKind::rnn: {
        const RnnConfig& r = l.rnn;
        j["rnn"] = {{"cell", cell_name(r.cell)},       {"gru_reset", gru_reset_name(r.gru_reset)},
                    {"input_size", r.input_size},      {"hidden_size", r.hidden_size},
                    {"proj_size", r.proj_size},        {"num_layers", r.num_layers},
                    {"bidirectional", r.bidirectional}, {"peephole", r.peephole},
                    {"bias", r.bias},                  {"dropout", r.dropout}};
        j["init"] = l.init;
        if (!l.feed.empty()) j["feed"] = l.feed;  // written only when set: older files keep their bytes
        break;
      }
    }
    ls.push_back(j);
  }
  nlohmann::ordered_json j = {{"inputs", ins}, {"layers", ls}};
  return j.dump();
}

ModelSpec model_spec_from_json(std::string_view json, std::string_view origin) {
  const std::string where = std::string(origin) + ": model";
  JsonFields f(json, where);
  ModelSpec s;
  const auto& ins = f.raw("inputs");
  const auto& ls = f.raw("layers");
  if (!ins.is_array()) f.fail("inputs", "an array");
  if (!ls.is_array()) f.fail("layers", "an array");
  f.finish();
  for (size_t i = 0; i < ins.size(); ++i) {
    JsonFields g(ins[i], where + ": inputs[" + std::to_string(i) + "]");
    InputSpec in;
    in.name = g.string("name");
    const std::string kind = g.string("kind");
    if (kind == "tokens") in.kind = InputKind::tokens;
    else if (kind == "features") in.kind = InputKind::features;
    else g.fail("kind", "\"tokens\" or \"features\"");
    in.per_step = g.boolean("per_step");
    in.size = g.integer("size", 1, int64_t(1) << 31);
    g.finish();
    s.inputs.push_back(in);
  }
  for (size_t i = 0; i < ls.size(); ++i) {
    JsonFields g(ls[i], where + ": layers[" + std::to_string(i) + "]");
    LayerSpec l;
    l.name = g.string("name");
    const std::string kind = g.string("kind");
    const auto& in = g.raw("inputs");
    if (!in.is_array()) g.fail("inputs", "an array of names");
    for (const auto& x : in) {
      if (!x.is_string()) g.fail("inputs", "an array of names");
      l.inputs.push_back(x.get<std::string>());
    }
    if (kind == "embedding") {
      l.kind = LayerKind::embedding;
      l.size = g.integer("size", 1, int64_t(1) << 24);
      l.frozen = g.boolean("frozen");
    } else if (kind == "linear") {
      l.kind = LayerKind::linear;
      l.size = g.integer("size", 1, int64_t(1) << 31);
      if (g.has("tie")) l.tie = g.string("tie");
    } else if (kind == "onehot") {
      l.kind = LayerKind::onehot;
    } else if (kind == "dropout") {
      l.kind = LayerKind::dropout;
      l.p = g.number("p");
    } else if (kind == "bridge") {
      l.kind = LayerKind::bridge;
      l.target = g.string("target");
    } else if (kind == "concat") {
      l.kind = LayerKind::concat;
    } else if (kind == "crf") {
      l.kind = LayerKind::crf;
      l.size = g.integer("size", 1, int64_t(1) << 20);
    } else if (kind == "pool") {
      l.kind = LayerKind::pool;
      const std::string mode = g.string("mode");
      if (mode != "max" && mode != "mean") g.fail("mode", "\"max\" or \"mean\"");
      l.pool = mode == "max" ? PoolMode::max : PoolMode::mean;
    } else if (kind == "attention") {
      l.kind = LayerKind::attention;
      l.size = g.integer("size", 1, int64_t(1) << 24);
      const std::string sc = g.string("score");
      if (sc != "dot" && sc != "general" && sc != "additive") g.fail("score", "\"dot\", \"general\" or \"additive\"");
      l.score = parse_attention_score(sc);
    } else if (kind == "rnn") {
      l.kind = LayerKind::rnn;
      JsonFields r = g.object("rnn");
      l.rnn = read_rnn_config(r);
      l.init = g.string("init");
      if (g.has("feed")) l.feed = g.string("feed");
    } else {
      g.fail("kind", "\"embedding\", \"onehot\", \"rnn\", \"linear\", \"concat\", \"dropout\", \"bridge\", \"crf\", "
                     "\"attention\" or \"pool\"");
    }
    g.finish();
    s.layers.push_back(l);
  }
  try {
    s.validate();
  } catch (const FormatError&) {
    throw;
  } catch (const Error& e) {
    throw FormatError(where + ": " + e.what());
  }
  return s;
}

std::string model_spec_summary(const ModelSpec& spec) {
  std::string s;
  for (const LayerSpec& l : spec.layers) {
    if (!s.empty()) s += " -> ";
    s += l.name + "(" + layer_kind_name(l.kind);
    char buf[96];
    if (l.kind == LayerKind::rnn) {
      std::snprintf(buf, sizeof buf, " %s %lldx%lld%s", cell_name(l.rnn.cell).data(), (long long)l.rnn.num_layers,
                    (long long)l.rnn.hidden_size, l.rnn.bidirectional ? " bi" : "");
      s += buf;
      if (!l.init.empty()) s += " from " + l.init;
      if (!l.feed.empty()) s += " fed by " + l.feed;
    } else if (l.kind == LayerKind::attention) {
      s += std::string(" ") + attention_score_name(l.score) + " " + std::to_string(l.size);
    } else if (l.kind == LayerKind::pool) {
      s += std::string(" ") + pool_mode_name(l.pool);
    } else if (l.kind == LayerKind::embedding || l.kind == LayerKind::linear || l.kind == LayerKind::crf) {
      s += " " + std::to_string(l.size);
      if (l.frozen) s += " frozen";
      if (!l.tie.empty()) s += " tied to " + l.tie;
    }
    s += ")";
  }
  return s;
}

int64_t model_param_count(const ModelSpec& spec) {
  int64_t n = 0;
  for (const LayerSpec& l : spec.layers) {
    switch (l.kind) {
      case LayerKind::embedding: n += spec.inputs[size_t(resolve(spec, l.inputs[0]).input)].size * l.size; break;
      case LayerKind::linear: n += (l.tie.empty() ? spec.width(l.inputs[0]) + 1 : 1) * l.size; break;
      case LayerKind::bridge: n += (spec.width(l.inputs[0]) + 1) * spec.bridge_size(l); break;
      case LayerKind::crf: n += (l.size + 2) * l.size; break;
      case LayerKind::attention: {
        const int64_t Q = spec.width(l.inputs[0]), M = spec.width(l.inputs[1]);
        n += l.size * (M + Q);
        for (const Shape& sh : attention_score_param_shapes(l.score, Q, M, l.size)) n += sh[0] * sh[1];
        break;
      }
      case LayerKind::rnn: {
        const RnnConfig& r = l.rnn;
        const int64_t G = r.gates(), H = r.hidden_size, R = r.state_size();
        for (int64_t k = 0; k < r.num_layers; ++k) {
          int64_t d = G * H * r.layer_input_size(k) + G * H * R;
          if (r.bias) d += 2 * G * H;
          if (r.proj_size > 0) d += r.proj_size * H;
          if (r.peephole) d += 3 * H;
          n += d * r.directions();
        }
        break;
      }
      default: break;
    }
  }
  return n;
}

// ---------------------------------------------------------------- parameters

// Every gradient of a layer but `weight`, and its touched rows: ModelGrads::zero and
// model_zero_touched differ only in how they zero the weight.
namespace {
template <typename T>
void zero_all_but_weight(LayerGrads<T>& l) {
  l.bias.zero();
  l.rnn.zero();
  for (auto& t : l.score) t.zero();
  l.rows.clear();
}
}  // namespace

template <typename T>
void ModelGrads<T>::zero() {
  for (auto& l : layers) {
    l.weight.zero();
    zero_all_but_weight(l);
  }
}

namespace {

// Shapes of the weight and bias of a non-recurrent layer ({} when absent).
std::pair<Shape, Shape> dense_shapes(const ModelSpec& spec, const LayerSpec& l) {
  switch (l.kind) {
    case LayerKind::embedding: return {{spec.inputs[size_t(resolve(spec, l.inputs[0]).input)].size, l.size}, {}};
    case LayerKind::linear:
      if (!l.tie.empty()) return {{}, {l.size}};  // the weight is the tied embedding's
      return {{l.size, spec.width(l.inputs[0])}, {l.size}};
    case LayerKind::bridge: {
      const int64_t S = spec.bridge_size(l);
      return {{S, spec.width(l.inputs[0])}, {S}};
    }
    case LayerKind::crf: return {{l.size, l.size}, {2, l.size}};
    case LayerKind::attention: return {{l.size, spec.width(l.inputs[1]) + spec.width(l.inputs[0])}, {}};
    default: return {{}, {}};
  }
}

// The score parameters of an attention layer (none for the other kinds).
std::vector<Shape> score_shapes(const ModelSpec& spec, const LayerSpec& l) {
  if (l.kind != LayerKind::attention) return {};
  return attention_score_param_shapes(l.score, spec.width(l.inputs[0]), spec.width(l.inputs[1]), l.size);
}

}  // namespace

template <typename T>
ModelParams<T> model_init_params(const ModelSpec& spec, Rng& rng, const ModelInitOptions& init) {
  using Scheme = ModelInitOptions::Scheme;
  spec.validate();
  if (init.scheme == Scheme::uniform && !(init.scale > 0))
    throw Error("model_init_params: the uniform scheme needs scale > 0, got " + std::to_string(init.scale));
  ModelParams<T> p = model_zero_params<T>(spec);
  auto fill = [&](Tensor<T>& t, double s) {
    for (auto& v : t.data) v = T(rng.uniform(-s, s));
  };
  const bool rnn_first = init.scheme != Scheme::standard;
  if (rnn_first)
    for (size_t i = 0; i < spec.layers.size(); ++i) {
      const LayerSpec& l = spec.layers[i];
      if (l.kind != LayerKind::rnn) continue;
      p.layers[i].rnn = init.scheme == Scheme::uniform ? rnn_init_params_uniform<T>(l.rnn, rng, init.scale)
                                                       : rnn_init_params<T>(l.rnn, rng);
    }
  for (size_t i = 0; i < spec.layers.size(); ++i) {
    const LayerSpec& l = spec.layers[i];
    LayerParams<T>& lp = p.layers[i];
    if (l.kind == LayerKind::rnn) {
      if (rnn_first) continue;
      lp.rnn = rnn_init_params<T>(l.rnn, rng);
      rnn_set_forget_bias(l.rnn, lp.rnn, 1.0);
      continue;
    }
    // A CRF starts from zero scores (every transition alike, as CRFsuite does) and draws nothing,
    // so adding one leaves every other layer's draws as they were.
    if (l.kind == LayerKind::crf || (lp.weight.empty() && lp.bias.empty())) continue;
    switch (init.scheme) {
      case Scheme::standard: {
        // PyTorch nn.Linear's bound 1/sqrt(fan_in); an attention's W_c reads [c; h].
        const double fan_in = double(lp.weight.rank() == 2 ? lp.weight.dim(1) : spec.width(l.inputs[0]));
        const double s = l.kind == LayerKind::embedding ? 0.1 : 1.0 / std::sqrt(fan_in);
        fill(lp.weight, s);
        fill(lp.bias, s);
        for (auto& t : lp.score) fill(t, 1.0 / std::sqrt(double(t.dim(1))));
        break;
      }
      case Scheme::uniform:
        fill(lp.weight, init.scale);
        fill(lp.bias, init.scale);
        for (auto& t : lp.score) fill(t, init.scale);
        break;
      case Scheme::word_lm:  // biases stay 0
        fill(lp.weight, 0.1);
        for (auto& t : lp.score) fill(t, 0.1);
        break;
    }
  }
  return p;
}

namespace {
// Appends rows to a [R, F] matrix (or entries to a [R] vector) up to R2, drawn U(-s, s).
template <typename T>
void grow_rows(Tensor<T>& t, int64_t R2, double s, Rng& rng) {
  const int64_t R = t.dim(0), F = t.rank() == 2 ? t.dim(1) : 1;
  for (int64_t k = R * F; k < R2 * F; ++k) t.data.push_back(T(rng.uniform(-s, s)));
  t.shape[0] = R2;
}
}  // namespace

template <typename T>
void model_grow_tokens(ModelSpec& spec, ModelParams<T>& params, const std::string& input, int64_t V2, Rng& rng) {
  InputSpec* in = nullptr;
  for (InputSpec& i : spec.inputs)
    if (i.name == input) in = &i;
  if (!in || in->kind != InputKind::tokens) throw Error("model: " + quote_name(input) + " is not a tokens input");
  if (V2 < in->size)
    throw Error("model input " + quote_name(input) + ": cannot shrink a vocabulary of " + std::to_string(in->size) +
                " to " + std::to_string(V2));
  for (const LayerSpec& l : spec.layers)
    if (l.kind == LayerKind::onehot && l.inputs[0] == input && V2 != in->size)
      throw Error("model input " + quote_name(input) + ": read as one-hot rows by " + quote_name(l.name) +
                  ", whose width is the next layer's input size; its vocabulary cannot grow");
  model_check_params(spec, params);
  for (size_t i = 0; i < spec.layers.size(); ++i)
    if (spec.layers[i].kind == LayerKind::embedding && spec.layers[i].inputs[0] == input)
      grow_rows(params.layers[i].weight, V2, 0.1, rng);
  // A head tied to such an embedding has one output per token: it grows with it.
  for (size_t i = 0; i < spec.layers.size(); ++i) {
    LayerSpec& l = spec.layers[i];
    if (l.kind != LayerKind::linear || l.tie.empty() || spec.layer(l.tie).inputs[0] != input) continue;
    grow_rows(params.layers[i].bias, V2, 1.0 / std::sqrt(double(spec.width(l.inputs[0]))), rng);
    l.size = V2;
  }
  in->size = V2;
  model_check_params(spec, params);
}

template <typename T>
void model_grow_head(ModelSpec& spec, ModelParams<T>& params, const std::string& head, int64_t C2, Rng& rng) {
  const int64_t i = spec.layer_index(head);
  if (i < 0 || spec.layers[size_t(i)].kind != LayerKind::linear) throw Error("model: " + quote_name(head) + " is not a linear layer");
  LayerSpec& l = spec.layers[size_t(i)];
  if (C2 < l.size)
    throw Error("model layer " + quote_name(head) + ": cannot shrink " + std::to_string(l.size) + " outputs to " + std::to_string(C2));
  const double s = 1.0 / std::sqrt(double(spec.width(l.inputs[0])));
  LayerParams<T>& p = params.layers[size_t(i)];
  if (l.tie.empty()) grow_rows(p.weight, C2, s, rng);
  grow_rows(p.bias, C2, s, rng);
  l.size = C2;
  model_check_params(spec, params);
}

template <typename T>
ModelParams<T> model_zero_params(const ModelSpec& spec) {
  spec.validate();
  ModelParams<T> p;
  p.layers.resize(spec.layers.size());
  for (size_t i = 0; i < spec.layers.size(); ++i) {
    const LayerSpec& l = spec.layers[i];
    if (l.kind == LayerKind::rnn) {
      p.layers[i].rnn.dirs = rnn_zero_grads<T>(l.rnn).dirs;
      continue;
    }
    const auto [ws, bs] = dense_shapes(spec, l);
    if (!ws.empty()) p.layers[i].weight = Tensor<T>(ws);
    if (!bs.empty()) p.layers[i].bias = Tensor<T>(bs);
    for (const Shape& sh : score_shapes(spec, l)) p.layers[i].score.emplace_back(sh);
  }
  return p;
}

template <typename T>
ModelGrads<T> model_zero_grads(const ModelSpec& spec) {
  spec.validate();
  ModelGrads<T> g;
  g.layers.resize(spec.layers.size());
  for (size_t i = 0; i < spec.layers.size(); ++i) {
    const LayerSpec& l = spec.layers[i];
    if (l.kind == LayerKind::rnn) {
      g.layers[i].rnn = rnn_zero_grads<T>(l.rnn);
      continue;
    }
    const auto [ws, bs] = dense_shapes(spec, l);
    if (!ws.empty()) g.layers[i].weight = Tensor<T>(ws);
    if (!bs.empty()) g.layers[i].bias = Tensor<T>(bs);
    for (const Shape& sh : score_shapes(spec, l)) g.layers[i].score.emplace_back(sh);
  }
  return g;
}

template <typename T>
void model_check_params(const ModelSpec& spec, const ModelParams<T>& params) {
  spec.validate();
  if (params.layers.size() != spec.layers.size())
    throw ShapeError("model parameters: expected " + std::to_string(spec.layers.size()) + " layers, got " +
                     std::to_string(params.layers.size()));
  for (size_t i = 0; i < spec.layers.size(); ++i) {
    const LayerSpec& l = spec.layers[i];
    const LayerParams<T>& lp = params.layers[i];
    if (l.kind == LayerKind::rnn) {
      rnn_check_params(l.rnn, lp.rnn);
      continue;
    }
    const auto [ws, bs] = dense_shapes(spec, l);
    if (!ws.empty()) check_shape("model parameter " + l.name + ".weight", lp.weight.shape, ws);
    if (!bs.empty()) check_shape("model parameter " + l.name + ".bias", lp.bias.shape, bs);
    const auto ss = score_shapes(spec, l);
    if (lp.score.size() != ss.size())
      throw ShapeError("model parameters of " + l.name + ": expected " + std::to_string(ss.size()) + " score tensors, got " +
                       std::to_string(lp.score.size()));
    for (size_t k = 0; k < ss.size(); ++k)
      check_shape("model parameter " + l.name + "." + attention_score_param_names(l.score)[k], lp.score[k].shape, ss[k]);
  }
}

template <typename T>
std::vector<ParamRef<T>> model_param_refs(const ModelSpec& spec, ModelParams<T>& params, ModelGrads<T>& grads) {
  std::vector<std::pair<std::string, Tensor<T>*>> pv, gv;
  std::vector<bool> train;
  model_for_each_param(spec, params, [&](const std::string& n, Tensor<T>& t, bool tr) {
    pv.emplace_back(n, &t);
    train.push_back(tr);
  });
  model_for_each_param(spec, grads, [&](const std::string& n, Tensor<T>& t, bool) { gv.emplace_back(n, &t); });
  std::vector<ParamRef<T>> refs;
  for (size_t i = 0; i < pv.size(); ++i)
    if (train[i]) refs.push_back(param_ref(pv[i].first, *pv[i].second, *gv[i].second));
  return refs;
}

template <typename T>
std::vector<ParamRef<T>> model_param_refs_sparse(const ModelSpec& spec, ModelParams<T>& params, ModelGrads<T>& grads) {
  std::vector<ParamRef<T>> refs = model_param_refs(spec, params, grads);
  for (size_t i = 0; i < spec.layers.size(); ++i) {
    const LayerSpec& l = spec.layers[i];
    if (l.kind != LayerKind::embedding || l.frozen) continue;
    LayerGrads<T>& g = grads.layers[i];
    for (ParamRef<T>& r : refs)
      if (r.grad == g.weight.ptr() && r.size > 0) {
        r.rows = &g.rows;
        r.row_size = g.weight.dim(1);
      }
  }
  return refs;
}

template <typename T>
void model_zero_touched(const ModelSpec& spec, ModelGrads<T>& grads) {
  if (grads.layers.size() != spec.layers.size())
    throw ShapeError("model_zero_touched: gradients do not match the spec (make them with model_zero_grads)");
  for (size_t i = 0; i < spec.layers.size(); ++i) {
    LayerGrads<T>& l = grads.layers[i];
    if (spec.layers[i].kind == LayerKind::embedding && l.weight.rank() == 2) {
      const int64_t width = l.weight.dim(1), vocab = l.weight.dim(0);
      for (const int32_t r : l.rows) {
        if (r < 0 || r >= vocab) throw Error("model_zero_touched: row " + std::to_string(r) + " outside the table");
        std::fill_n(l.weight.ptr() + int64_t(r) * width, width, T(0));
      }
    } else {
      l.weight.zero();
    }
    zero_all_but_weight(l);
  }
}

// ---------------------------------------------------------------- forward and backward

namespace {

// The value a reference denotes in the current forward (inputs are wrapped on the fly).
template <typename T>
struct Values {
  const ModelSpec& spec;
  const ModelInputs<T>& inputs;
  ModelCache<T>& cache;

  const ModelInput<T>& input(const Ref& r) const {
    const InputSpec& in = spec.inputs[size_t(r.input)];
    auto it = inputs.find(in.name);
    if (it == inputs.end()) throw Error("model_forward: input " + quote_name(in.name) + " was not given");
    return it->second;
  }
  // Tensor and lengths of a non-token reference.
  std::pair<const Tensor<T>*, const std::vector<int64_t>*> get(std::string_view ref) const {
    static const std::vector<int64_t> none;
    const Ref r = resolve(spec, ref);
    if (r.input >= 0) {
      const ModelInput<T>& in = input(r);
      return {&in.features, &in.lengths};
    }
    const LayerCache<T>& c = cache.layers[size_t(r.layer)];
    if (!c.done) throw Error("model: " + quote_name(ref) + " was not computed");
    if (c.identity) return get(spec.layers[size_t(r.layer)].inputs[0]);
    if (r.final) return {&c.final, &none};
    return {&c.out.data, &c.out.lengths};
  }
};

// What every layer's forward sees: the graph, the call's options and the layer's own slots.
template <typename T>
struct Forward {
  const ModelSpec& spec;
  const ModelParams<T>& params;
  ModelCache<T>& cache;
  const Values<T>& vals;
  const ModelForwardOptions& opts;
  const StateOverrides<T>& overrides;
};

// What every layer's backward sees. wants[i]: the gradient of layer i's output reaches a
// trainable parameter, so a consumer computes it (an rnn reading one-hot rows skips its dx,
// the [T*B, V] product that the language model's one-hot input would otherwise cost).
template <typename T>
struct Backward {
  const ModelSpec& spec;
  const ModelParams<T>& params;
  ModelCache<T>& cache;
  ModelGrads<T>& grads;
  const Values<T>& vals;
  std::vector<bool> wants;
  Tensor<T>& dx;     // scratch shared by the layers (ModelCache's, so a step allocates nothing)
  Tensor<T>& zeros;

  bool wants_grad(std::string_view ref) const {
    const Ref r = resolve(spec, ref);
    return r.layer >= 0 && wants[size_t(r.layer)];
  }
  // Sends a gradient to the value `ref` denotes (model inputs are data: dropped).
  void route(std::string_view ref, const Tensor<T>& g) {
    const Ref r = resolve(spec, ref);
    if (r.layer < 0) return;
    LayerCache<T>& c = cache.layers[size_t(r.layer)];
    if (!c.done) throw Error("model_backward: " + quote_name(ref) + " was not computed by the last forward");
    if (c.identity) return route(spec.layers[size_t(r.layer)].inputs[0], g);
    add_to(r.final ? c.grad_final : c.grad_out, g);
    c.has_grad = true;
  }
};

// The layer holding a linear head's weight: its tied embedding, or itself.
size_t weight_owner(const ModelSpec& spec, const LayerSpec& l, size_t i) {
  return l.tie.empty() ? i : size_t(spec.layer_index(l.tie));
}

// --- embedding: ids [T, B] -> [T, B, E] or [B] -> [B, E]; backward: sparse rows of the matrix.

template <typename T>
void embedding_layer_forward(const Forward<T>& f, const LayerSpec& l, const LayerParams<T>& p, LayerCache<T>& c) {
  const Ref r = resolve(f.spec, l.inputs[0]);
  const ModelInput<T>& in = f.vals.input(r);
  const bool seq = f.spec.inputs[size_t(r.input)].per_step;
  const int64_t N = seq ? in.steps * in.batch : in.batch;
  if (int64_t(in.ids.size()) != N || N < 1)
    throw ShapeError("model input " + quote_name(l.inputs[0]) + ": expected " + std::to_string(N) + " ids, got " +
                     std::to_string(in.ids.size()));
  embedding_forward(p.weight, std::span<const int32_t>(in.ids), c.out.data);
  if (seq) c.out.data.shape = {in.steps, in.batch, l.size};
  c.out.lengths = seq ? in.lengths : std::vector<int64_t>();
}

template <typename T>
void embedding_layer_backward(Backward<T>& b, const LayerSpec& l, size_t i) {
  if (l.frozen) return;
  const ModelInput<T>& in = b.vals.input(resolve(b.spec, l.inputs[0]));
  LayerGrads<T>& g = b.grads.layers[i];
  std::vector<int32_t> rows, merged;
  embedding_backward(std::span<const int32_t>(in.ids), b.cache.layers[i].grad_out, g.weight, &rows);
  // Merged with the rows of earlier accumulations into the same gradients.
  merged.reserve(rows.size() + g.rows.size());
  std::set_union(rows.begin(), rows.end(), g.rows.begin(), g.rows.end(), std::back_inserter(merged));
  g.rows = std::move(merged);
}

// --- onehot: ids [T, B] -> [T, B, V] rows e_id; data, so there is no backward.

template <typename T>
void onehot_layer_forward(const Forward<T>& f, const LayerSpec& l, LayerCache<T>& c) {
  const Ref r = resolve(f.spec, l.inputs[0]);
  const ModelInput<T>& in = f.vals.input(r);
  const int64_t V = f.spec.inputs[size_t(r.input)].size, N = in.steps * in.batch;
  if (int64_t(in.ids.size()) != N || N < 1)
    throw ShapeError("model input " + quote_name(l.inputs[0]) + ": expected " + std::to_string(N) + " ids ([T, B]), got " +
                     std::to_string(in.ids.size()));
  c.out.data.resize({in.steps, in.batch, V});
  c.out.data.zero();
  for (int64_t k = 0; k < N; ++k) {
    const int32_t id = in.ids[size_t(k)];
    if (id < 0 || id >= V)
      throw Error("model input " + quote_name(l.inputs[0]) + ": token id " + std::to_string(id) + " at position " +
                  std::to_string(k) + " is outside the vocabulary [0, " + std::to_string(V) + ")");
    c.out.data.data[size_t(k * V + id)] = T(1);
  }
  c.out.lengths = in.lengths;
}

// --- rnn: [T, B, I] -> [T, B, D*R]; final [B, D*R]; initial state from an override (decoding
// step, carried stream state), an earlier rnn, a bridge or zeros.

template <typename T>
void rnn_initial_state(const Forward<T>& f, const LayerSpec& l, LayerCache<T>& c) {
  auto ov = f.overrides.find(l.name);
  if (ov != f.overrides.end()) {
    c.state0 = *ov->second;
    return;
  }
  if (l.init.empty()) {
    c.state0 = RnnState<T>();
    return;
  }
  const LayerSpec& src = f.spec.layer(l.init);
  const LayerCache<T>& sc = f.cache.layers[size_t(f.spec.layer_index(l.init))];
  if (src.kind == LayerKind::rnn) {
    c.state0 = sc.state_n;
    return;
  }
  // bridge output [B, S] -> h [L*D, B, R] (+ c [L*D, B, H])
  const RnnConfig& rc = l.rnn;
  const int64_t K = rc.num_layers * rc.directions(), R = rc.state_size(), H = rc.hidden_size;
  const int64_t S = sc.out.data.dim(1), Bb = sc.out.data.dim(0);
  c.state0 = rnn_zero_state<T>(rc, Bb);
  for (int64_t k = 0; k < K; ++k)
    for (int64_t b = 0; b < Bb; ++b) {
      const T* y = sc.out.data.ptr() + b * S;
      std::copy(y + k * R, y + (k + 1) * R, c.state0.h.ptr() + (k * Bb + b) * R);
      if (rc.has_cell_state()) std::copy(y + K * R + k * H, y + K * R + (k + 1) * H, c.state0.c.ptr() + (k * Bb + b) * H);
    }
}

// final [B, D*R]: the last layer's h_n, directions side by side.
template <typename T>
void rnn_final(const LayerSpec& l, int64_t B, LayerCache<T>& c) {
  const int64_t D = l.rnn.directions(), R = l.rnn.state_size(), L = l.rnn.num_layers;
  c.final.resize({B, D * R});
  for (int64_t d = 0; d < D; ++d)
    for (int64_t b = 0; b < B; ++b) {
      const T* h = c.state_n.h.ptr() + (((L - 1) * D + d) * B + b) * R;
      std::copy(h, h + R, c.final.ptr() + b * D * R + d * R);
    }
}

template <typename T>
void rnn_layer_forward(const Forward<T>& f, const LayerSpec& l, const LayerParams<T>& p, LayerCache<T>& c) {
  const auto [x, lens] = f.vals.get(l.inputs[0]);
  const int64_t B = x->rank() == 3 ? x->dim(1) : 0;
  rnn_initial_state(f, l, c);
  rnn_forward(l.rnn, p.rnn, *x, *lens, c.state0, {.training = f.opts.training, .rng = f.opts.rng, .backend = f.opts.backend, .precision = f.opts.precision},
              c.out.data, c.state_n, c.rnn);
  c.out.lengths = *lens;
  rnn_final(l, B, c);
}

// The final-state head reads the last layer's h_n: its gradient enters grad_state_n there.
template <typename T>
void rnn_final_backward(const LayerSpec& l, int64_t B, LayerCache<T>& c) {
  const RnnConfig& rc = l.rnn;
  const int64_t D = rc.directions(), R = rc.state_size(), L = rc.num_layers;
  if (!c.grad_final.empty()) {
    if (c.grad_state_n.h.empty()) {
      c.grad_state_n.h.resize({L * D, B, R});
      c.grad_state_n.h.zero();
    }
    for (int64_t d = 0; d < D; ++d)
      for (int64_t bb = 0; bb < B; ++bb) {
        T* dh = c.grad_state_n.h.ptr() + (((L - 1) * D + d) * B + bb) * R;
        const T* gf = c.grad_final.ptr() + bb * D * R + d * R;
        for (int64_t r = 0; r < R; ++r) dh[r] += gf[r];
      }
  }
}

// An overridden initial state is a constant (truncated BPTT); an init layer gets its gradient.
template <typename T>
bool rnn_init_linked(const Backward<T>& b, const LayerSpec& l) {
  return !l.init.empty() && b.cache.layers[size_t(b.spec.layer_index(l.init))].done;
}

// The initial state's gradient gs0 back into the init layer: an rnn's final state or a bridge.
template <typename T>
void rnn_init_backward(Backward<T>& b, const LayerSpec& l, int64_t B, const RnnState<T>& gs0) {
  const RnnConfig& rc = l.rnn;
  const int64_t D = rc.directions(), R = rc.state_size(), L = rc.num_layers;
  const int64_t k = b.spec.layer_index(l.init);
  LayerCache<T>& sc = b.cache.layers[size_t(k)];
  if (b.spec.layers[size_t(k)].kind == LayerKind::rnn) {
    add_to(sc.grad_state_n.h, gs0.h);
    if (!gs0.c.empty()) add_to(sc.grad_state_n.c, gs0.c);
  } else {
    // back into the bridge's [B, S] layout
    const int64_t K = L * D, H = rc.hidden_size, S = sc.out.data.dim(1);
    Tensor<T> gb({B, S});
    for (int64_t kk = 0; kk < K; ++kk)
      for (int64_t bb = 0; bb < B; ++bb) {
        T* y = gb.ptr() + bb * S;
        std::copy(gs0.h.ptr() + (kk * B + bb) * R, gs0.h.ptr() + (kk * B + bb + 1) * R, y + kk * R);
        if (rc.has_cell_state())
          std::copy(gs0.c.ptr() + (kk * B + bb) * H, gs0.c.ptr() + (kk * B + bb + 1) * H, y + K * R + kk * H);
      }
    add_to(sc.grad_out, gb);
  }
  sc.has_grad = true;
}

template <typename T>
void rnn_layer_backward(Backward<T>& b, const LayerSpec& l, size_t i) {
  LayerCache<T>& c = b.cache.layers[i];
  const Tensor<T>& x = *b.vals.get(l.inputs[0]).first;
  const int64_t B = x.dim(1);
  const Tensor<T>* gy = &c.grad_out;
  if (c.grad_out.empty()) {
    b.zeros.resize(c.out.data.shape);
    b.zeros.zero();
    gy = &b.zeros;
  }
  rnn_final_backward(l, B, c);
  const bool link = rnn_init_linked(b, l);
  const bool need_dx = b.wants_grad(l.inputs[0]);
  RnnState<T> gs0;
  rnn_backward(l.rnn, b.params.layers[i].rnn, x, c.rnn, *gy, c.grad_state_n, b.grads.layers[i].rnn,
               need_dx ? &b.dx : nullptr, link ? &gs0 : nullptr);
  if (need_dx) b.route(l.inputs[0], b.dx);
  if (link) rnn_init_backward(b, l, B, gs0);
}

// --- linear: [..., F] -> [..., C] with its own weight or its tied embedding's.

template <typename T>
void linear_layer_forward(const Forward<T>& f, const LayerSpec& l, size_t i, LayerCache<T>& c) {
  const auto [x, lens] = f.vals.get(l.inputs[0]);
  const Tensor<T>& bias = f.params.layers[i].bias;
  c.bias_to_loss = f.opts.bias_to_loss && i + 1 == f.spec.layers.size() && !bias.data.empty();
  static const Tensor<T> no_bias;
  linear_forward(f.params.layers[weight_owner(f.spec, l, i)].weight, c.bias_to_loss ? no_bias : bias, *x, c.out.data,
                 {.precision = f.opts.precision, .bf16_cache = &c.bf16});
  c.out.lengths = *lens;
}

template <typename T>
void linear_layer_backward(Backward<T>& b, const LayerSpec& l, size_t i) {
  const Tensor<T>& x = *b.vals.get(l.inputs[0]).first;
  const size_t w = weight_owner(b.spec, l, i);
  const bool need_dx = b.wants_grad(l.inputs[0]);
  // A bias left to the loss has its gradient from the loss too.
  Tensor<T>* grad_bias = b.cache.layers[i].bias_to_loss ? nullptr : &b.grads.layers[i].bias;
  linear_backward(b.params.layers[w].weight, x, b.cache.layers[i].grad_out, b.grads.layers[w].weight,
                  grad_bias, need_dx ? &b.dx : nullptr,
                  {.precision = b.cache.precision, .bf16_cache = &b.cache.layers[i].bf16});
  if (w != i) {
    // The head's gradient covers every row of the shared matrix: no longer sparse.
    std::vector<int32_t>& rows = b.grads.layers[w].rows;
    rows.resize(size_t(b.params.layers[w].weight.dim(0)));
    for (size_t r = 0; r < rows.size(); ++r) rows[r] = int32_t(r);
  }
  if (need_dx) b.route(l.inputs[0], b.dx);
}

// --- crf: the emissions pass through (an identity, like a dropout that is off); the CRF's own
// parameters are used by the loss (model/crf.h), which writes their gradients.

template <typename T>
void crf_layer_forward(const Forward<T>&, const LayerSpec&, LayerCache<T>& c) {
  c.identity = true;  // validate() made sure the input is a layer, whose value this one is
  clear(c.mask);
}

// --- dropout: inverted dropout (dropout.h, the implementation rnn.h's between-layer dropout
// shares); backward multiplies by the mask.

template <typename T>
void dropout_layer_forward(const Forward<T>& f, const LayerSpec& l, LayerCache<T>& c) {
  const auto [x, lens] = f.vals.get(l.inputs[0]);
  // A model input has no layer slot to stand for, so a dropout straight on one copies it.
  c.identity = (!f.opts.training || l.p <= 0) && resolve(f.spec, l.inputs[0]).layer >= 0;
  if (c.identity) {  // readers and gradients go straight to the input (Values::get, route)
    clear(c.mask);
    return;
  }
  c.out.data = *x;
  c.out.lengths = *lens;
  if (!f.opts.training || l.p <= 0) {
    clear(c.mask);
    return;
  }
  if (!f.opts.rng) throw Error("model_forward: layer " + quote_name(l.name) + ": training with dropout needs an rng");
  dropout_forward_in_place(c.out.data, c.mask, l.p, *f.opts.rng);
}

template <typename T>
void dropout_layer_backward(Backward<T>& b, const LayerSpec& l, size_t i) {
  if (!b.wants_grad(l.inputs[0])) return;
  const LayerCache<T>& c = b.cache.layers[i];  // never an identity one: route passes those by
  b.dx = c.grad_out;
  if (!c.mask.empty()) dropout_backward_in_place(b.dx, c.mask);
  b.route(l.inputs[0], b.dx);
}

// --- bridge: [B, F] -> tanh(x W^T + b) [B, S].

template <typename T>
void bridge_layer_forward(const Forward<T>& f, const LayerSpec& l, const LayerParams<T>& p, LayerCache<T>& c) {
  const Tensor<T>& x = *f.vals.get(l.inputs[0]).first;
  linear_forward(p.weight, p.bias, x, c.out.data);
  for (auto& v : c.out.data.data) v = std::tanh(v);
  c.out.lengths.clear();
}

template <typename T>
void bridge_layer_backward(Backward<T>& b, const LayerSpec& l, size_t i) {
  const LayerCache<T>& c = b.cache.layers[i];
  // dz = dy * (1 - y^2)
  b.dx = c.grad_out;
  for (size_t k = 0; k < b.dx.data.size(); ++k) b.dx.data[k] *= T(1) - c.out.data.data[k] * c.out.data.data[k];
  const Tensor<T>& x = *b.vals.get(l.inputs[0]).first;
  const bool need_dx = b.wants_grad(l.inputs[0]);
  Tensor<T> dxin;
  linear_backward(b.params.layers[i].weight, x, b.dx, b.grads.layers[i].weight, &b.grads.layers[i].bias,
                  need_dx ? &dxin : nullptr);
  if (need_dx) b.route(l.inputs[0], dxin);
}

// --- concat: rows N of every input (T*B for sequences) joined along features; a vector of B
// rows next to a sequence [T, B, F] is repeated at every step (a per-step condition).

template <typename T>
void concat_layer_forward(const Forward<T>& f, const LayerSpec& l, LayerCache<T>& c) {
  Shape lead;
  std::vector<int64_t> lengths;
  int64_t rows = -1, width = 0;
  for (const auto& in : l.inputs) {
    const auto [x, lens] = f.vals.get(in);
    if (x->rank() == 3 && lead.empty()) {
      lead = {x->dim(0), x->dim(1)};
      lengths = *lens;
    }
    width += x->shape.back();
  }
  for (const auto& in : l.inputs) {
    const Tensor<T>& x = *f.vals.get(in).first;
    const int64_t r = rows_of(x.shape);
    const int64_t want = lead.empty() ? (rows < 0 ? r : rows) : lead[0] * lead[1];
    if (r != want && !(x.rank() == 2 && !lead.empty() && r == lead[1]))
      layer_error(l, "input " + quote_name(in) + " has " + std::to_string(r) + " rows, expected " + std::to_string(want) +
                         (lead.empty() ? "" : " or " + std::to_string(lead[1]) + " (one per sequence)"));
    rows = want;
  }
  if (lead.empty()) lead = {rows};
  Shape s = lead;
  s.push_back(width);
  c.out.data.resize(s);
  int64_t off = 0;
  for (const auto& in : l.inputs) {
    const Tensor<T>& x = *f.vals.get(in).first;
    const int64_t F = x.shape.back(), xr = rows_of(x.shape);  // xr < rows: repeated per step
    for (int64_t r = 0; r < rows; ++r) {
      const T* src = x.ptr() + (r % xr) * F;
      std::copy(src, src + F, c.out.data.ptr() + r * width + off);
    }
    off += F;
  }
  c.out.lengths = lengths;
}

template <typename T>
void concat_layer_backward(Backward<T>& b, const LayerSpec& l, size_t i) {
  const LayerCache<T>& c = b.cache.layers[i];
  const int64_t rows = rows_of(c.out.data.shape), width = c.out.data.shape.back();
  int64_t off = 0;
  for (const auto& in : l.inputs) {
    const Tensor<T>& x = *b.vals.get(in).first;
    const int64_t F = x.shape.back(), xr = rows_of(x.shape);
    if (b.wants_grad(in)) {
      b.dx.resize(x.shape);
      b.dx.zero();
      // A vector repeated at every step collects the gradients of all steps.
      if (!c.grad_out.empty())
        for (int64_t r = 0; r < rows; ++r) {
          const T* g = c.grad_out.ptr() + r * width + off;
          T* d = b.dx.ptr() + (r % xr) * F;
          for (int64_t k = 0; k < F; ++k) d[k] += g[k];
        }
      b.route(in, b.dx);
    }
    off += F;
  }
}

// --- pool: x [T, B, F] -> y [B, F], the maximum or the mean of each feature over the steps
// t < length of each example (steps past it are padding). Backward: the maximum's gradient goes
// to the step it came from (the first such step on a tie), the mean's to every step / length.

// Steps of example b that count: its length (capped at T), or T when the sequence has no lengths.
int64_t pooled_steps(const std::vector<int64_t>& lens, int64_t b, int64_t Tn) {
  return lens.empty() ? Tn : std::min(lens[size_t(b)], Tn);
}

template <typename T>
void pool_layer_forward(const Forward<T>& f, const LayerSpec& l, LayerCache<T>& c) {
  const auto [x, lens] = f.vals.get(l.inputs[0]);
  const int64_t Tn = x->dim(0), B = x->dim(1), F = x->dim(2);
  c.out.data.resize({B, F});
  c.out.lengths.clear();
  if (l.pool == PoolMode::max) c.argmax.assign(size_t(B * F), 0);
  for (int64_t b = 0; b < B; ++b) {
    const int64_t len = pooled_steps(*lens, b, Tn);
    T* y = c.out.data.ptr() + b * F;
    if (len <= 0) {
      std::fill(y, y + F, T(0));
      continue;
    }
    const T* x0 = x->ptr() + b * F;  // step t of example b is at x0 + t * B * F
    std::copy(x0, x0 + F, y);
    if (l.pool == PoolMode::max) {
      int64_t* arg = c.argmax.data() + b * F;
      for (int64_t t = 1; t < len; ++t) {
        const T* xt = x0 + t * B * F;
        for (int64_t k = 0; k < F; ++k)
          if (xt[k] > y[k]) {
            y[k] = xt[k];
            arg[k] = t;
          }
      }
    } else {
      for (int64_t t = 1; t < len; ++t) {
        const T* xt = x0 + t * B * F;
        for (int64_t k = 0; k < F; ++k) y[k] += xt[k];
      }
      const T inv = T(1) / T(len);
      for (int64_t k = 0; k < F; ++k) y[k] *= inv;
    }
  }
}

template <typename T>
void pool_layer_backward(Backward<T>& b, const LayerSpec& l, size_t i) {
  if (!b.wants_grad(l.inputs[0])) return;
  const LayerCache<T>& c = b.cache.layers[i];
  const auto [x, lens] = b.vals.get(l.inputs[0]);
  const int64_t Tn = x->dim(0), B = x->dim(1), F = x->dim(2);
  b.dx.resize(x->shape);
  b.dx.zero();
  for (int64_t bb = 0; bb < B; ++bb) {
    const int64_t len = pooled_steps(*lens, bb, Tn);
    const T* dy = c.grad_out.ptr() + bb * F;
    T* d0 = b.dx.ptr() + bb * F;
    if (len <= 0) continue;
    if (l.pool == PoolMode::max) {
      const int64_t* arg = c.argmax.data() + bb * F;
      for (int64_t k = 0; k < F; ++k) d0[arg[k] * B * F + k] = dy[k];
    } else {
      const T inv = T(1) / T(len);
      for (int64_t t = 0; t < len; ++t)
        for (int64_t k = 0; k < F; ++k) d0[t * B * F + k] = dy[k] * inv;
    }
  }
  b.route(l.inputs[0], b.dx);
}

// --- attention: query [Tq, B, Q] over memory [Ts, B, M] (the memory's lengths mask it) ->
// [Tq, B, A] with the query's lengths (attention.h).

template <typename T>
AttentionWeights<T> attention_weights(const LayerParams<T>& p) {
  return {.out = &p.weight, .score = std::span<const Tensor<T>>(p.score)};
}

template <typename T>
void attention_layer_forward(const Forward<T>& f, const LayerSpec& l, const LayerParams<T>& p, LayerCache<T>& c) {
  const auto [q, qlens] = f.vals.get(l.inputs[0]);
  const auto [mem, mlens] = f.vals.get(l.inputs[1]);
  attention_forward(l.score, attention_weights(p), *q, *mem, std::span<const int64_t>(*mlens), c.attn, c.out.data);
  c.out.lengths = *qlens;
}

template <typename T>
void attention_layer_backward(Backward<T>& b, const LayerSpec& l, size_t i) {
  const LayerCache<T>& c = b.cache.layers[i];
  const auto [q, qlens] = b.vals.get(l.inputs[0]);
  const auto [mem, mlens] = b.vals.get(l.inputs[1]);
  const bool need_q = b.wants_grad(l.inputs[0]), need_m = b.wants_grad(l.inputs[1]);
  Tensor<T> dq, dm;
  LayerGrads<T>& g = b.grads.layers[i];
  attention_backward(l.score, attention_weights(b.params.layers[i]), *q, *mem, std::span<const int64_t>(*mlens), c.attn,
                     c.out.data, c.grad_out, g.weight, std::span<Tensor<T>>(g.score), need_q ? &dq : nullptr,
                     need_m ? &dm : nullptr);
  if (need_q) b.route(l.inputs[0], dq);
  if (need_m) b.route(l.inputs[1], dm);
}

// --- rnn with input feeding (LayerSpec::feed): the rnn and the attention it feeds, one step at a
// time: x_t [B, I0] and y_{t-1} [B, A] -> rnn step -> h_t [B, R] -> attention -> y_t [B, A]. The
// rnn's steps run on the reference path (one step each), the memory's keys are projected once.

// The rnn layer that an attention layer feeds, or -1.
int64_t feeding_rnn(const ModelSpec& spec, const LayerSpec& attention) {
  for (size_t k = 0; k < spec.layers.size(); ++k)
    if (spec.layers[k].kind == LayerKind::rnn && spec.layers[k].feed == attention.name) return int64_t(k);
  return -1;
}

// Rows b of a state [K, B, X] (h or c) copied from src into dst.
template <typename T>
void copy_state_row(const Tensor<T>& src, Tensor<T>& dst, int64_t b) {
  if (src.empty()) return;
  const int64_t K = src.dim(0), B = src.dim(1), X = src.dim(2);
  for (int64_t k = 0; k < K; ++k) std::copy_n(src.ptr() + (k * B + b) * X, X, dst.ptr() + (k * B + b) * X);
}
template <typename T>
void zero_state_row(Tensor<T>& t, int64_t b) {
  if (t.empty()) return;
  const int64_t K = t.dim(0), B = t.dim(1), X = t.dim(2);
  for (int64_t k = 0; k < K; ++k) std::fill_n(t.ptr() + (k * B + b) * X, X, T(0));
}

template <typename T>
void fed_rnn_forward(const Forward<T>& f, const LayerSpec& l, const LayerParams<T>& p, LayerCache<T>& c) {
  const size_t ai = size_t(f.spec.layer_index(l.feed));
  const LayerSpec& al = f.spec.layers[ai];
  LayerCache<T>& ac = f.cache.layers[ai];
  const AttentionWeights<T> w = attention_weights(f.params.layers[ai]);
  // (Named pointers, not a structured binding: clang before 16 cannot capture one in a lambda.)
  const auto xin_value = f.vals.get(l.inputs[0]);
  const Tensor<T>* x = xin_value.first;                    // [T, B, I0]
  const std::vector<int64_t>* lens = xin_value.second;     // [B] or empty
  const auto [mem, mlens] = f.vals.get(al.inputs[1]);  // [Ts, B, M]
  if (x->rank() != 3) throw ShapeError("model layer " + quote_name(l.name) + ": expected a sequence [T, B, I]");
  const int64_t T_ = x->dim(0), B = x->dim(1), I0 = x->dim(2), A = al.size, I = I0 + A, R = l.rnn.state_size();
  const int64_t Ts = mem->rank() == 3 ? mem->dim(0) : 0;
  auto active = [&](int64_t t, int64_t b) { return lens->empty() || t < (*lens)[size_t(b)]; };
  rnn_initial_state(f, l, c);
  attention_keys(al.score, w, *mem, ac.attn.keys);
  c.step_in.resize(size_t(T_));
  c.step_out.resize(size_t(T_));
  c.step_rnn.resize(size_t(T_));
  ac.step_attn.resize(size_t(T_));
  ac.step_out.resize(size_t(T_));
  c.out.data.resize({T_, B, R});
  ac.out.data.resize({T_, B, A});
  ac.attn.weights.resize({T_, B, Ts});
  RnnState<T> state = c.state0.h.empty() ? rnn_zero_state<T>(l.rnn, B) : c.state0, next;
  const ForwardOptions ro{.training = f.opts.training, .rng = f.opts.rng, .backend = RnnBackend::reference};
  for (int64_t t = 0; t < T_; ++t) {
    Tensor<T>& xin = c.step_in[size_t(t)];  // [1, B, I] = [x_t; y_{t-1}]
    xin.resize({1, B, I});
    for (int64_t b = 0; b < B; ++b) {
      std::copy_n(x->ptr() + (t * B + b) * I0, I0, xin.ptr() + b * I);
      if (t == 0) std::fill_n(xin.ptr() + b * I + I0, A, T(0));
      else std::copy_n(ac.step_out[size_t(t - 1)].ptr() + b * A, A, xin.ptr() + b * I + I0);
    }
    Tensor<T>& h = c.step_out[size_t(t)];  // [1, B, R]
    rnn_forward(l.rnn, p.rnn, xin, {}, state, ro, h, next, c.step_rnn[size_t(t)]);
    // A sequence that has ended keeps its state and outputs zeros past its length, as
    // rnn_forward does; the attention reads those zeros as the plain graph's does.
    for (int64_t b = 0; b < B; ++b)
      if (!active(t, b)) {
        copy_state_row(state.h, next.h, b);
        copy_state_row(state.c, next.c, b);
        std::fill_n(h.ptr() + b * R, R, T(0));
      }
    Tensor<T>& y = ac.step_out[size_t(t)];  // [1, B, A]
    attention_attend(al.score, w, h, *mem, ac.attn.keys, std::span<const int64_t>(*mlens), ac.step_attn[size_t(t)], y);
    for (int64_t b = 0; b < B; ++b) {
      std::copy_n(h.ptr() + b * R, R, c.out.data.ptr() + (t * B + b) * R);
      std::copy_n(y.ptr() + b * A, A, ac.out.data.ptr() + (t * B + b) * A);
      std::copy_n(ac.step_attn[size_t(t)].weights.ptr() + b * Ts, Ts, ac.attn.weights.ptr() + (t * B + b) * Ts);
    }
    std::swap(state, next);
  }
  c.state_n = std::move(state);
  c.out.lengths = *lens;
  rnn_final(l, B, c);
  ac.out.lengths = *lens;
  ac.done = true;
}

// Back through time over both: at step t the attention's gradient dy_t (from its consumers, plus
// what step t + 1 sent back through its input) gives dh_t, the rnn step gives d[x_t; y_{t-1}].
template <typename T>
void fed_rnn_backward(Backward<T>& b, const LayerSpec& l, size_t i) {
  LayerCache<T>& c = b.cache.layers[i];
  const size_t ai = size_t(b.spec.layer_index(l.feed));
  const LayerSpec& al = b.spec.layers[ai];
  LayerCache<T>& ac = b.cache.layers[ai];
  const AttentionWeights<T> w = attention_weights(b.params.layers[ai]);
  LayerGrads<T>& ag = b.grads.layers[ai];
  const Tensor<T>& x = *b.vals.get(l.inputs[0]).first;
  const auto [mem, mlens] = b.vals.get(al.inputs[1]);
  const int64_t T_ = x.dim(0), B = x.dim(1), I0 = x.dim(2), A = al.size, I = I0 + A, R = l.rnn.state_size();
  const std::vector<int64_t>& lens = c.out.lengths;
  auto active = [&](int64_t t, int64_t bb) { return lens.empty() || t < lens[size_t(bb)]; };
  rnn_final_backward(l, B, c);
  RnnState<T> ds = c.grad_state_n, dsn, gs0;  // dL/d(state after step t)
  if (ds.h.empty()) ds.h = Tensor<T>({l.rnn.num_layers, B, R});
  if (l.rnn.has_cell_state() && ds.c.empty()) ds.c = Tensor<T>({l.rnn.num_layers, B, l.rnn.hidden_size});
  Tensor<T> dkeys, dmem(mem->shape), dy({1, B, A}), dfeed({1, B, A}), dq, dxin;
  if (al.score != AttentionScore::dot) dkeys = Tensor<T>(ac.attn.keys.shape);
  const bool need_dx = b.wants_grad(l.inputs[0]), need_m = b.wants_grad(al.inputs[1]);
  if (need_dx) {
    b.dx.resize(x.shape);
    b.dx.zero();
  }
  for (int64_t t = T_; t-- > 0;) {
    for (int64_t k = 0; k < B * A; ++k)
      dy.data[size_t(k)] = dfeed.data[size_t(k)] + (ac.grad_out.empty() ? T(0) : ac.grad_out.data[size_t(t * B * A + k)]);
    attention_attend_backward(al.score, w, c.step_out[size_t(t)], *mem, ac.attn.keys, std::span<const int64_t>(*mlens),
                              ac.step_attn[size_t(t)], ac.step_out[size_t(t)], dy, ag.weight, std::span<Tensor<T>>(ag.score),
                              dq, dkeys, dmem);
    if (!c.grad_out.empty())
      for (int64_t k = 0; k < B * R; ++k) dq.data[size_t(k)] += c.grad_out.data[size_t(t * B * R + k)];
    // An ended sequence's state passed the step by: its gradient does too, and the step's
    // output past the length is not an output.
    dsn = ds;
    for (int64_t bb = 0; bb < B; ++bb)
      if (!active(t, bb)) {
        zero_state_row(dsn.h, bb);
        zero_state_row(dsn.c, bb);
        std::fill_n(dq.ptr() + bb * R, R, T(0));
      }
    rnn_backward(l.rnn, b.params.layers[i].rnn, c.step_in[size_t(t)], c.step_rnn[size_t(t)], dq, dsn,
                 b.grads.layers[i].rnn, &dxin, &gs0);
    for (int64_t bb = 0; bb < B; ++bb) {
      if (!active(t, bb)) {
        copy_state_row(ds.h, gs0.h, bb);
        copy_state_row(ds.c, gs0.c, bb);
      }
      const T* g = dxin.ptr() + bb * I;
      if (need_dx) std::copy_n(g, I0, b.dx.ptr() + (t * B + bb) * I0);
      std::copy_n(g + I0, A, dfeed.ptr() + bb * A);
    }
    std::swap(ds, gs0);
  }
  attention_keys_backward(al.score, w, *mem, dkeys, std::span<Tensor<T>>(ag.score), need_m ? &dmem : nullptr);
  if (need_dx) b.route(l.inputs[0], b.dx);
  if (need_m) b.route(al.inputs[1], dmem);
  if (rnn_init_linked(b, l)) rnn_init_backward(b, l, B, ds);
}

}  // namespace

template <typename T>
void model_forward(const ModelSpec& spec, const ModelParams<T>& params, const ModelInputs<T>& inputs,
                   const ModelForwardOptions& opts, ModelCache<T>& cache, const StateOverrides<T>& overrides) {
  const size_t n = spec.layers.size();
  if (params.layers.size() != n) throw ShapeError("model_forward: parameters do not match the spec's layers");
  cache.layers.resize(n);
  cache.precision = opts.precision;
  // Which layers to compute: all, or what the wanted ones depend on.
  std::vector<bool> need(n, opts.wanted.empty());
  for (const auto& w : opts.wanted) {
    const Ref r = resolve(spec, w);
    if (r.layer < 0) throw Error("model_forward: wanted " + quote_name(w) + " is not a layer");
    need[size_t(r.layer)] = true;
  }
  for (size_t i = n; i-- > 0;) {
    if (!need[i]) continue;
    const LayerSpec& l = spec.layers[i];
    for (const auto& in : l.inputs) {
      const Ref r = resolve(spec, in);
      if (r.layer >= 0) need[size_t(r.layer)] = true;
    }
    if (l.kind == LayerKind::rnn && !l.init.empty() && !overrides.count(l.name)) need[size_t(spec.layer_index(l.init))] = true;
    if (l.kind == LayerKind::rnn && !l.feed.empty()) {  // computed together with its attention, over its memory
      const LayerSpec& a = spec.layers[size_t(spec.layer_index(l.feed))];
      need[size_t(spec.layer_index(l.feed))] = true;
      const Ref m = resolve(spec, a.inputs[1]);
      if (m.layer >= 0) need[size_t(m.layer)] = true;
    }
    if (!l.tie.empty()) need[size_t(spec.layer_index(l.tie))] = true;
  }
  Values<T> vals{spec, inputs, cache};
  const Forward<T> f{spec, params, cache, vals, opts, overrides};
  for (auto& c : cache.layers) c.done = false;
  for (size_t i = 0; i < n; ++i) {
    LayerCache<T>& c = cache.layers[i];
    if (!need[i] || c.done) continue;  // done: an attention its rnn computed (input feeding)
    const LayerSpec& l = spec.layers[i];
    const LayerParams<T>& p = params.layers[i];
    switch (l.kind) {
      case LayerKind::embedding: embedding_layer_forward(f, l, p, c); break;
      case LayerKind::onehot: onehot_layer_forward(f, l, c); break;
      case LayerKind::rnn:
        if (l.feed.empty()) rnn_layer_forward(f, l, p, c);
        else fed_rnn_forward(f, l, p, c);
        break;
      case LayerKind::linear: linear_layer_forward(f, l, i, c); break;
      case LayerKind::dropout: dropout_layer_forward(f, l, c); break;
      case LayerKind::crf: crf_layer_forward(f, l, c); break;
      case LayerKind::bridge: bridge_layer_forward(f, l, p, c); break;
      case LayerKind::concat: concat_layer_forward(f, l, c); break;
      case LayerKind::attention: attention_layer_forward(f, l, p, c); break;
      case LayerKind::pool: pool_layer_forward(f, l, c); break;
    }
    c.done = true;
  }
}

template <typename T>
const Tensor<T>& model_output(const ModelSpec& spec, const ModelCache<T>& cache, std::string_view ref) {
  const Ref r = resolve_value(spec, cache, ref);
  if (r.layer < 0 || size_t(r.layer) >= cache.layers.size() || !cache.layers[size_t(r.layer)].done)
    throw Error("model: " + quote_name(ref) + " was not computed by the last forward");
  const LayerCache<T>& c = cache.layers[size_t(r.layer)];
  return r.final ? c.final : c.out.data;
}

template <typename T>
const RnnState<T>& model_rnn_state0(const ModelSpec& spec, const ModelCache<T>& cache, std::string_view layer) {
  const int64_t i = spec.layer_index(layer);
  if (i < 0 || spec.layers[size_t(i)].kind != LayerKind::rnn || !cache.layers.at(size_t(i)).done)
    throw Error("model: " + quote_name(layer) + " is not a computed rnn layer");
  return cache.layers[size_t(i)].state0;
}

template <typename T>
const RnnState<T>& model_rnn_state_n(const ModelSpec& spec, const ModelCache<T>& cache, std::string_view layer) {
  (void)model_rnn_state0(spec, cache, layer);
  return cache.layers[size_t(spec.layer_index(layer))].state_n;
}

template <typename T>
Tensor<T>& model_grad_slot(const ModelSpec& spec, ModelCache<T>& cache, std::string_view ref) {
  const Ref r = resolve_value(spec, cache, ref);
  if (r.layer < 0 || size_t(r.layer) >= cache.layers.size() || !cache.layers[size_t(r.layer)].done)
    throw Error("model: " + quote_name(ref) + " was not computed by the last forward");
  LayerCache<T>& c = cache.layers[size_t(r.layer)];
  return r.final ? c.grad_final : c.grad_out;
}

template <typename T>
void model_backward(const ModelSpec& spec, const ModelParams<T>& params, const ModelInputs<T>& inputs,
                    ModelCache<T>& cache, const std::map<std::string, const Tensor<T>*>& grad_outputs,
                    ModelGrads<T>& grads, const LayerDoneFn& layer_done) {
  const size_t n = spec.layers.size();
  if (cache.layers.size() != n || grads.layers.size() != n)
    throw ShapeError("model_backward: cache or gradients do not match the spec (make them with model_zero_grads)");
  // Gradients the caller wrote into a layer's own slot (model_grad_slot) stay where they are.
  std::vector<const Tensor<T>*> in_place;
  for (const auto& [ref, g] : grad_outputs) {
    const Ref r = resolve_value(spec, cache, ref);
    if (r.layer < 0 || size_t(r.layer) >= n) throw Error("model_backward: " + quote_name(ref) + " is not a layer");
    const LayerCache<T>& c = cache.layers[size_t(r.layer)];
    if (g == &(r.final ? c.grad_final : c.grad_out)) in_place.push_back(g);
  }
  const auto keep = [&](const Tensor<T>& t) { return std::find(in_place.begin(), in_place.end(), &t) != in_place.end(); };
  for (auto& c : cache.layers) {
    if (!keep(c.grad_out)) clear(c.grad_out);
    if (!keep(c.grad_final)) clear(c.grad_final);
    clear(c.grad_state_n.h);
    clear(c.grad_state_n.c);
    c.has_grad = false;
  }
  Values<T> vals{spec, inputs, cache};
  Backward<T> b{spec, params, cache, grads, vals, std::vector<bool>(n, false), cache.scratch_dx, cache.scratch_zeros};
  for (size_t i = 0; i < n; ++i) {
    const LayerSpec& l = spec.layers[i];
    switch (l.kind) {
      case LayerKind::embedding: b.wants[i] = !l.frozen; break;
      case LayerKind::onehot: break;
      case LayerKind::rnn:
      case LayerKind::linear:
      case LayerKind::bridge:
      case LayerKind::attention: b.wants[i] = true; break;
      case LayerKind::dropout:
      case LayerKind::crf:
      case LayerKind::concat:
      case LayerKind::pool:
        for (const auto& in : l.inputs) b.wants[i] = b.wants[i] || b.wants_grad(in);
        break;
    }
  }
  for (const auto& [ref, g] : grad_outputs) {
    const Tensor<T>& v = model_output(spec, cache, ref);
    check_shape("model_backward gradient of " + ref, g->shape, v.shape);
    if (keep(*g)) {
      cache.layers[size_t(resolve_value(spec, cache, ref).layer)].has_grad = true;
    } else {
      b.route(ref, *g);
    }
  }
  // Input feeding: an attention's gradients are final once its rnn has run, below it.
  int64_t hold_from = -1;  // layer_done is not called for the layers from here down to the feeding rnn
  for (size_t i = n; i-- > 0;) {
    const LayerCache<T>& c = cache.layers[i];
    const LayerSpec& l = spec.layers[i];
    const int64_t feeder = l.kind == LayerKind::attention ? feeding_rnn(spec, l) : -1;
    if (feeder >= 0 && c.done) {
      // its rnn runs both backwards (fed_rnn_backward), with whatever gradient reached it
      cache.layers[size_t(feeder)].has_grad = cache.layers[size_t(feeder)].has_grad || c.has_grad;
      if (hold_from < 0) hold_from = int64_t(i);
    } else if (c.done && c.has_grad) {
      switch (l.kind) {
        case LayerKind::embedding: embedding_layer_backward(b, l, i); break;
        case LayerKind::onehot: break;
        case LayerKind::rnn:
          if (l.feed.empty()) rnn_layer_backward(b, l, i);
          else fed_rnn_backward(b, l, i);
          break;
        case LayerKind::linear: linear_layer_backward(b, l, i); break;
        case LayerKind::dropout: dropout_layer_backward(b, l, i); break;
        case LayerKind::crf: break;  // an identity: route passed its gradient to the input
        case LayerKind::bridge: bridge_layer_backward(b, l, i); break;
        case LayerKind::concat: concat_layer_backward(b, l, i); break;
        case LayerKind::attention: attention_layer_backward(b, l, i); break;
        case LayerKind::pool: pool_layer_backward(b, l, i); break;
      }
    }
    if (l.kind == LayerKind::rnn && !l.feed.empty()) hold_from = -1;
    if (layer_done && hold_from < 0) layer_done(i);
  }
}

#define RECUR_INSTANTIATE(T)                                                                                        \
  template struct ModelGrads<T>;                                                                                    \
  template ModelParams<T> model_init_params<T>(const ModelSpec&, Rng&, const ModelInitOptions&);                    \
  template ModelParams<T> model_zero_params<T>(const ModelSpec&);                                                   \
  template void model_grow_tokens<T>(ModelSpec&, ModelParams<T>&, const std::string&, int64_t, Rng&);               \
  template void model_grow_head<T>(ModelSpec&, ModelParams<T>&, const std::string&, int64_t, Rng&);                 \
  template ModelGrads<T> model_zero_grads<T>(const ModelSpec&);                                                     \
  template void model_check_params<T>(const ModelSpec&, const ModelParams<T>&);                                     \
  template std::vector<ParamRef<T>> model_param_refs<T>(const ModelSpec&, ModelParams<T>&, ModelGrads<T>&);         \
  template std::vector<ParamRef<T>> model_param_refs_sparse<T>(const ModelSpec&, ModelParams<T>&, ModelGrads<T>&);  \
  template void model_zero_touched<T>(const ModelSpec&, ModelGrads<T>&);                                            \
  template void model_forward<T>(const ModelSpec&, const ModelParams<T>&, const ModelInputs<T>&,                    \
                                 const ModelForwardOptions&, ModelCache<T>&, const StateOverrides<T>&);             \
  template const Tensor<T>& model_output<T>(const ModelSpec&, const ModelCache<T>&, std::string_view);              \
  template const RnnState<T>& model_rnn_state0<T>(const ModelSpec&, const ModelCache<T>&, std::string_view);        \
  template const RnnState<T>& model_rnn_state_n<T>(const ModelSpec&, const ModelCache<T>&, std::string_view);       \
  template Tensor<T>& model_grad_slot<T>(const ModelSpec&, ModelCache<T>&, std::string_view);                    \
  template void model_backward<T>(const ModelSpec&, const ModelParams<T>&, const ModelInputs<T>&, ModelCache<T>&,   \
                                  const std::map<std::string, const Tensor<T>*>&, ModelGrads<T>&,         \
                                  const LayerDoneFn&);
RECUR_INSTANTIATE(float)
RECUR_INSTANTIATE(double)
#undef RECUR_INSTANTIATE

}  // namespace recur
