"""Kind "adam_training" (notebook 05): ``mlp_backward`` and ``adam_step`` together, a whole training run.

Visible check (through ``checks.check_adam_training``): the run against
autograd with ``torch.optim.Adam``, in float64. Hidden check: the same from
another initialisation (of other widths in one case).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

import torch

from ..diagnosis.comparison import CheckResult, compare_all, drift_lines, trained_comparison
from ..exercises import Item
from ..workbook import iris
from .base import AnswerRunner, Report, call_directly, call_student, require, visible_check
from .cases import Case
from .iris_cases import IrisKind, case_widths, iris_inputs


def trained(got, expected: list[torch.Tensor], when: str) -> CheckResult:
    """Trained parameters against the reference run's, each within ``iris.ADAM_TRAINED_RTOL`` of its scale."""
    return compare_all(iris.PARAM_NAMES, got, expected, "parameters",
                       functools.partial(trained_comparison, rtol=iris.ADAM_TRAINED_RTOL, when=when))


class AdamTrainingKind(IrisKind):
    name = "adam_training"
    oracle = "torch.optim.Adam"

    @visible_check
    def check_adam_training(self, backward, step, parameters: list[torch.Tensor], X: torch.Tensor, Y: torch.Tensor,
                            epochs: int = iris.EPOCHS) -> Report:
        """Train copies of ``parameters`` with ``backward`` + ``step`` and with autograd + ``torch.optim.Adam``.

        Both runs are in float64 and start from the same values; one line per
        parameter says how far apart they end up, relative to its scale, and
        the check passes when all are within ``iris.ADAM_TRAINED_RTOL``.
        """
        result = self.check(backward, step, parameters, X, Y, epochs)
        return Report(result, tuple(drift_lines(result, f"after {epochs} epochs")))

    def check(self, backward, step, parameters: list[torch.Tensor], X: torch.Tensor, Y: torch.Tensor,
              epochs: int = iris.EPOCHS, call=call_directly) -> CheckResult:
        """Training with ``backward`` + ``step`` against autograd + ``torch.optim.Adam``.

        Both runs in float64 from copies of ``parameters``; each parameter
        must end within ``iris.ADAM_TRAINED_RTOL`` of its scale.
        """
        parameters, (X,) = iris.in_check_dtype(parameters), iris.in_check_dtype([X])
        mine, _ = iris.train_manual(parameters, X, Y, lambda *a: call(backward, *a),
                                    lambda *a, **k: call(step, *a, **k), epochs)
        reference, _ = iris.train_torch(parameters, X, Y, epochs)
        return trained(mine, reference, f"after {epochs} epochs")

    def run(self, item: Item, sources: Mapping[str, str], case: Case, inputs: Mapping, runner: AnswerRunner) -> list:
        """The parameters after a whole training run (float64) with both of the student's functions."""
        backward, step = self.load_functions(item, sources, runner)
        data = iris_inputs(case, iris.CHECK_DTYPE)
        trained_params, _ = iris.train_manual(data["parameters"], data["Xtr"], data["Ytr"], backward, step,
                                              guard=runner.forbidden)
        return trained_params

    def reference(self, item: Item, case: Case) -> list[torch.Tensor]:
        inputs = iris_inputs(case, iris.CHECK_DTYPE)
        return iris.train_torch(inputs["parameters"], inputs["Xtr"], inputs["Ytr"])[0]

    def compare(self, item: Item, got, expected, case: Case) -> CheckResult:
        return trained(got, expected, f"after {iris.EPOCHS} epochs")

    def describe_case(self, item: Item, case: Case) -> str:
        return f"another initialisation, layers {case_widths(case)}, {iris.EPOCHS} epochs in float64"

    def label(self, item: Item) -> str:
        return super().label(item) + ", a training run"

    def probe(self, item: Item, namespace: Mapping, answers: Mapping[str, str]) -> Report:
        backward, step = self.notebook_functions(item, namespace)
        result = self.check(backward, step, *require(namespace, "parameters", "Xtr", "Ytr"), call=call_student)
        return Report(result, tuple(drift_lines(result, f"after {iris.EPOCHS} epochs")))
