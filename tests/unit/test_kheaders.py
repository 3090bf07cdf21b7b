"""The synthesized header tree's pruned vmlinux.h, and the start-up caches
(BTF facts, quiet capability sites) that keep a warm start short."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lsmtrace import kheaders, loader

# A vmlinux.h in bpftool's shape: one declaration per blank-line-separated
# block, dependencies first, forward declarations where a cycle needs them.
VMLINUX = """\
#ifndef __VMLINUX_H__
#define __VMLINUX_H__

#ifndef BPF_NO_PRESERVE_ACCESS_INDEX
#pragma clang attribute push (__attribute__((preserve_access_index)), apply_to = record)
#endif

typedef unsigned int __u32;

typedef __u32 u32;

typedef long long unsigned int u64;

struct list_head {
\tstruct list_head *next;
\tstruct list_head *prev;
};

enum pid_type {
\tPIDTYPE_PID = 0,
\tPIDTYPE_MAX = 1,
};

enum {
\tBPF_ANY = 0,
\tBPF_NOEXIST = 1,
};

struct task_struct;

typedef int (*task_cb_t)(struct task_struct *, u64);

typedef void cleanup_fn(struct unused_by_value *);

union lockish {
\tu32 word;
\tu64 wide;
};

struct sched_entity {
\tu64 vruntime;
\tstruct list_head group_node;
};

struct unrelated_big {
\tu64 a[64];
\tstruct huge_thing *h;
};

struct huge_thing {
\tstruct unrelated_big b;
};

typedef struct {
\tu64 val;
} kernel_cap_t;

struct cred {
\tkernel_cap_t cap_effective;
\tunion lockish lock;
};

struct task_struct {
\tstruct sched_entity se;
\tstruct task_struct *real_parent;
\tconst struct cred *cred;
\tstruct huge_thing *not_needed;
\tstruct list_head pids[PIDTYPE_MAX];
\ttask_cb_t cb;
};

struct bpf_stack_build_id {
\tu64 offset;
};

#ifndef BPF_NO_PRESERVE_ACCESS_INDEX
#pragma clang attribute pop
#endif

#endif /* __VMLINUX_H__ */
"""

PROGRAM = """
int f(struct pt_regs *ctx) {
    struct task_struct *t = (void *)bpf_get_current_task();
    u32 x = BPF_ANY;
    return t->se.vruntime + x;
}
"""


def blocks(text: str) -> set[str]:
    return {b.strip() for b in text.split("\n\n")}


def test_pruned_header_keeps_what_the_program_needs_complete() -> None:
    out = kheaders.prune_vmlinux(VMLINUX, PROGRAM)
    kept = blocks(out)
    # named by the program: complete, and what it holds by value, closed over
    for name in ("struct task_struct {", "struct sched_entity {", "struct list_head {"):
        assert any(b.startswith(name) for b in kept), name
    # array size PIDTYPE_MAX pulls its enum; the member typedef task_cb_t its line
    assert any(b.startswith("enum pid_type {") for b in kept)
    assert "typedef int (*task_cb_t)(struct task_struct *, u64);" in kept
    # u32 -> __u32; BPF_ANY (bcc's rewriter) -> the anonymous enum
    assert {"typedef __u32 u32;", "typedef unsigned int __u32;"} <= kept
    assert any("BPF_ANY = 0" in b for b in kept)
    # bcc's helpers.h needs this one by value
    assert any(b.startswith("struct bpf_stack_build_id {") for b in kept)
    # the guards and the preserve_access_index pragmas stay, in order
    assert out.startswith("#ifndef __VMLINUX_H__")
    assert out.rstrip().endswith("#endif /* __VMLINUX_H__ */")
    assert out.index("attribute push") < out.index("struct task_struct {")
    assert out.index("struct task_struct {") < out.index("attribute pop")


def test_pruned_header_only_declares_what_is_pointed_to() -> None:
    out = kheaders.prune_vmlinux(VMLINUX, PROGRAM)
    kept = blocks(out)
    # task_struct points to cred and huge_thing: declared, not defined
    assert not any(b.startswith("struct huge_thing {") for b in kept)
    assert not any(b.startswith("struct unrelated_big {") for b in kept)
    assert not any(b.startswith("struct cred {") for b in kept)
    forward = next(b for b in kept if b.startswith("struct") and "{" not in b)
    assert {"struct cred;", "struct huge_thing;", "struct task_struct;"} <= set(
        forward.splitlines()
    )
    # a tag BTF does not know (the program's own, or bcc's) is left alone
    assert "struct pt_regs;" not in forward


def test_pruned_header_defines_a_named_struct_with_its_by_value_members() -> None:
    out = kheaders.prune_vmlinux(VMLINUX, "int g(struct cred *c) { return 0; }")
    kept = blocks(out)
    assert any(b.startswith("struct cred {") for b in kept)
    assert any(b.startswith("union lockish {") for b in kept)
    assert any(b.startswith("typedef struct {") and "kernel_cap_t" in b for b in kept)
    assert "union lockish;" in out  # its keyword, not `struct`
    assert not any(b.startswith("struct task_struct {") for b in kept)


def test_typedef_names() -> None:
    assert kheaders._typedef_name("typedef __u32 u32;") == "u32"
    assert kheaders._typedef_name("typedef int (*cb_t)(int, struct x *);") == "cb_t"
    assert kheaders._typedef_name("typedef void fn_t(struct x *);") == "fn_t"
    assert (
        kheaders._typedef_name("typedef struct {\n\tint a;\n} atomic_t;") == "atomic_t"
    )
    assert kheaders._typedef_name("typedef u8 uuid_t[16];") == "uuid_t"
    assert (
        kheaders._typedef_name("typedef struct {\n\tvoid (*f)(int);\n} ops_t;")
        == "ops_t"
    )


def test_pruned_tree_is_built_once_per_set_of_names(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "include" / "linux").mkdir(parents=True)
    (tree / "include" / "vmlinux.h").write_text(VMLINUX)
    (tree / "include" / "linux" / "kconfig.h").write_text("#include <vmlinux.h>\n")
    a = kheaders.pruned_tree(tree, PROGRAM)
    assert (
        a / "include" / "linux" / "kconfig.h"
    ).read_text() == "#include <vmlinux.h>\n"
    assert (a / "include" / "vmlinux.h").read_text() == kheaders.prune_vmlinux(
        VMLINUX, PROGRAM
    )
    # the same names (comments and spacing aside): the same tree, not rebuilt
    mtime = (a / "include" / "vmlinux.h").stat().st_mtime_ns
    assert kheaders.pruned_tree(tree, PROGRAM + "\n/* x */ ") == a
    assert (a / "include" / "vmlinux.h").stat().st_mtime_ns == mtime
    # other names: another tree; nothing half-built left behind
    b = kheaders.pruned_tree(tree, "int g(struct cred *c) { return 0; }")
    assert b != a
    assert sorted(p.name for p in (tree / "pruned").iterdir()) == sorted(
        [a.name, b.name]
    )


def test_btf_facts_cache_hits_in_a_new_process(tmp_path: Path) -> None:
    """The cache key hashes the computing function's code, comprehensions
    included, never an address that changes with each process."""
    btf = tmp_path / "btf"
    btf.write_bytes(b"not really BTF")
    script = f"""
