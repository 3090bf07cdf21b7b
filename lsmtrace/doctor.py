"""`lsmtrace doctor`: what this machine supports for lsmtrace, with a hint per gap.

Every file is read below an injectable filesystem root (``diagnose(root=...)``)
and the rung probes come in as a :class:`lsmtrace.probe.Features`, so the whole
report can be produced from a fake tree without root.  Only three things look at
the live system regardless of ``root``: the Landlock ABI syscall and the audit
netlink queries (AUDIT_GET, AUDIT_LIST_RULES; read-only), both done only when
``root`` is ``/`` (the audit state comes in as an :class:`AuditInfo` otherwise),
and the Python import path used to find ``bcc`` (``importlib.util.find_spec``;
bcc itself is never imported here).

Statuses
    ok       present and usable
    warn     usable, but something is degraded or suspicious
    missing  absent or refused here; the check carries a hint saying what to do
    info     neither good nor bad for lsmtrace (LSM modes, sysctls, not probed)

JSON (``to_json``), keys always present::

    {"schema": 1, "root": "/", "release": "6.18.0", "arch": "x86_64",
     "auto_backend": "fexit" | "kprobe" | "tracepoint" | null,
     "summary": {"ok": N, "warn": N, "missing": N, "info": N},
     "checks": [{"section": str, "name": str, "status": str,
                 "detail": str, "hint": str | null}, ...]}
"""

from __future__ import annotations

import ctypes as ct
import errno
import importlib.util
import json
import logging
import os
import platform
import re
import shutil
import textwrap
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from lsmtrace import auditnl, kheaders, probe
from lsmtrace.syscalls import machine

log = logging.getLogger(__name__)

Status = Literal["ok", "warn", "missing", "info"]
STATUSES: tuple[Status, ...] = ("ok", "warn", "missing", "info")
SCHEMA = 1
KNOWN_ARCHES = ("x86_64", "aarch64")  # those whose bpf(2) numbers probe.py knows

SECURITYFS = "sys/kernel/security"
DEBIAN_DIST_PACKAGES = Path("/usr/lib/python3/dist-packages")
MOUNT_SECURITYFS = "mount -t securityfs securityfs /sys/kernel/security"
MOUNT_TRACEFS = "mount -t tracefs tracefs /sys/kernel/tracing"
TRAMPOLINE_HINT = (
    "the kernel refuses trampoline programs (lockdown, a BPF-LSM policy, or a "
    "hardened/virtualised kernel); lsmtrace falls back to kprobes or tracepoints: "
    "run `lsmtrace hooks`"
)
TRAMPOLINE_HINT_LSM = (
    "the kernel refuses trampoline programs (lockdown, a BPF-LSM policy, or a "
    "hardened/virtualised kernel); tracing does not need BPF-LSM"
)
ROOT_HINT = "run as root: sudo lsmtrace doctor"

YAMA_SCOPES = {
    0: "classic ptrace permissions",
    1: "restricted: only descendants may be traced",
    2: "admin-only: attaching needs CAP_SYS_PTRACE",
    3: "no attach: ptrace attach disabled until reboot",
}
UNPRIV_BPF = {
    0: "unprivileged bpf(2) allowed",
    1: "unprivileged bpf(2) disabled until reboot",
    2: "unprivileged bpf(2) disabled, root may re-enable it",
}
APPARMOR_MODES = ("enforce", "complain", "kill", "unconfined")

# landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION) -> ABI
_NR_LANDLOCK_CREATE_RULESET = {"x86_64": 444, "aarch64": 444}
LANDLOCK_CREATE_RULESET_VERSION = 1

_SECTIONS = (
    ("system", "system"),
    ("lsm", "security modules"),
    ("audit", "audit (which rule denied)"),
    ("build", "compiling BPF"),
    ("tracing", "tracing"),
    ("rungs", "rungs (what loads here)"),
    ("sysctl", "sysctls"),
)

WIDTH = 80
_STATUS_W = 7
_NAME_W = 16
_INDENT = 2 + _STATUS_W + 2 + _NAME_W + 2
_HINT_INDENT = 2 + _STATUS_W + 2


@dataclass(frozen=True)
class Check:
    section: str
    name: str
    status: Status
    detail: str
    hint: str | None = None


@dataclass
class Report:
    root: str
    release: str
    arch: str
    checks: list[Check] = field(default_factory=list)
    auto_backend: str | None = None

    def add(
        self,
        section: str,
        name: str,
        status: Status,
        detail: str,
        hint: str | None = None,
    ) -> Check:
        c = Check(section, name, status, detail, hint)
        self.checks.append(c)
        return c

    def get(self, name: str) -> Check:
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(name)

    def counts(self) -> dict[Status, int]:
        n: dict[Status, int] = dict.fromkeys(STATUSES, 0)
        for c in self.checks:
            n[c.status] += 1
        return n


