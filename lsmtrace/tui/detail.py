"""The detail pane: the explanation, the ancestry, the syscall and every field."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from lsmtrace.output import escape
from lsmtrace.tui.explain import explain
from lsmtrace.tui.model import ancestor_text, ancestors_root_first, label, proc_text

FIELD_ORDER = (
    "time",
    "ts_ns",
    "rung",
    "kind",
    "hook",
    "family",
    "verdict",
    "ret",
    "errno",
    "lsm",
    "pid",
    "tgid",
    "ppid",
    "uid",
    "euid",
    "gid",
    "comm",
    "cgroup",
    "mntns",
    "syscall",
    "latency_ns",
    "truncated",
)


def _value(v: Any) -> str:
    if isinstance(v, str):
        return escape(v)
    if isinstance(v, (Mapping, list)):
        return escape(json.dumps(v, ensure_ascii=True, default=str))
    return "null" if v is None else str(v)


def detail_text(ev: Mapping[str, Any]) -> Text:
    t = Text()
    verdict = ev.get("verdict")
    head = {"deny": "bold red", "error": "yellow", "allow": "green"}.get(
        str(verdict), ""
    )
    for i, line in enumerate(explain(ev)):
        if i == 0:
            t.append(line + "\n", style=head)
        elif line.startswith("Would deny"):
            t.append(line + "\n", style="bold magenta")
        elif line.startswith(("Rule", "Who", "Audit record")):
            t.append(line + "\n", style="bold")
        else:
            t.append(line + "\n")
    t.append("\nProcess  ", style="bold")
    t.append(
        f"{proc_text(ev)} pid {ev.get('pid')} ppid {ev.get('ppid')} "
        f"uid {ev.get('uid')} euid {ev.get('euid')} gid {ev.get('gid')}\n"
    )
    for key in ("container", "unit"):
        if ev.get(key) is not None:
            t.append(f"{key.capitalize():<8} ", style="bold")
            t.append(f"{label(ev[key])}\n")
    anc = ancestors_root_first(ev)
    t.append("Ancestry ", style="bold")
    if anc:
        t.append(" > ".join([*(ancestor_text(a) for a in anc), proc_text(ev)]) + "\n")
    else:
        t.append(f"parent pid {ev.get('ppid')} (no ancestors in this event)\n")
    t.append("Syscall  ", style="bold")
    t.append(f"{ev.get('syscall') or '-'}\n")
    t.append("\nFields\n", style="bold")
    for key in FIELD_ORDER:
        if key in ev:
            t.append(f"  {key:<11}", style="dim")
            t.append(_value(ev[key]) + "\n")
    obj = ev.get("object") or {}
    if isinstance(obj, Mapping):
        for k, v in obj.items():
            t.append(f"  object.{escape(str(k)):<4} ", style="dim")
            t.append(_value(v) + "\n")
    for key, v in ev.items():
        if key not in FIELD_ORDER and key not in (
            "object",
            "container",
            "unit",
            "ancestors",
        ):
            t.append(f"  {escape(str(key)):<11}", style="dim")
            t.append(_value(v) + "\n")
    if "ancestors" in ev:
        t.append("  ancestors  ", style="dim")
        t.append(_value(ev["ancestors"]) + "\n")
    t.rstrip()
    return t


class DetailPane(VerticalScroll, can_focus=True):
    """Shows the selected event (the app calls show())."""

    def compose(self) -> ComposeResult:
        yield Static("No event selected.", id="detail-body")

    def show(self, ev: Mapping[str, Any] | None) -> None:
        body = self.query_one("#detail-body", Static)
        if ev is None:
            body.update("No event selected.")
        else:
            body.update(detail_text(ev))
        self.scroll_home(animate=False)
