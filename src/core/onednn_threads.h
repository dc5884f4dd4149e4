// src/core/onednn_threads.h - the one-thread scope of --deterministic for oneDNN calls (internal).
#pragma once

#include "recur/core/threads.h"

extern "C" int omp_get_max_threads();  // libgomp: the pool oneDNN runs on (core/threads.h)
extern "C" void omp_set_num_threads(int n);

namespace recur::detail {

// --deterministic (core/threads.h): oneDNN divides some work among the pool's threads by their
// number (its RNN backward past 7 threads), so under set_deterministic(true) a oneDNN call runs on
// one thread: the calling thread's pool size (an ICV) is one for the scope and put back after.
// Nested inside an active parallel region (the directions of a bidirectional layer) oneDNN runs
// on one thread anyway.
class OnednnThreadsScope {
 public:
  OnednnThreadsScope() : saved_(deterministic() ? omp_get_max_threads() : 1) {
    if (saved_ > 1) omp_set_num_threads(1);
  }
  ~OnednnThreadsScope() {
    if (saved_ > 1) omp_set_num_threads(saved_);
  }
  OnednnThreadsScope(const OnednnThreadsScope&) = delete;
  OnednnThreadsScope& operator=(const OnednnThreadsScope&) = delete;

 private:
  int saved_;
};

}  // namespace recur::detail
