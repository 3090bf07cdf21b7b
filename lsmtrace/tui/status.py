"""The one-line status bar: source, counts, rate, lost and dropped, filter, pause."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from lsmtrace.tui.model import Counters


def status_text(
    source: str,
    c: Counters,
    shown: int,
    held: int,
    rate: float,
    deny_rate: float,
    paused: int | None,
    filtering: bool,
    width: int,
) -> Text:
    t = Text(no_wrap=True, overflow="ellipsis")
    if paused is not None:
        t.append(" PAUSED ", style="bold reverse yellow")
        t.append(f" +{paused} ")
    t.append(f"{source} ", style="bold")
    t.append(f"{c.total} ev ")
    t.append(f"{c.deny} denied", style="bold red" if c.deny else "")
    t.append(f" {rate:.0f}/s")
    if width >= 100:
        t.append(f" ({deny_rate:.1f} denials/s)")
    t.append("  lost ")
    t.append(str(c.lost), style="bold red" if c.lost else "")
    t.append(" dropped ")
    t.append(str(c.dropped), style="bold yellow" if c.dropped else "")
    if filtering or width >= 100:
        t.append(f"  rows {shown}/{held}")
    return t


class StatusBar(Static):
    """Updated by the app after each batch and each tick."""
