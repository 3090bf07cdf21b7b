"""TOMOYO domain policy from an access set, and its evaluation. Pure.

TOMOYO names a domain by its exec chain (`<kernel> /bin/sh /usr/bin/true`:
the shell ran true), so the domains follow the chains the recording shows: the
recorded command gets its own domain wherever it is started from
(`initialize_domain EXE from any` in the exception policy), and each program
it runs, directly or through a wrapper, the domain TOMOYO transitions to
(`<kernel> ROOT PROGRAM`), holding that program's ACLs. A program run outside
the recorded chain keeps whatever domain it had: nothing else on the system is
confined. Programs known only by comm get a `# comm:NAME` comment and no domain.
The policy comes in three parts, all in the one file: the domain policy
proper, and in the header comment the exception policy and profile PROFILE,
which enforces exactly the operations this generator expresses and leaves the
rest (getattr, ioctl, chmod, environment...) disabled. `sections()` splits
them for loading; the header says how, with tomoyo-loadpolicy.

Merged /usr: TOMOYO names an executed program by its path with the directories
resolved, /usr/bin/true for `/bin/true` on Debian; `aggregator /usr/bin/true
/bin/true` makes the recorded name the one TOMOYO uses, and a file read under
/bin, /sbin or /lib* gets its /usr name too.

Names are TOMOYO's, not the VFS path: files on pseudo filesystems without a
rename operation are `fstype:/path` (`proc:/self/status`; TOMOYO writes
`self` for the caller's own pid), the others the absolute path (LOCAL_NAMES).

Encoding (TOMOYO's rules): bytes 0x21-0x7e are themselves except `\\` (`\\\\`);
every other byte, space included, is `\\ooo` octal. TOMOYO's wildcards are all
backslash sequences (`\\*`, `\\$`...), so a hostile `*` in a name stays a
literal. Generalisation: `/proc/<pid>/` -> `/proc/\\$/`, random temp names ->
`prefix\\*` (a name random throughout: `\\?` per character), atomic-write
temporaries -> `f.\\*`. Checked by tomoyo-checkpolicy (tomoyo-tools) in the
tests.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from lsmtrace.errors import LsmtraceError
from lsmtrace.policy.generalise import (
    atomic_temps,
    fold_merged_usr,
    merged_usr,
    pattern,
    proc_pid_rest,
    volatile,
)
from lsmtrace.policy.landlock import CheckResult
from lsmtrace.policy.model import (
    Access,
    AccessSet,
    NetAccess,
    Program,
    byte_str,
    comment_block,
    net_text,
    shell_word,
)

# model access -> TOMOYO file operation (None: not expressible, commented)
OPS: dict[str, str | None] = {
    "read": "read",
    "readdir": "read",
    "write": "write",
    "append": "append",
    "create": "create",
    "truncate": "truncate",
    "exec": "execute",
    "mmap_exec": None,
    "unlink": "unlink",
    "rmdir": "rmdir",
    "mkdir": "mkdir",
    "rename_src": None,
    "rename_dst": None,
    "link": None,
    "symlink": "symlink",
    "mknod": "mkfifo",
    "chmod": None,
    "chown": None,
}
# The recording has no mode: a create ACL allows any (TOMOYO matches the mode
# after umask, so a guessed 0600 would deny the workload's own 0644 files).
MODE_OPS = {"create": " 0-07777", "mkdir": " 0-07777", "mkfifo": " 0-07777"}
DIR_OPS = frozenset({"mkdir", "rmdir"})
# Pseudo filesystems whose root has no rename operation: TOMOYO names their
# files `fstype:/path` relative to the filesystem (tomoyo_get_local_path), so
# this maps the usual mount points. Anything else keeps its absolute path.
LOCAL_NAMES: tuple[tuple[str, str], ...] = (
    ("/proc/", "proc:/"),
    ("/dev/pts/", "devpts:/"),
    ("/dev/mqueue/", "mqueue:/"),
    ("/sys/kernel/security/", "securityfs:/"),
    ("/sys/kernel/debug/", "debugfs:/"),
    ("/sys/kernel/tracing/", "tracefs:/"),
)
# The profile the generated domains use, and the CONFIG:: names of the
# operations in OPS (the kernel's tomoyo_mac_keywords).
PROFILE = 7
ENFORCED = (
    "open",
    "create",
    "unlink",
    "mkdir",
    "rmdir",
    "mkfifo",
    "truncate",
    "symlink",
    "execute",
    "inet_stream_bind",
    "inet_stream_connect",
    "inet_dgram_bind",
    "inet_dgram_send",
)


def encode(s: str) -> str:
    out = []
    for b in s.encode("utf-8", "surrogateescape"):
        if b == 0x5C:
            out.append("\\\\")
        elif 0x20 < b < 0x7F:
            out.append(chr(b))
        else:
            out.append(f"\\{b:03o}")
    return "".join(out)


def tomoyo_name(path: str) -> str:
    """The name TOMOYO gives `path` (unencoded), per LOCAL_NAMES."""
    for prefix, local in LOCAL_NAMES:
        if path.startswith(prefix) or path == prefix[:-1]:
            return local + path[len(prefix) :]
    return path


def is_dir_access(op: str, access: str, path: str, dirs: set[str]) -> bool:
    """A directory's name ends with / in TOMOYO: mkdir/rmdir, a readdir (an
    O_DIRECTORY open), a read of a path that has recorded paths below it."""
    return op in DIR_OPS or access == "readdir" or (access == "read" and path in dirs)


def kernel_name(prog: Program, path: str, is_dir: bool) -> str:
    """The name TOMOYO computes when `prog` accesses `path` (unencoded): a
    trailing / for a directory, its own /proc/<pid> as self, LOCAL_NAMES."""
    name = path + ("/" if is_dir and not path.endswith("/") else "")
    pr = proc_pid_rest(name)
    if pr is not None and (path in prog.own_proc or pr[0] == "self"):
        name = "/proc/self" + pr[1]
    return tomoyo_name(name)


def path_word(
    prog: Program, path: str, is_dir: bool, atomic: dict[str, str] | None = None
) -> str:
    """The encoded, generalised name of `path` in `prog`'s ACLs."""
    tail = "/" if is_dir and not path.endswith("/") else ""
    pr = proc_pid_rest(path)
    if (
        pr is not None
        and pr[0] not in ("self", "thread-self")
        and path not in prog.own_proc
    ):
        return "proc:/\\$" + encode(pr[1] + tail)  # another process's pid
    tp = pattern(
        path + tail, "\\*", encode, lambda n: "\\?" * n, volatile=volatile(prog, path)
    )
    if tp is not None:
        return tp
    if atomic and path in atomic:
        return encode(atomic[path]) + "\\*"
    return encode(kernel_name(prog, path, is_dir))


