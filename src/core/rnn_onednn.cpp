// The recurrent core's float path on Intel oneDNN's RNN primitives; see rnn_onednn.h for the
// contract and rnn.cpp for the reference path it must match.
//
// How recur's cells (cell.h, PyTorch's layouts) map onto oneDNN's, one layer and direction
// per primitive (oneDNN dims: L = D = 1):
//   weights_layer [1, 1, I, G, H], weights_iter [1, 1, R, G, H]: recur's w_ih [G*H, I] and
//     w_hh [G*H, R] are these dims in format ldgoi, so they are read in place (after a gate
//     permutation for GRU) and reordered into the layout the primitive prefers (tag any).
//   gates: LSTM (i, f, g, o) = oneDNN (i, f, c~, o); RNN has one; GRU (r, z, n) is oneDNN's
//     (u, r, o) with u = z, o = n, so oneDNN gate g is recur gate kGruPerm[g].
//   GRU reset before = oneDNN gru:     o = tanh(W_o x + U_o (r * h) + b_o)
//   GRU reset after  = oneDNN lbr_gru: o = tanh(W_o x + b_o + r * (U_o h + b_u'))
//     and for both h' = u * h + (1 - u) * o, which is recur's (1 - z) * n + z * h.
//   bias [1, 1, G, H] (ldgo): one bias per gate, b_ih + b_hh, since both enter linearly;
//     except lbr_gru's [1, 1, 4, H]: (u, r) = b_i + b_h, o = b_in, u' = b_hn (inside r * ...).
//     bias = false is zero biases.
//   peephole [1, 1, 3, H] (ldgo) = recur's w_peep [3, H] rows (i, f, o), read in place.
//   projection [1, 1, H, P]: recur's w_hr [P, H] is format ldoi.
//   reverse direction = unidirectional_right2left: dst_layer[t] is the output of step t in
//     time order and src_iter enters step T-1, as recur's reverse scan.
// Backward accumulates into diff_weights and diff_bias, so those are zeroed before each run
// and then added into recur's gradients (whose contract is +=); a summed bias's gradient
// goes to both b_ih and b_hh.
#include "rnn_onednn.h"

#include "pool_scope.h"
#include "recur/core/quantize.h"
#include "recur/core/threads.h"

#include <algorithm>
#include <array>
#include <cstdlib>
#include <cstring>

#ifdef RECUR_HAVE_ONEDNN
#include <oneapi/dnnl/dnnl.hpp>
#endif

namespace recur::detail {

bool onednn_pays_off(const RnnConfig& cfg, int64_t steps, int64_t batch) {
  // Crossover read off a grid of LSTM / GRU / RNN-tanh layers (H 32..512, B 1..32, T 5..50,
  // forward and forward + backward, one thread): below these oneDNN was slower or even.
  return batch >= 4 && steps >= 10 && cfg.gates() * cfg.hidden_size >= 384;
}

#ifdef RECUR_HAVE_ONEDNN

// Named, not anonymous: OnednnRnn (declared in rnn.h) holds these types.
namespace onednn {

using dnnl::memory;
using tag = memory::format_tag;
using Dims = memory::dims;

// One engine for the process: the CPU engine is stateless. (Declared in rnn_onednn.h: the bf16
// matmul of blas_bf16.cpp uses them too.)
const dnnl::engine& cpu_engine() {
  static const dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}
// One stream per thread: the two directions of a bidirectional layer run at once (rnn.cpp).
const dnnl::stream& cpu_stream() {
  static thread_local const dnnl::stream stream(cpu_engine());
  return stream;
}

memory::desc md(const Dims& dims, tag t, memory::data_type type = memory::data_type::f32) {
  return memory::desc(dims, type, t);
}
memory owned(const memory::desc& d) { return memory(d, cpu_engine()); }  // allocated by oneDNN
memory view(const memory::desc& d) { return memory(d, cpu_engine(), DNNL_MEMORY_NONE); }  // handle per call
float* fptr(const memory& m) { return static_cast<float*>(m.get_data_handle()); }
void point(const memory& m, const void* p) { m.set_data_handle(const_cast<void*>(p)); }
void zero(const memory& m) { std::memset(m.get_data_handle(), 0, m.get_desc().get_size()); }

// A primitive with its arguments bound once: the C++ execute() builds a vector per call,
// the C call on a prepared array does not.
struct Call {
  dnnl::primitive prim;
  std::vector<dnnl_exec_arg_t> args;
  void bind(int arg, const memory& m) { args.push_back({arg, m.get()}); }
  void run() const {
    dnnl::error::wrap_c_api(
        dnnl_primitive_execute(prim.get(), cpu_stream().get(), int(args.size()), args.data()),
        "a oneDNN primitive failed");
  }
};

Call make_reorder(const memory& src, const memory& dst, bool accumulate = false) {
  dnnl::primitive_attr attr;
  if (accumulate) {
    dnnl::post_ops po;
    po.append_sum(1.0f);
    attr.set_post_ops(po);
  }
  Call c{dnnl::reorder(dnnl::reorder::primitive_desc(src, dst, attr)), {}};
  c.bind(DNNL_ARG_FROM, src);
  c.bind(DNNL_ARG_TO, dst);
  return c;
}

constexpr std::array<int, 4> kIdentity{0, 1, 2, 3};
constexpr std::array<int, 4> kGruPerm{1, 0, 2, 3};  // oneDNN (u, r, o) <- recur (z, r, n)

// Everything that selects a primitive: a cache entry is reused only for an equal key.
struct Key {
  CellType cell;
  GruReset reset;
  int64_t steps, batch, in, hidden, proj;  // T, B, I, H, P (0 = none)
  bool peephole, reverse, training;
  bool bf16;  // products in bfloat16: inputs, h and weights bf16; c, bias and every gradient f32
  // Row stride of the caller's output y and its gradient dy (2R for one direction of a
  // bidirectional layer). A float inference writes straight into y's columns and the final
  // state (direct()); training keeps dst_layer and dst_iter in memories of its own, since
  // backward reads them again and the caller may change its output first (dropout in place
  // between layers). Backward reads dy's columns in place, at this stride.
  int64_t ldy;
  bool operator==(const Key&) const = default;

