"""A sandboxed child process that runs untrusted code, and the lock-step conversation with it.

The workbook's judge (``runner``, whose child is ``judge.child``) and the
lecture checker (``autograder.lecture``, whose children are
``autograder.lecture.child``) start their children here: warm from a fork
server (``forkserver``) when one is given, else cold, as
``python -c "from MODULE import FUNCTION; FUNCTION()"`` wrapped by
``sandbox.wrap``, or forked from the caller itself (``here``: a command that
imported torch and holds nothing yet; ``forkserver.fork_here``). Either way the child gets the small environment of
``protocol.child_env``, no stderr, and ``/`` as its working folder; the
parent talks to it through ``protocol.Conversation``.
"""

from __future__ import annotations

import os
import subprocess
import sys

from . import sandbox
from .protocol import Conversation, child_env


class SandboxedChild:
    """``entry`` ("module:function") running in the sandbox, and ``conversation``, the parent's side of it."""

    def __init__(self, entry: str, policy: sandbox.Policy, limits: sandbox.Limits, fork_server: str | None,
                 env: dict[str, str] | None = None, sandboxed: bool = True, here: bool = False):
        """``sandboxed=False`` starts it cold and unconfined: for tests of the protocol, never for student code."""
        env = child_env() if env is None else env
        self.ready = False  # set by the owner once the child said it is loaded
        self._guardian = None
        module, function = entry.split(":")
        if (fork_server is None and not here) or not sandboxed:
            command = [sys.executable, "-c", f"from {module} import {function}; {function}()"]
            if sandboxed:
                command = sandbox.wrap(command, policy, limits)
            self._process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                             stderr=subprocess.DEVNULL, env=env, cwd="/")
            self.conversation = Conversation(self._process.stdin, self._process.stdout)
            self._streams = (self._process.stdin, self._process.stdout)
            return
        from .forkserver import fork_here, spawn

        request_read, request_write = os.pipe()
        result_read, result_write = os.pipe()
        quiet = os.open(os.devnull, os.O_WRONLY)
        request = {"run": {"call": entry}, "cwd": "/", "env": env, "policy": policy.to_json(),
                   "limits": limits.to_json()}
        try:
            if here:
                self._control, self._guardian = fork_here(request, [request_read, result_write, quiet])
            else:
                self._control = spawn(fork_server, request, [request_read, result_write, quiet])
        finally:
            for fd in (request_read, result_write, quiet):
                os.close(fd)
        self._streams = (os.fdopen(request_write, "wb"), os.fdopen(result_read, "rb"))
        self.conversation = Conversation(*self._streams)
        self._process = None

    def kill(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait()
        else:
            self._control.close()  # the guardian kills the child when its client goes
        if self._guardian is not None:
            os.waitpid(self._guardian, 0)
            self._guardian = None
        for stream in self._streams:
            if not stream.closed:
                stream.close()
