"""Audit records of security decisions: parse, group by event, summarize. Pure.

The kernel writes each audit record as one text, ``audit(SECONDS.MS:SERIAL): ``
followed by ``key=value`` fields (lsmtrace/auditnl.py reads them from netlink).
All records of one event share the serial; a syscall's group ends with an EOE
record. Records made outside a syscall context (seccomp, a Landlock domain
freed by a worker, any LSM record of a task without an audit context, e.g.
under the ``-a never,task`` rule) come alone, each with its own serial and no
EOE: :class:`Grouper` closes such groups after a short timeout.

Values (kernel/audit.c, ``audit_log_untrustedstring``): a name-like value is
written ``"quoted"`` when it holds only printable ASCII other than ``"`` and
space, else as unquoted upper-case hex of its bytes. ``(null)``, ``?`` and
numbers are written bare. So an unquoted all-hex value is hex-decoded only for
fields that carry names (:data:`NAME_FIELDS`); ``pid=4010`` stays decimal.
Decoded bytes that are not UTF-8 are kept with ``surrogateescape``, like every
string lsmtrace reports.

Record formats this module reads (kernel source, format strings quoted):
- SYSCALL 1300, kernel/auditsc.c audit_log_exit: ``"arch=%x syscall=%d"``,
  ``" success=%s exit=%ld"``, ``" a0=%lx a1=%lx a2=%lx a3=%lx items=%d"``, then
  audit_log_task_info ``" ppid=%d pid=%d auid=%u uid=%u ..."`` ``" comm="``
  ``" exe="`` ``" key="`` (pid is the thread group id).
- PATH 1302 (``"item=%d"``, ``" name="``...), CWD 1307 (``"cwd="``), PROCTITLE
  1327 (``"proctitle="``, hex: its arguments are NUL-separated), EOE 1320 (empty).
- SECCOMP 1326, kernel/auditsc.c audit_seccomp: audit_log_task
  (``"auid=%u uid=%u gid=%u ses=%u"``, ``" pid=%d comm="``, ``" exe="``) then
  ``" sig=%ld arch=%x syscall=%ld compat=%d ip=0x%lx code=0x%x"``.
- AVC 1400, security/lsm_audit.c common_lsm_audit: the LSM's pre-callback,
  ``" pid=%d comm="`` and the object (``" path="``, ``" name="``, ``" dev="``,
  ``" ino=%lu"``, ``" capability=%d "``...), then the post-callback.
  SELinux (security/selinux/avc.c): ``"avc:  %s "`` (denied|granted),
  ``" {"`` ``" %s"``... ``" } for "``, then ``" scontext=%s"``
  ``" tcontext=%s"`` ``" tclass=%s"`` ``" permissive=%u"``.
  AppArmor (security/apparmor/audit.c audit_pre): ``"apparmor=\\"%s\\""``
  (DENIED, ALLOWED, AUDIT...), ``" operation=\\"%s\\""``, ``" class=\\"%s\\""``,
  ``" info=\\"%s\\""``, ``" profile="`` (untrusted string), ``" name="``; the
  file callback adds ``" requested_mask=\\"%s\\""`` ``" denied_mask=\\"%s\\""``.
- LANDLOCK_ACCESS 1423, security/landlock/audit.c landlock_log_denial:
  ``"domain=%llx blockers="`` then the blockers (``fs.read_file,...``) and the
  object (``" path="``... as above, no pid); LANDLOCK_DOMAIN 1424 log_domain:
  ``"domain=%llx status=allocated mode=enforcing pid=%d uid=%u exe="``
  ``" comm="``, logged with the domain's first denial only, and
  ``"domain=%llx status=deallocated denials=%llu"`` when the domain is freed.
"""

from __future__ import annotations

import re
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

SYSCALL, PATH, CONFIG_CHANGE, CWD, EOE = 1300, 1302, 1305, 1307, 1320
SECCOMP, PROCTITLE, BPF = 1326, 1327, 1334
AVC, LANDLOCK_ACCESS, LANDLOCK_DOMAIN = 1400, 1423, 1424

