"""Decoding of raw payloads captured from real runs (tests/data/payloads).

The payloads were written by tests/data/payloads/capture.py as root on the
tracepoint rung; each sidecar holds the id -> name mapping needed to decode and,
per event, the values the scenario implies. No root or bcc needed here.
"""

from __future__ import annotations

import json
import struct
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from lsmtrace import abi
from lsmtrace.events import Decoder, Event, IdNames, WallClock, decode, verdict_of

PAYLOADS = Path(__file__).resolve().parent.parent / "data" / "payloads"
SCENARIOS = ("open_eacces", "nice", "kill", "connect", "hostile")
# sidecar keys compared with the Event attribute of the same name
ATTRS = (
    "rung",
    "kind",
    "hook",
    "family",
    "syscall",
    "verdict",
    "ret",
    "errno",
    "lsm",
    "pid",
    "tgid",
    "uid",
    "euid",
    "gid",
    "comm",
    "truncated",
)


@dataclass
class Capture:
    name: str
    raw: bytes
    sidecar: dict[str, Any]
    ids: IdNames
    syscall_names: dict[int, str]

    @property
    def expected(self) -> list[dict[str, Any]]:
        return list(self.sidecar["events"])

    def offsets(self) -> list[int]:
        return list(range(0, len(self.raw), abi.EVENT_SIZE))

    def events(self) -> list[Event]:
        return [
            decode(self.raw, self.ids, self.syscall_names, off)
            for off in self.offsets()
        ]

    def wire(self, i: int) -> abi.Event:
        return abi.Event.from_buffer_copy(self.raw, i * abi.EVENT_SIZE)


def load(name: str) -> Capture:
    sidecar = json.loads((PAYLOADS / f"{name}.json").read_text())
    ids = IdNames(
        {int(k): v for k, v in sidecar["id_names"]["names"].items()},
        {int(k): v for k, v in sidecar["id_names"]["families"].items()},
    )
    names = {int(k): v for k, v in sidecar["syscall_names"].items()}
    return Capture(name, (PAYLOADS / f"{name}.bin").read_bytes(), sidecar, ids, names)


@pytest.fixture(params=SCENARIOS)
def capture(request: pytest.FixtureRequest) -> Capture:
    return load(request.param)


def only(name: str, hook: str) -> Event:
    evs = [e for e in load(name).events() if e["hook"] == hook]
    assert len(evs) == 1, f"{name}: {len(evs)} {hook} events"
    return evs[0]


# -- the payload files ----------------------------------------------------------


def test_payload_sizes(capture: Capture) -> None:
    """Each payload is a whole number of wire events, as the ring buffer gave them."""
    assert capture.sidecar["event_size"] == abi.EVENT_SIZE
    assert capture.sidecar["abi_version"] == abi.ABI_VERSION
    assert len(capture.raw) == abi.EVENT_SIZE * len(capture.expected)
    assert len(capture.raw) > 0


def test_sidecar_records_origin(capture: Capture) -> None:
    assert capture.sidecar["kernel"]
    assert capture.sidecar["tracer"]["backend"] == "tracepoint"
    assert capture.sidecar["argv"][0] == "setpriv"


def test_wire_header(capture: Capture) -> None:
    for i, _exp in enumerate(capture.expected):
        w = capture.wire(i)
        assert w.rung == abi.Rung.TRACEPOINT
        assert w.kind in (abi.Kind.SYSCALL, abi.Kind.CAPABLE)
        assert w.ts_ns > 0
        assert w.latency_ns == 0  # the tracepoint rung cannot time a hook
        assert w.mntns != 0
        assert not w.flags & abi.EvFlag.READ_ERR


# -- field by field, against what each scenario implies ----------------------------


def test_fields_match_scenario(capture: Capture) -> None:
    for ev, exp in zip(capture.events(), capture.expected, strict=True):
        for key in ATTRS:
            if key in exp:
                want = exp[key]
                got = ev[key]
                assert got == want, (
                    f"{capture.name} {ev['hook']}: {key} {got!r} != {want!r}"
                )
        if "object" in exp:
            assert dict(ev["object"]) == exp["object"]
        if "comm_hex" in exp:
            assert ev["comm"].encode("utf-8", "surrogateescape") == bytes.fromhex(
                exp["comm_hex"]
            )
        if "path_hex" in exp:
            got = str(ev["object"]["path"]).encode("utf-8", "surrogateescape")
            assert got == bytes.fromhex(exp["path_hex"])
        if "object_flags" in exp:
            assert ev["object"]["flags"] == exp["object_flags"]


