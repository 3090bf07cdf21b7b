"""The live audit mode natively (root, tracepoint rung): a Landlock policy
generated from a recording of `cat a b`, then `lsmtrace trace --json --policy
P --comm cat` while `cat a b c` runs: only `c` is marked, with the rule that
would allow it; `lsmtrace export --policy P` counts it. Landlock need not be
active: nothing is enforced, the candidate policy is only evaluated."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from pathlib import Path

import helpers
import pytest
from prometheus_client.parser import text_string_to_metric_families

lsmtrace = helpers.run_lsmtrace
pytestmark = [helpers.needs_root, pytest.mark.root]


@pytest.fixture(scope="module")
def cat_policy(
    world_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path]:
    """(directory with a, b, c; the Landlock policy of `cat a b`)."""
    d = world_dir / "live-policy"
    d.mkdir()
    for name in "abc":
        (d / name).write_text(name + "\n")
    tmp = tmp_path_factory.mktemp("live-policy")
    rec, pol = tmp / "cat.jsonl", tmp / "cat.landlock.json"
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
    r = lsmtrace("policy", "generate", "--target", "landlock", str(rec), "-o", str(pol))
    assert r.returncode == 0, r.stderr.decode()
    rules = {x["path"] for x in json.loads(pol.read_text())["rules"]}
    assert str(d / "a") in rules
    assert str(d / "c") not in rules
    return d, pol


def run_cat(d: Path) -> int:
    """`cat a b c` with the recording's environment; its pid."""
    p = subprocess.Popen(
        ["cat", str(d / "a"), str(d / "b"), str(d / "c")],
        stdout=subprocess.PIPE,
        env=helpers.cli_env(),
    )
    out, _ = p.communicate(timeout=30)
    assert out == b"a\nb\nc\n"
    return p.pid


def test_trace_marks_only_what_the_policy_lacks(
    tracepoint_rung: None, tmp_path: Path, cat_policy: tuple[Path, Path]
) -> None:
    d, pol = cat_policy
    run = helpers.TraceRun(
        ["--policy", str(pol), "--comm", "cat"], tmp_path, "policy"
    ).start()
    try:
        run.wait_started()
        assert "checking policy cat.landlock.json (landlock)" in run.status_line
        pid = run_cat(d)
        time.sleep(0.5)
    finally:
        run.stop()
    assert run.returncode == 0, run.describe()
    # other `cat`s of the host may run meanwhile (--comm cat): ours is by pid
    ours = [e for e in run.events if e["tgid"] == pid]
    opened = {
        e["object"].get("path")
        for e in ours
        if e["hook"] == "sys_openat" and e["verdict"] == "allow"
    }
    assert {str(d / n) for n in "abc"} <= opened, run.describe()
    marked = [e for e in ours if "would_deny" in e]
    assert [e["object"]["path"] for e in marked] == [str(d / "c")], [
        e["would_deny"] for e in marked
    ]
    w = marked[0]["would_deny"]
    assert w["policy"] == "cat.landlock.json"
    assert w["target"] == "landlock"
    assert w["program"] == "/usr/bin/cat"
    assert w["missing"] == [json.dumps({"path": str(d / "c"), "access": ["read_file"]})]
    assert "would be denied" in run.stderr


def test_export_counts_would_deny(
    tracepoint_rung: None, tmp_path: Path, cat_policy: tuple[Path, Path]
) -> None:
    d, pol = cat_policy
    err = tmp_path / "export.err"
    argv = helpers.lsmtrace_cmd(
        "export",
        "--listen",
        "127.0.0.1:0",
        "--backend",
        "tracepoint",
        "--comm",
        "cat",
        "--policy",
        str(pol),
    )
    with open(err, "wb") as f:
        proc = subprocess.Popen(
            argv,
            stdout=subprocess.DEVNULL,
            stderr=f,
            stdin=subprocess.DEVNULL,
            env=helpers.cli_env(),
        )
    try:
        deadline = time.monotonic() + helpers.START_TIMEOUT
        url = None
        while url is None and time.monotonic() < deadline:
            m = helpers.URL_RE.search(err.read_text(errors="replace"))
            url = m.group(1) if m else None
            assert proc.poll() is None, err.read_text()
            time.sleep(0.05)
        assert url, "no status line"
        run_cat(d)
        counted = 0.0
        while counted < 1 and time.monotonic() < deadline:
            time.sleep(0.3)
            text = urllib.request.urlopen(url, timeout=10).read().decode()
            fams = {f.name: f for f in text_string_to_metric_families(text)}
            rows = [
                s
                for s in fams["lsmtrace_policy_would_deny"].samples
                if s.labels["workload"] == "cat" and s.labels["hook"] == "sys_openat"
            ]
            counted = sum(s.value for s in rows)
        assert counted >= 1, text
        assert {s.labels["policy"] for s in rows} == {"cat.landlock.json"}
        assert {s.labels["lsm"] for s in rows} == {"landlock"}
        checked = fams["lsmtrace_policy_checked"].samples[0]
        assert checked.value > counted
    finally:
        proc.terminate()
        proc.wait(helpers.STOP_TIMEOUT)
    assert proc.returncode == 0, err.read_text()
    assert "would be denied" in err.read_text()
