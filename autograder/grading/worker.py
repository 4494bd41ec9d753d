"""Grade one student on a Dask worker: ``grade_student(task, templates)``.

The grader (``grade``) sends one task per student to a Dask cluster. A task
carries the submission as data (``submissions.Submission``: the notebooks'
bytes, never a path into the student's folder) and the worker's settings,
so a worker needs the installed package and nothing else: no shared file
system, no checkout. For every student a worker, in one pass:

1. sanitizes the notebooks onto the released templates (``sanitize``);
2. judges every item: the answer cells run in sandboxed children on hidden
   inputs, the references are computed here (``judge.runner``); this alone
   decides the score;
3. records: the score of every graded cell, and the autograded notebooks
   (the sanitized notebooks with each test cell's verdict as its output);
4. writes the feedback pages (``feedback``), from trusted parts only.

No notebook is executed: the student's own run is shown from the outputs
saved in their notebook, as what it says, never as what decides. The
result (``results.StudentResult``) goes back to the grader, which alone
writes ``OUT`` and the gradebook.

Each worker process keeps one fork server (``judge.forkserver``) for all the
students it grades, so torch is imported once per worker, not per student.
"""

from __future__ import annotations

import atexit
import copy
import functools
import json
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

import nbformat

from ..engine.versions import VersionMismatch, version_conflicts, versions
from ..exercises import ASSIGNMENT, ITEMS, items_of
from ..judge import sandbox
from ..judge.forkserver import ForkServer
from ..judge.protocol import inherited_env
from ..judge.records import Verdict
from ..judge.runner import judge_submission
from . import feedback
from .results import StudentResult, WorkerSettings
from .sanitize import Sanitized, sanitize_submission
from .submissions import EXCHANGE_FILES, Submission


@functools.lru_cache(maxsize=4)
def _templates(digest: str, notebooks: tuple[tuple[str, bytes], ...]) -> dict[str, nbformat.NotebookNode]:
    """The released notebooks, read once per worker (the digest names them)."""
    return {Path(name).stem: nbformat.reads(data.decode(), as_version=4) for name, data in notebooks}


def grade_student(task: dict, templates: dict) -> StudentResult:
    """The Dask task for one student.

    ``task``: ``submission`` (a ``Submission``), ``settings`` (``WorkerSettings``),
    ``versions`` (the grader's). ``templates``: ``digest``, ``notebooks`` ({file name: bytes}).
    """
    started = time.monotonic()
    conflicts = version_conflicts(task["versions"], versions(), f"worker {_hostname()}")
    if conflicts:
        raise VersionMismatch("; ".join(conflicts))
    notebooks = _templates(templates["digest"], tuple(sorted(templates["notebooks"].items())))
    result = grade_one(task["submission"], notebooks, task["settings"], _fork_server(), started)
    result.worker = _hostname()
    return result


def grade_one(submission: Submission, templates: dict[str, nbformat.NotebookNode], settings: WorkerSettings,
              fork_socket: str | None, started: float) -> StudentResult:
    """Sanitize, judge, record, feedback for one student (``started``: ``time.monotonic()``, their budget's start)."""
    clock = _Clock()
    sanitized, notes = sanitize_submission(submission, templates)
    sources = {name: [c.source for c in s.notebook.cells if c.cell_type == "code"]
               for name, s in sanitized.items() if s.readable}
    clock.lap("sanitize")
    verdicts = judge_submission(list(ITEMS), sources, sandbox.student_policy(), settings.item_timeout,
                                fork_socket, deadline=started + settings.student_timeout, limits=settings.limits())
    for item in ITEMS:  # say why, rather than "answer cell missing", for a notebook that was not usable
        if item.notebook in sanitized and not sanitized[item.notebook].readable:
            verdicts[item.grade_id] = Verdict(item.grade_id, False, sanitized[item.notebook].notes[0])
    clock.lap("judge")
    scores = {item.grade_id: float(item.points) if verdicts[item.grade_id].passed else 0.0 for item in ITEMS}
    autograded = {f"{name}.ipynb": _autograded(s, verdicts).encode() for name, s in sanitized.items() if s.readable}
    clock.lap("record")
    result = StudentResult(submission.student, scores, verdicts, notes,
                           {name: list(s.notes) for name, s in sanitized.items()}, autograded,
                           sandboxed=sandbox.available())
    result.feedback = feedback_pages(result, sanitized, settings.assignment)
    result.exchange = {name: data for name, data in submission.files.items() if name in EXCHANGE_FILES}
    clock.lap("feedback")
    result.phases, result.seconds = clock.laps, round(time.monotonic() - started, 2)
    return result


