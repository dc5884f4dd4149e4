#!/usr/bin/python3
"""Generates the PyTorch golden files for recur's recurrent core (tests/golden/rnn/).

Run from anywhere with Debian's interpreter (python3-torch lives there, not in pyenv):

    /usr/bin/python3 tools/gen_rnn_golden.py [--out DIR]

For every case it builds a torch.nn.RNN/GRU/LSTM in float64 (bias=True, dropout 0), runs it on
a random input with nonzero random initial states, optionally packed with unsorted unequal
lengths, forms

    loss = sum(output * grad_output) + sum(h_n * grad_h_n) [+ sum(c_n * grad_c_n)]

with random upstream gradients (grad_output zeroed past every sequence's length) and calls
backward. Everything lands in one safetensors file per case, written by hand (struct + json, no
safetensors package needed): see tests/golden/rnn/README.md for the contents.

The output is deterministic: every case seeds torch from its own fixed seed, and the files are
written byte for byte the same way each time (tensors in name order, sorted JSON keys).
"""
import argparse
import json
import os
import struct
import sys

import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_OUT = os.path.join(REPO, "tests", "golden", "rnn")

# name, cell, I, H, P, L, bidirectional, T, lengths (len == B)
# Coverage: every cell (rnn_tanh, rnn_relu, gru, lstm, lstm+proj) appears with
#   1 layer uni equal, 1 layer uni unequal, 1 layer bi equal, 2 layers uni unequal,
#   2 layers bi unequal; plus a few extras (B=1, max(lengths) < T, 2 layers bi equal).
CASES = [
    # RNN tanh
    ("rnn_tanh_l1_uni_equal",   "rnn_tanh", 3, 4, 0, 1, False, 4, [4, 4]),
    ("rnn_tanh_l1_uni_unequal", "rnn_tanh", 3, 4, 0, 1, False, 5, [5, 2, 4]),
    ("rnn_tanh_l1_bi_equal",    "rnn_tanh", 4, 5, 0, 1, True,  3, [3, 3, 3]),
    ("rnn_tanh_l2_uni_unequal", "rnn_tanh", 4, 3, 0, 2, False, 5, [3, 5, 1]),
    ("rnn_tanh_l2_bi_unequal",  "rnn_tanh", 3, 4, 0, 2, True,  5, [5, 2, 4]),
    ("rnn_tanh_l2_bi_equal_b1", "rnn_tanh", 2, 3, 0, 2, True,  5, [5]),
    # RNN relu
    ("rnn_relu_l1_uni_equal",   "rnn_relu", 4, 5, 0, 1, False, 5, [5, 5, 5]),
    ("rnn_relu_l1_uni_unequal", "rnn_relu", 3, 4, 0, 1, False, 5, [2, 5, 4]),
    ("rnn_relu_l1_bi_equal",    "rnn_relu", 3, 4, 0, 1, True,  4, [4, 4]),
    ("rnn_relu_l2_uni_unequal", "rnn_relu", 4, 4, 0, 2, False, 5, [5, 1, 3]),
    ("rnn_relu_l2_bi_unequal",  "rnn_relu", 3, 4, 0, 2, True,  5, [5, 2, 4]),
    # GRU (reset after, PyTorch's formulation)
    ("gru_l1_uni_equal",        "gru", 3, 4, 0, 1, False, 4, [4, 4]),
    ("gru_l1_uni_unequal",      "gru", 4, 5, 0, 1, False, 5, [5, 2, 4]),
    ("gru_l1_bi_equal",         "gru", 3, 4, 0, 1, True,  3, [3, 3, 3]),
    ("gru_l2_uni_unequal",      "gru", 3, 4, 0, 2, False, 5, [1, 4, 5]),
    ("gru_l2_bi_unequal",       "gru", 3, 4, 0, 2, True,  5, [5, 2, 4]),
    ("gru_l1_bi_short",         "gru", 3, 3, 0, 1, True,  5, [4, 2, 3]),  # max(lengths) < T
    # LSTM
    ("lstm_l1_uni_equal",       "lstm", 3, 4, 0, 1, False, 4, [4, 4]),
    ("lstm_l1_uni_unequal",     "lstm", 4, 5, 0, 1, False, 5, [5, 2, 4]),
    ("lstm_l1_bi_equal",        "lstm", 3, 4, 0, 1, True,  3, [3, 3, 3]),
    ("lstm_l2_uni_unequal",     "lstm", 3, 4, 0, 2, False, 5, [3, 5, 1]),
    ("lstm_l2_bi_unequal",      "lstm", 3, 4, 0, 2, True,  5, [5, 2, 4]),
    ("lstm_l2_bi_short",        "lstm", 2, 3, 0, 2, True,  5, [3, 1, 4]),  # max(lengths) < T
    # LSTM with projection (LSTMP), P = 3 < H
    ("lstmp_l1_uni_equal",      "lstm", 3, 4, 3, 1, False, 4, [4, 4]),
    ("lstmp_l1_uni_unequal",    "lstm", 4, 5, 3, 1, False, 5, [5, 2, 4]),
    ("lstmp_l1_bi_equal",       "lstm", 3, 5, 3, 1, True,  3, [3, 3, 3]),
    ("lstmp_l2_uni_unequal",    "lstm", 3, 4, 3, 2, False, 5, [2, 5, 3]),
    ("lstmp_l2_bi_unequal",     "lstm", 3, 4, 3, 2, True,  5, [5, 2, 4]),
]


