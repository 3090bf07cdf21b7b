"""The deployment as users run it, inside the guest (it boots systemd).

- lsmtrace is the wheel built on the host, installed by deploy/install.sh into
  /opt/lsmtrace: imported from there, no source tree in the guest;
- deploy/systemd/lsmtrace-exporter.service, installed as shipped, is started by
  systemd and runs the installed exporter under the unit's hardening (the
  bounding set, no_new_privs, the seccomp filter and a read-only / are checked
  on the running process, while it serves);
- Debian's prometheus scrapes it every five seconds: real denials caused here show up
  in PromQL with the LSM that made them (capability, Landlock, AppArmor on the
  fexit rung), `promtool check metrics` accepts the exposition, and every query
  of deploy/grafana/lsmtrace.json evaluates and returns series;
- `systemctl restart` and `systemctl stop` leave none of the exporter's BPF
  programs loaded: ours are the ids the unit's main process holds (fdinfo), so
  another tracer on the machine does not count.
One exporter serves the module: under TCG each start compiles for minutes.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bpf"))

import helpers  # tests/bpf/helpers.py: Actor, prog_ids_of, loaded_programs
import prom  # tests/bpf/prom.py: the Prometheus server and the dashboard check
from product import LSMTRACE, not_installed

pytestmark = [pytest.mark.vm, pytest.mark.usefixtures("in_vm", "require_root")]

TESTS_ROOT = Path(__file__).resolve().parents[2]
UNIT = "lsmtrace-exporter.service"
UNIT_FILE = TESTS_ROOT / "deploy" / "systemd" / UNIT
START_TIMEOUT = 900.0  # TCG: the default hooks compile for minutes
# a scrape of ~150 programs' counts and fdinfo takes seconds under TCG on a busy host
SCRAPE_INTERVAL = 5
BPF_STATS = Path("/proc/sys/kernel/bpf_stats_enabled")
NOBODY = helpers.NOBODY
LANDLOCK_READ_FILE = 1 << 2
CAP_NICE, CAP_LANDLOCK, CAP_AA = "lsmtp-nice", "lsmtp-landlock", "lsmtp-aa-cat"
RUNG_RE = re.compile(r'lsmtrace_rung_info\{rung="(\w+)"')
# capability numbers (linux/capability.h) the bounding-set check looks at
CAP_BPF, CAP_SYS_MODULE, CAP_NET_ADMIN = 39, 16, 12


def systemctl(*args: str, check: bool = True) -> str:
    r = subprocess.run(
        ["systemctl", *args], capture_output=True, text=True, timeout=300
    )
    if check and r.returncode != 0:
        raise AssertionError(f"systemctl {' '.join(args)}: {r.stderr}\n{journal()}")
    return r.stdout.strip()


def journal() -> str:
    r = subprocess.run(
        ["journalctl", "-u", UNIT, "--no-pager", "-n", "30"],
        capture_output=True,
        text=True,
    )
    return r.stdout


def show(prop: str) -> str:
    return systemctl("show", "-p", prop, "--value", UNIT)


def listen_address() -> str:
    """host:port of the unit's first ExecStart= line (--listen)."""
    for ln in UNIT_FILE.read_text().splitlines():
        m = re.match(r"ExecStart=/\S+ .*--listen[ =](\S+)", ln)
        if m:
            return m.group(1)
    raise AssertionError(f"no --listen in {UNIT_FILE}")


@dataclass
class Unit:
    address: str
    main_pid: int = 0
    prog_ids: set[int] = field(default_factory=set)
    started_in: float = 0.0

    @property
    def url(self) -> str:
        return f"http://{self.address}/metrics"

    def wait_serving(self, timeout: float = START_TIMEOUT) -> None:
        t0 = time.monotonic()
        while True:
            state = show("ActiveState")
            if state == "active":
                try:
                    prom.http_get(self.url, timeout=10)
                    break
                except OSError:
                    pass
            elif state in ("failed", "inactive") or show("NRestarts") != "0":
                raise AssertionError(f"{UNIT} is {state}:\n{journal()}")
            if time.monotonic() - t0 > timeout:
                raise AssertionError(
                    f"{UNIT} not serving after {timeout:.0f} s\n{journal()}"
                )
            time.sleep(1)
        self.started_in = time.monotonic() - t0
        self.main_pid = int(show("MainPID"))
        self.prog_ids = helpers.prog_ids_of(self.main_pid)

    def exposition(self) -> str:
        return prom.http_get(self.url)


