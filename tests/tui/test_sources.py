"""Sources and the coalescer: bounded, merged, thread-safe; the recording reader."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

from lsmtrace.tui.sources import Batch, Coalescer, ReplaySource

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data" / "tui"


def test_live_coalescer_drops_oldest_when_the_screen_lags() -> None:
    posted: list[Batch] = []
    co = Coalescer(posted.append, maxlen=100, interval=0.0)
    co.add([{"i": i} for i in range(10)])
    assert len(posted) == 1  # first batch goes at once
    co.add([{"i": i} for i in range(10, 300)])  # not acked: held, bounded
    assert len(posted) == 1
    posted[0].ack()
    co.tick()
    assert len(posted) == 2
    assert len(posted[1].events) == 100
    assert posted[1].dropped == 190
    assert posted[1].events[-1] == {"i": 299}


def test_coalescer_rate_limit() -> None:
    now = [0.0]
    posted: list[Batch] = []
    co = Coalescer(posted.append, maxlen=1000, interval=0.1, clock=lambda: now[0])
    for _ in range(50):  # 50 additions within one interval: one post
        co.add([{}])
        if posted:
            posted[-1].ack()
    assert len(posted) == 1
    now[0] = 0.2
    co.tick()
    assert len(posted) == 2
    assert len(posted[1].events) == 49


def test_replay_blocks_instead_of_dropping() -> None:
    posted: list[Batch] = []
    done = threading.Event()

    def post(b: Batch) -> None:
        posted.append(b)
        # the "app": acknowledge from another thread, later
        threading.Timer(0.005, b.ack).start()
        if b.done:
            done.set()

    co = Coalescer(post, maxlen=50, interval=0.0, block=True)

    def run() -> None:
        for i in range(0, 1000, 10):
            co.add([{"i": j} for j in range(i, i + 10)])
        co.finish(lambda: False)

    t = threading.Thread(target=run)
    t.start()
    t.join(20)
    assert done.wait(5)
    got = [e["i"] for b in posted for e in b.events]
    assert got == list(range(1000))
    assert sum(b.dropped for b in posted) == 0
    assert max(len(b.events) for b in posted) <= 50


def _run_replay(path: Path) -> list[Batch]:
    posted: list[Batch] = []

    def post(b: Batch) -> None:
        posted.append(b)
        b.ack()

    co = Coalescer(post, maxlen=10_000, interval=0.0, block=True)
    ReplaySource(path).run(co, lambda: False)
    return posted


def test_replay_reads_fixture() -> None:
    posted = _run_replay(DATA / "lsms.jsonl")
    events = [e for b in posted for e in b.events]
    assert len(events) == 10
    assert posted[-1].done
    assert posted[-1].lost == 3
    assert posted[-1].error is None


def test_truncated_recording_shows_prefix_and_error(tmp_path: Path) -> None:
    lines = (DATA / "lsms.jsonl").read_text().splitlines()
    bad = tmp_path / "cut.jsonl"
    bad.write_text("\n".join(lines[:6]) + "\n")  # no trailer
    posted = _run_replay(bad)
    assert len([e for b in posted for e in b.events]) == 5
    assert posted[-1].done
    assert posted[-1].error


def test_pure_modules_import_without_textual() -> None:
    code = (
        "import sys, json; import lsmtrace.tui.model, lsmtrace.tui.explain, "
        "lsmtrace.tui.sources, lsmtrace.commands.tui; "
        "print(json.dumps(sorted(m for m in sys.modules "
        "if m.split('.')[0] in ('textual', 'bcc'))))"
    )
    res = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(res.stdout) == []
