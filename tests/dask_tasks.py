"""Task functions for the Dask grading tests; workers import them by name, so they live in a module."""

from __future__ import annotations

import multiprocessing
import os

from autograder.grading.worker import grade_student

POISON = "POISON"  # a file of this name makes the submission kill whichever worker grades it


def poison_or_grade(task: dict, templates: dict):
    """``grade_student``, except that a poisoned submission kills its worker, as a crash or the OOM killer would."""
    if POISON in task["submission"].unread:
        os._exit(1)
    return grade_student(task, templates)


def is_daemon() -> bool:
    """Whether this process is a daemonic multiprocessing child (which may not start children)."""
    return multiprocessing.current_process().daemon
