"""A corpus of lecture-format notebooks written the way learners write them, and autograd's verdict on each answer.

The lecture's notebook cannot ship here and learners' notebooks are theirs,
so this corpus is made: ``notebooks()`` builds, from the cells of
``lecture_fixtures`` and a library of correct lines in several styles, one
notebook per cause the lecture checker must survive (renamed variables and
constants, misspelled, markdown and missing headers, unheaded cells, comments
at column 0 inside indented blocks, a ``.grad`` shortcut in the middle of
Exercise 1, typo cascades, a pasted reference after an own attempt, cells
reordered, duplicated and deleted, ...), a set of seeded random mixtures of
them, and a few notebooks written by hand.

Each notebook knows what the learner did (``Notebook``: the planted mistakes
and the diagnosis each should get, the ``.grad`` reads, the learner's own
names), but not whether an answer is right: ``ground_truth`` runs the
notebook's setup and exercise cells here, statement by statement in one
namespace as a kernel would (Exercise 1, then 2, then 3), and compares each
gradient variable at the end of its exercise with the ``.grad`` of the
learner's own tensor (strict shapes, the workbook's tolerance). An answer
that reads ``.grad`` is wrong by definition. ``measure`` then puts a checker
(a function from notebook bytes to ``LectureResult``-like JSON) against that
truth: the share of Exercise 1-3 verdicts that agree, and for the wrong
answers, how many diagnoses are right, honest ("none") or misleading.

``python -m tests.lecture_corpus`` prints the numbers for the checker in this checkout.
"""

from __future__ import annotations

import ast
import contextlib
import io
import json
import os
import random
import re
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from tests import lecture_fixtures as base

EX1_ORDER = ("dlogprobs", "dprobs", "dcounts_sum_inv", "dcounts_sum", "dcounts", "dnorm_logits", "dlogit_maxes",
             "dlogits", "dh", "dW2", "db2", "dhpreact", "dbngain", "dbnbias", "dbnraw", "dbnvar_inv", "dbnvar",
             "dbndiff2", "dbndiff", "dbnmeani", "dhprebn", "dembcat", "dW1", "db1", "demb", "dC")
ITEMS = tuple(f"ex1_{g}" for g in EX1_ORDER) + ("ex2_dlogits", "ex3_dhprebn")
TENSOR_OF = {f"ex1_{g}": g[1:] for g in EX1_ORDER} | {"ex2_dlogits": "logits", "ex3_dhprebn": "hprebn"}

# Exercise 1 as steps (a step makes or completes one gradient), each in the styles learners write it.
STEPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("dlogprobs", ("dlogprobs = torch.zeros_like(logprobs)\ndlogprobs[range(n), Yb] = -1.0/n",
                   "dlogprobs = torch.zeros_like(logprobs)\ndlogprobs[range(n), Yb] = -1/n")),
    ("dprobs", ("dprobs = (1.0 / probs) * dlogprobs", "dprobs = dlogprobs / probs")),
    ("dcounts_sum_inv", ("dcounts_sum_inv = (counts * dprobs).sum(1, keepdim=True)",)),
    ("dcounts", ("dcounts = counts_sum_inv * dprobs",)),
    ("dcounts_sum", ("dcounts_sum = (-counts_sum**-2) * dcounts_sum_inv",
                     "dcounts_sum = -1.0 / counts_sum**2 * dcounts_sum_inv")),
    ("dcounts+", ("dcounts += torch.ones_like(counts) * dcounts_sum", "dcounts += dcounts_sum")),
    ("dnorm_logits", ("dnorm_logits = counts * dcounts", "dnorm_logits = norm_logits.exp() * dcounts")),
    ("dlogits", ("dlogits = dnorm_logits.clone()",)),
    ("dlogit_maxes", ("dlogit_maxes = (-dnorm_logits).sum(1, keepdim=True)",
                      "dlogit_maxes = -dnorm_logits.sum(1, keepdim=True)")),
    ("dlogits+", ("dlogits += F.one_hot(logits.max(1).indices, num_classes=logits.shape[1]) * dlogit_maxes",)),
    ("dh", ("dh = dlogits @ W2.T",)),
    ("dW2", ("dW2 = h.T @ dlogits",)),
    ("db2", ("db2 = dlogits.sum(0)",)),
    ("dhpreact", ("dhpreact = (1.0 - h**2) * dh", "dhpreact = (1 - torch.tanh(hpreact)**2) * dh")),
    ("dbngain", ("dbngain = (bnraw * dhpreact).sum(0, keepdim=True)",)),
    ("dbnbias", ("dbnbias = dhpreact.sum(0, keepdim=True)",)),
    ("dbnraw", ("dbnraw = bngain * dhpreact",)),
    ("dbndiff", ("dbndiff = bnvar_inv * dbnraw",)),
    ("dbnvar_inv", ("dbnvar_inv = (bndiff * dbnraw).sum(0, keepdim=True)",)),
    ("dbnvar", ("dbnvar = (-0.5 * (bnvar + 1e-5)**-1.5) * dbnvar_inv",)),
    ("dbndiff2", ("dbndiff2 = (1.0/(n-1)) * torch.ones_like(bndiff2) * dbnvar",)),
    ("dbndiff+", ("dbndiff += (2 * bndiff) * dbndiff2",)),
    ("dhprebn", ("dhprebn = dbndiff.clone()",)),
    ("dbnmeani", ("dbnmeani = (-dbndiff).sum(0, keepdim=True)",)),
    ("dhprebn+", ("dhprebn += 1.0/n * (torch.ones_like(hprebn) * dbnmeani)",)),
    ("dembcat", ("dembcat = dhprebn @ W1.T",)),
    ("dW1", ("dW1 = embcat.T @ dhprebn",)),
    ("db1", ("db1 = dhprebn.sum(0)",)),
    ("demb", ("demb = dembcat.view(emb.shape)",)),
    ("dC", ("dC = torch.zeros_like(C)\nfor k in range(Xb.shape[0]):\n  for j in range(Xb.shape[1]):\n"
            "    ix = Xb[k,j]\n    dC[ix] += demb[k,j]",
            "dC = torch.zeros_like(C)\ndC.index_add_(0, Xb.view(-1), demb.view(-1, n_embd))")),
)
STEP_NAMES = tuple(name for name, _ in STEPS)
EX2_STYLES = ("dlogits = F.softmax(logits, 1)\ndlogits[range(n), Yb] -= 1\ndlogits /= n",
              "dlogits = (F.softmax(logits, 1) - F.one_hot(Yb, num_classes=logits.shape[1])) / n")
