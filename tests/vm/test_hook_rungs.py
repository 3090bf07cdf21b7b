"""The hook rungs, proven with real denials inside the VM target.

Each scenario runs `lsmtrace trace --backend {fexit,kprobe} --json`, causes one
real denial from a child whose pid it knows, and asserts the hook event field by
field: hook, verdict, errno, the LSM that said no, the object, pid and comm.
The same file runs on both rungs; a scenario whose LSM is not active in the
guest skips with that reason.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from product import Trace, lsmtrace_cmd
from workloads import active_lsms, tomoyo_load, tomoyo_ready

NOBODY = 65534
RUNGS = ("fexit", "kprobe")
START_TIMEOUT = 300.0  # TCG: compiling ~150 programs takes a while


def rung_loads(rung: str) -> tuple[bool, str]:
    from lsmtrace import probe

    probe.mount_pseudo_filesystems()
    res = probe.probe_rung(rung)
    return res.ok, res.detail


@pytest.fixture(params=RUNGS)
def rung(request: pytest.FixtureRequest) -> str:
    """For the tests that need a tracer of their own."""
    ok, detail = rung_loads(request.param)
    if not ok:
        pytest.skip(f"the {request.param} rung does not load here: {detail}")
    return str(request.param)


class Tracer(Trace):
    """One `lsmtrace trace --backend RUNG --json ...` for many scenarios.

    Under TCG compiling the programs takes a minute, so each rung's tracer is
    started once per module; scenarios wait for their event in its output.
    """

    def __init__(
        self, rung: str, workdir: Path, *args: str, env: dict[str, str] | None = None
    ) -> None:
        super().__init__(rung, workdir, *args, env=env)
        self.wait_started(START_TIMEOUT)

    def wait_hook(
        self, pid: int, hook: str, timeout: float = 60.0
    ) -> list[dict[str, Any]]:
        """This pid's events for `hook`, once at least one has arrived."""
        evs = self.wait_for(pid, lambda e: e["hook"] == hook, timeout)
        return [e for e in evs if e["hook"] == hook]

    def stop_events(self, sig: int = signal.SIGINT) -> list[dict[str, Any]]:
        rc = self.stop(sig)
        assert rc == 0, self.stderr
        return self.events()


LIVE_HOOKS = ("capable", "file_open", "ptrace_access_check", "task_kill")


@pytest.fixture(scope="module", params=RUNGS)
def live(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Tracer]:
    ok, detail = rung_loads(request.param)
    if not ok:
        pytest.skip(f"the {request.param} rung does not load here: {detail}")
    hooks = [a for h in LIVE_HOOKS for a in ("--hooks", h)]
    # fexit compiles against the pruned BTF header (the default), kprobe against
    # the kernel's header tree: both ways are proven on each kernel
    env = (
        dict(os.environ, LSMTRACE_HEADERS="kernel")
        if request.param == "kprobe"
        else None
    )
    t = Tracer(
        str(request.param), tmp_path_factory.mktemp("live"), "--denied", *hooks, env=env
    )
    try:
        yield t
    finally:
        t.kill()


@contextlib.contextmanager
def tracing(rung: str, tmp_path: Path, *args: str) -> Iterator[Tracer]:
    t = Tracer(rung, tmp_path, *args)
    try:
        yield t
    finally:
        t.kill()


