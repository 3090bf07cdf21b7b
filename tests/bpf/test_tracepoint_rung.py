"""The tracepoint rung end to end: real denials caused here, asserted field by field.

One module-scoped scene keeps the runtime down: every tracer (the plain
`--denied` run, one run per filter, a text-mode run) is started at once, each
waits for its status line, then the actor children are told to act, then every
tracer gets SIGINT. Each test reads its part of the scene.

Actors (child processes; pids known before any tracer starts):
  lsmt-landlock root, Landlock ruleset handling READ_FILE, opens a file: EACCES
  lsmt-nice     uid 65534, nice(-1): CAP_SYS_NICE denied, setpriority EACCES
  lsmt-kill     uid 65534, kill(root sleep, SIGUSR1): CAP_KILL denied, EPERM
  lsmt-exec     root, execve of a 0644 script: EACCES
  lsmt-hostile  uid 65534, opens a root 0600 file named with \\n, ESC, bad UTF-8
  lsmt-t/-o     uid 65534, open a root 0600 file (EACCES) and a 0644 one (allowed)
  lsmt-parent   uid 65534, forks lsmt-gchild, which opens the 0600 file
  lsmt-cg       uid 65534 in a child cgroup (v2), opens the 0600 file
  lsmt-net      uid 65534, socket(AF_INET, SOCK_RAW): EPERM; bind 127.0.0.1:80
                (CAP_NET_BIND_SERVICE): EACCES; connect to a unix socket in a
                0700 root directory: EACCES
"""

from __future__ import annotations

import os
import re
import signal
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import helpers
import pytest
from helpers import NOBODY, Actor, TraceRun, hexpath

pytestmark = [helpers.needs_root, pytest.mark.root]

LANDLOCK_ACCESS_FS_WRITE_FILE = 1 << 1
LANDLOCK_ACCESS_FS_READ_FILE = 1 << 2
HOSTILE_NAME = b"evil\n\x1b[31mred\xff\xfe.txt"
TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
# the process tree's enrichment (docs/proctree.md), on every JSON event
ENRICHED = {
    "exe",
    "cmdline",
    "user",
    "group",
    "ancestors",
    "container",
    "unit",
    "exited",
}


@dataclass
class Scene:
    runs: dict[str, TraceRun]
    actors: dict[str, Actor]
    files: dict[str, bytes]
    sleeper: int
    cgroup_id: int | None = None
    cgroup_skip: str = ""
    self_cgroup_id: int | None = None
    notes: list[str] = field(default_factory=list)

    def run(self, name: str) -> TraceRun:
        r = self.runs.get(name)
        if r is None:
            pytest.skip(self.cgroup_skip or f"no {name} run")
        if r.start_error:
            pytest.fail(r.start_error)
        return r


def _cgroup_of_self() -> int | None:
    root = helpers.cgroup2_root()
    if root is None:
        return None
    for ln in Path("/proc/self/cgroup").read_text().splitlines():
        if ln.startswith("0::"):
            try:
                return (root / ln[3:].lstrip("/")).stat().st_ino
            except OSError:
                return None
    return None