# -- reading the tree ----------------------------------------------------------


def _read(path: Path) -> str | None:
    """File text stripped; None when absent. PermissionError propagates."""
    try:
        return path.read_text(errors="replace").strip()
    except (FileNotFoundError, NotADirectoryError):
        return None


def _read_int(path: Path) -> int | None:
    try:
        text = _read(path)
    except OSError:
        return None
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def _tomoyo_state(d: Path) -> tuple[str, str | None]:
    """(detail, hint) from TOMOYO's securityfs: the directory exists whenever
    TOMOYO is active, but it decides nothing until a policy is loaded."""
    try:
        profile = _read(d / "profile")
    except OSError as e:
        return f"active (cannot read {d}/profile: {e.strerror})", None
    if not profile or "PROFILE_VERSION=" not in profile:
        return (
            "active, no policy loaded: denies nothing",
            "TOMOYO loads its policy when /sbin/init starts, through /sbin/tomoyo-init "
            "(package tomoyo-tools; /usr/lib/tomoyo/init_policy writes a first one)",
        )
    enforcing = sorted(
        {
            ln.split("-", 1)[0]
            for ln in profile.splitlines()
            if re.match(r"\d+-CONFIG", ln) and "mode=enforcing" in ln
        },
        key=int,
    )
    which = (
        f"profiles enforcing: {', '.join(enforcing)}"
        if enforcing
        else "no enforcing profile"
    )
    return f"active, policy loaded ({which}; domains in /{SECURITYFS}/tomoyo)", None


def _exists(path: Path) -> bool | None:
    """True/False, or None when a parent directory is unreadable."""
    try:
        path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return False
    except PermissionError:
        return None
    return True


def _release(root: Path, live: bool) -> str:
    text = _read_safe(root / "proc/sys/kernel/osrelease")
    if text:
        return text
    return platform.release() if live else "unknown"


def _arch(root: Path, live: bool) -> str:
    text = _read_safe(root / "proc/sys/kernel/arch")
    if text:
        return {"amd64": "x86_64", "arm64": "aarch64"}.get(text, text)
    return machine() if live else "unknown"


def _read_safe(path: Path) -> str | None:
    try:
        return _read(path)
    except OSError:
        return None


def _version(release: str) -> tuple[int, int]:
    m = re.match(r"(\d+)\.(\d+)", release)
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


def _errno_name(detail: str) -> str | None:
    m = re.search(r"\b(E[A-Z0-9]{2,})\b", detail)
    return m.group(1) if m else None


# -- the checks ------------------------------------------------------------------


def _check_system(r: Report, features: probe.Features) -> None:
    if features.root:
        r.add("system", "root", "ok", "running as root")
    else:
        r.add(
            "system",
            "root",
            "warn",
            f"running as uid {os.geteuid()}: rungs are not probed, some files "
            "are unreadable",
            ROOT_HINT,
        )
    major, minor = _version(r.release)
    if r.release == "unknown":
        r.add(
            "system",
            "kernel",
            "warn",
            "release unknown (no /proc/sys/kernel/osrelease)",
        )
    elif (major, minor) < (5, 8):
        r.add(
            "system",
            "kernel",
            "warn",
            f"{r.release}: older than 5.8 (no BPF ring buffer; fexit needs 5.5)",
            "lsmtrace is tested on 6.1 and later",
        )
    else:
        r.add("system", "kernel", "ok", r.release)
    if r.arch in KNOWN_ARCHES:
        r.add("system", "arch", "ok", r.arch)
    else:
        r.add(
            "system",
            "arch",
            "warn",
            f"{r.arch}: lsmtrace knows the bpf(2) numbers of x86_64 and aarch64 only",
            "use an x86_64 or aarch64 machine",
        )


def _grub_hint(lsms: list[str], cmdline: str | None) -> str:
    want = ",".join([x for x in lsms if x != "bpf"] + ["bpf"])
    old = re.search(r"(?:^|\s)(lsm=\S*)", cmdline or "")
    step = (
        f"replace {old.group(1)} with lsm={want} in GRUB_CMDLINE_LINUX"
        if old
        else f"add lsm={want} to GRUB_CMDLINE_LINUX"
    )
    return f"edit /etc/default/grub, {step}, run update-grub, then reboot"


