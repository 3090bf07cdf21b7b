"""What to compile and attach for a rung: the catalogue expanded into programs.

Pure (no bcc): tests/unit/test_bpfgen.py checks the generated text, and the
loader compiles it. The C bodies live in bpf/*.c; this module only writes one
short wrapper per traced function, naming the decoder and the hook id, because
bcc needs the traced function's name and arity in the program itself.
"""

from __future__ import annotations

import fnmatch
import logging
from dataclasses import dataclass, field

from lsmtrace import abi, syscalls
from lsmtrace.errors import UsageError
from lsmtrace.events import IdNames

log = logging.getLogger(__name__)

SCHED_TPS = (
    "sched:sched_process_fork",
    "sched:sched_process_exec",
    "sched:sched_process_exit",
)

# Hook decoders (enum lsmt_hdec in bpf/hooks.bpf.c): hook name -> (decoder, args).
# Args are the wrapper's argument positions the decoder reads.
HOOK_DECODERS: dict[str, tuple[str, tuple[int, ...]]] = {
    "file_open": ("FILE", (0,)),
    "file_permission": ("FILE_MASK", (0, 1)),
    "file_ioctl": ("FILE_MASK", (0, 1)),
    "file_truncate": ("FILE", (0,)),
    "file_receive": ("FILE", (0,)),
    "file_lock": ("FILE_MASK", (0, 1)),
    "file_fcntl": ("FILE_MASK", (0, 1)),
    "mmap_file": ("MMAP", (0, 1, 2)),
    "file_mprotect": ("MPROTECT", (0, 1, 2)),
    "bprm_check_security": ("BPRM", (0,)),
    "bprm_creds_for_exec": ("BPRM", (0,)),
    "bprm_creds_from_file": ("BPRM", (0,)),
    "capable": ("CAP", (2, 3)),
    "task_kill": ("KILL", (0, 2)),
    "ptrace_access_check": ("PTRACE", (0, 1)),
    "ptrace_traceme": ("PTRACE", (0, -1)),
    "task_fix_setuid": ("SETID", (0, 2)),
    "task_fix_setgid": ("SETGID", (0, 2)),
    "task_setnice": ("NICE", (0, 1)),
    "socket_create": ("SOCK_CREATE", (0, 1, 2)),
    "socket_connect": ("SOCKADDR", (0, 1, 2)),
    "socket_bind": ("SOCKADDR", (0, 1, 2)),
    "socket_listen": ("SOCK", (0,)),
    "socket_accept": ("SOCK", (0,)),
    "socket_sendmsg": ("SENDMSG", (0, 1)),
    "sb_mount": ("MOUNT", (0, 1, 2, 3)),
    "sb_umount": ("UMOUNT", (0, 1)),
    "move_mount": ("PATH2", (0, 1)),
    "kernel_module_request": ("KSTR", (0,)),
    "kernel_load_data": ("LOAD_DATA", (0,)),
    "kernel_read_file": ("READ_FILE", (0, 1)),
    "bpf": ("BPF", (0, 2)),
    "locked_down": ("LOCKDOWN", (0,)),
    "inode_permission": ("INODE", (0, 1)),
    "inode_setattr": ("DENTRY", (1,)),
    "inode_rename": ("DENTRY2", (1, 3)),
    "path_rename": ("PATHD2", (0, 1, 2, 3)),
    "path_chmod": ("PATH", (0, 1)),
    "path_chown": ("PATH", (0,)),
    "path_truncate": ("PATH", (0,)),
    "path_chroot": ("PATH", (0,)),
}

# Decoders chosen by the type of a wrapper's first parameters, for other hooks.
TYPE_DECODERS: tuple[tuple[tuple[str, ...], str, tuple[int, ...]], ...] = (
    (("struct file *",), "FILE", (0,)),
    (("const struct path *", "struct dentry *"), "PATHD", (0, 1)),
    (("struct inode *", "struct dentry *"), "DENTRY", (1,)),
    (("const struct path *",), "PATH", (0,)),
    (("struct dentry *",), "DENTRY", (0,)),
    (("struct inode *",), "INODE", (0, -1)),
    (("struct linux_binprm *",), "BPRM", (0,)),
    (("struct socket *",), "SOCK", (0,)),
    (("struct task_struct *",), "TASK", (0,)),
)

