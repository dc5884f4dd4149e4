// The matrix products of one training step of a stacked LSTM language model (the speed suite's
// `lm` case: ids -> embedding E -> L layers of H -> linear V), each timed on its own through the
// kernels recur has, and summed: the time the step's products alone need, before any gate, loss
// or optimizer work. It answers whether a training step of recur's own could reach a given share
// of the FMA peak (issue 13 asks 75% at 2 threads for the 2x512 LSTM; BENCHMARKS.md "What the
// products alone cost").
//
// Per layer l (input I = E for l = 0, else H; G = 4 gates; TB = T * B rows):
//   forward   x W_ih^T            [TB, I] x [I, GH]     once          blas::gemm
//             h W_hh^T            [B, H] x [H, GH]       T times       PackedProduct and blas::gemm
//   backward  dg W_hh             [B, GH] x [GH, H]      T times       PackedProduct and blas::gemm
//             dW_ih += dg^T x     [GH, TB] x [TB, I]     once          blas::gemm
//             dW_hh += dg^T h     [GH, TB] x [TB, H]     once          blas::gemm
//             dx = dg W_ih        [TB, GH] x [GH, I]     once (l > 0)  blas::gemm
// and the output layer: logits [TB, H] x [H, V], its dW [V, TB] x [TB, H] and dh [TB, V] x [V, H].
// A per-step product counts at the faster of its two ways. FLOPs are counted as the suite counts
// them (bench/suite_table.py: 3x the forward's, the embedding's dx included). --precision bf16
// times every product through blas::gemm_bf16 instead (oneDNN's bf16 matmul, float32 sums; the
// operands' rounding to bf16 not timed): the products' share of what bf16 training could gain.
//
//   build-bench/bench/step_products [--hidden 512] [--layers 2] [--embed 64] [--vocab 65]
//                                   [--batch 32] [--steps 100] [--rounds 5] [--precision f32|bf16]
//   (OMP_NUM_THREADS=N sets the threads; recur_suite --peak --threads N gives the peak to divide by)
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "blas.h"
#include "recur/core/threads.h"

namespace {

using recur::blas::gemm;
using recur::blas::PackedProduct;

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

// Best time of `rounds` rounds, each as many calls as fit in 0.2 s.
double best_seconds(int rounds, const std::function<void()>& f) {
  f();
  double best = 1e30;
  for (int r = 0; r < rounds; ++r) {
    const double t0 = now();
    int calls = 0;
    do {
      f();
      ++calls;
    } while (now() - t0 < 0.2);
    best = std::min(best, (now() - t0) / calls);
  }
  return best;
}

struct Total {
  double seconds = 0, flops = 0;
  void add(const char* name, double s, int64_t times, double flops_once) {
    std::printf("%-34s %6lld x %9.3f ms = %8.2f ms  %6.1f GFLOP/s\n", name, (long long)times, s * 1e3, s * 1e3 * double(times),
                flops_once / s / 1e9);
    seconds += s * double(times);
    flops += flops_once * double(times);
  }
};

bool g_bf16 = false;  // --precision bf16

// C [m, n] += op(A) op(B) in bf16 (operands rounded beforehand).
double time_gemm_bf16(int rounds, bool ta, bool tb, int64_t m, int64_t n, int64_t k) {
  std::vector<uint16_t> a(size_t(m * k), 0x3c24), b(size_t(k * n), 0x3ca4);  // 0.01, 0.02
  std::vector<float> c(size_t(m * n), 0.0f);
  const auto call = [&] {
    return recur::blas::gemm_bf16(ta, tb, m, n, k, a.data(), ta ? m : k, b.data(), tb ? k : n, 1.0f, c.data(), n);
  };
  if (!call()) {
    std::fprintf(stderr, "step_products: no bf16 kernel for [%lld, %lld] x [%lld, %lld] on this machine\n", (long long)m,
                 (long long)k, (long long)k, (long long)n);
    std::exit(1);
  }
  return best_seconds(rounds, [&] { call(); });
}

// C [m, n] += op(A) op(B) with buffers of the right sizes.
double time_gemm(int rounds, bool ta, bool tb, int64_t m, int64_t n, int64_t k) {
  if (g_bf16) return time_gemm_bf16(rounds, ta, tb, m, n, k);
  std::vector<float> a(size_t(m * k), 0.01f), b(size_t(k * n), 0.02f), c(size_t(m * n), 0.0f);
  return best_seconds(rounds, [&] {
    gemm(ta, tb, m, n, k, 1.0f, a.data(), ta ? m : k, b.data(), tb ? k : n, 1.0f, c.data(), n);
  });
}

// A per-step product, W packed once (not timed: once per scan) or through gemm; the faster.
double time_step(int rounds, bool tw, int64_t m, int64_t n, int64_t k, const char* name) {
  if (g_bf16) {
    const double s = time_gemm_bf16(rounds, false, tw, m, n, k);
    std::printf("  %-32s bf16 matmul %.3f ms\n", name, s * 1e3);
    return s;
  }
  std::vector<float> a(size_t(m * k), 0.01f), w(size_t(k * n), 0.02f), c(size_t(m * n), 0.0f);
  const double plain = best_seconds(rounds, [&] {
    gemm(false, tw, m, n, k, 1.0f, a.data(), k, w.data(), tw ? k : n, 1.0f, c.data(), n);
  });
  PackedProduct p;
  double packed = 1e30;
  if (p.pack(tw, m, n, k, w.data(), tw ? k : n, k, n, true)) packed = best_seconds(rounds, [&] { p.run(a.data(), c.data()); });
  std::printf("  %-32s gemm %.3f ms, packed %.3f ms\n", name, plain * 1e3, packed * 1e3);
  return std::min(plain, packed);
}

}  // namespace

