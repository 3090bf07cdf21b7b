"""The LSM hook catalogue, built from the kernel's BTF (pure Python, no root).

Where the hook list comes from
    With ``CONFIG_BPF_LSM`` every LSM hook ``X`` has a stub ``bpf_lsm_X`` with
    exactly the hook's prototype; that list is authoritative (minus the BPF-LSM
    helpers in :data:`NOT_HOOKS`).  A ``bpf_lsm_X`` only counts as a hook when
    ``X`` also has a ``security_*`` wrapper or an implementation in another LSM,
    or is a known wrapper-less hook.  Without BPF-LSM we fall back to the
    ``security_*`` functions themselves: the hook name is then derived from the
    wrapper name only (``Catalogue.source == "security"``), the hook prototype is
    the wrapper's, and hooks without a wrapper are missing.

Wrapper
    ``Hook.function`` is the ``security_*`` function that calls the hook:
    ``security_<hook>``, or ``security_<stem>`` for ``<stem>_security`` hooks
    (``bprm_check_security`` -> ``security_bprm_check``), or an entry of
    :data:`WRAPPER_ALIASES`.  ``wrapper_matches`` says whether its prototype
    (types only, names ignored) equals the hook's; when it does not, trace it
    with ``wrapper_ret``/``wrapper_params``, never with the hook's prototype.

Implementations
    Found by name: ``<prefix><hook>`` for the prefixes in :data:`LSM_PREFIXES`
    (also trying ``<prefix><hook>_security`` and ``<prefix>security_<hook>``),
    plus :data:`IMPL_ALIASES`.  An implementation is kept only when the hook
    exists; one whose prototype differs is kept but flagged
    (``matches_prototype=False``) and :meth:`Catalogue.impls_for` never returns
    it.  Name matching cannot tell whether a function is really registered as
    the hook (e.g. ``cap_inode_setxattr`` is called directly by the wrapper), so
    a match is a strong hint, not proof.

Families (:func:`family_of`, rules in :data:`_FAMILY_EXACT` then
:data:`_FAMILY_PREFIXES`)
    file        file_*, mmap_*, backing_file_*
    inode       inode_*, dentry_*, d_instantiate, kernfs_*
    path        path_*
    exec        bprm_*
    task        task_*, setprocattr/getprocattr, set/getselfattr
    cred        cred_*, kernel_act_as, kernel_create_files_as, userns_create
    capability  capable, capget, capset, settime, syslog, vm_enough_memory
    ptrace      ptrace_*
    network     socket_*, sk_*, sock_*, inet_*, tun_*, sctp_*, xfrm_*, unix_*,
                secmark_*, netlink_send, req_classify_flow, mptcp_*, ib_*
    ipc         ipc_*, msg_*, shm_*, sem_*, binder_*, watch_key, post_notification
    key         key_*
    bpf         bpf, bpf_*
    kernel      kernel_*, locked_down, initramfs_populated
    mount       sb_*, move_mount, fs_context_*, quota*, mount_*
    audit       audit_*
    other       everything else (secctx/lsmprop conversions, perf, io_uring...)
"""

from __future__ import annotations

import difflib
import fnmatch
import hashlib
import json
import logging
import os
import re
import textwrap
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from lsmtrace.btf import BTF, BTFError, FuncProto, Param
from lsmtrace.errors import KernelFeatureError, UsageError

__all__ = [
    "CACHE_SCHEMA",
    "DEFAULT_BTF_PATH",
    "DEFAULT_HOOKS",
    "FAMILIES",
    "IMPL_ALIASES",
    "LSMS",
    "LSM_PREFIXES",
    "NOT_HOOKS",
    "WRAPPERLESS_HOOKS",
    "WRAPPER_ALIASES",
    "Catalogue",
    "Hook",
    "Impl",
    "Param",
    "build_catalogue",
    "catalogue_from_json",
    "catalogue_to_dict",
    "catalogue_to_json",
    "default_cache_dir",
    "family_of",
    "load_catalogue",
    "render_catalogue",
]

log = logging.getLogger(__name__)

DEFAULT_BTF_PATH: Final = "/sys/kernel/btf/vmlinux"
CACHE_SCHEMA: Final = 1