DECODER_OBJ = {
    "FILE": abi.ObjType.FILE, "FILE_MASK": abi.ObjType.FILE, "MMAP": abi.ObjType.MEM,
    "MPROTECT": abi.ObjType.MEM, "BPRM": abi.ObjType.EXEC, "CAP": abi.ObjType.CAP,
    "KILL": abi.ObjType.SIGNAL, "PTRACE": abi.ObjType.PTRACE, "SETID": abi.ObjType.SETID,
    "SETGID": abi.ObjType.SETID, "NICE": abi.ObjType.SETID, "SOCK_CREATE": abi.ObjType.SOCK,
    "SOCKADDR": abi.ObjType.SOCK, "SOCK": abi.ObjType.SOCK, "SENDMSG": abi.ObjType.SOCK,
    "MOUNT": abi.ObjType.MOUNT, "UMOUNT": abi.ObjType.FILE, "PATH2": abi.ObjType.FILE,
    "KSTR": abi.ObjType.MODULE, "LOAD_DATA": abi.ObjType.MODULE,
    "READ_FILE": abi.ObjType.MODULE, "BPF": abi.ObjType.BPF,
    "LOCKDOWN": abi.ObjType.LOCKDOWN, "INODE": abi.ObjType.FILE, "DENTRY": abi.ObjType.FILE,
    "DENTRY2": abi.ObjType.FILE, "PATH": abi.ObjType.FILE, "PATHD": abi.ObjType.FILE,
    "PATHD2": abi.ObjType.FILE, "TASK": abi.ObjType.SIGNAL, "NONE": abi.ObjType.NONE,
}  # fmt: skip


@dataclass(frozen=True)
class Program:
    kind: str  # kfunc | kretfunc | kprobe | kretprobe
    fn: str  # BPF function name
    target: str  # kernel function
    hook: str
    primary: bool  # the hook's own program (vs. attribution on an LSM impl)
    required: bool  # the hook is skipped when this fails


@dataclass
class Plan:
    rung: str
    source: str
    cflags: list[str]
    syscalls: list[syscalls.Syscall]
    tracepoints: list[str]
    programs: list[Program]
    id_names: IdNames
    skipped: dict[str, str] = field(default_factory=dict)


def bpf_source(*names: str, generated: str = "") -> str:
    """The program text: common.h and our .bpf.c files inline, then generated
    wrappers. bcc rewrites map method calls (``m.lookup()``) and generates
    tracepoint argument structs only in its main file, never in an included
    one, so every file that uses them is part of the main text."""
    names = ("common.h", *names)
    parts = [
        f"/* ---- bpf/{n} ---- */\n" + (abi.BPF_DIR / n).read_text() for n in names
    ]
    if generated:
        parts.append("/* ---- generated by lsmtrace/hookgen.py ---- */\n" + generated)
    return "\n".join(parts)


def struct_offsets() -> list[str]:
    """-D offsets of fields the BPF code reads from structs that are private
    to the kernel (struct mount, struct mnt_namespace) or whose header cannot
    be included (struct sock), read from BTF, so that the same C builds with
    the synthesized vmlinux.h and with real headers. Cached per kernel."""
    from lsmtrace.btf import cached_facts

    try:
        return list(cached_facts("offsets", _struct_offsets))
    except Exception as e:
        log.warning("struct offsets not in BTF (%s): paths stop at mount points, "
                    "mntns reads 0", e)  # fmt: skip
        return ["-DLSMT_NO_MOUNT_WALK=1", "-DLSMT_MOUNT_PARENT=0",
                "-DLSMT_MOUNT_MOUNTPOINT=0", "-DLSMT_MOUNT_MNT=0",
                "-DLSMT_MNTNS_INUM=0", "-DLSMT_SK_FAMILY=0", "-DLSMT_SK_NUM=0",
                "-DLSMT_SK_PROTOCOL=0"]  # fmt: skip


def _struct_offsets() -> list[str]:
    from lsmtrace.btf import load

    off = load().member_offset
    return [
        f"-DLSMT_MOUNT_PARENT={off('mount', 'mnt_parent')}",
        f"-DLSMT_MOUNT_MOUNTPOINT={off('mount', 'mnt_mountpoint')}",
        f"-DLSMT_MOUNT_MNT={off('mount', 'mnt')}",
        f"-DLSMT_MNTNS_INUM={off('mnt_namespace', 'ns.inum')}",
        # net/sock.h drags in linux/bpf.h, which bcc 0.26's own uapi bpf.h
        # cannot satisfy on 6.9+ kernels: struct sock fields by offset
        f"-DLSMT_SK_FAMILY={off('sock', '__sk_common.skc_family')}",
        f"-DLSMT_SK_NUM={off('sock', '__sk_common.skc_num')}",
        f"-DLSMT_SK_PROTOCOL={off('sock', 'sk_protocol')}",
    ]


