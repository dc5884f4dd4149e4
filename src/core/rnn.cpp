// The reference recurrent core: forward and backward through time for every cell, direction,
// depth and variable-length batch. Read rnn.h first for the data layout; cell.h for the
// equations and PyTorch's gate order.
//
// One direction of one layer is scanned by scan_forward / scan_backward below. Both are laid
// out the same way:
//   1. one GEMM for the input side of all T steps (outside the time loop),
//   2. the time loop: one recurrent GEMM per step plus a fused element-wise gate kernel,
//   3. (backward) one GEMM per weight over all T steps after the loop.
// The state history is stored in time order for both directions so that step 3 can pair the
// gate gradients of step t with the state that entered step t in a single product:
//   forward direction: h[t] enters step t, h[t+1] leaves it; initial h[0], final h[T]
//   reverse direction: h[t+1] enters step t, h[t] leaves it; initial h[T], final h[0]
// Rows of a batch that are past their length at step t are "inactive": their state is held,
// their output is zero, and in backward their gradient passes through unchanged.
//
// rnn_forward / rnn_backward hand each layer-direction either to these scans or, for float
// (RnnBackend, rnn_onednn.h), to oneDNN's RNN primitives with the same buffers; everything
// around the scans (dropout between layers, state slicing, bidirectional columns) is shared.
#include "recur/core/rnn.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <exception>
#include <optional>

#include "recur/core/dropout.h"
#include "activations.h"
#include "blas.h"
#include "rnn_onednn.h"

namespace recur {

namespace {

using act::sigmoid;

// Everything one direction's scan needs, gathered so the scan functions stay short.
template <typename T>
struct Scan {
  const RnnConfig& cfg;
  const DirectionParams<T>& p;
  int64_t steps, batch, in_size;  // T, B, I_layer
  const int64_t* lengths;         // [B]
  bool reverse;

  int64_t H() const { return cfg.hidden_size; }
  int64_t R() const { return cfg.state_size(); }
  int64_t G() const { return cfg.gates(); }
  int64_t prev_slot(int64_t t) const { return reverse ? t + 1 : t; }
  int64_t next_slot(int64_t t) const { return reverse ? t : t + 1; }
  int64_t first_step() const { return reverse ? steps - 1 : 0; }
  int64_t step_delta() const { return reverse ? -1 : 1; }
  bool active(int64_t t, int64_t b) const { return t < lengths[b]; }
};

// A product made at every step with the same weight matrix W: C[m, n] (+)= A[m, k] op(W)[k, n]
// (the recurrent h W_hh^T, its backward dg W_hh, an LSTM's projection). For float, a W of at
// least kPackWeights values (1 MiB: an LSTM of H = 256) is packed once per scan (blas.h,
// PackedProduct), so the T steps stream it in the kernel's layout instead of sgemm repacking it
// at every step: an LSTM of H = 512 at B = 32 steps its [32, 512] x [512, 2048] product at 193
// GFLOP/s instead of 140 on one thread. Smaller W ran slower packed (H = 32-128, the packing and
// the matmul's per-call cost), so they stay on blas::gemm, as do batches below kPackRows rows (a
// single row is a GEMV there) and double. BENCHMARKS.md has the measurements.
constexpr int64_t kPackRows = 4, kPackWeights = int64_t(1) << 18;

template <typename T>
class RecurrentProduct {
 public:
  // tw: W stored [n, k] and read transposed; else stored [k, n]. beta 0 or 1.
  RecurrentProduct(bool tw, int64_t m, int64_t n, int64_t k, const T* w, int64_t ldw, int64_t lda, int64_t ldc, T beta)
      : tw_(tw), m_(m), n_(n), k_(k), w_(w), ldw_(ldw), lda_(lda), ldc_(ldc), beta_(beta) {
    if constexpr (std::is_same_v<T, float>) {
      if (m >= kPackRows && n * k >= kPackWeights) packed_ = product_.pack(tw, m, n, k, w, ldw, lda, ldc, beta != T(0));
    }
  }
  void operator()(const T* a, T* c) const {
    if constexpr (std::is_same_v<T, float>) {
      if (packed_) return product_.run(a, c);
    }
    blas::gemm(false, tw_, m_, n_, k_, T(1), a, lda_, w_, ldw_, beta_, c, ldc_);
  }

