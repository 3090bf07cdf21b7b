"""The live audit mode (lsmtrace/policy/live.py): a policy generated from a
fixture recording, then that recording's events and deviations fed through
the live check one at a time, in order, as a Session feeds them."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from lsmtrace.errors import LsmtraceError, UsageError
from lsmtrace.events import IdNames
from lsmtrace.policy import check, evaluate, generate, load, load_access_set
from lsmtrace.policy.live import LiveCheck
from lsmtrace.policy.model import build
from lsmtrace.record import read_recording
from lsmtrace.session import Session

REC = Path(__file__).resolve().parents[1] / "data" / "recordings"
WRAPPER = REC / "wrapper_exec.jsonl"
DAEMON = REC / "forking_daemon.jsonl"
GREP = REC / "grep_dirfd.jsonl"
TARGETS = ("apparmor", "selinux", "landlock", "tomoyo")
Event = dict[str, Any]


def policy(
    tmp_path: Path, target: str, *recs: Path, name: str | None = None
) -> LiveCheck:
    text = generate(target, load_access_set([str(r) for r in recs]), name=name)
    p = tmp_path / f"candidate.{target}"
    p.write_text(text, errors="surrogateescape")
    return LiveCheck(load(str(p)))


def events(rec: Path) -> list[Event]:
    """A recording's events as the Session would hand them: in stream order,
    fresh dicts (the check writes would_deny into them)."""
    return [copy.deepcopy(e) for e in read_recording(str(rec)).events]


def feed(lc: LiveCheck, evs: list[Event]) -> list[Event]:
    for ev in evs:
        lc.add(ev)
    return [e for e in evs if "would_deny" in e]


def after(evs: list[Event], pred: Any, new: Event) -> list[Event]:
    """`new` inserted right after the first event matching pred (same process,
    a later time)."""
    i = next(i for i, e in enumerate(evs) if pred(e))
    base = evs[i]
    ev = {**copy.deepcopy(base), **new, "ts_ns": base["ts_ns"] + 1}
    return [*evs[: i + 1], ev, *evs[i + 1 :]]


def opened(path: str, flags: int = 0) -> Event:
    return {
        "kind": "syscall",
        "hook": "sys_openat",
        "syscall": "openat",
        "verdict": "allow",
        "ret": 3,
        "errno": None,
        "object": {"path": path, "path_kind": "exact", "flags": flags},
    }


def is_real(e: Event) -> bool:
    return e["comm"] == "app-real" and e["hook"] == "sys_openat"


def is_mkdir(e: Event) -> bool:
    return e["hook"] == "sys_mkdir"


# -- the recording itself passes -------------------------------------------------


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("rec", [WRAPPER, DAEMON, GREP], ids=lambda p: p.stem)
def test_recorded_decisions_pass(tmp_path: Path, target: str, rec: Path) -> None:
    lc = policy(tmp_path, target, rec)
    marked = feed(lc, events(rec))
    # what the kernel allowed while recording, the policy allows; only the
    # recording's own denial (grep's hidden.txt, never granted) is marked
    assert all(e["verdict"] == "deny" for e in marked), [
        e["would_deny"] for e in marked
    ]
    st = lc.summary()
    assert st["checked"] > 10
    assert st["would_deny"] == len(marked)
    if rec == GREP and target != "selinux":  # SELinux grants by type: var_t
        assert [e["object"]["path"] for e in marked] == ["/data/tree/sub/hidden.txt"]


# -- deviations are marked with the rule that would allow them ----------------------

SHADOW = {
    "landlock": (
        '{"path": "/etc/shadow", "access": ["read_file"]}',
        "ruleset lsmtrace",
    ),
    "apparmor": ('"/etc/shadow" r,', "profile lsmtrace-app-real"),
    "tomoyo": (
        "file read /etc/shadow",
        "<kernel> /usr/local/bin/app-wrapper /usr/local/libexec/app-real",
    ),
    "selinux": (
        "allow lsmtrace_app_wrapper_t shadow_t:file { getattr map open read };",
        "domain lsmtrace_app_wrapper_t",
    ),
}


@pytest.mark.parametrize("target", TARGETS)
def test_deviation_marked_with_the_missing_rule(tmp_path: Path, target: str) -> None:
    lc = policy(tmp_path, target, WRAPPER)
    evs = after(events(WRAPPER), is_real, opened("/etc/shadow"))
    marked = feed(lc, evs)
    assert len(marked) == 1
    w = marked[0]["would_deny"]
    rule, context = SHADOW[target]
    assert w == {
        "policy": f"candidate.{target}",
        "target": target,
        "context": context,
        "program": "/usr/local/libexec/app-real",
        "access": ["file /etc/shadow read"],
        "missing": [rule],
    }


@pytest.mark.parametrize(
    ("target", "rule"),
    [
        ("apparmor", '"/var/lib/other/" w,'),
        ("tomoyo", "file mkdir /var/lib/other/ 0-07777"),
        # Landlock and SELinux grant the directory's make_dir / var_lib_t: allowed
        ("landlock", None),
        ("selinux", None),
    ],
)
def test_child_profile_and_domain(
    tmp_path: Path, target: str, rule: str | None
) -> None:
    """mkdir runs in wrapper's child profile / its TOMOYO domain: a mkdir
    elsewhere is checked there, with the rule written for that context."""
    lc = policy(tmp_path, target, WRAPPER)
    dev = {
        "hook": "sys_mkdir",
        "object": {"path": "/var/lib/other", "path_kind": "exact", "mode": "0o777"},
    }
    marked = feed(lc, after(events(WRAPPER), is_mkdir, dev))
    assert [m["would_deny"]["missing"] for m in marked] == ([[rule]] if rule else [])
    if target == "apparmor":
        assert marked[0]["would_deny"]["context"] == (
            "profile lsmtrace-app-wrapper//lsmtrace-mkdir"
        )


def is_worker(e: Event) -> bool:
    return e["tgid"] == 44001 and e["hook"] == "sys_accept4"


@pytest.mark.parametrize(
    ("target", "rules"),
    [
        ("landlock", ['{"port": 443, "access": ["connect_tcp"]}']),
        ("tomoyo", ["network inet stream connect 0.0.0.0-255.255.255.255 443"]),
        (
            "selinux",
            [
                "allow lsmtrace_minid_t self:capability { net_admin };",
                "allow lsmtrace_minid_t self:tcp_socket { connect };",
            ],
        ),
        # AppArmor has no ports: `network inet stream,` allows the connect
        ("apparmor", ["capability net_admin,"]),
    ],
)
def test_network_and_capability(tmp_path: Path, target: str, rules: list[str]) -> None:
    lc = policy(tmp_path, target, DAEMON)
    evs = events(DAEMON)
    evs = after(
        evs,
        is_worker,
        {
            "hook": "sys_connect",
            "syscall": "connect",
            "object": {
                "family": "AF_INET",
                "type": "SOCK_STREAM",
                "addr": "10.0.0.1",
                "port": 443,
            },
        },
    )
    evs = after(
        evs,
        is_worker,
        {
            "kind": "capable",
            "hook": "capable",
            "syscall": "ioctl",
            "object": {"cap": 12, "cap_name": "CAP_NET_ADMIN", "opts": 0},
        },
    )
    marked = feed(lc, evs)
    assert sorted(r for m in marked for r in m["would_deny"]["missing"]) == rules


# -- what a policy governs --------------------------------------------------------


def stranger(path: str = "/etc/shadow") -> list[Event]:
    """A process that started before lsmtrace (no exec seen): the process
    tree knows its program."""
    base = {
        "tgid": 777,
        "pid": 777,
        "ppid": 1,
        "comm": "vim",
        "exe": "/usr/bin/vim",
        "ts_ns": 10**13,
        "rung": "tracepoint",
    }
    return [{**opened(path), **base}, {**opened("/etc/passwd"), **base}]


@pytest.mark.parametrize("target", ["apparmor", "selinux", "tomoyo"])
def test_programs_not_governed_are_never_marked(tmp_path: Path, target: str) -> None:
    lc = policy(tmp_path, target, WRAPPER)
    marked = feed(lc, events(WRAPPER) + stranger())
    assert marked == []
    assert lc.summary()["ungoverned"] >= 2


def test_landlock_governs_everything_in_scope(tmp_path: Path) -> None:
    lc = policy(tmp_path, "landlock", WRAPPER)
    marked = feed(lc, events(WRAPPER) + stranger())
    assert [m["object"]["path"] for m in marked] == ["/etc/shadow", "/etc/passwd"]
    assert lc.summary()["ungoverned"] == 0


@pytest.mark.parametrize("target", ["apparmor", "selinux", "tomoyo"])
def test_a_process_started_before_runs_its_programs_context(
    tmp_path: Path, target: str
) -> None:
    """No exec seen: the enricher's exe says which program it runs."""
    lc = policy(tmp_path, target, DAEMON)
    evs = stranger()
    for e in evs:
        e["exe"], e["comm"] = "/usr/local/sbin/minid", "minid"
    marked = feed(lc, evs)
    # SELinux grants by type: /etc/passwd is etc_t, as /etc/minid.conf
    want = ["/etc/shadow"] if target == "selinux" else ["/etc/shadow", "/etc/passwd"]
    assert [m["object"]["path"] for m in marked] == want


