// Compressed weights and their products: see quantize.h.
//
// Written here rather than called from oneDNN or OpenBLAS: a batch-1 step does a handful of
// small matrix-vector products per token (a 1x128 LSTM's take about a microsecond each), where a
// library call's set-up (oneDNN's int8 matmul reorders and scales its inputs per call; OpenBLAS
// has no int8 product and Debian's build no bf16 one) costs as much as the product itself.
#include "recur/core/quantize.h"

#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "recur/core/error.h"
#include "isa.h"

namespace recur {

std::string_view precision_name(Precision p) {
  switch (p) {
    case Precision::f32: return "f32";
    case Precision::bf16: return "bf16";
    case Precision::int8: return "int8";
  }
  return "?";
}

Precision parse_precision(std::string_view text, std::string_view what) {
  if (text == "f32" || text == "float32" || text == "fp32") return Precision::f32;
  if (text == "bf16" || text == "bfloat16") return Precision::bf16;
  if (text == "int8") return Precision::int8;
  throw Error(std::string(what) + ": got '" + std::string(text) + "', expected f32, bf16 or int8");
}

namespace {

// The roundings themselves, internal so that the array loops inline and vectorise them: a call
// to the exported float_to_bf16 may not be inlined in this position-independent library (it
// could be interposed), and the per-element call made bf16 training 25% slower.
inline uint16_t to_bf16(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  // Round to nearest, ties to even; a NaN stays a (quiet) NaN. A select, not a branch, so that
  // the loops over it vectorise.
  const uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
  const uint32_t nan = (u >> 16) | 0x40u;
  return uint16_t((u & 0x7fffffffu) > 0x7f800000u ? nan : rounded);
}

inline float from_bf16(uint16_t b) {
  const uint32_t u = uint32_t(b) << 16;
  float x;
  std::memcpy(&x, &u, 4);
  return x;
}

}  // namespace

uint16_t float_to_bf16(float x) { return to_bf16(x); }
float bf16_to_float(uint16_t b) { return from_bf16(b); }

namespace {

// AVX-512 (with VNNI, for the int8 products) where the processor has it and RECUR_ISA=avx2 does
// not say otherwise.
bool detect_avx512() {
  const char* isa = std::getenv("RECUR_ISA");
  if (isa && std::string_view(isa) == "avx2") return false;
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vnni");
}

// The same loop compiled twice: for the build's baseline (AVX2, 8 lanes) and for AVX-512 (16
// lanes), taken where the processor has it. The rounding is integer arithmetic, so both give the
// same bits; the wide one is faster where the data is in cache (a bf16 linear layer rounds its
// gradient a piece of a row at a time, model/linear.cpp).
void floats_to_bf16_loop(const float* x, uint16_t* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = to_bf16(x[i]);
}
[[gnu::target("avx512f,avx512bw")]] void floats_to_bf16_loop_avx512(const float* x, uint16_t* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = to_bf16(x[i]);
}

}  // namespace

namespace detail {
bool use_avx512() {
  static const bool yes = detect_avx512();
  return yes;
}
}  // namespace detail
using detail::use_avx512;

void floats_to_bf16(const float* x, uint16_t* out, int64_t n) {
  const auto loop = use_avx512() ? floats_to_bf16_loop_avx512 : floats_to_bf16_loop;
  // Element by element, so splitting cannot change a bit. Small calls stay on the calling thread
  // without entering OpenMP at all (a parallel region of one thread still costs a call into
  // libgomp, which showed in profiles of callers that round many short pieces).
  if (n < (int64_t(1) << 20) || omp_in_parallel() || omp_get_max_threads() == 1) return loop(x, out, n);
  constexpr int64_t kChunk = int64_t(1) << 16;
  const int64_t chunks = (n + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < chunks; ++c) loop(x + c * kChunk, out + c * kChunk, std::min(kChunk, n - c * kChunk));
}

void bf16_to_floats(const uint16_t* x, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = from_bf16(x[i]);
}

QuantizedMatrix quantize_matrix(const float* W, int64_t N, int64_t K, Precision p, QuantizeOptions o) {
  if (N < 0 || K < 0) throw ShapeError("quantize_matrix: negative size [" + std::to_string(N) + ", " + std::to_string(K) + "]");
  if (p == Precision::f32) throw Error("quantize_matrix: f32 is not a compressed precision");
  QuantizedMatrix m;
  m.precision = p;
  m.rows = N;
  m.cols = K;
  for (int64_t i = 0; i < N * K; ++i)
    if (!std::isfinite(W[i]))
      throw Error("quantize_matrix: weight (" + std::to_string(i / K) + ", " + std::to_string(i % K) + ") is not finite");
  if (p == Precision::bf16) {
    m.bf16.resize(size_t(N * K));
    floats_to_bf16(W, m.bf16.data(), N * K);
    return m;
  }
  m.q.resize(size_t(N * K));
  m.scale.resize(size_t(N));
  m.q_sum.resize(size_t(N));
  for (int64_t n = 0; n < N; ++n) {
    const float* w = W + n * K;
    float amax = 0.0f;
    for (int64_t k = 0; k < K; ++k) amax = std::max(amax, std::fabs(w[k]));
    const float s = amax / 127.0f;
    m.scale[size_t(n)] = s;
    int32_t sum = 0;
    for (int64_t k = 0; k < K; ++k) {
      // |w| <= amax, so |w / s| <= 127 up to rounding; the clamp only guards that rounding.
      const int32_t v = s > 0.0f ? int32_t(std::lrintf(std::clamp(w[k] / s, -127.0f, 127.0f))) : 0;
      m.q[size_t(n * K + k)] = int8_t(v);
      sum += v;
    }
    m.q_sum[size_t(n)] = sum;
  }
  if (o.panels && use_avx512() && N > 0 && K > 0) {
    const int64_t K4 = (K + 3) / 4;
    m.q_panels.assign(size_t((N + 15) / 16 * K4 * 64), 0);
    for (int64_t n = 0; n < N; ++n)
      for (int64_t k = 0; k < K; ++k)
        m.q_panels[size_t(((n / 16) * K4 + k / 4) * 64 + (n % 16) * 4 + k % 4)] = m.q[size_t(n * K + k)];
  }
  return m;
}

std::vector<float> dequantize_matrix(const QuantizedMatrix& m) {
  std::vector<float> w(size_t(m.rows * m.cols));
  for (int64_t n = 0; n < m.rows; ++n)
    for (int64_t k = 0; k < m.cols; ++k) {
      const size_t i = size_t(n * m.cols + k);
      w[i] = m.precision == Precision::bf16 ? from_bf16(m.bf16[i]) : m.scale[size_t(n)] * float(m.q[i]);
    }
  return w;
}

namespace {

// Integer dot products run over blocks of K this long, each summed in int32 (|sum| <= 32768 *
// 255 * 127 < 2^31 even for the VNNI kernel's unsigned input), the blocks in int64.
constexpr int64_t kBlock = 32768;

// One input row quantised: xq[k] = round(x[k] / sx) in [-127, 127], sx = max |x| / 127.
float quantize_row(const float* x, int64_t K, int16_t* xq, uint8_t* xu) {
  float amax = 0.0f;
  for (int64_t k = 0; k < K; ++k) amax = std::max(amax, std::fabs(x[k]));
  const float s = amax / 127.0f;
  const float inv = s > 0.0f ? 1.0f / s : 0.0f;
  for (int64_t k = 0; k < K; ++k) {
    const int32_t v = int32_t(std::lrintf(std::clamp(x[k] * inv, -127.0f, 127.0f)));
    xq[k] = int16_t(v);
    xu[k] = uint8_t(v + 128);  // the VNNI kernel's unsigned operand
  }
  return s;
}

inline void store(float* y, float beta, float v) { *y = beta == 0.0f ? v : beta * *y + v; }

// Each kernel computes R rows of W at once (rows w, w + K, ..., w + (R-1) K) against one input
// row: R independent accumulator chains hide the latency of the multiply-adds, and each input
// chunk is loaded once for R rows. Every row has its own accumulator, updated in the same order
// whatever R is, so a row's result never depends on the rows computed beside it.

// ---- AVX2 (the portable build's baseline) ----

template <int R>
void dot_i8_avx2(const int8_t* w, int64_t K, const int16_t* x, int64_t* out) {
  for (int r = 0; r < R; ++r) out[r] = 0;
  for (int64_t k0 = 0; k0 < K; k0 += kBlock) {
    const int64_t k1 = std::min(K, k0 + kBlock);
    __m256i acc[R];
    for (int r = 0; r < R; ++r) acc[r] = _mm256_setzero_si256();
    int64_t k = k0;
    for (; k + 16 <= k1; k += 16) {
      const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + k));
      for (int r = 0; r < R; ++r) {
        const __m256i wv = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + r * K + k)));
        acc[r] = _mm256_add_epi32(acc[r], _mm256_madd_epi16(wv, xv));
      }
    }
    for (int r = 0; r < R; ++r) {
      alignas(32) int32_t lanes[8];
      _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), acc[r]);
      int32_t s = 0;
      for (int32_t v : lanes) s += v;
      for (int64_t t = k; t < k1; ++t) s += int32_t(w[r * K + t]) * int32_t(x[t]);
      out[r] += s;
    }
  }
}

