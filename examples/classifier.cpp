// A many-to-one classifier from the composable API: embedding, a bidirectional GRU, a linear
// head on the final state (forward and backward h_n concatenated, PyTorch's h_n order) and a
// sigmoid binary cross-entropy. Task: does a sequence end with the token it started with?
// The answer needs the first and the last token, which the two directions' final states hold.
#include <cstdio>
#include <vector>

#include "recur/core/loss.h"
#include "recur/model/model.h"
#include "recur/core/optim.h"

using namespace recur;

namespace {

constexpr int64_t kVocab = 5;

// A batch of B sequences of lengths 3..8, half of them ending with their first token.
ModelInputs<float> make_batch(Rng& rng, int64_t B, std::vector<float>& labels) {
  std::vector<std::vector<int32_t>> seqs;
  int64_t T = 0;
  labels.clear();
  for (int64_t b = 0; b < B; ++b) {
    std::vector<int32_t> s;
    for (uint64_t t = 0, n = 3 + rng.below(6); t < n; ++t) s.push_back(int32_t(rng.below(kVocab)));
    const bool same = rng.below(2) == 1;
    if (same) s.back() = s.front();
    else if (s.back() == s.front()) s.back() = int32_t((s.front() + 1) % kVocab);
    labels.push_back(same ? 1.f : 0.f);
    T = std::max<int64_t>(T, int64_t(s.size()));
    seqs.push_back(s);
  }
  ModelInputs<float> in;
  ModelInput<float>& x = in["tokens"];  // [T, B], padded; lengths say where each ends
  x.steps = T;
  x.batch = B;
  x.ids.assign(size_t(T * B), 0);
  for (int64_t b = 0; b < B; ++b) {
    x.lengths.push_back(int64_t(seqs[size_t(b)].size()));
    for (size_t t = 0; t < seqs[size_t(b)].size(); ++t) x.ids[t * size_t(B) + size_t(b)] = seqs[size_t(b)][t];
  }
  return in;
}

}  // namespace

int main() {
  ModelSpec spec;
  spec.tokens("tokens", kVocab);
  spec.embedding("emb", "tokens", 8);
  spec.rnn("rnn", "emb", {.cell = CellType::gru, .hidden_size = 24, .bidirectional = true});
  spec.linear("out", "rnn.final", 1);  // [B, 2*24] -> [B, 1] logit
  std::printf("%s, %lld parameters\n", model_spec_summary(spec).c_str(), (long long)model_param_count(spec));

  Rng rng(3);
  ModelParams<float> params = model_init_params<float>(spec, rng);
  ModelGrads<float> grads = model_zero_grads<float>(spec);
  const auto refs = model_param_refs(spec, params, grads);
  Optimizer<float> opt({.type = OptimizerType::adam, .lr = 0.01}, refs);
  ModelCache<float> cache;
  std::vector<float> labels;
  Tensor<float> grad;
  for (int step = 1; step <= 600; ++step) {
    const ModelInputs<float> in = make_batch(rng, 32, labels);
    model_forward(spec, params, in, {}, cache);
    const LossSum loss =
        sigmoid_binary_cross_entropy(model_output(spec, cache, "out"), std::span<const float>(labels), {}, &grad, 1.0 / 32);
    grads.zero();
    model_backward(spec, params, in, cache, {{"out", &grad}}, grads);
    clip_grad_norm(refs, 5.0);
    opt.step();
    if (step % 150 == 0) std::printf("step %d loss %.4f\n", step, loss.mean());
  }
  const ModelInputs<float> test = make_batch(rng, 1000, labels);
  model_forward(spec, params, test, {}, cache);
  const Tensor<float>& logits = model_output(spec, cache, "out");
  int64_t correct = 0;
  for (size_t b = 0; b < labels.size(); ++b) correct += (logits.data[b] > 0) == (labels[b] > 0.5f);
  std::printf("held-out accuracy: %.1f%%\n", correct / 10.0);
  return correct >= 900 ? 0 : 1;
}
