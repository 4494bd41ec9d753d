"""The class report: diagnosis codes per failed item, mistakes.csv, report.html, late work, LMS exports.

The first tests run on synthetic grading results and grades (no gradebook, no
grading run). The ``slow`` ones build a small nbgrader gradebook, apply late
penalties with nbgrader's plugin, run the ``export`` command and ``nbgrader
export`` on it. The ``grading`` test grades a planted class, students made by
editing the masters' answers, and checks that mistakes.csv holds exactly the
planted mistakes.
"""

from __future__ import annotations

import csv
import io
import re
import shutil
import subprocess
import sys
import unicodedata
from dataclasses import replace
from pathlib import Path

import pytest

from autograder import cli
from autograder.checking import class_mistakes
from autograder.checking.class_mistakes import MistakeRow, classify
from autograder.checking.csv_cells import safe_writer
from autograder.diagnosis.codes import CODES_BY_NAME
from autograder.exercises import ITEMS, ITEMS_BY_ID, NOTEBOOKS, items_of, max_score, notebook
from autograder.grading import class_report, export, late, report
from autograder.grading.export import ExportError, ExportRow, RosterEntry, StudentGrade
from autograder.grading.results import StudentResult
from autograder.judge import scan
from autograder.judge.records import Verdict
from autograder.judge.scan import scan_answers
from autograder.judge.untrusted import describe_error
from autograder.judge.verdict import verdict
from autograder.kinds import KINDS
from autograder.kinds.cases import HIDDEN_CASES

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures" / "lms"
EX1 = notebook(1)


# ------------------------------------------------------------------ verdicts, as the judge words them

def judged(grade_id: str, outputs: list, errors: list, flags: list[str] = ()) -> Verdict:
    """A verdict made by the judge's own code, as the grading result holds it."""
    return verdict(ITEMS_BY_ID[grade_id], outputs, errors, list(flags))


def raised(grade_id: str, error: BaseException) -> Verdict:
    text = describe_error(error)
    return judged(grade_id, [None] * len(HIDDEN_CASES), [text] * len(HIDDEN_CASES))


def wrong_by(grade_id: str, change) -> Verdict:
    """The verdict on an answer whose value is ``change(right answer)`` on every hidden case."""
    item = ITEMS_BY_ID[grade_id]
    outputs = [change(KINDS[item.kind].reference(item, case)) for case in HIDDEN_CASES]
    return judged(grade_id, outputs, [None] * len(outputs))


def test_a_passed_item_has_no_code():
    assert classify(Verdict("ex1_dprobs", True, "matches autograd")) is None


@pytest.mark.parametrize("source, code", [
    ("dprobs = probs.grad.clone()", "cheating.grad"),
    ("loss.backward()\ndprobs = 1 / probs * dlogprobs", "cheating.backward"),
    ("from torch import autograd\ndprobs = autograd.grad(loss, probs)[0]", "cheating.autograd"),
    ("import os\ndprobs = 1 / probs * dlogprobs", "cheating.import"),
    ("dprobs = 1 / probs * dlogprobs\nopen('/etc/passwd')", "cheating.open"),
    ("dprobs = torch.tensor([[0.0023841]])", "cheating.hardcoded_number"),
    ("dprobs = torch.tensor([1, 2, 3, 4, 5, 6])", "cheating.hardcoded_list"),
])
def test_flagged_answers_are_cheating_with_the_flag_named(source, code):
    flags = scan_answers([f"#| answer: ex1_line_logprobs\n{source}\n"])
    assert flags, source
    assert classify(judged("ex1_dprobs", [], [], flags)) == code


def test_every_flag_of_the_judges_tables_has_its_own_name():
    for table in (scan._AUTOGRAD_ATTRIBUTES, scan._OPTIMIZER_NAMES):
        for name, reason in table.items():
            assert table.get(scan.flag_code(reason)) == reason, (name, reason)
    assert scan.flag_code("something the scanner may say one day") == "other"


