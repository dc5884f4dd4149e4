"""recur.train: bit-identical to `recur train` with the same options and seed, progress to
Python callbacks, Ctrl-C honoured after the checkpoint is written, and recur's errors."""
import json
import re
import os
import signal
import subprocess
import time
import sys

import numpy as np
import pytest

import recur
from conftest import corpus_text, run_cli

# A small run: 1 layer of 24 LSTM units, 4 streams of 16 steps, validation every 10 steps.
SMALL = dict(hidden=24, layers=1, batch=4, seq_len=16, steps=30, log_every=5, valid_every=10, seed=7)


def cli_flags(options):
    flags = []
    for k, v in options.items():
        flags.append("--" + k.replace("_", "-"))
        if v is not True:
            flags.append(str(v))
    return flags


def metrics(run_dir):
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


def losses(run_dir):
    # Everything but the clocks.
    return [(m["type"], m["step"], m["loss"], m.get("grad_norm"), m["lr"]) for m in metrics(run_dir)]


def tensors(path):
    return recur.load_safetensors(path)[0]


def assert_same_tensors(a, b):
    ta, tb = tensors(a), tensors(b)
    assert sorted(ta) == sorted(tb)
    for name in ta:
        assert ta[name].dtype == tb[name].dtype and np.array_equal(ta[name], tb[name]), name


@pytest.mark.parametrize("options", [
    dict(SMALL),
    dict({k: v for k, v in SMALL.items() if k != "seq_len"}, cell="gru", optimizer="sgd", lr=0.5, dropout=0.1,
         mode="lines", level="word", embed=8),
], ids=["lstm_adam_chars", "gru_sgd_words_lines"])
def test_bit_identical_to_the_cli(corpus, tmp_path, options):
    cli_dir, py_dir = str(tmp_path / "cli"), str(tmp_path / "py")
    run_cli("train", corpus, "--out", cli_dir, *cli_flags(options))
    result = recur.train(corpus, out=py_dir, on_note=None, **options)
    assert result["step"] == 30 and result["last_path"] == os.path.join(py_dir, "last.safetensors")
    got, want = losses(py_dir), losses(cli_dir)
    assert len(want) >= 8 and got == want
    # Parameters and optimizer state, byte for byte.
    assert_same_tensors(os.path.join(py_dir, "last.safetensors"), os.path.join(cli_dir, "last.safetensors"))
    assert_same_tensors(os.path.join(py_dir, "best.safetensors"), os.path.join(cli_dir, "best.safetensors"))


def test_callbacks_see_every_step_and_every_logged_line(corpus, tmp_path):
    progress, logs, notes = [], [], []
    out = str(tmp_path / "run")
    recur.train(corpus, out=out, on_progress=progress.append, on_log=logs.append, on_note=notes.append, **SMALL)
    assert [p["step"] for p in progress] == list(range(1, 31))
    assert all(p["type"] == "train" and np.isfinite(p["loss"]) for p in progress)
    assert [(l["type"], l["step"], l["loss"]) for l in logs] == [(m["type"], m["step"], m["loss"]) for m in metrics(out)]
    assert "step 30" in logs[-1]["line"] or "step 30" in progress[-1]["line"]
    assert all(isinstance(n, str) for n in notes)


def test_exception_in_a_callback_stops_after_the_checkpoint_and_resume_is_exact(corpus, tmp_path):
    whole, split = str(tmp_path / "whole"), str(tmp_path / "split")
    recur.train(corpus, out=whole, on_note=None, **SMALL)

    def interrupt(log):
        if log["step"] == 13:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        recur.train(corpus, out=split, on_progress=interrupt, on_note=None, **SMALL)
    # The checkpoint of step 13 was written before the exception came through.
    state = json.loads(recur.load_safetensors(os.path.join(split, "last.safetensors"))[1]["train_state"])
    assert state["step"] == 13
    result = recur.train(corpus, out=split, resume=True, on_note=None)
    assert result["step"] == 30
    # The interrupted run adds a validation line at step 13; the training lines are the same.
    train_lines = lambda d: [m for m in losses(d) if m[0] == "train"]  # noqa: E731
    assert train_lines(split) == train_lines(whole)
    assert_same_tensors(os.path.join(split, "last.safetensors"), os.path.join(whole, "last.safetensors"))

    class Boom(Exception):
        pass

    def fail(log):
        raise Boom("from the callback")

    with pytest.raises(Boom, match="from the callback"):
        recur.train(corpus, out=str(tmp_path / "boom"), on_log=fail, on_note=None, **SMALL)
    assert os.path.exists(tmp_path / "boom" / "last.safetensors")


