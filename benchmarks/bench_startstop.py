#!/usr/bin/env python3
"""How long lsmtrace takes to start and to stop (warm header cache), measured here.

Run as root: `make bench` (or `.venv/bin/python benchmarks/bench_startstop.py`).
Per round, for the checkout (and, with --baseline DIR, another checkout of the
project, A/B alternated in the same run):

  first event   spawn of `lsmtrace trace --json --comm <marker>` to the first
                event line on its stdout, while a child named <marker> opens a
                file every 5 ms
  exit          SIGINT after that first event to the process's exit
  released      SIGINT to the moment the kernel no longer has any of the
                tracer's programs (their ids read from /proc/PID/fdinfo while
                it ran): what another tracer started right after would see
  duration 1    wall time of `lsmtrace trace --duration 1`
  record tail   `lsmtrace record -- CMD`: CMD's exit to record's exit

Each measure starts once the programs of earlier runs are released (settle),
with byte code written as for an installed wheel. Nothing here is a pass/fail
test.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MARKER = "lsmt-startstop"
TICKER = f"""
import os, time, ctypes
ctypes.CDLL(None).prctl(15, b"{MARKER}", 0, 0, 0)
while True:
    os.close(os.open("/etc/hostname", os.O_RDONLY))
    time.sleep(0.005)
"""


def lsmtrace(tree: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "lsmtrace", *args]


# Byte code is written and used (the warm-up run writes it), as for an
# installed wheel, whose .pyc pip writes: compiling lsmtrace's sources is
# ~50 ms that users do not pay.
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def prog_ids(pid: int) -> set[int]:
    ids = set()
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return ids
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") != "anon_inode:bpf-prog":
                continue
            for line in Path(f"/proc/{pid}/fdinfo/{fd}").read_text().splitlines():
                if line.startswith("prog_id:"):
                    ids.add(int(line.split()[1]))
        except OSError:
            continue
    return ids


def loaded_ids() -> set[int]:
    """Every BPF program id the kernel has (BPF_PROG_GET_NEXT_ID via bpftool)."""
    out = subprocess.run(
        ["bpftool", "prog", "list", "-j"], capture_output=True, text=True, check=False
    ).stdout
    import json

    try:
        return {int(p["id"]) for p in json.loads(out or "[]")}
    except ValueError:
        return set()


IDLE: set[int] = set()  # programs loaded before the first run (not ours)


def settle(limit: float = 30) -> None:
    """Wait until the programs of earlier runs are gone: the kernel tears a
    run's ~70 tracepoint attachments down one after another (in the holder,
    after lsmtrace exits: seconds), under the mutex a new run's
    perf_event_open also takes; each measure starts from a settled kernel."""
    end = time.monotonic() + limit
    while loaded_ids() - IDLE and time.monotonic() < end:
        time.sleep(0.05)


def start_stop(tree: Path) -> dict[str, float]:
    settle()
    ticker = subprocess.Popen([sys.executable, "-c", TICKER])
    try:
        t0 = time.monotonic()
        p = subprocess.Popen(
            lsmtrace(tree, "trace", "--json", "--comm", MARKER),
            cwd=tree,
            env=ENV,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        assert p.stdout is not None
        line = p.stdout.readline()
        first = time.monotonic() - t0
        if not line:
            raise SystemExit("the tracer ended without an event")
        ids = prog_ids(p.pid)
        t1 = time.monotonic()
        p.send_signal(signal.SIGINT)
        p.stdout.read()
        p.wait()
        exited = time.monotonic() - t1
        while ids & loaded_ids() and time.monotonic() - t1 < 30:
            time.sleep(0.02)
        released = time.monotonic() - t1
    finally:
        ticker.kill()
        ticker.wait()
    return {"first event": first, "exit": exited, "released": released}


def duration_one(tree: Path) -> float:
    settle()
    t0 = time.monotonic()
    subprocess.run(
        lsmtrace(tree, "trace", "--duration", "1", "--uid", "4242424"),
        cwd=tree,
        env=ENV,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return time.monotonic() - t0


def record_tail(tree: Path) -> float:
    settle()
    with tempfile.TemporaryDirectory() as d:
        stamp = Path(d) / "end"
        cmd = [
            sys.executable,
            "-c",
            f"import time; time.sleep(0.3); open({str(stamp)!r}, 'w')"
            ".write(repr(time.monotonic()))",
        ]
        subprocess.run(
            lsmtrace(tree, "record", "-o", str(Path(d) / "r.jsonl"), "--", *cmd),
            cwd=tree,
            env=ENV,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        end = time.monotonic()
        return end - float(stamp.read_text())


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument(
        "--baseline",
        type=Path,
        help="another checkout of lsmtrace to measure alternately",
    )
    a = p.parse_args()
    if os.geteuid() != 0:
        print("error: run as root", file=sys.stderr)
        return 1
    IDLE.update(loaded_ids())
    trees = {"this checkout": ROOT}
    if a.baseline:
        trees = {"baseline": a.baseline.resolve(), **trees}
    # warm the header and BTF caches
    for tree in trees.values():
        duration_one(tree)
    results: dict[str, dict[str, list[float]]] = {n: {} for n in trees}
    for r in range(a.rounds):
        for name, tree in trees.items():
            row = start_stop(tree)
            row["duration 1"] = duration_one(tree)
            row["record tail"] = record_tail(tree)
            for k, v in row.items():
                results[name].setdefault(k, []).append(v)
            print(
                f"  round {r + 1} {name:<14} "
                + "  ".join(f"{k} {v:.2f}s" for k, v in row.items()),
                flush=True,
            )
    print(
        f"start/stop, seconds, median (min-max) of {a.rounds} rounds, warm caches:",
        flush=True,
    )
    for name, rows in results.items():
        for k, vals in rows.items():
            print(
                f"  {name:<14} {k:<12} {statistics.median(vals):6.2f} "
                f"({min(vals):.2f}-{max(vals):.2f})",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
