"""A kernel header tree for bcc, synthesized from BTF when the machine has none.

bcc (0.26 in Debian 12) refuses to compile without a kernel header tree. It honours
``BCC_KERNEL_SOURCE``, requires ``$BCC_KERNEL_SOURCE/include/linux/kconfig.h``,
force-includes that file first and then its own built-in uapi ``bpf.h`` (guard
``_UAPI__LINUX_BPF_H__``).  The tree written here makes that work from
``/sys/kernel/btf/vmlinux`` alone:

* ``include/vmlinux.h``: ``bpftool btf dump file ... format c``;
* ``include/linux/kconfig.h``: defines the bpf.h guard (bcc's copy is stale and
  clashes with vmlinux.h), includes vmlinux.h, defines the few macros BPF code
  uses that BTF cannot carry;
* ``include/generated/autoconf.h`` from ``/proc/config.gz`` when present;
* ``include/linux/version.h`` from ``uname -r``;
* small ``linux/log2.h`` and ``asm/page.h``; empty stubs for every other header
  that bcc or our ``bpf/*.c`` include (their content is already in vmlinux.h).

Compiling against the whole vmlinux.h (2.8 MB, ~135 000 lines on 6.18) costs
bcc's two clang passes ~0.45 s per start, a third of the compile. ``pruned_tree``
gives the compiler a vmlinux.h cut to what one program text names (see
``prune_vmlinux``; ~40-60 kB), cached beside the full tree per set of names; the
loader falls back to the full header should the pruned one ever not compile.

The tree is cached per kernel (release + sha256 of the BTF), generated into a
temporary directory and renamed into place, so a crash never leaves half a tree.
This tree is preferred even where the distribution's headers
(``/lib/modules/$(uname -r)/build``) are installed: it compiles faster and is
the running kernel's own types (``header_tree``). The headers are used when
there is no BTF or no bpftool, or with LSMTRACE_HEADERS=kernel. The same BPF
sources compile both ways because they include only the header names in
``STUB_HEADERS`` and use values from ``bpf/lsmtrace.h``, not kernel macros.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import hashlib
import logging
import os
import platform
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from lsmtrace.errors import HeaderError

log = logging.getLogger(__name__)

BTF_PATH = Path("/sys/kernel/btf/vmlinux")
# Bump when the layout of the synthesized tree changes, so stale caches are redone.
# 6: autoconf.h also from /boot/config-RELEASE (v5 trees on kernels without
# /proc/config.gz, e.g. Debian's, lacked CONFIG_BPF_SYSCALL and did not compile).
# 7: kconfig.h declares the BPF helpers an older kernel (< 6.2) lacks.
TREE_VERSION = 7

# Headers that bcc's built-in helpers or our BPF sources include. With a real
# tree they are the kernel's; with the synthesized tree they are empty.
STUB_HEADERS = (
    "uapi/linux/bpf.h",
    "uapi/linux/if_packet.h",
    "uapi/linux/if_ether.h",
    "uapi/linux/ptrace.h",
    "uapi/linux/in.h",
    "uapi/linux/in6.h",
    "linux/types.h",
    "linux/bpf_common.h",
    "linux/sched.h",
    "linux/fs.h",
    "linux/dcache.h",
    "linux/cred.h",
    "linux/binfmts.h",
    "linux/mm_types.h",
    "linux/socket.h",
    "linux/un.h",
    "linux/capability.h",
    "linux/mount.h",
    "linux/ptrace.h",
    "linux/security.h",
    "linux/lsm_hooks.h",
    "linux/errno.h",
    "linux/signal.h",
    "linux/nsproxy.h",
    "linux/user_namespace.h",
    "linux/net.h",
    "linux/ns_common.h",
    "linux/cgroup.h",
    "linux/kernel_read_file.h",
    "linux/bpf.h",
    "net/sock.h",
    "net/inet_sock.h",
    "net/af_unix.h",
)

# Values BPF code may want that live in #defines, not in BTF. Guarded with #ifndef
# so that a vmlinux.h which happens to carry one (as an enum) does not clash.
_MISSING_DEFINES = {
    "__always_inline": "inline __attribute__((always_inline))",
    "NULL": "((void *)0)",
    "likely(x)": "__builtin_expect(!!(x), 1)",
    "unlikely(x)": "__builtin_expect(!!(x), 0)",
    "PAGE_SHIFT": "12",
    "PAGE_SIZE": "4096",
    "TASK_COMM_LEN": "16",
}


# ---- the pruned header -------------------------------------------------------

# Bump when prune_vmlinux's output changes, so stale pruned headers are redone.
PRUNE_VERSION = 1
# What bcc's own code around our program needs from vmlinux.h (bcc 0.26): its
# helpers.h uses these types by value and these constants (the BPF_FUNC_* ids,
# the flags of perf_submit and stack maps); its rewriter turns `m.update()` into
# bpf_map_update_elem(..., BPF_ANY). Types that helpers.h takes only by pointer
# need no entry: every struct a kept declaration points to is declared.
BCC_VALUE_TYPES = (
    "bpf_stack_build_id",
    "bpf_cgroup_storage_key",
    "pt_regs",
    "bpf_perf_event_data",
    "bpf_raw_tracepoint_args",
    "bpf_spin_lock",
    "bpf_timer",
    "bpf_dynptr",
)
BCC_NAMES = (
    "BPF_FUNC_map_lookup_elem",
    "BPF_ANY",
    "BPF_F_CURRENT_CPU",
    "BPF_F_NO_PREALLOC",
    "BPF_F_STACK_BUILD_ID",
    "BPF_F_USER_STACK",
    *("size_t", "uintptr_t", "u8", "u16", "u32", "u64", "s32", "s64"),
    *("__u8", "__u16", "__u32", "__u64", "__s32", "__s64"),
)

_IDENT = re.compile(r"[A-Za-z_]\w*")
_TAGREF = re.compile(r"\b(struct|union|enum)\s+(\w+)(\s*\*)?")
_HEAD = re.compile(r"(struct|union|enum)\s+(\w+)?\s*(?::[^{]*)?\{")
_FORWARD = re.compile(r"(struct|union)\s+(\w+);")
_FUNC_PTR = re.compile(r"\(\s*\*\s*(\w+)\s*\)\s*\(")


def _typedef_name(decl: str) -> str:
    """The name a bpftool `typedef` declaration defines."""
    body_at = decl.find("{")
    m = _FUNC_PTR.search(decl)
    if m and (body_at < 0 or m.start() < body_at):
        return m.group(1)  # typedef int (*name)(...);
    if "(" in decl and body_at < 0:
        return str(
            _IDENT.findall(decl[: decl.index("(")])[-1]
        )  # typedef int name(...);
    tail = decl[decl.rindex("}") + 1 :] if body_at >= 0 else decl
    return str(_IDENT.findall(re.sub(r"\[[^\]]*\]", "", tail))[-1])


def _refs(text: str) -> tuple[set[tuple[str, str]], set[str]]:
    """(what `text` needs complete: ("tag", name) for struct/union/enum tags
    used by value, ("id", name) for every identifier; tags it only points to)."""
    need: set[tuple[str, str]] = {("id", t) for t in _IDENT.findall(text)}
    pointed: set[str] = set()
    for m in _TAGREF.finditer(text):
        if m.group(3) and m.group(1) != "enum":
            pointed.add(m.group(2))
        else:
            need.add(("tag", m.group(2)))
    return need, pointed - {n for k, n in need if k == "tag"}


def prune_vmlinux(text: str, roots: str) -> str:
    """vmlinux.h cut to what the C text `roots` uses.

    bpftool writes one top-level declaration per blank-line-separated block,
    dependencies first. Kept, in their order: every struct/union/enum the roots
    name (complete, even when the roots only point to it: BPF code dereferences
    what it points to), every typedef or enum constant they name, and, closed
    over, what the kept declarations need complete (members by value, typedefs,
    enum constants in array sizes). A struct a kept declaration only points to
    is declared (`struct x;`), not defined. bcc's own needs (BCC_VALUE_TYPES,
    BCC_NAMES) are roots too.
    """
    blocks = text.split("\n\n")
    defs: dict[tuple[str, str], int] = {}
    keyword: dict[str, str] = {}  # struct/union tag -> its keyword
    for i, block in enumerate(blocks):
        b = block.lstrip()
        if m := _HEAD.match(b):
            kind, name = m.group(1), m.group(2)
            if name:
                defs.setdefault(("tag", name), i)
                if kind != "enum":
                    keyword[name] = kind
            if kind == "enum":
                for item in b[b.index("{") + 1 : b.rindex("}")].split(","):
                    if c := _IDENT.search(item):
                        defs.setdefault(("id", c.group(0)), i)
        elif b.startswith("typedef"):
            defs.setdefault(("id", _typedef_name(b)), i)
        elif m := _FORWARD.fullmatch(b):
            keyword.setdefault(m.group(2), m.group(1))
    need, pointed = _refs(roots)
    need |= {("tag", n) for n in pointed}  # the roots dereference what they point to
    named = {n for k, n in need if k == "tag"}
    need |= {("tag", n) for n in BCC_VALUE_TYPES} | {("id", n) for n in BCC_NAMES}
    keep: set[int] = set()
    work = [defs[k] for k in need if k in defs]
    while work:
        i = work.pop()
        if i in keep:
            continue
        keep.add(i)
        more, pointed = _refs(blocks[i])
        named |= pointed | {n for k, n in more if k == "tag"}
        work += [defs[k] for k in more if k in defs and defs[k] not in keep]
    forward = "\n".join(f"{keyword[n]} {n};" for n in sorted(named) if n in keyword)
    kept = [b for i, b in enumerate(blocks) if i in keep or b.lstrip().startswith("#")]
    head = (
        kept.pop(0)
        if kept and kept[0].lstrip().startswith("#ifndef __VMLINUX_H__")
        else ""
    )
    return (
        "\n\n".join(
            [head, "/* pruned by lsmtrace: declared, not defined */", forward, *kept]
        )
        + "\n"
    )


def pruned_tree(tree: Path, roots: str) -> Path:
    """A header tree like `tree` whose vmlinux.h is `prune_vmlinux(.., roots)`,
    cached under `tree`/pruned/ per set of names in `roots`."""
    names = sorted(
        set(_IDENT.findall(roots)) | {m.group(0) for m in _TAGREF.finditer(roots)}
    )
    digest = hashlib.sha256(
        "\n".join([f"v{PRUNE_VERSION}", *names]).encode()
    ).hexdigest()
    dest = tree / "pruned" / digest[:16]
    if (dest / "include" / "vmlinux.h").exists():
        with contextlib.suppress(OSError):
            os.utime(dest)  # recently used: kept by _forget_old_pruned
        return dest

    def write(tmp: Path) -> None:
        inc = tmp / "include"
        inc.mkdir()
        for entry in (tree / "include").iterdir():
            if entry.name != "vmlinux.h":
                (inc / entry.name).symlink_to(entry.resolve())
        full = (tree / "include" / "vmlinux.h").read_text()
        (inc / "vmlinux.h").write_text(prune_vmlinux(full, roots))

    _build_into(dest, write, done=dest / "include" / "vmlinux.h")
    _forget_old_pruned(dest.parent, keep=dest)
    return dest


# Pruned headers kept per kernel (one per set of names: --hooks selections, rungs).
PRUNED_KEEP = 32


def _forget_old_pruned(folder: Path, keep: Path) -> None:
    """Remove the least recently used pruned trees beyond PRUNED_KEEP."""
    try:
        trees = [
            p for p in folder.iterdir() if not p.name.startswith(".") and p != keep
        ]
        trees.sort(key=lambda p: p.stat().st_mtime, reverse=True)
    except OSError:
        return
    for old in trees[PRUNED_KEEP - 1 :]:
        shutil.rmtree(old, ignore_errors=True)


def _build_into(dest: Path, write: Callable[[Path], None], done: Path) -> None:
    """Build `dest` in a temporary sibling and rename it into place, so a crash
    never leaves half a tree; `done` exists once a complete `dest` does."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=dest.parent))
    try:
        write(tmp)
        try:
            tmp.rename(dest)
        except OSError:
            # Another lsmtrace built the same tree meanwhile: keep theirs.
            if not done.exists():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def real_header_tree(release: str | None = None) -> Path | None:
    """The distribution's header tree for the running kernel, if installed.

    Debian splits it: /lib/modules/R/build holds include/generated/ and
    /lib/modules/R/source holds include/linux/kconfig.h. bcc finds both itself,
    so with real headers BCC_KERNEL_SOURCE must stay unset.
    """
    release = release or platform.release()
    build = Path("/lib/modules") / release / "build"
    if (build / "include" / "generated" / "autoconf.h").exists() or (
        build / "include" / "linux" / "kconfig.h"
    ).exists():
        return build
    return None


