"""AppArmor profiles from an access set, and their evaluation. Pure.

One top-level profile per recorded command (attached to the path it was
started by) and per program that took over a process from a wrapper; the
programs a profile starts get the exec transition each needs (`plan()`):

  ix  the program needs nothing this profile does not grant: it runs under it
  Cx  a child process that needs more: a child profile inside this one, with
      only what it used (confined so only when started from here: no global
      profile for e.g. /usr/bin/grep)
  Px  a program that takes over this process (exec without fork: the real
      binary behind a shim, a wrapper or a script's `exec`): a top-level
      profile of its own, entered by name (`Px -> NAME`), not attached to
      its path (so the program is not confined when run on its own)

Every profile includes abstractions/base, and what an included abstraction
grants is folded into it, not listed (aa_abstractions.py; nameservice and
python when used). Names are unique whatever the basenames (`profile_names`).
Generalisation is deterministic and each kind is named in the header comment
(generalise.py): random temp names (`owner`, `*`, or a fixed-length class
for a name random throughout), atomic-write temporaries, /proc/<pid>, and
merged /usr (`/bin/x` -> `/{,usr/}bin/x`: the kernel's own name is /usr/bin/x).

Everything taken from a recording is quoted and escaped: `\\` `\\"` and the glob
and variable characters `* ? [ ] { } ^` get a backslash (a literal, never a
pattern: checked with `apparmor_parser -D expr-tree` in the tests); spaces,
control characters and non-ASCII bytes become octal `\\NNN`. A hostile file
name can therefore never widen a rule, nor end it, nor start another one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from lsmtrace.errors import LsmtraceError
from lsmtrace.policy import aa_abstractions as abstr
from lsmtrace.policy.generalise import (
    MERGED_DIRS,
    atomic_temps,
    fold_merged_usr,
    merged_usr,
    pattern,
    proc_pid_rest,
    unique_names,
    volatile,
)
from lsmtrace.policy.landlock import CheckResult
from lsmtrace.policy.model import (
    AccessSet,
    Program,
    byte_str,
    comment_block,
    comment_safe,
    net_text,
    shell_word,
)

SPECIAL = b'*?[]{}^"\\'
PERMS = {
    "read": "r",
    "readdir": "r",
    "write": "w",
    "append": "a",
    "create": "w",
    "truncate": "w",
    "exec": "x",
    "mmap_exec": "m",
    "unlink": "w",
    "rmdir": "w",
    "mkdir": "w",
    "rename_src": "rw",
    "rename_dst": "w",
    "link": "l",
    "symlink": "w",
    "mknod": "w",
    "chmod": "w",
    "chown": "w",
}
DIR_ACCESSES = frozenset({"readdir", "mkdir", "rmdir"})
PERM_ORDER = "mrwalx"
TEMP_CLASS = "[a-zA-Z0-9_]"
FAMILIES = {
    "AF_INET": "inet",
    "AF_INET6": "inet6",
    "AF_UNIX": "unix",
    "AF_NETLINK": "netlink",
    "AF_PACKET": "packet",
}
SOCK_TYPES = {
    "SOCK_STREAM": "stream",
    "SOCK_DGRAM": "dgram",
    "SOCK_RAW": "raw",
    "SOCK_SEQPACKET": "seqpacket",
}
# the markers check() reads back: which program a profile is for, and which
# programs run under it (ix)
PROGRAM_MARK = "# lsmtrace program: "
INHERIT_MARK = "# lsmtrace inherits: "

MODE_WHY = {
    "self": "its own file",
    "ix": "needs nothing this profile does not grant: it runs under this profile",
    "Cx": "a child process that needs more than this profile: its own child "
    "profile {name} below, confined so only when started from here",
    "Px": "takes over this process (exec without fork: a wrapper handing over): "
    "its own profile {name}",
    "Px?": "has no profile in this file (left out with --program): load one for "
    "it, or the exec is denied",
}


def escape_literal(s: str) -> str:
    """A literal path fragment for inside double quotes."""
    out = []
    for b in s.encode("utf-8", "surrogateescape"):
        if b in SPECIAL:
            out.append("\\" + chr(b))
        elif 0x20 < b < 0x7F:
            out.append(chr(b))
        else:
            out.append(f"\\{b:03o}")
    return "".join(out)


def unescape_literal(s: str) -> str:
    """escape_literal's inverse (surrogateescape str)."""
    out = bytearray()
    i = 0
    raw = s.encode("utf-8", "surrogateescape")
    while i < len(raw):
        if raw[i] == 0x5C and i + 1 < len(raw):
            m = re.match(rb"[0-3][0-7]{2}", raw[i + 1 : i + 4])
            if m:
                out.append(int(m.group(0), 8))
                i += 4
                continue
            out.append(raw[i + 1])
            i += 2
            continue
        out.append(raw[i])
        i += 1
    return out.decode("utf-8", "surrogateescape")


