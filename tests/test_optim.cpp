// Optimizers and gradient clipping against torch 1.13 trajectories recorded in float64 by
// tools/gen_optim_golden.py (tests/golden/optim/). The same gradients are replayed here, in
// double and in float, and every parameter is compared after every step.
#include "recur/core/optim.h"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <limits>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace recur {
namespace {

using nlohmann::json;

json load_golden(const std::string& file) {
  const std::string path = std::string(RECUR_GOLDEN_DIR) + "/optim/" + file + ".json";
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot open golden file " + path);
  return json::parse(in);
}

// Relative error with a floor on the denominator: parameters are O(1) and a value that passes
// close to 0 would otherwise turn an absolute rounding error of the scale of its neighbours
// into a huge relative one. The floor is far below the values in the goldens' typical range.
constexpr double kRelFloor = 1e-3;

template <typename T>
double max_rel_err(const T* got, const std::vector<double>& want, int64_t* worst = nullptr) {
  double err = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    const double e = std::abs(double(got[i]) - want[i]) / std::max(std::abs(want[i]), kRelFloor);
    // NaN compares false, so test for it explicitly; a NaN must fail.
    if (std::isnan(e) || e > err) {
      err = std::isnan(e) ? std::numeric_limits<double>::infinity() : e;
      if (worst) *worst = int64_t(i);
    }
  }
  return err;
}

template <typename T>
void expect_close(const T* got, const std::vector<double>& want, double tol, const std::string& what) {
  int64_t worst = 0;
  const double err = max_rel_err(got, want, &worst);
  EXPECT_LE(err, tol) << what << ": worst element " << worst << " got " << double(got[worst]) << " want "
                      << want[size_t(worst)];
}

OptimizerConfig config_from_json(const std::string& type, const json& j) {
  OptimizerConfig c;
  c.type = parse_optimizer(type);
  // Every key the generator may write; an unknown key is a generator/test mismatch.
  const std::map<std::string, double*> doubles = {
      {"lr", &c.lr},
      {"weight_decay", &c.weight_decay},
      {"momentum", &c.momentum},
      {"dampening", &c.dampening},
      {"beta1", &c.beta1},
      {"beta2", &c.beta2},
      {"adam_eps", &c.adam_eps},
      {"lr_decay", &c.lr_decay},
      {"initial_accumulator_value", &c.initial_accumulator_value},
      {"adagrad_eps", &c.adagrad_eps},
      {"alpha", &c.alpha},
      {"rmsprop_eps", &c.rmsprop_eps},
  };
  const std::map<std::string, bool*> bools = {
      {"nesterov", &c.nesterov}, {"amsgrad", &c.amsgrad}, {"centered", &c.centered}};
  for (const auto& [key, value] : j.items()) {
    if (auto d = doubles.find(key); d != doubles.end()) {
      *d->second = value.get<double>();
    } else if (auto b = bools.find(key); b != bools.end()) {
      *b->second = value.get<bool>();
    } else {
      throw std::runtime_error("unknown config key in golden: " + key);
    }
  }
  return c;
}

// Parameters and gradients of one golden case, in precision T.
template <typename T>
struct Params {
  std::vector<Tensor<T>> values, grads;
  std::vector<ParamRef<T>> refs;

  Params(const json& header, const json& init) {
    const auto names = header.at("param_names").get<std::vector<std::string>>();
    const auto shapes = header.at("param_shapes").get<std::vector<Shape>>();
    for (size_t i = 0; i < names.size(); ++i) {
      values.emplace_back(shapes[i]);
      grads.emplace_back(shapes[i]);
      const auto v = init.at(i).get<std::vector<double>>();
      std::copy(v.begin(), v.end(), values.back().data.begin());
    }
    for (size_t i = 0; i < names.size(); ++i) refs.push_back(param_ref(names[i], values[i], grads[i]));
  }
  void set_grads(const json& g) {
    for (size_t i = 0; i < grads.size(); ++i) {
      const auto v = g.at(i).get<std::vector<double>>();
      std::copy(v.begin(), v.end(), grads[i].data.begin());
    }
  }
};

