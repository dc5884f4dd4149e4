// src/activations.h - the gate nonlinearities of the recurrent kernels.
//
// float: branch-free polynomial forms (Cephes' expf and tanhf, about 2 ulp) written so that
// GCC vectorises loops over them (AVX2: 8 lanes) under `#pragma omp simd`; glibc's scalar
// expf/tanhf calls would cost as much as the recurrent GEMM itself at H = 512.
// double: the C library, so the float64 verification path stays exact against PyTorch.
#pragma once

#include <bit>
#include <cmath>
#include <cstdint>

namespace recur::act {

// exp(x) for x already in [-87.3, 88.3] (or NaN), where 2^n below stays a normal float.
#pragma omp declare simd notinbranch
inline float exp_in_range_f(float x) {
  // exp(x) = 2^n * exp(r), n = round(x / ln 2), |r| <= ln 2 / 2; ln 2 split in two parts so
  // n * ln2 is exact in float (Cody-Waite).
  // Round to nearest by adding and removing 1.5 * 2^23 (exact in IEEE float for |v| < 2^22):
  // std::floor would not vectorise, since GCC keeps floorf scalar unless -fno-trapping-math.
  const float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  const float r = x - n * 0.693359375f + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t e = (int32_t(n) + 127) << 23;
  return p * std::bit_cast<float>(e);
}

#pragma omp declare simd notinbranch
inline float exp_f(float x) { return exp_in_range_f(x < -87.3f ? -87.3f : (x > 88.3f ? 88.3f : x)); }

// exp(x) for x <= 0 (a logit minus its row's maximum): exp_f's bits there, without the upper
// clamp, which under AVX2 was a second blend in the softmax loop's critical path.
#pragma omp declare simd notinbranch
inline float exp_nonpos_f(float x) { return exp_in_range_f(x < -87.3f ? -87.3f : x); }

#pragma omp declare simd notinbranch
inline float sigmoid_f(float x) { return 1.0f / (1.0f + exp_f(-x)); }

#pragma omp declare simd notinbranch
inline float tanh_f(float x) {
  const float ax = std::fabs(x);
  // Small |x|: odd polynomial (no cancellation near 0); large: 1 - 2 / (e^{2|x|} + 1).
  const float z = x * x;
  float p = -5.70498872745e-3f;
  p = p * z + 2.06390887954e-2f;
  p = p * z - 5.37397155531e-2f;
  p = p * z + 1.33314422036e-1f;
  p = p * z - 3.33332819422e-1f;
  const float small = p * z * x + x;
  const float big = std::copysign(1.0f - 2.0f / (exp_f(2.0f * ax) + 1.0f), x);
  return ax < 0.625f ? small : big;
}

inline double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }
inline double tanh(double x) { return std::tanh(x); }
inline float sigmoid(float x) { return sigmoid_f(x); }
inline float tanh(float x) { return tanh_f(x); }

}  // namespace recur::act