@functools.lru_cache(maxsize=2)
def btf_digest(btf_path: Path = BTF_PATH) -> str:
    h = hashlib.sha256()
    with btf_path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def default_cache_root() -> Path:
    if os.environ.get("LSMTRACE_CACHE"):
        return Path(os.environ["LSMTRACE_CACHE"])
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]) / "lsmtrace"
    if os.geteuid() == 0:
        return Path("/var/cache/lsmtrace")
    return Path.home() / ".cache" / "lsmtrace"


def write_cache_json(f: Path, value: object) -> None:
    """Write a cache file whole or not at all (a reader never sees half of it);
    OSError when it cannot be written."""
    import json

    f.parent.mkdir(parents=True, exist_ok=True)
    tmp = f.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(value))
    tmp.replace(f)


def autoconf_from_config(text: str) -> str:
    """Translate a .config into include/generated/autoconf.h."""
    out = ["/* generated by lsmtrace from /proc/config.gz */"]
    for line in text.splitlines():
        m = re.match(r"^(CONFIG_[A-Za-z0-9_]+)=(.*)$", line)
        if not m:
            continue
        name, val = m.groups()
        if val == "y":
            out.append(f"#define {name} 1")
        elif val == "m":
            out.append(f"#define {name}_MODULE 1")
        elif val != "n":
            out.append(f"#define {name} {val}")
    return "\n".join(out) + "\n"


