#!/usr/bin/python3
"""PyTorch anchor of the speed suite: runs ONE case of bench/suite_cases.json per invocation.

  /usr/bin/python3 bench/torch_suite.py --cases bench/suite_cases.json --case NAME --threads N \
      [--warmup W] [--repeats R]
  /usr/bin/python3 bench/torch_suite.py --cases bench/suite_cases.json --list

Protocol (shared with bench/recur_suite.cpp and bench/dnnl_suite.cpp):
  * model, built the idiomatic PyTorch way after torch.manual_seed(1), default init:
    nn.Embedding(V, E) -> nn.LSTM / nn.GRU / nn.RNN(tanh) (time-major [T, B, E], `layers`
    layers, bidirectional for kind "tagger") -> nn.Linear(D*H, V or tags) -> mean
    cross-entropy over T*B.  Input ids and targets are uniform random ids, one fixed batch.
  * mode train: zero_grad(set_to_none) + forward + loss + backward + clip_grad_norm_(5)
    + Adam(lr 1e-3) step.  forward: forward + loss under torch.inference_mode().
    generate: batch 1, one token at a time under inference_mode (embedding -> rnn with T=1
    carrying the state -> linear -> softmax -> multinomial at temperature 1 -> next input).
  * precision (the case's optional "precision", default f32; generate cases only, any other
    case with bf16 or int8 is refused with exit 2).  PyTorch's closest equivalents of recur's
    compressed generation weights (StepperOptions::precision):
      int8  torch.ao.quantization.quantize_dynamic(model, {nn.LSTM, nn.Linear}, dtype=qint8)
            after building (torch.ao.nn.quantized.dynamic: int8 weights with per-tensor scales,
            recur's are per row; inputs quantised on the fly per call; the engine is
            torch.backends.quantized.engine, named in notes).
      bf16  generation under torch.autocast("cpu", dtype=bfloat16), PyTorch's closest
            equivalent (there is no bf16-weights/f32-math mode for nn.LSTM): autocast runs the
            products (the LSTM's per-step linears and the head) in bfloat16, inputs and weights
            cast to bfloat16, while the LSTM's cell math, state and output stay float32; the
            logits go back to float32 for softmax and sampling (notes record the dtypes).  The
            autocast region is entered once around all repeats, warm-up included: autocast
            caches the bfloat16 copies of the weights until its outermost region exits, so
            they are made once, as recur compresses its weights once when the stepper is built.
            (Entering it per token re-casts every weight per token: ~20 ms instead of ~0.8 ms
            per token for the 2x512 LSTM in torch 1.13.)
  * `warmup` untimed repeats (default 2), then `repeats` timed ones (default: the case's
    "repeats" field, else 5), each timed with time.perf_counter.  One repeat = one train step,
    one forward, or `steps` generated tokens.
  * stdout: exactly one JSON line; tokens_per_repeat = steps*batch (steps for generate);
    loss_first = loss of the first (warm-up) step, before any update; loss_last = loss of the
    last timed repeat (both null for generate); rss_base_mb = VmRSS after importing torch,
    right before the model is built; rss_peak_mb = ru_maxrss at the end; blas = resolved path
    of the OpenBLAS / libblas mapped in this process.

Debian's torch links libblas.so.3, which defaults to the pthread OpenBLAS (2-5x slower under
torch's OpenMP at 2 threads); the driver therefore runs this with
  LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-openmp OMP_WAIT_POLICY=passive
and the "blas" field shows which build was actually loaded.
"""
import argparse
import contextlib
import json
import os
import resource
import sys
import time


def load_case(args):
    with open(args.cases) as f:
        cases = json.load(f)["cases"]
    if args.list:
        print("\n".join(c["name"] for c in cases))
        sys.exit(0)
    for c in cases:
        if c["name"] == args.case:
            return c
    print(f"torch_suite: unknown case {args.case!r}", file=sys.stderr)
    sys.exit(2)


def vmrss_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return None


def mapped_blas():
    """Resolved path of the OpenBLAS (else libblas) shared object mapped into this process."""
    paths = set()
    with open("/proc/self/maps") as f:
        for line in f:
            fields = line.split()
            if len(fields) >= 6 and fields[5].startswith("/"):
                paths.add(os.path.realpath(fields[5]))
    for prefix in ("libopenblas", "libblas"):
        hits = sorted(p for p in paths if os.path.basename(p).startswith(prefix))
        if hits:
            return hits[0]
    return None


PRECISIONS = {"f32": "f32", "fp32": "f32", "float32": "f32", "bf16": "bf16", "bfloat16": "bf16", "int8": "int8"}


