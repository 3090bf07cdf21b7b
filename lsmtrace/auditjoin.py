"""Attach each audit decision record to the decision event it explains. Pure.

Input: decision events in their documented dict form (docs/events.md), in
stream order, and audit record groups (lsmtrace/audit.py :class:`Grouper`).
Output: the same events, in the same order, where a denial the kernel audited
carries ``event["audit"] = {...}`` (the object of :func:`audit.summarize`) and
every event carries ``lsm_source``:

- ``"hook"``: ``lsm`` is what the rung observed (unchanged);
- ``"audit"``: the rung could not tell (``lsm`` null, ``unattributed``, or
  ``dac`` where a seccomp filter refused the syscall) and the record did;
- null: neither knows.

Where the rung and the record name different LSMs the rung's answer stays and
``audit.disagrees`` is true (counted in ``stats.disagreements``).

Matching. A group with a SYSCALL record names the process (``pid``, the thread
group id), the syscall number and its return value: it joins the oldest
waiting denial of that tgid, syscall and return value within ``window_ns`` of
the record's time, and the hook events of the same thread and syscall just
before it (one syscall, several hook denials on the fexit/kprobe rungs). Without
a SYSCALL record (the task has no audit context, e.g. under the Fedora/RHEL
``-a never,task`` rule, or a seccomp action, logged before syscall entry) an
AVC or SECCOMP record still names the process; a Landlock access record does
not: its domain's ``status=allocated`` record (logged with the domain's first
denial only) gives the pid of the process that created the domain, kept in a
bounded domain -> pid map, and the access record joins a waiting denial of
the same path (exact, or same final component) in the time window, preferring
that pid.

Waiting. A denial that an LSM may have audited (``lsm`` in :data:`WAIT_LSMS`)
waits at most ``max_wait`` seconds for its group; every other event (allowed,
failed with ENOENT..., a capability or Yama denial, process events) needs no
record. Events leave in stream order, so an event behind a waiting denial
waits with it (never longer than ``max_wait``). A group may come before its
event (the ring buffer wakes the reader lazily): it is held ``hold`` seconds.
Floods: at most ``max_events`` events queued and ``max_groups`` groups held;
beyond, the oldest leave early unjoined (``stats.overflow_*``).

Accounting (``stats``), exact at any time:
  events  == passed + joined + events_unmatched + pending_events
  groups  == groups_joined + groups_unmatched + pending_groups
``groups_unmatched``: decision records no event took (the event was filtered
in the kernel, lost, or is an allow the LSM logged as a denial, e.g. SELinux
permissive); ``events_unmatched``: denials whose record never came (DAC
denials have none; audit may have dropped it; Landlock does not log denials
after an exec of the sandboxed program unless asked to).
"""

from __future__ import annotations

import errno
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from lsmtrace import audit

# lsm values that an LSM's audit record may explain (None: the rung cannot tell;
# seccomp: the hook rungs' filter-run program, whose filter may log)
WAIT_LSMS = frozenset(
    {None, "dac", "unattributed", "selinux", "apparmor", "landlock", "seccomp"}
)
_REFINABLE = frozenset({None, "unattributed"})
_DECISION_KINDS = frozenset({"syscall", "hook", "avc"})
_DENY_ERRNOS = frozenset({errno.EPERM, errno.EACCES})
_SCAN = 64  # compatible hook events looked at before giving up on an exit event


@dataclass
class JoinStats:
    events: int = 0
    passed: int = 0  # needed no record
    joined: int = 0  # got an audit object
    events_unmatched: int = 0  # waited, no record came
    overflow_events: int = 0  # of events_unmatched: left early, queue full
    groups: int = 0  # decision groups (denials) received
    groups_joined: int = 0
    groups_unmatched: int = 0
    overflow_groups: int = 0  # of groups_unmatched: dropped, too many held
    groups_ignored: int = 0  # not a denial (BPF, config, allowed decisions...)
    disagreements: int = 0
    domains: int = 0  # Landlock domains learnt from status=allocated records

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


class _Pending:
    __slots__ = (
        "deadline",
        "done",
        "ev",
        "indexed",
        "kind",
        "path",
        "ret",
        "seq",
        "sysname",
        "tgid",
        "tid",
        "wall_ns",
    )

    def __init__(self, ev: dict[str, Any], seq: int) -> None:
        self.ev = ev
        self.seq = seq
        self.done = True
        self.indexed = False  # in _by_tgid (it waited)
        self.deadline = 0.0
        self.tgid = self.tid = self.ret = self.wall_ns = 0
        self.kind = ""
        self.sysname: str | None = None
        self.path: str | None = None


