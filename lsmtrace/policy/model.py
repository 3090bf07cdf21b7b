"""Recorded events -> access set: what each program really did. Pure, deterministic.

The model knows nothing of any policy language. It reads the JSON event dicts of
one or more recordings (docs/events.md), in kernel-time order, and collects per
program (the executable when an exec was seen, else `comm:<name>`):

  files     path -> accesses (read, write, append, create, truncate, exec,
            mmap_exec, readdir, unlink, rmdir, mkdir, rename_src, rename_dst,
            link, symlink, mknod, chmod, chown)
  caps      capability names used (allowed checks the kernel enforced)
  network   (op, family, type, port)
  signals   (signal name, "self"|"other")
  ptrace    ("trace"|"read", "self"|"other")
  execs     program -> how it was started from this one: "child" (a forked
            child exec'd it) or "replace" (this process exec'd it without
            forking: a wrapper, shim or script handing over)

and for the whole set: the roots (programs started from outside the
recording: the recorded command), the exec chains from a root (TOMOYO names a
domain by its chain), and the names it could not place.

Only decisions that were allowed count (the policy must grant what the workload
needed); `include_denied=True` also takes denials (complain-mode learning).
Failures that are not decisions (ENOENT...) never count.

A path is never invented: `exact` and `joined` paths (the event's `path_kind`)
are used as they are; a name as the program gave it is used only when it is
absolute; a relative one (its directory is not in the event) or one with `..`
(a symlink would make a lexical guess wrong) becomes an `unplaced` entry, which
the renderers report as a comment and the command as a warning — never a rule.
Recordings made before `path_kind` existed are read the same way (absolute
names only). Symlinks are not resolved: that would depend on the host reading
the recording.

Capabilities count only on evidence of a check the kernel enforced
(`cap_use()`): never a quiet probe (`noaudit`, or CAP_OPT_NOAUDIT in the hook's
`opts` on the fexit/kprobe rungs); on the tracepoint rung, never CAP_SYS_ADMIN
inside the syscalls where the kernel's memory accounting asks for it without
enforcing (and, in recordings older than the `noaudit` field, not inside
fork/clone either, where that probe and a real namespace check look alike).
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

FILE_ACCESSES = (
    "read",
    "write",
    "append",
    "create",
    "truncate",
    "exec",
    "mmap_exec",
    "readdir",
    "unlink",
    "rmdir",
    "mkdir",
    "rename_src",
    "rename_dst",
    "link",
    "symlink",
    "mknod",
    "chmod",
    "chown",
)

# include/linux/security.h: the capability hook's opts bit for a check that is
# not to be audited (a probe: nothing is refused when it fails)
CAP_OPT_NOAUDIT = 2
# rungs whose capable events carry the hook's real opts (the tracepoint's
# cap_capable has none: its opts field is always 0)
OPTS_RUNGS = frozenset({"fexit", "kprobe"})
# A CAP_SYS_ADMIN check inside these syscalls is the kernel's memory accounting
# (__vm_enough_memory -> cap_vm_enough_memory, CAP_OPT_NOAUDIT: may the task dip
# into the admin reserve?), never an enforced check.
ACCOUNTING_SYSCALLS = frozenset(
    {
        "mmap",
        "mmap2",
        "mprotect",
        "brk",
        "mremap",
        "execve",
        "execveat",
        "shmget",
        "shmat",
    }
)
# ... and inside these (dup_mmap accounts the child's memory the same way), but
# a namespace flag of clone also checks CAP_SYS_ADMIN, for real: only a
# recording that classifies probes (`noaudit`) tells the two apart.
FORK_SYSCALLS = frozenset({"clone", "clone3", "fork", "vfork"})

OPEN_SYSCALLS = frozenset(
    {"sys_open", "sys_openat", "sys_openat2", "sys_creat", "file_open"}
)
OPEN_NAMES = frozenset({"open", "openat", "openat2", "creat"})
# hooks that name the file being executed (the exact path on the hook rungs):
# the first of an execve is the program, the later ones its #! interpreters
BPRM_HOOKS = frozenset({"bprm_check_security", "bprm_creds_for_exec"})
EXEC_SYSCALLS = frozenset({"execve", "execveat"})
# Hooks that run inside an execve for the kernel's own work on the new program
# (hook rungs): it opens the program, each #! interpreter and the ELF
# interpreter (ld.so) to execute them (open_exec: __FMODE_EXEC in f_flags),
# then the ELF loader maps them for the program it is starting. They are the
# new program's accesses: AppArmor checks the mappings in the new profile
# (a child profile needs `r` on its own binary), TOMOYO the read of a #!
# interpreter in the new domain; the caller only needs the exec.
EXEC_TIME_HOOKS = frozenset({"file_open", "mmap_file", "file_permission"})
# file_permission's mask (MAY_*): a read or write on an open file
MAY_WRITE, MAY_READ = 2, 4
S_IFREG = 0o100000
# an exec chain longer than this is cut (TOMOYO domain names grow with it)
CHAIN_MAX = 16


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
    # programs this one exec'd -> {"child", "replace"}
    execs: dict[str, set[str]] = field(default_factory=dict)
    # the #! interpreters the kernel ran for it (argv, or the bprm hooks)
    interpreters: set[str] = field(default_factory=set)
    # it read its own file after the exec: an interpreted script
    reads_self: bool = False
    # the executable's exact path (a bprm hook's dentry), when the recording
    # has it and it differs from the exec'd name (a symlink, merged /usr)
    exact_exe: str | None = None

    def add_file(self, path: str, access: str) -> None:
        self.files.setdefault(path, set()).add(access)

    def accesses(self) -> list[Access]:
        """What it did, one Access each (the flat view), in a stable order."""
        name = self.name
        out: list[Access] = []
        for path in sorted(self.files):
            out += [Access(name, "file", path, a) for a in sorted(self.files[path])]
        out += [Access(name, "cap", c, "use") for c in sorted(self.caps)]
        for n in sorted(self.network, key=_net_key):
            out.append(Access(name, "net", net_text(n), n.op))
        out += [
            Access(name, "signal", f"{s} {t}", "send") for s, t in sorted(self.signals)
        ]
        out += [Access(name, "ptrace", t, m) for m, t in sorted(self.ptrace)]
        return out

    def only(self, a: Access) -> Program:
        """The same program with only the access `a` (one of accesses()),
        what a renderer needs to write the rule for that access alone."""
        p = Program(self.name, self.exe, set(self.comms), exact_exe=self.exact_exe)
        if a.kind == "file":
            p.files[a.what] = {a.access}
            p.own_proc = {a.what} & self.own_proc
        elif a.kind == "cap":
            p.caps = {a.what}
        elif a.kind == "net":
            p.network = {
                n for n in self.network if n.op == a.access and net_text(n) == a.what
            }
        elif a.kind == "signal":
            sig, _, who = a.what.partition(" ")
            p.signals = {(sig, who)}
        elif a.kind == "ptrace":
            p.ptrace = {(a.access, a.what)}
        return p


@dataclass(frozen=True)
class Access:
    """One (program, what) pair of the flat view used by check and diff."""

    program: str
    kind: str  # file | cap | net | signal | ptrace
    what: str  # path, capability, "connect AF_INET SOCK_STREAM 80"...
    access: str  # read, use, ...

    def __str__(self) -> str:
        return f"{self.program}: {self.kind} {self.what} {self.access}".rstrip()


@dataclass(frozen=True, order=True)
class Unplaced:
    """A name the model could not turn into a path (no rule is made for it)."""

    program: str
    name: str
    why: str


@dataclass
class AccessSet:
    programs: dict[str, Program] = field(default_factory=dict)
    # names that could not be placed -> the accesses they were for
    unplaced: dict[Unplaced, set[str]] = field(default_factory=dict)
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
    # programs started from outside the recording (the recorded command)
    roots: set[str] = field(default_factory=set)
    # exec chains from a root: (root, program it ran, ...)
    chains: set[tuple[str, ...]] = field(default_factory=set)
    # capabilities seen but not granted: (program, capability) -> why
    quiet_caps: dict[tuple[str, str], set[str]] = field(default_factory=dict)
    # the recorded commands (headers' argv), for the run instructions
    commands: list[list[str]] = field(default_factory=list)
    # the SELinux contexts the recordings were made in (headers'
    # selinux_context): where the recorded commands were started from
    selinux_callers: list[str] = field(default_factory=list)

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
            out += self.programs[name].accesses()
        return out

    def unplaced_lines(self) -> list[str]:
        """One line per name that got no rule, for comments and warnings."""
        return [
            f"{u.name} ({', '.join(sorted(acc))}) by {u.program}: {u.why}"
            for u, acc in sorted(self.unplaced.items())
        ]

    def inferred_lines(self) -> list[str]:
        """What the policy grants that was deduced, not seen (one line per
        program and deduction): an mmap of an fd on the tracepoint rung, a
        socket's type, a rename target and the read back of an atomic write."""
        out = []
        for name in sorted(self.programs):
            inferred = sorted(self.programs[name].inferred)
            maps = [w for w in inferred if w.endswith(" mmap_exec")]
            if maps:
                out.append(
                    f"{name}: mmap_exec of {len(maps)} file(s) mapped by fd, "
                    "taken as the file it opened last (the ld.so pattern)"
                )
            out += [f"{name}: {w}" for w in inferred if not w.endswith(" mmap_exec")]
        return out

    def quiet_cap_lines(self) -> list[str]:
        """The capabilities of the set's programs that were seen and not
        granted, and why: one line per program and capability for what was
        decided by the syscall it came in (a heuristic, so it is shown); one
        line in all for the probes the kernel marked quiet itself."""
        out = []
        marked: dict[str, int] = {}
        for (prog, cap), whys in sorted(self.quiet_caps.items()):
            if prog not in self.programs or cap in self.programs[prog].caps:
                continue
            by_reason: dict[str, list[str]] = {}
            for why in sorted(whys):
                reason, _, syscall = why.partition(":")
                by_reason.setdefault(reason, []).append(syscall)
            for reason, calls in sorted(by_reason.items()):
                if reason == MARKED:
                    marked[cap] = marked.get(cap, 0) + 1
                else:
                    text = QUIET_REASONS[reason].format(
                        ", ".join(c for c in calls if c)
                    )
                    out.append(f"{cap} by {prog}: {text}")
        out += [
            f"{cap}: the kernel marked its checks quiet probes (noaudit) in {n} "
            "program(s); never a use"
            for cap, n in sorted(marked.items())
        ]
        return out

    def to_json(self) -> str:
        progs = []
        for name in sorted(self.programs):
            p = self.programs[name]
            progs.append(
                {
                    "name": name,
                    "exe": p.exe,
                    "comms": sorted(p.comms),
                    "files": {k: sorted(v) for k, v in sorted(p.files.items())},
                    "caps": sorted(p.caps),
                    "network": [net_text(n) for n in sorted(p.network, key=_net_key)],
                    "signals": [list(s) for s in sorted(p.signals)],
                    "ptrace": [list(t) for t in sorted(p.ptrace)],
                    "execs": {k: sorted(v) for k, v in sorted(p.execs.items())},
                    "interpreters": sorted(p.interpreters),
                }
            )
        return json.dumps(
            {
                "programs": progs,
                "roots": sorted(self.roots),
                "chains": sorted(self.chains),
                "unplaced": self.unplaced_lines(),
            },
            indent=1,
            ensure_ascii=True,
        )


