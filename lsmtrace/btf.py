"""A small, fast reader of the binary BTF format (stdlib only, no root).

BTF layout (kernel Documentation/bpf/btf.rst)::

    struct btf_header { u16 magic; u8 version; u8 flags; u32 hdr_len;
                        u32 type_off; u32 type_len; u32 str_off; u32 str_len; }

followed by the type section (``type_off``/``type_len``, relative to the end of
the header) and the string section.  Each type is a 12-byte ``struct btf_type``
(name_off, info, size_or_type) plus a kind-dependent payload.  Every record is a
multiple of 4 bytes, so the whole type section is read as one ``array('I')`` of
32-bit words and scanned once; payloads (struct members, enum values, params)
are only decoded when asked for.

Type ids start at 1; id 0 is ``void``.  Only split-free (base) BTF is handled,
which is what ``/sys/kernel/btf/vmlinux`` is.
"""

from __future__ import annotations

import functools
import logging
import re
import sys
import types
from array import array
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final, TypeVar

from lsmtrace.errors import LsmtraceError

T = TypeVar("T")

log = logging.getLogger(__name__)

BTF_MAGIC: Final = 0xEB9F
HEADER_LEN: Final = 24

# Kinds (include/uapi/linux/btf.h).
KIND_UNKN: Final = 0
KIND_INT: Final = 1
KIND_PTR: Final = 2
KIND_ARRAY: Final = 3
KIND_STRUCT: Final = 4
KIND_UNION: Final = 5
KIND_ENUM: Final = 6
KIND_FWD: Final = 7
KIND_TYPEDEF: Final = 8
KIND_VOLATILE: Final = 9
KIND_CONST: Final = 10
KIND_RESTRICT: Final = 11
KIND_FUNC: Final = 12
KIND_FUNC_PROTO: Final = 13
KIND_VAR: Final = 14
KIND_DATASEC: Final = 15
KIND_FLOAT: Final = 16
KIND_DECL_TAG: Final = 17
KIND_TYPE_TAG: Final = 18
KIND_ENUM64: Final = 19

KIND_NAMES: Final = (
    "UNKN",
    "INT",
    "PTR",
    "ARRAY",
    "STRUCT",
    "UNION",
    "ENUM",
    "FWD",
    "TYPEDEF",
    "VOLATILE",
    "CONST",
    "RESTRICT",
    "FUNC",
    "FUNC_PROTO",
    "VAR",
    "DATASEC",
    "FLOAT",
    "DECL_TAG",
    "TYPE_TAG",
    "ENUM64",
)

# Payload size in 32-bit words: fixed part, and per vlen entry.
_FIXED_WORDS: Final = {KIND_INT: 1, KIND_ARRAY: 3, KIND_VAR: 1, KIND_DECL_TAG: 1}
_PER_VLEN_WORDS: Final = {
    KIND_STRUCT: 3,
    KIND_UNION: 3,
    KIND_ENUM: 2,
    KIND_FUNC_PROTO: 2,
    KIND_DATASEC: 3,
    KIND_ENUM64: 3,
}
_MAX_DEPTH: Final = 64

_QUALIFIERS: Final = {
    KIND_CONST: "const",
    KIND_VOLATILE: "volatile",
    KIND_RESTRICT: "restrict",
}

# DWARF spells some integer types in an order C programmers do not write.
_INT_NAMES: Final = {
    "long unsigned int": "unsigned long",
    "long int": "long",
    "long long unsigned int": "unsigned long long",
    "long long int": "long long",
    "short unsigned int": "unsigned short",
    "short int": "short",
    "__int128 unsigned": "unsigned __int128",
}


class BTFError(LsmtraceError):
    """The BTF blob is truncated, corrupt or of an unknown version."""


@dataclass(frozen=True)
class Param:
    """One function parameter: its name (may be empty) and C type string."""

    name: str
    ctype: str


@dataclass(frozen=True)
class FuncProto:
    """A rendered function prototype."""

    ret: str
    params: tuple[Param, ...]
    variadic: bool = False

    def signature(self, name: str) -> str:
        """C-like declaration, e.g. ``int security_file_open(struct file *file)``."""
        args = [_param_decl(p) for p in self.params]
        if self.variadic:
            args.append("...")
        sep = "" if self.ret.endswith("*") else " "
        return f"{self.ret}{sep}{name}({', '.join(args) or 'void'})"

    def types(self) -> tuple[str, tuple[str, ...]]:
        """Return and parameter types for comparing prototypes.

        Parameter names and top-level qualifiers (``struct file *const``,
        ``const gfp_t``) are ignored, as C does for compatible prototypes.
        """
        return self.ret, tuple(unqualified(p.ctype) for p in self.params)


