"""Decoded events: raw wire bytes -> the JSON-ready event dict. Pure.

The JSON Lines schema (stable; documented in docs/events.md):
  time      RFC 3339 UTC wall time of the decision
  ts_ns     kernel monotonic time (bpf_ktime_get_ns)
  rung      "fexit" | "kprobe" | "tracepoint": how it was observed
  kind      "hook" | "syscall" | "capable" | "avc" | "signal" | "exec" | "fork" | "exit"
  hook      LSM hook ("file_open"), "sys_<name>" for syscall exits,
            "capable" (cap_capable tracepoint), "selinux_audited"
  family    hook family (file, exec, task, network, ...)
  verdict   "allow" | "deny" | "error" (a syscall failing with another errno
            than EPERM/EACCES, e.g. ENOENT: not a security decision)
  ret       raw return value (0 for allowed syscalls, -errno when denied)
  errno     "EACCES"... or null
  lsm       deciding LSM, "dac" (no LSM hook denied), or null (rung can't tell)
  lsm_source "hook" (our kernel programs said), "audit" (the LSM's audit record
            said, where the rung cannot tell), or null
  pid tgid ppid uid euid gid comm cgroup mntns
  syscall   name of the syscall in progress, or null
  latency_ns hook entry->exit (fexit/kprobe rungs), else null
  object    decoded object of the hook, e.g. {"path": ...}, {"cap": 23, ...}
  truncated true when a string hit its buffer size
Strings that are not valid UTF-8 are decoded with "surrogateescape"; the
original bytes come back with s.encode("utf-8", "surrogateescape").
"""

from __future__ import annotations

import ctypes as ct
import errno as errno_mod
import ipaddress
import signal
import struct
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from lsmtrace import abi
from lsmtrace.abi import EvFlag, ExecFlag, Kind, ObjType, Rung

CAP_NAMES = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
)

AF_NAMES = {
    0: "AF_UNSPEC",
    1: "AF_UNIX",
    2: "AF_INET",
    10: "AF_INET6",
    16: "AF_NETLINK",
    17: "AF_PACKET",
    40: "AF_VSOCK",
    44: "AF_XDP",
}
SOCK_TYPES = {1: "SOCK_STREAM", 2: "SOCK_DGRAM", 3: "SOCK_RAW", 5: "SOCK_SEQPACKET"}
RUNG_NAMES = {Rung.FEXIT: "fexit", Rung.KPROBE: "kprobe", Rung.TRACEPOINT: "tracepoint"}
KIND_NAMES = {k: k.name.lower() for k in Kind}
# Plain-int lookups for the per-event path: an Enum call or an IntFlag `&`
# costs about a microsecond each, a third of decode() before these tables.
_KINDS: dict[int, Kind] = {int(k): k for k in Kind}
_RUNG_NAMES: dict[int, str] = {int(r): n for r, n in RUNG_NAMES.items()}
_TRUNCATED = int(EvFlag.TRUNCATED)
_NOAUDIT_OPTS = int(EvFlag.NOAUDIT_OPTS)
_NOAUDIT_CALL_SITE = int(EvFlag.NOAUDIT_CALL_SITE)
_CONTEXT = int(EvFlag.CONTEXT)
_ARGV_TRUNCATED = int(ExecFlag.ARGV_TRUNCATED)
_PATH_KINDS = abi.PATH_KIND_NAMES
# A process event outside the kernel's scope filters (--pid, --uid, --comm,
# --cgroup): the Session feeds it to the process tree and pops this key; no
# consumer sees either.
CONTEXT_ONLY = "_context_only"
_PROCESS_KINDS = (Kind.EXEC, Kind.FORK, Kind.EXIT)
BPF_CMDS = (
    "MAP_CREATE",
    "MAP_LOOKUP_ELEM",
    "MAP_UPDATE_ELEM",
    "MAP_DELETE_ELEM",
    "MAP_GET_NEXT_KEY",
    "PROG_LOAD",
    "OBJ_PIN",
    "OBJ_GET",
    "PROG_ATTACH",
    "PROG_DETACH",
    "PROG_TEST_RUN",
)


DENY_ERRNOS = frozenset({errno_mod.EPERM, errno_mod.EACCES})

