"""The checks of the notebooks' test cells: each prints a report and returns whether the answer passes.

Every one calls its kind's ``check`` (``autograder.kinds``), so the test cell,
the progress table and the hidden judge judge an answer the same way; the
comparisons themselves are ``autograder.comparison``'s.

* notebook 00: ``check_grad``, ``check_grads`` (a scalar ``Value``'s ``.grad``)
* notebooks 01-03: ``cmp`` (one gradient tensor against autograd's)
* notebook 04: ``check_backward``, ``check_training`` (the manual backward pass, alone and over SGD steps)
* notebook 05: ``check_mlp_backward``, ``check_adam_step``, ``check_adam_training``
"""

from __future__ import annotations

import inspect

import torch

from .comparison import drift_lines
from .iris import EPOCHS, PARAM_NAMES
from .kinds import KINDS
from .kinds.ex4 import CHECK_STEPS
from .kinds.scalar import grad_issue
from .scalar import Value


def cmp(name: str, dt: object, t: torch.Tensor) -> bool:
    """Print how ``dt`` compares with ``t.grad`` and return whether it passes.

    ``name`` names the tensor ``t`` whose gradient ``dt`` is meant to be, e.g.
    ``cmp("logprobs", dlogprobs, logprobs)``. ``t`` must have taken part in a
    ``loss.backward()`` with ``retain_grad()`` (the forward helpers do that).
    """

    if not isinstance(t, torch.Tensor) or t.grad is None:
        raise ValueError(f"{name}: the reference has no .grad; run the forward pass and loss.backward() first")
    frame = inspect.currentframe().f_back
    result = KINDS["gradient"].check(name, dt, t, frame.f_globals if frame is not None else {})
    print("\n".join(result.lines()))
    return result.ok


def check_backward(backward, parameters: list[torch.Tensor], Xb: torch.Tensor, Yb: torch.Tensor) -> bool:
    """Exercise 4's visible check: ``backward``'s gradients against autograd's.

    ``backward(parameters, fw, Xb, Yb)`` must return [dC, dW1, db1, dW2, db2,
    dbngain, dbnbias] for ``fw = fused_forward(parameters, Xb, Yb)``. Prints
    one line per parameter and returns whether all seven pass.
    """

    result = KINDS["function"].check(backward, parameters, Xb, Yb)
    print("\n".join(result.lines()))
    return result.ok


def check_training(backward, parameters: list[torch.Tensor], steps: int | None = None, seed: int | None = None) -> bool:
    """Train copies of ``parameters`` for ``steps`` SGD steps with ``backward`` and with autograd.

    Both runs see the same batches (drawn from ``seed``; by default the
    settings of notebook 04's check, ``kinds.ex4.CHECK_STEPS`` and the
    workbook's seed); prints how far apart each parameter ends up and returns
    whether all agree within ``kinds.ex4.SGD_TRAINED_RTOL`` of their scale.
    """

    steps = CHECK_STEPS if steps is None else steps
    result = KINDS["sgd_training"].check(backward, parameters, steps, seed)
    print("\n".join(drift_lines(result, f"after {steps} steps")))
    return result.ok


def check_grad(node: Value, reference: dict[Value, float]) -> bool:
    """Print how ``node.grad`` compares with PyTorch's ``reference[node]``; return whether it passes.

    The tolerance is ``check.compare``'s: 1.5e-6 of the gradient's size, or
    1e-6 when the gradient is 0. A gradient that was never assigned fails
    even when its starting 0 happens to be right.
    """

    name = node.name or node.label or "node"
    result = KINDS["scalar"].check(name, node.grad, reference[node], node.grad_assigned)
    issue = grad_issue(name, node.grad, node.grad_assigned)
    print(f"{name + '.grad':15s} | FAILED: {issue}" if issue else "\n".join(result.lines()))
    return result.ok


def check_grads(nodes: list[Value], reference: dict[Value, float]) -> bool:
    """``check_grad`` for each node (all are printed); True when every one passes."""
    results = [check_grad(node, reference) for node in nodes]
    return all(results)


def check_mlp_backward(backward, parameters: list[torch.Tensor], X: torch.Tensor, Y: torch.Tensor) -> bool:
    """``backward``'s 6 gradients against autograd's on (X, Y); prints a line each, returns whether all pass."""

    result = KINDS["mlp_backward"].check(backward, parameters, X, Y)
    print("\n".join(result.lines()))
    return result.ok


def check_adam_step(step, parameters: list[torch.Tensor], X: torch.Tensor, Y: torch.Tensor) -> bool:
    """One ``step`` from ``parameters`` with autograd's gradients, against ``torch.optim.Adam``.

    Runs in float64. Compares the parameters and both moments after the
    step; prints a line per parameter (and one per moment that is wrong) and
    returns whether all agree.
    """

    result = KINDS["adam_step"].check(step, parameters, X, Y)
    if result.problem:
        print(result.problem)
    for comparison in result.comparisons:
        if comparison.name in PARAM_NAMES or not comparison.ok:
            print(comparison.line())
    return result.ok


def check_adam_training(backward, step, parameters: list[torch.Tensor], X: torch.Tensor, Y: torch.Tensor,
                   epochs: int = EPOCHS) -> bool:
    """Train copies of ``parameters`` with ``backward`` + ``step`` and with autograd + ``torch.optim.Adam``.

    Both runs are in float64 and start from the same values. Prints how far
    apart each parameter ends up, relative to its scale, and returns whether
    all are within ADAM_TRAINED_RTOL.
    """

    result = KINDS["adam_training"].check(backward, step, parameters, X, Y, epochs)
    print("\n".join(drift_lines(result, f"after {epochs} epochs")))
    return result.ok
