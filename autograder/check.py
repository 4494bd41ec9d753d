"""``cmp``: compare a gradient derived by hand with autograd's.

A gradient passes when it has exactly the reference's shape and finite
float values within a scale-aware tolerance::

    maxdiff <= RTOL * max|reference|      when max|reference| >= ZERO_LEVEL
    maxdiff <= ZERO_LEVEL                 otherwise (the reference is ~0)

Why these numbers (measured on torch 2.13, float32, over many seeds and
shapes; ``tests/test_check.py`` keeps them honest):

* Valid formulations differ from autograd by up to ~4e-7 of the tensor's
  largest magnitude (float32 rounding in another order of operations), so
  RTOL leaves almost 4x headroom over that.
* A genuine bug can be small: ``(bnvar - 1e-5)**-1.5`` instead of
  ``(bnvar + 1e-5)**-1.5`` in ``dbnvar`` is off by 3e-6 to 8e-5 of the scale,
  so RTOL must stay below 3e-6.
* Mathematically zero gradients (``dlogit_maxes``, ``db1``) come out of
  autograd as rounding noise of 1e-9 to 4e-8 with no scale of their own. A
  reference whose largest entry is below ZERO_LEVEL is taken to be such
  noise, and any answer that close to zero passes; every real gradient in
  these exercises is above 1e-5.

Exactness is reported but never required: bit-exact agreement depends on the
order of float operations, which differs between correct formulations and
between torch versions.
"""

from __future__ import annotations

import ast
import inspect
import sys
from collections.abc import Mapping
from dataclasses import dataclass

import torch

from .diagnose import CODES_BY_NAME, alias_diagnosis, context_of, diagnose, diagnosis, wrong_order

RTOL = 1.5e-6
ZERO_LEVEL = 1e-6
# Parameters after a short SGD run (Exercise 4): rounding compounds over the
# steps, to ~1e-7 of a parameter's scale for a correct backward pass.
TRAINED_RTOL = 1e-5


@dataclass(frozen=True)
class Comparison:
    """The outcome of comparing one gradient with its reference."""

    name: str
    ok: bool
    exact: bool
    maxdiff: float | None  # None when the values could not be compared at all
    tolerance: float | None
    expected_shape: tuple[int, ...] | None
    problem: str = ""  # why it failed, in one line; empty when ok
    hint: str = ""  # the likely cause (see ``diagnose``), or a note on a pass
    code: str = ""  # the diagnosis code (``diagnose.CODES``); "" when the comparison passed

    def line(self) -> str:
        """The report line: the lecture's three columns, then shape and tolerance."""
        maxdiff = "n/a" if self.maxdiff is None else f"{self.maxdiff:.1e}"
        tolerance = "n/a" if self.tolerance is None else f"{self.tolerance:.1e}"
        shape = "?" if self.expected_shape is None else str(tuple(self.expected_shape))
        text = (f"{self.name:15s} | exact: {str(self.exact):5s} | approximate: {str(self.ok):5s} "
                f"| maxdiff: {maxdiff:7s} | shape {shape} | tol {tolerance}")
        return text + "".join(f"\n{'':15s}   -> {note}" for note in (self.problem, self.hint) if note)


def tolerance_for(reference: torch.Tensor) -> float:
    """The largest accepted max|got - reference| for this reference tensor."""
    scale = reference.detach().abs().max().item() if reference.numel() else 0.0
    return RTOL * scale if scale >= ZERO_LEVEL else ZERO_LEVEL


ROUNDING_NOTE = "right: not bit-identical only because floating point rounds differently in another order of operations"
# A right value in a leaf that requires grad (``requires_grad_()``, or ``torch.tensor(..., requires_grad=True)``):
# autograd would treat it as a parameter and record every operation on it.
TRACKED_NOTE = ("right, but this tensor requires grad, so autograd records everything done with it: a gradient "
                "is plain data; leave out requires_grad_() / requires_grad=True")


