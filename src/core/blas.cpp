// Row-major GEMM through OpenBLAS, split into shape-determined tiles among the OpenMP threads so
// that results do not depend on the thread count (see blas.h).
#include "blas.h"

#include "pool_scope.h"

#include <omp.h>

#include <algorithm>

extern "C" void openblas_set_num_threads(int num_threads);

namespace recur::blas {

namespace {

// Products below this many multiply-adds (about 0.1 ms on one core) are one call: splitting
// them costs more in OpenMP fork/join than it saves (a batch-20 LSTM step, [20, 200] x
// [200, 800], 3.2M, took longer on 2 threads than on 1, through OpenBLAS's threads as through tiles).
constexpr int64_t kSplitMacs = int64_t(1) << 23;
// Row tiles of about this many rows (each tile repacks op(B), so tiles are kept tall enough
// that the packing stays a small share: 1/128 of the tile's arithmetic); column tiles of about
// this many columns when there are too few rows to cut.
constexpr int64_t kTileRows = 128, kTileCols = 256;
constexpr int64_t kAlign = 16;  // tile edges on multiples of 16: whole vector registers

int64_t round_up(int64_t x, int64_t to) { return (x + to - 1) / to * to; }

// OpenBLAS at one thread, once per process, before the first product: recur's threads are the
// OpenMP ones (threads.cpp keeps it so). This is all the pthread build of OpenBLAS needs. Its
// OpenMP build, the one recur loads, implements it by calling omp_set_num_threads(1), which would
// shrink the whole pool (oneDNN's primitives and recur's own loops ran on one thread at any
// --threads until the pool's size was put back here), and ignores it afterwards: see call().
void single_threaded_openblas() {
  static const bool once = [] {
    const int pool = omp_get_max_threads();
    openblas_set_num_threads(1);
    omp_set_num_threads(pool);
    return true;
  }();
  (void)once;
}

// OpenBLAS's OpenMP build sizes its threads from omp_get_max_threads() at every call, unless the
// call is inside an active parallel region (a tile's call is). A product past its threshold
// (~262k multiply-adds) called outside one would be split by OpenBLAS, and its bits would depend
// on the thread count, so each call outside one runs in a pool of one (pool_scope.h).
inline void call(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
                 const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  const detail::PoolOfOne serial(!omp_in_parallel());
  if ((m == 1 || n == 1) && k > 0) {
    const Gemv v = as_gemv(ta, tb, m, n, k, lda, ldb, ldc);
    cblas_sgemv(CblasRowMajor, v.trans ? CblasTrans : CblasNoTrans, int(v.rows), int(v.cols), alpha, v.mat_is_a ? a : b,
                int(v.ld), v.mat_is_a ? b : a, int(v.incx), beta, c, int(v.incy));
    return;
  }
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, int(m), int(n), int(k),
              alpha, a, int(lda), b, int(ldb), beta, c, int(ldc));
}
inline void call(bool ta, bool tb, int64_t m, int64_t n, int64_t k, double alpha, const double* a, int64_t lda,
                 const double* b, int64_t ldb, double beta, double* c, int64_t ldc) {
  const detail::PoolOfOne serial(!omp_in_parallel());
  if ((m == 1 || n == 1) && k > 0) {
    const Gemv v = as_gemv(ta, tb, m, n, k, lda, ldb, ldc);
    cblas_dgemv(CblasRowMajor, v.trans ? CblasTrans : CblasNoTrans, int(v.rows), int(v.cols), alpha, v.mat_is_a ? a : b,
                int(v.ld), v.mat_is_a ? b : a, int(v.incx), beta, c, int(v.incy));
    return;
  }
  cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, int(m), int(n), int(k),
              alpha, a, int(lda), b, int(ldb), beta, c, int(ldc));
}

// op(A) rows [r0, r0 + rows) and op(B) columns [c0, c0 + cols): where they start in memory.
template <class T>
void tiled(bool ta, bool tb, int64_t m, int64_t n, int64_t k, T alpha, const T* a, int64_t lda, const T* b, int64_t ldb,
           T beta, T* c, int64_t ldc) {
  if (m == 0 || n == 0) return;
  single_threaded_openblas();
  const GemmTiles t = gemm_tiles(m, n, k);
  if (t.count() == 1) return call(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  const bool parallel = omp_get_max_threads() > 1 && !omp_in_parallel();
#pragma omp parallel for schedule(static) if (parallel)
  for (int64_t i = 0; i < t.count(); ++i) {
    const int64_t r0 = (i / t.col_tiles) * t.tile_rows, c0 = (i % t.col_tiles) * t.tile_cols;
    const int64_t rows = std::min(t.tile_rows, m - r0), cols = std::min(t.tile_cols, n - c0);
    const T* ap = ta ? a + r0 : a + r0 * lda;  // op(A) = A^T: row r of op(A) is column r of A
    const T* bp = tb ? b + c0 * ldb : b + c0;  // op(B) = B^T: column c of op(B) is row c of B
    call(ta, tb, rows, cols, k, alpha, ap, lda, bp, ldb, beta, c + r0 * ldc + c0, ldc);
  }
}

}  // namespace

GemmTiles gemm_tiles(int64_t m, int64_t n, int64_t k) {
  GemmTiles t{.tile_rows = m, .tile_cols = n};
  if (m * n * k < kSplitMacs || m == 1 || n == 1) return t;
  if (m >= 2 * kTileRows) {
    t.row_tiles = (m + kTileRows - 1) / kTileRows;
    t.tile_rows = round_up((m + t.row_tiles - 1) / t.row_tiles, kAlign);
    t.row_tiles = (m + t.tile_rows - 1) / t.tile_rows;
  } else if (n >= kTileCols) {
    t.col_tiles = std::max<int64_t>(2, (n + kTileCols - 1) / kTileCols);
    t.tile_cols = round_up((n + t.col_tiles - 1) / t.col_tiles, kAlign);
    t.col_tiles = (n + t.tile_cols - 1) / t.tile_cols;
  }
  return t;
}

void gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda, const float* b,
          int64_t ldb, float beta, float* c, int64_t ldc) {
  tiled(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}
void gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, double alpha, const double* a, int64_t lda,
          const double* b, int64_t ldb, double beta, double* c, int64_t ldc) {
  tiled(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

}  // namespace recur::blas
