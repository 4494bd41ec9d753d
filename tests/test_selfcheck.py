"""``backprop-ninja check`` (autograder.checking.selfcheck): the student's self-check before submitting.

The notebooks are executed once per session for the blank release, a
partial submission and the solutions (``tests/workbook_runs.py``); the
expected outcome of every item comes from the registry.
"""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from autograder.checking import selfcheck
from autograder.checking.selfcheck import FAILED, NOT_ATTEMPTED, PASSED
from autograder.exercises import ITEMS_BY_ID, NOTEBOOKS, exercise_number, items_of, notebook
from tests.workbook_runs import KINDS, WRONG, checked, expected_status

REPO = Path(__file__).resolve().parent.parent

by_kind_and_notebook = pytest.mark.parametrize("kind,notebook", [
    pytest.param(kind, nb, marks=getattr(pytest.mark, f"ex{exercise_number(nb)}"), id=f"{kind}-{nb}")
    for kind in KINDS for nb in NOTEBOOKS])


def test_cell(executed, grade_id: str):
    return next(c for c in executed.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)


test_cell.__test__ = False  # a helper, not a test


# ------------------------------------------------------------------ the three submissions

@pytest.mark.slow
@by_kind_and_notebook
def test_every_item_gets_the_outcome_it_deserves(kind, notebook, needed_notebooks):
    result = checked(kind, needed_notebooks).result(notebook)
    assert result.problem == "" and result.note == ""
    assert [r.item.grade_id for r in result.items] == [item.grade_id for item in items_of(notebook)]
    for r in result.items:
        assert r.status == expected_status(kind, r.item), (r.item.grade_id, r.shown, r.hidden_message)
        if r.status == PASSED:
            assert r.visible is True and r.hidden is True
        if r.status == NOT_ATTEMPTED:
            assert r.hidden is None  # nothing to run on unseen inputs
    earned = sum(item.points for item in items_of(notebook) if expected_status(kind, item) == PASSED)
    assert result.points == (earned, sum(item.points for item in items_of(notebook)))


@pytest.mark.slow
@by_kind_and_notebook
def test_the_report_gives_passed_over_total_and_explains_each_failure(kind, notebook, needed_notebooks):
    run = checked(kind, needed_notebooks)
    result = run.result(notebook)
    text = selfcheck.report([result], run.folder, selfcheck.EX4_STEPS)
    expected = {item.grade_id: expected_status(kind, item) for item in items_of(notebook)}
    passed = list(expected.values()).count(PASSED)
    line = next(line for line in text.splitlines() if line.startswith(notebook))
    assert line.split()[1:4] == [str(passed), "/", str(len(expected))]
    for grade_id, status in expected.items():
        if status == FAILED:
            assert f"❌ {grade_id}\n" in text + "\n"
            printed = "".join(o.get("text", "") for o in test_cell(result.executed, grade_id).outputs
                              if o.output_type == "stream")
            lines = [line.strip() for line in printed.splitlines() if line.strip()]
            hints = [line for line in lines if line.startswith("->")] or lines  # cmp's hints, else what it printed
            assert hints, f"{grade_id}: its test cell printed nothing"
            shown = [line.strip() for line in text.splitlines()]
            assert set(hints[:3]) <= set(shown), grade_id
            item = next(r for r in result.items if r.item.grade_id == grade_id)
            assert f"on unseen inputs: fails: {item.hidden_message.splitlines()[0]}" in text
        else:
            assert f"❌ {grade_id}\n" not in text + "\n"
    waiting = [g for g, s in expected.items() if s == NOT_ATTEMPTED]
    if waiting:
        assert f"not attempted: {', '.join(waiting)}" in text
    else:
        assert "not attempted:" not in text


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_the_notebooks_checked_are_left_byte_for_byte_as_they_were(kind, needed_notebooks):
    run = checked(kind, needed_notebooks)
    assert run.after == run.before
    assert sorted(run.before) == sorted(f"{nb}.ipynb" for nb in NOTEBOOKS)  # and nothing was written beside them


def test_the_partial_submission_has_a_failure_in_both_kinds_of_item():
    """The partial submission is worth testing with: its mistakes fail a gradient item and a function item."""
    failed = {item.kind for item in ITEMS_BY_ID.values() if expected_status("partial", item) == FAILED}
    assert {"gradient", "function"} <= failed
    assert {expected_status("partial", item) for item in ITEMS_BY_ID.values()} == {PASSED, FAILED, NOT_ATTEMPTED}
    assert set(WRONG) <= {a for item in ITEMS_BY_ID.values() for a in item.answers}


# ------------------------------------------------------------------ the exit status and the command

@pytest.mark.slow
def test_main_prints_the_report_and_exits_0_even_when_items_fail(monkeypatch, needed_notebooks):
    run = checked("partial", needed_notebooks)
    monkeypatch.setattr(selfcheck, "check_folder", lambda *args, **kwargs: run.results)
    out = io.StringIO()
    assert selfcheck.main(run.folder, out=out) == 0
    assert out.getvalue().strip() == selfcheck.report(run.results, run.folder).strip()
    assert any(r.count(FAILED) for r in run.results)


