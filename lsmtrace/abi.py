"""ctypes mirrors of bpf/lsmtrace.h and its enums; nothing else.

tests/unit/test_abi.py compiles bpf/layout_check.c with the host compiler and
compares every struct's size and field offsets with these mirrors.
"""

from __future__ import annotations

import ctypes as ct
import enum
from importlib import resources
from pathlib import Path

ABI_VERSION = 2

# The BPF sources are package data (lsmtrace/bpf/, in the sdist and the wheel;
# the checkout's top-level bpf/ is a symlink to it): one copy, found the same
# way installed or not. bcc needs a real directory for -I; a package is only
# ever installed unpacked.
BPF_DIR = Path(str(resources.files("lsmtrace") / "bpf"))

COMM_LEN = 16
PATH_LEN = 256
NAME_LEN = 64
MAX_IDS = 2048
SYSCALL_BASE = 1024
MAX_SYSCALL = 1024
LAT_BUCKETS = 32
NONE_ARG = 255
PROC_BUF = 336
QUIET_SITES = 16
CAP_OPT_NOAUDIT = 2
ID_CAPABLE = SYSCALL_BASE - 1
ID_AVC = SYSCALL_BASE - 2
ID_SIGNAL = SYSCALL_BASE - 3


class Kind(enum.IntEnum):
    HOOK = 1
    SYSCALL = 2
    CAPABLE = 3
    AVC = 4
    EXEC = 5
    FORK = 6
    EXIT = 7
    SIGNAL = 8


class Rung(enum.IntEnum):
    FEXIT = 1
    KPROBE = 2
    TRACEPOINT = 3


class Lsm(enum.IntEnum):
    UNKNOWN = 0
    DAC = 1
    CAPABILITY = 2
    SELINUX = 3
    APPARMOR = 4
    SMACK = 5
    TOMOYO = 6
    LANDLOCK = 7
    YAMA = 8
    LOCKDOWN = 9
    BPF = 10
    SAFESETID = 11
    LOADPIN = 12
    IPE = 13
    INTEGRITY = 14
    HOOK = 15
    SECCOMP = 16


class ObjType(enum.IntEnum):
    NONE = 0
    FILE = 1
    CAP = 2
    SOCK = 3
    SIGNAL = 4
    PTRACE = 5
    EXEC = 6
    MEM = 7
    MOUNT = 8
    SETID = 9
    MODULE = 10
    BPF = 11
    LOCKDOWN = 12
    AVC = 13
    PROC = 14
    NICE = 15


class PathKind(enum.IntEnum):
    NONE = 0
    EXACT = 1
    JOINED = 2
    AS_GIVEN = 3
    FS_RELATIVE = 4


PATH_KIND_NAMES: dict[int, str] = {
    int(k): k.name.lower() for k in PathKind if k != PathKind.NONE
}


class Stat(enum.IntEnum):
    SEEN = 0
    FILTERED = 1
    ATTEMPTED = 2
    LOST = 3
    MAP_FULL = 4
    READ_ERR = 5


STAT_MAX = 8


class Decoder(enum.IntEnum):
    NONE = 0
    PATH = 1
    PATH2 = 2
    EXEC = 3
    KILL = 4
    PTRACE = 5
    MEM = 6
    SOCKET = 7
    SOCKADDR = 8
    MSGHDR = 9
    SETID = 10
    MOUNT = 11
    FD = 12
    MODNAME = 13
    BPF = 14
    NICE = 15
    OPEN = 16


class HookDecoder(enum.IntEnum):
    """enum lsmt_hdec: how a hook rung's program decodes its hook's object."""

    NONE = 0
    FILE = 1
    FILE_MASK = 2
    MMAP = 3
    MPROTECT = 4
    BPRM = 5
    CAP = 6
    KILL = 7
    PTRACE = 8
    SETID = 9
    SETGID = 10
    NICE = 11
    SOCK_CREATE = 12
    SOCKADDR = 13
    SOCK = 14
    SENDMSG = 15
    MOUNT = 16
    UMOUNT = 17
    PATH2 = 18
    KSTR = 19
    LOAD_DATA = 20
    READ_FILE = 21
    BPF = 22
    LOCKDOWN = 23
    INODE = 24
    DENTRY = 25
    DENTRY2 = 26
    PATH = 27
    PATHD = 28
    PATHD2 = 29
    TASK = 30


class CfgFlag(enum.IntFlag):
    STREAM = 1 << 0
    DENIED_ONLY = 1 << 1
    PID = 1 << 2
    UID = 1 << 3
    COMM = 1 << 4
    CGROUP = 1 << 5
    PROC_EVENTS = 1 << 6
    LATENCY = 1 << 7
    CHILDREN = 1 << 8


