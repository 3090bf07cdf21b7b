"""Shared machinery of tests/bpf: run the real CLI, make real denials, read results.

Nothing here is specific to this host's kernel: what a test needs is probed
(`tracepoint_probe()`), and a test skips with the probe's reason when it is missing.

- `TraceRun`: `python -m lsmtrace trace --backend tracepoint ...` as a subprocess,
  stdout/stderr into files; `wait_started()` waits for the status line on stderr
  ("Tracing N hooks via ..."), `stop()` sends SIGINT (or another signal) and parses
  the JSON Lines and the exit summary.
- `Actor`: a child Python process that sets its comm, optionally drops to uid/gid
  65534, joins a cgroup, prints "ready", then waits for "go" on stdin before doing
  its actions (denied opens, nice(-1), kill, exec, Landlock, raw socket...). It
  reports each action's outcome (errno name) as one JSON line and exits. Its pid is
  known before any tracer starts, so `--pid` can name it.
"""

from __future__ import annotations

import contextlib
import ctypes as ct
import functools
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
ROOT_REASON = "needs root: loads BPF programs"
NOBODY = 65534

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason=ROOT_REASON)

START_TIMEOUT = 120.0  # several tracers compiling at once on 2 cores
STOP_TIMEOUT = 90.0  # detaching ~70 tracepoints takes seconds


def cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO), env.get("PYTHONPATH", "")) if p
    )
    env.setdefault("LC_ALL", "C.UTF-8")
    env.pop("PYTHONWARNINGS", None)
    return env


def lsmtrace_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "lsmtrace", *args]


def run_lsmtrace(
    *args: str, timeout: float = 180, **kw: object
) -> subprocess.CompletedProcess[bytes]:
    """`lsmtrace ARGS...` of this tree, output captured, exit status not checked."""
    return subprocess.run(
        lsmtrace_cmd(*args),
        env=cli_env(),
        capture_output=True,
        timeout=timeout,
        check=False,
        **kw,
    )  # type: ignore[call-overload]


@functools.lru_cache(maxsize=1)
def tracepoint_probe() -> tuple[bool, str]:
    from lsmtrace import probe

    probe.mount_pseudo_filesystems()
    res = probe.probe_tracepoint()
    return res.ok, res.detail


def require_tracepoint() -> None:
    ok, detail = tracepoint_probe()
    if not ok:
        pytest.skip(f"tracepoint rung unavailable: {detail}")


# -- the tracer ---------------------------------------------------------------

SUMMARY_RE = re.compile(
    r"^(?P<delivered>\d+) events \((?P<deny>\d+) denied, (?P<allow>\d+) allowed, "
    r"(?P<error>\d+) failed(?:, (?P<processes>\d+) process events)?"
    r"(?:, (?P<quiet>\d+) quiet capability probes)?\), (?P<lost>\d+) lost, (?P<attempted>\d+) attempted, "
    r"(?P<seen>\d+) decisions seen in "
    r"kernel, (?P<filtered>\d+) filtered(?P<mismatch> \[accounting mismatch\])?$"
)
STATUS_RE = re.compile(r"^Tracing (\d+) hooks via (\S+) ")


@dataclass
class Summary:
    delivered: int
    deny: int
    allow: int
    error: int
    processes: int
    quiet: int
    lost: int
    attempted: int
    seen: int
    filtered: int
    mismatch: bool
    line: str

    @property
    def shown(self) -> int:
        """Events printed: delivered minus the process events that only fed
        the process tree and the quiet capability probes left out."""
        return self.delivered - self.processes - self.quiet

    @property
    def adds_up(self) -> bool:
        """Every delivered event is counted once: a verdict, a process event
        or a quiet probe."""
        return (
            self.deny + self.allow + self.error + self.processes + self.quiet
            == self.delivered
        )


def parse_summary(stderr: str) -> Summary | None:
    for line in reversed(stderr.splitlines()):
        m = SUMMARY_RE.match(line.strip())
        if m:
            d = m.groupdict()
            return Summary(
                **{k: int(v or 0) for k, v in d.items() if k != "mismatch"},
                mismatch=d["mismatch"] is not None,
                line=line.strip(),
            )
    return None


