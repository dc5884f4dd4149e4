// An encoder-decoder from the composable API: the encoder LSTM's final state (every layer's h
// and c) initialises the decoder LSTM, trained with teacher forcing; greedy decoding then runs
// the decoder one step at a time with its state passed in (StateOverrides), without
// recomputing the encoder. Task: reverse a sequence of digits.
#include <algorithm>
#include <cstdio>
#include <vector>

#include "recur/core/loss.h"
#include "recur/model/model.h"
#include "recur/core/optim.h"

using namespace recur;

namespace {

constexpr int32_t kEos = 0;     // start and end symbol of the decoder
constexpr int64_t kVocab = 8;   // 0 <eos>, 1..7 digits

// Inputs "src" [Ts, B], "tgt" [Tt+1, B] = <eos> y1..yn, and targets y1..yn <eos> (-1 = padding).
ModelInputs<float> make_batch(const std::vector<std::vector<int32_t>>& src, std::vector<int32_t>& targets) {
  const int64_t B = int64_t(src.size());
  int64_t T = 0;
  for (const auto& s : src) T = std::max<int64_t>(T, int64_t(s.size()));
  ModelInputs<float> in;
  ModelInput<float>& x = in["src"];
  ModelInput<float>& y = in["tgt"];
  x.steps = T, x.batch = B, x.ids.assign(size_t(T * B), kEos);
  y.steps = T + 1, y.batch = B, y.ids.assign(size_t((T + 1) * B), kEos);
  targets.assign(size_t((T + 1) * B), -1);
  for (int64_t b = 0; b < B; ++b) {
    const auto& s = src[size_t(b)];
    const size_t n = s.size();
    x.lengths.push_back(int64_t(n));
    y.lengths.push_back(int64_t(n) + 1);
    for (size_t t = 0; t < n; ++t) {
      x.ids[t * size_t(B) + size_t(b)] = s[t];
      y.ids[(t + 1) * size_t(B) + size_t(b)] = s[n - 1 - t];
      targets[t * size_t(B) + size_t(b)] = s[n - 1 - t];
    }
    targets[n * size_t(B) + size_t(b)] = kEos;
  }
  return in;
}

std::vector<int32_t> random_digits(Rng& rng) {
  std::vector<int32_t> s;
  for (uint64_t t = 0, n = 1 + rng.below(5); t < n; ++t) s.push_back(1 + int32_t(rng.below(kVocab - 1)));
  return s;
}

}  // namespace

int main() {
  const RnnConfig lstm{.cell = CellType::lstm, .hidden_size = 64, .num_layers = 1};
  ModelSpec spec;
  spec.tokens("src", kVocab);
  spec.tokens("tgt", kVocab);
  spec.embedding("src_emb", "src", 16);
  spec.rnn("enc", "src_emb", lstm);
  spec.embedding("tgt_emb", "tgt", 16);
  spec.rnn("dec", "tgt_emb", lstm, /*init=*/"enc");  // the encoder-decoder link
  spec.linear("out", "dec", kVocab);
  std::printf("%s\n", model_spec_summary(spec).c_str());

  Rng rng(5);
  ModelParams<float> params = model_init_params<float>(spec, rng);
  ModelGrads<float> grads = model_zero_grads<float>(spec);
  const auto refs = model_param_refs(spec, params, grads);
  Optimizer<float> opt({.type = OptimizerType::adam, .lr = 0.005}, refs);
  ModelCache<float> cache;
  std::vector<int32_t> targets;
  Tensor<float> grad;
  for (int step = 1; step <= 1500; ++step) {
    std::vector<std::vector<int32_t>> src;
    for (int k = 0; k < 32; ++k) src.push_back(random_digits(rng));
    const ModelInputs<float> in = make_batch(src, targets);
    model_forward(spec, params, in, {}, cache);
    int64_t count = 0;
    for (int32_t t : targets) count += t >= 0;
    const LossSum loss = softmax_cross_entropy(model_output(spec, cache, "out"), std::span<const int32_t>(targets), {},
                                               &grad, 1.0 / double(count));
    grads.zero();
    model_backward(spec, params, in, cache, {{"out", &grad}}, grads);
    clip_grad_norm(refs, 5.0);
    opt.step();
    if (step % 500 == 0) std::printf("step %d loss %.4f\n", step, loss.mean());
  }
  // Greedy decoding of held-out sequences, one at a time.
  int exact = 0;
  const int n_test = 200;
  for (int i = 0; i < n_test; ++i) {
    const std::vector<int32_t> s = random_digits(rng);
    ModelInputs<float> in = make_batch({s}, targets);
    in["tgt"] = {.ids = {kEos}, .features = {}, .steps = 1, .batch = 1, .lengths = {}};
    model_forward(spec, params, in, {.training = false, .rng = nullptr, .wanted = {"dec"}}, cache);
    RnnState<float> state = model_rnn_state0(spec, cache, "dec");  // = the encoder's final state
    std::vector<int32_t> out;
    int32_t tok = kEos;
    for (int step = 0; step < 10; ++step) {
      ModelInputs<float> one{{"tgt", {.ids = {tok}, .features = {}, .steps = 1, .batch = 1, .lengths = {}}}};
      model_forward(spec, params, one, {.training = false, .rng = nullptr, .wanted = {"out"}}, cache, {{"dec", &state}});
      const Tensor<float>& logits = model_output(spec, cache, "out");
      tok = int32_t(std::max_element(logits.data.begin(), logits.data.end()) - logits.data.begin());
      state = model_rnn_state_n(spec, cache, "dec");
      if (tok == kEos) break;
      out.push_back(tok);
    }
    exact += out == std::vector<int32_t>(s.rbegin(), s.rend());
  }
  std::printf("held-out exact match: %d of %d\n", exact, n_test);
  return exact >= n_test * 8 / 10 ? 0 : 1;
}
