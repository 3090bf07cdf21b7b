"""Smoke tests that prove the VM target: BPF-LSM active, fexit, BPF-LSM deny, kretprobe.

They run inside the guest (vagrant/vmtest.py test) as root with the Debian kernel's real
headers, so bcc compiles the usual way. Each BPF() compile takes ~10-20 s under qemu TCG,
so every test loads exactly one program.
"""

from __future__ import annotations

import ctypes
import errno
import os
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.vm, pytest.mark.usefixtures("in_vm", "require_root")]

N_OPENS = 25


def _open_close(path: Path, n: int = N_OPENS) -> None:
    for _ in range(n):
        os.close(os.open(path, os.O_RDONLY))


def _u64(table: Any, key: int) -> int:
    try:
        return int(table[table.Key(key)].value)
    except KeyError:
        return 0


def test_bpf_lsm_active(active_lsms: list[str]) -> None:
    assert "bpf" in active_lsms, (
        f"'bpf' missing from /sys/kernel/security/lsm: {','.join(active_lsms)}; "
        "the harness boots with lsm=...,bpf"
    )


def test_kretfunc_security_file_open_counts_opens(
    bcc_module: Any, bpf_cleanup: list[Any], tmp_path: Path
) -> None:
    if not bcc_module.BPF.support_kfunc():
        pytest.fail("bcc reports no fentry/fexit support on this kernel")
    text = r"""
    BPF_HASH(opens, u32, u64);
    KRETFUNC_PROBE(security_file_open, struct file *file, int ret)
    {
        u32 tgid = bpf_get_current_pid_tgid() >> 32;
        if (tgid != TARGET_TGID)
            return 0;
        opens.increment(tgid);
        return 0;
    }
    """
    b = bcc_module.BPF(text=text, cflags=[f"-DTARGET_TGID={os.getpid()}"])
    bpf_cleanup.append(b)
    target = tmp_path / "fexit-target"
    target.write_text("x")
    before = _u64(b["opens"], os.getpid())
    _open_close(target)
    after = _u64(b["opens"], os.getpid())
    assert after - before >= N_OPENS


def test_lsm_probe_file_open_denies_then_detach_restores(
    bcc_module: Any, bpf_cleanup: list[Any], tmp_path: Path
) -> None:
    if not bcc_module.BPF.support_lsm():
        pytest.fail("bcc reports no BPF-LSM support on this kernel")
    marker = tmp_path / "denied-marker"
    marker.write_text("secret")
    other = tmp_path / "allowed"
    other.write_text("fine")
    text = r"""
    #include <linux/fs.h>
    #include <linux/errno.h>
    BPF_ARRAY(denials, u64, 1);
    LSM_PROBE(file_open, struct file *file)
    {
        if (file->f_inode->i_ino != TARGET_INO)
            return 0;
        if ((bpf_get_current_pid_tgid() >> 32) != TARGET_TGID)
            return 0;
        u32 zero = 0;
        denials.increment(zero);
        return -EPERM;
    }
    """
    cflags = [f"-DTARGET_INO={marker.stat().st_ino}ULL", f"-DTARGET_TGID={os.getpid()}"]
    b = bcc_module.BPF(text=text, cflags=cflags)
    bpf_cleanup.append(b)

    with pytest.raises(PermissionError) as exc:
        marker.open().close()
    assert exc.value.errno == errno.EPERM
    assert other.read_text() == "fine"  # only the marker inode is denied
    assert _u64(b["denials"], 0) >= 1

    b.cleanup()
    bpf_cleanup.remove(b)
    assert marker.read_text() == "secret"  # detaching restores access


def test_kretprobe_security_file_open_attaches(
    bcc_module: Any, bpf_cleanup: list[Any], tmp_path: Path
) -> None:
    text = r"""
    BPF_HASH(calls, u32, u64);
    int ret_security_file_open(struct pt_regs *ctx)
    {
        u32 tgid = bpf_get_current_pid_tgid() >> 32;
        if (tgid != TARGET_TGID)
            return 0;
        calls.increment(tgid);
        return 0;
    }
    """
    b = bcc_module.BPF(text=text, cflags=[f"-DTARGET_TGID={os.getpid()}"])
    bpf_cleanup.append(b)
    b.attach_kretprobe(event="security_file_open", fn_name="ret_security_file_open")
    assert b.num_open_kprobes() >= 1
    target = tmp_path / "kretprobe-target"
    target.write_text("x")
    _open_close(target)
    assert _u64(b["calls"], os.getpid()) >= N_OPENS


def test_fexit_sees_bpf_lsm_denial(
    bcc_module: Any, bpf_cleanup: list[Any], tmp_path: Path
) -> None:
    """The attribution rung: fexit on security_file_open sees the -EPERM a BPF LSM made."""
    marker = tmp_path / "attributed-marker"
    marker.write_text("x")
    text = r"""
    #include <linux/fs.h>
    #include <linux/errno.h>
    BPF_ARRAY(last_ret, s64, 1);
    LSM_PROBE(file_open, struct file *file)
    {
        if (file->f_inode->i_ino == TARGET_INO &&
            (bpf_get_current_pid_tgid() >> 32) == TARGET_TGID)
            return -EPERM;
        return 0;
    }
    KRETFUNC_PROBE(security_file_open, struct file *file, int ret)
    {
        if (file->f_inode->i_ino != TARGET_INO ||
            (bpf_get_current_pid_tgid() >> 32) != TARGET_TGID)
            return 0;
        u32 zero = 0;
        s64 r = ret;
        last_ret.update(&zero, &r);
        return 0;
    }
    """
    cflags = [f"-DTARGET_INO={marker.stat().st_ino}ULL", f"-DTARGET_TGID={os.getpid()}"]
    b = bcc_module.BPF(text=text, cflags=cflags)
    bpf_cleanup.append(b)
    with pytest.raises(PermissionError):
        marker.open().close()
    value = b["last_ret"][ctypes.c_int(0)].value
    assert value == -errno.EPERM