  bool direct() const { return !training && !bf16; }

  int64_t R() const { return proj > 0 ? proj : hidden; }
  int64_t G() const { return gate_count(cell); }
  bool lstm() const { return cell == CellType::lstm; }
  bool lbr() const { return cell == CellType::gru && reset == GruReset::after; }
  int64_t bias_gates() const { return lbr() ? 4 : G(); }  // oneDNN's bias blocks
  const std::array<int, 4>& perm() const { return cell == CellType::gru ? kGruPerm : kIdentity; }
};

// Weights in recur's layout (ldgoi over w_ih / w_hh) -> the primitive's layout. GRU first
// copies the gate blocks into oneDNN's order in `staging`.
//
// Inference skips the reorder when the weights equal those of the last load (kept in `last`):
// it reorders into oneDNN's packed layout, which from ldgoi took 5.5 ms per 512x1536 matrix, a
// tenth of a GRU 2x512 forward over 3,200 tokens. Training does not remember: its weights
// change after every step, so the comparison would always fail and the copy into `last` (a
// read and a write of every weight per step) would be wasted.
struct WeightIn {
  memory user;   // [1, 1, K, G, H] ldgoi: recur's tensor, or `staging` for GRU
  memory prim;   // the primitive's layout
  Call load;     // user -> prim
  std::vector<float> staging;  // [G*H, K] GRU only
  std::vector<float> last;     // [G*H, K] the recur-layout weights `prim` holds; empty = none

  void init(const memory::desc& user_md, const memory& prim_mem, bool permuted) {
    user = view(user_md);
    prim = prim_mem;
    load = make_reorder(user, prim);
    if (permuted) staging.resize(user_md.get_size() / sizeof(float));
    last.clear();
  }
  // src: recur's [G*H, K]; remember: keep a copy to compare the next call's weights with.
  void run(const float* src, const std::array<int, 4>& perm, int64_t G, int64_t HK, bool remember) {
    const size_t n = size_t(G * HK);
    if (!remember) {
      last.clear();
    } else {
      if (last.size() == n && std::memcmp(src, last.data(), n * sizeof(float)) == 0) return;
      last.assign(src, src + n);
    }
    if (staging.empty()) {
      point(user, src);
    } else {
      for (int64_t g = 0; g < G; ++g)
        std::memcpy(staging.data() + g * HK, src + perm[size_t(g)] * HK, size_t(HK) * sizeof(float));
      point(user, staging.data());
    }
    load.run();
  }
};

// A diff weight in the primitive's layout -> added into recur's gradient ([G*H, K]).
struct WeightOut {
  memory prim;   // the primitive's layout, zeroed before each backward
  memory user;   // [1, 1, K, G, H] ldgoi: recur's gradient (accumulating reorder), or staging
  Call store;
  std::vector<float> staging;  // [G*H, K] GRU only: oneDNN gate order, added with the permutation

  void init(const memory& prim_mem, const memory::desc& user_md, bool permuted) {
    prim = prim_mem;
    if (permuted) {
      staging.resize(user_md.get_size() / sizeof(float));
      user = memory(user_md, cpu_engine(), staging.data());
      store = make_reorder(prim, user);
    } else {
      user = view(user_md);
      store = make_reorder(prim, user, /*accumulate=*/true);
    }
  }
  void run(float* dst, const std::array<int, 4>& perm, int64_t G, int64_t HK) {
    if (staging.empty()) {
      point(user, dst);
      store.run();
      return;
    }
    store.run();
    for (int64_t g = 0; g < G; ++g) {
      const float* s = staging.data() + g * HK;
      float* d = dst + perm[size_t(g)] * HK;
#pragma omp simd
      for (int64_t e = 0; e < HK; ++e) d[e] += s[e];
    }
  }
};

// One shape of one layer-direction: primitives and the memories bound to them.
struct Entry {
  Key key;
  dnnl::primitive_desc fwd_pd;
  Call fwd;
  WeightIn w_layer, w_iter, w_proj;
  memory bias;                             // [1, 1, nb, H] ldgo, rebuilt every forward
  memory peep;                             // [1, 1, 3, H] ldgo: recur's w_peep in place
  memory src_layer;                        // [T, B, I] tnc: the layer input in place
  memory src_iter, src_iter_c;             // [1, 1, B, R|H]: the slot's saved initial state
  memory dst_layer;                        // [T, B, R]: y's columns (direct()), else owned and copied
  memory dst_iter, dst_iter_c;             // [1, 1, B, R|H]: state_n (direct()), else owned and copied
  memory workspace;                        // training only: what backward reads
  memory fwd_scratch;                      // user scratchpad: handle = OnednnRnn::scratch

