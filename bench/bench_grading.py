"""Grading speed: one submission, a class of 50 on the embedded Dask cluster, capacity, threads.

Submissions are copies of the sample full solution (autograder.grading.samples),
the kind of notebook that runs every cell. The class is compared with the
home-made worker pool that Dask replaced, measured on this machine just before
its removal (``OLD_POOL``). From the worker seconds one submission costs, a
table gives the workers needed to grade a class within an hour. The thread
benchmark runs two processes side by side, as two grading workers do, each
timing Exercise 4's training step with one torch thread and then with two.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from autograder.engine.cluster import Settings
from autograder.grading.grade import grade
from autograder.grading.samples import make_samples
from bench.common import REPO, Row


def submissions(folder: Path, count: int) -> Path:
    samples = folder / "samples"
    make_samples(samples)
    batch = folder / "batch"
    for index in range(count):
        shutil.copytree(samples / "full_solution", batch / f"student{index:03d}")
    return batch


# The home-made pool that Dask replaced (one worker process per --jobs, fed
# over pipes), on this 2-core machine with nothing else running: 50 full
# submissions with --jobs 2 in 526 s, one submission's worker part 21.58 s
# (bench/RESULTS.md, 2026-11-23). Measured again on 2026-12-01 just before its
# removal, under the load of other work (load average about 10): 1188 s, 45.5
# worker-seconds per submission.
OLD_POOL = {"count": 50, "wall": 526.0, "worker_seconds_per_submission": 21.58}
CLASS_SIZES = (1_000, 10_000, 100_000)


def grading_seconds(batch: Path, out: Path, workers: int) -> tuple[float, list[dict]]:
    start = time.perf_counter()
    results = grade(batch, out, Settings(workers=workers), progress=lambda line: None)
    return time.perf_counter() - start, results


def workers_for(students: int, worker_seconds: float, hours: float = 1.0) -> int:
    """Single-threaded workers that grade ``students`` within ``hours``, each costing ``worker_seconds``."""
    return math.ceil(students * worker_seconds / (hours * 3600))


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
        many, batch_results = grading_seconds(batch, Path(scratch) / "out-batch", 2)
    per_submission = sum(r["seconds"] for r in batch_results) / len(batch_results)
    print(json.dumps({"count": count, "wall": many, "worker_seconds_per_submission": per_submission}))
    capacity = [Row(f"{size:,} full submissions within 1 h at {per_submission:.1f} worker-seconds each: "
                    "single-threaded workers needed", "hours on one worker", size * per_submission / 3600,
                    "workers for 1 h", workers_for(size, per_submission), "", "whole workers, rounded up")
                for size in CLASS_SIZES]
    return [
        Row("grading one full submission (all notebooks), `--jobs 1`, wall time of the command", "target", 15.0,
            "measured", one, "s", "<= 1"),
        Row("grading one full submission: the worker's part (sanitize, judge, autograde, feedback)", "target", 15.0,
            "measured", inside, "s", "<= 1"),
        Row(f"grading {count} full submissions, `--jobs 2`: embedded Dask cluster vs the old home-made pool",
            f"old pool ({OLD_POOL['count']} measured)", OLD_POOL["wall"] * count / OLD_POOL["count"],
            "Dask", many, "s", "<= 1.05"),
        Row("worker seconds per full submission (sum of the students' grading times / count)", "old pool",
            OLD_POOL["worker_seconds_per_submission"], "Dask", per_submission, "s", "<= 1.05"),
        *capacity,
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