@pytest.mark.parametrize("error, code", [
    (RuntimeError("The size of tensor a (32) must match the size of tensor b (20)"), "error.RuntimeError"),
    (SystemExit(3), "error.SystemExit"),
    (NameError("name 'dlogits' is not defined"), "error.NameError"),
    (IndexError("index 40 is out of bounds"), "error.IndexError"),
    (StopIteration(), "error.StopIteration"),
    (AssertionError(), "error.AssertionError"),
    (NotImplementedError(), "not_attempted"),
])
def test_an_answer_that_raised_is_named_by_its_exception(error, code):
    assert classify(raised("ex1_dprobs", error)) == code


@pytest.mark.parametrize("failure, code", [
    ("took longer than 5 s (an endless loop?)", "timeout"),
    ("took longer than 5 s (an endless loop?) (answer cell ex1_line_logprobs)", "timeout"),
    ("stopped the grader's process (os._exit, a crash, or it ran out of memory)", "error.ProcessDied"),
    ("the answer's result could not be read (ValueError)", "unknown"),
])
def test_failures_of_the_run_itself(failure, code):
    cases = len(HIDDEN_CASES)
    assert classify(judged("ex1_dprobs", [None] * cases, [failure] * cases)) == code


def test_notebooks_not_handed_in_are_not_attempted_and_broken_ones_are_errors():
    missing = Verdict("ex1_dlogprobs", False, f"{EX1}.ipynb is missing: every item in it scores 0")
    cell_missing = Verdict("ex1_dlogprobs", False, "answer cell 'ex1_line_loss' is missing")
    unreadable = Verdict("ex1_dlogprobs", False, f"{EX1}.ipynb could not be read as a notebook "
                                                 "(it is not valid JSON: ...): every item in it scores 0")
    assert classify(missing) == classify(cell_missing) == "not_attempted"
    assert classify(unreadable) == "error.UnreadableNotebook"


def test_a_student_the_grader_failed_on():
    crashed = StudentResult.failure("ada", "the grader's worker exited with code -9", 3.0)
    too_slow = StudentResult.failure("bo", "grading took longer than 900 s", 900.0)
    assert set(class_mistakes.codes_of(crashed).values()) == {"error.GradingFailed"}
    assert set(class_mistakes.codes_of(too_slow).values()) == {"timeout"}
    assert set(class_mistakes.codes_of(StudentResult("cy"))) == {item.grade_id for item in ITEMS}


def test_a_wrong_value_takes_the_diagnosis_the_result_carries():
    verdict = wrong_by("ex1_dnorm_logits", lambda right: -right)
    assert not verdict.passed and "values differ" in verdict.message
    assert classify(replace(verdict, diagnosis="sign")) == "sign"
    assert classify(replace(verdict, diagnosis="")) == "unknown"  # no code: wrong, but nobody said why


def test_the_judge_s_verdict_carries_the_comparison_s_code():
    assert classify(wrong_by("ex1_dnorm_logits", lambda right: -right)) == "sign"
    assert classify(wrong_by("ex1_dbnmeani", lambda right: right.reshape(-1))) == "shape.missing_dim"


# ------------------------------------------------------------------ mistakes.csv

def result(student: str, failures: dict[str, dict] | None = None) -> StudentResult:
    """A student's grading result: every item passed but ``failures`` (grade id -> verdict fields)."""
    failures = failures or {}
    verdicts, scores = {}, {}
    for item in ITEMS:
        failed = failures.get(item.grade_id)
        verdicts[item.grade_id] = Verdict(item.grade_id, False, **{"message": "", **failed}) if failed else \
            Verdict(item.grade_id, True, "ok")
        scores[item.grade_id] = 0.0 if failed else float(item.points)
    return StudentResult(student, scores, verdicts, seconds=4.0)


KEEPDIM = {"message": "on unseen inputs (batch 32):\nbnmeani | ... \n   -> the values are right but a dimension of size 1 "
                      "went missing", "diagnosis": "shape.missing_dim"}
SIGN = {"message": "on unseen inputs (batch 32):\nnorm_logits | ...\n   -> sign flipped", "diagnosis": "sign"}
GRAD_COPY = {"message": "Not graded, the answer reads a .grad tensor (autograd's answer).",
             "flags": ["reads a .grad tensor (autograd's answer)"]}
