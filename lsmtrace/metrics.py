"""Prometheus metrics of lsmtrace: a custom collector over kernel-map snapshots. Pure.

The collector knows nothing of HTTP, bcc or threads. It is given a *snapshot
source*, a callable returning a :class:`Snapshot` (the kernel's aggregation maps
read at that moment, the denial table, the tracer's self-counters), and turns
each snapshot into metric families at scrape time. `lsmtrace export`
(lsmtrace/export_cmd.py) supplies a source that reads the live maps under a lock;
unit tests supply fake snapshots.

Counting costs nothing in Python: allowed decisions are counted in the kernel
(`allow_counts`, `deny_counts`, `lat_hist`) and only read when scraped. Denials
are the one thing that reaches Python, as events, because the workload (comm,
later container/unit) is known only there; they are aggregated in a
:class:`DenialTable`, bounded to K series plus `other`.

Metric names and labels are documented in docs/metrics.md.
"""

from __future__ import annotations

import errno as errno_mod
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.samples import Sample

from lsmtrace import abi
from lsmtrace.events import DENY_ERRNOS, Event, IdNames
from lsmtrace.output import escape

PREFIX = "lsmtrace"
OTHER = "other"
UNKNOWN_LSM = "unknown"
QUIET = "quiet"  # the verdict label of refused quiet capability probes
MAX_LABEL_LEN = 128  # a container id is 64 hex digits; a comm 15 bytes

# le of bucket b is 2^(b+1) ns (the kernel's bucket b holds [2^b, 2^(b+1)) ns);
# the last bucket is clamped in the kernel (everything slower), so it is +Inf.
LATENCY_LE = tuple(2.0 ** (b + 1) / 1e9 for b in range(abi.LAT_BUCKETS - 1))


class ProgStat(NamedTuple):
    """One BPF program's counters (kernel.bpf_stats_enabled=1 or BPF_ENABLE_STATS)."""

    run_time_ns: int
    run_cnt: int


@dataclass(frozen=True)
class DenialRow:
    hook: str
    lsm: str
    workload: str
    count: int


@dataclass(frozen=True)
class DenialSnapshot:
    rows: tuple[DenialRow, ...] = ()  # the tracked series and `other` per (hook, lsm)
    folded: int = 0  # denials counted in an `other` series


@dataclass(frozen=True)
class Snapshot:
    """Everything one scrape shows, read at one moment."""

    counts: list[tuple[int, int, int, int]]  # Tracer.counts(): (id, lsm, errno, n)
    latency: Mapping[int, list[int]]  # Tracer.latency_histogram(): id -> buckets
    stats: Mapping[str, int]  # Tracer.stats(): seen, filtered, attempted, lost...
    id_names: IdNames
    rung: str
    attached: int
    skipped: int
    delivered: int = 0
    denials: DenialSnapshot = field(default_factory=DenialSnapshot)
    bpf_stats_enabled: bool = False
    programs: Mapping[str, ProgStat] = field(default_factory=dict)  # name -> stat
    version: str = ""
    read_seconds: float = 0.0  # how long reading the maps took
    # the live audit mode (--policy): its file name, the decisions it would
    # deny (top-K like denials), the decisions checked against it
    policy: str | None = None
    would_deny: DenialSnapshot = field(default_factory=DenialSnapshot)
    policy_checked: int = 0
    # Tracer.quiet_counts(): refused quiet capability probes (CAP_OPT_NOAUDIT),
    # verdict "quiet": they refused nothing, so they are not denials
    quiet: list[tuple[int, int, int, int]] = field(default_factory=list)
    process_events: int = 0  # Session.summary.processes
    # Tracer.lost_counts(): {hook or syscall name: events lost}, "process events"
    lost_by_hook: Mapping[str, int] = field(default_factory=dict)
    quiet_probes: int = 0  # Session.summary.quiet


SnapshotSource = Callable[[], Snapshot]