def child(code: str, uid: int | None = None) -> subprocess.CompletedProcess[str]:
    """Run Python `code` in a child (optionally as `uid`); it prints its pid first."""
    prelude = "import os, sys, ctypes, errno\nprint(os.getpid(), flush=True)\n"
    drop = ""
    if uid is not None:
        drop = f"os.setgroups([]); os.setgid({uid}); os.setuid({uid})\n"
    return subprocess.run(
        [sys.executable, "-c", prelude + drop + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def pid_of(res: subprocess.CompletedProcess[str]) -> int:
    return int(res.stdout.split()[0])


def hook_events(
    events: list[dict[str, Any]], pid: int, hook: str
) -> list[dict[str, Any]]:
    return [e for e in events if e["tgid"] == pid and e["hook"] == hook]


def assert_denied_by(ev: dict[str, Any], rung: str, lsm: str, errno_name: str) -> None:
    assert ev["rung"] == rung
    assert ev["kind"] == "hook"
    assert ev["verdict"] == "deny"
    assert ev["errno"] == errno_name
    assert ev["lsm"] == lsm, ev


def test_capability(live: Tracer) -> None:
    res = child(
        """
        try:
            os.nice(-1)
            print("allowed")
        except OSError as e:
            print(errno.errorcode[e.errno])
        """,
        uid=NOBODY,
    )
    pid = pid_of(res)
    assert res.stdout.split()[1] in ("EPERM", "EACCES")
    caps = [e for e in live.wait_hook(pid, "capable") if e["object"]["cap"] == 23]
    assert caps, f"no capable(CAP_SYS_NICE) denial for {pid}: {live.events()[-5:]}"
    ev = caps[0]
    assert_denied_by(ev, live.rung, "capability", "EPERM")
    assert ev["object"]["cap_name"] == "CAP_SYS_NICE"
    assert ev["uid"] == NOBODY
    assert ev["pid"] == pid
    assert ev["comm"] == "python3"
    assert ev["latency_ns"] is not None
    assert ev["latency_ns"] > 0
    sys_ev = live.wait_hook(pid, "sys_setpriority")
    assert sys_ev, f"no syscall event for {pid}"
    assert sys_ev[0]["lsm"] == "capability", sys_ev


LANDLOCK_CHILD = """
import struct
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
attr = ctypes.create_string_buffer(struct.pack("<Q", 1 << 2), 8)  # READ_FILE
fd = libc.syscall(444, attr, ctypes.c_size_t(8), ctypes.c_uint32(0))
assert fd >= 0, ctypes.get_errno()
assert libc.prctl(38, 1, 0, 0, 0) == 0
assert libc.syscall(446, ctypes.c_int(fd), ctypes.c_uint32(0)) == 0
try:
    os.close(os.open(sys.argv[1], os.O_RDONLY))
    print("allowed")
except OSError as e:
    print(errno.errorcode[e.errno])
"""


def test_landlock(live: Tracer, tmp_path: Path) -> None:
    if "landlock" not in active_lsms():
        pytest.skip("landlock is not in /sys/kernel/security/lsm")
    target = tmp_path / "secret.txt"
    target.write_text("x")
    res = subprocess.run(
        [
            sys.executable,
            "-c",
            "import os,sys,ctypes,errno\nprint(os.getpid(),flush=True)\n"
            + LANDLOCK_CHILD,
            str(target),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    pid = pid_of(res)
    assert res.stdout.split()[1] == "EACCES", res
    evs = live.wait_hook(pid, "file_open")
    assert evs, f"no file_open denial for {pid}: {live.events()[-5:]}"
    ev = evs[0]
    assert_denied_by(ev, live.rung, "landlock", "EACCES")
    assert ev["object"]["path"] == str(target)
    assert ev["pid"] == pid
    sys_ev = live.wait_hook(pid, "sys_openat")
    assert sys_ev, f"no syscall event for {pid}"
    assert sys_ev[0]["lsm"] == "landlock", sys_ev


def test_dac(live: Tracer, tmp_path: Path) -> None:
    target = tmp_path / "mode000"
    target.write_text("x")
    target.chmod(0)
    tmp_path.chmod(0o755)
    res = child(
        f"""
        try:
            os.close(os.open({str(target)!r}, os.O_RDONLY))
            print("allowed")
        except OSError as e:
            print(errno.errorcode[e.errno])
        """,
        uid=NOBODY,
    )
    pid = pid_of(res)
    assert res.stdout.split()[1] == "EACCES"
    sys_ev = [
        e
        for e in live.wait_hook(pid, "sys_openat")
        if e["object"].get("path") == str(target)
    ]
    assert sys_ev, f"no sys_openat denial for {pid}: {live.events()[-5:]}"
    assert sys_ev[0]["verdict"] == "deny"
    assert sys_ev[0]["lsm"] == "dac"
    assert sys_ev[0]["errno"] == "EACCES"
    # no LSM hook said no: only the DAC-override capability checks failed
    mine = [e for e in live.events() if e["tgid"] == pid]
    vetoes = [e for e in mine if e["kind"] == "hook" and e["hook"] != "capable"]
    assert vetoes == []
    caps = {e["object"]["cap_name"] for e in mine if e["hook"] == "capable"}
    assert caps <= {
        "CAP_DAC_OVERRIDE",
        "CAP_DAC_READ_SEARCH",
        "CAP_FOWNER",
        "CAP_SYS_ADMIN",
    }


def test_each_header_source_compiles(live: Tracer) -> None:
    want = "headers from headers" if live.rung == "kprobe" else "headers from btf"
    assert want in live.stderr


def test_tracepoint_rung_on_this_kernel(tmp_path: Path) -> None:
    """The rung for kernels that allow nothing else, on the Debian kernels:
    it compiles (an optional event the kernel lacks, capability:cap_capable on
    6.1 and 6.12, is left out, not compiled in) and reports a denial."""
    target = tmp_path / "mode000"
    target.write_text("x")
    target.chmod(0)
    tmp_path.chmod(0o755)
    with tracing("tracepoint", tmp_path, "--denied") as t:
        res = child(
            f"""
            try:
                os.close(os.open({str(target)!r}, os.O_RDONLY))
            except OSError as e:
                print(errno.errorcode[e.errno])
            """,
            uid=NOBODY,
        )
        pid = pid_of(res)
        evs = [
            e
            for e in t.wait_hook(pid, "sys_openat")
            if e["object"].get("path") == str(target)
        ]
        assert evs, f"no sys_openat denial for {pid}: {t.events()[-5:]} {t.stderr}"
        t.stop_events()
    assert (evs[0]["rung"], evs[0]["verdict"], evs[0]["errno"]) == (
        "tracepoint",
        "deny",
        "EACCES",
    )
    has_cap_tp = Path("/sys/kernel/tracing/events/capability/cap_capable").is_dir()
    if not has_cap_tp:  # left out, and said so in the status line
        assert re.search(r"; [1-9]\d* skipped", t.stderr), t.stderr


@contextlib.contextmanager
def sysctl(path: str, value: str) -> Iterator[None]:
    p = Path(path)
    old = p.read_text().strip()
    p.write_text(value)
    try:
        yield
    finally:
        p.write_text(old)


def test_yama(live: Tracer) -> None:
    scope = Path("/proc/sys/kernel/yama/ptrace_scope")
    if "yama" not in active_lsms() or not scope.exists():
        pytest.skip("yama is not active in this kernel")
    victim = subprocess.Popen(
        [
            "setpriv",
            f"--reuid={NOBODY}",
            f"--regid={NOBODY}",
            "--clear-groups",
            "sleep",
            "60",
        ]
    )
    # Until setpriv has become nobody and exec'd sleep, the attacker's uid differs
    # from the victim's: DAC (capable CAP_SYS_PTRACE) refuses before Yama is asked.
    deadline = time.monotonic() + 30
    while Path(f"/proc/{victim.pid}/comm").read_text().strip() != "sleep":
        assert time.monotonic() < deadline, "setpriv did not exec sleep"
        time.sleep(0.05)
    try:
        with sysctl(str(scope), "1"):
            res = child(
                f"""
                libc = ctypes.CDLL(None, use_errno=True)
                r = libc.ptrace(16, {victim.pid}, 0, 0)  # PTRACE_ATTACH
                print("allowed" if r == 0 else errno.errorcode[ctypes.get_errno()])
                """,
                uid=NOBODY,
            )
    finally:
        victim.kill()
        victim.wait()
    pid = pid_of(res)
    assert res.stdout.split()[1] == "EPERM"
    evs = live.wait_hook(pid, "ptrace_access_check")
    assert evs, f"no ptrace_access_check denial for {pid}: {live.events()[-5:]}"
    assert_denied_by(evs[0], live.rung, "yama", "EPERM")
    assert evs[0]["object"]["target_pid"] == victim.pid


def test_apparmor(live: Tracer, tmp_path: Path) -> None:
    if "apparmor" not in active_lsms():
        pytest.skip("apparmor is not in /sys/kernel/security/lsm")
    parser = shutil.which("apparmor_parser")
    if parser is None:
        pytest.skip("apparmor_parser is not installed (Debian package apparmor)")
    exe = Path("/usr/local/bin/lsmt-aa-cat")
    shutil.copy("/usr/bin/cat", exe)
    secret = tmp_path / "aa-secret"
    secret.write_text("x")
    profile = tmp_path / "lsmt-aa-cat.profile"
    profile.write_text(
        textwrap.dedent(f"""
        abi <abi/3.0>,
        profile lsmt-aa-cat {exe} flags=(enforce) {{
          /etc/ld.so.cache r,
          /{{usr/,}}lib/** mr,
          {exe} mr,
          deny {secret} r,
        }}
        """)
    )
    subprocess.run([parser, "-r", str(profile)], check=True)
    try:
        proc = subprocess.Popen(
            [str(exe), str(secret)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        proc.communicate(timeout=30)
    finally:
        subprocess.run([parser, "-R", str(profile)], check=False)
        exe.unlink()
    assert proc.returncode != 0
    evs = live.wait_hook(proc.pid, "file_open")
    assert evs, f"no file_open denial for {proc.pid}: {live.events()[-5:]}"
    assert_denied_by(evs[0], live.rung, "apparmor", "EACCES")
    assert evs[0]["object"]["path"] == str(secret)
    assert evs[0]["comm"] == "lsmt-aa-cat"


BPF_LSM_PROG = r"""
#include <linux/fs.h>
BPF_ARRAY(marker, u64, 1);
LSM_PROBE(file_open, struct file *file)
{
    u32 zero = 0;
    u64 *ino = marker.lookup(&zero);
    if (ino && *ino && file->f_inode->i_ino == *ino)
        return -1; /* -EPERM */
    return 0;
}
"""


def test_bpf_lsm(live: Tracer, tmp_path: Path) -> None:
    if "bpf" not in active_lsms():
        pytest.skip("'bpf' missing from /sys/kernel/security/lsm")
    from bcc import BPF

    target = tmp_path / "bpf-marker"
    target.write_text("x")
    b = BPF(text=BPF_LSM_PROG)
    try:
        b["marker"][0] = b["marker"].Leaf(target.stat().st_ino)
        res = child(f"""
            try:
                os.close(os.open({str(target)!r}, os.O_RDONLY))
                print("allowed")
            except OSError as e:
                print(errno.errorcode[e.errno])
            """)
    finally:
        b.cleanup()
    pid = pid_of(res)
    assert res.stdout.split()[1] == "EPERM"
    evs = live.wait_hook(pid, "file_open")
    assert evs, f"no file_open denial for {pid}: {live.events()[-5:]}"
    assert_denied_by(evs[0], live.rung, "bpf", "EPERM")
    assert evs[0]["object"]["path"] == str(target)


def test_accounting_and_detach(rung: str, tmp_path: Path) -> None:
    """Small buffer + flood: attempted == delivered + lost; nothing left attached."""
    before = subprocess.run(
        ["bpftool", "prog", "show"], capture_output=True, text=True
    ).stdout
    with tracing(
        rung,
        tmp_path,
        "--hooks",
        "file_open",
        "--buffer-pages",
        "8",
        "--comm",
        "lsmt-flood",
    ) as t:
        subprocess.run(
            [
                sys.executable,
                "-c",
                "import ctypes,os\nctypes.CDLL(None).prctl(15, b'lsmt-flood', 0, 0, 0)\n"
                "for _ in range(30000): os.close(os.open('/etc/hostname', 0))",
            ],
            check=True,
            timeout=300,
        )
        events = t.stop_events(signal.SIGTERM)
    last = t.stderr.strip().splitlines()[-1]
    assert "mismatch" not in last, last
    delivered = int(last.split()[0])
    lost = int(last.split(" lost")[0].split()[-1])
    # every process's exec/fork/exit is delivered too (for the process tree,
    # past --comm), not printed
    procs = (
        int(last.split(" process events")[0].split()[-1])
        if " process events" in last
        else 0
    )
    assert delivered - procs == len(events), last
    assert delivered + lost >= 30000, last
    time.sleep(1)
    after = subprocess.run(
        ["bpftool", "prog", "show"], capture_output=True, text=True
    ).stdout
    ours = [
        ln
        for ln in after.splitlines()
        if "lsmt_" in ln or "kfunc__" in ln or "kretfunc__" in ln
    ]
    assert len(ours) <= len([ln for ln in before.splitlines() if "lsmt_" in ln]), ours


@dataclass
class Loop:
    """A workload recorded on the live rung and the policy generated from it."""

    work: Path  # holds a, b (the workload reads them) and c (the deviation)
    exe: Path  # a copy of cat: its own name gives it its own profile/domain
    policy: Path
    text: str


@contextlib.contextmanager
def closed_loop(live: Tracer, tmp_path: Path, target: str) -> Iterator[Loop]:
    """Record `EXE a b` with `lsmtrace record` and generate its `target` policy."""
    work = Path(f"/srv/lsmt-{target}-{live.rung}")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    for name in ("a", "b", "c"):
        (work / name).write_text(name)
    exe = Path(f"/usr/local/bin/lsmt-{target}-{live.rung}")
    shutil.copy("/usr/bin/cat", exe)
    rec, pol = tmp_path / "rec.jsonl", tmp_path / f"loop.{target}"
    try:
        subprocess.run(
            lsmtrace_cmd(
                "record",
                "-o",
                str(rec),
                "--backend",
                live.rung,
                "--",
                str(exe),
                str(work / "a"),
                str(work / "b"),
            ),
            check=True,
            cwd=tmp_path,
            timeout=600,
        )
        subprocess.run(
            lsmtrace_cmd(
                "policy", "generate", "--target", target, str(rec), "-o", str(pol)
            ),
            check=True,
            cwd=tmp_path,
            timeout=120,
        )
        text = pol.read_text()
        assert str(work / "c") not in text
        yield Loop(work, exe, pol, text)
    finally:
        exe.unlink(missing_ok=True)
        shutil.rmtree(work, ignore_errors=True)


def run_loop(loop: Loop, message: bytes) -> int:
    """Under the loaded policy: `EXE a b` still works, `EXE c` fails with
    `message`. Returns the failing run's pid."""
    ok = subprocess.run(
        [str(loop.exe), str(loop.work / "a"), str(loop.work / "b")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ok.returncode == 0, ok.stderr + "\n" + loop.text
    assert ok.stdout == "ab"
    bad = subprocess.Popen(
        [str(loop.exe), str(loop.work / "c")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    _out, err = bad.communicate(timeout=60)
    assert bad.returncode != 0
    assert message in err, err
    return bad.pid


def assert_loop_denial(
    live: Tracer, loop: Loop, pid: int, lsm: str, errno_name: str
) -> None:
    path = str(loop.work / "c")
    evs = [
        e for e in live.wait_hook(pid, "file_open") if e["object"].get("path") == path
    ]
    assert evs, f"no file_open denial of {path}: {live.events()[-5:]}"
    assert_denied_by(evs[0], live.rung, lsm, errno_name)


def test_apparmor_policy_closed_loop(live: Tracer, tmp_path: Path) -> None:
    """Issue #7's loop in enforce mode: record a workload, generate its AppArmor
    profile, load it; the workload still runs, a deviation is denied and traced
    with lsm = apparmor."""
    if "apparmor" not in active_lsms():
        pytest.skip("apparmor is not in /sys/kernel/security/lsm")
    parser = shutil.which("apparmor_parser")
    if parser is None:
        pytest.skip("apparmor_parser is not installed (Debian package apparmor)")
    with closed_loop(live, tmp_path, "apparmor") as loop:
        subprocess.run([parser, "-r", str(loop.policy)], check=True)
        try:
            pid = run_loop(loop, b"Permission denied")
        finally:
            subprocess.run([parser, "-R", str(loop.policy)], check=False)
    assert_loop_denial(live, loop, pid, "apparmor", "EACCES")


def test_tomoyo_policy_closed_loop(live: Tracer, tmp_path: Path) -> None:
    """Issue #7's loop for TOMOYO: record a workload, generate its domain
    policy, load its three parts with tomoyo-loadpolicy; the workload still
    runs under the enforcing profile, a deviation is denied (EPERM) and traced
    with lsm = tomoyo."""
    why = tomoyo_ready(active_lsms())
    if why:
        pytest.skip(why)
    from lsmtrace.policy import tomoyo

    with closed_loop(live, tmp_path, "tomoyo") as loop:
        assert f"<kernel> {loop.exe}\n" in loop.text
        parts = tomoyo.sections(loop.text)
        tomoyo_load("-p", parts["profile"])
        tomoyo_load("-e", parts["exception"])
        tomoyo_load("-d", parts["domain"])
        try:
            pid = run_loop(loop, b"Operation not permitted")
        finally:  # the domain and its initializer go; the profile is inert without them
            tomoyo_load("-d", f"delete <kernel> {tomoyo.encode(str(loop.exe))}\n")
            tomoyo_load(
                "-e",
                "".join(f"delete {ln}\n" for ln in parts["exception"].splitlines()),
            )
    assert_loop_denial(live, loop, pid, "tomoyo", "EPERM")


SETPRIV = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]


@contextlib.contextmanager
def world_tree() -> Iterator[Path]:
    """A tree uid 65534 can walk: a/f1.txt, a/b/f2.txt readable, hidden.txt mode 000."""
    import tempfile

    t = Path(os.path.realpath(tempfile.mkdtemp(prefix="lsmt-grep-", dir="/tmp")))
    try:
        (t / "a" / "b").mkdir(parents=True)
        (t / "a" / "f1.txt").write_text("needle 1\n")
        (t / "a" / "b" / "f2.txt").write_text("needle 2\n")
        (t / "hidden.txt").write_text("needle hidden\n")
        for d in (t, t / "a", t / "a" / "b"):
            d.chmod(0o755)
        for f in (t / "a" / "f1.txt", t / "a" / "b" / "f2.txt"):
            f.chmod(0o644)
        (t / "hidden.txt").chmod(0)
        yield t
    finally:
        shutil.rmtree(t, ignore_errors=True)


def test_grep_r_dac_denial_names_the_full_path(live: Tracer) -> None:
    """Issue 12: a DAC denial is decided before any LSM hook runs, so its only
    event is the syscall's; grep -r opens openat(dirfd, "hidden.txt"). The
    kernel joins the dirfd's path with the name: the real path, never a ghost."""
    with world_tree() as t:
        # setpriv execs grep: its pid is grep's; run from / (not the tree)
        grep = subprocess.Popen(
            [*SETPRIV, "grep", "-r", "needle", str(t)],
            cwd="/",
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        out, err = grep.communicate(timeout=120)
        pid = grep.pid
        evs = [e for e in live.wait_hook(pid, "sys_openat") if e["errno"] == "EACCES"]
    assert out.count("needle") == 2, (out, err)
    assert evs, f"no sys_openat denial for {pid}: {live.events()[-5:]}"
    ev = evs[0]
    assert ev["rung"] == live.rung
    assert (ev["kind"], ev["verdict"], ev["lsm"]) == ("syscall", "deny", "dac")
    assert ev["object"]["path"] == str(t / "hidden.txt")
    assert ev["object"]["path_kind"] == "joined"
    assert (ev["uid"], ev["comm"]) == (NOBODY, "grep")
    assert ev["exe"] == os.path.realpath("/usr/bin/grep")
    assert ev["cmdline"] == f"grep -r needle {t}"


def test_quiet_probe_is_noaudit_by_opts(live: Tracer, tmp_path: Path) -> None:
    """Reading a root process's /proc/<pid>/stat as nobody: ptrace_may_access
    asks ns_capable_noaudit(CAP_SYS_PTRACE), security_capable(..., opts =
    CAP_OPT_NOAUDIT): refused, and nothing is refused (the read succeeds).
    --denied leaves it out; --quiet-probes shows it with noaudit_by "opts"."""
    sleeper = subprocess.Popen(["sleep", "300"])
    try:
        with tracing(
            live.rung, tmp_path, "--denied", "--quiet-probes", "--hooks", "capable"
        ) as quiet:
            res = child(
                f"print(len(open('/proc/{sleeper.pid}/stat').read()) > 0)", uid=NOBODY
            )
            pid = pid_of(res)
            assert res.stdout.split()[1] == "True", res
            probes = [
                e
                for e in quiet.wait_hook(pid, "capable")
                if e["object"]["cap_name"] == "CAP_SYS_PTRACE"
            ]
            assert probes, f"no CAP_SYS_PTRACE probe for {pid}: {quiet.events()[-5:]}"
            quiet.stop_events()
    finally:
        sleeper.kill()
        sleeper.wait()
    ev = probes[0]
    assert (ev["verdict"], ev["errno"], ev["lsm"]) == ("deny", "EPERM", "capability")
    assert (ev["noaudit"], ev["noaudit_by"]) == (True, "opts")
    assert ev["object"]["opts"] & 2  # CAP_OPT_NOAUDIT
    time.sleep(1)
    assert [e for e in live.events() if e["tgid"] == pid] == []
