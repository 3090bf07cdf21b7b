"""`lsmtrace record`: the live event stream to a recording (docs/recording.md).

Each event line is the event dict of `trace --json --proc-events
--quiet-probes` (enriched: exe, cmdline, ancestors, container, unit), built by
the same Session; replay, the TUI and policy generation read that form back.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import socket
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lsmtrace.commands import options
from lsmtrace.errors import RecordingError, UsageError

EPILOG = """examples:
  lsmtrace record -o run.jsonl -- make test        # everything `make test` does
  lsmtrace record -o web.jsonl.gz --comm nginx --duration 60
  lsmtrace record -o all.jsonl --denied            # only denials, until Ctrl-C
  lsmtrace record -o x.jsonl --gzip -- ./x --flag  # compressed, whatever the name
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
        "-o", "--output", required=True, metavar="FILE",
        help="recording file (.gz: compressed)",
    )  # fmt: skip
    r.add_argument("--gzip", action="store_true", help="compress whatever the name")
    r.add_argument("--force", action="store_true", help="overwrite an existing file")
    r.add_argument(
        "--duration", type=float, metavar="SECONDS", help="stop after this long"
    )
    options.add_live_args(r)
    r.add_argument(
        "cmd", nargs=argparse.REMAINDER, metavar="-- COMMAND ARGS",
        help="run this command and record it and its descendants",
    )  # fmt: skip
    r.set_defaults(func=run)


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _active_lsms() -> list[str]:
    try:
        text = Path("/sys/kernel/security/lsm").read_text()
    except OSError:
        return []
    return [x for x in text.strip().split(",") if x]


def recording_header(
    rung: str,
    command: list[str] | None,
    filters: Mapping[str, Any],
    clock_offset_ns: int,
) -> dict[str, Any]:
    from lsmtrace import __version__, abi

    return {
        "abi_version": abi.ABI_VERSION,
        "lsmtrace_version": __version__,
        "kernel": os.uname().release,
        "arch": os.uname().machine,
        "active_lsms": _active_lsms(),
        "rung": rung,
        "host": socket.gethostname(),
        "started": _now(),
        "command": command,
        "cwd": os.getcwd(),
        "filters": dict(filters),
        "clock_offset_ns": clock_offset_ns,
    }


def _spawn_waiting(cmd: list[str]) -> tuple[int, int]:
    """Fork a child that waits on a pipe, then execs `cmd`. (pid, write end)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: nothing but wait, then exec
        try:
            os.close(w)
            go = os.read(r, 1)
            os.close(r)
            if go != b"1":
                os._exit(126)
            os.execvp(cmd[0], cmd)
        except OSError as e:
            os.write(2, f"lsmtrace record: {cmd[0]}: {e.strerror}\n".encode())
            os._exit(127)
        except BaseException:
            os._exit(126)
    os.close(r)
    return pid, w


def _exit_code(status: int) -> int:
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def run(args: argparse.Namespace) -> int:
    from lsmtrace import output
    from lsmtrace.events import Event
    from lsmtrace.loader import Tracer, check_root
    from lsmtrace.proctree import Enricher
    from lsmtrace.record import RecordingWriter
    from lsmtrace.session import Session

    cmd = options.command_args(args)
    check_root()
    options.check_duration(args.duration)
    if cmd and args.pid is not None:
        raise UsageError(
            "--pid and a command exclude each other",
            hint="with a command, lsmtrace records it and its descendants",
        )
    if not args.force and os.path.lexists(args.output):  # before compiling anything
        raise RecordingError(f"{args.output} exists", hint="choose another name or pass --force")
    opts = options.trace_options(args, proc_events=True)
    child, go_fd = (-1, -1)
    if cmd:
        child, go_fd = _spawn_waiting(cmd)
        opts.pid, opts.children = child, True
    tracer = Tracer(opts)
    gz = args.gzip or str(args.output).endswith(".gz")
    writer: RecordingWriter | None = None
    status: list[int] = []
    try:
        enricher = Enricher.live()
        att = tracer.open()
        filters = {k: v for k, v in {
            "hooks": opts.hooks, "family": opts.families, "pid": opts.pid,
            "children": opts.children, "uid": opts.uid, "comm": opts.comm,
            "cgroup": opts.cgroup, "denied": opts.denied}.items()
            if v not in (None, False)}  # fmt: skip
        def on_events(evs: list[Event]) -> None:
            w.write_events(evs)

        session = Session(tracer, on_events, enricher=enricher,
                          process_events=True, quiet_probes=True)  # fmt: skip
        writer = RecordingWriter(
            args.output,
            recording_header(att.rung, cmd or None, filters, session.clock.offset_ns),
            gzip=gz, overwrite=args.force,
        )  # fmt: skip
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
        print(options.start_line("Recording", att,
                                 f"to {args.output}" + (f" while {cmd[0]} runs" if cmd else "")
                                 + "; Ctrl-C to end."), file=sys.stderr)  # fmt: skip
        summary = session.run(args.duration)
        rows = output.count_rows(tracer.counts(), tracer.id_names,
                                        tracer.quiet_counts())
        writer.close({
            "lost": summary.lost, "attempted": summary.attempted, "ended": _now(),
            "seen": summary.seen, "filtered": summary.filtered,
            "malformed": summary.malformed, "by_verdict": summary.by_verdict,
            "quiet": summary.quiet, "counts": rows,
            "exit_code": _exit_code(status[0]) if status else None,
        })  # fmt: skip
        writer = None
    finally:
        if go_fd >= 0:  # the tracer never started: the child exits without exec
            os.close(go_fd)
            if not status:
                os.waitpid(child, 0)
        if writer is not None:
            writer.abort()
        tracer.close()
    print(f"{summary.delivered} events recorded ({summary.by_verdict['deny']} denied), "
          f"{summary.lost} lost", file=sys.stderr)  # fmt: skip
    if cmd:
        if not status:  # Ctrl-C/--duration before the command ended: wait for it
            _pid, st = os.waitpid(child, 0)
            status.append(st)
        return _exit_code(status[0])
    return 0
