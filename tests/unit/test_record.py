"""Recordings: the versioned JSONL format, 0600 files, damaged files, replay."""

from __future__ import annotations

import argparse
import gzip
import io
import json
import os
import stat
from pathlib import Path

import pytest

from lsmtrace import cli
from lsmtrace.commands import options
from lsmtrace.errors import RecordingError
from lsmtrace.record import FORMAT_VERSION, RecordingWriter, read_recording

DATA = Path(__file__).resolve().parents[1] / "data" / "recordings"
CAT = DATA / "cat_two_files.jsonl"


def parser() -> argparse.ArgumentParser:
    return cli.build_parser()


def run(argv: list[str]) -> tuple[int, str, BaseException | None]:
    args = parser().parse_args(argv)
    out = io.StringIO()
    try:
        rc = args.func(args, out) if argv[0] != "record" else args.func(args)
    except RecordingError as e:
        return 1, out.getvalue(), e
    return rc, out.getvalue(), None


def sample_events(n: int) -> list[dict[str, object]]:
    evs = [json.loads(ln) for ln in CAT.read_text().splitlines()[1:-1]]
    return evs[:n]


@pytest.mark.parametrize("compress", [False, True])
def test_roundtrip(tmp_path: Path, compress: bool) -> None:
    path = tmp_path / ("r.jsonl.gz" if compress else "r.jsonl")
    evs = sample_events(10)
    w = RecordingWriter(path, {"rung": "tracepoint", "command": ["cat"]}, gzip=compress)
    w.write_events(evs[:4])
    w.write_events(evs[4:])
    w.close({"lost": 0, "attempted": 10, "ended": "x", "counts": []})
    raw = path.read_bytes()
    assert raw.startswith(b"\x1f\x8b") == compress
    rec = read_recording(path)
    assert rec.error is None
    assert rec.header["lsmtrace_recording"] == 1
    assert rec.header["format_version"] == FORMAT_VERSION
    assert rec.header["command"] == ["cat"]
    assert rec.events == evs
    assert rec.trailer is not None
    assert rec.trailer["events"] == 10
    assert rec.trailer["trailer"] is True


