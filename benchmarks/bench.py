#!/usr/bin/env python3
"""lsmtrace benchmarks: overhead ratios and consumer throughput, measured here.

Run as root from the checkout: `make bench` (or `.venv/bin/python benchmarks/bench.py`).
Nothing here is a pass/fail test: it prints what it measured, side by side.

1. Overhead: an open+close loop (C, the worst case: nothing but syscalls; and
   Python, closer to a real program) untraced vs traced, A/B alternated with a
   fresh tracer for every pair (each side: fastest of --repeat runs, so noise
   from the rest of the host weighs less), for three modes: counting only (`--count`),
   denied-only streaming (`--denied`) and full streaming. Ratio = untraced time
   / traced time per open (1.0 = free).
2. Throughput: the tracer consuming a paced open loop at rising offered rates;
   delivered/s, lost, and whether attempted == delivered + lost held exactly.

`--compare DIR` also traces each pair with the lsmtrace of another checkout
(e.g. `git archive REV | tar -x -C DIR`), alternating which goes first: an A/B
of two versions in one run, against the same untraced baseline. `--loops mmap`
is an mmap+munmap loop run as uid 65534: one refused quiet capability probe
per iteration (what the tracepoint rung's call-site check costs).
`--cpu-time` compares the loop's own CPU time (CLOCK_PROCESS_CPUTIME_ID: its
syscalls and the BPF programs they run, not the time it waited for a CPU)
instead of wall time: on a loaded host wall-clock ratios drift with the load.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache" / "bench"
PY = sys.executable
START_TIMEOUT = 60.0  # --start-timeout: compiling under TCG takes minutes
CPU_TIME = False  # --cpu-time: the loop's CPU time, not wall time
TRACER_ARGS: list[str] = []  # --tracer-args: appended to each traced side's flags

PY_LOOP = """
import os, sys, time
n = int(sys.argv[1]); path = sys.argv[2]
t, c = time.perf_counter(), time.process_time()
for _ in range(n):
    os.close(os.open(path, os.O_RDONLY))
