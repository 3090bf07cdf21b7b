"""lsmtrace.doctor over fake filesystem trees and injected probe results (no root)."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from lsmtrace import auditnl, doctor, probe
from lsmtrace.probe import Features, ProbeResult

RELEASE = "6.18.0-test"
ROOT_CAPS = "000001fffeffffff"  # as on the development host: CAP_AUDIT_READ (37) set
EPERM = "fexit program refused (EPERM: Operation not permitted)"


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def make_tree(
    root: Path,
    *,
    lsm: str | None = "lockdown,capability,landlock,bpf",
    btf: bool = True,
    headers: bool = False,
    tracefs: bool = True,
) -> Path:
    """A minimal machine: securityfs with `lsm`, BTF, tracefs with syscall events."""
    write(root / "proc/sys/kernel/osrelease", RELEASE + "\n")
    write(root / "proc/sys/kernel/arch", "x86_64\n")
    write(root / "proc/sys/kernel/unprivileged_bpf_disabled", "2\n")
    write(root / "proc/sys/kernel/bpf_stats_enabled", "0\n")
    write(root / "proc/cmdline", "root=/dev/vda quiet\n")
    write(root / "proc/self/loginuid", "4294967295")  # CONFIG_AUDIT
    write(root / "proc/self/status", f"Name:\tpython3\nCapEff:\t{ROOT_CAPS}\n")
    (root / "sys/kernel/security").mkdir(parents=True)
    if lsm is not None:
        write(root / "sys/kernel/security/lsm", lsm)
    if btf:
        write(root / "sys/kernel/btf/vmlinux", "fake btf")
    if headers:
        write(root / f"lib/modules/{RELEASE}/build/include/linux/kconfig.h", "")
    if tracefs:
        ev = root / "sys/kernel/tracing/events/syscalls"
        for name in ("sys_enter_openat", "sys_exit_openat", "sys_enter_kill"):
            (ev / name).mkdir(parents=True)
    return root


def features(
    *,
    root: bool = True,
    fexit: ProbeResult | None = None,
    kprobe: ProbeResult | None = None,
    tracepoint: ProbeResult | None = None,
    bpf_lsm: ProbeResult | None = None,
    ringbuf: ProbeResult | None = None,
) -> Features:
    """Probe results as on the development host unless overridden."""
    return Features(
        root=root,
        btf=True,
        headers=None,
        lsms=["lockdown", "capability", "landlock", "bpf"],
        rungs={
            "fexit": fexit or ProbeResult(False, EPERM),
            "kprobe": kprobe
            or ProbeResult(
                False, "no kprobe PMU (kernel built without CONFIG_KPROBES)"
            ),
            "tracepoint": tracepoint or ProbeResult(True, "syscalls:sys_exit_openat"),
        },
        bpf_lsm=bpf_lsm
        or ProbeResult(
            False, "BPF-LSM program refused (EPERM: Operation not permitted)"
        ),
        ringbuf=ringbuf or ProbeResult(True, "BPF ring buffer"),
    )


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LSMTRACE_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return make_tree(tmp_path / "root")


def diagnose(
    root: Path, feats: Features | None = None, audit: doctor.AuditInfo | None = None
) -> doctor.Report:
    return doctor.diagnose(root, feats or features(), audit)


# -- system ----------------------------------------------------------------------


def test_system_from_tree(tree: Path) -> None:
    r = diagnose(tree)
    assert (r.release, r.arch) == (RELEASE, "x86_64")
    assert r.get("kernel").status == "ok"
    assert r.get("arch").status == "ok"
    assert r.get("root").status == "ok"


def test_not_root_warns_and_rungs_are_info(tree: Path) -> None:
    skipped = ProbeResult(False, "not probed: needs root")
    r = diagnose(
        tree,
        Features(
            root=False,
            btf=True,
            headers=None,
            lsms=[],
            rungs=dict.fromkeys(probe.RUNG_ORDER, skipped),
        ),
    )
    assert r.get("root").status == "warn"
    assert "sudo" in (r.get("root").hint or "")
    for rung in probe.RUNG_ORDER:
        assert r.get(f"rung {rung}").status == "info"
    assert r.get("backend auto").status == "info"
    assert r.auto_backend is None


def test_old_kernel_and_unknown_arch_warn(tree: Path) -> None:
    write(tree / "proc/sys/kernel/osrelease", "5.4.0-1\n")
    write(tree / "proc/sys/kernel/arch", "riscv64\n")
    r = diagnose(tree)
    assert r.get("kernel").status == "warn"
    assert r.get("arch").status == "warn"


# -- security modules --------------------------------------------------------------


def test_lsm_list(tree: Path) -> None:
    r = diagnose(tree)
    assert r.get("lsm list").status == "ok"
    assert r.get("lsm list").detail == "lockdown,capability,landlock,bpf"
    assert r.get("bpf").status == "ok"
    assert r.get("selinux").detail == "not active"
    assert r.get("apparmor").detail == "not active"
    assert r.get("yama").detail == "not active"
    assert r.get("tomoyo").detail == "not active"


@pytest.mark.parametrize(("enforce", "mode"), [("1", "enforcing"), ("0", "permissive")])
def test_selinux_mode(tree: Path, enforce: str, mode: str) -> None:
    write(tree / "sys/fs/selinux/enforce", enforce)
    assert diagnose(tree).get("selinux").detail == f"active, {mode}"


def test_apparmor_profiles_by_mode(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "root", lsm="lockdown,capability,apparmor,bpf")
    write(
        root / "sys/kernel/security/apparmor/profiles",
        "/usr/sbin/cupsd (enforce)\n"
        "/usr/bin/man (enforce)\n"
        "snap.foo (bar) (complain)\n"
        "nvidia_modprobe (complain)\n"
        "/usr/bin/evince (enforce)\n",
    )
    r = diagnose(root)
    assert r.get("apparmor").detail == "active, 5 profiles: 3 enforce, 2 complain"


def test_apparmor_without_profiles(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "root", lsm="apparmor,bpf")
    write(root / "sys/kernel/security/apparmor/profiles", "")
    assert diagnose(root).get("apparmor").detail == "active, no profiles loaded"


def test_lockdown_integrity(tree: Path) -> None:
    write(tree / "sys/kernel/security/lockdown", "none [integrity] confidentiality\n")
    c = diagnose(tree).get("lockdown")
    assert c.status == "info"
    assert c.detail.startswith("integrity")


def test_lockdown_confidentiality_warns_and_explains_kprobes(tree: Path) -> None:
    write(tree / "sys/kernel/security/lockdown", "none integrity [confidentiality]\n")
    refused = ProbeResult(False, "kprobe on security_file_open refused (EPERM: x)")
    r = diagnose(tree, features(kprobe=refused))
    assert r.get("lockdown").status == "warn"
    assert "lockdown" in (r.get("rung kprobe").hint or "")


@pytest.mark.parametrize("scope", [0, 1, 2, 3])
def test_yama_ptrace_scope(tree: Path, scope: int) -> None:
    write(tree / "proc/sys/kernel/yama/ptrace_scope", f"{scope}\n")
    c = diagnose(tree).get("yama")
    assert c.detail.startswith(f"ptrace_scope {scope}: ")
    if scope == 2:
        assert "admin-only" in c.detail
        assert "CAP_SYS_PTRACE" in c.detail


def test_tomoyo_active(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "root", lsm="capability,tomoyo,bpf")
    tdir = root / "sys/kernel/security/tomoyo"
    tdir.mkdir()
    (tdir / "profile").write_text("")  # active, tomoyo-init never ran
    c = diagnose(root).get("tomoyo")
    assert c.detail == "active, no policy loaded: denies nothing"
    assert "tomoyo-tools" in (c.hint or "")
    (tdir / "profile").write_text(
        "PROFILE_VERSION=20150505\n0-CONFIG={ mode=disabled }\n"
        "3-CONFIG={ mode=enforcing grant_log=no reject_log=yes }\n"
        "7-CONFIG={ mode=disabled }\n7-CONFIG::file::open={ mode=enforcing }\n"
        "12-COMMENT=mode=enforcing in a comment\n"
    )
    c = diagnose(root).get("tomoyo")
    assert c.detail.startswith("active, policy loaded (profiles enforcing: 3, 7;"), (
        c.detail
    )


def test_landlock_not_probed_off_the_live_root(tree: Path) -> None:
    assert "not probed" in diagnose(tree).get("landlock").detail


def test_bpf_missing_from_lsm_list_gives_grub_recipe(tmp_path: Path) -> None:
    current = "lockdown,capability,landlock,yama,apparmor"
    root = make_tree(tmp_path / "root", lsm=current)
    no_bpf = ProbeResult(False, "'bpf' missing from /sys/kernel/security/lsm")
    c = diagnose(root, features(bpf_lsm=no_bpf)).get("bpf")
    assert c.status == "missing"
    hint = c.hint or ""
    assert f"lsm={current},bpf" in hint
    for step in ("/etc/default/grub", "GRUB_CMDLINE_LINUX", "update-grub", "reboot"):
        assert step in hint


def test_grub_recipe_replaces_an_existing_lsm_parameter(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "root", lsm="capability,selinux")
    write(root / "proc/cmdline", "quiet lsm=selinux ro\n")
    hint = diagnose(root).get("bpf").hint or ""
    assert "replace lsm=selinux with lsm=capability,selinux,bpf" in hint


def test_bpf_lsm_not_built_in_says_grub_will_not_help(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "root", lsm="capability,apparmor")
    no_cfg = ProbeResult(False, "bpf_lsm_file_open not in BTF (CONFIG_BPF_LSM not set)")
    c = diagnose(root, features(bpf_lsm=no_cfg)).get("bpf")
    assert c.status == "missing"
    assert "CONFIG_BPF_LSM=y" in (c.hint or "")
    assert "update-grub" not in (c.hint or "")


def test_securityfs_unmounted(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "root", lsm=None)
    r = diagnose(root)
    c = r.get("lsm list")
    assert c.status == "missing"
    assert c.hint == "mount -t securityfs securityfs /sys/kernel/security"
    for name in ("apparmor", "lockdown", "tomoyo", "landlock", "bpf"):
        assert "securityfs not mounted" in r.get(name).detail, name


# -- audit ---------------------------------------------------------------------------


def status(enabled: int = 0, pid: int = 0, lost: int = 0) -> auditnl.AuditStatus:
    return auditnl.AuditStatus(
        enabled=enabled,
        failure=1,
        pid=pid,
        rate_limit=0,
        backlog_limit=64,
        lost=lost,
        backlog=0,
        backlog_wait_time=15000,
    )


NEVER_TASK = auditnl.Rule(auditnl.AUDIT_FILTER_TASK, auditnl.AUDIT_NEVER, 0)


def test_audit_not_built_in(tree: Path) -> None:
    (tree / "proc/self/loginuid").unlink()
    c = diagnose(tree).get("audit")
    assert c.status == "missing"
    assert "CONFIG_AUDIT" in c.detail
    assert "CONFIG_AUDIT=y" in (c.hint or "")


def test_audit_netlink_refused_by_the_kernel(tree: Path) -> None:
    info = doctor.AuditInfo(None, "no audit netlink socket (EPROTONOSUPPORT: x)")
    assert diagnose(tree, audit=info).get("audit").status == "missing"


def test_audit_not_probed_off_the_live_root(tree: Path) -> None:
    r = diagnose(tree)
    assert r.get("audit").detail == "state not probed: not the live root"
    assert r.get("audit read cap").status == "ok"
    with pytest.raises(KeyError):
        r.get("audit rules")


def test_audit_disabled_says_how_and_what_it_costs(tree: Path) -> None:
    r = diagnose(tree, audit=doctor.AuditInfo(status(0), rules=[]))
    c = r.get("audit")
    assert c.status == "info"
    assert c.detail.startswith("built in, disabled")
    hint = c.hint or ""
    for what in (
        "auditctl -e 1",
        "audit=1",
        "--enable-audit",
        "getppid",
        "never,task",
        "until reboot",
    ):
        assert what in hint, what
    assert "pay a syscall audit context" in r.get("audit rules").detail
    assert "no audit daemon" in r.get("audit readers").detail


def test_audit_enabled(tree: Path) -> None:
    r = diagnose(tree, audit=doctor.AuditInfo(status(1, lost=3), rules=[]))
    c = r.get("audit")
    assert c.status == "ok"
    assert "joins each denial" in c.detail
    assert "dropped 3 records" in c.detail
    rules = r.get("audit rules").detail
    assert "getppid" in rules
    assert "auditctl -a never,task" in rules
    locked = diagnose(tree, audit=doctor.AuditInfo(status(2), rules=[])).get("audit")
    assert "locked until reboot" in locked.detail


def test_audit_never_task_rule(tree: Path) -> None:
    r = diagnose(tree, audit=doctor.AuditInfo(status(1), rules=[NEVER_TASK]))
    detail = r.get("audit rules").detail
    assert "`-a never,task` is loaded" in detail
    assert "without SYSCALL records" in detail


def test_audit_readers(tree: Path) -> None:
    write(tree / "proc/812/comm", "auditd\n")
    write(tree / "proc/97/comm", "systemd-journal\n")
    write(tree / "proc/5/comm", "bash\n")
    r = diagnose(tree, audit=doctor.AuditInfo(status(1, pid=812), rules=[]))
    detail = r.get("audit readers").detail
    assert "auditd (pid 812) is the audit daemon" in detail
    assert "systemd-journald (pid 97) reads the multicast group" in detail
    assert "no audit daemon" not in detail


def test_audit_state_unreadable_without_privileges(tree: Path) -> None:
    write(tree / "proc/self/status", "Name:\tx\nCapEff:\t0000000000000000\n")
    info = doctor.AuditInfo(None, "AUDIT_GET: EPERM: Operation not permitted")
    r = diagnose(tree, features(root=False), info)
    c = r.get("audit")
    assert (c.status, c.hint) == ("info", doctor.ROOT_HINT)
    assert "EPERM" in c.detail
    cap = r.get("audit read cap")
    assert cap.status == "missing"
    assert "tracing works, without the audit join" in cap.detail


def test_audit_live_info_shape() -> None:
    """The live query never raises: a state, or why there is none."""
    info = doctor.audit_info_live()
    assert (info.status is None) == bool(info.why)


# -- compiling BPF -------------------------------------------------------------------


def test_no_btf_and_no_headers(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "root", btf=False)
    r = diagnose(root)
    assert r.get("btf").status == "missing"
    assert "CONFIG_DEBUG_INFO_BTF" in (r.get("btf").hint or "")
    c = r.get("headers")
    assert c.status == "missing"
    assert c.hint == "apt-get install linux-headers-$(uname -r)"
    assert f"/lib/modules/{RELEASE}/build" in c.detail


def test_btf_without_headers_synthesizes(tree: Path, tmp_path: Path) -> None:
    c = diagnose(tree).get("headers")
    assert c.status == "info"
    assert "headers will be synthesized from BTF" in c.detail
    assert f"(cached in {tmp_path / 'cache' / 'kheaders'})" in c.detail


def test_real_headers(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "root", headers=True)
    c = diagnose(root).get("headers")
    assert (c.status, c.detail) == ("ok", f"/lib/modules/{RELEASE}/build")


def add_bpftool(root: Path) -> None:
    tool = root / "usr/sbin/bpftool"
    write(tool, "#!/bin/sh\n")
    tool.chmod(0o755)


def test_bpftool(tree: Path) -> None:
    assert diagnose(tree).get("bpftool").status == "missing"
    add_bpftool(tree)
    c = diagnose(tree).get("bpftool")
    assert c.status == "ok"
    assert c.detail.startswith("/usr/sbin/bpftool")


def test_bpftool_not_needed_with_headers(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "root", headers=True)
    assert diagnose(root).get("bpftool").status == "info"


def _fake_find_spec(origin: Path | None) -> Callable[..., Any]:
    real = importlib.util.find_spec

    def find_spec(name: str, package: str | None = None) -> Any:
        if name != "bcc":
            return real(name, package)
        if origin is None:
            return None
        return importlib.machinery.ModuleSpec("bcc", None, origin=str(origin))

    return find_spec


def test_bcc_missing(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", _fake_find_spec(None))
    c = diagnose(tree).get("bcc")
    assert c.status == "missing"
    assert "apt-get install python3-bpfcc" in (c.hint or "")


def test_pypi_bcc_shadowing_warns(
    tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    init = tmp_path / "venv/lib/python3.11/site-packages/bcc/__init__.py"
    write(init, "")
    monkeypatch.setattr(importlib.util, "find_spec", _fake_find_spec(init))
    c = diagnose(tree).get("bcc")
    assert c.status == "warn"
    assert str(init) in c.detail
    assert "unrelated PyPI" in c.detail
    assert "python3-bpfcc" in (c.hint or "")


def test_debian_bcc_ok(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    init = doctor.DEBIAN_DIST_PACKAGES / "bcc/__init__.py"
    monkeypatch.setattr(importlib.util, "find_spec", _fake_find_spec(init))
    assert diagnose(tree).get("bcc").status == "ok"


# -- tracing and rungs -------------------------------------------------------------------


def test_tracefs(tree: Path) -> None:
    r = diagnose(tree)
    assert r.get("tracefs").detail == "mounted at /sys/kernel/tracing"
    assert r.get("syscall events").status == "ok"
    assert r.get("syscall events").detail.startswith("2 syscalls")


def test_tracefs_unmounted(tmp_path: Path) -> None:
    r = diagnose(make_tree(tmp_path / "root", tracefs=False))
    c = r.get("tracefs")
    assert c.status == "missing"
    assert c.hint == "mount -t tracefs tracefs /sys/kernel/tracing"


def test_no_syscall_tracepoints(tree: Path) -> None:
    (tree / "sys/kernel/tracing/events/syscalls/sys_exit_openat").rmdir()
    c = diagnose(tree).get("syscall events")
    assert c.status == "missing"
    assert "CONFIG_FTRACE_SYSCALLS" in (c.hint or "")


def test_rungs_as_on_the_development_host(tree: Path) -> None:
    r = diagnose(tree)
    fexit = r.get("rung fexit")
    assert fexit.status == "missing"
    assert "EPERM" in fexit.detail
    assert fexit.hint == doctor.TRAMPOLINE_HINT
    assert "`lsmtrace hooks`" in fexit.hint
    kp = r.get("rung kprobe")
    assert kp.status == "missing"
    assert "CONFIG_KPROBES" in (kp.hint or "")
    assert r.get("rung tracepoint").status == "ok"
    assert r.get("rung bpf-lsm").status == "missing"
    assert r.get("ring buffer").status == "ok"
    assert r.auto_backend == "tracepoint"
    assert r.get("backend auto").detail == "--backend auto would use tracepoint"


def test_auto_prefers_fexit(tree: Path) -> None:
    ok = ProbeResult(True, "fexit on security_file_open")
    assert diagnose(tree, features(fexit=ok)).auto_backend == "fexit"


def test_no_rung_loads(tree: Path) -> None:
    no_tp = ProbeResult(
        False, "no syscalls:sys_exit_openat in tracefs (CONFIG_FTRACE_SYSCALLS?)"
    )
    no_rb = ProbeResult(
        False, "BPF ring buffer unavailable (EINVAL: x); perf buffer used"
    )
    r = diagnose(tree, features(tracepoint=no_tp, ringbuf=no_rb))
    assert r.auto_backend is None
    assert r.get("backend auto").status == "missing"
    assert "mount -t tracefs" in (r.get("rung tracepoint").hint or "")
    assert r.get("ring buffer").status == "warn"


def test_fake_root_is_never_probed(tree: Path) -> None:
    r = doctor.diagnose(tree)
    for rung in probe.RUNG_ORDER:
        c = r.get(f"rung {rung}")
        assert (c.status, c.detail) == ("info", "not probed: not the live root")


def test_sysctls(tree: Path) -> None:
    r = diagnose(tree)
    assert r.get("unpriv bpf").detail.startswith("kernel.unprivileged_bpf_disabled=2")
    assert r.get("bpf stats").detail.startswith("kernel.bpf_stats_enabled=0")
    assert {r.get("unpriv bpf").status, r.get("bpf stats").status} == {"info"}


# -- output ------------------------------------------------------------------------


@pytest.fixture
def busy(tmp_path: Path) -> doctor.Report:
    """A report with every status, long details and long hints."""
    root = make_tree(
        tmp_path / "root", lsm="lockdown,capability,landlock,yama,apparmor,tomoyo"
    )
    write(root / "sys/kernel/security/lockdown", "none integrity [confidentiality]\n")
    write(root / "proc/sys/kernel/yama/ptrace_scope", "2\n")
    write(root / "sys/fs/selinux/enforce", "1")
    write(root / "sys/kernel/security/apparmor/profiles", "a (enforce)\nb (complain)\n")
    return diagnose(
        root,
        features(ringbuf=ProbeResult(False, "x" * 200)),
        doctor.AuditInfo(status(0), rules=[]),
    )


def test_every_check_has_a_hint_when_missing(busy: doctor.Report) -> None:
    assert {c.status for c in busy.checks} == set(doctor.STATUSES)
    for c in busy.checks:
        if c.status == "missing":
            assert c.hint, c.name


def test_render_fits_80_columns(busy: doctor.Report) -> None:
    text = doctor.render(busy)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 80
    n = busy.counts()
    assert lines[-1] == f"{n['ok']} ok, {n['warn']} warnings, {n['missing']} missing"
    assert re.search(r"^  missing  rung fexit\s+fexit program refused", text, re.M)
    assert "hint: edit /etc/default/grub" in text
    assert "lsm=lockdown,capability,landlock,yama,apparmor,tomoyo,bpf" in text


def test_summary_singular(tree: Path) -> None:
    r = diagnose(tree)
    r.checks = [
        doctor.Check("system", "x", "warn", "d"),
        doctor.Check("system", "y", "ok", "d"),
    ]
    assert doctor.render(r).splitlines()[-1] == "1 ok, 1 warning, 0 missing"


def test_to_json(busy: doctor.Report) -> None:
    doc = json.loads(doctor.to_json(busy))
    assert set(doc) == {
        "schema",
        "root",
        "release",
        "arch",
        "auto_backend",
        "summary",
        "checks",
    }
    assert doc["schema"] == doctor.SCHEMA
    assert doc["auto_backend"] == "tracepoint"
    assert set(doc["summary"]) == {"ok", "warn", "missing", "info"}
    assert sum(doc["summary"].values()) == len(doc["checks"])
    for c in doc["checks"]:
        assert set(c) == {"section", "name", "status", "detail", "hint"}
        assert c["status"] in doctor.STATUSES
        assert c["hint"] is None or isinstance(c["hint"], str)
    names = [c["name"] for c in doc["checks"]]
    assert len(names) == len(set(names))


def test_import_and_fake_diagnose_do_not_import_bcc(tree: Path) -> None:
    code = (
        "import sys; from pathlib import Path; from lsmtrace import doctor; "
        f"doctor.render(doctor.diagnose(Path({str(tree)!r}))); "
        "assert 'bcc' not in sys.modules, 'bcc imported'"
    )
    subprocess.run(
        [sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2]
    )


def test_btf_preferred_over_real_headers_when_bpftool_is_there(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "root", headers=True)
    add_bpftool(root)
    c = diagnose(root).get("headers")
    assert c.status == "ok"
    assert c.detail.startswith("synthesized from BTF, preferred")
    assert (
        f"/lib/modules/{RELEASE}/build is there too: LSMTRACE_HEADERS=kernel"
        in c.detail
    )
