"""Text and JSON Lines rendering of events. Pure; nothing here writes.

Hostile names cannot hijack the output: in text every byte that is not a
printable character is escaped (``\\n``, ``\\x1b``, invalid UTF-8 as ``\\xff``,
backslash itself as ``\\\\``); JSON is ASCII-only, so control characters and
escape sequences arrive as ``\\u001b`` and can never reach a terminal raw.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from lsmtrace.events import Event, IdNames, WallClock

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
        elif code < 0x100:
            out.append(f"\\x{code:02x}")
        else:
            out.append(f"\\u{code:04x}")
    return "".join(out)


def fit(s: str, width: int, keep_end: bool = False) -> str:
    """Cut an (already escaped) string to `width` columns, marking the cut."""
    if width <= 0 or len(s) <= width:
        return s
    if width == 1:
        return "~"
    return "~" + s[-(width - 1) :] if keep_end else s[: width - 1] + "~"


def object_summary(ev: Event) -> str:
    """One-line, escaped summary of the object; paths first (cut from the left)."""
    o = ev.object
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
        return f"nice={o['nice']}" + (f" pid {o['target_pid']}" if "target_pid" in o else "")
    if "sig" in o:
        return f"{o.get('sig_name') or o['sig']} -> pid {o['target_pid']}"
    if "target_pid" in o:
        extra = f"req={o['request']}" if "request" in o else f"mode={o.get('mode', 0):#x}"
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
        return escape(str(o["filename"]))
    if "fd" in o:
        return f"fd={o['fd']}"
    return ""


# time pid comm hook result object
COLUMNS = ((8, "TIME"), (7, "PID"), (15, "COMM"), (15, "HOOK"), (17, "RESULT"))


def header(width: int = 80) -> str:
    cols = [f"{title:<{w}}" for w, title in COLUMNS]
    return fit(" ".join(cols) + " OBJECT", width)


def result_text(ev: Event) -> str:
    """allow, ENOENT (a failure that is no decision), or EACCES:<who decided>."""
    if ev.ret >= 0:
        return "allow"
    if ev.verdict == "error":
        return str(ev.errno)
    return f"{ev.errno}:{ev.lsm or '?'}"


def text_line(ev: Event, clock: WallClock, width: int = 80) -> str:
    wall = clock.wall_ns(ev.ts_ns) // 1_000_000_000
    hh, mm, ss = (wall // 3600) % 24, (wall // 60) % 60, wall % 60
    fields = [
        f"{hh:02d}:{mm:02d}:{ss:02d}",
        str(ev.tgid),
        escape(ev.comm),
        ev.hook,
        result_text(ev),
    ]
    parts = [fit(f, w).ljust(w) for f, (w, _t) in zip(fields, COLUMNS, strict=True)]
    line = " ".join(parts) + " "
    rest = width - len(line) if width > 0 else 0
    obj = object_summary(ev)
    keep_end = "path" in ev.object or "filename" in ev.object
    return line + (fit(obj, rest, keep_end=keep_end) if width > 0 else obj)


def json_line(ev: Event, clock: WallClock, extra: Mapping[str, Any] | None = None) -> str:
    d = ev.to_dict(clock)
    if extra:
        d.update(extra)
    return json.dumps(d, ensure_ascii=True, separators=(",", ":"))


def count_rows(
    counts: list[tuple[int, int, int, int]], ids: IdNames
) -> list[dict[str, Any]]:
    """Kernel counts [(id, lsm, errno, n)] as rows, most frequent first."""
    import errno as errno_mod

    from lsmtrace.abi import lsm_name

    from lsmtrace.abi import SYSCALL_BASE
    from lsmtrace.events import DENY_ERRNOS

    rows = []
    for id_, lsm, err, n in counts:
        verdict = "allow" if err == 0 else "deny"
        if err and id_ >= SYSCALL_BASE and err not in DENY_ERRNOS:
            verdict = "error"  # e.g. ENOENT: a failure, not a decision
        rows.append({
            "hook": ids.name(id_),
            "family": ids.family(id_),
            "verdict": verdict,
            "errno": errno_mod.errorcode.get(err, f"E{err}") if err else None,
            "lsm": lsm_name(lsm),
            "count": n,
        })  # fmt: skip
    rows.sort(key=lambda r: (-int(r["count"]), str(r["hook"])))
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