def label(value: str | None, default: str = "") -> str:
    """A safe label value: printable, lossless escape of odd bytes, bounded length."""
    if value is None:
        return default
    s = escape(value)
    return s if len(s) <= MAX_LABEL_LEN else s[: MAX_LABEL_LEN - 3] + "..."


def verdict_of(id_: int, err: int) -> str:
    """As output.count_rows: a syscall failing with ENOENT... is an error, not a denial."""
    if err == 0:
        return "allow"
    if id_ >= abi.SYSCALL_BASE and err not in DENY_ERRNOS:
        return "error"
    return "deny"


def errno_label(err: int) -> str:
    return errno_mod.errorcode.get(err, f"E{err}") if err else ""


def lsm_label(lsm: int, verdict: str) -> str:
    """Who denied: '' unless denied; 'unknown' when the rung cannot tell."""
    if verdict != "deny":
        return ""
    return abi.lsm_name(lsm) or UNKNOWN_LSM


def cumulative_buckets(buckets: list[int]) -> list[tuple[str, float]]:
    """Kernel log2 buckets -> Prometheus (le, cumulative count) pairs, +Inf last."""
    out: list[tuple[str, float]] = []
    acc = 0
    for b, le in enumerate(LATENCY_LE):
        acc += buckets[b] if b < len(buckets) else 0
        out.append((repr(le), float(acc)))
    acc += sum(buckets[len(LATENCY_LE) :])
    out.append(("+Inf", float(acc)))
    return out


def parse_prog_fdinfo(text: str) -> tuple[int, ProgStat] | None:
    """(prog_id, stats) from /proc/<pid>/fdinfo/<fd> of a BPF program fd, else None."""
    fields: dict[str, int] = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key in ("prog_id", "run_time_ns", "run_cnt"):
            try:
                fields[key] = int(value.strip())
            except ValueError:
                return None
    if "prog_id" not in fields:
        return None
    return fields["prog_id"], ProgStat(
        fields.get("run_time_ns", 0), fields.get("run_cnt", 0)
    )


# -- denials by workload: bounded ------------------------------------------------


Key = tuple[str, str, str]  # (hook, lsm, workload)


class _Cand:
    __slots__ = ("count", "err")

    def __init__(self, count: int, err: int) -> None:
        self.count = count
        self.err = err


