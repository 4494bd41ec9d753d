"""The iris flowers and the small ReLU network of notebook 05.

Notebook 05 trains a 4 -> 8 -> 9 -> 3 network with ReLU on Fisher's iris data,
full batch, with Adam, and the student writes its backward pass and the Adam
update by hand. This module holds what the notebook uses without teaching it:
the data, the initialisation, the forward pass, PyTorch's own training run
(``torch.optim.Adam`` with autograd, the oracle) and the visible checks.

Shapes: N flowers, D = 4 measurements, H1 and H2 hidden units (8 and 9),
K = 3 species. Weights are stored (fan_in, fan_out), so a layer is
``x @ W + b`` as in the lecture. Everything random takes a generator.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from ..resources import RESTORE_HINT, data_file
from .model import Tensors

BUNDLED_IRIS = data_file("iris.csv")
IRIS_SHA256 = "9cc1c345c71bcc9b486b74cbf6063fa66f4bb5e0f603a4b3c3471ec2e5e8e355"
HEADER = "sepal_length,sepal_width,petal_length,petal_width,species"
FEATURES = tuple(HEADER.split(",")[:4])  # centimetres
CLASSES = ("setosa", "versicolor", "virginica")

SIZES = (4, 8, 9, 3)  # inputs, hidden 1, hidden 2, classes
PARAM_NAMES = ("W1", "b1", "W2", "b2", "W3", "b3")
SPLIT_SEED = 42  # as the names split of the lecture
TEST_FRACTION = 0.2
LR, EPOCHS = 0.01, 100
BETA1, BETA2, EPS = 0.9, 0.999, 1e-8  # torch.optim.Adam's defaults
PRINT_EVERY = 10

# The checks of the Adam update and of training run in float64. After EPOCHS
# epochs a correct manual run and torch.optim.Adam differ by at most ~1e-13 of
# a parameter's scale (max |p|; measured over 200 initialisations of two
# widths, and re-measured by tests/test_iris.py). Mistakes land far above:
# most by 1e-3 or more; a gradient off by a constant factor, which Adam's
# indifference to the gradient's scale nearly hides, by ~1e-6. In float32 the
# same correct runs usually agree to ~1e-6, but now and then one weight jumps
# by ~3e-5: a unit that is nearly dead gets a gradient made of rounding noise,
# and Adam, which divides by the gradient's own size, turns that noise into a
# full step.
CHECK_DTYPE = torch.float64
ADAM_TRAINED_RTOL = 1e-9


class IrisFileError(ValueError):
    """An iris file that is missing, altered or not in the expected format."""


# ------------------------------------------------------------------ data

def load_iris(path: str | os.PathLike | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The flowers: X (N, 4) float32 measurements in cm, Y (N,) int64 species index.

    Reads ``path``, or the bundled ``data/iris.csv``, which must match its
    recorded sha256 (``make iris`` regenerates it).
    """
    file = Path(path) if path is not None else BUNDLED_IRIS
    if not file.is_file():
        raise IrisFileError(f"iris file not found: {file}")
    raw = file.read_bytes()
    if file.resolve() == BUNDLED_IRIS.resolve():
        digest = hashlib.sha256(raw).hexdigest()
        if digest != IRIS_SHA256:
            raise IrisFileError(f"{file} has sha256 {digest}, expected {IRIS_SHA256}: the bundled copy was modified. "
                                + RESTORE_HINT.format(file="data/iris.csv", make="make iris"))
    return _parse(raw.decode("ascii", errors="replace"), file)


def _parse(text: str, file: Path) -> tuple[torch.Tensor, torch.Tensor]:
    lines = text.splitlines()
    if not lines or lines[0] != HEADER:
        raise IrisFileError(f"{file}:1: expected the header {HEADER!r}")
    rows, labels = [], []
    for number, line in enumerate(lines[1:], start=2):
        *values, species = line.split(",")
        try:
            if len(values) != len(FEATURES) or species not in CLASSES:
                raise ValueError
            rows.append([float(v) for v in values])
        except ValueError:
            raise IrisFileError(f"{file}:{number}: expected 4 numbers and one of {CLASSES}, got {line!r}") from None
        labels.append(CLASSES.index(species))
    if not rows:
        raise IrisFileError(f"{file}: no flowers in the file")
    return torch.tensor(rows, dtype=torch.float32), torch.tensor(labels, dtype=torch.long)