def _check_lsms(
    r: Report, root: Path, features: probe.Features, live: bool
) -> list[str] | None:
    sec = root / SECURITYFS
    lsms: list[str] | None = None
    try:
        text = _read(sec / "lsm")
    except OSError as e:
        r.add(
            "lsm",
            "lsm list",
            "missing",
            f"cannot read /{SECURITYFS}/lsm: {e.strerror}",
            ROOT_HINT,
        )
    else:
        if text is None:
            r.add(
                "lsm",
                "lsm list",
                "missing",
                "securityfs is not mounted: active LSMs unknown",
                MOUNT_SECURITYFS,
            )
        else:
            lsms = [x for x in text.split(",") if x]
            r.add("lsm", "lsm list", "ok", ",".join(lsms) or "(empty)")
    unknown = "unknown (securityfs not mounted)"

    # SELinux
    try:
        enforce = _read(root / "sys/fs/selinux/enforce")
    except OSError as e:
        r.add("lsm", "selinux", "info", f"active, mode unreadable ({e.strerror})")
    else:
        if enforce is None:
            r.add("lsm", "selinux", "info", "not active")
        else:
            mode = {"1": "enforcing", "0": "permissive"}.get(
                enforce, f"enforce={enforce}"
            )
            r.add("lsm", "selinux", "info", f"active, {mode}")

    # AppArmor
    aa = sec / "apparmor"
    if lsms is None:
        r.add("lsm", "apparmor", "info", unknown)
    elif not _exists(aa) and "apparmor" not in lsms:
        r.add("lsm", "apparmor", "info", "not active")
    else:
        try:
            profiles = _read(aa / "profiles")
        except OSError as e:
            r.add(
                "lsm", "apparmor", "info", f"active, profiles unreadable ({e.strerror})"
            )
        else:
            r.add("lsm", "apparmor", "info", _apparmor_detail(profiles))

    # Landlock
    if lsms is not None and "landlock" not in lsms:
        r.add("lsm", "landlock", "info", "not active")
    elif live:
        abi, why = landlock_abi()
        r.add(
            "lsm", "landlock", "info", f"active, ABI {abi}" if abi is not None else why
        )
    elif lsms is None:
        r.add("lsm", "landlock", "info", unknown)
    else:
        r.add("lsm", "landlock", "info", "active (ABI not probed: not the live root)")

    # Lockdown
    try:
        lockdown = _read(sec / "lockdown")
    except OSError as e:
        lockdown = None
        r.add("lsm", "lockdown", "info", f"unreadable ({e.strerror})")
    else:
        if lsms is None and lockdown is None:
            r.add("lsm", "lockdown", "info", unknown)
        elif lockdown is None:
            r.add("lsm", "lockdown", "info", "not active")
        else:
            m = re.search(r"\[(\w+)\]", lockdown)
            level = m.group(1) if m else lockdown
            if level == "confidentiality":
                r.add(
                    "lsm",
                    "lockdown",
                    "warn",
                    "confidentiality: kprobes, tracefs, perf and reading kernel "
                    "memory from BPF are refused",
                    "lockdown cannot be lowered at runtime: boot with lockdown=integrity "
                    "(or without Secure Boot enforcing it)",
                )
            elif level == "integrity":
                r.add(
                    "lsm",
                    "lockdown",
                    "info",
                    "integrity (BPF tracing allowed; bpf_probe_write_user refused)",
                )
            else:
                r.add("lsm", "lockdown", "info", level)

    # Yama
    scope = _read_int(root / "proc/sys/kernel/yama/ptrace_scope")
    if scope is None:
        r.add("lsm", "yama", "info", "not active")
    else:
        r.add(
            "lsm",
            "yama",
            "info",
            f"ptrace_scope {scope}: {YAMA_SCOPES.get(scope, 'unknown value')}",
        )

    # TOMOYO
    tomoyo = _exists(sec / "tomoyo")
    if tomoyo:
        r.add("lsm", "tomoyo", "info", *_tomoyo_state(sec / "tomoyo"))
    elif lsms is not None and "tomoyo" in lsms:
        r.add("lsm", "tomoyo", "info", "active, no policy loaded")
    elif lsms is None:
        r.add("lsm", "tomoyo", "info", unknown)
    else:
        r.add("lsm", "tomoyo", "info", "not active")

    # BPF-LSM in the list
    if lsms is None:
        r.add(
            "lsm", "bpf", "warn", "unknown (securityfs not mounted)", MOUNT_SECURITYFS
        )
    elif "bpf" in lsms:
        r.add("lsm", "bpf", "ok", "in the LSM list")
    elif "CONFIG_BPF_LSM" in features.bpf_lsm.detail:
        r.add(
            "lsm",
            "bpf",
            "missing",
            "not in the LSM list, and the kernel is built without CONFIG_BPF_LSM",
            "a kernel built with CONFIG_BPF_LSM=y is needed; adding lsm=...,bpf "
            "to the command line alone will not help",
        )
    else:
        r.add(
            "lsm",
            "bpf",
            "missing",
            "not in the LSM list: BPF-LSM programs cannot run",
            _grub_hint(lsms, _read_safe(root / "proc/cmdline")),
        )
    return lsms


