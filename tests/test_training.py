"""autograder.workbook.training: the bookkeeping of notebook 04's training loop (curve, printing, validation, replay)."""

from __future__ import annotations

import math

import pytest
import torch

from autograder.workbook import model, training
from autograder.workbook.data import VOCAB_SIZE, Splits
from autograder.workbook.training import TrainingLog

pytestmark = pytest.mark.ex4


def tiny_splits(seed: int = 0, rows: int = 200) -> Splits:
    """Random contexts and targets standing in for the names data (no data set needed)."""
    g = torch.Generator().manual_seed(seed)

    def make(count):
        return torch.randint(0, VOCAB_SIZE, (count, 3), generator=g), torch.randint(0, VOCAB_SIZE, (count,), generator=g)

    (Xtr, Ytr), (Xdev, Ydev), (Xte, Yte) = make(rows), make(rows // 4), make(rows // 4)
    return Splits(Xtr, Ytr, Xdev, Ydev, Xte, Yte)


def train(splits: Splits, max_steps: int, gradients=model.autograd_grads, batch_size: int = 8):
    """The notebook's loop on a small network: (the log, the trained parameters)."""
    g = torch.Generator().manual_seed(1)
    parameters = [p.detach() for p in model.init_params(g, n_embd=4, n_hidden=16)]
    log = TrainingLog(parameters, splits, max_steps)
    with torch.no_grad():
        for i in range(max_steps):
            ix = torch.randint(0, splits.Xtr.shape[0], (batch_size,), generator=g)
            Xb, Yb = splits.Xtr[ix], splits.Ytr[ix]
            fw = model.fused_forward(parameters, Xb, Yb)
            grads = gradients(parameters, Xb, Yb)
            lr = 0.1 if i < max_steps // 2 else 0.01
            for p, grad in zip(parameters, grads):
                p.add_(grad, alpha=-lr)
            log.record(i, fw.loss.item(), lr, ix)
    return log, parameters


def test_the_replay_with_the_runs_own_gradients_retraces_its_curve_exactly():
    log, trained = train(tiny_splits(), 30)
    after_training = [p.clone() for p in trained]
    curve = log.replay(model.autograd_grads)
    assert len(curve) == 30 and curve == log.lossi  # same start, minibatches and learning rates, to the bit
    assert all(torch.equal(p, q) for p, q in zip(trained, after_training))  # the run's parameters untouched


def test_the_replay_follows_the_gradients_it_is_given():
    log, _ = train(tiny_splits(), 30)
    doubled = log.replay(lambda parameters, Xb, Yb: [2 * g for g in model.autograd_grads(parameters, Xb, Yb)])
    assert doubled[0] == log.lossi[0]  # the first loss is measured before any update
    assert max(abs(a - b) for a, b in zip(doubled, log.lossi)) > 1e-3


def test_the_replay_keeps_only_the_first_steps(monkeypatch):
    monkeypatch.setattr(training, "REPLAY_STEPS", 7)
    log, _ = train(tiny_splits(), 20)
    assert len(log.lossi) == 20 and len(log.batches) == len(log.learning_rates) == 7
    assert log.replay(model.autograd_grads) == log.lossi[:7]


def test_a_short_run_prints_about_ten_times_and_validates_five_times_and_at_the_end(capsys):
    log, _ = train(tiny_splits(), 50)
    printed = capsys.readouterr().out.splitlines()
    assert [int(line.split("/")[0]) for line in printed] == list(range(0, 50, 5))
    assert printed[1] == f"      5/     50: {10 ** log.lossi[5]:.4f}"
    assert [step for step, _ in log.val_points] == [0, 10, 20, 30, 40, 49]
    assert log.val_points[-1][1] == math.log10(log.validation_loss())  # measured after the last update
    assert log.speed().startswith("50 steps in ") and log.speed().endswith(" µs per step)")


def test_the_full_run_prints_and_validates_every_10000_steps():
    log = TrainingLog([torch.zeros(1)], tiny_splits(), 200_000)
    assert (log.print_every, log.val_every) == (10_000, 10_000)


def test_the_validation_loss_uses_the_statistics_of_the_calibration_examples():
    splits = tiny_splits()
    log, trained = train(splits, 10)
    statistics = model.batchnorm_statistics(trained, splits.Xtr[log.calibration])
    assert log.validation_loss() == model.split_loss(trained, splits.Xdev, splits.Ydev, *statistics)
    assert log.calibration.shape == (training.CALIBRATION_EXAMPLES,)
    assert torch.equal(log.calibration, TrainingLog(trained, splits, 10).calibration)  # seeded: always the same
