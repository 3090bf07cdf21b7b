"""`lsmtrace record`: the live event stream to a recording (docs/recording.md).

Each event line is the event dict of `trace --json --proc-events
--quiet-probes` (enriched: exe, cmdline, ancestors, container, unit), built by
the same Session; replay, the TUI and policy generation read that form back.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from lsmtrace.commands import options
from lsmtrace.errors import RecordingError, UsageError

RECORD_PAGES = 8192
EPILOG = """examples:
  lsmtrace record -o run.jsonl -- make test        # everything `make test` does
  lsmtrace record -o web.jsonl.gz --comm nginx --duration 60
  lsmtrace record -o all.jsonl --denied            # only denials, until Ctrl-C
  lsmtrace record -o x.jsonl --gzip -- ./x --flag  # compressed, whatever the name
  lsmtrace record -o b.jsonl --pause-on-loss -- make  # slow make down, lose nothing
The file is created 0600. With a command, recording ends when it exits and
record exits with its exit code. Format: docs/recording.md.
"""


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    r = sub.add_parser(
        "record",
        help="record live events to a file (JSON Lines)",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    r.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="FILE",
        help="recording file (.gz: compressed)",
    )
    r.add_argument("--gzip", action="store_true", help="compress whatever the name")
    r.add_argument("--force", action="store_true", help="overwrite an existing file")
    options.add_duration_arg(r)
    # A recording must be complete: a ring of 32 MiB (~75 000 events) takes
    # bursts while the backlog in memory is decoded (docs/benchmarks.md).
    options.add_live_args(r, pages=RECORD_PAGES)
    r.add_argument(
        "--pause-on-loss",
        action="store_true",
        help="with a command: stop (SIGSTOP) its process group while the ring "
        "buffer or the backlog of undecoded events is over half full, resume "
        "it (SIGCONT) below; the command runs in a process group of its own",
    )
    r.add_argument(
        "--backlog-mb",
        type=int,
        default=1024,
        metavar="MIB",
        help="memory for events read out of the ring and not yet written "
        "(default 1024 MiB, ~2.4 million events)",
    )
    r.add_argument(
        "cmd",
        nargs=argparse.REMAINDER,
        metavar="-- COMMAND ARGS",
        help="run this command and record it and its descendants",
    )
    r.set_defaults(func=run)


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _active_lsms() -> list[str]:
    try:
        text = Path("/sys/kernel/security/lsm").read_text()
    except OSError:
        return []
    return [x for x in text.strip().split(",") if x]


def _selinux_context(active: list[str], proc: str = "/proc/self") -> str | None:
    """lsmtrace's SELinux context, which the recorded command starts in (a
    generated module lets that context enter its domain); None without SELinux."""
    if "selinux" not in active:
        return None
    try:
        ctx = Path(proc, "attr", "current").read_bytes().rstrip(b"\0\n")
    except OSError:
        return None
    return ctx.decode("utf-8", "surrogateescape") or None


def recording_header(
    rung: str,
    command: list[str] | None,
    filters: Mapping[str, Any],
    clock_offset_ns: int,
) -> dict[str, Any]:
    from lsmtrace import __version__, abi

    active = _active_lsms()
    selinux = _selinux_context(active)
    return {
        "abi_version": abi.ABI_VERSION,
        "lsmtrace_version": __version__,
        "kernel": os.uname().release,
        "arch": os.uname().machine,
        "active_lsms": active,
        **({"selinux_context": selinux} if selinux else {}),
        "rung": rung,
        "host": socket.gethostname(),
        "started": _now(),
        "command": command,
        "cwd": os.getcwd(),
        "filters": dict(filters),
        "clock_offset_ns": clock_offset_ns,
    }


def _spawn_waiting(cmd: list[str], own_group: bool = False) -> tuple[int, int]:
    """Fork a child that waits on a pipe, then execs `cmd`. (pid, write end).
    `own_group`: the child leads a process group of its own (pgid = pid)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: nothing but wait, then exec
        try:
            if own_group:
                os.setpgid(0, 0)
            os.close(w)
            go = os.read(r, 1)
            os.close(r)
            if go != b"1":
                os._exit(126)
            # `./script`: the kernel records the name an exec is given, and a
            # relative one places nothing in a policy; argv[0] stays as typed
            os.execvp(os.path.abspath(cmd[0]) if "/" in cmd[0] else cmd[0], cmd)
        except OSError as e:
            os.write(2, f"lsmtrace record: {cmd[0]}: {e.strerror}\n".encode())
            os._exit(127)
        except BaseException:
            os._exit(126)
    os.close(r)
    if own_group:
        with contextlib.suppress(OSError):  # both sides: no race with exec
            os.setpgid(pid, pid)
    return pid, w


class BackPressure:
    """SIGSTOP a process group while the consumer is behind, SIGCONT after.

    `pressure()` says how full the tracer's buffers are (0.0-1.0): stop at
    `high`, continue at `low` or below. The group is always continued at
    close(), whatever happened.
    """

    def __init__(
        self,
        pgid: int,
        pressure: Callable[[], float],
        high: float = 0.5,
        low: float = 0.1,
    ) -> None:
        self.pgid, self.pressure, self.high, self.low = pgid, pressure, high, low
        self.stopped = False
        self.pauses = 0
        self.paused_s = 0.0
        self._since = 0.0

    def _signal(self, sig: int) -> bool:
        try:
            os.killpg(self.pgid, sig)
        except ProcessLookupError:
            return False
        return True

    def check(self) -> None:
        p = self.pressure()
        if not self.stopped and p >= self.high:
            if self._signal(signal.SIGSTOP):
                self.stopped, self._since = True, time.monotonic()
                self.pauses += 1
        elif self.stopped and p <= self.low:
            self.close()

    def close(self) -> None:
        if self.stopped:
            self._signal(signal.SIGCONT)
            self.stopped = False
            self.paused_s += time.monotonic() - self._since


