"""The child process that runs a learner's lecture-format code, and how it is driven.

``build_request`` turns a ``parse.Plan`` into the JSON the child
(``child``) reads on stdin; ``run_child`` starts the child (in the sandbox
when the machine has one), sends the request and reads one reply line per
exercise. An exercise that hangs or stops the child is given up with a
reason and the child is started again for the exercises after it.
``run_in_process`` does the child's work here, for trusted test notebooks.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

# Everything this module takes from the rest of the package, in one place.
from ..judge import sandbox
from ..judge.protocol import child_env, read_replies, send_request, stop_reason
from ..workbook.data import NAMES_ENV
from . import LectureSettings
from .parse import EXERCISES, Plan, definitions_for
from .statements import Statement, defines_cmp, is_cmp_or_print

MARGIN_SECONDS = 10.0  # beyond an exercise's budget before the child is killed outright
MEMORY_LIMIT = 2 << 30  # bytes: torch imports and works; a runaway allocation gets MemoryError


def statement_json(statement: Statement) -> dict:
    skip = is_cmp_or_print(statement) or defines_cmp(statement)
    return {"source": statement.source, "cell": statement.cell, "line": statement.line,
            "assigns": list(statement.assigns), "calls_backward": statement.calls_backward,
            "syntax_error": statement.syntax_error, "skip": skip}


def build_request(plan: Plan, settings: LectureSettings) -> dict:
    exercises = [ex for ex in EXERCISES if ex in plan.found()]

    def with_imports(statements: list[Statement]) -> list[Statement]:
        return definitions_for(plan, statements) + statements

    request = {"exercises": exercises, "steps": settings.ex4_steps, "seconds": settings.exercise_seconds,
               "statements": {ex: [statement_json(s) for s in with_imports(plan.statements.get(ex, []))]
                              for ex in EXERCISES[:3]}}
    if plan.ex4 is not None:
        loop = plan.ex4
        prelude = definitions_for(plan, loop.prelude + loop.forward + loop.block) + loop.prelude
        request["ex4"] = {"prelude": [statement_json(s) for s in prelude],
                          "forward": [statement_json(s) for s in loop.forward],
                          "block": [statement_json(s) for s in loop.block]}
    return request


def run_child(request: dict, settings: LectureSettings) -> dict[str, dict]:
    """exercise -> the child's reply; an exercise that hangs or kills the child gets {"failed": why}."""
    if settings.in_process:
        return run_in_process(request)
    replies: dict[str, dict] = {}
    pending = list(request["exercises"])
    while pending:
        process = _start_child(settings)
        try:
            send_request(process.stdin, {**request, "exercises": pending})
            done, failure = _collect(process, pending, settings, replies)
        finally:
            process.kill()
            process.wait()
            process.stdout.close()
        pending = pending[done:]
        if failure is not None:
            replies[pending.pop(0)] = {"failed": failure}
    return replies


def run_in_process(request: dict) -> dict[str, dict]:
    """The child's work done here (trusted notebooks only); replies pass through JSON as from a child."""
    from . import child

    replies = {}
    for exercise in request["exercises"]:
        if exercise == "ex4":
            reply = child.run_ex4(request["ex4"], request["steps"], request["seconds"])
        else:
            reply = child.run_ex123(exercise, request["statements"][exercise], request["seconds"])
        replies[exercise] = json.loads(json.dumps(reply))
    return replies


def _start_child(settings: LectureSettings) -> subprocess.Popen:
    """The lecture child, sandboxed when asked: it sees the Python installation, the package and the names."""
    command = [sys.executable, "-m", "autograder.lecture.child"]
    if settings.sandboxed:
        policy = sandbox.student_policy()
        names = os.environ.get(NAMES_ENV)
        if names:
            policy = sandbox.Policy((*policy.readable, os.path.abspath(names)))
        command = sandbox.wrap(command, policy, sandbox.Limits(memory_bytes=MEMORY_LIMIT))
    env = child_env()
    if os.environ.get(NAMES_ENV):
        env[NAMES_ENV] = os.path.abspath(os.environ[NAMES_ENV])
    return subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            env=env, cwd="/")


def _collect(process, pending, settings, replies) -> tuple[int, str | None]:
    """Read the child's replies; (exercises done, why the next one failed or None)."""

    def record(index: int, line: bytes) -> None:
        replies[pending[index]] = _parse_reply(line)

    done, stop = read_replies(process.stdout, len(pending), record, settings.startup_seconds,
                              settings.exercise_seconds + MARGIN_SECONDS)
    if stop is None:
        return done, None
    return done, stop_reason(stop, "checker", "notebook", settings.startup_seconds,
                             timed_out=f"took longer than {settings.exercise_seconds:g} s and could not be "
                                       "interrupted (an endless loop?)")


def _parse_reply(line: bytes) -> dict:
    try:
        reply = json.loads(line)
        return reply if isinstance(reply, dict) else {"failed": "the checker's process sent an unreadable reply"}
    except ValueError:
        return {"failed": "the checker's process sent an unreadable reply"}
