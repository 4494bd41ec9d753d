"""Submissions for the end-to-end grading tests, each with the outcome it deserves.

A ``Case`` writes one student's folder and says what grading must make of it:
which answer cells count as wrong (every item built from one of them scores 0,
every other item scores its points, all read from the registry), which items
are flagged and why, and what the student must be told. Submissions are made
from the student release with answer cells filled in from the masters
(``autograder.grading.samples``), so they look like real work.

Nothing here runs student code; ``tests/test_grading.py`` grades the folders.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from autograder.exercises import ITEMS, NOTEBOOKS, answer_ids
from autograder.grading.course import SOLUTIONS
from autograder.grading.release import INSTALL_ID
from autograder.grading.samples import filled, master_solutions

SOLUTION = object()  # an answer cell filled with the master's solution
BLANK = None  # an answer cell left as released


def notebook_of(answer_id: str) -> str:
    return next(nb for nb in NOTEBOOKS if answer_id in answer_ids(nb))


def every_answer() -> set[str]:
    return {answer for nb in NOTEBOOKS for answer in answer_ids(nb)}


# ------------------------------------------------------------------ expectations

@dataclass
class Case:
    """One student: how to write their folder and what grading must make of it."""

    key: str  # how the tests refer to the case
    student: str  # the folder name, i.e. the student id
    write: Callable[[Path], None]  # writes the student's notebooks into the folder it is given
    wrong: set[str] = field(default_factory=set)  # answer ids whose items must score 0
    # notebooks that could not be used (unreadable, missing): every item scores 0, and no feedback page
    lost_notebooks: set[str] = field(default_factory=set)
    flagged: dict[str, str] = field(default_factory=dict)  # answer id -> part of the flag's reason
    messages: dict[str, str] = field(default_factory=dict)  # grade id -> part of the verdict message
    notes: tuple[str, ...] = ()  # parts of the notes on the submission (report.json)
    html: dict[str, tuple[str, ...]] = field(default_factory=dict)  # notebook -> parts of its feedback HTML

    def scores(self) -> dict[str, float]:
        """grade id -> the score this student deserves, from the registry."""
        return {item.grade_id: 0.0 if self.loses(item) else float(item.points) for item in ITEMS}

    def loses(self, item) -> bool:
        return item.notebook in self.lost_notebooks or any(a in self.wrong for a in item.answers)

    def total(self) -> float:
        return sum(self.scores().values())

    def flagged_items(self) -> dict[str, list[str]]:
        """grade id -> the reasons (parts of) it must be flagged with."""
        found: dict[str, list[str]] = {}
        for item in ITEMS:
            for answer in item.answers:
                if answer in self.flagged:
                    found.setdefault(item.grade_id, []).append(self.flagged[answer])
        return found


def items_using(answer_id: str) -> list[str]:
    return [item.grade_id for item in ITEMS if answer_id in item.answers]


# --------------------------------------------------------------- writing notebooks

def submission(answers: dict[str, object] | None = None, default=SOLUTION) -> dict[str, nbformat.NotebookNode]:
    """{notebook id: notebook} with each answer cell as ``answers`` says (else ``default``).

    A value is SOLUTION (the master's code), BLANK (the release's stub) or code
    to hand in.
    """
    answers = answers or {}
    solutions = master_solutions()

    def edit(answer_id: str, solution: str):
        choice = answers.get(answer_id, default)
        if choice is SOLUTION:
            return solution
        return choice

    unknown = set(answers) - set(solutions)
    assert not unknown, f"no master has the answer cells {sorted(unknown)}"
    return {notebook: filled(notebook, edit) for notebook in NOTEBOOKS}


def save(folder: Path, notebooks: dict[str, nbformat.NotebookNode]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, nb in notebooks.items():
        nbformat.write(nb, folder / f"{name}.ipynb")


def grade_id(cell) -> str | None:
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")


def position(nb, cell_id: str) -> int:
    return next(i for i, cell in enumerate(nb.cells) if grade_id(cell) == cell_id)


def add_cell(nb, source: str, after: str) -> None:
    """A student's own code cell right after the cell ``after`` (a grade id)."""
    nb.cells.insert(position(nb, after) + 1, nbformat.v4.new_code_cell(source))


