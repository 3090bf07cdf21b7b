"""The audit source on the running kernel: real records, the --enable-audit guard.

Audit's state is global to the host. A test that needs audit on turns it on only
if it is off, and puts it back in a `finally` (only if it is still what the test
set: another process may have changed it meanwhile). The guard tests need audit
off at their start (else there is nothing to restore) and skip otherwise.

Note: once audit has been on since boot, every process forked afterwards pays a
syscall audit context until reboot (docs/events.md, "audit"): running these
tests leaves the host in that state.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helpers
import pytest

from lsmtrace import audit, auditnl

pytestmark = helpers.needs_root

LANDLOCK_CHILD = helpers.REPO / "tests/data/audit/landlock_child.py"


def status_or_skip() -> auditnl.AuditStatus:
    try:
        return auditnl.get_status()
    except auditnl.AuditUnavailable as e:
        pytest.skip(f"audit netlink unavailable: {e}")


@pytest.fixture
def audit_on() -> Iterator[None]:
    """Audit enabled for the test; the previous state back after it."""
    st = status_or_skip()
    changed = st.enabled == 0
    if changed:
        auditnl.set_enabled(1)
    try:
        yield
    finally:
        if changed and auditnl.get_status().enabled == 1:
            auditnl.set_enabled(0)


@pytest.fixture
def audit_off() -> Iterator[None]:
    """The guard tests start from audit off, and leave it off."""
    st = status_or_skip()
    if st.enabled != 0:
        pytest.skip(
            f"audit is already enabled={st.enabled} (another process?): "
            "--enable-audit would have nothing to restore"
        )
    try:
        yield
    finally:
        if auditnl.get_status().enabled == 1:
            auditnl.set_enabled(0)


def landlock_denials(paths: list[bytes], repeat: int = 1) -> dict[str, Any]:
    p = subprocess.run(
        [
            sys.executable,
            str(LANDLOCK_CHILD),
            "--repeat",
            str(repeat),
            *(x.hex() for x in paths),
        ],
        capture_output=True,
        check=True,
        timeout=120,
    )
    out = json.loads(p.stdout)
    if "setup" in out:
        pytest.skip(f"Landlock unavailable (errno {out['setup']})")
    return dict(out)


def read_for(reader: auditnl.AuditReader, seconds: float) -> list[tuple[int, bytes]]:
    out: list[tuple[int, bytes]] = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        select.select([reader], [], [], 0.05)
        out += reader.read()
    return out


# -- reading ---------------------------------------------------------------------------


def test_a_real_landlock_denial_read_and_parsed(
    audit_on: None, world_dir: Path
) -> None:
    names = [b"plain", b"with space", b"esc\x1b[1m", b"bad\xff"]
    paths = [os.fsencode(world_dir) + b"/" + n for n in names]
    for p in paths:
        Path(os.fsdecode(p)).write_bytes(b"x")
    with auditnl.AuditReader() as reader:
        read_for(reader, 0.1)
        child = landlock_denials(paths)
        raw = read_for(reader, 1.0)
    assert child["errnos"] == [13] * len(paths)
    grouper = audit.Grouper(timeout=0.05)
    groups = grouper.add(raw) + grouper.drain()
    mine = [
        a
        for a in (audit.summarize(g) for g in groups)
        if a is not None
        and (a["pid"] == child["pid"] or a.get("domain_pid") == child["pid"])
    ]
    assert [os.fsencode(a["path"]) for a in mine] == paths
    for a in mine:
        assert a["lsm"] == "landlock"
        assert a["blockers"] == ["fs.read_file"]
        assert a["rule"] == "landlock fs.read_file"
        if a["syscall"] is not None:  # this process has an audit context
            assert (a["syscall"], a["exit"]) == (257, -13)
    assert grouper.malformed == 0


def test_reader_counts_overruns_and_goes_on(audit_on: None, world_dir: Path) -> None:
    """A reader that does not keep up: the kernel drops for it (ENOBUFS, counted
    in `overruns`) or, before it, at its own backlog limit (status `lost`)."""
    target = os.fsencode(world_dir) + b"/flood"
    Path(os.fsdecode(target)).write_bytes(b"x")
    lost_before = auditnl.get_status().lost
    with auditnl.AuditReader(rcvbuf=4096) as reader:
        child = landlock_denials([target], repeat=3000)  # ~12000 records, unread
        time.sleep(0.5)
        first = reader.read(max_records=100)
        rest = read_for(reader, 0.5)
        lost = auditnl.get_status().lost - lost_before
        again = landlock_denials([target])  # the socket still works afterwards
        late = read_for(reader, 1.0)
    assert child["n"] == 3000
    assert len(first) <= 100  # bounded per call
    assert reader.overruns > 0 or lost > 0, (reader.overruns, lost)
    assert len(first) + len(rest) < 4 * 3000  # some were dropped
    grouper = audit.Grouper()
    summaries = [audit.summarize(g) for g in grouper.add(late) + grouper.drain()]
    assert any(
        a is not None
        and a.get("pid") in (again["pid"], None)
        and a.get("path") == os.fsdecode(target)
        for a in summaries
    )


def test_status_and_rules_read_only() -> None:
    st = status_or_skip()
    assert st.enabled in (0, 1, 2)
    assert st.backlog_limit >= 0
    rules = auditnl.list_rules()
    assert all(isinstance(r, auditnl.Rule) for r in rules)
    assert auditnl.get_status().enabled == st.enabled  # nothing changed


# -- --enable-audit: restore however lsmtrace ends ------------------------------------

GUARDED = r"""
import os, signal, sys, time
from lsmtrace import auditnl
signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))  # as the session does
# Ctrl-C as KeyboardInterrupt, whoever started us: a shell's background job
# inherits SIGINT ignored, and Python then leaves it ignored
signal.signal(signal.SIGINT, signal.default_int_handler)
how = sys.argv[1]
with auditnl.EnableGuard() as g:
    assert g.enable()
    print("on", g.watchdog_proc.pid, flush=True)
    if how == "raise":
        raise RuntimeError("crash")
    if how == "abort":
        os.abort()  # no finally, no atexit: only the watchdog is left
    time.sleep(60)
