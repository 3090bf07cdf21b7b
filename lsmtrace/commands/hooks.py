"""`lsmtrace hooks`: the hook catalogue and what each rung attaches here."""

from __future__ import annotations

import argparse
import os
import sys
from typing import TextIO

EPILOG = """examples:
  lsmtrace hooks
  lsmtrace hooks --all
  lsmtrace hooks --json
"""


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    h = sub.add_parser(
        "hooks",
        help="the hook catalogue and what each rung attaches",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    h.add_argument(
        "--all", action="store_true", help="every hook, not only the default set"
    )
    h.add_argument("--json", action="store_true")
    h.add_argument("--no-probe", action="store_true", help="do not probe the rungs")
    h.set_defaults(func=run)


def run(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
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