template <int R>
void dot_bf16_avx2(const uint16_t* w, int64_t K, const float* x, float* out) {
  __m256 acc[R];
  for (int r = 0; r < R; ++r) acc[r] = _mm256_setzero_ps();
  int64_t k = 0;
  for (; k + 8 <= K; k += 8) {
    const __m256 xv = _mm256_loadu_ps(x + k);
    for (int r = 0; r < R; ++r) {
      const __m256i wi =
          _mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + r * K + k))), 16);
      acc[r] = _mm256_fmadd_ps(_mm256_castsi256_ps(wi), xv, acc[r]);
    }
  }
  for (int r = 0; r < R; ++r) {
    alignas(32) float lanes[8];
    _mm256_store_ps(lanes, acc[r]);
    float s = ((lanes[0] + lanes[4]) + (lanes[1] + lanes[5])) + ((lanes[2] + lanes[6]) + (lanes[3] + lanes[7]));
    for (int64_t t = k; t < K; ++t) s += from_bf16(w[r * K + t]) * x[t];
    out[r] = s;
  }
}

// ---- AVX-512 with VNNI ----

// GCC 12's AVX-512 reduction intrinsics start from _mm512_undefined and warn about it.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#ifndef __clang__  // clang has no such group, and says so
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#define RECUR_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni")))

