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

from ..workbook.transformer import GELU_CUBIC, GELU_SCALE, LN_EPS
from .codes import NOTHING_FITS, Diagnosis, diagnosis

Context = Mapping[str, object]


def diagnose(name: str, got: torch.Tensor, expected: torch.Tensor, context: Context | None = None) -> Diagnosis:
    """The likely cause of ``got`` differing from ``expected`` (the gradient of ``name``)."""
    context = context or {}
    got, expected = got.detach().double(), expected.detach().double()
    if got.shape != expected.shape:
        return shape_diagnosis(got, expected)
    for check in (_zeros, _the_tensor_itself, _sign, _future_leak, _square_transposed, _attention_scale, _scale,
                  _offset, _layer_norm_variants, _attention_variants, _one_branch, _another_gradient,
                  _local_derivative, _embedding_scatter, _token_scatter, _epsilon, _neighbour_as_local_derivative):
        found = check(name, got, expected, context)
        if found is not None:
            return found
    return NOTHING_FITS


def close(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal up to float32 noise, for recognising a candidate (looser than the verdict); never a candidate with
    an infinite entry (a masked score: inf <= inf would hold)."""
    return a.shape == b.shape and bool(torch.isfinite(b).all()) \
        and (a - b).abs().max().item() <= 1e-4 * b.abs().max().item() + 1e-8


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
        context.setdefault("n", context["Yb"].numel())  # the predictions the loss averages: n, or B*T
    return context


# ------------------------------------------------ notebook 06: the transformer block
#
# The tensors of ``workbook.transformer.chunked_forward`` (x0 ... logits) and of
# Part 2's tasks (``x_ln``; ``q_h``, ``k_h``, ``v_h`` of one head, or of every
# head at once in the hidden checks). A context holds their forward values,
# their gradients as ``d<name>`` and, in the hidden checks, the sizes as ints.

def matches(got: torch.Tensor, variant: torch.Tensor | None, expected: torch.Tensor) -> bool:
    """``got`` is ``variant`` (a known mistake, recomputed), much nearer to it than the mistake is to the right
    answer; a mistake too small to tell from float32 rounding (1e-6 of the scale) matches nothing."""
    if variant is None or variant.shape != got.shape or not bool(torch.isfinite(variant).all()):
        return False
    mistake = (variant - expected).abs().max().item()
    if mistake <= 1e-6 * expected.abs().max().item():
        return False
    return (got - variant).abs().max().item() <= 0.1 * mistake


def _square_transposed(name, got, expected, context) -> Diagnosis | None:
    """A square matrix's gradient transposed (``Wo`` is (C, C): its shape cannot tell)."""
    if got.dim() == 2 and got.shape[0] == got.shape[1] > 1 and not close(got, expected) and close(got.T, expected):
        return diagnosis("shape.transposed", have="the transpose", want="the matrix itself")
    return None


def _token_scatter(name, got, expected, context) -> Diagnosis | None:
    """``dwte[Xb] += dtok_emb``, which keeps one contribution of a repeated character (``scatter.repeats``)."""
    Xb, dtok_emb = context.get("Xb"), _tensor(context, "dtok_emb")
    if name != "wte" or not isinstance(Xb, torch.Tensor) or dtok_emb is None:
        return None
    overwritten = torch.zeros_like(got)
    overwritten[Xb] += dtok_emb
    return diagnosis("scatter.repeats") if matches(got, overwritten, expected) else None


def _tensor(context: Context, name: str) -> torch.Tensor | None:
    value = context.get(name)
    return value.detach().double() if isinstance(value, torch.Tensor) and value.is_floating_point() else None


def _head_size(context: Context, suffix: str = "") -> int | None:
    """hs: from the context's sizes, else from the queries' last dimension."""
    if isinstance(context.get("hs"), int):
        return context["hs"]
    q = context.get(f"q{suffix}")
    return q.shape[-1] if isinstance(q, torch.Tensor) and q.dim() >= 2 else None


def _future_leak(name, got, expected, context) -> Diagnosis | None:
    """Entries above the diagonal of a (.., T, T) gradient where autograd's are exactly 0: the masked future."""
    if got.dim() < 2 or got.shape[-1] != got.shape[-2] or got.shape[-1] < 2:
        return None
    future = torch.ones(got.shape[-2:], dtype=torch.bool).triu(1)
    if expected[..., future].any() or not expected.any():
        return None
    leaked = got[..., future].abs() > 1e-6 * expected.abs().max().item()
    if not leaked.any():
        return None
    return diagnosis("attention.future_leak",
                     detail=f"{int(leaked.sum())} entries above the diagonal (a key after its query) are not 0")


# The gradients that carry the attention's 1/sqrt(hs) once; qkv and its layer carry it in two of three thirds.
SCALED_BY_ATTENTION = ("scores", "scaled", "q", "k", "q_h", "k_h")
QKV_GRADIENTS = ("qkv", "bqkv", "Wqkv")


def _factor(got: torch.Tensor, expected: torch.Tensor) -> float | None:
    """The constant c with got = c * expected, when there is one (up to float32 noise)."""
    norm = (expected * expected).sum().item()
    if norm == 0:
        return None
    factor = (got * expected).sum().item() / norm
    return factor if close(got, factor * expected) else None


def _attention_scale(name, got, expected, context) -> Diagnosis | None:
    hs = _head_size(context, "_h" if name.endswith("_h") else "")
    if hs is None or hs < 2 or name not in SCALED_BY_ATTENTION + QKV_GRADIENTS:
        return None
    if name in QKV_GRADIENTS:
        if got.shape[-1] % 3:
            return None
        (gq, gk, gv), (eq, ek, ev) = got.chunk(3, -1), expected.chunk(3, -1)
        factor = _factor(gq, eq)
        if factor is None or not close(gv, ev) or not close(gk, factor * ek):
            return None
    else:
        factor = _factor(got, expected)
    if factor is None:
        return None
    for value, detail in ((hs**0.5, f"sqrt(hs) = sqrt({hs}): the scale 1/sqrt(hs) is missing"),
                          (hs**-0.5, f"1/sqrt(hs) = 1/sqrt({hs}): the scale is applied twice")):
        if math.isclose(factor, value, rel_tol=1e-3):
            return diagnosis("attention.scale", factor=f"{factor:.4g}", detail=detail)
    return None


LAYER_NORMS = ("ln1", "ln2", "lnf")


def _layer_norm_variants(name, got, expected, context) -> Diagnosis | None:
    """LayerNorm with Bessel's correction (Part 1's diff, Part 2's fused dx), or a wrong epsilon (Part 1's var)."""
    C = got.shape[-1] if got.dim() else 0
    if name == "x_ln" and C > 1:
        parts = [_tensor(context, key) for key in ("gain_ln", "xhat_ln", "rstd_ln", "dout_ln")]
        if all(part is not None for part in parts):
            gain, xhat, rstd, dout = parts
            g = gain * dout
            bessel = rstd * (g - g.mean(-1, keepdim=True) - C / (C - 1) * xhat * (g * xhat).mean(-1, keepdim=True))
            if matches(got, bessel, expected):
                return diagnosis("layernorm.bessel", where="C / (C - 1) on the x-hat term")
    for ln in LAYER_NORMS:
        if name == f"{ln}_diff" and C > 1:
            parts = [_tensor(context, key) for key in (f"{ln}_rstd", f"d{ln}_xhat", f"{ln}_diff", f"d{ln}_var")]
            if all(part is not None for part in parts):
                rstd, dxhat, diff, dvar = parts
                if matches(got, rstd * dxhat + 2 / (C - 1) * diff * dvar, expected):
                    return diagnosis("layernorm.bessel", where="2 / (C - 1) in the variance's part")
        if name == f"{ln}_var":
            var, drstd = _tensor(context, f"{ln}_var"), _tensor(context, f"d{ln}_rstd")
            if var is None or drstd is None:
                continue
            for wrong in (var - LN_EPS, var):  # epsilon subtracted, or left out
                variant = -0.5 * wrong.clamp_min(1e-30) ** -1.5 * drstd
                if matches(got, variant, expected):
                    relative = (got - expected).abs().max().item() / max(expected.abs().max().item(), 1e-30)
                    return diagnosis("epsilon", relative=f"{relative:.1e}")
    return None


def attention_backward(P, dY, Q, K, V, scale: float, mistake: str = ""):
    """(dQ, dK, dV) of Y = softmax(Q K^T * scale, causal) V, given P and dY, with one of the mistakes
    notebook 06 invites: "row_sum" (the softmax's backward without it), "k_transpose" (dK from dS, not
    dS^T), "q_transpose" (dQ from dS^T), "unmasked" (the softmax taken without the causal mask)."""
    if mistake == "unmasked":
        P = torch.softmax(Q @ K.transpose(-2, -1) * scale, -1)
    dP = dY @ V.transpose(-2, -1)
    dS = P * dP * scale if mistake == "row_sum" else P * (dP - (P * dP).sum(-1, keepdim=True)) * scale
    dQ = (dS.transpose(-2, -1) if mistake == "q_transpose" else dS) @ K
    dK = (dS if mistake == "k_transpose" else dS.transpose(-2, -1)) @ Q
    return dQ, dK, P.transpose(-2, -1) @ dY


ATTENTION_MISTAKES = {  # mistake -> (code, detail)
    "unmasked": ("attention.future_leak", "it is the gradient of the attention without its causal mask"),
    "row_sum": ("softmax.row_sum", ""),
    "k_transpose": ("attention.k_transpose", "the keys' gradient from dS where it takes dS transposed"),
    "q_transpose": ("attention.k_transpose", "the queries' gradient from dS transposed where it takes dS"),
}


def _attention_variants(name, got, expected, context) -> Diagnosis | None:
    """The attention's backward with one of ``attention_backward``'s mistakes, for the gradient ``name``."""
    suffix = "_h" if name in ("q_h", "k_h", "v_h") else ""
    if name not in ("q", "k", "q_h", "k_h", "v_h") + QKV_GRADIENTS:
        return None
    if name in ("q", "k"):  # Part 1: the scores' gradient is given
        dS, q, k = (_tensor(context, key) for key in ("dscores", "q", "k"))
        if dS is None or q is None or k is None:
            return None
        variants = {"q_transpose": dS.transpose(-2, -1) @ k} if name == "q" else {"k_transpose": dS @ q}
        for mistake, value in variants.items():
            if matches(got, value, expected):
                return diagnosis(ATTENTION_MISTAKES[mistake][0], detail=ATTENTION_MISTAKES[mistake][1])
        return None
    P, dY, Q, K, V = [_tensor(context, key) for key in (
        ("att_h", "dy_h", "q_h", "k_h", "v_h") if suffix else ("att", "dy_heads", "q", "k", "v"))]
    hs = _head_size(context, suffix)
    if any(t is None for t in (P, dY, Q, K, V)) or hs is None:
        return None
    for mistake, (code, detail) in ATTENTION_MISTAKES.items():
        try:
            variant = _as_gradient_of(name, attention_backward(P, dY, Q, K, V, hs**-0.5, mistake), context)
        except (RuntimeError, IndexError, KeyError):
            continue
        if matches(got, variant, expected):
            return diagnosis(code, **({"detail": detail} if detail else {}))
    return None


def _as_gradient_of(name: str, grads, context: Context) -> torch.Tensor | None:
    """The gradient of ``name`` from the attention's (dQ, dK, dV): one of them, or qkv's, bqkv's or Wqkv's."""
    dQ, dK, dV = grads
    if name in ("q_h", "k_h", "v_h"):
        return {"q_h": dQ, "k_h": dK, "v_h": dV}[name]
    B, nh, T, hs = dQ.shape
    dqkv = torch.cat([d.transpose(1, 2).reshape(B, T, nh * hs) for d in (dQ, dK, dV)], -1)
    if name == "qkv":
        return dqkv
    if name == "bqkv":
        return dqkv.sum((0, 1))
    ln1_out = _tensor(context, "ln1_out")
    return None if ln1_out is None else ln1_out.reshape(B * T, -1).T @ dqkv.reshape(B * T, -1)


def _transformer_uses() -> dict[str, tuple[tuple[str, Callable], tuple[str, Callable]]]:
    """Notebook 06's tensors used twice (x1 and x0: by the residual sum and by their LayerNorm)."""
    uses = {
        "att_exp": (("att", lambda c: c["datt"] / c["att_sum"]),
                    ("att_sum", lambda c: torch.ones_like(c["att_exp"]) * c["datt_sum"])),
        "masked": (("att_exp", lambda c: c["att_exp"] * c["datt_exp"]),
                   ("att_max", lambda c: F.one_hot(c["masked"].max(-1).indices, c["masked"].shape[-1]) * c["datt_max"])),
        "h_pre": (("h", lambda c: 0.5 * (1.0 + c["gelu_tanh"]) * c["dh"]),
                  ("gelu_in", lambda c: GELU_SCALE * (1.0 + 3 * GELU_CUBIC * c["h_pre"] ** 2) * c["dgelu_in"])),
        "x2": (("lnf_diff", lambda c: c["dlnf_diff"]),
               ("lnf_mean", lambda c: torch.ones_like(c["x2"]) * c["dlnf_mean"] / c["x2"].shape[-1])),
        "x1": (("the residual sum x2", lambda c: c["dx2"]),
               ("ln2", lambda c: c["dln2_diff"] + c["dln2_mean"] / c["x1"].shape[-1])),
        "x0": (("the residual sum x1", lambda c: c["dx1"]),
               ("ln1", lambda c: c["dln1_diff"] + c["dln1_mean"] / c["x0"].shape[-1])),
    }
    for ln in LAYER_NORMS:
        uses[f"{ln}_diff"] = (
            (f"{ln}_xhat", lambda c, ln=ln: c[f"{ln}_rstd"] * c[f"d{ln}_xhat"]),
            (f"{ln}_var", lambda c, ln=ln: 2 / c[f"{ln}_diff"].shape[-1] * c[f"{ln}_diff"] * c[f"d{ln}_var"]))
    return uses


TWO_USES.update(_transformer_uses())


def hardcoded_sizes(notebook: Mapping[str, int], hidden: Mapping[str, int], sources: list[str]) -> Diagnosis | None:
    """A size typed in as a number, named: each size (or product, "B * T") of ``notebook`` that differs on
    ``hidden`` and is written in ``sources``; None when none is (then the failure has another cause)."""
    written = _whole_numbers(sources)
    named = [f"; {notebook[size]} appears in your code; the hidden case has {size} = {hidden[size]}"
             for size in notebook if notebook[size] in written and notebook[size] != hidden.get(size)]
    if not named:
        return None

    def text(sizes: Mapping[str, int]) -> str:
        return ", ".join(f"{size} = {value}" for size, value in sizes.items() if " " not in size)

    return diagnosis("hardcoded_size", notebook=text(notebook), hidden=text(hidden), literals="".join(named))
