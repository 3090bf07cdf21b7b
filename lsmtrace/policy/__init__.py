"""Policies from recordings: model.py builds the access set, one renderer per target.

generate(target, access_set) -> policy text; load(policy file) parses it back
once (each target parses its own format), evaluate(loaded, access_set) -> what
it would deny (`policy check`; the live audit mode, policy/live.py, evaluates
each decision against the same loaded policy). docs/policy.md. Pure: no bcc,
no kernel.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lsmtrace.errors import LsmtraceError, RecordingError, UsageError
from lsmtrace.policy.landlock import CheckResult
from lsmtrace.policy.model import AccessSet, build

TARGETS = ("apparmor", "selinux", "landlock", "tomoyo")


def load_access_set(
    paths: Iterable[str], include_denied: bool = False, accept_lossy: bool = False
) -> AccessSet:
    """The access set of recordings. A recording that lost events, holds
    malformed ones or was cut is refused (an access that was lost is one the
    enforced policy would deny) unless `accept_lossy`; then each problem is
    kept in `aset.warnings`, which generate() stamps into the policy."""
    from lsmtrace.record import loss_summary, read_recording

    recs = []
    warnings = []
    for p in paths:
        rec = read_recording(p)
        if rec.trailer is None and rec.error is not None:
            problems = [rec.error.message]  # where it was cut
        else:
            problems = [
                x for x in (loss_summary(rec), rec.error and rec.error.message) if x
            ]
        if problems and not accept_lossy:
            raise RecordingError(
                "; ".join(problems),
                hint=f"record {p} again (a larger --buffer-pages, fewer hooks), or "
                "pass --accept-lossy to use it anyway (the policy then carries "
                "a warning)",
            )
        warnings += problems
        recs.append((rec.header, rec.events, os.path.basename(p)))
    aset = build(recs, include_denied)
    aset.warnings = warnings
    return aset


def _stamp(target: str, text: str, warnings: list[str]) -> str:
    """Warnings about the evidence, written into the policy itself."""
    if not warnings:
        return text
    if target == "landlock":
        doc = json.loads(text)
        doc = {"warnings": warnings, **doc}
        return json.dumps(doc, indent=1, ensure_ascii=True) + "\n"
    head = "".join(
        f"# WARNING: built from an incomplete recording: {w}\n" for w in warnings
    )
    return head + text


def generate(
    target: str, aset: AccessSet, name: str | None = None, filename: str | None = None
) -> str:
    """The policy text. `filename` is where it will be written: the build and
    load instructions in it name that file (else THIS_FILE)."""
    return _stamp(target, _render(target, aset, name, filename), aset.warnings)


def _render(
    target: str, aset: AccessSet, name: str | None, filename: str | None
) -> str:
    if target == "landlock":
        from lsmtrace.policy import landlock

        return landlock.render(aset, name, filename)
    if target == "apparmor":
        from lsmtrace.policy import apparmor

        return apparmor.render(aset, name, filename)
    if target == "selinux":
        from lsmtrace.policy.selinux import render as selinux_render

        return selinux_render(aset, name, filename)
    if target == "tomoyo":
        from lsmtrace.policy import tomoyo

        return tomoyo.render(aset, name, filename)
    raise UsageError(f"unknown target {target!r}", hint=f"one of: {', '.join(TARGETS)}")


def messages(target: str, aset: AccessSet) -> list[str]:
    """What `generate` tells on stderr besides the policy: the names that got
    no rule (warnings), the capabilities not granted and why temporary files
    are granted the way they are (notes). The policy says the same in comments."""
    out = [f"warning: no rule for {ln}" for ln in aset.unplaced_lines()]
    out += [f"note: not granted: {ln}" for ln in aset.quiet_cap_lines()]
    out += [f"note: inferred: {ln}" for ln in aset.inferred_lines()]
    if target == "landlock":
        from lsmtrace.policy import landlock

        out += [f"note: {n}" for n in landlock.temp_notes(aset)]
    return out


def guess_target(text: str) -> str:
    head = text.lstrip()[:4096]
    if head.startswith("{") and '"lsmtrace_landlock"' in head:
        return "landlock"
    if "<kernel>" in head:
        return "tomoyo"
    if "\nmodule " in "\n" + head or head.startswith("module "):
        return "selinux"
    return "apparmor"


@dataclass(frozen=True)
class LoadedPolicy:
    """A policy file read and parsed once: what `check` evaluates recordings
    against and the live audit mode (policy/live.py) evaluates each decision
    against. `parsed` is the target module's parse() result."""

    path: str
    target: str
    text: str
    parsed: Any

    @property
    def name(self) -> str:
        return os.path.basename(self.path)


def load(policy_path: str, target: str | None = None) -> LoadedPolicy:
    """Read and parse a generated policy of any target (`target` guessed from
    the content when not given)."""
    try:
        text = Path(policy_path).read_text(errors="surrogateescape")
    except OSError as e:
        raise LsmtraceError(f"cannot read {policy_path}: {e.strerror}") from e
    target = target or guess_target(text)
    if target == "landlock":
        from lsmtrace.policy import landlock

        parsed: Any = landlock.parse(text, policy_path)
    elif target == "apparmor":
        from lsmtrace.policy import apparmor

        parsed = apparmor.parse(text, policy_path)
    elif target == "tomoyo":
        from lsmtrace.policy import tomoyo

        parsed = tomoyo.parse(text, policy_path)
    elif target == "selinux":
        from lsmtrace.policy import selinux

        parsed = selinux.parse(text, policy_path)
    else:
        raise UsageError(
            f"unknown target {target!r}", hint=f"one of: {', '.join(TARGETS)}"
        )
    return LoadedPolicy(policy_path, target, text, parsed)


def evaluate(policy: LoadedPolicy, aset: AccessSet) -> CheckResult:
    """What the loaded policy would deny of an access set (`policy check`)."""
    if policy.target == "landlock":
        from lsmtrace.policy import landlock

        return landlock.check(policy.parsed, aset)
    if policy.target == "apparmor":
        from lsmtrace.policy import apparmor

        return apparmor.check(policy.parsed, aset)
    if policy.target == "tomoyo":
        from lsmtrace.policy import tomoyo

        return tomoyo.check(policy.parsed, aset)
    from lsmtrace.policy import selinux

    return selinux.check(policy.parsed, aset)


def check(policy_path: str, aset: AccessSet, target: str | None = None) -> CheckResult:
    return evaluate(load(policy_path, target), aset)


__all__ = [
    "TARGETS",
    "AccessSet",
    "CheckResult",
    "LoadedPolicy",
    "check",
    "evaluate",
    "generate",
    "load",
    "load_access_set",
    "messages",
]
