"""The exporter's collector on fake kernel-map snapshots, its HTTP side, the dashboard.

No root, no bcc: every test builds a fresh CollectorRegistry over a Snapshot and
parses the exposition with prometheus_client's own parser (or scrapes a real
loopback HTTP server that serves fake snapshots).
"""

from __future__ import annotations

import base64
import contextlib
import errno
import hashlib
import json
import re
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest, make_wsgi_app
from prometheus_client.parser import text_string_to_metric_families

from lsmtrace import abi
from lsmtrace.commands import export as export_cmd
from lsmtrace.errors import UsageError
from lsmtrace.events import Event, IdNames, verdict_of
from lsmtrace.metrics import (
    LATENCY_LE,
    OTHER,
    Collector,
    DenialAggregator,
    DenialTable,
    ProgStat,
    Snapshot,
    WouldDenyAggregator,
    cumulative_buckets,
    default_workload,
    parse_prog_fdinfo,
)

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "deploy" / "grafana" / "lsmtrace.json"
SYS = abi.SYSCALL_BASE
IDS = IdNames(
    {
        1: "file_open",
        2: "task_kill",
        SYS + 257: "sys_openat",
        abi.ID_CAPABLE: "capable",
    },
    {1: "file", 2: "task", SYS + 257: "file", abi.ID_CAPABLE: "capability"},
)


def snapshot(**kw: Any) -> Snapshot:
    base: dict[str, Any] = {
        "counts": [
            (SYS + 257, 0, 0, 1000),  # allowed opens
            (SYS + 257, 0, errno.EACCES, 7),  # denied, the rung cannot tell who
            (SYS + 257, 0, errno.ENOENT, 40),  # a failure, not a decision
            (1, int(abi.Lsm.APPARMOR), errno.EACCES, 3),
            (abi.ID_CAPABLE, int(abi.Lsm.CAPABILITY), errno.EPERM, 2),
        ],
        "latency": {1: [0] * 9 + [5, 10, 1] + [0] * 20, 2: [0] * 32},
        "stats": {
            "seen": 1052,
            "filtered": 1000,
            "attempted": 12,
            "lost": 2,
            "map_full": 1,
            "read_err": 0,
        },
        "id_names": IDS,
        "rung": "fexit",
        "attached": 66,
        "skipped": 6,
        "delivered": 10,
        "bpf_stats_enabled": True,
        "programs": {"lsmt_sys_exit": ProgStat(2_000_000_000, 1000)},
        "version": "9.9.9",
        "read_seconds": 0.001,
        "lost_by_hook": {"file_open": 1, "process events": 1},
    }
    base.update(kw)
    return Snapshot(**base)


def scrape(snap: Snapshot) -> dict[str, Any]:
    """{family name: Metric} of one scrape of a fresh registry."""
    reg = CollectorRegistry()
    reg.register(Collector(lambda: snap))
    text = generate_latest(reg).decode()
    return {f.name: f for f in text_string_to_metric_families(text)}


def samples(fams: dict[str, Any], name: str) -> list[Any]:
    return [s for f in fams.values() for s in f.samples if s.name == name]


def value(fams: dict[str, Any], name: str, **labels: str) -> float:
    hits = [
        s.value
        for s in samples(fams, name)
        if all(s.labels.get(k) == v for k, v in labels.items())
    ]
    assert len(hits) == 1, (name, labels, hits)
    return float(hits[0])


def event(
    comm: str = "cat",
    ret: int = -errno.EACCES,
    hook: str = "sys_openat",
    kind: str = "syscall",
    lsm: str | None = None,
) -> Event:
    return {
        "ts_ns": 1,
        "latency_ns": None,
        "cgroup": 1,
        "kind": kind,
        "rung": "tracepoint",
        "hook": hook,
        "family": "file",
        "lsm": lsm,
        "ret": ret,
        "verdict": verdict_of(kind, ret),
        "syscall": "openat",
        "pid": 10,
        "tgid": 10,
        "ppid": 1,
        "uid": 65534,
        "euid": 65534,
        "gid": 65534,
        "mntns": 1,
        "comm": comm,
        "object": {},
        "truncated": False,
    }