# The event form: a JSON-ready dict (docs/events.md, lsmtrace/event.schema.json),
# built once per event by the Session and shared read-only by every consumer.
Event = dict[str, Any]


def cap_name(cap: int) -> str:
    return CAP_NAMES[cap] if 0 <= cap < len(CAP_NAMES) else f"CAP_{cap}"


def errno_name(ret: int) -> str | None:
    if ret >= 0:
        return None
    return errno_mod.errorcode.get(-ret, f"E{-ret}")


def signal_name(sig: int) -> str | None:
    if sig == 0:
        return None
    try:
        return signal.Signals(sig).name
    except ValueError:
        return f"SIG{sig}"


def prot_string(prot: int) -> str:
    return "".join(
        c if prot & bit else "-" for c, bit in (("r", 1), ("w", 2), ("x", 4))
    )


def cstr(raw: bytes) -> str:
    """A C string buffer as str; invalid UTF-8 kept losslessly (surrogateescape)."""
    return raw.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


@dataclass(frozen=True)
class IdNames:
    """What user space knows about the ids the kernel side used."""

    names: Mapping[int, str]
    families: Mapping[int, str]

    def name(self, id_: int) -> str:
        return self.names.get(id_, f"id{id_}")

    def family(self, id_: int) -> str | None:
        return self.families.get(id_)


PROCESS_KINDS = ("exec", "fork", "exit")


def verdict_of(kind: str, ret: int) -> str:
    """The one verdict rule: allow | deny | error. A hook's non-zero return is
    a denial; a syscall's is one only for EPERM/EACCES (ENOENT is no decision)."""
    if ret >= 0:
        return "allow"
    if kind == "syscall" and -ret not in DENY_ERRNOS:
        return "error"
    return "deny"


class WallClock:
    """Maps kernel monotonic ns to wall time (offset taken once, injectable)."""

    def __init__(self, offset_ns: int | None = None) -> None:
        if offset_ns is None:
            offset_ns = time.time_ns() - time.monotonic_ns()
        self.offset_ns = offset_ns
        self._sec: int | None = None
        self._prefix = ""

    def wall_ns(self, ts_ns: int) -> int:
        return ts_ns + self.offset_ns

    def second(self, sec: int) -> str:
        """The ISO text of a wall-clock second, up to its fraction."""
        if sec != self._sec:  # events come in bursts: format each second once
            self._sec = sec
            self._prefix = datetime.fromtimestamp(sec, tz=UTC).strftime(
                "%Y-%m-%dT%H:%M:%S"
            )
        return self._prefix

    def iso(self, ts_ns: int) -> str:
        ns = self.wall_ns(ts_ns)
        return f"{self.second(ns // 1_000_000_000)}.{(ns // 1000) % 1_000_000:06d}Z"


def _sock(s: abi.ObjSock) -> dict[str, Any]:
    out: dict[str, Any] = {"family": AF_NAMES.get(s.family, s.family)}
    if s.type:
        out["type"] = SOCK_TYPES.get(s.type & 0xF, s.type)
    if s.protocol:
        out["protocol"] = s.protocol
    # an address only when one was passed (connect/bind/sendto), a port also
    # when the socket has a local one (listen/accept hooks)
    if s.family == 2 and s.addrlen:
        out["addr"] = str(ipaddress.IPv4Address(bytes(s.addr[:4])))
    elif s.family == 10 and s.addrlen:
        out["addr"] = str(ipaddress.IPv6Address(bytes(s.addr)))
    if s.family in (2, 10) and (s.addrlen or s.port):
        out["port"] = s.port
    elif s.family == 1 and s.addrlen > 2:
        raw = bytes(s.path)[: max(0, min(s.addrlen - 2, 108))]
        if raw.startswith(b"\0"):
            # abstract socket, ss(8) style: the name is every byte of addrlen
            out["path"] = "@" + raw[1:].decode("utf-8", "surrogateescape")
        else:
            out["path"] = cstr(raw)
    return out