def net_acl(n: NetAccess) -> tuple[str, str] | None:
    """(socket type, operation) of the `network inet` ACL `n` needs, or None
    when TOMOYO does not check it (or the recording lacks the port)."""
    typ = {"SOCK_STREAM": "stream", "SOCK_DGRAM": "dgram"}.get(n.type)
    if typ is None or n.family not in ("AF_INET", "AF_INET6") or n.port is None:
        return None
    # a datagram socket's connect is checked as send (TOMOYO has no dgram
    # connect); a stream socket's send is not checked
    op = "send" if typ == "dgram" and n.op == "connect" else n.op
    checked = {"stream": ("connect", "bind"), "dgram": ("send", "bind")}[typ]
    return (typ, op) if op in checked else None


def profile_lines() -> list[str]:
    """Profile PROFILE: ENFORCED enforcing, everything else disabled."""
    n = PROFILE
    out = [
        f"{n}-COMMENT=-----lsmtrace: generated domains (enforcing)-----",
        f"{n}-PREFERENCE={{ max_audit_log=1024 max_learning_entry=2048 }}",
        f"{n}-CONFIG={{ mode=disabled grant_log=no reject_log=yes }}",
    ]
    for op in ENFORCED:
        cat = "network" if op.startswith("inet_") else "file"
        out.append(
            f"{n}-CONFIG::{cat}::{op}={{ mode=enforcing grant_log=no reject_log=yes }}"
        )
    return out


