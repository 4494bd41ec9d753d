"""Run student code where it can do little harm.

Grading executes code that anyone could have written. ``wrap`` turns a
command line into one that runs inside fresh Linux namespaces, which needs
no root (``unshare --user`` maps the caller to root inside the sandbox only):

* the file system is read-only; the folders in ``hidden`` (the repository,
  the gradebook, other students' work, home folders) are covered by empty
  directories, out of which the folders in ``readable`` (the package, the
  data, the Python installation) are brought back read-only and those in
  ``writable`` read-write; ``/tmp``, ``/dev/shm`` and ``$HOME`` are private
  and empty;
* there is no network (an empty network namespace) - the kernel talks to the
  grader over Unix sockets, which live in the file system;
* the sandbox has its own process table: when its first process exits, the
  kernel kills everything it started, daemons included.

``python -m autograder.judge.sandbox POLICY -- COMMAND...`` is the part that runs
inside: it sets up the mounts and then executes COMMAND. When user
namespaces are not available (macOS, some containers), ``available()`` is
False and the grader says that student code runs with the grader's rights.
"""

from __future__ import annotations

import ctypes
import functools
import json
import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_NOATIME, MS_NODIRATIME, MS_BIND = 32, 1024, 2048, 4096
MS_REC, MS_PRIVATE, MS_RELATIME, MS_STRICTATIME = 1 << 14, 1 << 18, 1 << 21, 1 << 24
# Flags a user namespace may not drop from a mount it inherited ("locked").
_KEPT_FLAGS = {"nosuid": MS_NOSUID, "nodev": MS_NODEV, "noexec": MS_NOEXEC, "noatime": MS_NOATIME,
               "nodiratime": MS_NODIRATIME, "relatime": MS_RELATIME, "strictatime": MS_STRICTATIME}
UNSHARE = ["unshare", "--user", "--map-root-user", "--mount", "--pid", "--fork", "--kill-child",
           "--net", "--mount-proc"]


@functools.lru_cache(maxsize=1)
def available() -> bool:
    """Whether this machine lets an unprivileged process create the namespaces."""
    if not sys.platform.startswith("linux") or shutil.which("unshare") is None:
        return False
    probe = subprocess.run(UNSHARE + ["true"], capture_output=True, timeout=30)
    return probe.returncode == 0


def student_policy(private: list[str] = ()) -> tuple[list[str], list[str]]:
    """(hidden, readable) folders for student code: what it must not see, and what it needs to run.

    Hidden: the checkout (masters, gradebooks), the home folders and ``private``
    (other students' work). Readable: the package, its data and the Python
    installation, also where they sit inside a hidden folder.
    """
    from .. import resources

    checkout = resources.checkout_root()  # None when running from an installed wheel
    hidden = [*([str(checkout)] if checkout else []), str(Path.home()), "/root", "/home", *private]
    readable = [str(resources.PACKAGE_DIR), str(resources.data_file("names.txt").parent), sys.prefix,
                sys.base_prefix, os.path.dirname(os.path.realpath(sys.executable))]
    return hidden, readable


def limit_memory(data_bytes: int | None) -> None:
    """Cap the process's data segment (heap and private mappings), so a memory bomb fails alone.

    RLIMIT_DATA, unlike RLIMIT_AS, does not count torch's large reserved but
    unused address space, so ordinary work is unaffected; an allocation past
    the limit raises MemoryError (or torch's "can't allocate memory").
    """
    if data_bytes:
        resource.setrlimit(resource.RLIMIT_DATA, (data_bytes, data_bytes))
        os.environ["NINJA_MEMORY_LIMIT_BYTES"] = str(data_bytes)


def results_channel():
    """The real stdout, kept aside as a line-buffered file for a child's results; fds 1 and 2 then go nowhere.

    Whatever student code prints (or writes to fd 1 directly) cannot forge a
    result line, and nothing it writes reaches the grader's terminal.
    """
    results = os.fdopen(os.dup(1), "w", buffering=1)
    quiet = os.open(os.devnull, os.O_WRONLY)
    os.dup2(quiet, 1)
    os.dup2(quiet, 2)
    sys.stdout = sys.stderr = open(os.devnull, "w")
    return results


