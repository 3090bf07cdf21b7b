"""Apply a Landlock policy (lsmtrace/policy/landlock.py format) and exec a command.

The syscalls (x86_64 and aarch64 share the numbers): 444 landlock_create_ruleset,
445 landlock_add_rule, 446 landlock_restrict_self. The ruleset uses the best ABI
the kernel offers (create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION)):
rights newer than that ABI are dropped from what is handled, so they stay
allowed, as Landlock's own documentation recommends (best effort). Rules on
files keep only the file rights (the kernel refuses directory rights there);
a rule whose path does not exist is skipped with a warning. No root needed:
no_new_privs is set first.

With "exec_interpreters" (the default), each executable a rule allows also gets
execute+read for its ELF interpreter (PT_INTERP, e.g. ld-linux) or its "#!"
interpreter, and so on down the chain (a script's interpreter's ld-linux): the
kernel opens those itself during execve, so no recording sees them, yet
Landlock checks them.

With "private_tmp" ({"under": "/tmp", "access": [...]}), a new directory is made
under "under" for this run (mkdtemp, mode 0700), TMPDIR points at it and the
rights are granted beneath it: the workload's random temporary names get a
per-run directory instead of all of /tmp. The directory is left behind when
the command exits (the sandbox execs it).
"""

from __future__ import annotations

import ctypes as ct
import errno
import logging
import os
import stat
import struct
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lsmtrace.errors import KernelFeatureError, LsmtraceError
from lsmtrace.policy import landlock as ll

log = logging.getLogger(__name__)

SYS_CREATE_RULESET, SYS_ADD_RULE, SYS_RESTRICT_SELF = 444, 445, 446
CREATE_RULESET_VERSION = 1
RULE_PATH_BENEATH, RULE_NET_PORT = 1, 2
PR_SET_NO_NEW_PRIVS = 38
RESTRICT_SELF_LOG_NEW_EXEC_ON = 1 << 1  # LANDLOCK_RESTRICT_SELF_LOG_NEW_EXEC_ON, ABI 7
O_PATH = getattr(os, "O_PATH", 0o10000000)


class SandboxError(LsmtraceError):
    """Landlock is missing or refused the policy."""