def _param_decl(p: Param) -> str:
    """``struct file *file``, ``int (*cb)(void *)``, ``char buf[16]``."""
    if not p.name:
        return p.ctype
    if "(*)" in p.ctype:
        return p.ctype.replace("(*)", f"(*{p.name})", 1)
    if p.ctype.endswith("]") and "[" in p.ctype:
        i = p.ctype.index("[")
        return f"{p.ctype[:i].rstrip()} {p.name}{p.ctype[i:]}"
    sep = "" if p.ctype.endswith("*") else " "
    return f"{p.ctype}{sep}{p.name}"


class BTF:
    """Parsed BTF: type table plus lazy rendering of C type strings."""

    def __init__(self, data: bytes, source: str = "<bytes>") -> None:
        self.source = source
        if len(data) < HEADER_LEN:
            raise BTFError(f"{source}: too short for a BTF header ({len(data)} bytes)")
        magic_le = int.from_bytes(data[0:2], "little")
        if magic_le == BTF_MAGIC:
            order = "little"
        elif int.from_bytes(data[0:2], "big") == BTF_MAGIC:
            order = "big"
        else:
            raise BTFError(f"{source}: bad BTF magic 0x{magic_le:04x}")
        version = data[2]
        if version != 1:
            raise BTFError(f"{source}: unsupported BTF version {version}")

        def u32(off: int) -> int:
            return int.from_bytes(data[off : off + 4], order)  # type: ignore[arg-type]

        hdr_len = u32(4)
        type_off, type_len, str_off, str_len = u32(8), u32(12), u32(16), u32(20)
        if hdr_len < HEADER_LEN:
            raise BTFError(f"{source}: bad header length {hdr_len}")
        t0, s0 = hdr_len + type_off, hdr_len + str_off
        if (
            t0 + type_len > len(data)
            or s0 + str_len > len(data)
            or type_len % 4
            or t0 % 4
        ):
            raise BTFError(
                f"{source}: truncated or misaligned BTF "
                f"(types {t0}+{type_len}, strings {s0}+{str_len}, file {len(data)})"
            )
        self._strings = bytes(data[s0 : s0 + str_len])
        words = array("I")
        if words.itemsize != 4:  # pragma: no cover - exotic platforms
            raise BTFError("array('I') is not 32-bit on this platform")
        words.frombytes(data[t0 : t0 + type_len])
        if order != sys.byteorder:
            words.byteswap()
        self._w = words
        self._str_cache: dict[int, str] = {}
        self._render_cache: dict[int, str] = {}
        self._parse_types()

    # -- construction -----------------------------------------------------

    @classmethod
    def from_file(cls, path: str | Path) -> BTF:
        """Read and parse a BTF file (e.g. ``/sys/kernel/btf/vmlinux``)."""
        p = Path(path)
        try:
            data = p.read_bytes()
        except OSError as exc:
            raise BTFError(f"cannot read BTF file {p}: {exc.strerror or exc}") from exc
        return cls(data, source=str(p))

    def _parse_types(self) -> None:
        w = self._w
        n = len(w)
        # Parallel lists indexed by type id; id 0 is void.
        kinds = [KIND_UNKN]
        offs = [0]  # word offset of each btf_type record
        fixed = _FIXED_WORDS
        per = _PER_VLEN_WORDS
        i = 0
        while i < n:
            if i + 3 > n:
                raise BTFError(f"{self.source}: truncated type record at word {i}")
            info = w[i + 1]
            kind = (info >> 24) & 0x1F
            if kind > KIND_ENUM64 or kind == KIND_UNKN:
                raise BTFError(
                    f"{self.source}: unknown BTF kind {kind} for type {len(kinds)}"
                )
            kinds.append(kind)
            offs.append(i)
            i += 3 + fixed.get(kind, 0) + per.get(kind, 0) * (info & 0xFFFF)
        if i != n:
            raise BTFError(f"{self.source}: type section overruns its length")
        self._kinds = kinds
        self._offs = offs
        self._by_name: dict[str, list[int]] | None = None

    # -- low level accessors ---------------------------------------------

    def __len__(self) -> int:
        """Number of type ids, including id 0 (void)."""
        return len(self._kinds)

    def string(self, off: int) -> str:
        """The NUL-terminated string at ``off`` in the string section."""
        s = self._str_cache.get(off)
        if s is None:
            if off >= len(self._strings) and off != 0:
                raise BTFError(f"{self.source}: string offset {off} out of range")
            end = self._strings.find(b"\0", off)
            if end < 0:
                end = len(self._strings)
            s = self._strings[off:end].decode("utf-8", "replace")
            self._str_cache[off] = s
        return s

    def _check(self, tid: int) -> int:
        if not 0 <= tid < len(self._kinds):
            raise BTFError(f"{self.source}: type id {tid} out of range")
        return self._offs[tid]

    def kind(self, tid: int) -> int:
        """Kind of type ``tid`` (``KIND_*``); 0 for void."""
        self._check(tid)
        return self._kinds[tid]

    def name(self, tid: int) -> str:
        """Name of type ``tid`` ('' for anonymous types and void)."""
        if tid == 0:
            return ""
        return self.string(self._w[self._check(tid)])

    def _vlen(self, tid: int) -> int:
        return self._w[self._check(tid) + 1] & 0xFFFF

    def _kind_flag(self, tid: int) -> bool:
        return bool(self._w[self._check(tid) + 1] >> 31)

    def _ref(self, tid: int) -> int:
        """``size_or_type`` of a record: the referenced type for PTR, CONST..."""
        return self._w[self._check(tid) + 2]

    def record(self, tid: int) -> tuple[int, int, int, tuple[int, ...]]:
        """Raw ``(name_off, info, size_or_type, payload words)`` of a type."""
        off = self._check(tid)
        if tid == 0:
            raise BTFError("type id 0 (void) has no record")
        end = self._offs[tid + 1] if tid + 1 < len(self._offs) else len(self._w)
        w = self._w
        return w[off], w[off + 1], w[off + 2], tuple(w[off + 3 : end])

    @property
    def strings(self) -> bytes:
        """The raw string section."""
        return self._strings

    def size(self, tid: int) -> int:
        """Byte size of INT/STRUCT/UNION/ENUM/FLOAT/DATASEC types."""
        return self._ref(tid)

    def ids_by_name(self, name: str) -> list[int]:
        """All type ids carrying ``name`` (built on first use)."""
        if self._by_name is None:
            idx: dict[str, list[int]] = {}
            w, offs, string = self._w, self._offs, self.string
            for tid in range(1, len(offs)):
                noff = w[offs[tid]]
                if noff:
                    idx.setdefault(string(noff), []).append(tid)
            self._by_name = idx
        return self._by_name.get(name, [])

    def resolve(self, tid: int) -> int:
        """Skip typedefs, qualifiers and type tags."""
        for _ in range(_MAX_DEPTH):
            if self.kind(tid) not in (
                KIND_TYPEDEF,
                KIND_VOLATILE,
                KIND_CONST,
                KIND_RESTRICT,
                KIND_TYPE_TAG,
            ):
                return tid
            tid = self._ref(tid)
        raise BTFError(f"{self.source}: type chain too deep at id {tid}")

    # -- functions ---------------------------------------------------------

    def func_ids(self) -> dict[str, int]:
        """{function name: FUNC type id} (first one wins on duplicate names)."""
        out: dict[str, int] = {}
        w, offs, kinds, string = self._w, self._offs, self._kinds, self.string
        for tid in range(1, len(kinds)):
            if kinds[tid] == KIND_FUNC:
                name = string(w[offs[tid]])
                if name not in out:
                    out[name] = tid
        return out

    def func_proto(self, func_id: int) -> FuncProto:
        """Rendered prototype of a FUNC (or FUNC_PROTO) type id."""
        tid = func_id
        if self.kind(tid) == KIND_FUNC:
            tid = self._ref(tid)
        if self.kind(tid) != KIND_FUNC_PROTO:
            raise BTFError(f"{self.source}: type {func_id} is not a function")
        w = self._w
        base = self._check(tid) + 3
        params: list[Param] = []
        variadic = False
        for k in range(self._vlen(tid)):
            noff, ptype = w[base + 2 * k], w[base + 2 * k + 1]
            if ptype == 0 and noff == 0:
                variadic = True
                continue
            params.append(Param(self.string(noff), self.type_str(ptype)))
        return FuncProto(self.type_str(self._ref(tid)), tuple(params), variadic)

    def functions(self) -> dict[str, FuncProto]:
        """{name: FuncProto} for every FUNC in the BTF."""
        return {name: self.func_proto(tid) for name, tid in self.func_ids().items()}

    # -- structs and enums ---------------------------------------------------

    def struct_members(self, name: str) -> list[tuple[str, str, int]]:
        """Members of the (first complete) struct or union ``name``.

        Returns ``[(member name, C type, bit offset)]``; anonymous members have
        an empty name.  Raises ``KeyError`` when there is no such type.
        """
        for tid in self.ids_by_name(name):
            if self._kinds[tid] in (KIND_STRUCT, KIND_UNION):
                return self._members(tid)
        raise KeyError(name)

    def _members(self, tid: int) -> list[tuple[str, str, int]]:
        w = self._w
        base = self._check(tid) + 3
        bitfield = self._kind_flag(tid)
        out = []
        for k in range(self._vlen(tid)):
            noff, mtype, moff = w[base + 3 * k : base + 3 * k + 3]
            off = moff & 0xFFFFFF if bitfield else moff
            out.append((self.string(noff), self.type_str(mtype), off))
        return out

    def member_offset(self, struct: str, path: str) -> int:
        """Byte offset of ``path`` ("ns.inum", "__sk_common.skc_num") in
        ``struct``, looking through anonymous struct/union members.

        Raises ``KeyError`` when the struct or a member is missing.
        """
        tid = next(
            (
                t
                for t in self.ids_by_name(struct)
                if self._kinds[t] in (KIND_STRUCT, KIND_UNION)
            ),
            None,
        )
        if tid is None:
            raise KeyError(struct)
        found = self._find_member(tid, path.split("."), 0)
        if found is None:
            raise KeyError(f"{struct}.{path}")
        return found

    def _find_member(self, tid: int, parts: list[str], base_bits: int) -> int | None:
        w = self._w
        start = self._check(tid) + 3
        bitfield = self._kind_flag(tid)
        for k in range(self._vlen(tid)):
            noff, mtype, moff = w[start + 3 * k : start + 3 * k + 3]
            off = base_bits + (moff & 0xFFFFFF if bitfield else moff)
            name = self.string(noff)
            rt = self.resolve(mtype)
            if name == parts[0]:
                if len(parts) == 1:
                    return off // 8
                if self._kinds[rt] in (KIND_STRUCT, KIND_UNION):
                    return self._find_member(rt, parts[1:], off)
                return None
            if not name and self._kinds[rt] in (KIND_STRUCT, KIND_UNION):
                hit = self._find_member(rt, parts, off)
                if hit is not None:
                    return hit
        return None

    def enum_values(self, name: str) -> dict[str, int]:
        """Enumerators of ``enum name`` (ENUM or ENUM64), signedness honoured."""
        for tid in self.ids_by_name(name):
            kind = self._kinds[tid]
            if kind not in (KIND_ENUM, KIND_ENUM64):
                continue
            w = self._w
            base = self._check(tid) + 3
            signed = self._kind_flag(tid)
            out: dict[str, int] = {}
            step = 2 if kind == KIND_ENUM else 3
            for k in range(self._vlen(tid)):
                e = base + step * k
                val = w[e + 1] if kind == KIND_ENUM else w[e + 1] | (w[e + 2] << 32)
                bits = 32 if kind == KIND_ENUM else 64
                if signed and val >> (bits - 1):
                    val -= 1 << bits
                out[self.string(w[e])] = val
            return out
        raise KeyError(name)

    # -- C rendering ---------------------------------------------------------

    def type_str(self, tid: int) -> str:
        """C spelling of a type without a declarator name ("struct file *")."""
        s = self._render_cache.get(tid)
        if s is None:
            s = self._render(tid, "", 0)
            self._render_cache[tid] = s
        return s

    def decl(self, tid: int, name: str) -> str:
        """C declaration of ``name`` with type ``tid`` ("char *argv[4]")."""
        return self._render(tid, name, 0)

    def _base(self, tid: int) -> str:
        kind = self._kinds[tid]
        name = self.name(tid)
        if kind in (KIND_STRUCT, KIND_UNION):
            tag = "struct" if kind == KIND_STRUCT else "union"
            return f"{tag} {name}" if name else f"{tag} {{...}}"
        if kind in (KIND_ENUM, KIND_ENUM64):
            return f"enum {name}" if name else "enum {...}"
        if kind == KIND_FWD:
            return f"{'union' if self._kind_flag(tid) else 'struct'} {name}"
        if kind == KIND_INT:
            return _INT_NAMES.get(name, name)
        return name or "?"

    def _render(self, tid: int, decl: str, depth: int) -> str:
        if depth > _MAX_DEPTH:
            raise BTFError(f"{self.source}: type chain too deep at id {tid}")
        if tid == 0:
            return f"void {decl}" if decl else "void"
        self._check(tid)
        kind = self._kinds[tid]
        if kind == KIND_PTR:
            return self._render(self._ref(tid), "*" + decl, depth + 1)
        if kind in _QUALIFIERS:
            # Gather a run of qualifiers; they bind to a pointer when one follows.
            quals: list[str] = []
            target = tid
            while target and self.kind(target) in (*_QUALIFIERS, KIND_TYPE_TAG):
                q = _QUALIFIERS.get(self._kinds[target])
                if q and q not in quals:
                    quals.append(q)
                target = self._ref(target)
                depth += 1
                if depth > _MAX_DEPTH:
                    raise BTFError(f"{self.source}: type chain too deep at id {tid}")
            qual = " ".join(quals)
            if target and self._kinds[target] == KIND_PTR:
                return self._render(target, f"{qual} {decl}".rstrip(), depth + 1)
            return f"{qual} {self._render(target, decl, depth + 1)}"
        if kind == KIND_TYPE_TAG:
            return self._render(self._ref(tid), decl, depth + 1)
        if kind == KIND_ARRAY:
            elem, _index, nelems = self._w[self._offs[tid] + 3 : self._offs[tid] + 6]
            inner = f"({decl})" if decl.startswith("*") else decl
            return self._render(elem, f"{inner}[{nelems}]", depth + 1)
        if kind == KIND_FUNC_PROTO:
            inner = f"({decl})" if decl.startswith("*") else decl
            w = self._w
            base = self._offs[tid] + 3
            args = []
            for k in range(self._vlen(tid)):
                ptype = w[base + 2 * k + 1]
                args.append("..." if ptype == 0 else self._render(ptype, "", depth + 1))
            arglist = ", ".join(args) or "void"
            return self._render(self._ref(tid), f"{inner}({arglist})", depth + 1)
        if kind == KIND_FUNC:
            return self._render(self._ref(tid), decl, depth + 1)
        base_name = self._base(tid)
        if not decl:
            return base_name
        sep = "" if decl.startswith("[") else " "
        return f"{base_name}{sep}{decl}"


