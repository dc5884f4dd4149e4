// recur/diag/diagnostics.h - looking inside training: how the loss gradient reaching each hidden
// state decays (or explodes) with distance, how saturated the gates are, and the classic
// vanishing/exploding-gradient experiment on a synthetic long-dependency task.
//
// State gradients. rnn_backward keeps dLoss/dh_t internal, so they are recomputed here with
// the core itself, without touching it: for each layer (top first) and each step t (last
// first), rnn_backward runs on a one-step, one-layer cache sliced out of the full RnnCache,
// with the gradient of the state leaving step t as grad_state_n; its grad_state0 is then the
// recurrent part of dLoss/dh_{t-1} and its grad_input the step's input gradient, which (times
// the dropout mask) is the upstream gradient of the layer below. The arithmetic is the core's,
// so the values match its own backward (tests/test_diagnostics.cpp checks this and finite
// differences in double).
//
// State slots follow DirectionCache::h: slot s in [0, T] of the forward direction is h[s]
// (slot 0 the initial state, slot t+1 the state after step t, which is also the output of step
// t); the reverse direction's state after step t is slot t, its initial state slot T.
// "dLoss/dh at slot s" is the total derivative: through the output of that step and through
// every later step. The gradient of the final state is taken as zero (truncated BPTT: the
// carried state is a constant of the next chunk).
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "recur/model/lm.h"
#include "recur/model/model.h"
#include "recur/core/rnn.h"

