"""The instructor's view of a graded class: ``OUT/mistakes.csv`` and ``OUT/report.html``.

``finish`` runs once at the end of ``grade`` (after every student's result is
merged into ``OUT``). It applies late penalties (``late``), then reads the
whole class back from ``OUT`` (the gradebook and each student's
``feedback/<student>/report.json``, so students graded in earlier runs count
too) and writes

* ``mistakes.csv``: one row per (item, diagnosis) with the students who have it
  (``checking.class_mistakes``);
* ``report.html``: one page with no outside requests (figures inline as PNG,
  style inline): score distribution, pass rate per item, what to teach again,
  mistakes per item by kind, flagged students, notebooks that timed out or
  failed, late work, how long grading took.
"""

from __future__ import annotations

import base64
import io
import statistics
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from ..checking import class_mistakes
from ..diagnosis.codes import CODES_BY_NAME
from ..exercises import ITEMS, ITEMS_BY_ID, NOTEBOOKS, max_score
from . import late, report
from .export import StudentGrade, class_grades, describe_delay, number
from .results import StudentResult

REPORT_HTML = "report.html"
TEMPLATE = Path(__file__).with_name("templates") / "class_report.html.j2"
# The messages for the codes this report adds to the comparison's diagnoses.
OWN_MESSAGES = {
    class_mistakes.NOT_ATTEMPTED: ("not attempted: the answer cell was left as released, or the notebook was not "
                                   "handed in"),
    class_mistakes.TIMEOUT: "ran past its time limit: an endless loop, or work far slower than needed",
    class_mistakes.UNKNOWN: "wrong, with no specific diagnosis",
    class_mistakes.GRADING_FAILED: "the grader failed on this submission (see the notebooks below)",
    class_mistakes.UNREADABLE_NOTEBOOK: "the notebook file could not be read (cut off, or not a notebook)",
    class_mistakes.BUDGET_SPENT: "not judged: the submission used up its time budget before this item's turn",
}
# Colours of the stacked bars: kinds of failure, then the diagnoses in turn.
FIXED_COLOURS = {class_mistakes.NOT_ATTEMPTED: "#d5d8dc", class_mistakes.TIMEOUT: "#7d3c98",
                 class_mistakes.UNKNOWN: "#95a5a6"}
PALETTE = ("#c0392b", "#2e86c1", "#d68910", "#229954", "#884ea0", "#17a589", "#a04000", "#2c3e50", "#cb4335",
           "#5dade2", "#f4d03f", "#58d68d")


@dataclass
class ClassView:
    """Everything ``OUT`` holds about the class: grades and per-item verdicts of each student."""

    grades: list[StudentGrade]
    results: list[StudentResult]  # each student's result as OUT keeps it (report.json), same order as grades
    rows: list[class_mistakes.MistakeRow] = field(default_factory=list)


def finish(out, results: list[StudentResult], seconds: float, progress=print) -> ClassView:
    """Late penalties, mistakes.csv and report.html for ``out`` (a ``report.Destination``), after a run of ``results``.

    A late-work setting that cannot be used (a plugin that does not import, a
    penalty that raises) is reported, here and in the page, and no penalty is
    changed: the grades of the run are kept either way.
    """
    dest = report.destination(out)
    late.ensure_config(dest.root)
    try:
        late_notes = late.apply_lateness(dest, {r.student: r.exchange.get(late.TIMESTAMP_FILE) for r in results})
    except Exception as err:  # the instructor's config or plugin: say so, keep the batch's grades
        message = f"late penalties were not applied: {type(err).__name__}: {err} (see {dest.root / late.CONFIG_FILE})"
        progress(f"warning: {message}")
        late_notes = {"all students": message}
    view = load_class(dest)
    dest.tables.mkdir(parents=True, exist_ok=True)
    class_mistakes.write_mistakes(dest.tables / class_mistakes.MISTAKES_CSV, view.rows)
    (dest.tables / REPORT_HTML).write_text(render(dest, view, results, seconds, late_notes), encoding="utf-8")
    return view


def load_class(out) -> ClassView:
    dest = report.destination(out)
    grades = class_grades(dest.root, dest.assignment)
    results = [_saved_result(dest, grade.student_id) for grade in grades]
    return ClassView(grades, results, class_mistakes.mistake_rows(results))


def _saved_result(out, student: str) -> StudentResult:
    saved = report.saved_result(out, student)
    if saved is None:
        return StudentResult(student, notes=["not graded: its report.json is missing or unreadable"])
    return saved