EXCEPTION_RE = re.compile(r"#   ((?:initialize_domain|aggregator) .*)$")
PROFILE_LINE_RE = re.compile(r"#   (\d+-.*)$")
# the load instructions written into the file (and run by the tests, with
# tomoyo-loadpolicy swapped for a syntax check)
LOAD = (
    "sed -n 's/^#   \\(initialize_domain .*\\|aggregator .*\\)$/\\1/p' THIS_FILE"
    " | tomoyo-loadpolicy -e",
    "sed -n 's/^#   \\([0-9][0-9]*-.*\\)$/\\1/p' THIS_FILE | tomoyo-loadpolicy -p",
    "grep -v '^#' THIS_FILE | tomoyo-loadpolicy -d",
)


def sections(text: str) -> dict[str, str]:
    """The generated file's parts: 'exception', 'profile' (from the header
    comment) and 'domain' (the rest), each ready for tomoyo-loadpolicy; the
    same split as the LOAD commands."""
    out: dict[str, list[str]] = {"exception": [], "profile": [], "domain": []}
    for line in text.splitlines():
        if m := EXCEPTION_RE.match(line):
            out["exception"].append(m.group(1))
        elif m := PROFILE_LINE_RE.match(line):
            out["profile"].append(m.group(1))
        elif not line.startswith("#"):
            out["domain"].append(line)
    return {k: "\n".join(v).strip("\n") + "\n" for k, v in out.items()}


def domains(aset: AccessSet) -> list[tuple[str, ...]]:
    """The domains to write, as exec chains: a program initialized as a root
    starts its chain afresh wherever it is run (initialize_domain)."""
    out: set[tuple[str, ...]] = set()
    for chain in aset.chains:
        start = max(i for i, p in enumerate(chain) if i == 0 or p in aset.roots)
        cut = chain[start:]
        if cut[-1] in aset.programs:
            out.add(cut)
    # a program with an executable that no recorded chain reaches: its own
    ends = {c[-1] for c in out}
    out |= {(k,) for k, p in aset.programs.items() if p.exe and k not in ends}
    return sorted(out)


def acls(prog: Program, dirs: set[str]) -> tuple[list[str], list[str]]:
    """(ACL lines, comments) for a program's domain."""
    lines: set[str] = set()
    notes: set[str] = set()
    atomic = atomic_temps(prog)
    for path in sorted(prog.files):
        for acc in sorted(prog.files[path]):
            op = OPS.get(acc)
            if op is None:
                notes.add(f"# not expressed: {acc} {encode(path)}")
                continue
            is_dir = is_dir_access(op, acc, path, dirs)
            mode = MODE_OPS.get(op, "")
            lines.add(f"file {op} {path_word(prog, path, is_dir, atomic)}{mode}")
            usr = merged_usr(path)
            if usr and op != "execute":
                # the kernel's own name of the file (execute: the aggregator)
                lines.add(f"file {op} {path_word(prog, usr, is_dir, atomic)}{mode}")
    for n in prog.network:
        acl = net_acl(n)
        if acl is not None:
            rng = (
                "0.0.0.0-255.255.255.255"
                if n.family == "AF_INET"
                else "::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
            )
            lines.add(f"network inet {acl[0]} {acl[1]} {rng} {n.port}")
    for cap in sorted(prog.caps):
        notes.add(f"# capability {cap}: TOMOYO 2.x has no capability ACL")
    for interp in sorted(prog.interpreters):
        notes.add(
            f"# {encode(interp)}: the #! interpreter of this script (TOMOYO "
            "checks its read in this domain)"
        )
    return sorted(lines), sorted(notes)


def load_commands(filename: str | None = None) -> list[str]:
    """The load lines written into the file (a test runs them)."""
    return [c.replace("THIS_FILE", shell_word(filename)) for c in LOAD]