def comment_safe(s: str) -> str:
    """Text for a one-line `#` comment: `\\`, control characters and non-ASCII
    bytes as octal `\\NNN` (a newline cannot end the comment); the rest as is."""
    out = []
    for b in s.encode("utf-8", "surrogateescape"):
        if b == 0x5C:
            out.append("\\\\")
        elif 0x20 <= b < 0x7F:
            out.append(chr(b))
        else:
            out.append(f"\\{b:03o}")
    return "".join(out)


def comment_block(
    title: str, lines: list[str], indent: str = "   ", limit: int = 20
) -> list[str]:
    """`# title:` and the lines under it, comment-safe, at most `limit`."""
    if not lines:
        return []
    out = [f"# {title}:"]
    out += [f"#{indent}{comment_safe(ln)}" for ln in lines[:limit]]
    if len(lines) > limit:
        out.append(f"#{indent}... {len(lines) - limit} more")
    return out


def shell_word(filename: str | None) -> str:
    """The policy file's name for the instructions written into it: quoted
    for the shell, or THIS_FILE when there is none or it is not printable
    ASCII (a comment must stay one line)."""
    import shlex

    if not filename:
        return "THIS_FILE"
    q = shlex.quote(filename)
    return q if all(0x20 <= ord(c) < 0x7F for c in q) else "THIS_FILE"


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


