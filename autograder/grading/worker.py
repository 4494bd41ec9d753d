"""Grade one student on a Dask worker: ``grade_student(task, templates)``.

The grader (``grade``) sends one task per student to a Dask cluster. A task
carries the submission's files as bytes and the course settings, so a worker
needs the installed package and nothing else: no shared file system, no
checkout. For every student a worker:

1. writes the submission into a private scratch folder;
2. sanitizes it onto the released templates (``sanitize``);
3. judges every item in a sandboxed child (``judge.runner``);
4. runs nbgrader's real autograde on its own copy of the gradebook, with the
   notebook kernels in the sandbox (``BoundedExecute``) and the verdicts
   written into the test cells (``ApplyVerdicts``);
5. runs nbgrader's generate_feedback;
6. returns the result: the scores nbgrader recorded, the verdicts, notes,
   timings and the autograded notebooks and feedback pages as bytes.

Student code never sees the private folder (the gradebook, the verdicts), so
it cannot change its own score. Only the grader writes the real gradebook.

Each worker process keeps one fork server (``forkserver``) for all the
students it grades, so torch is imported once per worker, not per student.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from dataclasses import asdict
from pathlib import Path

import nbformat

from ..engine.versions import VersionMismatch, version_conflicts, versions
from ..exercises import ASSIGNMENT, ITEMS
from ..judge import sandbox
from ..judge.forkserver import ForkServer, kernel_argv
from ..judge.protocol import inherited_env
from ..judge.runner import judge_submission
from .course import ensure_tools_on_path, nbgrader_config
from .sanitize import sanitize_folder

INTERNAL_ID = "student"  # nbgrader globs paths: a real id like "a[1]" would not match itself
KERNEL_NAME = "backprop-ninja-sandbox"
LINK_TARGET = "/nonexistent-link-target"  # what a student's symbolic link becomes on the worker


def grade_student(task: dict, templates: dict) -> dict:
    """The Dask task for one student.

    ``task``: ``student``, ``files`` ({relative path: bytes}, or None for a
    submission that was a link), ``links`` (names that were symbolic links),
    ``settings`` (``Settings`` as a dict), ``versions`` (the grader's).
    ``templates``: ``digest``, ``notebooks`` ({file name: bytes}), ``gradebook`` (bytes).
    """
    started = time.monotonic()
    conflicts = version_conflicts(task["versions"], versions(), f"worker {_hostname()}")
    if conflicts:
        raise VersionMismatch("; ".join(conflicts))
    settings = task["settings"]
    root = _worker_root()
    scratch = Path(tempfile.mkdtemp(prefix="student-", dir=root))
    try:
        submission = _write_submission(scratch / "submission", task)
        template_dir, template_db = _templates_on_disk(root, templates)
        os.environ.update(grading_env(settings))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # nbgrader's SQLAlchemy chatter; the result says what matters
            result = grade_one(task["student"], submission, scratch / "work", template_dir, template_db, settings,
                               _fork_server(root, settings), started)
        autograded, feedback = Path(result.pop("autograded")), Path(result.pop("feedback"))
        result["autograded_files"] = _read_files(autograded, "*.ipynb")
        result["feedback_files"] = _read_files(feedback, "*.html")
        result["worker"] = _hostname()
        return result
    finally:
        if not settings.get("keep_work"):
            shutil.rmtree(scratch, ignore_errors=True)


def grading_env(settings: dict) -> dict[str, str]:
    """Environment for the kernels and the judge of one student."""
    # One thread per process: students are graded side by side on few cores,
    # and small-tensor workloads get slower, not faster, with more threads.
    return dict(NINJA_EX4_STEPS=str(settings["ex4_steps"]), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
                OPENBLAS_NUM_THREADS="1", PYTHONDONTWRITEBYTECODE="1", PYTHONWARNINGS="ignore",
                NINJA_QUICK_TIMING="1",
                # Kernels draw no pictures while grading (the feedback is about the checks;
                # students see their figures in their own notebooks), which saves seconds.
                MPLBACKEND="agg")


def _hostname() -> str:
    import socket

    return f"{socket.gethostname()}:{os.getpid()}"


def _write_submission(folder: Path, task: dict) -> Path:
    """The student's files as they were handed in; links become links that lead nowhere."""
    if task["files"] is None:  # the student folder itself was a link: sanitize says so
        folder.parent.mkdir(parents=True, exist_ok=True)
        folder.symlink_to(LINK_TARGET)
        return folder
    folder.mkdir(parents=True)
    for name, data in task["files"].items():
        target = folder / name
        if target.resolve().parent != folder.resolve():
            continue  # only plain names are sent; anything else is not the student's file
        target.write_bytes(data)
    for name in task.get("links", []):
        (folder / name).symlink_to(LINK_TARGET)
    for name in task.get("folders", []):
        (folder / name).mkdir(exist_ok=True)
    return folder


def _read_files(folder: Path, pattern: str) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.glob(pattern))} if folder.is_dir() else {}


