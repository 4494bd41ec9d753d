"""What grading leaves behind in ``OUT``: the gradebook entries, the students' files, the tables."""

from __future__ import annotations

import json
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path

from ..checking.csv_cells import safe_writer
from ..engine.errors import GradingError
from ..exercises import ASSIGNMENT, ITEMS, NOTEBOOKS, items_of, max_score
from .results import StudentResult
from .submissions import safe_name

GRADES_CSV = "grades.csv"
FLAGS_CSV = "flags.csv"
PASS_RATES_PNG = "pass_rates.png"


# ------------------------------------------------------------------ where results go

@dataclass(frozen=True)
class Destination:
    """Where a grading run writes.

    ``root`` is an nbgrader course folder: ``gradebook.db``, ``autograded/``
    and ``feedback/``, each student's under ``<student>/<assignment>/``.
    ``tables`` holds what the run adds for the instructor: grades.csv,
    flags.csv, mistakes.csv, report.html, pass_rates.png, student_ids.csv
    and the checkpoints. ``--out OUT`` makes both OUT; ``--course COURSE``
    writes into the instructor's own course and keeps the tables in
    ``COURSE/reports/<assignment>/``.
    """

    root: Path
    tables: Path
    assignment: str = ASSIGNMENT

    @classmethod
    def folder(cls, out: Path) -> Destination:
        return cls(out, out)

    @classmethod
    def course(cls, course: Path, assignment: str = ASSIGNMENT) -> Destination:
        return cls(course, course / "reports" / assignment, assignment)

    @property
    def gradebook(self) -> Path:
        return self.root / "gradebook.db"

    def feedback(self, student: str) -> Path:
        return safe_child(self.root / "feedback", student_folder(student))

    def autograded(self, student: str) -> Path:
        return safe_child(self.root / "autograded", student_folder(student))


def destination(out: Path | Destination) -> Destination:
    """``out`` as a Destination (a plain folder is ``Destination.folder``)."""
    return out if isinstance(out, Destination) else Destination.folder(out)


# ------------------------------------------------------------------ gradebook

def ensure_gradebook(out: Path | Destination, template: Path) -> None:
    """Start the gradebook from ``template``, or check that it grades the same items.

    A course's own gradebook must hold the assignment already (``backprop-ninja
    release --course``, or nbgrader's ``generate_assignment``); its other
    assignments and students are never touched.
    """
    dest = destination(out)
    if not dest.gradebook.exists():
        if dest.root != dest.tables:  # a course: its gradebook is the instructor's to make
            raise GradingError(f"{dest.root} has no gradebook.db: release the assignment into the course first "
                               f"(backprop-ninja release --course {dest.root})")
        shutil.copy(template, dest.gradebook)
        return
    found = _graded_cells(dest.gradebook, dest.assignment)
    if found is None:
        raise GradingError(f"{dest.gradebook} has no assignment {dest.assignment!r}: release it into the course first "
                           f"(backprop-ninja release --course {dest.root})")
    if found != _graded_cells(template, ASSIGNMENT):
        raise GradingError(f"{dest.gradebook} was made for other notebooks or items than the current masters; "
                           "grade into a new --out folder, or move the old gradebook away")


def _graded_cells(gradebook: Path, assignment: str) -> set[tuple[str, str, float]] | None:
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(f"sqlite:///{gradebook}") as gb:
        try:
            found = gb.find_assignment(assignment)
        except MissingEntry:
            return None
        return {(nb.name, cell.name, float(cell.max_score)) for nb in found.notebooks for cell in nb.grade_cells}


def record(out: Path | Destination, result: StudentResult) -> None:
    """Replace everything ``out`` holds about this student with ``result``.

    The scores go into nbgrader's gradebook through nbgrader's own API (one
    submission per student, a grade per graded cell), which stays the system
    of record: formgrader, ``nbgrader export`` and the late-penalty plugins
    read them there. The files go where nbgrader keeps them:
    ``autograded/<student>/<assignment>/`` and ``feedback/<student>/<assignment>/``,
    with ``index.html`` and ``report.json`` in ``feedback/<student>/``.
    """
    from nbgrader.api import Gradebook, MissingEntry

    dest = destination(out)
    student, assignment = result.student, dest.assignment
    with warnings.catch_warnings(), Gradebook(f"sqlite:///{dest.gradebook}") as gb:
        warnings.simplefilter("ignore")  # nbgrader's add_submission trips SQLAlchemy's autoflush warnings
        gb.update_or_create_student(student)
        try:
            gb.remove_submission(assignment, student)  # no stale grade survives a re-grade
        except MissingEntry:
            pass
        submission = gb.add_submission(assignment, student)
        for notebook in submission.notebooks:
            for grade in notebook.grades:
                grade.auto_score = result.score(grade.name)
                grade.needs_manual_grade = False
        gb.db.commit()
    student_dir, autograded_dir = dest.feedback(student), dest.autograded(student)
    for existing in (student_dir / assignment, autograded_dir / assignment, student_dir / "index.html",
                     student_dir / "report.json"):
        shutil.rmtree(existing, ignore_errors=True) if existing.is_dir() else existing.unlink(missing_ok=True)
    _write_files(result.autograded, autograded_dir / assignment, ".ipynb")
    pages = dict(result.feedback)
    index = pages.pop("index.html", None)
    _write_files(pages, student_dir / assignment, ".html")
    if result.autograded:  # what nbgrader's release_feedback and formgrader look for beside the notebooks
        for folder in (autograded_dir / assignment, student_dir / assignment):
            _write_files(result.exchange, folder, ".txt")
    student_dir.mkdir(parents=True, exist_ok=True)
    (student_dir / "report.json").write_text(json.dumps(result.public(), indent=1), encoding="utf-8")
    if index is not None:
        (student_dir / "index.html").write_bytes(index)