// Sums of (x + 128) * w: the caller subtracts 128 * sum(w), precomputed per row.
template <int R>
RECUR_AVX512 void dot_u8i8_avx512(const int8_t* w, int64_t K, const uint8_t* xu, int64_t* out) {
  for (int r = 0; r < R; ++r) out[r] = 0;
  for (int64_t k0 = 0; k0 < K; k0 += kBlock) {
    const int64_t k1 = std::min(K, k0 + kBlock);
    __m512i acc[R];
    for (int r = 0; r < R; ++r) acc[r] = _mm512_setzero_si512();
    int64_t k = k0;
    for (; k + 64 <= k1; k += 64) {
      const __m512i xv = _mm512_loadu_si512(xu + k);
      for (int r = 0; r < R; ++r) acc[r] = _mm512_dpbusd_epi32(acc[r], xv, _mm512_loadu_si512(w + r * K + k));
    }
    if (k < k1) {
      const __mmask64 m = (__mmask64(1) << (k1 - k)) - 1;  // k1 - k < 64
      const __m512i xv = _mm512_maskz_loadu_epi8(m, xu + k);
      for (int r = 0; r < R; ++r) acc[r] = _mm512_dpbusd_epi32(acc[r], xv, _mm512_maskz_loadu_epi8(m, w + r * K + k));
    }
    for (int r = 0; r < R; ++r) out[r] += _mm512_reduce_add_epi32(acc[r]);
  }
}

template <int R>
RECUR_AVX512 void dot_bf16_avx512(const uint16_t* w, int64_t K, const float* x, float* out) {
  __m512 acc[R];
  for (int r = 0; r < R; ++r) acc[r] = _mm512_setzero_ps();
  int64_t k = 0;
  for (; k + 16 <= K; k += 16) {
    const __m512 xv = _mm512_loadu_ps(x + k);
    for (int r = 0; r < R; ++r) {
      const __m512i wi =
          _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + r * K + k))), 16);
      acc[r] = _mm512_fmadd_ps(_mm512_castsi512_ps(wi), xv, acc[r]);
    }
  }
  if (k < K) {
    const __mmask16 m = __mmask16((1u << (K - k)) - 1);
    const __m512 xv = _mm512_maskz_loadu_ps(m, x + k);
    for (int r = 0; r < R; ++r) {
      const __m512i wi = _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, w + r * K + k)), 16);
      acc[r] = _mm512_fmadd_ps(_mm512_castsi512_ps(wi), xv, acc[r]);
    }
  }
  for (int r = 0; r < R; ++r) out[r] = _mm512_reduce_add_ps(acc[r]);
}
// Input bytes 4g..4g+3 in every lane.
RECUR_AVX512 inline __m512i x4_avx512(const uint8_t* xu, int64_t g) {
  int32_t v;
  std::memcpy(&v, xu + g * 4, 4);
  return _mm512_set1_epi32(v);
}

