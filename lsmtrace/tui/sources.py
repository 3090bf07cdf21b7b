"""Event sources of the TUI: the live tracer and recordings. Pure (no textual).

A source's ``run(out, should_stop)`` runs in a worker thread. It never touches
the terminal: it hands events to a :class:`Coalescer`, which merges floods into
at most ~10 posts a second, each post a :class:`Batch` delivered through the
``post`` callback the app gives it (``app.post_message``, thread-safe). The next
batch is posted only after the app acknowledged the previous one
(``batch.ack()``), so at most one batch is in flight and the events waiting are
held in a deque of at most ``maxlen`` events: memory stays bounded however slow
the screen is. A live source drops the oldest waiting events when the deque is
full (counted in ``Batch.dropped``; the kernel's own losses are ``Batch.lost``);
a replay waits instead (back-pressure), so a recording is shown in full.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from lsmtrace.errors import LsmtraceError
from lsmtrace.events import PROCESS_KINDS

log = logging.getLogger(__name__)

EventDict = dict[str, Any]
ShouldStop = Callable[[], bool]


def _noop() -> None:
    return None


@dataclass
class Batch:
    """What one post carries to the app."""

    events: list[EventDict] = field(default_factory=list)
    dropped: int = 0  # merged away in user space since the previous batch
    lost: int | None = None  # the kernel's lost counter (absolute), when known
    status: str | None = None  # a status line to show ("Tracing 65 hooks ...")
    error: str | None = None  # the source failed; message and hint
    done: bool = False  # the source has ended (recording read, tracer detached)
    info: dict[str, Any] | None = None  # recording header/trailer, live summary
    ack: Callable[[], None] = _noop


Post = Callable[[Batch], object]


class Coalescer:
    """Merges a flood of events into few, bounded posts (see module doc)."""

    def __init__(
        self,
        post: Post,
        maxlen: int,
        interval: float = 0.1,
        max_batch: int = 20_000,
        block: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.post = post
        self.maxlen = max(1, maxlen)
        self.interval = interval
        self.max_batch = max(1, max_batch)
        self.block = block
        self.clock = clock
        self._q: deque[EventDict] = deque()
        self._cond = threading.Condition()
        self._pending = False
        self._last = -1e9
        self._dropped = 0
        self.lost: int | None = None
        self.posted = 0  # batches posted (for tests)

    # -- called by the app (UI thread) ----------------------------------------
    def ack(self) -> None:
        with self._cond:
            self._pending = False
            self._cond.notify_all()

    # -- called by the source thread ------------------------------------------
    def add(
        self, events: Iterable[EventDict], should_stop: ShouldStop = lambda: False
    ) -> None:
        evs = list(events)
        with self._cond:
            if self.block:
                while len(self._q) + len(evs) > self.maxlen and self._q:
                    if should_stop():
                        return
                    if not self._post_locked(respect_interval=False):
                        self._cond.wait(0.05)
            self._q.extend(evs)
            over = len(self._q) - self.maxlen
            if over > 0:
                for _ in range(over):
                    self._q.popleft()
                self._dropped += over
        self.tick()

    def tick(self) -> bool:
        """Post what waits if the previous batch was acked and ~interval passed."""
        with self._cond:
            return self._post_locked(respect_interval=True)

    def _post_locked(self, respect_interval: bool, **extra: Any) -> bool:
        if self._pending:
            return False
        now = self.clock()
        if respect_interval and now - self._last < self.interval:
            return False
        if not self._q and not self._dropped and not extra:
            return False
        n = min(len(self._q), self.max_batch)
        evs = [self._q.popleft() for _ in range(n)]
        batch = Batch(evs, self._dropped, self.lost, ack=self.ack, **extra)
        self._dropped = 0
        self._pending = True
        self._last = now
        self.posted += 1
        self.post(batch)
        return True

    def status(self, text: str, info: dict[str, Any] | None = None) -> None:
        """A status line, posted at once and outside the flow control."""
        self.post(Batch(status=text, info=info, lost=self.lost))

    def finish(
        self,
        should_stop: ShouldStop,
        status: str | None = None,
        error: str | None = None,
        info: dict[str, Any] | None = None,
    ) -> None:
        """Post everything left, then a final batch with done=True."""
        with self._cond:
            while self._q and not should_stop():
                if not self._post_locked(respect_interval=False):
                    self._cond.wait(0.05)
            while self._pending and not should_stop():
                self._cond.wait(0.05)
            self._pending = False
            self._post_locked(
                respect_interval=False, done=True, status=status, error=error, info=info
            )


class Source(Protocol):
    """What the app runs in its worker thread."""

    name: str
    block: bool  # back-pressure (replay) rather than dropping (live)

    def run(self, out: Coalescer, should_stop: ShouldStop) -> None: ...


# -- recordings ----------------------------------------------------------------


def read_recording(path: str | Path) -> Any:
    from lsmtrace.record import read_recording as read

    return read(path)


class ReplaySource:
    """Reads a recording as fast as the screen takes it (back-pressure)."""

    name = "replay"
    block = True

    def __init__(
        self,
        path: str | Path,
        chunk: int = 2000,
        reader: Callable[[str | Path], Any] = read_recording,
        policy: Any = None,
    ) -> None:
        self.path = Path(path)
        self.chunk = chunk
        self.reader = reader
        self.policy = policy  # lsmtrace.policy.live.LiveCheck: marks would_deny

    def open(self) -> Any:
        """Open now (in the caller's thread) so a bad file fails before the UI."""
        self._rec = self.reader(self.path)
        return self._rec

    def run(self, out: Coalescer, should_stop: ShouldStop) -> None:
        try:
            rec = getattr(self, "_rec", None) or self.open()
            header = dict(getattr(rec, "header", None) or {})
            out.status(f"replay of {self.path.name}", info={"header": header})
            buf: list[EventDict] = []
            check = self.policy.add if self.policy is not None else None
            for ev in rec.events:
                if check is not None:  # every event, in order, as a live session
                    check(ev)
                # what the live view shows: decisions, no quiet capability
                # probes, no process events (they fed the recorder's tree)
                if ev.get("noaudit") or ev.get("kind") in PROCESS_KINDS:
                    continue
                buf.append(ev)
                if len(buf) >= self.chunk:
                    out.add(buf, should_stop)
                    buf = []
                    time.sleep(0)  # let the UI thread have the GIL
                    if should_stop():
                        return
            if buf:
                out.add(buf, should_stop)
        except (LsmtraceError, OSError) as e:
            out.finish(should_stop, error=str(getattr(e, "message", e)))
            return
        trailer = getattr(rec, "trailer", None)
        error = getattr(rec, "error", None)
        if trailer and trailer.get("lost") is not None:
            out.lost = int(trailer["lost"])
        from lsmtrace.record import loss_summary

        loss = loss_summary(rec) if hasattr(rec, "path") else None
        end = "end" if loss is None else "end; INCOMPLETE: " + loss.split(": ", 1)[-1]
        out.finish(
            should_stop,
            status=f"replay of {self.path.name}: {end}",
            error=str(error) if error else None,
            info={"header": header, "trailer": trailer},
        )


# -- live ----------------------------------------------------------------------


class LiveSource:
    """The tracer and a Session, run in the worker thread."""

    name = "live"
    block = False

    def __init__(
        self,
        opts: Any,  # lsmtrace.loader.TraceOptions (imported lazily: bcc)
        tracer_factory: Callable[[Any], Any] | None = None,
        stats_interval: float = 1.0,
        enricher: Any = None,  # lsmtrace.proctree.Enricher
        audit: Callable[[dict[int, str]], Any] | None = None,  # -> auditlive.Opened
        policy: Any = None,  # lsmtrace.policy.live.LiveCheck
        select: Callable[[EventDict], bool] | None = None,  # what reaches the screen
    ) -> None:
        self.opts = opts
        self.enricher = enricher
        self.audit = audit
        self.policy = policy
        self.select = select
        self.tracer_factory = tracer_factory
        self.stats_interval = stats_interval

    def run(self, out: Coalescer, should_stop: ShouldStop) -> None:
        from lsmtrace.session import Session

        if self.tracer_factory is None:
            from lsmtrace.loader import Tracer

            factory: Callable[[Any], Any] = Tracer
        else:
            factory = self.tracer_factory
        tracer = factory(self.opts)
        session: Session | None = None
        join: Any = None
        try:
            out.status("compiling and attaching the BPF programs...")
            att = tracer.open()
            if should_stop():
                return
            # the status bar has one line for this and for the counts: the
            # rung and what is on; the rest goes to the log file
            extra = ""
            if self.audit is not None:
                opened = self.audit(tracer.syscall_names)
                join = opened.join
                extra += "; audit" if join is not None else ""
                log.info("%s", opened.status)
                for note in opened.notes:  # stderr belongs to the screen here
                    log.warning("%s", note)
            if self.policy is not None:
                p = self.policy.policy
                extra += f"; policy {p.name}"
            log.info(
                "tracing %d hooks via %s (%s); %d skipped",
                len(att.attached),
                att.rung,
                att.buffer,
                len(att.skipped),
            )
            out.status(f"{len(att.attached)} hooks via {att.rung}{extra}")
            for name, why in att.skipped.items():
                log.debug("skipped %s: %s", name, why)
            select = self.select
            consume: Callable[[list[EventDict]], None] = out.add
            if select is not None:

                def consume(evs: list[EventDict]) -> None:
                    out.add([e for e in evs if select(e)])

            session = Session(
                tracer, consume, enricher=self.enricher, audit=join, policy=self.policy
            )
            next_stats = [0.0]

            def tick() -> None:
                now = time.monotonic()
                if now >= next_stats[0]:
                    try:
                        out.lost = int(tracer.stats().get("lost", 0))
                    except Exception:  # a stats read must not end the trace
                        log.exception("reading the kernel counters")
                    next_stats[0] = now + self.stats_interval
                out.tick()

            # run() ends with finish(): stop the stream, drain, count, detach
            session.run(should_stop=should_stop, on_tick=tick)
        except LsmtraceError as e:
            log.error("live source failed: %s", e.message)
            out.finish(
                should_stop, error=e.message + (f" (hint: {e.hint})" if e.hint else "")
            )
            return
        except Exception as e:
            log.exception("live source failed")
            out.finish(should_stop, error=f"{type(e).__name__}: {e}")
            return
        finally:
            if join is not None:
                join.close()  # --enable-audit: audit back off
            tracer.close()
        s = session.summary
        out.lost = s.lost
        info = {
            "delivered": s.delivered,
            "lost": s.lost,
            "attempted": s.attempted,
            "seen": s.seen,
            "filtered": s.filtered,
            "quiet": s.quiet,
            "policy": s.policy,
        }
        out.finish(should_stop, status="tracer detached", info=info)
