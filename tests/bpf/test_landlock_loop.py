"""The closed loop, natively (root, tracepoint rung, Landlock active):
record a workload -> generate a Landlock policy -> the workload passes under
`lsmtrace sandbox`; an access outside the policy gets EACCES, and a concurrent
`lsmtrace trace --denied` sees that sys_openat EACCES on the path."""

from __future__ import annotations

import json
import os
from pathlib import Path

import helpers
import pytest

lsmtrace = helpers.run_lsmtrace
pytestmark = helpers.needs_root


def landlock_abi() -> int:
    from lsmtrace import sandbox

    return sandbox.abi_version()


def test_record_generate_sandbox_closed_loop(
    tracepoint_rung: None, world_dir: Path, tmp_path: Path
) -> None:
    if landlock_abi() <= 0:
        pytest.skip("Landlock is not active on this kernel (/sys/kernel/security/lsm)")
    d = world_dir / "loop"
    d.mkdir()
    for name, text in (("a", "alpha\n"), ("b", "beta\n"), ("c", "gamma\n")):
        (d / name).write_text(text)
    rec = tmp_path / "cat.jsonl"
    r = lsmtrace(
        "record",
        "-o",
        str(rec),
        "--backend",
        "tracepoint",
        "--",
        "cat",
        str(d / "a"),
        str(d / "b"),
    )
    assert r.returncode == 0, r.stderr.decode()
    assert r.stdout == b"alpha\nbeta\n"

    pol = tmp_path / "cat.landlock.json"
    r = lsmtrace("policy", "generate", "--target", "landlock", str(rec), "-o", str(pol))
    assert r.returncode == 0, r.stderr.decode()
    rules = {x["path"]: x["access"] for x in json.loads(pol.read_text())["rules"]}
    assert rules[str(d / "a")] == ["read_file"]
    assert str(d / "c") not in rules

    # the audit step: the recording passes its own policy; the third file would not
    r = lsmtrace("policy", "check", "--policy", str(pol), str(rec))
    assert r.returncode == 0, r.stdout.decode()

    ok = lsmtrace(
        "sandbox", "--policy", str(pol), "--", "cat", str(d / "a"), str(d / "b")
    )
    assert ok.returncode == 0, ok.stderr.decode()
    assert ok.stdout == b"alpha\nbeta\n"

    run = helpers.TraceRun(["--denied", "--comm", "cat"], tmp_path, "denied").start()
    try:
        run.wait_started()
        bad = lsmtrace(
            "sandbox", "--policy", str(pol), "--", "cat", str(d / "a"), str(d / "c")
        )
    finally:
        run.stop()
    assert bad.returncode == 1
    assert bad.stdout == b"alpha\n"
    assert b"Permission denied" in bad.stderr
    hits = [
        e
        for e in run.events
        if e["hook"] == "sys_openat" and e["object"].get("path") == str(d / "c")
    ]
    assert hits, run.describe()
    assert hits[0]["verdict"] == "deny"
    assert hits[0]["errno"] == "EACCES"
    # and what the sandbox allowed is not reported as denied
    assert not [e for e in run.events if e["object"].get("path") == str(d / "b")]


def test_sandbox_dry_run_and_missing_command(tmp_path: Path) -> None:
    if landlock_abi() <= 0:
        pytest.skip("Landlock is not active on this kernel (/sys/kernel/security/lsm)")
    pol = tmp_path / "p.json"
    pol.write_text(
        json.dumps(
            {
                "lsmtrace_landlock": 1,
                "handled_access_fs": ["read_file"],
                "rules": [
                    {"path": "/usr/bin/true", "access": ["execute"]},
                    {"path": "/nonexistent", "access": ["read_file"]},
                ],
            }
        )
    )
    r = lsmtrace("sandbox", "--policy", str(pol), "--dry-run")
    assert r.returncode == 0
    out = r.stdout.decode()
    assert "Landlock ABI" in out
    assert "skipped /nonexistent" in out
    r = lsmtrace("sandbox", "--policy", str(pol))
    assert r.returncode == 2
    assert b"no command" in r.stderr


MKTEMP_WORKLOAD = 'f=$(mktemp); echo hi > "$f"; cat "$f"; rm "$f"'


def test_mktemp_gets_a_private_tmpdir_not_all_of_tmp(
    tracepoint_rung: None, tmp_path: Path
) -> None:
    """A workload using mktemp: the Landlock policy grants no rule on /tmp but a
    per-run private TMPDIR (private_tmp); the workload passes in the sandbox,
    and a write elsewhere in /tmp is denied."""
    if landlock_abi() <= 0:
        pytest.skip("Landlock is not active on this kernel (/sys/kernel/security/lsm)")
    rec = tmp_path / "mktemp.jsonl"
    r = lsmtrace(
        "record",
        "-o",
        str(rec),
        "--backend",
        "tracepoint",
        "--",
        "sh",
        "-c",
        MKTEMP_WORKLOAD,
    )
    assert r.returncode == 0, r.stderr.decode()
    assert r.stdout == b"hi\n"
    pol = tmp_path / "mktemp.landlock.json"
    r = lsmtrace("policy", "generate", "--target", "landlock", str(rec), "-o", str(pol))
    assert r.returncode == 0, r.stderr.decode()
    assert b"note: random temporary names directly under /tmp" in r.stderr
    doc = json.loads(pol.read_text())
    assert "/tmp" not in {x["path"] for x in doc["rules"]}
    assert {"make_reg", "write_file", "read_file", "remove_file"} <= set(
        doc["private_tmp"]["access"]
    )

    ok = lsmtrace("sandbox", "--policy", str(pol), "--", "sh", "-c", MKTEMP_WORKLOAD)
    assert ok.returncode == 0, ok.stderr.decode()
    assert ok.stdout == b"hi\n"
    deviation = tmp_path.parent / f"lsmtrace-deviation-{os.getpid()}"
    bad = lsmtrace(
        "sandbox",
        "--policy",
        str(pol),
        "--",
        "sh",
        "-c",
        MKTEMP_WORKLOAD + f"; echo x > {deviation}",
    )
    assert bad.returncode != 0
    assert b"Permission denied" in bad.stderr
    assert not deviation.exists()
