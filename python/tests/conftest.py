"""Shared fixtures of the Python module's tests (python/tests, run by ctest as python.test_*).

ctest sets RECUR_CLI (the recur binary of the same build), RECUR_RNN_REFERENCE (the C++ side
of test_rnn.py) and RECUR_GOLDEN_DIR (tests/golden), and PYTHONPATH to the build's module.
"""
import os
import subprocess

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.dirname(os.path.dirname(HERE))


def _env_path(name, default):
    return os.environ.get(name) or default


CLI = _env_path("RECUR_CLI", os.path.join(SOURCE, "build", "apps", "recur"))
RNN_REFERENCE = _env_path("RECUR_RNN_REFERENCE", os.path.join(SOURCE, "build", "python", "rnn_reference"))
GOLDEN_DIR = _env_path("RECUR_GOLDEN_DIR", os.path.join(SOURCE, "tests", "golden"))


def run_cli(*args, check=True):
    """Runs the recur CLI; returns its CompletedProcess (text)."""
    p = subprocess.run([CLI, *map(str, args)], capture_output=True, text=True)
    if check and p.returncode != 0:
        raise AssertionError(f"recur {' '.join(map(str, args))} exited {p.returncode}: {p.stderr}")
    return p


# A small deterministic English-like corpus: a few hundred lines built from a fixed word list,
# so tests need no data set. The word order comes from a linear congruential sequence.
WORDS = ("the cat sat on a mat and the dog ran to the park while birds sang in old green trees "
         "every morning she reads books about rivers mountains and distant cities").split()


def corpus_text(lines=300, seed=12345):
    x = seed
    out = []
    for _ in range(lines):
        n = 5 + x % 7
        words = []
        for _ in range(n):
            x = (1103515245 * x + 12345) % (2 ** 31)
            words.append(WORDS[(x >> 8) % len(WORDS)])
        out.append(" ".join(words))
    return "\n".join(out) + "\n"


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text(corpus_text())
    return str(path)
