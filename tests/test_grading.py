"""Grading end to end: real submissions through the real pipeline, into a real nbgrader gradebook.

One batch of students (``tests/grading_cases.py``) is graded once per session,
two at a time, and many small tests read what it left in OUT: grades.csv,
flags.csv, the gradebook and each student's feedback. Every expected score is
derived from the registry (``autograder.exercises``). A second, serial run
re-grades two of the students into a copy of OUT, which shows that serial
and parallel grading agree and that re-grading replaces a student's old
scores and nothing else.

The last tests pin down facts about nbgrader's own scoring that the
workbook is built around (what a plain ``nbgrader autograde`` does with a
test cell), and that this grader's scores come from its judge alone.
"""

from __future__ import annotations

import csv
import html
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest

from autograder.exercises import ASSIGNMENT, ITEMS, ITEMS_BY_ID, NOTEBOOKS, items_of, max_score
from autograder.grading import report
from autograder.grading.grade import grade
from autograder.grading.release import LEAK_MARKERS
from autograder.grading.results import GradingSettings, StudentResult
from autograder.grading.sanitize import sanitize_bytes, sanitize_submission
from autograder.grading.submissions import read_submission
from autograder.judge import sandbox
from tests import grading_cases
from tests.grading_cases import CHEATS, Case, items_using

pytestmark = pytest.mark.grading

REPO = Path(__file__).resolve().parent.parent
# Short limits, so that the students who hang cost seconds. The hostile students hang on
# purpose: their budget is large enough that each hang costs only its items.
SETTINGS = GradingSettings().but(jobs=2, item_timeout=5.0, student_timeout=900.0)
CASE_KEYS = list(grading_cases.cases(Path("OUT"), REPO))  # the batch, without writing anything
HIDDEN_CODE = ("BEGIN HIDDEN TESTS", "END HIDDEN TESTS", "hidden_check(")
GRADE_COLUMNS = ["student_id", *(item.grade_id for item in ITEMS), "total", "max"]


def csv_id(student: str) -> str:
    """A student id as grades.csv writes it: text a spreadsheet would run as a formula is quoted."""
    return "'" + student if student[:1] in "=+-@" else student


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as file:
        return list(csv.DictReader(file))


@dataclass
class Graded:
    """A graded batch: the cases, their folders, and what grading wrote into ``out``."""

    cases: dict[str, Case]
    submissions: Path
    out: Path
    results: list[StudentResult]
    progress: list[str]

    def rows(self) -> dict[str, dict]:
        return {row["student_id"]: row for row in read_csv(self.out / report.GRADES_CSV)}

    def scores(self, case: Case) -> dict[str, float]:
        row = self.rows()[csv_id(case.student)]
        return {column: float(value) for column, value in row.items() if column != "student_id"}

    def feedback(self, case: Case) -> Path:
        return self.out / "feedback" / case.student

    def report(self, case: Case) -> dict:
        return json.loads((self.feedback(case) / "report.json").read_text(encoding="utf-8"))

    def flags(self) -> dict[tuple[str, str], str]:
        return {(row["student_id"], row["item"]): row["reason"] for row in read_csv(self.out / report.FLAGS_CSV)}


@pytest.fixture(scope="session")
def graded(tmp_path_factory) -> Graded:
    """The whole batch of ``grading_cases``, graded once with two worker processes."""
    root = tmp_path_factory.mktemp("batch")
    submissions, out = root / "submissions", root / "out"
    cases = grading_cases.cases(out, REPO)
    grading_cases.write_all(submissions, cases)
    progress: list[str] = []
    results = grade(submissions, out, SETTINGS, progress=progress.append)
    return Graded(cases, submissions, out, results, progress)


