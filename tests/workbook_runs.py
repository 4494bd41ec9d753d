"""The workbook as three students hand it in, each run once through the self-check's machinery.

``tests/test_scoreboard.py`` and ``tests/test_selfcheck.py`` both need the
notebooks executed, which takes seconds per notebook; ``checked(kind)`` gives
one submission's folder run through the self-check's steps (execute a copy of
each notebook, then judge its items), done once per test session for all
kinds together (a process-wide cache, so both test modules share it), with
the executed copies kept. The submissions are made from the student release with
answer cells filled in from the masters (``samples.filled``):

* "blank": the release as it is;
* "partial": some answers right, two with a mistake, the rest left blank
  (see PARTIAL and WRONG);
* "solutions": every answer cell holds the master's solution.

What each item must show follows from the registry: an item is not attempted
when one of its answer cells is blank, failed when one of them holds a
mistake, and passed otherwise. (The partial submission leaves blank every
answer after a mistaken one that would use it, so a mistake cannot spill
into a later item's check.)
"""

from __future__ import annotations

import atexit
import functools
import hashlib
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import nbformat

from autograder.checking import selfcheck
from autograder.exercises import EX1_LINES, EX6_LINES, ITEMS, NOTEBOOKS, Item
from autograder.grading.samples import filled

KINDS = ("blank", "partial", "solutions")
EX4_STEPS = 300

# answer id -> (text in the master's solution, what the student wrote instead)
WRONG = {
    "ex1_line_bnvar_inv": ("(bnvar + 1e-5)**-1.5", "(bnvar - 1e-5)**-1.5"),  # the sign of epsilon
    "ex4_manual_backward": ("dbngain = (", "dbngain = -("),  # dbngain with its sign flipped
    "ex6_line_lnf_var": ("2 / C", "2 / (C - 1)"),  # LayerNorm's variance with Bessel's correction
}
_EX1 = [line.answer_id for line in EX1_LINES]
_EX6 = [line.answer_id for line in EX6_LINES]
PARTIAL = {
    "ex0_grad_o", "ex0_grad_n", "ex0_grad_sum",  # the first three steps of the neuron
    *_EX1[: _EX1.index("ex1_line_bnvar_inv") + 1],  # Exercise 1 down to the line with the slip
    "ex2_dlogits_fused",  # Exercise 2; Exercise 3 left blank
    "ex4_manual_backward",  # with the sign slip
    "ex5_mlp_backward",  # the backward pass, not Adam
    *_EX6[: _EX6.index("ex6_line_lnf_var") + 1],  # notebook 06 down to the final LayerNorm's line with the slip
}


def filled_answers(kind: str) -> set[str]:
    """The answer cells a submission fills in (the rest stay as released)."""
    every = {a for item in ITEMS for a in item.answers}
    return {"blank": set(), "partial": PARTIAL, "solutions": every}[kind]


def expected_status(kind: str, item: Item) -> str:
    """What the scoreboard and the self-check must make of ``item`` in submission ``kind``."""
    if not set(item.answers) <= filled_answers(kind):
        return selfcheck.NOT_ATTEMPTED
    if kind == "partial" and set(item.answers) & set(WRONG):
        return selfcheck.FAILED
    return selfcheck.PASSED


def _edit(kind: str):
    def edit(answer: str, solution: str) -> str | None:
        if answer not in filled_answers(kind):
            return None
        if kind == "partial" and answer in WRONG:
            right, wrong = WRONG[answer]
            assert solution.count(right) == 1, f"{answer}: the master's solution changed, update WRONG"
            return solution.replace(right, wrong)
        return solution

    return edit


def write_submission(kind: str, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in NOTEBOOKS:
        nbformat.write(filled(name, _edit(kind)), folder / f"{name}.ipynb")
    return folder


def digests(folder: Path) -> dict[str, str]:
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in sorted(folder.iterdir())}


@dataclass
class Run:
    kind: str
    folder: Path
    results: list  # selfcheck.NotebookResult, one per notebook
    before: dict[str, str]  # sha256 of every file in the folder before the check
    after: dict[str, str]  # ... and after it

    def result(self, notebook: str):
        return next(r for r in self.results if r.notebook == notebook)


@functools.cache
def _root() -> Path:
    root = Path(tempfile.mkdtemp(prefix="ninja-workbook-runs-"))
    atexit.register(shutil.rmtree, root, True)
    return root


def checked(kind: str, notebooks: tuple[str, ...] = NOTEBOOKS) -> Run:
    """Submission ``kind`` written to a folder and checked with the self-check's machinery.

    Only ``notebooks`` are run (``make test EX=2`` needs one); the folder
    holds them all. The first call runs every kind at once (see ``_check_all``).
    """
    return _check_all(notebooks)[kind]


@functools.cache
def _check_all(notebooks: tuple[str, ...]) -> dict[str, Run]:
    """Every kind's notebooks executed two at a time, then judged: ``check_folder``'s steps, better packed."""
    folders = {kind: write_submission(kind, _root() / kind / "-".join(nb[:2] for nb in notebooks)) for kind in KINDS}
    before = {kind: digests(folder) for kind, folder in folders.items()}
    paths = [(kind, folders[kind] / f"{nb}.ipynb") for kind in KINDS for nb in notebooks]
    with ThreadPoolExecutor(max_workers=selfcheck.JOBS) as pool:
        executed = list(pool.map(lambda job: selfcheck.run_notebook(job[1], 300, EX4_STEPS), paths))
    results = {kind: [] for kind in KINDS}
    for (kind, _), result in zip(paths, executed):
        results[kind].append(selfcheck.judge_run(result))
    return {kind: Run(kind, folders[kind], results[kind], before[kind], digests(folders[kind])) for kind in KINDS}
