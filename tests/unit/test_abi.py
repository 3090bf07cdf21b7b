"""bpf/lsmtrace.h (compiled by the host C compiler) against its ctypes mirror.

bpf/layout_check.c prints the size of every struct, the offset, size and type of
every field, and the value of every constant; these tests compare each with
lsmtrace/abi.py, in both directions, so that a field, struct or constant added
on one side only fails here. A light parse of the header itself checks that
layout_check.c has not fallen behind it.
"""

from __future__ import annotations

import ctypes as ct
import enum
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from lsmtrace import abi

HEADER = abi.BPF_DIR / "lsmtrace.h"
LAYOUT_C = abi.BPF_DIR / "layout_check.c"

# ctypes scalar -> the type code layout_check.c's TYPE() prints
SCALARS: dict[type, str] = {
    ct.c_uint8: "u8",
    ct.c_uint16: "u16",
    ct.c_uint32: "u32",
    ct.c_uint64: "u64",
    ct.c_int8: "s8",
    ct.c_int16: "s16",
    ct.c_int32: "s32",
    ct.c_int64: "s64",
    ct.c_char: "char",
}


@dataclass
class Layout:
    sizes: dict[str, int] = field(default_factory=dict)
    # struct -> [(field, offset, size, type)] in declaration order
    fields: dict[str, list[tuple[str, int, int, str]]] = field(default_factory=dict)
    consts: dict[str, int] = field(default_factory=dict)


def _compiler() -> str | None:
    for cc in ("cc", "gcc", "clang"):
        path = shutil.which(cc)
        if path:
            return path
    return None


