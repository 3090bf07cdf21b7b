"""lsmtrace.auditnl without a socket: wire formats and the rate budget.
(The live socket, AUDIT_GET/SET and the --enable-audit guard: tests/bpf/test_audit_live.py.)"""

from __future__ import annotations

import struct

import pytest

from lsmtrace import auditnl


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_budget_bounds_the_rate_and_the_burst() -> None:
    clock = Clock()
    b = auditnl.RateBudget(1000.0, clock)  # burst: 100
    assert b.take(500) == 100
    assert b.take(10) == 0
    clock.t = 0.05
    assert b.take(500) == 50
    clock.t = 10.0  # idle: the bucket holds a burst at most
    assert b.take(10_000) == 100
    total = 0
    for i in range(1, 101):  # one second of a flood, read every 10 ms
        clock.t = 10.0 + i / 100
        total += b.take(10_000)
    assert total == pytest.approx(1000, abs=2)


def test_status_from_short_and_long_payloads() -> None:
    full = struct.pack("=11I", 1, 1, 1, 812, 0, 64, 3, 0, 127, 15000, 0)
    st = auditnl.AuditStatus.from_bytes(full)
    assert (st.enabled, st.pid, st.backlog_limit, st.lost) == (1, 812, 64, 3)
    old = auditnl.AuditStatus.from_bytes(full[:32])  # kernels before 3.17
    assert (old.enabled, old.backlog_wait_time) == (1, 0)


def test_messages_split_a_datagram() -> None:
    def msg(t: int, body: bytes) -> bytes:
        raw = auditnl.NLMSG_HDR.pack(16 + len(body), t, 0, 1, 0) + body
        return raw + bytes(-len(raw) % 4)

    data = msg(1300, b"audit(1.000:1): a=1") + msg(1320, b"audit(1.000:1): ")
    assert auditnl._messages(data) == [
        (1300, b"audit(1.000:1): a=1"),
        (1320, b"audit(1.000:1): "),
    ]


def test_never_task_rule() -> None:
    assert auditnl.Rule(auditnl.AUDIT_FILTER_TASK, auditnl.AUDIT_NEVER, 0).never_task
    assert not auditnl.Rule(
        auditnl.AUDIT_FILTER_TASK, auditnl.AUDIT_NEVER, 1
    ).never_task
    assert not auditnl.Rule(4, auditnl.AUDIT_NEVER, 0).never_task  # exit list
    assert not auditnl.Rule(auditnl.AUDIT_FILTER_TASK, 2, 0).never_task  # always


def test_the_cost_note_says_what_lasts() -> None:
    for what in ("until reboot", "auditctl -e 0", "never,task", "getppid"):
        assert what in auditnl.COST_NOTE


def test_sandbox_keeps_landlock_logging_across_exec() -> None:
    """lsmtrace sandbox execs its command: from ABI 7 it asks Landlock to keep
    auditing the domain's denials after execve, else the join sees none."""
    from lsmtrace import sandbox

    assert sandbox.restrict_flags(6) == 0
    assert sandbox.restrict_flags(7) == sandbox.RESTRICT_SELF_LOG_NEW_EXEC_ON == 2