class DenialTable:
    """Denials per (hook, lsm, workload): at most K tracked series, the rest folded.

    Every counter it exposes only grows (Prometheus counters must):
    - a key gets its own series while fewer than K are tracked;
    - beyond that its denials go to the `other` series of its (hook, lsm) and to
      `folded`, and into a space-saving sketch of ``candidates`` slots
      (Metwally et al.), which estimates which folded keys are frequent;
    - a folded key whose recent count, minus the sketch's error, exceeds twice the
      smallest recent count among the tracked (and ``min_promote``) takes that
      one's place: the demoted series disappears (later denials of it fold), the
      promoted one starts at 0 (its earlier denials stay counted in `other`);
    - "recent" counts are halved every ``decay_every`` denials, so the table follows
      today's top talkers instead of yesterday's.
    Memory is O(K + candidates); each denial costs O(1) amortized. Not thread-safe:
    the caller serializes add() and snapshot().
    """

    def __init__(
        self,
        k: int = 50,
        candidates: int | None = None,
        min_promote: int = 10,
        decay_every: int | None = None,
    ) -> None:
        if k < 0:
            raise ValueError("k must be >= 0")
        self.k = k
        self.capacity = candidates if candidates is not None else max(4 * k, 64)
        self.min_promote = min_promote
        self.decay_every = decay_every if decay_every is not None else max(16 * k, 1024)
        self.tracked: dict[Key, int] = {}  # key -> total since admitted
        self.recent: dict[Key, int] = {}  # key -> decayed count
        self.other: dict[tuple[str, str], int] = {}
        self.folded = 0
        self.promotions = 0
        self._cands: dict[Key, _Cand] = {}
        self._since_decay = 0
        self._min_recent = 0

    def add(self, hook: str, lsm: str, workload: str, n: int = 1) -> None:
        key = (hook, lsm, workload)
        self._since_decay += n
        if self._since_decay >= self.decay_every:
            self._decay()
        if key in self.tracked:
            self.tracked[key] += n
            self.recent[key] += n
            return
        if len(self.tracked) < self.k:
            self.tracked[key] = n
            self.recent[key] = n
            self._min_recent = min(self.recent.values())
            return
        self.other[(hook, lsm)] = self.other.get((hook, lsm), 0) + n
        self.folded += n
        if self.k == 0 or self.capacity == 0:
            return
        cand = self._sketch(key, n)
        low = cand.count - cand.err
        if low >= self.min_promote and low > 2 * self._min_recent:
            # the cached minimum only lags behind (tracked counts grow): refresh it
            # before acting, so that a promotion is never premature
            self._min_recent = min(self.recent.values())
            if low > 2 * self._min_recent:
                self._promote(key, low)

    def _sketch(self, key: Key, n: int) -> _Cand:
        cand = self._cands.get(key)
        if cand is not None:
            cand.count += n
            return cand
        if len(self._cands) < self.capacity:
            cand = self._cands[key] = _Cand(n, 0)
            return cand
        # replace the smallest: O(capacity), but only for a key not yet in the
        # sketch while the sketch is full, i.e. a long tail of rare keys
        victim = min(self._cands, key=lambda c: self._cands[c].count)
        floor = self._cands.pop(victim).count
        cand = self._cands[key] = _Cand(floor + n, floor)
        return cand

    def _promote(self, key: Key, recent: int) -> None:
        victim = min(self.recent, key=self.recent.__getitem__)
        del self.tracked[victim]
        del self.recent[victim]
        del self._cands[key]
        self.tracked[key] = 0
        self.recent[key] = recent
        self.promotions += 1
        self._min_recent = min(self.recent.values())

    def _decay(self) -> None:
        self._since_decay = 0
        for key in self.recent:
            self.recent[key] //= 2
        for key in list(self._cands):
            c = self._cands[key]
            c.count //= 2
            c.err //= 2
            if c.count == 0:
                del self._cands[key]
        self._min_recent = min(self.recent.values(), default=0)

    def snapshot(self) -> DenialSnapshot:
        rows = [DenialRow(h, lsm, w, n) for (h, lsm, w), n in self.tracked.items()]
        rows += [DenialRow(h, lsm, OTHER, n) for (h, lsm), n in self.other.items()]
        return DenialSnapshot(tuple(rows), self.folded)


# systemd names these scopes itself, one per login or `systemd-run --scope`:
# a new name each time, not a workload (their processes are named by comm)
_TRANSIENT_SCOPE = re.compile(r"(session-\w+|run-[ru]?\w+)\.scope")


def default_workload(ev: Event) -> str:
    """The workload of a denial: its container's name or id, else its systemd
    unit (a service, or a scope given a name; not the login sessions' and
    `systemd-run`'s numbered scopes), else its comm (the process tree supplies
    container and unit)."""
    c = ev.get("container")
    if isinstance(c, Mapping) and c.get("id"):
        return f"{c.get('runtime') or 'container'}:{str(c['id'])[:12]}"
    unit = ev.get("unit")
    if unit and not _TRANSIENT_SCOPE.fullmatch(str(unit)):
        return str(unit)
    return str(ev.get("comm") or "?")


