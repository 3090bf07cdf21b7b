"""lsmtrace.auditjoin: decision events + audit record groups, on an injected clock.

Events are dicts of the documented JSON form (docs/events.md); groups come from
real records (tests/data/audit) or from records in the kernel's format.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from lsmtrace import audit, auditjoin

DATA = Path(__file__).resolve().parents[1] / "data" / "audit"
OFF = 1_700_000_000 * 10**9  # wall - monotonic, injected
T0 = 1795964084_154_000_000  # wall ns of the first captured record
NAMES = {257: "openat", 2: "open", 62: "kill", 321: "bpf", 3: "close", 59: "execve"}


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def joiner(clock: Clock, **kw: Any) -> auditjoin.Joiner:
    return auditjoin.Joiner(NAMES, OFF, clock=clock, arch="x86_64", **kw)


def ev(
    pid: int,
    path: str | None = "/tmp/x",
    ret: int = -13,
    lsm: str | None = None,
    kind: str = "syscall",
    syscall: str | None = "openat",
    wall_ns: int = T0,
    tid: int | None = None,
    verdict: str | None = None,
) -> dict[str, Any]:
    if verdict is None:
        verdict = (
            "allow"
            if ret >= 0
            else ("deny" if ret in (-1, -13) or kind != "syscall" else "error")
        )
    e: dict[str, Any] = {
        "ts_ns": wall_ns - OFF,
        "kind": kind,
        "verdict": verdict,
        "ret": ret,
        "lsm": lsm,
        "pid": tid if tid is not None else pid,
        "tgid": pid,
        "syscall": syscall,
        "hook": f"sys_{syscall}" if kind == "syscall" else "file_open",
        "object": {"path": path} if path is not None else {},
    }
    return e


def group(*lines: str) -> audit.Group:
    recs = [audit.parse_line(ln) for ln in lines]
    g = audit.Grouper(clock=lambda: 0.0)
    out = g.add_records([r for r in recs if r is not None]) + g.drain()
    assert len(out) == 1, out
    return out[0]


def stamp(wall_ns: int) -> str:
    return f"{wall_ns // 10**9}.{wall_ns // 10**6 % 1000:03d}"


def landlock_ctx(
    serial: int, pid: int, path: str, wall_ns: int = T0, exit_: int = -13, nr: int = 257
) -> audit.Group:
    h = f"audit({stamp(wall_ns)}:{serial}):"
    return group(
        f'1423 {h} domain=1a blockers=fs.read_file path="{path}" dev="vda" ino=7',
        f"1300 {h} arch=c000003e syscall={nr} success=no exit={exit_} a0=0 a1=0 a2=0 "
        f"a3=0 items=0 ppid=1 pid={pid} auid=0 uid=0 gid=0 euid=0 suid=0 fsuid=0 "
        f'egid=0 sgid=0 fsgid=0 tty=(none) ses=1 comm="t" exe="/t" key=(null)',
        f"1320 {h}",
    )


def landlock_alone(
    serial: int, path: str, wall_ns: int = T0, domain: str = "1a"
) -> audit.Group:
    return group(
        f"1423 audit({stamp(wall_ns)}:{serial}): domain={domain} blockers=fs.read_file "
        f'path="{path}" dev="vda" ino=7'
    )


def domain_alloc(
    serial: int, pid: int, domain: str = "1a", wall_ns: int = T0
) -> audit.Group:
    return group(
        f"1424 audit({stamp(wall_ns)}:{serial}): domain={domain} status=allocated "
        f'mode=enforcing pid={pid} uid=0 exe="/usr/bin/t" comm="t"'
    )


def seccomp(serial: int, pid: int, nr: int = 257, wall_ns: int = T0) -> audit.Group:
    return group(
        f"1326 audit({stamp(wall_ns)}:{serial}): auid=4294967295 uid=0 gid=0 "
        f'ses=4294967295 pid={pid} comm="t" exe="/t" sig=0 arch=c000003e '
        f"syscall={nr} compat=0 ip=0x7f code=0x50000"
    )


def check_accounting(j: auditjoin.Joiner) -> None:
    s = j.stats
    assert s.events == s.passed + s.joined + s.events_unmatched + j.pending_events
    assert s.groups == s.groups_joined + s.groups_unmatched + j.pending_groups


def paths(evs: list[dict[str, Any]]) -> list[str | None]:
    return [e["object"].get("path") for e in evs]


# -- the two audit configurations, on real records -------------------------------


def load(name: str) -> tuple[list[audit.Group], dict[str, Any]]:
    recs = [
        audit.parse_line(ln)
        for ln in (DATA / f"{name}.records").read_text().splitlines()
    ]
    g = audit.Grouper(clock=lambda: 0.0)
    groups = g.add_records([r for r in recs if r is not None]) + g.drain()
    return groups, json.loads((DATA / f"{name}.json").read_text())


def events_of(info: dict[str, Any], wall_ns: int) -> list[dict[str, Any]]:
    out = []
    errnos = info.get("errnos", [13] * len(info["paths"]))
    for i, (hexpath, err) in enumerate(zip(info["paths"], errnos, strict=True)):
        path = os.fsdecode(bytes.fromhex(hexpath))
        out.append(ev(info["pid"], path, ret=-err, wall_ns=wall_ns + i * 1000))
    return out


def test_with_syscall_records_every_denial_is_joined() -> None:
    groups, info = load("landlock_context")
    clock = Clock()
    j = joiner(clock)
    evs = events_of(info, T0)
    assert j.add_events(evs) == []  # the first one waits, the rest queue behind
    out = j.add_groups(groups)
    assert out == evs  # same objects, same order
    denied = [e for e in out if e["ret"] == -13]
    assert len(denied) == 8
    for e in denied:
        a = e["audit"]
        assert a["path"] == e["object"]["path"]  # hostile names included
        assert (a["pid"], a["syscall"], a["exit"]) == (info["pid"], 257, -13)
        assert (e["lsm"], e["lsm_source"]) == ("landlock", "audit")
        assert a["rule"] == "landlock fs.read_file"
    assert [e["audit"]["serial"] for e in denied] == list(range(3, 11))
    missing = out[-1]
    assert missing["ret"] == -2
    assert "audit" not in missing
    assert (missing["lsm"], missing["lsm_source"]) == (None, None)
    s = j.stats
    assert (s.joined, s.passed, s.groups, s.groups_joined) == (8, 1, 8, 8)
    assert s.groups_ignored > 0  # BPF loads of other processes, domain records
    assert s.domains == 1
    check_accounting(j)


def test_without_syscall_records_pidless_landlock_joins_by_path() -> None:
    """-a never,task (here: a process without audit context): 1423 has no pid;
    the domain's 1424 gives the pid of the process that made it."""
    groups, info = load("landlock_alone")
    clock = Clock()
    j = joiner(clock)
    evs = events_of(info, T0 + 2_072_000_000)
    j.add_events(evs)
    out = j.add_groups(groups)
    assert out == evs
    for e in out:
        a = e["audit"]
        assert a["pid"] is None
        assert a["path"] == e["object"]["path"]
        assert a["domain_pid"] == info["pid"]  # learnt from the 1424 of the batch
        assert (e["lsm"], e["lsm_source"]) == ("landlock", "audit")
    check_accounting(j)


