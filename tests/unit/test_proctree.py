"""The process tree and the enricher, against injected sources and fake /proc trees.

Time: the fake clock has HZ=100 (a tick is 10 ms) and no suspend offset, so a
process whose stat says start tick T started at T * 10 ms on the events' clock.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lsmtrace import proctree
from lsmtrace.cgroups import CgroupMap
from lsmtrace.output import columns
from lsmtrace.proctree import (
    CMDLINE_MAX,
    Enricher,
    ProcessRecord,
    ProcessTree,
    ProcfsSource,
    PsutilSource,
    bound_cmdline,
    format_tree,
    parse_stat,
)

MS = 1_000_000
TICK = 10 * MS
REPO = Path(__file__).resolve().parents[2]


class FakeClock:
    hz = 100

    def __init__(self, offset_ns: int = 0) -> None:
        self.offset_ns = offset_ns

    def boot_offset_ns(self) -> int:
        return self.offset_ns


class FakeSource:
    """{pid: record}; lookups are counted; threads are {(tgid, tid)}."""

    def __init__(self, *recs: ProcessRecord) -> None:
        self.procs = {r.pid: r for r in recs}
        self.threads: set[tuple[int, int]] = set()
        self.lookups = 0

    def processes(self) -> Iterator[ProcessRecord]:
        yield from list(self.procs.values())

    def process(self, pid: int) -> ProcessRecord | None:
        self.lookups += 1
        return self.procs.get(pid)

    def is_thread(self, tgid: int, tid: int) -> bool:
        return (tgid, tid) in self.threads


def rec(
    pid: int,
    ppid: int,
    tick: int,
    comm: str,
    exe: str | None = None,
    argv: list[str] | None = None,
) -> ProcessRecord:
    return ProcessRecord(
        pid, ppid, tick, comm, exe or f"/usr/bin/{comm}", argv or [comm]
    )


BASE = (
    rec(1, 0, 1, "systemd", "/usr/lib/systemd/systemd", ["/sbin/init"]),
    rec(500, 1, 100, "sshd", "/usr/sbin/sshd", ["sshd: /usr/sbin/sshd -D"]),
    rec(600, 500, 200, "bash", "/usr/bin/bash", ["-bash"]),
)


def ev(
    tgid: int,
    ts_ns: int,
    ppid: int,
    comm: str = "x",
    kind: str = "syscall",
    uid: int = 0,
    gid: int = 0,
    cgroup: int = 1,
    **obj: Any,
) -> dict[str, Any]:
    return {
        "time": "2026-11-25T18:15:58.912794Z",
        "ts_ns": ts_ns,
        "rung": "tracepoint",
        "kind": kind,
        "hook": "sys_openat" if kind == "syscall" else kind,
        "family": "file",
        "verdict": "deny" if kind == "syscall" else "allow",
        "ret": -13 if kind == "syscall" else 0,
        "errno": "EACCES" if kind == "syscall" else None,
        "lsm": None,
        "pid": tgid,
        "tgid": tgid,
        "ppid": ppid,
        "uid": uid,
        "euid": uid,
        "gid": gid,
        "comm": comm,
        "cgroup": cgroup,
        "mntns": 0,
        "syscall": "openat",
        "latency_ns": None,
        "object": obj or {"path": "/etc/shadow"},
        "truncated": False,
    }


def enricher(src: FakeSource, cg_root: Path | None = None, **kw: Any) -> Enricher:
    tree = ProcessTree(src, clock=FakeClock(), **kw)
    tree.load()
    cg = CgroupMap(root=cg_root, proc=Path("/nonexistent"), hybrid=False)
    return Enricher(
        tree,
        cg,
        user_name=lambda u: {0: "root"}.get(u),
        group_name=lambda g: {0: "root"}.get(g),
    )


def names(d: dict[str, Any]) -> list[tuple[int, str | None]]:
    return [(a["pid"], a["comm"]) for a in d["ancestors"]]


# -- sources ------------------------------------------------------------------------


def test_parse_stat() -> None:
    raw = b"42 (a) b (c)) S 7 42 42 0 -1 4194560 " + b"0 " * 12 + b"123456 0 0\n"
    assert parse_stat(raw) == ("a) b (c)", 7, 123456)
    assert parse_stat(b"42 (bad\xff) S 1 " + b"0 " * 17 + b"99") == ("bad\udcff", 1, 99)
    assert parse_stat(b"garbage") is None
    assert parse_stat(b"1 (x) S 0") is None


def fake_proc(
    root: Path,
    pid: int,
    ppid: int,
    tick: int,
    comm: str,
    argv: bytes = b"",
    exe: str | None = None,
    threads: tuple[int, ...] = (),
) -> None:
    d = root / str(pid)
    (d / "task").mkdir(parents=True)
    fields = ["S", str(ppid)] + ["0"] * 17 + [str(tick), "0", "0"]
    (d / "stat").write_bytes(
        f"{pid} (".encode() + comm.encode() + b") " + " ".join(fields).encode() + b"\n"
    )
    (d / "cmdline").write_bytes(argv)
    (d / "cgroup").write_text("0::/system.slice/ssh.service\n")
    if exe:
        (d / "exe").symlink_to(exe)
    for t in (pid, *threads):
        (d / "task" / str(t)).mkdir()


def test_procfs_source_fake_tree(tmp_path: Path) -> None:
    fake_proc(
        tmp_path,
        1,
        0,
        5,
        "systemd",
        b"/sbin/init\0splash\0",
        "/usr/lib/systemd/systemd",
    )
    fake_proc(tmp_path, 2, 0, 5, "kthreadd")  # kernel thread: no cmdline, no exe
    fake_proc(tmp_path, 77, 1, 900, "my prog)", b"a b\0c\0", "/opt/x", threads=(78,))
    (tmp_path / "self").mkdir()  # not a pid
    (tmp_path / "99").mkdir()  # vanished while listing: no stat
    src = ProcfsSource(tmp_path, read_cgroup=True)
    got = {r.pid: r for r in src.processes()}
    assert set(got) == {1, 2, 77}
    assert got[1] == ProcessRecord(
        1,
        0,
        5,
        "systemd",
        "/usr/lib/systemd/systemd",
        ["/sbin/init", "splash"],
        "0::/system.slice/ssh.service\n",
    )
    assert got[2].exe is None
    assert got[2].cmdline is None
    assert got[77].comm == "my prog)"
    assert got[77].cmdline == ["a b", "c"]
    assert src.is_thread(77, 78)
    assert not src.is_thread(77, 77)
    assert not src.is_thread(77, 79)
    assert src.process(12345) is None


def test_procfs_source_permission_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_proc(tmp_path, 10, 1, 50, "secret", b"secret\0--key\0", "/usr/bin/secret")
    real_open = open

    def guarded(path: str, *a: Any, **kw: Any) -> Any:
        if str(path).endswith(("/cmdline", "/cgroup")):
            raise PermissionError(13, "Permission denied", path)
        return real_open(path, *a, **kw)

    def no_readlink(path: str) -> str:
        raise PermissionError(13, "Permission denied", path)

    monkeypatch.setattr(proctree, "open", guarded, raising=False)
    monkeypatch.setattr(os, "readlink", no_readlink)
    r = ProcfsSource(tmp_path, read_cgroup=True).process(10)
    assert r is not None
    assert (r.comm, r.ppid, r.start_ticks) == ("secret", 1, 50)
    assert r.exe is None
    assert r.cmdline is None
    assert r.cgroup is None


def test_psutil_source_live_self() -> None:
    src = PsutilSource()
    me = {r.pid: r for r in src.processes()}.get(os.getpid())
    assert me is not None
    assert me.ppid == os.getppid()
    assert me.start_ticks > 0
    assert me.exe
    assert me.cmdline
    one = src.process(os.getpid())
    assert one is not None
    assert one.start_ticks == me.start_ticks
    assert src.process(2**22 + 12345) is None  # beyond pid_max: never exists


def test_psutil_source_errors(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import psutil

    class Denied:
        def __init__(self, pid: int) -> None:
            self.pid = pid

        def oneshot(self) -> Any:
            import contextlib

            return contextlib.nullcontext()

        def exe(self) -> str:
            raise psutil.AccessDenied(self.pid)

        def cmdline(self) -> list[str]:
            raise psutil.AccessDenied(self.pid)

    monkeypatch.setattr(psutil, "Process", Denied)
    r = PsutilSource().process(os.getpid())
    assert r is not None
    assert r.exe is None
    assert r.cmdline is None
    assert r.start_ticks > 0

    for exc in (psutil.NoSuchProcess(5), psutil.ZombieProcess(5)):

        def gone(pid: int, exc: Exception = exc) -> Any:
            raise exc

        monkeypatch.setattr(psutil, "Process", gone)
        fake_proc(tmp_path, 5, 1, 70, "zomb") if not (tmp_path / "5").exists() else None
        r = PsutilSource(tmp_path).process(5)  # falls back to the stat
        assert r is not None
        assert r.comm == "zomb"
        assert PsutilSource(tmp_path).process(6) is None


def test_bound_cmdline() -> None:
    assert bound_cmdline(None) is None
    assert bound_cmdline([]) is None
    assert bound_cmdline(["cat", "/etc/my file"]) == "cat '/etc/my file'"
    long = bound_cmdline(["x" * 1000])
    assert long is not None
    assert len(long) == CMDLINE_MAX
    assert long.endswith("...")


# -- the tree ------------------------------------------------------------------------


def test_walk_and_ancestors() -> None:
    src = FakeSource(*BASE, rec(700, 600, 300, "cat", argv=["cat", "/etc/shadow"]))
    e = enricher(src)
    assert len(e.tree) == 4
    assert e.tree.stats.walked == 4
    d = e.enrich(ev(700, 400 * TICK, 600, "cat", uid=65534, gid=0))
    assert d["exe"] == "/usr/bin/cat"
    assert d["cmdline"] == "cat /etc/shadow"
    assert names(d) == [(600, "bash"), (500, "sshd"), (1, "systemd")]
    assert d["ancestors"][0] == {"pid": 600, "comm": "bash", "exe": "/usr/bin/bash"}
    assert d["user"] is None
    assert d["group"] == "root"
    assert d["exited"] is False
    assert d["container"] is None
    assert d["unit"] is None
    assert src.lookups == 0  # all from the walk
    json.dumps(d)


def test_fork_exec_exit_events() -> None:
    src = FakeSource(*BASE)
    e = enricher(src)
    t = 1000 * TICK
    e.enrich(ev(600, t, 500, "bash", kind="fork", child_pid=601))
    # the exec event is enriched at once: /proc is read then
    src.procs[601] = rec(601, 600, 1000, "cat", argv=["cat", "/etc/shadow"])
    e.enrich(ev(601, t + MS, 600, "cat", kind="exec", filename="/usr/bin/cat"))
    d = e.enrich(ev(601, t + 2 * MS, 600, "cat"))
    assert d["exe"] == "/usr/bin/cat"
    assert d["cmdline"] == "cat /etc/shadow"
    assert names(d) == [(600, "bash"), (500, "sshd"), (1, "systemd")]
    x = e.enrich(ev(601, t + 3 * MS, 600, "cat", kind="exit", exit_code=256))
    assert x["exited"] is True
    del src.procs[601]
    late = e.enrich(ev(601, t + 2 * MS + 1, 600, "cat"))  # delivered after the exit
    assert late["exited"] is True
    assert late["exe"] == "/usr/bin/cat"
    s = e.tree.stats
    assert (s.forks, s.execs, s.exits, s.refreshes) == (1, 1, 1, 1)
    assert s.misses == 0
    assert s.ghosts == 0


def test_exec_event_names_a_process_gone_before_enrichment() -> None:
    """The kernel's exec event carries the executable and argv: a short-lived
    chain (bash -c 'exec bash -c "python3 x.py"') gone before its first event is
    enriched is known without /proc, its ancestry too."""
    src = FakeSource(*BASE)
    e = enricher(src)
    t = 1000 * TICK
    e.enrich(ev(600, t, 500, "bash", kind="fork", child_pid=610))
    e.enrich(
        ev(
            610,
            t + MS,
            600,
            "sh",
            kind="exec",
            filename="/usr/bin/dash",
            argv=["sh", "-c", "bash -c 'exec python3 x.py'; true"],
        )
    )
    e.enrich(ev(610, t + 2 * MS, 600, "sh", kind="fork", child_pid=611))
    e.enrich(
        ev(
            611,
            t + 3 * MS,
            610,
            "bash",
            kind="exec",
            filename="/usr/bin/bash",
            argv=["bash", "-c", "exec python3 x.py"],
        )
    )
    e.enrich(
        ev(
            611,
            t + 4 * MS,
            610,
            "python3",
            kind="exec",
            filename="/usr/bin/python3.11",
            argv=["python3", "x.py"],
            argv_truncated=False,
        )
    )
    d = e.enrich(ev(611, t + 5 * MS, 610, "python3"))
    assert d["exe"] == "/usr/bin/python3.11"
    assert d["cmdline"] == "python3 x.py"
    assert d["exited"] is False
    assert d["ancestors"][:2] == [
        {"pid": 610, "comm": "sh", "exe": "/usr/bin/dash"},
        {"pid": 600, "comm": "bash", "exe": "/usr/bin/bash"},
    ]
    assert src.lookups == 0  # nothing read from /proc
    assert e.tree.stats.refreshes == 0


def test_exec_event_with_cut_argv() -> None:
    """argv longer than the event holds: its head, marked; /proc completes it
    at the first event if the process is still there."""
    src = FakeSource(*BASE)
    e = enricher(src)
    t = 1000 * TICK
    e.enrich(ev(600, t, 500, "bash", kind="fork", child_pid=620))
    e.enrich(
        ev(
            620,
            t + MS,
            600,
            "tool",
            kind="exec",
            filename="/usr/bin/tool",
            argv=["tool", "--long", "aaa"],
            argv_truncated=True,
        )
    )
    d = e.enrich(ev(620, t + 2 * MS, 600, "tool"))
    assert d["cmdline"] == "tool --long aaa..."  # gone from /proc: the head
    src.procs[621] = rec(621, 600, 1000, "tool", argv=["tool", "--long", "a" * 9])
    e.enrich(ev(600, t + 3 * MS, 500, "bash", kind="fork", child_pid=621))
    e.enrich(
        ev(
            621,
            t + 4 * MS,
            600,
            "tool",
            kind="exec",
            filename="/usr/bin/tool",
            argv=["tool", "--long", "aaa"],
            argv_truncated=True,
        )
    )
    d = e.enrich(ev(621, t + 5 * MS, 600, "tool"))
    assert d["cmdline"] == "tool --long aaaaaaaaa"


def test_fork_inherits_and_relative_exec() -> None:
    src = FakeSource(*BASE)
    e = enricher(src)
    t = 1000 * TICK
    e.enrich(ev(600, t, 500, "bash", kind="fork", child_pid=602))
    d = e.enrich(ev(602, t + MS, 600, "bash"))
    assert d["exe"] == "/usr/bin/bash"
    assert d["cmdline"] == "-bash"
    # exec of a relative path, process gone before the refresh: exe unknown
    e.enrich(ev(602, t + 2 * MS, 600, "tool", kind="exec", filename="./tool"))
    d = e.enrich(ev(602, t + 3 * MS, 600, "tool"))
    assert d["exe"] is None
    assert d["cmdline"] is None


def test_threads_are_not_processes() -> None:
    src = FakeSource(*BASE)
    src.threads.add((600, 650))
    e = enricher(src)
    e.enrich(ev(600, 1000 * TICK, 500, "bash", kind="fork", child_pid=650))
    assert 650 not in e.tree.live
    assert e.tree.stats.threads_skipped == 1
    # a thread's events carry the process's tgid
    d = e.fields({**ev(600, 1001 * TICK, 500, "worker"), "pid": 650})
    assert d["exe"] == "/usr/bin/bash"


def test_pid_reuse_with_process_events() -> None:
    """Same pid, two start times: each event goes to the right incarnation."""
    src = FakeSource(*BASE, rec(700, 600, 300, "old", "/usr/bin/old"))
    e = enricher(src)
    e.enrich(ev(700, 400 * TICK, 600, "old", kind="exit", exit_code=0))
    # pid 700 comes back as a child of sshd, 5 ticks later
    e.enrich(ev(500, 405 * TICK, 1, "sshd", kind="fork", child_pid=700))
    e.enrich(ev(700, 405 * TICK + MS, 500, "new", kind="exec", filename="/usr/bin/new"))
    src.procs[700] = rec(700, 500, 405, "new", "/usr/bin/new")
    new = e.enrich(ev(700, 406 * TICK, 500, "new"))
    old = e.enrich(ev(700, 399 * TICK, 600, "old"))  # a late event of the old one
    assert new["exe"] == "/usr/bin/new"
    assert names(new)[0] == (500, "sshd")
    assert new["exited"] is False
    assert old["exe"] == "/usr/bin/old"
    assert names(old)[0] == (600, "bash")
    assert old["exited"] is True
    assert e.tree.stats.reused == 1
    keys = [p.key for p in e.tree.lru if p.tgid == 700]
    assert len(keys) == 2
    assert keys[0] != keys[1]


def test_pid_reuse_without_process_events() -> None:
    """No exec/fork/exit seen: a ppid that disagrees makes the tree check /proc."""
    src = FakeSource(*BASE, rec(700, 600, 300, "old", "/usr/bin/old"))
    e = enricher(src)
    assert e.enrich(ev(700, 400 * TICK, 600, "old"))["exe"] == "/usr/bin/old"
    src.procs[700] = rec(700, 500, 900, "new", "/usr/bin/new")
    d = e.enrich(ev(700, 901 * TICK, 500, "new"))
    assert d["exe"] == "/usr/bin/new"
    assert names(d)[0] == (500, "sshd")
    assert e.tree.stats.reused == 1
    # reparenting (the parent died; same start time): no new incarnation
    src.procs[700] = rec(700, 1, 900, "new", "/usr/bin/new")
    d = e.enrich(ev(700, 902 * TICK, 1, "new"))
    assert names(d) == [(1, "systemd")]
    assert e.tree.stats.reused == 1


def test_reuse_seen_only_through_exec() -> None:
    """Exit seen, the new process's fork not (the tracer's own forks are filtered
    in the kernel): its exec, after the exit, makes the tree ask /proc."""
    src = FakeSource(*BASE, rec(700, 600, 300, "old", "/usr/bin/old"))
    e = enricher(src)
    e.enrich(ev(700, 400 * TICK, 600, "old", kind="exit", exit_code=0))
    src.procs[700] = rec(700, 600, 450, "new", "/usr/bin/new", ["new", "-x"])
    e.enrich(ev(700, 451 * TICK, 600, "new", kind="exec", filename="/usr/bin/new"))
    d = e.enrich(ev(700, 452 * TICK, 600, "new"))
    assert d["exe"] == "/usr/bin/new"
    assert d["cmdline"] == "new -x"
    assert d["exited"] is False
    assert e.tree.stats.reused == 1
    old = e.fields(ev(700, 399 * TICK, 600, "old"))
    assert old["exe"] == "/usr/bin/old"
    assert old["exited"] is True


def test_reuse_gone_before_enrichment() -> None:
    """As above, but the new process had exited before its events were read:
    /proc has nothing; the exec event itself makes the new incarnation."""
    src = FakeSource(*BASE, rec(700, 600, 300, "old", "/usr/bin/old"))
    e = enricher(src)
    e.enrich(ev(700, 400 * TICK, 600, "old", kind="exit", exit_code=0))
    del src.procs[700]
    e.enrich(ev(700, 451 * TICK, 1, "new", kind="exec", filename="/usr/bin/new"))
    d = e.enrich(ev(700, 452 * TICK, 1, "new"))
    assert d["exe"] == "/usr/bin/new"
    assert names(d) == [(1, "systemd")]
    assert d["exited"] is False
    x = e.enrich(ev(700, 453 * TICK, 1, "new", kind="exit", exit_code=0))
    assert x["exited"] is True
    assert e.fields(ev(700, 399 * TICK, 600, "old"))["exe"] == "/usr/bin/old"
    # no exec either: an event after the exit with another ppid is another process
    e.fields(ev(700, 600 * TICK, 500, "third"))
    d = e.fields(ev(700, 601 * TICK, 500, "third"))
    assert names(d)[0] == (500, "sshd")
    assert d["exited"] is True
    assert len({p.key for p in e.tree.lru if p.tgid == 700}) == 3


def test_threads_outliving_their_leader() -> None:
    """The leader called pthread_exit: exit event, yet events keep coming and
    /proc shows the same process (same start): not exited after all."""
    src = FakeSource(*BASE, rec(700, 600, 300, "srv"))
    e = enricher(src)
    e.enrich(ev(700, 400 * TICK, 600, "srv", kind="exit", exit_code=0))
    d = e.fields(ev(700, 401 * TICK, 600, "srv"))
    assert d["exited"] is False
    assert e.tree.stats.reused == 0
    # gone for good: after-exit events re-check /proc at most every 100 ms
    e.enrich(ev(700, 500 * TICK, 600, "srv", kind="exit", exit_code=0))
    del src.procs[700]
    before = src.lookups
    for k in range(50):
        assert e.fields(ev(700, 501 * TICK + k * MS, 600, "srv"))["exited"] is True
    assert src.lookups - before == 1


def test_ghost_replaced_by_the_real_process() -> None:
    """A ghost (nothing in /proc at the time) whose process shows up later."""
    src = FakeSource(*BASE)
    e = enricher(src)
    assert e.fields(ev(900, 1000 * TICK, 600, "slow"))["exited"] is True
    src.procs[900] = rec(900, 600, 999, "slow", "/usr/bin/slow")
    d = e.fields(ev(900, 1000 * TICK + 200 * MS, 600, "slow"))
    assert d["exe"] == "/usr/bin/slow"
    assert d["exited"] is False
    assert [p.ghost for p in e.tree.lru if p.tgid == 900] == [False]


def test_predecessor_event_after_pid_was_reused() -> None:
    """The event's process is gone and /proc shows a younger one with its pid."""
    src = FakeSource(*BASE, rec(800, 1, 5000, "younger"))
    e = ProcessTree(src, clock=FakeClock())  # no walk: everything is a miss
    enr = Enricher(e, CgroupMap(root=None, proc=Path("/nonexistent"), hybrid=False))
    d = enr.enrich(ev(800, 4000 * TICK, 600, "older"))
    assert d["exited"] is True
    assert d["exe"] is None
    assert e.stats.ghosts == 1
    young = enr.enrich(ev(800, 5001 * TICK, 1, "younger"))
    assert young["exe"] == "/usr/bin/younger"
    assert young["exited"] is False


