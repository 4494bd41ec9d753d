"""Notebook 06: how far the master's answers are from autograd in float32, and how far the bugs are.

For many seeded cases (context lengths, embedding sizes, head counts, MLP
widths and batch sizes) this runs the master's answer cells as the notebook
does (Part 1 chained, each cell on the previous cells' results; Part 2's
LayerNorm, one head and the whole backward pass) and measures, per gradient,
max |answer - autograd| / max |autograd|. Then it plants the bugs the
tolerance must catch into the master's cells and measures how far *they* are.
The tables go into bench/transformer_tolerance.md.

    .venv/bin/python -m bench.transformer_tolerance [--cases N] [--space all|hidden] [--heads N] [--seed S]
                                                    [--training-seeds N] [--training-steps N]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

import torch

from autograder.workbook import transformer as tr
from autograder.workbook import transformer_training as trn
from tests.transformer_master import (
    Case,
    every_head,
    head_case,
    layer_norm_case,
    manual_backward,
    manual_grads,
    part1_steps,
    relative,
    replaced_source,
    run_cell,
    run_part1,
)

# (T, C, nh, M) shapes the study draws from; B from BATCHES. M = 0 is 4C.
SHAPES = [(1, 8, 2, 0), (2, 8, 1, 0), (3, 12, 3, 0), (5, 12, 3, 20), (8, 16, 1, 0), (8, 16, 4, 0),
          (8, 24, 6, 0), (12, 20, 5, 0), (16, 32, 4, 0), (16, 32, 8, 0), (16, 48, 6, 0), (24, 32, 2, 64),
          (32, 64, 4, 0), (16, 64, 16, 0)]
BATCHES = [1, 2, 4, 7, 13, 32, 64]


# The range proposed for the hidden cases (see bench/transformer_tolerance.md): T and B at least 4,
# B*T at most 1024, C at least 16 with heads of at least 2 features, M = 4C or another width.
HIDDEN_T, HIDDEN_B, HIDDEN_BT = range(4, 25), range(4, 49), 1024
HIDDEN_CNH = [(16, 1), (16, 2), (16, 4), (16, 8), (20, 5), (24, 3), (24, 6), (24, 12), (32, 2), (32, 4), (32, 8),
              (32, 16), (48, 4), (48, 6), (48, 12), (64, 4), (64, 8), (64, 16)]


def cases(count: int, seed: int = 0, space: str = "all") -> list[Case]:
    """The notebook's own case first, then ``count - 1`` drawn at random (seeded).

    ``space`` "all" draws from SHAPES and BATCHES, tiny sizes included;
    "hidden" from the range proposed for the hidden cases.
    """
    rng = random.Random(seed)
    drawn = [Case(16, 32, 4, 24, 2147483647)]
    while len(drawn) < count:
        if space == "all":
            T, C, nh, M = rng.choice(SHAPES)
            B = rng.choice(BATCHES)
        else:
            T, B = rng.choice(HIDDEN_T), rng.choice(HIDDEN_B)
            C, nh = rng.choice(HIDDEN_CNH)
            M = rng.choice([0, 0, 2 * C, 3 * C + 4])
            if B * T > HIDDEN_BT:
                continue
        drawn.append(Case(T, C, nh, B, rng.randrange(2**31), M))
    return drawn


# ---------------------------------------------------------------- the bugs

# (name, what it is, where: "part1" (cell, old, new, checked gradient) | "ln" | "head" (old, new, output) | "block")
BUGS = [
    ("LN variance with Bessel (Part 1)", "ex6_line_lnf_var", "2 / C", "2 / (C - 1)", "dlnf_diff"),
    ("LN variance with Bessel (Part 1, ln1)", "ex6_line_ln1_var", "2 / C", "2 / (C - 1)", "dln1_diff"),
    ("LN epsilon subtracted (Part 1)", "ex6_line_lnf_rstd", "lnf_var + 1e-5", "lnf_var - 1e-5", "dlnf_var"),
    ("LN epsilon subtracted (Part 1, ln1)", "ex6_line_ln1_rstd", "ln1_var + 1e-5", "ln1_var - 1e-5", "dln1_var"),
    ("LN epsilon left out (Part 1, ln1)", "ex6_line_ln1_rstd", "ln1_var + 1e-5", "ln1_var", "dln1_var"),
    ("attention scale missing (Part 1)", "ex6_line_scaled", "hs**-0.5 * dscaled", "dscaled", "dscores"),
    ("attention scale twice (Part 1)", "ex6_line_scaled", "hs**-0.5 * dscaled", "hs**-1.0 * dscaled", "dscores"),
    ("softmax: the row-sum branch (att_sum) missing (Part 1)", "ex6_line_att_sum",
     "datt_exp += datt_sum", "pass", "datt_exp"),
    ("K not transposed: dk = dscores @ q (Part 1)", "ex6_line_scores",
     "dk = dscores.transpose(-2, -1) @ q", "dk = dscores @ q", "dk"),
    ("dq from the transposed scores (Part 1)", "ex6_line_scores",
     "dq = dscores @ k", "dq = dscores.transpose(-2, -1) @ k", "dq"),
    ("leak: exp of the unmasked scores (Part 1)", "ex6_line_att_exp",
     "dmasked = att_exp * datt_exp", "dmasked = (scaled - att_max).exp() * datt_exp", "dmasked"),
    ("GELU: one branch of h_pre (= for +=) (Part 1)", "ex6_line_gelu_in", "dh_pre +=", "dh_pre =", "dh_pre"),
    ("residual: dx1 = instead of += at ln2_diff (Part 1)", "ex6_line_ln2_diff", "dx1 += dln2_diff",
     "dx1 = dln2_diff.clone()", "dx1"),
]
LN_BUGS = [
    ("LN fused: Exercise 3's n/(n-1) (Bessel) kept", "- xhat_ln *", "- C / (C - 1) * xhat_ln *"),
    ("LN fused: gain taken out of the sums (BatchNorm habit)", "dxhat_ln = gain_ln * dout_ln",
     "dxhat_ln = dout_ln"),
]
HEAD_BUGS = [
    ("head: scale missing", " * hs**-0.5", "", "dq_h"),
    ("head: scale twice", " * hs**-0.5", " * hs**-1.0", "dq_h"),
    ("head: softmax backward without the row-sum term", "att_h * (datt_h - (att_h * datt_h).sum(-1, keepdim=True))",
     "att_h * datt_h", "dq_h"),
    ("head: K not transposed (dk_h = dscores_h @ q_h)", "dk_h = dscores_h.T @ q_h", "dk_h = dscores_h @ q_h", "dk_h"),
    ("head: leak, the softmax of the unmasked scores", "dv_h = att_h.T @ dy_h",
     "att_h = torch.softmax(q_h @ k_h.T * hs**-0.5, -1)\ndv_h = att_h.T @ dy_h", "dq_h"),
]
BLOCK_BUGS = [
    ("block: LN with Bessel", "dxhat.mean(-1, keepdim=True) - xh *", "dxhat.mean(-1, keepdim=True) - C / (C - 1) * xh *",
     "wte"),
    ("block: GELU's exact (erf) derivative",
     "dh_pre = dh * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * GELU_SCALE * (1.0 + 3 * GELU_CUBIC * x * x))",
     "dh_pre = dh * (0.5 * (1.0 + torch.erf(x / 2**0.5)) + x * torch.exp(-0.5 * x * x) / (2 * torch.pi)**0.5)",
     "W1"),
    ("block: attention scale missing", "* hs**-0.5  # softmax", "* 1.0  # softmax", "Wqkv"),
    ("block: softmax without the row-sum term", "att * (datt - (att * datt).sum(-1, keepdim=True))", "att * datt",
     "Wqkv"),
]


def term_scales(scope: dict) -> dict[str, float]:
    """For one head: the size of the terms its backward pass adds up (before they cancel), per gradient.

    dS = P (dP - rowsum(P dP)) with dP = dY V^T: the magnitude of the terms is
    P (|dP| + |rowsum|); dq and dk carry it through K and Q, dv is P^T dY.
    Rounding errors are relative to these, not to the (possibly much smaller) results.
    """
    P, dY, V, K, Q = (scope[n].double() for n in ("att_h", "dy_h", "v_h", "k_h", "q_h"))
    s = scope["hs"] ** -0.5
    dP = dY @ V.T
    terms = P * (dP.abs() + (P * dP).sum(-1, keepdim=True).abs())
    return {"dq_h": (s * terms @ K.abs()).max().item(), "dk_h": (s * terms.T @ Q.abs()).max().item(),
            "dv_h": (P.T @ dY.abs()).max().item()}


def measure(case: Case, table: dict, bugs: dict, heads: int = 2) -> None:
    parameters, Xb, Yb, config = case.inputs()
    namespace, gradients = tr.notebook_variables(parameters, Xb, Yb, config)
    scope = run_part1(namespace)
    for step in part1_steps():
        for name in step.checked:
            note(table, f"d{name}", case, scope[f"d{name}"], gradients[f"d{name}"])
    ln_scope, dx_ln = layer_norm_case(namespace, gradients)
    note(table, "dx_ln (Part 2)", case, run_cell("ex6_ln_fused", ln_scope)["dx_ln"], dx_ln)
    rng = random.Random(case.seed)
    picks = [(0, 0), (case.batch_size - 1, case.config.n_head - 1)]
    picks += [(rng.randrange(case.batch_size), rng.randrange(case.config.n_head)) for _ in range(heads - 2)]
    for b, h in dict.fromkeys(picks):
        head_scope, expected = head_case(namespace, gradients, b, h)
        got = run_cell("ex6_attention_head", head_scope)
        scales = term_scales(head_scope)
        for name, value in expected.items():
            note(table, f"{name} (Part 2)", case, got[name], value)
            difference = (got[name].double() - value.double()).abs().max().item()
            table.setdefault(f"{name} (Part 2) / its terms", []).append(
                (difference / scales[name] if scales[name] else None, scales[name], difference, case))
    stacked, stacked_expected = every_head(namespace, gradients)
    for name, value in stacked_expected.items():
        note(table, f"{name} (Part 2, every head)", case, stacked[name], value)
    backward = manual_backward()
    expected = tr.autograd_grads(parameters, Xb, Yb, config)
    for name, got, want in zip(tr.PARAM_NAMES, manual_grads(backward, parameters, Xb, Yb, config), expected):
        note(table, f"{name} (manual_backward)", case, got, want)

    for what, answer, old, new, checked in BUGS:
        bugged = {step.answer: step for step in part1_steps()}
        sources = [(s.answer, replaced_source(answer, old, new) if s.answer == answer else s.source)
                   for s in bugged.values()]
        bug_scope = dict(namespace)
        with torch.no_grad():
            for name, source in sources:
                exec(compile(source, name, "exec"), bug_scope)
        note(bugs, what, case, bug_scope[checked], gradients[checked])
    for what, old, new in LN_BUGS:
        bug_scope = dict(ln_scope)
        with torch.no_grad():
            exec(replaced_source("ex6_ln_fused", old, new), bug_scope)
        note(bugs, what, case, bug_scope["dx_ln"], dx_ln)
    head_scope, head_expected = head_case(namespace, gradients)
    for what, old, new, output in HEAD_BUGS:
        bug_scope = dict(head_scope)
        with torch.no_grad():
            exec(replaced_source("ex6_attention_head", old, new), bug_scope)
        note(bugs, what, case, bug_scope[output], head_expected[output])
    for what, old, new, output in HEAD_BUGS:
        got, want = every_head(namespace, gradients, source=replaced_source("ex6_attention_head", old, new))
        note(bugs, f"{what} (every head)", case, got[output], want[output])
    for what, old, new, output in BLOCK_BUGS:
        bugged = manual_backward(replaced_source("ex6_manual_backward", old, new))
        got = manual_grads(bugged, parameters, Xb, Yb, config)
        index = tr.PARAM_NAMES.index(output)
        note(bugs, what, case, got[index], expected[index])


def note(table: dict, name: str, case: Case, got: torch.Tensor, expected: torch.Tensor) -> None:
    """Record the relative difference and the reference's scale of one gradient in one case."""
    assert got.shape == expected.shape, f"{name}: {tuple(got.shape)} vs {tuple(expected.shape)} ({case})"
    scale = expected.double().abs().max().item()
    table.setdefault(name, []).append((relative(got, expected) if scale >= tr.GRADIENT_ZERO_LEVEL else None, scale,
                                       (got.double() - expected.double()).abs().max().item(), case))


