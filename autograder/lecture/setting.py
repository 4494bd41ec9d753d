"""The lecture's setting, on the trusted side: its data, parameters and batches, and the references on them.

Exercises 1-3 are normally judged on the learner's own parameters and batch
(``follow``); this is what stands in when their setup could not be run here
(``lecture_inputs``, ``lecture_namespace``), built from the lecture's seed as
the hidden cases are built (``kinds.cases``). Exercise 4 trains on a fresh
initialisation (H = 200) with batches drawn here; between steps the
parameters move by autograd's gradients, computed here (``ex4_reference``).
Shapes: n = 32 (batch), H = 64 (Exercises 1-3) or 200 (Exercise 4).
"""

from __future__ import annotations

import dataclasses
import functools

import torch

from ..diagnosis.diagnose import context_of
from ..kinds.cases import forward_gradients, forward_namespace
from ..workbook import model
from ..workbook.data import make_splits

BATCH = 32
N_EMBD = 10
N_HIDDEN = 64
EX4_N_HIDDEN = 200
EX4_LR = 0.1  # the lecture's learning rate for its first 100,000 steps


@functools.lru_cache(maxsize=1)
def splits():
    """The lecture's train/dev/test tensors on the bundled names or $NINJA_NAMES_FILE."""
    return make_splits()


def lecture_inputs() -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
    """Exercises 1-3 as the lecture sets them up: its parameters (detached), and its batch (n, 3), (n,)."""
    g = model.make_generator(model.SEED)
    parameters = [p.detach() for p in model.init_params(g, n_embd=N_EMBD, n_hidden=N_HIDDEN)]
    Xb, Yb = model.sample_batch(splits().Xtr, splits().Ytr, BATCH, g)
    return parameters, Xb, Yb


def lecture_namespace(parameters, Xb, Yb) -> dict:
    """What an Exercise 1-3 cell sees in the lecture's notebook after its forward cell (no ``.grad``)."""
    namespace = forward_namespace(parameters, Xb, Yb)
    namespace.update(data_names(), g=model.make_generator(model.SEED))
    return namespace


def references(parameters, Xb, Yb) -> tuple[model.Tensors, dict[str, torch.Tensor]]:
    """The chunked forward pass on these inputs and autograd's gradient of each of its tensors (trusted side)."""
    return forward_gradients(parameters, Xb, Yb)


def data_names() -> dict:
    """The splits under the lecture's names (Xtr, Ytr, Xdev, Ydev, Xte, Yte)."""
    return {field.name: getattr(splits(), field.name) for field in dataclasses.fields(splits())}


def ex4_initial_parameters() -> tuple[list[torch.Tensor], torch.Generator]:
    """Exercise 4's fresh initialisation (H = 200), and the generator that then draws the batches."""
    g = model.make_generator(model.SEED)
    parameters = [p.detach() for p in model.init_params(g, n_embd=N_EMBD, n_hidden=EX4_N_HIDDEN)]
    return parameters, g


def ex4_batch(g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One of the loop's batches, as the lecture draws it: ix (n,), Xb (n, 3), Yb (n,)."""
    ix = torch.randint(0, splits().Xtr.shape[0], (BATCH,), generator=g)
    return ix, splits().Xtr[ix], splits().Ytr[ix]


def ex4_reference(parameters, Xb, Yb) -> list[torch.Tensor]:
    """Autograd's gradients of the fused loss, in parameter order (computed only after the child answered)."""
    return model.autograd_grads(parameters, Xb, Yb)


def ex4_step(parameters, reference) -> list[torch.Tensor]:
    """The parameters after one step along ``reference``: every step checks the block on the lecture's trajectory."""
    with torch.no_grad():
        return [p - EX4_LR * grad for p, grad in zip(parameters, reference)]


def ex4_context(parameters, Xb, Yb) -> dict:
    """``diagnose``'s context for one Exercise 4 step (fused forward, its gradients)."""
    leaves = [p.detach().clone().requires_grad_(True) for p in parameters]
    with torch.enable_grad():
        forward = model.fused_forward(leaves, Xb, Yb)
        forward.loss.backward()
    return context_of(forward, forward.inputs)
