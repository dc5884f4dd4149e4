// Row-major GEMM, split into shape-determined tiles among the OpenMP threads so that results do
// not depend on the thread count (see blas.h). Float products run on oneDNN's sgemm where recur
// is built with oneDNN, double products and matrix-vector products on OpenBLAS.
#include "blas.h"

#include "pool_scope.h"

#include <omp.h>

#ifdef RECUR_HAVE_ONEDNN
#include <oneapi/dnnl/dnnl.h>
#endif

#include <algorithm>

extern "C" void openblas_set_num_threads(int num_threads);

namespace recur::blas {

namespace {

// Products below this many multiply-adds (about 0.1 ms on one core) are one call: splitting
// them costs more in OpenMP fork/join than it saves (a batch-20 LSTM step, [20, 200] x
// [200, 800], 3.2M, took longer on 2 threads than on 1, through OpenBLAS's threads as through tiles).
constexpr int64_t kSplitMacs = int64_t(1) << 23;
// Row tiles of about this many rows (each repacks op(B), so they are kept tall enough that the
// packing stays a small share of the tile's arithmetic); column tiles of about this many columns
// when there are too few rows to cut; wide column tiles of about kWideCols columns for products
// with at least kWideTiles of them. Wide column tiles share op(A), the smaller operand there, and
// were the fastest cut for oneDNN's sgemm on one and two threads (PTB's output layer [400, 200] x
// [200, 10000]: 187 GFLOP/s on one thread and 376 on two by 512 columns, against 164 and 269 by
// 128 rows; an H = 1024 LSTM's input product: 200 and 400 against 173 and 283).
constexpr int64_t kTileRows = 128, kTileCols = 256, kWideCols = 512, kWideTiles = 4;
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

// OpenBLAS's OpenMP build and oneDNN's sgemm size their threads from omp_get_max_threads() at
// every call, unless the call is inside an active parallel region (a tile's call is). A product
// called outside one would be split by them, and its bits would depend on the thread count, so
// each call outside one runs in a pool of one (pool_scope.h).
inline void call(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
                 const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  const detail::PoolOfOne serial(!omp_in_parallel());
  if ((m == 1 || n == 1) && k > 0) {
    const Gemv v = as_gemv(ta, tb, m, n, k, lda, ldb, ldc);
    cblas_sgemv(CblasRowMajor, v.trans ? CblasTrans : CblasNoTrans, int(v.rows), int(v.cols), alpha, v.mat_is_a ? a : b,
                int(v.ld), v.mat_is_a ? b : a, int(v.incx), beta, c, int(v.incy));
    return;
  }
#ifdef RECUR_HAVE_ONEDNN
  // oneDNN's sgemm: its JIT kernels use the processor's widest vectors, where Debian's OpenBLAS
  // 0.3.21 ran at about half of this machine's AVX-512 peak (AMD Zen 5: 90-100 GFLOP/s against
  // 150-200 for oneDNN, at every product size the suite has, down to [2, 64] x [64, 64]). On one
  // thread, here or in a tile's parallel region, it splits nothing, so a tile's bits depend only
  // on the tile's shape. OpenBLAS's GEMV stays: oneDNN was no faster for one row.
  if (k > 0 && dnnl_sgemm(ta ? 'T' : 'N', tb ? 'T' : 'N', m, n, k, alpha, a, lda, b, ldb, beta, c, ldc) == dnnl_success)
    return;
#endif
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

// op(A) rows [r0, r0 + rows) and op(B) columns [c0, c0 + cols): where they start in memory. With
// a seed, each tile first writes it into its rows of C, so the product adds onto C while that
// tile of it is still in cache.
template <class T>
void tiled(bool ta, bool tb, int64_t m, int64_t n, int64_t k, T alpha, const T* a, int64_t lda, const T* b, int64_t ldb,
           T beta, T* c, int64_t ldc, const T* seed) {
  if (m == 0 || n == 0) return;
  single_threaded_openblas();
  const GemmTiles t = gemm_tiles(m, n, k);
  const auto tile = [&](int64_t i) {
    const int64_t r0 = (i / t.col_tiles) * t.tile_rows, c0 = (i % t.col_tiles) * t.tile_cols;
    const int64_t rows = std::min(t.tile_rows, m - r0), cols = std::min(t.tile_cols, n - c0);
    const T* ap = ta ? a + r0 : a + r0 * lda;  // op(A) = A^T: row r of op(A) is column r of A
    const T* bp = tb ? b + c0 * ldb : b + c0;  // op(B) = B^T: column c of op(B) is row c of B
    T* cp = c + r0 * ldc + c0;
    if (seed)
      for (int64_t r = 0; r < rows; ++r) std::copy_n(seed + c0, cols, cp + r * ldc);
    call(ta, tb, rows, cols, k, alpha, ap, lda, bp, ldb, seed ? T(1) : beta, cp, ldc);
  };
  if (t.count() == 1) return tile(0);
  const bool parallel = omp_get_max_threads() > 1 && !omp_in_parallel();
#pragma omp parallel for schedule(static) if (parallel)
  for (int64_t i = 0; i < t.count(); ++i) tile(i);
}

}  // namespace

GemmTiles gemm_tiles(int64_t m, int64_t n, int64_t k) {
  GemmTiles t{.tile_rows = m, .tile_cols = n};
  if (m * n * k < kSplitMacs || m == 1 || n == 1) return t;
  const auto by_columns = [&](int64_t width) {
    t.col_tiles = std::max<int64_t>(2, (n + width - 1) / width);
    t.tile_cols = round_up((n + t.col_tiles - 1) / t.col_tiles, kAlign);
    t.col_tiles = (n + t.tile_cols - 1) / t.tile_cols;
  };
  if (n >= kWideTiles * kWideCols) {
    by_columns(kWideCols);
  } else if (m >= 2 * kTileRows) {
    t.row_tiles = (m + kTileRows - 1) / kTileRows;
    t.tile_rows = round_up((m + t.row_tiles - 1) / t.row_tiles, kAlign);
    t.row_tiles = (m + t.tile_rows - 1) / t.tile_rows;
  } else if (n >= kTileCols) {
    by_columns(kTileCols);
  }
  return t;
}

void gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda, const float* b,
          int64_t ldb, float beta, float* c, int64_t ldc, const float* seed) {
  tiled(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, seed);
}
void gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, double alpha, const double* a, int64_t lda,
          const double* b, int64_t ldb, double beta, double* c, int64_t ldc, const double* seed) {
  tiled(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, seed);
}

}  // namespace recur::blas
