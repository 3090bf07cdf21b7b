"""The pure model: bounded history, filters, statistics, process tree."""

from __future__ import annotations

from typing import Any

import pytest

from lsmtrace.tui.model import EventStore, Filter, Stats, denial_tree, result_text


def ev(i: int, **kw: Any) -> dict[str, Any]:
    d: dict[str, Any] = {
        "ts_ns": i * 1_000_000,
        "hook": "sys_openat",
        "verdict": "allow",
        "errno": None,
        "lsm": None,
        "tgid": 100 + i % 3,
        "pid": 100 + i % 3,
        "ppid": 1,
        "comm": "c",
        "family": "file",
        "object": {"path": f"/p/{i}"},
    }
    d.update(kw)
    return d


def test_ring_is_bounded_and_view_follows() -> None:
    s = EventStore(history=100)
    s.set_filter(Filter.parse("", denied_only=True))
    for chunk in range(10):
        s.add(
            ev(i, verdict="deny" if i % 2 else "allow")
            for i in range(chunk * 50, chunk * 50 + 50)
        )
    assert len(s) == 100
    assert s.first_seq == 400
    assert s.next_seq == 500
    assert s.view_len == 50
    assert all(s.view_event(i)["verdict"] == "deny" for i in range(s.view_len))  # type: ignore[index]
    assert s.get(399) is None
    assert s.get(499) is not None


def test_view_eviction_is_reported() -> None:
    s = EventStore(history=10)
    s.add(ev(i) for i in range(10))
    added, evicted = s.add(ev(i) for i in range(10, 14))
    assert (added, evicted) == (4, 4)
    assert s.view_len == 10


@pytest.mark.parametrize(
    ("query", "expect"),
    [
        ("hook:sys_openat", True),
        ("hook:sys_*", True),
        ("hook:file_open", False),
        ("verdict:denied", True),
        ("lsm:none", False),
        ("lsm:capability", True),
        ("comm:cat", True),
        ("comm:ca*", True),
        ("pid:7", True),
        ("pid:8", False),
        ("/etc", True),
        ("shadow", True),
        ("/var", False),
        ("-hook:sys_openat", False),
        ("comm:cat comm:ls", True),
        ("comm:ls", False),
        ("container:web", True),
        ("unit:ssh", False),
        ("errno:eacces", True),
        ("text:EACCES:capability", True),
    ],
)
def test_filter(query: str, expect: bool) -> None:
    e = ev(
        0,
        verdict="deny",
        errno="EACCES",
        lsm="capability",
        comm="cat",
        tgid=7,
        object={"path": "/etc/shadow"},
        container="web-1",
    )
    assert Filter.parse(query).matches(e) is expect


def test_filter_would_deny() -> None:
    """would_deny:yes|no (wd:) and the `w` toggle: what --policy marked."""
    marked = ev(0, verdict="allow", would_deny={"target": "landlock", "missing": ["x"]})
    plain = ev(1, verdict="allow")
    for q, want in (
        ("would_deny:yes", [True, False]),
        ("wd:no", [False, True]),
        ("-wd:y", [False, True]),
        ("would-deny:true", [True, False]),
    ):
        f = Filter.parse(q)
        assert [f.matches(e) for e in (marked, plain)] == want, q
    toggled = Filter.parse("", would_deny_only=True)
    assert toggled.active
    assert toggled.describe() == "would-deny"
    assert [toggled.matches(e) for e in (marked, plain)] == [True, False]


@pytest.mark.parametrize(
    "bad", ["bogus:1", "verdict:maybe", "pid:abc", "hook:", "would_deny:maybe"]
)
def test_filter_errors(bad: str) -> None:
    with pytest.raises(ValueError, match=r"\w"):
        Filter.parse(bad)


def test_search_wraps() -> None:
    s = EventStore(10)
    s.add([ev(0, comm="a"), ev(1, comm="needle"), ev(2, comm="b")])
    assert s.search("needle", 2) == 1
    assert s.search("needle", 1) == 1
    assert s.search("absent", 0) is None


def test_stats_rates_and_series_use_event_time() -> None:
    st = Stats(window=10)
    st.add(
        ev(
            i,
            ts_ns=5_000_000_000 + i * 100_000_000,
            verdict="deny" if i < 5 else "allow",
        )
        for i in range(20)
    )
    now = st.latest_ns
    assert st.counters.total == 20
    assert st.counters.deny == 5
    assert st.series("*", now, 3) == [0, 10, 10]
    assert st.rate("deny", now, 5) == 1.0
    assert st.top_hooks(now)[0][0] == "sys_openat"


def test_result_text() -> None:
    assert result_text({"verdict": "allow"}) == "allow"
    assert result_text({"verdict": "error", "errno": "ENOENT"}) == "ENOENT"
    assert (
        result_text({"verdict": "deny", "errno": "EACCES", "lsm": None}) == "EACCES:?"
    )


def test_tree_from_ppid_chain_and_ancestors() -> None:
    st = Stats()
    st.add(
        [
            ev(0, tgid=10, ppid=1, comm="init"),
            ev(1, tgid=20, ppid=10, comm="sh"),
            ev(2, tgid=30, ppid=20, comm="cat", verdict="deny"),
            ev(
                3,
                tgid=40,
                ppid=99,
                comm="web",
                verdict="deny",
                ancestors=[{"pid": 99, "comm": "shim"}, {"pid": 1, "comm": "systemd"}],
            ),
        ]
    )
    roots = denial_tree(st)
    texts = {n.pid: n for r in roots for n in r.walk()}
    assert texts[30].denials == 1
    assert texts[40].denials == 1
    assert [c.pid for c in texts[10].children] == [20]
    assert [c.pid for c in texts[99].children] == [40]
    assert texts[1].comm == "systemd"
    assert sorted(c.pid for c in texts[1].children) == [10, 99]
