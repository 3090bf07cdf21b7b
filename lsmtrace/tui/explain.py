"""Who denied an event and which rule would allow it, per target. Pure.

``explain(event_dict) -> list[str]`` reads one JSON event of docs/events.md and
returns plain text lines (no markup): the verdict, who decided (an LSM, DAC, or
"cannot tell" on the tracepoint rung), then one rule per relevant target:
DAC (mode bits/ACL), the capability, an AppArmor rule line, an SELinux allow
rule, a Landlock access right. When the deciding LSM is known only its rule
(and the capability that would bypass it, if any) is given; when the rung
cannot tell, every candidate is listed.

Self-contained: lsmtrace.policy (the policy generators) is the authority for
whole policies; this module only words one event's answer. Names it cannot
know from one event (SELinux types without an AVC record, the AppArmor profile)
appear as <placeholders> with the command that finds them.

When the LSM's own audit record is joined to the event (`audit`, docs/events.md)
the rule comes from it instead: the AppArmor line for the profile that denied,
the `allow` rule from the AVC's contexts as audit2allow writes it, the Landlock
right the domain lacks (its `blockers`); a seccomp record says a seccomp
filter refused the syscall, which no LSM rule changes. A decision the
candidate policy of the live audit mode would deny (`would_deny`) shows the
rule that policy lacks first.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from typing import Any

from lsmtrace.output import escape

MAY_EXEC, MAY_WRITE, MAY_READ, MAY_APPEND = 1, 2, 4, 8
O_ACCMODE, O_WRONLY, O_RDWR = 3, 1, 2
O_CREAT, O_TRUNC, O_APPEND, O_DIRECTORY = 0o100, 0o1000, 0o2000, 0o200000

# capabilities that are the DAC decision itself (docs/events.md)
DAC_CAPS = frozenset({"CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER"})

# the capability a syscall denied by the capability module most likely lacked
SYSCALL_CAPS = {
    "setpriority": "CAP_SYS_NICE",
    "nice": "CAP_SYS_NICE",
    "sched_setscheduler": "CAP_SYS_NICE",
    "kill": "CAP_KILL",
    "tkill": "CAP_KILL",
    "tgkill": "CAP_KILL",
    "setuid": "CAP_SETUID",
    "setreuid": "CAP_SETUID",
    "setresuid": "CAP_SETUID",
    "setfsuid": "CAP_SETUID",
    "setgid": "CAP_SETGID",
    "setregid": "CAP_SETGID",
    "setresgid": "CAP_SETGID",
    "setfsgid": "CAP_SETGID",
    "capset": "CAP_SETPCAP",
    "mount": "CAP_SYS_ADMIN",
    "umount2": "CAP_SYS_ADMIN",
    "move_mount": "CAP_SYS_ADMIN",
    "chroot": "CAP_SYS_CHROOT",
    "ptrace": "CAP_SYS_PTRACE",
    "process_vm_readv": "CAP_SYS_PTRACE",
    "process_vm_writev": "CAP_SYS_PTRACE",
    "init_module": "CAP_SYS_MODULE",
    "finit_module": "CAP_SYS_MODULE",
    "delete_module": "CAP_SYS_MODULE",
    "kexec_load": "CAP_SYS_BOOT",
    "kexec_file_load": "CAP_SYS_BOOT",
    "bpf": "CAP_BPF",
    "perf_event_open": "CAP_PERFMON",
    "mknod": "CAP_MKNOD",
    "mknodat": "CAP_MKNOD",
    "chown": "CAP_CHOWN",
    "fchown": "CAP_CHOWN",
    "lchown": "CAP_CHOWN",
    "fchownat": "CAP_CHOWN",
}

# SELinux kernel class map order (security/selinux/include/classmap.h)
_COMMON_FILE = (
    "ioctl",
    "read",
    "write",
    "create",
    "getattr",
    "setattr",
    "lock",
    "relabelfrom",
    "relabelto",
    "append",
    "map",
    "unlink",
    "link",
    "rename",
    "execute",
    "quotaon",
    "mounton",
    "audit_access",
    "open",
    "execmod",
    "watch",
    "watch_mount",
    "watch_sb",
    "watch_with_perm",
    "watch_reads",
)
SELINUX_PERMS: dict[str, tuple[str, ...]] = {
    "file": (*_COMMON_FILE, "execute_no_trans", "entrypoint"),
    "dir": (*_COMMON_FILE, "add_name", "remove_name", "reparent", "search", "rmdir"),
    **{
        c: _COMMON_FILE
        for c in ("lnk_file", "chr_file", "blk_file", "sock_file", "fifo_file")
    },
}

LSM_NAMES = {
    "capability": "the capability module (commoncap)",
    "selinux": "SELinux",
    "apparmor": "AppArmor",
    "smack": "Smack",
    "tomoyo": "TOMOYO",
    "landlock": "Landlock",
    "yama": "Yama",
    "lockdown": "kernel lockdown",
    "bpf": "a BPF-LSM program",
    "safesetid": "SafeSetID",
    "loadpin": "LoadPin",
    "ipe": "IPE",
    "integrity": "IMA/EVM",
    "dac": "DAC (file mode bits, ACLs, ownership)",
    "seccomp": "a seccomp filter, not an LSM",
}


def _caps(cap: str) -> list[str]:
    """Ways to give a process a capability."""
    low = cap.removeprefix("CAP_").lower()
    return [
        f"capability  grant {cap}: setcap {cap.lower()}+ep <executable>, or "
        f"systemd AmbientCapabilities={cap}, or docker --cap-add={cap.removeprefix('CAP_')}",
        f"AppArmor    capability {low},",
        f"SELinux     allow <domain_t> self:{_cap_class(cap)} {{ {low} }};",
    ]


def _cap_class(cap: str) -> str:
    from lsmtrace.events import CAP_NAMES

    try:
        return "capability2" if CAP_NAMES.index(cap) >= 32 else "capability"
    except ValueError:
        return "capability"


def _int(v: Any, default: int = 0) -> int:
    try:
        return int(v, 0) if isinstance(v, str) else int(v)
    except (TypeError, ValueError):
        return default


def _name(ev: Mapping[str, Any]) -> str:
    hook = str(ev.get("hook") or "")
    return hook.removeprefix("sys_")


def file_access(ev: Mapping[str, Any]) -> list[str]:
    """What a file decision asked for: read, write, append, exec, mmap_exec,
    create, mkdir, delete, rename, link, setattr, chown, truncate, list."""
    name = _name(ev)
    obj = ev.get("object") or {}
    flags = _int(obj.get("flags"))
    mask = _int(obj.get("mask"))
    if name in ("open", "openat", "openat2", "file_open", "creat"):
        acc = flags & O_ACCMODE
        out = []
        if flags & O_DIRECTORY:
            out.append("list")
        elif acc in (0, O_RDWR):
            out.append("read")
        if acc in (O_WRONLY, O_RDWR) or name == "creat":
            out.append("append" if flags & O_APPEND else "write")
        if flags & O_CREAT or name == "creat":
            out.append("create")
        if flags & O_TRUNC:
            out.append("truncate")
        return out or ["read"]
    if name in ("file_permission", "inode_permission"):
        out = []
        if mask & MAY_READ:
            out.append("read")
        if mask & MAY_APPEND:
            out.append("append")
        elif mask & MAY_WRITE:
            out.append("write")
        if mask & MAY_EXEC:
            out.append("exec")
        return out or ["read"]
    if name in ("execve", "execveat") or name.startswith("bprm_"):
        return ["exec"]
    if name in ("mmap", "mprotect", "mmap_file", "file_mprotect"):
        prot = str(obj.get("prot") or "")
        out = [
            a
            for a, c in (("read", "r"), ("write", "w"), ("mmap_exec", "x"))
            if c in prot
        ]
        return out or ["read"]
    table = {
        "truncate": "truncate",
        "path_truncate": "truncate",
        "unlink": "delete",
        "unlinkat": "delete",
        "rmdir": "delete",
        "path_unlink": "delete",
        "inode_unlink": "delete",
        "path_rmdir": "delete",
        "inode_rmdir": "delete",
        "rename": "rename",
        "renameat": "rename",
        "renameat2": "rename",
        "path_rename": "rename",
        "inode_rename": "rename",
        "mkdir": "mkdir",
        "mkdirat": "mkdir",
        "path_mkdir": "mkdir",
        "inode_mkdir": "mkdir",
        "mknod": "create",
        "mknodat": "create",
        "path_mknod": "create",
        "inode_create": "create",
        "link": "link",
        "linkat": "link",
        "symlink": "link",
        "symlinkat": "link",
        "path_link": "link",
        "path_symlink": "link",
        "chmod": "setattr",
        "fchmod": "setattr",
        "fchmodat": "setattr",
        "fchmodat2": "setattr",
        "path_chmod": "setattr",
        "inode_setattr": "setattr",
        "chown": "chown",
        "lchown": "chown",
        "fchown": "chown",
        "fchownat": "chown",
        "path_chown": "chown",
    }
    return [table[name]] if name in table else ["read"]


_DIR_OPS = ("create", "mkdir", "delete", "rename", "link")


def _dac_file(path: str, access: list[str], uid: int) -> list[str]:
    bits = {
        "read": "r",
        "list": "rx",
        "write": "w",
        "append": "w",
        "truncate": "w",
        "exec": "x",
        "mmap_exec": "r",
    }
    on_file = "".join(
        sorted({c for a in access for c in bits.get(a, "")}, key="rwx".index)
    )
    out = []
    if on_file:
        out.append(
            f"DAC         setfacl -m u:{uid}:{on_file} {path}  (or chmod/chown so "
            f"uid {uid} gets {on_file})"
        )
    if any(a in _DIR_OPS for a in access):
        parent = posixpath.dirname(path.rstrip("/")) or "/"
        out.append(
            f"DAC         setfacl -m u:{uid}:wx {parent}  (create/remove names "
            "in the directory)"
        )
    if "setattr" in access or "chown" in access:
        out.append(
            f"DAC         only the owner may chmod; chown needs CAP_CHOWN "
            f"(uid {uid} is not the owner of {path})"
        )
    if not out:
        out.append(f"DAC         adjust mode bits/ACL of {path} for uid {uid}")
    read_only = all(a in ("read", "list") for a in access)
    cap = "CAP_DAC_READ_SEARCH" if read_only else "CAP_DAC_OVERRIDE"
    if "setattr" in access:
        cap = "CAP_FOWNER"
    elif "chown" in access:
        cap = "CAP_CHOWN"
    out.append(f"capability  {cap} bypasses this check (broad: prefer the ACL)")
    return out


def _apparmor_file(path: str, access: list[str], comm: str) -> str:
    perms = {
        "read": "r",
        "list": "r",
        "write": "w",
        "append": "a",
        "truncate": "w",
        "exec": "ix",
        "mmap_exec": "m",
        "create": "w",
        "mkdir": "w",
        "delete": "w",
        "rename": "w",
        "link": "l",
        "setattr": "w",
        "chown": "w",
    }
    letters = ""
    for a in access:
        for c in perms.get(a, "r"):
            if c not in letters:
                letters += c
    if "w" in letters and "a" in letters:
        letters = letters.replace("a", "")
    order = "rwalmix"
    letters = "".join(sorted(letters, key=order.index))
    if "list" in access and not path.endswith("/"):
        path += "/"
    # quoted and escaped by the policy generator's own code, so a hostile file
    # name reads here exactly as it would in a generated profile
    from lsmtrace.policy.apparmor import escape_literal

    return f'AppArmor    "{escape_literal(path)}" {letters},   (in the profile confining {comm})'


def _selinux_file(access: list[str], tclass: str = "file") -> list[str]:
    perms = {
        "read": "open read",
        "list": "open read search",
        "write": "open write",
        "append": "open append",
        "truncate": "open write setattr",
        "exec": "execute execute_no_trans map",
        "mmap_exec": "map execute",
        "create": "create open write",
        "mkdir": "create",
        "delete": "unlink",
        "rename": "rename",
        "link": "link",
        "setattr": "setattr",
        "chown": "setattr",
    }
    words: list[str] = []
    for a in access:
        for w in perms.get(a, "read").split():
            if w not in words:
                words.append(w)
    cls = "dir" if "list" in access else tclass
    if "mkdir" in access:
        cls = "dir"
    out = [f"SELinux     allow <domain_t> <file_t>:{cls} {{ {' '.join(words)} }};"]
    if any(a in _DIR_OPS for a in access):
        verb = (
            "remove_name"
            if any(a in ("delete", "rename") for a in access)
            else "add_name"
        )
        out.append(
            f"SELinux     allow <domain_t> <dir_t>:dir {{ {verb} write search }};"
        )
    return out


def _tomoyo_file(path: str, access: list[str], comm: str) -> list[str]:
    # TOMOYO's own names and escaping, from the policy generator, so a hostile
    # name reads exactly as in a generated domain
    from lsmtrace.policy.tomoyo import MODE_OPS, encode, tomoyo_name

    ops = {
        "read": "read",
        "list": "read",
        "write": "write",
        "append": "append",
        "truncate": "truncate",
        "exec": "execute",
        "create": "create",
        "mkdir": "mkdir",
        "delete": "unlink",
        "setattr": "chmod",
        "chown": "chown",
    }
    if "list" in access and not path.endswith("/"):
        path += "/"
    word = encode(tomoyo_name(path))
    out = []
    for a in access:
        op = ops.get(a)
        if op is None:
            continue  # mmap, rename and link: not a single-path ACL of this form
        arg = {"chmod": " <mode>", "chown": " <uid>"}.get(op, MODE_OPS.get(op, ""))
        line = f"TOMOYO      file {op} {word}{arg}"
        if line not in out:
            out.append(line)
    if out:
        out[-1] += f"   (in the domain of {comm})"
    return out


def _landlock_file(path: str, access: list[str]) -> str:
    rights = {
        "read": "READ_FILE",
        "list": "READ_DIR",
        "write": "WRITE_FILE",
        "append": "WRITE_FILE",
        "truncate": "TRUNCATE",
        "exec": "EXECUTE",
        "mmap_exec": "EXECUTE",
        "create": "MAKE_REG",
        "mkdir": "MAKE_DIR",
        "delete": "REMOVE_FILE",
        "rename": "REFER",
        "link": "REFER",
        "setattr": "WRITE_FILE",
        "chown": "WRITE_FILE",
    }
    names: list[str] = []
    for a in access:
        r = "LANDLOCK_ACCESS_FS_" + rights.get(a, "READ_FILE")
        if r not in names:
            names.append(r)
    where = (
        path
        if "list" in access or any(a in _DIR_OPS for a in access)
        else f"{path} (or a parent directory)"
    )
    return f"Landlock    {' | '.join(names)} in a path_beneath rule on {where}"


def _signal_rules(
    ev: Mapping[str, Any], obj: Mapping[str, Any]
) -> dict[str, list[str]]:
    sig = str(obj.get("sig_name") or obj.get("sig") or "0")
    target = obj.get("target_pid", "?")
    tcomm = escape(str(obj.get("target_comm") or "<target>"))
    aa_sig = {
        "SIGKILL": "kill",
        "SIGTERM": "term",
        "SIGHUP": "hup",
        "SIGINT": "int",
        "SIGUSR1": "usr1",
        "SIGUSR2": "usr2",
        "SIGSTOP": "stop",
        "SIGCONT": "cont",
    }.get(sig, sig.removeprefix("SIG").lower())
    se_perm = {
        "SIGKILL": "sigkill",
        "SIGSTOP": "sigstop",
        "SIGCHLD": "sigchld",
        "0": "signull",
    }.get(sig, "signal")
    return {
        "dac": [
            f"DAC         a signal needs the sender's uid to match the target's "
            f"(pid {target}) real or saved uid"
        ],
        "capability": [
            f"capability  CAP_KILL lets uid {ev.get('uid')} signal any process"
        ],
        "apparmor": [
            f"AppArmor    signal (send) set=({aa_sig}) peer=<profile of {tcomm}>,"
        ],
        "selinux": [
            f"SELinux     allow <domain_t> <target_domain_t>:process {se_perm};"
        ],
        "landlock": [
            "Landlock    the sandbox was created with LANDLOCK_SCOPE_SIGNAL: "
            "signals leave it only if that scope is not set"
        ],
        "smack": [
            "Smack       a rule giving the sender's label 'w' on the target's label"
        ],
    }


def _ptrace_rules(obj: Mapping[str, Any]) -> dict[str, list[str]]:
    tcomm = escape(str(obj.get("target_comm") or "<target>"))
    return {
        "yama": [
            "Yama        kernel.yama.ptrace_scope=1 allows descendants only: "
            "attach to a child, or the target calls prctl(PR_SET_PTRACER, pid); "
            "scope 2 needs CAP_SYS_PTRACE, 3 forbids ptrace"
        ],
        "capability": _caps("CAP_SYS_PTRACE")[:1],
        "apparmor": [f"AppArmor    ptrace (read, trace) peer=<profile of {tcomm}>,"],
        "selinux": ["SELinux     allow <domain_t> <target_domain_t>:process ptrace;"],
        "dac": [
            "DAC         the tracer's uid must match the target's uids (and the "
            "target must be dumpable)"
        ],
    }


def _net_rules(ev: Mapping[str, Any], obj: Mapping[str, Any]) -> dict[str, list[str]]:
    fam = str(obj.get("family") or "AF_INET")
    typ = str(obj.get("type") or "SOCK_STREAM")
    aa_fam = fam.removeprefix("AF_").lower()
    aa_type = typ.removeprefix("SOCK_").lower()
    name = _name(ev)
    port = obj.get("port")
    tcp = typ == "SOCK_STREAM"
    se_cls = {
        "AF_UNIX": "unix_stream_socket" if tcp else "unix_dgram_socket",
        "AF_NETLINK": "netlink_socket",
        "AF_PACKET": "packet_socket",
    }.get(
        fam,
        ("tcp_socket" if tcp else "udp_socket")
        if typ != "SOCK_RAW"
        else "rawip_socket",
    )
    verb = (
        "bind"
        if "bind" in name
        else "connect"
        if "connect" in name
        else "listen"
        if "listen" in name
        else "accept"
        if "accept" in name
        else "write"
        if "send" in name
        else "create"
    )
    rules: dict[str, list[str]] = {
        "apparmor": [f"AppArmor    network {aa_fam} {aa_type},"],
        "selinux": [f"SELinux     allow <domain_t> self:{se_cls} {{ create {verb} }};"],
    }
    if verb == "bind" and port is not None:
        rules["selinux"].append(
            f"SELinux     allow <domain_t> <port_t>:{se_cls} name_bind;"
            f"  (semanage port -l | grep -w {port})"
        )
    if port is not None and tcp and verb in ("bind", "connect"):
        right = "BIND_TCP" if verb == "bind" else "CONNECT_TCP"
        rules["landlock"] = [
            f"Landlock    LANDLOCK_ACCESS_NET_{right} in a net_port rule "
            f"for port {port}"
        ]
    if fam == "AF_UNIX" and str(obj.get("path", "")).startswith("@"):
        rules["landlock"] = [
            "Landlock    the sandbox set LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET"
        ]
    caps = []
    if verb == "bind" and isinstance(port, int) and 0 < port < 1024:
        caps.append("CAP_NET_BIND_SERVICE")
    if typ == "SOCK_RAW" or fam == "AF_PACKET":
        caps.append("CAP_NET_RAW")
    if caps:
        rules["capability"] = [_caps(c)[0] for c in caps]
    return rules


def _avc(obj: Mapping[str, Any]) -> list[str]:
    tclass = str(obj.get("tclass") or "?")
    denied = _int(obj.get("denied"))
    names = SELINUX_PERMS.get(tclass)
    if tclass in ("capability", "capability2"):
        from lsmtrace.events import CAP_NAMES

        base = 32 if tclass == "capability2" else 0
        perms = [
            CAP_NAMES[base + b].removeprefix("CAP_").lower()
            if base + b < len(CAP_NAMES)
            else f"cap{base + b}"
            for b in range(32)
            if denied >> b & 1
        ]
    elif names:
        perms = [
            names[b] if b < len(names) else f"0x{1 << b:x}"
            for b in range(32)
            if denied >> b & 1
        ]
    else:
        perms = [f"0x{denied:x}"] if denied else ["<perm>"]
    return _selinux_allow(obj.get("scontext"), obj.get("tcontext"), tclass, perms)


def _selinux_allow(scon: Any, tcon: Any, tclass: str, perms: list[str]) -> list[str]:
    """The allow rule of an AVC as audit2allow writes it: the source and
    target types of the contexts, `self` when they are one type."""

    def typ(ctx: str) -> str:
        parts = ctx.split(":")
        return parts[2] if len(parts) >= 3 else (ctx or "<type>")

    src, tgt = typ(str(scon or "")), typ(str(tcon or ""))
    tgt = "self" if tgt == src else tgt
    out = [
        f"SELinux     allow {escape(src)} {escape(tgt)}:{escape(tclass)} "
        f"{{ {' '.join(escape(p) for p in perms) or '<perm>'} }};"
    ]
    out.append("            (check: ausearch -m avc -ts recent | audit2allow)")
    return out


# AppArmor's audit masks (security/apparmor/file.c aa_audit_file: "rwxamlkcdx"
# letters, c create, d delete, k lock) -> the profile's permission letters
AA_MASK = {
    "r": "r",
    "w": "w",
    "a": "a",
    "x": "ix",
    "m": "m",
    "l": "l",
    "k": "k",
    "c": "w",
    "d": "w",
}


def _apparmor_audit(a: Mapping[str, Any], obj: Mapping[str, Any]) -> list[str]:
    """The rule for the profile that denied, from its AVC record."""
    from lsmtrace.policy.apparmor import escape_literal

    profile = escape(str(a.get("profile") or a.get("label") or "?"))
    where = f"   (in profile {profile})"
    peer = f" peer={escape(str(a['peer']))}" if a.get("peer") else ""
    if a.get("capname"):
        return [f"AppArmor    capability {escape(str(a['capname']))},{where}"]
    if a.get("signal"):
        return [
            f"AppArmor    signal (send) set=({escape(str(a['signal']))}){peer},{where}"
        ]
    if a.get("class") == "ptrace" or str(a.get("operation", "")).startswith("ptrace"):
        mask = escape(str(a.get("denied") or a.get("requested") or "trace"))
        return [f"AppArmor    ptrace ({mask}){peer},{where}"]
    name = a.get("name") or obj.get("path")
    mask = str(a.get("denied") or a.get("requested") or "")
    if name and mask:
        letters = ""
        for c in mask:
            for p in AA_MASK.get(c, ""):
                if p not in letters:
                    letters += p
        if "w" in letters:
            letters = letters.replace("a", "")
        letters = "".join(sorted(letters, key="rwalkmix".index))
        path = escape_literal(str(name))
        return [f'AppArmor    "{path}" {letters},{where}']
    op = escape(str(a.get("operation") or "?"))
    return [
        f"AppArmor    operation {op} needs a rule{where}: aa-logprof reads the "
        "audit log and proposes it"
    ]


def _landlock_audit(a: Mapping[str, Any], obj: Mapping[str, Any]) -> list[str]:
    """The rights the domain lacks (its `blockers`), and who created it."""
    path = escape(str(a.get("path") or obj.get("path") or "<path>"))
    out = []
    for b in a.get("blockers") or []:
        scope, _, right = str(b).partition(".")
        name = escape(right.upper())
        if scope == "fs":
            on_dir = right.startswith(("make_", "remove_")) or right == "refer"
            where = (
                f"the directory of {path}"
                if on_dir
                else f"{path} (or a parent directory)"
            )
            out.append(
                f"Landlock    LANDLOCK_ACCESS_FS_{name} in a path_beneath rule on {where}"
            )
        elif scope == "net":
            port = a.get("lport") or a.get("dest") or obj.get("port") or "<port>"
            out.append(
                f"Landlock    LANDLOCK_ACCESS_NET_{name} in a net_port rule for "
                f"port {escape(str(port))}"
            )
        elif scope == "scope":
            out.append(
                f"Landlock    the domain sets LANDLOCK_SCOPE_{name}: the sandbox "
                "must not set that scope"
            )
        else:
            out.append(f"Landlock    the domain lacks {escape(str(b))}")
    if not out:
        out.append("Landlock    the record names no blocker")
    dom = a.get("domain")
    if dom:
        who = ""
        if a.get("domain_exe") or a.get("domain_pid"):
            who = (
                f", created by {escape(str(a.get('domain_exe') or '?'))}"
                f" pid {a.get('domain_pid')}"
            )
        out.append(
            f"            (domain {escape(str(dom))}{who}: the ruleset that "
            "process restricted itself with)"
        )
    return out


def _seccomp_audit(a: Mapping[str, Any], ev: Mapping[str, Any]) -> list[str]:
    call = ev.get("syscall") or f"syscall {a.get('syscall')}"
    return [
        f"seccomp     a seccomp filter refused {escape(str(call))} (action "
        f"{escape(str(a.get('action') or '?'))}): no LSM rule allows it; change the "
        "filter the process or an ancestor installed (systemd SystemCallFilter=, "
        "a container runtime's seccomp profile, the program itself)"
    ]


def audit_rules(ev: Mapping[str, Any]) -> tuple[str, list[str]] | None:
    """(the LSM, the rule that would allow it) from the event's joined audit
    record; None without one (or for one this module cannot word)."""
    a = ev.get("audit")
    if not isinstance(a, Mapping) or a.get("result") == "allowed":
        return None
    obj = ev.get("object") or {}
    if not isinstance(obj, Mapping):
        obj = {}
    lsm = a.get("lsm")
    if lsm == "apparmor":
        return "apparmor", _apparmor_audit(a, obj)
    if lsm == "selinux":
        perms = [str(p) for p in a.get("perms") or []]
        return "selinux", _selinux_allow(
            a.get("scontext"), a.get("tcontext"), str(a.get("tclass") or "?"), perms
        )
    if lsm == "landlock":
        return "landlock", _landlock_audit(a, obj)
    if lsm == "seccomp":
        return "seccomp", _seccomp_audit(a, ev)
    return None


def would_deny_lines(ev: Mapping[str, Any]) -> list[str]:
    """What the candidate policy of the live audit mode (--policy) lacks."""
    w = ev.get("would_deny")
    if not isinstance(w, Mapping):
        return []
    out = [
        f"Would deny: policy {escape(str(w.get('policy')))} ({escape(str(w.get('target')))}"
        f"), {escape(str(w.get('context') or '?'))}"
    ]
    out += [f"  needs {escape(str(x))}" for x in w.get("access") or []]
    out.append("Rule the policy lacks:")
    out += [f"  {escape(str(m))}" for m in w.get("missing") or []]
    return out


def explain(ev: Mapping[str, Any]) -> list[str]:
    """Plain text lines: verdict, who decided, the rule that would allow it."""
    verdict = ev.get("verdict")
    hook = str(ev.get("hook") or "?")
    errno = ev.get("errno") or ""
    lsm = ev.get("lsm")
    rung = ev.get("rung") or "?"
    comm = escape(str(ev.get("comm") or "?"))
    who = f"{comm}[{ev.get('tgid', ev.get('pid'))}] uid {ev.get('uid')} euid {ev.get('euid')}"
    obj = ev.get("object") or {}
    if not isinstance(obj, Mapping):
        obj = {}
    lines: list[str] = []
    if verdict == "allow":
        lines.append(f"ALLOWED  {hook}: {who}")
        if "would_deny" in ev:  # the candidate policy's answer first
            lines += would_deny_lines(ev)
            lines.append("Under a confining policy the rules below keep it allowed.")
        else:
            lines.append(
                "No rule needed. Under a confining policy the rules below keep "
                "it allowed."
            )
    elif verdict == "error":
        lines.append(f"FAILED   {hook} {errno}: {who}")
        lines.append(
            f"{errno} is a failure, not a security decision: no LSM or DAC said no."
        )
        return lines
    else:
        lines.append(f"DENIED   {hook} {errno}: {who}")

    kind = ev.get("kind")
    name = _name(ev)
    cap = (
        str(obj.get("cap_name") or "") if kind == "capable" or hook == "capable" else ""
    )
    raw_path = str(obj.get("path") or obj.get("filename") or "")
    path = escape(raw_path)
    uid = _int(ev.get("euid", ev.get("uid")))

    # -- who decided
    if verdict == "deny":
        if lsm is None:
            lines.append(
                f"Who: cannot tell on the {rung} rung (DAC, AppArmor, Landlock, "
                "SELinux... all fail the syscall the same way). The fexit or "
                "kprobe rung names the decider; `lsmtrace doctor` says which "
                "loads here."
            )
        elif lsm == "unattributed":
            lines.append(
                "Who: a security_* hook denied, but none of the traced LSM "
                "implementations did (an untraced LSM or a BPF-LSM program)."
            )
        else:
            said = (
                " (its audit record says so)" if ev.get("lsm_source") == "audit" else ""
            )
            lines.append(f"Who: {LSM_NAMES.get(str(lsm), str(lsm))}{said}.")
        if cap in DAC_CAPS:
            lines.append(
                f"{cap} was checked after the mode bits said no: this is the DAC "
                "decision itself; the file's permissions are the real answer."
            )
        elif cap and kind == "capable":
            lines.append(
                f"The process lacks {cap}. Programs often probe capabilities and "
                "recover; it matters if the syscall that asked "
                f"({ev.get('syscall') or '?'}) failed."
            )
    if verdict == "deny":
        lines += would_deny_lines(ev)
    from_audit = audit_rules(ev) if verdict == "deny" else None
    if from_audit is not None:
        a = ev["audit"]
        lines.append(
            f"Audit record: {escape(str(a.get('rule') or from_audit[0]))} "
            f"(serial {a.get('serial')})"
        )
        if a.get("disagrees"):
            lines.append(
                f"The record names {from_audit[0]}, the rung {lsm}: both rules "
                "are below."
            )
    if ev.get("syscall"):
        lines.append(f"Syscall: {ev.get('syscall')}")

    # -- candidate rules per target
    rules: dict[str, list[str]] = {}
    family = ev.get("family")
    if cap:
        rules["capability"] = _caps(cap)[:1]
        rules["apparmor"] = _caps(cap)[1:2]
        rules["selinux"] = _caps(cap)[2:3]
    elif kind == "avc" or hook == "selinux_audited":
        rules["selinux"] = _avc(obj)
        if obj.get("result") == 0:
            lines.append(
                "SELinux is permissive for this domain: denied in the log, "
                "allowed in fact."
            )
    elif "sig" in obj and ("kill" in name):
        rules = _signal_rules(ev, obj)
    elif family == "ptrace" or "ptrace" in name:
        rules = _ptrace_rules(obj)
    elif family == "network" or name.startswith("socket_") or "family" in obj:
        rules = _net_rules(ev, obj)
    elif "source" in obj or family == "mount":
        src = escape(str(obj.get("source") or "<source>"))
        fst = escape(str(obj.get("fstype") or "<fstype>"))
        rules = {
            "apparmor": [f"AppArmor    mount fstype={fst} {src} -> <mountpoint>,"],
            "selinux": ["SELinux     allow <domain_t> <fs_t>:filesystem mount;"],
            "capability": ["capability  CAP_SYS_ADMIN (in the mount's user namespace)"],
        }
    elif lsm == "lockdown" or hook == "locked_down":
        rules = {
            "lockdown": [
                f"lockdown    {obj.get('reason', 'this operation')} is refused "
                "by kernel lockdown; no policy rule allows it (boot without "
                "lockdown=, or with Secure Boot off)"
            ]
        }
    elif path:
        access = file_access(ev)
        lines.append(f"Access: {', '.join(access)} on {path}")
        dac = _dac_file(path, access, uid)
        rules = {
            "dac": dac[:-1],
            "capability": dac[-1:],
            "apparmor": [_apparmor_file(raw_path, access, comm)],
            "selinux": _selinux_file(access),
            "landlock": [_landlock_file(path, access)],
            "tomoyo": _tomoyo_file(raw_path, access, comm),
            "smack": [
                "Smack       a rule giving the subject's label the access on "
                "the file's label (chsmack -a to relabel)"
            ],
        }
    if name in SYSCALL_CAPS and lsm == "capability" and not cap:
        grant = _caps(SYSCALL_CAPS[name])[0]
        rules["capability"] = [
            grant,
            *(r for r in rules.get("capability", []) if SYSCALL_CAPS[name] not in r),
        ]
    if (family == "bpf" or name == "bpf") and "capability" not in rules:
        rules["capability"] = _caps("CAP_BPF")[:1]
    if from_audit is not None:
        # the record's own rule, for the profile or contexts that denied
        rules[from_audit[0]] = from_audit[1]

    if not rules:
        if verdict == "deny":
            lines.append(
                "No rule template for this hook; the policy of the deciding "
                "LSM is the place to look."
            )
        return lines

    if verdict == "deny" and from_audit is not None and lsm in (None, "unattributed"):
        lsm = from_audit[0]  # the rung could not tell; the record does
    if verdict == "deny" and lsm not in (None, "unattributed"):
        decider = "dac" if lsm == "dac" else str(lsm)
        chosen = rules.get(decider, [])
        if from_audit is not None and from_audit[0] != decider:
            chosen = [*chosen, *from_audit[1]]  # they disagree: both
        if decider == "capability" and not chosen:
            chosen = rules.get("dac", [])
        # a capability bypasses DAC and Yama's scope 2, never a MAC policy
        extra = rules.get("capability", []) if decider in ("dac", "yama") else []
        lines.append("Rule that would allow it:")
        lines.extend("  " + r for r in chosen or [f"{decider} policy: no template"])
        lines.extend("  " + r for r in extra if r not in chosen)
        return lines

    heading = (
        "Rules that would allow it, per target:"
        if verdict == "deny"
        else "Rules that allow it, per target:"
    )
    lines.append(heading)
    order = (
        "dac",
        "capability",
        "apparmor",
        "selinux",
        "landlock",
        "tomoyo",
        "yama",
        "smack",
        "lockdown",
    )
    for target in order:
        lines.extend("  " + r for r in rules.get(target, []))
    return lines
