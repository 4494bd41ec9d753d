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
* ``pass_rates.png``: the share of students passing each item;
* ``checkpoints/<student>.json``: which submission (and settings) the
  student's result in ``OUT`` belongs to; a re-run skips those students.

Students are graded on a Dask cluster, one task per student (see
``worker.grade_student``): an embedded ``LocalCluster`` of ``--jobs``
single-threaded worker processes, or the cluster behind ``--scheduler`` /
``DASK_SCHEDULER_ADDRESS`` (``engine.cluster``). A task gets the submission's files as bytes and
returns the result as data; this process alone writes ``OUT``, one result at a
time, as they arrive.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from concurrent.futures import CancelledError
from pathlib import Path

from ..engine.cluster import Settings, check_worker_versions, cluster_client
from ..engine.errors import GradingError
from ..engine.versions import VersionMismatch, versions
from ..judge import sandbox
from . import class_report, report
from .course import BUILD, SOLUTIONS, ensure_tools_on_path

CHECKPOINTS = "checkpoints"
MAX_FILE_BYTES = 50 * 2**20  # a submitted file larger than this is not sent (sanitize rejects it anyway)


def grade(submissions: Path, out: Path, settings: Settings = Settings(), progress=print, task=None) -> list[dict]:
    """Grade every student folder in ``submissions`` into ``out``; returns this run's results.

    Students with a result in ``out`` for the same files and settings are
    skipped unless ``settings.regrade``. ``task`` replaces
    ``worker.grade_student`` (tests use it to make a task that kills its
    worker). A script that calls this must guard its own code with
    ``if __name__ == "__main__":``: the embedded cluster's worker processes
    import the main module again.
    """
    from .worker import grade_student

    started = time.monotonic()
    ensure_tools_on_path()
    submissions, out = submissions.resolve(), out.resolve()
    students = _students(submissions)
    templates, template_db = template_course()
    bundle = template_bundle(templates, template_db)
    mine = versions()
    digests = {student: submission_digest(submissions / student, bundle["digest"], settings) for student in students}
    todo = [s for s in students if settings.regrade or checkpointed(out, s) != digests[s]]
    if len(todo) < len(students):
        progress(f"{len(students) - len(todo)} of {len(students)} students already have a result in {out} "
                 "(--regrade grades them again)")
    if not todo:
        return []
    with cluster_client(settings, progress) as client:  # before OUT is touched: a bad cluster leaves no trace
        check_worker_versions(client, mine)
        out.mkdir(parents=True, exist_ok=True)
        report.ensure_gradebook(out / "gradebook.db", template_db)
        if not sandbox.available():
            progress("warning: Linux user namespaces are not available here: student code runs "
                     "with the workers' permissions (it can read and write what they can)")
        results = _dispatch(client, todo, submissions, out, settings, bundle, mine, digests,
                            task or grade_student, progress)
    class_report.finish(out, submissions, results, time.monotonic() - started, progress)  # mistakes.csv, report.html, late work
    return sorted(results, key=lambda r: r["student"])


def _dispatch(client, students, submissions, out, settings, bundle, mine, digests, task, progress) -> list[dict]:
    """Send one task per student; record each result as it arrives."""
    from distributed import as_completed
    from tqdm import tqdm

    # The templates travel once, as a task of their own; unlike scattered data, a
    # task's result is computed again if the worker holding it is killed.
    shared = client.submit(_same, bundle, key=f"templates-{bundle['digest'][:12]}", pure=False)
    futures = {}
    for student in students:
        payload = {"student": student, **_submission_files(submissions / student),
                   "settings": settings.for_workers(), "versions": mine}
        futures[client.submit(task, payload, shared, key=f"grade-{digests[student][:12]}-{len(futures)}",
                              pure=False)] = student
    results, failures = [], 0
    bar = tqdm(total=len(futures), unit="student", disable=None, dynamic_ncols=True)
    try:
        for done, future in enumerate(as_completed(futures, loop=client.loop), start=1):
            result = _outcome(future, futures[future], settings)
            _record(out, result, digests[result["student"]])
            results.append(result)
            failures += bool(result.get("failed"))
            bar.set_postfix(failed=failures)
            bar.update()
            progress(f"[{done}/{len(futures)}] {report.one_line(result)}")
    except _Stop as stop:
        raise GradingError(f"{stop}; the {len(results)} results received are kept in {out}, "
                           "and running the same command again grades the rest") from None
    finally:
        bar.close()
        for future in futures:
            future.cancel()
        if results:
            report.write_tables(out)
    return results