TYPE_NAMES = {
    SYSCALL: "SYSCALL",
    PATH: "PATH",
    CONFIG_CHANGE: "CONFIG_CHANGE",
    CWD: "CWD",
    EOE: "EOE",
    SECCOMP: "SECCOMP",
    PROCTITLE: "PROCTITLE",
    BPF: "BPF",
    AVC: "AVC",
    LANDLOCK_ACCESS: "LANDLOCK_ACCESS",
    LANDLOCK_DOMAIN: "LANDLOCK_DOMAIN",
}
DECISION_TYPES = frozenset({AVC, LANDLOCK_ACCESS, SECCOMP})
# In a syscall's group the LSM's records come first (written at the decision),
# the SYSCALL, CWD, PATH, PROCTITLE and EOE records at syscall exit: a serial
# that does not start with one of these holds no decision and is not read.
STARTS_GROUP = DECISION_TYPES | {LANDLOCK_DOMAIN}

# Fields written with audit_log_untrustedstring / audit_log_d_path / the hex of
# proctitle: an unquoted all-hex value of these is an encoded name.
NAME_FIELDS = frozenset(
    {
        "path",
        "name",
        "exe",
        "comm",
        "proctitle",
        "cwd",
        "dev",
        "ocomm",
        "profile",
        "label",
        "peer",
        "namespace",
        "target",
        "peer_label",
        "srawcon",
        "trawcon",
        "kmod",
        "key_desc",
        "fstype",
        "srcname",
        "flags_str",
        "old_name",
        "new_name",
    }
)
# `key` is a name in SYSCALL records (the rule key) and a decimal IPC key in AVCs
_NAME_FIELDS_BY_TYPE = {SYSCALL: NAME_FIELDS | {"key"}}

_HEADER = re.compile(r"audit\((\d+)\.(\d+):(\d+)\):\s?")
_FIELD = re.compile(r"""(?:^|(?<=\s))([\w.-]+)=("[^"]*"|'[^']*'|\S*)""")
_HEX = re.compile(r"(?:[0-9A-F]{2})+")
_PERMS = re.compile(r"\{\s*([^}]*?)\s*\}")

# audit arch (AUDIT_ARCH_*) of the machines lsmtrace knows
AUDIT_ARCH = {"c000003e": "x86_64", "c00000b7": "aarch64"}

SECCOMP_ACTIONS = {
    0x80000000: "kill_process",
    0x00000000: "kill_thread",
    0x00030000: "trap",
    0x00050000: "errno",
    0x7FC00000: "user_notif",
    0x7FF00000: "trace",
    0x7FFC0000: "log",
    0x7FFF0000: "allow",
}
SECCOMP_ACTION_MASK = 0xFFFF0000


def decode_value(raw: str, name_like: bool) -> str:
    """One audit value as text: quotes removed, hex names decoded exactly."""
    if not raw:
        return raw
    first = raw[0]
    if first == '"' or first == "'":
        return raw[1:-1] if len(raw) >= 2 and raw[-1] == first else raw[1:]
    if name_like and _HEX.fullmatch(raw):
        return bytes.fromhex(raw).decode("utf-8", "surrogateescape")
    return raw


def parse_fields(body: str, record_type: int = 0) -> tuple[str, dict[str, str]]:
    """(text before the first field, {key: decoded value}) of a record body."""
    names = _NAME_FIELDS_BY_TYPE.get(record_type, NAME_FIELDS)
    fields: dict[str, str] = {}
    prefix_end = None
    for m in _FIELD.finditer(body):
        if prefix_end is None:
            prefix_end = m.start()
        key = m.group(1)
        fields.setdefault(key, decode_value(m.group(2), key in names))
    prefix = body[: prefix_end if prefix_end is not None else len(body)].strip()
    return prefix, fields


