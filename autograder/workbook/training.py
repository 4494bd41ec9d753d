"""The bookkeeping of Exercise 4's training run, so that the notebook's loop reads like the lecture's.

The loop itself (sample a minibatch, ``fused_forward``, the student's
``manual_backward``, the SGD update) stays in the notebook. ``TrainingLog``
is what it calls once per step to keep track: the loss curve, the printed
progress, the validation loss now and then, and what is needed to replay the
first steps with autograd's gradients (the starting parameters, the
minibatches, the learning rates). Shapes use n = batch size, B = block size,
N = examples in a split.

Also here: how long the run is (``ex4_steps``: the lecture's 200,000 steps,
or fewer from ``$NINJA_EX4_STEPS``) and its progress bar (``progress``).
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable

import torch

from .data import Splits
from .model import batchnorm_statistics, fused_forward, split_loss

FULL_EX4_STEPS = 200_000  # the lecture's run
EX4_STEPS_ENV = "NINJA_EX4_STEPS"  # a shorter run (tests and grading set it)
REPLAY_STEPS = 1000  # steps kept for the replay with autograd (the lecture's run: 200,000)
CALIBRATION_EXAMPLES = 10_000  # training examples whose BatchNorm statistics the validation loss uses
CALIBRATION_SEED = 7


class TrainingLog:
    """What a training run records besides its parameters.

    ``parameters`` is the list the loop updates in place; it is copied now, as
    the start of the replay. After the run:

    * ``lossi``: log10 of every step's minibatch loss (the lecture's list);
    * ``val_points``: (step, log10 validation loss) pairs, measured with the
      BatchNorm statistics of CALIBRATION_EXAMPLES fixed training examples;
    * ``replay(gradients)``: the first steps again, from the same start, on the
      same minibatches with the same learning rates, with other gradients.
    """

    def __init__(self, parameters: list[torch.Tensor], splits: Splits, max_steps: int):
        self.parameters, self.splits, self.max_steps = parameters, splits, max_steps
        # The lecture prints every 10,000 steps; a short run prints about ten times, and
        # validates five times (more points would crowd its curve).
        self.print_every = min(10_000, max(1, max_steps // 10))
        self.val_every = self.print_every if max_steps >= 100_000 else max(1, max_steps // 5)
        picker = torch.Generator().manual_seed(CALIBRATION_SEED)
        self.calibration = torch.randint(0, splits.Xtr.shape[0], (CALIBRATION_EXAMPLES,), generator=picker)
        self.start = [p.detach().clone() for p in parameters]
        self.batches: list[torch.Tensor] = []  # (n,) indices into Xtr of each of the first REPLAY_STEPS steps
        self.learning_rates: list[float] = []  # of each of those steps
        self.lossi: list[float] = []
        self.val_points: list[tuple[int, float]] = []
        self.started = time.perf_counter()

    def record(self, step: int, loss: float, lr: float, batch: torch.Tensor) -> None:
        """Step ``step`` trained on Xtr[batch] ((n,) indices) at rate ``lr``; ``loss`` was its minibatch loss."""
        self.lossi.append(math.log10(loss))
        if step < REPLAY_STEPS:
            self.batches.append(batch)
            self.learning_rates.append(lr)
        if step % self.val_every == 0 or step == self.max_steps - 1:
            self.val_points.append((step, math.log10(self.validation_loss())))
        if step % self.print_every == 0:
            print(f"{step:7d}/{self.max_steps:7d}: {loss:.4f}")

    def validation_loss(self) -> float:
        """The dev split's loss now, with BatchNorm statistics from the calibration examples."""
        statistics = batchnorm_statistics(self.parameters, self.splits.Xtr[self.calibration])
        return split_loss(self.parameters, self.splits.Xdev, self.splits.Ydev, *statistics)

    def speed(self) -> str:
        """'<steps> steps in <s> s (<µs> µs per step)', timed from the log's creation."""
        elapsed = time.perf_counter() - self.started
        steps = max(1, len(self.lossi))
        return f"{len(self.lossi):,} steps in {elapsed:.0f} s ({elapsed / steps * 1e6:.0f} µs per step)"

    def replay(self, gradients: Callable[[list[torch.Tensor], torch.Tensor, torch.Tensor], list[torch.Tensor]]
               ) -> list[float]:
        """log10 of the minibatch loss at each recorded step, trained again with ``gradients``.

        ``gradients(parameters, Xb, Yb)`` gives the 7 gradients for Xb (n, B),
        Yb (n,), for example ``model.autograd_grads``. The run's own parameters
        are not touched.
        """
        parameters = [p.clone() for p in self.start]
        curve = []
        for batch, lr in zip(self.batches, self.learning_rates):
            Xb, Yb = self.splits.Xtr[batch], self.splits.Ytr[batch]
            grads = gradients(parameters, Xb, Yb)
            with torch.no_grad():
                curve.append(math.log10(fused_forward(parameters, Xb, Yb).loss.item()))
                for p, grad in zip(parameters, grads):
                    p.add_(grad, alpha=-lr)
        return curve


def ex4_steps() -> int:
    """Training steps for Exercise 4: the lecture's 200,000 unless $NINJA_EX4_STEPS says fewer."""
    value = os.environ.get(EX4_STEPS_ENV, "").strip()
    if not value:
        return FULL_EX4_STEPS
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"{EX4_STEPS_ENV}={value!r}: expected a positive whole number of steps")
    return int(value)


def progress(iterable, total: int | None = None, every: int = 1000):
    """A progress bar that writes to stdout, never stderr.

    nbgrader scores a test cell as failed when anything reaches stderr, and a
    stray bar is the usual culprit; ``every`` limits the refreshes so that a
    saved notebook stays small.
    """
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, file=sys.stdout, miniters=every, mininterval=1.0)
