"""`lsmtrace tui` argument parsing (lsmtrace/commands/tui.py)."""

from __future__ import annotations

import argparse

import pytest

from lsmtrace.commands import tui as cli
from lsmtrace.errors import PrivilegeError, UsageError


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lsmtrace")
    cli.add_parser(p.add_subparsers(dest="command"))
    return p


def test_parser() -> None:
    args = parser().parse_args(
        ["tui", "--replay", "x.jsonl", "--history", "10", "--denied", "--comm", "cat"]
    )
    assert args.func is cli.run
    assert (args.replay, args.history, args.denied, args.comm) == (
        "x.jsonl",
        10,
        True,
        "cat",
    )
    sub = parser()._subparsers._group_actions[0].choices["tui"]  # type: ignore[union-attr]
    assert "examples:" in sub.format_help()


def test_bad_history() -> None:
    with pytest.raises(UsageError):
        cli.run(parser().parse_args(["tui", "--replay", "x", "--history", "0"]))


def test_missing_recording_fails_before_the_screen(tmp_path: object) -> None:
    from lsmtrace.errors import RecordingError

    with pytest.raises(RecordingError):
        cli.run(parser().parse_args(["tui", "--replay", "/nonexistent/r.jsonl"]))


def test_live_needs_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    with pytest.raises(PrivilegeError):
        cli.run(parser().parse_args(["tui"]))


def test_log_path_respects_xdg(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", "/x/cache")
    assert str(cli.default_log_path()) == "/x/cache/lsmtrace/tui.log"


def test_history_default_matches_the_model() -> None:
    from lsmtrace.tui.model import DEFAULT_HISTORY

    assert cli.DEFAULT_HISTORY == DEFAULT_HISTORY