@dataclass
class TraceRun:
    """One `lsmtrace trace --backend tracepoint ...` subprocess."""

    args: Sequence[str]
    workdir: Path
    name: str = "trace"
    json_output: bool = True
    # another lsmtrace than the checkout's (an installed one), run from `cwd`
    command: Sequence[str] | None = None
    cwd: Path = REPO
    env: dict[str, str] | None = None
    proc: subprocess.Popen[bytes] | None = None
    returncode: int | None = None
    stdout: bytes = b""
    stderr: str = ""
    start_error: str | None = None
    _events: list[dict[str, Any]] | None = field(default=None, repr=False)

    @property
    def out_path(self) -> Path:
        return self.workdir / f"{self.name}.out"

    @property
    def err_path(self) -> Path:
        return self.workdir / f"{self.name}.err"

    @property
    def argv(self) -> list[str]:
        extra = ["--json"] if self.json_output else []
        head = list(self.command) if self.command else lsmtrace_cmd()
        return [*head, "trace", "--backend", "tracepoint", *extra, *self.args]

    def start(self) -> TraceRun:
        self.workdir.mkdir(parents=True, exist_ok=True)
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen(
                self.argv,
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
                env=self.env if self.env is not None else cli_env(),
                cwd=str(self.cwd),
            )
        return self

    def _read_err(self) -> str:
        try:
            return self.err_path.read_text(errors="replace")
        except OSError:
            return ""

    def poll_started(self) -> bool | None:
        """True once the status line is out, False if it died first, None if not yet."""
        assert self.proc is not None
        if any(STATUS_RE.match(ln) for ln in self._read_err().splitlines()):
            return True
        if self.proc.poll() is not None:
            self.start_error = (
                f"{self.name}: {' '.join(self.argv)} exited {self.proc.returncode} "
                f"before its status line; stderr:\n{self._read_err()}"
            )
            return False
        return None

    def wait_started(self, timeout: float = START_TIMEOUT) -> TraceRun:
        wait_all_started([self], timeout)
        if self.start_error:
            raise AssertionError(self.start_error)
        return self

    @property
    def status_line(self) -> str:
        for ln in self._read_err().splitlines():
            if STATUS_RE.match(ln):
                return ln
        return ""

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def send(self, sig: int = signal.SIGINT) -> None:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)

    def wait(self, timeout: float = STOP_TIMEOUT) -> TraceRun:
        assert self.proc is not None
        try:
            self.returncode = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.returncode = self.proc.wait()
            self.stderr = self._read_err() + "\n[test: tracer did not exit; killed]"
            self.stdout = self.out_path.read_bytes()
            return self
        self.stdout = self.out_path.read_bytes()
        self.stderr = self._read_err()
        return self

    def stop(self, sig: int = signal.SIGINT, timeout: float = STOP_TIMEOUT) -> TraceRun:
        self.send(sig)
        return self.wait(timeout)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    @property
    def events(self) -> list[dict[str, Any]]:
        if self._events is None:
            assert self.json_output, "text-mode run: read .stdout"
            self._events = [
                json.loads(ln) for ln in self.stdout.splitlines() if ln.strip()
            ]
        return self._events

    @property
    def summary(self) -> Summary | None:
        return parse_summary(self.stderr)

    def describe(self) -> str:
        return (
            f"{self.name}: {' '.join(self.argv)}\n  exit {self.returncode}\n"
            f"  stderr: {self.stderr.strip()[-2000:]}\n  {len(self.stdout)} bytes stdout"
        )

    def select(self, **want: Any) -> list[dict[str, Any]]:
        return [e for e in self.events if all(e.get(k) == v for k, v in want.items())]


def wait_all_started(runs: Iterable[TraceRun], timeout: float = START_TIMEOUT) -> None:
    """Wait until every run printed its status line or died (then .start_error is set)."""
    pending = [r for r in runs]
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        pending = [r for r in pending if r.poll_started() is None]
        if pending:
            time.sleep(0.05)
    for r in pending:
        r.start_error = (
            f"{r.name}: no status line after {timeout:.0f} s:\n{r._read_err()}"
        )


def stop_all(runs: Iterable[TraceRun], sig: int = signal.SIGINT) -> None:
    runs = list(runs)
    for r in runs:
        if r.proc is not None:
            r.send(sig)
    for r in runs:
        if r.proc is not None:
            r.wait()


# -- actors: children that cause real denials -------------------------------

