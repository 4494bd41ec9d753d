"""Grading an nbgrader course: the assignment released into it, what ``nbgrader collect`` leaves, graded into it.

The course folder is laid out as nbgrader lays it out (``submitted/<student>/
<assignment>/`` with ``timestamp.txt`` and ``submission_secret.txt``), its
gradebook already holds another assignment and student, and the results must
land where nbgrader's own tools look: the course's gradebook (formgrader,
``nbgrader export``), ``autograded/`` and ``feedback/`` (``release_feedback``).
An instructor's plain ``nbgrader autograde`` in a copy of the course gives the
same scores on honest work.
"""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from autograder.exercises import ASSIGNMENT, ITEMS, NOTEBOOKS, max_score
from autograder.grading.grade import grade, student_folders
from autograder.grading.release import release_into_course
from autograder.grading.report import Destination
from autograder.grading.results import GradingSettings
from autograder.grading.samples import make_samples

pytestmark = [pytest.mark.grading, pytest.mark.slow]

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
DUE, ON_TIME, LATE = "2026-12-01 12:00:00 UTC", "2026-12-01 11:00:00.000000 UTC", "2026-12-02 13:00:00.000000 UTC"


def nbgrader(course: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "NINJA_EX4_STEPS": "300", "MPLBACKEND": "agg"}
    run = subprocess.run([str(BIN / "nbgrader"), *args, f"--CourseDirectory.root={course}"], cwd=course, env=env,
                         capture_output=True, text=True, timeout=1200)
    assert run.returncode == 0, run.stderr[-3000:]
    return run


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    """A course with another assignment and student, this one released into it, and three collected submissions."""
    from nbgrader.api import Gradebook

    from autograder.grading.course import ensure_tools_on_path

    ensure_tools_on_path()  # the test opens the gradebook itself, before any grading code has
    root = tmp_path_factory.mktemp("course")
    course = root / "course"
    course.mkdir()
    (course / "nbgrader_config.py").write_text("c = get_config()  # the instructor's own\nc.CourseDirectory.course_id = "
                                               "'ml101'\n")
    with warnings.catch_warnings(), Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        warnings.simplefilter("ignore")  # nbgrader's own session warns while it adds a submission
        gb.add_assignment("hw0")
        gb.add_student("zed")
        gb.add_submission("hw0", "zed")
    release_into_course(course)
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        gb.update_or_create_assignment(ASSIGNMENT, duedate=DUE)
    samples = make_samples(root / "samples")
    for student, sample, stamp in (("ada", "full_solution", ON_TIME), ("bo", "partly_done", LATE)):
        folder = course / "submitted" / student / ASSIGNMENT
        shutil.copytree(root / "samples" / sample, folder)
        (folder / "timestamp.txt").write_text(stamp)
        (folder / "submission_secret.txt").write_text(f"secret-of-{student}")
    (course / "submitted" / "cy" / "other_assignment").mkdir(parents=True)  # matches no layout
    progress: list[str] = []
    results = grade(course / "submitted", Destination.course(course), GradingSettings().but(jobs=2),
                    progress=progress.append)
    return {"course": course, "results": {r.student: r for r in results}, "samples": samples, "progress": progress,
            "root": root}


def test_the_release_lands_in_the_course_beside_its_other_assignments(course):
    from nbgrader.api import Gradebook

    path = course["course"]
    assert sorted(p.name for p in (path / "release" / ASSIGNMENT).glob("*.ipynb")) == \
        sorted(p.name for p in (REPO / "notebooks").glob("*.ipynb"))
    assert (path / "nbgrader_config.py").read_text().startswith("c = get_config()  # the instructor's own")
    with Gradebook(f"sqlite:///{path / 'gradebook.db'}") as gb:
        assert {a.name for a in gb.assignments} == {"hw0", ASSIGNMENT}
        assert gb.find_submission("hw0", "zed") is not None  # untouched