def _apparmor_detail(profiles: str | None) -> str:
    if not profiles:
        return "active, no profiles loaded"
    modes: Counter[str] = Counter()
    for line in profiles.splitlines():
        if not line.strip():
            continue
        _, _, tail = line.rpartition(" (")
        modes[tail.rstrip(")").strip() if tail else "unknown"] += 1
    order = [m for m in APPARMOR_MODES if m in modes] + sorted(
        set(modes) - set(APPARMOR_MODES)
    )
    total = sum(modes.values())
    parts = ", ".join(f"{modes[m]} {m}" for m in order)
    return f"active, {total} profile{'s' if total != 1 else ''}: {parts}"


def landlock_abi() -> tuple[int | None, str]:
    """The running kernel's Landlock ABI version, or (None, why)."""
    nr = _NR_LANDLOCK_CREATE_RULESET.get(machine())
    if nr is None:
        return None, f"ABI not probed on {machine()}"
    libc = ct.CDLL(None, use_errno=True)
    libc.syscall.restype = ct.c_long
    ret = libc.syscall(
        ct.c_long(nr),
        None,
        ct.c_size_t(0),
        ct.c_uint32(LANDLOCK_CREATE_RULESET_VERSION),
    )
    if ret >= 0:
        return int(ret), ""
    e = ct.get_errno()
    if e == errno.EOPNOTSUPP:
        return None, "built in but disabled at boot (add landlock to lsm=)"
    if e == errno.ENOSYS:
        return None, "not built into this kernel (CONFIG_SECURITY_LANDLOCK)"
    return None, f"ABI probe failed ({errno.errorcode.get(e, str(e))})"


# -- audit -----------------------------------------------------------------------

CAP_AUDIT_READ = 37
AUDIT_ENABLE_HINT = (
    "`auditctl -e 1` (package auditd) or audit=1 on the kernel command line "
    "turns it on; `lsmtrace trace --enable-audit` does it for one session only. "
    "Cost: "
)
JOURNALD_COMMS = ("systemd-journal", "systemd-journald")


@dataclass(frozen=True)
class AuditInfo:
    """The audit subsystem's state, as AUDIT_GET and AUDIT_LIST_RULES tell."""

    status: auditnl.AuditStatus | None  # None: could not ask (see why)
    why: str = ""
    rules: list[auditnl.Rule] | None = None  # None: could not list them


def audit_info_live() -> AuditInfo:
    try:
        status = auditnl.get_status()
    except OSError as e:
        return AuditInfo(None, str(e))
    try:
        rules: list[auditnl.Rule] | None = auditnl.list_rules()
    except OSError as e:
        log.debug("AUDIT_LIST_RULES: %s", e)
        rules = None
    return AuditInfo(status, "", rules)


def _cap_eff(root: Path) -> int | None:
    try:
        text = _read(root / "proc/self/status")
    except OSError:
        return None
    m = re.search(r"^CapEff:\s*([0-9a-f]+)$", text or "", re.M)
    return int(m.group(1), 16) if m else None


def _proc_comms(root: Path) -> dict[int, str]:
    """{pid: comm} of the processes below root/proc (unreadable ones skipped)."""
    out: dict[int, str] = {}
    try:
        entries = list((root / "proc").iterdir())
    except OSError:
        return out
    for d in entries:
        if not d.name.isdigit():
            continue
        try:
            comm = (d / "comm").read_text().strip()
        except OSError:
            continue
        out[int(d.name)] = comm
    return out


