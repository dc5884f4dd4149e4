// python/src/common.h - what the binding files share: numpy arrays over recur's tensors without
// copies, numpy input as tensors, and the registration functions of each file.
//
// Memory: recur's API takes and returns owning Tensor<T> values (a shape and a std::vector).
//   * Results (outputs, states, gradients) are moved into numpy: the vector moves into a heap
//     block that the array's capsule frees, so nothing is copied (give).
//   * Parameters are numpy views of the tensors inside the layer or model object, which stays
//     alive as the array's base: writing into a view changes the weights (view).
//   * Inputs are copied once into a Tensor (recur's functions take owning tensors, and a layer's
//     backward needs its forward's input kept anyway); numpy converts first only when the array
//     is not C-contiguous of the right dtype.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>
#include <utility>
#include <vector>

#include "recur/core/error.h"
#include "recur/core/tensor.h"

namespace recur::python {

namespace py = pybind11;

inline std::vector<py::ssize_t> np_shape(const Shape& s) { return std::vector<py::ssize_t>(s.begin(), s.end()); }

// A result handed to numpy without a copy (see the file comment).
template <typename T>
py::array_t<T> give(Tensor<T>&& t) {
  auto* data = new std::vector<T>(std::move(t.data));
  py::capsule owner(data, [](void* p) { delete static_cast<std::vector<T>*>(p); });
  return py::array_t<T>(np_shape(t.shape), data->data(), owner);
}

// A writable numpy view of a tensor that `owner` (a Python object holding the tensor) keeps alive.
template <typename T>
py::array_t<T> view(Tensor<T>& t, py::handle owner) {
  return py::array_t<T>(np_shape(t.shape), t.ptr(), owner);
}

// Any array-like as a tensor of T (one copy; numpy converts first if it must). `what` names the
// argument in the error.
template <typename T>
Tensor<T> to_tensor(py::handle obj, const std::string& what) {
  using Arr = py::array_t<T, py::array::c_style | py::array::forcecast>;
  Arr a = Arr::ensure(obj);
  if (!a) {
    PyErr_Clear();
    throw Error(what + ": expected an array of numbers, got " + std::string(py::str(py::type::of(obj).attr("__name__"))));
  }
  Tensor<T> t;
  t.shape.assign(a.shape(), a.shape() + a.ndim());
  t.data.assign(a.data(), a.data() + a.size());
  return t;
}

// Copies an array-like into an existing tensor of the same shape (load_state_dict), so views
// handed out before stay valid. Throws ShapeError naming `what`.
template <typename T>
void assign_tensor(Tensor<T>& dst, py::handle obj, const std::string& what) {
  Tensor<T> src = to_tensor<T>(obj, what);
  check_shape(what, src.shape, dst.shape);
  std::copy(src.data.begin(), src.data.end(), dst.data.begin());
}

void register_errors(py::module_& m);
void register_rnn(py::module_& m);
void register_model(py::module_& m);
void register_train(py::module_& m);

}  // namespace recur::python
