"""Landlock ruleset (JSON) from an access set, and its evaluation. Pure.

Landlock has no globbing: a rule grants rights beneath one existing file or
directory. So every path is exact, except where the access itself needs the
parent directory (creating, removing, renaming, linking: the MAKE_*/REMOVE_*
rights live on the directory), or the workload created a file or directory
under a random temp name (it will not exist next run). Such names directly
under /tmp (mktemp, Python's tempfile: the programs honour TMPDIR) go to
`private_tmp`: the sandbox makes a new directory under /tmp for each run,
points TMPDIR at it and grants their rights beneath it only, never on all of
/tmp. Random names elsewhere get the narrowest existing directory above the
random component; `why` and `temp_notes()` say so.
/proc/<own pid>/... becomes /proc/self/... (the sandbox execs the command in
its own process, so "self" is the same process).

The ruleset restricts the command and everything it runs (a Landlock domain is
inherited across fork and exec): one ruleset covers a whole exec chain, the
wrappers, shims and interpreters with the program they start.

Landlock ignores mmap, chmod/chown, capabilities, signals and UDP: those
accesses are "not mediated" here (always allowed) — docs/policy.md.

File format (docs/policy.md):
  {"lsmtrace_landlock": 1, "comment": [...],
   "handled_access_fs": [...], "handled_access_net": [...],
   "rules": [{"path": "/etc/x", "access": ["read_file"], "why": [...]}],
   "net_rules": [{"port": 443, "access": ["connect_tcp"], "why": [...]}],
   "private_tmp": {"under": "/tmp", "access": [...], "why": [...]},
   "exec_interpreters": true}
"""

from __future__ import annotations

import json
import posixpath
import shlex
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from lsmtrace.errors import LsmtraceError
from lsmtrace.policy.generalise import proc_pid_rest, temp_stable_dir
from lsmtrace.policy.model import Access, AccessSet, Program, shell_word

FORMAT = 1
FS_RIGHTS = (
    "execute",
    "write_file",
    "read_file",
    "read_dir",
    "remove_dir",
    "remove_file",
    "make_char",
    "make_dir",
    "make_reg",
    "make_sock",
    "make_fifo",
    "make_block",
    "make_sym",
    "refer",
    "truncate",
    "ioctl_dev",
)
FS_BIT = {name: 1 << i for i, name in enumerate(FS_RIGHTS)}
# the ABI that introduced each right (v2 refer, v3 truncate, v5 ioctl_dev)
FS_ABI = {**{n: 1 for n in FS_RIGHTS[:13]}, "refer": 2, "truncate": 3, "ioctl_dev": 5}
FILE_RIGHTS = frozenset({"execute", "write_file", "read_file", "truncate", "ioctl_dev"})
NET_RIGHTS = ("bind_tcp", "connect_tcp")
NET_BIT = {name: 1 << i for i, name in enumerate(NET_RIGHTS)}
NET_ABI = 4

# model access -> (on the parent directory?, Landlock rights)
FILE_MAP: dict[str, tuple[bool, tuple[str, ...]]] = {
    "read": (False, ("read_file",)),
    "readdir": (False, ("read_dir",)),
    "write": (False, ("write_file",)),
    "append": (False, ("write_file",)),
    "truncate": (False, ("truncate",)),
    "exec": (False, ("execute", "read_file")),  # open_exec reads and executes
    "unlink": (True, ("remove_file",)),
    "rmdir": (True, ("remove_dir",)),
    "mkdir": (True, ("make_dir",)),
    "mknod": (True, ("make_reg", "make_fifo", "make_sock")),
    "symlink": (True, ("make_sym",)),
    "link": (True, ("make_reg", "refer")),
    "rename_src": (True, ("remove_file", "refer")),
    "rename_dst": (True, ("make_reg", "refer")),
    "create": (True, ("make_reg",)),
}
NOT_MEDIATED = frozenset({"mmap_exec", "chmod", "chown"})


@dataclass(frozen=True)
class Requirement:
    access: Access
    path: str
    rights: tuple[str, ...]
    why: str


@dataclass
class Rule:
    path: str
    access: set[str] = field(default_factory=set)
    why: set[str] = field(default_factory=set)


def landlock_path(prog: Program, path: str) -> tuple[str, str | None]:
    """(path to use, note) with /proc/<own pid> -> /proc/self."""
    pr = proc_pid_rest(path)
    if pr is not None and path in prog.own_proc:
        return "/proc/self" + pr[1], None
    return path, None