import json, sys
from pathlib import Path
from lsmtrace.btf import cached_facts
def compute():
    print("computed", file=sys.stderr)
    return {{k: v for k, v in [("a", 1)]}}
print(json.dumps(cached_facts("t", compute, Path({str(btf)!r}))))
"""
    env = dict(os.environ, LSMTRACE_CACHE=str(tmp_path / "cache"))
    runs = [
        subprocess.run(
            [sys.executable, "-c", script],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        for _ in range(2)
    ]
    assert [json.loads(r.stdout) for r in runs] == [{"a": 1}, {"a": 1}]
    assert [r.stderr.count("computed") for r in runs] == [1, 0]
    assert len(list((tmp_path / "cache" / "btf").iterdir())) == 1


def test_quiet_sites_are_read_once_per_boot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    boot = tmp_path / "boot_id"
    boot.write_text("boot-1\n")
    monkeypatch.setattr(loader, "BOOT_ID", boot)
    calls: list[int] = []
    answer = [(0xFFFF0000, 0xFFFF0100)]

    def fake() -> list[tuple[int, int]]:
        calls.append(1)
        return list(answer)

    monkeypatch.setattr(loader, "quiet_sites", fake)
    assert loader.boot_quiet_sites(tmp_path) == answer
    assert loader.boot_quiet_sites(tmp_path) == answer
    assert len(calls) == 1
    # a reboot: read again, and the old boot's file goes
    boot.write_text("boot-2\n")
    answer[:] = [(0xEEEE0000, 0xEEEE0040)]
    assert loader.boot_quiet_sites(tmp_path) == answer
    assert len(calls) == 2
    files = list((tmp_path / "boot").iterdir())
    assert len(files) == 1
    assert "boot-2" in files[0].name
    # hidden addresses (kptr_restrict) are not remembered
    boot.write_text("boot-3\n")
    answer[:] = []
    assert loader.boot_quiet_sites(tmp_path) == []
    assert loader.boot_quiet_sites(tmp_path) == []
    assert len(calls) == 4


def test_autoconf_comes_from_proc_or_boot_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Debian's kernels have no /proc/config.gz but a /boot/config-RELEASE; bcc's
    helpers.h does not compile without CONFIG_BPF_SYSCALL."""
    import gzip

    monkeypatch.setattr(kheaders, "PROC_CONFIG", tmp_path / "config.gz")
    monkeypatch.setattr(kheaders, "BOOT_DIR", tmp_path)
    (tmp_path / "config-6.12.0-test").write_text(
        "CONFIG_BPF_SYSCALL=y\nCONFIG_HZ=250\n# CONFIG_SMACK is not set\n"
    )
    out = kheaders.kernel_autoconf("6.12.0-test")
    assert "config-6.12.0-test */" in out.splitlines()[0]
    assert "#define CONFIG_BPF_SYSCALL 1" in out
    assert "#define CONFIG_HZ 250" in out
    assert "SMACK" not in out
    # /proc/config.gz wins when the kernel has it
    (tmp_path / "config.gz").write_bytes(
        gzip.compress(b"CONFIG_BPF_SYSCALL=y\nCONFIG_X=m\n")
    )
    out = kheaders.kernel_autoconf("6.12.0-test")
    assert "config.gz */" in out.splitlines()[0]
    assert "#define CONFIG_X_MODULE 1" in out
    assert "CONFIG_HZ" not in out
    # neither: only what bcc needs
    (tmp_path / "config.gz").unlink()
    out = kheaders.kernel_autoconf("6.1.0-other")
    assert out.count("#define") == 1
    assert "#define CONFIG_BPF_SYSCALL 1" in out


