"""Notebook 05's hidden inputs, and what its three kinds (``mlp_backward``, ``adam_step``, ``adam_training``) share.

A hidden case (``kinds.cases.HIDDEN_CASES``) gives, through its seed, an
initialisation of the widths ``IRIS_SETTINGS`` names for it and a subset of
the training flowers (``iris_inputs``), and for the Adam update ADAM_STEPS
lists of made-up gradients (``adam_gradients``) with the Adam settings
``IRIS_SETTINGS`` names for it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..workbook import iris
from .base import FunctionsKind
from .cases import HIDDEN_CASES, Case

ADAM_STEPS = 3  # steps of the hidden check of the Adam update: t = 1 alone would hide stale moments


@dataclass(frozen=True)
class IrisSetting:
    """What notebook 05's kinds take from a hidden case besides its seed and batch size."""

    mlp_hidden: tuple[int, int]  # the two hidden layers' widths
    adam: tuple[float, float, float, float]  # lr, beta1, beta2, eps


# The first case keeps the notebook's network and settings; the second changes both.
IRIS_SETTINGS = {HIDDEN_CASES[0].seed: IrisSetting((8, 9), (iris.LR, iris.BETA1, iris.BETA2, iris.EPS)),
                 HIDDEN_CASES[1].seed: IrisSetting((6, 5), (0.003, 0.8, 0.99, 1e-6))}


def setting(case: Case) -> IrisSetting:
    return IRIS_SETTINGS[case.seed]


def iris_inputs(case: Case, dtype: torch.dtype = torch.float32) -> dict:
    """An initialisation of the case's widths, the training flowers and a subset of ``case.n`` rows of them."""
    g = torch.Generator().manual_seed(case.seed)
    params = [p.detach().to(dtype) for p in iris.init_mlp(g, (4, *setting(case).mlp_hidden, 3))]
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
    return "-".join(map(str, (4, *setting(case).mlp_hidden, 3)))


# What the copies_grad sample hands in for notebook 05: autograd for the backward pass, torch.optim for Adam.
COPIED = {
    "mlp_backward": ("for p in parameters:\n    p.grad = None\nfw.loss.backward()\n"
                     "dW1, db1, dW2, db2, dW3, db3 = [p.grad for p in parameters]\n"),
    "adam_step": ("for p, grad in zip(parameters, grads):\n    p.grad = grad\n"
                  "torch.optim.Adam(parameters, lr=lr, betas=(beta1, beta2), eps=eps).step()\n"),
}


class IrisKind(FunctionsKind):
    """A kind of notebook 05, whose answer cells each define a function."""

    def cheating_answer(self, item, answer_id: str, solution: str) -> str:
        return COPIED[dict(zip(item.answers, self.functions(item)))[answer_id]]