def render(
    aset: AccessSet, name: str | None = None, filename: str | None = None
) -> str:
    aset = fold_merged_usr(aset)
    chains = domains(aset)
    roots = sorted({c[0] for c in chains})
    execd = sorted({p for c in chains for p in c})
    out = [
        "# TOMOYO domain policy generated by lsmtrace policy generate --target tomoyo",
        "# from: " + encode(", ".join(aset.sources)),
        "# Load as root, in three parts, with tomoyo-loadpolicy (tomoyo-tools):",
        *[f"#   {cmd}" for cmd in load_commands(filename)],
        "# Remove: `echo 'delete <kernel> DOMAIN' | tomoyo-loadpolicy -d` for each",
        "# domain, and `delete LINE` (-e) for each exception line.",
        "# Domains follow the exec chains recorded: the recorded command's own",
        "# domain (initialize_domain), and <kernel> ROOT PROGRAM for what it ran.",
        "# exception policy (-e):",
    ]
    out += [f"#   initialize_domain {encode(r)} from any" for r in roots]
    for exe in execd:
        usr = merged_usr(exe)
        if usr:
            out.append(f"#   aggregator {encode(usr)} {encode(exe)}")
    out += [
        f"# profile (-p): profile {PROFILE} enforces the operations this policy expresses",
        "# and nothing else; write mode=permissive for a dry run (denials logged only):",
    ]
    out += ["#   " + ln for ln in profile_lines()]
    out += comment_block(
        "No rule (the name could not be placed)", aset.unplaced_lines(), "  "
    )
    out += comment_block("Inferred (deduced, not seen)", aset.inferred_lines(), "  ")
    out += comment_block(
        "Capabilities seen but not granted (no enforced check)",
        aset.quiet_cap_lines(),
        "  ",
    )
    out.append("# the rest of this file (-d) is the domain policy.")
    dirs = aset.directories()
    body: list[str] = []
    for key in sorted(k for k, p in aset.programs.items() if not p.exe):
        body += ["", f"# {encode(key)}: no exec seen, no domain"]
    for chain in chains:
        lines, notes = acls(aset.programs[chain[-1]], dirs)
        body += [
            "",
            "<kernel> " + " ".join(encode(p) for p in chain),
            f"use_profile {PROFILE}",
            "",
        ]
        body += lines + notes
    return "\n".join(out + body) + "\n"


class TomoyoParseError(LsmtraceError):
    pass


@dataclass
class Domain:
    exe: str  # the last program of the chain (decoded)
    name: str  # the whole `<kernel> ...` line
    acls: list[tuple[str, re.Pattern[str], str]] = field(default_factory=list)
    # network inet ACLs: (type, op, lowest port, highest port, line); the
    # address is not evaluated (a recording's access set has ports only)
    net: list[tuple[str, str, int, int, str]] = field(default_factory=list)