@pytest.fixture(scope="session")
def regraded(graded, tmp_path_factory) -> tuple[Graded, subprocess.CompletedProcess]:
    """Two students graded again, one at a time, with the CLI, into a copy of the batch's OUT.

    One hands in the same work as before; the full solution's author now hands
    in an empty folder.
    """
    root = tmp_path_factory.mktemp("regrade")
    submissions, out = root / "submissions", root / "out"
    shutil.copytree(graded.out, out, symlinks=True)
    cases = {key: graded.cases[key] for key in SERIAL}
    for case in cases.values():
        shutil.copytree(graded.submissions / case.student, submissions / case.student, symlinks=True)
    failing = Case("solution", graded.cases["solution"].student, grading_cases._empty,
                   lost_notebooks=set(NOTEBOOKS), notes=("the submission folder is empty",))
    failing.write(submissions / failing.student)
    cases["solution"] = failing
    command = [sys.executable, "-m", "autograder", "grade", str(submissions), "--out", str(out), "--jobs", "1",
               "--regrade", "--item-timeout", str(SETTINGS.worker.item_timeout),
               "--student-timeout", str(SETTINGS.worker.student_timeout)]
    run = subprocess.run(command, capture_output=True, text=True, timeout=1200, cwd=REPO)
    return Graded(cases, submissions, out, [], run.stdout.splitlines()), run


SERIAL = ("partial",)  # graded again, serially, with the same work


def case_params():
    return [pytest.param(key, id=key) for key in CASE_KEYS]


# ------------------------------------------------------------------ the batch

def test_the_batch_finishes_with_a_result_for_every_student(graded):
    assert sorted(r.student for r in graded.results) == sorted(c.student for c in graded.cases.values())
    assert not [r.student for r in graded.results if any("not graded" in n for n in r.notes)]
    total = len(graded.cases)
    counts = [line.split("]")[0] + "]" for line in graded.progress if line.startswith("[")]
    assert counts == [f"[{k}/{total}]" for k in range(1, total + 1)]
    for case in graded.cases.values():
        assert sum(f"] {case.student}: " in line for line in graded.progress) == 1, case.student


def test_grades_csv_has_the_registry_columns_and_one_row_per_student(graded):
    with open(graded.out / report.GRADES_CSV, newline="", encoding="utf-8") as file:
        header = next(csv.reader(file))
    assert header == GRADE_COLUMNS
    assert sorted(graded.rows()) == sorted(csv_id(c.student) for c in graded.cases.values())


@pytest.mark.parametrize("key", case_params())
def test_every_student_gets_exactly_the_score_they_deserve(graded, key):
    case = graded.cases[key]
    scores = graded.scores(case)
    expected = case.scores()
    assert {gid: scores[gid] for gid in expected} == expected
    assert scores["total"] == case.total()
    assert scores["max"] == max_score()


def test_the_solutions_get_full_marks(graded):
    assert graded.scores(graded.cases["solution"])["total"] == max_score()
    assert graded.cases["solution"].total() == max_score()


def test_the_blank_release_gets_zero(graded):
    scores = graded.scores(graded.cases["blank"])
    assert scores["total"] == 0 and set(scores[item.grade_id] for item in ITEMS) == {0.0}


def test_partial_work_gets_exact_partial_scores(graded):
    case = graded.cases["partial"]
    scores = graded.scores(case)
    done = set(grading_cases.PARTIAL_EX1) | {grading_cases.EX3}
    for item in ITEMS:
        assert scores[item.grade_id] == (item.points if set(item.answers) <= done else 0), item.grade_id
    assert 0 < scores["total"] < max_score()


def test_one_mistake_in_ex1_costs_only_the_items_built_from_that_answer_cell(graded):
    answer, _ = grading_cases.ONE_MISTAKE
    lost = items_using(answer)
    assert lost == ["ex1_dbndiff"]  # the dbndiff it feeds downstream (dhprebn, dbnmeani, ...) is fed in correct
    scores = graded.scores(graded.cases["one_mistake"])
    assert [item.grade_id for item in ITEMS if scores[item.grade_id] < item.points] == lost
    assert scores["total"] == max_score() - sum(ITEMS_BY_ID[gid].points for gid in lost)