def _exec(p: abi.ObjProc) -> dict[str, Any]:
    """filename (the executable: a script's interpreter), `given` (the name the
    exec call was given, when it is not that path: a script, a symlink, a
    relative name), then the head of argv (NUL-separated; the last argument
    may be cut when argv_truncated)."""
    raw = bytes(p.buf)
    fn_len = min(p.filename_len, len(raw))
    filename = cstr(raw[:fn_len])
    out: dict[str, Any] = {"filename": filename}
    g_len = min(p.given_len, len(raw) - fn_len)
    if g_len:
        given = cstr(raw[fn_len : fn_len + g_len])
        if given and given != filename:
            out["given"] = given
    start = fn_len + g_len
    argv = raw[start : start + p.argv_len]
    if argv.endswith(b"\0"):
        argv = argv[:-1]
    out["argv"] = (
        [a.decode("utf-8", "surrogateescape") for a in argv.split(b"\0")]
        if argv
        else []
    )
    out["argv_truncated"] = bool(p.flags & _ARGV_TRUNCATED)
    return out


def _object(
    ev: abi.Event, obj_type: int, syscall: str | None, hook: str = ""
) -> dict[str, Any]:
    # The one object decoder. It reads ev.obj and ev.kind only (with obj_type,
    # syscall and hook): Decoder.decode_batch memoizes it on exactly those, so
    # a rule that reads another header field must add that field to its key.
    o = ev.obj
    if obj_type in (ObjType.FILE, ObjType.EXEC, ObjType.MOUNT, ObjType.MODULE):
        f = o.file
        out: dict[str, Any] = {}
        path = cstr(f.path)
        name = cstr(f.name)
        if obj_type == ObjType.MOUNT:
            out["source"] = path
            if name:
                out["fstype"] = name
            if f.flags:
                out["flags"] = f.flags
            return out
        if path:
            out["path"] = path
            kind = _PATH_KINDS.get(f.path_kind)
            if kind is not None:
                out["path_kind"] = kind
        elif obj_type in (ObjType.FILE, ObjType.MODULE) and f.dfd >= 0:
            out["fd"] = f.dfd
        if name:
            out["path2"] = name
        if f.flags:
            out["flags"] = f.flags
        if f.mode:
            out["mode"] = oct(f.mode)
        if f.mask:
            out["mask"] = f.mask
        if f.ino:
            out["ino"] = f.ino
            out["dev"] = f.dev
        return out
    if obj_type == ObjType.CAP:
        return {"cap": o.cap.cap, "cap_name": cap_name(o.cap.cap), "opts": o.cap.opts}
    if obj_type == ObjType.SOCK:
        return _sock(o.sock)
    if obj_type == ObjType.NICE:
        n = o.nice
        if ev.kind == Kind.SYSCALL:
            return {"which": n.which, "who": n.who, "nice": n.nice}
        return {
            "target_pid": n.target_pid,
            "nice": n.nice,
            "target_comm": cstr(n.target_comm),
        }
    if obj_type == ObjType.SIGNAL:
        out = {
            "sig": o.signal.sig,
            "sig_name": signal_name(o.signal.sig),
            "target_pid": o.signal.target_pid,
        }
        comm = cstr(o.signal.target_comm)
        if comm:
            out["target_comm"] = comm
        return out
    if obj_type == ObjType.PTRACE:
        out = {"target_pid": o.ptrace.target_pid}
        if syscall:
            out["request"] = o.ptrace.request
        else:
            out["mode"] = o.ptrace.mode
        comm = cstr(o.ptrace.target_comm)
        if comm:
            out["target_comm"] = comm
        return out
    if obj_type == ObjType.MEM:
        m = o.mem
        out = {"prot": prot_string(m.prot), "prot_raw": m.prot}
        if cstr(m.path):
            out["path"] = cstr(m.path)
        if m.reqprot != m.prot:
            out["reqprot"] = prot_string(m.reqprot)
        if m.flags:
            out["flags"] = m.flags
        if m.len:
            out["len"] = m.len
        if m.fd >= 0:
            out["fd"] = m.fd
        return out
    if obj_type == ObjType.SETID:
        return {"ids": list(o.setid.ids), "flags": o.setid.flags}
    if obj_type == ObjType.BPF:
        cmd = o.bpf.cmd
        return {
            "cmd": cmd,
            "cmd_name": BPF_CMDS[cmd] if 0 <= cmd < len(BPF_CMDS) else None,
        }
    if obj_type == ObjType.LOCKDOWN:
        return {"reason": o.lockdown.reason}
    if obj_type == ObjType.AVC:
        a = o.avc
        return {
            "requested": a.requested,
            "denied": a.denied,
            "audited": a.audited,
            "result": a.result,
            "tclass": cstr(a.tclass),
            "scontext": cstr(a.scontext),
            "tcontext": cstr(a.tcontext),
        }
    if obj_type == ObjType.PROC:
        p = o.proc
        if ev.kind == Kind.FORK:
            return {"child_pid": p.child_pid}
        if ev.kind == Kind.EXIT:
            return {"exit_code": p.exit_code}
        return _exec(p)
    return {}


