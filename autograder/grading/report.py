"""What grading leaves behind: the gradebook entries, the tables and the feedback pages."""

from __future__ import annotations

import csv
import html
import json
import shutil
import warnings
from pathlib import Path

from ..cells import HIDDEN_CHECK_CALL, HIDDEN_TESTS_BEGIN, HIDDEN_TESTS_END
from ..checking.csv_cells import csv_cell
from ..engine.errors import GradingError
from ..exercises import ASSIGNMENT, ITEMS, NOTEBOOKS, items_of, max_score

HIDDEN_MARKERS = (HIDDEN_TESTS_BEGIN, HIDDEN_TESTS_END, HIDDEN_CHECK_CALL)

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


def record(out: Path, result: dict) -> None:
    """Replace everything ``out`` holds about this student with ``result``."""
    from nbgrader.api import Gradebook, MissingEntry

    student = result["student"]
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
                grade.auto_score = score_of(result, grade.name)
                grade.needs_manual_grade = False
        gb.db.commit()
    student_dir = safe_child(out / "feedback", student)
    autograded_dir = safe_child(out / "autograded", student)
    for folder in (student_dir, autograded_dir):
        shutil.rmtree(folder, ignore_errors=True)
    _write_files(result.get("autograded_files"), autograded_dir / ASSIGNMENT, ".ipynb")
    _write_files(result.get("feedback_files"), student_dir / ASSIGNMENT, ".html")
    student_dir.mkdir(parents=True, exist_ok=True)
    (student_dir / "report.json").write_text(json.dumps(_public(result), indent=1))
    pages = {page.stem for page in (student_dir / ASSIGNMENT).glob("*.html")}
    (student_dir / "index.html").write_text(feedback_page(result, pages), encoding="utf-8")


def safe_child(parent: Path, name: str) -> Path:
    """``parent/name`` for a folder name that came from the submissions (never '..')."""
    child = parent / name
    if name in ("", ".", "..") or child.resolve().parent != parent.resolve():
        raise ValueError(f"unsafe student id {name!r}")
    return child


def _write_files(files: dict[str, bytes] | None, target: Path, suffix: str) -> None:
    """The worker's files ({name: bytes}) into ``target``; only plain names with ``suffix``."""
    for name, data in (files or {}).items():
        if Path(name).name != name or not name.endswith(suffix):
            continue
        if any(marker.encode() in data for marker in HIDDEN_MARKERS):  # never hand out hidden test code
            continue
        target.mkdir(parents=True, exist_ok=True)
        (target / name).write_bytes(data)


def score_of(result: dict, grade_id: str) -> float:
    return float(result.get("scores", {}).get(grade_id, [0.0])[0])


def failed_result(student: str, reason: str, log_tail: str, seconds: float) -> dict:
    """The result of a student whose grading itself failed: 0 everywhere, and why."""
    message = f"not graded: {reason}"
    return {"student": student, "scores": {}, "notes": [message], "notebook_notes": {},
            "verdicts": {item.grade_id: {"grade_id": item.grade_id, "passed": False, "message": message,
                                         "flags": [], "diagnosis": ""} for item in ITEMS},
            "autograde_log": log_tail, "seconds": round(seconds, 2)}


def _public(result: dict) -> dict:
    """What the student may see of a result (no paths of the grader's machine, no logs)."""
    return {key: result.get(key) for key in ("student", "scores", "verdicts", "notes", "notebook_notes")}


# ---------------------------------------------------------------------- text

def total(result: dict) -> float:
    return sum(score_of(result, item.grade_id) for item in ITEMS)


def flags(result: dict) -> list[tuple[str, str]]:
    return [(gid, "; ".join(v["flags"])) for gid, v in result.get("verdicts", {}).items() if v.get("flags")]


def one_line(result: dict) -> str:
    extra = [f"{len(flags(result))} flagged"] if flags(result) else []
    extra += result.get("notes", [])[:1]
    tail = f"  ({'; '.join(extra)})" if extra else ""
    return f"{result['student']}: {total(result):g}/{max_score()} in {result.get('seconds', 0):.1f} s{tail}"


def feedback_page(result: dict, pages: set[str] | None = None) -> str:
    """A self-contained HTML page: every graded item, its points and the reason.

    ``pages``: the notebooks that have a feedback page next to it (all when None);
    the others are listed with the reason they have none.
    """
    esc = html.escape
    rows = []
    for notebook in NOTEBOOKS:
        for item in items_of(notebook):
            verdict = result.get("verdicts", {}).get(item.grade_id, {})
            got = score_of(result, item.grade_id)
            mark = "&#9989;" if got >= item.points else "&#10060;"
            code = verdict.get("diagnosis", "")
            rows.append(f"<tr><td>{mark}</td><td><code>{esc(item.grade_id)}</code></td><td>{got:g}/{item.points}</td>"
                        f"<td><pre>{esc(verdict.get('message', ''))}</pre></td>"
                        f"<td>{f'<code>{esc(code)}</code>' if code else ''}</td></tr>")
    notes = result.get("notes", []) + [n for notes in result.get("notebook_notes", {}).values() for n in notes]
    note_html = "".join(f"<li>{esc(n)}</li>" for n in notes) or "<li>none</li>"
    links = "".join(f'<li><a href="{ASSIGNMENT}/{nb}.html">{nb}</a></li>' if pages is None or nb in pages
                    else f"<li>{nb}: no page, {esc(_why_no_page(result, nb))}</li>" for nb in NOTEBOOKS)
    return f"""<!DOCTYPE html><html><head><meta charset="utf-8"><title>Feedback: {esc(result['student'])}</title>
<style>body{{font-family:sans-serif;max-width:70em;margin:2em auto}}td{{vertical-align:top;padding:.2em .6em}}
pre{{margin:0;white-space:pre-wrap}}tr:nth-child(even){{background:#f4f4f4}}</style></head><body>
<h1>Backprop Ninja: feedback for {esc(result['student'])}</h1>
<p><b>Total: {total(result):g} / {max_score()}</b>. Each item was checked by running your answer cells again on
inputs you had not seen (other seeds and sizes) and comparing with PyTorch's autograd.</p>
<h2>Notes on the submission</h2><ul>{note_html}</ul>
<h2>Items</h2><table><tr><th></th><th>item</th><th>points</th><th>why</th><th>diagnosis</th></tr>{''.join(rows)}</table>
<h2>Your notebooks, as graded</h2><ul>{links}</ul></body></html>
"""


def _why_no_page(result: dict, notebook: str) -> str:
    notes = result.get("notebook_notes", {}).get(notebook) or result.get("notes") or ["it was not graded"]
    return notes[0]


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
        writer = csv.DictWriter(file, columns)
        writer.writeheader()
        writer.writerows({k: csv_cell(v) for k, v in row.items()} for row in rows)
    with open(out / FLAGS_CSV, "w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(["student_id", "item", "reason"])
        for row in rows:
            saved = safe_child(out / "feedback", row["student_id"]) / "report.json"
            if saved.exists():
                for grade_id, reason in flags(json.loads(saved.read_text())):
                    writer.writerow([csv_cell(row["student_id"]), grade_id, reason])
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
