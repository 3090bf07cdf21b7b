"""The security-relevant syscalls the tracepoint rung observes, and how.

Each entry names the syscall, its numbers on x86_64 and aarch64 (``None`` where
the architecture lacks it), its family (the same families as the hook
catalogue), the LSM hooks it exercises (so ``--hooks file_open`` also selects
``openat`` on the tracepoint rung), and how the kernel side decodes its object
from the user registers: a decoder and the indices of the arguments it reads
(see ``enum lsmt_decoder`` in bpf/lsmtrace.h).

tests/unit/test_syscalls.py checks the numbers of the host's architecture
against ``<sys/syscall.h>`` compiled by the host C compiler.
"""

from __future__ import annotations

import fnmatch
import platform
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from lsmtrace.abi import NONE_ARG, SYSCALL_BASE, Decoder, ObjType

_ = NONE_ARG


@dataclass(frozen=True)
class Syscall:
    name: str
    x86_64: int | None
    aarch64: int | None
    family: str
    hooks: tuple[str, ...]
    decoder: Decoder
    obj_type: ObjType
    args: tuple[int, int, int, int]

    def nr(self, arch: str | None = None) -> int | None:
        arch = arch or machine()
        return self.x86_64 if arch == "x86_64" else self.aarch64

    @property
    def event_name(self) -> str:
        """The `hook` field of this syscall's events: never an LSM hook name."""
        return f"sys_{self.name}"


def machine() -> str:
    m = platform.machine()
    return {"amd64": "x86_64", "arm64": "aarch64"}.get(m, m)


P, P2, EX, K, PT = (
    Decoder.PATH,
    Decoder.PATH2,
    Decoder.EXEC,
    Decoder.KILL,
    Decoder.PTRACE,
)
M, S, SA, MH, SI = (
    Decoder.MEM,
    Decoder.SOCKET,
    Decoder.SOCKADDR,
    Decoder.MSGHDR,
    Decoder.SETID,
)
MO, FD, MN, B, NI = (
    Decoder.MOUNT,
    Decoder.FD,
    Decoder.MODNAME,
    Decoder.BPF,
    Decoder.NICE,
)
OPN = Decoder.OPEN  # a path whose success returns a descriptor of the file
N0 = Decoder.NONE
OF, OE, OS, OSG, OP = (
    ObjType.FILE,
    ObjType.EXEC,
    ObjType.SOCK,
    ObjType.SIGNAL,
    ObjType.PTRACE,
)
OM, OSE, OMO, OMD, OB = (
    ObjType.MEM,
    ObjType.SETID,
    ObjType.MOUNT,
    ObjType.MODULE,
    ObjType.BPF,
)
ON = ObjType.NONE
ONI = ObjType.NICE
X = NONE_ARG

_OPEN = ("file_open", "inode_permission", "inode_create", "path_mknod")
_CHMOD = ("path_chmod", "inode_setattr")
_CHOWN = ("path_chown", "inode_setattr")
_UNLINK = ("path_unlink", "inode_unlink", "path_rmdir", "inode_rmdir")
_RENAME = ("path_rename", "inode_rename")
_MKNOD = ("path_mknod", "inode_mknod", "path_mkdir", "inode_mkdir", "inode_create")
_LINK = ("path_link", "inode_link", "path_symlink", "inode_symlink")
_EXEC = (
    "bprm_check_security",
    "bprm_creds_for_exec",
    "bprm_creds_from_file",
    "file_open",
)
_SETID = ("task_fix_setuid", "task_fix_setgid", "capable")
_MODULE = (
    "kernel_load_data",
    "kernel_read_file",
    "kernel_module_request",
    "locked_down",
)

