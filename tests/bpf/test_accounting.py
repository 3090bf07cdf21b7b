"""Exact accounting under load: delivered + lost == attempted, nothing silently dropped.

A child floods openat() of a missing file (one decision per call, verdict
"error"), traced with `--pid CHILD` so that only the flood passes the filters;
we know how many decisions the kernel must have attempted to stream. Tracers:

  small   --buffer-pages 8     (32 KiB ring): must lose, and count every loss
  perf    --perf-buffer        same flood, perf buffer: the same identity
  large   --buffer-pages 4096  a flood smaller than the ring: must lose nothing

The exit summary on stderr is parsed (helpers.parse_summary); the test uses the
flood size as ground truth, and the kernel's own count of output attempts
(`attempted`): attempted == delivered + lost exactly.

A second scenario checks that stopping the tracer loses nothing at a rate the
consumer keeps up with easily (a paced child, still running during Ctrl-C).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import helpers
import pytest
from helpers import Actor, TraceRun, hexpath

pytestmark = [helpers.needs_root, pytest.mark.root]

N_SMALL = 200_000
N_LARGE = 20_000  # x 448-byte records < 4096 pages: fits without any consumer
SLACK = 500  # the flooder's few other traced syscalls (mmap of arenas...)


@dataclass
class Flood:
    runs: dict[str, TraceRun]
    actors: dict[str, Actor]


@pytest.fixture(scope="module")
def flood(
    tracepoint_rung: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Flood]:
    workdir = tmp_path_factory.mktemp("flood")
    missing = workdir / "does-not-exist"
    actors = {
        "small": Actor("lsmt-flood-s", [["open_loop", hexpath(missing), N_SMALL]]),
        "large": Actor("lsmt-flood-l", [["open_loop", hexpath(missing), N_LARGE]]),
    }
    runs: dict[str, TraceRun] = {}
    try:
        for a in actors.values():
            a.wait_ready()
        s, lg = str(actors["small"].pid), str(actors["large"].pid)
        runs["small"] = TraceRun(["--pid", s, "--buffer-pages", "8"], workdir, "small")
        runs["perf"] = TraceRun(["--pid", s, "--perf-buffer"], workdir, "perf")
        runs["large"] = TraceRun(
            ["--pid", lg, "--buffer-pages", "4096"], workdir, "large"
        )
        for r in runs.values():
            r.start()
        helpers.wait_all_started(runs.values())
        for r in runs.values():
            if r.start_error:
                pytest.fail(r.start_error)
        for a in actors.values():
            a.go()
        for a in actors.values():
            a.finish()
        helpers.stop_all(runs.values())
        yield Flood(runs, actors)
    finally:
        for r in runs.values():
            r.kill()
        for a in actors.values():
            a.kill()


def _check_identity(run: TraceRun, n: int) -> helpers.Summary:
    assert run.returncode == 0, run.describe()
    assert "Traceback" not in run.stderr, run.stderr
    s = run.summary
    assert s is not None, f"no exit summary:\n{run.stderr}"
    assert not s.mismatch, s.line
    lines = [ln for ln in run.stdout.splitlines() if ln.strip()]
    assert len(lines) == s.shown, f"{len(lines)} lines on stdout, {s.line}"
    assert s.adds_up, s.line
    # ground truth: the child made n openat calls, each one decision that passed
    # --pid; delivered + lost must account for every one of them
    # (process events of the whole host are streamed too, past --pid, to feed
    # the process tree: not the flood's)
    assert n <= s.delivered + s.lost, f"flood of {n}: {s.line}"
    assert s.delivered - s.processes + s.lost <= n + SLACK, f"flood of {n}: {s.line}"
    # the kernel's own count of output attempts: each delivered or lost
    assert s.attempted == s.delivered + s.lost, s.line
    assert s.seen >= s.attempted + s.filtered, s.line
    return s


def test_flooder_did_its_opens(flood: Flood) -> None:
    assert flood.actors["small"].result("open_loop")["fails"] == N_SMALL
    assert flood.actors["large"].result("open_loop")["fails"] == N_LARGE


def test_small_ring_loses_and_counts_every_loss(flood: Flood) -> None:
    run = flood.runs["small"]
    s = _check_identity(run, N_SMALL)
    assert s.lost > 0, f"an 8-page ring kept up with {N_SMALL} events? {s.line}"
    flood_lines = sum(1 for e in run.events if e["hook"] == "sys_openat")
    assert flood_lines <= s.delivered
    assert all(e["tgid"] == flood.actors["small"].pid for e in run.events)


def test_perf_buffer_counts_every_loss(flood: Flood) -> None:
    _check_identity(flood.runs["perf"], N_SMALL)


def test_large_ring_loses_nothing(flood: Flood) -> None:
    run = flood.runs["large"]
    s = _check_identity(run, N_LARGE)
    assert s.lost == 0, s.line
    a = flood.actors["large"]
    opens = [e for e in run.events if e["hook"] == "sys_openat" and e["tgid"] == a.pid]
    assert len(opens) == N_LARGE, f"{len(opens)} openat events of {N_LARGE}: {s.line}"
    assert {e["errno"] for e in opens} == {"ENOENT"}
    assert {e["verdict"] for e in opens} == {"error"}


# -- stopping must not throw away what the consumer could have read -----------------

PACED_RATE_BATCH = 50  # opens per batch
PACED_PAUSE = 0.01  # ~5 k decisions/s: a small fraction of what the consumer handles


def test_no_loss_while_stopping_at_a_modest_rate(
    tracepoint_rung: None, tmp_path: Path
) -> None:
    """A child opens ~5 k/s through the whole run, Ctrl-C included.

    The default ring (512 pages, ~4.7 k records) and the consumer keep up with
    that rate indefinitely; the only way to lose events is to stop consuming
    while the programs still produce (e.g. a slow detach before the last drain).
    """
    missing = tmp_path / "does-not-exist"
    a = Actor(
        "lsmt-paced",
        [["open_paced", hexpath(missing), 10_000_000, PACED_RATE_BATCH, PACED_PAUSE]],
    )
    run = TraceRun(["--pid", str(a.pid)], tmp_path, "paced")
    try:
        a.wait_ready()
        run.start().wait_started()
        a.go()
        time.sleep(1.5)
        t0 = time.monotonic()
        run.stop()
        stop_s = time.monotonic() - t0
    finally:
        run.kill()
        a.kill()
    assert run.returncode == 0, run.describe()
    s = run.summary
    assert s is not None, run.stderr
    assert not s.mismatch, s.line
    lines = [ln for ln in run.stdout.splitlines() if ln.strip()]
    assert len(lines) == s.shown, s.line
    assert s.delivered > 1000, f"the paced child was not traced: {s.line}"
    assert s.lost == 0, (
        f"{s.lost} events lost at ~5 k/s; SIGINT to exit took {stop_s:.1f} s: {s.line}"
    )