@pytest.fixture(scope="module")
def scene(
    tracepoint_rung: None,
    world_dir: Path,
    root_sleeper: int,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Scene]:
    workdir = tmp_path_factory.mktemp("rung")
    # files -------------------------------------------------------------------
    ll_file = tmp_path_factory.mktemp("landlock") / "landlocked.txt"
    ll_file.write_text("landlock\n")
    secret = world_dir / "secret"
    secret.write_text("secret\n")
    os.chmod(secret, 0o600)
    marker = world_dir / "marker"
    marker.write_text("marker\n")
    os.chmod(marker, 0o644)
    noexec = world_dir / "noexec.sh"
    noexec.write_text("#!/bin/sh\nexit 0\n")
    os.chmod(noexec, 0o644)
    private = world_dir / "private"
    private.mkdir(mode=0o700)
    unix_sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    unix_sock.bind(str(private / "sock"))
    hostile = os.fsencode(world_dir) + b"/" + HOSTILE_NAME
    os.close(os.open(hostile, os.O_WRONLY | os.O_CREAT, 0o600))
    files = {
        "landlock": os.fsencode(ll_file),
        "secret": os.fsencode(secret),
        "marker": os.fsencode(marker),
        "noexec": os.fsencode(noexec),
        "hostile": hostile,
        "sock": os.fsencode(private / "sock"),
    }

    # actors -------------------------------------------------------------------
    s, m = hexpath(secret), hexpath(marker)
    specs: dict[str, tuple[list[list[Any]], int | None]] = {
        "lsmt-landlock": (
            [
                [
                    "landlock_open",
                    hexpath(ll_file),
                    LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_WRITE_FILE,
                ]
            ],
            None,
        ),
        "lsmt-nice": ([["nice"]], NOBODY),
        "lsmt-kill": ([["kill", root_sleeper, int(signal.SIGUSR1)]], NOBODY),
        "lsmt-exec": ([["exec", hexpath(noexec)]], None),
        "lsmt-hostile": ([["open", hostile.hex()]], NOBODY),
        "lsmt-t": ([["open", s], ["open", m]], NOBODY),
        "lsmt-o": ([["open", s], ["open", m]], NOBODY),
        "lsmt-parent": ([["fork_open", s, "lsmt-gchild"]], NOBODY),
        "lsmt-net": (
            [
                ["socket_raw"],
                ["bind_port", 80],
                ["connect_unix", hexpath(private / "sock")],
            ],
            NOBODY,
        ),
    }
    cg_root = helpers.cgroup2_root()
    cgdir: Path | None = None
    cgroup_skip = ""
    if cg_root is None:
        cgroup_skip = "no cgroup v2 hierarchy mounted"
    else:
        cgdir = cg_root / f"lsmtrace-test-{os.getpid()}"
        try:
            cgdir.mkdir()
        except OSError as e:
            cgroup_skip = f"cannot create a child cgroup in {cg_root}: {e}"
            cgdir = None
        else:
            specs["lsmt-cg"] = ([["open", s]], NOBODY)

    actors = {name: Actor(name, acts, drop) for name, (acts, drop) in specs.items()}
    runs: dict[str, TraceRun] = {}
    sc = Scene(
        runs=runs,
        actors=actors,
        files=files,
        sleeper=root_sleeper,
        cgroup_skip=cgroup_skip,
        self_cgroup_id=_cgroup_of_self(),
    )
    try:
        for a in actors.values():
            a.wait_ready()
        if cgdir is not None:
            (cgdir / "cgroup.procs").write_text(str(actors["lsmt-cg"].pid))
            sc.cgroup_id = cgdir.stat().st_ino

        # tracers: all at once, each waits for its status line -------------------
        A = actors
        plan: dict[str, tuple[list[str], bool]] = {
            "main": (["--denied"], True),
            "text": (
                ["--pid", str(A["lsmt-hostile"].pid), "--denied", "--width", "400"],
                False,
            ),
            "pid": (["--pid", str(A["lsmt-t"].pid)], True),
            "children": (["--pid", str(A["lsmt-parent"].pid), "--children"], True),
            "uid": (["--uid", str(NOBODY)], True),
            "comm": (["--comm", "lsmt-t"], True),
            "hooks": (["--hooks", "sys_kill"], True),
            "family": (["--family", "network", "--denied"], True),
        }
        if cgdir is not None:
            plan["cgroup"] = (["--cgroup", str(cgdir)], True)
        for name, (args, js) in plan.items():
            runs[name] = TraceRun(args, workdir, name=name, json_output=js).start()
        helpers.wait_all_started(runs.values())

        # the denials ----------------------------------------------------------
        for a in actors.values():
            a.go()
        for a in actors.values():
            a.finish()
        helpers.stop_all(r for r in runs.values() if not r.start_error)
        for r in runs.values():
            if r.start_error:
                r.kill()
        yield sc
    finally:
        unix_sock.close()
        for r in runs.values():
            r.kill()
        for a in actors.values():
            a.kill()
        if cgdir is not None:
            try:
                cgdir.rmdir()
            except OSError as e:  # pragma: no cover - reported, not fatal
                sc.notes.append(f"could not remove {cgdir}: {e}")


