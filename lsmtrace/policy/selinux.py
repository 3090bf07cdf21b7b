"""SELinux type-enforcement module (.te) from an access set. Pure.

One domain type per program (`lsmtrace_<name>_t`); each file is given the type
of the documented path-prefix table below (the longest prefix wins) — the
recording has no file labels on kernels without SELinux, and a path never
enters the policy text except in comments (escaped). Allow rules are grouped
per (target type, class); the require block names every type, class and
permission used, so `checkmodule -M -m` compiles the module (tests). Labelling
the executables and a domain transition are left to the administrator (the
header comment says how).
"""

from __future__ import annotations

import re

from lsmtrace.policy.model import AccessSet, Program

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


def render(aset: AccessSet, name: str | None = None) -> str:
    allow: dict[tuple[str, str, str], set[str]] = {}
    why: dict[tuple[str, str, str], set[str]] = {}
    domains: dict[str, Program] = {}
    dirs = aset.directories()
    for key in sorted(aset.programs):
        prog = aset.programs[key]
        dom = f"lsmtrace_{ident(key)}_t"
        domains[dom] = prog
        for path in sorted(prog.files):
            for acc in prog.files[path]:
                cls = CLASS_OF.get(acc, "dir" if acc == "read" and path in dirs else "file")
                k = (dom, path_type(path), cls)
                allow.setdefault(k, set()).update(PERMS[acc])
                why.setdefault(k, set()).add(path)
                if acc in PARENT:
                    parent = path.rsplit("/", 1)[0] or "/"
                    pk = (dom, path_type(parent + "/"), "dir")
                    allow.setdefault(pk, set()).update(PARENT[acc])
                    why.setdefault(pk, set()).add(parent)
        caps = {c.removeprefix("CAP_").lower() for c in prog.caps}
        caps1 = {c for c in caps if c not in ("mac_override", "mac_admin", "syslog",
                 "wake_alarm", "block_suspend", "audit_read", "perfmon", "bpf",
                 "checkpoint_restore")}  # fmt: skip
        if caps1:
            allow[(dom, "self", "capability")] = caps1
        if caps - caps1:
            allow[(dom, "self", "capability2")] = caps - caps1
        for n in prog.network:
            sock = {("AF_INET", "SOCK_STREAM"): "tcp_socket", ("AF_INET6", "SOCK_STREAM"): "tcp_socket",
                   ("AF_INET", "SOCK_DGRAM"): "udp_socket", ("AF_INET6", "SOCK_DGRAM"): "udp_socket",
                   ("AF_UNIX", "SOCK_STREAM"): "unix_stream_socket",
                   ("AF_UNIX", "SOCK_DGRAM"): "unix_dgram_socket"}.get((n.family, n.type))  # fmt: skip
            if sock:
                perms = {"socket": {"create"}, "connect": {"create", "connect"},
                         "bind": {"create", "bind"}, "listen": {"listen"},
                         "accept": {"accept"}, "send": {"write"}}[n.op]  # fmt: skip
                allow.setdefault((dom, "self", sock), set()).update(perms)
        if prog.signals:
            allow.setdefault((dom, "self", "process"), set()).add("signal")
        if prog.ptrace:
            allow.setdefault((dom, "self", "process"), set()).add("ptrace")
    types = sorted({t for (_d, t, _c) in allow if t != "self"})
    classes: dict[str, set[str]] = {}
    for (_d, _t, c), perms in allow.items():
        classes.setdefault(c, set()).update(perms)
    mod = f"lsmtrace_{ident(name)}" if name else "lsmtrace_generated"
    out = [
        "# SELinux policy module generated by lsmtrace policy generate --target selinux",
        "# from: " + comment(", ".join(aset.sources)),
        "# File types come from lsmtrace's path-prefix table (docs/policy.md), not",
        "# from labels. Build: checkmodule -M -m -o m.mod m.te && semodule_package",
        "# -o m.pp -m m.mod; label each program's executable and add a transition.",
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