"""


def start_guarded(how: str) -> tuple[subprocess.Popen[bytes], int]:
    """The child turned audit on and says so ("on WATCHDOG_PID"); it may
    already be ending (how="raise"/"abort")."""
    p = subprocess.Popen(
        [sys.executable, "-c", GUARDED, how],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=helpers.cli_env(),
        cwd=str(helpers.REPO),
    )
    assert p.stdout is not None
    line = p.stdout.readline().decode().split()
    if not line or line[0] != "on":
        p.kill()
        raise AssertionError(f"guarded child did not enable audit: {p.communicate()}")
    if how == "sleep":
        assert auditnl.get_status().enabled == 1
    return p, int(line[1])


def wait_enabled(value: int, timeout: float = 5.0) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if auditnl.get_status().enabled == value:
            return time.monotonic() - t0
        time.sleep(0.01)
    raise AssertionError(f"audit enabled != {value} after {timeout} s")


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_restored_after_a_signal(audit_off: None, sig: int) -> None:
    p, watchdog = start_guarded("sleep")
    p.send_signal(sig)
    p.wait(timeout=30)
    assert auditnl.get_status().enabled == 0  # restored by lsmtrace itself
    wait_gone(watchdog)


def wait_gone(pid: int, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while pid_alive(pid) and time.monotonic() < end:
        time.sleep(0.02)
    assert not pid_alive(pid), f"watchdog {pid} still alive"


def test_restored_after_an_exception(audit_off: None) -> None:
    p, watchdog = start_guarded("raise")
    p.wait(timeout=30)
    assert p.returncode == 1
    assert auditnl.get_status().enabled == 0
    wait_gone(watchdog)


@pytest.mark.parametrize("how", ["kill", "abort"])
def test_restored_by_the_watchdog_after_sigkill_or_abort(
    audit_off: None, how: str
) -> None:
    p, watchdog = start_guarded("abort" if how == "abort" else "sleep")
    if how == "kill":
        p.kill()
    p.wait(timeout=30)
    took = wait_enabled(0, timeout=5.0)
    assert took < 5.0
    wait_gone(watchdog)
    assert p.stderr is not None
    assert b"audit put back to enabled=0" in p.stderr.read()


def test_the_watchdog_survives_a_kill_of_the_process_group(audit_off: None) -> None:
    """Ctrl-C or `kill -- -PGID` of lsmtrace's group does not reach it."""
    p = subprocess.Popen(
        [sys.executable, "-c", GUARDED, "sleep"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=helpers.cli_env(),
        cwd=str(helpers.REPO),
        start_new_session=True,
    )
    assert p.stdout is not None
    line = p.stdout.readline().decode().split()
    assert line[0] == "on"
    os.killpg(p.pid, signal.SIGKILL)
    p.wait(timeout=30)
    wait_enabled(0)
    wait_gone(int(line[1]))


def test_what_a_sigkill_of_both_leaves(audit_off: None) -> None:
    """lsmtrace and its watchdog both SIGKILLed: audit stays on (the fixture
    turns it off). This is the one case the guard cannot cover."""
    p, watchdog = start_guarded("sleep")
    os.kill(watchdog, signal.SIGKILL)
    p.kill()
    p.wait(timeout=30)
    time.sleep(0.3)
    assert auditnl.get_status().enabled == 1


def test_rate_bound_sheds_beyond_it(audit_on: None, world_dir: Path) -> None:
    """max_rate bounds what is parsed under a flood; the rest is counted."""
    target = os.fsencode(world_dir) + b"/shed"
    Path(os.fsdecode(target)).write_bytes(b"x")
    with auditnl.AuditReader(max_rate=200.0) as reader:  # burst 20
        landlock_denials([target], repeat=500)  # ~2000 records
        got = read_for(reader, 1.0)
    assert reader.shed > 0
    assert len(got) <= 20 + 200 * 1.5  # burst + the rate over the reading time
    assert reader.received == len(got) + reader.shed
