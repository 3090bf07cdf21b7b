"""One module per command. Each has `add_parser(sub)`, which sets `func` (the
command: args -> exit code); `options` holds what the live commands share.
Building every parser imports nothing heavy (bcc, textual, prometheus_client
are imported inside the commands)."""

from __future__ import annotations

# the order of `lsmtrace --help`
NAMES = (
    "trace",
    "tui",
    "export",
    "record",
    "replay",
    "policy",
    "sandbox",
    "hooks",
    "doctor",
)