def test_nbgraders_layout_is_found_by_looking(course):
    folders = student_folders(course["course"] / "submitted", ASSIGNMENT, progress=lambda line: None)
    assert folders["ada"] == course["course"] / "submitted" / "ada" / ASSIGNMENT
    assert folders["cy"] == course["course"] / "submitted" / "cy"
    assert any("cy" in line and f"<student>/{ASSIGNMENT}/*.ipynb" in line for line in course["progress"])


def test_scores_go_into_the_courses_gradebook_and_late_work_is_late(course):
    from nbgrader.api import Gradebook

    results, samples = course["results"], course["samples"]
    assert results["ada"].total() == samples["full_solution"] == max_score()
    assert results["bo"].total() == samples["partly_done"]
    assert results["cy"].total() == 0
    assert any("no notebook here, only folders" in note for note in results["cy"].notes)
    with Gradebook(f"sqlite:///{course['course'] / 'gradebook.db'}") as gb:
        ada, bo = gb.find_submission(ASSIGNMENT, "ada"), gb.find_submission(ASSIGNMENT, "bo")
        assert ada.score == max_score() and ada.total_seconds_late == 0
        assert bo.total_seconds_late == 25 * 3600 and bo.score == samples["partly_done"]


def test_autograded_and_feedback_are_where_nbgrader_looks(course):
    path = course["course"]
    for student in ("ada", "bo"):
        autograded = path / "autograded" / student / ASSIGNMENT
        feedback = path / "feedback" / student / ASSIGNMENT
        assert len(list(autograded.glob("*.ipynb"))) == len(NOTEBOOKS) and (autograded / "timestamp.txt").exists()
        assert len(list(feedback.glob("*.html"))) == len(NOTEBOOKS)
        assert (feedback / "submission_secret.txt").read_text() == f"secret-of-{student}"
    tables = path / "reports" / ASSIGNMENT
    with open(tables / "grades.csv", newline="", encoding="utf-8") as file:
        assert {row["student_id"] for row in csv.DictReader(file)} == {"ada", "bo", "cy"}
    assert (tables / "report.html").exists() and not (path / "grades.csv").exists()


def test_release_feedback_hands_each_student_their_pages(course):
    path = course["course"]
    exchange = course["root"] / "exchange"
    exchange.mkdir(mode=0o777)
    nbgrader(path, "release_feedback", ASSIGNMENT, f"--Exchange.root={exchange}", "--CourseDirectory.course_id=ml101")
    released = list((exchange / "ml101" / "feedback").glob("*.html"))
    assert len(released) == 2 * len(NOTEBOOKS)  # a page per notebook each for ada and bo, named by their secrets


def test_plain_nbgrader_autograde_gives_the_same_scores_on_honest_work(course):
    """nbgrader runs each notebook, hidden tests included, in a kernel: the same verdicts on honest work."""
    from nbgrader.api import Gradebook

    copy = course["root"] / "copy"
    shutil.copytree(course["course"], copy, symlinks=True)
    shutil.rmtree(copy / "submitted" / "cy")
    with Gradebook(f"sqlite:///{copy / 'gradebook.db'}") as gb:
        for student in ("ada", "bo"):
            gb.remove_submission(ASSIGNMENT, student)
    nbgrader(copy, "autograde", ASSIGNMENT, "--force")
    with Gradebook(f"sqlite:///{copy / 'gradebook.db'}") as gb:
        for student in ("ada", "bo"):
            theirs = {g.name: g.score for nb in gb.find_submission(ASSIGNMENT, student).notebooks for g in nb.grades}
            ours = course["results"][student]
            assert {item.grade_id: theirs[item.grade_id] for item in ITEMS} == \
                   {item.grade_id: ours.score(item.grade_id) for item in ITEMS}, student


def test_the_command_line_grades_a_course(course, tmp_path):
    path = course["course"]
    run = subprocess.run([sys.executable, "-m", "autograder", "grade", "--course", str(path), "--jobs", "1"],
                         capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "3 of 3 students already have a result" in run.stdout