def test_created_0600_even_with_umask_0(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        w = RecordingWriter(tmp_path / "r.jsonl", {})
        mode = stat.S_IMODE(os.stat(tmp_path / "r.jsonl").st_mode)
        w.close({})
    finally:
        os.umask(old)
    assert mode == 0o600


def test_existing_file_refused_then_overwritten_0600(tmp_path: Path) -> None:
    p = tmp_path / "r.jsonl"
    p.write_text("old")
    os.chmod(p, 0o644)
    with pytest.raises(RecordingError, match="exists"):
        RecordingWriter(p, {})
    assert p.read_text() == "old"
    w = RecordingWriter(p, {}, overwrite=True)
    assert stat.S_IMODE(os.stat(p).st_mode) == 0o600
    w.close({})
    assert read_recording(p).error is None


def test_symlink_not_followed(tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.write_text("keep")
    (tmp_path / "link").symlink_to(target)
    with pytest.raises(RecordingError):
        RecordingWriter(tmp_path / "link", {}, overwrite=True)
    assert target.read_text() == "keep"


def test_truncated_fixture_keeps_prefix() -> None:
    rec = read_recording(DATA / "truncated.jsonl")
    assert rec.trailer is None
    assert rec.error is not None
    assert rec.error.line == 41
    assert "line 41" in rec.error.message
    assert "truncated" in rec.error.message
    assert len(rec.events) == 39
    assert rec.events == sample_events(39)


def test_missing_trailer_is_an_error(tmp_path: Path) -> None:
    lines = CAT.read_text().splitlines(keepends=True)
    p = tmp_path / "r.jsonl"
    p.write_text("".join(lines[:-1]))
    rec = read_recording(p)
    assert rec.error is not None
    assert "without its trailer" in rec.error.message
    assert len(rec.events) == len(lines) - 2


def test_corrupt_line_in_the_middle(tmp_path: Path) -> None:
    lines = CAT.read_text().splitlines(keepends=True)
    lines[5] = '{"time": broken\n'
    p = tmp_path / "r.jsonl"
    p.write_text("".join(lines))
    rec = read_recording(p)
    assert rec.error is not None
    assert rec.error.line == 6
    assert "not JSON" in rec.error.message
    assert len(rec.events) == 4


def test_not_an_event_and_data_after_trailer(tmp_path: Path) -> None:
    lines = CAT.read_text().splitlines(keepends=True)
    p = tmp_path / "r.jsonl"
    p.write_text("".join(lines[:3]) + '{"foo": 1}\n')
    rec = read_recording(p)
    assert rec.error is not None
    assert rec.error.line == 4
    assert "not an event" in rec.error.message
    p.write_text("".join(lines) + lines[1])
    rec = read_recording(p)
    assert rec.error is not None
    assert "after the trailer" in rec.error.message
    assert rec.trailer is not None


def test_truncated_gzip(tmp_path: Path) -> None:
    raw = (DATA / "cat_two_files.jsonl.gz").read_bytes()
    p = tmp_path / "r.jsonl.gz"
    p.write_bytes(raw[: len(raw) // 2])
    rec = read_recording(p)
    assert rec.error is not None
    assert rec.trailer is None
    assert 0 < len(rec.events) < 76
    assert rec.events == sample_events(len(rec.events))


def test_gz_fixture_equals_plain() -> None:
    a, b = read_recording(CAT), read_recording(DATA / "cat_two_files.jsonl.gz")
    assert a.events == b.events
    assert a.trailer == b.trailer
    assert a.error is None


def test_version_mismatch_names_both_versions() -> None:
    with pytest.raises(RecordingError) as ei:
        read_recording(DATA / "future_version.jsonl")
    assert "version 99" in ei.value.message
    assert f"version {FORMAT_VERSION}" in ei.value.message
    assert ei.value.hint


@pytest.mark.parametrize(
    "content", [b"", b'{"time": 1}\n', b"garbage\n", b"\x1f\x8bnot gzip"]
)
def test_not_a_recording(tmp_path: Path, content: bytes) -> None:
    p = tmp_path / "x"
    p.write_bytes(content)
    with pytest.raises(RecordingError):
        read_recording(p)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(RecordingError, match="no such file"):
        read_recording(tmp_path / "nope")


# -- replay ---------------------------------------------------------------------


def test_replay_text_like_trace() -> None:
    rc, out, err = run(["replay", "--width", "80", str(CAT)])
    assert rc == 0
    assert err is None
    lines = out.splitlines()
    assert lines[0].startswith("TIME     PID")
    assert len(lines) == 1 + 74  # decisions; the 2 process events need --proc-events
    assert all(len(ln) <= 80 for ln in lines)
    _rc, out, _err = run(["replay", "--proc-events", str(CAT)])
    assert len(out.splitlines()) == 1 + 76
    events = sample_events(76)
    # the wall clock of the text equals the event's own "time" field
    assert lines[1].split()[0] == events[0]["time"][11:19]  # type: ignore[index]
    assert any(
        ln.endswith(" a") and "sys_openat" in ln for ln in lines
    )  # relative, as passed


def test_replay_json_is_the_event_objects() -> None:
    rc, out, _ = run(["replay", "--json", "--proc-events", str(CAT)])
    assert rc == 0
    assert [json.loads(ln) for ln in out.splitlines()] == sample_events(76)


def test_replay_filters() -> None:
    _, out, _ = run(["replay", "--json", "--hooks", "openat", str(CAT)])
    evs = [json.loads(ln) for ln in out.splitlines()]
    assert evs
    assert {e["hook"] for e in evs} == {"sys_openat"}
    _, out, _ = run(["replay", "--json", "--denied", str(CAT)])
    assert out == ""
    _, out, _ = run(["replay", "--json", "--comm", "nosuch", str(CAT)])
    assert out == ""
    pid = sample_events(1)[0]["tgid"]
    _, out, _ = run(["replay", "--json", "--pid", str(pid), str(CAT)])
    assert len(out.splitlines()) == 74  # without the fork and exec events


def test_replay_truncated_prints_prefix_then_error() -> None:
    rc, out, err = run(
        ["replay", "--no-header", "--proc-events", str(DATA / "truncated.jsonl")]
    )
    assert rc == 1
    assert isinstance(err, RecordingError)
    assert len(out.splitlines()) == 39
    assert "line 41" in err.message


def test_replay_hostile_names_escaped() -> None:
    rc, out, _ = run(["replay", "--width", "0", str(DATA / "hostile.jsonl")])
    assert rc == 0
    assert "\x1b" not in out
    assert "new\\nline" in out
    assert "bad\\xff\\xfeutf8" in out


def test_record_parser_takes_command_after_dashdash() -> None:
    args = parser().parse_args(
        ["record", "-o", "x", "--comm", "a", "--", "cat", "-n", "f"]
    )
    assert options.command_args(args) == ["cat", "-n", "f"]
    assert args.comm == "a"
    assert args.output == "x"


def test_gzip_by_name_is_valid_gzip(tmp_path: Path) -> None:
    p = tmp_path / "r.jsonl.gz"
    w = RecordingWriter(p, {}, gzip=True)
    w.write_events(sample_events(3))
    w.close({})
    with gzip.open(p, "rt") as f:
        assert len(f.read().splitlines()) == 5


def big_recording(path: Path, n: int = 3000) -> Path:
    """A recording whose output is larger than a pipe's buffer (64 KiB): n
    opens of distinct files by one cat."""
    ev = next(e for e in sample_events(76) if e["hook"] == "sys_openat")
    w = RecordingWriter(path, {"rung": "tracepoint", "command": ["cat"], "cwd": "/"})
    w.write_events(
        {**ev, "object": {"path": f"/srv/data/file-{i:05d}.txt"}}  # type: ignore[dict-item]
        for i in range(n)
    )
    w.close({"lost": 0, "attempted": n, "ended": "x", "counts": []})
    return path


@pytest.mark.parametrize(
    "argv",
    [
        ["replay", "BIG"],
        ["replay", "--json", "BIG"],
        ["policy", "diff", str(CAT), "BIG"],
        ["policy", "generate", "--target", "apparmor", "BIG"],
    ],
)
def test_output_into_a_closed_pipe_ends_quietly(
    argv: list[str], tmp_path: Path
) -> None:
    """`lsmtrace replay ... | head -1`: no BrokenPipeError traceback, exit 0."""
    import subprocess
    import sys

    big = str(big_recording(tmp_path / "big.jsonl"))
    argv = [big if a == "BIG" else a for a in argv]
    p = subprocess.Popen(
        [sys.executable, "-m", "lsmtrace", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert p.stdout is not None
    assert p.stderr is not None
    assert p.stdout.readline()
    p.stdout.close()  # the reader goes away, as `head` does
    err = p.stderr.read().decode()
    rc = p.wait(timeout=60)
    assert "Traceback" not in err, err
    assert "BrokenPipe" not in err, err
    assert rc in (0, 1), err  # diff exits 1 when the recordings differ