# Decisions worth watching by default.  inode_permission is deliberately absent:
# it fires once per path component of every lookup.
DEFAULT_HOOKS: Final[tuple[str, ...]] = (
    # files
    "file_open",
    "file_permission",
    "mmap_file",
    "file_mprotect",
    # exec
    "bprm_check_security",
    "bprm_creds_for_exec",
    "bprm_creds_from_file",
    # attributes
    "path_chmod",
    "path_chown",
    "inode_setattr",
    # namespace changes
    "path_unlink",
    "inode_unlink",
    "path_rename",
    "inode_rename",
    "path_mknod",
    "path_mkdir",
    "path_rmdir",
    "path_symlink",
    "path_link",
    "inode_create",
    "inode_mkdir",
    # mounts
    "sb_mount",
    "sb_umount",
    "move_mount",
    "path_chroot",
    # tasks and credentials
    "ptrace_access_check",
    "ptrace_traceme",
    "task_kill",
    "task_fix_setuid",
    "task_fix_setgid",
    "capable",
    # network
    "socket_create",
    "socket_connect",
    "socket_bind",
    "socket_listen",
    "socket_accept",
    "socket_sendmsg",
    # kernel
    "kernel_module_request",
    "kernel_load_data",
    "kernel_read_file",
    "bpf",
    "locked_down",
)

# bpf_lsm_* functions that are BPF-LSM machinery, not hooks.  ``init`` matters:
# ``security_init`` exists, so the wrapper rule alone would accept it.
NOT_HOOKS: Final = frozenset(
    {
        "init",
        "verify_prog",
        "find_cgroup_shim",
        "is_sleepable_hook",
        "is_trusted",
        "func_proto",
        "get_retval_range",
        "has_d_inode_locked",
        "hook_returns_errno",
    }
)

# Hooks that the framework calls without a security_<hook> function of their
# own (6.18: skipcap is called from security_inode_{set,remove}xattr, the rcu
# free from inode_free_by_rcu()).  Listed so they stay hooks even when no
# compiled-in LSM implements them.
WRAPPERLESS_HOOKS: Final = frozenset({"inode_xattr_skipcap", "inode_free_security_rcu"})

# hook -> wrapper, where the name rules do not find it (checked on 6.18 BTF).
WRAPPER_ALIASES: Final[Mapping[str, str]] = {
    "settime": "security_settime64",
    "vm_enough_memory": "security_vm_enough_memory_mm",
    "cred_prepare": "security_prepare_creds",
    "cred_transfer": "security_transfer_creds",
    "socket_sock_rcv_skb": "security_sock_rcv_skb",
    "userns_create": "security_create_user_ns",
    "sb_free_mnt_opts": "security_free_mnt_opts",
    # sk_getsecid is called by security_sk_classify_flow with other arguments.
    "sk_getsecid": "security_sk_classify_flow",
}

# (lsm, function-name prefix).  Order matters only for readability.
LSM_PREFIXES: Final[tuple[tuple[str, str], ...]] = (
    ("capability", "cap_"),
    ("selinux", "selinux_"),
    ("apparmor", "apparmor_"),
    ("smack", "smack_"),
    ("tomoyo", "tomoyo_"),
    ("landlock", "hook_"),
    ("yama", "yama_"),
    ("safesetid", "safesetid_"),
    ("loadpin", "loadpin_"),
    ("ipe", "ipe_"),
    ("integrity", "ima_"),
    ("integrity", "evm_"),
    ("integrity", "integrity_"),
    ("lockdown", "lockdown_"),
    ("bpf", "bpf_lsm_"),
)

LSMS: Final = tuple(dict.fromkeys(lsm for lsm, _ in LSM_PREFIXES))

