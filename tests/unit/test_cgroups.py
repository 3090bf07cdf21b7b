"""Cgroup paths -> container and unit; the id -> path map; --container/--unit.

Paths are the real formats of each runtime (docker, podman, containerd/CRI-O
under Kubernetes with both cgroup drivers, LXC, nspawn, systemd); the cgroup
trees are fake directories in tmp_path (a cgroup id is a directory's inode
number, as on cgroupfs).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lsmtrace.cgroups import (
    HOST,
    CgroupMap,
    Container,
    attribute,
    find_v2_root,
    parse_proc_cgroup,
    resolve_cgroup_filter,
    walk,
)
from lsmtrace.errors import UsageError

ID = "3f2a1b9c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8"
ID2 = "3f2a1b0000000000000000000000000000000000000000000000000000000001"
POD = "8b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0"


@pytest.mark.parametrize(
    ("path", "runtime", "cid", "pod", "unit"),
    [
        # docker, systemd cgroup driver and cgroupfs driver
        (f"/system.slice/docker-{ID}.scope", "docker", ID, None, f"docker-{ID}.scope"),
        (f"/docker/{ID}", "docker", ID, None, None),
        # podman: root, rootless (user manager), the "container" sub-cgroup, cgroupfs
        (f"/machine.slice/libpod-{ID}.scope", "podman", ID, None, f"libpod-{ID}.scope"),
        (
            f"/machine.slice/libpod-{ID}.scope/container",
            "podman",
            ID,
            None,
            f"libpod-{ID}.scope",
        ),
        (
            f"/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{ID}.scope",
            "podman",
            ID,
            None,
            f"libpod-{ID}.scope",
        ),
        (f"/libpod_parent/libpod-{ID}", "podman", ID, None, None),
        # Kubernetes, systemd driver: burstable, besteffort, guaranteed (no QoS level)
        (
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod"
            f"{POD.replace('-', '_')}.slice/cri-containerd-{ID}.scope",
            "containerd",
            ID,
            POD,
            f"cri-containerd-{ID}.scope",
        ),
        (
            "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod"
            f"{POD.replace('-', '_')}.slice/crio-{ID}.scope",
            "cri-o",
            ID,
            POD,
            f"crio-{ID}.scope",
        ),
        (
            f"/kubepods.slice/kubepods-pod{POD.replace('-', '_')}.slice/docker-{ID}.scope",
            "docker",
            ID,
            POD,
            f"docker-{ID}.scope",
        ),
        # Kubernetes, cgroupfs driver: the runtime is not in the path
        (f"/kubepods/burstable/pod{POD}/{ID}", "cri", ID, POD, None),
        (f"/kubepods/pod{POD}/{ID}", "cri", ID, POD, None),
        (f"/kubepods/besteffort/pod{POD}/crio-{ID}", "cri-o", ID, POD, None),
        # kind: a pod inside a docker container that is a node: the innermost wins
        (
            f"/system.slice/docker-{ID2}.scope/kubelet.slice/kubelet-kubepods.slice/"
            f"kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod"
            f"{POD.replace('-', '_')}.slice/cri-containerd-{ID}.scope",
            "containerd",
            ID,
            None,
            f"cri-containerd-{ID}.scope",
        ),
        (
            f"/system.slice/nerdctl-{ID}.scope",
            "containerd",
            ID,
            None,
            f"nerdctl-{ID}.scope",
        ),
        # LXC / LXD / Incus, new and old layouts; units of the container's systemd
        ("/lxc.payload.web1", "lxc", "web1", None, None),
        (
            "/lxc.payload.web1/system.slice/nginx.service",
            "lxc",
            "web1",
            None,
            "nginx.service",
        ),
        ("/lxc/web1", "lxc", "web1", None, None),
        (
            "/machine.slice/systemd-nspawn@deb\\x2dtest.service/payload",
            "nspawn",
            "deb-test",
            None,
            "systemd-nspawn@deb\\x2dtest.service",
        ),
        (f"/default/{ID}", "unknown", ID, None, None),
    ],
)
def test_containers(
    path: str, runtime: str, cid: str, pod: str | None, unit: str | None
) -> None:
    a = attribute(path)
    assert a.container == Container(runtime, cid, pod)
    assert a.unit == unit
    assert a.fields["container"] == {"runtime": runtime, "id": cid, "pod_uid": pod}


@pytest.mark.parametrize(
    ("path", "unit"),
    [
        ("/", None),
        ("/init.scope", "init.scope"),
        ("/system.slice/ssh.service", "ssh.service"),
        ("/system.slice/system-getty.slice/getty@tty1.service", "getty@tty1.service"),
        ("/user.slice/user-1000.slice/session-3.scope", "session-3.scope"),
        (
            "/user.slice/user-1000.slice/user@1000.service/app.slice/"
            "app-org.gnome.Terminal.slice/vte-spawn-1b2c.scope",
            "vte-spawn-1b2c.scope",
        ),
        ("/user.slice/user-1000.slice/user@1000.service/init.scope", "init.scope"),
        (f"/machine.slice/libpod-conmon-{ID}.scope", f"libpod-conmon-{ID}.scope"),
        (
            f"/kubepods.slice/kubepods-pod{POD.replace('-', '_')}.slice/"
            f"crio-conmon-{ID}.scope",
            f"crio-conmon-{ID}.scope",
        ),
        ("/lxc.monitor.web1", None),
        ("/system.slice/docker.service", "docker.service"),
        # an id that is too short to be a container directory
        ("/process_api/4f92385b3738d0c98d41cdd49db9cb51", None),
    ],
)
def test_host_units(path: str, unit: str | None) -> None:
    a = attribute(path)
    assert a.container is None, a
    assert a.unit == unit
    assert a.fields == {"container": None, "unit": unit}


def test_short_id() -> None:
    assert Container("docker", ID).short_id == ID[:12]
    assert Container("lxc", "web1").short_id == "web1"


def test_host_constant() -> None:
    assert HOST.path == "/"
    assert HOST.container is None
    assert HOST.unit is None


V2 = "0::/system.slice/ssh.service\n"
HYBRID = (
    "12:pids:/system.slice/ssh.service\n"
    "4:memory:/system.slice/ssh.service\n"
    "1:name=systemd:/system.slice/ssh.service\n"
    "0::/\n"
)
HYBRID_UNIFIED = "1:name=systemd:/system.slice/x.service\n0::/system.slice/x.service\n"
V1 = f"11:cpu,cpuacct:/docker/{ID}\n1:name=systemd:/docker/{ID}\n"


def test_parse_proc_cgroup() -> None:
    assert parse_proc_cgroup(V2, hybrid=False) == "/system.slice/ssh.service"
    # hybrid: the v2 hierarchy is empty ("/"), systemd's v1 one knows
    assert parse_proc_cgroup(HYBRID) == "/system.slice/ssh.service"
    assert parse_proc_cgroup(HYBRID_UNIFIED) == "/system.slice/x.service"
    assert parse_proc_cgroup(V1) == f"/docker/{ID}"
    assert parse_proc_cgroup("0::/\n", hybrid=False) == "/"
    assert parse_proc_cgroup("0::/\n") == "/"
    assert parse_proc_cgroup("garbage\n") is None
    assert parse_proc_cgroup("") is None
    assert parse_proc_cgroup("4:memory:/a\n") == "/a"


def test_find_v2_root(tmp_path: Path) -> None:
    m = tmp_path / "mounts"
    m.write_text(
        "tmpfs /sys/fs/cgroup tmpfs rw 0 0\n"
        "cgroup /sys/fs/cgroup/cpu cgroup rw,cpu 0 0\n"
        "cgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0\n"
    )
    assert find_v2_root(m) == (Path("/sys/fs/cgroup/unified"), True)
    m.write_text("cgroup2 /sys/fs/cgroup cgroup2 rw 0 0\n")
    assert find_v2_root(m) == (Path("/sys/fs/cgroup"), False)
    m.write_text("proc /proc proc rw 0 0\n")
    assert find_v2_root(m) == (None, False)


def make_tree(root: Path, rels: list[str]) -> dict[str, int]:
    """Directories with a cgroup.procs file, as cgroupfs shows them: {rel: id}."""
    (root / "cgroup.procs").write_text("")
    ids = {"/": root.stat().st_ino}
    for rel in rels:
        d = root / rel.lstrip("/")
        d.mkdir(parents=True, exist_ok=True)
        (d / "cgroup.procs").write_text("")
        ids[rel] = d.stat().st_ino
    return ids


TREE = [
    "/system.slice",
    "/system.slice/ssh.service",
    "/system.slice/dbus.service",
    f"/system.slice/docker-{ID}.scope",
    f"/system.slice/docker-{ID2}.scope",
    "/machine.slice",
    "/machine.slice/libpod-" + "ab" * 32 + ".scope",
    "/machine.slice/libpod-" + "ab" * 32 + ".scope/container",
    "/user.slice/user-1000.slice/user@1000.service/dbus.service",
    "/user.slice/user-1000.slice/session-3.scope",
    "/lxc.payload.web1/system.slice/nginx.service",
]


def test_walk_ids_are_inodes(tmp_path: Path) -> None:
    ids = make_tree(tmp_path, TREE)
    got = dict((rel, ino) for ino, rel in walk(tmp_path))
    for rel, ino in ids.items():
        assert got[rel] == ino
    assert list(walk(tmp_path / "missing")) == []


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_map_refresh_on_miss_is_rate_limited(tmp_path: Path) -> None:
    root = tmp_path / "cg"
    root.mkdir()
    ids = make_tree(root, ["/system.slice/ssh.service"])
    clock = Clock()
    m = CgroupMap(root=root, proc=tmp_path / "proc", clock=clock, min_refresh=1.0)
    assert m.path_of(ids["/system.slice/ssh.service"]) == "/system.slice/ssh.service"
    assert m.walks == 1
    new = make_tree(root, ["/system.slice/cron.service"])["/system.slice/cron.service"]
    assert m.path_of(new) is None  # walked 0 s ago: no new walk yet
    assert m.walks == 1
    assert m.misses == 2
    clock.t += 1.5
    assert m.path_of(new) == "/system.slice/cron.service"
    assert m.walks == 2
    assert m.path_of(new) == "/system.slice/cron.service"  # cached: no miss
    assert m.misses == 3


def test_map_learns_from_proc_cgroup(tmp_path: Path) -> None:
    root = tmp_path / "cg"
    root.mkdir()
    ids = make_tree(root, [f"/system.slice/docker-{ID}.scope"])
    proc = tmp_path / "proc"
    (proc / "42").mkdir(parents=True)
    (proc / "42" / "cgroup").write_text(f"0::/system.slice/docker-{ID}.scope\n")
    clock = Clock()
    m = CgroupMap(root=root, proc=proc, clock=clock)
    m.refresh()  # a walk just happened: the rate limit forbids another
    new = make_tree(root, ["/system.slice/late.service"])["/system.slice/late.service"]
    (proc / "43").mkdir()
    (proc / "43" / "cgroup").write_text("0::/system.slice/late.service\n")
    assert m.path_of(new, tgid=43) == "/system.slice/late.service"
    assert m.learned == 1
    assert m.walks == 1
    # a process that moved since: its /proc path has another id, not trusted
    (proc / "43" / "cgroup").write_text(f"0::/system.slice/docker-{ID}.scope\n")
    assert m.path_of(12345678, tgid=43) is None
    assert m.path_of(ids[f"/system.slice/docker-{ID}.scope"], tgid=42) is not None
    # no such process, unreadable file: just a miss
    assert m.path_of(999999, tgid=7) is None


def test_map_without_v2(tmp_path: Path) -> None:
    (tmp_path / "self").mkdir()
    (tmp_path / "self" / "mounts").write_text("proc /proc proc rw 0 0\n")
    m = CgroupMap(proc=tmp_path)
    assert m.root is None
    assert m.path_of(1, tgid=1) is None


def test_map_bound(tmp_path: Path) -> None:
    make_tree(tmp_path, [f"/s/u{i}.service" for i in range(20)])
    m = CgroupMap(root=tmp_path, max_entries=5)
    m.refresh()
    assert len(m.paths) == 5


# -- --container / --unit ---------------------------------------------------------


def test_resolve_container(tmp_path: Path) -> None:
    make_tree(tmp_path, TREE)
    got = resolve_cgroup_filter(container=ID[:9], root=tmp_path)
    assert got == tmp_path / f"system.slice/docker-{ID}.scope"
    # podman: the topmost cgroup of the container, so the subtree covers /container
    got = resolve_cgroup_filter(container="abab", root=tmp_path)
    assert got == tmp_path / ("machine.slice/libpod-" + "ab" * 32 + ".scope")
    assert resolve_cgroup_filter(container="web1", root=tmp_path) == (
        tmp_path / "lxc.payload.web1"
    )
    assert resolve_cgroup_filter(container=ID.upper()[:14], root=tmp_path).name == (
        f"docker-{ID}.scope"
    )


def test_resolve_container_errors(tmp_path: Path) -> None:
    make_tree(tmp_path, TREE)
    with pytest.raises(UsageError, match="ambiguous") as e:
        resolve_cgroup_filter(container="3f2a1b", root=tmp_path)
    assert e.value.hint
    assert ID[:12] in e.value.hint
    assert ID2[:12] in e.value.hint
    with pytest.raises(UsageError, match="no container") as e:
        resolve_cgroup_filter(container="ffff", root=tmp_path)
    assert e.value.hint
    assert "docker:3f2a1b9c4d5e" in e.value.hint
    with pytest.raises(UsageError, match="id prefix"):
        resolve_cgroup_filter(container=" ", root=tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    make_tree(empty, ["/system.slice"])
    with pytest.raises(UsageError) as e:
        resolve_cgroup_filter(container="ab", root=empty)
    assert e.value.hint
    assert "--cgroup" in e.value.hint


def test_resolve_unit(tmp_path: Path) -> None:
    make_tree(tmp_path, TREE)
    assert resolve_cgroup_filter(unit="ssh.service", root=tmp_path) == (
        tmp_path / "system.slice/ssh.service"
    )
    assert resolve_cgroup_filter(unit="ssh", root=tmp_path).name == "ssh.service"
    assert resolve_cgroup_filter(unit="session-3.scope", root=tmp_path).name == (
        "session-3.scope"
    )
    assert resolve_cgroup_filter(unit="machine.slice", root=tmp_path) == (
        tmp_path / "machine.slice"
    )
    with pytest.raises(UsageError, match="ambiguous") as e:
        resolve_cgroup_filter(unit="dbus", root=tmp_path)
    assert e.value.hint
    assert "/system.slice/dbus.service" in e.value.hint
    with pytest.raises(UsageError, match="no systemd unit"):
        resolve_cgroup_filter(unit="nope.service", root=tmp_path)
    with pytest.raises(UsageError, match="not a unit name"):
        resolve_cgroup_filter(unit="system.slice/ssh.service", root=tmp_path)


def test_resolve_both(tmp_path: Path) -> None:
    make_tree(tmp_path, TREE)
    got = resolve_cgroup_filter(container="abab", unit="machine.slice", root=tmp_path)
    assert got.name.startswith("libpod-")
    with pytest.raises(UsageError, match="not inside"):
        resolve_cgroup_filter(container="abab", unit="ssh.service", root=tmp_path)
    with pytest.raises(UsageError, match="nothing"):
        resolve_cgroup_filter(root=tmp_path)


def test_resolve_without_v2(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no cgroup v2") as e:
        resolve_cgroup_filter(unit="ssh", root=tmp_path / "nothing")
    assert e.value.hint


def test_unreadable_directories_are_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """EACCES (or a cgroup removed while we walk) skips that directory only."""
    make_tree(tmp_path, ["/a/b.service", "/c.service"])
    real = os.scandir

    def scandir(path: str) -> object:
        if path.endswith("/a"):
            raise PermissionError(13, "Permission denied", path)
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    rels = {rel for _ino, rel in walk(tmp_path)}
    assert "/c.service" in rels
    assert "/a" in rels
    assert "/a/b.service" not in rels


def test_map_learns_from_the_parent_when_the_process_is_gone(tmp_path: Path) -> None:
    root = tmp_path / "cg"
    root.mkdir()
    proc = tmp_path / "proc"
    proc.mkdir()
    clock = Clock()
    m = CgroupMap(root=root, proc=proc, clock=clock)
    m.refresh()  # a walk just happened: the rate limit forbids another
    new = make_tree(root, ["/system.slice/job.scope"])["/system.slice/job.scope"]
    # the shell that ran the command is still there, in the same cgroup
    (proc / "50").mkdir()
    (proc / "50" / "cgroup").write_text("0::/system.slice/job.scope\n")
    assert m.path_of(new, tgid=51) is None  # the command alone: gone
    assert m.path_of(new, tgid=51, parent=50) == "/system.slice/job.scope"
    assert m.learned == 1
    # a parent in another cgroup is not trusted for this one
    other = make_tree(root, ["/system.slice/other.scope"])["/system.slice/other.scope"]
    assert m.path_of(other, tgid=52, parent=50) is None
