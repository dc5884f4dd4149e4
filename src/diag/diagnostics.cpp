// Training diagnostics: state-gradient profiles, gate statistics, the gradient experiment.
// See diagnostics.h for what is measured; the core (rnn.cpp) is used as it is.
#include "recur/diag/diagnostics.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>

#include "recur/core/error.h"
#include "recur/core/optim.h"

namespace recur {

namespace {

enum class GateKind { sigmoid, tanh, relu };

const char* kind_name(GateKind k) {
  switch (k) {
    case GateKind::sigmoid: return "sigmoid";
    case GateKind::tanh: return "tanh";
    case GateKind::relu: return "relu";
  }
  return "?";
}

std::vector<GateKind> gate_kinds(CellType cell) {
  switch (cell) {
    case CellType::lstm: return {GateKind::sigmoid, GateKind::sigmoid, GateKind::tanh, GateKind::sigmoid};
    case CellType::gru: return {GateKind::sigmoid, GateKind::sigmoid, GateKind::tanh};
    case CellType::rnn_tanh: return {GateKind::tanh};
    case CellType::rnn_relu: return {GateKind::relu};
  }
  return {};
}

// Index of the gate that decides how much of the state is kept, or -1.
int keep_gate(CellType cell) {
  if (cell == CellType::lstm) return 1;  // f
  if (cell == CellType::gru) return 1;   // z
  return -1;
}

std::vector<int64_t> full_lengths(const std::vector<int64_t>& lengths, int64_t B, int64_t Tn) {
  return lengths.empty() ? std::vector<int64_t>(size_t(B), Tn) : lengths;
}

// Copies row block `src_row` of a [N, B, F] tensor into row block `dst_row` of another.
template <typename T>
void copy_block(const Tensor<T>& src, int64_t src_row, Tensor<T>& dst, int64_t dst_row, int64_t block) {
  std::memcpy(dst.ptr() + dst_row * block, src.ptr() + src_row * block, size_t(block) * sizeof(T));
}

}  // namespace

std::vector<std::string> gate_names(CellType cell) {
  switch (cell) {
    case CellType::lstm: return {"i", "f", "g", "o"};
    case CellType::gru: return {"r", "z", "n"};
    case CellType::rnn_tanh:
    case CellType::rnn_relu: return {"h"};
  }
  return {};
}

template <typename T>
GateStats gate_stats(const RnnConfig& cfg, const Tensor<T>& gates, const std::vector<int64_t>& lengths,
                     const SaturationOptions& opts) {
  const int64_t G = cfg.gates(), H = cfg.hidden_size;
  if (gates.rank() != 3 || gates.dim(2) != G * H)
    throw ShapeError("gate_stats gates: expected shape [T, B, " + std::to_string(G * H) + "], got " +
                     shape_str(gates.shape));
  const int64_t Tn = gates.dim(0), B = gates.dim(1);
  if (!lengths.empty() && int64_t(lengths.size()) != B)
    throw ShapeError("gate_stats lengths: expected " + std::to_string(B) + " entries, got " +
                     std::to_string(lengths.size()));
  const std::vector<int64_t> len = full_lengths(lengths, B, Tn);
  const std::vector<std::string> names = gate_names(cfg.cell);
  const std::vector<GateKind> kinds = gate_kinds(cfg.cell);
  GateStats out;
  std::vector<double> sums(size_t(G), 0.0);
  std::vector<int64_t> sat(size_t(G), 0), count(size_t(G), 0);
  for (int64_t t = 0; t < Tn; ++t)
    for (int64_t b = 0; b < B; ++b) {
      if (t >= len[size_t(b)]) continue;
      const T* row = gates.ptr() + (t * B + b) * G * H;
      for (int64_t g = 0; g < G; ++g) {
        const GateKind k = kinds[size_t(g)];
        int64_t s = 0;
        double sum = 0;
        for (int64_t j = 0; j < H; ++j) {
          const double v = double(row[g * H + j]);
          sum += v;
          if (k == GateKind::sigmoid) s += v < opts.sigmoid_low || v > opts.sigmoid_high;
          else if (k == GateKind::tanh) s += std::abs(v) > opts.tanh_abs;
          else s += v <= 0.0;
        }
        sums[size_t(g)] += sum;
        sat[size_t(g)] += s;
        count[size_t(g)] += H;
      }
    }
  int64_t sat_all = 0, count_all = 0;
  for (int64_t g = 0; g < G; ++g) {
    const size_t i = size_t(g);
    const double n = double(std::max<int64_t>(count[i], 1));
    out.gates.push_back({names[i], kind_name(kinds[i]), double(sat[i]) / n, sums[i] / n, count[i]});
    sat_all += sat[i];
    count_all += count[i];
  }
  out.saturated = count_all > 0 ? double(sat_all) / double(count_all) : 0.0;
  const int kg = keep_gate(cfg.cell);
  if (kg >= 0) out.keep_mean = out.gates[size_t(kg)].mean;
  return out;
}

namespace {

// rnn_state_grads with the per-step record of the forward given (rnn_step_record).
template <typename T>
StateGrads<T> state_grads(const RnnConfig& cfg, const RnnParams<T>& params, const Tensor<T>& input,
                          const RnnCache<T>& cache, const std::vector<DirectionCache<T>>& record,
                          const Tensor<T>& grad_output, const StateGradOptions& opts,
                          const RnnState<T>* grad_state_n = nullptr) {
  const int64_t Tn = cache.steps, B = cache.batch, D = cfg.directions(), R = cfg.state_size(), H = cfg.hidden_size;
  const int64_t L = cfg.num_layers, DR = D * R, GH = cfg.gates() * H;
  const bool lstm = cfg.has_cell_state();
  if (int64_t(cache.dirs.size()) != L * D || Tn == 0)
    throw Error("rnn_state_grads: the cache does not hold a forward pass of this configuration");
  check_shape("rnn_state_grads input", input.shape, {Tn, B, cfg.input_size});
  check_shape("rnn_state_grads grad_output", grad_output.shape, {Tn, B, DR});
  if (opts.last_step_only && D != 1)
    throw Error("rnn_state_grads: last_step_only is defined for unidirectional networks only");
  const std::vector<int64_t>& len = cache.lengths;
  auto active = [&](int64_t t, int64_t b) { return t < len[size_t(b)]; };

  Tensor<T> dy = grad_output;  // upstream gradient of the current layer's output
  if (opts.last_step_only)
    for (int64_t t = 0; t < Tn; ++t)
      for (int64_t b = 0; b < B; ++b)
        if (t != len[size_t(b)] - 1) std::fill_n(dy.ptr() + (t * B + b) * DR, DR, T(0));

  StateGrads<T> out;
  out.h.resize(size_t(L * D));
  if (lstm) out.c.resize(size_t(L * D));

  // A one-layer, one-direction, one-step network: a reverse step is the same computation as a
  // forward one, only its state slots differ, so every step of either direction runs here.
  RnnConfig c1 = cfg;
  c1.num_layers = 1;
  c1.bidirectional = false;
  c1.dropout = 0;
  Tensor<T> dx_layer;
  for (int64_t l = L - 1; l >= 0; --l) {
    const Tensor<T>& x = l == 0 ? input : cache.layer_outputs[size_t(l - 1)];
    const int64_t I = cfg.layer_input_size(l);
    c1.input_size = I;
    if (l > 0) {
      dx_layer.resize({Tn, B, I});
      dx_layer.zero();
    }
    for (int64_t d = 0; d < D; ++d) {
      const int64_t k = l * D + d;
      const bool rev = d == 1;
      const DirectionCache<T>& dc = record[size_t(k)];
      RnnParams<T> p1;
      p1.dirs = {params.dirs[size_t(k)]};
      RnnGrads<T> g1 = rnn_zero_grads<T>(c1);  // weight gradients: computed by the core, unused here
      RnnCache<T> k1;
      k1.steps = 1;
      k1.batch = B;
      k1.lengths.assign(size_t(B), 1);
      k1.dirs.resize(1);
      DirectionCache<T>& s1 = k1.dirs[0];
      s1.gates.resize({1, B, GH});
      s1.h.resize({2, B, R});
      if (lstm) s1.c.resize({2, B, H});
      if (!dc.aux.empty()) s1.aux.resize({1, B, H});
      Tensor<T> x1({1, B, I}), dy1({1, B, R}), dx1;
      RnnState<T> gsn, gs0;
      gsn.h = Tensor<T>({1, B, R});  // recurrent part of dLoss/d(state leaving the step); final state: 0
      if (lstm) gsn.c = Tensor<T>({1, B, H});
      // unless the final state itself feeds the loss (a classifier's head, an encoder's bridge)
      if (grad_state_n && !grad_state_n->h.empty())
        std::memcpy(gsn.h.ptr(), grad_state_n->h.ptr() + k * B * R, size_t(B * R) * sizeof(T));
      if (lstm && grad_state_n && !grad_state_n->c.empty())
        std::memcpy(gsn.c.ptr(), grad_state_n->c.ptr() + k * B * H, size_t(B * H) * sizeof(T));
      Tensor<T>& gh = out.h[size_t(k)];
      gh = Tensor<T>({Tn + 1, B, R});
      Tensor<T>* gc = lstm ? &out.c[size_t(k)] : nullptr;
      if (gc) *gc = Tensor<T>({Tn + 1, B, H});

      for (int64_t i = 0; i < Tn; ++i) {
        const int64_t t = rev ? i : Tn - 1 - i;
        const int64_t next = rev ? t : t + 1, prev = rev ? t + 1 : t;
        // Total gradient of the state leaving step t: later steps plus this step's output.
        for (int64_t b = 0; b < B; ++b) {
          const T* dyb = dy.ptr() + (t * B + b) * DR + d * R;
          T* gb = gh.ptr() + (next * B + b) * R;
          T* db = dy1.ptr() + b * R;
          const T* rb = gsn.h.ptr() + b * R;
          for (int64_t j = 0; j < R; ++j) {
            db[j] = active(t, b) ? dyb[j] : T(0);
            gb[j] = rb[j] + db[j];
          }
        }
        if (gc) std::memcpy(gc->ptr() + next * B * H, gsn.c.ptr(), size_t(B * H) * sizeof(T));

        copy_block(dc.gates, t, s1.gates, 0, B * GH);
        copy_block(dc.h, prev, s1.h, 0, B * R);
        copy_block(dc.h, next, s1.h, 1, B * R);
        if (lstm) {
          copy_block(dc.c, prev, s1.c, 0, B * H);
          copy_block(dc.c, next, s1.c, 1, B * H);
        }
        if (!dc.aux.empty()) copy_block(dc.aux, t, s1.aux, 0, B * H);
        copy_block(x, t, x1, 0, B * I);
        rnn_backward(c1, p1, x1, k1, dy1, gsn, g1, l > 0 ? &dx1 : nullptr, &gs0);
        // Rows past their length hold their state: the gradient passes through unchanged and
        // nothing reaches the input (the core's packed-sequence semantics).
        for (int64_t b = 0; b < B; ++b) {
          if (!active(t, b)) continue;
          std::memcpy(gsn.h.ptr() + b * R, gs0.h.ptr() + b * R, size_t(R) * sizeof(T));
          if (lstm) std::memcpy(gsn.c.ptr() + b * H, gs0.c.ptr() + b * H, size_t(H) * sizeof(T));
          if (l > 0) {
            T* dxb = dx_layer.ptr() + (t * B + b) * I;
            const T* src = dx1.ptr() + b * I;
            for (int64_t j = 0; j < I; ++j) dxb[j] += src[j];
          }
        }
      }
      const int64_t init = rev ? Tn : 0;
      std::memcpy(gh.ptr() + init * B * R, gsn.h.ptr(), size_t(B * R) * sizeof(T));
      if (gc) std::memcpy(gc->ptr() + init * B * H, gsn.c.ptr(), size_t(B * H) * sizeof(T));
    }
    if (l > 0) {
      // The layer below's output went through dropout before entering this layer.
      if (!cache.dropout_masks.empty()) {
        const Tensor<T>& mask = cache.dropout_masks[size_t(l - 1)];
        for (int64_t e = 0; e < dx_layer.numel(); ++e) dx_layer.data[size_t(e)] *= mask.data[size_t(e)];
      }
      dy = dx_layer;
    }
  }
  return out;
}

}  // namespace

template <typename T>
StateGrads<T> rnn_state_grads(const RnnConfig& cfg, const RnnParams<T>& params, const Tensor<T>& input,
                              const RnnCache<T>& cache, const Tensor<T>& grad_output, const StateGradOptions& opts) {
  // A oneDNN forward keeps no per-step record in the cache; the reference scans recompute it.
  std::vector<DirectionCache<T>> scratch;
  return state_grads(cfg, params, input, cache, rnn_step_record(cfg, params, input, cache, scratch), grad_output, opts);
}

template <typename T>
std::vector<double> slot_norms(const Tensor<T>& g) {
  if (g.rank() != 3) throw ShapeError("slot_norms: expected shape [T+1, B, R], got " + shape_str(g.shape));
  const int64_t S = g.dim(0), n = g.dim(1) * g.dim(2);
  std::vector<double> out(static_cast<size_t>(S));
  for (int64_t s = 0; s < S; ++s) {
    double sum = 0;
    for (int64_t e = 0; e < n; ++e) sum += double(g.data[size_t(s * n + e)]) * double(g.data[size_t(s * n + e)]);
    out[size_t(s)] = std::sqrt(sum);
  }
  return out;
}

template <typename T>
std::vector<double> distance_norms(const Tensor<T>& g, const std::vector<int64_t>& lengths) {
  if (g.rank() != 3 || g.dim(0) < 2) throw ShapeError("distance_norms: expected shape [T+1, B, R], got " + shape_str(g.shape));
  const int64_t Tn = g.dim(0) - 1, B = g.dim(1), R = g.dim(2);
  if (!lengths.empty() && int64_t(lengths.size()) != B)
    throw ShapeError("distance_norms lengths: expected " + std::to_string(B) + " entries, got " +
                     std::to_string(lengths.size()));
  const std::vector<int64_t> len = full_lengths(lengths, B, Tn);
  std::vector<double> out(size_t(Tn + 1), 0.0);
  for (int64_t k = 0; k <= Tn; ++k) {
    double sum = 0;
    for (int64_t b = 0; b < B; ++b) {
      const int64_t slot = len[size_t(b)] - k;
      if (slot < 0) continue;
      const T* row = g.ptr() + (slot * B + b) * R;
      for (int64_t j = 0; j < R; ++j) sum += double(row[j]) * double(row[j]);
    }
    out[size_t(k)] = std::sqrt(sum);
  }
  return out;
}

// The LM graph's recurrent layer as the diagnostics read it: its config, its input x [T, B, I],
// its cache and the gradient of its output grad_h [T, B, D*R] (after the output dropout's mask).
template <typename T>
struct LmRnnView {
  const RnnConfig& rnn;
};
template <typename T>
struct LmRnnCache {
  const Tensor<T>& x;
  const RnnCache<T>& rnn;
  const Tensor<T>& grad_h;
};

template <typename T>
std::vector<LayerDiagnostics> lm_layer_diagnostics(const ModelSpec& spec, const ModelParams<T>& model,
                                                   const ModelCache<T>& mcache) {
  lm_check_spec(spec);
  const size_t k = size_t(spec.layer_index("rnn"));
  const LmRnnView<T> cfg{spec.layers[k].rnn};
  const LayerParams<T>& params = model.layers[k];
  const LmRnnCache<T> cache{model_output(spec, mcache, spec.layers[k].inputs[0]), mcache.layers[k].rnn,
                            mcache.layers[k].grad_out};
  if (cfg.rnn.directions() != 1) throw Error("lm_layer_diagnostics: expected a unidirectional language model");
  if (cache.grad_h.empty()) throw Error("lm_layer_diagnostics: expected a cache after a backward pass");
  // Recomputed once for all three uses when the forward ran on oneDNN (rnn_step_record).
  std::vector<DirectionCache<T>> scratch;
  const std::vector<DirectionCache<T>>& record = rnn_step_record(cfg.rnn, params.rnn, cache.x, cache.rnn, scratch);
  const StateGrads<T> total = state_grads(cfg.rnn, params.rnn, cache.x, cache.rnn, record, cache.grad_h, {});
  const StateGrads<T> last =
      state_grads(cfg.rnn, params.rnn, cache.x, cache.rnn, record, cache.grad_h, {.last_step_only = true});
  std::vector<LayerDiagnostics> out;
  for (int64_t l = 0; l < cfg.rnn.num_layers; ++l) {
    LayerDiagnostics d;
    d.layer = l;
    d.grad_h = slot_norms(total.h[size_t(l)]);
    d.grad_h_last = distance_norms(last.h[size_t(l)], cache.rnn.lengths);
    d.gates = gate_stats(cfg.rnn, record[size_t(l)].gates, cache.rnn.lengths);
    out.push_back(std::move(d));
  }
  return out;
}

template <typename T>
std::vector<LayerDiagnostics> model_layer_diagnostics(const ModelSpec& spec, const ModelParams<T>& params,
                                                      const ModelInputs<T>& inputs, const ModelCache<T>& cache) {
  std::vector<LayerDiagnostics> out;
  int64_t index = 0;  // layers numbered through the model, rnn by rnn, bottom first
  for (size_t i = 0; i < spec.layers.size(); ++i) {
    const LayerSpec& ls = spec.layers[i];
    if (ls.kind != LayerKind::rnn) continue;
    const LayerCache<T>& lc = cache.layers[i];
    const RnnConfig& cfg = ls.rnn;
    if (!lc.done) {  // not computed by the last forward (a decoding-only layer)
      index += cfg.num_layers;
      continue;
    }
    const std::string& ref = ls.inputs.at(0);
    const Tensor<T>& x = spec.layer_index(ref) >= 0 ? model_output(spec, cache, ref) : inputs.at(ref).features;
    const int64_t Tn = lc.rnn.steps, B = lc.rnn.batch, DR = cfg.directions() * cfg.state_size();
    Tensor<T> dy = lc.grad_out;
    if (dy.empty()) {  // only the final state feeds the loss
      dy = Tensor<T>({Tn, B, DR});
      dy.zero();
    }
    const RnnState<T>* gsn = lc.grad_state_n.h.empty() ? nullptr : &lc.grad_state_n;
    std::vector<DirectionCache<T>> scratch;
    const std::vector<DirectionCache<T>>& record = rnn_step_record(cfg, params.layers[i].rnn, x, lc.rnn, scratch);
    const StateGrads<T> total = state_grads(cfg, params.layers[i].rnn, x, lc.rnn, record, dy, {}, gsn);
    const bool uni = cfg.directions() == 1;
    StateGrads<T> last;
    if (uni) last = state_grads(cfg, params.layers[i].rnn, x, lc.rnn, record, dy, {.last_step_only = true}, gsn);
    for (int64_t l = 0; l < cfg.num_layers; ++l, ++index) {
      // The forward direction of each layer; a bidirectional layer's reverse direction mirrors it.
      const size_t k = size_t(l * cfg.directions());
      LayerDiagnostics d;
      d.layer = index;
      d.name = ls.name + (cfg.num_layers > 1 ? "." + std::to_string(l) : "");
      d.grad_h = slot_norms(total.h[k]);
      if (uni) d.grad_h_last = distance_norms(last.h[k], lc.rnn.lengths);
      d.gates = gate_stats(cfg, record[k].gates, lc.rnn.lengths);
      out.push_back(std::move(d));
    }
  }
  return out;
}

std::string diagnostics_json(const StepDiagnostics& d) {
  using json = nlohmann::ordered_json;
  // NaN has no JSON spelling: null, as metrics.jsonl writes values that do not apply.
  auto num = [](double x) { return std::isfinite(x) ? json(x) : json(nullptr); };
  auto arr = [&](const std::vector<double>& v) {
    json a = json::array();
    for (double x : v) a.push_back(num(x));
    return a;
  };
  json layers = json::array();
  for (const LayerDiagnostics& l : d.layers) {
    json gates = json::object();
    for (const GateStat& g : l.gates.gates) gates[g.name] = {{"saturated", num(g.saturated)}, {"mean", num(g.mean)}};
    json entry = {{"layer", l.layer}};
    if (!l.name.empty()) entry["name"] = l.name;
    layers.push_back(entry);
    layers.back().update(json{{"grad_h", arr(l.grad_h)},
                      {"grad_h_last", arr(l.grad_h_last)},
                      {"saturated", num(l.gates.saturated)},
                      {"keep_mean", num(l.gates.keep_mean)},
                      {"gates", gates}});
  }
  json j = {{"type", "diag"},
            {"step", d.step},
            {"epoch", num(d.epoch)},
            {"grad_norm", num(d.grad_norm)},
            {"grad_norm_clipped", num(d.grad_norm_clipped)},
            {"clipped", d.clipped},
            {"clip_rate", num(d.clip_rate)},
            {"layers", layers}};
  return j.dump();
}

// ---- the gradient experiment --------------------------------------------------------------------

std::vector<GradientProfile> gradient_experiment(const GradientExperimentOptions& o) {
  auto bad = [](const char* what, double v, const char* expected) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%g", v);
    throw Error(std::string(what) + ": got " + buf + ", expected " + expected);
  };
  if (o.gap < 1) bad("--gap", double(o.gap), "an integer >= 1");
  if (o.hidden < 1) bad("--hidden", double(o.hidden), "an integer >= 1");
  if (o.batch < 1) bad("--batch", double(o.batch), "an integer >= 1");
  if (o.classes < 2) bad("classes", double(o.classes), "an integer >= 2");
  if (o.noise < 1) bad("noise", double(o.noise), "an integer >= 1");
  if (!(o.large_scale > 0) || !std::isfinite(o.large_scale)) bad("--large-scale", o.large_scale, "a factor > 0");
  if (!(o.clip_norm > 0) || !std::isfinite(o.clip_norm)) bad("--clip-norm", o.clip_norm, "a norm > 0");
  if (!(o.threshold > 0 && o.threshold < 1)) bad("--threshold", o.threshold, "a ratio in (0, 1)");

