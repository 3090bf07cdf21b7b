"""Feature checks: root, BTF, headers, active LSMs, and which rungs load here.

Every rung is probed by loading (and, where harmless, attaching) a trivial
program of its kind through the raw bpf(2) and perf_event_open(2) syscalls,
never by trusting kernel config: on some kernels every trampoline program is
refused with EPERM although CONFIG_BPF_LSM=y and `bpf` is in the LSM list.
No bcc is needed here, so `lsmtrace doctor` works on a machine without it.
"""

from __future__ import annotations

import contextlib
import ctypes as ct
import errno
import functools
import os
import platform
import struct
from dataclasses import dataclass, field
from pathlib import Path

from lsmtrace.syscalls import machine

SECURITYFS = Path("/sys/kernel/security")
TRACEFS_CANDIDATES = (Path("/sys/kernel/tracing"), Path("/sys/kernel/debug/tracing"))

_NR_BPF = {"x86_64": 321, "aarch64": 280}
_NR_PERF_EVENT_OPEN = {"x86_64": 298, "aarch64": 241}

BPF_MAP_CREATE = 0
BPF_PROG_LOAD = 5
BPF_RAW_TRACEPOINT_OPEN = 17
BPF_PROG_TYPE_KPROBE = 2
BPF_PROG_TYPE_TRACEPOINT = 5
BPF_PROG_TYPE_RAW_TRACEPOINT = 17
BPF_PROG_TYPE_TRACING = 26
BPF_PROG_TYPE_LSM = 29
BPF_TRACE_FEXIT = 25
BPF_LSM_MAC = 27
BPF_MAP_TYPE_RINGBUF = 27
PERF_TYPE_TRACEPOINT = 2
PERF_FLAG_FD_CLOEXEC = 1 << 3
PERF_EVENT_IOC_SET_BPF = 0x40042408

# r0 = 0; exit
_RET0 = bytes.fromhex("b700000000000000") + bytes.fromhex("9500000000000000")

_libc = ct.CDLL(None, use_errno=True)
_libc.syscall.restype = ct.c_long


@dataclass
class ProbeResult:
    ok: bool
    detail: str = ""


@dataclass
class Features:
    root: bool
    btf: bool
    headers: str | None
    lsms: list[str]
    rungs: dict[str, ProbeResult] = field(default_factory=dict)
    bpf_lsm: ProbeResult = field(
        default_factory=lambda: ProbeResult(False, "not probed")
    )
    ringbuf: ProbeResult = field(
        default_factory=lambda: ProbeResult(False, "not probed")
    )


def sys_bpf(cmd: int, attr: bytearray) -> int:
    nr = _NR_BPF.get(machine())
    if nr is None:
        raise OSError(errno.ENOSYS, f"bpf(2) number unknown on {machine()}")
    buf = (ct.c_char * len(attr)).from_buffer(attr)
    ret = _libc.syscall(ct.c_long(nr), ct.c_long(cmd), buf, ct.c_uint(len(attr)))
    if ret < 0:
        e = ct.get_errno()
        raise OSError(e, os.strerror(e))
    return int(ret)


def _prog_load(
    prog_type: int, attach_type: int = 0, attach_btf_id: int = 0, kern_version: int = 0
) -> int:
    insns = ct.create_string_buffer(_RET0, len(_RET0))
    lic = ct.create_string_buffer(b"GPL")
    log = ct.create_string_buffer(4096)
    attr = bytearray(128)
    struct.pack_into(
        "<IIQQIIQII",
        attr,
        0,
        prog_type,
        len(_RET0) // 8,
        ct.addressof(insns),
        ct.addressof(lic),
        1,
        len(log),
        ct.addressof(log),
        kern_version,
        0,
    )
    attr[48:56] = b"lsmt_prb"
    struct.pack_into("<I", attr, 68, attach_type)
    struct.pack_into("<I", attr, 108, attach_btf_id)
    try:
        return sys_bpf(BPF_PROG_LOAD, attr)
    except OSError as e:
        text = log.value.decode(errors="replace").strip().splitlines()
        if text:
            e.strerror = f"{e.strerror}: {text[-1]}"
        raise


def _perf_event_open(attr: bytearray, pid: int = -1, cpu: int = 0) -> int:
    nr = _NR_PERF_EVENT_OPEN[machine()]
    buf = (ct.c_char * len(attr)).from_buffer(attr)
    ret = _libc.syscall(
        ct.c_long(nr),
        buf,
        ct.c_int(pid),
        ct.c_int(cpu),
        ct.c_int(-1),
        ct.c_ulong(PERF_FLAG_FD_CLOEXEC),
    )
    if ret < 0:
        e = ct.get_errno()
        raise OSError(e, os.strerror(e))
    return int(ret)


