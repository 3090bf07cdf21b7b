"""Writes audited.jsonl: tracepoint-rung denials as the audit join leaves them
(`audit` objects made by lsmtrace.audit from records in the kernel's format:
AppArmor and SELinux AVCs written after the kernel's format strings, the
Landlock and seccomp records captured on the development host in
tests/data/audit), and an allowed decision the live audit mode marked
(`would_deny`), for the TUI's detail pane.

    python tests/data/tui/make_audited.py   # rewrites audited.jsonl next to it
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO))

from lsmtrace import audit  # noqa: E402

BASE_TS = 6_000_000_000_000
CAPTURED = REPO / "tests" / "data" / "audit"

APPARMOR = (
    '1400 audit(1795964100.100:500): apparmor="DENIED" operation="open" '
    'class="file" profile="/usr/sbin/nginx" name="/srv/www/secret.conf" pid=4100 '
    'comm="nginx" requested_mask="r" denied_mask="r" fsuid=33 ouid=0'
)
SELINUX = (
    "1400 audit(1795964100.400:503): avc:  denied  { read } for  pid=4101 "
    'comm="httpd" name="index.html" dev="dm-0" ino=1051592 '
    "scontext=system_u:system_r:httpd_t:s0 "
    "tcontext=unconfined_u:object_r:user_home_t:s0 tclass=file permissive=0"
)


def audited(text: str) -> dict[str, Any]:
    recs = [r for r in map(audit.parse_line, text.strip().splitlines()) if r]
    g = audit.Grouper(clock=lambda: 0.0)
    return next(a for a in map(audit.summarize, g.add_records(recs) + g.drain()) if a)


def ev(i: int, **kw: Any) -> dict[str, Any]:
    ts = BASE_TS + i * 250_000_000
    sec, frac = divmod(ts // 1000, 1_000_000)
    d: dict[str, Any] = {
        "time": f"2026-11-25T20:{(sec // 60) % 60:02d}:{sec % 60:02d}.{frac:06d}Z",
        "ts_ns": ts,
        "rung": "tracepoint",
        "kind": "syscall",
        "hook": "sys_openat",
        "family": "file",
        "verdict": "deny",
        "ret": -13,
        "errno": "EACCES",
        "lsm": None,
        "lsm_source": "audit",
        "pid": 4100 + i,
        "tgid": 4100 + i,
        "ppid": 4000,
        "uid": 33,
        "euid": 33,
        "gid": 33,
        "comm": "nginx",
        "cgroup": 7321,
        "mntns": 4026531840,
        "syscall": "openat",
        "latency_ns": None,
        "object": {},
        "truncated": False,
    }
    d.update(kw)
    return d


def events() -> list[dict[str, Any]]:
    landlock = "\n".join(
        ln
        for ln in (CAPTURED / "landlock_context.records").read_text().splitlines()
        if ":3): " in ln
    )
    ll = audited(landlock)
    sc = audited((CAPTURED / "seccomp_context.records").read_text())
    return [
        ev(
            0,
            lsm="apparmor",
            audit=audited(APPARMOR),
            object={"path": "/srv/www/secret.conf", "path_kind": "joined", "flags": 0},
        ),
        ev(
            1,
            lsm="selinux",
            comm="httpd",
            audit=audited(SELINUX),
            object={
                "path": "/home/alice/public_html/index.html",
                "path_kind": "joined",
                "flags": 0,
            },
        ),
        ev(
            2,
            lsm="landlock",
            comm="python3",
            audit=ll,
            object={"path": ll["path"], "path_kind": "joined", "flags": 0},
        ),
        ev(
            3,
            lsm="seccomp",
            errno="EPERM",
            ret=-1,
            comm="python3",
            audit=sc,
            object={"path": "/etc/hostname", "path_kind": "joined", "flags": 0},
        ),
        ev(
            4,
            verdict="allow",
            ret=0,
            errno=None,
            lsm=None,
            lsm_source=None,
            comm="cat",
            object={"path": "/tmp/x/c", "path_kind": "exact", "flags": 0},
            would_deny={
                "policy": "cat.landlock.json",
                "target": "landlock",
                "context": "ruleset lsmtrace",
                "program": "/usr/bin/cat",
                "access": ["file /tmp/x/c read"],
                "missing": ['{"path": "/tmp/x/c", "access": ["read_file"]}'],
            },
        ),
    ]


def main() -> None:
    out = Path(__file__).with_name("audited.jsonl")
    evs = events()
    header = {
        "lsmtrace_recording": 1,
        "format_version": 1,
        "created": evs[0]["time"],
        "rung": "tracepoint",
        "note": "synthetic: written by make_audited.py",
    }
    trailer = {"trailer": True, "events": len(evs), "lost": 0}
    with out.open("w") as f:
        f.write(json.dumps(header) + "\n")
        for e in evs:
            f.write(json.dumps(e, ensure_ascii=True, separators=(",", ":")) + "\n")
        f.write(json.dumps(trailer) + "\n")


if __name__ == "__main__":
    main()
