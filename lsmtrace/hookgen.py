"""The hook rungs' programs, generated from the catalogue. Pure (no bcc).

For each selected hook: an entry program (fentry/kprobe: start time, and on the
kprobe rung the arguments the decoder needs), an exit program (fexit/kretprobe:
verdict, latency, decoded object) on the ``security_*`` wrapper, and an exit
program on each active LSM's implementation so a denial names its LSM. The C
bodies are in bpf/hooks.bpf.c; the text generated here is one line per program.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from lsmtrace import abi, syscalls
from lsmtrace.bpfgen import (
    Plan,
    Program,
    _syscall_ids,
    bpf_source,
    decoder_for,
    plan_tracepoint,
    struct_offsets,
)
from lsmtrace.events import IdNames
from lsmtrace.hooks import Catalogue, Hook, load_catalogue

log = logging.getLogger(__name__)

MAX_ARGS = {"fexit": 11, "kprobe": 6}
# The seccomp filter run (bpf/seccomp.bpf.c): static, kept out of line by the
# kernels we know (6.1, 6.12, 6.18); three arguments before 6.15, two since.
SECCOMP_FN = "__seccomp_filter"
_PROBE = -1  # plan_hooks(seccomp_args=...): look the arity up in this kernel's BTF
MAX_HOOKS = abi.SYSCALL_BASE - 3  # ids 1..N; the ids below SYSCALL_BASE-2 are ours


def wrapper_proto(h: Hook) -> tuple[str, tuple[str, ...]]:
    if h.wrapper_params or h.wrapper_ret:
        return h.wrapper_ret or h.ret, tuple(p.ctype for p in h.wrapper_params)
    return h.ret, tuple(p.ctype for p in h.params)


def static_skip(h: Hook, rung: str) -> str | None:
    """Why this hook cannot be traced on this rung, whatever the kernel allows."""
    if h.function is None:
        return "no security_* wrapper (only the bpf_lsm stub exists)"
    ret, params = wrapper_proto(h)
    if ret != "int":
        return f"wrapper returns {ret}, not a verdict"
    for t in params:
        if t.startswith(("struct ", "union ", "const struct ")) and not t.endswith("*"):
            return f"by-value argument {t}"
    if len(params) > MAX_ARGS[rung]:
        return (
            f"{len(params)} arguments (the {rung} rung reads at most {MAX_ARGS[rung]})"
        )
    return None


def _lsm_id(name: str) -> int:
    return int(abi.LSM_IDS.get(name, abi.Lsm.UNKNOWN))


def _args(n: int) -> str:
    return ", ".join(f"u64 a{i}" for i in range(n))


def _xs(positions: tuple[int, ...], nargs: int, arg: Callable[[int], str]) -> list[str]:
    """The decoder's four inputs: the wrapper arguments at `positions`, or 0."""
    xs = []
    for i in range(4):
        pos = positions[i] if i < len(positions) else -1
        xs.append(arg(pos) if 0 <= pos < nargs else "0")
    return xs


