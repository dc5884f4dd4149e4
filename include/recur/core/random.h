// recur/core/random.h - the seeded generator behind every random draw (initialisation, dropout,
// data order, sampling). Its whole state is four 64-bit words, saved in checkpoints so a
// resumed run draws exactly what an uninterrupted one would.
#pragma once

#include <array>
#include <cstdint>

namespace recur {

// xoshiro256** (Blackman & Vigna 2018), seeded through splitmix64.
class Rng {
 public:
  using State = std::array<uint64_t, 4>;
  explicit Rng(uint64_t seed = 0) { reseed(seed); }
  void reseed(uint64_t seed);

  uint64_t next_u64();
  double uniform();                   // [0, 1) with 53 random bits
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
  double normal();                    // standard normal (Box-Muller, no cached spare)
  uint64_t below(uint64_t n);         // uniform integer in [0, n), unbiased; n > 0

  const State& state() const { return s_; }
  void set_state(const State& s) { s_ = s; }

 private:
  State s_{};
};

}  // namespace recur
