"""Cgroups: who runs a process (container, systemd unit), from its cgroup path.

Pure parsing plus a small cache of the cgroup v2 tree; no bcc, no psutil.

- `attribute(path)` names the container and the systemd unit of a cgroup path
  (as in /proc/<pid>/cgroup: "/system.slice/docker-<id>.scope"). The innermost
  container component wins (a Kubernetes pod inside a kind node container is
  the pod's container); `unit` is the innermost `.service` or `.scope`.
- `CgroupMap` maps an event's `cgroup` field (the cgroup v2 id, which is the
  inode number of the cgroup's directory) to its path: first from
  /proc/<tgid>/cgroup of the event's process (one read, checked against the
  id), else by walking the v2 mount (`os.scandir`; kernfs' d_ino is the inode
  number), at most once per `min_refresh` seconds.
- `resolve_cgroup_filter(container=, unit=)` turns `--container ID-PREFIX` and
  `--unit NAME` into a cgroup v2 directory for the kernel-side `--cgroup`
  filter (which covers the subtree).

Formats recognised (from the runtimes' sources and docs):
  docker    systemd driver  /system.slice/docker-<64 hex>.scope
            cgroupfs driver /docker/<64 hex>
  podman    /machine.slice/libpod-<64 hex>.scope[/container]  (rootless: under
            user@<uid>.service/user.slice/); cgroupfs /libpod_parent/libpod-<id>;
            libpod-conmon-<id>.scope is the monitor, not the container
  containerd / CRI (Kubernetes)
            /kubepods.slice/kubepods-<qos>.slice/kubepods-<qos>-pod<uid, "-" as
            "_">.slice/cri-containerd-<id>.scope (guaranteed QoS: no <qos> level);
            crio-<id>.scope (crio-conmon-<id>.scope: monitor); docker-<id>.scope
            (cri-dockerd); cgroupfs driver /kubepods/<qos>/pod<uid>/<id> (runtime
            "cri": the path does not say which), crio-<id>
            nerdctl-<id>.scope (containerd without Kubernetes)
  lxc       /lxc.payload.<name>/... (LXC >= 4, LXD/Incus), /lxc/<name> (older);
            lxc.monitor.<name> is the monitor, not the container
  nspawn    /machine.slice/systemd-nspawn@<name>.service/payload
  other     a bare 64-hex directory (containerd namespaces "/default/<id>",
            CI runners...): runtime "unknown"
Everything else is the host: `container` null.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lsmtrace.errors import UsageError

log = logging.getLogger(__name__)

HEX_ID = r"[0-9a-f]{12,64}"
_SCOPE_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(rf"^docker-({HEX_ID})\.scope$"), "docker"),
    (re.compile(rf"^libpod-({HEX_ID})(?:\.scope)?$"), "podman"),
    (re.compile(rf"^cri-containerd-({HEX_ID})\.scope$"), "containerd"),
    (re.compile(rf"^crio-({HEX_ID})(?:\.scope)?$"), "cri-o"),
    (re.compile(rf"^nerdctl-({HEX_ID})\.scope$"), "containerd"),
    (re.compile(r"^lxc\.payload\.(.+)$"), "lxc"),
    (re.compile(r"^systemd-nspawn@(.+)\.service$"), "nspawn"),
)
_BARE_ID = re.compile(r"^[0-9a-f]{64}$")
_POD_SLICE = re.compile(r"^kubepods(?:-[a-z]+)?-pod([0-9a-f_]{32,36})\.slice$")
_POD_DIR = re.compile(r"^pod([0-9a-f-]{32,36})$")
_UNIT = re.compile(r"\.(?:service|scope)$")
_UNIT_SUFFIXES = (".service", ".scope", ".slice", ".socket", ".mount", ".swap")


@dataclass(frozen=True, slots=True)
class Container:
    runtime: str
    id: str
    pod_uid: str | None = None

    def to_dict(self) -> dict[str, str | None]:
        return {"runtime": self.runtime, "id": self.id, "pod_uid": self.pod_uid}

    @property
    def short_id(self) -> str:
        """docker ps style: 12 characters of a hex id; names unchanged."""
        return self.id[:12] if _BARE_ID.match(self.id) else self.id


@dataclass(frozen=True, slots=True)
class Attribution:
    path: str
    container: Container | None
    unit: str | None

    @property
    def fields(self) -> dict[str, Any]:
        """The JSON fields: {"container": {...} | None, "unit": str | None}."""
        return {
            "container": self.container.to_dict() if self.container else None,
            "unit": self.unit,
        }


def _unescape_unit(s: str) -> str:
    r"""systemd unit-name escaping: "\x2d" is "-" (systemd-escape(1))."""
    if "\\x" not in s:
        return s
    return re.sub(r"\\x([0-9a-fA-F]{2})", lambda m: chr(int(m.group(1), 16)), s)


@functools.lru_cache(maxsize=4096)
def attribute(path: str) -> Attribution:
    """Container and unit of a cgroup path ("/a/b", relative to the v2 root)."""
    parts = [p for p in path.split("/") if p]
    container: Container | None = None
    unit: str | None = None
    pod_uid: str | None = None
    prev = ""
    in_kubepods = False
    for depth, comp in enumerate(parts):
        if _UNIT.search(comp):
            unit = comp
        found: tuple[str, str] | None = None
        m_pod = _POD_SLICE.match(comp) or (in_kubepods and _POD_DIR.match(comp))
        if comp in ("kubepods", "kubepods.slice") or comp.startswith("kubepods-"):
            in_kubepods = True
        if m_pod:
            pod_uid = m_pod.group(1).replace("_", "-")
        else:
            for rx, runtime in _SCOPE_RULES:
                m = rx.match(comp)
                if m:
                    found = (runtime, m.group(1))
                    break
            if found is None and _BARE_ID.match(comp):
                if prev == "docker" and depth == 1:
                    found = ("docker", comp)
                elif pod_uid is not None and prev.startswith("pod"):
                    found = ("cri", comp)
                else:
                    found = ("unknown", comp)
            if found is None and prev == "lxc" and depth == 1:
                found = ("lxc", comp)
        if found is not None:
            runtime, cid = found
            if runtime == "nspawn":
                cid = _unescape_unit(cid)
            in_pod = pod_uid is not None and runtime not in ("lxc", "nspawn")
            container = Container(runtime, cid, pod_uid if in_pod else None)
        prev = comp
    return Attribution("/" + "/".join(parts), container, unit)


HOST = attribute("/")


def parse_proc_cgroup(text: str, hybrid: bool = True) -> str | None:
    """The cgroup path of a /proc/<pid>/cgroup text.

    The v2 line ("0::/path") when it is not "/" or the host is v2 only; on a
    hybrid or v1 host whose v2 hierarchy is empty, the "name=systemd" line, then
    the first controller's path. None when the text has no line at all."""
    v2: str | None = None
    systemd: str | None = None
    first: str | None = None
    for ln in text.splitlines():
        parts = ln.split(":", 2)
        if len(parts) != 3:
            continue
        hid, ctrls, path = parts
        if hid == "0" and not ctrls:
            v2 = path
        elif "name=systemd" in ctrls.split(","):
            systemd = path
        elif first is None:
            first = path
    if v2 is not None and (v2 != "/" or not hybrid):
        return v2
    for p in (systemd, first, v2):
        if p is not None:
            return p
    return None


