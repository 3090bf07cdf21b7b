"""Process tree keyed by (tgid, start time): who did it, under what, in which container.

A `ProcessTree` starts from a walk of /proc (psutil `process_iter`) and is kept
current by the kernel's process events (kinds exec, fork, exit; the tracer emits
them with `TraceOptions(proc_events=True)`). An `Enricher` adds to each event
dict: `exe`, `cmdline`, `user`, `group`, `ancestors`, `container`, `unit` and
`exited` (schema: docs/proctree.md). `format_tree()` renders a denial with its
ancestry for `lsmtrace trace --tree`.

Matching an event to a process, robust to PID reuse
---------------------------------------------------
Every process is an *incarnation* (tgid, start_ns). start_ns is on the kernel
monotonic clock, the clock of the events' `ts_ns` (bpf_ktime_get_ns):
  - from /proc/<pid>/stat field 22 (clock ticks since boot, CLOCK_BOOTTIME):
    start_ns = ticks * 1e9 / HZ - (CLOCK_BOOTTIME - CLOCK_MONOTONIC), a lower
    bound of the true start (ticks are truncated, 10 ms at HZ=100);
  - from a fork event: start_ns = the fork event's ts_ns, an upper bound (the
    tracepoint fires after the child is created, before it first runs).
An event (tgid, ts_ns) belongs to the latest incarnation of tgid whose start_ns
<= ts_ns + tolerance (1 ms: the two clock reads of the offset). A process can
only emit events after it started, and a reused pid belongs to a process that
started later, so an event of the predecessor still maps to the predecessor
while it is kept (exited entries stay `exit_grace_ns` of event time, 5 s by
default). The only ambiguity left is a pid reused less than one tick + 1 ms
after the predecessor's event: pids are handed out cyclically up to pid_max, so
that needs pid_max forks within 11 ms.
Without process events (proc_events off), pid reuse is still caught when the
event's ppid disagrees with the tree: the entry is checked against /proc.

Threads: the fork tracepoint also fires for new threads (child_pid is a thread
id); `ProcessSource.is_thread()` (does /proc/<tgid>/task/<tid> exist?) keeps
them out of the tree.

Bounded memory: at most `max_processes` entries (LRU eviction beyond that);
exited ones are evicted `exit_grace_ns` after their exit; counters in `stats`.
A process we cannot find (exited before the lookup, hidden, unreadable) is a
"ghost" built from the event's own pid/comm/ppid, reported with exited: true.
psutil's NoSuchProcess/AccessDenied/ZombieProcess never escape.
"""

from __future__ import annotations

import contextlib
import grp
import importlib
import logging
import os
import pwd
import shlex
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from lsmtrace.cgroups import HOST, Attribution, CgroupMap, attribute, parse_proc_cgroup

log = logging.getLogger(__name__)

CMDLINE_MAX = 256
ANCESTORS_MAX = 64
NEVER = 1 << 63
RECHECK_NS = 100_000_000
PROC_KINDS = frozenset({"exec", "fork", "exit"})


# -- what a process source yields ---------------------------------------------


@dataclass(frozen=True, slots=True)
class ProcessRecord:
    """One process as /proc shows it. start_ticks: /proc/<pid>/stat field 22."""

    pid: int
    ppid: int
    start_ticks: int
    comm: str
    exe: str | None = None
    cmdline: list[str] | None = None
    cgroup: str | None = None  # /proc/<pid>/cgroup text (hybrid hosts only)


class ProcessSource(Protocol):
    """Where the tree learns about processes (tests inject fakes)."""

    def processes(self) -> Iterable[ProcessRecord]: ...
    def process(self, pid: int) -> ProcessRecord | None: ...
    def is_thread(self, tgid: int, tid: int) -> bool: ...


def parse_stat(raw: bytes) -> tuple[str, int, int] | None:
    """(comm, ppid, start ticks) of a /proc/<pid>/stat text; None if malformed.
    comm may contain ")" and spaces: it runs to the last ")"."""
    try:
        head, tail = raw.rsplit(b")", 1)
        comm = head.split(b"(", 1)[1].decode("utf-8", "surrogateescape")
        f = tail.split()
        return comm, int(f[1]), int(f[19])
    except (ValueError, IndexError):
        return None


def _argv(raw: bytes) -> list[str] | None:
    if not raw:
        return None  # kernel thread or zombie
    return [
        a.decode("utf-8", "surrogateescape") for a in raw.rstrip(b"\0").split(b"\0")
    ]


