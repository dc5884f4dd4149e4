// recur/core/quantize.h - weights compressed for inference: bfloat16 and int8 copies of a weight
// matrix and the matrix-vector products over them (batch-1 and small-batch generation).
//
// Generation one token at a time reads every weight of the network once per token and does two
// flops with it, so it is bound by how fast the weights come from memory, not by arithmetic:
// fewer bytes per weight are fewer nanoseconds per token.
//   bf16  W [N, K] rounded to bfloat16 (nearest even), products in float32 with float32 inputs:
//         half the bytes, relative error of each weight <= 2^-9.
//   int8  per-row symmetric: W[n, k] ~ scale[n] * q[n, k], q in [-127, 127], scale[n] =
//         max_k |W[n, k]| / 127. At each product the input row x [K] is quantised the same way
//         (one scale per row, as PyTorch's dynamic quantisation does), the dot product is exact
//         in integers, and y[n] += scale[n] * scale_x * dot: a quarter of the bytes.
// Both are deterministic: int8 products are exact integer sums (the same result on every code
// path and thread count); bf16 products sum in a fixed order per code path, and the rows of W
// are split among threads whole, so the thread count never changes a bit.
//
// Kernels: AVX-512 (VNNI vpdpbusd for int8, 64 products per instruction; AVX512-BF16 is not
// needed since the weights are widened to float32) where the processor has it, else AVX2.
// The environment variable RECUR_ISA=avx2 forces the AVX2 kernels (tests use it to check that
// both paths agree; docs/speed.md). int8 results are identical on both; bf16 results agree to
// float32 rounding.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace recur {

// How weights are stored and multiplied. f32 is the training precision and the default.
enum class Precision { f32, bf16, int8 };
std::string_view precision_name(Precision p);  // "f32", "bf16", "int8"
// "f32" (or "float32", "fp32"), "bf16" (or "bfloat16"), "int8"; Error naming `what` otherwise.
Precision parse_precision(std::string_view text, std::string_view what);

// A weight matrix W [N, K] stored in a compressed precision (never f32).
struct QuantizedMatrix {
  Precision precision = Precision::int8;
  int64_t rows = 0, cols = 0;  // N, K
  std::vector<int8_t> q;       // [N, K] int8 values
  std::vector<float> scale;    // [N] int8 row scales
  std::vector<int32_t> q_sum;  // [N] sum_k q[n, k] (the VNNI kernel's correction for its unsigned input)
  std::vector<uint16_t> bf16;  // [N, K] bfloat16 bits
  // int8 on AVX-512 VNNI: q again in panels of 16 rows, [ceil(N/16), ceil(K/4), 16, 4] (row j's
  // four values of a group of k side by side, zero-padded), so that one vpdpbusd takes 64
  // weights from one contiguous stream; empty where the processor lacks VNNI.
  std::vector<int8_t> q_panels;
};

struct QuantizeOptions {
  // Build q_panels where the processor reads them; off for a copy that is only written to a
  // file (`recur export`), which stores q and scale alone.
  bool panels = true;
};

// W [N, K] row-major (leading dimension K) -> its compressed copy. Error for f32 or a
// non-finite weight; ShapeError for a negative size.
QuantizedMatrix quantize_matrix(const float* W, int64_t N, int64_t K, Precision p, QuantizeOptions o = {});
// The float32 values the compressed matrix stands for, [N, K].
std::vector<float> dequantize_matrix(const QuantizedMatrix& m);

// float <-> bfloat16 bits (round to nearest even; NaN stays NaN).
uint16_t float_to_bf16(float x);
float bf16_to_float(uint16_t b);

// n floats -> bfloat16 bits (as float_to_bf16), and back (exact).
void floats_to_bf16(const float* x, uint16_t* out, int64_t n);
void bf16_to_floats(const uint16_t* x, float* out, int64_t n);
// Whether this processor multiplies bfloat16 natively (AVX512-BF16), after RECUR_ISA (avx2:
// no): bf16 training needs it (rnn.h's rnn_bf16_unsupported).
bool cpu_has_bf16();

// y[b, n - row0] = beta * y[b, n - row0] + (x[b, :] . W[n, :]) for n in [row0, row0 + n_rows),
// b in [0, B): rows row0.. of the compressed W against B input rows x [B, K] (leading dimension
// K), outputs ldy apart. At B = 1 the rows are split among the OpenMP threads when W is large
// enough to pay for it; the result does not depend on the thread count. ShapeError for a row
// range outside W.
void quantized_product(int64_t B, const float* x, const QuantizedMatrix& W, int64_t row0, int64_t n_rows, float beta,
                       float* y, int64_t ldy);

// The kernel family quantized_product uses on this processor: "avx512-vnni" or "avx2"
// (after RECUR_ISA).
std::string_view quantized_kernels();

}  // namespace recur
