"""Minimal safetensors load/save for torch tensors, using only struct and json.

Debian 12 packages PyTorch but not the `safetensors` module, and the format is small enough
to read directly: [u64 little-endian header length N][N bytes of JSON][raw little-endian data].

    tensors, metadata = load("model.safetensors")
    save({"weight": torch.zeros(2, 3)}, "out.safetensors", metadata={"cell": "lstm"})
"""

import json
import struct
import sys

import torch

DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}
NAMES = {v: k for k, v in DTYPES.items()}
MAX_HEADER = 100_000_000

if sys.byteorder != "little":
    raise RuntimeError("safetensors_torch assumes a little-endian host")


class FormatError(ValueError):
    pass


def _numel(shape):
    n = 1
    for d in shape:
        n *= d
    return n


def loads(data, origin="<bytes>"):
    """Parses safetensors bytes; returns (dict name -> tensor, metadata dict)."""
    if len(data) < 8:
        raise FormatError(f"{origin}: file is {len(data)} bytes, too short for the header length")
    (n,) = struct.unpack("<Q", data[:8])
    if n > MAX_HEADER or n > len(data) - 8:
        raise FormatError(f"{origin}: header length {n} exceeds the file size or limit")
    header = json.loads(data[8 : 8 + n].decode("utf-8"))
    if not isinstance(header, dict):
        raise FormatError(f"{origin}: header is not a JSON object")
    metadata = header.pop("__metadata__", {}) or {}
    body = bytearray(data[8 + n :])
    tensors = {}
    spans = []
    for name, e in header.items():
        if set(e) != {"dtype", "shape", "data_offsets"}:
            raise FormatError(f"{origin}: tensor {name!r}: fields {sorted(e)}")
        if e["dtype"] not in DTYPES:
            raise FormatError(f"{origin}: tensor {name!r}: unknown dtype {e['dtype']!r}")
        dtype = DTYPES[e["dtype"]]
        shape = [int(d) for d in e["shape"]]
        if any(d < 0 for d in shape):
            raise FormatError(f"{origin}: tensor {name!r}: negative dimension in {shape}")
        begin, end = e["data_offsets"]
        size = _numel(shape) * torch.empty((), dtype=dtype).element_size()
        if not 0 <= begin <= end <= len(body) or end - begin != size:
            raise FormatError(f"{origin}: tensor {name!r}: bad data_offsets {[begin, end]} for {size} bytes")
        spans.append((begin, end, name))
        if size == 0:
            tensors[name] = torch.empty(shape, dtype=dtype)
        else:
            # clone() so each tensor owns its memory instead of viewing the whole file.
            flat = torch.frombuffer(body, dtype=dtype, count=_numel(shape), offset=begin)
            tensors[name] = flat.reshape(shape).clone()
    pos = 0
    for begin, end, name in sorted(spans):
        if begin != pos:
            raise FormatError(f"{origin}: tensor {name!r} begins at {begin}, expected {pos} (gap or overlap)")
        pos = end
    if pos != len(body):
        raise FormatError(f"{origin}: {len(body) - pos} trailing bytes after the last tensor")
    return tensors, metadata


def load(path):
    with open(path, "rb") as f:
        return loads(f.read(), path)


def _raw(t):
    t = t.detach().contiguous().cpu()
    if t.numel() == 0:
        return b""
    # A uint8 view is the exact in-memory bytes for every dtype, bfloat16 included.
    return t.reshape(-1).view(torch.uint8).numpy().tobytes()


def dumps(tensors, metadata=None):
    """Serializes {name: tensor} the way recur does: names sorted, header padded to 8 bytes."""
    header = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    chunks = []
    offset = 0
    for name in sorted(tensors):
        t = tensors[name]
        if t.dtype not in NAMES:
            raise ValueError(f"tensor {name!r}: dtype {t.dtype} has no safetensors name here")
        raw = _raw(t)
        header[name] = {"dtype": NAMES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(chunks)


def save(tensors, path, metadata=None):
    with open(path, "wb") as f:
        f.write(dumps(tensors, metadata))
