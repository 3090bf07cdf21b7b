"""`lsmtrace trace`: LSM decisions live, as text, a tree, JSON Lines or counts."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import TYPE_CHECKING, Any, TextIO

from lsmtrace.commands import options
from lsmtrace.errors import UsageError

if TYPE_CHECKING:
    from lsmtrace.loader import Tracer
    from lsmtrace.policy.live import LiveCheck

log = logging.getLogger(__name__)

EPILOG = """examples:
  lsmtrace trace                         # default hooks, every decision, text
  lsmtrace trace --denied                # only denials
  lsmtrace trace --json --duration 10    # JSON Lines for 10 seconds
  lsmtrace trace --pid 1234 --children   # a process and its descendants
  lsmtrace trace --comm nginx --family network
  lsmtrace trace --hooks 'file_*' --uid 1000
  lsmtrace trace --cgroup system.slice/ssh.service
  lsmtrace trace --container 3f2a --json
  lsmtrace trace --denied --tree         # each denial with its ancestry
  lsmtrace trace --backend tracepoint    # force a rung (auto: best that loads)
  lsmtrace trace --ebpf                  # print the BPF program and its cflags
  lsmtrace trace --denied --enable-audit # which rule denied, audit on meanwhile
  lsmtrace trace --policy app.aa --comm app --denied   # what the candidate policy
                                         # would deny, before enforcing it
"""


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    t = sub.add_parser(
        "trace",
        help="show LSM decisions live",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    options.add_live_args(t)
    t.add_argument(
        "--json", action="store_true", help="JSON Lines (see docs/events.md)"
    )
    w = t.add_argument_group("who (docs/proctree.md)")
    w.add_argument(
        "--tree",
        action="store_true",
        help="print each denial with its process ancestry and container/unit",
    )
    options.add_show_args(w)
    w.add_argument(
        "--no-enrich",
        action="store_true",
        help="JSON without exe, cmdline, user, ancestors, container, unit",
    )
    t.add_argument(
        "--count",
        action="store_true",
        help="count in the kernel only (no event stream); print the "
        "counts per hook, verdict, errno and LSM at exit",
    )
    options.add_policy_args(t)
    options.add_duration_arg(t)
    options.add_width_arg(t)
    t.add_argument(
        "--discard",
        action="store_true",
        help="consume events without decoding or printing them "
        "(measures the transport; see benchmarks/bench.py)",
    )
    t.add_argument("--no-header", action="store_true", help="no column header")
    t.add_argument(
        "--ebpf",
        action="store_true",
        help="print the BPF program and its cflags for these options, then exit",
    )
    t.set_defaults(func=run)


def _check(args: argparse.Namespace) -> None:
    options.check_duration(args.duration)
    if args.count and args.denied:
        raise UsageError(
            "--count counts every decision in the kernel; --denied does not apply",
            hint="read the deny rows of the --count table, or drop --count",
        )
    if args.count and (args.tree or args.proc_events):
        raise UsageError(
            "--count prints a table of counts; --tree and --proc-events need events",
            hint="drop --count",
        )
    if (args.count or args.discard) and args.policy:
        raise UsageError(
            "--policy checks each decision; --count and --discard decode none",
            hint="drop --count/--discard",
        )


def run(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    from lsmtrace.loader import Tracer
    from lsmtrace.session import stop_on_signals

    _check(args)
    # a candidate policy (--policy) is read before anything is loaded
    policy = options.open_policy(args)
    # JSON and --tree are enriched (exe, ancestors, container...); process
    # events reach the tree whatever the filters (docs/proctree.md); the
    # policy check follows every process (exec, fork, exit; the exe of those
    # started before lsmtrace) and sees the allowed decisions too: --denied
    # then selects in user space what was denied or would be
    enrich = not (args.no_enrich or args.count or args.discard) and (
        args.json or args.tree or args.proc_events or policy is not None
    )
    opts = options.trace_options(
        args,
        stream=not args.count,
        proc_events=enrich or policy is not None,
        denied=args.denied and policy is None,
    )
    if args.ebpf:
        from lsmtrace.loader import program_text

        out.write(program_text(opts))
        return 0
    tracer = Tracer(opts)
    width = options.text_width(args.width, out)
    stop = [False]
    # SIGINT/SIGTERM from here on end the run cleanly, setup included
    with stop_on_signals(stop):
        return _run(args, out, tracer, width, stop, enrich, policy)


def _run(
    args: argparse.Namespace,
    out: TextIO,
    tracer: Tracer,
    width: int,
    stop: list[bool],
    enrich: bool,
    policy: LiveCheck | None = None,
) -> int:
    from lsmtrace import output
    from lsmtrace.events import Event
    from lsmtrace.session import Session

    join: Any = None
    try:
        enricher: Any = None
        if enrich:
            from lsmtrace.proctree import Enricher

            enricher = Enricher.live()
        att = tracer.open()
        if stop[0]:
            return 0
        audit_status = None
        if not (args.count or args.discard):
            opened = options.open_audit(args, tracer.syscall_names)
            join, audit_status = opened.join, opened.status
        if policy is not None:
            audit_status = "; ".join(
                x for x in (audit_status, options.policy_status(policy)) if x
            )
        print(
            options.start_line("Tracing", att, audit=audit_status),
            file=sys.stderr,
            flush=True,
        )
        for name, why in att.skipped.items():
            log.debug("skipped %s: %s", name, why)
        if not args.json and not args.no_header and not args.count and not args.discard:
            out.write(output.header(width) + "\n")
        tree = args.tree and not args.json
        if tree:
            from lsmtrace.proctree import format_tree

        select = args.denied and policy is not None
        # JSON Lines are ASCII bytes already: written under the text layer
        # (flushed once first), not decoded to be encoded again (~0.2 us an event)
        raw = getattr(out, "buffer", None) if args.json else None
        if raw is not None:
            out.flush()

        def on_events(evs: list[Event]) -> None:
            if select:  # --denied with --policy: what was or would be denied
                evs = [d for d in evs if d["verdict"] == "deny" or "would_deny" in d]
            if not evs:
                return
            if args.json:
                data = output.json_lines(evs)
                if raw is not None:
                    raw.write(data)
                    raw.flush()
                    return
                text = data.decode("ascii")
            elif tree:
                lines: list[str] = []
                for d in evs:
                    if d["verdict"] == "deny":
                        lines.extend(format_tree(d, width))
                    else:
                        lines.append(output.text_line(d, width))
                text = "\n".join(lines) + "\n"
            else:
                text = "".join(output.text_line(d, width) + "\n" for d in evs)
            out.write(text)
            out.flush()

        session = Session(
            tracer,
            on_events,
            decode_events=not args.discard,
            enricher=enricher,
            process_events=args.proc_events,
            quiet_probes=args.quiet_probes,
            audit=join,
            policy=policy,
        )
        session.stop = stop
        try:
            summary = session.run(args.duration)
            if args.count:
                rows = output.count_rows(
                    tracer.counts(), tracer.id_names, tracer.quiet_counts()
                )
                out.write(output.count_table(rows, args.json))
                out.flush()
        except BrokenPipeError:
            summary = session.summary
            options.quiet_stdout()
    finally:
        if join is not None:
            join.close()  # --enable-audit: audit back off
        tracer.close()
    # before the summary: that one stays the last line
    for line in (
        options.audit_summary_line(summary),
        options.policy_summary_line(summary, policy),
    ):
        if line:
            print(line, file=sys.stderr)
    print(options.summary_line(summary), file=sys.stderr)
    return 0