NOT_ANSWERED = {"message": "on unseen inputs (batch 32): not answered yet: the answer cell still raises NotImplementedError"}


def planted_results() -> list[StudentResult]:
    return [result("ada", {"ex1_dbnmeani": KEEPDIM}),
            result("=bo x", {"ex1_dbnmeani": KEEPDIM, "ex1_dnorm_logits": SIGN}),
            result("cy", {"ex1_dbnmeani": KEEPDIM, "ex1_dprobs": GRAD_COPY, "ex2_dlogits": NOT_ANSWERED}),
            result("zoë k")]


def test_mistake_rows_count_each_item_and_diagnosis_once():
    rows = class_mistakes.mistake_rows(planted_results())
    assert rows == [MistakeRow("ex1_dprobs", "cheating.grad", ("cy",)),
                    MistakeRow("ex1_dnorm_logits", "sign", ("=bo x",)),
                    MistakeRow("ex1_dbnmeani", "shape.missing_dim", ("=bo x", "ada", "cy")),
                    MistakeRow("ex2_dlogits", "not_attempted", ("cy",))]
    assert not [row for row in rows if "zoë k" in row.student_ids]


def test_mistakes_csv(tmp_path):
    path = tmp_path / "mistakes.csv"
    class_mistakes.write_mistakes(path, class_mistakes.mistake_rows(planted_results()))
    assert path.read_text(encoding="utf-8").splitlines() == [
        "item,diagnosis,students,student_ids",
        "ex1_dprobs,cheating.grad,1,cy",
        "ex1_dnorm_logits,sign,1,'=bo x",  # a cell a spreadsheet would run as a formula is quoted, as in grades.csv
        "ex1_dbnmeani,shape.missing_dim,3,'=bo x ada cy",
        "ex2_dlogits,not_attempted,1,cy",
    ]


def test_what_to_teach_again_is_ranked_by_students_and_leaves_out_gaps_and_misconduct():
    ranked = class_mistakes.teach_again(class_mistakes.mistake_rows(planted_results()))
    assert [(row.item, row.diagnosis, row.students) for row in ranked] == [
        ("ex1_dbnmeani", "shape.missing_dim", 3), ("ex1_dnorm_logits", "sign", 1)]


def test_forward_lines_of_items():
    assert class_mistakes.forward_line("ex1_dbnmeani") == "bndiff = hprebn - bnmeani"
    assert class_mistakes.forward_line("ex1_dnorm_logits") == "counts = norm_logits.exp()"
    assert "hprebn.sum(0, keepdim=True)" in class_mistakes.forward_line("ex1_dhprebn")  # two lines feed it
    assert class_mistakes.forward_line("ex2_dlogits") == ""
    assert class_mistakes.forward_line("ex6_dln2_mean") == "ln2_diff = x1 - ln2_mean"
    assert class_mistakes.forward_line("ex6_dx_ln") == ""


def test_plain_language_messages():
    assert "not attempted" in class_report.message_for("not_attempted")
    assert "time limit" in class_report.message_for("timeout")
    assert "RuntimeError" in class_report.message_for("error.RuntimeError")
    assert "flagged" in class_report.message_for("cheating.grad")
    assert class_report.message_for("unknown", KEEPDIM["message"]).startswith("the values are right")
    assert class_report.message_for("unknown") == "wrong, with no specific diagnosis"
    assert class_report.message_for("sign", SIGN["message"]) == CODES_BY_NAME["sign"].meaning  # the table's words


# ------------------------------------------------------------------ report.html

def test_notebooks_that_could_not_be_read_or_were_not_handed_in():
    missing = {nb: [f"{nb}.ipynb is missing: every item in it scores 0"] for nb in (notebook(0), notebook(5))}
    unreadable = {notebook(2): [f"{notebook(2)}.ipynb could not be read as a notebook (it is not valid JSON: cut off "
                                "by an upload, or edited outside Jupyter?): every item in it scores 0"]}
    ada = StudentResult("ada", notebook_notes={**missing, **unreadable})
    problems = class_report.notebook_problems(ada)
    assert problems == [(notebook(0), missing[notebook(0)][0]), (notebook(2), unreadable[notebook(2)][0]),
                        (notebook(5), missing[notebook(5)][0])]
    assert class_report._by_reason(problems) == [("not handed in", [notebook(0), notebook(5)]),
                                                 (unreadable[notebook(2)][0], [notebook(2)])]
    failed = StudentResult.failure("bo", "the grader's worker exited with code -9", 1.0)
    assert class_report.notebook_problems(failed)[0] == ("all", "not graded: the grader's worker exited with code -9")


