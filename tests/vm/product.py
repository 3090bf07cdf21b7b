"""How tests/vm run lsmtrace: the product as installed, never a source tree.

vagrant/vmtest.py (and the Vagrant box) install the wheel built on the host with
deploy/install.sh into a venv and run pytest with that venv's python; the guest
holds no copy of the package's source. Tests start lsmtrace as a user would, with
the venv's console script (`lsmtrace_cmd()`), and import lsmtrace (the internal
probes some tests use) from the same venv.
"""

from __future__ import annotations

import sys
from pathlib import Path

VENV = Path(sys.prefix)
LSMTRACE = VENV / "bin" / "lsmtrace"


def lsmtrace_cmd(*args: str) -> list[str]:
    return [str(LSMTRACE), *args]


def not_installed() -> str | None:
    """None when lsmtrace is the venv's installed package, else what is wrong."""
    if sys.prefix == sys.base_prefix:
        return f"pytest runs on {sys.executable}, not a venv's python"
    try:
        import lsmtrace
    except ImportError as e:
        return f"lsmtrace is not installed in {VENV}: {e}"
    mod = Path(lsmtrace.__file__ or "?").resolve()
    if not mod.is_relative_to(VENV.resolve()):
        return f"lsmtrace is imported from {mod}, not from the venv {VENV}"
    if not LSMTRACE.is_file():
        return f"{LSMTRACE} is missing"
    return None
