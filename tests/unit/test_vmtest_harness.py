"""Unit tests for the pure parts of vagrant/vmtest.py (no root, no qemu, no network)."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]
VMTEST_PATH = REPO / "vagrant" / "vmtest.py"


@pytest.fixture(scope="module")
def vmtest() -> ModuleType:
    spec = importlib.util.spec_from_file_location("vmtest_under_test", VMTEST_PATH)
    assert spec is not None
    assert spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses need the module registered
    spec.loader.exec_module(mod)
    return mod


def test_cache_key_is_stable(vmtest: ModuleType) -> None:
    assert vmtest.cache_key() == vmtest.cache_key()
    assert len(vmtest.cache_key()) == 16


def test_cache_key_changes_with_package_list(vmtest: ModuleType) -> None:
    rec = vmtest.recipe()
    base = vmtest.cache_key(rec)
    more = dict(rec, packages=[*rec["packages"], "nano"])
    assert vmtest.cache_key(more) != base


def test_cache_key_ignores_package_order(
    vmtest: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = vmtest.cache_key()
    monkeypatch.setattr(vmtest, "PACKAGES", tuple(reversed(vmtest.PACKAGES)))
    assert vmtest.cache_key() == base


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("GUEST_SETUP", "echo changed\n"),
        ("KERNELS", {"6.1": "bookworm"}),
        ("APT_SOURCES", "deb http://example.invalid/debian bookworm main\n"),
        ("IMAGE_FREE_MB", 1),
    ],
)
def test_cache_key_changes_with_recipe(
    vmtest: ModuleType, monkeypatch: pytest.MonkeyPatch, name: str, value: object
) -> None:
    base = vmtest.cache_key()
    monkeypatch.setattr(vmtest, name, value)
    assert vmtest.cache_key() != base


def test_cache_key_covers_build_code(vmtest: ModuleType) -> None:
    code = vmtest.recipe()["build_code"]
    assert "def build_image" in code
    assert "def make_ext4" in code
    assert "def _mmdebstrap_command" in code


def test_recipe_has_required_packages(vmtest: ModuleType) -> None:
    pk = set(vmtest.PACKAGES)
    for need in (
        "systemd-sysv",
        "openssh-server",
        "python3-bpfcc",
        "bpfcc-tools",
        "bpftool",
        "python3-pytest",
        "apparmor",
        "gcc",
    ):
        assert need in pk
    assert set(vmtest.KERNELS) == {"6.1", "6.12"}
    assert vmtest.KERNELS["6.12"] == "bookworm-backports"
    assert "bookworm-backports" in vmtest.APT_SOURCES


def test_kernel_cmdline_has_bpf_lsm_and_vda(vmtest: ModuleType) -> None:
    line = vmtest.kernel_cmdline()
    lsm = next(w for w in line.split() if w.startswith("lsm="))
    assert "bpf" in lsm.removeprefix("lsm=").split(",")
    assert "root=/dev/vda" in line.split()
    assert vmtest.kernel_cmdline("debug").endswith(" debug")


def test_boots_exchange_the_major_lsm(vmtest: ModuleType) -> None:
    """AppArmor and SELinux exclude each other: one per boot, same image."""

    def lsms(boot: str) -> list[str]:
        line = vmtest.kernel_cmdline(boot=boot)
        assert "root=/dev/vda" in line.split()
        words = [w for w in line.split() if w.startswith("lsm=")]
        assert len(words) == 1, line
        return list(words[0].removeprefix("lsm=").split(","))

    assert "apparmor" in lsms("apparmor")
    assert "selinux" not in lsms("apparmor")
    se = vmtest.kernel_cmdline(boot="selinux").split()
    assert "selinux" in lsms("selinux")
    assert "apparmor" not in lsms("selinux")
    assert "bpf" in lsms("selinux")
    assert {"selinux=1", "enforcing=1", "audit=1"} <= set(se)
    assert vmtest.kernel_cmdline() == vmtest.kernel_cmdline(boot="apparmor")
    for pkg in ("selinux-policy-default", "semodule-utils", "auditd"):
        assert pkg in vmtest.PACKAGES
    assert "def label_selinux" in str(vmtest.recipe()["build_code"])


def test_test_runs_and_their_selection(vmtest: ModuleType) -> None:
    assert vmtest.selected_runs() == [
        ("6.1", "apparmor"),
        ("6.12", "apparmor"),
        ("6.12", "selinux"),
    ]
    assert vmtest.selected_runs(boot="selinux") == [("6.12", "selinux")]
    assert vmtest.selected_runs(kernel="6.1") == [("6.1", "apparmor")]
    # both given: that pair, even one TEST_RUNS leaves out
    assert vmtest.selected_runs("6.1", "selinux") == [("6.1", "selinux")]
    assert vmtest.run_ok(0)
    assert vmtest.run_ok(vmtest.PYTEST_NO_TESTS)
    assert not vmtest.run_ok(1)
    assert vmtest.run_status(vmtest.PYTEST_NO_TESTS) == "NO TESTS"


def test_guest_command_names_the_boot(vmtest: ModuleType) -> None:
    line = vmtest.guest_command(["true"], "6.12", boot="selinux")
    assert "LSMTRACE_VM_BOOT=selinux" in line
    assert "LSMTRACE_VM_BOOT=apparmor" in vmtest.guest_command(["true"], "6.1")


def _qemu(vmtest: ModuleType, tmp_path: Path) -> list[str]:
    cmd: list[str] = vmtest.qemu_command(
        kernel=tmp_path / "vmlinuz",
        initrd=tmp_path / "initrd",
        disk=tmp_path / "overlay.qcow2",
        port=40022,
        console_log=tmp_path / "console.log",
        pidfile=tmp_path / "qemu.pid",
    )
    return cmd


def _opt(cmd: list[str], flag: str) -> list[str]:
    return [cmd[i + 1] for i, c in enumerate(cmd) if c == flag]


def test_qemu_network_is_restricted_and_loopback_only(
    vmtest: ModuleType, tmp_path: Path
) -> None:
    cmd = _qemu(vmtest, tmp_path)
    (netdev,) = _opt(cmd, "-netdev")
    parts = netdev.split(",")
    assert parts[0] == "user"
    assert "restrict=on" in parts
    fwds = [p for p in parts if p.startswith("hostfwd=")]
    assert fwds == ["hostfwd=tcp:127.0.0.1:40022-:22"]


def test_qemu_uses_tcg_overlay_and_pidfile(vmtest: ModuleType, tmp_path: Path) -> None:
    cmd = _qemu(vmtest, tmp_path)
    # single-threaded TCG: multi-threaded qemu 7.2 left stale code of kernel text
    # patching on the other vCPU (Oops "int3", soft lockups), docs/vm.md
    assert _opt(cmd, "-accel") == ["tcg,thread=single"]
    assert _opt(cmd, "-m") == ["2048"]
    assert _opt(cmd, "-smp") == ["2"]
    assert _opt(cmd, "-pidfile") == [str(tmp_path / "qemu.pid")]
    (drive,) = _opt(cmd, "-drive")
    assert "format=qcow2" in drive
    assert str(tmp_path / "overlay.qcow2") in drive
    assert _opt(cmd, "-serial") == [f"file:{tmp_path / 'console.log'}"]
    assert "-no-reboot" in cmd
    (cpu,) = _opt(cmd, "-cpu")
    assert "-cx16" in cpu  # qemu 7.2 TCG mis-emulates CMPXCHG16B; 6.12 double-faults


def test_kernel_trouble_finds_the_crash_in_a_console(vmtest: ModuleType) -> None:
    console = "\n".join(
        [
            "[  OK  ] Reached target multi-user.target",
            "root@lsmtrace-vm:~# [  254.3] BUG: kernel NULL pointer dereference, address: 0",
            "[  254.3] Oops: Oops: 0010 [#1] PREEMPT SMP NOPTI",
            "[  254.3] RIP: 0010:0x0",
            "[  254.3]  vfs_open+0x2e/0xe0",
            "[  132.6] watchdog: BUG: soft lockup - CPU#0 stuck for 45s! [sh:399]",
        ]
    )
    trouble = vmtest.kernel_trouble(console)
    assert len(trouble) == 4
    assert trouble[0].endswith("BUG: kernel NULL pointer dereference, address: 0")
    assert not any("vfs_open" in t or "Reached" in t for t in trouble)
    assert vmtest.kernel_trouble(console, most=1) == trouble[:1]
    assert vmtest.kernel_trouble("[ 1.0] Linux version 6.1\nlogin:") == []


def test_existing_dist_takes_one_wheel_and_its_wheelhouse(
    vmtest: ModuleType, tmp_path: Path
) -> None:
    with pytest.raises(vmtest.HarnessError, match="not a dist"):
        vmtest.existing_dist(tmp_path)
    (tmp_path / "wheelhouse").mkdir()
    (tmp_path / "lsmtrace-1.0-py3-none-any.whl").write_bytes(b"")
    d = vmtest.existing_dist(tmp_path)
    assert d.wheel.name == "lsmtrace-1.0-py3-none-any.whl"
    assert d.wheelhouse == tmp_path / "wheelhouse"
    (tmp_path / "lsmtrace-0.9-py3-none-any.whl").write_bytes(b"")
    with pytest.raises(vmtest.HarnessError):
        vmtest.existing_dist(tmp_path)


def test_select_tree_files_excludes_caches(vmtest: ModuleType) -> None:
    files = [
        "lsmtrace/cli.py",
        ".venv/lib/python3.11/site.py",
        ".cache/vm/abc/rootfs.img",
        ".git/config",
        "tests/__pycache__/x.cpython-311.pyc",
        "lsmtrace/__pycache__/cli.cpython-311.pyc",
        ".pytest_cache/v/cache/nodeids",
        "stray.pyc",
        "vagrant/vmtest.py",
        "../escape.py",
        "/abs/path.py",
        "",
        ".gitignore",
        "lsmtrace/cli.py",
    ]
    assert vmtest.select_tree_files(files) == [
        ".gitignore",
        "lsmtrace/cli.py",
        "vagrant/vmtest.py",
    ]


def test_git_tree_files_lists_untracked_but_not_ignored(
    vmtest: ModuleType, tmp_path: Path
) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / ".gitignore").write_text(".venv/\n.cache/\n*.log\n")
    (repo / "a.py").write_text("")
    (repo / "pkg").mkdir()
    (repo / "pkg" / "b.py").write_text("")
    (repo / "debug.log").write_text("")
    (repo / ".venv").mkdir()
    (repo / ".venv" / "x.py").write_text("")
    (repo / ".cache").mkdir()
    (repo / ".cache" / "img").write_text("")
    subprocess.run(["git", "-C", str(repo), "add", "a.py"], check=True)
    (repo / "a.py").unlink()  # tracked but deleted in the work tree: skipped
    assert vmtest.git_tree_files(repo) == [".gitignore", "pkg/b.py"]


def test_guest_command_sets_env_and_cwd(vmtest: ModuleType) -> None:
    line = vmtest.guest_command(["python3", "-c", "print('a b')"], "6.12")
    assert line.startswith("cd /root/lsmtrace && exec env ")
    # lsmtrace comes from the venv that install.sh made, never from a copied tree
    assert "PYTHONPATH" not in line
    assert "PYTHONSAFEPATH=1" in line
    assert f"PATH={vmtest.GUEST_VENV}/bin:" in line
    assert "LSMTRACE_IN_VM=1" in line
    assert "LSMTRACE_VM_KERNEL=6.12" in line
    assert line.endswith("python3 -c 'print('\"'\"'a b'\"'\"')'")


def test_guest_gets_tests_and_deploy_files_but_no_package(vmtest: ModuleType) -> None:
    files = [
        "lsmtrace/cli.py",
        "lsmtrace/bpf/common.h",
        "bpf",
        "tests/vm/conftest.py",
        "tests/bpf/helpers.py",
        "deploy/install.sh",
        "pyproject.toml",
        "benchmarks/bench.py",
        "README.md",
        "vagrant/vmtest.py",
    ]
    assert vmtest.guest_files(files) == [
        "tests/vm/conftest.py",
        "tests/bpf/helpers.py",
        "deploy/install.sh",
        "pyproject.toml",
        "benchmarks/bench.py",
    ]


def test_deploy_paths_share_one_install_script(vmtest: ModuleType) -> None:
    """The Dockerfile, the Vagrantfile and the VM stage install through install.sh."""
    for f in (
        "deploy/container/Dockerfile",
        "vagrant/Vagrantfile",
        "vagrant/vmtest.py",
    ):
        assert "deploy/install.sh" in (REPO / f).read_text(), f
    unit = (REPO / "deploy/systemd/lsmtrace-exporter.service").read_text()
    exec_start = [ln for ln in unit.splitlines() if ln.startswith("ExecStart=/")]
    assert exec_start
    for ln in exec_start:
        assert ln.startswith(f"ExecStart={vmtest.GUEST_VENV}/bin/lsmtrace "), ln


def test_ssh_base_targets_loopback_with_key(vmtest: ModuleType, tmp_path: Path) -> None:
    cmd = vmtest.ssh_base(40022, tmp_path / "id")
    assert cmd[0] == "ssh"
    assert cmd[-1] == "root@127.0.0.1"
    assert _opt(cmd, "-p") == ["40022"]
    assert _opt(cmd, "-i") == [str(tmp_path / "id")]
    assert "BatchMode=yes" in _opt(cmd, "-o")


def test_parse_depends(vmtest: ModuleType) -> None:
    out = (
        "linux-image-cloud-amd64\n"
        "  Depends: linux-image-6.12.95+deb12-cloud-amd64\n"
        "  Depends: <virtual-thing>\n"
        "  Recommends: something\n"
    )
    assert vmtest.parse_depends(out) == ["linux-image-6.12.95+deb12-cloud-amd64"]


def test_image_load_requires_manifest(vmtest: ModuleType, tmp_path: Path) -> None:
    d = tmp_path / "img"
    d.mkdir()
    (d / "rootfs.img").write_bytes(b"")
    (d / "id_ed25519").write_text("k")
    assert vmtest.Image.load(d) is None  # no manifest: an interrupted build
    (d / "manifest.json").write_text('{"key": "x"}')
    img = vmtest.Image.load(d)
    assert img is not None
    assert img.kernel_files("6.1") == (d / "vmlinuz-6.1", d / "initrd-6.1")
    with pytest.raises(vmtest.HarnessError):
        img.kernel_files("5.10")


def test_prune_cache_keeps_current_and_live_builds(
    vmtest: ModuleType, tmp_path: Path
) -> None:
    import os

    root = tmp_path / "vm"
    for name in (
        "cur",
        "old",
        f"new.tmp-{os.getpid()}",
        "dead.tmp-999999999",
        "partial",
    ):
        (root / name).mkdir(parents=True)
    (root / "cur" / "manifest.json").write_text("{}")
    (root / "old" / "manifest.json").write_text("{}")
    vmtest._prune_cache(root, keep="cur")
    assert sorted(p.name for p in root.iterdir()) == [
        "cur",
        f"new.tmp-{os.getpid()}",
        "partial",
    ]


def test_skip_vm_env(
    vmtest: ModuleType,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("LSMTRACE_SKIP_VM", "1")
    assert vmtest.main(["test"]) == 0
    assert "VM stage skipped (LSMTRACE_SKIP_VM=1)" in capsys.readouterr().out


def test_cli_passes_unknown_args_to_pytest(vmtest: ModuleType) -> None:
    parser = vmtest.build_parser()
    args, unknown = parser.parse_known_args(["test", "--kernel", "6.1", "-k", "lsm"])
    assert args.kernel == "6.1"
    assert unknown == ["-k", "lsm"]
    args = parser.parse_args(["run", "--kernel", "6.12", "--", "uname", "-r"])
    assert args.command[-2:] == ["uname", "-r"]


def test_signals_raise_restores_handlers(vmtest: ModuleType) -> None:
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(vmtest.Interrupted), vmtest.signals_raise():
        signal.raise_signal(signal.SIGTERM)
    assert signal.getsignal(signal.SIGTERM) == before


def test_format_duration(vmtest: ModuleType) -> None:
    assert vmtest.format_duration(3.25) == "3.2s"
    assert vmtest.format_duration(125.0) == "2m05.0s"


def test_missing_host_tools_named_by_package(
    vmtest: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(vmtest.shutil, "which", lambda name: None)
    monkeypatch.setattr(vmtest.os, "geteuid", lambda: 1000)
    with pytest.raises(vmtest.HarnessError) as exc:
        vmtest.ensure_host_tools(vmtest.RUN_TOOLS)
    msg = str(exc.value)
    for pkg in ("qemu-system-x86", "qemu-utils", "openssh-client", "git"):
        assert pkg in msg
    assert "mmdebstrap" not in msg


def test_dist_refuses_to_empty_a_foreign_directory(
    vmtest: ModuleType, tmp_path: Path
) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(vmtest.HarnessError, match="not emptying"):
        vmtest.build_dist(tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_child_result_reads_the_run_it_wrote(
    vmtest: ModuleType, tmp_path: Path
) -> None:
    """A parallel run's child writes {rc, timings}; without the file (the child
    died first) its exit code and the wall time are what is known."""
    res = tmp_path / "r.json"
    res.write_text('{"rc": 255, "timings": {"boot-to-ready": 20.5, "command": 447.1}}')
    r = vmtest._child_result("6.1", "apparmor", 1, res, 500.0)
    assert (r.kernel, r.boot, r.rc) == ("6.1", "apparmor", 255)
    assert r.timings == {"boot-to-ready": 20.5, "command": 447.1}
    assert vmtest.run_status(r.rc) == "FAIL (exit 255)"
    r = vmtest._child_result("6.12", "selinux", 2, tmp_path / "none.json", 12.0)
    assert r.rc == 2
    assert r.timings == {"harness (no result file)": 12.0}


def test_jobs_from_the_environment_or_the_cpus(
    vmtest: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("VMTEST_JOBS", raising=False)
    assert vmtest.default_jobs() == (os.cpu_count() or 1)
    monkeypatch.setenv("VMTEST_JOBS", "3")
    assert vmtest.default_jobs() == 3
    for bad in ("0", "two", "-1"):
        monkeypatch.setenv("VMTEST_JOBS", bad)
        with pytest.raises(vmtest.HarnessError, match="VMTEST_JOBS"):
            vmtest.default_jobs()
    monkeypatch.setenv("VMTEST_JOBS", "two")
    monkeypatch.delenv("LSMTRACE_SKIP_VM", raising=False)
    assert vmtest.main(["test", "--kernel", "6.1", "--boot", "apparmor"]) == 2
