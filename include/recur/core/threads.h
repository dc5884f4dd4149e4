// recur/core/threads.h - how many cores the library's kernels use.
//
// recur's work is threaded in libgomp's OpenMP pool: the matrix products (cut into tiles, one
// single-threaded call per tile: oneDNN's sgemm for float where recur is built with oneDNN,
// OpenBLAS otherwise and for double, src/core/blas.h), oneDNN when recur is
// built with it (the recurrent layers) and recur's own loops (batch-1 generation, the loss, the
// optimizer). The pool's size comes from OMP_NUM_THREADS at start-up; set_num_threads sets it at
// run time, so that one `--threads N` means N cores. OpenBLAS's own threads are never used
// (OPENBLAS_NUM_THREADS has no effect): its threaded products give results that depend on the
// thread count, the tiles do not. (The OpenMP build of OpenBLAS, the one Debian's default
// alternative gives recur, is kept single-threaded by calling it with a pool of one: blas.cpp.)
//
// Determinism: a run repeated at the same thread count gives the same bits, and so does a run at
// another thread count as far as recur computes it (tiles and splits fixed by the shape). oneDNN's
// RNN primitives are the same bits at 1 to 7 threads on every shape measured, but their backward
// divides the weight gradients' sums among the threads by their number beyond that (measured:
// PTB-small shapes differ in the last bits at 8 and 16 threads; tests/test_threads.cpp).
// set_deterministic(true), the CLI's --deterministic, runs the oneDNN primitives on one thread,
// which makes every result the same bits at any count. Its cost is that the recurrent layers then
// use one core (BENCHMARKS.md, "Threads work again").
#pragma once

namespace recur {

// n >= 1: use n threads from now on; n == 0: leave the libraries' defaults.
void set_num_threads(int n);

// Process-wide, off by default: oneDNN's primitives on one thread, so that results are the same
// bits at every thread count (above).
void set_deterministic(bool on);
bool deterministic();

}  // namespace recur
