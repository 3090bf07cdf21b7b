"""The pruned vmlinux.h (kheaders.prune_vmlinux) compiles every rung's program.

The loader compiles against a vmlinux.h cut to what the program names and falls
back to the whole header, with a warning, should the cut one not compile. That
fallback would hide a pruner bug behind a slower start, so these tests compile
with bcc (compile only: nothing is attached, so the hook rungs' programs compile
here too) and fail on any fallback.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import helpers
import pytest

from lsmtrace import hookgen, kheaders, syscalls
from lsmtrace.loader import TraceOptions, Tracer, compile_flags, import_bcc

pytestmark = helpers.needs_root


@pytest.fixture(scope="module")
def btf_tree() -> Path:
    from lsmtrace import probe

    probe.mount_pseudo_filesystems()
    tree, kind = kheaders.header_tree()
    if kind != "btf":
        pytest.skip(
            "bcc compiles against the kernel's header tree here (no BTF, no "
            "bpftool, or LSMTRACE_HEADERS=kernel): no pruned vmlinux.h to test"
        )
    return tree


def compile_plan(
    tree: Path, rung: str, hooks: list[str] | None, perf: bool = False
) -> tuple[Any, str]:
    opts = TraceOptions(backend=rung, hooks=hooks, perf_buffer=perf)
    plan = hookgen.plan(rung, hooks, None, syscalls.machine())
    bpf = Tracer(opts)._compile_btf(
        import_bcc(), tree, plan.source, compile_flags(opts, rung, plan, perf)
    )
    return bpf, os.environ["BCC_KERNEL_SOURCE"]


@pytest.mark.parametrize(
    ("rung", "hooks", "perf"),
    [
        ("tracepoint", ["*"], False),
        ("tracepoint", None, True),
        ("kprobe", None, False),
        # every hook's signature: the struct names a program can carry
        ("fexit", ["*"], False),
    ],
    ids=["tracepoint-all", "tracepoint-perfbuf", "kprobe-default", "fexit-all"],
)
def test_each_rungs_program_compiles_against_the_pruned_header(
    btf_tree: Path,
    rung: str,
    hooks: list[str] | None,
    perf: bool,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING):
        bpf, used = compile_plan(btf_tree, rung, hooks, perf)
    try:
        assert not [r.message for r in caplog.records if "vmlinux.h" in r.message]
        header = Path(used) / "include" / "vmlinux.h"
        assert Path(used).parent == btf_tree / "pruned"
        full = (btf_tree / "include" / "vmlinux.h").stat().st_size
        assert header.stat().st_size < full / 10
    finally:
        bpf.cleanup()


def test_a_pruned_header_that_does_not_compile_falls_back_to_the_whole_one(
    btf_tree: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # a private copy of the tree: the broken header must not reach the cache
    tree = tmp_path / "tree"
    (tree / "include").mkdir(parents=True)
    for entry in (btf_tree / "include").iterdir():
        (tree / "include" / entry.name).symlink_to(entry)
    monkeypatch.setattr(
        kheaders, "prune_vmlinux", lambda text, roots: "#error pruned too much\n"
    )
    with caplog.at_level(logging.WARNING):
        bpf, used = compile_plan(tree, "tracepoint", ["sys_openat"])
    try:
        assert used == str(tree)
        warned = [r.message for r in caplog.records if "did not compile" in r.message]
        assert len(warned) == 1
        assert "pruned too much" in warned[0]
    finally:
        bpf.cleanup()