def find_v2_root(mounts: Path = Path("/proc/self/mounts")) -> tuple[Path | None, bool]:
    """(mount point of cgroup v2 or None, whether v1 hierarchies are mounted too)."""
    try:
        lines = mounts.read_text().splitlines()
    except OSError:
        return Path("/sys/fs/cgroup"), False
    v2: Path | None = None
    v1 = False
    for ln in lines:
        f = ln.split()
        if len(f) < 3:
            continue
        if f[2] == "cgroup2" and v2 is None:
            v2 = Path(f[1].replace("\\040", " "))
        elif f[2] == "cgroup":
            v1 = True
    return v2, v1


def walk(root: Path) -> Iterator[tuple[int, str]]:
    """(inode number = cgroup id, "/relative/path") of every cgroup under root.

    Unreadable or vanishing directories are skipped (a cgroup may be removed
    while we walk)."""
    try:
        yield os.stat(root).st_ino, "/"
    except OSError:
        return
    todo: list[tuple[str, str]] = [(str(root), "")]
    while todo:
        abs_dir, rel = todo.pop()
        try:
            with os.scandir(abs_dir) as it:
                for e in it:
                    try:
                        if not e.is_dir(follow_symlinks=False):
                            continue
                        ino = e.inode()
                    except OSError:
                        continue
                    sub = f"{rel}/{e.name}"
                    yield ino, sub
                    todo.append((e.path, sub))
        except OSError:
            continue


