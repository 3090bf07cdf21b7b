"""A real Prometheus scrapes the installed exporter on the tracepoint rung.

The exporter is the wheel installed by deploy/install.sh (the session's `installed`
venv), run from `/` with `--bpf-stats`; Debian's `prometheus` scrapes it every
two seconds. Real denials by children with their own comm must show up in PromQL with
the `lsm` label this rung can give: `capability` for a capability check,
`unknown` for an open it cannot attribute. `promtool check metrics` must accept
the exposition, and every query of deploy/grafana/lsmtrace.json must evaluate;
panels without series are listed with the reason (tests/vm/test_deploy.py does
the same against the systemd unit on the fexit rung).
"""

from __future__ import annotations

import os
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import helpers
import prom
import pytest
from helpers import NOBODY, Actor, Exporter, hexpath

pytestmark = [helpers.needs_root, pytest.mark.root]

NICE, OPEN = "lsmtp-nice", "lsmtp-open"


@pytest.fixture(scope="module")
def exporter(
    installed: Path, tracepoint_rung: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Exporter]:
    why = prom.require_prometheus()
    if why:
        pytest.skip(why)
    ex = Exporter(
        tmp_path_factory.mktemp("prom-export"),
        ["--listen", "127.0.0.1:0", "--backend", "tracepoint", "--bpf-stats"],
        command=[str(installed / "bin" / "lsmtrace")],
        cwd=Path("/"),
        env=helpers.installed_env(),
    )
    ex.start()
    try:
        yield ex
    finally:
        ex.stop()


@pytest.fixture(scope="module")
def server(
    exporter: Exporter, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[prom.Prometheus]:
    target = exporter.url.removeprefix("http://").removesuffix("/metrics")
    with prom.prometheus(tmp_path_factory.mktemp("prometheus"), target) as p:
        yield p


@pytest.fixture(scope="module")
def denials(world_dir: Path) -> None:
    """A capability denial (nice(-1) as nobody) and a DAC denial (mode-000 file)."""
    secret = world_dir / "prom-secret"
    secret.write_text("x")
    os.chmod(secret, 0)
    actors = [
        Actor(NICE, [["nice"]], drop=NOBODY),
        Actor(OPEN, [["open", hexpath(secret)]], drop=NOBODY),
    ]
    with helpers.actors_cleanup(actors):
        for a in actors:
            a.wait_ready()
            a.go()
        for a in actors:
            a.finish()
    assert actors[0].result("nice")["errno"] in ("EPERM", "EACCES")
    assert actors[1].result("open")["errno"] == "EACCES"


def lsm_labels(server: prom.Prometheus, workload: str, hook: str) -> set[str]:
    res = server.wait_for(
        f'lsmtrace_denials_total{{workload="{workload}",hook="{hook}"}}'
    )
    return {r["metric"]["lsm"] for r in res}


def test_target_is_scraped(server: prom.Prometheus) -> None:
    server.wait_for('up{job="lsmtrace"} == 1')
    assert server.target_health()["health"] == "up", server.target_health()
    (rung,) = server.wait_for("lsmtrace_rung_info")
    assert rung["metric"]["rung"] == "tracepoint"


def test_denials_in_promql_with_their_lsm(
    server: prom.Prometheus, denials: None
) -> None:
    assert lsm_labels(server, NICE, "capable") == {"capability"}
    # the tracepoint rung cannot tell DAC from an LSM for an open
    assert lsm_labels(server, OPEN, "sys_openat") == {"unknown"}
    res = server.wait_for(
        'sum by (lsm) (lsmtrace_decisions_total{hook="capable",verdict="deny"})'
    )
    assert "capability" in {r["metric"].get("lsm") for r in res}


def test_promtool_accepts_the_exposition(exporter: Exporter, denials: None) -> None:
    with urllib.request.urlopen(exporter.url, timeout=10) as r:
        text = r.read().decode()
    res = prom.promtool_check_metrics(text)
    assert res.returncode == 0, res.stdout + res.stderr


def test_every_dashboard_query_evaluates(
    exporter: Exporter, server: prom.Prometheus, denials: None
) -> None:
    server.wait_scraped()
    with urllib.request.urlopen(exporter.url, timeout=10) as r:
        text = r.read().decode()
    empty = prom.check_dashboard(server, text)
    print("panels without series on the tracepoint rung:", empty or "none")
    # this rung has no hook latency: exactly the latency panels stay empty
    assert set(empty) == {
        p.title
        for p in prom.dashboard_panels()
        if "lsmtrace_hook_latency_seconds" in {prom.family_of(m) for m in p.metrics}
    }
