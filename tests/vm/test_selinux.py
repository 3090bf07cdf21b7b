"""SELinux enforcing, in the VM's selinux boot (vagrant/vmtest.py --boot selinux).

Debian's reference policy, files labelled at image build, enforcing from boot,
audit on (auditd writes /var/log/audit/audit.log). One pass through the stage,
sharing everything that costs a bcc compile under TCG:

1. deploy/selinux/lsmtrace_tracer.te is built and loaded by running the lines
   its own header gives (without it the kprobe and tracepoint rungs cannot
   attach under enforcing).
2. `lsmtrace record` a copy of cat reading two files; `policy generate
   --target selinux`; the module is built and loaded by the lines written into
   it.
3. Three live tracers start at once (fexit, kprobe, tracepoint; narrow hook
   sets, `--denied --audit on`; they compile side by side); the workload runs
   in the generated domain under `runcon` and succeeds; a deviation (a third
   file, of another type) is denied.
4. That denial is what the three tracers must show: on the hook rungs a hook
   denial attributed `lsm: selinux` with the AVC's contexts and class joined;
   on the tracepoint rung an `avc:selinux_audited` event.
5. audit2allow as a referee: the workload under a permissive domain of its own
   logs every access it makes; our module must allow all that audit2allow's
   allows (differences: docs/policy.md).
"""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from product import Trace, lsmtrace_cmd
from workloads import active_lsms

pytestmark = pytest.mark.vm_boot("selinux")

REPO = Path(__file__).resolve().parents[2]
TRACER_TE = REPO / "deploy" / "selinux" / "lsmtrace_tracer.te"
START_TIMEOUT = 600.0  # TCG: three compiles share two vCPUs
WORK = Path("/srv/lsmt-se")
EXE = Path("/usr/local/bin/lsmt-se-cat")
# the deviation's file type: one the workload never touches
DEVIATION_TYPE = "user_home_t"
RUNGS = ("fexit", "kprobe", "tracepoint")
HOOK_ARGS: dict[str, tuple[str, ...]] = {
    # SELinux refuses an open for read in inode_permission (may_open), an
    # open it lets through there may still fail in file_open
    "fexit": ("--hooks", "inode_permission", "--hooks", "file_open"),
    "kprobe": ("--hooks", "inode_permission", "--hooks", "file_open"),
    "tracepoint": ("--hooks", "selinux_audited", "--hooks", "sys_openat"),
}


def instructions(text: str, marker: str) -> list[str]:
    """The `#   command` lines right after the comment line containing
    `marker` (any case)."""
    lines = text.splitlines()
    start = next(i for i, ln in enumerate(lines) if marker in ln.lower()) + 1
    out = []
    for ln in lines[start:]:
        if not ln.startswith("#   "):
            break
        out.append(ln.removeprefix("#   ").strip())
    assert out, f"no instructions after {marker!r}"
    return out


def run_as_written(commands: list[str], cwd: Path) -> None:
    for cmd in commands:
        res = subprocess.run(
            cmd, shell=True, cwd=cwd, capture_output=True, text=True, timeout=600
        )
        assert res.returncode == 0, f"{cmd}: {res.stdout}{res.stderr}"


def modules() -> set[str]:
    out = subprocess.run(
        ["semodule", "-l"], capture_output=True, text=True, check=True
    ).stdout
    return {ln.split()[0] for ln in out.splitlines() if ln.strip()}


def avc_lines(scontext_type: str) -> list[str]:
    text = Path("/var/log/audit/audit.log").read_text(errors="replace")
    return [
        ln
        for ln in text.splitlines()
        if ln.startswith("type=AVC") and f":{scontext_type}:" in ln
    ]


@pytest.fixture(scope="module")
def enforcing() -> None:
    """The selinux boot is this, or the harness or the image is broken: fail,
    never skip."""
    assert "selinux" in active_lsms(), "selinux is not in /sys/kernel/security/lsm"
    enforce = Path("/sys/fs/selinux/enforce").read_text().strip()
    assert enforce == "1", "SELinux is not enforcing"
    for tool in ("checkmodule", "semodule_package", "semodule", "runcon"):
        assert shutil.which(tool), f"{tool} is not in the image"


