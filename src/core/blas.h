// src/core/blas.h - thin row-major CBLAS wrappers, overloaded for float and double so templated
// code calls one name. Internal to the library (not part of include/recur/).
#pragma once

#include <cblas.h>

#include <cstdint>

namespace recur::blas {

// A product with one output row (batch 1: generation, scoring one sequence) or one output
// column is a matrix-vector product; OpenBLAS's GEMM routes such shapes through its small-matrix
// kernels, which re-read the matrix in a GEMM-shaped order and were measured at several times
// the cost of GEMV for a [1, H] x [H, 4H] step. Describes C = op(A) op(B) as y = op(M) x.
struct Gemv {
  bool mat_is_a;            // M is A (n == 1) or B (m == 1)
  bool trans;               // whether M is used transposed, in row-major terms
  int64_t rows, cols, ld;   // M as stored: [rows, cols] with leading dimension ld
  int64_t incx, incy;       // strides of the vector x (from the other operand) and of y in C
};

inline Gemv as_gemv(bool ta, bool tb, int64_t m, int64_t n, int64_t k, int64_t lda, int64_t ldb, int64_t ldc) {
  if (m == 1) {
    // C[1, n] = op(A)[1, k] op(B)[k, n]  <=>  c = op(B)^T a.  B stored [n, k] if tb, else [k, n].
    return {.mat_is_a = false, .trans = !tb, .rows = tb ? n : k, .cols = tb ? k : n, .ld = ldb,
            .incx = ta ? lda : 1, .incy = 1};
  }
  // n == 1: C[m, 1] = op(A)[m, k] op(B)[k, 1]  <=>  c = op(A) b.  A stored [k, m] if ta, else [m, k].
  return {.mat_is_a = true, .trans = ta, .rows = ta ? k : m, .cols = ta ? m : k, .ld = lda,
          .incx = tb ? 1 : ldb, .incy = ldc};
}

// C[m, n] = alpha * op(A)[m, k] @ op(B)[k, n] + beta * C, all row-major with leading dims.
//
// Threads (blas.cpp): OpenBLAS's own threading gives results that depend on the thread count
// (its threaded driver blocks the product differently: measured on 1 vs 2 threads, most entries
// of a [700, 200] x [200, 800] product differ in the last bits), so recur keeps OpenBLAS at one
// thread and splits a product itself: into tiles of C whose shape depends only on m, n and k
// (row blocks, or column blocks for few rows; one tile for a small product), each tile one
// single-threaded call, the tiles shared among the OpenMP threads. The same tiles are computed
// at any thread count, so the bits are the same; inside a parallel region they run in turn.
// Float products run on oneDNN's sgemm where recur is built with oneDNN (blas.cpp says why).
//
// seed (a row of n, or null): C = alpha * op(A) op(B) + seed in every row, beta unused; a linear
// layer's bias, written tile by tile just before the tile's product instead of in a pass of its own.
void gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda, const float* b,
          int64_t ldb, float beta, float* c, int64_t ldc, const float* seed = nullptr);
void gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, double alpha, const double* a, int64_t lda,
          const double* b, int64_t ldb, double beta, double* c, int64_t ldc, const double* seed = nullptr);

// bfloat16 products (--precision bf16's linear layers, model/linear.h): C[m, n] = op(A) op(B) +
// beta * C with A and B given as bfloat16 bits (floats_to_bf16, core/quantize.h) and C float32,
// every product accumulated in float32, through oneDNN's matmul (its AVX512-BF16 kernels). beta
// is 0 or 1. Returns false and touches nothing where there is no such kernel: a build without
// oneDNN, a processor without AVX512-BF16 (cpu_has_bf16, which RECUR_ISA=avx2 turns off), or a
// shape oneDNN would only run on its reference code; the caller then multiplies in float32.
// oneDNN splits the product among the pool's threads by output blocks, each block's sum in one
// order at any count (tests/test_threads.cpp); under --deterministic it runs on one thread.
// bias (a row of n float32, or null) is added to every row of the product by the kernel itself
// (oneDNN's matmul bias), sparing a linear layer the pass that would seed C with it.
bool gemm_bf16(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const uint16_t* a, int64_t lda, const uint16_t* b,
               int64_t ldb, float beta, float* c, int64_t ldc, const float* bias = nullptr);

// The tiling of a product (exposed for tests): C is cut into row_tiles x col_tiles tiles of
// tile_rows x tile_cols (the last ones smaller), either row_tiles or col_tiles being 1.
struct GemmTiles {
  int64_t tile_rows = 0, tile_cols = 0, row_tiles = 1, col_tiles = 1;
  int64_t count() const { return row_tiles * col_tiles; }
};
GemmTiles gemm_tiles(int64_t m, int64_t n, int64_t k);

// A float product whose B operand stays the same over many calls: a recurrent layer's W_hh, used
// once per step for T steps. op(B) is reordered once (pack) into the blocked layout of oneDNN's
// matmul kernels, so the steps stream it without repacking it each time as sgemm does; each step
// then runs C[m, n] = A[m, k] op(B)[k, n] (+ C when accumulate). pack returns false, and the
// caller multiplies with gemm, where there is no such kernel (no oneDNN in the build, or only its
// reference code for the shape). oneDNN splits each product among the pool's threads by blocks
// of C, each block's sum over k in one order at any count, so the bits do not depend on the
// thread count (tests/test_threads.cpp); --deterministic runs it on one thread.
class PackedProduct {
 public:
  PackedProduct();
  ~PackedProduct();
  PackedProduct(const PackedProduct&) = delete;
  PackedProduct& operator=(const PackedProduct&) = delete;
  // B stored [k, n] (rows ldb apart), or [n, k] read transposed when tb; A's rows lda apart, C's ldc.
  bool pack(bool tb, int64_t m, int64_t n, int64_t k, const float* b, int64_t ldb, int64_t lda, int64_t ldc,
            bool accumulate);
  void run(const float* a, float* c) const;  // after a successful pack

 private:
  struct Impl;
  Impl* impl_;
};

}  // namespace recur::blas
