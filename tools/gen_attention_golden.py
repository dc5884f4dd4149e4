#!/usr/bin/python3
"""Generates PyTorch golden files for recur's attention layer (model/attention.h) in
tests/golden/model/attention_<score>.safetensors.

    /usr/bin/python3 tools/gen_attention_golden.py [--out DIR]

The model, in float64 on a ragged batch (unsorted lengths, packed):
  Embedding(7, 3) -> LSTM(3, 4, bidirectional) = the memory s [Ts, B, 8]
  Embedding(6, 3) -> LSTM(3, Q) from zeros      = the queries h [Tq, B, Q]
  attention(h, s) masked by the source lengths  = [Tq, B, 4] -> Linear(4, 6) per step
with Luong et al. (2015)'s global attention written out here from the paper, independently of
recur's code: score dot (Q = 8), general h . (W_s s) (Q = 5) or additive
v . tanh(W_q h + W_k s) (Bahdanau; Q = 5); a = softmax over the source positions i < length;
c = sum a s; y = tanh(W_c [c; h]). Parameter names as recur's: attn.weight (W_c),
attn.score.weight, attn.query.weight, attn.key.weight, attn.v.weight.

Input feeding (, Luong et al. 2015 section 3.3), attention_feed_<score>.safetensors:
the decoder is stepped one position at a time in Python, its input at step t the target
embedding next to the attention's output of step t - 1 (zeros at t = 0), [x_t; y_{t-1}] ->
decoder (2-layer LSTM, 1-layer GRU or 1-layer LSTM) -> attention -> y_t; a sequence past its
length keeps its state (PyTorch's packed semantics). Written by the same run as the others.
Each file holds the weights, "input.src"/"input.tgt" [T, B] and their "_lengths", "output",
"input.targets" (-1 on padding), "loss" (mean cross-entropy) and "grad.<name>" of every parameter.
"""
import argparse
import os
import sys

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tools"))
import safetensors_torch  # noqa: E402
from gen_model_golden import save, seq2seq_tensors, with_loss_and_grads  # noqa: E402


class Attention(nn.Module):
    def __init__(self, kind, Q, M, A):
        super().__init__()
        self.kind = kind
        self.weight = nn.Parameter(torch.empty(A, M + Q).uniform_(-0.6, 0.6))
        if kind == "general":
            self.score = nn.Linear(M, Q, bias=False)
        if kind == "additive":
            self.query = nn.Linear(Q, A, bias=False)
            self.key = nn.Linear(M, A, bias=False)
            self.v = nn.Linear(A, 1, bias=False)

    def forward(self, h, mem, src_len):
        hb, mb = h.transpose(0, 1), mem.transpose(0, 1)  # [B, Tq, Q], [B, Ts, M]
        if self.kind == "dot":
            e = hb @ mb.transpose(1, 2)
        elif self.kind == "general":
            e = hb @ self.score(mb).transpose(1, 2)
        else:
            e = self.v(torch.tanh(self.query(hb).unsqueeze(2) + self.key(mb).unsqueeze(1))).squeeze(-1)
        Ts = mb.shape[1]
        pad = torch.arange(Ts)[None, :] >= src_len[:, None]  # [B, Ts]
        a = torch.softmax(e.masked_fill(pad[:, None, :], float("-inf")), dim=-1)  # [B, Tq, Ts]
        c = a @ mb
        y = torch.tanh(torch.cat([c, hb], dim=-1) @ self.weight.t())
        return y.transpose(0, 1)


