"""The filter bar: a query applied live (debounced) and a search box."""

from __future__ import annotations

from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.timer import Timer
from textual.widgets import Input, Label

from lsmtrace.tui.messages import FilterChanged, SearchSubmitted
from lsmtrace.tui.model import Filter

FILTER_HELP = "hook: verdict: lsm: pid: comm: container: unit: would_deny: path (bare words); -key:v"


class FilterBar(Horizontal):
    """`Filter: [query] Search: [text]`; posts FilterChanged / SearchSubmitted."""

    DEBOUNCE = 0.2

    def __init__(self, blink: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.blink = blink
        self.denied_only = False
        self.would_deny_only = False
        self.error: str | None = None
        self._timer: Timer | None = None

    def compose(self) -> ComposeResult:
        yield Label("Filter ", classes="bar-label")
        f = Input(placeholder="e.g. verdict:deny comm:cat /etc  (? help)", id="filter")
        f.cursor_blink = self.blink
        yield f
        yield Label(" Search ", classes="bar-label")
        s = Input(placeholder="text", id="search")
        s.cursor_blink = self.blink
        yield s

    @property
    def query_text(self) -> str:
        return self.query_one("#filter", Input).value

    def current(self) -> Filter:
        return Filter.parse(self.query_text, self.denied_only, self.would_deny_only)

    def set_denied_only(self, on_: bool) -> None:
        self.denied_only = on_
        self._apply()

    def set_would_deny_only(self, on_: bool) -> None:
        """Only the decisions the candidate policy (--policy) would deny."""
        self.would_deny_only = on_
        self._apply()

    def set_query(self, text: str) -> None:
        """Replace the query (tests, and the app's quick filters)."""
        self.query_one("#filter", Input).value = text
        self._apply()

    @on(Input.Changed, "#filter")
    def _changed(self, event: Input.Changed) -> None:
        event.stop()
        if self._timer is not None:
            self._timer.stop()
        self._timer = self.set_timer(self.DEBOUNCE, self._apply)

    @on(Input.Submitted, "#filter")
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if self._timer is not None:
            self._timer.stop()
        self._apply()
        self.app.action_focus_table()  # type: ignore[attr-defined]

    def _apply(self) -> None:
        inp = self.query_one("#filter", Input)
        try:
            flt = self.current()
        except ValueError as e:
            self.error = str(e)
            inp.add_class("error")
            inp.tooltip = self.error
            self.app.notify(self.error, severity="warning", timeout=3)
            return
        self.error = None
        inp.remove_class("error")
        inp.tooltip = None
        self.post_message(FilterChanged(flt))

    @on(Input.Submitted, "#search")
    def _search(self, event: Input.Submitted) -> None:
        event.stop()
        self.post_message(SearchSubmitted(event.value))
        self.app.action_focus_table()  # type: ignore[attr-defined]
