#!/usr/bin/env python3
"""Write vmlinux-excerpt.btf: the types reachable from a few LSM functions.

Usage (from the repository root)::

    python3 tests/data/btf/make_excerpt.py [/sys/kernel/btf/vmlinux]

Keeps, for the hooks in HOOKS, the ``bpf_lsm_*`` stub, the ``security_*``
wrapper(s) and every implementation the catalogue finds, plus a few extra
functions (BPF-LSM helpers that are not hooks, a variadic function, a
function-pointer parameter).  Structs and unions are written without members
(their size is kept), except those in KEEP_MEMBERS; enums keep their values.
Types are renumbered in their original order; strings are rebuilt.
"""

from __future__ import annotations

import os
import struct
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from lsmtrace import btf as B
from lsmtrace.hooks import build_catalogue

HOOKS = [
    "file_open",
    "file_permission",
    "bprm_check_security",
    "capable",
    "locked_down",
    "mmap_file",
    "inode_rename",
    "sb_mount",
    "sb_alloc_security",
    "sb_free_mnt_opts",
    "task_kill",
    "task_fix_setuid",
    "socket_connect",
    "unix_may_send",
    "inode_setxattr",
    "inode_free_security_rcu",
    "settime",
    "cred_prepare",
    "kernel_read_file",
    "bpf",
    "path_chmod",
]
EXTRA_FUNCS = [
    "bpf_lsm_verify_prog",
    "bpf_lsm_is_sleepable_hook",
    "bpf_lsm_find_cgroup_shim",
    "bpf_lsm_init",
    "security_init",
    "security_compute_av",
    "__warn_printk",
    "__rpm_callback",
]
KEEP_MEMBERS = {"timespec64", "timezone", "linux_binprm"}


def main(src: str) -> None:
    btf = B.load(src)
    funcs = btf.func_ids()
    cat = build_catalogue(btf, os.uname().release)
    names: list[str] = []
    for h in HOOKS:
        hook = cat.hooks[h]
        names.append("bpf_lsm_" + h)
        if hook.function:
            names.append(hook.function)
        names.extend(i.function for i in cat.impls.get(h, ()))
    names.extend(n for n in EXTRA_FUNCS if n in funcs)
    roots = sorted({funcs[n] for n in names})

    keep: set[int] = set()
    stack = list(roots)
    while stack:
        tid = stack.pop()
        if tid == 0 or tid in keep:
            continue
        keep.add(tid)
        _name, info, ref, payload = btf.record(tid)
        kind = (info >> 24) & 0x1F
        if kind in (
            B.KIND_PTR,
            B.KIND_TYPEDEF,
            B.KIND_CONST,
            B.KIND_VOLATILE,
            B.KIND_RESTRICT,
            B.KIND_TYPE_TAG,
            B.KIND_FUNC,
        ):
            stack.append(ref)
        elif kind == B.KIND_ARRAY:
            stack.extend(payload[:2])
        elif kind == B.KIND_FUNC_PROTO:
            stack.append(ref)
            stack.extend(payload[1::2])
        elif kind in (B.KIND_STRUCT, B.KIND_UNION) and btf.name(tid) in KEEP_MEMBERS:
            stack.extend(payload[1::3])

    new_id = {old: i + 1 for i, old in enumerate(sorted(keep))}
    new_id[0] = 0
    strings = bytearray(b"\0")
    str_off: dict[int, int] = {0: 0}

    def s(off: int) -> int:
        if off not in str_off:
            str_off[off] = len(strings)
            strings.extend(btf.string(off).encode() + b"\0")
        return str_off[off]

    words: list[int] = []
    for old in sorted(keep):
        name, info, ref, payload = btf.record(old)
        kind = (info >> 24) & 0x1F
        out = list(payload)
        if kind in (
            B.KIND_PTR,
            B.KIND_TYPEDEF,
            B.KIND_CONST,
            B.KIND_VOLATILE,
            B.KIND_RESTRICT,
            B.KIND_TYPE_TAG,
            B.KIND_FUNC,
            B.KIND_FUNC_PROTO,
        ):
            ref = new_id[ref]
        if kind == B.KIND_ARRAY:
            out[0], out[1] = new_id[out[0]], new_id[out[1]]
        elif kind == B.KIND_FUNC_PROTO:
            for k in range(0, len(out), 2):
                out[k], out[k + 1] = s(out[k]), new_id[out[k + 1]]
        elif kind in (B.KIND_STRUCT, B.KIND_UNION):
            if btf.name(old) in KEEP_MEMBERS:
                for k in range(0, len(out), 3):
                    out[k], out[k + 1] = s(out[k]), new_id[out[k + 1]]
            else:
                out = []
                info &= ~0xFFFF
        elif kind in (B.KIND_ENUM, B.KIND_ENUM64):
            step = 2 if kind == B.KIND_ENUM else 3
            for k in range(0, len(out), step):
                out[k] = s(out[k])
        words += [s(name), info, ref, *out]

    type_sec = struct.pack(f"<{len(words)}I", *words)
    header = struct.pack(
        "<HBBIIIII",
        B.BTF_MAGIC,
        1,
        0,
        B.HEADER_LEN,
        0,
        len(type_sec),
        len(type_sec),
        len(strings),
    )
    out_path = Path(__file__).with_name("vmlinux-excerpt.btf")
    out_path.write_bytes(header + type_sec + bytes(strings))
    print(
        f"{out_path}: {len(keep)} types, {len(roots)} functions, "
        f"{out_path.stat().st_size} bytes, kernel {os.uname().release}"
    )


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/sys/kernel/btf/vmlinux")