class ProcfsSource:
    """Reads /proc (or a fake tree at `proc`) directly; every error is "unknown"."""

    def __init__(self, proc: Path = Path("/proc"), read_cgroup: bool = False) -> None:
        self.proc = proc
        self.read_cgroup = read_cgroup

    def _read(self, pid: int, name: str) -> bytes | None:
        try:
            with open(f"{self.proc}/{pid}/{name}", "rb") as f:
                return f.read()
        except OSError:  # gone, EACCES, ESRCH...
            return None

    def _exe(self, pid: int) -> str | None:
        try:
            return os.readlink(f"{self.proc}/{pid}/exe")
        except OSError:
            return None

    def process(self, pid: int) -> ProcessRecord | None:
        raw = self._read(pid, "stat")
        st = parse_stat(raw) if raw is not None else None
        if st is None:
            return None
        comm, ppid, ticks = st
        cmd = self._read(pid, "cmdline")
        cg = self._read(pid, "cgroup") if self.read_cgroup else None
        return ProcessRecord(
            pid=pid,
            ppid=ppid,
            start_ticks=ticks,
            comm=comm,
            exe=self._exe(pid),
            cmdline=_argv(cmd) if cmd is not None else None,
            cgroup=cg.decode("utf-8", "surrogateescape") if cg is not None else None,
        )

    def processes(self) -> Iterator[ProcessRecord]:
        try:
            names = os.listdir(self.proc)
        except OSError:
            return
        for n in names:
            if n.isdigit():
                rec = self.process(int(n))
                if rec is not None:
                    yield rec

    def is_thread(self, tgid: int, tid: int) -> bool:
        return tid != tgid and os.path.exists(f"{self.proc}/{tgid}/task/{tid}")


def _psutil() -> Any:
    """psutil, imported on first use (it has no type stubs here: Any)."""
    return importlib.import_module("psutil")


class PsutilSource(ProcfsSource):
    """The initial walk through psutil's process_iter (attrs, one oneshot() per
    process); start ticks and comm from /proc/<pid>/stat (psutil only gives a
    float create_time, and a name extended from the cmdline)."""

    def processes(self) -> Iterator[ProcessRecord]:
        psutil = _psutil()
        saved = psutil.PROCFS_PATH
        psutil.PROCFS_PATH = str(self.proc)
        try:
            for p in psutil.process_iter(attrs=["exe", "cmdline"], ad_value=None):
                rec = self._from_psutil(p.pid, p.info.get("exe"), p.info.get("cmdline"))
                if rec is not None:
                    yield rec
        finally:
            psutil.PROCFS_PATH = saved

    def process(self, pid: int) -> ProcessRecord | None:
        psutil = _psutil()
        try:
            p = psutil.Process(pid)
            with p.oneshot():
                exe: str | None = None
                cmdline: list[str] | None = None
                with contextlib.suppress(psutil.AccessDenied):
                    exe = p.exe() or None
                with contextlib.suppress(psutil.AccessDenied):
                    cmdline = p.cmdline() or None
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            return super().process(pid)  # a zombie still has a stat
        except psutil.Error:
            return super().process(pid)
        return self._from_psutil(pid, exe, cmdline)

    def _from_psutil(
        self, pid: int, exe: object, cmdline: object
    ) -> ProcessRecord | None:
        raw = self._read(pid, "stat")
        st = parse_stat(raw) if raw is not None else None
        if st is None:
            return None
        comm, ppid, ticks = st
        cg = self._read(pid, "cgroup") if self.read_cgroup else None
        return ProcessRecord(
            pid=pid,
            ppid=ppid,
            start_ticks=ticks,
            comm=comm,
            exe=exe if isinstance(exe, str) and exe else None,
            cmdline=[str(a) for a in cmdline]
            if isinstance(cmdline, list) and cmdline
            else None,
            cgroup=cg.decode("utf-8", "surrogateescape") if cg is not None else None,
        )


# -- clock ----------------------------------------------------------------------


class Clock(Protocol):
    hz: int

    def boot_offset_ns(self) -> int:
        """CLOCK_BOOTTIME - CLOCK_MONOTONIC (time spent suspended)."""
        ...


class SystemClock:
    def __init__(self) -> None:
        self.hz = os.sysconf("SC_CLK_TCK")

    def boot_offset_ns(self) -> int:
        a = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
        b = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
        c = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
        return b - (a + c) // 2


# -- the tree ---------------------------------------------------------------------


def bound_cmdline(argv: list[str] | None, limit: int = CMDLINE_MAX) -> str | None:
    """argv as one shell-quoted string (shlex.join), at most `limit` characters;
    a longer one is cut and ends with "..."."""
    if not argv:
        return None
    s = shlex.join(argv)
    return s if len(s) <= limit else s[: limit - 3] + "..."