class Record:
    """One audit record. The header is parsed at once (grouping needs it); the
    text is decoded and the fields parsed only when asked for."""

    __slots__ = ("_body", "_fields", "_prefix", "_raw", "msec", "sec", "serial", "type")

    def __init__(
        self, type_: int, sec: int, msec: int, serial: int, body: str | bytes
    ) -> None:
        self.type = type_
        self.sec = sec
        self.msec = msec
        self.serial = serial
        self._body = body if isinstance(body, str) else None
        self._raw = body if isinstance(body, bytes) else b""
        self._fields: dict[str, str] | None = None
        self._prefix = ""

    @property
    def body(self) -> str:
        """The text after the header (the kernel writes ASCII; any other byte
        is kept losslessly with surrogateescape)."""
        if self._body is None:
            self._body = self._raw.rstrip(b"\0\n").decode("utf-8", "surrogateescape")
        return self._body

    def _parse(self) -> dict[str, str]:
        self._prefix, self._fields = parse_fields(self.body, self.type)
        return self._fields

    @property
    def fields(self) -> dict[str, str]:
        return self._fields if self._fields is not None else self._parse()

    @property
    def prefix(self) -> str:
        """Text before the first key=value (SELinux: ``avc:  denied  { read } for``)."""
        if self._fields is None:
            self._parse()
        return self._prefix

    def get(self, key: str) -> str | None:
        if self._fields is None and self.type in _SEARCHABLE:
            raw = _find(self.body, key)
            if raw is None:
                return None
            names = _NAME_FIELDS_BY_TYPE.get(self.type, NAME_FIELDS)
            return decode_value(raw, key in names)
        return self.fields.get(key)

    @property
    def time_ns(self) -> int:
        return self.sec * 1_000_000_000 + self.msec * 1_000_000

    @property
    def type_name(self) -> str:
        return TYPE_NAMES.get(self.type, str(self.type))

    def __repr__(self) -> str:
        return f"Record({self.type}, {self.sec}.{self.msec:03d}:{self.serial}, {self.body!r})"


# Types whose quoted values never hold a space (all are untrusted strings, hex
# when they would): one key can be searched for without parsing the rest, and
# ` pid=` cannot hide inside a value. Not AVC: AppArmor's info="..." is free text.
_SEARCHABLE = frozenset({SYSCALL, LANDLOCK_ACCESS, LANDLOCK_DOMAIN, SECCOMP})


def _find(body: str, key: str) -> str | None:
    """The raw value of the first ``key=`` field of a body (str.find: the
    kernel separates fields with spaces), as parse_fields would read it."""
    if body.startswith(key + "="):
        start = len(key) + 1
    else:
        i = body.find(" " + key + "=")
        if i < 0:
            return None
        start = i + len(key) + 2
    if start < len(body) and body[start] in "\"'":
        end = body.find(body[start], start + 1)
        return body[start:] if end < 0 else body[start : end + 1]
    end = body.find(" ", start)
    return body[start:] if end < 0 else body[start:end]


def header(payload: bytes) -> tuple[int, int, int, int] | None:
    """(seconds, milliseconds, serial, where the text starts) of a record
    ``audit(SECONDS.MS:SERIAL): ...``, or None."""
    if not payload.startswith(b"audit("):
        return None
    close = payload.find(b"):", 6)
    if close < 0:
        return None
    sec, _, rest = payload[6:close].partition(b".")
    msec, _, serial = rest.partition(b":")
    try:
        return int(sec), int(msec), int(serial), close + 3
    except ValueError:
        return None


def parse(record_type: int, payload: bytes | str) -> Record | None:
    """A record from its netlink payload; None when it has no audit header."""
    if isinstance(payload, str):
        text = payload.rstrip("\0\n")
        m = _HEADER.match(text)
        if m is None:
            return None
        return Record(
            record_type,
            int(m.group(1)),
            int(m.group(2)),
            int(m.group(3)),
            text[m.end() :],
        )
    raw = bytes(payload)
    h = header(raw)
    if h is None:
        return None
    return Record(record_type, h[0], h[1], h[2], raw[h[3] :])


