"""What every live command shares: the kernel filter and backend flags, the
who-filters (--container/--unit), the TraceOptions built from them, the status
line at start and the summary at exit, the output width, a quiet broken pipe.

No heavy imports here: the parser of every command is built for `--help`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from typing import TYPE_CHECKING, Any, TextIO

from lsmtrace.errors import UsageError

if TYPE_CHECKING:
    from lsmtrace.auditlive import Opened
    from lsmtrace.loader import Attachment, TraceOptions
    from lsmtrace.policy.live import LiveCheck
    from lsmtrace.session import Summary

# the targets of `policy generate|check` and of --policy-target
POLICY_TARGETS = ("apparmor", "selinux", "landlock", "tomoyo")


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
        "--container",
        metavar="ID-PREFIX",
        help="only this container (Docker, Podman, containerd/CRI, LXC)",
    )
    g.add_argument(
        "--unit", metavar="NAME", help="only this systemd unit, scope or slice"
    )
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


def add_backend_args(p: argparse.ArgumentParser, pages: int = 512) -> None:
    """--backend, --buffer-pages, --perf-buffer, shared by every live command."""
    p.add_argument(
        "--backend",
        default="auto",
        help="auto|fexit|kprobe|tracepoint (default: auto, the best that loads)",
    )
    p.add_argument(
        "--buffer-pages",
        type=int,
        default=pages,
        metavar="N",
        help=f"ring buffer size in 4 KiB pages, a power of two (default {pages})",
    )
    p.add_argument(
        "--perf-buffer",
        action="store_true",
        help="use the perf buffer even where the ring buffer works",
    )


def add_live_args(
    p: argparse.ArgumentParser,
    title: str = "filters (applied in the kernel)",
    denied: bool = True,
    pages: int = 512,
) -> None:
    add_backend_args(p, pages)
    add_filter_args(p, title, denied)
    add_audit_args(p)


def add_audit_args(p: argparse.ArgumentParser) -> None:
    """--audit, --enable-audit: join denials with their LSM's audit records."""
    g = p.add_argument_group(
        "which rule denied (the LSM's audit records; docs/events.md)"
    )
    g.add_argument(
        "--audit",
        choices=("auto", "on", "off"),
        default="auto",
        help="join each denial with its LSM's audit record (AppArmor profile, "
        "SELinux contexts, Landlock right, seccomp action). auto (default): "
        "when audit is enabled; on: fail if it is not; off: never",
    )
    g.add_argument(
        "--enable-audit",
        action="store_true",
        help="turn audit on for this session only (off again at exit, even if "
        "lsmtrace is killed). Lasting cost: every process forked from then on "
        "pays a syscall audit context until reboot (see `lsmtrace doctor`)",
    )


def open_audit(args: argparse.Namespace, syscall_names: dict[int, str]) -> Opened:
    """The audit join of a live command's flags (lsmtrace/auditlive.py); its
    notes (what --enable-audit did and costs) are printed here, on stderr.
    The caller closes ``.join`` (which restores the audit state) when done."""
    from lsmtrace import auditlive
    from lsmtrace.events import WallClock

    opened = auditlive.open_join(
        getattr(args, "audit", "off"),
        getattr(args, "enable_audit", False),
        syscall_names,
        WallClock().offset_ns,
    )
    for note in opened.notes:
        print(note, file=sys.stderr, flush=True)
    return opened


def audit_summary_line(s: Summary) -> str | None:
    """The audit join's accounting at exit, on its own line (None: no join)."""
    if s.audit is None:
        return None
    from lsmtrace.auditlive import summary_text

    return summary_text(s.audit)


def add_policy_args(p: argparse.ArgumentParser) -> None:
    """--policy, --policy-target: the live audit mode (docs/policy.md)."""
    g = p.add_argument_group(
        "live audit mode: a candidate policy watched before enforcing (docs/policy.md)"
    )
    g.add_argument(
        "--policy",
        metavar="FILE",
        help="a policy made by `lsmtrace policy generate` (any target): mark each "
        "decision it would deny (would_deny, with the rule it lacks). Needs every "
        "decision of the scope in user space: scope it with --pid/--comm/--cgroup/"
        "--container/--unit",
    )
    g.add_argument(
        "--policy-target",
        choices=POLICY_TARGETS,
        help="the policy's format (default: guessed from its content)",
    )


def open_policy(args: argparse.Namespace) -> LiveCheck | None:
    """The live check of --policy (read and parsed now: a bad file fails
    before any BPF is loaded), or None."""
    path = getattr(args, "policy", None)
    target = getattr(args, "policy_target", None)
    if not path:
        if target:
            raise UsageError("--policy-target needs --policy", hint="--policy FILE")
        return None
    from lsmtrace.policy import load
    from lsmtrace.policy.live import LiveCheck

    return LiveCheck(load(path, target))


