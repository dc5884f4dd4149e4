// python/src/module.cpp - the compiled part of the `recur` package (recur._recur): exceptions,
// safetensors reading, version and threads; the layer, the models and training are registered
// by rnn.cpp, model.cpp and train.cpp. python/recur/__init__.py re-exports all of it.
#include <cstring>
#include <string>

#include "common.h"
#include "recur/core/safetensors.h"
#include "recur/core/threads.h"
#include "recur/version.h"

namespace recur::python {

// recur.Error derives from ValueError: every recur error is about a value the caller passed (an
// option, an array, a file's contents), and code that already catches ValueError keeps working.
// ShapeError and FormatError refine it as in C++ (core/error.h). The message is recur's one line.
void register_errors(py::module_& m) {
  static py::exception<Error> error(m, "Error", PyExc_ValueError);
  static py::exception<ShapeError> shape_error(m, "ShapeError", error.ptr());
  static py::exception<FormatError> format_error(m, "FormatError", error.ptr());
  // Shown as recur.Error, the name the package exports it under.
  for (py::object* e : {static_cast<py::object*>(&error), static_cast<py::object*>(&shape_error),
                        static_cast<py::object*>(&format_error)})
    e->attr("__module__") = "recur";
  error.doc() = "recur's error: one line naming the file or argument, the place and what was expected (a ValueError).";
  shape_error.doc() = "An array or argument of the wrong shape (a recur.Error).";
  format_error.doc() = "A malformed or unreadable file: data, model or checkpoint (a recur.Error).";
  // Tried most derived first: pybind11 runs the translators registered last first.
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const FormatError& e) {
      PyErr_SetString(format_error.ptr(), e.what());
    } catch (const ShapeError& e) {
      PyErr_SetString(shape_error.ptr(), e.what());
    } catch (const Error& e) {
      PyErr_SetString(error.ptr(), e.what());
    }
  });
}

namespace {

// Every tensor of a safetensors file in its own precision (F32 as float32, other float dtypes
// as float64, integer dtypes as int64) and the metadata.
py::tuple load_safetensors(const std::string& path) {
  const SafetensorsReader rd = SafetensorsReader::open(path);
  py::dict tensors;
  for (const std::string& name : rd.names()) {
    const TensorInfo& info = rd.info(name);
    switch (info.dtype) {
      case DType::f32: tensors[py::str(name)] = give(rd.get<float>(name)); break;
      case DType::f64:
      case DType::f16:
      case DType::bf16: tensors[py::str(name)] = give(rd.get<double>(name)); break;
      default: {
        Tensor<int64_t> t;
        t.data = rd.get_int(name, &t.shape);
        tensors[py::str(name)] = give(std::move(t));
      }
    }
  }
  py::dict meta;
  for (const auto& [k, v] : rd.metadata()) meta[py::str(k)] = v;
  return py::make_tuple(tensors, meta);
}

}  // namespace

}  // namespace recur::python

PYBIND11_MODULE(_recur, m) {
  using namespace recur;
  using namespace recur::python;
  m.doc() = "recur's compiled core; use the `recur` package (python/recur/__init__.py), which re-exports it.";
  m.attr("__version__") = kVersion;
  register_errors(m);
  m.def("load_safetensors", &load_safetensors, py::arg("path"),
        "load_safetensors(path) -> (tensors, metadata)\n\n"
        "Every tensor of a .safetensors file as a numpy array (F32 as float32, other float dtypes as\n"
        "float64, integers as int64) and the file's metadata as a dict of strings. Raises\n"
        "recur.FormatError naming the file for anything malformed.");
  m.def(
      "set_num_threads", [](int n) {
        if (n < 0) throw Error("threads: got " + std::to_string(n) + ", expected >= 0 (0 = the libraries' defaults)");
        set_num_threads(n);
      },
      py::arg("n"),
      "set_num_threads(n)\n\nThreads of the matrix products, oneDNN and recur's OpenMP loops from now on (the CLI's\n"
      "--threads); 0 leaves OMP_NUM_THREADS' default. Results are the same bits at 1 to 7 threads;\n"
      "recur.train(deterministic=True) makes them so at any count.");
  register_rnn(m);
  register_model(m);
  register_train(m);
}
