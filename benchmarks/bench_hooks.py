#!/usr/bin/env python3
"""The hook rungs' cost per call, next to empty programs on the same hooks.

Run as root where the fexit/kprobe rungs load (the VM target: `make bench-vm`).
For each backend (fexit, kprobe) this loads lsmtrace's programs for the default
hooks AND, in a second BPF object, an EMPTY program of the same kind on every
same attach point (fentry/fexit on the same function, kprobe/kretprobe on the
same symbol, the same syscall and sched tracepoints). Both sets run on the same
calls of the same workload, so their bpf_stats (run_time_ns / run_cnt, read
from /proc/self/fdinfo of each program fd with kernel.bpf_stats_enabled=1) are
side by side: ours ÷ empty is what our program body adds to the floor of
calling any program there. Two modes: counting only (the stream flag off) and
full streaming (events reserved, filled, submitted and drained).

Then the counting-mode loop ratio (untraced / traced time of a C open+close
loop, A/B alternated, our programs only) for fexit and for kprobe.

Under TCG every instruction is emulated: compare rows, not absolute numbers.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench import bpf_stats, build_loop, fdinfo, run_loop  # noqa: E402

from lsmtrace import bpfgen, kheaders, probe  # noqa: E402
from lsmtrace.loader import TraceOptions, Tracer, import_bcc  # noqa: E402

# our tracepoint programs -> the empty program beside them
TP_GROUPS = {
    "sys_exit": "lsmt_sys_exit",
    "sys_enter": "lsmt_sys_enter",
    "fork": "tracepoint__sched__sched_process_fork",
    "exec": "tracepoint__sched__sched_process_exec",
    "exit": "tracepoint__sched__sched_process_exit",
}


def prog_stats(fd: int) -> tuple[int, int]:
    """(run_time_ns, run_cnt) of one program fd of this process."""
    info = fdinfo(Path(f"/proc/self/fdinfo/{fd}"))
    return int(info.get("run_time_ns", 0)), int(info.get("run_cnt", 0))


def empty_source(plan: bpfgen.Plan) -> tuple[str, list[tuple[str, str, str]]]:
    """C text of empty programs and [(kind, fn, target)] for each of ours."""
    lines = [f"int e_{g}(void *ctx) {{ return 0; }}" for g in TP_GROUPS]
    progs = []
    for i, p in enumerate(plan.programs):
        if p.kind == "kfunc":
            lines.append(f"KFUNC_PROBE({p.target}) {{ return 0; }}")
            progs.append((p.kind, f"kfunc__{p.target}", p.target))
        elif p.kind == "kretfunc":
            lines.append(f"KRETFUNC_PROBE({p.target}) {{ return 0; }}")
            progs.append((p.kind, f"kretfunc__{p.target}", p.target))
        else:
            lines.append(f"int e_{i}(struct pt_regs *ctx) {{ return 0; }}")
            progs.append((p.kind, f"e_{i}", p.target))
    return "\n".join(lines) + "\n", progs


def attach(b: object, kind: str, fn: str, target: str) -> None:
    if kind == "kfunc":
        b.attach_kfunc(fn_name=fn.encode())  # type: ignore[attr-defined]
    elif kind == "kretfunc":
        b.attach_kretfunc(fn_name=fn.encode())  # type: ignore[attr-defined]
    elif kind == "kprobe":
        b.attach_kprobe(event=target.encode(), fn_name=fn.encode())  # type: ignore[attr-defined]
    else:
        b.attach_kretprobe(event=target.encode(), fn_name=fn.encode())  # type: ignore[attr-defined]


def workload(n: int) -> None:
    """File opens (the hottest hooks), execs, and a directory walk."""
    run_loop("c", n)
    for _ in range(20):
        subprocess.run(["/bin/true"], check=True)
    subprocess.run(
        ["find", "/usr/lib/python3", "-name", "*.nothing"],
        check=False,
        capture_output=True,
    )


class Drain(threading.Thread):
    def __init__(self, tracer: Tracer) -> None:
        super().__init__(daemon=True)
        self.tracer, self.stop, self.events = tracer, False, 0

    def run(self) -> None:
        def on_batch(_chunk: bytes, offsets: list[int]) -> None:
            self.events += len(offsets)

        while not self.stop:
            self.tracer.poll(on_batch, 0.05)


def measure(backend: str, n: int) -> list[dict[str, object]]:
    bcc = import_bcc()
    tracer = Tracer(TraceOptions(backend=backend, stream=False, proc_events=True))
    print(f"  {backend}: compiling and attaching ours...", flush=True)
    t0 = time.monotonic()
    att = tracer.open()
    print(f"    {len(att.attached)} hooks in {time.monotonic() - t0:.0f} s", flush=True)
    plan = tracer.plan
    assert plan is not None
    text, eprogs = empty_source(plan)
    print("  compiling and attaching the empty programs...", flush=True)
    tree, kind = kheaders.header_tree()
    if kind == "btf":
        os.environ["BCC_KERNEL_SOURCE"] = str(tree)

    class Manual(bcc.BPF):  # type: ignore[misc]
        def _trace_autoload(self) -> None:
            return None

    empty = Manual(text=text)
    groups: dict[str, list[str]] = {
        "sys_exit": [f"syscalls:sys_exit_{s.name}" for s in plan.syscalls],
        "sys_enter": [f"syscalls:sys_enter_{s.name}" for s in plan.syscalls]
        if plan.rung != "tracepoint"
        else [],
        "fork": ["sched:sched_process_fork"],
        "exec": ["sched:sched_process_exec"],
        "exit": ["sched:sched_process_exit"],
    }
    ours = tracer.bpf.funcs
    tp_pairs = []
    for g, tps in groups.items():
        name = TP_GROUPS[g].encode()
        if name not in ours:
            continue
        for tp in tps:
            if probe.tracepoint_id(*tp.split(":")) is not None:
                empty.attach_tracepoint(tp=tp, fn_name=f"e_{g}".encode())
        tp_pairs.append(
            ("tracepoint", g, ours[name].fd, empty.funcs[f"e_{g}".encode()].fd)
        )
    pairs: list[tuple[str, str, int, int]] = []  # (kind, target, our fd, empty fd)
    for (kind_, fn, target), p in zip(eprogs, plan.programs, strict=True):
        if p.fn.encode() not in ours:
            continue  # ours was skipped on this kernel
        try:
            attach(empty, kind_, fn, target)
        except Exception as e:
            print(f"    empty {kind_} {target}: {e}", flush=True)
            continue
        pairs.append(
            (kind_, target, ours[p.fn.encode()].fd, empty.funcs[fn.encode()].fd)
        )
    rows = []
    for mode in ("counting", "streaming"):
        tracer.set_streaming(mode == "streaming")
        drain = Drain(tracer)
        drain.start()
        before = {
            fd: prog_stats(fd) for _k, _t, a, b in pairs + tp_pairs for fd in (a, b)
        }
        workload(n)
        drain.stop = True
        drain.join()
        after = {fd: prog_stats(fd) for fd in before}

        def delta(
            fd: int,
            after: dict[int, tuple[int, int]] = after,
            before: dict[int, tuple[int, int]] = before,
        ) -> tuple[int, int]:
            return after[fd][0] - before[fd][0], after[fd][1] - before[fd][1]

        by_kind: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
        for kind_, _target, a, b in pairs:
            (ta, ca), (tb, cb) = delta(a), delta(b)
            acc = by_kind[kind_]
            acc[0] += ta
            acc[1] += ca
            acc[2] += tb
            acc[3] += cb
        for kind_, name, a, b in tp_pairs:
            (ta, ca), (tb, cb) = delta(a), delta(b)
            by_kind[f"{kind_} ({name})"] = [ta, ca, tb, cb]
        for kind_, (ta, ca, tb, cb) in sorted(by_kind.items()):
            ours_ns = ta / ca if ca else 0.0
            empty_ns = tb / cb if cb else 0.0
            rows.append(
                {
                    "backend": backend,
                    "mode": mode,
                    "kind": kind_,
                    "calls": ca,
                    "ours_ns": ours_ns,
                    "empty_ns": empty_ns,
                    "ratio": ours_ns / empty_ns if empty_ns else 0.0,
                }
            )
            r = rows[-1]
            print(
                f"    {mode:<9} {kind_:<28} calls {ca:>9}  ours {ours_ns:>9.0f} ns"
                f"  empty {empty_ns:>8.0f} ns  x{r['ratio']:.2f}",
                flush=True,
            )
        print(f"    ({drain.events} events drained)", flush=True)
    empty.cleanup()
    tracer.close()
    return rows


def loop_ratio(backend: str, n: int, pairs: int) -> list[float]:
    """Untraced / traced (counting only, our programs alone), A/B alternated."""
    ratios = []
    for _ in range(pairs):
        base = run_loop("c", n)[0]
        tracer = Tracer(TraceOptions(backend=backend, stream=False))
        tracer.open()
        try:
            traced = run_loop("c", n)[0]
        finally:
            tracer.close()
        ratios.append(base / traced)
    return ratios


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--backends", default="fexit,kprobe")
    p.add_argument("--n", type=int, default=20_000, help="opens per loop run")
    p.add_argument("--pairs", type=int, default=2, help="A/B pairs of the loop ratio")
    a = p.parse_args()
    if os.geteuid() != 0:
        print("error: run as root", file=sys.stderr)
        return 1
    # two objects of ~150 programs each, with their perf events and links
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))
    build_loop()
    print(f"bench_hooks on {platform.release()}, {os.cpu_count()} CPUs", flush=True)
    with bpf_stats():
        rows = []
        for backend in a.backends.split(","):
            rows += measure(backend, a.n)
    print("counting-mode loop ratio (untraced/traced, C open+close):", flush=True)
    loops = {}
    for backend in a.backends.split(","):
        loops[backend] = loop_ratio(backend, a.n, a.pairs)
        print(
            f"  {backend:<7} " + " ".join(f"{r:.3f}" for r in loops[backend]),
            flush=True,
        )
    if "fexit" in loops and "kprobe" in loops:
        f = sorted(loops["fexit"])[len(loops["fexit"]) // 2]
        k = sorted(loops["kprobe"])[len(loops["kprobe"]) // 2]
        print(f"  fexit/kprobe loop ratio: {f / k:.2f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