PROC_CONFIG = Path("/proc/config.gz")
BOOT_DIR = Path("/boot")
# bcc's helpers.h refuses to compile without this one (#error). A kernel with BTF
# and BPF programs loading has it, whatever its config file says or lacks.
_REQUIRED_CONFIG = "CONFIG_BPF_SYSCALL"


def kernel_autoconf(release: str) -> str:
    """autoconf.h for the running kernel: from /proc/config.gz (CONFIG_IKCONFIG_PROC)
    or, as Debian, Ubuntu and Fedora ship it, /boot/config-RELEASE; with neither,
    only what bcc needs."""
    text = None
    try:
        text = gzip.decompress(PROC_CONFIG.read_bytes()).decode(errors="replace")
        source = str(PROC_CONFIG)
    except (OSError, EOFError, gzip.BadGzipFile):
        boot = BOOT_DIR / f"config-{release}"
        try:
            text = boot.read_text(errors="replace")
            source = str(boot)
        except OSError:
            source = f"no {PROC_CONFIG} nor {boot}"
    out = autoconf_from_config(text) if text is not None else ""
    if f"#define {_REQUIRED_CONFIG} " not in out:
        out += f"#define {_REQUIRED_CONFIG} 1 /* BPF loads: it is set */\n"
    return f"/* kernel config: {source} */\n" + out