def case_precision(c):
    """The case's precision, canonical ("f32", "bf16", "int8"); exits 2 where it cannot run."""
    p = PRECISIONS.get(c.get("precision", "f32"))
    if p is None:
        print(f"torch_suite: case {c['name']}: unknown precision {c.get('precision')!r} (f32, bf16 or int8)",
              file=sys.stderr)
        sys.exit(2)
    if p == "int8" and c["mode"] != "generate":
        print(f"torch_suite: case {c['name']}: precision int8 is only supported for mode generate "
              f"(compressed weights are an inference path); use f32 or bf16 for mode {c['mode']}", file=sys.stderr)
        sys.exit(2)
    return p


def build_model(torch, c):
    nn = torch.nn
    rnn_cls = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn_tanh": nn.RNN}[c["cell"]]
    bidir = c["kind"] == "tagger"
    out = c["tags"] if bidir else c["vocab"]

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(c["vocab"], c["embed"])
            self.rnn = rnn_cls(c["embed"], c["hidden"], num_layers=c["layers"], bidirectional=bidir)
            self.proj = nn.Linear((2 if bidir else 1) * c["hidden"], out)

        def forward(self, ids, state=None):  # ids [T, B] -> logits [T, B, out]
            y, state = self.rnn(self.embed(ids), state)
            return self.proj(y), state

    return Model(), out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", required=True)
    ap.add_argument("--case")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--repeats", type=int)
    ap.add_argument("--list", action="store_true")
    args = ap.parse_args()
    c = load_case(args)
    precision = case_precision(c)
    repeats = args.repeats if args.repeats is not None else c.get("repeats", 5)

    import torch
    import torch.nn.functional as F

    torch.set_num_threads(args.threads)
    rss_base = vmrss_mb()
    torch.manual_seed(1)
    model, n_out = build_model(torch, c)
    T, B = c["steps"], c["batch"]
    precision_notes = ""
    if precision == "int8":
        model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.LSTM, torch.nn.Linear}, dtype=torch.qint8)
        precision_notes = (f"; int8: quantize_dynamic(LSTM, Linear, qint8) -> {type(model.rnn).__module__}, "
                           f"engine {torch.backends.quantized.engine}")

    if c["mode"] == "generate":
        start = torch.randint(c["vocab"], (1, 1))

        if precision == "bf16":
            with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
                y, _ = model.rnn(model.embed(start))
                head = model.proj(y)
            precision_notes = f"; bf16: torch.autocast(cpu, bfloat16): rnn output {y.dtype}, head output {head.dtype}"

        def step():
            with torch.inference_mode():
                tok, state, out = start, None, []
                for _ in range(T):
                    logits, state = model(tok, state)
                    tok = torch.multinomial(F.softmax(logits.float().view(1, -1), dim=-1), 1)
                    out.append(tok)
    else:
        ids = torch.randint(c["vocab"], (T, B))
        targets = torch.randint(n_out, (T, B))

        def loss_of():
            # bf16 training and forward: autocast around the forward and the loss of each step,
            # as PyTorch's AMP recipe does (the weights change every step); backward outside it.
            with contextlib.ExitStack() as amp:
                if precision == "bf16":
                    amp.enter_context(torch.autocast("cpu", dtype=torch.bfloat16))
                logits, _ = model(ids)
                return F.cross_entropy(logits.float().view(-1, n_out), targets.view(-1))

        if c["mode"] == "train":
            params = list(model.parameters())
            opt = torch.optim.Adam(params, lr=1e-3)

            def step():
                opt.zero_grad(set_to_none=True)
                loss = loss_of()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, 5.0)
                opt.step()
                return loss
        else:
            def step():
                with torch.inference_mode():
                    return loss_of()

    loss_first = loss_last = None
    times = []
    with contextlib.ExitStack() as region:
        if precision == "bf16" and c["mode"] == "generate":  # around all repeats: bf16 weight copies made once (docstring)
            region.enter_context(torch.autocast("cpu", dtype=torch.bfloat16))
        for i in range(args.warmup + repeats):
            t0 = time.perf_counter()
            loss = step()
            t1 = time.perf_counter()
            if loss is not None:
                loss_last = loss.item()
                if i == 0:
                    loss_first = loss_last
            if i >= args.warmup:
                times.append(t1 - t0)

    print(json.dumps({
        "impl": "pytorch", "case": c["name"], "precision": precision, "threads": args.threads, "times_s": times,
        "tokens_per_repeat": T if c["kind"] == "generate" else T * B,
        "loss_first": loss_first, "loss_last": loss_last,
        "rss_base_mb": rss_base, "rss_peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "blas": mapped_blas(),
        "notes": f"torch {torch.__version__}, num_threads {torch.get_num_threads()}{precision_notes}",
    }))


if __name__ == "__main__":
    main()