def test_items_that_could_not_be_judged_are_not_mistakes_to_teach():
    budget = Verdict("ex1_dh", False, "on unseen inputs (batch 32, n_hidden 64, n_embd 10): the submission used up "
                                      "its time budget")
    unreadable = Verdict("ex2_dlogits", False, f"{notebook(2)}.ipynb could not be read as a notebook (...): every item "
                                               "in it scores 0")
    assert classify(budget) == "budget_spent" and classify(unreadable) == "error.UnreadableNotebook"
    rows = class_mistakes.mistake_rows([StudentResult("ada", verdicts={"ex1_dh": budget, "ex2_dlogits": unreadable}),
                                        result("bo", {"ex1_dbnmeani": KEEPDIM})])
    assert [(r.item, r.diagnosis) for r in class_mistakes.teach_again(rows)] == [("ex1_dbnmeani", "shape.missing_dim")]


@pytest.mark.slow  # matplotlib draws three figures: seconds
def test_report_html_is_one_self_contained_page(tmp_path):
    results = planted_results()
    grades = [StudentGrade(r.student, dict(r.scores), r.total()) for r in results]
    grades[0] = StudentGrade("ada", grades[0].scores, grades[0].raw, 7.0, 90000.0, "2026-12-02 01:00:00")
    view = class_report.ClassView(grades, results, class_mistakes.mistake_rows(results))
    page = class_report.render(tmp_path, view, results, 42.5)
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page), "the page must not load anything from outside"
    assert "<script" not in page
    assert page.count('src="data:image/png;base64,') == 3  # histogram, pass rates, stacked bars
    teach = page.split("What to teach again")[1].split("Failed items by diagnosis")[0]
    assert teach.index("ex1_dbnmeani") < teach.index("ex1_dnorm_logits")
    assert "bndiff = hprebn - bnmeani" in teach and "not_attempted" not in teach
    assert "reads a .grad tensor" in page.split("Flagged")[1]
    late_work = page.split("Late work")[1].split("Grades")[0]
    assert "ada" in late_work and "25.0 h" in late_work
    assert "&#39;=bo x" not in page and "=bo x" in page  # ids are shown as they are, escaped as HTML
    assert "42.5 s" in page


# ------------------------------------------------------------------ exports

NFD_ZOE = unicodedata.normalize("NFD", "zoë k")  # her folder name, as macOS writes it


def fixture_grades() -> list[StudentGrade]:
    full = {item.grade_id: float(item.points) for item in ITEMS}
    ada = dict(full, ex3_dhprebn=0.0, ex4_backward=0.0)  # max_score() - 12 = 149 - 12 = 137
    stranger = {item.grade_id: (float(item.points) if item.grade_id in ("ex2_dlogits", "ex3_dhprebn") else 0.0)
                for item in ITEMS}  # 4 + 6
    return [StudentGrade("ada", ada, sum(ada.values()), 6.0, 2.5 * 86400, "2026-12-05 12:00:00"),
            StudentGrade("stranger", stranger, sum(stranger.values())),
            StudentGrade(NFD_ZOE, full, sum(full.values()))]


def rows_with_roster() -> list[ExportRow]:
    return export.export_rows(fixture_grades(), export.read_roster(FIXTURES / "roster.csv"))


def csv_lines(table: list[list[str]]) -> list[str]:
    """The table as the export writes it (``csv_cells.safe_writer``)."""
    buffer = io.StringIO()
    safe_writer(buffer).writerows(table)
    return buffer.getvalue().splitlines()


