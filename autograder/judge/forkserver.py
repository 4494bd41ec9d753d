"""Start sandboxed judge processes warm, by forking a process that imported torch once.

Importing torch takes seconds, and grading one student starts a few judge
children (see ``runner``). The fork server imports everything once; each
request forks a *guardian* that enters new namespaces and forks the
sandboxed process itself::

    server (trusted, torch imported, single-threaded)
      └─ guardian (new mount, network and pid namespaces; a user namespace when not root)
           └─ child: pid 1 of its namespace, confined (``sandbox.confine``), runs the judge's child

The guardian kills the child (and with it everything the child started) when
the client's connection closes, and reports the child's exit status when it
ends. A client passes the child's stdin, stdout and stderr over the Unix
socket.

    python -m autograder.judge.forkserver serve SOCKET [MODULE,MODULE,...]

What it imports is ``PRELOAD`` (the workbook's judge) unless told otherwise:
the lecture checker's children need less (``autograder.lecture.child``).
"""

from __future__ import annotations

import array
import ctypes
import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from . import sandbox

PR_SET_PDEATHSIG = 1
# What a judge child runs, imported once: torch.optim imports torch._dynamo (2 s) on first use.
PRELOAD = ("torch", "numpy", "torch._dynamo", "torch.optim", "torch.func", "torch.autograd.forward_ad",
           "autograder.kinds", "autograder.judge.child", "autograder.judge.transport", "autograder.judge.untrusted",
           "autograder.judge.protocol")


# ------------------------------------------------------------------ clients

class ForkServer:
    """Owns a running server process; ``spawn`` asks it for a sandboxed child."""

    def __init__(self, socket_path: Path, env: dict[str, str], log_path: Path,
                 preload: tuple[str, ...] = PRELOAD, wait: bool = True):
        self.socket_path, self.log_path = socket_path, log_path
        with open(log_path, "ab") as log:  # same process group as its owner, which kills it on the way out
            self.process = subprocess.Popen([sys.executable, "-m", "autograder.judge.forkserver", "serve",
                                             str(socket_path), ",".join(preload)], env=env, stdout=log,
                                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        if wait:
            self.wait_ready()

    def wait_ready(self, seconds: float = 120.0) -> None:
        """Until the server listens (it is importing its modules meanwhile); RuntimeError if it dies or takes too long."""
        deadline = time.monotonic() + seconds
        while not self.socket_path.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the fork server did not start (see {self.log_path})")
            time.sleep(0.02)

    def close(self) -> None:
        self.process.kill()
        self.process.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def spawn(socket_path: str | Path, request: dict, fds: list[int]) -> socket.socket:
    """Ask the server to start ``request``; ``fds`` become the child's stdin, stdout, stderr.

    Returns the control connection: closing it kills the child; reading it
    gives ``exit <status>`` when the child ends.
    """
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    connection.connect(str(socket_path))
    payload = json.dumps(request).encode() + b"\n"
    connection.sendmsg([payload], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])
    return connection


def fork_here(request: dict, fds: list[int]) -> tuple[socket.socket, int]:
    """What ``spawn`` asks a server for, forked from this very process: (the control connection, the guardian's pid).

    Only for a process that holds nothing its child may not see and runs a
    single thread (a command that has just imported torch, before it computes
    anything): the child is a copy of it. The caller reaps the guardian
    (``os.waitpid``) once it closed the connection.
    """
    sandbox.available()  # probed here, once, not in every guardian
    ours, theirs = socket.socketpair()
    pid = os.fork()
    if pid == 0:
        try:
            # Every other child's pipes and control socket stay the caller's alone: a guardian holding
            # one would keep that child alive past its close, and its child could reach that conversation.
            _close_all_but({0, 1, 2, theirs.fileno(), *fds})
            _guard(theirs, request, fds)  # never returns
        finally:
            os._exit(1)
    theirs.close()
    return ours, pid


def _close_all_but(keep: set[int]) -> None:
    low = 0
    for fd in sorted(keep):
        if fd > low:  # not closerange(0, 0): it closes every descriptor
            os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, os.sysconf("SC_OPEN_MAX"))