# -- decisions, self-metrics -----------------------------------------------------


def test_decisions_labels_follow_count_rows() -> None:
    f = scrape(snapshot())
    d = "lsmtrace_decisions_total"
    assert value(f, d, hook="sys_openat", verdict="allow", errno="", lsm="") == 1000
    assert (
        value(
            f,
            d,
            hook="sys_openat",
            verdict="deny",
            errno="EACCES",
            lsm="unknown",
            family="file",
        )
        == 7
    )
    # ENOENT is an error, not a security decision: no LSM is blamed
    assert value(f, d, hook="sys_openat", verdict="error", errno="ENOENT", lsm="") == 40
    assert value(f, d, hook="file_open", verdict="deny", lsm="apparmor") == 3
    assert (
        value(
            f,
            d,
            hook="capable",
            verdict="deny",
            errno="EPERM",
            lsm="capability",
            family="capability",
        )
        == 2
    )
    assert f["lsmtrace_decisions"].type == "counter"


def test_quiet_probes_are_not_denials() -> None:
    """Refused quiet capability probes (CAP_OPT_NOAUDIT; Tracer.quiet_counts())
    have their own verdict, so verdict="deny" counts only what was refused."""
    cap = abi.ID_CAPABLE
    f = scrape(
        snapshot(
            quiet=[(cap, int(abi.Lsm.CAPABILITY), errno.EPERM, 70)],
            process_events=30,
            quiet_probes=5,
        )
    )
    d = "lsmtrace_decisions_total"
    assert (
        value(
            f,
            d,
            hook="capable",
            verdict="quiet",
            errno="EPERM",
            lsm="capability",
            family="capability",
        )
        == 70
    )
    assert value(f, d, hook="capable", verdict="deny", errno="EPERM") == 2
    assert value(f, "lsmtrace_process_events_total") == 30
    assert value(f, "lsmtrace_quiet_probes_total") == 5


def test_lost_by_hook_names_are_labels_escaped_and_only_when_lost() -> None:
    f = scrape(snapshot(lost_by_hook={}))
    assert samples(f, "lsmtrace_hook_events_lost_total") == []
    f = scrape(snapshot(lost_by_hook={"odd\nhook\x1b[2J": 3}))
    (s,) = samples(f, "lsmtrace_hook_events_lost_total")
    assert s.labels["hook"] == "odd\\nhook\\x1b[2J"
    assert s.value == 3


def test_self_metrics() -> None:
    f = scrape(snapshot())
    assert value(f, "lsmtrace_events_lost_total") == 2
    # the same loss by hook: which decisions a full buffer hid
    by_hook = {
        s.labels["hook"]: s.value for s in samples(f, "lsmtrace_hook_events_lost_total")
    }
    assert by_hook == {"file_open": 1, "process events": 1}
    assert value(f, "lsmtrace_map_full_total") == 1
    assert value(f, "lsmtrace_read_errors_total") == 0
    assert value(f, "lsmtrace_events_attempted_total") == 12
    assert value(f, "lsmtrace_events_delivered_total") == 10
    assert value(f, "lsmtrace_programs_attached") == 66
    assert value(f, "lsmtrace_hooks_skipped") == 6
    assert value(f, "lsmtrace_rung_info", rung="fexit") == 1
    assert (
        value(f, "lsmtrace_build_info", version="9.9.9", abi=str(abi.ABI_VERSION)) == 1
    )
    assert value(f, "lsmtrace_bpf_stats_enabled") == 1
    assert value(f, "lsmtrace_bpf_run_seconds_total", program="lsmt_sys_exit") == 2.0
    assert value(f, "lsmtrace_bpf_runs_total", program="lsmt_sys_exit") == 1000


