// recur/core/optim.h - first-order optimizers and gradient clipping, numerically the same as
// torch 1.13's torch.optim.{SGD, Adam, Adagrad, RMSprop} (single-tensor code path, one param
// group, maximize=False) and torch.nn.utils.clip_grad_{norm,value}_.
//
// An optimizer does not own parameters: it is handed ParamRefs (name, value and gradient
// pointers) that must outlive it and keep their sizes. Its state buffers are allocated once in
// the constructor, so step() never allocates.
//
// Checkpoints: state_tensors() names every buffer "optim.<param name>.<torch state key>"
// (momentum_buffer, exp_avg, exp_avg_sq, max_exp_avg_sq, sum, square_avg, grad_avg), and
// steps()/set_steps() carry the step count, which PyTorch keeps per parameter as state["step"]
// and here is one counter for all parameters (they always step together).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "recur/core/tensor.h"

namespace recur {

// One trainable tensor as the optimizer sees it: `size` values at `value`, same at `grad`.
template <typename T>
struct ParamRef {
  std::string name;  // unique within one optimizer; used in state names
  T* value = nullptr;
  T* grad = nullptr;
  int64_t size = 0;
  // Optional, for an embedding table's gradient: it is zero outside these rows of `row_size`
  // values (ascending and distinct, as LayerGrads::rows in model/model.h), so grad_norm,
  // clip_grad_norm and Adam pass only over the stretches those rows fall in and take the rest
  // for the zeros it is: the bits of the dense pass, without reading a 160,000-word table every
  // step. nullptr: dense. Whoever sets it keeps the promise until the step: nothing else may
  // write there (gradients summed over ranks break it; model_param_refs_sparse in model.h).
  const std::vector<int32_t>* rows = nullptr;
  int64_t row_size = 0;
};

// Throws ShapeError unless value and grad have the same shape.
template <typename T>
ParamRef<T> param_ref(std::string name, Tensor<T>& value, Tensor<T>& grad);

enum class OptimizerType { sgd, adam, adagrad, rmsprop };

std::string_view optimizer_name(OptimizerType type);  // "sgd", "adam", "adagrad", "rmsprop"
OptimizerType parse_optimizer(std::string_view name);  // inverse; Error lists the valid names

// Every field has PyTorch's default. Fields of other optimizers than `type` are ignored (but
// still validated, so a bad value cannot lurk in a config file until someone switches type).
struct OptimizerConfig {
  OptimizerType type = OptimizerType::sgd;
  double lr = 1e-3;  // torch.optim.SGD has no default lr; Adam/RMSprop use 1e-3, Adagrad 1e-2
  double weight_decay = 0.0;  // L2 penalty added to the gradient (not AdamW's decoupled form)

  // SGD
  double momentum = 0.0;  // also RMSprop's momentum
  double dampening = 0.0;
  bool nesterov = false;  // needs momentum > 0 and dampening == 0

  // Adam
  double beta1 = 0.9;
  double beta2 = 0.999;
  double adam_eps = 1e-8;
  bool amsgrad = false;

  // Adagrad
  double lr_decay = 0.0;
  double initial_accumulator_value = 0.0;
  double adagrad_eps = 1e-10;

  // RMSprop
  double alpha = 0.99;
  double rmsprop_eps = 1e-8;
  bool centered = false;

  // Throws Error "optimizer <field> = <value>: must be in <range>" for the first bad field.
  void validate() const;
};

template <typename T>
class Optimizer {
 public:
  // Validates the config and the params (non-null pointers, size >= 0, unique non-empty names)
  // and allocates the state: zeros, or initial_accumulator_value for Adagrad's sum.
  Optimizer(OptimizerConfig config, std::vector<ParamRef<T>> params);

  // One update of every parameter from its current gradient (gradients are not modified).
  void step();
  void zero_grad();  // sets every gradient to 0

  double lr() const { return config_.lr; }
  void set_lr(double lr);  // for schedules; throws Error unless lr >= 0
  int64_t steps() const { return steps_; }
  // Restores the step count from a checkpoint; load the state_tensors() contents with it.
  // For SGD with momentum, steps() == 0 means "no momentum buffer yet", as in PyTorch where
  // the first step copies the gradient into the buffer instead of damping it.
  void set_steps(int64_t steps);

  const OptimizerConfig& config() const { return config_; }
  const std::vector<ParamRef<T>>& params() const { return params_; }

  // Every state buffer, in parameter order, named "optim.<param name>.<torch state key>";
  // the tensors have shape [size] and may be overwritten in place (keeping their size).
  std::vector<std::pair<std::string, Tensor<T>*>> state_tensors();

 private:
  struct State {
    Tensor<T> buf1;  // momentum_buffer (SGD) | exp_avg (Adam) | sum (Adagrad) | square_avg (RMSprop)
    Tensor<T> buf2;  // exp_avg_sq (Adam) | momentum_buffer (RMSprop)
    Tensor<T> buf3;  // max_exp_avg_sq (Adam amsgrad) | grad_avg (RMSprop centered)
    // Adam: one flag per kSkipChunk values, set once the chunk's exp_avg/exp_avg_sq may be
    // nonzero. A chunk whose state and gradient are all zero is left as it is: its update is
    // exactly nothing (see step_adam), and an embedding table's rows of words that no batch
    // has held are most of a large vocabulary.
    std::vector<uint8_t> live;
  };

  void step_sgd(const ParamRef<T>& p, State& s);
  void step_adam(const ParamRef<T>& p, State& s);
  void step_adagrad(const ParamRef<T>& p, State& s);
  void step_rmsprop(const ParamRef<T>& p, State& s);

  // Recomputes every State::live from the state buffers (after they were handed out by
  // state_tensors() or the step count was set, e.g. by a checkpoint's restore).
  void refresh_live();

  OptimizerConfig config_;
  std::vector<ParamRef<T>> params_;
  std::vector<State> state_;
  int64_t steps_ = 0;
  bool live_stale_ = false;  // state buffers may have been written from outside
};

// Global L2 norm of all gradients together, accumulated in double.
template <typename T>
double grad_norm(std::span<const ParamRef<T>> params);

// torch.nn.utils.clip_grad_norm_ with norm_type 2: scales every gradient by
// max_norm / (norm + 1e-6) when that is < 1 and returns the norm before clipping. A non-finite
// norm is returned as is and the gradients are left untouched, so the caller can skip the step
// (PyTorch would instead multiply by a NaN or zero coefficient). Throws Error unless max_norm >= 0.
template <typename T>
double clip_grad_norm(std::span<const ParamRef<T>> params, double max_norm);

// torch.nn.utils.clip_grad_value_: clamps every gradient element to [-clip, clip] and returns
// how many elements were outside (NaNs stay NaN and are not counted). Throws Error unless clip >= 0.
template <typename T>
int64_t clip_grad_value(std::span<const ParamRef<T>> params, double clip);

// Overloads so a std::vector<ParamRef<T>> can be passed without spelling the span type.
template <typename T>
double grad_norm(const std::vector<ParamRef<T>>& params) {
  return grad_norm(std::span<const ParamRef<T>>(params));
}
template <typename T>
double clip_grad_norm(const std::vector<ParamRef<T>>& params, double max_norm) {
  return clip_grad_norm(std::span<const ParamRef<T>>(params), max_norm);
}
template <typename T>
int64_t clip_grad_value(const std::vector<ParamRef<T>>& params, double clip) {
  return clip_grad_value(std::span<const ParamRef<T>>(params), clip);
}

}  // namespace recur
