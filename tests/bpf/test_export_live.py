"""`lsmtrace export` on the real kernel: real denials, scraped over real HTTP.

One exporter (`python -m lsmtrace export --backend tracepoint --comm <ours>`,
listening on 127.0.0.1, port chosen by the kernel and read from the status line)
serves the whole module:
- an unprivileged child opens a mode-000 file N times: sys_openat EACCES. The
  workload series of that comm must move by exactly N between two scrapes (the
  stream is filtered by --comm, so nothing else lands there); the kernel's
  decision counter, which counts every process before any filter, by at least N;
- a flood of denied opens while scraping in a loop: every scrape answers, and
  the accounting stays exact (denials counted + events lost = events attempted);
- lsmtrace_events_lost_total is the kernel's lost counter, the same number the
  exit summary prints after the final drain;
- SIGTERM: exit 0, and none of the exporter's BPF programs remain loaded.
"""

from __future__ import annotations

import os
import re
import signal
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helpers
import pytest
from helpers import NOBODY, Actor, Exporter, hexpath

pytestmark = [helpers.needs_root, pytest.mark.root]

COMM = "lsmt-export-t"
N = 37
FLOOD = 300_000
SUMMARY_RE = re.compile(r"(\d+) denials into .*?, (\d+) events lost, (\d+) attempted")
DENY = {"hook": "sys_openat", "workload": COMM}


def exporter_args() -> list[str]:
    return [
        "--listen",
        "127.0.0.1:0",
        "--backend",
        "tracepoint",
        "--comm",
        COMM,
        "--top-k",
        "5",
    ]


def scrape(url: str, timeout: float = 10.0) -> dict[tuple[str, frozenset[Any]], float]:
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(url, timeout=timeout) as r:
        assert r.status == 200
        text = r.read().decode()
    return {
        (s.name, frozenset(s.labels.items())): float(s.value)
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }


def get(m: dict[tuple[str, frozenset[Any]], float], name: str, **labels: str) -> float:
    """Sum of the samples of `name` whose labels include `labels` (0 if none)."""
    return sum(
        v
        for (n, ls), v in m.items()
        if n == name and all((k, val) in ls for k, val in labels.items())
    )


@pytest.fixture(scope="module")
def exporter(
    tracepoint_rung: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Exporter]:
    ex = Exporter(tmp_path_factory.mktemp("export"), exporter_args()).start()
    assert ex.proc is not None
    ex.prog_ids = helpers.prog_ids_of(ex.proc.pid)
    try:
        yield ex
    finally:
        if ex.returncode is None:
            ex.stop()


@pytest.fixture(scope="module")
def denied_file(world_dir: Path) -> Path:
    f = world_dir / "secret"
    f.write_text("no\n")
    os.chmod(f, 0)
    return f


def denied_opens(path: Path, n: int) -> dict[str, Any]:
    actor = Actor(COMM, [["open_loop", hexpath(path), n]], drop=NOBODY)
    try:
        actor.wait_ready()
        actor.go()
        actor.finish()
        return actor.result("open_loop")
    finally:
        actor.kill()


def wait_for(
    url: str, want: float, timeout: float = 15.0
) -> dict[tuple[str, frozenset[Any]], float]:
    deadline = time.monotonic() + timeout
    while True:
        m = scrape(url)
        if (
            get(m, "lsmtrace_denials_total", **DENY) >= want
            or time.monotonic() > deadline
        ):
            return m
        time.sleep(0.2)


def test_exactly_n_denials_between_two_scrapes(
    exporter: Exporter, denied_file: Path
) -> None:
    before = scrape(exporter.url)
    res = denied_opens(denied_file, N)
    assert res["fails"] == N, res
    after = wait_for(exporter.url, get(before, "lsmtrace_denials_total", **DENY) + N)
    moved = get(after, "lsmtrace_denials_total", **DENY) - get(
        before, "lsmtrace_denials_total", **DENY
    )
    assert moved == N
    # the tracepoint rung cannot tell who denied an open (DAC? Landlock?)
    assert get(after, "lsmtrace_denials_total", **DENY, lsm="unknown") == get(
        after, "lsmtrace_denials_total", **DENY
    )
    # kernel counts: every process, before any filter (other tests may deny too)
    dec = dict(hook="sys_openat", verdict="deny", errno="EACCES")
    k_moved = get(after, "lsmtrace_decisions_total", **dec) - get(
        before, "lsmtrace_decisions_total", **dec
    )
    assert k_moved >= N
    assert get(after, "lsmtrace_events_lost_total") == 0
    # everything attempted is delivered or counted lost, once the stream is
    # drained (the host's process events keep coming: wait for a moment)
    deadline = time.monotonic() + 15
    m = after
    while (
        get(m, "lsmtrace_events_attempted_total")
        != get(m, "lsmtrace_events_delivered_total")
        + get(m, "lsmtrace_events_lost_total")
        and time.monotonic() < deadline
    ):
        time.sleep(0.1)
        m = scrape(exporter.url)
    assert get(m, "lsmtrace_events_attempted_total") == get(
        m, "lsmtrace_events_delivered_total"
    ) + get(m, "lsmtrace_events_lost_total")
    assert get(after, "lsmtrace_rung_info", rung="tracepoint") == 1
    assert get(after, "lsmtrace_programs_attached") > 0
    assert get(after, "lsmtrace_build_info") == 1