# ------------------------------------------------------- one worker process

_state: dict = {}
_state_lock = threading.Lock()


def _worker_root() -> Path:
    """This process's scratch folder (removed when the process exits normally)."""
    with _state_lock:
        if "root" not in _state:
            _remove_stale_roots()
            _state["root"] = Path(tempfile.mkdtemp(prefix=ROOT_PREFIX))
            (_state["root"] / "pid").write_text(str(os.getpid()))
            atexit.register(_shutdown)
        return _state["root"]


ROOT_PREFIX = "ninja-worker-"


def _remove_stale_roots() -> None:
    """Scratch folders of this user's workers that were killed (their process is gone)."""
    for folder in Path(tempfile.gettempdir()).glob(ROOT_PREFIX + "*"):
        try:
            if folder.stat().st_uid != os.getuid():
                continue
            pid = int((folder / "pid").read_text())
            os.kill(pid, 0)  # raises when no such process
        except ProcessLookupError:
            shutil.rmtree(folder, ignore_errors=True)
        except (OSError, ValueError):  # no pid file yet, or not ours to judge
            continue


def _fork_server(root: Path, settings: dict) -> Path:
    """The socket of this process's fork server, started on first use."""
    with _state_lock:
        server = _state.get("fork_server")
        if server is None or server.process.poll() is not None:
            env = inherited_env()
            env.update(grading_env(settings), HOME=str(root / "home"))
            socket_path = root / f"fork-{len(_state.get('servers', []))}.sock"
            server = ForkServer(socket_path, env, root / "forkserver.log")
            _state["fork_server"] = server
            _state.setdefault("servers", []).append(server)
        return server.socket_path


def _templates_on_disk(root: Path, templates: dict) -> tuple[Path, Path]:
    """The released notebooks and the template gradebook, written once per worker."""
    folder = root / f"templates-{templates['digest'][:16]}"
    if not folder.exists():
        scratch = Path(tempfile.mkdtemp(dir=root))
        (scratch / "notebooks").mkdir()
        for name, data in templates["notebooks"].items():
            (scratch / "notebooks" / Path(name).name).write_bytes(data)
        (scratch / "gradebook.db").write_bytes(templates["gradebook"])
        os.rename(scratch, folder)
    return folder / "notebooks", folder / "gradebook.db"


def _matplotlib_cache(root: Path) -> Path:
    """Build matplotlib's font cache once per worker, instead of once in every kernel."""
    folder = root / "mpl"
    if not folder.exists():
        folder.mkdir(parents=True)
        subprocess.run([sys.executable, "-c", "import matplotlib.font_manager"],
                       env={**os.environ, "MPLCONFIGDIR": str(folder)}, check=False, capture_output=True)
    return folder


def _shutdown() -> None:
    for server in _state.get("servers", []):
        server.close()
    shutil.rmtree(_state.get("root", "/nonexistent"), ignore_errors=True)


# ------------------------------------------------------------ one student