def test_decode_batch_equals_decode(capture: Capture) -> None:
    clock = WallClock(offset_ns=0)
    dec = Decoder(capture.ids, capture.syscall_names, clock)
    batch = dec.decode_batch(capture.raw, capture.offsets())
    assert batch == [dec.decode(capture.raw, o) for o in capture.offsets()]
    for d in batch:
        assert d["latency_ns"] is None


def test_decode_batch_repeated_events_keep_their_own_times(capture: Capture) -> None:
    """A repeated event (same bytes after the timestamps) is decode_batch's
    copy of the first one: with its own time and latency, and a dict of its
    own that a consumer may change without touching the next."""
    clock = WallClock(offset_ns=0)
    dec = Decoder(capture.ids, capture.syscall_names, clock)
    chunk = bytearray()
    for off in capture.offsets():
        for i in range(3):
            ev = bytearray(capture.raw[off : off + abi.EVENT_SIZE])
            # seconds apart too: the batch's own ISO seconds must follow
            ev[0:16] = struct.pack("<QQ", 10**18 + off * 7 + i * 700_001_000, i * 500)
            chunk += ev
    offsets = list(range(0, len(chunk), abi.EVENT_SIZE))
    first = dec.decode_batch(bytes(chunk), offsets)
    assert first == [dec.decode(chunk, o) for o in offsets]
    assert len({e["time"] for e in first}) == len(first)
    assert [e["latency_ns"] for e in first[:3]] == [None, 500, 1000]
    for e in first:
        e["enriched"] = True
        e.pop("comm")
    again = dec.decode_batch(bytes(chunk), offsets)  # every one from the memo now
    assert again == [dec.decode(chunk, o) for o in offsets]
    assert len({id(e) for e in again}) == len(again)


def test_decode_batch_event_like_the_one_before_but_its_last_byte() -> None:
    """The comparison with the event before is over every byte after the
    timestamps: one differing only in the last character of its path (or in
    the event's very last byte) is decoded on its own."""
    cap = load("open_eacces")
    dec = Decoder(cap.ids, cap.syscall_names, WallClock(offset_ns=0))
    one = bytearray(cap.raw[: abi.EVENT_SIZE])
    path_at = abi.Event.obj.offset + abi.ObjFile.path.offset
    end = one.index(0, path_at) - 1  # the path's last character
    other = bytearray(one)
    other[end] ^= 0x01
    tail = bytearray(one)
    tail[abi.EVENT_SIZE - 1] ^= 0x01
    chunk = bytes(one + one + other + other + one + tail)
    offs = list(range(0, len(chunk), abi.EVENT_SIZE))
    evs = dec.decode_batch(chunk, offs)
    assert evs == [dec.decode(chunk, o) for o in offs]
    paths = [e["object"]["path"] for e in evs]
    assert paths[0] == paths[1] == paths[4] == paths[5] != paths[2] == paths[3]
    assert paths[2][:-1] == paths[0][:-1]
    assert dec._events.keys() >= {chunk[o + 16 : o + abi.EVENT_SIZE] for o in offs}


