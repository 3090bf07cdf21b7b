"""Helpers shared by the tests of tests/tui (fixtures are in conftest.py).

A uniquely named module: `from conftest import` would resolve to whichever
conftest pytest loaded first when several test tiers run in one session.
"""

from __future__ import annotations

import json
import queue
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

pytest.importorskip("textual", reason="textual is not installed")

from lsmtrace.tui.app import LsmtraceApp  # noqa: E402
from lsmtrace.tui.sources import Coalescer, ReplaySource, ShouldStop  # noqa: E402

DATA = REPO / "tests" / "data" / "tui"
DENIALS = DATA / "denials.jsonl"
LSMS = DATA / "lsms.jsonl"
AUDITED = DATA / "audited.jsonl"  # written by make_audited.py
FROZEN_TICK = 3600.0


def load_events(path: Path) -> list[dict[str, Any]]:
    lines = path.read_text().splitlines()
    return [
        d
        for d in map(json.loads, lines)
        if "lsmtrace_recording" not in d and not d.get("trailer")
    ]


def make_app(path: Path = DENIALS, **kw: Any) -> LsmtraceApp:
    kw.setdefault("blink", False)
    kw.setdefault("tick_interval", FROZEN_TICK)
    return LsmtraceApp(ReplaySource(path), **kw)


async def wait_for(pilot: Any, cond: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for the app")
        await pilot.pause(0.02)
    await pilot.pause()


async def loaded(pilot: Any) -> None:
    """Wait until the replay is fully applied (its final batch processed)."""
    app = pilot.app
    await wait_for(pilot, lambda: app.source_done)
    # let the follow-scroll and the scrollbar that mirrors it settle
    for _ in range(3):
        await pilot.pause(0.05)
        await pilot.wait_for_scheduled_animations()


class ScriptedSource:
    """Events arrive when the test calls feed(); end() finishes the source."""

    name = "scripted"
    block = False

    def __init__(self) -> None:
        self.q: queue.Queue[list[dict[str, Any]] | None] = queue.Queue()

    def feed(self, events: Iterable[dict[str, Any]]) -> None:
        self.q.put(list(events))

    def end(self) -> None:
        self.q.put(None)

    def run(self, out: Coalescer, should_stop: ShouldStop) -> None:
        out.status("scripted")
        while not should_stop():
            try:
                item = self.q.get(timeout=0.05)
            except queue.Empty:
                out.tick()
                continue
            if item is None:
                break
            out.add(item)
        out.finish(should_stop, status="scripted: end")
