"""The checks of the notebooks' test cells: each prints a report and returns whether the answer passes.

Every one calls its kind's ``check`` (``autograder.kinds``), so the test cell,
the progress table and the hidden judge judge an answer the same way; the
comparisons themselves are ``autograder.diagnosis.comparison``'s.

* notebook 00: ``check_grad``, ``check_grads`` (a scalar ``Value``'s ``.grad``)
* notebooks 01-03: ``cmp`` (one gradient tensor against autograd's)
* notebook 04: ``check_backward``, ``check_training`` (the manual backward pass, alone and over SGD steps)
* notebook 05: ``check_mlp_backward``, ``check_adam_step``, ``check_adam_training``
"""

from __future__ import annotations

import ast
import inspect
import sys

import torch

from ..diagnosis.comparison import CheckResult, drift_lines
from ..kinds import KINDS
from ..kinds.scalar_grad import grad_issue
from ..kinds.sgd_training import CHECK_STEPS
from ..workbook.iris import EPOCHS, PARAM_NAMES
from ..workbook.value import Value


def cmp(name: str, dt: object, t: torch.Tensor) -> bool:
    """Print how ``dt`` compares with ``t.grad`` and return whether it passes.

    ``name`` names the tensor ``t`` whose gradient ``dt`` is meant to be, e.g.
    ``cmp("logprobs", dlogprobs, logprobs)``. ``t`` must have taken part in a
    ``loss.backward()`` with ``retain_grad()`` (the forward helpers do that).
    In a notebook, a failed ``assert cmp(...)`` carries the reason (see ``failure_reason``).
    """
    if not isinstance(t, torch.Tensor) or t.grad is None:
        raise ValueError(f"{name}: the reference has no .grad; run the forward pass and loss.backward() first")
    frame = inspect.currentframe().f_back
    result = KINDS["gradient"].check(name, dt, t, frame.f_globals if frame is not None else {})
    return _report(result, result.lines())


def check_backward(backward, parameters: list[torch.Tensor], Xb: torch.Tensor, Yb: torch.Tensor) -> bool:
    """Exercise 4's visible check: ``backward``'s gradients against autograd's.

    ``backward(parameters, fw, Xb, Yb)`` must return [dC, dW1, db1, dW2, db2,
    dbngain, dbnbias] for ``fw = fused_forward(parameters, Xb, Yb)``. Prints
    one line per parameter and returns whether all seven pass.
    """
    result = KINDS["function"].check(backward, parameters, Xb, Yb)
    return _report(result, result.lines())


def check_training(backward, parameters: list[torch.Tensor], steps: int | None = None, seed: int | None = None) -> bool:
    """Train copies of ``parameters`` for ``steps`` SGD steps with ``backward`` and with autograd.

    Both runs see the same batches (drawn from ``seed``; by default the
    settings of notebook 04's check, ``kinds.sgd_training.CHECK_STEPS`` and the
    workbook's seed); prints how far apart each parameter ends up and returns
    whether all agree within ``kinds.sgd_training.SGD_TRAINED_RTOL`` of their scale.
    """
    steps = CHECK_STEPS if steps is None else steps
    result = KINDS["sgd_training"].check(backward, parameters, steps, seed)
    return _report(result, drift_lines(result, f"after {steps} steps"))


def check_grad(node: Value, reference: dict[Value, float]) -> bool:
    """Print how ``node.grad`` compares with PyTorch's ``reference[node]``; return whether it passes.

    The tolerance is ``comparison.compare``'s: ``comparison.RTOL`` of the
    gradient's size, or ``comparison.ZERO_LEVEL`` when the gradient is smaller
    than that. A gradient that was never assigned fails even when its starting
    0 happens to be right.
    """
    name = node.name or node.label or "node"
    result = KINDS["scalar"].check(name, node.grad, reference[node], node.grad_assigned)
    issue = grad_issue(name, node.grad, node.grad_assigned)
    return _report(result, [f"{name + '.grad':15s} | FAILED: {issue}"] if issue else result.lines())