 private:
  bool tw_;
  int64_t m_, n_, k_;
  const T* w_;
  int64_t ldw_, lda_, ldc_;
  T beta_;
  blas::PackedProduct product_;
  bool packed_ = false;
};

// Element-wise loops over the B rows of one step, split among the pool's threads when the step
// has at least kSplitGates gate values (an LSTM of H = 256 at B = 32; at H = 128 the fork and
// join cost more than half the loop saves); each row is computed the same way at any count.
// (A region with a false if clause still costs libgomp a team of one per step, which small
// layers felt: the rows then run in a plain loop.)
constexpr int64_t kSplitGates = int64_t(1) << 15;
template <typename F>
void for_rows(int64_t rows, int64_t row_work, F&& row) {
  if (rows < 2 || rows * row_work < kSplitGates || omp_get_max_threads() < 2 || omp_in_parallel()) {
    for (int64_t b = 0; b < rows; ++b) row(b);
    return;
  }
#pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < rows; ++b) row(b);
}

// ---------------------------------------------------------------------------------------------
// Forward of one direction.
//   x      [T, B, I]           layer input
//   h0     [B, R], c0 [B, H]   initial state (c0 ignored unless LSTM)
//   y      [T, B, ldy]         output, this direction's R columns start at y (strided rows)
//   hn     [B, R], cn [B, H]   final state
template <typename T>
void scan_forward(const Scan<T>& s, const T* x, const T* h0, const T* c0, T* y, int64_t ldy, T* hn, T* cn,
                  DirectionCache<T>& cache, Workspace<T>& work) {
  const int64_t Tn = s.steps, B = s.batch, H = s.H(), R = s.R(), G = s.G(), GH = G * H;
  const CellType cell = s.cfg.cell;
  const bool lstm = cell == CellType::lstm, gru = cell == CellType::gru;
  const bool gru_before = gru && s.cfg.gru_reset == GruReset::before;
  const bool proj = lstm && s.cfg.proj_size > 0, peep = lstm && s.cfg.peephole;
  const auto& p = s.p;

  cache.gates.resize({Tn, B, GH});
  cache.h.resize({Tn + 1, B, R});
  if (lstm) cache.c.resize({Tn + 1, B, H});
  if (gru || proj) cache.aux.resize({Tn, B, H});
  T* gates = cache.gates.ptr();
  work.reserve(size_t(GH + B * GH + 3 * H));
  T* bias = work.take(size_t(GH));    // [G*H]
  T* hp = work.take(size_t(B * GH));  // [B, G*H] recurrent product of one step
  // Loop-invariant choices become data (zeros) so the gate loops stay branch-free and vectorise.
  T* zeros = work.take(size_t(3 * H));  // [3*H]
  std::fill(zeros, zeros + 3 * H, T(0));

  // 1. Input side for all steps: gates[t, b] = x[t, b] W_ih^T + bias. Hidden biases that enter
  // the pre-activation linearly are folded in here; only GRU-after's b_hn must stay inside
  // the reset product.
  if (s.cfg.bias) {
    for (int64_t k = 0; k < GH; ++k) {
      const bool hidden_bias_inside_reset = gru && !gru_before && k >= 2 * H;
      bias[k] = p.b_ih.data[size_t(k)] + (hidden_bias_inside_reset ? T(0) : p.b_hh.data[size_t(k)]);
    }
  } else {
    cache.gates.zero();
  }
  // The bias seeds each tile of the product just before the tile is computed (blas.h), instead of
  // a pass of its own over all T * B rows; the same sums either way.
  blas::gemm(false, true, Tn * B, GH, s.in_size, T(1), x, s.in_size, p.w_ih.ptr(), s.in_size, T(1), gates, GH,
             s.cfg.bias ? bias : nullptr);

  const int64_t init = s.reverse ? Tn : 0;
  std::memcpy(cache.h.ptr() + init * B * R, h0, size_t(B * R) * sizeof(T));
  if (lstm) std::memcpy(cache.c.ptr() + init * B * H, c0, size_t(B * H) * sizeof(T));

  const T* b_hn = (gru && !gru_before && s.cfg.bias) ? p.b_hh.ptr() + 2 * H : zeros;

  // 2. The time loop.
  // Its products use the same weights at every step (RecurrentProduct), each [B, n] into rows GH
  // (or R) apart:
  //   rec   RNN, LSTM: g += h_prev W_hh^T;  GRU after: hp = h_prev W_hh^T;
  //         GRU before: hp[:, :2H] = h_prev W_hh[:2H]^T (r and z)
  //   rec2  GRU before: g[:, 2H:] += (r * h_prev) W_hh[2H:]^T;  LSTM projection: h = h~ W_hr^T
  const RecurrentProduct<T> rec(true, B, gru_before ? 2 * H : GH, R, p.w_hh.ptr(), R, R, GH, gru ? T(0) : T(1));
  std::optional<RecurrentProduct<T>> rec2;
  if (gru_before) rec2.emplace(true, B, H, H, p.w_hh.ptr() + 2 * H * H, H, H, GH, T(1));
  if (proj) rec2.emplace(true, B, R, H, p.w_hr.ptr(), H, H, R, T(0));
  for (int64_t i = 0, t = s.first_step(); i < Tn; ++i, t += s.step_delta()) {
    const T* h_prev = cache.h.ptr() + s.prev_slot(t) * B * R;  // [B, R]
    T* h_next = cache.h.ptr() + s.next_slot(t) * B * R;        // [B, R]
    T* g = gates + t * B * GH;                                 // [B, G*H]
    T* aux = (gru || proj) ? cache.aux.ptr() + t * B * H : nullptr;  // [B, H]

    if (cell == CellType::rnn_tanh || cell == CellType::rnn_relu) {
      rec(h_prev, g);
      const bool relu = cell == CellType::rnn_relu;
      for_rows(B, H, [&](int64_t b) {
        T* gb = g + b * H;
        T* hb = h_next + b * R;
        if (!s.active(t, b)) {
          std::fill(gb, gb + H, T(0));
          std::memcpy(hb, h_prev + b * R, size_t(R) * sizeof(T));
          return;
        }
        if (relu) {
#pragma omp simd
          for (int64_t j = 0; j < H; ++j) gb[j] = hb[j] = std::max(gb[j], T(0));
        } else {
#pragma omp simd
          for (int64_t j = 0; j < H; ++j) gb[j] = hb[j] = act::tanh(gb[j]);
        }
      });
    } else if (gru && !gru_before) {
      rec(h_prev, hp);
      for_rows(B, GH, [&](int64_t b) {
        T* gb = g + b * GH;
        T* ab = aux + b * H;
        T* hb = h_next + b * R;
        const T* hpb = hp + b * GH;
        const T* hprev_b = h_prev + b * R;
        if (!s.active(t, b)) {
          std::fill(gb, gb + GH, T(0));
          std::fill(ab, ab + H, T(0));
          std::memcpy(hb, hprev_b, size_t(R) * sizeof(T));
          return;
        }
#pragma omp simd
        for (int64_t j = 0; j < H; ++j) {
          const T r = sigmoid(gb[j] + hpb[j]);
          const T z = sigmoid(gb[H + j] + hpb[H + j]);
          const T a = hpb[2 * H + j] + b_hn[j];
          const T n = act::tanh(gb[2 * H + j] + r * a);
          gb[j] = r;
          gb[H + j] = z;
          gb[2 * H + j] = n;
          ab[j] = a;
          hb[j] = (T(1) - z) * n + z * hprev_b[j];
        }
      });
    } else if (gru_before) {
      // r and z from h_prev, then the candidate's product from r * h_prev.
      rec(h_prev, hp);
      for_rows(B, GH, [&](int64_t b) {
        T* gb = g + b * GH;
        const T* hpb = hp + b * GH;
#pragma omp simd
        for (int64_t j = 0; j < 2 * H; ++j) gb[j] = sigmoid(gb[j] + hpb[j]);
#pragma omp simd
        for (int64_t j = 0; j < H; ++j) aux[b * H + j] = gb[j] * h_prev[b * R + j];
      });
      (*rec2)(aux, g + 2 * H);
      for_rows(B, GH, [&](int64_t b) {
        T* gb = g + b * GH;
        T* hb = h_next + b * R;
        const T* hprev_b = h_prev + b * R;
        if (!s.active(t, b)) {
          std::fill(gb, gb + GH, T(0));
          std::fill(aux + b * H, aux + (b + 1) * H, T(0));
          std::memcpy(hb, hprev_b, size_t(R) * sizeof(T));
          return;
        }
#pragma omp simd
        for (int64_t j = 0; j < H; ++j) {
          const T z = gb[H + j];
          const T n = act::tanh(gb[2 * H + j]);
          gb[2 * H + j] = n;
          hb[j] = (T(1) - z) * n + z * hprev_b[j];
        }
      });
    } else {  // LSTM
      rec(h_prev, g);
      const T* c_prev = cache.c.ptr() + s.prev_slot(t) * B * H;  // [B, H]
      T* c_next = cache.c.ptr() + s.next_slot(t) * B * H;        // [B, H]
      const T* wci = peep ? p.w_peep.ptr() : zeros;
      const T* wcf = peep ? p.w_peep.ptr() + H : zeros;
      const T* wco = peep ? p.w_peep.ptr() + 2 * H : zeros;
      // Without projection h~ = o * tanh(c) is the state itself; with it, h~ goes to aux and
      // the projection below makes the state.
      T* htil = proj ? aux : h_next;
      const int64_t ld_htil = proj ? H : R;
      for_rows(B, GH, [&](int64_t b) {
        T* gb = g + b * GH;
        const T* cp = c_prev + b * H;
        T* cn_b = c_next + b * H;
        T* hb = htil + b * ld_htil;
        if (!s.active(t, b)) {
          std::fill(gb, gb + GH, T(0));
          std::memcpy(cn_b, cp, size_t(H) * sizeof(T));
          if (proj) std::fill(hb, hb + H, T(0));
          else std::memcpy(hb, h_prev + b * R, size_t(R) * sizeof(T));
          return;
        }
#pragma omp simd
        for (int64_t j = 0; j < H; ++j) {
          const T i_g = sigmoid(gb[j] + wci[j] * cp[j]);
          const T f_g = sigmoid(gb[H + j] + wcf[j] * cp[j]);
          const T g_g = act::tanh(gb[2 * H + j]);
          const T c = f_g * cp[j] + i_g * g_g;
          const T o_g = sigmoid(gb[3 * H + j] + wco[j] * c);
          gb[j] = i_g;
          gb[H + j] = f_g;
          gb[2 * H + j] = g_g;
          gb[3 * H + j] = o_g;
          cn_b[j] = c;
          hb[j] = o_g * act::tanh(c);
        }
      });
      if (proj) {
        (*rec2)(aux, h_next);
        for (int64_t b = 0; b < B; ++b)
          if (!s.active(t, b)) std::memcpy(h_next + b * R, h_prev + b * R, size_t(R) * sizeof(T));
      }
    }

    // Output of step t: the new state for valid rows, zero past a sequence's end.
    T* yt = y + t * B * ldy;
    for (int64_t b = 0; b < B; ++b) {
      if (s.active(t, b)) std::memcpy(yt + b * ldy, h_next + b * R, size_t(R) * sizeof(T));
      else std::fill(yt + b * ldy, yt + b * ldy + R, T(0));
    }
  }

  const int64_t fin = s.reverse ? 0 : Tn;
  std::memcpy(hn, cache.h.ptr() + fin * B * R, size_t(B * R) * sizeof(T));
  if (lstm) std::memcpy(cn, cache.c.ptr() + fin * B * H, size_t(B * H) * sizeof(T));
}

// Column sums of a [rows, cols] matrix added into out [cols].
template <typename T>
void add_colsum(const T* m, int64_t rows, int64_t cols, int64_t ld, T* out) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) out[c] += m[r * ld + c];
}

