"""Text and JSON Lines rendering of events. Pure; nothing here writes.

Hostile names cannot hijack the output: in text every byte that is not a
printable character is escaped (``\\n``, ``\\x1b``, invalid UTF-8 as ``\\xff``,
backslash itself as ``\\\\``); JSON is ASCII-only, so control characters and
escape sequences arrive as ``\\u001b`` and can never reach a terminal raw.
"""

from __future__ import annotations

import contextlib
import json
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from functools import partial
from typing import Any

from lsmtrace.events import IdNames

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\\": "\\\\"}


def escape(s: str) -> str:
    """Printable, single-line, lossless rendering of a (surrogateescaped) str."""
    if s.isprintable() and "\\" not in s:
        return s
    out = []
    for ch in s:
        code = ord(ch)
        if ch in _NAMED:
            out.append(_NAMED[ch])
        elif 0xDC80 <= code <= 0xDCFF:  # an undecodable byte (surrogateescape)
            out.append(f"\\x{code - 0xDC00:02x}")
        elif ch.isprintable():
            out.append(ch)
        elif code < 0x80:  # C0 control or DEL: the byte itself
            out.append(f"\\x{code:02x}")
        else:  # C1 control, format char...: a code point, never confused with \xNN
            out.append(f"\\u{code:04x}")
    return "".join(out)


def char_width(ch: str) -> int:
    """Terminal columns of one character (wide East Asian: 2, combining: 0)."""
    if unicodedata.combining(ch):
        return 0
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


def columns(s: str) -> int:
    if s.isascii():
        return len(s)
    return sum(char_width(c) for c in s)


def fit(s: str, width: int, keep_end: bool = False) -> str:
    """Cut an (already escaped) string to `width` terminal columns, marking the
    cut with "~". `width` None-like (< 0) means no limit; 0 gives ""."""
    if width < 0 or columns(s) <= width:
        return s
    if width <= 1:
        return "~"[:width]
    budget = width - 1
    chars = reversed(s) if keep_end else iter(s)
    kept: list[str] = []
    for ch in chars:
        w = char_width(ch)
        if w > budget:
            break
        budget -= w
        kept.append(ch)
    body = "".join(reversed(kept)) if keep_end else "".join(kept)
    return "~" + body if keep_end else body + "~"


def pad(s: str, width: int) -> str:
    return s + " " * max(0, width - columns(s))


def object_summary(o: Mapping[str, Any]) -> str:
    """One-line, escaped summary of an event's object; paths first."""
    if "path" in o and "family" not in o:
        s = escape(str(o["path"]))
        if "path2" in o:
            s += " -> " + escape(str(o["path2"]))
        return s
    if "source" in o:
        return f"{escape(str(o['source']))} type={escape(str(o.get('fstype', '')))}"
    if "cap_name" in o:
        return str(o["cap_name"])
    if "nice" in o:
        return f"nice={o['nice']}" + (
            f" pid {o['target_pid']}" if "target_pid" in o else ""
        )
    if "sig" in o:
        return f"{o.get('sig_name') or o['sig']} -> pid {o['target_pid']}"
    if "target_pid" in o:
        extra = (
            f"req={o['request']}" if "request" in o else f"mode={o.get('mode', 0):#x}"
        )
        return f"pid {o['target_pid']} {extra}"
    if "family" in o:
        fam = str(o["family"])
        if "port" in o:
            return f"{fam} {o['addr']}:{o['port']}"
        if "path" in o:
            return f"{fam} {escape(str(o['path']))}"
        return f"{fam} {o.get('type', '')}".strip()
    if "prot" in o:
        return f"prot={o['prot']}" + (f" fd={o['fd']}" if "fd" in o else "")
    if "cmd_name" in o:
        return f"cmd={o['cmd_name'] or o['cmd']}"
    if "ids" in o:
        return "ids=" + ",".join(str(i) for i in o["ids"])
    if "tclass" in o:
        return f"{escape(str(o['tclass']))} {escape(str(o['tcontext']))}"
    if "filename" in o:
        if o.get("given"):  # a script or a symlink: the name, then what runs
            return f"{escape(str(o['given']))} ({escape(str(o['filename']))})"
        return escape(str(o["filename"]))
    if "fd" in o:
        return f"fd={o['fd']}"
    return ""


