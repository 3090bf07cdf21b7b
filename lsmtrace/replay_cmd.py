"""Commands `record`, `replay`, `policy generate|check|diff` and `sandbox`.

The lead wires them with `replay_cmd.add_parsers(sub)`; each parser sets
`func=`, which returns the exit code. Heavy imports (bcc via the loader) stay
inside `cmd_record`; replay, policy and sandbox never import bcc.
"""

from __future__ import annotations

import argparse
import datetime as dt
import fnmatch
import json
import logging
import os
import socket
import sys
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TextIO

from lsmtrace.errors import LsmtraceError, RecordingError, UsageError

log = logging.getLogger(__name__)

RECORD_EPILOG = """examples:
  lsmtrace record -o run.jsonl -- make test        # everything `make test` does
  lsmtrace record -o web.jsonl.gz --comm nginx --duration 60
  lsmtrace record -o all.jsonl --denied            # only denials, until Ctrl-C
  lsmtrace record -o x.jsonl --gzip -- ./x --flag  # compressed, whatever the name
The file is created 0600. With a command, recording ends when it exits and
record exits with its exit code. Format: docs/recording.md.
"""
REPLAY_EPILOG = """examples:
  lsmtrace replay run.jsonl                 # like `lsmtrace trace`, from the file
  lsmtrace replay run.jsonl --denied --json
  lsmtrace replay run.jsonl.gz --hooks 'sys_open*' --comm cat
"""
POLICY_EPILOG = """examples:
  lsmtrace policy generate --target apparmor run.jsonl -o usr.bin.x
  lsmtrace policy generate --target landlock a.jsonl b.jsonl -o x.landlock.json
  lsmtrace policy check --policy usr.bin.x new-run.jsonl   # exit 1: would deny
  lsmtrace policy diff monday.jsonl tuesday.jsonl
See docs/policy.md.
"""
SANDBOX_EPILOG = """examples:
  lsmtrace sandbox --policy x.landlock.json -- ./x --flag
  lsmtrace sandbox --policy x.landlock.json --dry-run      # what would be applied
Applies a Landlock ruleset (from `policy generate --target landlock`) to itself
and execs the command; no root needed.
"""

TARGETS = ("apparmor", "selinux", "landlock", "tomoyo")