def comment_text(s: str) -> str:
    """Safe inside a `#` comment: one line, ASCII (model.comment_safe)."""
    return comment_safe(s)


def _clean(s: str) -> str:
    safe = re.sub(
        r"[^A-Za-z0-9._-]",
        "_",
        s.encode("utf-8", "surrogateescape").decode("ascii", "replace"),
    )
    return safe.strip(".") or "_"


def _short(key: str) -> str:
    if key.startswith("comm:"):
        return "lsmtrace-comm-" + _clean(key[5:])
    return "lsmtrace-" + _clean(key.rsplit("/", 1)[-1])


def _long(key: str) -> str:
    if key.startswith("comm:"):
        return _short(key)
    return "lsmtrace-" + ".".join(_clean(c) for c in key.split("/") if c)


def profile_names(aset: AccessSet) -> dict[str, str]:
    """program -> profile name: `lsmtrace-BASENAME`, or on a collision
    `lsmtrace-usr.bin.python3.11` (the path, components joined by dots)."""
    return unique_names(aset.programs, _short, _long, "-")


def profile_name(prog: Program) -> str:
    """The name of a program's profile when no other program shares its
    basename (check falls back to it for profiles without markers)."""
    return _short(prog.name)


@dataclass
class Rule:
    pattern: str  # rendered (quoted/escaped) path pattern
    perms: set[str] = field(default_factory=set)
    owner: bool = False
    why: set[str] = field(default_factory=set)


def path_pattern(
    prog: Program, path: str, is_dir: bool, atomic: dict[str, str] | None = None
) -> tuple[str, bool, str | None]:
    """(quoted pattern, owner, generalisation note)."""
    tail = "/" if is_dir and not path.endswith("/") else ""
    pr = proc_pid_rest(path)
    if pr is not None and pr[0] not in ("thread-self",):
        own = path in prog.own_proc or pr[0] == "self"
        var = "@{pid}" if own else "@{pids}"
        note = "/proc/<own pid> -> @{PROC}/@{pid}" if own else "/proc/<pid> -> @{pids}"
        return f'"@{{PROC}}/{var}{escape_literal(pr[1] + tail)}"', own, note
    tp = pattern(
        path + tail,
        "*",
        escape_literal,
        lambda n: TEMP_CLASS * n,
        volatile=volatile(prog, path),
    )
    if tp is not None:
        return (
            f'"{tp}"',
            True,
            "random temp names -> * (a name random throughout: "
            f"{TEMP_CLASS} per character), owner",
        )
    if atomic and path in atomic:
        return (
            f'"{escape_literal(atomic[path])}*"',
            True,
            "atomic-write temporary (f.XXXX renamed onto f) -> f.*, owner",
        )
    if path.startswith(MERGED_DIRS):
        return (
            f'"/{{,usr/}}{escape_literal(path[1:] + tail)}"',
            False,
            "merged /usr: /bin/x -> /{,usr/}bin/x",
        )
    return f'"{escape_literal(path + tail)}"', False, None


def _perm_string(perms: set[str], exec_mode: str) -> str:
    letters = set("".join(perms))
    if "w" in letters:
        letters.discard("a")  # 'a' and 'w' exclude each other; w covers append
    if exec_mode == "ix":
        letters.discard("m")  # ix implies m
    out = "".join(c for c in PERM_ORDER if c in letters and c != "x")
    if "x" in letters:
        out += exec_mode
    return out


def _is_dir_access(access: str, path: str, dirs: Iterable[str]) -> bool:
    return access in DIR_ACCESSES or (access == "read" and path in dirs)


