"""Start sandboxed kernels and judge processes warm, by forking a process that imported torch once.

Importing torch and the notebook stack takes seconds, and grading one student
starts five fresh processes (a kernel per notebook and the judge). The fork
server imports everything once; each request forks a *guardian* that enters
new namespaces and forks the sandboxed process itself::

    server (trusted, torch imported, single-threaded)
      └─ guardian (new user, mount, network and pid namespaces)
           └─ child: pid 1 of its namespace, runs the kernel or the judge

The guardian kills the child (and with it everything the child started) when
the client's connection closes, and reports the child's exit status when it
ends. A client passes its stdin, stdout and stderr over the Unix socket, so
the child writes where a normally started process would.

Commands (also used as a kernel's argv, see ``kernel_argv``)::

    python -m autograder.judge.forkserver serve SOCKET
    python -m autograder.judge.forkserver kernel SOCKET POLICY_FILE CONNECTION_FILE
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

CLONE_NEWNS, CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x00020000, 0x10000000, 0x20000000, 0x40000000
PR_SET_PDEATHSIG = 1
PRELOAD = ("torch", "numpy", "matplotlib", "matplotlib.figure", "IPython", "ipykernel.kernelapp",
           # torch.optim's first optimizer imports torch._dynamo: 2 s in every kernel of notebook 05 otherwise
           "torch._dynamo", "torch.optim", "matplotlib.pyplot", "matplotlib_inline.backend_inline",
           "autograder.workbook.data", "autograder.workbook.model", "autograder.workbook.iris",
           "autograder.workbook.value", "autograder.workbook.expression_graphs", "autograder.workbook.drawing",
           "autograder.workbook.display", "autograder.workbook.plots", "autograder.workbook.timing",
           "autograder.diagnosis.diagnose", "autograder.checking.checks", "autograder.checking.scoreboard",
           "autograder.judge.verdict", "autograder.judge.child", "autograder.judge.transport", "tqdm.auto")


# ------------------------------------------------------------------ clients

class ForkServer:
    """Owns a running server process; ``spawn`` asks it for a sandboxed child."""

    def __init__(self, socket_path: Path, env: dict[str, str], log_path: Path):
        self.socket_path = socket_path
        with open(log_path, "ab") as log:  # same process group as its owner, which kills it on the way out
            self.process = subprocess.Popen([sys.executable, "-m", "autograder.judge.forkserver", "serve",
                                             str(socket_path)], env=env, stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while not socket_path.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the fork server did not start (see {log_path})")
            time.sleep(0.05)

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


def kernel_argv(socket_path: Path, policy_file: Path) -> list[str]:
    """A kernelspec argv that starts the kernel through the server."""
    return [sys.executable, "-m", "autograder.judge.forkserver", "kernel", str(socket_path), str(policy_file),
            "{connection_file}"]


def _kernel_client(socket_path: str, policy_file: str, connection_file: str) -> None:
    """What jupyter_client starts as "the kernel": it lives and dies with the real one."""
    request = json.loads(Path(policy_file).read_text())
    # The kernel gets the grading environment, not the worker's (which may hold the host's secrets).
    env = request.get("env", dict(os.environ))
    env.update({key: value for key, value in os.environ.items() if key.startswith("JUPYTER_")})
    request.update(run={"kernel": os.path.abspath(connection_file)}, cwd=os.getcwd(), env=env)
    # What the kernel prints outside cells (its banner, warnings) goes to the grader's log, if it keeps one.
    log = os.open(request["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600) if request.get("log") else 2
    connection = spawn(socket_path, request, [0, log, log])
    signal.signal(signal.SIGTERM, lambda *_: os._exit(143))  # closing the socket ends the kernel
    exit_with_parent()
    sys.exit(wait_exit(connection))


def exit_with_parent(interval: float = 0.5) -> None:
    """End this process when the one that started it is gone (a killed grading worker).

    A thread polls the parent's pid: the kernel's fork-server connection then
    closes and the guardian kills the kernel, so nothing outlives its worker.
    """
    import threading

    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(interval)
        os._exit(137)

    threading.Thread(target=watch, daemon=True, name="exit-with-parent").start()


# ------------------------------------------------------------------- server

def serve(socket_path: str) -> None:
    """Import the heavy modules once, then fork a guardian per request."""
    for module in PRELOAD:
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
            _unshare()
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


def _unshare() -> None:
    uid, gid = os.getuid(), os.getgid()
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWPID) != 0:
        raise OSError(ctypes.get_errno(), "unshare failed")
    Path("/proc/self/setgroups").write_text("deny")
    Path("/proc/self/uid_map").write_text(f"0 {uid} 1")
    Path("/proc/self/gid_map").write_text(f"0 {gid} 1")


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
    """In the sandboxed child: mounts, then the kernel or the module."""
    code = 1
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # the guardian gone means we go too
        for target, fd in zip((0, 1, 2), fds):
            os.dup2(fd, target)
        for fd in fds:
            if fd > 2:
                os.close(fd)
        os.chdir(request.get("cwd", "/"))
        if isolated:
            sandbox.mount("proc", "/proc", "proc", sandbox.MS_NOSUID | sandbox.MS_NODEV | sandbox.MS_NOEXEC)
            sandbox.enter(request["policy"])
        home = os.environ.get("HOME", "/tmp/home")
        os.environ.clear()
        os.environ.update(request.get("env", {}), HOME=home, TMPDIR="/tmp")
        sandbox.limit_memory(request.get("limits", {}).get("data_bytes"))
        run = request["run"]
        if "kernel" in run:
            from ipykernel.kernelapp import launch_new_instance

            sys.argv = ["ipykernel_launcher", "-f", run["kernel"]]
            launch_new_instance()
            code = 0
        else:  # "module:function", preloaded, so calling it costs nothing
            import importlib

            module, function = run["call"].split(":")
            getattr(importlib.import_module(module), function)()
            code = 0
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        sys.stdout.flush() if sys.stdout else None
        os._exit(code)


def main(argv: list[str]) -> None:
    if argv[:1] == ["serve"] and len(argv) == 2:
        serve(argv[1])
    elif argv[:1] == ["kernel"] and len(argv) == 4:
        _kernel_client(*argv[1:])
    else:
        raise SystemExit("usage: python -m autograder.judge.forkserver serve SOCKET | kernel SOCKET POLICY FILE")


if __name__ == "__main__":
    main(sys.argv[1:])