def test_vanished_process_is_a_ghost() -> None:
    src = FakeSource(*BASE)
    e = enricher(src)
    d = e.enrich(ev(4242, 1000 * TICK, 600, "quick"))
    assert d["exited"] is True
    assert d["exe"] is None
    assert d["cmdline"] is None
    assert names(d) == [(600, "bash"), (500, "sshd"), (1, "systemd")]
    e.enrich(ev(4242, 1000 * TICK + MS, 600, "quick"))
    assert e.tree.stats.misses == 1
    assert e.tree.stats.ghosts == 1
    # unknown parent too: the chain ends with what the event said
    d = e.enrich(ev(4343, 1000 * TICK, 4444, "orphan"))
    assert d["ancestors"] == [{"pid": 4444, "comm": None, "exe": None}]


def test_exit_grace_then_eviction() -> None:
    src = FakeSource(*BASE, rec(700, 600, 300, "cat"))
    e = enricher(src)
    tree = e.tree
    e.enrich(ev(700, 400 * TICK, 600, "cat", kind="exit", exit_code=0))
    del src.procs[700]
    assert e.fields(ev(700, 400 * TICK + MS, 600, "cat"))["exited"] is True
    e.fields(ev(600, 400 * TICK + 6_000 * MS, 500, "bash"))  # 6 s later
    assert 700 not in tree.live
    assert tree.stats.evicted_exited == 1
    d = e.fields(ev(700, 400 * TICK + 6_001 * MS, 600, "cat"))
    assert d["exited"] is True
    assert tree.stats.ghosts == 1