class AttentionSeq2seq(nn.Module):
    def __init__(self, kind, Q):
        super().__init__()
        self.src_emb = nn.Embedding(7, 3)
        self.enc = nn.LSTM(3, 4, bidirectional=True)
        self.tgt_emb = nn.Embedding(6, 3)
        self.dec = nn.LSTM(3, Q)
        self.attn = Attention(kind, Q, 8, 4)
        self.out = nn.Linear(4, 6)

    def forward(self, src, src_len, tgt, tgt_len):
        s, _ = self.enc(pack_padded_sequence(self.src_emb(src), src_len, enforce_sorted=False))
        s, _ = pad_packed_sequence(s, total_length=src.shape[0])
        h, _ = self.dec(pack_padded_sequence(self.tgt_emb(tgt), tgt_len, enforce_sorted=False))
        h, _ = pad_packed_sequence(h, total_length=tgt.shape[0])
        return self.out(self.attn(h, s, src_len))


class FeedSeq2seq(nn.Module):
    """The decoder reads [target embedding; previous attentional state], one step at a time."""

    def __init__(self, kind, Q, cell, layers):
        super().__init__()
        self.src_emb = nn.Embedding(7, 3)
        self.enc = nn.LSTM(3, 4, bidirectional=True)
        self.tgt_emb = nn.Embedding(6, 3)
        self.dec = (nn.LSTM if cell == "lstm" else nn.GRU)(3 + 4, Q, num_layers=layers)
        self.attn = Attention(kind, Q, 8, 4)
        self.out = nn.Linear(4, 6)
        self.layers, self.Q, self.lstm = layers, Q, cell == "lstm"

    def forward(self, src, src_len, tgt, tgt_len):
        s, _ = self.enc(pack_padded_sequence(self.src_emb(src), src_len, enforce_sorted=False))
        s, _ = pad_packed_sequence(s, total_length=src.shape[0])
        T, B = tgt.shape
        e = self.tgt_emb(tgt)
        h = torch.zeros(self.layers, B, self.Q, dtype=e.dtype)
        c = torch.zeros_like(h)
        y = torch.zeros(B, 4, dtype=e.dtype)
        ys = []
        for t in range(T):
            x = torch.cat([e[t], y], dim=-1).unsqueeze(0)  # [1, B, 3 + 4]
            if self.lstm:
                o, (h2, c2) = self.dec(x, (h, c))
            else:
                o, h2 = self.dec(x, h)
                c2 = c
            keep = (torch.tensor(tgt_len) <= t)[None, :, None]  # ended: the state stays
            h = torch.where(keep, h, h2)
            c = torch.where(keep, c, c2)
            y = self.attn(o, s, src_len)[0]  # [B, 4]
            ys.append(y)
        return self.out(torch.stack(ys))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(REPO, "tests", "golden", "model"))
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    for seed, (kind, Q) in enumerate([("dot", 8), ("general", 5), ("additive", 5)]):
        torch.manual_seed(10 + seed)
        m = AttentionSeq2seq(kind, Q).double()
        src_len, tgt_len = [5, 2, 4], [3, 4, 1]
        src = torch.randint(0, 7, (5, 3))
        tgt = torch.randint(0, 6, (4, 3))
        out = m(src, torch.tensor(src_len), tgt, torch.tensor(tgt_len))
        tensors = seq2seq_tensors(m, src, src_len, tgt, tgt_len, out)
        with_loss_and_grads(m, out, tgt_len, tensors)
        save(tensors, a.out, "attention_" + kind)
    for seed, (kind, Q, cell, layers) in enumerate([("general", 5, "lstm", 2), ("additive", 5, "gru", 1),
                                                     ("dot", 8, "lstm", 1)]):
        torch.manual_seed(20 + seed)
        m = FeedSeq2seq(kind, Q, cell, layers).double()
        src_len, tgt_len = [5, 2, 4], [3, 4, 1]
        src = torch.randint(0, 7, (5, 3))
        tgt = torch.randint(0, 6, (4, 3))
        out = m(src, torch.tensor(src_len), tgt, tgt_len)
        tensors = seq2seq_tensors(m, src, src_len, tgt, tgt_len, out)
        with_loss_and_grads(m, out, tgt_len, tensors)
        save(tensors, a.out, "attention_feed_" + kind)


if __name__ == "__main__":
    main()
