"""The student release (``notebooks/``), generated from the masters (``solutions/``) by nbgrader.

* Regenerating it changes no byte of what is committed, and no solution or
  hidden-test text reaches it.
* nbgrader's Validator passes every test of every master, and with
  ``invert=True`` no test of a blank release notebook passes (no vacuous test).
  ``nbgrader validate`` exits 0 either way, so these use the Python API.
* A release notebook runs, as a student first opens it, up to its first blank
  answer without an error.
* The cells are as nbgrader and the grader expect: the generated-file notice
  first, answer stubs that keep their ``#| answer:`` line, locked cells.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from autograder.cells import ANSWER_DIRECTIVE
from autograder.exercises import NOTEBOOKS, answer_ids, items_of
from autograder.grading import release
from autograder.grading.course import RELEASE_DIR, SOLUTIONS
from autograder.grading.samples import master_solutions
from autograder.workbook.training import EX4_STEPS_ENV

pytestmark = pytest.mark.release

STUB = ("# YOUR CODE HERE", "raise NotImplementedError()")
NOTEBOOK_METADATA = {"kernelspec", "language_info"}
CELL_METADATA = {"nbgrader", "editable", "deletable"}


def exercise_mark(notebook: str):
    return getattr(pytest.mark, f"ex{int(notebook.split('_')[0])}")


by_notebook = pytest.mark.parametrize("notebook", [pytest.param(nb, marks=exercise_mark(nb)) for nb in NOTEBOOKS])


def released(notebook: str):
    return nbformat.read(RELEASE_DIR / f"{notebook}.ipynb", as_version=4)


def nbgrader(cell) -> dict:
    return cell.metadata.get("nbgrader", {})


def is_answer(cell) -> bool:
    return bool(nbgrader(cell).get("solution")) and not nbgrader(cell).get("grade")


@pytest.fixture(scope="module")
def short_training():
    """Exercise 4's training cell runs a short schedule in the notebooks run here (its checks do not depend on it)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(EX4_STEPS_ENV, "200")
        yield


@pytest.fixture(scope="module")
def blank_runs(short_training):
    """``blank_runs(notebook)``: (validator results with invert=True, the executed notebook), run once each.

    One run of the blank release serves two tests: no test passes, and no
    cell fails before the first blank answer.
    """
    done = {}

    def run(notebook: str):
        if notebook not in done:
            done[notebook] = release.validate_and_run(RELEASE_DIR / f"{notebook}.ipynb", invert=True)
        return done[notebook]

    return run


# ------------------------------------------------------------- regenerating

def test_regenerating_the_release_changes_no_committed_byte(tmp_path):
    assert sorted(p.stem for p in RELEASE_DIR.glob("*.ipynb")) == sorted(NOTEBOOKS)
    fresh = tmp_path / "notebooks"
    # with the spec the committed release was made with (`make release PACKAGE_SPEC=...` is not a difference)
    release.generate_release(fresh, tmp_path / "course", release.released_package_spec(RELEASE_DIR))
    assert release.folder_differences(RELEASE_DIR, fresh) == []


def test_the_comparison_sees_a_changed_a_missing_and_an_extra_notebook(tmp_path):
    committed, fresh = tmp_path / "committed", tmp_path / "fresh"
    for folder in (committed, fresh):
        folder.mkdir()
        for notebook in NOTEBOOKS[:2]:
            shutil.copy(RELEASE_DIR / f"{notebook}.ipynb", folder)
    assert release.folder_differences(committed, fresh) == []
    changed = committed / f"{NOTEBOOKS[0]}.ipynb"
    changed.write_bytes(changed.read_bytes().replace(b"\n", b"\r\n", 1))  # one byte more
    (committed / f"{NOTEBOOKS[1]}.ipynb").unlink()
    shutil.copy(RELEASE_DIR / f"{NOTEBOOKS[2]}.ipynb", committed)
    assert release.folder_differences(committed, fresh) == sorted(f"{nb}.ipynb" for nb in NOTEBOOKS[:3])


