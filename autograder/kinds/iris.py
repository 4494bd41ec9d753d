"""Notebook 05's kinds: "mlp_backward", "adam_step" and "adam_training".

Visible checks (notebook 05's test cells, through ``check.check_mlp_backward``,
``check.check_adam_step`` and ``check.check_adam_training``): the 6 gradients
against autograd's on the training flowers; one Adam step against
``torch.optim.Adam``'s; a whole training run against autograd with
``torch.optim.Adam``. Hidden checks: the same from another initialisation
(of other widths in one case), on a subset of the flowers, and for the Adam
update over ADAM_STEPS steps with made-up gradients and other settings.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

import torch

from ..diagnosis.comparison import CheckResult, compare_all, trained_comparison
from ..exercises import ANSWER_FUNCTIONS, Item
from ..untrusted import autograd_forbidden, load_function
from ..workbook import iris
from .base import Kind, call_directly, call_student, require, student_function
from .cases import Case

ADAM_STEPS = 3  # steps of the hidden check of the Adam update: t = 1 alone would hide stale moments
ADAM_NAMES = (list(iris.PARAM_NAMES) + [f"m[{n}]" for n in iris.PARAM_NAMES]
              + [f"v[{n}]" for n in iris.PARAM_NAMES])  # what adam_step's check compares, in order


# ------------------------------------------------------------------ shared by the checks

def trained(got, expected: list[torch.Tensor], when: str) -> CheckResult:
    return compare_all(iris.PARAM_NAMES, got, expected, "parameters",
                       functools.partial(trained_comparison, rtol=iris.ADAM_TRAINED_RTOL, when=when))


# ------------------------------------------------------------------ hidden inputs

def iris_inputs(case: Case, dtype: torch.dtype = torch.float32) -> dict:
    """An initialisation of the case's widths, the training flowers and a subset of ``case.n`` rows of them."""
    g = torch.Generator().manual_seed(case.seed)
    params = [p.detach().to(dtype) for p in iris.init_mlp(g, (4, *case.mlp_hidden, 3))]
    X, Y = iris.load_iris()
    split = iris.split_iris(X, Y)
    rows = torch.randperm(len(split.Ytr), generator=g)[: case.n]
    return {"parameters": params, "Xtr": split.Xtr.to(dtype), "Ytr": split.Ytr,
            "Xb": split.Xtr[rows].to(dtype), "Yb": split.Ytr[rows]}


def adam_gradients(case: Case, parameters: list[torch.Tensor]) -> list[list[torch.Tensor]]:
    """ADAM_STEPS lists of made-up gradients, each tensor of its own size between 1e-4 and 1.

    Small gradients make eps matter, so an eps in the wrong place shows.
    """
    g = torch.Generator().manual_seed(case.seed + 2)
    steps = []
    for _ in range(ADAM_STEPS):
        scales = 10 ** (-4 * torch.rand(len(parameters), generator=g, dtype=torch.float64))
        steps.append([torch.randn(p.shape, generator=g, dtype=p.dtype) * s for p, s in zip(parameters, scales)])
    return steps


def _widths(case: Case) -> str:
    return "-".join(map(str, (4, *case.mlp_hidden, 3)))


def _functions(item: Item, sources: Mapping[str, str]) -> list:
    """UNTRUSTED: the functions the item's answer cells define, in the order of ``item.answers``."""
    return [load_function(sources[a], a, ANSWER_FUNCTIONS[a]) for a in item.answers]


def _notebook_functions(item: Item, namespace: Mapping) -> list:
    return [student_function(namespace, ANSWER_FUNCTIONS[a]) for a in item.answers]


# ------------------------------------------------------------------ the kinds

class _IrisKind(Kind):
    def label(self, item: Item) -> str:
        return " + ".join(ANSWER_FUNCTIONS[a] for a in item.answers)


class MLPBackwardKind(_IrisKind):
    name = "mlp_backward"

    def check(self, backward, parameters: list[torch.Tensor], X: torch.Tensor, Y: torch.Tensor,
              call=call_directly) -> CheckResult:
        """The visible check (``check.check_mlp_backward``): ``backward``'s 6 gradients against autograd's.

        ``backward`` gets copies of ``parameters`` and the flowers X (N, 4), Y (N,).
        """
        expected = iris.autograd_grads(parameters, X, Y)
        copies = [p.detach().clone() for p in parameters]
        with torch.no_grad():
            fw = iris.forward(copies, X, Y)
        return compare_all(iris.PARAM_NAMES, call(backward, copies, fw, X, Y), expected)

    def run(self, item: Item, sources: Mapping[str, str], case: Case) -> list:
        (backward,) = _functions(item, sources)
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
        return f"another initialisation, layers {_widths(case)}, {case.n} flowers"

    def probe(self, item: Item, namespace: Mapping, answers: Mapping[str, str]) -> CheckResult:
        (backward,) = _notebook_functions(item, namespace)
        return self.check(backward, *require(namespace, "parameters", "Xtr", "Ytr"), call=call_student)


