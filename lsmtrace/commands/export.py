"""`lsmtrace export`: serve Prometheus metrics of LSM decisions over HTTP(S).

Threads and locks (the design; docs/metrics.md says it for users):
- The main thread runs the Session: it polls the ring buffer, decodes the
  denial events (the kernel streams nothing else: TraceOptions(denied=True))
  and adds them to the DenialTable under `table_lock`.
- prometheus_client-style HTTP server threads (one per connection, at most
  MAX_CLIENTS at once, TLS handshake and a socket timeout inside the connection's
  own thread) call the registry, whose Collector calls LiveSource: it reads the
  kernel maps (counts, latency, stats) under `map_lock` and copies the denial
  table under `table_lock`. Both locks are held only while reading, never while
  a client is written to, so a slow or stuck client never blocks the tracer.
  The main thread takes `map_lock` only to detach and to close the tracer.
- At the end: the Session detaches and drains, the server is shut down, then
  the tracer is closed under `map_lock` (a scrape still running sees `closed`).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import ctypes as ct
import errno
import hashlib
import hmac
import logging
import os
import socket
import stat
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lsmtrace.commands import options
from lsmtrace.errors import LsmtraceError, UsageError

# prometheus_client (~50 ms), wsgiref/http.server and ssl are imported inside the
# functions that need them: the CLI builds this parser for every command.
if TYPE_CHECKING:
    import ssl
    from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

    from lsmtrace.events import Event, IdNames
    from lsmtrace.loader import Tracer
    from lsmtrace.metrics import DenialTable, ProgStat, Snapshot
    from lsmtrace.policy.live import LiveCheck
    from lsmtrace.session import Summary

log = logging.getLogger(__name__)

DEFAULT_LISTEN = "127.0.0.1:9464"
DEFAULT_TOP_K = 50
MAX_CLIENTS = 16
CLIENT_TIMEOUT = 10.0
LOCK_SLICE = 2048
# In a flood the main thread decodes without pause; each step of a scrape (accept,
# read, collect, write) waits for the GIL up to the switch interval. 1 ms instead
# of 5 keeps a scrape answering in well under a second (tests/bpf/test_export_live.py).
SWITCH_INTERVAL = 0.001
BPF_OBJ_GET_INFO_BY_FD = 15
BPF_ENABLE_STATS = 32
BPF_STATS_RUN_TIME = 0
BPF_STATS_SYSCTL = Path("/proc/sys/kernel/bpf_stats_enabled")

EPILOG = """examples:
  lsmtrace export                              # http://127.0.0.1:9464/metrics
  lsmtrace export --listen 0.0.0.0:9464 --tls-cert c.pem --tls-key k.pem \\
                  --basic-auth-file /etc/lsmtrace/auth   # scraped from elsewhere
  lsmtrace export --top-k 20 --family file     # fewer workload series, file hooks
  lsmtrace export --bpf-stats                  # also BPF run time per program
  lsmtrace export --policy app.aa --unit app.service   # what a candidate policy
                                               # would deny (streams every decision)
  curl -s 127.0.0.1:9464/metrics | grep lsmtrace_decisions_total