_WORD_NUMBER = re.compile(r"[A-Za-z]+[_-]?\d{1,4}|\d{1,4}[_-]?[A-Za-z]+")


def random_run(s: str) -> bool:
    """6+ of [A-Za-z0-9_] that look generated: a digit and a letter, or both
    cases; not a word and a short number (`report_2024`, `python311`,
    `Report7`). A word is lower case, upper case or Capitalised: mktemp's
    `pfYhxmTMF2` (one of its names in 12) is not a word and a number."""
    if len(s) < 6 or not s.isascii() or not s.replace("_", "").isalnum():
        return False
    letters = "".join(c for c in s if c.isalpha())
    digit = any(c.isdigit() for c in s)
    mixed = not (letters.islower() or letters.isupper())
    word = letters.islower() or letters.isupper() or letters[1:].islower()
    if word and _WORD_NUMBER.fullmatch(s):
        return False
    return bool(letters) and (digit or mixed)


def atomic_tail(src: str, dst: str) -> bool:
    """Whether `src` is `dst` with a random or numeric tail (`f.XXXX` for
    `f`, after one of `.-_~`): an atomic write's temporary (policy/generalise.py
    generalises the tail). Paths or names."""
    if not (
        src.startswith(dst) and len(src) > len(dst) + 1 and src[len(dst)] in ".-_~"
    ):
        return False
    tail = src[len(dst) + 1 :]
    return "/" not in tail and ((tail.isdigit() and len(tail) >= 6) or random_run(tail))


RELATIVE = "a relative name; the directory it is relative to is not in the recording"
DOTDOT = "contains '..' (resolving it lexically could name another file)"


def place(path: str, kind: str | None = None) -> tuple[str | None, str | None]:
    """(absolute path, None), or (None, why) for a name that cannot be placed.

    `kind` is the event's `path_kind`: `exact` and `joined` paths are used as
    they are (only `//` and `/./` collapsed); `as_given` and recordings
    without the field: absolute names only. Never joins a relative name with
    any directory."""
    if not path:
        return None, None
    if not path.startswith("/"):
        return None, RELATIVE
    parts = [c for c in path.split("/") if c not in ("", ".")]
    if ".." in parts and kind != "exact":
        return None, DOTDOT
    return "/" + "/".join(parts), None


FILE_CLASSES = frozenset(
    {"file", "dir", "lnk_file", "chr_file", "blk_file", "sock_file", "fifo_file"}
)


class _Proc:
    __slots__ = (
        "bprm",
        "chain",
        "checks",
        "exe",
        "exec_maps",
        "exec_opens",
        "last_open",
        "via",
    )

    def __init__(
        self, exe: str | None, chain: tuple[str, ...] = (), via: str | None = None
    ) -> None:
        self.exe = exe
        self.last_open: str | None = None
        # how it got its program: "exec" (it exec'd it), "fork" (inherited)
        self.via = via
        self.chain = chain
        self.bprm: list[str] = []  # exact paths of the exec in progress
        # the exec in progress (hook rungs): the files the kernel opened to
        # execute, each with the number of bprm_check_security calls before
        # it, those checks, and the files the ELF loader mapped executable
        self.exec_opens: list[tuple[str, int]] = []
        self.checks = 0
        self.exec_maps: list[str] = []


