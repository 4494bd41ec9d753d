"""Grading speed: one submission on a warm worker against running its notebooks, the phases, a class, the sandbox.

* One full submission (the sample full solution, all seven notebooks), graded
  again and again by one warm worker (its fork server started once, not
  counted), side by side with ``jupyter nbconvert --execute`` of the same seven
  notebooks (Exercise 4 at 1,000 steps, notebook 06 at 200): the ratio, and
  each phase's seconds (sanitize, judge, record, feedback); and the same
  submission without notebook 06, to show what its 65 items cost.
* A class of 50 copies on the embedded Dask cluster with 2 workers: wall
  time, and from the worker seconds, the workers that grade 1,000 / 10,000 /
  100,000 submissions within an hour.
* What a sandboxed process costs to start: a child of the warm fork server
  (namespaces, allow-listed root, limits, seccomp) against bubblewrap
  starting Python cold, with and without importing torch.
* Two processes side by side with one torch thread each against two (why
  workers use one).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from autograder.exercises import NOTEBOOKS
from autograder.grading.grade import grade, template_bundle, template_course
from autograder.grading.results import GradingSettings, WorkerSettings
from autograder.grading.samples import make_samples
from autograder.grading.submissions import read_submission
from bench.common import REPO, Row

CLASS_SIZES = (1_000, 10_000, 100_000)
PHASES = ("sanitize", "judge", "record", "feedback")


def submissions(folder: Path, count: int) -> Path:
    samples = folder / "samples"
    make_samples(samples)
    batch = folder / "batch"
    for index in range(count):
        shutil.copytree(samples / "full_solution", batch / f"student{index:03d}")
    return batch


def workers_for(students: int, worker_seconds: float, hours: float = 1.0) -> int:
    """Single-threaded workers that grade ``students`` within ``hours``, each costing ``worker_seconds``."""
    return math.ceil(students * worker_seconds / (hours * 3600))


def warm_worker(folder: Path, rounds: int, leave_out: tuple[str, ...] = ()) -> list:
    """``rounds`` gradings of one full submission by this process as a warm worker (results, in order).

    ``leave_out``: notebooks graded as not handed in (left out of a copy of ``folder``, so their items are
    not judged).
    """
    from autograder.grading import worker

    templates, gradebook = template_course()
    bundle = template_bundle(templates, gradebook)
    notebooks = worker._templates(bundle["digest"], tuple(sorted(bundle["notebooks"].items())))
    if leave_out:
        handed_in = folder.parent / f"{folder.name}_without_{'_'.join(leave_out)}"
        shutil.copytree(folder, handed_in, dirs_exist_ok=True)
        for notebook in leave_out:
            (handed_in / f"{notebook}.ipynb").unlink()
        folder = handed_in
    submission = read_submission(folder, "student", NOTEBOOKS)
    socket = worker._fork_server()
    worker.grade_one(submission, notebooks, WorkerSettings(), socket, time.monotonic())  # warm: references, children
    return [worker.grade_one(submission, notebooks, WorkerSettings(), socket, time.monotonic()) for _ in range(rounds)]


def notebook_06_rows(folder: Path, rounds: int = 5) -> list[Row]:
    """What notebook 06's items add to a full submission on a warm worker: with it and without it, interleaved."""
    best = {"without": float("inf"), "with": float("inf")}
    judge = {"without": [], "with": []}
    scores = {}
    for _ in range(2):
        for label, leave_out in (("without", ("06_transformer_block",)), ("with", ())):
            results = warm_worker(folder, rounds, leave_out)
            assert all(r.total() == results[0].total() for r in results), "the same submission, the same score"
            scores[label] = results[0].total()
            best[label] = min(best[label], *(r.seconds for r in results))
            judge[label] += [r.phases["judge"] for r in results]
    print(json.dumps({"best": best, "judge": judge, "scores": scores}))
    assert scores["without"] < scores["with"], "without notebook 06 its items must not be judged"
    return [Row("one full submission on a warm worker: without notebook 06 vs with it (its 65 items on 3 hidden "
                "settings, a 30-step training run each)", "without 06", best["without"], "with 06", best["with"], "s",
                "adds <= 1 s"),
            Row("the same, phase `judge` (median)", "without 06", statistics.median(judge["without"]), "with 06",
                statistics.median(judge["with"]), "s", "")]


