"""Exercise 4: a training step with a manual backward pass against the same step with autograd.

All three steps share the forward pass (``fused_forward``), the minibatches,
the update (in place) and the thread count; they differ only in how the
gradients are made:

* autograd: the forward pass records a graph, ``loss.backward()`` walks it;
* the lecture's manual backward: its own formulas, with the Python loop over
  every (example, position) for the embedding's gradient;
* the solution's ``manual_backward`` (solutions/04): fused cross-entropy and
  BatchNorm, ``index_add_`` for the embedding, no graph recorded at all.

``--full`` also times the solution's whole 200,000-step run.
"""

from __future__ import annotations

import argparse
import math
import time

import torch
import torch.nn.functional as F

from autograder.workbook.data import make_splits
from autograder.workbook.model import fused_forward, init_params, make_generator
from bench.common import Row, interleaved, master_function


def lecture_backward(parameters, fw, Xb, Yb):
    """The lecture's manual backward pass for Exercise 4, as it wrote it (loop for dC included)."""
    C, W1, b1, W2, b2, bngain, bnbias = parameters
    n = Xb.shape[0]
    dlogits = F.softmax(fw.logits, 1)
    dlogits[range(n), Yb] -= 1
    dlogits /= n
    dh = dlogits @ W2.T
    dW2 = fw.h.T @ dlogits
    db2 = dlogits.sum(0)
    dhpreact = (1.0 - fw.h**2) * dh
    dbngain = (fw.bnraw * dhpreact).sum(0, keepdim=True)
    dbnbias = dhpreact.sum(0, keepdim=True)
    dhprebn = bngain * fw.bnvar_inv / n * (n * dhpreact - dhpreact.sum(0)
                                          - n / (n - 1) * fw.bnraw * (dhpreact * fw.bnraw).sum(0))
    dembcat = dhprebn @ W1.T
    dW1 = fw.embcat.T @ dhprebn
    db1 = dhprebn.sum(0)
    demb = dembcat.view(fw.emb.shape)
    dC = torch.zeros_like(C)
    for k in range(Xb.shape[0]):
        for j in range(Xb.shape[1]):
            dC[Xb[k, j]] += demb[k, j]
    return [dC, dW1, db1, dW2, db2, dbngain, dbnbias]


def training_steps(repeat: int = 200, rounds: int = 7, threads: int = 1) -> dict[str, float]:
    """Seconds per training step for autograd, the lecture's backward and the solution's."""
    torch.set_num_threads(threads)
    splits = make_splits()
    parameters = init_params(make_generator(), n_hidden=200)
    manual_backward = master_function("ex4_manual_backward", "manual_backward")
    g = torch.Generator().manual_seed(1)
    batches = [(splits.Xtr[ix], splits.Ytr[ix]) for ix in torch.randint(0, len(splits.Xtr), (repeat, 32), generator=g)]
    position = {"autograd": 0, "lecture": 0, "solution": 0}

    def step(name, backward):
        Xb, Yb = batches[position[name] % repeat]
        position[name] += 1
        if backward is None:
            fw = fused_forward(parameters, Xb, Yb, retain=False)
            for p in parameters:
                p.grad = None
            fw.loss.backward()
            grads = [p.grad for p in parameters]
        else:
            with torch.no_grad():
                fw = fused_forward(parameters, Xb, Yb)
                grads = backward(parameters, fw, Xb, Yb)
        with torch.no_grad():  # the notebook's update, for both; a step small enough to keep batches comparable
            for p, grad in zip(parameters, grads):
                p.add_(grad, alpha=-1e-6)

    return interleaved({"autograd": lambda: step("autograd", None),
                        "lecture": lambda: step("lecture", lecture_backward),
                        "solution": lambda: step("solution", manual_backward)}, rounds=rounds, repeat=repeat)


def full_run(steps: int = 200_000) -> float:
    """Wall seconds of the solution notebook's training loop, as the notebook runs it."""
    splits = make_splits()
    g = make_generator()
    parameters = init_params(g, n_hidden=200)
    manual_backward = master_function("ex4_manual_backward", "manual_backward")
    lossi = []
    start = time.perf_counter()
    with torch.no_grad():
        for i in range(steps):
            ix = torch.randint(0, splits.Xtr.shape[0], (32,), generator=g)
            Xb, Yb = splits.Xtr[ix], splits.Ytr[ix]
            fw = fused_forward(parameters, Xb, Yb)
            grads = manual_backward(parameters, fw, Xb, Yb)
            lr = 0.1 if i < steps // 2 else 0.01
            for p, grad in zip(parameters, grads):
                p.add_(grad, alpha=-lr)
            lossi.append(math.log10(fw.loss.item()))
    return time.perf_counter() - start


def rows(full: bool) -> list[Row]:
    times = training_steps()
    result = [
        Row("Ex4 training step, solution's manual backward vs loss.backward() (1 thread, n_hidden 200)",
            "autograd step", times["autograd"] * 1e6, "manual step", times["solution"] * 1e6, "µs", "<= 0.6"),
        Row("Ex4 training step, the lecture's manual backward (Python loop for dC) vs loss.backward()",
            "autograd step", times["autograd"] * 1e6, "lecture's step", times["lecture"] * 1e6, "µs",
            "(the lecture: 2.24)"),
    ]
    if full:
        threads = torch.get_num_threads()
        torch.set_num_threads(torch.get_num_threads() if threads > 1 else 2)
        result.append(Row(f"Ex4 full run, 200,000 steps of the solution ({torch.get_num_threads()} threads)",
                          "target", 60.0, "wall time", full_run(), "s", "<= 1"))
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--full", action="store_true", help="also time the whole 200,000-step run")
    for row in rows(parser.parse_args().full):
        print(f"{row.what}: {row.baseline} {row.baseline_value:.4g} {row.unit}, {row.ours} "
              f"{row.ours_value:.4g} {row.unit}, ratio {row.ratio:.2f}")
