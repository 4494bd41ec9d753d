"""``python -m autograder export OUT --format canvas|moodle|long --output FILE``: grades an LMS imports.

The scores come from ``OUT/gradebook.db`` (what ``grade`` recorded, with
nbgrader's late penalties, see ``late``). The optional roster
(``--roster``, CSV, UTF-8) has the columns

``student_id``  the submission folder's name (required)
``name``, ``email``, ``sis_user_id``, ``sis_login_id``, ``section``  (optional)
``canvas_id``  Canvas's own user id, for its ``ID`` column (optional)

Every roster student is exported, in roster order; one without a graded
submission gets 0 ("no submission"). A graded student who is not on the
roster is exported after them and reported ("not on the roster"). Ids are
matched after Unicode NFC normalisation and trimming, so a folder name made
on macOS (NFD) still finds its roster line. Without a roster every graded
student is exported under the folder's name.

Formats (their column layouts follow the LMS documentation):

* ``canvas``: Canvas's gradebook import. ``Student``, ``ID``, ``SIS User ID``,
  ``SIS Login ID``, ``Section``, then one column ``<assignment> (<id>)``
  (without ``--assignment-id``, just ``<assignment>``, which Canvas imports as
  a new assignment). The second row starts with ``    Points Possible`` and
  holds the maximum. Canvas matches a row on ``SIS User ID`` or ``ID``; any
  further column would become another assignment, so this file holds the
  score after the late penalty only (the raw score is in the other formats
  and in ``report.html``).
* ``moodle``: Moodle's CSV grade import. ``Email address`` and ``ID number``
  (map either to the user), the score column named after the assignment,
  then ``<assignment> raw score``, ``Late penalty`` and ``Feedback`` (map
  the score to the grade item; the rest may be ignored or mapped to feedback).
* ``long``: ``student_id,item,score,max_score``, one row per student and
  graded item (the raw item scores); a late student has one more row,
  item ``late_penalty``, score minus the penalty, max 0, so that the scores of
  a student add up to the score after the penalty.
"""

from __future__ import annotations

import csv
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from ..checking.csv_cells import safe_writer
from ..exercises import ASSIGNMENT, ITEMS, max_score

FORMATS = ("canvas", "moodle", "long")
DEFAULT_ASSIGNMENT = "Backprop Ninja"
ROSTER_COLUMNS = ("student_id", "name", "email", "sis_user_id", "sis_login_id", "section", "canvas_id")
CANVAS_COLUMNS = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
CANVAS_POINTS_POSSIBLE = "    Points Possible"  # Canvas's own spelling, four spaces included
MOODLE_COLUMNS = ["Email address", "ID number"]
LONG_COLUMNS = ["student_id", "item", "score", "max_score"]
LATE_PENALTY_ITEM = "late_penalty"
NO_SUBMISSION = "no submission"
NOT_ON_ROSTER = "not on the roster"


class ExportError(ValueError):
    """The export cannot be made (a bad roster, no gradebook); the message says why."""


@dataclass(frozen=True)
class StudentGrade:
    """One graded student as the gradebook holds them."""

    student_id: str
    scores: dict[str, float]  # grade id -> points
    raw: float  # the sum of the item scores
    penalty: float = 0.0  # nbgrader's late-submission penalty (>= 0)
    seconds_late: float = 0.0
    timestamp: str = ""  # ISO UTC, from timestamp.txt

    @property
    def score(self) -> float:
        return max(0.0, self.raw - self.penalty)


@dataclass(frozen=True)
class RosterEntry:
    student_id: str
    name: str = ""
    email: str = ""
    sis_user_id: str = ""
    sis_login_id: str = ""
    section: str = ""
    canvas_id: str = ""


@dataclass(frozen=True)
class ExportRow:
    """One student of the export: who (from the roster, or the folder name), their grade, and why not."""

    student_id: str
    entry: RosterEntry | None
    grade: StudentGrade | None
    status: str = ""  # "", NO_SUBMISSION or NOT_ON_ROSTER

    @property
    def score(self) -> float:
        return self.grade.score if self.grade else 0.0

    @property
    def raw(self) -> float:
        return self.grade.raw if self.grade else 0.0

    @property
    def penalty(self) -> float:
        return self.grade.penalty if self.grade else 0.0


