"""Run student code where it can do little harm: see little, touch nothing, use a bounded share.

A sandboxed process (the judge's child, the lecture checker's child) starts
in new Linux namespaces (mount, network, process table; a user namespace
too when the grader is not root) and then ``confine`` makes it:

* see only what it needs (an allow-list, not a deny-list): a fresh root file
  system holding the Python installation, the package and its data and the
  system's libraries, all read-only; a private /proc; /dev/null, zero,
  full, random and urandom; a small private /tmp (its home); and nothing
  else of the host, wherever the instructor keeps the course;
* an unprivileged user: a grader running as root hands the code a uid of its
  own (``UID_BASE`` + the process id) that owns no file of the host; a
  grader running as anyone else cannot give away more than its own rights,
  and the code keeps none of the namespace's capabilities;
* bounded (``Limits``): address space (which, unlike RLIMIT_DATA, counts
  every mapping, shared ones included) for its memory plus its /tmp, the
  size of /tmp itself, processes, open files, file size, CPU seconds;
* filtered: a seccomp filter refuses the system calls a gradient has no use
  for (``judge.seccomp``);
* cut off: no network at all (an empty network namespace), and when its
  first process exits, everything it started dies with it.

What does not need privileges is done without them: no setuid helper, no
daemon. ``python -m autograder.judge.sandbox POLICY LIMITS -- COMMAND...``
is the same set-up for a command started cold (``wrap``). When namespaces
are not available (macOS, some containers), ``available()`` is False and
the grader says that student code runs with the grader's rights.
"""

from __future__ import annotations

import ctypes
import functools
import json
import os
import platform
import resource
import shutil
import signal
import site
import subprocess
import sys
from dataclasses import asdict, dataclass, field

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 1 << 14, 1 << 18
MNT_DETACH = 2
CLONE_NEWNS, CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x00020000, 0x10000000, 0x20000000, 0x40000000
PR_SET_PDEATHSIG, PR_SET_NO_NEW_PRIVS, PR_CAPBSET_DROP, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 1, 38, 24, 47, 4
_SYSCALLS = {"x86_64": {"pivot_root": 155, "capset": 126}, "aarch64": {"pivot_root": 41, "capset": 91}}
UID_BASE = 2_000_000_000  # a root grader's sandboxes run as UID_BASE + their pid: users no file belongs to
SYSTEM_LIBRARIES = ("/usr/lib", "/usr/lib64", "/usr/lib32", "/lib", "/lib64", "/lib32", "/etc/ld.so.cache")
DEVICES = ("null", "zero", "full", "random", "urandom")
UNSHARE_AS_USER = ["unshare", "--user", "--map-root-user", "--mount", "--pid", "--fork", "--kill-child", "--net",
                   "--mount-proc"]
UNSHARE_AS_ROOT = ["unshare", "--mount", "--pid", "--fork", "--kill-child", "--net", "--mount-proc"]


@dataclass(frozen=True)
class Policy:
    """What sandboxed code may see: ``readable`` paths, read-only, and nothing else of the host."""

    readable: tuple[str, ...]

    def to_json(self) -> dict:
        return {"readable": list(self.readable)}

    @classmethod
    def from_json(cls, data: dict) -> Policy:
        return cls(tuple(data["readable"]))


@dataclass(frozen=True)
class Limits:
    """What sandboxed code may use. ``memory_bytes`` covers the process's memory and its /tmp together."""

    memory_bytes: int = 4 * 2**30
    tmp_bytes: int = 64 * 2**20  # /tmp, a tmpfs: its files are memory, counted in memory_bytes
    processes: int = 64  # processes and threads
    open_files: int = 256
    file_bytes: int = 64 * 2**20  # the largest file it may write
    cpu_seconds: int = 600  # a backstop: the judge's wall-clock limits end it far sooner
    extra: dict = field(default_factory=dict, compare=False)

    def to_json(self) -> dict:
        return {key: value for key, value in asdict(self).items() if key != "extra"}

    @classmethod
    def from_json(cls, data: dict) -> Limits:
        return cls(**{key: data[key] for key in cls.__dataclass_fields__ if key in data and key != "extra"})

    @classmethod
    def for_memory_gb(cls, gigabytes: float) -> Limits:
        """The default limits with ``gigabytes`` of memory (0: the default)."""
        return cls(memory_bytes=int(gigabytes * 2**30)) if gigabytes else cls()


def student_policy() -> Policy:
    """What student code needs to run: the Python installation, the package, its data, the system's libraries."""
    from .. import resources

    paths = [sys.prefix, sys.base_prefix, sys.executable, *site.getsitepackages(), str(resources.PACKAGE_DIR),
             str(resources.data_file("names.txt").parent), *SYSTEM_LIBRARIES]
    return Policy(tuple(dict.fromkeys(p for p in paths if os.path.lexists(p))))