def test_a_folder_that_is_not_there_or_a_notebook_that_cannot_be_read_exits_1(tmp_path):
    out = io.StringIO()
    assert selfcheck.main(tmp_path / "missing", out=out) == 1
    assert "does not exist" in out.getvalue()
    broken = tmp_path / f"{notebook(2)}.ipynb"
    broken.write_text('{"cells": [')  # cut off, as by a failed copy
    results = selfcheck.check_folder(tmp_path, only=[notebook(2), notebook(3)])
    assert [r.notebook for r in results] == [notebook(2), notebook(3)]
    assert "could not be read" in results[0].problem and "not found" in results[1].problem
    assert "could not be checked" in selfcheck.report(results, tmp_path)


def test_the_command_line_has_a_check_subcommand(capsys):
    from autograder.cli import main

    with pytest.raises(SystemExit) as done:
        main(["check", "--help"])
    assert done.value.code == 0 and "folder" in capsys.readouterr().out
    run = subprocess.run([sys.executable, "-m", "autograder", "check", "no/such/folder"], cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 1 and "does not exist" in run.stdout


# ------------------------------------------------------------------ the pieces

def test_only_the_lines_of_failing_checks_are_shown():
    printed = ("C               | exact: True  | approximate: True  | maxdiff: 0.0e+00\n"
               "W1              | exact: False | approximate: True  | maxdiff: 1.0e-09\n"
               "                   -> right: not bit-identical only because floating point rounds differently\n"
               "b1              | exact: False | approximate: False | maxdiff: 3.0e-01\n"
               "                   -> values differ\n"
               "                   -> sign flipped\n")
    assert selfcheck.explaining_lines(printed) == printed.splitlines()[3:]
    many = "\n".join(f"line {i}" for i in range(3 * selfcheck.MAX_LINES))
    shown = selfcheck.explaining_lines(many)
    assert len(shown) == selfcheck.MAX_LINES and "more lines" in shown[-1]


def _executed_cell(outputs) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell("assert check()", id="ex2_dlogits")
    cell.metadata["nbgrader"] = {"grade_id": "ex2_dlogits", "grade": True}
    cell.execution_count = 1
    cell.outputs = outputs
    return nbformat.v4.new_notebook(cells=[cell])


def test_a_test_cell_that_writes_to_stderr_fails_as_nbgrader_would_fail_it():
    quiet = _executed_cell([nbformat.v4.new_output("stream", name="stdout", text="logits | approximate: True\n")])
    assert selfcheck.visible_result(quiet, "ex2_dlogits") == (True, [])
    noisy = _executed_cell([nbformat.v4.new_output("stream", name="stderr", text="UserWarning: careful\n")])
    passed, shown = selfcheck.visible_result(noisy, "ex2_dlogits")
    assert passed is False and "stderr" in shown[-1] and "UserWarning: careful" in shown[-1]
    failed = _executed_cell([nbformat.v4.new_output("error", ename="NameError", evalue="name 'dlogits' is not defined",
                                                    traceback=[])])
    assert selfcheck.visible_result(failed, "ex2_dlogits") == (False, ["NameError: name 'dlogits' is not defined"])
    assert selfcheck.visible_result(failed, "ex3_dhprebn")[0] is None  # a test cell that is not there


@pytest.mark.ex2
def test_a_hidden_check_that_never_returns_is_stopped():
    item = ITEMS_BY_ID["ex2_dlogits"]
    answers = {"ex2_dlogits_fused": "#| answer: ex2_dlogits_fused\nwhile True:\n    pass\n"}
    verdict = selfcheck.hidden_verdict(item, answers, seconds=0.5)
    assert not verdict.passed and "took longer than 0.5 s" in verdict.message


@pytest.mark.slow
@pytest.mark.ex1
def test_the_self_check_names_a_cascade_where_the_notebook_shows_it(tmp_path):
    """A typo in dhpreact: the lines below it fail their checks in the notebook, each naming dhpreact; hidden, they pass."""
    from autograder.grading.samples import filled

    typo = ("dhpreact = (1.0 - h**2) * dh", "dhpreact = (1 - h**2) + dh")

    def edit(answer: str, solution: str) -> str:
        return solution.replace(*typo) if answer == "ex1_line_h" else solution

    path = tmp_path / f"{notebook(1)}.ipynb"
    nbformat.write(filled(notebook(1), edit), path)
    (result,) = selfcheck.check_folder(path, ex4_steps=10)
    by_id = {r.item.grade_id: r for r in result.items}
    assert by_id["ex1_dhpreact"].status == FAILED and by_id["ex1_dhpreact"].hidden is False
    for grade_id in ("ex1_dbngain", "ex1_dbnbias", "ex1_dbnraw"):
        shown = "\n".join(by_id[grade_id].shown)
        assert by_id[grade_id].status == FAILED and by_id[grade_id].hidden is True
        assert "this line looks right; it uses `dhpreact`, which is wrong: fix that first" in shown
    assert "fix that first" in selfcheck.report([result], tmp_path, 10)
    assert by_id["ex1_dh"].status == PASSED
