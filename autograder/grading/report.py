"""What grading leaves behind in ``OUT``: the gradebook entries, the students' files, the tables."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

from ..checking.csv_cells import safe_writer
from ..engine.errors import GradingError
from ..exercises import ASSIGNMENT, ITEMS, NOTEBOOKS, items_of, max_score
from .results import StudentResult
from .submissions import safe_name

GRADES_CSV = "grades.csv"
FLAGS_CSV = "flags.csv"
PASS_RATES_PNG = "pass_rates.png"


# ------------------------------------------------------------------ gradebook

def ensure_gradebook(gradebook: Path, template: Path) -> None:
    """Start ``gradebook`` from ``template``, or check that it grades the same items."""
    if not gradebook.exists():
        shutil.copy(template, gradebook)
        return
    if _graded_cells(gradebook) != _graded_cells(template):
        raise GradingError(f"{gradebook} was made for other notebooks or items than the current masters; "
                           "grade into a new --out folder, or move the old gradebook away")


def _graded_cells(gradebook: Path) -> set[tuple[str, str, float]]:
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{gradebook}") as gb:
        assignment = gb.find_assignment(ASSIGNMENT)
        return {(nb.name, cell.name, float(cell.max_score)) for nb in assignment.notebooks for cell in nb.grade_cells}


def record(out: Path, result: StudentResult) -> None:
    """Replace everything ``out`` holds about this student with ``result``.

    The scores go into nbgrader's gradebook through nbgrader's own API (one
    submission per student, a grade per graded cell), which stays the system
    of record: formgrader, ``nbgrader export`` and the late-penalty plugins
    read them there. The files go where nbgrader keeps them:
    ``autograded/<student>/<assignment>/`` and ``feedback/<student>/<assignment>/``,
    with ``index.html`` and ``report.json`` in ``feedback/<student>/``.
    """
    from nbgrader.api import Gradebook, MissingEntry

    student = result.student
    with warnings.catch_warnings(), Gradebook(f"sqlite:///{out / 'gradebook.db'}") as gb:
        warnings.simplefilter("ignore")  # nbgrader's add_submission trips SQLAlchemy's autoflush warnings
        gb.update_or_create_student(student)
        try:
            gb.remove_submission(ASSIGNMENT, student)  # no stale grade survives a re-grade
        except MissingEntry:
            pass
        submission = gb.add_submission(ASSIGNMENT, student)
        for notebook in submission.notebooks:
            for grade in notebook.grades:
                grade.auto_score = result.score(grade.name)
                grade.needs_manual_grade = False
        gb.db.commit()
    folder = student_folder(student)
    student_dir = safe_child(out / "feedback", folder)
    autograded_dir = safe_child(out / "autograded", folder)
    for existing in (student_dir, autograded_dir):
        shutil.rmtree(existing, ignore_errors=True)
    _write_files(result.autograded, autograded_dir / ASSIGNMENT, ".ipynb")
    pages = dict(result.feedback)
    index = pages.pop("index.html", None)
    _write_files(pages, student_dir / ASSIGNMENT, ".html")
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


def saved_result(out: Path, student: str) -> StudentResult | None:
    """The result ``out`` keeps for ``student`` (its report.json), or None."""
    path = safe_child(out / "feedback", student_folder(student)) / "report.json"
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

def gradebook_rows(out: Path) -> list[dict]:
    """One dict per student in ``out``'s gradebook: student_id, every item, total, max."""
    from nbgrader.api import Gradebook, MissingEntry

    rows = []
    with Gradebook(f"sqlite:///{out / 'gradebook.db'}") as gb:
        for student in sorted(gb.students, key=lambda s: s.id):
            try:
                submission = gb.find_submission(ASSIGNMENT, student.id)
            except MissingEntry:
                continue
            scores = {grade.name: float(grade.score or 0) for nb in submission.notebooks for grade in nb.grades}
            row = {"student_id": student.id}
            row.update({item.grade_id: scores.get(item.grade_id, 0.0) for item in ITEMS})
            row["total"] = sum(scores.get(item.grade_id, 0.0) for item in ITEMS)
            row["max"] = max_score()
            rows.append(row)
    return rows


def write_tables(out: Path) -> list[dict]:
    """grades.csv, flags.csv and pass_rates.png from everything in ``out``."""
    rows = gradebook_rows(out)
    columns = ["student_id", *(item.grade_id for item in ITEMS), "total", "max"]
    with open(out / GRADES_CSV, "w", newline="", encoding="utf-8") as file:
        writer = safe_writer(file)
        writer.writerow(columns)
        writer.writerows([row[column] for column in columns] for row in rows)
    with open(out / FLAGS_CSV, "w", newline="", encoding="utf-8") as file:
        writer = safe_writer(file)
        writer.writerow(["student_id", "item", "reason"])
        for row in rows:
            saved = saved_result(out, row["student_id"])
            writer.writerows([row["student_id"], grade_id, reason] for grade_id, reason in (saved.flags() if saved else []))
    if rows:
        pass_rate_chart(rows, out / PASS_RATES_PNG)
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
