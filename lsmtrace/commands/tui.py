"""`lsmtrace tui` on the command line. Textual-free: building the parser (what
--help does) imports nothing heavy; run() imports the app."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lsmtrace.commands import options
from lsmtrace.errors import UsageError

DEFAULT_HISTORY = 50_000  # lsmtrace.tui.model.DEFAULT_HISTORY (checked by a test)

log = logging.getLogger(__name__)

TUI_EPILOG = """examples:
  lsmtrace tui                           # live, default hooks (root)
  lsmtrace tui --denied                  # live, only denials reach the screen
  lsmtrace tui --comm nginx --family file
  lsmtrace tui --backend tracepoint      # force a rung (auto: best that loads)
  lsmtrace tui --replay run.jsonl        # a recording (`lsmtrace record`), no root
  lsmtrace tui --replay run.jsonl --history 200000
  lsmtrace tui --policy app.aa --comm app # what a candidate policy would deny
  lsmtrace tui --replay run.jsonl --policy app.landlock.json
keys: ? help, f filter, / search, space pause, d denials only, w would-deny only,
      1/2/3 views, q quit
logs: ~/.cache/lsmtrace/tui.log (--log FILE); nothing is written to the terminal
"""


def default_log_path() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(
        os.path.expanduser("~"), ".cache"
    )
    return Path(base) / "lsmtrace" / "tui.log"


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "tui",
        help="interactive view of decisions, live or replayed",
        description="Debug denials on one screen: what was denied, to "
        "whom, by which LSM, and what rule would allow it.",
        epilog=TUI_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(p)
    p.set_defaults(func=run)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--replay",
        metavar="FILE",
        help="show a recording (JSON Lines) instead of tracing live",
    )
    p.add_argument(
        "--history",
        type=int,
        default=DEFAULT_HISTORY,
        metavar="N",
        help=f"events kept in memory (default {DEFAULT_HISTORY})",
    )
    p.add_argument(
        "--log", metavar="FILE", help=f"log file (default {default_log_path()})"
    )
    options.add_live_args(p, "live filters (applied in the kernel)")
    p.add_argument(
        "--no-enrich",
        action="store_true",
        help="live: no exe, ancestors, container, unit from /proc",
    )
    options.add_policy_args(p)


@contextmanager
def log_to_file(path: Path, debug: bool = False) -> Iterator[None]:
    """While the TUI runs, every log record goes to `path`, none to the terminal
    (a StreamHandler made before the app holds the real stderr)."""
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    handler: logging.Handler
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(path, encoding="utf-8")
    except OSError:
        handler = logging.NullHandler()
    handler.setFormatter(
        logging.Formatter(
            "%(asctime)s %(levelname)s %(threadName)s %(name)s: %(message)s"
        )
    )
    root.handlers = [handler]
    root.setLevel(logging.DEBUG if debug else logging.INFO)
    try:
        yield
    finally:
        root.handlers = saved_handlers
        root.setLevel(saved_level)
        handler.close()


def make_source(args: argparse.Namespace) -> object:
    from lsmtrace.tui.sources import LiveSource, ReplaySource

    policy = options.open_policy(args)  # a bad policy file fails before the screen
    if args.replay:
        src = ReplaySource(args.replay, policy=policy)
        src.open()  # a missing or unreadable file fails here, before the screen
        return src
    from lsmtrace.loader import check_root

    check_root()
    enrich = not args.no_enrich
    # the policy check follows every process and sees the allowed decisions
    # too: --denied then selects in user space what was or would be denied
    opts = options.trace_options(
        args,
        proc_events=enrich or policy is not None,
        denied=args.denied and policy is None,
    )
    select = _denied_or_would if args.denied and policy is not None else None
    enricher = None
    if enrich:
        from lsmtrace.proctree import Enricher

        enricher = Enricher.live()
    return LiveSource(
        opts, enricher=enricher, audit=audit_factory(args), policy=policy, select=select
    )


def _denied_or_would(ev: dict[str, Any]) -> bool:
    return ev["verdict"] == "deny" or "would_deny" in ev


def audit_factory(args: argparse.Namespace) -> Callable[[dict[int, str]], Any]:
    """Opens the audit join in the live source's thread, once the tracer is up."""

    def make(syscall_names: dict[int, str]) -> Any:
        from lsmtrace import auditlive
        from lsmtrace.events import WallClock

        return auditlive.open_join(
            args.audit, args.enable_audit, syscall_names, WallClock().offset_ns
        )

    return make


def run(args: argparse.Namespace) -> int:
    if args.history <= 0:
        raise UsageError("--history must be positive", hint="e.g. --history 50000")
    source = make_source(args)
    from lsmtrace.tui.app import LsmtraceApp

    app = LsmtraceApp(source, history=args.history)  # type: ignore[arg-type]
    log_path = Path(args.log) if args.log else default_log_path()
    with log_to_file(log_path, getattr(args, "debug", False)):
        rc = app.run()
    if app.source_error:
        print(f"error: {app.source_error}", file=sys.stderr)
        return 1
    return int(rc or 0)
