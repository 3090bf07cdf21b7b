"""Command line: `lsmtrace trace|hooks|doctor ...`. Heavy imports stay inside commands."""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from lsmtrace import __version__
from lsmtrace.errors import LsmtraceError, UsageError

log = logging.getLogger("lsmtrace")

PROC_KINDS = ("exec", "fork", "exit")

TRACE_EPILOG = """examples:
  lsmtrace trace                         # default hooks, every decision, text
  lsmtrace trace --denied                # only denials
  lsmtrace trace --json --duration 10    # JSON Lines for 10 seconds
  lsmtrace trace --pid 1234 --children   # a process and its descendants
  lsmtrace trace --comm nginx --family network
  lsmtrace trace --hooks 'file_*' --uid 1000
  lsmtrace trace --cgroup system.slice/ssh.service
  lsmtrace trace --backend tracepoint    # force a rung (auto: best that loads)
"""


def add_filter_args(
    p: argparse.ArgumentParser,
    title: str = "filters (applied in the kernel)",
    denied: bool = True,
) -> None:
    """The kernel-side filters, shared by trace, record, export and tui."""
    g = p.add_argument_group(title)
    g.add_argument("--pid", type=int, help="only this process (tgid)")
    g.add_argument(
        "--children", action="store_true", help="with --pid: and its descendants"
    )
    g.add_argument("--uid", type=int, help="only processes of this real uid")
    g.add_argument(
        "--comm", help="only processes with this command name (15 bytes max)"
    )
    g.add_argument("--cgroup", help="only this cgroup (v2 path) and its subtree")
    g.add_argument(
        "--hooks",
        action="append",
        metavar="GLOB",
        help="hooks to trace (glob, repeatable; default: the default set)",
    )
    g.add_argument(
        "--family",
        action="append",
        metavar="NAME",
        help="hook families to trace (file, exec, task, network, ...)",
    )
    if denied:
        g.add_argument("--denied", action="store_true", help="only denials")


