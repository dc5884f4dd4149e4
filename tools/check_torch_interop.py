#!/usr/bin/env python3
"""Loads a safetensors file written by recur into the matching torch.nn RNN/GRU/LSTM.

    /usr/bin/python3 tools/check_torch_interop.py FILE [--cell lstm] [--prefix P]
                                                  [--dump OUT] [--tol 1e-5]

FILE holds the network's parameters under PyTorch's state_dict names (optionally below
--prefix) and __metadata__ "cell" (recur's cell name, unless --cell is given); sizes, layers,
directions, bias and projection are read off the shapes like recur's rnn_infer_config.
The parameters are loaded with load_state_dict(strict=True), so a missing, extra or
misshapen tensor fails here exactly as it would for a PyTorch user.

Optional tensors in FILE (names without the prefix):
  input [T, B, I]   runs a forward pass (eval mode, batch_first=False)
  lengths [B]       integer lengths, run as a packed sequence (outputs past a length are 0)
  h0, c0            initial state [L*D, B, R] and [L*D, B, H]
  output, h_n, c_n  recur's results: their max abs difference from PyTorch's is printed as
                    "max_abs_diff <value>" and the exit status is 1 if it exceeds --tol

--dump OUT writes PyTorch's state_dict (same names) plus input and PyTorch's output, h_n,
c_n to OUT, so the caller can check the parameters came back bit-identical.
Exit status: 0 ok, 1 mismatch or load failure, 2 unsupported configuration.
"""

import argparse
import os
import re
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_torch  # noqa: E402

PARAM = re.compile(r"^(weight_ih|weight_hh|bias_ih|bias_hh|weight_hr|weight_peep)_l(0|[1-9][0-9]*)(_reverse)?$")
GATES = {"rnn_tanh": 1, "rnn_relu": 1, "rnn": 1, "gru": 3, "lstm": 4}
INT_VIEW = {torch.float64: torch.int64, torch.float32: torch.int32, torch.float16: torch.int16,
            torch.bfloat16: torch.int16}


def fail(msg, status=1):
    print(f"check_torch_interop: {msg}", file=sys.stderr)
    sys.exit(status)


def build_module(tensors, meta, cell, prefix):
    params = {}
    for name, t in tensors.items():
        if name.startswith(prefix):
            m = PARAM.match(name[len(prefix):])
            if m:
                params[name[len(prefix):]] = (m, t)
    if not params:
        fail(f"no RNN parameters under prefix {prefix!r}")
    if any(m.group(1) == "weight_peep" for m, _ in params.values()):
        fail("peephole LSTM has no torch.nn equivalent", 2)
    if cell == "gru" and meta.get("gru_reset", "after") != "after":
        fail("GRU with reset before the recurrent product has no torch.nn equivalent", 2)
    if "weight_ih_l0" not in params:
        fail(f"missing {prefix}weight_ih_l0")
    w_ih = params["weight_ih_l0"][1]  # [G*H, I]
    hidden = w_ih.shape[0] // GATES[cell]
    kwargs = dict(
        input_size=w_ih.shape[1],
        hidden_size=hidden,
        num_layers=1 + max(int(m.group(2)) for m, _ in params.values()),
        bias=any(m.group(1).startswith("bias") for m, _ in params.values()),
        bidirectional=any(m.group(3) for m, _ in params.values()),
    )
    if cell in ("rnn", "rnn_tanh", "rnn_relu"):
        module = torch.nn.RNN(nonlinearity="relu" if cell == "rnn_relu" else "tanh", **kwargs)
    elif cell == "gru":
        module = torch.nn.GRU(**kwargs)
    elif cell == "lstm":
        proj = params["weight_hr_l0"][1].shape[0] if "weight_hr_l0" in params else 0
        module = torch.nn.LSTM(proj_size=proj, **kwargs)
    else:
        fail(f"unknown cell {cell!r}", 2)
    module = module.to(w_ih.dtype).eval()
    state = {name: t for name, (_, t) in params.items()}
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as e:
        fail("load_state_dict(strict=True) refused the file: " + " ".join(str(e).split()))
    # load_state_dict copies with casting; compare bit patterns to prove nothing was rounded.
    for name, t in module.state_dict().items():
        a, b = t, state[name]
        if a.dtype != b.dtype or a.shape != b.shape or not torch.equal(a.view(INT_VIEW[a.dtype]), b.view(INT_VIEW[b.dtype])):
            fail(f"parameter {name} did not survive load_state_dict bit for bit")
    return module, kwargs


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("file")
    ap.add_argument("--cell", help="rnn_tanh, rnn_relu, gru or lstm (default: metadata 'cell')")
    ap.add_argument("--prefix", default="")
    ap.add_argument("--dump", help="write PyTorch's state_dict and results here")
    ap.add_argument("--tol", type=float, default=1e-5)
    args = ap.parse_args()

    try:
        tensors, meta = safetensors_torch.load(args.file)
    except (OSError, ValueError) as e:
        fail(str(e))
    cell = args.cell or meta.get("cell")
    if cell is None:
        fail("no --cell and no 'cell' in the file's metadata")
    module, _ = build_module(tensors, meta, cell, args.prefix)
    print(f"loaded {module} dtype={next(module.parameters()).dtype} with strict=True")

    results = {}
    if "input" in tensors:
        x = tensors["input"].to(next(module.parameters()).dtype)  # [T, B, I]
        state0 = None
        if "h0" in tensors:
            state0 = (tensors["h0"], tensors["c0"]) if cell == "lstm" else tensors["h0"]
        with torch.no_grad():
            if "lengths" in tensors:
                packed = torch.nn.utils.rnn.pack_padded_sequence(
                    x, tensors["lengths"].to(torch.int64), enforce_sorted=False)
                out, hn = module(packed, state0)
                out, _ = torch.nn.utils.rnn.pad_packed_sequence(out, total_length=x.shape[0])
            else:
                out, hn = module(x, state0)
        results["output"] = out
        if cell == "lstm":
            results["h_n"], results["c_n"] = hn
        else:
            results["h_n"] = hn

    worst = None
    for name, ours in results.items():
        if name in tensors:
            theirs = tensors[name].to(ours.dtype)
            if theirs.shape != ours.shape:
                fail(f"{name}: recur wrote shape {list(theirs.shape)}, PyTorch computed {list(ours.shape)}")
            diff = (theirs - ours).abs().max().item() if ours.numel() else 0.0
            print(f"{name}: max_abs_diff {diff:.3e}")
            worst = diff if worst is None else max(worst, diff)

    if args.dump:
        out = {args.prefix + k: v for k, v in module.state_dict().items()}
        out.update(results)
        if "input" in tensors:
            out["input"] = tensors["input"]
        safetensors_torch.save(out, args.dump, metadata={"cell": cell, "written_by": "torch " + torch.__version__})

    if worst is not None:
        print(f"max_abs_diff {worst:.6e}")
        if not worst <= args.tol:  # NaN fails too
            fail(f"max abs difference {worst:.3e} exceeds --tol {args.tol:.1e}")


if __name__ == "__main__":
    main()
