"""Fixtures of tests/tui: the app on fixed recordings, deterministic.

- Recordings: tests/data/tui/denials.jsonl (real events captured on this host's
  tracepoint rung, trimmed) and lsms.jsonl (hand-made: AppArmor, SELinux,
  Landlock, Yama, DAC deciders, with container/unit/ancestors).
- Clocks: a replay's "now" is the newest event's ts_ns (never the wall clock);
  the tick that refreshes rates is slowed to 1 h so nothing changes between two
  frames; cursor blink is off (blink=False).
- `ScriptedSource`: a source the test feeds by hand (pause tests).
"""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import pytest
from tui_support import DENIALS, LSMS, load_events

# Shared helpers live in tui_support.py: a test module importing "conftest"
# gets whichever conftest pytest loaded first (tests/bpf has one too).
__all__ = ["DENIALS", "LSMS", "load_events"]


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Run `async def` tests with asyncio.run (no async plugin needed)."""
    if not inspect.iscoroutinefunction(pyfuncitem.obj):
        return None
    names = pyfuncitem._fixtureinfo.argnames
    asyncio.run(pyfuncitem.obj(**{n: pyfuncitem.funcargs[n] for n in names}))
    return True


@pytest.fixture
def denial_events() -> list[dict[str, Any]]:
    return load_events(DENIALS)


@pytest.fixture
def lsm_events() -> list[dict[str, Any]]:
    return load_events(LSMS)