def grade_one(student: str, submission: Path, work: Path, template_dir: Path, template_db: Path, settings: dict,
              fork_socket: Path, started: float) -> dict:
    """Steps 2-5 for one student; returns the result (``autograded`` and ``feedback`` as folders).

    ``started`` (``time.monotonic()``) starts the student's budget of
    ``settings["student_seconds"]``: what is not judged by then scores 0.
    """
    deadline = started + settings["student_seconds"]
    course, private, run = work / "course", work / "private", work / "run"
    for folder in (course, private, run):
        folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(template_db, private / "gradebook.db")
    # matplotlib's font cache, built once per worker, where this student's kernels may write
    shutil.copytree(_matplotlib_cache(_worker_root()), run / "runtime" / "mpl")
    os.environ["MPLCONFIGDIR"] = str(run / "runtime" / "mpl")
    templates = {p.stem: nbformat.read(p, as_version=4) for p in sorted(template_dir.glob("*.ipynb"))}

    clock = _Clock()
    sanitized, notes = sanitize_folder(submission, templates)
    submitted = course / "submitted" / INTERNAL_ID / ASSIGNMENT
    submitted.mkdir(parents=True, exist_ok=True)
    (course / "source" / ASSIGNMENT).mkdir(parents=True, exist_ok=True)
    for name, result in sanitized.items():
        if result.readable:  # nbgrader scores a notebook that is not there as 0, without running a blank copy
            nbformat.write(result.notebook, submitted / f"{name}.ipynb")

    hidden, readable = sandbox.student_policy([str(_worker_root())])  # other students' folders live there
    limits = {"data_bytes": int(settings["memory_gb"] * 2**30)} if settings.get("memory_gb") else {}
    sources = {name: [c.source for c in s.notebook.cells if c.cell_type == "code"]
               for name, s in sanitized.items() if s.readable}
    clock.lap("sanitize")
    autograded = course / "autograded" / INTERNAL_ID / ASSIGNMENT
    verdicts = judge_submission(list(ITEMS), sources, hidden, readable, settings["item_seconds"], str(fork_socket),
                                deadline=deadline, limits=limits)
    for item in ITEMS:  # say why, rather than "answer cell missing", for a notebook that was not usable
        if item.notebook in sanitized and not sanitized[item.notebook].readable:
            verdicts[item.grade_id].message = sanitized[item.notebook].notes[0]
    clock.lap("judge")
    verdicts_file = private / "verdicts.json"
    verdicts_file.write_text(json.dumps({gid: asdict(v) for gid, v in verdicts.items()}))
    policy = {"hidden": hidden, "writable": [str(autograded), str(run / "runtime")], "readable": readable,
              "home": "/tmp/home"}
    log = _autograde(course, private, run, verdicts_file, settings, autograded, clock, fork_socket,
                     {"policy": policy, "limits": limits, "deadline": deadline})
    scores = _recorded_scores(private / "gradebook.db")
    return {
        "student": student,
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


def _autograde(course: Path, private: Path, run: Path, verdicts_file: Path, settings: dict, autograded: Path,
               clock: "_Clock", fork_socket: Path, sandboxing: dict) -> str:
    """nbgrader autograde + generate_feedback for the one student; returns their logs."""
    from nbconvert.preprocessors import ClearMetadataPreprocessor
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory
    from nbgrader.preprocessors import (
        AssignLatePenalties,
        CheckCellMetadata,
        IgnorePattern,
        LimitOutput,
        SaveAutoGrades,
    )

    from .preprocessors import ApplyVerdicts, BoundedExecute

    ensure_tools_on_path()
    autograded.mkdir(parents=True, exist_ok=True)
    # The kernel may write only its working folder and its sockets' folder (see ``grade_one``).
    kernel_env = inherited_env()
    kernel_env.update(grading_env(settings), MPLCONFIGDIR=os.environ["MPLCONFIGDIR"])
    _write_kernelspec(run, fork_socket, {"policy": sandboxing["policy"], "limits": sandboxing["limits"],
                                         "env": kernel_env, "log": str(_worker_root() / "kernels.log")})
    os.environ.update(JUPYTER_PATH=str(run / "share"), JUPYTER_RUNTIME_DIR=str(run / "runtime"))
    config = nbgrader_config(course, db=private / "gradebook.db")
    config.Autograde.autograde_preprocessors = [BoundedExecute, ApplyVerdicts, IgnorePattern, ClearMetadataPreprocessor,
                                                LimitOutput, SaveAutoGrades, AssignLatePenalties, CheckCellMetadata]
    config.BoundedExecute.notebook_seconds = settings["notebook_seconds"]
    config.BoundedExecute.student_deadline = sandboxing["deadline"]
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


def _write_kernelspec(run: Path, fork_socket: Path, request: dict) -> None:
    """A kernel started warm by the fork server, in the sandbox, talking over Unix sockets.

    Interrupts go by message: a signal would reach the launcher, not the kernel.
    """
    (run / "runtime").mkdir(parents=True, exist_ok=True)
    folder = run / "share" / "kernels" / KERNEL_NAME
    folder.mkdir(parents=True, exist_ok=True)
    policy_file = folder / "policy.json"
    policy_file.write_text(json.dumps(request))
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
