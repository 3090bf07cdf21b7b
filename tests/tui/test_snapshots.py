"""Snapshots of the main screens at 80x24 and 120x40 (pytest-textual-snapshot).

Deterministic: fixed recordings, rates over event time, the refresh tick frozen,
no cursor blink. Update after an intended change with
`pytest tests/tui/test_snapshots.py --snapshot-update` and review the SVGs.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tui_support import AUDITED, DENIALS, LSMS, loaded, make_app

pytest.importorskip("pytest_textual_snapshot", reason="pytest-textual-snapshot missing")

SIZES = [(80, 24), (120, 40)]


def before(*keys: str) -> Callable[[Any], Any]:
    async def run(pilot: Any) -> None:
        await loaded(pilot)
        for k in keys:
            await pilot.press(k)
            await pilot.pause(0.3)  # past the filter bar's debounce
        await pilot.pause(0.1)

    return run


CASES: dict[str, tuple[Path, tuple[str, ...]]] = {
    "events": (DENIALS, ()),
    "denied": (DENIALS, ("d",)),
    "lsms_selected": (LSMS, ("home",)),
    "top": (LSMS, ("2",)),
    "tree": (DENIALS, ("3",)),
    "help": (LSMS, ("question_mark",)),
    # the detail pane from the LSM's own audit record, and a would-deny row
    "audited_selected": (AUDITED, ("home",)),
    "would_deny": (AUDITED, ("w", "home")),
}


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("case", list(CASES))
def test_screen(snap_compare: Any, case: str, size: tuple[int, int]) -> None:
    path, keys = CASES[case]
    assert snap_compare(make_app(path), terminal_size=size, run_before=before(*keys))
