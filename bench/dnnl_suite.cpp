// dnnl_suite: the oneDNN anchor of the speed suite (issue 7).
//
// Runs ONE case of bench/suite_cases.json per invocation and prints one JSON line on stdout.
// The recurrent layers run on Intel oneDNN's RNN primitives (lstm, lbr_gru for PyTorch's GRU,
// vanilla_rnn with tanh); everything around them is oneDNN's sgemm for the linear head's three
// products (OpenBLAS's GEMV for batch-1 generation) plus plain loops (embedding lookup, softmax
// cross-entropy, gradient clipping, Adam). The head was OpenBLAS's sgemm until 4 Dec 2026, when
// recur moved its float products to oneDNN's sgemm (twice OpenBLAS's speed on the suite's AMD
// Zen 5); the anchor moved with it, so the comparison stays one of equal tools. It deliberately does
// not link the recur library: it is the external reference recur is measured against, written
// the way one would write a fast CPU trainer on oneDNN:
//   * parameters live in oneDNN's plain user layouts (ldigo / ldgo); each primitive gets them in
//     the layout it prefers (format_tag::any) through reorders, or zero-copy when they agree;
//   * every primitive, reorder and buffer is created before the timed loop; primitives run
//     through the C API with pre-built argument arrays and one user-mode scratchpad, so this
//     code allocates nothing in a timed step (oneDNN's execute itself still makes a few small
//     internal allocations per call);
//   * layers that oneDNN can fuse into one multi-layer primitive are fused (it needs the layer
//     input width to equal the layer output width, so with embed != hidden the first layer is
//     its own primitive and layers 2..L share one).
//
//   dnnl_suite --cases bench/suite_cases.json --case NAME --threads N [--warmup W] [--repeats R]
//   dnnl_suite --cases FILE --list
// Extras, not part of the interface shared with the other implementations:
//   --check      self-test on the case's shapes (results on stderr, exit 1 on failure). lm/tagger:
//                loss at init vs ln(V), finite-difference gradients of a few weights of every
//                parameter, 20 train steps on the fixed batch. generate: token-by-token loss
//                equals a whole-sequence forward with the same weights.
//   --per-layer  one primitive per layer even where layers could be fused (for comparison)
//
// Precision: this anchor is float32 only. A case whose "precision" is bf16 or int8 (compressed
// generation weights in recur, quantize_dynamic / autocast in PyTorch) has no oneDNN
// counterpart here: dnnl_suite prints a note on stderr, nothing on stdout, and exits with
// kNotApplicable (3), which bench/suite.sh reads as "not applicable" and skips. An unknown
// precision is a usage error (exit 2).

#include <oneapi/dnnl/dnnl.hpp>

#include <cblas.h>
#include <omp.h>
#include <sys/resource.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <bit>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

extern "C" void openblas_set_num_threads(int);

namespace {

using dnnl::memory;
using md = dnnl::memory::desc;
using tag = dnnl::memory::format_tag;
using dt = dnnl::memory::data_type;
using dims = dnnl::memory::dims;

constexpr int kNotApplicable = 3;  // exit code: the case is outside this implementation (see above)

[[noreturn]] void usage_error(const std::string& msg) {
  std::fprintf(stderr, "dnnl_suite: %s\n", msg.c_str());
  std::exit(2);
}

// ---------------------------------------------------------------------------------------------
// Cases

enum class Cell { lstm, gru, rnn_tanh };
enum class Kind { lm, tagger, generate };
enum class Mode { train, forward, generate };

struct Case {
  std::string name, cell_name;
  std::string precision = "f32";  // "f32" (also "fp32", "float32"), "bf16" ("bfloat16") or "int8"
  Kind kind = Kind::lm;
  Mode mode = Mode::train;
  Cell cell = Cell::lstm;
  int vocab = 0, embed = 0, hidden = 0, layers = 1, batch = 1, steps = 1, tags = 0, repeats = 5;
};

nlohmann::json load_cases(const std::string& path) {
  std::ifstream in(path);
  if (!in) usage_error("cannot open cases file " + path);
  try {
    nlohmann::json j = nlohmann::json::parse(in);
    if (!j.contains("cases") || !j["cases"].is_array()) usage_error(path + ": no \"cases\" array");
    return j;
  } catch (const nlohmann::json::exception& e) {
    usage_error(path + ": " + e.what());
  }
}

Case parse_case(const nlohmann::json& j) {
  Case c;
  try {
    c.name = j.at("name").get<std::string>();
    const auto kind = j.at("kind").get<std::string>();
    const auto mode = j.at("mode").get<std::string>();
    c.cell_name = j.at("cell").get<std::string>();
    if (kind == "lm") c.kind = Kind::lm;
    else if (kind == "tagger") c.kind = Kind::tagger;
    else if (kind == "generate") c.kind = Kind::generate;
    else usage_error("case " + c.name + ": unknown kind " + kind);
    if (mode == "train") c.mode = Mode::train;
    else if (mode == "forward") c.mode = Mode::forward;
    else if (mode == "generate") c.mode = Mode::generate;
    else usage_error("case " + c.name + ": unknown mode " + mode);
    if (c.cell_name == "lstm") c.cell = Cell::lstm;
    else if (c.cell_name == "gru") c.cell = Cell::gru;
    else if (c.cell_name == "rnn_tanh") c.cell = Cell::rnn_tanh;
    else usage_error("case " + c.name + ": unknown cell " + c.cell_name);
    c.vocab = j.at("vocab").get<int>();
    c.embed = j.at("embed").get<int>();
    c.hidden = j.at("hidden").get<int>();
    c.layers = j.at("layers").get<int>();
    c.batch = j.at("batch").get<int>();
    c.steps = j.at("steps").get<int>();
    c.tags = j.value("tags", 0);
    c.repeats = j.value("repeats", 5);
    c.precision = j.value("precision", std::string("f32"));
  } catch (const nlohmann::json::exception& e) {
    usage_error(std::string("bad case entry: ") + e.what());
  }
  if ((c.kind == Kind::generate) != (c.mode == Mode::generate))
    usage_error("case " + c.name + ": kind generate goes with mode generate");
  if (c.kind == Kind::tagger && c.tags <= 0)
    usage_error("case " + c.name + ": tagger needs \"tags\"");
  if (c.kind == Kind::tagger && c.layers != 1)
    usage_error("case " + c.name + ": tagger is 1 layer");
  if (c.precision == "fp32" || c.precision == "float32") c.precision = "f32";
  if (c.precision == "bfloat16") c.precision = "bf16";
  if (c.precision != "f32" && c.precision != "bf16" && c.precision != "int8")
    usage_error("case " + c.name + ": unknown precision " + c.precision + " (f32, bf16 or int8)");
  if (c.embed <= 0) usage_error("case " + c.name + ": embed 0 (one-hot input) is not supported");
  if (c.vocab <= 0 || c.hidden <= 0 || c.layers <= 0 || c.batch <= 0 || c.steps <= 0)
    usage_error("case " + c.name + ": sizes must be positive");
  return c;
}

// ---------------------------------------------------------------------------------------------
// Process facts for the report

double vm_rss_mb() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::atof(line.c_str() + 6) / 1024.0;  // kB
  return -1.0;
}