class Decoder:
    """Wire bytes -> the event dict of docs/events.md (the one event form every
    consumer sees). Holds what user space knows about ids and the wall clock."""

    def __init__(
        self,
        ids: IdNames,
        syscall_names: Mapping[int, str],
        clock: WallClock | None = None,
    ) -> None:
        self.ids = ids
        self.syscall_names = syscall_names
        self.clock = clock or WallClock()
        # decode_batch's memos: raw comm -> str, raw object -> object dict,
        # an event's bytes after its timestamps -> the event (but them)
        self._comms: dict[bytes, str] = {}
        self._events: dict[bytes, Event] = {}
        # the event memo costs ~0.5 µs a miss and saves ~2 µs a hit: used while
        # a quarter of a batch hits, tried again every 16th batch otherwise
        self._memo_on = True
        self._batches = 0
        self._objects: dict[
            tuple[bytes, int, str, str | None, int], dict[str, Any]
        ] = {}

    def decode(self, raw: bytes | bytearray | memoryview, offset: int = 0) -> Event:
        """Decode one wire event (sizeof(struct lsmt_event) bytes at `offset`)."""
        if len(raw) - offset < abi.EVENT_SIZE:
            raise ValueError(
                f"short event: {len(raw) - offset} < {abi.EVENT_SIZE} bytes"
            )
        ev = abi.Event.from_buffer_copy(raw, offset)
        kind = _KINDS.get(ev.kind)
        kind_name = KIND_NAMES[kind] if kind else f"kind{ev.kind}"
        process = kind in _PROCESS_KINDS
        ids = self.ids
        hook = kind_name if process else ids.name(ev.id)
        nr = ev.syscall
        syscall = None
        if nr >= 0:
            syscall = self.syscall_names.get(nr) or f"syscall{nr}"
        ret = ev.ret
        flags = ev.flags
        lsm = abi.lsm_name(ev.lsm)
        obj_type = ev.obj_type
        out: Event = {
            "time": self.clock.iso(ev.ts_ns),
            "ts_ns": ev.ts_ns,
            "rung": _RUNG_NAMES.get(ev.rung, "?"),
            "kind": kind_name,
            "hook": hook,
            "family": "process" if process else ids.family(ev.id),
            "verdict": verdict_of(kind_name, ret),
            "ret": ret,
            "errno": errno_name(ret),
            "lsm": lsm,
            "lsm_source": "hook" if lsm is not None else None,
            "pid": ev.pid,
            "tgid": ev.tgid,
            "ppid": ev.ppid,
            "uid": ev.uid,
            "euid": ev.euid,
            "gid": ev.gid,
            "comm": cstr(ev.comm),
            "cgroup": ev.cgroup_id,
            "mntns": ev.mntns,
            "syscall": syscall,
            "latency_ns": ev.latency_ns or None,
            "object": _object(ev, obj_type, syscall if kind == Kind.SYSCALL else None),
            "truncated": bool(flags & _TRUNCATED),
        }
        if obj_type == ObjType.CAP:
            # a refused check that refused nothing (CAP_OPT_NOAUDIT)
            quiet = flags & (_NOAUDIT_OPTS | _NOAUDIT_CALL_SITE)
            out["noaudit"] = bool(quiet)
            if quiet:
                out["noaudit_by"] = "opts" if flags & _NOAUDIT_OPTS else "call_site"
        elif flags & _CONTEXT and process:
            out[CONTEXT_ONLY] = True
        return out

    def decode_batch(
        self, chunk: bytes | bytearray | memoryview, offsets: list[int]
    ) -> list[Event]:
        """The events at `offsets` of `chunk`: equal to decode() of each, about
        three times faster. The timestamps are read first (_TIMES), the rest of
        the header with one struct unpack laid out from the ctypes mirror
        (_HEADER), only for an event not seen lately; the object goes through _object(),
        the one object decoder, once per distinct (raw object, kind, hook,
        syscall): repeated accesses share one read-only object dict.

        An event whose bytes after its two timestamps (the process, hook,
        verdict, object: everything) were seen lately is a copy of the one
        decoded then with its own timestamps: a program repeating an access
        (the same read, open, capability check) costs a dict copy, not a decode.
        While batches are mostly new events the memo rests (see _memo_on).
        """
        if not isinstance(chunk, bytes):
            chunk = bytes(chunk)  # slices of it are memo keys
        unpack = _HEADER.unpack_from
        unpack_times = _TIMES.unpack_from
        ids, clock, sysnames = self.ids, self.clock, self.syscall_names
        names, families = ids.names, ids.families
        comms, objects, seen = self._comms, self._objects, self._events
        # clock.iso() inlined: one call per second, not two per event
        offset_ns, second = clock.offset_ns, clock.second
        last_sec, prefix = -1, ""
        obj_lo, obj_hi = _OBJ_OFFSET, _OBJ_OFFSET + _OBJ_SIZE
        comm_lo, comm_hi = _COMM_OFFSET, _COMM_OFFSET + abi.COMM_LEN
        size = abi.EVENT_SIZE
        end = len(chunk)
        out: list[Event] = []
        append = out.append
        memo = self._memo_on or not self._batches & 15
        self._batches += 1
        hits = 0
        same = last_key = b""
        last: Event | None = None
        e: Event
        for off in offsets:
            if end - off < size:
                raise ValueError(f"short event: {end - off} < {size} bytes")
            ts, latency = unpack_times(chunk, off)
            ns = ts + offset_ns
            if ns // 1_000_000_000 != last_sec:
                last_sec = ns // 1_000_000_000
                prefix = second(last_sec)
            when = f"{prefix}.{(ns // 1000) % 1_000_000:06d}Z"
            if memo:
                # the same as the event before (a loop's repeated access):
                # compared in place, no key made or hashed
                before: Event | None
                if last is not None and chunk.startswith(last_key, off + _AFTER_TIMES):
                    before = last
                else:
                    same = chunk[off + _AFTER_TIMES : off + size]
                    before = seen.get(same)
                    if before is not None:
                        last, last_key = before, same
                if before is not None:
                    e = before.copy()
                    e["time"] = when
                    e["ts_ns"] = ts
                    e["latency_ns"] = latency or None
                    append(e)
                    hits += 1
                    continue
            (
                cgroup,
                kind,
                rung,
                id_,
                lsm,
                ret,
                nr,
                pid,
                tgid,
                ppid,
                uid,
                euid,
                gid,
                mntns,
                obj_type,
                flags,
            ) = unpack(chunk, off)
            kind_name = _KIND_NAMES_INT.get(kind) or f"kind{kind}"
            if kind_name in PROCESS_KINDS:
                hook: str = kind_name
                family: str | None = "process"
            else:
                hook = names.get(id_)  # type: ignore[assignment]
                if hook is None:
                    hook = f"id{id_}"
                family = families.get(id_)
            syscall = None
            if nr >= 0:
                syscall = sysnames.get(nr) or f"syscall{nr}"
            raw_comm = chunk[off + comm_lo : off + comm_hi]
            comm = comms.get(raw_comm)
            if comm is None:
                if len(comms) > 4096:
                    comms.clear()
                comm = comms[raw_comm] = cstr(raw_comm)
            call = syscall if kind_name == "syscall" else None
            key = (chunk[off + obj_lo : off + obj_hi], obj_type, hook, call, kind)
            obj = objects.get(key)
            if obj is None:
                if len(objects) > 8192:
                    objects.clear()
                ev = abi.Event.from_buffer_copy(chunk, off)
                obj = objects[key] = _object(ev, obj_type, call, hook)
            lsm_name = _LSM_NAMES.get(lsm, _MISSING)
            if lsm_name is _MISSING:
                lsm_name = abi.lsm_name(lsm)
            if ret >= 0:
                verdict, err = "allow", None
            else:
                verdict = verdict_of(kind_name, ret)
                err = errno_name(ret)
            e = {
                "time": when,
                "ts_ns": ts,
                "rung": _RUNG_NAMES.get(rung, "?"),
                "kind": kind_name,
                "hook": hook,
                "family": family,
                "verdict": verdict,
                "ret": ret,
                "errno": err,
                "lsm": lsm_name,
                "lsm_source": "hook" if lsm_name is not None else None,
                "pid": pid,
                "tgid": tgid,
                "ppid": ppid,
                "uid": uid,
                "euid": euid,
                "gid": gid,
                "comm": comm,
                "cgroup": cgroup,
                "mntns": mntns,
                "syscall": syscall,
                "latency_ns": latency or None,
                "object": obj,
                "truncated": bool(flags & _TRUNCATED),
            }
            if obj_type == _OBJ_CAP:
                quiet = flags & (_NOAUDIT_OPTS | _NOAUDIT_CALL_SITE)
                e["noaudit"] = bool(quiet)
                if quiet:
                    e["noaudit_by"] = "opts" if flags & _NOAUDIT_OPTS else "call_site"
            elif flags & _CONTEXT and family == "process":
                e[CONTEXT_ONLY] = True
            if memo:
                if len(seen) >= _SEEN_EVENTS:
                    seen.clear()
                last = seen[same] = e.copy()  # consumers add to and take from theirs
                last_key = same
            append(e)
        if memo:
            self._memo_on = hits * 4 >= len(offsets)
        return out