def test_decode_batch_memo_rests_while_events_are_new() -> None:
    """All-new events: after one batch of misses the memo is not fed (it would
    cost a key and a copy per event for nothing) until a probe batch (every
    16th) finds repeats again; the events are decode()'s either way."""
    cap = load("open_eacces")
    dec = Decoder(cap.ids, cap.syscall_names, WallClock(offset_ns=0))
    one = cap.raw[: abi.EVENT_SIZE]
    path_at = abi.Event.obj.offset + 40

    def batch(first: int, n: int, new: bool) -> bytes:
        out = bytearray()
        for i in range(first, first + n):
            ev = bytearray(one)
            ev[0:8] = struct.pack("<Q", 10**15 + i)
            if new:
                ev[path_at : path_at + 6] = b"%06d" % i
            out += ev
        return bytes(out)

    def decode(chunk: bytes) -> list[Event]:
        offs = list(range(0, len(chunk), abi.EVENT_SIZE))
        evs = dec.decode_batch(chunk, offs)
        assert evs == [dec.decode(chunk, o) for o in offs]
        return evs

    decode(batch(0, 64, new=True))
    remembered = len(dec._events)
    assert remembered == 64
    for k in range(1, 16):  # resting: nothing new remembered
        decode(batch(64 * k, 64, new=True))
        assert len(dec._events) == remembered
    decode(batch(0, 64, new=False))  # the 16th batch probes: repeats again
    decode(batch(64, 64, new=False))  # and the memo is back at work
    assert len(dec._events) > remembered


def test_open_eacces() -> None:
    exp = load("open_eacces").expected[0]
    ev = only("open_eacces", "sys_openat")
    assert (ev["kind"], ev["rung"], ev["verdict"], ev["errno"], ev["ret"]) == (
        "syscall",
        "tracepoint",
        "deny",
        "EACCES",
        -13,
    )
    assert ev["uid"] == ev["euid"] == 65534
    assert ev["comm"] == "cat"
    # a failed open: the directory (here the root, the name is absolute)
    # joined with the name the program gave
    assert ev["object"] == {"path": exp["object"]["path"], "path_kind": "joined"}
    assert str(ev["object"]["path"]).endswith("/secret")
    assert ev["truncated"] is False


def test_nice_capability_denial() -> None:
    ev = only("nice", "capable")
    assert (ev["kind"], ev["family"], ev["verdict"], ev["errno"], ev["lsm"]) == (
        "capable",
        "capability",
        "deny",
        "EPERM",
        "capability",
    )
    assert ev["object"]["cap"] == 23
    assert ev["object"]["cap_name"] == "CAP_SYS_NICE"
    assert ev["syscall"] == "setpriority"
    assert ev["uid"] == 65534
    assert ev["comm"] == "nice"


def test_nice_setpriority() -> None:
    ev = only("nice", "sys_setpriority")
    assert (ev["kind"], ev["verdict"], ev["errno"], ev["ret"]) == (
        "syscall",
        "deny",
        "EACCES",
        -13,
    )
    # lsm from the cap_capable denial seen inside the syscall, told by the kernel
    assert ev["lsm"] == "capability"
    assert ev["lsm_source"] == "hook"


def test_nice_setpriority_raw_object() -> None:
    """The kernel side does decode setpriority's which/who/prio (obj.nice)."""
    cap = load("nice")
    i = next(i for i, e in enumerate(cap.expected) if e["hook"] == "sys_setpriority")
    n = cap.wire(i).obj.nice
    assert {"which": n.which, "who": n.who, "nice": n.nice} == cap.expected[i][
        "raw_nice"
    ]


def test_nice_setpriority_object_decoded() -> None:
    """setpriority(PRIO_PROCESS, 0, -1): obj_type NICE on the wire (its own
    object kind: nothing is decoded by the syscall's name), decoded."""
    cap = load("nice")
    i = next(i for i, e in enumerate(cap.expected) if e["hook"] == "sys_setpriority")
    assert cap.wire(i).obj_type == abi.ObjType.NICE
    ev = only("nice", "sys_setpriority")
    assert ev["object"] == {"which": 0, "who": 0, "nice": -1}


def test_kill_pid1() -> None:
    cap_ev = only("kill", "capable")
    assert cap_ev["object"]["cap_name"] == "CAP_KILL"
    assert cap_ev["syscall"] == "kill"
    ev = only("kill", "sys_kill")
    assert (ev["verdict"], ev["errno"], ev["ret"]) == ("deny", "EPERM", -1)
    assert ev["object"] == {"sig": 0, "sig_name": None, "target_pid": 1}
    assert ev["comm"] == "kill"
    assert ev["uid"] == 65534


