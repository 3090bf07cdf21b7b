"""Process-tree enrichment: cost per event and memory per tracked process.

    .venv/bin/python benchmarks/bench_proctree.py [--events 100000] [--procs 1000]

Synthetic and deterministic: an injected process source (no /proc reads), a
fake cgroup tree in a temporary directory. Prints one line per measure; the
goals (docs/proctree.md) are <= 2 us per event and <= 2 KB per process.
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lsmtrace.cgroups import CgroupMap
from lsmtrace.proctree import (
    Enricher,
    ProcessRecord,
    ProcessTree,
    PsutilSource,
)

TICK = 10_000_000


class Clock:
    hz = 100

    def boot_offset_ns(self) -> int:
        return 0


class Source:
    def __init__(self, recs: list[ProcessRecord]) -> None:
        self.procs = {r.pid: r for r in recs}

    def processes(self) -> Iterator[ProcessRecord]:
        yield from self.procs.values()

    def process(self, pid: int) -> ProcessRecord | None:
        return self.procs.get(pid)

    def is_thread(self, tgid: int, tid: int) -> bool:
        return False


def population(n: int, rng: random.Random) -> list[ProcessRecord]:
    """pid 1, then services under it, then children of random earlier processes:
    depth 1..~8, realistic exe and cmdline lengths."""
    recs = [
        ProcessRecord(
            1, 0, 1, "systemd", "/usr/lib/systemd/systemd", ["/sbin/init", "splash"]
        )
    ]
    for i in range(1, n):
        pid = 100 + i
        parent = 1 if i < 30 else recs[rng.randrange(len(recs))].pid
        name = f"proc{i}"
        recs.append(
            ProcessRecord(
                pid,
                parent,
                100 + i,
                name[:15],
                f"/usr/lib/some/package/bin/{name}",
                [
                    f"/usr/lib/some/package/bin/{name}",
                    "--config",
                    f"/etc/pkg/{name}.conf",
                    "--verbose",
                    "--listen",
                    "0.0.0.0:8080",
                ],
            )
        )
    return recs


def cgroups(tmp: Path, n: int) -> list[int]:
    (tmp / "cgroup.procs").write_text("")
    ids = [tmp.stat().st_ino]
    for i in range(n):
        kind = i % 3
        if kind == 0:
            d = tmp / "system.slice" / f"svc{i}.service"
        elif kind == 1:
            d = tmp / "system.slice" / f"docker-{i:064x}.scope"
        else:
            d = (
                tmp
                / "kubepods.slice"
                / "kubepods-burstable.slice"
                / f"kubepods-burstable-pod{i:032x}.slice"
                / f"cri-containerd-{i:064x}.scope"
            )
        d.mkdir(parents=True)
        ids.append(d.stat().st_ino)
    return ids


def make_events(
    recs: list[ProcessRecord], cg: list[int], n: int, rng: random.Random
) -> list[dict[str, Any]]:
    evs = []
    for k in range(n):
        r = recs[rng.randrange(len(recs))]
        evs.append(
            {
                "ts_ns": 10_000 * TICK + k * 1000,
                "kind": "syscall",
                "pid": r.pid,
                "tgid": r.pid,
                "ppid": r.ppid,
                "uid": rng.choice((0, 33, 1000, 65534)),
                "gid": rng.choice((0, 33, 1000)),
                "comm": r.comm,
                "cgroup": cg[r.pid % len(cg)],
                "object": {"path": "/etc/shadow"},
            }
        )
    return evs


def bench_events(n_events: int, n_procs: int) -> None:
    rng = random.Random(4)
    recs = population(n_procs, rng)
    with tempfile.TemporaryDirectory() as tmp:
        cg = cgroups(Path(tmp), 30)
        tree = ProcessTree(Source(recs), clock=Clock())
        tree.load()
        e = Enricher(tree, CgroupMap(root=Path(tmp), hybrid=False))
        evs = make_events(recs, cg, n_events, rng)
        warm = evs[: n_procs * 2]
        t0 = time.perf_counter()
        for ev in warm:
            e.fields(ev)
        cold = (time.perf_counter() - t0) / len(warm) * 1e6
        gc.collect()
        for label, fn in (("fields()", e.fields), ("enrich()", e.enrich)):
            best = float("inf")
            for _ in range(3):
                batch = [dict(ev) for ev in evs] if fn is e.enrich else evs
                t0 = time.perf_counter()
                for ev in batch:
                    fn(ev)
                best = min(best, time.perf_counter() - t0)
            print(
                f"{label:<10} {best / len(evs) * 1e6:6.2f} us/event amortized "
                f"({len(evs)} events, {n_procs} processes, 31 cgroups; best of 3)"
            )
        print(
            f"first pass {cold:6.2f} us/event ({len(warm)} events: cold caches, "
            f"ancestors computed)"
        )
        # process events in the mix: 1 fork+exec+exit per 100 events
        mixed: list[dict[str, Any]] = []
        pid = 900_000
        for k, ev in enumerate(evs):
            mixed.append(ev)
            if k % 100 == 0:
                p = recs[rng.randrange(len(recs))]
                ts = ev["ts_ns"]
                base = {
                    "pid": p.pid,
                    "tgid": p.pid,
                    "ppid": p.ppid,
                    "uid": 0,
                    "gid": 0,
                    "comm": p.comm,
                    "cgroup": ev["cgroup"],
                }
                mixed.append(
                    {**base, "ts_ns": ts, "kind": "fork", "object": {"child_pid": pid}}
                )
                child = {**base, "pid": pid, "tgid": pid, "ppid": p.pid}
                mixed.append(
                    {
                        **child,
                        "ts_ns": ts + 1,
                        "kind": "exec",
                        "object": {"filename": "/usr/bin/true"},
                    }
                )
                mixed.append(
                    {
                        **child,
                        "ts_ns": ts + 2,
                        "kind": "exit",
                        "object": {"exit_code": 0},
                    }
                )
                pid += 1
        t0 = time.perf_counter()
        for ev in mixed:
            e.enrich(ev)
        dt = time.perf_counter() - t0
        print(
            f"with proc  {dt / len(mixed) * 1e6:6.2f} us/event ({len(mixed)} events, "
            f"4% exec/fork/exit)"
        )
        st = tree.stats
        print(
            f"counters   hits {st.hits} misses {st.misses} ghosts {st.ghosts} "
            f"evicted exited {st.evicted_exited} lru {st.evicted_lru} "
            f"refreshes {st.refreshes}"
        )


def bench_memory(n: int) -> None:
    """Everything the tree keeps, records built inside the measured window and
    dropped after the walk (the tree keeps its own strings)."""
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    rng = random.Random(5)
    recs = population(n, rng)
    src = Source(recs)
    tree = ProcessTree(src, clock=Clock(), max_processes=n + 1)
    tree.load()
    e = Enricher(tree, CgroupMap(root=None, proc=Path("/nonexistent"), hybrid=False))
    ev = make_events(recs, [1], 1, rng)[0]
    for r in recs:  # every process enriched once: its caches are filled
        e.fields({**ev, "tgid": r.pid, "pid": r.pid, "ppid": r.ppid})
    tree.source = Source([])
    del recs, src, r
    gc.collect()
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    size = sum(s.size_diff for s in after.compare_to(before, "filename"))
    print(
        f"memory     {size / n:6.0f} B/process ({n} processes, caches filled, "
        f"cmdline ~100 chars)"
    )
    del e, tree


def bench_walk() -> None:
    t0 = time.perf_counter()
    tree = ProcessTree(PsutilSource())
    n = tree.load()
    dt = time.perf_counter() - t0
    print(f"/proc walk {dt * 1e3:6.1f} ms for {n} processes (psutil, this host)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--procs", type=int, default=1000)
    ap.add_argument("--memory-procs", type=int, default=10_000)
    a = ap.parse_args()
    print(f"python {sys.version.split()[0]}, pid {os.getpid()}")
    bench_events(a.events, a.procs)
    bench_memory(a.memory_procs)
    bench_walk()


if __name__ == "__main__":
    main()
