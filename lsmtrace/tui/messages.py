"""Messages between the source thread, the widgets and the app."""

from __future__ import annotations

from textual.message import Message

from lsmtrace.tui.model import Filter
from lsmtrace.tui.sources import Batch


class SourceBatch(Message):
    """Posted from the source thread (thread-safe post_message); carries a merged
    batch. The handler must call ``batch.ack()`` so the next one is posted."""

    def __init__(self, batch: Batch) -> None:
        super().__init__()
        self.batch = batch


class FilterChanged(Message):
    """The filter bar's query parsed to a new filter."""

    def __init__(self, flt: Filter) -> None:
        super().__init__()
        self.filter = flt


class SearchSubmitted(Message):
    """Search text entered (the app moves the cursor to the next match)."""

    def __init__(self, text: str, forward: bool = True) -> None:
        super().__init__()
        self.text = text
        self.forward = forward


class RowHighlighted(Message):
    """The events table's cursor moved to the event with this sequence number."""

    def __init__(self, seq: int | None) -> None:
        super().__init__()
        self.seq = seq