def kernel_view(path: str) -> str:
    """The path as AppArmor matches it: /proc/self and /proc/thread-self are
    the process's /proc/<pid> (and <tid>) by the time a rule is matched."""
    for link in ("/proc/self/", "/proc/thread-self/"):
        if path.startswith(link):
            return "/proc/1/" + path[len(link) :]
    return path


def _folded(
    includes: list[abstr.Abstraction], path: str, access: str, is_dir: bool
) -> str | None:
    """The include that grants this file access, if one does."""
    letters = set(PERMS[access])
    if "x" in letters:
        return None  # an exec always gets its own rule (its transition)
    p = byte_str(kernel_view(path) + ("/" if is_dir and not path.endswith("/") else ""))
    for ab in includes:
        if abstr.grants_file(ab, p, letters):
            return ab.name
    return None


def includes_for(prog: Program, dirs: set[str]) -> list[abstr.Abstraction]:
    """base, plus nameservice and python where the program used them."""
    base = abstr.load("base")
    assert base is not None
    out = [base]
    inet = any(n.family in ("AF_INET", "AF_INET6") for n in prog.network)
    if inet and any(
        p in ("/etc/nsswitch.conf", "/usr/etc/nsswitch.conf") for p in prog.files
    ):
        ns = abstr.load("nameservice")
        assert ns is not None
        out.append(ns)
    py = abstr.load("python")
    assert py is not None
    for path, accs in prog.files.items():
        for a in accs:
            d = _is_dir_access(a, path, dirs)
            if _folded([base], path, a, d) is None and _folded([py], path, a, d):
                return [*out, py]
    return out


@dataclass
class Body:
    """A profile's rules: lines, what was folded, generalisations."""

    lines: list[str] = field(default_factory=list)
    folded: dict[str, int] = field(default_factory=dict)  # include -> accesses
    notes: set[str] = field(default_factory=set)
    includes: list[str] = field(default_factory=list)


@dataclass
class ExecChoice:
    target: str  # program key
    mode: str  # self | ix | Cx | Px | Px?
    name: str | None  # the profile it transitions to


def render_body(
    prog: Program,
    dirs: frozenset[str],
    modes: dict[str, ExecChoice] | None = None,
    exact: dict[str, str] | None = None,
) -> Body:
    """The rules of `prog`'s profile; exec rules take their transition from
    `modes` (target -> choice; default ix), each explained in a comment, and
    name the target's exact path where the recording has it (`exact`)."""
    modes = modes or {}
    exact = exact or {}
    includes = includes_for(prog, set(dirs))
    body = Body(includes=[ab.name for ab in includes])
    atomic = atomic_temps(prog)
    rules: dict[tuple[str, bool], Rule] = {}
    exec_rules: dict[str, Rule] = {}
    exec_of: dict[str, str] = {}  # pattern -> target program
    for path in sorted(prog.files):
        accs = prog.files[path]
        for is_dir in (False, True):
            sub = {a for a in accs if _is_dir_access(a, path, dirs) == is_dir}
            kept = set()
            for a in sub:
                inc = _folded(includes, path, a, is_dir)
                if inc is None:
                    kept.add(a)
                else:
                    body.folded[inc] = body.folded.get(inc, 0) + 1
            if not kept:
                continue
            shown = exact.get(path, path) if "exec" in kept else path
            pat, owner, note = path_pattern(prog, shown, is_dir, atomic)
            if note:
                body.notes.add(note)
            if "exec" in kept:
                r = exec_rules.setdefault(pat, Rule(pat, owner=owner))
                exec_of.setdefault(pat, path)
            else:
                r = rules.setdefault((pat, owner), Rule(pat, owner=owner))
            r.perms.update(PERMS[a] for a in kept)
            r.why.add(path)
    lines = body.lines
    for cap in sorted(prog.caps):
        lines.append(f"  capability {cap.removeprefix('CAP_').lower()},")
    nets = set()
    granted_net = {n for ab in includes for n in ab.network}
    for n in prog.network:
        fam, typ = FAMILIES.get(n.family), SOCK_TYPES.get(n.type, "")
        if fam and (fam, typ) in granted_net:
            body.folded["nameservice"] = body.folded.get("nameservice", 0) + 1
        elif fam:
            nets.add(f"  network {fam} {typ},".replace(" ,", ","))
    lines += sorted(nets)
    self_rules = {r for ab in includes for r in ab.self_rules}
    sigs = sorted(
        {
            s.removeprefix("SIG").lower()
            for s, who in prog.signals
            if s.startswith("SIG")
            and s[3:].isalpha()
            and not (who == "self" and "signal self" in self_rules)
        }
    )
    if sigs:
        lines.append(f"  signal (send) set=({' '.join(sigs)}),")
    if (
        any(s == "EXISTS" for s, _ in prog.signals)
        and "signal exists" not in self_rules
    ):
        lines.append("  signal (send) set=(exists),")
    for mode, who in sorted(prog.ptrace):
        if not (mode == "read" and who == "self" and "ptrace read self" in self_rules):
            lines.append(f"  ptrace ({mode}),")
    for interp in sorted(prog.interpreters):
        lines.append(
            f"  # {comment_text(interp)}: the #! interpreter of this script "
            "(the kernel maps it when the script starts)"
        )
    for (_pat, _owner), r in sorted(rules.items()):
        prefix = "owner " if r.owner else ""
        lines.append(f"  {prefix}{r.pattern} {_perm_string(r.perms, '')},")
    if prog.reads_self and not prog.interpreters and prog.exe:
        lines.append(
            "  # it reads its own file: probably a script; its #! interpreter "
            'is not in the recording (add `"INTERPRETER" mr,`)'
        )
    for pat, r in sorted(exec_rules.items()):
        target = exec_of[pat]
        ch = modes.get(
            target, ExecChoice(target, "self" if target == prog.name else "ix", None)
        )
        target = ch.target
        mode = {"self": "ix", "Px?": "Px"}.get(ch.mode, ch.mode)
        why = MODE_WHY[ch.mode].format(name=ch.name)
        lines.append(f"  # {mode}: {comment_text(target)}: {why}")
        prefix = "owner " if r.owner else ""
        arrow = f" -> {ch.name}" if ch.name and mode in ("Cx", "Px") else ""
        lines.append(f"  {prefix}{r.pattern} {_perm_string(r.perms, mode)}{arrow},")
    return body