// ---------------------------------------------------------------------------------------------
// Backward of one direction, the mirror of scan_forward.
//   x    [T, B, I]      layer input of the forward
//   dy   [T, B, ldy]    gradient of this direction's output columns (strided rows)
//   dhn  [B, R], dcn [B, H]   gradient of the final state (nullptr = zero)
//   dx   [T, B, I]      accumulated (+=), nullptr to skip
//   dh0  [B, R], dc0 [B, H]   gradient of the initial state, overwritten
template <typename T>
void scan_backward(const Scan<T>& s, const T* x, const DirectionCache<T>& cache, const T* dy, int64_t ldy,
                   const T* dhn, const T* dcn, DirectionParams<T>& grad, T* dx, T* dh0, T* dc0, Workspace<T>& work) {
  const int64_t Tn = s.steps, B = s.batch, H = s.H(), R = s.R(), G = s.G(), GH = G * H, I = s.in_size;
  const CellType cell = s.cfg.cell;
  const bool lstm = cell == CellType::lstm, gru = cell == CellType::gru;
  const bool gru_before = gru && s.cfg.gru_reset == GruReset::before;
  const bool proj = lstm && s.cfg.proj_size > 0, peep = lstm && s.cfg.peephole;
  const auto& p = s.p;

  // Pre-activation gradients of every step, input side and (where it differs) hidden side.
  const size_t n_gh = gru && !gru_before ? size_t(Tn * B * GH) : 0, n_proj = proj ? size_t(Tn * B * R) : 0;
  const size_t n_peep = lstm ? size_t(3 * H) : 0;
  work.reserve(size_t(Tn * B * GH) + n_gh + n_proj + size_t(2 * B * R) + size_t(B * H) * (proj + lstm + gru_before) +
               n_peep * size_t(B + 1));
  T* dgx = work.take(size_t(Tn * B * GH));         // [T, B, G*H]
  T* dgh = work.take(n_gh);                        // [T, B, G*H] GRU after: hidden side
  T* dproj = work.take(n_proj);                    // [T, B, P] dLoss/dh (projected)
  T* dh = work.take(size_t(B * R));                // [B, R] to the state entering the step
  T* dht = work.take(size_t(B * R));               // [B, R] at the state leaving the step
  T* dhtil = work.take(proj ? size_t(B * H) : 0);  // [B, H] before the projection
  T* dc = work.take(lstm ? size_t(B * H) : 0);     // [B, H]
  T* daux = work.take(gru_before ? size_t(B * H) : 0);  // [B, H] dLoss/d(r * h)
  // Without peepholes the peephole terms read zeros and write to scratch, so the LSTM loop
  // below has no branches and vectorises.
  T* peep_zeros = work.take(n_peep);
  T* peep_scratch = work.take(n_peep * size_t(B));  // [B, 3 * H]
  std::fill(peep_zeros, peep_zeros + n_peep, T(0));
  if (dhn) std::memcpy(dh, dhn, size_t(B * R) * sizeof(T));
  else std::fill(dh, dh + B * R, T(0));
  if (lstm) {
    if (dcn) std::memcpy(dc, dcn, size_t(B * H) * sizeof(T));
    else std::fill(dc, dc + B * H, T(0));
  }
  T* dwc = peep ? grad.w_peep.ptr() : nullptr;  // [3 * H] peephole gradients i, f, o

  // Backward visits the steps in the opposite order of the forward scan.
  // Its products, as in scan_forward, each [B, n] from gradients GH apart:
  //   rec   RNN, LSTM: dh = dg W_hh;  GRU after: dh += dgh W_hh;  GRU before: dh += dg[:, :2H] W_hh[:2H]
  //   rec2  GRU before: daux = dg[:, 2H:] W_hh[2H:];  LSTM projection: dh~ = dh W_hr
  const RecurrentProduct<T> rec(false, B, R, gru_before ? 2 * H : GH, p.w_hh.ptr(), R, GH, R, gru ? T(1) : T(0));
  std::optional<RecurrentProduct<T>> rec2;
  if (gru_before) rec2.emplace(false, B, H, H, p.w_hh.ptr() + 2 * H * H, H, GH, H, T(0));
  if (proj) rec2.emplace(false, B, H, R, p.w_hr.ptr(), H, R, H, T(0));
  for (int64_t i = 0, t = s.reverse ? 0 : Tn - 1; i < Tn; ++i, t -= s.step_delta()) {
    const T* h_prev = cache.h.ptr() + s.prev_slot(t) * B * R;  // [B, R]
    const T* g = cache.gates.ptr() + t * B * GH;               // [B, G*H]
    const T* dyt = dy + t * B * ldy;                           // [B, ldy]
    T* dg = dgx + t * B * GH;                           // [B, G*H]

    // dht = gradient reaching the state that left step t: from later steps and the output.
    for (int64_t b = 0; b < B; ++b)
      for (int64_t j = 0; j < R; ++j)
        dht[b * R + j] = dh[b * R + j] + (s.active(t, b) ? dyt[b * ldy + j] : T(0));

    if (cell == CellType::rnn_tanh || cell == CellType::rnn_relu) {
      const bool relu = cell == CellType::rnn_relu;
      for_rows(B, H, [&](int64_t b) {
        T* dgb = dg + b * H;
        if (!s.active(t, b)) {
          std::fill(dgb, dgb + H, T(0));
          return;
        }
        for (int64_t j = 0; j < H; ++j) {
          const T hv = g[b * H + j];
          const T d = dht[b * R + j];
          dgb[j] = relu ? (hv > T(0) ? d : T(0)) : d * (T(1) - hv * hv);
        }
      });
      rec(dg, dh);
    } else if (gru) {
      const T* aux = cache.aux.ptr() + t * B * H;  // [B, H]
      T* dgh_t = gru_before ? nullptr : dgh + t * B * GH;
      // dh (to step t-1) starts with the direct path z * dh'; the products are added below.
      for_rows(B, GH, [&](int64_t b) {
        T* dgb = dg + b * GH;
        if (!s.active(t, b)) {
          std::fill(dgb, dgb + GH, T(0));
          if (dgh_t) std::fill(dgh_t + b * GH, dgh_t + (b + 1) * GH, T(0));
          for (int64_t j = 0; j < R; ++j) dh[b * R + j] = dht[b * R + j];
          return;
        }
        for (int64_t j = 0; j < H; ++j) {
          const T r = g[b * GH + j], z = g[b * GH + H + j], n = g[b * GH + 2 * H + j];
          const T d = dht[b * R + j];
          const T dn_pre = d * (T(1) - z) * (T(1) - n * n);
          const T dz_pre = d * (h_prev[b * R + j] - n) * z * (T(1) - z);
          dgb[H + j] = dz_pre;
          dgb[2 * H + j] = dn_pre;
          dh[b * R + j] = d * z;
          if (!gru_before) {
            const T dr_pre = dn_pre * aux[b * H + j] * r * (T(1) - r);
            dgb[j] = dr_pre;
            dgh_t[b * GH + j] = dr_pre;
            dgh_t[b * GH + H + j] = dz_pre;
            dgh_t[b * GH + 2 * H + j] = dn_pre * r;
          }
        }
      });
      if (!gru_before) {
        rec(dgh_t, dh);
      } else {
        // d(r * h) = dn_pre W_hn, then r's gradient and the direct r * d(r * h) path.
        (*rec2)(dg + 2 * H, daux);
        for_rows(B, H, [&](int64_t b) {
          if (!s.active(t, b)) return;
          for (int64_t j = 0; j < H; ++j) {
            const T r = g[b * GH + j];
            const T da = daux[b * H + j];
            dg[b * GH + j] = da * h_prev[b * R + j] * r * (T(1) - r);
            dh[b * R + j] += da * r;
          }
        });
        rec(dg, dh);
      }
    } else {  // LSTM
      const T* c_prev = cache.c.ptr() + s.prev_slot(t) * B * H;  // [B, H]
      const T* c_next = cache.c.ptr() + s.next_slot(t) * B * H;  // [B, H]
      const T* wci = peep ? p.w_peep.ptr() : peep_zeros;
      const T* wcf = wci + H;
      const T* wco = wci + 2 * H;
      const T* dhtil_p = dht;
      int64_t ld_dhtil = R;
      if (proj) {
        T* dp = dproj + t * B * R;
        for (int64_t b = 0; b < B; ++b)
          for (int64_t j = 0; j < R; ++j) dp[b * R + j] = s.active(t, b) ? dht[b * R + j] : T(0);
        (*rec2)(dht, dhtil);
        dhtil_p = dhtil;
        ld_dhtil = H;
      }
      // Peephole gradients are sums over the rows: then the rows stay on one thread, in order.
      for_rows(B, peep ? 0 : GH, [&](int64_t b) {
        T* dgb = dg + b * GH;
        if (!s.active(t, b)) {
          std::fill(dgb, dgb + GH, T(0));
          return;  // dc passes through unchanged
        }
        const T* gb = g + b * GH;
        const T* dhb = dhtil_p + b * ld_dhtil;
        T* dcb = dc + b * H;
        const T* cnb = c_next + b * H;
        const T* cpb = c_prev + b * H;
        T* dwci = peep ? dwc : peep_scratch + b * 3 * H;  // without peepholes a row's own scratch
        T* dwcf = dwci + H;
        T* dwco = dwci + 2 * H;
#pragma omp simd
        for (int64_t j = 0; j < H; ++j) {
          const T i_g = gb[j], f_g = gb[H + j], g_g = gb[2 * H + j], o_g = gb[3 * H + j];
          const T c = cnb[j], cp = cpb[j];
          const T tc = act::tanh(c);
          const T d = dhb[j];
          const T do_pre = d * tc * o_g * (T(1) - o_g);
          const T dcv = dcb[j] + d * o_g * (T(1) - tc * tc) + do_pre * wco[j];
          const T di_pre = dcv * g_g * i_g * (T(1) - i_g);
          const T df_pre = dcv * cp * f_g * (T(1) - f_g);
          const T dg_pre = dcv * i_g * (T(1) - g_g * g_g);
          dwci[j] += di_pre * cp;
          dwcf[j] += df_pre * cp;
          dwco[j] += do_pre * c;
          dcb[j] = dcv * f_g + di_pre * wci[j] + df_pre * wcf[j];
          dgb[j] = di_pre;
          dgb[H + j] = df_pre;
          dgb[2 * H + j] = dg_pre;
          dgb[3 * H + j] = do_pre;
        }
      });
      rec(dg, dh);
    }

    // Rows past their length: the gradient passes to the earlier state unchanged.
    if (cell != CellType::gru)
      for (int64_t b = 0; b < B; ++b)
        if (!s.active(t, b)) std::memcpy(dh + b * R, dht + b * R, size_t(R) * sizeof(T));
  }

  // 3. Weight gradients over all steps at once. Rows of inactive steps are zero in dgx/dgh.
  const int64_t TB = Tn * B;
  const T* hprev_all = cache.h.ptr() + (s.reverse ? B * R : 0);  // [T, B, R] state entering step t
  blas::gemm(true, false, GH, I, TB, T(1), dgx, GH, x, I, T(1), grad.w_ih.ptr(), I);
  if (gru && !gru_before) {
    blas::gemm(true, false, GH, R, TB, T(1), dgh, GH, hprev_all, R, T(1), grad.w_hh.ptr(), R);
  } else if (gru_before) {
    blas::gemm(true, false, 2 * H, R, TB, T(1), dgx, GH, hprev_all, R, T(1), grad.w_hh.ptr(), R);
    blas::gemm(true, false, H, H, TB, T(1), dgx + 2 * H, GH, cache.aux.ptr(), H, T(1),
               grad.w_hh.ptr() + 2 * H * H, H);
  } else {
    blas::gemm(true, false, GH, R, TB, T(1), dgx, GH, hprev_all, R, T(1), grad.w_hh.ptr(), R);
  }
  if (s.cfg.bias) {
    add_colsum(dgx, TB, GH, GH, grad.b_ih.ptr());
    add_colsum(gru && !gru_before ? dgh : dgx, TB, GH, GH, grad.b_hh.ptr());
  }
  if (proj) blas::gemm(true, false, R, H, TB, T(1), dproj, R, cache.aux.ptr(), H, T(1), grad.w_hr.ptr(), H);
  if (dx) blas::gemm(false, false, TB, I, GH, T(1), dgx, GH, p.w_ih.ptr(), I, T(1), dx, I);
  if (dh0) std::memcpy(dh0, dh, size_t(B * R) * sizeof(T));
  if (dc0 && lstm) std::memcpy(dc0, dc, size_t(B * H) * sizeof(T));
}

