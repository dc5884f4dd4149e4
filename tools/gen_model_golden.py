#!/usr/bin/python3
"""Generates PyTorch golden files for recur's composable models (tests/golden/model/).

    /usr/bin/python3 tools/gen_model_golden.py [--out DIR]

Two models that PyTorch expresses with the same modules and state_dict names as model.h:
  bilstm_tagger:  Embedding(11, 4) -> LSTM(4, 5, 2 layers, bidirectional) -> Linear(10, 3) per step
  classifier:     Embedding(11, 4) -> LSTM(4, 5, bidirectional) -> Linear(10, 2) on
                  cat(h_n[-2], h_n[-1]) (forward final, backward final)
  seq2seq:        Embedding(7, 3) -> LSTM(3, 4, 2 layers) whose (h_n, c_n) start
                  Embedding(6, 3) -> LSTM(3, 4, 2 layers) -> Linear(4, 6) per step
                  ("input.src", "input.tgt" and their "_lengths" instead of "input.ids")
  bridge_seq2seq: Embedding(7, 3) -> GRU(3, 4, 2 layers, bidirectional) whose final state
                  cat(h_n[-2], h_n[-1]) goes through the bridge tanh(Linear(8, 14)), reshaped into
                  (h0, c0) of Embedding(6, 3) -> LSTM(3, 4, 2 layers, proj_size 3) -> Linear(3, 6)
  bridge_conditioned: a label embedding Embedding(3, 4) [B] -> bridge tanh(Linear(4, 24)) ->
                  (h0, c0) of Embedding(6, 3) -> LSTM(3, 3, 2 layers, bidirectional) -> Linear(6, 6)
                  (the generate task's bridge; bidirectional so the direction order is checked)
All run in float64 on a ragged batch packed with pack_padded_sequence (unsorted lengths).
Files hold the weights under their state_dict names, "input.ids" [T, B] (I64),
"input.lengths" [B] (I64) and "output".

The bridge cases also hold a loss and its gradients: "input.targets" [Tt, B] (I64, -1 on
padding), "loss" [1] = mean cross-entropy over the non-padding targets, and "grad.<name>" for
every parameter. The bridge output y [B, S] is laid out as recur's model.h reads it: the h of
layer l and direction d (k = l * D + d) at y[:, k*R:(k+1)*R], then the c of k at
y[:, K*R + k*H : K*R + (k+1)*H] (K = layers * directions, R = proj_size or H).
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


def weights(m):
    """The state_dict as the tensors of a golden file (inputs and outputs are added after)."""
    return {k: v.detach().clone() for k, v in m.state_dict().items()}


def seq2seq_tensors(m, src, src_len, tgt, tgt_len, out):
    """The weights, inputs and output of an encoder-decoder case."""
    tensors = weights(m)
    tensors["input.src"] = src.to(torch.int64)
    tensors["input.src_lengths"] = torch.tensor(src_len, dtype=torch.int64)
    tensors["input.tgt"] = tgt.to(torch.int64)
    tensors["input.tgt_lengths"] = torch.tensor(tgt_len, dtype=torch.int64)
    tensors["output"] = out.detach().clone()
    return tensors


def save(tensors, out_dir, name):
    safetensors_torch.save(tensors, os.path.join(out_dir, name + ".safetensors"), metadata={"torch": torch.__version__})


class Model(nn.Module):
    def __init__(self, layers, classes, final):
        super().__init__()
        self.emb = nn.Embedding(11, 4)
        self.rnn = nn.LSTM(4, 5, num_layers=layers, bidirectional=True)
        self.out = nn.Linear(10, classes)
        self.final = final

    def forward(self, ids, lengths):
        x = self.emb(ids)
        packed = pack_padded_sequence(x, lengths, enforce_sorted=False)
        y, (h_n, _) = self.rnn(packed)
        if self.final:
            return self.out(torch.cat([h_n[-2], h_n[-1]], dim=1))
        y, _ = pad_packed_sequence(y, total_length=ids.shape[0])
        return self.out(y)


def case(name, layers, classes, final, seed, out_dir):
    torch.manual_seed(seed)
    m = Model(layers, classes, final).double()
    T, lengths = 5, [5, 2, 4]
    ids = torch.randint(0, 11, (T, len(lengths)))
    with torch.no_grad():
        out = m(ids, torch.tensor(lengths))
    tensors = weights(m)
    tensors["input.ids"] = ids.to(torch.int64)
    tensors["input.lengths"] = torch.tensor(lengths, dtype=torch.int64)
    tensors["output"] = out
    save(tensors, out_dir, name)


class Seq2seq(nn.Module):
    """Encoder LSTM (2 layers) whose (h_n, c_n) start the decoder LSTM; linear head per step."""

    def __init__(self):
        super().__init__()
        self.src_emb = nn.Embedding(7, 3)
        self.enc = nn.LSTM(3, 4, num_layers=2)
        self.tgt_emb = nn.Embedding(6, 3)
        self.dec = nn.LSTM(3, 4, num_layers=2)
        self.out = nn.Linear(4, 6)

    def forward(self, src, src_len, tgt, tgt_len):
        _, state = self.enc(pack_padded_sequence(self.src_emb(src), src_len, enforce_sorted=False))
        y, _ = self.dec(pack_padded_sequence(self.tgt_emb(tgt), tgt_len, enforce_sorted=False), state)
        y, _ = pad_packed_sequence(y, total_length=tgt.shape[0])
        return self.out(y)


def seq2seq_case(out_dir):
    torch.manual_seed(3)
    m = Seq2seq().double()
    src_len, tgt_len = [5, 2, 4], [3, 4, 1]
    src = torch.randint(0, 7, (5, 3))
    tgt = torch.randint(0, 6, (4, 3))
    with torch.no_grad():
        out = m(src, torch.tensor(src_len), tgt, torch.tensor(tgt_len))
    save(seq2seq_tensors(m, src, src_len, tgt, tgt_len, out), out_dir, "seq2seq")


def bridge_state(y, rnn):
    """Bridge output [B, S] -> (h0 [K, B, R], c0 [K, B, H]) of an nn.LSTM / nn.GRU."""
    K = rnn.num_layers * (2 if rnn.bidirectional else 1)
    H = rnn.hidden_size
    R = getattr(rnn, "proj_size", 0) or H
    B = y.shape[0]
    h0 = y[:, : K * R].reshape(B, K, R).transpose(0, 1).contiguous()
    if isinstance(rnn, nn.LSTM):
        c0 = y[:, K * R :].reshape(B, K, H).transpose(0, 1).contiguous()
        return (h0, c0)
    return h0


class BridgeSeq2seq(nn.Module):
    def __init__(self):
        super().__init__()
        self.src_emb = nn.Embedding(7, 3)
        self.enc = nn.GRU(3, 4, num_layers=2, bidirectional=True)
        self.tgt_emb = nn.Embedding(6, 3)
        self.dec = nn.LSTM(3, 4, num_layers=2, proj_size=3)
        self.bridge = nn.Linear(8, 2 * 3 + 2 * 4)
        self.out = nn.Linear(3, 6)

    def forward(self, src, src_len, tgt, tgt_len):
        _, h_n = self.enc(pack_padded_sequence(self.src_emb(src), src_len, enforce_sorted=False))
        y = torch.tanh(self.bridge(torch.cat([h_n[-2], h_n[-1]], dim=1)))
        d, _ = self.dec(pack_padded_sequence(self.tgt_emb(tgt), tgt_len, enforce_sorted=False),
                        bridge_state(y, self.dec))
        d, _ = pad_packed_sequence(d, total_length=tgt.shape[0])
        return self.out(d)


class BridgeConditioned(nn.Module):
    def __init__(self):
        super().__init__()
        self.cond_emb = nn.Embedding(3, 4)
        self.tgt_emb = nn.Embedding(6, 3)
        self.dec = nn.LSTM(3, 3, num_layers=2, bidirectional=True)
        self.bridge = nn.Linear(4, 4 * 3 + 4 * 3)
        self.out = nn.Linear(6, 6)

    def forward(self, cond, tgt, tgt_len):
        y = torch.tanh(self.bridge(self.cond_emb(cond)))
        d, _ = self.dec(pack_padded_sequence(self.tgt_emb(tgt), tgt_len, enforce_sorted=False),
                        bridge_state(y, self.dec))
        d, _ = pad_packed_sequence(d, total_length=tgt.shape[0])
        return self.out(d)


def with_loss_and_grads(m, out, tgt_len, tensors):
    """Random targets on the non-padding positions, the mean cross-entropy and its gradients."""
    T, B, V = out.shape
    targets = torch.randint(0, V, (T, B))
    for b, n in enumerate(tgt_len):
        targets[n:, b] = -1
    loss = F.cross_entropy(out.reshape(-1, V), targets.reshape(-1), ignore_index=-1)
    m.zero_grad()
    loss.backward()
    tensors["input.targets"] = targets.to(torch.int64)
    tensors["loss"] = loss.detach().reshape(1)
    for name, p in m.named_parameters():
        tensors["grad." + name] = p.grad.detach().clone()


def bridge_cases(out_dir):
    torch.manual_seed(4)
    m = BridgeSeq2seq().double()
    src_len, tgt_len = [5, 2, 4], [3, 4, 1]
    src = torch.randint(0, 7, (5, 3))
    tgt = torch.randint(0, 6, (4, 3))
    out = m(src, torch.tensor(src_len), tgt, torch.tensor(tgt_len))
    tensors = seq2seq_tensors(m, src, src_len, tgt, tgt_len, out)
    with_loss_and_grads(m, out, tgt_len, tensors)
    save(tensors, out_dir, "bridge_seq2seq")

    torch.manual_seed(5)
    m = BridgeConditioned().double()
    tgt_len = [3, 4, 1]
    cond = torch.tensor([2, 0, 1])
    tgt = torch.randint(0, 6, (4, 3))
    out = m(cond, tgt, torch.tensor(tgt_len))
    tensors = weights(m)
    tensors["input.cond"] = cond.to(torch.int64)
    tensors["input.tgt"] = tgt.to(torch.int64)
    tensors["input.tgt_lengths"] = torch.tensor(tgt_len, dtype=torch.int64)
    tensors["output"] = out.detach().clone()
    with_loss_and_grads(m, out, tgt_len, tensors)
    save(tensors, out_dir, "bridge_conditioned")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(REPO, "tests", "golden", "model"))
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    case("bilstm_tagger", 2, 3, False, 1, a.out)
    case("classifier", 1, 2, True, 2, a.out)
    seq2seq_case(a.out)
    bridge_cases(a.out)


if __name__ == "__main__":
    main()
