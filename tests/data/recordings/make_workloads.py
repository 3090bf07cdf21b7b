"""Writes the realistic workload recordings the policy tests use: hand-made
events of the docs/events.md schema in the current recording format, with the
fields the kernel side now fills (`path_kind`, `noaudit`, exec `argv`), event
for event in the order the kernel emits them (modelled on real recordings of
the same programs on Debian 12: the two real ones, `bash_true_twice.jsonl` and
`grep_r_legacy.jsonl`, sit next to this file).

    python tests/data/recordings/make_workloads.py   # rewrites the four files

  pyenv_shim.jsonl      `python3 -c ...` where python3 is a pyenv shim: a
                        `#!/usr/bin/env bash` script that execs the real
                        interpreter (also named python3)
  venv_app.jsonl        fexit rung (the VM's): `venv/bin/python main.py` in a
                        virtualenv (symlinked interpreter: the bprm hook has the
                        exact path), .pyc written by atomic rename, tempfile
  wrapper_exec.jsonl    `app-wrapper --serve`: a `#!/bin/sh` wrapper that runs
                        mkdir, mktemp and true, then execs the real binary
  forking_daemon.jsonl  a daemon binding 127.0.0.1:80 (CAP_NET_BIND_SERVICE),
                        forking two workers that accept and serve a file
  grep_dirfd.jsonl      `grep -r hello /data/tree` from /home/u: dirfd-relative
                        opens recorded with their exact paths, one denial
                        (joined), one name the tracer could only give as given
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
BASE_TS = 7_000_000_000_000
O_RDONLY, O_WRONLY, O_RDWR, O_CREAT, O_EXCL, O_TRUNC, O_APPEND = (
    0,
    1,
    2,
    0o100,
    0o200,
    0o1000,
    0o2000,
)
O_DIRECTORY, O_CLOEXEC, O_NOCTTY, O_NONBLOCK = 0o200000, 0o2000000, 0o400, 0o4000
LIBC = "/usr/lib/x86_64-linux-gnu/libc.so.6"
LOCALE = [
    f"/usr/lib/locale/C.utf8/LC_{n}"
    for n in (
        "IDENTIFICATION",
        "MEASUREMENT",
        "TELEPHONE",
        "ADDRESS",
        "NAME",
        "PAPER",
        "MONETARY",
        "COLLATE",
        "TIME",
        "NUMERIC",
        "CTYPE",
    )
]


class Rec:
    """Builds one recording; processes keep their ppid, comm and uid."""

    def __init__(self, command: list[str], cwd: str, rung: str = "tracepoint") -> None:
        self.command, self.cwd, self.rung = command, cwd, rung
        self.events: list[dict[str, Any]] = []
        self.ts = BASE_TS
        self.procs: dict[int, dict[str, Any]] = {}

    def proc(self, pid: int, ppid: int, comm: str, uid: int = 0) -> None:
        self.procs[pid] = {"ppid": ppid, "comm": comm, "uid": uid}

    def ev(
        self,
        pid: int,
        kind: str,
        hook: str,
        obj: dict[str, Any],
        *,
        verdict: str = "allow",
        errno: str | None = None,
        syscall: str | None = None,
        family: str | None = "file",
        lsm: str | None = None,
        **extra: Any,
    ) -> None:
        self.ts += 37_000
        p = self.procs[pid]
        ret = {"allow": 0, "deny": -13 if errno != "EPERM" else -1, "error": -2}[
            verdict
        ]
        sec, frac = divmod(self.ts // 1000, 1_000_000)
        d: dict[str, Any] = {
            "time": f"2026-11-29T16:{(sec // 60) % 60:02d}:{sec % 60:02d}.{frac:06d}Z",
            "ts_ns": self.ts,
            "rung": self.rung,
            "kind": kind,
            "hook": hook,
            "family": family,
            "verdict": verdict,
            "ret": ret,
            "errno": errno,
            "lsm": lsm,
            "pid": pid,
            "tgid": pid,
            "ppid": p["ppid"],
            "uid": p["uid"],
            "euid": p["uid"],
            "gid": p["uid"],
            "comm": p["comm"],
            "cgroup": 1,
            "mntns": 4026531832,
            "syscall": syscall,
            "latency_ns": None,
            "object": obj,
            "truncated": False,
        }
        if self.rung == "fexit":
            d["latency_ns"] = 900
        d.update(extra)
        self.events.append(d)

    # -- process events -------------------------------------------------------
    def exec_(
        self,
        pid: int,
        filename: str,
        argv: list[str],
        comm: str | None = None,
        probes: int = 3,
    ) -> None:
        for _ in range(probes):  # bprm's memory accounting (tracepoint rung: call site)
            self.cap(pid, "CAP_SYS_ADMIN", "execve", noaudit=True)
        if comm:
            self.procs[pid]["comm"] = comm
        self.ev(
            pid,
            "exec",
            "exec",
            {"filename": filename, "argv": argv},
            syscall="execve",
            family="process",
        )

    def fork(self, parent: int, child: int) -> None:
        self.cap(parent, "CAP_SYS_ADMIN", "clone", noaudit=True)  # dup_mmap accounting
        self.ev(
            parent,
            "fork",
            "fork",
            {"child_pid": child},
            syscall="clone",
            family="process",
        )
        self.proc(child, parent, self.procs[parent]["comm"], self.procs[parent]["uid"])

    def exit(self, pid: int, code: int = 0) -> None:
        self.ev(
            pid,
            "exit",
            "exit",
            {"exit_code": code},
            syscall="exit_group",
            family="process",
        )

    # -- decisions ----------------------------------------------------------
    def cap(
        self,
        pid: int,
        cap: str,
        syscall: str,
        noaudit: bool = False,
        verdict: str = "allow",
    ) -> None:
        num = {"CAP_SYS_ADMIN": 21, "CAP_NET_BIND_SERVICE": 10, "CAP_DAC_OVERRIDE": 1}[
            cap
        ]
        extra: dict[str, Any] = {}
        if noaudit:
            extra = {
                "noaudit": True,
                "noaudit_by": "opts" if self.rung == "fexit" else "call_site",
            }
        opts = 2 if noaudit and self.rung == "fexit" else 0
        self.ev(
            pid,
            "capable",
            "capable",
            {"cap": num, "cap_name": cap, "opts": opts},
            syscall=syscall,
            family="capability",
            lsm="capability",
            verdict=verdict,
            errno=None if verdict == "allow" else "EPERM",
            **extra,
        )

    def open_(
        self,
        pid: int,
        path: str,
        flags: int = O_RDONLY | O_CLOEXEC,
        kind: str = "exact",
        verdict: str = "allow",
        mode: str | None = None,
        errno: str | None = None,
    ) -> None:
        obj: dict[str, Any] = {"path": path, "path_kind": kind, "flags": flags}
        if mode:
            obj["mode"] = mode
        if self.rung == "fexit":
            hook, kind_ = "file_open", "hook"
        else:
            hook, kind_ = "sys_openat", "syscall"
        self.ev(pid, kind_, hook, obj, verdict=verdict, errno=errno, syscall="openat")

    def syscall(
        self,
        pid: int,
        name: str,
        obj: dict[str, Any],
        family: str = "file",
        verdict: str = "allow",
        errno: str | None = None,
    ) -> None:
        self.ev(
            pid,
            "syscall",
            f"sys_{name}",
            obj,
            syscall=name,
            family=family,
            verdict=verdict,
            errno=errno,
        )

    def mmap_exec(self, pid: int, path: str) -> None:
        if self.rung == "fexit":
            self.ev(
                pid,
                "hook",
                "mmap_file",
                {
                    "path": path,
                    "path_kind": "exact",
                    "prot": "r-x",
                    "prot_raw": 5,
                    "flags": 2066,
                },
                syscall="mmap",
            )
        else:
            self.syscall(
                pid,
                "mmap",
                {"prot": "r-x", "prot_raw": 5, "flags": 2066, "len": 1400832, "fd": 3},
            )

    def ld(self, pid: int, *libs: str) -> None:
        """What ld.so does at start: the cache, each library opened and mapped."""
        self.open_(pid, "/etc/ld.so.cache")
        for lib in (*libs, LIBC):
            self.open_(pid, lib)
            self.mmap_exec(pid, lib)
            self.cap(pid, "CAP_SYS_ADMIN", "mmap", noaudit=True)

    def locale(self, pid: int) -> None:
        self.open_(pid, "/usr/share/locale/locale.alias")
        for p in LOCALE:
            self.open_(pid, p)

    def write(self, name: str) -> None:
        header = {
            "lsmtrace_recording": 1,
            "format_version": 1,
            "abi_version": 1,
            "lsmtrace_version": "0.1.0",
            "kernel": "6.18.44-fc-v857",
            "arch": "x86_64",
            "active_lsms": ["lockdown", "capability", "landlock", "bpf"],
            "rung": self.rung,
            "host": "vm",
            "started": "2026-11-29T16:00:00.000000Z",
            "command": self.command,
            "cwd": self.cwd,
            "filters": {"pid": 40000, "children": True},
            "clock_offset_ns": 1795963545385062141,
        }
        by: dict[str, int] = {}
        for e in self.events:
            by[e["verdict"]] = by.get(e["verdict"], 0) + 1
        trailer = {
            "trailer": True,
            "events": len(self.events),
            "lost": 0,
            "attempted": len(self.events),
            "ended": "2026-11-29T16:00:09.000000Z",
            "seen": len(self.events),
            "filtered": 0,
            "malformed": 0,
            "by_verdict": by,
            "quiet": 0,
            "counts": [],
            "exit_code": 0,
        }
        lines = [json.dumps(header, separators=(",", ":"))]
        lines += [json.dumps(e, separators=(",", ":")) for e in self.events]
        lines.append(json.dumps(trailer, separators=(",", ":")))
        (HERE / name).write_text("\n".join(lines) + "\n")


def pyenv_shim() -> None:
    """The issue's reproducer: `python3 -c "open(...)"` through a pyenv shim."""
    shim, real = (
        "/root/.pyenv/shims/python3",
        "/root/.pyenv/versions/3.11.7/bin/python3",
    )
    r = Rec(["python3", "-c", "print(open('/etc/hostname').read())"], "/root")
    r.proc(41000, 40999, "lsmtrace")
    # the kernel rewrote argv for the #! line: [interpreter, arg, script, args...]
    r.exec_(41000, shim, ["/usr/bin/env", "bash", shim, "-c", "print(...)"], "python3")
    r.ld(41000)
    r.exec_(41000, "/usr/bin/bash", ["bash", shim, "-c", "print(...)"], "bash")
    r.ld(41000, "/usr/lib/x86_64-linux-gnu/libtinfo.so.6")
    r.locale(41000)
    r.open_(41000, shim)  # bash reads the script
    r.open_(41000, "/root/.pyenv/version")
    r.exec_(41000, real, ["python3", "-c", "print(...)"], "python3")
    r.ld(
        41000,
        "/root/.pyenv/versions/3.11.7/lib/libpython3.11.so.1.0",
        "/usr/lib/x86_64-linux-gnu/libm.so.6",
    )
    r.open_(
        41000, "/root/.pyenv/versions/3.11.7/lib/python3.11", O_RDONLY | O_DIRECTORY
    )
    r.open_(
        41000,
        "/root/.pyenv/versions/3.11.7/lib/python3.11/encodings/__pycache__/"
        "__init__.cpython-311.pyc",
    )
    r.open_(41000, "/etc/hostname")
    r.exit(41000)
    r.write("pyenv_shim.jsonl")


