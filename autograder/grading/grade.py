"""``backprop-ninja grade SUBMISSIONS --out OUT``: grade a folder of submissions.

``SUBMISSIONS/<student_id>/`` holds one student's notebooks, named as released.
``OUT`` becomes an nbgrader course folder (point formgrader at it if you like):

* ``gradebook.db``: every student ever graded into ``OUT``; re-grading a
  student replaces all of their scores, others are kept;
* ``autograded/<student>/backprop_ninja/``: the judged notebooks;
* ``feedback/<student>/``: ``index.html`` (every item, its score and why),
  ``report.json``, and a page per notebook under ``backprop_ninja/``;
* ``grades.csv``: one row per student, one column per graded item, total, max;
  ``flags.csv``: items scored 0 because the answer was not the student's own
  work (``.grad`` reads, ``backward()``, hard-coded numbers, ...);
* ``student_ids.csv``: the student ids whose folders in ``OUT`` carry another
  name (an id no file system takes as it is);
* ``pass_rates.png``: the share of students passing each item;
* ``checkpoints/<student>.json``: which submission (and settings) the
  student's result in ``OUT`` belongs to, and how long each phase took; a
  re-run skips those students.

Students are graded on a Dask cluster, one task per student (see
``worker.grade_student``): an embedded ``LocalCluster`` of ``--jobs``
single-threaded worker processes, or the cluster behind ``--scheduler`` /
``DASK_SCHEDULER_ADDRESS`` (``engine.cluster``). A task gets the submission
as data (read safely and within limits, ``submissions``) and returns the
result as data; this process alone writes ``OUT``, one result at a time, as
they arrive. Submissions are read just before they are sent, a few more
than there are workers at a time, so a large class never sits in memory.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from concurrent.futures import CancelledError
from dataclasses import replace
from pathlib import Path

from ..checking.csv_cells import safe_writer
from ..engine.cluster import check_worker_versions, cluster_client
from ..engine.errors import GradingError
from ..engine.versions import VersionMismatch, versions
from ..exercises import ASSIGNMENT, NOTEBOOKS
from ..judge import sandbox
from . import class_report, report
from .course import BUILD, SOLUTIONS, ensure_tools_on_path
from .results import GradingSettings, StudentResult
from .submissions import read_submission, safe_name

CHECKPOINTS = "checkpoints"
STUDENT_IDS_CSV = "student_ids.csv"
IN_FLIGHT_PER_WORKER = 2  # submissions sent ahead per worker: enough to keep it busy, few to hold in memory


def grade(submissions: Path, out: Path | report.Destination, settings: GradingSettings | None = None,
          progress=print, task=None) -> list[StudentResult]:
    """Grade every student folder in ``submissions`` into ``out``; returns this run's results.

    ``out`` is a folder (``--out``) or a ``report.Destination`` (``--course``).
    A student folder holds the notebooks, or nbgrader's ``<assignment>/``
    folder that holds them (``nbgrader collect``'s layout); see ``student_folders``.
    Students with a result in ``out`` for the same files and settings are
    skipped unless ``settings.regrade``. ``task`` replaces
    ``worker.grade_student`` (tests use it to make a task that kills its
    worker). A script that calls this must guard its own code with
    ``if __name__ == "__main__":``: the embedded cluster's worker processes
    import the main module again.
    """
    from .worker import grade_student

    settings = settings or GradingSettings()
    dest = report.destination(out)
    dest = replace(dest, root=dest.root.resolve(), tables=dest.tables.resolve())
    settings = settings.but(assignment=dest.assignment)
    started = time.monotonic()
    ensure_tools_on_path()
    folders = student_folders(submissions.resolve(), dest.assignment, progress)
    templates, template_db = template_course()
    bundle = template_bundle(templates, template_db)
    mine = versions()
    digests = {student: _digest(folder, student, bundle["digest"], settings) for student, folder in folders.items()}
    todo = [s for s in folders if settings.regrade or checkpointed(dest, s) != digests[s]]
    if len(todo) < len(folders):
        progress(f"{len(folders) - len(todo)} of {len(folders)} students already have a result in {dest.root} "
                 "(--regrade grades them again)")
    if not todo:
        return []
    with cluster_client(settings.cluster, progress) as client:  # before OUT is touched: a bad cluster leaves no trace
        check_worker_versions(client, mine)
        dest.root.mkdir(parents=True, exist_ok=True)
        report.ensure_gradebook(dest, template_db)
        dest.tables.mkdir(parents=True, exist_ok=True)
        write_student_ids(dest.tables, list(folders))
        if not sandbox.available():
            progress("warning: Linux namespaces are not available here: student code runs "
                     "with the workers' permissions (it can read and write what they can)")
        results = _dispatch(client, todo, folders, dest, settings, bundle, mine, digests,
                            task or grade_student, progress)
    class_report.finish(dest, results, time.monotonic() - started, progress)  # mistakes.csv, report.html, late work
    return sorted(results, key=lambda r: r.student)


def _dispatch(client, students, folders: dict[str, Path], out: report.Destination, settings: GradingSettings,
              bundle, mine, digests, task, progress) -> list[StudentResult]:
    """Send one task per student, a few at a time; record each result as it arrives."""
    import warnings

    from distributed import as_completed
    from tqdm import tqdm

    # A submission of a few MB travels inside its task; Dask's advice for large datasets does not apply.
    warnings.filterwarnings("ignore", message="Sending large graph", category=UserWarning)
    # The templates travel once, as a task of their own; unlike scattered data, a
    # task's result is computed again if the worker holding it is killed.
    shared = client.submit(_same, bundle, key=f"templates-{bundle['digest'][:12]}", pure=False)
    waiting = list(students)
    futures: dict = {}

    def send_next() -> None:
        index = len(students) - len(waiting)  # a key of its own: two students may hand in the very same files
        student = waiting.pop(0)
        payload = {"submission": read_submission(folders[student], student, NOTEBOOKS),
                   "settings": settings.worker, "versions": mine}
        future = client.submit(task, payload, shared, key=f"grade-{digests[student][:12]}-{index}", pure=False)
        futures[future] = student
        pending.add(future)

    pending = as_completed([], loop=client.loop)
    for _ in range(min(len(waiting), IN_FLIGHT_PER_WORKER * max(1, _worker_count(client, settings)))):
        send_next()
    results, failures = [], 0
    bar = tqdm(total=len(students), unit="student", disable=None, dynamic_ncols=True)
    try:
        for done, future in enumerate(pending, start=1):
            result = _outcome(future, futures.pop(future), settings)
            if waiting:
                send_next()
            _record(out, result, digests[result.student])
            results.append(result)
            failures += result.failed
            bar.set_postfix(failed=failures)
            bar.update()
            progress(f"[{done}/{len(students)}] {report.one_line(result)}")
    except _Stop as stop:
        raise GradingError(f"{stop}; the {len(results)} results received are kept in {out.root}, "
                           "and running the same command again grades the rest") from None
    finally:
        bar.close()
        for future in futures:
            future.cancel()
        if results:
            report.write_tables(out)
    return results


def _worker_count(client, settings: GradingSettings) -> int:
    try:
        return len(client.scheduler_info(n_workers=-1).get("workers", {})) or settings.cluster.jobs
    except Exception:  # an unusual scheduler: assume the embedded cluster's size
        return settings.cluster.jobs


def _same(value):
    return value


class _Stop(Exception):
    """The batch cannot go on (the scheduler went away, a worker of other versions)."""


def _outcome(future, student: str, settings: GradingSettings) -> StudentResult:
    """The student's result, or a failed result that says why there is none."""
    from distributed import KilledWorker

    started = time.monotonic()
    try:
        result = future.result()
        if not isinstance(result, StudentResult):
            raise TypeError(f"a task returned a {type(result).__name__}")
        return result
    except KilledWorker:
        return StudentResult.failure(student, f"grading this submission stopped the grader's worker process "
                                     f"every time it was tried (the scheduler's limit, {settings.cluster.tries} tries "
                                     "with the embedded cluster); it may exhaust memory or crash the worker",
                                     time.monotonic() - started)
    except VersionMismatch as err:
        raise _Stop(f"a worker was refused: {err}") from None
    except (OSError, TimeoutError) as err:
        raise _Stop(f"lost the Dask scheduler ({type(err).__name__}: {err})") from None
    except CancelledError as err:  # the scheduler went away, or lost what the task needed
        raise _Stop(f"the Dask scheduler cancelled the grading ({err})") from None
    except Exception as err:
        return StudentResult.failure(student, f"the grader failed on this submission ({type(err).__name__}: "
                                     f"{str(err)[:300]})", time.monotonic() - started)


# ---------------------------------------------------- submissions, checkpoints and templates

def _digest(folder: Path, student: str, templates_digest: str, settings: GradingSettings) -> str:
    """Identifies a student's grading: what was handed in, the templates, the worker's settings."""
    digest = hashlib.sha256(templates_digest.encode())
    digest.update(repr(settings.worker).encode())
    digest.update(read_submission(folder, student, NOTEBOOKS).digest().encode())
    return digest.hexdigest()


def checkpointed(out, student: str) -> str | None:
    """The digest of the submission whose result ``out`` (a Destination or a folder) holds for ``student``."""
    try:
        return json.loads(_checkpoint(out, student).read_text())["digest"]
    except (OSError, ValueError, KeyError):
        return None


def _checkpoint(out, student: str) -> Path:
    tables = report.destination(out).tables
    return report.safe_child(tables / CHECKPOINTS, report.student_folder(student) + ".json")


def _record(out: report.Destination, result: StudentResult, digest: str) -> None:
    """Write the result into ``out``, then its checkpoint (so a checkpoint always has its result)."""
    checkpoint = _checkpoint(out, result.student)
    checkpoint.unlink(missing_ok=True)
    report.record(out, result)
    checkpoint.parent.mkdir(exist_ok=True)
    scratch = checkpoint.with_name(checkpoint.name + ".tmp")
    scratch.write_text(json.dumps({"digest": digest, "failed": result.failed, "seconds": result.seconds,
                                   "phases": result.phases, "worker": result.worker}))
    os.replace(scratch, checkpoint)


def write_student_ids(tables: Path, students: list[str]) -> None:
    """``student_ids.csv``: every id whose folder in ``OUT`` has another name, with that name (kept over runs)."""
    path = tables / STUDENT_IDS_CSV
    known: dict[str, str] = {}
    if path.exists():
        import csv

        with open(path, newline="", encoding="utf-8", errors="surrogateescape") as file:
            known = {row[0].removeprefix("'"): row[1] for row in list(csv.reader(file))[1:] if len(row) == 2}
    known.update({student: safe_name(student) for student in students if safe_name(student) != student})
    if known:
        with open(path, "w", newline="", encoding="utf-8", errors="backslashreplace") as file:
            writer = safe_writer(file)
            writer.writerow(["student_id", "folder"])
            writer.writerows(sorted(known.items()))


def template_bundle(templates: Path, template_db: Path) -> dict:
    """The released notebooks as bytes, for workers without our files; the digest also covers the gradebook."""
    notebooks = {path.name: path.read_bytes() for path in sorted(templates.glob("*.ipynb"))}
    digest = hashlib.sha256(template_db.read_bytes())
    for name, data in notebooks.items():
        digest.update(name.encode() + data)
    return {"digest": digest.hexdigest(), "notebooks": notebooks}


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


def student_folders(submissions: Path, assignment: str = ASSIGNMENT, progress=print) -> dict[str, Path]:
    """student id -> the folder that holds their notebooks, in either layout, found by looking.

    * ``SUBMISSIONS/<student>/*.ipynb``;
    * nbgrader's ``submitted/<student>/<assignment>/*.ipynb`` (with ``timestamp.txt``), what
      ``nbgrader collect`` leaves.

    A student folder with neither is still graded (every item 0, and its
    feedback says what was expected); what is not a folder is named and left out.
    """
    if not submissions.is_dir():
        raise GradingError(f"{submissions} is not a folder of student folders")
    folders, others, unexpected = {}, [], []
    with os.scandir(submissions) as entries:
        for entry in entries:
            if not entry.is_dir():
                others.append(entry.name)
                continue
            folder = Path(entry.path)
            nested = folder / assignment
            if nested.is_dir() and not nested.is_symlink():
                folders[entry.name] = nested
                continue
            folders[entry.name] = folder
            if not entry.is_symlink() and _holds_no_notebook(folder):
                unexpected.append(entry.name)
    if others:
        progress(f"ignored {len(others)} entries of {submissions} that are not student folders: "
                 + ", ".join(sorted(others)[:5]) + (" ..." if len(others) > 5 else ""))
    if unexpected:
        progress(f"{len(unexpected)} student folders hold no notebook and no {assignment}/ folder (expected "
                 f"<student>/*.ipynb or nbgrader's <student>/{assignment}/*.ipynb): " + ", ".join(sorted(unexpected)[:5])
                 + (" ..." if len(unexpected) > 5 else ""))
    if not folders:
        raise GradingError(f"{submissions} holds no student folders (expected {submissions}/<student_id>/*.ipynb "
                           f"or nbgrader's {submissions}/<student_id>/{assignment}/*.ipynb)")
    return dict(sorted(folders.items()))


def _holds_no_notebook(folder: Path) -> bool:
    try:
        with os.scandir(folder) as entries:
            return not any(entry.name.endswith(".ipynb") for entry in entries)
    except OSError:
        return True
