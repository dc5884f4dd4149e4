#!/usr/bin/env python3
"""The speed suite's table (issue 7), from the JSON lines that bench/suite.sh collected.

    python3 bench/suite_table.py RESULTS.jsonl bench/suite_cases.json

Each line of RESULTS.jsonl is one run of one implementation (recur, pytorch, onednn) on one
case at one thread count ({"impl", "case", "threads", "times_s", "tokens_per_repeat", ...}),
or a measured FMA peak ({"impl": "fma_peak", "threads", "gflops"}). Runs of the same
(impl, case, threads) from several rounds are pooled.

Throughput is tokens per second: tokens_per_repeat / time of one repeat (median, min, max over
the pooled repeats). GFLOP/s counts the matrix products only:
  recurrent layer, per layer and direction: 2 * T * B * G * H * (I + H)   (G = 4 LSTM, 3 GRU, 1 RNN)
  output layer:                              2 * T * B * V * (D * H)
  a training step counts 3x the forward (forward, input gradient, weight gradient); the
  element-wise gate work, softmax and optimizer are not counted, so GFLOP/s is a lower bound of
  the work done. peak% divides by the measured FMA peak at the same thread count.
"""
import json
import statistics
import sys
from collections import defaultdict

GATES = {"lstm": 4, "gru": 3, "rnn_tanh": 1}


def forward_flops(c, tokens):
    """Matrix-product FLOPs of a forward over `tokens` = T*B positions."""
    g, h = GATES[c["cell"]], c["hidden"]
    dirs = 2 if c["kind"] == "tagger" else 1
    flops = 0
    for layer in range(c["layers"]):
        inp = c["embed"] if layer == 0 else dirs * h
        flops += dirs * 2 * tokens * g * h * (inp + h)
    out = c["tags"] if c["kind"] == "tagger" else c["vocab"]
    return flops + 2 * tokens * out * dirs * h


def flops_per_repeat(c):
    if c["mode"] == "generate":
        return forward_flops(c, 1) * c["steps"]
    f = forward_flops(c, c["steps"] * c["batch"])
    return 3 * f if c["mode"] == "train" else f


def fmt_rate(x):
    if x is None:
        return "-"
    return f"{x / 1e3:.1f}k" if x >= 1e4 else f"{x:.0f}"


def main():
    results_path, cases_path = sys.argv[1], sys.argv[2]
    cases = {c["name"]: c for c in json.load(open(cases_path))["cases"]}
    order = list(cases)
    runs = defaultdict(list)  # (impl, case, threads) -> [seconds per repeat]
    meta = {}
    peak = {}
    for line in open(results_path):
        line = line.strip()
        if not line.startswith("{"):
            continue
        r = json.loads(line)
        if r["impl"] == "fma_peak":
            peak[r["threads"]] = max(peak.get(r["threads"], 0), r["gflops"])
            continue
        key = (r["impl"], r["case"], r["threads"])
        runs[key] += r["times_s"]
        meta[key] = r
    threads = sorted({k[2] for k in runs})
    impls = [i for i in ("recur", "pytorch", "onednn") if any(k[0] == i for k in runs)]

    def rate(impl, case, t):
        times = runs.get((impl, case, t))
        if not times:
            return None
        tok = meta[(impl, case, t)]["tokens_per_repeat"]
        return tok / statistics.median(times), tok / max(times), tok / min(times)

    print("BLAS mapped: " + "; ".join(
        f"{i} {meta[k]['blas']}" for i in impls for k in [next(k for k in meta if k[0] == i)]))
    print("measured FMA peak: " + ", ".join(f"{t} thread(s) {peak[t]:.0f} GFLOP/s" for t in sorted(peak)))
    print()
    print("Throughput in tokens/s: median (min-max); for generation, tokens/s and ms per token. "
          "Ratios > 1: recur faster.")
    print()
    head = ["case", "thr"] + [f"{i} tok/s" for i in impls]
    if "pytorch" in impls:
        head.append("recur/PyTorch")
    if "onednn" in impls:
        head.append("recur/oneDNN")
    head += [f"{i} GFLOP/s (peak%)" for i in impls]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * 2 + "---:|" * (len(head) - 2))
    for name in order:
        c = cases[name]
        for t in threads:
            rates = {i: rate(i, name, t) for i in impls}
            if not any(rates.values()):
                continue
            row = [name, str(t)]
            for i in impls:
                r = rates[i]
                if r is None:
                    row.append("-")
                elif c["mode"] == "generate":
                    row.append(f"{fmt_rate(r[0])} ({1e3 / r[0]:.3f} ms)")
                else:
                    row.append(f"{fmt_rate(r[0])} ({fmt_rate(r[1])}-{fmt_rate(r[2])})")
            for other in ("pytorch", "onednn"):
                if other in impls:
                    a, b = rates["recur"], rates[other]
                    row.append(f"**{a[0] / b[0]:.2f}**" if a and b else "-")
            for i in impls:
                r = rates[i]
                if r is None:
                    row.append("-")
                    continue
                gf = flops_per_repeat(c) * r[0] / c_tokens(c) / 1e9
                pk = peak.get(t)
                row.append(f"{gf:.1f} ({100 * gf / pk:.0f}%)" if pk else f"{gf:.1f}")
            print("| " + " | ".join(row) + " |")

    print()
    print("Peak resident memory in MiB: whole process (growth from just before the model was built).")
    print()
    print("| case | thr | " + " | ".join(impls) + " |")
    print("|---|---:|" + "---:|" * len(impls))
    for name in order:
        for t in threads:
            cells = []
            for i in impls:
                m = meta.get((i, name, t))
                cells.append(f"{m['rss_peak_mb']:.0f} (+{m['rss_peak_mb'] - m['rss_base_mb']:.0f})" if m else "-")
            if any(x != "-" for x in cells):
                print(f"| {name} | {t} | " + " | ".join(cells) + " |")

    print()
    print("Same result whatever the thread count: first-step loss per implementation.")
    print()
    for i in impls:
        worst, shown = 0.0, []
        for name in order:
            losses = [meta[(i, name, t)]["loss_first"] for t in threads
                      if (i, name, t) in meta and meta[(i, name, t)]["loss_first"] is not None]
            if len(losses) > 1:
                rel = (max(losses) - min(losses)) / abs(losses[0])
                worst = max(worst, rel)
        print(f"- {i}: largest relative difference of the first-step loss across thread counts: {worst:.1e}")


def c_tokens(c):
    return c["steps"] * (1 if c["mode"] == "generate" else c["batch"])


if __name__ == "__main__":
    main()
