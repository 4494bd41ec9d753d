"""``backprop-ninja check``: a student's self-check before submitting (``make check`` in a checkout).

``python -m autograder check [FOLDER]`` (FOLDER defaults to ``notebooks``)
runs every notebook of the workbook found in FOLDER and prints, per notebook,
how many graded items pass, and for each failing item why: the lines its test
cell printed (``cmp``'s report with its ``->`` hints) and the verdict of the
hidden check on unseen inputs.

* Each notebook runs on a **copy**, in a temporary folder, with nbclient and
  a time limit per notebook; the student's files are only read. Exercise 4
  trains for ``NINJA_EX4_STEPS`` = 300 steps and notebook 06 for
  ``NINJA_EX6_STEPS`` = 100 (the graded checks do not depend on the length of
  the run).
* The hidden checks are public (``autograder.judge.verdict``), so they run here too,
  in this process: ``judge_item`` on the answer cells of the notebook as
  saved. That is the student's own code on the student's own machine, which
  is why no sandbox is needed; a time limit still guards against an answer
  that never returns.
* An item **passes** when its test cell runs without an error and without
  writing to stderr (nbgrader fails such a cell) *and* its hidden check
  passes, which is what grading asks. It is **not attempted** while one of its
  answer cells still holds the released stub.

The exit status is 0 whenever the notebooks could be run, whatever their
results (it is a report); 1 when they could not (no such folder, a notebook
missing or unreadable, a kernel that would not start).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from ..exercises import NOTEBOOKS, Item, items_of
from ..workbook.training import EX4_STEPS_ENV
from ..workbook.transformer_training import STEPS_ENV as EX6_STEPS_ENV

DEFAULT_FOLDER = Path("notebooks")
NOTEBOOK_SECONDS = 300.0  # per notebook, in its kernel
EX4_STEPS = 300
EX6_STEPS = 100
JUDGE_SECONDS = 60.0  # per item, for the hidden check of its answer cells
JOBS = min(2, os.cpu_count() or 1)  # notebooks run at once
MAX_LINES = 12  # of a test cell's output, per failing item
PASSED, FAILED, NOT_ATTEMPTED = "passed", "failed", "not attempted"


@dataclass
class ItemResult:
    """One graded item: what its test cell showed and what the hidden check said."""

    item: Item
    status: str  # PASSED, FAILED or NOT_ATTEMPTED
    visible: bool | None = None  # the test cell passed; None when it did not run or is missing
    shown: list[str] = field(default_factory=list)  # what the test cell printed that explains a failure
    hidden: bool | None = None  # the hidden check passed; None when it was not run
    hidden_message: str = ""


@dataclass
class NotebookResult:
    """One notebook: every item, or why it could not be checked."""

    notebook: str
    items: list[ItemResult] = field(default_factory=list)
    problem: str = ""  # set when the notebook could not be run at all
    note: str = ""  # e.g. it ran out of time part way
    executed: nbformat.NotebookNode | None = None  # the executed copy, outputs and all
    original: nbformat.NotebookNode | None = None  # the notebook as saved, whose answer cells are judged

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.items)

    @property
    def points(self) -> tuple[int, int]:
        return (sum(r.item.points for r in self.items if r.status == PASSED),
                sum(item.points for item in items_of(self.notebook)))


# ------------------------------------------------------------------ running

def check_folder(folder: Path = DEFAULT_FOLDER, timeout: float = NOTEBOOK_SECONDS, ex4_steps: int = EX4_STEPS,
                 judge_seconds: float = JUDGE_SECONDS, jobs: int = JOBS, only=None) -> list[NotebookResult]:
    """Check every notebook of the workbook in ``folder`` (or the one notebook ``folder`` names).

    ``only`` limits the check to some notebook ids. ``jobs`` notebooks run at
    once, each in its own kernel; the hidden checks then run one after the
    other in this process (they patch torch while they run).
    """
    folder = Path(folder)
    if folder.is_file():
        if folder.stem not in NOTEBOOKS:
            return [NotebookResult(folder.stem, problem=f"{folder.name} is not a notebook of this workbook "
                                                        f"({', '.join(NOTEBOOKS)})")]
        paths = [folder]
    else:
        paths = [folder / f"{nb}.ipynb" for nb in NOTEBOOKS if only is None or nb in only]
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        runs = list(pool.map(lambda path: run_notebook(path, timeout, ex4_steps), paths))
    return [judge_run(run, judge_seconds) for run in runs]


def run_notebook(path: Path, timeout: float = NOTEBOOK_SECONDS, ex4_steps: int = EX4_STEPS) -> NotebookResult:
    """Read ``path`` and execute a copy of it; the items are left to ``judge_run``."""
    notebook = path.stem
    if not path.is_file():
        return NotebookResult(notebook, problem=f"{path} not found")
    try:
        original = nbformat.read(path, as_version=4)
    except Exception as err:  # a cut-off or hand-edited file
        return NotebookResult(notebook, problem=f"{path} could not be read as a notebook ({type(err).__name__}: {err})")
    try:
        executed, note = execute_copy(path, timeout, ex4_steps)
    except Exception as err:
        return NotebookResult(notebook, problem=f"could not run {path.name}: {type(err).__name__}: {err}")
    return NotebookResult(notebook, note=note, executed=executed, original=original)


def judge_run(result: NotebookResult, judge_seconds: float = JUDGE_SECONDS) -> NotebookResult:
    """Fill in the items of an executed notebook: its test cells' outcome and the hidden checks."""
    if result.problem:
        return result
    from ..cells import find_answers

    answers = find_answers([c.source for c in result.original.cells if c.cell_type == "code"])
    result.items = [_judge(item, result.executed, answers, judge_seconds) for item in items_of(result.notebook)]
    return result


