// A consumer of an installed recur (scripts/install_check.sh builds it with find_package and with
// pkg-config): runs a 1-layer LSTM through recur's public API and checks every output against the
// LSTM equations computed here, independently of recur. Prints the version and the largest
// difference; exits 1 on a mismatch.
#include <recur/core/random.h>
#include <recur/core/rnn.h>
#include <recur/version.h>

#include <cmath>
#include <cstdio>
#include <vector>

namespace {
double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }
}  // namespace

int main() {
  recur::RnnConfig cfg;
  cfg.cell = recur::CellType::lstm;
  cfg.input_size = 3;
  cfg.hidden_size = 4;
  const int64_t T = 5, B = 2, I = cfg.input_size, H = cfg.hidden_size;
  recur::Rng rng(7);
  const recur::RnnParams<double> params = recur::rnn_init_params<double>(cfg, rng);
  recur::Tensor<double> input({T, B, I});
  for (size_t k = 0; k < input.data.size(); ++k) input.data[k] = std::sin(0.7 * double(k)) * 0.9;

  recur::Tensor<double> output;
  recur::RnnState<double> state_n;
  recur::RnnCache<double> cache;
  recur::rnn_forward(cfg, params, input, {}, recur::rnn_zero_state<double>(cfg, B), recur::ForwardOptions{}, output,
                     state_n, cache);
  if (output.shape != recur::Shape{T, B, H}) {
    std::fprintf(stderr, "lstm_check: output shape %s, expected [%lld, %lld, %lld]\n", recur::shape_str(output.shape).c_str(),
                 (long long)T, (long long)B, (long long)H);
    return 1;
  }

  // PyTorch's LSTM: gates (i, f, g, o) = W_ih x + b_ih + W_hh h + b_hh.
  const auto& p = params.dirs[0];
  double max_diff = 0;
  for (int64_t b = 0; b < B; ++b) {
    std::vector<double> h(size_t(H), 0.0), c(size_t(H), 0.0), g(size_t(4 * H));
    for (int64_t t = 0; t < T; ++t) {
      const double* x = input.ptr() + (t * B + b) * I;
      for (int64_t r = 0; r < 4 * H; ++r) {
        double s = p.b_ih.data[size_t(r)] + p.b_hh.data[size_t(r)];
        for (int64_t k = 0; k < I; ++k) s += p.w_ih.data[size_t(r * I + k)] * x[k];
        for (int64_t k = 0; k < H; ++k) s += p.w_hh.data[size_t(r * H + k)] * h[size_t(k)];
        g[size_t(r)] = s;
      }
      for (int64_t j = 0; j < H; ++j) {
        const double i_ = sigmoid(g[size_t(j)]), f_ = sigmoid(g[size_t(H + j)]);
        const double g_ = std::tanh(g[size_t(2 * H + j)]), o_ = sigmoid(g[size_t(3 * H + j)]);
        c[size_t(j)] = f_ * c[size_t(j)] + i_ * g_;
        h[size_t(j)] = o_ * std::tanh(c[size_t(j)]);
        max_diff = std::fmax(max_diff, std::fabs(h[size_t(j)] - output.data[size_t((t * B + b) * H + j)]));
      }
    }
  }
  std::printf("recur %s: LSTM %lldx%lld over %lld steps, max |recur - reference| = %.3g\n", recur::kVersion,
              (long long)I, (long long)H, (long long)T, max_diff);
  if (!(max_diff < 1e-12)) {
    std::fprintf(stderr, "lstm_check: recur's LSTM output differs from the reference by %g (expected < 1e-12)\n", max_diff);
    return 1;
  }
  return 0;
}
