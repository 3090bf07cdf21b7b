#!/usr/bin/python3
"""lsmtrace VM test target: build a Debian guest image offline, boot it under qemu, run tests.

Self-contained (Python 3.11 standard library only). Run with the system Python:

    /usr/bin/python3 vagrant/vmtest.py build [--force]
    /usr/bin/python3 vagrant/vmtest.py run [--kernel 6.1|6.12] [--boot apparmor|selinux]
                                           [--timeout S] -- COMMAND...
    /usr/bin/python3 vagrant/vmtest.py test [--kernel 6.1|6.12|all] [--boot ...|all]
                                            [PYTEST ARGS...]
    /usr/bin/python3 vagrant/vmtest.py shell [--kernel 6.1|6.12] [--boot apparmor|selinux]

The image is a raw ext4 file system made with mmdebstrap + `mke2fs -d` (no loop devices),
cached under <repo>/.cache/vm/<key>/ where <key> hashes the package list and the recipe.
One image serves every boot configuration (--boot): AppArmor, or SELinux enforcing on
files labelled at build time.
Each boot uses a throw-away qcow2 overlay, qemu TCG, user-mode networking restricted to the
guest with one ssh port forward bound to 127.0.0.1. qemu is always stopped: try/finally,
SIGINT/SIGTERM/SIGHUP handlers, and PR_SET_PDEATHSIG so it dies with the harness.

See docs/vm.md for how it works and how to debug it.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import hashlib
import importlib.util
import inspect
import io
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# --------------------------------------------------------------------------------------
# Recipe. Everything in this section (plus the source of the build functions) feeds the
# cache key: change it and the next run builds a new image.
# --------------------------------------------------------------------------------------

SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
SECURITY_MIRROR = "http://deb.debian.org/debian-security"
# Private sources list handed to mmdebstrap (and to a private apt used to resolve the
# backports kernel's versioned package names). The host's /etc/apt is never touched.
APT_SOURCES = (
    f"deb {MIRROR} bookworm main\n"
    f"deb {MIRROR} bookworm-updates main\n"
    f"deb {SECURITY_MIRROR} bookworm-security main\n"
    f"deb {MIRROR} bookworm-backports main\n"
)

PACKAGES = (
    "systemd",
    "systemd-sysv",
    "udev",
    "dbus",
    "openssh-server",
    "ca-certificates",
    "python3",
    "python3-venv",
    "python3-bpfcc",
    "bpfcc-tools",
    "bpftool",
    "python3-pytest",
    "python3-psutil",
    "python3-prometheus-client",
    "apparmor",
    "apparmor-utils",
    "tomoyo-tools",
    "iproute2",
    "procps",
    "kmod",
    "util-linux",
    "gcc",
    "libc6-dev",
    "make",
    "tar",
    "less",
    "strace",
    "rsync",
    "sudo",  # Vagrant's synced folder ("sudo rsync") when this is its box
    # a real Prometheus server and promtool scrape the exporter in the guest
    "prometheus",
    # the selinux boot: Debian's reference policy, the tools that build and load a
    # module (checkmodule, semodule_package, semodule), audit2allow, and auditd
    # for the AVC log it reads (started on SELinux boots only: GUEST_SETUP)
    "selinux-policy-default",
    "selinux-utils",
    "policycoreutils",
    "checkpolicy",
    "semodule-utils",
    "policycoreutils-python-utils",
    "auditd",
)

# Kernel name (the --kernel value) -> the suite whose cloud-amd64 flavour is installed.
# The metapackages linux-image-cloud-amd64 exist in both suites under the same name, so
# the build resolves each to its versioned package (linux-image-<release>) and installs
# both versioned packages side by side, each with its matching headers.
KERNELS: dict[str, str] = {
    "6.1": "bookworm",
    "6.12": "bookworm-backports",
}
KERNEL_FLAVOUR = "cloud-amd64"
DEFAULT_KERNEL = "6.12"

# Runs inside the guest root (chroot) at the end of mmdebstrap. @PUBKEY@ is substituted.
GUEST_SETUP = r"""
set -eu
echo lsmtrace-vm > /etc/hostname
printf '127.0.0.1 localhost\n127.0.1.1 lsmtrace-vm\n' > /etc/hosts
printf '/dev/vda / ext4 rw,relatime,errors=remount-ro 0 1\n' > /etc/fstab
mkdir -p /etc/systemd/network
printf '[Match]\nName=eth0 en*\n\n[Network]\nDHCP=ipv4\nLinkLocalAddressing=no\nIPv6AcceptRA=no\n' \
    > /etc/systemd/network/20-wired.network
systemctl enable systemd-networkd.service ssh.service
systemctl mask systemd-networkd-wait-online.service apt-daily.timer \
    apt-daily-upgrade.timer e2scrub_all.timer e2scrub_reap.service fstrim.timer \
    man-db.timer prometheus.service 2>/dev/null || true
install -d -m 700 /root/.ssh
printf '%s\n' '@PUBKEY@' > /root/.ssh/authorized_keys
chmod 600 /root/.ssh/authorized_keys
mkdir -p /etc/ssh/sshd_config.d
printf 'PermitRootLogin prohibit-password\nPasswordAuthentication no\nUseDNS no\nAcceptEnv LANG LC_*\n' \
    > /etc/ssh/sshd_config.d/lsmtrace.conf
# Root has no password; the serial console autologins so a failed boot is debuggable.
passwd -d root
mkdir -p /etc/systemd/system/serial-getty@ttyS0.service.d
printf '[Service]\nExecStart=\nExecStart=-/sbin/agetty --autologin root --keep-baud 115200,57600,38400,9600 %%I $TERM\n' \
    > /etc/systemd/system/serial-getty@ttyS0.service.d/autologin.conf
echo 'kernel.printk = 4 4 1 7' > /etc/sysctl.d/10-console.conf
# TOMOYO: the kernel runs /sbin/tomoyo-init when /sbin/init starts, and it loads
# /etc/tomoyo; without a policy there TOMOYO stays inert. tomoyo-tools' postinst
# runs init_policy (every domain on profile 0 = disabled); run it here should a
# package version not. Tests load their own domains.
[ -f /etc/tomoyo/profile.conf ] || /usr/lib/tomoyo/init_policy >/dev/null
# SELinux: the files are labelled after this hook (label_selinux). `permissive`
# here because the selinux boot's enforcing=1 overrides it (libselinux reads the
# command line first) and a boot without SELinux never loads the policy. auditd
# (enabled by its package) runs on SELinux boots only.
printf 'SELINUX=permissive\nSELINUXTYPE=default\n' > /etc/selinux/config
rm -f /.autorelabel
mkdir -p /etc/systemd/system/auditd.service.d
printf '[Unit]\nConditionSecurity=selinux\n' \
    > /etc/systemd/system/auditd.service.d/lsmtrace.conf
rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /usr/share/doc/* /usr/share/man/* \
    /usr/share/locale/*
"""

# `bpf` must be in the active LSM list for BPF-LSM programs to attach.
LSM_LIST = "lockdown,capability,landlock,yama,apparmor,tomoyo,bpf"
KERNEL_CMDLINE = (
    "root=/dev/vda rw console=ttyS0 net.ifnames=0 panic=1 mitigations=off "
    f"lsm={LSM_LIST}"
)
# Boot configurations (--boot): AppArmor and SELinux are exclusive major LSMs, one
# per boot; the image is the same. SELinux: Debian's refpolicy, enforcing from the
# start, audit on (auditd logs the AVCs). No `security=`: lsm= supersedes it.
BOOTS: dict[str, str] = {
    "apparmor": f"lsm={LSM_LIST}",
    "selinux": "lsm=lockdown,capability,landlock,yama,selinux,bpf selinux=1 "
    "enforcing=1 audit=1",
}
DEFAULT_BOOT = "apparmor"
# What `test` runs when no --kernel/--boot narrows it: SELinux on one kernel only
# (its tests are tests/vm/test_selinux.py; the CI budget, docs/vm.md).
TEST_RUNS: tuple[tuple[str, str], ...] = (
    ("6.1", "apparmor"),
    ("6.12", "apparmor"),
    ("6.12", "selinux"),
)

# Extra space in the image on top of what the root tree uses.
IMAGE_FREE_MB = 1536

# --------------------------------------------------------------------------------------
# Runtime settings (not part of the cache key).
# --------------------------------------------------------------------------------------

QEMU_MEMORY_MB = 2048
QEMU_SMP = 2
# qemu 7.2 TCG emulates the gs-relative CMPXCHG16B in SLUB's fast path wrongly: the 6.12
# kernel double-faults in early boot (with -cpu max and qemu64 alike). Without CX16 the
# kernel uses its software fallback. See docs/vm.md.
QEMU_CPU = os.environ.get("VMTEST_CPU", "max,-cx16")
# Single-threaded TCG: qemu 7.2's multi-threaded TCG (the default for an x86 guest)
# does not keep one vCPU's translated code in step with the kernel patching its text
# from the other (int3 breakpoints of text_poke_bp: static keys, kprobes, BPF
# trampolines). The guests Oopsed ("int3", a call to 0x0) or hung in soft lockups
# while tracers attached and detached; a tracefs stress (kprobe + syscall tracepoint
# toggled in a loop while two loops open files) hangs a 2-vCPU guest within a minute
# multi-threaded and ran 4 minutes clean single-threaded (vagrant/textpoke-stress.sh;
# docs/vm.md, section 2).
QEMU_ACCEL = os.environ.get("VMTEST_ACCEL", "tcg,thread=single")
# The parent harness of parallel runs hands its children these.
SHARED_DIST_ENV = "VMTEST_DIST"
RESULT_ENV = "VMTEST_RESULT"
BOOT_TIMEOUT_S = 300
DEFAULT_RUN_TIMEOUT_S = 3600
GUEST_TREE = "/root/lsmtrace"
# What the guest gets of the tree: the tests, the deployment files and the
# benchmarks, never the lsmtrace package. lsmtrace runs in the guest only as
# installed by deploy/install.sh, from the wheel built on the host, into GUEST_VENV.
GUEST_COPY = ("tests/", "deploy/", "benchmarks/", "pyproject.toml")
GUEST_VENV = "/opt/lsmtrace"
GUEST_DIST = "/root/dist"
GUEST_PATH = (
    f"{GUEST_VENV}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
)
TREE_EXCLUDE_PREFIXES = (".venv/", ".cache/", ".git/")
TREE_EXCLUDE_PARTS = ("__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache")

HOST_TOOLS = {
    # executable -> Debian package providing it
    "mmdebstrap": "mmdebstrap",
    "mke2fs": "e2fsprogs",
    "qemu-system-x86_64": "qemu-system-x86",
    "qemu-img": "qemu-utils",
    "ssh": "openssh-client",
    "ssh-keygen": "openssh-client",
    "apt-get": "apt",
    "git": "git",
}
BUILD_TOOLS = ("mmdebstrap", "mke2fs", "ssh-keygen", "apt-get")
RUN_TOOLS = ("qemu-system-x86_64", "qemu-img", "ssh", "git")
# Needed by mmdebstrap/qemu but not found through an executable name.
HOST_EXTRA_PACKAGES = ("debian-archive-keyring", "seabios")

REPO = Path(__file__).resolve().parent.parent


class HarnessError(Exception):
    """A failure of the harness itself (not of the command run in the guest)."""


class Interrupted(BaseException):
    """Raised from the signal handlers; unwinds through every finally block."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def log(msg: str) -> None:
    print(f"vmtest: {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------
# Pure helpers (unit-tested in tests/unit/test_vmtest_harness.py)
# --------------------------------------------------------------------------------------


def recipe() -> dict[str, object]:
    """Everything that determines the image content."""
    build_code = "".join(
        inspect.getsource(fn)
        for fn in (
            build_image,
            _mmdebstrap_command,
            _resolve_kernel_packages,
            label_selinux,
            make_ext4,
        )
    )
    return {
        "suite": SUITE,
        "sources": APT_SOURCES,
        "packages": sorted(PACKAGES),
        "kernels": dict(sorted(KERNELS.items())),
        "flavour": KERNEL_FLAVOUR,
        "guest_setup": GUEST_SETUP,
        "image_free_mb": IMAGE_FREE_MB,
        "build_code": build_code,
    }


def cache_key(rec: dict[str, object] | None = None) -> str:
    data = json.dumps(rec if rec is not None else recipe(), sort_keys=True)
    return hashlib.sha256(data.encode()).hexdigest()[:16]


def cache_root(repo: Path = REPO) -> Path:
    return repo / ".cache" / "vm"


def select_tree_files(paths: Iterable[str]) -> list[str]:
    """Filter `git ls-files` output: drop .venv/.cache/.git and byte-code caches."""
    out: set[str] = set()
    for p in paths:
        p = p.strip()
        if not p or p.startswith("/") or ".." in Path(p).parts:
            continue
        if any(p == x.rstrip("/") or p.startswith(x) for x in TREE_EXCLUDE_PREFIXES):
            continue
        if any(part in TREE_EXCLUDE_PARTS for part in Path(p).parts):
            continue
        if p.endswith(".pyc"):
            continue
        out.add(p)
    return sorted(out)


def kernel_cmdline(extra: str = "", boot: str = DEFAULT_BOOT) -> str:
    base = KERNEL_CMDLINE.replace(f"lsm={LSM_LIST}", BOOTS[boot])
    return f"{base} {extra}".strip()


def selected_runs(kernel: str = "all", boot: str = "all") -> list[tuple[str, str]]:
    """The (kernel, boot) pairs `test` runs: TEST_RUNS narrowed by --kernel and
    --boot; both given: that pair, whether TEST_RUNS has it or not."""
    if kernel != "all" and boot != "all":
        return [(kernel, boot)]
    return [(k, b) for k, b in TEST_RUNS if kernel in ("all", k) and boot in ("all", b)]


def qemu_command(
    *,
    kernel: Path,
    initrd: Path,
    disk: Path,
    port: int,
    console_log: Path,
    pidfile: Path,
    append: str | None = None,
    memory_mb: int = QEMU_MEMORY_MB,
    smp: int = QEMU_SMP,
    cpu: str = QEMU_CPU,
) -> list[str]:
    return [
        "qemu-system-x86_64",
        "-name",
        "lsmtrace-vmtest",
        "-accel",
        QEMU_ACCEL,
        "-cpu",
        cpu,
        "-m",
        str(memory_mb),
        "-smp",
        str(smp),
        "-nodefaults",
        "-display",
        "none",
        "-no-reboot",
        "-kernel",
        str(kernel),
        "-initrd",
        str(initrd),
        "-append",
        append if append is not None else kernel_cmdline(),
        "-drive",
        f"file={disk},if=virtio,format=qcow2,cache=unsafe",
        "-netdev",
        f"user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:{port}-:22",
        "-device",
        "virtio-net-pci,netdev=n0,romfile=",
        "-device",
        "virtio-rng-pci",
        "-serial",
        f"file:{console_log}",
        "-monitor",
        "none",
        "-pidfile",
        str(pidfile),
    ]


def ssh_base(port: int, key: Path) -> list[str]:
    return [
        "ssh",
        "-p",
        str(port),
        "-i",
        str(key),
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "BatchMode=yes",
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "LogLevel=ERROR",
        "-o",
        "ConnectTimeout=10",
        "-o",
        "ServerAliveInterval=15",
        "-o",
        "ServerAliveCountMax=8",
        "root@127.0.0.1",
    ]


def guest_files(paths: Iterable[str]) -> list[str]:
    """The part of the tree the guest gets (GUEST_COPY): no source of lsmtrace."""
    return [p for p in paths if any(p == c or p.startswith(c) for c in GUEST_COPY)]


def guest_command(
    command: Sequence[str],
    kernel: str,
    tree: str = GUEST_TREE,
    boot: str = DEFAULT_BOOT,
) -> str:
    """The shell line run by sshd in the guest.

    The installed venv comes first on PATH (`python3`, `lsmtrace` are its own), no
    PYTHONPATH, and PYTHONSAFEPATH keeps the working directory off sys.path."""
    env = {
        "PATH": GUEST_PATH,
        "PYTHONSAFEPATH": "1",
        "LSMTRACE_IN_VM": "1",
        "LSMTRACE_VM_KERNEL": kernel,
        "LSMTRACE_VM_BOOT": boot,
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    # opt-in test scopes chosen on the host (tests/vm/test_workloads.py)
    for k in ("LSMTRACE_VM_WORKLOADS",):
        if os.environ.get(k):
            env[k] = os.environ[k]
    env_s = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
    cmd = " ".join(shlex.quote(c) for c in command)
    return f"cd {shlex.quote(tree)} && exec env {env_s} {cmd}"


def parse_depends(output: str) -> list[str]:
    """Package names from `apt-cache depends` output (Depends: lines only)."""
    names = []
    for line in output.splitlines():
        line = line.strip()
        if line.startswith("Depends:"):
            name = line.split(":", 1)[1].strip()
            if name and not name.startswith("<"):
                names.append(name)
    return names


# ssh's own exit code: the connection to the guest broke (its kernel crashed or hung)
SSH_LOST = 255
KERNEL_TROUBLE = ("Oops", "BUG:", "Kernel panic", "soft lockup", "hung_task", "RIP:",
                  "rcu: INFO", "general protection fault", "Call Trace")  # fmt: skip


def kernel_trouble(console: str, most: int = 40) -> list[str]:
    """The lines of a guest's console that tell a crash or a hang, first `most`."""
    lines = [ln.strip() for ln in console.splitlines()]
    return [ln for ln in lines if any(t in ln for t in KERNEL_TROUBLE)][:most]


def format_duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    return f"{int(seconds // 60)}m{seconds % 60:04.1f}s"


# --------------------------------------------------------------------------------------
# Process hygiene
# --------------------------------------------------------------------------------------

PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """preexec_fn: SIGKILL this child when the harness dies, even by SIGKILL."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _raise_interrupted(signum: int, _frame: object) -> None:
    raise Interrupted(signum)


@contextlib.contextmanager
def signals_raise() -> Iterator[None]:
    """Turn SIGINT/SIGTERM/SIGHUP into an Interrupted exception for the duration."""
    sigs = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    old = {s: signal.getsignal(s) for s in sigs}
    for s in sigs:
        signal.signal(s, _raise_interrupted)
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def _ignore_signals() -> contextlib.AbstractContextManager[None]:
    """Block further Ctrl-C while cleaning up so cleanup itself is not interrupted."""

    @contextlib.contextmanager
    def cm() -> Iterator[None]:
        sigs = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
        old = {s: signal.getsignal(s) for s in sigs}
        for s in sigs:
            signal.signal(s, signal.SIG_IGN)
        try:
            yield
        finally:
            for s, h in old.items():
                signal.signal(s, h)

    return cm()


def run_checked(cmd: Sequence[str], **kw: Any) -> subprocess.CompletedProcess[str]:
    kw.setdefault("text", True)
    proc: subprocess.CompletedProcess[str] = subprocess.run(
        list(cmd), preexec_fn=_die_with_parent, **kw
    )
    if proc.returncode != 0:
        raise HarnessError(f"command failed ({proc.returncode}): {shlex.join(cmd)}")
    return proc


# --------------------------------------------------------------------------------------
# Host packages
# --------------------------------------------------------------------------------------


def ensure_host_tools(tools: Sequence[str]) -> None:
    missing = sorted({HOST_TOOLS[t] for t in tools if shutil.which(t) is None})
    if (
        "mmdebstrap" in tools
        and not Path("/usr/share/keyrings/debian-archive-keyring.gpg").exists()
    ):
        missing.append("debian-archive-keyring")
    if (
        "qemu-system-x86_64" in tools
        and not Path("/usr/share/seabios/bios-256k.bin").exists()
    ):
        missing.append("seabios")
    if not missing:
        return
    if os.geteuid() != 0:
        raise HarnessError(
            f"missing host packages: {' '.join(missing)} (run as root to install them, or "
            f"apt-get install {' '.join(missing)})"
        )
    log(f"installing host packages: {' '.join(missing)}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    run_checked(["apt-get", "update", "-q"], env=env, stdout=subprocess.DEVNULL)
    # other apt users on the machine (a concurrent build, a developer): wait for the lock
    run_checked(
        [
            "apt-get",
            "-o",
            "DPkg::Lock::Timeout=600",
            "install",
            "-y",
            "-q",
            "--no-install-recommends",
            *missing,
        ],
        env=env,
        stdout=subprocess.DEVNULL,
    )


# --------------------------------------------------------------------------------------
# Image build
# --------------------------------------------------------------------------------------


@dataclass
class Image:
    dir: Path
    manifest: dict[str, Any] = field(default_factory=dict)

    @property
    def rootfs(self) -> Path:
        return self.dir / "rootfs.img"

    @property
    def key(self) -> Path:
        return self.dir / "id_ed25519"

    def kernel_files(self, kernel: str) -> tuple[Path, Path]:
        if kernel not in KERNELS:
            raise HarnessError(
                f"unknown kernel {kernel!r}; choose one of {', '.join(KERNELS)}"
            )
        return self.dir / f"vmlinuz-{kernel}", self.dir / f"initrd-{kernel}"

    @classmethod
    def load(cls, d: Path) -> Image | None:
        m = d / "manifest.json"
        if not m.is_file():
            return None
        img = cls(d, json.loads(m.read_text()))
        if not img.rootfs.is_file() or not img.key.is_file():
            return None
        return img


def _apt_private(workdir: Path) -> list[str]:
    """apt options for a private apt state (lists, cache, sources) under workdir."""
    for sub in ("lists/partial", "cache/archives/partial", "etc"):
        (workdir / sub).mkdir(parents=True, exist_ok=True)
    (workdir / "etc/sources.list").write_text(APT_SOURCES)
    return [
        "-o",
        f"Dir::Etc::SourceList={workdir}/etc/sources.list",
        "-o",
        "Dir::Etc::SourceParts=/dev/null",
        "-o",
        f"Dir::State::Lists={workdir}/lists",
        "-o",
        f"Dir::Cache={workdir}/cache",
        "-o",
        "Dir::State::status=/dev/null",
        "-o",
        "APT::Architecture=amd64",
    ]


def _resolve_kernel_packages(workdir: Path) -> dict[str, dict[str, str]]:
    """Versioned image/headers package and kernel release for each entry of KERNELS."""
    opts = _apt_private(workdir)
    run_checked(["apt-get", *opts, "update", "-q"], stdout=subprocess.DEVNULL)
    out: dict[str, dict[str, str]] = {}
    for name, suite in KERNELS.items():
        entry: dict[str, str] = {"suite": suite}
        for kind in ("image", "headers"):
            meta = f"linux-{kind}-{KERNEL_FLAVOUR}/{suite}"
            res = run_checked(
                ["apt-cache", *opts, "depends", meta], capture_output=True
            )
            deps = [
                d for d in parse_depends(res.stdout) if d.startswith(f"linux-{kind}-")
            ]
            if not deps:
                raise HarnessError(f"cannot resolve {meta}: {res.stdout!r}")
            entry[kind] = deps[0]
        entry["release"] = entry["image"].removeprefix("linux-image-")
        out[name] = entry
    return out


def _mmdebstrap_command(
    target: Path, sources: Path, hook: Path, kernel_pkgs: list[str]
) -> list[str]:
    return [
        "mmdebstrap",
        "--variant=minbase",
        "--mode=root",
        "--format=directory",
        '--aptopt=Acquire::Retries "3"',
        "--dpkgopt=path-exclude=/usr/share/doc/*",
        "--dpkgopt=path-exclude=/usr/share/man/*",
        "--dpkgopt=path-exclude=/usr/share/locale/*",
        "--dpkgopt=path-include=/usr/share/locale/locale.alias",
        # ~210 MB of time-zone history that only Prometheus' web UI could use
        "--dpkgopt=path-exclude=/usr/share/javascript/moment-timezone/data/*",
        f"--include={','.join(PACKAGES)}",
        f"--include={','.join(kernel_pkgs)}",
        f'--customize-hook=chroot "$1" /bin/sh -s < {shlex.quote(str(hook))}',
        SUITE,
        str(target),
        str(sources),
    ]


SELINUX_FILE_CONTEXTS = "/etc/selinux/default/contexts/files/file_contexts"


def label_selinux(root: Path) -> None:
    """Label the tree for the selinux boot, as `fixfiles relabel` would on a
    running system: the image's own setfiles and policy, in a chroot of the tree
    once mmdebstrap has exited. setfiles sets each label through
    /proc/self/fd, so the chroot gets a /proc of its own, in a private mount
    namespace (gone with it, never seen by the host); -e keeps the pseudo file
    systems' mount points out. mke2fs -d copies the security.selinux xattrs
    into the image; an AppArmor boot ignores them."""
    script = (
        "mount -t proc proc /proc && exec setfiles -F -e /proc -e /sys -e /dev "
        f"{SELINUX_FILE_CONTEXTS} /"
    )
    run_checked(
        [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "chroot",
            str(root),
            "/bin/sh",
            "-c",
            script,
        ],
        stdout=subprocess.DEVNULL,
        env=dict(os.environ, PATH="/usr/sbin:/usr/bin:/sbin:/bin"),
    )
    for path, want in (
        ("usr/bin/cat", ":bin_t:"),
        ("etc/shadow", ":shadow_t:"),
        ("", ":root_t:"),
    ):
        got = os.getxattr(root / path, "security.selinux").decode(errors="replace")
        if want not in got:
            raise HarnessError(f"setfiles left /{path} labelled {got!r}, not {want}")


def make_ext4(root: Path, image: Path) -> None:
    used = int(
        subprocess.run(
            ["du", "-sxm", str(root)], capture_output=True, text=True, check=True
        ).stdout.split()[0]
    )
    size_mb = int(used * 1.15) + IMAGE_FREE_MB
    run_checked(
        [
            "mke2fs",
            "-q",
            "-F",
            "-t",
            "ext4",
            "-L",
            "lsmtrace-root",
            "-m",
            "0",
            "-E",
            "lazy_itable_init=0,lazy_journal_init=0",
            "-d",
            str(root),
            str(image),
            f"{size_mb}M",
        ],
        stdout=subprocess.DEVNULL,
    )


def _mounts_under(path: Path) -> list[str]:
    prefix = str(path.resolve()) + "/"
    mounts = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mp = line.split()[4].replace("\\040", " ")
            if mp.startswith(prefix) or mp == prefix.rstrip("/"):
                mounts.append(mp)
    return mounts


def _remove_tree(path: Path) -> None:
    if not path.exists():
        return
    mounts = _mounts_under(path)
    if mounts:
        log(f"NOT removing {path}: still mounted under it: {mounts}")
        return
    subprocess.run(["rm", "-rf", "--one-file-system", str(path)], check=False)


def _prune_cache(root: Path, keep: str) -> None:
    """Remove stale temp builds (dead pids) and images of other recipes."""
    if not root.is_dir():
        return
    for d in root.iterdir():
        if not d.is_dir() or d.name in (keep, "runs"):
            continue
        if ".tmp-" in d.name:
            pid = d.name.rsplit("-", 1)[-1]
            if pid.isdigit() and Path(f"/proc/{pid}").exists():
                continue  # a concurrent build
        elif not (d / "manifest.json").exists():
            continue
        log(f"removing stale cache entry {d.name}")
        _remove_tree(d)


def build_image(force: bool = False, repo: Path = REPO) -> tuple[Image, float, bool]:
    """Return (image, seconds, built). Reuses the cached image unless force."""
    t0 = time.monotonic()
    key = cache_key()
    root = cache_root(repo)
    final = root / key
    if not force:
        img = Image.load(final)
        if img is not None:
            return img, time.monotonic() - t0, False
    if os.geteuid() != 0:
        raise HarnessError("building the image needs root (mmdebstrap --mode=root)")
    ensure_host_tools(BUILD_TOOLS)
    root.mkdir(parents=True, exist_ok=True)
    _prune_cache(root, keep=key)
    tmp = root / f"{key}.tmp-{os.getpid()}"
    _remove_tree(tmp)
    tmp.mkdir(parents=True)
    try:
        log(f"building image {key} in {tmp} (cold build, a few minutes)")
        run_checked(
            [
                "ssh-keygen",
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                "lsmtrace-vmtest",
                "-f",
                str(tmp / "id_ed25519"),
            ],
            stdout=subprocess.DEVNULL,
        )
        pubkey = (tmp / "id_ed25519.pub").read_text().strip()
        kernels = _resolve_kernel_packages(tmp / "apt")
        for name, k in kernels.items():
            log(f"kernel {name}: {k['image']} + {k['headers']} ({k['suite']})")
        sources = tmp / "sources.list"
        sources.write_text(APT_SOURCES)
        hook = tmp / "guest-setup.sh"
        hook.write_text(GUEST_SETUP.replace("@PUBKEY@", pubkey))
        target = tmp / "root"
        kernel_pkgs = [p for k in kernels.values() for p in (k["image"], k["headers"])]
        t_deb = time.monotonic()
        proc = subprocess.Popen(
            _mmdebstrap_command(target, sources, hook, kernel_pkgs),
            preexec_fn=_die_with_parent,
            stdout=subprocess.DEVNULL if not os.environ.get("VMTEST_VERBOSE") else None,
            stderr=open(tmp / "mmdebstrap.log", "w"),  # noqa: SIM115
        )
        try:
            rc = proc.wait()
        finally:
            if proc.poll() is None:  # interrupted: let mmdebstrap unmount and clean up
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        if rc != 0:
            tail = (
                (tmp / "mmdebstrap.log").read_text(errors="replace").splitlines()[-30:]
            )
            raise HarnessError("mmdebstrap failed:\n" + "\n".join(tail))
        log(f"mmdebstrap done in {format_duration(time.monotonic() - t_deb)}")
        for name, k in kernels.items():
            rel = k["release"]
            shutil.copyfile(target / "boot" / f"vmlinuz-{rel}", tmp / f"vmlinuz-{name}")
            shutil.copyfile(
                target / "boot" / f"initrd.img-{rel}", tmp / f"initrd-{name}"
            )
        t_fs = time.monotonic()
        label_selinux(target)
        log(f"SELinux labels done in {format_duration(time.monotonic() - t_fs)}")
        t_fs = time.monotonic()
        make_ext4(target, tmp / "rootfs.img.part")
        os.rename(tmp / "rootfs.img.part", tmp / "rootfs.img")
        log(f"ext4 image done in {format_duration(time.monotonic() - t_fs)}")
        _remove_tree(target)
        _remove_tree(tmp / "apt")
        manifest = {
            "key": key,
            "built": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "build_seconds": round(time.monotonic() - t0, 1),
            "kernels": kernels,
            "packages": sorted(PACKAGES),
            "lsm": LSM_LIST,
            "boots": BOOTS,
        }
        # The manifest is written last: its presence marks a complete image.
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        if final.exists():
            _remove_tree(final)
        os.rename(tmp, final)
    except BaseException:
        with _ignore_signals():
            _remove_tree(tmp)
        raise
    img = Image.load(final)
    assert img is not None
    return img, time.monotonic() - t0, True


# --------------------------------------------------------------------------------------
# Boot and run
# --------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def git_tree_files(repo: Path = REPO) -> list[str]:
    res = subprocess.run(
        [
            "git",
            "-C",
            str(repo),
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
        ],
        capture_output=True,
        check=True,
    )
    names = [n.decode(errors="surrogateescape") for n in res.stdout.split(b"\0") if n]
    return [
        n
        for n in select_tree_files(names)
        if (repo / n).is_file() or (repo / n).is_symlink()
    ]


def tree_tarball(repo: Path = REPO, names: Sequence[str] | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=1) as tar:
        for name in git_tree_files(repo) if names is None else names:
            tar.add(str(repo / name), arcname=name, recursive=False)
    return buf.getvalue()


@dataclass
class Dist:
    """What the guest installs: lsmtrace's wheel and a wheelhouse of its dependencies."""

    wheel: Path
    wheelhouse: Path


def build_dist(out: Path, repo: Path = REPO, via_sdist: bool = False) -> Dist:
    """Build the wheel of the working tree and download/build every dependency's wheel.

    via_sdist: build the sdist first and the wheel from it (`python -m build`, the
    PyPA `build` package), as a user installing from the sdist would.

    The wheel is built from a copy of the files git knows (tracked and untracked,
    not ignored), so the checkout gets no build/ or egg-info, and a file that only
    sits in the checkout cannot leak into it. Needs pip (python3-pip) and PyPI, or
    pip's cache; the guest then needs no index (deploy/install.sh --no-index)."""
    if importlib.util.find_spec("pip") is None:
        raise HarnessError(f"{sys.executable} has no pip: apt-get install python3-pip")
    ours = ("lsmtrace-", "wheelhouse", "src-")
    if out.is_dir() and any(not p.name.startswith(ours) for p in out.iterdir()):
        raise HarnessError(
            f"{out} holds other files than a previous dist: not emptying it"
        )
    _remove_tree(out)
    wheelhouse = out / "wheelhouse"
    wheelhouse.mkdir(parents=True)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    with tempfile.TemporaryDirectory(prefix="src-", dir=out) as src:
        for name in git_tree_files(repo):
            dst = Path(src, name)
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(repo / name, dst, follow_symlinks=False)
        if via_sdist:
            run_checked(
                [sys.executable, "-m", "build", "-o", str(out), src],
                stdout=subprocess.DEVNULL,
            )
        else:
            run_checked([*pip, "wheel", "--no-deps", "-w", str(out), src])
    wheels = sorted(out.glob("lsmtrace-*.whl"))
    if len(wheels) != 1:
        raise HarnessError(f"expected one lsmtrace wheel in {out}, found {wheels}")
    run_checked([*pip, "wheel", "-w", str(wheelhouse), str(wheels[0])])
    return Dist(wheels[0], wheelhouse)


def dist_tarball(dist: Dist) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.add(str(dist.wheel), arcname=dist.wheel.name)
        for w in sorted(dist.wheelhouse.iterdir()):
            tar.add(str(w), arcname=f"wheelhouse/{w.name}")
    return buf.getvalue()


def _prune_runs(runs: Path) -> None:
    """Remove run dirs (overlays) left by harnesses that were SIGKILLed."""
    for d in runs.iterdir():
        pid = d.name.split("-", 1)[0]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(d, ignore_errors=True)


class VM:
    """One qemu guest on a throw-away overlay. Use as a context manager."""

    def __init__(
        self, image: Image, kernel: str, repo: Path = REPO, boot: str = DEFAULT_BOOT
    ) -> None:
        self.image = image
        self.kernel = kernel
        self.boot = boot
        self.repo = repo
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.rundir = Path()
        # The live log is in the run dir (concurrent runs do not clash); stop() keeps a
        # copy of the last one as .cache/vm/console-<kernel>.log.
        self.console_log = Path()
        suffix = "" if boot == DEFAULT_BOOT else f"-{boot}"
        self.last_console_log = cache_root(repo) / f"console-{kernel}{suffix}.log"

    def __enter__(self) -> VM:
        runs = cache_root(self.repo) / "runs"
        runs.mkdir(parents=True, exist_ok=True)
        _prune_runs(runs)
        self.rundir = Path(tempfile.mkdtemp(prefix=f"{os.getpid()}-", dir=runs))
        self.console_log = self.rundir / "console.log"
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _start(self) -> None:
        vmlinuz, initrd = self.image.kernel_files(self.kernel)
        overlay = self.rundir / "overlay.qcow2"
        run_checked(
            [
                "qemu-img",
                "create",
                "-q",
                "-f",
                "qcow2",
                "-b",
                str(self.image.rootfs.resolve()),
                "-F",
                "raw",
                str(overlay),
            ],
        )
        self.port = free_port()
        cmd = qemu_command(
            kernel=vmlinuz,
            initrd=initrd,
            disk=overlay,
            port=self.port,
            console_log=self.console_log,
            pidfile=self.rundir / "qemu.pid",
            append=kernel_cmdline(os.environ.get("VMTEST_APPEND", ""), self.boot),
        )
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=open(self.rundir / "qemu.out", "wb"),  # noqa: SIM115
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,
            start_new_session=True,  # terminal Ctrl-C goes to the harness, which stops qemu
        )

    def stop(self) -> None:
        with _ignore_signals():
            p = self.proc
            if p is not None and p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
            # Belt and braces: the pid qemu itself wrote, if it is still a qemu.
            pidfile = self.rundir / "qemu.pid"
            with contextlib.suppress(OSError, ValueError):
                pid = int(pidfile.read_text().strip())
                if "qemu" in Path(f"/proc/{pid}/comm").read_text():
                    os.kill(pid, signal.SIGKILL)
            if self.rundir != Path() and self.rundir.exists():
                with contextlib.suppress(OSError):
                    shutil.copyfile(self.console_log, self.last_console_log)
                shutil.rmtree(self.rundir, ignore_errors=True)
            self.proc = None

    def console_tail(self, lines: int = 40) -> str:
        try:
            text = self.console_log.read_text(errors="replace")
        except OSError:
            return "(no console log)"
        return "\n".join(text.splitlines()[-lines:])

    def qemu_output(self) -> str:
        try:
            return (self.rundir / "qemu.out").read_text(errors="replace").strip()
        except OSError:
            return ""

    def ssh(self) -> list[str]:
        return ssh_base(self.port, self.image.key)

    def wait_ready(self, timeout: float = BOOT_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        assert self.proc is not None
        while True:
            if self.proc.poll() is not None:
                raise HarnessError(
                    f"qemu exited with {self.proc.returncode} before the guest was ready\n"
                    f"qemu: {self.qemu_output()}\n--- console tail ({self.last_console_log}) ---\n"
                    f"{self.console_tail()}"
                )
            if time.monotonic() > deadline:
                raise HarnessError(
                    f"guest not reachable over ssh after {timeout:.0f}s\n"
                    f"--- console tail ({self.last_console_log}) ---\n{self.console_tail()}"
                )
            try:
                r = subprocess.run(
                    [*self.ssh(), "true"],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    timeout=30,
                    preexec_fn=_die_with_parent,
                )
                if r.returncode == 0:
                    return
            except subprocess.TimeoutExpired:
                pass
            time.sleep(1)

    def _untar(self, data: bytes, where: str) -> None:
        remote = f"rm -rf {where} && mkdir -p {where} && tar -xzf - -C {where}"
        if not data.startswith(b"\x1f\x8b"):
            remote = remote.replace("tar -xzf", "tar -xf")
        subprocess.run(
            [*self.ssh(), remote],
            input=data,
            check=True,
            preexec_fn=_die_with_parent,
        )

    def copy_tree(self) -> int:
        """The tests and deployment files (GUEST_COPY), not the package."""
        data = tree_tarball(self.repo, guest_files(git_tree_files(self.repo)))
        self._untar(data, GUEST_TREE)
        return len(data)

    def install(self, dist: Dist) -> None:
        """deploy/install.sh WHEEL WHEELHOUSE in the guest: a venv at GUEST_VENV that
        sees Debian's bcc, dependencies from the wheelhouse only (no network)."""
        self._untar(dist_tarball(dist), GUEST_DIST)
        script = (
            f"PREFIX={GUEST_VENV} sh {GUEST_TREE}/deploy/install.sh "
            f"{GUEST_DIST}/{shlex.quote(dist.wheel.name)} {GUEST_DIST}/wheelhouse"
        )
        r = subprocess.run(
            [*self.ssh(), script],
            stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )
        if r.returncode != 0:
            raise HarnessError(
                f"installing lsmtrace in the guest failed ({r.returncode})"
            )

    def run(
        self, command: Sequence[str], timeout: float | None, tty: bool = False
    ) -> int:
        ssh = self.ssh()
        if tty:
            ssh = [ssh[0], "-t", *ssh[1:]]
        p = subprocess.Popen(
            [*ssh, guest_command(command, self.kernel, boot=self.boot)],
            stdin=None if tty else subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )
        try:
            return p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            log(f"command timed out after {timeout:.0f}s")
            return 124
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()


@dataclass
class RunResult:
    kernel: str
    rc: int
    timings: dict[str, float]
    boot: str = DEFAULT_BOOT


def existing_dist(d: Path) -> Dist:
    """A dist build_dist() wrote to d (the one wheel and its wheelhouse)."""
    wheels = sorted(d.glob("lsmtrace-*.whl"))
    if len(wheels) != 1 or not (d / "wheelhouse").is_dir():
        raise HarnessError(f"{d} is not a dist of build_dist (one wheel + wheelhouse/)")
    return Dist(wheels[0], d / "wheelhouse")


@contextlib.contextmanager
def host_dist(repo: Path = REPO) -> Iterator[Dist]:
    """build_dist() into a run dir of this harness (pruned if the harness dies), or
    the dist a parent harness built once for its parallel runs (VMTEST_DIST)."""
    shared = os.environ.get(SHARED_DIST_ENV)
    if shared:
        yield existing_dist(Path(shared))
        return
    runs = cache_root(repo) / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    d = Path(tempfile.mkdtemp(prefix=f"{os.getpid()}-dist-", dir=runs))
    try:
        t0 = time.monotonic()
        dist = build_dist(d / "dist", repo)
        n = len(list(dist.wheelhouse.iterdir()))
        log(
            f"built {dist.wheel.name} and a wheelhouse of {n} wheels in "
            f"{format_duration(time.monotonic() - t0)}"
        )
        yield dist
    finally:
        shutil.rmtree(d, ignore_errors=True)


def run_in_vm(
    command: Sequence[str],
    kernel: str,
    timeout: float | None,
    dist: Dist,
    tty: bool = False,
    boot: str = DEFAULT_BOOT,
) -> RunResult:
    timings: dict[str, float] = {}
    ensure_host_tools(RUN_TOOLS)
    img, t, built = build_image()
    timings["image build" if built else "image (cache hit)"] = t
    log(
        f"image {img.dir.name} {'built' if built else 'cached'} in {format_duration(t)}"
    )
    rel = img.manifest.get("kernels", {}).get(kernel, {}).get("release", "?")
    t0 = time.monotonic()
    with VM(img, kernel, boot=boot) as vm:
        log(
            f"booting kernel {kernel} ({rel}, {boot}), ssh on 127.0.0.1:{vm.port}, "
            f"console log {vm.last_console_log}"
        )
        vm.wait_ready()
        timings["boot-to-ready"] = time.monotonic() - t0
        log(f"guest ready in {format_duration(timings['boot-to-ready'])}")
        t1 = time.monotonic()
        size = vm.copy_tree()
        timings["copy"] = time.monotonic() - t1
        log(
            f"copied {', '.join(GUEST_COPY)} ({size // 1024} KiB) in "
            f"{format_duration(timings['copy'])}"
        )
        t1 = time.monotonic()
        vm.install(dist)
        timings["install"] = time.monotonic() - t1
        log(
            f"installed {dist.wheel.name} into {GUEST_VENV} in "
            f"{format_duration(timings['install'])}"
        )
        t2 = time.monotonic()
        log(f"running: {shlex.join(command)}")
        rc = vm.run(command, timeout, tty=tty)
        timings["command"] = time.monotonic() - t2
        log(f"command exited {rc} in {format_duration(timings['command'])}")
        if rc == SSH_LOST:
            trouble = kernel_trouble(vm.console_tail(lines=5000))
            log(
                "ssh lost the guest (exit 255); the guest kernel's console says:\n  "
                + ("\n  ".join(trouble) or "(nothing: no Oops, BUG, panic or stall)")
                + f"\nwhole console log: {vm.last_console_log}"
            )
    return RunResult(kernel, rc, timings, boot)


def _timings_line(r: RunResult) -> str:
    return ", ".join(f"{k} {format_duration(v)}" for k, v in r.timings.items())


# --------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------


def cmd_build(args: argparse.Namespace) -> int:
    img, t, built = build_image(force=args.force)
    state = "built" if built else "cache hit"
    log(f"image {img.dir} ({state}) in {format_duration(t)}")
    for name, k in img.manifest.get("kernels", {}).items():
        log(f"  kernel {name}: {k['release']}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        raise HarnessError("run: give a command after --, e.g. run -- uname -a")
    with host_dist() as dist:
        r = run_in_vm(command, args.kernel, args.timeout, dist, boot=args.boot)
    log(f"timings [{r.kernel} {r.boot}]: {_timings_line(r)}")
    return r.rc


def _test_kernel(
    kernel: str, extra: list[str], timeout: float, dist: Dist, boot: str = DEFAULT_BOOT
) -> RunResult:
    log(f"=== VM tests on kernel {kernel}, {boot} boot ===")
    # the venv's interpreter: pytest comes from Debian (system site packages),
    # lsmtrace from the wheel installed into the venv. By its name python3: the
    # tests' children run sys.executable and expect the comm "python3".
    cmd = [
        f"{GUEST_VENV}/bin/python3",
        "-m",
        "pytest",
        "-v",
        "-rs",
        "-p",
        "no:cacheprovider",
        "tests/vm",
        *extra,
    ]
    try:
        r = run_in_vm(cmd, kernel, timeout, dist, boot=boot)
    except HarnessError as e:
        log(f"error on kernel {kernel} ({boot}): {e}")
        r = RunResult(kernel, 2, {"harness error": 0.0}, boot)
    result = os.environ.get(RESULT_ENV)
    if result:  # for the parent harness of parallel runs
        Path(result).write_text(json.dumps({"rc": r.rc, "timings": r.timings}))
    return r


def cmd_dist(args: argparse.Namespace) -> int:
    out = Path(args.out).resolve()
    t0 = time.monotonic()
    dist = build_dist(out, via_sdist=args.sdist)
    log(
        f"{dist.wheel} and {dist.wheelhouse}/ ({len(list(dist.wheelhouse.iterdir()))} "
        f"wheels) in {format_duration(time.monotonic() - t0)}"
    )
    return 0


def cmd_test(args: argparse.Namespace) -> int:
    if os.environ.get("LSMTRACE_SKIP_VM") == "1":
        print("VM stage skipped (LSMTRACE_SKIP_VM=1)")
        return 0
    extra = list(args.pytest_args)
    if extra and extra[0] == "--":
        extra = extra[1:]
    runs = selected_runs(args.kernel, args.boot)
    if not runs:
        raise HarnessError(f"no test run for --kernel {args.kernel} --boot {args.boot}")
    t0 = time.monotonic()
    jobs = max(1, min(default_jobs() if args.jobs is None else args.jobs, len(runs)))
    with host_dist() as dist:
        if jobs == 1:
            results = [
                _test_kernel(k, extra, args.timeout, dist, boot=b) for k, b in runs
            ]
        else:
            results = _test_parallel(runs, jobs, extra, args.timeout, dist)
    total = time.monotonic() - t0
    print("\nVM test summary:", file=sys.stderr)
    for r in results:
        print(
            f"  kernel {r.kernel:5} {r.boot:8} {run_status(r.rc):16} {_timings_line(r)}",
            file=sys.stderr,
        )
    print(f"  total {format_duration(total)}", file=sys.stderr, flush=True)
    return 0 if all(run_ok(r.rc) for r in results) else 1


def _test_parallel(
    runs: list[tuple[str, str]], jobs: int, extra: list[str], timeout: float, dist: Dist
) -> list[RunResult]:
    """Each run in a child harness of its own (`test --kernel K --boot B --jobs 1`),
    at most `jobs` at a time, in the order of `runs` (longest first). The image and
    the dist are built once here; a child's output goes to a log printed whole when it
    ends, so the runs' lines do not interleave. A guest runs single-threaded TCG
    (QEMU_ACCEL), so one run keeps about one host core busy."""
    build_image()
    pending = list(runs)
    running: dict[subprocess.Popen[bytes], tuple[str, str, Path, Path, float]] = {}
    done: dict[tuple[str, str], RunResult] = {}
    logs = Path(
        tempfile.mkdtemp(prefix=f"{os.getpid()}-logs-", dir=dist.wheel.parent.parent)
    )
    env = {**os.environ, SHARED_DIST_ENV: str(dist.wheel.parent)}
    try:
        while pending or running:
            while pending and len(running) < jobs:
                k, b = pending.pop(0)
                out, res = logs / f"{k}-{b}.log", logs / f"{k}-{b}.json"
                cmd = [
                    sys.executable, str(Path(__file__).resolve()), "test",
                    "--kernel", k, "--boot", b, "--jobs", "1",
                    "--timeout", str(timeout), *extra,
                ]  # fmt: skip
                with out.open("wb") as f:
                    p = subprocess.Popen(
                        cmd,
                        stdin=subprocess.DEVNULL,
                        stdout=f,
                        stderr=subprocess.STDOUT,
                        env={**env, RESULT_ENV: str(res)},
                        preexec_fn=_die_with_parent,
                    )
                running[p] = (k, b, out, res, time.monotonic())
                log(f"started kernel {k} {b} (log {out})")
            time.sleep(1)
            for p in [p for p in running if p.poll() is not None]:
                k, b, out, res, t = running.pop(p)
                done[(k, b)] = _child_result(
                    k, b, p.returncode, res, time.monotonic() - t
                )
                with _ignore_signals():
                    log(
                        f"=== kernel {k} {b}: {run_status(done[(k, b)].rc)}, its output: ==="
                    )
                    sys.stderr.buffer.write(out.read_bytes())
                    sys.stderr.flush()
    finally:
        for p in running:
            p.terminate()  # the child stops its guest (signals_raise) and exits
        for p in running:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
    return [done[r] for r in runs]


def _child_result(kernel: str, boot: str, rc: int, res: Path, wall: float) -> RunResult:
    """What a child wrote (its run's pytest/ssh exit code and timings), or, if it
    died first, its own exit code and the wall time."""
    try:
        written = json.loads(res.read_text())
        return RunResult(kernel, int(written["rc"]), dict(written["timings"]), boot)
    except (OSError, ValueError, KeyError, TypeError):
        return RunResult(kernel, rc, {"harness (no result file)": wall}, boot)


# pytest's exit code when every test was deselected: a boot whose tests a -k
# expression left out (tests/vm/conftest.py selects the tests of each boot)
PYTEST_NO_TESTS = 5


def run_ok(rc: int) -> bool:
    return rc in (0, PYTEST_NO_TESTS)


def run_status(rc: int) -> str:
    if rc == PYTEST_NO_TESTS:
        return "NO TESTS"
    return "PASS" if rc == 0 else f"FAIL (exit {rc})"


def cmd_shell(args: argparse.Namespace) -> int:
    with host_dist() as dist:
        r = run_in_vm(["bash", "-l"], args.kernel, None, dist, tty=True, boot=args.boot)
    return r.rc


def default_jobs() -> int:
    """VMTEST_JOBS, else the host's CPUs (a single-threaded guest keeps one busy)."""
    env = os.environ.get("VMTEST_JOBS", "")
    if env:
        if not env.isdigit() or int(env) < 1:
            raise HarnessError(f"VMTEST_JOBS={env!r}: give a number of runs, 1 or more")
        return int(env)
    return os.cpu_count() or 1


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="vmtest.py",
        description="Build and boot the lsmtrace VM test target (qemu TCG, Debian guest).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            "examples:\n"
            "  vmtest.py build                      # build or reuse the cached image\n"
            "  vmtest.py run --kernel 6.1 -- uname -r\n"
            "  vmtest.py test                       # tests/vm on every kernel\n"
            "  vmtest.py test --kernel 6.12 -k lsm  # extra args go to pytest\n"
            "  vmtest.py test --boot selinux        # SELinux enforcing (6.12)\n"
            "  vmtest.py dist --out /tmp/d          # the wheel + wheelhouse the guest gets\n"
            "  LSMTRACE_SKIP_VM=1 vmtest.py test    # skip the VM stage\n"
        ),
    )
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="build the guest image (cached)")
    b.add_argument("--force", action="store_true", help="rebuild even if cached")
    b.set_defaults(func=cmd_build)
    r = sub.add_parser("run", help="boot, copy the tree, run a command as root")
    r.add_argument("--kernel", choices=list(KERNELS), default=DEFAULT_KERNEL)
    r.add_argument(
        "--boot",
        choices=list(BOOTS),
        default=DEFAULT_BOOT,
        help="boot configuration: the major LSM (default apparmor)",
    )
    r.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_RUN_TIMEOUT_S,
        help="command timeout in seconds (exit 124)",
    )
    r.add_argument("command", nargs=argparse.REMAINDER)
    r.set_defaults(func=cmd_run)
    t = sub.add_parser("test", help="run pytest tests/vm in the guest")
    t.add_argument("--kernel", choices=[*KERNELS, "all"], default="all")
    t.add_argument(
        "--boot",
        choices=[*BOOTS, "all"],
        default="all",
        help="boot configuration (default: every run of TEST_RUNS: "
        "6.1 and 6.12 apparmor, 6.12 selinux)",
    )
    t.add_argument("--timeout", type=float, default=DEFAULT_RUN_TIMEOUT_S)
    t.add_argument(
        "--jobs",
        type=int,
        default=None,
        help="runs booted at once, each in a child harness (default: the host's "
        "CPUs, VMTEST_JOBS; each guest keeps about one host core busy)",
    )
    t.set_defaults(func=cmd_test, pytest_args=[])
    d = sub.add_parser(
        "dist", help="build the wheel and a wheelhouse of its dependencies (no VM)"
    )
    d.add_argument(
        "--out",
        default=str(REPO / ".cache" / "dist"),
        help="output directory, emptied first (default .cache/dist)",
    )
    d.add_argument(
        "--sdist",
        action="store_true",
        help="build the sdist, then the wheel from it (needs `build`)",
    )
    d.set_defaults(func=cmd_dist)
    s = sub.add_parser("shell", help="boot and open an interactive root shell (ssh)")
    s.add_argument("--kernel", choices=list(KERNELS), default=DEFAULT_KERNEL)
    s.add_argument("--boot", choices=list(BOOTS), default=DEFAULT_BOOT)
    s.set_defaults(func=cmd_shell)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        if args.cmd != "test":
            parser.error(f"unrecognized arguments: {' '.join(unknown)}")
        args.pytest_args = unknown  # everything vmtest does not know goes to pytest
    try:
        with signals_raise():
            return int(args.func(args))
    except Interrupted as e:
        log(f"interrupted by {e}; stopped and cleaned up")
        return 128 + e.signum
    except HarnessError as e:
        log(f"error: {e}")
        return 2
    except subprocess.CalledProcessError as e:
        log(f"error: {e}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
