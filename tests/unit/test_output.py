"""Text and JSON rendering against hostile names.

Whatever bytes a process puts in its name or a path, the text output must stay
one line of printable characters within the width, with an unambiguous (so
reversible) escaping; JSON must be valid, ASCII-only, one line, and give the
original bytes back through surrogateescape.
"""

from __future__ import annotations

import json
import re
import unicodedata
from pathlib import Path
from typing import Any

import pytest

from lsmtrace import abi
from lsmtrace.events import Event, IdNames, WallClock, decode, errno_name, verdict_of
from lsmtrace.output import (
    COLUMNS,
    escape,
    fit,
    header,
    json_lines,
    json_text,
    text_line,
)

PAYLOADS = Path(__file__).resolve().parent.parent / "data" / "payloads"
CLOCK = WallClock(offset_ns=1_700_000_000 * 10**9)  # ts_ns 0 -> 2023-11-14T22:13:20Z


def raw_str(b: bytes) -> str:
    """Bytes as the decoder hands them over (invalid UTF-8 kept as surrogates)."""
    return b.decode("utf-8", "surrogateescape")


HOSTILE_BYTES = [
    b"plain",
    b"new\nline",
    b"carriage\rreturn",
    b"tab\there",
    b"\x1b[31mred\x1b[0m",
    b"\x1b]0;title\x07",  # OSC: set the terminal title
    b"back\\slash",
    b"literal \\x41 and \\n",  # looks like an escape, must not read as one
    b"bad\xffutf8\xfe",
    b"\x80\x9b\x9d",  # raw bytes that would be C1 controls as latin-1
    b"del\x7f",
    b"nul-free \x01\x02\x1f",
    "trojan\u202esource".encode(),  # bidi override
    "line\u2028sep".encode(),
    "zero\u200bwidth".encode(),
    "caf\u00e9 \u6f22\u5b57".encode(),  # printable non-ASCII stays as is
    b"nel\xc2\x85 nbsp\xc2\xa0 shy\xc2\xad csi\xc2\x9b",  # C1 etc. as valid UTF-8
    ("/srv/" + "\u6f22" * 100).encode(),  # 200 terminal columns
    b"/" + b"a" * 299,
    b"/tmp/" + b"\x1b[2J\xff\n" * 40,
]
HOSTILE = [raw_str(b) for b in HOSTILE_BYTES]
HOSTILE_IDS = [repr(b[:24]) for b in HOSTILE_BYTES]
COMMS = [
    raw_str(b) for b in (b"cat", b"ev\x1b[31m\n\xff\\il", b"\r\t\x7f\x9b", b"x" * 15)
]


def make_event(**kw: Any) -> Event:
    """An event dict of the decoder's form (keys in its order)."""
    ts = kw.pop("ts_ns", 0)
    kind = kw.get("kind", "syscall")
    ret = kw.get("ret", -13)
    base: dict[str, Any] = dict(
        time=CLOCK.iso(ts),
        ts_ns=ts,
        rung="tracepoint",
        kind=kind,
        hook="sys_openat",
        family="file",
        verdict=verdict_of(kind, ret),
        ret=ret,
        errno=errno_name(ret),
        lsm=None,
        pid=4242,
        tgid=4242,
        ppid=1,
        uid=65534,
        euid=65534,
        gid=65534,
        comm="cat",
        cgroup=1,
        mntns=4026531832,
        syscall="openat",
        latency_ns=None,
        object={"path": "/etc/shadow"},
        truncated=False,
    )
    base.update(kw)
    return base


def captured_events() -> list[Event]:
    out = []
    for side in sorted(PAYLOADS.glob("*.json")):
        sc = json.loads(side.read_text())
        ids = IdNames(
            {int(k): v for k, v in sc["id_names"]["names"].items()},
            {int(k): v for k, v in sc["id_names"]["families"].items()},
        )
        names = {int(k): v for k, v in sc["syscall_names"].items()}
        raw = side.with_suffix(".bin").read_bytes()
        out += [
            decode(raw, ids, names, o, CLOCK)
            for o in range(0, len(raw), abi.EVENT_SIZE)
        ]
    return out


def hostile_events() -> list[Event]:
    evs = []
    for s in HOSTILE:
        evs.append(make_event(object={"path": s}))
        evs.append(make_event(object={"path": "/a", "path2": s}))
        evs.append(make_event(kind="exec", hook="exec", object={"filename": s}))
        evs.append(
            make_event(
                hook="sys_connect", ret=-111, object={"family": "AF_UNIX", "path": s}
            )
        )
        evs.append(make_event(hook="sys_mount", object={"source": s, "fstype": s}))
        evs.append(
            make_event(
                kind="avc", hook="selinux_audited", object={"tclass": s, "tcontext": s}
            )
        )
    for c in COMMS:
        evs.append(make_event(comm=c, object={"path": HOSTILE[4]}))
    return evs


