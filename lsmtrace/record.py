"""Versioned JSON Lines recordings of the event stream. Pure: no bcc, no kernel.

A recording is (docs/recording.md):

  line 1      header  {"lsmtrace_recording": 1, "format_version": 1, "abi_version",
                       "kernel", "active_lsms", "rung", "host", "started",
                       "command", "cwd", ...}
  lines 2..   events  exactly the `trace --json` object of docs/events.md
  last line   trailer {"trailer": true, "events", "lost", "attempted", "ended",
                       "counts": [...]}

optionally gzip-compressed (detected by magic bytes when read). The file is
created with mode 0600 from the first byte on: events name files and processes.
A recording cut short (recorder killed, disk full) keeps its valid prefix: the
reader returns the events before the damage and an error naming the line.
"""

from __future__ import annotations

import gzip as gzip_mod
import json
import os
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from lsmtrace.errors import RecordingError
from lsmtrace.output import json_lines, json_text

MAGIC = "lsmtrace_recording"
FORMAT_VERSION = 1
# fields every event line carries (docs/events.md); a line without them is damage
REQUIRED_EVENT_KEYS = (
    "kind",
    "hook",
    "verdict",
    "ret",
    "pid",
    "tgid",
    "comm",
    "object",
)


class RecordingLineError(RecordingError):
    """A damaged line: the events before it are still good."""

    def __init__(self, message: str, line: int, hint: str | None = None) -> None:
        super().__init__(message, hint)
        self.line = line


def _dumps(obj: Any) -> str:
    return json_text(obj)