def venv_app() -> None:
    """fexit rung: hooks name every file exactly (the symlinked interpreter's
    bprm check says /usr/bin/python3.11); Python writes its .pyc atomically."""
    venv_py = "/srv/app/venv/bin/python"
    r = Rec([venv_py, "/srv/app/main.py"], "/srv/app", rung="fexit")
    r.proc(42000, 41999, "lsmtrace")
    r.ev(
        42000,
        "hook",
        "bprm_creds_for_exec",
        {"path": "/usr/bin/python3.11", "path_kind": "exact"},
        syscall="execve",
        family="exec",
    )
    r.ev(
        42000,
        "hook",
        "bprm_check_security",
        {"path": "/usr/bin/python3.11", "path_kind": "exact"},
        syscall="execve",
        family="exec",
    )
    r.exec_(42000, venv_py, [venv_py, "/srv/app/main.py"], "python")
    r.ld(
        42000,
        "/usr/lib/x86_64-linux-gnu/libm.so.6",
        "/usr/lib/x86_64-linux-gnu/libz.so.1",
    )
    r.open_(42000, "/srv/app/venv/pyvenv.cfg")
    r.open_(42000, "/usr/lib/python3.11", O_RDONLY | O_DIRECTORY)
    r.open_(42000, "/usr/lib/python3.11/encodings/__pycache__/__init__.cpython-311.pyc")
    r.open_(42000, "/usr/lib/python3.11/__pycache__/tempfile.cpython-311.pyc")
    r.open_(42000, "/srv/app/venv/lib/python3.11/site-packages", O_RDONLY | O_DIRECTORY)
    r.open_(42000, "/srv/app/main.py")
    r.open_(42000, "/srv/app", O_RDONLY | O_DIRECTORY)
    r.open_(42000, "/srv/app/mod.py")
    r.ev(
        42000,
        "hook",
        "path_mkdir",
        {"path": "/srv/app/__pycache__", "path_kind": "exact", "mode": "0o777"},
        syscall="mkdir",
        family="path",
    )
    tmp_pyc = "/srv/app/__pycache__/mod.cpython-311.pyc.140234567890123"
    r.open_(42000, tmp_pyc, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode="0o644")
    r.ev(
        42000,
        "hook",
        "path_rename",
        {
            "path": tmp_pyc,
            "path_kind": "exact",
            "path2": "/srv/app/__pycache__/mod.cpython-311.pyc",
        },
        syscall="rename",
        family="path",
    )
    # tempfile: probe the directory, then the named temporary file
    for name in ("/tmp/ndr1hauu", "/tmp/tmpk2j3a9xq"):
        r.open_(42000, name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, mode="0o600")
        r.ev(
            42000,
            "hook",
            "path_unlink",
            {"path": name, "path_kind": "exact"},
            syscall="unlink",
            family="path",
        )
    r.open_(42000, "/etc/localtime")
    r.open_(42000, "/srv/app/secret.key", verdict="deny", errno="EACCES")
    r.exit(42000)
    r.write("venv_app.jsonl")


