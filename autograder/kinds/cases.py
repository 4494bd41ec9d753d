"""The hidden cases: inputs a student never saw, and autograd's answers on them.

Trusted side. A hidden case is a seed and the sizes of the model and batch;
the kinds build their inputs from it (this module: the MLP of notebooks
01-04; ``kinds.scalar_grad`` and ``kinds.iris_cases`` their own, from the
same seed). ``reference_gradients`` is computed once per case and process:
every student of a batch is judged on the same cases.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..workbook import model
from ..workbook.data import BLOCK_SIZE, VOCAB_SIZE


@dataclass(frozen=True)
class Case:
    """One set of hidden inputs: a seed and the sizes of the model and batch.

    ``seed`` also draws the scalar inputs of notebook 00 and the
    initialisation of notebook 05 (whose own settings per case are in
    ``kinds.iris_cases``).
    """

    seed: int
    n: int  # batch size (notebook 05: rows of the backward check)
    n_hidden: int
    n_embd: int

    def describe(self) -> str:
        return f"batch {self.n}, n_hidden {self.n_hidden}, n_embd {self.n_embd}"

    def sizes(self) -> dict[str, int]:
        """The sizes an answer might type in as numbers (see ``diagnose.hardcoded_size``)."""
        return {"n": self.n, "n_hidden": self.n_hidden, "n_embd": self.n_embd, "block_size": BLOCK_SIZE}


# Not the notebooks' seed (model.SEED) or sizes (32, 64, 10); the second case also changes
# the sizes (and, in kinds.iris_cases, notebook 05's widths and Adam's settings).
HIDDEN_CASES = (Case(seed=1234567, n=32, n_hidden=64, n_embd=10),
                Case(seed=7654321, n=20, n_hidden=48, n_embd=6))
NOTEBOOK_SIZES = HIDDEN_CASES[0].sizes()  # the notebooks' batch and model sizes: only the seed differs


def case_inputs(case: Case) -> dict:
    """Parameters (no grad), batch and sizes of a hidden case: Xb (n, BLOCK_SIZE), Yb (n,)."""
    g = torch.Generator().manual_seed(case.seed)
    params = [p.detach() for p in model.init_params(g, n_embd=case.n_embd, n_hidden=case.n_hidden)]
    Xb = torch.randint(0, VOCAB_SIZE, (case.n, BLOCK_SIZE), generator=g)
    Yb = torch.randint(0, VOCAB_SIZE, (case.n,), generator=g)
    return {"parameters": params, "Xb": Xb, "Yb": Yb}


def forward_gradients(parameters: list[torch.Tensor], Xb: torch.Tensor, Yb: torch.Tensor) -> tuple[model.Tensors, dict]:
    """The chunked forward pass on copies of ``parameters`` and autograd's gradient of each of its tensors.

    Returns (forward tensors, {"d<name>": gradient} of every tensor but the
    loss and of every parameter). The hidden cases are built on it, and so is
    the lecture checker's reference for a learner's own parameters and batch.
    """
    params = [p.detach().clone().requires_grad_(True) for p in parameters]
    with torch.enable_grad():
        fw = model.chunked_forward(params, Xb, Yb)
        fw.loss.backward()
    grads = {f"d{name}": t.grad for name, t in fw.items() if name != "loss"}
    grads.update({f"d{name}": p.grad for name, p in zip(model.PARAM_NAMES, params)})
    return fw, grads


@functools.lru_cache(maxsize=len(HIDDEN_CASES))
def _reference_gradients(case: Case) -> dict[str, torch.Tensor]:
    inputs = case_inputs(case)
    return forward_gradients(inputs["parameters"], inputs["Xb"], inputs["Yb"])[1]


def reference_gradients(case: Case) -> dict[str, torch.Tensor]:
    """Autograd's gradient of every chunked-forward tensor and parameter, as "d<name>" (copies)."""
    return {name: grad.clone() for name, grad in _reference_gradients(case).items()}


def forward_namespace(parameters: list[torch.Tensor], Xb: torch.Tensor, Yb: torch.Tensor) -> dict:
    """What an Exercise 1-3 answer may use on these inputs: the forward tensors (no grad), the sizes, torch."""
    with torch.no_grad():
        fw = model.chunked_forward([p.detach() for p in parameters], Xb, Yb)
    n, n_embd, n_hidden = Xb.shape[0], parameters[0].shape[1], parameters[1].shape[1]
    namespace = {"torch": torch, "F": F, "n": n, "batch_size": n, "n_hidden": n_hidden,
                 "n_embd": n_embd, "vocab_size": VOCAB_SIZE, "block_size": BLOCK_SIZE}
    namespace.update(parameters=[p.detach() for p in parameters], Xb=Xb, Yb=Yb)
    namespace.update(dict(zip(model.PARAM_NAMES, namespace["parameters"])))
    namespace.update(fw)
    return namespace


def gradient_namespace(case: Case) -> dict:
    """What an Exercise 1-3 answer cell may use on a hidden case (``forward_namespace``)."""
    inputs = case_inputs(case)
    return forward_namespace(inputs["parameters"], inputs["Xb"], inputs["Yb"])
