// recur/core/threads.h - how many cores the library's kernels use.
//
// recur's work is threaded by OpenBLAS (the matrix products), oneDNN when recur is built with it
// (the recurrent layers) and recur's own OpenMP loops (batch-1 generation), the last two in
// libgomp's pool. They read OMP_NUM_THREADS / OPENBLAS_NUM_THREADS at start-up;
// set_num_threads sets all of them at run time, so that one `--threads N` means N cores.
#pragma once

namespace recur {

// n >= 1: use n threads from now on; n == 0: leave the libraries' defaults.
void set_num_threads(int n);

}  // namespace recur