@dataclass(frozen=True)
class IrisSplit:
    """Training and held-out flowers: X (N, 4) float32, Y (N,) int64."""

    Xtr: torch.Tensor
    Ytr: torch.Tensor
    Xte: torch.Tensor
    Yte: torch.Tensor


def split_iris(X: torch.Tensor, Y: torch.Tensor, test_fraction: float = TEST_FRACTION,
               seed: int = SPLIT_SEED) -> IrisSplit:
    """A stratified split: ``test_fraction`` of each species held out, chosen with ``seed``.

    With 50 flowers per species and 0.2, that is 40 + 40 + 40 = 120 for
    training and 10 of each, 30, held out. The same seed gives the same split.
    """
    g = torch.Generator().manual_seed(seed)
    train, test = [], []
    for k in range(int(Y.max()) + 1):
        members = torch.nonzero(Y == k).view(-1)
        members = members[torch.randperm(len(members), generator=g)]
        held_out = round(test_fraction * len(members))
        test.append(members[:held_out])
        train.append(members[held_out:])
    train_ix, test_ix = torch.cat(train), torch.cat(test)
    train_ix = train_ix[torch.randperm(len(train_ix), generator=g)]  # species mixed, not in blocks
    return IrisSplit(X[train_ix], Y[train_ix], X[test_ix], Y[test_ix])


# ------------------------------------------------------------------ the network

def init_mlp(generator: torch.Generator, sizes: tuple[int, ...] = SIZES) -> list[torch.Tensor]:
    """[W1, b1, W2, b2, W3, b3], leaf tensors that require grad; W (fan_in, fan_out), b (fan_out,).

    Every entry is drawn uniformly from [-1/sqrt(fan_in), 1/sqrt(fan_in)],
    the distribution ``torch.nn.Linear`` uses, here from ``generator``.
    """
    parameters = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        bound = fan_in**-0.5
        W = (torch.rand((fan_in, fan_out), generator=generator) * 2 - 1) * bound
        b = (torch.rand(fan_out, generator=generator) * 2 - 1) * bound
        parameters += [W, b]
    for p in parameters:
        p.requires_grad = True
    return parameters


def forward(parameters: list[torch.Tensor], X: torch.Tensor, Y: torch.Tensor) -> Tensors:
    """The forward pass, every intermediate by name.

    Returns h1pre (N, H1), h1 (N, H1), h2pre (N, H2), h2 (N, H2),
    logits (N, K) and loss (), the mean cross-entropy.
    """
    W1, b1, W2, b2, W3, b3 = parameters
    h1pre = X @ W1 + b1          # (N, H1) layer 1
    h1 = torch.relu(h1pre)       # (N, H1)
    h2pre = h1 @ W2 + b2         # (N, H2) layer 2
    h2 = torch.relu(h2pre)       # (N, H2)
    logits = h2 @ W3 + b3        # (N, K) layer 3: one score per species
    loss = F.cross_entropy(logits, Y)
    return Tensors(h1pre=h1pre, h1=h1, h2pre=h2pre, h2=h2, logits=logits, loss=loss)


def autograd_grads(parameters: list[torch.Tensor], X: torch.Tensor, Y: torch.Tensor) -> list[torch.Tensor]:
    """The reference gradients [dW1, db1, dW2, db2, dW3, db3], by autograd on detached copies."""
    leaves = [p.detach().clone().requires_grad_(True) for p in parameters]
    with torch.enable_grad():
        return list(torch.autograd.grad(forward(leaves, X, Y).loss, leaves))