def test_apparmor_px_profile_is_not_attached(tmp_path: Path) -> None:
    """app-real's profile is entered through the wrapper's `Px ->` only: run
    on its own it is unconfined, as AppArmor would have it."""
    lc = policy(tmp_path, "apparmor", WRAPPER)
    run = [e for e in events(WRAPPER) if e["tgid"] != 43000 or e["comm"] == "app-real"]
    for e in run:
        e["tgid"] = e["pid"] = 5000 if e["tgid"] == 43000 else e["tgid"]
    marked = feed(lc, after(run, is_real, opened("/etc/shadow")))
    assert marked == []


def exec_of(evs: list[Event], tgid: int, filename: str) -> list[Event]:
    """An exec of `filename` by `tgid` (its exec event and execve's exit)."""
    base = next(e for e in evs if e["tgid"] == tgid and e["kind"] == "syscall")
    ex = {
        **copy.deepcopy(base),
        "kind": "exec",
        "hook": "exec",
        "family": "process",
        "object": {"filename": filename, "argv": [filename]},
    }
    sysc = {
        **copy.deepcopy(base),
        "hook": "sys_execve",
        "syscall": "execve",
        "object": {"path": filename},
    }
    return [ex, sysc, {**copy.deepcopy(base), **opened("/root/.netrc")}]