# -- helpers -----------------------------------------------------------------------


def check(ev: dict[str, Any], **want: Any) -> None:
    bad = {
        k: {"want": v, "got": ev.get(k, "<missing>")}
        for k, v in want.items()
        if ev.get(k, "<missing>") != v
    }
    assert not bad, f"fields differ: {bad}\nevent: {ev}"


def find(run: TraceRun, tgid: int, hook: str, **obj: Any) -> list[dict[str, Any]]:
    return [
        e
        for e in run.events
        if e["tgid"] == tgid
        and e["hook"] == hook
        and all(e["object"].get(k) == v for k, v in obj.items())
    ]


def one(run: TraceRun, tgid: int, hook: str, **obj: Any) -> dict[str, Any]:
    evs = find(run, tgid, hook, **obj)
    if not evs:
        mine = [e for e in run.events if e["tgid"] == tgid]
        pytest.fail(
            f"no {hook} event of tgid {tgid} with object {obj} in {run.name} "
            f"({len(run.events)} events, {len(mine)} of this tgid: {mine[:8]})\n"
            + run.describe()
        )
    return evs[0]


def path_str(b: bytes) -> str:
    return b.decode("utf-8", "surrogateescape")


def common_fields(sc: Scene, actor: Actor, uid: int) -> dict[str, Any]:
    want: dict[str, Any] = {
        "rung": "tracepoint",
        "pid": actor.pid,
        "tgid": actor.pid,
        "ppid": os.getpid(),
        "uid": uid,
        "euid": uid,
        "gid": uid,
        "comm": actor.comm,
        "latency_ns": None,
        "truncated": False,
        "mntns": os.stat("/proc/self/ns/mnt").st_ino,
    }
    if sc.self_cgroup_id is not None and actor.comm != "lsmt-cg":
        want["cgroup"] = sc.self_cgroup_id
    return want


def check_shape(ev: dict[str, Any]) -> None:
    helpers.assert_schema_valid([ev])
    assert set(ev) >= ENRICHED, f"not enriched: {ENRICHED - set(ev)}"
    assert ev["container"] is None  # host processes: no container
    assert ev["user"] in ("root", "nobody")
    assert TIME_RE.match(ev["time"]), ev["time"]
    assert isinstance(ev["ts_ns"], int)
    assert ev["ts_ns"] > 0


# -- the tracers themselves -----------------------------------------------------------


def test_every_tracer_started_and_exited_cleanly(scene: Scene) -> None:
    problems = []
    for name, r in scene.runs.items():
        if r.start_error:
            problems.append(r.start_error)
            continue
        if not re.match(r"^Tracing \d+ hooks via tracepoint ", r.status_line):
            problems.append(f"{name}: status line {r.status_line!r}")
        if r.returncode != 0:
            problems.append(f"{name}: exit {r.returncode} after SIGINT\n{r.describe()}")
        if "Traceback" in r.stderr:
            problems.append(f"{name}: traceback\n{r.stderr}")
        s = r.summary
        if s is None:
            problems.append(f"{name}: no exit summary on stderr\n{r.stderr}")
            continue
        if s.mismatch:
            problems.append(f"{name}: {s.line}")
        if not s.adds_up:
            problems.append(f"{name}: verdict counts do not add up: {s.line}")
        lines = len([ln for ln in r.stdout.splitlines() if ln.strip()])
        header = 0 if r.json_output else 1
        if lines != s.shown + header:
            problems.append(f"{name}: {lines} lines on stdout, summary says {s.line}")
    assert not problems, "\n\n".join(problems)


def test_events_have_the_documented_shape(scene: Scene) -> None:
    evs = scene.run("main").events
    assert evs, scene.run("main").describe()
    for ev in evs:
        check_shape(ev)
        assert ev["rung"] == "tracepoint"


# -- 1. Landlock ------------------------------------------------------------------


