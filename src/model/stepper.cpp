// The graph's inference stepper: see stepper.h.
#include "recur/model/stepper.h"

#include <algorithm>
#include <cstring>

#include "quote.h"
#include "recur/core/error.h"
#include "step_kernels.h"

namespace recur {

namespace {

// Dropout is the identity at inference: the value a reference stands for.
std::string through_dropout(const ModelSpec& spec, std::string ref) {
  for (;;) {
    const int64_t i = spec.layer_index(ref);
    if (i < 0 || spec.layers[size_t(i)].kind != LayerKind::dropout) return ref;
    ref = spec.layers[size_t(i)].inputs.at(0);
  }
}

[[noreturn]] void path_error(const std::string& layer, const std::string& what) {
  throw Error("stepper: layer " + quote_name(layer) + " " + what);
}

}  // namespace

template <typename T>
ModelStepper<T>::ModelStepper(const ModelSpec& spec, const ModelParams<T>& params, const StepperOptions& opts)
    : spec_(spec), params_(&params), opts_(opts) {
  model_check_params(spec, params);
  const InputSpec* tok = nullptr;
  for (const auto& in : spec.inputs)
    if (in.name == opts.tokens) tok = &in;
  if (!tok || tok->kind != InputKind::tokens || !tok->per_step)
    throw Error("stepper: input " + quote_name(opts.tokens) + ": expected a per-step token input of the model");
  V_ = tok->size;

  rnn_index_ = spec.layer_index(opts.rnn);
  if (rnn_index_ < 0 || spec.layers[size_t(rnn_index_)].kind != LayerKind::rnn)
    throw Error("stepper: layer " + quote_name(opts.rnn) + ": expected a recurrent layer of the model");
  const LayerSpec& rl = spec.layers[size_t(rnn_index_)];
  if (rl.rnn.bidirectional) path_error(rl.name, "is bidirectional; a stepped layer reads only the past");

  // The rnn's input: the tokens, their embedding, or a concatenation of the embedding with
  // per-example vectors.
  auto token_path = [&](const std::string& ref, const Tensor<T>** emb) {
    if (ref == opts.tokens) return true;
    const int64_t i = spec.layer_index(ref);
    if (i < 0 || spec.layers[size_t(i)].inputs.at(0) != opts.tokens) return false;
    if (spec.layers[size_t(i)].kind == LayerKind::onehot) return true;  // *emb stays null
    if (spec.layers[size_t(i)].kind == LayerKind::embedding) {
      *emb = &params.layers[size_t(i)].weight;
      return true;
    }
    return false;
  };
  const std::string in = through_dropout(spec, rl.inputs.at(0));
  detail::StepInput kind = detail::StepInput::embedding;
  if (token_path(in, &embedding_)) {
    kind = embedding_ ? detail::StepInput::embedding : detail::StepInput::one_hot;
    if (!rl.feed.empty()) {  // input feeding: the row is [token; fed attention output], written by step()
      Segment t;
      t.token = true;
      t.width = embedding_ ? embedding_->dim(1) : V_;
      segments_.push_back(t);
      kind = detail::StepInput::rows;
    }
  } else {
    const int64_t ci = spec.layer_index(in);
    if (ci < 0 || spec.layers[size_t(ci)].kind != LayerKind::concat)
      path_error(rl.name, "reads " + quote_name(in) + "; expected the input " + quote_name(opts.tokens) +
                              " through an embedding, possibly concatenated with per-example vectors");
    kind = detail::StepInput::rows;
    int64_t tokens_seen = 0;
    for (const std::string& part_ref : spec.layers[size_t(ci)].inputs) {
      const std::string part = through_dropout(spec, part_ref);
      Segment s;
      const Tensor<T>* emb = nullptr;
      if (token_path(part, &emb) && emb) {
        s.token = true;
        s.width = emb->dim(1);
        embedding_ = emb;
        ++tokens_seen;
      } else if (!spec.is_sequence(part)) {
        s.width = spec.width(part);
        s.ctx_offset = ctx_width_;
        ctx_width_ += s.width;
        context_refs_.push_back(part);
      } else {
        path_error(spec.layers[size_t(ci)].name, "joins the sequence " + quote_name(part) +
                                                     "; a stepped input joins one token embedding with per-example vectors");
      }
      segments_.push_back(s);
    }
    if (tokens_seen != 1)
      path_error(spec.layers[size_t(ci)].name, "joins " + std::to_string(tokens_seen) + " embeddings of " +
                                                   quote_name(opts.tokens) + "; expected exactly one");
  }
  if (!rl.feed.empty()) {
    Segment s;
    s.feed = true;
    s.width = spec.layer(rl.feed).size;
    segments_.push_back(s);
  }

  head_index_ = spec.layer_index(opts.head);
  if (head_index_ < 0 || spec.layers[size_t(head_index_)].kind != LayerKind::linear)
    throw Error("stepper: layer " + quote_name(opts.head) + ": expected a linear layer");
  // The head reads the rnn, or an attention layer whose query is the rnn.
  const std::string head_in = through_dropout(spec, spec.layers[size_t(head_index_)].inputs.at(0));
  const int64_t ai = spec.layer_index(head_in);
  if (ai >= 0 && spec.layers[size_t(ai)].kind == LayerKind::attention &&
      through_dropout(spec, spec.layers[size_t(ai)].inputs.at(0)) == opts.rnn) {
    attn_index_ = ai;
    memory_ref_ = through_dropout(spec, spec.layers[size_t(ai)].inputs.at(1));
    if (!rl.feed.empty() && rl.feed != spec.layers[size_t(ai)].name)
      path_error(rl.name, "is fed by " + quote_name(rl.feed) + " but the head reads " + quote_name(head_in));
  } else if (head_in != opts.rnn) {
    throw Error("stepper: layer " + quote_name(opts.head) + ": expected a linear layer reading the output of " +
                quote_name(opts.rnn) + " or of an attention layer over it");
  }
  if (!rl.feed.empty() && attn_index_ < 0)
    path_error(rl.name, "is fed by " + quote_name(rl.feed) + ", which the head " + quote_name(opts.head) + " does not read");
  C_ = spec.layers[size_t(head_index_)].size;
  rnn_ = std::make_unique<detail::RnnStackStep<T>>(rl.rnn, params.layers[size_t(rnn_index_)].rnn, kind, embedding_, V_,
                                                   opts.precision);
  // A tied head (LayerSpec::tie) has only its bias; its weight [C, F] is the embedding's [V, E].
  const std::string& tie = spec.layers[size_t(head_index_)].tie;
  const Tensor<T>& hw = tie.empty() ? params.layers[size_t(head_index_)].weight : params.layers[size_t(spec.layer_index(tie))].weight;
  head_w_ = std::make_unique<detail::StepMatrix<T>>(hw.ptr(), hw.dim(0), hw.dim(1), opts.precision);
}

template <typename T>
ModelStepper<T>::~ModelStepper() = default;

template <typename T>
const RnnConfig& ModelStepper<T>::rnn_config() const {
  return spec_.layers[size_t(rnn_index_)].rnn;
}

template <typename T>
bool ModelStepper<T>::has_input_table() const {
  return rnn_->has_input_table();
}

template <typename T>
StepperStart<T> ModelStepper<T>::start(ModelInputs<T> inputs, int64_t B, ModelCache<T>& cache) const {
  if (B < 1) throw ShapeError("stepper start: expected a batch of at least one example");
  // The token input is a placeholder: the initial state and the context do not depend on it.
  ModelInput<T>& t = inputs[opts_.tokens];
  t.steps = 1;
  t.batch = B;
  t.ids.assign(size_t(B), 0);
  t.lengths.clear();
  std::vector<std::string> wanted{opts_.rnn};
  if (attn_index_ >= 0 && spec_.layer_index(memory_ref_) >= 0) wanted.push_back(memory_ref_);
  model_forward(spec_, *params_, inputs, {.training = false, .rng = nullptr, .wanted = wanted}, cache);
  StepperStart<T> s;
  s.batch = B;
  s.state = model_rnn_state0(spec_, cache, opts_.rnn);
  if (s.state.h.empty()) s.state = rnn_zero_state<T>(rnn_config(), B);
  if (ctx_width_ > 0) {
    s.context = Tensor<T>({B, ctx_width_});
    int64_t off = 0;
    for (const std::string& ref : context_refs_) {
      const Tensor<T>& v = model_output(spec_, cache, ref);  // [B, F]
      const int64_t F = v.shape.back();
      if (v.numel() != B * F)
        throw ShapeError("stepper start: " + quote_name(ref) + " has shape " + shape_str(v.shape) + ", expected [" +
                         std::to_string(B) + ", " + std::to_string(F) + "] (one vector per example)");
      for (int64_t b = 0; b < B; ++b) std::memcpy(s.context.ptr() + b * ctx_width_ + off, v.ptr() + b * F, size_t(F) * sizeof(T));
      off += F;
    }
  }
  if (attn_index_ >= 0) {
    const int64_t mi = spec_.layer_index(memory_ref_);  // a layer, or a features input
    s.memory = mi >= 0 ? model_output(spec_, cache, memory_ref_) : inputs.at(memory_ref_).features;  // [Ts, B, M]
    if (s.memory.rank() != 3 || s.memory.dim(1) != B)
      throw ShapeError("stepper start: attention memory " + quote_name(memory_ref_) + " has shape " +
                       shape_str(s.memory.shape) + ", expected [Ts, " + std::to_string(B) + ", M]");
    s.memory_lengths = mi >= 0 ? cache.layers[size_t(mi)].out.lengths : inputs.at(memory_ref_).lengths;
    const LayerSpec& al = spec_.layers[size_t(attn_index_)];
    const LayerParams<T>& ap = params_->layers[size_t(attn_index_)];
    attention_keys(al.score, {.out = &ap.weight, .score = std::span<const Tensor<T>>(ap.score)}, s.memory, s.keys);
    if (!spec_.layers[size_t(rnn_index_)].feed.empty()) s.feed = Tensor<T>({B, al.size});  // y_{-1} = 0
  }
  return s;
}

template <typename T>
void ModelStepper<T>::step(std::span<const int32_t> ids, RnnState<T>& state, const Tensor<T>& context,
                           Tensor<T>& logits) {
  if (attn_index_ >= 0)
    throw Error("stepper: the model attends over " + quote_name(memory_ref_) + "; step with the StepperStart that holds it");
  step_impl(ids, state, context, nullptr, logits);
}

template <typename T>
void ModelStepper<T>::step(std::span<const int32_t> ids, StepperStart<T>& s, Tensor<T>& logits) {
  step_impl(ids, s.state, s.context, &s, logits);
}

template <typename T>
void ModelStepper<T>::step_impl(std::span<const int32_t> ids, RnnState<T>& state, const Tensor<T>& context,
                                StepperStart<T>* start, Tensor<T>& logits) {
  const int64_t B = int64_t(ids.size());
  if (B < 1) throw ShapeError("stepper step: expected at least one id");
  for (int64_t b = 0; b < B; ++b)
    if (ids[size_t(b)] < 0 || ids[size_t(b)] >= V_)
      throw Error("stepper input " + quote_name(opts_.tokens) + ": token id " + std::to_string(ids[size_t(b)]) +
                  " at position " + std::to_string(b) + " is outside the vocabulary [0, " + std::to_string(V_) + ")");
  const RnnConfig& r = rnn_config();
  // The state comes from start(): an empty one would silently start from zeros.
  check_shape("stepper state h", state.h.shape, {r.num_layers, B, r.state_size()});
  if (!segments_.empty()) {  // input rows [B, I]: token row, context columns, fed attention output
    if (ctx_width_ > 0) check_shape("stepper context", context.shape, {B, ctx_width_});
    if (segments_.back().feed) check_shape("stepper fed attention output", start->feed.shape, {B, segments_.back().width});
    const int64_t I = r.input_size;
    T* x = rnn_->input(B);
    for (int64_t b = 0; b < B; ++b) {
      int64_t off = 0;
      for (const Segment& s : segments_) {
        T* dst = x + b * I + off;
        off += s.width;
        if (s.token && !embedding_) {  // one-hot
          std::fill_n(dst, s.width, T(0));
          dst[ids[size_t(b)]] = T(1);
          continue;
        }
        const T* src = s.token  ? embedding_->ptr() + int64_t(ids[size_t(b)]) * s.width
                       : s.feed ? start->feed.ptr() + b * s.width
                                : context.ptr() + b * ctx_width_ + s.ctx_offset;
        std::memcpy(dst, src, size_t(s.width) * sizeof(T));
      }
    }
  }
  rnn_->step(ids, B, state);

  // Head: logits [B, C] = y W^T + b, seeded with the bias as linear_forward does.
  const LayerParams<T>& hp = params_->layers[size_t(head_index_)];
  int64_t F = r.state_size();  // the head's input width: R, or A after attention
  const T* head_in = rnn_->output();
  if (attn_index_ >= 0) {
    // The attention layer's own forward on one step: [1, B, R] over the start's memory, with
    // the keys projected once in start().
    const LayerSpec& al = spec_.layers[size_t(attn_index_)];
    const LayerParams<T>& ap = params_->layers[size_t(attn_index_)];
    query_.resize({1, B, F});
    std::memcpy(query_.ptr(), head_in, size_t(B * F) * sizeof(T));
    attention_attend(al.score, {.out = &ap.weight, .score = std::span<const Tensor<T>>(ap.score)}, query_, start->memory,
                     start->keys, std::span<const int64_t>(start->memory_lengths), attn_cache_, attended_);
    head_in = attended_.ptr();
    F = al.size;
    if (!start->feed.empty()) std::memcpy(start->feed.ptr(), attended_.ptr(), size_t(B * F) * sizeof(T));  // y_t for step t + 1
  }
  logits.resize({B, C_});
  for (int64_t b = 0; b < B; ++b) std::memcpy(logits.ptr() + b * C_, hp.bias.ptr(), size_t(C_) * sizeof(T));
  head_w_->product(B, 0, C_, head_in, T(1), logits.ptr(), C_);
}

template class ModelStepper<float>;
template class ModelStepper<double>;

}  // namespace recur
