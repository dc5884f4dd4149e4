#!/usr/bin/python3
"""Golden values for recur's softmax_cross_entropy and sigmoid_binary_cross_entropy, from PyTorch.

Run with Debian's interpreter (python3-torch), from the repository root:
    /usr/bin/python3 tools/gen_loss_golden.py
Writes tests/golden/loss/{cross_entropy,bce_with_logits}.json, float64 throughout; floats are
written with repr() (json's default), so they read back bit-exact.

Cross-entropy uses F.cross_entropy(ignore_index=-1, reduction='none') times a 0/1 mask, which is
recur's (sum, count) convention: count = positions with target != -1 and mask != 0. The
gradient is of grad_scale * sum with grad_scale = 1 / count, i.e. the mean loss's gradient.
BCE uses F.binary_cross_entropy_with_logits(reduction='none') times a mask, soft targets.
"""
import json
import os

import torch
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "golden", "loss")


def flat(t):
    return [float(v) for v in t.detach().reshape(-1).tolist()]


def cross_entropy_case(gen):
    n, v = 7, 5
    logits = (torch.randn(n, v, generator=gen, dtype=torch.float64) * 2.0).requires_grad_()
    targets = torch.randint(0, v, (n,), generator=gen)
    targets[2] = -1  # ignored by target
    targets[5] = -1
    mask = torch.ones(n, dtype=torch.float64)
    mask[4] = 0.0  # ignored by mask
    mask[5] = 0.0  # ignored by both
    per_pos = F.cross_entropy(logits, targets, ignore_index=-1, reduction="none") * mask
    total = per_pos.sum()
    count = int(((targets != -1) & (mask != 0)).sum())
    grad_scale = 1.0 / count
    (total * grad_scale).backward()
    return {
        "n": n, "v": v,
        "logits": flat(logits), "targets": [int(t) for t in targets.tolist()], "mask": flat(mask),
        "grad_scale": grad_scale,
        "sum": float(total), "count": count, "grad_logits": flat(logits.grad),
    }


def bce_case(gen):
    n = 9
    logits = (torch.randn(n, generator=gen, dtype=torch.float64) * 3.0).requires_grad_()
    targets = torch.rand(n, generator=gen, dtype=torch.float64)
    targets[0], targets[1] = 0.0, 1.0  # hard labels as well as soft ones
    mask = torch.ones(n, dtype=torch.float64)
    mask[3] = 0.0
    per_pos = F.binary_cross_entropy_with_logits(logits, targets, reduction="none") * mask
    total = per_pos.sum()
    count = int((mask != 0).sum())
    grad_scale = 1.0 / count
    (total * grad_scale).backward()
    return {
        "n": n,
        "logits": flat(logits), "targets": flat(targets), "mask": flat(mask),
        "grad_scale": grad_scale,
        "sum": float(total), "count": count, "grad_logits": flat(logits.grad),
    }


def main():
    os.makedirs(OUT, exist_ok=True)
    gen = torch.Generator().manual_seed(20240601)
    for name, case in (("cross_entropy", cross_entropy_case(gen)), ("bce_with_logits", bce_case(gen))):
        case = {"torch_version": torch.__version__, **case}
        with open(os.path.join(OUT, name + ".json"), "w") as f:
            json.dump(case, f, indent=1)
            f.write("\n")


if __name__ == "__main__":
    main()
