// The generation stepper: see lm_stepper.h. Per layer and direction one step is
//   g [B, G*H] = input side (table row, W_ih column, or x W_ih^T) + folded biases
//   recurrent product(s) with W_hh, then the cell's element-wise kernel (cell_kernels.h),
// exactly the reference path's scan_forward for T = 1 without its caches.
#include "recur/model/lm_stepper.h"

#include <algorithm>
#include <cstring>

#include <omp.h>
#include <string>

#include "blas.h"
#include "cell_kernels.h"
#include "recur/core/error.h"

namespace recur {

namespace {

// y[B, N] = beta * y + x[B, K] W[N, K]^T, rows of y ldy apart. At B = 1 this is a matrix-vector
// product, which OpenBLAS runs on one thread however many it has: with several threads the rows
// of W are split among them (each output is still one dot product, so the result does not
// depend on the thread count), once W is large enough to pay for the fork (4 MiB per layer of
// a 2x512 LSTM; a 1x128 model's 256 KiB stays on one thread).
template <typename T>
void product(int64_t B, int64_t N, int64_t K, const T* x, const T* W, T beta, T* y, int64_t ldy) {
  const int threads = omp_get_max_threads();
  if (B != 1 || threads < 2 || N * K < (int64_t(1) << 18) || N < 64) {
    blas::gemm(false, true, B, N, K, T(1), x, K, W, K, beta, y, ldy);
    return;
  }
#pragma omp parallel num_threads(threads)
  {
    const int64_t t = omp_get_thread_num(), n = omp_get_num_threads();
    const int64_t lo = (N * t / n) & ~int64_t(15), hi = t + 1 == n ? N : (N * (t + 1) / n) & ~int64_t(15);
    if (hi > lo) blas::gemm(false, true, 1, hi - lo, K, T(1), x, K, W + lo * K, K, beta, y + lo, N);
  }
}

// Layer 0's per-token table is built when it stays this small (a char-level model's is well
// under 1 MiB; a 10k-word model's would be tens of MiB and cost more to build than it saves).
constexpr size_t kMaxTableBytes = size_t(4) << 20;

}  // namespace

template <typename T>
LmStepper<T>::LmStepper(const LmConfig& cfg, const ModelParams<T>& model) : cfg_(cfg) {
  // The graph's parameters, found by the LM graph's layer names (lm.h).
  const ModelSpec spec = lm_model_spec(cfg_);
  model_check_params(spec, model);
  if (cfg_.embed_size > 0) encoder_ = &model.layers[size_t(spec.layer_index("encoder"))].weight;
  rnn_ = &model.layers[size_t(spec.layer_index("rnn"))].rnn;
  const LayerParams<T>& dec = model.layers[size_t(spec.layer_index("decoder"))];
  decoder_w_ = &dec.weight;
  decoder_b_ = &dec.bias;
  const RnnParams<T>& params = *rnn_;
  const RnnConfig& r = cfg_.rnn;
  const int64_t H = r.hidden_size, GH = r.gates() * H, V = cfg_.vocab_size, E = cfg_.embed_size;
  const bool gru_after = r.cell == CellType::gru && r.gru_reset == GruReset::after;
  zeros_ = Tensor<T>({std::max<int64_t>(3 * H, GH)});
  bias_.resize(params.dirs.size());
  for (size_t k = 0; k < bias_.size(); ++k) {
    bias_[k] = Tensor<T>({GH});
    if (!r.bias) continue;
    const auto& p = params.dirs[k];
    for (int64_t j = 0; j < GH; ++j)
      bias_[k].data[size_t(j)] = p.b_ih.data[size_t(j)] + (gru_after && j >= 2 * H ? T(0) : p.b_hh.data[size_t(j)]);
  }
  if (E > 0 && r.directions() == 1 && size_t(V * GH) * sizeof(T) <= kMaxTableBytes) {
    table_ = Tensor<T>({V, GH});
    for (int64_t v = 0; v < V; ++v) std::memcpy(table_.ptr() + v * GH, bias_[0].ptr(), size_t(GH) * sizeof(T));
    blas::gemm(false, true, V, GH, E, T(1), encoder_->ptr(), E, params.dirs[0].w_ih.ptr(), E, T(1),
               table_.ptr(), GH);
  }
}

template <typename T>
void LmStepper<T>::step(std::span<const int32_t> ids, RnnState<T>& state, Tensor<T>& logits) {
  const RnnConfig& r = cfg_.rnn;
  const int64_t B = int64_t(ids.size()), L = r.num_layers, D = r.directions(), H = r.hidden_size, R = r.state_size();
  const int64_t G = r.gates(), GH = G * H, DR = D * R, V = cfg_.vocab_size, E = cfg_.embed_size;
  if (B < 1) throw ShapeError("LmStepper::step: expected at least one id");
  for (int64_t b = 0; b < B; ++b)
    if (ids[size_t(b)] < 0 || ids[size_t(b)] >= V)
      throw Error("lm input: token id " + std::to_string(ids[size_t(b)]) + " at position " + std::to_string(b) +
                  " is outside the vocabulary [0, " + std::to_string(V) + ")");
  const bool lstm = r.cell == CellType::lstm, gru = r.cell == CellType::gru;
  if (state.h.empty()) {
    state.h.resize({L * D, B, R});
    state.h.zero();
  }
  if (lstm && state.c.empty()) {
    state.c.resize({L * D, B, H});
    state.c.zero();
  }
  check_shape("LmStepper state h", state.h.shape, {L * D, B, R});
  if (lstm) check_shape("LmStepper state c", state.c.shape, {L * D, B, H});

  g_.resize({B, GH});
  hp_.resize({B, GH});
  h_til_.resize({B, H});
  c_next_.resize({B, H});
  rh_.resize({B, H});
  if (E > 0 && table_.empty()) {  // embedding rows [B, E]: layer 0's input
    x_.resize({B, E});
    for (int64_t b = 0; b < B; ++b)
      std::memcpy(x_.ptr() + b * E, encoder_->ptr() + int64_t(ids[size_t(b)]) * E, size_t(E) * sizeof(T));
  }

  for (int64_t l = 0; l < L; ++l) {
    const int64_t I = r.layer_input_size(l);
    y_.resize({B, DR});
    for (int64_t d = 0; d < D; ++d) {
      const int64_t k = l * D + d;
      const DirectionParams<T>& p = rnn_->dirs[size_t(k)];
      T* g = g_.ptr();  // [B, G*H]
      // Input side.
      if (l == 0 && !table_.empty()) {
        for (int64_t b = 0; b < B; ++b)
          std::memcpy(g + b * GH, table_.ptr() + int64_t(ids[size_t(b)]) * GH, size_t(GH) * sizeof(T));
      } else if (l == 0 && E == 0) {  // one-hot: column ids[b] of W_ih [G*H, V]
        for (int64_t b = 0; b < B; ++b) {
          const T* col = p.w_ih.ptr() + ids[size_t(b)];
          const T* bias = bias_[size_t(k)].ptr();
          for (int64_t j = 0; j < GH; ++j) g[b * GH + j] = bias[j] + col[j * V];
        }
      } else {
        for (int64_t b = 0; b < B; ++b) std::memcpy(g + b * GH, bias_[size_t(k)].ptr(), size_t(GH) * sizeof(T));
        product(B, GH, I, x_.ptr(), p.w_ih.ptr(), T(1), g, GH);
      }

      T* h = state.h.ptr() + k * B * R;                 // [B, R] h_prev in, h_next out
      T* c = lstm ? state.c.ptr() + k * B * H : nullptr;  // [B, H]
      T* h_new = h_til_.ptr();                          // [B, H] (R = H except LSTMP)
      if (r.cell == CellType::rnn_tanh || r.cell == CellType::rnn_relu) {
        product(B, H, R, h, p.w_hh.ptr(), T(1), g, GH);
        for (int64_t b = 0; b < B; ++b) kernels::rnn_row(H, r.cell == CellType::rnn_relu, g + b * GH, h_new + b * H);
      } else if (gru && r.gru_reset == GruReset::after) {
        product(B, GH, R, h, p.w_hh.ptr(), T(0), hp_.ptr(), GH);
        const T* b_hn = r.bias ? p.b_hh.ptr() + 2 * H : zeros_.ptr();
        for (int64_t b = 0; b < B; ++b)
          kernels::gru_after_row(H, g + b * GH, hp_.ptr() + b * GH, b_hn, h + b * R, h_new + b * H);
      } else if (gru) {
        product(B, 2 * H, R, h, p.w_hh.ptr(), T(0), hp_.ptr(), GH);
        for (int64_t b = 0; b < B; ++b)
          kernels::gru_before_rz_row(H, g + b * GH, hp_.ptr() + b * GH, h + b * R, rh_.ptr() + b * H);
        product(B, H, H, rh_.ptr(), p.w_hh.ptr() + 2 * H * H, T(1), g + 2 * H, GH);
        for (int64_t b = 0; b < B; ++b) kernels::gru_before_out_row(H, g + b * GH, h + b * R, h_new + b * H);
      } else {  // LSTM
        product(B, GH, R, h, p.w_hh.ptr(), T(1), g, GH);
        const T* z = zeros_.ptr();
        const bool peep = r.peephole;
        for (int64_t b = 0; b < B; ++b)
          kernels::lstm_row(H, g + b * GH, c + b * H, peep ? p.w_peep.ptr() : z, peep ? p.w_peep.ptr() + H : z,
                            peep ? p.w_peep.ptr() + 2 * H : z, c_next_.ptr() + b * H, h_new + b * H);
        std::memcpy(c, c_next_.ptr(), size_t(B * H) * sizeof(T));
      }
      if (r.proj_size > 0) {  // LSTMP: the state is W_hr h~ [B, P]
        product(B, R, H, h_new, p.w_hr.ptr(), T(0), h, R);
      } else {
        std::memcpy(h, h_new, size_t(B * R) * sizeof(T));
      }
      for (int64_t b = 0; b < B; ++b) std::memcpy(y_.ptr() + b * DR + d * R, h + b * R, size_t(R) * sizeof(T));
    }
    std::swap(x_, y_);  // this layer's output is the next one's input
  }

  // Decoder: logits [B, V] = y W^T + b.
  logits.resize({B, V});
  for (int64_t b = 0; b < B; ++b) std::memcpy(logits.ptr() + b * V, decoder_b_->ptr(), size_t(V) * sizeof(T));
  product(B, V, DR, x_.ptr(), decoder_w_->ptr(), T(1), logits.ptr(), V);
}

template class LmStepper<float>;
template class LmStepper<double>;

}  // namespace recur