def version_code(release: str) -> int:
    m = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", release)
    if not m:
        raise HeaderError(f"cannot parse kernel release {release!r}")
    a, b, c = (int(x or 0) for x in m.groups())
    return (a << 16) + (b << 8) + min(c, 255)


HELPER_NAMES = Path(__file__).parent / "bpf" / "helper_names.txt"


def missing_helpers(vmlinux_h: str) -> list[str]:
    """BPF_FUNC_* names of the helpers this kernel's BTF does not have (older
    than 6.2): bcc's helpers.h names every helper of its uapi bpf.h, which the
    synthesized tree leaves out for vmlinux.h's own (they would clash)."""
    m = re.search(r"^enum bpf_func_id \{(.*?)^\};", vmlinux_h, re.S | re.M)
    have = set(re.findall(r"\bBPF_FUNC_(\w+)\b", m.group(1))) if m else set()
    names = [
        ln.strip()
        for ln in HELPER_NAMES.read_text().splitlines()
        if ln.strip() and not ln.startswith("#")
    ]
    return [f"BPF_FUNC_{n}" for n in names if n not in have]


def _kconfig_h(missing: Sequence[str] = ()) -> str:
    lines = [
        "/* generated by lsmtrace: bcc force-includes this file first */",
        "#ifndef __LSMTRACE_SYNTH_KCONFIG_H",
        "#define __LSMTRACE_SYNTH_KCONFIG_H",
        "#define LSMTRACE_BTF_HEADERS 1",
        "/* bcc's built-in uapi bpf.h is older than vmlinux.h and would clash */",
        "#define _UAPI__LINUX_BPF_H__ 1",
        "/* bcc compiles for this very kernel: no CO-RE relocations needed */",
        "#define BPF_NO_PRESERVE_ACCESS_INDEX 1",
        "#include <generated/autoconf.h>",
        "#pragma clang diagnostic push",
        '#pragma clang diagnostic ignored "-Wmissing-declarations"',
        "#include <vmlinux.h>",
        "#pragma clang diagnostic pop",
    ]
    if missing:
        lines += [
            "/* helpers this kernel lacks, named by bcc's helpers.h: placeholders",
            "   that no program calls (the verifier would refuse them) */",
            "enum lsmt_missing_bpf_func {",
            *(f"\t{n} = {1000000 + i}," for i, n in enumerate(missing)),
            "};",
        ]
    for name, val in _MISSING_DEFINES.items():
        bare = name.split("(")[0]
        lines += [f"#ifndef {bare}", f"#define {name} {val}", "#endif"]
    lines.append("#endif")
    return "\n".join(lines) + "\n"


