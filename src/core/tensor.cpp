#include "recur/core/tensor.h"

namespace recur {

std::string shape_str(const Shape& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

int64_t shape_numel(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) throw ShapeError("negative dimension in shape " + shape_str(shape));
    n *= d;
  }
  return n;
}

void check_shape(std::string_view what, const Shape& got, const Shape& expected) {
  if (got != expected)
    throw ShapeError(std::string(what) + ": expected shape " + shape_str(expected) + ", got " + shape_str(got));
}

}  // namespace recur