def unqualified(ctype: str) -> str:
    """Drop top-level const/volatile/restrict from a rendered C type."""
    if "(" not in ctype and "[" not in ctype:
        if "*" in ctype:
            return _TRAILING_QUALS.sub("*", ctype)
        return _LEADING_QUALS.sub("", ctype)
    return ctype


_TRAILING_QUALS: Final = re.compile(r"\*(?:\s*\b(?:const|volatile|restrict)\b)+$")
_LEADING_QUALS: Final = re.compile(r"^(?:(?:const|volatile|restrict)\s+)+")


@functools.lru_cache(maxsize=2)
def load(path: str | Path = "/sys/kernel/btf/vmlinux") -> BTF:
    """Parse the BTF file at ``path`` (once per process: ~0.1 s for vmlinux)."""
    return BTF.from_file(path)


def _code_text(code: types.CodeType) -> bytes:
    """The bytecode and constants of `code` and of the code objects nested in
    it (comprehensions, inner functions), without their addresses: repr() of a
    nested code object names its address, which changes with every process."""
    parts = [code.co_code]
    for c in code.co_consts:
        parts.append(
            _code_text(c) if isinstance(c, types.CodeType) else repr(c).encode()
        )
    return b"\0".join(parts)


def cached_facts(
    name: str, compute: Callable[[], T], path: Path = Path("/sys/kernel/btf/vmlinux")
) -> T:
    """A JSON-able fact computed from this kernel's BTF, cached on disk next to
    the synthesized headers (keyed by release and BTF digest): parsing BTF
    and indexing its names costs ~0.3 s of every start otherwise. The key
    also hashes `compute`'s code: a newer lsmtrace that computes more (new
    struct offsets) never reads an older version's answer."""
    import hashlib
    import json
    import platform

    from lsmtrace.kheaders import btf_digest, default_cache_root, write_cache_json

    f: Path | None = None
    try:
        code = getattr(compute, "__code__", None)
        text = _code_text(code) if code else name.encode()
        ver = hashlib.sha256(text).hexdigest()[:8]
        key = f"{platform.release()}-{btf_digest(path)[:16]}"
        f = default_cache_root() / "btf" / f"{key}-{name}-{ver}.json"
        return json.loads(f.read_text())  # type: ignore[no-any-return]
    except (OSError, ValueError):
        pass
    value = compute()
    if f is not None:
        try:
            write_cache_json(f, value)
        except OSError as e:
            log.debug("BTF facts not cached: %s", e)
    return value
