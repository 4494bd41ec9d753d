"""How a parent talks with a child process that runs untrusted code: one protocol, for the judge and the lecture checker.

The child loads what it needs (Python, torch, data) and says so on a line
of its own (``announce_ready``). Then, in one of two ways:

* all at once (the lecture checker): the parent writes one JSON request to
  the child's stdin and closes it (``send_request``; the child:
  ``read_request``), and the child writes one JSON line per finished unit of
  work (``send_reply``), which the parent reads (``read_replies``);
* in lock-step (the judge, ``Conversation``): the parent sends one unit of
  work as a line (``Conversation.ask``), the child answers it with a line
  (``next_request``, ``send_reply``), and only then comes the next. The child
  never holds more than the unit it is working on: what the parent hands
  the next trial is not in its reach while the current one runs.

Every reply has a deadline that starts only once the child is ready, so a
slow start is never blamed on the code it runs, and an optional overall
deadline (a student's budget). A reply longer than ``MAX_LINE_BYTES`` stops
the child. When a reply does not come, ``Stop`` says why, and
``stop_reason`` puts that in words.

A child gets a small environment, not its parent's (which may hold the
host's secrets): ``inherited_env`` keeps INHERITED_VARIABLES of it, and
``child_env`` is what a judge or lecture child runs with.
"""

from __future__ import annotations

import enum
import json
import os
import selectors
import sys
import time
from collections.abc import Callable

READY = {"ready": True}
MAX_LINE_BYTES = 16 * 2**20  # a reply: the largest answer here is a few hundred kB of tensors
# What a child keeps of its parent's environment: where programs are, the locale, another names file.
INHERITED_VARIABLES = ("PATH", "LANG", "LC_ALL", "NINJA_NAMES_FILE")


# ------------------------------------------------------------------ the child's side

def read_request(stdin=None) -> dict:
    """The parent's request: all of ``stdin`` (by default the process's), as JSON."""
    return json.loads((stdin or sys.stdin).read())


def announce_ready(results) -> None:
    """Say that the child is loaded: from here on each reply has its own allowance."""
    send_reply(results, READY)


def send_reply(results, reply: dict) -> None:
    """One reply, as a line of JSON on ``results`` (a line-buffered text file)."""
    results.write(json.dumps(reply) + "\n")


def next_request(requests) -> dict | None:
    """The next unit of work in lock-step (one line of ``requests``, a binary file), or None at the end."""
    line = requests.readline(MAX_LINE_BYTES + 1)
    return json.loads(line) if line.strip() else None


# ------------------------------------------------------------------ the parent's side

def send_request(stdin, request: dict) -> None:
    """Write the whole request to the child's stdin (a binary file) and close it."""
    stdin.write(json.dumps(request).encode())
    stdin.close()


class Stop(enum.Enum):
    """Why a child's replies stopped before all of them came."""

    NOT_STARTED = "not started"  # no ready line within the start-up allowance
    FAILED_TO_START = "failed to start"  # the child's output ended before its ready line
    TIMED_OUT = "timed out"  # a reply did not come within its allowance
    BUDGET_SPENT = "budget spent"  # the parent's overall deadline passed
    STOPPED = "stopped"  # the child's output ended after its ready line: it exited or was killed
    TOO_LONG = "too long"  # a reply longer than MAX_LINE_BYTES