def generate(
    rung: str, hooks: list[tuple[int, Hook]], impls: Mapping[str, list[Any]]
) -> tuple[str, list[Program]]:
    """C text and the program list for (id, hook) pairs and their impls.

    Each hook's programs follow a comment naming the hook, its id and decoder;
    every program's name carries the hook (fexit: the traced function's,
    ``security_<hook>`` or ``<lsm>_<hook>``; kprobe: ``lsmt_kp_<hook>``...), so
    the text reads without the id table. The kernel keeps 15 bytes of a
    program's name: the Program list is what names programs
    (``Tracer.program_names()``)."""
    lines: list[str] = []
    progs: list[Program] = []
    for hid, h in hooks:
        fn = h.function
        assert fn is not None
        _ret, params = wrapper_proto(h)
        n = len(params)
        dec, pos = decoder_for(h.name, params)
        hd = f"LSMT_HD_{dec}"
        used = ", ".join(f"x{i} = a{p}" for i, p in enumerate(pos) if 0 <= p < n)
        lines.append(
            f"/* hook {h.name} (id {hid}): {fn}, decoder {dec}"
            + (f" ({used})" if used else "")
            + " */"
        )
        if rung == "fexit":
            xs = _xs(pos, n, lambda p: f"a{p}")
            args = _args(n)
            lines.append(
                f"KFUNC_PROBE({fn}{', ' if n else ''}{args}) "
                f"{{ return lsmt_hook_enter({hid}, 0, 0, 0, 0); }}"
            )
            lines.append(
                f"KRETFUNC_PROBE({fn}{', ' if n else ''}{args}, int ret) "
                f"{{ return lsmt_hook_exit(ctx, {hid}, {hd}, 0, {', '.join(xs)}, ret); }}"
            )
            progs.append(Program("kfunc", f"kfunc__{fn}", fn, h.name, True, True))
            progs.append(Program("kretfunc", f"kretfunc__{fn}", fn, h.name, True, True))
            for imp in impls.get(h.name, []):
                m = len(h.params)
                lines.append(
                    f"KRETFUNC_PROBE({imp.function}{', ' if m else ''}{_args(m)}, int ret) "
                    f"{{ return lsmt_impl_exit({hid}, {_lsm_id(imp.lsm)}, ret); }}"
                )
                progs.append(
                    Program(
                        "kretfunc",
                        f"kretfunc__{imp.function}",
                        imp.function,
                        h.name,
                        False,
                        False,
                    )
                )
        else:
            xs = _xs(pos, n, lambda p: f"PT_REGS_PARM{p + 1}(ctx)")
            enter, exit_ = f"lsmt_kp_{h.name}", f"lsmt_krp_{h.name}"
            lines.append(
                f"int {enter}(struct pt_regs *ctx) "
                f"{{ return lsmt_hook_enter({hid}, {', '.join(xs)}); }}"
            )
            lines.append(
                f"int {exit_}(struct pt_regs *ctx) "
                f"{{ return lsmt_hook_exit(ctx, {hid}, {hd}, 1, 0, 0, 0, 0, "
                "(s32)PT_REGS_RC(ctx)); }"
            )
            progs.append(Program("kprobe", enter, fn, h.name, True, True))
            progs.append(Program("kretprobe", exit_, fn, h.name, True, True))
            for imp in impls.get(h.name, []):
                name = f"lsmt_kri_{imp.function}"
                lines.append(
                    f"int {name}(struct pt_regs *ctx) "
                    f"{{ return lsmt_impl_exit({hid}, {_lsm_id(imp.lsm)}, "
                    "(s32)PT_REGS_RC(ctx)); }"
                )
                progs.append(
                    Program("kretprobe", name, imp.function, h.name, False, False)
                )
    return "\n".join(lines) + "\n", progs


def seccomp_arity() -> int | None:
    """How many arguments SECCOMP_FN takes in this kernel's BTF (cached per
    kernel), or None when BTF does not have it (inlined, no seccomp filter)."""
    from lsmtrace.btf import cached_facts, load

    def compute() -> int | None:
        btf = load()
        fid = btf.func_ids().get(SECCOMP_FN)
        return None if fid is None else len(btf.func_proto(fid).params)

    try:
        return cached_facts("seccomp", compute)
    except Exception as e:  # no BTF: the fexit rung does not load either
        log.debug("%s not looked up in BTF: %s", SECCOMP_FN, e)
        return None


def seccomp_program(rung: str, nargs: int | None) -> tuple[str, list[Program]]:
    """The program that names seccomp as the decider of a syscall a filter
    refused (bpf/seccomp.bpf.c): fexit needs the function's arity (`nargs`,
    from BTF; None: not in BTF, no program); the kretprobe does not."""
    if rung == "fexit":
        if nargs is None:
            return "", []
        args = ", " + _args(nargs) if nargs else ""
        fn = f"kretfunc__{SECCOMP_FN}"
        text = (
            f"/* seccomp: the filter run */\n"
            f"KRETFUNC_PROBE({SECCOMP_FN}{args}, int ret) "
            "{ return lsmt_seccomp_exit(ret); }\n"
        )
        return text, [Program("kretfunc", fn, SECCOMP_FN, "seccomp", False, False)]
    fn = "lsmt_krp_seccomp"
    text = (
        f"/* seccomp: the filter run */\nint {fn}(struct pt_regs *ctx) "
        "{ return lsmt_seccomp_exit((s32)PT_REGS_RC(ctx)); }\n"
    )
    return text, [Program("kretprobe", fn, SECCOMP_FN, "seccomp", False, False)]


