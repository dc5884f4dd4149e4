// One bidirectional LSTM layer on oneDNN two ways, timed in alternation at the suite's tagger
// shape (bench/suite_cases.json bilstm_tagger_fwd: T 40, B 32, in 100, H 128):
//   one primitive  bidirectional_concat, dst_layer [T, B, 2H] dense (what dnnl_suite runs)
//   two primitives left2right and right2left, each writing its H columns of the same
//                  [T, B, 2H] output through a strided dst_layer (what recur runs, rnn_onednn.cpp)
// It answers whether recur needs a bidirectional primitive of its own (issue 13): prints the
// median of each over --repeats calls, per round, and their ratio.
//
//   build-bench/bench/onednn_directions [--rounds 5] [--repeats 60]   (OMP_NUM_THREADS=1 for one thread)
#include <oneapi/dnnl/dnnl.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <unordered_map>
#include <vector>

using dnnl::memory;
using tag = memory::format_tag;
using dt = memory::data_type;
using Args = std::unordered_map<int, memory>;

int main(int argc, char** argv) {
  int rounds = 5, repeats = 60;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--rounds") rounds = std::atoi(argv[i + 1]);
    else if (a == "--repeats") repeats = std::atoi(argv[i + 1]);
    else return std::fprintf(stderr, "usage: onednn_directions [--rounds N] [--repeats N]\n"), 2;
  }
  if (rounds < 1 || repeats < 1) return std::fprintf(stderr, "onednn_directions: counts must be positive\n"), 2;
  const dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  dnnl::stream s(eng);
  const int64_t T = 40, B = 32, I = 100, H = 128, G = 4;
  std::vector<float> x(size_t(T * B * I), 0.01f), out(size_t(T * B * 2 * H));
  const memory::desc none;

  auto make = [&](dnnl::rnn_direction dir, int64_t D, const memory::desc& dst) {
    const memory::desc src({T, B, I}, dt::f32, tag::tnc);
    const memory::desc wl({1, D, I, G, H}, dt::f32, tag::any), wi({1, D, H, G, H}, dt::f32, tag::any);
    const memory::desc bias({1, D, G, H}, dt::f32, tag::ldgo);
    const dnnl::lstm_forward::desc d(dnnl::prop_kind::forward_inference, dir, src, none, none, wl, wi, bias, dst, none,
                                     none);
    return dnnl::lstm_forward::primitive_desc(d, eng);
  };
  // Zero weights: the arithmetic does not depend on their values.
  auto args = [&](const dnnl::lstm_forward::primitive_desc& pd, float* y) {
    Args a;
    a[DNNL_ARG_SRC_LAYER] = memory(pd.src_layer_desc(), eng, x.data());
    for (int arg : {DNNL_ARG_WEIGHTS_LAYER, DNNL_ARG_WEIGHTS_ITER, DNNL_ARG_BIAS}) {
      memory m(pd.query_md(dnnl::query::exec_arg_md, arg), eng);
      std::memset(m.get_data_handle(), 0, m.get_desc().get_size());
      a[arg] = m;
    }
    a[DNNL_ARG_DST_LAYER] = memory(pd.dst_layer_desc(), eng, y);
    return a;
  };
  const memory::desc strided({T, B, H}, dt::f32, memory::dims{B * 2 * H, 2 * H, 1});
  const auto pd_l = make(dnnl::rnn_direction::unidirectional_left2right, 1, strided);
  const auto pd_r = make(dnnl::rnn_direction::unidirectional_right2left, 1, strided);
  const auto pd_b = make(dnnl::rnn_direction::bidirectional_concat, 2, memory::desc({T, B, 2 * H}, dt::f32, tag::tnc));
  Args a_l = args(pd_l, out.data()), a_r = args(pd_r, out.data() + H), a_b = args(pd_b, out.data());
  const dnnl::lstm_forward p_l(pd_l), p_r(pd_r), p_b(pd_b);
  std::printf("implementations: two primitives %s, one primitive %s\n", pd_l.impl_info_str(), pd_b.impl_info_str());
  using clock = std::chrono::steady_clock;
  for (int round = 0; round < rounds; ++round) {
    std::vector<double> two, one;
    for (int i = 0; i < repeats; ++i) {
      const auto t0 = clock::now();
      p_l.execute(s, a_l);
      p_r.execute(s, a_r);
      s.wait();
      const auto t1 = clock::now();
      p_b.execute(s, a_b);
      s.wait();
      const auto t2 = clock::now();
      two.push_back(std::chrono::duration<double>(t1 - t0).count());
      one.push_back(std::chrono::duration<double>(t2 - t1).count());
    }
    std::sort(two.begin(), two.end());
    std::sort(one.begin(), one.end());
    const double m2 = two[two.size() / 2], m1 = one[one.size() / 2];
    std::printf("round %d: two primitives %.3f ms, one primitive %.3f ms, one/two speed %.3f\n", round + 1, 1e3 * m2,
                1e3 * m1, m2 / m1);
  }
  return 0;
}
