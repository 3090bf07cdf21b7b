"""The one pipeline every live consumer shares: poll, decode, enrich, hand over,
account.

A Session turns the tracer's raw batches into event dicts for a consumer callback,
stops on SIGINT/SIGTERM/--duration, and at the end stops the stream in the
kernel *before* the last drain, so that the kernel's counters are final when
read: attempted = delivered + lost holds exactly. Then it detaches.
"""

from __future__ import annotations

import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext, suppress
from dataclasses import dataclass, field
from types import FrameType
from typing import TYPE_CHECKING, Protocol

from lsmtrace import abi
from lsmtrace.events import (
    CONTEXT_ONLY,
    PROCESS_KINDS,
    Decoder,
    Event,
    IdNames,
    WallClock,
)

if TYPE_CHECKING:
    from lsmtrace.auditlive import AuditJoin
    from lsmtrace.policy.live import LiveCheck
    from lsmtrace.proctree import Enricher

# The time one slice of the backlog should take (its size adapts: ~300 events
# on a quiet host, fewer on a busy one), and the time run() spends decoding
# before it reads the ring again: well under the time the default ring (512
# pages, ~4 700 events) takes to fill at transport speed (~500 000 events/s).
SLICE_SECONDS = 0.001
WORK_BUDGET = 0.004
# Raw batches kept in memory while decoding catches up (448 bytes per event).
MAX_BACKLOG_BYTES = 1 << 30


class EventSource(Protocol):
    """What a Session needs from a tracer (the live Tracer; tests inject fakes)."""

    id_names: IdNames
    syscall_names: dict[int, str]

    def poll(
        self, on_batch: Callable[[bytes, list[int]], None], timeout: float
    ) -> int: ...
    def quiesce(self) -> None: ...
    def drain(self, on_batch: Callable[[bytes, list[int]], None]) -> int: ...
    def detach(self) -> None: ...
    def stats(self) -> dict[str, int]: ...

    @property
    def delivered(self) -> int: ...


@dataclass
class Summary:
    delivered: int = 0
    lost: int = 0
    attempted: int = 0
    seen: int = 0
    filtered: int = 0
    map_full: int = 0
    read_err: int = 0
    malformed: int = 0
    processes: int = 0  # exec/fork/exit events (not decisions)
    quiet: int = 0  # quiet capability probes (noaudit), left out unless asked
    audit: dict[str, int] | None = None  # the audit join's counters, when it ran
    policy: dict[str, int] | None = None  # the live policy check's, when it ran
    by_verdict: dict[str, int] = field(
        default_factory=lambda: {"allow": 0, "deny": 0, "error": 0}
    )
    seconds: float = 0.0

    @property
    def exact(self) -> bool:
        return self.attempted == self.delivered + self.lost + self.malformed


@contextmanager
def stop_on_signals(flag: list[bool]) -> Iterator[None]:
    """SIGINT and SIGTERM set flag[0]; the previous handlers come back after."""

    def handler(_signum: int, _frame: FrameType | None) -> None:
        flag[0] = True

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


