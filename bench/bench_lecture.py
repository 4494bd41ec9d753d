"""The lecture checker's speed: ``check-lecture`` on a notebook, side by side with running its cells in a kernel.

For each of a few notebooks of ``tests/lecture_corpus.py`` (the lecture's
answers as solved, a typo cascade, which makes the checker run Exercise 1 a
second time line by line, renamed names, a ``.grad`` shortcut):

* ``check-lecture NOTEBOOK`` as a learner runs it: a new process that imports
  torch and forks its sandboxed children from itself before it computes
  anything, wall time of the whole command;
* ``jupyter nbconvert --execute`` of the same notebook (a kernel started, every
  cell run, ``names.txt`` beside it; its training loop breaks after 100 steps),
  wall time of the whole command;

interleaved round by round, the best round of each (see ``bench.common``).
And the same notebooks checked by one process with a warm fork server, as a
``grade-lecture`` worker checks one student after another: seconds per notebook.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from autograder.resources import data_file
from bench.common import REPO, Row

NOTEBOOKS = ("lecture_as_solved", "typo_cascade", "alias_a", "grad_shortcut_dhpreact")
TARGET_SECONDS = 3.0


def write_notebooks(folder: Path) -> dict[str, Path]:
    from tests import lecture_corpus

    by_name = {notebook.name: notebook for notebook in lecture_corpus.notebooks(mixed=0)}
    paths = {}
    for name in NOTEBOOKS:
        paths[name] = folder / f"{name}.ipynb"
        paths[name].write_bytes(by_name[name].to_bytes())
    shutil.copy(data_file("names.txt"), folder / "names.txt")
    return paths


def check_lecture_seconds(path: Path) -> float:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "autograder", "check-lecture", str(path)], capture_output=True,
                          text=True, cwd=path.parent)
    seconds = time.perf_counter() - started
    if "total:" not in done.stdout:
        raise RuntimeError(f"check-lecture gave no report for {path.name}: {done.stdout[-500:]} {done.stderr[-500:]}")
    return seconds


def kernel_seconds(path: Path) -> float:
    """Every cell of the notebook run in a fresh kernel, as Jupyter runs it (the learner's own time to run it)."""
    out = Path(tempfile.mkdtemp())
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute",
                    "--ExecutePreprocessor.timeout=600", "--allow-errors", "--output-dir", str(out), str(path)],
                   check=True, capture_output=True, cwd=path.parent, env={**os.environ, "MPLBACKEND": "agg"})
    seconds = time.perf_counter() - started
    shutil.rmtree(out, ignore_errors=True)
    return seconds


def warm_seconds(paths: dict[str, Path], rounds: int) -> dict[str, float]:
    """Seconds per notebook in one process with a warm fork server (a grade-lecture worker's cost), best round."""
    import torch

    from autograder.lecture import LectureSettings
    from autograder.lecture.check import check_bytes
    from autograder.lecture.warm import fork_server

    torch.set_num_threads(1)
    best = dict.fromkeys(paths, float("inf"))
    with fork_server(LectureSettings()) as settings:
        for path in paths.values():  # warm: the server's imports, the references' first use
            check_bytes(path.read_bytes(), path.name, settings)
        for _ in range(rounds):
            for name, path in paths.items():
                started = time.perf_counter()
                check_bytes(path.read_bytes(), path.name, settings)
                best[name] = min(best[name], time.perf_counter() - started)
    return best


def rows(rounds: int = 3) -> list[Row]:
    folder = Path(tempfile.mkdtemp(prefix="ninja-bench-lecture-"))
    try:
        paths = write_notebooks(folder)
        checked = dict.fromkeys(paths, float("inf"))
        kernel = dict.fromkeys(paths, float("inf"))
        for _ in range(rounds):
            for name, path in paths.items():
                checked[name] = min(checked[name], check_lecture_seconds(path))
                kernel[name] = min(kernel[name], kernel_seconds(path))
        warm = warm_seconds(paths, rounds)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    found = [Row(f"`check-lecture` on the corpus notebook `{name}` (a new process, wall time) vs running its cells in a "
                 "kernel (`jupyter nbconvert --execute`)", "kernel", kernel[name], "check-lecture", checked[name], "s",
                 f"check-lecture <= {TARGET_SECONDS:g} s") for name in paths]
    found += [Row(f"the same notebook `{name}` checked by a warm process (a grade-lecture worker: fork server running) "
                  "vs the command", "check-lecture", checked[name], "warm", warm[name], "s", "") for name in paths]
    return found


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    for row in rows(args.rounds):
        print(f"{row.what}: {row.baseline} {row.baseline_value:.3g} {row.unit}, {row.ours} {row.ours_value:.3g} "
              f"{row.unit}, ratio {row.ratio:.2f}")