# ------------------------------------------------------------------ the page

def render(out, view: ClassView, run: list[StudentResult], seconds: float,
           late_notes: dict[str, str] | None = None) -> str:
    """report.html for ``view``; ``run`` and ``seconds``: the results and wall time of this grading run."""
    import jinja2

    environment = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATE.parent), autoescape=True,
                                     undefined=jinja2.StrictUndefined)
    totals = [g.raw for g in view.grades]
    finals = [g.score for g in view.grades]
    examples = _examples(view)
    context = {
        "assignment": report.destination(out).assignment, "max": max_score(), "students": len(view.grades),
        "written": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "mean": statistics.fmean(finals) if finals else 0.0, "median": statistics.median(finals) if finals else 0.0,
        "raw_mean": statistics.fmean(totals) if totals else 0.0,
        "histogram": _png(score_histogram(finals)) if finals else "",
        "pass_rates": _png_of(lambda file: report.pass_rate_chart([g.scores for g in view.grades], file)) if view.grades else "",
        "by_kind": _png(mistakes_by_kind(view.rows)) if view.rows else "",
        "teach": [{"rank": rank, "item": row.item, "code": row.diagnosis, "students": row.students,
                   "share": row.students / max(1, len(view.grades)), "message": message_for(row.diagnosis, examples.get((row.item, row.diagnosis), "")),
                   "line": class_mistakes.forward_line(row.item), "notebook": ITEMS_BY_ID[row.item].notebook,
                   "ids": ", ".join(row.student_ids)}
                  for rank, row in enumerate(class_mistakes.teach_again(view.rows), start=1)],
        "flagged": [{"student": r.student, "item": item, "reason": reason}
                    for r in view.results for item, reason in r.flags()],
        "problems": [{"student": r.student, "notebook": ", ".join(notebooks), "reason": reason}
                     for r in view.results for reason, notebooks in _by_reason(notebook_problems(r))],
        "unjudged": [{"item": row.item, "code": row.diagnosis, "students": row.students,
                      "message": message_for(row.diagnosis), "ids": ", ".join(row.student_ids)}
                     for row in view.rows if row.diagnosis in class_mistakes.NOT_JUDGED - {class_mistakes.NOT_ATTEMPTED}],
        "renamed": _renamed_ids(report.destination(out).tables),
        "late": [{"student": g.student_id, "timestamp": g.timestamp, "late": describe_delay(g.seconds_late),
                  "raw": number(g.raw), "penalty": number(g.penalty), "score": number(g.score)}
                 for g in view.grades if g.seconds_late > 0],
        "late_notes": sorted((late_notes or {}).items()),
        "grades": [{"student": g.student_id, "raw": number(g.raw), "penalty": number(g.penalty), "score": number(g.score)}
                   for g in view.grades],
        "run": {"students": len(run), "seconds": seconds,
                "per_student": statistics.fmean(r.seconds for r in run) if run else 0.0,
                "slowest": max(run, key=lambda r: r.seconds, default=None),
                "phases": {phase: statistics.fmean(r.phases.get(phase, 0.0) for r in run)
                           for phase in ("sanitize", "judge", "record", "feedback")} if run else {}},
        "number": number,
    }
    return environment.get_template(TEMPLATE.name).render(**context)


def message_for(code: str, example: str = "") -> str:
    """The plain-language meaning of a diagnosis code.

    Comparison codes are explained by the table of diagnosis codes
    (``autograder.diagnosis.codes``); ``unknown`` by the hint a student with
    that mistake was shown (``example``: their verdict message).
    """
    if code == class_mistakes.UNKNOWN:  # no code, but the student may still have been shown a hint
        return _hint_of(example) or OWN_MESSAGES[code]
    if code in OWN_MESSAGES:
        return OWN_MESSAGES[code]
    if code.startswith(class_mistakes.CHEATING):
        return f"not derived: the answer {code[len(class_mistakes.CHEATING):]} (flagged, scored 0)"
    if code.startswith(class_mistakes.ERROR):
        return f"the answer raised {code[len(class_mistakes.ERROR):]} on unseen inputs"
    return CODES_BY_NAME[code].meaning if code in CODES_BY_NAME else _hint_of(example) or code


def _hint_of(message: str) -> str:
    """The last '-> ' line of a verdict message: the hint the student saw."""
    hints = [line.split("->", 1)[1].strip() for line in message.splitlines() if "->" in line]
    return hints[-1] if hints else ""


