// recur/model/model.h - composable models: a small graph of named layers (embedding, recurrent
// network, linear head, concatenation, dropout, state bridge), each with its forward and
// backward side by side, and a JSON description that checkpoints keep so a model built in C++
// can be loaded by `recur` again.
//
// A model is a list of layers in evaluation order; each names its inputs, which are model
// inputs or earlier layers. There is no general autograd: every layer kind has a forward and a
// backward function side by side (src/model/model.cpp), model_forward walks the list calling
// the forwards, and model_backward walks it in reverse calling the backwards, summing the
// gradients a value receives from all its consumers. Backward skips the input gradient of a
// layer whose input leads to no trainable parameter (one-hot rows, frozen embeddings).
//
// The language model (lm.h) is such a graph: tokens -> embedding or one-hot -> dropout -> rnn
// -> dropout -> linear decoder; its pieces here are the one-hot layer, the initialisation
// options, the backend choice, carried state (StateOverrides in, model_rnn_state_n out: the
// truncated-BPTT carry), weight tying (LayerSpec::tie) and sparse embedding-row gradients
// (LayerGrads::rows).
//
// Values (glossary in tensor.h) are either sequences [T, B, F] with per-example lengths, or
// per-example vectors [N, F] (N = B, or T*B for per-word features such as a character RNN's
// final states). References:
//   "x"        a model input or the output of layer x (an rnn's output is its sequence)
//   "x.final"  an rnn's final state: the last layer's h_n, directions concatenated in PyTorch's
//              h_n order (forward, then backward) [B, D*R]
// An attention layer (attention.h) reads two sequences, a decoder's outputs [Tq, B, Q] and an
// encoder's [Ts, B, M] (masked by the encoder's lengths), and gives Luong's attentional states
// [Tq, B, A]; its forward cache keeps the weights [Tq, B, Ts] (recur translate --show-attention).
// A pool layer turns a sequence into per-example vectors [B, F] (max or mean over time).
// Concatenation joins rows: sequences [T, B, F] with vectors of T*B rows (per-position
// features), or with vectors of B rows, which are repeated at every step (a condition fed to
// every step's input).
// With input feeding (LayerSpec::feed) the decoder rnn and its attention run one step at a time
// together: the rnn's forward computes the attention layer's output too, and the rnn's backward
// runs both back through time (the attention's output at t - 1 is an input of step t).
// An rnn layer may start from the final state of an earlier rnn (same shape: the
// encoder-decoder link) or from a bridge: tanh(W x + b) of a vector [B, F] reshaped into the
// initial h (and c) of every layer and direction (a condition or a bidirectional encoder).
//
// Parameter names are "<layer>.weight", "<layer>.bias" and "<layer>.<PyTorch rnn name>", so a
// PyTorch module with the same attribute names loads the same state_dict.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "recur/core/optim.h"
#include "recur/core/random.h"
#include "recur/core/rnn.h"
#include "recur/core/tensor.h"
#include "recur/model/attention.h"
#include "recur/model/linear.h"

namespace recur {

enum class InputKind { tokens, features };
enum class LayerKind { embedding, rnn, linear, concat, dropout, bridge, onehot, crf, attention, pool };

// pool: how a sequence becomes one vector per example (ModelSpec::pool).
enum class PoolMode { max, mean };
const char* pool_mode_name(PoolMode mode);  // "max", "mean"

const char* layer_kind_name(LayerKind kind);  // "embedding", "rnn", ...

struct InputSpec {
  std::string name;
  InputKind kind = InputKind::tokens;
  bool per_step = true;  // tokens: ids [T, B] (true) or one id per example [B]
  int64_t size = 0;      // tokens: vocabulary V; features: F
};

struct LayerSpec {
  std::string name;
  LayerKind kind = LayerKind::linear;
  std::vector<std::string> inputs;  // references, see the top of this file
  int64_t size = 0;      // embedding: E (vocabulary from its input); linear: C; others: derived
  bool frozen = false;   // embedding: excluded from training (pre-trained vectors)
  RnnConfig rnn;         // rnn
  std::string init;      // rnn: "" (zeros), an earlier rnn layer or a bridge layer
  // rnn: a later attention layer over this rnn whose output y_{t-1} joins the input at step t,
  // [x_t; y_{t-1}] with y_{-1} = 0 (Luong et al. 2015's input feeding): input_size counts its
  // width A. The rnn and the attention then run step by step together (ModelSpec::attention).
  std::string feed;
  std::string target;    // bridge: the rnn layer whose initial state it makes
  double p = 0.0;        // dropout probability
  // linear: the embedding layer whose matrix [V, E] this head uses as its weight [C, F]
  // (weight tying, Press & Wolf 2017; needs C = V, F = E and a trainable embedding). The head
  // then has only a bias; the shared matrix's gradient sums both uses.
  std::string tie;
  AttentionScore score = AttentionScore::general;  // attention (size = A)
  PoolMode pool = PoolMode::max;  // pool
};

// The description of a model. The builder methods append a layer, infer its input width from
// what it references and return its name, so a model reads like a Keras functional program.
struct ModelSpec {
  std::vector<InputSpec> inputs;
  std::vector<LayerSpec> layers;

