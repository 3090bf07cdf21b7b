"""lsmtrace.hooks: the catalogue from BTF (fixture; real BTF where present)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lsmtrace import btf as B
from lsmtrace import hooks as H
from lsmtrace.btf import Param
from lsmtrace.errors import KernelFeatureError, UsageError

FIXTURE = Path(__file__).parents[1] / "data" / "btf" / "vmlinux-excerpt.btf"
VMLINUX = Path("/sys/kernel/btf/vmlinux")


@pytest.fixture(scope="module")
def cat() -> H.Catalogue:
    return H.build_catalogue(B.load(FIXTURE), "6.18-test")


@pytest.fixture(scope="module")
def real() -> H.Catalogue:
    if not VMLINUX.exists():
        pytest.skip("no /sys/kernel/btf/vmlinux (kernel without CONFIG_DEBUG_INFO_BTF)")
    return H.load_catalogue(VMLINUX, use_cache=False)


def test_hook_list_excludes_bpf_lsm_helpers(cat: H.Catalogue) -> None:
    assert "file_open" in cat.hooks
    for helper in ("verify_prog", "is_sleepable_hook", "find_cgroup_shim", "init"):
        assert helper not in cat.hooks
    assert cat.source == "bpf_lsm"
    assert len(cat.hooks) == 21


def test_hook_prototypes(cat: H.Catalogue) -> None:
    fo = cat.hooks["file_open"]
    assert (fo.function, fo.ret, fo.params) == (
        "security_file_open",
        "int",
        (Param("file", "struct file *"),),
    )
    cap = cat.hooks["capable"]
    assert [p.ctype for p in cap.params] == [
        "const struct cred *",
        "struct user_namespace *",
        "int",
        "unsigned int",
    ]
    assert cap.signature == (
        "int capable(const struct cred *cred, struct user_namespace *ns, int cap, "
        "unsigned int opts)"
    )
    assert cat.hooks["locked_down"].params == (Param("what", "enum lockdown_reason"),)


@pytest.mark.parametrize(
    ("hook", "wrapper", "matches"),
    [
        ("bprm_check_security", "security_bprm_check", True),
        ("sb_alloc_security", "security_sb_alloc", True),
        ("settime", "security_settime64", True),
        ("cred_prepare", "security_prepare_creds", True),
        ("sb_free_mnt_opts", "security_free_mnt_opts", False),
        ("mmap_file", "security_mmap_file", False),
        ("inode_rename", "security_inode_rename", False),
        ("inode_free_security_rcu", None, False),
        ("file_open", "security_file_open", True),
    ],
)
def test_wrapper_rules(
    cat: H.Catalogue, hook: str, wrapper: str | None, matches: bool
) -> None:
    h = cat.hooks[hook]
    assert h.function == wrapper
    assert h.wrapper_matches is matches


def test_mismatched_wrapper_keeps_its_own_prototype(cat: H.Catalogue) -> None:
    mm = cat.hooks["mmap_file"]
    assert [p.name for p in mm.params] == ["file", "reqprot", "prot", "flags"]
    assert [p.name for p in mm.wrapper_params] == ["file", "prot", "flags"]
    assert cat.hooks["inode_rename"].wrapper_params[-1] == Param(
        "flags", "unsigned int"
    )


def _impls(cat: H.Catalogue, hook: str) -> set[tuple[str, str, bool]]:
    return {(i.lsm, i.function, i.matches_prototype) for i in cat.impls[hook]}


def test_impl_mapping_and_aliases(cat: H.Catalogue) -> None:
    assert _impls(cat, "locked_down") == {
        ("lockdown", "lockdown_is_locked_down", True),
        ("bpf", "bpf_lsm_locked_down", True),
    }
    assert ("capability", "cap_capable", True) in _impls(cat, "capable")
    assert ("selinux", "selinux_capable", True) in _impls(cat, "capable")
    assert ("landlock", "hook_file_open", True) in _impls(cat, "file_open")
    assert ("selinux", "selinux_mount", True) in _impls(cat, "sb_mount")
    assert ("selinux", "selinux_free_mnt_opts", True) in _impls(cat, "sb_free_mnt_opts")
    assert ("selinux", "selinux_socket_unix_may_send", True) in _impls(
        cat, "unix_may_send"
    )
    assert ("capability", "cap_settime", True) in _impls(cat, "settime")
    # wrapper-less hook kept because landlock implements it
    assert ("landlock", "hook_inode_free_security_rcu", True) in _impls(
        cat, "inode_free_security_rcu"
    )


def test_prototype_mismatch_flagged_not_traced(cat: H.Catalogue) -> None:
    # cap_inode_setxattr lacks the idmap argument of the inode_setxattr hook.
    assert ("capability", "cap_inode_setxattr", False) in _impls(cat, "inode_setxattr")
    lsms = {"capability", "selinux", "bpf"}
    assert "cap_inode_setxattr" not in {
        i.function for i in cat.impls_for("inode_setxattr", lsms)
    }


def test_impls_for_filters_active_lsms(cat: H.Catalogue) -> None:
    active = {"lockdown", "capability", "landlock", "bpf"}
    got = [i.function for i in cat.impls_for("file_open", active)]
    assert got == ["hook_file_open", "bpf_lsm_file_open"]
    assert cat.impls_for(cat.hooks["capable"], {"capability"})[0].function == (
        "cap_capable"
    )
    assert cat.impls_for("no_such_hook", active) == []


@pytest.mark.parametrize(
    ("hook", "family"),
    [
        ("file_open", "file"),
        ("mmap_file", "file"),
        ("inode_rename", "inode"),
        ("path_chmod", "path"),
        ("bprm_check_security", "exec"),
        ("task_kill", "task"),
        ("cred_prepare", "cred"),
        ("capable", "capability"),
        ("settime", "capability"),
        ("ptrace_access_check", "ptrace"),
        ("socket_connect", "network"),
        ("unix_may_send", "network"),
        ("xfrm_policy_alloc_security", "network"),
        ("msg_queue_msgsnd", "ipc"),
        ("key_permission", "key"),
        ("bpf", "bpf"),
        ("bpf_prog_load", "bpf"),
        ("kernel_read_file", "kernel"),
        ("locked_down", "kernel"),
        ("kernel_act_as", "cred"),
        ("sb_mount", "mount"),
        ("move_mount", "mount"),
        ("audit_rule_match", "audit"),
        ("uring_cmd", "other"),
    ],
)
def test_family_table(hook: str, family: str) -> None:
    assert H.family_of(hook) == family
    assert family in H.FAMILIES


def test_select_default(cat: H.Catalogue) -> None:
    names = [h.name for h in cat.select(None, None)]
    assert names == [n for n in H.DEFAULT_HOOKS if n in cat.hooks]
    assert "inode_permission" not in H.DEFAULT_HOOKS
    assert all(cat.hooks[n].default for n in names)
    assert "socket_listen" in cat.missing_defaults  # not in the excerpt


def test_select_globs_and_families(cat: H.Catalogue) -> None:
    assert [h.name for h in cat.select(["file_*"], None)] == [
        "file_open",
        "file_permission",
    ]
    net = [h.name for h in cat.select(None, ["network"])]
    assert net == ["socket_connect", "unix_may_send"]
    both = {h.name for h in cat.select(["capable"], ["kernel"])}
    assert both == {"capable", "kernel_read_file", "locked_down"}


def test_select_unknown_glob_hints(cat: H.Catalogue) -> None:
    with pytest.raises(UsageError) as err:
        cat.select(["file_opn"], None)
    assert "file_opn" in err.value.message
    assert err.value.hint is not None
    assert "file_open" in err.value.hint
    with pytest.raises(UsageError) as err:
        cat.select(None, ["netwrk"])
    assert err.value.hint is not None
    assert "network" in err.value.hint


def test_families(cat: H.Catalogue) -> None:
    fams = cat.families()
    assert fams[0] == "file"
    assert set(fams) <= set(H.FAMILIES)
    assert "ipc" not in fams


def test_render_fits_80_columns(cat: H.Catalogue) -> None:
    status = {
        "fexit": {"inode_free_security_rcu": "no wrapper"},
        "kprobe": {"locked_down": "blocked by lockdown " * 10},
        "tracepoint": {},
    }
    for verbose in (False, True):
        text = H.render_catalogue(cat, status, verbose=verbose)
        for line in text.splitlines():
            assert len(line) <= 80, line
    text = H.render_catalogue(cat, status, verbose=True)
    assert "security_bprm_check" in text
    assert "lockdown" in text
    assert "capability!" in text  # cap_inode_setxattr flagged
    assert "no security_* wrapper" in text
    plain = H.render_catalogue(cat, None)
    assert "file_open" in plain
    assert "socket_listen" in plain  # listed as missing on this kernel


def test_json_roundtrip(cat: H.Catalogue) -> None:
    text = H.catalogue_to_json(cat)
    doc = json.loads(text)
    assert doc["kernel_release"] == "6.18-test"
    assert H.catalogue_from_json(text) == cat
    with pytest.raises(ValueError, match="schema"):
        H.catalogue_from_json('{"schema": 0}')
    with pytest.raises(ValueError, match="malformed"):
        H.catalogue_from_json('{"schema": 1}')


def test_fallback_without_bpf_lsm() -> None:
    cat = H.build_catalogue(B.load(FIXTURE), "x", use_bpf_lsm=False)
    assert cat.source == "security"
    assert "init" not in cat.hooks
    assert "compute_av" not in cat.hooks
    assert cat.hooks["bprm_check_security"].function == "security_bprm_check"
    assert cat.hooks["settime"].function == "security_settime64"
    assert cat.hooks["file_open"].wrapper_matches
    assert "inode_free_security_rcu" not in cat.hooks  # no wrapper: unknown
    assert ("lockdown", "lockdown_is_locked_down", True) in _impls(cat, "locked_down")


def test_cache_hit_and_miss(tmp_path: Path) -> None:
    btf = tmp_path / "vmlinux"
    btf.write_bytes(FIXTURE.read_bytes())
    cache = tmp_path / "cache"
    first = H.load_catalogue(btf, cache, kernel_release="6.18-a")
    files = list(cache.iterdir())
    assert len(files) == 1
    assert "6.18-a" in files[0].name
    # a hit comes from the file: alter the cached copy and see it come back
    doc = json.loads(files[0].read_text())
    doc["hooks"][0]["family"] = "from-cache"
    files[0].write_text(json.dumps(doc))
    hit = H.load_catalogue(btf, cache, kernel_release="6.18-a")
    assert next(iter(hit.hooks.values())).family == "from-cache"
    # another release, or other BTF bytes: miss, new file
    other = H.load_catalogue(btf, cache, kernel_release="6.18-b")
    assert other == H.build_catalogue(
        B.load(btf), "6.18-b", btf_sha256=first.btf_sha256
    )
    btf.write_bytes(FIXTURE.read_bytes() + b"\0")  # different hash (still valid)
    H.load_catalogue(btf, cache, kernel_release="6.18-a")
    assert len(list(cache.iterdir())) == 3


def test_corrupt_cache_ignored(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cat = H.load_catalogue(FIXTURE, cache, kernel_release="r")
    (f,) = cache.iterdir()
    f.write_text("{not json")
    assert H.load_catalogue(FIXTURE, cache, kernel_release="r") == cat


def test_unwritable_cache_falls_back(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    cat = H.load_catalogue(FIXTURE, blocker / "sub", kernel_release="r")
    assert "file_open" in cat.hooks


def test_missing_btf_is_kernel_feature_error(tmp_path: Path) -> None:
    with pytest.raises(KernelFeatureError) as err:
        H.load_catalogue(tmp_path / "vmlinux", tmp_path)
    assert err.value.hint is not None
    assert "CONFIG_DEBUG_INFO_BTF" in err.value.hint


@pytest.mark.parametrize("size", [0, 10, 100, 5000])
def test_corrupt_btf_is_kernel_feature_error(tmp_path: Path, size: int) -> None:
    bad = tmp_path / "vmlinux"
    bad.write_bytes(FIXTURE.read_bytes()[:size])
    with pytest.raises(KernelFeatureError):
        H.load_catalogue(bad, use_cache=False)


def test_default_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert H.default_cache_dir() == tmp_path / "lsmtrace"
    monkeypatch.delenv("XDG_CACHE_HOME")
    expected = "/var/cache/lsmtrace" if os.geteuid() == 0 else ".cache/lsmtrace"
    assert str(H.default_cache_dir()).endswith(expected)


def test_import_hygiene() -> None:
    code = (
        "import sys, lsmtrace.hooks, lsmtrace.btf; "
        "print('bcc' in sys.modules, 'textual' in sys.modules)"
    )
    root = Path(__file__).parents[2]
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=root,
        check=True,
    )
    assert out.stdout.split() == ["False", "False"]


# -- the real kernel -----------------------------------------------------------


def test_real_default_set(real: H.Catalogue) -> None:
    defaults = real.select(None, None)
    assert len(defaults) >= 30, f"missing on this kernel: {real.missing_defaults}"
    assert len(real.hooks) > 200


def test_real_default_hooks_have_wrappers(real: H.Catalogue) -> None:
    for h in real.default_hooks():
        assert h.function is not None, h.name


def test_real_render_fits(real: H.Catalogue) -> None:
    for line in H.render_catalogue(real, None, verbose=True).splitlines():
        assert len(line) <= 80, line