def test_bpf_run_time_only_while_stats_are_enabled() -> None:
    f = scrape(snapshot(bpf_stats_enabled=False))
    assert value(f, "lsmtrace_bpf_stats_enabled") == 0
    assert samples(f, "lsmtrace_bpf_run_seconds_total") == []


def test_unknown_ids_and_hostile_names_stay_valid() -> None:
    ids = IdNames({5: "weird\x1b[31m\udcff"}, {})
    f = scrape(snapshot(counts=[(5, 0, 0, 1), (77, 0, 0, 2)], id_names=ids, latency={}))
    hooks = {s.labels["hook"] for s in samples(f, "lsmtrace_decisions_total")}
    assert hooks == {"weird\\x1b[31m\\xff", "id77"}


# -- latency histograms -----------------------------------------------------------


def test_histogram_buckets_cumulative_and_le_in_seconds() -> None:
    f = scrape(snapshot())
    fam = f["lsmtrace_hook_latency_seconds"]
    assert fam.type == "histogram"
    rows = [
        s
        for s in fam.samples
        if s.name.endswith("_bucket") and s.labels["hook"] == "file_open"
    ]
    les = [s.labels["le"] for s in rows]
    assert les[-1] == "+Inf"
    assert len(rows) == abi.LAT_BUCKETS  # 31 finite buckets + +Inf
    for b, s in enumerate(rows[:-1]):
        assert float(s.labels["le"]) == pytest.approx(2.0 ** (b + 1) / 1e9, rel=1e-12)
    counts = [s.value for s in rows]
    assert counts == sorted(counts)  # cumulative
    assert counts[8] == 0
    assert counts[9] == 5
    assert counts[10] == 15
    assert counts[-1] == 16
    assert value(f, "lsmtrace_hook_latency_seconds_count", hook="file_open") == 16
    # a hook without observations has no series
    assert not [s for s in fam.samples if s.labels.get("hook") == "task_kill"]


def test_cumulative_buckets_last_is_clamped_bucket() -> None:
    b = [1] * abi.LAT_BUCKETS
    out = cumulative_buckets(b)
    assert [v for _, v in out] == [float(i + 1) for i in range(abi.LAT_BUCKETS)]
    assert out[-1][0] == "+Inf"
    assert len(LATENCY_LE) == abi.LAT_BUCKETS - 1


# -- denials by workload: bounded ---------------------------------------------------


def test_cardinality_bound_10k_comms() -> None:
    k = 50
    table = DenialTable(k=k)
    agg = DenialAggregator(table)
    agg.add_events(event(comm=f"c{i}") for i in range(10_000))
    f = scrape(snapshot(denials=table.snapshot()))
    rows = samples(f, "lsmtrace_denials_total")
    workloads = {s.labels["workload"] for s in rows}
    assert len(workloads) <= k + 1
    assert OTHER in workloads
    assert len(rows) <= k + 1
    assert sum(s.value for s in rows) == 10_000
    folded = value(f, "lsmtrace_denials_folded_total")
    assert folded == 10_000 - k
    assert value(f, "lsmtrace_denials_total", workload=OTHER) == folded


def test_frequent_workload_gets_promoted_and_counters_only_grow() -> None:
    table = DenialTable(k=2, min_promote=10)
    table.add("sys_openat", "unknown", "a")
    table.add("sys_openat", "unknown", "b")
    prev: dict[tuple[str, str, str], int] = {}
    for i in range(200):
        table.add("sys_openat", "unknown", "hot")
        if i % 7 == 0:
            table.add("sys_openat", "unknown", f"rare{i}")
        snap = {(r.hook, r.lsm, r.workload): r.count for r in table.snapshot().rows}
        for key, n in snap.items():
            if key in prev:
                assert n >= prev[key], f"{key} went down"
        prev = snap
    assert ("sys_openat", "unknown", "hot") in prev
    assert len(table.tracked) == 2
    assert table.promotions >= 1
    # a demoted series leaves with its count; nothing is counted twice
    total = 2 + 200 + len(range(0, 200, 7))
    assert table.folded == sum(n for (_, _, w), n in prev.items() if w == OTHER)
    assert sum(prev.values()) <= total