def policy_status(check: LiveCheck) -> str:
    """For the start line: which policy the decisions are checked against."""
    return f"checking policy {check.policy.name} ({check.policy.target})"


def policy_summary_line(s: Summary, check: LiveCheck | None) -> str | None:
    """The live check's accounting at exit, on its own line (None: no --policy)."""
    if s.policy is None or check is None:
        return None
    from lsmtrace.policy.live import summary_text

    return summary_text(check.policy.name, check.policy.target, s.policy)


def add_duration_arg(p: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    p.add_argument(
        "--duration", type=float, metavar="SECONDS", help="stop after this long"
    )


def add_show_args(p: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """What is shown besides decisions: process events, quiet probes."""
    p.add_argument(
        "--proc-events", action="store_true", help="also print exec/fork/exit events"
    )
    p.add_argument(
        "--quiet-probes",
        action="store_true",
        help="also show quiet capability probes (noaudit: the kernel asked "
        "without enforcing; nothing was refused)",
    )


def check_duration(duration: float | None) -> None:
    if duration is not None and duration <= 0:
        raise UsageError("--duration must be positive", hint="e.g. --duration 10")


def cgroup_filter(args: argparse.Namespace) -> str | None:
    """--cgroup, or the cgroup of --container/--unit (they exclude each other)."""
    container = getattr(args, "container", None)
    unit = getattr(args, "unit", None)
    if not (container or unit):
        return getattr(args, "cgroup", None)
    if getattr(args, "cgroup", None):
        raise UsageError(
            "--cgroup cannot be combined with --container/--unit",
            hint="give one of them",
        )
    from lsmtrace.cgroups import resolve_cgroup_filter

    return str(resolve_cgroup_filter(container=container, unit=unit))


def check_filters(args: argparse.Namespace) -> None:
    """Small inputs the kernel filter would silently misread."""
    uid = getattr(args, "uid", None)
    if uid is not None and not 0 <= uid < 2**32 - 1:
        raise UsageError(f"--uid {uid} is not a user id", hint="e.g. --uid 1000")
    pid = getattr(args, "pid", None)
    if pid is not None and pid <= 0:
        raise UsageError(f"--pid {pid} is not a process id", hint="e.g. --pid 1234")


def trace_options(args: argparse.Namespace, **overrides: Any) -> TraceOptions:
    """The TraceOptions of a live command's flags; `overrides` win."""
    from lsmtrace.loader import TraceOptions

    check_filters(args)
    values: dict[str, Any] = {
        "backend": args.backend,
        "hooks": args.hooks,
        "families": args.family,
        "pid": args.pid,
        "children": args.children,
        "uid": args.uid,
        "comm": args.comm,
        "cgroup": cgroup_filter(args),
        "denied": getattr(args, "denied", False),
        "ringbuf_pages": args.buffer_pages,
        "perf_buffer": args.perf_buffer,
    }
    values.update(overrides)
    return TraceOptions(**values)


def start_line(
    verb: str, att: Attachment, tail: str = "Ctrl-C to end.", audit: str | None = None
) -> str:
    """The one status line on stderr when a live command is ready."""
    return (
        f"{verb} {len(att.attached)} hooks via {att.rung} "
        f"({att.buffer}, headers from {att.headers}); "
        f"{len(att.skipped)} skipped{'; ' + audit if audit else ''}. {tail}"
    )


def summary_line(s: Summary, what: str = "events") -> str:
    """The accounting at exit: delivered, by verdict, lost, attempted..."""
    v = s.by_verdict
    return (
        f"{s.delivered} {what} ({v['deny']} denied, {v['allow']} allowed, "
        f"{v['error']} failed"
        + (f", {s.processes} process events" if s.processes else "")
        + (f", {s.quiet} quiet capability probes" if s.quiet else "")
        + "), "
        f"{s.lost} lost, {s.attempted} attempted, "
        f"{s.seen} decisions seen in kernel, {s.filtered} filtered"
        + (f", {s.malformed} malformed" if s.malformed else "")
        + ("" if s.exact else " [accounting mismatch]")
    )


def text_width(width: int | None, out: TextIO) -> int:
    """Columns of text output: --width (0: unlimited), the terminal's, or
    unlimited when stdout is not a terminal (a pipe or file never cuts)."""
    if width is not None:
        if width < 0:
            raise UsageError(f"--width {width} is negative", hint="0 means unlimited")
        return width
    if out.isatty():
        return shutil.get_terminal_size((80, 24)).columns
    return 0


def add_width_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--width",
        type=int,
        metavar="N",
        help="text width in columns (default: the terminal's; unlimited when "
        "not a terminal; 0: unlimited)",
    )


def quiet_stdout() -> None:
    """stdout's reader went away (e.g. `| head`): don't let Python complain at exit."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def command_args(args: argparse.Namespace) -> list[str]:
    cmd = list(getattr(args, "cmd", None) or [])
    if cmd and cmd[0] == "--":
        cmd = cmd[1:]
    return cmd