def plan_hooks(
    rung: str,
    globs: list[str] | None,
    families: list[str] | None,
    arch: str,
    catalogue: Catalogue | None = None,
    lsms: list[str] | None = None,
    seccomp_args: int | None = _PROBE,
) -> Plan:
    """The hook rung's plan. `seccomp_args`: the arity of SECCOMP_FN (default:
    looked up in BTF; None: no seccomp program)."""
    from lsmtrace import probe

    cat = catalogue or load_catalogue()
    chosen = cat.select(globs, families)
    active = lsms if lsms is not None else probe.active_lsms()
    # commoncap is always there even when securityfs is not mounted
    active_set = set(active) | {"capability"}
    skipped: dict[str, str] = {}
    traced: list[tuple[int, Hook]] = []
    for h in chosen:
        why = static_skip(h, rung)
        if why:
            skipped[h.name] = why
            continue
        if len(traced) >= MAX_HOOKS:
            skipped[h.name] = f"more than {MAX_HOOKS} hooks selected"
            continue
        traced.append((len(traced) + 1, h))
    impls = {h.name: cat.impls_for(h, active_set) for _i, h in traced}
    text, progs = generate(rung, traced, impls)
    if seccomp_args == _PROBE:
        seccomp_args = seccomp_arity()
    sc_text, sc_progs = seccomp_program(rung, seccomp_args)
    names, fams = {}, {}
    for hid, h in traced:
        names[hid] = h.name
        fams[hid] = h.family
    hook_names = [h.name for _i, h in traced]
    sys_sel = [
        s for s in syscalls.select(None, None, arch) if set(s.hooks) & set(hook_names)
    ]
    snames, sfams = _syscall_ids(sys_sel, arch)
    names.update(snames)
    fams.update(sfams)
    cflags = ["-DLSMT_WITH_SCHED=1", *struct_offsets()]
    return Plan(
        rung=rung,
        source=bpf_source(
            "syscalls.bpf.c", "hooks.bpf.c", "seccomp.bpf.c", generated=text + sc_text
        ),
        cflags=cflags,
        syscalls=sys_sel,
        tracepoints=[
            "sched:sched_process_fork",
            "sched:sched_process_exec",
            "sched:sched_process_exit",
        ],
        programs=progs + sc_progs,
        id_names=IdNames(names, fams),
        skipped=skipped,
    )


def rung_status(cat: Catalogue, features: Any | None) -> dict[str, dict[str, str]]:
    """For `lsmtrace hooks`: per rung, the hooks it cannot attach and why.

    "*" is a reason for the whole rung; "partial: " marks hooks the tracepoint
    rung sees only through the exits of the syscalls that exercise them.
    """
    out: dict[str, dict[str, str]] = {}
    for rung in ("fexit", "kprobe", "tracepoint"):
        res = features.rungs.get(rung) if features is not None else None
        reasons: dict[str, str] = {}
        if res is None:
            reasons["*"] = "not probed (needs root)"
        elif not res.ok:
            reasons["*"] = res.detail
        out[rung] = reasons
    for rung in ("fexit", "kprobe"):
        for h in cat.hooks.values():
            why = static_skip(h, rung)
            if why:
                out[rung][h.name] = why
    covered = {hk for s in syscalls.SYSCALLS for hk in s.hooks}
    for h in cat.hooks.values():
        if h.name == "capable":
            continue  # capability:cap_capable is the capability module's verdict
        if h.name in covered:
            out["tracepoint"][h.name] = (
                "partial: seen through the exits of the syscalls that exercise it "
                "(errno and object, no LSM verdict)"
            )
        else:
            out["tracepoint"][h.name] = "no traced syscall exercises it"
    return out


def plan(
    rung: str,
    globs: list[str] | None,
    families: list[str] | None,
    arch: str,
    catalogue: Catalogue | None = None,
) -> Plan:
    """What to compile and attach for a rung: the syscall tracepoints
    (bpfgen.plan_tracepoint) or the hook programs of the catalogue."""
    if rung == "tracepoint":
        return plan_tracepoint(globs, families, arch)
    return plan_hooks(rung, globs, families, arch, catalogue)