@dataclass
class Plan:
    abi: int
    handled_fs: int
    handled_net: int
    rules: list[tuple[str, int]] = field(default_factory=list)  # (path, rights)
    ports: list[tuple[int, int]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    private_tmp: tuple[str, int] | None = None  # (parent, rights) of the TMPDIR to make


def _libc() -> Any:
    libc = ct.CDLL(None, use_errno=True)
    libc.syscall.restype = ct.c_long
    return libc


def abi_version() -> int:
    """The kernel's Landlock ABI version; 0 when Landlock is unavailable."""
    libc = _libc()
    v = libc.syscall(
        ct.c_long(SYS_CREATE_RULESET),
        None,
        ct.c_size_t(0),
        ct.c_uint32(CREATE_RULESET_VERSION),
    )
    return int(v) if v > 0 else 0


def load_policy(path: str) -> dict[str, Any]:
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise LsmtraceError(f"cannot read {path}: {e.strerror}") from e
    return ll.parse(text, path)


MAX_INTERPRETED = 4096  # executables whose interpreters are looked up


def interpreter(path: str) -> str | None:
    """The ELF PT_INTERP or "#!" interpreter of an executable, if any."""
    try:
        with open(path, "rb") as f:
            head = f.read(64)
            if head.startswith(b"#!"):
                f.seek(0)
                line = f.readline(256)[2:].strip().split()
                return os.fsdecode(line[0]) if line else None
            if not head.startswith(b"\x7fELF") or head[4] != 2:  # 64-bit only
                return None
            little = head[5] == 1
            fmt = "<" if little else ">"
            (phoff,) = struct.unpack_from(fmt + "Q", head, 0x20)
            phentsize, phnum = struct.unpack_from(fmt + "HH", head, 0x36)
            f.seek(phoff)
            table = f.read(phentsize * phnum)
            for i in range(phnum):
                (p_type,) = struct.unpack_from(fmt + "I", table, i * phentsize)
                if p_type == 3:  # PT_INTERP
                    (off,) = struct.unpack_from(fmt + "Q", table, i * phentsize + 8)
                    (size,) = struct.unpack_from(fmt + "Q", table, i * phentsize + 32)
                    f.seek(off)
                    return os.fsdecode(f.read(size).rstrip(b"\0"))
    except (OSError, struct.error, IndexError):
        return None
    return None


def plan(policy: dict[str, Any], abi: int | None = None) -> Plan:
    abi = abi_version() if abi is None else abi
    if abi <= 0:
        raise KernelFeatureError(
            "Landlock is not available on this kernel",
            hint="it needs CONFIG_SECURITY_LANDLOCK=y and 'landlock' in the lsm= "
            "boot parameter (see /sys/kernel/security/lsm)",
        )
    handled_fs = ll.rights_mask(policy.get("handled_access_fs", []), abi)
    handled_net = 0
    if abi >= ll.NET_ABI:
        for n in policy.get("handled_access_net", []):
            handled_net |= ll.NET_BIT[n]
    p = Plan(abi, handled_fs, handled_net)
    wanted: dict[str, int] = {}
    for r in policy.get("rules", []):
        path = str(r["path"])
        wanted[path] = wanted.get(path, 0) | ll.rights_mask(r.get("access", []), abi)
    if policy.get("exec_interpreters", True):
        # a script's interpreter has its own ELF interpreter (a venv's
        # console script: python, then ld-linux): follow the chain
        both = ll.FS_BIT["execute"] | ll.FS_BIT["read_file"]
        todo = [p for p, mask in wanted.items() if mask & ll.FS_BIT["execute"]]
        seen = set(todo)
        while todo:
            interp = interpreter(todo.pop())
            if interp:
                wanted[interp] = wanted.get(interp, 0) | both
                if interp not in seen and len(seen) < MAX_INTERPRETED:
                    seen.add(interp)
                    todo.append(interp)
    file_mask = ll.rights_mask(ll.FILE_RIGHTS, abi)
    pt = policy.get("private_tmp")
    if pt:
        mask = ll.rights_mask(pt.get("access", []), abi) & handled_fs
        if mask & ll.FS_BIT["read_file"]:
            mask |= ll.FS_BIT["read_dir"] & handled_fs
        p.private_tmp = (str(pt["under"]), mask)
    for path, mask in sorted(wanted.items()):
        try:
            st = os.stat(path)
        except OSError as e:
            p.skipped.append(f"{path}: {e.strerror}")
            continue
        if not stat.S_ISDIR(st.st_mode):
            mask &= file_mask
        elif mask & ll.FS_BIT["read_file"]:
            # open(dir, O_RDONLY) needs read_dir (the recording cannot tell a
            # directory from a file; the filesystem here can)
            mask |= ll.FS_BIT["read_dir"]
        mask &= handled_fs
        if mask:
            p.rules.append((path, mask))
    if handled_net:
        for r in policy.get("net_rules", []):
            mask = 0
            for n in r.get("access", []):
                mask |= ll.NET_BIT.get(n, 0)
            if mask & handled_net:
                p.ports.append((int(r["port"]), mask & handled_net))
    return p


def _names(mask: int, bits: dict[str, int]) -> str:
    return ",".join(n for n, b in bits.items() if mask & b) or "-"


def describe(p: Plan) -> str:
    lines = [
        f"Landlock ABI {p.abi}; handled fs: {_names(p.handled_fs, ll.FS_BIT)}",
        f"handled net: {_names(p.handled_net, ll.NET_BIT)}",
    ]
    from lsmtrace.output import escape

    lines += [f"allow {escape(path)}: {_names(m, ll.FS_BIT)}" for path, m in p.rules]
    lines += [f"allow tcp port {port}: {_names(m, ll.NET_BIT)}" for port, m in p.ports]
    if p.private_tmp:
        under, m = p.private_tmp
        lines.append(
            f"allow TMPDIR (a new directory under {escape(under)} for each "
            f"run): {_names(m, ll.FS_BIT)}"
        )
    lines += [f"skipped {escape(s)}" for s in p.skipped]
    return "\n".join(lines)


def restrict(p: Plan) -> None:
    """Create the ruleset, add the rules and restrict this process (irrevocable)."""
    libc = _libc()
    if p.abi >= 6:
        attr = struct.pack("<QQQ", p.handled_fs, p.handled_net, 0)
    elif p.abi >= ll.NET_ABI:
        attr = struct.pack("<QQ", p.handled_fs, p.handled_net)
    else:
        attr = struct.pack("<Q", p.handled_fs)
    buf = ct.create_string_buffer(attr, len(attr))
    fd = libc.syscall(
        ct.c_long(SYS_CREATE_RULESET), buf, ct.c_size_t(len(attr)), ct.c_uint32(0)
    )
    if fd < 0:
        e = ct.get_errno()
        raise SandboxError(f"landlock_create_ruleset failed: {os.strerror(e)}")
    try:
        for path, mask in p.rules:
            pfd = os.open(path, O_PATH | os.O_CLOEXEC)
            try:
                rule = ct.create_string_buffer(struct.pack("<Qi", mask, pfd), 12)
                if (
                    libc.syscall(
                        ct.c_long(SYS_ADD_RULE),
                        ct.c_int(fd),
                        ct.c_int(RULE_PATH_BENEATH),
                        rule,
                        ct.c_uint32(0),
                    )
                    != 0
                ):
                    e = ct.get_errno()
                    raise SandboxError(
                        f"landlock_add_rule({path!r}) failed: {os.strerror(e)}"
                    )
            finally:
                os.close(pfd)
        for port, mask in p.ports:
            rule = ct.create_string_buffer(struct.pack("<QQ", mask, port), 16)
            if (
                libc.syscall(
                    ct.c_long(SYS_ADD_RULE),
                    ct.c_int(fd),
                    ct.c_int(RULE_NET_PORT),
                    rule,
                    ct.c_uint32(0),
                )
                != 0
            ):
                e = ct.get_errno()
                raise SandboxError(
                    f"landlock_add_rule(port {port}) failed: {os.strerror(e)}"
                )
        libc.prctl.argtypes = [ct.c_int, ct.c_ulong, ct.c_ulong, ct.c_ulong, ct.c_ulong]
        if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            e = ct.get_errno()
            raise SandboxError(f"prctl(PR_SET_NO_NEW_PRIVS) failed: {os.strerror(e)}")
        flags = ct.c_uint32(restrict_flags(p.abi))
        if libc.syscall(ct.c_long(SYS_RESTRICT_SELF), ct.c_int(fd), flags) != 0:
            e = ct.get_errno()
            raise SandboxError(f"landlock_restrict_self failed: {os.strerror(e)}")
    finally:
        os.close(fd)


def restrict_flags(abi: int) -> int:
    """landlock_restrict_self() flags: from ABI 7 on, keep logging the denials
    of the command we exec (Landlock stops logging at execve by default), so
    that audit — and lsmtrace's audit join — sees them. The kernel's own
    sandboxer sample sets it for the same reason."""
    return RESTRICT_SELF_LOG_NEW_EXEC_ON if abi >= 7 else 0


def run(policy: dict[str, Any], cmd: list[str]) -> None:
    """Restrict this process, then exec `cmd` (returns only by raising)."""
    p = plan(policy)
    for s in p.skipped:
        log.warning("skipped rule %s", s)
    if p.private_tmp:
        import tempfile

        under, mask = p.private_tmp
        tmpdir = tempfile.mkdtemp(prefix="lsmtrace-sandbox-", dir=under)
        p.rules.append((tmpdir, mask))
        os.environ["TMPDIR"] = tmpdir
    restrict(p)
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execvp(cmd[0], cmd)
    except OSError as e:
        code = errno.errorcode.get(e.errno or 0, str(e.errno))
        raise SandboxError(
            f"cannot execute {cmd[0]!r} in the sandbox: {e.strerror} ({code})",
            hint="the policy must allow execute on the command itself "
            "(record it with `lsmtrace record -- COMMAND`)",
        ) from e
