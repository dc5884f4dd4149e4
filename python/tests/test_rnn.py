"""recur.RNN: forward and backward against PyTorch's goldens (tests/golden/rnn, the same files
the C++ suite checks), bit for bit against the C++ library run on the same case, against
torch.nn.LSTM/GRU/RNN where torch is installed, and its arrays and errors."""
import glob
import os
import subprocess

import numpy as np
import pytest

import recur
from conftest import GOLDEN_DIR, RNN_REFERENCE

CASES = sorted(glob.glob(os.path.join(GOLDEN_DIR, "rnn", "*.safetensors")))


def test_goldens_present():
    # The parametrised tests below must not pass by having nothing to run.
    assert len(CASES) >= 20, GOLDEN_DIR


def case_id(path):
    return os.path.basename(path)[: -len(".safetensors")]


def load_case(path):
    tensors, meta = recur.load_safetensors(path)
    layer_kw = dict(
        num_layers=int(meta["num_layers"]),
        bidirectional=meta["bidirectional"] != "0",
        proj_size=int(meta["proj_size"]),
    )
    lengths = [int(n) for n in meta["lengths"].split(",")]
    steps = tensors["input"].shape[0]
    return tensors, meta, layer_kw, (None if all(n == steps for n in lengths) else lengths)


def run_case(path, dtype):
    """The golden case through recur.RNN: (results by golden name, the layer)."""
    t, meta, kw, lengths = load_case(path)
    layer = recur.RNN(meta["cell"], int(meta["input_size"]), int(meta["hidden_size"]), dtype=dtype, **kw)
    names = list(layer.state_dict())
    layer.load_state_dict({n: t[n] for n in names})
    lstm = layer.cell == "lstm"
    cast = lambda a: np.ascontiguousarray(a, dtype=dtype)  # noqa: E731
    out, state = layer.forward(cast(t["input"]), lengths, cast(t["h0"]), cast(t["c0"]) if lstm else None)
    h_n, c_n = state if lstm else (state, None)
    gi, gh0, gc0, grads = layer.backward(cast(t["grad_output"]), cast(t["grad_h_n"]),
                                         cast(t["grad_c_n"]) if lstm else None)
    got = {"output": out, "h_n": h_n, "grad.input": gi, "grad.h0": gh0}
    if lstm:
        got.update({"c_n": c_n, "grad.c0": gc0})
    else:
        assert c_n is None and gc0 is None
    got.update({"grad." + n: g for n, g in grads.items()})
    assert set(grads) == set(names)
    return got, layer


def rel_err(got, want):
    return np.max(np.abs(got.astype(np.float64) - want)) / max(np.max(np.abs(want)), 1e-30)


@pytest.mark.parametrize("path", CASES, ids=case_id)
@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-9), (np.float32, 1e-4)], ids=["float64", "float32"])
def test_matches_pytorch_golden(path, dtype, tol):
    golden, _ = recur.load_safetensors(path)
    got, _ = run_case(path, dtype)
    for name, value in got.items():
        assert value.dtype == dtype, name
        assert value.shape == golden[name].shape, name
        assert rel_err(value, golden[name]) <= tol, f"{name}: relative error {rel_err(value, golden[name])}"


@pytest.mark.parametrize("path", CASES, ids=case_id)
@pytest.mark.parametrize("dtype,name", [(np.float32, "float"), (np.float64, "double")])
def test_equals_cpp_library(path, dtype, name, tmp_path):
    out = tmp_path / "cpp.safetensors"
    subprocess.run([RNN_REFERENCE, path, str(out), name], check=True)
    cpp, _ = recur.load_safetensors(str(out))
    got, _ = run_case(path, dtype)
    assert set(cpp) == set(got)
    for key, value in got.items():
        assert np.array_equal(value, cpp[key]), key


def test_results_and_parameters_are_not_copied():
    layer = recur.RNN("lstm", 3, 4, 2)
    sd = layer.state_dict()
    w = sd["weight_ih_l0"]
    # A view of the layer's own memory: the same pointer every time, not owning its data ...
    assert layer.state_dict()["weight_ih_l0"].ctypes.data == w.ctypes.data
    assert not w.flags.owndata and w.flags.writeable and w.flags.c_contiguous
    x = np.random.default_rng(0).standard_normal((5, 2, 3)).astype(np.float32)
    out1, _ = layer(x)
    # ... so writing into it changes the layer.
    w[:] = 0
    layer2 = recur.RNN("lstm", 3, 4, 2)
    assert np.all(layer.state_dict()["weight_ih_l0"] == 0)
    out2, _ = layer(x)
    assert not np.array_equal(out1, out2)
    # load_state_dict copies into the same memory: earlier views stay valid.
    layer.load_state_dict(layer2.state_dict())
    assert layer.state_dict()["weight_ih_l0"].ctypes.data == w.ctypes.data
    assert np.array_equal(w, layer2.state_dict()["weight_ih_l0"])
    # Results are recur's buffers handed over (a capsule owns them), not copies.
    out, (h, c) = layer(x)
    for a in (out, h, c):
        assert not a.flags.owndata and type(a.base).__name__ == "PyCapsule"
        assert a.dtype == np.float32 and a.flags.c_contiguous
    gi, gh, gc, grads = layer.backward(np.ones_like(out))
    for a in (gi, gh, gc, *grads.values()):
        assert type(a.base).__name__ == "PyCapsule"
    # Distinct buffers per result: a later call does not change an earlier result.
    before = out.copy()
    layer(2 * x)
    assert np.array_equal(out, before)


