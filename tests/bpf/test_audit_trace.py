"""`lsmtrace trace` with the audit join, on this host's tracepoint rung (root).

Ground truth: the test reads the kernel's audit records itself (its own
multicast reader, next to lsmtrace's) and checks that every Landlock denial the
kernel audited for the actor is in lsmtrace's stream, with the same pid, path
and serial, `lsm: landlock` from the record (this rung cannot tell), the
blocker and the domain. And `--enable-audit` puts audit back however lsmtrace
ends. Audit state handling: see test_audit_live.py.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import helpers
import jsonschema
import pytest
from test_audit_live import audit_off, audit_on, read_for, wait_enabled, wait_gone

from lsmtrace import audit, auditnl, sandbox
from lsmtrace.schema import event_schema

pytestmark = helpers.needs_root
__all__ = ["audit_off", "audit_on"]  # fixtures, used by name

READ_FILE = 1 << 2
NAMES = [
    b"plain",
    b"with space",
    b'quo"te',
    b"new\nline",
    b"esc\x1b[31m",
    b"bad\xff\xfe",
]


def require_landlock() -> None:
    if sandbox.abi_version() < 7:
        pytest.skip(
            f"Landlock with audit (ABI 7, kernel 6.15) needed; ABI "
            f"{sandbox.abi_version()} here"
        )


def test_every_audited_landlock_denial_is_joined(
    tracepoint_rung: None, audit_on: None, world_dir: Path, tmp_path: Path
) -> None:
    require_landlock()
    d = world_dir / "ll"
    d.mkdir()
    paths = [os.fsencode(d) + b"/" + n for n in NAMES]
    for p in paths:
        Path(os.fsdecode(p)).write_bytes(b"x")
    missing = os.fsencode(d) + b"/missing"  # ENOENT: no decision, no record
    actions = [
        ["landlock_open", helpers.hexpath(p), READ_FILE] for p in [*paths, missing]
    ]
    actor = helpers.Actor("lsmt-auditjoin", actions)
    run = helpers.TraceRun(
        ["--audit", "on", "--comm", "lsmt-auditjoin"], tmp_path, "join"
    )
    with helpers.actors_cleanup([actor]), auditnl.AuditReader(max_rate=None) as truth:
        actor.wait_ready()
        run.start()
        try:
            run.wait_started()
            assert "audit join on" in run.status_line
            read_for(truth, 0.1)
            actor.go()
            actor.finish()
            raw = read_for(truth, 1.5)
        finally:
            run.stop()
    assert run.returncode == 0, run.describe()
    results = [actor.results_of(i) for i in range(len(actions))]
    assert [r.get("errno") for r in results] == ["EACCES"] * len(paths) + ["ENOENT"]

    grouper = audit.Grouper()
    audited = [
        a
        for a in (audit.summarize(g) for g in grouper.add(raw) + grouper.drain())
        if a is not None and a["pid"] == actor.pid
    ]
    assert [os.fsencode(a["path"]) for a in audited] == paths  # the kernel's truth

    evs = [
        e for e in run.events if e["tgid"] == actor.pid and e["hook"] == "sys_openat"
    ]
    denied = [e for e in evs if e["verdict"] == "deny"]
    by_serial = {e["audit"]["serial"]: e for e in denied if "audit" in e}
    for a in audited:  # every audited denial is in the stream, joined
        e = by_serial.get(a["serial"])
        assert e is not None, (a, denied)
        assert os.fsencode(e["object"]["path"]) == os.fsencode(a["path"])
        assert (e["lsm"], e["lsm_source"]) == ("landlock", "audit")
        assert e["audit"]["blockers"] == ["fs.read_file"]
        assert e["audit"]["domain"] == a["domain"]
        assert (e["audit"]["syscall"], e["audit"]["exit"]) == (257, -13)
    assert len(denied) == len(paths)
    assert all("audit" in e for e in denied)
    schema = jsonschema.Draft202012Validator(event_schema())
    for e in run.events:  # the joined form is the documented form
        errors = sorted(schema.iter_errors(e), key=str)
        assert not errors, errors[0].message
    enoent = [e for e in evs if e["verdict"] == "error"]
    assert len(enoent) == 1
    assert "audit" not in enoent[0]  # passed through: no record can concern it
    assert f"audit: {len(paths)} joined, 0 denials without a record" in run.stderr


def test_text_shows_the_rule(
    tracepoint_rung: None, audit_on: None, world_dir: Path, tmp_path: Path
) -> None:
    require_landlock()
    target = world_dir / "ruled"
    target.write_bytes(b"x")
    actor = helpers.Actor(
        "lsmt-auditrule", [["landlock_open", helpers.hexpath(target), READ_FILE]]
    )
    run = helpers.TraceRun(
        ["--denied", "--comm", "lsmt-auditrule"], tmp_path, "text", json_output=False
    )
    with helpers.actors_cleanup([actor]):
        actor.wait_ready()
        run.start()
        try:
            run.wait_started()
            actor.go()
            actor.finish()
            time.sleep(0.5)
        finally:
            run.stop()
    lines = [ln for ln in run.stdout.decode().splitlines() if str(target) in ln]
    assert lines, run.describe()
    assert "EACCES:landlock fs.read_file" in lines[0]


def start_enabling(tmp_path: Path, name: str) -> helpers.TraceRun:
    run = helpers.TraceRun(["--enable-audit", "--comm", "lsmt-none"], tmp_path, name)
    run.start().wait_started()
    assert "audit join on" in run.status_line
    assert "goes back off at exit" in run._read_err()
    assert "until reboot" in run._read_err()
    assert auditnl.get_status().enabled == 1
    return run


def watchdog_of(run: helpers.TraceRun) -> int:
    """The watchdog: a `python -m lsmtrace.auditnl watchdog` child of lsmtrace."""
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            ppid = int(
                Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1]
            )
        except (OSError, ValueError, IndexError):
            continue
        if ppid == run.pid and b"lsmtrace.auditnl" in cmd:
            return int(pid)
    raise AssertionError("no watchdog process found")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_enable_audit_restored_after_a_signal(
    tracepoint_rung: None, audit_off: None, tmp_path: Path, sig: int
) -> None:
    run = start_enabling(tmp_path, f"sig{int(sig)}")
    watchdog = watchdog_of(run)
    run.stop(sig)
    assert run.returncode == 0, run.describe()
    assert auditnl.get_status().enabled == 0
    wait_gone(watchdog)


def test_enable_audit_restored_after_sigkill(
    tracepoint_rung: None, audit_off: None, tmp_path: Path
) -> None:
    """What a SIGKILL of lsmtrace leaves: nothing, once its watchdog saw the
    pipe close (test_audit_live: what a SIGKILL of both leaves)."""
    run = start_enabling(tmp_path, "kill")
    watchdog = watchdog_of(run)
    run.kill()
    assert wait_enabled(0, timeout=10.0) < 10.0
    wait_gone(watchdog)


def test_sandboxed_command_denial_is_joined(
    tracepoint_rung: None, audit_on: None, world_dir: Path, tmp_path: Path
) -> None:
    """`lsmtrace sandbox` execs the command; Landlock audits its denials only
    because the sandbox asks it to (LANDLOCK_RESTRICT_SELF_LOG_NEW_EXEC_ON)."""
    require_landlock()
    ok, no = world_dir / "sb-ok", world_dir / "sb-no"
    ok.mkdir()
    no.mkdir()
    (ok / "a").write_text("alpha\n")
    (no / "c").write_text("gamma\n")
    policy = {
        "lsmtrace_landlock": 1,
        "handled_access_fs": ["read_file"],
        "rules": [
            {"path": p, "access": ["read_file"]}
            for p in ("/usr", "/lib", "/lib64", "/etc", str(ok))
            if os.path.exists(p)
        ],
    }
    pol = tmp_path / "p.landlock.json"
    pol.write_text(json.dumps(policy))
    run = helpers.TraceRun(
        ["--denied", "--audit", "on", "--comm", "cat"], tmp_path, "sb"
    )
    run.start()
    try:
        run.wait_started()
        bad = subprocess.run(
            helpers.lsmtrace_cmd(
                "sandbox",
                "--policy",
                str(pol),
                "--",
                "cat",
                str(ok / "a"),
                str(no / "c"),
            ),
            capture_output=True,
            env=helpers.cli_env(),
            timeout=120,
        )
        time.sleep(0.5)
    finally:
        run.stop()
    assert bad.returncode == 1
    assert bad.stdout == b"alpha\n"
    denied = [e for e in run.events if e["object"].get("path") == str(no / "c")]
    assert denied, run.describe()
    e = denied[0]
    assert (e["lsm"], e["lsm_source"]) == ("landlock", "audit")
    assert e["audit"]["rule"] == "landlock fs.read_file"
    assert e["audit"]["exe"] == "/usr/bin/cat"
