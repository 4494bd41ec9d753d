"""``python -m autograder grade-lecture SUBS --out OUT``: grade a class of lecture-format notebooks.

``SUBS/<student_id>/*.ipynb`` (or ``.py``) or ``SUBS/<student_id>.ipynb``.
Each gradient of the 35 (26 + 1 + 1 + 7) is worth one point. ``OUT`` gets:

* ``grades.csv``: one row per student: ``student_id``, one column per item
  (``ex1_dlogprobs``, ...), ``total``, ``max``, ``error``;
* ``feedback/<student_id>/lecture_report.txt`` and ``.json``: the check's report;
* ``mistakes.csv``: ``item,diagnosis,students,student_ids``, the class's
  mistakes by kind, as for the workbook (``checking.class_mistakes``);
* ``results.json``: every student's result (items with their ``diagnosis``).

``grade_lecture_submission`` grades one student from the bytes of their
files. The students are graded on the workbook's engine, a Dask cluster
(``engine.cluster.cluster_client``: embedded, or ``--scheduler``), one task per
student, each worker process starting the children warm from a fork server of
its own (``warm.shared_fork_server``); a student whose notebook is broken or
hostile gets their error and 0, never stopping the rest, and this process
alone writes ``OUT``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from ..checking.class_mistakes import MISTAKES_CSV, MistakeRow, write_mistakes
from ..checking.csv_cells import safe_writer
from . import LectureSettings
from .check import check_bytes
from .parse import EXERCISES, EXPECTED, NotebookError, find_exercises, read_cells
from .report import LectureResult, format_report
from .warm import shared_fork_server

NOTEBOOK_SUFFIXES = (".ipynb", ".py")
ITEM_IDS = [f"{exercise}_{name}" for exercise in EXERCISES for name in EXPECTED[exercise]]
MAX_FILE_BYTES = 20_000_000
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]*$")


def grade_lecture_submission(files: dict[str, bytes], settings: LectureSettings = LectureSettings()) -> dict:
    """One student's result from their files (name -> bytes): the most complete notebook is checked.

    Returns {"file", "items": [...], "flags": [...], "error", "score", "max", "report"}.
    """
    candidates = {name: data for name, data in files.items() if name.endswith(NOTEBOOK_SUFFIXES)}
    if not candidates:
        return _failed("", "no notebook (.ipynb) or Colab export (.py) in the submission")
    chosen, best = None, -1
    for name in sorted(candidates):
        try:
            found = len(find_exercises(read_cells(candidates[name], name)).found())
        except NotebookError:
            found = 0
        if found > best:
            chosen, best = name, found
    result = check_bytes(candidates[chosen], Path(chosen).name, shared_fork_server(settings))
    return _as_dict(chosen, result)


def _failed(filename: str, error: str) -> dict:
    return _as_dict(filename, LectureResult(filename, error=error))


def _as_dict(filename: str, result: LectureResult) -> dict:
    data = result.to_json()
    data.update(file=filename, error=result.error, score=result.passed(), max=len(ITEM_IDS),
                report=format_report(result))
    return data


def student_files(submissions: Path) -> dict[str, dict[str, Path]]:
    """student_id -> {file name: path}: a folder per student, or a notebook per student."""
    students: dict[str, dict[str, Path]] = {}
    for entry in sorted(submissions.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            students[entry.name] = {p.name: p for p in sorted(entry.iterdir())
                                    if p.is_file() and p.name.endswith(NOTEBOOK_SUFFIXES)}
        elif entry.is_file() and entry.name.endswith(NOTEBOOK_SUFFIXES):
            students.setdefault(entry.stem, {})[entry.name] = entry
    return students


def _read(paths: dict[str, Path]) -> tuple[dict[str, bytes], str]:
    files, problems = {}, []
    for name, path in paths.items():
        try:
            if path.stat().st_size > MAX_FILE_BYTES:
                problems.append(f"{name} is larger than {MAX_FILE_BYTES // 1_000_000} MB")
                continue
            files[name] = path.read_bytes()
        except OSError as err:
            problems.append(f"{name} could not be read ({err.strerror or err})")
    return files, "; ".join(problems)


def grade_folder(submissions: Path, out: Path, settings: LectureSettings = LectureSettings(),
                 progress=print, engine=None) -> dict[str, dict]:
    """Grade every student in ``submissions`` into ``out``; returns student_id -> result.

    ``engine`` (``engine.cluster.ClusterSettings``) says where: its ``jobs`` and
    ``scheduler``, as for ``grade``; by default an embedded cluster.
    """
    from distributed import as_completed

    from ..engine.cluster import ClusterSettings, cluster_client

    students = student_files(submissions)
    if not students:
        return {}
    results = {}
    with cluster_client(engine or ClusterSettings(), progress) as client:
        futures = {}
        for student, paths in students.items():
            files, problem = _read(paths)
            if not files:
                results[student] = _failed("", problem or "no notebook")
                continue
            futures[client.submit(grade_lecture_submission, files, settings, pure=False)] = student
        for future in as_completed(futures, loop=client.loop):
            student = futures[future]
            try:
                results[student] = future.result()
            except Exception as err:  # a fault of the grader (or a lost worker) on one notebook must not stop the class
                results[student] = _failed("", f"the check failed on this submission ({type(err).__name__}: {err})")
            result = results[student]
            progress(f"{student:24s} {result['score']:3d}/{result['max']}"
                     + (f"  error: {result['error']}" if result["error"] else ""))
    write_outputs(out, results)
    return results


def write_outputs(out: Path, results: dict[str, dict]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "grades.csv", "w", newline="") as file:
        writer = safe_writer(file)
        writer.writerow(["student_id", *ITEM_IDS, "total", "max", "error"])
        for student, result in sorted(results.items()):
            passed = {f"{item['exercise']}_{item['name']}" for item in result["items"] if item["status"] == "pass"}
            writer.writerow([student, *(int(i in passed) for i in ITEM_IDS), result["score"], result["max"],
                             result["error"]])
    for student, result in results.items():
        folder = out / "feedback" / _folder_name(student)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "lecture_report.txt").write_text(result["report"] + "\n")
        (folder / "lecture_report.json").write_text(json.dumps(
            {key: result[key] for key in ("file", "items", "flags", "error")}, indent=1, ensure_ascii=False))
    (out / "results.json").write_text(json.dumps(results, indent=1, ensure_ascii=False))
    write_mistakes(out / MISTAKES_CSV, mistake_rows(results))


def mistake_rows(results: dict[str, dict]) -> list[MistakeRow]:
    """One row per (item, diagnosis) that a student has, in item order; passed items never appear."""
    students: dict[tuple[str, str], set[str]] = {}
    for student, result in results.items():
        found = {f"{item['exercise']}_{item['name']}": item for item in result["items"]}
        for item_id in ITEM_IDS:
            item = found.get(item_id)
            if item is None or item["status"] != "pass":  # a notebook that could not be read attempted nothing
                code = "not_attempted" if item is None else item["diagnosis"] or "unknown"
                students.setdefault((item_id, code), set()).add(student)
    order = {item_id: index for index, item_id in enumerate(ITEM_IDS)}
    return [MistakeRow(item, code, tuple(sorted(ids)))
            for (item, code), ids in sorted(students.items(), key=lambda entry: (order[entry[0][0]], entry[0][1]))]


def _folder_name(student: str) -> str:
    return student if _SAFE_ID.match(student) else re.sub(r"[^A-Za-z0-9._@+-]", "_", student) or "_"


def main(submissions: Path, out: Path, settings: LectureSettings, engine=None) -> int:
    if not submissions.is_dir():
        print(f"error: {submissions} is not a folder")
        return 2
    from ..engine.errors import GradingError

    try:
        results = grade_folder(submissions, out, settings, engine=engine)
    except GradingError as err:  # e.g. a scheduler that cannot be reached: its address and why, no traceback
        print(f"error: {err}")
        return 2
    if not results:
        print(f"error: no notebooks in {submissions} (expected <student_id>/*.ipynb or <student_id>.ipynb)")
        return 2
    print(f"\n{len(results)} students graded\ngrades    {out / 'grades.csv'}\nmistakes  {out / MISTAKES_CSV}\n"
          f"feedback  {out / 'feedback'}/<student_id>/")
    return 0