def _header_struct() -> tuple[struct.Struct, tuple[str, ...]]:
    """One struct format for the scalar fields of struct lsmt_event after its
    two timestamps (_TIMES reads those), laid out from the ctypes mirror's own
    offsets and sizes (abi.Event)."""
    fmt, pos, fields = "<", 0, []
    for field in abi.Event._fields_:
        name, ctype = field[0], field[1]
        desc = getattr(abi.Event, name)
        if name in ("ts_ns", "latency_ns", "comm", "obj"):
            continue
        code = {1: "b", 2: "h", 4: "i", 8: "q"}[desc.size]
        if not str(ctype._type_).islower():  # type: ignore[union-attr]  # signed: lower
            code = code.upper()
        fmt += "x" * (desc.offset - pos) + code
        pos = desc.offset + desc.size
        fields.append(name)
    return struct.Struct(fmt), tuple(fields)


_HEADER, HEADER_FIELDS = _header_struct()
# decode_batch unpacks the header into these names, in this order: a field added
# to struct lsmt_event (and abi.Event) must be added there too.
assert HEADER_FIELDS == (
    "cgroup_id",
    "kind",
    "rung",
    "id",
    "lsm",
    "ret",
    "syscall",
    "pid",
    "tgid",
    "ppid",
    "uid",
    "euid",
    "gid",
    "mntns",
    "obj_type",
    "flags",
), f"decode_batch needs updating for the header fields {HEADER_FIELDS}"
_OBJ_OFFSET, _OBJ_SIZE = abi.Event.obj.offset, abi.Event.obj.size
# The two per-event timestamps lead the wire event; the rest is decode_batch's
# memo key of a repeated event.
_TIMES = struct.Struct("<QQ")
assert (abi.Event.ts_ns.offset, abi.Event.latency_ns.offset) == (0, 8)
_AFTER_TIMES = _TIMES.size
_SEEN_EVENTS = 2048  # repeated events remembered (~1.5 kB each)
_COMM_OFFSET = abi.Event.comm.offset
_KIND_NAMES_INT: dict[int, str] = {int(k): n for k, n in KIND_NAMES.items()}
_LSM_NAMES: dict[int, str | None] = {int(k): v for k, v in abi.LSM_NAMES.items()}
_MISSING = object()
_OBJ_CAP = int(ObjType.CAP)


def decode(
    raw: bytes | bytearray | memoryview,
    ids: IdNames,
    syscall_names: Mapping[int, str],
    offset: int = 0,
    clock: WallClock | None = None,
) -> Event:
    """One wire event as its event dict (a Decoder for one call)."""
    return Decoder(ids, syscall_names, clock).decode(raw, offset)


assert ct.sizeof(abi.Event) == abi.EVENT_SIZE
