"""No policy from a recording that lost events or was cut, unless asked
(--accept-lossy, and then the policy says so); replay says what is missing.
Run as users run them: `python -m lsmtrace ...`, exit status and stderr."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lsmtrace.record import loss_summary, read_recording

DATA = Path(__file__).resolve().parents[1] / "data" / "recordings"
CAT = DATA / "cat_two_files.jsonl"
REPO = Path(__file__).resolve().parents[2]


def lsmtrace(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lsmtrace", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)
    return path


@pytest.fixture
def lossy(tmp_path: Path) -> Path:
    lines = CAT.read_text().splitlines()
    t = json.loads(lines[-1])
    t["lost"] = 5
    t["attempted"] = t["events"] + 5
    t["lost_by_hook"] = {"sys_openat": 1, "file_open": 4}
    return write(tmp_path / "lossy.jsonl", [*lines[:-1], json.dumps(t)])


@pytest.fixture
def cut(tmp_path: Path) -> Path:
    return write(tmp_path / "cut.jsonl", CAT.read_text().splitlines()[:-1])


def errors(stderr: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if ln.startswith("error:")]


def test_generate_refuses_a_lossy_recording(lossy: Path, tmp_path: Path) -> None:
    out = tmp_path / "p.json"
    p = lsmtrace(
        "policy", "generate", "--target", "landlock", "-o", str(out), str(lossy)
    )
    assert p.returncode != 0
    [err] = errors(p.stderr)
    # how many, on which hooks (the kernel's per-hook loss count, most first)
    assert "5 of 81 events lost" in err, err
    assert "lost on: file_open 4, sys_openat 1" in err, err
    assert "--accept-lossy" in p.stderr
    assert p.stdout == ""
    assert not out.exists()


def test_generate_refuses_a_cut_recording(cut: Path) -> None:
    p = lsmtrace("policy", "generate", "--target", "apparmor", str(cut))
    assert p.returncode != 0
    [err] = errors(p.stderr)
    assert "without its trailer" in err, err
    assert "--accept-lossy" in p.stderr
    assert p.stdout == ""


def test_check_refuses_a_lossy_recording(lossy: Path, tmp_path: Path) -> None:
    policy = tmp_path / "cat.json"
    made = lsmtrace(
        "policy", "generate", "--target", "landlock", "-o", str(policy), str(CAT)
    )
    assert made.returncode == 0, made.stderr
    p = lsmtrace("policy", "check", "--policy", str(policy), str(lossy))
    assert p.returncode != 0
    [err] = errors(p.stderr)
    assert "lost on: file_open 4" in err, err


def test_accept_lossy_stamps_the_loss_into_the_policy(lossy: Path) -> None:
    p = lsmtrace(
        "policy", "generate", "--target", "landlock", "--accept-lossy", str(lossy)
    )
    assert p.returncode == 0, p.stderr
    warnings = json.loads(p.stdout)["warnings"]
    assert any("5 of 81 events lost" in w for w in warnings), warnings
    assert "warning:" in p.stderr
    p = lsmtrace(
        "policy", "generate", "--target", "apparmor", "--accept-lossy", str(lossy)
    )
    assert p.returncode == 0, p.stderr
    stamped = [ln for ln in p.stdout.splitlines() if "5 of 81 events lost" in ln]
    assert stamped, p.stdout[:2000]
    assert stamped[0].lstrip().startswith("#"), stamped


def test_replay_says_what_the_recording_lost(lossy: Path) -> None:
    p = lsmtrace("replay", str(lossy))
    assert p.returncode == 0, p.stderr
    assert "note:" in p.stderr
    assert "lost on: file_open 4, sys_openat 1" in p.stderr
    assert p.stdout.count("\n") >= 70  # the events are still shown


def test_a_trailer_without_per_hook_loss_names_the_hooks_seen(tmp_path: Path) -> None:
    """Recordings made before lost_by_hook: the hooks the kernel counted."""
    lines = CAT.read_text().splitlines()
    t = json.loads(lines[-1])
    t["lost"] = 2
    rec = read_recording(write(tmp_path / "old.jsonl", [*lines[:-1], json.dumps(t)]))
    s = loss_summary(rec)
    assert s is not None
    assert "2 of 76 events lost" in s
    assert "the kernel counted decisions on: capable" in s


def test_hook_names_from_a_recording_are_escaped(tmp_path: Path) -> None:
    """A recording may come from anywhere: its per-hook names reach the
    terminal escaped, never as control sequences."""
    lines = CAT.read_text().splitlines()
    t = json.loads(lines[-1])
    t["lost"] = 1
    t["lost_by_hook"] = {"evil\x1b[2J\rfile_open": 1}
    rec = write(tmp_path / "evil.jsonl", [*lines[:-1], json.dumps(t)])
    p = lsmtrace("policy", "generate", "--target", "landlock", str(rec))
    assert p.returncode != 0
    [err] = errors(p.stderr)
    assert "\x1b" not in p.stderr
    assert "\r" not in p.stderr
    assert "evil\\x1b[2J\\rfile_open 1" in err, err


def test_hook_names_of_an_older_trailer_are_escaped(tmp_path: Path) -> None:
    lines = CAT.read_text().splitlines()
    t = json.loads(lines[-1])
    t["lost"] = 1
    t["counts"] = [{"hook": "evil\x1b[2J", "count": 1}]
    rec = read_recording(write(tmp_path / "old.jsonl", [*lines[:-1], json.dumps(t)]))
    s = loss_summary(rec)
    assert s is not None
    assert "\x1b" not in s
    assert "decisions on: evil\\x1b[2J" in s
