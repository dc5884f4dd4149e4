// Greedy decoding, beam search and sampling over the stepper: see decoding.h.
#include "recur/model/decoding.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>

#include "activations.h"
#include "recur/core/error.h"

namespace recur {

namespace {

void check_max_length(int64_t max_length) {
  if (max_length < 0) throw Error("--max-length: expected >= 0, got " + std::to_string(max_length));
}

// log(sum_j exp(x_j)) of one row of logits: the max, then the vectorised exp of activations.h in
// float partial sums of 256 terms (each <= 1) added in double, as the softmax loss does.
double row_log_sum_exp(const float* x, int64_t n) {
  float m = x[0];
  for (int64_t j = 1; j < n; ++j) m = std::max(m, x[j]);
  double s = 0;
  for (int64_t j0 = 0; j0 < n; j0 += 256) {
    const int64_t j1 = std::min(n, j0 + 256);
    float b = 0;
#pragma omp simd reduction(+ : b)
    for (int64_t j = j0; j < j1; ++j) b += act::exp_f(x[j] - m);
    s += double(b);
  }
  return double(m) + std::log(s);
}

// The k largest entries of x [n] as ids, largest first, ties by the lower id: one pass keeping
// a sorted list of k (k is a beam width, n a vocabulary) and its smallest value in a register,
// so most entries cost one comparison.
void top_k(const float* x, int64_t n, int64_t k, std::vector<int32_t>& out) {
  out.clear();
  float kth = -std::numeric_limits<float>::infinity();
  for (int64_t j = 0; j < n; ++j) {
    if (int64_t(out.size()) == k && !(x[j] > kth)) continue;
    if (int64_t(out.size()) == k) out.pop_back();
    size_t at = out.size();
    while (at > 0 && x[out[at - 1]] < x[j]) --at;  // after every entry >= x[j]: lower ids first
    out.insert(out.begin() + int64_t(at), int32_t(j));
    if (int64_t(out.size()) == k) kth = x[out.back()];
  }
}

// Rows `from` of a [K, N, F] tensor into out [K, from.size(), F] (beam reordering).
void gather_rows(const Tensor<float>& t, const std::vector<int64_t>& from, Tensor<float>& out) {
  const int64_t K = t.dim(0), N = t.dim(1), F = t.dim(2), M = int64_t(from.size());
  out.resize({K, M, F});
  for (int64_t k = 0; k < K; ++k)
    for (int64_t m = 0; m < M; ++m)
      std::memcpy(out.ptr() + (k * M + m) * F, t.ptr() + (k * N + from[size_t(m)]) * F, size_t(F) * sizeof(float));
}

}  // namespace

std::vector<std::vector<int32_t>> greedy_decode(ModelStepper<float>& stepper, StepperStart<float> start,
                                                const DecodeTokens& tokens, int64_t max_length) {
  check_max_length(max_length);
  const int64_t B = start.batch, C = stepper.classes();
  std::vector<std::vector<int32_t>> out(static_cast<size_t>(B));
  std::vector<int32_t> ids(size_t(B), tokens.start);
  std::vector<bool> done(size_t(B), false);
  Tensor<float> logits;  // [B, C]
  for (int64_t step = 0; step <= max_length; ++step) {
    stepper.step(ids, start, logits);
    bool all = true;
    for (int64_t k = 0; k < B; ++k) {
      const float* row = logits.ptr() + k * C;
      ids[size_t(k)] = int32_t(std::max_element(row, row + C) - row);  // the first of equal maxima
      if (done[size_t(k)]) continue;
      if (ids[size_t(k)] == tokens.end || step == max_length) done[size_t(k)] = true;
      else out[size_t(k)].push_back(ids[size_t(k)]);
      all = all && done[size_t(k)];
    }
    if (all) break;
  }
  return out;
}

namespace {

struct Hyp {
  std::vector<int32_t> ids;
  double logp = 0;
};

// One example's search.
struct Search {
  std::vector<Hyp> live, next;  // [beam] each; the first n_live / n_next are in use
  int64_t n_live = 1, n_next = 0;
  int64_t row = 0;              // its first row in this step's batch
  Hyp best;
  double best_score = -std::numeric_limits<double>::infinity();
  bool active = true;
};

struct Cand {
  double lp;
  int64_t from;  // live hypothesis
  int64_t rank;  // place in its hypothesis' top-k
  int32_t tok;
};

}  // namespace

std::vector<std::vector<int32_t>> beam_decode(ModelStepper<float>& stepper, StepperStart<float> start,
                                              const DecodeTokens& tokens, const DecodeOptions& opts) {
  if (opts.beam < 1) throw Error("--beam: expected >= 1, got " + std::to_string(opts.beam));
  check_max_length(opts.max_length);
  const int64_t B = start.batch, C = stepper.classes(), K = std::min<int64_t>(opts.beam, C);
  const double alpha = opts.length_penalty;
  auto norm = [&](double lp, size_t len) {
    return alpha > 0 ? lp / std::pow(double(std::max<size_t>(len, 1)), alpha) : lp;
  };
  // The largest a finished score can be for a live logp (lengths are at most max_length + 1).
  const double longest = alpha > 0 ? std::pow(double(opts.max_length + 1), alpha) : 1.0;

  std::vector<Search> ex(static_cast<size_t>(B));
  for (int64_t b = 0; b < B; ++b) {
    ex[size_t(b)].live.resize(size_t(opts.beam));
    ex[size_t(b)].next.resize(size_t(opts.beam));
    ex[size_t(b)].row = b;
  }
  RnnState<float>& state = start.state;  // rows: the live hypotheses of the active examples
  Tensor<float>& context = start.context;
  RnnState<float> gathered;
  Tensor<float> gathered_context, gathered_memory, logits;
  std::vector<int32_t> ids, top;
  std::vector<int64_t> from;  // next step's rows, as rows of this step
  std::vector<Cand> cands;
  for (int64_t step = 0; step <= opts.max_length; ++step) {
    ids.clear();
    for (const Search& s : ex)
      if (s.active)
        for (int64_t h = 0; h < s.n_live; ++h) {
          const auto& y = s.live[size_t(h)].ids;
          ids.push_back(y.empty() ? tokens.start : y.back());
        }
    if (ids.empty()) break;
    stepper.step(ids, start, logits);  // [N, C]
    from.clear();
    for (Search& s : ex) {
      if (!s.active) continue;
      cands.clear();
      for (int64_t h = 0; h < s.n_live; ++h) {
        const float* row = logits.ptr() + (s.row + h) * C;
        const double lse = row_log_sum_exp(row, C);
        top_k(row, C, K, top);
        for (size_t j = 0; j < top.size(); ++j)
          cands.push_back({s.live[size_t(h)].logp + (double(row[top[j]]) - lse), h, int64_t(j), top[j]});
      }
      std::sort(cands.begin(), cands.end(), [](const Cand& a, const Cand& b) {
        if (a.lp != b.lp) return a.lp > b.lp;
        return a.from != b.from ? a.from < b.from : a.rank < b.rank;
      });
      s.n_next = 0;
      const int64_t first_row = int64_t(from.size());
      for (const Cand& c : cands) {
        if (s.n_next >= opts.beam) break;
        const Hyp& parent = s.live[size_t(c.from)];
        if (c.tok == tokens.end || step == opts.max_length) {
          const double sc = norm(c.lp, parent.ids.size() + 1);
          if (sc > s.best_score) {
            s.best_score = sc;
            s.best.ids = parent.ids;
            s.best.logp = c.lp;
          }
          continue;
        }
        Hyp& h = s.next[size_t(s.n_next++)];
        h.ids.assign(parent.ids.begin(), parent.ids.end());
        h.ids.push_back(c.tok);
        h.logp = c.lp;
        from.push_back(s.row + c.from);
      }
      if (s.n_next == 0) {
        s.active = false;
        continue;
      }
      std::swap(s.live, s.next);
      s.n_live = s.n_next;
      s.row = first_row;
      // Log-probabilities only fall: with a fixed length a live hypothesis can at best keep its
      // score, under length normalisation at best reach logp / longest. One that cannot beat the
      // best finished score is dropped with its row: its candidates (and its descendants') rank
      // below every candidate that still can, so they never take a place from one, and none of
      // them can win (decoding.h).
      auto hopeless = [&](double lp) { return alpha > 0 ? lp / longest < s.best_score : lp < s.best_score; };
      while (s.n_live > 0 && hopeless(s.live[size_t(s.n_live - 1)].logp)) --s.n_live;  // live is sorted by logp
      from.resize(size_t(first_row + s.n_live));
      if (s.n_live == 0) s.active = false;
    }
    if (from.empty()) break;
    gather_rows(state.h, from, gathered.h);
    std::swap(state.h, gathered.h);
    if (!state.c.empty()) {
      gather_rows(state.c, from, gathered.c);
      std::swap(state.c, gathered.c);
    }
    for (Tensor<float>* rows : {&context, &start.feed}) {  // [B, F] per-hypothesis vectors
      if (rows->empty()) continue;
      const int64_t F = rows->dim(1), M = int64_t(from.size());
      gathered_context.resize({M, F});
      for (int64_t m = 0; m < M; ++m)
        std::memcpy(gathered_context.ptr() + m * F, rows->ptr() + from[size_t(m)] * F, size_t(F) * sizeof(float));
      std::swap(*rows, gathered_context);
    }
    if (!start.memory.empty()) {  // attention: each hypothesis keeps its source's memory
      gather_rows(start.memory, from, gathered_memory);
      std::swap(start.memory, gathered_memory);
      if (!start.keys.empty()) {
        gather_rows(start.keys, from, gathered_memory);
        std::swap(start.keys, gathered_memory);
      }
      if (!start.memory_lengths.empty()) {
        std::vector<int64_t> lengths(from.size());
        for (size_t m = 0; m < from.size(); ++m) lengths[m] = start.memory_lengths[size_t(from[m])];
        start.memory_lengths = std::move(lengths);
      }
    }
  }
  std::vector<std::vector<int32_t>> out(static_cast<size_t>(B));
  for (int64_t b = 0; b < B; ++b) {
    const Search& s = ex[size_t(b)];
    out[size_t(b)] = s.best_score > -std::numeric_limits<double>::infinity() ? s.best.ids : s.live[0].ids;
  }
  return out;
}

std::vector<int32_t> sample_decode(ModelStepper<float>& stepper, StepperStart<float> start, const DecodeTokens& tokens,
                                   const SampleDecodeOptions& opts, Rng& rng) {
  opts.sample.validate();
  check_max_length(opts.max_length);
  if (start.batch != 1) throw ShapeError("sample_decode: expected a start for one example, got " + std::to_string(start.batch));
  const int64_t C = stepper.classes();
  std::vector<int32_t> out, ids{tokens.start};
  Tensor<float> logits;  // [1, C]
  SamplerScratch scratch;
  for (int64_t step = 0; step < opts.max_length; ++step) {
    stepper.step(ids, start, logits);
    if (opts.banned >= 0 && opts.banned < C) logits.data[size_t(opts.banned)] = -std::numeric_limits<float>::infinity();
    const int32_t tok = sample_token(std::span<const float>(logits.data), opts.sample, rng, scratch);
    if (tok == tokens.end) break;
    out.push_back(tok);
    ids[0] = tok;
  }
  return out;
}

}  // namespace recur
