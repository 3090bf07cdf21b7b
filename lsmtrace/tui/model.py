"""The TUI's data model, pure (no textual): history, filters, statistics, tree.

Everything works on the JSON event dicts of docs/events.md, the common currency
of live sessions and recordings. Memory is bounded everywhere: the history is a
ring of ``history`` events, the filtered view holds sequence numbers of events
still in the ring, statistics keep a fixed window of one-second buckets and a
bounded table of processes.
"""

from __future__ import annotations

import fnmatch
import itertools
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from lsmtrace.output import escape, result_text, time_text
from lsmtrace.output import object_summary as _object_summary

EventDict = dict[str, Any]

DEFAULT_HISTORY = 50_000


# -- formatting ----------------------------------------------------------------


def object_summary(ev: Mapping[str, Any]) -> str:
    obj = ev.get("object") or {}
    if not isinstance(obj, Mapping):
        return escape(str(obj))
    try:
        return _object_summary(obj)
    except (KeyError, TypeError, ValueError):
        return escape(str(dict(obj)))


def label(value: Any) -> str:
    """A container/unit/ancestor value as short text, whatever its shape."""
    if value is None:
        return ""
    if isinstance(value, Mapping):
        for key in ("name", "unit", "id", "comm"):
            if value.get(key):
                text = str(value[key])
                if key == "id" and len(text) > 12:
                    text = text[:12]
                return escape(text)
        return escape(",".join(f"{k}={v}" for k, v in value.items()))
    return escape(str(value))


def where(ev: Mapping[str, Any]) -> str:
    """Container, else systemd unit, else ''."""
    return label(ev.get("container")) or label(ev.get("unit"))


def program_text(ev: Mapping[str, Any]) -> str:
    """The program of an event: its exe (escaped), else its comm."""
    exe = ev.get("exe")
    if exe:
        return escape(str(exe))
    return escape(str(ev.get("comm", "?")))


def proc_text(ev: Mapping[str, Any]) -> str:
    return f"{escape(str(ev.get('comm', '?')))}[{ev.get('tgid', ev.get('pid', '?'))}]"


def ancestor_text(a: Any) -> str:
    if isinstance(a, Mapping):
        comm = a.get("comm") or a.get("name") or a.get("exe") or "?"
        pid = a.get("tgid", a.get("pid"))
        return f"{escape(str(comm))}[{pid}]" if pid is not None else escape(str(comm))
    return escape(str(a))


def ancestors_root_first(ev: Mapping[str, Any]) -> list[Any]:
    """`ancestors` ordered from the oldest ancestor down to the parent.

    The process-tree work may list them parent-first (walking ppid) or
    root-first; a list that starts with pid 1 is taken as root-first."""
    anc = ev.get("ancestors")
    if not isinstance(anc, list) or not anc:
        return []

    def pid(a: Any) -> Any:
        return a.get("tgid", a.get("pid")) if isinstance(a, Mapping) else None

    if pid(anc[0]) == 1 and pid(anc[-1]) != 1:
        return list(anc)
    return list(reversed(anc))


# -- filters -------------------------------------------------------------------

FILTER_KEYS = (
    "hook",
    "family",
    "verdict",
    "lsm",
    "errno",
    "pid",
    "uid",
    "comm",
    "container",
    "unit",
    "path",
    "text",
    "would_deny",
)
KEY_ALIASES = {
    "ctr": "container",
    "c": "comm",
    "h": "hook",
    "v": "verdict",
    "p": "pid",
    "f": "family",
    "obj": "path",
    "object": "path",
    "wd": "would_deny",
    "would-deny": "would_deny",
}
YES_NO = {
    "yes": "yes",
    "y": "yes",
    "true": "yes",
    "1": "yes",
    "no": "no",
    "n": "no",
    "false": "no",
    "0": "no",
}
VERDICT_ALIASES = {
    "denied": "deny",
    "d": "deny",
    "allowed": "allow",
    "a": "allow",
    "ok": "allow",
    "err": "error",
    "failed": "error",
    "e": "error",
}