def _check_audit(r: Report, root: Path, info: AuditInfo | None) -> None:
    built = _exists(root / "proc/self/loginuid")
    st = info.status if info is not None else None
    no_netlink = info is not None and st is None and "EPROTONOSUPPORT" in info.why
    if built is False or no_netlink:
        r.add(
            "audit",
            "audit",
            "missing",
            "the kernel is built without audit (CONFIG_AUDIT): denials cannot be "
            "joined with the LSM's own record of which rule denied",
            "a kernel built with CONFIG_AUDIT=y (most distribution kernels are)",
        )
        return
    if info is None:
        r.add("audit", "audit", "info", "state not probed: not the live root")
    elif st is None:
        r.add("audit", "audit", "info", f"state unknown: {info.why}", ROOT_HINT)
    elif st.enabled == 0:
        r.add(
            "audit",
            "audit",
            "info",
            "built in, disabled: denials are not joined with the LSM's record "
            "of which rule denied (profile, contexts, Landlock right)",
            AUDIT_ENABLE_HINT + auditnl.COST_NOTE,
        )
    else:
        locked = " and locked until reboot" if st.enabled == 2 else ""
        lost = f"; the kernel dropped {st.lost} records since boot" if st.lost else ""
        r.add(
            "audit",
            "audit",
            "ok",
            f"enabled{locked}: lsmtrace joins each denial with its LSM record "
            f"(backlog limit {st.backlog_limit}{lost})",
        )

    readers = []
    if st is not None and st.pid:
        comm = _proc_comms(root).get(st.pid) or "audit daemon"
        readers.append(f"{comm} (pid {st.pid}) is the audit daemon")
    comms = _proc_comms(root)
    journald = sorted(p for p, c in comms.items() if c in JOURNALD_COMMS)
    if journald:
        readers.append(
            f"systemd-journald (pid {journald[0]}) reads the multicast group"
        )
    if st is not None and not st.pid:
        readers.append(
            "no audit daemon: the kernel also prints records to its log "
            "(rate-limited)" + ("" if st.enabled else " once audit is on")
        )
    if readers:
        r.add("audit", "audit readers", "info", "; ".join(readers))

    cap = _cap_eff(root)
    if cap is None:
        r.add("audit", "audit read cap", "info", "unknown (no /proc/self/status)")
    elif cap >> CAP_AUDIT_READ & 1:
        r.add(
            "audit",
            "audit read cap",
            "ok",
            "CAP_AUDIT_READ: lsmtrace can read the audit multicast group "
            "(a passive reader: auditd and journald are not disturbed)",
        )
    else:
        r.add(
            "audit",
            "audit read cap",
            "missing",
            "no CAP_AUDIT_READ: tracing works, without the audit join",
            ROOT_HINT,
        )

    if info is None or st is None:
        return
    if info.rules is None:
        r.add("audit", "audit rules", "info", "not listed (AUDIT_LIST_RULES refused)")
    elif any(rule.never_task for rule in info.rules):
        r.add(
            "audit",
            "audit rules",
            "info",
            "`-a never,task` is loaded: no process gets a syscall audit context, "
            "so LSM records come without SYSCALL records (Landlock's without a "
            "pid); lsmtrace joins them by process, path and time",
        )
    else:
        n = len(info.rules)
        r.add(
            "audit",
            "audit rules",
            "info",
            f"{n} rule{'s' if n != 1 else ''}, no `-a never,task`: "
            + (
                "every process forked since audit was first enabled pays a "
                "syscall audit context (getppid ~180 -> ~310 ns measured); "
                "`auditctl -a never,task` removes that cost for new processes "
                "(and with it the SYSCALL records)"
                if st.enabled
                else "enabling audit will make every process forked afterwards "
                "pay a syscall audit context until reboot"
            ),
        )


def _header_tree(root: Path, release: str) -> Path | None:
    for sub in ("build", "source"):
        cand = root / "lib/modules" / release / sub
        if _exists(cand / "include/linux/kconfig.h"):
            return cand
    return None


def _synth_cache(btf: Path, release: str) -> str:
    """Where kheaders caches the tree, and whether this kernel's is built."""
    base = kheaders.default_cache_root() / "kheaders"
    try:
        key = f"{release}-{kheaders.btf_digest(btf)[:16]}-v{kheaders.TREE_VERSION}"
    except OSError:
        return str(base)
    if _exists(base / key / "include/linux/kconfig.h"):
        return f"{base}, already built for this kernel"
    return str(base)


def _which(root: Path, name: str, live: bool) -> str | None:
    dirs = [
        "/usr/local/sbin",
        "/usr/local/bin",
        "/usr/sbin",
        "/usr/bin",
        "/sbin",
        "/bin",
    ]
    if live:
        path = os.pathsep.join([*os.environ.get("PATH", "").split(os.pathsep), *dirs])
        return shutil.which(name, path=path)
    found = shutil.which(
        name, path=os.pathsep.join(str(root / d.lstrip("/")) for d in dirs)
    )
    return "/" + str(Path(found).relative_to(root)) if found else None


def find_bcc() -> tuple[str | None, bool]:
    """(origin of the `bcc` module Python would import, whether it is bcc's).

    Uses find_spec only: importing bcc loads libbcc and LLVM.
    """
    try:
        spec = importlib.util.find_spec("bcc")
    except (ImportError, ValueError) as e:
        log.debug("find_spec('bcc') failed: %s", e)
        return None, False
    if spec is None or spec.origin is None:
        return None, False
    origin = spec.origin
    return origin, (Path(origin).parent / "libbcc.py").exists()


