"""Kind "mlp_backward" (notebook 05): ``mlp_backward``, the backward pass of the 4-8-9-3 ReLU network.

Item fields (``Item.spec``): ``functions``, the function its answer cell defines.

Visible check: ``check_mlp_backward``, the 6 gradients against autograd's on
the training flowers. Hidden check: the same from
another initialisation (of other widths in one case), on a subset of the
flowers.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from ..diagnosis.comparison import CheckResult, compare_all
from ..exercises import Item
from ..workbook import iris
from .base import AnswerRunner, Report, call_directly, call_student, require, visible_check
from .cases import Case
from .iris_cases import IrisKind, case_widths, iris_inputs


class MLPBackwardKind(IrisKind):
    name = "mlp_backward"

    @visible_check
    def check_mlp_backward(self, backward, parameters: list[torch.Tensor], X: torch.Tensor, Y: torch.Tensor) -> Report:
        """Compare ``backward``'s 6 gradients with autograd's on the flowers (X, Y); a line each."""
        result = self.check(backward, parameters, X, Y)
        return Report(result, tuple(result.lines()))

    def check(self, backward, parameters: list[torch.Tensor], X: torch.Tensor, Y: torch.Tensor,
              call=call_directly) -> CheckResult:
        """``backward``'s 6 gradients against autograd's; it gets copies of ``parameters`` and X (N, 4), Y (N,)."""
        expected = iris.autograd_grads(parameters, X, Y)
        copies = [p.detach().clone() for p in parameters]
        with torch.no_grad():
            fw = iris.forward(copies, X, Y)
        return compare_all(iris.PARAM_NAMES, call(backward, copies, fw, X, Y), expected)

    def run(self, item: Item, sources: Mapping[str, str], case: Case, inputs: Mapping, runner: AnswerRunner) -> list:
        (backward,) = self.load_functions(item, sources, runner)
        data = iris_inputs(case)
        params, X, Y = data["parameters"], data["Xb"], data["Yb"]
        with torch.no_grad():
            fw = iris.forward(params, X, Y)
        with runner.forbidden():
            return list(backward(params, fw, X, Y))

    def reference(self, item: Item, case: Case) -> list[torch.Tensor]:
        inputs = iris_inputs(case)
        return iris.autograd_grads(inputs["parameters"], inputs["Xb"], inputs["Yb"])

    def compare(self, item: Item, got, expected, case: Case) -> CheckResult:
        return compare_all(iris.PARAM_NAMES, got, expected)

    def describe_case(self, item: Item, case: Case) -> str:
        return f"another initialisation, layers {case_widths(case)}, {case.n} flowers"

    def probe(self, item: Item, namespace: Mapping, answers: Mapping[str, str]) -> Report:
        (backward,) = self.notebook_functions(item, namespace)
        result = self.check(backward, *require(namespace, "parameters", "Xtr", "Ytr"), call=call_student)
        return Report(result, tuple(result.lines()))