# Implementations whose names do not follow <prefix><hook>: function -> (lsm, hook).
# Verified in the 6.18 BTF: lockdown, selinux (selinux_mount, selinux_umount,
# selinux_free_mnt_opts, selinux_set_mnt_opts, selinux_socket_unix_*,
# selinux_xfrm_*).  The apparmor/smack/integrity/loadpin/safesetid rows come
# from the kernel sources (those LSMs are not built on the reference kernel);
# a wrong row cannot do harm: the prototype check flags it.
IMPL_ALIASES: Final[Mapping[str, tuple[str, str]]] = {
    "lockdown_is_locked_down": ("lockdown", "locked_down"),
    "selinux_mount": ("selinux", "sb_mount"),
    "selinux_umount": ("selinux", "sb_umount"),
    "selinux_free_mnt_opts": ("selinux", "sb_free_mnt_opts"),
    "selinux_set_mnt_opts": ("selinux", "sb_set_mnt_opts"),
    "selinux_socket_unix_may_send": ("selinux", "unix_may_send"),
    "selinux_socket_unix_stream_connect": ("selinux", "unix_stream_connect"),
    "selinux_xfrm_policy_alloc": ("selinux", "xfrm_policy_alloc_security"),
    "selinux_xfrm_policy_clone": ("selinux", "xfrm_policy_clone_security"),
    "selinux_xfrm_policy_free": ("selinux", "xfrm_policy_free_security"),
    "selinux_xfrm_policy_delete": ("selinux", "xfrm_policy_delete_security"),
    "selinux_xfrm_state_free": ("selinux", "xfrm_state_free_security"),
    "selinux_xfrm_state_delete": ("selinux", "xfrm_state_delete_security"),
    "apparmor_socket_sock_rcv_skb": ("apparmor", "socket_sock_rcv_skb"),
    "smack_socket_sock_rcv_skb": ("smack", "socket_sock_rcv_skb"),
    "safesetid_security_capable": ("safesetid", "capable"),
    "loadpin_read_file": ("loadpin", "kernel_read_file"),
    "loadpin_load_data": ("loadpin", "kernel_load_data"),
    "ima_file_check": ("integrity", "file_post_open"),
    "ima_file_free": ("integrity", "file_release"),
    "ima_read_file": ("integrity", "kernel_read_file"),
    "ima_post_read_file": ("integrity", "kernel_post_read_file"),
    "ima_load_data": ("integrity", "kernel_load_data"),
    "ima_post_load_data": ("integrity", "kernel_post_load_data"),
    "ima_post_path_mknod": ("integrity", "path_post_mknod"),
    "evm_file_release": ("integrity", "file_release"),
    "evm_post_path_mknod": ("integrity", "path_post_mknod"),
}

_FAMILY_EXACT: Final[Mapping[str, str]] = {
    "capable": "capability",
    "capget": "capability",
    "capset": "capability",
    "settime": "capability",
    "syslog": "capability",
    "vm_enough_memory": "capability",
    "locked_down": "kernel",
    "initramfs_populated": "kernel",
    "kernel_act_as": "cred",
    "kernel_create_files_as": "cred",
    "current_getlsmprop_subj": "cred",
    "userns_create": "cred",
    "move_mount": "mount",
    "bpf": "bpf",
    "netlink_send": "network",
    "req_classify_flow": "network",
    "d_instantiate": "inode",
    "setprocattr": "task",
    "getprocattr": "task",
    "setselfattr": "task",
    "getselfattr": "task",
    "watch_key": "ipc",
    "post_notification": "ipc",
}

_FAMILY_PREFIXES: Final[tuple[tuple[str, str], ...]] = (
    ("file_", "file"),
    ("mmap_", "file"),
    ("backing_file_", "file"),
    ("inode_", "inode"),
    ("dentry_", "inode"),
    ("kernfs_", "inode"),
    ("path_", "path"),
    ("bprm_", "exec"),
    ("task_", "task"),
    ("cred_", "cred"),
    ("ptrace_", "ptrace"),
    ("socket_", "network"),
    ("sk_", "network"),
    ("sock_", "network"),
    ("inet_", "network"),
    ("tun_", "network"),
    ("sctp_", "network"),
    ("xfrm_", "network"),
    ("unix_", "network"),
    ("secmark_", "network"),
    ("mptcp_", "network"),
    ("ib_", "network"),
    ("ipc_", "ipc"),
    ("msg_", "ipc"),
    ("shm_", "ipc"),
    ("sem_", "ipc"),
    ("binder_", "ipc"),
    ("key_", "key"),
    ("bpf_", "bpf"),
    ("kernel_", "kernel"),
    ("sb_", "mount"),
    ("fs_context_", "mount"),
    ("quota", "mount"),
    ("mount_", "mount"),
    ("audit_", "audit"),
)

