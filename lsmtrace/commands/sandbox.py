"""`lsmtrace sandbox`: run a command under a generated Landlock policy."""

from __future__ import annotations

import argparse
import sys
from typing import TextIO

from lsmtrace.commands import options
from lsmtrace.errors import UsageError

EPILOG = """examples:
  lsmtrace sandbox --policy x.landlock.json -- ./x --flag
  lsmtrace sandbox --policy x.landlock.json --dry-run      # what would be applied
Applies a Landlock ruleset (from `policy generate --target landlock`) to itself
and execs the command; no root needed.
"""


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    s = sub.add_parser(
        "sandbox",
        help="run a command under a Landlock policy",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    s.add_argument("--policy", required=True, metavar="FILE")
    s.add_argument(
        "--dry-run",
        action="store_true",
        help="print the rules that would be applied, run nothing",
    )
    s.add_argument("cmd", nargs=argparse.REMAINDER, metavar="-- COMMAND ARGS")
    s.set_defaults(func=run)


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    from lsmtrace import sandbox

    cmd = options.command_args(args)
    policy = sandbox.load_policy(args.policy)
    if args.dry_run:
        plan = sandbox.plan(policy)
        (out or sys.stdout).write(sandbox.describe(plan) + "\n")
        return 0
    if not cmd:
        raise UsageError(
            "no command to run", hint="lsmtrace sandbox --policy F -- CMD ARGS"
        )
    sandbox.run(policy, cmd)  # execs; returns only by raising
    return 127