Metrics and labels: docs/metrics.md. Allowed decisions are counted in the kernel
and read at scrape time; only denials reach user space (top-K workloads).
Filters restrict the denial stream (lsmtrace_denials_total); the decision
counts cover every decision of the attached hooks.
"""


# -- command line ---------------------------------------------------------------


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "export",
        help="serve Prometheus metrics of LSM decisions",
        description="Serve Prometheus metrics: decision counts read from the\n"
        "kernel's maps at scrape time, denials by workload (top-K), hook\n"
        "latency histograms and the tracer's own counters.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    options.add_live_args(
        p,
        "filters (in the kernel; they restrict the denial stream, and "
        "--hooks/--family what is attached)",
        denied=False,  # export always streams denials only
    )
    s = p.add_argument_group("serving")
    s.add_argument(
        "--listen",
        default=DEFAULT_LISTEN,
        metavar="HOST:PORT",
        help=f"address to serve on (default {DEFAULT_LISTEN}, loopback "
        "only; [::1]:PORT for IPv6; port 0 picks a free one)",
    )
    s.add_argument(
        "--top-k",
        type=int,
        default=DEFAULT_TOP_K,
        metavar="K",
        help="workload series kept for lsmtrace_denials_total; the rest "
        f'go to workload="other" (default {DEFAULT_TOP_K})',
    )
    s.add_argument(
        "--tls-cert", metavar="FILE", help="serve HTTPS with this PEM certificate"
    )
    s.add_argument(
        "--tls-key", metavar="FILE", help="the certificate's PEM private key"
    )
    s.add_argument(
        "--basic-auth-file",
        metavar="FILE",
        help="require HTTP basic auth; the file holds one line "
        "'user:password' or 'user:sha256:<hex digest of the password>'",
    )
    s.add_argument(
        "--bpf-stats",
        action="store_true",
        help="enable the kernel's BPF run-time statistics while running "
        "(BPF_ENABLE_STATS; costs a little on every BPF program of the host)",
    )
    options.add_duration_arg(s)
    options.add_policy_args(p)
    p.set_defaults(func=run)


def parse_listen(value: str) -> tuple[str, int]:
    """'HOST:PORT' or '[V6]:PORT' -> (host, port)."""
    hint = "e.g. --listen 127.0.0.1:9464, --listen [::1]:9464, --listen 0.0.0.0:9464"
    if value.startswith("["):
        host, sep, port_s = value[1:].partition("]:")
    else:
        host, sep, port_s = value.rpartition(":")
        if ":" in host:
            raise UsageError(
                f"--listen {value!r}: put an IPv6 address in brackets", hint=hint
            )
    if not sep or not host:
        raise UsageError(f"--listen {value!r} is not HOST:PORT", hint=hint)
    try:
        port = int(port_s)
    except ValueError:
        raise UsageError(
            f"--listen {value!r}: port {port_s!r} is not a number", hint=hint
        ) from None
    if not 0 <= port <= 65535:
        raise UsageError(f"--listen {value!r}: port out of range", hint=hint)
    return host, port


def resolve(host: str, port: int) -> tuple[socket.AddressFamily, str]:
    try:
        infos = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as e:
        raise UsageError(
            f"--listen: cannot resolve {host!r}: {e.strerror}",
            hint="give an IP address, e.g. 127.0.0.1",
        ) from None
    family, _, _, _, addr = infos[0]
    return family, str(addr[0])


def is_loopback(addr: str) -> bool:
    import ipaddress

    try:
        return bool(ipaddress.ip_address(addr.split("%")[0]).is_loopback)
    except ValueError:
        return False


# -- basic auth -----------------------------------------------------------------


@dataclass(frozen=True)
class Credentials:
    user: bytes
    password: bytes | None = None  # plain
    sha256: bytes | None = None  # hex digest, lower case

    def check(self, header: str) -> bool:
        """Constant-time check of an Authorization header."""
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            raw = base64.b64decode(token.strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        user, sep, password = raw.partition(b":")
        ok_user = hmac.compare_digest(user, self.user)
        if self.sha256 is not None:
            digest = hashlib.sha256(password).hexdigest().encode()
            ok_pw = hmac.compare_digest(digest, self.sha256)
        else:
            ok_pw = hmac.compare_digest(password, self.password or b"")
        return bool(sep) and ok_user and ok_pw


def read_credentials(path: str) -> Credentials:
    hint = "one line 'user:password' or 'user:sha256:<hex>' in a file only root reads"
    try:
        st = os.stat(path)
        text = Path(path).read_text()
    except OSError as e:
        raise UsageError(f"--basic-auth-file {path}: {e.strerror}", hint=hint) from None
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("%s is readable by others than its owner; chmod 600 it", path)
    lines = [ln.strip() for ln in text.splitlines()]
    lines = [ln for ln in lines if ln and not ln.startswith("#")]
    if len(lines) != 1 or ":" not in lines[0]:
        raise UsageError(
            f"--basic-auth-file {path}: expected one 'user:password' line", hint=hint
        )
    user, _, secret = lines[0].partition(":")
    if not user or not secret:
        raise UsageError(f"--basic-auth-file {path}: empty user or password", hint=hint)
    if secret.startswith("sha256:"):
        digest = secret[len("sha256:") :].lower()
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise UsageError(f"--basic-auth-file {path}: bad sha256 digest", hint=hint)
        return Credentials(user.encode(), sha256=digest.encode())
    return Credentials(user.encode(), password=secret.encode())


def with_basic_auth(app: WSGIApplication, creds: Credentials) -> WSGIApplication:
    def guarded(
        environ: WSGIEnvironment, start_response: StartResponse
    ) -> Iterable[bytes]:
        if creds.check(str(environ.get("HTTP_AUTHORIZATION", ""))):
            return app(environ, start_response)
        start_response(
            "401 Unauthorized",
            [
                ("WWW-Authenticate", 'Basic realm="lsmtrace", charset="UTF-8"'),
                ("Content-Type", "text/plain; charset=utf-8"),
            ],
        )
        return [b"401 Unauthorized\n"]

    return guarded


def tls_context(cert: str, key: str) -> ssl.SSLContext:
    import ssl

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(certfile=cert, keyfile=key)
    except (OSError, ssl.SSLError) as e:
        raise UsageError(
            f"cannot load the TLS certificate {cert} / key {key}: {e}",
            hint="both PEM files, the key unencrypted",
        ) from None
    return ctx


# -- the HTTP server --------------------------------------------------------------


def _server_class(
    family: socket.AddressFamily, tls: ssl.SSLContext | None
) -> type[Any]:
    # prometheus_client's own ThreadingWSGIServer (a daemon thread per request),
    # with the TLS handshake moved into the connection's thread, a socket timeout
    # and a bound on concurrent connections: neither a slow TLS client nor a
    # flood of idle connections can stall the accept loop or grow without bound.
    import ssl
    from wsgiref.simple_server import WSGIRequestHandler

    from prometheus_client.exposition import ThreadingWSGIServer

    class QuietHandler(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return None

    class Server(ThreadingWSGIServer):
        address_family = family
        handler_class = QuietHandler

        def __init__(self, *a: Any, **kw: Any) -> None:
            self.slots = threading.BoundedSemaphore(MAX_CLIENTS)
            super().__init__(*a, **kw)

        def process_request(self, request: Any, client_address: Any) -> None:
            if not self.slots.acquire(blocking=False):
                self.shutdown_request(request)
                return
            try:
                super().process_request(request, client_address)
            except Exception:
                self.slots.release()
                raise

        def process_request_thread(self, request: Any, client_address: Any) -> None:
            try:
                request.settimeout(CLIENT_TIMEOUT)
                if tls is not None:
                    try:
                        request = tls.wrap_socket(request, server_side=True)
                    except (OSError, ssl.SSLError) as e:
                        log.debug("TLS handshake with %s failed: %s", client_address, e)
                        self.shutdown_request(request)
                        return
                super().process_request_thread(request, client_address)
            finally:
                self.slots.release()

    return Server


def make_http_server(
    app: WSGIApplication, host: str, port: int, tls: ssl.SSLContext | None = None
) -> Any:
    """Bind now (so a busy port fails before BPF is loaded); serve_forever later."""
    from wsgiref.simple_server import make_server

    family, addr = resolve(host, port)
    cls = _server_class(family, tls)
    try:
        return make_server(
            addr, port, app, server_class=cls, handler_class=cls.handler_class
        )
    except OSError as e:
        where = f"{host}:{port}"
        if e.errno == errno.EADDRINUSE:
            raise UsageError(
                f"cannot listen on {where}: address already in use",
                hint="another exporter running? pick another port: "
                "--listen 127.0.0.1:PORT",
            ) from None
        if e.errno == errno.EADDRNOTAVAIL:
            raise UsageError(
                f"cannot listen on {where}: not an address of this host",
                hint="use 127.0.0.1, 0.0.0.0 or one of `ip -br addr`",
            ) from None
        raise UsageError(
            f"cannot listen on {where}: {e.strerror}", hint="check --listen"
        ) from None


# -- BPF program statistics ------------------------------------------------------


def bpf_stats_sysctl() -> bool:
    try:
        return BPF_STATS_SYSCTL.read_text().strip() not in ("", "0")
    except OSError:
        return False


def enable_bpf_stats() -> int:
    """BPF_ENABLE_STATS: run-time stats on while the returned fd stays open."""
    from lsmtrace import probe

    attr = bytearray(struct.pack("<I", BPF_STATS_RUN_TIME).ljust(16, b"\0"))
    try:
        return probe.sys_bpf(BPF_ENABLE_STATS, attr)
    except OSError as e:
        raise LsmtraceError(
            f"--bpf-stats: BPF_ENABLE_STATS failed: {e.strerror}",
            hint="needs kernel 5.8+ and CAP_SYS_ADMIN; or set "
            "sysctl kernel.bpf_stats_enabled=1",
        ) from None


def prog_name(fd: int) -> str:
    """The kernel's name of a BPF program fd (15 bytes max), via BPF_OBJ_GET_INFO_BY_FD."""
    from lsmtrace import probe

    info = ct.create_string_buffer(80)  # bpf_prog_info up to and including name[16]
    attr = bytearray(struct.pack("<IIQ", fd, len(info), ct.addressof(info)))
    probe.sys_bpf(BPF_OBJ_GET_INFO_BY_FD, attr)
    return info.raw[64:80].split(b"\0", 1)[0].decode(errors="replace")