def test_connect_refused() -> None:
    exp = load("connect").expected[0]
    ev = only("connect", "sys_connect")
    # ECONNREFUSED is a failure, not a security decision
    assert (ev["verdict"], ev["errno"], ev["ret"], ev["lsm"]) == (
        "error",
        "ECONNREFUSED",
        -111,
        None,
    )
    assert ev["family"] == "network"
    assert ev["object"]["family"] == "AF_INET"
    assert ev["object"]["addr"] == "127.0.0.1"
    assert ev["object"]["port"] == exp["object"]["port"]  # host byte order on the wire
    assert ev["object"] == exp["object"]


def test_hostile_names() -> None:
    cap = load("hostile")
    evs = cap.events()
    assert len(evs) == 2
    for ev, exp in zip(evs, cap.expected, strict=True):
        assert ev["comm"].encode("utf-8", "surrogateescape") == bytes.fromhex(
            exp["comm_hex"]
        )
        assert "\x1b" in ev["comm"]
        assert "\n" in ev["comm"]
        assert "\udcff" in ev["comm"]
        assert (ev["verdict"], ev["errno"]) == ("deny", "EACCES")
    name_ev = evs[0]
    path = str(name_ev["object"]["path"])
    for bad in ("\n", "\r", "\x1b[31m", "\\", "\udcff"):
        assert bad in path
    assert path.encode("utf-8", "surrogateescape") == bytes.fromhex(
        cap.expected[0]["path_full_hex"]
    )
    assert name_ev["truncated"] is False


def test_long_path_truncated() -> None:
    cap = load("hostile")
    exp = cap.expected[1]
    full = bytes.fromhex(exp["path_full_hex"])
    assert len(full) == 300
    ev = cap.events()[1]
    got = str(ev["object"]["path"]).encode("utf-8", "surrogateescape")
    assert got == full[: abi.PATH_LEN - 1]
    assert ev["truncated"] is True
    assert cap.wire(1).flags & abi.EvFlag.TRUNCATED


# -- decode() edge cases -------------------------------------------------------------


def test_short_buffer_raises() -> None:
    cap = load("open_eacces")
    with pytest.raises(ValueError, match="short event"):
        decode(cap.raw[: abi.EVENT_SIZE - 1], cap.ids, cap.syscall_names)
    with pytest.raises(ValueError, match="short event"):
        decode(b"", cap.ids, cap.syscall_names)


def test_offset_past_last_event_raises() -> None:
    cap = load("kill")
    with pytest.raises(ValueError, match="short event"):
        decode(cap.raw, cap.ids, cap.syscall_names, offset=abi.EVENT_SIZE + 1)


def test_decode_accepts_buffer_types() -> None:
    cap = load("kill")
    dec = Decoder(cap.ids, cap.syscall_names, WallClock(0))
    ev = dec.decode(cap.raw, abi.EVENT_SIZE)
    assert dec.decode(bytearray(cap.raw), abi.EVENT_SIZE) == ev
    assert dec.decode(memoryview(cap.raw), abi.EVENT_SIZE) == ev


def test_unknown_ids_still_decode() -> None:
    """Without the id map (e.g. an old recording), names degrade, nothing raises."""
    cap = load("open_eacces")
    ev = decode(cap.raw, IdNames({}, {}), {})
    w = cap.wire(0)
    assert ev["hook"] == f"id{w.id}"
    assert ev["family"] is None
    assert ev["syscall"] == f"syscall{w.syscall}"
    assert ev["verdict"] == "deny"


def test_verdict_rule() -> None:
    assert verdict_of("hook", 0) == "allow"
    assert verdict_of("hook", -2) == "deny"  # a hook's refusal, whatever errno
    assert verdict_of("syscall", -2) == "error"  # ENOENT is no decision
    assert verdict_of("syscall", -13) == "deny"
    assert verdict_of("syscall", -1) == "deny"


# -- WallClock -----------------------------------------------------------------------