def test_lru_bound_and_counters() -> None:
    many = [rec(1000 + i, 1, 50 + i, f"w{i}") for i in range(50)]
    src = FakeSource(*many)
    tree = ProcessTree(src, clock=FakeClock(), max_processes=10)
    tree.load()
    assert len(tree) == 10
    assert tree.stats.evicted_lru == 40
    assert len(tree.live) + sum(len(v) for v in tree.older.values()) == 10
    e = Enricher(tree, CgroupMap(root=None, proc=Path("/nonexistent"), hybrid=False))
    for i in range(50):
        e.fields(ev(1000 + i, 10_000 * TICK, 1, f"w{i}"))
    assert len(tree) == 10
    assert tree.stats.misses >= 40
    # the most recently used survive
    assert {p.tgid for p in tree.lru} >= {1049, 1048}
    with pytest.raises(ValueError, match="max_processes"):
        ProcessTree(src, max_processes=0)


def test_boot_offset_and_fork_vs_proc_same_process() -> None:
    """Suspend time (BOOTTIME - MONOTONIC) shifts /proc start times; a fork event
    and a /proc record of the same child within a tick are one process."""
    src = FakeSource(*BASE)
    tree = ProcessTree(src, clock=FakeClock(offset_ns=3_000 * TICK))
    assert tree.start_ns_of(5_000) == 2_000 * TICK
    tree.load()
    src.procs[900] = rec(900, 600, 5_000, "child")  # /proc: tick 5000 = mono 2000
    p = tree.lookup(900, 2_000 * TICK + 5 * MS, 600)  # event before the fork event
    tree.on_fork(2_000 * TICK + 2 * MS, 600, 900, "bash")
    assert tree.live[900] is p
    assert tree.stats.reused == 0