@pytest.mark.parametrize("answer", list(CHEATS))
def test_each_way_of_copying_autograd_scores_zero_and_is_flagged(graded, answer):
    case = graded.cases["cheater"]
    _, reason = CHEATS[answer]
    scores, flags, verdicts = graded.scores(case), graded.flags(), graded.report(case)["verdicts"]
    page = (graded.feedback(case) / "index.html").read_text(encoding="utf-8")
    for grade_id in items_using(answer):
        assert scores[grade_id] == 0, grade_id
        assert reason in flags[(case.student, grade_id)], grade_id
        assert any(reason in flag for flag in verdicts[grade_id]["flags"]), grade_id
        assert html.escape(reason) in page


def test_flags_csv_lists_exactly_the_flagged_items(graded):
    expected = {(csv_id(case.student), grade_id) for case in graded.cases.values() for grade_id in case.flagged_items()}
    assert set(graded.flags()) == expected
    for case in graded.cases.values():
        for grade_id, reasons in case.flagged_items().items():
            assert all(reason in graded.flags()[(csv_id(case.student), grade_id)] for reason in reasons)


@pytest.mark.parametrize("key", case_params())
def test_the_feedback_says_why(graded, key):
    case = graded.cases[key]
    result = graded.report(case)
    for grade_id, message in case.messages.items():
        assert message in result["verdicts"][grade_id]["message"], grade_id
    notes = result["notes"] + [note for notes in result["notebook_notes"].values() for note in notes]
    for note in case.notes:
        assert any(note in written for written in notes), (note, notes)
    page = (graded.feedback(case) / "index.html").read_text(encoding="utf-8")
    for note in case.notes:
        assert html.escape(note) in page
    for notebook, parts in case.html.items():
        text = (graded.feedback(case) / ASSIGNMENT / f"{notebook}.html").read_text(encoding="utf-8")
        for part in parts:
            assert part in text, (notebook, part)
    for grade_id, verdict in result["verdicts"].items():  # a lost item always says why
        if verdict["passed"] is False:
            assert verdict["message"].strip(), grade_id


@pytest.mark.parametrize("key", case_params())
def test_the_feedback_pages_exist_and_never_show_hidden_tests(graded, key):
    case = graded.cases[key]
    folder = graded.feedback(case)
    graded_notebooks = [nb for nb in NOTEBOOKS if nb not in case.lost_notebooks]  # the ones that could be read
    pages = [folder / "index.html"] + [folder / ASSIGNMENT / f"{nb}.html" for nb in graded_notebooks]
    assert [page.name for page in pages if not page.exists()] == []
    index = pages[0].read_text(encoding="utf-8")
    for notebook in case.lost_notebooks:  # no link to a page that is not there, but the reason
        assert f'href="{ASSIGNMENT}/{notebook}.html"' not in index and f"{notebook}: no page" in index
    graded_copies = [graded.out / "autograded" / case.student / ASSIGNMENT / f"{nb}.ipynb" for nb in graded_notebooks]
    for path in pages + graded_copies:
        text = path.read_text(encoding="utf-8")
        assert [marker for marker in HIDDEN_CODE + LEAK_MARKERS if marker in text] == [], path.name


def test_hangs_crashes_and_exits_cost_only_the_answers_that_caused_them(graded):
    case = graded.cases["crashes"]
    scores = graded.scores(case)
    lost = [gid for gid in case.scores() if scores[gid] == 0]
    assert lost == [gid for gid in case.scores() if any(a in case.wrong for a in ITEMS_BY_ID[gid].answers)]
    # an extra cell that would kill notebook 04's kernel is never run: the judge grades the answers alone
    assert all(scores[item.grade_id] == item.points for item in items_of(grading_cases.ex(4)))
    # the answer cells after the one that hangs (Exercise 1 is graded line by line) still count
    assert scores[grading_cases.graded_cell_of(grading_cases.EX1["h"])] == 1
    assert scores["total"] == case.total() > 0


def test_test_cells_changed_by_the_student_are_graded_as_released(graded):
    case = graded.cases["tampering"]
    scores = graded.scores(case)
    # an edited test cell that checks a blank answer does not pass it
    assert scores[grading_cases.graded_cell_of(grading_cases.EX1["loss"])] == 0
    # answers whose cells lost their grade id or '#| answer:' line still count
    for answer in (grading_cases.TAMPERED_ID_ANSWER, grading_cases.TAMPERED_DIRECTIVE_ANSWER):
        assert all(scores[gid] == ITEMS_BY_ID[gid].points for gid in items_using(answer)), answer
    # points written into the metadata by the student count for nothing
    assert scores["total"] == case.total() and scores["max"] == max_score()


