"""Pilot tests on replayed recordings: filters, pause, selection, detail, explain."""

from __future__ import annotations

from typing import Any

from textual.widgets import ContentSwitcher, Input, Static
from tui_support import LSMS, ScriptedSource, load_events, loaded, make_app, wait_for

from lsmtrace.tui.app import LsmtraceApp
from lsmtrace.tui.detail import DetailPane
from lsmtrace.tui.events_table import EventsTable
from lsmtrace.tui.status import StatusBar


def detail(app: LsmtraceApp) -> str:
    return str(app.query_one(DetailPane).query_one("#detail-body", Static).render())


def status(app: LsmtraceApp) -> str:
    return str(app.query_one(StatusBar).render())


async def test_replay_loads_everything() -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot)
        assert len(app.store) == 686
        assert app.store.view_len == 686
        assert app.stats.counters.deny == 193
        assert app.source_error is None
        assert "686 ev" in status(app)
        assert "193 denied" in status(app)
        # tail-follow: the cursor is on the newest event
        assert app.query_one(EventsTable).cursor_seq == 685


async def test_denied_toggle_and_filter_typing() -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot)
        await pilot.press("d")
        await pilot.pause()
        assert app.store.view_len == 193
        assert all(
            app.store.view_event(i)["verdict"] == "deny"  # type: ignore[index]
            for i in range(app.store.view_len)
        )
        await pilot.press("f")
        assert app.focused is app.query_one("#filter", Input)
        await pilot.press(*"comm:cat /etc/shadow")
        await wait_for(
            pilot,
            lambda: app.store.filter.describe() == "denied comm:cat path:/etc/shadow",
        )
        evs = [app.store.view_event(i) for i in range(app.store.view_len)]
        assert len(evs) == 1
        assert evs[0] is not None
        assert evs[0]["object"]["path"] == "/etc/shadow"
        await pilot.press("enter")  # back to the table
        assert isinstance(app.focused, EventsTable)
        await pilot.press("d")  # denied off: the allowed/failed /etc/shadow rows too
        await pilot.pause()
        assert app.store.filter.describe() == "comm:cat path:/etc/shadow"


async def test_bad_filter_is_flagged_and_ignored() -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot)
        await pilot.press("f", *"bogus:1", "enter")
        await pilot.pause()
        assert app.query_one("#filter", Input).has_class("error")
        assert app.store.view_len == 686


async def test_selection_and_detail_pane_explain() -> None:
    app = make_app(LSMS)
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot)
        await pilot.press("home")
        ev = app.selected_event()
        assert ev is not None
        assert ev["lsm"] == "apparmor"
        text = detail(app)
        assert "DENIED   file_open EACCES: nginx[4100]" in text
        assert "Who: AppArmor." in text
        assert '"/srv/www/secret.conf" r,' in text
        assert "systemd[1] > containerd-shim[3900] > nginx[4000] > nginx[4100]" in text
        assert "Container web-1" in text
        await pilot.press("down", "down")
        assert app.selected_event()["hook"] == "selinux_audited"  # type: ignore[index]
        assert "allow httpd_t user_home_t:file { read };" in detail(app)
        assert not app.query_one(EventsTable).follow
        await pilot.press("end")
        assert app.query_one(EventsTable).follow
        assert app.selected_event()["verdict"] == "error"  # type: ignore[index]
        assert "not a security decision" in detail(app)


async def test_search_and_next() -> None:
    app = make_app(LSMS)
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot)
        await pilot.press("slash", *"nginx", "enter")
        await pilot.pause()
        first = app.selected_event()
        assert first is not None
        assert first["comm"] == "nginx"
        assert first["tgid"] == 4100
        await pilot.press("n")
        assert app.selected_event()["tgid"] == 4101  # type: ignore[index]
        await pilot.press("N", "N")
        assert app.selected_event()["tgid"] == 4107  # type: ignore[index]  # wrapped


async def test_pause_holds_events_then_resume() -> None:
    src = ScriptedSource()
    app = LsmtraceApp(src, blink=False, tick_interval=3600)
    events = load_events(LSMS)
    async with app.run_test(size=(80, 24)) as pilot:
        src.feed(events[:4])
        await wait_for(pilot, lambda: app.store.view_len == 4)
        await pilot.press("space")
        assert app.paused
        src.feed(events[4:])
        await wait_for(pilot, lambda: app.stats.counters.total == 10)
        assert app.store.view_len == 4  # the table is frozen
        assert "PAUSED" in status(app)
        assert "+6" in status(app)
        await pilot.press("space")
        assert not app.paused
        assert app.store.view_len == 10
        src.end()
        await wait_for(pilot, lambda: app.source_done)


async def test_views_and_help() -> None:
    app = make_app(LSMS)
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot)
        await pilot.press("2")
        assert app.query_one(ContentSwitcher).current == "top"
        await pilot.press("3")
        assert app.query_one(ContentSwitcher).current == "tree"
        labels = [str(n.label) for n in app.query_one("#tree").root.children]  # type: ignore[attr-defined]
        assert labels == ["systemd[1]"]
        await pilot.press("question_mark")
        assert app.screen.__class__.__name__ == "HelpScreen"
        await pilot.press("escape")
        assert app.screen.__class__.__name__ != "HelpScreen"
        await pilot.press("1")
        assert app.query_one(ContentSwitcher).current == "events-view"


async def test_container_column_appears_when_wide() -> None:
    app = make_app(LSMS)
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot)
        header = str(app.query_one("#events-header", Static).render())
        assert "CONTAINER/UNIT" in header
        assert "TIME" in header


async def test_quit_stops_the_source_thread() -> None:
    src = ScriptedSource()
    app = LsmtraceApp(src, blink=False, tick_interval=3600)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.1)
        await pilot.press("q")
    assert app._stop.is_set()


def _unused(*_: Any) -> None:
    return None


async def test_policy_would_deny_toggle_and_detail(tmp_path: Any) -> None:
    """tui --replay with --policy: the candidate policy (here Landlock, from
    the same recording, /etc/app.conf's rule taken out) marks what it lacks;
    `w` shows only those, the detail pane shows the rule."""
    import json

    from tui_support import REPO

    from lsmtrace.policy import generate, load, load_access_set
    from lsmtrace.policy.live import LiveCheck
    from lsmtrace.tui.sources import ReplaySource

    rec = REPO / "tests" / "data" / "recordings" / "wrapper_exec.jsonl"
    doc = json.loads(generate("landlock", load_access_set([str(rec)])))
    doc["rules"] = [r for r in doc["rules"] if r["path"] != "/etc/app.conf"]
    pol = tmp_path / "cand.json"
    pol.write_text(json.dumps(doc))
    app = LsmtraceApp(
        ReplaySource(rec, policy=LiveCheck(load(str(pol)))),
        blink=False,
        tick_interval=3600.0,
    )
    async with app.run_test(size=(100, 30)) as pilot:
        await loaded(pilot)
        assert app.stats.counters.would_deny == 1
        assert "1 would-deny" in status(app)
        await pilot.press("w")
        await wait_for(pilot, lambda: app.store.filter.describe() == "would-deny")
        assert app.store.view_len == 1
        await pilot.press("home")
        ev = app.selected_event()
        assert ev is not None
        assert ev["object"]["path"] == "/etc/app.conf"
        text = detail(app)
        assert "Would deny: policy cand.json (landlock), ruleset lsmtrace" in text
        assert "needs file /etc/app.conf read" in text
        assert '{"path": "/etc/app.conf", "access": ["read_file"]}' in text
        await pilot.press("w")
        await wait_for(pilot, lambda: app.store.view_len > 1)