PRIVATE_TMP_UNDER = "/tmp"
PRIVATE = "tmpdir:"  # Requirement.path of what goes to private_tmp


def _random_root(path: str) -> str | None:
    """The path down to its first random component below a temp directory."""
    stable = temp_stable_dir(path)
    if stable is None:
        return None
    rest = path[len(stable) :].lstrip("/")
    return stable.rstrip("/") + "/" + rest.split("/", 1)[0]


def requirements(
    aset: AccessSet, also_created: Iterable[str] = ()
) -> list[Requirement]:
    """What each recorded access needs from a Landlock ruleset.
    `also_created`: paths the workload created besides those of the set (the
    live audit mode passes what the session saw created)."""
    out: list[Requirement] = []
    created_paths = {
        path
        for prog in aset.programs.values()
        for path, accs in prog.files.items()
        if accs & {"create", "mkdir"}
    }
    created_paths.update(also_created)
    for name in sorted(aset.programs):
        prog = aset.programs[name]
        for raw in sorted(prog.files):
            path, _ = landlock_path(prog, raw)
            accs = prog.files[raw]
            created = "create" in accs and not path.startswith("/dev/")
            root = _random_root(path)
            if root is not None and not any(
                c == root or c.startswith(root + "/") for c in created_paths
            ):
                # a random-looking name the workload did not create: it
                # existed before the run, so it is named exactly
                root = None
            for acc in sorted(accs):
                a = Access(name, "file", raw, acc)
                if acc in NOT_MEDIATED or acc not in FILE_MAP:
                    continue
                if acc == "create" and path.startswith("/dev/"):
                    continue
                on_parent, rights = FILE_MAP[acc]
                target = path
                why = f"{acc} {path} by {name}"
                if root is not None and posixpath.dirname(root) == PRIVATE_TMP_UNDER:
                    target = PRIVATE + PRIVATE_TMP_UNDER
                    why += " (random temp name: the per-run private TMPDIR)"
                elif root is not None:
                    target = posixpath.dirname(root)
                    why += " (random temp name: the directory above it)"
                elif on_parent or (created and not on_parent):
                    # a file the program creates does not exist yet: every file
                    # right it uses must be granted beneath its directory
                    target = posixpath.dirname(path) or "/"
                    if not on_parent:
                        why += " (created: its directory)"
                out.append(Requirement(a, target, rights, why))
        for n in sorted(
            prog.network, key=lambda x: (x.op, x.family, x.type, x.port or 0)
        ):
            if n.family not in ("AF_INET", "AF_INET6") or n.port is None:
                continue
            if n.type not in ("", "SOCK_STREAM"):
                continue
            if n.op not in ("connect", "bind"):
                continue
            right = "connect_tcp" if n.op == "connect" else "bind_tcp"
            a = Access(name, "net", f"{n.op} {n.family} {n.type} port {n.port}", n.op)
            out.append(
                Requirement(
                    a, f"port:{n.port}", (right,), f"{n.op} TCP {n.port} by {name}"
                )
            )
    return out


def temp_notes(aset: AccessSet) -> list[str]:
    """Why temporary files are granted the way they are (stderr and comment)."""
    reqs = requirements(aset)
    notes = []
    if any(r.path.startswith(PRIVATE) for r in reqs):
        notes.append(
            "random temporary names directly under /tmp (mktemp, tempfile) are "
            "granted in private_tmp: Landlock has no patterns and a rule on /tmp "
            "would grant all of /tmp, so `lsmtrace sandbox` makes a new directory "
            "under /tmp for each run, points TMPDIR at it and grants them there "
            "only (a program that ignores TMPDIR is then denied)"
        )
    parents = sorted(
        {r.path for r in reqs if "(random temp name: the directory" in r.why}
    )
    if parents:
        notes.append(
            "random temporary names elsewhere are granted beneath the narrowest "
            "existing directory above them (Landlock cannot name a file that does "
            "not exist yet): " + ", ".join(parents)
        )
    return notes


def _listed(why: set[str]) -> list[str]:
    return sorted(why)[:5] + ([f"... {len(why) - 5} more"] if len(why) > 5 else [])


