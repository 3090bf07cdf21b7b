"""The audit join of a live session: reader + grouper + joiner, and the modes.

A Session that has an :class:`AuditJoin` hands it every batch of events
(``add_events``), lets it read the audit socket after each poll (``tick``),
and calls ``finish`` after its last drain; each returns the events now ready,
in stream order (lsmtrace/auditjoin.py says when an event is ready).

:func:`open_join` decides from ``--audit auto|on|off`` and ``--enable-audit``:
- off: no join.
- auto (the default): join when audit is enabled and readable; otherwise go on
  without, and say why in the status line.
- on: join; audit disabled is an error (with how to enable it, and the cost),
  unless ``--enable-audit``.
- ``--enable-audit``: implies on; turns audit on for this session only when it
  is off (lsmtrace/auditnl.py :class:`EnableGuard`: restored at exit, on
  SIGTERM, and by a watchdog process when lsmtrace is killed), and warns of
  the cost that outlives the session.
Without CAP_AUDIT_READ (or not root) tracing goes on without the join.
"""

from __future__ import annotations

import errno
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from lsmtrace import audit, auditjoin, auditnl
from lsmtrace.errors import LsmtraceError

MODES = ("auto", "on", "off")
ENABLE_HINT = (
    "auditctl -e 1 (package auditd), audit=1 on the kernel command line, or "
    "--enable-audit for this session only; see `lsmtrace doctor`"
)


class AuditJoin:
    """What a Session drives: non-blocking, ordered, bounded."""

    def __init__(
        self,
        reader: Any,
        joiner: auditjoin.Joiner,
        grouper: audit.Grouper | None = None,
        guard: auditnl.EnableGuard | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.reader = reader  # AuditReader, or a test's fake with read()/close()
        self.joiner = joiner
        self.grouper = grouper or audit.Grouper(clock=clock)
        self.guard = guard
        self.clock = clock
        self.sleep = sleep

    def set_wall_offset(self, offset_ns: int) -> None:
        """The session's wall - monotonic offset (events carry monotonic ts_ns)."""
        self.joiner.wall_offset_ns = offset_ns

    def add_events(self, evs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return self.joiner.add_events(evs, self.clock())

    def tick(self) -> list[dict[str, Any]]:
        """Read what the socket holds; group, join, expire."""
        now = self.clock()
        groups = self.grouper.add(self.reader.read(), now)
        ready = self.joiner.add_groups(groups, now)
        ready += self.joiner.flush(now)
        return ready

    def timeout(self, default: float) -> float:
        """The poll timeout that releases waiting events on time."""
        due = self.joiner.next_deadline
        if due is None:
            return default
        return max(0.0, min(default, due - self.clock()))

    def finish(self) -> list[dict[str, Any]]:
        """After the last drain: records of the last denials may still come,
        for at most the joiner's max_wait; then everything, now."""
        out = self.tick()
        end = self.clock() + self.joiner.max_wait
        while self.joiner.pending_events and self.clock() < end:
            self.sleep(0.02)
            out += self.tick()
        out += self.joiner.add_groups(self.grouper.drain(), self.clock())
        out += self.joiner.drain()
        return out

    def stats(self) -> dict[str, int]:
        s = self.joiner.stats.as_dict()
        s["records"] = self.grouper.records
        s["records_skipped"] = self.grouper.skipped
        s["records_malformed"] = self.grouper.malformed
        s["overruns"] = int(getattr(self.reader, "overruns", 0))
        s["shed"] = int(getattr(self.reader, "shed", 0))
        return s

    def close(self) -> None:
        try:
            self.reader.close()
        finally:
            if self.guard is not None:
                self.guard.restore()


@dataclass
class Opened:
    join: AuditJoin | None
    status: str  # for the start line: "audit join on", "audit join off (why)"
    notes: list[str]  # lines for stderr (what --enable-audit did and costs)


def open_join(
    mode: str,
    enable: bool,
    syscall_names: Mapping[int, str],
    wall_offset_ns: int,
    *,
    get_status: Callable[[], auditnl.AuditStatus] = auditnl.get_status,
    make_reader: Callable[[], Any] = auditnl.AuditReader,
    make_guard: Callable[[], auditnl.EnableGuard] = auditnl.EnableGuard,
) -> Opened:
    """The join for these flags, or None and why. Raises LsmtraceError for
    `--audit on` with audit disabled (and no --enable-audit)."""
    if mode not in MODES:
        raise LsmtraceError(f"--audit {mode}: expected auto, on or off")
    if enable and mode == "off":
        raise LsmtraceError("--enable-audit with --audit off", hint="drop one of them")
    if mode == "off":
        return Opened(None, "audit join off", [])
    try:
        st = get_status()
    except auditnl.AuditUnavailable as e:
        return Opened(
            None, f"audit join off ({_short(e)})", [f"note: no audit join: {e}"]
        )
    notes: list[str] = []
    guard = None
    if st.enabled == 0:
        if enable:
            guard = make_guard()
            try:
                guard.enable()
            except auditnl.AuditUnavailable as e:
                guard.restore()
                raise LsmtraceError(f"cannot enable audit: {e}") from e
            notes.append(
                "note: audit enabled for this session; it goes back off at exit. "
                "Cost: " + auditnl.COST_NOTE
            )
        elif mode == "on":
            raise LsmtraceError(
                "audit is disabled: denials cannot be joined with their LSM records",
                hint=ENABLE_HINT + ". Cost: " + auditnl.COST_NOTE,
            )
        else:
            return Opened(
                None, "audit join off (audit disabled; see lsmtrace doctor)", []
            )
    try:
        reader = make_reader()
    except auditnl.AuditUnavailable as e:
        if guard is not None:
            guard.restore()
        notes.append(f"note: no audit join, tracing goes on without it: {e}")
        return Opened(None, f"audit join off ({_short(e)})", notes)
    joiner = auditjoin.Joiner(syscall_names, wall_offset_ns)
    return Opened(AuditJoin(reader, joiner, guard=guard), "audit join on", notes)


def _short(e: OSError) -> str:
    name = errno.errorcode.get(e.errno or 0)
    if e.errno == errno.EPERM:
        return "no CAP_AUDIT_READ/CAP_AUDIT_CONTROL"
    return name or "unavailable"


def summary_text(stats: Mapping[str, int]) -> str:
    """The audit part of the summary line at exit."""
    text = (
        f"audit: {stats['joined']} joined, {stats['events_unmatched']} denials "
        f"without a record, {stats['groups_unmatched']} records without an event"
    )
    if stats.get("disagreements"):
        text += f", {stats['disagreements']} disagreements"
    dropped = stats.get("overruns", 0), stats.get("shed", 0)
    if any(dropped):
        text += f", {dropped[0]} overruns, {dropped[1]} records shed"
    return text
