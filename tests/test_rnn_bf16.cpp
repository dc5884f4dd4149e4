// bf16 mixed precision of the recurrent core (ForwardOptions::precision): every cell variant
// against float32 (the same call without bf16) and against double, with the tolerance bf16's
// 8-bit mantissa allows; the variants oneDNN has no bf16 path for (peepholes, projection), and a
// processor without AVX512-BF16 (RECUR_ISA=avx2, ctest's second registration), run in float32
// and say why; and the same bits at 1 and 2 threads. The linear layers' bf16 products
// (LinearOptions, oneDNN's matmul) likewise, against double on the rounded operands.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "cell_variants.h"
#include "cli_run.h"
#include "test_util.h"
#include "recur/core/quantize.h"
#include "recur/core/random.h"
#include "recur/core/rnn.h"
#include "recur/core/threads.h"
#include "recur/model/linear.h"

namespace recur {
namespace {

// One forward and backward of `cfg` in T, from the same random problem (built in double).
template <typename T>
struct Outcome {
  Tensor<T> y;
  RnnState<T> sn;
  RnnGrads<T> grads;
  Tensor<T> dx;
  bool bf16 = false;
};

template <typename T>
Outcome<T> run(const RnnConfig& cfg, int64_t Tn, int64_t B, Precision p, uint64_t seed) {
  Rng rng(seed);
  const RnnParams<double> pd = rnn_init_params_uniform<double>(cfg, rng, 1.0 / std::sqrt(double(cfg.hidden_size)));  // PyTorch's init
  RnnParams<T> params;
  for (const auto& d : pd.dirs) {
    DirectionParams<T> q;
    q.w_ih = tensor_cast<T>(d.w_ih);
    q.w_hh = tensor_cast<T>(d.w_hh);
    q.b_ih = tensor_cast<T>(d.b_ih);
    q.b_hh = tensor_cast<T>(d.b_hh);
    q.w_peep = tensor_cast<T>(d.w_peep);
    q.w_hr = tensor_cast<T>(d.w_hr);
    params.dirs.push_back(q);
  }
  Tensor<T> x({Tn, B, cfg.input_size}), gy({Tn, B, cfg.directions() * cfg.state_size()});
  for (auto& v : x.data) v = T(rng.uniform(-1, 1));
  for (auto& v : gy.data) v = T(rng.uniform(-1, 1));
  Outcome<T> r;
  RnnCache<T> cache;
  rnn_forward<T>(cfg, params, x, {}, {}, {.training = true, .rng = nullptr, .backend = RnnBackend::automatic, .precision = p},
                 r.y, r.sn, cache);
  r.bf16 = cache.bf16;
  r.grads = rnn_zero_grads<T>(cfg);
  rnn_backward<T>(cfg, params, x, cache, gy, {}, r.grads, &r.dx, nullptr);
  return r;
}

// max |a - b| / max(1, max |b|) over a tensor.
template <typename A, typename B>
double rel_diff(const Tensor<A>& a, const Tensor<B>& b) {
  double worst = 0, scale = 1;
  for (size_t i = 0; i < b.data.size(); ++i) scale = std::max(scale, std::fabs(double(b.data[i])));
  for (size_t i = 0; i < a.data.size(); ++i) worst = std::max(worst, std::fabs(double(a.data[i]) - double(b.data[i])));
  return worst / scale;
}

bool bf16_here() { return rnn_onednn_available() && cpu_has_bf16(); }

TEST(RnnBf16, EveryCellVariantAgreesWithFloatAndDouble) {
  const char* isa = std::getenv("RECUR_ISA");
  for (const test::CellVariant& v : test::cell_variants())
    for (bool bidir : {false, true}) {
      const RnnConfig cfg = v.applied_to({.input_size = 24, .hidden_size = 32, .num_layers = 2, .bidirectional = bidir}, 16);
      const std::string why = rnn_bf16_unsupported<float>(cfg, 12, {});
      const Outcome<float> low = run<float>(cfg, 12, 8, Precision::bf16, 5);
      const Outcome<float> f32 = run<float>(cfg, 12, 8, Precision::f32, 5);
      const Outcome<double> exact = run<double>(cfg, 12, 8, Precision::f32, 5);
      const std::string where = v.name + (bidir ? " bi" : " uni");
      EXPECT_EQ(low.bf16, why.empty()) << where << ": " << why;
      if ((v.peephole || v.projection) && bf16_here()) {
        EXPECT_NE(why.find("peepholes or a projection"), std::string::npos) << where;
      }
      if (isa && std::string(isa) == "avx2") {
        EXPECT_NE(why.find("AVX512-BF16"), std::string::npos) << where;
      }
      if (!low.bf16) {  // the documented fallback: exactly the float32 call
        EXPECT_EQ(low.y.data, f32.y.data) << where;
        EXPECT_EQ(low.dx.data, f32.dx.data) << where;
        continue;
      }
      // bf16 rounds inputs, h and weights to 8 bits of mantissa (relative 2^-9 each): outputs
      // agree to 2e-2 of their scale, gradients (accumulated over 12 steps and 2 layers) to 5e-2;
      // float32 agrees with double to 1e-5. ReLU's gradients are rougher (0.3): a unit whose
      // pre-activation the rounding moves across 0 switches its derivative between 0 and 1.
      const double gtol = v.cell == CellType::rnn_relu ? 0.3 : 5e-2;
      EXPECT_LE(rel_diff(f32.y, exact.y), 1e-5) << where;
      EXPECT_LE(rel_diff(low.y, exact.y), 2e-2) << where;
      EXPECT_GT(rel_diff(low.y, exact.y), 1e-5) << where << ": bf16 was not used";
      EXPECT_LE(rel_diff(low.sn.h, exact.sn.h), 2e-2) << where;
      EXPECT_LE(rel_diff(low.dx, exact.dx), gtol) << where;
      for (size_t k = 0; k < low.grads.dirs.size(); ++k) {
        EXPECT_LE(rel_diff(low.grads.dirs[k].w_ih, exact.grads.dirs[k].w_ih), gtol) << where << " dir " << k;
        EXPECT_LE(rel_diff(low.grads.dirs[k].w_hh, exact.grads.dirs[k].w_hh), gtol) << where << " dir " << k;
        EXPECT_LE(rel_diff(low.grads.dirs[k].b_ih, exact.grads.dirs[k].b_ih), gtol) << where << " dir " << k;
      }
    }
}

TEST(RnnBf16, RaggedBatchesAndDoubleRunInFloat) {
  const RnnConfig cfg{.cell = CellType::lstm, .input_size = 4, .hidden_size = 8};
  EXPECT_NE(rnn_bf16_unsupported<float>(cfg, 5, {5, 3}).find("ragged"), std::string::npos);
  EXPECT_NE(rnn_bf16_unsupported<double>(cfg, 5, {}).find("double"), std::string::npos);
}

TEST(RnnBf16, SameBitsOnOneAndTwoThreads) {
  if (!bf16_here()) GTEST_SKIP() << "no bf16 path here: " << rnn_bf16_unsupported<float>({.input_size = 4, .hidden_size = 8}, 5, {});
  for (CellType cell : {CellType::lstm, CellType::gru, CellType::rnn_tanh}) {
    const RnnConfig cfg{.cell = cell, .input_size = 64, .hidden_size = 128, .num_layers = 2, .bidirectional = true};
    Outcome<float> r[2];
    for (int t : {1, 2}) {
      set_num_threads(t);
      r[t - 1] = run<float>(cfg, 30, 16, Precision::bf16, 9);
    }
    set_num_threads(1);
    ASSERT_TRUE(r[0].bf16);
    EXPECT_EQ(r[0].y.data, r[1].y.data) << cell_name(cell);
    EXPECT_EQ(r[0].dx.data, r[1].dx.data) << cell_name(cell);
    for (size_t k = 0; k < r[0].grads.dirs.size(); ++k) EXPECT_EQ(r[0].grads.dirs[k].w_hh.data, r[1].grads.dirs[k].w_hh.data);
  }
}

// A linear layer with --precision bf16: y = x W^T + b, dW += dy^T x and dx = dy W with x, W and
// dy rounded to bf16 and the products summed in float32. Checked against double sums of the
// rounded operands (only float32's summation error remains: 1e-5 of the terms' magnitude), and
// the float32 call's bits where there is no bf16 kernel (RECUR_ISA=avx2). The same bits at 1 and
// 2 threads either way.
struct LinearRun {
  Tensor<float> y, gw, gb, gx;
};
LinearRun linear_run(const Tensor<float>& w, const Tensor<float>& b, const Tensor<float>& x, const Tensor<float>& dy,
                     Precision p) {
  LinearRun r;
  linear_forward(w, b, x, r.y, {.precision = p});
  r.gw = Tensor<float>(w.shape);
  r.gb = Tensor<float>(b.shape);
  linear_backward(w, x, dy, r.gw, &r.gb, &r.gx, {.precision = p});
  return r;
}

TEST(LinearBf16, RoundedOperandsSummedInFloat) {
  const int64_t N = 300, F = 200, C = 1000;  // 60M multiply-adds: past the bf16 threshold
  Rng rng(21);
  Tensor<float> w({C, F}), b({C}), x({N, F}), dy({N, C});
  for (Tensor<float>* t : {&w, &b, &x, &dy})
    for (float& v : t->data) v = float(rng.uniform(-1, 1));
  const LinearRun f32 = linear_run(w, b, x, dy, Precision::f32);
  LinearRun bf[2];
  for (int t : {1, 2}) {
    set_num_threads(t);
    bf[t - 1] = linear_run(w, b, x, dy, Precision::bf16);
  }
  set_num_threads(1);
  EXPECT_EQ(bf[0].y.data, bf[1].y.data);
  EXPECT_EQ(bf[0].gw.data, bf[1].gw.data);
  EXPECT_EQ(bf[0].gx.data, bf[1].gx.data);
  EXPECT_EQ(bf[0].gb.data, f32.gb.data);  // the bias gradient is a sum of dy: float32 either way
  if (!cpu_has_bf16() || !rnn_onednn_available()) {
    EXPECT_EQ(bf[0].y.data, f32.y.data) << "the fallback is the float32 call";
    EXPECT_EQ(bf[0].gw.data, f32.gw.data);
    EXPECT_EQ(bf[0].gx.data, f32.gx.data);
    return;
  }
  auto r = [](float v) { return double(bf16_to_float(float_to_bf16(v))); };
  // Over every di-th row i and dj-th column j of a product: |got(i, j) - (seed(j) + sum_p
  // a(i, p) b(p, j))| relative to the sum's magnitude, the sum in double.
  auto worst_error = [](int64_t I, int64_t di, int64_t J, int64_t dj, int64_t P, auto a, auto b, auto seed, auto got) {
    double worst = 0;
    for (int64_t i = 0; i < I; i += di)
      for (int64_t j = 0; j < J; j += dj) {
        double s = seed(j), mag = std::abs(s);
        for (int64_t p = 0; p < P; ++p) {
          const double term = a(i, p) * b(p, j);
          s += term;
          mag += std::abs(term);
        }
        worst = std::max(worst, std::abs(double(got(i, j)) - s) / mag);
      }
    return worst;
  };
  auto x16 = [&](int64_t n, int64_t f) { return r(x.data[size_t(n * F + f)]); };     // [N, F]
  auto w16 = [&](int64_t c, int64_t f) { return r(w.data[size_t(c * F + f)]); };     // [C, F]
  auto dy16 = [&](int64_t n, int64_t c) { return r(dy.data[size_t(n * C + c)]); };   // [N, C]
  auto zero = [](int64_t) { return 0.0; };
  // y [N, C] = b + x W^T
  const double worst_y = worst_error(
      N, 7, C, 3, F, x16, [&](int64_t f, int64_t c) { return w16(c, f); }, [&](int64_t c) { return double(b.data[size_t(c)]); },
      [&](int64_t n, int64_t c) { return bf[0].y.data[size_t(n * C + c)]; });
  // dW [C, F] = dy^T x
  const double worst_gw = worst_error(
      C, 11, F, 3, N, [&](int64_t c, int64_t n) { return dy16(n, c); }, x16, zero,
      [&](int64_t c, int64_t f) { return bf[0].gw.data[size_t(c * F + f)]; });
  // dx [N, F] = dy W
  const double worst_gx = worst_error(N, 13, F, 3, C, dy16, w16, zero,
                                      [&](int64_t n, int64_t f) { return bf[0].gx.data[size_t(n * F + f)]; });
  double moved = 0;
  for (int64_t n = 0; n < N; n += 7)
    for (int64_t c = 0; c < C; c += 3)
      moved = std::max(moved, std::abs(double(bf[0].y.data[size_t(n * C + c)]) - double(f32.y.data[size_t(n * C + c)])));
  EXPECT_LT(worst_y, 1e-5);
  EXPECT_LT(worst_gw, 1e-5);
  EXPECT_LT(worst_gx, 1e-5);
  EXPECT_GT(moved, 1e-3) << "bf16 rounding changes the result: the bf16 kernel ran";
}

// A forward that keeps its rounded x and W (LinearOptions::bf16_cache, what a model's layer
// cache does) gives the backward the same bits as rounding afresh; a cache that does not fit the
// shapes is not used, and a float32 forward leaves it empty. The gradient here is wider than one
// block of the fused rounding-and-bias-sum (512 columns) and long enough to be split over
// threads: its bias gradient is still float32's, at 1 and 2 threads.
TEST(LinearBf16, OperandsKeptForBackwardGiveTheSameBits) {
  const int64_t N = 200, F = 40, C = 6000;  // dy: 1.2M values; 48M multiply-adds
  Rng rng(22);
  Tensor<float> w({C, F}), b({C}), x({N, F}), dy({N, C});
  for (Tensor<float>* t : {&w, &b, &x, &dy})
    for (float& v : t->data) v = float(rng.uniform(-1, 1));
  const LinearRun f32 = linear_run(w, b, x, dy, Precision::f32);
  const LinearRun fresh = linear_run(w, b, x, dy, Precision::bf16);
  const bool kernel = cpu_has_bf16() && rnn_onednn_available();
  for (int t : {1, 2}) {
    set_num_threads(t);
    LinearBf16Cache kept;
    LinearRun r;
    linear_forward(w, b, x, r.y, {.precision = Precision::bf16, .bf16_cache = &kept});
    EXPECT_EQ(kept.w.size(), kernel ? size_t(C * F) : size_t(0)) << t << " threads";
    EXPECT_EQ(kept.x.size(), kernel ? size_t(N * F) : size_t(0)) << t << " threads";
    r.gw = Tensor<float>(w.shape);
    r.gb = Tensor<float>(b.shape);
    linear_backward(w, x, dy, r.gw, &r.gb, &r.gx, {.precision = Precision::bf16, .bf16_cache = &kept});
    EXPECT_EQ(r.y.data, fresh.y.data) << t << " threads";
    EXPECT_EQ(r.gw.data, fresh.gw.data) << t << " threads";
    EXPECT_EQ(r.gx.data, fresh.gx.data) << t << " threads";
    EXPECT_EQ(r.gb.data, f32.gb.data) << t << " threads";

    // Sizes that do not match this call's: rounded afresh, not read.
    LinearBf16Cache stale{.x = std::vector<uint16_t>(7, 0x3f80), .w = std::vector<uint16_t>(5, 0x3f80)};
    LinearRun s;
    s.gw = Tensor<float>(w.shape);
    s.gb = Tensor<float>(b.shape);
    linear_backward(w, x, dy, s.gw, &s.gb, &s.gx, {.precision = Precision::bf16, .bf16_cache = &stale});
    EXPECT_EQ(s.gw.data, fresh.gw.data) << t << " threads";
    EXPECT_EQ(s.gx.data, fresh.gx.data) << t << " threads";

    linear_forward(w, b, x, r.y, {.precision = Precision::f32, .bf16_cache = &kept});
    EXPECT_TRUE(kept.x.empty() && kept.w.empty()) << "a float32 forward keeps nothing";
    EXPECT_EQ(r.y.data, f32.y.data);
  }
  set_num_threads(1);
  if (kernel) {
    EXPECT_NE(fresh.gw.data, f32.gw.data) << "the bf16 kernel ran";
  }
}

}  // namespace
}  // namespace recur