def test_kernel_tricks_gain_nothing(graded):
    """An input transformer that turns later cells into `pass`, and a patched cmp and torch, in extra cells.

    No extra cell of a student is ever run by the grader: only answer cells run, in the judge's sandbox.
    """
    case = graded.cases["intruder"]
    scores = graded.scores(case)
    tricked = items_of(grading_cases.ex(1)) + items_of(grading_cases.ex(3))
    assert [item.grade_id for item in tricked if scores[item.grade_id] != 0] == []
    assert scores["total"] == case.total() > 0


def test_the_gradebook_attack_gains_nothing_and_leaves_the_gradebook_alone(graded):
    case = graded.cases["intruder"]
    assert graded.scores(case)["total"] == case.total()
    assert not (graded.out / "intruder_was_here").exists()
    with sqlite3.connect(f"file:{graded.out / 'gradebook.db'}?mode=ro", uri=True) as db:
        worst = db.execute("SELECT max(auto_score), max(coalesce(manual_score, 0)) FROM grade").fetchone()
        points = dict(db.execute("SELECT base_cell.name, grade_cells.max_score FROM grade_cells "
                                 "JOIN base_cell ON grade_cells.id = base_cell.id"))
        scored = db.execute("SELECT base_cell.name, grade.auto_score FROM grade "
                            "JOIN base_cell ON grade.cell_id = base_cell.id").fetchall()
    assert worst[0] <= max(item.points for item in ITEMS) and worst[1] == 0
    assert points == {item.grade_id: item.points for item in ITEMS}
    assert all(0 <= score <= points[name] for name, score in scored)
    printed = _printed(graded, case, grading_cases.ex(1))
    assert "GRADEBOOK ATTACK" not in printed  # the attack's cell was never run (it is an extra cell, not an answer)
    graded_copy = (graded.out / "autograded" / case.student / ASSIGNMENT / f"{grading_cases.ex(1)}.ipynb").read_text()
    assert "GRADEBOOK ATTACK" in graded_copy  # yet it is kept in the graded copy, as the student wrote it


def test_the_masters_are_out_of_reach_of_student_code(graded):
    case = graded.cases["intruder"]
    # the answer that reads the master is flagged (it opens files), the cell that searches for masters never runs,
    # and notebook 02, handed in as a link to its master, is not read: every item of 01 and 02 scores 0
    assert "MASTERS FOUND" not in _printed(graded, case, grading_cases.ex(1))
    scores = graded.scores(case)
    assert all(scores[item.grade_id] == 0 for item in items_of(grading_cases.ex(1)) + items_of(grading_cases.ex(2)))
    assert not (graded.out / "autograded" / case.student / ASSIGNMENT / f"{grading_cases.ex(2)}.ipynb").exists()


def _printed(graded: Graded, case: Case, notebook: str) -> str:
    """Everything the graded copy of ``notebook`` shows as output."""
    nb = nbformat.read(graded.out / "autograded" / case.student / ASSIGNMENT / f"{notebook}.ipynb", as_version=4)
    return "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)


@pytest.mark.parametrize("key", ["partial", "one_mistake"])
def test_student_ids_with_odd_characters_are_kept_exactly(graded, key):
    case = graded.cases[key]
    assert graded.feedback(case).is_dir() and (graded.out / "autograded" / case.student / ASSIGNMENT).is_dir()
    assert graded.report(case)["student"] == case.student
    with sqlite3.connect(f"file:{graded.out / 'gradebook.db'}?mode=ro", uri=True) as db:
        assert (case.student,) in db.execute("SELECT id FROM student").fetchall()


def test_the_pass_rate_chart_is_drawn(graded):
    assert (graded.out / report.PASS_RATES_PNG).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ----------------------------------------------------------- grading again