class AdamStepKind(_IrisKind):
    name = "adam_step"
    oracle = "torch.optim.Adam"

    def check(self, step, parameters: list[torch.Tensor], X: torch.Tensor, Y: torch.Tensor,
              call=call_directly) -> CheckResult:
        """The visible check (``check.check_adam_step``): one ``step`` against ``torch.optim.Adam``'s, in float64.

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

    def run(self, item: Item, sources: Mapping[str, str], case: Case) -> list:
        """The parameters, then m, then v after ADAM_STEPS updates with made-up gradients (float64)."""
        (step,) = _functions(item, sources)
        params = [p.clone() for p in iris_inputs(case, iris.CHECK_DTYPE)["parameters"]]
        m, v = iris.zeros_like_all(params), iris.zeros_like_all(params)
        lr, beta1, beta2, eps = case.adam
        for t, grads in enumerate(adam_gradients(case, params), start=1):
            with autograd_forbidden():
                step(params, grads, m, v, t, lr=lr, beta1=beta1, beta2=beta2, eps=eps)
        return params + m + v

    def reference(self, item: Item, case: Case) -> list[torch.Tensor]:
        parameters = iris_inputs(case, iris.CHECK_DTYPE)["parameters"]
        params, m, v = iris.torch_adam(parameters, adam_gradients(case, parameters), *case.adam)
        return params + m + v

    def compare(self, item: Item, got, expected, case: Case) -> CheckResult:
        return compare_all(ADAM_NAMES[: len(expected)], got, expected, "tensors")

    def describe_case(self, item: Item, case: Case) -> str:
        lr, beta1, beta2, eps = case.adam
        return f"{ADAM_STEPS} steps, lr {lr:g}, beta1 {beta1:g}, beta2 {beta2:g}, eps {eps:g}"

    def probe(self, item: Item, namespace: Mapping, answers: Mapping[str, str]) -> CheckResult:
        (step,) = _notebook_functions(item, namespace)
        return self.check(step, *require(namespace, "parameters", "Xtr", "Ytr"), call=call_student)


class AdamTrainingKind(_IrisKind):
    name = "adam_training"
    oracle = "torch.optim.Adam"

    def check(self, backward, step, parameters: list[torch.Tensor], X: torch.Tensor, Y: torch.Tensor,
              epochs: int = iris.EPOCHS, call=call_directly) -> CheckResult:
        """The visible check (``check.check_adam_training``): training with ``backward`` + ``step`` against
        autograd + ``torch.optim.Adam``.

        Both runs in float64 from copies of ``parameters``; each parameter
        must end within ``iris.ADAM_TRAINED_RTOL`` of its scale.
        """
        parameters, (X,) = iris.in_check_dtype(parameters), iris.in_check_dtype([X])
        mine, _ = iris.train_manual(parameters, X, Y, lambda *a: call(backward, *a),
                                    lambda *a, **k: call(step, *a, **k), epochs)
        reference, _ = iris.train_torch(parameters, X, Y, epochs)
        return trained(mine, reference, f"after {epochs} epochs")

    def run(self, item: Item, sources: Mapping[str, str], case: Case) -> list:
        """The parameters after a whole training run (float64) with both of the student's functions."""
        backward, step = _functions(item, sources)
        inputs = iris_inputs(case, iris.CHECK_DTYPE)
        trained_params, _ = iris.train_manual(inputs["parameters"], inputs["Xtr"], inputs["Ytr"], backward, step,
                                              guard=autograd_forbidden)
        return trained_params

    def reference(self, item: Item, case: Case) -> list[torch.Tensor]:
        inputs = iris_inputs(case, iris.CHECK_DTYPE)
        return iris.train_torch(inputs["parameters"], inputs["Xtr"], inputs["Ytr"])[0]

    def compare(self, item: Item, got, expected, case: Case) -> CheckResult:
        return trained(got, expected, f"after {iris.EPOCHS} epochs")

    def describe_case(self, item: Item, case: Case) -> str:
        return f"another initialisation, layers {_widths(case)}, {iris.EPOCHS} epochs in float64"

    def label(self, item: Item) -> str:
        return super().label(item) + ", a training run"

    def probe(self, item: Item, namespace: Mapping, answers: Mapping[str, str]) -> CheckResult:
        backward, step = _notebook_functions(item, namespace)
        return self.check(backward, step, *require(namespace, "parameters", "Xtr", "Ytr"), call=call_student)
