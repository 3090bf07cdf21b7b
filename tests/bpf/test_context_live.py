"""Who did it and on what, whatever the filters (issue 12), on the tracepoint rung.

One module-scoped scene, three tracers started at once:
  denied  `trace --json --denied`          every denial of the host
  nobody  `trace --json --uid 65534`       everything uid 65534 does
  count   `trace --count --json`           the kernel's counts at exit
then, with every tracer attached:
  - the issue's short-lived Landlock case: `sh -c 'bash -c "exec bash -c
    \\"python3 open-denied.py\\""; exit 0'`; the script restricts itself with
    Landlock and opens `secret.txt` (relative to its cwd): EACCES; bash execs
    bash execs python3, so one short-lived pid, whose parent sh exits next;
  - `grep -r needle TREE` as uid 65534 from `/`: openat(dirfd, name) for every
    file (fts), one file mode 000: EACCES on openat(dirfd, "hidden.txt");
  - `find TREE -name '*.txt'` as uid 65534 from `/`;
  - `/bin/true` as uid 65534: quiet capability probes (vm_enough_memory asks
    for CAP_SYS_ADMIN without enforcing), no denial;
  - `cat /etc/shadow` as uid 65534: a real denial;
  - `cat /proc/<root process>/stat` as uid 65534: ptrace_may_access asks
    ns_capable_noaudit(CAP_SYS_PTRACE), refused, and the read succeeds;
  - a connect to an abstract AF_UNIX socket as uid 65534;
  - `cat deep.txt` as uid 65534 from a directory deeper than the kernel side
    walks (LSMT_MAX_DEPTH): a successful open whose name is read only then.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import helpers
import pytest
from helpers import NOBODY, TraceRun

pytestmark = [helpers.needs_root, pytest.mark.root]

SETPRIV = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
# the command, under a shell that forks it and exits right after
CHAIN = "bash -c 'exec bash -c \"python3 open-denied.py\"'; exit 0"
# open-denied.py: Landlock (handled READ_FILE, no rule), then a relative open
OPEN_DENIED = r"""
import ctypes, os, struct, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
attr = ctypes.create_string_buffer(struct.pack("<Q", 1 << 2), 8)
fd = libc.syscall(444, attr, ctypes.c_size_t(8), ctypes.c_uint32(0))
assert fd >= 0 and libc.prctl(38, 1, 0, 0, 0) == 0
assert libc.syscall(446, ctypes.c_int(fd), ctypes.c_uint32(0)) == 0
try:
    os.open("secret.txt", os.O_RDONLY)
    err = "allowed"
except OSError as e:
    err = e.strerror
