"""Name the likely mistake behind a wrong gradient, in one line, without giving the answer away.

``diagnose(name, got, expected, context)`` tries the mistakes people make most
often in these exercises, in order, and describes the first one that fits.
``context`` is what the checker knows of the forward pass: the forward tensors
by name, their correct gradients as ``d<name>``, the parameters, ``Xb``,
``Yb`` and ``n`` (see ``context_of``); without it only the mistakes that show
in the two tensors alone can be named. When nothing fits, it says so rather
than guess.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import torch
import torch.nn.functional as F

NO_HINT = "no specific diagnosis: go through the derivation of this line again"
Context = Mapping[str, object]


def diagnose(name: str, got: torch.Tensor, expected: torch.Tensor, context: Context | None = None) -> str:
    """One line on the likely cause of ``got`` differing from ``expected`` (the gradient of ``name``)."""
    context = context or {}
    got, expected = got.detach().double(), expected.detach().double()
    if got.shape != expected.shape:
        return shape_hint(got, expected)
    for check in (_zeros, _the_tensor_itself, _sign, _scale, _one_branch, _another_gradient,
                  _local_derivative, _embedding_scatter):
        hint = check(name, got, expected, context)
        if hint:
            return hint
    return NO_HINT


def close(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal up to float32 noise, for recognising a candidate (looser than the verdict)."""
    return a.shape == b.shape and (a - b).abs().max().item() <= 1e-4 * b.abs().max().item() + 1e-8


# ------------------------------------------------------------------ shapes

def shape_hint(got: torch.Tensor, expected: torch.Tensor) -> str:
    """What a shape mismatch most likely comes from."""
    want, have = tuple(expected.shape), tuple(got.shape)
    if got.dim() == expected.dim() == 2 and have == want[::-1] and close(got.T, expected):
        return f"transposed: the values are right but {have} should be {want}; swap the operands of the product"
    if got.numel() == expected.numel() and close(got.reshape(want), expected):
        if tuple(d for d in want if d != 1) == tuple(d for d in have if d != 1):
            return f"the values are right but a dimension of size 1 went missing: keepdim=True keeps {want}"
        return f"the values are right but the shape is {have}: view it as {want}"
    if _broadcasts_to(have, want):
        return (f"{have} broadcasts to {want}, which hides the mismatch in arithmetic: a gradient has its "
                f"tensor's full shape, so spread it over the broadcast dimensions")
    if got.dim() == expected.dim() and sorted(have) != sorted(want) and (1 in have or got.dim() == 1):
        return f"summed over the wrong dimension: the result must have shape {want}, not {have}"
    return f"shape {have}, expected {want}: match the tensor's shape, one entry per entry of it"


def _broadcasts_to(small: tuple, big: tuple) -> bool:
    try:
        return small != big and torch.broadcast_shapes(small, big) == big
    except RuntimeError:
        return False


# ------------------------------------------------------------------ values

def _zeros(name, got, expected, context) -> str | None:
    if not got.any() and expected.any():
        return "all zeros: nothing reached it (a contribution was never added in, or the wrong positions were set)"
    return None


def _the_tensor_itself(name, got, expected, context) -> str | None:
    value = context.get(name)
    if isinstance(value, torch.Tensor) and close(got, value.detach().double()):
        return f"this is {name} itself, not its gradient d{name}"
    return None


def _sign(name, got, expected, context) -> str | None:
    if close(-got, expected):
        return "sign flipped: check the sign of the local derivative (a minus sign, or a subtraction's second operand)"
    return None


def _scale(name, got, expected, context) -> str | None:
    norm = (expected * expected).sum().item()
    if norm == 0:
        return None
    factor = (got * expected).sum().item() / norm
    if abs(factor) < 1e-3 or not close(got, factor * expected):
        return None
    n = _batch_size(context, expected)
    known = [(n, "n: a 1/n (the mean's) is missing"), (1 / n, "1/n: a mean's 1/n is applied twice"),
             (n / (n - 1), "n/(n-1): Bessel's correction is in twice"),
             ((n - 1) / n, "(n-1)/n: the variance divides by n, but BatchNorm here uses n-1 (Bessel)"),
             (2.0, "2: a factor 2 too many (a term counted twice?)"),
             (0.5, "1/2: a factor 2 is missing (the derivative of a square is 2x)")]
    for value, meaning in known:
        if math.isclose(factor, value, rel_tol=1e-3):
            return f"off by a factor of {factor:.4g} = {meaning}"
    return f"off by a constant factor of {factor:.4g}: the shape of the formula is right, a constant is not"