def _grants(parent: Body, child: Program, aset: AccessSet) -> bool:
    """Whether the profile `parent` grants everything `child` did (so the
    child can run under it: ix)."""
    prof = _parse_body(parent)
    dirs = aset.directories()
    for a in AccessSet(programs={child.name: child}).flat():
        if a.kind == "file" and a.access == "exec" and a.what == child.name:
            continue
        if not allows(prof, a.kind, a.what, a.access, a.what in dirs)[0]:
            return False
    return True


def exact_paths(aset: AccessSet) -> dict[str, str]:
    """program -> its executable's exact path, where the recording has it."""
    return {k: p.exact_exe for k, p in aset.programs.items() if p.exact_exe}


@dataclass
class Plan:
    """Which profiles exist and how each exec transitions."""

    names: dict[str, str]
    top: set[str] = field(default_factory=set)  # programs with a top-level profile
    children: dict[str, set[str]] = field(default_factory=dict)  # parent -> Cx children
    inherits: dict[str, set[str]] = field(
        default_factory=dict
    )  # profile -> ix programs
    modes: dict[tuple[str, str], ExecChoice] = field(default_factory=dict)


def plan(aset: AccessSet) -> Plan:
    """Decide each exec's transition (see the module doc), from the roots.
    `aset` as fold_merged_usr() gives it (render and check do)."""
    names = profile_names(aset)
    progs = aset.programs
    dirs = frozenset(aset.directories())
    execd = {
        t
        for p in progs.values()
        for t, a in p.files.items()
        if "exec" in a and t != p.name
    }
    pl = Plan(names)
    # the roots, and any program nothing in the recording started
    work = sorted({k for k in progs if k in aset.roots or k not in execd})
    pl.top.update(work)
    bodies: dict[str, Body] = {}

    exact = exact_paths(aset)

    def body(key: str) -> Body:
        if key not in bodies:
            bodies[key] = render_body(progs[key], dirs, exact=exact)
        return bodies[key]

    def choose(ctx: str, holder: str, nested: bool) -> None:
        """Transitions of `holder`'s execs inside profile context `ctx`."""
        p = progs[holder]
        for path in sorted(t for t, a in p.files.items() if "exec" in a):
            # /bin/x folded into /usr/bin/x (fold_merged_usr): one program
            usr = merged_usr(path)
            target = usr if path not in progs and usr in progs else path
            if target == holder:
                ch = ExecChoice(target, "self", None)
            elif target not in progs:
                ch = ExecChoice(target, "Px?", None)
            elif _grants(body(holder), progs[target], aset):
                ch = ExecChoice(target, "ix", None)
                pl.inherits.setdefault(ctx, set()).add(target)
            elif nested or "replace" in p.execs.get(target, set()):
                # a program taking over the process (or started from a child
                # profile: no child profiles inside a child profile) gets a
                # top-level profile of its own
                ch = ExecChoice(target, "Px", names[target])
                if target not in pl.top:
                    pl.top.add(target)
                    work.append(target)
            else:
                ch = ExecChoice(target, "Cx", names[target])
                pl.children.setdefault(holder, set()).add(target)
            pl.modes[(ctx, path)] = ch

    done: set[str] = set()
    while work:
        key = work.pop(0)
        if key in done:
            continue
        done.add(key)
        choose(key, key, False)
        for child in sorted(pl.children.get(key, set())):
            choose(f"{key}//{child}", child, True)
    return pl


