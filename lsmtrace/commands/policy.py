"""`lsmtrace policy generate|check|diff`: policies from recordings (docs/policy.md)."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, TextIO

from lsmtrace.commands import options
from lsmtrace.errors import UsageError

TARGETS = options.POLICY_TARGETS

EPILOG = """examples:
  lsmtrace policy generate --target apparmor run.jsonl -o usr.bin.x
  lsmtrace policy generate --target landlock a.jsonl b.jsonl -o x.landlock.json
  lsmtrace policy check --policy usr.bin.x new-run.jsonl   # exit 1: would deny
  lsmtrace policy diff monday.jsonl tuesday.jsonl
A recording that lost events or was cut is refused (--accept-lossy uses it and
stamps a warning into the policy). See docs/policy.md.
"""


def _lossy_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--accept-lossy",
        action="store_true",
        help="use recordings that lost events or were cut (the policy says so)",
    )


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    raw = argparse.RawDescriptionHelpFormatter
    pol = sub.add_parser(
        "policy",
        help="generate, check and diff policies from recordings",
        epilog=EPILOG,
        formatter_class=raw,
    )
    psub = pol.add_subparsers(dest="policy_command", metavar="ACTION")
    g = psub.add_parser(
        "generate",
        help="least-privilege policy from recordings",
        epilog=EPILOG,
        formatter_class=raw,
    )
    g.add_argument("--target", required=True, choices=TARGETS)
    g.add_argument("recordings", nargs="+", metavar="RECORDING")
    g.add_argument(
        "-o", "--output", metavar="FILE", help="write here (default: stdout)"
    )
    g.add_argument("--force", action="store_true", help="overwrite an existing -o file")
    g.add_argument(
        "--include-denied",
        action="store_true",
        help="also grant what was denied during the recording (complain mode)",
    )
    g.add_argument(
        "--program",
        action="append",
        metavar="EXE",
        help="only these programs (exe path or comm:<name>; repeatable)",
    )
    g.add_argument("--name", help="profile/module name (default: from the program)")
    _lossy_arg(g)
    g.set_defaults(func=generate)
    c = psub.add_parser(
        "check",
        help="what a policy would deny of recorded accesses",
        epilog=EPILOG,
        formatter_class=raw,
    )
    c.add_argument("--policy", required=True, metavar="FILE")
    c.add_argument("--target", choices=TARGETS, help="policy format (default: guessed)")
    c.add_argument("recordings", nargs="+", metavar="RECORDING")
    c.add_argument("--json", action="store_true", help="one JSON object per finding")
    c.add_argument(
        "--include-denied",
        action="store_true",
        help="also check accesses that were denied while recording",
    )
    _lossy_arg(c)
    c.set_defaults(func=check)
    d = psub.add_parser(
        "diff",
        help="accesses added/removed between two recordings",
        epilog=EPILOG,
        formatter_class=raw,
    )
    d.add_argument("a", metavar="RECORDING_A")
    d.add_argument("b", metavar="RECORDING_B")
    d.add_argument("--json", action="store_true")
    _lossy_arg(d)
    d.set_defaults(func=diff)
    pol.set_defaults(func=lambda a: _usage(pol))


def _usage(p: argparse.ArgumentParser) -> int:
    p.print_help(sys.stderr)
    return 2


def generate(args: argparse.Namespace, out: TextIO | None = None) -> int:
    from lsmtrace.policy import generate as render
    from lsmtrace.policy import load_access_set, messages

    if args.output and not args.force and os.path.lexists(args.output):
        raise UsageError(
            f"{args.output} exists", hint="choose another name or pass --force"
        )
    aset = load_access_set(
        args.recordings,
        include_denied=args.include_denied,
        accept_lossy=args.accept_lossy,
    )
    for w in aset.warnings:
        print(f"warning: {w}", file=sys.stderr)
    if args.program:
        keep = set(args.program)
        aset.programs = {
            k: v
            for k, v in aset.programs.items()
            if k in keep or any(f"comm:{c}" in keep for c in v.comms)
        }
        if not aset.programs:
            raise UsageError(
                "no recorded program matches --program",
                hint="run `lsmtrace policy diff` or replay to see the names",
            )
    if args.target == "selinux":
        _machine_labels(aset)
    text = render(args.target, aset, name=args.name, filename=args.output)
    for m in messages(args.target, aset):
        print(m, file=sys.stderr)
    if args.output:
        with open(args.output, "w") as f:
            f.write(text)
        print(
            f"wrote {args.target} policy for {len(aset.programs)} program(s) "
            f"to {args.output}",
            file=sys.stderr,
        )
    else:
        _write(out or sys.stdout, [text])
    return 0


def _machine_labels(aset: Any) -> None:
    """SELinux: the types of the recorded files that exist here, from their
    labels (the recording's AVCs still come first; docs/policy.md)."""
    from lsmtrace.policy import selinux

    n = selinux.add_machine_labels(aset)
    if n:
        print(
            f"note: selinux: the type of {n} file(s) from their label on this machine",
            file=sys.stderr,
        )


def _write(out: TextIO, chunks: list[str]) -> bool:
    """Write and flush; False when the reader went away (`| head`)."""
    try:
        out.write("".join(chunks))
        out.flush()
    except BrokenPipeError:
        options.quiet_stdout()
        return False
    return True


def check(args: argparse.Namespace, out: TextIO | None = None) -> int:
    from lsmtrace.output import escape, json_text
    from lsmtrace.policy import evaluate, load, load_access_set

    out = out or sys.stdout
    aset = load_access_set(
        args.recordings,
        include_denied=args.include_denied,
        accept_lossy=args.accept_lossy,
    )
    for w in aset.warnings:
        print(f"warning: {w}", file=sys.stderr)
    for ln in aset.unplaced_lines():
        print(f"warning: not checked (no path): {ln}", file=sys.stderr)
    policy = load(args.policy, args.target)
    if policy.target == "selinux":
        _machine_labels(aset)
    result = evaluate(policy, aset)
    lines: list[str] = []
    if args.json:
        for a in result.denied:
            lines.append(
                json_text(
                    {
                        "finding": "would_deny",
                        "program": a.program,
                        "kind": a.kind,
                        "what": a.what,
                        "access": a.access,
                    }
                )
                + "\n"
            )
        for rule in result.unused:
            lines.append(json_text({"finding": "unused_rule", "rule": rule}) + "\n")
    else:
        lines.append(
            f"{len(result.denied)} recorded access(es) would be denied, "
            f"{len(result.allowed)} allowed; {len(result.unused)} rule(s) unused\n"
        )
        lines += [f"DENY   {escape(str(a))}\n" for a in result.denied]
        lines += [f"UNUSED {escape(rule)}\n" for rule in result.unused]
    _write(out, lines)
    return 1 if result.denied else 0


def diff(args: argparse.Namespace, out: TextIO | None = None) -> int:
    from lsmtrace.output import escape, json_text
    from lsmtrace.policy import load_access_set
    from lsmtrace.policy.generalise import generalised_set
    from lsmtrace.policy.model import Access

    out = out or sys.stdout
    a = generalised_set(load_access_set([args.a], accept_lossy=args.accept_lossy))
    b = generalised_set(load_access_set([args.b], accept_lossy=args.accept_lossy))

    def key(x: Access) -> tuple[str, str, str, str]:
        return (x.program, x.kind, x.what, x.access)

    added, removed = sorted(b - a, key=key), sorted(a - b, key=key)
    lines: list[str] = []
    if args.json:
        for sign, items in (("+", added), ("-", removed)):
            for x in items:
                lines.append(
                    json_text(
                        {
                            "change": sign,
                            "program": x.program,
                            "kind": x.kind,
                            "what": x.what,
                            "access": x.access,
                        }
                    )
                    + "\n"
                )
    else:
        lines += [f"+ {escape(str(x))}\n" for x in added]
        lines += [f"- {escape(str(x))}\n" for x in removed]
        lines.append(f"{len(added)} added, {len(removed)} removed\n")
    _write(out, lines)
    return 1 if added or removed else 0