def test_pidless_record_prefers_the_domains_process() -> None:
    clock = Clock()
    j = joiner(clock)
    other, owner = ev(200, "/tmp/x"), ev(100, "/tmp/x")
    j.add_events([other, owner])
    j.add_groups([domain_alloc(1, 100)])  # the domain is known before the record
    assert j.add_groups([landlock_alone(2, "/tmp/x")]) == []  # `other` still waits
    assert owner["audit"]["serial"] == 2
    assert "audit" not in other
    clock.t += 0.2
    assert j.flush() == [other, owner]
    check_accounting(j)


def test_domain_record_after_the_access_record() -> None:
    """The pid-less record waits for its pid when no path decides."""
    clock = Clock()
    j = joiner(clock)
    j.add_groups([landlock_alone(2, "/tmp/y")])  # no event yet: held
    assert j.pending_groups == 1
    j.add_groups([domain_alloc(3, 100)])
    e = ev(100, "/tmp/y")
    assert j.add_events([e]) == [e]
    assert e["audit"]["domain_pid"] == 100
    check_accounting(j)


def test_seccomp_refines_dac_and_null() -> None:
    clock = Clock()
    j = joiner(clock)
    hook_rung = ev(300, ret=-1, lsm="dac")  # fexit: no LSM hook denied
    tp_rung = ev(301, ret=-1, lsm=None)
    j.add_events([hook_rung, tp_rung])
    out = j.add_groups([seccomp(1, 300), seccomp(2, 301)])
    assert out == [hook_rung, tp_rung]
    for e in out:
        assert (e["lsm"], e["lsm_source"]) == ("seccomp", "audit")
        assert e["audit"]["rule"] == "seccomp errno"
        assert "disagrees" not in e["audit"]
    check_accounting(j)