ALL_EVENTS = captured_events() + hostile_events()


def unescape(s: str) -> bytes:
    """Inverse of output.escape, back to the original bytes."""
    out = bytearray()
    i = 0
    named = {"n": b"\n", "r": b"\r", "t": b"\t", "\\": b"\\"}
    while i < len(s):
        ch = s[i]
        if ch != "\\":
            out += ch.encode("utf-8")
            i += 1
            continue
        nxt = s[i + 1]
        if nxt in named:
            out += named[nxt]
            i += 2
        elif nxt == "x":
            out.append(int(s[i + 2 : i + 4], 16))
            i += 4
        elif nxt == "u":
            out += chr(int(s[i + 2 : i + 6], 16)).encode("utf-8", "surrogatepass")
            i += 6
        else:
            raise AssertionError(f"unknown escape {s[i : i + 2]!r} in {s!r}")
    return bytes(out)


def assert_safe(text: str) -> None:
    """Nothing a terminal would interpret: no C0, DEL, C1, no surrogate."""
    for ch in text:
        code = ord(ch)
        assert code >= 0x20, f"raw control {ch!r} in {text!r}"
        assert code != 0x7F, f"raw DEL in {text!r}"
        assert not 0x80 <= code <= 0x9F, f"raw C1 {ch!r} in {text!r}"
        assert not 0xD800 <= code <= 0xDFFF, f"surrogate {ch!r} reaches the terminal"
        assert ch == " " or ch.isprintable(), f"unprintable {ch!r} in {text!r}"
    text.encode("utf-8")  # strict: what a UTF-8 stdout will do


def columns(text: str) -> int:
    """Terminal columns: wide East Asian characters take two, combining marks none."""
    n = 0
    for ch in text:
        if unicodedata.combining(ch):
            continue
        n += 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
    return n


# -- escape ------------------------------------------------------------------------


@pytest.mark.parametrize("s", HOSTILE, ids=HOSTILE_IDS)
def test_escape_is_safe(s: str) -> None:
    e = escape(s)
    assert_safe(e)
    assert "\n" not in e
    assert "\r" not in e


@pytest.mark.parametrize("s", HOSTILE, ids=HOSTILE_IDS)
def test_escape_is_lossless(s: str) -> None:
    assert unescape(escape(s)) == s.encode("utf-8", "surrogateescape")


def test_backslash_is_doubled() -> None:
    assert escape("a\\b") == "a\\\\b"
    assert escape("\\x41") == "\\\\x41"  # a literal "\x41" is not the byte 0x41
    assert escape("\\n") == "\\\\n"
    assert escape("\n") == "\\n"
    assert escape("\\n") != escape("\n")


def test_escape_named_and_hex() -> None:
    assert escape("a\nb\rc\td") == "a\\nb\\rc\\td"
    assert escape("\x1b[31m") == "\\x1b[31m"
    assert escape(raw_str(b"\xff")) == "\\xff"
    assert escape("\x7f") == "\\x7f"
    assert escape("\u202e") == "\\u202e"
    assert escape("caf\u00e9") == "caf\u00e9"


def test_escape_distinct_inputs_distinct_outputs() -> None:
    outs = {escape(s): s for s in HOSTILE}
    assert len(outs) == len(set(HOSTILE))


def test_escape_c1_character_vs_raw_byte() -> None:
    """U+0085 (valid UTF-8 C2 85) and the undecodable byte 0x85 escape apart."""
    c1 = raw_str(b"\xc2\x85")  # U+0085 NEL, valid UTF-8
    byte = raw_str(b"\x85")  # invalid UTF-8 byte
    assert c1 != byte
    assert escape(c1) != escape(byte)
    assert unescape(escape(c1)) == b"\xc2\x85"


# -- fit ---------------------------------------------------------------------------


def test_fit_marks_the_cut() -> None:
    assert fit("abcdef", 10) == "abcdef"
    assert fit("abcdef", 4) == "abc~"
    assert fit("abcdef", 4, keep_end=True) == "~def"
    assert fit("abcdef", 1) == "~"
    assert len(fit("x" * 500, 37)) == 37


# -- text lines ----------------------------------------------------------------------


def test_header_fits_80() -> None:
    h = header()
    assert len(h) <= 80
    assert h.split() == ["TIME", "PID", "COMM", "HOOK", "RESULT", "OBJECT"]
    assert_safe(h)


def test_header_aligns_with_lines() -> None:
    h = header()
    line = text_line(make_event(), 80)
    start = sum(w + 1 for w, _t in COLUMNS)
    assert h.index("OBJECT") == start
    assert line[start:] == "/etc/shadow"
    assert line.startswith("22:13:20 4242    cat             sys_openat      EACCES:?")


