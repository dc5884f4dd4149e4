// The cost of summing one step's gradients across ranks (docs/distributed.md's scaling model):
// MPI_Allreduce of float buffers of the given sizes through recur's Communicator, in 4 MiB
// buckets as the training loop sends them, median of the repeats. Run under mpirun:
//   mpirun --allow-run-as-root -np 2 build/bench/allreduce_time 3322497 4653200
// prints one line per size: floats, MB, ms per step, GB/s of bus bandwidth (2 (N-1)/N S / t).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "recur/train/communicator.h"

int main(int argc, char** argv) {
  recur::Communicator& comm = recur::Communicator::world();
  const int repeats = 20;
  for (int a = 1; a < argc; ++a) {
    const size_t n = size_t(std::strtoull(argv[a], nullptr, 10));
    std::vector<float> grads(n, 1.0f);
    constexpr size_t kBucket = size_t(1) << 20;
    std::vector<double> times;
    for (int r = 0; r < repeats + 2; ++r) {
      const auto t0 = std::chrono::steady_clock::now();
      for (size_t off = 0; off < n; off += kBucket)
        comm.start_allreduce_sum(std::span<float>(grads.data() + off, std::min(kBucket, n - off)));
      comm.wait_all();
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (r >= 2) times.push_back(s);
    }
    std::sort(times.begin(), times.end());
    const double t = times[times.size() / 2], bytes = double(n) * 4;
    const int p = comm.size();
    if (comm.rank() == 0)
      std::printf("%zu floats  %.1f MB  %.2f ms  bus %.2f GB/s  (%d ranks)\n", n, bytes / 1e6, t * 1e3,
                  p > 1 ? 2.0 * (p - 1) / p * bytes / t / 1e9 : 0.0, p);
  }
  return 0;
}
