"""Notebook 06's Part 3: training the transformer with a manual backward pass, beside autograd.

``train`` is what the notebook runs: ``training_steps()`` steps of Adam
(``torch.optim.Adam``, fed the gradients through ``.grad``) on minibatches of
windows of the names stream, with the backward function under test, and in
lockstep the same steps from the same start with autograd's gradients, so
that the two losses can be compared at every logged step
(``TRAINED_LOSS_ATOL``). ``adam_losses`` is the hidden check's shorter run:
one run at a time, with an Adam update written out here, since the judge's
child, where a student's function runs, has no ``torch.optim``.
``mlp_baseline`` trains notebook 04's MLP for as many steps, for the
validation loss beside the transformer's.

Everything random takes an explicit ``torch.Generator``.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass, field

import torch

from . import model
from .data import make_splits
from .transformer import TransformerConfig, autograd_loss_and_grads, fused_forward, sample_batch

# Part 3's schedule: FULL_STEPS steps of Adam on batches of TRAIN_BATCH windows,
# learning rate TRAIN_LR (see ``learning_rate``). $NINJA_EX6_STEPS runs fewer
# (tests and grading); no check depends on the length of the run.
FULL_STEPS = 2500
STEPS_ENV = "NINJA_EX6_STEPS"
TRAIN_BATCH = 32
TRAIN_LR = 1e-2

# The largest accepted |loss - autograd's loss| at a logged step of the two lockstep runs of ``train``.
# Rounding differences of ~1e-7 in the gradients grow slowly over the steps: in six full runs (the
# notebook's and five other seeds) the two losses were at most 3.3e-5 apart at a logged step and 6.0e-5 at
# any step (both in the notebook's own run), so 3e-4 leaves 5x headroom. A LayerNorm backward with Bessel's
# n/(n-1) (its gradients off by ~1e-2) is 5e-3 away by step 250; GELU's exact (erf)
# derivative in place of the tanh approximation's (off by ~4e-4) 6e-4 by step 1,000 and 1e-3 by step 1,500.
# Adam divides each gradient by its running size, so a gradient off by a constant factor trains the same
# (1% on Wqkv's: gaps below 1e-5): that mistake is for the gradient checks to find. Measured by
# bench/transformer_tolerance.py --training-seeds and bench/bench_transformer.py (bench/transformer_tolerance.md).
TRAINED_LOSS_ATOL = 3e-4


def training_steps() -> int:
    """Part 3's number of steps: FULL_STEPS unless $NINJA_EX6_STEPS says otherwise."""
    value = os.environ.get(STEPS_ENV, "").strip()
    if not value:
        return FULL_STEPS
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"{STEPS_ENV}={value!r}: expected a positive whole number of steps")
    return int(value)


@dataclass
class TrainingRun:
    """What ``train`` records: the minibatch loss of every step, of both runs, and the timing."""

    steps: int
    log_every: int
    losses: list[float] = field(default_factory=list)  # the run with the backward function under test
    reference_losses: list[float] = field(default_factory=list)  # autograd's run on the same batches ([] if none)
    seconds: float = 0.0  # wall-clock time of the whole loop (both runs)
    backward_seconds: float = 0.0  # time inside the backward function under test

    def logged_steps(self) -> list[int]:
        """The steps that are printed and compared: every ``log_every``-th, and the last."""
        return sorted({*range(0, self.steps, self.log_every), self.steps - 1})

    def largest_gap(self) -> float:
        """max |loss - reference loss| over the logged steps (0 without a reference run)."""
        if not self.reference_losses:
            return 0.0
        return max(abs(self.losses[i] - self.reference_losses[i]) for i in self.logged_steps())


def learning_rate(step: int, steps: int, lr: float) -> float:
    """``lr`` for the first 80% of the steps, then a linear decay to lr / 10 at the end."""
    knee = int(0.8 * steps)
    if step < knee:
        return lr
    return lr * (1.0 - 0.9 * (step - knee) / max(1, steps - 1 - knee))


def train(parameters: list[torch.Tensor], backward, config: TransformerConfig, stream: torch.Tensor,
          steps: int, generator: torch.Generator, batch_size: int = TRAIN_BATCH, lr: float = TRAIN_LR,
          log_every: int = 250, reference: bool = True, printer=print) -> TrainingRun:
    """Train ``parameters`` in place with Adam on gradients from ``backward``; autograd's run beside it.

    ``backward(parameters, fw, Xb, Yb, config)`` returns the 17 gradients for
    ``fw = fused_forward(parameters, Xb, Yb, config)``, computed without autograd.
    With ``reference``, a copy of the starting parameters is trained in
    lockstep on the same minibatches with ``autograd_grads`` and the same
    Adam, so that the two losses can be compared at every logged step.
    Minibatches of ``batch_size`` windows come from ``stream`` via
    ``generator``; the learning rate follows ``learning_rate``. Adam is
    ``torch.optim.Adam`` (its own update, not an exercise here), given the
    gradients through ``.grad``. ``printer`` gets a line per logged step.
    """
    with _one_thread():
        return _train(parameters, backward, config, stream, steps, generator, batch_size, lr, log_every, reference,
                      printer)


