"""The only module that imports bcc: compile, attach, read maps, detach.

A Tracer owns one bcc.BPF object. Everything it attaches is owned by file
descriptors of this process (perf events, bpf links), so the kernel detaches it
all when the process dies, however it dies; close() does it explicitly and is
called from `finally` blocks and signal handlers.
"""

from __future__ import annotations

import ctypes as ct
import functools
import hashlib
import logging
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lsmtrace import abi, bpfgen, compilens, hookgen, kheaders, probe, syscalls
from lsmtrace.errors import BccError, KernelFeatureError, PrivilegeError, UsageError
from lsmtrace.events import IdNames
from lsmtrace.ringbuf import BatchCallback, RingBuffer

log = logging.getLogger(__name__)

RUNG_IDS = {
    "fexit": abi.Rung.FEXIT,
    "kprobe": abi.Rung.KPROBE,
    "tracepoint": abi.Rung.TRACEPOINT,
}
BACKENDS = ("auto", "fexit", "kprobe", "tracepoint")

# The kernel functions that check a capability with CAP_OPT_NOAUDIT (a quiet
# probe: asking, not enforcing), seen as callers of cap_capable on the
# tracepoint rung, whose capability:cap_capable event has no opts argument.
# security_vm_enough_memory_mm: cap_vm_enough_memory is inlined into it (6.18)
# and is its only caller of cap_capable.
QUIET_FUNCTIONS = (
    "has_ns_capability_noaudit",
    "has_capability_noaudit",
    "ns_capable_noaudit",
    "cap_vm_enough_memory",
    "security_vm_enough_memory_mm",
)
KALLSYMS = Path("/proc/kallsyms")


@dataclass
class TraceOptions:
    backend: str = "auto"
    hooks: list[str] | None = None
    families: list[str] | None = None
    pid: int | None = None
    children: bool = False
    uid: int | None = None
    comm: str | None = None
    cgroup: str | None = None
    denied: bool = False
    stream: bool = True
    proc_events: bool = False
    latency: bool = True
    ringbuf_pages: int = 512
    perf_buffer: bool = False


@dataclass
class Attachment:
    rung: str
    buffer: str
    headers: str
    attached: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)


def check_root() -> None:
    if os.geteuid() != 0:
        raise PrivilegeError(
            "loading BPF programs needs root",
            hint="run with sudo (CAP_BPF, CAP_PERFMON and CAP_SYS_ADMIN are required)",
        )


def import_bcc() -> Any:
    try:
        import bcc
    except ImportError as e:
        raise BccError(
            "the bcc Python module (Debian package python3-bpfcc) is not importable",
            hint="apt-get install python3-bpfcc (and use a venv made with "
            "--system-site-packages; the PyPI package named 'bcc' is unrelated)",
        ) from e
    return bcc


def choose_rung(backend: str) -> tuple[str, dict[str, str]]:
    """The rung to use and, for the others tried, why not."""
    if backend not in BACKENDS:
        raise UsageError(
            f"unknown backend {backend!r}", hint=f"choose one of: {', '.join(BACKENDS)}"
        )
    order = probe.RUNG_ORDER if backend == "auto" else (backend,)
    refused: dict[str, str] = {}
    for rung in order:
        res = probe.probe_rung(rung)
        if res.ok:
            return rung, refused
        refused[rung] = res.detail
    if backend == "auto":
        raise KernelFeatureError(
            "no tracing rung loads on this kernel: "
            + "; ".join(f"{r}: {d}" for r, d in refused.items()),
            hint="run `lsmtrace doctor` for what each rung needs",
        )
    hints = {
        "fexit": "fexit needs BPF trampolines (CONFIG_DEBUG_INFO_BTF, x86_64/arm64, "
        "and no lockdown/LSM policy refusing them); try --backend auto",
        "kprobe": "kprobes need CONFIG_KPROBES=y; try --backend auto",
        "tracepoint": "tracepoints need CONFIG_FTRACE_SYSCALLS and a mounted tracefs",
    }
    raise KernelFeatureError(
        f"the {backend} rung does not load here: {refused[backend]}",
        hint=hints[backend],
    )


