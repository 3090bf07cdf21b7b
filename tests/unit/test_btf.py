"""lsmtrace.btf against the captured fixture (no root, no bcc)."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from lsmtrace import btf as B
from lsmtrace.btf import BTF, BTFError, FuncProto, Param, unqualified
from lsmtrace.errors import LsmtraceError

FIXTURE = Path(__file__).parents[1] / "data" / "btf" / "vmlinux-excerpt.btf"
VMLINUX = Path("/sys/kernel/btf/vmlinux")


@pytest.fixture(scope="module")
def btf() -> BTF:
    return B.load(FIXTURE)


@pytest.fixture(scope="module")
def funcs(btf: BTF) -> dict[str, FuncProto]:
    return btf.functions()


def sig(proto: FuncProto) -> tuple[str, list[tuple[str, str]]]:
    return proto.ret, [(p.name, p.ctype) for p in proto.params]


def test_fixture_parses(btf: BTF, funcs: dict[str, FuncProto]) -> None:
    assert len(btf) == 221  # 220 types + void
    assert len(funcs) == 76


@pytest.mark.parametrize(
    ("func", "expected"),
    [
        ("security_file_open", ("int", [("file", "struct file *")])),
        (
            "security_capable",
            (
                "int",
                [
                    ("cred", "const struct cred *"),
                    ("ns", "struct user_namespace *"),
                    ("cap", "int"),
                    ("opts", "unsigned int"),
                ],
            ),
        ),
        (
            "security_mmap_file",
            (
                "int",
                [
                    ("file", "struct file *"),
                    ("prot", "unsigned long"),
                    ("flags", "unsigned long"),
                ],
            ),
        ),
        ("lockdown_is_locked_down", ("int", [("what", "enum lockdown_reason")])),
        ("bpf_lsm_sb_free_mnt_opts", ("void", [("mnt_opts", "void *")])),
        ("security_free_mnt_opts", ("void", [("mnt_opts", "void **")])),
        (
            "security_path_chmod",
            ("int", [("path", "const struct path *"), ("mode", "umode_t")]),
        ),
        (
            "security_prepare_creds",
            (
                "int",
                [
                    ("new", "struct cred *"),
                    ("old", "const struct cred *"),
                    ("gfp", "gfp_t"),
                ],
            ),
        ),
        ("security_init", ("int", [])),
    ],
)
def test_prototypes_rendered(
    funcs: dict[str, FuncProto], func: str, expected: tuple[str, list[tuple[str, str]]]
) -> None:
    assert sig(funcs[func]) == expected


def test_top_level_const_param(funcs: dict[str, FuncProto]) -> None:
    # landlock declares `struct file *const file`; the hook has `struct file *`.
    assert sig(funcs["hook_file_open"]) == ("int", [("file", "struct file *const")])
    assert funcs["hook_file_open"].types() == funcs["bpf_lsm_file_open"].types()
    cred = sig(funcs["hook_cred_prepare"])[1]
    assert [t for _, t in cred] == [
        "struct cred *const",
        "const struct cred *const",
        "const gfp_t",
    ]


def test_function_pointer_and_variadic(funcs: dict[str, FuncProto]) -> None:
    cb = funcs["__rpm_callback"]
    assert cb.params[0] == Param("cb", "int (*)(struct device *)")
    assert cb.signature("__rpm_callback") == (
        "int __rpm_callback(int (*cb)(struct device *), struct device *dev)"
    )
    warn = funcs["__warn_printk"]
    assert warn.variadic
    assert warn.signature("__warn_printk") == "void __warn_printk(const char *fmt, ...)"


def test_signature() -> None:
    p = FuncProto("char *", (Param("buf", "char[16]"), Param("", "int")))
    assert p.signature("f") == "char *f(char buf[16], int)"
    assert FuncProto("void", ()).signature("g") == "void g(void)"


def test_unqualified() -> None:
    assert unqualified("struct file *const") == "struct file *"
    assert unqualified("const gfp_t") == "gfp_t"
    assert unqualified("const char *") == "const char *"
    assert unqualified("const char *const volatile") == "const char *"


def test_struct_members(btf: BTF) -> None:
    assert btf.struct_members("timespec64") == [
        ("tv_sec", "time64_t", 0),
        ("tv_nsec", "long", 64),
    ]
    members = {m[0]: m for m in btf.struct_members("linux_binprm")}
    assert members["buf"][1] == "char[256]"
    assert members["executable"][1] == "struct file *"
    # bitfields: consecutive bit offsets
    assert members["have_execfd"][2] + 1 == members["execfd_creds"][2]
    with pytest.raises(KeyError):
        btf.struct_members("no_such_struct")


def test_enum_values(btf: BTF) -> None:
    reasons = btf.enum_values("lockdown_reason")
    assert reasons["LOCKDOWN_NONE"] == 0
    assert reasons["LOCKDOWN_MODULE_SIGNATURE"] == 1
    assert max(reasons.values()) == reasons["LOCKDOWN_CONFIDENTIALITY_MAX"]


def _header(**kw: int) -> bytes:
    f = {"hdr_len": 24, "type_off": 0, "type_len": 0, "str_off": 0, "str_len": 1}
    f.update(kw)
    return struct.pack("<HBBIIIII", 0xEB9F, 1, 0, *f.values())


@pytest.mark.parametrize(
    "blob",
    [
        b"",
        b"\x9f\xeb\x01",
        b"\x00" * 24,
        _header(type_len=1000),
        _header(type_len=8, str_off=8) + b"\0" * 9,  # record cut short
        # a type of unknown kind 31
        _header(type_len=12, str_off=12) + struct.pack("<III", 0, 31 << 24, 0) + b"\0",
    ],
)
def test_corrupt_blob_is_btf_error(blob: bytes) -> None:
    with pytest.raises(BTFError) as err:
        BTF(blob)
    assert isinstance(err.value, LsmtraceError)


def test_truncated_fixture_is_btf_error() -> None:
    data = FIXTURE.read_bytes()
    for cut in (10, 30, len(data) // 2, len(data) - 1):
        with pytest.raises(BTFError):
            BTF(data[:cut]).functions()


def test_dangling_type_reference_is_btf_error() -> None:
    # FUNC -> FUNC_PROTO with a parameter of type 99 (absent).
    types = struct.pack(
        "<IIIIIIII",
        1,
        (12 << 24),
        2,  # [1] FUNC 'f' -> 2
        0,
        (13 << 24) | 1,
        0,  # [2] FUNC_PROTO returns void, 1 param
        0,
        99,  # param: no name, type 99
    )
    strings = b"\0f\0"
    blob = _header(type_len=len(types), str_off=len(types), str_len=len(strings))
    btf = BTF(blob + types + strings)
    with pytest.raises(BTFError, match="out of range"):
        btf.functions()


def test_missing_file_is_btf_error(tmp_path: Path) -> None:
    with pytest.raises(BTFError, match="cannot read"):
        B.load(tmp_path / "nope")


@pytest.mark.skipif(not VMLINUX.exists(), reason="no /sys/kernel/btf/vmlinux")
def test_real_vmlinux() -> None:
    """Every function of the running kernel parses and renders (how long it
    takes is a benchmark figure: benchmarks/bench_startstop.py)."""
    btf = B.load(VMLINUX)
    funcs = btf.functions()
    assert len(funcs) > 10000
    assert sig(funcs["security_file_open"]) == ("int", [("file", "struct file *")])


def test_qualified_pointer_chain() -> None:
    # [1] INT char, [2] CONST->1, [3] PTR->2, [4] VOLATILE->3, [5] CONST->4,
    # [6] PTR->5: "const char *const volatile *"
    types = struct.pack(
        "<" + "I" * 19,
        1,
        (1 << 24),
        1,
        (6 << 24) | 8,  # [1] INT 'char' size 1, 8 bits signed
        0,
        (10 << 24),
        1,
        0,
        (2 << 24),
        2,
        0,
        (9 << 24),
        3,
        0,
        (10 << 24),
        4,
        0,
        (2 << 24),
        5,
    )
    strings = b"\0char\0"
    blob = _header(type_len=len(types), str_off=len(types), str_len=len(strings))
    btf = BTF(blob + types + strings)
    assert btf.type_str(3) == "const char *"
    assert btf.type_str(5) == "const char *const volatile"
    assert btf.type_str(6) == "const char *const volatile *"
    assert btf.decl(6, "p") == "const char *const volatile *p"
    assert unqualified(btf.type_str(5)) == "const char *"
