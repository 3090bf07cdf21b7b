"""The top view: event and denial rates, hooks by rate, denials by process and
by container/unit, with sparklines of the last minute (seconds of event time)."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Label, Sparkline

from lsmtrace.output import escape, fit, pad
from lsmtrace.tui.model import Stats

HOOK_ROWS = 6
TABLE_TEXT = 48  # columns of a program/object name in the tables
SPARK_SECONDS = 60


class SparkRow(Horizontal):
    """`label  rate  total  ▁▂▇▅` on one line."""

    def __init__(self, text: str = "", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._text = text

    def compose(self) -> ComposeResult:
        yield Label(self._text, classes="spark-label")
        yield Sparkline([0.0], summary_function=max, classes="spark")

    def set(self, text: str, data: list[int]) -> None:
        self.query_one(Label).update(text)
        self.query_one(Sparkline).data = [float(x) for x in data] or [0.0]


def row_label(name: str, rate: float, total: int, width: int = 20) -> str:
    return f"{pad(fit(escape(name), width), width)} {rate:7.1f}/s {total:>8}"


class TopView(Vertical):
    def compose(self) -> ComposeResult:
        yield Label(
            "RATE (last 5 s) AND TOTAL; SPARKLINES: LAST 60 s", classes="top-title"
        )
        yield SparkRow(id="spark-all")
        yield SparkRow(id="spark-deny")
        yield Label("HOOKS BY RATE", classes="top-title")
        for i in range(HOOK_ROWS):
            yield SparkRow(id=f"spark-hook-{i}", classes="hook-row")
        with Horizontal(id="top-tables"):
            yield DataTable(id="deny-programs", cursor_type="row", zebra_stripes=False)
            yield DataTable(id="deny-objects", cursor_type="row", zebra_stripes=False)
            yield DataTable(id="deny-where", cursor_type="row", zebra_stripes=False)

    def on_mount(self) -> None:
        for table, title in (
            ("#deny-programs", "DENIED PROGRAM"),
            ("#deny-objects", "DENIED OBJECT"),
            ("#deny-where", "CONTAINER/UNIT"),
        ):
            self.query_one(table, DataTable).add_columns(title, "N")

    def update_from(self, stats: Stats, now_ns: int) -> None:
        self.query_one("#spark-all", SparkRow).set(
            row_label("all events", stats.rate("*", now_ns), stats.counters.total),
            stats.series("*", now_ns, SPARK_SECONDS),
        )
        self.query_one("#spark-deny", SparkRow).set(
            row_label("denials", stats.rate("deny", now_ns), stats.counters.deny),
            stats.series("deny", now_ns, SPARK_SECONDS),
        )
        top = stats.top_hooks(now_ns, HOOK_ROWS)
        for i in range(HOOK_ROWS):
            row = self.query_one(f"#spark-hook-{i}", SparkRow)
            if i < len(top):
                hook, rate, total = top[i]
                row.display = True
                row.set(
                    row_label(hook, rate, total),
                    stats.series("hook:" + hook, now_ns, SPARK_SECONDS),
                )
            else:
                row.display = False
        for table, counter in (
            ("#deny-programs", stats.deny_by_program),
            ("#deny-objects", stats.deny_by_object),
            ("#deny-where", stats.deny_by_where),
        ):
            t = self.query_one(table, DataTable)
            t.clear()
            rows = counter.most_common(50)
            for name, n in rows:  # paths: their end names the file
                t.add_row(fit(name, TABLE_TEXT, keep_end=True), str(n))
            if not rows:
                t.add_row("(none in events)", "")
