"""Shared fixtures: the master notebooks, their answer cells, and model cases.

The masters (``solutions/*.ipynb``) are read with nbformat, never executed
here; nbval runs them separately. Notebooks 02-04 may not exist yet: fixtures
that need one skip the test then, except for notebook 01, whose absence is an
error.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
import torch
import torch.nn.functional as F

from autograder.cells import find_answers
from autograder.exercises import EX1_LINES, ITEMS_BY_ID, NOTEBOOKS, notebook
from autograder.judge.verdict import Verdict, judge_item
from autograder.workbook import model
from autograder.workbook.data import BLOCK_SIZE, VOCAB_SIZE

# The tensors here are tiny: threads gain nothing, and OpenMP threads that spin
# on cores shared with other work (a notebook training next door) make every
# matmul ~100x slower. The graders' judge processes run single-threaded too.
torch.set_num_threads(1)

REPO = Path(__file__).resolve().parent.parent
SOLUTIONS = REPO / "solutions"


# ---------------------------------------------------------------- notebooks


@pytest.fixture(scope="session")
def master_notebooks() -> dict:
    """{notebook id: NotebookNode} for every master that exists (01 must)."""
    found = {path.stem: nbformat.read(path, as_version=4) for path in sorted(SOLUTIONS.glob("*.ipynb"))}
    assert notebook(1) in found, f"the master {SOLUTIONS / notebook(1)}.ipynb is missing"
    return found


@pytest.fixture
def master_of(master_notebooks):
    """``master_of(notebook)``: that master, or a skip when it is not written yet (never for 01)."""

    def get(notebook_id: str):
        if notebook_id not in master_notebooks:
            if notebook_id == notebook(1):
                pytest.fail(f"solutions/{notebook_id}.ipynb is missing")
            pytest.skip(f"solutions/{notebook_id}.ipynb is not written yet")
        return master_notebooks[notebook_id]

    return get


@pytest.fixture(scope="session")
def needed_notebooks(request) -> tuple[str, ...]:
    """The notebooks the selected tests ask about (parameter ``notebook``), so that ``-m ex2`` runs one."""
    wanted = set()
    for item in request.session.items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        if "needed_notebooks" in getattr(item, "fixturenames", ()):
            # Executing the workbook takes minutes: such a test belongs to the slow tier, not make test-fast.
            assert item.get_closest_marker("slow"), f"{item.nodeid} runs notebooks: mark it @pytest.mark.slow"
            wanted.add(params.get("notebook", notebook(1)))  # the tests of notebook 01's graph name none
    return tuple(nb for nb in NOTEBOOKS if nb in wanted)


def code_sources(nb) -> list[str]:
    return [cell.source for cell in nb.cells if cell.cell_type == "code"]


@pytest.fixture(scope="session")
def master_answers(master_notebooks) -> dict[str, str]:
    """{answer id: source} of every ``#| answer:`` cell in every master notebook."""
    answers: dict[str, str] = {}
    for nb in master_notebooks.values():
        found = find_answers(code_sources(nb))
        overlap = set(found) & set(answers)
        assert not overlap, f"answer ids in two masters: {sorted(overlap)}"
        answers.update(found)
    return answers


def require_answers(master_answers: dict, answer_ids) -> None:
    """Skip unless the masters hold every answer cell in ``answer_ids`` (Exercise 1's must exist)."""
    missing = [a for a in answer_ids if a not in master_answers]
    if missing:
        if any(a.startswith("ex1_") for a in missing):
            pytest.fail(f"notebook 01 lacks the answer cells {missing}")
        pytest.skip(f"no master has the answer cell(s) {missing} yet")


@pytest.fixture
def judge_with(master_answers):
    """``judge_with(grade_id, **{answer_id: source})``: judge an item with some answers replaced."""

    def run(grade_id: str, **replacements: str) -> Verdict:
        item = ITEMS_BY_ID[grade_id]
        require_answers(master_answers, [a for a in item.answers if a not in replacements])
        return judge_item(item, {**master_answers, **replacements})

    return run


# ------------------------------------------------------------------ cases

def make_batch(generator: torch.Generator, n: int, block_size: int = BLOCK_SIZE):
    """A random batch of contexts and targets (no data set needed)."""
    Xb = torch.randint(0, VOCAB_SIZE, (n, block_size), generator=generator)
    Yb = torch.randint(0, VOCAB_SIZE, (n,), generator=generator)
    return Xb, Yb


