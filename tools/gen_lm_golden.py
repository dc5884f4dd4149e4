#!/usr/bin/python3
"""Generates PyTorch golden files for recur's language model built as a layer graph (lm.h).

    /usr/bin/python3 tools/gen_lm_golden.py [--out DIR]

PyTorch word_language_model-style modules in float64, with the state_dict names recur's LM graph
uses (encoder, rnn, decoder):
  lm_lstm_embedding: Embedding(7, 3) -> LSTM(3, 4, 2 layers) -> Linear(4, 7)
  lm_gru_onehot:     one-hot rows of 7 -> GRU(7, 5, 2 layers) -> Linear(5, 7)  (no encoder)
  lm_lstm_tied:      Embedding(7, 4) -> LSTM(4, 4) -> Linear(4, 7) whose weight is the encoder's
                     (weight tying; the file holds it once, as "encoder.weight")
Each runs T = 4 steps of B = 3 streams from a given initial state (the state stream mode
carries; no gradient flows into it) in eval mode (dropout has no deterministic PyTorch twin).
Files hold the weights, "input.ids" and "input.targets" [T, B] (I64; -1 = ignored),
"input.h0" (and "input.c0") [L, B, H], "output" = logits [T, B, V], "state.h" (and "state.c")
= the final state, "loss" [1] = the summed cross-entropy over the targets that count, and
"grad.<name>" = dloss/dparameter for every parameter.
"""
import argparse
import os
import sys

import torch
import torch.nn.functional as F
from torch import nn

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tools"))
import safetensors_torch  # noqa: E402

V, T, B = 7, 4, 3


class WordLm(nn.Module):
    """word_language_model's RNNModel without dropout; embed 0 = one-hot input."""

    def __init__(self, cell, embed, hidden, layers, tie):
        super().__init__()
        self.embed = embed
        if embed > 0:
            self.encoder = nn.Embedding(V, embed)
        rnn_in = embed if embed > 0 else V
        self.rnn = getattr(nn, cell)(rnn_in, hidden, num_layers=layers)
        self.decoder = nn.Linear(hidden, V)
        if tie:
            self.decoder.weight = self.encoder.weight

    def forward(self, ids, state):
        x = self.encoder(ids) if self.embed > 0 else F.one_hot(ids, V).double()
        y, state_n = self.rnn(x, state)
        return self.decoder(y), state_n


def case(name, cell, embed, hidden, layers, tie, seed, out_dir):
    torch.manual_seed(seed)
    m = WordLm(cell, embed, hidden, layers, tie).double()
    for p in m.parameters():  # U(-0.5, 0.5): far from linear, as the finite-difference tests
        nn.init.uniform_(p, -0.5, 0.5)
    ids = torch.randint(0, V, (T, B))
    targets = torch.randint(0, V, (T, B))
    targets[1, 2] = -1
    targets[3, 0] = -1
    h0 = torch.rand(layers, B, hidden, dtype=torch.float64) - 0.5
    c0 = torch.rand(layers, B, hidden, dtype=torch.float64) - 0.5
    state = (h0, c0) if cell == "LSTM" else h0
    logits, state_n = m(ids, state)
    loss = F.cross_entropy(logits.reshape(T * B, V), targets.reshape(T * B), ignore_index=-1, reduction="sum")
    loss.backward()
    tensors = {k: v.detach().clone() for k, v in m.state_dict().items()}
    if tie:
        del tensors["decoder.weight"]  # the encoder's matrix, stored once
    for k, p in m.named_parameters():  # named_parameters lists a shared tensor once
        tensors["grad." + k] = p.grad.detach().clone()
    tensors["input.ids"] = ids.to(torch.int64)
    tensors["input.targets"] = targets.to(torch.int64)
    tensors["input.h0"] = h0
    if cell == "LSTM":
        tensors["input.c0"] = c0
        tensors["state.h"] = state_n[0].detach().clone()
        tensors["state.c"] = state_n[1].detach().clone()
    else:
        tensors["state.h"] = state_n.detach().clone()
    tensors["output"] = logits.detach().clone()
    tensors["loss"] = loss.detach().reshape(1).clone()
    safetensors_torch.save(tensors, os.path.join(out_dir, name + ".safetensors"), metadata={"torch": torch.__version__})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(REPO, "tests", "golden", "model"))
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    case("lm_lstm_embedding", "LSTM", 3, 4, 2, False, 1, a.out)
    case("lm_gru_onehot", "GRU", 0, 5, 2, False, 2, a.out)
    case("lm_lstm_tied", "LSTM", 4, 4, 1, True, 3, a.out)


if __name__ == "__main__":
    main()