def _attachment(prog: Program, aset: AccessSet) -> str:
    if prog.name not in aset.roots or not prog.exe:
        return ""
    path = prog.exact_exe or prog.exe
    return " " + path_pattern(prog, path, False)[0]


def _profile_text(
    aset: AccessSet,
    pl: Plan,
    key: str,
    ctx: str,
    indent: str,
    name: str,
    attach: str,
    notes: set[str],
    folded: dict[str, int],
) -> list[str]:
    prog = aset.programs[key]
    modes = {t: ch for (c, t), ch in pl.modes.items() if c == ctx}
    body = render_body(prog, frozenset(aset.directories()), modes, exact_paths(aset))
    notes |= body.notes
    for inc, n in body.folded.items():
        folded[inc] = folded.get(inc, 0) + n
    out = [f"{indent}{PROGRAM_MARK}{comment_text(key)}"]
    out += [
        f"{indent}{INHERIT_MARK}{comment_text(t)}"
        for t in sorted(pl.inherits.get(ctx, set()))
    ]
    out.append(f"{indent}profile {name}{attach} {{")
    out += [f"{indent}  #include <abstractions/{inc}>" for inc in body.includes]
    out += [indent + ln for ln in body.lines]
    return out


def instructions(filename: str | None = None) -> list[str]:
    """(what, command) lines written into the profile file; a test runs them."""
    f = shell_word(filename)
    return [
        f"apparmor_parser -Q -K {f}",
        f"apparmor_parser -r -C {f}",
        f"apparmor_parser -r {f}",
        f"apparmor_parser -R {f}",
    ]