// Panels [p0, p1) of W's q_panels (rows 16p.. of the matrix) against one input row xu (K
// rounded up to a multiple of 4 bytes; the padding meets zero weights): dot[16 (p - p0) + j]
// = sum_k xu[k] q[16p + j, k]. Four accumulators over the groups of k (vpdpbusd's latency);
// integer sums are exact, so this is the row kernel's result to the bit.
RECUR_AVX512 void dot_u8i8_panels_avx512(const int8_t* P, int64_t K, int64_t p0, int64_t p1, const uint8_t* xu,
                                         int64_t* dot) {
  const int64_t K4 = (K + 3) / 4;
  for (int64_t p = p0; p < p1; ++p) {
    const int8_t* w = P + p * K4 * 64;  // [K4, 16, 4]
    int64_t* out = dot + (p - p0) * 16;
    for (int j = 0; j < 16; ++j) out[j] = 0;
    for (int64_t g0 = 0; g0 < K4; g0 += kBlock / 4) {  // int32 sums stay below 2^31 within a block
      const int64_t g1 = std::min(K4, g0 + kBlock / 4);
      __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
      int64_t g = g0;
      for (; g + 4 <= g1; g += 4) {
        a0 = _mm512_dpbusd_epi32(a0, x4_avx512(xu, g), _mm512_loadu_si512(w + g * 64));
        a1 = _mm512_dpbusd_epi32(a1, x4_avx512(xu, g + 1), _mm512_loadu_si512(w + (g + 1) * 64));
        a2 = _mm512_dpbusd_epi32(a2, x4_avx512(xu, g + 2), _mm512_loadu_si512(w + (g + 2) * 64));
        a3 = _mm512_dpbusd_epi32(a3, x4_avx512(xu, g + 3), _mm512_loadu_si512(w + (g + 3) * 64));
      }
      for (; g < g1; ++g) a0 = _mm512_dpbusd_epi32(a0, x4_avx512(xu, g), _mm512_loadu_si512(w + g * 64));
      alignas(64) int32_t lane[16];
      _mm512_store_si512(lane, _mm512_add_epi32(_mm512_add_epi32(a0, a1), _mm512_add_epi32(a2, a3)));
      for (int j = 0; j < 16; ++j) out[j] += lane[j];
    }
  }
}
#pragma GCC diagnostic pop

// Rows [lo, hi) of W (relative to row0) against every input row.
struct Inputs {
  int64_t B, K;
  const float* x;       // [B, K]
  const int16_t* xq;    // [B, K] int8: quantised rows
  const uint8_t* xu;    // [B, K] int8: the same + 128
  const float* sx;      // [B] int8: their scales
};

// Rows are taken kRows at a time, the last few one by one.
constexpr int kRows = 4;

void product_rows(const Inputs& in, const QuantizedMatrix& W, int64_t row0, int64_t lo, int64_t hi, float beta, float* y,
                  int64_t ldy, bool avx512) {
  const int64_t K = in.K;
  for (int64_t b = 0; b < in.B; ++b) {
    float* yb = y + b * ldy;
    int64_t j = lo;
    if (W.precision == Precision::int8 && avx512 && !W.q_panels.empty() && (row0 + lo) % 16 == 0) {
      // The whole panels inside [lo, hi); a partial last panel goes to the row kernel below.
      const int64_t p0 = (row0 + lo) / 16, p1 = (row0 + hi) / 16;
      int64_t dot[16 * 8];
      for (int64_t p = p0; p < p1; p += 8) {
        const int64_t pe = std::min(p1, p + 8);
        dot_u8i8_panels_avx512(W.q_panels.data(), K, p, pe, in.xu + b * K, dot);
        for (int64_t r = 0; r < (pe - p) * 16; ++r) {
          const int64_t n = p * 16 + r;  // row of W
          const int64_t d = dot[r] - 128 * int64_t(W.q_sum[size_t(n)]);
          store(yb + (n - row0), beta, (W.scale[size_t(n)] * in.sx[b]) * float(d));
        }
      }
      j = p1 * 16 - row0;
    }
    for (; j < hi;) {
      const int64_t n = row0 + j;
      const int rows = hi - j >= kRows ? kRows : 1;
      if (W.precision == Precision::int8) {
        int64_t dot[kRows];
        const int8_t* w = W.q.data() + n * K;
        if (avx512) {
          rows == kRows ? dot_u8i8_avx512<kRows>(w, K, in.xu + b * K, dot) : dot_u8i8_avx512<1>(w, K, in.xu + b * K, dot);
          for (int r = 0; r < rows; ++r) dot[r] -= 128 * int64_t(W.q_sum[size_t(n + r)]);
        } else {
          rows == kRows ? dot_i8_avx2<kRows>(w, K, in.xq + b * K, dot) : dot_i8_avx2<1>(w, K, in.xq + b * K, dot);
        }
        for (int r = 0; r < rows; ++r) store(yb + j + r, beta, (W.scale[size_t(n + r)] * in.sx[b]) * float(dot[r]));
      } else {
        float dot[kRows];
        const uint16_t* w = W.bf16.data() + n * K;
        if (avx512) {
          rows == kRows ? dot_bf16_avx512<kRows>(w, K, in.x + b * K, dot) : dot_bf16_avx512<1>(w, K, in.x + b * K, dot);
        } else {
          rows == kRows ? dot_bf16_avx2<kRows>(w, K, in.x + b * K, dot) : dot_bf16_avx2<1>(w, K, in.x + b * K, dot);
        }
        for (int r = 0; r < rows; ++r) store(yb + j + r, beta, dot[r]);
      }
      j += rows;
    }
  }
}