def _examples(view: ClassView) -> dict[tuple[str, str], str]:
    """(item, code) -> the verdict message of the first student (by id) with that mistake."""
    found: dict[tuple[str, str], str] = {}
    for result in sorted(view.results, key=lambda r: r.student):
        for grade_id, code in class_mistakes.codes_of(result).items():
            verdict = result.verdicts.get(grade_id)
            found.setdefault((grade_id, code), verdict.message if verdict else "")
    return found


def notebook_problems(result: StudentResult) -> list[tuple[str, str]]:
    """(notebook, reason) for each notebook of a student that was missing or unreadable, or a whole failed grading."""
    problems = [("all", note) for note in result.notes if note.startswith("not graded:")]
    for notebook in NOTEBOOKS:
        notes = [n for n in result.notebook_notes.get(notebook, []) if "every item in it scores 0" in n]
        if notes:
            problems.append((notebook, notes[0]))
    return problems


NOT_HANDED_IN = "not handed in"


def _by_reason(problems: list[tuple[str, str]]) -> list[tuple[str, list[str]]]:
    """(reason, notebooks) with the notebooks that were not handed in on one line."""
    grouped: dict[str, list[str]] = {}
    for notebook, reason in problems:
        grouped.setdefault(NOT_HANDED_IN if f"{notebook}.ipynb is missing" in reason else reason, []).append(notebook)
    return list(grouped.items())


def _renamed_ids(out: Path) -> list[dict]:
    """The student ids whose folders in OUT carry another name (``grade.STUDENT_IDS_CSV``)."""
    import csv

    path = out / "student_ids.csv"
    if not path.exists():
        return []
    with open(path, newline="", encoding="utf-8", errors="replace") as file:
        rows = list(csv.reader(file))[1:]
    return [{"student": row[0].removeprefix("'"), "folder": row[1]} for row in rows if len(row) == 2]


# ------------------------------------------------------------------ figures

def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def score_histogram(scores: list[float]):
    """A histogram of the scores (after late penalties), with the mean and the median marked."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.2))
    top = max_score()
    bins = min(24, max(6, top // 3))
    ax.hist(scores, bins=bins, range=(0, top), color="#2e86c1", edgecolor="white")
    mean, median = statistics.fmean(scores), statistics.median(scores)
    ax.axvline(mean, color="#c0392b", linewidth=2, label=f"mean {mean:.1f}")
    ax.axvline(median, color="#d68910", linewidth=2, linestyle="--", label=f"median {median:g}")
    ax.set_xlim(0, top)
    ax.set_xlabel(f"score (of {top})")
    ax.set_ylabel("students")
    ax.yaxis.get_major_locator().set_params(integer=True)
    ax.set_title(f"Score distribution (n = {len(scores)})")
    ax.legend(loc="upper left")
    fig.tight_layout()
    return fig


def mistakes_by_kind(rows: list[class_mistakes.MistakeRow]):
    """One horizontal bar per item that someone failed, stacked by diagnosis (students per kind)."""
    plt = _pyplot()
    items = [item.grade_id for item in ITEMS if any(r.item == item.grade_id for r in rows)]
    codes = sorted({r.diagnosis for r in rows}, key=lambda c: (c in FIXED_COLOURS, c))
    colours = {code: FIXED_COLOURS.get(code) or PALETTE[index % len(PALETTE)] for index, code in enumerate(codes)}
    counts = {(r.item, r.diagnosis): r.students for r in rows}
    fig, ax = plt.subplots(figsize=(8, 0.3 * len(items) + 1.6))
    left = [0] * len(items)
    for code in codes:
        widths = [counts.get((item, code), 0) for item in items]
        ax.barh(items[::-1], widths[::-1], left=left[::-1], color=colours[code], label=code)
        left = [a + b for a, b in zip(left, widths)]
    ax.set_xlabel("students")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_title("Failed items by diagnosis")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    fig.tight_layout()
    return fig


def _png(fig) -> str:
    """A figure as a data: URL (PNG), then closed."""
    plt = _pyplot()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _png_of(draw) -> str:
    """A data: URL of what ``draw(file)`` saves as PNG (for the chart code in ``report``)."""
    buffer = io.BytesIO()
    draw(buffer)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


__all__ = ["finish", "load_class", "render", "message_for", "notebook_problems", "REPORT_HTML"]
