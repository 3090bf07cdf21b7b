"""A real Prometheus server (Debian's `prometheus`, 2.42) scraping an lsmtrace exporter.

Used natively on the tracepoint rung (tests/bpf/test_prometheus.py) and inside the
VM guest against the systemd unit on the fexit rung (tests/vm/test_deploy.py):
- `Prometheus`: `prometheus` as a plain process on 127.0.0.1 (port picked here),
  scraping one target every `scrape_interval` seconds (a scrape of a TCG guest's
  exporter with ~150 programs can take a few seconds), its TSDB in a temp dir; `query()` is PromQL
  over `/api/v1/query`.
- `promtool_check_metrics()`: `promtool check metrics` on an exposition.
- `dashboard_panels()` and `check_dashboard()`: every query of
  deploy/grafana/lsmtrace.json evaluated by that server, with Grafana's variables
  replaced the way Grafana would.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "lsmtrace.json"
# Grafana's $__rate_interval is at least 4 scrape intervals.
RATE_WINDOW_SCRAPES = 6
METRIC_RE = re.compile(r"\blsmtrace_[a-zA-Z0-9_]+")

# Metrics the exporter leaves out on purpose in some setups (docs/metrics.md); a
# dashboard panel built only on them may have no series there, and nowhere else.
CONDITIONAL_METRICS = {
    "lsmtrace_hook_latency_seconds": "the fexit and kprobe rungs only",
    "lsmtrace_bpf_run_seconds_total": "only while BPF run-time statistics are on",
    "lsmtrace_bpf_runs_total": "only while BPF run-time statistics are on",
}


def require_prometheus() -> str | None:
    """None when prometheus and promtool are installed, else why not."""
    for exe in ("prometheus", "promtool"):
        if shutil.which(exe) is None:
            return f"{exe} is not installed (Debian package prometheus)"
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_get(url: str, timeout: float = 10.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return str(r.read().decode())


@dataclass
class Prometheus:
    workdir: Path
    target: str  # host:port of the exporter
    scrape_interval: int = 2
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    log: Path = field(default_factory=Path)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 120.0) -> Prometheus:
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "prometheus.yml"
        config.write_text(
            "global:\n"
            f"  scrape_interval: {self.scrape_interval}s\n"
            f"  scrape_timeout: {self.scrape_interval}s\n"
            "scrape_configs:\n"
            "  - job_name: lsmtrace\n"
            f"    static_configs: [{{targets: ['{self.target}']}}]\n"
        )
        self.port = free_port()
        self.log = self.workdir / "prometheus.log"
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [
                    "prometheus",
                    f"--config.file={config}",
                    f"--storage.tsdb.path={self.workdir / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"prometheus exited:\n{self.log_tail()}")
            with contextlib.suppress(OSError):
                http_get(f"{self.url}/-/ready", timeout=2)
                return self
            time.sleep(0.5)
        raise AssertionError(
            f"prometheus not ready after {timeout:.0f} s:\n{self.log_tail()}"
        )

    def log_tail(self, n: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def query(self, expr: str) -> list[dict[str, Any]]:
        """The instant vector of `expr` (AssertionError with Prometheus' error)."""
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        try:
            body = json.loads(http_get(url))
        except urllib.error.HTTPError as e:  # 400/422: a bad query
            body = json.loads(e.read().decode())
        if body.get("status") != "success":
            raise AssertionError(
                f"{expr}: {body.get('errorType')}: {body.get('error')}"
            )
        data = body["data"]
        assert data["resultType"] == "vector", (expr, data["resultType"])
        return list(data["result"])

    def wait_for(
        self, expr: str, timeout: float = 60.0, want: int = 1
    ) -> list[dict[str, Any]]:
        """The result of `expr` once it has at least `want` series (or at timeout)."""
        deadline = time.monotonic() + timeout
        while True:
            res = self.query(expr)
            if len(res) >= want or time.monotonic() > deadline:
                return res
            time.sleep(0.5)

    def target_health(self) -> dict[str, Any]:
        body = json.loads(http_get(f"{self.url}/api/v1/targets"))
        (t,) = body["data"]["activeTargets"]
        return dict(t)

    @property
    def rate_interval(self) -> str:
        """Grafana's $__rate_interval for this scrape interval."""
        return f"{self.scrape_interval * RATE_WINDOW_SCRAPES}s"

    def wait_scraped(self, n: int = 3, timeout: float = 120.0) -> None:
        """Until `n` successful scrapes are in the TSDB (AssertionError if not)."""
        window = f"{self.scrape_interval * (n + 3)}s"
        res = self.wait_for(
            f'sum_over_time(up{{job="lsmtrace"}}[{window}]) >= {n}', timeout=timeout
        )
        assert res, f"fewer than {n} good scrapes: {self.target_health()}"


@contextlib.contextmanager
def prometheus(
    workdir: Path, target: str, scrape_interval: int = 2
) -> Iterator[Prometheus]:
    p = Prometheus(workdir, target, scrape_interval)
    try:
        yield p.start()
    finally:
        p.stop()


def promtool_check_metrics(exposition: str) -> subprocess.CompletedProcess[str]:
    """`promtool check metrics` reads the exposition on stdin: 0 = parsed, no lint."""
    return subprocess.run(
        ["promtool", "check", "metrics"],
        input=exposition,
        capture_output=True,
        text=True,
        timeout=60,
    )


def exposed_metric_names(exposition: str) -> set[str]:
    """Families with at least one sample in an exposition (histograms by their base
    name): a family announced by # HELP/# TYPE without a sample has no series."""
    names = set()
    for ln in exposition.splitlines():
        if ln and not ln.startswith("#"):
            names.add(family_of(re.split(r"[{ ]", ln, maxsplit=1)[0]))
    return names


@dataclass
class Panel:
    title: str
    exprs: list[str]

    @property
    def metrics(self) -> set[str]:
        return {m for e in self.exprs for m in METRIC_RE.findall(e)}


def dashboard_panels(path: Path = DASHBOARD) -> list[Panel]:
    dash = json.loads(path.read_text())
    out = []
    for p in dash["panels"]:
        exprs = [t["expr"] for t in p.get("targets", []) if t.get("expr")]
        if exprs:
            out.append(Panel(p.get("title", "?"), exprs))
    return out


def grafana_expr(expr: str, rate_interval: str) -> str:
    """Grafana's variables as Grafana would fill them: every instance, a rate window."""
    return expr.replace("$__rate_interval", rate_interval).replace(
        '=~"$instance"', '=~".+"'
    )


def family_of(metric: str) -> str:
    """lsmtrace_x_bucket -> lsmtrace_x (the family name a # TYPE line carries)."""
    for suffix in ("_bucket", "_count", "_sum"):
        if metric.endswith(suffix):
            return metric.removesuffix(suffix)
    return metric


def check_dashboard(prom: Prometheus, exposition: str) -> dict[str, str]:
    """Evaluate every query of the dashboard. Every query must evaluate; a panel may
    come back empty only when a metric it needs is one of CONDITIONAL_METRICS and is
    absent from this exporter's exposition. Returns {panel title: why it is empty}."""
    exposed = exposed_metric_names(exposition)
    empty: dict[str, str] = {}
    problems = []
    for panel in dashboard_panels():
        series = 0
        for expr in panel.exprs:
            # raises on a query Prometheus refuses
            series += len(prom.query(grafana_expr(expr, prom.rate_interval)))
        if series:
            continue
        absent = sorted(
            f for f in {family_of(m) for m in panel.metrics} if f not in exposed
        )
        unexplained = [f for f in absent if f not in CONDITIONAL_METRICS]
        if absent and not unexplained:
            empty[panel.title] = "; ".join(
                f"{f} is not exposed ({CONDITIONAL_METRICS[f]})" for f in absent
            )
        else:
            problems.append(
                f"{panel.title!r}: no series (absent: {absent or 'none'}; "
                f"target {prom.target_health()})"
            )
    assert not problems, "dashboard panels without series:\n" + "\n".join(problems)
    return empty