template <typename T>
void init_direction(const RnnConfig& cfg, int64_t layer, DirectionParams<T>& p) {
  const int64_t H = cfg.hidden_size, GH = cfg.gates() * H, R = cfg.state_size();
  p.w_ih = Tensor<T>({GH, cfg.layer_input_size(layer)});
  p.w_hh = Tensor<T>({GH, R});
  if (cfg.bias) {
    p.b_ih = Tensor<T>({GH});
    p.b_hh = Tensor<T>({GH});
  }
  if (cfg.proj_size > 0) p.w_hr = Tensor<T>({cfg.proj_size, H});
  if (cfg.peephole) p.w_peep = Tensor<T>({3, H});
}

void check_state(std::string_view what, const Shape& got, const Shape& expected) {
  if (!got.empty() && shape_numel(got) != 0) check_shape(what, got, expected);
}

// The path that runs a forward: `automatic` resolved, an impossible `onednn` an error.
template <typename T>
RnnBackend choose_backend(const RnnConfig& cfg, RnnBackend requested, int64_t steps, int64_t batch,
                          const std::vector<int64_t>& lengths) {
  if (requested == RnnBackend::reference) return RnnBackend::reference;
  if (requested == RnnBackend::automatic && !detail::onednn_pays_off(cfg, steps, batch)) return RnnBackend::reference;
  const std::string why = rnn_onednn_unsupported<T>(cfg, steps, lengths);
  if (why.empty()) return RnnBackend::onednn;
  if (requested == RnnBackend::onednn) throw Error("rnn_forward: RnnBackend::onednn cannot run this call: " + why);
  return RnnBackend::reference;
}

}  // namespace

