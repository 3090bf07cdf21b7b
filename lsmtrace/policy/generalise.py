"""What the renderers (and `policy diff`) generalise, and how: pure, deterministic.

Every kind is named in the generated policy's header, so a reader sees why a
recorded path became a pattern (docs/policy.md, "Generalisation"):

  - random names below a temp directory (/tmp, /var/tmp, /dev/shm, /run/user):
    each run of 6+ letters, digits or `_` holding a digit and a letter (not a
    word followed by a short number: `report_2024` stays) or both cases is
    random (mkstemp's XXXXXX, mktemp's tmp.XXXXXXXXXX, Python's tmpXXXXXXXX),
    in every component below the temp directory; `temp_pieces()`. A file
    the program created and removed in the recording has its last such run
    random even when it looks like a word (`volatile()`)
  - an atomic-write temporary: a file renamed onto a sibling whose name it
    extends with a random or numeric tail (Python's `mod.pyc.140234567890`,
    editors' and rsync's `file.XXXXXX`); `atomic_temps()`
  - /proc/<pid>/... of the process itself or of another; `proc_pid_rest()`
  - merged /usr (Debian 12 and most distributions): `/bin`, `/sbin` and
    `/lib*` are symlinks into /usr, and the kernel's own path of a file
    named `/bin/true` is `/usr/bin/true`; `merged_usr()`

and how programs are named (`unique_names()`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import posixpath
import re
from collections import Counter
from collections.abc import Callable, Iterable

from lsmtrace.policy.model import Access, AccessSet, Program, atomic_tail, random_run

TEMP_DIRS = ("/tmp/", "/var/tmp/", "/dev/shm/", "/run/user/")
# directories that are symlinks into /usr on a merged-/usr system
MERGED_DIRS = ("/bin/", "/sbin/", "/lib/", "/lib32/", "/lib64/", "/libx32/")

_RUNS = re.compile(r"[A-Za-z0-9_]+|[^A-Za-z0-9_]+")
_TEMP_CHARS = re.compile(r"[A-Za-z0-9._+~-]+")

Piece = tuple[bool, str]  # (random?, text)


def component_pieces(comp: str, volatile: bool = False) -> list[Piece] | None:
    """The pieces of one path component, random ones marked; None when no
    piece is random, or the component has characters no temp-name generator
    uses (a hostile name is never generalised). A leading `tmp` (mktemp,
    Python's tempfile) is literal.

    `volatile`: the program created this file and removed it again. Then the
    last run of 6+ name characters is random even when it happens to look like
    a word (Python draws 8 of [a-z0-9_]: one name in ~7 has no digit or ends
    in a short number, e.g. `lsmt-app-kxqwbzpt`, `abcdef12`), so the next
    run's name matches whatever was drawn this time."""
    if not _TEMP_CHARS.fullmatch(comp):
        return None
    pieces: list[Piece] = []
    for m in _RUNS.finditer(comp):
        t = m.group(0)
        if not (t[0].isalnum() or t[0] == "_"):
            pieces.append((False, t))
        else:
            pieces += _run_pieces(t, random_run)
    if volatile and not any(r for r, _ in pieces):
        for i in range(len(pieces) - 1, -1, -1):
            t = pieces[i][1]
            if t[0].isalnum() or t[0] == "_":
                pieces[i : i + 1] = _run_pieces(t, lambda r: len(r) >= 6)
                break
    return pieces if any(r for r, _ in pieces) else None


def _run_pieces(t: str, random: Callable[[str], bool]) -> list[Piece]:
    """A run of name characters as pieces: a leading `tmp` (mktemp, Python's
    tempfile) literal when the rest is random, else the run, random or not."""
    if t.startswith("tmp") and random(t[3:]):
        return [(False, "tmp"), (True, t[3:])]
    return [(random(t), t)]


def volatile(prog: Program, path: str) -> bool:
    """Whether `prog` created `path` and removed it in the recording: a
    temporary file by what the program did, whatever its name looks like."""
    acc = prog.files.get(path, set())
    return "unlink" in acc and bool(acc & {"create", "mknod"})


def temp_pieces(
    path: str, volatile: bool = False
) -> tuple[str, list[list[Piece]]] | None:
    """(temp directory, pieces of each component below it) when a component
    below a temp directory has a random piece; else None. `volatile`: the
    file was created and removed (component_pieces), its last component.

    /tmp/tmp.Ab12Cd34Ef/out -> ("/tmp/", [[tmp, ., <Ab12Cd34Ef>], [out]])"""
    for d in TEMP_DIRS:
        if path.startswith(d):
            comps = path[len(d) :].split("/")
            last = len(comps) - 1
            pieces = [
                component_pieces(c, volatile and i == last) or [(False, c)]
                for i, c in enumerate(comps)
            ]
            if any(r for ps in pieces for r, _ in ps):
                return d, pieces
            return None
    return None


def temp_stable_dir(path: str) -> str | None:
    """The deepest directory above the first random component of a temp
    path: the narrowest existing directory a rule on it can name."""
    tp = temp_pieces(path)
    if tp is None:
        return None
    d, pieces = tp
    comps = path[len(d) :].split("/")
    for i, ps in enumerate(pieces):
        if any(r for r, _ in ps):
            return posixpath.join(d, *comps[:i]).rstrip("/") or "/"
    return None


def pattern(
    path: str,
    star: str,
    literal: Callable[[str], str],
    whole: Callable[[int], str] | None = None,
    volatile: bool = False,
) -> str | None:
    """A temp path as a pattern: literal pieces through `literal`, a random
    piece as `star`; a component that is random throughout as `whole(len)`
    when given (a fixed-length class: narrower than a star). `volatile`: see
    temp_pieces."""
    tp = temp_pieces(path, volatile)
    if tp is None:
        return None
    d, pieces = tp
    out = [literal(d)]
    for i, ps in enumerate(pieces):
        if i:
            out.append(literal("/"))
        if whole is not None and len(ps) == 1 and ps[0][0]:
            out.append(whole(len(ps[0][1])))
            continue
        out += [star if r else literal(t) for r, t in ps]
    return "".join(out)


def atomic_temps(prog: Program) -> dict[str, str]:
    """path -> its literal prefix, for each file the program renamed onto a
    sibling whose name it extends with a random or numeric tail (atomic
    write: write `f.XXXX`, rename to `f`). The tail differs each run."""
    dsts = {p for p, acc in prog.files.items() if "rename_dst" in acc}
    out: dict[str, str] = {}
    for p, acc in prog.files.items():
        if "rename_src" not in acc:
            continue
        for q in dsts:
            if atomic_tail(p, q):
                out[p] = p[: len(q) + 1]
    return out


def proc_pid_rest(path: str) -> tuple[str, str] | None:
    """('<pid>', rest) for /proc/<pid>/rest and /proc/self/rest."""
    parts = path.split("/", 3)
    if (
        len(parts) >= 3
        and parts[1] == "proc"
        and (parts[2].isdigit() or parts[2] in ("self", "thread-self"))
    ):
        return parts[2], ("/" + parts[3]) if len(parts) > 3 else ""
    return None


def merged_usr(path: str) -> str | None:
    """/usr + path for a path under /bin, /sbin, /lib*: the kernel's own name
    of that file on a merged-/usr system."""
    return "/usr" + path if path.startswith(MERGED_DIRS) else None


def fold_merged_usr(aset: AccessSet) -> AccessSet:
    """The set as AppArmor and TOMOYO see it on a merged-/usr system: when
    both /bin/x and /usr/bin/x are programs of the set they are one file, so
    one program (the /usr one, the kernel's name of it), with what both did.
    Without the pair the set is returned as it is."""
    alias = {k: u for k in aset.programs if (u := merged_usr(k)) and u in aset.programs}
    if not alias:
        return aset
    out = dataclasses.replace(aset, programs={})
    for key in sorted(aset.programs):
        src = aset.programs[key]
        name = alias.get(key, key)
        dst = out.program(name, name if src.exe else None)
        for path, acc in src.files.items():
            dst.files.setdefault(path, set()).update(acc)
        for target, how in src.execs.items():
            dst.execs.setdefault(alias.get(target, target), set()).update(how)
        dst.execs.pop(name, None)
        dst.comms |= src.comms
        dst.caps |= src.caps
        dst.network |= src.network
        dst.signals |= src.signals
        dst.ptrace |= src.ptrace
        dst.own_proc |= src.own_proc
        dst.inferred |= src.inferred
        dst.interpreters |= src.interpreters
        dst.reads_self = dst.reads_self or src.reads_self
        dst.exact_exe = dst.exact_exe or src.exact_exe
    out.roots = {alias.get(r, r) for r in aset.roots}
    chains = set()
    for chain in aset.chains:
        renamed: list[str] = []
        for p in chain:
            if not renamed or renamed[-1] != alias.get(p, p):
                renamed.append(alias.get(p, p))
        chains.add(tuple(renamed))
    out.chains = chains
    out.quiet_caps = {(alias.get(p, p), c): w for (p, c), w in aset.quiet_caps.items()}
    return out


def generalised(prog: Program, path: str) -> str:
    """The path as the policies generalise it (for `policy diff`): random temp
    pieces and atomic-write tails as `*`, the process's own /proc/<pid> as
    /proc/self, another's as /proc/<pid>."""
    pr = proc_pid_rest(path)
    if pr is not None and pr[0] not in ("self", "thread-self"):
        who = "self" if path in prog.own_proc else "<pid>"
        return f"/proc/{who}{pr[1]}"
    at = atomic_temps(prog).get(path)
    if at is not None:
        return at + "*"
    return pattern(path, "*", lambda s: s, volatile=volatile(prog, path)) or path


def generalised_set(aset: AccessSet) -> set[Access]:
    """The flat access set as the policies see it (for `policy diff`): two
    runs that differ only in random temp names, atomic-write tails or pids
    give the same set. A program in a temp directory is generalised too."""
    out: set[Access] = set()
    for a in aset.flat():
        prog = aset.programs[a.program]
        what = generalised(prog, a.what) if a.kind == "file" else a.what
        name = pattern(a.program, "*", lambda s: s) or a.program
        out.add(Access(name, a.kind, what, a.access))
    return out


def unique_names(
    keys: Iterable[str],
    short: Callable[[str], str],
    long: Callable[[str], str],
    sep: str,
) -> dict[str, str]:
    """A name per program, unique and stable whatever the basenames.

    A program is named `short(key)` (its basename) unless another program of
    the set has the same short name: then each of them is named `long(key)`
    (its whole path, components joined), and if even that collides (two
    paths that differ only in characters the target cannot spell) the long
    name gets `sep` and 8 hex digits of the path's SHA-256. The name depends
    only on the program's path and on which other programs are in the set."""
    keys = sorted(set(keys))
    first = {k: short(k) for k in keys}
    n_short = Counter(first.values())
    second = {k: (first[k] if n_short[first[k]] == 1 else long(k)) for k in keys}
    n_long = Counter(second.values())
    out: dict[str, str] = {}
    for k in keys:
        name = second[k]
        if n_long[name] > 1:
            digest = hashlib.sha256(k.encode("utf-8", "surrogateescape")).hexdigest()
            name = f"{name}{sep}{digest[:8]}"
        out[k] = name
    return out