def classifies_probes(events: Iterable[Mapping[str, Any]]) -> bool:
    """True when the recording comes from a tracer that marks quiet probes
    (`noaudit`) and path kinds: then a capable event without `noaudit` is an
    enforced check."""
    for ev in events:
        if "noaudit" in ev:
            return True
        obj = ev.get("object")
        if isinstance(obj, Mapping) and "path_kind" in obj:
            return True
    return False


MARKED = "marked"
QUIET_REASONS = {
    "accounting": "the kernel's memory-accounting probe, never enforced (in {})",
    "fork": "in {}: the kernel's memory-accounting probe or a namespace check, "
    "which a recording without the noaudit field cannot tell apart; not "
    "granted (record again with a current lsmtrace, or grant it by hand)",
}


def cap_use(
    ev: Mapping[str, Any], obj: Mapping[str, Any], classified: bool
) -> str | None:
    """None when a capable event is evidence of an enforced check (a use of
    the capability); else why it is not, as `reason:syscall` (QUIET_REASONS;
    `marked`: the kernel said so, `noaudit` or the hook's CAP_OPT_NOAUDIT)."""
    cap = obj.get("cap_name")
    if ev.get("noaudit") is True:
        return MARKED + ":"
    opts = obj.get("opts")
    if ev.get("rung") in OPTS_RUNGS and isinstance(opts, int):
        return MARKED + ":" if opts & CAP_OPT_NOAUDIT else None
    syscall = ev.get("syscall")
    if cap == "CAP_SYS_ADMIN" and syscall in ACCOUNTING_SYSCALLS:
        return f"accounting:{syscall}"
    if cap == "CAP_SYS_ADMIN" and syscall in FORK_SYSCALLS and not classified:
        return f"fork:{syscall}"
    return None


TYPE_NAME = re.compile(r"[A-Za-z0-9_]+")


def avc_label(tclass: Any, tcontext: Any) -> tuple[str, str] | None:
    """(class, type) of an AVC's target (`user:role:type:level`): from the
    tracepoint rung's `avc` events and from joined audit records alike.
    None when the type is not a plain identifier (it never enters a policy)."""
    parts = str(tcontext or "").split(":")
    if len(parts) >= 3 and TYPE_NAME.fullmatch(parts[2]) and tclass:
        return str(tclass), parts[2]
    return None


def _interpreter_from_argv(filename: str, argv: Any) -> str | None:
    """A #! script's interpreter from the exec's argv as the kernel rewrote it
    (`[interpreter, (arg,) script, ...]`), when the argv shows it."""
    if (
        not isinstance(argv, list)
        or len(argv) < 2
        or not all(isinstance(a, str) for a in argv)
    ):
        return None
    first = argv[0]
    if first.startswith("/") and first != filename and filename in argv[1:3]:
        return place(first)[0]
    return None


