"""``python -m autograder grade SUBMISSIONS --out OUT``: grade a folder of submissions.

``SUBMISSIONS/<student_id>/`` holds one student's notebooks, named as released.
``OUT`` becomes an nbgrader course folder (point formgrader at it if you like):

* ``gradebook.db``: every student ever graded into ``OUT``; re-grading a
  student replaces all of their scores, others are kept;
* ``autograded/<student>/backprop_ninja/``: the executed, judged notebooks;
* ``feedback/<student>/``: ``index.html`` (every item, its score and why) and
  nbgrader's per-notebook feedback under ``backprop_ninja/``;
* ``grades.csv``: one row per student, one column per graded item, total, max;
  ``flags.csv``: items scored 0 because the answer was not the student's own
  work (``.grad`` reads, ``backward()``, hard-coded numbers, ...);
* ``pass_rates.png``: the share of students passing each item.

Students are graded in parallel (``--jobs``), each in a worker process with
its own copy of the gradebook (see ``worker``); results are merged here one
at a time, so the gradebook is only ever written by this process.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from .. import sandbox
from ..exercises import NOTEBOOKS
from . import class_report, report
from .course import BUILD, SOLUTIONS, ensure_tools_on_path
from .errors import GradingError


@dataclass(frozen=True)
class Settings:
    jobs: int = os.cpu_count() or 1
    notebook_seconds: float = 120.0  # per notebook, in the student's kernel
    job_seconds: float = 10.0  # per item and hidden case, in the judge
    ex4_steps: int = 300  # Exercise 4's training run while grading (the lecture's is 200,000; no check depends on it)
    keep_work: bool = False  # keep the workers' folders (for debugging the grader)


def grade(submissions: Path, out: Path, settings: Settings = Settings(), progress=print) -> list[dict]:
    """Grade every student folder in ``submissions`` into ``out``; returns the results."""
    started = time.monotonic()
    ensure_tools_on_path()
    submissions, out = submissions.resolve(), out.resolve()
    students = _students(submissions)
    out.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="ninja-grading-"))
    try:
        templates, template_db = template_course()
        report.ensure_gradebook(out / "gradebook.db", template_db)
        mpl_cache = _matplotlib_cache(root / "mpl")
        if not sandbox.available():
            progress("warning: Linux user namespaces are not available here: student code runs "
                     "with your permissions (it can read and write what you can)")
        jobs = [make_job(root / f"w{index}", student, submissions / student, templates, template_db, mpl_cache,
                         settings, [str(submissions), str(out), str(root)]) for index, student in enumerate(students)]
        slots: queue.Queue = queue.Queue()
        for index in range(max(1, min(settings.jobs, len(jobs)))):
            slots.put(_Slot(root / f"slot{index}", settings))
        results = []
        try:
            with ThreadPoolExecutor(max_workers=slots.qsize()) as pool:
                futures = [pool.submit(_on_a_slot, slots, job) for job in jobs]
                for done, future in enumerate(as_completed(futures), start=1):
                    result = future.result()
                    report.record(out, result)
                    results.append(result)
                    progress(f"[{done}/{len(jobs)}] {report.one_line(result)}")
        finally:
            while not slots.empty():
                slots.get().stop()
        report.write_tables(out)
        class_report.finish(out, submissions, results, time.monotonic() - started, progress)  # mistakes.csv, report.html, late work
        return sorted(results, key=lambda r: r["student"])
    finally:
        if not settings.keep_work:
            shutil.rmtree(root, ignore_errors=True)


def template_course(cache: Path = BUILD / "grading-templates") -> tuple[Path, Path]:
    """The released notebooks and a gradebook holding the assignment, made from the current masters.

    nbgrader's generate_assignment takes seconds, so the result is kept under
    ``build/``, keyed by a hash of the masters and the nbgrader version.
    """
    import nbgrader

    from .release import generate_release, released_package_spec  # nbformat and nbgrader: not for `--help`

    # The install cell as the students got it, so that it never shows up as a changed locked cell.
    package_spec = released_package_spec()
    digest = hashlib.sha256(nbgrader.__version__.encode() + package_spec.encode())
    for master in sorted(SOLUTIONS.glob("*.ipynb")):
        digest.update(master.name.encode() + master.read_bytes())
    folder = cache / digest.hexdigest()[:16]
    if not (folder / "complete").exists():
        cache.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(dir=cache))
        generate_release(scratch / "templates", scratch / "course", package_spec)
        (scratch / "complete").touch()
        try:
            os.rename(scratch, folder)
        except OSError:  # another grader made the same folder meanwhile
            shutil.rmtree(scratch, ignore_errors=True)
    return folder / "templates", folder / "course" / "gradebook.db"


def _students(submissions: Path) -> list[str]:
    if not submissions.is_dir():
        raise GradingError(f"{submissions} is not a folder of student folders")
    students = sorted(p.name for p in submissions.iterdir() if p.is_dir())
    if not students:
        raise GradingError(f"{submissions} holds no student folders (expected {submissions}/<student_id>/*.ipynb)")
    return students


def make_job(work: Path, student: str, folder: Path, templates: Path, template_db: Path, mpl_cache: Path,
             settings: Settings, private: list[str]) -> dict:
    """Everything a worker needs, as JSON-ready data."""
    hidden, readable = sandbox.student_policy(private)
    return {
        "student": student, "submission": str(folder), "work": str(work), "result": str(work / "result.json"),
        "templates": str(templates), "template_db": str(template_db), "hidden": hidden, "readable": readable,
        "notebook_seconds": settings.notebook_seconds, "job_seconds": settings.job_seconds,
        "matplotlib_cache": str(mpl_cache),
    }


def _on_a_slot(slots: queue.Queue, job: dict) -> dict:
    slot = slots.get()
    try:
        return slot.grade(job)
    finally:
        slots.put(slot)


class _Slot:
    """One worker process that grades students one after another (see ``worker.serve``).

    A worker that fails, or takes longer than a student's budget, is killed
    with everything it started; that student gets a zero result with the
    reason, and the next student gets a fresh worker.
    """

    def __init__(self, folder: Path, settings: Settings):
        self.folder, self.settings, self.process = folder, settings, None
        self.budget = len(NOTEBOOKS) * settings.notebook_seconds + 60 * settings.job_seconds + 300

    def grade(self, job: dict) -> dict:
        started = time.monotonic()
        work = Path(job["work"])
        work.mkdir(parents=True)
        (work / "job.json").write_text(json.dumps(job))
        failure = None
        try:
            if self.process is None:
                self._start()
            self.process.stdin.write(f"{work / 'job.json'}\n".encode())
            self.process.stdin.flush()
            if not self._answered(started + self.budget):
                failure = f"grading took longer than {self.budget:g} s"
        except OSError as err:  # the worker died before it read the job
            failure = f"the grader's worker stopped ({err})"
        result_file = Path(job["result"])
        if failure is None and result_file.exists():
            return json.loads(result_file.read_text())
        if self.process is not None and self.process.poll() is not None:
            failure = f"the grader's worker exited with code {self.process.returncode}"
        self.stop()
        tail = (self.folder / "worker.log").read_text(errors="replace")[-3000:]
        return report.failed_result(job["student"], failure or "the grader's worker left no result", tail,
                                    time.monotonic() - started)

    def _start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.folder / "worker.log", "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "autograder.grading.worker", "--serve", str(self.folder)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, env=_worker_env(self.folder, self.settings),
                cwd=self.folder, start_new_session=True)

    def _answered(self, deadline: float) -> bool:
        """Whether the worker printed a line (its result) before ``deadline``."""
        selector = selectors.DefaultSelector()
        selector.register(self.process.stdout, selectors.EVENT_READ)
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not selector.select(timeout=remaining):
            return False
        return bool(self.process.stdout.readline())

    def stop(self) -> None:
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGKILL)  # the worker, its fork server and their kernels
        except (ProcessLookupError, PermissionError):
            pass
        self.process.wait()
        self.process = None


def _worker_env(folder: Path, settings: Settings) -> dict[str, str]:
    keep = ("PATH", "LANG", "LC_ALL", "NINJA_NAMES_FILE")
    env = {key: os.environ[key] for key in keep if key in os.environ}
    # One thread per process: students are graded side by side on few cores,
    # and small-tensor workloads get slower, not faster, with more threads.
    env.update(HOME=str(folder / "home"), NINJA_EX4_STEPS=str(settings.ex4_steps), OMP_NUM_THREADS="1",
               MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", PYTHONDONTWRITEBYTECODE="1",
               PYTHONWARNINGS="ignore", NINJA_QUICK_TIMING="1",
               # Kernels draw no pictures while grading (the feedback is about the checks;
               # students see their figures in their own notebooks), which saves seconds.
               MPLBACKEND="agg")
    return env


def _matplotlib_cache(folder: Path) -> Path:
    """Build matplotlib's font cache once, instead of once in every kernel."""
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-c", "import matplotlib.font_manager"], env={**os.environ, "MPLCONFIGDIR": str(folder)},
                   check=False, capture_output=True)
    return folder
