"""Kind "sgd_training" (Exercise 4): ``manual_backward`` driving a few steps of SGD.

Item fields (``Item.spec``): ``functions``, the function its answer cell defines.

Visible check: ``check_training``, CHECK_STEPS steps of SGD with the
student's gradients against the same steps with autograd's. Hidden check:
the same from a hidden case's model, for HIDDEN_STEPS steps on batches of
the case's size.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

import torch

from ..diagnosis.comparison import CheckResult, compare_all, drift_lines, trained_comparison
from ..exercises import Item
from ..workbook import model
from .backward_function import AUTOGRAD_BACKWARD, notebook_inputs
from .base import AnswerRunner, FunctionsKind, Report, call_directly, call_student, visible_check
from .cases import Case, case_inputs

# The visible check of training: CHECK_STEPS steps of SGD on batches of
# CHECK_BATCH from the workbook's seed; the hidden one takes HIDDEN_STEPS on
# batches of the case's size. Both at SGD_LR.
CHECK_STEPS, CHECK_BATCH = 5, 32
HIDDEN_STEPS = 20
SGD_LR = 0.1
# Parameters after a short SGD run: rounding compounds over the steps, to
# ~1e-7 of a parameter's scale for a correct backward pass.
SGD_TRAINED_RTOL = 1e-5


def autograd_backward(parameters, fw, Xb, Yb) -> list[torch.Tensor]:
    """A backward function with ``manual_backward``'s signature that asks autograd: the reference."""
    return model.autograd_grads(parameters, Xb, Yb)


def trained(got, expected: list[torch.Tensor], when: str) -> CheckResult:
    """Trained parameters against the reference run's, each within SGD_TRAINED_RTOL of its scale."""
    return compare_all(model.PARAM_NAMES, got, expected, "parameters",
                       functools.partial(trained_comparison, rtol=SGD_TRAINED_RTOL, when=when))


def sgd_run(case: Case, backward, guard=None) -> list[torch.Tensor]:
    """HIDDEN_STEPS of SGD from the case's init with ``backward``'s gradients (each call inside ``guard()``)."""
    generator = torch.Generator().manual_seed(case.seed + 1)
    return model.sgd_steps(case_inputs(case)["parameters"], backward, HIDDEN_STEPS, case.n, SGD_LR, generator, guard)


class SGDTrainingKind(FunctionsKind):
    """Exercise 4's ``manual_backward`` driving a few steps of SGD."""

    name = "sgd_training"

    @visible_check
    def check_training(self, backward, parameters: list[torch.Tensor], steps: int | None = None,
                       seed: int | None = None) -> Report:
        """Train copies of ``parameters`` for ``steps`` SGD steps with ``backward`` and with autograd.

        Both runs see the same batches (drawn from ``seed``; by default
        CHECK_STEPS steps from the workbook's seed); one line per parameter says
        how far apart the two runs end up, and the check passes when all agree
        within SGD_TRAINED_RTOL of their scale.
        """
        steps = CHECK_STEPS if steps is None else steps
        result = self.check(backward, parameters, steps, seed)
        return Report(result, tuple(drift_lines(result, f"after {steps} steps")))

    def check(self, backward, parameters: list[torch.Tensor], steps: int = CHECK_STEPS, seed: int | None = None,
              call=call_directly) -> CheckResult:
        """SGD with ``backward``'s gradients and with autograd's, ``steps`` steps from copies of
        ``parameters`` on the same batches of CHECK_BATCH drawn from ``seed``."""
        runs = []
        for grads_of in (lambda *args: call(backward, *args), autograd_backward):
            generator = model.make_generator() if seed is None else model.make_generator(seed)
            runs.append(model.sgd_steps(parameters, grads_of, steps, CHECK_BATCH, SGD_LR, generator))
        return trained(*runs, f"after {steps} SGD steps")

    # ---- the hidden check
    def run(self, item: Item, sources: Mapping[str, str], case: Case, inputs: Mapping, runner: AnswerRunner) -> list:
        (backward,) = self.load_functions(item, sources, runner)
        return sgd_run(case, backward, runner.forbidden)

    def reference(self, item: Item, case: Case) -> list[torch.Tensor]:
        return sgd_run(case, autograd_backward)

    def compare(self, item: Item, got, expected, case: Case) -> CheckResult:
        return trained(got, expected, f"after {HIDDEN_STEPS} SGD steps")

    # ---- the notebook
    def label(self, item: Item) -> str:
        return f"{super().label(item)}, {CHECK_STEPS} SGD steps"

    def probe(self, item: Item, namespace: Mapping, answers: Mapping[str, str]) -> Report:
        (backward,) = self.notebook_functions(item, namespace)
        parameters, _, _ = notebook_inputs(namespace)
        result = self.check(backward, parameters, call=call_student)
        return Report(result, tuple(drift_lines(result, f"after {CHECK_STEPS} steps")))

    def cheating_answer(self, item: Item, answer_id: str, solution: str) -> str:
        names = ", ".join(f"d{name}" for name in model.PARAM_NAMES)
        return AUTOGRAD_BACKWARD.format(names=names)