ACTOR_SRC = r"""
import ctypes, errno, json, os, signal, socket, struct, sys
spec = json.loads(sys.argv[1])
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
PR_SET_NAME, PR_SET_NO_NEW_PRIVS = 15, 38

def set_comm(name):
    buf = ctypes.create_string_buffer(name.encode(), 16)
    if libc.prctl(PR_SET_NAME, ctypes.addressof(buf), 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NAME)")

def err_name(e):
    return errno.errorcode.get(e, str(e))

def landlock(handled):
    attr = ctypes.create_string_buffer(struct.pack("<Q", handled), 8)
    fd = libc.syscall(444, attr, ctypes.c_size_t(8), ctypes.c_uint32(0))
    if fd < 0:
        return "create_ruleset:" + err_name(ctypes.get_errno())
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        return "no_new_privs:" + err_name(ctypes.get_errno())
    if libc.syscall(446, ctypes.c_int(fd), ctypes.c_uint32(0)) != 0:
        return "restrict_self:" + err_name(ctypes.get_errno())
    os.close(fd)
    return None

def try_(fn):
    try:
        r = fn()
    except OSError as e:
        return err_name(e.errno), None
    return None, r

def do(action):
    op = action[0]
    out = {"op": op}
    if op == "open":
        path = bytes.fromhex(action[1])
        out["errno"], fd = try_(lambda: os.open(path, os.O_RDONLY))
        if fd is not None:
            os.close(fd)
    elif op == "open_loop":
        path, n = bytes.fromhex(action[1]), action[2]
        fails = 0
        for _ in range(n):
            try:
                os.close(os.open(path, os.O_RDONLY))
            except OSError:
                fails += 1
        out["fails"] = fails
    elif op == "open_paced":
        path, n, batch, pause = bytes.fromhex(action[1]), action[2], action[3], action[4]
        import time
        done = 0
        while done < n:
            for _ in range(batch):
                try:
                    os.close(os.open(path, os.O_RDONLY))
                except OSError:
                    pass
            done += batch
            time.sleep(pause)
        out["opens"] = done
    elif op == "landlock_open":
        setup = landlock(action[2])
        if setup:
            out["setup"] = setup
            return out
        path = bytes.fromhex(action[1])
        out["errno"], fd = try_(lambda: os.open(path, os.O_RDONLY))
        if fd is not None:
            os.close(fd)
    elif op == "nice":
        out["errno"], _ = try_(lambda: os.nice(-1))
    elif op == "kill":
        out["errno"], _ = try_(lambda: os.kill(action[1], action[2]))
    elif op == "exec":
        path = bytes.fromhex(action[1])
        out["errno"], _ = try_(lambda: os.execv(path, [path]))
    elif op == "socket_raw":
        def mk():
            socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP).close()
        out["errno"], _ = try_(mk)
    elif op == "bind_port":
        def mk():
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as so:
                so.bind(("127.0.0.1", action[1]))
        out["errno"], _ = try_(mk)
    elif op == "connect_unix":
        def mk():
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as so:
                so.connect(bytes.fromhex(action[1]))
        out["errno"], _ = try_(mk)
    elif op == "fork_open":
        path = bytes.fromhex(action[1])
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            set_comm(action[2])
            e, fd = try_(lambda: os.open(path, os.O_RDONLY))
            if fd is not None:
                os.close(fd)
            os.write(w, (e or "ok").encode())
            os._exit(0)
        os.close(w)
        out["errno"] = os.read(r, 100).decode()
        os.close(r)
        os.waitpid(pid, 0)
        out["pid"] = pid
    else:
        out["setup"] = "unknown op " + op
    return out

set_comm(spec["comm"])
if spec.get("drop"):
    os.setgroups([])
    os.setgid(spec["drop"])
    os.setuid(spec["drop"])
sys.stdout.write("ready\n")
sys.stdout.flush()
if sys.stdin.readline().strip() != "go":
    sys.exit(3)
results = [do(a) for a in spec["actions"]]
sys.stdout.write(json.dumps(results) + "\n")
sys.stdout.flush()
"""


def hexpath(p: str | bytes | os.PathLike[str]) -> str:
    return os.fsencode(p).hex()


