"""Capture raw event payloads from a real run on this host (run as root).

    sudo .venv/bin/python tests/data/payloads/capture.py [--out DIR]

Loads the tracer on the tracepoint rung, filtered on uid 65534, and causes each
scenario itself with `setpriv --reuid=65534 --regid=65534 --clear-groups`:

  open_eacces  cat of a mode-000 file                      sys_openat EACCES
  nice         nice -n -1 true                             capable CAP_SYS_NICE,
                                                           sys_setpriority EACCES
  kill         kill -0 1                                   capable CAP_KILL, sys_kill EPERM
  connect      connect() to 127.0.0.1 on a closed port      sys_connect ECONNREFUSED
  hostile      a python child renames itself (comm with ESC, newline, \\xff) and
               opens mode-000 files with hostile names:    sys_openat EACCES
               newline, CR, ESC [31m, backslash, \\xff; a 300-byte path

For each scenario it writes <name>.bin (the raw events, sizeof(struct
lsmt_event) bytes each, exactly as the ring buffer delivered them) and
<name>.json: what was done, the kernel release, the id -> name mapping needed
to decode, and per event the fields the scenario itself implies (not what the
decoder said). Byte strings in the sidecar are hex (`*_hex`).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

NOBODY = 65534
SETPRIV = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
HOSTILE_COMM = (
    b"ev\x1b[31m\n\xff\\il"  # 12 bytes: ESC, newline, invalid UTF-8, backslash
)
HOSTILE_NAME = b"bad\nname\r\x1b[31mred\\x\xff.txt"
SYS_PYTHON = "/usr/bin/python3"


def child_main(paths_hex: list[str]) -> int:
    """Runs as uid 65534: take the hostile comm, try to open each path."""
    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_name = 15
    libc.prctl(pr_set_name, ctypes.c_char_p(HOSTILE_COMM), 0, 0, 0)
    for h in paths_hex:
        with contextlib.suppress(PermissionError):
            os.close(os.open(bytes.fromhex(h), os.O_RDONLY))
    return 0


def make_tree(root: Path) -> dict[str, bytes]:
    """Files the scenarios open; every one mode 000 so uid 65534 gets EACCES."""
    root.chmod(0o755)
    secret = root / "secret"
    hostile = os.path.join(bytes(root), HOSTILE_NAME)
    # a path of exactly 300 bytes: nested 40-byte directories, then the file
    d = bytes(root)
    while len(d) + 41 + 20 < 300:
        d = os.path.join(d, b"d" * 40)
        os.mkdir(d, 0o755)
    long_path = os.path.join(d, b"f" * (300 - len(d) - 1))
    assert len(long_path) == 300
    for p in (bytes(secret), hostile, long_path):
        fd = os.open(p, os.O_CREAT | os.O_WRONLY, 0o600)
        os.close(fd)
        os.chmod(p, 0)
    return {"secret": bytes(secret), "hostile": hostile, "long": long_path}


def closed_port() -> int:
    """A local TCP port nobody listens on (bound then released)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = int(s.getsockname()[1])
    s.close()
    return port


