// One recurrent layer (LSTM, GRU, RNN-tanh; unidirectional, input size I = H, float32, T = 100)
// at H in {128, 512, 1024} x B in {1, 32}: forward only (inference) and forward + backward
// (a training step of one layer, gradients of the weights and of the input).
//
// Counters (all per wall-clock second: the benchmarks use real time, because OpenBLAS's worker
// threads are invisible to the main thread's CPU clock):
//   tokens   T * B per iteration ("tokens=12.3k/s")
//   GFLOP    GEMM floating-point operations, 1 multiply-add = 2 flops ("GFLOP=45.6/s").
//            Forward, per layer and step: the input product x W_ih^T ([B, I] x [I, G*H]) and the
//            recurrent product h W_hh^T ([B, H] x [H, G*H]):
//                forward  = 2 * T * B * G * H * (I + H)
//            Backward does the same shapes twice: dh = dgates W_hh and dx = dgates W_ih (data
//            gradients), dW_hh += dgates^T h and dW_ih += dgates^T x (weight gradients):
//                backward = 2 * forward,  forward + backward = 3 * forward.
//            Element-wise gate code, bias sums and copies are not counted: the figure is the
//            GEMM work only, so it is comparable across implementations of the same layer.
//   peak_pct achieved GFLOP/s as a percentage of RECUR_PEAK_GFLOPS (default 115, roughly one
//            Zen core's fp32 FMA peak: 2 FMA pipes x 8 lanes x 2 flops x ~3.5 GHz) times the
//            OpenBLAS thread count (OPENBLAS_NUM_THREADS).
//
// Run: build-bench/bench/bench_rnn [--benchmark_filter=lstm] ; bench/run_layer_bench.sh
// compares with PyTorch.
#include <benchmark/benchmark.h>
#include <cblas.h>

#include <chrono>
#include <cstdlib>
#include <string>
#include <vector>

#include "recur/core/random.h"
#include "recur/core/rnn.h"

namespace {

using recur::CellType;

constexpr int64_t kSteps = 100;  // T

double peak_gflops_per_thread() {
  if (const char* env = std::getenv("RECUR_PEAK_GFLOPS")) {
    char* end = nullptr;
    const double v = std::strtod(env, &end);
    if (end != env && v > 0) return v;
  }
  return 115.0;
}

double forward_flops(const recur::RnnConfig& cfg, int64_t batch) {
  const double G = double(cfg.gates()), H = double(cfg.hidden_size), I = double(cfg.input_size);
  return 2.0 * double(kSteps) * double(batch) * G * H * (I + H);
}

// Everything one case needs, built once outside the timed loop.
struct Layer {
  recur::RnnConfig cfg;
  recur::RnnParams<float> params;
  recur::Tensor<float> input, output, grad_output, grad_input;
  recur::RnnState<float> state0, state_n, grad_state_n;
  recur::RnnCache<float> cache;
  recur::RnnGrads<float> grads;

  Layer(CellType cell, int64_t hidden, int64_t batch) {
    cfg.cell = cell;
    cfg.input_size = hidden;
    cfg.hidden_size = hidden;
    cfg.validate();
    recur::Rng rng(1234);
    params = recur::rnn_init_params<float>(cfg, rng);
    input = recur::Tensor<float>({kSteps, batch, hidden});
    for (auto& v : input.data) v = float(rng.uniform(-1, 1));
    grad_output = recur::Tensor<float>({kSteps, batch, cfg.output_size()});
    for (auto& v : grad_output.data) v = float(rng.uniform(-1, 1));
    grads = recur::rnn_zero_grads<float>(cfg);
  }
};

void set_counters(benchmark::State& state, double flops_per_iter, double tokens_per_iter, double seconds) {
  state.counters["tokens"] = benchmark::Counter(tokens_per_iter, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["GFLOP"] = benchmark::Counter(flops_per_iter * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  // Google Benchmark has no derived counters, so the share of peak is computed from our own
  // wall clock over the same loop (nothing in the loop is paused, so both clocks agree).
  const double peak = peak_gflops_per_thread() * double(openblas_get_num_threads());
  const double achieved = flops_per_iter * double(state.iterations()) / seconds * 1e-9;
  state.counters["peak_pct"] = benchmark::Counter(100.0 * achieved / peak);
}

void bm_forward(benchmark::State& state, CellType cell) {
  const int64_t H = state.range(0), B = state.range(1);
  Layer l(cell, H, B);
  const recur::ForwardOptions inference{};
  const auto start = std::chrono::steady_clock::now();
  for (auto _ : state) {
    recur::rnn_forward(l.cfg, l.params, l.input, {}, l.state0, inference, l.output, l.state_n, l.cache);
    benchmark::DoNotOptimize(l.output.data.data());
    benchmark::ClobberMemory();
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  set_counters(state, forward_flops(l.cfg, B), double(kSteps * B), seconds);
}

void bm_forward_backward(benchmark::State& state, CellType cell) {
  const int64_t H = state.range(0), B = state.range(1);
  Layer l(cell, H, B);
  recur::ForwardOptions training;
  training.training = true;  // one layer: no dropout, so no generator is needed
  const auto start = std::chrono::steady_clock::now();
  for (auto _ : state) {
    // A training step of the layer: gradients accumulate (+=), so they are zeroed each time
    // as an optimiser step would.
    l.grads.zero();
    recur::rnn_forward(l.cfg, l.params, l.input, {}, l.state0, training, l.output, l.state_n, l.cache);
    recur::rnn_backward(l.cfg, l.params, l.input, l.cache, l.grad_output, l.grad_state_n, l.grads, &l.grad_input,
                        nullptr);
    benchmark::DoNotOptimize(l.grad_input.data.data());
    benchmark::DoNotOptimize(l.grads.dirs[0].w_hh.data.data());
    benchmark::ClobberMemory();
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  set_counters(state, 3 * forward_flops(l.cfg, B), double(kSteps * B), seconds);
}

void register_all() {
  const std::pair<const char*, CellType> cells[] = {
      {"lstm", CellType::lstm}, {"gru", CellType::gru}, {"rnn_tanh", CellType::rnn_tanh}};
  for (const auto& [name, cell] : cells) {
    for (const bool backward : {false, true}) {
      const std::string id = std::string(name) + (backward ? "/fwd_bwd" : "/fwd");
      auto* b = backward ? benchmark::RegisterBenchmark(id.c_str(), bm_forward_backward, cell)
                         : benchmark::RegisterBenchmark(id.c_str(), bm_forward, cell);
      b->ArgNames({"H", "B"})
          ->ArgsProduct({{128, 512, 1024}, {1, 32}})
          ->MinTime(0.2)  // short default run; --benchmark_repetitions for more
          ->UseRealTime()
          ->Unit(benchmark::kMillisecond);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  register_all();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::AddCustomContext("blas", openblas_get_config());
  benchmark::AddCustomContext("blas_threads", std::to_string(openblas_get_num_threads()));
  benchmark::AddCustomContext("peak_gflops_per_thread", std::to_string(peak_gflops_per_thread()));
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
