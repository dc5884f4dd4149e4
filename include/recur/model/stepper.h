// recur/model/stepper.h - a model graph (model.h) stepped one token at a time for inference:
// LM-style sampling, conditioned generation and seq2seq greedy and beam decoding (decoding.h).
//
// The stepped path is
//   token input [B] -> embedding or one-hot [-> concat with per-example vectors [B, F], such
//   as a condition fed to every step] [-> dropout, off at inference] -> one rnn layer (any cell
//   variant, stacked, projection, peephole; unidirectional) [-> attention over an encoder's
//   outputs (attention.h), whose output may also join the next step's rnn input (input
//   feeding)] -> linear head -> logits [B, C].
// Everything else in the graph (an encoder, a bridge, the condition's embedding) runs once per
// batch through model_forward in start(), which returns the rnn's initial state and the
// concatenated vectors. step() then runs only the products and the cell kernels of
// src/model/step_kernels.h, in T's precision and without allocating once its buffers have grown
// to the batch. It is the one inference path: LM and music sampling (lm_stepper_options(), lm.h),
// conditioned generation and seq2seq greedy and beam decoding (decoding.h) all step through it.
//
// With StepperOptions::precision bf16 or int8 the products use compressed copies of the weights
// (quantize.h) and the logits are those of the compressed model, not the training path's.
//
// At batch > 1 a step does the same products in the same order as model_forward, so logits are
// the training path's bits; at batch 1 products are matrix-vector products (split across threads
// for large matrices, with the same result on any thread count) and agree up to float rounding.
// A small vocabulary's embedding goes through a per-token table (layer 0's input side per token,
// W_ih e_v + b), also equal up to rounding. tests/test_stepper.cpp checks it against model_forward for every cell variant.
//
// The stepper keeps a copy of the spec and pointers to the parameters: build a new one after
// the parameters change.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "recur/core/quantize.h"
#include "recur/model/model.h"

namespace recur {

namespace detail {
template <typename T>
class RnnStackStep;
template <typename T>
struct StepMatrix;
}  // namespace detail

// The names of the stepped path's ends (tasks.h's seq2seq and generate models use these).
struct StepperOptions {
  std::string tokens = "tgt";  // the per-step token input read at each step
  std::string rnn = "dec";     // the recurrent layer stepped
  std::string head = "out";    // the linear layer reading the rnn's output sequence
  // How the rnn's and the head's weight matrices are stored and multiplied (quantize.h): f32 is
  // the training path's arithmetic; bf16 and int8 compress copies of them at construction for
  // faster generation (float32 models only). Embeddings, biases, peepholes and the attention
  // layer stay float32.
  Precision precision = Precision::f32;
};

// What a batch starts from.
template <typename T>
struct StepperStart {
  RnnState<T> state;  // the rnn's initial state: h [L, B, R] (and c [L, B, H] for LSTM)
  Tensor<T> context;  // [B, F] the per-example vectors the rnn's input concatenates, empty if none
  int64_t batch = 0;  // B
  // With attention: the encoder's outputs [Ts, B, M], their projection for the score
  // [Ts, B, K] (empty for dot) and the source lengths [B]. Decoding reorders them with the
  // state (beam search gathers rows of all three).
  Tensor<T> memory, keys;
  std::vector<int64_t> memory_lengths;
  // Input feeding (LayerSpec::feed): the attention's output of the last step [B, A], which the
  // next step's rnn input ends with; zeros at the start, gathered with the state.
  Tensor<T> feed;
};

template <typename T>
class ModelStepper {
 public:
  // Finds the stepped path in the graph; Error "stepper: ..." naming the layer when the graph is
  // not of the shape above, ShapeError for parameters that do not match the spec.
  ModelStepper(const ModelSpec& spec, const ModelParams<T>& params, const StepperOptions& opts = {});
  ~ModelStepper();
  ModelStepper(const ModelStepper&) = delete;
  ModelStepper& operator=(const ModelStepper&) = delete;

  // The initial state and context for a batch of B examples: `inputs` holds the other inputs the
  // rnn's init and context need (an encoder's source, a condition); the token input is set here
  // to one placeholder step. Runs model_forward once, in inference mode, with `cache`.
  StepperStart<T> start(ModelInputs<T> inputs, int64_t B, ModelCache<T>& cache) const;

  // ids [B] -> logits [B, C]; state (h [L, B, R], c [L, B, H]) advanced in place; context [B, F]
  // when context_width() > 0 (else ignored). Throws Error for an id outside [0, V), ShapeError
  // for a state or context of the wrong shape.
  // (Error for a graph with attention, which needs the start's memory: use the overload below.)
  void step(std::span<const int32_t> ids, RnnState<T>& state, const Tensor<T>& context, Tensor<T>& logits);
  // The same on a start (state, context and attention memory); with attention, also keeps this
  // step's weights [B, Ts] (attention_weights()).
  void step(std::span<const int32_t> ids, StepperStart<T>& s, Tensor<T>& logits);
  bool has_attention() const { return attn_index_ >= 0; }
  const Tensor<T>& attention_weights() const { return attn_cache_.weights; }  // [1, B, Ts] of the last step

  int64_t vocab() const { return V_; }             // V of the token input
  int64_t classes() const { return C_; }           // C, the width of the logits
  int64_t context_width() const { return ctx_width_; }  // F, 0 without concatenated vectors
  const RnnConfig& rnn_config() const;
  bool has_input_table() const;

 private:
  struct Segment {   // one part of the rnn's input row, in concatenation order
    bool token = false;  // the token's embedding row (one-hot without an embedding)
    bool feed = false;   // the fed attention output (StepperStart::feed); else context columns [ctx_offset, + width)
    int64_t width = 0, ctx_offset = 0;
  };
  ModelSpec spec_;
  const ModelParams<T>* params_;
  StepperOptions opts_;
  void step_impl(std::span<const int32_t> ids, RnnState<T>& state, const Tensor<T>& context, StepperStart<T>* s,
                 Tensor<T>& logits);
  int64_t V_ = 0, C_ = 0, ctx_width_ = 0, rnn_index_ = -1, head_index_ = -1;
  int64_t attn_index_ = -1;         // the attention layer between the rnn and the head, or -1
  std::string memory_ref_;          // what it attends over (an encoder's output)
  AttentionCache<T> attn_cache_;    // a step's attention scratch
  Tensor<T> query_, attended_;      // [1, B, R], [1, B, A]
  const Tensor<T>* embedding_ = nullptr;  // [V, E] or null (one-hot)
  std::vector<Segment> segments_;         // empty unless the input is a concatenation
  std::vector<std::string> context_refs_; // the vectors joined into the context, in order
  std::unique_ptr<detail::RnnStackStep<T>> rnn_;
  std::unique_ptr<detail::StepMatrix<T>> head_w_;  // [C, F] the head's weight, as opts.precision asks
};

}  // namespace recur
