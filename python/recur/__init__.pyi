# Type stubs of the recur package (python/recur/__init__.py and the compiled recur._recur).
import os
from typing import Any, Callable, Literal, Optional, Sequence, Union, overload

import numpy as np
import numpy.typing as npt

__version__: str

PathLike = Union[str, os.PathLike[str]]
ArrayLike = npt.ArrayLike
Log = dict[str, Any]

class Error(ValueError): ...
class ShapeError(Error): ...
class FormatError(Error): ...

def set_num_threads(n: int) -> None: ...
def load_safetensors(path: str) -> tuple[dict[str, np.ndarray], dict[str, str]]: ...
def train_options() -> list[str]: ...
def train(
    data: PathLike,
    *,
    out: PathLike,
    on_progress: Optional[Callable[[Log], None]] = ...,
    on_log: Optional[Callable[[Log], None]] = ...,
    on_note: Optional[Callable[[str], None]] = ...,
    task: Literal["lm", "classify", "tag", "seq2seq", "generate"] = ...,
    resume: Union[bool, PathLike] = ...,
    force: bool = ...,
    init_from: PathLike = ...,
    extend_vocab: bool = ...,
    valid: PathLike = ...,
    test: PathLike = ...,
    valid_fraction: float = ...,
    level: Literal["char", "word", "chars", "words"] = ...,
    mode: Literal["stream", "lines"] = ...,
    max_vocab: int = ...,
    min_count: int = ...,
    cell: Literal["lstm", "gru", "rnn", "rnn_tanh", "rnn_relu"] = ...,
    gru_reset: Literal["after", "before"] = ...,
    layers: int = ...,
    hidden: int = ...,
    embed: int = ...,
    proj: int = ...,
    peephole: bool = ...,
    bidirectional: bool = ...,
    dropout: float = ...,
    init_scale: float = ...,
    precision: Literal["f32", "bf16"] = ...,
    optimizer: Literal["sgd", "adam", "adagrad", "rmsprop"] = ...,
    lr: float = ...,
    momentum: float = ...,
    weight_decay: float = ...,
    batch: int = ...,
    seq_len: int = ...,
    clip_norm: float = ...,
    clip_value: float = ...,
    lr_decay: float = ...,
    decay_after: int = ...,
    plateau_decay: float = ...,
    plateau_patience: int = ...,
    warmup: int = ...,
    epochs: int = ...,
    steps: int = ...,
    time: float = ...,
    seed: int = ...,
    diverge_factor: float = ...,
    valid_every: int = ...,
    log_every: int = ...,
    eval_batch: int = ...,
    diagnostics: Union[bool, int] = ...,
    plots: bool = ...,
    threads: int = ...,
    deterministic: bool = ...,
    char_rnn: bool = ...,
    char_embed: int = ...,
    char_hidden: int = ...,
    crf: bool = ...,
    tag_scheme: str = ...,
    attention: str = ...,
    pool: str = ...,
    word_dropout: float = ...,
    input_feed: bool = ...,
    condition_every_step: bool = ...,
    binary: bool = ...,
    features: bool = ...,
    keep_case: bool = ...,
    lower_words: bool = ...,
    embeddings: PathLike = ...,
    freeze_embeddings: bool = ...,
    embeddings_vocab: bool = ...,
    text_column: int = ...,
    label_column: int = ...,
    token_column: int = ...,
    tag_column: int = ...,
    header: Literal[-1, 0, 1] = ...,
) -> dict[str, Any]: ...

