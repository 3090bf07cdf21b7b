"""A recording is complete: a file-heavy command of our own, every file it
opened is in the recording, and nothing was lost (root, tracepoint rung).

The workload opens each of a few thousand files several times over, from two
processes at once, and prints the path of every open that succeeded: that list
is the truth the recording is compared with. It runs as fast as it can (tens
of thousands of opens per second), so a consumer that decodes at the ring's
pace would lose events; record reads the ring ahead of decoding. The same
workload with a small backlog under --pause-on-loss must lose nothing either:
back-pressure stops the command instead.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import helpers
import pytest

pytestmark = helpers.needs_root

FILES = 4000
ROUNDS = 4
WORKLOAD = """
import os, sys
root, listing, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
names = sorted(os.path.join(d, f) for d, _s, fs in os.walk(root) for f in fs)
pid = os.fork()
opened = []
for _ in range(rounds):
    for p in names:
        fd = os.open(p, os.O_RDONLY)
        os.close(fd)
        opened.append(p)
with open(f"{listing}.{os.getpid()}", "w") as f:
    f.write("\\n".join(opened) + "\\n")
if pid:
    os.waitpid(pid, 0)
"""


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("files")
    for i in range(FILES):
        d = root / f"d{i // 100:02d}"
        d.mkdir(exist_ok=True)
        (d / f"f{i:05d}").write_bytes(b"x")
    return root


def record(
    tmp: Path, root: Path, *flags: str, rounds: int = ROUNDS
) -> tuple[dict[str, object], list[dict[str, object]], dict[str, list[str]]]:
    from lsmtrace.record import read_recording

    out, listing = tmp / "rec.jsonl", tmp / "opened"
    r = subprocess.run(
        [
            *helpers.lsmtrace_cmd(
                "record", "-o", str(out), "--backend", "tracepoint", *flags
            ),
            "--",
            sys.executable,
            "-c",
            WORKLOAD,
            str(root),
            str(listing),
            str(rounds),
        ],
        env=helpers.cli_env(),
        capture_output=True,
        timeout=600,
        check=False,
    )
    assert r.returncode == 0, r.stderr.decode()
    rec = read_recording(out)
    assert rec.error is None, rec.error
    assert rec.trailer is not None
    lists = {
        p.name.rsplit(".", 1)[1]: p.read_text().split() for p in tmp.glob("opened.*")
    }
    assert len(lists) == 2, lists.keys()
    return rec.trailer, rec.events, lists


def check_complete(
    trailer: dict[str, object],
    events: list[dict[str, object]],
    lists: dict[str, list[str]],
) -> None:
    assert trailer["lost"] == 0, json.dumps(trailer)[:400]
    assert trailer["malformed"] == 0
    assert trailer["events"] == len(events)
    for pid, opened in lists.items():
        assert len(opened) == FILES * ROUNDS
        seen = [
            e["object"]["path"]  # type: ignore[index]
            for e in events
            if e["tgid"] == int(pid)
            and e["hook"] == "sys_openat"
            and e["verdict"] == "allow"
        ]
        # every open of a file, in the order the process made them (the
        # directories os.walk opened are in the recording too)
        files = set(opened)
        mine = [p for p in seen if p in files]
        assert mine == opened, (
            f"pid {pid}: {len(opened)} opens printed, {len(mine)} recorded"
        )


def test_file_heavy_command_recorded_whole(
    tracepoint_rung: None, tree: Path, tmp_path: Path
) -> None:
    check_complete(*record(tmp_path, tree))


def test_pause_on_loss_with_small_buffers(
    tracepoint_rung: None, tree: Path, tmp_path: Path
) -> None:
    """A 1 MiB backlog (~2 300 events) for 32 000 opens: the command is
    stopped while it is over half full, and nothing is lost. (The ring must
    still hold what the command does while lsmtrace waits for a CPU, which on
    a loaded CI host is longer than the tens of milliseconds a 1024-page ring
    holds: the default 32 MiB ring, so that the backlog is what fills up.)"""
    trailer, events, lists = record(
        tmp_path, tree, "--pause-on-loss", "--backlog-mb", "1"
    )
    assert trailer["paused"] > 0, "the small backlog never paused the command"
    check_complete(trailer, events, lists)
    assert isinstance(trailer["paused"], int)
    print(f"paused {trailer['paused']} times, {trailer['paused_s']} s", file=sys.stderr)


def test_a_lossy_recording_says_where_it_lost_and_makes_no_policy(
    tracepoint_rung: None, tree: Path, tmp_path: Path
) -> None:
    """A one-page ring (~8 events) and a 1 MiB backlog cannot keep up: the
    kernel counts each event it could not deliver under its hook, the trailer
    carries those counts (their sum is the loss), and `policy generate`
    refuses the recording with one error line that names them."""
    t, _events, _lists = record(
        tmp_path, tree, "--buffer-pages", "1", "--backlog-mb", "1", rounds=2
    )
    out = tmp_path / "rec.jsonl"
    by_hook = t["lost_by_hook"]
    assert t["lost"] > 0, "a one-page ring kept up: nothing to check"
    assert sum(by_hook.values()) == t["lost"], by_hook
    # the workload's opens are what overran the ring
    assert max(by_hook, key=by_hook.get) == "sys_openat", by_hook
    g = subprocess.run(
        helpers.lsmtrace_cmd("policy", "generate", "--target", "landlock", str(out)),
        env=helpers.cli_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert g.returncode != 0
    errs = [ln for ln in g.stderr.splitlines() if ln.startswith("error:")]
    assert len(errs) == 1, g.stderr
    assert f"{t['lost']} of {t['attempted']} events lost" in errs[0], errs[0]
    assert f"sys_openat {by_hook['sys_openat']}" in errs[0], errs[0]
    assert "--accept-lossy" in g.stderr