def test_seccomp_from_the_filter_run_waits_and_agrees() -> None:
    """The hook rungs name seccomp themselves (bpf/seccomp.bpf.c): such a
    denial waits for the filter's SECCOMP record and keeps lsm_source hook."""
    clock = Clock()
    j = joiner(clock)
    e = ev(302, ret=-1, lsm="seccomp")
    assert j.add_events([e]) == []  # waits: a filter that logs writes a record
    assert j.add_groups([seccomp(3, 302)]) == [e]
    assert (e["lsm"], e["lsm_source"]) == ("seccomp", "hook")
    assert e["audit"]["lsm"] == "seccomp"
    assert "disagrees" not in e["audit"]
    check_accounting(j)


def test_disagreement_keeps_the_hooks_answer() -> None:
    clock = Clock()
    j = joiner(clock)
    a = ev(400, lsm="apparmor")
    d = ev(401, lsm="dac")
    same = ev(402, lsm="landlock")
    j.add_events([a, d, same])
    out = j.add_groups(
        [
            landlock_ctx(1, 400, "/tmp/x"),
            landlock_ctx(2, 401, "/tmp/x"),
            landlock_ctx(3, 402, "/tmp/x"),
        ]
    )
    assert out == [a, d, same]
    assert (a["lsm"], a["lsm_source"], a["audit"]["disagrees"]) == (
        "apparmor",
        "hook",
        True,
    )
    assert (d["lsm"], d["audit"]["disagrees"]) == ("dac", True)
    assert (same["lsm"], same["lsm_source"]) == ("landlock", "hook")
    assert "disagrees" not in same["audit"]
    assert j.stats.disagreements == 2


# -- waiting and order ------------------------------------------------------------


def test_events_no_record_can_concern_pass_at_once() -> None:
    clock = Clock()
    j = joiner(clock)
    evs = [
        ev(1, ret=0),  # allowed
        ev(1, ret=-2),  # ENOENT: a failure, not a decision
        ev(1, ret=-1, lsm="capability", kind="syscall"),  # commoncap: no record
        ev(1, ret=-13, lsm="yama", kind="hook"),
        {
            "kind": "exec",
            "hook": "exec",
            "verdict": "allow",
            "ret": 0,
            "lsm": None,
            "pid": 1,
            "tgid": 1,
            "ts_ns": 0,
            "object": {},
        },
    ]
    assert j.add_events(evs) == evs
    assert [e["lsm_source"] for e in evs] == [None, None, "hook", "hook", None]
    assert j.stats.passed == 5
    check_accounting(j)


def test_order_is_kept_and_waits_are_bounded() -> None:
    clock = Clock()
    j = joiner(clock, max_wait=0.2)
    first, denied, after = ev(1, ret=0), ev(1), ev(1, ret=0)
    assert j.add_events([first, denied, after]) == [first]
    clock.t += 0.199
    assert j.flush() == []
    clock.t += 0.001
    assert j.flush() == [denied, after]
    assert "audit" not in denied
    assert (denied["lsm"], denied["lsm_source"]) == (None, None)
    assert j.stats.events_unmatched == 1
    check_accounting(j)


