#!/usr/bin/python3
"""Golden values for recur's linear-chain CRF (include/recur/model/crf.h), from a plain PyTorch CRF.

Run with Debian's interpreter (python3-torch), from the repository root:
    /usr/bin/python3 tools/gen_crf_golden.py
Writes tests/golden/crf/{free,constrained}.json, float64 throughout (repr floats read back
bit-exact).

The CRF here is written independently of recur's: the forward algorithm with torch.logsumexp
over a batch (padding handled by masking the update), the gold score gathered from the tensors,
autograd for every gradient (emissions, transitions, start and end scores) and Viterbi with
torch.max. Constraints are -inf added to the forbidden scores, so autograd gives them zero
gradient. Conventions as recur's: emissions [T, B, C] time-major, score of tag j after tag i
is transitions[i, j], start_end[0] the start scores and start_end[1] the end scores, loss =
sum over sentences of log Z - score(gold), count = tagged tokens, gradients of grad_scale * sum.
"""
import json
import os

import torch

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "golden", "crf")
NEG = float("-inf")


def flat(t):
    return [float(v) for v in t.detach().reshape(-1).tolist()]


def masked(scores, allowed):
    """Scores with -inf where allowed is 0 (a constant, so no gradient flows there)."""
    if allowed is None:
        return scores
    return scores + torch.where(allowed.bool(), 0.0, NEG).to(scores.dtype)


def crf_nll(em, lengths, tags, trans, start_end, allowed_trans, allowed_start, allowed_end):
    T, B, C = em.shape
    A = masked(trans, allowed_trans)
    start = masked(start_end[0], allowed_start)
    end = masked(start_end[1], allowed_end)
    total = em.new_zeros(())
    lengths_t = torch.tensor(lengths)
    # forward algorithm, all sentences at once; a finished sentence keeps its alpha
    alpha = start.unsqueeze(0) + em[0]  # [B, C]
    for t in range(1, T):
        nxt = torch.logsumexp(alpha.unsqueeze(2) + A.unsqueeze(0), dim=1) + em[t]  # [B, C]
        live = (lengths_t > t).unsqueeze(1)
        alpha = torch.where(live, nxt, alpha)
    logz = torch.logsumexp(alpha + end.unsqueeze(0), dim=1)  # [B]
    for b in range(B):
        L = lengths[b]
        y = [tags[t * B + b] for t in range(L)]
        gold = start[y[0]] + end[y[L - 1]]
        for t in range(L):
            gold = gold + em[t, b, y[t]]
        for t in range(1, L):
            gold = gold + A[y[t - 1], y[t]]
        total = total + logz[b] - gold
    return total


def viterbi(em, lengths, trans, start_end, allowed_trans, allowed_start, allowed_end):
    A = masked(trans, allowed_trans)
    start = masked(start_end[0], allowed_start)
    end = masked(start_end[1], allowed_end)
    paths = []
    for b, L in enumerate(lengths):
        delta = start + em[0, b]
        back = []
        for t in range(1, L):
            best, arg = torch.max(delta.unsqueeze(1) + A, dim=0)
            back.append(arg)
            delta = best + em[t, b]
        y = [int(torch.argmax(delta + end))]
        for arg in reversed(back):
            y.append(int(arg[y[-1]]))
        paths.append(list(reversed(y)))
    return paths


def case(gen, T, B, C, lengths, constraints):
    em = (torch.randn(T, B, C, generator=gen, dtype=torch.float64) * 1.5).requires_grad_()
    trans = torch.randn(C, C, generator=gen, dtype=torch.float64).requires_grad_()
    start_end = torch.randn(2, C, generator=gen, dtype=torch.float64).requires_grad_()
    allowed_trans = allowed_start = allowed_end = None
    if constraints:
        # BIO over tags O, B-A, I-A, B-B, I-B: I-X only after B-X or I-X, never first.
        labels = ["O", "B-A", "I-A", "B-B", "I-B"]
        assert C == len(labels)
        allowed_trans = torch.ones(C, C)
        allowed_start = torch.ones(C)
        allowed_end = torch.ones(C)
        for j, lj in enumerate(labels):
            if lj.startswith("I-"):
                allowed_start[j] = 0
                for i, li in enumerate(labels):
                    if li[2:] != lj[2:] or li == "O":
                        allowed_trans[i, j] = 0
        # gold paths that obey the constraints
        tags = [-1] * (T * B)
        for b in range(B):
            prev = "O"
            for t in range(lengths[b]):
                choices = [j for j, lj in enumerate(labels)
                           if not lj.startswith("I-") or (prev != "O" and prev[2:] == lj[2:])]
                j = choices[int(torch.randint(0, len(choices), (1,), generator=gen))]
                tags[t * B + b] = j
                prev = labels[j]
    else:
        tags = [-1] * (T * B)
        for b in range(B):
            for t in range(lengths[b]):
                tags[t * B + b] = int(torch.randint(0, C, (1,), generator=gen))
    count = sum(lengths)
    grad_scale = 1.0 / count
    total = crf_nll(em, lengths, tags, trans, start_end, allowed_trans, allowed_start, allowed_end)
    (total * grad_scale).backward()
    paths = viterbi(em.detach(), lengths, trans.detach(), start_end.detach(), allowed_trans, allowed_start, allowed_end)
    out = {
        "T": T, "B": B, "C": C, "lengths": lengths, "tags": tags,
        "emissions": flat(em), "transitions": flat(trans), "start_end": flat(start_end),
        "grad_scale": grad_scale, "sum": float(total), "count": count,
        "grad_emissions": flat(em.grad), "grad_transitions": flat(trans.grad), "grad_start_end": flat(start_end.grad),
        "viterbi": paths,
    }
    if constraints:
        out["allowed_transitions"] = [int(v) for v in allowed_trans.reshape(-1).tolist()]
        out["allowed_start"] = [int(v) for v in allowed_start.tolist()]
        out["allowed_end"] = [int(v) for v in allowed_end.tolist()]
    return out


def main():
    os.makedirs(OUT, exist_ok=True)
    gen = torch.Generator().manual_seed(20261204)
    cases = (("free", case(gen, 6, 3, 4, [6, 3, 1], False)),
             ("constrained", case(gen, 7, 3, 5, [7, 5, 2], True)))
    for name, c in cases:
        c = {"torch_version": torch.__version__, **c}
        with open(os.path.join(OUT, name + ".json"), "w") as f:
            json.dump(c, f, indent=1)
            f.write("\n")


if __name__ == "__main__":
    main()