def test_the_cli_grades_serially_with_progress_and_a_summary(regraded):
    batch, run = regraded
    assert run.returncode == 0, run.stderr[-3000:]
    lines = run.stdout.splitlines()
    total = len(batch.cases)
    assert [line.split("]")[0] + "]" for line in lines if line.startswith("[")] == [f"[{k}/{total}]"
                                                                                   for k in range(1, total + 1)]
    header = next(line for line in lines if line.startswith("student"))
    assert header.split()[-2:] == ["total", "max"]
    for case in batch.cases.values():
        assert any(line.startswith(csv_id(case.student)) or line.startswith(case.student) for line in lines)


def test_serial_grading_gives_the_same_grades_as_parallel_grading(graded, regraded):
    batch, _ = regraded
    before, after = graded.rows(), batch.rows()
    for key in SERIAL:
        student = csv_id(batch.cases[key].student)
        assert after[student] == before[student], key


def test_regrading_replaces_old_scores_even_when_the_new_submission_fails(graded, regraded):
    batch, _ = regraded
    case = batch.cases["solution"]
    assert graded.scores(graded.cases["solution"])["total"] == max_score()  # what it had
    scores = batch.scores(case)
    assert {gid: scores[gid] for gid in case.scores()} == case.scores() and scores["total"] == 0
    assert any("empty" in note for note in batch.report(case)["notes"])


def test_regrading_leaves_every_other_student_alone(graded, regraded):
    batch, _ = regraded
    regraded_ids = {csv_id(case.student) for case in batch.cases.values()}
    before, after = graded.rows(), batch.rows()
    assert set(after) == set(before)
    assert {s: row for s, row in after.items() if s not in regraded_ids} == \
           {s: row for s, row in before.items() if s not in regraded_ids}
    for case in graded.cases.values():
        if csv_id(case.student) not in regraded_ids:
            assert (batch.feedback(case) / "report.json").read_bytes() == (graded.feedback(case) / "report.json").read_bytes()
    assert read_csv(batch.out / report.FLAGS_CSV) == read_csv(graded.out / report.FLAGS_CSV)


def test_a_grading_failure_also_replaces_old_scores(graded, tmp_path):
    """When the worker itself fails, the student gets a zero result with the reason, never their old grade."""
    out = tmp_path / "out"
    shutil.copytree(graded.out, out, symlinks=True)
    case = graded.cases["solution"]
    report.record(out, StudentResult.failure(case.student, "the grader's worker exited with code 1", 1.0))
    report.write_tables(out)
    rows = {row["student_id"]: row for row in read_csv(out / report.GRADES_CSV)}
    assert float(rows[csv_id(case.student)]["total"]) == 0
    assert {s: r for s, r in rows.items() if s != case.student} == \
           {s: r for s, r in graded.rows().items() if s != case.student}
    saved = json.loads((out / "feedback" / case.student / "report.json").read_text())
    assert any("worker exited" in note for note in saved["notes"])
    assert not (out / "feedback" / case.student / ASSIGNMENT).exists()  # the old pages are gone


# ---------------------------------------------------- the judge's own process

def test_the_judge_survives_answers_that_kill_or_hang_its_process():
    """Code that os._exit()s or never returns costs its own trial; the trials after it still run."""
    from autograder.judge import runner

    kill = ITEMS_BY_ID["ex2_dlogits"], "import os\nos._exit(3)\n"
    hang = ITEMS_BY_ID["ex3_dhprebn"], "while True:\n    pass\n"
    right = ITEMS_BY_ID["ex1_dlogprobs"], grading_cases.master_solutions()["ex1_line_loss"]
    exit_ = ITEMS_BY_ID["ex1_dprobs"], "raise SystemExit(2)\n"
    answers = {item.answers[0]: code for item, code in (kill, hang, right, exit_)}
    trials = [runner.Trial(item, 0) for item, _ in (kill, hang, right, exit_)]
    children = runner._Children(sandbox.student_policy(), sandbox.Limits(), None)
    outcomes = runner._run_trials(trials, answers, children, item_seconds=3.0, deadline=float("inf"))
    assert outcomes[("ex2_dlogits", 0)][1].startswith("stopped the grader's process")
    assert outcomes[("ex3_dhprebn", 0)][1].startswith("took longer than 3 s")
    value, error = outcomes[("ex1_dlogprobs", 0)]
    assert error is None and tuple(value.shape) == (32, 27)
    assert "SystemExit" in outcomes[("ex1_dprobs", 0)][1]
    time.sleep(1)  # the killed children's namespaces die with them: nothing of them keeps running
    assert [command for command in _commands() if "autograder.judge.child" in command and str(REPO) in command] == []


