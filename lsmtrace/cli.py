"""Command line: `lsmtrace COMMAND ...`; each command is a module of
lsmtrace/commands/, and heavy imports stay inside the commands."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from lsmtrace import __version__
from lsmtrace.commands import NAMES
from lsmtrace.errors import LsmtraceError

log = logging.getLogger("lsmtrace")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="lsmtrace",
        description="Live tracer of Linux Security Module decisions.",
    )
    p.add_argument("--version", action="version", version=f"lsmtrace {__version__}")
    p.add_argument("--debug", action="store_true", help="tracebacks and debug logs")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for name in NAMES:
        importlib.import_module(f"lsmtrace.commands.{name}").add_parser(sub)
    return p


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
        return int(args.func(args))
    except LsmtraceError as e:
        return report_error(e, args.debug)
    except KeyboardInterrupt:
        return 0
