"""The kernel audit subsystem over netlink: read its records, get and set its state.

Everything here talks to the running kernel through `NETLINK_AUDIT` sockets and
nothing else; what the records *mean* is lsmtrace/audit.py (pure).

- :class:`AuditReader`: a raw NETLINK_AUDIT socket bound to the read-log
  multicast group (``AUDIT_NLGRP_READLOG``, needs CAP_AUDIT_READ). It is a
  passive listener: it takes nobody's place (auditd and journald keep
  receiving), registers nothing, changes nothing. Non-blocking, ``fileno()``
  for poll(); :meth:`AuditReader.read` takes at most ``max_records`` messages
  per call. Under a flood the kernel drops what does not fit in the socket's
  receive buffer and says so once per overrun (ENOBUFS): counted in
  ``overruns``.
- :func:`get_status` / :func:`set_enabled` / :func:`list_rules`: AUDIT_GET,
  AUDIT_SET (only the ``enabled`` flag: never the daemon pid, never rules),
  AUDIT_LIST_RULES (read-only, to tell whether a ``never,task`` rule exists).
- :class:`EnableGuard`: ``--enable-audit``. Turns audit on for the session only
  and puts the previous state back at exit: on a normal end, an exception or
  SIGTERM (the session turns it into a normal end) through ``restore()``; on
  SIGKILL or a crash of the interpreter through a watchdog process (this
  module's ``main``, started with ``python -m lsmtrace.auditnl watchdog``) that
  holds the read end of a pipe whose write end only lsmtrace holds: when the
  pipe closes without the "restored" byte, the watchdog restores. The watchdog
  runs in its own session (a Ctrl-C or a kill of lsmtrace's process group does
  not reach it) and ignores SIGINT/SIGTERM/SIGHUP.

  What a SIGKILL leaves: nothing, while the watchdog lives (it restores within
  milliseconds of the pipe closing). If the watchdog is killed too (SIGKILL of
  both, a cgroup kill, the OOM killer), audit stays enabled until someone runs
  ``auditctl -e 0``. In every case the kernel keeps the lasting cost of audit
  having been enabled once (see :data:`COST_NOTE`).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

NETLINK_AUDIT = 9
AUDIT_NLGRP_READLOG = 1
SOL_NETLINK = 270

NLMSG_HDR = struct.Struct("=IHHII")  # len, type, flags, seq, pid
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_ACK = 0x1, 0x4

AUDIT_GET, AUDIT_SET, AUDIT_LIST_RULES = 1000, 1001, 1013
AUDIT_STATUS_ENABLED = 0x1

# struct audit_status: mask enabled failure pid rate_limit backlog_limit lost
# backlog feature_bitmap backlog_wait_time backlog_wait_time_actual (the last
# ones are absent on old kernels: we read what came and zero-fill the rest)
_STATUS_FIELDS = (
    "mask",
    "enabled",
    "failure",
    "pid",
    "rate_limit",
    "backlog_limit",
    "lost",
    "backlog",
    "feature_bitmap",
    "backlog_wait_time",
    "backlog_wait_time_actual",
)

# struct audit_rule_data head: flags (the filter list), action, field_count
AUDIT_FILTER_TASK = 0x01
AUDIT_NEVER = 0

RCVBUF = 4 << 20  # bytes; a flood beyond it is dropped by the kernel (ENOBUFS)
# records/s parsed and joined at most: ~2500 audited denials/s (4 records each),
# a few percent of a core on the development host (benchmarks/bench_audit.py)
DEFAULT_MAX_RATE = 10_000.0

COST_NOTE = (
    "once audit has been enabled, every process forked afterwards carries a "
    "syscall audit context until reboot, even after `auditctl -e 0`: each of "
    "its syscalls costs more (getppid ~180 -> ~310 ns measured); an "
    "`auditctl -a never,task` rule (the Fedora/RHEL default) removes that cost "
    "for new processes, and with it the SYSCALL records"
)


class AuditUnavailable(OSError):
    """The audit netlink socket cannot be opened or used here."""


@dataclass(frozen=True)
class AuditStatus:
    enabled: int  # 0 off, 1 on, 2 on and locked (immutable until reboot)
    failure: int
    pid: int  # the registered audit daemon (auditd), 0 when none
    rate_limit: int
    backlog_limit: int
    lost: int
    backlog: int
    backlog_wait_time: int

    @classmethod
    def from_bytes(cls, payload: bytes) -> AuditStatus:
        n = min(len(payload) // 4, len(_STATUS_FIELDS))
        values = dict(
            zip(_STATUS_FIELDS, struct.unpack_from(f"={n}I", payload), strict=False)
        )
        return cls(
            enabled=values.get("enabled", 0),
            failure=values.get("failure", 0),
            pid=values.get("pid", 0),
            rate_limit=values.get("rate_limit", 0),
            backlog_limit=values.get("backlog_limit", 0),
            lost=values.get("lost", 0),
            backlog=values.get("backlog", 0),
            backlog_wait_time=values.get("backlog_wait_time", 0),
        )


def _explain(e: OSError) -> str:
    name = errno.errorcode.get(e.errno or 0, str(e.errno))
    return f"{name}: {e.strerror or e}"


def _unicast_socket() -> socket.socket:
    try:
        s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_AUDIT)
    except OSError as e:  # EPROTONOSUPPORT: kernel built without CONFIG_AUDIT
        raise AuditUnavailable(
            e.errno, f"no audit netlink socket ({_explain(e)})"
        ) from e
    s.settimeout(2.0)
    s.bind((0, 0))
    return s


def _request(
    s: socket.socket, msg_type: int, payload: bytes = b"", seq: int = 1
) -> None:
    hdr = NLMSG_HDR.pack(
        NLMSG_HDR.size + len(payload), msg_type, NLM_F_REQUEST | NLM_F_ACK, seq, 0
    )
    s.sendto(hdr + payload, (0, 0))


def _messages(data: bytes) -> list[tuple[int, bytes]]:
    """Split a netlink datagram into (type, payload) messages."""
    out = []
    off = 0
    while off + NLMSG_HDR.size <= len(data):
        length, mtype, _flags, _seq, _pid = NLMSG_HDR.unpack_from(data, off)
        if length < NLMSG_HDR.size:
            break
        out.append((mtype, data[off + NLMSG_HDR.size : off + length]))
        off += (length + 3) & ~3
    return out


def _ack_error(payload: bytes) -> int:
    """The (positive) errno of an NLMSG_ERROR payload; 0 for an ACK."""
    (err,) = struct.unpack_from("=i", payload)
    return -int(err)


def _transact(
    msg_type: int, what: str, take: Callable[[int, bytes], bool], payload: bytes = b""
) -> None:
    """Send one request; hand each reply message to ``take`` until it returns
    True. An NLMSG_ERROR carrying an errno raises AuditUnavailable."""
    with _unicast_socket() as s:
        try:
            _request(s, msg_type, payload)
            while True:
                for mtype, body in _messages(s.recv(65536)):
                    if mtype == NLMSG_ERROR and _ack_error(body):
                        e = _ack_error(body)
                        raise AuditUnavailable(e, f"{what}: {os.strerror(e)}")
                    if take(mtype, body):
                        return
        except AuditUnavailable:
            raise
        except OSError as e:
            raise AuditUnavailable(e.errno, f"{what}: {_explain(e)}") from e


def get_status() -> AuditStatus:
    """AUDIT_GET. Raises AuditUnavailable (e.g. EPERM without CAP_AUDIT_CONTROL)."""
    got: list[AuditStatus] = []

    def take(mtype: int, body: bytes) -> bool:
        if mtype == AUDIT_GET:
            got.append(AuditStatus.from_bytes(body))
        return bool(got)

    _transact(AUDIT_GET, "AUDIT_GET", take)
    return got[0]


def set_enabled(enabled: int) -> None:
    """AUDIT_SET of the enabled flag only (needs CAP_AUDIT_CONTROL)."""
    payload = struct.pack("=2I", AUDIT_STATUS_ENABLED, enabled) + bytes(
        4 * (len(_STATUS_FIELDS) - 2)
    )
    _transact(
        AUDIT_SET,
        f"AUDIT_SET enabled={enabled}",
        lambda t, _b: t == NLMSG_ERROR,
        payload,
    )


@dataclass(frozen=True)
class Rule:
    filter_list: int  # AUDIT_FILTER_* (the `flags` field of audit_rule_data)
    action: int  # AUDIT_NEVER 0, AUDIT_POSSIBLE 1, AUDIT_ALWAYS 2
    field_count: int

    @property
    def never_task(self) -> bool:
        """`-a never,task` with no field: no syscall audit context for anyone."""
        return (
            self.filter_list == AUDIT_FILTER_TASK
            and self.action == AUDIT_NEVER
            and self.field_count == 0
        )


def list_rules() -> list[Rule]:
    """AUDIT_LIST_RULES: the loaded rules, heads only. Read-only."""
    rules: list[Rule] = []

    def take(mtype: int, body: bytes) -> bool:
        if mtype == AUDIT_LIST_RULES and len(body) >= 12:
            rules.append(Rule(*struct.unpack_from("=3I", body)))
        return mtype == NLMSG_DONE

    _transact(AUDIT_LIST_RULES, "AUDIT_LIST_RULES", take)
    return rules


class RateBudget:
    """A token bucket: ``rate`` items per second, ``burst`` (default: 0.1 s
    worth) at most at once. ``take(n)`` says how many of n may go now."""

    def __init__(
        self,
        rate: float,
        clock: Callable[[], float] = time.monotonic,
        burst: float | None = None,
    ) -> None:
        self.rate = rate
        self.burst = rate / 10 if burst is None else burst
        self._clock = clock
        self._tokens = self.burst
        self._last = clock()

    def take(self, n: int) -> int:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        keep = max(0, min(n, int(self._tokens)))
        self._tokens -= keep
        return keep


class AuditReader:
    """Passive reader of every audit record (the read-log multicast group).

    ``read()`` returns ``(type, payload)`` pairs, payload being the record text
    as the kernel wrote it ("audit(1700000000.123:456): ..."), without the
    netlink header. It never blocks.

    ``max_rate`` (records per second, a token bucket with 0.1 s of burst) bounds
    the CPU that parsing and joining can take under a flood of denials: what
    comes beyond it is read and dropped unparsed, counted in ``shed``. ``None``:
    no bound. Records that never reach lsmtrace (the socket buffer was full)
    are counted per overrun in ``overruns``.
    """

    def __init__(
        self,
        rcvbuf: int = RCVBUF,
        max_rate: float | None = DEFAULT_MAX_RATE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        try:
            s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_AUDIT)
        except OSError as e:
            raise AuditUnavailable(
                e.errno, f"no audit netlink socket ({_explain(e)})"
            ) from e
        try:
            for opt in (getattr(socket, "SO_RCVBUFFORCE", 33), socket.SO_RCVBUF):
                try:  # FORCE goes past net.core.rmem_max (root only)
                    s.setsockopt(socket.SOL_SOCKET, opt, rcvbuf)
                    break
                except OSError:
                    continue
            s.bind((0, 1 << (AUDIT_NLGRP_READLOG - 1)))
        except OSError as e:
            s.close()
            hint = " (needs CAP_AUDIT_READ)" if e.errno == errno.EPERM else ""
            raise AuditUnavailable(
                e.errno, f"cannot join the audit read-log group: {_explain(e)}{hint}"
            ) from e
        s.setblocking(False)
        self._sock = s
        self._buf = bytearray(65536)
        self.received = 0
        self.overruns = 0  # ENOBUFS: the kernel dropped records for this socket
        self.shed = 0  # read and dropped unparsed: beyond max_rate
        self.budget = RateBudget(max_rate, clock) if max_rate is not None else None

    def fileno(self) -> int:
        return self._sock.fileno()

    def read(self, max_records: int = 4096) -> list[tuple[int, bytes]]:
        out: list[tuple[int, bytes]] = []
        view = memoryview(self._buf)
        while len(out) < max_records:
            try:
                n = self._sock.recv_into(self._buf)
            except BlockingIOError:
                break
            except OSError as e:
                if e.errno == errno.ENOBUFS:
                    self.overruns += 1
                    continue
                raise
            off = 0
            while off + NLMSG_HDR.size <= n:
                length, mtype, _f, _s, _p = NLMSG_HDR.unpack_from(self._buf, off)
                if length < NLMSG_HDR.size or off + length > n:
                    break
                out.append((mtype, bytes(view[off + NLMSG_HDR.size : off + length])))
                off += (length + 3) & ~3
        self.received += len(out)
        if self.budget is not None and out:
            keep = self.budget.take(len(out))
            if keep < len(out):
                self.shed += len(out) - keep
                del out[keep:]
        return out

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> AuditReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- --enable-audit ----------------------------------------------------------------

RESTORED = b"R"  # written by lsmtrace to the watchdog once it restored itself


class EnableGuard:
    """Audit on for the session only; the previous state back at exit, however
    lsmtrace exits (see the module docstring for what a SIGKILL leaves).

    ``enable()`` returns True when it turned audit on (it was off), False when
    audit was already on (nothing to restore then). ``restore()`` is idempotent.
    """

    def __init__(
        self,
        watchdog: bool = True,
        python: str = sys.executable,
        env: dict[str, str] | None = None,
    ) -> None:
        self.watchdog = watchdog
        self._python = python
        self._env = env
        self.previous: int | None = None
        self.changed = False
        self._pipe_w: int | None = None
        self.watchdog_proc: subprocess.Popen[bytes] | None = None

    def enable(self) -> bool:
        st = get_status()
        self.previous = st.enabled
        if st.enabled != 0:
            return False
        if self.watchdog:
            self._start_watchdog(previous=st.enabled, ours=1)
        try:
            set_enabled(1)
        except OSError:
            self._stop_watchdog()
            raise
        self.changed = True
        return True

    def _start_watchdog(self, previous: int, ours: int) -> None:
        r, w = os.pipe()
        os.set_inheritable(r, True)
        env = dict(os.environ if self._env is None else self._env)
        pkg_parent = str(Path(__file__).resolve().parents[1])
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (pkg_parent, env.get("PYTHONPATH", "")) if p
        )
        try:
            self.watchdog_proc = subprocess.Popen(
                [
                    self._python,
                    "-m",
                    "lsmtrace.auditnl",
                    "watchdog",
                    str(r),
                    str(previous),
                    str(ours),
                ],
                pass_fds=(r,),
                start_new_session=True,
                env=env,
                stdin=subprocess.DEVNULL,
            )
        finally:
            os.close(r)
        # No handshake needed: the read end is in the watchdog's table from
        # the fork on, so the pipe's closing is seen whenever it gets to read.
        self._pipe_w = w

    def _stop_watchdog(self) -> None:
        if self._pipe_w is not None:
            with contextlib.suppress(OSError):
                os.write(self._pipe_w, RESTORED)
            os.close(self._pipe_w)
            self._pipe_w = None
        if self.watchdog_proc is not None:
            try:
                self.watchdog_proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.watchdog_proc.kill()
                self.watchdog_proc.wait()
            self.watchdog_proc = None

    def restore(self) -> None:
        if self.changed and self.previous is not None:
            try:
                if get_status().enabled == 1:
                    set_enabled(self.previous)
            except OSError as e:
                log.warning("could not restore audit enabled=%s: %s", self.previous, e)
            self.changed = False
        self._stop_watchdog()

    def __enter__(self) -> EnableGuard:
        return self

    def __exit__(self, *exc: object) -> None:
        self.restore()


def watchdog(fd: int, previous: int, ours: int) -> int:
    """Wait for EOF on ``fd``; unless lsmtrace wrote RESTORED first, put the
    audit state back to ``previous`` if it is still ``ours``."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    got = b""
    while True:
        try:
            chunk = os.read(fd, 64)
        except InterruptedError:
            continue
        except OSError:
            break
        if not chunk:
            break
        got += chunk
    if RESTORED in got:
        return 0
    try:
        if get_status().enabled != ours:
            return 0
        set_enabled(previous)
    except OSError as e:
        _say(f"lsmtrace watchdog: cannot restore audit: {e}")
        return 1
    _say(f"lsmtrace: audit put back to enabled={previous} after lsmtrace died")
    return 0


def _say(text: str) -> None:
    with contextlib.suppress(OSError):  # lsmtrace's stderr may be closed by now
        print(text, file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) == 4 and args[0] == "watchdog":
        return watchdog(int(args[1]), int(args[2]), int(args[3]))
    print(
        "usage: python -m lsmtrace.auditnl watchdog FD PREVIOUS OURS", file=sys.stderr
    )
    return 2


if __name__ == "__main__":
    sys.exit(main())