class Scenario:
    def __init__(self, name: str, description: str, argv: list[str]) -> None:
        self.name = name
        self.description = description
        self.argv = argv
        self.pid = 0
        self.returncode: int | None = None
        # (predicate over a decoded Event, expected fields for it)
        self.wanted: list[tuple[Callable[[Any], bool], dict[str, Any]]] = []

    def run(self) -> None:
        p = subprocess.Popen(
            self.argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        self.pid = p.pid
        self.returncode = p.wait()


def _common(pid: int, comm: str) -> dict[str, Any]:
    """Fields every scenario implies; comm "" = see comm_hex (not valid UTF-8)."""
    out = {
        "rung": "tracepoint",
        "pid": pid,
        "tgid": pid,
        "uid": NOBODY,
        "euid": NOBODY,
        "gid": NOBODY,
        "comm": comm,
    }
    if not comm:
        del out["comm"]
    return out


def build_scenarios(files: dict[str, bytes], port: int) -> list[Scenario]:
    s_open = Scenario(
        "open_eacces",
        "uid 65534 runs `cat` on a mode-000 file",
        [*SETPRIV, "cat", os.fsdecode(files["secret"])],
    )
    s_nice = Scenario(
        "nice",
        "uid 65534 runs `nice -n -1 true`: raising priority needs CAP_SYS_NICE",
        [*SETPRIV, "nice", "-n", "-1", "true"],
    )
    s_kill = Scenario(
        "kill",
        "uid 65534 runs `kill -0 1` (signal 0 to init)",
        [*SETPRIV, "/bin/kill", "-0", "1"],
    )
    s_conn = Scenario(
        "connect",
        f"uid 65534 connects to 127.0.0.1:{port}, a closed port",
        [
            *SETPRIV,
            SYS_PYTHON,
            "-c",
            f"import socket; socket.socket().connect(('127.0.0.1', {port}))",
        ],
    )
    paths = [files["hostile"], files["long"]]
    s_host = Scenario(
        "hostile",
        "uid 65534 python child sets its comm to "
        f"{HOSTILE_COMM!r} and opens mode-000 files with hostile names",
        [
            *SETPRIV,
            SYS_PYTHON,
            os.path.abspath(__file__),
            "--child",
            *(p.hex() for p in paths),
        ],
    )
    return [s_open, s_nice, s_kill, s_conn, s_host]


def _denied_open_of(full: bytes) -> Callable[[Any], bool]:
    """An EACCES openat whose (maybe truncated) path is a prefix of `full`."""

    def pred(e: Any) -> bool:
        path = str(e.object.get("path", "")).encode("utf-8", "surrogateescape")
        return bool(
            e.hook == "sys_openat" and e.ret == -13 and path and full.startswith(path)
        )

    return pred


def add_expectations(sc: list[Scenario], files: dict[str, bytes], port: int) -> None:
    s_open, s_nice, s_kill, s_conn, s_host = sc
    secret = os.fsdecode(files["secret"])
    s_open.wanted.append(
        (
            lambda e: e.hook == "sys_openat" and e.object.get("path") == secret,
            {
                **_common(s_open.pid, "cat"),
                "kind": "syscall",
                "hook": "sys_openat",
                "family": "file",
                "syscall": "openat",
                "verdict": "deny",
                "ret": -13,
                # cat opens with O_RDONLY alone: no flags in the object; the tracepoint
                # rung cannot tell DAC from an LSM for a file denial: lsm null. A failed
                # open: the root's path joined with the (absolute) name
                "errno": "EACCES",
                "lsm": None,
                "object": {"path": secret, "path_kind": "joined"},
                "truncated": False,
            },
        )
    )
    s_nice.wanted.append(
        (
            lambda e: e.kind == "capable" and e.object.get("cap") == 23,
            {
                **_common(s_nice.pid, "nice"),
                "kind": "capable",
                "hook": "capable",
                "family": "capability",
                "syscall": "setpriority",
                "verdict": "deny",
                "ret": -1,
                "errno": "EPERM",
                "lsm": "capability",
                "object": {"cap": 23, "cap_name": "CAP_SYS_NICE", "opts": 0},
            },
        )
    )
    s_nice.wanted.append(
        (
            lambda e: e.hook == "sys_setpriority",
            {
                **_common(s_nice.pid, "nice"),
                "kind": "syscall",
                "hook": "sys_setpriority",
                "family": "task",
                "syscall": "setpriority",
                "verdict": "deny",
                "ret": -13,
                "errno": "EACCES",
                "lsm": "capability",
                # the kernel side decodes which/who/prio into obj.nice:
                # PRIO_PROCESS, 0 (self), nice -1
                "raw_nice": {"which": 0, "who": 0, "nice": -1},
                "object": {"which": 0, "who": 0, "nice": -1},
            },
        )
    )
    s_kill.wanted.append(
        (
            lambda e: e.kind == "capable" and e.object.get("cap") == 5,
            {
                **_common(s_kill.pid, "kill"),
                "kind": "capable",
                "hook": "capable",
                "syscall": "kill",
                "verdict": "deny",
                "ret": -1,
                "errno": "EPERM",
                "lsm": "capability",
                "object": {"cap": 5, "cap_name": "CAP_KILL", "opts": 0},
            },
        )
    )
    s_kill.wanted.append(
        (
            lambda e: e.hook == "sys_kill",
            {
                **_common(s_kill.pid, "kill"),
                "kind": "syscall",
                "hook": "sys_kill",
                "family": "task",
                "syscall": "kill",
                "verdict": "deny",
                "ret": -1,
                "errno": "EPERM",
                "lsm": "capability",
                "object": {"sig": 0, "sig_name": None, "target_pid": 1},
            },
        )
    )
    s_conn.wanted.append(
        (
            lambda e: e.hook == "sys_connect" and e.object.get("port") == port,
            {
                **_common(s_conn.pid, "python3"),
                "kind": "syscall",
                "hook": "sys_connect",
                "family": "network",
                "syscall": "connect",
                "verdict": "error",
                "ret": -111,
                "errno": "ECONNREFUSED",
                "lsm": None,
                "object": {"family": "AF_INET", "addr": "127.0.0.1", "port": port},
            },
        )
    )
    for key in ("hostile", "long"):
        full = files[key]
        fits = len(full) < 256
        s_host.wanted.append(
            (
                _denied_open_of(full),
                {
                    **_common(s_host.pid, ""),
                    "kind": "syscall",
                    "hook": "sys_openat",
                    "family": "file",
                    "syscall": "openat",
                    "verdict": "deny",
                    "ret": -13,
                    "errno": "EACCES",
                    "lsm": None,
                    # os.open adds O_CLOEXEC (PEP 446)
                    "object_flags": os.O_RDONLY | os.O_CLOEXEC,
                    "comm_hex": HOSTILE_COMM.hex(),
                    "path_full_hex": full.hex(),
                    # the kernel keeps PATH_LEN - 1 bytes and a NUL
                    "path_hex": full[:255].hex(),
                    "truncated": not fits,
                },
            )
        )


def capture(out_dir: Path) -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
    from lsmtrace import abi
    from lsmtrace.loader import TraceOptions, Tracer
    from lsmtrace.session import Session

    raw: list[tuple[bytes, Any]] = []

    class RawSession(Session):
        def on_batch(self, chunk: bytes, offsets: list[int]) -> None:
            from lsmtrace.events import decode

            for off in offsets:
                one = bytes(chunk[off : off + abi.EVENT_SIZE])
                ev = decode(one, self.source.id_names, self.source.syscall_names)
                # attribute access for the predicates below
                raw.append((one, SimpleNamespace(**ev)))
            super().on_batch(chunk, offsets)

    work = Path(tempfile.mkdtemp(prefix="lsmt-capture-"))
    try:
        files = make_tree(work)
        port = closed_port()
        scenarios = build_scenarios(files, port)
        tracer = Tracer(TraceOptions(backend="tracepoint", uid=NOBODY))
        att = tracer.open()
        print(f"tracing {len(att.attached)} hooks via {att.rung}", file=sys.stderr)
        session = RawSession(tracer, lambda _evs: None)

        def workload() -> None:
            time.sleep(0.5)
            for s in scenarios:
                s.run()
            time.sleep(0.5)
            session.stop[0] = True

        t = threading.Thread(target=workload)
        t.start()
        try:
            session.run(duration=30)
        finally:
            t.join()
            tracer.close()
        add_expectations(scenarios, files, port)

        out_dir.mkdir(parents=True, exist_ok=True)
        missing = 0
        for s in scenarios:
            chosen: list[tuple[bytes, Any, dict[str, Any]]] = []
            for pred, expected in s.wanted:
                hit = next((r for r in raw if r[1].pid == s.pid and pred(r[1])), None)
                if hit is None:
                    print(
                        f"{s.name}: no event for {expected.get('hook')}",
                        file=sys.stderr,
                    )
                    missing += 1
                    continue
                chosen.append((hit[0], hit[1], expected))
            ids = {abi.Event.from_buffer_copy(r[0]).id for r in chosen}
            nrs = {abi.Event.from_buffer_copy(r[0]).syscall for r in chosen}
            names = tracer.id_names
            sidecar = {
                "scenario": s.name,
                "description": s.description,
                "argv": s.argv,
                "returncode": s.returncode,
                "kernel": os.uname().release,
                "machine": os.uname().machine,
                "captured": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "abi_version": abi.ABI_VERSION,
                "event_size": abi.EVENT_SIZE,
                "tracer": {"backend": "tracepoint", "uid_filter": NOBODY},
                "id_names": {
                    "names": {
                        str(i): names.names[i] for i in sorted(ids) if i in names.names
                    },
                    "families": {
                        str(i): names.families[i]
                        for i in sorted(ids)
                        if i in names.families
                    },
                },
                "syscall_names": {
                    str(n): tracer.syscall_names[n]
                    for n in sorted(nrs)
                    if n in tracer.syscall_names
                },
                "events": [exp for _b, _e, exp in chosen],
            }
            (out_dir / f"{s.name}.bin").write_bytes(b"".join(b for b, _e, _x in chosen))
            (out_dir / f"{s.name}.json").write_text(
                json.dumps(sidecar, indent=1) + "\n"
            )
            print(f"{s.name}: {len(chosen)} events", file=sys.stderr)
        return 1 if missing else 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    ap.add_argument("--child", nargs="*", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child is not None:
        return child_main(args.child)
    if os.geteuid() != 0:
        print("capture.py needs root (it loads BPF programs)", file=sys.stderr)
        return 2
    return capture(args.out)


if __name__ == "__main__":
    sys.exit(main())