el, cpu = time.perf_counter() - t, time.process_time() - c
print(el * 1e9 / n, n / el, cpu * 1e9 / n)
"""


BPF_STATS = Path("/proc/sys/kernel/bpf_stats_enabled")


@contextlib.contextmanager
def bpf_stats() -> Iterator[None]:
    """kernel.bpf_stats_enabled=1 for the block (programs then count
    run_time_ns and run_cnt), as it was after."""
    was = BPF_STATS.read_text().strip()
    BPF_STATS.write_text("1")
    try:
        yield
    finally:
        BPF_STATS.write_text(was)


def fdinfo(path: Path) -> dict[str, str]:
    """/proc/<pid>/fdinfo/<fd> as {field: value}; a BPF program's has prog_id,
    run_time_ns and run_cnt (with bpf_stats on)."""
    out = {}
    for line in path.read_text().splitlines():
        k, sep, v = line.partition(":")
        if sep:
            out[k] = v.strip()
    return out


def build_loop(name: str = "openloop") -> Path:
    CACHE.mkdir(parents=True, exist_ok=True)
    exe = CACHE / name
    src = ROOT / "benchmarks" / f"{name}.c"
    if not exe.exists() or exe.stat().st_mtime < src.stat().st_mtime:
        subprocess.run(["cc", "-O2", "-o", str(exe), str(src)], check=True)
        exe.chmod(0o755)
    return exe


def run_loop(kind: str, n: int, rate: float = 0.0) -> tuple[float, float]:
    """(ns per open+close, opens per second); "mmap": per mmap+munmap, as 65534."""
    if kind == "c":
        out = subprocess.run(
            [str(build_loop()), str(n), "/etc/hostname", str(rate)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    elif kind == "mmap":
        out = subprocess.run(
            [
                "setpriv",
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                str(build_loop("mmaploop")),
                str(n),
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    else:
        out = subprocess.run(
            [PY, "-c", PY_LOOP, str(n), "/etc/hostname"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    ns, rate_s, cpu_ns = out.split()
    return float(cpu_ns if CPU_TIME else ns), float(rate_s)


class TracerProc:
    """`lsmtrace trace` in the background, ready when its status line is out.
    `root`: the checkout whose lsmtrace runs (`python -m` from there)."""

    def __init__(
        self, args: list[str], stdout: Path | None = None, root: Path = ROOT
    ) -> None:
        self.err = tempfile.NamedTemporaryFile(prefix="lsmtrace-bench-", suffix=".err")  # noqa: SIM115
        self.out = open(stdout or os.devnull, "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [PY, "-m", "lsmtrace", "trace", "--no-header", *args],
            cwd=root,
            stdout=self.out,
            stderr=self.err,
        )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            text = Path(self.err.name).read_text()
            if "Ctrl-C to end" in text:
                return
            if self.proc.poll() is not None:
                raise SystemExit(f"tracer failed: {text}")
            time.sleep(0.05)
        self.proc.kill()
        raise SystemExit(f"tracer did not start in {START_TIMEOUT:.0f} s")

    def stop(self) -> dict[str, int]:
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(timeout=60)
        self.out.close()
        text = Path(self.err.name).read_text()
        self.err.close()
        # "N events (D denied, A allowed, F failed), L lost, S decisions seen ..."
        last = text.strip().splitlines()[-1]
        words = last.replace(",", " ").replace("(", " ").split()
        res = {"delivered": int(words[0]), "lost": int(words[words.index("lost") - 1])}
        res["exact"] = int("mismatch" not in last)
        return res


MODES = {
    "counting (--count)": ["--count"],
    "denied-only (--denied)": ["--denied"],
    "full streaming (--json)": ["--json"],
}


def best_of(repeat: int, loop: str, n: int, rate: float = 0.0) -> float:
    """Fastest of `repeat` runs: the run least disturbed by the rest of the host."""
    return min(run_loop(loop, n, rate)[0] for _ in range(repeat))


def overhead(
    pairs: int,
    n_c: int,
    n_py: int,
    backend: str,
    repeat: int = 3,
    modes: list[str] | None = None,
    loops: list[str] | None = None,
    compare: Path | None = None,
    rate: float = 0.0,
) -> list[dict[str, object]]:
    rows = []
    sides = [("this", ROOT)] + ([("compare", compare)] if compare else [])
    for mode, flags in MODES.items():
        if modes and flags[0].lstrip("-") not in modes:
            continue
        for loop, n in (("c", n_c), ("python", n_py), ("mmap", n_c // 4)):
            if loop not in (loops or ["c", "python"]):
                continue
            ratios: dict[str, list[float]] = {name: [] for name, _r in sides}
            ns: dict[str, list[float]] = {name: [] for name in ("untraced", *ratios)}
            lost = dict.fromkeys(ratios, 0)
            delivered = dict.fromkeys(ratios, 0)
            for i in range(pairs):
                base = best_of(repeat, loop, n, rate)
                ns["untraced"].append(base)
                # alternate which version goes first
                for name, root in sides if i % 2 == 0 else sides[::-1]:
                    t = TracerProc(
                        ["--backend", backend, *flags, *TRACER_ARGS], root=root
                    )
                    traced = best_of(repeat, loop, n, rate)
                    res = t.stop()
                    lost[name] += res["lost"]
                    delivered[name] += res["delivered"]
                    ratios[name].append(base / traced)
                    ns[name].append(traced)
            for name, rs in ratios.items():
                rows.append(
                    {
                        "mode": mode,
                        "loop": loop,
                        "pairs": pairs,
                        "version": name,
                        "ratio_median": statistics.median(rs),
                        "ratio_min": min(rs),
                        "ratio_max": max(rs),
                        "ns_untraced": statistics.median(ns["untraced"]),
                        "ns_traced": statistics.median(ns[name]),
                        "delivered": delivered[name],
                        "lost": lost[name],
                    }
                )
                r = rows[-1]
                tag = f" [{name}]" if compare else ""
                print(
                    f"  {mode:<26} {loop:<7} ratio {r['ratio_median']:.3f} "
                    f"(min {r['ratio_min']:.3f}, max {r['ratio_max']:.3f}; "
                    f"{pairs} pairs; {r['ns_untraced']:.0f} -> {r['ns_traced']:.0f} "
                    f"ns per pair, medians; delivered {delivered[name]}, "
                    f"lost {lost[name]}){tag}",
                    flush=True,
                )
    return rows


def throughput(
    rates: list[float], seconds: float, backend: str, consumer: list[str]
) -> list[dict[str, object]]:
    rows = []
    for rate in rates:
        n = int(rate * seconds) if rate else int(2_000_000 * seconds)
        t = TracerProc(
            [
                "--backend",
                backend,
                *consumer,
                "--comm",
                "openloop",
                "--buffer-pages",
                "1024",
            ]
        )
        start = time.monotonic()
        _ns, offered = run_loop("c", n, rate)
        el = time.monotonic() - start  # the producing interval
        time.sleep(0.5)
        res = t.stop()
        rows.append(
            {
                "consumer": " ".join(consumer),
                "offered_per_s": round(offered),
                "events": n,
                "delivered": res["delivered"],
                "lost": res["lost"],
                "delivered_per_s": round(res["delivered"] / el),
                "exact": bool(res["exact"]) and res["delivered"] + res["lost"] >= n,
            }
        )
        r = rows[-1]
        print(
            f"  offered {r['offered_per_s']:>9}/s  delivered {r['delivered']:>9} "
            f"({r['delivered_per_s']:>8}/s)  lost {r['lost']:>9}  "
            f"accounting {'exact' if r['exact'] else 'NOT EXACT'}",
            flush=True,
        )
    return rows


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--pairs",
        type=int,
        default=5,
        help="A/B pairs per overhead row (0: no overhead table, throughput only)",
    )
    p.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="loop runs per side of a pair; the fastest counts",
    )
    p.add_argument("--n-c", type=int, default=400_000, help="opens per C loop run")
    p.add_argument(
        "--n-py", type=int, default=200_000, help="opens per Python loop run"
    )
    p.add_argument("--backend", default="auto")
    p.add_argument(
        "--rates",
        default="100000,250000,500000,1000000,0",
        help="offered opens/s for the throughput table (0 = unpaced)",
    )
    p.add_argument("--seconds", type=float, default=2.0)
    p.add_argument("--json", type=Path, help="also write the results here")
    p.add_argument("--modes", help="comma list of count,denied,json (default: all)")
    p.add_argument("--loops", help="comma list of c,python,mmap (default: c,python)")
    p.add_argument(
        "--compare",
        type=Path,
        metavar="DIR",
        help="also trace with the lsmtrace of this checkout, alternated (A/B)",
    )
    p.add_argument(
        "--rate",
        type=float,
        default=0.0,
        help="pace the C open loop of the overhead table to this many opens/s "
        "(a streaming consumer that keeps up: every event is decoded)",
    )
    p.add_argument(
        "--tracer-args",
        default="",
        metavar="ARGS",
        help="more trace flags for the overhead table, e.g. '--comm openloop' "
        "(the stream carries the loop's events only, not the host's)",
    )
    p.add_argument(
        "--cpu-time",
        action="store_true",
        help="ratios of the loop's CPU time, not wall time (loaded hosts)",
    )
    p.add_argument(
        "--start-timeout",
        type=float,
        default=60.0,
        help="seconds to wait for each tracer to attach (VM: 600)",
    )
    p.add_argument(
        "--no-throughput",
        action="store_true",
        help="skip the throughput table (e.g. in the VM under TCG)",
    )
    a = p.parse_args()
    global START_TIMEOUT, CPU_TIME
    START_TIMEOUT = a.start_timeout
    CPU_TIME = a.cpu_time
    TRACER_ARGS.extend(a.tracer_args.split())
    if os.geteuid() != 0:
        print("error: benchmarks load BPF programs: run as root", file=sys.stderr)
        return 1
    print(
        f"lsmtrace bench on {platform.release()}, {os.cpu_count()} CPUs, "
        f"backend {a.backend}",
        flush=True,
    )
    over: list[dict[str, object]] = []
    if a.pairs > 0:
        print(
            "overhead (untraced/traced time per open+close; 1.0 = no overhead):",
            flush=True,
        )
        over = overhead(
            a.pairs,
            a.n_c,
            a.n_py,
            a.backend,
            a.repeat,
            a.modes.split(",") if a.modes else None,
            a.loops.split(",") if a.loops else None,
            a.compare,
            a.rate,
        )
    rates = [] if a.no_throughput else [float(x) for x in a.rates.split(",")]
    thr: list[dict[str, object]] = []
    for consumer, what in (
        (["--discard"], "transport: batches out of the ring, not decoded"),
        (["--json"], "JSON Lines to /dev/null"),
    ):
        if not rates:
            break
        print(f"throughput, full streaming ({what}), --comm openloop:", flush=True)
        thr += throughput(rates, a.seconds, a.backend, consumer)
    if a.json:
        a.json.write_text(
            json.dumps(
                {"kernel": platform.release(), "overhead": over, "throughput": thr},
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