def _check_build(
    r: Report, root: Path, features: probe.Features, live: bool, release: str
) -> None:
    btf_path = root / "sys/kernel/btf/vmlinux"
    btf = bool(_exists(btf_path))
    if btf:
        r.add("build", "btf", "ok", "/sys/kernel/btf/vmlinux")
    else:
        r.add(
            "build",
            "btf",
            "missing",
            "no /sys/kernel/btf/vmlinux: no fexit, no hook catalogue, no headers "
            "from BTF",
            "boot a kernel built with CONFIG_DEBUG_INFO_BTF=y "
            "(most distribution kernels are)",
        )
    tree = _header_tree(root, release)
    build = f"/lib/modules/{release}/build"
    bpftool = _which(root, "bpftool", live)
    if tree is not None and btf and bpftool:
        r.add(
            "build",
            "headers",
            "ok",
            f"synthesized from BTF, preferred (cached in {_synth_cache(btf_path, release)}); "
            f"/{tree.relative_to(root)} is there too: LSMTRACE_HEADERS=kernel uses it",
        )
    elif tree is not None:
        r.add("build", "headers", "ok", "/" + str(tree.relative_to(root)))
    elif btf:
        r.add(
            "build",
            "headers",
            "info",
            f"no {build}: headers will be synthesized from BTF "
            f"(cached in {_synth_cache(btf_path, release)})",
        )
    else:
        r.add(
            "build",
            "headers",
            "missing",
            f"no {build} and no BTF to synthesize them from",
            "apt-get install linux-headers-$(uname -r)",
        )

    if bpftool:
        r.add("build", "bpftool", "ok", f"{bpftool} (synthesizes headers from BTF)")
    elif tree is None and btf:
        r.add(
            "build",
            "bpftool",
            "missing",
            "not found: needed to synthesize headers from BTF",
            "apt-get install bpftool (or linux-headers-$(uname -r))",
        )
    else:
        r.add("build", "bpftool", "info", "not found (not needed here)")

    origin, genuine = find_bcc()
    if origin is None:
        r.add(
            "build",
            "bcc",
            "missing",
            "the bcc Python module is not importable",
            "apt-get install python3-bpfcc (in a venv: create it with "
            "--system-site-packages)",
        )
    elif not Path(origin).is_relative_to(DEBIAN_DIST_PACKAGES):
        what = "" if genuine else " (looks like the unrelated PyPI project 'bcc')"
        r.add(
            "build",
            "bcc",
            "warn",
            f"{origin} shadows Debian's python3-bpfcc{what}",
            "pip uninstall bcc; apt-get install python3-bpfcc; use a venv made "
            "with --system-site-packages",
        )
    else:
        r.add("build", "bcc", "ok", str(Path(origin).parent))


def _tracefs(root: Path, live: bool) -> tuple[Path | None, str | None]:
    """(tracefs dir, or None; why it is unknown)."""
    if live:
        try:
            return probe.tracefs(), None
        except PermissionError:
            return None, "unreadable without root"
    for cand in probe.TRACEFS_CANDIDATES:
        p = root / cand.relative_to("/")
        ok = _exists(p / "events")
        if ok is None:
            return None, "unreadable without root"
        if ok:
            return p, None
    return None, None


def _check_tracing(r: Report, root: Path, live: bool) -> None:
    tfs, why = _tracefs(root, live)
    if tfs is None:
        if why:
            r.add("tracing", "tracefs", "info", why)
            r.add("tracing", "syscall events", "info", why)
            return
        r.add(
            "tracing",
            "tracefs",
            "missing",
            "not mounted: no tracepoints",
            MOUNT_TRACEFS,
        )
        r.add(
            "tracing",
            "syscall events",
            "missing",
            "unknown (tracefs not mounted)",
            MOUNT_TRACEFS,
        )
        return
    shown = "/" + str(tfs.relative_to(root)) if not live else str(tfs)
    r.add("tracing", "tracefs", "ok", f"mounted at {shown}")
    sysc = tfs / "events/syscalls"
    try:
        names = [p.name for p in sysc.iterdir()] if sysc.is_dir() else []
    except OSError as e:
        r.add(
            "tracing", "syscall events", "info", f"unreadable ({e.strerror})", ROOT_HINT
        )
        return
    enter = sum(n.startswith("sys_enter_") for n in names)
    if "sys_exit_openat" in names:
        r.add(
            "tracing",
            "syscall events",
            "ok",
            f"{enter} syscalls (sys_enter_*/sys_exit_*)",
        )
    else:
        r.add(
            "tracing",
            "syscall events",
            "missing",
            "no syscalls:sys_exit_openat: the tracepoint rung cannot run",
            "the kernel needs CONFIG_FTRACE_SYSCALLS=y",
        )


_NO = probe.ProbeResult(False, "not probed")


def _not_probed(res: probe.ProbeResult) -> bool:
    return not res.ok and res.detail.startswith("not probed")