  if (!std::isfinite(o.keep_bias)) bad("--keep-bias", o.keep_bias, "a finite bias");
  if (o.train_steps < 0) bad("--train-steps", double(o.train_steps), "an integer >= 0");
  if (!(o.train_lr > 0) || !std::isfinite(o.train_lr)) bad("--train-lr", o.train_lr, "a learning rate > 0");
  const int64_t Tn = o.gap + 1, B = o.batch, V = o.classes + o.noise;
  // One batch of the task: [T, B] ids, the signal first, the answer the only target.
  auto make_batch = [&](Rng& rng, std::vector<int32_t>& input, std::vector<int32_t>& target) {
    input.assign(size_t(Tn * B), 0);
    target.assign(size_t(Tn * B), -1);
    for (int64_t b = 0; b < B; ++b) {
      const auto signal = int32_t(rng.below(uint64_t(o.classes)));
      input[size_t(b)] = signal;
      for (int64_t t = 1; t < Tn; ++t) input[size_t(t * B + b)] = int32_t(o.classes + int64_t(rng.below(uint64_t(o.noise))));
      target[size_t((Tn - 1) * B + b)] = signal;
    }
  };
  // The measured batch: the same for every cell and variant, from its own generator so that
  // --hidden or --train-steps never change it.
  std::vector<int32_t> input, target;
  Rng data_rng(o.seed ^ 0x67617073ULL);  // "gaps"
  make_batch(data_rng, input, target);
  LmBatch batch{.input = input, .target = target, .mask = {}, .lengths = {}, .steps = Tn, .batch = B};