EX3_STYLES = ("dhprebn = bngain*bnvar_inv/n * (n*dhpreact - dhpreact.sum(0) - n/(n-1)*bnraw*(dhpreact*bnraw).sum(0))",)


@dataclass(frozen=True)
class Mistake:
    """One wrong line: ``step`` written as ``code`` ("" deletes it), and the diagnosis the wrong gradient should get.

    ``later`` is what the gradients that go wrong because of it should get
    ("upstream": they are right given the right inputs).
    """

    item: str
    step: str
    code: str
    diagnosis: str
    later: str = "upstream"


MISTAKES: dict[str, Mistake] = {m_name: m for m_name, m in {
    "dbnbias_keepdim": Mistake("ex1_dbnbias", "dbnbias", "dbnbias = dhpreact.sum(0)", "shape.missing_dim"),
    "db2_keepdim": Mistake("ex1_db2", "db2", "db2 = dlogits.sum(0, keepdim=True)", "shape.extra_dim"),
    "dbnmeani_lecture": Mistake("ex1_dbnmeani", "dbnmeani", "dbnmeani = (-dbndiff).sum(0)", "shape.missing_dim"),
    "dprobs_sign": Mistake("ex1_dprobs", "dprobs", "dprobs = -dlogprobs / probs", "sign"),
    "dlogprobs_no_n": Mistake("ex1_dlogprobs", "dlogprobs",
                              "dlogprobs = torch.zeros_like(logprobs)\ndlogprobs[range(n), Yb] = -1.0", "scale.1/n"),
    "dbndiff2_bessel": Mistake("ex1_dbndiff2", "dbndiff2", "dbndiff2 = (1.0/n) * torch.ones_like(bndiff2) * dbnvar",
                               "scale.bessel"),
    "dbnvar_epsilon": Mistake("ex1_dbnvar", "dbnvar", "dbnvar = (-0.5 * (bnvar - 1e-5)**-1.5) * dbnvar_inv", "epsilon"),
    "dbnvar_half": Mistake("ex1_dbnvar", "dbnvar", "dbnvar = -(bnvar + 1e-5)**-1.5 * dbnvar_inv", "scale.other"),
    "dcounts_overwritten": Mistake("ex1_dcounts", "dcounts+", "dcounts = torch.ones_like(counts) * dcounts_sum",
                                   "branch.missing"),
    "dbndiff_one_use": Mistake("ex1_dbndiff", "dbndiff+", "", "branch.missing"),
    "dprobs_local_only": Mistake("ex1_dprobs", "dprobs", "dprobs = 1.0 / probs", "local_only"),
    "dC_scatter": Mistake("ex1_dC", "dC", "dC = torch.zeros_like(C)\ndC[Xb] += demb", "scatter.repeats"),
    "dC_zero": Mistake("ex1_dC", "dC", "dC = torch.zeros_like(C)\nfor k in range(Xb.shape[0]):\n"
                                       "  for j in range(Xb.shape[1]):\n    dC[Xb[k,j]] + demb[k,j]", "zeros"),
    "dW2_transposed": Mistake("ex1_dW2", "dW2", "dW2 = dlogits.T @ h", "shape.transposed"),
    "dbngain_not_summed": Mistake("ex1_dbngain", "dbngain", "dbngain = bnraw * dhpreact", "shape.missing_sum"),
    "dnorm_logits_sign": Mistake("ex1_dnorm_logits", "dnorm_logits", "dnorm_logits = -counts * dcounts", "sign"),
    "dbnraw_no_gain": Mistake("ex1_dbnraw", "dbnraw", "dbnraw = dhpreact.clone()", "other_tensor"),
    # a neighbouring tensor where the local derivative should be
    "dbndiff2_uses_bndiff": Mistake("ex1_dbndiff2", "dbndiff2", "dbndiff2 = (1.0/(n-1)) * bndiff * dbnvar",
                                    "local_other"),
    "dprobs_times_probs": Mistake("ex1_dprobs", "dprobs", "dprobs = probs * dlogprobs", "local_other"),
    "dhpreact_h": Mistake("ex1_dhpreact", "dhpreact", "dhpreact = h * dh", "local_other"),
    # the cascades of issue 22
    "dhpreact_typo": Mistake("ex1_dhpreact", "dhpreact", "dhpreact = (1 - h**2) + dh", "none"),
    "dlogits_overwritten": Mistake("ex1_dlogits", "dlogits+",
                                   "dlogits = F.one_hot(logits.max(1).indices, num_classes=logits.shape[1]) * dlogit_maxes",
                                   "branch.missing"),
    "dembcat_raises": Mistake("ex1_dembcat", "dembcat", "dembcat = dhprebn @ W1", "error.RuntimeError",
                              later="error.NameError"),
    # Exercises 2 and 3
    "ex2_no_n": Mistake("ex2_dlogits", "ex2", "dlogits = F.softmax(logits, 1)\ndlogits[range(n), Yb] -= 1",
                        "scale.1/n"),
    "ex2_sign": Mistake("ex2_dlogits", "ex2",
                        "dlogits = (F.one_hot(Yb, num_classes=logits.shape[1]) - F.softmax(logits, 1)) / n", "sign"),
    "ex3_no_bessel": Mistake("ex3_dhprebn", "ex3", "dhprebn = bngain*bnvar_inv/n * (n*dhpreact - dhpreact.sum(0) "
                                                   "- bnraw*(dhpreact*bnraw).sum(0))", "none"),
}.items()}

# ``.grad`` shortcuts past one line, each scoring nothing for its own gradient only.
SHORTCUTS = {"dhpreact": "dhpreact = hpreact.grad", "dbnraw": "dbnraw = bnraw.grad.clone()",
             "dcounts_sum": "dcounts_sum = counts_sum.grad"}