def compare(name: str, got: object, expected: torch.Tensor, context: Mapping | None = None) -> Comparison:
    """Compare ``got`` (a student's gradient of ``name``) with ``expected`` (autograd's).

    ``context`` (the forward pass, see ``diagnose.context_of``) lets a wrong
    answer be explained more precisely.
    """
    expected = expected.detach()
    shape = tuple(expected.shape)
    fail = _first_problem(got, expected)
    if fail is not None:
        code, problem = fail
        hint = CODES_BY_NAME[code].message if code != "unknown" else ""
        return Comparison(name, False, False, None, None, shape, problem, hint, code)
    parameter = got.requires_grad and got.is_leaf
    got = got.detach()
    if got.shape != expected.shape:
        problem = f"shape {tuple(got.shape)}, expected {shape}"
        found = diagnose(name, got, expected, context)
        return Comparison(name, False, False, None, None, shape, problem, found.message, found.code)
    maxdiff = (got.double() - expected.double()).abs().max().item() if got.numel() else 0.0
    tolerance = tolerance_for(expected)
    exact = bool(torch.equal(got.to(expected.dtype), expected))
    if maxdiff <= tolerance:
        note = TRACKED_NOTE if parameter else "" if exact else ROUNDING_NOTE
        return Comparison(name, True, exact, maxdiff, tolerance, shape, "", note)
    problem = f"values differ: maxdiff {maxdiff:.2e} is above the tolerance {tolerance:.1e}"
    found = (diagnosis("other_tensor", what=f"the parameter {name} itself (a leaf tensor that requires grad)",
                       name=name)
             if parameter else diagnose(name, got, expected, context))
    return Comparison(name, False, exact, maxdiff, tolerance, shape, problem, found.message, found.code)


def _first_problem(got: object, expected: torch.Tensor) -> tuple[str, str] | None:
    """(diagnosis code, why) when ``got`` cannot be a gradient at all, else None."""
    if got is None:
        return "unknown", "got None instead of a tensor (did the cell assign the variable?)"
    if not isinstance(got, torch.Tensor):
        return "unknown", f"got a {type(got).__name__}, expected a torch.Tensor of shape {tuple(expected.shape)}"
    if not (got.is_floating_point() or got.is_complex()):
        return "int_dtype", f"got an integer tensor ({got.dtype}); a gradient is a float tensor ({expected.dtype})"
    if got.numel() and not torch.isfinite(got).all():
        bad = "NaN" if torch.isnan(got).any() else "inf"
        return "nan", f"contains {bad}"
    return None


def cmp(name: str, dt: object, t: torch.Tensor) -> bool:
    """Print how ``dt`` compares with ``t.grad`` and return whether it passes.

    ``name`` names the tensor ``t`` whose gradient ``dt`` is meant to be, e.g.
    ``cmp("logprobs", dlogprobs, logprobs)``. ``t`` must have taken part in a
    ``loss.backward()`` with ``retain_grad()`` (the forward helpers do that).
    In a notebook, ``assert cmp(...)`` fails with the reason (see ``failure_reason``).
    """
    if not isinstance(t, torch.Tensor) or t.grad is None:
        raise ValueError(f"{name}: the reference has no .grad; run the forward pass and loss.backward() first")
    result = compare(name, dt, t.grad, _context_for(t))
    print(result.line())
    if result.code != "alias":  # the same explanation, found from the memory rather than the values
        for other in _aliases(name, dt, inspect.currentframe().f_back):
            print(f"{'':15s}   -> note: {alias_diagnosis(f'd{name}', other).message}")
    note_outcome(reason_of([result]))
    return result.ok


def _context_for(t: torch.Tensor) -> dict | None:
    """What the checker knows of the forward pass that made ``t``, if any."""
    from . import model

    forward = model.forward_containing(t)
    return None if forward is None else context_of(forward, forward.inputs)


def _aliases(name: str, dt: object, frame) -> list[str]:
    """The caller's other gradient variables that share ``dt``'s memory (``dX = dY`` without a clone)."""
    if not isinstance(dt, torch.Tensor) or frame is None:
        return []
    pointer = dt.untyped_storage().data_ptr()
    return sorted(key for key, value in frame.f_globals.items()
                  if key.startswith("d") and key != f"d{name}" and isinstance(value, torch.Tensor)
                  and pointer != 0 and value.untyped_storage().data_ptr() == pointer)


def compare_gradients(names, got: list, expected: list[torch.Tensor], context: Mapping | None = None) -> list[Comparison]:
    """Exercise 4: each returned gradient against autograd's, or one ``order`` failure.

    When the list holds right gradients in the wrong places, that is the one
    thing to say (the per-tensor comparisons would each name a neighbour).
    """
    misplaced = wrong_order(names, got, expected)
    if misplaced is not None:
        return [Comparison("gradients", False, False, None, None, None, "returned in the wrong places",
                           misplaced.message, misplaced.code)]
    return [compare(name, g, e, context) for name, g, e in zip(names, got, expected)]


def check_backward(backward, parameters: list[torch.Tensor], Xb: torch.Tensor, Yb: torch.Tensor) -> bool:
    """Exercise 4's visible check: ``backward``'s gradients against autograd's.

    ``backward(parameters, fw, Xb, Yb)`` must return [dC, dW1, db1, dW2, db2,
    dbngain, dbnbias] for ``fw = fused_forward(parameters, Xb, Yb)``. Prints
    one line per parameter and returns whether all seven pass.
    """
    from . import model

    expected = model.autograd_grads(parameters, Xb, Yb)
    with torch.no_grad():
        got = list(backward(parameters, model.fused_forward(parameters, Xb, Yb), Xb, Yb))
    if len(got) != len(expected):
        reason = f"expected {len(expected)} gradients (one per parameter), got {len(got)}"
        print(reason)
        note_outcome(reason)
        return False
    results = compare_gradients(model.PARAM_NAMES, got, expected, forward_context(parameters, Xb, Yb))
    for result in results:
        print(result.line())
    note_outcome(reason_of(results))
    return all(result.ok for result in results)


