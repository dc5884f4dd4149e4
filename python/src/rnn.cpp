// python/src/rnn.cpp - recur.RNN: the recurrent layer of core/rnn.h (stacked, bidirectional, any
// cell) with its forward and backward, parameters under PyTorch's names. Calls rnn_forward and
// rnn_backward as they are; the shapes and semantics are rnn.h's.
#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common.h"
#include "recur/core/random.h"
#include "recur/core/rnn.h"

namespace recur::python {
namespace {

template <typename T>
struct RnnCore {
  RnnParams<T> params;
  RnnCache<T> cache;
  Tensor<T> input;  // the last forward's input: backward needs it
  bool has_forward = false;
};

struct PyRnn {
  RnnConfig cfg;
  bool f64 = false;
  Rng rng;  // dropout masks of training forwards
  RnnCore<float> f;
  RnnCore<double> d;
};

RnnBackend parse_backend(const std::string& s) {
  if (s == "auto") return RnnBackend::automatic;
  if (s == "reference") return RnnBackend::reference;
  if (s == "onednn") return RnnBackend::onednn;
  throw Error("backend: got '" + s + "', expected auto, reference or onednn");
}

std::vector<int64_t> to_lengths(const py::object& obj) {
  if (obj.is_none()) return {};
  Tensor<int64_t> t = to_tensor<int64_t>(obj, "lengths");
  if (t.rank() != 1) throw ShapeError("lengths: expected [B], got " + shape_str(t.shape));
  return t.data;
}

template <typename T>
py::tuple run_forward(PyRnn& r, RnnCore<T>& core, const py::object& input, const py::object& lengths_obj,
                  const py::object& h0, const py::object& c0, bool training, const std::string& backend) {
  const RnnConfig& cfg = r.cfg;
  Tensor<T> x = to_tensor<T>(input, "input");
  if (x.rank() != 3 || x.dim(2) != cfg.input_size)
    throw ShapeError("input: expected [T, B, " + std::to_string(cfg.input_size) + "] (time-major), got " +
                     shape_str(x.shape));
  const int64_t B = x.dim(1), LD = cfg.num_layers * cfg.directions();
  const std::vector<int64_t> lengths = to_lengths(lengths_obj);
  RnnState<T> s0;
  if (!h0.is_none()) {
    s0.h = to_tensor<T>(h0, "h0");
    check_shape("h0", s0.h.shape, {LD, B, cfg.state_size()});
  }
  if (!c0.is_none()) {
    if (!cfg.has_cell_state())
      throw Error("c0: a " + std::string(cell_name(cfg.cell)) + " layer has no cell state; only an LSTM takes c0");
    s0.c = to_tensor<T>(c0, "c0");
    check_shape("c0", s0.c.shape, {LD, B, cfg.hidden_size});
  }
  ForwardOptions opts;
  opts.training = training;
  opts.rng = &r.rng;
  opts.backend = parse_backend(backend);
  Tensor<T> out;
  RnnState<T> sn;
  core.has_forward = false;
  rnn_forward(cfg, core.params, x, lengths, s0, opts, out, sn, core.cache);
  core.input = std::move(x);
  core.has_forward = true;
  // PyTorch's return shape: output, h_n (RNN, GRU) or output, (h_n, c_n) (LSTM).
  if (cfg.has_cell_state())
    return py::make_tuple(give(std::move(out)), py::make_tuple(give(std::move(sn.h)), give(std::move(sn.c))));
  return py::make_tuple(give(std::move(out)), give(std::move(sn.h)));
}

template <typename T>
py::tuple run_backward(PyRnn& r, RnnCore<T>& core, const py::object& grad_output, const py::object& grad_h_n,
                   const py::object& grad_c_n) {
  const RnnConfig& cfg = r.cfg;
  if (!core.has_forward) throw Error("backward: no forward to differentiate; call forward first");
  const int64_t T_ = core.cache.steps, B = core.cache.batch, LD = cfg.num_layers * cfg.directions();
  const Tensor<T> go = to_tensor<T>(grad_output, "grad_output");
  check_shape("grad_output", go.shape, {T_, B, cfg.output_size()});
  RnnState<T> gn;
  if (!grad_h_n.is_none()) {
    gn.h = to_tensor<T>(grad_h_n, "grad_h_n");
    check_shape("grad_h_n", gn.h.shape, {LD, B, cfg.state_size()});
  }
  if (!grad_c_n.is_none()) {
    if (!cfg.has_cell_state())
      throw Error("grad_c_n: a " + std::string(cell_name(cfg.cell)) + " layer has no cell state; only an LSTM takes grad_c_n");
    gn.c = to_tensor<T>(grad_c_n, "grad_c_n");
    check_shape("grad_c_n", gn.c.shape, {LD, B, cfg.hidden_size});
  }
  // Fresh gradients each call, moved into numpy afterwards: no copy, and no array returned
  // earlier changes under the caller.
  RnnGrads<T> grads = rnn_zero_grads<T>(cfg);
  Tensor<T> grad_input;
  RnnState<T> grad_state0;
  rnn_backward(cfg, core.params, core.input, core.cache, go, gn, grads, &grad_input, &grad_state0);
  py::dict g;
  rnn_for_each_param(cfg, grads.dirs, [&](const std::string& name, Tensor<T>& t) { g[py::str(name)] = give(std::move(t)); });
  py::object c0 = py::none();
  if (cfg.has_cell_state()) c0 = give(std::move(grad_state0.c));
  return py::make_tuple(give(std::move(grad_input)), give(std::move(grad_state0.h)), c0, g);
}

template <typename T>
py::dict state_dict(PyRnn& r, RnnCore<T>& core, py::handle self) {
  py::dict d;
  rnn_for_each_param(r.cfg, core.params.dirs, [&](const std::string& name, Tensor<T>& t) { d[py::str(name)] = view(t, self); });
  return d;
}

template <typename T>
void load_state_dict(PyRnn& r, RnnCore<T>& core, const py::dict& d) {
  std::set<std::string> want;
  rnn_for_each_param(r.cfg, core.params.dirs, [&](const std::string& name, Tensor<T>&) { want.insert(name); });
  for (const auto& item : d) {
    const std::string name = py::str(item.first);
    if (!want.count(name))
      throw Error("load_state_dict: unexpected tensor '" + name + "' for this " + std::string(cell_name(r.cfg.cell)) +
                  " layer (expected " + std::to_string(want.size()) + " tensors: weight_ih_l0, ...)");
  }
  for (const std::string& name : want)
    if (!d.contains(py::str(name))) throw Error("load_state_dict: missing tensor '" + name + "'");
  // Checked first, then copied: a bad dict changes nothing.
  std::vector<std::pair<Tensor<T>*, Tensor<T>>> staged;
  rnn_for_each_param(r.cfg, core.params.dirs, [&](const std::string& name, Tensor<T>& t) {
    Tensor<T> src = to_tensor<T>(d[py::str(name)], name);
    check_shape(name, src.shape, t.shape);
    staged.emplace_back(&t, std::move(src));
  });
  for (auto& [dst, src] : staged) std::copy(src.data.begin(), src.data.end(), dst->data.begin());
  core.has_forward = false;
}

std::unique_ptr<PyRnn> make_rnn(const std::string& cell, int64_t input_size, int64_t hidden_size, int64_t num_layers,
                                bool bidirectional, int64_t proj_size, bool peephole, bool bias,
                                const std::string& gru_reset, double dropout, uint64_t seed, const py::object& dtype) {
  auto r = std::make_unique<PyRnn>();
  RnnConfig& c = r->cfg;
  c.cell = parse_cell(cell);
  c.gru_reset = parse_gru_reset(gru_reset);
  c.input_size = input_size;
  c.hidden_size = hidden_size;
  c.num_layers = num_layers;
  c.bidirectional = bidirectional;
  c.proj_size = proj_size;
  c.peephole = peephole;
  c.bias = bias;
  c.dropout = dropout;
  c.validate();
  const py::dtype dt = py::dtype::from_args(dtype);
  if (dt.kind() == 'f' && dt.itemsize() == 4) r->f64 = false;
  else if (dt.kind() == 'f' && dt.itemsize() == 8) r->f64 = true;
  else throw Error("dtype: got " + dt.attr("name").cast<std::string>() + ", expected float32 or float64");
  // Initialisation draws from its own generator (the layer's rng draws dropout masks).
  Rng init(seed);
  if (r->f64) r->d.params = rnn_init_params<double>(c, init);
  else r->f.params = rnn_init_params<float>(c, init);
  r->rng.reseed(seed ^ 0x9e3779b97f4a7c15ULL);
  return r;
}

}  // namespace

void register_rnn(py::module_& m) {
  py::class_<PyRnn>(m, "RNN", R"(RNN(cell, input_size, hidden_size, num_layers=1, *, bidirectional=False, proj_size=0,
    peephole=False, bias=True, gru_reset="after", dropout=0.0, seed=1, dtype="float32")

A recurrent layer (recur/core/rnn.h): `num_layers` stacked layers of one or two directions of
a cell, run over a time-major batch of variable-length sequences, with PyTorch's semantics
and parameter names (torch.nn.RNN / GRU / LSTM with batch_first=False).

cell: "lstm", "gru", "rnn_tanh" (or "rnn"), "rnn_relu". gru_reset: "after" (PyTorch/cuDNN)
or "before" (Cho et al. 2014). proj_size: LSTM projection (PyTorch's LSTMP). peephole: LSTM
peephole connections (weight_peep_l*, not in PyTorch). dropout: between layers, in training
forwards only. Parameters start as PyTorch's default U(-1/sqrt(H), 1/sqrt(H)), drawn from `seed`.
dtype: float32 (recur's training precision; oneDNN where it applies) or float64.

Arrays: results are recur's own memory handed to numpy (no copy); state_dict() returns
writable views of the parameters; inputs are copied once into the layer (backward needs them).)")
      .def(py::init(&make_rnn), py::arg("cell"), py::arg("input_size"), py::arg("hidden_size"), py::arg("num_layers") = 1,
           py::kw_only(), py::arg("bidirectional") = false, py::arg("proj_size") = 0, py::arg("peephole") = false,
           py::arg("bias") = true, py::arg("gru_reset") = "after", py::arg("dropout") = 0.0, py::arg("seed") = 1,
           py::arg("dtype") = "float32")
      .def(
          "forward",
          [](PyRnn& r, const py::object& input, const py::object& lengths, const py::object& h0, const py::object& c0,
             bool training, const std::string& backend) {
            return r.f64 ? run_forward(r, r.d, input, lengths, h0, c0, training, backend)
                         : run_forward(r, r.f, input, lengths, h0, c0, training, backend);
          },
          py::arg("input"), py::arg("lengths") = py::none(), py::arg("h0") = py::none(), py::arg("c0") = py::none(),
          py::kw_only(), py::arg("training") = false, py::arg("backend") = "auto",
          R"(forward(input, lengths=None, h0=None, c0=None, *, training=False, backend="auto")

input [T, B, I] (time-major). lengths [B] with 1 <= lengths[b] <= T, or None for all T: as
PyTorch's packed sequences (outputs past a length are zero, h_n is each sequence's state after
its last step). h0 [L*D, B, R] and c0 [L*D, B, H] (LSTM): initial states, None for zeros.
training: dropout between layers. backend: "auto", "reference" or "onednn" (rnn.h RnnBackend).

Returns output [T, B, D*R] and h_n [L*D, B, R], or for an LSTM output, (h_n, c_n), as PyTorch.
The forward is kept for backward().)")
      .def(
          "__call__",
          [](PyRnn& r, const py::object& input, const py::object& lengths, const py::object& h0, const py::object& c0,
             bool training) {
            return r.f64 ? run_forward(r, r.d, input, lengths, h0, c0, training, "auto")
                         : run_forward(r, r.f, input, lengths, h0, c0, training, "auto");
          },
          py::arg("input"), py::arg("lengths") = py::none(), py::arg("h0") = py::none(), py::arg("c0") = py::none(),
          py::kw_only(), py::arg("training") = false, "Same as forward().")
      .def(
          "backward",
          [](PyRnn& r, const py::object& grad_output, const py::object& grad_h_n, const py::object& grad_c_n) {
            return r.f64 ? run_backward(r, r.d, grad_output, grad_h_n, grad_c_n)
                         : run_backward(r, r.f, grad_output, grad_h_n, grad_c_n);
          },
          py::arg("grad_output"), py::arg("grad_h_n") = py::none(), py::arg("grad_c_n") = py::none(),
          R"(backward(grad_output, grad_h_n=None, grad_c_n=None)

Backward through time of the last forward: grad_output [T, B, D*R] is dLoss/doutput (values
past a length are ignored), grad_h_n / grad_c_n the final states' gradients (None for zeros).
Returns (grad_input [T, B, I], grad_h0, grad_c0 (None unless LSTM), grads), grads a dict of
the parameters' gradients under their state_dict names. May be called again on the same
forward (the forward's record is not consumed).)")
      .def(
          "state_dict", [](py::object self) {
            PyRnn& r = self.cast<PyRnn&>();
            return r.f64 ? state_dict(r, r.d, self) : state_dict(r, r.f, self);
          },
          "Parameters as writable numpy views under PyTorch's names (weight_ih_l0, bias_hh_l1_reverse,\n"
          "weight_hr_l0, ...): torch.nn.LSTM(...).load_state_dict({k: torch.from_numpy(v) ...}) takes them.")
      .def(
          "load_state_dict", [](PyRnn& r, const py::dict& d) { r.f64 ? load_state_dict(r, r.d, d) : load_state_dict(r, r.f, d); },
          py::arg("state_dict"),
          "Copies every parameter from a dict of arrays (numpy, or anything numpy converts, e.g. a\n"
          "torch state_dict) under PyTorch's names; strict: a missing, extra or misshapen tensor raises\n"
          "recur.Error and changes nothing. Views from state_dict() stay valid.")
      .def_property_readonly("cell", [](const PyRnn& r) { return std::string(cell_name(r.cfg.cell)); })
      .def_property_readonly("gru_reset", [](const PyRnn& r) { return std::string(gru_reset_name(r.cfg.gru_reset)); })
      .def_property_readonly("input_size", [](const PyRnn& r) { return r.cfg.input_size; })
      .def_property_readonly("hidden_size", [](const PyRnn& r) { return r.cfg.hidden_size; })
      .def_property_readonly("proj_size", [](const PyRnn& r) { return r.cfg.proj_size; })
      .def_property_readonly("num_layers", [](const PyRnn& r) { return r.cfg.num_layers; })
      .def_property_readonly("bidirectional", [](const PyRnn& r) { return r.cfg.bidirectional; })
      .def_property_readonly("peephole", [](const PyRnn& r) { return r.cfg.peephole; })
      .def_property_readonly("bias", [](const PyRnn& r) { return r.cfg.bias; })
      .def_property_readonly("dropout", [](const PyRnn& r) { return r.cfg.dropout; })
      .def_property_readonly("dtype", [](const PyRnn& r) { return r.f64 ? py::dtype::of<double>() : py::dtype::of<float>(); })
      .def("__repr__", [](const PyRnn& r) {
        const RnnConfig& c = r.cfg;
        return "recur.RNN(" + std::string(cell_name(c.cell)) + ", input_size=" + std::to_string(c.input_size) +
               ", hidden_size=" + std::to_string(c.hidden_size) + ", num_layers=" + std::to_string(c.num_layers) +
               (c.bidirectional ? ", bidirectional=True" : "") +
               (c.proj_size ? ", proj_size=" + std::to_string(c.proj_size) : "") + (c.peephole ? ", peephole=True" : "") +
               (r.f64 ? ", dtype=float64" : "") + ")";
      });
}

}  // namespace recur::python
