"""PyTorch DistributedDataParallel (gloo) on the 2x512 char LSTM: the anchor of bench/distributed.sh.

Same shape as recur's char case there: embedding 64, LSTM 2x512, linear to the vocabulary, global
batch 32 (split over the processes) x 100 steps, Adam 0.002, clipping at norm 5, one thread per
process. Prints "PROCS TOKENS_PER_S" (the whole job's, median over steps after a warm-up).

    /usr/bin/python3 bench/ddp_torch.py --procs 2 --steps 60 --text ../shared/data/tinyshakespeare/input.txt
"""
import argparse
import os
import statistics
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn as nn


class CharLstm(nn.Module):
    def __init__(self, vocab):
        super().__init__()
        self.embed = nn.Embedding(vocab, 64)
        self.rnn = nn.LSTM(64, 512, num_layers=2)
        self.head = nn.Linear(512, vocab)

    def forward(self, x):
        y, _ = self.rnn(self.embed(x))
        return self.head(y)


def worker(rank, procs, args, port):
    torch.set_num_threads(1)
    torch.manual_seed(1)
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    if procs > 1:
        dist.init_process_group("gloo", rank=rank, world_size=procs)
    text = open(args.text, encoding="utf-8").read()
    chars = sorted(set(text))
    ids = torch.tensor([chars.index(c) for c in text[: 32 * 100 * 50 + 1]], dtype=torch.long)
    model = CharLstm(len(chars))
    if procs > 1:
        model = nn.parallel.DistributedDataParallel(model)
    opt = torch.optim.Adam(model.parameters(), lr=0.002)
    loss_fn = nn.CrossEntropyLoss()
    batch, steps_t = 32 // procs, 100
    times = []
    for step in range(args.steps):
        start = (step * 32 + rank * batch) * steps_t % (len(ids) - steps_t * batch - 1)
        chunk = ids[start:start + batch * steps_t + 1]
        x = chunk[:-1].view(batch, steps_t).t().contiguous()
        y = chunk[1:].view(batch, steps_t).t().contiguous()
        t0 = time.perf_counter()
        opt.zero_grad()
        loss = loss_fn(model(x).view(-1, len(chars)), y.view(-1))
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        times.append(time.perf_counter() - t0)
    if rank == 0:
        print(procs, 32 * steps_t / statistics.median(times[5:]), flush=True)
    if procs > 1:
        dist.destroy_process_group()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--text", required=True)
    args = ap.parse_args()
    port = 29500 + os.getpid() % 1000
    if args.procs == 1:
        worker(0, 1, args, port)
    else:
        mp.spawn(worker, args=(args.procs, args, port), nprocs=args.procs)


if __name__ == "__main__":
    main()
