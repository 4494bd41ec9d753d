"""Notebook 06's master, read and run outside Jupyter: its answer cells on any case, and autograd's answers.

Used by ``tests/test_transformer.py`` and ``bench/transformer_tolerance.py``.
The answer cells are found by their ``#| answer:`` lines, the gradients each
Part 1 cell completes by the ``assert cmp(...)`` cells that follow it, so
nothing here repeats a formula of the master.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import nbformat
import torch
import torch.nn.functional as F

from autograder.cells import answer_id_of
from autograder.workbook import transformer as tr

REPO = Path(__file__).resolve().parent.parent
MASTER = REPO / "solutions" / "06_transformer_block.ipynb"
CHECK = re.compile(r'^assert cmp\("(\w+)", d(\w+), (\w+)\)$')


@dataclass(frozen=True)
class Step:
    """One answer cell of Part 1 and the tensors whose gradients are complete (checked) after it."""

    answer: str
    source: str
    checked: tuple[str, ...]


@dataclass(frozen=True)
class Case:
    """Sizes and seed of one model and batch."""

    block_size: int
    n_embd: int
    n_head: int
    batch_size: int
    seed: int
    n_mlp: int = 0

    @property
    def config(self) -> tr.TransformerConfig:
        return tr.TransformerConfig(self.block_size, self.n_embd, self.n_head, self.n_mlp)

    def inputs(self):
        """(parameters, Xb, Yb, config): parameters and a batch of random characters, from the case's seed."""
        g = torch.Generator().manual_seed(self.seed)
        config = self.config
        parameters = tr.init_params(g, config)
        Xb, Yb = tr.random_batch(g, self.batch_size, self.block_size)
        return parameters, Xb, Yb, config

    def __str__(self) -> str:
        mlp = f", M={self.n_mlp}" if self.n_mlp else ""
        return f"T={self.block_size}, C={self.n_embd}, nh={self.n_head}, B={self.batch_size}{mlp}, seed {self.seed}"


@lru_cache(maxsize=1)
def master() -> nbformat.NotebookNode:
    return nbformat.read(MASTER, as_version=4)


def answers() -> dict[str, str]:
    """answer id -> source of every answer cell of the master, solutions included."""
    return {answer_id_of(c.source): c.source for c in master().cells
            if c.cell_type == "code" and answer_id_of(c.source)}


def part1_steps() -> list[Step]:
    """Part 1's answer cells in notebook order, each with the gradients checked right after it."""
    steps: list[Step] = []
    in_part1 = False  # whether the last answer cell was one of Part 1's
    for cell in master().cells:
        if cell.cell_type != "code":
            continue
        answer = answer_id_of(cell.source)
        if answer is not None:
            in_part1 = answer.startswith("ex6_line_")
            if in_part1:
                steps.append(Step(answer, cell.source, ()))
            continue
        match = CHECK.match(cell.source.strip().splitlines()[0]) if cell.source.strip() else None
        if match and in_part1 and cell.metadata["nbgrader"].get("grade"):
            name = match.group(1)
            last = steps[-1]
            steps[-1] = Step(last.answer, last.source, last.checked + (name,))
    return steps


def run_part1(namespace: dict) -> dict:
    """Every Part 1 answer cell, in order, in (a copy of) ``namespace``, as the notebook runs them."""
    scope = dict(namespace)
    with torch.no_grad():
        for step in part1_steps():
            exec(compile(step.source, f"<{step.answer}>", "exec"), scope)
    return scope


def replaced_source(answer: str, old: str, new: str) -> str:
    """The source of answer cell ``answer`` with ``old`` replaced by ``new`` (a planted bug)."""
    source = answers()[answer]
    if old not in source:
        raise ValueError(f"{answer}: {old!r} not found")
    return source.replace(old, new)


def run_cell(answer: str, namespace: dict) -> dict:
    """One answer cell of the master in (a copy of) ``namespace``."""
    scope = dict(namespace)
    with torch.no_grad():
        exec(compile(answers()[answer], f"<{answer}>", "exec"), scope)
    return scope