template <typename T>
class OptimTyped : public ::testing::Test {
 protected:
  // double: rounding-level agreement with torch's float64 run; float: the float run against
  // the float64 reference, so this bounds float's accumulated rounding over 5 steps.
  static constexpr double kTol = std::is_same_v<T, double> ? 1e-12 : 1e-5;
};
using Precisions = ::testing::Types<double, float>;
TYPED_TEST_SUITE(OptimTyped, Precisions);

const char* const kOptimFiles[] = {"sgd", "adam", "adagrad", "rmsprop"};

// Replays steps [from, to) of a case on `opt`, comparing parameters after each step.
template <typename T>
void replay(Optimizer<T>& opt, Params<T>& p, const json& c, size_t from, size_t to, double tol,
            const std::string& what) {
  const json& steps = c.at("steps");
  for (size_t k = from; k < to; ++k) {
    const json& s = steps.at(k);
    opt.set_lr(s.at("lr").get<double>());
    p.set_grads(s.at("grads"));
    opt.step();
    ASSERT_EQ(opt.steps(), int64_t(k + 1));
    for (size_t i = 0; i < p.values.size(); ++i)
      expect_close(p.values[i].ptr(), s.at("params").at(i).get<std::vector<double>>(), tol,
                   what + " step " + std::to_string(k + 1) + " param " + p.refs[i].name);
  }
}

TYPED_TEST(OptimTyped, MatchesTorchEveryStep) {
  using T = TypeParam;
  int cases = 0;
  for (const char* file : kOptimFiles) {
    const json g = load_golden(file);
    for (const json& c : g.at("cases")) {
      const std::string what = std::string(file) + "/" + c.at("name").get<std::string>();
      SCOPED_TRACE(what);
      Params<T> p(g, c.at("init"));
      Optimizer<T> opt(config_from_json(c.at("type"), c.at("config")), p.refs);
      std::vector<const T*> buffers;
      for (auto& [name, t] : opt.state_tensors()) buffers.push_back(t->ptr());

      replay(opt, p, c, 0, c.at("steps").size(), this->kTol, what);

      // Exported state: the same keys as torch's optimizer.state[p] (minus "step") and values.
      const json& want_state = c.at("final_state");
      std::map<std::string, const Tensor<T>*> got;
      for (auto& [name, t] : opt.state_tensors()) got[name] = t;
      size_t want_count = 0;
      for (const ParamRef<T>& ref : p.refs) {
        for (const auto& item : want_state.at(ref.name).items()) {
          const std::string key = item.key();
          const json& values = item.value();
          ++want_count;
          const std::string name = "optim." + ref.name + "." + key;
          auto it = got.find(name);
          ASSERT_NE(it, got.end()) << "missing state tensor " << name;
          ASSERT_EQ(it->second->numel(), ref.size) << name;
          expect_close(it->second->ptr(), values.get<std::vector<double>>(), this->kTol, what + " " + name);
        }
      }
      EXPECT_EQ(got.size(), want_count) << "state_tensors() exports buffers torch does not have";
      // Buffers are allocated once: stepping must not have moved them.
      size_t b = 0;
      for (auto& [name, t] : opt.state_tensors()) EXPECT_EQ(t->ptr(), buffers.at(b++)) << name;
      ++cases;
    }
  }
  EXPECT_EQ(cases, 10);
}

// A checkpoint taken after 2 steps (params, state_tensors, steps) and loaded into a fresh
// optimizer must continue exactly like the uninterrupted run.
TYPED_TEST(OptimTyped, ResumeFromExportedState) {
  using T = TypeParam;
  constexpr size_t kSplit = 2;
  for (const char* file : kOptimFiles) {
    const json g = load_golden(file);
    for (const json& c : g.at("cases")) {
      const std::string what = std::string(file) + "/" + c.at("name").get<std::string>();
      SCOPED_TRACE(what);
      const OptimizerConfig config = config_from_json(c.at("type"), c.at("config"));
      Params<T> p1(g, c.at("init"));
      Optimizer<T> first(config, p1.refs);
      replay(first, p1, c, 0, kSplit, this->kTol, what);

      Params<T> p2(g, c.at("init"));
      for (size_t i = 0; i < p2.values.size(); ++i) p2.values[i].data = p1.values[i].data;
      Optimizer<T> second(config, p2.refs);
      std::map<std::string, Tensor<T>*> saved;
      for (auto& [name, t] : first.state_tensors()) saved[name] = t;
      for (auto& [name, t] : second.state_tensors()) {
        ASSERT_TRUE(saved.count(name)) << name;
        t->data = saved[name]->data;
      }
      second.set_steps(first.steps());
      replay(second, p2, c, kSplit, c.at("steps").size(), this->kTol, what + " resumed");
    }
  }
}