def test_wallclock_injected_offset_exact() -> None:
    clock = WallClock(offset_ns=1_700_000_000_000_000_000 - 5_000_000_000)
    ts = 5_000_000_000 + 123_456_789
    assert clock.wall_ns(ts) == 1_700_000_000_123_456_789
    # microseconds, truncated (not rounded), UTC, "Z"
    assert clock.iso(ts) == "2023-11-14T22:13:20.123456Z"
    assert clock.iso(5_000_000_000 + 999_999_999) == "2023-11-14T22:13:20.999999Z"
    assert clock.iso(5_000_000_000) == "2023-11-14T22:13:20.000000Z"
    # the per-second prefix is cached: crossing seconds, back and forth, stays exact
    assert clock.iso(6_000_000_000) == "2023-11-14T22:13:21.000000Z"
    assert clock.iso(4_999_999_999) == "2023-11-14T22:13:19.999999Z"
    assert clock.iso(86_400 * 10**9 + 5_000_000_000) == "2023-11-15T22:13:20.000000Z"


def test_wallclock_iso_is_rfc3339() -> None:
    clock = WallClock(offset_ns=86_400 * 10**9)
    s = clock.iso(1)
    assert s == "1970-01-02T00:00:00.000000Z"
    parsed = datetime.fromisoformat(s.replace("Z", "+00:00"))
    assert parsed.utcoffset() == timedelta(0)


def test_time_uses_the_clock(capture: Capture) -> None:
    ts = capture.wire(0).ts_ns
    clock = WallClock(offset_ns=1_700_000_000 * 10**9 - ts)
    d = decode(capture.raw, capture.ids, capture.syscall_names, 0, clock)
    ev = d
    assert d["time"] == "2023-11-14T22:13:20.000000Z"
    assert d["ts_ns"] == ev["ts_ns"]


def test_default_clock_offset_is_wall_minus_monotonic() -> None:
    before = time.time_ns() - time.monotonic_ns()
    clock = WallClock()
    after = time.time_ns() - time.monotonic_ns()
    assert abs(clock.offset_ns - before) < 10**9
    assert abs(clock.offset_ns - after) < 10**9


def test_hostile_flags_are_o_cloexec() -> None:
    """The expected flags were os.O_CLOEXEC on the capture host (x86_64)."""
    cap = load("hostile")
    assert cap.sidecar["machine"] == "x86_64"
    assert cap.expected[0]["object_flags"] == 0o2000000


# -- objects of the ABI 2 wire format, built field by field ----------------------

WIRE_IDS = IdNames(
    {
        7: "capable",
        8: "task_setnice",
        abi.SYSCALL_BASE + 257: "sys_openat",
        abi.SYSCALL_BASE + 141: "sys_setpriority",
    },
    {},
)


def wire(
    kind: abi.Kind,
    obj_type: abi.ObjType,
    id_: int = 0,
    ret: int = 0,
    flags: int = 0,
    rung: abi.Rung = abi.Rung.TRACEPOINT,
) -> abi.Event:
    e = abi.Event()
    e.ts_ns, e.kind, e.rung, e.id, e.ret = 5, int(kind), int(rung), id_, ret
    e.obj_type, e.flags, e.syscall, e.pid, e.tgid = int(obj_type), flags, -1, 9, 9
    e.comm = b"t"
    return e


def dec(e: abi.Event) -> Event:
    """Decoded, and valid against the published schema."""
    import jsonschema

    from lsmtrace.schema import event_schema

    d = decode(bytes(e), WIRE_IDS, {257: "openat", 141: "setpriority"})
    jsonschema.Draft202012Validator(event_schema()).validate(
        {k: v for k, v in d.items() if not k.startswith("_")}
    )
    return d


def test_exec_object_filename_and_argv() -> None:
    e = wire(abi.Kind.EXEC, abi.ObjType.PROC)
    raw = b"/usr/bin/python3.11\0" + b"python3\0-c\0print('a b')\0"
    e.obj.proc.buf[: len(raw)] = raw
    e.obj.proc.filename_len = len(b"/usr/bin/python3.11\0")
    e.obj.proc.argv_len = len(raw) - e.obj.proc.filename_len
    assert dec(e)["object"] == {
        "filename": "/usr/bin/python3.11",
        "argv": ["python3", "-c", "print('a b')"],
        "argv_truncated": False,
    }


