// recur/core/threads.h - how many cores the library's kernels use.
//
// recur's work is threaded in libgomp's OpenMP pool: the matrix products (split by recur into
// blocks fixed by the shape, each one single-threaded OpenBLAS call, so the thread count never
// changes a result; src/core/blas.h), oneDNN when recur is built with it (the recurrent layers)
// and the batch-1 generation loops. The pool reads OMP_NUM_THREADS at start-up; set_num_threads
// sets it at run time, so that one `--threads N` means N cores. OpenBLAS's own pool is kept at
// one thread (OPENBLAS_NUM_THREADS is overridden).
#pragma once

namespace recur {

// n >= 1: use n threads from now on; n == 0: leave the libraries' defaults.
void set_num_threads(int n);

}  // namespace recur