@pytest.mark.parametrize("width", [80, 100, 132])
def test_text_lines_safe_and_within_width(width: int) -> None:
    for ev in ALL_EVENTS:
        line = text_line(ev, width)
        assert_safe(line)
        assert len(line) <= width, line
        assert columns(line) <= width, line


def test_text_default_width_is_unlimited() -> None:
    """The renderer cuts only when asked (a terminal's width); piped output and
    files get the whole object (trace picks the width: options.text_width)."""
    ev = make_event(object={"path": HOSTILE[-1]})
    assert text_line(ev) == text_line(ev, 0)
    assert len(text_line(ev, 80)) == 80
    assert len(text_line(ev)) > 80


def test_long_path_keeps_its_end() -> None:
    path = "/" + "d" * 300 + "/target.txt"
    line = text_line(make_event(object={"path": path}), 80)
    assert line.endswith("/target.txt")
    assert "~" in line


def test_hostile_comm_escaped() -> None:
    line = text_line(make_event(comm=COMMS[1]), 80)
    assert_safe(line)
    comm_col = line[17:32]
    assert comm_col.startswith("ev\\x1b[31m\\n\\x")  # 15 columns, cut with ~
    assert comm_col.endswith("~")


def test_unlimited_width_is_lossless() -> None:
    """width 0: nothing cut, so the object column unescapes to the exact bytes."""
    start = sum(w + 1 for w, _t in COLUMNS)
    for s in HOSTILE:
        line = text_line(make_event(object={"path": s}), 0)
        assert_safe(line)
        assert unescape(line[start:]) == s.encode("utf-8", "surrogateescape")


def test_captured_hostile_payload_text() -> None:
    evs = [e for e in captured_events() if "\x1b" in e["comm"]]
    assert len(evs) == 2
    for ev in evs:
        for width in (80, 0):
            line = text_line(ev, width)
            assert_safe(line)
            assert "\n" not in line
        assert len(text_line(ev, 80)) <= 80


def test_result_column() -> None:
    assert "allow" in text_line(make_event(ret=0), 80)
    assert " ENOENT " in text_line(make_event(ret=-2), 80)
    assert "EPERM:capability" in text_line(make_event(ret=-1, lsm="capability"), 80)


def test_wide_characters_within_width() -> None:
    """Width counts terminal columns: a CJK character takes two."""
    ev = make_event(object={"path": "/srv/" + "\u6f22" * 100})
    assert columns(text_line(ev, 80)) <= 80


@pytest.mark.parametrize("width", [60, 40])
def test_narrow_width(width: int) -> None:
    """Below the fixed columns' 68, the line is still cut to the width."""
    line = text_line(make_event(object={"path": "/" + "p" * 200}), width)
    assert len(line) <= width


# -- JSON lines ----------------------------------------------------------------------


def test_json_lines_valid_ascii_one_line() -> None:
    for ev in ALL_EVENTS:
        line = json_text(ev)
        assert line.isascii()
        assert "\n" not in line
        assert "\r" not in line
        assert all(0x20 <= ord(c) < 0x7F for c in line)
        d = json.loads(line)
        assert d["hook"] == ev["hook"]
        assert d["verdict"] == ev["verdict"]


@pytest.mark.parametrize("s", HOSTILE, ids=HOSTILE_IDS)
def test_json_round_trips_bytes(s: str) -> None:
    ev = make_event(comm=COMMS[1], object={"path": s, "path2": s})
    d = json.loads(json_text(ev))
    orig = s.encode("utf-8", "surrogateescape")
    assert d["object"]["path"].encode("utf-8", "surrogateescape") == orig
    assert d["object"]["path2"].encode("utf-8", "surrogateescape") == orig
    assert d["comm"].encode("utf-8", "surrogateescape") == b"ev\x1b[31m\n\xff\\il"


def test_json_captured_payloads_round_trip() -> None:
    sc = json.loads((PAYLOADS / "hostile.json").read_text())
    evs = [e for e in captured_events() if e["pid"] == sc["events"][0]["pid"]]
    assert len(evs) == len(sc["events"]) == 2
    for ev, exp in zip(evs, sc["events"], strict=True):
        d = json.loads(json_text(ev))
        got = d["object"]["path"].encode("utf-8", "surrogateescape")
        assert got == bytes.fromhex(exp["path_hex"])
        assert d["comm"].encode("utf-8", "surrogateescape") == bytes.fromhex(
            exp["comm_hex"]
        )
        assert d["truncated"] is exp["truncated"]