def test_scrapes_answer_during_a_flood(exporter: Exporter, denied_file: Path) -> None:
    before = scrape(exporter.url)
    actor = Actor(COMM, [["open_loop", hexpath(denied_file), FLOOD]], drop=NOBODY)
    times: list[float] = []
    try:
        actor.wait_ready()
        actor.go()
        while actor.proc.poll() is None:
            t0 = time.monotonic()
            scrape(exporter.url, timeout=5)
            times.append(time.monotonic() - t0)
            time.sleep(0.05)
        actor.finish()
        assert actor.result("open_loop")["fails"] == FLOOD
    finally:
        actor.kill()
    assert times, "the flood ended before the first scrape"
    assert max(times) < 2.0, times

    def delta(
        m: dict[tuple[str, frozenset[Any]], float], name: str, **kw: str
    ) -> float:
        return get(m, name, **kw) - get(before, name, **kw)

    # Each denied open is 3 events here (sys_openat, and capable for
    # CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH): count every hook of our comm.
    # The stream also carries every process's exec/fork/exit (the process
    # tree's, whatever --comm) and quiet capability probes (not denials).
    # The host keeps forking: wait for a moment when all that was attempted
    # is delivered and accounted for.
    deadline = time.monotonic() + 30
    while True:
        m = scrape(exporter.url)
        counted = delta(m, "lsmtrace_denials_total", workload=COMM)
        other = delta(m, "lsmtrace_process_events_total") + delta(
            m, "lsmtrace_quiet_probes_total"
        )
        lost = delta(m, "lsmtrace_events_lost_total")
        attempted = delta(m, "lsmtrace_events_attempted_total")
        if counted + other + lost == attempted or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert attempted >= FLOOD
    assert counted + other + lost == attempted, (counted, other, lost, attempted)
    # the per-hook loss is the same loss, by hook
    assert delta(m, "lsmtrace_hook_events_lost_total") == lost


def test_sigterm_exits_0_lost_matches_and_detaches(exporter: Exporter) -> None:
    last = scrape(exporter.url)
    assert exporter.prog_ids, "the exporter holds no BPF programs?"
    exporter.stop(signal.SIGTERM)
    assert exporter.returncode == 0, exporter.stderr
    m = SUMMARY_RE.search(exporter.stderr)
    assert m, exporter.stderr
    # the summary's lost count is the kernel's, read after the final drain
    assert int(m.group(2)) == get(last, "lsmtrace_events_lost_total")
    deadline = time.monotonic() + 20
    while True:
        left = exporter.prog_ids & set(helpers.loaded_programs())
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert not left, f"programs still loaded after exit: {sorted(left)}"


def test_bpf_stats_labels_are_our_program_names(tracepoint_rung: None) -> None:
    """--bpf-stats labels each program by its name in our program text, not by
    the kernel's 15-byte cut (tracepoint__sch... for all three sched programs)."""
    from lsmtrace.commands.export import find_program_fds
    from lsmtrace.loader import TraceOptions, Tracer

    tracer = Tracer(
        TraceOptions(backend="tracepoint", hooks=["sys_openat"], latency=False)
    )
    try:
        tracer.open()
        names = tracer.program_names()
        labels = set(find_program_fds(names=names).values())
    finally:
        tracer.close()
    want = {
        "lsmt_sys_exit",
        "tracepoint__sched__sched_process_exec",
        "tracepoint__sched__sched_process_fork",
        "tracepoint__sched__sched_process_exit",
    }
    assert want <= labels, labels
    assert set(names.values()) == labels