def test_landlock_denial_of_openat(scene: Scene) -> None:
    a = scene.actors["lsmt-landlock"]
    r = a.result("landlock_open")
    if "setup" in r:
        pytest.skip(f"Landlock is not usable here: {r['setup']}")
    assert r["errno"] == "EACCES", f"the child's open was not denied: {r} {a.error}"
    path = path_str(scene.files["landlock"])
    ev = one(scene.run("main"), a.pid, "sys_openat", path=path)
    check_shape(ev)
    # the tracepoint rung cannot see Landlock: lsm null, not "dac", not a guess
    check(
        ev,
        kind="syscall",
        hook="sys_openat",
        family="file",
        verdict="deny",
        errno="EACCES",
        ret=-13,
        lsm=None,
        syscall="openat",
        **common_fields(scene, a, 0),
    )
    assert ev["object"]["flags"] & os.O_ACCMODE == os.O_RDONLY, ev["object"]
    assert ev["object"]["path"] == path


# -- 2. CAP_SYS_NICE ---------------------------------------------------------------


def test_cap_sys_nice_denial(scene: Scene) -> None:
    a = scene.actors["lsmt-nice"]
    r = a.result("nice")
    assert r["errno"] in ("EACCES", "EPERM"), f"nice(-1) was not denied: {r} {a.error}"
    run = scene.run("main")
    cap = one(run, a.pid, "capable", cap=23)
    check_shape(cap)
    check(
        cap,
        kind="capable",
        hook="capable",
        family="capability",
        verdict="deny",
        ret=-1,
        errno="EPERM",
        lsm="capability",
        syscall="setpriority",
        **common_fields(scene, a, NOBODY),
    )
    assert cap["object"]["cap_name"] == "CAP_SYS_NICE", cap["object"]
    sysev = one(run, a.pid, "sys_setpriority")
    check_shape(sysev)
    # the kernel says EACCES (set_one_prio); glibc's nice() turns it into EPERM
    check(
        sysev,
        kind="syscall",
        family="task",
        verdict="deny",
        errno="EACCES",
        ret=-13,
        syscall="setpriority",
        lsm="capability",
        **common_fields(scene, a, NOBODY),
    )
    assert cap["ts_ns"] <= sysev["ts_ns"]


# -- 3. kill of a root process -----------------------------------------------------


def test_kill_of_root_process_denied(scene: Scene) -> None:
    a = scene.actors["lsmt-kill"]
    r = a.result("kill")
    assert r["errno"] == "EPERM", f"kill was not denied: {r} {a.error}"
    run = scene.run("main")
    ev = one(run, a.pid, "sys_kill")
    check_shape(ev)
    check(
        ev,
        kind="syscall",
        family="task",
        verdict="deny",
        errno="EPERM",
        ret=-1,
        syscall="kill",
        lsm="capability",
        **common_fields(scene, a, NOBODY),
    )
    want_obj = {
        "sig": int(signal.SIGUSR1),
        "sig_name": "SIGUSR1",
        "target_pid": scene.sleeper,
    }
    assert {k: ev["object"].get(k) for k in want_obj} == want_obj, ev["object"]
    cap = one(run, a.pid, "capable", cap=5)
    check(
        cap,
        kind="capable",
        verdict="deny",
        ret=-1,
        errno="EPERM",
        lsm="capability",
        syscall="kill",
        comm=a.comm,
    )
    assert cap["object"]["cap_name"] == "CAP_KILL"


# -- 4. exec of a non-executable file ---------------------------------------------


def test_exec_of_non_executable_file_denied(scene: Scene) -> None:
    a = scene.actors["lsmt-exec"]
    r = a.result("exec")
    assert r["errno"] == "EACCES", f"exec was not denied: {r} {a.error}"
    path = path_str(scene.files["noexec"])
    ev = one(scene.run("main"), a.pid, "sys_execve", path=path)
    check_shape(ev)
    check(
        ev,
        kind="syscall",
        family="exec",
        verdict="deny",
        errno="EACCES",
        ret=-13,
        syscall="execve",
        lsm=None,
        **common_fields(scene, a, 0),
    )


