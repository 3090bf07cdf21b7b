"""Recorded events -> access set: what each program really did. Pure, deterministic.

The model knows nothing of any policy language. It reads the JSON event dicts of
one or more recordings (docs/events.md), in kernel-time order, and collects per
program (the executable when an exec was seen, else `comm:<name>`):

  files     path -> accesses (read, write, append, create, truncate, exec,
            mmap_exec, readdir, unlink, rmdir, mkdir, rename_src, rename_dst,
            link, symlink, mknod, chmod, chown)
  caps      capability names used (allowed checks)
  network   (op, family, type, port)
  signals   (signal name, "self"|"other")
  ptrace    ("trace"|"read", "self"|"other")

Only decisions that were allowed count (the policy must grant what the workload
needed); `include_denied=True` also takes denials (complain-mode learning).
Failures that are not decisions (ENOENT...) never count.

Relative paths are resolved against the recording's `cwd` (header); paths that
cannot be resolved are listed in `unresolved`. Paths are normalised lexically
(`os.path.normpath`): symlinks are not resolved (that would depend on the host
reading the recording).
"""

from __future__ import annotations

import json
import os
import posixpath
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

# open(2) flags (asm-generic, x86_64 and aarch64 agree on these)
O_ACCMODE, O_WRONLY, O_RDWR = 3, 1, 2
O_CREAT, O_TRUNC, O_APPEND = 0o100, 0o1000, 0o2000
O_DIRECTORY_X86, O_DIRECTORY_ARM = 0o200000, 0o40000
O_PATH = 0o10000000
AT_REMOVEDIR = 0x200
PROT_EXEC = 4
S_IFMT, S_IFDIR = 0o170000, 0o040000

FILE_ACCESSES = ("read", "write", "append", "create", "truncate", "exec", "mmap_exec",
                 "readdir", "unlink", "rmdir", "mkdir", "rename_src", "rename_dst",
                 "link", "symlink", "mknod", "chmod", "chown")  # fmt: skip

# A CAP_SYS_ADMIN check inside these syscalls is the kernel's memory accounting
# (cap_vm_enough_memory, CAP_OPT_NOAUDIT), not a use of the capability.
ACCOUNTING_SYSCALLS = frozenset(
    {"mmap", "mprotect", "brk", "execve", "execveat", "mremap"}
)

OPEN_SYSCALLS = frozenset(
    {"sys_open", "sys_openat", "sys_openat2", "sys_creat", "file_open"}
)


@dataclass(frozen=True, order=True)
class NetAccess:
    op: str  # socket | connect | bind | listen | accept | send
    family: str
    type: str
    port: int | None


@dataclass
class Program:
    name: str  # exe path, or "comm:<comm>" when no exec was seen
    exe: str | None
    comms: set[str] = field(default_factory=set)
    files: dict[str, set[str]] = field(default_factory=dict)
    caps: set[str] = field(default_factory=set)
    network: set[NetAccess] = field(default_factory=set)
    signals: set[tuple[str, str]] = field(default_factory=set)
    ptrace: set[tuple[str, str]] = field(default_factory=set)
    # paths whose /proc/<pid> component was the process's own pid: the
    # renderers turn these into @{pid} / self
    own_proc: set[str] = field(default_factory=set)
    inferred: set[str] = field(default_factory=set)  # "path access" guessed (mmap fd)

    def add_file(self, path: str, access: str) -> None:
        self.files.setdefault(path, set()).add(access)


@dataclass(frozen=True)
class Access:
    """One (program, what) pair of the flat view used by check and diff."""

    program: str
    kind: str  # file | cap | net | signal | ptrace
    what: str  # path, capability, "connect AF_INET SOCK_STREAM 80"...
    access: str  # read, use, ...

    def __str__(self) -> str:
        return f"{self.program}: {self.kind} {self.what} {self.access}".rstrip()


