"""Kind "adam_step" (notebook 05): ``adam_step``, the Adam update written by hand.

Visible check (through ``checks.check_adam_step``): one step against
``torch.optim.Adam``'s, in float64. Hidden check: ADAM_STEPS steps with
made-up gradients and, in one case, other settings.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from ..diagnosis.comparison import CheckResult, compare_all
from ..exercises import Item
from ..workbook import iris
from .base import AnswerRunner, Report, call_directly, call_student, require, visible_check
from .cases import Case
from .iris_cases import ADAM_STEPS, IrisKind, adam_gradients, iris_inputs, setting

ADAM_NAMES = (list(iris.PARAM_NAMES) + [f"m[{n}]" for n in iris.PARAM_NAMES]
              + [f"v[{n}]" for n in iris.PARAM_NAMES])  # what adam_step's check compares, in order


class AdamStepKind(IrisKind):
    name = "adam_step"
    oracle = "torch.optim.Adam"

    @visible_check
    def check_adam_step(self, step, parameters: list[torch.Tensor], X: torch.Tensor, Y: torch.Tensor) -> Report:
        """One ``step`` from ``parameters`` with autograd's gradients on (X, Y), against ``torch.optim.Adam``.

        Runs in float64. Compares the parameters and both moments after the
        step; a line per parameter (and one per moment that is wrong).
        """
        result = self.check(step, parameters, X, Y)
        shown = [c.line() for c in result.comparisons if c.name in iris.PARAM_NAMES or not c.ok]
        return Report(result, (result.problem,) if result.problem else tuple(shown))

    def check(self, step, parameters: list[torch.Tensor], X: torch.Tensor, Y: torch.Tensor,
              call=call_directly) -> CheckResult:
        """One ``step`` against ``torch.optim.Adam``'s, in float64.

        The step starts from ``parameters`` with autograd's gradients on
        (X, Y); compares the parameters, then m, then v after it.
        """
        parameters, (X,) = iris.in_check_dtype(parameters), iris.in_check_dtype([X])
        grads = iris.autograd_grads(parameters, X, Y)
        expected, m_expected, v_expected = iris.torch_adam(parameters, [grads])
        params = [p.clone() for p in parameters]
        m, v = iris.zeros_like_all(params), iris.zeros_like_all(params)
        call(step, params, [g.clone() for g in grads], m, v, 1, lr=iris.LR, beta1=iris.BETA1, beta2=iris.BETA2,
             eps=iris.EPS)
        if all(torch.equal(p, q) for p, q in zip(params, parameters)):
            return CheckResult(problem="no parameter changed: adam_step must update the tensors in place "
                                       "(p -= ..., m.mul_(...), ...)")
        return compare_all(ADAM_NAMES, params + m + v, expected + m_expected + v_expected, "tensors")

    def run(self, item: Item, sources: Mapping[str, str], case: Case, inputs: Mapping, runner: AnswerRunner) -> list:
        """The parameters, then m, then v after ADAM_STEPS updates with made-up gradients (float64)."""
        (step,) = self.load_functions(item, sources, runner)
        params = [p.clone() for p in iris_inputs(case, iris.CHECK_DTYPE)["parameters"]]
        m, v = iris.zeros_like_all(params), iris.zeros_like_all(params)
        lr, beta1, beta2, eps = setting(case).adam
        for t, grads in enumerate(adam_gradients(case, params), start=1):
            with runner.forbidden():
                step(params, grads, m, v, t, lr=lr, beta1=beta1, beta2=beta2, eps=eps)
        return params + m + v

    def reference(self, item: Item, case: Case) -> list[torch.Tensor]:
        parameters = iris_inputs(case, iris.CHECK_DTYPE)["parameters"]
        params, m, v = iris.torch_adam(parameters, adam_gradients(case, parameters), *setting(case).adam)
        return params + m + v

    def compare(self, item: Item, got, expected, case: Case) -> CheckResult:
        return compare_all(ADAM_NAMES[: len(expected)], got, expected, "tensors")

    def describe_case(self, item: Item, case: Case) -> str:
        lr, beta1, beta2, eps = setting(case).adam
        return f"{ADAM_STEPS} steps, lr {lr:g}, beta1 {beta1:g}, beta2 {beta2:g}, eps {eps:g}"

    def probe(self, item: Item, namespace: Mapping, answers: Mapping[str, str]) -> Report:
        (step,) = self.notebook_functions(item, namespace)
        result = self.check(step, *require(namespace, "parameters", "Xtr", "Ytr"), call=call_student)
        return Report(result, tuple(result.lines()))
