// recur/threads.h - how many cores the library's kernels use.
//
// Two libraries thread recur's work: OpenBLAS (the matrix products) and, when recur is built
// with it, oneDNN (the recurrent layers, through OpenMP). Both read OMP_NUM_THREADS /
// OPENBLAS_NUM_THREADS at start-up; set_num_threads sets both at run time, so that one
// `--threads N` means N cores everywhere.
#pragma once

namespace recur {

// n >= 1: use n threads from now on; n == 0: leave the libraries' defaults.
void set_num_threads(int n);

}  // namespace recur
