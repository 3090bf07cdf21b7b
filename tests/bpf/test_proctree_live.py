"""Process ancestry, container and unit of real denials (root, tracepoint rung).

The scene: cgroups named the way systemd and Docker name them, under a test
slice of the cgroup v2 hierarchy:
    <v2>/lsmt-t<pid>.slice/docker-<64 hex>.scope
    <v2>/lsmt-t<pid>.slice/lsmt-t<pid>-unit.service
This test process starts a child (comm lsmt-ptchild), which starts two
grandchildren (lsmt-ptdock, lsmt-ptunit); each grandchild drops to uid 65534,
is moved into one of the cgroups, then opens a mode-000 root file: EACCES from
sys_openat.

Two ways of feeding the tree, as `trace` will:
  - a `lsmtrace trace --json --denied` subprocess, the tree from a /proc walk
    taken before the denials (--denied drops process events in the kernel);
    plus a `--cgroup` run on the directory resolve_cgroup_filter() gives for
    the container's id prefix: the kernel-side filter lets only it through;
  - a Tracer in this process with proc_events=True, the tree from a /proc walk
    taken *before the child exists* and then only from exec/fork/exit events.
    After the grandchildren exit, their pid is handed out again (ns_last_pid)
    to a new process: its events and a late copy of the predecessor's are told
    apart.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import select
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import helpers
import pytest
from helpers import NOBODY, TraceRun

from lsmtrace.cgroups import resolve_cgroup_filter
from lsmtrace.output import columns
from lsmtrace.proctree import Enricher, format_tree

pytestmark = [helpers.needs_root, pytest.mark.root]

GRAND_SRC = r"""
import ctypes, os, sys
comm, path = sys.argv[1], sys.argv[2]
libc = ctypes.CDLL(None)
libc.prctl.argtypes = [ctypes.c_int] + [ctypes.c_ulong] * 4
buf = ctypes.create_string_buffer(comm.encode(), 16)
assert libc.prctl(15, ctypes.addressof(buf), 0, 0, 0) == 0
os.setgroups([])
os.setgid(65534)
os.setuid(65534)
print("ready", flush=True)
if sys.stdin.readline().strip() != "go":
    sys.exit(3)
try:
    os.close(os.open(path, os.O_RDONLY))
    print("ok", flush=True)
except OSError as e:
    import errno
    print(errno.errorcode[e.errno], flush=True)
"""

CHILD_SRC = r"""
import ctypes, json, subprocess, sys
grand, path, comms = sys.argv[1], sys.argv[2], sys.argv[3:]
libc = ctypes.CDLL(None)
libc.prctl.argtypes = [ctypes.c_int] + [ctypes.c_ulong] * 4
buf = ctypes.create_string_buffer(b"lsmt-ptchild", 16)
assert libc.prctl(15, ctypes.addressof(buf), 0, 0, 0) == 0
kids = [subprocess.Popen([sys.executable, "-c", grand, c, path], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True) for c in comms]
for k in kids:
    assert k.stdout.readline().strip() == "ready"
print(json.dumps([k.pid for k in kids]), flush=True)
if sys.stdin.readline().strip() != "go":
    sys.exit(3)