def _autograded(sanitized: Sanitized, verdicts: dict[str, Verdict]) -> str:
    """The graded notebook: the sanitized one, each test cell's output saying how its item went (text only)."""
    notebook = copy.deepcopy(sanitized.notebook)
    for cell in notebook.cells:
        grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if cell.cell_type != "code" or grade_id not in verdicts:
            continue
        verdict = verdicts[grade_id]
        saved = sanitized.saved_outputs.get(grade_id)
        text = (f"In your notebook as saved (not run again by the grader):\n{saved}\n" if saved else "") + \
            f"{grade_id}: {'passed' if verdict.passed else 'FAILED'} on unseen inputs.\n{verdict.message}\n"
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=text)]
    # As nbformat writes a notebook, without validating again what sanitize built from the template.
    return json.dumps(notebook, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def feedback_pages(result: StudentResult, sanitized: dict[str, Sanitized], assignment: str = ASSIGNMENT) -> dict[str, bytes]:
    """{file name: page}: one page per notebook that could be read, and the index of every item."""
    verdicts = {gid: {"passed": v.passed, "message": v.message, "diagnosis": v.diagnosis}
                for gid, v in result.verdicts.items()}
    pages, links = {}, {}
    for name, notebook in sanitized.items():
        if not notebook.readable or not items_of(name):
            links[name] = (notebook.notes or ["it was not graded"])[0]
            continue
        pages[f"{name}.html"] = feedback.notebook_page(result.student, name, notebook.notebook, notebook.saved_outputs,
                                                       verdicts, result.scores, notebook.notes).encode()
        links[name] = f"{assignment}/{name}.html"
    pages["index.html"] = feedback.index_page(result.student, result.scores, verdicts,
                                              result.notes + [n for s in sanitized.values() for n in s.notes],
                                              links).encode()
    return pages


class _Clock:
    """Seconds spent in each phase, for the checkpoint, the benchmarks and the log."""

    def __init__(self):
        self.laps: dict[str, float] = {}
        self._last = time.monotonic()

    def lap(self, name: str) -> None:
        now = time.monotonic()
        self.laps[name] = round(now - self._last, 3)
        self._last = now


def _hostname() -> str:
    import socket

    return f"{socket.gethostname()}:{os.getpid()}"


# ------------------------------------------------------- one worker process

_state: dict = {}
_state_lock = threading.Lock()
ROOT_PREFIX = "ninja-worker-"


def _worker_root() -> Path:
    """This process's folder for its fork server's socket and log (removed when the process exits normally)."""
    with _state_lock:
        if "root" not in _state:
            _remove_stale_roots()
            _state["root"] = Path(tempfile.mkdtemp(prefix=ROOT_PREFIX))
            (_state["root"] / "pid").write_text(str(os.getpid()))
            atexit.register(_shutdown)
        return _state["root"]


def _remove_stale_roots() -> None:
    """Folders of this user's workers that were killed (their process is gone)."""
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


def grading_env() -> dict[str, str]:
    """The environment of this worker's fork server, and so of every judge child."""
    # One thread per process: students are graded side by side on few cores,
    # and small-tensor workloads get slower, not faster, with more threads.
    env = inherited_env()
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", PYTHONDONTWRITEBYTECODE="1",
               PYTHONWARNINGS="ignore")
    return env


def _fork_server() -> str:
    """The socket of this process's fork server, started on first use (and again if it died)."""
    root = _worker_root()
    with _state_lock:
        server = _state.get("fork_server")
        if server is None or server.process.poll() is not None:
            socket_path = root / f"fork-{len(_state.get('servers', []))}.sock"
            server = ForkServer(socket_path, {**grading_env(), "HOME": str(root)}, root / "forkserver.log")
            _state["fork_server"] = server
            _state.setdefault("servers", []).append(server)
        return str(server.socket_path)


def _shutdown() -> None:
    for server in _state.get("servers", []):
        server.close()
    shutil.rmtree(_state.get("root", "/nonexistent"), ignore_errors=True)
