"""Shared pieces of the benchmarks: side-by-side timing, the masters' answers, the results table.

Speed on a shared machine is noisy, so nothing here compares a time with a
fixed number. Every benchmark times the two things it compares in the same
run, interleaved round by round, and keeps each one's best round: the ratio
of those is what the table reports.
"""

from __future__ import annotations

import datetime
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat
import torch
import torch.nn.functional as F

from autograder.cells import find_answers

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "RESULTS.md"


@dataclass
class Row:
    """One measurement: a baseline and ours, each a value with its unit; the ratio ours/baseline."""

    what: str
    baseline: str
    baseline_value: float
    ours: str
    ours_value: float
    unit: str
    target: str = ""

    @property
    def ratio(self) -> float:
        return self.ours_value / self.baseline_value


def interleaved(functions: dict, rounds: int = 7, repeat: int = 200) -> dict[str, float]:
    """Seconds per call of each function: best round of ``repeat`` calls, rounds interleaved."""
    best = dict.fromkeys(functions, float("inf"))
    for function in functions.values():
        function()  # warm up
    for _ in range(rounds):
        for name, function in functions.items():
            start = time.perf_counter()
            for _ in range(repeat):
                function()
            best[name] = min(best[name], (time.perf_counter() - start) / repeat)
    return best


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__}"


def master_answers() -> dict[str, str]:
    """answer id -> source of that answer cell in the masters (solution included)."""
    sources = []
    for path in sorted((REPO / "solutions").glob("*.ipynb")):
        sources += [c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
    return find_answers(sources)


def master_function(answer_id: str, name: str):
    """A function defined by a master's answer cell (e.g. Exercise 4's manual_backward)."""
    namespace = {"torch": torch, "F": F}
    exec(master_answers()[answer_id], namespace)
    return namespace[name]


def write_results(rows: list[Row], notes: list[str]) -> None:
    """bench/RESULTS.md: one row per measurement, the ratio last."""
    today = datetime.date.today().isoformat()
    lines = ["# Benchmark results", "",
             f"Measured by `make bench` on {today}, on {machine()}. Every ratio compares two things timed "
             "side by side in the same run (interleaved rounds, best round of each); absolute times move with "
             "the load on the machine, the ratios much less.", "",
             "| what | baseline | ours | target | machine | date | ours / baseline |",
             "|---|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row.what} | {row.baseline}: {row.baseline_value:.4g} {row.unit} | {row.ours}: "
                     f"{row.ours_value:.4g} {row.unit} | {row.target} | {os.cpu_count()} cores | {today} | "
                     f"**{row.ratio:.2f}** |")
    lines += ["", "## Notes", ""] + [f"* {note}" for note in notes]
    RESULTS.write_text("\n".join(lines) + "\n")
