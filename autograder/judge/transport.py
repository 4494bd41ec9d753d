"""How the judge's child process hands back what a student's code produced.

Only plain data crosses the process boundary: tensors as raw bytes with a
dtype from a short list, numbers, lists of them, None, or the name of some
other type (a whole number stays whole). Nothing is unpickled, so a hostile child cannot run code in the
grader, and sizes are bounded, so it cannot make the grader hold much.
"""

from __future__ import annotations

import base64
import math

import numpy as np
import torch

MAX_ELEMENTS = 1_000_000  # far above any gradient here (the largest has a few thousand); stops a memory bomb
MAX_ITEMS = 64
_DTYPES = {"float32": torch.float32, "float64": torch.float64, "float16": torch.float16,
           "int64": torch.int64, "int32": torch.int32, "bool": torch.bool}


class Opaque:
    """Stands for a value that was neither a tensor nor a list (see ``opaque``)."""


def opaque(type_name: str) -> Opaque:
    """An instance of a class named ``type_name``, so messages can say "got a dict"."""
    name = type_name if type_name.isidentifier() else "object"
    return type(name, (Opaque,), {})()


def encode(value) -> dict:
    """A JSON-ready description of ``value`` (a student's answer)."""
    if isinstance(value, torch.Tensor):
        tensor = value.detach().cpu()
        if tensor.dtype == torch.bfloat16:
            tensor = tensor.float()
        name = str(tensor.dtype).removeprefix("torch.")
        if name not in _DTYPES or tensor.numel() > MAX_ELEMENTS:
            return {"kind": "other", "type": "unsupported_tensor"}
        data = tensor.contiguous().numpy().tobytes()
        return {"kind": "tensor", "dtype": name, "shape": list(tensor.shape),
                "requires_grad": bool(value.requires_grad), "data": base64.b64encode(data).decode()}
    if isinstance(value, (list, tuple)):
        return {"kind": "list", "items": [encode(v) for v in list(value)[:MAX_ITEMS]]}
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) < 2**53:
        return {"kind": "number", "value": value, "integer": True}
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value) if abs(value) < 1e300 else math.inf
        if math.isfinite(number):
            return {"kind": "number", "value": number}
    if value is None:
        return {"kind": "none"}
    return {"kind": "other", "type": type(value).__name__}


def decode(message: dict):
    """Rebuild a value from ``encode``'s description; refuses anything else."""
    kind = message.get("kind")
    if kind == "tensor":
        dtype = _DTYPES[message["dtype"]]
        shape = [int(s) for s in message["shape"]]
        count = int(np.prod(shape)) if shape else 1
        if count > MAX_ELEMENTS:
            raise ValueError("tensor too large")
        raw = base64.b64decode(message["data"], validate=True)
        numpy_dtype = torch.empty(0, dtype=dtype).numpy().dtype
        array = np.frombuffer(raw, dtype=numpy_dtype, count=count).reshape(shape)
        return torch.from_numpy(array.copy())
    if kind == "list":
        return [decode(item) for item in message["items"][:MAX_ITEMS]]
    if kind == "number":
        return int(message["value"]) if message.get("integer") is True else float(message["value"])
    if kind == "none":
        return None
    if kind == "other":
        return opaque(str(message.get("type", "object"))[:80])
    raise ValueError(f"unknown value kind {kind!r}")