def test_users_and_groups_cached() -> None:
    calls: list[int] = []

    def user(uid: int) -> str | None:
        calls.append(uid)
        return "nobody" if uid == 65534 else None

    tree = ProcessTree(FakeSource(*BASE), clock=FakeClock())
    tree.load()
    e = Enricher(
        tree,
        CgroupMap(root=None, proc=Path("/nonexistent"), hybrid=False),
        user_name=user,
        group_name=lambda g: "nogroup",
    )
    for _ in range(3):
        d = e.fields(ev(600, 300 * TICK, 500, "bash", uid=65534, gid=65534))
    assert d["user"] == "nobody"
    assert d["group"] == "nogroup"
    assert calls == [65534]


def test_real_name_lookups() -> None:
    assert proctree._user_name(0) == "root"
    assert proctree._group_name(0) == "root"
    assert proctree._user_name(2**31 - 7) is None
    assert proctree._user_name(-1) is None


def test_container_and_unit(tmp_path: Path) -> None:
    cid = "ab" * 32
    (tmp_path / "cgroup.procs").write_text("")
    d1 = tmp_path / "system.slice" / f"docker-{cid}.scope"
    d2 = tmp_path / "system.slice" / "ssh.service"
    for d in (d1, d2):
        d.mkdir(parents=True)
    e = enricher(FakeSource(*BASE), cg_root=tmp_path)
    d = e.fields(ev(600, 300 * TICK, 500, "bash", cgroup=d1.stat().st_ino))
    assert d["container"] == {"runtime": "docker", "id": cid, "pod_uid": None}
    assert d["unit"] == f"docker-{cid}.scope"
    d = e.fields(ev(500, 300 * TICK, 1, "sshd", cgroup=d2.stat().st_ino))
    assert d["container"] is None
    assert d["unit"] == "ssh.service"
    d = e.fields(ev(1, 300 * TICK, 0, "systemd", cgroup=tmp_path.stat().st_ino))
    assert d["container"] is None
    assert d["unit"] is None
    # an unknown id: null, and not looked up again before the negative TTL
    misses = e.cgroups.misses
    for _ in range(5):
        assert e.fields(ev(1, 300 * TICK, 0, cgroup=987654321))["container"] is None
    assert e.cgroups.misses == misses + 1


