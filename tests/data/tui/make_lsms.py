"""Writes lsms.jsonl: hand-made events (the docs/events.md schema) for deciders
this host's tracepoint rung cannot show: AppArmor, SELinux (AVC), Landlock,
Yama, DAC, the capability module on the fexit rung; with the optional
`container`, `unit` and `ancestors` fields of the process-tree work.

    python tests/data/tui/make_lsms.py   # rewrites lsms.jsonl next to it
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

BASE_TS = 5_000_000_000_000


def ev(i: int, **kw: Any) -> dict[str, Any]:
    ts = BASE_TS + i * 250_000_000
    sec, frac = divmod(ts // 1000, 1_000_000)
    d: dict[str, Any] = {
        "time": f"2026-11-25T19:{(sec // 60) % 60:02d}:{sec % 60:02d}.{frac:06d}Z",
        "ts_ns": ts,
        "rung": "fexit",
        "kind": "hook",
        "hook": "file_open",
        "family": "file",
        "verdict": "deny",
        "ret": -13,
        "errno": "EACCES",
        "lsm": None,
        "pid": 4100 + i,
        "tgid": 4100 + i,
        "ppid": 4000,
        "uid": 33,
        "euid": 33,
        "gid": 33,
        "comm": "nginx",
        "cgroup": 7321,
        "mntns": 4026532290,
        "syscall": "openat",
        "latency_ns": 1800,
        "object": {},
        "truncated": False,
    }
    d.update(kw)
    return d


WEB_ANC = [
    {"pid": 4000, "comm": "nginx"},
    {"pid": 3900, "comm": "containerd-shim"},
    {"pid": 1, "comm": "systemd"},
]
SSH_ANC = [
    {"pid": 1, "comm": "systemd"},
    {"pid": 700, "comm": "sshd"},
    {"pid": 5000, "comm": "bash"},
]

EVENTS = [
    ev(
        0,
        lsm="apparmor",
        object={"path": "/srv/www/secret.conf", "flags": 0},
        container="web-1",
        ancestors=WEB_ANC,
    ),
    ev(
        1,
        hook="file_open",
        verdict="allow",
        ret=0,
        errno=None,
        object={"path": "/srv/www/index.html"},
        container="web-1",
        ancestors=WEB_ANC,
    ),
    ev(
        2,
        hook="selinux_audited",
        kind="avc",
        family="selinux",
        lsm="selinux",
        object={
            "requested": 2,
            "denied": 2,
            "audited": 2,
            "result": -13,
            "tclass": "file",
            "scontext": "system_u:system_r:httpd_t:s0",
            "tcontext": "unconfined_u:object_r:user_home_t:s0",
        },
        container="web-1",
        ancestors=WEB_ANC,
    ),
    ev(
        3,
        hook="file_open",
        lsm="landlock",
        comm="sandboxed",
        pid=5101,
        tgid=5101,
        ppid=5000,
        uid=1000,
        euid=1000,
        gid=1000,
        unit="session-3.scope",
        object={"path": "/home/alice/.ssh/id_ed25519", "flags": 0},
        ancestors=SSH_ANC,
    ),
    ev(
        4,
        hook="ptrace_access_check",
        family="ptrace",
        lsm="yama",
        ret=-1,
        errno="EPERM",
        comm="gdb",
        pid=5102,
        tgid=5102,
        ppid=5000,
        uid=1000,
        euid=1000,
        gid=1000,
        syscall="ptrace",
        unit="session-3.scope",
        object={"target_pid": 5200, "mode": 0x11, "target_comm": "app"},
        ancestors=SSH_ANC,
    ),
    ev(
        5,
        hook="sys_openat",
        kind="syscall",
        lsm="dac",
        comm="backup",
        pid=5103,
        tgid=5103,
        ppid=5000,
        uid=1000,
        euid=1000,
        gid=1000,
        object={"path": "/var/lib/db/data", "flags": 0o1101},
        unit="backup.service",
    ),
    ev(
        6,
        hook="socket_bind",
        family="network",
        lsm="capability",
        ret=-13,
        comm="nginx",
        object={
            "family": "AF_INET",
            "type": "SOCK_STREAM",
            "addr": "0.0.0.0",
            "port": 80,
        },
        syscall="bind",
        container="web-1",
        ancestors=WEB_ANC,
    ),
    ev(
        7,
        hook="capable",
        kind="hook",
        family="capability",
        lsm="capability",
        ret=-1,
        errno="EPERM",
        comm="nginx",
        syscall="bind",
        object={"cap": 10, "cap_name": "CAP_NET_BIND_SERVICE", "opts": 0},
        container="web-1",
        ancestors=WEB_ANC,
    ),
    ev(
        8,
        hook="bprm_check_security",
        family="exec",
        lsm="apparmor",
        comm="sh",
        syscall="execve",
        object={"path": "/usr/bin/curl"},
        container="web-1",
        ancestors=WEB_ANC,
    ),
    ev(
        9,
        hook="sys_openat",
        kind="syscall",
        verdict="error",
        ret=-2,
        errno="ENOENT",
        comm="backup",
        pid=5103,
        tgid=5103,
        ppid=5000,
        object={"path": "/var/lib/db/missing"},
        unit="backup.service",
    ),
]


def main() -> None:
    out = Path(__file__).with_name("lsms.jsonl")
    header = {
        "lsmtrace_recording": 1,
        "format_version": 1,
        "created": EVENTS[0]["time"],
        "rung": "fexit",
        "note": "synthetic: written by make_lsms.py",
    }
    trailer = {"trailer": True, "events": len(EVENTS), "lost": 3}
    with out.open("w") as f:
        f.write(json.dumps(header) + "\n")
        for e in EVENTS:
            f.write(json.dumps(e, ensure_ascii=True, separators=(",", ":")) + "\n")
        f.write(json.dumps(trailer) + "\n")


if __name__ == "__main__":
    main()