double peak_rss_mb() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return double(ru.ru_maxrss) / 1024.0;  // Linux: kB
}

// The BLAS actually mapped (the libopenblas.so.0 symlink goes through update-alternatives).
std::string mapped_blas() {
  std::ifstream in("/proc/self/maps");
  std::string line, fallback;
  while (std::getline(in, line)) {
    const auto slash = line.find('/');
    if (slash == std::string::npos) continue;
    const std::string path = line.substr(slash);
    if (path.find("libopenblas") != std::string::npos) return path;
    if (fallback.empty() && path.find("libblas") != std::string::npos) fallback = path;
  }
  return fallback.empty() ? "unknown" : fallback;
}

// exp(x) for the softmax, where x = z - max(z) <= 0. libm's expf is a call per element, which keeps
// the softmax loops scalar and costs as much as the head GEMM at V = 10000; this one inlines
// into vectorised loops. Cephes' expf: x = n ln2 + r, |r| <= ln2/2, degree-6 polynomial (~2 ulp).
// n is rounded with the 1.5 * 2^23 trick rather than std::floor, which GCC will not vectorise
// under the default -ftrapping-math; the same sum also holds n as an integer in its low bits.
inline float softmax_exp(float x) {
  x = x > -87.0f ? x : -87.0f;  // exp(-87) ~ 1.6e-38: 2^n stays a normal float
  constexpr float magic = 12582912.0f;  // 1.5 * 2^23, bits 0x4B400000
  const float k = x * 1.44269504088896341f + magic;  // low mantissa bits = round(x / ln2)
  const float n = k - magic;
  const float r = x - n * 0.693359375f + n * 2.12194440e-4f;  // ln2 split in two for accuracy
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int ni = std::bit_cast<int>(k) - 0x4B400000;
  return p * std::bit_cast<float>((ni + 127) << 23);  // * 2^n
}

// One row of the head: r [n] += bias, returns -log softmax(r)[target]. grad: r becomes
// (softmax(r) - onehot(target)) * scale, the row of d(mean loss)/d(logits).
double softmax_xent_row(float* __restrict r, const float* __restrict bias, int n, int target,
                        bool grad, float scale) {
  float mx = -INFINITY;
#pragma omp simd reduction(max : mx)
  for (int j = 0; j < n; ++j) {
    r[j] += bias[j];
    mx = r[j] > mx ? r[j] : mx;  // not std::max: its reference result blocks vectorisation
  }
  const float zt = r[target];
  float s = 0.f;
#pragma omp simd reduction(+ : s)
  for (int j = 0; j < n; ++j) {
    r[j] = softmax_exp(r[j] - mx);
    s += r[j];
  }
  if (grad) {
    const float k = scale / s;
#pragma omp simd
    for (int j = 0; j < n; ++j) r[j] *= k;
    r[target] -= scale;
  }
  return double(std::log(s) + mx - zt);
}

// ---------------------------------------------------------------------------------------------
// oneDNN plumbing

// A primitive with its arguments pre-built in the C API's form. dnnl::primitive::execute takes
// an unordered_map and copies it into a fresh std::vector on every call; this does not.
struct Exec {
  dnnl::primitive prim;
  size_t scratch_bytes = 0;  // user-mode scratchpad this primitive needs
  std::vector<memory> mems;  // keeps the argument memories alive
  std::vector<dnnl_exec_arg_t> args;

  void add(int arg, const memory& m) {
    mems.push_back(m);
    args.push_back({arg, m.get()});
  }
  void run(const dnnl::stream& s) const {
    dnnl::error::wrap_c_api(
        dnnl_primitive_execute(prim.get(), s.get(), int(args.size()), args.data()),
        "could not execute a primitive");
  }
};

Exec make_exec(const dnnl::primitive_desc_base& pd) {
  Exec e;
  e.prim = dnnl::primitive(pd.get());
  e.scratch_bytes = pd.scratchpad_desc().get_size();
  return e;
}

md arg_md(const dnnl::primitive_desc& pd, int arg) {
  return pd.query_md(dnnl::query::exec_arg_md, arg);
}

float* ptr(const memory& m) { return static_cast<float*>(m.get_data_handle()); }
void zero(const memory& m) { std::memset(m.get_data_handle(), 0, m.get_desc().get_size()); }

// Name of a weight layout for the notes.
std::string layout_name(const md& d) {
  if (d.data.format_kind == dnnl_format_kind_rnn_packed) return "packed";
  const dims dd = d.dims();
  if (dd.size() == 5) {
    if (d == md(dd, dt::f32, tag::ldigo)) return "ldigo";
    if (d == md(dd, dt::f32, tag::ldgoi)) return "ldgoi";
  }
  if (dd.size() == 4 && d == md(dd, dt::f32, tag::ldgo)) return "ldgo";
  return "blocked";
}

// Forward (and, when training, backward) primitive descriptors of one RNN block.
struct RnnPds {
  dnnl::primitive_desc fwd, bwd;
};

