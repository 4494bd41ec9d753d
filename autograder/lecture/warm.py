"""Start the lecture's children warm: a fork server that imports torch once, and what the children may see.

Torch-free, so that ``check-lecture`` can start the server before it
imports torch itself: both import at once, on two cores, and the first
child starts in milliseconds once the notebook is read. ``fork_server`` is
that server for one command; ``shared_fork_server`` is one per process that
lives as long as the process (a ``grade-lecture`` worker keeps it for every
student it grades).
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import os
import tempfile
import threading
from pathlib import Path

from ..judge import sandbox
from ..judge.protocol import child_env
from ..resources import NAMES_ENV

# What a fork server of the lecture's children imports once: torch.optim for the autograd lock, not torch._dynamo.
PRELOAD = ("torch", "numpy", "torch.optim", "torch.func", "torch.autograd.forward_ad", "autograder.lecture.child",
           "autograder.judge.transport", "autograder.judge.untrusted", "autograder.judge.protocol")


def policy() -> sandbox.Policy:
    """What the children may see: the student policy, and the names file when another is named."""
    found = sandbox.student_policy()
    names = os.environ.get(NAMES_ENV)
    return sandbox.Policy((*found.readable, os.path.abspath(names))) if names else found


def environment() -> dict[str, str]:
    env = child_env()
    if os.environ.get(NAMES_ENV):
        env[NAMES_ENV] = os.path.abspath(os.environ[NAMES_ENV])
    return env


def wanted(settings) -> bool:
    """Whether ``settings`` can use a fork server: sandboxed children on a machine with a sandbox."""
    return not settings.in_process and settings.sandboxed and sandbox.available()


@contextlib.contextmanager
def fork_server(settings):
    """``settings`` with a fork server of the lecture's children, started now and stopped on exit.

    Nothing starts when the settings name one already, fork the children
    from the caller (``fork_here``) or cannot use one. The server imports
    its modules while the caller goes on; the children wait for its socket
    (``runner.Session``).
    """
    if settings.fork_server or settings.fork_here or not wanted(settings):
        yield settings
        return
    from ..judge.forkserver import ForkServer

    with tempfile.TemporaryDirectory(prefix="ninja-lecture-") as folder:
        server = ForkServer(Path(folder) / "fork.sock", environment(), Path(folder) / "forkserver.log", PRELOAD,
                            wait=False)
        try:
            yield dataclasses.replace(settings, fork_server=str(server.socket_path))
        finally:
            server.close()


_shared: dict = {}
_shared_lock = threading.Lock()


def shared_fork_server(settings):
    """``settings`` with this process's own fork server, started on first use and again if it died."""
    if settings.fork_server or not wanted(settings):
        return settings
    from ..judge.forkserver import ForkServer

    with _shared_lock:
        server = _shared.get("server")
        if server is None or server.process.poll() is not None:
            folder = _shared.setdefault("folder", tempfile.mkdtemp(prefix="ninja-lecture-worker-"))
            count = _shared["count"] = _shared.get("count", 0) + 1
            server = ForkServer(Path(folder) / f"fork-{count}.sock", environment(), Path(folder) / "forkserver.log",
                                PRELOAD, wait=False)
            _shared["server"] = server
            if count == 1:
                atexit.register(_stop_shared)
    return dataclasses.replace(settings, fork_server=str(server.socket_path))


def _stop_shared() -> None:
    server = _shared.get("server")
    if server is not None:
        server.close()
    if "folder" in _shared:
        import shutil

        shutil.rmtree(_shared["folder"], ignore_errors=True)