@dataclass(frozen=True)
class Term:
    key: str
    value: str
    negate: bool = False


def _path_text(ev: Mapping[str, Any]) -> str:
    obj = ev.get("object") or {}
    if not isinstance(obj, Mapping):
        return str(obj)
    parts = [str(obj[k]) for k in ("path", "path2", "source", "filename") if obj.get(k)]
    return "\n".join(parts)


def _value(ev: Mapping[str, Any], key: str) -> str:
    if key == "container":
        return where(ev) if ev.get("container") is None else label(ev.get("container"))
    if key == "unit":
        return label(ev.get("unit"))
    v = ev.get(key)
    return "" if v is None else str(v)


@dataclass(frozen=True)
class Filter:
    """A conjunction of keys; several values of one key are alternatives.

    Query syntax (the filter bar): ``key:value`` with key one of FILTER_KEYS
    (hook, family, verdict, lsm, errno, pid, uid, comm, container, unit, path,
    text), ``-key:value`` to exclude, and bare words as path substrings.
    hook/comm/family take globs (``hook:sys_*``); container, unit, path and text
    are substrings (text: the whole row); ``lsm:none`` matches "cannot tell";
    ``would_deny:yes`` (``wd:yes``) the decisions the candidate policy
    (--policy) would deny, ``would_deny:no`` the others.
    """

    terms: tuple[Term, ...] = ()
    denied_only: bool = False
    would_deny_only: bool = False

    @classmethod
    def parse(
        cls, text: str, denied_only: bool = False, would_deny_only: bool = False
    ) -> Filter:
        terms: list[Term] = []
        for word in text.split():
            negate = word.startswith("-") and len(word) > 1
            if negate:
                word = word[1:]
            key, sep, value = word.partition(":")
            if not sep:
                key, value = "path", word
            key = KEY_ALIASES.get(key.lower(), key.lower())
            if key not in FILTER_KEYS:
                raise ValueError(
                    f"unknown filter key {key!r} (keys: {', '.join(FILTER_KEYS)})"
                )
            if not value:
                raise ValueError(f"{key}: needs a value")
            if key == "verdict":
                value = VERDICT_ALIASES.get(value.lower(), value.lower())
                if value not in ("allow", "deny", "error"):
                    raise ValueError("verdict: allow, deny or error")
            if key in ("pid", "uid") and not value.isdigit():
                raise ValueError(f"{key}: a number")
            if key == "would_deny":
                if value.lower() not in YES_NO:
                    raise ValueError("would_deny: yes or no")
                value = YES_NO[value.lower()]
            terms.append(Term(key, value, negate))
        return cls(tuple(terms), denied_only, would_deny_only)

    def describe(self) -> str:
        parts = [("-" if t.negate else "") + f"{t.key}:{t.value}" for t in self.terms]
        if self.would_deny_only:
            parts.insert(0, "would-deny")
        if self.denied_only:
            parts.insert(0, "denied")
        return " ".join(parts) if parts else "none"

    @property
    def active(self) -> bool:
        return bool(self.terms) or self.denied_only or self.would_deny_only

    def matches(self, ev: Mapping[str, Any]) -> bool:
        if self.denied_only and ev.get("verdict") != "deny":
            return False
        if self.would_deny_only and "would_deny" not in ev:
            return False
        if not self.terms:
            return True
        groups: dict[str, bool] = {}
        for t in self.terms:
            hit = _term_hit(t, ev)
            if t.negate:
                if hit:
                    return False
                continue
            groups[t.key] = groups.get(t.key, False) or hit
        return all(groups.values())


