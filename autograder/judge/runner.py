"""The judge's trusted half: decide every graded item of a submission.

The student's answer cells run in a sandboxed child process
(``child``, the untrusted half: the kinds' ``run``); this side reads
their code for forbidden things (``autograder.judge.scan``), computes the
references itself and decides (``autograder.judge.verdict``). A trial (one item on
one hidden case) that runs past its time limit or kills the child costs that
item only: the child is replaced and the remaining trials go on, and any other
item built from the same answer cell is failed with the same reason instead of
hanging again. When the student's whole budget (``deadline``) is used up,
every trial not run yet fails with ``BUDGET_SPENT``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from ..cells import find_answers
from ..exercises import Item
from ..kinds.cases import HIDDEN_CASES
from . import sandbox
from .protocol import child_env, read_replies, send_request, stop_reason
from .scan import scan_answers
from .transport import decode
from .verdict import Verdict, verdict

ITEM_SECONDS = 10.0  # one trial: an item on one hidden case; correct answers take milliseconds
BUDGET_SPENT = "the submission used up its time budget"
STARTUP_SECONDS = 60.0  # for a judge process to load Python and torch (busy machines are slow)


def judge_submission(items: list[Item], cell_sources: dict[str, list[str]], hidden: list[str],
                     readable: list[str], item_seconds: float = ITEM_SECONDS,
                     fork_server: str | None = None, deadline: float = float("inf"),
                     limits: dict | None = None) -> dict[str, Verdict]:
    """Verdicts for ``items``; ``cell_sources`` maps notebook id -> its code cells in order.

    ``fork_server`` (a socket path) starts the children warm from a fork
    server (see ``forkserver``); without one each child is a fresh process.
    ``deadline`` (``time.monotonic()``) ends the student's budget; ``limits``
    (``{"data_bytes": N}``) caps the child's memory.
    """
    answers_by_notebook = {nb: find_answers(sources) for nb, sources in cell_sources.items()}
    verdicts: dict[str, Verdict] = {}
    runnable, answers = [], {}
    for item in items:
        found = answers_by_notebook.get(item.notebook, {})
        missing = [a for a in item.answers if a not in found]
        if missing:
            verdicts[item.grade_id] = Verdict(item.grade_id, False, f"answer cell '{missing[0]}' is missing")
            continue
        flags = scan_answers([found[a] for a in item.answers])
        if flags:
            verdicts[item.grade_id] = verdict(item, [], [], flags)
            continue
        runnable.append(item)
        answers.update({a: found[a] for a in item.answers})
    trials = [(item, case) for item in runnable for case in range(len(HIDDEN_CASES))]
    outcomes = _run_trials(trials, answers, (hidden, readable, fork_server, limits or {}), item_seconds, deadline)
    for item in runnable:
        outputs = [outcomes[(item.grade_id, case)][0] for case in range(len(HIDDEN_CASES))]
        errors = [outcomes[(item.grade_id, case)][1] for case in range(len(HIDDEN_CASES))]
        verdicts[item.grade_id] = verdict(item, outputs, errors, [], answers)
    return verdicts


def _run_trials(trials: list[tuple[Item, int]], answers: dict[str, str], policy: tuple,
                item_seconds: float, deadline: float = float("inf")) -> dict[tuple[str, int], tuple[object, str | None]]:
    """(grade_id, case) -> (student's output or None, error or None), one child at a time."""
    outcomes: dict[tuple[str, int], tuple[object, str | None]] = {}
    broken: dict[str, str] = {}  # answer id -> why running it failed for good
    queue = list(trials)
    while queue:
        queue = [trial for trial in queue if not _skip_broken(trial, broken, outcomes)]
        if not queue:
            break
        if time.monotonic() >= deadline:
            for item, case in queue:
                outcomes[(item.grade_id, case)] = (None, BUDGET_SPENT)
            break
        done, failure = _run_child(queue, answers, policy, item_seconds, outcomes, deadline)
        queue = queue[done:]
        if failure == BUDGET_SPENT:
            continue  # the next round fails what is left
        if failure is not None:  # the trial at the head of the queue hung or killed the child
            item, case = queue.pop(0)
            outcomes[(item.grade_id, case)] = (None, failure)
            broken.update(dict.fromkeys(item.answers, failure))
    return outcomes


def _skip_broken(trial: tuple[Item, int], broken: dict[str, str], outcomes: dict) -> bool:
    item, case = trial
    for answer in item.answers:
        if answer in broken:
            outcomes[(item.grade_id, case)] = (None, f"{broken[answer]} (answer cell {answer})")
            return True
    return False


def _run_child(queue, answers, policy, item_seconds, outcomes, deadline=float("inf")) -> tuple[int, str | None]:
    """Run ``queue`` in one child; returns (trials finished, failure of the next one or None)."""
    request = {"trials": [[item.grade_id, case] for item, case in queue], "answers": answers}
    child = _Child(*policy)
    try:
        send_request(child.stdin, request)
        return _collect(child, queue, item_seconds, outcomes, deadline)
    finally:
        child.kill()


class _Child:
    """A sandboxed ``child``: ``stdin`` takes the request, ``stdout`` gives results."""

    def __init__(self, hidden: list[str], readable: list[str], fork_server: str | None, limits: dict | None = None):
        if fork_server is None:
            memory = ["--data-bytes", str(limits["data_bytes"])] if limits and limits.get("data_bytes") else []
            command = sandbox.wrap([sys.executable, "-m", "autograder.judge.child", *memory], hidden, [],
                                   readable)
            self._process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                             stderr=subprocess.DEVNULL, env=child_env(), cwd="/")
            self.stdin, self.stdout = self._process.stdin, self._process.stdout
            return
        from .forkserver import spawn

        request_read, request_write = os.pipe()
        result_read, result_write = os.pipe()
        quiet = os.open(os.devnull, os.O_WRONLY)
        policy = {"hidden": hidden, "writable": [], "readable": readable, "home": "/tmp/home"}
        self._control = spawn(fork_server, {"run": {"call": "autograder.judge.child:main"}, "cwd": "/",
                                            "env": child_env(), "policy": policy, "limits": limits or {}},
                              [request_read, result_write, quiet])
        for fd in (request_read, result_write, quiet):
            os.close(fd)
        self.stdin, self.stdout = os.fdopen(request_write, "wb"), os.fdopen(result_read, "rb")
        self._process = None

    def kill(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait()
        else:
            self._control.close()  # the guardian kills the child when its client goes
        for stream in (self.stdin, self.stdout):
            if not stream.closed:
                stream.close()


def _collect(child, queue, item_seconds, outcomes, deadline=float("inf")) -> tuple[int, str | None]:
    """Read the child's results into ``outcomes``; (trials done, why the next one failed or None)."""

    def record(index: int, line: bytes) -> None:
        item, case = queue[index]
        outcomes[(item.grade_id, case)] = _parse(line)

    # The child says when Python and torch are loaded; only then does the
    # first trial's clock start, so a slow start is not blamed on the student.
    done, stop = read_replies(child.stdout, len(queue), record, STARTUP_SECONDS, item_seconds, deadline)
    if stop is None:
        return done, None
    return done, stop_reason(stop, "grader", "answer", STARTUP_SECONDS,
                             timed_out=f"took longer than {item_seconds:g} s (an endless loop?)",
                             budget_spent=BUDGET_SPENT)


def _parse(line: bytes) -> tuple[object, str | None]:
    try:
        reply = json.loads(line)
        if "error" in reply:
            return None, str(reply["error"])[:2000]
        return decode(reply["value"]), None
    except (ValueError, KeyError, TypeError) as err:
        return None, f"the answer's result could not be read ({type(err).__name__})"