# time pid comm hook result object
COLUMNS = ((8, "TIME"), (7, "PID"), (15, "COMM"), (15, "HOOK"), (17, "RESULT"))


def header(width: int = 80) -> str:
    cols = [f"{title:<{w}}" for w, title in COLUMNS]
    text = " ".join(cols) + " OBJECT"
    return text if width <= 0 else fit(text, width)


def result_text(ev: Mapping[str, Any]) -> str:
    """allow, ENOENT (a failure that is no decision), or EACCES:<who decided>;
    with the LSM's audit record, EACCES:<its compact rule> (`EACCES:landlock
    fs.read_file`), or the rung's answer and the record's when they differ.
    A decision the candidate policy would deny (`--policy`) is followed by
    `would-deny TARGET: <the rule it lacks>`."""
    text = _verdict_text(ev)
    w = ev.get("would_deny")
    if isinstance(w, Mapping):
        text += " " + would_deny_text(w)
    return text


def would_deny_text(w: Mapping[str, Any]) -> str:
    """`would-deny TARGET: <first missing rule>` and how many more."""
    missing = list(w.get("missing") or [])
    more = f" (+{len(missing) - 1})" if len(missing) > 1 else ""
    first = escape(str(missing[0])) if missing else "?"
    return f"would-deny {escape(str(w.get('target')))}: {first}{more}"


def _verdict_text(ev: Mapping[str, Any]) -> str:
    verdict = ev.get("verdict")
    if verdict == "allow":
        return "allow"
    errno = ev.get("errno") or str(ev.get("ret"))
    if verdict == "error":
        return str(errno)
    lsm = ev.get("lsm") or "?"
    a = ev.get("audit")
    if isinstance(a, Mapping) and a.get("rule"):
        rule = escape(str(a["rule"]))  # names in it may hold any byte
        if a.get("disagrees"):
            return f"{errno}:{lsm} (audit: {rule})"
        return f"{errno}:{rule}"
    return f"{errno}:{lsm}"


def keeps_end(o: Mapping[str, Any]) -> bool:
    """Paths are cut from the left: their end names the file."""
    return "path" in o or "filename" in o


def time_text(ev: Mapping[str, Any]) -> str:
    """HH:MM:SS (UTC) of the event's RFC 3339 `time`."""
    t = str(ev.get("time") or "")
    return t[11:19] if len(t) >= 19 else "--:--:--"


def columns_text(ev: Mapping[str, Any]) -> str:
    """The fixed columns of a text line (time, pid, comm, hook, result). A
    result with the audited rule or a policy's missing rule is never cut: it
    may push the object right."""
    fields = (
        time_text(ev),
        str(ev.get("tgid", "?")),
        escape(str(ev.get("comm", ""))),
        str(ev.get("hook", "")),
        result_text(ev),
    )
    keep = len(fields) - 1 if "audit" in ev or "would_deny" in ev else len(fields)
    return " ".join(
        pad(fit(f, w) if i < keep else f, w)
        for i, (f, (w, _t)) in enumerate(zip(fields, COLUMNS, strict=True))
    )


def text_line(ev: Mapping[str, Any], width: int = 0) -> str:
    """One event as a text line. width <= 0: no limit (pipes, files); else the
    object is cut to fit, marked "~"."""
    line = columns_text(ev) + " "
    obj = ev.get("object")
    if not isinstance(obj, Mapping):
        obj = {}
    summary = object_summary(obj)
    if width <= 0:
        return line + summary
    if len(line) >= width:
        return line[:width].rstrip()
    return line + fit(summary, width - len(line), keep_end=keeps_end(obj))


# One encoder for every JSON line lsmtrace writes (trace, record, replay):
# ASCII only, so a hostile name cannot carry control bytes or bidi overrides
# into a terminal or log, and compact. Event dicts are trees, so the circular
# reference check is skipped; one shared instance saves building an encoder
# per event (json.dumps with arguments does).
_JSON = json.JSONEncoder(ensure_ascii=True, separators=(",", ":"), check_circular=False)