FAMILIES: Final[tuple[str, ...]] = (
    "file",
    "inode",
    "path",
    "exec",
    "task",
    "cred",
    "capability",
    "ptrace",
    "network",
    "ipc",
    "key",
    "bpf",
    "kernel",
    "mount",
    "audit",
    "other",
)


def family_of(hook: str) -> str:
    """Family of a hook name (see the module docstring)."""
    fam = _FAMILY_EXACT.get(hook)
    if fam is not None:
        return fam
    for prefix, fam in _FAMILY_PREFIXES:
        if hook.startswith(prefix):
            return fam
    return "other"


@dataclass(frozen=True)
class Hook:
    """One LSM hook and the ``security_*`` wrapper that calls it.

    ``function`` is ``None`` when the framework calls the hook without a wrapper
    of its own (then only the ``bpf_lsm_<hook>`` stub can be traced).
    """

    name: str
    function: str | None
    ret: str
    params: tuple[Param, ...]
    family: str
    default: bool
    wrapper_matches: bool
    wrapper_ret: str = ""
    wrapper_params: tuple[Param, ...] = ()

    @property
    def signature(self) -> str:
        """``int file_open(struct file *file)``."""
        return FuncProto(self.ret, self.params).signature(self.name)


@dataclass(frozen=True)
class Impl:
    """A function of one LSM that implements a hook."""

    lsm: str
    function: str
    hook: str
    matches_prototype: bool


@dataclass
class Catalogue:
    """Every hook of one kernel, who implements it, and selection helpers."""

    hooks: dict[str, Hook]
    impls: dict[str, tuple[Impl, ...]]
    kernel_release: str
    btf_sha256: str = ""
    source: str = "bpf_lsm"  # or "security": hooks by wrapper name only
    missing_defaults: tuple[str, ...] = field(default=())

    def default_hooks(self) -> list[Hook]:
        """The default selection, in :data:`DEFAULT_HOOKS` order."""
        return [self.hooks[n] for n in DEFAULT_HOOKS if n in self.hooks]

    def families(self) -> list[str]:
        """Families present in this catalogue, in :data:`FAMILIES` order."""
        present = {h.family for h in self.hooks.values()}
        return [f for f in FAMILIES if f in present]

    def select(
        self, globs: list[str] | None = None, families: list[str] | None = None
    ) -> list[Hook]:
        """Hooks matching any glob or any family (union); both None: defaults.

        Raises :class:`UsageError` for a glob that matches nothing or an unknown
        family, with close matches as the hint.
        """
        if globs is None and families is None:
            return self.default_hooks()
        names = sorted(self.hooks)
        chosen: set[str] = set()
        for glob in globs or []:
            hits = fnmatch.filter(names, glob)
            if not hits:
                stem = glob.replace("*", "").replace("?", "").strip("[]")
                close = difflib.get_close_matches(stem, names, n=5, cutoff=0.6)
                hint = (
                    f"did you mean: {', '.join(close)}?"
                    if close
                    else "`lsmtrace hooks --all` lists the hooks of this kernel"
                )
                raise UsageError(f"no hook matches {glob!r}", hint)
            chosen.update(hits)
        known = self.families()
        for fam in families or []:
            if fam not in known:
                close = difflib.get_close_matches(fam, known, n=3)
                hint = f"families: {', '.join(known)}"
                if close:
                    hint = f"did you mean {close[0]!r}? {hint}"
                raise UsageError(f"unknown hook family {fam!r}", hint)
            chosen.update(n for n, h in self.hooks.items() if h.family == fam)
        order = {n: i for i, n in enumerate(DEFAULT_HOOKS)}
        return [
            self.hooks[n]
            for n in sorted(chosen, key=lambda n: (order.get(n, len(order)), n))
        ]

    def impls_for(self, hook: str | Hook, lsms: Iterable[str]) -> list[Impl]:
        """Traceable implementations of ``hook`` by the given (active) LSMs."""
        name = hook.name if isinstance(hook, Hook) else hook
        active = set(lsms)
        return [
            i
            for i in self.impls.get(name, ())
            if i.matches_prototype and i.lsm in active
        ]

    def impl_counts(self) -> dict[str, int]:
        """{lsm: number of prototype-matching implementations}."""
        counts: dict[str, int] = {}
        for impls in self.impls.values():
            for i in impls:
                if i.matches_prototype:
                    counts[i.lsm] = counts.get(i.lsm, 0) + 1
        return counts


