"""Nothing stays attached after the tracer ends: SIGINT, SIGTERM, and SIGKILL.

Three tracers run at once (default hooks, a filter that matches nothing so the
output stays empty). While they run, the ids of the BPF programs each one holds
are read from /proc/PID/fdinfo and checked against `bpftool prog show -j`
(BPF_PROG_GET_NEXT_ID when bpftool is missing). After the signal, every one of
those ids must be gone from the kernel (polled briefly: release is asynchronous).
"""

from __future__ import annotations

import shutil
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import helpers
import pytest
from helpers import TraceRun

pytestmark = [helpers.needs_root, pytest.mark.root]

SIGNALS = {
    "SIGINT": signal.SIGINT,
    "SIGTERM": signal.SIGTERM,
    "SIGKILL": signal.SIGKILL,
}
RELEASE_TIMEOUT = 20.0
NO_SUCH_UID = "4242424"
OUR_PREFIXES = ("lsmt_", "tracepoint__")


@dataclass
class Outcome:
    run: TraceRun
    ids: set[int] = field(default_factory=set)
    names: dict[int, str] = field(default_factory=dict)
    left: dict[int, str] = field(default_factory=dict)


@pytest.fixture(scope="module")
def outcomes(
    tracepoint_rung: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Outcome]]:
    workdir = tmp_path_factory.mktemp("detach")
    out = {
        name: Outcome(TraceRun(["--uid", NO_SUCH_UID], workdir, name=name.lower()))
        for name in SIGNALS
    }
    try:
        for o in out.values():
            o.run.start()
        helpers.wait_all_started(o.run for o in out.values())
        for o in out.values():
            if o.run.start_error:
                pytest.fail(o.run.start_error)
        loaded = helpers.loaded_programs()
        for o in out.values():
            o.ids = helpers.prog_ids_of(o.run.pid)
            o.names = {i: loaded.get(i, "<not listed>") for i in o.ids}
        for name, o in out.items():
            o.run.send(SIGNALS[name])
        for o in out.values():
            o.run.wait()
        deadline = time.monotonic() + RELEASE_TIMEOUT
        while True:
            loaded = helpers.loaded_programs()
            for o in out.values():
                o.left = {i: loaded[i] for i in o.ids if i in loaded}
            if not any(o.left for o in out.values()) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        yield out
    finally:
        for o in out.values():
            o.run.kill()


@pytest.mark.parametrize("sig", list(SIGNALS))
def test_programs_were_attached(outcomes: dict[str, Outcome], sig: str) -> None:
    o = outcomes[sig]
    assert o.ids, (
        f"the tracer held no BPF program fds while running\n{o.run.describe()}"
    )
    assert "<not listed>" not in o.names.values(), o.names
    if shutil.which("bpftool"):
        odd = {i: n for i, n in o.names.items() if not n.startswith(OUR_PREFIXES)}
        assert not odd, f"programs not named lsmt_*/tracepoint__*: {odd}"


@pytest.mark.parametrize("sig", list(SIGNALS))
def test_no_program_left_after_signal(outcomes: dict[str, Outcome], sig: str) -> None:
    o = outcomes[sig]
    assert not o.left, (
        f"{len(o.left)} of {len(o.ids)} programs still loaded {RELEASE_TIMEOUT:.0f} s "
        f"after {sig}: {o.left}"
    )


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_clean_exit_on_signal(outcomes: dict[str, Outcome], sig: str) -> None:
    run = outcomes[sig].run
    assert run.returncode == 0, run.describe()
    assert "Traceback" not in run.stderr, run.stderr
    s = run.summary
    assert s is not None, f"no exit summary after {sig}:\n{run.stderr}"
    assert not s.mismatch, s.line
    # nothing passes --uid 4242424: only process events, which feed the
    # process tree whatever the filters, and are not shown
    assert s.shown == 0, run.describe()
    assert s.delivered == s.processes, run.describe()
    assert run.stdout == b"", run.describe()


def test_sigkill_is_a_kill(outcomes: dict[str, Outcome]) -> None:
    assert outcomes["SIGKILL"].run.returncode == -signal.SIGKILL