def test_hybrid_host_uses_proc_cgroup() -> None:
    """v1/hybrid: the event's v2 id is the (empty) root; /proc/<pid>/cgroup knows."""
    r = ProcessRecord(
        600,
        500,
        200,
        "bash",
        "/usr/bin/bash",
        ["bash"],
        "1:name=systemd:/system.slice/ssh.service\n0::/\n",
    )
    tree = ProcessTree(FakeSource(r), clock=FakeClock())
    tree.load()
    cg = CgroupMap(root=None, proc=Path("/nonexistent"), hybrid=True)
    cg.paths[1] = "/"
    e = Enricher(tree, cg)
    assert e.fields(ev(600, 300 * TICK, 500, "bash", cgroup=1))["unit"] == "ssh.service"
    # a fork inherits it
    tree.on_fork(400 * TICK, 600, 601, "bash", 500)
    assert e.fields(ev(601, 401 * TICK, 600, "bash"))["unit"] == "ssh.service"


def test_ancestor_exec_invalidates_cached_chains() -> None:
    src = FakeSource(*BASE, rec(700, 600, 300, "cat"))
    e = enricher(src)
    assert names(e.fields(ev(700, 400 * TICK, 600)))[0] == (600, "bash")
    e.enrich(ev(600, 401 * TICK, 500, "zsh", kind="exec", filename="/usr/bin/zsh"))
    d = e.fields(ev(700, 402 * TICK, 600))
    assert d["ancestors"][0] == {"pid": 600, "comm": "zsh", "exe": "/usr/bin/bash"}
    # ^ exe re-read from the (fake) /proc, which still says bash