def nbconvert_seconds(folder: Path) -> float:
    """Plain execution of the notebooks of ``folder``, one after another, as Jupyter runs them."""
    scratch = Path(tempfile.mkdtemp())
    env = {**os.environ, "NINJA_EX4_STEPS": "1000", "NINJA_EX6_STEPS": "200", "MPLBACKEND": "agg"}
    started = time.perf_counter()
    for notebook in NOTEBOOKS:
        subprocess.run([sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute",
                        "--ExecutePreprocessor.timeout=1200", "--output-dir", str(scratch),
                        str(folder / f"{notebook}.ipynb")], check=True, capture_output=True, env=env, cwd=REPO)
    seconds = time.perf_counter() - started
    shutil.rmtree(scratch, ignore_errors=True)
    return seconds


def one_submission_rows(folder: Path, rounds: int = 5) -> list[Row]:
    """Warm worker vs nbconvert, interleaved: nbconvert, warm rounds, nbconvert again; the best of each."""
    executed = [nbconvert_seconds(folder)]
    results = warm_worker(folder, rounds)
    executed.append(nbconvert_seconds(folder))
    best = min(results, key=lambda r: r.seconds)
    assert all(r.total() == results[0].total() for r in results), "the same submission must get the same score"
    phases = {phase: statistics.median(r.phases[phase] for r in results) for phase in PHASES}
    print(json.dumps({"worker_seconds": [r.seconds for r in results], "nbconvert": executed, "phases": phases}))
    rows = [Row("one full submission (seven notebooks) on a warm worker vs plain `jupyter nbconvert --execute` of the "
                "same seven (Exercise 4 at 1,000 steps, notebook 06 at 200)", "nbconvert", min(executed), "worker",
                best.seconds, "s", "<= 0.06")]
    rows += [Row(f"one full submission on a warm worker, phase `{phase}` (median of {rounds}) vs the whole",
                 "whole (best)", best.seconds, phase, phases[phase], "s", "") for phase in PHASES]
    return rows


def class_rows(batch: Path, out: Path) -> tuple[list[Row], float]:
    started = time.perf_counter()
    results = grade(batch, out, GradingSettings().but(jobs=2), progress=lambda line: None)
    wall = time.perf_counter() - started
    per_submission = statistics.fmean(r.seconds for r in results)
    count = len(results)
    print(json.dumps({"count": count, "wall": wall, "worker_seconds_per_submission": per_submission,
                      "phases": {p: statistics.fmean(r.phases.get(p, 0.0) for r in results) for p in PHASES}}))
    capacity = [Row(f"{size:,} full submissions within 1 h at {per_submission:.2f} worker-seconds each: "
                    "single-threaded workers needed", "hours on one worker", size * per_submission / 3600,
                    "workers for 1 h", workers_for(size, per_submission), "", "whole workers, rounded up")
                for size in CLASS_SIZES]
    return [Row(f"grading {count} full submissions on the embedded Dask cluster, 2 workers (wall, start included)",
                "target", 100.0, "measured", wall, "s", "<= 1"),
            Row(f"worker seconds per full submission in that class (mean of {count}, each worker's first "
                "student included)", "target", 3.0, "measured", per_submission, "s", "<= 1"),
            *capacity], per_submission


