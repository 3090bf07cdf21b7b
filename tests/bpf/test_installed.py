"""lsmtrace as users install it: a wheel in a venv, run from outside the checkout.

The session builds the wheel once (`vagrant/vmtest.py dist`, as the VM stage does)
and installs it with deploy/install.sh into a fresh venv with system site
packages (Debian's bcc), dependencies from the wheelhouse only. Nothing here runs
the checkout's code: the environment has no PYTHON* variable and the working
directory is `/`.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import helpers
import pytest
from helpers import NOBODY, Actor, TraceRun

pytestmark = [helpers.needs_root, pytest.mark.root]

PACKAGE = helpers.REPO / "lsmtrace"


def package_files() -> set[str]:
    """What the package is made of in the tree: every module and BPF source."""
    return {
        str(p.relative_to(helpers.REPO))
        for p in PACKAGE.rglob("*")
        if p.is_file()
        and p.suffix in (".py", ".h", ".c", ".tcss")
        and "__pycache__" not in p.parts
    }


def wheel_files(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as z:
        return {n for n in z.namelist() if n.startswith("lsmtrace/")}


def test_wheel_carries_every_package_file(dist: helpers.Dist) -> None:
    files = wheel_files(dist.wheel)
    missing = package_files() - files
    assert not missing, f"not in {dist.wheel.name}: {sorted(missing)}"
    assert {f for f in files if f.startswith("lsmtrace/bpf/")} >= {
        "lsmtrace/bpf/lsmtrace.h",
        "lsmtrace/bpf/common.h",
    }


def test_sdist_then_wheel_gives_the_same_package(
    dist: helpers.Dist, tmp_path: Path
) -> None:
    """The sdist carries the BPF sources, and a wheel built from it equals the wheel."""
    via = helpers.build_dist(tmp_path / "via-sdist", via_sdist=True)
    assert via.sdist is not None
    import tarfile

    with tarfile.open(via.sdist) as t:
        top = f"{via.sdist.name.removesuffix('.tar.gz')}/"
        in_sdist = {n.removeprefix(top) for n in t.getnames()}
    assert package_files() <= in_sdist, sorted(package_files() - in_sdist)
    assert wheel_files(via.wheel) == wheel_files(dist.wheel)


def test_installed_is_imported_from_the_venv(installed: Path) -> None:
    r = subprocess.run(
        [
            str(installed / "bin" / "python"),
            "-c",
            "import importlib.resources as r, lsmtrace, sys; print(lsmtrace.__file__); "
            "print(r.files('lsmtrace') / 'bpf'); print(sys.prefix)",
        ],
        capture_output=True,
        text=True,
        cwd="/",
        env=helpers.installed_env(),
    )
    assert r.returncode == 0, r.stderr
    mod, bpf_dir, prefix = r.stdout.split("\n")[:3]
    assert Path(prefix) == installed
    assert Path(mod).is_relative_to(installed), mod
    assert Path(bpf_dir).is_relative_to(installed), bpf_dir
    assert (Path(bpf_dir) / "lsmtrace.h").is_file()


def test_installed_traces_a_real_denial_from_outside_the_checkout(
    installed: Path, tracepoint_rung: None, tmp_path: Path
) -> None:
    """`lsmtrace trace` from the venv, cwd `/`: a capability denial as it happens."""
    actor = Actor("lsmt-inst-nice", [["nice"]], drop=NOBODY)
    run = TraceRun(
        ["--pid", str(actor.pid), "--hooks", "capable"],
        tmp_path,
        command=[str(installed / "bin" / "lsmtrace")],
        cwd=Path("/"),
        env=helpers.installed_env(),
    )
    with helpers.actors_cleanup([actor]):
        actor.wait_ready()
        try:
            run.start().wait_started()
            actor.go()
            actor.finish()
        finally:
            run.stop()
    assert run.returncode == 0, run.describe()
    assert actor.result("nice")["errno"] in ("EPERM", "EACCES")
    caps = [
        e
        for e in run.select(tgid=actor.pid, hook="capable")
        if e["object"]["cap_name"] == "CAP_SYS_NICE"
    ]
    assert caps, run.describe()
    assert caps[0]["verdict"] == "deny"
    assert caps[0]["lsm"] == "capability"
    assert caps[0]["comm"] == "lsmt-inst-nice"


def test_without_system_site_packages_one_error_line(
    dist: helpers.Dist, tmp_path: Path
) -> None:
    """A venv that cannot see Debian's bcc: one `error:` line naming python3-bpfcc."""
    venv = tmp_path / "nobcc"
    subprocess.run(["/usr/bin/python3", "-m", "venv", str(venv)], check=True)
    pip = [
        str(venv / "bin" / "python"),
        "-m",
        "pip",
        "install",
        "-q",
        "--disable-pip-version-check",
        "--no-index",
        "--find-links",
        str(dist.wheelhouse),
        str(dist.wheel),
    ]
    subprocess.run(pip, check=True, capture_output=True, env=helpers.installed_env())
    env = helpers.installed_env()
    probe = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import bcc"],
        capture_output=True,
        env=env,
        cwd="/",
    )
    if probe.returncode == 0:
        pytest.skip("bcc is importable without system site packages here")
    for cmd in (["trace"], ["export", "--listen", "127.0.0.1:0"]):
        r = subprocess.run(
            [str(venv / "bin" / "lsmtrace"), *cmd],
            capture_output=True,
            text=True,
            env=env,
            cwd="/",
            timeout=120,
        )
        assert r.returncode != 0
        assert "Traceback" not in r.stderr, r.stderr
        errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
        assert len(errors) == 1, r.stderr
        assert "python3-bpfcc" in errors[0], r.stderr
        assert r.stdout == ""


def test_install_script_refuses_a_python_without_bcc(
    dist: helpers.Dist, tmp_path: Path
) -> None:
    """install.sh checks bcc before making anything (a venv without system site
    packages as PYTHON stands for a host without python3-bpfcc)."""
    bare = tmp_path / "bare"
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True
    )
    env = dict(
        helpers.installed_env(),
        PREFIX=str(tmp_path / "never"),
        PYTHON=str(bare / "bin" / "python"),
    )
    r = subprocess.run(
        ["sh", str(helpers.INSTALL_SH), str(dist.wheel)],
        capture_output=True,
        text=True,
        env=env,
    )
    assert r.returncode == 1
    assert r.stderr.strip().startswith("error: ")
    assert "apt-get install python3-bpfcc" in r.stderr, r.stderr
    assert not (tmp_path / "never").exists()