def wrapper_exec() -> None:
    """`#!/bin/sh` wrapper: `mkdir -p /var/lib/app; f=$(mktemp); true; exec app-real`."""
    wrapper, real = "/usr/local/bin/app-wrapper", "/usr/local/libexec/app-real"
    r = Rec([wrapper, "--serve"], "/")
    r.proc(43000, 42999, "lsmtrace")
    r.exec_(43000, wrapper, ["/bin/sh", wrapper, "--serve"], "app-wrapper")
    r.ld(43000)
    r.open_(43000, wrapper)  # sh reads the script
    # mkdir -p /var/lib/app in a child
    r.fork(43000, 43001)
    r.exec_(43001, "/usr/bin/mkdir", ["mkdir", "-p", "/var/lib/app"], "mkdir")
    r.ld(43001, "/usr/lib/x86_64-linux-gnu/libselinux.so.1")
    r.syscall(
        43001, "mkdir", {"path": "/var/lib/app", "path_kind": "exact", "mode": "0o777"}
    )
    r.exit(43001)
    # f=$(mktemp)
    r.fork(43000, 43002)
    r.exec_(43002, "/usr/bin/mktemp", ["mktemp"], "mktemp")
    r.ld(43002)
    r.open_(43002, "/tmp/tmp.Ab3dE5fG7h", O_RDWR | O_CREAT | O_EXCL, mode="0o600")
    r.exit(43002)
    # true (needs nothing the wrapper lacks)
    r.fork(43000, 43003)
    r.exec_(43003, "/usr/bin/true", ["true"], "true")
    r.ld(43003)
    r.exit(43003)
    r.exec_(43000, real, [real, "--serve"], "app-real")
    r.ld(43000, "/usr/lib/x86_64-linux-gnu/libssl.so.3")
    r.locale(43000)
    r.open_(43000, "/etc/app.conf")
    r.open_(43000, "/tmp/tmp.Ab3dE5fG7h", O_WRONLY | O_TRUNC)
    r.open_(43000, "/tmp/tmp.Ab3dE5fG7h")
    r.syscall(43000, "unlink", {"path": "/tmp/tmp.Ab3dE5fG7h", "path_kind": "exact"})
    r.open_(43000, "/var/lib/app/state", O_WRONLY | O_CREAT | O_TRUNC, mode="0o644")
    r.exit(43000)
    r.write("wrapper_exec.jsonl")