out = [k.communicate("go\n", timeout=60)[0].strip() for k in kids]
print(json.dumps(out), flush=True)
"""


def _readline(p: subprocess.Popen[str], timeout: float = 30.0) -> str:
    assert p.stdout is not None
    ready, _, _ = select.select([p.stdout], [], [], timeout)
    if not ready:
        raise AssertionError(f"no output from pid {p.pid} in {timeout} s")
    return p.stdout.readline()


@dataclass
class Family:
    """The child and its two grandchildren, waiting for "go"."""

    child: subprocess.Popen[str]
    dock: int = 0
    unit: int = 0
    results: list[str] = field(default_factory=list)

    @classmethod
    def start(cls, secret: Path) -> Family:
        child = subprocess.Popen(
            [
                sys.executable,
                "-c",
                CHILD_SRC,
                GRAND_SRC,
                str(secret),
                "lsmt-ptdock",
                "lsmt-ptunit",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        f = cls(child)
        f.dock, f.unit = json.loads(_readline(child))
        return f

    def go(self) -> list[str]:
        assert self.child.stdin is not None
        self.child.stdin.write("go\n")
        self.child.stdin.flush()
        self.results = json.loads(_readline(self.child, 90))
        self.child.wait(30)
        return self.results

    def kill(self) -> None:
        for pid in (self.dock, self.unit):
            with contextlib.suppress(OSError):
                os.kill(pid, 9)
        if self.child.poll() is None:
            self.child.kill()
            self.child.wait()


@dataclass
class Cgroups:
    root: Path
    slice: Path
    docker: Path
    service: Path
    cid: str

    @classmethod
    def make(cls) -> Cgroups:
        root = helpers.cgroup2_root()
        if root is None:
            pytest.skip("no cgroup v2 hierarchy mounted")
        tag = f"lsmt-t{os.getpid()}"
        cid = secrets.token_hex(32)
        sl = root / f"{tag}.slice"
        cg = cls(root, sl, sl / f"docker-{cid}.scope", sl / f"{tag}-unit.service", cid)
        try:
            for d in (cg.slice, cg.docker, cg.service):
                d.mkdir()
        except OSError as e:
            cg.remove()
            pytest.skip(f"cannot create cgroups under {root}: {e}")
        return cg

    def move(self, pid: int, where: Path) -> None:
        (where / "cgroup.procs").write_text(str(pid))

    def remove(self) -> None:
        """Processes still inside go back to the root cgroup; then rmdir."""
        for d in (self.docker, self.service, self.slice):
            if not d.exists():
                continue
            try:
                pids = (d / "cgroup.procs").read_text().split()
            except OSError:
                pids = []
            for pid in pids:
                with contextlib.suppress(OSError):
                    (self.root / "cgroup.procs").write_text(pid)
            for _ in range(50):
                try:
                    d.rmdir()
                    break
                except OSError:
                    time.sleep(0.1)


@pytest.fixture
def cgroups() -> Iterator[Cgroups]:
    cg = Cgroups.make()
    try:
        yield cg
    finally:
        cg.remove()


@pytest.fixture
def secret(world_dir: Path) -> Path:
    p = world_dir / "proctree-secret"
    p.write_text("no\n")
    os.chmod(p, 0)
    assert stat.S_IMODE(p.stat().st_mode) == 0
    return p


def denial(events: list[dict[str, Any]], tgid: int) -> dict[str, Any]:
    hits = [
        e
        for e in events
        if e["tgid"] == tgid and e["hook"] == "sys_openat" and e["errno"] == "EACCES"
    ]
    assert hits, f"no EACCES sys_openat of pid {tgid} in {len(events)} events"
    return hits[0]


def check_family(
    d_dock: dict[str, Any], d_unit: dict[str, Any], fam: Family, cg: Cgroups
) -> None:
    assert d_dock["container"] == {"runtime": "docker", "id": cg.cid, "pod_uid": None}
    assert d_dock["unit"] == cg.docker.name
    assert d_unit["container"] is None
    assert d_unit["unit"] == cg.service.name
    for d in (d_dock, d_unit):
        anc = d["ancestors"]
        assert anc[0]["pid"] == fam.child.pid, anc
        assert anc[0]["comm"] == "lsmt-ptchild"
        assert anc[1]["pid"] == os.getpid(), anc
        assert anc[-1]["pid"] == 1, anc
        assert d["user"] == "nobody"
        assert d["exe"] == os.path.realpath(sys.executable)
        assert d["cmdline"].startswith(sys.executable + " -c ")
        assert len(d["cmdline"]) <= 256


def test_subprocess_tracer_and_proc_walk(
    tracepoint_rung: None, cgroups: Cgroups, secret: Path, tmp_path: Path
) -> None:
    cg = cgroups
    fam = Family.start(secret)
    try:
        cg.move(fam.dock, cg.docker)
        cg.move(fam.unit, cg.service)
        resolved = resolve_cgroup_filter(container=cg.cid[:10])
        assert resolved == cg.docker
        assert resolve_cgroup_filter(unit=cg.service.name.removesuffix(".service")) == (
            cg.service
        )
        main = TraceRun(["--denied", "--uid", str(NOBODY)], tmp_path, name="main")
        only = TraceRun(["--denied", "--cgroup", str(resolved)], tmp_path, name="cg")
        runs = [main.start(), only.start()]
        helpers.wait_all_started(runs)
        for r in runs:
            assert r.start_error is None, r.start_error
        enricher = Enricher.live()  # the walk: the family is there, in its cgroups
        assert fam.go() == ["EACCES", "EACCES"]
        time.sleep(0.5)
        helpers.stop_all(runs)
    finally:
        fam.kill()
        for r in locals().get("runs", []):
            r.kill()
    d_dock = enricher.enrich(dict(denial(main.events, fam.dock)))
    d_unit = enricher.enrich(dict(denial(main.events, fam.unit)))
    check_family(d_dock, d_unit, fam, cg)
    # the kernel filter on the resolved directory: the container's events only
    assert {e["tgid"] for e in only.events} == {fam.dock}, only.describe()
    lines = format_tree(d_dock)
    assert lines[0].split()[1:4] == [str(fam.dock), "lsmt-ptdock", "sys_openat"]
    assert f"  in      docker {cg.cid[:12]}" in lines
    assert lines[-1].startswith("  <- ")
    assert lines[-1].split()[1].endswith("[1]")
    assert f"  <- lsmt-ptchild[{fam.child.pid}]" in "\n".join(lines)
    assert all(columns(ln) <= 80 for ln in lines), lines
    assert enricher.tree.stats.ghosts == 0


def _reuse_pid(pid: int, secret: Path, tries: int = 30) -> subprocess.Popen[str] | None:
    """A new process that gets `pid` (written to ns_last_pid just before the
    fork; another fork on the machine can win the race: retried)."""
    for _ in range(tries):
        try:
            Path("/proc/sys/kernel/ns_last_pid").write_text(str(pid - 1))
        except OSError:
            return None
        p = subprocess.Popen(
            [sys.executable, "-c", GRAND_SRC, "lsmt-ptreuse", str(secret)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        if p.pid == pid:
            return p
        p.kill()
        p.wait()
    return None


def test_in_process_tracer_fed_by_process_events(
    tracepoint_rung: None, cgroups: Cgroups, secret: Path
) -> None:
    from lsmtrace.loader import TraceOptions, Tracer
    from lsmtrace.session import Session

    cg = cgroups
    enricher = Enricher.live()  # before the family exists: it comes from events
    # this process and its descendants (new ones added by the kernel at fork);
    # this process's own events, its forks included, are never traced
    tracer = Tracer(
        TraceOptions(
            backend="tracepoint",
            hooks=["sys_openat"],
            pid=os.getpid(),
            children=True,
            proc_events=True,
            latency=False,
        )
    )
    out: list[dict[str, Any]] = []
    # the pipeline every command uses: decode, enrich in order, hand over
    on_batch = Session(
        tracer, out.extend, enricher=enricher, process_events=True
    ).on_batch

    stop = threading.Event()

    def pump() -> None:  # the consumer never pauses while the scene runs
        while not stop.is_set():
            tracer.poll(on_batch, 0.05)

    fam: Family | None = None
    reuse: subprocess.Popen[str] | None = None
    thread = threading.Thread(target=pump, daemon=True)
    try:
        tracer.open()
        thread.start()
        fam = Family.start(secret)
        cg.move(fam.dock, cg.docker)
        cg.move(fam.unit, cg.service)
        time.sleep(0.2)
        assert fam.go() == ["EACCES", "EACCES"]
        time.sleep(0.3)
        reuse = _reuse_pid(fam.dock, secret)
        if reuse is not None:
            assert _readline(reuse).strip() == "ready"
            assert reuse.stdin is not None
            reuse.stdin.write("go\n")
            reuse.stdin.flush()
            assert _readline(reuse).strip() == "EACCES"
            reuse.wait(30)
        time.sleep(0.3)
    finally:
        stop.set()
        if thread.ident is not None:
            thread.join(10)
        lost = 0
        if tracer.bpf is not None:
            tracer.detach()
            tracer.drain(on_batch)
            lost = tracer.stats()["lost"]
        tracer.close()
        if fam is not None:
            fam.kill()
        if reuse is not None and reuse.poll() is None:
            reuse.kill()
    assert lost == 0, f"{lost} events lost: the tree cannot be checked"
    assert fam is not None
    tree = enricher.tree
    mine = [d for d in out if d["tgid"] in (fam.dock, fam.unit)]
    kinds = {d["kind"] for d in mine}
    assert {"exec", "exit", "syscall"} <= kinds, kinds
    assert tree.stats.forks >= 2  # the grandchildren came from fork events
    first = [d for d in out if d["tgid"] == fam.dock and d["errno"] == "EACCES"]
    d_dock = first[0]
    d_unit = denial(out, fam.unit)
    check_family(d_dock, d_unit, fam, cg)
    assert d_dock["exited"] is False
    exits = [d for d in mine if d["kind"] == "exit"]
    assert all(d["exited"] for d in exits)

    if reuse is None:
        pytest.skip(
            "could not hand the grandchild's pid to a new process "
            "(ns_last_pid unwritable or raced)"
        )
    new = [
        d
        for d in out
        if d["tgid"] == fam.dock
        and d["errno"] == "EACCES"
        and d["comm"] == "lsmt-ptreuse"
    ]
    assert new, "no denial of the process that reused the pid"
    n = new[0]
    assert n["ts_ns"] > d_dock["ts_ns"]
    assert n["container"] is None
    assert n["unit"] is None
    assert n["ancestors"][0]["pid"] == os.getpid()
    assert n["exited"] is False
    # a late copy of the predecessor's event still finds the predecessor
    late = {
        k: v
        for k, v in d_dock.items()
        if k not in ("exe", "cmdline", "ancestors", "exited", "container", "unit")
    }
    again = enricher.enrich(late)
    assert again["ancestors"][0]["pid"] == fam.child.pid
    assert again["container"] == d_dock["container"]
    assert again["exited"] is True
    keys = {p.key for p in tree.lru if p.tgid == fam.dock}
    assert len(keys) == 2, keys