def test_a_late_group_after_its_event_left_is_unmatched() -> None:
    clock = Clock()
    j = joiner(clock, hold=1.0)
    e = ev(1)
    j.add_events([e])
    clock.t += 0.3
    assert j.flush() == [e]
    j.add_groups([landlock_ctx(1, 1, "/tmp/x")])
    assert j.pending_groups == 1
    clock.t += 1.0
    j.flush()
    assert (j.stats.groups_unmatched, j.pending_groups) == (1, 0)
    check_accounting(j)


def test_group_before_its_event() -> None:
    clock = Clock()
    j = joiner(clock)
    assert j.add_groups([landlock_ctx(7, 1, "/tmp/x")]) == []
    e = ev(1)
    assert j.add_events([e]) == [e]  # joined at once, no wait
    assert e["audit"]["serial"] == 7
    check_accounting(j)


def test_repeated_denials_join_in_order() -> None:
    clock = Clock()
    j = joiner(clock)
    evs = [ev(1, wall_ns=T0 + i * 1_000_000) for i in range(3)]
    j.add_events(evs)
    out = j.add_groups(
        [
            landlock_ctx(10 + i, 1, "/tmp/x", wall_ns=T0 + i * 1_000_000)
            for i in range(3)
        ]
    )
    assert [e["audit"]["serial"] for e in out] == [10, 11, 12]


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"pid": 2}, "another process"),
        ({"nr": 2}, "another syscall"),
        ({"exit_": -1}, "another return value"),
        ({"wall_ns": T0 + 2_000_000_000}, "outside the time window"),
        ({"path": "/tmp/other"}, "another file"),
    ],
)
def test_no_join_when_the_keys_differ(change: dict[str, Any], why: str) -> None:
    clock = Clock()
    j = joiner(clock)
    e = ev(1)
    j.add_events([e])
    kw: dict[str, Any] = {"serial": 1, "pid": 1, "path": "/tmp/x", **change}
    j.add_groups([landlock_ctx(**kw)])
    assert "audit" not in e, why
    assert j.pending_groups == 1


def test_compat_syscall_numbers_are_not_compared() -> None:
    clock = Clock()
    j = joiner(clock)
    e = ev(1)
    j.add_events([e])
    g = group(
        '1423 audit(1795964084.154:1): domain=1a blockers=fs.read_file path="/tmp/x"',
        "1300 audit(1795964084.154:1): arch=40000003 syscall=295 success=no exit=-13 "
        'a0=0 a1=0 a2=0 a3=0 items=0 ppid=1 pid=1 auid=0 uid=0 comm="t" exe="/t"',
        "1320 audit(1795964084.154:1):",
    )  # i386 openat is 295
    j.add_groups([g])
    assert e["audit"]["arch"] == "40000003"


def test_one_syscall_with_hook_and_exit_events() -> None:
    """fexit rung: file_open hook denial, then the syscall's exit, one record."""
    clock = Clock()
    j = joiner(clock)
    hook = ev(1, kind="hook", lsm="landlock", tid=5)
    exit_ev = ev(1, lsm="landlock", tid=5)
    j.add_events([hook, exit_ev])
    j.add_groups([landlock_ctx(1, 1, "/tmp/x")])
    assert hook["audit"]["serial"] == exit_ev["audit"]["serial"] == 1
    assert (j.stats.joined, j.stats.groups_joined) == (2, 1)
    # the record between the two events: the exit event still takes it
    j2 = joiner(clock)
    hook2, exit2 = (
        ev(1, kind="hook", lsm="landlock", tid=5),
        ev(1, lsm="landlock", tid=5),
    )
    j2.add_events([hook2])
    assert j2.add_groups([landlock_ctx(1, 1, "/tmp/x")]) == [hook2]
    assert j2.add_events([exit2]) == [exit2]
    assert exit2["audit"]["serial"] == 1
    assert (j2.stats.joined, j2.stats.groups_joined) == (2, 1)
    check_accounting(j2)