namespace recur {

// ---- gate statistics ---------------------------------------------------------------------------

// Thresholds of "saturated": where sigmoid'/tanh' is below ~5% of its peak, so little gradient
// passes through the gate.
struct SaturationOptions {
  double sigmoid_low = 0.05;   // sigmoid output < low or > high
  double sigmoid_high = 0.95;
  double tanh_abs = 0.95;      // |tanh output| > this
};

struct GateStat {
  std::string name;   // "i", "f", "g", "o" (LSTM); "r", "z", "n" (GRU); "h" (RNN)
  std::string kind;   // "sigmoid", "tanh" or "relu" (relu: "saturated" = exactly 0, a dead unit)
  double saturated = 0;  // fraction of values in the saturated range
  double mean = 0;       // mean post-activation value
  int64_t count = 0;     // values looked at (valid steps only)
};

struct GateStats {
  std::vector<GateStat> gates;  // in the cell's gate order (cell.h)
  double saturated = 0;         // over all gates together
  // Mean of the gate that decides how much state is kept: LSTM forget gate f, GRU update
  // gate z; NaN for a plain RNN, which has none.
  double keep_mean = std::numeric_limits<double>::quiet_NaN();
};

// Gate names of a cell, in its gate order: {"i","f","g","o"}, {"r","z","n"} or {"h"}.
std::vector<std::string> gate_names(CellType cell);

// Statistics of one layer-direction's post-activation gates [T, B, G*H] (DirectionCache::gates).
// Only valid steps count (t < lengths[b]; empty lengths = all T). Throws ShapeError on a
// mismatch.
template <typename T>
GateStats gate_stats(const RnnConfig& cfg, const Tensor<T>& gates, const std::vector<int64_t>& lengths,
                     const SaturationOptions& opts = {});

// ---- state gradients -----------------------------------------------------------------------------

struct StateGradOptions {
  // Keep only the upstream gradient of each sequence's last valid step (t = lengths[b] - 1):
  // the gradient of the last step's loss, whose decay with distance is the textbook picture.
  // Unidirectional networks only.
  bool last_step_only = false;
};

template <typename T>
struct StateGrads {
  std::vector<Tensor<T>> h;  // [L*D] each [T+1, B, R]: dLoss/dh at every state slot
  std::vector<Tensor<T>> c;  // [L*D] each [T+1, B, H]: dLoss/dc (LSTM only), same slots
};

// dLoss/dh at every state slot of every layer and direction of the forward held in `cache`.
//   input        [T, B, I]  the rnn_forward input
//   grad_output  [T, B, D*R] dLoss/doutput (as given to rnn_backward)
template <typename T>
StateGrads<T> rnn_state_grads(const RnnConfig& cfg, const RnnParams<T>& params, const Tensor<T>& input,
                              const RnnCache<T>& cache, const Tensor<T>& grad_output,
                              const StateGradOptions& opts = {});

// L2 norm over the batch and units of each slot of one [T+1, B, R] gradient: [T+1] values.
template <typename T>
std::vector<double> slot_norms(const Tensor<T>& g);

// The same by distance from each sequence's last valid step (forward direction): entry k is
// the norm over the batch of the state after step lengths[b]-1-k, k = 0..T (k = lengths[b] is
// the initial state; rows shorter than k contribute nothing). With all lengths T, entry k is
// slot T-k.
template <typename T>
std::vector<double> distance_norms(const Tensor<T>& g, const std::vector<int64_t>& lengths);

// ---- what `recur train --diagnostics` records ---------------------------------------------------

struct LayerDiagnostics {
  int64_t layer = 0;
  std::string name;                 // model graphs: the rnn layer ("enc", "dec.1"); empty for a language model
  std::vector<double> grad_h;       // [T+1] ||dLoss/dh|| by slot (slot 0 = the chunk's initial state)
  std::vector<double> grad_h_last;  // [T+1] ||d(last step's loss)/dh|| by distance 0..T from the last step
  GateStats gates;
};

struct StepDiagnostics {
  int64_t step = 0;
  double epoch = 0;
  double grad_norm = 0;          // global gradient norm before clipping
  double grad_norm_clipped = 0;  // after clipping (norm and value)
  bool clipped = false;          // clipping changed this step's gradient
  double clip_rate = 0;          // share of steps clipped since the previous diagnostics line
  std::vector<LayerDiagnostics> layers;
};

// Per layer: state-gradient profiles and gate statistics of the last lm_forward_backward (with a
// backward pass) on the LM graph `spec` (lm.h) held in `cache` (called after it, before the optimizer changes the parameters). The loss scale is
// the one the backward used (the trainer's mean loss). Unidirectional language models only.
template <typename T>
std::vector<LayerDiagnostics> lm_layer_diagnostics(const ModelSpec& spec, const ModelParams<T>& params,
                                                   const ModelCache<T>& cache);

// The same for every rnn layer of a model.h graph (task models), after model_backward on the
// forward held in `cache` (`inputs` its inputs): one entry per layer of each rnn, its forward
// direction (grad_h_last only for unidirectional rnns). The gradient reaching an rnn's final
// state (a classifier's head, an encoder's bridge) enters as the gradient of its last slot, so
// a network read only through its final state still shows how that gradient decays. Equal to
// lm_layer_diagnostics on an equivalent model (tests/test_diagnostics.cpp).
template <typename T>
std::vector<LayerDiagnostics> model_layer_diagnostics(const ModelSpec& spec, const ModelParams<T>& params,
                                                      const ModelInputs<T>& inputs, const ModelCache<T>& cache);

// One metrics.jsonl line (no newline): {"type":"diag","step":..,"epoch":..,"grad_norm":..,
// "grad_norm_clipped":..,"clipped":..,"clip_rate":..,"layers":[{"layer":0,"grad_h":[..],
// "grad_h_last":[..],"saturated":..,"keep_mean":..,"gates":{"i":{"saturated":..,"mean":..},..}}]}
std::string diagnostics_json(const StepDiagnostics& d);

// ---- the vanishing/exploding gradient experiment -------------------------------------------------

// Synthetic task: a sequence starts with one of `classes` signal tokens, then `gap` noise tokens
// drawn from `noise` other tokens; only the last step has a target: the signal. The loss
// therefore depends on a token seen `gap` steps earlier.
struct GradientExperimentOptions {
  int64_t gap = 100;       // distance between the signal and the answer
  int64_t hidden = 64;
  int64_t batch = 32;
  int64_t classes = 4;
  int64_t noise = 4;
  uint64_t seed = 1;
  double large_scale = 4.0;  // "large init": every recurrent weight multiplied by this
  double clip_norm = 1.0;    // the clipped variant's max gradient norm
  double threshold = 1e-6;   // the summary's "vanished" level, relative to the last step
  double keep_bias = 1.0;    // bias of the LSTM forget gate and the GRU update gate (0 = PyTorch's ~0)
  int64_t train_steps = 0;   // > 0: also a "trained" variant after this many Adam steps on fresh batches
  double train_lr = 0.003;
};

struct GradientProfile {
  std::string cell;     // "rnn_tanh", "gru", "lstm"
  std::string variant;  // "default", "trained", "large", "clipped"
  std::vector<double> norm;  // [gap+1] ||dLoss/dh|| at distance k = 0..gap from the answer step (absolute)
  double param_grad_norm = 0;   // global gradient norm of all parameters before clipping
  double clip_factor = 1;       // what clipping multiplied the gradients by (1 = not clipped)
  // First distance at which norm[k] < threshold * norm[0]; -1 when it never does within the gap.
  int64_t vanish_distance = -1;
  double max_ratio = 0;  // max_k norm[k] / norm[0]: > 1 means the gradient grows going back (explodes)
  double train_loss = std::numeric_limits<double>::quiet_NaN();  // "trained": mean loss of the last 20 steps
};

// Runs the three cells (basic tanh RNN, GRU and LSTM with keep_bias on their update/forget
// gate) on the same data
// and seed, in double precision so tiny norms are exact, as four variants: PyTorch's default
// init ("default"), the same after train_steps of Adam on the task ("trained": what the
// gated cells learn to do with their memory), `large_scale` times larger recurrent weights
// ("large") and that large init with gradient-norm clipping ("clipped"). Returns the profiles
// cells x variants, variant-major (12, or 9 when train_steps is 0).
std::vector<GradientProfile> gradient_experiment(const GradientExperimentOptions& opts);

// The experiment's summary as `recur diagnose gradients` prints it: two lines naming the setting
// and the measures, a blank line, then a table with one row per profile (cell, weights,
// vanish distance, growth, parameter gradient norm, clip factor, train loss).
std::string gradient_experiment_summary(const std::vector<GradientProfile>& profiles,
                                        const GradientExperimentOptions& opts);

}  // namespace recur