def _batch_size(context: Context, expected: torch.Tensor) -> int:
    n = context.get("n")
    if isinstance(n, int) and n > 1:
        return n
    Yb = context.get("Yb")
    return len(Yb) if isinstance(Yb, torch.Tensor) and len(Yb) > 1 else max(2, expected.shape[0] if expected.dim() else 2)


# Tensors used twice in the chunked forward pass: each use sends its own
# contribution, and the gradient is their sum.
TWO_USES: dict[str, tuple[tuple[str, Callable], tuple[str, Callable]]] = {
    "counts": (("probs", lambda c: c["counts_sum_inv"] * c["dprobs"]),
               ("counts_sum", lambda c: torch.ones_like(c["counts"]) * c["dcounts_sum"])),
    "logits": (("norm_logits", lambda c: c["dnorm_logits"]),
               ("logit_maxes", lambda c: F.one_hot(c["logits"].max(1).indices, c["logits"].shape[1]) * c["dlogit_maxes"])),
    "bndiff": (("bnraw", lambda c: c["bnvar_inv"] * c["dbnraw"]),
               ("bndiff2", lambda c: 2 * c["bndiff"] * c["dbndiff2"])),
    "hprebn": (("bndiff", lambda c: c["dbndiff"]),
               ("bnmeani", lambda c: torch.ones_like(c["hprebn"]) * c["dbnmeani"] / c["hprebn"].shape[0])),
}


def _one_branch(name, got, expected, context) -> str | None:
    if name not in TWO_USES:
        return None
    uses = TWO_USES[name]
    for (use, contribution), (other, _) in (uses, uses[::-1]):
        value = _evaluate(contribution, context)
        if value is not None and close(got, value):
            return (f"only one of the two uses of {name} is counted (through {use}); it also feeds {other}: "
                    f"add that contribution with +=, do not overwrite with =")
    return None


def _another_gradient(name, got, expected, context) -> str | None:
    for key, value in context.items():
        if (key.startswith("d") and key != f"d{name}" and isinstance(value, torch.Tensor)
                and value.shape == got.shape and value.is_floating_point() and close(got, value.double())):
            return f"this equals {key}, the gradient of {key[1:]}, not of {name}"
    return None


# d(output)/d(input) of the element-wise lines, from the forward values.
LOCAL_DERIVATIVES: dict[str, Callable] = {
    "probs": lambda c: 1.0 / c["probs"],
    "counts_sum": lambda c: -c["counts_sum"] ** -2,
    "norm_logits": lambda c: c["counts"],
    "hpreact": lambda c: 1.0 - c["h"] ** 2,
    "bnvar": lambda c: -0.5 * (c["bnvar"] + 1e-5) ** -1.5,
    "bndiff2": lambda c: torch.ones_like(c["bndiff2"]) / (c["bndiff2"].shape[0] - 1),
}


def _local_derivative(name, got, expected, context) -> str | None:
    local = _evaluate(LOCAL_DERIVATIVES[name], context) if name in LOCAL_DERIVATIVES else None
    if local is not None and close(got, local.expand_as(got)):
        return "this is the local derivative alone: multiply it by the gradient arriving from above (the chain rule)"
    return None


def _embedding_scatter(name, got, expected, context) -> str | None:
    if name != "C" or not all(isinstance(context.get(k), torch.Tensor) for k in ("Xb", "demb")):
        return None
    Xb, demb = context["Xb"], context["demb"].double()
    overwritten = torch.zeros_like(got)
    overwritten[Xb] += demb  # what the one-liner does: a repeated row keeps one contribution
    if close(got, overwritten):
        return ("a character that appears several times in the batch kept only one contribution: "
                "dC[Xb] += demb does not add up repeated rows; accumulate them one by one or with index_add_")
    return None


def _evaluate(formula: Callable, context: Context) -> torch.Tensor | None:
    try:
        return formula({k: v.detach().double() if isinstance(v, torch.Tensor) and v.is_floating_point() else v
                        for k, v in context.items()}).double()
    except (KeyError, RuntimeError, TypeError, AttributeError, IndexError):
        return None


# ---------------------------------------------------------------- contexts

def context_of(forward: Mapping[str, torch.Tensor], inputs: Mapping[str, object] | None = None) -> dict:
    """A context from a forward pass after ``loss.backward()``: values, ``d<name>`` gradients, inputs."""
    context: dict[str, object] = {}
    for key, value in {**(inputs or {}), **forward}.items():
        if isinstance(value, torch.Tensor):
            context[key] = value.detach()
            if value.grad is not None:
                context[f"d{key}"] = value.grad
        else:
            context[key] = value
    if isinstance(context.get("Yb"), torch.Tensor):
        context.setdefault("n", len(context["Yb"]))
    return context