TYPED_TEST(OptimTyped, ClipMatchesTorch) {
  using T = TypeParam;
  const json g = load_golden("clip");
  int norm_cases = 0, value_cases = 0;
  for (const json& c : g.at("cases")) {
    Params<T> p(g, c.at("grads_before"));  // values unused; grads are filled below
    p.set_grads(c.at("grads_before"));
    const std::string kind = c.at("kind");
    if (kind == "norm") {
      const double want = c.at("total_norm").get<double>();
      EXPECT_LE(std::abs(grad_norm(p.refs) - want) / want, this->kTol);
      const double norm = clip_grad_norm(p.refs, c.at("max_norm").get<double>());
      EXPECT_LE(std::abs(norm - want) / want, this->kTol) << "norm " << norm << " want " << want;
      ++norm_cases;
    } else {
      const int64_t clipped = clip_grad_value(p.refs, c.at("clip_value").get<double>());
      EXPECT_EQ(clipped, c.at("clipped_count").get<int64_t>());
      EXPECT_GT(clipped, 0);
      ++value_cases;
    }
    for (size_t i = 0; i < p.grads.size(); ++i)
      expect_close(p.grads[i].ptr(), c.at("grads_after").at(i).get<std::vector<double>>(), this->kTol,
                   kind + " grads_after " + p.refs[i].name);
  }
  EXPECT_EQ(norm_cases, 2);
  EXPECT_EQ(value_cases, 1);
}

TEST(Clip, NonFiniteNormLeavesGradsAlone) {
  Tensor<double> v({3}), gr({3});
  gr.data = {1.0, std::numeric_limits<double>::infinity(), 2.0};
  std::vector<ParamRef<double>> refs{param_ref("w", v, gr)};
  EXPECT_TRUE(std::isinf(clip_grad_norm(refs, 1.0)));
  EXPECT_EQ(gr.data[0], 1.0);
  EXPECT_EQ(gr.data[2], 2.0);
  gr.data = {1.0, std::nan(""), 2.0};
  EXPECT_TRUE(std::isnan(clip_grad_norm(refs, 1.0)));
  EXPECT_EQ(gr.data[0], 1.0);
  EXPECT_EQ(clip_grad_value(refs, 1.5), 1);  // the 2.0; the NaN is not counted
  EXPECT_EQ(gr.data[2], 1.5);
  EXPECT_TRUE(std::isnan(gr.data[1]));
}

// The count is of elements clamp_ changes: one exactly at +-clip is left alone and not counted.
TEST(Clip, ValueCountsOnlyChangedElements) {
  Tensor<float> v({6}), gr({6});
  gr.data = {0.5f, -0.5f, 0.75f, -2.0f, 0.25f, 0.0f};
  std::vector<ParamRef<float>> refs{param_ref("w", v, gr)};
  EXPECT_EQ(clip_grad_value(refs, 0.5), 2);
  EXPECT_EQ(gr.data, (std::vector<float>{0.5f, -0.5f, 0.5f, -0.5f, 0.25f, 0.0f}));
  EXPECT_EQ(clip_grad_value(refs, 0.5), 0);
}

TEST(Clip, RejectsNegativeThresholds) {
  std::vector<ParamRef<float>> refs;
  EXPECT_THROW(clip_grad_norm(refs, -1.0), Error);
  EXPECT_THROW(clip_grad_value(refs, -0.5), Error);
  EXPECT_EQ(clip_grad_norm(refs, 1.0), 0.0);
}

