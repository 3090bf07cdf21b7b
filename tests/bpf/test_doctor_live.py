"""`lsmtrace doctor` on the real host, as root: the rungs it reports are the real ones."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import helpers
import pytest

REPO = Path(__file__).parents[2]

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: doctor probes the rungs"),
]


def run_doctor(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lsmtrace", "doctor", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    proc = run_doctor("--json")
    assert proc.returncode == 0, proc.stderr
    data: dict[str, Any] = json.loads(proc.stdout)
    return data


def check(doc: dict[str, Any], name: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [c for c in doc["checks"] if c["name"] == name]
    assert len(found) == 1, name
    return found[0]


def test_text_exits_0_and_fits_80_columns() -> None:
    proc = run_doctor()
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert re.fullmatch(r"\d+ ok, \d+ warnings?, \d+ missing", lines[-1])
    assert re.search(r"^  ok +rung tracepoint ", proc.stdout, re.M)


def test_tracepoint_rung_ok(doc: dict[str, Any]) -> None:
    assert check(doc, "rung tracepoint")["status"] == "ok"
    assert check(doc, "root")["status"] == "ok"
    assert doc["auto_backend"] in ("fexit", "kprobe", "tracepoint")


def test_fexit_reported_as_the_kernel_answers(doc: dict[str, Any]) -> None:
    from lsmtrace import probe

    real = probe.probe_fexit()
    c = check(doc, "rung fexit")
    if real.ok:
        assert c["status"] == "ok"
        pytest.skip("fexit loads on this host: no refusal to report")
    assert c["status"] == "missing"
    assert re.search(r"refused \(E[A-Z]+: ", c["detail"]), c["detail"]
    assert c["hint"]
    if "EPERM" in real.detail:
        assert "EPERM" in c["detail"]
        assert "trampoline" in c["hint"]


def test_a_probe_leaves_nothing_loaded_once_its_holder_exits() -> None:
    """The rung probes hand their program and perf event to an orphan that
    closes them (the kernel's teardown of a tracepoint attachment takes ~70 ms
    of RCU waits): nothing of a probe stays loaded after that."""
    from lsmtrace import probe

    before = set(helpers.loaded_programs())
    assert probe.probe_tracepoint().ok
    deadline = time.monotonic() + 10
    while True:
        left = set(helpers.loaded_programs()) - before
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert not left, f"programs of the probe still loaded: {left}"
