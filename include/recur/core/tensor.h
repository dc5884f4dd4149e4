// recur/core/tensor.h - the one dense array type, the dimension glossary and shape checks.
//
// Dimension glossary, used in every shape comment of the project:
//   B batch        T time (sequence length)   I input features (= E for token input)
//   E embedding    H hidden (cell) width       P projection width (LSTMP, 0 = none)
//   R recurrent output width (= P if P > 0 else H)
//   G gates (RNN 1, GRU 3, LSTM 4)             V vocabulary
//   L layers       D directions (1 or 2)       C classes / tags / output features
// Layouts are row-major and time-major like PyTorch's default (batch_first=False):
// a sequence tensor is [T, B, F] and row (t, b) starts at (t * B + b) * F.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "recur/core/error.h"

namespace recur {

using Shape = std::vector<int64_t>;

std::string shape_str(const Shape& shape);  // "[2, 3, 4]"
int64_t shape_numel(const Shape& shape);

// Throws ShapeError "<what>: expected [..], got [..]" unless got == expected.
void check_shape(std::string_view what, const Shape& got, const Shape& expected);

template <typename T>
struct Tensor {
  Shape shape;
  std::vector<T> data;  // shape_numel(shape) values, row-major

  Tensor() = default;
  explicit Tensor(Shape s, T fill = T(0)) : shape(std::move(s)), data(size_t(shape_numel(shape)), fill) {}

  int64_t numel() const { return int64_t(data.size()); }
  int rank() const { return int(shape.size()); }
  int64_t dim(int i) const { return shape.at(size_t(i)); }
  bool empty() const { return data.empty(); }
  T* ptr() { return data.data(); }
  const T* ptr() const { return data.data(); }
  void zero() { std::fill(data.begin(), data.end(), T(0)); }
  // Reshape to `s` keeping capacity; contents are unspecified unless zero() follows.
  void resize(const Shape& s) {
    shape = s;
    data.resize(size_t(shape_numel(shape)));
  }
};

// Element-type conversion (float <-> double), used to run the same case in both precisions.
template <typename To, typename From>
Tensor<To> tensor_cast(const Tensor<From>& src) {
  Tensor<To> out;
  out.shape = src.shape;
  out.data.assign(src.data.begin(), src.data.end());
  return out;
}

}  // namespace recur
