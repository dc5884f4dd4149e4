// recur's side of the speed suite (issue 7): one case of bench/suite_cases.json per run, timed
// through the public API exactly as `recur train` / `recur sample` use it, printed as one JSON
// line. bench/torch_suite.py and bench/dnnl_suite.cpp implement the same protocol; bench/suite.sh
// runs all three side by side and bench/suite_table.py prints the table.
//
//   recur_suite --cases bench/suite_cases.json --case NAME --threads N [--warmup W] [--repeats R]
//   recur_suite --cases FILE --list
//   recur_suite --peak --threads N      measured float32 FMA peak in GFLOP/s (the table's 100%)
//
// Models (glossary in include/recur/core/tensor.h):
//   lm        ids [T, B] -> embedding [T, B, E] -> L-layer RNN [T, B, H] -> linear [T*B, V] -> mean CE
//   tagger    ids [T, B] -> embedding [T, B, E] -> BiRNN [T, B, 2H] -> linear [T*B, C] -> mean CE
//   generate  batch 1: id -> ModelStepper::step -> logits [1, V] -> sample (temperature 1) -> next id
// A case's "precision" (f32 default, bf16, int8): for generate cases StepperOptions::precision,
// the stepper's compressed copies of the rnn and head weight matrices (recur/core/quantize.h);
// for train and forward cases bf16 is ModelForwardOptions::precision, mixed precision of the
// recurrent layers (recur train --precision bf16), and int8 is refused (exit 2).
// A train step is forward, backward, clip_grad_norm(5) and Adam(1e-3), as in bench/torch_suite.py.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "recur/model/lm.h"
#include "recur/core/loss.h"
#include "recur/model/model.h"
#include "recur/core/optim.h"
#include "recur/core/quantize.h"
#include "recur/model/sampler.h"
#include "recur/core/threads.h"

using namespace recur;
using json = nlohmann::json;
using clock_type = std::chrono::steady_clock;

namespace {

struct Case {
  std::string name, kind, mode, cell;
  std::string precision = "f32";  // as written in the cases file (parse_precision reads it)
  int64_t vocab = 0, embed = 0, hidden = 0, layers = 1, batch = 1, steps = 1, tags = 0, repeats = 5;
};

Case parse_case(const json& j) {
  Case c;
  c.name = j.at("name");
  c.kind = j.at("kind");
  c.mode = j.at("mode");
  c.cell = j.at("cell");
  c.vocab = j.at("vocab");
  c.embed = j.at("embed");
  c.hidden = j.at("hidden");
  c.layers = j.at("layers");
  c.batch = j.at("batch");
  c.steps = j.at("steps");
  c.tags = j.value("tags", int64_t(0));
  c.repeats = j.value("repeats", int64_t(5));
  c.precision = j.value("precision", std::string("f32"));
  return c;
}

RnnConfig rnn_config(const Case& c, int64_t input_size, bool bidirectional) {
  RnnConfig r;
  if (c.cell == "lstm") r.cell = CellType::lstm;
  else if (c.cell == "gru") r.cell = CellType::gru;
  else if (c.cell == "rnn_tanh") r.cell = CellType::rnn_tanh;
  else throw std::runtime_error("unknown cell '" + c.cell + "' (expected lstm, gru or rnn_tanh)");
  r.input_size = input_size;
  r.hidden_size = c.hidden;
  r.num_layers = c.layers;
  r.bidirectional = bidirectional;
  return r;
}

double vm_rss_mb() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;
  return 0;
}

double peak_rss_mb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return double(u.ru_maxrss) / 1024.0;
}

std::string mapped_blas() {
  std::ifstream f("/proc/self/maps");
  std::string line;
  while (std::getline(f, line)) {
    const auto slash = line.find('/');
    if (slash == std::string::npos) continue;
    const std::string path = line.substr(slash);
    if (path.find("openblas") != std::string::npos || path.find("libblas") != std::string::npos) {
      char buf[4096];
      return realpath(path.c_str(), buf) ? std::string(buf) : path;
    }
  }
  return "?";
}

std::vector<int32_t> random_ids(Rng& rng, int64_t n, int64_t vocab) {
  std::vector<int32_t> v(static_cast<size_t>(n));
  for (auto& x : v) x = int32_t(rng.below(uint64_t(vocab)));
  return v;
}

