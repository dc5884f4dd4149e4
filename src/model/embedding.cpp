#include "recur/model/embedding.h"

#include <algorithm>
#include <string>

#include "layer_checks.h"

namespace recur {

namespace {

// All ids are checked before any write, so a bad batch leaves outputs and gradients intact.
void check_ids(const char* fn, std::span<const int32_t> ids, int64_t vocab) {
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0 || ids[i] >= vocab)
      throw Error(std::string(fn) + ": ids[" + std::to_string(i) + "] = " + std::to_string(ids[i]) +
                  " is out of range [0, " + std::to_string(vocab) + ")");
  }
}

}  // namespace

template <typename T>
void embedding_forward(const Tensor<T>& weight, std::span<const int32_t> ids, Tensor<T>& out) {
  detail::check_rank("embedding_forward: weight", weight.shape, 2, "[V, E]");
  const int64_t vocab = weight.dim(0), width = weight.dim(1);
  check_ids("embedding_forward", ids, vocab);
  out.resize({int64_t(ids.size()), width});
  for (size_t i = 0; i < ids.size(); ++i)
    std::copy_n(weight.ptr() + ids[i] * width, width, out.ptr() + int64_t(i) * width);
}

template <typename T>
void embedding_backward(std::span<const int32_t> ids, const Tensor<T>& grad_out, Tensor<T>& grad_weight,
                        std::vector<int32_t>* touched_rows) {
  detail::check_rank("embedding_backward: grad_weight", grad_weight.shape, 2, "[V, E]");
  const int64_t vocab = grad_weight.dim(0), width = grad_weight.dim(1);
  detail::check_rows("embedding_backward: grad_out", grad_out.shape, int64_t(ids.size()), width);
  check_ids("embedding_backward", ids, vocab);

  // Row by row in id order: repeated ids accumulate in sequence, which keeps the result
  // deterministic (no reordering of the additions) for a given batch.
  for (size_t i = 0; i < ids.size(); ++i) {
    T* dst = grad_weight.ptr() + ids[i] * width;
    const T* src = grad_out.ptr() + int64_t(i) * width;
    for (int64_t e = 0; e < width; ++e) dst[e] += src[e];
  }

  if (touched_rows) {
    // Sorting the N ids beats a V-sized bitmap: N (a batch) is usually far below V (a vocabulary).
    touched_rows->assign(ids.begin(), ids.end());
    std::sort(touched_rows->begin(), touched_rows->end());
    touched_rows->erase(std::unique(touched_rows->begin(), touched_rows->end()), touched_rows->end());
  }
}

template void embedding_forward<float>(const Tensor<float>&, std::span<const int32_t>, Tensor<float>&);
template void embedding_forward<double>(const Tensor<double>&, std::span<const int32_t>, Tensor<double>&);
template void embedding_backward<float>(std::span<const int32_t>, const Tensor<float>&, Tensor<float>&,
                                        std::vector<int32_t>*);
template void embedding_backward<double>(std::span<const int32_t>, const Tensor<double>&, Tensor<double>&,
                                         std::vector<int32_t>*);

}  // namespace recur
