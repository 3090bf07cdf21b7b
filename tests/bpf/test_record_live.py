"""`lsmtrace record -- COMMAND` on this host (root, tracepoint rung): the command
is recorded from its first exec, record exits with its exit code, the file is
0600 and replays."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import helpers
import pytest

pytestmark = helpers.needs_root


lsmtrace = helpers.run_lsmtrace


def records(path: Path) -> list[dict[str, object]]:
    from lsmtrace.record import read_recording

    rec = read_recording(path)
    assert rec.error is None, rec.error
    assert rec.trailer is not None
    return rec.events


def test_record_command_exit_code_mode_and_content(
    tracepoint_rung: None, tmp_path: Path
) -> None:
    (tmp_path / "a").write_text("one\n")
    (tmp_path / "b").write_text("two\n")
    out = tmp_path / "rec.jsonl"
    old = os.umask(0)
    try:
        r = lsmtrace(
            "record",
            "-o",
            str(out),
            "--backend",
            "tracepoint",
            "--",
            "sh",
            "-c",
            f"cat {tmp_path}/a b; exit 7",
            cwd=str(tmp_path),
        )
    finally:
        os.umask(old)
    assert r.returncode == 7, r.stderr.decode()
    assert r.stdout == b"one\ntwo\n"
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    from lsmtrace.record import read_recording

    rec = read_recording(out)
    h = rec.header
    assert h["format_version"] == 1
    assert h["rung"] == "tracepoint"
    assert h["command"] == ["sh", "-c", f"cat {tmp_path}/a b; exit 7"]
    assert h["cwd"] == str(tmp_path)
    assert "landlock" in h["active_lsms"]
    assert h["kernel"] == os.uname().release
    assert rec.trailer is not None
    assert rec.trailer["exit_code"] == 7
    assert rec.trailer["events"] == len(rec.events)
    assert rec.trailer["lost"] == 0
    evs = rec.events
    # nothing of the command is missed: its very first exec is there
    # (the executable as /proc/<pid>/exe names it: sh is a link to dash)
    execs = [e["object"]["filename"] for e in evs if e["kind"] == "exec"]  # type: ignore[index]
    assert execs[:1] == [os.path.realpath("/usr/bin/sh")]
    assert os.path.realpath("/usr/bin/cat") in execs
    opened = {
        (e["object"].get("path"), e["object"].get("path_kind"), e["verdict"])  # type: ignore[attr-defined]
        for e in evs
        if e["hook"] == "sys_openat"
    }
    # `cat a b` in tmp_path: both opened files by their real absolute path
    real = os.path.realpath(tmp_path)
    assert (f"{real}/a", "exact", "allow") in opened
    assert (f"{real}/b", "exact", "allow") in opened
    # every event is the `trace --json` object: the schema, enriched with who
    helpers.assert_schema_valid(evs)  # type: ignore[arg-type]
    assert all(e["exe"] for e in evs if e["comm"] == "cat" and e["kind"] != "exec")
    assert all("ancestors" in e for e in evs)
    # the recorder itself is not in its recording
    assert all(e["comm"] != "python3" or e["kind"] == "exec" for e in evs)

    rep = lsmtrace("replay", "--json", "--proc-events", "--quiet-probes", str(out))
    assert rep.returncode == 0
    assert [json.loads(ln) for ln in rep.stdout.splitlines()] == evs


def test_record_gzip_and_denial(tracepoint_rung: None, tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("x")
    os.chmod(secret, 0o600)
    os.chmod(tmp_path, 0o755)
    out = tmp_path / "rec.jsonl.gz"
    r = lsmtrace(
        "record",
        "-o",
        str(out),
        "--backend",
        "tracepoint",
        "--",
        "setpriv",
        "--reuid",
        "65534",
        "--regid",
        "65534",
        "--clear-groups",
        "cat",
        str(secret),
    )
    assert r.returncode == 1, r.stderr.decode()
    assert out.read_bytes()[:2] == b"\x1f\x8b"
    denied = [
        e for e in records(out) if e["verdict"] == "deny" and e["hook"] == "sys_openat"
    ]
    assert denied
    # a failed open: the root joined with the absolute name
    assert denied[0]["object"] == {"path": str(secret), "path_kind": "joined"}
    assert denied[0]["errno"] == "EACCES"


def test_record_refuses_existing_file(tracepoint_rung: None, tmp_path: Path) -> None:
    out = tmp_path / "rec.jsonl"
    out.write_text("keep")
    r = lsmtrace("record", "-o", str(out), "--backend", "tracepoint", "--", "true")
    assert r.returncode == 1
    assert b"exists" in r.stderr
    assert out.read_text() == "keep"


def test_record_missing_command(tracepoint_rung: None, tmp_path: Path) -> None:
    r = lsmtrace(
        "record",
        "-o",
        str(tmp_path / "r.jsonl"),
        "--backend",
        "tracepoint",
        "--",
        "/nonexistent/cmd",
    )
    assert r.returncode == 127, r.stderr.decode()
    assert b"/nonexistent/cmd" in r.stderr


def test_record_needs_root_message() -> None:
    if os.geteuid() == 0:
        r = subprocess.run(
            [
                "setpriv",
                "--reuid",
                "65534",
                "--regid",
                "65534",
                "--clear-groups",
                sys.executable,
                "-m",
                "lsmtrace",
                "record",
                "-o",
                "/tmp/x",
                "--",
                "true",
            ],
            env=helpers.cli_env(),
            capture_output=True,
            timeout=60,
            check=False,
            cwd="/",
        )
        assert r.returncode == 1
        assert b"needs root" in r.stderr
    else:
        pytest.skip(helpers.ROOT_REASON)


def test_script_exec_names_the_script_and_its_interpreter(
    tracepoint_rung: None, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """A #! wrapper (a pyenv-style shim that execs the real program), started
    as `./shim`: the kernel runs its interpreter, but the program is the
    script. The exec event carries both (`filename`: the interpreter, as
    /proc/<pid>/exe; `given`: the script), and the generated AppArmor profile
    attaches to the script, with its interpreter readable and mappable."""
    # not under /tmp: the generators generalise temporary-looking names there
    app = Path("/srv/lsmtrace-test-shim")
    shutil.rmtree(app, ignore_errors=True)
    app.mkdir(parents=True)
    request.addfinalizer(lambda: shutil.rmtree(app, ignore_errors=True))
    shim = app / "shim"
    shim.write_text('#!/bin/sh\nexec cat "$@"\n')
    shim.chmod(0o755)
    data = app / "data.txt"
    data.write_text("hello\n")
    out = tmp_path / "rec.jsonl"
    r = lsmtrace(
        "record",
        "-o",
        str(out),
        "--backend",
        "tracepoint",
        "--",
        "./shim",
        str(data),
        cwd=str(app),
    )
    assert r.returncode == 0, r.stderr.decode()
    assert r.stdout == b"hello\n"
    dash = os.path.realpath("/bin/sh")
    execs = [e for e in records(out) if e["kind"] == "exec"]
    first = execs[0]["object"]
    assert isinstance(first, dict)
    assert first["filename"] == dash  # the interpreter the kernel runs
    assert first["given"] == str(shim)  # absolute: record made it so
    assert first["argv"] == ["/bin/sh", str(shim), str(data)]
    cat = execs[1]["object"]
    assert isinstance(cat, dict)
    assert cat["filename"] == os.path.realpath("/usr/bin/cat")
    assert "given" not in cat or cat["given"] != cat["filename"]

    policy = tmp_path / "shim.apparmor"
    g = lsmtrace(
        "policy", "generate", "--target", "apparmor", "-o", str(policy), str(out)
    )
    assert g.returncode == 0, g.stderr.decode()
    text = policy.read_text()
    assert f'"{shim}" {{' in text, text  # the profile attaches to the script
    assert f'profile lsmtrace-{os.path.basename(dash)} "' not in text, text
    assert f'"{dash}" mr,' in text or f'"{dash}" rm,' in text, text
    assert str(data) in text
    parser = "/usr/sbin/apparmor_parser"
    if os.path.exists(parser):
        v = subprocess.run(
            [parser, "-Q", "-K", str(policy)], capture_output=True, text=True
        )
        assert v.returncode == 0, v.stderr