// What one case needs between repeats: a step function returning the loss (NaN if none).
struct Runner {
  std::function<double()> step;
  int64_t tokens_per_repeat = 0;
};

// Keeps every model alive for the duration of the run.
struct LmBench {
  LmConfig cfg;
  ModelSpec graph;  // lm_model_spec(cfg)
  ModelParams<float> params;
  ModelGrads<float> grads;
  ModelCache<float> cache;
  std::vector<ParamRef<float>> refs;
  std::optional<Optimizer<float>> opt;
  std::vector<int32_t> input, target;  // [T, B]
  RnnState<float> state;
  Tensor<float> logits;
  SamplerScratch scratch;
  Precision precision = Precision::f32;  // train / forward: the case's (bf16 = mixed precision)
};

struct TaggerBench {
  ModelSpec spec;
  ModelParams<float> params;
  ModelGrads<float> grads;
  ModelCache<float> cache;
  std::vector<ParamRef<float>> refs;
  std::optional<Optimizer<float>> opt;
  ModelInputs<float> in;
  std::vector<int32_t> target;  // [T, B]
  Tensor<float> grad;
  Precision precision = Precision::f32;
};

Runner make_lm(const Case& c, LmBench& m, Rng& rng) {
  m.cfg.vocab_size = c.vocab;
  m.cfg.embed_size = c.embed;
  m.cfg.rnn = rnn_config(c, m.cfg.input_size(), false);
  m.graph = lm_model_spec(m.cfg);
  m.params = lm_init_params<float>(m.cfg, rng);
  const int64_t n = c.steps * c.batch;
  m.input = random_ids(rng, n, c.vocab);
  m.target = random_ids(rng, n, c.vocab);
  if (c.mode == "generate") {
    // One token in, one sampled token out, the state carried: what `recur sample` does.
    auto id = std::make_shared<int32_t>(0);
    auto srng = std::make_shared<Rng>(7);
    const StepperOptions o = lm_stepper_options(parse_precision(c.precision, "case " + c.name + ": precision"));
    auto stepper = std::make_shared<ModelStepper<float>>(m.graph, m.params, o);
    ModelCache<float> start_cache;
    auto context = std::make_shared<Tensor<float>>();
    m.state = stepper->start({}, 1, start_cache).state;
    return {[&m, c, id, srng, stepper, context] {
              for (int64_t t = 0; t < c.steps; ++t) {
                stepper->step(std::span<const int32_t>(id.get(), 1), m.state, *context, m.logits);
                *id = sample_token(std::span<const float>(m.logits.data), {}, *srng, m.scratch);
              }
              return std::nan("");
            },
            c.steps};
  }
  const LmBatch batch{.input = m.input, .target = m.target, .mask = {}, .lengths = {}, .steps = c.steps, .batch = c.batch};
  if (c.mode == "forward")
    return {[&m, batch] {
              RnnState<float> state;
              return lm_forward_backward<float>(m.graph, m.params, batch, state, {.precision = m.precision, .wanted = {}},
                                                m.cache, nullptr, 0.0)
                  .mean();
            },
            n};
  m.grads = model_zero_grads<float>(m.graph);
  m.refs = model_param_refs(m.graph, m.params, m.grads);
  m.opt.emplace(OptimizerConfig{.type = OptimizerType::adam, .lr = 1e-3}, m.refs);
  return {[&m, batch, n] {
            m.grads.zero();
            RnnState<float> state;
            const LossSum loss = lm_forward_backward<float>(m.graph, m.params, batch, state,
                                                            {.training = true, .rng = nullptr, .precision = m.precision, .wanted = {}},
                                                            m.cache, &m.grads, 1.0 / double(n));
            clip_grad_norm(m.refs, 5.0);
            m.opt->step();
            return loss.mean();
          },
          n};
}