@pytest.fixture(scope="module")
def unit() -> Iterator[Unit]:
    if not Path("/run/systemd/system").is_dir():
        pytest.skip("systemd is not PID 1 here")
    old_stats = BPF_STATS.read_text().strip()
    BPF_STATS.write_text("1")  # the dashboard's BPF CPU panel needs run-time stats
    shutil.copy(UNIT_FILE, Path("/etc/systemd/system") / UNIT)
    systemctl("daemon-reload")
    u = Unit(listen_address())
    try:
        systemctl("start", UNIT)
        u.wait_serving()
        rung = RUNG_RE.findall(u.exposition())
        print(f"{UNIT} serving after {u.started_in:.0f} s, rung {rung}")
        yield u
    finally:
        systemctl("stop", UNIT, check=False)
        (Path("/etc/systemd/system") / UNIT).unlink(missing_ok=True)
        systemctl("daemon-reload", check=False)
        systemctl("reset-failed", UNIT, check=False)
        BPF_STATS.write_text(old_stats)


@pytest.fixture(scope="module")
def server(
    unit: Unit, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[prom.Prometheus]:
    why = prom.require_prometheus()
    if why:
        pytest.skip(why)
    with prom.prometheus(
        tmp_path_factory.mktemp("prometheus"),
        unit.address,
        scrape_interval=SCRAPE_INTERVAL,
    ) as p:
        yield p


@pytest.fixture(scope="module")
def denials(unit: Unit, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """One real denial by each of capability, Landlock and AppArmor; {comm: errno}.
    Each runs in a scope of its own named after it (`systemd-run --scope`), so
    its workload label is that unit (metrics.default_workload): started over
    ssh, they would all be ssh.service's otherwise (the image has no logind
    sessions)."""
    d = tmp_path_factory.mktemp("denials")
    secret = d / "secret"
    secret.write_text("x")
    actors = [
        helpers.Actor(CAP_NICE, [["nice"]], drop=NOBODY, prefix=in_scope(CAP_NICE)),
        helpers.Actor(
            CAP_LANDLOCK,
            [["landlock_open", helpers.hexpath(secret), LANDLOCK_READ_FILE]],
            prefix=in_scope(CAP_LANDLOCK),
        ),
    ]
    with helpers.actors_cleanup(actors):
        for a in actors:
            a.wait_ready()
            a.go()
        for a in actors:
            a.finish()
    out = {
        CAP_NICE: actors[0].result("nice")["errno"],
        CAP_LANDLOCK: actors[1].result("landlock_open").get("errno") or "?",
    }
    if "apparmor" in Path("/sys/kernel/security/lsm").read_text():
        out[CAP_AA] = apparmor_denial(d, secret)
    return out


def apparmor_denial(d: Path, secret: Path) -> str:
    """A copy of cat under an enforcing profile that denies reading `secret`."""
    parser = shutil.which("apparmor_parser")
    assert parser, "apparmor_parser is not installed (Debian package apparmor)"
    exe = Path("/usr/local/bin") / CAP_AA
    shutil.copy("/usr/bin/cat", exe)
    profile = d / f"{CAP_AA}.profile"
    profile.write_text(
        textwrap.dedent(f"""
        abi <abi/3.0>,
        profile {CAP_AA} {exe} flags=(enforce) {{
          /etc/ld.so.cache r,
          /{{usr/,}}lib/** mr,
          {exe} mr,
          deny {secret} r,
        }}
        """)
    )
    subprocess.run([parser, "-r", str(profile)], check=True)
    try:
        # the scope outlives the denied process by a little: the exporter
        # names a workload from the cgroup, and a cgroup removed before it
        # looked is no unit any more (the denial is then the comm's)
        r = subprocess.run(
            [
                *in_scope(CAP_AA),
                "sh",
                "-c",
                '"$0" "$1"; rc=$?; sleep 2; exit $rc',
                str(exe),
                str(secret),
            ],
            capture_output=True,
            text=True,
        )
    finally:
        subprocess.run([parser, "-R", str(profile)], check=False)
        exe.unlink()
    assert r.returncode != 0, r
    return "EACCES" if "Permission denied" in r.stderr else r.stderr


def test_lsmtrace_is_the_installed_wheel() -> None:
    assert not_installed() is None, not_installed()
    dist = metadata.distribution("lsmtrace")
    direct = json.loads(dist.read_text("direct_url.json") or "{}")
    assert direct["url"].endswith(".whl"), direct  # a wheel, not a directory
    assert "dir_info" not in direct, direct  # not an editable/tree install
    assert not (TESTS_ROOT / "lsmtrace").exists(), "a source tree was copied"


def test_unit_runs_the_installed_exporter_hardened(unit: Unit) -> None:
    assert show("ActiveState") == "active"
    cmdline = Path(f"/proc/{unit.main_pid}/cmdline").read_bytes().split(b"\0")
    assert str(LSMTRACE).encode() in cmdline, cmdline
    assert unit.prog_ids, "the exporter holds no BPF programs?"
    status = dict(
        ln.split(":\t", 1)
        for ln in Path(f"/proc/{unit.main_pid}/status").read_text().splitlines()
        if ":\t" in ln
    )
    assert status["NoNewPrivs"].strip() == "1"
    assert status["Seccomp"].strip() == "2"  # SystemCallFilter= is a seccomp filter
    wanted = show("CapabilityBoundingSet").split()
    bnd = int(status["CapBnd"], 16)
    assert bnd.bit_count() == len(wanted), (hex(bnd), wanted)
    assert bnd >> CAP_BPF & 1
    assert not bnd >> CAP_SYS_MODULE & 1
    assert not bnd >> CAP_NET_ADMIN & 1
    root = next(
        ln.split()
        for ln in Path(f"/proc/{unit.main_pid}/mountinfo").read_text().splitlines()
        if ln.split()[4] == "/"
    )
    assert "ro" in root[5].split(","), root  # ProtectSystem=strict


def in_scope(name: str) -> tuple[str, ...]:
    """Run a command in a transient scope unit `name`.scope (same pid)."""
    return ("systemd-run", "--scope", "--quiet", f"--unit={name}")


def lsm_of(server: prom.Prometheus, actor: str, hook: str) -> set[str]:
    workload = f"{actor}.scope"
    res = server.wait_for(
        f'lsmtrace_denials_total{{workload="{workload}",hook="{hook}"}}', timeout=120
    )
    if not res:  # say what there is instead
        every = server.query("lsmtrace_denials_total")
        shown = sorted(str(r["metric"]) for r in every)
        raise AssertionError(f"no {hook} denial of workload {workload}: {shown}")
    return {r["metric"]["lsm"] for r in res}


def test_denials_in_promql_with_their_lsm(
    server: prom.Prometheus, denials: dict[str, str]
) -> None:
    (rung,) = server.wait_for("lsmtrace_rung_info")
    assert rung["metric"]["rung"] == "fexit"
    assert denials[CAP_NICE] in ("EPERM", "EACCES"), denials
    assert lsm_of(server, CAP_NICE, "capable") == {"capability"}
    assert denials[CAP_LANDLOCK] == "EACCES", denials
    assert lsm_of(server, CAP_LANDLOCK, "file_open") == {"landlock"}
    if CAP_AA not in denials:
        pytest.skip("apparmor is not in /sys/kernel/security/lsm")
    assert denials[CAP_AA] == "EACCES", denials
    assert lsm_of(server, CAP_AA, "file_open") == {"apparmor"}
    res = server.query(
        'sum by (lsm) (lsmtrace_decisions_total{hook="file_open",verdict="deny"})'
    )
    assert {"landlock", "apparmor"} <= {r["metric"]["lsm"] for r in res}, res


def test_promtool_accepts_the_exposition(unit: Unit, denials: dict[str, str]) -> None:
    res = prom.promtool_check_metrics(unit.exposition())
    assert res.returncode == 0, res.stdout + res.stderr


def test_every_dashboard_query_evaluates(
    unit: Unit, server: prom.Prometheus, denials: dict[str, str]
) -> None:
    server.wait_scraped(timeout=300)
    empty = prom.check_dashboard(server, unit.exposition())
    print("panels without series on the fexit rung:", empty or "none")
    # fexit has hook latency, and BPF run-time stats are on: every panel has series
    assert empty == {}


def gone(ids: set[int], timeout: float = 60.0) -> set[int]:
    """Those of `ids` still loaded after up to `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        left = ids & set(helpers.loaded_programs())
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.5)


def test_restart_leaves_no_program_of_the_old_exporter(unit: Unit) -> None:
    old_pid, old_ids = unit.main_pid, set(unit.prog_ids)
    assert old_ids
    systemctl("restart", UNIT)
    unit.wait_serving()
    print(f"restarted: serving after {unit.started_in:.0f} s")
    assert unit.main_pid != old_pid
    assert unit.prog_ids, "the new exporter holds no BPF programs?"
    assert not unit.prog_ids & old_ids
    assert not gone(old_ids), "programs of the stopped exporter still loaded"


def test_stop_exits_cleanly_and_leaves_no_program(unit: Unit) -> None:
    ids = set(unit.prog_ids)
    assert ids
    t0 = time.monotonic()
    systemctl("stop", UNIT)
    print(f"stopped in {time.monotonic() - t0:.1f} s")
    assert show("ActiveState") == "inactive"
    assert show("Result") == "success", journal()
    assert show("ExecMainStatus") == "0", journal()
    assert not gone(ids), "programs of the stopped exporter still loaded"
