"""The live event table: a line-API scroll view over the bounded history.

Only the visible lines are formatted (Textual's line API), so 50 000 rows cost
no more to draw than 20. The cursor is held as an event sequence number, so it
stays on its event while old events are evicted from the history or the filter
changes. Tail-follow: at the last row the cursor follows new events; moving up
stops following, End (or G) resumes it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from rich.segment import Segment
from rich.style import Style
from textual.binding import Binding, BindingType
from textual.events import Click
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widgets import Static

from lsmtrace.output import escape, fit, pad, result_text, time_text
from lsmtrace.tui.messages import RowHighlighted
from lsmtrace.tui.model import EventStore, object_summary, where


def columns(width: int, show_where: bool) -> list[tuple[str, int]]:
    """(title, width) of each column for a screen width; OBJECT takes the rest."""
    cols = [("TIME", 8)] if width >= 100 else []
    cols += [
        ("PID", 7),
        ("COMM", 15 if width >= 100 else 12),
        ("HOOK", 16),
        ("RESULT", 17),
    ]
    if show_where and width >= 100:
        cols.append(("CONTAINER/UNIT", 18))
    used = sum(w + 1 for _t, w in cols)
    cols.append(("OBJECT", max(0, width - used)))
    return cols


def cells(ev: Mapping[str, Any], cols: list[tuple[str, int]]) -> str:
    out = []
    for title, w in cols:
        if title == "TIME":
            s = time_text(ev)
        elif title == "PID":
            s = str(ev.get("tgid", ev.get("pid", "")))
        elif title == "COMM":
            s = escape(str(ev.get("comm", "")))
        elif title == "HOOK":
            s = str(ev.get("hook", ""))
        elif title == "RESULT":
            s = result_text(ev)
        elif title == "OBJECT":
            obj = ev.get("object") or {}
            keep_end = isinstance(obj, Mapping) and ("path" in obj or "filename" in obj)
            out.append(fit(object_summary(ev), w, keep_end=keep_end))
            continue
        else:
            s = where(ev)
        out.append(pad(fit(s, w), w))
    return " ".join(out)


def header_text(width: int, show_where: bool) -> str:
    return " ".join(pad(t, w) for t, w in columns(width, show_where))[:width]


class EventsHeader(Static):
    """The column titles above the table."""

    def set_columns(self, width: int, show_where: bool) -> None:
        self.update(header_text(width, show_where))


class EventsTable(ScrollView, can_focus=True):
    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "events-table--deny",
        "events-table--error",
        "events-table--would-deny",
        "events-table--cursor",
    }
    DEFAULT_CSS = """
    EventsTable > .events-table--deny { color: $error; text-style: bold; }
    EventsTable > .events-table--would-deny { color: magenta; text-style: bold; }
    EventsTable > .events-table--error { color: $warning; }
    EventsTable > .events-table--cursor { background: $accent; color: $text; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up,k", "cursor(-1)", "Up", show=False),
        Binding("down,j", "cursor(1)", "Down", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("home,g", "first", "First", show=False),
        Binding("end,G", "follow", "Follow", show=False),
    ]

    def __init__(self, store: EventStore, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.store = store
        self.cursor_seq: int | None = None
        self.follow = True
        self.show_where = False
        self._cols: list[tuple[str, int]] = []
        self._cols_width = -1

    # -- data -------------------------------------------------------------------
    def rows_changed(self, evicted: int = 0) -> None:
        """Call after the store changed (events added/evicted, filter changed)."""
        n = self.store.view_len
        self.virtual_size = Size(self.size.width, n)
        if self.follow and n:
            self._move_to(n - 1)
        else:
            if evicted and self.scroll_offset.y:
                self.scroll_to(y=max(0, self.scroll_offset.y - evicted), animate=False)
            if self.cursor_seq is not None and self.store.get(self.cursor_seq) is None:
                self._move_to(self.store.nearest_view_index(self.cursor_seq))
        self.refresh()

    def refilter(self) -> None:
        """After store.set_filter: keep the cursor on its event, or the nearest."""
        n = self.store.view_len
        self.virtual_size = Size(self.size.width, n)
        if not n:
            self.cursor_seq = None
            self.post_message(RowHighlighted(None))
        elif self.follow or self.cursor_seq is None:
            self._move_to(n - 1)
        else:
            self._move_to(self.store.nearest_view_index(self.cursor_seq))
        self.refresh()

    @property
    def cursor_index(self) -> int | None:
        if self.cursor_seq is None or not self.store.view_len:
            return None
        idx = self.store.view_index(self.cursor_seq)
        return (
            idx if idx is not None else self.store.nearest_view_index(self.cursor_seq)
        )

    def _move_to(self, index: int) -> None:
        n = self.store.view_len
        if not n:
            return
        index = max(0, min(index, n - 1))
        seq = self.store.view_seq(index)
        changed = seq != self.cursor_seq
        self.cursor_seq = seq
        self._ensure_visible()
        # the virtual size may only apply at the next layout: check again then
        self.call_after_refresh(self._after_layout)
        if changed:
            self.post_message(RowHighlighted(seq))
        self.refresh()

    def _ensure_visible(self) -> None:
        index = self.cursor_index
        if index is None:
            return
        height = max(1, self.scrollable_content_region.height)
        top = self.scroll_offset.y
        if index < top:
            self.scroll_to(y=index, animate=False, force=True, immediate=True)
        elif index >= top + height:
            self.scroll_to(
                y=index - height + 1, animate=False, force=True, immediate=True
            )

    def _after_layout(self) -> None:
        self._ensure_visible()
        # a scrollbar shown by this layout missed the scroll made before it
        if self.show_vertical_scrollbar:
            self.vertical_scrollbar.position = round(self.scroll_offset.y)

    def select_index(self, index: int) -> None:
        self.follow = index >= self.store.view_len - 1
        self._move_to(index)

    # -- actions ------------------------------------------------------------------
    def action_cursor(self, delta: int) -> None:
        idx = self.cursor_index
        target = (self.store.view_len - 1 if idx is None else idx) + delta
        self.select_index(target)

    def action_page(self, direction: int) -> None:
        self.action_cursor(
            direction * max(1, self.scrollable_content_region.height - 1)
        )

    def action_first(self) -> None:
        self.select_index(0)

    def action_follow(self) -> None:
        self.follow = True
        self._move_to(self.store.view_len - 1)

    def on_click(self, event: Click) -> None:
        self.focus()
        self.select_index(self.scroll_offset.y + event.y)

    # -- drawing ------------------------------------------------------------------
    def columns_for(self, width: int) -> list[tuple[str, int]]:
        if width != self._cols_width:
            self._cols = columns(width, self.show_where)
            self._cols_width = width
        return self._cols

    def set_show_where(self, show: bool) -> None:
        if show != self.show_where:
            self.show_where = show
            self._cols_width = -1
            self.refresh()

    def on_resize(self) -> None:
        self.virtual_size = Size(self.size.width, self.store.view_len)
        if self.follow and self.store.view_len:
            self._move_to(self.store.view_len - 1)

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width or self.size.width
        index = self.scroll_offset.y + y
        ev = self.store.view_event(index)
        base = self.rich_style
        if ev is None:
            return Strip.blank(width, base)
        text = cells(ev, self.columns_for(width))
        style: Style = base
        verdict = ev.get("verdict")
        if verdict == "deny":
            style = base + self.get_component_rich_style(
                "events-table--deny", partial=True
            )
        elif "would_deny" in ev:
            style = base + self.get_component_rich_style(
                "events-table--would-deny", partial=True
            )
        elif verdict == "error":
            style = base + self.get_component_rich_style(
                "events-table--error", partial=True
            )
        if (
            self.cursor_seq is not None
            and self.store.view_seq(index) == self.cursor_seq
        ):
            style = style + self.get_component_rich_style(
                "events-table--cursor", partial=True
            )
        return Strip([Segment(pad(text, width), style)]).crop(0, width)