class Proc:
    """One incarnation. `node` is its shared {pid, comm, exe} dict (ancestors
    lists reference it; never mutate)."""

    __slots__ = (
        "_added",
        "_fields",
        "_gen",
        "ancestor",
        "attr",
        "cmdline",
        "comm",
        "exe",
        "exit_code",
        "exit_ns",
        "exited",
        "exited_at",
        "ghost",
        "node",
        "ppid",
        "stale",
        "start_ns",
        "tgid",
    )

    def __init__(
        self,
        tgid: int,
        start_ns: int,
        ppid: int,
        comm: str,
        exe: str | None,
        cmdline: str | None,
        ghost: bool = False,
    ) -> None:
        self.tgid = tgid
        self.start_ns = start_ns
        self.ppid = ppid
        self.comm = comm
        self.exe = exe
        self.cmdline = cmdline
        self.exited = ghost
        self.exit_code: int | None = None
        self.exited_at = NEVER  # ts of the exit event
        self.exit_ns = NEVER  # events after this ts make the tree check /proc
        self.ghost = ghost
        self.stale = False  # exe/cmdline to re-read (after an exec)
        self.ancestor = False  # some cached ancestors list shows this entry
        self.attr: Attribution | None = None  # from /proc/<pid>/cgroup (hybrid)
        self.node: dict[str, Any] = {"pid": tgid, "comm": comm, "exe": exe}
        self._fields: dict[str, Any] | None = None
        self._gen = -1
        # (base fields, {(uid, gid, cgroup): every added field}): what
        # Enricher.fields() last gave for this incarnation
        self._added: (
            tuple[dict[str, Any], dict[tuple[int, int, int], dict[str, Any]]] | None
        ) = None

    @property
    def key(self) -> tuple[int, int]:
        return self.tgid, self.start_ns

    def __repr__(self) -> str:
        state = " exited" if self.exited else ""
        return (
            f"<Proc {self.tgid}@{self.start_ns} {self.comm!r} ppid={self.ppid}{state}>"
        )


@dataclass
class TreeStats:
    walked: int = 0  # processes from the initial walk
    forks: int = 0
    execs: int = 0
    exits: int = 0
    threads_skipped: int = 0
    hits: int = 0  # events matched to a known incarnation
    misses: int = 0  # events whose process was not in the tree (looked up in /proc)
    revalidations: int = 0  # a known entry checked against /proc (ppid, after exit)
    ghosts: int = 0  # processes gone before we could look: from the event's data
    reused: int = 0  # a pid seen with a new start time (predecessor kept apart)
    evicted_exited: int = 0
    evicted_lru: int = 0
    refreshes: int = 0  # exe/cmdline re-read after an exec

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