# name, x86_64, aarch64, family, hooks, decoder, object, args
_TABLE: tuple[
    tuple[
        str,
        int | None,
        int | None,
        str,
        tuple[str, ...],
        Decoder,
        ObjType,
        tuple[int, int, int, int],
    ],
    ...,
] = (
    ("open", 2, None, "file", _OPEN, OPN, OF, (0, 1, 2, X)),
    ("openat", 257, 56, "file", _OPEN, OPN, OF, (1, 2, 3, 0)),
    ("openat2", 437, 437, "file", _OPEN, OPN, OF, (1, X, X, 0)),
    ("creat", 85, None, "file", _OPEN, OPN, OF, (0, X, 1, X)),
    (
        "truncate",
        76,
        45,
        "file",
        ("path_truncate", "inode_setattr"),
        P,
        OF,
        (0, X, X, X),
    ),
    ("chmod", 90, None, "file", _CHMOD, P, OF, (0, X, 1, X)),
    ("fchmod", 91, 52, "file", _CHMOD, FD, OF, (0, 1, X, X)),
    ("fchmodat", 268, 53, "file", _CHMOD, P, OF, (1, X, 2, 0)),
    ("fchmodat2", 452, 452, "file", _CHMOD, P, OF, (1, 3, 2, 0)),
    ("chown", 92, None, "file", _CHOWN, P, OF, (0, X, X, X)),
    ("lchown", 94, None, "file", _CHOWN, P, OF, (0, X, X, X)),
    ("fchown", 93, 55, "file", _CHOWN, FD, OF, (0, X, X, X)),
    ("fchownat", 260, 54, "file", _CHOWN, P, OF, (1, 4, X, 0)),
    ("unlink", 87, None, "file", _UNLINK, P, OF, (0, X, X, X)),
    ("unlinkat", 263, 35, "file", _UNLINK, P, OF, (1, 2, X, 0)),
    ("rmdir", 84, None, "file", _UNLINK, P, OF, (0, X, X, X)),
    ("rename", 82, None, "file", _RENAME, P2, OF, (0, 1, X, X)),
    ("renameat", 264, 38, "file", _RENAME, P2, OF, (1, 3, X, 0)),
    ("renameat2", 316, 276, "file", _RENAME, P2, OF, (1, 3, 4, 0)),
    ("mkdir", 83, None, "file", _MKNOD, P, OF, (0, X, 1, X)),
    ("mkdirat", 258, 34, "file", _MKNOD, P, OF, (1, X, 2, 0)),
    ("mknod", 133, None, "file", _MKNOD, P, OF, (0, X, 1, X)),
    ("mknodat", 259, 33, "file", _MKNOD, P, OF, (1, X, 2, 0)),
    ("link", 86, None, "file", _LINK, P2, OF, (0, 1, X, X)),
    ("linkat", 265, 37, "file", _LINK, P2, OF, (1, 3, 4, 0)),
    ("symlink", 88, None, "file", _LINK, P2, OF, (1, 0, X, X)),
    ("symlinkat", 266, 36, "file", _LINK, P2, OF, (2, 0, X, 1)),
    ("execve", 59, 221, "exec", _EXEC, EX, OE, (0, X, X, X)),
    ("execveat", 322, 281, "exec", _EXEC, EX, OE, (1, 0, X, X)),
    ("mmap", 9, 222, "file", ("mmap_file", "mmap_addr"), M, OM, (0, 1, 2, 3)),
    ("mprotect", 10, 226, "file", ("file_mprotect",), M, OM, (0, 1, 2, X)),
    ("kill", 62, 129, "task", ("task_kill",), K, OSG, (0, 1, X, X)),
    ("tkill", 200, 130, "task", ("task_kill",), K, OSG, (0, 1, X, X)),
    ("tgkill", 234, 131, "task", ("task_kill",), K, OSG, (1, 2, X, X)),
    (
        "setpriority",
        141,
        140,
        "task",
        ("task_setnice", "capable"),
        NI,
        ONI,
        (0, 1, 2, X),
    ),
    (
        "ptrace",
        101,
        117,
        "ptrace",
        ("ptrace_access_check", "ptrace_traceme"),
        PT,
        OP,
        (0, 1, X, X),
    ),
    (
        "process_vm_readv",
        310,
        270,
        "ptrace",
        ("ptrace_access_check",),
        PT,
        OP,
        (X, 0, X, X),
    ),
    (
        "process_vm_writev",
        311,
        271,
        "ptrace",
        ("ptrace_access_check",),
        PT,
        OP,
        (X, 0, X, X),
    ),
    ("setuid", 105, 146, "cred", _SETID, SI, OSE, (0, X, X, X)),
    ("setgid", 106, 144, "cred", _SETID, SI, OSE, (0, X, X, X)),
    ("setreuid", 113, 145, "cred", _SETID, SI, OSE, (0, 1, X, X)),
    ("setregid", 114, 143, "cred", _SETID, SI, OSE, (0, 1, X, X)),
    ("setresuid", 117, 147, "cred", _SETID, SI, OSE, (0, 1, 2, X)),
    ("setresgid", 119, 149, "cred", _SETID, SI, OSE, (0, 1, 2, X)),
    ("setfsuid", 122, 151, "cred", _SETID, SI, OSE, (0, X, X, X)),
    ("setfsgid", 123, 152, "cred", _SETID, SI, OSE, (0, X, X, X)),
    ("capset", 126, 91, "capability", ("capset",), N0, ON, (X, X, X, X)),
    ("socket", 41, 198, "network", ("socket_create",), S, OS, (0, 1, 2, X)),
    ("connect", 42, 203, "network", ("socket_connect",), SA, OS, (0, 1, 2, X)),
    ("bind", 49, 200, "network", ("socket_bind",), SA, OS, (0, 1, 2, X)),
    ("listen", 50, 201, "network", ("socket_listen",), N0, ON, (X, X, X, X)),
    ("accept", 43, 202, "network", ("socket_accept",), N0, ON, (X, X, X, X)),
    ("accept4", 288, 242, "network", ("socket_accept",), N0, ON, (X, X, X, X)),
    ("sendto", 44, 206, "network", ("socket_sendmsg",), SA, OS, (0, 4, 5, X)),
    ("sendmsg", 46, 211, "network", ("socket_sendmsg",), MH, OS, (0, 1, X, X)),
    ("init_module", 175, 105, "kernel", _MODULE, N0, ON, (X, X, X, X)),
    ("finit_module", 313, 273, "kernel", _MODULE, FD, OMD, (0, 2, X, X)),
    ("delete_module", 176, 106, "kernel", ("locked_down",), MN, OMD, (0, X, X, X)),
    (
        "kexec_load",
        246,
        104,
        "kernel",
        ("kernel_load_data", "locked_down"),
        N0,
        ON,
        (X, X, X, X),
    ),
    (
        "kexec_file_load",
        320,
        294,
        "kernel",
        ("kernel_read_file", "locked_down"),
        FD,
        OMD,
        (0, X, X, X),
    ),
    (
        "bpf",
        321,
        280,
        "bpf",
        ("bpf", "bpf_map", "bpf_prog", "locked_down"),
        B,
        OB,
        (0, X, 2, X),
    ),
    (
        "perf_event_open",
        298,
        241,
        "kernel",
        ("perf_event_open", "locked_down"),
        N0,
        ON,
        (X, X, X, X),
    ),
    ("mount", 165, 40, "mount", ("sb_mount",), MO, OMO, (0, 1, 2, 3)),
    ("umount2", 166, 39, "mount", ("sb_umount",), P, OF, (0, 1, X, X)),
    ("move_mount", 429, 429, "mount", ("move_mount",), P2, OF, (1, 3, 4, X)),
    ("pivot_root", 155, 41, "mount", ("sb_pivotroot",), P2, OF, (0, 1, X, X)),
    ("chroot", 161, 51, "mount", ("path_chroot",), P, OF, (0, X, X, X)),
    ("unshare", 272, 97, "cred", ("capable",), N0, ON, (X, X, X, X)),
    ("setns", 308, 268, "cred", ("capable",), N0, ON, (X, X, X, X)),
)

