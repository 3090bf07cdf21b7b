"""AppArmor profiles from an access set, and their evaluation. Pure.

One profile per program that exec'd (attachment: its path); programs known
only by comm get an unattached profile. Generalisation is deterministic and
each kind is explained in the profile's header comment (aa-logprof style):

  - shared libraries under /lib, /usr/lib (32/64) -> `/{,usr/}lib{,32,64}/**.so* mr,`
    (the rule of abstractions/base)
  - /proc/<own pid>/... and /proc/self/... -> `owner @{PROC}/@{pid}/...`;
    /proc/<other pid>/... -> `@{PROC}/@{pids}/...`
  - a random temp name (/tmp/prefix-XXXXXX...) -> `/tmp/prefix-*...`

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
from lsmtrace.policy.landlock import CheckResult
from lsmtrace.policy.model import (
    AccessSet,
    Program,
    byte_str,
    is_shared_lib,
    proc_pid_rest,
    temp_glob,
)

SPECIAL = b'*?[]{}^"\\'
LIB_GLOB = "/{,usr/}lib{,32,64}/**.so*"
PERMS = {
    "read": "r", "readdir": "r", "write": "w", "append": "a", "create": "w",
    "truncate": "w", "exec": "x", "mmap_exec": "m", "unlink": "w", "rmdir": "w",
    "mkdir": "w", "rename_src": "rw", "rename_dst": "w", "link": "l",
    "symlink": "w", "mknod": "w", "chmod": "w", "chown": "w",
}  # fmt: skip
DIR_ACCESSES = frozenset({"readdir", "mkdir", "rmdir"})
PERM_ORDER = "mrwalx"


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


def comment_text(s: str) -> str:
    """Safe inside a `#` comment: one line, ASCII."""
    return escape_literal(s)


def profile_name(prog: Program) -> str:
    base = prog.exe.rsplit("/", 1)[-1] if prog.exe else prog.name.removeprefix("comm:")
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", base.encode("utf-8", "surrogateescape")
                  .decode("ascii", "replace"))  # fmt: skip
    return ("lsmtrace-comm-" if not prog.exe else "lsmtrace-") + (safe or "_")


@dataclass
class Rule:
    pattern: str  # rendered (quoted/escaped) path pattern
    perms: set[str] = field(default_factory=set)
    owner: bool = False
    why: set[str] = field(default_factory=set)


def path_pattern(prog: Program, path: str, is_dir: bool) -> tuple[str, bool, str | None]:
    """(quoted pattern, owner, generalisation note)."""
    tail = "/" if is_dir and not path.endswith("/") else ""
    pr = proc_pid_rest(path)
    if pr is not None and pr[0] not in ("thread-self",):
        own = path in prog.own_proc or pr[0] == "self"
        var = "@{pid}" if own else "@{pids}"
        note = "/proc/<own pid> -> @{PROC}/@{pid}" if own else "/proc/<pid> -> @{pids}"
        return f'"@{{PROC}}/{var}{escape_literal(pr[1] + tail)}"', own, note
    tg = temp_glob(path)
    if tg is not None:
        return (f'"{escape_literal(tg[0])}*{escape_literal(tg[1] + tail)}"', False,
                "random temp name -> *")  # fmt: skip
    return f'"{escape_literal(path + tail)}"', False, None


def _perm_string(perms: set[str], exec_mode: str) -> str:
    letters = set("".join(perms))
    if "w" in letters:
        letters.discard("a")  # 'a' and 'w' exclude each other; w covers append
    out = "".join(c for c in PERM_ORDER if c in letters and c != "x")
    if "x" in letters:
        out += exec_mode
    return out


def render_profile(prog: Program, attached: set[str],
                   dirs: frozenset[str] = frozenset()) -> tuple[list[str], set[str]]:  # fmt: skip
    rules: dict[tuple[str, bool], Rule] = {}
    notes: set[str] = set()
    lib_perms: set[str] = set()
    for path in sorted(prog.files):
        accs = prog.files[path]
        if is_shared_lib(path) and accs <= {"read", "mmap_exec"}:
            lib_perms.update(PERMS[a] for a in accs)
            notes.add("shared libraries -> " + LIB_GLOB)
            continue
        for is_dir in (False, True):
            sub = {a for a in accs if (a in DIR_ACCESSES or (
                a == "read" and path in dirs)) == is_dir}  # fmt: skip
            if not sub:
                continue
            pat, owner, note = path_pattern(prog, path, is_dir)
            if note:
                notes.add(note)
            r = rules.setdefault((pat, owner), Rule(pat, owner=owner))
            r.perms.update(PERMS[a] for a in sub)
            r.why.add(path)
    lines = []
    for cap in sorted(prog.caps):
        lines.append(f"  capability {cap.removeprefix('CAP_').lower()},")
    nets = set()
    for n in prog.network:
        fam = {"AF_INET": "inet", "AF_INET6": "inet6", "AF_UNIX": "unix",
               "AF_NETLINK": "netlink", "AF_PACKET": "packet"}.get(n.family)  # fmt: skip
        typ = {"SOCK_STREAM": "stream", "SOCK_DGRAM": "dgram", "SOCK_RAW": "raw",
               "SOCK_SEQPACKET": "seqpacket"}.get(n.type, "")  # fmt: skip
        if fam:
            nets.add(f"  network {fam} {typ},".replace(" ,", ","))
    lines += sorted(nets)
    sigs = sorted({s.removeprefix("SIG").lower() for s, _who in prog.signals
                   if s.startswith("SIG") and s[3:].isalpha()})  # fmt: skip
    if sigs:
        lines.append(f"  signal (send) set=({' '.join(sigs)}),")
    if any(s == "EXISTS" for s, _ in prog.signals):
        lines.append("  signal (send) set=(exists),")
    for mode, _who in sorted(prog.ptrace):
        lines.append(f"  ptrace ({mode}),")
    if lib_perms:
        lines.append(f"  {LIB_GLOB} {_perm_string(lib_perms, 'ix')},")
    for (_pat, _owner), r in sorted(rules.items()):
        exec_mode = "Px" if r.why & attached - {prog.exe or ""} else "ix"
        prefix = "owner " if r.owner else ""
        lines.append(f"  {prefix}{r.pattern} {_perm_string(r.perms, exec_mode)},")
    return lines, notes


def render(aset: AccessSet, name: str | None = None) -> str:
    attached = {p.exe for p in aset.programs.values() if p.exe}
    out = [
        "# AppArmor profile(s) generated by lsmtrace policy generate --target apparmor",
        "# from: " + comment_text(", ".join(aset.sources)),
        "# Review before enforcing: load in complain mode first (aa-complain), then",
        "# `lsmtrace policy check --policy THIS new-recording.jsonl`.",
    ]
    body: list[str] = []
    all_notes: set[str] = set()
    for key in sorted(aset.programs):
        prog = aset.programs[key]
        lines, notes = render_profile(prog, attached, frozenset(aset.directories()))
        all_notes |= notes
        pname = name if name and len(aset.programs) == 1 else profile_name(prog)
        attach = f' "{escape_literal(prog.exe)}"' if prog.exe else ""
        body.append("")
        if not prog.exe:
            body.append(f"# {comment_text(key)}: no exec seen, so no attachment path;")
            body.append("# attach it yourself or use it as a child profile.")
        body.append(f"profile {pname}{attach} {{")
        body.append("  #include <abstractions/base>")
        body += lines
        body.append("}")
    if all_notes:
        out.append("# Generalisations applied (deterministic):")
        out += [f"#   {n}" for n in sorted(all_notes)]
    if aset.unresolved:
        out.append(f"# {len(aset.unresolved)} relative path(s) could not be resolved "
                   "(no cwd in the recording) and have no rule.")  # fmt: skip
    out.append("")
    out.append("#include <tunables/global>")
    return "\n".join(out + body) + "\n"


# -- parsing back and evaluating ------------------------------------------------

VARIABLES = {
    "PROC": ["/proc/"],
    "pid": ["[0-9]+"],
    "pids": ["[0-9]+"],
    "tid": ["[0-9]+"],
    "HOME": ["/root/", "/home/[^/]+/"],
    "multiarch": ["[^/]+"],
}


class AppArmorParseError(LsmtraceError):
    pass


@dataclass
class ParsedRule:
    text: str
    kind: str  # file | capability | network | signal | ptrace
    regex: re.Pattern[str] | None = None
    perms: str = ""
    args: tuple[str, ...] = ()


@dataclass
class ParsedProfile:
    name: str
    attach: re.Pattern[str] | None
    rules: list[ParsedRule] = field(default_factory=list)


def _glob_to_regex(pat: str) -> str:
    """AppArmor path pattern (quotes removed) -> Python regex source."""
    out: list[str] = []
    i = 0
    depth = 0
    while i < len(pat):
        c = pat[i]
        if c == "\\" and i + 1 < len(pat):
            nxt = pat[i + 1]
            if nxt in "0123" and re.match(r"[0-7]{3}", pat[i + 1:i + 4]):
                out.append(re.escape(chr(int(pat[i + 1:i + 4], 8))))
                i += 4
                continue
            out.append(re.escape(nxt))
            i += 2
            continue
        if c == "@" and pat.startswith("@{", i):
            end = pat.index("}", i)
            var = pat[i + 2:end]
            vals = VARIABLES.get(var)
            if vals is None:
                raise AppArmorParseError(f"unknown variable @{{{var}}}")
            out.append("(?:" + "|".join(vals) + ")")
            i = end + 1
            continue
        if pat.startswith("**", i):
            out.append(".*")
            i += 2
        elif c == "*":
            out.append("[^/]*")
            i += 1
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "{":
            out.append("(?:")
            depth += 1
            i += 1
        elif c == "}" and depth:
            out.append(")")
            depth -= 1
            i += 1
        elif c == "," and depth:
            out.append("|")
            i += 1
        elif c == "[":
            end = pat.index("]", i + 1)
            body = pat[i + 1:end]
            out.append("[" + ("^" + body[1:] if body.startswith("^") else body) + "]")
            i = end + 1
        else:
            out.append(re.escape(c))
            i += 1
    # a run of "/" matches one or more (AppArmor collapses slashes)
    return "".join(out).replace("//", "/")


RULE_RE = re.compile(r'^(?:(owner)\s+)?("(?:[^"\\]|\\.)*"|[/@]\S*)\s+([a-zA-Z]+)\s*,$')
PROFILE_RE = re.compile(r'^profile\s+(\S+)(?:\s+("(?:[^"\\]|\\.)*"|/\S*))?\s*(?:flags=\([^)]*\)\s*)?\{$')


def parse(text: str, path: str = "policy") -> list[ParsedProfile]:
    profiles: list[ParsedProfile] = []
    cur: ParsedProfile | None = None
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            if cur is None:
                m = PROFILE_RE.match(line)
                if m:
                    attach = m.group(2)
                    rx = None
                    if attach:
                        rx = re.compile(_glob_to_regex(attach.strip('"')) + r"\Z")
                    cur = ParsedProfile(m.group(1), rx)
                    continue
                if line.startswith(("abi ", "include ")):
                    continue
                raise AppArmorParseError(f"{path}: line {n}: not understood: {line[:80]!r}")
            if line == "}":
                profiles.append(cur)
                cur = None
                continue
            words = line.rstrip(",").split()
            if words[0] in ("capability", "network", "signal", "ptrace"):
                cur.rules.append(ParsedRule(line, words[0], args=tuple(words[1:])))
                continue
            m = RULE_RE.match(line)
            if not m:
                raise AppArmorParseError(f"{path}: line {n}: rule not understood: {line[:80]!r}",
                                         hint="check evaluates the rule forms lsmtrace "
                                         "generates (file, capability, network, signal, ptrace)")  # fmt: skip
            pat = m.group(2).strip('"') if m.group(2).startswith('"') else m.group(2)
            cur.rules.append(ParsedRule(line, "file", re.compile(_glob_to_regex(pat) + r"\Z"),
                                        perms=m.group(3)))  # fmt: skip
        except (ValueError, re.error) as e:
            raise AppArmorParseError(f"{path}: line {n}: {e}") from e
    if cur is not None:
        raise AppArmorParseError(f"{path}: profile {cur.name} has no closing brace")
    if not profiles:
        raise AppArmorParseError(f"{path}: no profile found",
                                 hint="is it an AppArmor profile?")  # fmt: skip
    return profiles


def _profile_for(profiles: Iterable[ParsedProfile], prog: Program) -> ParsedProfile | None:
    for p in profiles:
        if prog.exe and p.attach is not None and p.attach.match(byte_str(prog.exe)):
            return p
    for p in profiles:
        if p.name == profile_name(prog):
            return p
    return None


def _needed(access: str) -> str:
    letters = PERMS.get(access, "")
    return letters


def check(profiles: list[ParsedProfile], aset: AccessSet) -> CheckResult:
    res = CheckResult()
    used: set[int] = set()
    dirs = aset.directories()
    for a in aset.flat():
        prog = aset.programs[a.program]
        prof = _profile_for(profiles, prog)
        ok = False
        if prof is not None:
            ok, hit = _allows(prof, a.kind, a.what, a.access, a.what in dirs)
            used.update(hit)
        (res.allowed if ok else res.denied).append(a)
    for p in profiles:
        for r in p.rules:
            if id(r) not in used:
                res.unused.append(f"{p.name}: {r.text}")
    return res


def _allows(prof: ParsedProfile, kind: str, what: str, access: str,
            is_dir: bool = False) -> tuple[bool, set[int]]:  # fmt: skip
    hit: set[int] = set()
    if kind == "file":
        as_dir = access in DIR_ACCESSES or (access == "read" and is_dir)
        path = byte_str(what + ("/" if as_dir and not what.endswith("/") else ""))
        need = set(_needed(access))
        have: set[str] = set()
        for r in prof.rules:
            if r.kind == "file" and r.regex is not None and r.regex.match(path):
                letters = set(r.perms.lower().replace("i", "").replace("p", "")
                              .replace("u", "").replace("c", ""))  # fmt: skip
                if "w" in letters:
                    letters.add("a")
                if need & letters:
                    hit.add(id(r))
                have |= letters
        return need <= have, hit
    if kind == "cap":
        cap = what.removeprefix("CAP_").lower()
        for r in prof.rules:
            if r.kind == "capability" and (not r.args or cap in r.args):
                hit.add(id(r))
        return bool(hit), hit
    if kind == "net":
        parts = what.split()
        fam = {"AF_INET": "inet", "AF_INET6": "inet6", "AF_UNIX": "unix",
               "AF_NETLINK": "netlink", "AF_PACKET": "packet"}.get(parts[1], parts[1])  # fmt: skip
        typ = {"SOCK_STREAM": "stream", "SOCK_DGRAM": "dgram", "SOCK_RAW": "raw",
               "SOCK_SEQPACKET": "seqpacket"}.get(parts[2] if len(parts) > 2 else "", "")  # fmt: skip
        for r in prof.rules:
            if r.kind == "network" and (not r.args or (r.args[0] == fam and (
                    len(r.args) == 1 or not typ or r.args[1] == typ))):  # fmt: skip
                hit.add(id(r))
        return bool(hit), hit
    if kind == "signal":
        sig = what.split()[0]
        sig = "exists" if sig == "EXISTS" else sig.removeprefix("SIG").lower()
        for r in prof.rules:
            if r.kind == "signal" and ("set=" not in r.text or re.search(
                    rf"[( ]{re.escape(sig)}[ )]", r.text)):  # fmt: skip
                hit.add(id(r))
        return bool(hit), hit
    if kind == "ptrace":
        for r in prof.rules:
            if r.kind == "ptrace" and (access in r.text or "(" not in r.text):
                hit.add(id(r))
        return bool(hit), hit
    return True, hit
