"""What is graded: every notebook, answer cell and graded item, by id.

The ids here are the nbgrader ``grade_id`` of the cells in ``solutions/``:
an answer cell (``ex1_line_probs``) holds code the student writes; a graded
item (``ex1_dcounts``) is a test cell worth ``points`` that checks one
gradient. ``tests/test_notebooks_match_registry.py`` fails when a master
notebook and this registry disagree.

An answer cell starts with a directive line ``#| answer: <answer id>``, so the
hidden checks can find its code both in a notebook file and in a kernel's
input history.
"""

from __future__ import annotations

from dataclasses import dataclass

ASSIGNMENT = "backprop_ninja"


@dataclass(frozen=True)
class Line:
    """One line of the chunked forward pass and what its backward step yields."""

    output: str  # the tensor the line makes, e.g. "probs"
    code: str  # the forward line itself
    grads: tuple[str, ...]  # gradient variables its answer cell assigns, e.g. ("dcounts_sum_inv", "dcounts")

    @property
    def answer_id(self) -> str:
        return f"ex1_line_{self.output}"


# Exercise 1, in the order of the backward pass (the forward lines, bottom up).
EX1_LINES = (
    Line("loss", "loss = -logprobs[range(n), Yb].mean()", ("dlogprobs",)),
    Line("logprobs", "logprobs = probs.log()", ("dprobs",)),
    Line("probs", "probs = counts * counts_sum_inv", ("dcounts_sum_inv", "dcounts")),
    Line("counts_sum_inv", "counts_sum_inv = counts_sum**-1", ("dcounts_sum",)),
    Line("counts_sum", "counts_sum = counts.sum(1, keepdim=True)", ("dcounts",)),
    Line("counts", "counts = norm_logits.exp()", ("dnorm_logits",)),
    Line("norm_logits", "norm_logits = logits - logit_maxes", ("dlogits", "dlogit_maxes")),
    Line("logit_maxes", "logit_maxes = logits.max(1, keepdim=True).values", ("dlogits",)),
    Line("logits", "logits = h @ W2 + b2", ("dh", "dW2", "db2")),
    Line("h", "h = torch.tanh(hpreact)", ("dhpreact",)),
    Line("hpreact", "hpreact = bngain * bnraw + bnbias", ("dbngain", "dbnbias", "dbnraw")),
    Line("bnraw", "bnraw = bndiff * bnvar_inv", ("dbndiff", "dbnvar_inv")),
    Line("bnvar_inv", "bnvar_inv = (bnvar + 1e-5)**-0.5", ("dbnvar",)),
    Line("bnvar", "bnvar = 1/(n-1) * bndiff2.sum(0, keepdim=True)", ("dbndiff2",)),
    Line("bndiff2", "bndiff2 = bndiff**2", ("dbndiff",)),
    Line("bndiff", "bndiff = hprebn - bnmeani", ("dhprebn", "dbnmeani")),
    Line("bnmeani", "bnmeani = 1/n * hprebn.sum(0, keepdim=True)", ("dhprebn",)),
    Line("hprebn", "hprebn = embcat @ W1 + b1", ("dembcat", "dW1", "db1")),
    Line("embcat", "embcat = emb.view(emb.shape[0], -1)", ("demb",)),
    Line("emb", "emb = C[Xb]", ("dC",)),
)


@dataclass(frozen=True)
class Item:
    """One graded test cell: a gradient (or a function) checked on hidden inputs."""

    grade_id: str  # test cell id and gradebook column, e.g. "ex1_dcounts"
    notebook: str  # notebook id, e.g. "01_atomic_backprop"
    answers: tuple[str, ...]  # answer cells whose code makes it, run in this order
    points: int
    kind: str  # how the judge runs it: "gradient" (a variable) or "function" (Exercise 4)
    variable: str = ""  # for "gradient": the variable the answer cells assign, e.g. "dcounts"
    # For "gradient": per answer cell, the upstream gradients fed in (correct
    # values) before it runs, so that a mistake upstream costs only its own item.
    provided: tuple[tuple[str, ...], ...] = ()

    @property
    def tensor(self) -> str:
        """The tensor whose gradient this is: "counts" for "dcounts"."""
        return self.variable[1:]


def _ex1_items() -> tuple[Item, ...]:
    """One item per gradient, graded after the answer cell that completes it."""
    completed_at: dict[str, int] = {}  # gradient -> index of the line that finishes it
    for index, line in enumerate(EX1_LINES):
        for grad in line.grads:
            completed_at[grad] = index
    order = sorted(completed_at, key=lambda g: (completed_at[g], EX1_LINES[completed_at[g]].grads.index(g)))
    items = []
    for grad in order:
        cells = [i for i, line in enumerate(EX1_LINES) if grad in line.grads]
        answers = tuple(EX1_LINES[i].answer_id for i in cells)
        # An answer cell may use every gradient finished before it.
        provided = tuple(tuple(g for g in order if completed_at[g] < i) for i in cells)
        items.append(Item(f"ex1_{grad}", NOTEBOOKS[0], answers, 1, "gradient", grad, provided))
    return tuple(items)


NOTEBOOKS = (
    "01_atomic_backprop",
    "02_fused_cross_entropy",
    "03_fused_batchnorm",
    "04_manual_training",
)

ITEMS: tuple[Item, ...] = _ex1_items() + (
    Item("ex2_dlogits", NOTEBOOKS[1], ("ex2_dlogits_fused",), 4, "gradient", "dlogits", ((),)),
    Item("ex3_dhprebn", NOTEBOOKS[2], ("ex3_dhprebn_fused",), 6, "gradient", "dhprebn", (("dhpreact",),)),
    Item("ex4_backward", NOTEBOOKS[3], ("ex4_manual_backward",), 6, "function"),
    Item("ex4_training", NOTEBOOKS[3], ("ex4_manual_backward",), 4, "function"),
)

ITEMS_BY_ID = {item.grade_id: item for item in ITEMS}

# Answer cells that are practice, not graded: a student brings Exercise 1 code
# into a later notebook to time it against the fused version.
PRACTICE_ANSWERS = {
    "ex2_atomic_chain": NOTEBOOKS[1],
    "ex3_atomic_chain": NOTEBOOKS[2],
    "ex4_dC_loop": NOTEBOOKS[3],
}


def items_of(notebook: str) -> tuple[Item, ...]:
    return tuple(item for item in ITEMS if item.notebook == notebook)


def answer_ids(notebook: str) -> tuple[str, ...]:
    """Every answer cell of a notebook, in notebook order (graded ones, then practice)."""
    if notebook == NOTEBOOKS[0]:
        graded = tuple(line.answer_id for line in EX1_LINES)
    else:
        graded = tuple(dict.fromkeys(a for item in items_of(notebook) for a in item.answers))
    return graded + tuple(a for a, nb in PRACTICE_ANSWERS.items() if nb == notebook)


def max_score() -> int:
    return sum(item.points for item in ITEMS)