@torch.no_grad()
def accuracy(parameters: list[torch.Tensor], X: torch.Tensor, Y: torch.Tensor) -> float:
    """The fraction of flowers whose highest logit is their species."""
    logits = forward(parameters, X, Y).logits
    return (logits.argmax(1) == Y).float().mean().item()


# ------------------------------------------------------------------ Adam and training

def zeros_like_all(parameters: list[torch.Tensor]) -> list[torch.Tensor]:
    """A zero tensor shaped like each parameter (Adam's starting moments), tracking no gradient."""
    return [torch.zeros_like(p, requires_grad=False) for p in parameters]


def torch_adam(parameters: list[torch.Tensor], grads_per_step: list[list[torch.Tensor]], lr: float = LR,
               beta1: float = BETA1, beta2: float = BETA2, eps: float = EPS):
    """``torch.optim.Adam`` fed the given gradients, one list per step, on copies of ``parameters``.

    Returns (parameters, m, v) after the last step: m and v are Adam's
    moments (its ``exp_avg`` and ``exp_avg_sq``).
    """
    leaves = [p.detach().clone().requires_grad_(True) for p in parameters]
    optimizer = torch.optim.Adam(leaves, lr=lr, betas=(beta1, beta2), eps=eps)
    for grads in grads_per_step:
        for p, grad in zip(leaves, grads):
            p.grad = grad.detach().clone()
        optimizer.step()
    state = [optimizer.state[p] for p in leaves]
    return ([p.detach() for p in leaves], [s["exp_avg"] for s in state], [s["exp_avg_sq"] for s in state])


def train_torch(parameters: list[torch.Tensor], X: torch.Tensor, Y: torch.Tensor, epochs: int = EPOCHS,
                lr: float = LR) -> tuple[list[torch.Tensor], list[float]]:
    """The blog's training run: full batch, autograd and ``torch.optim.Adam``, on copies.

    Returns the trained parameters and the loss of every epoch (before its update).
    """
    leaves = [p.detach().clone().requires_grad_(True) for p in parameters]
    optimizer = torch.optim.Adam(leaves, lr=lr)
    losses = []
    with torch.enable_grad():
        for _ in range(epochs):
            loss = forward(leaves, X, Y).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
    return [p.detach() for p in leaves], losses


def train_manual(parameters: list[torch.Tensor], X: torch.Tensor, Y: torch.Tensor, backward, step,
                 epochs: int = EPOCHS, lr: float = LR, guard=None) -> tuple[list[torch.Tensor], list[float]]:
    """The same run with a hand-written ``backward`` and Adam ``step``, on copies of ``parameters``.

    ``backward(parameters, fw, X, Y)`` returns the 6 gradients;
    ``step(parameters, grads, m, v, t, lr=, beta1=, beta2=, eps=)`` updates
    parameters and moments in place (t counts from 1). ``guard``, if given,
    is a context manager around both calls. Returns the trained parameters
    and the loss of every epoch.
    """
    params = [p.detach().clone() for p in parameters]
    m, v = zeros_like_all(params), zeros_like_all(params)
    losses = []
    for t in range(1, epochs + 1):
        with torch.no_grad():
            fw = forward(params, X, Y)
            with guard() if guard is not None else contextlib.nullcontext():
                grads = list(backward(params, fw, X, Y))
                step(params, grads, m, v, t, lr=lr, beta1=BETA1, beta2=BETA2, eps=EPS)
        losses.append(fw.loss.item())
    return params, losses


# ------------------------------------------------------------------ visible checks
# The checks themselves are notebook 05's kinds (``autograder.kinds.mlp_backward``, ``adam_step``, ``adam_training``);
# these print them as the test cells show them.

def in_check_dtype(tensors: list[torch.Tensor]) -> list[torch.Tensor]:
    """Detached float64 copies (integer tensors, such as labels, are left as they are)."""
    return [t.detach().to(CHECK_DTYPE) if t.is_floating_point() else t for t in tensors]