def setup_cell(notebook: str) -> str:
    """The grade id of a notebook's imports: its first code cell after the install cell."""
    nb = filled(notebook, lambda answer, solution: None)
    return next(grade_id(c) for c in nb.cells if c.cell_type == "code" and grade_id(c) != INSTALL_ID)


def graded_cell_of(answer_id: str) -> str:
    """The first test cell that checks ``answer_id``."""
    return items_using(answer_id)[0]


def ex(number: int) -> str:
    """The notebook id of exercise ``number`` ("01_atomic_backprop" for 1)."""
    return next(nb for nb in NOTEBOOKS if int(nb.split("_")[0]) == number)


# ------------------------------------------------------------------------ cases

# Exercise 1's answer cells used below, by the line of the forward pass they differentiate.
EX1 = {name: f"ex1_line_{name}" for name in ("loss", "logprobs", "probs", "counts_sum_inv", "counts", "h",
                                            "bnvar_inv", "bnvar", "bndiff2", "emb")}
EX2, EX3, EX4 = "ex2_dlogits_fused", "ex3_dhprebn_fused", "ex4_manual_backward"

INFINITE_LOOP = "while True:  # never ends\n    pass\n"
KILL_KERNEL = "import os\nos._exit(1)  # the kernel dies here\n"

# A student who hands in their own copy of a gradient autograd computed, in each
# of the ways the issue lists, one way per answer cell; everything else is correct.
CHEATS = {
    EX1["loss"]: ("dlogprobs = logprobs.grad.clone()\n", "reads a .grad tensor"),
    EX1["logprobs"]: ("loss.backward(retain_graph=True)\ndprobs = (1.0 / probs) * dlogprobs\n", "backward()"),
    EX1["counts_sum_inv"]: ("dcounts_sum = torch.autograd.grad(loss, counts_sum, retain_graph=True)[0]\n",
                            "torch.autograd"),
    EX1["counts"]: ("dnorm_logits = torch.func.vjp(torch.exp, norm_logits)[1](dcounts)[0]\n", "torch.func"),
    EX1["h"]: ("hpreact.requires_grad_()\ndhpreact = (1.0 - h**2) * dh\n", "requires_grad_"),
    EX1["bnvar"]: ("bnvar.retain_grad()\ndbndiff2 = (1.0 / (n - 1)) * torch.ones_like(bndiff2) * dbnvar\n",
                   "retain_grad"),
    # numbers copied from the printout of autograd's gradient
    EX1["bnvar_inv"]: ("dbnvar = torch.tensor([[0.0023841, -0.0017362, 0.0008812, -0.0031977, 0.0012650]])\n",
                       "hard-coded"),
    EX3: ("from functorch import vjp\n"
          "dhprebn = vjp(lambda x: x, hprebn)[1](dhpreact)[0]\n", "functorch"),
    EX4: ("for p in parameters:\n    p.grad = None\nfw.loss.backward()\n"
          "dC, dW1, db1, dW2, db2, dbngain, dbnbias = [p.grad for p in parameters]\n", "backward()"),
}

# An IPython input transformer: every cell run after this one becomes `pass`,
# so every test cell "passes" in the kernel.
EVERYTHING_PASSES = """\
def _everything_passes(lines):
    return ["pass\\n"]

get_ipython().input_transformers_cleanup.append(_everything_passes)
"""

# The checker and torch made to agree with anything, in the kernel.
MONKEYPATCH = """\
import torch
import autograder
import autograder.checking.checks
import autograder.judge.verdict

def _always(*args, **kwargs):
    return True

cmp = autograder.cmp = autograder.checking.checks.cmp = _always
autograder.diagnosis.comparison.compare = autograder.checking.checks.compare = lambda name, got, expected: autograder.diagnosis.comparison.Comparison(name, True, True, 0.0, 1.0, None)
autograder.judge.verdict.hidden_check = _always
torch.allclose = torch.equal = _always
torch.Tensor.__eq__ = lambda self, other: torch.ones((), dtype=torch.bool)
"""


