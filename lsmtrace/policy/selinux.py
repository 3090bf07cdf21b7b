"""SELinux type-enforcement module (.te) from an access set. Pure.

One domain type per program (`lsmtrace_<name>_t`); each file is given the
type of its label where the recording has one (the AVCs SELinux audited, see
model.AccessSet.labels), else the type of the documented path-prefix table
below (the longest prefix wins) — a path never enters the policy text except
in comments (escaped). Allow rules are grouped
per (target type, class); the require block names every type, class and
permission used, so `checkmodule -M -m` compiles the module (tests). Labelling
the executables and a domain transition are left to the administrator (the
header comment says how).
"""

from __future__ import annotations

import re

from lsmtrace.errors import LsmtraceError
from lsmtrace.policy.landlock import CheckResult
from lsmtrace.policy.model import Access, AccessSet

# path prefix -> type (reference policy names); longest prefix wins
TYPE_TABLE: tuple[tuple[str, str], ...] = (
    ("/", "root_t"), ("/etc/", "etc_t"), ("/etc/shadow", "shadow_t"),
    ("/etc/ld.so.cache", "ld_so_cache_t"), ("/bin/", "bin_t"), ("/sbin/", "bin_t"),
    ("/usr/bin/", "bin_t"), ("/usr/sbin/", "bin_t"), ("/usr/local/bin/", "bin_t"),
    ("/lib/", "lib_t"), ("/lib64/", "lib_t"), ("/usr/lib/", "lib_t"),
    ("/usr/lib64/", "lib_t"), ("/lib64/ld-linux", "ld_so_t"),
    ("/lib/x86_64-linux-gnu/ld-linux", "ld_so_t"), ("/usr/lib/locale/", "locale_t"),
    ("/usr/share/locale/", "locale_t"), ("/usr/share/", "usr_t"), ("/usr/", "usr_t"),
    ("/tmp/", "tmp_t"), ("/var/tmp/", "tmp_t"), ("/dev/shm/", "tmpfs_t"),
    ("/var/log/", "var_log_t"), ("/var/lib/", "var_lib_t"), ("/var/run/", "var_run_t"),
    ("/run/", "var_run_t"), ("/var/", "var_t"), ("/home/", "user_home_t"),
    ("/root/", "admin_home_t"), ("/proc/", "proc_t"), ("/sys/", "sysfs_t"),
    ("/dev/null", "null_device_t"), ("/dev/zero", "zero_device_t"),
    ("/dev/urandom", "urandom_device_t"), ("/dev/random", "random_device_t"),
    ("/dev/tty", "devtty_t"), ("/dev/pts/", "devpts_t"), ("/dev/", "device_t"),
    ("/srv/", "var_t"), ("/opt/", "usr_t"),
)  # fmt: skip

PERMS: dict[str, tuple[str, ...]] = {
    "read": ("open", "read", "getattr"), "readdir": ("open", "read", "getattr", "search"),
    "write": ("open", "write", "getattr"), "append": ("open", "append", "getattr"),
    "create": ("create",), "truncate": ("setattr",), "exec": ("execute", "getattr",
    "open", "read", "map"), "mmap_exec": ("map", "execute"), "unlink": ("unlink",),
    "rmdir": ("rmdir",), "mkdir": ("create",), "rename_src": ("rename",),
    "rename_dst": ("create",), "link": ("link",), "symlink": ("create",),
    "mknod": ("create",), "chmod": ("setattr",), "chown": ("setattr",),
}  # fmt: skip
# accesses that act on the parent directory too
PARENT: dict[str, tuple[str, ...]] = {
    "create": ("add_name", "write", "search"), "unlink": ("remove_name", "write", "search"),
    "rmdir": ("remove_name", "write", "search"), "mkdir": ("add_name", "write", "search"),
    "rename_src": ("remove_name", "write", "search"),
    "rename_dst": ("add_name", "write", "search"),
    "link": ("add_name", "write", "search"), "symlink": ("add_name", "write", "search"),
    "mknod": ("add_name", "write", "search"),
}  # fmt: skip
CLASS_OF = {"mkdir": "dir", "rmdir": "dir", "readdir": "dir", "symlink": "lnk_file",
            "mknod": "fifo_file"}  # fmt: skip