def wait_exit(connection: socket.socket) -> int:
    """Block until the child ends; its exit status (or 1 if the guardian vanished)."""
    data = b""
    while True:
        chunk = connection.recv(4096)
        if not chunk:
            break
        data += chunk
    for line in data.decode(errors="replace").splitlines():
        if line.startswith("exit "):
            return int(line.split()[1])
    return 1


def exit_with_parent(interval: float = 0.5) -> None:
    """End this process when the one that started it is gone (a killed grading worker).

    A thread polls the parent's pid, so that nothing outlives its worker.
    """
    import threading

    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(interval)
        os._exit(137)

    threading.Thread(target=watch, daemon=True, name="exit-with-parent").start()


# ------------------------------------------------------------------- server

def serve(socket_path: str, preload: tuple[str, ...] = PRELOAD) -> None:
    """Import the heavy modules once, then fork a guardian per request."""
    for module in preload:
        __import__(module)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(socket_path + ".tmp")
    os.rename(socket_path + ".tmp", socket_path)  # clients only see a socket that is listening
    listener.listen(64)
    exit_with_parent()  # a killed worker leaves no fork server behind
    while True:
        connection, _ = listener.accept()
        request, fds = _receive(connection)
        if os.fork() == 0:
            listener.close()
            _guard(connection, request, fds)  # never returns
        connection.close()
        for fd in fds:
            os.close(fd)
        _reap()


def _receive(connection: socket.socket) -> tuple[dict, list[int]]:
    data, fds = b"", []
    while not data.endswith(b"\n"):
        message, ancillary, _, _ = connection.recvmsg(1 << 20, socket.CMSG_SPACE(16 * 4))
        if not message:
            break
        data += message
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds += array.array("i", payload[: len(payload) - len(payload) % 4]).tolist()
    return json.loads(data or b"{}"), fds


def _reap() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _guard(connection: socket.socket, request: dict, fds: list[int]) -> None:
    """In the guardian: new namespaces, one child, and its lifetime tied to the connection."""
    status = 1
    try:
        os.setsid()
        isolated = sandbox.available()
        if isolated:
            sandbox.enter_namespaces()
        child = os.fork()
        if child == 0:
            connection.close()
            _child(request, fds, isolated)  # never returns
        for fd in fds:
            os.close(fd)
        status = _watch(connection, child)
    finally:
        try:
            connection.sendall(f"exit {status}\n".encode())
        except OSError:
            pass
        os._exit(0)


def _watch(connection: socket.socket, child: int) -> int:
    """Wait for the child to end, or for the client to go away (then kill the child)."""
    while True:
        pid, status = os.waitpid(child, os.WNOHANG)
        if pid == child:
            return os.waitstatus_to_exitcode(status)
        readable, _, _ = select.select([connection], [], [], 0.05)
        if readable and not connection.recv(1, socket.MSG_PEEK):
            os.kill(child, signal.SIGKILL)  # pid 1 of its namespace: all it started dies with it
            os.waitpid(child, 0)
            return -signal.SIGKILL


def _child(request: dict, fds: list[int], isolated: bool) -> None:
    """In the sandboxed child: confined, then the module's function."""
    code = 1
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # the guardian gone means we go too
        for target, fd in zip((0, 1, 2), fds):
            os.dup2(fd, target)
        policy = sandbox.Policy.from_json(request["policy"])
        limits = sandbox.Limits.from_json(request.get("limits", {}))
        os.environ.clear()
        os.environ.update(request.get("env", {}))
        if isolated:
            sandbox.confine(policy, limits)
        else:
            sandbox.confine_without_namespaces(limits)
        import importlib

        module, function = request["run"]["call"].split(":")  # preloaded, so calling it costs nothing
        getattr(importlib.import_module(module), function)()
        code = 0
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        os._exit(code)


def main(argv: list[str]) -> None:
    if argv[:1] == ["serve"] and len(argv) in (2, 3):
        serve(argv[1], tuple(m for m in argv[2].split(",") if m) if len(argv) == 3 else PRELOAD)
    else:
        raise SystemExit("usage: python -m autograder.judge.forkserver serve SOCKET [MODULE,MODULE,...]")


if __name__ == "__main__":
    main(sys.argv[1:])