def forking_daemon() -> None:
    """minid: bind 127.0.0.1:80 as root (CAP_NET_BIND_SERVICE, enforced), two
    forked workers (no exec) accept and read the file they serve."""
    d = "/usr/local/sbin/minid"
    r = Rec([d, "--port", "80"], "/")
    r.proc(44000, 43999, "lsmtrace")
    r.exec_(44000, d, [d, "--port", "80"], "minid")
    r.ld(44000)
    r.open_(44000, "/etc/minid.conf")
    r.syscall(
        44000,
        "socket",
        {"family": "AF_INET", "type": "SOCK_STREAM", "protocol": 6},
        family="network",
    )
    r.cap(44000, "CAP_NET_BIND_SERVICE", "bind")
    r.syscall(
        44000,
        "bind",
        {"family": "AF_INET", "addr": "127.0.0.1", "port": 80},
        family="network",
    )
    r.syscall(44000, "listen", {}, family="network")
    for w in (44001, 44002):
        r.fork(44000, w)
        r.syscall(
            w,
            "accept4",
            {"family": "AF_INET", "addr": "127.0.0.1", "port": 80},
            family="network",
        )
        r.open_(w, "/srv/www/index.html")
        r.open_(w, "/var/log/minid.log", O_WRONLY | O_APPEND | O_CREAT, mode="0o640")
    for w in (44001, 44002):
        r.syscall(
            44000,
            "kill",
            {"sig": 15, "sig_name": "SIGTERM", "target_pid": w},
            family="task",
        )
        r.exit(w)
    r.exit(44000)
    r.write("forking_daemon.jsonl")