def gradebook_attack(out: Path) -> str:
    """An extra cell that looks for gradebooks (where grading writes, around itself, open files) and rewrites them."""
    return f"""\
import glob, os, sqlite3
targets = {{{str(out / 'gradebook.db')!r}}}
here = os.getcwd()
for _ in range(8):
    for pattern in ("gradebook.db", "*/gradebook.db", "*/*/gradebook.db"):
        targets.update(glob.glob(os.path.join(here, pattern)))
    here = os.path.dirname(here)
for fd in os.listdir("/proc/self/fd"):
    try:
        if os.readlink(f"/proc/self/fd/{{fd}}").endswith(".db"):
            targets.add(f"/proc/self/fd/{{fd}}")
    except OSError:
        pass
report = []
for target in sorted(targets):
    try:
        db = sqlite3.connect(target)
        db.execute("UPDATE grade SET auto_score = 1000, manual_score = 1000")
        db.commit()
        report.append(f"{{target}}: rewrote {{db.total_changes}} grades")
    except Exception as err:
        report.append(f"{{target}}: {{type(err).__name__}}")
try:
    with open({str(out / 'intruder_was_here')!r}, "w") as marker:
        marker.write("gotcha")
    report.append("marker written")
except OSError as err:
    report.append(f"marker: {{type(err).__name__}}")
print("GRADEBOOK ATTACK", report)
"""


def masters_attack(repo: Path) -> str:
    """An extra cell that looks for the master notebooks and runs their solution cells in the kernel."""
    return f"""\
import glob, json, os
import autograder
roots = {{os.path.dirname(os.path.dirname(os.path.abspath(autograder.__file__))), {str(repo)!r}}}
masters = []
for root in roots:
    masters += glob.glob(os.path.join(root, "solutions", "*.ipynb"))
    masters += glob.glob(os.path.join(root, "build", "*", "source", "*", "*.ipynb"))
ran = 0
for path in masters:
    try:
        with open(path) as file:
            cells = json.load(file)["cells"]
    except (OSError, ValueError):
        continue
    for cell in cells:
        source = "".join(cell["source"])
        if cell["cell_type"] == "code" and "BEGIN " + "SOLUTION" in source:
            try:
                exec(source, globals())
                ran += 1
            except Exception:
                pass
print(f"MASTERS FOUND {{len(masters)}} RAN {{ran}}")
"""


def master_reading_answer(repo: Path, notebook: str) -> str:
    """An answer cell that runs the master's solution cells instead of an answer."""
    return (f"import json\nfor cell in json.load(open({str(repo / 'solutions' / notebook)!r} + '.ipynb'))['cells']:\n"
            "    if 'BEGIN ' + 'SOLUTION' in ''.join(cell['source']):\n        exec(''.join(cell['source']))\n")


def _solution(folder: Path) -> None:
    save(folder, submission())


def _blank(folder: Path) -> None:
    save(folder, submission(default=BLANK))


PARTIAL_EX1 = answer_ids(ex(1))[: answer_ids(ex(1)).index(EX1["h"]) + 1]  # Exercise 1 down to the tanh


def _partial(folder: Path) -> None:
    done = {answer: SOLUTION for answer in PARTIAL_EX1 + (EX3,)}
    save(folder, submission(done, default=BLANK))


ONE_MISTAKE = (EX1["bndiff2"], "dbndiff += bndiff * dbndiff2  # forgot the 2 of d(x**2)\n")


def _one_mistake(folder: Path) -> None:
    save(folder, submission(dict([ONE_MISTAKE])))


def _cheater(folder: Path) -> None:
    save(folder, submission({answer: code for answer, (code, _) in CHEATS.items()}))


def _crashes(folder: Path) -> None:
    """Code that never ends, kills its process, exits or raises, in answer cells and in extra cells."""
    solutions = master_solutions()
    notebooks = submission({
        EX1["logprobs"]: solutions[EX1["logprobs"]] + INFINITE_LOOP,  # the kernel hangs here
        EX1["probs"]: solutions[EX1["probs"]] + KILL_KERNEL,  # (never reached in the hung kernel)
        EX2: "raise SystemExit(3)\n",
        EX3: solutions[EX3] + "raise RuntimeError('my own bug')\n",
    })
    add_cell(notebooks[ex(2)], INFINITE_LOOP, after=EX2)  # between the answer and its test cell
    add_cell(notebooks[ex(3)], "raise SystemExit('leaving early')\n", after=setup_cell(ex(3)))
    add_cell(notebooks[ex(4)], KILL_KERNEL, after=setup_cell(ex(4)))  # before a correct answer
    save(folder, notebooks)


