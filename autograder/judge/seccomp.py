"""A seccomp filter for sandboxed student code: the system calls a gradient has no use for fail with EPERM.

Refused: administering the kernel, mounts and namespaces (``mount``,
``unshare``, ``setns``, ``pivot_root``, ``clone`` asking for new namespaces),
reading or writing other processes (``ptrace``, ``process_vm_*``), loading
kernel code (``bpf``, ``init_module``, ...), the kernel keyring, performance
counters, ``userfaultfd`` and ``io_uring`` (large attack surfaces), and any
call through another ABI (32-bit or x32 calls). Everything else is allowed:
the allow-listed file system and the namespaces are the walls, this filter
is one more layer in front of the kernel.

``install`` needs ``PR_SET_NO_NEW_PRIVS`` (``sandbox`` sets it first). The
filter is a short BPF program built here; libseccomp is not needed.
"""

from __future__ import annotations

import ctypes
import os
import platform

AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
DENIED_SYSCALLS = {
    "x86_64": {"ptrace": 101, "process_vm_readv": 310, "process_vm_writev": 311, "mount": 165, "umount2": 166,
               "pivot_root": 155, "chroot": 161, "unshare": 272, "setns": 308, "bpf": 321, "perf_event_open": 298,
               "keyctl": 250, "add_key": 248, "request_key": 249, "kexec_load": 246, "kexec_file_load": 320,
               "init_module": 175, "finit_module": 313, "delete_module": 176, "reboot": 169, "swapon": 167,
               "swapoff": 168, "open_by_handle_at": 304, "name_to_handle_at": 303, "userfaultfd": 323,
               "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427, "acct": 163,
               "quotactl": 179, "syslog": 103, "fanotify_init": 300, "move_mount": 429,
               "open_tree": 428, "fsopen": 430, "fsmount": 432, "mount_setattr": 442},
    "aarch64": {"ptrace": 117, "process_vm_readv": 270, "process_vm_writev": 271, "mount": 40, "umount2": 39,
                "pivot_root": 41, "chroot": 51, "unshare": 97, "setns": 268, "bpf": 280, "perf_event_open": 241,
                "keyctl": 219, "add_key": 217, "request_key": 218, "kexec_load": 104, "kexec_file_load": 294,
                "init_module": 105, "finit_module": 273, "delete_module": 106, "reboot": 142, "swapon": 224,
                "swapoff": 225, "open_by_handle_at": 265, "name_to_handle_at": 264, "userfaultfd": 282,
                "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427, "acct": 89,
                "quotactl": 60, "syslog": 116, "fanotify_init": 262, "move_mount": 429,
                "open_tree": 428, "fsopen": 430, "fsmount": 432, "mount_setattr": 442},
}
CLONE_SYSCALL = {"x86_64": 56, "aarch64": 220}
NAMESPACE_FLAGS = 0x7E020000  # CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET
# BPF opcodes
LD_W_ABS, JEQ_K, JGE_K, JSET_K, RET_K = 0x20, 0x15, 0x35, 0x45, 0x06
X32_SYSCALL_BIT = 0x40000000
SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO, SECCOMP_RET_KILL_PROCESS = 0x7FFF0000, 0x00050000, 0x80000000
EPERM, ENOSYS = 1, 38
CLONE3_SYSCALL = 435  # the same number on x86_64 and aarch64
PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 22, 2


class _Filter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8), ("k", ctypes.c_uint32)]


class _Program(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_Filter))]


def seccomp_program(machine: str) -> list[tuple[int, int, int, int]]:
    """The filter as (code, jt, jf, k) instructions; jumps are relative to the next instruction."""
    denied = sorted(DENIED_SYSCALLS[machine].values())
    count = len(denied)
    allow, deny, nosys = 9 + count, 10 + count, 11 + count  # where the returns sit
    program = [(LD_W_ABS, 0, 0, 4),  # seccomp_data.arch
               (JEQ_K, 1, 0, AUDIT_ARCH[machine]),
               (RET_K, 0, 0, SECCOMP_RET_KILL_PROCESS),  # another ABI (32-bit calls): never
               (LD_W_ABS, 0, 0, 0),  # seccomp_data.nr
               (JGE_K, deny - 5, 0, X32_SYSCALL_BIT)]  # x32 calls share the arch: refuse them all
    for number in denied:
        program.append((JEQ_K, deny - len(program) - 1, 0, number))
    # clone3 passes its flags in memory, out of a filter's reach: ENOSYS makes the C library use clone.
    program.append((JEQ_K, nosys - len(program) - 1, 0, CLONE3_SYSCALL))
    program.append((JEQ_K, 0, allow - len(program) - 1, CLONE_SYSCALL[machine]))
    program.append((LD_W_ABS, 0, 0, 16))  # clone's flags: args[0], low 32 bits
    program.append((JSET_K, deny - len(program) - 1, 0, NAMESPACE_FLAGS))
    if len(program) != allow:  # the jump offsets above count on it
        raise RuntimeError("seccomp program misassembled")
    program += [(RET_K, 0, 0, SECCOMP_RET_ALLOW), (RET_K, 0, 0, SECCOMP_RET_ERRNO | EPERM),
                (RET_K, 0, 0, SECCOMP_RET_ERRNO | ENOSYS)]
    return program


def supported() -> bool:
    return platform.machine() in DENIED_SYSCALLS


def install() -> None:
    """Install the filter on this process and every process it starts (it cannot be removed)."""
    machine = platform.machine()
    if machine not in DENIED_SYSCALLS:
        return  # an architecture without a table: the namespaces and limits still hold
    instructions = seccomp_program(machine)
    array = (_Filter * len(instructions))(*[_Filter(*i) for i in instructions])
    program = _Program(len(instructions), array)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(program), 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"seccomp: {os.strerror(err)}")