def _exit_code(status: int) -> int:
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def run(args: argparse.Namespace) -> int:
    from lsmtrace import output
    from lsmtrace.events import Event
    from lsmtrace.loader import Tracer, check_root
    from lsmtrace.proctree import Enricher
    from lsmtrace.record import RecordingWriter, lost_where
    from lsmtrace.session import Session

    cmd = options.command_args(args)
    check_root()
    options.check_duration(args.duration)
    if cmd and args.pid is not None:
        raise UsageError(
            "--pid and a command exclude each other",
            hint="with a command, lsmtrace records it and its descendants",
        )
    if args.backlog_mb <= 0:
        raise UsageError("--backlog-mb must be positive", hint="e.g. --backlog-mb 256")
    if args.pause_on_loss and not cmd:
        raise UsageError(
            "--pause-on-loss needs a command to pause",
            hint="lsmtrace record -o FILE --pause-on-loss -- COMMAND",
        )
    if not args.force and os.path.lexists(args.output):  # before compiling anything
        raise RecordingError(
            f"{args.output} exists", hint="choose another name or pass --force"
        )
    opts = options.trace_options(args, proc_events=True)
    child, go_fd = (-1, -1)
    if cmd:
        child, go_fd = _spawn_waiting(cmd, own_group=args.pause_on_loss)
        opts.pid, opts.children = child, True
    tracer = Tracer(opts)
    gz = args.gzip or str(args.output).endswith(".gz")
    writer: RecordingWriter | None = None
    status: list[int] = []
    join = None
    pressure: BackPressure | None = None
    try:
        enricher = Enricher.live()
        att = tracer.open()
        opened = options.open_audit(args, tracer.syscall_names)
        join = opened.join
        filters = {
            k: v
            for k, v in {
                "hooks": opts.hooks,
                "family": opts.families,
                "pid": opts.pid,
                "children": opts.children,
                "uid": opts.uid,
                "comm": opts.comm,
                "cgroup": opts.cgroup,
                "denied": opts.denied,
            }.items()
            if v not in (None, False)
        }

        def on_events(evs: list[Event]) -> None:
            w.write_events(evs)

        session = Session(
            tracer,
            on_events,
            enricher=enricher,
            process_events=True,
            quiet_probes=True,
            audit=join,
            max_backlog_bytes=args.backlog_mb << 20,
        )
        writer = RecordingWriter(
            args.output,
            recording_header(att.rung, cmd or None, filters, session.clock.offset_ns),
            gzip=gz,
            overwrite=args.force,
        )
        w = writer
        if cmd:

            def reap() -> None:
                _pid, st = os.waitpid(child, 0)
                status.append(st)
                session.stop[0] = True

            threading.Thread(target=reap, daemon=True).start()
            os.write(go_fd, b"1")
            os.close(go_fd)
            go_fd = -1
        watch = None
        if args.pause_on_loss:
            sess = session

            def full() -> float:
                return max(tracer.fill(), sess.backlog_bytes / sess.max_backlog_bytes)

            pressure = BackPressure(child, full)
            watch = pressure.check
        print(
            options.start_line(
                "Recording",
                att,
                f"to {args.output}"
                + (f" while {cmd[0]} runs" if cmd else "")
                + "; Ctrl-C to end.",
                audit=opened.status,
            ),
            file=sys.stderr,
        )
        summary = session.run(args.duration, watch=watch)
        if pressure is not None:
            pressure.close()
            if not status and session.stop[0]:
                # Ctrl-C/SIGTERM reached us alone: the command has its group
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child, signal.SIGINT)
        rows = output.count_rows(
            tracer.counts(), tracer.id_names, tracer.quiet_counts()
        )
        lost_by = tracer.lost_counts()
        writer.close(
            {
                "lost": summary.lost,
                "lost_by_hook": lost_by,
                "attempted": summary.attempted,
                "ended": _now(),
                "seen": summary.seen,
                "filtered": summary.filtered,
                "malformed": summary.malformed,
                "by_verdict": summary.by_verdict,
                "quiet": summary.quiet,
                "counts": rows,
                "audit": summary.audit,
                "exit_code": _exit_code(status[0]) if status else None,
                **(
                    {"paused": pressure.pauses, "paused_s": round(pressure.paused_s, 3)}
                    if pressure is not None
                    else {}
                ),
            }
        )
        writer = None
    finally:
        if pressure is not None:
            pressure.close()  # never leave the command stopped
        if go_fd >= 0:  # the tracer never started: the child exits without exec
            os.close(go_fd)
            if not status:
                os.waitpid(child, 0)
        if writer is not None:
            writer.abort()
        if join is not None:
            join.close()  # --enable-audit: audit back off
        tracer.close()
    audit_line = options.audit_summary_line(summary)
    if audit_line:
        print(audit_line, file=sys.stderr)
    paused = ""
    if pressure is not None:
        paused = (
            f"; command paused {pressure.pauses} times, "
            f"{pressure.paused_s:.2f} s in all"
        )
    print(
        f"{summary.delivered} events recorded ({summary.by_verdict['deny']} denied), "
        f"{summary.lost} lost"
        + (f" ({lost_where(lost_by, 5)})" if lost_by else "")
        + paused,
        file=sys.stderr,
    )
    if cmd:
        if not status:  # Ctrl-C/--duration before the command ended: wait for it
            _pid, st = os.waitpid(child, 0)
            status.append(st)
        return _exit_code(status[0])
    return 0
