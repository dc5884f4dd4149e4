// recur/core/threads.h - how many cores the library's kernels use.
//
// recur's work is threaded in libgomp's OpenMP pool: the matrix products (OpenBLAS called on
// tiles of the product, one single-threaded call per tile, src/core/blas.h), oneDNN when recur is
// built with it (the recurrent layers) and recur's own loops (batch-1 generation, the loss, the
// optimizer). The pool's size comes from OMP_NUM_THREADS at start-up; set_num_threads sets it at
// run time, so that one `--threads N` means N cores. OpenBLAS's own threads are never used
// (OPENBLAS_NUM_THREADS has no effect): its threaded products give results that depend on the
// thread count, the tiles do not.
#pragma once

namespace recur {

// n >= 1: use n threads from now on; n == 0: leave the libraries' defaults.
void set_num_threads(int n);

}  // namespace recur