def _write_tree(root: Path, release: str, btf_path: Path, bpftool: str) -> None:
    inc = root / "include"
    (inc / "linux").mkdir(parents=True)
    (inc / "generated").mkdir()
    (inc / "asm").mkdir()
    try:
        proc = subprocess.run(
            [bpftool, "btf", "dump", "file", str(btf_path), "format", "c"],
            check=True,
            capture_output=True,
        )
    except FileNotFoundError as e:
        raise HeaderError(
            "no kernel headers and bpftool is not installed to synthesize them",
            hint="apt-get install bpftool (or linux-headers-$(uname -r))",
        ) from e
    except subprocess.CalledProcessError as e:
        raise HeaderError(
            f"bpftool could not dump {btf_path}: {e.stderr.decode(errors='replace').strip()}",
            hint="check that the BTF file is readable (run as root)",
        ) from e
    (inc / "vmlinux.h").write_bytes(proc.stdout)
    missing = missing_helpers(proc.stdout.decode(errors="replace"))
    (inc / "linux" / "kconfig.h").write_text(_kconfig_h(missing))
    (inc / "generated" / "autoconf.h").write_text(kernel_autoconf(release))
    (inc / "linux" / "version.h").write_text(
        f"#define LINUX_VERSION_CODE {version_code(release)}\n"
        "#define KERNEL_VERSION(a, b, c) (((a) << 16) + ((b) << 8) + ((c) > 255 ? 255 : (c)))\n"
    )
    (inc / "linux" / "log2.h").write_text(
        "#ifndef ilog2\n#define ilog2(n) (63 - __builtin_clzll(n))\n#endif\n"
    )
    (inc / "asm" / "page.h").write_text("/* PAGE_SIZE comes from kconfig.h */\n")
    for name in STUB_HEADERS:
        p = inc / name
        if not p.exists():
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text("/* stub: types come from vmlinux.h */\n")
    (root / "lsmtrace-tree.txt").write_text(
        f"version={TREE_VERSION}\nrelease={release}\nbtf={btf_path}\n"
    )