def _same(value):
    return value


class _Stop(Exception):
    """The batch cannot go on (the scheduler went away, a worker of other versions)."""


def _outcome(future, student: str, settings: Settings) -> dict:
    """The student's result, or a failed result that says why there is none."""
    from distributed import KilledWorker

    started = time.monotonic()
    try:
        return future.result()
    except KilledWorker:
        return {**report.failed_result(student, f"grading this submission stopped the grader's worker process "
                                       f"every time it was tried (the scheduler's limit, {settings.tries} tries "
                                       "with the embedded cluster); it may exhaust memory or crash the worker",
                                       "", time.monotonic() - started), "failed": True}
    except VersionMismatch as err:
        raise _Stop(f"a worker was refused: {err}") from None
    except (OSError, TimeoutError) as err:
        raise _Stop(f"lost the Dask scheduler ({type(err).__name__}: {err})") from None
    except CancelledError as err:  # the scheduler went away, or lost what the task needed
        raise _Stop(f"the Dask scheduler cancelled the grading ({err})") from None
    except Exception as err:
        return {**report.failed_result(student, f"the grader failed on this submission ({type(err).__name__}: "
                                       f"{str(err)[:300]})", "", time.monotonic() - started), "failed": True}


# ---------------------------------------------------- submissions and templates

def _submission_files(folder: Path) -> dict:
    """A student folder as data: its files' bytes, and the names that were links or folders."""
    if folder.is_symlink():
        return {"files": None, "links": [], "folders": []}
    files, links, folders = {}, [], []
    for path in sorted(folder.iterdir()):
        if path.is_symlink():
            links.append(path.name)
        elif path.is_dir():
            folders.append(path.name)
        elif path.is_file() and path.stat().st_size <= MAX_FILE_BYTES:
            files[path.name] = path.read_bytes()
        else:
            folders.append(path.name)  # listed as an extra, never read
    return {"files": files, "links": links, "folders": folders}


def submission_digest(folder: Path, templates_digest: str, settings: Settings) -> str:
    """Identifies a student's grading: the files handed in, the templates, the settings."""
    digest = hashlib.sha256(templates_digest.encode())
    digest.update(json.dumps({k: v for k, v in settings.for_workers().items() if k != "keep_work"},
                             sort_keys=True).encode())
    data = _submission_files(folder)
    for name, content in sorted((data["files"] or {}).items()):
        digest.update(name.encode() + b"\0" + hashlib.sha256(content).digest())
    digest.update(json.dumps([data["files"] is None, data["links"], data["folders"]]).encode())
    return digest.hexdigest()


def checkpointed(out: Path, student: str) -> str | None:
    """The digest of the submission whose result ``out`` holds for ``student`` (None: no result)."""
    path = _checkpoint(out, student)
    try:
        return json.loads(path.read_text())["digest"]
    except (OSError, ValueError, KeyError):
        return None


def _checkpoint(out: Path, student: str) -> Path:
    return report.safe_child(out / CHECKPOINTS, student + ".json") if student not in ("", ".", "..") else \
        out / CHECKPOINTS / "invalid"


def _record(out: Path, result: dict, digest: str) -> None:
    """Write the result into ``out``, then its checkpoint (so a checkpoint always has its result)."""
    checkpoint = _checkpoint(out, result["student"])
    checkpoint.unlink(missing_ok=True)
    report.record(out, result)
    checkpoint.parent.mkdir(exist_ok=True)
    scratch = checkpoint.with_name(checkpoint.name + ".tmp")
    scratch.write_text(json.dumps({"digest": digest, "failed": bool(result.get("failed")),
                                   "seconds": result.get("seconds"), "worker": result.get("worker")}))
    os.replace(scratch, checkpoint)


def template_bundle(templates: Path, template_db: Path) -> dict:
    """The released notebooks and the template gradebook as bytes, for workers without our files."""
    notebooks = {path.name: path.read_bytes() for path in sorted(templates.glob("*.ipynb"))}
    gradebook = template_db.read_bytes()
    digest = hashlib.sha256(gradebook)
    for name, data in notebooks.items():
        digest.update(name.encode() + data)
    return {"digest": digest.hexdigest(), "notebooks": notebooks, "gradebook": gradebook}


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