def test_header_tree_prefers_btf_and_obeys_lsmtrace_headers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = tmp_path / "build"
    synth = tmp_path / "synth"
    has_real: list[Path | None] = [real]
    monkeypatch.setattr(kheaders, "real_header_tree", lambda: has_real[0])
    monkeypatch.setattr(kheaders, "synthesized_tree", lambda: synth)
    monkeypatch.setattr(kheaders, "BTF_PATH", tmp_path / "vmlinux")
    (tmp_path / "vmlinux").write_bytes(b"")
    monkeypatch.setattr(kheaders.shutil, "which", lambda name: "/usr/sbin/bpftool")
    for var in ("LSMTRACE_HEADERS", "LSMTRACE_FORCE_BTF_HEADERS"):
        monkeypatch.delenv(var, raising=False)
    assert kheaders.header_tree() == (synth, "btf")
    monkeypatch.setenv("LSMTRACE_HEADERS", "kernel")
    assert kheaders.header_tree() == (real, "headers")
    # no bpftool: the header tree, unless told btf
    monkeypatch.setattr(kheaders.shutil, "which", lambda name: None)
    monkeypatch.setenv("LSMTRACE_HEADERS", "auto")
    assert kheaders.header_tree() == (real, "headers")
    monkeypatch.setenv("LSMTRACE_HEADERS", "btf")
    assert kheaders.header_tree() == (synth, "btf")
    # told kernel with no header tree, or a value it does not know: an error with a hint
    has_real[0] = None
    monkeypatch.setenv("LSMTRACE_HEADERS", "kernel")
    with pytest.raises(kheaders.HeaderError, match="LSMTRACE_HEADERS=kernel") as e:
        kheaders.header_tree()
    assert "linux-headers" in (e.value.hint or "")
    monkeypatch.setenv("LSMTRACE_HEADERS", "vmlinux")
    with pytest.raises(kheaders.HeaderError, match="is not one of auto, btf, kernel"):
        kheaders.header_tree()


def test_helpers_an_older_kernel_lacks_are_declared() -> None:
    """6.1's BTF stops before BPF_FUNC_cgrp_storage_get (6.2); bcc's helpers.h
    names it, so the synthesized kconfig.h declares a placeholder."""
    old = "enum bpf_func_id {\n\tBPF_FUNC_unspec = 0,\n\tBPF_FUNC_map_lookup_elem = 1,\n};\n"
    missing = kheaders.missing_helpers(old)
    assert "BPF_FUNC_map_lookup_elem" not in missing
    assert missing[-2:] == ["BPF_FUNC_cgrp_storage_get", "BPF_FUNC_cgrp_storage_delete"]
    assert len(missing) == 210
    text = kheaders._kconfig_h(missing)
    assert text.index("#include <vmlinux.h>") < text.index(
        "enum lsmt_missing_bpf_func {"
    )
    assert "\tBPF_FUNC_cgrp_storage_delete = 1000209," in text
    # this host's kernel has them all: nothing declared
    full = (kheaders.BTF_PATH.exists() and kheaders.HELPER_NAMES.read_text()) or ""
    names = [n for n in full.splitlines() if n and not n.startswith("#")]
    body = ",\n".join(f"\tBPF_FUNC_{n} = {i + 1}" for i, n in enumerate(names))
    assert kheaders.missing_helpers(f"enum bpf_func_id {{\n{body},\n}};\n") == []
    assert "lsmt_missing" not in kheaders._kconfig_h([])


def test_pruned_trees_beyond_the_limit_go_least_recently_used_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree = tmp_path / "tree"
    (tree / "include").mkdir(parents=True)
    (tree / "include" / "vmlinux.h").write_text(VMLINUX)
    monkeypatch.setattr(kheaders, "PRUNED_KEEP", 3)
    made = []
    for i in range(3):
        made.append(kheaders.pruned_tree(tree, f"int f{i}(struct cred *c);"))
        os.utime(made[-1], (1000 + i, 1000 + i))
    kheaders.pruned_tree(tree, "int f0(struct cred *c);")  # used again: the newest
    newest = kheaders.pruned_tree(tree, "int f3(struct cred *c);")
    left = set((tree / "pruned").iterdir())
    assert left == {made[0], made[2], newest}