def exec_program(obj: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """The program an exec event started and its #! interpreter (or None).

    `filename` is the executable the kernel runs (for a script, the
    interpreter); `given` the name the exec call was given, when it differs.
    A script's exec is known by the argv the kernel made for it: the
    interpreter in argv[0], then (after an optional interpreter argument) the
    name the exec was given. Anything else (a symlink such as /bin/sh, a
    relative name) is the executable itself; without `given` (older
    recordings), `filename` with the interpreter its argv shows."""
    filename = obj.get("filename")
    given = obj.get("given")
    argv = obj.get("argv")
    if (
        isinstance(given, str)
        and given
        and given != filename
        and isinstance(argv, list)
        and len(argv) >= 2
        and argv[0] != given
        and given in argv[1:3]
    ):
        return given, filename if isinstance(filename, str) else None
    if not isinstance(filename, str):
        return None, None
    # recordings before `given` named the script itself in `filename`
    return filename, _interpreter_from_argv(filename, argv)


class Builder:
    """Feed events (dicts) in order; read `.access_set`."""

    def __init__(self, include_denied: bool = False) -> None:
        self.include_denied = include_denied
        self.access_set = AccessSet()
        self.procs: dict[int, _Proc] = {}
        self.classified = False
        # thread -> (tclass, target type) of the AVCs audited since its last
        # decision: the AVC is emitted inside the hook, before the decision's event
        self.avcs: dict[int, list[tuple[str, str]]] = {}
        self._avcs: list[tuple[str, str]] = []  # those of the decision being added

    def add_recording(
        self,
        header: Mapping[str, Any],
        events: Iterable[Mapping[str, Any]],
        source: str = "",
    ) -> None:
        self.procs = {}
        self.avcs = {}
        if source:
            self.access_set.sources.append(source)
        cmd = header.get("command")
        known = self.access_set.commands
        if (
            isinstance(cmd, list)
            and cmd
            and all(isinstance(c, str) for c in cmd)
            and cmd not in known
        ):
            known.append(list(cmd))
        ctx = header.get("selinux_context")
        if isinstance(ctx, str) and ctx and ctx not in self.access_set.selinux_callers:
            self.access_set.selinux_callers.append(ctx)
        ordered = sorted(events, key=lambda e: _int(e.get("ts_ns")))
        self.classified = classifies_probes(ordered)
        for ev in ordered:
            self.add(ev)
        for tgid in sorted(self.procs):
            self._flush_bprm(self.procs[tgid], None)

    def _proc(self, ev: Mapping[str, Any]) -> _Proc:
        tgid = _int(ev.get("tgid"))
        p = self.procs.get(tgid)
        if p is None:
            parent = self.procs.get(_int(ev.get("ppid")))
            if parent is not None:
                p = _Proc(parent.exe, parent.chain, "fork")
            else:
                p = _Proc(None)
            self.procs[tgid] = p
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
                self.procs[child] = _Proc(proc.exe, proc.chain, "fork")
            return
        if kind == "exit":
            return
        if kind == "avc":
            label = avc_label(obj.get("tclass"), obj.get("tcontext"))
            if label is not None:
                self.avcs.setdefault(_int(ev.get("pid")), []).append(label)
            return
        if kind == "exec":
            self._exec(ev, obj, proc)
            return
        if hook in BPRM_HOOKS and ev.get("verdict") == "allow":
            # the exec's file (and interpreters): sorted out at its exec event
            path = self._path(ev, obj.get("path"), obj.get("path_kind"), "exec")
            if path and (not proc.bprm or proc.bprm[-1] != path):
                proc.bprm.append(path)
            if hook == "bprm_check_security":
                proc.checks += 1
            s.used += 1
            return
        in_exec = ev.get("syscall") in EXEC_SYSCALLS
        if (proc.bprm or proc.exec_opens) and not in_exec:
            self._flush_bprm(proc, ev)  # that execve is over and exec'd nothing
        if (
            in_exec
            and kind == "hook"
            and hook in EXEC_TIME_HOOKS
            and ev.get("verdict") == "allow"
        ):
            if self._exec_time(hook, obj, proc):
                s.used += 1
            return
        # this decision's AVCs, consumed even when the decision is not used
        self._avcs = self.avcs.pop(_int(ev.get("pid")), [])
        if "audit" in ev:
            self._audit_label(ev, obj)
        verdict = ev.get("verdict")
        if verdict == "error" or (verdict == "deny" and not self.include_denied):
            return
        if verdict not in ("allow", "deny"):
            return
        if self._decision(ev, kind, hook, obj, proc):
            s.used += 1

    def _audit_label(self, ev: Mapping[str, Any], obj: Mapping[str, Any]) -> None:
        """The SELinux AVC record joined to a decision (`audit`, denials only)
        labels the object it names: by its `path`, or by its `name` (a
        basename: the decision's file, or that file's directory). Used or not,
        the decision tells the file's type."""
        a = ev.get("audit")
        if not isinstance(a, Mapping) or a.get("lsm") != "selinux":
            return
        label = avc_label(a.get("tclass"), a.get("tcontext"))
        if label is None or label[0] not in FILE_CLASSES:
            return
        path: str | None = None
        named = a.get("path")
        if isinstance(named, str) and named.startswith("/"):
            path = place(named, "exact")[0]  # the kernel's d_path of the object
        elif isinstance(a.get("name"), str) and isinstance(obj.get("path"), str):
            mine = place(str(obj["path"]), str(obj.get("path_kind") or ""))[0]
            if mine is not None:
                parent = posixpath.dirname(mine)
                if posixpath.basename(mine) == a["name"]:
                    path = mine
                elif parent != "/" and posixpath.basename(parent) == a["name"]:
                    path = parent
        if path is not None:
            self.access_set.labels[path] = label[1]

    # -- for a live session (policy/live.py): processes come and go --------------

    def start(self, tgid: int, exe: str | None, forked: bool = False) -> None:
        """A process whose program is known without its exec: one already
        running when the events began (`exe`: the process tree's answer), or
        one forked by a process running `exe` (`forked`: what a fork event
        does, done when the child's own first event comes)."""
        self.procs[tgid] = _Proc(
            exe, (exe,) if exe else (), "fork" if forked else "exec"
        )

    def known(self, tgid: int) -> bool:
        return tgid in self.procs

    def settled(self, tgid: int, pid: int) -> bool:
        """The process is known and nothing of it is pending that its next
        decision would consume: no exec in progress (bprm hooks), no AVC
        waiting for the thread. Then a decision's accesses depend only on
        the event, the program and (mmap of an fd) the file opened last."""
        p = self.procs.get(tgid)
        return (
            p is not None
            and not p.bprm
            and not p.exec_opens
            and not p.exec_maps
            and pid not in self.avcs
        )

    def program_of(self, tgid: int) -> str | None:
        """The program a known process runs (None: known by comm only)."""
        p = self.procs.get(tgid)
        return p.exe if p is not None else None

    def last_open(self, tgid: int) -> str | None:
        """The file the process opened last (the tracepoint rung's mmap of
        an fd maps it: the ld.so pattern)."""
        p = self.procs.get(tgid)
        return p.last_open if p is not None else None

    def set_last_open(self, tgid: int, path: str | None) -> None:
        p = self.procs.get(tgid)
        if p is not None:
            p.last_open = path

    def forget(self, tgid: int) -> None:
        """The process exited: nothing of it is needed any more."""
        self.procs.pop(tgid, None)
        self.avcs.pop(tgid, None)

    def trim(self, max_procs: int) -> int:
        """Keep at most `max_procs` processes (the oldest go: threads'
        fork entries, processes whose exit was not seen); returns how many
        went. AVCs waiting for a decision that never came go too."""
        over = len(self.procs) - max_procs
        if over > 0:
            for tgid in list(self.procs)[:over]:
                del self.procs[tgid]
        if len(self.avcs) > max_procs:
            self.avcs.clear()
        return max(over, 0)

    def _flush_bprm(self, proc: _Proc, ev: Mapping[str, Any] | None) -> None:
        """bprm hook paths of an exec that never completed (no exec event):
        the caller needed exec on them all the same. What the kernel opened
        and mapped for it goes with it (no program ran)."""
        pending, proc.bprm = proc.bprm, []
        proc.exec_opens, proc.exec_maps, proc.checks = [], [], 0
        if ev is not None and proc.exe is not None:
            prog = self._prog(ev, proc)
            for path in pending[:1]:
                prog.add_file(path, "exec")

    def _exec_time(self, hook: str, obj: Mapping[str, Any], proc: _Proc) -> bool:
        """A hook of the kernel's own work inside an execve (EXEC_TIME_HOOKS):
        kept for the program the exec starts (`_exec`)."""
        path, _why = place(str(obj.get("path") or ""), "exact")
        if path is None:
            return False
        if hook == "file_open":
            proc.exec_opens.append((path, proc.checks))
        elif hook == "mmap_file":
            if _int(obj.get("prot_raw")) & PROT_EXEC and path not in proc.exec_maps:
                proc.exec_maps.append(path)
        else:
            return False  # the loader reading the files opened above
        return True

    def _exec(self, ev: Mapping[str, Any], obj: Mapping[str, Any], proc: _Proc) -> None:
        s = self.access_set
        pending, proc.bprm = proc.bprm, []
        opens, maps, checks = proc.exec_opens, proc.exec_maps, proc.checks
        proc.exec_opens, proc.exec_maps, proc.checks = [], [], 0
        raw, interp = exec_program(obj)
        exe, why = place(str(raw or ""), None)
        if exe is None:
            if why and isinstance(raw, str):
                name = proc.exe or f"comm:{ev.get('comm', '')}"
                s.unplaced.setdefault(Unplaced(name, raw, why), set()).add("exec")
            # its program is unknown: what it does is its comm's
            proc.exe, proc.via, proc.chain, proc.last_open = None, "exec", (), None
            return
        caller = proc.exe
        if caller is None:
            # started from outside the recording (lsmtrace's child for the
            # recorded command): a root, whose own exec is its own
            s.roots.add(exe)
            chain: tuple[str, ...] = (exe,)
            self._prog_named(ev, exe).add_file(exe, "exec")
        else:
            how = "replace" if proc.via == "exec" else "child"
            prog = self._prog(ev, proc)
            prog.add_file(exe, "exec")
            if exe != caller:
                prog.execs.setdefault(exe, set()).add(how)
            # a program re-exec'ing itself stays in its domain
            same = bool(proc.chain) and exe == proc.chain[-1]
            chain = (proc.chain if same else (*proc.chain, exe))[-CHAIN_MAX:]
        s.chains.add(chain)
        proc.exe, proc.via, proc.chain, proc.last_open = exe, "exec", chain, None
        new = self._prog_named(ev, exe)
        exact = place(str(obj.get("path") or ""), "exact")[0]
        if obj.get("path_kind") == "exact" and exact and exact != exe:
            new.exact_exe = exact
        elif pending:
            if pending[0] != exe:
                new.exact_exe = pending[0]
            new.interpreters.update(p for p in pending[1:] if p != pending[0])
        if interp:
            placed = place(interp, None)[0]
            if placed and placed != exe:
                new.interpreters.add(placed)
        self._exec_files(new, exe, opens, maps, checks)
        for i in new.interpreters:
            # the kernel reads and maps a script's interpreter for it: TOMOYO
            # checks the read, AppArmor the map, in the script's new domain
            new.add_file(i, "read")
            new.add_file(i, "mmap_exec")
        s.used += 1

    @staticmethod
    def _exec_files(
        new: Program,
        exe: str,
        opens: list[tuple[str, int]],
        maps: list[str],
        checks: int,
    ) -> None:
        """The files the kernel opened and mapped to start `new` (hook
        rungs). The first one opened is the program itself (its exact path:
        a symlink resolved); one opened before a later bprm_check_security is
        a #! interpreter (the next round checks it); the one after the last
        check is the ELF interpreter (ld.so). The program reads all of them
        and maps the executable ones."""
        for i, (path, before) in enumerate(opens):
            if i == 0:
                if path != exe and not new.exact_exe:
                    new.exact_exe = path
            elif before < checks and path != opens[0][0]:
                new.interpreters.add(path)
            new.add_file(path, "read")
        for path in maps:
            new.add_file(path, "mmap_exec")

    def _prog_named(self, ev: Mapping[str, Any], exe: str) -> Program:
        p = self.access_set.program(exe, exe)
        comm = str(ev.get("comm", ""))
        if comm:
            p.comms.add(comm)
        return p

    def _prog(self, ev: Mapping[str, Any], proc: _Proc) -> Program:
        comm = str(ev.get("comm", ""))
        name = proc.exe or f"comm:{comm}"
        p = self.access_set.program(name, proc.exe)
        if comm:
            p.comms.add(comm)
        return p

    def _path(
        self, ev: Mapping[str, Any], raw: Any, kind: Any, access: str
    ) -> str | None:
        if not isinstance(raw, str) or not raw:
            return None
        if (
            raw.startswith("@")
            or raw.startswith("anon_inode:")
            or raw.startswith("pipe:")
        ):
            return None
        p, why = place(raw, kind if isinstance(kind, str) else None)
        if p is None and why:
            proc = self.procs.get(_int(ev.get("tgid")))
            name = (proc.exe if proc else None) or f"comm:{ev.get('comm', '')}"
            self.access_set.unplaced.setdefault(Unplaced(name, raw, why), set()).add(
                access
            )
        return p

    def _file(
        self, ev: Mapping[str, Any], proc: _Proc, raw: Any, *acc: str, kind: Any = None
    ) -> bool:
        path = self._path(ev, raw, kind, "/".join(acc) or "open")
        if path is None:
            return False
        prog = self._prog(ev, proc)
        for a in acc:
            prog.add_file(path, a)
        if proc.exe and path == proc.exe and "read" in acc:
            prog.reads_self = True
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

    def _decision(
        self,
        ev: Mapping[str, Any],
        kind: str,
        hook: str,
        obj: Mapping[str, Any],
        proc: _Proc,
    ) -> bool:
        name = hook[4:] if hook.startswith("sys_") else hook
        pk = obj.get("path_kind")
        if kind == "capable" or hook == "capable":
            cap = obj.get("cap_name")
            if not isinstance(cap, str):
                return False
            why = cap_use(ev, obj, self.classified)
            if why is not None:
                name = proc.exe or f"comm:{ev.get('comm', '')}"
                self.access_set.quiet_caps.setdefault((name, cap), set()).add(why)
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
                    ) or (kind == "hook" and _int(obj.get("mode")) & S_IFMT == S_IFDIR)
                    # (a hook's object mode is the inode's: grep opens a
                    # directory without O_DIRECTORY first)
                    acc.append("readdir" if directory else "read")
                if mode in (O_WRONLY, O_RDWR):
                    acc.append("append" if flags & O_APPEND else "write")
                    if flags & O_TRUNC:
                        acc.append("truncate")
                if flags & O_CREAT:
                    acc.append("create")
            ok = self._file(ev, proc, obj.get("path"), *acc, kind=pk)
            proc.last_open = place(str(obj.get("path") or ""), pk)[0] if ok else None
            return ok
        if hook == "file_permission":
            return self._fd_use(ev, proc, obj)
        if name in ("execve", "execveat", "bprm_check_security", "bprm_creds_for_exec"):
            if kind == "syscall" and ev.get("verdict") == "allow":
                return False  # the exec event said it (and for the right program)
            return self._file(
                ev, proc, obj.get("path") or obj.get("filename"), "exec", kind=pk
            )
        if name in ("mmap", "mprotect", "mmap_file", "file_mprotect"):
            if not _int(obj.get("prot_raw")) & PROT_EXEC:
                return False
            if obj.get("path"):
                return self._file(ev, proc, obj.get("path"), "mmap_exec", kind=pk)
            if _int(obj.get("fd"), -1) >= 0 and proc.last_open:
                # tracepoint rung: the fd's path is not in the event; the file
                # the loader mapped is the one it opened last (ld.so pattern)
                prog = self._prog(ev, proc)
                prog.add_file(proc.last_open, "mmap_exec")
                prog.inferred.add(f"{proc.last_open} mmap_exec")
                return True
            return False
        if name in (
            "unlink",
            "unlinkat",
            "rmdir",
            "path_unlink",
            "inode_unlink",
            "path_rmdir",
            "inode_rmdir",
        ):
            rmdir = name in ("rmdir", "path_rmdir", "inode_rmdir") or bool(
                _int(obj.get("flags")) & AT_REMOVEDIR
            )
            return self._file(
                ev, proc, obj.get("path"), "rmdir" if rmdir else "unlink", kind=pk
            )
        if name in ("rename", "renameat", "renameat2", "path_rename", "inode_rename"):
            a = self._file(ev, proc, obj.get("path"), "rename_src", kind=pk)
            src = place(str(obj.get("path") or ""), pk)[0] if a else None
            dst = self._rename_dst(ev, proc, src, obj.get("path2"))
            return a or dst
        if name in ("path_mknod", "inode_mknod") and ev.get("syscall") in OPEN_NAMES:
            return False  # open(O_CREAT) asks it for the file it creates: the open's create
        if name in ("link", "linkat", "path_link", "inode_link"):
            return self._file(ev, proc, obj.get("path2"), "link")
        if name in ("symlink", "symlinkat", "path_symlink", "inode_symlink"):
            return self._file(ev, proc, obj.get("path"), "symlink", kind=pk)
        if name in ("mkdir", "mkdirat", "path_mkdir", "inode_mkdir"):
            return self._file(ev, proc, obj.get("path"), "mkdir", kind=pk)
        if name in ("mknod", "mknodat", "path_mknod", "inode_mknod"):
            return self._file(ev, proc, obj.get("path"), "mknod", kind=pk)
        if name in ("chmod", "fchmodat", "fchmodat2", "path_chmod"):
            return self._file(ev, proc, obj.get("path"), "chmod", kind=pk)
        if name in ("chown", "lchown", "fchownat", "path_chown"):
            return self._file(ev, proc, obj.get("path"), "chown", kind=pk)
        if name in ("truncate", "path_truncate"):
            return self._file(ev, proc, obj.get("path"), "truncate", "write", kind=pk)
        if (
            ev.get("family") == "network"
            or name.startswith("socket_")
            or name
            in (
                "socket",
                "connect",
                "bind",
                "listen",
                "accept",
                "accept4",
                "sendto",
                "sendmsg",
            )
        ):
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
        if name in (
            "ptrace",
            "ptrace_access_check",
            "process_vm_readv",
            "process_vm_writev",
            "ptrace_traceme",
        ):
            how = "read" if name == "process_vm_readv" else "trace"
            target = _int(obj.get("target_pid"))
            who = "self" if target in (_int(ev.get("tgid")), 0) else "other"
            self._prog(ev, proc).ptrace.add((how, who))
            return True
        return False

    def _fd_use(
        self, ev: Mapping[str, Any], proc: _Proc, obj: Mapping[str, Any]
    ) -> bool:
        """A read or write on an open regular file (file_permission, hook
        rungs): the program uses the file whoever opened it. A file
        descriptor inherited across an exec is the case that matters
        (`cmd > file` in a shell: the shell opens, the command writes):
        AppArmor and SELinux check it again at the exec, in the new profile
        or domain, and close it when not allowed. Pipes and sockets are not
        files of a path (the hook names them `/`): left out."""
        if _int(obj.get("mode")) & S_IFMT != S_IFREG:
            return False
        mask = _int(obj.get("mask"))
        acc = []
        if mask & MAY_READ:
            acc.append("read")
        if mask & MAY_WRITE:
            acc.append("append" if _int(obj.get("flags")) & O_APPEND else "write")
        if not acc:
            return False
        return self._file(ev, proc, obj.get("path"), *acc, kind="exact")

    def _rename_dst(
        self, ev: Mapping[str, Any], proc: _Proc, src: str | None, raw: Any
    ) -> bool:
        """A rename's target. The hook rungs give the new name alone (the
        hook's dentry); beside a source that is that name with a random or
        numeric tail (an atomic write: `f.XXXX` renamed onto `f` in its
        directory) it is placed in the source's directory, and, since the
        program keeps that file up to date, it may read it back on its next
        run (Python's .pyc, written on the first run, read on the next):
        both listed as inferred. Any other bare name stays unplaced."""
        name = raw if isinstance(raw, str) else ""
        placed = place(name)[0]
        inferred = []
        if (
            placed is None
            and name
            and "/" not in name
            and src is not None
            and atomic_tail(posixpath.basename(src), name)
        ):
            placed = posixpath.join(posixpath.dirname(src), name)
            inferred.append(
                f"{placed} rename_dst: the name {name} beside its "
                f"source {posixpath.basename(src)} (atomic write)"
            )
        if placed is None:
            return self._file(ev, proc, raw, "rename_dst")
        prog = self._prog(ev, proc)
        prog.add_file(placed, "rename_dst")
        if src is not None and atomic_tail(src, placed):
            prog.add_file(placed, "read")
            inferred.append(
                f"{placed} read: a file written atomically is read back on the next run"
            )
        prog.inferred.update(inferred)
        return True

    def _net(
        self, ev: Mapping[str, Any], name: str, obj: Mapping[str, Any], proc: _Proc
    ) -> bool:
        op = {
            "socket_create": "socket",
            "socket_connect": "connect",
            "socket_bind": "bind",
            "socket_listen": "listen",
            "socket_accept": "accept",
            "accept4": "accept",
            "socket_sendmsg": "send",
            "sendto": "send",
            "sendmsg": "send",
        }.get(name, name)
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