# -- 5. filters ----------------------------------------------------------------------


def _denied_open(run: TraceRun, sc: Scene, tgid: int) -> dict[str, Any]:
    ev = one(run, tgid, "sys_openat", path=path_str(sc.files["secret"]))
    check(ev, verdict="deny", errno="EACCES", ret=-13)
    return ev


def _other_was_denied(sc: Scene, actor: str, hook: str) -> None:
    """The excluded process did get a denial, visible to the unfiltered run."""
    a = sc.actors[actor]
    assert find(sc.run("main"), a.pid, hook), (
        f"{actor} (pid {a.pid}) has no {hook} denial in the unfiltered run: "
        "the exclusion below would prove nothing"
    )


def _none_from(run: TraceRun, *pids: int) -> None:
    leaked = [e for e in run.events if e["tgid"] in pids]
    assert not leaked, f"{run.name} let through events of {pids}: {leaked[:5]}"


def test_filter_pid(scene: Scene) -> None:
    t, o = scene.actors["lsmt-t"], scene.actors["lsmt-o"]
    run = scene.run("pid")
    _denied_open(run, scene, t.pid)
    _other_was_denied(scene, "lsmt-o", "sys_openat")
    assert {e["tgid"] for e in run.events} == {t.pid}, run.describe()
    _none_from(run, o.pid)


def test_filter_pid_children(scene: Scene) -> None:
    p, o = scene.actors["lsmt-parent"], scene.actors["lsmt-o"]
    r = p.result("fork_open")
    assert r["errno"] == "EACCES", f"{r} {p.error}"
    g = r["pid"]
    run = scene.run("children")
    ev = _denied_open(run, scene, g)
    check(ev, pid=g, tgid=g, ppid=p.pid, comm="lsmt-gchild", uid=NOBODY)
    assert {e["tgid"] for e in run.events} <= {p.pid, g}, run.describe()
    _other_was_denied(scene, "lsmt-o", "sys_openat")
    _none_from(run, o.pid)


def test_filter_uid(scene: Scene) -> None:
    run = scene.run("uid")
    assert run.events, run.describe()
    assert {e["uid"] for e in run.events} == {NOBODY}
    nice = scene.actors["lsmt-nice"]
    one(run, nice.pid, "capable", cap=23)
    for root_actor, hook in (
        ("lsmt-exec", "sys_execve"),
        ("lsmt-landlock", "sys_openat"),
    ):
        if "setup" in scene.actors[root_actor].results_of(0):
            continue  # Landlock unusable here: no denial to exclude
        _other_was_denied(scene, root_actor, hook)
        _none_from(run, scene.actors[root_actor].pid)


def test_filter_comm(scene: Scene) -> None:
    t, o = scene.actors["lsmt-t"], scene.actors["lsmt-o"]
    run = scene.run("comm")
    assert {e["comm"] for e in run.events} == {"lsmt-t"}, run.describe()
    _denied_open(run, scene, t.pid)
    allowed = one(run, t.pid, "sys_openat", path=path_str(scene.files["marker"]))
    check(allowed, verdict="allow", ret=0, errno=None, lsm=None)
    _other_was_denied(scene, "lsmt-o", "sys_openat")
    _none_from(run, o.pid)


def test_filter_cgroup(scene: Scene) -> None:
    run = scene.run("cgroup")
    cg, o = scene.actors["lsmt-cg"], scene.actors["lsmt-o"]
    ev = _denied_open(run, scene, cg.pid)
    check(ev, cgroup=scene.cgroup_id, comm="lsmt-cg")
    assert {e["cgroup"] for e in run.events} == {scene.cgroup_id}, run.describe()
    _other_was_denied(scene, "lsmt-o", "sys_openat")
    _none_from(run, o.pid)


def test_filter_hooks(scene: Scene) -> None:
    run = scene.run("hooks")
    k = scene.actors["lsmt-kill"]
    one(run, k.pid, "sys_kill", target_pid=scene.sleeper)
    assert {e["hook"] for e in run.events} == {"sys_kill"}, run.describe()
    _other_was_denied(scene, "lsmt-nice", "sys_setpriority")
    _none_from(run, scene.actors["lsmt-nice"].pid)