class CgroupMap:
    """cgroup v2 id -> path, cached; refreshed on a miss with a rate limit.

    `root` is the cgroup v2 mount (found in /proc/self/mounts when None),
    `proc` the /proc root, `clock` a monotonic seconds clock; all injectable.
    """

    def __init__(
        self,
        root: Path | None = None,
        proc: Path = Path("/proc"),
        clock: Callable[[], float] = time.monotonic,
        min_refresh: float = 1.0,
        max_entries: int = 65536,
        hybrid: bool | None = None,
    ) -> None:
        found, v1 = (
            find_v2_root(proc / "self" / "mounts") if root is None else (root, False)
        )
        self.root = found
        self.hybrid = v1 if hybrid is None else hybrid
        self.proc = proc
        self.clock = clock
        self.min_refresh = min_refresh
        self.max_entries = max_entries
        self.paths: dict[int, str] = {}
        self._last_walk: float | None = None
        self.walks = 0
        self.misses = 0
        self.learned = 0

    def refresh(self) -> None:
        """Walk the v2 tree now (no rate limit)."""
        self._last_walk = self.clock()
        self.walks += 1
        if self.root is None:
            return
        paths: dict[int, str] = {}
        for ino, rel in walk(self.root):
            if len(paths) >= self.max_entries:
                log.warning(
                    "more than %d cgroups; the rest are not mapped", self.max_entries
                )
                break
            paths[ino] = rel
        self.paths = paths

    def _learn(self, cgroup_id: int, tgid: int) -> str | None:
        """The path from /proc/<tgid>/cgroup, if its directory has this id."""
        if self.root is None or tgid <= 0:
            return None
        try:
            text = (self.proc / str(tgid) / "cgroup").read_text(
                errors="surrogateescape"
            )
        except OSError:
            return None
        for ln in text.splitlines():
            if ln.startswith("0::"):
                rel = ln[3:] or "/"
                try:
                    ino = os.stat(self.root / rel.lstrip("/")).st_ino
                except OSError:
                    return None
                if ino == cgroup_id:
                    self.learned += 1
                    if len(self.paths) < self.max_entries:
                        self.paths[ino] = rel
                    return rel
        return None

    def path_of(self, cgroup_id: int, tgid: int = 0, parent: int = 0) -> str | None:
        """The "/relative/path" of a cgroup id, or None when unknown (gone, or the
        rate limit forbids another walk yet). Learnt from /proc/<tgid>/cgroup,
        else from the parent's (a short-lived command is often gone when its
        event is read, the shell or daemon that started it, in the same
        cgroup, is not), else from a walk of the hierarchy."""
        p = self.paths.get(cgroup_id)
        if p is not None:
            return p
        self.misses += 1
        p = self._learn(cgroup_id, tgid)
        if p is None and parent > 0 and parent != tgid:
            p = self._learn(cgroup_id, parent)
        if p is not None:
            return p
        now = self.clock()
        if self._last_walk is None or now - self._last_walk >= self.min_refresh:
            self.refresh()
            return self.paths.get(cgroup_id)
        return None


# -- --container / --unit ------------------------------------------------------


def _v2_root_or_error(root: Path | None) -> Path:
    if root is None:
        root, _v1 = find_v2_root()
    if root is None or not (root / "cgroup.procs").exists():
        raise UsageError(
            "no cgroup v2 hierarchy is mounted: --container and --unit need one",
            hint="mount -t cgroup2 none /sys/fs/cgroup/unified, or filter with --pid",
        )
    return root