def _rung_hint(rung: str, detail: str, lockdown_conf: bool) -> str:
    err = _errno_name(detail)
    if rung == "fexit":
        if "not found in" in detail:
            return (
                "fexit needs the hook in BTF (CONFIG_DEBUG_INFO_BTF=y); lsmtrace "
                "falls back to kprobes or tracepoints"
            )
        if err == "EPERM":
            return TRAMPOLINE_HINT
        return (
            "this kernel/arch lacks BPF trampolines (x86_64 or arm64, 5.5+); "
            "lsmtrace falls back to kprobes or tracepoints: run `lsmtrace hooks`"
        )
    if rung == "kprobe":
        if "no kprobe PMU" in detail:
            return (
                "rebuild the kernel with CONFIG_KPROBES=y, or let --backend auto "
                "use tracepoints"
            )
        if lockdown_conf:
            return (
                "lockdown=confidentiality refuses kprobes: boot with lockdown=integrity"
            )
        if err == "ENOENT":
            return "security_file_open is not kprobe-able here (inlined or blacklisted)"
        return "kprobes need CONFIG_KPROBES=y and CAP_PERFMON+CAP_BPF"
    if rung == "tracepoint":
        if "tracefs" in detail:
            return f"{MOUNT_TRACEFS}; the kernel needs CONFIG_FTRACE_SYSCALLS=y"
        if lockdown_conf:
            return "lockdown=confidentiality refuses tracefs and perf: boot with a lower level"
        return "tracepoint programs need CAP_BPF+CAP_PERFMON (root)"
    if rung == "bpf-lsm":
        if "CONFIG_BPF_LSM" in detail:
            return "a kernel built with CONFIG_BPF_LSM=y is needed"
        if "missing from" in detail:
            return "add bpf to lsm= (see the bpf line above)"
        if err == "EPERM":
            return TRAMPOLINE_HINT_LSM
        return "BPF-LSM needs CONFIG_BPF_LSM=y, bpf in lsm= and BPF trampolines"
    return "see `lsmtrace doctor --json` for the probe detail"


def _check_rungs(r: Report, features: probe.Features, lockdown_conf: bool) -> None:
    probes = [(rung, features.rungs.get(rung, _NO)) for rung in probe.RUNG_ORDER]
    probes += [("bpf-lsm", features.bpf_lsm), ("ringbuf", features.ringbuf)]
    for rung, res in probes:
        name = "ring buffer" if rung == "ringbuf" else f"rung {rung}"
        if res.ok:
            r.add(
                "rungs",
                name,
                "ok",
                res.detail if rung == "ringbuf" else f"loads ({res.detail})",
            )
        elif _not_probed(res):
            bare = res.detail == "not probed" and not features.root
            detail = "not probed: needs root" if bare else res.detail
            r.add("rungs", name, "info", detail)
        elif rung == "ringbuf":
            r.add(
                "rungs",
                name,
                "warn",
                res.detail,
                "the BPF ring buffer needs 5.8+; the perf buffer works but loses more",
            )
        else:
            r.add(
                "rungs",
                name,
                "missing",
                res.detail,
                _rung_hint(rung, res.detail, lockdown_conf),
            )

    probed = [k for k, v in features.rungs.items() if not _not_probed(v)]
    r.auto_backend = next(
        (k for k in probe.RUNG_ORDER if features.rungs.get(k, _NO).ok), None
    )
    if r.auto_backend is not None:
        r.add(
            "rungs", "backend auto", "ok", f"--backend auto would use {r.auto_backend}"
        )
    elif not probed:
        r.add("rungs", "backend auto", "info", "unknown: rungs not probed")
    else:
        r.add(
            "rungs",
            "backend auto",
            "missing",
            "no rung loads: lsmtrace cannot trace here",
            "fix one rung above; the tracepoint rung needs only tracefs and "
            "CONFIG_FTRACE_SYSCALLS=y",
        )


def _check_sysctls(r: Report, root: Path) -> None:
    unpriv = _read_int(root / "proc/sys/kernel/unprivileged_bpf_disabled")
    if unpriv is None:
        r.add("sysctl", "unpriv bpf", "info", "kernel.unprivileged_bpf_disabled absent")
    else:
        r.add(
            "sysctl",
            "unpriv bpf",
            "info",
            f"kernel.unprivileged_bpf_disabled={unpriv}: "
            f"{UNPRIV_BPF.get(unpriv, 'unknown value')}; lsmtrace runs as root",
        )
    stats = _read_int(root / "proc/sys/kernel/bpf_stats_enabled")
    if stats is None:
        r.add("sysctl", "bpf stats", "info", "kernel.bpf_stats_enabled absent")
    elif stats:
        r.add(
            "sysctl",
            "bpf stats",
            "info",
            f"kernel.bpf_stats_enabled={stats}: program run time is counted",
        )
    else:
        r.add(
            "sysctl",
            "bpf stats",
            "info",
            "kernel.bpf_stats_enabled=0: to measure program cost, "
            "sysctl -w kernel.bpf_stats_enabled=1",
        )