def test_lengths_zero_outputs_past_the_end():
    layer = recur.RNN("gru", 2, 3, bidirectional=True)
    x = np.ones((4, 2, 2), np.float32)
    out, h_n = layer(x, lengths=[4, 2])
    assert out.shape == (4, 2, 6) and h_n.shape == (2, 2, 3)
    assert np.all(out[2:, 1] == 0) and np.any(out[:2, 1] != 0)


def test_errors_carry_recur_messages():
    layer = recur.RNN("lstm", 3, 4)
    with pytest.raises(recur.ShapeError, match=r"^input: expected \[T, B, 3\] \(time-major\), got \[2, 3\]$"):
        layer(np.zeros((2, 3), np.float32))
    with pytest.raises(recur.Error, match=r"^backward: no forward to differentiate; call forward first$"):
        layer.backward(np.zeros((1, 1, 4), np.float32))
    with pytest.raises(recur.ShapeError, match=r"^h0: expected shape \[1, 2, 4\], got \[1, 1, 4\]$"):
        layer(np.zeros((5, 2, 3), np.float32), h0=np.zeros((1, 1, 4), np.float32))
    layer(np.zeros((5, 2, 3), np.float32))
    with pytest.raises(recur.ShapeError, match=r"^grad_output: expected shape \[5, 2, 4\], got \[5, 2, 3\]$"):
        layer.backward(np.zeros((5, 2, 3), np.float32))
    with pytest.raises(recur.Error, match=r"^c0: a gru layer has no cell state; only an LSTM takes c0$"):
        recur.RNN("gru", 3, 4)(np.zeros((1, 1, 3)), c0=np.zeros((1, 1, 4)))
    with pytest.raises(recur.Error, match=r"^load_state_dict: missing tensor 'bias_hh_l0'$"):
        layer.load_state_dict({k: v for k, v in layer.state_dict().items() if k != "bias_hh_l0"})
    with pytest.raises(recur.ShapeError, match=r"^weight_ih_l0: expected shape \[16, 3\], got \[3, 16\]$"):
        layer.load_state_dict({k: (v.T if k == "weight_ih_l0" else v) for k, v in layer.state_dict().items()})
    with pytest.raises(recur.Error, match=r"^dtype: got int32, expected float32 or float64$"):
        recur.RNN("lstm", 3, 4, dtype="int32")
    with pytest.raises(recur.Error, match="cell"):
        recur.RNN("transformer", 3, 4)
    # recur.Error is a ValueError.
    with pytest.raises(ValueError):
        recur.RNN("lstm", 0, 4)


TORCH_MODULES = {"lstm": "LSTM", "gru": "GRU", "rnn_tanh": "RNN", "rnn_relu": "RNN"}


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn_tanh", "rnn_relu"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_weights_both_ways_with_torch(cell, bidirectional):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    kw = dict(num_layers=2, bidirectional=bidirectional)
    extra = {"nonlinearity": "relu" if cell == "rnn_relu" else "tanh"} if cell.startswith("rnn") else {}
    ref = getattr(torch.nn, TORCH_MODULES[cell])(5, 7, **kw, **extra).double()
    layer = recur.RNN(cell, 5, 7, dtype="float64", **kw)
    # torch -> recur: strict, by PyTorch's names.
    layer.load_state_dict({k: v.detach().numpy() for k, v in ref.state_dict().items()})
    x = np.random.default_rng(1).standard_normal((6, 3, 5))
    out, state = layer(x)
    want, want_state = ref(torch.from_numpy(x))
    assert np.max(np.abs(out - want.detach().numpy())) < 1e-12
    h = state[0] if cell == "lstm" else state
    want_h = want_state[0] if cell == "lstm" else want_state
    assert np.max(np.abs(h - want_h.detach().numpy())) < 1e-12
    # recur -> torch: a fresh module takes recur's dict with strict=True.
    fresh = recur.RNN(cell, 5, 7, dtype="float64", seed=9, **kw)
    mod = getattr(torch.nn, TORCH_MODULES[cell])(5, 7, **kw, **extra).double()
    mod.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in fresh.state_dict().items()}, strict=True)
    out2, _ = fresh(x)
    assert np.max(np.abs(out2 - mod(torch.from_numpy(x))[0].detach().numpy())) < 1e-12