def test_aggregator_counts_denials_only_and_uses_workload_of() -> None:
    table = DenialTable(k=10)

    def workload_of(ev: Event) -> str:
        if ev["comm"] == "boom":
            raise RuntimeError("resolver failed")
        return f"unit:{ev['comm']}.service"

    agg = DenialAggregator(table, workload_of)
    n = agg.add_events(
        [
            event("nginx"),
            event("nginx", ret=0),
            event("nginx", ret=-errno.ENOENT),
            event("boom"),
            event(
                "cap",
                kind="capable",
                hook="capable",
                ret=-errno.EPERM,
                lsm="capability",
            ),
        ]
    )
    assert n == 3
    rows = {(r.hook, r.lsm, r.workload): r.count for r in table.snapshot().rows}
    assert rows == {
        ("sys_openat", "unknown", "unit:nginx.service"): 1,
        ("sys_openat", "unknown", "boom"): 1,  # resolver failure: the comm
        ("capable", "capability", "unit:cap.service"): 1,
    }


def test_top_k_zero_folds_everything() -> None:
    table = DenialTable(k=0)
    for i in range(100):
        table.add("h", "l", f"w{i}")
    snap = table.snapshot()
    assert snap.folded == 100
    assert [(r.workload, r.count) for r in snap.rows] == [(OTHER, 100)]


# -- the dashboard queries only what the exporter exposes ---------------------------

PROMQL_FUNCS_OR_KEYWORDS = re.compile(r"\blsmtrace_[a-zA-Z0-9_]*")


def dashboard_exprs() -> list[str]:
    dash = json.loads(DASHBOARD.read_text())
    out: list[str] = []

    def walk(o: Any) -> None:
        if isinstance(o, dict):
            for k, v in o.items():
                if k in ("expr", "definition") and isinstance(v, str):
                    out.append(v)
                elif k == "query" and isinstance(v, dict | str):
                    walk({"expr": v} if isinstance(v, str) else v.get("query", ""))
                walk(v)
        elif isinstance(o, list):
            for v in o:
                walk(v)

    walk(dash)
    return out


def test_dashboard_metrics_are_exposed() -> None:
    exprs = dashboard_exprs()
    assert len(exprs) >= 10
    wanted = {m for e in exprs for m in PROMQL_FUNCS_OR_KEYWORDS.findall(e)}
    table = DenialTable(k=5)
    table.add("sys_openat", "unknown", "cat")
    f = scrape(snapshot(denials=table.snapshot()))
    exposed = {s.name for fam in f.values() for s in fam.samples}
    missing = sorted(wanted - exposed)
    assert not missing, f"dashboard queries metrics the exporter lacks: {missing}"
    # and the important ones are on the dashboard at all
    for name in (
        "lsmtrace_decisions_total",
        "lsmtrace_denials_total",
        "lsmtrace_hook_latency_seconds_bucket",
        "lsmtrace_events_lost_total",
    ):
        assert name in wanted


# -- fdinfo, listen addresses, basic auth -------------------------------------------


def test_parse_prog_fdinfo() -> None:
    text = (
        "pos:\t0\nflags:\t02000002\nmnt_id:\t16\nino:\t1057\nprog_type:\t5\n"
        "prog_jited:\t1\nprog_tag:\tdeadbeef\nmemlock:\t4096\nprog_id:\t77\n"
        "run_time_ns:\t123456\nrun_cnt:\t89\nrecursion_misses:\t0\n"
    )
    assert parse_prog_fdinfo(text) == (77, ProgStat(123456, 89))
    assert parse_prog_fdinfo("pos:\t0\nflags:\t02\nlink_id:\t3\n") is None


@pytest.mark.parametrize(
    ("listen", "want"),
    [
        ("127.0.0.1:9464", ("127.0.0.1", 9464)),
        ("[::1]:80", ("::1", 80)),
        ("0.0.0.0:0", ("0.0.0.0", 0)),
        ("localhost:9464", ("localhost", 9464)),
    ],
)
def test_parse_listen(listen: str, want: tuple[str, int]) -> None:
    assert export_cmd.parse_listen(listen) == want