  std::vector<GradientProfile> out;
  for (const char* variant : {"default", "trained", "large", "clipped"}) {
    if (std::string_view(variant) == "trained" && o.train_steps == 0) continue;
    for (CellType cell : {CellType::rnn_tanh, CellType::gru, CellType::lstm}) {
      LmConfig cfg;
      cfg.vocab_size = V;
      cfg.embed_size = 0;  // one-hot: no embedding to learn or to hide the signal in
      cfg.rnn.cell = cell;
      cfg.rnn.input_size = V;
      cfg.rnn.hidden_size = o.hidden;
      cfg.rnn.num_layers = 1;
      Rng init_rng(o.seed);
      const ModelSpec spec = lm_model_spec(cfg);
      const size_t rnn_at = size_t(spec.layer_index("rnn"));
      ModelParams<double> model = lm_init_params<double>(cfg, init_rng);
      LayerParams<double>& params = model.layers[rnn_at];
      // The memory-friendly init of gated cells: the bias of the gate that keeps the state (LSTM
      // f, Jozefowicz et al. 2015; GRU z likewise) at keep_bias, so it starts near
      // sigmoid(1) = 0.73 instead of 0.5. With 0, a GRU at init decays like the basic RNN.
      rnn_set_forget_bias(cfg.rnn, params.rnn, o.keep_bias);
      if (cell == CellType::gru) {
        DirectionParams<double>& d = params.rnn.dirs[0];
        for (int64_t j = o.hidden; j < 2 * o.hidden; ++j) {  // z block: rows H..2H (gate order r, z, n)
          d.b_ih.data[size_t(j)] = o.keep_bias;
          d.b_hh.data[size_t(j)] = 0.0;
        }
      }
      const bool large = std::string_view(variant) == "large" || std::string_view(variant) == "clipped";
      if (large)
        for (auto& v : params.rnn.dirs[0].w_hh.data) v *= o.large_scale;
      double train_loss = std::numeric_limits<double>::quiet_NaN();
      if (std::string_view(variant) == "trained") {
        // Adam with clipping on fresh batches: what the cell learns to do with its memory.
        ModelGrads<double> g = model_zero_grads<double>(spec);
        std::vector<ParamRef<double>> refs = model_param_refs(spec, model, g);
        OptimizerConfig oc;
        oc.type = OptimizerType::adam;
        oc.lr = o.train_lr;
        Optimizer<double> opt(oc, refs);
        Rng train_rng(o.seed ^ 0x747261696eULL);  // "train": the same batches for every cell
        std::vector<int32_t> ti, tt;
        ModelCache<double> tc;
        double tail = 0;
        int64_t tail_n = 0;
        for (int64_t step = 0; step < o.train_steps; ++step) {
          make_batch(train_rng, ti, tt);
          LmBatch tb{.input = ti, .target = tt, .mask = {}, .lengths = {}, .steps = Tn, .batch = B};
          g.zero();
          RnnState<double> st;
          const LossSum ls = lm_forward_backward<double>(spec, model, tb, st, {}, tc, &g, 1.0 / double(B));
          if (step >= o.train_steps - 20) tail += ls.mean(), ++tail_n;
          clip_grad_norm(refs, 1.0);
          opt.step();
        }
        train_loss = tail / double(std::max<int64_t>(tail_n, 1));
      }

      ModelCache<double> mcache;
      ModelGrads<double> grads = model_zero_grads<double>(spec);
      RnnState<double> state;
      lm_forward_backward<double>(spec, model, batch, state, {}, mcache, &grads, 1.0 / double(B));
      const LmRnnCache<double> cache{model_output(spec, mcache, spec.layers[rnn_at].inputs[0]), mcache.layers[rnn_at].rnn,
                                     mcache.layers[rnn_at].grad_out};
      double sq = 0;
      model_for_each_param(spec, grads, [&](const std::string&, const Tensor<double>& g, bool) {
        for (double v : g.data) sq += v * v;
      });
      GradientProfile p;
      p.cell = std::string(cell_name(cell));
      p.variant = variant;
      p.param_grad_norm = std::sqrt(sq);
      p.train_loss = train_loss;
      // torch.nn.utils.clip_grad_norm_'s factor; it multiplies every gradient of the step.
      if (std::string_view(variant) == "clipped" && p.param_grad_norm > o.clip_norm)
        p.clip_factor = o.clip_norm / (p.param_grad_norm + 1e-6);
      const StateGrads<double> sg = rnn_state_grads(cfg.rnn, params.rnn, cache.x, cache.rnn, cache.grad_h);
      const std::vector<double> by_dist = distance_norms(sg.h[0], {});
      p.norm.assign(by_dist.begin(), by_dist.begin() + Tn);  // k = 0..gap (the initial state is left out)
      for (double& v : p.norm) v *= p.clip_factor;
      const double n0 = p.norm[0];
      for (int64_t k = 0; k < Tn; ++k) {
        const double ratio = n0 > 0 ? p.norm[size_t(k)] / n0 : 0.0;
        p.max_ratio = std::max(p.max_ratio, ratio);
        if (p.vanish_distance < 0 && ratio < o.threshold) p.vanish_distance = k;
      }
      out.push_back(std::move(p));
    }
  }
  return out;
}