def synthesized_tree(
    cache_root: Path | None = None,
    btf_path: Path = BTF_PATH,
    release: str | None = None,
    bpftool: str = "bpftool",
) -> Path:
    """Return a cached header tree synthesized from BTF, building it if needed."""
    release = release or platform.release()
    if not btf_path.exists():
        raise HeaderError(
            f"no kernel headers for {release} and no BTF at {btf_path}",
            hint="install linux-headers-$(uname -r), or boot a kernel built with "
            "CONFIG_DEBUG_INFO_BTF=y",
        )
    cache_root = cache_root or default_cache_root()
    key = f"{release}-{btf_digest(btf_path)[:16]}-v{TREE_VERSION}"
    dest = cache_root / "kheaders" / key
    if (dest / "include" / "linux" / "kconfig.h").exists():
        return dest
    _build_into(
        dest,
        lambda tmp: _write_tree(tmp, release, btf_path, bpftool),
        done=dest / "include" / "linux" / "kconfig.h",
    )
    log.info("synthesized kernel headers from BTF in %s", dest)
    return dest


HEADERS_ENV = "LSMTRACE_HEADERS"
HEADER_CHOICES = ("auto", "btf", "kernel")


def header_choice() -> str:
    """auto, btf or kernel: LSMTRACE_HEADERS (LSMTRACE_FORCE_BTF_HEADERS=1: btf)."""
    choice = os.environ.get(HEADERS_ENV) or "auto"
    if os.environ.get("LSMTRACE_FORCE_BTF_HEADERS"):
        choice = "btf"
    if choice not in HEADER_CHOICES:
        raise HeaderError(
            f"{HEADERS_ENV}={choice!r} is not one of {', '.join(HEADER_CHOICES)}",
            hint=f"unset {HEADERS_ENV}, or set it to btf or kernel",
        )
    return choice


def header_tree() -> tuple[Path, str]:
    """(tree, kind) where kind is "btf" (point BCC_KERNEL_SOURCE at the tree;
    the loader prunes its vmlinux.h) or "headers" (the distribution's tree: bcc
    finds it itself, leave BCC_KERNEL_SOURCE alone).

    BTF is preferred whenever the kernel has it and bpftool is installed: it is
    the running kernel's own types, and pruned it compiles several times faster
    than the kernel's header tree (VM, 6.12, TCG: tracepoint rung 45 -> 17 s,
    fexit rung 125 -> 93 s; docs/benchmarks.md). LSMTRACE_HEADERS=kernel
    insists on the header tree, =btf on BTF (LSMTRACE_FORCE_BTF_HEADERS=1, the
    older name, too)."""
    choice = header_choice()
    real = real_header_tree()
    if choice == "kernel":
        if real is None:
            raise HeaderError(
                f"{HEADERS_ENV}=kernel but there is no header tree for "
                f"{platform.release()} in /lib/modules",
                hint="apt-get install linux-headers-$(uname -r), or unset "
                f"{HEADERS_ENV} to use BTF",
            )
        return real, "headers"
    if choice == "btf" or real is None:
        return synthesized_tree(), "btf"
    if BTF_PATH.exists() and shutil.which("bpftool"):
        try:
            return synthesized_tree(), "btf"
        except HeaderError as e:
            log.warning("%s; compiling with %s instead", e, real)
    return real, "headers"
