"""Fixtures of tests/bpf: real BPF programs on the running kernel (root only).

Each module carries `pytestmark = helpers.needs_root` (reason "needs root: loads
BPF programs"); tests that need the tracepoint rung use the `tracepoint_rung`
fixture, which skips with the probe's own reason when the rung does not load.
Nothing assumes this host's kernel: the same files run inside the VM target.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import helpers


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "filterwarnings", "ignore:not a bytes object:DeprecationWarning"
    )


@pytest.fixture(scope="session")
def tracepoint_rung() -> None:
    """Skip unless root and the tracepoint rung loads here (the probe's reason)."""
    if os.geteuid() != 0:
        pytest.skip(helpers.ROOT_REASON)
    helpers.require_tracepoint()


@pytest.fixture(scope="session")
def dist(tmp_path_factory: pytest.TempPathFactory) -> helpers.Dist:
    """The wheel and wheelhouse of the working tree, built once per session."""
    return helpers.build_dist(tmp_path_factory.mktemp("dist"))


@pytest.fixture(scope="session")
def installed(dist: helpers.Dist, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv (--system-site-packages) made by deploy/install.sh from that wheel."""
    return helpers.install(dist, tmp_path_factory.mktemp("installed") / "venv")


@pytest.fixture(scope="module")
def world_dir() -> Iterator[Path]:
    """A 0755 directory under /tmp that uid 65534 can traverse, removed after."""
    d = helpers.world_dir()
    try:
        yield d
    finally:
        helpers.remove_tree(d)


@pytest.fixture(scope="module")
def root_sleeper() -> Iterator[int]:
    """A root process that unprivileged children may not signal."""
    import subprocess

    p = subprocess.Popen(["sleep", "600"])
    try:
        yield p.pid
    finally:
        p.kill()
        p.wait()