def add_backend_args(p: argparse.ArgumentParser) -> None:
    """--backend, --buffer-pages, --perf-buffer, shared by every live command."""
    p.add_argument(
        "--backend",
        default="auto",
        help="auto|fexit|kprobe|tracepoint (default: auto, the best that loads)",
    )
    p.add_argument(
        "--buffer-pages",
        type=int,
        default=512,
        metavar="N",
        help="ring buffer size in 4 KiB pages, a power of two (default 512)",
    )
    p.add_argument(
        "--perf-buffer",
        action="store_true",
        help="use the perf buffer even where the ring buffer works",
    )


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="lsmtrace",
        description="Live tracer of Linux Security Module decisions.",
    )
    p.add_argument("--version", action="version", version=f"lsmtrace {__version__}")
    p.add_argument("--debug", action="store_true", help="tracebacks and debug logs")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    t = sub.add_parser(
        "trace",
        help="show LSM decisions live",
        epilog=TRACE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_backend_args(t)
    add_filter_args(t)
    t.add_argument(
        "--json", action="store_true", help="JSON Lines (see docs/events.md)"
    )
    w = t.add_argument_group("who (docs/proctree.md)")
    w.add_argument("--container", metavar="ID-PREFIX",
                   help="only this container (Docker, Podman, containerd/CRI, LXC)")
    w.add_argument("--unit", metavar="NAME", help="only this systemd unit, scope or slice")
    w.add_argument("--tree", action="store_true",
                   help="print each denial with its process ancestry and container/unit")
    w.add_argument("--proc-events", action="store_true",
                   help="also print exec/fork/exit events")
    w.add_argument("--no-enrich", action="store_true",
                   help="JSON without exe, cmdline, user, ancestors, container, unit")
    t.add_argument(
        "--count",
        action="store_true",
        help="count in the kernel only (no event stream); print the "
        "counts per hook, verdict, errno and LSM at exit",
    )
    t.add_argument(
        "--duration", type=float, metavar="SECONDS", help="stop after this long"
    )
    t.add_argument("--width", type=int, help="text width (default: terminal, or 80)")
    t.add_argument(
        "--discard",
        action="store_true",
        help="consume events without decoding or printing them "
        "(measures the transport; see benchmarks/bench.py)",
    )
    t.add_argument("--no-header", action="store_true", help="no column header")

    h = sub.add_parser(
        "hooks",
        help="the hook catalogue and what each rung attaches",
        epilog="examples:\n  lsmtrace hooks\n  lsmtrace hooks --all\n"
        "  lsmtrace hooks --json\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    h.add_argument(
        "--all", action="store_true", help="every hook, not only the default set"
    )
    h.add_argument("--json", action="store_true")
    h.add_argument("--no-probe", action="store_true", help="do not probe the rungs")

    d = sub.add_parser(
        "doctor",
        help="what this machine supports, with hints",
        epilog="examples:\n  lsmtrace doctor\n  lsmtrace doctor --json\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    d.add_argument("--json", action="store_true")

    # the consumers of the event stream, each in its own module
    from lsmtrace import export_cmd, replay_cmd
    from lsmtrace.tui import cli as tui_cli  # textual is imported only when run

    export_cmd.add_parser(sub)
    replay_cmd.add_parsers(sub)
    tui_cli.add_parser(sub)
    return p


def _width(args: argparse.Namespace, out: TextIO) -> int:
    if args.width is not None:
        return max(0, int(args.width))
    if out.isatty():
        return shutil.get_terminal_size((80, 24)).columns
    return 80


def cmd_trace(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    from lsmtrace.events import WallClock
    from lsmtrace.loader import TraceOptions, Tracer
    from lsmtrace.session import stop_on_signals

    if args.container or args.unit:
        from lsmtrace.cgroups import resolve_cgroup_filter

        if args.cgroup:
            raise UsageError("--cgroup cannot be combined with --container/--unit",
                             hint="give one of them")  # fmt: skip
        args.cgroup = str(resolve_cgroup_filter(container=args.container, unit=args.unit))
    # JSON and --tree are enriched (exe, ancestors, container...): from /proc at
    # each process's first event; --tree/--proc-events also feed the tree from
    # the kernel's exec/fork/exit events, which catches short-lived processes
    enrich = not (args.no_enrich or args.count or args.discard) and (
        args.json or args.tree or args.proc_events
    )
    opts = TraceOptions(
        backend=args.backend, hooks=args.hooks, families=args.family, pid=args.pid,
        children=args.children, uid=args.uid, comm=args.comm, cgroup=args.cgroup,
        denied=args.denied, ringbuf_pages=args.buffer_pages, perf_buffer=args.perf_buffer,
        stream=not args.count, proc_events=enrich and (args.tree or args.proc_events),
    )  # fmt: skip
    args.enricher = None
    if enrich:
        from lsmtrace.proctree import Enricher

        args.enricher = Enricher.live()
    if args.duration is not None and args.duration <= 0:
        raise UsageError("--duration must be positive", hint="e.g. --duration 10")
    tracer = Tracer(opts)
    clock = WallClock()
    width = _width(args, out)
    stop = [False]
    # SIGINT/SIGTERM from here on end the run cleanly, setup included
    with stop_on_signals(stop):
        return _run_trace(args, out, tracer, clock, width, stop)


def _run_trace(
    args: argparse.Namespace,
    out: TextIO,
    tracer: Any,
    clock: Any,
    width: int,
    stop: list[bool],
) -> int:
    from lsmtrace import output
    from lsmtrace.events import Event
    from lsmtrace.session import Session

    try:
        att = tracer.open()
        if stop[0]:
            return 0
        print(
            f"Tracing {len(att.attached)} hooks via {att.rung} "
            f"({att.buffer}, headers from {att.headers}); "
            f"{len(att.skipped)} skipped. Ctrl-C to end.",
            file=sys.stderr,
        )
        for name, why in att.skipped.items():
            log.debug("skipped %s: %s", name, why)
        if not args.json and not args.no_header and not args.count and not args.discard:
            out.write(output.header(width) + "\n")

        enricher = getattr(args, "enricher", None)

        def on_events(evs: list[Event]) -> None:
            if not evs:
                return
            if enricher is None:
                if args.json:
                    out.write("".join(output.json_line(e, clock) + "\n" for e in evs))
                else:
                    out.write(
                        "".join(output.text_line(e, clock, width) + "\n" for e in evs)
                    )
                out.flush()
                return
            from lsmtrace.proctree import format_tree

            lines = []
            for e in evs:
                # every event (process events too, in order) feeds the tree
                d = enricher.enrich(e.to_dict(clock))
                if e.kind in PROC_KINDS and not args.proc_events:
                    continue
                if args.json:
                    lines.append(output.json_text(d))
                elif args.tree and e.verdict == "deny":
                    lines.extend(format_tree(d, width if width > 0 else 10**6))
                else:
                    lines.append(output.text_line(e, clock, width))
            if lines:
                out.write("\n".join(lines) + "\n")
                out.flush()

        session = Session(tracer, on_events, decode_events=not args.discard)
        session.stop = stop
        try:
            summary = session.run(args.duration)
            if args.count:
                rows = output.count_rows(tracer.counts(), tracer.id_names)
                out.write(output.count_table(rows, args.json))
                out.flush()
        except BrokenPipeError:
            summary = session.summary
            _quiet_stdout()
    finally:
        tracer.close()
    print(
        f"{summary.delivered} events ({summary.by_verdict['deny']} denied, "
        f"{summary.by_verdict['allow']} allowed, {summary.by_verdict['error']} failed"
        + (f", {summary.processes} process events" if summary.processes else "")
        + "), "
        f"{summary.lost} lost, {summary.attempted} attempted, "
        f"{summary.seen} decisions seen in kernel, {summary.filtered} filtered"
        + (f", {summary.malformed} malformed" if summary.malformed else "")
        + ("" if summary.exact else " [accounting mismatch]"),
        file=sys.stderr,
    )
    return 0


def _quiet_stdout() -> None:
    # stdout's reader went away (e.g. `| head`): don't let Python complain at exit
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def cmd_hooks(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    from lsmtrace import hooks, probe

    cat = hooks.load_catalogue()
    status: dict[str, dict[str, str]] | None = None
    if not args.no_probe:
        from lsmtrace.hookgen import rung_status

        status = rung_status(cat, probe.probe_all() if os.geteuid() == 0 else None)
    if args.json:
        out.write(hooks.catalogue_to_json(cat) + "\n")
    else:
        out.write(hooks.render_catalogue(cat, status, verbose=args.all) + "\n")
    return 0


def cmd_doctor(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    from lsmtrace import doctor

    report = doctor.diagnose()
    out.write((doctor.to_json(report) if args.json else doctor.render(report)) + "\n")
    return 0


COMMANDS: dict[str, Any] = {
    "trace": cmd_trace,
    "hooks": cmd_hooks,
    "doctor": cmd_doctor,
}


def report_error(e: LsmtraceError, debug: bool = False) -> int:
    """`error: ...` and `hint: ...` on stderr (traceback and compiler log with
    --debug); returns the exit code."""
    if debug:
        log.exception("failed")
        log_text = getattr(e, "log", "")
        if log_text:
            sys.stderr.write(log_text)
    print(f"error: {e.message}", file=sys.stderr)
    if e.hint:
        print(f"hint: {e.hint}", file=sys.stderr)
    return e.exit_code


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not args.command:
        parser.print_help(sys.stderr)
        return 2
    try:
        func = getattr(args, "func", None) or COMMANDS[args.command]
        return int(func(args))
    except LsmtraceError as e:
        return report_error(e, args.debug)
    except KeyboardInterrupt:
        return 0