def test_filter_family(scene: Scene) -> None:
    n = scene.actors["lsmt-net"]
    r = n.result("socket_raw")
    assert r["errno"] == "EPERM", f"raw socket was not denied: {r} {n.error}"
    run = scene.run("family")
    ev = one(run, n.pid, "sys_socket")
    check(
        ev,
        kind="syscall",
        family="network",
        verdict="deny",
        errno="EPERM",
        ret=-1,
        syscall="socket",
        comm="lsmt-net",
        uid=NOBODY,
    )
    assert ev["object"].get("family") == "AF_INET", ev["object"]
    assert ev["object"].get("type") == "SOCK_RAW", ev["object"]
    assert {e["family"] for e in run.events} == {"network"}, run.describe()
    assert {e["verdict"] for e in run.events} == {"deny"}
    _other_was_denied(scene, "lsmt-o", "sys_openat")
    _none_from(run, scene.actors["lsmt-o"].pid)


def test_socket_addresses_decoded(scene: Scene) -> None:
    """The sockaddr decoder reads family, address and port (AF_INET) and the
    path (AF_UNIX) from the syscall's user memory."""
    n = scene.actors["lsmt-net"]
    assert n.result("bind_port")["errno"] == "EACCES", n.error
    assert n.result("connect_unix")["errno"] == "EACCES", n.error
    run = scene.run("family")
    ev = one(run, n.pid, "sys_bind")
    check(ev, verdict="deny", errno="EACCES", syscall="bind", uid=NOBODY)
    assert ev["object"] == {"family": "AF_INET", "addr": "127.0.0.1", "port": 80}, ev
    ev = one(run, n.pid, "sys_connect")
    check(ev, verdict="deny", errno="EACCES", syscall="connect", uid=NOBODY)
    assert ev["object"] == {
        "family": "AF_UNIX",
        "path": os.fsdecode(scene.files["sock"]),
    }, ev


def test_filter_denied(scene: Scene) -> None:
    run = scene.run("main")
    t = scene.actors["lsmt-t"]
    assert {e["verdict"] for e in run.events} == {"deny"}, run.describe()
    _denied_open(run, scene, t.pid)
    marker = path_str(scene.files["marker"])
    # the same allowed open is in the --comm run (no --denied) ...
    assert find(scene.run("comm"), t.pid, "sys_openat", path=marker)
    # ... and not here
    assert not find(run, t.pid, "sys_openat", path=marker)


# -- 6. hostile names ----------------------------------------------------------------


def test_hostile_name_json_round_trips(scene: Scene) -> None:
    a = scene.actors["lsmt-hostile"]
    r = a.result("open")
    assert r["errno"] == "EACCES", f"{r} {a.error}"
    run = scene.run("main")
    evs = [e for e in run.events if e["tgid"] == a.pid and e["hook"] == "sys_openat"]
    assert evs, run.describe()
    ev = evs[0]
    check(ev, verdict="deny", errno="EACCES", comm="lsmt-hostile")
    assert (
        ev["object"]["path"].encode("utf-8", "surrogateescape")
        == scene.files["hostile"]
    )
    # JSON Lines: ASCII only, one event per line, no raw control byte anywhere
    assert run.stdout.isascii()
    assert helpers.raw_control_bytes(run.stdout) == []


def test_hostile_name_text_is_escaped(scene: Scene) -> None:
    a = scene.actors["lsmt-hostile"]
    run = scene.run("text")
    out = run.stdout
    assert helpers.raw_control_bytes(out) == [], out[:2000]
    assert b"\x1b" not in out
    assert b"\xff" not in out
    lines = [ln for ln in out.splitlines() if b"[31mred" in ln]
    assert len(lines) == 1, out.decode(errors="replace")
    ln = lines[0]
    assert b"evil\\n\\x1b[31mred\\xff\\xfe.txt" in ln, ln
    for part in (b"sys_openat", b"EACCES", str(a.pid).encode()):
        assert part in ln, ln
