"""Notebook 05's hidden inputs, and what its three kinds (``mlp_backward``, ``adam_step``, ``adam_training``) share.

A hidden case gives an initialisation of its own widths (``Case.mlp_hidden``)
and a subset of the training flowers (``iris_inputs``), and for the Adam
update ADAM_STEPS lists of made-up gradients (``adam_gradients``).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from ..exercises import ANSWER_FUNCTIONS, Item
from ..judge.untrusted import load_function
from ..workbook import iris
from .base import Kind, student_function
from .cases import Case

ADAM_STEPS = 3  # steps of the hidden check of the Adam update: t = 1 alone would hide stale moments


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


def case_widths(case: Case) -> str:
    """The case's layer widths, "4-6-5-3"."""
    return "-".join(map(str, (4, *case.mlp_hidden, 3)))


def answer_functions(item: Item, sources: Mapping[str, str]) -> list:
    """UNTRUSTED: the functions the item's answer cells define, in the order of ``item.answers``."""
    return [load_function(sources[a], a, ANSWER_FUNCTIONS[a]) for a in item.answers]


def notebook_functions(item: Item, namespace: Mapping) -> list:
    """The notebook's functions of the item's answer cells, in the order of ``item.answers``."""
    return [student_function(namespace, ANSWER_FUNCTIONS[a]) for a in item.answers]


class IrisKind(Kind):
    """A kind of notebook 05, whose answer cells each define a function: labelled by their names."""

    def label(self, item: Item) -> str:
        return " + ".join(ANSWER_FUNCTIONS[a] for a in item.answers)