def infer_socket_types(aset: AccessSet) -> None:
    """A bind/connect/accept recorded without its socket's type (the syscall
    events name the address, not the socket) gets the type of the program's
    sockets of that family when they all have one type; listed in `inferred`."""
    for prog in aset.programs.values():
        for n in sorted(prog.network, key=_net_key):
            if n.type:
                continue
            types = {m.type for m in prog.network if m.family == n.family and m.type}
            if len(types) == 1:
                (typ,) = types
                prog.network.discard(n)
                prog.network.add(NetAccess(n.op, n.family, typ, n.port))
                prog.inferred.add(f"{net_text(n)} type {typ}")


def build(
    recordings: Iterable[tuple[Mapping[str, Any], Iterable[Mapping[str, Any]], str]],
    include_denied: bool = False,
) -> AccessSet:
    """Merge (header, events, source name) recordings into one access set."""
    b = Builder(include_denied)
    for header, events, source in recordings:
        b.add_recording(header, events, source)
    infer_socket_types(b.access_set)
    return b.access_set


def from_files(paths: Iterable[str], include_denied: bool = False) -> AccessSet:
    from lsmtrace.record import read_recording

    recs = []
    for p in paths:
        r = read_recording(p)
        if r.error is not None:
            import logging

            logging.getLogger(__name__).warning(
                "%s (using the %d events before it)", r.error.message, len(r.events)
            )
        recs.append((r.header, r.events, os.path.basename(p)))
    return build(recs, include_denied)
