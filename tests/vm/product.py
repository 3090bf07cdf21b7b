"""How tests/vm run lsmtrace: the product as installed, never a source tree.

vagrant/vmtest.py (and the Vagrant box) install the wheel built on the host with
deploy/install.sh into a venv and run pytest with that venv's python; the guest
holds no copy of the package's source. Tests start lsmtrace as a user would, with
the venv's console script (`lsmtrace_cmd()`), and import lsmtrace (the internal
probes some tests use) from the same venv.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

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


Event = dict[str, Any]


class Running:
    """A long-running `lsmtrace ARGS...` whose stdout and stderr go to
    WORKDIR/NAME.out and .err. Started without waiting: several can compile
    side by side (minutes under TCG); wait_started() when it is needed."""

    def __init__(
        self, workdir: Path, name: str, *args: str, env: dict[str, str] | None = None
    ) -> None:
        self.args = args
        self.out = workdir / f"{name}.out"
        self.err = workdir / f"{name}.err"
        with open(self.out, "wb") as o, open(self.err, "wb") as e:
            self.proc = subprocess.Popen(
                lsmtrace_cmd(*args),
                stdout=o,
                stderr=e,
                stdin=subprocess.DEVNULL,
                cwd=workdir,
                env=env,
            )
        self.started_at = time.monotonic()
        self.ready_after: float | None = None  # seconds from spawn to tracing

    def wait_started(self, timeout: float) -> None:
        """Until it says it traces; killed, and AssertionError with its
        stderr, if it ends or `timeout` passes first."""
        deadline = self.started_at + timeout
        while True:
            if "Ctrl-C to end" in self.stderr:
                if self.ready_after is None:
                    self.ready_after = time.monotonic() - self.started_at
                return
            if self.proc.poll() is not None or time.monotonic() > deadline:
                break
            time.sleep(0.25)
        self.kill()
        raise AssertionError(
            f"lsmtrace {' '.join(self.args)} did not start: {self.stderr}"
        )

    @property
    def stderr(self) -> str:
        return self.err.read_text(errors="replace")

    def events(self) -> list[Event]:
        lines = self.out.read_text(errors="replace").splitlines()
        return [json.loads(ln) for ln in lines if ln.strip().endswith("}")]

    def wait_for(
        self,
        pid: int,
        want: Callable[[Event], bool],
        timeout: float = 60.0,
        settle: float = 0.0,
    ) -> list[Event]:
        """This pid's events once one of them is `want`ed (or at `timeout`),
        read again after `settle` seconds (the rest of a burst)."""
        deadline = time.monotonic() + timeout
        while True:
            evs = [e for e in self.events() if e["tgid"] == pid]
            if any(want(e) for e in evs) or time.monotonic() > deadline:
                break
            time.sleep(0.25)
        if settle:
            time.sleep(settle)
            evs = [e for e in self.events() if e["tgid"] == pid]
        return evs

    def stop(self, sig: int = signal.SIGINT, timeout: float = 300) -> int:
        """Its exit status after `sig` (killed if it does not end in time)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                return self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class Trace(Running):
    """`lsmtrace trace --backend RUNG --json ARGS...`, output in
    WORKDIR/trace-RUNG.out and .err; started without waiting."""

    def __init__(
        self, rung: str, workdir: Path, *args: str, env: dict[str, str] | None = None
    ) -> None:
        super().__init__(
            workdir,
            f"trace-{rung}",
            "trace",
            "--backend",
            rung,
            "--json",
            *args,
            env=env,
        )
        self.rung = rung
