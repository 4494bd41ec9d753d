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

import json
import os
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
from ..data import REPO_ROOT
from ..exercises import ASSIGNMENT, ITEMS, NOTEBOOKS
from . import report
from .course import ensure_tools_on_path
from .release import generate_release


class GradingError(RuntimeError):
    """The batch cannot start (bad folders, an incompatible gradebook)."""


@dataclass(frozen=True)
class Settings:
    jobs: int = os.cpu_count() or 1
    notebook_seconds: float = 120.0  # per notebook, in the student's kernel
    job_seconds: float = 10.0  # per item and hidden case, in the judge
    ex4_steps: int = 1000  # Exercise 4's training run while grading (the lecture's is 200,000)
    keep_work: bool = False  # keep the workers' folders (for debugging the grader)


def grade(submissions: Path, out: Path, settings: Settings = Settings(), progress=print) -> list[dict]:
    """Grade every student folder in ``submissions`` into ``out``; returns the results."""
    ensure_tools_on_path()
    submissions, out = submissions.resolve(), out.resolve()
    students = _students(submissions)
    out.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="ninja-grading-"))
    try:
        templates = root / "templates"
        generate_release(templates, root / "template")
        template_db = root / "template" / "gradebook.db"
        report.ensure_gradebook(out / "gradebook.db", template_db)
        mpl_cache = _matplotlib_cache(root / "mpl")
        if not sandbox.available():
            progress("warning: Linux user namespaces are not available here: student code runs "
                     "with your permissions (it can read and write what you can)")
        jobs = [make_job(root / f"w{index}", student, submissions / student, templates, template_db,
                         settings, [str(submissions), str(out), str(root)]) for index, student in enumerate(students)]
        results = []
        with ThreadPoolExecutor(max_workers=max(1, settings.jobs)) as pool:
            futures = {pool.submit(_run_worker, job, settings, mpl_cache): job for job in jobs}
            for done, future in enumerate(as_completed(futures), start=1):
                result = future.result()
                report.record(out, result)
                results.append(result)
                progress(f"[{done}/{len(jobs)}] {report.one_line(result)}")
        report.write_tables(out)
        return sorted(results, key=lambda r: r["student"])
    finally:
        if not settings.keep_work:
            shutil.rmtree(root, ignore_errors=True)


def _students(submissions: Path) -> list[str]:
    if not submissions.is_dir():
        raise GradingError(f"{submissions} is not a folder of student folders")
    students = sorted(p.name for p in submissions.iterdir() if p.is_dir())
    if not students:
        raise GradingError(f"{submissions} holds no student folders (expected {submissions}/<student_id>/*.ipynb)")
    return students


def make_job(work: Path, student: str, folder: Path, templates: Path, template_db: Path, settings: Settings,
             private: list[str]) -> dict:
    """Everything a worker needs, as JSON-ready data."""
    home = Path.home()
    hidden = [str(REPO_ROOT), str(home), "/root", "/home", *private]
    readable = [str(REPO_ROOT / "autograder"), str(REPO_ROOT / "data"), sys.prefix, sys.base_prefix,
                os.path.dirname(os.path.realpath(sys.executable))]
    return {
        "student": student, "submission": str(folder), "work": str(work), "result": str(work / "result.json"),
        "templates": str(templates), "template_db": str(template_db), "hidden": hidden, "readable": readable,
        "notebook_seconds": settings.notebook_seconds, "job_seconds": settings.job_seconds,
    }


def _run_worker(job: dict, settings: Settings, mpl_cache: Path) -> dict:
    """Run one worker process; a worker that fails still yields a (zero) result with the reason."""
    work = Path(job["work"])
    work.mkdir(parents=True)
    (work / "job.json").write_text(json.dumps(job))
    env = _worker_env(work, settings, mpl_cache)
    budget = len(NOTEBOOKS) * settings.notebook_seconds + 60 * settings.job_seconds + 300
    started = time.monotonic()
    with open(work / "worker.log", "wb") as log:
        worker = subprocess.Popen([sys.executable, "-m", "autograder.grading.worker", str(work / "job.json")],
                                  stdout=log, stderr=subprocess.STDOUT, env=env, cwd=work, start_new_session=True)
        try:
            worker.wait(timeout=budget)
            failure = None if worker.returncode == 0 else f"the grader's worker exited with code {worker.returncode}"
        except subprocess.TimeoutExpired:
            failure = f"grading took longer than {budget:g} s"
        finally:
            _kill_group(worker)
    result_file = Path(job["result"])
    if failure is None and result_file.exists():
        return json.loads(result_file.read_text())
    tail = (work / "worker.log").read_text(errors="replace")[-3000:]
    return report.failed_result(job["student"], failure or "the grader's worker left no result", tail,
                                time.monotonic() - started)


def _kill_group(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    process.wait()


def _worker_env(work: Path, settings: Settings, mpl_cache: Path) -> dict[str, str]:
    keep = ("PATH", "LANG", "LC_ALL", "NINJA_NAMES_FILE")
    env = {key: os.environ[key] for key in keep if key in os.environ}
    mpl = work / "run" / "runtime" / "mpl"
    shutil.copytree(mpl_cache, mpl)
    # One thread per kernel: students are graded side by side on few cores, and
    # small-tensor workloads get slower, not faster, with more threads.
    env.update(HOME=str(work / "home"), NINJA_EX4_STEPS=str(settings.ex4_steps), OMP_NUM_THREADS="1",
               MKL_NUM_THREADS="1", PYTHONDONTWRITEBYTECODE="1", MPLCONFIGDIR=str(mpl),
               PYTHONWARNINGS="ignore")
    return env


def _matplotlib_cache(folder: Path) -> Path:
    """Build matplotlib's font cache once, instead of once in every kernel."""
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-c", "import matplotlib.font_manager"], env={**os.environ, "MPLCONFIGDIR": str(folder)},
                   check=False, capture_output=True)
    return folder


__all__ = ["GradingError", "Settings", "grade", "ASSIGNMENT", "ITEMS"]
