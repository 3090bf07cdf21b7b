"""Fixtures for tests that run INSIDE the VM target (vagrant/vmtest.py, `make test-vm`).

The harness installs lsmtrace in the guest from the wheel built on the host
(deploy/install.sh, venv /opt/lsmtrace), copies tests/ and deploy/ only, sets
LSMTRACE_IN_VM=1 (and LSMTRACE_VM_KERNEL=<6.1|6.12>) and runs pytest as root with
the venv's python. The Vagrant box does the same. Inside the VM, a pytest that
would not test the installed product stops at once (product.not_installed()).
Anywhere else every test in this directory is skipped with a reason, so a plain
`pytest tests/` on a developer machine stays green.

Boot configurations: the harness boots the same image with AppArmor or with
SELinux as the major LSM (LSMTRACE_VM_BOOT=apparmor|selinux; they exclude each
other). A test runs in the boot its `vm_boot` marker names (unmarked: apparmor);
the others deselect it, so the SELinux boot runs only its own tests.
"""

from __future__ import annotations

import contextlib
import importlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

VM_SKIP_REASON = "runs inside the VM target: make test-vm"
SECURITYFS_LSM = Path("/sys/kernel/security/lsm")
DEFAULT_BOOT = "apparmor"


def running_in_vm() -> bool:
    return os.environ.get("LSMTRACE_IN_VM") == "1"


def pytest_configure(config: pytest.Config) -> None:
    # bcc 0.26 warns on every str argument ("not a bytes object"); it is noise here.
    config.addinivalue_line(
        "filterwarnings", "ignore:not a bytes object:DeprecationWarning"
    )
    config.addinivalue_line(
        "markers",
        "vm_boot(name): the VM boot configuration this test runs in "
        "(apparmor, selinux; default apparmor)",
    )
    if running_in_vm():
        from product import not_installed

        why = not_installed()
        if why:
            raise pytest.UsageError(
                f"tests/vm test the installed lsmtrace, but {why}; run them with "
                "the python of the venv deploy/install.sh made (vagrant/vmtest.py test)"
            )


def pytest_collection_modifyitems(
    config: pytest.Config, items: list[pytest.Item]
) -> None:
    """Skip every test under tests/vm unless inside the VM and root (reason attached)."""
    here = Path(__file__).parent
    if not running_in_vm():
        reason = VM_SKIP_REASON
    elif os.geteuid() != 0:
        reason = "needs root (run through vagrant/vmtest.py, which runs as root in the guest)"
    else:
        _select_boot(config, items, here)
        return
    marker = pytest.mark.skip(reason=reason)
    for item in items:
        if here in Path(str(item.path)).parents:
            item.add_marker(marker)


def current_boot() -> str:
    return os.environ.get("LSMTRACE_VM_BOOT") or DEFAULT_BOOT


def boot_of(item: pytest.Item) -> str:
    mark = item.get_closest_marker("vm_boot")
    return str(mark.args[0]) if mark and mark.args else DEFAULT_BOOT


def _select_boot(config: pytest.Config, items: list[pytest.Item], here: Path) -> None:
    """Keep the tests of this boot (tests/vm only); deselect the others."""
    boot = current_boot()
    keep, drop = [], []
    for item in items:
        mine = here not in Path(str(item.path)).parents or boot_of(item) == boot
        (keep if mine else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture(scope="session")
def in_vm() -> None:
    """Skip unless running inside the VM target."""
    if not running_in_vm():
        pytest.skip(VM_SKIP_REASON)


@pytest.fixture(scope="session")
def require_root() -> None:
    """Skip unless running as root."""
    if os.geteuid() != 0:
        pytest.skip("needs root")


@pytest.fixture(scope="session")
def vm_kernel(in_vm: None) -> str:
    """The harness's kernel name ("6.1", "6.12"), or the running release if unknown."""
    return os.environ.get("LSMTRACE_VM_KERNEL") or os.uname().release


@pytest.fixture(scope="session")
def active_lsms(in_vm: None) -> list[str]:
    """The active LSM list from securityfs (mounted if needed)."""
    if not SECURITYFS_LSM.exists() and os.geteuid() == 0:
        os.system("mount -t securityfs securityfs /sys/kernel/security 2>/dev/null")
    if not SECURITYFS_LSM.exists():
        pytest.skip(f"{SECURITYFS_LSM} not available")
    return SECURITYFS_LSM.read_text().strip().split(",")


@pytest.fixture(scope="session")
def bcc_module(in_vm: None, require_root: None) -> Any:
    """The bcc Python module (python3-bpfcc in the guest); imported lazily."""
    try:
        bcc = importlib.import_module("bcc")
    except ImportError as e:  # pragma: no cover - only without python3-bpfcc
        pytest.skip(f"bcc not importable: {e}")
    return bcc


@pytest.fixture
def bpf_cleanup() -> Iterator[list[Any]]:
    """Append BPF objects to the yielded list; they are detached at teardown."""
    objs: list[Any] = []
    yield objs
    for b in reversed(objs):
        with contextlib.suppress(Exception):
            b.cleanup()