@dataclass
class ExportSummary:
    rows: int
    missing: list[str] = field(default_factory=list)  # on the roster, no submission
    unknown: list[str] = field(default_factory=list)  # graded, not on the roster


# ------------------------------------------------------------------ reading

def class_grades(out: Path, assignment: str = ASSIGNMENT) -> list[StudentGrade]:
    """Every student with a submission of ``assignment`` in ``OUT/gradebook.db``, sorted by id."""
    import warnings

    from nbgrader.api import Gradebook, MissingEntry

    from .course import ensure_tools_on_path

    ensure_tools_on_path()  # nbgrader runs its helper `alembic` by name

    gradebook = out / "gradebook.db"
    if not gradebook.is_file():
        raise ExportError(f"{out} has no gradebook.db: grade into it first (python -m autograder grade SUBMISSIONS --out {out})")
    grades = []
    with warnings.catch_warnings(), Gradebook(f"sqlite:///{gradebook}") as gb:
        warnings.simplefilter("ignore")
        try:
            found = gb.find_assignment(assignment)
        except MissingEntry:
            raise ExportError(f"{gradebook} holds no assignment {assignment!r}") from None
        for submission in found.submissions:
            scores = {grade.name: float(grade.score or 0) for nb in submission.notebooks for grade in nb.grades}
            scores = {item.grade_id: scores.get(item.grade_id, 0.0) for item in ITEMS}
            grades.append(StudentGrade(submission.student.id, scores, sum(scores.values()),
                                       float(submission.late_submission_penalty or 0),
                                       float(submission.total_seconds_late or 0),
                                       submission.timestamp.isoformat(sep=" ") if submission.timestamp else ""))
    return sorted(grades, key=lambda g: g.student_id)


def match_key(student_id: str) -> str:
    """How ids are compared: NFC (macOS writes folder names decomposed), outer spaces trimmed."""
    return unicodedata.normalize("NFC", student_id).strip()


def read_roster(path: Path) -> list[RosterEntry]:
    """The roster's students in file order; a clear ExportError for anything unusable."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as file:  # -sig: a spreadsheet's byte-order mark
            reader = csv.DictReader(file)
            header = [h.strip() for h in reader.fieldnames or []]
            if "student_id" not in header:
                raise ExportError(f"{path}: the roster needs a 'student_id' column (the submission folder's name); "
                                  f"its columns are {header or 'none'}")
            reader.fieldnames = header
            entries, seen = [], {}
            for line, row in enumerate(reader, start=2):
                values = {column: (row.get(column) or "").strip() for column in ROSTER_COLUMNS}
                if not any((value or "").strip() for value in row.values() if isinstance(value, str)):
                    continue  # a blank line
                if not values["student_id"]:
                    raise ExportError(f"{path}, line {line}: no student_id")
                key = match_key(values["student_id"])
                if key in seen:
                    raise ExportError(f"{path}, line {line}: student_id {values['student_id']!r} is also on line {seen[key]}")
                seen[key] = line
                entries.append(RosterEntry(**values))
            return entries
    except UnicodeDecodeError as err:
        raise ExportError(f"{path} is not UTF-8 text ({err.reason} at byte {err.start}): save the roster as CSV UTF-8") from None
    except OSError as err:
        raise ExportError(f"cannot read the roster {path}: {err.strerror}") from None


def export_rows(grades: list[StudentGrade], roster: list[RosterEntry] | None) -> list[ExportRow]:
    """Roster students in roster order (0 and NO_SUBMISSION when not graded), then graded students not on it."""
    if roster is None:
        return [ExportRow(g.student_id, None, g) for g in grades]
    by_key: dict[str, StudentGrade] = {}
    for grade in grades:
        twin = by_key.setdefault(match_key(grade.student_id), grade)
        if twin is not grade:
            raise ExportError(f"the graded students {twin.student_id!r} and {grade.student_id!r} differ only in "
                              "Unicode normal form or outer spaces: rename one submission folder and grade it again")
    rows = [ExportRow(e.student_id, e, by_key.get(match_key(e.student_id)),
                      "" if match_key(e.student_id) in by_key else NO_SUBMISSION) for e in roster]
    on_roster = {match_key(e.student_id) for e in roster}
    rows += [ExportRow(g.student_id, None, g, NOT_ON_ROSTER) for g in grades if match_key(g.student_id) not in on_roster]
    return rows


# ------------------------------------------------------------------ formats

def number(value: float) -> str:
    return f"{value:g}"


def _name(row: ExportRow) -> str:
    """A display name: the roster's, else the student id (``safe_writer`` quotes what would be a formula)."""
    return row.entry.name if row.entry and row.entry.name else row.student_id


