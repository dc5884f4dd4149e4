#include "recur/tasks/lm_text.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "lm_batch.h"
#include "recur/model/lm.h"
#include "recur/model/stepper.h"
#include "recur/data/prepared.h"

namespace recur {

namespace {

// The token a line starts after and ends with (see the framing note in lm_text.h).
int32_t line_break_id(const LmModel& m) {
  if (m.spec.level == TokenLevel::chars && m.spec.mode == TextMode::stream && m.vocab.contains("\n"))
    return m.vocab.id("\n");
  return Vocab::eos_id;
}

// One recurrent step for a single sequence: feeds `id`, leaves the next-token logits [1, V].
struct Stepper {
  explicit Stepper(const LmModel& m) : lm(m.graph(), m.params, lm_stepper_options(m.precision)) {
    ModelCache<float> cache;
    start = lm.start({}, 1, cache);  // zero state
  }
  ModelStepper<float> lm;
  StepperStart<float> start;  // state h [L, 1, R] (and c), carried from token to token
  Tensor<float> logits;       // [1, V]
  void feed(int32_t id) { lm.step(std::span<const int32_t>(&id, 1), start.state, start.context, logits); }
};

}  // namespace

PrimeInfo generate_text(const LmModel& model, const GenerateOptions& opts, Rng& rng,
                        const std::function<void(std::string_view)>& emit) {
  opts.sample.validate();
  if (opts.length < 0) throw Error("--length: got " + std::to_string(opts.length) + ", expected >= 0");
  const Vocab& vocab = model.vocab;
  const bool words = model.spec.level == TokenLevel::words;
  const bool stop_at_eos = words || model.spec.mode == TextMode::lines;

  PrimeInfo info;
  std::vector<int32_t> prime_ids;
  std::set<std::string> unknown;
  for_each_token(
      model.spec.level, opts.prime,
      [&](std::string_view tok) {
        const int32_t id = vocab.id(tok);
        prime_ids.push_back(id);
        if (id == Vocab::unk_id && tok != Vocab::unk_token) unknown.insert(std::string(tok));
      },
      "--prime");
  info.tokens = int64_t(prime_ids.size());
  info.unknown.assign(unknown.begin(), unknown.end());

  Stepper s(model);
  s.feed(line_break_id(model));
  for (int32_t id : prime_ids) s.feed(id);
  if (!opts.prime.empty()) emit(opts.prime);
  // A word follows the prime after a space unless the prime already ends in whitespace.
  bool need_space = words && !opts.prime.empty() && !is_token_space(opts.prime.back());

  SamplerScratch scratch;
  for (int64_t n = 0; n < opts.length; ++n) {
    const int32_t id = sample_token(std::span<const float>(s.logits.data), opts.sample, rng, scratch);
    if (id == Vocab::eos_id && stop_at_eos) break;
    if (id == Vocab::eos_id) {
      emit("\n");
      need_space = false;
    } else {
      if (need_space) emit(" ");
      emit(vocab.token(id));
      need_space = words;
    }
    if (n + 1 < opts.length) s.feed(id);
  }
  return info;
}

double SentenceScore::log10prob() const { return logprob / std::log(10.0); }
double SentenceScore::perplexity() const { return tokens > 0 ? std::exp(-logprob / double(tokens)) : 1.0; }

SentenceScore score_sentence(const LmModel& model, std::string_view sentence, bool per_token,
                             std::string_view origin) {
  if (!sentence.empty() && sentence.back() == '\r') sentence.remove_suffix(1);
  const Vocab& vocab = model.vocab;
  const int32_t brk = line_break_id(model);
  SentenceScore out;
  std::vector<int32_t> body;  // the sentence's token ids
  std::vector<std::string> toks;
  std::vector<char> oov;
  for_each_token(
      model.spec.level, sentence,
      [&](std::string_view tok) {
        body.push_back(vocab.id(tok));
        const bool is_oov = !vocab.contains(tok);
        out.oov += is_oov;
        if (per_token) {
          toks.emplace_back(tok);
          oov.push_back(is_oov);
        }
      },
      origin);
  if (per_token) {
    toks.push_back(brk == Vocab::eos_id ? std::string(Vocab::eos_token) : std::string("\\n"));
    oov.push_back(0);
  }
  // input = [brk, t1 .. tn], target = [t1 .. tn, brk]: [T] each with B = 1.
  std::vector<int32_t> input{brk}, target = body;
  input.insert(input.end(), body.begin(), body.end());
  target.push_back(brk);

  const int64_t T = int64_t(target.size()), V = model.spec.lm.vocab_size;
  LmBatch batch;
  batch.input = input;
  batch.target = target;
  batch.steps = T;
  batch.batch = 1;
  RnnState<float> state;
  ModelCache<float> cache;
  const ModelSpec graph = model.graph();
  lm_forward_backward<float>(graph, model.params, batch, state, {}, cache, nullptr, 0.0);
  const Tensor<float>& logits = model_output(graph, cache, graph.layers.back().name);
  // Per-row log-softmax in double: logits [T, 1, V].
  for (int64_t t = 0; t < T; ++t) {
    const float* row = logits.ptr() + t * V;
    const float mx = *std::max_element(row, row + V);
    double sum = 0;
    for (int64_t v = 0; v < V; ++v) sum += std::exp(double(row[v]) - double(mx));
    const double lp = double(row[target[size_t(t)]]) - double(mx) - std::log(sum);
    out.logprob += lp;
    if (per_token) out.per_token.push_back({toks[size_t(t)], lp, oov[size_t(t)] != 0});
  }
  out.tokens = T;
  return out;
}

double EvalResult::perplexity() const { return std::exp(mean()); }
double EvalResult::bits_per_token() const { return mean() / std::log(2.0); }

std::string count_explanation(const EvalResult& r) {
  const auto n = [](int64_t v) { return std::to_string(v); };
  const int64_t eos = r.lines_mode ? r.lines : r.ids - r.oov.tokens;
  if (r.lines_mode)
    return n(r.lines) + " lines; each line's tokens and the <eos> ending it are predicted: " + n(r.ids) + " + " +
           n(eos) + " <eos> = " + n(r.loss.count) + " scored";
  std::string s = eos > 0 ? n(r.oov.tokens) + " tokens + " + n(eos) + " <eos> (one per line) = " + n(r.ids) + " read"
                          : n(r.ids) + " tokens read";
  s += " as " + n(r.batch) + " streams of " + n(r.stream_len);
  const int64_t left = r.ids - r.batch * r.stream_len;
  if (left > 0) s += " (the last " + n(left) + " left out)";
  s += "; the first token of each stream has no prediction: " + n(r.batch) + " x " + n(r.stream_len - 1) + " = " +
       n(r.loss.count) + " scored";
  return s;
}

namespace {

void check_eval_options(const EvalOptions& opts) {
  if (opts.batch < 1) throw Error("eval batch: got " + std::to_string(opts.batch) + ", expected >= 1");
  if (opts.seq_len < 1) throw Error("eval seq_len: got " + std::to_string(opts.seq_len) + ", expected >= 1");
}

// Stream mode: B parallel streams of the ids, the state carried from chunk to chunk. Each
// stream needs 2 tokens (an input and its target), so tiny texts use fewer streams.
template <class Ids>
void eval_stream(const LmModel& model, Ids ids, int64_t n, const EvalOptions& opts, const std::string& o,
                 EvalResult& r) {
  if (n < 2) throw Error(o + ": " + std::to_string(n) + " token(s); expected at least 2 to evaluate");
  r.batch = std::clamp<int64_t>(opts.batch, 1, n / 2);
  r.ids = n;
  r.stream_len = r.ids / r.batch;
  StreamBatcher batcher(std::move(ids), {.batch_size = r.batch, .seq_len = opts.seq_len, .drop_last = false});
  const ModelSpec cfg = model.graph();
  ModelCache<float> cache;
  TextBatch tb;
  RnnState<float> state;
  while (batcher.next(tb))
    r.loss += lm_forward_backward<float>(cfg, model.params, lm_batch_of(tb, TextMode::stream), state, {}, cache, nullptr, 0.0);
}

// Lines mode: every example starts from zeros, in file order.
template <class Examples>
void eval_lines(const LmModel& model, Examples ex, int64_t lines, int64_t ids, const EvalOptions& opts,
                const std::string& o, EvalResult& r) {
  if (lines < 1) throw Error(o + ": no line with a token; expected at least one example");
  r.batch = opts.batch;
  r.lines_mode = true;
  r.lines = lines;
  r.ids = ids;
  LinesBatcher batcher(std::move(ex), {.batch_size = opts.batch, .shuffle = false});
  const ModelSpec cfg = model.graph();
  ModelCache<float> cache;
  TextBatch tb;
  while (batcher.next(tb)) {
    RnnState<float> state;
    r.loss += lm_forward_backward<float>(cfg, model.params, lm_batch_of(tb, TextMode::lines), state, {}, cache, nullptr, 0.0);
  }
}

}  // namespace

EvalResult evaluate_text(const LmModel& model, std::string_view text, const EvalOptions& opts,
                         std::string_view origin) {
  check_eval_options(opts);
  const std::string o(origin);
  EvalResult r;
  if (model.spec.mode == TextMode::stream) {
    std::vector<int32_t> ids = encode_stream(model.vocab, text, &r.oov, origin);
    const int64_t n = int64_t(ids.size());
    eval_stream(model, std::move(ids), n, opts, o, r);
  } else {
    LineExamples ex = encode_lines(model.vocab, text, &r.oov, origin);
    const int64_t lines = int64_t(ex.size()), ids = int64_t(ex.ids.size());
    eval_lines(model, std::move(ex), lines, ids, opts, o, r);
  }
  return r;
}

EvalResult evaluate_prepared(const LmModel& model, const PreparedCorpus& corpus, const EvalOptions& opts) {
  check_eval_options(opts);
  const PreparedManifest& m = corpus.manifest();
  const std::string& o = corpus.dir();
  if (m.level != model.spec.level || m.mode != model.spec.mode)
    throw Error(o + ": prepared as " + token_level_name(m.level) + "/" + text_mode_name(m.mode) + ", but the model reads " +
                token_level_name(model.spec.level) + "/" + text_mode_name(model.spec.mode) +
                "; prepare it with the model's --level and --mode");
  if (!(corpus.vocab() == model.vocab))
    throw Error(o + "/vocab.json: " + std::to_string(corpus.vocab().size()) + " tokens (hash " +
                vocab_hash_hex(corpus.vocab()) + ") differ from the model's vocabulary (" +
                std::to_string(model.vocab.size()) + " tokens, hash " + vocab_hash_hex(model.vocab) +
                "); prepare it with --vocab of the training corpus");
  EvalResult r;
  r.oov = m.oov;
  if (m.mode == TextMode::stream) eval_stream(model, corpus.tokens(), m.tokens, opts, o, r);
  else eval_lines(model, corpus.lines(), m.examples, m.tokens, opts, o, r);
  return r;
}

}  // namespace recur