def check_grads(nodes: list[Value], reference: dict[Value, float]) -> bool:
    """``check_grad`` for each node (all are printed); True when every one passes."""
    first_failure = ""
    for node in nodes:
        if not check_grad(node, reference) and not first_failure:
            first_failure = failure_reason()
    _note_outcome(first_failure)  # the first failure explains the assert, not the last
    return not first_failure


def check_mlp_backward(backward, parameters: list[torch.Tensor], X: torch.Tensor, Y: torch.Tensor) -> bool:
    """``backward``'s 6 gradients against autograd's on (X, Y); prints a line each, returns whether all pass."""
    result = KINDS["mlp_backward"].check(backward, parameters, X, Y)
    return _report(result, result.lines())


def check_adam_step(step, parameters: list[torch.Tensor], X: torch.Tensor, Y: torch.Tensor) -> bool:
    """One ``step`` from ``parameters`` with autograd's gradients, against ``torch.optim.Adam``.

    Runs in float64. Compares the parameters and both moments after the
    step; prints a line per parameter (and one per moment that is wrong) and
    returns whether all agree.
    """
    result = KINDS["adam_step"].check(step, parameters, X, Y)
    shown = [c.line() for c in result.comparisons if c.name in PARAM_NAMES or not c.ok]
    return _report(result, [result.problem] if result.problem else shown)


def check_adam_training(backward, step, parameters: list[torch.Tensor], X: torch.Tensor, Y: torch.Tensor,
                        epochs: int = EPOCHS) -> bool:
    """Train copies of ``parameters`` with ``backward`` + ``step`` and with autograd + ``torch.optim.Adam``.

    Both runs are in float64 and start from the same values. Prints how far
    apart each parameter ends up, relative to its scale, and returns whether
    all are within ADAM_TRAINED_RTOL.
    """
    result = KINDS["adam_training"].check(backward, step, parameters, X, Y, epochs)
    return _report(result, drift_lines(result, f"after {epochs} epochs"))


# ------------------------------------------------------------ failing asserts
#
# A test cell says ``assert cmp(...)``. A bare assert fails with an empty
# AssertionError, so in IPython each such assert gets the check's reason as
# its message: an AST transformer turns ``assert check(...)`` into
# ``assert check(...), <the reason the check just recorded>``. The error is
# then raised in the test cell itself, so its traceback is that one frame,
# and the checks keep returning a plain bool (a cell may add their results up).

VISIBLE_CHECKS = frozenset({"cmp", "check_grad", "check_grads", "check_backward", "check_training",
                            "check_mlp_backward", "check_adam_step", "check_adam_training"})
DEFAULT_REASON = "the check above failed (see its report)"
_last_reason = ""


def _report(result: CheckResult, lines: list[str]) -> bool:
    """Print a check's report, keep its reason for a failing assert, and return whether it passed."""
    print("\n".join(lines))
    _note_outcome(result.reason())
    return result.ok


def _note_outcome(reason: str) -> None:
    """Record why the visible check that just ran failed ("" when it passed), for ``failure_reason``."""
    global _last_reason
    _last_reason = reason


def failure_reason() -> str:
    """Why the last visible check failed: the message of a failed ``assert check(...)``."""
    return _last_reason or DEFAULT_REASON


class AssertReasons(ast.NodeTransformer):
    """IPython AST transformer: ``assert check(...)`` fails with the check's reason."""

    def visit_Assert(self, node: ast.Assert) -> ast.Assert:
        call = node.test
        called = getattr(call.func, "id", getattr(call.func, "attr", None)) if isinstance(call, ast.Call) else None
        if node.msg is None and called in VISIBLE_CHECKS:
            reason = ast.parse("__import__('autograder.checking.checks').checking.checks.failure_reason()",
                               mode="eval").body
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