class DenialAggregator:
    """Feeds decoded denial events into a DenialTable (the Session's consumer side)."""

    def __init__(
        self, table: DenialTable, workload_of: Callable[[Event], str] = default_workload
    ) -> None:
        self.table = table
        self.workload_of = workload_of

    def add_events(self, evs: Iterable[Event]) -> int:
        n = 0
        for ev in evs:
            lsm = self.lsm_of(ev)
            if lsm is None:
                continue
            try:
                workload = self.workload_of(ev)
            except Exception:  # a plugged-in resolver must not stop the exporter
                workload = str(ev.get("comm"))
            self.table.add(label(ev["hook"]), lsm, label(workload) or "?")
            n += 1
        return n

    def lsm_of(self, ev: Event) -> str | None:
        """The `lsm` label of an event it counts; None for the others."""
        if ev["verdict"] != "deny":
            return None
        return label(ev["lsm"], UNKNOWN_LSM)


class WouldDenyAggregator(DenialAggregator):
    """The decisions a candidate policy would deny (`would_deny`, --policy),
    by hook, the policy's LSM (its target) and workload: the same bounded table."""

    def lsm_of(self, ev: Event) -> str | None:
        w = ev.get("would_deny")
        return label(str(w.get("target"))) if isinstance(w, Mapping) else None


# -- the collector -----------------------------------------------------------------


class Collector:
    """prometheus_client custom collector; register it on a CollectorRegistry."""

    def __init__(self, source: SnapshotSource) -> None:
        self.source = source

    def describe(self) -> list[Metric]:
        # Returning nothing keeps registration from calling collect() (which would
        # read the kernel maps) just to learn the names.
        return []

    def collect(self) -> Iterator[Metric]:
        snap = self.source()
        yield from families(snap)


