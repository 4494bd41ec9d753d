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

from dataclasses import dataclass

import torch

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

    def line(self) -> str:
        """The report line: the lecture's three columns, then shape and tolerance."""
        maxdiff = "n/a" if self.maxdiff is None else f"{self.maxdiff:.1e}"
        tolerance = "n/a" if self.tolerance is None else f"{self.tolerance:.1e}"
        shape = "?" if self.expected_shape is None else str(tuple(self.expected_shape))
        text = (f"{self.name:15s} | exact: {str(self.exact):5s} | approximate: {str(self.ok):5s} "
                f"| maxdiff: {maxdiff:7s} | shape {shape} | tol {tolerance}")
        return text + (f"\n{'':15s}   -> {self.problem}" if self.problem else "")


def tolerance_for(reference: torch.Tensor) -> float:
    """The largest accepted max|got - reference| for this reference tensor."""
    scale = reference.detach().abs().max().item() if reference.numel() else 0.0
    return RTOL * scale if scale >= ZERO_LEVEL else ZERO_LEVEL


def compare(name: str, got: object, expected: torch.Tensor) -> Comparison:
    """Compare ``got`` (a student's gradient) with ``expected`` (autograd's)."""
    expected = expected.detach()
    shape = tuple(expected.shape)
    fail = _first_problem(got, expected)
    if fail is not None:
        return Comparison(name, False, False, None, None, shape, fail)
    got = got.detach()
    if got.shape != expected.shape:
        return _shape_mismatch(name, got, expected)
    maxdiff = (got.double() - expected.double()).abs().max().item() if got.numel() else 0.0
    tolerance = tolerance_for(expected)
    exact = bool(torch.equal(got.to(expected.dtype), expected))
    ok = maxdiff <= tolerance
    problem = "" if ok else f"values differ: maxdiff {maxdiff:.2e} is above the tolerance {tolerance:.1e}"
    return Comparison(name, ok, exact, maxdiff, tolerance, shape, problem)


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


def _shape_mismatch(name: str, got: torch.Tensor, expected: torch.Tensor) -> Comparison:
    """A wrong shape fails even when broadcasting would let the values through."""
    problem = f"shape {tuple(got.shape)}, expected {tuple(expected.shape)}"
    if got.numel() == expected.numel():
        same = torch.allclose(got.reshape(expected.shape).double(), expected.double(),
                              rtol=0, atol=tolerance_for(expected))
        if same:
            problem += " (the values are right: fix the shape, e.g. keepdim=True or .view)"
    elif _broadcasts_to(got.shape, expected.shape):
        problem += " (it broadcasts, which hides the mismatch in arithmetic; keep the reference's shape)"
    return Comparison(name, False, False, None, None, tuple(expected.shape), problem)


def _broadcasts_to(small: torch.Size, big: torch.Size) -> bool:
    try:
        return torch.broadcast_shapes(small, big) == big
    except RuntimeError:
        return False


def cmp(name: str, dt: object, t: torch.Tensor) -> bool:
    """Print how ``dt`` compares with ``t.grad`` and return whether it passes.

    ``name`` names the tensor ``t`` whose gradient ``dt`` is meant to be, e.g.
    ``cmp("logprobs", dlogprobs, logprobs)``. ``t`` must have taken part in a
    ``loss.backward()`` with ``retain_grad()`` (the forward helpers do that).
    """
    if not isinstance(t, torch.Tensor) or t.grad is None:
        raise ValueError(f"{name}: the reference has no .grad; run the forward pass and loss.backward() first")
    result = compare(name, dt, t.grad)
    print(result.line())
    return result.ok


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
