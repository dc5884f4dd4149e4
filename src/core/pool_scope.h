// src/core/pool_scope.h - a scope in which the calling thread's OpenMP pool is one thread (internal).
#pragma once

#ifdef _OPENMP
#include <omp.h>
#else
extern "C" int omp_get_max_threads();  // libgomp, linked through recur_core
extern "C" void omp_set_num_threads(int n);
#endif

namespace recur::detail {

// While `when` held at construction, the calling thread's pool size (an ICV) is one for the
// scope and put back after; otherwise nothing changes. Two users:
//  - blas.cpp: a product called outside a parallel region, which OpenBLAS's OpenMP build and
//    oneDNN's sgemm would otherwise split by the pool's size (the bits would depend on the
//    thread count);
//  - --deterministic (core/threads.h): every oneDNN call, whose RNN backward orders its weight
//    gradients' sums by the thread count past 7 threads.
class PoolOfOne {
 public:
  explicit PoolOfOne(bool when) : saved_(when ? omp_get_max_threads() : 1) {
    if (saved_ > 1) omp_set_num_threads(1);
  }
  ~PoolOfOne() {
    if (saved_ > 1) omp_set_num_threads(saved_);
  }
  PoolOfOne(const PoolOfOne&) = delete;
  PoolOfOne& operator=(const PoolOfOne&) = delete;

 private:
  int saved_;
};

}  // namespace recur::detail