def test_the_fixture_grades_are_what_the_fixtures_say():
    grades = {g.student_id: g for g in fixture_grades()}
    # the whole workbook: 72 points in notebooks 00-05 and 77 in 06 (59 gradients, 3 + 2 + 2 + 1, 6 and 4)
    assert max_score() == 72 + 77 == 149
    assert (grades["ada"].raw, grades["ada"].score, grades["stranger"].raw) == (149 - 12, 149 - 12 - 6, 10)


def test_roster_students_in_order_then_unknown_ones():
    rows = rows_with_roster()
    assert [(r.student_id, r.status) for r in rows] == [("ada", ""), ("zoë k", ""), ("no show", "no submission"),
                                                       ("stranger", "not on the roster")]
    assert [r.score for r in rows] == [131, 149, 0, 10]
    assert rows[1].grade.student_id == NFD_ZOE  # matched across Unicode normal forms


def test_canvas_file_matches_the_documented_layout():
    table = export.canvas_table(rows_with_roster(), "Backprop Ninja", "4242")
    assert table[1][0] == "    Points Possible"
    assert csv_lines(table) == (FIXTURES / "canvas.csv").read_text(encoding="utf-8").splitlines()


def test_moodle_file_matches_the_documented_layout():
    table = export.moodle_table(rows_with_roster(), "Backprop Ninja")
    assert csv_lines(table) == (FIXTURES / "moodle.csv").read_text(encoding="utf-8").splitlines()


def test_long_file_has_a_row_per_student_and_item_and_the_penalty():
    table = export.long_table(rows_with_roster())
    assert table[0] == ["student_id", "item", "score", "max_score"]
    body = table[1:]
    assert len(body) == 4 * len(ITEMS) + 1  # ada's late penalty
    by_student: dict[str, float] = {}
    for student, _item, score, _ in body:
        by_student[student] = by_student.get(student, 0.0) + float(score)
    assert by_student == {"ada": 131.0, "zoë k": 149.0, "no show": 0.0, "stranger": 10.0}
    assert ["ada", "late_penalty", -6.0, "0"] in body
    assert "ada,late_penalty,-6,0" in csv_lines(table)  # a number, not text a spreadsheet could take for a formula
    assert sum(float(m) for s, _, _, m in body if s == "no show") == max_score()


def test_two_folders_one_roster_line_is_refused():
    twins = [StudentGrade("zoë k", {}, 10.0), StudentGrade(NFD_ZOE, {}, 20.0)]
    with pytest.raises(ExportError, match="differ only in Unicode normal form"):
        export.export_rows(twins, export.read_roster(FIXTURES / "roster.csv"))
    assert len(export.export_rows(twins, None)) == 2  # without a roster each is its own student


def test_without_a_roster_the_folder_names_are_the_ids():
    rows = export.export_rows(fixture_grades(), None)
    table = export.canvas_table(rows, "Backprop Ninja")
    assert table[0][-1] == "Backprop Ninja"  # no Canvas id given: Canvas makes a new assignment
    assert [(line[0], line[2]) for line in table[2:]] == [("ada", "ada"), ("stranger", "stranger"), (NFD_ZOE, NFD_ZOE)]


@pytest.mark.parametrize("text, problem", [
    ("name,email\nAda,ada@example.edu\n", "needs a 'student_id' column"),
    ("student_id,name\nada,Ada\n,Nobody\n", "line 3: no student_id"),
    ("student_id,name\nada,Ada\nada ,Ada again\n", "line 3: student_id 'ada' is also on line 2"),
])
def test_a_bad_roster_is_refused_with_the_reason(tmp_path, text, problem):
    path = tmp_path / "roster.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ExportError, match=re.escape(problem)):
        export.read_roster(path)


def test_a_roster_from_a_spreadsheet(tmp_path):
    path = tmp_path / "roster.csv"
    path.write_bytes("\ufeffstudent_id , name\r\n zoë k ,Zoë\r\n,\r\n".encode("utf-8"))  # BOM, spaces, a blank line
    assert export.read_roster(path) == [RosterEntry("zoë k", "Zoë")]
    path.write_bytes("student_id\nzo\xeb\n".encode("latin-1"))
    with pytest.raises(ExportError, match="not UTF-8"):
        export.read_roster(path)


# ------------------------------------------------------------------ late work

