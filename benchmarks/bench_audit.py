#!/usr/bin/env python3
"""The audit join's costs, measured here. Prints what it measured; no pass/fail.

1. Consumer side (pure Python, no root): per record, parsing the header and
   grouping; per audited denial, the `audit` object and the join; per event
   that needs no record; per denial whose record never comes. CPU time
   (process_time), best of --repeat.
2. Live (root, --live): a Landlock-denied open loop (every open denied and
   audited: 1423 + SYSCALL + PROCTITLE + EOE per open), ns per open:
     off       audit disabled
     on        audit enabled, nobody reading the multicast group
     drain     enabled, a reader that only empties the socket
     join      enabled, a reader that parses, groups and joins each record with
               a decision event (made from the record, standing in for the
               BPF stream), no rate bound (max_rate=None)
     capped    the same with the reader's default bound (DEFAULT_MAX_RATE
               records/s; the rest is dropped unparsed and counted)
   Ratio = off time / time (1.0 = free). Audit is put back as it was.
3. With lsmtrace (root, --trace): `lsmtrace trace --denied` with audit enabled,
   `--audit off` against `--audit on` (the join's own cost), A/B alternated,
   fresh tracer for each side, fastest of --repeat loop runs per side:
     allowed   the C open loop of benchmarks/bench.py (/etc/hostname, allowed):
               denied-only streaming as `make bench` measures it
     denied    the Landlock-denied open loop (every open denied, audited and
               streamed)
   Ratio = time with --audit off / time with --audit on (target >= 0.95).
   Caution: enabling audit once makes every process forked afterwards pay a
   syscall audit context until reboot (docs/events.md, "audit").
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lsmtrace import audit, auditjoin, auditnl  # noqa: E402

DATA = ROOT / "tests" / "data" / "audit"
CHILD = DATA / "landlock_child.py"
OFF = 10**18


def best(fn: Callable[[], int], repeat: int) -> float:
    """Best CPU seconds per item of fn() (which returns its item count)."""
    out = float("inf")
    for _ in range(repeat):
        t0 = time.process_time()
        n = fn()
        out = min(out, (time.process_time() - t0) / n)
    return out


def captured(copies: int) -> list[tuple[int, bytes]]:
    """The captured Landlock denials (with SYSCALL records), serials renumbered."""
    recs = [
        audit.parse_line(ln)
        for ln in (DATA / "landlock_context.records").read_text().splitlines()
    ]
    out = []
    for c in range(copies):
        for r in recs:
            if r is None or r.type == audit.BPF:
                continue
            serial = r.serial + c * 1000
            out.append(
                (r.type, f"audit({r.sec}.{r.msec:03d}:{serial}): {r.body}".encode())
            )
    return out


def event_for(a: dict[str, Any], sec_ns: int) -> dict[str, Any]:
    return {
        "kind": "syscall",
        "verdict": "deny",
        "ret": a["exit"] or -13,
        "lsm": None,
        "pid": a["pid"],
        "tgid": a["pid"],
        "syscall": "openat",
        "ts_ns": sec_ns - OFF,
        "object": {"path": a.get("path")},
    }


def consumer(repeat: int) -> None:
    raw = captured(500)  # 4000 denials
    n_rec = len(raw)

    def group() -> int:
        g = audit.Grouper(clock=lambda: 0.0)
        g.add(raw)
        g.drain()
        return n_rec

    per_rec = best(group, repeat)
    g = audit.Grouper(clock=lambda: 0.0)
    groups = [x for x in g.add(raw) + g.drain() if x.decision is not None]
    summaries = [audit.summarize(x) for x in groups]
    events = [
        event_for(a, x.time_ns) for a, x in zip(summaries, groups, strict=True) if a
    ]

    def join() -> int:
        j = auditjoin.Joiner({257: "openat"}, OFF, clock=lambda: 0.0, arch="x86_64")
        evs = [dict(e) for e in events]
        for i in range(0, len(evs), 100):
            j.add_events(evs[i : i + 100])
            j.add_groups(groups[i : i + 100])
        assert j.stats.joined == len(evs), j.stats
        return len(evs)

    per_join = best(join, repeat)
    allowed = [dict(e, ret=0, verdict="allow") for e in events]

    def passthrough() -> int:
        j = auditjoin.Joiner({257: "openat"}, OFF, clock=lambda: 0.0, arch="x86_64")
        for i in range(0, len(allowed), 100):
            j.add_events(allowed[i : i + 100])
        return len(allowed)

    now = [0.0]

    def unjoined() -> int:
        j = auditjoin.Joiner({257: "openat"}, OFF, clock=lambda: now[0], arch="x86_64")
        evs = [dict(e) for e in events]
        for i in range(0, len(evs), 100):
            j.add_events(evs[i : i + 100])
        now[0] += 1.0
        j.flush()
        return len(evs)

    print(f"consumer side (CPU per item, best of {repeat}):")
    print(f"  parse + group, per record              {per_rec * 1e6:7.2f} us")
    print(f"  audited denial: its 4 records           {per_rec * 4e6:7.2f} us")
    print(f"  audited denial: audit object + join     {per_join * 1e6:7.2f} us")
    print(
        f"  event needing no record (allow, ENOENT) {best(passthrough, repeat) * 1e6:7.2f} us"
    )
    print(
        f"  denial whose record never comes         {best(unjoined, repeat) * 1e6:7.2f} us"
    )


# -- live --------------------------------------------------------------------------


def denied_loop(path: str, n: int) -> float:
    out = subprocess.run(
        [sys.executable, str(CHILD), "--repeat", str(n), os.fsencode(path).hex()],
        capture_output=True,
        check=True,
    )
    res = json.loads(out.stdout)
    if "setup" in res:
        raise SystemExit(f"Landlock unavailable (errno {res['setup']})")
    return float(res["ns_per_open"])


class Consumer(threading.Thread):
    """A reader in a thread of this process: `drain` only, or `join`/`capped`."""

    def __init__(self, mode: str) -> None:
        super().__init__(daemon=True)
        self.mode = mode
        self.stop = False
        rate = auditnl.DEFAULT_MAX_RATE if mode == "capped" else None
        self.reader = auditnl.AuditReader(max_rate=rate)
        self.grouper = audit.Grouper()
        self.joiner = auditjoin.Joiner(
            {257: "openat"}, time.time_ns() - time.monotonic_ns()
        )
        self.records = 0
        self.cpu = 0.0

    def run(self) -> None:
        t0 = time.thread_time()
        while not self.stop:
            # in batches, as the Session reads it (once per ring buffer poll),
            # not woken by every record
            time.sleep(0.02)
            raw = self.reader.read()
            self.records += len(raw)
            if self.mode == "drain":
                continue
            groups = self.grouper.add(raw)
            evs = []  # stand-ins for the BPF stream's events (cheaply made)
            for g in groups:
                sysrec, dec = g.get(audit.SYSCALL), g.decision
                if sysrec is None or dec is None:
                    continue
                pid = int(sysrec.get("pid") or 0)
                evs.append(
                    {
                        "kind": "syscall",
                        "verdict": "deny",
                        "ret": -13,
                        "lsm": None,
                        "pid": pid,
                        "tgid": pid,
                        "syscall": "openat",
                        "ts_ns": g.time_ns - self.joiner.wall_offset_ns,
                        "object": {"path": dec.get("path")},
                    }
                )
            self.joiner.add_events(evs)
            self.joiner.add_groups(groups)
            self.joiner.flush()
        self.cpu = time.thread_time() - t0
        self.reader.close()


def live(n: int, pairs: int) -> None:
    before = auditnl.get_status().enabled
    if before == 2:
        raise SystemExit("audit is locked: cannot measure with it off")
    d = Path(tempfile.mkdtemp(prefix="lsmtrace-bench-audit-"))
    target = d / "denied"
    target.write_bytes(b"x")
    results: dict[str, list[float]] = {
        m: [] for m in ("off", "on", "drain", "join", "capped")
    }
    joined: dict[str, int] = {"join": 0, "capped": 0}
    cpu: dict[str, list[float]] = {m: [] for m in results}
    shed = 0
    try:
        for _ in range(pairs):
            for mode in results:
                auditnl.set_enabled(0 if mode == "off" else 1)
                c = Consumer(mode) if mode in ("drain", "join", "capped") else None
                if c is not None:
                    c.start()
                results[mode].append(denied_loop(str(target), n))
                if c is not None:
                    time.sleep(0.3)
                    c.stop = True
                    c.join()
                    cpu[mode].append(c.cpu / n * 1e9)
                    if mode in joined:
                        joined[mode] += c.joiner.stats.joined
                    if mode == "capped":
                        shed += c.reader.shed
    finally:
        if auditnl.get_status().enabled != before:
            auditnl.set_enabled(before)
        target.unlink()
        d.rmdir()
    base = min(results["off"])
    print(f"live: Landlock-denied open loop, {n} opens, best of {pairs} (ns per open):")
    for mode, ts in results.items():
        t = min(ts)
        spent = (
            f"   consumer CPU {min(cpu[mode]):6.0f} ns per open" if cpu[mode] else ""
        )
        runs = " ".join(f"{x:.0f}" for x in ts)
        print(f"  {mode:6} {t:9.0f} ns   ratio {base / t:5.2f}{spent}   (runs: {runs})")
    drain = min(results["drain"])
    for mode in ("join", "capped"):
        print(
            f"  {mode}/drain: {drain / min(results[mode]):5.3f} (1.0 = the join "
            f"costs the workload nothing); {joined[mode]} denials joined"
        )
    print(f"  capped: {shed} records shed unparsed")


def proc_cpu(pid: int) -> float:
    """User + system CPU seconds of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def traced(pairs: int, repeat: int, n_c: int, n_denied: int, backend: str) -> None:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import bench

    before = auditnl.get_status().enabled
    if before == 2:
        raise SystemExit("audit is locked")
    d = Path(tempfile.mkdtemp(prefix="lsmtrace-bench-audit-"))
    target = d / "denied"
    target.write_bytes(b"x")
    os.chmod(d, 0o755)

    def denied_run() -> float:
        out = subprocess.run(
            [
                sys.executable,
                str(CHILD),
                "--comm",
                "lsmt-benchll",
                "--repeat",
                str(n_denied),
                os.fsencode(target).hex(),
            ],
            capture_output=True,
            check=True,
        )
        res = json.loads(out.stdout)
        opens[0] += res["n"]
        return float(res["ns_per_open"])

    def allowed_run() -> float:
        opens[0] += n_c
        return bench.run_loop("c", n_c)[0]

    opens = [0]

    loops: dict[str, tuple[Callable[[], float], list[str]]] = {
        "allowed": (allowed_run, []),
        "denied": (denied_run, ["--comm", "lsmt-benchll"]),
    }
    try:
        auditnl.set_enabled(1)
        print(
            f"lsmtrace trace --denied --backend {backend}, audit enabled: "
            "--audit off vs on (ns per open; ratio = off/on)"
        )
        for name, (loop, extra) in loops.items():
            ratios = []
            cpu: dict[str, list[float]] = {"off": [], "on": []}
            for i in range(pairs):
                side = {}
                for mode in ("off", "on") if i % 2 == 0 else ("on", "off"):  # ABBA
                    t = bench.TracerProc(
                        ["--backend", backend, "--denied", "--audit", mode, *extra]
                    )
                    opens[0] = 0
                    c0 = proc_cpu(t.proc.pid)
                    side[mode] = min(loop() for _ in range(repeat))
                    cpu[mode].append((proc_cpu(t.proc.pid) - c0) * 1e9 / opens[0])
                    t.stop()
                ratios.append(side["off"] / side["on"])
                print(
                    f"  {name:8} off {side['off']:9.0f}  on {side['on']:9.0f}  "
                    f"ratio {ratios[-1]:.3f}   lsmtrace CPU per open: off "
                    f"{cpu['off'][-1]:7.0f}  on {cpu['on'][-1]:7.0f}",
                    flush=True,
                )
            med = sorted(ratios)[len(ratios) // 2]
            print(
                f"  {name:8} median ratio {med:.3f} (min {min(ratios):.3f}, max "
                f"{max(ratios):.3f}; {pairs} pairs); lsmtrace CPU per open, median: "
                f"off {sorted(cpu['off'])[pairs // 2]:.0f} ns, on "
                f"{sorted(cpu['on'])[pairs // 2]:.0f} ns"
            )
    finally:
        if auditnl.get_status().enabled != before:
            auditnl.set_enabled(before)
        target.unlink()
        d.rmdir()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--live", action="store_true", help="also the live loop (root)")
    ap.add_argument("--n", type=int, default=20000, help="opens per live run")
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument(
        "--trace",
        action="store_true",
        help="also lsmtrace trace --denied with --audit off vs on (root)",
    )
    ap.add_argument("--n-c", type=int, default=400_000, help="opens per C loop run")
    ap.add_argument(
        "--n-denied", type=int, default=20_000, help="opens per denied loop run"
    )
    ap.add_argument("--backend", default="auto")
    args = ap.parse_args()
    consumer(args.repeat)
    if args.live:
        live(args.n, args.pairs)
    if args.trace:
        traced(args.pairs, args.repeat, args.n_c, args.n_denied, args.backend)
    return 0


if __name__ == "__main__":
    sys.exit(main())