namespace recur {
namespace {

// `recur train --precision bf16`: the run says what trains in bf16 (or why it does not), its
// losses track float32's, a resumed run keeps bf16, and int8 is refused for training.
class TrainBf16 : public test::TempDirTest {
 protected:
  test::CliResult run(const std::string& args) { return test::run_recur(args, dir_); }
  std::string corpus() {
    std::string text;
    for (int i = 0; i < 400; ++i) text += "the quick brown fox jumps over the lazy dog " + std::to_string(i % 11) + "\n";
    return write("t.txt", text);
  }
};

TEST_F(TrainBf16, NotesTracksFloatAndResumes) {
  const std::string data = corpus();
  const std::string common = " --level chars --embed 16 --hidden 64 --layers 2 --batch 8 --seq-len 16 --log-every 1 "
                             "--valid-every 10 --threads 1 --quiet --force";
  test::CliResult r = run("train '" + data + "' --out '" + path("f32") + "' --steps 10" + common);
  ASSERT_EQ(r.rc, 0) << r.err;
  r = run("train '" + data + "' --out '" + path("bf16") + "' --steps 5 --precision bf16" + common);
  ASSERT_EQ(r.rc, 0) << r.err;
  const bool here = bf16_here();
  EXPECT_NE(r.err.find(here ? "--precision bf16: the recurrent and linear layers' products in bfloat16"
                            : "--precision bf16: layer rnn trains in float32"),
            std::string::npos)
      << r.err;
  r = run("train '" + data + "' --out '" + path("bf16") + "' --steps 10 --resume" + common.substr(0, common.find(" --force")));
  ASSERT_EQ(r.rc, 0) << r.err;
  const std::vector<std::string> a = test::metric_losses(path("f32")), b = test::metric_losses(path("bf16"));
  ASSERT_EQ(a.size(), 10u);
  ASSERT_EQ(b.size(), 10u);
  for (size_t i = 0; i < a.size(); ++i) {
    const double la = std::stod(a[i].substr(a[i].find(':') + 1)), lb = std::stod(b[i].substr(b[i].find(':') + 1));
    EXPECT_NEAR(lb, la, 0.02 * la) << "step " << i + 1;  // bf16 rounding, not another run
    if (!here) {
      EXPECT_EQ(a[i], b[i]) << "the float32 fallback is the float32 run";
    }
  }
  EXPECT_NE(test::slurp(std::filesystem::path(path("bf16")) / "metrics.jsonl").size(), 0u);
  r = run("train '" + data + "' --out '" + path("i8") + "' --steps 1 --precision int8" + common);
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.err.find("--precision: got 'int8', expected f32 or bf16"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace recur
