#!/usr/bin/env python3
"""Recording and streaming at speed: loss, wall time, consumer rate and CPU.

Run as root: `make bench` (or `.venv/bin/python benchmarks/bench_record.py`).
With --baseline DIR (another checkout of lsmtrace, e.g. the commit before a
change) every measurement runs for both, alternated in the same run.

1. File-heavy workload: `grep -r -c PATTERN /usr/share /usr/lib/python3` (tens
   of thousands of opens per second), its own wall time untraced and under
   `lsmtrace record -- ...`, A/B alternated; events recorded, lost.
2. Consumer throughput: the C open loop paced at a rate for some seconds under
   `--comm <its name>`, consumed by `trace --json` (to /dev/null) and by `record`;
   delivered, lost (% of attempted), the tail (producer end to tracer exit:
   the backlog decoded after the load), the end-to-end rate (delivered /
   (producing + tail)) and the consumer's CPU per event (µs, from its rusage,
   start-up excluded).
3. Back-pressure: the unpaced loop under `record` with and without
   `--pause-on-loss` (small backlog), the loop's wall time and the loss.
4. The producer's side: the unpaced loop untraced and under `trace --discard`
   (every event streamed, none decoded), A/B alternated: the loop's ns per
   open+close and the kernel's ns per call of the syscall-exit program that
   streams each open (bpf_stats: run_time_ns / run_cnt from the tracer's
   /proc/<pid>/fdinfo, kernel.bpf_stats_enabled=1 for the run).

Nothing here is a pass/fail test.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench import bpf_stats, build_loop, fdinfo  # noqa: E402

GREP = [
    "grep",
    "-r",
    "-c",
    "lsmtrace-no-such-pattern",
    "/usr/share",
    "/usr/lib/python3",
]
# the workload measures itself: its wall time, printed last
TIMED = (
    "import subprocess, sys, time; t = time.monotonic(); "
    "subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, "
    "stderr=subprocess.DEVNULL); print(time.monotonic() - t)"
)


def own_loop() -> Path:
    """The open loop under a name of this run: other benchmarks on this host
    run `openloop` too, and --comm must see ours only."""
    import shutil

    exe = build_loop().parent / f"olb{os.getpid() % 100000}"
    shutil.copy2(build_loop(), exe)
    return exe


def cpu_s(pid: int) -> float:
    f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def trailer(path: Path) -> dict[str, object]:
    last = path.read_bytes().rstrip(b"\n").rsplit(b"\n", 1)[-1]
    return dict(json.loads(last))


class Consumer:
    """`lsmtrace trace|record ...` from a checkout, ready at its status line."""

    def __init__(self, tree: Path, args: list[str], out: Path | None = None) -> None:
        self.err = tempfile.NamedTemporaryFile(prefix="lsmt-bench-", suffix=".err")  # noqa: SIM115
        self.out = open(out or os.devnull, "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "lsmtrace", *args],
            cwd=tree,
            stdout=self.out,
            stderr=self.err,
        )
        deadline = time.monotonic() + 120
        while "Ctrl-C to end" not in Path(self.err.name).read_text():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"consumer failed: {Path(self.err.name).read_text()}")
            time.sleep(0.02)
        self.cpu0 = cpu_s(self.proc.pid)

    def stop(self) -> tuple[str, float, float]:
        """(last stderr line, seconds to exit after SIGINT, CPU s after start)."""
        t = time.monotonic()
        self.proc.send_signal(signal.SIGINT)
        _pid, _st, ru = os.wait4(self.proc.pid, 0)
        self.proc.returncode = 0
        tail = time.monotonic() - t
        self.out.close()
        text = Path(self.err.name).read_text()
        self.err.close()
        return (
            text.strip().splitlines()[-1],
            tail,
            ru.ru_utime + ru.ru_stime - self.cpu0,
        )


def numbers(line: str) -> dict[str, int]:
    words = line.replace(",", " ").replace("(", " ").replace(";", " ").split()
    out = {"delivered": int(words[0]), "lost": int(words[words.index("lost") - 1])}
    if "attempted" in words:
        out["attempted"] = int(words[words.index("attempted") - 1])
    return out


def grep_ab(trees: dict[str, Path], pairs: int) -> None:
    print(f"file-heavy workload: {' '.join(GREP)}", flush=True)
    subprocess.run(GREP, capture_output=True, check=False)  # warm the page cache
    res: dict[str, list[tuple[float, float, int, int]]] = {n: [] for n in trees}
    with tempfile.TemporaryDirectory() as d:
        for i in range(pairs):
            for name, tree in trees.items():
                base = float(
                    subprocess.run(
                        [sys.executable, "-c", TIMED, *GREP],
                        capture_output=True,
                        text=True,
                        check=True,
                    ).stdout
                )
                rec = Path(d) / f"{i}-{len(res[name])}.jsonl"
                p = subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "lsmtrace",
                        "record",
                        "-o",
                        str(rec),
                        "--",
                        sys.executable,
                        "-c",
                        TIMED,
                        *GREP,
                    ],
                    cwd=tree,
                    capture_output=True,
                    text=True,
                    check=False,
                )
                traced = float(p.stdout.strip().splitlines()[-1])
                t = trailer(rec)
                res[name].append(
                    (base, traced, int(str(t["events"])), int(str(t["lost"])))
                )
                rec.unlink()
                print(
                    f"  {name:<14} untraced {base:.2f}s  traced {traced:.2f}s  "
                    f"ratio {base / traced:.3f}  events {t['events']}  lost {t['lost']}",
                    flush=True,
                )
    for name, rows in res.items():
        ratios = [b / t for b, t, _e, _l in rows]
        print(
            f"  {name:<14} ratio median {statistics.median(ratios):.3f} "
            f"({min(ratios):.3f}-{max(ratios):.3f}), lost {[r[3] for r in rows]}, "
            f"events {[r[2] for r in rows]}",
            flush=True,
        )


def throughput(
    trees: dict[str, Path], rates: list[float], seconds: float, consumers: list[str]
) -> None:
    loop = own_loop()
    print(
        f"consumer throughput, open loop paced for {seconds:g} s, --comm {loop.name}:",
        flush=True,
    )
    with tempfile.TemporaryDirectory() as d:
        for rate in rates:
            for what in consumers:
                for name, tree in trees.items():
                    out = Path(d) / "rec.jsonl"
                    out.unlink(missing_ok=True)
                    args = (
                        ["trace", "--json"]
                        if what == "trace --json"
                        else ["record", "-o", str(out)]
                    )
                    c = Consumer(tree, [*args, "--comm", loop.name])
                    n = int(rate * seconds)
                    t0 = time.monotonic()
                    subprocess.run(
                        [str(loop), str(n), "/etc/hostname", str(rate)],
                        check=True,
                        capture_output=True,
                    )
                    produced = time.monotonic() - t0
                    line, tail, cpu = c.stop()
                    r = numbers(line)
                    if what == "record":
                        t = trailer(out)
                        r["attempted"] = int(str(t["attempted"]))
                    att = r.get("attempted", r["delivered"] + r["lost"])
                    exact = att == r["delivered"] + r["lost"]
                    pct = 100 * r["lost"] / att if att else 0.0
                    e2e = r["delivered"] / (produced + tail)
                    print(
                        f"  {what:<12} {name:<14} offered {n / produced:>8.0f}/s  "
                        f"delivered {r['delivered']:>8}  lost {r['lost']:>8} "
                        f"({pct:.3f} %)  tail {tail:5.2f}s  end-to-end {e2e:>8.0f}/s  "
                        f"CPU {1e6 * cpu / max(1, r['delivered']):.2f} us/event  "
                        f"{'exact' if exact else 'NOT EXACT'}",
                        flush=True,
                    )


def backpressure(tree: Path, n: int, backlog_mb: int) -> None:
    loop = own_loop()
    print(
        f"back-pressure: unpaced open loop of {n} under record "
        f"(--backlog-mb {backlog_mb}):",
        flush=True,
    )
    base = subprocess.run(
        [str(loop), str(n)], capture_output=True, text=True, check=True
    ).stdout.split()
    print(f"  untraced              loop {float(base[0]) * n / 1e9:6.2f}s", flush=True)
    with tempfile.TemporaryDirectory() as d:
        for flags in ([], ["--pause-on-loss"]):
            out = Path(d) / "bp.jsonl"
            out.unlink(missing_ok=True)
            t0 = time.monotonic()
            p = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "lsmtrace",
                    "record",
                    "-o",
                    str(out),
                    "--backlog-mb",
                    str(backlog_mb),
                    *flags,
                    "--",
                    str(loop),
                    str(n),
                ],
                cwd=tree,
                capture_output=True,
                text=True,
                check=False,
            )
            total = time.monotonic() - t0
            ns = float(p.stdout.split()[0])
            t = trailer(out)
            print(
                f"  {' '.join(flags) or 'no pausing':<21} loop {ns * n / 1e9:6.2f}s  "
                f"record {total:6.2f}s  events {t['events']}  lost {t['lost']}  "
                f"paused {t.get('paused', '-')} times, {t.get('paused_s', '-')} s",
                flush=True,
            )


def prog_runs(pid: int) -> dict[int, tuple[int, int]]:
    """{prog_id: (run_time_ns, run_cnt)} of the BPF programs process pid holds."""
    out: dict[int, tuple[int, int]] = {}
    for fd in Path(f"/proc/{pid}/fdinfo").iterdir():
        try:
            info = fdinfo(fd)
        except OSError:
            continue
        if "prog_id" in info and "run_cnt" in info:
            out[int(info["prog_id"])] = (
                int(info["run_time_ns"]),
                int(info["run_cnt"]),
            )
    return out


def producer(trees: dict[str, Path], n: int, pairs: int) -> None:
    loop = own_loop()
    print(
        f"producer: unpaced open loop of {n}, untraced and under trace --discard "
        f"--comm {loop.name} (kernel.bpf_stats_enabled=1):",
        flush=True,
    )

    def run() -> list[float]:
        return [
            float(x)
            for x in subprocess.run(
                [str(loop), str(n)], capture_output=True, text=True, check=True
            ).stdout.split()
        ]

    with bpf_stats():
        for _ in range(pairs):
            ns = run()[0]
            print(f"  {'untraced':<14} loop {ns:7.1f} ns/pair", flush=True)
            for name, tree in trees.items():
                c = Consumer(tree, ["trace", "--discard", "--comm", loop.name])
                before = prog_runs(c.proc.pid)
                ns_t, _rate, cpu_t = run()
                after = prog_runs(c.proc.pid)
                c.stop()
                # the program run once per open: the syscall-exit one (others
                # -- capability, sched -- run a handful of times)
                busiest = max(
                    after, key=lambda i: after[i][1] - before.get(i, (0, 0))[1]
                )
                t0, c0 = before.get(busiest, (0, 0))
                t1, c1 = after[busiest]
                print(
                    f"  {name:<14} loop {ns_t:7.1f} ns/pair (own CPU {cpu_t:.1f})  "
                    f"untraced/traced {ns / ns_t:.3f}  sys_exit program "
                    f"{(t1 - t0) / max(1, c1 - c0):6.1f} ns/call ({c1 - c0} calls)",
                    flush=True,
                )


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--baseline", type=Path, help="another checkout, A/B alternated")
    p.add_argument(
        "--pairs", type=int, default=3, help="A/B pairs of the grep workload"
    )
    p.add_argument("--rates", default="250000,500000")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--consumers", default="record,trace --json")
    p.add_argument(
        "--bp-n",
        type=int,
        default=4_000_000,
        help="opens of the back-pressure loop (0: skip)",
    )
    p.add_argument(
        "--producer-n",
        type=int,
        default=1_000_000,
        help="opens of the producer-cost loop (0: skip)",
    )
    p.add_argument("--skip", default="", help="comma list of grep,throughput")
    a = p.parse_args()
    if os.geteuid() != 0:
        print("error: run as root", file=sys.stderr)
        return 1
    trees = {"this checkout": ROOT}
    if a.baseline:
        trees = {"baseline": a.baseline.resolve(), **trees}
    skip = set(a.skip.split(","))
    if "grep" not in skip:
        grep_ab(trees, a.pairs)
    if "throughput" not in skip:
        throughput(
            trees,
            [float(x) for x in a.rates.split(",")],
            a.seconds,
            a.consumers.split(","),
        )
    if a.bp_n:
        backpressure(ROOT, a.bp_n, 128)
    if a.producer_n:
        producer(trees, a.producer_n, a.pairs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