HEADER_SPELLINGS = {1: ("Exercise 1", "Excercise 1", "Exercize 1", "exercise1", "EXERCISE 1", "Exercice 1"),
                    2: ("Exercise 2", "Excercise 2", "Exercice 2", "exercise 2", "Exercise #2", "Excersise 2"),
                    3: ("Exercise 3", "Excercie 3", "Excercise 3", "Exercise 3.", "EXERCISE 3", "Exersice 3"),
                    4: ("Exercise 4", "Excercise 4", "Exercize 4", "exercise 4", "Exercise 4 -", "Excercice 4")}


@dataclass
class Notebook:
    """One learner's notebook and what they did (never whether it is right: see ``ground_truth``)."""

    name: str
    causes: tuple[str, ...]
    cells: list[tuple[str, str, str]]  # (kind, source, role): role is setup, ex1, ex2, ex3, ex4 or other
    names: dict[str, str] = field(default_factory=dict)  # lecture name -> the learner's, where they differ
    planted: dict[str, str] = field(default_factory=dict)  # item -> the diagnosis its own mistake should get
    later: dict[str, str] = field(default_factory=dict)  # item -> what the gradients it spoils should get
    cheats: dict[str, str] = field(default_factory=dict)  # item -> the autograd it reads
    nbformat: int = 4
    # No exercise split (no headers): the truth is what the kernel holds once every cell ran, top to bottom.
    top_to_bottom: bool = False

    def to_bytes(self) -> bytes:
        cells = [{"cell_type": kind, "metadata": {}, "source": source.splitlines(keepends=True),
                  **({"outputs": [], "execution_count": None} if kind == "code" else {})}
                 for kind, source, _ in self.cells]
        if self.nbformat == 3:
            sheet = [{"cell_type": kind, "input" if kind == "code" else "source": source, "metadata": {}}
                     for kind, source, _ in self.cells]
            return json.dumps({"nbformat": 3, "nbformat_minor": 0, "metadata": {},
                               "worksheets": [{"cells": sheet}]}).encode()
        return json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
                           "cells": cells}).encode()

    def learner(self, name: str) -> str:
        return self.names.get(name, name)


# ------------------------------------------------------------------ building notebooks

def ex1_code(styles: dict[str, int] | None = None, replaced: dict[str, str] | None = None) -> list[tuple[str, str]]:
    """(step, code) of Exercise 1 in order; ``replaced`` maps a step to other code ("" leaves it out)."""
    styles, replaced = styles or {}, replaced or {}
    steps = []
    for name, variants in STEPS:
        code = replaced.get(name, variants[styles.get(name, 0) % len(variants)])
        if code:
            steps.append((name, code))
    return steps


def join(steps: list[tuple[str, str]]) -> str:
    return "\n".join(code for _, code in steps) + "\n"


def rename(source: str, names: dict[str, str]) -> str:
    """Whole-word renames in code (``Yb`` -> ``yb``); strings and comments are code too for a learner's search."""
    for old, new in names.items():
        source = re.sub(rf"(?<![\w.]){re.escape(old)}\b", new, source)
    return source


EX1_CMPS = ("cmp('logprobs', dlogprobs, logprobs)\ncmp('probs', dprobs, probs)\ncmp('counts', dcounts, counts)\n"
            "cmp('logits', dlogits, logits)\ncmp('h', dh, h)\ncmp('hpreact', dhpreact, hpreact)\n"
            "cmp('hprebn', dhprebn, hprebn)\ncmp('C', dC, C)\n")


@dataclass
class Recipe:
    """How to write one notebook: each field one way a learner departs from the lecture's notebook."""

    name: str
    causes: tuple[str, ...] = ()
    styles: dict[str, int] = field(default_factory=dict)
    mistakes: tuple[str, ...] = ()
    shortcut: str = ""  # a step read from .grad
    renames: dict[str, str] = field(default_factory=dict)  # applied to every code cell
    headers: dict[int, str] = field(default_factory=dict)  # exercise -> its header's spelling ("" deletes it)
    markdown_headers: bool = False
    ex1_cells: int = 1  # Exercise 1 in this many cells
    ex1_unheaded_tail: bool = False  # the cells after Exercise 1's first have no header
    column0_comment: bool = False  # in the dC loop and the training loop
    pasted_reference: bool = False  # the lecture's answers pasted after the learner's own attempt
    no_grad_block: bool = False
    duplicate: tuple[str, ...] = ()  # roles whose answer cell appears twice
    delete: tuple[str, ...] = ()  # "ex3_answer", "ex2_header", ...
    order: tuple[int, ...] = (1, 2, 3, 4)
    ex2_name: str = ""  # the learner's name for Exercise 2's dlogits
    ex2_helper: bool = False
    backward_left_in: bool = False  # loss.backward() left in the training loop
    forward_with_ex1: bool = False  # the forward pass and Exercise 1 in one cell
    prints: bool = False  # shapes printed between the lines


def header_line(recipe: Recipe, number: int) -> str | None:
    spelling = recipe.headers.get(number, f"Exercise {number}")
    if not spelling:
        return None
    title = {1: "backprop through the whole thing manually", 2: "backprop through cross_entropy but all in one go",
             3: "backprop through batchnorm but all in one go", 4: "putting it all together!"}[number]
    return f"{spelling}: {title}"