def test_timestamps_as_nbgrader_writes_them():
    from datetime import datetime

    assert late.parse_timestamp(None) == (None, "")  # no file: not late
    assert late.parse_timestamp(b"2026-12-02 13:00:00.000000 UTC\n") == (datetime(2026, 12, 2, 13, 0), "")
    assert late.parse_timestamp(b"  \n") == (None, "timestamp.txt is empty: the submission counts as on time")
    assert "no time nbgrader can read ('last tuesday'" in late.parse_timestamp(b"last tuesday")[1]


def test_a_timestamp_that_is_a_link_is_never_read(tmp_path):
    from autograder.grading.submissions import read_submission

    folder = tmp_path / "ada"
    folder.mkdir()
    (tmp_path / "secret.txt").write_text("2026-12-01 00:00:00 UTC")
    (folder / "timestamp.txt").symlink_to(tmp_path / "secret.txt")
    submission = read_submission(folder, "ada")
    assert "timestamp.txt" not in submission.files and submission.links == ("timestamp.txt",)


# ------------------------------------------------------------------ on a real gradebook (slow)

@pytest.fixture(scope="module")
def gradebook_template(tmp_path_factory) -> Path:
    """An empty gradebook with every notebook and item of the registry (made once)."""
    from nbgrader.api import Gradebook

    from autograder.exercises import ASSIGNMENT
    from autograder.grading.course import ensure_tools_on_path

    ensure_tools_on_path()
    path = tmp_path_factory.mktemp("gradebook") / "gradebook.db"
    with Gradebook(f"sqlite:///{path}") as gb:
        gb.add_assignment(ASSIGNMENT)
        for nb in NOTEBOOKS:
            gb.add_notebook(nb, ASSIGNMENT)
            for item in items_of(nb):
                gb.add_grade_cell(item.grade_id, nb, ASSIGNMENT, max_score=item.points, cell_type="code")
    return path


@pytest.fixture
def graded_out(tmp_path, gradebook_template) -> tuple[Path, list]:
    """OUT with the planted results recorded as ``grade`` records them, and those results."""
    out = tmp_path / "out"
    out.mkdir()
    shutil.copy(gradebook_template, out / "gradebook.db")
    results = planted_results()
    for r in results:
        report.record(out, r)
    return out, results


