#include "recur/core/threads.h"

#include "blas.h"

extern "C" void omp_set_num_threads(int num_threads);  // libgomp: oneDNN's, the products' and the stepper's pool

namespace recur {

void set_num_threads(int n) {
  // OpenBLAS itself stays on one thread: blas::gemm splits the products over OpenMP's threads in
  // blocks that do not depend on the thread count (blas.h), so results do not either.
  blas::pin_blas_to_one_thread();
  if (n <= 0) return;
  omp_set_num_threads(n);
}

}  // namespace recur
