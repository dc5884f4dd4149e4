// bfloat16 matrix products through oneDNN's matmul (see blas.h, gemm_bf16).
#include <cstdint>
#include <map>
#include <string>
#include <tuple>

#include "blas.h"
#include "pool_scope.h"
#include "recur/core/error.h"
#include "recur/core/quantize.h"
#include "recur/core/threads.h"
#include "rnn_onednn.h"

#ifdef RECUR_HAVE_ONEDNN
#include <oneapi/dnnl/dnnl.hpp>
#endif

namespace recur::blas {

#ifdef RECUR_HAVE_ONEDNN

namespace {

using dnnl::memory;
using Dims = memory::dims;

using detail::onednn::cpu_engine;
using detail::onednn::cpu_stream;

// A primitive per shape, transposes, leading dimensions, beta and bias: a training run has a
// handful (the output layer forward and its two backward products, the last batch's shapes).
using Key = std::tuple<bool, bool, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, bool, bool>;
struct Matmul {
  dnnl::matmul prim;
  memory a, b, c, bias;  // descriptors with no data; the pointers are set per call
  bool usable = false;  // an optimised kernel (not oneDNN's reference code)
};

Matmul make(const Key& key) {
  const auto [ta, tb, m, n, k, lda, ldb, ldc, accumulate, has_bias] = key;
  using dt = memory::data_type;
  // op(A) [m, k]: A stored [m, k] (rows lda apart), or [k, m] read transposed.
  const memory::desc a_md({m, k}, dt::bf16, ta ? Dims{1, lda} : Dims{lda, 1});
  // op(B) [k, n]: B stored [k, n], or [n, k] read transposed.
  const memory::desc b_md({k, n}, dt::bf16, tb ? Dims{1, ldb} : Dims{ldb, 1});
  const memory::desc c_md({m, n}, dt::f32, Dims{ldc, 1});
  const memory::desc bias_md = has_bias ? memory::desc({1, n}, dt::f32, Dims{n, 1}) : memory::desc();
  dnnl::primitive_attr attr;
  if (accumulate) {
    dnnl::post_ops po;
    po.append_sum(1.0f);
    attr.set_post_ops(po);
  }
  const dnnl::matmul::desc desc = has_bias ? dnnl::matmul::desc(a_md, b_md, bias_md, c_md) : dnnl::matmul::desc(a_md, b_md, c_md);
  const dnnl::matmul::primitive_desc pd(desc, attr, cpu_engine());
  Matmul mm{dnnl::matmul(pd), memory(a_md, cpu_engine(), DNNL_MEMORY_NONE), memory(b_md, cpu_engine(), DNNL_MEMORY_NONE),
            memory(c_md, cpu_engine(), DNNL_MEMORY_NONE),
            has_bias ? memory(bias_md, cpu_engine(), DNNL_MEMORY_NONE) : memory()};
  const std::string impl = pd.impl_info_str();
  mm.usable = impl.find("ref") == std::string::npos;
  return mm;
}

}  // namespace

bool gemm_bf16(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const uint16_t* a, int64_t lda, const uint16_t* b,
               int64_t ldb, float beta, float* c, int64_t ldc, const float* bias) {
  if (m <= 0 || n <= 0 || k <= 0 || !(beta == 0.0f || beta == 1.0f) || !cpu_has_bf16()) return false;
  thread_local std::map<Key, Matmul> cache;
  const Key key{ta, tb, m, n, k, lda, ldb, ldc, beta == 1.0f, bias != nullptr};
  auto it = cache.find(key);
  if (it == cache.end()) {
    if (cache.size() >= 64) cache.clear();  // shapes that come and go (ragged last batches)
    try {
      it = cache.emplace(key, make(key)).first;
    } catch (const dnnl::error&) {
      return false;  // a shape oneDNN has no matmul for: float32 instead
    }
  }
  Matmul& mm = it->second;
  if (!mm.usable) return false;
  mm.a.set_data_handle(const_cast<uint16_t*>(a));
  mm.b.set_data_handle(const_cast<uint16_t*>(b));
  mm.c.set_data_handle(c);
  const detail::PoolOfOne threads(deterministic());  // --deterministic: pool_scope.h
  try {
    if (bias) {
      mm.bias.set_data_handle(const_cast<float*>(bias));
      mm.prim.execute(cpu_stream(),
                      {{DNNL_ARG_SRC, mm.a}, {DNNL_ARG_WEIGHTS, mm.b}, {DNNL_ARG_BIAS, mm.bias}, {DNNL_ARG_DST, mm.c}});
    } else {
      mm.prim.execute(cpu_stream(), {{DNNL_ARG_SRC, mm.a}, {DNNL_ARG_WEIGHTS, mm.b}, {DNNL_ARG_DST, mm.c}});
    }
  } catch (const dnnl::error& e) {
    throw Error(std::string("gemm_bf16: oneDNN's matmul failed: ") + e.what());
  }
  return true;
}

#else  // !RECUR_HAVE_ONEDNN

bool gemm_bf16(bool, bool, int64_t, int64_t, int64_t, const uint16_t*, int64_t, const uint16_t*, int64_t, float, float*,
               int64_t, const float*) {
  return false;
}

#endif

}  // namespace recur::blas