def _unit_names(unit: str) -> set[str]:
    if unit.endswith(_UNIT_SUFFIXES):
        return {unit}
    return {unit + ".service", unit + ".scope", unit + ".slice"}


def _listing(items: list[str], n: int = 5) -> str:
    more = f" (and {len(items) - n} more)" if len(items) > n else ""
    return ", ".join(items[:n]) + more


def resolve_cgroup_filter(
    container: str | None = None, unit: str | None = None, root: Path | None = None
) -> Path:
    """The cgroup v2 directory for `--container ID-PREFIX` and/or `--unit NAME`.

    A container is matched by a prefix of its id (LXC/nspawn: of its name); the
    directory returned is the container's topmost cgroup, so that the kernel's
    subtree filter covers its sub-cgroups (podman's ".../container"). A unit is
    matched by its name ("ssh.service"; "ssh" tries .service, .scope, .slice).
    With both, the deeper of the two (they must be nested). Raises UsageError
    with a hint when nothing matches or the prefix/name is ambiguous."""
    if container is None and unit is None:
        raise UsageError("nothing to resolve", hint="give --container or --unit")
    base = _v2_root_or_error(root)
    tree = [rel for _ino, rel in walk(base)]
    found: list[str] = []
    if container is not None:
        found.append(_match_container(container, tree))
    if unit is not None:
        found.append(_match_unit(unit, tree))
    if len(found) == 2:
        a, b = sorted(found, key=len)
        if not (b == a or b.startswith(a.rstrip("/") + "/")):
            raise UsageError(
                f"container {container!r} ({found[0]}) is not inside unit {unit!r} "
                f"({found[1]})",
                hint="give only one of --container and --unit",
            )
        found = [b]
    return base / found[0].lstrip("/")


def _match_container(prefix: str, tree: list[str]) -> str:
    want = prefix.strip().lower()
    if not want:
        raise UsageError(
            "--container needs an id prefix", hint="e.g. --container 3f2a1b"
        )
    tops: dict[Container, str] = {}
    every: dict[Container, str] = {}
    for rel in tree:
        c = attribute(rel).container
        if c is None:
            continue
        key = Container(c.runtime, c.id)
        if key not in every or len(rel) < len(every[key]):
            every[key] = rel
        if c.id.lower().startswith(want) and (
            key not in tops or len(rel) < len(tops[key])
        ):
            tops[key] = rel
    if not tops:
        known = [f"{c.runtime}:{c.short_id}" for c in every]
        raise UsageError(
            f"no container whose id starts with {prefix!r}",
            hint=("containers here: " + _listing(known))
            if known
            else "no container cgroup found under the cgroup v2 hierarchy; "
            "filter with --cgroup PATH or --pid",
        )
    if len(tops) > 1:
        ids = [f"{c.runtime}:{c.short_id}" for c in tops]
        raise UsageError(
            f"container id prefix {prefix!r} is ambiguous: {len(tops)} containers match",
            hint="give more characters of the id; matching: " + _listing(ids),
        )
    return next(iter(tops.values()))


def _match_unit(unit: str, tree: list[str]) -> str:
    names = _unit_names(unit.strip())
    if not unit.strip() or "/" in unit:
        raise UsageError(
            f"--unit {unit!r} is not a unit name",
            hint="e.g. --unit ssh.service; for a cgroup path use --cgroup",
        )
    hits = [rel for rel in tree if rel.rsplit("/", 1)[-1] in names]
    if not hits:
        raise UsageError(
            f"no systemd unit {unit!r} has a cgroup here",
            hint="list them with `systemctl list-units --type=service,scope`; a unit "
            "that is not running has no cgroup",
        )
    if len(hits) > 1:
        raise UsageError(
            f"unit {unit!r} is ambiguous: {len(hits)} cgroups match",
            hint="pass one of them with --cgroup: " + _listing(hits),
        )
    return hits[0]
