"""Kind "function" (Exercise 4): ``manual_backward``, the whole backward pass as a function, on one batch.

Item fields (``Item.spec``): ``functions``, the function its answer cell defines.

Visible check: ``check_backward``, the seven gradients against autograd's on
the notebook's batch. Hidden check: the same on a hidden case's model and batch.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from ..diagnosis.comparison import CheckResult, compare_all
from ..diagnosis.diagnose import context_of
from ..exercises import Item
from ..workbook import model
from .base import AnswerRunner, FunctionsKind, Report, call_directly, call_student, require, visible_check
from .cases import Case, case_inputs
from .gradient import QUANTITIES, hidden_context

# What the copies_grad sample hands in for a backward function: autograd's gradients, read from .grad.
AUTOGRAD_BACKWARD = ("for p in parameters:\n    p.grad = None\nfw.loss.backward()\n"
                     "{names} = [p.grad for p in parameters]\n")


def notebook_context(parameters: list[torch.Tensor], Xb: torch.Tensor, Yb: torch.Tensor) -> dict:
    """The chunked forward pass on (Xb, Yb) with autograd's gradients, as the hints need it (``context_of``)."""
    with torch.enable_grad():
        copies = [p.detach().clone().requires_grad_(True) for p in parameters]
        forward = model.chunked_forward(copies, Xb, Yb)
        forward.loss.backward()
    return context_of(forward, forward.inputs)


def notebook_inputs(namespace: Mapping):
    """The notebook's ``parameters``, ``Xb`` and ``Yb``."""
    return require(namespace, "parameters", "Xb", "Yb")


class BackwardFunctionKind(FunctionsKind):
    """Exercise 4's ``manual_backward`` on one batch."""

    name = "function"
    shapes_follow_sizes = True

    @visible_check
    def check_backward(self, backward, parameters: list[torch.Tensor], Xb: torch.Tensor, Yb: torch.Tensor) -> Report:
        """Compare ``backward``'s gradients with autograd's on the batch (Xb, Yb).

        ``backward(parameters, fw, Xb, Yb)`` must return [dC, dW1, db1, dW2, db2,
        dbngain, dbnbias] for ``fw = fused_forward(parameters, Xb, Yb)``; it gets
        copies. One line per parameter; passes when all seven do.
        """
        result = self.check(backward, parameters, Xb, Yb)
        return Report(result, tuple(result.lines()))

    def check(self, backward, parameters: list[torch.Tensor], Xb: torch.Tensor, Yb: torch.Tensor,
              call=call_directly) -> CheckResult:
        """``backward``'s 7 gradients against autograd's; ``call(backward, *args)`` calls the student's function
        (the scoreboard passes one that turns its exceptions into ``StudentError``)."""
        expected = model.autograd_grads(parameters, Xb, Yb)
        copies = [p.detach().clone() for p in parameters]  # the student's function gets copies
        with torch.no_grad():
            fw = model.fused_forward(copies, Xb, Yb)
        got = call(backward, copies, fw, Xb, Yb)
        return compare_all(model.PARAM_NAMES, got, expected, context=notebook_context(parameters, Xb, Yb))

    # ---- the hidden check
    def computes(self, item: Item) -> frozenset[str]:
        return frozenset(f"{QUANTITIES}:d{name}" for name in model.PARAM_NAMES)

    def run(self, item: Item, sources: Mapping[str, str], case: Case, inputs: Mapping, runner: AnswerRunner) -> list:
        (backward,) = self.load_functions(item, sources, runner)
        data = case_inputs(case)
        with torch.no_grad():
            fw = model.fused_forward(data["parameters"], data["Xb"], data["Yb"])
        with runner.forbidden():
            return list(backward(data["parameters"], fw, data["Xb"], data["Yb"]))

    def reference(self, item: Item, case: Case) -> list[torch.Tensor]:
        data = case_inputs(case)
        return model.autograd_grads(data["parameters"], data["Xb"], data["Yb"])

    def compare(self, item: Item, got, expected, case: Case) -> CheckResult:
        return compare_all(model.PARAM_NAMES, got, expected, context=hidden_context(case))

    # ---- the notebook
    def probe(self, item: Item, namespace: Mapping, answers: Mapping[str, str]) -> Report:
        (backward,) = self.notebook_functions(item, namespace)
        result = self.check(backward, *notebook_inputs(namespace), call=call_student)
        return Report(result, tuple(result.lines()))

    def cheating_answer(self, item: Item, answer_id: str, solution: str) -> str:
        names = ", ".join(f"d{name}" for name in model.PARAM_NAMES)
        return AUTOGRAD_BACKWARD.format(names=names)