def canvas_table(rows: list[ExportRow], assignment: str, assignment_id: str = "") -> list[list[str]]:
    header = f"{assignment} ({assignment_id})" if assignment_id else assignment
    table = [CANVAS_COLUMNS + [header], [CANVAS_POINTS_POSSIBLE, "", "", "", "", float(max_score())]]
    for row in rows:
        entry = row.entry or RosterEntry(row.student_id, sis_user_id=row.student_id)
        table.append([_name(row), entry.canvas_id, entry.sis_user_id, entry.sis_login_id, entry.section,
                      float(row.score)])
    return table


def moodle_table(rows: list[ExportRow], assignment: str) -> list[list[str]]:
    table = [MOODLE_COLUMNS + [assignment, f"{assignment} raw score", "Late penalty", "Feedback"]]
    for row in rows:
        entry = row.entry or RosterEntry(row.student_id, sis_user_id=row.student_id)
        table.append([entry.email, entry.sis_user_id, float(row.score), float(row.raw), float(row.penalty),
                      feedback(row)])
    return table


def long_table(rows: list[ExportRow]) -> list[list[str]]:
    table = [list(LONG_COLUMNS)]
    for row in rows:
        for item in ITEMS:
            score = row.grade.scores.get(item.grade_id, 0.0) if row.grade else 0.0
            table.append([row.student_id, item.grade_id, float(score), float(item.points)])
        if row.penalty:
            table.append([row.student_id, LATE_PENALTY_ITEM, float(-row.penalty), "0"])
    return table


def feedback(row: ExportRow) -> str:
    """One line on anything besides the score: no submission, lateness and its penalty."""
    if row.status == NO_SUBMISSION:
        return NO_SUBMISSION
    if row.grade and row.grade.seconds_late > 0:
        late = f"late by {describe_delay(row.grade.seconds_late)}"
        return late + (f": {number(row.raw)} minus a penalty of {number(row.penalty)}" if row.penalty else "")
    return ""


def describe_delay(seconds: float) -> str:
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def export(out: Path, fmt: str, output: Path, roster: Path | None = None,
           assignment: str = DEFAULT_ASSIGNMENT, assignment_id: str = "", nbgrader_assignment: str = ASSIGNMENT
           ) -> ExportSummary:
    """Write ``output`` in ``fmt`` from ``out``'s gradebook; returns who was missing or unknown."""
    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r}: choose one of {', '.join(FORMATS)}")
    rows = export_rows(class_grades(out, nbgrader_assignment), read_roster(roster) if roster else None)
    if fmt == "canvas":
        table = canvas_table(rows, assignment, assignment_id)
    elif fmt == "moodle":
        table = moodle_table(rows, assignment)
    else:
        table = long_table(rows)
    output.parent.mkdir(parents=True, exist_ok=True)
    with open(output, "w", newline="", encoding="utf-8") as file:
        safe_writer(file).writerows(table)
    return ExportSummary(len(rows), [r.student_id for r in rows if r.status == NO_SUBMISSION],
                         [r.student_id for r in rows if r.status == NOT_ON_ROSTER])