class ProcessTree:
    def __init__(
        self,
        source: ProcessSource | None = None,
        clock: Clock | None = None,
        max_processes: int = 32768,
        exit_grace_ns: int = 5_000_000_000,
        tolerance_ns: int = 1_000_000,
    ) -> None:
        if max_processes < 1:
            raise ValueError("max_processes must be >= 1")
        self.source: ProcessSource = source if source is not None else PsutilSource()
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.max_processes = max_processes
        self.exit_grace_ns = exit_grace_ns
        self.tolerance_ns = tolerance_ns
        self.tick_ns = 1_000_000_000 // max(1, self.clock.hz)
        self._boot_offset = self.clock.boot_offset_ns()
        self.live: dict[int, Proc] = {}  # tgid -> latest incarnation
        # tgid -> predecessors (exited), sorted by start
        self.older: dict[int, list[Proc]] = {}
        self.lru: OrderedDict[Proc, None] = OrderedDict()
        self._exitq: deque[tuple[int, Proc]] = deque()
        self.gen = 0  # bumped when a cached ancestors list may be stale
        self.stats = TreeStats()

    # -- building ------------------------------------------------------------------

    def start_ns_of(self, start_ticks: int) -> int:
        return start_ticks * 1_000_000_000 // max(1, self.clock.hz) - self._boot_offset

    def _from_record(self, rec: ProcessRecord) -> Proc:
        p = Proc(
            rec.pid,
            self.start_ns_of(rec.start_ticks),
            rec.ppid,
            rec.comm,
            rec.exe,
            bound_cmdline(rec.cmdline),
        )
        if rec.cgroup is not None:
            path = parse_proc_cgroup(rec.cgroup)
            p.attr = attribute(path) if path is not None else HOST
        return p

    def load(self) -> int:
        """The initial walk; returns the number of processes read."""
        n = 0
        for rec in self.source.processes():
            self._add(self._from_record(rec))
            n += 1
        self.stats.walked += n
        return n

    def __len__(self) -> int:
        return len(self.lru)

    def _add(self, p: Proc) -> Proc:
        cur = self.live.get(p.tgid)
        if cur is not None:
            if (
                not cur.ghost
                and not p.ghost
                and (abs(cur.start_ns - p.start_ns) <= self.tick_ns + self.tolerance_ns)
            ):  # the same process, seen twice (fork event and /proc)
                cur.exe = cur.exe or p.exe
                cur.cmdline = cur.cmdline or p.cmdline
                cur.attr = cur.attr or p.attr
                self.lru.move_to_end(cur)
                return cur
            if p.start_ns < cur.start_ns:  # an older incarnation learned late
                self._insert_older(p)
                self._touch_new(p)
                return p
            if not cur.exited:
                cur.exited = True  # its exit event was lost or not traced
                cur.exited_at = cur.exit_ns = p.start_ns
                cur._fields = None
                self._queue_exit(cur, p.start_ns)
            self._insert_older(cur)
            if not cur.ghost:
                self.stats.reused += 1
        self.live[p.tgid] = p
        self._touch_new(p)
        return p

    def _insert_older(self, p: Proc) -> None:
        lst = self.older.setdefault(p.tgid, [])
        lst.append(p)
        lst.sort(key=lambda q: q.start_ns)

    def _touch_new(self, p: Proc) -> None:
        self.lru[p] = None
        while len(self.lru) > self.max_processes:
            old, _ = self.lru.popitem(last=False)
            self._forget(old)
            self.stats.evicted_lru += 1

    def _forget(self, p: Proc) -> None:
        if self.live.get(p.tgid) is p:
            del self.live[p.tgid]
            olds = self.older.get(p.tgid)
            if olds:  # the newest predecessor becomes the one to match
                self.live[p.tgid] = olds.pop()
                if not olds:
                    del self.older[p.tgid]
        else:
            olds = self.older.get(p.tgid)
            if olds and p in olds:
                olds.remove(p)
                if not olds:
                    del self.older[p.tgid]
        self.lru.pop(p, None)

    def _queue_exit(self, p: Proc, ts_ns: int) -> None:
        self._exitq.append((ts_ns + self.exit_grace_ns, p))

    def expire(self, now_ns: int) -> None:
        """Evict the processes that exited more than exit_grace_ns before now_ns."""
        q = self._exitq
        while q and q[0][0] <= now_ns:
            _, p = q.popleft()
            if p in self.lru:
                self._forget(p)
                self.stats.evicted_exited += 1

    # -- finding ----------------------------------------------------------------------

    def find(self, tgid: int, ts_ns: int) -> Proc | None:
        """The incarnation of tgid that was running at ts_ns, if known."""
        p = self.live.get(tgid)
        if p is None:
            return None
        limit = ts_ns + self.tolerance_ns
        if p.start_ns <= limit:
            return p
        for q in reversed(self.older.get(tgid, ())):
            if q.start_ns <= limit:
                return q
        return None

    def _same(self, p: Proc, rec: ProcessRecord) -> bool:
        """Whether /proc's process is the incarnation p (start within one tick)."""
        s = self.start_ns_of(rec.start_ticks)
        return abs(s - p.start_ns) <= self.tick_ns + self.tolerance_ns

    def lookup(self, tgid: int, ts_ns: int, ppid: int = 0, comm: str = "") -> Proc:
        """The process of an event: from the tree, else /proc, else a ghost made
        from the event's own data (reported exited). Never raises."""
        p = self.find(tgid, ts_ns)
        if p is not None:
            if (ppid and p.ppid != ppid and not p.ghost) or ts_ns > p.exit_ns:
                p = self._revalidate(p, ts_ns, ppid, comm)
            self.stats.hits += 1
            self.lru.move_to_end(p)
            return p
        self.stats.misses += 1
        rec = self.source.process(tgid)
        if rec is not None:
            q = self._from_record(rec)
            if q.start_ns <= ts_ns + self.tolerance_ns:
                return self._add(q)
            self._add(q)  # /proc has the successor: keep it, the event's is gone
        return self._ghost(tgid, ts_ns, ppid, comm)

    def _ghost(
        self, tgid: int, ts_ns: int, ppid: int, comm: str, start: int | None = None
    ) -> Proc:
        self.stats.ghosts += 1
        if start is None:
            cur = self.live.get(tgid)
            # start unknown: just before the event (and before any successor)
            start = ts_ns if cur is None else min(ts_ns, cur.start_ns - 1)
        g = Proc(tgid, start, ppid, comm, None, None, ghost=True)
        g.exited_at = ts_ns
        g.exit_ns = ts_ns + RECHECK_NS
        self._add(g)
        self._queue_exit(g, ts_ns)
        return g

    def _revalidate(self, p: Proc, ts_ns: int, ppid: int, comm: str = "") -> Proc:
        """The event disagrees with the tree: its ppid differs (reparented, or the
        pid was reused unseen: no process events), or it comes after the exit
        (a reused pid whose fork we did not see, or threads outliving a leader
        that called pthread_exit). /proc decides; when /proc no longer has it,
        a ppid that differs after the exit means another process (a ghost)."""
        self.stats.revalidations += 1
        rec = self.source.process(p.tgid)
        if rec is not None:
            q = self._from_record(rec)
            if not p.ghost and self._same(p, rec):
                if p.exited:  # its threads live on: not exited after all
                    p.exited = False
                    p.exited_at = p.exit_ns = NEVER
                    p._fields = None
            elif q.start_ns <= ts_ns + self.tolerance_ns and (
                p.ghost or q.start_ns > p.start_ns
            ):
                if p.ghost:
                    self._forget(p)  # its start was a guess: the real one replaces it
                return self._add(q)
        if p.exited:
            if ppid and ppid != p.ppid and ts_ns > p.exited_at and not p.ghost:
                return self._ghost(p.tgid, ts_ns, ppid, comm, start=p.exited_at + 1)
            p.exit_ns = max(p.exit_ns, ts_ns + RECHECK_NS)  # re-check every 100 ms
            return p
        if ppid and p.ppid != ppid:  # reparented
            p.ppid = ppid
            p._fields = None
            if p.ancestor:
                self.gen += 1
        return p

    def _exec_target(self, ts_ns: int, tgid: int, ppid: int, comm: str) -> Proc:
        """The process an exec event is about. After the exit of the one we know
        (or when we only know a ghost), it is a process whose fork we did not
        see (the tracer's own forks are filtered in the kernel; lost events):
        from /proc if it still shows it, else from the event itself, alive
        (its exit event follows in the stream)."""
        old = self.find(tgid, ts_ns)
        if old is not None and not old.ghost and ts_ns <= old.exited_at:
            return self.lookup(tgid, ts_ns, ppid, comm)
        self.stats.misses += 1
        rec = self.source.process(tgid)
        if (
            old is not None
            and not old.ghost
            and rec is not None
            and self._same(old, rec)
        ):
            old.exited = False  # a thread of a leader gone by pthread_exit
            old.exited_at = old.exit_ns = NEVER
            return old
        lo = ts_ns  # the earliest it can have started
        if old is not None:
            lo = old.start_ns if old.ghost else old.exited_at + 1
        q = None
        if rec is not None:
            q = self._from_record(rec)
            if not (
                lo - self.tick_ns - self.tolerance_ns
                <= q.start_ns
                <= ts_ns + self.tolerance_ns
            ):
                q = None  # /proc shows yet another process
        if q is None:
            q = Proc(tgid, lo, ppid, comm, None, None)
        if old is not None and old.ghost:
            self._forget(old)
        return self._add(q)

    # -- process events ---------------------------------------------------------------

    def apply(self, ev: Mapping[str, Any]) -> None:
        """Feed one event dict of kind exec, fork or exit (others are ignored)."""
        kind = ev.get("kind")
        if kind not in PROC_KINDS:
            return
        obj = ev.get("object") or {}
        ts = int(ev["ts_ns"])
        tgid = int(ev["tgid"])
        if kind == "fork":
            self.on_fork(
                ts,
                tgid,
                int(obj.get("child_pid", 0)),
                str(ev.get("comm", "")),
                int(ev.get("ppid", 0)),
            )
        elif kind == "exec":
            self.on_exec(
                ts,
                tgid,
                int(ev.get("ppid", 0)),
                str(ev.get("comm", "")),
                obj.get("filename"),
                obj.get("argv"),
                bool(obj.get("argv_truncated")),
            )
        else:
            self.on_exit(ts, tgid, int(obj.get("exit_code", 0)))
        self.expire(ts)

    def on_fork(
        self, ts_ns: int, parent: int, child: int, comm: str, grandparent: int = 0
    ) -> None:
        if child <= 0 or child == parent:
            return
        if self.source.is_thread(parent, child):
            self.stats.threads_skipped += 1
            return
        self.stats.forks += 1
        par = self.lookup(parent, ts_ns, grandparent, comm)
        cur = self.live.get(child)
        if (
            cur is not None
            and not cur.ghost
            and abs(cur.start_ns - ts_ns) <= (self.tick_ns + self.tolerance_ns)
        ):
            # the child was already learned from /proc (events out of order)
            cur.ppid = parent
            return
        p = Proc(child, ts_ns, parent, comm, par.exe, par.cmdline)
        p.stale = par.stale
        p.attr = par.attr
        self._add(p)

    def on_exec(
        self,
        ts_ns: int,
        tgid: int,
        ppid: int,
        comm: str,
        filename: object,
        argv: object = None,
        argv_truncated: bool = False,
    ) -> None:
        """The kernel's exec event: the executable's path (as /proc/<pid>/exe
        shows it) and the head of argv come with it, so the process is known
        even when it is gone before its first event is enriched. An event
        without argv (older recordings), or whose argv was cut, has the rest
        read from /proc at the first event that needs it, if still there."""
        self.stats.execs += 1
        p = self._exec_target(ts_ns, tgid, ppid, comm)
        p.comm = comm or p.comm
        fn = filename if isinstance(filename, str) and filename else None
        p.exe = fn if fn is not None and fn.startswith("/") else None
        args = [str(a) for a in argv] if isinstance(argv, list) else None
        p.cmdline = bound_cmdline(args)
        if argv_truncated and p.cmdline and not p.cmdline.endswith("..."):
            p.cmdline = p.cmdline[: CMDLINE_MAX - 3] + "..."
        complete = args is not None and not argv_truncated and p.exe is not None
        p.stale = not p.exited and not complete
        p.node = {"pid": p.tgid, "comm": p.comm, "exe": p.exe}
        p._fields = None
        if p.ancestor:
            self.gen += 1

    def on_exit(self, ts_ns: int, tgid: int, exit_code: int) -> None:
        self.stats.exits += 1
        p = self.find(tgid, ts_ns)
        if p is None or p.exited:
            return
        p.exited = True
        p.exit_code = exit_code
        p.exited_at = p.exit_ns = ts_ns
        p.stale = False
        p._fields = None
        self._queue_exit(p, ts_ns)

    # -- reading ------------------------------------------------------------------------

    def refresh(self, p: Proc) -> None:
        """Re-read exe/cmdline after an exec (once, at the first event needing it)."""
        p.stale = False
        rec = self.source.process(p.tgid)
        self.stats.refreshes += 1
        if rec is None or not self._same(p, rec):
            return  # gone, or /proc shows another process with this pid
        p.exe = rec.exe or p.exe
        p.cmdline = bound_cmdline(rec.cmdline) or p.cmdline
        p.node = {"pid": p.tgid, "comm": p.comm, "exe": p.exe}
        if p.ancestor:
            self.gen += 1

    def rename(self, p: Proc, comm: str) -> None:
        """The process changed its name (prctl PR_SET_NAME, or comm written):
        seen in an event of its main thread."""
        p.comm = comm
        p.node = {"pid": p.tgid, "comm": comm, "exe": p.exe}
        if p.ancestor:
            self.gen += 1

    def parent_of(self, p: Proc) -> Proc | None:
        if p.ppid <= 0 or p.ppid == p.tgid:
            return None
        # the parent started before the child
        q = self.find(p.ppid, p.start_ns)
        if q is not None:
            return q
        self.stats.misses += 1
        rec = self.source.process(p.ppid)
        if rec is not None:
            q = self._from_record(rec)
            if q.start_ns <= p.start_ns + self.tolerance_ns:
                return self._add(q)
        return None

    def ancestors(self, p: Proc) -> list[dict[str, Any]]:
        """[{pid, comm, exe}], parent first, up to pid 1 (or as far as known).
        An unknown parent ends the list with {pid, comm: None, exe: None}."""
        out: list[dict[str, Any]] = []
        cur = p
        seen = {p.tgid}
        while len(out) < ANCESTORS_MAX:
            ppid = cur.ppid
            if ppid <= 0 or ppid in seen:
                break
            q = self.parent_of(cur)
            if q is None:
                out.append({"pid": ppid, "comm": None, "exe": None})
                break
            if q.stale:
                self.refresh(q)
            q.ancestor = True
            out.append(q.node)
            seen.add(ppid)
            cur = q
        return out