def test_cycle_and_depth_are_bounded() -> None:
    # a corrupt source: two processes that are each other's parent
    src = FakeSource(rec(10, 11, 5, "a"), rec(11, 10, 5, "b"))
    e = enricher(src)
    d = e.fields(ev(10, 100 * TICK, 11, "a"))
    assert names(d) == [(11, "b")]
    chain = [rec(2000 + i, 2000 + i - 1 if i else 1, 10, f"p{i}") for i in range(100)]
    e = enricher(FakeSource(*BASE, *chain))
    d = e.fields(ev(2099, 100 * TICK, 2098, "p99"))
    assert len(d["ancestors"]) == proctree.ANCESTORS_MAX


def test_apply_ignores_other_kinds_and_bad_objects() -> None:
    e = enricher(FakeSource(*BASE))
    e.tree.apply(ev(600, 300 * TICK, 500))
    e.tree.apply({**ev(600, 300 * TICK, 500, kind="fork"), "object": {}})
    e.tree.apply({**ev(999, 300 * TICK, 1, kind="exit"), "object": {"exit_code": 9}})
    assert e.tree.stats.forks == 0
    assert e.tree.stats.exits == 1


# -- --tree -------------------------------------------------------------------------


def test_format_tree() -> None:
    src = FakeSource(*BASE, rec(700, 600, 300, "cat", argv=["cat", "/etc/shadow"]))
    e = enricher(src)
    d = e.enrich(ev(700, 400 * TICK, 600, "cat", gid=0))
    lines = format_tree(d)
    assert lines[0].startswith("18:15:58 700     cat             sys_openat")
    assert lines[0].endswith("EACCES:?          /etc/shadow")
    assert lines[1:5] == [
        "  process cat[700]  user root(0)  group root(0)",
        "  exe     /usr/bin/cat",
        "  cmdline cat /etc/shadow",
        "  in      host",
    ]
    assert lines[5:] == [
        "  <- bash[600] /usr/bin/bash",
        "  <- sshd[500] /usr/sbin/sshd",
        "  <- systemd[1] /usr/lib/systemd/systemd",
    ]