@pytest.mark.parametrize(
    "bad",
    ["9464", ":9464", "127.0.0.1:", "h:x", "::1:80", "127.0.0.1:70000", "[::1]80"],
)
def test_parse_listen_rejects(bad: str) -> None:
    with pytest.raises(UsageError) as e:
        export_cmd.parse_listen(bad)
    assert e.value.hint
    assert "--listen" in e.value.hint


def _basic(user: str, pw: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{pw}".encode()).decode()


def test_credentials_plain_and_sha256(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.write_text("# comment\nprom:s3cret:with:colons\n")
    plain.chmod(0o600)
    c = export_cmd.read_credentials(str(plain))
    assert c.check(_basic("prom", "s3cret:with:colons"))
    assert not c.check(_basic("prom", "s3cret"))
    assert not c.check(_basic("other", "s3cret:with:colons"))
    assert not c.check("Bearer abc")
    assert not c.check("Basic !!!")
    assert not c.check("")
    hashed = tmp_path / "hashed"
    hashed.write_text("prom:sha256:" + hashlib.sha256(b"pw").hexdigest() + "\n")
    c = export_cmd.read_credentials(str(hashed))
    assert c.check(_basic("prom", "pw"))
    assert not c.check(_basic("prom", "pW"))


@pytest.mark.parametrize(
    "text", ["", "nocolon\n", "a:b\nc:d\n", ":pw\n", "u:sha256:xyz\n"]
)
def test_credentials_rejects(tmp_path: Path, text: str) -> None:
    f = tmp_path / "auth"
    f.write_text(text)
    with pytest.raises(UsageError):
        export_cmd.read_credentials(str(f))


# -- a real HTTP server over fake snapshots ----------------------------------------------


@contextlib.contextmanager
def serve(app: Any, tls: ssl.SSLContext | None = None) -> Iterator[tuple[Any, int]]:
    httpd = export_cmd.make_http_server(app, "127.0.0.1", 0, tls)
    t = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    t.start()
    try:
        yield httpd, httpd.server_address[1]
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def fake_app() -> Any:
    reg = CollectorRegistry()
    reg.register(Collector(lambda: snapshot()))
    return make_wsgi_app(reg)


def get(url: str, headers: dict[str, str] | None = None, **kw: Any) -> tuple[int, str]:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=5, **kw) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_http_scrape_while_a_client_is_stuck(fake_app: Any) -> None:
    with serve(fake_app) as (_httpd, port):
        stuck = socket.create_connection(("127.0.0.1", port))  # sends nothing
        try:
            t0 = time.monotonic()
            status, body = get(f"http://127.0.0.1:{port}/metrics")
            assert status == 200
            # served before the stuck client's timeout would have freed a thread
            assert time.monotonic() - t0 < export_cmd.CLIENT_TIMEOUT / 2
            fams = {f.name for f in text_string_to_metric_families(body)}
            assert "lsmtrace_decisions" in fams
        finally:
            stuck.close()


def test_http_basic_auth(fake_app: Any, tmp_path: Path) -> None:
    f = tmp_path / "auth"
    f.write_text("prom:pw\n")
    app = export_cmd.with_basic_auth(fake_app, export_cmd.read_credentials(str(f)))
    with serve(app) as (_httpd, port):
        url = f"http://127.0.0.1:{port}/metrics"
        status, _ = get(url)
        assert status == 401
        assert get(url, {"Authorization": _basic("prom", "nope")})[0] == 401
        status, body = get(url, {"Authorization": _basic("prom", "pw")})
        assert status == 200
        assert "lsmtrace_decisions_total" in body


def test_http_port_in_use_is_a_usage_error(fake_app: Any) -> None:
    with serve(fake_app) as (_httpd, port):
        with pytest.raises(UsageError) as e:
            export_cmd.make_http_server(fake_app, "127.0.0.1", port)
        assert "already in use" in e.value.message
        assert e.value.hint


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI")
def test_https(fake_app: Any, tmp_path: Path) -> None:
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    ctx = export_cmd.tls_context(str(cert), str(key))
    client = ssl.create_default_context(cafile=str(cert))
    with serve(fake_app, ctx) as (_httpd, port):
        # a client that connects and never starts the handshake blocks nobody
        idle = socket.create_connection(("127.0.0.1", port))
        try:
            status, body = get(f"https://127.0.0.1:{port}/metrics", context=client)
            assert status == 200
            assert "lsmtrace_build_info" in body
        finally:
            idle.close()
    with pytest.raises(UsageError):
        export_cmd.tls_context(str(cert), str(tmp_path / "missing.pem"))


def test_import_hygiene() -> None:
    code = (
        "import sys, lsmtrace.metrics, lsmtrace.commands.export;"
        "print(sorted(m for m in ('bcc', 'textual') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.strip() == "[]"


# -- the live audit mode (--policy) ---------------------------------------------------


def would(ev: Event, target: str = "landlock") -> Event:
    ev["would_deny"] = {
        "policy": "p.json",
        "target": target,
        "context": "ruleset x",
        "program": "/usr/bin/cat",
        "access": ["file /etc/x read"],
        "missing": ['{"path": "/etc/x", "access": ["read_file"]}'],
    }
    return ev


def test_would_deny_series_bounded_and_apart_from_denials() -> None:
    """Allowed decisions the candidate policy would deny are counted by
    (policy, hook, lsm = the policy's target, workload), top-K like denials;
    real denials stay in lsmtrace_denials_total only."""
    k = 5
    table, wd = DenialTable(k=k), DenialTable(k=k)
    evs = [would(event(comm=f"c{i}", ret=0)) for i in range(100)]
    evs += [event(comm="d")]  # a denial nothing in the policy concerns
    DenialAggregator(table).add_events(evs)
    WouldDenyAggregator(wd).add_events(evs)
    f = scrape(
        snapshot(
            denials=table.snapshot(),
            policy="p.json",
            would_deny=wd.snapshot(),
            policy_checked=300,
        )
    )
    rows = samples(f, "lsmtrace_policy_would_deny_total")
    assert {s.labels["policy"] for s in rows} == {"p.json"}
    assert {s.labels["lsm"] for s in rows} == {"landlock"}
    assert len({s.labels["workload"] for s in rows}) <= k + 1
    assert sum(s.value for s in rows) == 100
    assert (
        value(f, "lsmtrace_policy_would_deny_folded_total", policy="p.json") == 100 - k
    )
    assert value(f, "lsmtrace_policy_checked_total", policy="p.json") == 300
    assert sum(s.value for s in samples(f, "lsmtrace_denials_total")) == 1


def test_no_policy_no_would_deny_series() -> None:
    f = scrape(snapshot())
    assert not any(n.startswith("lsmtrace_policy") for n in f)


@pytest.mark.parametrize(
    ("ev", "workload"),
    [
        ({"comm": "cat", "unit": "nginx.service"}, "nginx.service"),
        ({"comm": "cat", "unit": "backup.scope"}, "backup.scope"),
        # one per login, one per `systemd-run --scope`: a new name each time
        ({"comm": "cat", "unit": "session-3.scope"}, "cat"),
        ({"comm": "cat", "unit": "session-c2.scope"}, "cat"),
        ({"comm": "cat", "unit": "run-r0123abcd.scope"}, "cat"),
        ({"comm": "cat", "unit": None}, "cat"),
        (
            {
                "comm": "cat",
                "unit": "docker-1.scope",
                "container": {"runtime": "docker", "id": "0123456789abcdef"},
            },
            "docker:0123456789ab",
        ),
        ({"comm": None}, "?"),
    ],
)
def test_default_workload(ev: dict[str, Any], workload: str) -> None:
    assert default_workload(ev) == workload