class _Held:
    __slots__ = (
        "audit",
        "closed",
        "deadline",
        "domain",
        "exit",
        "matched",
        "open_key",
        "path",
        "pid",
        "sysname",
        "wall_ns",
    )

    def __init__(self, a: dict[str, Any], sysname: str | None, wall_ns: int) -> None:
        self.audit = a
        self.pid: int | None = a.get("pid")
        self.sysname = sysname
        self.exit: int | None = a.get("exit")
        self.path: str | None = a.get("path")
        self.domain: str | None = (
            a.get("domain") if a.get("lsm") == "landlock" else None
        )
        self.wall_ns = wall_ns
        self.deadline = 0.0
        self.matched = False
        self.closed = False  # a syscall exit event took it: no more events
        self.open_key: tuple[int, str | None] | None = None


def paths_agree(audited: str, traced: str) -> bool:
    """The audit path (absolute, resolved) and the event's path (as the program
    passed it: maybe relative, maybe through a symlink) name the same file."""
    if audited == traced:
        return True
    if not traced.startswith("/"):
        rel = traced[2:] if traced.startswith("./") else traced
        if audited.endswith("/" + rel):
            return True
    return audited.rsplit("/", 1)[-1] == traced.rsplit("/", 1)[-1]


def _verdict(ev: Mapping[str, Any]) -> str:
    v = ev.get("verdict")
    if isinstance(v, str):
        return v
    ret = int(ev.get("ret") or 0)
    if ret >= 0:
        return "allow"
    return "deny" if ev.get("kind") != "syscall" or -ret in _DENY_ERRNOS else "error"


