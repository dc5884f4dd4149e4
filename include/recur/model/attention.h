// recur/model/attention.h - global attention of a decoder over an encoder's outputs (Luong,
// Pham & Manning 2015, "Effective Approaches to Attention-based Neural Machine Translation"),
// forward and backward side by side. The graph's attention layer (model.h) and the stepper
// (stepper.h) both run these.
//
// Shapes (glossary in tensor.h, plus): Tq decoder steps, Ts source steps, Q the query width (the
// decoder's output, R), M the memory width (the encoder's output, D*R), A the attention width.
//   query   q [Tq, B, Q]   the decoder rnn's outputs h_t
//   memory  s [Ts, B, M]   the encoder's outputs; positions at or past lengths[b] get weight 0
//   score   e[t, b, i]     dot       q_t . s_i                       (needs Q = M)
//                          general   q_t . (W_s s_i)                  W_s "score.weight" [Q, M]
//                          additive  v . tanh(W_q q_t + W_k s_i)      (Bahdanau et al. 2015)
//                                    W_q "query.weight" [A, Q], W_k "key.weight" [A, M],
//                                    v "v.weight" [1, A]
//   weights a[t, b, :] = softmax over i < lengths[b] of e[t, b, i]     [Tq, B, Ts]
//   context c_t = sum_i a[t, b, i] s_i                               [Tq, B, M]
//   output  y_t = tanh(W_c [c_t; h_t])     W_c "weight" [A, M + Q], no bias (Luong's h~_t)
// Parameter names follow a PyTorch module holding nn.Linear(bias=False) members of those names
// (tools/gen_attention_golden.py).
#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "recur/core/tensor.h"

namespace recur {

enum class AttentionScore { dot, general, additive };
const char* attention_score_name(AttentionScore s);  // "dot", "general", "additive"
// Throws Error "attention score 'x': expected dot, general or additive".
AttentionScore parse_attention_score(std::string_view name);

// The score's parameters in the order model.h lists them after the output weight: general
// {W_s}, additive {W_q, W_k, v}, dot none; and their shapes.
std::vector<const char*> attention_score_param_names(AttentionScore s);  // "score.weight", ...
std::vector<Shape> attention_score_param_shapes(AttentionScore s, int64_t Q, int64_t M, int64_t A);

template <typename T>
struct AttentionWeights {
  const Tensor<T>* out = nullptr;           // W_c [A, M + Q]
  std::span<const Tensor<T>> score;         // attention_score_param_shapes' tensors
};

// What forward keeps for backward (and for --show-attention: `weights`).
template <typename T>
struct AttentionCache {
  Tensor<T> keys;     // attention_forward's keys: general W_s s [Ts, B, Q]; additive W_k s [Ts, B, A]; dot: empty
  Tensor<T> queries;  // additive: W_q q [Tq, B, A]; else empty
  Tensor<T> hidden;   // additive: tanh(W_q q_t + W_k s_i) [Tq, B, Ts, A]; else empty
  Tensor<T> weights;  // a [Tq, B, Ts]
  Tensor<T> joined;   // [c_t; h_t] [Tq, B, M + Q]
};

// The forward in two parts, so that a decoder stepped one token at a time (stepper.h) projects
// the memory once per batch: attention_keys computes the keys from the memory (general [Ts, B, Q],
// additive [Ts, B, A], dot: empty), attention_attend attends with them. attention_forward is both,
// keeping the keys in cache.keys for backward.
template <typename T>
void attention_keys(AttentionScore score, const AttentionWeights<T>& w, const Tensor<T>& memory, Tensor<T>& keys);
template <typename T>
void attention_attend(AttentionScore score, const AttentionWeights<T>& w, const Tensor<T>& query,
                      const Tensor<T>& memory, const Tensor<T>& keys, std::span<const int64_t> lengths,
                      AttentionCache<T>& cache, Tensor<T>& y);

// y [Tq, B, A] (resized). lengths: [B] with 1 <= lengths[b] <= Ts, or empty for all Ts.
template <typename T>
void attention_forward(AttentionScore score, const AttentionWeights<T>& w, const Tensor<T>& query,
                       const Tensor<T>& memory, std::span<const int64_t> lengths, AttentionCache<T>& cache, Tensor<T>& y);

// Gradients given dy = dL/dy [Tq, B, A]: the weight gradients accumulate (+=) into grad_out
// [A, M + Q] and grad_score (same order and shapes as w.score); grad_query and grad_memory are
// resized and overwritten (nullptr to skip either).
template <typename T>
void attention_backward(AttentionScore score, const AttentionWeights<T>& w, const Tensor<T>& query,
                        const Tensor<T>& memory, std::span<const int64_t> lengths, const AttentionCache<T>& cache,
                        const Tensor<T>& y, const Tensor<T>& dy, Tensor<T>& grad_out, std::span<Tensor<T>> grad_score,
                        Tensor<T>* grad_query, Tensor<T>* grad_memory);

// The backward in the forward's two parts, for a decoder that attends one step at a time
// (input feeding, model.h): attention_attend_backward is attention_attend's, given dy [Tq, B, A]:
// grad_out and the query side's score gradients (additive W_q, v) accumulate (+=), as do
// grad_keys (keys' shape; untouched for dot) and grad_memory [Ts, B, M] (the context's and the
// dot score's share), which must have their shapes; grad_query [Tq, B, Q] is resized and
// overwritten. attention_keys_backward then takes the keys' gradient, summed over every step,
// through the key projection once: the key weight's gradient (+=) and grad_memory (+=, nullptr
// to skip). attention_backward is the two in a row.
template <typename T>
void attention_attend_backward(AttentionScore score, const AttentionWeights<T>& w, const Tensor<T>& query,
                               const Tensor<T>& memory, const Tensor<T>& keys, std::span<const int64_t> lengths,
                               const AttentionCache<T>& cache, const Tensor<T>& y, const Tensor<T>& dy,
                               Tensor<T>& grad_out, std::span<Tensor<T>> grad_score, Tensor<T>& grad_query,
                               Tensor<T>& grad_keys, Tensor<T>& grad_memory);
template <typename T>
void attention_keys_backward(AttentionScore score, const AttentionWeights<T>& w, const Tensor<T>& memory,
                             const Tensor<T>& grad_keys, std::span<Tensor<T>> grad_score, Tensor<T>* grad_memory);

}  // namespace recur