@pytest.fixture(scope="module")
def c_layout(tmp_path_factory: pytest.TempPathFactory) -> Layout:
    cc = _compiler()
    if cc is None:
        pytest.skip("no host C compiler (cc, gcc or clang) to build bpf/layout_check.c")
    exe = tmp_path_factory.mktemp("layout") / "layout_check"
    build = subprocess.run(
        [
            cc,
            "-std=c11",
            "-Wall",
            "-Werror",
            f"-I{abi.BPF_DIR}",
            "-o",
            str(exe),
            str(LAYOUT_C),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert build.returncode == 0, f"layout_check.c does not compile:\n{build.stderr}"
    run = subprocess.run([str(exe)], capture_output=True, text=True, check=True)
    out = Layout()
    for line in run.stdout.splitlines():
        what, *rest = line.split()
        if what == "struct":
            name, _size_word, size = rest
            out.sizes[name] = int(size)
            out.fields[name] = []
        elif what == "field":
            qual, off, size, ctype = rest
            struct, fname = qual.split(".", 1)
            out.fields[struct].append((fname, int(off), int(size), ctype))
        elif what == "const":
            out.consts[rest[0]] = int(rest[1])
        else:
            raise AssertionError(f"unexpected layout_check output: {line!r}")
    return out


def _type_code(t: Any) -> str:
    if t in SCALARS:
        return SCALARS[t]
    if issubclass(t, ct.Array):
        return _type_code(t._type_) + "[]"
    names: dict[Any, str] = {cls: name for name, cls in abi.STRUCTS.items()}
    return names.get(t, f"<unmirrored {t.__name__}>")


def _py_fields(
    cls: type[ct.Structure] | type[ct.Union],
) -> list[tuple[str, int, int, str]]:
    out = []
    for name, ftype in cls._fields_:  # type: ignore[misc]
        desc = getattr(cls, name)
        out.append((name, desc.offset, desc.size, _type_code(ftype)))
    return out


# -- structs -----------------------------------------------------------------


def test_same_structs(c_layout: Layout) -> None:
    assert sorted(c_layout.sizes) == sorted(abi.STRUCTS)


@pytest.mark.parametrize("name", sorted(abi.STRUCTS))
def test_struct_size(c_layout: Layout, name: str) -> None:
    assert name in c_layout.sizes, f"{name} is in abi.STRUCTS but not in layout_check.c"
    assert ct.sizeof(abi.STRUCTS[name]) == c_layout.sizes[name]


@pytest.mark.parametrize("name", sorted(abi.STRUCTS))
def test_struct_fields(c_layout: Layout, name: str) -> None:
    """Same field names in the same order, same offsets, sizes and types."""
    c_fields = c_layout.fields.get(name)
    assert c_fields is not None, f"{name} is missing from layout_check.c"
    py_fields = _py_fields(abi.STRUCTS[name])
    assert [f[0] for f in py_fields] == [f[0] for f in c_fields], "field names differ"
    for py, c in zip(py_fields, c_fields, strict=True):
        assert py == c, f"{name}.{c[0]}: C (off, size, type) {c[1:]} != ctypes {py[1:]}"


@pytest.mark.parametrize("name", sorted(abi.STRUCTS))
def test_no_implicit_padding(c_layout: Layout, name: str) -> None:
    """Explicit padding only (STYLE.md): the fields of a struct tile it exactly,
    so a field the header gains shows up as a size or offset change."""
    fields = c_layout.fields[name]
    if name == "lsmt_object":  # a union: every member at 0, the largest fills it
        assert {off for _n, off, _s, _t in fields} == {0}
        assert max(size for _n, _o, size, _t in fields) == c_layout.sizes[name]
        return
    pos = 0
    for fname, off, size, _t in fields:
        assert off == pos, f"{name}: hole of {off - pos} bytes before {fname}"
        pos = off + size
    assert pos == c_layout.sizes[name], (
        f"{name}: {c_layout.sizes[name] - pos} tail bytes"
    )


def test_event_size(c_layout: Layout) -> None:
    assert abi.EVENT_SIZE == c_layout.sizes["lsmt_event"] == ct.sizeof(abi.Event)


# -- the header itself: layout_check.c must cover all of it -----------------------


def _strip_comments(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


def _header_structs() -> dict[str, list[str]]:
    text = _strip_comments(HEADER.read_text())
    out = {}
    for m in re.finditer(
        r"\b(?:struct|union)\s+(lsmt_\w+)\s*\{(.*?)\}\s*;", text, re.S
    ):
        members = re.findall(r"(\w+)\s*(?:\[[^\]]*\])?\s*;", m.group(2))
        out[m.group(1)] = members
    return out


def _header_constants() -> set[str]:
    text = _strip_comments(HEADER.read_text())
    names = set(re.findall(r"^\s*#define\s+(LSMT_\w+)\s+\S", text, re.M))
    for body in re.findall(r"\benum\s+\w+\s*\{(.*?)\}", text, re.S):
        names |= set(re.findall(r"\b(LSMT_\w+)\s*=", body))
    return names


def test_header_parse_sees_the_event() -> None:
    structs = _header_structs()
    assert structs["lsmt_event"][:2] == ["ts_ns", "latency_ns"]
    assert structs["lsmt_event"][-2:] == ["comm", "obj"]
    assert "LSMT_KIND_HOOK" in _header_constants()


def test_layout_check_covers_header_structs(c_layout: Layout) -> None:
    header = _header_structs()
    assert sorted(header) == sorted(c_layout.sizes)
    for name, members in header.items():
        assert members == [f[0] for f in c_layout.fields[name]], name


def test_layout_check_covers_header_constants(c_layout: Layout) -> None:
    assert _header_constants() == set(c_layout.consts)


# -- constants and enums ----------------------------------------------------------

# C prefix -> the Python enum/flag class that mirrors it
ENUMS: dict[str, type[enum.IntEnum] | type[enum.IntFlag]] = {
    "LSMT_KIND_": abi.Kind,
    "LSMT_RUNG_": abi.Rung,
    "LSMT_LSM_": abi.Lsm,
    "LSMT_OBJ_": abi.ObjType,
    "LSMT_STAT_": abi.Stat,
    "LSMT_DEC_": abi.Decoder,
    "LSMT_HD_": abi.HookDecoder,
    "LSMT_PATHKIND_": abi.PathKind,
    "LSMT_CFG_": abi.CfgFlag,
    "LSMT_EV_": abi.EvFlag,
    "LSMT_EXEC_": abi.ExecFlag,
}
# "one past the last" markers: not enum members in Python, plain constants there
LIMITS = {"LSMT_STAT_MAX": "STAT_MAX", "LSMT_LSM_MAX": None}
PLAIN = {
    "LSMT_ABI_VERSION": "ABI_VERSION",
    "LSMT_COMM_LEN": "COMM_LEN",
    "LSMT_PATH_LEN": "PATH_LEN",
    "LSMT_NAME_LEN": "NAME_LEN",
    "LSMT_MAX_IDS": "MAX_IDS",
    "LSMT_SYSCALL_BASE": "SYSCALL_BASE",
    "LSMT_MAX_SYSCALL": "MAX_SYSCALL",
    "LSMT_LAT_BUCKETS": "LAT_BUCKETS",
    "LSMT_NONE_ARG": "NONE_ARG",
    "LSMT_PROC_BUF": "PROC_BUF",
    "LSMT_QUIET_SITES": "QUIET_SITES",
    "LSMT_CAP_OPT_NOAUDIT": "CAP_OPT_NOAUDIT",
    "LSMT_ID_CAPABLE": "ID_CAPABLE",
    "LSMT_ID_AVC": "ID_AVC",
    "LSMT_ID_SIGNAL": "ID_SIGNAL",
}


def _prefix(cname: str) -> str | None:
    return next((p for p in ENUMS if cname.startswith(p)), None)


def test_every_constant_is_classified(c_layout: Layout) -> None:
    unknown = [
        c
        for c in c_layout.consts
        if c not in PLAIN and c not in LIMITS and not _prefix(c)
    ]
    assert not unknown, f"constants with no mirror rule in this test: {unknown}"


@pytest.mark.parametrize(("cname", "pyname"), sorted(PLAIN.items()))
def test_plain_constant(c_layout: Layout, cname: str, pyname: str) -> None:
    assert getattr(abi, pyname) == c_layout.consts[cname]


def test_limits(c_layout: Layout) -> None:
    assert c_layout.consts["LSMT_STAT_MAX"] == abi.STAT_MAX
    assert max(abi.Stat) < abi.STAT_MAX
    # every LSM id below the limit has a Python member, and a name entry
    assert [int(v) for v in abi.Lsm] == list(range(c_layout.consts["LSMT_LSM_MAX"]))
    assert set(abi.LSM_NAMES) == set(abi.Lsm)


@pytest.mark.parametrize("prefix", sorted(ENUMS))
def test_enum_both_ways(c_layout: Layout, prefix: str) -> None:
    cls = ENUMS[prefix]
    c_side = {
        c.removeprefix(prefix): v
        for c, v in c_layout.consts.items()
        if c.startswith(prefix) and c not in LIMITS
    }
    py_side = {m.name: int(m.value) for m in cls}
    assert c_side == py_side, f"{prefix}* in lsmtrace.h != abi.{cls.__name__}"


def test_event_kinds_are_never_renumbered() -> None:
    """Values only grow (STYLE.md): the ones already shipped stay put."""
    shipped = {
        "HOOK": 1,
        "SYSCALL": 2,
        "CAPABLE": 3,
        "AVC": 4,
        "EXEC": 5,
        "FORK": 6,
        "EXIT": 7,
        "SIGNAL": 8,
    }
    now = {k.name: int(k) for k in abi.Kind}
    assert {n: now.get(n) for n in shipped} == shipped
    # new kinds only above the shipped ones, never reusing a value
    assert all(v > max(shipped.values()) for n, v in now.items() if n not in shipped)
    assert abi.ABI_VERSION >= 1


def test_type_codes_known() -> None:
    """Every ctypes field type maps to a code TYPE() in layout_check.c can print."""
    for name, cls in abi.STRUCTS.items():
        for fname, _o, _s, code in _py_fields(cls):
            assert not code.startswith("<unmirrored"), f"{name}.{fname}: {code}"


def test_layout_check_path() -> None:
    assert Path(LAYOUT_C).is_file()