# Answer cells (with correct code) whose nbgrader grade id, or whose `#| answer:` line, the student changed.
TAMPERED_ID_ANSWER, TAMPERED_DIRECTIVE_ANSWER = EX1["counts"], EX1["h"]


def _tampering(folder: Path) -> None:
    notebooks = submission({EX1["loss"]: BLANK, EX1["logprobs"]: BLANK})
    one = notebooks[ex(1)]
    one.cells[position(one, graded_cell_of(EX1["loss"]))].source = "pass  # edited: nothing to check"
    del one.cells[position(one, graded_cell_of(EX1["logprobs"]))]
    one.cells[position(one, TAMPERED_ID_ANSWER)].metadata["nbgrader"]["grade_id"] = "my_cell"
    answer = one.cells[position(one, TAMPERED_DIRECTIVE_ANSWER)]
    answer.source = answer.source.replace(f"#| answer: {TAMPERED_DIRECTIVE_ANSWER}", f"#| answer: {EX1['loss']}")
    two = notebooks[ex(2)]
    test = two.cells[position(two, graded_cell_of(EX2))]
    for copy in range(2):  # pasted twice (a pasted cell gets a new cell id)
        pasted = nbformat.from_dict(json.loads(json.dumps(test)))
        pasted["id"] = f"pasted-{copy}"
        two.cells.insert(position(two, graded_cell_of(EX2)) + 1, pasted)
    three = notebooks[ex(3)]
    test = three.cells[position(three, graded_cell_of(EX3))]
    test.metadata["nbgrader"]["grade_id"] = "ex3_my_own_check"
    test.metadata["nbgrader"]["points"] = 100
    four = notebooks[ex(4)]
    for grade in items_using(EX4):
        test = four.cells[position(four, grade)]
        test.source = "assert True"
        test.metadata["nbgrader"]["points"] = 1000
    save(folder, notebooks)


def _intruder(out: Path, repo: Path) -> Callable[[Path], None]:
    """Blank notebooks 01 and 03 dressed up by tricks, notebook 02 a link to its master, notebook 04 correct."""
    def write(folder: Path) -> None:
        blank_ex1 = {answer: BLANK for answer in answer_ids(ex(1))}
        notebooks = submission(blank_ex1 | {EX1["loss"]: master_reading_answer(repo, ex(1)),
                                            EX3: "dhprebn = torch.zeros_like(hprebn)\n"})
        for extra in (EVERYTHING_PASSES, masters_attack(repo), gradebook_attack(out)):  # in the reverse order
            add_cell(notebooks[ex(1)], extra, after=setup_cell(ex(1)))
        add_cell(notebooks[ex(3)], MONKEYPATCH, after=setup_cell(ex(3)))
        del notebooks[ex(2)]
        save(folder, notebooks)
        # notebook 02 handed in as a link to the master, which holds the solution
        os.symlink(SOLUTIONS / f"{ex(2)}.ipynb", folder / f"{ex(2)}.ipynb")
    return write


# What a student's notebook claims under every test cell, though every answer is blank.
FORGED_OUTPUT = "logits          | exact: True  | approximate: True  | maxdiff: 0.0e+00 (trust me)"


def _forged(folder: Path) -> None:
    """Blank answers, test cells whose saved outputs claim a pass, and points written into their metadata."""
    notebooks = submission(default=BLANK)
    for nb in notebooks.values():
        for cell in nb.cells:
            if cell.cell_type == "code" and cell.get("metadata", {}).get("nbgrader", {}).get("grade"):
                cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=FORGED_OUTPUT + "\n")]
                cell.metadata["nbgrader"]["points"] = 50
    save(folder, notebooks)


RENAMED = f"{ex(3)}-Copy1.ipynb"