def _matches_any(name: str, globs: list[str] | None) -> bool:
    return any(fnmatch.fnmatchcase(name, g) for g in globs or [])


def decoder_for(hook: str, params: tuple[str, ...]) -> tuple[str, tuple[int, ...]]:
    if hook in HOOK_DECODERS:
        return HOOK_DECODERS[hook]
    for types, dec, args in TYPE_DECODERS:
        if tuple(params[: len(types)]) == types:
            return dec, args
    return "NONE", ()


def _syscall_ids(
    selected: list[syscalls.Syscall], arch: str
) -> tuple[dict[int, str], dict[int, str]]:
    names: dict[int, str] = {}
    fams: dict[int, str] = {}
    for s in syscalls.SYSCALLS:
        nr = s.nr(arch)
        if nr is not None:
            names[syscalls.event_id(nr)] = s.event_name
            fams[syscalls.event_id(nr)] = s.family
    names[abi.ID_CAPABLE] = "capable"
    fams[abi.ID_CAPABLE] = "capability"
    names[abi.ID_AVC] = "selinux_audited"
    fams[abi.ID_AVC] = "selinux"
    names[abi.ID_SIGNAL] = "signal_generate"
    fams[abi.ID_SIGNAL] = "task"
    return names, fams


def _validate_globs(
    globs: list[str] | None, families: list[str] | None, arch: str
) -> None:
    """On the tracepoint rung, a glob must name a syscall or a hook a syscall exercises."""
    if globs:
        known = {"capable", "selinux_audited", "signal_generate"}
        for s in syscalls.SYSCALLS:
            known.update((s.event_name, s.name, *s.hooks))
        for g in globs:
            if not any(fnmatch.fnmatchcase(k, g) for k in known):
                import difflib

                close = difflib.get_close_matches(g, sorted(known), n=3)
                raise UsageError(
                    f"--hooks {g!r} matches nothing the tracepoint rung can observe",
                    hint=("did you mean: " + ", ".join(close))
                    if close
                    else "run `lsmtrace hooks` for the names on this kernel",
                )
    if families:
        fams = {s.family for s in syscalls.SYSCALLS} | {"capability", "selinux"}
        for f in families:
            if f not in fams:
                raise UsageError(f"unknown family {f!r}",
                                 hint="families: " + ", ".join(sorted(fams)))  # fmt: skip


def plan_tracepoint(
    globs: list[str] | None, families: list[str] | None, arch: str
) -> Plan:
    _validate_globs(globs, families, arch)
    chosen = syscalls.select(globs, families, arch)
    tps: list[str] = []
    cflags = ["-DLSMT_WITH_SCHED=1", *struct_offsets()]
    # globs and families add up, as in the catalogue's select()
    selecting = globs is not None or families is not None
    want_cap = (
        not selecting
        or _matches_any("capable", globs)
        or "capability" in (families or [])
    )
    if want_cap:
        tps.append("capability:cap_capable")
        cflags.append("-DLSMT_WITH_CAP_TP=1")
    want_avc = (
        not selecting
        or _matches_any("selinux_audited", globs)
        or "selinux" in (families or [])
    )
    if want_avc:
        tps.append("avc:selinux_audited")
        cflags.append("-DLSMT_WITH_AVC_TP=1")
    want_sig = (
        not selecting
        or _matches_any("signal_generate", globs)
        or "task" in (families or [])
    )
    if want_sig:
        tps.append("signal:signal_generate")
        cflags.append("-DLSMT_WITH_SIGNAL_TP=1")
    tps.extend(SCHED_TPS)
    names, fams = _syscall_ids(chosen, arch)
    return Plan(
        rung="tracepoint",
        source=bpf_source("syscalls.bpf.c"),
        cflags=cflags,
        syscalls=chosen,
        tracepoints=tps,
        programs=[],
        id_names=IdNames(names, fams),
    )