def render(
    aset: AccessSet, name: str | None = None, filename: str | None = None
) -> str:
    aset = fold_merged_usr(aset)
    pl = plan(aset)
    check_, complain, enforce, remove = instructions(filename)
    out = [
        "# AppArmor profile(s) generated by lsmtrace policy generate --target apparmor",
        "# from: " + comment_text(", ".join(aset.sources)),
        f"# Check:   {comment_text(check_)}",
        f"# Load in complain mode first: {comment_text(complain)}",
        "# run the workload, record it again and `lsmtrace policy check` it; then",
        f"# enforce: {comment_text(enforce)}",
        f"# Remove:  {comment_text(remove)}",
    ]
    body: list[str] = []
    notes: set[str] = set()
    folded: dict[str, int] = {}
    single = name if name and len(pl.top) == 1 else None
    for key in sorted(pl.top, key=lambda k: pl.names[k]):
        prog = aset.programs[key]
        pname = single or pl.names[key]
        body.append("")
        if not prog.exe:
            body.append(f"# {comment_text(key)}: no exec seen, so no attachment path;")
            body.append("# attach it yourself or use it as a child profile.")
        elif key in aset.roots and prog.exact_exe:
            body.append(
                f"# Attached to {comment_text(prog.exact_exe)}, the file "
                f"{comment_text(key)} resolves to"
            )
            body.append(
                "# (AppArmor attaches by that path): every run of it is confined."
            )
        elif key not in aset.roots:
            body.append(f"# Entered only through `Px -> {pname}`; to confine every run")
            body.append(f"# of {comment_text(prog.exe)}, attach it to that path.")
        body += _profile_text(
            aset, pl, key, key, "", pname, _attachment(prog, aset), notes, folded
        )
        for child in sorted(pl.children.get(key, set())):
            body.append("")
            body += _profile_text(
                aset,
                pl,
                child,
                f"{key}//{child}",
                "  ",
                pl.names[child],
                "",
                notes,
                folded,
            )
            body.append("  }")
        body.append("}")
    if any(ch.mode not in ("self",) for ch in pl.modes.values()):
        out += [
            "# Exec transitions (each exec rule says why): ix = runs under the",
            "# caller's profile (it needs nothing more); Cx = a child process with a",
            "# child profile of its own inside the caller's; Px = takes over the",
            "# caller's process (a wrapper, shim or script's exec): its own profile.",
        ]
    if folded:
        out.append(
            "# Not listed, granted by the includes: "
            + ", ".join(
                f"{n} access(es) by abstractions/{inc}"
                for inc, n in sorted(folded.items())
            )
        )
    if notes:
        out.append("# Generalisations applied (deterministic):")
        out += [f"#   {n}" for n in sorted(notes)]
    attached = [
        p
        for p in pl.top
        if p in aset.roots and aset.programs[p].exe and not aset.programs[p].exact_exe
    ]
    if attached:
        out.append("# Attachments are the paths the programs were started by; AppArmor")
        out.append(
            "# matches the resolved path (if one is a symlink, attach to its target)."
        )
    out += comment_block(
        "No rule (the name could not be placed)", aset.unplaced_lines()
    )
    out += comment_block("Inferred (deduced, not seen)", aset.inferred_lines())
    out += comment_block(
        "Capabilities seen but not granted (no enforced check)", aset.quiet_cap_lines()
    )
    out.append("")
    out.append("include <tunables/global>")
    return "\n".join(out + body) + "\n"


# -- parsing back and evaluating ------------------------------------------------


class AppArmorParseError(LsmtraceError):
    pass


@dataclass
class ParsedRule:
    text: str
    kind: str  # file | capability | network | signal | ptrace
    regex: re.Pattern[str] | None = None
    perms: str = ""
    args: tuple[str, ...] = ()
    target: str | None = None  # an exec rule's `-> NAME`


@dataclass
class ParsedProfile:
    name: str
    attach: re.Pattern[str] | None
    rules: list[ParsedRule] = field(default_factory=list)
    includes: list[abstr.Abstraction] = field(default_factory=list)
    program: str | None = None  # the PROGRAM_MARK
    inherits: set[str] = field(default_factory=set)


RULE_RE = re.compile(
    r'^(?:(owner)\s+)?("(?:[^"\\]|\\.)*"|[/@]\S*)\s+([a-zA-Z]+)'
    r"(?:\s*->\s*([^\s,]+))?\s*,$"
)
PROFILE_RE = re.compile(
    r'^profile\s+(\S+)(?:\s+("(?:[^"\\]|\\.)*"|/\S*))?\s*(?:flags=\([^)]*\)\s*)?\{$'
)
INCLUDE_RE = re.compile(r"^#?include\s+(?:if\s+exists\s+)?<abstractions/([^>]+)>$")


def glob_to_regex(pat: str) -> str:
    """AppArmor path pattern (quotes removed) -> Python regex source."""
    try:
        return abstr.glob_to_regex(pat)
    except abstr.UnknownVariable as e:
        raise AppArmorParseError(str(e)) from e


