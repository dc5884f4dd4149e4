"""recur: recurrent sequence models (RNN, GRU, LSTM) on the CPU, from Python.

The compiled core (recur._recur) is recur's C++ library; this package re-exports it and adds
the documented Python signature of train(). docs/python.md has a complete example.

    import recur
    recur.train("input.txt", out="run", level="char", hidden=128, epochs=1, seed=1)
    model = recur.load("run/best.safetensors")
    print(model.sample(200, temperature=0.8, prime="The "))
    print(model.score("The quick brown fox"))

Errors: every recur error is raised as recur.Error (a ValueError; recur.ShapeError and
recur.FormatError refine it) carrying recur's one-line message, which names the file or
argument, the place and what was expected.

Arrays: numpy float32 (RNN also float64), time-major [T, B, F] as PyTorch's default. Results
and parameters are not copied (results are recur's memory handed to numpy, parameters are
views); inputs are copied once into recur.
"""

import os as _os
import sys as _sys

from ._recur import (  # noqa: F401
    Error,
    FormatError,
    Model,
    RNN,
    ShapeError,
    __version__,
    export,
    load,
    load_safetensors,
    set_num_threads,
    train_options,
)
from . import _recur

__all__ = [
    "Error", "FormatError", "ShapeError", "Model", "RNN", "export", "load", "load_safetensors",
    "set_num_threads", "train", "train_options", "__version__",
]


def _print_note(note):
    print("recur: " + note, file=_sys.stderr)


def train(data, *, out, on_progress=None, on_log=None, on_note=_print_note, **options):
    """train(data, *, out, on_progress=None, on_log=None, on_note=<print to stderr>, **options) -> dict

    `recur train DATA --out OUT ...` from Python: the same options under the CLI flags' names
    in snake_case (--seq-len is seq_len), the same defaults, the same library code, so the same
    options and seed give bit-identical losses and weights. docs/cli.md and docs/tasks.md
    describe every option; recur.train_options() lists their names.

    data: the training file (text for lm; the task's format for classify, tag, seq2seq,
    generate: docs/tasks.md). out: the run directory (last.safetensors, best.safetensors,
    metrics.jsonl).

    Options (CLI defaults in brackets):
      task [lm]: lm, classify, tag, seq2seq, generate (music is the CLI's)
      resume: True (out's last.safetensors) or a checkpoint path; force [False];
        init_from: a task model to fine-tune (a fresh run from its architecture and weights);
          extend_vocab [False]: its vocabularies grown by the new data's words
      data: valid, test (paths), valid_fraction [auto: 0.05; task models 200 examples within 0.05..0.2], level [char]: char or word,
        mode [stream]: stream or lines, max_vocab [0], min_count [1]
      model: cell [lstm]: lstm, gru, rnn, rnn_tanh, rnn_relu; gru_reset [after]; layers [2];
        hidden [128]; embed [-1]; proj [0]; peephole [False]; tie_weights [False];
        bidirectional [False]; dropout [0]; init_scale [0]; precision ["f32"]: "bf16" = mixed
        precision (the recurrent layers' products in bfloat16)
      training: optimizer [adam]: sgd, adam, adagrad, rmsprop; lr [0 = the optimizer's
        default]; momentum; weight_decay; batch [32]; seq_len [64]; clip_norm [5];
        clip_value [0]; lr_decay [1]; decay_after [0]; plateau_decay [0];
        plateau_patience [0]; warmup [0 = off: steps of linear lr warm-up]; epochs, steps, time
        [all 0: 10 epochs]; seed [1];
        diverge_factor [10]; patience [0 = off]: early stopping after that many validations
        without improvement
      reporting: valid_every [0 = each epoch]; log_every [50]; eval_batch [10];
        diagnostics (True = every 100 steps, or N); plots [False] (needs gnuplot)
      tasks: char_rnn, char_embed [25], char_hidden [25], crf, tag_scheme ["auto"],
        attention ["none"; seq2seq: "dot", "general" or "additive"], input_feed [False],
        pool ["last"; classify: "max" or "mean" over time],
        word_dropout [0; classify, tag: probability that a training occurrence of a word seen
        once in the training data is read as <unk>],
        condition_every_step, binary,
        features, keep_case, lower_words [tag: the word vocabulary reads words lower-cased],
        embeddings (path), freeze_embeddings, embeddings_vocab, text_column [1],
        label_column [0], token_column [1], tag_column [0], header [-1]
      threads [0 = the libraries' defaults]; deterministic [False; True: the same bits at any
        thread count, oneDNN's recurrent layers on one thread]

    Callbacks (called from the training thread, with the GIL):
      on_progress(log): after every step, with the running window's values
      on_log(log): every metrics.jsonl line (train, valid, test)
      on_note(text): one-line notes ("resumed from ...", warnings); None to silence
    A log is a dict: type, step, epoch, loss, ppl, bpc, grad_norm, clip_rate, tokens_per_s,
    examples_per_s, lr, elapsed_s, eta_s, line (the CLI's progress line), and the task's
    metric (f1, accuracy, bleu) on valid/test lines. NaN where a value does not apply.

    Ctrl-C (KeyboardInterrupt), or an exception raised by a callback, stops the run at the end
    of the step: last.safetensors is written (resume with resume=True), then the exception is
    raised. Errors in options or data raise recur.Error with recur's one-line message.

    Returns {"step", "epoch", "out_of_time", "nothing_to_do", "best_valid_loss",
    "best_metric", "metric_name", "last_path", "best_path" (None without validation)} and
    "plots" (the files written) with plots=True.
    """
    return _recur._train(data, out=_os.fspath(out), on_progress=on_progress, on_log=on_log, on_note=on_note, **options)