sys.stdout.write(f"{os.getpid()} {err}\n")
"""


DEEP = 20  # directories: more than the BPF path walk's LSMT_MAX_DEPTH (16)


@dataclass
class Scene:
    runs: dict[str, TraceRun]
    tree: Path  # the grep/find tree (real path)
    landlock_dir: Path
    pids: dict[str, int] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)
    abstract: str = ""

    def run(self, name: str) -> TraceRun:
        r = self.runs[name]
        if r.start_error:
            pytest.fail(r.start_error)
        return r


def spawn_nobody(argv: list[str], cwd: str = "/") -> tuple[int, str]:
    """(pid, output): setpriv execs the command, so its pid is the command's."""
    p = subprocess.Popen(
        [*SETPRIV, *argv],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    out, _ = p.communicate(timeout=60)
    return p.pid, out


@pytest.fixture(scope="module")
def scene(
    tracepoint_rung: None,
    world_dir: Path,
    root_sleeper: int,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Scene]:
    workdir = tmp_path_factory.mktemp("context")
    tree = Path(os.path.realpath(world_dir / "tree"))
    (tree / "a" / "b").mkdir(parents=True)
    for d in (tree, tree / "a", tree / "a" / "b"):
        d.chmod(0o755)
    (tree / "a" / "f1.txt").write_text("needle 1\n")
    (tree / "a" / "b" / "f2.txt").write_text("needle 2\n")
    hidden = tree / "hidden.txt"
    hidden.write_text("needle hidden\n")
    hidden.chmod(0)
    for f in (tree / "a" / "f1.txt", tree / "a" / "b" / "f2.txt"):
        f.chmod(0o644)
    deep = Path(os.path.realpath(world_dir))
    for i in range(DEEP):
        deep = deep / f"d{i}"
        deep.mkdir(mode=0o755)
    (deep / "deep.txt").write_text("deep\n")
    (deep / "deep.txt").chmod(0o644)
    ll = Path(os.path.realpath(world_dir / "landlock"))
    ll.mkdir(mode=0o755)
    (ll / "open-denied.py").write_text(OPEN_DENIED)
    (ll / "secret.txt").write_text("secret\n")

    runs = {
        "denied": TraceRun(["--denied"], workdir, name="denied"),
        "nobody": TraceRun(["--uid", str(NOBODY)], workdir, name="nobody"),
        "count": TraceRun(["--count"], workdir, name="count"),
    }
    sc = Scene(runs, tree, ll)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sc.abstract = f"lsmt-abstract-{os.getpid()}"
    listener.bind(b"\0" + sc.abstract.encode())
    listener.listen(1)
    try:
        for r in runs.values():
            r.start()
        helpers.wait_all_started(runs.values())

        env = {"PATH": "/usr/bin:/bin", "LC_ALL": "C"}
        chain = subprocess.Popen(
            ["sh", "-c", CHAIN], cwd=ll, env=env, stdout=subprocess.PIPE, text=True
        )
        out, _ = chain.communicate(timeout=60)
        sc.pids["sh"] = chain.pid
        sc.pids["python3"] = int(out.split()[0])
        sc.outputs["python3"] = out.strip()
        grep = ["grep", "-r", "needle", str(tree)]
        sc.pids["grep"], sc.outputs["grep"] = spawn_nobody(grep)
        sc.pids["find"], sc.outputs["find"] = spawn_nobody(
            ["find", str(tree), "-name", "*.txt"]
        )
        sc.pids["true"], sc.outputs["true"] = spawn_nobody(["/bin/true"])
        sc.pids["cat"], sc.outputs["cat"] = spawn_nobody(["cat", "/etc/shadow"])
        sc.pids["stat"], sc.outputs["stat"] = spawn_nobody(
            ["cat", f"/proc/{root_sleeper}/stat"]
        )
        code = (
            "import socket; s = socket.socket(socket.AF_UNIX); "
            f"s.connect(b'\\0{sc.abstract}'); s.close()"
        )
        sc.pids["connect"], sc.outputs["connect"] = spawn_nobody(
            [sys.executable, "-c", code]
        )
        sc.pids["deep"], sc.outputs["deep"] = spawn_nobody(
            ["cat", "deep.txt"], cwd=str(deep)
        )
        helpers.stop_all(r for r in runs.values() if not r.start_error)
        yield sc
    finally:
        listener.close()
        for r in runs.values():
            r.kill()


def events_of(run: TraceRun, pid: int, hook: str | None = None) -> list[dict[str, Any]]:
    return [
        e
        for e in run.events
        if e["tgid"] == pid and (hook is None or e["hook"] == hook)
    ]


def test_tracers_ran_and_events_follow_the_schema(scene: Scene) -> None:
    for name, r in scene.runs.items():
        r = scene.run(name)
        assert r.returncode == 0, r.describe()
        if name != "count":
            assert r.summary is not None, r.describe()
            assert not r.summary.mismatch, r.describe()
            helpers.assert_schema_valid(r.events)


# -- item 1: who, whatever the filters ----------------------------------------------


def test_short_lived_landlock_chain_is_fully_known(scene: Scene) -> None:
    """The issue's case under --denied: the denied process and its parent are
    gone when the consumer reads the denial; exe, cmdline and ancestry come
    from the kernel's exec/fork events, not from /proc after the fact."""
    py, sh = scene.pids["python3"], scene.pids["sh"]
    assert scene.outputs["python3"] == f"{py} Permission denied"
    evs = events_of(scene.run("denied"), py, "sys_openat")
    assert evs, scene.run("denied").describe()
    d = evs[0]
    want = {
        "kind": "syscall",
        "verdict": "deny",
        "errno": "EACCES",
        "ret": -13,
        "pid": py,
        "tgid": py,
        "ppid": sh,
        "comm": "python3",
        "uid": 0,
        "object": {
            "path": str(scene.landlock_dir / "secret.txt"),
            "path_kind": "joined",
            "flags": os.O_RDONLY | os.O_CLOEXEC,
        },
        "exe": os.path.realpath("/usr/bin/python3"),
        "cmdline": "python3 open-denied.py",
        "user": "root",
        "exited": False,
        "container": None,
    }
    assert {k: d.get(k) for k in want} == want
    anc = d["ancestors"]
    assert anc[0] == {"pid": sh, "comm": "sh", "exe": os.path.realpath("/bin/sh")}
    me = Path("/proc/self")
    assert anc[1] == {
        "pid": os.getpid(),
        "comm": (me / "comm").read_text().strip(),
        "exe": os.readlink(me / "exe"),
    }
    assert anc[-1]["pid"] == 1
    # the long-lived ancestors as /proc shows them (some hosts hide pid 1's exe)
    for a in anc[1:]:
        assert a["comm"] == Path(f"/proc/{a['pid']}/comm").read_text().strip(), a
        assert a["exe"] == proc_exe(a["pid"]), a


def proc_exe(pid: int) -> str | None:
    """/proc/<pid>/exe as the process tree keeps it (psutil drops the
    " (deleted)" of an unlinked executable, e.g. one run from a memfd)."""
    try:
        return os.readlink(f"/proc/{pid}/exe").removesuffix(" (deleted)")
    except OSError:
        return None


def test_short_lived_chain_process_events_were_not_shown(scene: Scene) -> None:
    """--denied shows denials only: the exec/fork/exit events that fed the
    process tree are counted in the summary, not printed."""
    r = scene.run("denied")
    assert all(e["verdict"] == "deny" for e in r.events)
    assert r.summary is not None
    assert r.summary.processes > 0


# -- item 2: exact paths ------------------------------------------------------------


def test_grep_r_opens_by_real_absolute_path(scene: Scene) -> None:
    t = scene.tree
    opens = events_of(scene.run("nobody"), scene.pids["grep"], "sys_openat")
    got = {
        (e["object"].get("path"), e["object"].get("path_kind"), e["verdict"])
        for e in opens
    }
    for path in (
        t,
        t / "a",
        t / "a" / "b",
        t / "a" / "f1.txt",
        t / "a" / "b" / "f2.txt",
    ):
        assert (str(path), "exact", "allow") in got, sorted(got)
    assert (str(t / "hidden.txt"), "joined", "deny") in got, sorted(got)
    # no name is left relative: every path is absolute and says how it was made
    assert all(str(p).startswith("/") and k in ("exact", "joined") for p, k, _v in got)


def test_denied_openat_dirfd_name_is_joined(scene: Scene) -> None:
    evs = events_of(scene.run("denied"), scene.pids["grep"], "sys_openat")
    assert [e["object"] for e in evs] == [
        {
            "path": str(scene.tree / "hidden.txt"),
            "path_kind": "joined",
            "flags": evs[0]["object"]["flags"],
        }
    ]
    assert (evs[0]["errno"], evs[0]["uid"], evs[0]["comm"]) == (
        "EACCES",
        NOBODY,
        "grep",
    )
    assert scene.outputs["grep"].count("needle") == 2


def test_open_too_deep_to_walk_keeps_its_name_as_given(scene: Scene) -> None:
    """A successful open's path comes from its new fd's file; where that walk
    stops short (deeper than LSMT_MAX_DEPTH), the name the program gave is
    read from its memory then, and said to be as given."""
    assert scene.outputs["deep"] == "deep\n"
    evs = [
        e
        for e in events_of(scene.run("nobody"), scene.pids["deep"], "sys_openat")
        if str(e["object"].get("path", "")).endswith("deep.txt")
    ]
    assert [
        (e["verdict"], e["object"]["path"], e["object"]["path_kind"]) for e in evs
    ] == [("allow", "deep.txt", "as_given")], evs


def test_find_walks_directories_by_real_path(scene: Scene) -> None:
    t = scene.tree
    opens = events_of(scene.run("nobody"), scene.pids["find"], "sys_openat")
    got = {(e["object"].get("path"), e["object"].get("path_kind")) for e in opens}
    for d in (t, t / "a", t / "a" / "b"):
        assert (str(d), "exact") in got, sorted(got)
    assert not [p for p, _k in got if not str(p).startswith("/")]


# -- item 6: quiet capability probes -----------------------------------------------


def test_quiet_probes_are_not_denials(scene: Scene) -> None:
    """`/bin/true` as nobody: memory accounting asks for CAP_SYS_ADMIN without
    enforcing (CAP_OPT_NOAUDIT). Nothing is refused: --denied shows nothing of
    it; `cat /etc/shadow` still shows its real denial."""
    r = scene.run("denied")
    # (before its exec, setpriv's own capset is refused CAP_SETPCAP: a real
    # check of the capability module, not a quiet probe)
    after_exec = [e for e in events_of(r, scene.pids["true"]) if e["comm"] == "true"]
    assert after_exec == []
    assert r.summary is not None
    assert r.summary.quiet >= 7, r.describe()
    probes = [
        e
        for e in events_of(scene.run("nobody"), scene.pids["true"], "capable")
        if e["verdict"] == "deny" and e["comm"] == "true"
    ]
    assert probes == [], "quiet probes are left out without --quiet-probes"
    cat = scene.pids["cat"]
    opens = events_of(r, cat, "sys_openat")
    assert [e["object"] for e in opens] == [
        {"path": "/etc/shadow", "path_kind": "joined"}
    ]
    # the DAC overrides it was refused are real checks, shown
    caps = [e for e in events_of(r, cat, "capable") if e["comm"] == "cat"]
    assert {e["object"]["cap_name"] for e in caps} == {
        "CAP_DAC_OVERRIDE",
        "CAP_DAC_READ_SEARCH",
    }
    assert all(e["noaudit"] is False for e in caps)


def test_ptrace_probe_through_ns_capable_noaudit_is_quiet(scene: Scene) -> None:
    """The other kind of call site: security_capable called from
    ns_capable_noaudit (not commoncap's memory accounting)."""
    assert scene.outputs["stat"].startswith(str(int(scene.outputs["stat"].split()[0])))
    evs = [
        e
        for e in events_of(scene.run("denied"), scene.pids["stat"])
        if e["comm"] == "cat"
    ]
    assert evs == []  # no CAP_SYS_PTRACE "denial": the read succeeded


def test_counts_keep_quiet_probes_apart(scene: Scene) -> None:
    r = scene.run("count")
    rows = [json.loads(ln) for ln in r.stdout.splitlines() if ln.strip()]
    quiet = [x for x in rows if x["hook"] == "capable" and x["verdict"] == "quiet"]
    assert sum(x["count"] for x in quiet) >= 7, rows
    assert {(x["errno"], x["lsm"]) for x in quiet} == {("EPERM", "capability")}


# -- item 8: abstract AF_UNIX names ---------------------------------------------------


def test_abstract_unix_name_is_at_name(scene: Scene) -> None:
    evs = events_of(scene.run("nobody"), scene.pids["connect"], "sys_connect")
    assert evs, scene.outputs["connect"]
    assert evs[0]["verdict"] == "allow"
    # sun_path starts with a NUL: the name is "@" and the rest, ss(8) style
    assert evs[0]["object"] == {"family": "AF_UNIX", "path": "@" + scene.abstract}
