"""Grade students in private nbgrader courses: ``python -m autograder.grading.worker --serve SLOT``.

The grader starts ``--jobs`` workers; each reads job files from stdin, one
student at a time. For every student a worker:

1. sanitizes the submission onto the released templates (``sanitize``);
2. judges every item in a sandboxed child (``judge_runner``);
3. runs nbgrader's real autograde on its own copy of the gradebook, with the
   notebook kernels in the sandbox (``BoundedExecute``) and the verdicts
   written into the test cells (``ApplyVerdicts``);
4. runs nbgrader's generate_feedback;
5. writes ``result.json``: the scores nbgrader recorded, the verdicts and notes.

Student code never sees the private folder (the gradebook, the verdicts, the
result), so it cannot change its own score. The grader merges the result
into the real gradebook, one student at a time.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from dataclasses import asdict
from pathlib import Path

import nbformat

from .. import sandbox
from ..exercises import ASSIGNMENT, ITEMS
from .course import ensure_tools_on_path, nbgrader_config
from .forkserver import ForkServer, kernel_argv
from .judge_runner import judge_submission
from .sanitize import sanitize_folder

INTERNAL_ID = "student"  # nbgrader globs paths: a real id like "a[1]" would not match itself
KERNEL_NAME = "backprop-ninja-sandbox"


def grade_one(job: dict, fork_socket: Path) -> dict:
    """Do steps 1-5 for ``job`` (see ``grade.make_job`` for its fields); returns the result."""
    started = time.monotonic()
    work = Path(job["work"])
    course, private, run = work / "course", work / "private", work / "run"
    for folder in (course, private, run):
        folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(job["template_db"], private / "gradebook.db")
    # matplotlib's font cache, built once by the grader, where this student's kernels may write
    shutil.copytree(job["matplotlib_cache"], run / "runtime" / "mpl")
    os.environ["MPLCONFIGDIR"] = str(run / "runtime" / "mpl")
    templates = {p.stem: nbformat.read(p, as_version=4) for p in sorted(Path(job["templates"]).glob("*.ipynb"))}

    clock = _Clock()
    sanitized, notes = sanitize_folder(Path(job["submission"]), templates)
    submitted = course / "submitted" / INTERNAL_ID / ASSIGNMENT
    submitted.mkdir(parents=True, exist_ok=True)
    (course / "source" / ASSIGNMENT).mkdir(parents=True, exist_ok=True)
    for name, result in sanitized.items():
        if result.readable:  # nbgrader scores a notebook that is not there as 0, without running a blank copy
            nbformat.write(result.notebook, submitted / f"{name}.ipynb")

    hidden, readable = job["hidden"], job["readable"]
    sources = {name: [c.source for c in s.notebook.cells if c.cell_type == "code"]
               for name, s in sanitized.items() if s.readable}
    clock.lap("sanitize")
    autograded = course / "autograded" / INTERNAL_ID / ASSIGNMENT
    verdicts = judge_submission(list(ITEMS), sources, hidden, readable, job["job_seconds"], str(fork_socket))
    for item in ITEMS:  # say why, rather than "answer cell missing", for a notebook that was not usable
        if item.notebook in sanitized and not sanitized[item.notebook].readable:
            verdicts[item.grade_id].message = sanitized[item.notebook].notes[0]
    clock.lap("judge")
    verdicts_file = private / "verdicts.json"
    verdicts_file.write_text(json.dumps({gid: asdict(v) for gid, v in verdicts.items()}))
    log = _autograde(course, private, run, verdicts_file, job, autograded, clock, fork_socket)
    scores = _recorded_scores(private / "gradebook.db")
    return {
        "student": job["student"],
        "scores": scores,
        "verdicts": {gid: asdict(v) for gid, v in verdicts.items()},
        "notes": notes,
        "notebook_notes": {name: s.notes for name, s in sanitized.items()},
        "autograde_log": log[-4000:],
        "autograded": str(autograded),
        "feedback": str(course / "feedback" / INTERNAL_ID / ASSIGNMENT),
        "sandboxed": sandbox.available(),
        "seconds": round(time.monotonic() - started, 2),
        "phases": clock.laps,
    }


class _Clock:
    """Seconds spent in each phase, for the benchmarks and the log."""

    def __init__(self):
        self.laps: dict[str, float] = {}
        self._last = time.monotonic()

    def lap(self, name: str) -> None:
        now = time.monotonic()
        self.laps[name] = round(now - self._last, 2)
        self._last = now


def _autograde(course: Path, private: Path, run: Path, verdicts_file: Path, job: dict, autograded: Path,
               clock: "_Clock", fork_socket: Path) -> str:
    """nbgrader autograde + generate_feedback for the one student; returns their logs."""
    from nbconvert.preprocessors import ClearMetadataPreprocessor
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory
    from nbgrader.preprocessors import AssignLatePenalties, CheckCellMetadata, IgnorePattern, LimitOutput, SaveAutoGrades

    from .preprocessors import ApplyVerdicts, BoundedExecute

    ensure_tools_on_path()
    autograded.mkdir(parents=True, exist_ok=True)
    # The kernel may write only its working folder and its sockets' folder.
    policy = {"hidden": job["hidden"], "writable": [str(autograded), str(run / "runtime")],
              "readable": job["readable"], "home": "/tmp/home"}
    _write_kernelspec(run, fork_socket, policy)
    os.environ.update(JUPYTER_PATH=str(run / "share"), JUPYTER_RUNTIME_DIR=str(run / "runtime"))
    config = nbgrader_config(course, db=private / "gradebook.db")
    config.Autograde.autograde_preprocessors = [BoundedExecute, ApplyVerdicts, IgnorePattern, ClearMetadataPreprocessor,
                                                LimitOutput, SaveAutoGrades, AssignLatePenalties, CheckCellMetadata]
    config.BoundedExecute.notebook_seconds = job["notebook_seconds"]
    config.BoundedExecute.kernel_name = KERNEL_NAME
    config.BoundedExecute.startup_timeout = 120
    config.ApplyVerdicts.verdicts_file = str(verdicts_file)
    config.KernelManager.transport = "ipc"  # the sandbox has no network, only the file system
    config.KernelManager.ip = str(run / "runtime" / "kernel")
    # Kernels run one after another, so they can share one connection file, in
    # a folder the sandbox shows them (the default is a temporary file in /tmp).
    config.KernelManager.connection_file = str(run / "runtime" / "kernel.json")
    api = NbGraderAPI(coursedir=CourseDirectory(config=config), config=config)
    graded = api.autograde(ASSIGNMENT, INTERNAL_ID, force=True, create=True)
    clock.lap("autograde")
    feedback = api.generate_feedback(ASSIGNMENT, INTERNAL_ID, force=True)
    clock.lap("feedback")
    return "\n".join(filter(None, [graded.get("log"), graded.get("error"), feedback.get("log"), feedback.get("error")]))


def _write_kernelspec(run: Path, fork_socket: Path, policy: dict) -> None:
    """A kernel started warm by the fork server, in the sandbox, talking over Unix sockets.

    Interrupts go by message: a signal would reach the launcher, not the kernel.
    """
    (run / "runtime").mkdir(parents=True, exist_ok=True)
    folder = run / "share" / "kernels" / KERNEL_NAME
    folder.mkdir(parents=True, exist_ok=True)
    policy_file = folder / "policy.json"
    policy_file.write_text(json.dumps({"policy": policy}))
    spec = {"argv": kernel_argv(fork_socket, policy_file), "display_name": "Python 3 (grading sandbox)",
            "language": "python", "interrupt_mode": "message"}
    (folder / "kernel.json").write_text(json.dumps(spec, indent=1))


def _recorded_scores(db: Path) -> dict[str, list[float]]:
    """{grade_id: [score, max_score]} as nbgrader saved them for the student."""
    from nbgrader.api import Gradebook, MissingEntry

    scores = {}
    with Gradebook(f"sqlite:///{db}") as gradebook:
        try:
            submission = gradebook.find_submission(ASSIGNMENT, INTERNAL_ID)
        except MissingEntry:
            return scores
        for notebook in submission.notebooks:
            for grade in notebook.grades:
                scores[grade.name] = [float(grade.score or 0), float(grade.max_score)]
    return scores


def serve(slot: Path) -> None:
    """Grade one student per line of stdin (the path of a job file); print each result's path.

    A worker lives for the whole batch, so its imports and its fork server are
    paid for once, not once per student.
    """
    slot.mkdir(parents=True, exist_ok=True)
    replies = os.fdopen(os.dup(1), "w", buffering=1)  # only result paths go to the grader
    os.dup2(2, 1)  # anything else printed lands in the worker's log
    sys.stdout = sys.stderr
    with ForkServer(slot / "fork.sock", dict(os.environ), slot / "forkserver.log") as server:
        for line in sys.stdin:
            job = json.loads(Path(line.strip()).read_text())
            result = grade_one(job, server.socket_path)
            Path(job["result"]).write_text(json.dumps(result, indent=1))
            replies.write(job["result"] + "\n")


def main(argv: list[str]) -> None:
    if len(argv) != 2 or argv[0] != "--serve":
        raise SystemExit("usage: python -m autograder.grading.worker --serve SLOT_FOLDER  (job files on stdin)")
    serve(Path(argv[1]))


if __name__ == "__main__":
    main(sys.argv[1:])