class Actor:
    """A child process that does its actions (denials) when told "go"."""

    def __init__(
        self,
        comm: str,
        actions: list[list[Any]],
        drop: int | None = None,
        prefix: tuple[str, ...] = (),
    ) -> None:
        """`prefix`: a command that execs the actor, keeping its pid (e.g.
        `systemd-run --scope`, to run it in a unit of its own)."""
        assert len(comm.encode()) <= 15, comm
        self.comm = comm
        spec = {"comm": comm, "actions": actions, "drop": drop}
        self.proc = subprocess.Popen(
            [*prefix, sys.executable, "-c", ACTOR_SRC, json.dumps(spec)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.pid = self.proc.pid
        self.results: list[dict[str, Any]] | None = None
        self.error = ""

    def _readline(self, timeout: float) -> str:
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            return ""
        return self.proc.stdout.readline().decode()

    def wait_ready(self, timeout: float = 30.0) -> None:
        line = self._readline(timeout)
        if line.strip() != "ready":
            self.proc.kill()
            _, err = self.proc.communicate()
            raise AssertionError(
                f"actor {self.comm} not ready: {line!r} {err.decode()}"
            )

    def go(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"go\n")
        self.proc.stdin.flush()

    def finish(self, timeout: float = 120.0) -> list[dict[str, Any]]:
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
        self.error = err.decode(errors="replace")
        lines = [ln for ln in out.decode(errors="replace").splitlines() if ln.strip()]
        self.results = json.loads(lines[-1]) if lines else []
        return self.results

    def result(self, op: str) -> dict[str, Any]:
        assert self.results is not None, "call finish() first"
        for r in self.results:
            if r["op"] == op:
                return r
        raise AssertionError(f"actor {self.comm} has no result for {op}: {self.error}")

    def results_of(self, i: int) -> dict[str, Any]:
        assert self.results is not None, "call finish() first"
        return self.results[i] if i < len(self.results) else {"setup": "no result"}

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


@contextlib.contextmanager
def actors_cleanup(actors: list[Actor]) -> Iterator[None]:
    try:
        yield
    finally:
        for a in actors:
            a.kill()


# -- the machine ---------------------------------------------------------------


def _mount_points(fstype: str) -> list[Path]:
    """Where filesystems of `fstype` are mounted, in /proc/self/mounts order."""
    try:
        lines = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return []
    fields = (ln.split() for ln in lines)
    return [
        Path(f[1].replace("\\040", " "))
        for f in fields
        if len(f) >= 3 and f[2] == fstype
    ]


def cgroup2_root() -> Path | None:
    """Mount point of the cgroup v2 hierarchy (it is not always /sys/fs/cgroup)."""
    return next(iter(_mount_points("cgroup2")), None)


def cgroup1_dir() -> Path | None:
    """A cgroup v1 hierarchy's root directory, when one is mounted (hybrid hosts)."""
    return next(
        (p for p in _mount_points("cgroup") if (p / "cgroup.procs").exists()), None
    )


def world_dir() -> Path:
    """A directory uid 65534 can traverse (pytest's tmp_path base is 0700)."""
    import tempfile

    d = Path(tempfile.mkdtemp(prefix="lsmtrace-test-", dir="/tmp"))
    os.chmod(d, 0o755)
    return d


def remove_tree(d: Path) -> None:
    shutil.rmtree(os.fsencode(d), ignore_errors=True)


# -- BPF programs of a process -------------------------------------------------


def prog_ids_of(pid: int) -> set[int]:
    """The ids of the BPF programs a process holds file descriptors of."""
    ids: set[int] = set()
    fdinfo = Path(f"/proc/{pid}/fdinfo")
    try:
        entries = list(fdinfo.iterdir())
    except OSError:
        return ids
    for f in entries:
        try:
            text = f.read_text()
        except OSError:
            continue
        for ln in text.splitlines():
            if ln.startswith("prog_id:"):
                ids.add(int(ln.split()[1]))
    return ids


_NR_BPF = {"x86_64": 321, "aarch64": 280}
BPF_PROG_GET_NEXT_ID = 11


def _progs_by_syscall() -> dict[int, str]:
    import platform

    libc = ct.CDLL(None, use_errno=True)
    libc.syscall.restype = ct.c_long
    nr = _NR_BPF[
        {"amd64": "x86_64", "arm64": "aarch64"}.get(
            platform.machine(), platform.machine()
        )
    ]
    out: dict[int, str] = {}
    start = 0
    while True:
        attr = (ct.c_uint32 * 4)(start, 0, 0, 0)
        if (
            libc.syscall(
                ct.c_long(nr), ct.c_long(BPF_PROG_GET_NEXT_ID), attr, ct.c_uint(16)
            )
            < 0
        ):
            break
        start = attr[1]
        out[start] = ""
    return out


def loaded_programs() -> dict[int, str]:
    """{prog id: name} of every BPF program loaded on the machine.

    `bpftool prog show -j` when bpftool is installed, else BPF_PROG_GET_NEXT_ID
    (ids only)."""
    bpftool = shutil.which("bpftool")
    if bpftool:
        r = subprocess.run(
            [bpftool, "prog", "show", "-j"], capture_output=True, text=True
        )
        if r.returncode == 0:
            return {
                int(p["id"]): str(p.get("name", ""))
                for p in json.loads(r.stdout or "[]")
            }
    return _progs_by_syscall()


# -- text output hygiene -------------------------------------------------------

CONTROL_BYTES = re.compile(rb"[\x00-\x09\x0b-\x1f\x7f]")


def raw_control_bytes(data: bytes) -> list[bytes]:
    """Control bytes other than the line feed that ends each line."""
    return CONTROL_BYTES.findall(data)


def assert_schema_valid(events: list[dict[str, Any]]) -> None:
    """Every event validates against the published JSON Schema
    (lsmtrace/schema/event.schema.json)."""
    import jsonschema

    from lsmtrace.schema import event_schema

    v = jsonschema.Draft202012Validator(event_schema())
    for ev in events:
        err = next(iter(v.iter_errors(ev)), None)
        assert err is None, f"{ev.get('hook')}: {err.message} at {list(err.path)}"


# -- the exporter --------------------------------------------------------------

URL_RE = re.compile(r"Serving (https?://\S+/metrics)\.")


@dataclass
class Exporter:
    """One `lsmtrace export ARGS` subprocess; `url` is read from its status line."""

    workdir: Path
    args: Sequence[str]
    # another lsmtrace than the checkout's (an installed one), run from `cwd`
    command: Sequence[str] | None = None
    cwd: Path = REPO
    env: dict[str, str] | None = None
    proc: subprocess.Popen[bytes] | None = None
    url: str = ""
    returncode: int | None = None
    stderr: str = ""
    prog_ids: set[int] = field(default_factory=set)

    @property
    def err_path(self) -> Path:
        return self.workdir / "export.err"

    @property
    def argv(self) -> list[str]:
        head = list(self.command) if self.command else lsmtrace_cmd()
        return [*head, "export", *self.args]

    def start(self) -> Exporter:
        with open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen(
                self.argv,
                stdout=subprocess.DEVNULL,
                stderr=err,
                stdin=subprocess.DEVNULL,
                cwd=str(self.cwd),
                env=self.env if self.env is not None else cli_env(),
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            text = self.err_path.read_text(errors="replace")
            m = URL_RE.search(text)
            if m:
                self.url = m.group(1)
                return self
            if self.proc.poll() is not None:
                pytest.fail(
                    f"{' '.join(self.argv)} exited {self.proc.returncode}:\n{text}"
                )
            time.sleep(0.05)
        self.proc.kill()
        pytest.fail(f"no status line after {START_TIMEOUT:.0f} s")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            self.returncode = self.proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.returncode = self.proc.wait()
        self.stderr = self.err_path.read_text(errors="replace")


# -- the installed product -----------------------------------------------------

VMTEST = REPO / "vagrant" / "vmtest.py"
INSTALL_SH = REPO / "deploy" / "install.sh"


@dataclass
class Dist:
    """`vmtest.py dist`: lsmtrace's wheel and a wheelhouse of its dependencies."""

    wheel: Path
    wheelhouse: Path
    sdist: Path | None = None


def build_dist(out: Path, via_sdist: bool = False) -> Dist:
    """The wheel the VM guest installs, built the same way (vagrant/vmtest.py dist)."""
    argv = [sys.executable, str(VMTEST), "dist", "--out", str(out)]
    r = subprocess.run(
        [*argv, *(["--sdist"] if via_sdist else [])],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, f"{' '.join(argv)}:\n{r.stdout}\n{r.stderr}"
    (wheel,) = out.glob("lsmtrace-*.whl")
    sdists = list(out.glob("lsmtrace-*.tar.gz"))
    return Dist(wheel, out / "wheelhouse", sdists[0] if sdists else None)


def installed_env() -> dict[str, str]:
    """The environment of a user's shell: nothing points into the checkout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env.setdefault("LC_ALL", "C.UTF-8")
    return env


def install(dist: Dist, prefix: Path) -> Path:
    """deploy/install.sh WHEEL WHEELHOUSE into `prefix` (offline: the wheelhouse only)."""
    env = dict(installed_env(), PREFIX=str(prefix))
    r = subprocess.run(
        ["sh", str(INSTALL_SH), str(dist.wheel), str(dist.wheelhouse)],
        capture_output=True,
        text=True,
        env=env,
        cwd="/",
        timeout=600,
    )
    assert r.returncode == 0, f"install.sh failed:\n{r.stdout}\n{r.stderr}"
    return prefix
