"""Sample submissions for the demo and the end-to-end tests, with the score each deserves.

Every sample is made from the student release (``notebooks/``) with answer
cells filled in from the masters, so it looks like real work: no solution
markers, no outputs. The expected scores are derived from the registry, not
typed in.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Callable
from pathlib import Path

import nbformat

from .. import exercises
from ..cells import ANSWER_DIRECTIVE, STUB
from ..exercises import ITEMS, NOTEBOOKS, answer_ids, notebook
from ..kinds import kind_of
from .course import RELEASE_DIR, SOLUTIONS

SOLUTION_REGION = re.compile(r"^([ \t]*)### BEGIN SOLUTION\n(.*?)^[ \t]*### END SOLUTION\n?", re.M | re.S)
Edit = Callable[[str, str], str]  # (answer id, the master's solution code) -> code to hand in


def master_solutions() -> dict[str, str]:
    """answer id -> the code inside its solution region in the masters."""
    solutions = {}
    for path in sorted(SOLUTIONS.glob("*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            match = ANSWER_DIRECTIVE.search(cell.source) if cell.cell_type == "code" else None
            region = SOLUTION_REGION.search(cell.source) if match else None
            if region:
                solutions[match.group(1)] = textwrap.dedent(region.group(2))
    return solutions


def filled(notebook: str, edit: Edit, release_dir: Path = RELEASE_DIR) -> nbformat.NotebookNode:
    """The notebook of ``release_dir`` with each answer stub replaced by ``edit(answer id, solution)``."""
    nb = nbformat.read(release_dir / f"{notebook}.ipynb", as_version=4)
    solutions = master_solutions()
    for cell in nb.cells:
        match = ANSWER_DIRECTIVE.search(cell.source) if cell.cell_type == "code" else None
        if match and match.group(1) in solutions:
            code = edit(match.group(1), solutions[match.group(1)])
            if code is not None:
                cell.source = STUB.sub(lambda m, code=code: _indent(code, m.group(1)), cell.source, count=1)
    return nb


def _indent(code: str, prefix: str) -> str:
    return "".join(prefix + line if line.strip() else line for line in code.splitlines(True))


def _keep(answer: str, solution: str) -> str:
    return solution


def _write(folder: Path, edit: Edit) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in NOTEBOOKS:
        nbformat.write(filled(name, edit), folder / f"{name}.ipynb")


def points(predicate: Callable[[object], bool]) -> float:
    return float(sum(item.points for item in ITEMS if predicate(item)))


# The partly done student: Exercise 1 up to the bnvar_inv line, with the classic
# sign slip in it, Exercise 2, and notebook 06's Part 1 up to the final
# LayerNorm's variance, whose derivative is divided by C - 1 (Bessel's
# correction, where LayerNorm has none); Exercises 0, 3, 4 and 5 and the rest
# of 06 left blank. Each slip is in the last cell done, as a student stops at a
# check that fails (nbgrader's own autograde, which runs the notebook top to
# bottom, then agrees with the judge's line-by-line verdicts).
EX1, EX6 = notebook(1), notebook(6)
PARTIAL_ANSWERS = set(answer_ids(EX1)[: answer_ids(EX1).index("ex1_line_bnvar_inv") + 1])
PARTIAL_ANSWERS |= {"ex2_dlogits_fused"}
PARTIAL_ANSWERS |= set(answer_ids(EX6)[: answer_ids(EX6).index("ex6_line_lnf_var") + 1])
SIGN_SLIP = ("(bnvar + 1e-5)**-1.5", "(bnvar - 1e-5)**-1.5")
SLIPS = {"ex1_line_bnvar_inv": SIGN_SLIP, "ex6_line_lnf_var": ("2 / C", "2 / (C - 1)")}  # answer id -> (old, new)
HANGING_ANSWER = "ex1_line_logprobs"


def _partial(answer: str, solution: str) -> str | None:
    if answer not in PARTIAL_ANSWERS:
        return None
    return solution.replace(*SLIPS[answer]) if answer in SLIPS else solution


def _copies_grad(answer: str, solution: str) -> str:
    """Every answer cell copies autograd's answer (or torch.optim's) instead of deriving it, as its kind writes it."""
    items = exercises.items_with_answer(answer)
    return kind_of(items[0]).cheating_answer(items[0], answer, solution) if items else solution


def _hangs(answer: str, solution: str) -> str:
    return solution + "while True:  # forgot to stop\n    pass\n" if answer == HANGING_ANSWER else solution


def make_samples(folder: Path) -> dict[str, float]:
    """Write the sample submissions into ``folder``; returns {student id: deserved total}."""
    _write(folder / "full_solution", _keep)
    _write(folder / "blank_release", lambda answer, solution: None)
    _write(folder / "partly_done", _partial)
    _write(folder / "copies_grad", _copies_grad)
    _write(folder / "hangs_in_an_answer", _hangs)
    _write(folder / "corrupted_notebook", _keep)
    broken = folder / "corrupted_notebook" / f"{EX1}.ipynb"
    broken.write_text(broken.read_text()[:5000])  # cut off mid-file, as by a failed upload

    def partial_ok(item) -> bool:  # every answer cell of it written, none with a slip
        return all(a in PARTIAL_ANSWERS and a not in SLIPS for a in item.answers)

    return {
        "full_solution": points(lambda item: True),
        "blank_release": 0.0,
        "partly_done": points(partial_ok),
        "copies_grad": 0.0,
        "hangs_in_an_answer": points(lambda item: HANGING_ANSWER not in item.answers),
        "corrupted_notebook": points(lambda item: item.notebook != EX1),
    }