// Expects `c.validate()` to throw an Error whose message contains every one of `parts`.
void expect_invalid(const OptimizerConfig& c, std::initializer_list<std::string> parts) {
  try {
    c.validate();
    ADD_FAILURE() << "validate() accepted a config expected to mention " << *parts.begin();
  } catch (const Error& e) {
    const std::string msg = e.what();
    for (const std::string& part : parts) EXPECT_NE(msg.find(part), std::string::npos) << msg;
  }
}

TEST(OptimizerConfig, ValidateNamesFieldAndRange) {
  OptimizerConfig ok;
  EXPECT_NO_THROW(ok.validate());

  OptimizerConfig c;
  c.lr = -0.1;
  expect_invalid(c, {"lr", "-0.1", "[0, inf)"});
  c = {};
  c.lr = std::nan("");
  expect_invalid(c, {"lr"});
  c = {};
  c.type = OptimizerType::adam;
  c.beta1 = 1.0;
  expect_invalid(c, {"beta1", "[0, 1)"});
  c = {};
  c.beta2 = -0.5;
  expect_invalid(c, {"beta2", "[0, 1)"});
  c = {};
  c.weight_decay = -1;
  expect_invalid(c, {"weight_decay"});
  c = {};
  c.alpha = 1.5;
  expect_invalid(c, {"alpha", "[0, 1]"});
  c = {};
  c.adagrad_eps = -1e-10;
  expect_invalid(c, {"adagrad_eps"});
  c = {};
  c.nesterov = true;
  expect_invalid(c, {"nesterov", "momentum"});
  c.momentum = 0.9;
  c.dampening = 0.1;
  expect_invalid(c, {"nesterov", "dampening"});
  c.dampening = 0;
  EXPECT_NO_THROW(c.validate());

  // The constructor validates too.
  OptimizerConfig bad;
  bad.lr = -1;
  EXPECT_THROW(Optimizer<double>(bad, {}), Error);
  Optimizer<double> opt(ok, {});
  EXPECT_THROW(opt.set_lr(-1), Error);
  EXPECT_THROW(opt.set_steps(-1), Error);
}

TEST(OptimizerType, NamesRoundTripAndErrorListsValid) {
  for (OptimizerType t : {OptimizerType::sgd, OptimizerType::adam, OptimizerType::adagrad, OptimizerType::rmsprop})
    EXPECT_EQ(parse_optimizer(optimizer_name(t)), t);
  try {
    parse_optimizer("adamw");
    ADD_FAILURE() << "parse_optimizer accepted adamw";
  } catch (const Error& e) {
    const std::string msg = e.what();
    for (const char* name : {"adamw", "sgd", "adam", "adagrad", "rmsprop"})
      EXPECT_NE(msg.find(name), std::string::npos) << msg;
  }
}

TEST(Optimizer, RejectsBadParams) {
  Tensor<float> a({2, 3}), ga({2, 3}), b({4}), gb({3});
  EXPECT_THROW(param_ref("b", b, gb), ShapeError);
  OptimizerConfig c;
  EXPECT_THROW(Optimizer<float>(c, {param_ref("w", a, ga), param_ref("w", a, ga)}), Error);
  EXPECT_THROW(Optimizer<float>(c, {ParamRef<float>{"", a.ptr(), ga.ptr(), 6}}), Error);
  EXPECT_THROW(Optimizer<float>(c, {ParamRef<float>{"w", a.ptr(), nullptr, 6}}), Error);
}