def add_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from lsmtrace import cli

    raw = argparse.RawDescriptionHelpFormatter
    r = sub.add_parser("record", help="record live events to a file (JSON Lines)",
                       epilog=RECORD_EPILOG, formatter_class=raw)  # fmt: skip
    r.add_argument("-o", "--output", required=True, metavar="FILE",
                   help="recording file (.gz: compressed)")  # fmt: skip
    r.add_argument("--gzip", action="store_true", help="compress whatever the name")
    r.add_argument("--force", action="store_true", help="overwrite an existing file")
    r.add_argument(
        "--duration", type=float, metavar="SECONDS", help="stop after this long"
    )
    cli.add_backend_args(r)
    cli.add_filter_args(r)
    r.add_argument("cmd", nargs=argparse.REMAINDER, metavar="-- COMMAND ARGS",
                   help="run this command and record it and its descendants")  # fmt: skip
    r.set_defaults(func=cmd_record)

    p = sub.add_parser("replay", help="print a recording like `trace`",
                       epilog=REPLAY_EPILOG, formatter_class=raw)  # fmt: skip
    p.add_argument("file", metavar="RECORDING")
    p.add_argument("--json", action="store_true", help="JSON Lines (docs/events.md)")
    p.add_argument("--hooks", action="append", metavar="GLOB", help="only these hooks")
    p.add_argument("--denied", action="store_true", help="only denials")
    p.add_argument("--pid", type=int, help="only this process (tgid)")
    p.add_argument("--comm", help="only this command name")
    p.add_argument("--width", type=int, help="text width (default: terminal, or 80)")
    p.add_argument("--no-header", action="store_true", help="no column header")
    p.set_defaults(func=cmd_replay)

    pol = sub.add_parser("policy", help="generate, check and diff policies from recordings",
                         epilog=POLICY_EPILOG, formatter_class=raw)  # fmt: skip
    psub = pol.add_subparsers(dest="policy_command", metavar="ACTION")
    g = psub.add_parser("generate", help="least-privilege policy from recordings",
                        epilog=POLICY_EPILOG, formatter_class=raw)  # fmt: skip
    g.add_argument("--target", required=True, choices=TARGETS)
    g.add_argument("recordings", nargs="+", metavar="RECORDING")
    g.add_argument(
        "-o", "--output", metavar="FILE", help="write here (default: stdout)"
    )
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
    g.set_defaults(func=cmd_policy_generate)
    c = psub.add_parser("check", help="what a policy would deny of recorded accesses",
                        epilog=POLICY_EPILOG, formatter_class=raw)  # fmt: skip
    c.add_argument("--policy", required=True, metavar="FILE")
    c.add_argument("--target", choices=TARGETS, help="policy format (default: guessed)")
    c.add_argument("recordings", nargs="+", metavar="RECORDING")
    c.add_argument("--json", action="store_true", help="one JSON object per finding")
    c.add_argument(
        "--include-denied",
        action="store_true",
        help="also check accesses that were denied while recording",
    )
    c.set_defaults(func=cmd_policy_check)
    d = psub.add_parser("diff", help="accesses added/removed between two recordings",
                        epilog=POLICY_EPILOG, formatter_class=raw)  # fmt: skip
    d.add_argument("a", metavar="RECORDING_A")
    d.add_argument("b", metavar="RECORDING_B")
    d.add_argument("--json", action="store_true")
    d.set_defaults(func=cmd_policy_diff)
    pol.set_defaults(func=lambda a: _policy_usage(pol))

    s = sub.add_parser("sandbox", help="run a command under a Landlock policy",
                       epilog=SANDBOX_EPILOG, formatter_class=raw)  # fmt: skip
    s.add_argument("--policy", required=True, metavar="FILE")
    s.add_argument(
        "--dry-run",
        action="store_true",
        help="print the rules that would be applied, run nothing",
    )
    s.add_argument("cmd", nargs=argparse.REMAINDER, metavar="-- COMMAND ARGS")
    s.set_defaults(func=cmd_sandbox)


def _policy_usage(p: argparse.ArgumentParser) -> int:
    p.print_help(sys.stderr)
    return 2


def _command(args: argparse.Namespace) -> list[str]:
    cmd = list(args.cmd or [])
    if cmd and cmd[0] == "--":
        cmd = cmd[1:]
    return cmd


# -- record ------------------------------------------------------------------


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _active_lsms() -> list[str]:
    try:
        text = Path("/sys/kernel/security/lsm").read_text()
    except OSError:
        return []
    return [x for x in text.strip().split(",") if x]


def recording_header(rung: str, command: list[str] | None, filters: Mapping[str, Any],
                     clock_offset_ns: int) -> dict[str, Any]:  # fmt: skip
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