# -- building ----------------------------------------------------------------


def _wrapper_candidates(hook: str) -> list[str]:
    out = []
    alias = WRAPPER_ALIASES.get(hook)
    if alias:
        out.append(alias)
    if hook.endswith("_security"):
        out.append("security_" + hook[: -len("_security")])
    out.append("security_" + hook)
    return out


def _impl_hook(func: str, prefix: str, hooks: Mapping[str, Any]) -> str | None:
    stem = func[len(prefix) :]
    for cand in (stem, stem + "_security", stem.removeprefix("security_")):
        if cand in hooks:
            return cand
    return None


# security_* functions that are not wrappers, for the no-BPF-LSM fallback
# (SELinux's security server also uses the security_ prefix).
_NOT_WRAPPER_RE: Final = re.compile(
    r"^security_(init|add_hooks|show|store|disable|.*_sid.*|sid_.*|context_.*|"
    r"compute_.*|get_.*|set_bools|load_policy|read_.*|policycap_supported|"
    r"mls_enabled|bounded_transition|validate_transition.*|change_sid|fs_use|"
    r"dump_masked_av|net_peersid_resolve|netlbl_.*|transition_sid.*|"
    r"genfs_sid|member_sid|sidtab_hash_stats)$"
)

# Hooks named <stem>_security whose wrapper is security_<stem> (6.18 list), for
# the no-BPF-LSM fallback; with BPF-LSM the hook names come from the stubs.
_SECURITY_SUFFIX_STEMS: Final = frozenset(
    [
        "bdev_alloc",
        "bdev_free",
        "bprm_check",
        "dentry_init",
        "file_alloc",
        "file_free",
        "inode_alloc",
        "inode_free",
        "inode_init",
        "kernfs_init",
        "msg_msg_alloc",
        "msg_msg_free",
        "msg_queue_alloc",
        "msg_queue_free",
        "sb_alloc",
        "sb_free",
        "sem_alloc",
        "sem_free",
        "shm_alloc",
        "shm_free",
        "sk_alloc",
        "sk_clone",
        "sk_free",
        "tun_dev_alloc",
        "xfrm_policy_alloc",
        "xfrm_policy_clone",
        "xfrm_policy_delete",
        "xfrm_policy_free",
        "xfrm_state_delete",
        "xfrm_state_free",
    ]
)


