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

Precision: a case's optional "precision" (f32 default; bf16 or int8 for generate cases, see the
cases file's _doc) is shown in the case column where its name does not already say it. A
compressed case has its f32 counterpart's shapes, so it counts the same FLOPs (GFLOP/s is
"f32-equivalent"). Implementations without a compressed path (oneDNN) show "-". A second table,
"compressed generation", sets each compressed row beside the f32 row of the same model
(same kind, mode, cell and sizes) at the same thread count: "x f32" = tokens/s of the
compressed row / tokens/s of the f32 row, per implementation (> 1: compression is faster), and
recur/PyTorch compares the two at the same precision.
"""
import json
import statistics
import sys
from collections import defaultdict

GATES = {"lstm": 4, "gru": 3, "rnn_tanh": 1}
PRECISIONS = {"f32": "f32", "fp32": "f32", "float32": "f32", "bf16": "bf16", "bfloat16": "bf16", "int8": "int8"}
SHAPE_FIELDS = ("kind", "mode", "cell", "vocab", "embed", "hidden", "layers", "batch", "steps", "tags")


def precision(c):
    return PRECISIONS.get(c.get("precision", "f32"), c.get("precision"))


def shown_name(c):
    """The case name, with its precision added where the name does not say it."""
    p = precision(c)
    return c["name"] if p == "f32" or p in c["name"] else f"{c['name']} ({p})"


def f32_counterpart(c, cases):
    """The f32 case with the same shapes as compressed case c, or None."""
    shape = tuple(c.get(k) for k in SHAPE_FIELDS)
    for other in cases.values():
        if precision(other) == "f32" and tuple(other.get(k) for k in SHAPE_FIELDS) == shape:
            return other["name"]
    return None


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
            row = [shown_name(c), str(t)]
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

    compressed = [n for n in order if precision(cases[n]) != "f32"]
    if compressed and any(rate(i, n, t) for i in impls for n in compressed for t in threads):
        print()
        print("Lower precision (bf16 mixed-precision training and forward, bf16/int8 generation): tokens/s "
              "(ms per token for generation) at the case's precision; x f32 = tokens/s over the same "
              "implementation's f32 row of the same model, mode and thread count (> 1: faster than f32); "
              "recur/PyTorch at the same precision.")
        print()
        cimpls = [i for i in ("recur", "pytorch") if i in impls]
        head = ["case", "f32 row", "thr"]
        for i in cimpls:
            head += [f"{i} tok/s", f"{i} x f32"]
        if len(cimpls) == 2:
            head.append("recur/PyTorch")
        print("| " + " | ".join(head) + " |")
        print("|" + "---|" * 3 + "---:|" * (len(head) - 3))
        for name in compressed:
            base = f32_counterpart(cases[name], cases)
            for t in threads:
                rates = {i: rate(i, name, t) for i in cimpls}
                if not any(rates.values()):
                    continue
                row = [shown_name(cases[name]), base or "-", str(t)]
                for i in cimpls:
                    r, b = rates[i], rate(i, base, t) if base else None
                    row.append(f"{fmt_rate(r[0])} ({1e3 / r[0]:.3f} ms)" if r else "-")
                    row.append(f"**{r[0] / b[0]:.2f}**" if r and b else "-")
                if len(cimpls) == 2:
                    a, b = rates["recur"], rates["pytorch"]
                    row.append(f"**{a[0] / b[0]:.2f}**" if a and b else "-")
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
                print(f"| {shown_name(cases[name])} | {t} | " + " | ".join(cells) + " |")

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