def _commands() -> list[str]:
    found = []
    for pid in (p for p in os.listdir("/proc") if p.isdigit()):
        try:
            found.append(Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
        except OSError:
            continue
    return found


# ------------------------------------------------ sanitising what was handed in

def _template(notebook: str):
    return nbformat.read(REPO / "notebooks" / f"{notebook}.ipynb", as_version=4)


BAD_FILES = {
    "truncated": lambda text: text[:3000],
    "empty": lambda text: "",
    "a JSON list": lambda text: "[]",
    "cells is a number": lambda text: '{"cells": 5, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}',
    "source of numbers": lambda text: json.dumps({"cells": [{"cell_type": "code", "source": [1, 2], "metadata": {},
                                                            "outputs": []}], "metadata": {}, "nbformat": 4,
                                                  "nbformat_minor": 5}),
    "metadata is a list": lambda text: json.dumps({"cells": [{"cell_type": "code", "source": "x", "metadata": [],
                                                              "outputs": []}], "metadata": {}, "nbformat": 4,
                                                   "nbformat_minor": 5}),
    "deeply nested": lambda text: "[" * 100_000 + "]" * 100_000,
    "nbformat 99": lambda text: text.replace('"nbformat": 4', '"nbformat": 99'),
    "binary": lambda text: "\udcff\x00\x01",
}


@pytest.mark.parametrize("label", list(BAD_FILES))
def test_a_broken_notebook_file_is_graded_blank_with_a_reason(label, tmp_path):
    notebook = grading_cases.ex(2)
    template = _template(notebook)
    text = BAD_FILES[label]((REPO / "notebooks" / f"{notebook}.ipynb").read_text())
    result = sanitize_bytes(f"{notebook}.ipynb", text.encode("utf-8", errors="surrogateescape"), template)
    assert [c.source for c in result.notebook.cells] == [c.source for c in template.cells] or result.readable
    if not result.readable:
        assert result.notes and "could not be read" in result.notes[0]
    nbformat.validate(result.notebook)


def test_an_untouched_release_rebuilds_to_itself_and_only_the_students_own_cells_are_shown_as_text():
    """The release's header (a cell without an nbgrader id) is the release's, not a cell the student added."""
    from autograder.grading.feedback import notebook_page
    from autograder.grading.sanitize import OWN_CELL

    notebook = grading_cases.ex(1)
    template = _template(notebook)
    assert any("nbgrader" not in c.metadata for c in template.cells)  # the header the release puts on top
    untouched = sanitize_bytes(f"{notebook}.ipynb", nbformat.writes(template).encode(), template)
    assert [c.source for c in untouched.notebook.cells] == [c.source for c in template.cells]
    assert untouched.notes == []
    edited = nbformat.from_dict(json.loads(nbformat.writes(template)))
    edited.cells.insert(2, nbformat.v4.new_markdown_cell("my notes <b>bold</b>"))
    rebuilt = sanitize_bytes(f"{notebook}.ipynb", nbformat.writes(edited).encode(), template).notebook
    own = [c for c in rebuilt.cells if c.metadata.get(OWN_CELL)]
    assert [c.source.splitlines()[-2] for c in own] == ["my notes <b>bold</b>"]
    page = notebook_page("ada", notebook, rebuilt, {}, {}, {}, [])
    assert "my notes &lt;b&gt;bold&lt;/b&gt;" in page and "<b>bold</b>" not in page
    assert page.count("Your copy of the workbook") == 1 and "<blockquote>" in page  # the header, rendered once


def test_a_linked_student_folder_is_not_followed(tmp_path):
    """A student folder that is a link to the masters must not be graded as the student's work."""
    link = tmp_path / "student"
    link.symlink_to(REPO / "solutions", target_is_directory=True)
    templates = {nb: _template(nb) for nb in NOTEBOOKS}
    sanitized, notes = sanitize_submission(read_submission(link, "student", NOTEBOOKS), templates)
    assert any("link" in note for note in notes)
    for notebook, result in sanitized.items():
        assert not result.readable, notebook
        assert "BEGIN SOLUTION" not in json.dumps(result.notebook)


# --------------------------------------------------------- nbgrader's scoring

NBGRADER_FACTS = {
    # source of a test cell worth 2 points -> what nbgrader's determine_grade gives it
    "false_last": ("False", 2.0),
    "tensor_last": ("import torch\ntorch.tensor([1.0, 2.0]) == torch.tensor([3.0, 4.0])", 2.0),
    "stderr_then_pass": ("import sys\nprint('50% done', file=sys.stderr)\nassert 1 + 1 == 2", 0.0),
    "warning_then_pass": ("import warnings\nwarnings.warn('this will change')\nassert 1 + 1 == 2", 0.0),
    "progress_bar_then_pass": ("from tqdm import tqdm\nfor _ in tqdm(range(3)):\n    pass\nassert 1 + 1 == 2", 0.0),
    "number_last": ("0.5", 0.5),
    "failing_assert": ("assert 1 + 1 == 3", 0.0),
    "passing_assert": ("assert 1 + 1 == 2", 2.0),
}


@pytest.fixture(scope="module")
def nbgrader_scored():
    """The NBGRADER_FACTS cells run in a real kernel, then scored by nbgrader's own determine_grade."""
    from nbclient import NotebookClient
    from nbgrader.utils import determine_grade

    cells = []
    for grade_id, (source, _) in NBGRADER_FACTS.items():
        cell = nbformat.v4.new_code_cell(source, id=grade_id)
        cell.metadata["nbgrader"] = {"grade": True, "grade_id": grade_id, "locked": True, "points": 2,
                                     "schema_version": 3, "solution": False, "task": False}
        cells.append(cell)
    nb = nbformat.v4.new_notebook(cells=cells)
    NotebookClient(nb, timeout=120, kernel_name="python3", allow_errors=True).execute()
    return {cell.metadata.nbgrader["grade_id"]: (determine_grade(cell)[0], cell) for cell in nb.cells}


@pytest.mark.parametrize("grade_id", list(NBGRADER_FACTS))
def test_how_nbgrader_scores_a_test_cell(nbgrader_scored, grade_id):
    """A last expression that is False or a tensor earns full marks, and so does
    nothing at all; a correct cell that writes to stderr earns 0; a number is
    partial credit. Hence every test cell here ends in an assert, and the
    grader rewrites test cell outputs from its own verdicts."""
    score, _ = nbgrader_scored[grade_id]
    assert score == NBGRADER_FACTS[grade_id][1]


def test_the_grader_scores_by_its_verdicts_not_by_what_a_notebook_shows(graded):
    """Saved outputs that claim a pass, points written into a test cell: the scores are the judge's alone."""
    case = graded.cases["forged"]
    scores = graded.scores(case)
    assert scores["total"] == case.total() == 0
    with sqlite3.connect(f"file:{graded.out / 'gradebook.db'}?mode=ro", uri=True) as db:
        recorded = db.execute("SELECT sum(grade.auto_score) FROM grade JOIN submitted_notebook ON grade.notebook_id = "
                              "submitted_notebook.id JOIN submitted_assignment ON submitted_notebook.assignment_id = "
                              "submitted_assignment.id JOIN student ON submitted_assignment.student_id = student.id "
                              "WHERE student.id = ?", (case.student,)).fetchone()[0]
    assert recorded == 0
    page = (graded.feedback(case) / ASSIGNMENT / f"{grading_cases.ex(2)}.html").read_text(encoding="utf-8")
    assert "as you saved it (not run again by the grader" in page and grading_cases.FORGED_OUTPUT in page