@pytest.mark.parametrize(
    ("target", "rule"),
    [
        ("apparmor", '"/usr/bin/curl" ix,'),
        ("tomoyo", "file execute /usr/bin/curl"),
        ("landlock", '{"path": "/usr/bin/curl", "access": ["execute", "read_file"]}'),
        (
            "selinux",
            # the lookup searches /usr/bin (bin_t) too: the daemon never did
            "allow lsmtrace_minid_t bin_t:file { execute execute_no_trans getattr "
            "map open read };\nallow lsmtrace_minid_t bin_t:dir { search };",
        ),
    ],
)
def test_an_exec_the_policy_lacks(tmp_path: Path, target: str, rule: str) -> None:
    """The exec event and the execve it belongs to carry the missing exec
    rule; what the new program does is then outside the policy (AppArmor,
    TOMOYO: the exec would have failed), or in the same domain (SELinux,
    Landlock: inherited)."""
    lc = policy(tmp_path, target, DAEMON)
    evs = [e for e in events(DAEMON) if e["kind"] != "exit"]
    extra = exec_of(evs, 44001, "/usr/bin/curl")
    marked = feed(lc, evs + extra)
    assert marked[0] is extra[0]
    assert marked[1] is extra[1]
    assert marked[0]["would_deny"]["missing"] == rule.split("\n")
    assert marked[1]["would_deny"] == marked[0]["would_deny"]
    assert lc.summary()["would_deny"] == len(marked) - 1  # one decision, two events
    then = [m for m in marked if m["object"].get("path") == "/root/.netrc"]
    assert bool(then) == (target in ("landlock", "selinux"))


