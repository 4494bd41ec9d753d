"""Name the likely mistake behind a wrong gradient, in one line, without giving the answer away.

``diagnose(name, got, expected, context)`` tries the mistakes people make most
often in these exercises, in order, and returns the first one that fits as a
``Diagnosis``: a stable code from ``codes.CODES`` and a one-line message.
``context`` is what the checker knows of the forward pass: the forward tensors
by name, their correct gradients as ``d<name>``, the parameters, ``Xb``,
``Yb`` and ``n`` (see ``context_of``); without it only the mistakes that show
in the two tensors alone can be named. When nothing fits, it says so (code
``none``) rather than guess.

A hint must never point the wrong way: every check below asks for the whole
signature of its mistake (values that match after the fix, a factor clearly
different from 1, ...), not for a resemblance.
"""

from __future__ import annotations

import io
import math
import re
import tokenize
from collections.abc import Callable, Mapping

import torch
import torch.nn.functional as F

from .codes import NOTHING_FITS, Diagnosis, diagnosis

Context = Mapping[str, object]


def diagnose(name: str, got: torch.Tensor, expected: torch.Tensor, context: Context | None = None) -> Diagnosis:
    """The likely cause of ``got`` differing from ``expected`` (the gradient of ``name``)."""
    context = context or {}
    got, expected = got.detach().double(), expected.detach().double()
    if got.shape != expected.shape:
        return shape_diagnosis(got, expected)
    for check in (_zeros, _the_tensor_itself, _sign, _scale, _offset, _one_branch, _another_gradient,
                  _local_derivative, _embedding_scatter, _epsilon, _neighbour_as_local_derivative):
        found = check(name, got, expected, context)
        if found is not None:
            return found
    return NOTHING_FITS