def test_json_time_and_extra() -> None:
    ev = make_event(ts_ns=123_456_789)
    d = json.loads(json_text({**ev, "host": "h\n1"}))
    assert d["time"] == "2023-11-14T22:13:20.123456Z"
    assert d["host"] == "h\n1"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", d["time"])


def test_json_schema_keys() -> None:
    d = json.loads(json_text(make_event()))
    assert list(d) == [
        "time",
        "ts_ns",
        "rung",
        "kind",
        "hook",
        "family",
        "verdict",
        "ret",
        "errno",
        "lsm",
        "pid",
        "tgid",
        "ppid",
        "uid",
        "euid",
        "gid",
        "comm",
        "cgroup",
        "mntns",
        "syscall",
        "latency_ns",
        "object",
        "truncated",
    ]
    assert d["latency_ns"] is None
    assert d["errno"] == "EACCES"


def test_event_replace_keeps_rendering_pure() -> None:
    ev = make_event()
    a = json_text(ev)
    assert json_text(dict(ev)) == a
    assert text_line(ev) == text_line(ev)


# -- json_lines: the fast encoder gives json_text's bytes ------------------------------


def _lines_of(objs: list[Any]) -> bytes:
    return "".join(json_text(o) + "\n" for o in objs).encode("ascii")


def test_json_lines_equals_json_text_on_events() -> None:
    """Captured, hostile and made-up events: one line each, the same bytes."""
    extra: list[Any] = [
        make_event(comm=c, object={"path": s, "mode": "0o644", "ino": 2**63 + 5})
        for c in COMMS
        for s in HOSTILE
    ]
    objs = [*ALL_EVENTS, *extra]
    assert json_lines(objs) == _lines_of(objs)


@pytest.mark.parametrize(
    "obj",
    [
        {"big": 2**70, "neg": -(2**70)},  # beyond 64 bits: the json module's digits
        {"s": "\u00e9\u202e\U0001f600"},  # non-ASCII: escaped, never raw UTF-8
        {"s": raw_str(b"\xff\xfe")},  # lone surrogates
        {"nested": [{"a": None, "b": True, "c": [1, -2, 0]}], "": ""},
        {"ctl": "".join(chr(i) for i in range(0x20)) + '\x7f"\\/'},
    ],
    ids=["bigint", "non-ascii", "surrogates", "nested", "controls"],
)
def test_json_lines_equals_json_text_edge_cases(obj: Any) -> None:
    line = json_lines([obj])
    assert line == _lines_of([obj])
    assert line.isascii()
    assert line.count(b"\n") == 1


def test_json_lines_one_odd_line_in_a_batch_and_any_iterable() -> None:
    """A batch goes through orjson whole; one line it would write otherwise
    (non-ASCII, beyond 64 bits) sends the batch line by line, same bytes."""
    odd = [{"s": "\u00e9"}, {"big": 2**70}, {"s": raw_str(b"\xff")}]
    for o in odd:
        objs = [*ALL_EVENTS[:3], o, *ALL_EVENTS[3:6]]
        assert json_lines(objs) == _lines_of(objs)
        assert json_lines(iter(objs)) == _lines_of(objs)
    assert json_lines(e for e in ALL_EVENTS) == _lines_of(ALL_EVENTS)
    assert json_lines([]) == b""


def test_json_lines_without_orjson(monkeypatch: pytest.MonkeyPatch) -> None:
    from lsmtrace import output

    monkeypatch.setattr(output, "_orjson", None)
    assert json_lines(ALL_EVENTS) == _lines_of(ALL_EVENTS)


def test_would_deny_marker_after_the_result_never_cut() -> None:
    """--policy: the rule the candidate policy lacks follows the result; like
    the audited rule it is never cut (the object moves right)."""
    ev = make_event(ret=0, object={"path": "/srv/x\x1b[31m"})
    ev["would_deny"] = {
        "policy": "p.aa",
        "target": "apparmor",
        "context": "profile p",
        "program": "/usr/bin/cat",
        "access": ["file /srv/x read"],
        "missing": ['"/srv/x\x1b[31m" r,', "capability x,"],
    }
    line = text_line(ev)  # piped: nothing cut
    assert 'allow would-deny apparmor: "/srv/x\\x1b[31m" r, (+1) /srv/x' in line
    assert "\x1b" not in line
    assert columns(text_line(ev, 80)) <= 80
    assert "would-deny" not in text_line(make_event(ret=0), 80)


def test_exec_object_shows_the_name_given_then_what_runs() -> None:
    from lsmtrace.output import object_summary

    assert object_summary({"filename": "/usr/bin/cat", "argv": ["cat"]}) == (
        "/usr/bin/cat"
    )
    o = {"filename": "/usr/bin/dash", "given": "/srv/wr\x1bap", "argv": []}
    assert object_summary(o) == "/srv/wr\\x1bap (/usr/bin/dash)"
