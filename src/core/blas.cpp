// The products' fixed partition: see blas.h.
#include "blas.h"

#include <omp.h>

#include <algorithm>
#include <mutex>

extern "C" void openblas_set_num_threads(int num_threads);  // not in every BLAS's cblas.h

namespace recur::blas {

namespace {

// Below ~2 MFLOP a fork costs more than it saves. Blocks are at least kMinBlock wide (a
// multiple of 16: whole cache lines of floats, the width of the AVX-512 kernels) and at most
// kMaxBlocks in number, so 1, 2, 4, 8 or 16 threads share them evenly.
constexpr int64_t kMinSplitFlops = int64_t(1) << 21;
constexpr int64_t kMinBlock = 128;
constexpr int64_t kMaxBlocks = 16;

Split split_extent(int64_t extent, bool by_rows) {
  const int64_t parts = std::min(kMaxBlocks, extent / kMinBlock);
  const int64_t width = ((extent + parts - 1) / parts + 15) & ~int64_t(15);
  return {.by_rows = by_rows, .width = width, .count = (extent + width - 1) / width};
}

void blas_call(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
               const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  if ((m == 1 || n == 1) && k > 0) {
    const Gemv v = as_gemv(ta, tb, m, n, k, lda, ldb, ldc);
    cblas_sgemv(CblasRowMajor, v.trans ? CblasTrans : CblasNoTrans, int(v.rows), int(v.cols), alpha, v.mat_is_a ? a : b,
                int(v.ld), v.mat_is_a ? b : a, int(v.incx), beta, c, int(v.incy));
    return;
  }
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, int(m), int(n), int(k),
              alpha, a, int(lda), b, int(ldb), beta, c, int(ldc));
}

void blas_call(bool ta, bool tb, int64_t m, int64_t n, int64_t k, double alpha, const double* a, int64_t lda,
               const double* b, int64_t ldb, double beta, double* c, int64_t ldc) {
  if ((m == 1 || n == 1) && k > 0) {
    const Gemv v = as_gemv(ta, tb, m, n, k, lda, ldb, ldc);
    cblas_dgemv(CblasRowMajor, v.trans ? CblasTrans : CblasNoTrans, int(v.rows), int(v.cols), alpha, v.mat_is_a ? a : b,
                int(v.ld), v.mat_is_a ? b : a, int(v.incx), beta, c, int(v.incy));
    return;
  }
  cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, int(m), int(n), int(k),
              alpha, a, int(lda), b, int(ldb), beta, c, int(ldc));
}

// OpenBLAS's OpenMP build sizes its own partition from omp_get_max_threads() whatever
// openblas_set_num_threads said (num_cpu_avail in its common_thread.h), inside a parallel region
// too, where the partition then runs on one thread but still changes the summation order. Only
// a call made with that at 1 is one plain single-threaded product. The setting is per thread
// (OpenMP's nthreads-var belongs to the task), so each block sets it for its own call.
class OneOmpThread {
 public:
  OneOmpThread() : saved_(omp_get_max_threads()) {
    if (saved_ != 1) omp_set_num_threads(1);
  }
  ~OneOmpThread() {
    if (saved_ != 1) omp_set_num_threads(saved_);
  }
  OneOmpThread(const OneOmpThread&) = delete;
  OneOmpThread& operator=(const OneOmpThread&) = delete;

 private:
  int saved_;
};

template <typename T>
void gemm_blocks(bool ta, bool tb, int64_t m, int64_t n, int64_t k, T alpha, const T* a, int64_t lda, const T* b,
                 int64_t ldb, T beta, T* c, int64_t ldc) {
  if (m == 0 || n == 0) return;
  pin_blas_to_one_thread();
  const Split s = gemm_split(m, n, k);
  // Block j: columns [j*w, ...) of C are columns of op(B) (B's rows when tb); rows of C are rows
  // of op(A) (A's columns when ta).
  auto block = [&](int64_t j) {
    const OneOmpThread one;
    const int64_t lo = j * s.width, len = std::min(s.width, (s.by_rows ? m : n) - lo);
    if (s.by_rows)
      blas_call(ta, tb, len, n, k, alpha, ta ? a + lo : a + lo * lda, lda, b, ldb, beta, c + lo * ldc, ldc);
    else
      blas_call(ta, tb, m, len, k, alpha, a, lda, tb ? b + lo * ldb : b + lo, ldb, beta, c + lo, ldc);
  };
  if (s.count == 1 || omp_in_parallel() || omp_get_max_threads() == 1) {
    for (int64_t j = 0; j < s.count; ++j) block(j);
    return;
  }
#pragma omp parallel for schedule(static)
  for (int64_t j = 0; j < s.count; ++j) block(j);
}

}  // namespace

Split gemm_split(int64_t m, int64_t n, int64_t k) {
  if (double(m) * double(n) * double(k) < double(kMinSplitFlops)) return {.by_rows = false, .width = n, .count = 1};
  if (n >= 2 * kMinBlock) return split_extent(n, false);
  if (m >= 2 * kMinBlock) return split_extent(m, true);
  return {.by_rows = false, .width = n, .count = 1};
}

void pin_blas_to_one_thread() {
  static std::once_flag once;
  std::call_once(once, [] { openblas_set_num_threads(1); });
}

void gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda, const float* b,
          int64_t ldb, float beta, float* c, int64_t ldc) {
  gemm_blocks(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

void gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, double alpha, const double* a, int64_t lda,
          const double* b, int64_t ldb, double beta, double* c, int64_t ldc) {
  gemm_blocks(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

}  // namespace recur::blas