def parse_line(line: str) -> Record | None:
    """A ``TYPE TEXT`` line (tests/data/audit/*.records) or an auditd log line
    (``type=AVC msg=audit(...): ...``; named types of TYPE_NAMES only)."""
    line = line.rstrip("\n")
    head, _, rest = line.partition(" ")
    if head.isdigit():
        return parse(int(head), rest)
    if head.startswith("type="):
        name = head[5:]
        num = next((k for k, v in TYPE_NAMES.items() if v == name), None)
        if name.startswith("UNKNOWN[") and name.endswith("]"):
            num = int(name[8:-1])
        if num is not None and rest.startswith("msg="):
            return parse(num, rest[4:])
    return None


class Group:
    """The records of one audit event (one serial)."""

    __slots__ = ("complete", "msec", "received", "records", "sec", "serial")

    def __init__(self, serial: int, sec: int, msec: int, received: float) -> None:
        self.serial = serial
        self.sec = sec
        self.msec = msec
        self.received = received  # monotonic time the first record was read
        self.records: list[Record] = []
        self.complete = False  # an EOE arrived (else: closed by timeout)

    def get(self, type_: int) -> Record | None:
        for r in self.records:
            if r.type == type_:
                return r
        return None

    @property
    def types(self) -> list[int]:
        return [r.type for r in self.records]

    @property
    def time_ns(self) -> int:
        return self.sec * 1_000_000_000 + self.msec * 1_000_000

    @property
    def decision(self) -> Record | None:
        """The record of the security decision, if the group has one."""
        for r in self.records:
            if r.type in DECISION_TYPES:
                return r
        return None

    def __repr__(self) -> str:
        return f"Group({self.serial}, {self.types}, complete={self.complete})"


