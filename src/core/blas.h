// src/blas.h - thin row-major CBLAS wrappers, overloaded for float and double so templated
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
inline void gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
                 const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  if (m == 0 || n == 0) return;
  if ((m == 1 || n == 1) && k > 0) {
    const Gemv v = as_gemv(ta, tb, m, n, k, lda, ldb, ldc);
    cblas_sgemv(CblasRowMajor, v.trans ? CblasTrans : CblasNoTrans, int(v.rows), int(v.cols), alpha, v.mat_is_a ? a : b,
                int(v.ld), v.mat_is_a ? b : a, int(v.incx), beta, c, int(v.incy));
    return;
  }
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, int(m), int(n),
              int(k), alpha, a, int(lda), b, int(ldb), beta, c, int(ldc));
}
inline void gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, double alpha, const double* a, int64_t lda,
                 const double* b, int64_t ldb, double beta, double* c, int64_t ldc) {
  if (m == 0 || n == 0) return;
  if ((m == 1 || n == 1) && k > 0) {
    const Gemv v = as_gemv(ta, tb, m, n, k, lda, ldb, ldc);
    cblas_dgemv(CblasRowMajor, v.trans ? CblasTrans : CblasNoTrans, int(v.rows), int(v.cols), alpha, v.mat_is_a ? a : b,
                int(v.ld), v.mat_is_a ? b : a, int(v.incx), beta, c, int(v.incy));
    return;
  }
  cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, int(m), int(n),
              int(k), alpha, a, int(lda), b, int(ldb), beta, c, int(ldc));
}

}  // namespace recur::blas