def test_no_solution_or_hidden_test_text_reaches_the_release():
    assert release.leaked_markers() == []
    for notebook in NOTEBOOKS:
        assert "hidden_check(" not in (RELEASE_DIR / f"{notebook}.ipynb").read_text(encoding="utf-8")


@pytest.mark.parametrize("marker", release.LEAK_MARKERS)
def test_a_planted_marker_is_found(marker, tmp_path):
    for path in RELEASE_DIR.glob("*.ipynb"):
        shutil.copy(path, tmp_path)
    assert release.leaked_markers(tmp_path) == []
    nb = released(NOTEBOOKS[-1])
    cell = next(c for c in nb.cells if is_answer(c))
    cell.source += f"\n### {marker}\n"
    nbformat.write(nb, tmp_path / f"{NOTEBOOKS[-1]}.ipynb")
    assert release.leaked_markers(tmp_path) == [f"{NOTEBOOKS[-1]}.ipynb: {marker}"]


# --------------------------------------------------------------- validating

def test_every_registered_notebook_has_a_master():
    assert sorted(p.stem for p in SOLUTIONS.glob("*.ipynb")) == sorted(NOTEBOOKS)


@by_notebook
def test_every_test_of_the_master_passes_nbgraders_validator(notebook, short_training):
    assert release.validate(SOLUTIONS / f"{notebook}.ipynb") == {}


@by_notebook
def test_no_test_passes_on_the_blank_release(notebook, blank_runs):
    """``invert=True``: a test that passes on a blank notebook is vacuous."""
    results, executed = blank_runs(notebook)
    grade_cells = [c for c in executed.cells if nbgrader(c).get("grade")]
    assert len(grade_cells) == len(items_of(notebook)) > 0  # there are tests to fail
    assert all(cell.execution_count is not None for cell in grade_cells)  # and they did run
    assert results == {}


def _tiny_notebook(path: Path) -> Path:
    """A vacuous test and a real one, as graded cells."""
    cells = []
    for grade_id, source in (("vacuous", "assert True"), ("real", "assert answer == 42")):
        cell = nbformat.v4.new_code_cell(source, id=grade_id)
        cell.metadata["nbgrader"] = {"grade": True, "grade_id": grade_id, "locked": True, "points": 1,
                                     "schema_version": 3, "solution": False, "task": False}
        cells.append(cell)
    nbformat.write(nbformat.v4.new_notebook(cells=cells), path)
    return path


def test_the_inverted_validation_reports_a_vacuous_test(tmp_path):
    notebook = _tiny_notebook(tmp_path / "tiny.ipynb")
    passed = release.validate(notebook, invert=True)
    assert [cell["source"] for cell in passed["passed"]] == ["assert True"]


def test_nbgrader_validate_on_the_command_line_exits_0_even_when_a_test_fails(tmp_path):
    """Why CI uses the Python API: the exit code of ``nbgrader validate`` does not say."""
    notebook = _tiny_notebook(tmp_path / "tiny.ipynb")
    run = subprocess.run([sys.executable, "-m", "nbgrader", "validate", notebook.name], cwd=tmp_path,
                         capture_output=True, text=True, timeout=300)
    assert "VALIDATION FAILED ON 1 CELL" in run.stdout + run.stderr
    assert "assert answer == 42" in run.stdout + run.stderr
    assert run.returncode == 0


# ------------------------------------------------------------------ running