@pytest.fixture(scope="module")
def tracer_module(
    enforcing: None, tmp_path_factory: pytest.TempPathFactory
) -> list[str]:
    """deploy/selinux/lsmtrace_tracer.te built and loaded as its header says.
    Stays loaded: the guest is thrown away after the run."""
    d = tmp_path_factory.mktemp("tracer-te")
    shutil.copy(TRACER_TE, d / TRACER_TE.name)
    cmds = instructions(TRACER_TE.read_text(), "build and load it")
    run_as_written(cmds, d)
    return cmds


@pytest.fixture(scope="module")
def tracers(
    tracer_module: list[str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Trace]]:
    d = tmp_path_factory.mktemp("tracers")
    # --denied --audit on: the three rungs compile together, waited for later
    ts = {r: Trace(r, d, "--denied", "--audit", "on", *HOOK_ARGS[r]) for r in RUNGS}
    try:
        yield ts
    finally:
        for t in ts.values():
            t.kill()


@dataclass
class Loop:
    rec: Path
    te: Path
    text: str
    domain: str
    build: list[str]
    timings: dict[str, float] = field(default_factory=dict)


@pytest.fixture(scope="module")
def loop(
    tracer_module: list[str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Loop]:
    """Record `EXE a b` (fexit rung), generate its module and load it as the
    module's own header says. c, the deviation, has a type the workload never
    reads."""
    d = tmp_path_factory.mktemp("loop")
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    for name in ("a", "b", "c"):
        (WORK / name).write_text(name)
    subprocess.run(["chcon", "-t", DEVIATION_TYPE, str(WORK / "c")], check=True)
    shutil.copy("/usr/bin/cat", EXE)
    rec, te = d / "rec.jsonl", d / "lsmt_se_loop.te"
    timings: dict[str, float] = {}
    try:
        t0 = time.monotonic()
        # the workload's output goes to a pipe, as under runcon below (not
        # to pytest's capture file, a deleted file in /tmp)
        r = subprocess.run(
            lsmtrace_cmd(
                "record",
                "-o",
                str(rec),
                "--backend",
                "fexit",
                "--",
                str(EXE),
                str(WORK / "a"),
                str(WORK / "b"),
            ),
            capture_output=True,
            text=True,
            cwd=d,
            timeout=900,
        )
        assert r.returncode == 0, r.stdout + r.stderr
        assert "ab" in r.stdout, r.stdout + r.stderr
        timings["record"] = time.monotonic() - t0
        subprocess.run(
            lsmtrace_cmd(
                "policy", "generate", "--target", "selinux", str(rec), "-o", str(te)
            ),
            check=True,
            cwd=d,
            timeout=300,
        )
        text = te.read_text()
        domains = re.findall(r"^type (lsmtrace_\w+?)(?<!_tmp)_t;$", text, re.M)
        assert len(domains) == 1, text
        build = instructions(text, "build and load it")
        t0 = time.monotonic()
        run_as_written(build, d)
        timings["build and load"] = time.monotonic() - t0
        yield Loop(rec, te, text, f"{domains[0]}_t", build, timings)
    finally:
        EXE.unlink(missing_ok=True)


@dataclass
class Runs:
    ok: subprocess.CompletedProcess[str]
    bad_pid: int
    bad_rc: int
    bad_err: str


def runcon(domain: str, *argv: str) -> list[str]:
    return ["runcon", "-t", domain, "--", *argv]


@pytest.fixture(scope="module")
def runs(loop: Loop, tracers: dict[str, Trace]) -> Runs:
    """The workload in its generated domain, then the deviation, with every
    tracer that started watching."""
    for t in tracers.values():
        # a tracer that did not start fails its rung's tests with its stderr
        with contextlib.suppress(AssertionError):
            t.wait_started(START_TIMEOUT)
    ok = subprocess.run(
        runcon(loop.domain, str(EXE), str(WORK / "a"), str(WORK / "b")),
        capture_output=True,
        text=True,
        timeout=120,
    )
    bad = subprocess.Popen(
        runcon(loop.domain, str(EXE), str(WORK / "c")),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _out, err = bad.communicate(timeout=120)
    return Runs(ok, bad.pid, bad.returncode, err)


def test_tracer_module_loads_as_written(tracer_module: list[str]) -> None:
    """deploy/selinux/lsmtrace_tracer.te's own build lines work, and with the
    module every rung can attach under enforcing."""
    assert [c.split()[0] for c in tracer_module] == [
        "checkmodule",
        "semodule_package",
        "semodule",
    ]
    assert "lsmtrace_tracer" in modules()
    from lsmtrace import probe

    probe.mount_pseudo_filesystems()
    for rung in RUNGS:
        res = probe.probe_rung(rung)
        assert res.ok, f"{rung}: {res.detail}"


def test_generated_module_loads_as_written(loop: Loop) -> None:
    print(f"seconds: {loop.timings}")  # shown with -rA
    assert [c.split()[0] for c in loop.build] == [
        "checkmodule",
        "semodule_package",
        "semodule",
    ]
    assert loop.te.stem in modules()
    assert str(WORK / "c") not in loop.text
    assert DEVIATION_TYPE not in loop.text
    assert "runcon -t DOMAIN" in loop.text
    # the recording knows the context it was made in; the module lets it enter
    head = loop.rec.read_text().splitlines()[0]
    assert ":unconfined_t:" in head, head


def test_workload_runs_enforcing_in_its_domain(loop: Loop, runs: Runs) -> None:
    assert runs.ok.returncode == 0, runs.ok.stderr + "\n" + loop.text
    assert runs.ok.stdout == "ab"


def test_deviation_denied(loop: Loop, runs: Runs) -> None:
    assert runs.bad_rc != 0
    assert "Permission denied" in runs.bad_err, runs.bad_err
    denied = [
        ln
        for ln in avc_lines(loop.domain)
        if f"pid={runs.bad_pid} " in ln and "denied" in ln
    ]
    assert denied, "no AVC for the deviation in /var/log/audit/audit.log"
    assert any(f":{DEVIATION_TYPE}:" in ln and "tclass=file" in ln for ln in denied)


def assert_selinux_audit(ev: dict[str, Any], domain: str) -> None:
    a = ev.get("audit")
    assert a, ev
    assert a["lsm"] == "selinux", a
    assert a["result"] == "denied", a
    assert a["scontext"].split(":")[2] == domain, a
    assert a["tcontext"].split(":")[2] == DEVIATION_TYPE, a
    assert a["tclass"] == "file", a
    assert "read" in a["perms"], a
    assert a["permissive"] is False, a
    assert a["pid"] == ev["tgid"], a


@pytest.mark.parametrize("rung", ["fexit", "kprobe"])
def test_hook_rung_attributes_selinux(
    rung: str, tracers: dict[str, Trace], loop: Loop, runs: Runs
) -> None:
    t = tracers[rung]
    if t.ready_after is None:
        t.wait_started(timeout=1)
    evs = t.wait_for(runs.bad_pid, lambda e: e["hook"] == "sys_openat", settle=1.0)
    hooks = [e for e in evs if e["kind"] == "hook"]
    assert hooks, f"no hook denial for {runs.bad_pid}: {evs or t.events()[-5:]}"
    ev = hooks[0]
    assert ev["rung"] == rung
    assert ev["hook"] in ("inode_permission", "file_open"), ev
    assert ev["verdict"] == "deny"
    assert ev["errno"] == "EACCES"
    assert ev["lsm"] == "selinux", ev
    assert ev["lsm_source"] == "hook", ev
    assert ev["comm"] == EXE.name
    assert_selinux_audit(ev, loop.domain)
    # the failed open names the file and the LSM of the hook that refused it
    opens = [e for e in evs if e["hook"] == "sys_openat"]
    assert opens, evs
    assert opens[0]["object"]["path"] == str(WORK / "c")
    assert opens[0]["lsm"] == "selinux", opens[0]


def test_tracepoint_rung_selinux_audited(
    tracers: dict[str, Trace], loop: Loop, runs: Runs
) -> None:
    t = tracers["tracepoint"]
    if t.ready_after is None:
        t.wait_started(timeout=1)
    evs = t.wait_for(runs.bad_pid, lambda e: e["hook"] == "sys_openat", settle=1.0)
    # entering the domain is audited too (runcon's transition: noatsecure,
    # siginh, rlimitinh of class process, which the kernel does not enforce
    # as refusals); the deviation is the file's
    avcs = [e for e in evs if e["kind"] == "avc" and e["object"]["tclass"] == "file"]
    assert avcs, f"no selinux_audited event of a file for {runs.bad_pid}: {evs}"
    ev = avcs[0]
    assert ev["hook"] == "selinux_audited"
    assert ev["rung"] == "tracepoint"
    assert ev["verdict"] == "deny"
    assert ev["lsm"] == "selinux"
    obj = ev["object"]
    assert obj["tclass"] == "file", obj
    assert obj["scontext"].split(":")[2] == loop.domain, obj
    assert obj["tcontext"].split(":")[2] == DEVIATION_TYPE, obj
    assert obj["denied"] != 0, obj
    assert_selinux_audit(ev, loop.domain)
    # the syscall that failed: the rung cannot tell who refused; the AVC can
    opens = [e for e in evs if e["hook"] == "sys_openat"]
    assert opens, evs
    assert opens[0]["object"]["path"] == str(WORK / "c")
    assert opens[0]["lsm"] == "selinux", opens[0]
    assert opens[0]["lsm_source"] == "audit", opens[0]


def test_tracers_stop_cleanly(tracers: dict[str, Trace], runs: Runs) -> None:
    for rung, t in tracers.items():
        assert t.stop() == 0, f"{rung}: {t.stderr}"


# --- audit2allow as a referee ----------------------------------------------

REF_TYPE = "lsmt_ref_t"
REF_MODULE = f"""module lsmt_ref 1.0;

require {{
\ttype unconfined_t;
\trole unconfined_r;
\tclass process transition;
}}

type {REF_TYPE};
role unconfined_r types {REF_TYPE};
allow unconfined_t {REF_TYPE}:process transition;
permissive {REF_TYPE};
"""
ALLOW = re.compile(r"^\s*allow\s+(\S+)\s+(\{[^}]*\}|\S+?):(\S+)\s+(\{[^}]*\}|\S+?)\s*;")


def allow_rules(text: str, domain: str) -> dict[tuple[str, str], set[str]]:
    """(target type, class) -> permissions of `allow domain ...` rules, the
    optional blocks included; `self` stays `self`."""
    out: dict[tuple[str, str], set[str]] = {}
    for ln in text.splitlines():
        m = ALLOW.match(ln)
        if not m or m.group(1) != domain:
            continue
        targets = m.group(2).strip("{} ").split()
        perms = m.group(4).strip("{} ").split()
        for t in targets:
            out.setdefault((t, m.group(3)), set()).update(perms)
    return out


def test_audit2allow_referee(loop: Loop, runs: Runs, tmp_path: Path) -> None:
    """The workload under a permissive domain of its own (no rule at all):
    SELinux logs every access it would have refused, and audit2allow turns
    that log into rules. Ours must allow each of them (self and the
    caller's fd/pipe/process rules included)."""
    if shutil.which("audit2allow") is None:
        pytest.skip("audit2allow is not installed (policycoreutils-python-utils)")
    (tmp_path / "lsmt_ref.te").write_text(REF_MODULE)
    run_as_written(
        [
            "checkmodule -M -m -o lsmt_ref.mod lsmt_ref.te",
            "semodule_package -o lsmt_ref.pp -m lsmt_ref.mod",
            "semodule -i lsmt_ref.pp",
        ],
        tmp_path,
    )
    res = subprocess.run(
        runcon(REF_TYPE, str(EXE), str(WORK / "a"), str(WORK / "b")),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout == "ab"
    time.sleep(2)  # auditd writes asynchronously
    log = tmp_path / "avc.log"
    log.write_text("\n".join(avc_lines(REF_TYPE)) + "\n")
    a2a = subprocess.run(
        ["audit2allow", "-i", str(log)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert a2a.returncode == 0, a2a.stderr
    (tmp_path / "audit2allow.te").write_text(a2a.stdout)
    theirs = allow_rules(a2a.stdout, REF_TYPE)
    assert theirs, a2a.stdout
    ours = allow_rules(loop.text, loop.domain)
    rename = {REF_TYPE: "self"}
    missing = {
        (rename.get(t, t), c): sorted(p - ours.get((rename.get(t, t), c), set()))
        for (t, c), p in theirs.items()
    }
    missing = {k: v for k, v in missing.items() if v}
    extra = {
        k: sorted(p - theirs.get((REF_TYPE if k[0] == "self" else k[0], k[1]), set()))
        for k, p in ours.items()
    }
    extra = {k: v for k, v in extra.items() if v}
    print("audit2allow:\n" + a2a.stdout)
    print(f"ours beyond audit2allow: {extra}")
    assert not missing, (
        f"audit2allow allows what ours does not: {missing}\n"
        f"audit2allow:\n{a2a.stdout}\nours:\n{loop.text}"
    )
