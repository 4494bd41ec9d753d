"""The lecture's setting, rebuilt the same way on both sides of the process boundary.

The child that runs learner code and the parent that judges it each build it
from the seeds alone, so the parent never has to trust a number the child
sends back. Shapes: n = 32 (batch), H = 64 (Exercises 1-3) or 200 (Exercise 4).
"""

from __future__ import annotations

import dataclasses
import functools

import torch
import torch.nn.functional as F

from ..diagnosis.diagnose import context_of
from ..workbook import model
from ..workbook.data import BLOCK_SIZE, VOCAB_SIZE, make_splits

BATCH = 32
N_EMBD = 10
N_HIDDEN = 64
EX4_N_HIDDEN = 200
EX4_LR = 0.1  # the lecture's learning rate for its first 100,000 steps


@functools.lru_cache(maxsize=1)
def splits():
    """The lecture's train/dev/test tensors on the bundled names or $NINJA_NAMES_FILE."""
    return make_splits()


def ex123_forward():
    """Exercises 1-3: the lecture's parameters (requires grad), batch and chunked forward after
    ``loss.backward()``, every intermediate with its ``.grad`` retained.

    Returns (parameters, Xb (n, 3), Yb (n,), forward: model.Tensors).
    """
    g = model.make_generator(model.SEED)
    parameters = model.init_params(g, n_embd=N_EMBD, n_hidden=N_HIDDEN)
    Xtr, Ytr = splits().Xtr, splits().Ytr
    Xb, Yb = model.sample_batch(Xtr, Ytr, BATCH, g)
    with torch.enable_grad():
        forward = model.chunked_forward(parameters, Xb, Yb)
        for p in parameters:
            p.grad = None
        forward.loss.backward()
    return parameters, Xb, Yb, forward


def reference_gradients(parameters, forward) -> dict[str, torch.Tensor]:
    """Autograd's gradient of every tensor of Exercises 1-3, as ``d<name>``."""
    grads = {f"d{name}": t.grad for name, t in forward.items() if t.grad is not None}
    grads.update({f"d{name}": p.grad for name, p in zip(model.PARAM_NAMES, parameters)})
    return grads


def ex123_namespace(parameters, Xb, Yb, forward) -> dict:
    """What an Exercise 1-3 cell sees, as in the lecture's notebook after its forward cell."""
    namespace = {"torch": torch, "F": F, "n": BATCH, "batch_size": BATCH, "n_embd": N_EMBD,
                 "n_hidden": N_HIDDEN, "vocab_size": VOCAB_SIZE, "block_size": BLOCK_SIZE,
                 "Xb": Xb, "Yb": Yb, "parameters": parameters, **dict(zip(model.PARAM_NAMES, parameters))}
    namespace.update(data_names(), g=model.make_generator(model.SEED))
    namespace.update(forward)
    return namespace


def data_names() -> dict:
    """The splits under the lecture's names (Xtr, Ytr, Xdev, Ydev, Xte, Yte)."""
    return {field.name: getattr(splits(), field.name) for field in dataclasses.fields(splits())}


def ex123_context(parameters, forward) -> dict:
    """What ``diagnose`` knows of the forward pass (values and correct gradients)."""
    return context_of(forward, forward.inputs)


def ex4_initial_parameters() -> tuple[list[torch.Tensor], torch.Generator]:
    """Exercise 4's fresh initialisation (H = 200), and the generator that then draws the batches."""
    g = model.make_generator(model.SEED)
    parameters = [p.detach() for p in model.init_params(g, n_embd=N_EMBD, n_hidden=EX4_N_HIDDEN)]
    return parameters, g


def ex4_steps(steps: int):
    """Yield (step, parameters, Xb, Yb, reference gradients) for ``steps`` training steps.

    Between steps the parameters move by autograd's gradients, so every step
    checks the learner's block on the lecture's trajectory, whatever it got wrong before.
    """
    parameters, g = ex4_initial_parameters()
    Xtr, Ytr = splits().Xtr, splits().Ytr
    for step in range(steps):
        Xb, Yb = model.sample_batch(Xtr, Ytr, BATCH, g)
        reference = model.autograd_grads(parameters, Xb, Yb)
        yield step, parameters, Xb, Yb, reference
        with torch.no_grad():
            parameters = [p - EX4_LR * grad for p, grad in zip(parameters, reference)]


def ex4_context(parameters, Xb, Yb) -> dict:
    """``diagnose``'s context for one Exercise 4 step (fused forward, its gradients)."""
    leaves = [p.detach().clone().requires_grad_(True) for p in parameters]
    with torch.enable_grad():
        forward = model.fused_forward(leaves, Xb, Yb)
        forward.loss.backward()
    return context_of(forward, forward.inputs)