# -- one evaluation for live and offline --------------------------------------------


@pytest.mark.parametrize("target", TARGETS)
def test_live_marks_what_policy_check_denies(tmp_path: Path, target: str) -> None:
    """The offline `policy check` of a recording with deviations and the live
    check of its events, one at a time, find the same accesses."""
    lc = policy(tmp_path, target, WRAPPER)
    evs = after(events(WRAPPER), is_real, opened("/etc/shadow"))
    evs = after(evs, is_real, opened("/var/lib/app/other", 0o101))
    evs = after(
        evs,
        is_mkdir,
        {
            "hook": "sys_mkdir",
            "object": {"path": "/var/lib/other", "path_kind": "exact"},
        },
    )
    offline = evaluate(lc.policy, build([({}, copy.deepcopy(evs), "x")]))
    assert offline == check(lc.policy.path, build([({}, copy.deepcopy(evs), "x")]))
    live = {
        (m["would_deny"]["program"], a)
        for m in feed(lc, evs)
        for a in m["would_deny"]["access"]
    }
    assert live == {
        (a.program, f"{a.kind} {a.what} {a.access}") for a in offline.denied
    }
    assert live  # the deviations are there


# -- memory and the memo ----------------------------------------------------------


def test_processes_forgotten_at_exit_and_bounded(tmp_path: Path) -> None:
    lc = policy(tmp_path, "apparmor", DAEMON)
    feed(lc, events(DAEMON))  # every process of the recording exited
    assert lc.ctx == {}
    assert lc.forked == {}
    assert lc.builder.procs == {}
    small = LiveCheck(lc.policy, max_procs=100, max_cache=8, max_created=4)
    daemon = [e for e in events(DAEMON) if e["tgid"] == 44000 and e["kind"] != "exit"]
    feed(small, daemon)
    assert small.ctx[44000] == "lsmtrace-minid"
    # a thread pool's churn: forks whose children never have events of their own
    threads = [
        {
            **daemon[-1],
            "kind": "fork",
            "hook": "fork",
            "object": {"child_pid": 100_000 + i},
        }
        for i in range(500)
    ]
    feed(small, threads)
    assert len(small.forked) <= 100
    assert small.ctx[44000] == "lsmtrace-minid"  # the live process stays
    assert len(small.builder.procs) == 1
    # processes whose exit is never seen: at most max_procs
    reads = [
        {
            **opened(f"/etc/f{i}"),
            **stranger()[0],
            "tgid": 200_000 + i,
            "pid": 200_000 + i,
            "object": {"path": f"/etc/f{i}", "flags": 0},
        }
        for i in range(500)
    ]
    feed(small, reads)
    assert len(small.ctx) <= 100
    assert len(small.builder.procs) <= 100
    assert len(small.cache) <= 8
    assert len(small.memo) <= 8
    for i in range(20):
        small._created(f"/tmp/t{i}")
    assert len(small.created) == 4