class ChunkedCase:
    """A chunked forward pass run through autograd, on a seed and sizes of one's choice.

    ``ref`` holds autograd's gradient of every intermediate and parameter as
    "d<name>"; ``namespace()`` is what an answer cell sees (the tensors without
    gradients, the sizes, torch and F), plus the given correct gradients.
    """

    def __init__(self, seed: int, n: int, n_hidden: int, n_embd: int = 10):
        self.seed, self.n, self.n_hidden, self.n_embd = seed, n, n_hidden, n_embd
        g = torch.Generator().manual_seed(seed)
        self.parameters = model.init_params(g, n_embd=n_embd, n_hidden=n_hidden)
        self.Xb, self.Yb = make_batch(g, n)
        self.fw = model.chunked_forward(self.parameters, self.Xb, self.Yb)
        self.fw.loss.backward()
        self.ref = {f"d{name}": t.grad for name, t in self.fw.items() if name != "loss"}
        self.ref.update({f"d{name}": p.grad for name, p in zip(model.PARAM_NAMES, self.parameters)})
        self.tensors = {name: t for name, t in self.fw.items()}
        self.tensors.update(zip(model.PARAM_NAMES, self.parameters))

    def namespace(self, provided=()) -> dict:
        ns = {"torch": torch, "F": F, "n": self.n, "batch_size": self.n, "n_hidden": self.n_hidden,
              "n_embd": self.n_embd, "vocab_size": VOCAB_SIZE, "block_size": BLOCK_SIZE,
              "Xb": self.Xb, "Yb": self.Yb, "parameters": [p.detach() for p in self.parameters]}
        ns.update({name: t.detach() for name, t in self.tensors.items()})
        ns.update({name: self.ref[name].clone() for name in provided})
        return ns

    def describe(self) -> str:
        return f"seed {self.seed}, batch {self.n}, n_hidden {self.n_hidden}, n_embd {self.n_embd}"


@pytest.fixture(scope="session")
def chunked_case():
    """``chunked_case(seed, n, n_hidden, n_embd=10)`` -> ChunkedCase."""
    return ChunkedCase


@pytest.fixture(scope="session")
def run_master_ex1(master_answers):
    """``run_master_ex1(case)``: the master's Exercise 1 answer cells run in order on a ChunkedCase.

    Returns the namespace, which then holds every d<name> the answers assign.
    """
    require_answers(master_answers, [line.answer_id for line in EX1_LINES])

    def run(case: ChunkedCase) -> dict:
        ns = case.namespace()
        for line in EX1_LINES:
            exec(compile(master_answers[line.answer_id], f"<master {line.answer_id}>", "exec"), ns)
        return ns

    return run


# ------------------------------------------------------- Exercise 4 backward

MISTAKES = ("dC one-liner", "dbngain sign")


def reference_manual_backward(parameters, fw, Xb, Yb, mistake: str | None = None):
    """A correct Exercise 4 backward pass (fused cross-entropy and BatchNorm), written for the tests.

    ``mistake`` makes it wrong on purpose: "dC one-liner" uses ``dC[Xb] += demb``
    (which keeps one of the contributions of a repeated index), "dbngain sign"
    flips dbngain.
    """
    assert mistake in (None, *MISTAKES)
    C, W1, b1, W2, b2, bngain, bnbias = parameters
    n = Xb.shape[0]
    dlogits = F.softmax(fw["logits"], 1)
    dlogits[range(n), Yb] -= 1
    dlogits /= n
    dh = dlogits @ W2.T
    dW2 = fw["h"].T @ dlogits
    db2 = dlogits.sum(0)
    dhpreact = (1.0 - fw["h"] ** 2) * dh
    bnraw = fw["bnraw"]
    dbngain = (bnraw * dhpreact).sum(0, keepdim=True)
    dbnbias = dhpreact.sum(0, keepdim=True)
    dhprebn = bngain * fw["bnvar_inv"] / n * (
        n * dhpreact - dhpreact.sum(0) - n / (n - 1) * bnraw * (dhpreact * bnraw).sum(0))
    dembcat = dhprebn @ W1.T
    dW1 = fw["embcat"].T @ dhprebn
    db1 = dhprebn.sum(0)
    demb = dembcat.view(fw["emb"].shape)
    if mistake == "dC one-liner":
        dC = torch.zeros_like(C)
        dC[Xb] += demb
    else:
        dC = torch.zeros_like(C).index_add_(0, Xb.view(-1), demb.view(-1, C.shape[1]))
    if mistake == "dbngain sign":
        dbngain = -dbngain
    return [dC, dW1, db1, dW2, db2, dbngain, dbnbias]


@pytest.fixture(scope="session")
def reference_backward():
    """``reference_backward(parameters, fw, Xb, Yb, mistake=None)``: see reference_manual_backward."""
    return reference_manual_backward


@pytest.fixture(scope="session")
def master_manual_backward(master_answers):
    """The masters' Exercise 4 ``manual_backward``, or None when notebook 04 has no answer yet."""
    source = master_answers.get("ex4_manual_backward")
    if source is None:
        return None
    namespace = {"torch": torch, "F": F}
    exec(compile(source, "<master ex4_manual_backward>", "exec"), namespace)
    return namespace["manual_backward"]


@pytest.fixture(params=["tests", "master"])
def manual_backward(request, master_manual_backward):
    """A correct Exercise 4 backward: the tests' own, and the master's when it exists."""
    if request.param == "tests":
        return reference_manual_backward
    if master_manual_backward is None:
        pytest.skip("no master defines ex4_manual_backward yet")
    return master_manual_backward
