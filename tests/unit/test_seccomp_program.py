"""The hook rungs' seccomp program (bpf/seccomp.bpf.c, lsmtrace/hookgen.py):
one exit program on the filter run, generated for the function's arity in
this kernel's BTF (three arguments before 6.15, two since) or as a
kretprobe; the abi names its verdict `seccomp`. The program itself runs in
the VM stage (tests/vm/test_workloads.py), where the rungs load."""

from __future__ import annotations

from pathlib import Path

import pytest

from lsmtrace import abi, btf, events, hookgen
from lsmtrace import hooks as H

FIXTURE = Path(__file__).parents[1] / "data" / "btf" / "vmlinux-excerpt.btf"


@pytest.mark.parametrize("nargs", [2, 3])
def test_fexit_program_has_the_kernels_arity(nargs: int) -> None:
    text, progs = hookgen.seccomp_program("fexit", nargs)
    args = ", ".join(f"u64 a{i}" for i in range(nargs))
    assert f"KRETFUNC_PROBE(__seccomp_filter, {args}, int ret)" in text
    assert "lsmt_seccomp_exit(ret)" in text
    [p] = progs
    assert (p.kind, p.fn, p.target) == (
        "kretfunc",
        "kretfunc____seccomp_filter",
        "__seccomp_filter",
    )
    # an attribution program: its failure skips only the attribution
    assert not p.primary
    assert not p.required


def test_no_fexit_program_without_btf_but_a_kretprobe() -> None:
    assert hookgen.seccomp_program("fexit", None) == ("", [])
    text, [p] = hookgen.seccomp_program("kprobe", None)
    assert "lsmt_seccomp_exit((s32)PT_REGS_RC(ctx))" in text
    assert (p.kind, p.target, p.fn) == (
        "kretprobe",
        "__seccomp_filter",
        "lsmt_krp_seccomp",
    )
    assert p.fn in text


@pytest.mark.parametrize("rung", ["fexit", "kprobe"])
def test_plan_carries_the_seccomp_file_and_program(rung: str) -> None:
    cat = H.build_catalogue(btf.load(FIXTURE), "6.18-test")
    plan = hookgen.plan_hooks(
        rung,
        ["file_open"],
        None,
        "x86_64",
        catalogue=cat,
        lsms=["apparmor"],
        seccomp_args=2,
    )
    assert "/* ---- bpf/seccomp.bpf.c ---- */" in plan.source
    assert "static __always_inline int lsmt_seccomp_exit(s32 ret)" in plan.source
    # the generated wrapper comes after the file that defines what it calls
    assert plan.source.index("lsmt_seccomp_exit(s32 ret)") < plan.source.rindex(
        "lsmt_seccomp_exit("
    )
    assert [p.target for p in plan.programs if p.hook == "seccomp"] == [
        "__seccomp_filter"
    ]
    none = hookgen.plan_hooks(
        rung,
        ["file_open"],
        None,
        "x86_64",
        catalogue=cat,
        lsms=["apparmor"],
        seccomp_args=None,
    )
    assert any(p.hook == "seccomp" for p in none.programs) == (rung == "kprobe")


def test_arity_from_btf_of_this_host() -> None:
    if not Path("/sys/kernel/btf/vmlinux").exists():
        pytest.skip("no /sys/kernel/btf/vmlinux on this machine")
    fid = btf.load().func_ids().get("__seccomp_filter")
    want = None if fid is None else len(btf.load().func_proto(fid).params)
    assert hookgen.seccomp_arity() == want


def test_the_verdict_is_named_seccomp() -> None:
    assert abi.lsm_name(int(abi.Lsm.SECCOMP)) == "seccomp"
    assert events._LSM_NAMES[int(abi.Lsm.SECCOMP)] == "seccomp"