def execute_copy(path: Path, timeout: float = NOTEBOOK_SECONDS, ex4_steps: int = EX4_STEPS):
    """Execute a copy of ``path`` in a temporary folder, every cell even after errors.

    Returns (the executed notebook, a note: "" or why it stopped early). The
    notebook as a whole has ``timeout`` seconds; cells it did not reach keep
    no outputs.
    """
    from nbclient import NotebookClient
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    quiet = logging.getLogger("autograder.checking.selfcheck.nbclient")
    quiet.addHandler(logging.NullHandler())
    quiet.propagate = False
    with tempfile.TemporaryDirectory(prefix="ninja-check-") as work:
        copy = Path(work) / path.name
        shutil.copyfile(path, copy)
        nb = nbformat.read(copy, as_version=4)
        client = NotebookClient(nb, timeout=int(timeout), kernel_name="python3", allow_errors=True, log=quiet,
                                resources={"metadata": {"path": work}})
        # One thread per kernel, as when grading: the tensors are small, and threads that spin on cores
        # shared with the other notebook running beside it slow both down.
        threads = {name: "1" for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS") if name not in os.environ}
        env = {**os.environ, **threads, EX4_STEPS_ENV: str(ex4_steps), EX6_STEPS_ENV: str(EX6_STEPS),
               "PYTHONWARNINGS": "ignore"}
        deadline, note = time.monotonic() + timeout, ""
        with client.setup_kernel(env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL):
            for index, cell in enumerate(nb.cells):
                if cell.cell_type != "code":
                    continue
                remaining = deadline - time.monotonic()
                if remaining < 1:
                    note = f"stopped: the notebook took longer than {timeout:g} s, the cells after {_cell_name(cell, index)} did not run"
                    break
                client.timeout = int(remaining)
                try:
                    client.execute_cell(cell, index)
                except CellTimeoutError:
                    note = f"stopped: the notebook took longer than {timeout:g} s (in {_cell_name(cell, index)})"
                    break
                except DeadKernelError:
                    note = f"stopped: the kernel died in {_cell_name(cell, index)}"
                    break
        return nb, note


def _cell_name(cell, index: int) -> str:
    grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
    return f"cell {grade_id}" if grade_id else f"cell {index + 1}"


def _judge(item: Item, executed, answers: dict[str, str], judge_seconds: float) -> ItemResult:
    from .scoreboard import unwritten

    if unwritten(item, answers):
        return ItemResult(item, NOT_ATTEMPTED)
    visible, shown = visible_result(executed, item.grade_id)
    verdict = hidden_verdict(item, answers, judge_seconds)
    status = PASSED if visible and verdict.passed else FAILED
    return ItemResult(item, status, visible, shown, verdict.passed, verdict.message)


def visible_result(executed, grade_id: str) -> tuple[bool | None, list[str]]:
    """(did the test cell pass, the lines of its output that explain a failure)."""
    cells = [c for c in executed.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id]
    if not cells:
        return None, ["its test cell is missing from the notebook"]
    cell = cells[0]
    if cell.get("execution_count") is None and not cell.get("outputs"):
        return None, ["its test cell did not run"]
    outputs = cell.get("outputs", [])
    printed = "".join(o.get("text", "") for o in outputs if o.output_type == "stream" and o.get("name") == "stdout")
    errors = [o for o in outputs if o.output_type == "error"]
    stderr = "".join(o.get("text", "") for o in outputs if o.output_type == "stream" and o.get("name") == "stderr")
    if not errors and not stderr:
        return True, []
    shown = explaining_lines(printed)
    for error in errors:
        # a failed `assert cmp(...)` repeats the reason its check printed above
        if error.ename == "AssertionError" and (not error.evalue or error.evalue.split(": ", 1)[-1] in printed):
            shown.append("the check's assert failed")
        else:
            shown.append(f"{error.ename}: {error.evalue}".rstrip(": "))
    if stderr:
        shown.append(f"wrote to stderr, which nbgrader counts as a failed test: {stderr.strip().splitlines()[0]}")
    return False, shown


def explaining_lines(printed: str) -> list[str]:
    """What a failing test cell printed, without the lines of the checks that passed.

    ``cmp``-style output comes in blocks: a report line, then its ``->``
    notes. Blocks whose report says ``approximate: True`` are dropped.
    """
    blocks: list[list[str]] = []
    for line in printed.splitlines():
        if line.lstrip().startswith("->") and blocks:
            blocks[-1].append(line)
        elif line.strip():
            blocks.append([line])
    return capped([line for block in blocks if "approximate: True" not in block[0] for line in block])


def capped(lines: list[str], limit: int = MAX_LINES) -> list[str]:
    """At most ``limit`` lines, the last saying how many more there were."""
    if len(lines) <= limit:
        return lines
    return lines[: limit - 1] + [f"... ({len(lines) - limit + 1} more lines)"]


class _OutOfTime(BaseException):
    """Raised by the timer; not an Exception, so that the judge cannot take it for the answer's own error."""


def hidden_verdict(item: Item, answers: dict[str, str], seconds: float):
    """``judge_item`` in this process, quietly, with a time limit where signals allow one."""
    from ..judge.verdict import Verdict, judge_item

    def expire(signum, frame):
        raise _OutOfTime(f"took longer than {seconds:g} s")

    timed = threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer")
    previous = signal.signal(signal.SIGALRM, expire) if timed else None
    try:
        if timed:
            signal.setitimer(signal.ITIMER_REAL, seconds)
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return judge_item(item, answers)
    except _OutOfTime as err:
        return Verdict(item.grade_id, False, f"the hidden check {err}")
    finally:
        if timed:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)