def find_program_fds(
    proc_self: Path = Path("/proc/self"), names: dict[int, str] | None = None
) -> dict[int, str]:
    """{fd: program name} of the BPF programs this process holds, one fd per id.

    `names` ({fd: name}, Tracer.program_names()) names our programs by their
    names in the program text, which carry the hook (kretfunc__security_file_open,
    lsmt_krp_file_open); the kernel's own name of a program is cut to 15 bytes
    (kretfunc__secur), so it only names programs missing from `names`."""
    from lsmtrace.metrics import parse_prog_fdinfo

    out: dict[int, str] = {}
    seen: set[int] = set()
    try:
        fds = [int(p.name) for p in (proc_self / "fdinfo").iterdir()]
    except OSError:
        return out
    for fd in sorted(fds):
        try:
            parsed = parse_prog_fdinfo((proc_self / "fdinfo" / str(fd)).read_text())
        except OSError:
            continue
        if parsed is None or parsed[0] in seen:
            continue
        seen.add(parsed[0])
        if names and fd in names:
            out[fd] = names[fd]
            continue
        try:
            out[fd] = prog_name(fd) or f"prog{parsed[0]}"
        except OSError:
            out[fd] = f"prog{parsed[0]}"
    return out


def read_program_stats(
    fds: dict[int, str], proc_self: Path = Path("/proc/self")
) -> dict[str, ProgStat]:
    """{name: stats}; programs whose (truncated) names collide are summed."""
    from lsmtrace.metrics import ProgStat, parse_prog_fdinfo

    out: dict[str, ProgStat] = {}
    for fd, name in fds.items():
        try:
            parsed = parse_prog_fdinfo((proc_self / "fdinfo" / str(fd)).read_text())
        except OSError:
            continue
        if parsed is None:
            continue
        old = out.get(name, ProgStat(0, 0))
        out[name] = ProgStat(
            old.run_time_ns + parsed[1].run_time_ns, old.run_cnt + parsed[1].run_cnt
        )
    return out