def _ioctl_set_bpf(perf_fd: int, prog_fd: int) -> None:
    if (
        _libc.ioctl(
            ct.c_int(perf_fd), ct.c_ulong(PERF_EVENT_IOC_SET_BPF), ct.c_int(prog_fd)
        )
        < 0
    ):
        e = ct.get_errno()
        raise OSError(e, os.strerror(e))


def _perf_attr(type_: int, config: int, config1: int = 0) -> bytearray:
    attr = bytearray(128)
    # type, size, config, sample_period, sample_type, read_format, flags,
    # wakeup_events, bp_type, config1
    struct.pack_into(
        "<IIQQQQQIIQ", attr, 0, type_, 128, config, 1, 0, 0, 0, 1, 0, config1
    )
    return attr


def _explain(e: OSError) -> str:
    name = errno.errorcode.get(e.errno or 0, str(e.errno))
    return f"{name}: {e.strerror}"


@functools.lru_cache(maxsize=1)
def tracefs() -> Path | None:
    for p in TRACEFS_CANDIDATES:
        if (p / "events").is_dir():
            return p
    return None


def mount_pseudo_filesystems() -> None:
    """Mount securityfs and tracefs when missing (root only; errors ignored)."""
    if os.geteuid() != 0:
        return
    if not (SECURITYFS / "lsm").exists() and SECURITYFS.is_dir():
        _libc.mount(b"securityfs", str(SECURITYFS).encode(), b"securityfs", 0, None)
    if tracefs() is None and TRACEFS_CANDIDATES[0].is_dir():
        _libc.mount(
            b"tracefs", str(TRACEFS_CANDIDATES[0]).encode(), b"tracefs", 0, None
        )
        tracefs.cache_clear()


def active_lsms() -> list[str]:
    try:
        return [x for x in (SECURITYFS / "lsm").read_text().strip().split(",") if x]
    except OSError:
        return []


def tracepoint_id(category: str, name: str) -> int | None:
    base = tracefs()
    if base is None:
        return None
    try:
        return int((base / "events" / category / name / "id").read_text())
    except (OSError, ValueError):
        return None


def open_fds() -> list[int]:
    try:
        return [int(n) for n in os.listdir("/proc/self/fd")]
    except OSError:
        return []


def hand_to_orphan(fds: list[int], until: int | None = None) -> bool:
    """Fork a holder of `fds` that closes them when it exits: at once, or at
    EOF on the pipe read end `until`. The kernel's teardown of a BPF program
    on a tracepoint waits for RCU grace periods (~70 ms per tracepoint here);
    with the last reference in the holder, our own close() is immediate and
    that wait is the holder's. False when fork fails (close in place).

    The holder is a grandchild in a session of its own (reparented to init,
    out of the terminal's process group); it keeps nothing else open, so a
    caller reading our stdout/stderr sees EOF when we exit."""
    try:
        pid = os.fork()
    except OSError:
        return False
    if pid == 0:  # pragma: no cover - the child only closes and waits
        try:
            if os.fork() != 0:
                os._exit(0)
            os.setsid()
            keep = {*fds} if until is None else {*fds, until}
            null = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(null, fd)
            for fd in open_fds():
                if fd not in keep and fd > 2:
                    with contextlib.suppress(OSError):
                        os.close(fd)
            if until is not None:
                with contextlib.suppress(OSError):
                    os.read(until, 1)  # EOF: the tracer dropped its references
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    return True


def probe_tracepoint() -> ProbeResult:
    tp = tracepoint_id("syscalls", "sys_exit_openat")
    if tp is None:
        return ProbeResult(
            False, "no syscalls:sys_exit_openat in tracefs (CONFIG_FTRACE_SYSCALLS?)"
        )
    try:
        prog = _prog_load(BPF_PROG_TYPE_TRACEPOINT)
    except OSError as e:
        return ProbeResult(False, f"tracepoint program refused ({_explain(e)})")
    try:
        pfd = _perf_event_open(_perf_attr(PERF_TYPE_TRACEPOINT, tp))
        try:
            _ioctl_set_bpf(pfd, prog)
            hand_to_orphan([pfd, prog])  # its teardown: ~70 ms of every start
        finally:
            os.close(pfd)
    except OSError as e:
        return ProbeResult(False, f"tracepoint attach refused ({_explain(e)})")
    finally:
        os.close(prog)
    return ProbeResult(True, "syscalls:sys_exit_openat")


# the functions the probes load programs on (cached per kernel, see btf.cached_facts)
_PROBED_FUNCS = ("security_file_open", "bpf_lsm_file_open")


