"""What the class got wrong: one diagnosis code per failed item and student, counted.

Every failed item of every student gets one code (``classify``):

==========================  ====================================================
``cheating.<flag>``         the answer was not derived (``cheating.grad``: it
                            reads a ``.grad``; the flag names come from the
                            scanner's tables, see ``scan.flag_code``)
``not_attempted``           left as released (still ``NotImplementedError``),
                            or the notebook was not handed in
``timeout``                 the answer ran past its time limit
``budget_spent``            not judged: the submission used up its time budget
``error.<ExceptionType>``   the answer raised (``error.RuntimeError``); a
                            process that vanished (``os._exit``, a crash) is
                            ``error.ProcessDied``, one out of memory
                            ``error.MemoryError``, the grader's own failure
                            ``error.GradingFailed``, a notebook that could not
                            be read ``error.UnreadableNotebook``
``<diagnosis code>``        the answer ran and its value was wrong: the code the
                            hidden check's comparison carries as ``diagnosis``
                            (``shape.missing_dim``, ``sign``, ... see
                            ``autograder.diagnosis.codes``)
``unknown``                 wrong, and no code says why
==========================  ====================================================

``mistake_rows`` counts the codes per item over a class; ``OUT/mistakes.csv``
holds one row per (item, code) that at least one student has. Items that
passed never appear.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ..exercises import EX1_LINES, EX6_LINES, ITEMS, ITEMS_BY_ID
from ..judge.records import Verdict
from ..judge.scan import flag_code
from .csv_cells import safe_writer

MISTAKES_CSV = "mistakes.csv"
NOT_ATTEMPTED = "not_attempted"
TIMEOUT = "timeout"
BUDGET_SPENT = "budget_spent"
UNKNOWN = "unknown"
CHEATING = "cheating."
ERROR = "error."
GRADING_FAILED = "error.GradingFailed"
UNREADABLE_NOTEBOOK = "error.UnreadableNotebook"

# The hidden check's own words for an answer that raised (see judge.verdict):
# "on unseen inputs (<case>): <error>" on the first line.
_ERROR_LINE = re.compile(r"^on unseen inputs \(.*?\): (?P<error>\S.*)$")
_EXCEPTION = re.compile(r"^(?P<type>[A-Za-z_][A-Za-z0-9_.]*):(?: |$)")  # judge.describe_error: "<Type>: <message>"
_NAME_ERROR = re.compile(r"^name '[^']+' is not defined|^the answer cells never assign|does not define a function")
_TIMEOUT_WORDS = ("took longer than", "time limit", "time budget", "did not start within")
_NOT_ATTEMPTED_WORDS = ("not answered yet", "NotImplementedError", "is missing", "was a link, not a file")


def classify(verdict: Verdict) -> str | None:
    """The diagnosis code of one item's verdict; None if it passed.

    The checks go from what stops an answer being judged at all (flags, a
    missing notebook, an error) to what the comparison said of its value.
    """
    if verdict.passed:
        return None
    if verdict.flags:
        return CHEATING + flag_code(verdict.flags[0])
    message = verdict.message or ""
    first_line = message.splitlines()[0] if message else ""
    if first_line.startswith("not graded:"):  # the grader itself failed on this student
        return TIMEOUT if any(w in first_line for w in _TIMEOUT_WORDS) else GRADING_FAILED
    if "used up its time budget" in first_line:
        return BUDGET_SPENT
    if "could not be read as a notebook" in first_line:
        return UNREADABLE_NOTEBOOK
    if any(word in first_line for word in _NOT_ATTEMPTED_WORDS):
        return NOT_ATTEMPTED
    error = _ERROR_LINE.match(first_line)
    if error:
        return _error_code(error.group("error"))
    return verdict.diagnosis or UNKNOWN


def _error_code(error: str) -> str:
    """``timeout`` or ``error.<ExceptionType>`` from the text the judge gives for a failed run."""
    if "used up its time budget" in error:
        return BUDGET_SPENT
    if any(word in error for word in _TIMEOUT_WORDS):
        return TIMEOUT
    if "stopped the grader's process" in error:  # os._exit, a crash: the process is gone, no exception
        return ERROR + "ProcessDied"
    if "ran out of memory" in error:
        return ERROR + "MemoryError"
    if _NAME_ERROR.search(error):  # judge.describe_error words NameError without its type
        return ERROR + "NameError"
    exception = _EXCEPTION.match(error)
    return ERROR + exception.group("type").rsplit(".", 1)[-1] if exception else UNKNOWN


# What stopped an item from being judged at all: the report lists these apart, not as mistakes to teach.
NOT_JUDGED = frozenset({NOT_ATTEMPTED, BUDGET_SPENT, GRADING_FAILED, UNREADABLE_NOTEBOOK})


def is_mistake(code: str | None) -> bool:
    """Whether a code is something to teach again (not passed, not a gap, not misconduct, not unjudged)."""
    return bool(code) and code not in NOT_JUDGED and not code.startswith(CHEATING)


@dataclass(frozen=True)
class MistakeRow:
    """One line of mistakes.csv: an item, a code, and the students who have it."""

    item: str
    diagnosis: str
    student_ids: tuple[str, ...]  # sorted

    @property
    def students(self) -> int:
        return len(self.student_ids)


def codes_of(result) -> dict[str, str]:
    """{grade_id: code} of every failed item of one student's result (``grading.results.StudentResult``)."""
    codes = {}
    for item in ITEMS:
        verdict = result.verdicts.get(item.grade_id)
        if verdict is None:  # an item the result does not mention was never judged
            verdict = Verdict(item.grade_id, False, "not graded: no verdict for this item")
        code = classify(verdict)
        if code:
            codes[item.grade_id] = code
    return codes


def mistake_rows(results: Iterable) -> list[MistakeRow]:
    """One row per (item, code) over the class, in the registry's item order, then by code."""
    students: dict[tuple[str, str], set[str]] = {}
    for result in results:
        for grade_id, code in codes_of(result).items():
            students.setdefault((grade_id, code), set()).add(result.student)
    order = {item.grade_id: index for index, item in enumerate(ITEMS)}
    return [MistakeRow(item, code, tuple(sorted(ids))) for (item, code), ids
            in sorted(students.items(), key=lambda entry: (order[entry[0][0]], entry[0][1]))]


def write_mistakes(path: Path, rows: list[MistakeRow]) -> None:
    """``item,diagnosis,students,student_ids`` (ids space-separated, sorted; quoted as in grades.csv
    when a spreadsheet would read the cell as a formula)."""
    with open(path, "w", newline="", encoding="utf-8") as file:
        writer = safe_writer(file)
        writer.writerow(["item", "diagnosis", "students", "student_ids"])
        for row in rows:
            writer.writerow([row.item, row.diagnosis, row.students, " ".join(row.student_ids)])


def teach_again(rows: list[MistakeRow]) -> list[MistakeRow]:
    """The mistakes to go over again, most students first (ties in item order)."""
    order = {item.grade_id: index for index, item in enumerate(ITEMS)}
    return sorted((r for r in rows if is_mistake(r.diagnosis)), key=lambda r: (-r.students, order[r.item], r.diagnosis))


def forward_line(grade_id: str) -> str:
    """The forward-pass line(s) an Exercise 1 (or notebook 06 Part 1) item's answer cells undo, or '' for others."""
    item = ITEMS_BY_ID[grade_id]
    by_answer = {line.answer_id: line.code for line in EX1_LINES + EX6_LINES}
    lines = [by_answer[a] for a in item.answers if a in by_answer]
    return "  and  ".join(lines)
