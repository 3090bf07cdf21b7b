"""`lsmtrace replay`: a recording printed like `trace` (text or JSON Lines)."""

from __future__ import annotations

import argparse
import fnmatch
import sys
from collections.abc import Callable, Mapping
from typing import Any, TextIO

from lsmtrace.commands import options

EPILOG = """examples:
  lsmtrace replay run.jsonl                 # like `lsmtrace trace`, from the file
  lsmtrace replay run.jsonl --denied --json
  lsmtrace replay run.jsonl.gz --hooks 'sys_open*' --comm cat
"""


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "replay",
        help="print a recording like `trace`",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("file", metavar="RECORDING")
    p.add_argument("--json", action="store_true", help="JSON Lines (docs/events.md)")
    p.add_argument("--hooks", action="append", metavar="GLOB", help="only these hooks")
    p.add_argument("--denied", action="store_true", help="only denials")
    p.add_argument("--pid", type=int, help="only this process (tgid)")
    p.add_argument("--comm", help="only this command name")
    options.add_show_args(p)
    options.add_width_arg(p)
    p.add_argument("--no-header", action="store_true", help="no column header")
    p.set_defaults(func=run)


def event_filter(args: argparse.Namespace) -> Callable[[Mapping[str, Any]], bool]:
    """The replay flags as a predicate on event dicts (the kernel's filters,
    applied to a recording)."""
    from lsmtrace.events import PROCESS_KINDS

    globs = args.hooks or []
    proc = getattr(args, "proc_events", False)
    quiet = getattr(args, "quiet_probes", False)

    def want(e: Mapping[str, Any]) -> bool:
        if e.get("kind") in PROCESS_KINDS:
            return proc
        if e.get("noaudit") and not quiet:
            return False
        if args.denied and e.get("verdict") != "deny":
            return False
        if args.pid is not None and args.pid not in (e.get("tgid"), e.get("pid")):
            return False
        if args.comm is not None and e.get("comm") != args.comm:
            return False
        if globs:
            hook = str(e.get("hook", ""))
            bare = hook[4:] if hook.startswith("sys_") else hook
            return any(
                fnmatch.fnmatchcase(hook, g) or fnmatch.fnmatchcase(bare, g)
                for g in globs
            )
        return True

    return want


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    from lsmtrace import output
    from lsmtrace.record import loss_summary, read_recording

    out = out or sys.stdout
    rec = read_recording(args.file)
    width = options.text_width(args.width, out)
    want = event_filter(args)
    try:
        if not args.json and not args.no_header:
            out.write(output.header(width) + "\n")
        render = (
            output.json_text if args.json else (lambda e: output.text_line(e, width))
        )
        for e in rec.events:
            if want(e):
                out.write(render(e) + "\n")
        out.flush()
    except BrokenPipeError:  # `replay ... | head`
        options.quiet_stdout()
        return 0
    loss = loss_summary(rec)
    if loss:
        print(f"note: {loss}", file=sys.stderr)
    if rec.error is not None:
        raise rec.error
    return 0
