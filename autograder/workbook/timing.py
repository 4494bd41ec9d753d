"""Timing for the notebooks: how long a small piece of tensor code takes.

``answer_code`` lets a notebook time the student's own answer cell without
printing the solution in a locked cell.
"""

from __future__ import annotations

import os
import time

from ..cells import recorded_answer

# Set by the grader: the timings a notebook prints are not graded, so while
# grading they are measured with a tenth of the calls, in two rounds.
QUICK_TIMING_ENV = "NINJA_QUICK_TIMING"


def seconds_per_call(fn, repeat: int = 1000, rounds: int = 5) -> float:
    """Seconds per call of ``fn()``: the best of ``rounds`` averages over ``repeat`` calls.

    Timed with ``time.perf_counter``, after one warm-up call. The best round
    is the one least disturbed by whatever else the machine was doing.
    """
    if os.environ.get(QUICK_TIMING_ENV):
        repeat, rounds = max(1, repeat // 10), min(rounds, 2)
    fn()
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(repeat):
            fn()
        best = min(best, (time.perf_counter() - start) / repeat)
    return best


def answer_code(answer_id: str):
    """The compiled code of answer cell ``answer_id`` as this kernel last ran it.

    Needs ``record_cells()`` to have run in the notebook's first cell.
    """
    return compile(recorded_answer(answer_id), f"<answer {answer_id}>", "exec")