def path_type(path: str) -> str:
    best, typ = "", "default_t"
    for prefix, t in TYPE_TABLE:
        if (path == prefix.rstrip("/") or path.startswith(prefix)) and len(prefix) > len(best):
            best, typ = prefix, t
    return typ


def ident(s: str) -> str:
    base = s.rsplit("/", 1)[-1].removeprefix("comm:")
    out = re.sub(r"[^a-z0-9_]", "_", base.lower().encode("utf-8", "surrogateescape")
                 .decode("ascii", "replace"))  # fmt: skip
    return out.strip("_") or "prog"


def comment(s: str) -> str:
    from lsmtrace.policy.apparmor import escape_literal

    return escape_literal(s)


Key = tuple[str, str, str]  # (source domain, target type or "self", class)
# capabilities of the capability2 class
CAP2 = frozenset({"mac_override", "mac_admin", "syslog", "wake_alarm", "block_suspend",
                  "audit_read", "perfmon", "bpf", "checkpoint_restore"})  # fmt: skip
SOCKET_CLASS = {
    ("AF_INET", "SOCK_STREAM"): "tcp_socket", ("AF_INET6", "SOCK_STREAM"): "tcp_socket",
    ("AF_INET", "SOCK_DGRAM"): "udp_socket", ("AF_INET6", "SOCK_DGRAM"): "udp_socket",
    ("AF_UNIX", "SOCK_STREAM"): "unix_stream_socket",
    ("AF_UNIX", "SOCK_DGRAM"): "unix_dgram_socket",
}  # fmt: skip
SOCKET_PERMS = {"socket": {"create"}, "connect": {"create", "connect"},
                "bind": {"create", "bind"}, "listen": {"listen"}, "accept": {"accept"},
                "send": {"write"}}  # fmt: skip


def domain_type(program: str) -> str:
    return f"lsmtrace_{ident(program)}_t"


def requirements(aset: AccessSet) -> list[tuple[Access, list[tuple[Key, set[str], str]]]]:
    """Each recorded access with what it needs: (rule key, permissions, the
    path or object that explains it). One mapping for generate and check."""
    dirs = aset.directories()
    out: list[tuple[Access, list[tuple[Key, set[str], str]]]] = []
    for a in aset.flat():
        dom = domain_type(a.program)
        needs: list[tuple[Key, set[str], str]] = []
        if a.kind == "file":
            acc, path = a.access, a.what
            cls = CLASS_OF.get(acc, "dir" if acc == "read" and path in dirs else "file")
            typ = aset.labels.get(path) or path_type(path)
            needs.append(((dom, typ, cls), set(PERMS[acc]), path))
            if acc in PARENT:
                parent = path.rsplit("/", 1)[0] or "/"
                typ = aset.labels.get(parent) or path_type(parent + "/")
                needs.append(((dom, typ, "dir"), set(PARENT[acc]), parent))
        elif a.kind == "cap":
            cap = a.what.removeprefix("CAP_").lower()
            cls = "capability2" if cap in CAP2 else "capability"
            needs.append(((dom, "self", cls), {cap}, a.what))
        elif a.kind == "net":
            op, family, stype = a.what.split()[:3]
            sock = SOCKET_CLASS.get((family, stype))
            if sock:
                needs.append(((dom, "self", sock), set(SOCKET_PERMS[op]), a.what))
        elif a.kind in ("signal", "ptrace"):
            perm = "signal" if a.kind == "signal" else "ptrace"
            needs.append(((dom, "self", "process"), {perm}, a.what))
        out.append((a, needs))
    return out


