#include "recur/core/threads.h"

#include <atomic>

// Debian's cblas.h declares it, but other BLAS headers do not; the symbol is OpenBLAS's.
extern "C" void openblas_set_num_threads(int num_threads);
extern "C" void omp_set_num_threads(int num_threads);  // libgomp: oneDNN's and recur's own pool

namespace recur {

namespace {
std::atomic<bool> g_deterministic{false};
}  // namespace

void set_num_threads(int n) {
  if (n <= 0) return;
  // OpenBLAS stays single-threaded: recur splits the products among the OpenMP threads itself,
  // in tiles fixed by the shape, so the bits do not depend on n (src/core/blas.h).
  openblas_set_num_threads(1);  // first: OpenBLAS's OpenMP build sets the pool to 1 as well
  omp_set_num_threads(n);
}

void set_deterministic(bool on) { g_deterministic.store(on, std::memory_order_relaxed); }
bool deterministic() { return g_deterministic.load(std::memory_order_relaxed); }

}  // namespace recur