class Session:
    """The one pipeline: raw batches -> event dicts, built once per event.

    Each event is decoded into the documented dict (docs/events.md); process
    events (exec/fork/exit) always feed the enricher, whatever the consumer
    wants to see, so a denial of a process that has already exited still says
    who it was; the enricher adds exe, cmdline, user, ancestors, container,
    unit. Quiet capability probes (`noaudit`, the kernel asking without
    enforcing) are counted and left out unless `quiet_probes`. With an
    `audit` join (lsmtrace/auditlive.py) every event passes through it, so a
    denial can wait up to 200 ms for its LSM's audit record; order is kept.
    The consumer gets lists of these dicts, in order, and must not change them.
    """

    def __init__(
        self,
        source: EventSource,
        on_events: Callable[[list[Event]], None],
        *,
        decode_events: bool = True,
        clock: WallClock | None = None,
        enricher: Enricher | None = None,
        process_events: bool = False,
        quiet_probes: bool = False,
        max_backlog_bytes: int = MAX_BACKLOG_BYTES,
        audit: AuditJoin | None = None,
        policy: LiveCheck | None = None,
    ) -> None:
        self.source = source
        self.on_events = on_events
        self.decode_events = decode_events
        self.clock = clock or WallClock()
        self.enricher = enricher
        self.process_events = process_events
        self.quiet_probes = quiet_probes
        self.audit = audit
        self.policy = policy
        if audit is not None:  # event times and record times on one wall clock
            audit.set_wall_offset(self.clock.offset_ns)
        self.summary = Summary()
        self.stop = [False]
        self._decoder: Decoder | None = None
        # Batches read out of the ring and not yet decoded (see run()).
        self.backlog: deque[tuple[bytes, list[int]]] = deque()
        self.backlog_bytes = 0
        self.max_backlog_bytes = max_backlog_bytes
        self.slice = 256  # events per slice of work(), adapted to SLICE_SECONDS

    def decoder(self) -> Decoder:
        # ids are known once the tracer has planned its programs
        d = self._decoder
        if d is None or d.ids is not self.source.id_names:
            d = self._decoder = Decoder(
                self.source.id_names, self.source.syscall_names, self.clock
            )
        return d

    def process(self, evs: list[Event]) -> list[Event]:
        """Enrich, count and select decoded events (also for sources that
        yield dicts already, e.g. tests)."""
        enrich = self.enricher.enrich if self.enricher is not None else None
        check = self.policy.add if self.policy is not None else None
        s = self.summary
        by_verdict = s.by_verdict
        out: list[Event] = []
        keep_proc, keep_quiet = self.process_events, self.quiet_probes
        for ev in evs:
            if enrich is not None:
                enrich(ev)
            if check is not None:
                check(ev)
            kind = ev["kind"]
            if kind in PROCESS_KINDS:
                s.processes += 1
                # outside the kernel's scope filters: for the process tree only
                if not ev.pop(CONTEXT_ONLY, False) and keep_proc:
                    out.append(ev)
                continue
            if ev.get("noaudit"):
                s.quiet += 1
                if not keep_quiet:
                    continue
            by_verdict[ev["verdict"]] += 1
            out.append(ev)
        return out

    def on_batch(self, chunk: bytes, offsets: list[int]) -> None:
        """Decode, process and hand over one batch now."""
        if not self.decode_events:
            self.on_events([])
            return
        evs = self.process(self.decoder().decode_batch(chunk, offsets))
        if self.audit is not None:
            evs = self.audit.add_events(evs)
        if evs:
            self.on_events(evs)

    def audit_tick(self) -> None:
        """Read the audit records that came; hand over the events now ready."""
        if self.audit is not None:
            ready = self.audit.tick()
            if ready:
                self.on_events(ready)

    def enqueue(self, chunk: bytes, offsets: list[int]) -> None:
        """The tracer's batch callback in run(): keep the batch for work()."""
        if not self.decode_events:
            self.on_events([])
            return
        self.backlog.append((chunk, offsets))
        self.backlog_bytes += len(chunk)

    def work(
        self, budget: float | None = None, between: Callable[[], None] | None = None
    ) -> int:
        """Hand over queued events in slices of SLICE until the backlog is
        empty or `budget` seconds have passed; returns the events done.
        `between` is called after each slice."""
        now = time.monotonic
        deadline = None if budget is None else now() + budget
        q, done = self.backlog, 0
        while q:
            chunk, offsets = q[0]
            n = self.slice
            if len(offsets) > n:
                part = offsets[:n]
                q[0] = (chunk, offsets[n:])
            else:
                part = offsets
                q.popleft()
                self.backlog_bytes -= len(chunk)
            t = now()
            self.on_batch(chunk, part)
            el = now() - t
            done += len(part)
            if len(part) == n and el > 0:
                fit = int(n * SLICE_SECONDS / el)
                self.slice = max(16, min(4096, (n + fit) // 2))
            if between is not None:
                between()
            if deadline is not None and time.monotonic() >= deadline:
                break
        return done

    def run(
        self,
        duration: float | None = None,
        poll_timeout: float = 0.1,
        should_stop: Callable[[], bool] | None = None,
        on_tick: Callable[[], None] | None = None,
        watch: Callable[[], None] | None = None,
    ) -> Summary:
        """Poll until SIGINT/SIGTERM (main thread only), `duration`,
        `should_stop()` or `self.stop[0]`; then finish(). `on_tick` runs once
        per loop; `watch` after every ring read and every decoded slice (a
        millisecond or two apart while busy: back-pressure)."""
        start = time.monotonic()
        deadline = start + duration if duration else None
        signals = (
            stop_on_signals(self.stop)
            if threading.current_thread() is threading.main_thread()
            else nullcontext()
        )
        try:
            with signals:
                while not self.stop[0]:
                    if should_stop is not None and should_stop():
                        break
                    timeout = 0.0 if self.backlog else poll_timeout
                    if self.audit is not None:
                        timeout = self.audit.timeout(timeout)
                    if deadline is not None:
                        left = deadline - time.monotonic()
                        if left <= 0:
                            break
                        timeout = min(timeout, left)
                    # Read the ring first, decode after: the ring is freed at
                    # the speed of a copy, whatever decoding costs, and decoding
                    # catches up from memory (the backlog) in short slices
                    # between reads. Past max_backlog_bytes the ring is left to
                    # fill: the kernel then counts what it cannot deliver.
                    if self.backlog_bytes < self.max_backlog_bytes:
                        self.source.poll(self.enqueue, timeout)
                    if watch is not None:
                        watch()
                    self.work(WORK_BUDGET, watch)
                    self.audit_tick()
                    if on_tick is not None:
                        on_tick()
        finally:
            self.finish(start)
        return self.summary

    def finish(self, start: float) -> None:
        # Stop the stream, let programs in flight commit, drain, then count:
        # nothing is produced after the drain, so the counters are final.
        # (Detaching first would lose what arrives during the seconds it takes.)
        self.source.quiesce()
        time.sleep(0.02)
        with suppress(BrokenPipeError):
            self.source.drain(self.enqueue)
            self.work()
        if self.audit is not None:
            # the records of the last denials may still be on their way
            with suppress(BrokenPipeError):
                ready = self.audit.finish()
                if ready:
                    self.on_events(ready)
            self.summary.audit = self.audit.stats()
        if self.policy is not None:
            self.summary.policy = self.policy.summary()
        st = self.source.stats()
        s = self.summary
        s.delivered = self.source.delivered
        s.lost = st[abi.Stat.LOST.name.lower()]
        s.attempted = st[abi.Stat.ATTEMPTED.name.lower()]
        s.seen = st[abi.Stat.SEEN.name.lower()]
        s.filtered = st[abi.Stat.FILTERED.name.lower()]
        s.map_full = st[abi.Stat.MAP_FULL.name.lower()]
        s.read_err = st[abi.Stat.READ_ERR.name.lower()]
        s.malformed = int(getattr(self.source, "malformed", 0))
        s.seconds = time.monotonic() - start
        self.source.detach()