bool rnn_onednn_available() { return detail::onednn_built(); }

template <typename T>
std::string rnn_onednn_unsupported(const RnnConfig& cfg, int64_t steps, const std::vector<int64_t>& lengths) {
  if constexpr (!std::is_same_v<T, float>) {
    (void)cfg, (void)steps, (void)lengths;
    return "oneDNN's RNN primitives compute in float, and this call is double";
  } else {
    return detail::onednn_unsupported(cfg, steps, lengths);
  }
}

template <typename T>
std::string rnn_bf16_unsupported(const RnnConfig& cfg, int64_t steps, const std::vector<int64_t>& lengths) {
  const std::string why = rnn_onednn_unsupported<T>(cfg, steps, lengths);
  if (!why.empty()) return "bf16 runs on oneDNN's primitives, and " + why;
  if (!cpu_has_bf16()) return "this processor has no AVX512-BF16 (or RECUR_ISA=avx2 says so)";
  if (cfg.peephole || cfg.proj_size > 0) return "oneDNN has no bf16 LSTM with peepholes or a projection";
  return "";
}

// ---------------------------------------------------------------------------------------------

template <typename T>
RnnParams<T> rnn_init_params(const RnnConfig& cfg, Rng& rng) {
  return rnn_init_params_uniform<T>(cfg, rng, 1.0 / std::sqrt(double(cfg.hidden_size)));
}