TEST(Optimizer, ZeroGradAndStateLayout) {
  Tensor<double> a({2, 2}, 1.0), ga({2, 2}, 3.0);
  OptimizerConfig c;
  c.type = OptimizerType::rmsprop;
  c.momentum = 0.9;
  c.centered = true;
  Optimizer<double> opt(c, {param_ref("w", a, ga)});
  const auto state = opt.state_tensors();
  ASSERT_EQ(state.size(), 3u);
  EXPECT_EQ(state[0].first, "optim.w.square_avg");
  EXPECT_EQ(state[1].first, "optim.w.momentum_buffer");
  EXPECT_EQ(state[2].first, "optim.w.grad_avg");
  for (const auto& [name, t] : state) EXPECT_EQ(t->shape, Shape{4}) << name;
  opt.zero_grad();
  for (double v : ga.data) EXPECT_EQ(v, 0.0);

  c = {};
  c.type = OptimizerType::adagrad;
  c.initial_accumulator_value = 0.25;
  Optimizer<double> ada(c, {param_ref("w", a, ga)});
  for (double v : ada.state_tensors().at(0).second->data) EXPECT_EQ(v, 0.25);
  c = {};  // plain SGD keeps no state at all, like torch's momentum_buffer = None
  EXPECT_TRUE(Optimizer<double>(c, {param_ref("w", a, ga)}).state_tensors().empty());
}

// Adam leaves alone the stretches of a parameter whose state and gradient are all zero (an
// embedding table's rows of words no batch has held). Checked against torch's update rule in
// long double on a 20,000-value parameter: stretches that never get a gradient keep their
// bits, a stretch whose gradient stops keeps moving on its momentum, one whose gradient starts
// late starts moving then, and an optimizer restored from another's state mid-run (as from a
// checkpoint) continues exactly as the original, momentum of gradient-free stretches included.
TEST(Optimizer, AdamSkipsOnlyWhatCannotMove) {
  const int64_t n = 20000;
  OptimizerConfig c;
  c.type = OptimizerType::adam;
  c.lr = 0.01;
  Tensor<double> w({n}), g({n}), w2({n}), g2({n});
  for (int64_t j = 0; j < n; ++j) w.data[size_t(j)] = std::sin(double(j)) * 0.5;
  const std::vector<double> w0 = w.data;
  Optimizer<double> opt(c, {param_ref("w", w, g)});
  // Gradients: [100, 110) for steps 1-3 only, [15000, 15010) from step 5 on; zero elsewhere.
  auto grad_at = [](int64_t step, int64_t j) {
    if (j >= 100 && j < 110 && step <= 3) return 0.1 * double(j - 99) * (step % 2 ? 1.0 : -0.5);
    if (j >= 15000 && j < 15010 && step >= 5) return -0.2 + 0.01 * double(j - 15000 + step);
    return 0.0;
  };
  std::vector<long double> rw(w0.begin(), w0.end()), m(size_t(n), 0.0L), v(size_t(n), 0.0L);
  std::unique_ptr<Optimizer<double>> restored;
  for (int64_t step = 1; step <= 7; ++step) {
    for (int64_t j = 0; j < n; ++j) g.data[size_t(j)] = g2.data[size_t(j)] = grad_at(step, j);
    opt.step();
    if (restored) restored->step();
    const long double bc1 = 1 - std::pow(0.9L, step), bc2 = 1 - std::pow(0.999L, step);
    for (size_t j = 0; j < size_t(n); ++j) {
      const long double gj = grad_at(step, int64_t(j));
      m[j] = m[j] * 0.9L + 0.1L * gj;
      v[j] = v[j] * 0.999L + 0.001L * gj * gj;
      rw[j] -= 0.01L / bc1 * m[j] / (std::sqrt(v[j]) / std::sqrt(bc2) + 1e-8L);
    }
    double err = 0;
    for (size_t j = 0; j < size_t(n); ++j) err = std::max(err, double(std::abs(w.data[j] - rw[j])));
    EXPECT_LT(err, 1e-12) << "step " << step;
    if (restored) {
      EXPECT_EQ(w2.data, w.data) << "the restored optimizer, step " << step;
    } else if (step == 3) {
      // A fresh optimizer given this one's values, state and step count, as a checkpoint would.
      w2.data = w.data;
      restored = std::make_unique<Optimizer<double>>(c, std::vector<ParamRef<double>>{param_ref("w", w2, g2)});
      auto from = opt.state_tensors(), to = restored->state_tensors();
      ASSERT_EQ(from.size(), to.size());
      for (size_t k = 0; k < from.size(); ++k) to[k].second->data = from[k].second->data;
      restored->set_steps(opt.steps());
    }
  }
  // Momentum moved [100, 110) after its gradient stopped; nothing else outside the two
  // stretches moved at all.
  for (int64_t j = 0; j < n; ++j) {
    const bool touched = (j >= 100 && j < 110) || (j >= 15000 && j < 15010);
    if (!touched) ASSERT_EQ(w.data[size_t(j)], w0[size_t(j)]) << j;
    else EXPECT_NE(w.data[size_t(j)], w0[size_t(j)]) << j;
  }
}