def parse(text: str, path: str = "policy") -> list[ParsedProfile]:
    profiles: list[ParsedProfile] = []
    stack: list[ParsedProfile] = []
    mark: str | None = None
    inherits: set[str] = set()
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if line.startswith(PROGRAM_MARK.strip()):
            mark = unescape_literal(line[len(PROGRAM_MARK) :])
            inherits = set()
            continue
        if line.startswith(INHERIT_MARK.strip()):
            inherits.add(unescape_literal(line[len(INHERIT_MARK) :]))
            continue
        inc = INCLUDE_RE.match(line)
        if inc and stack:
            ab = abstr.load(inc.group(1))
            if ab is not None:
                stack[-1].includes.append(ab)
            continue
        if not line or line.startswith("#"):
            continue
        try:
            m = PROFILE_RE.match(line)
            if m:
                attach = m.group(2)
                rx = None
                if attach:
                    rx = re.compile(glob_to_regex(attach.strip('"')) + r"\Z")
                prefix = stack[-1].name + "//" if stack else ""
                cur = ParsedProfile(
                    prefix + m.group(1), rx, program=mark, inherits=inherits
                )
                mark, inherits = None, set()
                stack.append(cur)
                continue
            if not stack:
                if line.startswith(("abi ", "include ")):
                    continue
                raise AppArmorParseError(
                    f"{path}: line {n}: not understood: {line[:80]!r}"
                )
            cur = stack[-1]
            if line == "}":
                profiles.append(stack.pop())
                continue
            words = line.rstrip(",").split()
            if words[0] in ("capability", "network", "signal", "ptrace"):
                cur.rules.append(ParsedRule(line, words[0], args=tuple(words[1:])))
                continue
            m = RULE_RE.match(line)
            if not m:
                raise AppArmorParseError(
                    f"{path}: line {n}: rule not understood: {line[:80]!r}",
                    hint="check evaluates the rule forms lsmtrace "
                    "generates (file, capability, network, signal, ptrace)",
                )
            pat = m.group(2).strip('"') if m.group(2).startswith('"') else m.group(2)
            cur.rules.append(
                ParsedRule(
                    line,
                    "file",
                    re.compile(glob_to_regex(pat) + r"\Z"),
                    perms=m.group(3),
                    target=m.group(4),
                )
            )
        except (ValueError, re.error) as e:
            raise AppArmorParseError(f"{path}: line {n}: {e}") from e
    if stack:
        raise AppArmorParseError(
            f"{path}: profile {stack[-1].name} has no closing brace"
        )
    if not profiles:
        raise AppArmorParseError(
            f"{path}: no profile found", hint="is it an AppArmor profile?"
        )
    return profiles


def _parse_body(body: Body) -> ParsedProfile:
    text = "profile x {\n" + "".join(
        f"  #include <abstractions/{i}>\n" for i in body.includes
    )
    text += "\n".join(body.lines) + "\n}\n"
    return parse(text)[0]


def _contexts(profiles: Iterable[ParsedProfile], prog: Program) -> list[ParsedProfile]:
    """The profiles `prog` runs under: its own (the program marker, else its
    attachment or its default name) and those it inherits (ix)."""
    profiles = list(profiles)
    out = [p for p in profiles if p.program == prog.name or prog.name in p.inherits]
    if out:
        return out
    for p in profiles:
        if prog.exe and p.attach is not None and p.attach.match(byte_str(prog.exe)):
            return [p]
    return [p for p in profiles if p.name.rsplit("//", 1)[-1] == profile_name(prog)][:1]


def check(profiles: list[ParsedProfile], aset: AccessSet) -> CheckResult:
    aset = fold_merged_usr(aset)
    res = CheckResult()
    used: set[int] = set()
    dirs = aset.directories()
    exact = exact_paths(aset)
    for a in aset.flat():
        prog = aset.programs[a.program]
        ctxs = _contexts(profiles, prog)
        ok = bool(ctxs)
        # an exec is matched on the executable's resolved path, as generated
        what = exact.get(a.what, a.what) if a.access == "exec" else a.what
        for prof in ctxs:
            allowed, hit = allows(prof, a.kind, what, a.access, a.what in dirs)
            used.update(hit)
            ok = ok and allowed
        (res.allowed if ok else res.denied).append(a)
    for p in profiles:
        for r in p.rules:
            if id(r) not in used:
                res.unused.append(f"{p.name}: {r.text}")
    return res