template <typename T>
RnnParams<T> rnn_init_params_uniform(const RnnConfig& cfg, Rng& rng, double scale) {
  cfg.validate();
  RnnParams<T> params;
  params.dirs.resize(size_t(cfg.num_layers * cfg.directions()));
  for (int64_t l = 0; l < cfg.num_layers; ++l)
    for (int64_t d = 0; d < cfg.directions(); ++d) init_direction(cfg, l, params.dirs[size_t(l * cfg.directions() + d)]);
  rnn_for_each_param(cfg, params.dirs, [&](const std::string&, Tensor<T>& t) {
    for (auto& v : t.data) v = T(rng.uniform(-scale, scale));
  });
  return params;
}

template <typename T>
void rnn_set_forget_bias(const RnnConfig& cfg, RnnParams<T>& params, double value) {
  if (cfg.cell != CellType::lstm || !cfg.bias) return;
  const int64_t H = cfg.hidden_size;
  for (auto& d : params.dirs)
    for (int64_t j = H; j < 2 * H; ++j) {
      d.b_ih.data[size_t(j)] = T(value);
      d.b_hh.data[size_t(j)] = T(0);
    }
}

template <typename T>
RnnGrads<T> rnn_zero_grads(const RnnConfig& cfg) {
  cfg.validate();
  RnnGrads<T> grads;
  grads.dirs.resize(size_t(cfg.num_layers * cfg.directions()));
  for (int64_t l = 0; l < cfg.num_layers; ++l)
    for (int64_t d = 0; d < cfg.directions(); ++d) init_direction(cfg, l, grads.dirs[size_t(l * cfg.directions() + d)]);
  return grads;
}

template <typename T>
void RnnGrads<T>::zero() {
  for (auto& d : dirs)
    for (Tensor<T>* t : {&d.w_ih, &d.w_hh, &d.b_ih, &d.b_hh, &d.w_hr, &d.w_peep}) t->zero();
}

template <typename T>
RnnState<T> rnn_zero_state(const RnnConfig& cfg, int64_t batch) {
  RnnState<T> s;
  const int64_t LD = cfg.num_layers * cfg.directions();
  s.h = Tensor<T>({LD, batch, cfg.state_size()});
  if (cfg.has_cell_state()) s.c = Tensor<T>({LD, batch, cfg.hidden_size});
  return s;
}

template <typename T>
void rnn_check_params(const RnnConfig& cfg, const RnnParams<T>& params) {
  cfg.validate();
  const int64_t LD = cfg.num_layers * cfg.directions();
  if (int64_t(params.dirs.size()) != LD)
    throw ShapeError("rnn params: expected " + std::to_string(LD) + " layer-directions (layers x directions), got " +
                     std::to_string(params.dirs.size()));
  // Compared field by field rather than against a freshly built RnnGrads: this runs on every
  // forward, including one-token generation, and must not allocate.
  const int64_t GH = cfg.gates() * cfg.hidden_size, R = cfg.state_size(), H = cfg.hidden_size;
  for (int64_t l = 0; l < cfg.num_layers; ++l)
    for (int64_t d = 0; d < cfg.directions(); ++d) {
      const DirectionParams<T>& p = params.dirs[size_t(l * cfg.directions() + d)];
      auto check = [&](std::string_view kind, const Tensor<T>& t, const Shape& want) {
        if (t.shape != want) check_shape("rnn parameter " + rnn_param_name(kind, l, d), t.shape, want);
      };
      check("weight_ih", p.w_ih, {GH, cfg.layer_input_size(l)});
      check("weight_hh", p.w_hh, {GH, R});
      if (cfg.bias) {
        check("bias_ih", p.b_ih, {GH});
        check("bias_hh", p.b_hh, {GH});
      }
      if (cfg.proj_size > 0) check("weight_hr", p.w_hr, {cfg.proj_size, H});
      if (cfg.peephole) check("weight_peep", p.w_peep, {3, H});
    }
}

namespace {

// Runs f(0), ..., f(D - 1), the directions of a layer: the two of a bidirectional layer at once
// when the pool has two threads or more. Each direction then runs on one thread, its products
// (blas.h) in the same tiles and oneDNN's primitive on the same data as on one thread, so the
// bits do not depend on the thread count; each has its own scratch (Workspace, oneDNN's
// scratchpad and stream), and nothing both write overlaps.
template <typename F>
void for_directions(int64_t D, F&& f) {
  if (D != 2 || omp_get_max_threads() < 2 || omp_in_parallel()) {
    for (int64_t d = 0; d < D; ++d) f(d);
    return;
  }
  std::exception_ptr failed[2];
#pragma omp parallel for num_threads(2) schedule(static, 1)
  for (int64_t d = 0; d < 2; ++d) {
    try {
      f(d);
    } catch (...) {  // an exception may not leave an OpenMP region
      failed[d] = std::current_exception();
    }
  }
  for (const std::exception_ptr& e : failed)
    if (e) std::rethrow_exception(e);
}

}  // namespace