# -- the live snapshot source ---------------------------------------------------


class LiveSource:
    """Snapshot source over a live Tracer; called from HTTP threads."""

    def __init__(
        self,
        tracer: Tracer,
        table: DenialTable,
        version: str,
        stats_fd: int = -1,
        policy: LiveCheck | None = None,
        would_deny: DenialTable | None = None,
    ) -> None:
        self.tracer = tracer
        self.table = table
        self.version = version
        self.policy = policy
        self.would_deny = would_deny
        self.stats_fd = stats_fd
        self.map_lock = threading.Lock()
        self.table_lock = threading.Lock()
        self.closed = False
        self.program_fds: dict[int, str] = {}
        self.summary: Summary | None = None  # the Session's, once it runs
        self._last: Snapshot | None = None

    def __call__(self) -> Snapshot:
        from lsmtrace.metrics import Snapshot

        stats_on = self.stats_fd >= 0 or bpf_stats_sysctl()
        with self.map_lock:
            if self.closed:
                return self._last or self._empty()
            t0 = time.perf_counter()
            t = self.tracer
            att = t.attachment
            counts = t.counts()
            quiet = t.quiet_counts()
            latency = t.latency_histogram()
            stats = t.stats()
            lost_by_hook = t.lost_counts()
            delivered = t.delivered
            programs = read_program_stats(self.program_fds) if stats_on else {}
            read_s = time.perf_counter() - t0
        policy: dict[str, Any] = {}
        with self.table_lock:
            denials = self.table.snapshot()
            if self.policy is not None and self.would_deny is not None:
                policy = {
                    "policy": self.policy.policy.name,
                    "would_deny": self.would_deny.snapshot(),
                    "policy_checked": self.policy.stats.checked,
                }
            s = self.summary
            processes, quiet_probes = (s.processes, s.quiet) if s else (0, 0)
        snap = Snapshot(
            counts=counts,
            latency=latency,
            stats=stats,
            id_names=t.id_names,
            rung=att.rung if att else "",
            attached=len(att.attached) if att else 0,
            skipped=len(att.skipped) if att else 0,
            delivered=delivered,
            denials=denials,
            bpf_stats_enabled=stats_on,
            programs=programs,
            version=self.version,
            read_seconds=read_s,
            quiet=quiet,
            process_events=processes,
            quiet_probes=quiet_probes,
            lost_by_hook=lost_by_hook,
            **policy,
        )
        self._last = snap
        return snap

    def _empty(self) -> Snapshot:
        from lsmtrace.metrics import Snapshot

        return Snapshot(
            counts=[],
            latency={},
            stats={},
            id_names=self.tracer.id_names,
            rung="",
            attached=0,
            skipped=0,
            version=self.version,
        )


