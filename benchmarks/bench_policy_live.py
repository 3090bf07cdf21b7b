"""The live audit mode (--policy): the live check's cost per event.

    .venv/bin/python benchmarks/bench_policy_live.py [--procs 200] [--rounds 20]

Synthetic and deterministic, no root: the policy of each target is generated
from tests/data/recordings/forking_daemon.jsonl; the stream is that
recording's worker process (accept, two opens, capability checks, exit) run
by `--procs` workers, `--rounds` times each, with object dicts shared between
repeated accesses as the decoder shares them. Measured per event, through
LiveCheck.add (what the Session adds per event):
- steady: the same decisions again (the memo answers);
- first sight: every open names a new file (the Builder, the target's
  evaluation and, for the ones it would deny, the rule rendering);
- not governed (AppArmor, TOMOYO, SELinux): the workers run a program no
  profile/domain confines.
Prints one line per target and measure, µs per event (median of 5 runs).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lsmtrace.policy import generate, load, load_access_set
from lsmtrace.policy.live import LiveCheck
from lsmtrace.record import read_recording

REC = Path(__file__).resolve().parents[1] / "tests/data/recordings/forking_daemon.jsonl"
TARGETS = ("landlock", "apparmor", "tomoyo", "selinux")
Event = dict[str, Any]


def stream(procs: int, rounds: int, fresh_paths: bool, exe: str) -> list[Event]:
    evs = read_recording(REC).events
    start = [e for e in evs if e["tgid"] == 44000 and e["kind"] != "exit"]
    worker = [e for e in evs if e["tgid"] == 44001 and e["kind"] != "exit"]
    start[0]["object"] = {**start[0]["object"], "filename": exe}
    out = [copy.deepcopy(e) for e in start]
    shared: dict[int, dict[str, Any]] = {}  # the decoder's shared object dicts
    n = 0
    for p in range(procs):
        tgid = 50_000 + p
        out.append(
            {
                **start[-1],
                "kind": "fork",
                "hook": "fork",
                "family": "process",
                "object": {"child_pid": tgid},
            }
        )
        for _ in range(rounds):
            for i, e in enumerate(worker):
                ev = {**e, "tgid": tgid, "pid": tgid, "ppid": 44000}
                if fresh_paths and e["hook"] == "sys_openat":
                    n += 1
                    ev["object"] = {**e["object"], "path": f"/srv/www/page{n}.html"}
                else:
                    ev["object"] = shared.setdefault(i, dict(e["object"]))
                out.append(ev)
    return out


def measure(target: str, path: str, evs: list[Event]) -> float:
    runs = []
    for _ in range(5):
        lc = LiveCheck(load(path))
        batch = [dict(e) for e in evs]  # fresh event dicts, shared objects
        t = time.perf_counter()
        for ev in batch:
            lc.add(ev)
        runs.append((time.perf_counter() - t) / len(batch) * 1e6)
    return statistics.median(runs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--procs", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=20)
    a = ap.parse_args()
    aset = load_access_set([str(REC)])
    steady = stream(a.procs, a.rounds, False, "/usr/local/sbin/minid")
    first = stream(a.procs, 1, True, "/usr/local/sbin/minid")
    other = stream(a.procs, a.rounds, False, "/usr/local/sbin/other")
    with tempfile.TemporaryDirectory() as d:
        for target in TARGETS:
            path = f"{d}/policy.{target}"
            Path(path).write_text(generate(target, aset))
            line = (
                f"{target:9} steady {measure(target, path, steady):5.2f} µs/event  "
                f"first sight {measure(target, path, first):6.2f} µs/event"
            )
            if target != "landlock":
                line += f"  not governed {measure(target, path, other):5.2f} µs/event"
            print(line + f"  ({len(steady)} / {len(first)} events)", flush=True)


if __name__ == "__main__":
    main()
