"""The generated part of the hook rungs' program text, against golden files.

`lsmtrace trace --ebpf` prints the whole program (bpf/*.c verbatim, then what
lsmtrace/hookgen.py writes for the selected hooks); the generated part is
checked here for the 21 hooks of the BTF fixture (tests/data/btf), with a fixed
list of active LSMs, on both hook rungs. It must be stable (same input, same
text) and readable without the id table: every hook's programs follow a comment
naming it, and every program's name carries the hook or the function traced.
LSMTRACE_UPDATE_GOLDEN=1 rewrites the golden files.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from lsmtrace import abi, bpfgen, btf, hookgen
from lsmtrace import hooks as H

DATA = Path(__file__).resolve().parents[1] / "data"
FIXTURE = DATA / "btf" / "vmlinux-excerpt.btf"
GOLDEN = DATA / "golden"
LSMS = ["capability", "landlock", "selinux", "apparmor", "bpf"]


def generated(rung: str) -> tuple[str, list[hookgen.Program]]:
    cat = H.build_catalogue(btf.load(FIXTURE), "6.18-test")
    traced = [
        (i + 1, h)
        for i, h in enumerate(sorted(cat.hooks.values(), key=lambda h: h.name))
        if hookgen.static_skip(h, rung) is None
    ]
    impls = {h.name: cat.impls_for(h, set(LSMS)) for _i, h in traced}
    return hookgen.generate(rung, traced, impls)


@pytest.mark.parametrize("rung", ["fexit", "kprobe"])
def test_generated_text_is_golden(rung: str) -> None:
    text, _progs = generated(rung)
    assert generated(rung)[0] == text  # stable across runs
    golden = GOLDEN / f"hooks.{rung}.c"
    if os.environ.get("LSMTRACE_UPDATE_GOLDEN"):
        golden.write_text(text)
    assert text == golden.read_text()


@pytest.mark.parametrize("rung", ["fexit", "kprobe"])
def test_every_program_names_its_hook(rung: str) -> None:
    text, progs = generated(rung)
    assert progs
    for p in progs:
        # the program's own name carries the hook, or the LSM function it
        # traces (apparmor_file_open, selinux_capable...)
        assert p.hook in p.fn or p.target in p.fn, p
        assert re.search(
            rf"\b{re.escape(p.fn if rung == 'kprobe' else p.target)}\b", text
        )
    for hook in {p.hook for p in progs}:
        assert re.search(rf"^/\* hook {hook} \(id \d+\): ", text, re.M), hook


def test_decoders_named_in_the_text_are_the_header_enum() -> None:
    for rung in ("fexit", "kprobe"):
        text, _ = generated(rung)
        for name in re.findall(r"LSMT_HD_(\w+)", text):
            assert name in abi.HookDecoder.__members__, name
    for dec, _args in bpfgen.HOOK_DECODERS.values():
        assert dec in abi.HookDecoder.__members__, dec


def test_tracepoint_rung_leaves_out_events_the_kernel_lacks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """capability:cap_capable is newer than 6.12, avc:selinux_audited needs
    SELinux: bcc cannot compile a program for an event tracefs does not have,
    so the plan leaves it out and says what is not seen instead."""
    from lsmtrace import probe

    events = tmp_path / "events"
    (events / "signal" / "signal_generate").mkdir(parents=True)
    (events / "syscalls").mkdir()
    monkeypatch.setattr(probe, "tracefs", lambda: tmp_path)
    monkeypatch.setattr(bpfgen, "struct_offsets", lambda: [])
    plan = bpfgen.plan_tracepoint(None, None, "x86_64")
    assert "signal:signal_generate" in plan.tracepoints
    assert "-DLSMT_WITH_SIGNAL_TP=1" in plan.cflags
    for tp, flag in (
        ("capability:cap_capable", "-DLSMT_WITH_CAP_TP=1"),
        ("avc:selinux_audited", "-DLSMT_WITH_AVC_TP=1"),
    ):
        assert tp not in plan.tracepoints
        assert flag not in plan.cflags
        assert plan.skipped[tp].startswith(f"this kernel has no {tp} tracepoint")
    assert "capability checks are not seen" in plan.skipped["capability:cap_capable"]
    # all three present: all three planned, nothing skipped
    (events / "capability" / "cap_capable").mkdir(parents=True)
    (events / "avc" / "selinux_audited").mkdir(parents=True)
    plan = bpfgen.plan_tracepoint(None, None, "x86_64")
    assert plan.tracepoints[:3] == [
        "capability:cap_capable",
        "avc:selinux_audited",
        "signal:signal_generate",
    ]
    assert plan.skipped == {}