def render(
    aset: AccessSet, name: str | None = None, filename: str | None = None
) -> str:
    rules: dict[str, Rule] = {}
    ports: dict[int, Rule] = {}
    private = Rule(PRIVATE_TMP_UNDER)
    for r in requirements(aset):
        if r.path.startswith("port:"):
            port = int(r.path[5:])
            rule = ports.setdefault(port, Rule(r.path))
        elif r.path.startswith(PRIVATE):
            rule = private
        else:
            rule = rules.setdefault(r.path, Rule(r.path))
        rule.access.update(r.rights)
        rule.why.add(r.why)
    comment = [
        "Generated by lsmtrace policy generate --target landlock from: "
        + ", ".join(aset.sources),
        "Everything in handled_access_* is denied unless a rule grants it; "
        "the sandbox masks rights the running kernel's ABI lacks.",
        "Paths are exact (Landlock cannot glob); a created or removed file's "
        "rights are granted beneath its directory.",
        "The ruleset restricts the command and everything it runs (inherited "
        f"across fork and exec): one ruleset for the whole exec chain "
        f"({len(aset.programs)} program(s)).",
    ]
    for cmd in aset.commands:
        comment.append(
            f"Run: lsmtrace sandbox --policy {shell_word(filename)} -- "
            + shlex.join(cmd)
        )
    comment += temp_notes(aset)
    comment += [
        f"No rule (the name could not be placed): {ln}" for ln in aset.unplaced_lines()
    ]
    comment += [f"Inferred (deduced, not seen): {ln}" for ln in aset.inferred_lines()]
    doc: dict[str, Any] = {
        "lsmtrace_landlock": FORMAT,
        "name": name or "lsmtrace",
        "comment": comment,
        "handled_access_fs": list(FS_RIGHTS),
        "handled_access_net": list(NET_RIGHTS),
        "exec_interpreters": True,
        "rules": [
            {
                "path": p,
                "access": sorted(r.access, key=FS_RIGHTS.index),
                "why": _listed(r.why),
            }
            for p, r in sorted(rules.items())
        ],
        "net_rules": [
            {"port": p, "access": sorted(r.access), "why": sorted(r.why)[:5]}
            for p, r in sorted(ports.items())
        ],
    }
    if private.access:
        doc["private_tmp"] = {
            "under": PRIVATE_TMP_UNDER,
            "access": sorted(private.access, key=FS_RIGHTS.index),
            "why": _listed(private.why),
        }
    return json.dumps(doc, indent=1, ensure_ascii=True) + "\n"


class PolicyFormatError(LsmtraceError):
    pass


def parse(text: str, path: str = "policy") -> dict[str, Any]:
    try:
        doc = json.loads(text)
    except ValueError as e:
        raise PolicyFormatError(f"{path}: not a Landlock policy (not JSON: {e})") from e
    if not isinstance(doc, dict) or doc.get("lsmtrace_landlock") != FORMAT:
        raise PolicyFormatError(
            f"{path}: not an lsmtrace Landlock policy (format {FORMAT} expected)",
            hint="generate one with `lsmtrace policy generate --target landlock`",
        )
    for key, names in (
        ("handled_access_fs", FS_RIGHTS),
        ("handled_access_net", NET_RIGHTS),
    ):
        bad = [x for x in doc.get(key, []) if x not in names]
        if bad:
            raise PolicyFormatError(f"{path}: unknown right(s) in {key}: {bad}")
    for r in doc.get("rules", []):
        if (
            not isinstance(r, dict)
            or not isinstance(r.get("path"), str)
            or not str(r["path"]).startswith("/")
        ):
            raise PolicyFormatError(f"{path}: a rule needs an absolute 'path': {r!r}")
        bad = [x for x in r.get("access", []) if x not in FS_RIGHTS]
        if bad:
            raise PolicyFormatError(f"{path}: unknown right(s) {bad} for {r['path']!r}")
    for r in doc.get("net_rules", []):
        if not isinstance(r, dict) or not isinstance(r.get("port"), int):
            raise PolicyFormatError(
                f"{path}: a net rule needs an integer 'port': {r!r}"
            )
    pt = doc.get("private_tmp")
    if pt is not None:
        if not isinstance(pt, dict) or not str(pt.get("under", "")).startswith("/"):
            raise PolicyFormatError(
                f"{path}: private_tmp needs an absolute 'under': {pt!r}"
            )
        bad = [x for x in pt.get("access", []) if x not in FS_RIGHTS]
        if bad:
            raise PolicyFormatError(f"{path}: unknown right(s) {bad} in private_tmp")
    return doc


