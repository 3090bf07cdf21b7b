"""Compile with bcc without its scan of /proc/kallsyms (0.15-0.3 s per start).

bcc 0.26 reads the whole of /proc/kallsyms (120 000+ lines, into a C++ hash
map) during every compile, only to learn whether the kernel has
`bpf_probe_read_kernel` and `bpf_probe_read_user` (b_frontend_action.cc:
check_bpf_probe_read_kernel/user; the path is fixed and no option skips it).
On this project's hosts that was a quarter of the tracepoint rung's compile
(docs/benchmarks.md, "Start and stop").

`stand_in_kallsyms(lines)` gives bcc the same answer for less: for the
duration of the compile this process enters a private mount namespace of its
own (propagation private: nothing is seen outside it) in which /proc/kallsyms
is a bind mount of a file holding just the lines bcc looks for, copied from
the real file, and then returns to the namespace it came from, its working
directory restored. Nothing else runs in that window: the compile reads only
the header tree and our program text, which the namespace shares.

It steps aside (the compile reads the real file, as bcc alone would) when the
process has threads (the kernel refuses unshare(CLONE_NEWNS) to a process
whose threads share its filesystem context), when it is chrooted (returning
would leave the chroot), without the privilege to unshare or mount (a
container without CAP_SYS_ADMIN), or when LSMTRACE_BCC_KALLSYMS=real.
"""

from __future__ import annotations

import contextlib
import ctypes as ct
import logging
import os
import tempfile
from collections.abc import Iterator, Sequence

log = logging.getLogger(__name__)

KALLSYMS = "/proc/kallsyms"
# What bcc 0.26 resolves in kallsyms while it compiles.
BCC_SYMBOLS = ("bpf_probe_read_kernel", "bpf_probe_read_user")

CLONE_NEWNS = 0x00020000
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
MNT_DETACH = 2


def bcc_lines(text: str) -> list[str]:
    """The lines of kallsyms `text` that bcc looks up, as they are."""
    want = set(BCC_SYMBOLS)
    out = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[2] in want:
            out.append(line)
    return out


def _libc() -> ct.CDLL:
    libc = ct.CDLL(None, use_errno=True)
    libc.mount.argtypes = [
        ct.c_char_p,
        ct.c_char_p,
        ct.c_char_p,
        ct.c_ulong,
        ct.c_void_p,
    ]
    libc.umount2.argtypes = [ct.c_char_p, ct.c_int]
    return libc


def _why_not() -> str | None:
    if os.environ.get("LSMTRACE_BCC_KALLSYMS") == "real":
        return "LSMTRACE_BCC_KALLSYMS=real"
    try:
        if os.readlink("/proc/self/root") != "/":
            return "chrooted"
        if len(os.listdir("/proc/self/task")) != 1:
            return "the process has threads"
    except OSError as e:
        return str(e)
    return None


@contextlib.contextmanager
def stand_in_kallsyms(lines: Sequence[str]) -> Iterator[bool]:
    """Within: /proc/kallsyms reads as `lines` (True) for this process only,
    or nothing changed (False: no lines, or see the module's docstring)."""
    why = "no lines" if not lines else _why_not()
    if why is not None:
        log.debug("bcc reads the real %s: %s", KALLSYMS, why)
        yield False
        return
    libc = _libc()
    with contextlib.ExitStack() as stack:
        try:
            f = stack.enter_context(
                tempfile.NamedTemporaryFile(
                    "w", prefix="lsmtrace-kallsyms-", suffix=".txt"
                )
            )
            f.write("".join(f"{ln}\n" for ln in lines))
            f.flush()
            own = os.open("/proc/self/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
            stack.callback(os.close, own)
            cwd = os.open(".", os.O_PATH | os.O_CLOEXEC | os.O_DIRECTORY)
            stack.callback(os.close, cwd)
            if libc.unshare(CLONE_NEWNS) != 0:
                raise OSError(ct.get_errno(), os.strerror(ct.get_errno()))
        except OSError as e:  # no temporary file, no working directory...
            log.debug("bcc reads the real %s: %s", KALLSYMS, e)
            yield False
            return
        try:
            ok = (
                libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None) == 0
                and libc.mount(f.name.encode(), KALLSYMS.encode(), None, MS_BIND, None)
                == 0
            )
            if not ok:
                log.debug(
                    "bcc reads the real %s: mount: %s",
                    KALLSYMS,
                    os.strerror(ct.get_errno()),
                )
            else:
                log.debug("bcc reads a stand-in %s (%s)", KALLSYMS, ", ".join(lines))
            yield ok
        finally:
            if libc.setns(own, CLONE_NEWNS) != 0:
                # cannot happen to a single-threaded root process; should it,
                # at least the real kallsyms is visible again
                err = os.strerror(ct.get_errno())
                libc.umount2(KALLSYMS.encode(), MNT_DETACH)
                log.warning(
                    "could not return to the mount namespace lsmtrace started in: %s",
                    err,
                )
            os.fchdir(cwd)