def close(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal up to float32 noise, for recognising a candidate (looser than the verdict)."""
    return a.shape == b.shape and (a - b).abs().max().item() <= 1e-4 * b.abs().max().item() + 1e-8


# ------------------------------------------------------------------ shapes

def shape_diagnosis(got: torch.Tensor, expected: torch.Tensor) -> Diagnosis:
    """What a shape mismatch most likely comes from."""
    want, have = tuple(expected.shape), tuple(got.shape)
    same_values = got.numel() == expected.numel() and close(got.reshape(want), expected)
    if got.dim() == expected.dim() == 2 and min(want) > 1 and have == want[::-1] and close(got.T, expected):
        return diagnosis("shape.transposed", have=have, want=want)
    if have != want and _without_ones(have) == _without_ones(want) and got.dim() != expected.dim():
        values = " (the values are right)" if same_values else " (and the values differ as well)"
        code = "shape.extra_dim" if got.dim() > expected.dim() else "shape.missing_dim"
        return diagnosis(code, have=have, want=want, values=values)
    if same_values:
        return diagnosis("shape.view", have=have, want=want)
    if _broadcasts_to(have, want):
        return diagnosis("shape.broadcast_hidden", have=have, want=want)
    if _broadcasts_to(want, have):
        return _missing_sum(got, expected)
    if got.dim() == expected.dim() and sorted(have) != sorted(want) and (1 in have or got.dim() == 1):
        return diagnosis("shape.wrong_dim", have=have, want=want)
    return NOTHING_FITS


def _missing_sum(got: torch.Tensor, expected: torch.Tensor) -> Diagnosis:
    """``got`` has the shape that ``expected``'s tensor was broadcast to in the forward pass."""
    want, have = tuple(expected.shape), tuple(got.shape)
    extra = got.dim() - expected.dim()
    dims = tuple(range(extra)) + tuple(extra + i for i, size in enumerate(want) if size == 1 and have[extra + i] != 1)
    summed = got.sum(dims, keepdim=True).reshape(want) if dims else got
    values = " (summed, the values would be right)" if close(summed, expected) else ""
    over = f" over dimension{'s' if len(dims) > 1 else ''} {', '.join(map(str, dims))}" if dims else ""
    return diagnosis("shape.missing_sum", have=have, want=want, over=over, values=values)


def _without_ones(shape: tuple) -> tuple:
    return tuple(d for d in shape if d != 1)


def _broadcasts_to(small: tuple, big: tuple) -> bool:
    try:
        return small != big and torch.broadcast_shapes(small, big) == big
    except RuntimeError:
        return False


# ------------------------------------------------------------------ values

def _zeros(name, got, expected, context) -> Diagnosis | None:
    if not got.any() and expected.any():
        return diagnosis("zeros")
    return None


def _the_tensor_itself(name, got, expected, context) -> Diagnosis | None:
    value = context.get(name)
    if isinstance(value, torch.Tensor) and value.is_floating_point() and close(got, value.detach().double()):
        return diagnosis("other_tensor", what=f"{name} itself (its forward value)", name=name)
    return None


def _sign(name, got, expected, context) -> Diagnosis | None:
    if close(-got, expected):
        return diagnosis("sign")
    return None


def _scale(name, got, expected, context) -> Diagnosis | None:
    """A constant factor, only when it is clearly not 1 and explains the whole difference."""
    norm = (expected * expected).sum().item()
    if norm == 0:
        return None
    factor = (got * expected).sum().item() / norm
    difference = (got - expected).abs().max().item()
    residual = (got - factor * expected).abs().max().item()
    if abs(factor) < 1e-3 or abs(factor - 1) < 1e-3 or residual > 1e-3 * difference:
        return None
    n = _batch_size(context, expected)
    known = [(n, "scale.1/n", "n: a 1/n (the mean's) is missing"),
             (1 / n, "scale.1/n", "1/n: a mean's 1/n is applied twice"),
             (n / (n - 1), "scale.bessel", "n/(n-1): Bessel's correction is in twice"),
             ((n - 1) / n, "scale.bessel", "(n-1)/n: the variance divides by n, but BatchNorm here uses n-1 (Bessel)")]
    for value, code, meaning in known:
        if math.isclose(factor, value, rel_tol=1e-3):
            return diagnosis(code, factor=f"{factor:.4g}", detail=meaning)
    others = {2.0: " (a term counted twice?)", 0.5: " = 1/2 (a factor 2 missing: the derivative of a square is 2x)"}
    detail = next((text for value, text in others.items() if math.isclose(factor, value, rel_tol=1e-3)), "")
    return diagnosis("scale.other", factor=f"{factor:.4g}", detail=detail)


def _offset(name, got, expected, context) -> Diagnosis | None:
    """The same amount added to every entry (e.g. a gradient started from ones_like)."""
    difference = got - expected
    offset = difference.mean().item()
    scale = expected.abs().max().item()
    if got.numel() < 2 or abs(offset) <= 1e-3 * scale + 1e-6:
        return None
    if (difference - offset).abs().max().item() > 1e-3 * abs(offset) + 1e-6 * scale:
        return None
    return diagnosis("offset", offset=offset)


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


def _one_branch(name, got, expected, context) -> Diagnosis | None:
    if name not in TWO_USES:
        return None
    uses = TWO_USES[name]
    for (use, contribution), (other, _) in (uses, uses[::-1]):
        value = _evaluate(contribution, context)
        if value is not None and close(got, value):
            return diagnosis("branch.missing", name=name, use=use, other=other)
    return None


# The order the forward pass makes each tensor (a parameter at its first use):
# the backward pass finishes gradients in the reverse order.
FORWARD_ORDER = (
    "C", "emb", "embcat", "W1", "b1", "hprebn", "bnmeani", "bndiff", "bndiff2", "bnvar", "bnvar_inv", "bnraw",
    "bngain", "bnbias", "hpreact", "h", "W2", "b2", "logits", "logit_maxes", "norm_logits", "counts", "counts_sum",
    "counts_sum_inv", "probs", "logprobs", "loss",
)


def finished_later(a: str, b: str) -> bool:
    """Whether the backward pass finishes the gradient of ``a`` after that of ``b``."""
    return a in FORWARD_ORDER and b in FORWARD_ORDER and FORWARD_ORDER.index(a) < FORWARD_ORDER.index(b)


def _another_gradient(name, got, expected, context) -> Diagnosis | None:
    for key, value in context.items():
        if (key.startswith("d") and key != f"d{name}" and isinstance(value, torch.Tensor)
                and value.shape == got.shape and value.is_floating_point() and close(got, value.double())):
            if finished_later(key[1:], name):  # a later gradient's value: it was built on this one, in place
                return alias_diagnosis(f"d{name}", key)
            return diagnosis("other_tensor", what=f"{key}, the gradient of {key[1:]}", name=name)
    return None


def alias_diagnosis(variable: str, other: str) -> Diagnosis:
    """Two gradient variables that are one tensor: the later one was assigned from the earlier without .clone()."""
    if finished_later(variable[1:], other[1:]):
        variable, other = other, variable
    return diagnosis("alias", variable=variable, other=other)


# d(output)/d(input) of the element-wise lines, from the forward values.
LOCAL_DERIVATIVES: dict[str, Callable] = {
    "probs": lambda c: 1.0 / c["probs"],
    "counts_sum": lambda c: -c["counts_sum"] ** -2,
    "norm_logits": lambda c: c["counts"],
    "hpreact": lambda c: 1.0 - c["h"] ** 2,
    "bnvar": lambda c: -0.5 * (c["bnvar"] + 1e-5) ** -1.5,
    "bndiff2": lambda c: torch.ones_like(c["bndiff2"]) / (c["bndiff2"].shape[0] - 1),
}


def _local_derivative(name, got, expected, context) -> Diagnosis | None:
    local = _evaluate(LOCAL_DERIVATIVES[name], context) if name in LOCAL_DERIVATIVES else None
    if local is not None and close(got, local.expand_as(got)):
        return diagnosis("local_only")
    return None


def _embedding_scatter(name, got, expected, context) -> Diagnosis | None:
    if name != "C" or not all(isinstance(context.get(k), torch.Tensor) for k in ("Xb", "demb")):
        return None
    Xb, demb = context["Xb"], context["demb"].double()
    overwritten = torch.zeros_like(got)
    overwritten[Xb] += demb  # what the one-liner does: a repeated row keeps one contribution
    if close(got, overwritten):
        return diagnosis("scatter.repeats")
    return None


# What a learner puts where a local derivative belongs: a tensor of the line (or of the line that made the
# input), or one of these simple functions of it, times the gradient arriving from above.
NEIGHBOUR_FORMS: tuple[tuple[str, Callable], ...] = (
    ("{t}", lambda t: t), ("1/{t}", lambda t: 1.0 / t), ("{t}**2", lambda t: t**2), ("(1 - {t}**2)", lambda t: 1.0 - t**2),
)


def _neighbour_as_local_derivative(name, got, expected, context) -> Diagnosis | None:
    """``got`` is c * f(T) * dU, summed to its shape: T a tensor next to ``name`` in the forward pass, dU the
    gradient of a line that uses ``name``. Only a near-exact fit counts (never a resemblance).
    """
    from ..exercises import EX1_LINES

    scale = got.abs().max().item()
    if scale == 0:
        return None
    users = [line for line in EX1_LINES if line.output != name and name in _identifiers(line.code)]
    near = sorted({t for line in EX1_LINES if line.output == name or name in _identifiers(line.code)
                   for t in (_identifiers(line.code) | {line.output})})
    for line in users:
        upstream = context.get(f"d{line.output}")
        if not isinstance(upstream, torch.Tensor):
            continue
        for tensor in near:
            value = context.get(tensor)
            if not (isinstance(value, torch.Tensor) and value.is_floating_point()):
                continue
            for form, function in NEIGHBOUR_FORMS:
                try:
                    candidate = _summed_to(function(value.detach().double()) * upstream.detach().double(), got.shape)
                except RuntimeError:  # shapes that do not broadcast
                    continue
                if candidate is None or candidate.abs().max().item() < 1e-6 * scale:
                    continue
                factor = (got * candidate).sum().item() / (candidate * candidate).sum().item()
                if abs(factor) < 1e-6 or not close(got, factor * candidate) or close(factor * candidate, expected):
                    continue
                shown = form.format(t=tensor)
                return diagnosis("local_other", candidate=shown if math.isclose(factor, 1, rel_tol=1e-3)
                                 else f"{factor:.3g} * {shown}", upstream=f"d{line.output}", tensor=shown,
                                 line=line.code, name=name)
    return None


def _identifiers(code: str) -> set[str]:
    return set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", code))


def _summed_to(value: torch.Tensor | None, shape: torch.Size) -> torch.Tensor | None:
    """``value`` summed over the dimensions it was broadcast along to reach ``shape``; None when it cannot be."""
    if value is None:
        return None
    try:
        extra = value.dim() - len(shape)
        if extra < 0:
            return None
        dims = tuple(range(extra)) + tuple(extra + i for i, size in enumerate(shape) if size == 1
                                           and value.shape[extra + i] != 1)
        summed = value.sum(dims, keepdim=True).reshape(shape) if dims else value
        return summed if summed.shape == shape else None
    except RuntimeError:
        return None


EPSILON_MAX_RELATIVE = 1e-2  # a wrong epsilon moves a gradient by about 3e-5 / variance of its scale
EPSILON_MIN_CORRELATION = 0.8
BN_EPS = 1e-5
# The forward lines from the embedding to the batch variance: a wrong epsilon
# in dbnvar reaches the gradient of each of these tensors.
EPSILON_REACHES = ("bnvar", "bndiff2", "bndiff", "bnmeani", "hprebn", "embcat", "emb", "W1", "b1", "C")


def _epsilon(name, got, expected, context) -> Diagnosis | None:
    """``(bnvar - 1e-5)**-1.5`` in dbnvar, here or upstream of here in the backward pass.

    With the forward pass at hand the change that bug makes to this gradient
    is computed exactly; without it, the signature is a tiny error whose size
    per feature (the last dimension) follows 1 / variance.
    """
    difference = got - expected
    relative = difference.abs().max().item() / max(expected.abs().max().item(), 1e-30)
    if not 0 < relative < EPSILON_MAX_RELATIVE:
        return None
    shift = _epsilon_shift(name, context)
    exact = shift is not None and shift.shape == got.shape and shift.abs().max().item() > 0 and \
        (difference - shift).abs().max().item() <= 0.25 * shift.abs().max().item()  # float32 noise
    if exact or _error_follows_inverse_variance(difference, expected, context.get("bnvar")):
        return diagnosis("epsilon", relative=f"{relative:.1e}")
    return None


def _epsilon_shift(name: str, context: Context) -> torch.Tensor | None:
    """How the gradient of ``name`` changes when dbnvar is derived with ``(bnvar - 1e-5)**-1.5``.

    Re-runs the forward lines from C to bnvar (``exercises.EX1_LINES``) on the
    context's parameters and pushes the change of dbnvar back with autograd.
    """
    from ..exercises import EX1_LINES

    if name not in EPSILON_REACHES or not all(isinstance(context.get(k), torch.Tensor)
                                               for k in ("C", "W1", "b1", "Xb", "dbnvar")):
        return None
    lines = {line.output: line.code for line in EX1_LINES}
    leaves = {k: context[k].detach().double().requires_grad_(True) for k in ("C", "W1", "b1")}
    scope = {"torch": torch, "Xb": context["Xb"], "n": len(context["Xb"]), **leaves}
    try:
        with torch.enable_grad():
            for output in ("emb", "embcat", "hprebn", "bnmeani", "bndiff", "bndiff2", "bnvar"):
                exec(lines[output], scope)
            bnvar = scope["bnvar"]
            ratio = ((bnvar - BN_EPS) / (bnvar + BN_EPS)) ** -1.5
            change = context["dbnvar"].detach().double() * (ratio - 1)
            if name == "bnvar":
                return change.detach()
            (shift,) = torch.autograd.grad(bnvar, [scope[name]], grad_outputs=change.detach())
    except (RuntimeError, KeyError, TypeError, IndexError):
        return None
    return shift.detach()


def _error_follows_inverse_variance(difference: torch.Tensor, expected: torch.Tensor, bnvar) -> bool:
    """Whether the error of each feature (last dimension) grows as that feature's variance shrinks."""
    if not isinstance(bnvar, torch.Tensor) or difference.dim() == 0 or difference.shape[-1] != bnvar.shape[-1] \
            or bnvar.numel() < 3:
        return False
    features = difference.shape[-1]
    per_feature = difference.reshape(-1, features).abs().amax(0) / \
        expected.reshape(-1, features).abs().amax(0).clamp_min(1e-30)
    usable = per_feature > 0
    if usable.sum() < 3:
        return False
    error = per_feature[usable].log()
    inverse_variance = -bnvar.detach().double().reshape(-1)[usable].log()
    return _correlation(error, inverse_variance) >= EPSILON_MIN_CORRELATION


def _correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a - a.mean(), b - b.mean()
    denominator = (a.norm() * b.norm()).item()
    return (a * b).sum().item() / denominator if denominator > 0 else 0.0


def wrong_order(names: tuple[str, ...] | list[str], got: list, expected: list[torch.Tensor]) -> Diagnosis | None:
    """Exercise 4: returned gradients that are right but at another place, or another parameter's gradient.

    ``got[i]`` should be the gradient of ``names[i]``; None when no returned
    tensor sits where another parameter's gradient belongs.
    """
    if len(got) != len(expected):
        return None
    misplaced = []
    for index, value in enumerate(got):
        if not isinstance(value, torch.Tensor) or not value.is_floating_point():
            continue
        value = value.detach().double()
        if value.shape == expected[index].shape and close(value, expected[index].double()):
            continue
        matches = [j for j, reference in enumerate(expected) if j != index and value.shape == reference.shape
                   and reference.abs().max().item() > 1e-6 and close(value, reference.detach().double())]
        if matches:
            misplaced.append(f"d{names[matches[0]]} is where d{names[index]} belongs")
    if not misplaced:
        return None
    return diagnosis("order", detail="; ".join(misplaced),
                     expected="[" + ", ".join(f"d{name}" for name in names) + "]")


def hardcoded_size(notebook: Mapping[str, int], hidden: Mapping[str, int], sources: list[str]) -> Diagnosis:
    """An answer right on the notebook's sizes and wrong on the hidden case's: a size typed in as a number.

    ``notebook`` and ``hidden`` hold n, n_hidden, n_embd and block_size;
    every size (or product of sizes) that differs between them and is written
    in ``sources`` is named.
    """
    def derived(sizes: Mapping[str, int]) -> dict[str, int]:
        return {"n": sizes["n"], "n_hidden": sizes["n_hidden"], "n_embd": sizes["n_embd"],
                "n * block_size": sizes["n"] * sizes["block_size"],
                "block_size * n_embd": sizes["block_size"] * sizes["n_embd"]}

    mine, theirs, written = derived(notebook), derived(hidden), _whole_numbers(sources)
    named = [f"; {mine[size]} appears in your code; the hidden case has {size} = {theirs[size]}"
             for size in mine if mine[size] in written and mine[size] != theirs[size]]
    return diagnosis("hardcoded_size", notebook=_sizes_text(notebook), hidden=_sizes_text(hidden),
                     literals="".join(named))


def _sizes_text(sizes: Mapping[str, int]) -> str:
    return ", ".join(f"{size} = {sizes[size]}" for size in ("n", "n_hidden", "n_embd"))


def _whole_numbers(sources: list[str]) -> set[int]:
    """Every whole number written in the code (32, or 32.0); read token by token, so magics do no harm."""
    numbers = set()
    for source in sources:
        try:
            tokens = [t.string for t in tokenize.generate_tokens(io.StringIO(source).readline)
                      if t.type == tokenize.NUMBER]
        except (tokenize.TokenError, SyntaxError):
            continue
        for token in tokens:
            try:
                value = float(token.replace("_", ""))
            except ValueError:  # hexadecimal, complex: not a size
                continue
            if value.is_integer():
                numbers.add(int(value))
    return numbers


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