@dataclass
class AccessSet:
    programs: dict[str, Program] = field(default_factory=dict)
    unresolved: set[str] = field(default_factory=set)
    sources: list[str] = field(default_factory=list)
    events: int = 0
    used: int = 0
    # path -> SELinux type, from the AVC the kernel audited for that access
    # (only where SELinux is active, and only audited decisions: denials, or
    # auditallow rules); the SELinux renderer prefers it to its path table
    labels: dict[str, str] = field(default_factory=dict)
    # what is wrong with the evidence (lost events, a cut recording), when the
    # user accepted it (--accept-lossy); stamped into the generated policy
    warnings: list[str] = field(default_factory=list)

    def program(self, name: str, exe: str | None) -> Program:
        p = self.programs.get(name)
        if p is None:
            p = self.programs[name] = Program(name, exe)
        return p

    def directories(self) -> set[str]:
        """Recorded paths that are directories of other recorded paths."""
        paths = {p for prog in self.programs.values() for p in prog.files}
        dirs = set()
        for p in paths:
            d = posixpath.dirname(p)
            while d not in dirs and d != "/":
                dirs.add(d)
                d = posixpath.dirname(d)
        return dirs & paths

    def flat(self) -> list[Access]:
        out: list[Access] = []
        for name in sorted(self.programs):
            p = self.programs[name]
            for path in sorted(p.files):
                out += [Access(name, "file", path, a) for a in sorted(p.files[path])]
            out += [Access(name, "cap", c, "use") for c in sorted(p.caps)]
            for n in sorted(p.network, key=_net_key):
                out.append(Access(name, "net", net_text(n), n.op))
            out += [
                Access(name, "signal", f"{s} {t}", "send") for s, t in sorted(p.signals)
            ]
            out += [Access(name, "ptrace", t, m) for m, t in sorted(p.ptrace)]
        return out

    def to_json(self) -> str:
        progs = []
        for name in sorted(self.programs):
            p = self.programs[name]
            progs.append({
                "name": name, "exe": p.exe, "comms": sorted(p.comms),
                "files": {k: sorted(v) for k, v in sorted(p.files.items())},
                "caps": sorted(p.caps),
                "network": [net_text(n) for n in sorted(p.network, key=_net_key)],
                "signals": [list(s) for s in sorted(p.signals)],
                "ptrace": [list(t) for t in sorted(p.ptrace)],
            })  # fmt: skip
        return json.dumps({"programs": progs, "unresolved": sorted(self.unresolved)},
                          indent=1, ensure_ascii=True)  # fmt: skip


def _net_key(n: NetAccess) -> tuple[str, str, str, int]:
    return (n.op, n.family, n.type, -1 if n.port is None else n.port)


def byte_str(s: str) -> str:
    """The path's bytes as a str of code points 0-255 (what the policy escapes
    name: one octal escape per byte), for matching patterns byte by byte."""
    return s.encode("utf-8", "surrogateescape").decode("latin-1")


def net_text(n: NetAccess) -> str:
    port = "" if n.port is None else f" port {n.port}"
    return f"{n.op} {n.family} {n.type}{port}".replace("  ", " ")


def _int(v: Any, default: int = 0) -> int:
    if isinstance(v, bool):
        return default
    if isinstance(v, int):
        return v
    if isinstance(v, str):
        try:
            return int(v, 0)
        except ValueError:
            return default
    return default


def resolve(path: str, cwd: str | None) -> str | None:
    """Absolute, lexically normalised path; None when relative and no cwd."""
    if not path:
        return None
    if not path.startswith("/"):
        if not cwd or not cwd.startswith("/"):
            return None
        path = posixpath.join(cwd, path)
    norm = posixpath.normpath(path)
    if norm.startswith("//"):
        norm = "/" + norm.lstrip("/")
    return norm


FILE_CLASSES = frozenset({"file", "dir", "lnk_file", "chr_file", "blk_file", "sock_file",
                          "fifo_file"})  # fmt: skip


class _Proc:
    __slots__ = ("exe", "last_open")

    def __init__(self, exe: str | None) -> None:
        self.exe = exe
        self.last_open: str | None = None


