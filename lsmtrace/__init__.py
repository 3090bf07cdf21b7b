"""lsmtrace: live tracer of Linux Security Module decisions."""

__version__ = "0.1.0"
