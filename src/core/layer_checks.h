// src/layer_checks.h - shape checks shared by the non-recurrent layers (embedding, linear,
// loss). Internal to the library. Messages follow check_shape's "<what>: expected .., got .."
// so every ShapeError reads the same whichever check raised it.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "recur/core/tensor.h"

namespace recur::detail {

// Throws ShapeError unless `got` has `rank` dimensions; `dims` spells the expected shape with
// glossary letters ("[V, E]") because the sizes themselves are not known yet.
inline void check_rank(std::string_view what, const Shape& got, int rank, std::string_view dims) {
  if (int(got.size()) != rank)
    throw ShapeError(std::string(what) + ": expected shape " + std::string(dims) + ", got " + shape_str(got));
}

// Throws ShapeError unless a span or buffer holds exactly `expected` elements.
inline void check_size(std::string_view what, int64_t got, int64_t expected) {
  if (got != expected)
    throw ShapeError(std::string(what) + ": expected shape [" + std::to_string(expected) + "], got [" +
                     std::to_string(got) + "]");
}

// A tensor [..., F] seen as a matrix [N, F]: the leading dimensions are flattened so callers
// can pass a whole sequence [T, B, F] (N = T*B) or one step / final state [B, F] (N = B).
struct Rows {
  int64_t n = 0;  // N, product of the leading dimensions
  int64_t f = 0;  // F, the last dimension
};

inline Rows as_rows(std::string_view what, const Shape& shape, std::string_view dims) {
  if (shape.size() < 2)
    throw ShapeError(std::string(what) + ": expected shape " + std::string(dims) + " (rank >= 2), got " +
                     shape_str(shape));
  Rows r;
  r.f = shape.back();
  r.n = 1;
  for (size_t i = 0; i + 1 < shape.size(); ++i) r.n *= shape[i];
  return r;
}

// Throws ShapeError unless `shape` is [n, f] or [..., f] with n rows in all.
inline void check_rows(std::string_view what, const Shape& shape, int64_t n, int64_t f) {
  if (shape.size() >= 2) {
    const Rows r = as_rows(what, shape, "[N, F]");
    if (r.n == n && r.f == f) return;
  }
  throw ShapeError(std::string(what) + ": expected shape [" + std::to_string(n) + ", " + std::to_string(f) +
                   "] (or [..., " + std::to_string(f) + "] with " + std::to_string(n) + " rows), got " +
                   shape_str(shape));
}

// `shape` with its last dimension replaced by `last` ([..., F] -> [..., C]).
inline Shape with_last(Shape shape, int64_t last) {
  shape.back() = last;
  return shape;
}

}  // namespace recur::detail