def _features_from_tree(root: Path, lsms: list[str]) -> probe.Features:
    """Features for a tree that is not the live root: nothing can be probed."""
    why = probe.ProbeResult(False, "not probed: not the live root")
    return probe.Features(
        root=os.geteuid() == 0,
        btf=bool(_exists(root / "sys/kernel/btf/vmlinux")),
        headers=None,
        lsms=lsms,
        rungs={k: why for k in probe.RUNG_ORDER},
        bpf_lsm=why,
        ringbuf=why,
    )


def _probe_live() -> probe.Features:
    try:
        return probe.probe_all()
    except Exception as e:  # doctor reports, never crashes
        log.debug("probe_all failed", exc_info=True)
        failed = probe.ProbeResult(False, f"probe failed: {e}")
        return probe.Features(
            root=os.geteuid() == 0,
            btf=False,
            headers=None,
            lsms=[],
            rungs={k: failed for k in probe.RUNG_ORDER},
            bpf_lsm=failed,
            ringbuf=failed,
        )


def diagnose(
    root: Path = Path("/"),
    features: probe.Features | None = None,
    audit: AuditInfo | None = None,
) -> Report:
    """Check everything lsmtrace needs, reading files below ``root``.

    ``features`` are the rung probe results; None probes the live kernel when
    ``root`` is ``/`` (root needed for real answers) and marks every rung
    "not probed" for any other root. ``audit`` likewise: None asks the live
    kernel's audit netlink when ``root`` is ``/``.
    """
    root = Path(root)
    live = root.resolve() == Path("/")
    premounted = _exists(root / SECURITYFS / "lsm")
    if features is None:
        # probe_all() mounts securityfs/tracefs when missing (as root), so the
        # files read below reflect what lsmtrace itself will see.
        features = _probe_live() if live else _features_from_tree(root, [])
    release = _release(root, live)
    r = Report(root=str(root), release=release, arch=_arch(root, live))
    _check_system(r, features)
    _check_lsms(r, root, features, live)
    if live and premounted is False and _exists(root / SECURITYFS / "lsm"):
        r.add(
            "lsm",
            "securityfs",
            "warn",
            "was not mounted; lsmtrace mounted it for this boot",
            "mount it at boot: add `securityfs /sys/kernel/security securityfs "
            "defaults 0 0` to /etc/fstab",
        )
    if audit is None and live:
        audit = audit_info_live()
    _check_audit(r, root, audit)
    lockdown_conf = any(
        c.name == "lockdown" and c.detail.startswith("confidentiality")
        for c in r.checks
    )
    _check_build(r, root, features, live, release)
    _check_tracing(r, root, live)
    _check_rungs(r, features, lockdown_conf)
    _check_sysctls(r, root)
    return r


# -- output ----------------------------------------------------------------------


def _wrap(text: str, width: int) -> list[str]:
    return textwrap.wrap(text, width, break_on_hyphens=False) or [""]


def summary_line(report: Report) -> str:
    n = report.counts()
    warnings = "warning" if n["warn"] == 1 else "warnings"
    return f"{n['ok']} ok, {n['warn']} {warnings}, {n['missing']} missing"


def render(report: Report, width: int = WIDTH) -> str:
    """Human text: one section per area, aligned columns, wrapped to ``width``."""
    lines = textwrap.wrap(
        f"lsmtrace doctor: Linux {report.release} {report.arch}", width
    )
    body = max(20, width - _INDENT)
    pad = " " * _INDENT
    for key, title in _SECTIONS:
        checks = [c for c in report.checks if c.section == key]
        if not checks:
            continue
        lines += ["", title]
        for c in checks:
            detail = _wrap(c.detail, body)
            name = c.name if len(c.name) <= _NAME_W else c.name[: _NAME_W - 1] + "~"
            lines.append(
                f"  {c.status:<{_STATUS_W}}  {name:<{_NAME_W}}  {detail[0]}".rstrip()
            )
            lines += [pad + d for d in detail[1:]]
            if c.hint:
                # under the name column: room for a whole `lsm=...` token
                hint = _wrap(c.hint, max(20, width - _HINT_INDENT - 6))
                lines.append(f"{' ' * _HINT_INDENT}hint: {hint[0]}")
                lines += [" " * (_HINT_INDENT + 6) + h for h in hint[1:]]
    lines += ["", summary_line(report)]
    return "\n".join(lines)


def to_dict(report: Report) -> dict[str, object]:
    return {
        "schema": SCHEMA,
        "root": report.root,
        "release": report.release,
        "arch": report.arch,
        "auto_backend": report.auto_backend,
        "summary": dict(report.counts()),
        "checks": [
            {
                "section": c.section,
                "name": c.name,
                "status": c.status,
                "detail": c.detail,
                "hint": c.hint,
            }
            for c in report.checks
        ],
    }


def to_json(report: Report) -> str:
    return json.dumps(to_dict(report), indent=2)
