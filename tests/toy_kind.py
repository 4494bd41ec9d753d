"""A kind of graded item defined outside the package, in this one module: the derivative of a scalar function.

The student writes ``dfdx(x)``, the derivative of ``f`` (``Item.spec["f"]``,
an expression in ``x``), for a tensor of points. The visible check compares
it with autograd's at a few points, the hidden check at points drawn from
the hidden case's seed. Nothing else of the package is edited for it:
``register`` adds it to the kinds, ``tests/test_kinds.py`` puts an item of
it in the registry and runs it through the visible check, the scoreboard,
the hidden judge (in this process and in the sandboxed child) and the samples.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from autograder.diagnosis.comparison import CheckResult, compare
from autograder.exercises import Item
from autograder.kinds import register
from autograder.kinds.base import AnswerRunner, FunctionsKind, Report, call_directly, call_student, visible_check

NOTEBOOK_POINTS = torch.tensor([-1.5, 0.25, 2.0], dtype=torch.float64)


def function_of(item: Item):
    return eval(f"lambda x: {item.spec['f']}", {"torch": torch})  # the course's own expression (trusted)


def hidden_points(case) -> torch.Tensor:
    return torch.randn(5, generator=torch.Generator().manual_seed(case.seed), dtype=torch.float64)


def autograd_derivative(function, points: torch.Tensor) -> torch.Tensor:
    x = points.clone().requires_grad_(True)
    with torch.enable_grad():
        (grad,) = torch.autograd.grad(function(x).sum(), x)
    return grad


class DerivativeKind(FunctionsKind):
    name = "scalar_derivative"

    @visible_check
    def check_derivative(self, dfdx, f, points: torch.Tensor = NOTEBOOK_POINTS) -> Report:
        """Compare ``dfdx(points)`` with autograd's derivative of ``f`` at ``points``."""
        result = self.check(dfdx, f, points)
        return Report(result, tuple(result.lines()))

    def check(self, dfdx, f, points, call=call_directly) -> CheckResult:
        return CheckResult((compare("dfdx", call(dfdx, points.clone()), autograd_derivative(f, points)),))

    def run(self, item: Item, sources: Mapping[str, str], case, inputs: Mapping, runner: AnswerRunner):
        (dfdx,) = self.load_functions(item, sources, runner)
        with runner.forbidden():
            return dfdx(hidden_points(case))

    def reference(self, item: Item, case) -> torch.Tensor:
        return autograd_derivative(function_of(item), hidden_points(case))

    def compare(self, item: Item, got, expected, case) -> CheckResult:
        return CheckResult((compare("dfdx", got, expected),))

    def describe_case(self, item: Item, case) -> str:
        return "five other points"

    def probe(self, item: Item, namespace: Mapping, answers: Mapping[str, str]) -> Report:
        (dfdx,) = self.notebook_functions(item, namespace)
        result = self.check(dfdx, function_of(item), NOTEBOOK_POINTS, call=call_student)
        return Report(result, tuple(result.lines()))

    def cheating_answer(self, item: Item, answer_id: str, solution: str) -> str:
        return f"x = x.clone().requires_grad_()\n({item.spec['f']}).sum().backward()\nreturn x.grad\n"


KIND = register(DerivativeKind())
ITEM = Item("toy_dfdx", "00_scalar_warmup", ("toy_derivative",), 2, KIND.name,
            {"functions": ("dfdx",), "f": "x * torch.sin(x)"})
RIGHT = "#| answer: toy_derivative\ndef dfdx(x):\n    return torch.sin(x) + x * torch.cos(x)\n"
WRONG = "#| answer: toy_derivative\ndef dfdx(x):\n    return torch.sin(x) - x * torch.cos(x)\n"
