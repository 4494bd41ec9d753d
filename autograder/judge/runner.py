"""The judge's trusted half: decide every graded item of a submission.

The student's answer cells run in a sandboxed child process (``child``, the
untrusted half: the kinds' ``run``), one trial (an item on one hidden case)
at a time, in lock-step (``protocol.Conversation``). This side reads their
code for forbidden things (``scan``), hands each trial its inputs (correct
upstream gradients, ``Kind.inputs``), computes every reference itself and
decides (``verdict``).

The answer is never where student code runs. A child is handed the inputs
of the trials it runs and nothing else, and a trial never runs in a child
that was handed its answer earlier (as the input of another item: Exercise
1's ``dlogits`` is the answer of Exercise 2): such a trial starts a new
child (``Kind.computes`` against ``Kind.given``).

A trial that runs past its time limit, says too much or kills the child
costs that item only: the child is replaced and the remaining trials go on,
and any other item built from the same answer cell is failed with the same
reason instead of hanging again. When the student's whole budget
(``deadline``) is used up, every trial not run yet fails with BUDGET_SPENT.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass

from ..cells import find_answers
from ..exercises import Item
from ..kinds import kind_of
from ..kinds.cases import HIDDEN_CASES
from . import sandbox
from .process import SandboxedChild
from .protocol import Stop, stop_reason
from .records import Verdict
from .scan import scan_answers
from .transport import decode, encode
from .verdict import note_cascades, verdict

ITEM_SECONDS = 10.0  # one trial: an item on one hidden case; correct answers take milliseconds
BUDGET_SPENT = "the submission used up its time budget"
STARTUP_SECONDS = 60.0  # for a judge process to load Python and torch (busy machines are slow)
CHILD_ENTRY = "autograder.judge.child:main"
FORGED_REPLY = "wrote into the grader's results channel (a line that was not the grader's reply)"


@dataclass(frozen=True)
class Trial:
    item: Item
    case: int  # index into HIDDEN_CASES

    def qualified(self, names: frozenset[str]) -> set[str]:
        """Names of quantities on this trial's case: the same gradient on another case is another value."""
        return {f"{self.case}:{name}" for name in names}


def judge_submission(items: list[Item], cell_sources: dict[str, list[str]], policy: sandbox.Policy | None = None,
                     item_seconds: float = ITEM_SECONDS, fork_server: str | None = None,
                     deadline: float = float("inf"), limits: sandbox.Limits | None = None) -> dict[str, Verdict]:
    """Verdicts for ``items``; ``cell_sources`` maps notebook id -> its code cells in order.

    ``fork_server`` (a socket path) starts the children warm from a fork
    server (see ``forkserver``); without one each child is a fresh process.
    ``policy`` is what the sandbox lets the child see (by default
    ``sandbox.student_policy()``), ``limits`` what it may use; ``deadline``
    (``time.monotonic()``) ends the student's budget.
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
    trials = [Trial(item, case) for item in runnable for case in range(len(HIDDEN_CASES))]
    children = _Children(policy or sandbox.student_policy(), limits or sandbox.Limits(), fork_server)
    outcomes = _run_trials(trials, answers, children, item_seconds, deadline)
    for item in runnable:
        outputs = [outcomes[(item.grade_id, case)][0] for case in range(len(HIDDEN_CASES))]
        errors = [outcomes[(item.grade_id, case)][1] for case in range(len(HIDDEN_CASES))]
        verdicts[item.grade_id] = verdict(item, outputs, errors, [], answers)
    note_cascades(verdicts, runnable, answers)
    return verdicts


def _run_trials(trials: list[Trial], answers: dict[str, str], children: _Children, item_seconds: float,
                deadline: float) -> dict[tuple[str, int], tuple[object, str | None]]:
    """(grade_id, case) -> (student's output or None, error or None)."""
    outcomes: dict[tuple[str, int], tuple[object, str | None]] = {}
    broken: dict[str, str] = {}  # answer id -> why running it failed for good
    try:
        for trial in trials:
            key = (trial.item.grade_id, trial.case)
            failed = next((f"{broken[a]} (answer cell {a})" for a in trial.item.answers if a in broken), None)
            if failed is not None:
                outcomes[key] = (None, failed)
                continue
            if time.monotonic() >= deadline:
                outcomes[key] = (None, BUDGET_SPENT)
                continue
            outcome, stop = children.run(trial, answers, item_seconds, deadline)
            outcomes[key] = outcome
            if stop not in (None, Stop.BUDGET_SPENT):
                broken.update(dict.fromkeys(trial.item.answers, outcome[1]))
    finally:
        children.close()
    return outcomes


class _Children:
    """The children of one submission: the current one, replaced when it dies or must not run the next trial."""

    def __init__(self, policy: sandbox.Policy, limits: sandbox.Limits, fork_server: str | None):
        self.policy, self.limits, self.fork_server = policy, limits, fork_server
        self.current: SandboxedChild | None = None
        self.handed: set[str] = set()  # what the current child was handed, by qualified name

    def run(self, trial: Trial, answers: Mapping[str, str], item_seconds: float,
            deadline: float) -> tuple[tuple[object, str | None], Stop | None]:
        """((output, error), why the child stopped or None) for one trial."""
        kind = kind_of(trial.item)
        if self.current is None or trial.qualified(kind.computes(trial.item)) & self.handed:
            self.close()
            self.current = SandboxedChild(CHILD_ENTRY, self.policy, self.limits, self.fork_server)
            stop = self.current.conversation.wait_ready(STARTUP_SECONDS)
            if stop is not None:
                self.close()
                return (None, _reason(stop, item_seconds)), stop
        sources = {a: answers[a] for a in trial.item.answers}
        inputs = kind.inputs(trial.item, HIDDEN_CASES[trial.case], sources)
        self.handed |= trial.qualified(kind.given(trial.item))
        nonce = secrets.token_hex(8)  # a reply must carry it: lines the answer code writes itself are not replies
        message = {"nonce": nonce, "item": {"grade_id": trial.item.grade_id, "notebook": trial.item.notebook,
                            "answers": list(trial.item.answers), "points": trial.item.points,
                            "kind": trial.item.kind, "spec": dict(trial.item.spec)},
                   "kind_module": type(kind).__module__, "case": trial.case, "answers": sources,
                   "inputs": {name: encode(value) for name, value in inputs.items()}}
        reply = self.current.conversation.ask(message, item_seconds, deadline)
        if isinstance(reply, Stop):
            self.close()
            return (None, _reason(reply, item_seconds)), reply
        outcome = _parse(reply, nonce)
        if outcome is None:  # a line the answer wrote into the results channel: nothing it says can be trusted
            self.close()
            return (None, FORGED_REPLY), Stop.STOPPED
        return outcome, None

    def close(self) -> None:
        if self.current is not None:
            self.current.kill()
        self.current, self.handed = None, set()


def _reason(stop: Stop, item_seconds: float) -> str:
    return stop_reason(stop, "grader", "answer", STARTUP_SECONDS,
                       timed_out=f"took longer than {item_seconds:g} s (an endless loop?)",
                       budget_spent=BUDGET_SPENT)


def _parse(line: bytes, nonce: str) -> tuple[object, str | None] | None:
    """(output, error) from the child's reply line; None when the line is not the reply to this request."""
    try:
        reply = json.loads(line)
        if not isinstance(reply, dict) or reply.get("nonce") != nonce:
            return None
        if "error" in reply:
            return None, str(reply["error"])[:2000]
        return decode(reply["value"]), None
    except (ValueError, KeyError, TypeError, RecursionError) as err:
        return None, f"the answer's result could not be read ({type(err).__name__})"
