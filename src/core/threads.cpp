#include "recur/core/threads.h"

// Debian's cblas.h declares it, but other BLAS headers do not; the symbol is OpenBLAS's.
extern "C" void openblas_set_num_threads(int num_threads);
extern "C" void omp_set_num_threads(int num_threads);  // libgomp: oneDNN's and the stepper's pool

namespace recur {

void set_num_threads(int n) {
  if (n <= 0) return;
  openblas_set_num_threads(n);
  omp_set_num_threads(n);
}

}  // namespace recur
