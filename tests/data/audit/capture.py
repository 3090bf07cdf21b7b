"""Capture real audit records of real denials on this host (root; regenerates data).

    python3 tests/data/audit/capture.py OUTDIR [--pre-pid PID --pre-fifo FIFO]

Turns audit on if it is off (and back off at the end), joins the read-log
multicast group, then:
  - a Landlock child (handled: read_file, no rule) opens files with hostile
    names: spaces, quotes, a newline, an escape sequence, invalid UTF-8, a name
    made only of hex digits, and one that does not exist (ENOENT: no record);
  - a seccomp child (SECCOMP_FILTER_FLAG_LOG, openat -> ERRNO(EPERM)) opens a file;
  - optionally a process started before audit was ever enabled since boot
    (--pre-pid/--pre-fifo: `landlock_child.py --fifo FIFO`, started first): it
    has no syscall audit context, so its LSM records come alone, as under an
    `-a never,task` rule.
Writes OUTDIR/<name>.records (one "TYPE TEXT" line per netlink message, in
arrival order) and OUTDIR/<name>.json (what each child did: pids, paths, errnos).
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from lsmtrace import auditnl

HOSTILE = [
    b"plain.txt",
    b"with space",
    b'quo"te',
    b"new\nline",
    b"esc\x1b[31mred",
    b"bad\xff\xfeutf8",
    b"abcdef",
    b"\xc3\xa9t\xc3\xa9",
]

LANDLOCK_CHILD = Path(__file__).with_name("landlock_child.py")

# openat (x86_64 257) -> SECCOMP_RET_ERRNO | EPERM, everything else allowed;
# SECCOMP_FILTER_FLAG_LOG makes the kernel log the ERRNO action.
SECCOMP_CHILD = r"""
import ctypes, json, os, struct, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
def ins(code, jt, jf, k):
    return struct.pack("=HBBI", code, jt, jf, k)
LD_W_ABS, JEQ, RET = 0x20, 0x15, 0x06
prog = b"".join([
    ins(LD_W_ABS, 0, 0, 4),               # arch
    ins(JEQ, 1, 0, 0xC000003E),           # AUDIT_ARCH_X86_64
    ins(RET, 0, 0, 0x7FFF0000),           # other arch: allow
    ins(LD_W_ABS, 0, 0, 0),               # nr
    ins(JEQ, 0, 1, 257),                  # openat?
    ins(RET, 0, 0, 0x00050000 | 1),       # ERRNO(EPERM)
    ins(RET, 0, 0, 0x7FFF0000),           # allow
])
buf = ctypes.create_string_buffer(prog, len(prog))
fprog = struct.pack("=HxxxxxxQ", len(prog) // 8, ctypes.addressof(buf))
fbuf = ctypes.create_string_buffer(fprog, len(fprog))
assert libc.prctl(38, 1, 0, 0, 0) == 0
# seccomp(SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_LOG, &prog)
r = libc.syscall(317, ctypes.c_uint(1), ctypes.c_uint(2), fbuf)
assert r == 0, ctypes.get_errno()
path = bytes.fromhex(sys.argv[1])
try:
    os.close(os.open(path, os.O_RDONLY))
    e = None
except OSError as ex:
    e = ex.errno
print(json.dumps({"pid": os.getpid(), "errnos": [e]}), flush=True)
"""


def run_child(src: str | Path, args: list[str]) -> dict[str, object]:
    cmd = [str(src)] if isinstance(src, Path) else ["-c", src]
    p = subprocess.run([sys.executable, *cmd, *args], capture_output=True, check=True)
    return dict(json.loads(p.stdout))


def drain(reader: auditnl.AuditReader, seconds: float) -> list[tuple[int, bytes]]:
    out: list[tuple[int, bytes]] = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        select.select([reader], [], [], 0.05)
        out += reader.read()
    return out


def main() -> int:
    outdir = Path(sys.argv[1])
    pre_pid = pre_fifo = None
    if "--pre-pid" in sys.argv:
        pre_pid = int(sys.argv[sys.argv.index("--pre-pid") + 1])
        pre_fifo = sys.argv[sys.argv.index("--pre-fifo") + 1]
    outdir.mkdir(parents=True, exist_ok=True)
    work = Path(f"/tmp/lsmtrace-audit-capture-{os.getpid()}")
    work.mkdir()
    names = [work / os.fsdecode(n) for n in HOSTILE]
    for n in names:
        n.write_bytes(b"secret\n")
    missing = work / "missing"
    before = auditnl.get_status().enabled
    if before == 0:
        auditnl.set_enabled(1)
    try:
        with auditnl.AuditReader() as reader:
            drain(reader, 0.2)
            ll = run_child(
                LANDLOCK_CHILD, [os.fsencode(p).hex() for p in [*names, missing]]
            )
            recs = drain(reader, 1.0)
            save(
                outdir,
                "landlock_context",
                recs,
                {**ll, "paths": [os.fsencode(p).hex() for p in [*names, missing]]},
            )
            sc = run_child(SECCOMP_CHILD, [os.fsencode(names[0]).hex()])
            recs = drain(reader, 1.0)
            save(
                outdir,
                "seccomp_context",
                recs,
                {**sc, "paths": [os.fsencode(names[0]).hex()]},
            )
            if pre_pid is not None and pre_fifo is not None:
                with open(pre_fifo, "w") as f:
                    f.write(" ".join(os.fsencode(p).hex() for p in names[:3]))
                recs = drain(reader, 1.5)
                save(
                    outdir,
                    "landlock_alone",
                    recs,
                    {
                        "pid": pre_pid,
                        "paths": [os.fsencode(p).hex() for p in names[:3]],
                    },
                )
    finally:
        if before == 0:
            auditnl.set_enabled(0)
        for n in names:
            n.unlink()
        work.rmdir()
    return 0


def save(
    outdir: Path, name: str, recs: list[tuple[int, bytes]], info: dict[str, object]
) -> None:
    lines = []
    for t, payload in recs:
        text = payload.rstrip(b"\0\n").decode("ascii")  # the kernel writes ASCII
        assert "\n" not in text
        lines.append(f"{t} {text}\n")
    (outdir / f"{name}.records").write_text("".join(lines))
    (outdir / f"{name}.json").write_text(json.dumps(info, indent=1) + "\n")
    print(f"{name}: {len(lines)} records", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