def test_format_tree_hostile_and_narrow() -> None:
    evil = "ev\x1b[31mil\n\udcff"
    src = FakeSource(
        rec(1, 0, 1, "systemd"),
        rec(600, 1, 200, evil, "/tmp/" + evil + "/" + "d" * 100, [evil, "x" * 300]),
    )
    e = enricher(src)
    cid = "cd" * 32
    d = e.enrich(
        ev(
            600,
            300 * TICK,
            1,
            evil,
            uid=4321,
            gid=4321,
            path="/srv/" + "p" * 200 + "/" + evil,
        )
    )
    d["container"] = {"runtime": "containerd", "id": cid, "pod_uid": "8b1c2d3e-4f50"}
    d["unit"] = f"cri-containerd-{cid}.scope"
    lines = format_tree(d)
    for ln in lines:
        assert columns(ln) <= 80, ln
        assert ln.isprintable()
        assert "\x1b" not in ln
    assert "\\x1b[31m" in lines[1]
    assert "\\xff" in lines[1]
    assert lines[1].endswith("]  user 4321  group 4321")
    assert lines[2].startswith("  exe     ~")
    assert lines[2].endswith("dddd")
    assert lines[3].startswith("  cmdline 'ev\\x1b[31mil\\n\\xff")
    assert lines[3].endswith("~")
    assert lines[4].startswith(f"  in      containerd {cid[:12]} pod 8b1c2d3e-4f50")
    assert not any(ln.startswith("  unit") for ln in lines)  # the container's own
    assert lines[0].endswith("\\xff")  # paths keep their end
    assert len(format_tree(d, width=0)[0]) > 80  # no limit
    d["container"] = None
    d["unit"] = "ssh.service"
    assert "  unit    ssh.service" in format_tree(d)
    # an exited process, unknown names, no ancestors
    bare = {**ev(5, 0, 0, "k"), "exited": True, "ancestors": [], "container": None}
    assert format_tree(bare)[1:] == [
        "  process k[5]  user 0  group 0  (exited)",
        "  in      host",
    ]


# -- boundaries -----------------------------------------------------------------------


def test_imports_stay_light() -> None:
    code = (
        "import sys, lsmtrace.proctree, lsmtrace.cgroups; "
        "print(sorted(m for m in ('bcc', 'textual', 'psutil') if m in sys.modules))"
    )
    res = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    assert res.stdout.strip() == "[]"