class RNN:
    def __init__(
        self,
        cell: Literal["lstm", "gru", "rnn", "rnn_tanh", "rnn_relu"],
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        *,
        bidirectional: bool = False,
        proj_size: int = 0,
        peephole: bool = False,
        bias: bool = True,
        gru_reset: Literal["after", "before"] = "after",
        dropout: float = 0.0,
        seed: int = 1,
        dtype: Any = "float32",
    ) -> None: ...
    def forward(
        self,
        input: ArrayLike,
        lengths: Optional[ArrayLike] = None,
        h0: Optional[ArrayLike] = None,
        c0: Optional[ArrayLike] = None,
        *,
        training: bool = False,
        backend: Literal["auto", "reference", "onednn"] = "auto",
    ) -> tuple[np.ndarray, Union[np.ndarray, tuple[np.ndarray, np.ndarray]]]: ...
    def __call__(
        self,
        input: ArrayLike,
        lengths: Optional[ArrayLike] = None,
        h0: Optional[ArrayLike] = None,
        c0: Optional[ArrayLike] = None,
        *,
        training: bool = False,
    ) -> tuple[np.ndarray, Union[np.ndarray, tuple[np.ndarray, np.ndarray]]]: ...
    def backward(
        self,
        grad_output: ArrayLike,
        grad_h_n: Optional[ArrayLike] = None,
        grad_c_n: Optional[ArrayLike] = None,
    ) -> tuple[np.ndarray, np.ndarray, Optional[np.ndarray], dict[str, np.ndarray]]: ...
    def state_dict(self) -> dict[str, np.ndarray]: ...
    def load_state_dict(self, state_dict: dict[str, ArrayLike]) -> None: ...
    @property
    def cell(self) -> str: ...
    @property
    def gru_reset(self) -> str: ...
    @property
    def input_size(self) -> int: ...
    @property
    def hidden_size(self) -> int: ...
    @property
    def proj_size(self) -> int: ...
    @property
    def num_layers(self) -> int: ...
    @property
    def bidirectional(self) -> bool: ...
    @property
    def peephole(self) -> bool: ...
    @property
    def bias(self) -> bool: ...
    @property
    def dropout(self) -> float: ...
    @property
    def dtype(self) -> np.dtype[Any]: ...

class Model:
    @property
    def path(self) -> str: ...
    @property
    def kind(self) -> Literal["lm", "music", "classify", "tag", "seq2seq", "generate"]: ...
    @property
    def labels(self) -> list[str]: ...
    @property
    def precision(self) -> Literal["f32", "bf16", "int8"]: ...
    @property
    def summary(self) -> str: ...
    @property
    def graph(self) -> dict[str, Any]: ...
    def state_dict(self, layer: str = "") -> dict[str, np.ndarray]: ...
    def load_state_dict(self, state_dict: dict[str, ArrayLike], layer: str = "") -> None: ...
    def save(self, path: str) -> None: ...
    @overload
    def sample(
        self, length: Optional[int] = None, *, count: None = None, temperature: float = 1.0, top_k: int = 0,
        top_p: float = 1.0, argmax: bool = False, prime: str = "", seed: int = 1, condition: Optional[str] = None,
        precision: Optional[Literal["f32", "bf16", "int8"]] = None,
    ) -> str: ...
    @overload
    def sample(
        self, length: Optional[int] = None, *, count: int, temperature: float = 1.0, top_k: int = 0,
        top_p: float = 1.0, argmax: bool = False, prime: str = "", seed: int = 1, condition: Optional[str] = None,
        precision: Optional[Literal["f32", "bf16", "int8"]] = None,
    ) -> list[str]: ...
    @overload
    def score(self, sentences: str, *, per_token: bool = False) -> dict[str, Any]: ...
    @overload
    def score(self, sentences: Sequence[str], *, per_token: bool = False) -> list[dict[str, Any]]: ...
    def evaluate(
        self, file: str, *, batch: Optional[int] = None, seq_len: int = 64, beam: int = 1,
        length_penalty: float = 1.0, max_length: int = 50,
    ) -> dict[str, Any]: ...
    def tag(self, file: str, *, output: str = "") -> list[list[str]]: ...
    @overload
    def classify(self, texts: str, *, file: str = "") -> tuple[str, dict[str, float]]: ...
    @overload
    def classify(self, texts: Optional[Sequence[str]] = None, *, file: str = "") -> list[tuple[str, dict[str, float]]]: ...
    @overload
    def translate(self, texts: str, *, file: str = "", beam: int = 1, length_penalty: float = 1.0,
                  max_length: int = 50, precision: Optional[Literal["f32", "bf16", "int8"]] = None) -> str: ...
    @overload
    def translate(self, texts: Optional[Sequence[str]] = None, *, file: str = "", beam: int = 1,
                  length_penalty: float = 1.0, max_length: int = 50,
                  precision: Optional[Literal["f32", "bf16", "int8"]] = None) -> list[Any]: ...

def load(path: str) -> Model: ...
def export(model: str, out: str, *, precision: Literal["f32", "bf16", "int8"]) -> None: ...