def _term_hit(t: Term, ev: Mapping[str, Any]) -> bool:
    k, v = t.key, t.value
    if k == "pid":
        return str(ev.get("tgid")) == v or str(ev.get("pid")) == v
    if k == "path":
        return v in _path_text(ev)
    if k == "text":
        return v.lower() in row_text(ev).lower()
    if k == "would_deny":
        return ("would_deny" in ev) == (v == "yes")
    if k == "lsm":
        got = ev.get("lsm")
        if v.lower() in ("none", "null", "?"):
            return got is None
        return str(got) == v.lower()
    if k in ("container", "unit"):
        return v.lower() in _value(ev, k).lower()
    got = _value(ev, k)
    if k == "errno":
        return got.upper() == v.upper()
    if any(c in v for c in "*?["):
        return fnmatch.fnmatchcase(got, v)
    return got == v


def row_text(ev: Mapping[str, Any]) -> str:
    """Everything a row shows, for search."""
    return " ".join(
        (
            time_text(ev),
            str(ev.get("tgid")),
            str(ev.get("comm")),
            str(ev.get("hook")),
            result_text(ev),
            where(ev),
            object_summary(ev),
        )
    )


# -- history -------------------------------------------------------------------


class EventStore:
    """A ring of the last ``history`` events and the filtered view of it.

    Events are numbered by a sequence that only grows; ``view`` is the list of
    sequence numbers that match the filter, oldest first. Evicting an event
    from the ring drops it from the view, so memory is bounded by ``history``.
    """

    def __init__(self, history: int = DEFAULT_HISTORY) -> None:
        if history <= 0:
            raise ValueError("history must be positive")
        self.history = history
        self._ring: list[EventDict | None] = [None] * history
        self.next_seq = 0
        self.filter = Filter()
        self._view: list[int] = []
        self._view_start = 0  # first live index of _view (amortized popleft)

    @property
    def first_seq(self) -> int:
        return max(0, self.next_seq - self.history)

    def __len__(self) -> int:
        """Events held (≤ history)."""
        return self.next_seq - self.first_seq

    def get(self, seq: int) -> EventDict | None:
        if self.first_seq <= seq < self.next_seq:
            return self._ring[seq % self.history]
        return None

    def add(self, events: Iterable[EventDict]) -> tuple[int, int]:
        """Append events; returns (entered the view, evicted from the view)."""
        added = 0
        flt = self.filter
        view = self._view
        for ev in events:
            seq = self.next_seq
            self._ring[seq % self.history] = ev
            self.next_seq = seq + 1
            if flt.matches(ev):
                view.append(seq)
                added += 1
        before = self.view_len
        self._evict()
        return added, before - self.view_len

    def _evict(self) -> None:
        first = self.first_seq
        view, i = self._view, self._view_start
        n = len(view)
        while i < n and view[i] < first:
            i += 1
        if i > 4096 and i > (n - i):
            del view[:i]
            i = 0
        self._view_start = i

    def set_filter(self, flt: Filter) -> None:
        self.filter = flt
        ring, h = self._ring, self.history
        out = []
        for seq in range(self.first_seq, self.next_seq):
            ev = ring[seq % h]
            if ev is not None and flt.matches(ev):
                out.append(seq)
        self._view = out
        self._view_start = 0

    def clear(self) -> None:
        self._ring = [None] * self.history
        self.next_seq = 0
        self._view = []
        self._view_start = 0

    # the filtered view, indexable
    @property
    def view_len(self) -> int:
        return len(self._view) - self._view_start

    def view_seq(self, index: int) -> int:
        return self._view[self._view_start + index]

    def view_event(self, index: int) -> EventDict | None:
        if 0 <= index < self.view_len:
            return self.get(self.view_seq(index))
        return None

    def view_index(self, seq: int) -> int | None:
        """Index in the view of a sequence number (binary search), or None."""
        import bisect

        i = bisect.bisect_left(self._view, seq, self._view_start)
        if i < len(self._view) and self._view[i] == seq:
            return i - self._view_start
        return None

    def nearest_view_index(self, seq: int) -> int:
        import bisect

        i = bisect.bisect_left(self._view, seq, self._view_start) - self._view_start
        return max(0, min(i, self.view_len - 1))

    def search(self, text: str, start: int, forward: bool = True) -> int | None:
        """The next view index after/before `start` whose row contains text."""
        n = self.view_len
        if not text or n == 0:
            return None
        needle = text.lower()
        step = 1 if forward else -1
        i = start
        for _ in range(n):
            i = (i + step) % n
            ev = self.view_event(i)
            if ev is not None and needle in row_text(ev).lower():
                return i
        return None