SIGINT_SCRIPT = """
import sys, recur
def progress(log):
    if log["step"] == 3:
        print("running", flush=True)
recur.train(sys.argv[1], out=sys.argv[2], hidden=128, layers=2, batch=16, seq_len=64, steps=10**9,
            threads=1, on_progress=progress, on_note=None)
"""


def test_ctrl_c_raises_keyboard_interrupt_after_the_checkpoint(tmp_path):
    # Several runs interrupted at different points of a step: with Python's handler running on
    # the computing thread, the signal frame corrupted the heap inside oneDNN's LSTM backward in
    # about one interrupted step in three (killed by SIGABRT, returncode -6).
    text = tmp_path / "larger.txt"
    text.write_text(corpus_text(lines=3000))
    for round in range(1, 9):
        out = str(tmp_path / f"run{round}")
        p = subprocess.Popen([sys.executable, "-c", SIGINT_SCRIPT, str(text), out], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=os.environ)
        assert p.stdout.readline() == "running\n"
        time.sleep(0.011 * round)
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=120)
        assert p.returncode == -signal.SIGINT and "KeyboardInterrupt" in err, (p.returncode, err)
        state = json.loads(recur.load_safetensors(os.path.join(out, "last.safetensors"))[1]["train_state"])
        assert state["step"] >= 3


def test_errors_carry_recur_messages(corpus, tmp_path):
    out = str(tmp_path / "run")
    with pytest.raises(recur.Error, match=r"^--hidden: got -1, expected "):
        recur.train(corpus, out=out, hidden=-1)
    with pytest.raises(recur.Error, match=r"^hidden: got 'big', expected an int$"):
        recur.train(corpus, out=out, hidden="big")
    with pytest.raises(recur.Error, match=r"^cell: got 'cnn', expected one of lstm, gru, rnn, rnn_tanh, rnn_relu$"):
        recur.train(corpus, out=out, cell="cnn")
    with pytest.raises(recur.Error, match=r"^--binary: does not apply to --task lm"):
        recur.train(corpus, out=out, binary=True)
    with pytest.raises(recur.Error, match=r"^--task music: not available from Python"):
        recur.train(corpus, out=out, task="music")
    # A choice the CLI's parser would refuse reaches the options' own check from Python.
    table = tmp_path / "reviews.tsv"
    table.write_text("good film\t1\nbad film\t0\n")
    with pytest.raises(recur.Error, match=r"^--pool: got sum, expected last, max or mean$"):
        recur.train(str(table), out=out, task="classify", pool="sum")
    with pytest.raises(recur.Error, match=r"^--word-dropout: got 1\.5, expected a probability in \[0, 1\]$"):
        recur.train(str(table), out=out, task="classify", word_dropout=1.5)
    missing = str(tmp_path / "missing.txt")
    with pytest.raises(recur.Error, match="^" + missing):
        recur.train(missing, out=out, steps=1)
    with pytest.raises(TypeError, match="unexpected keyword argument 'hiden'"):
        recur.train(corpus, out=out, hiden=3)
    # Every error above left no run behind.
    assert not os.path.exists(os.path.join(out, "last.safetensors"))


def test_options_match_the_cli_flags():
    # Every `recur train` flag but --quiet (Python prints nothing; callbacks instead), --out
    # (a parameter) and music's own has an option under its snake_case name.
    help_text = run_cli("train", "--help").stdout
    flags = {f.replace("-", "_") for f in re.findall(r"^\s+(?:-\w,)?--([a-z][a-z0-9-]*)", help_text, re.M)}
    assert {"seq_len", "char_rnn", "valid_fraction"} <= flags
    music = {"encoding", "transpose", "keep_drums", "channels", "jsb_steps_per_quarter"}
    expected = flags - {"help", "quiet", "out"} - music
    assert set(recur.train_options()) == expected
    doc = recur.train.__doc__
    for name in recur.train_options():
        assert name in doc, name