  std::string tokens(const std::string& name, int64_t vocab, bool per_step = true);
  std::string features(const std::string& name, int64_t width);
  std::string embedding(const std::string& name, const std::string& input, int64_t dim, bool frozen = false);
  // cfg.input_size is set from the input; the rest of cfg is the caller's.
  std::string rnn(const std::string& name, const std::string& input, RnnConfig cfg, const std::string& init = "");
  std::string linear(const std::string& name, const std::string& input, int64_t out, const std::string& tie = "");
  // Token ids [T, B] as one-hot rows [T, B, V] (char-rnn input; no parameters).
  std::string onehot(const std::string& name, const std::string& input);
  std::string concat(const std::string& name, const std::vector<std::string>& inputs);
  std::string dropout(const std::string& name, const std::string& input, double p);
  // A bridge from `input` (a vector) to the initial state of the rnn `target`, added later
  // with init = this bridge's name.
  std::string bridge(const std::string& name, const std::string& input, const std::string& target);
  // A linear-chain CRF over the emission scores `input` [T, B, C] (model/crf.h): parameters
  // "<name>.transitions" [C, C] and "<name>.start_end" [2, C], initialised to zero. Its forward
  // passes the emissions through unchanged (its value is `input`'s); the loss that uses the
  // parameters (crf_nll) writes their gradients itself, and the emissions' gradient flows on.
  std::string crf(const std::string& name, const std::string& input);
  // Global attention (attention.h) of the sequence `query` (a decoder's outputs) over the
  // sequence `memory` (an encoder's outputs), giving [Tq, B, size]. feed: input feeding, the
  // query rnn reads the attention's previous output beside its input (LayerSpec::feed; its
  // input_size grows by `size`); the query must then be a unidirectional rnn layer and the
  // memory computed before it. Throws Error naming the layer otherwise.
  std::string attention(const std::string& name, const std::string& query, const std::string& memory,
                        AttentionScore score, int64_t size, bool feed = false);

  // A sequence [T, B, F] as one vector per example [B, F]: the maximum or the mean of each
  // feature over the example's steps t < length (Collobert et al. 2011's max over time; Keras's
  // GlobalMaxPooling1D / GlobalAveragePooling1D with a mask). An example of length 0 gives zeros.
  std::string pool(const std::string& name, const std::string& input, PoolMode mode);