class Builder:
    """Feed events (dicts) in order; read `.access_set`."""

    def __init__(self, include_denied: bool = False) -> None:
        self.include_denied = include_denied
        self.access_set = AccessSet()
        self.procs: dict[int, _Proc] = {}
        self.cwd: str | None = None
        # thread -> (tclass, target type) of the AVCs audited since its last
        # decision: the AVC is emitted inside the hook, before the decision's event
        self.avcs: dict[int, list[tuple[str, str]]] = {}
        self._avcs: list[tuple[str, str]] = []  # those of the decision being added

    def add_recording(self, header: Mapping[str, Any], events: Iterable[Mapping[str, Any]],
                      source: str = "") -> None:  # fmt: skip
        self.cwd = header.get("cwd") if isinstance(header.get("cwd"), str) else None
        self.procs = {}
        self.avcs = {}
        if source:
            self.access_set.sources.append(source)
        ordered = sorted(events, key=lambda e: _int(e.get("ts_ns")))
        for ev in ordered:
            self.add(ev)

    def _proc(self, ev: Mapping[str, Any]) -> _Proc:
        tgid = _int(ev.get("tgid"))
        p = self.procs.get(tgid)
        if p is None:
            parent = self.procs.get(_int(ev.get("ppid")))
            p = self.procs[tgid] = _Proc(parent.exe if parent else None)
        return p

    def add(self, ev: Mapping[str, Any]) -> None:
        s = self.access_set
        s.events += 1
        kind, hook = str(ev.get("kind", "")), str(ev.get("hook", ""))
        obj = ev.get("object") or {}
        if not isinstance(obj, Mapping):
            return
        proc = self._proc(ev)
        if kind == "fork":
            child = _int(obj.get("child_pid"))
            if child:
                self.procs[child] = _Proc(proc.exe)
            return
        if kind == "exit":
            return
        if kind == "avc":
            tcontext = str(obj.get("tcontext") or "").split(":")
            if len(tcontext) >= 3 and re.fullmatch(r"[A-Za-z0-9_]+", tcontext[2]) and obj.get("tclass"):
                self.avcs.setdefault(_int(ev.get("pid")), []).append(
                    (str(obj["tclass"]), tcontext[2]))
            return
        if kind == "exec":
            exe = resolve(str(obj.get("filename", "")), self.cwd)
            if exe:
                # the exec right belongs to the program that called execve; the
                # recorded command's own first exec (by lsmtrace's child) to itself
                if proc.exe is None:
                    proc.exe = exe
                self._prog(ev, proc).add_file(exe, "exec")
                proc.exe = exe
                proc.last_open = None
                s.used += 1
            return
        # this decision's AVCs, consumed even when the decision is not used
        self._avcs = self.avcs.pop(_int(ev.get("pid")), [])
        verdict = ev.get("verdict")
        if verdict == "error" or (verdict == "deny" and not self.include_denied):
            return
        if verdict not in ("allow", "deny"):
            return
        if self._decision(ev, kind, hook, obj, proc):
            s.used += 1

    def _prog(self, ev: Mapping[str, Any], proc: _Proc) -> Program:
        comm = str(ev.get("comm", ""))
        name = proc.exe or f"comm:{comm}"
        p = self.access_set.program(name, proc.exe)
        if comm:
            p.comms.add(comm)
        return p

    def _path(self, ev: Mapping[str, Any], raw: Any) -> str | None:
        if not isinstance(raw, str) or not raw:
            return None
        if (
            raw.startswith("@")
            or raw.startswith("anon_inode:")
            or raw.startswith("pipe:")
        ):
            return None
        p = resolve(raw, self.cwd)
        if p is None:
            self.access_set.unresolved.add(raw)
        return p

    def _file(self, ev: Mapping[str, Any], proc: _Proc, raw: Any, *acc: str) -> bool:
        path = self._path(ev, raw)
        if path is None:
            return False
        prog = self._prog(ev, proc)
        for a in acc:
            prog.add_file(path, a)
        # the last audited AVC on an object of the access's class labels the path
        want_dir = bool(set(acc) & {"readdir", "mkdir", "rmdir"})
        for tclass, typ in reversed(self._avcs):
            if (tclass == "dir") == want_dir and tclass in FILE_CLASSES:
                self.access_set.labels[path] = typ
                break
        tgid, pid = _int(ev.get("tgid")), _int(ev.get("pid"))
        parts = path.split("/")
        if len(parts) > 2 and parts[1] == "proc" and parts[2] in (str(tgid), str(pid)):
            prog.own_proc.add(path)
        return True

    def _decision(self, ev: Mapping[str, Any], kind: str, hook: str,
                  obj: Mapping[str, Any], proc: _Proc) -> bool:  # fmt: skip
        name = hook[4:] if hook.startswith("sys_") else hook
        syscall = ev.get("syscall")
        if kind == "capable" or hook == "capable":
            cap = obj.get("cap_name")
            if not isinstance(cap, str):
                return False
            if cap == "CAP_SYS_ADMIN" and syscall in ACCOUNTING_SYSCALLS:
                return False
            self._prog(ev, proc).caps.add(cap)
            return True
        if hook in OPEN_SYSCALLS:
            flags = _int(obj.get("flags"))
            if flags & O_PATH:
                return False
            acc: list[str] = []
            mode = flags & O_ACCMODE
            if name == "creat":
                acc += ["write", "create", "truncate"]
            else:
                if mode in (0, O_RDWR):
                    directory = (
                        flags & (O_DIRECTORY_X86 | O_DIRECTORY_ARM) and mode == 0
                    )
                    acc.append("readdir" if directory else "read")
                if mode in (O_WRONLY, O_RDWR):
                    acc.append("append" if flags & O_APPEND else "write")
                    if flags & O_TRUNC:
                        acc.append("truncate")
                if flags & O_CREAT:
                    acc.append("create")
            ok = self._file(ev, proc, obj.get("path"), *acc)
            if ok:
                proc.last_open = self._path(ev, obj.get("path"))
            return ok
        if name in ("execve", "execveat", "bprm_check_security", "bprm_creds_for_exec"):
            return self._file(ev, proc, obj.get("path") or obj.get("filename"), "exec")
        if name in ("mmap", "mprotect", "mmap_file", "file_mprotect"):
            if not _int(obj.get("prot_raw")) & PROT_EXEC:
                return False
            if obj.get("path"):
                return self._file(ev, proc, obj.get("path"), "mmap_exec")
            if _int(obj.get("fd"), -1) >= 0 and proc.last_open:
                # tracepoint rung: the fd's path is not in the event; the file
                # the loader mapped is the one it opened last (ld.so pattern)
                prog = self._prog(ev, proc)
                prog.add_file(proc.last_open, "mmap_exec")
                prog.inferred.add(f"{proc.last_open} mmap_exec")
                return True
            return False
        if name in ("unlink", "unlinkat", "rmdir", "path_unlink", "inode_unlink",
                    "path_rmdir", "inode_rmdir"):  # fmt: skip
            rmdir = name in ("rmdir", "path_rmdir", "inode_rmdir") or bool(
                _int(obj.get("flags")) & AT_REMOVEDIR
            )
            return self._file(ev, proc, obj.get("path"), "rmdir" if rmdir else "unlink")
        if name in ("rename", "renameat", "renameat2", "path_rename", "inode_rename"):
            a = self._file(ev, proc, obj.get("path"), "rename_src")
            b = self._file(ev, proc, obj.get("path2"), "rename_dst")
            return a or b
        if name in ("link", "linkat", "path_link", "inode_link"):
            return self._file(ev, proc, obj.get("path2"), "link")
        if name in ("symlink", "symlinkat", "path_symlink", "inode_symlink"):
            return self._file(ev, proc, obj.get("path"), "symlink")
        if name in ("mkdir", "mkdirat", "path_mkdir", "inode_mkdir"):
            return self._file(ev, proc, obj.get("path"), "mkdir")
        if name in ("mknod", "mknodat", "path_mknod", "inode_mknod"):
            return self._file(ev, proc, obj.get("path"), "mknod")
        if name in ("chmod", "fchmodat", "fchmodat2", "path_chmod"):
            return self._file(ev, proc, obj.get("path"), "chmod")
        if name in ("chown", "lchown", "fchownat", "path_chown"):
            return self._file(ev, proc, obj.get("path"), "chown")
        if name in ("truncate", "path_truncate"):
            return self._file(ev, proc, obj.get("path"), "truncate", "write")
        if ev.get("family") == "network" or name.startswith("socket_") or name in (
                "socket", "connect", "bind", "listen", "accept", "accept4",
                "sendto", "sendmsg"):  # fmt: skip
            return self._net(ev, name, obj, proc)
        if name in ("kill", "tkill", "tgkill", "task_kill"):
            sig = obj.get("sig_name") or f"SIG{_int(obj.get('sig'))}"
            if sig == "SIG0":
                sig = "EXISTS"  # kill(pid, 0): probing, AppArmor still mediates
            target = _int(obj.get("target_pid"))
            who = (
                "self"
                if target in (_int(ev.get("tgid")), _int(ev.get("pid")))
                else "other"
            )
            self._prog(ev, proc).signals.add((str(sig), who))
            return True
        if name in ("ptrace", "ptrace_access_check", "process_vm_readv",
                    "process_vm_writev", "ptrace_traceme"):  # fmt: skip
            how = "read" if name == "process_vm_readv" else "trace"
            target = _int(obj.get("target_pid"))
            who = "self" if target in (_int(ev.get("tgid")), 0) else "other"
            self._prog(ev, proc).ptrace.add((how, who))
            return True
        return False

    def _net(self, ev: Mapping[str, Any], name: str, obj: Mapping[str, Any],
             proc: _Proc) -> bool:  # fmt: skip
        op = {"socket_create": "socket", "socket_connect": "connect",
              "socket_bind": "bind", "socket_listen": "listen", "socket_accept": "accept",
              "accept4": "accept", "socket_sendmsg": "send", "sendto": "send",
              "sendmsg": "send"}.get(name, name)  # fmt: skip
        if op not in ("socket", "connect", "bind", "listen", "accept", "send"):
            return False
        family = str(obj.get("family", "")) if "family" in obj else ""
        if not family:
            return False  # listen/accept without an object: covered by socket()
        stype = obj.get("type")
        port = obj.get("port") if op in ("connect", "bind") else None
        self._prog(ev, proc).network.add(
            NetAccess(
                op,
                family,
                str(stype) if stype else "",
                port if isinstance(port, int) else None,
            )
        )
        return True


