#!/usr/bin/python3
"""PyTorch reference for bench/bench_rnn.cpp: one nn.LSTM / nn.GRU / nn.RNN(tanh) layer,
unidirectional, input size = H, float32, T = 100, H in {128, 512, 1024} x B in {1, 32};
forward under torch.no_grad() and forward + backward (weight and input gradients).

Same counters and flop formula as the C++ benchmark (GEMM multiply-adds only):
  forward  = 2 * T * B * G * H * (I + H),  forward + backward = 3 * forward.

Run with Debian's interpreter, which has python3-torch (the pyenv python3 on PATH does not):
  /usr/bin/python3 bench/torch_rnn_layer.py --threads 1 [--json out.json]
Select the OpenMP OpenBLAS build with
  LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-openmp
(the script prints the BLAS library it actually mapped).
"""
import argparse
import json
import os
import sys
import time

import torch

T = 100
GATES = {"lstm": 4, "gru": 3, "rnn_tanh": 1}


def loaded_blas():
    """The BLAS/LAPACK shared objects mapped into this process (after a matmul has run)."""
    libs = set()
    with open("/proc/self/maps") as f:
        for line in f:
            path = line.split()[-1] if len(line.split()) >= 6 else ""
            name = os.path.basename(path)
            if any(k in name for k in ("blas", "lapack", "mkl", "gomp", "omp")):
                libs.add(path)
    return sorted(libs)


def make_layer(cell, hidden):
    if cell == "lstm":
        return torch.nn.LSTM(hidden, hidden, 1)
    if cell == "gru":
        return torch.nn.GRU(hidden, hidden, 1)
    return torch.nn.RNN(hidden, hidden, 1, nonlinearity="tanh")


def time_case(step, min_time):
    """Mean seconds per call, like Google Benchmark: one warm-up call, then repeat the call
    (in growing batches) until at least min_time of wall clock has been measured."""
    step()
    iters, elapsed = 0, 0.0
    batch = 1
    while elapsed < min_time:
        start = time.perf_counter()
        for _ in range(batch):
            step()
        elapsed += time.perf_counter() - start
        iters += batch
        batch = min(batch * 2, 64)
    return elapsed / iters, iters


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--min-time", type=float, default=0.2)
    ap.add_argument("--peak-gflops", type=float, default=float(os.environ.get("RECUR_PEAK_GFLOPS", "115")),
                    help="per-thread peak for peak_pct (env RECUR_PEAK_GFLOPS, default 115)")
    ap.add_argument("--filter", default="", help="substring of the case name, e.g. lstm/fwd")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(1234)
    torch.ones(64, 64) @ torch.ones(64, 64)  # make sure the BLAS is loaded before reading maps
    blas = loaded_blas()
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, BLAS mapped: {', '.join(blas) or '?'}")
    print(f"{'case':<28} {'ms/iter':>10} {'tokens/s':>12} {'GFLOP/s':>9} {'peak%':>7}")

    results = []
    for cell in ("lstm", "gru", "rnn_tanh"):
        for mode in ("fwd", "fwd_bwd"):
            for hidden in (128, 512, 1024):
                for batch in (1, 32):
                    name = f"{cell}/{mode}/H:{hidden}/B:{batch}"
                    if args.filter not in name:
                        continue
                    layer = make_layer(cell, hidden).float()
                    x = torch.empty(T, batch, hidden).uniform_(-1, 1)
                    if mode == "fwd":
                        def step():
                            with torch.no_grad():
                                layer(x)
                    else:
                        x.requires_grad_(True)
                        grad_out = torch.empty(T, batch, hidden).uniform_(-1, 1)

                        def step():
                            # Same work as the C++ case: zeroed weight gradients, input gradient.
                            layer.zero_grad(set_to_none=True)
                            x.grad = None
                            out, _ = layer(x)
                            out.backward(grad_out)
                    secs, iters = time_case(step, args.min_time)
                    flops = 2.0 * T * batch * GATES[cell] * hidden * (hidden + hidden)
                    if mode == "fwd_bwd":
                        flops *= 3
                    r = {
                        "name": name,
                        "ms": secs * 1e3,
                        "iterations": iters,
                        "tokens_per_s": T * batch / secs,
                        "gflops": flops / secs * 1e-9,
                        "peak_pct": 100 * flops / secs * 1e-9 / (args.peak_gflops * args.threads),
                    }
                    results.append(r)
                    print(f"{name:<28} {r['ms']:>10.3f} {r['tokens_per_s']:>12.0f} {r['gflops']:>9.2f} "
                          f"{r['peak_pct']:>7.1f}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"torch": torch.__version__, "threads": torch.get_num_threads(), "blas": blas,
                       "results": results}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
