"""Notebook 06: the training step, Part 3's whole schedule, and LayerNorm's fused backward against its atoms.

* one training step (fused forward, backward, Adam) with the master's
  ``manual_backward`` against the same step with autograd's gradients;
* Part 3's full schedule (``train``: the manual run and autograd's run in
  lockstep, FULL_STEPS steps), timed on the wall clock: it must stay within 60 s;
* the master's one-expression LayerNorm backward (``ex6_ln_fused``) against
  its six atomic cells (``ex6_ln_atomic_chain``), on the notebook's batch;
* notebook 04's MLP trained for the same number of steps (autograd), for the
  validation loss beside the transformer's, on the same split.

    .venv/bin/python -m bench.bench_transformer [--steps N] [--no-full] [--no-mlp]
"""

from __future__ import annotations

import argparse
import time

import torch

from autograder.workbook import transformer as tr
from autograder.workbook import transformer_training as trn
from bench.common import Row, interleaved
from tests.transformer_master import answers, layer_norm_case, manual_backward, run_cell

TRAINING_BUDGET = 60.0  # seconds for Part 3's full schedule on a 2-core machine (issue 23)


def step_rows() -> list[Row]:
    """One training step, manual against autograd, on the notebook's sizes (interleaved rounds)."""
    config = tr.TransformerConfig()
    streams = tr.make_streams()
    g = torch.Generator().manual_seed(2147483647)
    parameters = [p.detach() for p in tr.init_params(g, config)]
    Xb, Yb = tr.sample_batch(streams.train, trn.TRAIN_BATCH, config.block_size, g)
    backward = manual_backward()

    def forward():
        with torch.no_grad():
            tr.fused_forward(parameters, Xb, Yb, config)

    def manual():
        with torch.no_grad():
            backward(parameters, tr.fused_forward(parameters, Xb, Yb, config), Xb, Yb, config)

    def autograd():
        tr.autograd_loss_and_grads(parameters, Xb, Yb, config)

    best = interleaved({"forward": forward, "manual": manual, "autograd": autograd}, rounds=7, repeat=50)
    return [
        Row("Ex6 forward and backward of one step (B=32, T=16, C=32, nh=4): manual_backward vs autograd",
            "autograd", best["autograd"] * 1e6, "manual", best["manual"] * 1e6, "µs", "< 1"),
        Row("Ex6 the fused forward pass alone (part of both rows above)", "manual step", best["manual"] * 1e6,
            "forward", best["forward"] * 1e6, "µs"),
    ]


def layer_norm_rows() -> list[Row]:
    """The master's fused LayerNorm backward against its atomic chain, on the notebook's batch."""
    config = tr.TransformerConfig()
    streams = tr.make_streams()
    g = torch.Generator().manual_seed(2147483647)
    parameters = tr.init_params(g, config)
    Xb, Yb = tr.sample_batch(streams.train, 24, config.block_size, g)
    namespace, gradients = tr.notebook_variables(parameters, Xb, Yb, config)
    scope, _ = layer_norm_case(namespace, gradients)
    fused = compile(answers()["ex6_ln_fused"], "<ex6_ln_fused>", "exec")
    atomic = run_cell("ex6_ln_atomic_chain", namespace)["atomic_layer_norm_backward"]
    dout = gradients["dln2_out"]

    def run_fused():
        exec(fused, dict(scope))

    def run_atomic():
        atomic(dout)

    with torch.no_grad():
        best = interleaved({"atomic": run_atomic, "fused": run_fused}, repeat=500)
    return [Row("Ex6 LayerNorm backward (B=24, T=16, C=32): fused dx vs the atomic chain of Part 1",
                "atomic chain", best["atomic"] * 1e6, "fused", best["fused"] * 1e6, "µs", "< 1")]


def training_row(steps: int) -> tuple[Row, trn.TrainingRun, list[torch.Tensor]]:
    """Part 3's schedule as the notebook runs it (both runs in lockstep), on the wall clock."""
    config = tr.TransformerConfig()
    streams = tr.make_streams()
    g = torch.Generator().manual_seed(2147483647)
    parameters = tr.init_params(g, config)
    tr.sample_batch(streams.train, 24, config.block_size, g)  # the notebook draws its Part 1 batch first
    start = time.perf_counter()
    run = trn.train(parameters, manual_backward(), config, streams.train, steps, g, printer=None,
                   log_every=max(1, steps // 10))
    seconds = time.perf_counter() - start
    row = Row(f"Ex6 Part 3: {steps:,} steps, manual run and autograd's run in lockstep (wall clock)",
              "budget", TRAINING_BUDGET, "measured", seconds, "s", "<= 1 (60 s on 2 cores)")
    return row, run, parameters


def rows(full: bool = True) -> list[Row]:
    """The rows ``make bench`` reports (``run_all``): a training step, the LayerNorm, and Part 3's full schedule."""
    torch.set_num_threads(1)
    found = step_rows() + layer_norm_rows()
    if full:
        row, _, _ = training_row(trn.FULL_STEPS)
        found.append(row)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=trn.FULL_STEPS)
    parser.add_argument("--no-full", action="store_true", help="skip Part 3's whole schedule")
    parser.add_argument("--no-mlp", action="store_true", help="skip notebook 04's MLP at the same number of steps")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = step_rows() + layer_norm_rows()
    if not args.no_full:
        row, run, parameters = training_row(args.steps)
        rows.append(row)
    for row in rows:
        print(f"{row.what}: {row.baseline} {row.baseline_value:.4g} {row.unit}, {row.ours} "
              f"{row.ours_value:.4g} {row.unit}, ratio {row.ratio:.2f}")
    if not args.no_full:
        streams = tr.make_streams()
        config = tr.TransformerConfig()
        print(f"  {run.seconds / args.steps * 1e6:.0f} µs per step for both runs, "
              f"{run.backward_seconds / args.steps * 1e6:.0f} µs of it in manual_backward; "
              f"largest loss gap at a logged step {run.largest_gap():.1e}, at any step "
              f"{max(abs(a - b) for a, b in zip(run.losses, run.reference_losses)):.1e}")
        print(f"  transformer after {args.steps:,} steps: train {tr.split_loss(parameters, streams.train, config):.4f}"
              f", val {tr.split_loss(parameters, streams.dev, config):.4f}")
    if not args.no_mlp:
        train_loss, val_loss = trn.mlp_baseline(args.steps)
        print(f"  notebook 04's MLP after {args.steps:,} steps of 32 (autograd, same split): "
              f"train {train_loss:.4f}, val {val_loss:.4f}")


if __name__ == "__main__":
    main()