#define RECUR_INSTANTIATE(T)                                                                                     \
  template GateStats gate_stats<T>(const RnnConfig&, const Tensor<T>&, const std::vector<int64_t>&,              \
                                   const SaturationOptions&);                                                    \
  template StateGrads<T> rnn_state_grads<T>(const RnnConfig&, const RnnParams<T>&, const Tensor<T>&,             \
                                            const RnnCache<T>&, const Tensor<T>&, const StateGradOptions&);      \
  template std::vector<double> slot_norms<T>(const Tensor<T>&);                                                  \
  template std::vector<double> distance_norms<T>(const Tensor<T>&, const std::vector<int64_t>&);                 \
  template std::vector<LayerDiagnostics> lm_layer_diagnostics<T>(const ModelSpec&, const ModelParams<T>&,        \
                                                                 const ModelCache<T>&);                          \
  template std::vector<LayerDiagnostics> model_layer_diagnostics<T>(const ModelSpec&, const ModelParams<T>&,     \
                                                                    const ModelInputs<T>&, const ModelCache<T>&);
RECUR_INSTANTIATE(float)
RECUR_INSTANTIATE(double)
#undef RECUR_INSTANTIATE

namespace {

std::string variant_label(const std::string& v) {
  if (v == "default") return "init";
  if (v == "trained") return "trained";
  if (v == "large") return "large init";
  return "large+clip";
}

}  // namespace