def json_text(obj: Any) -> str:
    return _JSON.encode(obj)


_orjson: Any
try:  # orjson: ~7x faster than the json module on an enriched event
    import orjson as _orjson
except ImportError:  # pragma: no cover - the json module does the same, slower
    _orjson = None


def json_lines(objs: Iterable[Any]) -> bytes:
    """Each object as one JSON line: byte for byte json_text(o) + "\n".

    With orjson where it gives those very bytes: its compact output equals
    the json module's for the str/int/bool/None/list/dict trees of events,
    except that it writes non-ASCII as UTF-8 and DEL (0x7f) raw, where the
    json module escapes both (\\uXXXX: our lines are printable ASCII), and
    refuses lone surrogates (undecodable bytes) and ints beyond 64 bits:
    those lines go through the json module.
    """
    if _orjson is None:
        return "".join([_JSON.encode(o) + "\n" for o in objs]).encode("ascii")
    dumps, opt, enc = _orjson.dumps, _orjson.OPT_APPEND_NEWLINE, _JSON.encode
    if not isinstance(objs, (list, tuple)):
        objs = list(objs)
    # The whole batch in one pass (no Python per line); a batch with a line
    # orjson would write otherwise than the json module goes line by line.
    with contextlib.suppress(TypeError):
        whole = b"".join(map(partial(dumps, option=opt), objs))
        if whole.isascii() and b"\x7f" not in whole:
            return whole
    parts = []
    for o in objs:
        try:
            b = dumps(o, option=opt)
            if not b.isascii() or b"\x7f" in b:
                b = (enc(o) + "\n").encode("ascii")
        except TypeError:
            b = (enc(o) + "\n").encode("ascii")
        parts.append(b)
    return b"".join(parts)


def count_rows(
    counts: list[tuple[int, int, int, int]],
    ids: IdNames,
    quiet: Sequence[tuple[int, int, int, int]] = (),
) -> list[dict[str, Any]]:
    """Kernel counts [(id, lsm, errno, n)] as rows, most frequent first; the
    refused quiet capability probes (Tracer.quiet_counts()) with verdict
    "quiet": they refused nothing."""
    import errno as errno_mod

    from lsmtrace.abi import SYSCALL_BASE, lsm_name
    from lsmtrace.events import DENY_ERRNOS

    rows = []
    for id_, lsm, err, n in counts:
        verdict = "allow" if err == 0 else "deny"
        if err and id_ >= SYSCALL_BASE and err not in DENY_ERRNOS:
            verdict = "error"  # e.g. ENOENT: a failure, not a decision
        rows.append(
            {
                "hook": ids.name(id_),
                "family": ids.family(id_),
                "verdict": verdict,
                "errno": errno_mod.errorcode.get(err, f"E{err}") if err else None,
                "lsm": lsm_name(lsm),
                "count": n,
            }
        )
    for id_, lsm, err, n in quiet:
        rows.append(
            {
                "hook": ids.name(id_),
                "family": ids.family(id_),
                "verdict": "quiet",
                "errno": errno_mod.errorcode.get(err, f"E{err}") if err else None,
                "lsm": lsm_name(lsm),
                "count": n,
            }
        )
    rows.sort(key=lambda r: (-int(str(r["count"])), str(r["hook"])))
    return rows


def count_table(rows: list[dict[str, Any]], as_json: bool = False) -> str:
    if as_json:
        return "".join(json.dumps(r, ensure_ascii=True) + "\n" for r in rows)
    lines = [f"{'HOOK':<24} {'VERDICT':<7} {'ERRNO':<8} {'LSM':<12} {'COUNT':>12}"]
    for r in rows:
        lines.append(
            f"{fit(str(r['hook']), 24):<24} {r['verdict']:<7} {r['errno'] or '-':<8} "
            f"{r['lsm'] or '-':<12} {r['count']:>12}"
        )
    return "\n".join(lines) + "\n"