class EvFlag(enum.IntFlag):
    TRUNCATED = 1 << 0
    READ_ERR = 1 << 1
    ATTRIBUTED = 1 << 2
    NOAUDIT_OPTS = 1 << 3
    NOAUDIT_CALL_SITE = 1 << 4
    CONTEXT = 1 << 5


class ExecFlag(enum.IntFlag):
    ARGV_TRUNCATED = 1 << 0
    AS_GIVEN = 1 << 1


class Config(ct.Structure):
    _fields_ = [
        ("flags", ct.c_uint32),
        ("uid", ct.c_uint32),
        ("cgroup_id", ct.c_uint64),
        ("comm", ct.c_char * COMM_LEN),
        ("self_tgid", ct.c_uint32),
        ("pad", ct.c_uint32),
    ]


class CountKey(ct.Structure):
    _fields_ = [("id", ct.c_uint16), ("lsm", ct.c_uint16), ("err", ct.c_int32)]


class LatKey(ct.Structure):
    _fields_ = [("id", ct.c_uint16), ("bucket", ct.c_uint16), ("pad", ct.c_uint32)]


class Pending(ct.Structure):
    _fields_ = [
        ("ts_ns", ct.c_uint64),
        ("ret", ct.c_int32),
        ("lsm", ct.c_uint16),
        ("id", ct.c_uint16),
        ("syscall", ct.c_int32),
        ("pad", ct.c_uint32),
    ]


class Site(ct.Structure):
    _fields_ = [("start", ct.c_uint64), ("end", ct.c_uint64)]


class SysDesc(ct.Structure):
    _fields_ = [
        ("enabled", ct.c_uint8),
        ("decoder", ct.c_uint8),
        ("obj_type", ct.c_uint8),
        ("arg", ct.c_uint8 * 4),
        ("pad", ct.c_uint8),
    ]


class EntryKey(ct.Structure):
    _fields_ = [("pid_tgid", ct.c_uint64), ("id", ct.c_uint32), ("pad", ct.c_uint32)]


class Entry(ct.Structure):
    _fields_ = [("ts_ns", ct.c_uint64), ("args", ct.c_uint64 * 4)]


class ObjFile(ct.Structure):
    _fields_ = [
        ("ino", ct.c_uint64),
        ("dev", ct.c_uint32),
        ("mode", ct.c_uint32),
        ("flags", ct.c_uint32),
        ("mask", ct.c_uint32),
        ("dfd", ct.c_int32),
        ("path_kind", ct.c_uint16),
        ("pad", ct.c_uint16),
        ("path", ct.c_char * PATH_LEN),
        ("name", ct.c_char * NAME_LEN),
    ]


class ObjCap(ct.Structure):
    _fields_ = [
        ("cap", ct.c_int32),
        ("opts", ct.c_uint32),
        ("ns_inum", ct.c_uint32),
        ("pad", ct.c_uint32),
    ]


class ObjSock(ct.Structure):
    _fields_ = [
        ("family", ct.c_uint16),
        ("port", ct.c_uint16),
        ("type", ct.c_int32),
        ("protocol", ct.c_int32),
        ("addrlen", ct.c_uint32),
        ("addr", ct.c_uint8 * 16),
        # bytes, not c_char: an abstract name starts with a NUL
        ("path", ct.c_uint8 * 108),
        ("pad", ct.c_uint32),
    ]


class ObjSignal(ct.Structure):
    _fields_ = [
        ("sig", ct.c_int32),
        ("target_pid", ct.c_int32),
        ("target_comm", ct.c_char * COMM_LEN),
    ]


class ObjPtrace(ct.Structure):
    _fields_ = [
        ("target_pid", ct.c_int32),
        ("mode", ct.c_uint32),
        ("request", ct.c_int64),
        ("target_comm", ct.c_char * COMM_LEN),
    ]


class ObjMem(ct.Structure):
    _fields_ = [
        ("addr", ct.c_uint64),
        ("len", ct.c_uint64),
        ("prot", ct.c_uint32),
        ("reqprot", ct.c_uint32),
        ("flags", ct.c_uint32),
        ("fd", ct.c_int32),
        ("path", ct.c_char * PATH_LEN),
    ]


class ObjSetid(ct.Structure):
    _fields_ = [("ids", ct.c_int32 * 3), ("flags", ct.c_uint32)]


class ObjBpf(ct.Structure):
    _fields_ = [("cmd", ct.c_int32), ("size", ct.c_uint32)]


class ObjLockdown(ct.Structure):
    _fields_ = [("reason", ct.c_uint32), ("pad", ct.c_uint32)]


class ObjAvc(ct.Structure):
    _fields_ = [
        ("requested", ct.c_uint32),
        ("denied", ct.c_uint32),
        ("audited", ct.c_uint32),
        ("result", ct.c_int32),
        ("tclass", ct.c_char * 32),
        ("scontext", ct.c_char * 96),
        ("tcontext", ct.c_char * 96),
    ]