std::string gradient_experiment_summary(const std::vector<GradientProfile>& profiles,
                                        const GradientExperimentOptions& opts) {
  std::string out;
  char line[256];
  std::snprintf(line, sizeof line,
                "gradient of the loss at step %lld w.r.t. the hidden state k steps earlier; hidden %lld, batch %lld, "
                "seed %llu\n",
                (long long)opts.gap, (long long)opts.hidden, (long long)opts.batch, (unsigned long long)opts.seed);
  out += line;
  std::snprintf(line, sizeof line,
                "vanish = first k where the norm < %g x its value at k = 0; growth = max over k of that ratio\n\n",
                opts.threshold);
  out += line;
  std::snprintf(line, sizeof line, "%-10s %-12s %14s %10s %12s %12s %12s\n", "cell", "weights", "vanish (steps)",
                "growth", "param grad", "clip factor", "train loss");
  out += line;
  for (const GradientProfile& p : profiles) {
    const std::string vanish = p.vanish_distance < 0 ? "> " + std::to_string(opts.gap) : std::to_string(p.vanish_distance);
    char loss[32] = "-";
    if (p.variant == "trained") std::snprintf(loss, sizeof loss, "%.4f", p.train_loss);
    std::snprintf(line, sizeof line, "%-10s %-12s %14s %10.3g %12.4g %12.3g %12s\n", p.cell.c_str(),
                  variant_label(p.variant).c_str(), vanish.c_str(), p.max_ratio, p.param_grad_norm, p.clip_factor, loss);
    out += line;
  }
  return out;
}

}  // namespace recur