Runner make_tagger(const Case& c, TaggerBench& m, Rng& rng) {
  m.spec.tokens("words", c.vocab);
  m.spec.embedding("emb", "words", c.embed);
  m.spec.rnn("rnn", "emb", rnn_config(c, 0, true));
  m.spec.linear("out", "rnn", c.tags);
  m.params = model_init_params<float>(m.spec, rng);
  m.grads = model_zero_grads<float>(m.spec);
  const int64_t n = c.steps * c.batch;
  m.in["words"] = {.ids = random_ids(rng, n, c.vocab), .features = {}, .steps = c.steps, .batch = c.batch, .lengths = {}};
  m.target = random_ids(rng, n, c.tags);
  if (c.mode == "forward")
    return {[&m] {
              model_forward(m.spec, m.params, m.in, {.precision = m.precision, .wanted = {}}, m.cache);
              return softmax_cross_entropy(model_output(m.spec, m.cache, "out"), std::span<const int32_t>(m.target), {},
                                           nullptr, 0.0)
                  .mean();
            },
            n};
  m.refs = model_param_refs(m.spec, m.params, m.grads);
  m.opt.emplace(OptimizerConfig{.type = OptimizerType::adam, .lr = 1e-3}, m.refs);
  return {[&m, n] {
            model_forward(m.spec, m.params, m.in, {.training = true, .rng = nullptr, .precision = m.precision, .wanted = {}},
                          m.cache);
            const LossSum loss = softmax_cross_entropy(model_output(m.spec, m.cache, "out"),
                                                       std::span<const int32_t>(m.target), {}, &m.grad, 1.0 / double(n));
            m.grads.zero();
            model_backward(m.spec, m.params, m.in, m.cache, {{"out", &m.grad}}, m.grads);
            clip_grad_norm(m.refs, 5.0);
            m.opt->step();
            return loss.mean();
          },
          n};
}

// Float32 FMA peak of `threads` cores: 12 independent FMA chains per thread (enough to cover the
// FMA latency), all threads at once, on the widest vectors the processor has. The chains are
// written for each width in its own target: compiled for the portable build's AVX2 alone, the
// 512-bit chains would be split into 24 AVX2 chains, more than AVX2's 16 registers, and the
// spills would measure memory, not the FMA units (20 GFLOP/s instead of 227 on this EPYC).
typedef float v8 __attribute__((vector_size(32)));
typedef float v16 __attribute__((vector_size(64)));
template <typename vec>
inline __attribute__((always_inline)) double fma_chains_seconds(int k, int64_t iters, float& sink) {
  vec acc[12];
  for (int i = 0; i < 12; ++i) acc[i] = vec{} + float(i + k) * 1e-9f;
  const vec a = vec{} + 0.999999f, b = vec{} + 1e-7f;
  const auto t0 = clock_type::now();
  for (int64_t it = 0; it < iters; ++it)
    for (int i = 0; i < 12; ++i) acc[i] = acc[i] * a + b;
  const double secs = std::chrono::duration<double>(clock_type::now() - t0).count();
  float s = 0;
  for (int i = 0; i < 12; ++i) s += acc[i][0];
  sink = s;
  return secs;
}
__attribute__((target("avx512f,fma"))) double fma_seconds_avx512(int k, int64_t iters, float& sink) {
  return fma_chains_seconds<v16>(k, iters, sink);
}
__attribute__((target("avx2,fma"))) double fma_seconds_avx2(int k, int64_t iters, float& sink) {
  return fma_chains_seconds<v8>(k, iters, sink);
}

double measure_peak_gflops(int threads) {
  const bool avx512 = __builtin_cpu_supports("avx512f");
  const int width = avx512 ? 16 : 8;
  const int64_t iters = 200'000'000 / 16;
  std::vector<double> secs(static_cast<size_t>(threads));
  std::vector<float> sink(static_cast<size_t>(threads));
  auto work = [&](int k) {
    secs[size_t(k)] = avx512 ? fma_seconds_avx512(k, iters, sink[size_t(k)]) : fma_seconds_avx2(k, iters, sink[size_t(k)]);
  };
  double best = 0;
  for (int rep = 0; rep < 3; ++rep) {
    std::vector<std::thread> pool;
    for (int k = 0; k < threads; ++k) pool.emplace_back(work, k);
    for (auto& t : pool) t.join();
    const double slowest = *std::max_element(secs.begin(), secs.end());
    best = std::max(best, double(threads) * double(iters) * 12 * width * 2 / slowest / 1e9);
  }
  if (sink[0] == 12345.f) std::fprintf(stderr, " ");  // keep the chains alive
  return best;
}