def _broken_files(folder: Path) -> None:
    notebooks = submission()
    save(folder, {name: nb for name, nb in notebooks.items() if name != ex(2)})  # 02 is missing
    broken = folder / f"{ex(1)}.ipynb"
    broken.write_text(broken.read_text()[:4000])  # cut off mid-file, as by a failed upload
    (folder / f"{ex(3)}.ipynb").rename(folder / RENAMED)
    (folder / "notes.txt").write_text("my notes\n")
    (folder / "helper.py").write_text("def helper():\n    return 1\n")
    (folder / ".ipynb_checkpoints").mkdir()
    shutil.copy(folder / f"{ex(4)}.ipynb", folder / ".ipynb_checkpoints" / f"{ex(4)}-checkpoint.ipynb")


def _empty(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)


def cases(out: Path, repo: Path) -> dict[str, Case]:
    """The batch graded once for the grading tests (``out`` is where it is graded)."""
    all_answers = every_answer()
    ex1_graded = set(answer_ids(ex(1)))
    found = [
        Case("solution", "solution", _solution),
        Case("blank", "blank", _blank, wrong=all_answers, messages={graded_cell_of(EX2): "not answered yet"}),
        # a student id with glob characters
        Case("partial", "a[1]*", _partial, wrong=all_answers - set(PARTIAL_EX1) - {EX3}),
        # a student id with a leading '=', spaces and non-ASCII letters
        Case("one_mistake", "=one mistake ünï 名", _one_mistake, wrong={ONE_MISTAKE[0]},
             messages={graded_cell_of(ONE_MISTAKE[0]): "values differ"}),
        Case("cheater", "cheater", _cheater, wrong=set(CHEATS),
             flagged={answer: reason for answer, (_, reason) in CHEATS.items()}),
        # the answer that calls os._exit is also flagged: an answer has no use for os
        Case("crashes", "crashes", _crashes, wrong={EX1["logprobs"], EX1["probs"], EX2, EX3},
             flagged={EX1["probs"]: "imports os"},
             messages={graded_cell_of(EX1["logprobs"]): "took longer than", graded_cell_of(EX2): "SystemExit",
                       graded_cell_of(EX3): "RuntimeError: my own bug"},
             html={ex(1): ("took longer than",), ex(2): ("SystemExit",), ex(3): ("my own bug",)}),
        Case("tampering", "tampering", _tampering, wrong={EX1["loss"], EX1["logprobs"]},
             notes=(f"test cell {graded_cell_of(EX1['loss'])} differs from the release",
                    f"test cell {graded_cell_of(EX1['logprobs'])} is missing",
                    f"test cell {graded_cell_of(EX2)} appears 3 times", "unknown id 'ex3_my_own_check'",
                    f"test cell {graded_cell_of(EX3)} is missing", f"test cell {graded_cell_of(EX4)} differs",
                    f"answer cell {TAMPERED_ID_ANSWER} carried the id 'my_cell'",
                    f"answer cell {TAMPERED_DIRECTIVE_ANSWER} named {EX1['loss']}")),
        Case("intruder", "intruder", _intruder(out, repo), wrong=ex1_graded | {EX3}, lost_notebooks={ex(2)},
             flagged={EX1["loss"]: "open"}, notes=(f"{ex(2)}.ipynb is a link",),
             messages={graded_cell_of(EX1["logprobs"]): "not answered yet", graded_cell_of(EX3): "values differ"}),
        Case("forged", "forged", _forged, wrong=all_answers),
        Case("broken_files", "broken_files", _broken_files, lost_notebooks={ex(1), ex(2)},
             notes=(f"{ex(1)}.ipynb could not be read as a notebook (it is not valid JSON", f"{ex(2)}.ipynb is missing",
                    f"{RENAMED} was graded as {ex(3)}.ipynb", "notes.txt", "helper.py", ".ipynb_checkpoints/")),
        Case("empty", "empty", _empty, lost_notebooks=set(NOTEBOOKS), notes=("the submission folder is empty",)),
    ]
    return {case.key: case for case in found}


def write_all(submissions: Path, batch: dict[str, Case]) -> None:
    for case in batch.values():
        case.write(submissions / case.student)
