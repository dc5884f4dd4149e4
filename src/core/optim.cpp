// Optimizer update rules transcribed from torch 1.13's single-tensor code paths
// (torch/optim/{sgd,adam,adagrad,rmsprop}.py, _single_tensor_*), which are what torch runs on
// CPU with the default foreach=None. The element-wise expressions keep ATen's operation order
// (add_(x, alpha=a) is self + a * x, addcmul_ is self + v * t1 * t2, addcdiv_ is
// self + v * t1 / t2; aten/src/ATen/native/cpu/PointwiseOpsKernel.cpp) and scalar
// coefficients are computed in double as Python does, then cast to T as ATen casts a Python
// scalar to the tensor's dtype. That keeps double results within rounding of PyTorch's.
#include "recur/core/optim.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <set>
#include <sstream>
#include <type_traits>
#include <vector>

#include <omp.h>

namespace recur {

// Loops over at least this many values are split across the OpenMP threads (optim.cpp is
// compiled with -fopenmp); below it the fork costs more than it saves. Also the chunk of the
// gradient norm's fixed-order partial sums.
constexpr int64_t kParallelMin = 32768;

// Runs f(lo, hi) over [0, n): split in equal contiguous ranges over the OpenMP threads when n is
// large and there is more than one, else in one call on this thread. f must be element-wise.
template <typename F>
void for_ranges(int64_t n, F&& f) {
  const int threads = omp_get_max_threads();
  if (threads < 2 || n < kParallelMin) {
    f(int64_t(0), n);
    return;
  }
#pragma omp parallel num_threads(threads)
  {
    const int64_t t = omp_get_thread_num(), m = omp_get_num_threads();
    f(n * t / m, n * (t + 1) / m);
  }
}

template <typename T>
struct AdamCoefficients {
  bool decay;
  T wd, beta1, beta2, one_minus_beta1, one_minus_beta2, bc2_sqrt, eps, neg_step_size;
};

// Adam (no amsgrad) on elements [lo, hi). Out of line with plain pointers so that it vectorises
// (inside an OpenMP-outlined body GCC 12 left it scalar).
template <typename T>
[[gnu::noinline]] void adam_range(const AdamCoefficients<T>& k, int64_t lo, int64_t hi, const T* grad, T* value,
                                  T* exp_avg, T* exp_avg_sq) {
#pragma omp simd
  for (int64_t j = lo; j < hi; ++j) {
    T g = grad[j];
    if (k.decay) g = g + k.wd * value[j];
    exp_avg[j] = exp_avg[j] * k.beta1 + k.one_minus_beta1 * g;
    exp_avg_sq[j] = exp_avg_sq[j] * k.beta2 + k.one_minus_beta2 * g * g;
    const T denom = std::sqrt(exp_avg_sq[j]) / k.bc2_sqrt + k.eps;
    value[j] = value[j] + k.neg_step_size * exp_avg[j] / denom;
  }
}

// The unit of Adam's skipping (State::live): 4096 values, 16 KB of float, a few dozen rows of
// an embedding table.
constexpr int64_t kSkipChunk = 4096;

// Whether x[lo, hi) are all +0 or -0 (a NaN is not), from the bits without the sign ORed
// together: one vectorised read.
template <typename T>
[[gnu::noinline]] bool all_zero(const T* x, int64_t lo, int64_t hi) {
  using Bits = std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>;
  constexpr Bits kMagnitude = ~Bits(0) >> 1;
  Bits any = 0;
#pragma omp simd reduction(| : any)
  for (int64_t j = lo; j < hi; ++j) any |= std::bit_cast<Bits>(x[j]) & kMagnitude;
  return any == 0;
}

// For a gradient with ParamRef::rows: which chunks of `chunk` values hold a listed row (1) and
// so may be nonzero; every other chunk is all zeros. Empty when the gradient is dense.
template <typename T>
void chunks_with_rows(const ParamRef<T>& p, int64_t chunk, std::vector<uint8_t>& out) {
  out.clear();
  if (!p.rows) return;
  out.assign(size_t((p.size + chunk - 1) / chunk), 0);
  for (const int32_t r : *p.rows) {
    const int64_t lo = int64_t(r) * p.row_size, hi = std::min(p.size, lo + p.row_size);
    if (r < 0 || lo >= hi) throw Error("optimizer: parameter " + p.name + ": row " + std::to_string(r) + " outside it");
    for (int64_t c = lo / chunk; c <= (hi - 1) / chunk; ++c) out[size_t(c)] = 1;
  }
}

template <typename T>
[[gnu::noinline]] void scale_range(int64_t lo, int64_t hi, T scale, T* g) {
#pragma omp simd
  for (int64_t j = lo; j < hi; ++j) g[j] *= scale;
}

template <typename T>
ParamRef<T> param_ref(std::string name, Tensor<T>& value, Tensor<T>& grad) {
  check_shape("gradient of " + name, grad.shape, value.shape);
  return ParamRef<T>{std::move(name), value.ptr(), grad.ptr(), value.numel()};
}

namespace {

constexpr std::pair<OptimizerType, std::string_view> kOptimizerNames[] = {
    {OptimizerType::sgd, "sgd"},
    {OptimizerType::adam, "adam"},
    {OptimizerType::adagrad, "adagrad"},
    {OptimizerType::rmsprop, "rmsprop"},
};

std::string fmt(double v) {
  std::ostringstream s;
  s.precision(17);
  s << v;
  return s.str();
}

// Ranges follow the ValueError checks of the torch.optim constructors, tightened where
// PyTorch accepts values that only make sense by accident (NaN/inf everywhere, dampening and
// alpha outside [0, 1]).
void check_nonneg(std::string_view field, double v) {
  if (!(std::isfinite(v) && v >= 0))
    throw Error("optimizer " + std::string(field) + " = " + fmt(v) + ": must be finite and >= 0, i.e. in [0, inf)");
}

void check_unit(std::string_view field, double v, bool include_one) {
  bool ok = v >= 0 && (include_one ? v <= 1 : v < 1);
  if (!ok)
    throw Error("optimizer " + std::string(field) + " = " + fmt(v) + ": must be in " +
                (include_one ? "[0, 1]" : "[0, 1)"));
}

}  // namespace

std::string_view optimizer_name(OptimizerType type) {
  for (const auto& [t, name] : kOptimizerNames)
    if (t == type) return name;
  throw Error("optimizer_name: invalid OptimizerType " + std::to_string(int(type)));
}

OptimizerType parse_optimizer(std::string_view name) {
  std::string valid;
  for (const auto& [t, n] : kOptimizerNames) {
    if (n == name) return t;
    valid += valid.empty() ? "" : ", ";
    valid += n;
  }
  throw Error("unknown optimizer '" + std::string(name) + "' (valid: " + valid + ")");
}

void OptimizerConfig::validate() const {
  check_nonneg("lr", lr);
  check_nonneg("weight_decay", weight_decay);
  check_nonneg("momentum", momentum);
  check_unit("dampening", dampening, true);
  // torch/optim/sgd.py: "Nesterov momentum requires a momentum and zero dampening". Checked for
  // SGD only since the flag means nothing to the other optimizers.
  if (type == OptimizerType::sgd && nesterov && (momentum <= 0 || dampening != 0))
    throw Error("optimizer nesterov = true: requires momentum > 0 (got " + fmt(momentum) +
                ") and dampening = 0 (got " + fmt(dampening) + ")");
  check_unit("beta1", beta1, false);
  check_unit("beta2", beta2, false);
  check_nonneg("adam_eps", adam_eps);
  check_nonneg("lr_decay", lr_decay);
  check_nonneg("initial_accumulator_value", initial_accumulator_value);
  check_nonneg("adagrad_eps", adagrad_eps);
  check_unit("alpha", alpha, true);
  check_nonneg("rmsprop_eps", rmsprop_eps);
}

template <typename T>
Optimizer<T>::Optimizer(OptimizerConfig config, std::vector<ParamRef<T>> params)
    : config_(config), params_(std::move(params)) {
  config_.validate();
  optimizer_name(config_.type);  // rejects an out-of-range enum value
  std::set<std::string> names;
  for (const ParamRef<T>& p : params_) {
    if (p.name.empty()) throw Error("optimizer: parameter with an empty name");
    if (!names.insert(p.name).second) throw Error("optimizer: duplicate parameter name '" + p.name + "'");
    if (p.size < 0) throw Error("optimizer: parameter '" + p.name + "' has negative size " + std::to_string(p.size));
    if (p.size > 0 && (p.value == nullptr || p.grad == nullptr))
      throw Error("optimizer: parameter '" + p.name + "' has a null value or grad pointer");
    if (p.rows && (p.row_size <= 0 || p.size % p.row_size != 0))
      throw Error("optimizer: parameter '" + p.name + "': rows of " + std::to_string(p.row_size) +
                  " values do not tile its " + std::to_string(p.size));
  }
  // Buffers PyTorch creates lazily on the first step are created here, so step() never allocates.
  const OptimizerConfig& c = config_;
  state_.resize(params_.size());
  for (size_t i = 0; i < params_.size(); ++i) {
    const Shape shape{params_[i].size};
    State& s = state_[i];
    switch (c.type) {
      case OptimizerType::sgd:
        if (c.momentum != 0) s.buf1 = Tensor<T>(shape);
        break;
      case OptimizerType::adam:
        s.buf1 = Tensor<T>(shape);
        s.buf2 = Tensor<T>(shape);
        if (c.amsgrad) s.buf3 = Tensor<T>(shape);
        s.live.assign(size_t((params_[i].size + kSkipChunk - 1) / kSkipChunk), 0);
        break;
      case OptimizerType::adagrad:
        s.buf1 = Tensor<T>(shape, T(c.initial_accumulator_value));
        break;
      case OptimizerType::rmsprop:
        s.buf1 = Tensor<T>(shape);
        if (c.momentum > 0) s.buf2 = Tensor<T>(shape);
        if (c.centered) s.buf3 = Tensor<T>(shape);
        break;
    }
  }
}

template <typename T>
void Optimizer<T>::set_lr(double lr) {
  check_nonneg("lr", lr);
  config_.lr = lr;
}

template <typename T>
void Optimizer<T>::set_steps(int64_t steps) {
  if (steps < 0) throw Error("optimizer: step count must be >= 0, got " + std::to_string(steps));
  steps_ = steps;
  live_stale_ = true;
}

template <typename T>
void Optimizer<T>::refresh_live() {
  for (State& s : state_) {
    const int64_t n = s.buf1.numel();
    for (size_t c = 0; c < s.live.size(); ++c) {
      const int64_t lo = int64_t(c) * kSkipChunk, hi = std::min(n, lo + kSkipChunk);
      s.live[c] = !(all_zero(s.buf1.ptr(), lo, hi) && all_zero(s.buf2.ptr(), lo, hi));
    }
  }
  live_stale_ = false;
}

template <typename T>
std::vector<std::pair<std::string, Tensor<T>*>> Optimizer<T>::state_tensors() {
  std::vector<std::pair<std::string, Tensor<T>*>> out;
  live_stale_ = true;  // the caller may overwrite the buffers (a checkpoint's restore)
  auto add = [&](const ParamRef<T>& p, const char* key, Tensor<T>& t) {
    out.emplace_back("optim." + p.name + "." + key, &t);
  };
  const OptimizerConfig& c = config_;
  for (size_t i = 0; i < params_.size(); ++i) {
    const ParamRef<T>& p = params_[i];
    State& s = state_[i];
    switch (c.type) {
      case OptimizerType::sgd:
        if (c.momentum != 0) add(p, "momentum_buffer", s.buf1);
        break;
      case OptimizerType::adam:
        add(p, "exp_avg", s.buf1);
        add(p, "exp_avg_sq", s.buf2);
        if (c.amsgrad) add(p, "max_exp_avg_sq", s.buf3);
        break;
      case OptimizerType::adagrad:
        add(p, "sum", s.buf1);
        break;
      case OptimizerType::rmsprop:
        add(p, "square_avg", s.buf1);
        if (c.momentum > 0) add(p, "momentum_buffer", s.buf2);
        if (c.centered) add(p, "grad_avg", s.buf3);
        break;
    }
  }
  return out;
}

template <typename T>
void Optimizer<T>::zero_grad() {
  for (const ParamRef<T>& p : params_) std::fill(p.grad, p.grad + p.size, T(0));
}

template <typename T>
void Optimizer<T>::step() {
  if (live_stale_ && config_.type == OptimizerType::adam) refresh_live();
  for (size_t i = 0; i < params_.size(); ++i) {
    switch (config_.type) {
      case OptimizerType::sgd: step_sgd(params_[i], state_[i]); break;
      case OptimizerType::adam: step_adam(params_[i], state_[i]); break;
      case OptimizerType::adagrad: step_adagrad(params_[i], state_[i]); break;
      case OptimizerType::rmsprop: step_rmsprop(params_[i], state_[i]); break;
    }
  }
  ++steps_;
}

// torch/optim/sgd.py _single_tensor_sgd.
template <typename T>
void Optimizer<T>::step_sgd(const ParamRef<T>& p, State& s) {
  const OptimizerConfig& c = config_;
  const T wd = T(c.weight_decay), mom = T(c.momentum), one_minus_damp = T(1 - c.dampening), neg_lr = T(-c.lr);
  const bool use_momentum = c.momentum != 0;
  // PyTorch's buffer is None before the first step and then starts as a copy of d_p, undamped.
  const bool first = steps_ == 0;
  T* buf = s.buf1.ptr();
  for (int64_t j = 0; j < p.size; ++j) {
    T d = p.grad[j];
    if (c.weight_decay != 0) d = d + wd * p.value[j];
    if (use_momentum) {
      buf[j] = first ? d : buf[j] * mom + one_minus_damp * d;
      d = c.nesterov ? d + mom * buf[j] : buf[j];
    }
    p.value[j] = p.value[j] + neg_lr * d;
  }
}

// torch/optim/adam.py _single_tensor_adam, non-capturable branch: the bias corrections are
// applied as step_size = lr / (1 - beta1^t) and denom = sqrt(v) / sqrt(1 - beta2^t) + eps,
// i.e. eps is added after the bias correction of v (not the "eps-hat" form of the paper).
template <typename T>
void Optimizer<T>::step_adam(const ParamRef<T>& p, State& s) {
  const OptimizerConfig& c = config_;
  const double step = double(steps_ + 1);
  const double bias_correction1 = 1 - std::pow(c.beta1, step);
  const double bias_correction2 = 1 - std::pow(c.beta2, step);
  const T neg_step_size = T(-(c.lr / bias_correction1));
  const T bc2_sqrt = T(std::sqrt(bias_correction2));
  const T wd = T(c.weight_decay), beta1 = T(c.beta1), beta2 = T(c.beta2);
  const T one_minus_beta1 = T(1 - c.beta1), one_minus_beta2 = T(1 - c.beta2), eps = T(c.adam_eps);
  T* exp_avg = s.buf1.ptr();
  T* exp_avg_sq = s.buf2.ptr();
  T* max_exp_avg_sq = s.buf3.ptr();
  const bool decay = c.weight_decay != 0;
  // Two loops so that neither carries the amsgrad branch; `omp simd` because the compiler cannot
  // prove the five arrays apart (they are distinct buffers). Vector sqrt and division are
  // correctly rounded, so the result is the scalar loop's, bit for bit.
  if (!c.amsgrad) {
    const AdamCoefficients<T> k{decay, wd, beta1, beta2, one_minus_beta1, one_minus_beta2, bc2_sqrt, eps, neg_step_size};
    // Without weight decay and with eps > 0 (in T: a double eps can round to a float 0), a chunk
    // whose exp_avg, exp_avg_sq and gradient are all zero keeps them zero, and its values get
    // value + (-step_size * 0) / (0 + eps) = value exactly: it is skipped, after one read of its
    // gradient instead of seven passes over four arrays. That is most of an embedding table
    // whose vocabulary holds words the training data lacks (--embeddings-vocab); the result is
    // the dense loop's, bit for bit.
    if (!decay && eps > T(0)) {
      uint8_t* live = s.live.data();
      const int64_t chunks = int64_t(s.live.size());
      // With ParamRef::rows, a chunk no listed row falls in is known to be zero unread.
      thread_local std::vector<uint8_t> with_rows_buffer;
      chunks_with_rows(p, kSkipChunk, with_rows_buffer);
      const uint8_t* with_rows = with_rows_buffer.empty() ? nullptr : with_rows_buffer.data();
#pragma omp parallel for schedule(static) if (p.size >= kParallelMin && omp_get_max_threads() > 1)
      for (int64_t ch = 0; ch < chunks; ++ch) {
        const int64_t lo = ch * kSkipChunk, hi = std::min(p.size, lo + kSkipChunk);
        if (!live[ch]) {
          if ((with_rows && !with_rows[ch]) || all_zero(p.grad, lo, hi)) continue;
          live[ch] = 1;
        }
        adam_range(k, lo, hi, p.grad, p.value, exp_avg, exp_avg_sq);
      }
      return;
    }
    // Element-wise, so splitting it over threads changes no result.
    for_ranges(p.size, [&](int64_t lo, int64_t hi) {
      adam_range(k, lo, hi, p.grad, p.value, exp_avg, exp_avg_sq);
    });
    return;
  }
  for (int64_t j = 0; j < p.size; ++j) {
    T g = p.grad[j];
    if (decay) g = g + wd * p.value[j];
    exp_avg[j] = exp_avg[j] * beta1 + one_minus_beta1 * g;
    exp_avg_sq[j] = exp_avg_sq[j] * beta2 + one_minus_beta2 * g * g;
    const T v = max_exp_avg_sq[j] = std::max(max_exp_avg_sq[j], exp_avg_sq[j]);
    const T denom = std::sqrt(v) / bc2_sqrt + eps;
    p.value[j] = p.value[j] + neg_step_size * exp_avg[j] / denom;
  }
}

// torch/optim/adagrad.py _single_tensor_adagrad (dense gradients).
template <typename T>
void Optimizer<T>::step_adagrad(const ParamRef<T>& p, State& s) {
  const OptimizerConfig& c = config_;
  const double step = double(steps_ + 1);
  const T neg_clr = T(-(c.lr / (1 + (step - 1) * c.lr_decay)));
  const T wd = T(c.weight_decay), eps = T(c.adagrad_eps);
  T* sum = s.buf1.ptr();
  for (int64_t j = 0; j < p.size; ++j) {
    T g = p.grad[j];
    if (c.weight_decay != 0) g = g + wd * p.value[j];
    sum[j] = sum[j] + g * g;
    const T std_dev = std::sqrt(sum[j]) + eps;
    p.value[j] = p.value[j] + neg_clr * g / std_dev;
  }
}

// torch/optim/rmsprop.py _single_tensor_rmsprop. Centered: avg = sqrt(E[g^2] - E[g]^2) + eps;
// with momentum the buffer accumulates g / avg and lr is applied afterwards.
template <typename T>
void Optimizer<T>::step_rmsprop(const ParamRef<T>& p, State& s) {
  const OptimizerConfig& c = config_;
  const T wd = T(c.weight_decay), alpha = T(c.alpha), one_minus_alpha = T(1 - c.alpha);
  const T eps = T(c.rmsprop_eps), mom = T(c.momentum), neg_lr = T(-c.lr);
  const bool use_momentum = c.momentum > 0;  // rmsprop.py tests momentum > 0, sgd.py != 0
  T* square_avg = s.buf1.ptr();
  T* buf = s.buf2.ptr();
  T* grad_avg = s.buf3.ptr();
  for (int64_t j = 0; j < p.size; ++j) {
    T g = p.grad[j];
    if (c.weight_decay != 0) g = g + wd * p.value[j];
    square_avg[j] = square_avg[j] * alpha + one_minus_alpha * g * g;
    T avg;
    if (c.centered) {
      grad_avg[j] = grad_avg[j] * alpha + one_minus_alpha * g;
      avg = std::sqrt(square_avg[j] + T(-1) * grad_avg[j] * grad_avg[j]) + eps;
    } else {
      avg = std::sqrt(square_avg[j]) + eps;
    }
    if (use_momentum) {
      buf[j] = buf[j] * mom + g / avg;
      p.value[j] = p.value[j] + neg_lr * buf[j];
    } else {
      p.value[j] = p.value[j] + neg_lr * g / avg;
    }
  }
}

template <typename T>
double grad_norm(std::span<const ParamRef<T>> params) {
  double sum_sq = 0;
  // Sums over fixed chunks, computed in parallel and added in chunk order: the same norm
  // whatever the thread count.
  thread_local std::vector<double> partial_buffer;  // per calling thread; the workers write
  std::vector<double>& partial = partial_buffer;    // into the caller's through this reference
  thread_local std::vector<uint8_t> with_rows_buffer;
  for (const ParamRef<T>& p : params) {
    const T* g = p.grad;
    const int64_t chunks = (p.size + kParallelMin - 1) / kParallelMin;
    partial.assign(size_t(chunks), 0.0);
    // ParamRef::rows: a chunk without a listed row is zeros, whose sum is the +0 it starts at.
    chunks_with_rows(p, kParallelMin, with_rows_buffer);
    const uint8_t* with_rows = with_rows_buffer.empty() ? nullptr : with_rows_buffer.data();
#pragma omp parallel for schedule(static) if (chunks > 1)
    for (int64_t c = 0; c < chunks; ++c) {
      if (with_rows && !with_rows[c]) continue;
      const int64_t lo = c * kParallelMin, hi = std::min(p.size, lo + kParallelMin);
      double s = 0;
#pragma omp simd reduction(+ : s)
      for (int64_t j = lo; j < hi; ++j) s += double(g[j]) * double(g[j]);
      partial[size_t(c)] = s;
    }
    for (double s : partial) sum_sq += s;
  }
  return std::sqrt(sum_sq);
}

// torch/nn/utils/clip_grad.py clip_grad_norm_: clip_coef = max_norm / (total_norm + 1e-6),
// clamped to 1. Multiplying by a clamped 1 is a no-op, so only coefficients < 1 are applied.
template <typename T>
double clip_grad_norm(std::span<const ParamRef<T>> params, double max_norm) {
  if (!(max_norm >= 0)) throw Error("clip_grad_norm: max_norm = " + fmt(max_norm) + ": must be >= 0");
  const double norm = grad_norm(params);
  if (!std::isfinite(norm)) return norm;
  const double coef = max_norm / (norm + 1e-6);
  if (coef < 1) {
    const T scale = T(coef);
    for (const ParamRef<T>& p : params) {
      if (p.rows) {  // only the listed rows can be nonzero; a zero scaled is itself
        for (const int32_t r : *p.rows) {
          const int64_t lo = int64_t(r) * p.row_size;
          scale_range(lo, std::min(p.size, lo + p.row_size), scale, p.grad);
        }
        continue;
      }
      for_ranges(p.size, [&](int64_t lo, int64_t hi) { scale_range(lo, hi, scale, p.grad); });
    }
  }
  return norm;
}

// torch/nn/utils/clip_grad.py clip_grad_value_ (grad.clamp_(-clip, clip)).
template <typename T>
int64_t clip_grad_value(std::span<const ParamRef<T>> params, double clip) {
  if (!(clip >= 0)) throw Error("clip_grad_value: clip = " + fmt(clip) + ": must be >= 0");
  const T hi = T(clip), lo = -hi;
  int64_t clipped = 0;
  for (const ParamRef<T>& p : params) {
    for (int64_t j = 0; j < p.size; ++j) {
      T& g = p.grad[j];
      if (g > hi) {
        g = hi;
        ++clipped;
      } else if (g < lo) {
        g = lo;
        ++clipped;
      }
    }
  }
  return clipped;
}

#define RECUR_INSTANTIATE_OPTIM(T)                                                 \
  template ParamRef<T> param_ref<T>(std::string, Tensor<T>&, Tensor<T>&);          \
  template class Optimizer<T>;                                                     \
  template double grad_norm<T>(std::span<const ParamRef<T>>);                      \
  template double clip_grad_norm<T>(std::span<const ParamRef<T>>, double);         \
  template int64_t clip_grad_value<T>(std::span<const ParamRef<T>>, double);

RECUR_INSTANTIATE_OPTIM(float)
RECUR_INSTANTIATE_OPTIM(double)

#undef RECUR_INSTANTIATE_OPTIM

}  // namespace recur
