"""Late work, the nbgrader way: ``timestamp.txt``, the assignment's due date, the late-penalty plugin.

nbgrader's exchange leaves a ``timestamp.txt`` (UTC) in every collected
submission folder. When a course gives the assignment a due date (in ``OUT``:
``nbgrader db assignment add backprop_ninja --duedate "2026-12-04 17:00:00 UTC"``),
a submission stamped later is late by that many seconds, and nbgrader's
``AssignLatePenalties`` asks its plugin (``LateSubmissionPlugin`` by default,
whose ``penalty_method`` is 'none' or 'zero'; any class set as
``c.AssignLatePenalties.plugin_class`` in ``OUT/nbgrader_config.py``) for each
notebook's penalty, which it keeps between 0 and the notebook's score.

The grader's workers autograde without timestamps (they never see the
course's gradebook), so this runs in the grader after the scores are merged:
it stores each graded student's timestamp and recomputes every submission's
penalty in ``OUT/gradebook.db``, where ``nbgrader export``, formgrader and the
exports of this package read raw score, penalty and score.
"""

from __future__ import annotations

import warnings
from datetime import datetime
from pathlib import Path

from ..exercises import ASSIGNMENT

TIMESTAMP_FILE = "timestamp.txt"  # nbgrader's name, in each submission folder
CONFIG_FILE = "nbgrader_config.py"
CONFIG_TEXT = f'''\
# nbgrader settings for this folder of grading results; run nbgrader's own tools from here
# (nbgrader export, nbgrader formgrader). Written once by `python -m autograder grade`: edit freely.
c = get_config()  # noqa: F821 (nbgrader defines get_config when it loads this file)
c.CourseDirectory.course_id = "{ASSIGNMENT}"

# Late work: give the assignment a due date once, from this folder:
#   nbgrader db assignment add {ASSIGNMENT} --duedate "2026-12-04 17:00:00 UTC"
# Submission folders with nbgrader's timestamp.txt are then late by the time past it, and the
# late-submission plugin sets the penalty (re-grade, or `python -m autograder grade` any student,
# to apply a new policy to everyone). nbgrader's plugin knows 'none' (the default) and 'zero':
# c.LateSubmissionPlugin.penalty_method = "zero"
# or use a plugin of your own (a subclass of nbgrader.plugins.LateSubmissionPlugin):
# c.AssignLatePenalties.plugin_class = "my_course.TenPercentPerDay"
'''


def ensure_config(out: Path) -> Path:
    """``OUT/nbgrader_config.py``, written if it is not there (an instructor's own is kept)."""
    path = out / CONFIG_FILE
    if not path.exists():
        path.write_text(CONFIG_TEXT, encoding="utf-8")
    return path


def load_config(out: Path):
    """The traitlets config of ``OUT/nbgrader_config.py`` (empty when there is none)."""
    from traitlets.config import Config
    from traitlets.config.loader import PyFileConfigLoader

    if not (out / CONFIG_FILE).exists():
        return Config()
    return PyFileConfigLoader(CONFIG_FILE, path=str(out)).load_config()


def parse_timestamp(data: bytes | None) -> tuple[datetime | None, str]:
    """(the UTC time in a ``timestamp.txt`` as handed in, or None; a note when it is there but unusable)."""
    from nbgrader.utils import parse_utc

    if data is None:
        return None, ""
    text = data.decode("utf-8", errors="replace").strip()[:200]  # a timestamp is one short line
    if not text:
        return None, f"{TIMESTAMP_FILE} is empty: the submission counts as on time"
    try:
        return parse_utc(text), ""
    except (ValueError, OverflowError) as err:
        return None, f"{TIMESTAMP_FILE} holds no time nbgrader can read ({text[:40]!r}, {err}): counted as on time"


def apply_lateness(out, timestamps: dict[str, bytes | None]) -> dict[str, str]:
    """Store the students' timestamps (student -> timestamp.txt as handed in) and recompute every late penalty.

    ``out``: a ``report.Destination`` (or a plain OUT folder). Returns
    {student: note} for timestamp files that could not be used.
    """
    from nbgrader.api import Gradebook, MissingEntry

    from .course import ensure_tools_on_path
    from .report import destination

    ensure_tools_on_path()  # nbgrader runs its helper `alembic` by name
    dest = destination(out)
    notes = {}
    with warnings.catch_warnings(), Gradebook(f"sqlite:///{dest.gradebook}") as gb:
        warnings.simplefilter("ignore")  # SQLAlchemy's autoflush warnings inside nbgrader
        for student, data in timestamps.items():
            timestamp, note = parse_timestamp(data)
            if note:
                notes[student] = note
            try:
                gb.find_submission(dest.assignment, student).timestamp = timestamp
            except MissingEntry:
                continue
        gb.db.commit()
        _assign_penalties(gb, load_config(dest.root), dest.assignment)
        gb.db.commit()
    return notes


def _assign_penalties(gb, config, assignment: str = ASSIGNMENT) -> None:
    """What nbgrader's AssignLatePenalties does for one notebook, for every notebook of the assignment."""
    from nbgrader.preprocessors import AssignLatePenalties

    assigner = AssignLatePenalties(config=config)
    assigner.init_plugin()
    for submission in gb.find_assignment(assignment).submissions:
        seconds_late = submission.total_seconds_late
        for notebook in submission.notebooks:
            notebook.late_submission_penalty = None
            if seconds_late > 0:
                penalty = assigner.plugin_inst.late_submission_penalty(submission.student.id, notebook.score,
                                                                      seconds_late)
                if penalty is not None:
                    notebook.late_submission_penalty = assigner._check_late_penalty(notebook, penalty)