int main(int argc, char** argv) {
  int64_t H = 512, L = 2, E = 64, V = 65, B = 32, T = 100;
  int rounds = 5;
  if (argc % 2 == 0) {
    std::fprintf(stderr, "step_products: %s: expected a value after it\n", argv[argc - 1]);
    return 2;
  }
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--precision") {
      const std::string p = argv[i + 1];
      if (p != "f32" && p != "bf16") {
        std::fprintf(stderr, "step_products: --precision: expected f32 or bf16, got %s\n", p.c_str());
        return 2;
      }
      g_bf16 = p == "bf16";
      continue;
    }
    char* end = nullptr;
    const long long v = std::strtoll(argv[i + 1], &end, 10);
    if (end == argv[i + 1] || *end != '\0' || v < 1) {
      std::fprintf(stderr, "step_products: %s: expected a whole number >= 1, got %s\n", a.c_str(), argv[i + 1]);
      return 2;
    }
    if (a == "--hidden") H = v;
    else if (a == "--layers") L = v;
    else if (a == "--embed") E = v;
    else if (a == "--vocab") V = v;
    else if (a == "--batch") B = v;
    else if (a == "--steps") T = v;
    else if (a == "--rounds") rounds = int(v);
    else {
      std::fprintf(stderr, "step_products: unknown option %s\n", a.c_str());
      return 2;
    }
  }
  recur::set_num_threads(omp_get_max_threads());
  const int64_t GH = 4 * H, TB = T * B;
  std::printf("LSTM %lldx%lld, E %lld, V %lld, B %lld, T %lld, %d thread(s), %s\n", (long long)L, (long long)H,
              (long long)E, (long long)V, (long long)B, (long long)T, omp_get_max_threads(), g_bf16 ? "bf16" : "f32");
  Total total;
  const double rec_f = time_step(rounds, true, B, GH, H, "h W_hh^T [B,H]x[H,GH]");
  const double rec_b = time_step(rounds, false, B, H, GH, "dg W_hh [B,GH]x[GH,H]");
  for (int64_t l = 0; l < L; ++l) {
    const int64_t I = l == 0 ? E : H;
    std::printf("layer %lld (I = %lld)\n", (long long)l, (long long)I);
    total.add("  x W_ih^T", time_gemm(rounds, false, true, TB, GH, I), 1, 2.0 * double(TB * GH * I));
    total.add("  h W_hh^T (per step)", rec_f, T, 2.0 * double(B * GH * H));
    total.add("  dg W_hh (per step)", rec_b, T, 2.0 * double(B * GH * H));
    total.add("  dW_ih += dg^T x", time_gemm(rounds, true, false, GH, I, TB), 1, 2.0 * double(GH * I * TB));
    total.add("  dW_hh += dg^T h", time_gemm(rounds, true, false, GH, H, TB), 1, 2.0 * double(GH * H * TB));
    // For layer 0 dx is the embedding's gradient, then added into the table's rows.
    total.add("  dx = dg W_ih", time_gemm(rounds, false, false, TB, I, GH), 1, 2.0 * double(TB * I * GH));
  }
  std::printf("output layer\n");
  total.add("  logits = h W_out^T", time_gemm(rounds, false, true, TB, V, H), 1, 2.0 * double(TB * V * H));
  total.add("  dW_out += dlogits^T h", time_gemm(rounds, true, false, V, H, TB), 1, 2.0 * double(V * H * TB));
  total.add("  dh = dlogits W_out", time_gemm(rounds, false, false, TB, H, V), 1, 2.0 * double(TB * H * V));
  std::printf("products alone: %.1f ms for %.2f GFLOP: %.1f GFLOP/s; %.0f tokens/s at most\n", total.seconds * 1e3,
              total.flops / 1e9, total.flops / total.seconds / 1e9, double(TB) / total.seconds);
  return 0;
}