// ParamRef::rows, the sparse rows of an embedding table's gradient: grad_norm, clip_grad_norm and
// Adam give the dense passes' bits, step after step, as rows come and go (a row across a chunk
// border, a listed row whose gradient is exactly zero), and the hint is really used: a value
// outside the listed rows is not read.
TEST(Optimizer, RowHintsGiveTheDensePassesBits) {
  const int64_t V = 3001, E = 50, n = V * E;  // 150,050 values: several chunks of each pass
  OptimizerConfig c;
  c.type = OptimizerType::adam;
  c.lr = 0.01;
  Tensor<float> wd({V, E}), gd({V, E}), ws({V, E}), gs({V, E});
  for (int64_t j = 0; j < n; ++j) wd.data[size_t(j)] = ws.data[size_t(j)] = float(std::sin(double(j)) * 0.5);
  std::vector<int32_t> rows;
  ParamRef<float> dense = param_ref("table", wd, gd), sparse = param_ref("table", ws, gs);
  sparse.rows = &rows;
  sparse.row_size = E;
  Optimizer<float> od(c, {dense}), os(c, {sparse});
  const std::vector<std::vector<int32_t>> steps = {
      {0, 81, 82, 655}, {81, 2000, 3000}, {7}, {655, 1310, 2621}, {}, {81, 3000}};
  for (size_t step = 0; step < steps.size(); ++step) {
    rows = steps[step];
    gd.zero();
    gs.zero();
    for (const int32_t r : rows)
      for (int64_t e = 0; e < E; ++e) {
        // Row 2000's gradient is exactly zero: listed, yet nothing to move.
        const float g = r == 2000 ? 0.0f : float(0.3 * std::cos(double(r * E + e + int64_t(step))));
        gd.data[size_t(r * E + e)] = gs.data[size_t(r * E + e)] = g;
      }
    const std::vector<ParamRef<float>> rd{dense}, rs{sparse};
    const double nd = grad_norm(rd), ns = grad_norm(rs);
    EXPECT_EQ(nd, ns) << "step " << step;
    // A clip that scales (the norm is about 1-6 here).
    EXPECT_EQ(clip_grad_norm(rd, 0.5), clip_grad_norm(rs, 0.5)) << "step " << step;
    ASSERT_EQ(gd.data, gs.data) << "clipped gradients, step " << step;
    od.step();
    os.step();
    ASSERT_EQ(wd.data, ws.data) << "weights after step " << step;
    if (step == 0) {
      EXPECT_NE(wd.data[0], 0.0f);  // row 0 had a gradient and moved from sin(0) * 0.5
    }
  }
  // The hint is read: a value planted outside the listed rows is left out of the norm.
  rows = {5};
  gs.zero();
  gs.data[size_t(5 * E)] = 3.0f;
  gs.data[size_t(2500 * E)] = 4.0f;  // not listed: breaks the promise on purpose
  EXPECT_EQ(grad_norm(std::vector<ParamRef<float>>{sparse}), 3.0);
  EXPECT_EQ(grad_norm(std::vector<ParamRef<float>>{param_ref("t", ws, gs)}), 5.0);  // the dense pass sees both
  // A row outside the table and rows that do not tile the tensor are refused.
  rows = {int32_t(V)};
  EXPECT_THROW(grad_norm(std::vector<ParamRef<float>>{sparse}), Error);
  ParamRef<float> odd = sparse;
  odd.row_size = 7;
  EXPECT_THROW(Optimizer<float>(c, {odd}), Error);
}

}  // namespace
}  // namespace recur