template <typename T>
void rnn_forward(const RnnConfig& cfg, const RnnParams<T>& params, const Tensor<T>& input,
                 const std::vector<int64_t>& lengths, const RnnState<T>& state0, const ForwardOptions& opts,
                 Tensor<T>& output, RnnState<T>& state_n, RnnCache<T>& cache) {
  rnn_check_params(cfg, params);
  if (input.rank() != 3 || input.dim(2) != cfg.input_size || input.dim(0) < 1 || input.dim(1) < 1)
    throw ShapeError("rnn input: expected shape [T, B, " + std::to_string(cfg.input_size) + "] with T, B >= 1, got " +
                     shape_str(input.shape));
  const int64_t Tn = input.dim(0), B = input.dim(1), D = cfg.directions(), R = cfg.state_size(), H = cfg.hidden_size;
  const int64_t L = cfg.num_layers, DR = D * R;
  if (!lengths.empty()) {
    if (int64_t(lengths.size()) != B)
      throw ShapeError("rnn lengths: expected " + std::to_string(B) + " entries (one per sequence), got " +
                       std::to_string(lengths.size()));
    for (size_t b = 0; b < lengths.size(); ++b)
      if (lengths[b] < 1 || lengths[b] > Tn)
        throw ShapeError("rnn lengths[" + std::to_string(b) + "] = " + std::to_string(lengths[b]) +
                         ": expected 1 <= length <= T = " + std::to_string(Tn));
  }
  check_state("rnn initial state h", state0.h.shape, {L * D, B, R});
  if (cfg.has_cell_state()) check_state("rnn initial state c", state0.c.shape, {L * D, B, H});
  const double p_drop = opts.training ? cfg.dropout : 0.0;
  if (p_drop > 0 && !opts.rng) throw Error("rnn_forward: training with dropout needs ForwardOptions::rng");
  // bf16 takes oneDNN's bf16 primitives wherever they apply, whatever their crossover.
  const bool bf16 = opts.precision == Precision::bf16 && rnn_bf16_unsupported<T>(cfg, Tn, lengths).empty() &&
                    opts.backend != RnnBackend::reference;
  const RnnBackend backend = bf16 ? RnnBackend::onednn : choose_backend<T>(cfg, opts.backend, Tn, B, lengths);

  cache.backend = backend;
  cache.bf16 = bf16;
  cache.steps = Tn;
  cache.batch = B;
  cache.lengths = lengths.empty() ? std::vector<int64_t>(size_t(B), Tn) : lengths;
  cache.dirs.resize(size_t(L * D));
  cache.layer_outputs.resize(size_t(L - 1));
  cache.dropout_masks.resize(p_drop > 0 ? size_t(L - 1) : 0);
  output.resize({Tn, B, DR});
  // resize, not reassign: a caller that keeps state_n between calls allocates nothing.
  state_n.h.resize({L * D, B, R});
  if (cfg.has_cell_state()) state_n.c.resize({L * D, B, H});
  else state_n.c = Tensor<T>();
  const T* zeros = nullptr;  // [B, max(R, H)] initial state when none is given
  if (state0.h.empty() || (cfg.has_cell_state() && state0.c.empty())) {
    cache.zero_state.resize({B * std::max(R, H)});
    cache.zero_state.zero();
    zeros = cache.zero_state.ptr();
  }

  for (int64_t l = 0; l < L; ++l) {
    const Tensor<T>& x = l == 0 ? input : cache.layer_outputs[size_t(l - 1)];
    Tensor<T>& y = l == L - 1 ? output : cache.layer_outputs[size_t(l)];
    if (l < L - 1) y.resize({Tn, B, DR});
    if (backend == RnnBackend::onednn) detail::onednn_prepare(cache.onednn, L * D);
    for_directions(D, [&](int64_t d) {
      const int64_t k = l * D + d;
      Scan<T> s{cfg, params.dirs[size_t(k)], Tn, B, cfg.layer_input_size(l), cache.lengths.data(), d == 1};
      const T* h0 = state0.h.empty() ? zeros : state0.h.ptr() + k * B * R;
      const T* c0 = state0.c.empty() ? zeros : state0.c.ptr() + k * B * H;
      T* hn = state_n.h.ptr() + k * B * R;
      T* cn = cfg.has_cell_state() ? state_n.c.ptr() + k * B * H : nullptr;
      if constexpr (std::is_same_v<T, float>) {
        if (backend == RnnBackend::onednn) {
          // oneDNN keeps its step record in its workspace; an empty record cannot be misread
          // as this forward's (rnn_step_record recomputes it).
          cache.dirs[size_t(k)] = DirectionCache<T>();
          detail::onednn_forward(cache.onednn, L * D, {cfg, s.p, k, Tn, B, s.in_size, s.reverse, opts.training, bf16},
                                 x.ptr(), h0, c0, y.ptr() + d * R, DR, hn, cn);
          return;
        }
      }
      scan_forward(s, x.ptr(), h0, c0, y.ptr() + d * R, DR, hn, cn, cache.dirs[size_t(k)],
                   d == 1 ? cache.work_reverse : cache.work);
    });
    if (l < L - 1 && p_drop > 0) {
      dropout_forward_in_place(y, cache.dropout_masks[size_t(l)], p_drop, *opts.rng);  // dropout.h
    }
  }
}