def _word_regex(word: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(word):
        c = word[i]
        if c == "\\" and i + 1 < len(word):
            nxt = word[i + 1]
            if re.match(r"[0-3][0-7]{2}", word[i + 1 : i + 4]):
                out.append(re.escape(chr(int(word[i + 1 : i + 4], 8))))
                i += 4
                continue
            out.append(
                {
                    "\\": re.escape("\\"),
                    "*": "[^/]*",
                    "$": "[0-9]+",
                    "@": "[^/]*",
                    "?": "[^/]",
                    "X": "[0-9a-fA-F]+",
                }.get(nxt, re.escape(nxt))
            )
            i += 2
            continue
        out.append(re.escape(c))
        i += 1
    return "".join(out)


def _decode(word: str) -> str:
    return re.sub(
        r"\\([0-3][0-7]{2})", lambda m: chr(int(m.group(1), 8)), word
    ).replace("\\\\", "\\")


def parse(text: str, path: str = "policy") -> list[Domain]:
    domains: list[Domain] = []
    cur: Domain | None = None
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("<kernel>"):
            exe = line.split()[-1]
            cur = Domain(_decode(exe), line)
            domains.append(cur)
            continue
        if cur is None:
            raise TomoyoParseError(f"{path}: line {n}: ACL outside a domain")
        words = line.split()
        if words[0] == "file" and len(words) >= 3:
            cur.acls.append((words[1], re.compile(_word_regex(words[2]) + r"\Z"), line))
        elif words[:2] == ["network", "inet"] and len(words) >= 6:
            m = re.fullmatch(r"(\d+)(?:-(\d+))?", words[5])
            if m is None:
                raise TomoyoParseError(
                    f"{path}: line {n}: port {words[5]!r} is not a number or range"
                )
            lo = int(m.group(1))
            for op in words[3].split("/"):  # TOMOYO allows "connect/bind"
                cur.net.append((words[2], op, lo, int(m.group(2) or lo), line))
    if not domains:
        raise TomoyoParseError(f"{path}: no <kernel> domain found")
    return domains


# a domain without ACLs: what it allows is what TOMOYO does not check
UNCHECKED = Domain("", "<kernel>")


def allows(
    dom: Domain, prog: Program, a: Access, net: NetAccess | None, dirs: set[str]
) -> tuple[bool, list[str]]:
    """Whether domain `dom` allows `prog`'s access `a` (`net`: its network
    access, for kind net), and the ACL lines that allow it. What TOMOYO 2.x
    does not check (capabilities, signals, ptrace, mmap, rename...) is
    allowed."""
    if a.kind == "net":
        acl = net_acl(net) if net is not None else None
        if acl is None or net is None or net.port is None:
            return True, []  # not checked by TOMOYO
        port = net.port
        hits = [
            t for typ, op, lo, hi, t in dom.net if (typ, op) == acl and lo <= port <= hi
        ]
        return bool(hits), hits
    op = OPS.get(a.access) if a.kind == "file" else None
    if op is None:
        return True, []
    is_dir = is_dir_access(op, a.access, a.what, dirs)
    names = [a.what]
    usr = merged_usr(a.what)
    if usr and op != "execute":
        names.append(usr)  # its name on a merged-/usr system
    paths = [byte_str(kernel_name(prog, n, is_dir)) for n in names]
    hits = [t for o, rx, t in dom.acls if o == op and any(rx.match(p) for p in paths)]
    return bool(hits), hits


def check(domains: list[Domain], aset: AccessSet) -> CheckResult:
    aset = fold_merged_usr(aset)
    res = CheckResult()
    used: set[str] = set()
    dirs = aset.directories()
    nets = {
        (name, net_text(n), n.op): n
        for name, p in aset.programs.items()
        for n in p.network
    }
    for a in aset.flat():
        prog = aset.programs[a.program]
        exe = byte_str(prog.exe) if prog.exe else None
        # every domain the program runs in must allow it (one per exec chain)
        doms = [d for d in domains if d.exe == exe]
        net = nets.get((a.program, a.what, a.access)) if a.kind == "net" else None
        if allows(UNCHECKED, prog, a, net, dirs)[0]:
            res.allowed.append(a)  # not checked by TOMOYO: allowed even with no domain
            continue
        ok = bool(doms)
        for dom in doms:
            allowed, hits = allows(dom, prog, a, net, dirs)
            used.update(hits)
            ok = ok and allowed
        (res.allowed if ok else res.denied).append(a)
    for d in domains:
        lines = [t for _o, _r, t in d.acls] + list(dict.fromkeys(x[4] for x in d.net))
        res.unused += [f"{d.name}: {t}" for t in lines if t not in used]
    return res


def exception_policy(text: str) -> tuple[set[str], dict[str, str]]:
    """The generated file's exception policy: (the programs that start a
    domain of their own wherever run: `initialize_domain X from any`, the
    aggregators: exec'd name -> the name its domain uses), decoded."""
    roots: set[str] = set()
    aggregators: dict[str, str] = {}
    for line in sections(text)["exception"].splitlines():
        words = line.split()
        if (
            len(words) == 4
            and words[0] == "initialize_domain"
            and words[2:] == ["from", "any"]
        ):
            roots.add(_decode(words[1]))
        elif len(words) == 3 and words[0] == "aggregator":
            aggregators[_decode(words[1])] = _decode(words[2])
    return roots, aggregators


def chain_of(dom: Domain) -> tuple[str, ...]:
    """The exec chain a domain is named by (`<kernel> A B` -> (A, B)), decoded."""
    return tuple(_decode(w) for w in dom.name.split()[1:])