def forward_context(parameters: list[torch.Tensor], Xb: torch.Tensor, Yb: torch.Tensor) -> dict:
    """The chunked forward pass on (Xb, Yb) with autograd's gradients, as hints need it (``context_of``)."""
    from . import model

    with torch.enable_grad():
        copies = [p.detach().clone().requires_grad_(True) for p in parameters]
        forward = model.chunked_forward(copies, Xb, Yb)
        forward.loss.backward()
    return context_of(forward, forward.inputs)


def check_training(backward, parameters: list[torch.Tensor], steps: int, seed: int) -> bool:
    """Train copies of ``parameters`` for ``steps`` SGD steps with ``backward`` and with autograd.

    Both runs see the same batches; prints how far apart each parameter ends
    up and returns whether all agree within TRAINED_RTOL of their scale.
    """
    from . import model

    runs = []
    for grads_of in (backward, lambda ps, fw, Xb, Yb: model.autograd_grads(ps, Xb, Yb)):
        g = torch.Generator().manual_seed(seed)
        runs.append(model.sgd_steps(parameters, grads_of, steps, 32, 0.1, g))
    ok, reason = True, ""
    for name, mine, reference in zip(model.PARAM_NAMES, *runs):
        drift = (mine - reference).abs().max().item() / reference.abs().max().item()
        ok &= drift <= TRAINED_RTOL
        print(f"{name:7s} after {steps} steps: max difference {drift:.1e} of the parameter's scale")
        if drift > TRAINED_RTOL and not reason:
            reason = (f"{name} after {steps} SGD steps is off by {drift:.1e} of its scale "
                      f"(tolerance {TRAINED_RTOL:.0e}): check_backward says which gradient is wrong")
    note_outcome(reason)
    return ok


# ------------------------------------------------------------ failing asserts
#
# A test cell says ``assert cmp(...)``. A bare assert fails with an empty
# AssertionError, so in IPython each such assert gets the check's reason as
# its message: an AST transformer turns ``assert check(...)`` into
# ``assert check(...), <the reason the check just recorded>``. The error is
# then raised in the test cell itself, so its traceback is that one frame,
# and the check functions keep returning a plain bool (a cell may also add
# their results up).

VISIBLE_CHECKS = frozenset({"cmp", "check_grad", "check_grads", "check_backward", "check_training",
                            "check_adam_step"})
_DEFAULT_REASON = "the check above failed (see its report)"
_last_reason = ""


def reason_of(results: list[Comparison]) -> str:
    """One line on the first failing comparison: the problem and the hint, or "" when all passed."""
    failing = next((r for r in results if not r.ok), None)
    if failing is None:
        return ""
    if failing.hint and failing.problem.startswith("values differ"):  # the hint says more than the maxdiff
        return f"{failing.name}: {failing.hint}"
    return f"{failing.name}: {failing.problem}" + (f"; {failing.hint}" if failing.hint else "")


def note_outcome(reason: str) -> None:
    """Record the reason a visible check just failed ("" when it passed), for ``failure_reason``."""
    global _last_reason
    _last_reason = reason


def failure_reason() -> str:
    """The reason the last visible check failed: the message of a failed ``assert check(...)``."""
    return _last_reason or _DEFAULT_REASON


class AssertReasons(ast.NodeTransformer):
    """IPython AST transformer: ``assert check(...)`` fails with the check's reason."""

    def visit_Assert(self, node: ast.Assert) -> ast.Assert:
        call = node.test
        called = getattr(call.func, "id", getattr(call.func, "attr", None)) if isinstance(call, ast.Call) else None
        if node.msg is None and called in VISIBLE_CHECKS:
            reason = ast.parse("__import__('autograder.check').check.failure_reason()", mode="eval").body
            node.msg = ast.copy_location(reason, node)
            ast.fix_missing_locations(node)
        return node


def install_assert_reasons() -> None:
    """Give ``assert check(...)`` its reason in the running IPython shell, if there is one (idempotent)."""
    ipython = sys.modules.get("IPython")  # not imported: not in IPython, nothing to do
    shell = ipython.get_ipython() if ipython is not None and hasattr(ipython, "get_ipython") else None
    if shell is not None and not any(isinstance(t, AssertReasons) for t in shell.ast_transformers):
        shell.ast_transformers.append(AssertReasons())


install_assert_reasons()