class Grouper:
    """Records -> groups by serial. A group opens with a decision record (or a
    Landlock domain record) and takes the later records of its serial; records
    of other serials are skipped unread (counted in ``skipped``). A group is
    done at its EOE, at once for a record that never has company (SECCOMP, a
    deallocated Landlock domain), or ``timeout`` seconds after its first
    record. At most ``max_open`` groups wait: beyond, the oldest is closed early
    (counted in ``forced``)."""

    def __init__(
        self,
        timeout: float = 0.05,
        max_open: int = 4096,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.timeout = timeout
        self.max_open = max_open
        self.clock = clock
        self._open: OrderedDict[int, Group] = OrderedDict()
        self.records = 0
        self.malformed = 0
        self.skipped = 0  # records of events without a decision (BPF loads...)
        self.groups = 0
        self.forced = 0

    def add(
        self, raw: Iterable[tuple[int, bytes | str]], now: float | None = None
    ) -> list[Group]:
        """Parse and group ``(type, payload)`` pairs (AuditReader.read())."""
        now = self.clock() if now is None else now
        done: list[Group] = []
        open_ = self._open
        for rtype, payload in raw:
            self.records += 1
            if isinstance(payload, str):
                rec = parse(rtype, payload)
                if rec is None:
                    self.malformed += 1
                    continue
                self._add(rec, now, done)
                continue
            h = header(payload)
            if h is None:
                self.malformed += 1
                continue
            if h[2] not in open_ and rtype not in STARTS_GROUP:
                self.skipped += 1  # no decision opened this serial: not read
                continue
            self._add(Record(rtype, h[0], h[1], h[2], payload[h[3] :]), now, done)
        done += self.flush(now)
        return done

    def add_records(
        self, records: Iterable[Record], now: float | None = None
    ) -> list[Group]:
        now = self.clock() if now is None else now
        done: list[Group] = []
        for rec in records:
            self.records += 1
            if rec.serial not in self._open and rec.type not in STARTS_GROUP:
                self.skipped += 1
                continue
            self._add(rec, now, done)
        done += self.flush(now)
        return done

    def _add(self, rec: Record, now: float, done: list[Group]) -> None:
        g = self._open.get(rec.serial)
        if g is None:
            g = Group(rec.serial, rec.sec, rec.msec, now)
            self._open[rec.serial] = g
            if len(self._open) > self.max_open:
                _, oldest = self._open.popitem(last=False)
                self.forced += 1
                self._close(oldest, done)
        g.records.append(rec)
        if rec.type == EOE or _alone(rec):
            g.complete = True
            del self._open[rec.serial]
            self._close(g, done)

    def _close(self, g: Group, done: list[Group]) -> None:
        self.groups += 1
        done.append(g)

    def flush(self, now: float | None = None) -> list[Group]:
        """Groups whose first record is older than ``timeout``."""
        now = self.clock() if now is None else now
        done: list[Group] = []
        while self._open:
            serial, g = next(iter(self._open.items()))
            if now - g.received < self.timeout:
                break
            del self._open[serial]
            self._close(g, done)
        return done

    def drain(self) -> list[Group]:
        """Every open group, now (at the end of a session)."""
        done: list[Group] = []
        while self._open:
            _, g = self._open.popitem(last=False)
            self._close(g, done)
        return done

    @property
    def pending(self) -> int:
        return len(self._open)


def _alone(rec: Record) -> bool:
    """Records the kernel never writes inside a syscall's group: seccomp runs
    before syscall entry; a domain is freed by a kernel worker."""
    if rec.type == SECCOMP:
        return True
    return rec.type == LANDLOCK_DOMAIN and "status=deallocated" in rec.body


# -- the normalized `audit` object ------------------------------------------------


_ISO_SEC: list[tuple[int, str]] = [(-1, "")]


def iso_ms(sec: int, msec: int) -> str:
    """RFC 3339 UTC with milliseconds (records come in bursts: one format a second)."""
    last, prefix = _ISO_SEC[0]
    if sec != last:
        prefix = datetime.fromtimestamp(sec, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
        _ISO_SEC[0] = (sec, prefix)
    return f"{prefix}.{msec:03d}Z"


Getter = Callable[[str], "str | None"]


def _none(_key: str) -> None:
    return None


def _int(v: str | None, base: int = 10) -> int | None:
    if v is None:
        return None
    try:
        return int(v, base)
    except ValueError:
        return None


def selinux_type(context: str) -> str:
    """``...:type:level`` of a context user:role:type:level (level may hold ':')."""
    parts = context.split(":")
    if len(parts) < 3:
        return context
    return "...:" + ":".join(parts[2:])


def seccomp_action(code: int) -> str:
    return SECCOMP_ACTIONS.get(code & SECCOMP_ACTION_MASK, f"0x{code:x}")


def summarize(group: Group) -> dict[str, Any] | None:
    """The ``audit`` object of a decision group (docs/events.md), or None when
    the group holds no security decision (a BPF load, a config change...)."""
    dec = group.decision
    if dec is None:
        return None
    f = dec.get  # searchable types: no full parse
    sysrec = group.get(SYSCALL)
    # the process: from the SYSCALL record, else from the decision's own fields
    who = sysrec.get if sysrec is not None else f
    sget = sysrec.get if sysrec is not None else _none
    out: dict[str, Any] = {
        "serial": group.serial,
        "time": iso_ms(group.sec, group.msec),
        "lsm": None,
        "result": "denied",
        "pid": _int(who("pid")),
        "comm": who("comm"),
        "exe": who("exe"),
        "syscall": _int(sget("syscall")),
        "exit": _int(sget("exit")),
        "rule": "",
        "types": group.types,
    }
    arch = who("arch")
    if arch is not None:
        out["arch"] = AUDIT_ARCH.get(arch, arch)
    if dec.type == LANDLOCK_ACCESS:
        _landlock(out, dec, group.get(LANDLOCK_DOMAIN))
    elif dec.type == SECCOMP:
        _seccomp(out, f)
    elif "apparmor" in dec.fields:
        _apparmor(out, dec.fields)
    elif dec.prefix.startswith("avc:"):
        _selinux(out, dec.fields, dec.prefix)
    else:
        return None  # an AVC of another LSM (smack "lsm=SMACK"...): not read yet
    cwd = group.get(CWD)
    if cwd is not None:
        out["cwd"] = cwd.get("cwd")
    names = [r.get("name") for r in group.records if r.type == PATH]
    if names:
        out["names"] = names
    return out


def _landlock(out: dict[str, Any], dec: Record, dom: Record | None) -> None:
    # "domain=%llx blockers=" + blockers, then the object's fields
    _, obj = parse_fields(dec.body, LANDLOCK_ACCESS)
    blockers = [b for b in obj.pop("blockers", "").split(",") if b]
    out.update(lsm="landlock", domain=obj.pop("domain", None), blockers=blockers)
    for k, v in obj.items():
        if k not in out:  # the object's fields; never over the process's
            out[k] = _int(v) if k in ("ino", "opid", "lport", "dest") else v
    if dom is not None and dom.get("status") == "allocated":
        out["domain_pid"] = _int(dom.get("pid"))
        out["domain_exe"] = dom.get("exe")
        out["domain_comm"] = dom.get("comm")
    out["rule"] = "landlock " + (",".join(blockers) or "?")


def _seccomp(out: dict[str, Any], f: Getter) -> None:
    # `code` is the action only (seccomp_log() passes SECCOMP_RET_ACTION_FULL):
    # the errno of an ERRNO action is not in the record
    code = _int((f("code") or "").removeprefix("0x"), 16) or 0
    action = seccomp_action(code)
    out.update(lsm="seccomp", action=action, code=f"0x{code:x}")
    out["syscall"] = _int(f("syscall"))
    out["sig"] = _int(f("sig"))
    if action in ("allow", "log"):
        out["result"] = "allowed"
    out["rule"] = f"seccomp {action}"


def _apparmor(out: dict[str, Any], f: Mapping[str, str]) -> None:
    kind = f.get("apparmor", "")
    out["lsm"] = "apparmor"
    out["apparmor"] = kind
    out["result"] = "denied" if kind in ("DENIED", "KILLED") else "allowed"
    for k in (
        "operation",
        "class",
        "profile",
        "label",
        "name",
        "info",
        "target",
        "capname",
        "signal",
        "peer",
    ):
        if k in f:
            out[k] = f[k]
    if "requested_mask" in f:
        out["requested"] = f["requested_mask"]
    if "denied_mask" in f:
        out["denied"] = f["denied_mask"]
    subject = f.get("profile") or f.get("label") or "?"
    what = f.get("denied_mask") or (
        f"cap {f['capname']}" if "capname" in f else f.get("operation", "?")
    )
    mode = "" if kind == "DENIED" else f" {kind}"
    out["rule"] = f"apparmor{mode} profile={subject} {what}"


def _selinux(out: dict[str, Any], f: Mapping[str, str], prefix: str) -> None:
    m = _PERMS.search(prefix)
    perms = m.group(1).split() if m else []
    granted = "granted" in prefix.split("{", 1)[0]
    permissive = f.get("permissive") == "1"
    out.update(
        lsm="selinux",
        perms=perms,
        scontext=f.get("scontext") or f.get("ssid"),
        tcontext=f.get("tcontext") or f.get("tsid"),
        tclass=f.get("tclass"),
        permissive=permissive,
    )
    out["result"] = "allowed" if granted or permissive else "denied"
    for k in ("path", "name", "dev", "capability"):
        if k in f:
            out[k] = f[k]
    if "ino" in f:
        out["ino"] = _int(f["ino"])
    target = selinux_type(out["tcontext"] or "?")
    rule = f"selinux {{ {' '.join(perms)} }} {target} {out['tclass'] or '?'}"
    if permissive:
        rule += " permissive"
    elif granted:
        rule += " granted"
    out["rule"] = rule
