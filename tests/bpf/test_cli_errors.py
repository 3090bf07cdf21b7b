"""Bad input and missing privileges: one `error:` line, one `hint:` line, no traceback.

Each case runs the real CLI as a subprocess. Most need root (the root check comes
first, so as another user every case would just say "needs root"); the
not-root case itself needs root only to drop to uid 65534, and runs as is when
the tests already run unprivileged. Also a smoke test per subcommand under
`timeout -s INT`, accepting the clean exit.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import helpers
import pytest
from helpers import NOBODY, lsmtrace_cmd

needs_root = helpers.needs_root
TIMEOUT = 120


def run_cli(
    *args: str, as_nobody: bool = False, timeout: float = TIMEOUT
) -> subprocess.CompletedProcess[str]:
    def drop() -> None:
        os.setgroups([])
        os.setgid(NOBODY)
        os.setuid(NOBODY)

    env = helpers.cli_env()
    if as_nobody:
        env["HOME"] = "/nonexistent"
    return subprocess.run(
        lsmtrace_cmd(*args),
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd="/",
        preexec_fn=drop if as_nobody and os.geteuid() == 0 else None,
    )


def assert_clean_error(
    r: subprocess.CompletedProcess[str], *, code: int | None = None, says: str = ""
) -> None:
    err = r.stderr
    lines = err.splitlines()
    errors = [ln for ln in lines if ln.startswith("error:")]
    hints = [ln for ln in lines if ln.startswith("hint:")]
    assert r.returncode != 0, f"exit 0\n{err}"
    if code is not None:
        assert r.returncode == code, f"exit {r.returncode}, want {code}\n{err}"
    assert "Traceback" not in err, err
    assert len(errors) == 1, f"want exactly one error: line\n{err}"
    assert len(hints) == 1, f"want exactly one hint: line\n{err}"
    assert lines.index(hints[0]) == lines.index(errors[0]) + 1, err
    assert len(hints[0]) > len("hint: "), err
    if says:
        assert says in errors[0], f"{says!r} not in {errors[0]!r}"
    assert not r.stdout.strip(), f"stdout should be empty on error:\n{r.stdout}"
    assert "Tracing " not in err, f"it started tracing:\n{err}"


def trace(*args: str) -> subprocess.CompletedProcess[str]:
    return run_cli("trace", *args, "--duration", "1")


# -- usage errors (exit 2) -----------------------------------------------------------


@needs_root
def test_unknown_backend() -> None:
    assert_clean_error(trace("--backend", "bogus"), code=2, says="bogus")


@needs_root
def test_nonexistent_cgroup(tmp_path: Path) -> None:
    assert_clean_error(
        trace("--backend", "tracepoint", "--cgroup", str(tmp_path / "nope")),
        code=2,
        says="nope",
    )


@needs_root
def test_cgroup_that_is_a_plain_directory(tmp_path: Path) -> None:
    """A directory with a file named cgroup.procs is still not a cgroup v2."""
    fake = tmp_path / "fakecg"
    fake.mkdir()
    (fake / "cgroup.procs").write_text("")
    assert_clean_error(trace("--backend", "tracepoint", "--cgroup", str(fake)), code=2)


@needs_root
def test_cgroup_v1_hierarchy() -> None:
    v1 = helpers.cgroup1_dir()
    if v1 is None:
        pytest.skip("no cgroup v1 hierarchy mounted here")
    assert_clean_error(trace("--backend", "tracepoint", "--cgroup", str(v1)), code=2)


@needs_root
def test_pid_of_no_process() -> None:
    pid = 4_000_000  # above any pid_max (4194304 is the ceiling, never this in use)
    while Path(f"/proc/{pid}").exists():
        pid += 1
    assert_clean_error(
        trace("--backend", "tracepoint", "--pid", str(pid)), code=2, says=str(pid)
    )


@needs_root
def test_hooks_matching_nothing() -> None:
    assert_clean_error(
        trace("--backend", "tracepoint", "--hooks", "nonexistent_hook*"),
        code=2,
        says="nonexistent_hook*",
    )


@needs_root
def test_unknown_family() -> None:
    assert_clean_error(
        trace("--backend", "tracepoint", "--family", "bogus"), code=2, says="bogus"
    )


@needs_root
def test_comm_longer_than_15_bytes() -> None:
    assert_clean_error(
        trace("--backend", "tracepoint", "--comm", "a" * 16), code=2, says="15"
    )


@needs_root
def test_comm_of_15_bytes_is_accepted() -> None:
    r = run_cli(
        "trace",
        "--backend",
        "tracepoint",
        "--comm",
        "a" * 15,
        "--hooks",
        "sys_kill",
        "--duration",
        "0.5",
    )
    assert r.returncode == 0, r.stderr
    assert "error:" not in r.stderr


@needs_root
def test_children_without_pid() -> None:
    assert_clean_error(
        trace("--backend", "tracepoint", "--children"), code=2, says="--pid"
    )


@needs_root
def test_buffer_pages_not_a_power_of_two() -> None:
    assert_clean_error(trace("--backend", "tracepoint", "--buffer-pages", "3"), code=2)


@pytest.mark.parametrize("value", ["0", "-1"])
def test_duration_not_positive(value: str) -> None:
    assert_clean_error(run_cli("trace", "--duration", value), code=2, says="--duration")


# -- the kernel or the machine says no (exit 1) --------------------------------------


@needs_root
def test_fexit_refused_here_says_why() -> None:
    from lsmtrace import probe

    res = probe.probe_fexit()
    if res.ok:
        pytest.skip("fexit loads on this kernel: nothing to refuse")
    r = trace("--backend", "fexit")
    assert_clean_error(r, code=1, says="fexit")
    err = next(ln for ln in r.stderr.splitlines() if ln.startswith("error:"))
    # the probe's own reason (e.g. "EPERM: Operation not permitted") reaches the user
    reason = res.detail.split("(")[-1].split(":")[0]
    assert reason in err, f"{reason!r} not in {err!r}"


def test_not_root() -> None:
    r = run_cli("trace", "--backend", "tracepoint", as_nobody=True)
    assert_clean_error(r, code=1, says="root")


def test_debug_shows_the_traceback() -> None:
    r = run_cli("--debug", "trace", "--duration", "0")
    assert r.returncode == 2
    assert "Traceback" in r.stderr, r.stderr
    assert [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]


# -- smoke: every subcommand under timeout -s INT --------------------------------------


def timeout_int(seconds: int, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [
        "timeout",
        "-s",
        "INT",
        "-k",
        "60",
        "--preserve-status",
        str(seconds),
        *lsmtrace_cmd(*args),
    ]
    return subprocess.run(
        cmd, capture_output=True, text=True, timeout=TIMEOUT, env=helpers.cli_env()
    )


@needs_root
def test_smoke_trace(tracepoint_rung: None) -> None:
    r = timeout_int(6, "trace", "--backend", "tracepoint", "--uid", "4242424")
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr, r.stderr
    assert r.stderr.startswith("Tracing "), r.stderr
    assert helpers.parse_summary(r.stderr) is not None, r.stderr


def test_smoke_hooks() -> None:
    r = timeout_int(60, "hooks")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip(), "no output"
    assert "Traceback" not in r.stderr, r.stderr


def test_smoke_hooks_json() -> None:
    r = timeout_int(60, "hooks", "--json", "--no-probe")
    assert r.returncode == 0, r.stderr
    json.loads(r.stdout)


def test_smoke_doctor() -> None:
    r = timeout_int(60, "doctor")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip(), "no output"
    assert "Traceback" not in r.stderr, r.stderr


def test_smoke_doctor_json() -> None:
    r = timeout_int(60, "doctor", "--json")
    assert r.returncode == 0, r.stderr
    json.loads(r.stdout)