def grep_dirfd() -> None:
    """fts-style walk: openat(dirfd, "f1.txt") recorded with the path of the fd
    it returned (exact); a denied one with the dirfd's path joined (joined); a
    name the tracer could only give as the program passed it (as_given)."""
    r = Rec(["grep", "-r", "hello", "/data/tree"], "/home/u")
    r.proc(45000, 44999, "lsmtrace")
    r.exec_(45000, "/usr/bin/grep", ["grep", "-r", "hello", "/data/tree"], "grep")
    r.ld(45000, "/usr/lib/x86_64-linux-gnu/libpcre2-8.so.0")
    r.open_(45000, "/proc/self/maps")
    walk = O_RDONLY | O_NOCTTY | O_NONBLOCK | O_CLOEXEC | O_DIRECTORY
    r.open_(45000, "/data/tree", walk)
    r.open_(45000, "/data/tree/f1.txt", O_RDONLY | O_NOCTTY)
    r.open_(45000, "/data/tree/sub", walk)
    r.open_(45000, "/data/tree/sub/f2.txt", O_RDONLY | O_NOCTTY)
    r.open_(
        45000,
        "/data/tree/sub/hidden.txt",
        O_RDONLY | O_NOCTTY,
        kind="joined",
        verdict="deny",
        errno="EACCES",
    )
    r.open_(45000, "f3.txt", O_RDONLY | O_NOCTTY, kind="as_given")
    r.exit(45000, 2)
    r.write("grep_dirfd.jsonl")


if __name__ == "__main__":
    pyenv_shim()
    venv_app()
    wrapper_exec()
    forking_daemon()
    grep_dirfd()
