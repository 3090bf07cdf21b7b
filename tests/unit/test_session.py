"""The Session (lsmtrace/session.py), the one pipeline of every consumer, with
a fake source: raw payloads captured from real runs go in, event dicts come out,
enriched in order, quiet probes and process events selected, the stop order and
the accounting as the live tests see them."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from test_events import load

from lsmtrace import abi
from lsmtrace.events import IdNames, WallClock
from lsmtrace.session import Session

Batch = Callable[[bytes, list[int]], None]


class FakeSource:
    """Hands out captured batches, then nothing; logs the call order."""

    def __init__(
        self,
        batches: list[tuple[bytes, list[int]]],
        ids: IdNames,
        names: dict[int, str],
        tail: list[tuple[bytes, list[int]]] | None = None,
        lost: int = 0,
    ) -> None:
        self.id_names, self.syscall_names = ids, names
        self.batches, self.tail = list(batches), list(tail or [])
        self.calls: list[str] = []
        self.delivered = 0
        self.lost = lost

    def _give(self, batches: list[tuple[bytes, list[int]]], cb: Batch) -> int:
        n = 0
        while batches:
            chunk, offs = batches.pop(0)
            self.delivered += len(offs)
            n += len(offs)
            cb(chunk, offs)
        return n

    def poll(self, on_batch: Batch, timeout: float) -> int:
        self.calls.append("poll")
        return self._give(self.batches[:1] and [self.batches.pop(0)], on_batch)

    def quiesce(self) -> None:
        self.calls.append("quiesce")

    def drain(self, on_batch: Batch) -> int:
        self.calls.append("drain")
        return self._give(self.tail, on_batch)

    def detach(self) -> None:
        self.calls.append("detach")

    def stats(self) -> dict[str, int]:
        self.calls.append("stats")
        n = self.delivered + self.lost
        return {
            "seen": n + 5,
            "filtered": 5,
            "attempted": n,
            "lost": self.lost,
            "map_full": 0,
            "read_err": 0,
        }


class FakeEnricher:
    def __init__(self) -> None:
        self.seen: list[tuple[str, int]] = []

    def enrich(self, ev: dict[str, Any]) -> dict[str, Any]:
        self.seen.append((ev["kind"], ev["ts_ns"]))
        ev["exe"] = f"/bin/{ev['comm']}"
        return ev


def captured(name: str) -> tuple[bytes, list[int], IdNames, dict[int, str]]:
    cap = load(name)
    return cap.raw, cap.offsets(), cap.ids, cap.syscall_names


def test_events_decoded_enriched_in_order_and_counted() -> None:
    raw, offs, ids, names = captured("nice")
    src = FakeSource([(raw, offs[:1]), (raw, offs[1:])], ids, names)
    got: list[dict[str, Any]] = []
    enricher = FakeEnricher()
    s = Session(src, got.extend, enricher=enricher, clock=WallClock(0))
    stop_after = iter(range(10))
    summary = s.run(should_stop=lambda: next(stop_after) >= 3)
    assert len(got) == len(offs)
    assert [e["ts_ns"] for e in got] == sorted(e["ts_ns"] for e in got)
    assert all(e["exe"] == f"/bin/{e['comm']}" for e in got)
    assert [k for k, _ in enricher.seen] == [e["kind"] for e in got]
    assert summary.delivered == len(offs)
    assert sum(summary.by_verdict.values()) == len(offs)
    assert summary.exact


def test_stop_order_quiesce_drain_stats_detach() -> None:
    """Stop the stream, drain what is left, read the final counters, detach:
    the last events are delivered and counted, attempted = delivered + lost."""
    raw, offs, ids, names = captured("kill")
    src = FakeSource([(raw, offs[:1])], ids, names, tail=[(raw, offs[1:])], lost=3)
    got: list[dict[str, Any]] = []
    s = Session(src, got.extend)
    s.stop[0] = True
    summary = s.run()
    assert src.calls == ["quiesce", "drain", "stats", "detach"]
    assert len(got) == len(offs) - 1  # the tail arrived through drain
    assert summary.lost == 3
    assert summary.attempted == summary.delivered + summary.lost
    assert summary.exact


def _events(kind: str, n: int, **extra: Any) -> list[dict[str, Any]]:
    base = {"kind": kind, "verdict": "deny", "ts_ns": 0, "comm": "x"}
    return [{**base, **extra, "ts_ns": i} for i in range(n)]


def test_process_events_feed_the_tree_but_are_shown_only_when_asked() -> None:
    enricher = FakeEnricher()
    s = Session(FakeSource([], IdNames({}, {}), {}), lambda e: None, enricher=enricher)
    evs = _events("exec", 2) + _events("capable", 1) + _events("exit", 1)
    out = s.process([dict(e) for e in evs])
    assert [e["kind"] for e in out] == ["capable"]
    assert [k for k, _ in enricher.seen] == ["exec", "exec", "capable", "exit"]
    assert s.summary.processes == 3
    s2 = Session(
        FakeSource([], IdNames({}, {}), {}), lambda e: None, process_events=True
    )
    assert len(s2.process([dict(e) for e in evs])) == 4


def test_quiet_probes_counted_and_left_out_unless_asked() -> None:
    evs = _events("capable", 3, noaudit=True) + _events("capable", 2)
    s = Session(FakeSource([], IdNames({}, {}), {}), lambda e: None)
    assert len(s.process([dict(e) for e in evs])) == 2
    assert s.summary.quiet == 3
    assert s.summary.by_verdict["deny"] == 2
    s2 = Session(FakeSource([], IdNames({}, {}), {}), lambda e: None, quiet_probes=True)
    assert len(s2.process([dict(e) for e in evs])) == 5


def test_runs_in_a_worker_thread() -> None:
    """The TUI runs the Session in a worker: no signal handlers there."""
    raw, offs, ids, names = captured("open_eacces")
    src = FakeSource([(raw, offs)], ids, names)
    got: list[dict[str, Any]] = []
    done = threading.Event()
    errors: list[BaseException] = []

    def work() -> None:
        try:
            Session(src, got.extend).run(should_stop=lambda: bool(got))
        except BaseException as e:  # reported below
            errors.append(e)
        done.set()

    threading.Thread(target=work).start()
    assert done.wait(10)
    assert not errors
    assert len(got) == len(offs)
    assert src.calls[-1] == "detach"


def test_consumer_gets_nothing_for_an_empty_or_all_process_batch() -> None:
    calls: list[int] = []
    s = Session(FakeSource([], IdNames({}, {}), {}), lambda e: calls.append(len(e)))
    raw, offs, ids, names = captured("kill")
    s.source.id_names, s.source.syscall_names = ids, names
    s.on_batch(raw, [])
    assert calls == []
    s.on_batch(raw, offs)
    assert calls == [len(offs)]
    assert abi.EVENT_SIZE * len(offs) == len(raw)