def _btf_func_id(name: str) -> int | None:
    from lsmtrace.btf import cached_facts, load

    def ids() -> dict[str, int]:
        funcs = load().func_ids()
        return {f: funcs[f] for f in (*_PROBED_FUNCS, name) if f in funcs}

    try:
        if name in _PROBED_FUNCS:
            found: dict[str, int] = cached_facts("probed-funcs", ids)
            return found.get(name)
        return ids().get(name)
    except Exception:
        return None


def probe_fexit(func: str = "security_file_open") -> ProbeResult:
    btf_id = _btf_func_id(func)
    if btf_id is None:
        return ProbeResult(False, f"{func} not found in /sys/kernel/btf/vmlinux")
    try:
        prog = _prog_load(BPF_PROG_TYPE_TRACING, BPF_TRACE_FEXIT, btf_id)
    except OSError as e:
        return ProbeResult(False, f"fexit program refused ({_explain(e)})")
    try:
        attr = bytearray(16)
        struct.pack_into("<QI", attr, 0, 0, prog)
        link = sys_bpf(BPF_RAW_TRACEPOINT_OPEN, attr)
        hand_to_orphan([link, prog])
        os.close(link)
    except OSError as e:
        return ProbeResult(False, f"fexit attach refused ({_explain(e)})")
    finally:
        os.close(prog)
    return ProbeResult(True, f"fexit on {func}")


def probe_bpf_lsm(hook: str = "bpf_lsm_file_open") -> ProbeResult:
    btf_id = _btf_func_id(hook)
    if btf_id is None:
        return ProbeResult(False, f"{hook} not in BTF (CONFIG_BPF_LSM not set)")
    if "bpf" not in active_lsms():
        return ProbeResult(False, "'bpf' missing from /sys/kernel/security/lsm")
    try:
        os.close(_prog_load(BPF_PROG_TYPE_LSM, BPF_LSM_MAC, btf_id))
    except OSError as e:
        return ProbeResult(False, f"BPF-LSM program refused ({_explain(e)})")
    return ProbeResult(True, "lsm/file_open loads")


def probe_kprobe(func: str = "security_file_open") -> ProbeResult:
    type_file = Path("/sys/bus/event_source/devices/kprobe/type")
    if not type_file.exists():
        return ProbeResult(False, "no kprobe PMU (kernel built without CONFIG_KPROBES)")
    try:
        pmu = int(type_file.read_text())
        prog = _prog_load(BPF_PROG_TYPE_KPROBE, kern_version=_version_code())
    except (OSError, ValueError) as e:
        return ProbeResult(False, f"kprobe program refused ({e})")
    name = ct.create_string_buffer(func.encode())
    try:
        pfd = _perf_event_open(_perf_attr(pmu, 0, ct.addressof(name)))
        try:
            _ioctl_set_bpf(pfd, prog)
            hand_to_orphan([pfd, prog])
        finally:
            os.close(pfd)
    except OSError as e:
        return ProbeResult(False, f"kprobe on {func} refused ({_explain(e)})")
    finally:
        os.close(prog)
    return ProbeResult(True, f"kprobe on {func}")


def probe_ringbuf() -> ProbeResult:
    attr = bytearray(72)
    struct.pack_into("<IIII", attr, 0, BPF_MAP_TYPE_RINGBUF, 0, 0, 4096 * 4)
    try:
        os.close(sys_bpf(BPF_MAP_CREATE, attr))
    except OSError as e:
        return ProbeResult(
            False, f"BPF ring buffer unavailable ({_explain(e)}); perf buffer used"
        )
    return ProbeResult(True, "BPF ring buffer")


def _version_code() -> int:
    parts = [
        int(x) for x in platform.release().split("-")[0].split(".")[:3] if x.isdigit()
    ]
    parts += [0] * (3 - len(parts))
    return (parts[0] << 16) + (parts[1] << 8) + min(parts[2], 255)


RUNG_ORDER = ("fexit", "kprobe", "tracepoint")
_RUNG_PROBES = {
    "fexit": probe_fexit,
    "kprobe": probe_kprobe,
    "tracepoint": probe_tracepoint,
}


def probe_rung(rung: str) -> ProbeResult:
    return _RUNG_PROBES[rung]()


def probe_all() -> Features:
    from lsmtrace.kheaders import BTF_PATH, real_header_tree

    mount_pseudo_filesystems()
    root = os.geteuid() == 0
    real = real_header_tree()
    f = Features(
        root=root,
        btf=BTF_PATH.exists(),
        headers=str(real) if real else None,
        lsms=active_lsms(),
    )
    if root:
        for rung in RUNG_ORDER:
            f.rungs[rung] = probe_rung(rung)
        f.bpf_lsm = probe_bpf_lsm()
        f.ringbuf = probe_ringbuf()
    else:
        for rung in RUNG_ORDER:
            f.rungs[rung] = ProbeResult(False, "not probed: needs root")
    return f