# -- statistics ----------------------------------------------------------------

NS = 1_000_000_000


@dataclass
class Counters:
    total: int = 0
    deny: int = 0
    allow: int = 0
    error: int = 0
    would_deny: int = 0  # decisions the candidate policy (--policy) would deny
    lost: int = 0  # lost in the kernel (ring buffer full), from the source
    dropped: int = 0  # dropped in user space because the UI fell behind


class Stats:
    """Totals, per-second series and the denial tables, over event time.

    Buckets are seconds of the events' own ``ts_ns`` (kernel monotonic time),
    so a replay shows the recording's rates, deterministically. ``now_ns`` is
    passed in (live: time.monotonic_ns(), the same clock as bpf_ktime_get_ns;
    replay: the newest event's ts_ns)."""

    def __init__(self, window: int = 60, max_procs: int = 10_000) -> None:
        self.window = window
        self.max_procs = max_procs
        self.counters = Counters()
        self._reset()

    def _reset(self) -> None:
        self.hook_totals: Counter[str] = Counter()
        self._series: dict[str, dict[int, int]] = {}  # key -> {second: count}
        self.deny_by_proc: Counter[tuple[int, str]] = Counter()
        # what someone hunting a noisy denial groups by: the program (exe, or
        # comm when unknown) and the object (hook + object summary)
        self.deny_by_program: Counter[str] = Counter()
        self.deny_by_object: Counter[str] = Counter()
        self.deny_by_where: Counter[str] = Counter()
        self.deny_by_hook: Counter[str] = Counter()
        # tgid -> (ppid, comm); the newest processes kept (bounded)
        self.procs: dict[int, tuple[int, str]] = {}
        self.ancestry: dict[int, list[Any]] = {}  # denied tgid -> ancestors, root first
        self.latest_ns = 0

    def _bump(self, key: str, sec: int) -> None:
        s = self._series.get(key)
        if s is None:
            s = self._series[key] = {}
        s[sec] = s.get(sec, 0) + 1

    def add(self, events: Iterable[Mapping[str, Any]]) -> None:
        c = self.counters
        procs = self.procs
        for ev in events:
            ts = int(ev.get("ts_ns") or 0)
            if ts > self.latest_ns:
                self.latest_ns = ts
            sec = ts // NS
            verdict = ev.get("verdict")
            hook = str(ev.get("hook"))
            c.total += 1
            if "would_deny" in ev:
                c.would_deny += 1
            self.hook_totals[hook] += 1
            self._bump("*", sec)
            self._bump("hook:" + hook, sec)
            tgid = int(ev.get("tgid") or 0)
            procs[tgid] = (int(ev.get("ppid") or 0), str(ev.get("comm", "?")))
            if verdict == "deny":
                c.deny += 1
                self._bump("deny", sec)
                self.deny_by_proc[(tgid, str(ev.get("comm", "?")))] += 1
                self.deny_by_program[program_text(ev)] += 1
                self.deny_by_object[f"{hook} {object_summary(ev)}"] += 1
                self.deny_by_hook[hook] += 1
                w = where(ev)
                if w:
                    self.deny_by_where[w] += 1
                anc = ancestors_root_first(ev)
                if anc:
                    self.ancestry[tgid] = anc
            elif verdict == "allow":
                c.allow += 1
            else:
                c.error += 1
        for table in (self.deny_by_program, self.deny_by_object, self.deny_by_where):
            if len(table) > self.max_procs:  # bounded: keep the frequent half
                keep = table.most_common(self.max_procs // 2)
                table.clear()
                table.update(dict(keep))
        if len(procs) > self.max_procs:
            denied = {t for t, _ in self.deny_by_proc}
            for tgid in list(procs)[: len(procs) - self.max_procs]:
                if tgid not in denied:
                    del procs[tgid]
        self._prune()

    def _prune(self) -> None:
        oldest = self.latest_ns // NS - self.window
        for key in list(self._series):
            s = self._series[key]
            for sec in [k for k in s if k <= oldest]:
                del s[sec]
            if not s and key != "*":
                del self._series[key]

    def series(self, key: str, now_ns: int, width: int | None = None) -> list[int]:
        """Counts per second, oldest first, ending at now_ns's second."""
        width = width or self.window
        s = self._series.get(key, {})
        end = now_ns // NS
        return [s.get(sec, 0) for sec in range(end - width + 1, end + 1)]

    def rate(self, key: str, now_ns: int, seconds: int = 5) -> float:
        """Events per second over the last `seconds` (the current one included)."""
        return sum(self.series(key, now_ns, seconds)) / seconds

    def top_hooks(self, now_ns: int, n: int = 10) -> list[tuple[str, float, int]]:
        """(hook, recent rate, total), busiest first (recent rate, then total)."""
        rows = [
            (h, self.rate("hook:" + h, now_ns), total)
            for h, total in self.hook_totals.items()
        ]
        rows.sort(key=lambda r: (-r[1], -r[2], r[0]))
        return rows[:n]

    def clear(self) -> None:
        lost, dropped = self.counters.lost, self.counters.dropped
        self.counters = Counters(lost=lost, dropped=dropped)
        self._reset()


# -- process tree of denials ---------------------------------------------------


@dataclass
class ProcNode:
    pid: int
    comm: str
    denials: int = 0
    children: list[ProcNode] = field(default_factory=list)

    @property
    def text(self) -> str:
        tail = f"  {self.denials} denied" if self.denials else ""
        return f"{escape(self.comm)}[{self.pid}]{tail}"

    def walk(self) -> Iterator[ProcNode]:
        yield self
        for c in self.children:
            yield from c.walk()


def denial_tree(stats: Stats) -> list[ProcNode]:
    """Processes that had denials, under their ancestors (from `ancestors` when
    the events carry it, else the ppid chain of the processes seen)."""
    nodes: dict[int, ProcNode] = {}
    parent: dict[int, int] = {}

    def node(pid: int, comm: str) -> ProcNode:
        n = nodes.get(pid)
        if n is None:
            n = nodes[pid] = ProcNode(pid, comm)
        elif n.comm == "?" and comm != "?":
            n.comm = comm
        return n

    denied: dict[int, tuple[str, int]] = {}
    for (tgid, comm), count in stats.deny_by_proc.items():
        prev = denied.get(tgid)
        denied[tgid] = (comm, count + (prev[1] if prev else 0))
    for tgid, (comm, count) in sorted(denied.items()):
        node(tgid, comm).denials = count
        chain = stats.ancestry.get(tgid)
        if chain:
            pids = []
            for a in chain:
                if isinstance(a, Mapping) and a.get("pid", a.get("tgid")) is not None:
                    pid = int(a.get("tgid", a.get("pid")))
                    node(pid, str(a.get("comm") or a.get("name") or "?"))
                    pids.append(pid)
            pids.append(tgid)
            for up, down in itertools.pairwise(pids):
                if down != up:
                    parent.setdefault(down, up)
            continue
        cur, seen = tgid, {tgid}
        while True:
            ppid = stats.procs.get(cur, (0, "?"))[0]
            if ppid <= 0 or ppid in seen:
                break
            seen.add(ppid)
            parent.setdefault(cur, ppid)
            node(ppid, stats.procs.get(ppid, (0, "?"))[1])
            cur = ppid
    roots = []
    for pid in sorted(nodes):
        above = parent.get(pid)
        if above is not None and above in nodes:
            nodes[above].children.append(nodes[pid])
        else:
            roots.append(nodes[pid])
    return roots
