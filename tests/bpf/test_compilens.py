"""bcc compiles with a stand-in /proc/kallsyms (lsmtrace.compilens), and
nothing of it is seen outside the compile: not by the host, not by the rest
of lsmtrace (its mount namespace and working directory are its own again).

Each check runs in a fresh interpreter: the stand-in steps aside in a process
with threads, and pytest's process may have some.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import helpers
import pytest

pytestmark = helpers.needs_root

REPO = Path(__file__).resolve().parents[2]


def run(body: str, cwd: Path) -> dict[str, object]:
    script = (
        textwrap.dedent(
            """
        import json, os, sys, threading
        sys.path.insert(0, REPO)
        from lsmtrace import compilens
        def ns():
            return os.stat("/proc/self/ns/mnt").st_ino
        def host_sees_bind():
            return "/proc/kallsyms" in open("/proc/1/mountinfo").read()
        out = {"ns_before": ns(), "cwd_before": os.getcwd()}
        """
        ).replace("REPO", repr(str(REPO)), 1)
        + textwrap.dedent(body)
        + textwrap.dedent(
            """
        out["ns_after"] = ns()
        out["cwd_after"] = os.getcwd()
        out["lines_after"] = len(open("/proc/kallsyms").read().splitlines())
        print(json.dumps(out))
        """
        )
    )
    p = subprocess.run(
        [sys.executable, "-c", script],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def assert_restored(out: dict[str, object]) -> None:
    assert out["ns_after"] == out["ns_before"]
    assert out["cwd_after"] == out["cwd_before"]
    assert int(out["lines_after"]) > 1000, "the real kallsyms after the compile"  # type: ignore[call-overload]


def test_stand_in_is_seen_within_only_and_never_by_the_host(tmp_path: Path) -> None:
    out = run(
        """
        real = compilens.bcc_lines(open("/proc/kallsyms").read())
        with compilens.stand_in_kallsyms(real) as active:
            out["active"] = active
            out["within"] = open("/proc/kallsyms").read().splitlines()
            out["host_sees_bind"] = host_sees_bind()
            out["cwd_within"] = os.getcwd()
        out["real"] = real
        out["host_sees_bind_after"] = host_sees_bind()
        """,
        tmp_path,
    )
    assert out["active"] is True
    assert out["real"], "this kernel has bpf_probe_read_kernel (5.5+)"
    assert out["within"] == out["real"]
    assert out["host_sees_bind"] is False
    assert out["host_sees_bind_after"] is False
    assert out["cwd_within"] == str(tmp_path)
    assert_restored(out)


def test_an_error_in_the_compile_still_returns(tmp_path: Path) -> None:
    out = run(
        """
        try:
            with compilens.stand_in_kallsyms(["ffffffff81000000 T bpf_probe_read_kernel"]):
                raise RuntimeError("bcc failed")
        except RuntimeError:
            out["raised"] = True
        """,
        tmp_path,
    )
    assert out["raised"] is True
    assert_restored(out)


def test_a_process_with_threads_reads_the_real_file(tmp_path: Path) -> None:
    out = run(
        """
        stop = threading.Event()
        t = threading.Thread(target=stop.wait)
        t.start()
        with compilens.stand_in_kallsyms(["ffffffff81000000 T bpf_probe_read_kernel"]) as active:
            out["active"] = active
            out["within"] = len(open("/proc/kallsyms").read().splitlines())
        stop.set()
        t.join()
        """,
        tmp_path,
    )
    assert out["active"] is False
    assert int(out["within"]) > 1000  # type: ignore[call-overload]
    assert_restored(out)


def test_turned_off_by_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LSMTRACE_BCC_KALLSYMS", "real")
    out = run(
        """
        with compilens.stand_in_kallsyms(["ffffffff81000000 T bpf_probe_read_kernel"]) as active:
            out["active"] = active
        """,
        tmp_path,
    )
    assert out["active"] is False
    assert_restored(out)


def test_bcc_lines_picks_what_bcc_resolves() -> None:
    from lsmtrace import compilens

    text = (
        "ffffffff814cb9a0 T bpf_probe_read_kernel\n"
        "ffffffff814cb9b0 t bpf_probe_read_kernel_str\n"
        "ffffffff814ce490 T bpf_probe_read_user\n"
        "ffffffffc0000000 t x [mod]\n"
    )
    assert compilens.bcc_lines(text) == [
        "ffffffff814cb9a0 T bpf_probe_read_kernel",
        "ffffffff814ce490 T bpf_probe_read_user",
    ]


def test_lsmtrace_compiles_with_the_stand_in(tracepoint_rung: None) -> None:
    """The product, as users run it: the compile took the stand-in and the
    programs it made load and attach."""
    p = helpers.run_lsmtrace(
        "--debug", "trace", "--backend", "tracepoint", "--duration", "0.2"
    )
    err = p.stderr.decode(errors="replace")
    assert p.returncode == 0, err[-3000:]
    assert "bcc reads a stand-in /proc/kallsyms" in err, err[-3000:]
    assert "Tracing " in err