def build_catalogue(
    btf: BTF,
    kernel_release: str,
    *,
    btf_sha256: str = "",
    use_bpf_lsm: bool = True,
) -> Catalogue:
    """Build the catalogue from parsed BTF (see the module docstring)."""
    funcs = btf.func_ids()
    protos: dict[str, FuncProto] = {}

    def proto(name: str) -> FuncProto:
        p = protos.get(name)
        if p is None:
            p = protos[name] = btf.func_proto(funcs[name])
        return p

    hook_protos: dict[str, FuncProto] = {}
    wrappers: dict[str, str | None] = {}
    stubs = sorted(n[8:] for n in funcs if n.startswith("bpf_lsm_"))
    source = "bpf_lsm" if use_bpf_lsm and stubs else "security"
    if source == "bpf_lsm":
        candidates = [h for h in stubs if h not in NOT_HOOKS]
        for h in candidates:
            hook_protos[h] = proto("bpf_lsm_" + h)
            wrappers[h] = next((w for w in _wrapper_candidates(h) if w in funcs), None)
    else:
        log.info("no bpf_lsm_* stubs in BTF: hooks derived from security_* names")
        reverse = {w: h for h, w in WRAPPER_ALIASES.items()}
        for fn in sorted(funcs):
            if not fn.startswith("security_") or _NOT_WRAPPER_RE.match(fn):
                continue
            stem = fn[len("security_") :]
            h = reverse.get(fn) or (
                stem + "_security" if stem in _SECURITY_SUFFIX_STEMS else stem
            )
            if family_of(h) == "other" and fn not in reverse:
                continue
            hook_protos[h] = proto(fn)
            wrappers[h] = fn

    # Implementations by name, kept only for existing hooks.
    found: dict[str, list[Impl]] = {}
    for fn in funcs:
        hit: tuple[str, str] | None = IMPL_ALIASES.get(fn)
        if hit is None:
            for lsm, prefix in LSM_PREFIXES:
                if fn.startswith(prefix):
                    target = _impl_hook(fn, prefix, hook_protos)
                    if target is not None:
                        hit = (lsm, target)
                    break
        if hit is None or hit[1] not in hook_protos:
            continue
        lsm, h = hit
        ok = proto(fn).types() == hook_protos[h].types()
        if not ok:
            log.debug("%s: prototype differs from hook %s", fn, h)
        found.setdefault(h, []).append(Impl(lsm, fn, h, ok))

    hooks: dict[str, Hook] = {}
    defaults = set(DEFAULT_HOOKS)
    for h, hp in sorted(hook_protos.items()):
        wrapper = wrappers[h]
        others = [i for i in found.get(h, []) if i.lsm != "bpf"]
        if (
            source == "bpf_lsm"
            and wrapper is None
            and not others
            and h not in WRAPPERLESS_HOOKS
        ):
            log.debug("bpf_lsm_%s: no wrapper, no implementation: not a hook", h)
            found.pop(h, None)
            continue
        wp = proto(wrapper) if wrapper else None
        hooks[h] = Hook(
            name=h,
            function=wrapper,
            ret=hp.ret,
            params=hp.params,
            family=family_of(h),
            default=h in defaults,
            wrapper_matches=wp is not None and wp.types() == hp.types(),
            wrapper_ret=wp.ret if wp else "",
            wrapper_params=wp.params if wp else (),
        )
    impls = {
        h: tuple(sorted(v, key=lambda i: (LSMS.index(i.lsm), i.function)))
        for h, v in sorted(found.items())
        if h in hooks
    }
    missing = tuple(n for n in DEFAULT_HOOKS if n not in hooks)
    if missing:
        log.info("default hooks missing on this kernel: %s", ", ".join(missing))
    return Catalogue(hooks, impls, kernel_release, btf_sha256, source, missing)


# -- JSON and cache ------------------------------------------------------------


def _params_json(params: tuple[Param, ...]) -> list[list[str]]:
    return [[p.name, p.ctype] for p in params]


def _params_from(raw: list[list[str]]) -> tuple[Param, ...]:
    return tuple(Param(str(n), str(t)) for n, t in raw)


def catalogue_to_dict(cat: Catalogue) -> dict[str, Any]:
    """Plain-data form of the catalogue (the ``hooks --json`` document)."""
    return {
        "schema": CACHE_SCHEMA,
        "kernel_release": cat.kernel_release,
        "btf_sha256": cat.btf_sha256,
        "source": cat.source,
        "missing_defaults": list(cat.missing_defaults),
        "hooks": [
            {
                "name": h.name,
                "function": h.function,
                "ret": h.ret,
                "params": _params_json(h.params),
                "family": h.family,
                "default": h.default,
                "wrapper_matches": h.wrapper_matches,
                "wrapper_ret": h.wrapper_ret,
                "wrapper_params": _params_json(h.wrapper_params),
                "impls": [
                    {
                        "lsm": i.lsm,
                        "function": i.function,
                        "matches_prototype": i.matches_prototype,
                    }
                    for i in cat.impls.get(h.name, ())
                ],
            }
            for h in cat.hooks.values()
        ],
    }


def catalogue_to_json(cat: Catalogue) -> str:
    """JSON text of :func:`catalogue_to_dict` (for ``lsmtrace hooks --json``)."""
    return json.dumps(catalogue_to_dict(cat), indent=1)