SYSCALLS: tuple[Syscall, ...] = tuple(Syscall(*row) for row in _TABLE)
BY_NAME = {s.name: s for s in SYSCALLS}


def by_nr(arch: str | None = None) -> dict[int, Syscall]:
    arch = arch or machine()
    out: dict[int, Syscall] = {}
    for s in SYSCALLS:
        nr = s.nr(arch)
        if nr is not None:
            out[nr] = s
    return out


UNISTD = {
    "x86_64": (
        "/usr/include/x86_64-linux-gnu/asm/unistd_64.h",
        "/usr/include/asm/unistd_64.h",
    ),
    "aarch64": (
        "/usr/include/aarch64-linux-gnu/asm/unistd.h",
        "/usr/include/asm-generic/unistd.h",
    ),
}


def all_names(arch: str | None = None) -> dict[int, str]:
    """Every syscall's name by number, for the `syscall` field of events.

    Read from the uapi header (Debian linux-libc-dev) when present, else only
    the traced syscalls of the table above are named.
    """
    arch = arch or machine()
    out = {nr: s.name for nr, s in by_nr(arch).items()}
    for cand in UNISTD.get(arch, ()):
        try:
            text = Path(cand).read_text()
        except OSError:
            continue
        for m in re.finditer(r"^#define __NR_(\w+)\s+(\d+)\s*$", text, re.M):
            out.setdefault(int(m.group(2)), m.group(1))
        break
    return out


def event_id(nr: int) -> int:
    return SYSCALL_BASE + nr


def select(
    hook_globs: Iterable[str] | None = None,
    families: Iterable[str] | None = None,
    arch: str | None = None,
) -> list[Syscall]:
    """The syscalls to trace for these filters (all of them by default).

    A glob selects a syscall when it matches the syscall's event name
    (``sys_openat``), its bare name, or one of the hooks it exercises; globs and
    families add up (union), as in the hook catalogue's ``select``.
    """
    arch = arch or machine()
    globs = list(hook_globs or [])
    fams = set(families or [])
    out = []
    for s in SYSCALLS:
        if s.nr(arch) is None:
            continue
        if globs or fams:
            by_family = s.family in fams
            by_glob = any(
                fnmatch.fnmatchcase(name, g)
                for g in globs
                for name in (s.event_name, s.name, *s.hooks)
            )
            if not (by_family or by_glob):
                continue
        out.append(s)
    return out