def layer_norm_case(namespace: dict, gradients: dict) -> tuple[dict, torch.Tensor]:
    """Part 2's LayerNorm task on ln2 of a case, as the notebook sets it up: (namespace, autograd's dx_ln)."""
    x_ln = namespace["x1"].clone().requires_grad_()
    C = namespace["C"]
    with torch.enable_grad():
        out = F.layer_norm(x_ln, (C,), namespace["ln2_gain"], namespace["ln2_bias"], eps=tr.LN_EPS)
        out.backward(gradients["dln2_out"])
    scope = {**namespace, "gain_ln": namespace["ln2_gain"], "xhat_ln": namespace["ln2_xhat"],
             "rstd_ln": namespace["ln2_rstd"], "dout_ln": gradients["dln2_out"]}
    return scope, x_ln.grad


def head_case(namespace: dict, gradients: dict, b: int = 0, head: int = 0) -> tuple[dict, dict]:
    """Part 2's one-head task on example ``b``, head ``head``: (namespace, autograd's dq_h, dk_h, dv_h)."""
    leaves = [namespace[name][b, head].clone().requires_grad_() for name in ("q", "k", "v")]
    dy_h = gradients["dy_heads"][b, head]
    with torch.enable_grad():
        F.scaled_dot_product_attention(*leaves, is_causal=True).backward(dy_h)
    scope = {**namespace, "q_h": leaves[0].detach(), "k_h": leaves[1].detach(), "v_h": leaves[2].detach(),
             "dy_h": dy_h, "att_h": namespace["att"][b, head]}
    return scope, {f"d{name}_h": leaf.grad for name, leaf in zip("qkv", leaves)}


def every_head(namespace: dict, gradients: dict, answer: str = "ex6_attention_head",
               source: str | None = None) -> tuple[dict, dict]:
    """Part 2's one-head cell run on every head of every example: (answers, autograd's), each (B, nh, T, hs).

    The cell (or ``source``) sees one head at a time, as in the notebook;
    autograd's reference is one call of F.scaled_dot_product_attention on all
    heads. Stacked, the tensors are large enough that no single row's
    rounding sets their scale (see bench/transformer_tolerance.md).
    """
    leaves = [namespace[name].clone().requires_grad_() for name in ("q", "k", "v")]
    with torch.enable_grad():
        F.scaled_dot_product_attention(*leaves, is_causal=True).backward(gradients["dy_heads"])
    code = compile(source or answers()[answer], f"<{answer}>", "exec")
    B, nh = namespace["q"].shape[:2]
    got = {name: torch.empty_like(namespace["q"]) for name in ("dq_h", "dk_h", "dv_h")}
    with torch.no_grad():
        for b in range(B):
            for h in range(nh):
                scope = {**namespace, "q_h": namespace["q"][b, h], "k_h": namespace["k"][b, h],
                         "v_h": namespace["v"][b, h], "dy_h": gradients["dy_heads"][b, h],
                         "att_h": namespace["att"][b, h]}
                exec(code, scope)
                for name in got:
                    got[name][b, h] = scope[name]
    return got, {f"d{name}_h": leaf.grad for name, leaf in zip("qkv", leaves)}


def manual_backward(source: str | None = None):
    """The function ``manual_backward`` that the master's answer cell (or ``source``) defines."""
    scope = {"torch": torch, "F": F, "GELU_SCALE": tr.GELU_SCALE, "GELU_CUBIC": tr.GELU_CUBIC}
    exec(compile(source or answers()["ex6_manual_backward"], "<ex6_manual_backward>", "exec"), scope)
    return scope["manual_backward"]


def manual_grads(backward, parameters, Xb, Yb, config) -> list[torch.Tensor]:
    """``backward``'s 17 gradients on copies of the parameters, without autograd."""
    copies = [p.detach().clone() for p in parameters]
    with torch.no_grad():
        return list(backward(copies, tr.fused_forward(copies, Xb, Yb, config), Xb, Yb, config))


def relative(got: torch.Tensor, expected: torch.Tensor) -> float:
    """max |got - expected| / max |expected| (in float64)."""
    scale = expected.double().abs().max().item()
    return (got.double() - expected.double()).abs().max().item() / scale if scale else float("inf")