@functools.lru_cache(maxsize=1)
def available() -> bool:
    """Whether this machine lets this process create the namespaces (a probe, once per process)."""
    if not sys.platform.startswith("linux") or platform.machine() not in _SYSCALLS or shutil.which("unshare") is None:
        return False
    probe = subprocess.run(_unshare_command() + ["true"], capture_output=True, timeout=30)
    return probe.returncode == 0


def _unshare_command() -> list[str]:
    return UNSHARE_AS_ROOT if os.geteuid() == 0 else UNSHARE_AS_USER


def wrap(command: list[str], policy: Policy, limits: Limits) -> list[str]:
    """``command`` as it runs in the sandbox (unchanged, and unconfined, when none is available)."""
    if not available():
        return list(command)
    return _unshare_command() + [sys.executable, "-m", "autograder.judge.sandbox", json.dumps(policy.to_json()),
                                 json.dumps(limits.to_json()), "--", *command]


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


# ------------------------------------------------------------ entering the namespaces

_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    """mount(2): ``flags`` are the ``MS_*`` constants above; raises OSError when the kernel refuses."""
    def encode(text):
        return None if text is None else text.encode()
    _check(_libc.mount(encode(source), encode(target), encode(fstype), ctypes.c_ulong(flags), encode(data)),
           f"mount {target}")


def _syscall(name: str, *args) -> int:
    return _libc.syscall(_SYSCALLS[platform.machine()][name], *args)


def enter_namespaces() -> None:
    """New mount, network and process namespaces for the caller's next child (pid 1 of its own table).

    A grader that is not root needs a user namespace for that, in which it is
    root only over these namespaces; a root grader does without and later
    gives its child an unprivileged uid instead (``confine``).
    """
    uid, gid = os.getuid(), os.getgid()
    if uid == 0:
        _check(_libc.unshare(CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWPID), "unshare")
        return
    _check(_libc.unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWPID), "unshare")
    for name, text in (("setgroups", "deny"), ("uid_map", f"0 {uid} 1"), ("gid_map", f"0 {gid} 1")):
        with open(f"/proc/self/{name}", "w") as file:
            file.write(text)


def confine(policy: Policy, limits: Limits, keep_fds: tuple[int, ...] = (0, 1, 2)) -> None:
    """In a fresh namespace's first process, before it runs anything untrusted: everything the docstring lists.

    ``keep_fds`` stay open; every other file descriptor (a handle on a folder
    outside would be a way out) is closed.
    """
    from . import seccomp

    unprivileged_uid = UID_BASE + os.getpid() % 1_000_000_000 if _host_root() else os.getuid()
    parent = os.getppid()
    _close_all_but(keep_fds)
    _build_root(policy, limits, unprivileged_uid)
    _limit(limits)
    _drop_privileges(unprivileged_uid)
    # Changing the uid cleared the parent-death signal: arm it again, so that nothing outlives whoever started it.
    _check(_libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "pdeathsig")
    if os.getppid() != parent:  # it died meanwhile
        os._exit(137)
    seccomp.install()
    os.environ.update(HOME="/tmp/home", TMPDIR="/tmp", NINJA_MEMORY_LIMIT_BYTES=str(limits.memory_bytes))
    os.makedirs("/tmp/home", exist_ok=True)
    os.chdir("/tmp/home")


def confine_without_namespaces(limits: Limits, keep_fds: tuple[int, ...] = (0, 1, 2)) -> None:
    """Where no namespaces can be made: at least the limits, the filter, and no inherited descriptors."""
    from . import seccomp

    _close_all_but(keep_fds)
    _limit(limits)
    _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
    seccomp.install()
    os.environ["NINJA_MEMORY_LIMIT_BYTES"] = str(limits.memory_bytes)


def _close_all_but(keep: tuple[int, ...]) -> None:
    for fd in sorted(int(name) for name in os.listdir("/proc/self/fd")):
        if fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass  # the listing's own descriptor, gone already


def _host_root() -> bool:
    """Whether this process is root of the host (not merely root of a user namespace)."""
    if os.geteuid() != 0:
        return False
    with open("/proc/self/uid_map") as file:
        return file.read().split()[:2] == ["0", "0"]