# ------------------------------------------------------------------ reporting

def report(results: list[NotebookResult], source: Path, ex4_steps: int = EX4_STEPS) -> str:
    """The text ``backprop-ninja check`` prints."""
    lines = [f"backprop-ninja check: each notebook in {source} runs on a copy ({EX4_STEPS_ENV}={ex4_steps}, "
             f"{EX6_STEPS_ENV}={EX6_STEPS}); your files are not changed.", ""]
    width = max(len(r.notebook) for r in results) if results else 0
    for result in results:
        if result.problem:
            lines.append(f"{result.notebook:{width}s}  could not be checked: {result.problem}")
            continue
        total = len(result.items)
        earned, points = result.points
        counts = [f"{result.count(s)} {s}" for s in (FAILED, NOT_ATTEMPTED) if result.count(s)]
        lines.append(f"{result.notebook:{width}s}  {result.count(PASSED):2d} / {total:2d} passed   "
                     f"{earned} of {points} points" + "".join(f" · {c}" for c in counts))
        if result.note:
            lines.append(f"  {result.note}")
        for r in result.items:
            if r.status == FAILED:
                lines += _failure(r)
        waiting = [r.item.grade_id for r in result.items if r.status == NOT_ATTEMPTED]
        if waiting:
            lines.append(f"  not attempted: {', '.join(waiting)}")
    checked = [r for r in results if not r.problem]
    passed = sum(r.count(PASSED) for r in checked)
    items = sum(len(r.items) for r in checked)
    earned = sum(r.points[0] for r in checked)
    points = sum(r.points[1] for r in checked)
    lines += ["", f"in all: {passed} / {items} items passed, {earned} of {points} points"
                  + (f"; {len(results) - len(checked)} notebook(s) could not be checked" if len(checked) < len(results) else "")]
    return "\n".join(lines)


def _failure(result: ItemResult) -> list[str]:
    lines = [f"  ❌ {result.item.grade_id}"]
    if result.visible is True:
        lines.append("       in the notebook: passes")
    else:
        lines.append("       in the notebook: " + ("fails" if result.visible is False else "not checked"))
        lines += [f"         {line}" for line in result.shown]
    if result.hidden is True:
        lines.append("       on unseen inputs: passes")
    elif result.hidden is False:
        message = result.hidden_message.splitlines() or [""]
        lines.append(f"       on unseen inputs: fails: {message[0]}")
        lines += [f"         {line}" for line in capped(message[1:])]
    return lines


def main(folder: Path = DEFAULT_FOLDER, timeout: float = NOTEBOOK_SECONDS, ex4_steps: int = EX4_STEPS,
         out=None, jobs: int = JOBS) -> int:
    """Check ``folder``, print the report; 0 when every notebook could be run, else 1."""
    out = out or sys.stdout
    folder = Path(folder)
    if not folder.exists():
        print(f"backprop-ninja check: {folder} does not exist", file=out)
        return 1
    results = check_folder(folder, timeout, ex4_steps, jobs=jobs)
    print(report(results, folder, ex4_steps), file=out, flush=True)
    return 1 if any(r.problem for r in results) else 0
