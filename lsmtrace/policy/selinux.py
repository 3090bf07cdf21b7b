"""SELinux type-enforcement module (.te) from an access set. Pure.

One domain per recorded command (`lsmtrace_<name>_t`), shared by every program
it runs, directly or through a wrapper: without a new label on each program's
file there is no type transition, so an exec stays in the caller's domain
(`execute_no_trans`) and the domain must grant what the whole chain did. The
recorded command's file may enter the domain (`entrypoint`), and an optional
block at the end lets the context the recording was made in (its header's
`selinux_context`; unconfined_t by default) start it there with `runcon -t`:
its role holds the domain, it may transition to it, and the command may use
the file descriptors, pipes and terminal it inherits (SELinux re-checks them
when a process enters a domain and closes those it may not use). Names are
unique whatever the basenames (generalise.unique_names).

Each file is given the type of its label where the recording has one (the AVCs
SELinux audited, see model.AccessSet.labels), else its label on the machine
that generates the module (`add_machine_labels`, when the file exists and has
one), else the type of the documented path-prefix table below (the longest prefix wins) — a path never enters the
policy text except in comments (escaped). Files the workload creates under
/tmp and /var/tmp get a type of the domain's own (`lsmtrace_<name>_tmp_t`,
by a type_transition on tmp_t), so the module grants the domain its own
temporary files, not every tmp_t file. Allow rules are grouped per (target
type, class); a rule that a reference-policy interface grants is named in its
comment instead of listing each file. The require block names every type,
class and permission used, so `checkmodule -M -m` compiles the module (tests).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable

from lsmtrace.errors import LsmtraceError
from lsmtrace.policy.generalise import unique_names
from lsmtrace.policy.landlock import CheckResult
from lsmtrace.policy.model import (
    Access,
    AccessSet,
    comment_block,
    comment_safe,
    shell_word,
)

# path prefix -> type (reference policy names); longest prefix wins
TYPE_TABLE: tuple[tuple[str, str], ...] = (
    ("/", "root_t"),
    ("/etc/", "etc_t"),
    ("/etc/shadow", "shadow_t"),
    ("/etc/ld.so.cache", "ld_so_cache_t"),
    ("/bin/", "bin_t"),
    ("/sbin/", "bin_t"),
    ("/usr/bin/", "bin_t"),
    ("/usr/sbin/", "bin_t"),
    ("/usr/local/bin/", "bin_t"),
    ("/lib/", "lib_t"),
    ("/lib64/", "lib_t"),
    ("/usr/lib/", "lib_t"),
    ("/usr/lib64/", "lib_t"),
    ("/lib64/ld-linux", "ld_so_t"),
    ("/lib/x86_64-linux-gnu/ld-linux", "ld_so_t"),
    ("/usr/lib/locale/", "locale_t"),
    ("/usr/share/locale/", "locale_t"),
    ("/usr/share/", "usr_t"),
    ("/usr/", "usr_t"),
    ("/tmp/", "tmp_t"),
    ("/var/tmp/", "tmp_t"),
    ("/dev/shm/", "tmpfs_t"),
    ("/var/log/", "var_log_t"),
    ("/var/lib/", "var_lib_t"),
    ("/var/run/", "var_run_t"),
    ("/run/", "var_run_t"),
    ("/var/", "var_t"),
    ("/home/", "user_home_t"),
    ("/root/", "admin_home_t"),
    ("/proc/", "proc_t"),
    ("/sys/", "sysfs_t"),
    ("/dev/null", "null_device_t"),
    ("/dev/zero", "zero_device_t"),
    ("/dev/urandom", "urandom_device_t"),
    ("/dev/random", "random_device_t"),
    ("/dev/tty", "devtty_t"),
    ("/dev/pts/", "devpts_t"),
    ("/dev/", "device_t"),
    ("/srv/", "var_t"),
    ("/opt/", "usr_t"),
)
TMP_DIRS = ("/tmp/", "/var/tmp/")

PERMS: dict[str, tuple[str, ...]] = {
    "read": ("open", "read", "getattr"),
    "readdir": ("open", "read", "getattr", "search"),
    "write": ("open", "write", "getattr"),
    "append": ("open", "append", "getattr"),
    "create": ("create",),
    "truncate": ("setattr",),
    # no type transition: the program runs in the caller's domain
    "exec": ("execute", "execute_no_trans", "getattr", "open", "read", "map"),
    # the kernel checks read on every file mapping (file_map_prot_check), and the
    # ELF interpreter is mapped in the new domain without an open of its own
    "mmap_exec": ("map", "execute", "read"),
    "unlink": ("unlink",),
    "rmdir": ("rmdir",),
    "mkdir": ("create",),
    "rename_src": ("rename",),
    "rename_dst": ("create",),
    "link": ("link",),
    "symlink": ("create",),
    "mknod": ("create",),
    "chmod": ("setattr",),
    "chown": ("setattr",),
}
# accesses that act on the parent directory too
PARENT: dict[str, tuple[str, ...]] = {
    "create": ("add_name", "write", "search"),
    "unlink": ("remove_name", "write", "search"),
    "rmdir": ("remove_name", "write", "search"),
    "mkdir": ("add_name", "write", "search"),
    "rename_src": ("remove_name", "write", "search"),
    "rename_dst": ("add_name", "write", "search"),
    "link": ("add_name", "write", "search"),
    "symlink": ("add_name", "write", "search"),
    "mknod": ("add_name", "write", "search"),
}
CLASS_OF = {
    "mkdir": "dir",
    "rmdir": "dir",
    "readdir": "dir",
    "symlink": "lnk_file",
    "mknod": "fifo_file",
}
# (type, class) -> the reference-policy interface that grants such a rule
# (refpolicy's policy/modules; `make -f /usr/share/selinux/devel/Makefile`)
INTERFACES: dict[tuple[str, str], str] = {
    ("locale_t", "file"): "miscfiles_read_localization",
    ("locale_t", "dir"): "miscfiles_read_localization",
    ("ld_so_cache_t", "file"): "libs_use_ld_so",
    ("ld_so_t", "file"): "libs_use_ld_so",
    ("lib_t", "file"): "libs_use_shared_libs",
    ("lib_t", "dir"): "libs_use_shared_libs",
    ("etc_t", "file"): "files_read_etc_files",
    ("etc_t", "dir"): "files_read_etc_files",
    ("bin_t", "file"): "corecmd_exec_bin",
    ("bin_t", "dir"): "corecmd_exec_bin",
    ("null_device_t", "chr_file"): "dev_rw_null",
    ("zero_device_t", "chr_file"): "dev_rw_zero",
    ("urandom_device_t", "chr_file"): "dev_read_urand",
    ("random_device_t", "chr_file"): "dev_read_rand",
    ("proc_t", "file"): "kernel_read_system_state",
    ("sysfs_t", "file"): "dev_read_sysfs",
}


def path_type(path: str) -> str:
    best, typ = "", "default_t"
    for prefix, t in TYPE_TABLE:
        if (path == prefix.rstrip("/") or path.startswith(prefix)) and len(
            prefix
        ) > len(best):
            best, typ = prefix, t
    return typ


def ident(s: str) -> str:
    base = s.rsplit("/", 1)[-1].removeprefix("comm:")
    return _ident(base)


def _ident(s: str) -> str:
    out = re.sub(
        r"[^a-z0-9_]",
        "_",
        s.lower().encode("utf-8", "surrogateescape").decode("ascii", "replace"),
    )
    return re.sub(r"_+", "_", out).strip("_") or "prog"


def _long(key: str) -> str:
    return _ident(key.removeprefix("comm:").replace("/", "_"))


def comment(s: str) -> str:
    return comment_safe(s)


Key = tuple[str, str, str]  # (source domain, target type or "self", class)
# capabilities of the capability2 class
CAP2 = frozenset(
    {
        "mac_override",
        "mac_admin",
        "syslog",
        "wake_alarm",
        "block_suspend",
        "audit_read",
        "perfmon",
        "bpf",
        "checkpoint_restore",
    }
)
SOCKET_CLASS = {
    ("AF_INET", "SOCK_STREAM"): "tcp_socket",
    ("AF_INET6", "SOCK_STREAM"): "tcp_socket",
    ("AF_INET", "SOCK_DGRAM"): "udp_socket",
    ("AF_INET6", "SOCK_DGRAM"): "udp_socket",
    ("AF_UNIX", "SOCK_STREAM"): "unix_stream_socket",
    ("AF_UNIX", "SOCK_DGRAM"): "unix_dgram_socket",
}
SOCKET_PERMS = {
    "socket": {"create"},
    "connect": {"create", "connect"},
    "bind": {"create", "bind"},
    "listen": {"listen"},
    "accept": {"accept"},
    "send": {"write"},
}


def context_type(context: str) -> str | None:
    """The type of `user:role:type[:level]` (None unless a plain identifier)."""
    parts = context.rstrip("\0\n").split(":")
    if len(parts) >= 3 and re.fullmatch(r"[A-Za-z0-9_]+", parts[2]):
        return parts[2]
    return None


def add_machine_labels(
    aset: AccessSet, getxattr: Callable[[str, str], bytes] = os.getxattr
) -> int:
    """Label each recorded file (and each directory above it: a lookup
    searches them) that the recording has no AVC label for with its label on
    this machine
    (`security.selinux`, following symlinks as the kernel's check does), when
    it exists and has one. Returns how many paths were labelled."""
    paths: set[str] = set()
    for prog in aset.programs.values():
        for path in prog.files:
            paths.add(path)
            paths.update(ancestors(path))
        if prog.exact_exe:
            paths.add(prog.exact_exe)
            paths.update(ancestors(prog.exact_exe))
    n = 0
    for path in sorted(paths - set(aset.labels)):
        try:
            typ = context_type(
                getxattr(path, "security.selinux").decode("ascii", "replace")
            )
        except OSError:
            continue
        if typ is not None:
            aset.labels[path] = typ
            n += 1
    return n


def ancestors(path: str) -> list[str]:
    """The directories a lookup of the absolute `path` searches: /, /srv,
    /srv/w for /srv/w/a (none for a relative name)."""
    if not path.startswith("/"):
        return []
    out = ["/"]
    parts = [p for p in path.split("/")[:-1] if p]
    for i in range(len(parts)):
        out.append("/" + "/".join(parts[: i + 1]))
    return out


DEFAULT_CALLER = ("unconfined_r", "unconfined_t")
# a login's pseudo-terminal and tty in the reference policy
TERMINAL_TYPES = ("user_devpts_t", "user_tty_device_t")
TERMINAL_PERMS = ("append", "getattr", "ioctl", "read", "write")
# /dev/null, which services and harnesses give a command as stdin; when SELinux
# closes an inherited descriptor the domain may not use, it reopens its own
# null device (selinuxfs, also null_device_t) in its place
NULL_DEVICE = "null_device_t"
NULL_PERMS = ("append", "getattr", "ioctl", "open", "read", "write")


def callers(aset: AccessSet) -> list[tuple[str, str]]:
    """(role, type) of each context the recorded commands were started from
    (the recordings' selinux_context), else the reference policy's
    unconfined_r/unconfined_t."""
    out: list[tuple[str, str]] = []
    for ctx in aset.selinux_callers:
        parts = ctx.rstrip("\0\n").split(":")
        typ = context_type(ctx)
        if (
            typ
            and re.fullmatch(r"[A-Za-z0-9_]+", parts[1])
            and (parts[1], typ) not in out
        ):
            out.append((parts[1], typ))
    return out or [DEFAULT_CALLER]


def entry_blocks(dom_types: list[str], aset: AccessSet) -> list[str]:
    """The optional blocks that let the recording's context start each domain
    with runcon and the command use what it inherits (module text)."""
    out: list[str] = []
    where = (
        "the context the command was recorded in"
        if aset.selinux_callers
        else "the reference policy's unconfined login; the recording names none"
    )
    for role, caller in callers(aset):
        out += [
            f"# runcon -t DOMAIN COMMAND from {caller}",
            f"# ({where}):",
            "# its role may hold the domain, it may enter it, and the command may",
            "# use the file descriptors and pipes it inherits from there and tell",
            "# it that it exited. Skipped where the policy has no such type or role.",
            "optional {",
            "\trequire {",
            f"\t\ttype {caller};",
            f"\t\trole {role};",
            "\t\tclass process { sigchld transition };",
            "\t\tclass fd use;",
            f"\t\tclass fifo_file {{ {' '.join(TERMINAL_PERMS)} }};",
            "\t}",
        ]
        for dom in dom_types:
            out += [
                f"\trole {role} types {dom};",
                f"\tallow {caller} {dom}:process transition;",
                f"\tallow {dom} {caller}:fd use;",
                f"\tallow {dom} {caller}:fifo_file {{ {' '.join(TERMINAL_PERMS)} }};",
                f"\tallow {dom} {caller}:process sigchld;",
            ]
        out += ["}", ""]
    out += [
        "# ...and the terminal it was started on (a login's pseudo-terminal or tty),",
        "# or /dev/null in its place.",
        "optional {",
        "\trequire {",
        *[f"\t\ttype {t};" for t in (*TERMINAL_TYPES, NULL_DEVICE)],
        f"\t\tclass chr_file {{ {' '.join(sorted({*TERMINAL_PERMS, *NULL_PERMS}))} }};",
        "\t}",
        *[
            f"\tallow {dom} {{ {' '.join(TERMINAL_TYPES)} }}:chr_file "
            f"{{ {' '.join(TERMINAL_PERMS)} }};"
            for dom in dom_types
        ],
        *[
            f"\tallow {dom} {NULL_DEVICE}:chr_file {{ {' '.join(NULL_PERMS)} }};"
            for dom in dom_types
        ],
        "}",
    ]
    return out


def domain_type(program: str) -> str:
    """The domain of a program that is its own root (no other name in the set)."""
    return f"lsmtrace_{ident(program)}_t"


def domains(aset: AccessSet) -> dict[str, list[str]]:
    """program -> the domain(s) it runs in: the domain of each recorded
    command whose exec chain reaches it; a program no chain reaches (known
    only by comm) has its own."""
    roots = {c[0] for c in aset.chains} | {
        k for k in aset.programs if not any(k in c for c in aset.chains)
    }
    names = unique_names(roots, ident, _long, "_")
    out: dict[str, set[str]] = {}
    for chain in aset.chains:
        for prog in chain:
            out.setdefault(prog, set()).add(f"lsmtrace_{names[chain[0]]}_t")
    for k in roots:
        out.setdefault(k, set()).add(f"lsmtrace_{names[k]}_t")
    return {k: sorted(v) for k, v in out.items()}


def _tmp_type(dom: str) -> str:
    return dom[: -len("_t")] + "_tmp_t"


CREATES = frozenset({"create", "mkdir", "mknod", "symlink", "rename_dst", "link"})


def _created_tmp(aset: AccessSet, created: Iterable[str] = ()) -> set[str]:
    """Temp paths the workload created (and what lies beneath them)."""
    made = {
        p
        for prog in aset.programs.values()
        for p, acc in prog.files.items()
        if acc & CREATES and p.startswith(TMP_DIRS)
    }
    made.update(p for p in created if p.startswith(TMP_DIRS))
    every = {p for prog in aset.programs.values() for p in prog.files}
    return {p for p in every if p in made or any(p.startswith(m + "/") for m in made)}


def _file_type(
    aset: AccessSet, own_tmp: set[str], dom: str, path: str, table_key: str
) -> str:
    if path in own_tmp:
        return _tmp_type(dom)
    return aset.labels.get(path) or path_type(table_key)


def requirements(
    aset: AccessSet,
    doms: dict[str, list[str]] | None = None,
    created: Iterable[str] = (),
) -> list[tuple[Access, list[tuple[Key, set[str], str]]]]:
    """Each recorded access with what it needs: (rule key, permissions, the
    path or object that explains it). One mapping for generate, check and the
    live audit mode, which gives the domain each program runs in (`doms`;
    else from the set's exec chains) and the paths the session saw created
    (`created`: under /tmp they have the domain's own type)."""
    dirs = aset.directories()
    doms = domains(aset) if doms is None else doms
    own_tmp = _created_tmp(aset, created)
    # an exec'd file's label is its resolved file's (a symlinked interpreter)
    exact = {k: p.exact_exe for k, p in aset.programs.items() if p.exact_exe}
    out: list[tuple[Access, list[tuple[Key, set[str], str]]]] = []
    for a in aset.flat():
        needs: list[tuple[Key, set[str], str]] = []
        for dom in doms.get(a.program, [domain_type(a.program)]):
            if a.kind == "file":
                acc, path = a.access, a.what
                cls = CLASS_OF.get(
                    acc, "dir" if acc == "read" and path in dirs else "file"
                )
                real = exact.get(path, path) if acc == "exec" else path
                typ = _file_type(aset, own_tmp, dom, real, real)
                perms = set(PERMS[acc])
                if acc == "read" and cls == "file":
                    # the model keeps no mapping without PROT_EXEC, and the
                    # loader and libc map what they read (ld.so.cache, locales)
                    perms.add("map")
                needs.append(((dom, typ, cls), perms, path))
                for d in ancestors(real):
                    dtyp = _file_type(aset, own_tmp, dom, d, d.rstrip("/") + "/")
                    needs.append(((dom, dtyp, "dir"), {"search"}, d))
                if typ == "ld_so_t":
                    # the ELF interpreter is named by a link in lib_t (PT_INTERP
                    # /lib64/ld-linux-x86-64.so.2); refpolicy's libs_use_ld_so
                    # grants reading it
                    needs.append(((dom, "lib_t", "lnk_file"), {"read"}, real))
                if acc in PARENT:
                    parent = path.rsplit("/", 1)[0] or "/"
                    ptyp = _file_type(aset, own_tmp, dom, parent, parent + "/")
                    needs.append(((dom, ptyp, "dir"), set(PARENT[acc]), parent))
                if acc == "exec" and path == a.program and a.program in aset.roots:
                    # the recorded command's own file enters the domain
                    needs.append(((dom, typ, "file"), {"entrypoint"}, path))
            elif a.kind == "cap":
                cap = a.what.removeprefix("CAP_").lower()
                cls = "capability2" if cap in CAP2 else "capability"
                needs.append(((dom, "self", cls), {cap}, a.what))
            elif a.kind == "net":
                op, family, stype = [*a.what.split(), "", ""][:3]
                sock = SOCKET_CLASS.get((family, stype))
                if sock:
                    needs.append(((dom, "self", sock), set(SOCKET_PERMS[op]), a.what))
            elif a.kind in ("signal", "ptrace"):
                perm = "signal" if a.kind == "signal" else "ptrace"
                needs.append(((dom, "self", "process"), {perm}, a.what))
        out.append((a, needs))
    return out


def module_name(name: str | None, filename: str | None) -> str:
    """`lsmtrace_NAME` for --name, else the output file's stem (checkmodule
    wants the module name to match the .mod file's base name, and the build
    line names it so), else lsmtrace_generated."""
    if name:
        return f"lsmtrace_{_ident(name)}"
    if filename:
        stem = re.sub(r"\.te$", "", filename.rsplit("/", 1)[-1])
        stem = _ident(stem)
        return stem if stem[0].isalpha() else f"lsmtrace_{stem}"
    return "lsmtrace_generated"


def build_commands(mod: str, filename: str | None) -> list[str]:
    """The build and load lines written into the module (tests run them)."""
    src = shell_word(filename) if filename else f"{mod}.te"
    return [
        f"checkmodule -M -m -o {mod}.mod {src}",
        f"semodule_package -o {mod}.pp -m {mod}.mod",
        f"semodule -i {mod}.pp",
    ]


def render(
    aset: AccessSet, name: str | None = None, filename: str | None = None
) -> str:
    allow: dict[Key, set[str]] = {}
    why: dict[Key, set[str]] = {}
    for _a, needs in requirements(aset):
        for k, perms, obj in needs:
            allow.setdefault(k, set()).update(perms)
            if k[1] != "self":
                why.setdefault(k, set()).add(obj)
    doms = domains(aset)
    dom_types = sorted({d for ds in doms.values() for d in ds})
    tmp_types = sorted(
        {
            t
            for (_d, t, _c) in allow
            if t.endswith("_tmp_t") and t.startswith("lsmtrace_")
        }
    )
    own = set(dom_types) | set(tmp_types)
    types = sorted({t for (_d, t, _c) in allow if t != "self" and t not in own})
    if tmp_types and "tmp_t" not in types:
        types.append("tmp_t")
    classes: dict[str, set[str]] = {}
    for (_d, _t, c), perms in allow.items():
        classes.setdefault(c, set()).update(perms)
    trans_classes = ("file", "dir")
    if tmp_types:
        for c in trans_classes:
            classes.setdefault(c, set())
    mod = module_name(name, filename)
    cmds = build_commands(mod, filename)
    out = [
        "# SELinux policy module generated by lsmtrace policy generate --target selinux",
        "# from: " + comment(", ".join(aset.sources)),
        "# File types: the label SELinux reported where the recording has one (its",
        "# audited AVCs), else the file's label where it was generated, else",
        "# lsmtrace's path-prefix table (docs/policy.md).",
    ]
    if not filename:
        out.append(f"# Save this file as {mod}.te, then build and load it (as root):")
    else:
        out.append("# Build and load it (as root):")
    out += [f"#   {c}" for c in cmds]
    caller = callers(aset)[0][1]
    out += [
        "# One domain per recorded command, for every program it runs (no type",
        "# transition without a label of their own). Enter it with",
        f"#   runcon -t DOMAIN COMMAND ARGS...   (from {caller}: the block at the end)",
        "# or give the command's file an exec type and a type_transition to DOMAIN.",
    ]
    out += comment_block(
        "No rule (the name could not be placed)", aset.unplaced_lines()
    )
    out += comment_block("Inferred (deduced, not seen)", aset.inferred_lines())
    out += comment_block(
        "Capabilities seen but not granted (no enforced check)", aset.quiet_cap_lines()
    )
    out += [f"module {mod} 1.0;", "", "require {"]
    out += [f"\ttype {t};" for t in types]
    if tmp_types:
        out.append("\tattribute file_type;")
    out += [
        f"\tclass {c} {{ {' '.join(sorted(p))} }};"
        for c, p in sorted(classes.items())
        if p
    ] + [f"\tclass {c};" for c, p in sorted(classes.items()) if not p]
    out += ["}", ""]
    members: dict[str, list[str]] = {}
    for prog, ds in doms.items():
        for d in ds:
            members.setdefault(d, []).append(prog)
    for dom in dom_types:
        # the recorded command first, then what it runs
        progs = sorted(members.get(dom, []), key=lambda p: (p not in aset.roots, p))
        out.append(
            f"# {comment(progs[0]) if progs else dom}"
            + (f" and {len(progs) - 1} program(s) it runs" if len(progs) > 1 else "")
        )
        out += [f"#   runs {comment(p)}" for p in progs[1:9]]
        out.append(f"type {dom};")
    for tt in tmp_types:
        dom = tt[: -len("_tmp_t")] + "_t"
        out.append(
            f"# files {dom} creates under /tmp and /var/tmp: its own type, not tmp_t"
        )
        out.append(f"type {tt};")
        out.append(f"typeattribute {tt} file_type;")
        out += [f"type_transition {dom} tmp_t:{c} {tt};" for c in trans_classes]
    out.append("")
    for (dom, typ, cls), perms in sorted(allow.items()):
        paths = sorted(why.get((dom, typ, cls), set()))
        iface = INTERFACES.get((typ, cls))
        if iface:
            out.append(
                f"# refpolicy {iface}({dom}) grants this ({len(paths)} path(s), "
                f"e.g. {comment(paths[0])})"
                if paths
                else f"# refpolicy {iface}({dom})"
            )
        else:
            for p in paths[:8]:
                out.append(f"# {comment(p)}")
            if len(paths) > 8:
                out.append(f"# ... {len(paths) - 8} more")
        out.append(allow_rule((dom, typ, cls), perms))
    out.append("")
    out += entry_blocks(dom_types, aset)
    return "\n".join(out) + "\n"


def allow_rule(key: Key, perms: Iterable[str]) -> str:
    dom, typ, cls = key
    return f"allow {dom} {typ}:{cls} {{ {' '.join(sorted(perms))} }};"


def command_domain(exe: str, defined: Iterable[str]) -> str | None:
    """The domain of a module that the command `exe` would run in when
    started into it (runcon -t, or an exec type: docs/policy.md), by the
    generator's naming: `lsmtrace_<basename>_t`, or `lsmtrace_<whole
    path>_t` where basenames collided; None when the module defines neither.
    (A name that even then collided has a hash suffix: not recognised.)"""
    have = set(defined)
    for name in (_long(exe), ident(exe)):
        dom = f"lsmtrace_{name}_t"
        if dom in have:
            return dom
    return None


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
            sets.append(toks[i + 1 : j])
            i = j + 1
        elif toks[i] in ":}":
            return None
        else:
            sets.append([toks[i]])
            i += 1
    if len(sets) != 4 or not all(sets) or any(t in "{}:" for st in sets for t in st):
        return None
    return sets


def _blank_blocks(body: str, keywords: tuple[str, ...]) -> str:
    """`KEYWORD { ... }` blocks (braces balanced) as their newlines only."""
    out, i = [], 0
    pat = re.compile(r"\b(?:" + "|".join(keywords) + r")\s*\{")
    while (m := pat.search(body, i)) is not None:
        depth, j = 1, m.end()
        while j < len(body) and depth:
            depth += {"{": 1, "}": -1}.get(body[j], 0)
            j += 1
        out += [body[i : m.start()], "\n" * body.count("\n", m.start(), j)]
        i = j
    return "".join(out) + body[i:]


def parse(text: str, path: str = "policy") -> dict[Key, set[str]]:
    """The allow rules of a type-enforcement module: (source, target, class)
    -> permissions. Single names or `{ ... }` sets; no attributes or macros."""
    body = "\n".join(ln.split("#", 1)[0] for ln in text.splitlines())
    if not re.search(r"^\s*module\s+\S+\s+[\d.]+\s*;", body, re.M):
        raise SelinuxParseError(
            f"{path}: no 'module NAME VERSION;' line",
            hint="policy check reads .te modules (checkmodule -m input)",
        )
    # blank out the require blocks and the optional blocks (the runcon entry:
    # not what the recorded accesses need), keeping newlines for line numbers
    body = _blank_blocks(body, ("require", "optional"))
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
            raise SelinuxParseError(
                f"{path}: line {line}: cannot read this allow rule",
                hint="lsmtrace evaluates rules of the form "
                "'allow SOURCE TARGET:CLASS { PERMS };'",
            )
        srcs, tgts, classes, perms = sets
        for src in srcs:
            for tgt in tgts:
                for cls in classes:
                    rules.setdefault((src, tgt, cls), set()).update(perms)
    return rules


def lacking(
    rules: dict[Key, set[str]], needs: Iterable[tuple[Key, set[str], str]]
) -> list[tuple[Key, set[str]]]:
    """What an access's needs lack in the module's allow rules: (key, the
    permissions no rule allows), the rules the module would need."""
    out = []
    for k, perms, _obj in needs:
        lack = perms - rules.get(k, set())
        if lack:
            out.append((k, lack))
    return out


def check(rules: dict[Key, set[str]], aset: AccessSet) -> CheckResult:
    res = CheckResult()
    used: dict[Key, set[str]] = {}
    for a, needs in requirements(aset):
        for k, perms, _obj in needs:
            used.setdefault(k, set()).update(perms & rules.get(k, set()))
        (res.denied if lacking(rules, needs) else res.allowed).append(a)
    for (src, tgt, cls), perms in sorted(rules.items()):
        idle = perms - used.get((src, tgt, cls), set())
        if idle:
            res.unused.append(f"allow {src} {tgt}:{cls} {{ {' '.join(sorted(idle))} }}")
    return res