def resolve_cgroup(path: str, mounts: list[Path] | None = None) -> str:
    """An existing cgroup v2 directory for --cgroup (absolute, or relative to
    the cgroup v2 mount). cgroup v1 hierarchies cannot filter BPF programs."""
    if mounts is None:
        from lsmtrace.cgroups import find_v2_root

        v2, _hybrid = find_v2_root()
        mounts = [v2] if v2 is not None else []
    if not mounts:
        raise UsageError(
            "--cgroup needs cgroup v2, and none is mounted",
            hint="mount -t cgroup2 none /sys/fs/cgroup/unified",
        )
    p = Path(path)
    if not p.is_absolute():
        p = mounts[0] / path
    p = Path(os.path.realpath(p))
    inside = any(p == m or m in p.parents for m in mounts)
    if not inside or not p.is_dir() or not (p / "cgroup.procs").exists():
        raise UsageError(
            f"cgroup {path!r} is not a cgroup v2 directory ({p})",
            hint="give a path under the cgroup v2 mount "
            f"({', '.join(map(str, mounts))}), e.g. system.slice/ssh.service",
        )
    return str(p)


BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


def per_boot(
    name: str, compute: Callable[[], list[Any]], cache_root: Path | None = None
) -> list[Any]:
    """compute(), cached for this boot: an answer read from kallsyms (~0.1-0.2 s
    of a start) changes only with a reboot (KASLR). Only this boot's file of
    `name` is kept; an empty answer (hidden addresses, unreadable) is not cached."""
    import json

    try:
        boot = BOOT_ID.read_text().strip()
    except OSError:
        return compute()
    folder = (cache_root or kheaders.default_cache_root()) / "boot"
    f = folder / f"{name}-{boot}.json"
    try:
        return list(json.loads(f.read_text()))
    except (OSError, ValueError, TypeError):
        pass
    answer = compute()
    if answer:
        try:
            for old in folder.glob(f"{name}-*.json"):
                old.unlink(missing_ok=True)
            kheaders.write_cache_json(f, answer)
        except OSError as e:
            log.debug("%s not cached: %s", name, e)
    return answer


def boot_quiet_sites(cache_root: Path | None = None) -> list[tuple[int, int]]:
    """quiet_sites(), cached for this boot."""
    tag = hashlib.sha256(repr(QUIET_FUNCTIONS).encode()).hexdigest()[:8]
    sites = per_boot(f"quiet-sites-{tag}", quiet_sites, cache_root)
    return [(int(a), int(b)) for a, b in sites]


def boot_bcc_kallsyms(cache_root: Path | None = None) -> list[str]:
    """The kallsyms lines bcc looks up while it compiles (compilens), cached
    for this boot; [] when kallsyms cannot be read."""

    def read() -> list[str]:
        try:
            return compilens.bcc_lines(KALLSYMS.read_text())
        except OSError:
            return []

    return [str(x) for x in per_boot("bcc-kallsyms", read, cache_root)]


def quiet_sites(
    functions: tuple[str, ...] = QUIET_FUNCTIONS, kallsyms: Path = KALLSYMS
) -> list[tuple[int, int]]:
    """[start, end) text ranges of `functions` and their compiler-split parts
    (name.cold, name.isra.0...) from kallsyms, sorted; [] when it hides the
    addresses (kptr_restrict) or cannot be read. A function ends where the next
    symbol starts."""
    try:
        text = kallsyms.read_text()
    except OSError:
        return []
    syms: list[tuple[int, str]] = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 3 or parts[1] not in "tT":
            continue
        try:
            syms.append((int(parts[0], 16), parts[2]))
        except ValueError:
            continue
    syms.sort()
    want = set(functions)
    out = []
    for i, (addr, name) in enumerate(syms):
        if addr and name.split(".", 1)[0] in want and i + 1 < len(syms):
            out.append((addr, syms[i + 1][0]))
    return out[: abi.QUIET_SITES]


def compile_flags(
    opts: TraceOptions, rung: str, plan: bpfgen.Plan, use_perf: bool
) -> list[str]:
    cflags = [
        f"-I{abi.BPF_DIR}",
        f"-DLSMT_RUNG={int(RUNG_IDS[rung])}",
        f"-DLSMT_RINGBUF_PAGES={opts.ringbuf_pages}",
        *plan.cflags,
    ]
    if use_perf:
        cflags.append("-DLSMT_PERFBUF=1")
    return cflags


