"""What a generated SELinux module needs to enforce in a real kernel (found in
an SELinux-enforcing boot of the VM image; that boot and its test are not in
the VM stage yet, docs/vm.md): the files' types from
the machine's labels, the runcon entry from the context the recording was made
in, and the kernel's mapping of the ELF interpreter in the new domain."""

from __future__ import annotations

import errno
import shutil
import subprocess
from pathlib import Path

import pytest

from lsmtrace.commands.record import _selinux_context
from lsmtrace.policy import selinux
from lsmtrace.policy.model import build

CALLER = "staff_u:staff_r:staff_t:s0-s0:c0.c1023"


def _events() -> list[dict[str, object]]:
    """exec of /usr/local/bin/w, the kernel's map of ld.so, a read, a create."""
    base = {
        "verdict": "allow",
        "ret": 0,
        "pid": 5,
        "tgid": 5,
        "ppid": 1,
        "comm": "w",
        "kind": "hook",
        "rung": "fexit",
    }
    return [
        {
            **base,
            "kind": "exec",
            "hook": "sched_process_exec",
            "ts_ns": 0,
            "object": {"filename": "/usr/local/bin/w"},
        },
        {
            **base,
            "hook": "mmap_file",
            "ts_ns": 1,
            "object": {
                "path": "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
                "path_kind": "exact",
                "prot_raw": 5,
            },
        },
        {
            **base,
            "hook": "file_open",
            "ts_ns": 2,
            "object": {"path": "/srv/w/a", "path_kind": "exact", "flags": 0},
        },
        {
            **base,
            "kind": "syscall",
            "hook": "sys_openat",
            "ts_ns": 3,
            "object": {"path": "/srv/w/out", "path_kind": "exact", "flags": 0o101},
        },
    ]


def _labels(table: dict[str, str]) -> object:
    def getxattr(path: str, name: str) -> bytes:
        assert name == "security.selinux"
        if path not in table:
            raise OSError(errno.ENODATA, "no label")
        return table[path].encode() + b"\0"

    return getxattr


def test_machine_labels_fill_what_the_recording_lacks() -> None:
    aset = build([({}, _events(), "t")])
    aset.labels["/srv/w/a"] = "httpd_sys_content_t"  # an AVC said so: it stays
    n = selinux.add_machine_labels(
        aset,
        _labels(
            {  # type: ignore[arg-type]
                "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2": "system_u:object_r:ld_so_t:s0",
                "/srv/w/a": "system_u:object_r:var_t:s0",
                "/srv/w": "system_u:object_r:public_content_rw_t:s0",
                "/usr/local/bin/w": "system_u:object_r:bad-type;x:s0",  # never a type
            }
        ),
    )
    assert n == 2
    assert aset.labels == {
        "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2": "ld_so_t",
        "/srv/w/a": "httpd_sys_content_t",
        "/srv/w": "public_content_rw_t",  # the directory the create acts on
    }
    text = selinux.render(aset, "w")
    # the kernel maps the interpreter in the new domain: read is checked too
    assert "allow lsmtrace_w_t ld_so_t:file { execute map read };" in text
    assert (
        "allow lsmtrace_w_t public_content_rw_t:dir { add_name search write };" in text
    )
    assert "allow lsmtrace_w_t bin_t:file {" in text  # no label: the table


def test_no_labels_here_changes_nothing() -> None:
    aset = build([({}, _events(), "t")])
    assert selinux.add_machine_labels(aset, _labels({})) == 0  # type: ignore[arg-type]
    assert aset.labels == {}


def _module(header: dict[str, object]) -> str:
    return selinux.render(build([(header, _events(), "t")]), "w")


def test_runcon_entry_from_the_recording_context() -> None:
    text = _module({"selinux_context": CALLER})
    body = text.split("optional {", 1)[1]
    assert "\t\ttype staff_t;\n\t\trole staff_r;\n" in body
    for rule in (
        "role staff_r types lsmtrace_w_t;",
        "allow staff_t lsmtrace_w_t:process transition;",
        "allow lsmtrace_w_t staff_t:fd use;",
        "allow lsmtrace_w_t staff_t:fifo_file { append getattr ioctl read write };",
        "allow lsmtrace_w_t staff_t:process sigchld;",
    ):
        assert f"\t{rule}\n" in body, rule
    assert "unconfined" not in text
    assert "(from staff_t: the block at the end)" in text
    assert "the context the command was recorded in" in text


