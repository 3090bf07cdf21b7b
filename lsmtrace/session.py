"""The one pipeline every live consumer shares: poll, decode, hand over, account.

A Session turns the tracer's raw batches into Events for a consumer callback,
stops on SIGINT/SIGTERM/--duration, and at the end stops the stream in the
kernel *before* the last drain, so that the kernel's counters are final when
read: attempted = delivered + lost holds exactly. Then it detaches.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from types import FrameType
from typing import Protocol

from lsmtrace import abi
from lsmtrace.events import Event, IdNames, decode


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
    def __init__(
        self,
        source: EventSource,
        on_events: Callable[[list[Event]], None],
        decode_events: bool = True,
    ) -> None:
        self.source = source
        self.on_events = on_events
        self.decode_events = decode_events
        self.summary = Summary()
        self.stop = [False]

    def _on_batch(self, chunk: bytes, offsets: list[int]) -> None:
        if not self.decode_events:
            self.on_events([])
            return
        ids, names = self.source.id_names, self.source.syscall_names
        evs = [decode(chunk, ids, names, off) for off in offsets]
        for ev in evs:
            if ev.kind in ("exec", "fork", "exit"):
                self.summary.processes += 1
            else:
                self.summary.by_verdict[ev.verdict] += 1
        self.on_events(evs)

    def run(self, duration: float | None = None, poll_timeout: float = 0.1) -> Summary:
        start = time.monotonic()
        deadline = start + duration if duration else None
        try:
            with stop_on_signals(self.stop):
                while not self.stop[0]:
                    timeout = poll_timeout
                    if deadline is not None:
                        left = deadline - time.monotonic()
                        if left <= 0:
                            break
                        timeout = min(timeout, left)
                    self.source.poll(self._on_batch, timeout)
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
            self.source.drain(self._on_batch)
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
