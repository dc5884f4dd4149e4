// Global attention (Luong et al. 2015), forward and backward side by side: see attention.h.
#include "recur/model/attention.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "quote.h"
#include "recur/core/error.h"
#include "recur/model/linear.h"

namespace recur {

const char* attention_score_name(AttentionScore s) {
  switch (s) {
    case AttentionScore::dot: return "dot";
    case AttentionScore::general: return "general";
    case AttentionScore::additive: return "additive";
  }
  return "?";
}

AttentionScore parse_attention_score(std::string_view name) {
  if (name == "dot") return AttentionScore::dot;
  if (name == "general") return AttentionScore::general;
  if (name == "additive") return AttentionScore::additive;
  throw Error("attention score " + quote_name(name) + ": expected dot, general or additive");
}

std::vector<const char*> attention_score_param_names(AttentionScore s) {
  switch (s) {
    case AttentionScore::dot: return {};
    case AttentionScore::general: return {"score.weight"};
    case AttentionScore::additive: return {"query.weight", "key.weight", "v.weight"};
  }
  return {};
}

std::vector<Shape> attention_score_param_shapes(AttentionScore s, int64_t Q, int64_t M, int64_t A) {
  switch (s) {
    case AttentionScore::dot: return {};
    case AttentionScore::general: return {{Q, M}};
    case AttentionScore::additive: return {{A, Q}, {A, M}, {1, A}};
  }
  return {};
}

namespace {

// Source positions attended by example b.
int64_t length_of(std::span<const int64_t> lengths, int64_t b, int64_t Ts) {
  return lengths.empty() ? Ts : lengths[size_t(b)];
}

template <typename T>
void check_inputs(AttentionScore score, const AttentionWeights<T>& w, const Tensor<T>& query, const Tensor<T>& memory,
                  std::span<const int64_t> lengths) {
  if (query.rank() != 3 || memory.rank() != 3 || query.dim(1) != memory.dim(1))
    throw ShapeError("attention: expected query [Tq, B, Q] and memory [Ts, B, M] of the same batch, got " +
                     shape_str(query.shape) + " and " + shape_str(memory.shape));
  const int64_t B = query.dim(1), Ts = memory.dim(0), Q = query.dim(2), M = memory.dim(2);
  if (!lengths.empty() && int64_t(lengths.size()) != B)
    throw ShapeError("attention: " + std::to_string(lengths.size()) + " memory lengths for a batch of " + std::to_string(B));
  for (int64_t l : lengths)
    if (l < 1 || l > Ts) throw ShapeError("attention: memory length " + std::to_string(l) + " outside [1, " + std::to_string(Ts) + "]");
  if (score == AttentionScore::dot && Q != M)
    throw ShapeError("attention: the dot score needs query and memory of one width, got " + std::to_string(Q) + " and " +
                     std::to_string(M));
  if (!w.out || w.out->rank() != 2 || w.out->dim(1) != M + Q)
    throw ShapeError("attention: output weight must be [A, M + Q] = [A, " + std::to_string(M + Q) + "]");
  const auto shapes = attention_score_param_shapes(score, Q, M, w.out->dim(0));
  if (w.score.size() != shapes.size()) throw ShapeError("attention: wrong number of score parameters");
  for (size_t k = 0; k < shapes.size(); ++k)
    check_shape(std::string("attention ") + attention_score_param_names(score)[k], w.score[k].shape, shapes[k]);
}

// The projections have no bias (Luong's W_a, Bahdanau's W_q, W_k and W_c).
template <typename T>
const Tensor<T>& no_bias() {
  static const Tensor<T> none;
  return none;
}

// attention_attend after the inputs were checked (attention_forward checks them once).
template <typename T>
void attend(AttentionScore score, const AttentionWeights<T>& w, const Tensor<T>& query, const Tensor<T>& memory,
            const Tensor<T>& keys, std::span<const int64_t> lengths, AttentionCache<T>& cache, Tensor<T>& y);

}  // namespace

template <typename T>
void attention_keys(AttentionScore score, const AttentionWeights<T>& w, const Tensor<T>& memory, Tensor<T>& keys) {
  switch (score) {
    case AttentionScore::dot: keys = Tensor<T>(); break;
    case AttentionScore::general: linear_forward(w.score[0], no_bias<T>(), memory, keys); break;   // [Ts, B, Q]
    case AttentionScore::additive: linear_forward(w.score[1], no_bias<T>(), memory, keys); break;  // [Ts, B, A]
  }
}

template <typename T>
void attention_attend(AttentionScore score, const AttentionWeights<T>& w, const Tensor<T>& query,
                      const Tensor<T>& memory, const Tensor<T>& keys, std::span<const int64_t> lengths,
                      AttentionCache<T>& cache, Tensor<T>& y) {
  check_inputs(score, w, query, memory, lengths);
  attend(score, w, query, memory, keys, lengths, cache, y);
}

namespace {

template <typename T>
void attend(AttentionScore score, const AttentionWeights<T>& w, const Tensor<T>& query, const Tensor<T>& memory,
            const Tensor<T>& keys, std::span<const int64_t> lengths, AttentionCache<T>& cache, Tensor<T>& y) {
  const int64_t Tq = query.dim(0), B = query.dim(1), Q = query.dim(2), Ts = memory.dim(0), M = memory.dim(2);
  const int64_t A = w.out->dim(0);
  const int64_t K = score == AttentionScore::dot ? 0 : keys.shape.back();  // key width
  if (score != AttentionScore::dot) check_shape("attention keys", keys.shape, {Ts, B, K});
  if (score == AttentionScore::additive) {
    linear_forward(w.score[0], no_bias<T>(), query, cache.queries);  // [Tq, B, A]
    cache.hidden.resize({Tq, B, Ts, A});
  } else {
    cache.queries = Tensor<T>();
    cache.hidden = Tensor<T>();
  }
  cache.weights.resize({Tq, B, Ts});
  cache.weights.zero();
  cache.joined.resize({Tq, B, M + Q});
  std::vector<T> e(static_cast<size_t>(Ts));
  for (int64_t t = 0; t < Tq; ++t)
    for (int64_t b = 0; b < B; ++b) {
      const int64_t L = length_of(lengths, b, Ts);
      const T* q = query.ptr() + (t * B + b) * Q;
      for (int64_t i = 0; i < L; ++i) {
        T sum = 0;
        if (score == AttentionScore::additive) {
          const T* qp = cache.queries.ptr() + (t * B + b) * A;
          const T* kp = keys.ptr() + (i * B + b) * A;
          T* u = cache.hidden.ptr() + ((t * B + b) * Ts + i) * A;
          const T* v = w.score[2].ptr();
          for (int64_t j = 0; j < A; ++j) {
            u[j] = std::tanh(qp[j] + kp[j]);
            sum += v[j] * u[j];
          }
        } else {
          const T* k = score == AttentionScore::dot ? memory.ptr() + (i * B + b) * M : keys.ptr() + (i * B + b) * K;
          for (int64_t j = 0; j < Q; ++j) sum += q[j] * k[j];
        }
        e[size_t(i)] = sum;
      }
      // softmax over the L attended positions
      const T mx = *std::max_element(e.begin(), e.begin() + L);
      T z = 0;
      T* a = cache.weights.ptr() + (t * B + b) * Ts;
      for (int64_t i = 0; i < L; ++i) z += (a[i] = std::exp(e[size_t(i)] - mx));
      for (int64_t i = 0; i < L; ++i) a[i] /= z;
      // joined = [c_t; h_t]
      T* j = cache.joined.ptr() + (t * B + b) * (M + Q);
      std::fill(j, j + M, T(0));
      for (int64_t i = 0; i < L; ++i) {
        const T* s = memory.ptr() + (i * B + b) * M;
        for (int64_t m = 0; m < M; ++m) j[m] += a[i] * s[m];
      }
      std::copy(q, q + Q, j + M);
    }
  linear_forward(*w.out, no_bias<T>(), cache.joined, y);  // [Tq, B, A]
  for (auto& v : y.data) v = std::tanh(v);
}

}  // namespace

template <typename T>
void attention_forward(AttentionScore score, const AttentionWeights<T>& w, const Tensor<T>& query,
                       const Tensor<T>& memory, std::span<const int64_t> lengths, AttentionCache<T>& cache, Tensor<T>& y) {
  check_inputs(score, w, query, memory, lengths);
  attention_keys(score, w, memory, cache.keys);
  attend(score, w, query, memory, cache.keys, lengths, cache, y);
}

template <typename T>
void attention_attend_backward(AttentionScore score, const AttentionWeights<T>& w, const Tensor<T>& query,
                               const Tensor<T>& memory, const Tensor<T>& keys, std::span<const int64_t> lengths,
                               const AttentionCache<T>& cache, const Tensor<T>& y, const Tensor<T>& dy,
                               Tensor<T>& grad_out, std::span<Tensor<T>> grad_score, Tensor<T>& grad_query,
                               Tensor<T>& grad_keys, Tensor<T>& grad_memory) {
  check_inputs(score, w, query, memory, lengths);
  check_shape("attention dy", dy.shape, y.shape);
  const int64_t Tq = query.dim(0), B = query.dim(1), Q = query.dim(2), Ts = memory.dim(0), M = memory.dim(2);
  const int64_t A = w.out->dim(0);
  if (score != AttentionScore::dot) check_shape("attention key gradient", grad_keys.shape, keys.shape);
  check_shape("attention memory gradient", grad_memory.shape, memory.shape);
  // Through tanh and the output product: dz = dy (1 - y^2); d[c; h] = dz W_c.
  Tensor<T> dz = dy, djoined;  // [Tq, B, A], [Tq, B, M + Q]
  for (size_t k = 0; k < dz.data.size(); ++k) dz.data[k] *= T(1) - y.data[k] * y.data[k];
  linear_backward(*w.out, cache.joined, dz, grad_out, nullptr, &djoined);

  Tensor<T>& dq = grad_query;
  dq.resize({Tq, B, Q});
  dq.zero();
  Tensor<T>& dmem = grad_memory;  // accumulated into
  Tensor<T> dqueries;             // additive: [Tq, B, A]
  if (score == AttentionScore::additive) dqueries = Tensor<T>({Tq, B, A});
  std::vector<T> da(static_cast<size_t>(Ts)), de(static_cast<size_t>(Ts));
  for (int64_t t = 0; t < Tq; ++t)
    for (int64_t b = 0; b < B; ++b) {
      const int64_t L = length_of(lengths, b, Ts);
      const T* a = cache.weights.ptr() + (t * B + b) * Ts;
      const T* dj = djoined.ptr() + (t * B + b) * (M + Q);  // dc = dj[0, M), dh = dj[M, M + Q)
      const T* q = query.ptr() + (t * B + b) * Q;
      T* dqr = dq.ptr() + (t * B + b) * Q;
      for (int64_t k = 0; k < Q; ++k) dqr[k] += dj[M + k];
      // c = sum_i a_i s_i: da_i = dc . s_i, ds_i += a_i dc
      T dot_ada = 0;
      for (int64_t i = 0; i < L; ++i) {
        const T* s = memory.ptr() + (i * B + b) * M;
        T* ds = dmem.ptr() + (i * B + b) * M;
        T sum = 0;
        for (int64_t m = 0; m < M; ++m) {
          sum += dj[m] * s[m];
          ds[m] += a[i] * dj[m];
        }
        da[size_t(i)] = sum;
        dot_ada += a[i] * sum;
      }
      // softmax: de_i = a_i (da_i - sum_j a_j da_j)
      for (int64_t i = 0; i < L; ++i) de[size_t(i)] = a[i] * (da[size_t(i)] - dot_ada);
      for (int64_t i = 0; i < L; ++i) {
        const T g = de[size_t(i)];
        switch (score) {
          case AttentionScore::dot: {
            const T* s = memory.ptr() + (i * B + b) * M;
            T* ds = dmem.ptr() + (i * B + b) * M;
            for (int64_t k = 0; k < Q; ++k) {
              dqr[k] += g * s[k];
              ds[k] += g * q[k];
            }
            break;
          }
          case AttentionScore::general: {
            const T* key = keys.ptr() + (i * B + b) * Q;
            T* dk = grad_keys.ptr() + (i * B + b) * Q;
            for (int64_t k = 0; k < Q; ++k) {
              dqr[k] += g * key[k];
              dk[k] += g * q[k];
            }
            break;
          }
          case AttentionScore::additive: {
            // e = v . u, u = tanh(pre): dv += g u; dpre = g v (1 - u^2) into both projections
            const T* u = cache.hidden.ptr() + ((t * B + b) * Ts + i) * A;
            const T* v = w.score[2].ptr();
            T* dv = grad_score[2].ptr();
            T* dqp = dqueries.ptr() + (t * B + b) * A;
            T* dkp = grad_keys.ptr() + (i * B + b) * A;
            for (int64_t j = 0; j < A; ++j) {
              dv[j] += g * u[j];
              const T dpre = g * v[j] * (T(1) - u[j] * u[j]);
              dqp[j] += dpre;
              dkp[j] += dpre;
            }
            break;
          }
        }
      }
    }
  // The query projection's own backward (additive): W_q's gradient and its share of dq.
  if (score == AttentionScore::additive) {
    Tensor<T> more;
    linear_backward(w.score[0], query, dqueries, grad_score[0], nullptr, &more);
    for (size_t k = 0; k < more.data.size(); ++k) dq.data[k] += more.data[k];
  }
}

template <typename T>
void attention_keys_backward(AttentionScore score, const AttentionWeights<T>& w, const Tensor<T>& memory,
                             const Tensor<T>& grad_keys, std::span<Tensor<T>> grad_score, Tensor<T>* grad_memory) {
  if (score == AttentionScore::dot) return;
  const size_t k = score == AttentionScore::general ? 0 : 1;  // W_s or W_k
  Tensor<T> more;
  linear_backward(w.score[k], memory, grad_keys, grad_score[k], nullptr, grad_memory ? &more : nullptr);
  if (grad_memory)
    for (size_t i = 0; i < more.data.size(); ++i) grad_memory->data[i] += more.data[i];
}

template <typename T>
void attention_backward(AttentionScore score, const AttentionWeights<T>& w, const Tensor<T>& query,
                        const Tensor<T>& memory, std::span<const int64_t> lengths, const AttentionCache<T>& cache,
                        const Tensor<T>& y, const Tensor<T>& dy, Tensor<T>& grad_out, std::span<Tensor<T>> grad_score,
                        Tensor<T>* grad_query, Tensor<T>* grad_memory) {
  Tensor<T> dq, dkeys, dmem(memory.shape);  // zeroed
  if (score != AttentionScore::dot) dkeys = Tensor<T>(cache.keys.shape);
  attention_attend_backward(score, w, query, memory, cache.keys, lengths, cache, y, dy, grad_out, grad_score, dq, dkeys,
                            dmem);
  attention_keys_backward(score, w, memory, dkeys, grad_score, grad_memory ? &dmem : nullptr);
  if (grad_query) *grad_query = std::move(dq);
  if (grad_memory) *grad_memory = std::move(dmem);
}

#define RECUR_INSTANTIATE(T)                                                                                          \
  template void attention_keys<T>(AttentionScore, const AttentionWeights<T>&, const Tensor<T>&, Tensor<T>&);         \
  template void attention_attend<T>(AttentionScore, const AttentionWeights<T>&, const Tensor<T>&, const Tensor<T>&,  \
                                    const Tensor<T>&, std::span<const int64_t>, AttentionCache<T>&, Tensor<T>&);      \
  template void attention_forward<T>(AttentionScore, const AttentionWeights<T>&, const Tensor<T>&, const Tensor<T>&, \
                                     std::span<const int64_t>, AttentionCache<T>&, Tensor<T>&);                       \
  template void attention_backward<T>(AttentionScore, const AttentionWeights<T>&, const Tensor<T>&, const Tensor<T>&, \
                                      std::span<const int64_t>, const AttentionCache<T>&, const Tensor<T>&,           \
                                      const Tensor<T>&, Tensor<T>&, std::span<Tensor<T>>, Tensor<T>*, Tensor<T>*);     \
  template void attention_attend_backward<T>(AttentionScore, const AttentionWeights<T>&, const Tensor<T>&,          \
                                             const Tensor<T>&, const Tensor<T>&, std::span<const int64_t>,           \
                                             const AttentionCache<T>&, const Tensor<T>&, const Tensor<T>&, Tensor<T>&, \
                                             std::span<Tensor<T>>, Tensor<T>&, Tensor<T>&, Tensor<T>&);               \
  template void attention_keys_backward<T>(AttentionScore, const AttentionWeights<T>&, const Tensor<T>&,            \
                                           const Tensor<T>&, std::span<Tensor<T>>, Tensor<T>*);
RECUR_INSTANTIATE(float)
RECUR_INSTANTIATE(double)
#undef RECUR_INSTANTIATE

}  // namespace recur