class Conversation:
    """The parent's side of the lock-step protocol over a child's stdin (``requests``) and stdout (``replies``).

    ``wait_ready`` once, then ``ask`` for each unit of work; the first Stop
    ends the conversation (the child is then killed by its owner).
    """

    def __init__(self, requests, replies):
        self._requests, self._replies = requests.fileno(), replies.fileno()
        self._buffer = b""

    def wait_ready(self, startup_seconds: float) -> Stop | None:
        line = self._line(time.monotonic() + startup_seconds, float("inf"))
        if isinstance(line, Stop):
            return {Stop.TIMED_OUT: Stop.NOT_STARTED, Stop.STOPPED: Stop.FAILED_TO_START}.get(line, line)
        return None

    def ask(self, request: dict, reply_seconds: float, deadline: float = float("inf")) -> bytes | Stop:
        """Send ``request`` as a line; the reply line, or why none came within ``reply_seconds`` and ``deadline``."""
        data = json.dumps(request).encode() + b"\n"
        limit = min(time.monotonic() + reply_seconds, deadline)
        selector = selectors.DefaultSelector()
        selector.register(self._requests, selectors.EVENT_WRITE)
        while data:  # a child that stopped reading must not block the parent: write as it drains
            remaining = limit - time.monotonic()
            if remaining <= 0 or not selector.select(timeout=remaining):
                return Stop.BUDGET_SPENT if time.monotonic() >= deadline else Stop.TIMED_OUT
            try:
                data = data[os.write(self._requests, data[: 1 << 16]):]
            except (BrokenPipeError, ConnectionResetError):
                return Stop.STOPPED
        return self._line(time.monotonic() + reply_seconds, deadline)

    def _line(self, reply_deadline: float, deadline: float) -> bytes | Stop:
        selector = selectors.DefaultSelector()
        selector.register(self._replies, selectors.EVENT_READ)
        while b"\n" not in self._buffer:
            if len(self._buffer) > MAX_LINE_BYTES:
                return Stop.TOO_LONG
            remaining = min(reply_deadline, deadline) - time.monotonic()
            if remaining <= 0 or not selector.select(timeout=remaining):
                return Stop.BUDGET_SPENT if time.monotonic() >= deadline else Stop.TIMED_OUT
            chunk = os.read(self._replies, 1 << 20)
            if not chunk:
                return Stop.STOPPED
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line


def read_replies(stream, count: int, on_reply: Callable[[int, bytes], None], startup_seconds: float,
                 reply_seconds: float, deadline: float = float("inf")) -> tuple[int, Stop | None]:
    """Read the child's ready line from ``stream``, then up to ``count`` replies, each passed to ``on_reply``.

    ``on_reply(index, line)`` gets the index of the reply (0, 1, ...) and its
    line, without the newline. The ready line may take ``startup_seconds``;
    each reply after it ``reply_seconds``; ``deadline`` (``time.monotonic()``)
    ends the wait for any reply after the ready line. Returns (replies read,
    why the next one did not come, or None when all ``count`` came).
    """
    selector = selectors.DefaultSelector()
    selector.register(stream, selectors.EVENT_READ)
    buffer, done, ready = b"", 0, False
    reply_deadline = time.monotonic() + startup_seconds
    while done < count:
        remaining = min(reply_deadline, deadline if ready else float("inf")) - time.monotonic()
        if remaining <= 0 or not selector.select(timeout=remaining):
            if not ready:
                return done, Stop.NOT_STARTED
            if time.monotonic() >= deadline:
                return done, Stop.BUDGET_SPENT
            return done, Stop.TIMED_OUT
        chunk = os.read(stream.fileno(), 1 << 20)
        if not chunk:
            return done, Stop.STOPPED if ready else Stop.FAILED_TO_START
        buffer += chunk
        while b"\n" in buffer and done < count:
            line, buffer = buffer.split(b"\n", 1)
            if not ready:  # the first line says the child is loaded
                ready = True
            else:
                on_reply(done, line)
                done += 1
            reply_deadline = time.monotonic() + reply_seconds
    return done, None


def stop_reason(stop: Stop, process: str, work: str, startup_seconds: float, timed_out: str,
                budget_spent: str = "") -> str:
    """``stop`` in words: ``process`` names the parent's trade ("grader": "the grader's process"), ``work``
    what the child runs ("answer"); ``timed_out`` and ``budget_spent`` are the parent's own words."""
    return {
        Stop.NOT_STARTED: f"the {process}'s process did not start within {startup_seconds:g} s",
        Stop.FAILED_TO_START: f"the {process}'s process failed to start (a problem of the {process}, not of the {work})",
        Stop.TIMED_OUT: timed_out,
        Stop.BUDGET_SPENT: budget_spent,
        Stop.STOPPED: f"stopped the {process}'s process (os._exit, a crash, or it ran out of memory)",
        Stop.TOO_LONG: f"gave the {process} a result larger than {MAX_LINE_BYTES // 2**20} MB",
    }[stop]


# ------------------------------------------------------------------ the child's environment

def inherited_env(*also: str) -> dict[str, str]:
    """The parent's INHERITED_VARIABLES (and the variables ``also``), those that it has."""
    return {key: os.environ[key] for key in (*INHERITED_VARIABLES, *also) if key in os.environ}


def child_env() -> dict[str, str]:
    """The environment a judge or lecture child runs with: one thread, no bytecode written, a private home."""
    env = inherited_env("PYTHONPATH")
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONDONTWRITEBYTECODE="1", HOME="/tmp/home")
    return env