// state/cstate: recurrent state descs (zero desc = start from zeros, do not output the final
// state). Training never carries state, so backward gets zero descs for all of it.
RnnPds make_rnn_pds(Cell cell, bool training, dnnl::rnn_direction dir, const md& src,
                    const md& state, const md& cstate, const md& wl, const md& wi, const md& b,
                    const md& dst, const dnnl::primitive_attr& attr, const dnnl::engine& eng) {
  using namespace dnnl;
  const prop_kind pk = training ? prop_kind::forward_training : prop_kind::forward_inference;
  const md none;
  RnnPds out;
  switch (cell) {
    case Cell::lstm: {
      lstm_forward::primitive_desc f(
          lstm_forward::desc(pk, dir, src, state, cstate, wl, wi, b, dst, state, cstate), attr,
          eng);
      out.fwd = f;
      if (training)
        out.bwd = lstm_backward::primitive_desc(
            lstm_backward::desc(prop_kind::backward, dir, src, none, none, wl, wi, b, dst, none,
                                none, src, none, none, wl, wi, b, dst, none, none),
            attr, eng, f);
      break;
    }
    case Cell::gru: {  // linear-before-reset: r * (W_hn h + b_hn), i.e. PyTorch's GRU
      lbr_gru_forward::primitive_desc f(
          lbr_gru_forward::desc(pk, dir, src, state, wl, wi, b, dst, state), attr, eng);
      out.fwd = f;
      if (training)
        out.bwd = lbr_gru_backward::primitive_desc(
            lbr_gru_backward::desc(prop_kind::backward, dir, src, none, wl, wi, b, dst, none,
                                   src, none, wl, wi, b, dst, none),
            attr, eng, f);
      break;
    }
    case Cell::rnn_tanh: {
      const auto act = algorithm::eltwise_tanh;
      vanilla_rnn_forward::primitive_desc f(
          vanilla_rnn_forward::desc(pk, act, dir, src, state, wl, wi, b, dst, state), attr, eng);
      out.fwd = f;
      if (training)
        out.bwd = vanilla_rnn_backward::primitive_desc(
            vanilla_rnn_backward::desc(prop_kind::backward, act, dir, src, none, wl, wi, b, dst,
                                       none, src, none, wl, wi, b, dst, none),
            attr, eng, f);
      break;
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Model

// One trainable tensor in its user layout, with gradient and Adam moments.
struct Param {
  std::string name;
  float* w = nullptr;  // points into a std::vector or a dnnl::memory owned by the Model
  float* g = nullptr;
  size_t n = 0;
  std::vector<float> m, v;
};

// One RNN primitive covering `layers` consecutive layers.
struct Block {
  int layers = 1, slc = 0;  // slc: input width of the block's first layer
  // Parameters and gradients in the user layouts:
  memory wl, gwl;  // weights_layer [l, D, SLC, G, H] ldigo
  memory wi, gwi;  // weights_iter  [l, D, H, G, H] ldigo
  memory b, gb;    // bias          [l, D, Gb, H] ldgo (lbr_gru: Gb = 4, the extra one is b_hn)
  // Activations, time-major (tnc): row t*B + b.
  memory src, dsrc;  // [T, B, SLC]: block 0's is the embedding output; else the previous dst
  memory dst, ddst;  // [T, B, D*H]
  memory ws;         // forward-training workspace (gates etc.), consumed by backward
  memory h[2], c[2];  // generate: recurrent state [l, D, 1, H] ldnc, ping-pong per token
  std::vector<Exec> to_fwd;    // user weights -> forward layout
  std::vector<Exec> to_bwd;    // user weights -> backward layout
  std::vector<Exec> from_bwd;  // backward-layout gradients -> user layout
  std::vector<memory> diff_w;  // the diff weights backward writes: it ACCUMULATES into them
  Exec fwd, bwd, gen[2];
  std::string notes;
};

class Model {
 public:
  // training: forward_training + backward primitives; else forward_inference only.
  Model(const Case& c, bool training, bool per_layer)
      : c_(c),
        training_(training),
        generate_(c.kind == Kind::generate),
        D_(c.kind == Kind::tagger ? 2 : 1),
        H_(c.hidden),
        E_(c.embed),
        V_(c.vocab),
        Vout_(c.kind == Kind::tagger ? c.tags : c.vocab),
        T_(generate_ ? 1 : c.steps),
        B_(generate_ ? 1 : c.batch),
        N_(T_ * B_),
        DH_(D_ * H_),
        G_(c.cell == Cell::lstm ? 4 : c.cell == Cell::gru ? 3 : 1),
        Gb_(c.cell == Cell::lstm ? 4 : c.cell == Cell::gru ? 4 : 1),
        eng_(dnnl::engine::kind::cpu, 0),
        strm_(eng_) {
    // One scratchpad we own for all primitives: with the default (library) mode oneDNN may
    // allocate per execution.
    attr_.set_scratchpad_mode(dnnl::scratchpad_mode::user);

    // Layer split: one oneDNN primitive can hold several layers only when every layer's input
    // width equals the layer output width (SLC == D*H). Fusing saves a launch and an activation
    // hand-over per layer; on ptb_small (embed == hidden, the one case here where it applies) the
    // fused primitive measured ~10% faster forward and equal in training.
    std::vector<std::pair<int, int>> split;  // (layers, input width) per block
    if (per_layer) {
      for (int l = 0; l < c.layers; ++l) split.push_back({1, l == 0 ? E_ : DH_});
    } else if (E_ == DH_) {
      split.push_back({c.layers, E_});
    } else {
      split.push_back({1, E_});
      if (c.layers > 1) split.push_back({c.layers - 1, DH_});
    }
    blocks_.reserve(split.size());
    for (auto [l, slc] : split) build_block(l, slc);

    // Head and embedding.
    emb_.assign(size_t(V_) * E_, 0.f);
    gemb_.assign(emb_.size(), 0.f);
    hw_.assign(size_t(Vout_) * DH_, 0.f);
    ghw_.assign(hw_.size(), 0.f);
    hb_.assign(Vout_, 0.f);
    ghb_.assign(Vout_, 0.f);
    logits_.assign(size_t(N_) * Vout_, 0.f);

    // Parameters: uniform(-1/sqrt(H), 1/sqrt(H)), seed 1.
    params_.push_back({"embedding", emb_.data(), gemb_.data(), emb_.size(), {}, {}});
    for (size_t i = 0; i < blocks_.size(); ++i) {
      Block& bk = blocks_[i];
      const std::string p = "rnn" + std::to_string(i) + ".";
      auto count = [](const memory& m) { return m.get_desc().get_size() / sizeof(float); };
      params_.push_back({p + "weights_layer", ptr(bk.wl), ptr(bk.gwl), count(bk.wl), {}, {}});
      params_.push_back({p + "weights_iter", ptr(bk.wi), ptr(bk.gwi), count(bk.wi), {}, {}});
      params_.push_back({p + "bias", ptr(bk.b), ptr(bk.gb), count(bk.b), {}, {}});
    }
    params_.push_back({"head.weight", hw_.data(), ghw_.data(), hw_.size(), {}, {}});
    params_.push_back({"head.bias", hb_.data(), ghb_.data(), hb_.size(), {}, {}});
    std::mt19937 rng(1);
    const float k = 1.f / std::sqrt(float(H_));
    std::uniform_real_distribution<float> U(-k, k);
    for (auto& p : params_) {
      for (size_t i = 0; i < p.n; ++i) p.w[i] = U(rng);
      std::fill(p.g, p.g + p.n, 0.f);
      if (training_) p.m.assign(p.n, 0.f), p.v.assign(p.n, 0.f);
    }

    // Fixed batch: input ids and targets, [T, B] time-major, seed 2.
    std::mt19937 drng(2);
    std::uniform_int_distribution<int> in_id(0, V_ - 1), out_id(0, Vout_ - 1);
    ids_.resize(N_);
    targets_.resize(N_);
    for (int i = 0; i < N_; ++i) ids_[i] = in_id(drng);
    for (int i = 0; i < N_; ++i) targets_[i] = out_id(drng);

    // One scratchpad big enough for every primitive (they run one after another).
    size_t scratch = 0;
    for_each_exec([&](Exec& e) { scratch = std::max(scratch, e.scratch_bytes); });
    if (scratch > 0) {
      scratch_ = memory(md({dnnl::memory::dim(scratch)}, dt::u8, tag::a), eng_);
      for_each_exec([&](Exec& e) {
        if (e.scratch_bytes > 0) e.add(DNNL_ARG_SCRATCHPAD, scratch_);
      });
    }

    // Inference weights never change: put them in the primitive's layout once, here.
    if (!training_) refresh_forward_weights();

    std::ostringstream n;
    n << blocks_.size() << " primitive(s) [";
    for (size_t i = 0; i < blocks_.size(); ++i) n << (i ? "; " : "") << blocks_[i].notes;
    n << "]; scratchpad " << scratch / 1024 << " KiB";
    notes_ = n.str();
  }

  const std::string& notes() const { return notes_; }
  int vout() const { return Vout_; }
  std::vector<Param>& params() { return params_; }

  // Forward over the fixed batch and the mean cross-entropy. with_grad: also leave
  // d(loss)/d(logits) in logits_ for backward().
  double forward(bool with_grad) {
    if (training_) refresh_forward_weights();  // Adam changed them since the last step
    // Embedding lookup into block 0's src [T, B, E].
    float* x = ptr(blocks_[0].src);
    for (int i = 0; i < N_; ++i)
      std::memcpy(x + size_t(i) * E_, emb_.data() + size_t(ids_[i]) * E_, E_ * sizeof(float));
    for (auto& bk : blocks_) bk.fwd.run(strm_);
    strm_.wait();
    return head_loss(with_grad);
  }

  // Gradients of the loss of the last forward(true) into every Param::g.
  void backward() {
    const float* dl = logits_.data();               // [N, Vout]
    const float* h = ptr(blocks_.back().dst);       // [N, DH]
    float* dh = ptr(blocks_.back().ddst);           // [N, DH]
    // head.weight grad [Vout, DH] = dlogits^T [Vout, N] * h [N, DH]
    dnnl_sgemm('T', 'N', Vout_, DH_, N_, 1.f, dl, Vout_, h, DH_, 0.f, ghw_.data(), DH_);
    // head.bias grad [Vout] = column sums of dlogits
    std::fill(ghb_.begin(), ghb_.end(), 0.f);
    for (int i = 0; i < N_; ++i) {
      const float* row = dl + size_t(i) * Vout_;
      for (int j = 0; j < Vout_; ++j) ghb_[j] += row[j];
    }
    // d(rnn output) [N, DH] = dlogits [N, Vout] * W [Vout, DH]
    dnnl_sgemm('N', 'N', N_, DH_, Vout_, 1.f, dl, Vout_, hw_.data(), DH_, 0.f, dh, DH_);
    // RNN backward, last block first; block i's diff src is block i-1's diff dst.
    for (auto it = blocks_.rbegin(); it != blocks_.rend(); ++it) {
      for (auto& r : it->to_bwd) r.run(strm_);
      for (auto& m : it->diff_w) zero(m);
      it->bwd.run(strm_);
      for (auto& r : it->from_bwd) r.run(strm_);
    }
    strm_.wait();
    // Embedding grad [V, E]: dense (as nn.Embedding's default), scatter-add of block 0's diff src.
    std::fill(gemb_.begin(), gemb_.end(), 0.f);
    const float* dx = ptr(blocks_[0].dsrc);  // [N, E]
    for (int i = 0; i < N_; ++i) {
      float* g = gemb_.data() + size_t(ids_[i]) * E_;
      const float* d = dx + size_t(i) * E_;
      for (int j = 0; j < E_; ++j) g[j] += d[j];
    }
  }

  // clip_grad_norm_(all params, 5.0) then Adam(lr 1e-3, betas (0.9, 0.999), eps 1e-8), both
  // with PyTorch's formulas. The clip factor is folded into Adam's pass over the gradients.
  void clip_and_adam() {
    double sq = 0.0;
    for (auto& p : params_) {
      const float* g = p.g;
      const long n = long(p.n);
      double s = 0.0;
#pragma omp parallel for simd reduction(+ : s) schedule(static) if (n > 32768)
      for (long i = 0; i < n; ++i) s += double(g[i]) * g[i];
      sq += s;
    }
    const float norm = float(std::sqrt(sq));
    const float clip = std::min(1.f, 5.f / (norm + 1e-6f));
    constexpr float lr = 1e-3f, b1 = 0.9f, b2 = 0.999f, eps = 1e-8f;
    ++adam_t_;
    const float bc1 = 1.f - std::pow(b1, float(adam_t_));
    const float bc2 = 1.f - std::pow(b2, float(adam_t_));
    const float step = lr / bc1, inv_sqrt_bc2 = 1.f / std::sqrt(bc2);
    for (auto& p : params_) {
      float *w = p.w, *m = p.m.data(), *v = p.v.data();
      const float* g = p.g;
      const long n = long(p.n);
#pragma omp parallel for simd schedule(static) if (n > 32768)
      for (long i = 0; i < n; ++i) {
        const float gi = g[i] * clip;
        m[i] = b1 * m[i] + (1.f - b1) * gi;
        v[i] = b2 * v[i] + (1.f - b2) * gi * gi;
        w[i] -= step * m[i] / (std::sqrt(v[i]) * inv_sqrt_bc2 + eps);
      }
    }
  }

  double train_step() {
    const double loss = forward(true);
    backward();
    clip_and_adam();
    return loss;
  }

  // Generate mode: zero the recurrent state of every layer.
  void reset_state() {
    for (auto& bk : blocks_)
      for (int p = 0; p < 2; ++p) {
        zero(bk.h[p]);
        if (bk.c[p]) zero(bk.c[p]);
      }
    parity_ = 0;
  }

  // Generate mode: one token through embedding -> RNN (T = 1; each layer reads its state from
  // one ping-pong buffer and writes the other) -> head. Returns the logits [Vout], valid until
  // the next call.
  float* step(int tok) {
    std::memcpy(ptr(blocks_[0].src), emb_.data() + size_t(tok) * E_, E_ * sizeof(float));
    for (auto& bk : blocks_) bk.gen[parity_].run(strm_);
    strm_.wait();
    parity_ ^= 1;
    float* z = logits_.data();  // [Vout] = W [Vout, DH] * h [DH] + b
    std::memcpy(z, hb_.data(), Vout_ * sizeof(float));
    cblas_sgemv(CblasRowMajor, CblasNoTrans, Vout_, DH_, 1.f, hw_.data(), DH_,
                ptr(blocks_.back().dst), 1, 1.f, z, 1);
    return z;
  }

  // Generate `steps` tokens from token 0 and a zero state, sampling each next token from
  // softmax(logits) (temperature 1). Returns a checksum of the tokens.
  long generate(int steps, std::mt19937& rng) {
    reset_state();
    std::uniform_real_distribution<float> U(0.f, 1.f);
    int tok = 0;
    long sum = 0;
    for (int s = 0; s < steps; ++s) {
      float* z = step(tok);
      const float mx = *std::max_element(z, z + Vout_);
      float total = 0.f;
#pragma omp simd reduction(+ : total)
      for (int j = 0; j < Vout_; ++j) {
        z[j] = softmax_exp(z[j] - mx);
        total += z[j];
      }
      const float u = U(rng) * total;
      float acc = 0.f;
      tok = Vout_ - 1;  // in case rounding leaves u above the last partial sum
      for (int j = 0; j < Vout_; ++j)
        if ((acc += z[j]) > u) {
          tok = j;
          break;
        }
      sum += tok;
    }
    return sum;
  }

  const std::vector<int>& ids() const { return ids_; }
  const std::vector<int>& targets() const { return targets_; }

 private:
  void build_block(int layers, int slc) {
    const bool first = blocks_.empty();
    blocks_.emplace_back();
    Block& bk = blocks_.back();
    bk.layers = layers;
    bk.slc = slc;
    const auto dir = D_ == 2 ? dnnl::rnn_direction::bidirectional_concat
                             : dnnl::rnn_direction::unidirectional_left2right;
    const dims wl_dims{layers, D_, slc, G_, H_}, wi_dims{layers, D_, H_, G_, H_},
        b_dims{layers, D_, Gb_, H_};
    const md src_md({T_, B_, slc}, dt::f32, tag::tnc), dst_md({T_, B_, DH_}, dt::f32, tag::tnc);
    const md state_md = generate_ ? md({layers, D_, B_, H_}, dt::f32, tag::ldnc) : md();
    const md cstate_md = c_.cell == Cell::lstm ? state_md : md();
    const RnnPds pds = make_rnn_pds(
        c_.cell, training_, dir, src_md, state_md, cstate_md, md(wl_dims, dt::f32, tag::any),
        md(wi_dims, dt::f32, tag::any), md(b_dims, dt::f32, tag::any), dst_md, attr_, eng_);
    if (arg_md(pds.fwd, DNNL_ARG_SRC_LAYER) != src_md ||
        arg_md(pds.fwd, DNNL_ARG_DST_LAYER) != dst_md)
      throw std::runtime_error("oneDNN wants a non-tnc activation layout");

    // User-layout parameters and gradients.
    bk.wl = memory(md(wl_dims, dt::f32, tag::ldigo), eng_);
    bk.wi = memory(md(wi_dims, dt::f32, tag::ldigo), eng_);
    bk.b = memory(md(b_dims, dt::f32, tag::ldgo), eng_);
    bk.gwl = memory(bk.wl.get_desc(), eng_);
    bk.gwi = memory(bk.wi.get_desc(), eng_);
    bk.gb = memory(bk.b.get_desc(), eng_);

    bk.src = first ? memory(src_md, eng_) : blocks_[blocks_.size() - 2].dst;
    bk.dst = memory(dst_md, eng_);

    // Forward.
    const memory wl_f = adopt(bk.wl, arg_md(pds.fwd, DNNL_ARG_WEIGHTS_LAYER), bk.to_fwd, true);
    const memory wi_f = adopt(bk.wi, arg_md(pds.fwd, DNNL_ARG_WEIGHTS_ITER), bk.to_fwd, true);
    const memory b_f = adopt(bk.b, arg_md(pds.fwd, DNNL_ARG_BIAS), bk.to_fwd, true);
    std::ostringstream n;
    n << layers << " layer(s), in " << slc << "; fwd weights "
      << layout_name(wl_f.get_desc()) << (wl_f == bk.wl ? " (user, zero-copy)" : " (reordered)");

    auto add_fwd_args = [&](Exec& e) {
      e.add(DNNL_ARG_SRC_LAYER, bk.src);
      e.add(DNNL_ARG_WEIGHTS_LAYER, wl_f);
      e.add(DNNL_ARG_WEIGHTS_ITER, wi_f);
      e.add(DNNL_ARG_BIAS, b_f);
      e.add(DNNL_ARG_DST_LAYER, bk.dst);
    };
    if (generate_) {
      for (int p = 0; p < 2; ++p) {
        bk.h[p] = memory(state_md, eng_);
        if (c_.cell == Cell::lstm) bk.c[p] = memory(cstate_md, eng_);
      }
      for (int p = 0; p < 2; ++p) {  // gen[p] reads state p, writes state 1-p
        bk.gen[p] = make_exec(pds.fwd);
        add_fwd_args(bk.gen[p]);
        bk.gen[p].add(DNNL_ARG_SRC_ITER, bk.h[p]);
        bk.gen[p].add(DNNL_ARG_DST_ITER, bk.h[1 - p]);
        if (c_.cell == Cell::lstm) {
          bk.gen[p].add(DNNL_ARG_SRC_ITER_C, bk.c[p]);
          bk.gen[p].add(DNNL_ARG_DST_ITER_C, bk.c[1 - p]);
        }
      }
    } else {
      bk.fwd = make_exec(pds.fwd);
      add_fwd_args(bk.fwd);
      if (training_) {
        bk.ws = memory(arg_md(pds.fwd, DNNL_ARG_WORKSPACE), eng_);
        bk.fwd.add(DNNL_ARG_WORKSPACE, bk.ws);
      }
    }

    if (training_) {
      // Backward usually wants the weights transposed (ldgoi); reuse the forward copy when not.
      auto bwd_weights = [&](const memory& user, const memory& fwd_copy, int arg) {
        const md want = arg_md(pds.bwd, arg);
        if (want == fwd_copy.get_desc()) return fwd_copy;
        return adopt(user, want, bk.to_bwd, true);
      };
      const memory wl_b = bwd_weights(bk.wl, wl_f, DNNL_ARG_WEIGHTS_LAYER);
      const memory wi_b = bwd_weights(bk.wi, wi_f, DNNL_ARG_WEIGHTS_ITER);
      const memory b_b = bwd_weights(bk.b, b_f, DNNL_ARG_BIAS);
      auto bwd_grads = [&](const memory& user, int arg) {
        return adopt(user, arg_md(pds.bwd, arg), bk.from_bwd, false);
      };
      const memory gwl_b = bwd_grads(bk.gwl, DNNL_ARG_DIFF_WEIGHTS_LAYER);
      const memory gwi_b = bwd_grads(bk.gwi, DNNL_ARG_DIFF_WEIGHTS_ITER);
      const memory gb_b = bwd_grads(bk.gb, DNNL_ARG_DIFF_BIAS);
      bk.diff_w = {gwl_b, gwi_b, gb_b};
      bk.dsrc = first ? memory(src_md, eng_) : blocks_[blocks_.size() - 2].ddst;
      bk.ddst = memory(dst_md, eng_);
      n << "; bwd weights " << layout_name(wl_b.get_desc())
        << (wl_b == bk.wl ? " (user)" : wl_b == wl_f ? " (fwd copy)" : " (reordered)")
        << "; diff weights " << layout_name(gwl_b.get_desc())
        << (gwl_b == bk.gwl ? " (user)" : " (reordered)");

      bk.bwd = make_exec(pds.bwd);
      Exec& e = bk.bwd;
      e.add(DNNL_ARG_SRC_LAYER, bk.src);
      e.add(DNNL_ARG_WEIGHTS_LAYER, wl_b);
      e.add(DNNL_ARG_WEIGHTS_ITER, wi_b);
      e.add(DNNL_ARG_BIAS, b_b);
      e.add(DNNL_ARG_DST_LAYER, bk.dst);
      e.add(DNNL_ARG_WORKSPACE, bk.ws);
      e.add(DNNL_ARG_DIFF_SRC_LAYER, bk.dsrc);
      e.add(DNNL_ARG_DIFF_WEIGHTS_LAYER, gwl_b);
      e.add(DNNL_ARG_DIFF_WEIGHTS_ITER, gwi_b);
      e.add(DNNL_ARG_DIFF_BIAS, gb_b);
      e.add(DNNL_ARG_DIFF_DST_LAYER, bk.ddst);
    }
    bk.notes = n.str();
  }

  // The memory a primitive should be given for `user` data in layout `want`: the user memory
  // itself when the layouts agree, else a new buffer plus the reorder that fills it from the
  // user memory (to_prim) or drains it into the user memory (!to_prim).
  memory adopt(const memory& user, const md& want, std::vector<Exec>& reorders, bool to_prim) {
    if (want == user.get_desc()) return user;
    memory m(want, eng_);
    const memory& from = to_prim ? user : m;
    const memory& to = to_prim ? m : user;
    dnnl::reorder::primitive_desc pd(from, to, attr_);
    Exec e = make_exec(pd);
    e.add(DNNL_ARG_FROM, from);
    e.add(DNNL_ARG_TO, to);
    reorders.push_back(std::move(e));
    return m;
  }

  void refresh_forward_weights() {
    for (auto& bk : blocks_)
      for (auto& r : bk.to_fwd) r.run(strm_);
  }

  template <class F>
  void for_each_exec(F f) {
    for (auto& bk : blocks_) {
      for (auto* list : {&bk.to_fwd, &bk.to_bwd, &bk.from_bwd})
        for (auto& e : *list) f(e);
      for (Exec* e : {&bk.fwd, &bk.bwd, &bk.gen[0], &bk.gen[1]})
        if (e->prim) f(*e);
    }
  }

  // logits [N, Vout] = h [N, DH] * W^T + b, then mean softmax cross-entropy against targets_.
  // with_grad: logits_ becomes d(loss)/d(logits) = (softmax - onehot) / N.
  double head_loss(bool with_grad) {
    const float* h = ptr(blocks_.back().dst);
    float* z = logits_.data();
    dnnl_sgemm('N', 'T', N_, Vout_, DH_, 1.f, h, DH_, hw_.data(), DH_, 0.f, z, Vout_);
    const float invN = 1.f / float(N_);
    double loss = 0.0;
#pragma omp parallel for reduction(+ : loss) schedule(static)
    for (int i = 0; i < N_; ++i)
      loss += softmax_xent_row(z + size_t(i) * Vout_, hb_.data(), Vout_, targets_[i], with_grad,
                               invN);
    return loss / N_;
  }

  Case c_;
  bool training_, generate_;
  int D_, H_, E_, V_, Vout_, T_, B_, N_, DH_, G_, Gb_;
  dnnl::engine eng_;
  dnnl::stream strm_;
  dnnl::primitive_attr attr_;
  std::vector<Block> blocks_;
  memory scratch_;
  std::vector<float> emb_, gemb_;  // [V, E]
  std::vector<float> hw_, ghw_;    // [Vout, D*H]
  std::vector<float> hb_, ghb_;    // [Vout]
  std::vector<float> logits_;      // [N, Vout]; d(loss)/d(logits) after forward(true)
  std::vector<int> ids_, targets_;  // [T, B]
  std::vector<Param> params_;
  int adam_t_ = 0;
  int parity_ = 0;  // generate: which state buffer holds the current state
  std::string notes_;
};

// ---------------------------------------------------------------------------------------------
// --check: correctness on this case's shapes.

// Generate: the token-by-token path (T = 1, state carried between calls) must give the same
// loss as one forward_inference over the whole sequence with identical weights.
int run_generate_check(const Case& c, bool per_layer) {
  Case seq = c;
  seq.kind = Kind::lm;
  seq.mode = Mode::forward;
  seq.batch = 1;
  seq.steps = 50;
  Model ref(seq, false, per_layer);  // same shapes and init order as `gen`, so same weights
  Model gen(c, false, per_layer);
  std::fprintf(stderr, "check %s: %s\n", c.name.c_str(), gen.notes().c_str());
  const double want = ref.forward(false);
  gen.reset_state();
  double got = 0.0;
  for (int t = 0; t < seq.steps; ++t) {
    const float* z = gen.step(ref.ids()[t]);
    const float mx = *std::max_element(z, z + gen.vout());
    double s = 0.0;
    for (int j = 0; j < gen.vout(); ++j) s += std::exp(double(z[j]) - mx);
    got += std::log(s) + mx - z[ref.targets()[t]];
  }
  got /= seq.steps;
  const bool ok = std::fabs(got - want) < 1e-4;
  std::fprintf(stderr, "%d steps: stepwise loss %.7f, sequence loss %.7f\ncheck %s\n", seq.steps,
               got, want, ok ? "PASSED" : "FAILED");
  return ok ? 0 : 1;
}

int run_check(const Case& c, bool per_layer) {
  if (c.kind == Kind::generate) return run_generate_check(c, per_layer);
  Model m(c, /*training=*/true, per_layer);
  std::fprintf(stderr, "check %s: %s\n", c.name.c_str(), m.notes().c_str());
  bool ok = true;

  const double l0 = m.forward(false);
  const double lnv = std::log(double(m.vout()));
  std::fprintf(stderr, "init loss %.5f, ln(V) %.5f\n", l0, lnv);
  if (std::fabs(l0 - lnv) > 0.05 * lnv) ok = false;

  // Central finite differences (in float, so expect ~1e-2 agreement) on the weight with the
  // largest gradient of each tensor plus one random weight.
  m.forward(true);
  m.backward();
  std::mt19937 rng(7);
  const float eps = 1e-2f;
  double worst = 0.0;
  for (auto& p : m.params()) {
    std::vector<float> g(p.g, p.g + p.n);  // forward() below does not touch grads, but be safe
    size_t imax = 0;
    for (size_t i = 1; i < p.n; ++i)
      if (std::fabs(g[i]) > std::fabs(g[imax])) imax = i;
    for (size_t i : {imax, size_t(rng() % p.n)}) {
      const float w0 = p.w[i];
      p.w[i] = w0 + eps;
      const double lp = m.forward(false);
      p.w[i] = w0 - eps;
      const double lm = m.forward(false);
      p.w[i] = w0;
      const double num = (lp - lm) / (2.0 * eps);
      const double err = std::fabs(num - g[i]) / std::max(1e-3, std::fabs(num) + std::fabs(g[i]));
      if (i == imax) worst = std::max(worst, err);
      std::fprintf(stderr, "  grad %-22s [%8zu] analytic % .6e  numeric % .6e  rel %.2e\n",
                   p.name.c_str(), i, double(g[i]), num, err);
    }
  }
  std::fprintf(stderr, "worst relative error (largest-gradient weights): %.2e\n", worst);
  if (worst > 5e-2) ok = false;

  // oneDNN's backward accumulates into diff weights: a second backward on unchanged weights
  // must reproduce the gradients, not double them.
  std::vector<std::vector<float>> g1;
  for (auto& p : m.params()) g1.emplace_back(p.g, p.g + p.n);
  m.forward(true);
  m.backward();
  double drift = 0.0;
  for (size_t k = 0; k < g1.size(); ++k)
    for (size_t i = 0; i < g1[k].size(); ++i)
      drift = std::max(drift, double(std::fabs(m.params()[k].g[i] - g1[k][i])));
  std::fprintf(stderr, "repeated backward: max |grad change| %.2e\n", drift);
  if (drift > 1e-6) ok = false;

  double first = 0, last = 0;
  for (int s = 0; s < 20; ++s) {
    last = m.train_step();
    if (s == 0) first = last;
    std::fprintf(stderr, "  step %2d loss %.5f\n", s, last);
  }
  std::fprintf(stderr, "20 steps: %.5f -> %.5f\n", first, last);
  if (!(last < first - 0.01)) ok = false;  // random targets: slow, but must clearly move
  std::fprintf(stderr, "check %s\n", ok ? "PASSED" : "FAILED");
  return ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  std::string cases_path, case_name;
  int threads = 0, warmup = 2, repeats = -1;
  bool list = false, check = false, per_layer = false;
  auto int_arg = [&](int& i, const char* flag) {
    if (i + 1 >= argc) usage_error(std::string(flag) + " needs a value");
    const std::string v = argv[++i];
    char* end = nullptr;
    const long x = std::strtol(v.c_str(), &end, 10);
    if (v.empty() || *end != '\0' || x < 0 || x > 1000000)
      usage_error(std::string(flag) + ": bad value " + v);
    return int(x);
  };
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--cases") {
      if (i + 1 >= argc) usage_error("--cases needs a value");
      cases_path = argv[++i];
    } else if (a == "--case") {
      if (i + 1 >= argc) usage_error("--case needs a value");
      case_name = argv[++i];
    } else if (a == "--threads") {
      threads = int_arg(i, "--threads");
    } else if (a == "--warmup") {
      warmup = int_arg(i, "--warmup");
    } else if (a == "--repeats") {
      repeats = int_arg(i, "--repeats");
    } else if (a == "--list") {
      list = true;
    } else if (a == "--check") {
      check = true;
    } else if (a == "--per-layer") {
      per_layer = true;
    } else {
      usage_error("unknown argument " + a +
                  " (usage: dnnl_suite --cases FILE --case NAME --threads N [--warmup W] "
                  "[--repeats R] | --cases FILE --list)");
    }
  }
  if (cases_path.empty()) usage_error("--cases FILE is required");
  const nlohmann::json all = load_cases(cases_path);
  if (list) {
    for (const auto& j : all["cases"]) std::printf("%s\n", parse_case(j).name.c_str());
    return 0;
  }
  if (case_name.empty()) usage_error("--case NAME is required");
  if (threads < 1) usage_error("--threads N (N >= 1) is required");
  const nlohmann::json* found = nullptr;
  for (const auto& j : all["cases"])
    if (j.value("name", "") == case_name) found = &j;
  if (!found) usage_error("unknown case " + case_name);
  const Case c = parse_case(*found);
  if (c.precision != "f32") {
    std::fprintf(stderr, "dnnl_suite: case %s: precision %s is not applicable (this anchor is float32 only)\n",
                 c.name.c_str(), c.precision.c_str());
    return kNotApplicable;
  }
  if (repeats < 0) repeats = c.repeats;
  if (repeats < 1) usage_error("--repeats must be >= 1");

  // oneDNN's CPU engine is built on OpenMP (libgomp); OpenBLAS has its own pool.
  omp_set_num_threads(threads);
  openblas_set_num_threads(threads);

  try {
    if (check) return run_check(c, per_layer);

    const double rss_base = vm_rss_mb();
    Model model(c, /*training=*/c.mode == Mode::train, per_layer);

    std::mt19937 sample_rng(1234);  // generate: multinomial sampling
    long checksum = 0;
    auto once = [&]() -> double {
      switch (c.mode) {
        case Mode::train: return model.train_step();
        case Mode::forward: return model.forward(false);
        case Mode::generate: checksum += model.generate(c.steps, sample_rng); return 0.0;
      }
      return 0.0;
    };

    double loss_first = 0.0, loss_last = 0.0;
    for (int i = 0; i < warmup; ++i) {
      const double l = once();
      if (i == 0) loss_first = l;
    }
    std::vector<double> times;
    for (int r = 0; r < repeats; ++r) {
      const auto t0 = std::chrono::steady_clock::now();
      loss_last = once();
      const auto t1 = std::chrono::steady_clock::now();
      times.push_back(std::chrono::duration<double>(t1 - t0).count());
      if (warmup == 0 && r == 0) loss_first = loss_last;
    }

    const dnnl_version_t* ver = dnnl_version();
    std::ostringstream notes;
    notes << "oneDNN " << ver->major << "." << ver->minor << "." << ver->patch << " "
          << (c.cell == Cell::lstm ? "lstm" : c.cell == Cell::gru ? "lbr_gru" : "vanilla_rnn tanh")
          << (c.kind == Kind::tagger ? " bidirectional_concat" : "") << ", "
          << (c.mode == Mode::train ? "forward_training+backward" : "forward_inference") << "; "
          << model.notes() << "; head/loss/clip/Adam: OpenBLAS sgemm + loops";
    if (c.mode == Mode::forward) notes << "; inference weights reordered once at setup";
    if (c.mode == Mode::generate) notes << "; token checksum " << checksum;
    if (c.cell == Cell::gru) notes << "; GRU bias: oneDNN keeps b_ir+b_hr, b_iz+b_hz summed";
    if (c.cell == Cell::lstm) notes << "; LSTM bias: one vector (PyTorch keeps b_ih and b_hh)";

    nlohmann::ordered_json out;
    out["impl"] = "onednn";
    out["case"] = c.name;
    out["precision"] = c.precision;
    out["threads"] = threads;
    out["times_s"] = times;
    out["tokens_per_repeat"] =
        c.mode == Mode::generate ? long(c.steps) : long(c.steps) * long(c.batch);
    if (c.mode == Mode::generate) {
      out["loss_first"] = nullptr;
      out["loss_last"] = nullptr;
    } else {
      out["loss_first"] = loss_first;
      out["loss_last"] = loss_last;
    }
    out["rss_base_mb"] = rss_base;
    out["rss_peak_mb"] = peak_rss_mb();
    out["blas"] = mapped_blas();
    out["notes"] = notes.str();
    std::printf("%s\n", out.dump().c_str());
    if (threads > 1 && out["blas"].get<std::string>().find("openblas-pthread") != std::string::npos)
      std::fprintf(stderr,
                   "dnnl_suite: warning: OpenBLAS is the pthreads build; its spinning workers "
                   "compete with oneDNN's OpenMP threads (select libopenblas0-openmp)\n");
  } catch (const dnnl::error& e) {
    std::fprintf(stderr, "dnnl_suite: oneDNN error: %s (status %d)\n", e.what(), int(e.status));
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "dnnl_suite: %s\n", e.what());
    return 1;
  }
  return 0;
}