def test_exec_object_cut_argv_keeps_its_head() -> None:
    e = wire(abi.Kind.EXEC, abi.ObjType.PROC)
    raw = b"/bin/x\0" + b"x\0" + b"\xff" * 10  # the last argument cut, no NUL
    e.obj.proc.buf[: len(raw)] = raw
    e.obj.proc.filename_len, e.obj.proc.argv_len = 7, len(raw) - 7
    e.obj.proc.flags = int(abi.ExecFlag.ARGV_TRUNCATED)
    o = dec(e)["object"]
    assert o["argv"] == ["x", "\udcff" * 10]  # any bytes, losslessly
    assert o["argv_truncated"] is True


def test_path_kind_is_decoded() -> None:
    for kind, name in (
        (abi.PathKind.EXACT, "exact"),
        (abi.PathKind.JOINED, "joined"),
        (abi.PathKind.AS_GIVEN, "as_given"),
        (abi.PathKind.FS_RELATIVE, "fs_relative"),
    ):
        e = wire(abi.Kind.SYSCALL, abi.ObjType.FILE, abi.SYSCALL_BASE + 257, -13)
        e.obj.file.path = b"/tmp/t/hidden.txt"
        e.obj.file.path_kind = int(kind)
        assert dec(e)["object"] == {"path": "/tmp/t/hidden.txt", "path_kind": name}
    e = wire(abi.Kind.SYSCALL, abi.ObjType.FILE, abi.SYSCALL_BASE + 257, -13)
    e.obj.file.path = b"x"  # NONE: no kind claimed
    assert dec(e)["object"] == {"path": "x"}


def test_noaudit_from_the_flags() -> None:
    cases = (
        (0, {"noaudit": False}),
        (abi.EvFlag.NOAUDIT_OPTS, {"noaudit": True, "noaudit_by": "opts"}),
        (abi.EvFlag.NOAUDIT_CALL_SITE, {"noaudit": True, "noaudit_by": "call_site"}),
    )
    for flag, want in cases:
        e = wire(abi.Kind.CAPABLE, abi.ObjType.CAP, abi.ID_CAPABLE, -1, int(flag))
        e.obj.cap.cap = 21
        d = dec(e)
        assert {k: d[k] for k in ("noaudit", "noaudit_by") if k in d} == want
    # only capability objects say it
    assert "noaudit" not in dec(wire(abi.Kind.SYSCALL, abi.ObjType.FILE, 1, -13))


def test_nice_object_kind_not_the_name() -> None:
    """task_setnice and sys_setpriority share LSMT_OBJ_NICE: the event kind,
    not the hook or syscall name, says which fields it carries."""
    e = wire(abi.Kind.HOOK, abi.ObjType.NICE, 8, -13, rung=abi.Rung.FEXIT)
    e.obj.nice.nice, e.obj.nice.target_pid, e.obj.nice.target_comm = -5, 42, b"x"
    assert dec(e)["object"] == {"target_pid": 42, "nice": -5, "target_comm": "x"}
    e = wire(abi.Kind.SYSCALL, abi.ObjType.NICE, abi.SYSCALL_BASE + 141, -13)
    e.obj.nice.which, e.obj.nice.who, e.obj.nice.nice = 0, 0, -1
    assert dec(e)["object"] == {"which": 0, "who": 0, "nice": -1}


def test_abstract_unix_name() -> None:
    e = wire(abi.Kind.SYSCALL, abi.ObjType.SOCK, 1, -111)
    name = b"\0lsmt-abs\0with-nul"
    e.obj.sock.family, e.obj.sock.addrlen = 1, 2 + len(name)
    e.obj.sock.path[: len(name)] = name
    # every byte of addrlen is the name (ss(8) shows @ for the leading NUL)
    assert dec(e)["object"] == {"family": "AF_UNIX", "path": "@lsmt-abs\0with-nul"}
    e.obj.sock.path[:7] = b"/run/s\0"
    e.obj.sock.addrlen = 2 + 7
    assert dec(e)["object"] == {"family": "AF_UNIX", "path": "/run/s"}


def test_context_process_events_are_marked_for_the_session() -> None:
    from lsmtrace.events import CONTEXT_ONLY

    e = wire(abi.Kind.EXIT, abi.ObjType.PROC, flags=int(abi.EvFlag.CONTEXT))
    assert dec(e)[CONTEXT_ONLY] is True
    assert CONTEXT_ONLY not in dec(wire(abi.Kind.EXIT, abi.ObjType.PROC))
