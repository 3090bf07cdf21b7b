"""The audit join in the Session, and --audit/--enable-audit, without a kernel.

The Session reads a real captured payload (tests/data/payloads/open_eacces: an
openat denied on the tracepoint rung, `lsm` null) from a fake tracer; a fake
reader hands over audit records in the kernel's format for that process.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from lsmtrace import abi, auditjoin, auditlive, auditnl, output
from lsmtrace.errors import LsmtraceError
from lsmtrace.events import IdNames, WallClock
from lsmtrace.session import Session

PAYLOADS = Path(__file__).resolve().parents[1] / "data" / "payloads"
REC_SEC = 1795964084  # the records' wall second; the session clock is set to match


class Clock:
    def __init__(self) -> None:
        self.t = 50.0

    def __call__(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.t += s


class FakeTracer:
    """Hands the captured batch to the session on its first poll."""

    def __init__(self, polls: int = 3) -> None:
        side = json.loads((PAYLOADS / "open_eacces.json").read_text())
        self.raw = (PAYLOADS / "open_eacces.bin").read_bytes()
        self.id_names = IdNames(
            {int(k): v for k, v in side["id_names"]["names"].items()},
            {int(k): v for k, v in side["id_names"]["families"].items()},
        )
        self.syscall_names = {int(k): v for k, v in side["syscall_names"].items()}
        self.polls = polls
        self.n = 0
        self.session: Session | None = None

    def poll(self, on_batch: Any, timeout: float) -> int:
        self.n += 1
        if self.n == 1:
            on_batch(self.raw, list(range(0, len(self.raw), abi.EVENT_SIZE)))
        if self.n >= self.polls and self.session is not None:
            self.session.stop[0] = True
        return 1

    def quiesce(self) -> None:
        pass

    def drain(self, on_batch: Any) -> int:
        return 0

    def detach(self) -> None:
        pass

    def stats(self) -> dict[str, int]:
        n = len(self.raw) // abi.EVENT_SIZE
        return {
            "lost": 0,
            "attempted": n,
            "seen": n,
            "filtered": 0,
            "map_full": 0,
            "read_err": 0,
        }

    @property
    def delivered(self) -> int:
        return len(self.raw) // abi.EVENT_SIZE


class FakeReader:
    """Returns the queued batches, one per read()."""

    def __init__(self, batches: list[list[tuple[int, bytes]]]) -> None:
        self.batches = batches
        self.closed = False
        self.overruns = 0
        self.shed = 0

    def read(self, max_records: int = 4096) -> list[tuple[int, bytes]]:
        return self.batches.pop(0) if self.batches else []

    def close(self) -> None:
        self.closed = True


def landlock_records(pid: int, path: str, serial: int = 7) -> list[tuple[int, bytes]]:
    h = f"audit({REC_SEC}.154:{serial}):"
    return [
        (
            1423,
            f'{h} domain=1a blockers=fs.read_file path="{path}" dev="vda" ino=7'.encode(),
        ),
        (
            1300,
            (
                f"{h} arch=c000003e syscall=257 success=no exit=-13 a0=0 a1=0 a2=0 a3=0 "
                f"items=0 ppid=1 pid={pid} auid=0 uid=65534 gid=65534 euid=65534 suid=0 "
                f'fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=1 comm="cat" '
                f'exe="/usr/bin/cat" key=(null)'
            ).encode(),
        ),
        (1320, f"{h} ".encode()),
    ]


def session_with(
    batches: list[list[tuple[int, bytes]]], polls: int = 3
) -> tuple[Session, list[dict[str, Any]], FakeReader, Clock]:
    tracer = FakeTracer(polls)
    ev_ts = int.from_bytes(tracer.raw[:8], "little")  # ts_ns: the header's first field
    clock = Clock()
    reader = FakeReader(batches)
    joiner = auditjoin.Joiner(tracer.syscall_names, 0, clock=clock, arch="x86_64")
    join = auditlive.AuditJoin(reader, joiner, clock=clock, sleep=clock.sleep)
    wall = WallClock(REC_SEC * 10**9 + 154_000_000 - ev_ts)
    got: list[dict[str, Any]] = []
    s = Session(tracer, got.extend, clock=wall, audit=join)
    tracer.session = s
    return s, got, reader, clock


def test_session_joins_a_denial_with_its_record() -> None:
    side = json.loads((PAYLOADS / "open_eacces.json").read_text())
    pid, path = side["events"][0]["pid"], side["events"][0]["object"]["path"]
    s, got, _reader, _ = session_with([[], landlock_records(pid, path)])
    summary = s.run(poll_timeout=0.0)
    assert len(got) == 1
    ev = got[0]
    assert (ev["lsm"], ev["lsm_source"]) == ("landlock", "audit")
    assert ev["audit"]["rule"] == "landlock fs.read_file"
    assert ev["audit"]["serial"] == 7
    assert summary.audit is not None
    assert (summary.audit["joined"], summary.audit["records"]) == (1, 3)
    assert output.result_text(ev) == "EACCES:landlock fs.read_file"
    assert "EACCES:landlock fs.read_file /tmp/" in output.text_line(ev)


def test_session_finish_waits_for_the_last_records() -> None:
    """The source stops with the denial still waiting: finish() reads on."""
    side = json.loads((PAYLOADS / "open_eacces.json").read_text())
    pid, path = side["events"][0]["pid"], side["events"][0]["object"]["path"]
    s, got, _, _ = session_with([[], [], [], [], landlock_records(pid, path)], polls=1)
    summary = s.run(poll_timeout=0.0)
    assert [e.get("audit", {}).get("serial") for e in got] == [7]
    assert summary.audit is not None
    assert summary.audit["joined"] == 1


def test_session_releases_a_denial_whose_record_never_comes() -> None:
    s, got, _, clock = session_with([], polls=1)
    t0 = clock.t
    summary = s.run(poll_timeout=0.0)
    assert len(got) == 1
    assert "audit" not in got[0]
    assert got[0]["lsm"] is None
    assert clock.t - t0 == pytest.approx(0.2, abs=0.03)  # waited max_wait, no more
    assert summary.audit is not None
    assert summary.audit["events_unmatched"] == 1
    assert auditlive.summary_text(summary.audit).startswith(
        "audit: 0 joined, 1 denials without a record, 0 records without an event"
    )


# -- the modes -----------------------------------------------------------------------


def status(enabled: int) -> auditnl.AuditStatus:
    return auditnl.AuditStatus(
        enabled=enabled,
        failure=1,
        pid=0,
        rate_limit=0,
        backlog_limit=64,
        lost=0,
        backlog=0,
        backlog_wait_time=15000,
    )


class FakeGuard:
    def __init__(self) -> None:
        self.enabled = False
        self.restored = False

    def enable(self) -> bool:
        self.enabled = True
        return True

    def restore(self) -> None:
        self.restored = True


def open_with(
    mode: str, enable: bool, enabled: int | Exception, reader: Any = None
) -> tuple[auditlive.Opened, FakeGuard]:
    guard = FakeGuard()

    def get_status() -> auditnl.AuditStatus:
        if isinstance(enabled, Exception):
            raise enabled
        return status(enabled)

    def make_reader() -> Any:
        if isinstance(reader, Exception):
            raise reader
        return reader or FakeReader([])

    opened = auditlive.open_join(
        mode,
        enable,
        {257: "openat"},
        0,
        get_status=get_status,
        make_reader=make_reader,
        make_guard=lambda: guard,
    )
    return opened, guard


def test_off() -> None:
    opened, _ = open_with("off", False, 1)
    assert (opened.join, opened.status) == (None, "audit join off")


def test_auto_joins_when_enabled_and_goes_without_when_not() -> None:
    on, _ = open_with("auto", False, 1)
    assert on.join is not None
    assert on.status == "audit join on"
    off, guard = open_with("auto", False, 0)
    assert off.join is None
    assert "audit disabled" in off.status
    assert not guard.enabled


def test_on_with_audit_disabled_is_an_error_that_says_how_and_what_it_costs() -> None:
    with pytest.raises(LsmtraceError) as e:
        open_with("on", False, 0)
    hint = e.value.hint or ""
    for what in ("auditctl -e 1", "audit=1", "--enable-audit", "until reboot"):
        assert what in hint


def test_enable_audit_turns_it_on_and_warns() -> None:
    opened, guard = open_with("auto", True, 0)
    assert guard.enabled
    assert opened.join is not None
    assert opened.join.guard is guard
    assert any(
        "until reboot" in n and "goes back off at exit" in n for n in opened.notes
    )
    opened.join.close()
    assert guard.restored


def test_enable_audit_when_already_on_changes_nothing() -> None:
    opened, guard = open_with("on", True, 1)
    assert not guard.enabled
    assert opened.notes == []
    assert opened.join is not None


def test_without_privileges_tracing_goes_on() -> None:
    eperm = auditnl.AuditUnavailable(1, "AUDIT_GET: Operation not permitted")
    opened, _ = open_with("on", False, eperm)
    assert opened.join is None
    assert "CAP_AUDIT" in opened.status
    no_read = auditnl.AuditUnavailable(1, "cannot join the audit read-log group")
    opened, guard = open_with("auto", True, 0, reader=no_read)
    assert opened.join is None
    assert guard.restored  # it had enabled audit: back off at once
    assert any("tracing goes on without it" in n for n in opened.notes)


def test_enable_audit_with_audit_off_is_a_contradiction() -> None:
    with pytest.raises(LsmtraceError):
        open_with("off", True, 0)


def test_disagreement_text() -> None:
    ev = {
        "verdict": "deny",
        "errno": "EACCES",
        "lsm": "apparmor",
        "audit": {"rule": "landlock fs.read_file", "disagrees": True},
    }
    assert output.result_text(ev) == "EACCES:apparmor (audit: landlock fs.read_file)"
    hostile = {
        "verdict": "deny",
        "errno": "EACCES",
        "lsm": "apparmor",
        "audit": {"rule": "apparmor profile=/x\x1b[31m r"},
    }
    assert output.result_text(hostile) == "EACCES:apparmor profile=/x\\x1b[31m r"
