#include "recur/model/crf.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "layer_checks.h"
#include "recur/core/error.h"

namespace recur {

namespace {

constexpr double kNegInf = -std::numeric_limits<double>::infinity();

// The scores with the constraints applied, in double: forbidden cells are -inf, so exp() of any
// path through them is exactly 0 in the forward algorithm and Viterbi never picks them.
struct Scores {
  int64_t C = 0;
  std::vector<double> trans;       // [C, C]
  std::vector<double> start, end;  // [C]
};

template <typename T>
Scores constrained_scores(const CrfParamsRef<T>& p, const CrfConstraints& k, int64_t C) {
  check_shape("crf transitions", p.transitions.shape, {C, C});
  check_shape("crf start_end", p.start_end.shape, {2, C});
  if (!k.transitions.empty()) detail::check_size("crf constraints transitions", int64_t(k.transitions.size()), C * C);
  if (!k.start.empty()) detail::check_size("crf constraints start", int64_t(k.start.size()), C);
  if (!k.end.empty()) detail::check_size("crf constraints end", int64_t(k.end.size()), C);
  Scores s;
  s.C = C;
  s.trans.resize(size_t(C * C));
  s.start.resize(size_t(C));
  s.end.resize(size_t(C));
  for (int64_t i = 0; i < C * C; ++i)
    s.trans[size_t(i)] = k.transitions.empty() || k.transitions[size_t(i)] ? double(p.transitions.data[size_t(i)]) : kNegInf;
  for (int64_t j = 0; j < C; ++j) {
    s.start[size_t(j)] = k.start.empty() || k.start[size_t(j)] ? double(p.start_end.data[size_t(j)]) : kNegInf;
    s.end[size_t(j)] = k.end.empty() || k.end[size_t(j)] ? double(p.start_end.data[size_t(C + j)]) : kNegInf;
  }
  return s;
}

// log(sum exp(x)) of n values, -inf when all are -inf (no allowed path) rather than NaN.
double lse(const double* x, int64_t n) {
  double m = kNegInf;
  for (int64_t i = 0; i < n; ++i) m = std::max(m, x[i]);
  if (m == kNegInf) return kNegInf;
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += std::exp(x[i] - m);
  return m + std::log(s);
}

// Emission score of (t, b, j) in a [T, B, C] tensor.
template <typename T>
double em(const Tensor<T>& e, int64_t B, int64_t C, int64_t t, int64_t b, int64_t j) {
  return double(e.data[size_t((t * B + b) * C + j)]);
}

// Forward variables alpha [L, C] of sentence b: alpha[t][j] = log of the summed exp-scores of
// every prefix ending in tag j at step t (its emission included). Returns log Z.
template <typename T>
double forward(const Tensor<T>& e, int64_t B, int64_t b, int64_t L, const Scores& s, std::vector<double>& alpha) {
  const int64_t C = s.C;
  alpha.assign(size_t(L * C), 0.0);
  std::vector<double> tmp(static_cast<size_t>(C));
  for (int64_t j = 0; j < C; ++j) alpha[size_t(j)] = s.start[size_t(j)] + em(e, B, C, 0, b, j);
  for (int64_t t = 1; t < L; ++t)
    for (int64_t j = 0; j < C; ++j) {
      for (int64_t i = 0; i < C; ++i) tmp[size_t(i)] = alpha[size_t((t - 1) * C + i)] + s.trans[size_t(i * C + j)];
      alpha[size_t(t * C + j)] = lse(tmp.data(), C) + em(e, B, C, t, b, j);
    }
  for (int64_t j = 0; j < C; ++j) tmp[size_t(j)] = alpha[size_t((L - 1) * C + j)] + s.end[size_t(j)];
  return lse(tmp.data(), C);
}

// Backward variables beta [L, C]: beta[t][i] = log of the summed exp-scores of every suffix after
// tag i at step t (the end score included, tag i's own emission not).
template <typename T>
void backward(const Tensor<T>& e, int64_t B, int64_t b, int64_t L, const Scores& s, std::vector<double>& beta) {
  const int64_t C = s.C;
  beta.assign(size_t(L * C), 0.0);
  std::vector<double> tmp(static_cast<size_t>(C));
  for (int64_t i = 0; i < C; ++i) beta[size_t((L - 1) * C + i)] = s.end[size_t(i)];
  for (int64_t t = L - 1; t-- > 0;)
    for (int64_t i = 0; i < C; ++i) {
      for (int64_t j = 0; j < C; ++j)
        tmp[size_t(j)] = s.trans[size_t(i * C + j)] + em(e, B, C, t + 1, b, j) + beta[size_t((t + 1) * C + j)];
      beta[size_t(t * C + i)] = lse(tmp.data(), C);
    }
}

// exp(x) that is exactly 0 for -inf (forbidden cells) and never NaN.
double safe_exp(double x) { return x == kNegInf ? 0.0 : std::exp(x); }

void check_inputs(const Shape& es, std::span<const int64_t> lengths, int64_t* T, int64_t* B, int64_t* C) {
  detail::check_rank("crf emissions", es, 3, "[T, B, C]");
  *T = es[0];
  *B = es[1];
  *C = es[2];
  detail::check_size("crf lengths", int64_t(lengths.size()), *B);
  for (int64_t b = 0; b < *B; ++b)
    if (lengths[size_t(b)] < 0 || lengths[size_t(b)] > *T)
      throw ShapeError("crf lengths[" + std::to_string(b) + "] = " + std::to_string(lengths[size_t(b)]) +
                       ": expected 0 to T = " + std::to_string(*T));
  if (*C < 1) throw ShapeError("crf emissions: expected C >= 1 tags, got " + shape_str(es));
}

}  // namespace

template <typename T>
LossSum crf_nll(const Tensor<T>& e, std::span<const int64_t> lengths, std::span<const int32_t> tags,
                const CrfParamsRef<T>& params, const CrfConstraints& k, const CrfGrads<T>& g, double grad_scale) {
  int64_t Ts = 0, B = 0, C = 0;
  check_inputs(e.shape, lengths, &Ts, &B, &C);
  detail::check_size("crf tags", int64_t(tags.size()), Ts * B);
  const Scores s = constrained_scores(params, k, C);
  if (g.emissions) {
    g.emissions->resize(e.shape);
    g.emissions->zero();
  }
  if (g.transitions) check_shape("crf grad transitions", g.transitions->shape, {C, C});
  if (g.start_end) check_shape("crf grad start_end", g.start_end->shape, {2, C});
  const bool want_grad = g.emissions || g.transitions || g.start_end;
  LossSum out;
  std::vector<double> alpha, beta;
  for (int64_t b = 0; b < B; ++b) {
    const int64_t L = lengths[size_t(b)];
    if (L == 0) continue;
    auto tag = [&](int64_t t) { return tags[size_t(t * B + b)]; };
    for (int64_t t = 0; t < L; ++t)
      if (tag(t) < 0 || tag(t) >= C)
        throw Error("crf: sentence " + std::to_string(b) + " step " + std::to_string(t) + ": tag " + std::to_string(tag(t)) +
                    " outside [0, " + std::to_string(C) + ")");
    // The gold path's score.
    double gold = s.start[size_t(tag(0))] + s.end[size_t(tag(L - 1))];
    for (int64_t t = 0; t < L; ++t) gold += em(e, B, C, t, b, tag(t));
    for (int64_t t = 1; t < L; ++t) gold += s.trans[size_t(tag(t - 1) * C + tag(t))];
    if (gold == kNegInf)
      throw Error("crf: sentence " + std::to_string(b) +
                  ": its gold tags take a transition the tag scheme forbids (convert the tags to the scheme first)");
    const double logz = forward(e, B, b, L, s, alpha);
    out.sum += logz - gold;
    out.count += L;
    if (!want_grad) continue;
    backward(e, B, b, L, s, beta);
    // d(log Z)/d(score of a cell) is its marginal probability; d(gold)/d(.) counts the gold path.
    for (int64_t t = 0; t < L; ++t)
      for (int64_t j = 0; j < C; ++j) {
        const double p = safe_exp(alpha[size_t(t * C + j)] + beta[size_t(t * C + j)] - logz);
        const double d = grad_scale * (p - (tag(t) == j ? 1.0 : 0.0));
        if (g.emissions) g.emissions->data[size_t((t * B + b) * C + j)] = T(d);
        if (g.start_end && t == 0) g.start_end->data[size_t(j)] += T(grad_scale * (p - (tag(0) == j ? 1.0 : 0.0)));
        if (g.start_end && t == L - 1)
          g.start_end->data[size_t(C + j)] += T(grad_scale * (p - (tag(L - 1) == j ? 1.0 : 0.0)));
      }
    if (g.transitions) {
      for (int64_t t = 1; t < L; ++t)
        for (int64_t i = 0; i < C; ++i) {
          const double a = alpha[size_t((t - 1) * C + i)];
          if (a == kNegInf) continue;
          for (int64_t j = 0; j < C; ++j) {
            const double x = a + s.trans[size_t(i * C + j)] + em(e, B, C, t, b, j) + beta[size_t(t * C + j)] - logz;
            g.transitions->data[size_t(i * C + j)] += T(grad_scale * safe_exp(x));
          }
        }
      for (int64_t t = 1; t < L; ++t) g.transitions->data[size_t(tag(t - 1) * C + tag(t))] -= T(grad_scale);
    }
  }
  return out;
}

template <typename T>
std::vector<std::vector<int32_t>> crf_viterbi(const Tensor<T>& e, std::span<const int64_t> lengths,
                                              const CrfParamsRef<T>& params, const CrfConstraints& k) {
  int64_t Ts = 0, B = 0, C = 0;
  check_inputs(e.shape, lengths, &Ts, &B, &C);
  const Scores s = constrained_scores(params, k, C);
  std::vector<std::vector<int32_t>> out(static_cast<size_t>(B));
  std::vector<double> delta, next(static_cast<size_t>(C));
  std::vector<int32_t> from;  // [L, C] back-pointers
  for (int64_t b = 0; b < B; ++b) {
    const int64_t L = lengths[size_t(b)];
    if (L == 0) continue;
    delta.assign(size_t(C), 0.0);
    from.assign(size_t(L * C), 0);
    for (int64_t j = 0; j < C; ++j) delta[size_t(j)] = s.start[size_t(j)] + em(e, B, C, 0, b, j);
    for (int64_t t = 1; t < L; ++t) {
      for (int64_t j = 0; j < C; ++j) {
        double best = kNegInf;
        int32_t arg = 0;
        for (int64_t i = 0; i < C; ++i) {
          const double v = delta[size_t(i)] + s.trans[size_t(i * C + j)];
          if (v > best) best = v, arg = int32_t(i);  // strict: ties keep the lower tag
        }
        next[size_t(j)] = best + em(e, B, C, t, b, j);
        from[size_t(t * C + j)] = arg;
      }
      delta.swap(next);
    }
    double best = kNegInf;
    int32_t arg = 0;
    for (int64_t j = 0; j < C; ++j) {
      const double v = delta[size_t(j)] + s.end[size_t(j)];
      if (v > best) best = v, arg = int32_t(j);
    }
    std::vector<int32_t>& path = out[size_t(b)];
    path.assign(size_t(L), 0);
    path[size_t(L - 1)] = arg;
    for (int64_t t = L - 1; t > 0; --t) path[size_t(t - 1)] = from[size_t(t * C + path[size_t(t)])];
  }
  return out;
}

template <typename T>
double crf_log_partition(const Tensor<T>& e, const CrfParamsRef<T>& params, const CrfConstraints& k) {
  detail::check_rank("crf emissions", e.shape, 2, "[L, C]");
  const int64_t L = e.dim(0), C = e.dim(1);
  if (L < 1) throw ShapeError("crf emissions: expected L >= 1, got " + shape_str(e.shape));
  const Scores s = constrained_scores(params, k, C);
  std::vector<double> alpha;
  return forward(e, 1, 0, L, s, alpha);  // [L, C] is [L, 1, C]
}

#define RECUR_INSTANTIATE(T)                                                                                       \
  template LossSum crf_nll<T>(const Tensor<T>&, std::span<const int64_t>, std::span<const int32_t>,                \
                              const CrfParamsRef<T>&, const CrfConstraints&, const CrfGrads<T>&, double);          \
  template std::vector<std::vector<int32_t>> crf_viterbi<T>(const Tensor<T>&, std::span<const int64_t>,            \
                                                            const CrfParamsRef<T>&, const CrfConstraints&);        \
  template double crf_log_partition<T>(const Tensor<T>&, const CrfParamsRef<T>&, const CrfConstraints&);
RECUR_INSTANTIATE(float)
RECUR_INSTANTIATE(double)
#undef RECUR_INSTANTIATE

}  // namespace recur
