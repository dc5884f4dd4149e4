// Results do not depend on the thread count (issue 13): the matrix products are cut into tiles
// fixed by their shape (src/core/blas.h) and every other split keeps its order, so training at 1,
// 2 or 3 threads logs the same bits through recur's reference cells; through oneDNN's primitives
// with --deterministic, which runs them on one thread (core/threads.h).
#include <gtest/gtest.h>

#include <cmath>
#include <initializer_list>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "blas.h"
#include "cli_run.h"
#include "recur/core/random.h"
#include "recur/core/rnn.h"
#include "recur/core/threads.h"
#include "step_kernels.h"
#include "test_util.h"

extern "C" int omp_get_max_threads();  // libgomp, linked through recur_core

namespace recur {
namespace {

// Each vector in turn, every value drawn uniformly from [-1, 1).
void fill_uniform(Rng& rng, std::initializer_list<std::vector<float>*> vectors) {
  for (std::vector<float>* v : vectors)
    for (float& x : *v) x = float(rng.uniform(-1, 1));
}

TEST(GemmTiles, FixedByTheShapeAndCoveringTheProduct) {
  for (auto [m, n, k] : {std::tuple<int64_t, int64_t, int64_t>{700, 800, 200}, {20, 800, 200}, {6022, 200, 700},
                         {3, 5, 7}, {1, 4000, 4000}, {257, 300, 100}, {100, 257, 100}, {400, 10000, 200}}) {
    const blas::GemmTiles t = blas::gemm_tiles(m, n, k);
    EXPECT_TRUE(t.row_tiles == 1 || t.col_tiles == 1);
    EXPECT_GE(t.row_tiles * t.tile_rows, m);
    EXPECT_LT((t.row_tiles - 1) * t.tile_rows, m);
    EXPECT_GE(t.col_tiles * t.tile_cols, n);
    EXPECT_LT((t.col_tiles - 1) * t.tile_cols, n);
  }
  EXPECT_EQ(blas::gemm_tiles(3, 5, 7).count(), 1);        // small: one call
  EXPECT_EQ(blas::gemm_tiles(1, 4000, 4000).count(), 1);  // a matrix-vector product
  EXPECT_GT(blas::gemm_tiles(700, 800, 200).row_tiles, 1);
  EXPECT_EQ(blas::gemm_tiles(20, 800, 200).count(), 1);      // a batch-20 LSTM step: too small to split
  EXPECT_GT(blas::gemm_tiles(32, 2048, 512).col_tiles, 1);   // a batch-32 512-unit LSTM step: by columns
  EXPECT_EQ(blas::gemm_tiles(400, 10000, 200).col_tiles, 20);  // PTB's output layer: wide columns
  EXPECT_EQ(blas::gemm_tiles(400, 200, 10000).row_tiles, 4);   // its input gradient: by rows
}

// The pool keeps its size through the process's first product. OpenBLAS's OpenMP build makes its
// own threads single by calling omp_set_num_threads(1); until blas.cpp put the size back, every
// --threads N ran oneDNN and recur's loops on one thread after the first product (2x512 LSTM
// training: 8.3k tokens/s at 2 threads against 14k). Each test is its own process (ctest), so
// this product is the first.
TEST(Gemm, TheFirstProductLeavesThePoolItsSize) {
  set_num_threads(2);
  ASSERT_EQ(omp_get_max_threads(), 2);
  std::vector<float> a(size_t(300 * 200), 0.5f), b(size_t(200 * 400), 0.25f), c(size_t(300 * 400));
  blas::gemm(false, false, 300, 400, 200, 1.0f, a.data(), 200, b.data(), 400, 0.0f, c.data(), 400);
  EXPECT_FLOAT_EQ(c[0], 200 * 0.125f);
  EXPECT_EQ(omp_get_max_threads(), 2);
  set_num_threads(1);
}

// C = op(A) op(B) + C at 1, 2 and 3 threads: the same bits, and the product itself (against a
// double-precision loop), for every transpose and for tiles by rows, by columns and by wide columns.
TEST(Gemm, TheSameBitsAtAnyThreadCount) {
  Rng rng(5);
  for (auto [m, n, k] : {std::tuple<int64_t, int64_t, int64_t>{700, 300, 150}, {32, 1200, 300}, {300, 37, 800}, {40, 2100, 120}}) {
    for (int tr = 0; tr < 4; ++tr) {
      const bool ta = tr & 1, tb = tr & 2;
      SCOPED_TRACE(std::to_string(m) + "x" + std::to_string(n) + "x" + std::to_string(k) + " ta " +
                   std::to_string(ta) + " tb " + std::to_string(tb));
      // Stored shapes with padded leading dimensions, so tile offsets into A and B are exercised.
      const int64_t lda = (ta ? m : k) + 3, ldb = (tb ? k : n) + 5, ldc = n + 2;
      std::vector<float> a(size_t((ta ? k : m) * lda)), b(size_t((tb ? n : k) * ldb)), c0(size_t(m * ldc));
      fill_uniform(rng, {&a, &b, &c0});
      std::vector<std::vector<float>> out;
      for (int threads : {1, 2, 3}) {
        set_num_threads(threads);
        std::vector<float> c = c0;
        blas::gemm(ta, tb, m, n, k, 0.5f, a.data(), lda, b.data(), ldb, 2.0f, c.data(), ldc);
        out.push_back(c);
      }
      set_num_threads(1);
      EXPECT_EQ(out[0], out[1]);
      EXPECT_EQ(out[0], out[2]);
      double worst = 0;
      for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < n; ++j) {
          double s = 0;
          for (int64_t p = 0; p < k; ++p)
            s += double(ta ? a[size_t(p * lda + i)] : a[size_t(i * lda + p)]) *
                 double(tb ? b[size_t(j * ldb + p)] : b[size_t(p * ldb + j)]);
          const double want = 0.5 * s + 2.0 * double(c0[size_t(i * ldc + j)]);
          worst = std::max(worst, std::abs(double(out[0][size_t(i * ldc + j)]) - want));
        }
      EXPECT_LT(worst, 1e-4);
      for (int64_t i = 0; i < m; ++i)  // the padding between rows of C is not written
        for (int64_t j = n; j < ldc; ++j) ASSERT_EQ(out[0][size_t(i * ldc + j)], c0[size_t(i * ldc + j)]);
    }
  }
}

// The recurrent layers' per-step products with W packed once (blas.h, PackedProduct; rnn.cpp's
// RecurrentProduct): W read transposed (forward, h W_hh^T) and not (backward, dg W_hh), C
// overwritten and added to, padded leading dimensions, batches from 4 to 64 rows; against a
// double-precision loop, and the same bits at 1, 2 and 3 threads. A build without oneDNN has no
// packed kernel: pack says so and the caller multiplies with gemm.
TEST(PackedProduct, MatchesDoubleAndIsTheSameAtAnyThreadCount) {
  Rng rng(23);
  struct Case { bool tw; int64_t m, n, k; bool acc; };
  for (const Case c : {Case{true, 32, 2048, 512, true}, Case{false, 32, 512, 2048, false}, Case{true, 20, 600, 200, false},
                       Case{false, 20, 200, 400, true}, Case{true, 4, 96, 32, true}, Case{false, 64, 130, 390, false},
                       Case{true, 7, 300, 77, false}}) {
    SCOPED_TRACE(std::to_string(c.m) + "x" + std::to_string(c.n) + "x" + std::to_string(c.k) + " tw " +
                 std::to_string(c.tw) + " acc " + std::to_string(c.acc));
    const int64_t ldw = (c.tw ? c.k : c.n) + 3, lda = c.k + 5, ldc = c.n + 2;
    std::vector<float> w(size_t((c.tw ? c.n : c.k) * ldw)), a(size_t(c.m * lda)), c0(size_t(c.m * ldc));
    fill_uniform(rng, {&w, &a, &c0});
    std::vector<std::vector<float>> out;
    for (int threads : {1, 2, 3}) {
      set_num_threads(threads);
      blas::PackedProduct product;
      if (!product.pack(c.tw, c.m, c.n, c.k, w.data(), ldw, lda, ldc, c.acc)) {
        set_num_threads(1);
        ASSERT_FALSE(rnn_onednn_available()) << "oneDNN is in the build but has no packed kernel for this shape";
        GTEST_SKIP() << "no oneDNN in this build: the layers multiply with gemm";
      }
      std::vector<float> cm = c0;
      if (!c.acc)  // an overwritten C is never read
        for (int64_t i = 0; i < c.m; ++i) std::fill_n(cm.begin() + i * ldc, c.n, std::nanf(""));
      product.run(a.data(), cm.data());
      out.push_back(cm);
    }
    set_num_threads(1);
    EXPECT_EQ(out[1], out[0]);
    EXPECT_EQ(out[2], out[0]);
    double worst = 0;
    for (int64_t i = 0; i < c.m; ++i) {
      for (int64_t j = 0; j < c.n; ++j) {
        double want = c.acc ? double(c0[size_t(i * ldc + j)]) : 0.0;
        for (int64_t p = 0; p < c.k; ++p)
          want += double(a[size_t(i * lda + p)]) * double(c.tw ? w[size_t(j * ldw + p)] : w[size_t(p * ldw + j)]);
        worst = std::max(worst, std::abs(double(out[0][size_t(i * ldc + j)]) - want));
      }
      for (int64_t j = c.n; j < ldc; ++j)  // the padding between rows of C is not written
        ASSERT_EQ(out[0][size_t(i * ldc + j)], c0[size_t(i * ldc + j)]);
    }
    EXPECT_LT(worst, 1e-5 * std::sqrt(double(c.k)));
  }
}

// Batch-1 generation's products (step_kernels.cpp: eight rows at a time on AVX-512, OpenBLAS's
// sgemv under RECUR_ISA=avx2, a second ctest registration): against double dot products, beta 0
// never reading y, beta 1 adding to it, odd sizes for the row and lane tails, and the same bits
// at 1, 2 and 3 threads (the rows split among threads, each dot product on one).
TEST(StepProduct, BatchOneMatchesDoubleAndIsTheSameAtAnyThreadCount) {
  Rng rng(21);
  for (auto [N, K] : {std::pair<int64_t, int64_t>{2053, 513}, {7, 5}, {67, 100}, {1024, 512}}) {
    SCOPED_TRACE(std::to_string(N) + "x" + std::to_string(K));
    std::vector<float> W(static_cast<size_t>(N * K)), x(static_cast<size_t>(K)), y0(static_cast<size_t>(N));
    fill_uniform(rng, {&W, &x, &y0});
    for (float beta : {0.0f, 1.0f}) {
      std::vector<std::vector<float>> out;
      for (int threads : {1, 2, 3}) {
        set_num_threads(threads);
        std::vector<float> y = beta == 0 ? std::vector<float>(size_t(N), std::nanf("")) : y0;
        detail::step_product<float>(1, N, K, x.data(), W.data(), beta, y.data(), N);
        out.push_back(y);
      }
      set_num_threads(1);
      EXPECT_EQ(out[1], out[0]) << "beta " << beta;
      EXPECT_EQ(out[2], out[0]) << "beta " << beta;
      for (int64_t n = 0; n < N; ++n) {
        double want = beta == 0 ? 0.0 : double(y0[size_t(n)]);
        for (int64_t k = 0; k < K; ++k) want += double(W[size_t(n * K + k)]) * double(x[size_t(k)]);
        ASSERT_NEAR(out[0][size_t(n)], want, 1e-5 * std::sqrt(double(K))) << "row " << n << " beta " << beta;
      }
    }
  }
}

// The float32 weights of batch-1 steps in panels of 16 rows (StepMatrix on AVX-512; the row
// kernel above under RECUR_ISA=avx2, the second registration): row ranges that start on a panel
// (GRU's [2H, 3H)) and that do not (H not a multiple of 16: the row kernel), partial last panels,
// K not a multiple of 4, beta 0 and 1, against double dot products and the same bits at 1, 2
// and 3 threads. Rows of y outside the range must not be written.
TEST(StepProduct, PackedWeightsMatchDoubleAndAreTheSameAtAnyThreadCount) {
  Rng rng(22);
  struct Case { int64_t N, K, row0, n; };
  for (const Case c : {Case{2048, 512, 0, 2048}, Case{3 * 200, 257, 400, 200}, Case{3 * 24, 7, 32, 24},
                       Case{3 * 24, 7, 48, 24}, Case{37, 130, 0, 37}, Case{16, 1, 0, 16}, Case{1300, 515, 0, 1300}}) {
    SCOPED_TRACE(std::to_string(c.N) + "x" + std::to_string(c.K) + " rows " + std::to_string(c.row0) + "+" +
                 std::to_string(c.n));
    std::vector<float> W(static_cast<size_t>(c.N * c.K)), x(static_cast<size_t>(c.K)), y0(static_cast<size_t>(c.n + 8));
    fill_uniform(rng, {&W, &x, &y0});
    const detail::StepMatrix<float> m(W.data(), c.N, c.K, Precision::f32);
    for (float beta : {0.0f, 1.0f}) {
      std::vector<std::vector<float>> out;
      for (int threads : {1, 2, 3}) {
        set_num_threads(threads);
        std::vector<float> y = y0;
        if (beta == 0)
          for (int64_t n = 0; n < c.n; ++n) y[size_t(n)] = std::nanf("");
        m.product(1, c.row0, c.n, x.data(), beta, y.data(), c.n);
        out.push_back(y);
      }
      set_num_threads(1);
      EXPECT_EQ(out[1], out[0]) << "beta " << beta;
      EXPECT_EQ(out[2], out[0]) << "beta " << beta;
      for (int64_t n = 0; n < c.n; ++n) {
        double want = beta == 0 ? 0.0 : double(y0[size_t(n)]);
        for (int64_t k = 0; k < c.K; ++k) want += double(W[size_t((c.row0 + n) * c.K + k)]) * double(x[size_t(k)]);
        ASSERT_NEAR(out[0][size_t(n)], want, 1e-5 * std::sqrt(double(c.K))) << "row " << n << " beta " << beta;
      }
      for (int64_t n = c.n; n < c.n + 8; ++n) ASSERT_EQ(out[0][size_t(n)], y0[size_t(n)]) << "row " << n << " written";
    }
  }
}

class ThreadCountTest : public test::TempDirTest {
 protected:
  test::CliResult run(const std::string& args) { return test::run_recur(args, dir_, "cd '" + dir_.string() + "' &&"); }
  // Every metrics.jsonl line of type train or valid, without the timing fields.
  std::vector<std::string> losses(const std::string& run_dir) {
    std::vector<std::string> out;
    std::istringstream in(test::slurp(std::filesystem::path(path(run_dir)) / "metrics.jsonl"));
    std::string line;
    while (std::getline(in, line)) {
      auto j = nlohmann::json::parse(line);
      if (j.at("type") != "train" && j.at("type") != "valid") continue;
      for (const char* f : {"tokens_per_s", "examples_per_s", "elapsed_s", "eta_s"}) j.erase(f);
      out.push_back(j.dump());
    }
    return out;
  }
  void expect_same_at_1_2_3_threads(const std::string& data, const std::string& flags) {
    expect_same_at(data, flags, {1, 2, 3});
  }
  void expect_same_at(const std::string& data, const std::string& flags, const std::vector<int>& counts) {
    std::vector<std::vector<std::string>> runs;
    for (int t : counts) {
      const std::string out = "run" + std::to_string(t);
      const auto r = run("train " + data + " --out " + out + " --threads " + std::to_string(t) + " " + flags);
      ASSERT_EQ(r.rc, 0) << r.err;
      runs.push_back(losses(out));
    }
    ASSERT_GE(runs[0].size(), 4u);
    for (size_t i = 1; i < runs.size(); ++i) EXPECT_EQ(runs[i], runs[0]) << counts[i] << " threads";
  }
  // Word text from a small vocabulary, enough for batches of 16 x 20 steps.
  std::string text() {
    static const char* words[] = {"the", "cat", "sat", "on", "a", "mat", "and", "dog", "ran", "far", "away", "home"};
    std::string s;
    Rng r(3);
    for (int line = 0; line < 400; ++line) {
      for (int w = 0; w < 12; ++w) s += std::string(w ? " " : "") + words[r.below(12)];
      s += "\n";
    }
    return write("train.txt", s);
  }
};

// A 2x128 LSTM at batch 16 x 20 steps takes oneDNN's path (rnn_onednn.cpp), with a decoder
// wide enough for the products to be cut into tiles; GRU and RNN likewise, and the LSTM again in
// bf16 (oneDNN's bf16 primitives, or the documented float32 fallback without AVX512-BF16); the
// last one runs recur's own cells (below oneDNN's crossover).
TEST_F(ThreadCountTest, LanguageModelsTrainToTheSameBits) {
  const std::string data = text();
  const std::string common = " --level word --layers 2 --batch 16 --seq-len 20 --steps 6 --log-every 1 --valid-every 3 "
                             "--valid-fraction 0.1 --dropout 0.2 --quiet --force";
  for (const std::string cell : {"lstm --hidden 128", "gru --hidden 128", "rnn --hidden 384",
                                 "lstm --hidden 128 --precision bf16", "lstm --hidden 16"}) {
    SCOPED_TRACE(cell);
    expect_same_at_1_2_3_threads("train.txt", "--cell " + cell + common);
  }
}

// Past 7 threads oneDNN 2.6's backward sums the weight gradients of this 2x200 LSTM at batch
// 20 x 35 in another order (the first step's loss agrees, the second's does not: measured on this
// shape at 8 and 16 threads, on 2 cores as on more). --deterministic runs oneDNN on one thread.
TEST_F(ThreadCountTest, DeterministicIsTheSameBitsAtEightThreads) {
  const std::string data = text();
  expect_same_at(data, "--deterministic --level word --cell lstm --layers 2 --hidden 200 --embed 200 --batch 20 "
                       "--seq-len 35 --steps 4 --log-every 1 --valid-every 2 --valid-fraction 0.1 --quiet --force",
                 {1, 8});
}

TEST_F(ThreadCountTest, ABidirectionalTaggerTrainsToTheSameBits) {
  std::string conll;
  Rng r(4);
  static const char* words[] = {"Paris", "is", "in", "France", "John", "lives", "there", "now"};
  static const char* tags[] = {"B-LOC", "O", "O", "B-LOC", "B-PER", "O", "O", "O"};
  for (int s = 0; s < 200; ++s) {
    for (int w = 0; w < 10; ++w) {
      const uint64_t i = r.below(8);
      conll += std::string(words[i]) + " " + tags[i] + "\n";
    }
    conll += "\n";
  }
  write("train.conll", conll);
  expect_same_at_1_2_3_threads("train.conll", "--task tag --char-rnn --bidirectional --hidden 128 --batch 16 --steps 6 "
                                              "--log-every 1 --valid-every 3 --quiet --force");
}

// Sentences of 3 to 14 words: ragged batches, which oneDNN's primitives do not take, so every
// cell runs recur's own scans (rnn.cpp) with their packed per-step products and, where a step is
// large enough, the gate loops split over the rows; one and two directions, each cell family,
// the LSTM with a projection and peepholes (whose gradient sums keep the backward rows on one
// thread).
TEST_F(ThreadCountTest, RaggedBatchesTrainToTheSameBits) {
  std::string conll;
  Rng r(6);
  static const char* words[] = {"Paris", "is", "in", "France", "John", "lives", "there", "now"};
  static const char* tags[] = {"B-LOC", "O", "O", "B-LOC", "B-PER", "O", "O", "O"};
  for (int s = 0; s < 200; ++s) {
    const int n = 3 + int(r.below(12));
    for (int w = 0; w < n; ++w) {
      const uint64_t i = r.below(8);
      conll += std::string(words[i]) + " " + tags[i] + "\n";
    }
    conll += "\n";
  }
  write("train.conll", conll);
  const std::string common = " --batch 16 --steps 6 --log-every 1 --valid-every 3 --quiet --force";
  // Sizes where rnn.cpp packs W (at least 2^18 values) and, at B * G * H >= 2^15, splits the rows.
  for (const std::string cell : {"--cell lstm --hidden 512", "--cell lstm --hidden 256 --bidirectional",
                                 "--cell gru --hidden 320 --bidirectional", "--cell gru --hidden 704 --gru-reset before",
                                 "--cell rnn --hidden 512", "--cell lstm --hidden 768 --proj 384 --peephole"}) {
    SCOPED_TRACE(cell);
    expect_same_at_1_2_3_threads("train.conll", "--task tag " + cell + common);
  }
}

}  // namespace
}  // namespace recur