def allows(
    prof: ParsedProfile, kind: str, what: str, access: str, is_dir: bool = False
) -> tuple[bool, set[int]]:
    """Whether the profile allows one access of the flat view (model.Access:
    kind, what, access), its includes evaluated; and the ids of the rules
    that allow it (for UNUSED)."""
    hit: set[int] = set()
    if kind == "file":
        as_dir = access in DIR_ACCESSES or (access == "read" and is_dir)
        path = byte_str(
            kernel_view(what) + ("/" if as_dir and not what.endswith("/") else "")
        )
        need = set(PERMS.get(access, ""))
        have: set[str] = set()
        for r in prof.rules:
            if r.kind == "file" and r.regex is not None and r.regex.match(path):
                letters = set(
                    r.perms.lower()
                    .replace("i", "")
                    .replace("p", "")
                    .replace("u", "")
                    .replace("c", "")
                )
                if "x" in letters:
                    letters.add("m")  # an exec mode implies m
                if "w" in letters:
                    letters.add("a")
                if need & letters:
                    hit.add(id(r))
                have |= letters
        if not need <= have and "x" not in need:
            have |= {
                c
                for c in need
                if any(abstr.grants_file(ab, path, {c}) for ab in prof.includes)
            }
        return need <= have, hit
    if kind == "cap":
        cap = what.removeprefix("CAP_").lower()
        for r in prof.rules:
            if r.kind == "capability" and (not r.args or cap in r.args):
                hit.add(id(r))
        return bool(hit), hit
    if kind == "net":
        parts = what.split()
        fam = FAMILIES.get(parts[1], parts[1])
        typ = SOCK_TYPES.get(parts[2] if len(parts) > 2 else "", "")
        for r in prof.rules:
            if r.kind == "network" and (
                not r.args
                or (
                    r.args[0] == fam
                    and (len(r.args) == 1 or not typ or r.args[1] == typ)
                )
            ):
                hit.add(id(r))
        granted = any((fam, typ) in ab.network for ab in prof.includes)
        return bool(hit) or granted, hit
    if kind == "signal":
        sig, who = [*what.split(), "other"][:2]
        sig = "exists" if sig == "EXISTS" else sig.removeprefix("SIG").lower()
        selfr = {r for ab in prof.includes for r in ab.self_rules}
        if (who == "self" and "signal self" in selfr) or (
            sig == "exists" and "signal exists" in selfr
        ):
            return True, hit
        for r in prof.rules:
            if r.kind == "signal" and (
                "set=" not in r.text or re.search(rf"[( ]{re.escape(sig)}[ )]", r.text)
            ):
                hit.add(id(r))
        return bool(hit), hit
    if kind == "ptrace":
        selfr = {r for ab in prof.includes for r in ab.self_rules}
        if access == "read" and what == "self" and "ptrace read self" in selfr:
            return True, hit
        for r in prof.rules:
            if r.kind == "ptrace" and (access in r.text or "(" not in r.text):
                hit.add(id(r))
        return bool(hit), hit
    return True, hit


# -- exec transitions (the live audit mode follows them) -------------------------


def attached(
    profiles: Iterable[ParsedProfile], names: Iterable[str]
) -> ParsedProfile | None:
    """The top-level profile whose attachment matches one of `names` (an
    executable's names, its resolved path first), or None: unconfined."""
    tops = [p for p in profiles if p.attach is not None and "//" not in p.name]
    for name in names:
        path = byte_str(name)
        for p in tops:
            if p.attach is not None and p.attach.match(path):
                return p
    return None


UNCONFINED = ""  # exec_transition's answer for `ux`


def exec_transition(
    profiles: list[ParsedProfile], prof: ParsedProfile, names: Iterable[str]
) -> ParsedProfile | str | None:
    """The profile a process confined by `prof` runs under after exec'ing the
    file `names` names (resolved path first): itself (`ix`), its child
    profile (`Cx -> NAME`), the named or attached top-level profile (`Px`),
    UNCONFINED (`ux`), or None when no exec rule of `prof` lets it run
    (AppArmor denies the exec), or the rule names a profile that is not in
    the file."""
    by_name = {p.name: p for p in profiles}
    names = list(names)
    for name in names:
        path = byte_str(kernel_view(name))
        for r in prof.rules:
            if r.kind != "file" or r.regex is None or "x" not in r.perms.lower():
                continue
            if not r.regex.match(path):
                continue
            mode = re.search(r"([iIpPcCuU])[iIpPcCuU]*x", r.perms)
            letter = mode.group(1).lower() if mode else "i"
            if letter == "i":
                return prof
            if letter == "u":
                return UNCONFINED
            if letter == "c":
                child = f"{prof.name}//{r.target or name}"
                return by_name.get(child)
            if r.target:
                return by_name.get(r.target)
            return attached(profiles, names)
    return None


__all__ = [
    "allows",
    "attached",
    "check",
    "escape_literal",
    "exec_transition",
    "net_text",
    "parse",
    "plan",
    "render",
]