# -- floods -------------------------------------------------------------------------


def test_event_flood_is_bounded() -> None:
    clock = Clock()
    j = joiner(clock, max_events=100)
    released = 0
    for i in range(10):
        released += len(
            j.add_events([ev(1, wall_ns=T0 + k) for k in range(100 * i, 100 * i + 100)])
        )
        assert j.queued <= 100
    assert released == 900
    assert j.stats.overflow_events == 900
    assert j.stats.events_unmatched == 900
    check_accounting(j)
    assert len(j.drain()) == 100
    check_accounting(j)


def test_group_flood_is_bounded() -> None:
    clock = Clock()
    j = joiner(clock, max_groups=10)
    j.add_groups([landlock_ctx(i, 1000 + i, "/tmp/x") for i in range(100)])
    assert j.pending_groups == 10
    assert (j.stats.overflow_groups, j.stats.groups_unmatched) == (90, 90)
    check_accounting(j)


def test_next_deadline() -> None:
    clock = Clock()
    j = joiner(clock, max_wait=0.2, hold=1.0)
    assert j.next_deadline is None
    j.add_events([ev(1)])
    assert j.next_deadline == pytest.approx(100.2)
    j.add_groups([landlock_ctx(1, 2, "/tmp/x")])
    assert j.next_deadline == pytest.approx(100.2)
    clock.t = 100.2
    j.flush()
    assert j.next_deadline == pytest.approx(101.0)


@pytest.mark.parametrize(
    ("audited", "traced", "same"),
    [
        ("/tmp/x", "/tmp/x", True),
        ("/home/u/f", "f", True),
        ("/home/u/f", "./f", True),
        ("/home/u/d/f", "d/f", True),
        ("/real/dir/f", "/link/dir/f", True),  # through a symlink: same final name
        ("/tmp/x", "/tmp/y", False),
        ("/tmp/ab", "b", False),
    ],
)
def test_paths_agree(audited: str, traced: str, same: bool) -> None:
    assert auditjoin.paths_agree(audited, traced) is same


def test_join_cost() -> None:
    """2000 denials, each with its record: well under a second (CPU is shared)."""
    import time

    clock = Clock()
    j = joiner(clock)
    evs = [ev(1, wall_ns=T0 + i * 1000) for i in range(2000)]
    groups = [landlock_ctx(i, 1, "/tmp/x", wall_ns=T0 + i * 1000) for i in range(2000)]
    t0 = time.perf_counter()
    out = []
    for i in range(0, 2000, 100):
        out += j.add_events(evs[i : i + 100])
        out += j.add_groups(groups[i : i + 100])
    elapsed = time.perf_counter() - t0
    assert len(out) == 2000
    assert j.stats.joined == 2000
    assert elapsed < 2.0, elapsed


def test_audit_objects_follow_the_event_schema() -> None:
    """Every audit object this module makes, real records and synthetic, is
    what lsmtrace/schema/event.schema.json says (docs/events.md, Audit)."""
    import jsonschema
    import test_audit

    from lsmtrace.schema import event_schema

    schema = event_schema()
    v = jsonschema.Draft202012Validator(
        {"$defs": schema["$defs"], "$ref": "#/$defs/audit"}
    )
    made = []
    for name in ("landlock_context", "landlock_alone", "seccomp_context"):
        groups, _ = load(name)
        made += [audit.summarize(g) for g in groups]
    for text in (test_audit.APPARMOR_FILE, test_audit.SELINUX_FILE):
        made.append(test_audit.the_audit(text))
    made = [a for a in made if a is not None]
    assert {a["lsm"] for a in made} == {"landlock", "seccomp", "apparmor", "selinux"}
    for a in made:
        errors = sorted(v.iter_errors(a), key=str)
        assert not errors, (a["rule"], errors[0].message)
    assert not v.is_valid({**made[0], "lsm": "tomoyo"})
    assert not v.is_valid({k: x for k, x in made[0].items() if k != "rule"})