def beneath(rule_path: str, path: str) -> bool:
    rp = rule_path.rstrip("/") or "/"
    return path == rp or rp == "/" or path.startswith(rp + "/")


def _grants(rule_path: str, path: str) -> bool:
    if path.startswith(PRIVATE):
        # the private TMPDIR lies under its parent: a rule there covers it too
        under = path[len(PRIVATE) :]
        return rule_path == path or (
            not rule_path.startswith(PRIVATE) and beneath(rule_path, under)
        )
    return not rule_path.startswith(PRIVATE) and beneath(rule_path, path)


@dataclass
class CheckResult:
    denied: list[Access] = field(default_factory=list)
    allowed: list[Access] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)


@dataclass
class Ruleset:
    """A parsed policy as check evaluates it: handled rights, path rules
    (the private TMPDIR as `tmpdir:<under>`), port rules."""

    handled_fs: set[str]
    handled_net: set[str]
    rules: list[tuple[str, set[str]]]
    ports: dict[int, set[str]]


def ruleset(doc: dict[str, Any]) -> Ruleset:
    rules = [(str(r["path"]), set(r.get("access", []))) for r in doc.get("rules", [])]
    pt = doc.get("private_tmp") or {}
    if pt:
        # what goes to the private TMPDIR is granted there, nowhere else
        rules.append((PRIVATE + str(pt["under"]), set(pt.get("access", []))))
    ports = {int(r["port"]): set(r.get("access", [])) for r in doc.get("net_rules", [])}
    return Ruleset(
        set(doc.get("handled_access_fs", [])),
        set(doc.get("handled_access_net", [])),
        rules,
        ports,
    )


def lacking(rs: Ruleset, req: Requirement) -> tuple[list[str], set[tuple[str, str]]]:
    """(the rights of `req` no rule grants, the (rule, right) pairs that
    grant the others). A right the ruleset does not handle is allowed."""
    lack: list[str] = []
    used: set[tuple[str, str]] = set()
    for right in req.rights:
        if req.path.startswith("port:"):
            if right in rs.handled_net:
                if right in rs.ports.get(int(req.path[5:]), set()):
                    used.add((req.path, right))
                else:
                    lack.append(right)
            continue
        if right not in rs.handled_fs:
            continue
        granting = [
            rp for rp, acc in rs.rules if right in acc and _grants(rp, req.path)
        ]
        if granting:
            used.update((g, right) for g in granting)
        else:
            lack.append(right)
    return lack, used


def rule_text(req_path: str, rights: Iterable[str]) -> str:
    """The rule granting `rights` on a requirement's path, as the policy file
    writes it (JSON, one line)."""
    fs = sorted((r for r in rights if r in FS_BIT), key=FS_RIGHTS.index)
    if req_path.startswith("port:"):
        doc: dict[str, Any] = {"port": int(req_path[5:]), "access": sorted(rights)}
    elif req_path.startswith(PRIVATE):
        doc = {"private_tmp": {"under": req_path[len(PRIVATE) :], "access": fs}}
    else:
        doc = {"path": req_path, "access": fs}
    return json.dumps(doc, ensure_ascii=True)


def check(doc: dict[str, Any], aset: AccessSet) -> CheckResult:
    rs = ruleset(doc)
    used: set[tuple[str, str]] = set()
    res = CheckResult()
    verdicts: dict[Access, bool] = {}
    for req in requirements(aset):
        lack, hits = lacking(rs, req)
        used |= hits
        verdicts[req.access] = verdicts.get(req.access, True) and not lack
    for a in aset.flat():
        (res.allowed if verdicts.get(a, True) else res.denied).append(a)
    for rp, acc in rs.rules:
        for right in sorted(acc, key=FS_RIGHTS.index):
            if (rp, right) not in used:
                res.unused.append(f"{rp} {right}")
    for port, acc in sorted(rs.ports.items()):
        res.unused += [
            f"port {port} {r}" for r in sorted(acc) if (f"port:{port}", r) not in used
        ]
    return res


def rights_mask(names: Iterable[str], abi: int) -> int:
    mask = 0
    for n in names:
        if n in FS_BIT and FS_ABI[n] <= abi:
            mask |= FS_BIT[n]
    return mask