def make_module(cell, I, H, P, L, bi):
    common = dict(input_size=I, hidden_size=H, num_layers=L, bias=True, batch_first=False,
                  dropout=0.0, bidirectional=bi)
    if cell in ("rnn_tanh", "rnn_relu"):
        return torch.nn.RNN(nonlinearity=cell[4:], **common)
    if cell == "gru":
        return torch.nn.GRU(**common)
    if cell == "lstm":
        return torch.nn.LSTM(proj_size=P, **common)
    raise ValueError(cell)


def run_case(seed, name, cell, I, H, P, L, bi, T, lengths):
    torch.manual_seed(seed)
    B = len(lengths)
    D = 2 if bi else 1
    R = P if P > 0 else H
    is_lstm = cell == "lstm"
    assert all(1 <= n <= T for n in lengths), name

    mod = make_module(cell, I, H, P, L, bi)  # PyTorch default init U(-1/sqrt(H), 1/sqrt(H))
    params = dict(mod.named_parameters())

    x = torch.randn(T, B, I)
    h0 = 0.5 * torch.randn(L * D, B, R)
    c0 = 0.5 * torch.randn(L * D, B, H) if is_lstm else None
    valid = torch.zeros(T, B, 1)
    for b, n in enumerate(lengths):
        valid[:n, b] = 1.0
    grad_output = torch.randn(T, B, D * R) * valid  # recur ignores values past a length
    grad_h_n = torch.randn(L * D, B, R)
    grad_c_n = torch.randn(L * D, B, H) if is_lstm else None

    x.requires_grad_(True)
    h0.requires_grad_(True)
    if is_lstm:
        c0.requires_grad_(True)
    state0 = (h0, c0) if is_lstm else h0

    equal = all(n == T for n in lengths)
    if equal:
        out, state_n = mod(x, state0)
    else:
        packed = pack_padded_sequence(x, torch.tensor(lengths, dtype=torch.int64), enforce_sorted=False)
        out_packed, state_n = mod(packed, state0)
        out, out_lengths = pad_packed_sequence(out_packed, total_length=T)
        assert out_lengths.tolist() == lengths, (name, out_lengths)
    h_n, c_n = state_n if is_lstm else (state_n, None)
    assert out.shape == (T, B, D * R) and h_n.shape == (L * D, B, R), name

    loss = (out * grad_output).sum() + (h_n * grad_h_n).sum()
    if is_lstm:
        loss = loss + (c_n * grad_c_n).sum()
    loss.backward()

    tensors = {"input": x, "h0": h0, "output": out, "h_n": h_n, "grad_output": grad_output,
               "grad_h_n": grad_h_n, "grad.input": x.grad, "grad.h0": h0.grad}
    if is_lstm:
        tensors.update({"c0": c0, "c_n": c_n, "grad_c_n": grad_c_n, "grad.c0": c0.grad})
    for pname, p in params.items():
        tensors[pname] = p
        tensors["grad." + pname] = p.grad
    tensors = {k: v.detach().to(torch.float64).contiguous() for k, v in tensors.items()}

    # Sanity: PyTorch leaves padded outputs at zero and the input gradient there at zero.
    for b, n in enumerate(lengths):
        assert torch.all(tensors["output"][n:, b] == 0), name
        assert torch.all(tensors["grad.input"][n:, b] == 0), name

    metadata = {
        "cell": cell,
        "input_size": str(I),
        "hidden_size": str(H),
        "proj_size": str(P),
        "num_layers": str(L),
        "bidirectional": "1" if bi else "0",
        "lengths": ",".join(str(n) for n in lengths),
        "torch_version": torch.__version__,
    }
    return tensors, metadata


def safetensors_bytes(tensors, metadata):
    """The safetensors format by hand: u64 LE header length, JSON header padded with spaces to
    a multiple of 8, then the raw little-endian data of every tensor in name order."""
    header = {"__metadata__": metadata}
    chunks = []
    offset = 0
    for name in sorted(tensors):
        t = tensors[name]
        assert t.dtype == torch.float64
        raw = t.numpy().astype("<f8", copy=False).tobytes(order="C")
        assert len(raw) == 8 * t.numel()
        header[name] = {"dtype": "F64", "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode("utf-8")
    text += b" " * ((-len(text)) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(chunks)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=DEFAULT_OUT, help="output directory (default: %(default)s)")
    args = ap.parse_args()

    torch.set_default_dtype(torch.float64)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    os.makedirs(args.out, exist_ok=True)

    names = [c[0] for c in CASES]
    assert len(set(names)) == len(names), "duplicate case names"
    total = 0
    for i, case in enumerate(CASES):
        tensors, metadata = run_case(1000 + i, *case)
        data = safetensors_bytes(tensors, metadata)
        path = os.path.join(args.out, case[0] + ".safetensors")
        tmp = path + ".tmp"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
        total += len(data)
        print(f"{case[0]:28s} {len(data):7d} bytes")
    # Remove stale files of cases that no longer exist.
    for fname in sorted(os.listdir(args.out)):
        if fname.endswith(".safetensors") and fname[: -len(".safetensors")] not in names:
            os.remove(os.path.join(args.out, fname))
            print(f"removed stale {fname}")
    print(f"{len(CASES)} cases, {total} bytes in {args.out} (torch {torch.__version__})")


if __name__ == "__main__":
    sys.exit(main())
