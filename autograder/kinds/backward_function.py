"""Kind "function" (Exercise 4): ``manual_backward``, the whole backward pass as a function, on one batch.

Visible check (notebook 04's test cell, through ``checks.check_backward``):
the seven gradients against autograd's on the notebook's batch. Hidden
check: the same on a hidden case's model and batch.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from ..diagnosis.comparison import CheckResult, compare_all
from ..diagnosis.diagnose import context_of
from ..exercises import ANSWER_FUNCTIONS, Item
from ..judge.untrusted import autograd_forbidden, load_function
from ..workbook import model
from .base import Kind, call_directly, call_student, require, student_function
from .cases import Case, case_inputs
from .gradient import hidden_context


def notebook_context(parameters: list[torch.Tensor], Xb: torch.Tensor, Yb: torch.Tensor) -> dict:
    """The chunked forward pass on (Xb, Yb) with autograd's gradients, as the hints need it (``context_of``)."""
    with torch.enable_grad():
        copies = [p.detach().clone().requires_grad_(True) for p in parameters]
        forward = model.chunked_forward(copies, Xb, Yb)
        forward.loss.backward()
    return context_of(forward, forward.inputs)


def load_backward(item: Item, sources: Mapping[str, str]):
    """UNTRUSTED: the function the item's answer cell defines."""
    answer = item.answers[0]
    return load_function(sources[answer], answer, ANSWER_FUNCTIONS[answer])


def notebook_inputs(namespace: Mapping):
    """The notebook's ``parameters``, ``Xb`` and ``Yb``."""
    return require(namespace, "parameters", "Xb", "Yb")


class BackwardFunctionKind(Kind):
    """Exercise 4's ``manual_backward`` on one batch."""

    name = "function"
    shapes_follow_sizes = True

    def check(self, backward, parameters: list[torch.Tensor], Xb: torch.Tensor, Yb: torch.Tensor,
              call=call_directly) -> CheckResult:
        """The visible check (``checks.check_backward``): ``backward``'s 7 gradients against autograd's.

        ``backward`` gets copies of ``parameters`` and the batch Xb (n, block_size), Yb (n,).

        ``call(backward, *args)`` calls the student's function (the scoreboard
        passes one that turns its exceptions into ``StudentError``).
        """
        expected = model.autograd_grads(parameters, Xb, Yb)
        copies = [p.detach().clone() for p in parameters]  # the student's function gets copies
        with torch.no_grad():
            fw = model.fused_forward(copies, Xb, Yb)
        got = call(backward, copies, fw, Xb, Yb)
        return compare_all(model.PARAM_NAMES, got, expected, context=notebook_context(parameters, Xb, Yb))

    def run(self, item: Item, sources: Mapping[str, str], case: Case) -> list:
        backward = load_backward(item, sources)
        inputs = case_inputs(case)
        with torch.no_grad():
            fw = model.fused_forward(inputs["parameters"], inputs["Xb"], inputs["Yb"])
        with autograd_forbidden():
            return list(backward(inputs["parameters"], fw, inputs["Xb"], inputs["Yb"]))

    def reference(self, item: Item, case: Case) -> list[torch.Tensor]:
        inputs = case_inputs(case)
        return model.autograd_grads(inputs["parameters"], inputs["Xb"], inputs["Yb"])

    def compare(self, item: Item, got, expected, case: Case) -> CheckResult:
        return compare_all(model.PARAM_NAMES, got, expected, context=hidden_context(case))

    def label(self, item: Item) -> str:
        return ANSWER_FUNCTIONS[item.answers[0]]

    def probe(self, item: Item, namespace: Mapping, answers: Mapping[str, str]) -> CheckResult:
        backward = student_function(namespace, ANSWER_FUNCTIONS[item.answers[0]])
        return self.check(backward, *notebook_inputs(namespace), call=call_student)