def program_text(opts: TraceOptions) -> str:
    """`trace --ebpf`: the program these options compile, and its cflags
    (bcc tools' convention). The rung is probed (root) unless --backend names
    one; nothing is compiled or attached."""
    if opts.backend == "auto":
        check_root()
        rung, _refused = choose_rung("auto")
    elif opts.backend in RUNG_IDS:
        rung = opts.backend
    else:
        choose_rung(opts.backend)  # the usage error
        raise AssertionError("unreachable")
    use_perf = opts.perf_buffer or (os.geteuid() == 0 and not probe.probe_ringbuf().ok)
    plan = hookgen.plan(rung, opts.hooks, opts.families, syscalls.machine())
    cflags = compile_flags(opts, rung, plan, use_perf)
    return (
        f"/* lsmtrace: {rung} rung, {len(plan.programs or plan.tracepoints)} "
        f"programs/tracepoints */\n"
        f"/* cflags: {' '.join(cflags)} */\n" + plan.source
    )


class Tracer:
    def __init__(self, opts: TraceOptions) -> None:
        self.opts = opts
        self.bpf: Any = None
        self.ring: RingBuffer | None = None
        self._perf_cb: Callable[..., None] | None = None
        self.attachment: Attachment | None = None
        self.id_names = IdNames({}, {})
        self.arch = syscalls.machine()
        self.syscall_names = syscalls.all_names(self.arch)
        self._cgroup_fd = -1
        self._perf_delivered = 0
        self._perf_malformed = 0
        self._detach: list[Callable[[], object]] = []
        self._holder = -1  # write end of the pipe the teardown child waits on
        self._cfg: abi.Config | None = None
        self.plan: bpfgen.Plan | None = None

    # -- setup ---------------------------------------------------------------
    def _validate(self) -> None:
        o = self.opts
        if o.pid is not None and not Path(f"/proc/{o.pid}").exists():
            raise UsageError(
                f"no process with pid {o.pid}", hint="check the pid with ps"
            )
        if o.children and o.pid is None:
            raise UsageError(
                "--children needs --pid", hint="e.g. --pid 1234 --children"
            )
        if o.comm is not None and not 0 < len(o.comm.encode()) < abi.COMM_LEN:
            raise UsageError(
                f"--comm {o.comm!r} is longer than the kernel keeps ({abi.COMM_LEN - 1} bytes)",
                hint="the kernel truncates comm to 15 bytes; pass the truncated name",
            )
        if o.cgroup is not None:
            o.cgroup = resolve_cgroup(o.cgroup)
        if o.ringbuf_pages <= 0 or o.ringbuf_pages & (o.ringbuf_pages - 1):
            raise UsageError(
                f"--buffer-pages {o.ringbuf_pages} is not a power of two",
                hint="e.g. 256, 512, 1024",
            )

    def open(self) -> Attachment:
        check_root()
        self._validate()
        probe.mount_pseudo_filesystems()
        rung, _refused = choose_rung(self.opts.backend)
        bcc = import_bcc()
        tree, kind = kheaders.header_tree()
        use_perf = self.opts.perf_buffer or not probe.probe_ringbuf().ok
        att = Attachment(
            rung=rung, buffer="perf" if use_perf else "ringbuf", headers=kind
        )

        plan = hookgen.plan(rung, self.opts.hooks, self.opts.families, self.arch)
        att.skipped.update(plan.skipped)
        self.id_names = plan.id_names
        self.plan = plan
        cflags = compile_flags(self.opts, rung, plan, use_perf)
        if kind == "btf":
            try:
                self.bpf = self._compile_btf(bcc, tree, plan.source, cflags)
            except BccError as e:
                real = kheaders.real_header_tree()
                if real is None or kheaders.header_choice() == "btf":
                    raise
                log.warning(
                    "the headers synthesized from BTF did not compile (%s); "
                    "compiled with %s instead (please report this)",
                    e.hint,
                    real,
                )
                os.environ.pop("BCC_KERNEL_SOURCE", None)
                self.bpf = self._compile(bcc, plan.source, cflags)
                att.headers = "headers"
        else:
            self.bpf = self._compile(bcc, plan.source, cflags)
        self._configure(plan)
        self._attach(bcc, plan, att)
        if not att.attached:
            self.close()
            raise KernelFeatureError(
                f"nothing could be attached on the {rung} rung: "
                + "; ".join(f"{k}: {v}" for k, v in list(att.skipped.items())[:5]),
                hint="run `lsmtrace hooks` to see what each rung can attach",
            )
        if use_perf:
            self._open_perf()
        else:
            self.ring = RingBuffer(
                self.bpf["events"].map_fd,
                self.opts.ringbuf_pages * 4096,
                abi.EVENT_SIZE,
            )
        self.attachment = att
        return att

    def _compile_btf(self, bcc: Any, tree: Path, source: str, cflags: list[str]) -> Any:
        """Compile against the synthesized header tree, with its vmlinux.h
        pruned to what this program names (kheaders.pruned_tree: ~0.45 s less
        per start). Should the pruned header not compile, the full one is
        tried and the pruner's miss is reported: a bug to fix, never a failure."""
        roots = source + "".join(p.read_text() for p in sorted(abi.BPF_DIR.glob("*.h")))
        missed: BccError | None = None
        try:
            pruned = kheaders.pruned_tree(tree, roots)
        except (OSError, ValueError, IndexError) as e:
            log.warning("could not prune vmlinux.h (%s): compiling with all of it", e)
        else:
            os.environ["BCC_KERNEL_SOURCE"] = str(pruned)
            try:
                return self._compile(bcc, source, cflags)
            except BccError as e:
                missed = e
        os.environ["BCC_KERNEL_SOURCE"] = str(tree)
        bpf = self._compile(bcc, source, cflags)  # its own error if this fails too
        if missed is not None:
            log.warning(
                "the pruned vmlinux.h in %s did not compile (%s); compiled "
                "with all of it instead (please report this)",
                pruned,
                missed.hint,
            )
        return bpf

    def _compile(self, bcc: Any, source: str, cflags: list[str]) -> Any:
        class QuietBPF(bcc.BPF):  # type: ignore[misc]
            # We attach each program ourselves so that one refused program is
            # reported as skipped instead of failing the whole load.
            def _trace_autoload(self) -> None:
                return None

        with (
            tempfile.TemporaryFile() as errlog,
            compilens.stand_in_kallsyms(boot_bcc_kallsyms()),
        ):
            saved = os.dup(2)
            os.dup2(errlog.fileno(), 2)
            try:
                return QuietBPF(text=source, cflags=cflags)
            except Exception as e:
                os.dup2(saved, 2)
                errlog.seek(0)
                text = errlog.read().decode(errors="replace")
                errors = [ln for ln in text.splitlines() if "error" in ln]
                raise BccError(
                    f"bcc could not compile or load the BPF programs: {e}",
                    hint="run with --debug for the compiler log; "
                    + (errors[0].strip() if errors else "see the log"),
                    log=text,
                ) from e
            finally:
                os.dup2(saved, 2)
                os.close(saved)

    def _configure(self, plan: bpfgen.Plan) -> None:
        o = self.opts
        flags = abi.CfgFlag(0)
        if o.stream:
            flags |= abi.CfgFlag.STREAM
        if o.denied:
            flags |= abi.CfgFlag.DENIED_ONLY
        if o.proc_events:
            flags |= abi.CfgFlag.PROC_EVENTS
        if o.latency:
            flags |= abi.CfgFlag.LATENCY
        cfg = abi.Config()
        cfg.self_tgid = os.getpid()
        if o.pid is not None:
            flags |= abi.CfgFlag.PID
            t = self.bpf["traced_tgids"]
            t[t.Key(o.pid)] = t.Leaf(1)
            if o.children:
                flags |= abi.CfgFlag.CHILDREN
                for child in _descendants(o.pid):
                    t[t.Key(child)] = t.Leaf(1)
        if o.uid is not None:
            flags |= abi.CfgFlag.UID
            cfg.uid = o.uid
        if o.comm is not None:
            flags |= abi.CfgFlag.COMM
            cfg.comm = o.comm.encode()
        if o.cgroup is not None:
            flags |= abi.CfgFlag.CGROUP
            self._cgroup_fd = os.open(o.cgroup, os.O_RDONLY | os.O_DIRECTORY)
            self.bpf["cgroup_filter"][0] = self._cgroup_fd
        cfg.flags = int(flags)
        self._cfg = cfg
        self._write_settings()
        if "-DLSMT_WITH_CAP_TP=1" in plan.cflags:
            sites = boot_quiet_sites()
            if not sites:
                log.warning(
                    "no kernel addresses in %s: quiet capability probes "
                    "are not told apart on this rung",
                    KALLSYMS,
                )
            table = self.bpf["quiet_sites"]
            for i, (start, end) in enumerate(sites):
                table[ct.c_int(i)] = table.Leaf(start, end)
        if plan.syscalls:
            desc = self.bpf["sys_desc"]
            for s in plan.syscalls:
                nr = s.nr(self.arch)
                assert nr is not None
                d = abi.SysDesc(
                    1, int(s.decoder), int(s.obj_type), (ct.c_uint8 * 4)(*s.args)
                )
                desc[ct.c_int(nr)] = ct.cast(
                    ct.pointer(d), ct.POINTER(desc.Leaf)
                ).contents

    def _write_settings(self) -> None:
        assert self._cfg is not None
        table = self.bpf["settings"]
        table[ct.c_int(0)] = ct.cast(
            ct.pointer(self._cfg), ct.POINTER(table.Leaf)
        ).contents

    def quiesce(self) -> None:
        """Stop streaming (counting goes on): nothing new enters the buffer.

        Detaching ~70 tracepoints takes seconds (each unregistration waits for
        an RCU grace period); stopping the stream first and draining lets the
        session finish with exact accounting and nothing lost meanwhile.
        """
        self.set_streaming(False)

    def set_streaming(self, on: bool) -> None:
        """Turn the event stream on or off (the programs stay attached and
        go on counting)."""
        if self.bpf is None or self._cfg is None:
            return
        if on:
            self._cfg.flags |= int(abi.CfgFlag.STREAM)
        else:
            self._cfg.flags &= ~int(abi.CfgFlag.STREAM)
        self._write_settings()

    def _attach(self, bcc: Any, plan: bpfgen.Plan, att: Attachment) -> None:
        b = self.bpf
        for s in plan.syscalls:
            names = [f"syscalls:sys_exit_{s.name}"]
            if plan.rung != "tracepoint":
                names.append(f"syscalls:sys_enter_{s.name}")
            missing = [n for n in names if probe.tracepoint_id(*n.split(":")) is None]
            if missing:
                att.skipped[s.event_name] = f"no tracepoint {missing[0]}"
                continue
            try:
                b.attach_tracepoint(tp=names[0], fn_name=b"lsmt_sys_exit")
                self._detach.append(functools.partial(b.detach_tracepoint, tp=names[0]))
                if len(names) > 1:
                    b.attach_tracepoint(tp=names[1], fn_name=b"lsmt_sys_enter")
                    self._detach.append(
                        functools.partial(b.detach_tracepoint, tp=names[1])
                    )
            except Exception as e:
                att.skipped[s.event_name] = f"attach failed: {e}"
                continue
            att.attached.append(s.event_name)
        for tp in plan.tracepoints:
            cat, name = tp.split(":")
            if probe.tracepoint_id(cat, name) is None:
                att.skipped[tp] = "tracepoint not in this kernel"
                continue
            try:
                b.attach_tracepoint(
                    tp=tp, fn_name=f"tracepoint__{cat}__{name}".encode()
                )
                self._detach.append(functools.partial(b.detach_tracepoint, tp=tp))
            except Exception as e:
                att.skipped[tp] = f"attach failed: {e}"
                continue
            if not tp.startswith("sched:"):
                att.attached.append(tp)
        for prog in plan.programs:
            fn, ev = prog.fn.encode(), prog.target.encode()
            try:
                if prog.kind == "kfunc":
                    b.attach_kfunc(fn_name=fn)
                    self._detach.append(functools.partial(b.detach_kfunc, fn_name=fn))
                elif prog.kind == "kretfunc":
                    b.attach_kretfunc(fn_name=fn)
                    self._detach.append(
                        functools.partial(b.detach_kretfunc, fn_name=fn)
                    )
                elif prog.kind == "kprobe":
                    b.attach_kprobe(event=ev, fn_name=fn)
                    self._detach.append(functools.partial(b.detach_kprobe, ev, fn))
                else:
                    b.attach_kretprobe(event=ev, fn_name=fn)
                    self._detach.append(functools.partial(b.detach_kretprobe, ev, fn))
            except Exception as e:
                if prog.required:
                    att.skipped[prog.hook] = f"{prog.target}: {e}"
                else:
                    att.skipped[f"{prog.hook}@{prog.target}"] = f"attribution: {e}"
                continue
            if prog.primary and prog.hook not in att.attached:
                att.attached.append(prog.hook)
        # a hook whose entry half failed must not count as attached
        att.attached = [h for h in att.attached if h not in att.skipped]

    def _open_perf(self) -> None:
        pending: list[bytes] = []

        def on_event(_cpu: int, data: Any, size: int) -> None:
            # perf pads records to 8 bytes: at least EVENT_SIZE, never less
            if size < abi.EVENT_SIZE:
                self._perf_malformed += 1
                return
            pending.append(ct.string_at(data, abi.EVENT_SIZE))

        def on_lost(_count: int) -> None:
            pass  # the kernel side counts LOST itself when perf_submit fails

        self._perf_pending = pending
        # wakeup_events > 1: never bcc's default of one wakeup per event.
        self.bpf["events"].open_perf_buffer(
            on_event, page_cnt=64, lost_cb=on_lost, wakeup_events=64
        )

    # -- running -------------------------------------------------------------
    def poll(self, on_batch: BatchCallback, timeout: float = 0.1) -> int:
        if self.ring is not None:
            return self.ring.poll(on_batch, timeout)
        self.bpf.perf_buffer_poll(int(timeout * 1000))
        # wakeup_events > 1: a quiet buffer never wakes epoll, so also read
        # every per-CPU buffer whatever its wakeup state
        self.bpf.perf_buffer_consume()
        return self._flush_perf(on_batch)

    def drain(self, on_batch: BatchCallback) -> int:
        if self.ring is not None:
            return self.ring.consume(on_batch)
        self.bpf.perf_buffer_consume()
        return self._flush_perf(on_batch)

    def _flush_perf(self, on_batch: BatchCallback) -> int:
        batch = self._perf_pending
        if not batch:
            return 0
        n = len(batch)
        size = abi.EVENT_SIZE
        chunk = b"".join(batch)
        batch.clear()
        self._perf_delivered += n
        on_batch(chunk, [i * size for i in range(n)])
        return n

    def fill(self) -> float:
        """How full the ring buffer is (0.0 to 1.0; 0.0 on the perf buffer)."""
        if self.ring is None:
            return 0.0
        return self.ring.available() / self.ring.size

    @property
    def malformed(self) -> int:
        """Records whose size is not sizeof(struct lsmt_event) (never decoded)."""
        return self.ring.malformed if self.ring is not None else self._perf_malformed

    @property
    def delivered(self) -> int:
        return self.ring.delivered if self.ring is not None else self._perf_delivered

    def stats(self) -> dict[str, int]:
        t = self.bpf["stats"]
        out = {}
        for s in abi.Stat:
            vals = t[t.Key(int(s))]
            out[s.name.lower()] = int(sum(int(v) for v in vals))
        return out

    def counts(self) -> list[tuple[int, int, int, int]]:
        """[(id, lsm, errno, count)]: allowed (errno 0) and denied decisions."""
        out: list[tuple[int, int, int, int]] = []
        allow = self.bpf["allow_counts"]
        # only the ids this run uses, not all LSMT_MAX_IDS slots (scrape cost)
        for id_ in sorted(self.id_names.names):
            n = int(sum(int(v) for v in allow[allow.Key(id_)]))
            if n:
                out.append((id_, 0, 0, n))
        for k, vals in self.bpf["deny_counts"].items():
            out.append(
                (int(k.id), int(k.lsm), int(k.err), int(sum(int(v) for v in vals)))
            )
        return out

    def lost_counts(self) -> dict[str, int]:
        """{hook or syscall name: events lost (buffer full)}, "process events"
        for exec/fork/exit; the ids this run uses only."""
        out: dict[str, int] = {}
        t = self.bpf["lost_counts"]
        for id_ in (0, *sorted(self.id_names.names)):
            n = int(sum(int(v) for v in t[t.Key(id_)]))
            if n:
                out["process events" if id_ == 0 else self.id_names.name(id_)] = n
        return out

    def quiet_counts(self) -> list[tuple[int, int, int, int]]:
        """[(id, lsm, errno, count)] of refused quiet capability probes
        (CAP_OPT_NOAUDIT), which counts() leaves out of the denials."""
        out: list[tuple[int, int, int, int]] = []
        for k, vals in self.bpf["quiet_counts"].items():
            out.append(
                (int(k.id), int(k.lsm), int(k.err), int(sum(int(v) for v in vals)))
            )
        return out

    def program_names(self) -> dict[int, str]:
        """{fd: name} of the loaded programs, by their names in our program
        text (the kernel keeps only 15 bytes: kretfunc__securi...)."""
        if self.bpf is None:
            return {}
        return {
            int(f.fd): name.decode() if isinstance(name, bytes) else str(name)
            for name, f in self.bpf.funcs.items()
        }

    def latency_histogram(self) -> dict[int, list[int]]:
        hist: dict[int, list[int]] = {}
        for k, vals in self.bpf["lat_hist"].items():
            row = hist.setdefault(int(k.id), [0] * abi.LAT_BUCKETS)
            row[min(int(k.bucket), abi.LAT_BUCKETS - 1)] += int(
                sum(int(v) for v in vals)
            )
        return hist

    def detach(self, wait: bool = False) -> None:
        """Stop every program (maps stay readable, the buffer drainable).

        The kernel's teardown is slow: closing each tracepoint's perf event
        waits for RCU grace periods (perf_event_detach_bpf_prog and
        perf_trace_event_unreg, under one mutex: ~80 ms per tracepoint here,
        5.6 s for the tracepoint rung's ~70). Unless `wait`, a child process
        that holds duplicates of our BPF and perf descriptors takes that over
        (_hand_over): dropping our own references is then immediate, and the
        kernel detaches everything when the child exits, after close().
        """
        if self._detach and not wait and self._holder < 0:
            self._hand_over()
        while self._detach:
            undo = self._detach.pop()
            try:
                undo()
            except Exception as e:
                log.warning("detach failed: %s", e)

    def _hand_over(self) -> None:
        """Fork a holder of our BPF/perf descriptors that exits once close()
        has dropped ours (EOF on a pipe), so the last reference, and with it
        the kernel's teardown, is the holder's and not on our exit path
        (probe.hand_to_orphan).
        """
        try:
            r, w = os.pipe()
        except OSError as e:
            log.debug("no teardown child (%s): detaching in place", e)
            return
        try:
            if not probe.hand_to_orphan(_bpf_fds(), until=r):
                os.close(w)
                return
        finally:
            os.close(r)
        self._holder = w

    def close(self) -> None:
        self.detach()
        if self.ring is not None:
            self.ring.close()
            self.ring = None
        if self.bpf is not None:
            try:
                self.bpf.cleanup()
            finally:
                self.bpf = None
        if self._cgroup_fd >= 0:
            os.close(self._cgroup_fd)
            self._cgroup_fd = -1
        if self._holder >= 0:
            os.close(self._holder)  # the holder exits; the kernel tears down
            self._holder = -1


# anon inodes that keep programs attached: perf events, BPF programs, links, maps
_BPF_INODES = (
    "anon_inode:[perf_event]",
    "anon_inode:bpf-prog",
    "anon_inode:bpf_link",
    "anon_inode:bpf-link",
    "anon_inode:bpf-map",
)


def _bpf_fds() -> list[int]:
    out = []
    for fd in probe.open_fds():
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(_BPF_INODES):
            out.append(fd)
    return out


def _descendants(pid: int) -> list[int]:
    """Processes already below `pid` when tracing starts (new ones: sched_process_fork)."""
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(d.name))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out
