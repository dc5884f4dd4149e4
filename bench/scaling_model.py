#!/usr/bin/env python3
"""Projected data-parallel efficiency of recur on N nodes (docs/distributed.md, BENCHMARKS.md).

Weak scaling: every node keeps the per-node batch of the measured one-node run, so its compute
per step stays T_c; the step grows by the gradient sum. A ring allreduce of S bytes over N nodes
moves 2 (N-1)/N S bytes through each node's link and takes 2 (N-1) latency steps per bucket:

    T_comm(N) = 2 (N-1)/N * S / BW  +  2 (N-1) * buckets * alpha
    efficiency = T_c / (T_c + T_comm)

with no credit for the overlap with backward, so it is a lower bound: on this machine the
overlap hid about 70% of the char model's sum (docs/distributed.md). T_c is the measured
1 process x 2 threads step of bench/distributed.sh (one 2-core node); for a node k times
faster, divide T_c by k (and the efficiency falls accordingly).

  python3 bench/scaling_model.py [char_step_ms ptb_step_ms]
"""
import math
import sys

BUCKET = 4 << 20  # bytes: the training loop's bucket size (src/train/loop.cpp, kBucketFloats);
# it never splits a parameter, so the real count can be lower: the latency term is an upper bound
MODELS = [  # name, parameters (floats), measured node step ms (1 x 2 threads), overridable
    ("char LSTM 2x512", 3322497, 227.1),
    ("PTB small", 4653200, 83.7),
]
LINKS = [  # name, bytes/s, per-message latency alpha in s (TCP over Ethernet; RDMA fabrics)
    ("10 Gb/s Ethernet", 10e9 / 8, 10e-6),
    ("25 Gb/s Ethernet", 25e9 / 8, 10e-6),
    ("100 Gb/s InfiniBand", 100e9 / 8, 2e-6),
    ("200 Gb/s InfiniBand", 200e9 / 8, 2e-6),
]
NODES = [2, 8, 64]


def main():
    steps = [float(x) for x in sys.argv[1:3]]
    print("| model | gradient MB | node step ms | link | " +
          " | ".join(f"N={n}: sum ms, efficiency" for n in NODES) + " |")
    print("|---|---:|---:|---|" + "---:|" * len(NODES))
    for i, (name, params, step_ms) in enumerate(MODELS):
        if i < len(steps):
            step_ms = steps[i]
        size = 4 * params
        buckets = math.ceil(size / BUCKET)
        for link, bw, alpha in LINKS:
            cells = []
            for n in NODES:
                comm = 2 * (n - 1) / n * size / bw + 2 * (n - 1) * buckets * alpha
                comm_ms = 1e3 * comm
                cells.append(f"{comm_ms:.1f}, {step_ms / (step_ms + comm_ms):.2f}")
            print(f"| {name} | {size / 1e6:.1f} | {step_ms:.1f} | {link} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