class LockedEventSource:
    """The Session's view of the tracer: map-touching calls take map_lock."""

    def __init__(self, tracer: Tracer, lock: threading.Lock) -> None:
        self.tracer = tracer
        self.lock = lock
        self.id_names: IdNames = tracer.id_names
        self.syscall_names: dict[int, str] = tracer.syscall_names

    def poll(self, on_batch: Callable[[bytes, list[int]], None], timeout: float) -> int:
        return self.tracer.poll(on_batch, timeout)  # the ring, not the maps: no lock

    def drain(self, on_batch: Callable[[bytes, list[int]], None]) -> int:
        return self.tracer.drain(on_batch)

    def quiesce(self) -> None:
        with self.lock:
            self.tracer.quiesce()

    def detach(self) -> None:
        with self.lock:
            self.tracer.detach()

    def stats(self) -> dict[str, int]:
        with self.lock:
            return self.tracer.stats()

    @property
    def delivered(self) -> int:
        return self.tracer.delivered


# -- the command -------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    return serve_export(args)


def serve_export(
    args: argparse.Namespace, workload_of: Callable[[Event], str] | None = None
) -> int:
    """`lsmtrace export`; `workload_of(event)` names a denial's workload (default: comm)."""
    from prometheus_client import CollectorRegistry, make_wsgi_app

    from lsmtrace.loader import Tracer, check_root
    from lsmtrace.metrics import DenialTable
    from lsmtrace.session import stop_on_signals

    if args.top_k < 0:
        raise UsageError(f"--top-k {args.top_k} is negative", hint="e.g. --top-k 50")
    options.check_duration(args.duration)
    if bool(args.tls_cert) != bool(args.tls_key):
        raise UsageError(
            "--tls-cert and --tls-key go together",
            hint="give both PEM files, or neither for plain HTTP",
        )
    host, port = parse_listen(args.listen)
    policy = options.open_policy(args)  # a bad policy file fails before BPF
    check_root()
    creds = read_credentials(args.basic_auth_file) if args.basic_auth_file else None
    tls = tls_context(args.tls_cert, args.tls_key) if args.tls_cert else None

    registry = CollectorRegistry(auto_describe=False)
    app: WSGIApplication = make_wsgi_app(registry)
    if creds is not None:
        app = with_basic_auth(app, creds)
    httpd = make_http_server(app, host, port, tls)  # fails early on a busy port
    # the stream carries denials and the process events the enricher needs;
    # with --policy every decision of the scope, to check it
    tracer = Tracer(
        options.trace_options(args, denied=policy is None, proc_events=True)
    )
    table = DenialTable(k=args.top_k)
    stop = [False]
    # SIGINT/SIGTERM from here on end the run cleanly, setup included
    with stop_on_signals(stop):
        return _serve(
            args,
            registry,
            httpd,
            tracer,
            table,
            stop,
            tls is not None,
            creds is not None,
            workload_of,
            policy,
        )


