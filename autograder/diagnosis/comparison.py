"""How a hand-derived tensor is compared with its reference: the comparisons every check builds on.

``compare`` gives a ``Comparison`` of one tensor; a check of a whole answer
gives a ``CheckResult`` (see ``autograder.kinds``); trained parameters are
compared by their drift (``parameter_drift``, ``trained_comparison``).
The test cells' checks that print these (``cmp`` and the others) live in
``autograder.checking.checks``; they sit above ``autograder.kinds``, which build on this
module.

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

from collections.abc import Mapping
from dataclasses import dataclass

import torch

from .codes import CODES_BY_NAME, diagnosis
from .diagnose import alias_diagnosis, diagnose, wrong_order

RTOL = 1.5e-6
ZERO_LEVEL = 1e-6


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
    code: str = ""  # the diagnosis code (``codes.CODES``); "" when the comparison passed

    def line(self) -> str:
        """The report line: the lecture's three columns, then shape and tolerance."""
        maxdiff = "n/a" if self.maxdiff is None else f"{self.maxdiff:.1e}"
        tolerance = "n/a" if self.tolerance is None else f"{self.tolerance:.1e}"
        shape = "?" if self.expected_shape is None else str(tuple(self.expected_shape))
        text = (f"{self.name:15s} | exact: {str(self.exact):5s} | approximate: {str(self.ok):5s} "
                f"| maxdiff: {maxdiff:7s} | shape {shape} | tol {tolerance}")
        return text + "".join(f"\n{'':15s}   -> {note}" for note in (self.problem, self.hint) if note)


def tolerance_for(reference: torch.Tensor, rtol: float = RTOL, zero_level: float = ZERO_LEVEL) -> float:
    """The largest accepted max|got - reference| for this reference tensor.

    ``rtol`` and ``zero_level`` are the workbook's unless a notebook needs its
    own (notebook 06's hidden checks: ``workbook.transformer.GRADIENT_RTOL``).
    """
    scale = reference.detach().abs().max().item() if reference.numel() else 0.0
    return rtol * scale if scale >= zero_level else zero_level


ROUNDING_NOTE = "right: not bit-identical only because floating point rounds differently in another order of operations"
# A right value in a leaf that requires grad (``requires_grad_()``, or ``torch.tensor(..., requires_grad=True)``):
# autograd would treat it as a parameter and record every operation on it.
TRACKED_NOTE = ("right, but this tensor requires grad, so autograd records everything done with it: a gradient "
                "is plain data; leave out requires_grad_() / requires_grad=True")


def compare(name: str, got: object, expected: torch.Tensor, context: Mapping | None = None,
            rtol: float = RTOL, zero_level: float = ZERO_LEVEL) -> Comparison:
    """Compare ``got`` (a student's gradient of ``name``) with ``expected`` (autograd's).

    ``context`` (the forward pass, see ``diagnose.context_of``) lets a wrong
    answer be explained more precisely; ``rtol`` and ``zero_level`` are the
    tolerance's (``tolerance_for``).
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
    tolerance = tolerance_for(expected, rtol, zero_level)
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


@dataclass(frozen=True)
class CheckResult:
    """The outcome of checking one answer: a comparison per tensor, or one problem with the whole.

    What every check returns, visible or hidden (see ``autograder.kinds``):
    the check cells print it, the scoreboard turns it into a row and the
    hidden judge into a verdict.
    """

    comparisons: tuple[Comparison, ...] = ()
    problem: str = ""  # what is wrong with the answer as a whole (e.g. a list of the wrong length); fails it
    problem_code: str = "unknown"  # the diagnosis code of ``problem``
    notes: tuple[str, ...] = ()  # remarks beside the comparisons, e.g. that two gradients share memory

    @property
    def ok(self) -> bool:
        return not self.problem and all(c.ok for c in self.comparisons)

    @property
    def maxdiff(self) -> float | None:
        """The largest maxdiff of the comparisons (a relative drift for trained parameters)."""
        diffs = [c.maxdiff for c in self.comparisons if c.maxdiff is not None]
        return max(diffs) if diffs else None

    @property
    def code(self) -> str:
        """The diagnosis code of the first failure ("" when it passed), for the feedback and the class report."""
        if self.ok:
            return ""
        if self.problem:
            return self.problem_code
        return next(c.code for c in self.comparisons if not c.ok)

    def reason(self) -> str:
        """Why it failed, in one line: the message of a failed ``assert check(...)`` ("" when it passed)."""
        if self.ok:
            return ""
        if self.problem:
            return self.problem
        failing = next(c for c in self.comparisons if not c.ok)
        if failing.hint and failing.problem.startswith("values differ"):  # the hint says more than the maxdiff
            return f"{failing.name}: {failing.hint}"
        return f"{failing.name}: {failing.problem}" + (f"; {failing.hint}" if failing.hint else "")

    def lines(self) -> list[str]:
        """The report: the problem, or every comparison's line; then the notes."""
        body = [self.problem] if self.problem else [c.line() for c in self.comparisons]
        return body + [f"{'':15s}   -> {note}" for note in self.notes]

    def failures(self) -> list[str]:
        """The report lines of what failed only (the problem, or the failing comparisons)."""
        return [self.problem] if self.problem else [c.line() for c in self.comparisons if not c.ok]

    def reasons(self) -> list[str]:
        """Why it failed and the likely causes, in short notes (empty when it passed)."""
        if self.ok:
            return []
        if self.problem:
            return [self.problem, *self.notes]
        named = len(self.comparisons) > 1
        failing = [c for c in self.comparisons if not c.ok]
        return [f"{c.name}: {note}" if named else note for c in failing for note in (c.problem, c.hint) if note] \
            + list(self.notes)