def _build_root(policy: Policy, limits: Limits, uid: int) -> None:
    """Replace / with a tmpfs holding only the policy's paths (read-only), /proc, a few devices and a small /tmp."""
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    # Every path is bound where it really is, and the links that lead to it are made again beside it,
    # so that nothing is ever created through a link while the old root is still there to lead into.
    real = sorted({os.path.realpath(p) for p in policy.readable if os.path.exists(p)}, key=len)
    links = dict(link for path in policy.readable for link in _links_on_the_way(path))
    handles = [(path, os.open(path, os.O_PATH | os.O_CLOEXEC), os.path.isdir(path)) for path in real]
    devices = {name: os.open(f"/dev/{name}", os.O_PATH | os.O_CLOEXEC) for name in DEVICES}
    new = "/tmp"  # any folder will do as the mount point: this mount namespace is ours alone
    mount("tmpfs", new, "tmpfs", MS_NOSUID | MS_NODEV, "size=8m,mode=755")
    # The small writable /tmp first: a Python installation that lives under /tmp is bound inside it.
    os.makedirs(new + "/tmp")
    mount("tmpfs", new + "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, f"size={limits.tmp_bytes},nr_inodes=4096,mode=1777")
    for path, fd, is_dir in handles:
        if os.path.lexists(new + path):  # inside a folder bound before it
            os.close(fd)
        else:
            _bind_read_only(fd, new + path, is_dir)
    for path, text in sorted(links.items()):
        if not os.path.lexists(new + path):
            os.makedirs(os.path.dirname(new + path), exist_ok=True)
            os.symlink(text, new + path)
    os.makedirs(new + "/proc")
    mount("proc", new + "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    os.makedirs(new + "/dev")
    for name, fd in devices.items():
        open(f"{new}/dev/{name}", "w").close()
        mount(f"/proc/self/fd/{fd}", f"{new}/dev/{name}", None, MS_BIND)
        os.close(fd)
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
                         ("stderr", "/proc/self/fd/2")):
        os.symlink(target, f"{new}/dev/{name}")
    os.makedirs(new + "/dev/shm")
    mount("tmpfs", new + "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=1m,mode=1777")
    os.makedirs(new + "/etc", exist_ok=True)
    with open(new + "/etc/passwd", "w") as file:  # the sandbox's own user only: the host's are none of its business
        file.write(f"root:x:0:0:root:/:/bin/false\nstudent:x:{uid}:{uid}:student:/tmp/home:/bin/false\n")
    os.makedirs(new + "/.old-root")
    os.chdir(new)
    _check(_syscall("pivot_root", b".", b".old-root"), "pivot_root")
    os.chdir("/")
    _check(_libc.umount2(b"/.old-root", MNT_DETACH), "umount the old root")
    os.rmdir("/.old-root")
    mount(None, "/", None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)


def _links_on_the_way(path: str) -> list[tuple[str, str]]:
    """(where, text) of every symbolic link met while resolving ``path``, each where it really sits."""
    found, current = [], "/"
    for part in [p for p in path.split("/") if p]:
        candidate = os.path.join(current, part)
        if os.path.islink(candidate):
            found.append((candidate, os.readlink(candidate)))
            current = os.path.realpath(candidate)
        else:
            current = candidate
    return found


def _bind_read_only(fd: int, target: str, is_dir: bool) -> None:
    if is_dir:
        os.makedirs(target, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        open(target, "w").close()
    mount(f"/proc/self/fd/{fd}", target, None, MS_BIND | MS_REC)
    os.close(fd)
    try:
        mount(None, target, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)
    except OSError:  # a mount with locked flags (noexec, say) that a user namespace may not drop: keep them
        mount(None, target, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)


def _limit(limits: Limits) -> None:
    """Resource limits, in the units that matter; memory counts every mapping, /tmp's files included."""
    address_space = _mapped_bytes() + max(limits.memory_bytes - limits.tmp_bytes, 64 * 2**20)
    for which, value in ((resource.RLIMIT_AS, address_space), (resource.RLIMIT_DATA, limits.memory_bytes),
                         (resource.RLIMIT_NOFILE, limits.open_files), (resource.RLIMIT_FSIZE, limits.file_bytes),
                         (resource.RLIMIT_CORE, 0), (resource.RLIMIT_CPU, limits.cpu_seconds)):
        resource.setrlimit(which, (value, value))
    if _host_root():  # per uid, and a root grader's sandbox has a uid of its own; for others it would count theirs
        resource.setrlimit(resource.RLIMIT_NPROC, (limits.processes, limits.processes))


def _mapped_bytes() -> int:
    """The address space this process maps already (libraries, torch's reservations): not the student's."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def _drop_privileges(uid: int) -> None:
    """A root grader's child becomes ``uid``; any other gives up the namespace's capabilities. No way back."""
    if _host_root():
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
    else:
        for capability in range(64):
            if _libc.prctl(PR_CAPBSET_DROP, capability, 0, 0, 0) != 0:
                break
        _libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
        header = (ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this process
        _check(_syscall("capset", header, (ctypes.c_uint32 * 6)()), "capset")
    _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")


def main(argv: list[str]) -> None:
    """``POLICY LIMITS -- COMMAND...``: confine this process (pid 1 of new namespaces), then run COMMAND."""
    if len(argv) < 4 or argv[2] != "--":
        raise SystemExit("usage: python -m autograder.judge.sandbox POLICY LIMITS -- COMMAND...")
    confine(Policy.from_json(json.loads(argv[0])), Limits.from_json(json.loads(argv[1])))
    os.execvp(argv[3], argv[3:])


if __name__ == "__main__":
    main(sys.argv[1:])