# -- enrichment -------------------------------------------------------------------------


def _user_name(uid: int) -> str | None:
    try:
        return pwd.getpwuid(uid).pw_name
    except (KeyError, OverflowError):
        return None


def _group_name(gid: int) -> str | None:
    try:
        return grp.getgrgid(gid).gr_name
    except (KeyError, OverflowError):
        return None


@dataclass
class _NameCache:
    lookup: Callable[[int], str | None]
    cache: dict[int, str | None] = field(default_factory=dict)
    limit: int = 4096

    def __call__(self, n: int) -> str | None:
        try:
            return self.cache[n]
        except KeyError:
            pass
        if len(self.cache) >= self.limit:
            self.cache.clear()
        name = self.cache[n] = self.lookup(n)
        return name


class Enricher:
    """Adds exe, cmdline, user, group, ancestors, container, unit, exited.

    Feed every event, process events included, in order: `enrich(d)` applies
    exec/fork/exit to the tree and adds the fields to d (in place; returns d).
    The `ancestors` list and its dicts are shared between events: read-only."""

    def __init__(
        self,
        tree: ProcessTree | None = None,
        cgroups: CgroupMap | None = None,
        user_name: Callable[[int], str | None] = _user_name,
        group_name: Callable[[int], str | None] = _group_name,
        negative_ttl_ns: int = 1_000_000_000,
    ) -> None:
        self.tree = tree if tree is not None else ProcessTree()
        self.cgroups = cgroups if cgroups is not None else CgroupMap()
        self.user = _NameCache(user_name)
        self.group = _NameCache(group_name)
        self._attr: dict[int, Attribution] = {}
        self._unknown: dict[int, int] = {}  # cgroup id -> retry after (ts_ns)
        self.negative_ttl_ns = negative_ttl_ns

    @classmethod
    def live(cls, max_processes: int = 32768, proc: Path = Path("/proc")) -> Enricher:
        """An enricher of this host: psutil walk of /proc now, cgroup v2 map."""
        cg = CgroupMap(proc=proc)
        tree = ProcessTree(
            PsutilSource(proc, read_cgroup=cg.hybrid), max_processes=max_processes
        )
        tree.load()
        return cls(tree, cg)

    def attribution(
        self, cgroup_id: int, tgid: int, ts_ns: int, ppid: int = 0
    ) -> Attribution | None:
        a = self._attr.get(cgroup_id)
        if a is not None:
            return a
        retry = self._unknown.get(cgroup_id)
        if retry is not None and ts_ns < retry:
            return None
        path = self.cgroups.path_of(cgroup_id, tgid, ppid)
        if path is None:
            if len(self._unknown) > 4096:
                self._unknown.clear()
            self._unknown[cgroup_id] = ts_ns + self.negative_ttl_ns
            return None
        self._unknown.pop(cgroup_id, None)
        a = self._attr[cgroup_id] = attribute(path)
        return a

    def fields(self, ev: Mapping[str, Any]) -> dict[str, Any]:
        """The added fields of one event dict (docs/events.md form)."""
        tree = self.tree
        ts = ev["ts_ns"]
        tgid = ev["tgid"]
        p = tree.live.get(tgid)
        if (
            p is None
            or p.start_ns > ts + tree.tolerance_ns
            or (p.ppid != ev["ppid"] and not p.ghost)
            or ts > p.exit_ns
        ):
            p = tree.lookup(tgid, ts, ev["ppid"], ev["comm"])
        else:
            tree.stats.hits += 1
            tree.lru.move_to_end(p)
        if ev["pid"] == tgid and ev["comm"] != p.comm and not p.exited:
            tree.rename(p, ev["comm"])  # the main thread's comm is the process's
        base = p._fields
        if base is None or p._gen != tree.gen:
            base = self._process_fields(p)
        # The same incarnation, ids and cgroup as an event before, with the
        # process fields unchanged: the same added fields (most events).
        key = (ev["uid"], ev["gid"], ev["cgroup"])
        added = p._added
        if added is not None and added[0] is base:
            out = added[1].get(key)
            if out is not None:
                if tree._exitq and tree._exitq[0][0] <= ts:
                    tree.expire(ts)
                return out
        out = dict(base)
        out["user"] = self.user(ev["uid"])
        out["group"] = self.group(ev["gid"])
        cg = ev["cgroup"]
        a = self._attr.get(cg)
        if a is None:
            a = self.attribution(cg, tgid, ts, ev.get("ppid") or 0)
        if (
            a is None or (a.path == "/" and self.cgroups.hybrid)
        ) and p.attr is not None:
            a = p.attr  # v1/hybrid host: the process's own /proc/<pid>/cgroup
        if a is None:
            out["container"] = None
            out["unit"] = None
        else:
            out["container"] = a.container.to_dict() if a.container else None
            out["unit"] = a.unit
            # cacheable: an unknown cgroup (a is None) is looked up again later
            if added is None or added[0] is not base:
                added = p._added = (base, {})
            if len(added[1]) < 64:
                added[1][key] = out
        if tree._exitq and tree._exitq[0][0] <= ts:
            tree.expire(ts)
        return out

    def _process_fields(self, p: Proc) -> dict[str, Any]:
        tree = self.tree
        if p.stale:
            tree.refresh(p)
        gen = tree.gen
        base = {
            "exe": p.exe,
            "cmdline": p.cmdline,
            "ancestors": tree.ancestors(p),
            "exited": p.exited,
        }
        if tree.gen == gen:  # computing it did not invalidate anything
            p._fields = base
            p._gen = gen
        return base

    def enrich(self, ev: dict[str, Any]) -> dict[str, Any]:
        """Apply a process event to the tree, then add the fields; returns ev.
        The added values are shared between events (read-only)."""
        if ev.get("kind") in PROC_KINDS:
            self.tree.apply(ev)
        ev.update(self.fields(ev))
        return ev


