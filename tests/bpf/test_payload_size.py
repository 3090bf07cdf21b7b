"""Every record the live BPF programs emit is exactly sizeof(struct lsmt_event).

tests/unit/test_abi.py compares lsmtrace.h with the ctypes mirror; this test
checks the running programs agree: a Tracer runs in-process, a child causes
events, and the reader checks each record's length (a record of another size is
counted as malformed and never decoded).
"""

from __future__ import annotations

import contextlib
import itertools
import os

import pytest

from lsmtrace import abi
from lsmtrace.events import decode
from lsmtrace.ringbuf import record_stride

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="needs root: loads BPF programs"
)

N = 50


@pytest.mark.parametrize("perf", [False, True], ids=["ringbuf", "perfbuf"])
def test_live_payload_size(perf: bool) -> None:
    from lsmtrace import probe
    from lsmtrace.loader import TraceOptions, Tracer

    probe.mount_pseudo_filesystems()
    res = probe.probe_tracepoint()
    if not res.ok:
        pytest.skip(f"tracepoint rung unavailable: {res.detail}")
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child waits until the tracer is attached
        os.close(w)
        os.read(r, 1)
        for _ in range(N):
            with contextlib.suppress(OSError):
                os.close(os.open("/nonexistent-lsmtrace-payload", os.O_RDONLY))
        os._exit(0)
    os.close(r)
    tracer = Tracer(
        TraceOptions(
            backend="tracepoint", hooks=["sys_openat"], pid=pid, perf_buffer=perf
        )
    )
    spacing: set[int] = set()
    events = []

    def on_batch(chunk: bytes, offsets: list[int]) -> None:
        spacing.update(b - a for a, b in itertools.pairwise(offsets))
        events.extend(
            decode(chunk, tracer.id_names, tracer.syscall_names, o) for o in offsets
        )

    try:
        tracer.open()
        os.write(w, b"g")
        os.waitpid(pid, 0)
        for _ in range(50):
            tracer.poll(on_batch, 0.1)
            if len(events) >= N:
                break
    finally:
        os.close(w)
        tracer.close()
    assert tracer.malformed == 0
    assert len(events) == N
    assert {e["tgid"] for e in events} == {pid}
    assert {e["errno"] for e in events} == {"ENOENT"}
    step = abi.EVENT_SIZE if perf else record_stride(abi.EVENT_SIZE)
    assert spacing <= {step}
