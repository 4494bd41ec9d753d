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

import inspect
from collections.abc import Mapping
from dataclasses import dataclass

import torch

from .diagnose import context_of, diagnose
from .hints import pointer_for_check

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
        return Comparison(name, False, False, None, None, shape, fail)
    parameter = got.requires_grad and got.is_leaf
    got = got.detach()
    if got.shape != expected.shape:
        problem = f"shape {tuple(got.shape)}, expected {shape}"
        return Comparison(name, False, False, None, None, shape, problem, diagnose(name, got, expected, context))
    maxdiff = (got.double() - expected.double()).abs().max().item() if got.numel() else 0.0
    tolerance = tolerance_for(expected)
    exact = bool(torch.equal(got.to(expected.dtype), expected))
    if maxdiff <= tolerance:
        note = TRACKED_NOTE if parameter else "" if exact else ROUNDING_NOTE
        return Comparison(name, True, exact, maxdiff, tolerance, shape, "", note)
    problem = f"values differ: maxdiff {maxdiff:.2e} is above the tolerance {tolerance:.1e}"
    hint = (f"this is a parameter (a leaf tensor that requires grad), not a gradient: d{name}, not {name}"
            if parameter else diagnose(name, got, expected, context))
    return Comparison(name, False, exact, maxdiff, tolerance, shape, problem, hint)


def _first_problem(got: object, expected: torch.Tensor) -> str | None:
    """Why ``got`` cannot be a gradient at all, or None."""
    if got is None:
        return "got None instead of a tensor (did the cell assign the variable?)"
    if not isinstance(got, torch.Tensor):
        return f"got a {type(got).__name__}, expected a torch.Tensor of shape {tuple(expected.shape)}"
    if not (got.is_floating_point() or got.is_complex()):
        return f"got an integer tensor ({got.dtype}); a gradient is a float tensor ({expected.dtype})"
    if got.numel() and not torch.isfinite(got).all():
        bad = "NaN" if torch.isnan(got).any() else "inf"
        return f"contains {bad}: look for a division by zero or a log of 0"
    return None


def cmp(name: str, dt: object, t: torch.Tensor) -> bool:
    """Print how ``dt`` compares with ``t.grad`` and return whether it passes.

    ``name`` names the tensor ``t`` whose gradient ``dt`` is meant to be, e.g.
    ``cmp("logprobs", dlogprobs, logprobs)``. ``t`` must have taken part in a
    ``loss.backward()`` with ``retain_grad()`` (the forward helpers do that).
    """
    if not isinstance(t, torch.Tensor) or t.grad is None:
        raise ValueError(f"{name}: the reference has no .grad; run the forward pass and loss.backward() first")
    result = compare(name, dt, t.grad, _context_for(t))
    print(result.line())
    hint_pointer = pointer_for_check(name, getattr(result, "code", ""))  # "" until diagnoses carry codes
    if hint_pointer:
        print(f"{'':15s}   -> {hint_pointer}")
    for other in _aliases(name, dt, inspect.currentframe().f_back):
        print(f"{'':15s}   -> note: d{name} and {other} are the same tensor in memory (one was assigned "
              f"from the other without .clone()), so an in-place += on one changes the other too")
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
        print(f"expected {len(expected)} gradients (one per parameter), got {len(got)}")
        return False
    results = [compare(name, g, e) for name, g, e in zip(model.PARAM_NAMES, got, expected)]
    for result in results:
        print(result.line())
    return all(result.ok for result in results)


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
    ok = True
    for name, mine, reference in zip(model.PARAM_NAMES, *runs):
        drift = (mine - reference).abs().max().item() / reference.abs().max().item()
        ok &= drift <= TRAINED_RTOL
        print(f"{name:7s} after {steps} steps: max difference {drift:.1e} of the parameter's scale")
    return ok