// Compressed bytes read per product before a second thread pays for its fork (256 KiB, as
// step_product's float32 rule: a 1x128 LSTM's recurrent matrix, 64 KiB in int8, stays on one
// thread, where at the old 64 KiB bound it was split and generation ran at 0.25x on 2 threads;
// a 2x512's 1 MiB is split).
constexpr int64_t kSplitBytes = int64_t(1) << 18;

}  // namespace

bool cpu_has_bf16() {
  static const bool yes = [] {
    const char* isa = std::getenv("RECUR_ISA");
    if (isa && std::string_view(isa) == "avx2") return false;
    __builtin_cpu_init();
    return bool(__builtin_cpu_supports("avx512bf16"));
  }();
  return yes;
}

std::string_view quantized_kernels() { return use_avx512() ? "avx512-vnni" : "avx2"; }

void quantized_product(int64_t B, const float* x, const QuantizedMatrix& W, int64_t row0, int64_t n_rows, float beta,
                       float* y, int64_t ldy) {
  if (row0 < 0 || n_rows < 0 || row0 + n_rows > W.rows || B < 0)
    throw ShapeError("quantized_product: rows [" + std::to_string(row0) + ", " + std::to_string(row0 + n_rows) +
                     ") of a matrix of " + std::to_string(W.rows));
  const int64_t K = W.cols;
  const bool avx512 = use_avx512();
  // Scratch for the quantised input rows, kept per thread so the calls never allocate once warm.
  thread_local std::vector<int16_t> xq;
  thread_local std::vector<uint8_t> xu;
  thread_local std::vector<float> sx;
  Inputs in{.B = B, .K = K, .x = x, .xq = nullptr, .xu = nullptr, .sx = nullptr};
  if (W.precision == Precision::int8) {
    xq.resize(size_t(B * K));
    xu.resize(size_t(B * K + 4));  // + 4: the panel kernel reads the last row's K up to a multiple of 4
    sx.resize(size_t(B));
    for (int64_t b = 0; b < B; ++b) sx[size_t(b)] = quantize_row(x + b * K, K, xq.data() + b * K, xu.data() + b * K);
    in.xq = xq.data();
    in.xu = xu.data();
    in.sx = sx.data();
  }
  const int64_t bytes = n_rows * K * (W.precision == Precision::int8 ? 1 : 2) * B;
  const int threads = omp_in_parallel() ? 1 : omp_get_max_threads();
  if (threads < 2 || bytes < kSplitBytes || n_rows < 32) {
    product_rows(in, W, row0, 0, n_rows, beta, y, ldy, avx512);
    return;
  }
  // Each thread takes whole rows (a multiple of 16 apart): every output is one dot product in
  // a fixed order whoever computes it.
#pragma omp parallel num_threads(threads)
  {
    const int64_t t = omp_get_thread_num(), n = omp_get_num_threads();
    const int64_t lo = (n_rows * t / n) & ~int64_t(15), hi = t + 1 == n ? n_rows : (n_rows * (t + 1) / n) & ~int64_t(15);
    if (hi > lo) product_rows(in, W, row0, lo, hi, beta, y, ldy, avx512);
  }
}

}  // namespace recur
