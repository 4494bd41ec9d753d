"""Grading speed: one submission, a class of 50 with two workers, and the thread setting.

Submissions are copies of the sample full solution (autograder.grading.samples),
the kind of notebook that runs every cell. The thread benchmark runs two
processes side by side, as two grading workers do, each timing Exercise 4's
training step with one torch thread and then with two.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from autograder.grading.grade import Settings, grade
from autograder.grading.samples import make_samples
from bench.common import REPO, Row


def submissions(folder: Path, count: int) -> Path:
    samples = folder / "samples"
    make_samples(samples)
    batch = folder / "batch"
    for index in range(count):
        shutil.copytree(samples / "full_solution", batch / f"student{index:03d}")
    return batch


def grading_seconds(batch: Path, out: Path, jobs: int) -> tuple[float, list[dict]]:
    start = time.perf_counter()
    results = grade(batch, out, Settings(jobs=jobs), progress=lambda line: None)
    return time.perf_counter() - start, results


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


def rows(count: int) -> list[Row]:
    with tempfile.TemporaryDirectory() as scratch:
        batch = submissions(Path(scratch), count)
        single = Path(scratch) / "single"
        shutil.copytree(batch / "student000", single / "student000")
        one, results = grading_seconds(single, Path(scratch) / "out-single", 1)
        inside = results[0]["seconds"]
        many, _ = grading_seconds(batch, Path(scratch) / "out-batch", 2)
    return [
        Row("grading one full submission (all notebooks), `--jobs 1`, wall time of the command", "target", 15.0,
            "measured", one, "s", "<= 1"),
        Row("grading one full submission: the worker's part (sanitize, judge, autograde, feedback)", "target", 15.0,
            "measured", inside, "s", "<= 1"),
        Row(f"grading {count} full submissions, `--jobs 2`", "target", 360.0 * count / 50, "measured", many, "s",
            "<= 1"),
    ]


def thread_rows() -> list[Row]:
    one = step_seconds_side_by_side(1)
    two = step_seconds_side_by_side(2)
    return [Row("Ex4 manual step in two processes at once: 2 torch threads each vs 1 (why workers use 1)",
                "1 thread", one * 1e6, "2 threads", two * 1e6, "µs", "> 1 means more threads hurt")]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=50, help="submissions in the batch (default 50)")
    args = parser.parse_args()
    for row in rows(args.count) + thread_rows():
        print(f"{row.what}: {row.baseline} {row.baseline_value:.4g} {row.unit}, {row.ours} "
              f"{row.ours_value:.4g} {row.unit}, ratio {row.ratio:.2f}")
