"""The markup of the workbook's cells, and the answer cells a kernel has run.

No code is executed here and torch is not imported: this module only reads
text. It is shared by both sides of the grader's trust boundary (see
``autograder.judge.verdict``) and by the release tools.

* An answer cell starts with the directive line ``#| answer: <answer id>``
  (``ANSWER_DIRECTIVE``); the hidden checks find an answer's code by it, in a
  notebook file or in a kernel's input history (``record_cells``).
* A released answer cell holds nbgrader's stub (``STUB``) until the student
  writes the answer.
* A test cell of a master hides its hidden checks between the
  ``HIDDEN_TESTS_BEGIN`` and ``HIDDEN_TESTS_END`` markers, which the release
  strips (``HIDDEN_TESTS_REGION``).
"""

from __future__ import annotations

import re

ANSWER_DIRECTIVE = re.compile(r"^\s*#\|\s*answer:\s*([A-Za-z0-9_]+)\s*$", re.MULTILINE)
# nbgrader's stub: "# YOUR CODE HERE" then "raise NotImplementedError()". The
# comment is optional, so a stub whose comment was deleted still counts as one;
# group 1 is the stub's indentation (to put an answer in its place).
STUB = re.compile(r"^([ \t]*)(?:# YOUR CODE HERE\n[ \t]*)?raise NotImplementedError\b[^\n]*\n?", re.MULTILINE)
HIDDEN_TESTS_BEGIN, HIDDEN_TESTS_END = "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"
HIDDEN_TESTS_REGION = re.compile(rf"^[ \t]*### {HIDDEN_TESTS_BEGIN}.*?^[ \t]*### {HIDDEN_TESTS_END}[^\n]*\n?",
                                 re.MULTILINE | re.DOTALL)
HIDDEN_CHECK_CALL = "hidden_check("  # what a hidden test region calls (autograder.judge.verdict.hidden_check)


def find_answers(cell_sources: list[str]) -> dict[str, str]:
    """Map answer id -> source, from code cells in notebook (or execution) order.

    A later cell with the same directive replaces an earlier one, as it would
    in a kernel that ran them in that order.
    """
    found = {}
    for source in cell_sources:
        match = ANSWER_DIRECTIVE.search(source or "")
        if match:
            found[match.group(1)] = source
    return found


def answer_id_of(source: str) -> str | None:
    """The answer id in a cell's directive line, or None when the cell has none."""
    match = ANSWER_DIRECTIVE.search(source or "")
    return match.group(1) if match else None


def is_stub(source: str) -> bool:
    """Whether an answer cell still holds the released stub."""
    return bool(STUB.search(source))


_recorded_cells: list[str] = []


def record_cells() -> None:
    """Keep the source of every cell this IPython kernel runs, for ``hidden_check``.

    An IPython ``pre_run_cell`` hook sees each cell as it is run, however the
    notebook is executed (JupyterLab, nbclient, nbval).
    """
    from IPython import get_ipython

    shell = get_ipython()
    if shell is not None and _record not in shell.events.callbacks["pre_run_cell"]:
        shell.events.register("pre_run_cell", _record)


def _record(info) -> None:
    _recorded_cells.append(info.raw_cell)


def recorded_answers() -> dict[str, str]:
    """Every answer cell this kernel ran, as last run: answer id -> source."""
    return find_answers(_recorded_cells)


def recorded_answer(answer_id: str) -> str:
    """The source of answer cell ``answer_id`` as this kernel last ran it."""
    source = recorded_answers().get(answer_id)
    if source is None:
        raise LookupError(f"the answer cell '{answer_id}' has not been run in this kernel yet; run it first")
    return source
