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
    # one segment per fact, each "value unit" or "name value", separated by
    # " | " so that no two segments ever run together
    segments: list[tuple[str, str]] = [
        (f"{c.total} ev", ""),
        (f"{c.deny} denied", "bold red" if c.deny else ""),
        *([(f"{c.would_deny} would-deny", "bold magenta")] if c.would_deny else []),
        (f"lost {c.lost}", "bold red" if c.lost else ""),
        (f"dropped {c.dropped}", "bold yellow" if c.dropped else ""),
        (
            f"{rate:.0f} ev/s"
            + (f" ({deny_rate:.1f} denied/s)" if width >= 100 else ""),
            "",
        ),
    ]
    if filtering or width >= 100:
        segments.append((f"rows {shown}/{held}", ""))
    for i, (text, style) in enumerate(segments):
        if i:
            t.append(" | ", style="dim")
        t.append(text, style=style)
    return t


class StatusBar(Static):
    """Updated by the app after each batch and each tick."""
