"""Kind "mlp_backward" (notebook 05): ``mlp_backward``, the backward pass of the 4-8-9-3 ReLU network.

Visible check (through ``checks.check_mlp_backward``): the 6 gradients
against autograd's on the training flowers. Hidden check: the same from
another initialisation (of other widths in one case), on a subset of the
flowers.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from ..diagnosis.comparison import CheckResult, compare_all
from ..exercises import Item
from ..judge.untrusted import autograd_forbidden
from ..workbook import iris
from .base import call_directly, call_student, require
from .cases import Case
from .iris_cases import IrisKind, answer_functions, case_widths, iris_inputs, notebook_functions


class MLPBackwardKind(IrisKind):
    name = "mlp_backward"

    def check(self, backward, parameters: list[torch.Tensor], X: torch.Tensor, Y: torch.Tensor,
              call=call_directly) -> CheckResult:
        """The visible check (``checks.check_mlp_backward``): ``backward``'s 6 gradients against autograd's.

        ``backward`` gets copies of ``parameters`` and the flowers X (N, 4), Y (N,).
        """
        expected = iris.autograd_grads(parameters, X, Y)
        copies = [p.detach().clone() for p in parameters]
        with torch.no_grad():
            fw = iris.forward(copies, X, Y)
        return compare_all(iris.PARAM_NAMES, call(backward, copies, fw, X, Y), expected)

    def run(self, item: Item, sources: Mapping[str, str], case: Case) -> list:
        (backward,) = answer_functions(item, sources)
        inputs = iris_inputs(case)
        params, X, Y = inputs["parameters"], inputs["Xb"], inputs["Yb"]
        with torch.no_grad():
            fw = iris.forward(params, X, Y)
        with autograd_forbidden():
            return list(backward(params, fw, X, Y))

    def reference(self, item: Item, case: Case) -> list[torch.Tensor]:
        inputs = iris_inputs(case)
        return iris.autograd_grads(inputs["parameters"], inputs["Xb"], inputs["Yb"])

    def compare(self, item: Item, got, expected, case: Case) -> CheckResult:
        return compare_all(iris.PARAM_NAMES, got, expected)

    def describe_case(self, item: Item, case: Case) -> str:
        return f"another initialisation, layers {case_widths(case)}, {case.n} flowers"

    def probe(self, item: Item, namespace: Mapping, answers: Mapping[str, str]) -> CheckResult:
        (backward,) = notebook_functions(item, namespace)
        return self.check(backward, *require(namespace, "parameters", "Xtr", "Ytr"), call=call_student)
