"""Train PyTorch's equivalent of a recur character/word stream language model, for comparison.

Reads the vocabulary and model configuration from a recur checkpoint so both tools see the
same token ids, builds the same batches (B parallel streams, T-step chunks, state carried
between chunks: truncated BPTT, as in PyTorch's word_language_model example), trains with
Adam or SGD and norm clipping for the same number of steps, and then:
  * writes the trained weights into a copy of the recur checkpoint (PyTorch names are recur's
    names), so `recur eval` can score the PyTorch model with recur's evaluator, and
  * evaluates both the PyTorch model and the recur model with one Python evaluator.
Both evaluators therefore score both models.

Run with Debian's python3-torch:
  /usr/bin/python3 tools/torch_char_lm.py --recur-ckpt RUN/last.safetensors \
      --train train.txt --valid valid.txt --steps 300 --batch 32 --seq-len 100 --lr 0.002 \
      --dropout 0.2 --out torch.safetensors
"""

import argparse
import json
import math
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_torch  # noqa: E402


class CharLm(torch.nn.Module):
    """recur's LmConfig: optional embedding (else one-hot), dropout, LSTM/GRU/RNN, dropout, decoder."""

    def __init__(self, cfg):
        super().__init__()
        r = cfg["rnn"]
        self.vocab = cfg["vocab_size"]
        self.embed = cfg["embed_size"]
        if self.embed > 0:
            self.encoder = torch.nn.Embedding(self.vocab, self.embed)
        cls = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn_tanh": torch.nn.RNN, "rnn_relu": torch.nn.RNN}[r["cell"]]
        kw = {"nonlinearity": "relu"} if r["cell"] == "rnn_relu" else {}
        self.rnn = cls(r["input_size"], r["hidden_size"], r["num_layers"], dropout=r["dropout"], **kw)
        self.drop = torch.nn.Dropout(cfg["dropout"])
        self.decoder = torch.nn.Linear(r["hidden_size"], self.vocab)

    def forward(self, ids, state):  # ids [T, B]
        x = self.encoder(ids) if self.embed > 0 else torch.nn.functional.one_hot(ids, self.vocab).float()
        y, state = self.rnn(self.drop(x), state)
        return self.decoder(self.drop(y)), state  # [T, B, V]


def encode(path, vocab, level):
    ids_of = {t: i for i, t in enumerate(vocab["tokens"])}
    unk, eos = ids_of["<unk>"], vocab["eos_id"]
    text = open(path, encoding="utf-8").read()
    if level == "chars":
        return [ids_of.get(c, unk) for c in text]
    out = []
    for line in text.split("\n")[: -1 if text.endswith("\n") else None]:
        out += [ids_of.get(w, unk) for w in line.split()] + [eos]
    return out


def batchify(ids, b):
    n = len(ids) // b
    return torch.tensor(ids[: n * b], dtype=torch.long).view(b, n).t().contiguous()  # [N, B]


def detach(state):
    return tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()


@torch.no_grad()
def evaluate(model, data, seq_len):
    model.eval()
    total, count, state = 0.0, 0, None
    for i in range(0, data.size(0) - 1, seq_len):
        t = min(seq_len, data.size(0) - 1 - i)
        logits, state = model(data[i : i + t], state)
        total += torch.nn.functional.cross_entropy(logits.view(-1, logits.size(-1)), data[i + 1 : i + 1 + t].reshape(-1), reduction="sum").item()
        count += t * data.size(1)
    return total / count


def load_recur_weights(model, tensors):
    sd = {k: v for k, v in tensors.items() if k.split(".")[0] in ("encoder", "rnn", "decoder")}
    model.load_state_dict({k: v.float() for k, v in sd.items()}, strict=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--recur-ckpt", required=True)
    ap.add_argument("--train", required=True)
    ap.add_argument("--valid", required=True)
    ap.add_argument("--steps", type=int, required=True)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seq-len", type=int, default=100)
    ap.add_argument("--optimizer", default="adam", choices=["adam", "sgd"])
    ap.add_argument("--lr", type=float, default=0.002)
    ap.add_argument("--clip-norm", type=float, default=5.0)
    ap.add_argument("--eval-batch", type=int, default=10)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", required=True, help="recur checkpoint copy holding PyTorch's weights")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)

    tensors, meta = safetensors_torch.load(a.recur_ckpt)
    cfg, vocab = json.loads(meta["config"]), json.loads(meta["vocab"])
    train = batchify(encode(a.train, vocab, vocab["level"]), a.batch)
    valid = batchify(encode(a.valid, vocab, vocab["level"]), a.eval_batch)

    model = CharLm(cfg)
    opt = (torch.optim.Adam if a.optimizer == "adam" else torch.optim.SGD)(model.parameters(), lr=a.lr)
    step, pos, state, t0 = 0, 0, None, time.time()
    model.train()
    while step < a.steps:
        if pos >= train.size(0) - 1:
            pos, state = 0, None  # new epoch: state starts from zeros, as in recur
        t = min(a.seq_len, train.size(0) - 1 - pos)
        x, y = train[pos : pos + t], train[pos + 1 : pos + 1 + t]
        state = detach(state) if state is not None else None
        logits, state = model(x, state)
        loss = torch.nn.functional.cross_entropy(logits.view(-1, logits.size(-1)), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        if a.clip_norm > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), a.clip_norm)
        opt.step()
        pos += t
        step += 1
        if step % 50 == 0 or step == a.steps:
            print(f"torch step {step} loss {loss.item():.4f} {time.time() - t0:.0f}s", flush=True)
    train_s = time.time() - t0

    out = dict(tensors)
    for k, v in model.state_dict().items():
        out[k] = v.detach().clone()
    safetensors_torch.save(out, a.out, metadata=meta)

    ours = evaluate(model, valid, a.seq_len)
    recur_model = CharLm(cfg)
    load_recur_weights(recur_model, tensors)
    theirs = evaluate(recur_model, valid, a.seq_len)
    unit = "bpc" if vocab["level"] == "chars" else "ppl"
    conv = (lambda l: l / math.log(2)) if unit == "bpc" else math.exp
    print(json.dumps({"torch_valid_loss": ours, "recur_valid_loss": theirs, f"torch_{unit}": conv(ours),
                      f"recur_{unit}": conv(theirs), "torch_train_seconds": train_s, "torch": torch.__version__}))


if __name__ == "__main__":
    main()