@by_notebook
def test_the_release_runs_up_to_its_first_blank_answer(notebook, blank_runs):
    """Run as a student starts, top to bottom: no error until a blank answer raises NotImplementedError.

    The notebook is the one the validator executed above (nbclient, every
    cell, errors kept): its first error must be a NotImplementedError, in the
    first answer cell or in a check after it that calls a function the blank
    answer defines, and every cell before that must have run.
    """
    _, nb = blank_runs(notebook)
    code = [(index, cell) for index, cell in enumerate(nb.cells) if cell.cell_type == "code"]
    errors = [(index, cell, output) for index, cell in code for output in cell.outputs if output.output_type == "error"]
    assert errors, "no cell raised: the notebook has no blank answer"
    index, cell, error = errors[0]
    first_answer = next(i for i, c in enumerate(nb.cells) if is_answer(c))
    where = nbgrader(cell).get("grade_id")
    assert error.ename == "NotImplementedError", f"{where} raised {error.ename}: {error.evalue}"
    assert index >= first_answer, f"{where}, before the first answer cell, raised {error.ename}"
    before = [c for i, c in code if i < index]
    assert [c for c in before if not is_answer(c)], "no setup cell ran"
    assert [nbgrader(c).get("grade_id") for c in before if c.execution_count is None] == []


# ------------------------------------------------------------------- cells

@by_notebook
def test_the_first_cell_says_the_file_is_generated_from_its_master(notebook):
    first = released(notebook).cells[0]
    assert first.cell_type == "markdown" and first.get("id") == release.NOTICE_ID
    assert f"solutions/{notebook}.ipynb" in first.source
    assert "generated" in first.source and "make release" in first.source


@by_notebook
def test_answer_cells_are_blank_stubs_that_keep_their_directive(notebook):
    nb = released(notebook)
    answers = [c for c in nb.cells if is_answer(c)]
    assert [nbgrader(c)["grade_id"] for c in answers] == list(answer_ids(notebook))
    solutions = master_solutions()
    for cell in answers:
        answer_id = nbgrader(cell)["grade_id"]
        assert cell.source.splitlines()[0] == f"#| answer: {answer_id}", answer_id
        assert ANSWER_DIRECTIVE.findall(cell.source) == [answer_id]
        assert all(part in cell.source for part in STUB), answer_id
        assert cell.source.index(STUB[0]) < cell.source.index(STUB[1])
        solution_lines = {line.strip() for line in solutions[answer_id].splitlines() if len(line.strip()) > 12}
        assert not [line for line in solution_lines if line in cell.source], f"{answer_id} shows its solution"
        assert nbgrader(cell).get("locked") is False and cell.metadata.get("editable", True) is not False


@by_notebook
def test_every_other_cell_is_locked_with_its_nbgrader_metadata(notebook):
    nb = released(notebook)
    points = {item.grade_id: item.points for item in items_of(notebook)}
    for cell in nb.cells[1:]:
        if is_answer(cell):
            continue
        meta = nbgrader(cell)
        assert meta.get("grade_id") and meta.get("locked") is True, meta or cell.source[:60]
        assert cell.metadata.get("editable") is False and cell.metadata.get("deletable") is False, meta["grade_id"]
        assert meta.get("checksum"), meta["grade_id"]
        if meta.get("grade"):
            assert meta["points"] == points[meta["grade_id"]]
    graded = [nbgrader(c)["grade_id"] for c in nb.cells if nbgrader(c).get("grade")]
    assert sorted(graded) == sorted(points)


@by_notebook
def test_every_test_cell_ends_in_an_assert(notebook):
    """nbgrader gives full marks to a test whose last expression is False (see test_grading.py)."""
    for cell in released(notebook).cells:
        if nbgrader(cell).get("grade"):
            body = ast.parse(cell.source).body
            assert body and isinstance(body[-1], ast.Assert), nbgrader(cell)["grade_id"]


@by_notebook
def test_the_release_has_no_outputs_and_no_editor_metadata(notebook):
    nb = released(notebook)
    assert set(nb.metadata) <= NOTEBOOK_METADATA
    for cell in nb.cells:
        assert set(cell.metadata) <= CELL_METADATA, nbgrader(cell).get("grade_id")
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, nbgrader(cell).get("grade_id")