[[noreturn]] void usage_error(const std::string& msg) {
  std::fprintf(stderr, "recur_suite: %s\n", msg.c_str());
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  std::string cases_path, case_name;
  int threads = 1, warmup = 2, repeats = -1;
  bool list = false, peak = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage_error(a + " needs a value");
      return argv[++i];
    };
    auto int_value = [&]() {
      const std::string v = value();
      try {
        return std::stoi(v);
      } catch (...) {
        usage_error(a + ": expected an integer, got '" + v + "'");
      }
    };
    if (a == "--cases") cases_path = value();
    else if (a == "--case") case_name = value();
    else if (a == "--threads") threads = int_value();
    else if (a == "--warmup") warmup = int_value();
    else if (a == "--repeats") repeats = int_value();
    else if (a == "--list") list = true;
    else if (a == "--peak") peak = true;
    else usage_error("unknown argument '" + a + "'");
  }
  if (threads < 1 || warmup < 0) usage_error("--threads must be >= 1 and --warmup >= 0");
  set_num_threads(threads);
  if (peak) {
    std::printf("{\"impl\":\"fma_peak\",\"threads\":%d,\"gflops\":%.1f}\n", threads, measure_peak_gflops(threads));
    return 0;
  }
  if (cases_path.empty()) usage_error("--cases FILE is required");
  json all;
  try {
    std::ifstream f(cases_path);
    if (!f) usage_error(cases_path + ": cannot open");
    all = json::parse(f);
  } catch (const json::exception& e) {
    usage_error(cases_path + ": " + e.what());
  }
  if (list) {
    for (const auto& j : all.at("cases")) std::printf("%s\n", j.at("name").get<std::string>().c_str());
    return 0;
  }
  std::optional<Case> c;
  for (const auto& j : all.at("cases"))
    if (j.at("name") == case_name) c = parse_case(j);
  if (!c) usage_error(cases_path + ": no case named '" + case_name + "'");
  if (repeats < 0) repeats = int(c->repeats);
  Precision precision = Precision::f32;
  try {
    precision = parse_precision(c->precision, "case " + c->name + ": precision");
  } catch (const std::exception& e) {
    usage_error(e.what());
  }
  // int8 weights are the stepper's (generation) path only.
  if (precision == Precision::int8 && c->mode != "generate")
    usage_error("case " + c->name + ": precision " + std::string(precision_name(precision)) +
                " is only supported for mode generate (compressed weights are an inference path of "
                "ModelStepper); use f32 or bf16 for mode " + c->mode);

  try {
    const double rss_base = vm_rss_mb();
    Rng rng(1);
    LmBench lm;
    TaggerBench tagger;
    if (c->mode != "generate") lm.precision = tagger.precision = precision;
    // Whether bf16 applies to the case's recurrent layer (else it runs in float32, said in notes).
    const std::string bf16_why =
        precision == Precision::bf16 && c->mode != "generate"
            ? rnn_bf16_unsupported<float>(rnn_config(*c, c->embed, c->kind == "tagger"), c->steps, {})
            : "";
    Runner run = c->kind == "tagger" ? make_tagger(*c, tagger, rng) : make_lm(*c, lm, rng);
    double loss_first = std::nan(""), loss_last = std::nan("");
    for (int i = 0; i < warmup; ++i) {
      const double l = run.step();
      if (i == 0) loss_first = l;
    }
    std::vector<double> times;
    for (int i = 0; i < repeats; ++i) {
      const auto t0 = clock_type::now();
      loss_last = run.step();
      times.push_back(std::chrono::duration<double>(clock_type::now() - t0).count());
      if (warmup == 0 && i == 0) loss_first = loss_last;
    }
    json out = {{"impl", "recur"},
                {"case", c->name},
                {"precision", std::string(precision_name(precision))},
                {"threads", threads},
                {"times_s", times},
                {"tokens_per_repeat", run.tokens_per_repeat},
                {"loss_first", std::isfinite(loss_first) ? json(loss_first) : json(nullptr)},
                {"loss_last", std::isfinite(loss_last) ? json(loss_last) : json(nullptr)},
                {"rss_base_mb", rss_base},
                {"rss_peak_mb", peak_rss_mb()},
                {"blas", mapped_blas()},
                {"notes", precision == Precision::f32 ? std::string()
                          : c->mode != "generate"
                              ? "mixed precision: the recurrent layers' products in bf16 (" +
                                    (bf16_why.empty() ? std::string("oneDNN") : "not applied: " + bf16_why) + ")"
                              : "compressed weights (rnn + head): " + std::string(precision_name(precision)) +
                                    ", kernels " + std::string(quantized_kernels())}};
    std::printf("%s\n", out.dump().c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "recur_suite: %s: %s\n", c->name.c_str(), e.what());
    return 1;
  }
  return 0;
}