def cmd_record(args: argparse.Namespace) -> int:
    from lsmtrace import output
    from lsmtrace.events import Event, WallClock
    from lsmtrace.loader import TraceOptions, Tracer, check_root
    from lsmtrace.record import RecordingWriter
    from lsmtrace.session import Session

    cmd = _command(args)
    check_root()
    if args.duration is not None and args.duration <= 0:
        raise UsageError("--duration must be positive", hint="e.g. --duration 10")
    if cmd and args.pid is not None:
        raise UsageError(
            "--pid and a command exclude each other",
            hint="with a command, lsmtrace records it and its descendants",
        )
    if not args.force and os.path.lexists(args.output):  # before compiling anything
        raise RecordingError(f"{args.output} exists", hint="choose another name or pass --force")
    child, go_fd = (-1, -1)
    if cmd:
        child, go_fd = _spawn_waiting(cmd)
    pid, children = (child, True) if cmd else (args.pid, args.children)
    opts = TraceOptions(
        backend=args.backend, hooks=args.hooks, families=args.family, pid=pid,
        children=children, uid=args.uid, comm=args.comm, cgroup=args.cgroup,
        denied=args.denied, ringbuf_pages=args.buffer_pages,
        perf_buffer=args.perf_buffer, proc_events=True,
    )  # fmt: skip
    tracer = Tracer(opts)
    clock = WallClock()
    gz = args.gzip or str(args.output).endswith(".gz")
    writer: RecordingWriter | None = None
    status: list[int] = []
    try:
        att = tracer.open()
        filters = {k: v for k, v in {
            "hooks": args.hooks, "family": args.family, "pid": pid, "children": children,
            "uid": args.uid, "comm": args.comm, "cgroup": args.cgroup,
            "denied": args.denied}.items() if v not in (None, False)}  # fmt: skip
        writer = RecordingWriter(
            args.output, recording_header(att.rung, cmd or None, filters, clock.offset_ns),
            gzip=gz, overwrite=args.force,
        )  # fmt: skip
        w = writer

        def on_events(evs: list[Event]) -> None:
            w.write_events(e.to_dict(clock) for e in evs)

        session = Session(tracer, on_events)
        if cmd:

            def reap() -> None:
                _pid, st = os.waitpid(child, 0)
                status.append(st)
                session.stop[0] = True

            threading.Thread(target=reap, daemon=True).start()
            os.write(go_fd, b"1")
            os.close(go_fd)
            go_fd = -1
        print(f"Recording {len(att.attached)} hooks via {att.rung} to {args.output}"
              + (f" while {cmd[0]} runs" if cmd else "") + "; Ctrl-C to end.",
              file=sys.stderr)  # fmt: skip
        summary = session.run(args.duration)
        rows = output.count_rows(tracer.counts(), tracer.id_names)
        writer.close({
            "lost": summary.lost, "attempted": summary.attempted, "ended": _now(),
            "seen": summary.seen, "filtered": summary.filtered,
            "by_verdict": summary.by_verdict, "counts": rows,
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


# -- replay ------------------------------------------------------------------


def event_from_dict(d: Mapping[str, Any]) -> Any:
    """A lsmtrace.events.Event from its JSON dict (for output.text_line)."""
    from lsmtrace.events import Event

    obj = d.get("object")
    return Event(
        ts_ns=int(d.get("ts_ns") or 0), latency_ns=int(d.get("latency_ns") or 0),
        cgroup=int(d.get("cgroup") or 0), kind=str(d.get("kind", "")),
        rung=str(d.get("rung", "")), hook=str(d.get("hook", "")), family=d.get("family"),
        lsm=d.get("lsm"), ret=int(d.get("ret") or 0), syscall=d.get("syscall"),
        pid=int(d.get("pid") or 0), tgid=int(d.get("tgid") or 0),
        ppid=int(d.get("ppid") or 0), uid=int(d.get("uid") or 0),
        euid=int(d.get("euid") or 0), gid=int(d.get("gid") or 0),
        mntns=int(d.get("mntns") or 0), comm=str(d.get("comm", "")),
        object=dict(obj) if isinstance(obj, Mapping) else {},
        truncated=bool(d.get("truncated")), attributed=False,
    )  # fmt: skip


def _offset_from(header: Mapping[str, Any], events: list[dict[str, Any]]) -> int:
    off = header.get("clock_offset_ns")
    if isinstance(off, int):
        return off
    for e in events[:1]:
        try:
            t = dt.datetime.strptime(str(e["time"]), "%Y-%m-%dT%H:%M:%S.%fZ")
            wall = int(t.replace(tzinfo=dt.UTC).timestamp()) * 10**9
            return wall + t.microsecond * 1000 - int(e["ts_ns"])
        except (KeyError, ValueError, TypeError):
            break
    return 0


def event_filter(args: argparse.Namespace) -> Callable[[Mapping[str, Any]], bool]:
    globs = args.hooks or []

    def want(e: Mapping[str, Any]) -> bool:
        if args.denied and e.get("verdict") != "deny":
            return False
        if args.pid is not None and args.pid not in (e.get("tgid"), e.get("pid")):
            return False
        if args.comm is not None and e.get("comm") != args.comm:
            return False
        if globs:
            hook = str(e.get("hook", ""))
            bare = hook[4:] if hook.startswith("sys_") else hook
            return any(fnmatch.fnmatchcase(hook, g) or fnmatch.fnmatchcase(bare, g)
                       for g in globs)  # fmt: skip
        return True

    return want


def cmd_replay(args: argparse.Namespace, out: TextIO | None = None) -> int:
    from lsmtrace import output
    from lsmtrace.events import WallClock
    from lsmtrace.record import read_recording

    out = out or sys.stdout
    rec = read_recording(args.file)
    clock = WallClock(_offset_from(rec.header, rec.events))
    width = args.width if args.width is not None else (
        os.get_terminal_size().columns if out.isatty() else 80)  # fmt: skip
    want = event_filter(args)
    if not args.json and not args.no_header:
        out.write(output.header(width) + "\n")
    for e in rec.events:
        if not want(e):
            continue
        if args.json:
            out.write(output.json_text(e) + "\n")
        else:
            out.write(output.text_line(event_from_dict(e), clock, width) + "\n")
    out.flush()
    if rec.error is not None:
        raise rec.error
    return 0


# -- policy -------------------------------------------------------------------


def cmd_policy_generate(args: argparse.Namespace, out: TextIO | None = None) -> int:
    from lsmtrace.policy import generate, load_access_set

    aset = load_access_set(args.recordings, include_denied=args.include_denied)
    if args.program:
        keep = set(args.program)
        aset.programs = {k: v for k, v in aset.programs.items()
                         if k in keep or any(f"comm:{c}" in keep for c in v.comms)}  # fmt: skip
        if not aset.programs:
            raise UsageError("no recorded program matches --program",
                             hint="run `lsmtrace policy diff` or replay to see the names")  # fmt: skip
    text = generate(args.target, aset, name=args.name)
    if args.output:
        Path(args.output).write_text(text)
        print(f"wrote {args.target} policy for {len(aset.programs)} program(s) "
              f"to {args.output}", file=sys.stderr)  # fmt: skip
    else:
        (out or sys.stdout).write(text)
    return 0


def cmd_policy_check(args: argparse.Namespace, out: TextIO | None = None) -> int:
    from lsmtrace.policy import check, load_access_set

    out = out or sys.stdout
    aset = load_access_set(args.recordings, include_denied=args.include_denied)
    result = check(args.policy, aset, target=args.target)
    if args.json:
        for a in result.denied:
            out.write(json.dumps({"finding": "would_deny", "program": a.program,
                                  "kind": a.kind, "what": a.what, "access": a.access},
                                 ensure_ascii=True) + "\n")  # fmt: skip
        for rule in result.unused:
            out.write(json.dumps({"finding": "unused_rule", "rule": rule},
                                 ensure_ascii=True) + "\n")  # fmt: skip
    else:
        from lsmtrace.output import escape

        out.write(
            f"{len(result.denied)} recorded access(es) would be denied, "
            f"{len(result.allowed)} allowed; {len(result.unused)} rule(s) unused\n"
        )
        for a in result.denied:
            out.write(f"DENY   {escape(str(a))}\n")
        for rule in result.unused:
            out.write(f"UNUSED {escape(rule)}\n")
    out.flush()
    return 1 if result.denied else 0


def cmd_policy_diff(args: argparse.Namespace, out: TextIO | None = None) -> int:
    from lsmtrace.policy import load_access_set
    from lsmtrace.policy.model import Access

    out = out or sys.stdout
    a = set(load_access_set([args.a]).flat())
    b = set(load_access_set([args.b]).flat())

    def key(x: Access) -> tuple[str, str, str, str]:
        return (x.program, x.kind, x.what, x.access)

    added, removed = sorted(b - a, key=key), sorted(a - b, key=key)
    if args.json:
        for sign, items in (("+", added), ("-", removed)):
            for x in items:
                out.write(json.dumps({"change": sign, "program": x.program, "kind": x.kind,
                                      "what": x.what, "access": x.access},
                                     ensure_ascii=True) + "\n")  # fmt: skip
    else:
        from lsmtrace.output import escape

        for x in added:
            out.write(f"+ {escape(str(x))}\n")
        for x in removed:
            out.write(f"- {escape(str(x))}\n")
        out.write(f"{len(added)} added, {len(removed)} removed\n")
    out.flush()
    return 1 if added or removed else 0


# -- sandbox ------------------------------------------------------------------


def cmd_sandbox(args: argparse.Namespace, out: TextIO | None = None) -> int:
    from lsmtrace import sandbox

    cmd = _command(args)
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


__all__ = ["LsmtraceError", "RecordingError", "add_parsers"]