template <typename T>
void rnn_backward(const RnnConfig& cfg, const RnnParams<T>& params, const Tensor<T>& input,
                  RnnCache<T>& cache, const Tensor<T>& grad_output, const RnnState<T>& grad_state_n,
                  RnnGrads<T>& grads, std::type_identity_t<Tensor<T>>* grad_input,
                  std::type_identity_t<RnnState<T>>* grad_state0) {
  const int64_t Tn = cache.steps, B = cache.batch, D = cfg.directions(), R = cfg.state_size(), H = cfg.hidden_size;
  const int64_t L = cfg.num_layers, DR = D * R;
  if (int64_t(cache.dirs.size()) != L * D || Tn == 0)
    throw Error("rnn_backward: the cache does not hold a forward pass of this configuration");
  check_shape("rnn_backward input", input.shape, {Tn, B, cfg.input_size});
  check_shape("rnn_backward grad_output", grad_output.shape, {Tn, B, DR});
  check_state("rnn_backward grad_state_n.h", grad_state_n.h.shape, {L * D, B, R});
  if (cfg.has_cell_state()) check_state("rnn_backward grad_state_n.c", grad_state_n.c.shape, {L * D, B, H});
  if (int64_t(grads.dirs.size()) != L * D)
    throw ShapeError("rnn_backward grads: expected " + std::to_string(L * D) + " layer-directions, got " +
                     std::to_string(grads.dirs.size()) + " (make them with rnn_zero_grads)");
  if (grad_state0) {  // every slice is overwritten below
    grad_state0->h.resize({L * D, B, R});
    if (cfg.has_cell_state()) grad_state0->c.resize({L * D, B, H});
    else grad_state0->c = Tensor<T>();
  }

  // dy: gradient w.r.t. the current layer's output; dx: w.r.t. its input (the layer below's
  // output after dropout).
  Tensor<T>* dy_buf = &cache.grad_between[0];
  Tensor<T>* dx_buf = &cache.grad_between[1];
  const Tensor<T>* dy = &grad_output;
  for (int64_t l = L - 1; l >= 0; --l) {
    const Tensor<T>& x = l == 0 ? input : cache.layer_outputs[size_t(l - 1)];
    const int64_t I = cfg.layer_input_size(l);
    T* dx = nullptr;
    if (l > 0) {
      dx_buf->resize({Tn, B, I});
      dx_buf->zero();
      dx = dx_buf->ptr();
    } else if (grad_input) {
      grad_input->resize({Tn, B, I});
      grad_input->zero();
      dx = grad_input->ptr();
    }
    // The reverse direction's part of dx goes into its own buffer, added after both (in this
    // order on any thread count): dx = forward part + reverse part.
    T* dx_reverse = nullptr;
    if (dx && D == 2) {
      cache.grad_input_reverse.resize({Tn, B, I});
      cache.grad_input_reverse.zero();
      dx_reverse = cache.grad_input_reverse.ptr();
    }
    for_directions(D, [&](int64_t d) {
      const int64_t k = l * D + d;
      T* dx_d = d == 1 ? dx_reverse : dx;
      Scan<T> s{cfg, params.dirs[size_t(k)], Tn, B, I, cache.lengths.data(), d == 1};
      const T* dhn = grad_state_n.h.empty() ? nullptr : grad_state_n.h.ptr() + k * B * R;
      const T* dcn = grad_state_n.c.empty() ? nullptr : grad_state_n.c.ptr() + k * B * H;
      T* dh0 = grad_state0 ? grad_state0->h.ptr() + k * B * R : nullptr;
      T* dc0 = grad_state0 && cfg.has_cell_state() ? grad_state0->c.ptr() + k * B * H : nullptr;
      if constexpr (std::is_same_v<T, float>) {
        if (cache.backend == RnnBackend::onednn) {
          detail::onednn_backward(*cache.onednn, {cfg, s.p, k, Tn, B, I, s.reverse, true, cache.bf16}, x.ptr(), dy->ptr() + d * R,
                                  DR, dhn, dcn, grads.dirs[size_t(k)], dx_d, dh0, dc0);
          return;
        }
      }
      scan_backward(s, x.ptr(), cache.dirs[size_t(k)], dy->ptr() + d * R, DR, dhn, dcn, grads.dirs[size_t(k)], dx_d,
                    dh0, dc0, d == 1 ? cache.work_reverse : cache.work);
    });
    if (dx_reverse) {
      const int64_t n = Tn * B * I;
#pragma omp simd
      for (int64_t e = 0; e < n; ++e) dx[e] += dx_reverse[e];
    }
    if (l > 0) {
      if (!cache.dropout_masks.empty()) {
        dropout_backward_in_place(*dx_buf, cache.dropout_masks[size_t(l - 1)]);
      }
      std::swap(dy_buf, dx_buf);
      dy = dy_buf;
    }
  }
}

template <typename T>
const std::vector<DirectionCache<T>>& rnn_step_record(const RnnConfig& cfg, const RnnParams<T>& params,
                                                      const Tensor<T>& input, const RnnCache<T>& cache,
                                                      std::vector<DirectionCache<T>>& scratch) {
  if (cache.backend != RnnBackend::onednn) return cache.dirs;
  const int64_t Tn = cache.steps, B = cache.batch, D = cfg.directions(), R = cfg.state_size(), H = cfg.hidden_size;
  const int64_t L = cfg.num_layers, DR = D * R;
  if (!cache.onednn || int64_t(cache.dirs.size()) != L * D || Tn == 0)
    throw Error("rnn_step_record: the cache does not hold a forward pass of this configuration");
  check_shape("rnn_step_record input", input.shape, {Tn, B, cfg.input_size});
  rnn_check_params(cfg, params);
  if constexpr (std::is_same_v<T, float>) {
    scratch.resize(size_t(L * D));
    Workspace<T> work;
    Tensor<T> y({Tn, B, DR}), hn({B, R}), cn({B, H});  // recomputed outputs, dropped
    for (int64_t l = 0; l < L; ++l)
      for (int64_t d = 0; d < D; ++d) {
        const int64_t k = l * D + d;
        // The next layer's input is the cached one (oneDNN's output after dropout), as in backward.
        const Tensor<T>& x = l == 0 ? input : cache.layer_outputs[size_t(l - 1)];
        Scan<T> s{cfg, params.dirs[size_t(k)], Tn, B, cfg.layer_input_size(l), cache.lengths.data(), d == 1};
        const float *h0 = nullptr, *c0 = nullptr;
        detail::onednn_initial_state(*cache.onednn, k, &h0, &c0);
        scan_forward(s, x.ptr(), h0, c0, y.ptr() + d * R, DR, hn.ptr(), cn.ptr(), scratch[size_t(k)], work);
      }
  }
  return scratch;
}

#define RECUR_INSTANTIATE(T)                                                                                       \
  template RnnParams<T> rnn_init_params<T>(const RnnConfig&, Rng&);                                               \
  template RnnParams<T> rnn_init_params_uniform<T>(const RnnConfig&, Rng&, double);                               \
  template void rnn_set_forget_bias<T>(const RnnConfig&, RnnParams<T>&, double);                                  \
  template RnnGrads<T> rnn_zero_grads<T>(const RnnConfig&);                                                        \
  template struct RnnGrads<T>;                                                                                     \
  template RnnState<T> rnn_zero_state<T>(const RnnConfig&, int64_t);                                               \
  template void rnn_check_params<T>(const RnnConfig&, const RnnParams<T>&);                                        \
  template void rnn_forward<T>(const RnnConfig&, const RnnParams<T>&, const Tensor<T>&, const std::vector<int64_t>&, \
                               const RnnState<T>&, const ForwardOptions&, Tensor<T>&, RnnState<T>&, RnnCache<T>&); \
  template void rnn_backward<T>(const RnnConfig&, const RnnParams<T>&, const Tensor<T>&, RnnCache<T>&,       \
                                const Tensor<T>&, const RnnState<T>&, RnnGrads<T>&, Tensor<T>*, RnnState<T>*); \
  template std::string rnn_onednn_unsupported<T>(const RnnConfig&, int64_t, const std::vector<int64_t>&);          \
  template std::string rnn_bf16_unsupported<T>(const RnnConfig&, int64_t, const std::vector<int64_t>&);            \
  template const std::vector<DirectionCache<T>>& rnn_step_record<T>(                                               \
      const RnnConfig&, const RnnParams<T>&, const Tensor<T>&, const RnnCache<T>&, std::vector<DirectionCache<T>>&);
RECUR_INSTANTIATE(float)
RECUR_INSTANTIATE(double)
#undef RECUR_INSTANTIATE

}  // namespace recur