def wrap(command: list[str], hidden: list[str], writable: list[str], readable: list[str] = (),
         env_home: str = "/tmp/home") -> list[str]:
    """``command`` as it runs in the sandbox (unchanged when none is available)."""
    if not available():
        return list(command)
    policy = json.dumps({"hidden": _absolute(hidden), "writable": _absolute(writable),
                         "readable": _absolute(readable), "home": env_home})
    return UNSHARE + [sys.executable, "-m", "autograder.judge.sandbox", policy, "--", *command]


def _absolute(paths: list[str]) -> list[str]:
    return [os.path.abspath(p) for p in paths]


# ------------------------------------------------------------ inside the sandbox

_libc = None


def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    """mount(2): ``flags`` are the ``MS_*`` constants above; raises OSError when the kernel refuses."""
    global _libc
    _libc = _libc or ctypes.CDLL(None, use_errno=True)
    if _libc.mount(_bytes(source), _bytes(target), _bytes(fstype), ctypes.c_ulong(flags), _bytes(data)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {source} on {target}: {os.strerror(err)}")


def _bytes(text: str | None) -> bytes | None:
    return None if text is None else text.encode()


def _mount_table() -> list[tuple[str, int]]:
    """(mount point, flags to keep) for every mount, parents before children."""
    mounts = []
    with open("/proc/self/mountinfo") as info:
        for line in info:
            fields = line.split()
            target = fields[4].replace("\\040", " ")
            kept = 0
            for option in fields[5].split(","):
                kept |= _KEPT_FLAGS.get(option, 0)
            mounts.append((target, kept))
    return mounts


def _make_read_only() -> None:
    for target, kept in _mount_table():
        if target == "/proc" or target.startswith("/proc/"):
            continue
        try:
            mount(None, target, None, MS_REMOUNT | MS_BIND | MS_RDONLY | kept)
        except OSError:
            pass  # a mount we may not touch (already read-only or locked): leave it


def _private_tmpfs(target: str, size: str) -> None:
    if os.path.isdir(target):
        mount("tmpfs", target, "tmpfs", MS_NOSUID | MS_NODEV, f"size={size},mode=1777")


def enter(policy: dict) -> None:
    """Set up the mounts of a new mount namespace according to ``policy``."""
    cwd = os.getcwd()
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    # Keep a handle on every folder to bring back: it may sit inside a hidden one.
    keep = {path: (os.open(path, os.O_PATH | os.O_DIRECTORY), writable)
            for paths, writable in ((policy["readable"], False), (policy["writable"], True))
            for path in paths if os.path.isdir(path)}
    _make_read_only()
    _private_tmpfs("/tmp", "1g")  # also hides whatever the grader keeps under /tmp
    _private_tmpfs("/dev/shm", "256m")
    covers = []
    for path in policy["hidden"]:
        if os.path.isdir(path):
            mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, "size=64k,mode=755")
            covers.append(path)
        elif os.path.exists(path):
            mount("/dev/null", path, None, MS_BIND)
    for path, (fd, writable) in sorted(keep.items(), key=lambda entry: len(entry[0])):  # parents first
        os.makedirs(path, exist_ok=True)  # a mount point inside a cover or the new /tmp
        mount(f"/proc/self/fd/{fd}", path, None, MS_BIND | MS_REC)
        os.close(fd)
        # A bind mount starts with the flags of its source, read-only by now.
        kept = dict(_mount_table()).get(path, 0)
        mount(None, path, None, MS_REMOUNT | MS_BIND | kept | (0 if writable else MS_RDONLY))
    for path in covers:  # nothing may be added to a cover afterwards
        mount(None, path, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)
    os.makedirs(policy["home"], exist_ok=True)
    os.environ["HOME"] = policy["home"]
    os.environ["TMPDIR"] = "/tmp"
    # The old working directory still leads into the unmasked tree ("../.."):
    # enter it again through the new mounts, or start at / if it is hidden.
    try:
        os.chdir(cwd)
    except OSError:
        os.chdir("/")


def main(argv: list[str]) -> None:
    policy, separator, command = json.loads(argv[0]), argv[1], argv[2:]
    if separator != "--" or not command:
        raise SystemExit("usage: python -m autograder.judge.sandbox POLICY -- COMMAND...")
    enter(policy)
    os.execvp(command[0], command)


if __name__ == "__main__":
    main(sys.argv[1:])
