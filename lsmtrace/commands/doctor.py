"""`lsmtrace doctor`: what this machine supports, with hints."""

from __future__ import annotations

import argparse
import sys
from typing import TextIO

EPILOG = """examples:
  lsmtrace doctor
  lsmtrace doctor --json
"""


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    d = sub.add_parser(
        "doctor",
        help="what this machine supports, with hints",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    d.add_argument("--json", action="store_true")
    d.set_defaults(func=run)


def run(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    from lsmtrace import doctor

    report = doctor.diagnose()
    out.write((doctor.to_json(report) if args.json else doctor.render(report)) + "\n")
    return 0