def student_folder(student: str) -> str:
    """The folder of ``student`` under ``OUT/feedback`` and ``OUT/autograded`` (``submissions.safe_name``)."""
    return safe_name(student)


def safe_child(parent: Path, name: str) -> Path:
    """``parent/name`` for a folder name that came from the submissions (never '..')."""
    child = parent / name
    if name in ("", ".", "..") or child.resolve().parent != parent.resolve():
        raise ValueError(f"unsafe student id {name!r}")
    return child


def _write_files(files: dict[str, bytes], target: Path, suffix: str) -> None:
    """The worker's files ({name: bytes}) into ``target``; only plain names with ``suffix``."""
    for name, data in files.items():
        if Path(name).name != name or not name.endswith(suffix) or name.startswith("."):
            continue
        target.mkdir(parents=True, exist_ok=True)
        (target / name).write_bytes(data)


def saved_result(out: Path | Destination, student: str) -> StudentResult | None:
    """The result ``out`` keeps for ``student`` (its report.json), or None."""
    path = destination(out).feedback(student) / "report.json"
    try:
        return StudentResult.from_public(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return None


# ---------------------------------------------------------------------- text

def one_line(result: StudentResult) -> str:
    extra = [f"{len(result.flags())} flagged"] if result.flags() else []
    extra += result.notes[:1]
    tail = f"  ({'; '.join(extra)})" if extra else ""
    return f"{result.student}: {result.total():g}/{max_score()} in {result.seconds:.1f} s{tail}"


# -------------------------------------------------------------------- tables

def gradebook_rows(out: Path | Destination) -> list[dict]:
    """One dict per student of the assignment in the gradebook: student_id, every item, total, max."""
    from nbgrader.api import Gradebook, MissingEntry

    dest = destination(out)
    rows = []
    with Gradebook(f"sqlite:///{dest.gradebook}") as gb:
        for student in sorted(gb.students, key=lambda s: s.id):
            try:
                submission = gb.find_submission(dest.assignment, student.id)
            except MissingEntry:
                continue
            scores = {grade.name: float(grade.score or 0) for nb in submission.notebooks for grade in nb.grades}
            row = {"student_id": student.id}
            row.update({item.grade_id: scores.get(item.grade_id, 0.0) for item in ITEMS})
            row["total"] = sum(scores.get(item.grade_id, 0.0) for item in ITEMS)
            row["max"] = max_score()
            rows.append(row)
    return rows


def write_tables(out: Path | Destination) -> list[dict]:
    """grades.csv, flags.csv and pass_rates.png from everything the gradebook and the feedback hold."""
    dest = destination(out)
    rows = gradebook_rows(dest)
    columns = ["student_id", *(item.grade_id for item in ITEMS), "total", "max"]
    dest.tables.mkdir(parents=True, exist_ok=True)
    with open(dest.tables / GRADES_CSV, "w", newline="", encoding="utf-8") as file:
        writer = safe_writer(file)
        writer.writerow(columns)
        writer.writerows([row[column] for column in columns] for row in rows)
    with open(dest.tables / FLAGS_CSV, "w", newline="", encoding="utf-8") as file:
        writer = safe_writer(file)
        writer.writerow(["student_id", "item", "reason"])
        for row in rows:
            saved = saved_result(dest, row["student_id"])
            writer.writerows([row["student_id"], grade_id, reason] for grade_id, reason in (saved.flags() if saved else []))
    if rows:
        pass_rate_chart(rows, dest.tables / PASS_RATES_PNG)
    return rows


def pass_rate_chart(rows: list[dict], path: Path) -> None:
    """Horizontal bars: the share of students with full marks on each item."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [item.grade_id for item in ITEMS]
    rates = [sum(row[item.grade_id] >= item.points for row in rows) / len(rows) for item in ITEMS]
    fig, ax = plt.subplots(figsize=(7, 0.28 * len(names) + 1.2))
    ax.barh(names[::-1], rates[::-1], color=["#c0392b" if r < 0.5 else "#2e86c1" for r in rates[::-1]])
    ax.set_xlim(0, 1)
    ax.set_xlabel(f"share of students with full marks (n = {len(rows)})")
    ax.set_title("Pass rate per graded item")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def summary_table(rows: list[dict]) -> str:
    """A plain-text table: per student, the score of each exercise, total, max."""
    exercises = {items_of(nb)[0].grade_id.split("_")[0]: items_of(nb) for nb in NOTEBOOKS if items_of(nb)}
    header = ["student"] + [f"{name} /{sum(i.points for i in items)}" for name, items in exercises.items()] + ["total", "max"]
    lines = [header]
    for row in rows:
        lines.append([row["student_id"]] + [f"{sum(row[i.grade_id] for i in items):g}" for items in exercises.values()]
                     + [f"{row['total']:g}", f"{row['max']:g}"])
    widths = [max(len(str(line[k])) for line in lines) for k in range(len(header))]
    return "\n".join("  ".join(str(cell).ljust(w) for cell, w in zip(line, widths)).rstrip() for line in lines)