def test_runcon_entry_defaults_to_unconfined() -> None:
    text = _module({})
    assert "\trole unconfined_r types lsmtrace_w_t;\n" in text
    assert "the recording names none" in text
    assert "allow lsmtrace_w_t { user_devpts_t user_tty_device_t }:chr_file" in text


def test_hostile_context_never_enters_the_module() -> None:
    text = _module({"selinux_context": "u:r;x:t{ y }:s0"})
    assert "r;x" not in text
    assert "\trole unconfined_r types lsmtrace_w_t;\n" in text


def test_check_ignores_the_entry_blocks() -> None:
    """The entry rules are not recorded accesses: check neither needs nor
    lists them as unused."""
    aset = build([({"selinux_context": CALLER}, _events(), "t")])
    rules = selinux.parse(selinux.render(aset, "w"))
    assert all(src == "lsmtrace_w_t" and tgt != "staff_t" for src, tgt, _c in rules)
    res = selinux.check(rules, aset)
    assert res.denied == []
    assert res.unused == []


def test_entry_blocks_compile(tmp_path: Path) -> None:
    checkmodule = shutil.which("checkmodule")
    if checkmodule is None:
        pytest.skip("checkmodule is not installed (Debian package checkpolicy)")
    te = tmp_path / "lsmtrace_w.te"
    te.write_text(_module({"selinux_context": CALLER}))
    r = subprocess.run(
        [checkmodule, "-M", "-m", "-o", str(tmp_path / "lsmtrace_w.mod"), str(te)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert r.returncode == 0, r.stdout + r.stderr


def test_recording_header_context(tmp_path: Path) -> None:
    (tmp_path / "attr").mkdir()
    (tmp_path / "attr" / "current").write_bytes(CALLER.encode() + b"\0")
    assert _selinux_context(["capability", "selinux"], str(tmp_path)) == CALLER
    assert _selinux_context(["capability", "apparmor"], str(tmp_path)) is None
    assert _selinux_context(["selinux"], str(tmp_path / "gone")) is None


def test_what_the_enforcing_guest_refused_is_granted() -> None:
    """The closed loop of tests/vm/test_selinux.py under Debian's refpolicy,
    before: exec failed past the point of no return (SIGSEGV) on `search` of
    /, then ld.so.cache's and the locales' `map`, the interpreter's link, and
    the /dev/null the harness gave as stdin."""
    aset = build([({}, _events(), "t")])
    selinux.add_machine_labels(
        aset,
        _labels(
            {  # type: ignore[arg-type]
                "/": "system_u:object_r:root_t:s0",
                "/srv": "system_u:object_r:var_t:s0",
                "/srv/w": "system_u:object_r:public_content_t:s0",
                "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2": "system_u:object_r:ld_so_t:s0",
            }
        ),
    )
    assert selinux.ancestors("/srv/w/a") == ["/", "/srv", "/srv/w"]
    assert selinux.ancestors("a") == []
    text = selinux.render(aset, "w")
    # every directory a lookup searches, by its label here, else the table
    assert "allow lsmtrace_w_t root_t:dir { search };" in text
    assert "allow lsmtrace_w_t var_t:dir { search };" in text  # /srv
    assert "allow lsmtrace_w_t bin_t:dir { search };" in text  # /usr/local/bin
    assert "allow lsmtrace_w_t lib_t:dir { search };" in text  # /usr/lib
    # a file read may be mapped; a directory has no map permission
    (files,) = [ln for ln in text.splitlines() if "lsmtrace_w_t var_t:file" in ln]
    assert " map " in files
    assert "allow lsmtrace_w_t lib_t:lnk_file { read };" in text
    assert "allow lsmtrace_w_t null_device_t:chr_file {" in text