SANDBOX_PROBE = """
import time, sys
from autograder.judge import sandbox
from autograder.judge.forkserver import ForkServer, spawn, wait_exit
from autograder.grading.worker import grading_env
folder, rounds = sys.argv[1], int(sys.argv[2])
server = ForkServer(__import__("pathlib").Path(folder) / "s.sock", grading_env(), __import__("pathlib").Path(folder) / "log")
policy, limits = sandbox.student_policy().to_json(), sandbox.Limits().to_json()
import os
best = float("inf")
for _ in range(rounds):
    quiet = os.open(os.devnull, os.O_RDWR)
    started = time.perf_counter()
    connection = spawn(str(server.socket_path), {"run": {"call": "autograder.judge.protocol:child_env"}, "cwd": "/",
                                                 "env": grading_env(), "policy": policy, "limits": limits},
                       [quiet, quiet, quiet])
    wait_exit(connection)
    best = min(best, time.perf_counter() - started)
    os.close(quiet)
server.close()
print(best)
"""


def sandbox_rows(rounds: int = 10) -> list[Row]:
    """A confined child of the warm fork server against bubblewrap starting Python cold."""
    folder = Path(tempfile.mkdtemp())
    forked = float(subprocess.run([sys.executable, "-c", SANDBOX_PROBE, str(folder), str(rounds)], check=True,
                                  capture_output=True, text=True, cwd=REPO).stdout.split()[-1])
    rows = []
    bwrap = shutil.which("bwrap")
    if bwrap:
        binds = []
        for path in sorted({p for p in (sys.prefix, sys.base_prefix, "/usr", str(REPO / "autograder"))}):
            binds += ["--ro-bind", path, path]
        base = [bwrap, "--unshare-all", "--die-with-parent", *binds, "--symlink", "usr/lib", "/lib",
                "--symlink", "usr/lib64", "/lib64", "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp",
                sys.executable, "-c"]
        for label, code in (("bubblewrap, Python started cold with torch", "import torch"),
                            ("bubblewrap, Python started cold without torch", "pass")):
            best = float("inf")
            for _ in range(3):
                started = time.perf_counter()
                subprocess.run(base + [code], check=True, capture_output=True)
                best = min(best, time.perf_counter() - started)
            rows.append(Row(f"starting one sandboxed judge process: a child of the warm fork server vs {label}",
                            label.split(",")[0], best, "fork server", forked, "s", "< 1"))
    shutil.rmtree(folder, ignore_errors=True)
    return rows


THREADS_PROBE = """
import sys
from bench.bench_training import training_steps
print(training_steps(repeat=100, rounds=5, threads=int(sys.argv[1]))["solution"])
"""


def step_seconds_side_by_side(threads: int) -> float:
    """Exercise 4's manual step in two processes at once, each with ``threads`` threads; the mean."""
    probes = [subprocess.Popen([sys.executable, "-c", THREADS_PROBE, str(threads)], stdout=subprocess.PIPE,
                               text=True, cwd=REPO) for _ in range(2)]
    return sum(float(p.communicate()[0].split()[-1]) for p in probes) / 2


def thread_rows() -> list[Row]:
    one = step_seconds_side_by_side(1)
    two = step_seconds_side_by_side(2)
    return [Row("Ex4 manual step in two processes at once: 2 torch threads each vs 1 (why workers use 1)",
                "1 thread", one * 1e6, "2 threads", two * 1e6, "µs", "> 1 means more threads hurt")]


def rows(count: int) -> list[Row]:
    with tempfile.TemporaryDirectory() as scratch:
        batch = submissions(Path(scratch), count)
        found = one_submission_rows(batch / "student000")
        found += notebook_06_rows(batch / "student000")
        grading, _ = class_rows(batch, Path(scratch) / "out")
    return found + grading + sandbox_rows()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=50, help="submissions in the class (default 50)")
    args = parser.parse_args()
    for row in rows(args.count) + thread_rows():
        print(f"{row.what}: {row.baseline} {row.baseline_value:.4g} {row.unit}, {row.ours} "
              f"{row.ours_value:.4g} {row.unit}, ratio {row.ratio:.2f}")