def render(aset: AccessSet, name: str | None = None) -> str:
    allow: dict[Key, set[str]] = {}
    why: dict[Key, set[str]] = {}
    domains = {domain_type(key): prog for key, prog in aset.programs.items()}
    for _a, needs in requirements(aset):
        for k, perms, obj in needs:
            allow.setdefault(k, set()).update(perms)
            if k[1] != "self":
                why.setdefault(k, set()).add(obj)
    types = sorted({t for (_d, t, _c) in allow if t != "self"})
    classes: dict[str, set[str]] = {}
    for (_d, _t, c), perms in allow.items():
        classes.setdefault(c, set()).update(perms)
    mod = f"lsmtrace_{ident(name)}" if name else "lsmtrace_generated"
    out = [
        "# SELinux policy module generated by lsmtrace policy generate --target selinux",
        "# from: " + comment(", ".join(aset.sources)),
        "# File types: the label SELinux reported where the recording has one (its",
        "# audited AVCs), else lsmtrace's path-prefix table (docs/policy.md). Build:",
        "# checkmodule -M -m -o m.mod m.te && semodule_package -o m.pp -m m.mod;",
        "# label each program's executable and add a transition.",
        f"module {mod} 1.0;", "", "require {",
    ]  # fmt: skip
    out += [f"\ttype {t};" for t in types]
    out += [f"\tclass {c} {{ {' '.join(sorted(p))} }};" for c, p in sorted(classes.items())]
    out += ["}", ""]
    for dom, prog in sorted(domains.items()):
        out.append(f"# {comment(prog.name)}")
        out.append(f"type {dom};")
    out.append("")
    for (dom, typ, cls), perms in sorted(allow.items()):
        paths = sorted(why.get((dom, typ, cls), set()))
        for p in paths[:8]:
            out.append(f"# {comment(p)}")
        if len(paths) > 8:
            out.append(f"# ... {len(paths) - 8} more")
        out.append(f"allow {dom} {typ}:{cls} {{ {' '.join(sorted(perms))} }};")
    return "\n".join(out) + "\n"


class SelinuxParseError(LsmtraceError):
    pass


_ALLOW = re.compile(r"\s*allow\b(.*)", re.S)


def _allow_sets(rest: str) -> list[list[str]] | None:
    """'SRC TGT:CLASS PERMS' -> [srcs, tgts, classes, perms]; each a name or
    a { ... } set. None when it is not of that form."""
    toks = re.sub(r"([{}:])", r" \1 ", rest).split()
    sets: list[list[str]] = []
    i = 0
    while i < len(toks):
        if len(sets) == 2:
            if toks[i] != ":":
                return None
            i += 1
        if toks[i] == "{":
            try:
                j = toks.index("}", i)
            except ValueError:
                return None
            sets.append(toks[i + 1:j])
            i = j + 1
        elif toks[i] in ":}":
            return None
        else:
            sets.append([toks[i]])
            i += 1
    if len(sets) != 4 or not all(sets) or any(t in "{}:" for st in sets for t in st):
        return None
    return sets


def parse(text: str, path: str = "policy") -> dict[Key, set[str]]:
    """The allow rules of a type-enforcement module: (source, target, class)
    -> permissions. Single names or `{ ... }` sets; no attributes or macros."""
    body = "\n".join(ln.split("#", 1)[0] for ln in text.splitlines())
    if not re.search(r"^\s*module\s+\S+\s+[\d.]+\s*;", body, re.M):
        raise SelinuxParseError(f"{path}: no 'module NAME VERSION;' line",
                                hint="policy check reads .te modules (checkmodule -m input)")
    # blank out the require block, keeping its newlines for line numbers
    body = re.sub(r"require\s*\{[^}]*\}", lambda m: "\n" * m.group(0).count("\n"), body)
    rules: dict[Key, set[str]] = {}
    offset = 0
    for stmt in body.split(";"):
        start, offset = offset, offset + len(stmt) + 1
        m = _ALLOW.match(stmt)
        if not m:
            continue
        sets = _allow_sets(m.group(1))
        if sets is None:
            line = body.count("\n", 0, start + len(stmt) - len(stmt.lstrip())) + 1
            raise SelinuxParseError(f"{path}: line {line}: cannot read this allow rule",
                                    hint="lsmtrace evaluates rules of the form "
                                    "'allow SOURCE TARGET:CLASS { PERMS };'")  # fmt: skip
        srcs, tgts, classes, perms = sets
        for src in srcs:
            for tgt in tgts:
                for cls in classes:
                    rules.setdefault((src, tgt, cls), set()).update(perms)
    return rules


def check(rules: dict[Key, set[str]], aset: AccessSet) -> CheckResult:
    res = CheckResult()
    used: dict[Key, set[str]] = {}
    for a, needs in requirements(aset):
        ok = True
        for k, perms, _obj in needs:
            have = rules.get(k, set())
            used.setdefault(k, set()).update(perms & have)
            ok = ok and perms <= have
        (res.allowed if ok else res.denied).append(a)
    for (src, tgt, cls), perms in sorted(rules.items()):
        idle = perms - used.get((src, tgt, cls), set())
        if idle:
            res.unused.append(f"allow {src} {tgt}:{cls} {{ {' '.join(sorted(idle))} }}")
    return res