def set_due_date(out: Path, due: str) -> None:
    """What `nbgrader db assignment add backprop_ninja --duedate DUE` does in OUT."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{out / 'gradebook.db'}") as gb:
        gb.update_or_create_assignment("backprop_ninja", duedate=due)


def run_nbgrader_export(out: Path) -> dict[str, dict]:
    command = [str(Path(sys.executable).parent / "nbgrader"), "export", "--to", str(out / "nbgrader.csv")]
    run = subprocess.run(command, cwd=out, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    with open(out / "nbgrader.csv", newline="", encoding="utf-8") as file:
        return {row["student_id"]: row for row in csv.DictReader(file)}


@pytest.mark.slow
def test_finish_writes_the_class_files_and_nbgrader_export_reads_out(graded_out):
    out, results = graded_out
    class_report.finish(out, results, 12.0)
    assert (out / "mistakes.csv").read_text(encoding="utf-8").splitlines()[3] == "ex1_dbnmeani,shape.missing_dim,3,'=bo x ada cy"
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "ex1_dbnmeani" in page and page.count("data:image/png;base64,") == 3
    exported = run_nbgrader_export(out)
    # each planted mistake costs its item's points: 1, 1 + 1, and 1 + 1 + ex2_dlogits' 4, of 149
    assert {s: float(row["score"]) for s, row in exported.items()} == {"ada": 148.0, "=bo x": 147.0, "cy": 143.0,
                                                                         "zoë k": 149.0}
    assert {float(row["max_score"]) for row in exported.values()} == {149.0}


@pytest.mark.slow
def test_late_work_the_nbgrader_way(graded_out):
    out, results = graded_out
    set_due_date(out, "2026-12-01 12:00:00 UTC")
    handed_in = {"ada": b"2026-12-02 13:00:00.000000 UTC\n",  # 25 h late: two days started
                 "cy": b"2026-12-01 11:00:00.000000 UTC\n",  # on time
                 "=bo x": b"yesterday\n"}  # unreadable: on time, and said so
    for result in results:
        if result.student in handed_in:
            result.exchange = {"timestamp.txt": handed_in[result.student]}
    late.ensure_config(out)
    with open(out / "nbgrader_config.py", "a", encoding="utf-8") as config:
        config.write('c.AssignLatePenalties.plugin_class = "tests.late_plugins.HalfOffPerDay"\n')
    view = class_report.finish(out, results, 12.0)
    grades = {g.student_id: g for g in view.grades}
    assert (grades["ada"].raw, grades["ada"].penalty, grades["ada"].score) == (148.0, 148.0, 0.0)
    assert grades["ada"].seconds_late == 25 * 3600
    assert (grades["cy"].penalty, grades["=bo x"].penalty) == (0.0, 0.0)
    exported = run_nbgrader_export(out)  # nbgrader's own export sees the same
    assert (float(exported["ada"]["raw_score"]), float(exported["ada"]["late_submission_penalty"]),
            float(exported["ada"]["score"])) == (148.0, 148.0, 0.0)
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "holds no time nbgrader can read" in page
    late_work = page.split("Late work")[1].split("Grades")[0]
    assert "ada" in late_work and "25.0 h" in late_work and "cy" not in late_work

    cli.main(["export", str(out), "--format", "moodle", "--output", str(out / "moodle.csv")])
    with open(out / "moodle.csv", newline="", encoding="utf-8") as file:
        ada = next(row for row in csv.DictReader(file) if row["ID number"] == "ada")
    assert (ada["Backprop Ninja"], ada["Backprop Ninja raw score"], ada["Late penalty"]) == ("0", "148", "148")


@pytest.mark.slow
def test_the_export_command_with_a_roster(graded_out, tmp_path, capsys):
    out, _ = graded_out
    roster = tmp_path / "roster.csv"
    roster.write_text("student_id,name,email,sis_user_id,sis_login_id,section\n"
                      "ada,\"Lovelace, Ada\",ada@example.edu,S1001,alovelace,A\n"
                      f"{NFD_ZOE},Zoë,zoe@example.edu,S1002,zoe,A\nno show,,,S1003,,B\n", encoding="utf-8")
    command = ["export", str(out), "--format", "canvas", "--output", str(tmp_path / "canvas.csv"),
               "--assignment", "Ninja", "--assignment-id", "7", "--roster"]
    cli.main(command + [str(roster)])
    printed = capsys.readouterr().out
    assert "no submission (exported with 0): no show" in printed
    assert "not on the roster (exported, unknown to the LMS): =bo x, cy" in printed
    lines = (tmp_path / "canvas.csv").read_text(encoding="utf-8").splitlines()
    assert lines[:4] == ["Student,ID,SIS User ID,SIS Login ID,Section,Ninja (7)", "    Points Possible,,,,,149",
                         '"Lovelace, Ada",,S1001,alovelace,A,148', "Zoë,,S1002,zoe,A,149"]
    # every cell that a spreadsheet would run as a formula is quoted, the SIS id column too
    assert lines[4:] == ["no show,,S1003,,B,0", "'=bo x,,'=bo x,,,147", "cy,,cy,,,143"]
    with pytest.raises(SystemExit, match="error: cannot read the roster .*nowhere.csv"):
        cli.main(command + [str(tmp_path / "nowhere.csv")])


# ------------------------------------------------------------------ a planted class, graded for real

# Each student hands in notebook 01 only (the mistakes live there), with the
# masters' answers edited to plant known mistakes; "zoë" gets every answer right.
PLANTED = {
    "ada": {"ex1_line_bndiff": ("sum(0, keepdim=True)", "sum(0)")},
    "bo": {"ex1_line_bndiff": ("sum(0, keepdim=True)", "sum(0)"),
           "ex1_line_counts": ("dnorm_logits = counts * dcounts", "dnorm_logits = -counts * dcounts")},
    "cy": {"ex1_line_bndiff": ("sum(0, keepdim=True)", "sum(0)"),
           "ex1_line_loss": ("torch.zeros_like(logprobs)", "torch.zeros((32, 27))")},
    "dee": {"ex1_line_logprobs": ("dprobs = (1.0 / probs) * dlogprobs", "dprobs = probs.grad.clone()")},
    "zoë": {},
}
# (item, diagnosis) -> students, for notebook 01; every other item is not attempted by everyone.
PLANTED_MISTAKES = {
    ("ex1_dlogprobs", "hardcoded_size"): ("cy",),
    ("ex1_dprobs", "cheating.grad"): ("dee",),
    ("ex1_dnorm_logits", "sign"): ("bo",),
    ("ex1_dbnmeani", "shape.missing_dim"): ("ada", "bo", "cy"),
}


def planted_submission(edits: dict[str, tuple[str, str]]) -> dict:
    from autograder.grading.samples import master_solutions
    from tests.grading_cases import submission

    solutions = master_solutions()
    answers = {}
    for answer, (old, new) in edits.items():
        assert old in solutions[answer], f"the master's {answer} no longer reads {old!r}"
        answers[answer] = solutions[answer].replace(old, new)
    return {EX1: submission(answers)[EX1]}


@pytest.fixture(scope="module")
def planted_class(tmp_path_factory):
    """The planted class, graded once (two jobs, short limits)."""
    from autograder.grading.grade import grade
    from autograder.grading.results import GradingSettings
    from tests.grading_cases import save

    root = tmp_path_factory.mktemp("planted")
    for student, edits in PLANTED.items():
        save(root / "submissions" / student, planted_submission(edits))
    results = grade(root / "submissions", root / "out", GradingSettings().but(jobs=2, item_timeout=10.0),
                    progress=lambda line: None)
    return root / "out", results


def expected_rows() -> dict[tuple[str, str], tuple[str, ...]]:
    everyone = tuple(sorted(PLANTED))
    expected = dict(PLANTED_MISTAKES)
    expected.update({(item.grade_id, "not_attempted"): everyone for item in ITEMS if item.notebook != EX1})
    return expected


def mistakes_csv_rows(out: Path) -> dict[tuple[str, str], tuple[str, ...]]:
    with open(out / "mistakes.csv", newline="", encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    for row in rows:
        assert int(row["students"]) == len(row["student_ids"].split(" ")), row
    return {(row["item"], row["diagnosis"]): tuple(row["student_ids"].split(" ")) for row in rows}


@pytest.mark.grading
@pytest.mark.slow
def test_the_planted_class_has_exactly_its_mistakes(planted_class):
    out, results = planted_class
    assert sorted(r.student for r in results) == sorted(PLANTED)
    found = mistakes_csv_rows(out)
    assert found == expected_rows()  # exactly the planted mistakes, each with its diagnosis code
    assert not [key for key, ids in found.items() if "zoë" in ids and key[1] != "not_attempted"]
    page = (out / "report.html").read_text(encoding="utf-8")
    teach = page.split("What to teach again")[1].split("Failed items by diagnosis")[0]
    assert teach.index("ex1_dbnmeani") < min(teach.index(i) for i in ("ex1_dlogprobs", "ex1_dnorm_logits"))
    assert "ex1_dprobs" not in teach and "reads a .grad tensor" in page.split("Flagged")[1]


@pytest.mark.slow
def test_a_late_plugin_that_does_not_load_costs_no_grades(graded_out):
    out, results = graded_out
    set_due_date(out, "2026-12-01 12:00:00 UTC")
    next(r for r in results if r.student == "ada").exchange = {"timestamp.txt": b"2026-12-02 13:00:00 UTC\n"}
    late.ensure_config(out)
    with open(out / "nbgrader_config.py", "a", encoding="utf-8") as config:
        config.write('c.AssignLatePenalties.plugin_class = "tests.no_such_module.Plugin"\n')
    printed: list[str] = []
    view = class_report.finish(out, results, 12.0, progress=printed.append)
    assert len(printed) == 1 and printed[0].startswith("warning: late penalties were not applied")
    assert {g.student_id: (g.raw, g.penalty) for g in view.grades}["ada"] == (148.0, 0.0)
    assert "late penalties were not applied" in (out / "report.html").read_text(encoding="utf-8")