class RecordingWriter:
    """Write a recording: header now, events in batches, trailer at close().

    The file is opened with O_CREAT|O_EXCL (or O_TRUNC when `overwrite`) and mode
    0600, O_NOFOLLOW; an existing file is re-chmodded to 0600 before any byte is
    written. Each batch is flushed, so a killed recorder leaves a usable prefix.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        header: dict[str, Any],
        gzip: bool = False,
        overwrite: bool = False,
    ) -> None:
        self.path = Path(path)
        flags = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
        flags |= os.O_TRUNC if overwrite else os.O_EXCL
        try:
            fd = os.open(self.path, flags, 0o600)
        except FileExistsError as e:
            raise RecordingError(
                f"{self.path} exists", hint="choose another name or pass --force"
            ) from e
        except OSError as e:
            raise RecordingError(f"cannot create {self.path}: {e.strerror}") from e
        os.fchmod(fd, 0o600)
        self._raw: IO[bytes] = os.fdopen(fd, "wb")
        self._out: IO[bytes] = self._raw
        if gzip:
            self._out = gzip_mod.GzipFile(  # type: ignore[assignment]
                fileobj=self._raw, mode="wb", filename="", mtime=0
            )
        self.events = 0
        full = {MAGIC: 1, "format_version": FORMAT_VERSION}
        full.update({k: v for k, v in header.items() if k not in full})
        self._write(_dumps(full) + "\n")

    def _write(self, text: str) -> None:
        self._out.write(text.encode("ascii"))
        self._out.flush()

    def write_events(self, events: Iterable[dict[str, Any]]) -> None:
        if not isinstance(events, list):
            events = list(events)
        if events:
            self._out.write(json_lines(events))
            self._out.flush()
            self.events += len(events)

    def close(self, trailer: dict[str, Any]) -> None:
        full: dict[str, Any] = {"trailer": True, "events": self.events}
        full.update({k: v for k, v in trailer.items() if k != "trailer"})
        self._write(_dumps(full) + "\n")
        if self._out is not self._raw:
            self._out.close()
        self._raw.close()

    def abort(self) -> None:
        """Close without a trailer (the reader reports the recording as truncated)."""
        if self._out is not self._raw:
            self._out.close()
        self._raw.close()


@dataclass
class Recording:
    path: str
    header: dict[str, Any]
    events: list[dict[str, Any]] = field(default_factory=list)
    trailer: dict[str, Any] | None = None
    error: RecordingLineError | None = None


def _open_text(path: Path) -> IO[bytes]:
    try:
        f: IO[bytes] = open(path, "rb")  # noqa: SIM115 - returned to the caller
    except FileNotFoundError as e:
        raise RecordingError(f"{path}: no such file") from e
    except OSError as e:
        raise RecordingError(f"cannot read {path}: {e.strerror}") from e
    magic = f.read(2)
    f.seek(0)
    if magic == b"\x1f\x8b":
        return gzip_mod.GzipFile(fileobj=f, mode="rb")  # type: ignore[return-value]
    return f


def _lines(f: IO[bytes]) -> Iterator[tuple[int, bytes | None, str | None]]:
    """(line number, raw line or None, damage description or None)."""
    n = 0
    try:
        for raw in f:
            n += 1
            yield n, raw, None
    except (EOFError, zlib.error, gzip_mod.BadGzipFile, OSError) as e:
        yield n + 1, None, f"compressed data ends or is corrupt ({e})"


def check_header(obj: Any, path: str) -> dict[str, Any]:
    if not isinstance(obj, dict) or obj.get(MAGIC) != 1:
        raise RecordingError(
            f"{path} is not an lsmtrace recording (line 1 has no {MAGIC!r} header)",
            hint="record one with `lsmtrace record -o FILE`; plain `trace --json` "
            "output has no header",
        )
    version = obj.get("format_version")
    if version != FORMAT_VERSION:
        raise RecordingError(
            f"{path} is a recording of format version {version}; this lsmtrace reads "
            f"format version {FORMAT_VERSION}",
            hint="use the lsmtrace version that wrote it (docs/recording.md lists "
            "the versions)",
        )
    return obj


def read_recording(path: str | os.PathLike[str]) -> Recording:
    """Read a whole recording. Fatal problems (missing file, not a recording,
    another format version) raise RecordingError; damage after the header leaves
    the valid prefix in `.events` and the first problem in `.error`."""
    p = Path(path)
    with _open_text(p) as f:
        it = _lines(f)
        first = next(it, None)
        if first is None or first[1] is None or not first[1].strip():
            raise RecordingError(
                f"{p} is empty or unreadable (no header line)",
                hint="a recording starts with its header line",
            )
        try:
            header_obj = json.loads(first[1])
        except ValueError as e:
            raise RecordingError(
                f"{p} is not an lsmtrace recording (line 1: {e})"
            ) from e
        rec = Recording(str(p), check_header(header_obj, str(p)))
        for n, raw, damage in it:
            if damage is not None:
                rec.error = RecordingLineError(f"{p}: line {n}: {damage}", n)
                break
            assert raw is not None
            if rec.trailer is not None:
                if raw.strip():
                    rec.error = RecordingLineError(
                        f"{p}: line {n}: data after the trailer", n
                    )
                    break
                continue
            if not raw.endswith(b"\n"):
                rec.error = RecordingLineError(
                    f"{p}: line {n}: truncated (no end of line; recorder killed?)", n
                )
                break
            try:
                obj = json.loads(raw)
            except ValueError as e:
                rec.error = RecordingLineError(f"{p}: line {n}: not JSON ({e})", n)
                break
            if isinstance(obj, dict) and obj.get("trailer") is True:
                rec.trailer = obj
                continue
            if not isinstance(obj, dict) or any(
                k not in obj for k in REQUIRED_EVENT_KEYS
            ):
                rec.error = RecordingLineError(
                    f"{p}: line {n}: not an event (needs {', '.join(REQUIRED_EVENT_KEYS)})",
                    n,
                )
                break
            rec.events.append(obj)
        else:
            if rec.trailer is None:
                n = len(rec.events) + 2
                rec.error = RecordingLineError(
                    f"{p}: line {n}: recording ends without its trailer "
                    "(truncated: recorder killed or disk full?)",
                    n,
                )
    if rec.error is not None:
        rec.error.hint = (
            f"the {len(rec.events)} events before line {rec.error.line} are usable"
        )
    return rec


def read_many(paths: Iterable[str | os.PathLike[str]]) -> list[Recording]:
    return [read_recording(p) for p in paths]


def loss_summary(rec: Recording) -> str | None:
    """What a recording is missing, in one sentence, or None when complete:
    events the kernel could not deliver (with the hooks they were lost on,
    when the trailer counts them), malformed events, a missing trailer."""
    t = rec.trailer
    if t is None:
        return (
            f"{rec.path} has no trailer: the recording was cut (recorder killed, "
            "disk full?), so what happened after its last event is unknown"
        )
    lost = int(t.get("lost") or 0)
    malformed = int(t.get("malformed") or 0)
    parts = []
    if lost:
        attempted = int(t.get("attempted") or 0)
        of = f" of {attempted}" if attempted else ""
        parts.append(f"{lost}{of} events lost (ring buffer full)")
    if malformed:
        parts.append(f"{malformed} malformed events")
    if not parts:
        return None
    where = ""
    by_hook = t.get("lost_by_hook")
    if lost and isinstance(by_hook, dict) and by_hook:
        # the kernel's count of what it could not deliver, per hook
        where = f", lost on: {lost_where(by_hook, 8)}"
    elif lost:
        # older recordings: the hooks the kernel saw decisions on
        from lsmtrace.output import escape

        hooks = sorted(
            {
                escape(str(r.get("hook")))
                for r in t.get("counts") or ()
                if isinstance(r, dict) and r.get("hook")
            }
        )
        if hooks:
            shown = ", ".join(hooks[:8]) + (", ..." if len(hooks) > 8 else "")
            where = f"; the kernel counted decisions on: {shown}"
    return f"{rec.path}: " + " and ".join(parts) + where


def lost_where(by_hook: dict[Any, Any], most: int) -> str:
    """`hook n, hook n, ...`: the `most` hooks that lost most events (the
    kernel's per-hook counts: Tracer.lost_counts(), a trailer's
    lost_by_hook). Names are escaped: a recording may come from anywhere."""
    from lsmtrace.output import escape

    def n(v: object) -> int:
        return v if isinstance(v, int) else 0

    top = sorted(by_hook.items(), key=lambda kv: (-n(kv[1]), str(kv[0])))
    shown = ", ".join(f"{escape(str(k))} {n(v)}" for k, v in top[:most])
    return shown + (", ..." if len(top) > most else "")
