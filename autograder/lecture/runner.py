"""The children that run a learner's lecture-format code, and how the trusted side talks to them.

``Session`` owns the children of one notebook: the setup child (run once,
then gone) and the answers child (``child``), each a ``judge.process.
SandboxedChild`` started warm from a fork server when the settings name one
(``LectureSettings.fork_server``), else cold, in the sandbox when the
machine has one. Every request is one line and gets one reply (lock-step,
``judge.protocol.Conversation``), with a nonce the learner's code cannot
know, within the request's seconds plus a margin.

The answer is never where the learner's code runs: ``Session.ask`` is told
what each request hands the child (``given``: right upstream gradients) and
what it computes (the gradients it makes as trials). A request never runs
in a child that was handed one of the gradients it computes: a new child
starts instead. The setup child, which holds the learner's own ``.grad``,
never runs an answer.

A request that runs past its time, stops the child or says too much fails
alone (``{"failed": why}``): the child is replaced for the next one.
``LectureSettings.in_process`` does the children's work in this process,
for trusted test notebooks.
"""

from __future__ import annotations

import json
import os
import secrets
import time

# Everything this module takes from the rest of the package, in one place.
from ..judge import sandbox
from ..judge.process import SandboxedChild
from ..judge.protocol import Stop, stop_reason
from . import LectureSettings
from .parse import Plan, definitions_for
from .statements import Statement, defines_cmp, is_cmp_or_print
from .warm import environment, policy, wanted

SPARE_CHILDREN = 4  # answers children forked ahead: the lines judged on their own and a .grad read may each need a fresh one
MARGIN_SECONDS = 10.0  # beyond a request's budget before the child is killed outright
MEMORY_LIMIT = 2 << 30  # bytes: torch imports and works; a runaway allocation gets MemoryError
SETUP_ENTRY = "autograder.lecture.child:setup_main"
ANSWERS_ENTRY = "autograder.lecture.child:answers_main"
FORGED = "the checker's process sent a line that was not its reply (the notebook's code wrote into its channel)"


def statement_json(statement: Statement, feed: list[str] | None = None) -> dict:
    skip = is_cmp_or_print(statement) or defines_cmp(statement)
    data = {"source": statement.source, "cell": statement.cell, "line": statement.line,
            "assigns": list(statement.assigns), "calls_backward": statement.calls_backward,
            "syntax_error": statement.syntax_error, "skip": skip}
    if feed:
        data["feed"] = feed
    return data


def with_definitions(plan: Plan, statements: list[Statement]) -> list[Statement]:
    """The notebook's imports and functions that ``statements`` use, then the statements."""
    return definitions_for(plan, statements) + statements


class Session:
    """The children of one notebook (see the module's docstring); ``close`` ends them all."""

    def __init__(self, settings: LectureSettings):
        self.settings = settings
        self.current: SandboxedChild | None = None
        self.handed: set[str] = set()
        self.children_started = 0
        self._in_process = None
        # Forked now, while this process holds nothing but the notebook's text: a setup child and answers children.
        self._spares: dict[str, list[SandboxedChild]] = {SETUP_ENTRY: [], ANSWERS_ENTRY: []}
        if settings.fork_here and wanted(settings):
            for entry in (SETUP_ENTRY, *[ANSWERS_ENTRY] * SPARE_CHILDREN):
                self._spares[entry].append(self._start(entry, here=True))

    # ------------------------------------------------------------------ asking

    def setup(self, request: dict) -> dict:
        """The setup child's reply to ``request`` (one child, ended right after)."""
        if self.settings.in_process:
            return self._locally("setup", request)
        child = self._start(SETUP_ENTRY)
        try:
            return self._converse(child, request)
        finally:
            child.kill()

    def ask(self, request: dict, computes: frozenset[str] = frozenset(), given: frozenset[str] = frozenset()) -> dict:
        """The answers child's reply to ``request``, in a child never handed what ``request`` computes."""
        if self.current is not None and computes & self.handed:
            self.close()
        if self.settings.in_process:
            if computes & self.handed:
                self._in_process, self.handed = None, set()
            self.handed |= given
            return self._locally("answers", request)
        if self.current is None:
            self.current = self._start(ANSWERS_ENTRY)
        self.handed |= given
        reply = self._converse(self.current, request)
        if "failed" in reply:
            self.close()
        return reply

    def close(self) -> None:
        if self.current is not None:
            self.current.kill()
        self.current, self.handed = None, set()

    def end(self) -> None:
        """Close the current child and the spares no request needed."""
        self.close()
        for spares in self._spares.values():
            while spares:
                spares.pop().kill()

    # ------------------------------------------------------------------ the children

    def _start(self, entry: str, here: bool = False) -> SandboxedChild:
        if not here and self._spares.get(entry):
            return self._spares[entry].pop(0)
        self.children_started += 1
        server = self.settings.fork_server
        if server is not None:  # it may still be importing torch: its socket appears when it listens
            deadline = time.monotonic() + self.settings.startup_seconds
            while not os.path.exists(server) and time.monotonic() < deadline:
                time.sleep(0.01)
        limits = sandbox.Limits(memory_bytes=MEMORY_LIMIT)
        rules = policy() if self.settings.sandboxed else sandbox.Policy(())
        if not self.settings.sandboxed:  # tests that measure the protocol without namespaces
            return SandboxedChild(entry, rules, limits, None, environment(), sandboxed=False)
        return SandboxedChild(entry, rules, limits, self.settings.fork_server, environment(), here=here)

    def _converse(self, child: SandboxedChild, request: dict) -> dict:
        stop = child.conversation.wait_ready(self.settings.startup_seconds) if not child.ready else None
        if stop is not None:
            return {"failed": self._reason(stop)}
        child.ready = True
        nonce = secrets.token_hex(8)
        seconds = float(request.get("seconds", self.settings.exercise_seconds)) + MARGIN_SECONDS
        reply = child.conversation.ask({**request, "nonce": nonce}, seconds)
        if isinstance(reply, Stop):
            child.kill()
            return {"failed": self._reason(reply)}
        try:
            data = json.loads(reply)
        except (ValueError, RecursionError):
            data = None
        if not isinstance(data, dict) or data.get("nonce") != nonce:
            child.kill()
            return {"failed": FORGED}
        data.pop("nonce", None)
        return data

    def _reason(self, stop: Stop) -> str:
        return stop_reason(stop, "checker", "notebook", self.settings.startup_seconds,
                           timed_out=f"took longer than {self.settings.exercise_seconds:g} s and could not be "
                                     "interrupted (an endless loop?)")

    def _locally(self, role: str, request: dict) -> dict:
        """The child's work done here (trusted notebooks only); requests and replies pass through JSON as from a child."""
        from .child import Worker

        if role == "setup":
            worker = Worker(Worker.SETUP)
        else:
            self._in_process = self._in_process or Worker(Worker.ANSWERS)
            worker = self._in_process
        try:
            reply = worker.handle(json.loads(json.dumps(request)))
        except Exception as err:  # as the child would: the request fails, the check goes on
            reply = {"failed": f"{type(err).__name__}: {err}"[:400]}
        return json.loads(json.dumps(reply))