def build(recordings: Iterable[tuple[Mapping[str, Any], Iterable[Mapping[str, Any]], str]],
          include_denied: bool = False) -> AccessSet:  # fmt: skip
    """Merge (header, events, source name) recordings into one access set."""
    b = Builder(include_denied)
    for header, events, source in recordings:
        b.add_recording(header, events, source)
    return b.access_set


def from_files(paths: Iterable[str], include_denied: bool = False) -> AccessSet:
    from lsmtrace.record import read_recording

    recs = []
    for p in paths:
        r = read_recording(p)
        if r.error is not None:
            import logging

            logging.getLogger(__name__).warning("%s (using the %d events before it)",
                                                r.error.message, len(r.events))  # fmt: skip
        recs.append((r.header, r.events, os.path.basename(p)))
    return build(recs, include_denied)


# -- generalisation helpers shared by the renderers ------------------------------

TEMP_DIRS = ("/tmp/", "/var/tmp/", "/dev/shm/", "/run/user/")


def temp_glob(path: str) -> tuple[str, str] | None:
    """(literal prefix, literal suffix) around a random component of a temp file.

    The first component below a temp directory is random when its tail after
    the last '-', '.' or '_' (or after a leading 'tmp') is 6+ letters/digits
    holding a digit or both cases (mkstemp XXXXXX, Python's tmpXXXXXXXX):
    /tmp/lsmtrace-test-k2j3ab9x/out -> ("/tmp/lsmtrace-test-", "/out").
    """
    for d in TEMP_DIRS:
        if path.startswith(d):
            rest = path[len(d) :]
            comp, sep, tail = rest.partition("/")
            cut = max(comp.rfind("-"), comp.rfind("."), comp.rfind("_")) + 1
            if cut == 0 and comp.startswith("tmp"):
                cut = 3
            rnd = comp[cut:]
            if len(rnd) < 6 or not rnd.isascii() or not rnd.isalnum():
                return None
            has_digit = any(c.isdigit() for c in rnd)
            mixed = any(c.islower() for c in rnd) and any(c.isupper() for c in rnd)
            if not (has_digit or mixed):
                return None
            return d + comp[:cut], sep + tail
    return None


def is_shared_lib(path: str) -> bool:
    base = posixpath.basename(path)
    in_lib = any(path.startswith(p) for p in ("/lib/", "/lib64/", "/lib32/", "/usr/lib/",
                                              "/usr/lib64/", "/usr/lib32/"))  # fmt: skip
    return in_lib and (".so." in base or base.endswith(".so"))


def proc_pid_rest(path: str) -> tuple[str, str] | None:
    """('<pid>', rest) for /proc/<pid>/rest and /proc/self/rest."""
    parts = path.split("/", 3)
    if len(parts) >= 3 and parts[1] == "proc" and (parts[2].isdigit() or parts[2] in (
            "self", "thread-self")):  # fmt: skip
        return parts[2], ("/" + parts[3]) if len(parts) > 3 else ""
    return None