def compare_all(names, got: object, expected: list[torch.Tensor], what: str = "gradients",
                compare_one=None, context: Mapping | None = None, rtol: float = RTOL,
                zero_level: float = ZERO_LEVEL) -> CheckResult:
    """``compare`` (or ``compare_one``) of each of a list of tensors with its reference, by name.

    ``got`` must be a list or tuple as long as ``expected``; ``what`` names its
    items in the message when it is not. A list of gradients (one per
    parameter) that holds right gradients in the wrong places fails as that
    one mistake (``order``): compared one by one, each would seem to be a
    neighbour's. ``context`` is the forward pass, for the hints; ``rtol`` and
    ``zero_level`` the tolerance's.
    """
    got = list(got) if isinstance(got, (list, tuple)) else got
    if not isinstance(got, list) or len(got) != len(expected):
        size = f"{len(got)} values" if isinstance(got, list) else f"a {type(got).__name__}"
        shown = [f"d{name}" for name in names] if what == "gradients" else list(names)
        listing = f" ({', '.join(shown)})" if len(shown) <= 7 else ""
        return CheckResult(problem=f"expected {len(expected)} {what}{listing}, got {size}")
    if compare_one is None and what == "gradients":
        misplaced = wrong_order(names, got, expected)
        if misplaced is not None:
            return CheckResult((Comparison("gradients", False, False, None, None, None,
                                           "returned in the wrong places", misplaced.message, misplaced.code),))
    if compare_one is None:
        return CheckResult(tuple(compare(name, g, e, context, rtol, zero_level) for name, g, e in zip(names, got, expected)))
    return CheckResult(tuple(compare_one(name, g, e) for name, g, e in zip(names, got, expected)))


def parameter_drift(got: list[torch.Tensor], expected: list[torch.Tensor]) -> list[float]:
    """max |got - expected| of each parameter, relative to the parameter's scale (max |expected|).

    The one measure of how far a training run with hand-written gradients
    ended up from the reference run.
    """
    return [((g.double() - e.double()).abs().max() / e.double().abs().max().clamp_min(1e-12)).item()
            for g, e in zip(got, expected)]


def trained_comparison(name: str, got: object, expected: torch.Tensor, rtol: float, when: str) -> Comparison:
    """A parameter after training: right when its drift (``parameter_drift``) is at most ``rtol``.

    maxdiff and tolerance of the result are relative to the parameter's
    scale; ``when`` says after what, e.g. "after 5 steps". A value that is
    not a finite tensor of the right shape fails as in ``compare``.
    """
    result = compare(name, got, expected)
    if result.maxdiff is None:
        return result
    drift = parameter_drift([got.detach()], [expected.detach()])[0]
    ok = drift <= rtol
    problem = "" if ok else f"{when} it is off by {drift:.1e} of its scale (tolerance {rtol:.0e})"
    return Comparison(name, ok, result.exact, drift, rtol, result.expected_shape, problem, code="" if ok else "none")


def drift_lines(result: CheckResult, when: str) -> list[str]:
    """How far each trained parameter ended up, as the training checks print it."""
    if result.problem:
        return [result.problem]
    return [c.line() if c.maxdiff is None else
            f"{c.name:7s} {when}: max difference {c.maxdiff:.1e} of the parameter's scale "
            f"(tolerance {c.tolerance:.0e}){'' if c.ok else '  <- too far'}" for c in result.comparisons]


def alias_notes(variable: str, value: object, namespace: Mapping) -> list[str]:
    """Notes on the other gradient variables of ``namespace`` that share ``value``'s memory.

    ``dX = dY`` without ``.clone()`` (or a view of it) makes two names for one
    storage, so an in-place ``+=`` on one changes the other.
    """
    return [f"note: {alias_diagnosis(variable, other).message}" for other in sharing_memory(variable, value, namespace)]


def sharing_memory(variable: str, value: object, namespace: Mapping) -> list[str]:
    """The other gradient variables (``d...``) of ``namespace`` whose tensor shares ``value``'s storage, sorted."""
    if not isinstance(value, torch.Tensor):
        return []
    pointer = value.untyped_storage().data_ptr()
    if pointer == 0:
        return []
    return sorted(key for key, other in namespace.items()
                  if key.startswith("d") and key != variable and isinstance(other, torch.Tensor)
                  and other.untyped_storage().data_ptr() == pointer)
