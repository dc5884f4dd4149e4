// Float products with a pre-packed B operand through oneDNN's matmul (see blas.h, PackedProduct).
#include <algorithm>
#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "blas.h"
#include "pool_scope.h"
#include "recur/core/error.h"
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

// A matmul primitive and B's reorder into its layout, per shape (a training run has a few: one
// per layer shape and direction of the product).
using Key = std::tuple<bool, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, bool>;
struct Kernel {
  dnnl::matmul prim;
  dnnl::reorder pack;
  memory::desc a_md, b_plain_md, b_packed_md, c_md;
  bool usable = false;
};

Kernel make(const Key& key) {
  const auto [tb, m, n, k, ldb, lda, ldc, accumulate] = key;
  using dt = memory::data_type;
  const memory::desc a_md({m, k}, dt::f32, Dims{lda, 1});
  const memory::desc b_plain({k, n}, dt::f32, tb ? Dims{1, ldb} : Dims{ldb, 1});
  const memory::desc b_any({k, n}, dt::f32, memory::format_tag::any);
  const memory::desc c_md({m, n}, dt::f32, Dims{ldc, 1});
  dnnl::primitive_attr attr;
  if (accumulate) {
    dnnl::post_ops po;
    po.append_sum(1.0f);
    attr.set_post_ops(po);
  }
  const dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a_md, b_any, c_md), attr, cpu_engine());
  Kernel kn;
  kn.prim = dnnl::matmul(pd);
  kn.a_md = a_md;
  kn.b_plain_md = b_plain;
  kn.b_packed_md = pd.weights_desc();
  kn.c_md = c_md;
  kn.pack = dnnl::reorder(dnnl::reorder::primitive_desc(cpu_engine(), b_plain, cpu_engine(), kn.b_packed_md));
  kn.usable = std::string(pd.impl_info_str()).find("ref") == std::string::npos;
  return kn;
}

// Room for a packed operand, uninitialised. A layer's scans make and drop their products once
// per call, so the rooms go back to a small per-thread shelf instead of being freed: a 4 MiB
// W_hh would otherwise be allocated and faulted in again on every forward and backward.
struct Room {
  std::unique_ptr<float[]> data;
  size_t size = 0;
};
std::vector<Room>& shelf() {
  thread_local std::vector<Room> rooms;
  return rooms;
}

}  // namespace

struct PackedProduct::Impl {
  std::shared_ptr<const Kernel> kernel;  // shared with the per-thread table, which may drop it
  Room room;                             // op(B) in the kernel's layout
  mutable memory a, b, c;
  bool split = false;  // whether the product is large enough to share among the pool's threads
};

PackedProduct::PackedProduct() : impl_(new Impl) {}
PackedProduct::~PackedProduct() {
  if (impl_->room.data && shelf().size() < 8) shelf().push_back(std::move(impl_->room));
  delete impl_;
}

bool PackedProduct::pack(bool tb, int64_t m, int64_t n, int64_t k, const float* b, int64_t ldb, int64_t lda,
                         int64_t ldc, bool accumulate) {
  impl_->kernel.reset();
  if (m <= 0 || n <= 0 || k <= 0) return false;
  thread_local std::map<Key, std::shared_ptr<const Kernel>> kernels;
  const Key key{tb, m, n, k, ldb, lda, ldc, accumulate};
  auto it = kernels.find(key);
  if (it == kernels.end()) {
    if (kernels.size() >= 64) kernels.clear();  // shapes that come and go (ragged last batches)
    try {
      it = kernels.emplace(key, std::make_shared<const Kernel>(make(key))).first;
    } catch (const dnnl::error&) {
      return false;
    }
  }
  const Kernel& kn = *it->second;
  if (!kn.usable) return false;
  const size_t floats = (kn.b_packed_md.get_size() + sizeof(float) - 1) / sizeof(float);
  Room& room = impl_->room;
  if (room.size < floats) {
    // The first room on the shelf that is large enough, else a new one.
    std::vector<Room>& rooms = shelf();
    auto fit = std::find_if(rooms.begin(), rooms.end(), [&](const Room& r) { return r.size >= floats; });
    if (fit != rooms.end()) {
      std::swap(room, *fit);
      if (!fit->data) rooms.erase(fit);
    } else {
      room = Room{std::unique_ptr<float[]>(new float[floats]), floats};
    }
  }
  memory plain(kn.b_plain_md, cpu_engine(), const_cast<float*>(b));
  impl_->b = memory(kn.b_packed_md, cpu_engine(), room.data.get());
  impl_->a = memory(kn.a_md, cpu_engine(), DNNL_MEMORY_NONE);
  impl_->c = memory(kn.c_md, cpu_engine(), DNNL_MEMORY_NONE);
  const detail::PoolOfOne threads(deterministic());
  try {
    kn.pack.execute(cpu_stream(), plain, impl_->b);
  } catch (const dnnl::error& e) {
    throw Error(std::string("PackedProduct: oneDNN's reorder failed: ") + e.what());
  }
  impl_->kernel = it->second;
  impl_->split = gemm_tiles(m, n, k).count() > 1;
  return true;
}

void PackedProduct::run(const float* a, float* c) const {
  impl_->a.set_data_handle(const_cast<float*>(a));
  impl_->c.set_data_handle(c);
  // A product that gemm would not cut into tiles runs on one thread here too: a small step's
  // product took twice as long split between two threads as on one (BENCHMARKS.md).
  const detail::PoolOfOne threads(deterministic() || !impl_->split);
  try {
    impl_->kernel->prim.execute(cpu_stream(), {{DNNL_ARG_SRC, impl_->a}, {DNNL_ARG_WEIGHTS, impl_->b}, {DNNL_ARG_DST, impl_->c}});
  } catch (const dnnl::error& e) {
    throw Error(std::string("PackedProduct: oneDNN's matmul failed: ") + e.what());
  }
}

#else  // !RECUR_HAVE_ONEDNN

struct PackedProduct::Impl {};
PackedProduct::PackedProduct() : impl_(new Impl) {}
PackedProduct::~PackedProduct() { delete impl_; }
bool PackedProduct::pack(bool, int64_t, int64_t, int64_t, const float*, int64_t, int64_t, int64_t, bool) { return false; }
void PackedProduct::run(const float*, float*) const {}

#endif

}  // namespace recur::blas