def test_memo_keeps_the_file_opened_last(tmp_path: Path) -> None:
    """An mmap of an fd maps the file opened last (tracepoint rung): an open
    answered from the memo still sets it."""
    base = {"tgid": 9, "pid": 9, "ppid": 1, "comm": "t", "rung": "tracepoint"}
    lib = {"path": "/opt/t/libt.so", "path_kind": "exact", "flags": 0}
    data = {"path": "/srv/data", "path_kind": "exact", "flags": 0}
    mmap = {"prot": "r-x", "prot_raw": 5, "fd": 3}  # the decoder shares these dicts

    def ev(hook: str, obj: dict[str, Any]) -> Event:
        kind = "exec" if hook == "exec" else "syscall"
        return {
            **base,
            "kind": kind,
            "hook": hook,
            "syscall": hook[4:] or None,
            "verdict": "allow",
            "ret": 0,
            "ts_ns": 0,
            "object": obj,
        }

    start = ev("exec", {"filename": "/usr/bin/t"})
    rnd = [ev("sys_openat", lib), ev("sys_mmap", mmap), ev("sys_openat", data)]
    text = generate("apparmor", build([({}, [copy.copy(start), *rnd], "t")]))
    assert '"/opt/t/libt.so" mr,' in text
    assert '"/srv/data" r,' in text
    (tmp_path / "p").write_text(text)
    lc = LiveCheck(load(str(tmp_path / "p")))
    again = [copy.copy(e) for e in [start, *rnd, *rnd]]
    assert feed(lc, again) == []
    assert lc.stats.memo_hits == 2  # the second round's opens
    # /srv/data opened last (from the memo), then mapped executable: no `m`
    marked = feed(lc, [copy.copy(e) for e in [rnd[2], rnd[1]]])
    assert [m["would_deny"]["missing"] for m in marked] == [['"/srv/data" m,']]


# -- the Session runs it on every event ------------------------------------------------


class NoSource:
    def __init__(self) -> None:
        self.id_names = IdNames({}, {})
        self.syscall_names: dict[int, str] = {}


def test_session_checks_every_event_before_selecting(tmp_path: Path) -> None:
    lc = policy(tmp_path, "tomoyo", WRAPPER)
    s = Session(NoSource(), lambda e: None, policy=lc)  # type: ignore[arg-type]
    evs = after(events(WRAPPER), is_real, opened("/etc/shadow"))
    out = s.process(evs)
    assert not any(e["kind"] in ("exec", "fork", "exit") for e in out)
    assert [e["object"]["path"] for e in out if "would_deny" in e] == ["/etc/shadow"]
    s.summary.policy = lc.summary()
    assert s.summary.policy["would_deny"] == 1


# -- loading ----------------------------------------------------------------------------


def test_load_errors(tmp_path: Path) -> None:
    from argparse import Namespace

    from lsmtrace.commands import options

    with pytest.raises(LsmtraceError, match="cannot read"):
        load(str(tmp_path / "missing"))
    bad = tmp_path / "bad.json"
    bad.write_text('{"lsmtrace_landlock": 99}')
    with pytest.raises(LsmtraceError, match="format 1 expected"):
        options.open_policy(Namespace(policy=str(bad), policy_target=None))
    with pytest.raises(UsageError, match="needs --policy"):
        options.open_policy(Namespace(policy=None, policy_target="landlock"))
    assert options.open_policy(Namespace(policy=None, policy_target=None)) is None


@pytest.mark.parametrize("cmd", ["trace", "tui", "export"])
def test_commands_read_the_policy_before_loading_anything(
    tmp_path: Path, cmd: str
) -> None:
    """A bad --policy is an error before any BPF (and before the root check:
    no root here is needed to see it)."""
    from lsmtrace import cli

    args = cli.build_parser().parse_args([cmd, "--policy", str(tmp_path / "none")])
    with pytest.raises(LsmtraceError, match="cannot read"):
        args.func(args)


def test_trace_policy_needs_events() -> None:
    from lsmtrace import cli

    for extra in (["--count"], ["--discard"]):
        args = cli.build_parser().parse_args(["trace", "--policy", "p", *extra])
        with pytest.raises(UsageError, match="--policy checks each decision"):
            args.func(args)
