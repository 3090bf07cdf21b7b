"""The hook rungs' decoders, verified and run on this host.

fexit and kprobe programs cannot load here (EPERM, no kprobes), but the C that
decodes each hook's object can: every decoder of bpf/hooks.bpf.c is loaded in a
tracepoint program, so the kernel's verifier checks it, and the FILE decoder is
run for real on a process's working directory (the PATH decoder: the path
walked up its dentries and across mounts).
The VM stage (tests/vm) runs the same code on the real hooks.
"""

from __future__ import annotations

import ctypes as ct
import os
from pathlib import Path
from typing import Any

import pytest

from lsmtrace import abi, bpfgen
from lsmtrace.events import IdNames, decode

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="needs root: loads BPF programs"
)

# enum lsmt_hdec of bpf/lsmtrace.h (tests/unit/test_abi.py checks the mirror)
DECODERS = [d.name for d in abi.HookDecoder]

# x0..x3: the task's `struct path pwd` (pointer), whatever each decoder expects:
# the verifier sees only probe reads, so any kernel pointer exercises the code.
CHECK = """
int chk_{i}(void *ctx)
{{
    struct task_struct *t = (struct task_struct *)bpf_get_current_task();
    struct fs_struct *fs = NULL;
    LSMT_READ(fs, t->fs);
    u64 p = fs ? (u64)&fs->pwd : 0;
    return lsmt_hook_exit(ctx, 7, LSMT_HD_{dec}, 0, p, 0, p, 0, -13);
}}
"""


@pytest.fixture(scope="module")
def bpf() -> Any:
    from lsmtrace import kheaders, probe
    from lsmtrace.loader import import_bcc

    probe.mount_pseudo_filesystems()
    if not probe.probe_tracepoint().ok:
        pytest.skip("tracepoint programs do not load here")
    bcc = import_bcc()
    tree, kind = kheaders.header_tree()
    if kind == "btf":
        os.environ["BCC_KERNEL_SOURCE"] = str(tree)
    gen = "".join(CHECK.format(i=i, dec=d) for i, d in enumerate(DECODERS))
    text = bpfgen.bpf_source("syscalls.bpf.c", "hooks.bpf.c", generated=gen)

    class Quiet(bcc.BPF):  # type: ignore[misc]
        def _trace_autoload(self) -> None:
            return None

    b = Quiet(
        text=text,
        cflags=[
            f"-I{abi.BPF_DIR}",
            "-DLSMT_RUNG=1",
            "-DLSMT_WITH_SCHED=1",
            *bpfgen.struct_offsets(),
        ],
    )
    yield b
    b.cleanup()


@pytest.mark.parametrize("dec", DECODERS)
def test_decoder_passes_the_verifier(bpf: Any, dec: str) -> None:
    i = DECODERS.index(dec)
    bpf.load_func(f"chk_{i}".encode(), bpf.TRACEPOINT)


def test_path_decoder_walks_the_real_path(bpf: Any, tmp_path: Path) -> None:
    from lsmtrace.ringbuf import RingBuffer

    i = DECODERS.index("PATH")
    where = tmp_path / "deep" / "er"
    where.mkdir(parents=True)
    cfg = abi.Config()
    cfg.flags = int(abi.CfgFlag.STREAM)
    table = bpf["settings"]
    table[ct.c_int(0)] = ct.cast(ct.pointer(cfg), ct.POINTER(table.Leaf)).contents
    bpf.attach_tracepoint(tp=b"syscalls:sys_exit_getppid", fn_name=f"chk_{i}".encode())
    pid = os.fork()
    if pid == 0:
        os.chdir(where)
        os.getppid()
        os._exit(0)
    os.waitpid(pid, 0)
    bpf.detach_tracepoint(tp=b"syscalls:sys_exit_getppid")
    ring = RingBuffer(bpf["events"].map_fd, 512 * 4096, abi.EVENT_SIZE)
    evs = []
    ring.consume(
        lambda c, offs: evs.extend(
            decode(c, IdNames({7: "x"}, {}), {}, o) for o in offs
        )
    )
    ring.close()
    mine = [e for e in evs if e["tgid"] == pid]
    assert mine, evs
    want = os.path.realpath(where)
    assert mine[0]["object"].get("path") == want, mine[0]["object"]
    assert mine[0]["object"]["ino"] == Path(want).stat().st_ino
    assert mine[0]["lsm"] == "unattributed"  # -13 from no traced implementation
