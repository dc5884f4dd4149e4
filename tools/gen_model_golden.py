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
All run in float64 on a ragged batch packed with pack_padded_sequence (unsorted lengths).
Files hold the weights under their state_dict names, "input.ids" [T, B] (I64),
"input.lengths" [B] (I64) and "output".
"""
import argparse
import os
import sys

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tools"))
import safetensors_torch  # noqa: E402


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
    tensors = {k: v.detach().clone() for k, v in m.state_dict().items()}
    tensors["input.ids"] = ids.to(torch.int64)
    tensors["input.lengths"] = torch.tensor(lengths, dtype=torch.int64)
    tensors["output"] = out
    safetensors_torch.save(tensors, os.path.join(out_dir, name + ".safetensors"),
                           metadata={"torch": torch.__version__})


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
    tensors = {k: v.detach().clone() for k, v in m.state_dict().items()}
    tensors["input.src"] = src.to(torch.int64)
    tensors["input.src_lengths"] = torch.tensor(src_len, dtype=torch.int64)
    tensors["input.tgt"] = tgt.to(torch.int64)
    tensors["input.tgt_lengths"] = torch.tensor(tgt_len, dtype=torch.int64)
    tensors["output"] = out
    safetensors_torch.save(tensors, os.path.join(out_dir, "seq2seq.safetensors"), metadata={"torch": torch.__version__})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(REPO, "tests", "golden", "model"))
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    case("bilstm_tagger", 2, 3, False, 1, a.out)
    case("classifier", 1, 2, True, 2, a.out)
    seq2seq_case(a.out)


if __name__ == "__main__":
    main()
