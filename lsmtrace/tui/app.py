"""The Textual app: wiring only. Widgets live one per module; data in model.py.

The source (live tracer or recording) runs in a Textual thread worker and posts
SourceBatch messages (app.post_message is thread-safe); nothing in that thread
touches the terminal. Each batch is acknowledged after it is applied, which lets
the source post the next one (sources.Coalescer: ≤ ~10 posts/s, bounded).
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

from textual import on
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.widgets import ContentSwitcher, Footer, Input
from textual.worker import get_current_worker

from lsmtrace.tui.detail import DetailPane
from lsmtrace.tui.events_table import EventsHeader, EventsTable
from lsmtrace.tui.filter_bar import FilterBar
from lsmtrace.tui.help import HelpScreen
from lsmtrace.tui.messages import (
    FilterChanged,
    RowHighlighted,
    SearchSubmitted,
    SourceBatch,
)
from lsmtrace.tui.model import DEFAULT_HISTORY, EventDict, EventStore, Stats
from lsmtrace.tui.proctree_view import ProcTreeView
from lsmtrace.tui.sources import Coalescer, Source
from lsmtrace.tui.status import StatusBar, status_text
from lsmtrace.tui.top import TopView

log = logging.getLogger(__name__)


SWITCH_INTERVAL = 0.001
VIEWS = {"events": "events-view", "top": "top", "tree": "tree"}


class LsmtraceApp(App[int]):
    CSS_PATH = "tui.tcss"
    TITLE = "lsmtrace"
    ENABLE_COMMAND_PALETTE = False
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit"),
        Binding("ctrl+c", "quit", "Quit", show=False, priority=True),
        Binding("question_mark", "help", "Help"),
        Binding("f", "focus_filter", "Filter"),
        Binding("slash", "search", "Search"),
        Binding("space", "toggle_pause", "Pause"),
        Binding("d", "toggle_denied", "Denied"),
        Binding("w", "toggle_would_deny", "Would deny", show=False),
        Binding("1", "view('events')", "Events"),
        Binding("2", "view('top')", "Top"),
        Binding("3", "view('tree')", "Tree"),
        Binding("n", "search_next(1)", "Next", show=False),
        Binding("N", "search_next(-1)", "Prev", show=False),
        Binding("c", "clear", "Clear", show=False),
        Binding("enter", "focus_detail", "Detail", show=False),
        Binding("escape", "focus_table", "Table", show=False),
    ]

    def __init__(
        self,
        source: Source,
        history: int = DEFAULT_HISTORY,
        blink: bool = True,
        now_ns: Callable[[], int] | None = None,
        batch_interval: float = 0.1,
        tick_interval: float = 1.0,
        max_batch: int = 20_000,
    ) -> None:
        super().__init__()
        self.source = source
        self.history = history
        self.blink = blink
        self.store = EventStore(history)
        self.stats = Stats()
        self._now_ns = now_ns
        self.batch_interval = batch_interval
        self.tick_interval = tick_interval
        self.max_batch = max_batch
        self._stop = threading.Event()
        self._held: deque[EventDict] = deque(maxlen=history)
        self.paused = False
        self.source_status = f"{source.name}: starting"
        self.source_error: str | None = None
        self.source_done = False
        self.batches = 0
        self.search_text = ""
        self._show_where = False
        self.coalescer: Coalescer | None = None
        self._switch_interval = sys.getswitchinterval()

    # -- layout -------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield StatusBar(id="status")
        yield FilterBar(blink=self.blink, id="filter-bar")
        with ContentSwitcher(initial="events-view"):
            with Vertical(id="events-view"):
                yield EventsHeader(id="events-header")
                yield EventsTable(self.store, id="events")
                yield DetailPane(id="detail")
            yield TopView(id="top")
            yield ProcTreeView(id="tree")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        # The source thread is CPU-bound in a flood (decoding, JSON parsing);
        # every hop of a key press through Textual's message pumps then waits
        # for the GIL up to the switch interval. 1 ms instead of 5 keeps keys
        # responsive (measured by tests/tui/test_flood.py). Restored on unmount.
        self._switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(min(self._switch_interval, SWITCH_INTERVAL))
        self.query_one(EventsTable).focus()
        self._update_header()
        self._update_status()
        self.set_interval(self.tick_interval, self._tick)
        self.run_worker(
            self._source_thread,
            thread=True,
            name="source",
            group="source",
            exit_on_error=False,
        )

    def on_unmount(self) -> None:
        self._stop.set()
        sys.setswitchinterval(self._switch_interval)

    # -- the source thread --------------------------------------------------------
    def _source_thread(self) -> None:
        worker = get_current_worker()

        def should_stop() -> bool:
            return self._stop.is_set() or worker.is_cancelled

        co = Coalescer(
            lambda b: self.post_message(SourceBatch(b)),
            maxlen=self.history,
            interval=self.batch_interval,
            max_batch=self.max_batch,
            block=self.source.block,
        )
        self.coalescer = co
        try:
            self.source.run(co, should_stop)
        except Exception as e:
            log.exception("source %s failed", self.source.name)
            co.finish(should_stop, error=f"{type(e).__name__}: {e}")

    def on_source_batch(self, message: SourceBatch) -> None:
        b = message.batch
        try:
            self.batches += 1
            c = self.stats.counters
            if b.status:
                self.source_status = b.status
            if b.lost is not None:
                c.lost = b.lost
            c.dropped += b.dropped
            if b.error:
                self.source_error = b.error
                log.error("source: %s", b.error)
                self.notify(
                    b.error, title="source failed", severity="error", timeout=30
                )
            if b.events:
                self.stats.add(b.events)
                if not self._show_where and any(
                    e.get("container") or e.get("unit") for e in b.events
                ):
                    self._show_where = True
                    self.query_one(EventsTable).set_show_where(True)
                    self._update_header()
                if self.paused:
                    room = self.history - len(self._held)
                    if len(b.events) > room:
                        c.dropped += len(b.events) - room
                    self._held.extend(b.events)
                else:
                    self._ingest(b.events)
            if b.done:
                self.source_done = True
        finally:
            b.ack()
        self._update_status()

    def _ingest(self, events: Sequence[EventDict]) -> None:
        _added, evicted = self.store.add(events)
        self.query_one(EventsTable).rows_changed(evicted)

    # -- periodic -----------------------------------------------------------------
    def now_ns(self) -> int:
        if self._now_ns is not None:
            return self._now_ns()
        if self.source.name == "live":
            return time.monotonic_ns()  # the clock of bpf_ktime_get_ns
        return self.stats.latest_ns

    def _tick(self) -> None:
        self._update_status()
        current = self.query_one(ContentSwitcher).current
        if current == "top":
            self.query_one(TopView).update_from(self.stats, self.now_ns())
        elif current == "tree":
            self.query_one(ProcTreeView).update_from(self.stats)

    def _update_status(self) -> None:
        now = self.now_ns()
        width = self.size.width or 80
        text = status_text(
            self.source_status if not self.source_error else "source failed",
            self.stats.counters,
            self.store.view_len,
            len(self.store),
            self.stats.rate("*", now),
            self.stats.rate("deny", now),
            len(self._held) if self.paused else None,
            self.store.filter.active,
            width,
        )
        self.query_one(StatusBar).update(text)

    def _update_header(self) -> None:
        table = self.query_one(EventsTable)
        width = table.scrollable_content_region.width or self.size.width or 80
        self.query_one(EventsHeader).set_columns(width, self._show_where)

    def on_resize(self) -> None:
        self.call_after_refresh(self._update_header)

    # -- messages from widgets ----------------------------------------------------
    @on(RowHighlighted)
    def _row(self, message: RowHighlighted) -> None:
        ev = self.store.get(message.seq) if message.seq is not None else None
        self.query_one(DetailPane).show(ev)

    @on(FilterChanged)
    def _filter(self, message: FilterChanged) -> None:
        self.store.set_filter(message.filter)
        self.query_one(EventsTable).refilter()
        self._update_status()

    @on(SearchSubmitted)
    def _search(self, message: SearchSubmitted) -> None:
        self.search_text = message.text
        self.action_search_next(1 if message.forward else -1)

    # -- actions ------------------------------------------------------------------
    async def action_quit(self) -> None:
        self._stop.set()
        self.exit(0)

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def action_focus_filter(self) -> None:
        self.action_view("events")
        self.query_one("#filter", Input).focus()

    def action_search(self) -> None:
        self.action_view("events")
        self.query_one("#search", Input).focus()

    def action_focus_table(self) -> None:
        if self.query_one(ContentSwitcher).current == "events-view":
            self.query_one(EventsTable).focus()
        else:
            self.action_view("events")

    def action_focus_detail(self) -> None:
        if self.query_one(ContentSwitcher).current == "events-view":
            self.query_one(DetailPane).focus()

    def action_toggle_pause(self) -> None:
        self.paused = not self.paused
        if not self.paused and self._held:
            held = list(self._held)
            self._held.clear()
            self._ingest(held)
        self._update_status()

    def action_toggle_denied(self) -> None:
        bar = self.query_one(FilterBar)
        bar.set_denied_only(not bar.denied_only)

    def action_toggle_would_deny(self) -> None:
        bar = self.query_one(FilterBar)
        bar.set_would_deny_only(not bar.would_deny_only)

    def action_view(self, name: str) -> None:
        switcher = self.query_one(ContentSwitcher)
        switcher.current = VIEWS[name]
        if name == "events":
            self.query_one(EventsTable).focus()
        elif name == "top":
            self.query_one(TopView).update_from(self.stats, self.now_ns())
        else:
            tree = self.query_one(ProcTreeView)
            tree.update_from(self.stats)
            tree.focus()

    def action_search_next(self, direction: int) -> None:
        table = self.query_one(EventsTable)
        if not self.search_text:
            self.action_search()
            return
        start = table.cursor_index
        if start is None:
            start = -1 if direction > 0 else 0
        found = self.store.search(self.search_text, start, forward=direction > 0)
        if found is None:
            self.notify(f"not found: {self.search_text}", severity="warning", timeout=2)
            return
        table.select_index(found)
        table.focus()

    def action_clear(self) -> None:
        self.store.clear()
        self.stats.clear()
        self._held.clear()
        table = self.query_one(EventsTable)
        table.cursor_seq = None
        table.follow = True
        table.rows_changed()
        self.query_one(DetailPane).show(None)
        self._update_status()

    # -- for tests ----------------------------------------------------------------
    def selected_event(self) -> dict[str, Any] | None:
        seq = self.query_one(EventsTable).cursor_seq
        return self.store.get(seq) if seq is not None else None