# -- --tree output ------------------------------------------------------------------


def _proc_label(pid: object, comm: object, exe: object) -> str:
    from lsmtrace.output import escape

    c = escape(str(comm)) if comm is not None else "?"
    s = f"{c}[{pid}]"
    if exe:
        s += " " + escape(str(exe))
    return s


def format_tree(d: Mapping[str, Any], width: int = 80) -> list[str]:
    """An (enriched) event as lines for `trace --tree`, each fitting `width`:

        18:15:58 19717   cat             sys_openat      EACCES:?          /etc/x
          process cat[19717]  user nobody(65534)  group nogroup(65534)
          exe     /usr/bin/cat
          cmdline cat /etc/x
          in      docker 3f2a1b9c4d5e
          <- bash[19700] /usr/bin/bash
          <- sshd[1234] /usr/sbin/sshd
          <- systemd[1] /usr/lib/systemd/systemd

    "in" is "host" or "<runtime> <short id> [pod <uid>]"; exe, cmdline and unit
    lines only when known (no unit line when it is the container's own scope,
    e.g. docker-<id>.scope); one "<-" line per ancestor, parent first. Every name
    is escaped (lsmtrace.output.escape); cuts are marked "~" (paths keep their
    end). width <= 0: no limit.
    """
    from lsmtrace.output import columns_text, escape, fit, keeps_end, object_summary

    def cut(s: str, keep_end: bool = False) -> str:
        return s if width <= 0 else fit(s, width, keep_end=keep_end)

    def labeled(label: str, value: str, keep_end: bool = False) -> str:
        """ "  label   value", the value cut to what the width leaves."""
        head = f"  {label:<8}"
        if width <= 0:
            return head + value
        return head + fit(value, max(1, width - len(head)), keep_end=keep_end)

    head = columns_text(d)
    o = d.get("object")
    if not isinstance(o, Mapping):
        o = {}
    obj = object_summary(o)
    lines: list[str] = []
    if width > 0 and len(head) + 1 < width:
        lines.append(
            head + " " + fit(obj, width - len(head) - 1, keep_end=keeps_end(o))
        )
    else:
        lines.append(cut(head + " " + obj))

    who = "  process " + _proc_label(d.get("tgid"), d.get("comm"), None)
    for key, idkey in (("user", "uid"), ("group", "gid")):
        name = d.get(key)
        ident = d.get(idkey)
        who += f"  {key} " + (f"{escape(str(name))}({ident})" if name else str(ident))
    if d.get("exited"):
        who += "  (exited)"
    lines.append(cut(who))
    if d.get("exe"):
        lines.append(labeled("exe", escape(str(d["exe"])), keep_end=True))
    if d.get("cmdline"):
        lines.append(labeled("cmdline", escape(str(d["cmdline"]))))
    c = d.get("container")
    where = "  in      "
    if isinstance(c, Mapping):
        cid = str(c.get("id", ""))
        short = cid[:12] if len(cid) == 64 else cid
        where += f"{escape(str(c.get('runtime')))} {escape(short)}"
        if c.get("pod_uid"):
            where += f" pod {escape(str(c['pod_uid']))}"
    else:
        where += "host"
    lines.append(cut(where))
    unit = d.get("unit")
    own = str(c.get("id")) if isinstance(c, Mapping) else None
    if unit and not (own and own in str(unit)):  # not the container's own scope
        lines.append(labeled("unit", escape(str(unit))))
    for a in d.get("ancestors") or ():
        lines.append(
            cut(
                "  <- " + _proc_label(a.get("pid"), a.get("comm"), a.get("exe")),
                keep_end=False,
            )
        )
    return lines