def _serve(
    args: argparse.Namespace,
    registry: Any,
    httpd: Any,
    tracer: Tracer,
    table: DenialTable,
    stop: list[bool],
    tls: bool,
    auth: bool,
    workload_of: Callable[[Event], str] | None,
    policy: LiveCheck | None = None,
) -> int:
    from prometheus_client import ProcessCollector

    from lsmtrace import __version__
    from lsmtrace.metrics import (
        Collector,
        DenialAggregator,
        DenialTable,
        WouldDenyAggregator,
        default_workload,
    )
    from lsmtrace.proctree import Enricher
    from lsmtrace.session import Session, Summary

    stats_fd = -1
    server_thread: threading.Thread | None = None
    switch_interval = sys.getswitchinterval()
    sys.setswitchinterval(min(switch_interval, SWITCH_INTERVAL))
    source: LiveSource | None = None
    summary = Summary()
    join = None
    try:
        if args.bpf_stats:
            stats_fd = enable_bpf_stats()
        enricher = Enricher.live()
        att = tracer.open()
        if stop[0]:
            return 0
        opened = options.open_audit(args, tracer.syscall_names)
        join = opened.join
        # the would-deny series: bounded as the denials are (docs/metrics.md)
        wd_table = DenialTable(k=args.top_k) if policy is not None else None
        source = LiveSource(tracer, table, __version__, stats_fd, policy, wd_table)
        # our own names: the kernel truncates program names to 15 bytes
        source.program_fds = find_program_fds(names=tracer.program_names())
        registry.register(Collector(source))
        ProcessCollector(registry=registry)
        aggregator = DenialAggregator(table, workload_of or default_workload)
        would = (
            WouldDenyAggregator(wd_table, workload_of or default_workload)
            if wd_table is not None
            else None
        )
        lock = source.table_lock

        def on_events(evs: list[Event]) -> None:
            # a read-ahead batch can hold 100 k events: take the lock per
            # slice, so a scrape waits for one slice at most, not the batch
            for i in range(0, len(evs), LOCK_SLICE):
                part = evs[i : i + LOCK_SLICE]
                with lock:
                    aggregator.add_events(part)
                    if would is not None:
                        would.add_events(part)

        server_thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.2},
            name="lsmtrace-http",
            daemon=True,
        )
        server_thread.start()
        bound_host, bound_port = httpd.server_address[:2]
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        url = f"{'https' if tls else 'http'}://{shown}:{bound_port}/metrics"
        status = opened.status
        if policy is not None:
            status += "; " + options.policy_status(policy)
        print(
            options.start_line(
                "Tracing", att, f"Serving {url}. Ctrl-C to end.", audit=status
            ),
            file=sys.stderr,
            flush=True,
        )
        if not is_loopback(bound_host) and not (tls and auth):
            print(
                "note: metrics are reachable from other hosts without TLS and "
                "basic auth (--tls-cert/--tls-key, --basic-auth-file)",
                file=sys.stderr,
            )
        # with the audit join, a denial the rung cannot attribute (lsm null)
        # is counted under the LSM its audit record names
        session = Session(
            LockedEventSource(tracer, source.map_lock),
            on_events,
            enricher=enricher,
            audit=join,
            policy=policy,
        )
        source.summary = session.summary
        session.stop = stop
        summary = session.run(args.duration)
    finally:
        if server_thread is not None:
            httpd.shutdown()
        httpd.server_close()
        if source is not None:
            with source.map_lock:
                source.closed = True
                tracer.close()
        else:
            tracer.close()
        if stats_fd >= 0:
            os.close(stats_fd)
        if join is not None:
            join.close()  # --enable-audit: audit back off
        sys.setswitchinterval(switch_interval)
    snap = table.snapshot()
    # before the summary: that one stays the last line
    for line in (
        options.audit_summary_line(summary),
        options.policy_summary_line(summary, policy),
    ):
        if line:
            print(line, file=sys.stderr)
    print(
        f"{summary.by_verdict['deny']} denials into {len(snap.rows)} series "
        f'({snap.folded} folded into workload="other"), {summary.lost} events lost, '
        f"{summary.attempted} attempted, {summary.seen} decisions seen in kernel"
        + ("" if summary.exact else " [accounting mismatch]"),
        file=sys.stderr,
    )
    return 0
