"""One base error with a hint; the CLI prints `error: ...` and `hint: ...`."""

from __future__ import annotations


class LsmtraceError(Exception):
    """Base of every error the CLI reports without a traceback."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class UsageError(LsmtraceError):
    """Bad command-line input (unknown backend, bad pid, missing cgroup...)."""

    exit_code = 2


class PrivilegeError(LsmtraceError):
    """The command needs root (CAP_BPF/CAP_SYS_ADMIN/CAP_PERFMON)."""


class KernelFeatureError(LsmtraceError):
    """The running kernel lacks something we need (BTF, a rung, a hook)."""


class BccError(LsmtraceError):
    """bcc is missing, or failed to compile/load; keeps the compiler log."""

    def __init__(self, message: str, hint: str | None = None, log: str = "") -> None:
        super().__init__(message, hint)
        self.log = log


class HeaderError(LsmtraceError):
    """No kernel headers and no way to synthesize them from BTF."""


class RecordingError(LsmtraceError):
    """A recording file is unreadable, truncated or of another version."""