class ObjProc(ct.Structure):
    _fields_ = [
        ("child_pid", ct.c_int32),
        ("exit_code", ct.c_int32),
        ("filename_len", ct.c_uint16),
        ("argv_len", ct.c_uint16),
        ("flags", ct.c_uint16),
        ("given_len", ct.c_uint16),
        # bytes, not c_char: argv is NUL-separated (c_char arrays stop at a NUL)
        ("buf", ct.c_uint8 * PROC_BUF),
    ]


class ObjNice(ct.Structure):
    _fields_ = [
        ("nice", ct.c_int32),
        ("target_pid", ct.c_int32),
        ("which", ct.c_int32),
        ("who", ct.c_int32),
        ("target_comm", ct.c_char * COMM_LEN),
    ]


class Object(ct.Union):
    _fields_ = [
        ("file", ObjFile),
        ("cap", ObjCap),
        ("sock", ObjSock),
        ("signal", ObjSignal),
        ("ptrace", ObjPtrace),
        ("mem", ObjMem),
        ("setid", ObjSetid),
        ("bpf", ObjBpf),
        ("lockdown", ObjLockdown),
        ("avc", ObjAvc),
        ("proc", ObjProc),
        ("nice", ObjNice),
    ]


class Event(ct.Structure):
    _fields_ = [
        ("ts_ns", ct.c_uint64),
        ("latency_ns", ct.c_uint64),
        ("cgroup_id", ct.c_uint64),
        ("kind", ct.c_uint16),
        ("rung", ct.c_uint16),
        ("id", ct.c_uint16),
        ("lsm", ct.c_uint16),
        ("ret", ct.c_int32),
        ("syscall", ct.c_int32),
        ("pid", ct.c_uint32),
        ("tgid", ct.c_uint32),
        ("ppid", ct.c_uint32),
        ("uid", ct.c_uint32),
        ("euid", ct.c_uint32),
        ("gid", ct.c_uint32),
        ("mntns", ct.c_uint32),
        ("obj_type", ct.c_uint16),
        ("flags", ct.c_uint16),
        ("comm", ct.c_char * COMM_LEN),
        ("obj", Object),
    ]


EVENT_SIZE = ct.sizeof(Event)

# Every struct of lsmtrace.h, by its C name, for the layout check.
STRUCTS: dict[str, type[ct.Structure] | type[ct.Union]] = {
    "lsmt_config": Config,
    "lsmt_count_key": CountKey,
    "lsmt_lat_key": LatKey,
    "lsmt_pending": Pending,
    "lsmt_site": Site,
    "lsmt_sys_desc": SysDesc,
    "lsmt_entry_key": EntryKey,
    "lsmt_entry": Entry,
    "lsmt_obj_file": ObjFile,
    "lsmt_obj_cap": ObjCap,
    "lsmt_obj_sock": ObjSock,
    "lsmt_obj_signal": ObjSignal,
    "lsmt_obj_ptrace": ObjPtrace,
    "lsmt_obj_mem": ObjMem,
    "lsmt_obj_setid": ObjSetid,
    "lsmt_obj_bpf": ObjBpf,
    "lsmt_obj_lockdown": ObjLockdown,
    "lsmt_obj_avc": ObjAvc,
    "lsmt_obj_proc": ObjProc,
    "lsmt_obj_nice": ObjNice,
    "lsmt_object": Object,
    "lsmt_event": Event,
}

LSM_NAMES = {
    Lsm.UNKNOWN: None,
    Lsm.DAC: "dac",
    Lsm.CAPABILITY: "capability",
    Lsm.SELINUX: "selinux",
    Lsm.APPARMOR: "apparmor",
    Lsm.SMACK: "smack",
    Lsm.TOMOYO: "tomoyo",
    Lsm.LANDLOCK: "landlock",
    Lsm.YAMA: "yama",
    Lsm.LOCKDOWN: "lockdown",
    Lsm.BPF: "bpf",
    Lsm.SAFESETID: "safesetid",
    Lsm.LOADPIN: "loadpin",
    Lsm.IPE: "ipe",
    Lsm.INTEGRITY: "integrity",
    Lsm.HOOK: "unattributed",
    Lsm.SECCOMP: "seccomp",
}
LSM_IDS = {name: lsm for lsm, name in LSM_NAMES.items() if name}
# Names used in /sys/kernel/security/lsm that map onto one of ours.
LSM_IDS.update({"ima": Lsm.INTEGRITY, "evm": Lsm.INTEGRITY})


_LSM_BY_INT: dict[int, str | None] = {int(k): v for k, v in LSM_NAMES.items()}


def lsm_name(value: int) -> str | None:
    # a plain-int table: an Lsm() call per event costs as much as the lookup
    return _LSM_BY_INT.get(value, f"lsm{value}")