  // Checks names, references, kinds and widths; throws Error "model layer '<name>': ...".
  void validate() const;
  const LayerSpec& layer(std::string_view name) const;  // throws Error if absent
  int64_t layer_index(std::string_view name) const;     // -1 if absent
  // Width F of a referenced value (tokens: 0) and whether it is a sequence.
  int64_t width(std::string_view ref) const;
  bool is_sequence(std::string_view ref) const;
  int64_t bridge_size(const LayerSpec& bridge) const;  // L*D*R (+ L*D*H for LSTM)
};

std::string model_spec_to_json(const ModelSpec& spec);
// Throws FormatError "<origin>: model: ..." naming the field.
ModelSpec model_spec_from_json(std::string_view json, std::string_view origin);
std::string model_spec_summary(const ModelSpec& spec);  // "emb(embedding 100) -> rnn(lstm 1x128 bi) -> out(linear 9)"

// Parameters of one layer; which tensors are present depends on the kind.
template <typename T>
struct LayerParams {
  Tensor<T> weight;  // embedding [V, E]; linear [C, F]; bridge [S, F]; crf transitions [C, C];
                     // attention W_c [A, M + Q]
  Tensor<T> bias;    // linear [C]; bridge [S]; crf start_end [2, C]
  RnnParams<T> rnn;
  std::vector<Tensor<T>> score;  // attention: its score's parameters (attention_score_param_shapes)
};
template <typename T>
struct LayerGrads {
  Tensor<T> weight, bias;
  RnnGrads<T> rnn;
  std::vector<Tensor<T>> score;  // attention
  // embedding: the rows of weight that the backward passes since the last zero() touched,
  // ascending and distinct (sparse row gradients: every other row is zero). A tied embedding
  // lists every row, since the head's gradient is dense.
  std::vector<int32_t> rows;
};
template <typename T>
struct ModelParams {
  std::vector<LayerParams<T>> layers;  // one per spec layer
};
template <typename T>
struct ModelGrads {
  std::vector<LayerGrads<T>> layers;
  void zero();
};

// How model_init_params draws the parameters.
//   default    embeddings U(-0.1, 0.1); linear and bridge PyTorch's U(-1/sqrt(F), 1/sqrt(F));
//              recurrent layers PyTorch's default with LSTM forget-gate biases 1
//              (see rnn_set_forget_bias)
//   uniform    every parameter U(-s, s) (Zaremba et al. 2014)
//   word_lm    PyTorch word_language_model's scheme: embeddings and linear weights
//              U(-0.1, 0.1), linear biases 0, recurrent layers PyTorch's default
// uniform and word_lm draw the recurrent layers first, then the others in layer order: the
// order recur's first language model drew them in, so a seed gives the same weights as before.
struct ModelInitOptions {
  enum class Scheme { standard, uniform, word_lm };
  Scheme scheme = Scheme::standard;
  double scale = 0.0;  // uniform: s > 0
};
template <typename T>
ModelParams<T> model_init_params(const ModelSpec& spec, Rng& rng, const ModelInitOptions& init = {});
// Growing a trained model's vocabularies (fine-tuning on data with new words): the new ids come
// after the old ones, whose rows stay as they are.
// model_grow_tokens: the token input `input` from V to V2 >= V ids; each embedding reading it
// gets V2 - V new rows drawn U(-0.1, 0.1) (model_init_params' embedding draw), and a head tied to
// one grows with it (model_grow_head's bias draw). Throws Error for
// an input a one-hot layer reads (its width is an rnn's input size) or that is not a tokens input.
template <typename T>
void model_grow_tokens(ModelSpec& spec, ModelParams<T>& params, const std::string& input, int64_t V2, Rng& rng);
// model_grow_head: the linear layer `head` from C to C2 >= C outputs; new weight rows and biases
// drawn U(-1/sqrt(F), 1/sqrt(F)) (PyTorch nn.Linear's); a tied head (LayerSpec::tie) grows its
// bias only (model_grow_tokens grows it with its embedding).
template <typename T>
void model_grow_head(ModelSpec& spec, ModelParams<T>& params, const std::string& head, int64_t C2, Rng& rng);
// Every parameter present with its shape, all zero (to be filled, e.g. by a loader).
template <typename T>
ModelParams<T> model_zero_params(const ModelSpec& spec);
template <typename T>
ModelGrads<T> model_zero_grads(const ModelSpec& spec);
template <typename T>
void model_check_params(const ModelSpec& spec, const ModelParams<T>& params);  // ShapeError naming the tensor
int64_t model_param_count(const ModelSpec& spec);

// Visits every parameter (name, tensor, trainable) in layer order; works for params and grads.
template <typename P, typename F>
void model_for_each_param(const ModelSpec& spec, P& p, F&& f) {
  for (size_t i = 0; i < spec.layers.size(); ++i) {
    const LayerSpec& l = spec.layers[i];
    auto& lp = p.layers[i];
    switch (l.kind) {
      case LayerKind::embedding: f(l.name + ".weight", lp.weight, !l.frozen); break;
      case LayerKind::linear:
      case LayerKind::bridge:
        if (l.tie.empty()) f(l.name + ".weight", lp.weight, true);
        f(l.name + ".bias", lp.bias, true);
        break;
      case LayerKind::crf:
        f(l.name + ".transitions", lp.weight, true);
        f(l.name + ".start_end", lp.bias, true);
        break;
      case LayerKind::rnn:
        rnn_for_each_param(l.rnn, lp.rnn.dirs, [&](const std::string& n, auto& t) { f(l.name + "." + n, t, true); });
        break;
      case LayerKind::attention: {
        f(l.name + ".weight", lp.weight, true);
        const auto names = attention_score_param_names(l.score);
        for (size_t k = 0; k < names.size(); ++k) f(l.name + "." + names[k], lp.score[k], true);
        break;
      }
      default: break;
    }
  }
}

// The trainable parameters as optimizer references (frozen embeddings left out).
template <typename T>
std::vector<ParamRef<T>> model_param_refs(const ModelSpec& spec, ModelParams<T>& params, ModelGrads<T>& grads);

// Sparse embedding gradients, for a training loop whose gradients only model_backward writes
// between two zeroings (not once they are summed over ranks, which fills every row). A trained
// embedding's table gets a gradient in the rows of its tokens only (LayerGrads::rows), a few
// thousand of a learned vocabulary's 160,000; these two then touch only those rows' stretches,
// with the bits of the dense passes:
//  - model_param_refs_sparse: model_param_refs with each trained embedding's ParamRef::rows
//    pointing at its LayerGrads::rows (grad_norm, clip_grad_norm and Adam read it, optim.h);
//  - model_zero_touched: ModelGrads::zero, but an embedding's table zeroed in its listed rows only.
template <typename T>
std::vector<ParamRef<T>> model_param_refs_sparse(const ModelSpec& spec, ModelParams<T>& params, ModelGrads<T>& grads);
template <typename T>
void model_zero_touched(const ModelSpec& spec, ModelGrads<T>& grads);

// One model input of a batch.
template <typename T>
struct ModelInput {
  std::vector<int32_t> ids;      // tokens: [T, B] per step, [B] per example
  Tensor<T> features;            // features: [T, B, F]
  int64_t steps = 0, batch = 0;  // T (per-step inputs; 0 for per-example), B
  std::vector<int64_t> lengths;  // [B], 1 <= lengths[b] <= T, or empty for all T
};
template <typename T>
using ModelInputs = std::map<std::string, ModelInput<T>>;

template <typename T>
struct ModelValue {
  Tensor<T> data;                // [T, B, F] or [N, F]
  std::vector<int64_t> lengths;  // sequences: [B] or empty (all T)
};

// What forward keeps per layer for backward; reused across calls. A tied head's weight lives
// in its embedding's LayerParams (its own weight is empty).
template <typename T>
struct LayerCache {
  bool done = false;         // computed by the last forward
  ModelValue<T> out;         // the layer's output (bridge: [B, S] after tanh)
  Tensor<T> final;           // rnn: [B, D*R]
  RnnState<T> state0, state_n;
  RnnCache<T> rnn;
  AttentionCache<T> attn;    // attention: weights [Tq, B, Ts] and what backward needs
  // rnn with input feeding: the steps' inputs [1, B, I] ([x_t; y_{t-1}]), outputs h_t [1, B, R]
  // and caches; the attention layer fed keeps its steps' caches (attention weights [1, B, Ts]).
  std::vector<Tensor<T>> step_in, step_out;
  std::vector<RnnCache<T>> step_rnn;
  std::vector<AttentionCache<T>> step_attn;
  Tensor<T> mask;            // dropout mask, empty when not training
  std::vector<int64_t> argmax;  // pool max: the step each output [B, F] element came from
  LinearBf16Cache bf16;      // linear under bf16: x and W as the forward rounded them, for backward
  bool identity = false;     // a dropout passing its input through: out is its input's (no copy)
  bool bias_to_loss = false; // linear: the bias was left to the loss (ModelForwardOptions::bias_to_loss)
  // backward scratch: gradients flowing into this layer's outputs
  Tensor<T> grad_out, grad_final;
  RnnState<T> grad_state_n;
  bool has_grad = false;
};
template <typename T>
struct ModelCache {
  std::vector<LayerCache<T>> layers;
  // Scratch of the losses computed on the graph's output (lm_forward_backward), kept here so a
  // training step allocates nothing.
  ModelInputs<T> inputs;
  std::vector<T> loss_mask;     // [N] or empty
  Tensor<T> scratch_dx, scratch_zeros;  // model_backward's per-layer input gradients, reused
  std::vector<int32_t> targets; // [N] (lm_step: all -1)
  Precision precision = Precision::f32;  // the last forward's (ModelForwardOptions): backward's products follow it
};

struct ModelForwardOptions {
  bool training = false;  // dropout on
  Rng* rng = nullptr;     // dropout masks; required when training with dropout
  // The recurrent layers' implementation (rnn.h); callers that read LayerCache::rnn.dirs ask
  // for RnnBackend::reference, whose forward keeps the per-step record there.
  RnnBackend backend = RnnBackend::automatic;
  // bf16: the recurrent layers' products in bfloat16 where they can (rnn.h ForwardOptions), and
  // the linear layers' (linear.h LinearOptions); the rest (embeddings, attention, losses) float32.
  Precision precision = Precision::f32;
  // The last layer, when it is a linear layer with a bias, leaves the bias out of its output
  // and its backward leaves the bias gradient alone: the caller's loss adds both
  // (softmax_cross_entropy_with_bias, a fused output layer and loss; lm_forward_backward).
  // LayerCache::bias_to_loss says whether it did.
  bool bias_to_loss = false;
  // Layers to compute (with what they depend on); empty = all. Decoding asks for the logits
  // of a decoder step without recomputing the encoder. (Last, so that designated initialisers
  // may leave it out.)
  std::vector<std::string> wanted = {};
};

// Initial states given from outside (a decoding step, or the state carried between the chunks
// of a stream: truncated BPTT), by rnn layer name; they replace the layer's `init`, so what
// feeds that init is not computed, and no gradient flows back into them (a constant of the
// chunk). An empty state means zeros. model_rnn_state_n returns the state to carry.
template <typename T>
using StateOverrides = std::map<std::string, const RnnState<T>*>;

template <typename T>
void model_forward(const ModelSpec& spec, const ModelParams<T>& params, const ModelInputs<T>& inputs,
                   const ModelForwardOptions& opts, ModelCache<T>& cache, const StateOverrides<T>& overrides = {});

// The output of a computed layer, "x" or "x.final" (Error if it was not computed).
template <typename T>
const Tensor<T>& model_output(const ModelSpec& spec, const ModelCache<T>& cache, std::string_view ref);
// The initial and final state of a computed rnn layer.
template <typename T>
const RnnState<T>& model_rnn_state0(const ModelSpec& spec, const ModelCache<T>& cache, std::string_view layer);
template <typename T>
const RnnState<T>& model_rnn_state_n(const ModelSpec& spec, const ModelCache<T>& cache, std::string_view layer);

// Backward of the last forward: grad_outputs maps references ("out", "enc.final") to
// dLoss/dvalue of the same shape. Parameter gradients are accumulated (+=) into grads.
// A gradient written into model_grad_slot(ref) and passed as grad_outputs[ref] is used where
// it lies: a language model's [T, B, V] logit gradient is not copied.
template <typename T>
Tensor<T>& model_grad_slot(const ModelSpec& spec, ModelCache<T>& cache, std::string_view ref);
// layer_done(i), called as the backward walk passes layer i (in reverse), says that the
// gradients of layers i and above are final: data-parallel training starts summing them across
// ranks while the lower layers are still running (train/loop.h).
using LayerDoneFn = std::function<void(size_t layer)>;
template <typename T>
void model_backward(const ModelSpec& spec, const ModelParams<T>& params, const ModelInputs<T>& inputs,
                    ModelCache<T>& cache, const std::map<std::string, const Tensor<T>*>& grad_outputs,
                    ModelGrads<T>& grads, const LayerDoneFn& layer_done = {});

}  // namespace recur