def families(snap: Snapshot) -> Iterator[Metric]:
    p = PREFIX
    dec = CounterMetricFamily(
        f"{p}_decisions",
        "LSM decisions seen by the attached programs, counted in the kernel "
        "before any filter",
        labels=["hook", "family", "verdict", "errno", "lsm"],
    )
    for id_, lsm, err, n in snap.counts:
        verdict = verdict_of(id_, err)
        dec.add_metric(
            [
                label(snap.id_names.name(id_)),
                label(snap.id_names.family(id_)),
                verdict,
                errno_label(err),
                lsm_label(lsm, verdict),
            ],
            n,
        )
    for id_, lsm, err, n in snap.quiet:
        dec.add_metric(
            [
                label(snap.id_names.name(id_)),
                label(snap.id_names.family(id_)),
                QUIET,
                errno_label(err),
                abi.lsm_name(lsm) or UNKNOWN_LSM,
            ],
            n,
        )
    yield dec

    den = CounterMetricFamily(
        f"{p}_denials",
        'Denials by workload (top-K series, the rest in workload="other"), '
        "from the denial stream",
        labels=["hook", "lsm", "workload"],
    )
    for r in snap.denials.rows:
        den.add_metric([r.hook, r.lsm, r.workload], r.count)
    yield den
    yield CounterMetricFamily(
        f"{p}_denials_folded",
        'Denials counted in a workload="other" series (beyond the top-K)',
        value=snap.denials.folded,
    )

    if snap.policy is not None:
        pol = label(snap.policy)
        wd = CounterMetricFamily(
            f"{p}_policy_would_deny",
            "Decisions the candidate policy (--policy) would deny, by workload "
            '(top-K series, the rest in workload="other")',
            labels=["policy", "hook", "lsm", "workload"],
        )
        for r in snap.would_deny.rows:
            wd.add_metric([pol, r.hook, r.lsm, r.workload], r.count)
        yield wd
        folded = CounterMetricFamily(
            f"{p}_policy_would_deny_folded",
            'Would-deny decisions counted in a workload="other" series',
            labels=["policy"],
        )
        folded.add_metric([pol], snap.would_deny.folded)
        yield folded
        checked = CounterMetricFamily(
            f"{p}_policy_checked",
            "Decisions checked against the candidate policy (of processes it confines)",
            labels=["policy"],
        )
        checked.add_metric([pol], snap.policy_checked)
        yield checked

    lat = HistogramMetricFamily(
        f"{p}_hook_latency_seconds",
        "Hook latency from the kernel's log2 histograms (fexit/kprobe rungs); "
        "no _sum: the kernel keeps none",
        labels=["hook"],
    )
    for id_, buckets in sorted(snap.latency.items()):
        if not any(buckets):
            continue
        hook = label(snap.id_names.name(id_))
        cum = cumulative_buckets(buckets)
        lat.add_metric([hook], cum, None)
        lat.samples.append(Sample(lat.name + "_count", {"hook": hook}, cum[-1][1]))
    yield lat

    st = snap.stats
    for name, key, doc in (
        ("events_lost", "lost", "Events dropped because the ring/perf buffer was full"),
        (
            "map_full",
            "map_full",
            "Updates of a kernel aggregation map that failed "
            "because it was full (those decisions are missing from the counts)",
        ),
        ("read_errors", "read_err", "Kernel reads of an event's object that failed"),
        (
            "events_attempted",
            "attempted",
            "Events the kernel tried to stream (after filters): delivered + lost",
        ),
    ):
        yield CounterMetricFamily(f"{p}_{name}", doc, value=st.get(key, 0))
    by_hook = CounterMetricFamily(
        f"{p}_hook_events_lost",
        "events_lost by the hook or syscall whose events were dropped "
        "('process events': exec, fork and exit); they sum to events_lost",
        labels=["hook"],
    )
    for name, n in sorted(snap.lost_by_hook.items()):
        by_hook.add_metric([label(name)], n)
    yield by_hook
    yield CounterMetricFamily(
        f"{p}_events_delivered", "Events read from the buffer", value=snap.delivered
    )
    yield CounterMetricFamily(
        f"{p}_process_events",
        "exec, fork and exit events delivered: they feed "
        "the process tree whatever the filters",
        value=snap.process_events,
    )
    yield CounterMetricFamily(
        f"{p}_quiet_probes",
        "Refused quiet capability probes (CAP_OPT_NOAUDIT) "
        "delivered and left out of the denials",
        value=snap.quiet_probes,
    )
    yield GaugeMetricFamily(
        f"{p}_programs_attached", "Hooks and syscalls attached", value=snap.attached
    )
    yield GaugeMetricFamily(
        f"{p}_hooks_skipped",
        "Hooks, syscalls and tracepoints that could not be attached",
        value=snap.skipped,
    )
    rung = InfoMetricFamily(f"{p}_rung", "The rung in use", labels=[])
    rung.add_metric([], {"rung": snap.rung})
    yield rung
    yield InfoMetricFamily(
        f"{p}_build",
        "lsmtrace version and wire ABI version",
        value={"version": snap.version, "abi": str(abi.ABI_VERSION)},
    )
    yield GaugeMetricFamily(
        f"{p}_bpf_stats_enabled",
        "1 when the kernel counts BPF program run time (kernel.bpf_stats_enabled)",
        value=int(snap.bpf_stats_enabled),
    )
    run_s = CounterMetricFamily(
        f"{p}_bpf_run_seconds",
        "Time spent in lsmtrace's BPF programs (only while BPF stats are enabled)",
        labels=["program"],
    )
    run_n = CounterMetricFamily(
        f"{p}_bpf_runs",
        "Runs of lsmtrace's BPF programs (only while BPF stats are enabled)",
        labels=["program"],
    )
    if snap.bpf_stats_enabled:
        for prog, ps in sorted(snap.programs.items()):
            run_s.add_metric([label(prog)], ps.run_time_ns / 1e9)
            run_n.add_metric([label(prog)], ps.run_cnt)
    yield run_s
    yield run_n
    yield GaugeMetricFamily(
        f"{p}_map_read_seconds",
        "Time this scrape spent reading the kernel maps",
        value=snap.read_seconds,
    )