class Joiner:
    def __init__(
        self,
        syscall_names: Mapping[int, str] | None = None,
        wall_offset_ns: int | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        arch: str | None = None,
        max_wait: float = 0.2,
        hold: float = 1.0,
        window_ns: int = 1_000_000_000,
        max_events: int = 65536,
        max_groups: int = 8192,
        max_domains: int = 4096,
    ) -> None:
        from lsmtrace import syscalls

        self.arch = arch or syscalls.machine()
        self.syscall_names = (
            syscall_names
            if syscall_names is not None
            else syscalls.all_names(self.arch)
        )
        if wall_offset_ns is None:
            wall_offset_ns = time.time_ns() - time.monotonic_ns()
        self.wall_offset_ns = wall_offset_ns
        self.clock = clock
        self.max_wait = max_wait
        self.hold = hold
        self.window_ns = window_ns
        self.max_events = max_events
        self.max_groups = max_groups
        self.max_domains = max_domains
        self.stats = JoinStats()
        self._seq = 0
        self._queue: deque[_Pending] = deque()
        # waiting events by process, in stream order; entries that stopped
        # waiting are skipped, and dropped from the left as the queue moves on
        # (a dict with many deletions would make every scan pay for them)
        self._by_tgid: dict[int, deque[_Pending]] = {}
        self._n_waiting = 0
        self._held: OrderedDict[int, _Held] = OrderedDict()  # by group serial
        self._held_by_pid: dict[int | None, dict[int, _Held]] = {}
        self._domains: OrderedDict[str, tuple[int | None, str | None, str | None]] = (
            OrderedDict()
        )

    # -- events ------------------------------------------------------------------

    def add_events(
        self, evs: Iterable[dict[str, Any]], now: float | None = None
    ) -> list[dict[str, Any]]:
        """Queue events; returns those ready (in order). Mutates the dicts."""
        now = self.clock() if now is None else now
        st = self.stats
        for ev in evs:
            st.events += 1
            self._seq += 1
            e = _Pending(ev, self._seq)
            if self._joinable(ev):
                e.done = False
                e.deadline = now + self.max_wait
                e.tgid = int(ev.get("tgid") or 0)
                e.tid = int(ev.get("pid") or 0)
                e.ret = int(ev.get("ret") or 0)
                e.kind = str(ev.get("kind"))
                e.sysname = ev.get("syscall")
                obj = ev.get("object")
                e.path = obj.get("path") if isinstance(obj, Mapping) else None
                e.wall_ns = int(ev.get("ts_ns") or 0) + self.wall_offset_ns
                e.indexed = True
                dq = self._by_tgid.get(e.tgid)
                if dq is None:
                    dq = self._by_tgid[e.tgid] = deque()
                dq.append(e)
                self._n_waiting += 1
                self._match_event(e)
            else:
                st.passed += 1
                _hook_source(ev)
            self._queue.append(e)
        return self._release(now)

    @staticmethod
    def _joinable(ev: Mapping[str, Any]) -> bool:
        return (
            ev.get("kind") in _DECISION_KINDS
            and ev.get("lsm") in WAIT_LSMS
            and _verdict(ev) == "deny"
        )

    def _match_event(self, e: _Pending) -> bool:
        """A new waiting event against the groups already held."""
        for h in self._held_candidates(e.tgid):
            if h.closed:
                continue
            if h.matched and h.open_key != (e.tid, e.sysname):
                continue
            if h.pid is None and not self._pidless_ok(h, e):
                continue
            if self._compatible(h, e):
                self._attach(e, h)
                if not h.matched:
                    h.matched = True
                    h.open_key = (e.tid, e.sysname)
                    self.stats.groups_joined += 1
                if e.kind == "syscall":
                    h.closed = True
                return True
        return False

    # -- groups ------------------------------------------------------------------

    def add_groups(
        self, groups: Iterable[audit.Group], now: float | None = None
    ) -> list[dict[str, Any]]:
        """Take record groups; returns the events now ready (in order)."""
        now = self.clock() if now is None else now
        groups = list(groups)
        for g in groups:  # domains first: a batch may hold an access record and,
            # after it, its domain's first (and only) record with the pid
            dom = g.get(audit.LANDLOCK_DOMAIN)
            if dom is not None:
                self._learn_domain(dom)
        for g in groups:
            a = audit.summarize(g)
            if a is None or a["result"] != "denied":
                self.stats.groups_ignored += 1
                continue
            self.stats.groups += 1
            if a.get("lsm") == "landlock" and "domain_pid" not in a:
                known = self._domains.get(a.get("domain") or "")
                if known is not None:
                    a["domain_pid"], a["domain_exe"], a["domain_comm"] = known
            h = _Held(a, self._sysname(a), g.time_ns)
            h.deadline = now + self.hold
            if self._match_group(h):
                self.stats.groups_joined += 1
            if not h.closed:
                self._hold(g.serial, h)
        return self._release(now)

    def _hold(self, serial: int, h: _Held) -> None:
        self._held[serial] = h
        self._held_by_pid.setdefault(h.pid, {})[serial] = h
        while len(self._held) > self.max_groups:
            old_serial = next(iter(self._held))
            old = self._drop(old_serial)
            if not old.matched:
                self.stats.groups_unmatched += 1
                self.stats.overflow_groups += 1

    def _drop(self, serial: int) -> _Held:
        h = self._held.pop(serial)
        bucket = self._held_by_pid.get(h.pid)
        if bucket is not None:
            bucket.pop(serial, None)
            if not bucket:
                del self._held_by_pid[h.pid]
        return h

    def _held_candidates(self, tgid: int) -> list[_Held]:
        """Held groups of that process, then those that name no process."""
        out = list(self._held_by_pid.get(tgid, {}).values())
        out += self._held_by_pid.get(None, {}).values()
        return out

    def _sysname(self, a: Mapping[str, Any]) -> str | None:
        nr = a.get("syscall")
        if nr is None or a.get("arch") not in (None, self.arch):
            return None  # a compat (32-bit) syscall: numbers differ
        return self.syscall_names.get(nr, f"syscall{nr}")

    def _learn_domain(self, dom: audit.Record) -> None:
        key = dom.get("domain") or ""
        status = dom.get("status")
        if status == "deallocated":  # ids are never reused: forget it
            self._domains.pop(key, None)
            return
        if status != "allocated":
            return
        pid = dom.get("pid")
        info = (
            int(pid) if pid and pid.isdigit() else None,
            dom.get("exe"),
            dom.get("comm"),
        )
        if key not in self._domains:
            self.stats.domains += 1
        self._domains[key] = info
        self._domains.move_to_end(key)
        while len(self._domains) > self.max_domains:
            self._domains.popitem(last=False)
        # an access record of this domain may already wait for its pid
        for h in list(self._held_by_pid.get(None, {}).values()):
            if h.domain == key and "domain_pid" not in h.audit:
                h.audit["domain_pid"], h.audit["domain_exe"], h.audit["domain_comm"] = (
                    info
                )
                if not h.matched and self._match_group(h):
                    self.stats.groups_joined += 1

    def _pidless_ok(self, h: _Held, e: _Pending) -> bool:
        """A pid-less (Landlock, no audit context) record needs the path."""
        return h.path is not None and e.path is not None and paths_agree(h.path, e.path)

    def _compatible(self, h: _Held, e: _Pending) -> bool:
        if abs(h.wall_ns - e.wall_ns) > self.window_ns:
            return False
        if h.pid is not None and h.pid != e.tgid:
            return False
        if h.sysname is not None and e.sysname != h.sysname:
            return False
        if h.exit is not None and e.kind == "syscall" and e.ret != h.exit:
            return False
        return not (h.path and e.path and not paths_agree(h.path, e.path))

    def _match_group(self, h: _Held) -> bool:
        """A new group against the waiting events; attaches and returns True on
        a match.

        The anchor is the oldest compatible syscall exit event; the compatible
        hook events of its thread and syscall before it are the same syscall's.
        Without an exit event among the first ``_SCAN`` compatible ones (only
        hooks traced), the oldest compatible event alone, and later events of
        its thread and syscall through ``open_key``."""
        pidless = h.pid is None
        pool: Iterable[_Pending]
        if h.pid is not None:
            pool = dq = self._by_tgid.get(h.pid, deque())
            while dq and dq[0].done:  # joined, still queued behind a waiting one
                dq.popleft()
        else:
            dpid = h.audit.get("domain_pid")
            mine = list(self._by_tgid.get(dpid, ())) if dpid else []
            pool = mine + [e for e in self._queue if e.tgid != dpid]
        first: _Pending | None = None
        anchor: _Pending | None = None
        hooks: list[_Pending] = []
        seen = 0
        for e in pool:
            if (
                e.done
                or not self._compatible(h, e)
                or (pidless and not self._pidless_ok(h, e))
            ):
                continue
            if e.kind == "syscall":
                anchor = e
                break
            if first is None:
                first = e
            hooks.append(e)
            seen += 1
            if seen >= _SCAN:
                break
        if anchor is not None:
            chosen = [
                e for e in hooks if e.tid == anchor.tid and e.sysname == anchor.sysname
            ]
            chosen.append(anchor)
            h.closed = True
        elif first is not None:
            chosen = [first]
            h.open_key = (first.tid, first.sysname)
        else:
            return False
        for e in chosen:
            self._attach(e, h)
        h.matched = True
        return True

    def _attach(self, e: _Pending, h: _Held) -> None:
        a = dict(h.audit)
        ev = e.ev
        hook_lsm = ev.get("lsm")
        if hook_lsm in _REFINABLE or (hook_lsm == "dac" and a["lsm"] == "seccomp"):
            ev["lsm"] = a["lsm"]
            ev["lsm_source"] = "audit"
        else:
            ev["lsm_source"] = "hook"
            if hook_lsm != a["lsm"]:
                a["disagrees"] = True
                self.stats.disagreements += 1
        ev["audit"] = a
        self.stats.joined += 1
        self._unindex(e)

    def _unindex(self, e: _Pending) -> None:
        """``e`` stops waiting (its deque entry goes when the queue passes it)."""
        e.done = True
        self._n_waiting -= 1

    # -- time --------------------------------------------------------------------

    def flush(self, now: float | None = None) -> list[dict[str, Any]]:
        """Expire what waited too long; returns the events now ready."""
        now = self.clock() if now is None else now
        while self._held:
            serial, h = next(iter(self._held.items()))
            if h.deadline > now:
                break
            self._drop(serial)
            if not h.matched:
                self.stats.groups_unmatched += 1
        return self._release(now)

    def drain(self) -> list[dict[str, Any]]:
        """Everything, now (end of session): unjoined events and groups counted."""
        for h in self._held.values():
            if not h.matched:
                self.stats.groups_unmatched += 1
        self._held.clear()
        self._held_by_pid.clear()
        return self._release(float("inf"))

    def _release(self, now: float) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        q = self._queue
        st = self.stats
        while q:
            e = q[0]
            if not e.done:
                full = len(q) > self.max_events
                if e.deadline > now and not full:
                    break
                if e.deadline > now:
                    st.overflow_events += 1
                st.events_unmatched += 1
                self._unindex(e)
                _hook_source(e.ev)
            q.popleft()
            if e.indexed:  # every older event of its process has left too
                dq = self._by_tgid.get(e.tgid)
                if dq is not None:
                    while dq and dq[0].seq <= e.seq:
                        dq.popleft()
                    if not dq:
                        del self._by_tgid[e.tgid]
            out.append(e.ev)
        return out

    @property
    def pending_events(self) -> int:
        """Events waiting for their record (not those merely queued behind)."""
        return self._n_waiting

    @property
    def queued(self) -> int:
        return len(self._queue)

    @property
    def pending_groups(self) -> int:
        return sum(1 for h in self._held.values() if not h.matched)

    @property
    def next_deadline(self) -> float | None:
        """When flush() next has something to do (for the session's poll timeout).
        After a release the queue's head is a waiting event: the oldest one."""
        times = [self._queue[0].deadline] if self._queue else []
        if self._held:
            times.append(next(iter(self._held.values())).deadline)
        return min(times) if times else None


def _hook_source(ev: dict[str, Any]) -> None:
    if "lsm_source" not in ev:
        ev["lsm_source"] = "hook" if ev.get("lsm") is not None else None