def catalogue_from_json(text: str) -> Catalogue:
    """Inverse of :func:`catalogue_to_json`; ``ValueError`` if malformed."""
    try:
        doc = json.loads(text)
        if doc.get("schema") != CACHE_SCHEMA:
            raise ValueError(f"schema {doc.get('schema')!r} != {CACHE_SCHEMA}")
        hooks: dict[str, Hook] = {}
        impls: dict[str, tuple[Impl, ...]] = {}
        for raw in doc["hooks"]:
            name = str(raw["name"])
            hooks[name] = Hook(
                name=name,
                function=raw["function"],
                ret=str(raw["ret"]),
                params=_params_from(raw["params"]),
                family=str(raw["family"]),
                default=bool(raw["default"]),
                wrapper_matches=bool(raw["wrapper_matches"]),
                wrapper_ret=str(raw["wrapper_ret"]),
                wrapper_params=_params_from(raw["wrapper_params"]),
            )
            if raw["impls"]:
                impls[name] = tuple(
                    Impl(
                        str(i["lsm"]),
                        str(i["function"]),
                        name,
                        bool(i["matches_prototype"]),
                    )
                    for i in raw["impls"]
                )
        return Catalogue(
            hooks,
            impls,
            str(doc["kernel_release"]),
            str(doc["btf_sha256"]),
            str(doc["source"]),
            tuple(doc["missing_defaults"]),
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"malformed catalogue JSON: {exc!r}") from exc


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/lsmtrace``, else /var/cache/lsmtrace (root) or ~/.cache."""
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg:
        return Path(xdg) / "lsmtrace"
    if os.geteuid() == 0:
        return Path("/var/cache/lsmtrace")
    return Path.home() / ".cache" / "lsmtrace"


def _safe(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+-]", "_", s)


def load_catalogue(
    btf_path: str | Path = DEFAULT_BTF_PATH,
    cache_dir: str | Path | None = None,
    *,
    kernel_release: str | None = None,
    use_cache: bool = True,
) -> Catalogue:
    """Catalogue of the kernel whose BTF is at ``btf_path``, cached as JSON.

    The cache key is ``uname -r`` plus the sha256 of the BTF file; an unreadable
    or unwritable cache is ignored.  A missing BTF file raises
    :class:`KernelFeatureError`.
    """
    path = Path(btf_path)
    release = kernel_release or os.uname().release
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise KernelFeatureError(
            f"no BTF at {path}: the hook catalogue is built from kernel BTF",
            "use a kernel built with CONFIG_DEBUG_INFO_BTF=y (most distribution "
            "kernels are)",
        ) from exc
    except OSError as exc:
        raise KernelFeatureError(
            f"cannot read BTF at {path}: {exc.strerror or exc}",
            "check the file's permissions",
        ) from exc
    digest = hashlib.sha256(data).hexdigest()
    cache_file: Path | None = None
    if use_cache:
        cdir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        cache_file = cdir / f"hooks-{_safe(release)}-{digest[:20]}.json"
        try:
            cat = catalogue_from_json(cache_file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            pass
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable hook cache %s: %s", cache_file, exc)
        else:
            if cat.btf_sha256 == digest and cat.kernel_release == release:
                log.debug("hook catalogue from cache %s", cache_file)
                return cat
    try:
        btf = BTF(data, source=str(path))
    except BTFError as exc:
        raise KernelFeatureError(
            exc.message,
            "the BTF file is corrupt or truncated; check CONFIG_DEBUG_INFO_BTF",
        ) from exc
    cat = build_catalogue(btf, release, btf_sha256=digest)
    if cache_file is not None:
        try:
            cache_file.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache_file.with_suffix(f".tmp{os.getpid()}")
            tmp.write_text(catalogue_to_json(cat), encoding="utf-8")
            tmp.replace(cache_file)
        except OSError as exc:
            log.debug("hook cache %s not written: %s", cache_file, exc)
    return cat


# -- text rendering ------------------------------------------------------------


def _lsm_list(cat: Catalogue, hook: str) -> str:
    parts = []
    for i in cat.impls.get(hook, ()):
        if i.lsm == "bpf":
            continue  # every hook has its bpf_lsm_ stub
        label = i.lsm if i.matches_prototype else f"{i.lsm}!"
        if label not in parts:
            parts.append(label)
    return ",".join(parts) or "-"


def render_catalogue(
    cat: Catalogue,
    rung_status: Mapping[str, Mapping[str, str]] | None = None,
    verbose: bool = False,
    width: int = 80,
) -> str:
    """Text of ``lsmtrace hooks``: defaults (or all hooks with ``verbose``).

    ``rung_status`` maps rung ("fexit", "kprobe"...) to {hook: reason} for the
    hooks that rung skips; a hook absent from a rung's map can attach there.
    The key ``"*"`` gives a reason for the whole rung (said once, every hook
    marked "no"); a reason starting with ``"partial: "`` marks the hook "part"
    (seen, but not as a hook verdict) and is said once under the table.
    """
    rung_status = rung_status or {}
    rungs = list(rung_status)
    hooks = list(cat.hooks.values()) if verbose else cat.default_hooks()
    name_w = min(max([len(h.name) for h in hooks] + [4]), 28)
    fam_w = 10
    rung_w = [max(len(r), 3) for r in rungs]
    fixed = name_w + 1 + fam_w + 1 + sum(w + 1 for w in rung_w)
    lsm_w = max(width - fixed, 12)
    lines: list[str] = []
    what = "all" if verbose else "default"
    lines.append(
        f"{len(hooks)} {what} hooks of {len(cat.hooks)} on {cat.kernel_release} "
        f"(from {cat.source})"
    )
    head = f"{'HOOK':<{name_w}} {'FAMILY':<{fam_w}} {'LSMS':<{lsm_w}}"
    head += "".join(f" {r:<{w}}" for r, w in zip(rungs, rung_w, strict=True))
    lines.append(head.rstrip())
    partial_notes: dict[str, str] = {}
    sub = textwrap.TextWrapper(
        width=width, initial_indent="    ", subsequent_indent="      "
    )
    for h in hooks:
        lsms = textwrap.wrap(_lsm_list(cat, h.name), lsm_w, break_on_hyphens=False)
        marks = []
        for r, w in zip(rungs, rung_w, strict=True):
            why = rung_status[r].get("*") or rung_status[r].get(h.name)
            mark = "yes" if why is None else "no"
            if why and why.startswith("partial: "):
                mark = "part"
                partial_notes[r] = why[len("partial: ") :]
            marks.append(f" {mark:<{w}}")
        name = h.name
        if len(name) > name_w:
            lines.append(name)
            name = ""
        row = f"{name:<{name_w}} {h.family:<{fam_w}} {lsms[0]:<{lsm_w}}"
        lines.append((row + "".join(marks)).rstrip())
        pad = " " * (name_w + fam_w + 2)
        lines.extend(pad + more for more in lsms[1:])
        if h.function is None:
            lines.extend(sub.wrap("no security_* wrapper: trace bpf_lsm_" + h.name))
        elif h.function != "security_" + h.name or not h.wrapper_matches:
            note = f"wrapper {h.function}"
            if not h.wrapper_matches:
                sig = FuncProto(h.wrapper_ret, h.wrapper_params).signature(h.function)
                note += f" has another prototype: {sig}"
            lines.extend(sub.wrap(note))
        for r in rungs:
            reason = rung_status[r].get(h.name)
            if (
                reason
                and "*" not in rung_status[r]
                and not reason.startswith("partial: ")
            ):
                lines.extend(sub.wrap(f"{r}: {reason}"))
    if not verbose and cat.missing_defaults:
        lines.extend(
            textwrap.wrap(
                "not on this kernel: " + ", ".join(cat.missing_defaults), width
            )
        )
    for r in rungs:
        if "*" in rung_status[r]:
            lines.extend(
                textwrap.wrap(
                    f"{r}: not available here: {rung_status[r]['*']}",
                    width,
                    subsequent_indent="  ",
                )
            )
        elif r in partial_notes:
            lines.extend(
                textwrap.wrap(
                    f"{r}: part = {partial_notes[r]}", width, subsequent_indent="  "
                )
            )
    lines.append("LSMS: compiled-in implementations by name; '!' = prototype differs")
    if not verbose:
        lines.append("all hooks: lsmtrace hooks --all")
    return "\n".join(lines) + "\n"