  // Backward, built by the first backward of this entry.
  bool has_bwd = false;
  Call bwd;
  WeightIn bw_layer, bw_iter, bw_proj;     // weights again, in the backward's layouts
  WeightOut dw_layer, dw_iter, dw_proj;
  memory dbias, dpeep;                     // ldgo, zeroed before each backward
  memory diff_dst_layer;                   // [T, B, R] rows ldy apart: dy's columns in place
  memory diff_dst_iter, diff_dst_iter_c;   // [1, 1, B, R|H]: dhn/dcn in place, or zeros
  std::vector<float> zeros;                // [B * max(R, H)]
  memory diff_src_layer;                   // [T, B, I] owned, added into dx
  memory diff_src_iter, diff_src_iter_c;   // [1, 1, B, R|H]: dh0/dc0 in place, or scratch
  std::vector<float> dstate_scratch;       // [B*R + B*H] for dh0 / dc0 when they are not wanted
  memory bwd_scratch;
};

// Per layer-direction: a few entries (shapes) and the state of the last forward.
struct Slot {
  std::vector<std::unique_ptr<Entry>> entries;  // most recently used first
  Entry* last = nullptr;                        // the last forward's entry (backward's)
  std::vector<float> h0, c0;                    // [B, R], [B, H] the last forward's initial state
};

// One scratchpad per direction for every primitive of a cache: the primitives of one direction
// run one at a time, the two directions of a layer may run at once.
struct Scratch {
  std::unique_ptr<void, decltype(&std::free)> buf{nullptr, &std::free};
  size_t size = 0;
};

}  // namespace onednn

struct OnednnRnn {
  std::vector<onednn::Slot> slots;  // [L * D]
  onednn::Scratch scratch[2];       // forward direction, reverse direction
};

namespace onednn {

// A training run, its evaluation shape and a short last chunk fit; more shapes rebuild.
constexpr size_t kMaxEntries = 3;

void* scratch_for(OnednnRnn& rnn, const memory& scratch_mem, bool reverse) {
  Scratch& s = rnn.scratch[reverse ? 1 : 0];
  const size_t need = scratch_mem.get_desc().get_size();
  if (need > s.size) {
    const size_t bytes = (need + 4095) / 4096 * 4096;
    s.buf.reset(std::aligned_alloc(4096, bytes));
    if (!s.buf) throw std::bad_alloc();
    s.size = bytes;
  }
  return s.buf.get();
}

dnnl::primitive_attr user_scratchpad() {
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return attr;
}

// The oneDNN operation descriptor of this key, forward or backward (the descriptor types
// differ per cell, so the result is handed to a callback as the C descriptor).
template <typename F>
void with_desc(const Key& k, bool backward, F&& f) {
  using dnnl::prop_kind;
  const int64_t T = k.steps, B = k.batch, I = k.in, H = k.hidden, R = k.R(), G = k.G();
  const prop_kind prop = backward ? prop_kind::backward
                                  : (k.training ? prop_kind::forward_training : prop_kind::forward_inference);
  const auto dir = k.reverse ? dnnl::rnn_direction::unidirectional_right2left
                             : dnnl::rnn_direction::unidirectional_left2right;
  // bf16 (oneDNN 2.6's mixed-precision RNN): the layer input, h and the weights in bf16, c and
  // the bias in f32; backward takes every gradient in f32 (it refuses bf16 ones).
  const memory::data_type data = k.bf16 ? memory::data_type::bf16 : memory::data_type::f32;
  const memory::desc src_layer = md({T, B, I}, tag::tnc, data);
  const memory::desc dst_layer =
      k.direct() ? memory::desc({T, B, R}, data, Dims{B * k.ldy, k.ldy, 1}) : md({T, B, R}, tag::tnc, data);
  const memory::desc iter = md({1, 1, B, R}, tag::ldnc, data), iter_c = md({1, 1, B, H}, tag::ldnc);
  const memory::desc w_layer = md({1, 1, I, G, H}, tag::any, data), w_iter = md({1, 1, R, G, H}, tag::any, data);
  const memory::desc bias = md({1, 1, k.bias_gates(), H}, tag::ldgo);
  const memory::desc peep = k.peephole ? md({1, 1, 3, H}, tag::ldgo) : memory::desc();
  const memory::desc proj = k.proj > 0 ? md({1, 1, H, k.proj}, tag::any, data) : memory::desc();
  const memory::desc d_src_layer = md({T, B, I}, tag::tnc);
  const memory::desc d_dst_layer = memory::desc({T, B, R}, memory::data_type::f32, Dims{B * k.ldy, k.ldy, 1});
  const memory::desc d_iter = md({1, 1, B, R}, tag::ldnc);
  const memory::desc d_w_layer = md({1, 1, I, G, H}, tag::any), d_w_iter = md({1, 1, R, G, H}, tag::any);
  const memory::desc d_proj = k.proj > 0 ? md({1, 1, H, k.proj}, tag::any) : memory::desc();
  if (k.lstm()) {
    if (!backward) {
      dnnl::lstm_forward::desc d(prop, dir, src_layer, iter, iter_c, w_layer, w_iter, peep, proj, bias, dst_layer, iter,
                                 iter_c);
      f(&d.data);
    } else {
      dnnl::lstm_backward::desc d(prop, dir, src_layer, iter, iter_c, w_layer, w_iter, peep, proj, bias, dst_layer, iter,
                                  iter_c, d_src_layer, d_iter, iter_c, d_w_layer, d_w_iter, peep, d_proj, bias, d_dst_layer,
                                  d_iter, iter_c);
      f(&d.data);
    }
  } else if (k.cell == CellType::gru) {
    if (k.lbr()) {
      if (!backward) {
        dnnl::lbr_gru_forward::desc d(prop, dir, src_layer, iter, w_layer, w_iter, bias, dst_layer, iter);
        f(&d.data);
      } else {
        dnnl::lbr_gru_backward::desc d(prop, dir, src_layer, iter, w_layer, w_iter, bias, dst_layer, iter, d_src_layer,
                                       d_iter, d_w_layer, d_w_iter, bias, d_dst_layer, d_iter);
        f(&d.data);
      }
    } else if (!backward) {
      dnnl::gru_forward::desc d(prop, dir, src_layer, iter, w_layer, w_iter, bias, dst_layer, iter);
      f(&d.data);
    } else {
      dnnl::gru_backward::desc d(prop, dir, src_layer, iter, w_layer, w_iter, bias, dst_layer, iter, d_src_layer, d_iter,
                                 d_w_layer, d_w_iter, bias, d_dst_layer, d_iter);
      f(&d.data);
    }
  } else {
    // alpha = 0: ReLU without a negative slope, as PyTorch's.
    const auto act = k.cell == CellType::rnn_relu ? dnnl::algorithm::eltwise_relu : dnnl::algorithm::eltwise_tanh;
    if (!backward) {
      dnnl::vanilla_rnn_forward::desc d(prop, act, dir, src_layer, iter, w_layer, w_iter, bias, dst_layer, iter);
      f(&d.data);
    } else {
      dnnl::vanilla_rnn_backward::desc d(prop, act, dir, src_layer, iter, w_layer, w_iter, bias, dst_layer, iter,
                                         d_src_layer, d_iter, d_w_layer, d_w_iter, bias, d_dst_layer, d_iter);
      f(&d.data);
    }
  }
}

memory::desc arg_md(const dnnl::primitive_desc& pd, int arg) { return pd.query_md(dnnl::query::exec_arg_md, arg); }

// recur's layouts of the weights, as oneDNN memory descriptors.
memory::desc user_weights_md(const Key& k, int64_t K) { return md({1, 1, K, k.G(), k.hidden}, tag::ldgoi); }
memory::desc user_proj_md(const Key& k) { return md({1, 1, k.hidden, k.proj}, tag::ldoi); }

std::unique_ptr<Entry> make_entry(const Key& k, Slot& slot) {
  auto e = std::make_unique<Entry>();
  e->key = k;
  const dnnl::primitive_attr attr = user_scratchpad();
  with_desc(k, false, [&](const_dnnl_op_desc_t d) { e->fwd_pd = dnnl::primitive_desc(d, &attr, cpu_engine(), nullptr); });
  const dnnl::primitive_desc& pd = e->fwd_pd;
  const bool permuted = k.cell == CellType::gru;
  e->w_layer.init(user_weights_md(k, k.in), owned(arg_md(pd, DNNL_ARG_WEIGHTS_LAYER)), permuted);
  e->w_iter.init(user_weights_md(k, k.R()), owned(arg_md(pd, DNNL_ARG_WEIGHTS_ITER)), permuted);
  if (k.proj > 0) e->w_proj.init(user_proj_md(k), owned(arg_md(pd, DNNL_ARG_WEIGHTS_PROJECTION)), false);
  e->bias = owned(arg_md(pd, DNNL_ARG_BIAS));
  if (k.peephole) e->peep = view(arg_md(pd, DNNL_ARG_WEIGHTS_PEEPHOLE));
  // bf16: the input and h0 are converted into memories of their own at each forward.
  e->src_layer = k.bf16 ? owned(arg_md(pd, DNNL_ARG_SRC_LAYER)) : view(arg_md(pd, DNNL_ARG_SRC_LAYER));
  e->src_iter = k.bf16 ? owned(arg_md(pd, DNNL_ARG_SRC_ITER)) : view(arg_md(pd, DNNL_ARG_SRC_ITER));
  // direct(): pointed at the caller's output and final state at each forward.
  auto out = [&](int arg) { return k.direct() ? view(arg_md(pd, arg)) : owned(arg_md(pd, arg)); };
  e->dst_layer = out(DNNL_ARG_DST_LAYER);
  e->dst_iter = out(DNNL_ARG_DST_ITER);
  if (k.lstm()) {
    e->src_iter_c = view(arg_md(pd, DNNL_ARG_SRC_ITER_C));
    e->dst_iter_c = out(DNNL_ARG_DST_ITER_C);
  }
  if (k.training) e->workspace = owned(arg_md(pd, DNNL_ARG_WORKSPACE));
  e->fwd_scratch = view(pd.scratchpad_desc());
  // The initial state is read from the slot's copy, which backward needs unchanged.
  if (!k.bf16) point(e->src_iter, slot.h0.data());
  if (k.lstm()) point(e->src_iter_c, slot.c0.data());

  Call& c = e->fwd;
  c.prim = dnnl::primitive(pd);
  c.bind(DNNL_ARG_SRC_LAYER, e->src_layer);
  c.bind(DNNL_ARG_SRC_ITER, e->src_iter);
  c.bind(DNNL_ARG_WEIGHTS_LAYER, e->w_layer.prim);
  c.bind(DNNL_ARG_WEIGHTS_ITER, e->w_iter.prim);
  c.bind(DNNL_ARG_BIAS, e->bias);
  c.bind(DNNL_ARG_DST_LAYER, e->dst_layer);
  c.bind(DNNL_ARG_DST_ITER, e->dst_iter);
  if (k.lstm()) {
    c.bind(DNNL_ARG_SRC_ITER_C, e->src_iter_c);
    c.bind(DNNL_ARG_DST_ITER_C, e->dst_iter_c);
  }
  if (k.peephole) c.bind(DNNL_ARG_WEIGHTS_PEEPHOLE, e->peep);
  if (k.proj > 0) c.bind(DNNL_ARG_WEIGHTS_PROJECTION, e->w_proj.prim);
  if (k.training) c.bind(DNNL_ARG_WORKSPACE, e->workspace);
  c.bind(DNNL_ARG_SCRATCHPAD, e->fwd_scratch);
  return e;
}

void make_backward(Entry& e) {
  const Key& k = e.key;
  const int64_t B = k.batch, R = k.R(), H = k.hidden;
  const dnnl::primitive_attr attr = user_scratchpad();
  dnnl::primitive_desc pd;
  with_desc(k, true, [&](const_dnnl_op_desc_t d) { pd = dnnl::primitive_desc(d, &attr, cpu_engine(), e.fwd_pd.get()); });
  const bool permuted = k.cell == CellType::gru;
  // Backward multiplies by the transposed weights and may want them in another layout.
  auto weights_in = [&](WeightIn& w, const WeightIn& fwd, int arg, const memory::desc& user_md) -> const memory& {
    const memory::desc want = arg_md(pd, arg);
    if (want == fwd.prim.get_desc()) return fwd.prim;
    w.init(user_md, owned(want), permuted && arg != DNNL_ARG_WEIGHTS_PROJECTION);
    return w.prim;
  };
  const memory& wl = weights_in(e.bw_layer, e.w_layer, DNNL_ARG_WEIGHTS_LAYER, user_weights_md(k, k.in));
  const memory& wi = weights_in(e.bw_iter, e.w_iter, DNNL_ARG_WEIGHTS_ITER, user_weights_md(k, R));
  e.dw_layer.init(owned(arg_md(pd, DNNL_ARG_DIFF_WEIGHTS_LAYER)), user_weights_md(k, k.in), permuted);
  e.dw_iter.init(owned(arg_md(pd, DNNL_ARG_DIFF_WEIGHTS_ITER)), user_weights_md(k, R), permuted);
  e.dbias = owned(arg_md(pd, DNNL_ARG_DIFF_BIAS));
  e.diff_dst_layer = view(arg_md(pd, DNNL_ARG_DIFF_DST_LAYER));
  e.diff_dst_iter = view(arg_md(pd, DNNL_ARG_DIFF_DST_ITER));
  e.diff_src_layer = owned(arg_md(pd, DNNL_ARG_DIFF_SRC_LAYER));
  e.diff_src_iter = view(arg_md(pd, DNNL_ARG_DIFF_SRC_ITER));
  e.zeros.assign(size_t(B * std::max(R, H)), 0.0f);
  e.dstate_scratch.resize(size_t(B * R + B * H));
  e.bwd_scratch = view(pd.scratchpad_desc());

  Call& c = e.bwd;
  c.prim = dnnl::primitive(pd);
  c.bind(DNNL_ARG_SRC_LAYER, e.src_layer);
  c.bind(DNNL_ARG_SRC_ITER, e.src_iter);
  c.bind(DNNL_ARG_WEIGHTS_LAYER, wl);
  c.bind(DNNL_ARG_WEIGHTS_ITER, wi);
  c.bind(DNNL_ARG_BIAS, e.bias);
  c.bind(DNNL_ARG_DST_LAYER, e.dst_layer);
  c.bind(DNNL_ARG_DST_ITER, e.dst_iter);
  c.bind(DNNL_ARG_WORKSPACE, e.workspace);
  c.bind(DNNL_ARG_DIFF_SRC_LAYER, e.diff_src_layer);
  c.bind(DNNL_ARG_DIFF_SRC_ITER, e.diff_src_iter);
  c.bind(DNNL_ARG_DIFF_WEIGHTS_LAYER, e.dw_layer.prim);
  c.bind(DNNL_ARG_DIFF_WEIGHTS_ITER, e.dw_iter.prim);
  c.bind(DNNL_ARG_DIFF_BIAS, e.dbias);
  c.bind(DNNL_ARG_DIFF_DST_LAYER, e.diff_dst_layer);
  c.bind(DNNL_ARG_DIFF_DST_ITER, e.diff_dst_iter);
  if (k.lstm()) {
    e.diff_dst_iter_c = view(arg_md(pd, DNNL_ARG_DIFF_DST_ITER_C));
    e.diff_src_iter_c = view(arg_md(pd, DNNL_ARG_DIFF_SRC_ITER_C));
    c.bind(DNNL_ARG_SRC_ITER_C, e.src_iter_c);
    c.bind(DNNL_ARG_DST_ITER_C, e.dst_iter_c);
    c.bind(DNNL_ARG_DIFF_SRC_ITER_C, e.diff_src_iter_c);
    c.bind(DNNL_ARG_DIFF_DST_ITER_C, e.diff_dst_iter_c);
  }
  if (k.peephole) {
    e.dpeep = owned(arg_md(pd, DNNL_ARG_DIFF_WEIGHTS_PEEPHOLE));
    c.bind(DNNL_ARG_WEIGHTS_PEEPHOLE, e.peep);
    c.bind(DNNL_ARG_DIFF_WEIGHTS_PEEPHOLE, e.dpeep);
  }
  if (k.proj > 0) {
    const memory& wp = weights_in(e.bw_proj, e.w_proj, DNNL_ARG_WEIGHTS_PROJECTION, user_proj_md(k));
    e.dw_proj.init(owned(arg_md(pd, DNNL_ARG_DIFF_WEIGHTS_PROJECTION)), user_proj_md(k), false);
    c.bind(DNNL_ARG_WEIGHTS_PROJECTION, wp);
    c.bind(DNNL_ARG_DIFF_WEIGHTS_PROJECTION, e.dw_proj.prim);
  }
  c.bind(DNNL_ARG_SCRATCHPAD, e.bwd_scratch);
  e.has_bwd = true;
}

Key key_of(const OnednnScan& s, bool training, int64_t ldy) {
  const RnnConfig& c = s.cfg;
  return Key{c.cell,   c.gru_reset, s.steps, s.batch,   s.in_size, c.hidden_size,
             c.cell == CellType::lstm ? c.proj_size : 0,      c.cell == CellType::lstm && c.peephole,
             s.reverse, training, s.bf16, ldy};
}

uint16_t* bf16_ptr(const memory& m) { return static_cast<uint16_t*>(m.get_data_handle()); }

// The layer input and the initial h into the forward's (and backward's) memories: in place
// for f32, converted for bf16.
void bind_inputs(Entry& e, const Slot& slot, const float* x) {
  const Key& k = e.key;
  if (!k.bf16) {
    point(e.src_layer, x);
    return;
  }
  floats_to_bf16(x, bf16_ptr(e.src_layer), k.steps * k.batch * k.in);
  floats_to_bf16(slot.h0.data(), bf16_ptr(e.src_iter), k.batch * k.R());
}

// The entry for `k`, moved to the front; built (evicting the least recently used) if absent.
Entry& entry_for(Slot& slot, const Key& k) {
  auto it = std::find_if(slot.entries.begin(), slot.entries.end(), [&](const auto& e) { return e->key == k; });
  if (it == slot.entries.end()) {
    if (slot.entries.size() >= kMaxEntries) {
      if (slot.last == slot.entries.back().get()) slot.last = nullptr;
      slot.entries.pop_back();
    }
    slot.entries.insert(slot.entries.begin(), make_entry(k, slot));
    return *slot.entries.front();
  }
  std::rotate(slot.entries.begin(), it, it + 1);
  return *slot.entries.front();
}

// Copies the initial state into the slot (backward and a training re-run read it there).
// The entries' src_iter memories point at these buffers; they move only when they grow.
void save_initial_state(Slot& slot, const Key& k, const float* h0, const float* c0) {
  const size_t nh = size_t(k.batch * k.R()), nc = k.lstm() ? size_t(k.batch * k.hidden) : 0;
  if (slot.h0.size() != nh || slot.c0.size() != nc) {
    slot.h0.resize(nh);
    slot.c0.resize(nc);
    for (auto& e : slot.entries) {
      if (!e->key.bf16) point(e->src_iter, slot.h0.data());
      if (e->key.lstm()) point(e->src_iter_c, slot.c0.data());
    }
  }
  std::memcpy(slot.h0.data(), h0, nh * sizeof(float));
  if (nc) std::memcpy(slot.c0.data(), c0, nc * sizeof(float));
}

// Weights and bias of `p` into the forward's memories, then the forward itself.
void run_forward(OnednnRnn& rnn, Entry& e, const Slot& slot, const DirectionParams<float>& p, bool bias, const float* x) {
  const Key& k = e.key;
  const int64_t G = k.G(), H = k.hidden, R = k.R(), nb = k.bias_gates();
  const bool remember = !k.training;
  e.w_layer.run(p.w_ih.ptr(), k.perm(), G, H * k.in, remember);
  e.w_iter.run(p.w_hh.ptr(), k.perm(), G, H * R, remember);
  if (k.proj > 0) e.w_proj.run(p.w_hr.ptr(), kIdentity, 1, k.proj * H, remember);
  if (k.peephole) point(e.peep, p.w_peep.ptr());
  // [nb, H] in oneDNN's gate order.
  float* b = fptr(e.bias);
  if (!bias) {
    std::fill(b, b + nb * H, 0.0f);
  } else {
    for (int64_t g = 0; g < G; ++g) {
      const int64_t rg = k.perm()[size_t(g)];
      const float* bi = p.b_ih.ptr() + rg * H;
      const float* bh = p.b_hh.ptr() + rg * H;
      // lbr_gru keeps b_hn apart (block 3), inside the reset product.
      const bool apart = k.lbr() && rg == 2;
      for (int64_t j = 0; j < H; ++j) b[g * H + j] = bi[j] + (apart ? 0.0f : bh[j]);
    }
    if (k.lbr()) std::memcpy(b + 3 * H, p.b_hh.ptr() + 2 * H, size_t(H) * sizeof(float));
  }
  bind_inputs(e, slot, x);
  point(e.fwd_scratch, scratch_for(rnn, e.fwd_scratch, k.reverse));
  e.fwd.run();
}

void prepare(std::shared_ptr<OnednnRnn>& state, int64_t slots) {
  if (!state) state = std::make_shared<OnednnRnn>();
  if (int64_t(state->slots.size()) < slots) state->slots.resize(size_t(slots));
}

void forward_impl(std::shared_ptr<OnednnRnn>& state, int64_t slots, const OnednnScan& s, const float* x,
                  const float* h0, const float* c0, float* y, int64_t ldy, float* hn, float* cn) {
  prepare(state, slots);
  OnednnRnn& rnn = *state;
  Slot& slot = rnn.slots[size_t(s.index)];
  const Key k = key_of(s, s.training, ldy);
  save_initial_state(slot, k, h0, c0);
  Entry& e = entry_for(slot, k);
  if (k.direct()) {  // the primitive writes y's columns, hn and cn itself
    point(e.dst_layer, y);
    point(e.dst_iter, hn);
    if (k.lstm()) point(e.dst_iter_c, cn);
  }
  run_forward(rnn, e, slot, s.p, s.cfg.bias, x);
  slot.last = &e;
  if (k.direct()) return;

  // Outputs: this direction's columns of y, and the final state.
  const int64_t T = k.steps, B = k.batch, R = k.R(), H = k.hidden;
  if (k.bf16) {  // outputs [T, B, R] and h [B, R] in bf16, widened (exactly) to float
    const uint16_t* yd = bf16_ptr(e.dst_layer);
    for (int64_t row = 0; row < T * B; ++row) bf16_to_floats(yd + row * R, y + row * ldy, R);
    bf16_to_floats(bf16_ptr(e.dst_iter), hn, B * R);
  } else {
    const float* yd = fptr(e.dst_layer);  // [T, B, R]
    if (ldy == R) {
      std::memcpy(y, yd, size_t(T * B * R) * sizeof(float));
    } else {
      for (int64_t row = 0; row < T * B; ++row) std::memcpy(y + row * ldy, yd + row * R, size_t(R) * sizeof(float));
    }
    std::memcpy(hn, fptr(e.dst_iter), size_t(B * R) * sizeof(float));
  }
  if (k.lstm()) std::memcpy(cn, fptr(e.dst_iter_c), size_t(B * H) * sizeof(float));
}

void backward_impl(OnednnRnn& rnn, const OnednnScan& s, const float* x, const float* dy, int64_t ldy,
                   const float* dhn, const float* dcn, DirectionParams<float>& grad, float* dx, float* dh0,
                   float* dc0) {
  Slot& slot = rnn.slots.at(size_t(s.index));
  if (!slot.last) throw Error("rnn_backward: the oneDNN cache holds no forward of this layer-direction");
  Entry* e = slot.last;
  if (!e->key.training) {
    // An inference forward keeps no workspace: run it again with one, from the same input and
    // saved initial state (the outputs are recomputed identically and dropped).
    Key k = e->key;
    k.training = true;
    e = &entry_for(slot, k);
    run_forward(rnn, *e, slot, s.p, s.cfg.bias, x);
    slot.last = e;
  }
  Entry& en = *e;
  const Key& k = en.key;
  if (!en.has_bwd) make_backward(en);
  const int64_t T = k.steps, B = k.batch, R = k.R(), H = k.hidden, G = k.G(), I = k.in;

  // Weights in the backward's layouts where they differ from the forward's.
  if (en.bw_layer.user) en.bw_layer.run(s.p.w_ih.ptr(), k.perm(), G, H * I, false);
  if (en.bw_iter.user) en.bw_iter.run(s.p.w_hh.ptr(), k.perm(), G, H * R, false);
  if (en.bw_proj.user) en.bw_proj.run(s.p.w_hr.ptr(), kIdentity, 1, k.proj * H, false);
  if (k.peephole) point(en.peep, s.p.w_peep.ptr());

  // Gradients in: dy's columns in place (the primitive was built for stride k.ldy).
  if (ldy != k.ldy)
    throw Error("rnn_backward: dy's row stride " + std::to_string(ldy) + " is not the forward's " + std::to_string(k.ldy));
  point(en.diff_dst_layer, dy);
  point(en.diff_dst_iter, dhn ? dhn : en.zeros.data());
  point(en.diff_src_iter, dh0 ? dh0 : en.dstate_scratch.data());
  if (k.lstm()) {
    point(en.diff_dst_iter_c, dcn ? dcn : en.zeros.data());
    point(en.diff_src_iter_c, dc0 ? dc0 : en.dstate_scratch.data() + B * R);
  }
  bind_inputs(en, slot, x);  // bf16: converted again, another forward may have used the entry
  zero(en.dw_layer.prim);
  zero(en.dw_iter.prim);
  zero(en.dbias);
  if (k.peephole) zero(en.dpeep);
  if (k.proj > 0) zero(en.dw_proj.prim);
  point(en.bwd_scratch, scratch_for(rnn, en.bwd_scratch, k.reverse));
  en.bwd.run();

  // Gradients out, added into recur's.
  en.dw_layer.run(grad.w_ih.ptr(), k.perm(), G, H * I);
  en.dw_iter.run(grad.w_hh.ptr(), k.perm(), G, H * R);
  if (k.proj > 0) en.dw_proj.run(grad.w_hr.ptr(), kIdentity, 1, k.proj * H);
  if (k.peephole) {
    const float* dp = fptr(en.dpeep);
    for (int64_t j = 0; j < 3 * H; ++j) grad.w_peep.data[size_t(j)] += dp[j];
  }
  if (s.cfg.bias) {
    const float* db = fptr(en.dbias);  // [nb, H] oneDNN's gate order
    for (int64_t g = 0; g < G; ++g) {
      const int64_t rg = k.perm()[size_t(g)];
      float* gi = grad.b_ih.ptr() + rg * H;
      float* gh = grad.b_hh.ptr() + rg * H;
      const bool apart = k.lbr() && rg == 2;  // b_hn has its own block 3
      for (int64_t j = 0; j < H; ++j) {
        gi[j] += db[g * H + j];
        if (!apart) gh[j] += db[g * H + j];
      }
    }
    if (k.lbr())
      for (int64_t j = 0; j < H; ++j) grad.b_hh.data[size_t(2 * H + j)] += db[3 * H + j];
  }
  if (dx) {
    const float* d = fptr(en.diff_src_layer);  // [T, B, I]
    const int64_t n = T * B * I;
#pragma omp simd
    for (int64_t e2 = 0; e2 < n; ++e2) dx[e2] += d[e2];
  }
}

}  // namespace onednn

using namespace onednn;

bool onednn_built() { return true; }

std::string onednn_unsupported(const RnnConfig& cfg, int64_t steps, const std::vector<int64_t>& lengths) {
  (void)cfg;  // every cell of cell.h, with peepholes and projection, maps onto oneDNN
  for (size_t b = 0; b < lengths.size(); ++b)
    if (lengths[b] != steps)
      return "lengths[" + std::to_string(b) + "] = " + std::to_string(lengths[b]) + " is shorter than T = " +
             std::to_string(steps) + " (oneDNN runs every sequence for all T steps; ragged batches need the reference path)";
  return "";
}

namespace {

// oneDNN reports failures (out of memory, a configuration this CPU's build does not implement)
// as dnnl::error; callers of recur expect recur::Error naming the function.
template <typename F>
void translate_errors(const char* where, F&& f) {
  try {
    f();
  } catch (const dnnl::error& e) {
    throw Error(std::string(where) + ": oneDNN failed: " + e.what() + " (status " + std::to_string(int(e.status)) +
                "); RnnBackend::reference avoids oneDNN");
  }
}

}  // namespace

void onednn_forward(std::shared_ptr<OnednnRnn>& state, int64_t slots, const OnednnScan& s, const float* x,
                    const float* h0, const float* c0, float* y, int64_t ldy, float* hn, float* cn) {
  const PoolOfOne threads(deterministic());  // --deterministic: pool_scope.h
  translate_errors("rnn_forward", [&] { forward_impl(state, slots, s, x, h0, c0, y, ldy, hn, cn); });
}

void onednn_backward(OnednnRnn& rnn, const OnednnScan& s, const float* x, const float* dy, int64_t ldy,
                     const float* dhn, const float* dcn, DirectionParams<float>& grad, float* dx, float* dh0,
                     float* dc0) {
  const PoolOfOne threads(deterministic());  // --deterministic: pool_scope.h
  translate_errors("rnn_backward", [&] { backward_impl(rnn, s, x, dy, ldy, dhn, dcn, grad, dx, dh0, dc0); });
}

void onednn_prepare(std::shared_ptr<OnednnRnn>& state, int64_t slots) { prepare(state, slots); }

void onednn_initial_state(const OnednnRnn& state, int64_t index, const float** h0, const float** c0) {
  const Slot& slot = state.slots.at(size_t(index));
  *h0 = slot.h0.data();
  *c0 = slot.c0.empty() ? nullptr : slot.c0.data();
}

#else  // !RECUR_HAVE_ONEDNN

struct OnednnRnn {};

bool onednn_built() { return false; }

std::string onednn_unsupported(const RnnConfig&, int64_t, const std::vector<int64_t>&) {
  return "recur was built without oneDNN (CMake did not find the dnnl package, Debian's libdnnl-dev)";
}

void onednn_forward(std::shared_ptr<OnednnRnn>&, int64_t, const OnednnScan&, const float*, const float*, const float*,
                    float*, int64_t, float*, float*) {
  throw Error("rnn_forward: recur was built without oneDNN");
}

void onednn_backward(OnednnRnn&, const OnednnScan&, const float*, const float*, int64_t, const float*, const float*,
                     DirectionParams<float>&, float*, float*, float*) {
  throw Error("rnn_backward: recur was built without oneDNN");
}

void onednn_prepare(std::shared_ptr<OnednnRnn>&, int64_t) {}

void onednn_initial_state(const OnednnRnn&, int64_t, const float**, const float**) {
  throw Error("recur was built without oneDNN");
}

#endif

}  // namespace recur::detail