@contextlib.contextmanager
def _one_thread():
    """torch on one thread for a while. The tensors here are small: a second thread gains nothing, and
    threads that spin on cores shared with other work make every batched product several times slower
    (measured: 4x per training step on a loaded 2-core machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _train(parameters, backward, config, stream, steps, generator, batch_size, lr, log_every, reference,
           printer) -> TrainingRun:
    params = [p.detach().requires_grad_(False) for p in parameters]  # the same storage, trained in place
    shadow = [p.detach().clone() for p in params] if reference else []
    optimiser = torch.optim.Adam(params, lr=lr, fused=True)  # fused: one kernel for all 17 parameters
    shadow_optimiser = torch.optim.Adam(shadow, lr=lr, fused=True) if reference else None
    run = TrainingRun(steps, log_every)
    logged = set(run.logged_steps())
    start = time.perf_counter()
    for i in range(steps):
        Xb, Yb = sample_batch(stream, batch_size, config.block_size, generator)
        rate = learning_rate(i, steps, lr)
        with torch.no_grad():
            fw = fused_forward(params, Xb, Yb, config)
            t0 = time.perf_counter()
            grads = backward(params, fw, Xb, Yb, config)
            run.backward_seconds += time.perf_counter() - t0
            for p, grad in zip(params, grads):
                p.grad = grad
            for group in optimiser.param_groups:
                group["lr"] = rate
            optimiser.step()
        run.losses.append(fw.loss.item())
        if reference:
            shadow_loss, shadow_grads = autograd_loss_and_grads(shadow, Xb, Yb, config)
            with torch.no_grad():
                for p, grad in zip(shadow, shadow_grads):
                    p.grad = grad
                for group in shadow_optimiser.param_groups:
                    group["lr"] = rate
                shadow_optimiser.step()
            run.reference_losses.append(shadow_loss)
        if i in logged and printer is not None:
            line = f"step {i:6d}/{steps}  lr {rate:.4f}  loss {run.losses[-1]:.4f}"
            if reference:
                line += f"  autograd's run {run.reference_losses[-1]:.4f}  (gap {abs(run.losses[-1] - run.reference_losses[-1]):.1e})"
            printer(line)
    for p in params:
        p.grad = None
    run.seconds = time.perf_counter() - start
    return run


def mlp_baseline(steps: int, splits=None) -> tuple[float, float]:
    """Notebook 04's MLP (n_hidden 200) trained for ``steps`` steps of 32 with autograd: (train, val) loss.

    Notebook 04's schedule scaled to ``steps`` (learning rate 0.1, then 0.01
    from half way), its seed, BatchNorm calibrated on the training set; the
    same split as ``make_streams``, so the validation loss is over the same
    target characters as ``split_loss(..., streams.dev, ...)``.
    """
    splits = make_splits() if splits is None else splits
    g = model.make_generator()
    parameters = model.init_params(g, n_embd=10, n_hidden=200)
    with _one_thread(), torch.no_grad():
        for i in range(steps):
            ix = torch.randint(0, splits.Xtr.shape[0], (32,), generator=g)
            grads = model.autograd_grads(parameters, splits.Xtr[ix], splits.Ytr[ix])
            for p, grad in zip(parameters, grads):
                p.add_(grad, alpha=-(0.1 if i < steps // 2 else 0.01))
    bnmean, bnvar = model.batchnorm_statistics(parameters, splits.Xtr)
    return (model.split_loss(parameters, splits.Xtr, splits.Ytr, bnmean, bnvar),
            model.split_loss(parameters, splits.Xdev, splits.Ydev, bnmean, bnvar))


# ------------------------------------------------------------------ the hidden check's run

# torch.optim.Adam's defaults, for ``adam_update``.
ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8


def adam_update(parameters: list[torch.Tensor], grads: list[torch.Tensor], m: list[torch.Tensor],
                v: list[torch.Tensor], t: int, lr: float) -> None:
    """Step ``t`` (from 1) of Adam on ``parameters`` in place, with moments ``m`` and ``v`` (updated in place).

    The update of ``torch.optim.Adam`` with its default betas and eps, written out so that it runs where
    ``torch.optim`` cannot (the judge's child). Both runs of a hidden check use it.
    """
    beta1, beta2 = ADAM_BETAS
    for p, g, m_, v_ in zip(parameters, grads, m, v, strict=True):
        m_.lerp_(g, 1 - beta1)
        v_.mul_(beta2).addcmul_(g, g, value=1 - beta2)
        denominator = (v_ / (1 - beta2**t)).sqrt_().add_(ADAM_EPS)
        p.addcdiv_(m_, denominator, value=-lr / (1 - beta1**t))


def adam_losses(parameters: list[torch.Tensor], backward, config: TransformerConfig, stream: torch.Tensor,
                steps: int, generator: torch.Generator, batch_size: int, lr: float = TRAIN_LR,
                guard=None) -> list[float]:
    """The minibatch loss of each of ``steps`` Adam steps (``adam_update``) on copies of ``parameters``.

    ``backward(parameters, fw, Xb, Yb, config)`` gives the gradients of each
    step (``guard()``, if given, is a context manager around each call); the
    minibatches come from ``stream`` through ``generator`` and the learning
    rate follows ``learning_rate``, as in ``train``. Each step's loss is read
    before ``backward`` is called. The arguments are left as they were.
    """
    params = [p.detach().clone() for p in parameters]
    m, v = [torch.zeros_like(p) for p in params], [torch.zeros_like(p) for p in params]
    losses = []
    with _one_thread(), torch.no_grad():
        for i in range(steps):
            Xb, Yb = sample_batch(stream, batch_size, config.block_size, generator)
            fw = fused_forward(params, Xb, Yb, config)
            losses.append(fw.loss.item())
            with guard() if guard is not None else contextlib.nullcontext():
                grads = list(backward(params, fw, Xb, Yb, config))
            if len(grads) != len(params) or not all(isinstance(g, torch.Tensor) for g in grads):
                raise ValueError(f"the backward function returned {len(grads)} values; expected {len(params)} "
                                 "tensors, one per parameter")
            adam_update(params, grads, m, v, i + 1, learning_rate(i, steps, lr))
    return losses