def training_bug_gaps(steps: int) -> list[tuple[str, list[tuple[int, float]]]]:
    """Part 3's schedule with planted bugs: the loss gap at every logged step.

    BLOCK_BUGS' first two (a LayerNorm with Bessel's correction, GELU's exact
    derivative), and Wqkv's gradient 1% too large everywhere (a constant factor).
    """
    streams = tr.make_streams()
    config = tr.TransformerConfig()
    correct = manual_backward()
    index = tr.PARAM_NAMES.index("Wqkv")

    def one_percent(parameters, fw, Xb, Yb, config):
        grads = correct(parameters, fw, Xb, Yb, config)
        grads[index] = grads[index] * 1.01
        return grads

    planted = [(what, manual_backward(replaced_source("ex6_manual_backward", old, new)))
               for what, old, new, _ in BLOCK_BUGS[:2]]
    planted.append(("Wqkv's gradient 1% too large (a constant factor)", one_percent))
    rows = []
    for what, backward in planted:
        g = torch.Generator().manual_seed(2147483647)
        run = trn.train(tr.init_params(g, config), backward, config, streams.train, steps, g, printer=None,
                       log_every=max(1, steps // 10))
        rows.append((what, [(i, abs(run.losses[i] - run.reference_losses[i])) for i in run.logged_steps()]))
    return rows


def training_gaps(seeds: int, steps: int) -> list[tuple[int, float, float, float]]:
    """Part 3's schedule (or ``steps`` of it) from ``seeds`` initialisations: the largest loss gaps."""
    streams = tr.make_streams()
    backward = manual_backward()
    config = tr.TransformerConfig()
    rows = []
    for seed in range(seeds):
        g = torch.Generator().manual_seed(2147483647 + seed)
        parameters = tr.init_params(g, config)
        run = trn.train(parameters, backward, config, streams.train, steps, g, printer=None,
                       log_every=max(1, steps // 10))
        every = max(abs(a - b) for a, b in zip(run.losses, run.reference_losses))
        rows.append((2147483647 + seed, run.largest_gap(), every, run.seconds))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", type=int, default=200)
    parser.add_argument("--space", choices=["all", "hidden"], default="all")
    parser.add_argument("--heads", type=int, default=2, help="attention heads checked per case (Part 2)")
    parser.add_argument("--seed", type=int, default=0, help="the seed the cases are drawn with")
    parser.add_argument("--training-seeds", type=int, default=0)
    parser.add_argument("--training-steps", type=int, default=trn.FULL_STEPS)
    parser.add_argument("--training-bugs-only", action="store_true", help="with --training-seeds: only the bugs")
    args = parser.parse_args()
    torch.set_num_threads(1)
    start = time.perf_counter()
    table, bugs = {}, {}
    for case in cases(args.cases, args.seed, args.space):
        measure(case, table, bugs, args.heads)
    print(f"{args.cases} cases ({args.space}) in {time.perf_counter() - start:.0f} s; "
          f"GRADIENT_RTOL {tr.GRADIENT_RTOL:.1e}, GRADIENT_ZERO_LEVEL {tr.GRADIENT_ZERO_LEVEL:.0e}\n")
    print("| gradient | max rel. diff | median | headroom (GRADIENT_RTOL / max) | smallest scale | cases that are noise |")
    print("|---|---|---|---|---|---|")
    for name, rows in table.items():
        real = [(r, s) for r, s, _, _ in rows if r is not None]
        noise = [(s, d) for r, s, d, _ in rows if r is None]
        noted = f"{len(noise)}: max |ref| {max(s for s, _ in noise):.0e}, |diff| {max(d for _, d in noise):.0e}" \
            if noise else ""
        if real:
            rel = [r for r, _ in real]
            print(f"| `{name}` | {max(rel):.1e} | {statistics.median(rel):.1e} | {tr.GRADIENT_RTOL / max(rel):.1f}x "
                  f"| {min(s for _, s in real):.1e} | {noted} |")
        else:
            print(f"| `{name}` | (noise only) | | | | {noted} |")
    worst = max(((r, n, c) for n, rows in table.items() for r, _, _, c in rows if r is not None), key=lambda x: x[0])
    print(f"\nlargest: {worst[0]:.2e} for {worst[1]} ({worst[2]})")
    print("\n| bug | smallest rel. error over the cases | median | caught (> GRADIENT_RTOL) in |")
    print("|---|---|---|---|")
    for name, rows in bugs.items():
        rel = [r if r is not None else float("inf") for r, _, _, _ in rows]
        caught = sum(r > tr.GRADIENT_RTOL for r in rel)
        print(f"| {name} | {min(rel):.1e} | {statistics.median(rel):.1e} | {caught}/{len(rel)} |")
    if args.training_seeds:
        print(f"\n| seed | largest gap at a logged step | largest gap at any step | seconds ({args.training_steps} steps) |")
        print("|---|---|---|---|")
        seeds = 0 if args.training_bugs_only else args.training_seeds
        for seed, logged, every, seconds in training_gaps(seeds, args.training_steps):
            print(f"| {seed} | {logged:.1e} | {every:.1e} | {seconds:.1f} |")
        print("\n| planted bug | loss gap at the logged steps |\n|---|---|")
        for what, gaps in training_bug_gaps(args.training_steps):
            print(f"| {what} | {', '.join(f'{i}: {gap:.0e}' for i, gap in gaps)} |")


if __name__ == "__main__":
    main()