def build(recipe: Recipe) -> Notebook:
    """The notebook the recipe describes."""
    names = dict(recipe.renames)
    replaced: dict[str, str] = {}
    planted: dict[str, str] = {}
    later: dict[str, str] = {}
    ex2_code, ex3_code = EX2_STYLES[recipe.styles.get("ex2", 0) % 2], EX3_STYLES[0]
    for key in recipe.mistakes:
        mistake = MISTAKES[key]
        planted[mistake.item] = mistake.diagnosis
        later[mistake.item] = mistake.later
        if mistake.step == "ex2":
            ex2_code = mistake.code
        elif mistake.step == "ex3":
            ex3_code = mistake.code
        else:
            replaced[mistake.step] = mistake.code
    cheats = {}
    if recipe.shortcut:
        replaced[recipe.shortcut] = SHORTCUTS[recipe.shortcut]
        if not recipe.pasted_reference:  # the pasted lines derive it again, last
            cheats[f"ex1_{recipe.shortcut}"] = "grad"
    steps = ex1_code(recipe.styles, replaced)
    if recipe.prints:
        steps = [(n, c + (f"\nprint({n.rstrip('+')}.shape)" if i % 5 == 0 else "")) for i, (n, c) in enumerate(steps)]
    if recipe.column0_comment:
        steps = [(n, c.replace("\n    ix = Xb[k,j]", "\n# the row of C this position used\n    ix = Xb[k,j]"))
                 for n, c in steps]
    cells: list[tuple[str, str, str]] = [(k, s, "setup") for k, s in base.SETUP[:-1]]
    forward = base.SETUP[-1][1]

    def head(number: int, body: str) -> list[tuple[str, str, str]]:
        line = header_line(recipe, number)
        role = f"ex{number}"
        if line is None:
            return [("code", body, role)] if body.strip() else []
        if recipe.markdown_headers:
            return [("markdown", f"## {line}", "other")] + ([("code", body, role)] if body.strip() else [])
        return [("code", f"# {line}\n\n{body}", role)]

    # Exercise 1
    size = max(1, (len(steps) + recipe.ex1_cells - 1) // recipe.ex1_cells)
    chunks = [join(steps[i:i + size]) for i in range(0, len(steps), size)]
    if recipe.no_grad_block:
        chunks = ["with torch.no_grad():\n" + "".join(f"  {line}\n" for line in chunk.splitlines()) for chunk in chunks]
    ex1: list[tuple[str, str, str]] = []
    for index, chunk in enumerate(chunks):
        if index == 0:
            ex1 += head(1, chunk)
        elif recipe.ex1_unheaded_tail or header_line(recipe, 1) is None:
            ex1.append(("code", chunk, "ex1"))
        else:  # each piece under a header of its own, as some learners copy it
            ex1.append(("code", f"# {header_line(recipe, 1)} (continued)\n{chunk}", "ex1"))
    ex1.append(("code", EX1_CMPS, "other"))
    if recipe.pasted_reference:
        ex1.append(("code", "# the lecture's solution, pasted here to compare with mine\n" + join(ex1_code()), "ex1"))
        ex1.append(("code", EX1_CMPS, "other"))
    if recipe.forward_with_ex1:
        first_kind, first_source, _ = ex1[0]
        ex1[0] = (first_kind, forward + "\n\n" + first_source, "ex1")
    else:
        cells.append(("code", forward, "setup"))
    # Exercise 2
    dlogits = recipe.ex2_name or "dlogits"
    if dlogits != "dlogits":
        names["ex2:dlogits"] = dlogits
    ex2_answer = ex2_code.replace("dlogits", dlogits)
    if recipe.ex2_helper:
        ex2_answer = ("def ce_backward(logits, targets):\n  n = logits.shape[0]\n  d = F.softmax(logits, 1)\n"
                      "  d[range(n), targets] -= 1\n  return d / n\n\n" + f"{dlogits} = ce_backward(logits, Yb)")
    header2 = base.EX2_HEAD.split("\n\n", 1)[1]
    ex2 = head(2, header2) + [("code", "# backward pass\n\n" + ex2_answer + f"\n\ncmp('logits', {dlogits}, logits)",
                               "ex2")]
    if "ex2_header" in recipe.delete:
        ex2 = ex2[1:] if len(ex2) > 1 else ex2
    if "ex2" in recipe.duplicate:
        ex2.append(ex2[-1])
    # Exercise 3
    header3 = base.EX3_HEAD.split("\n\n", 1)[1]
    ex3 = head(3, header3) + [("code", "# backward pass\n\n" + ex3_code + "\n\ncmp('hprebn', dhprebn, hprebn)", "ex3")]
    if "ex3_answer" in recipe.delete:
        ex3 = ex3[:-1]
    # Exercise 4
    loop = base.EX4_LOOP
    if recipe.column0_comment:
        loop = loop.replace("    # manual backprop! #swole_doge_meme\n", "# manual backprop! #swole_doge_meme\n")
    if recipe.backward_left_in:
        loop = loop.replace("#loss.backward()", "loss.backward()").replace("with torch.no_grad():\n", "if True:\n")
    init = base.EX4_INIT.split("\n\n", 1)[1]
    ex4 = head(4, init + loop) + [("code", base.EX4_COMPARE, "ex4")]
    ex4 = [(k, s, "ex4") for k, s, _ in ex4]
    blocks = {1: ex1, 2: ex2, 3: ex3, 4: ex4}
    for number in recipe.order:
        cells += blocks[number]
    renamed = [(kind, rename(source, recipe.renames) if kind == "code" else source, role)
               for kind, source, role in cells]
    return Notebook(recipe.name, recipe.causes, renamed, names, planted, later, cheats)


def _alias_renames(new_h: str) -> dict[str, str]:
    return {"h": new_h, "dh": f"d{new_h}"}


RECIPES: tuple[Recipe, ...] = (
    Recipe("lecture_as_solved"),
    Recipe("yb", ("renamed",), renames={"Yb": "yb"}),
    Recipe("xb_yb", ("renamed",), renames={"Xb": "xb", "Yb": "yb"}, styles={"dC": 1}),
    Recipe("batch_size_constant", ("renamed constant",), renames={"batch_size": "BATCH_SIZE", "n": "BATCH_SIZE"}),
    Recipe("alias_a", ("renamed", "alias"), renames=_alias_renames("a")),
    Recipe("lower_weights", ("renamed",), renames={"W1": "w1", "W2": "w2"}),
    Recipe("ex2_renamed_answer", ("renamed",), ex2_name="dlogits_fast"),
    Recipe("ex2_own_helper", ("own helper",), ex2_helper=True),
    Recipe("misspelled_headers", ("misspelled headers",), headers={1: "Excercise 1", 2: "Excercise 2", 3: "Excercie 3",
                                                                   4: "Excercise 4"}),
    Recipe("misspelled_ex4_backward_left", ("misspelled headers", "loss.backward() left in"),
           headers={2: "Excercise 2", 3: "Excercie 3", 4: "Excercise 4"}, backward_left_in=True),
    Recipe("markdown_headers", ("markdown headers",), markdown_headers=True),
    Recipe("no_headers", ("missing headers",), headers={1: "", 2: "", 3: "", 4: ""}),
    Recipe("no_ex1_header_split", ("missing headers", "unheaded cells"), headers={1: ""}, ex1_cells=4),
    Recipe("ex1_split_unheaded", ("unheaded cells",), ex1_cells=6, ex1_unheaded_tail=True),
    Recipe("no_headers_split", ("missing headers", "unheaded cells"), headers={1: "", 2: "", 3: "", 4: ""},
           ex1_cells=5),
    Recipe("column0_comments", ("comment at column 0",), column0_comment=True),
    Recipe("grad_shortcut_dhpreact", (".grad shortcut",), shortcut="dhpreact"),
    Recipe("grad_shortcut_dbnraw", (".grad shortcut",), shortcut="dbnraw"),
    Recipe("typo_cascade", ("typo cascade",), mistakes=("dhpreact_typo",)),
    Recipe("wrong_dlogits_cascade", ("typo cascade",), mistakes=("dlogits_overwritten",)),
    Recipe("pasted_reference", ("pasted reference",), mistakes=("dprobs_sign", "dbnbias_keepdim"),
           pasted_reference=True),
    Recipe("out_of_order", ("cell order",), order=(3, 1, 4, 2)),
    Recipe("duplicated_ex2", ("duplicated cells",), duplicate=("ex2",)),
    Recipe("deleted_ex3_answer", ("deleted cells",), delete=("ex3_answer",)),
    Recipe("deleted_ex2_header", ("deleted cells", "missing headers"), delete=("ex2_header",)),
    Recipe("no_grad_block", ("indentation",), no_grad_block=True),
    Recipe("forward_in_ex1_cell", ("cell layout",), forward_with_ex1=True),
    Recipe("printing_shapes", ("extra statements",), prints=True),
    *(Recipe(f"mistake_{key}", ("own mistake",), mistakes=(key,)) for key in MISTAKES),
)

CAUSE_MENU = {
    "renames": [{"Yb": "yb"}, {"batch_size": "BATCH_SIZE", "n": "BATCH_SIZE"}, _alias_renames("a"),
                _alias_renames("act"), {"W1": "w1", "W2": "w2"}, {"Xb": "xb", "Yb": "yb"}],
    "headers": [{i: random_spelling for i, random_spelling in enumerate(spellings, start=1)}
                for spellings in zip(*(HEADER_SPELLINGS[i][1:] for i in (1, 2, 3, 4)))],
}


def mixtures(count: int, seed: int = 22) -> list[Recipe]:
    """``count`` recipes mixing causes at random (a generator of their own, so the corpus never changes)."""
    g = random.Random(seed)
    recipes = []
    for index in range(count):
        causes: list[str] = []
        recipe = Recipe(f"mix{index:02d}", styles={name: g.randrange(3) for name in (*STEP_NAMES, "ex2")})
        if g.random() < 0.6:
            recipe.renames = dict(g.choice(CAUSE_MENU["renames"]))
            causes.append("renamed")
        if g.random() < 0.4:
            recipe.headers = dict(g.choice(CAUSE_MENU["headers"]))
            causes.append("misspelled headers")
        if g.random() < 0.15:
            recipe.headers = {**recipe.headers, g.choice((1, 2, 3)): ""}
            causes.append("missing headers")
        if g.random() < 0.3:
            recipe.ex1_cells = g.choice((2, 3, 5, 8))
            recipe.ex1_unheaded_tail = True
            causes.append("unheaded cells")
        if g.random() < 0.3:
            recipe.column0_comment = True
            causes.append("comment at column 0")
        picked = g.sample(sorted(MISTAKES), g.choice((0, 1, 1, 2)))
        # two mistakes on one step: keep the first
        steps_seen, kept = set(), []
        for key in picked:
            if MISTAKES[key].step not in steps_seen:
                kept.append(key)
                steps_seen.add(MISTAKES[key].step)
        recipe.mistakes = tuple(kept)
        if kept:
            causes.append("own mistake")
        if g.random() < 0.15:
            shortcut = g.choice(sorted(SHORTCUTS))
            if shortcut not in steps_seen:
                recipe.shortcut = shortcut
                causes.append(".grad shortcut")
        if g.random() < 0.1:
            recipe.pasted_reference = True
            causes.append("pasted reference")
        if g.random() < 0.15:
            recipe.order = tuple(g.sample((1, 2, 3, 4), 4))
            causes.append("cell order")
        if g.random() < 0.1:
            recipe.duplicate = ("ex2",)
            causes.append("duplicated cells")
        if g.random() < 0.1:
            recipe.markdown_headers = True
            causes.append("markdown headers")
        if g.random() < 0.1:
            recipe.ex2_name = "dlogits_fast"
            causes.append("renamed")
        recipe.causes = tuple(dict.fromkeys(causes)) or ("styles only",)
        recipes.append(recipe)
    return recipes


# ------------------------------------------------------------------ written by hand

def _by_hand() -> list[Notebook]:
    """Oddities no recipe makes: every one a way a real notebook differs from the lecture's."""
    made = []
    plain = build(Recipe("nbformat3"))
    plain.causes, plain.nbformat = ("nbformat 3",), 3
    made.append(plain)
    magic = build(Recipe("cell_magics"))
    magic.cells = [(k, ("%%time\n" + s) if r == "ex1" else s, r) for k, s, r in magic.cells]
    magic.causes = ("cell magics",)
    made.append(magic)
    own_cmp = build(Recipe("own_cmp_asserts"))
    own_cmp.cells = [(k, s.replace("cmp(", "assert cmp(") if r == "other" else s, r) for k, s, r in own_cmp.cells]
    own_cmp.cells = [(k, s + "\n    return app" if s.startswith("def cmp") else s, r) for k, s, r in own_cmp.cells]
    own_cmp.causes = ("own cmp",)
    made.append(own_cmp)
    exploring = build(Recipe("exploring_cells", mistakes=("dbndiff2_uses_bndiff",)))
    position = next(i for i, (_, _, r) in enumerate(exploring.cells) if r == "ex1")
    exploring.cells[position + 1:position + 1] = [
        ("code", "print(logprobs.shape, probs.shape)\ncounts_sum.shape, counts.shape", "other"),
        ("markdown", "I had to think about the broadcast here: counts_sum_inv is (32, 1).", "other"),
        ("code", "", "other"), ("code", "# nothing yet\n", "other")]
    exploring.causes = ("extra cells", "own mistake")
    made.append(exploring)
    # the issue's crash: a comment moved to column 0 inside the loop of a no_grad block, an Exercise 1 in one go
    crash = build(Recipe("column0_in_with_for", column0_comment=True, no_grad_block=True))
    crash.causes = ("comment at column 0", "indentation")
    made.append(crash)
    # Exercise 1 checked piece by piece: a cmp after every few lines, headers only on the first
    pieces = build(Recipe("cmp_after_each_piece", ex1_cells=9, ex1_unheaded_tail=True, mistakes=("dW2_transposed",)))
    with_cmps = []
    for kind, source, role in pieces.cells:
        with_cmps.append((kind, source, role))
        if role == "ex1":
            assigned = re.findall(r"^(d\w+)\s*\+?=", source, re.MULTILINE)
            if assigned:
                with_cmps.append(("code", f"cmp('{assigned[-1][1:]}', {assigned[-1]}, {assigned[-1][1:]})", "other"))
    pieces.cells, pieces.causes = with_cmps, ("unheaded cells", "own mistake")
    made.append(pieces)
    # own names for their own intermediate results, and a helper defined in the setup
    helper = build(Recipe("own_helpers", renames={"Yb": "yb"}))
    helper.cells = [(k, s.replace("dhpreact = (1.0 - h**2) * dh", "dhpreact = tanh_backward(h) * dh")
                     .replace("dbnvar = (-0.5 * (bnvar + 1e-5)**-1.5) * dbnvar_inv",
                              "var_eps = bnvar + 1e-5\ndbnvar = (-0.5 * var_eps**-1.5) * dbnvar_inv"), r)
                    for k, s, r in helper.cells]
    helper.cells.insert(1, ("code", "def tanh_backward(t):\n    return 1 - t**2\n", "setup"))
    helper.causes = ("own helper", "renamed")
    made.append(helper)
    # a second attempt at one gradient in a later cell, the first one wrong
    second = build(Recipe("second_attempt_cell", mistakes=("dbnvar_half",)))
    position = max(i for i, (_, _, r) in enumerate(second.cells) if r == "ex1")
    second.cells.insert(position + 1, ("code", "# fixed dbnvar (forgot the 0.5)\n"
                                       "dbnvar = (-0.5 * (bnvar + 1e-5)**-1.5) * dbnvar_inv\n"
                                       "dbndiff2 = (1.0/(n-1)) * torch.ones_like(bndiff2) * dbnvar\n"
                                       "dbndiff = bnvar_inv * dbnraw\ndbndiff += (2 * bndiff) * dbndiff2\n"
                                       "dhprebn = dbndiff.clone()\ndbnmeani = (-dbndiff).sum(0, keepdim=True)\n"
                                       "dhprebn += 1.0/n * (torch.ones_like(hprebn) * dbnmeani)\n"
                                       "dembcat = dhprebn @ W1.T\ndW1 = embcat.T @ dhprebn\ndb1 = dhprebn.sum(0)\n"
                                       "demb = dembcat.view(emb.shape)\ndC = torch.zeros_like(C)\n"
                                       "dC.index_add_(0, Xb.view(-1), demb.view(-1, n_embd))\n", "ex1"))
    second.planted, second.later = {}, {}
    second.causes = ("second attempt",)
    made.append(second)
    # a cell that does not parse in the middle of Exercise 1, split into pieces
    broken = build(Recipe("syntax_error_piece", ex1_cells=4, ex1_unheaded_tail=True))
    index = [i for i, (_, _, r) in enumerate(broken.cells) if r == "ex1"][1]
    kind, source, role = broken.cells[index]
    broken.cells[index] = (kind, source.replace("dh = dlogits @ W2.T", "dh = dlogits @ W2.T)"), role)
    broken.causes = ("syntax error",)
    made.append(broken)
    # semicolons, tabs, Windows line ends, another alias for functional, helpers of their own, prints of cmp
    styled = build(Recipe("semicolons_tabs_crlf", styles={"dC": 1}))
    styled.cells = [(k, s.replace("dcounts = counts_sum_inv * dprobs\n", "dcounts = counts_sum_inv * dprobs; ")
                     .replace("dW2 = h.T @ dlogits\ndb2 = dlogits.sum(0)", "dW2 = h.T @ dlogits; db2 = dlogits.sum(0)")
                     .replace("F.", "nnf.").replace("\n", "\r\n") if r == "ex1" else s, r) for k, s, r in styled.cells]
    styled.cells.insert(2, ("code", "import torch.nn.functional as nnf\r\n", "setup"))
    styled.cells = [(k, s.replace("cmp(", "print(cmp(").replace(")\n", "))\n") if s.startswith("\ncmp(") else s, r)
                    for k, s, r in styled.cells]
    styled.causes = ("semicolons", "line ends", "own imports")
    made.append(styled)
    tabs = build(Recipe("tab_indented_loops", column0_comment=True))
    tabs.cells = [(k, s.replace("\n  for j", "\n\tfor j").replace("\n    ix = Xb", "\n\t\tix = Xb")
                   .replace("\n    dC[ix]", "\n\t\tdC[ix]").replace("# the row", "\t\t# the row") if r == "ex1" else s, r)
                  for k, s, r in tabs.cells]
    tabs.causes = ("indentation",)
    made.append(tabs)
    # the forward pass copied into the Exercise 1 cell again, loss.backward() and all, then the answers
    again = build(Recipe("forward_again_in_ex1", mistakes=("dbngain_not_summed",)))
    forward = base.SETUP[-1][1]
    again.cells = [(k, s.replace("# Exercise 1: backprop through the whole thing manually\n\n",
                                 "# Exercise 1: backprop through the whole thing manually\n\n" + forward + "\n\n"), r)
                   for k, s, r in again.cells]
    again.causes = ("forward pass again", "own mistake")
    made.append(again)
    # own intermediate names and a redefined n inside Exercise 1
    helpers = build(Recipe("intermediate_helpers", mistakes=("dprobs_sign",)))
    helpers.cells = [(k, s.replace("dhpreact = (1.0 - h**2) * dh", "local = 1.0 - h**2\ndhpreact = local * dh")
                      .replace("dlogprobs = torch.zeros_like(logprobs)", "n = Xb.shape[0]\ndlogprobs = torch.zeros_like(logprobs)")
                      if r == "ex1" else s, r) for k, s, r in helpers.cells]
    helpers.causes = ("own helper", "own mistake")
    made.append(helpers)
    # an exercise answered only in part: Exercise 1 stops after dh, Exercise 3 still uses dhpreact
    partial = build(Recipe("stopped_halfway"))
    keep = "\n".join(code for name, code in ex1_code() if STEP_NAMES.index(name) <= STEP_NAMES.index("dh")) + "\n"
    partial.cells = [(k, ("# Exercise 1: backprop through the whole thing manually\n\n" + keep) if r == "ex1" else s, r)
                     for k, s, r in partial.cells]
    partial.causes = ("unfinished",)
    made.append(partial)
    # their own forward pass: BatchNorm's variance without Bessel's correction, and answers that follow it
    variant = build(Recipe("own_forward_variant"))
    variant.cells = [(k, s.replace("bnvar = 1/(n-1) * bndiff2.sum(0, keepdim=True)", "bnvar = 1/n * bndiff2.sum(0, keepdim=True)")
                      .replace("dbndiff2 = (1.0/(n-1)) * torch.ones_like(bndiff2) * dbnvar",
                               "dbndiff2 = (1.0/n) * torch.ones_like(bndiff2) * dbnvar")
                      .replace("n/(n-1)*bnraw", "bnraw"), r) for k, s, r in variant.cells]
    variant.causes = ("own forward pass",)
    made.append(variant)
    made.append(_fused_first_unheaded())
    return made


def _fused_first_unheaded() -> Notebook:
    """No headers, the fused dlogits of Exercise 2 first, then the rest of Exercise 1 read from it, top to bottom.

    The first half of Exercise 1 skipped: dh, dW2 and db2 are computed from
    the fused dlogits of the cell above them, and the BatchNorm lines from a
    fused dhprebn written without Bessel's correction (so it and everything
    below it is wrong). Their kernel runs the cells in this order once.
    """
    setup = [(k, s, "setup") for k, s in base.SETUP]
    answers = ["dlogits = F.softmax(logits, 1)\ndlogits[range(n), Yb] -= 1\ndlogits /= n\n",
               "dh = dlogits @ W2.T\ndW2 = h.T @ dlogits\ndb2 = dlogits.sum(0)\n",
               "dhpreact = (1 - h**2) * dh\n",
               "dbngain = (bnraw * dhpreact).sum(0, keepdim=True)\ndbnbias = dhpreact.sum(0, keepdim=True)\n"
               "dhprebn = bngain * bnvar_inv / n * (n * dhpreact - dhpreact.sum(0) - bnraw * (dhpreact * bnraw).sum(0))\n",
               "dembcat = dhprebn @ W1.T\ndW1 = embcat.T @ dhprebn\ndb1 = dhprebn.sum(0)\n",
               "demb = dembcat.view(emb.shape)\ndC = torch.zeros_like(C)\nfor k in range(Xb.shape[0]):\n"
               "    for j in range(Xb.shape[1]):\n        dC[Xb[k, j]] += demb[k, j]\n"]
    cells = setup + [("code", source, "answers") for source in answers]
    wrong = ("ex1_dhprebn", "ex3_dhprebn")
    return Notebook("fused_dlogits_first_unheaded", ("missing headers", "cell order", "own mistake"), cells,
                    planted=dict.fromkeys(wrong, "none"), later=dict.fromkeys(wrong, "upstream"), top_to_bottom=True)


def notebooks(mixed: int = 40) -> list[Notebook]:
    """The whole corpus: one notebook per recipe, ``mixed`` random mixtures, the hand-written ones."""
    return [build(r) for r in RECIPES] + [build(r) for r in mixtures(mixed)] + _by_hand()


# ------------------------------------------------------------------ autograd's ground truth

def _statements(source: str) -> list[str]:
    """A code cell's top-level statements as source (magics blanked); a cell that does not parse yields none."""
    source = "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines())
    try:
        tree = ast.parse(source)
    except SyntaxError:
        try:  # the learner's kernel runs the parts of the cell that parse, cell part by cell part
            return [part for part in re.split(r"\n(?=\S)", source) if _parses(part)]
        except RecursionError:
            return []
    return [ast.get_source_segment(source, node) for node in tree.body]


def _parses(text: str) -> bool:
    try:
        ast.parse(text)
        return True
    except SyntaxError:
        return False


def _quiet_cmp(*args, **kwargs):
    return True


_DATA_CACHE: dict[tuple[str, ...], dict] = {}  # the namespace after the data cells, by their sources


@dataclass(frozen=True)
class Truth:
    right: bool  # the learner's gradient, at the end of its exercise, is autograd's, and was derived
    present: bool  # the learner's variable holds a tensor then (else the answer is missing or did not run)


def ground_truth(notebook: Notebook, names_file: Path) -> dict[str, Truth]:
    """item -> the truth about the learner's gradient (``Truth``).

    The notebook runs here, trusted (it is ours): setup cells in order, then
    Exercises 1, 2 and 3 (each in notebook order), one statement at a time,
    a statement that raises leaving what it would have assigned as it was.
    """
    from autograder.diagnosis.comparison import compare

    folder = Path(tempfile.mkdtemp())
    shutil.copy(names_file, folder / "names.txt")
    here = os.getcwd()
    os.chdir(folder)
    try:
        namespace: dict = {"__name__": "__main__"}
        done: list[str] = []
        for kind, source, role in notebook.cells:
            if kind != "code" or role != "setup":
                continue
            done.append(source)
            if tuple(done) in _DATA_CACHE:
                namespace = dict(_DATA_CACHE[tuple(done)])
                continue
            for statement in _statements(source):
                _run(statement, namespace)
            if "Xte" in namespace and "Xte" not in "".join(done[:-1]):  # the data is loaded: the same every time
                _DATA_CACHE[tuple(done)] = dict(namespace)
                namespace = dict(namespace)  # the data cells' functions keep the namespace they ran in: leave it as cached
        namespace["cmp"] = _quiet_cmp
        truth: dict[str, Truth] = {}
        if notebook.top_to_bottom:
            for kind, source, role in notebook.cells:
                if kind == "code" and role != "setup":
                    for statement in _statements(source):
                        _run(statement, namespace)
                        namespace["cmp"] = _quiet_cmp
        for exercise in ("ex1", "ex2", "ex3"):
            if exercise != "ex1" and not notebook.top_to_bottom:  # Exercise 1's dlogits (dhprebn) is not an answer to Exercise 2 (3)
                namespace.pop(_grad_name(notebook, exercise, "ex2_dlogits" if exercise == "ex2" else "ex3_dhprebn"), None)
            for kind, source, role in notebook.cells:
                if kind == "code" and role == exercise:
                    for statement in _statements(source):
                        _run(statement, namespace)
                        namespace["cmp"] = _quiet_cmp
            for item in ITEMS:
                if not item.startswith(exercise):
                    continue
                tensor = namespace.get(notebook.learner(TENSOR_OF[item]))
                got = namespace.get(_grad_name(notebook, exercise, item))
                present = isinstance(got, torch.Tensor)
                if item in notebook.cheats or not isinstance(tensor, torch.Tensor) or tensor.grad is None:
                    truth[item] = Truth(False, present)
                else:
                    truth[item] = Truth(compare(TENSOR_OF[item], got, tensor.grad).ok, present)
        namespace.clear()  # its functions hold it in a cycle: no answer of this notebook outlives the measure
        return truth
    finally:
        os.chdir(here)
        shutil.rmtree(folder, ignore_errors=True)


def _grad_name(notebook: Notebook, exercise: str, item: str) -> str:
    return notebook.names.get(f"{exercise}:d{TENSOR_OF[item]}") or notebook.learner(f"d{TENSOR_OF[item]}")


def _run(statement: str, namespace: dict) -> None:
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            exec(compile(statement, "<corpus>", "exec"), namespace)
    except Exception:
        pass


# ------------------------------------------------------------------ measuring a checker

SPECIFIC_EXCEPT = {"none", "unknown", "not_attempted"}


@dataclass
class Measurement:
    verdicts: int = 0
    agree: int = 0
    disagreements: list[str] = field(default_factory=list)
    wrong: int = 0  # real wrong answers: the learner's tensor, derived, not autograd's
    right_hint: int = 0
    honest: int = 0  # "none" (or an error's code) where a cause was expected
    misleading: list[str] = field(default_factory=list)
    missed: list[str] = field(default_factory=list)
    no_report: list[str] = field(default_factory=list)

    def line(self) -> str:
        share = self.agree / max(1, self.verdicts)
        hints = self.right_hint / max(1, self.wrong)
        return (f"verdicts: {self.agree}/{self.verdicts} agree with autograd ({share:.1%}); wrong answers: "
                f"{self.wrong}, right diagnosis {self.right_hint} ({hints:.1%}), honest 'none' {self.honest}, "
                f"misleading {len(self.misleading)}; notebooks without a report: {len(self.no_report)}")


def expected_diagnosis(notebook: Notebook, item: str, truth: dict[str, Truth]) -> str:
    """The diagnosis a wrong answer deserves: its own planted mistake's, else what the mistake upstream of it leaves."""
    if item in notebook.planted:
        return notebook.planted[item]
    spoilers = [later for planted, later in notebook.later.items() if not truth[planted].right]
    return spoilers[0] if spoilers else "upstream"


def measure(check: Callable[[bytes, str], dict], corpus: list[Notebook], names_file: Path,
            progress: Callable[[str], None] | None = None) -> Measurement:
    """``check(bytes, filename)`` -> the checker's JSON report ({"items": [...]}) against the ground truth.

    A real wrong answer is a tensor the learner derived that is not
    autograd's; its diagnosis is right when it is the one its cause deserves,
    honest when it is "none" (or names nothing), misleading otherwise.
    """
    result = Measurement()
    for notebook in corpus:
        truth = ground_truth(notebook, names_file)
        try:
            report = check(notebook.to_bytes(), f"{notebook.name}.ipynb")
        except Exception as err:  # a checker that crashes gives no report
            report = {"items": [], "error": f"{type(err).__name__}: {err}"}
        found = {f"{i['exercise']}_{i['name']}": i for i in report.get("items", [])}
        if not found:
            result.no_report.append(f"{notebook.name}: {str(report.get('error'))[:120]}")
        for item in ITEMS:
            got = found.get(item, {})
            passed = got.get("status") == "pass"
            result.verdicts += 1
            if passed == truth[item].right:
                result.agree += 1
            else:
                result.disagreements.append(f"{notebook.name} {item}: truth {truth[item].right}, checker "
                                            f"{got.get('status')} [{got.get('diagnosis')}] {got.get('message', '')[:150]}")
            if truth[item].right or not truth[item].present or item in notebook.cheats:
                continue
            expected = expected_diagnosis(notebook, item, truth)
            if expected.startswith("error."):
                continue  # a statement that raised is not an answer to diagnose
            result.wrong += 1
            code = got.get("diagnosis", "") if got.get("status") != "pass" else ""  # a pass names no cause
            named = bool(code) and code not in SPECIFIC_EXCEPT and not code.startswith("error.")
            if expected != "none" and code == expected:
                result.right_hint += 1
            elif not named:
                result.honest += 1
                if expected != "none":
                    result.missed.append(f"{notebook.name} {item}: expected {expected}, got {code}")
            else:
                result.misleading.append(f"{notebook.name} {item}: expected {expected}, got {code} "
                                         f"({got.get('message', '')[:120]})")
        if progress is not None:
            progress(notebook.name)
    return result


def main() -> None:
    """``python -m tests.lecture_corpus [--sandbox] [NAME...]``: the numbers (in this process, or sandboxed)."""
    from autograder.lecture import LectureSettings
    from autograder.lecture.check import check_bytes
    from autograder.lecture.warm import fork_server
    from autograder.resources import data_file

    torch.set_num_threads(1)
    chosen = [arg for arg in sys.argv[1:] if not arg.startswith("--")]
    corpus = [nb for nb in notebooks() if not chosen or nb.name in chosen]
    with fork_server(LectureSettings(in_process="--sandbox" not in sys.argv, ex4_steps=1)) as settings:
        found = measure(lambda data, name: check_bytes(data, name, settings).to_json(), corpus,
                        data_file("names.txt"))
    for line in found.disagreements + [f"misleading: {m}" for m in found.misleading] + \
            [f"missed: {m}" for m in found.missed] + [f"no report: {m}" for m in found.no_report]:
        print(line)
    print(f"\n{len(corpus)} notebooks; " + found.line())


if __name__ == "__main__":
    main()
