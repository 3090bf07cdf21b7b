"""What the real kernels of the VM stage showed the generators had wrong,
checked on the recording made there: tests/data/recordings/vm_suite_kprobe.jsonl.gz,
`lsmtrace record --backend kprobe --cgroup` of the four workloads of
tests/vm/workloads.py on Debian's 6.12 (the cgroup is the suite's, so the
recording has no command: four roots). tests/vm/test_workloads.py loads the
policies in enforce mode; here the model and the renderers are held to what
made them pass there:

- the kernel's own opens and maps inside an execve (the program, its #!
  interpreter, ld.so) belong to the program it starts, not to the caller: no
  `comm:python3` programs for the commands, a child profile gets `mr` on its
  own binary (AppArmor denied mkdir's mapping of itself, SIGSEGV), the script
  gets its interpreter (TOMOYO refused the venv script's exec: the read of
  /usr/bin/python3.11 in its domain);
- a rename's target is a bare name on the hook rungs; beside its atomic-write
  source it is placed (AppArmor denied creating the next run's `.pyc.NNNN`)
  and read back (AppArmor denied reading the .pyc on the next run), inferred;
- an fd inherited across an exec is the new program's (`cat f > out` under a
  child profile: AppArmor closed `out` at the exec);
- open(O_CREAT) asks path_mknod for the file it creates: not a mknod (TOMOYO
  got `file mkfifo` for every created file);
- a directory opened without O_DIRECTORY (grep -r) is a directory: the hook's
  object mode says so (the live check marked `"/srv/lsmt-grep/tree" r`);
- the sandbox follows a #! interpreter to its ld.so (Landlock refused to
  execute the venv's console script).
"""

from __future__ import annotations

import copy
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from lsmtrace.policy import generate, load_access_set
from lsmtrace.policy.model import build

REC = (
    Path(__file__).resolve().parents[1]
    / "data"
    / "recordings"
    / "vm_suite_kprobe.jsonl.gz"
)
VENV_APP = "/srv/lsmt-venv/venv/bin/lsmt-venv-app"
WRAP = "/usr/local/bin/lsmt-wrap"
PYC = "/srv/lsmt-venv/venv/lib/python3.11/site-packages/lsmt_app/__pycache__/main.cpython-311.pyc"


@pytest.fixture(scope="module")
def aset() -> Any:
    return load_access_set([str(REC)])


def test_four_roots_and_no_comm_programs(aset: Any) -> None:
    assert aset.roots == {VENV_APP, WRAP, "/usr/local/sbin/lsmt-minid", "/usr/bin/grep"}
    assert not [k for k in aset.programs if k.startswith("comm:")]
    assert aset.unplaced == {}


def test_exec_time_opens_and_maps_are_the_new_programs(aset: Any) -> None:
    progs = aset.programs
    # a child gets read and map on its own binary; the caller only the exec
    assert progs["/usr/bin/mkdir"].files["/usr/bin/mkdir"] == {"read", "mmap_exec"}
    assert progs[WRAP].files["/usr/bin/mkdir"] == {"exec"}
    # the #! interpreters: opened between two bprm_check_security rounds;
    # ld.so, opened after the last one, is read but no #! interpreter
    assert progs[VENV_APP].interpreters == {"/usr/bin/python3.11"}
    assert progs[WRAP].interpreters == {"/usr/bin/dash"}
    assert {"read", "mmap_exec"} <= progs[VENV_APP].files["/usr/bin/python3.11"]
    ld = "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"
    assert "read" in progs["/usr/bin/grep"].files[ld]
    assert progs["/usr/bin/grep"].interpreters == set()


def test_apparmor_child_profiles_map_their_binary(aset: Any) -> None:
    text = generate("apparmor", aset)
    assert "lsmtrace-comm-" not in text
    mkdir = text[text.index("profile lsmtrace-mkdir {") :]
    assert '"/usr/bin/mkdir" mr,' in mkdir[: mkdir.index("}")]
    assert '"/usr/bin/mkdir" Cx -> lsmtrace-mkdir,' in text  # no r, m in the caller
    assert '"/usr/bin/python3.11" mr,' in text
    assert "# /usr/bin/python3.11: the #! interpreter of this script" in text


def test_tomoyo_script_domain_reads_its_interpreter(aset: Any) -> None:
    text = generate("tomoyo", aset)
    venv = text[text.index(f"<kernel> {VENV_APP}\n") :]
    venv = venv[: venv.index("\n\n<kernel>")]
    assert "file read /usr/bin/python3.11\n" in venv
    # the caller no longer reads the binaries it runs
    wrap = text[text.index(f"<kernel> {WRAP}\n") :]
    wrap = wrap[: wrap.index("\n\n<kernel>")]
    assert "file read /usr/bin/cat" not in wrap
    assert "file execute /usr/bin/cat" in wrap
    # created files: create, never mkfifo (open asks path_mknod for them)
    assert "file mkfifo" not in text
    assert "file create /srv/lsmt-venv/var/state.txt 0-07777" in text


def test_pyc_rename_target_placed_and_read_back(aset: Any) -> None:
    files = aset.programs[VENV_APP].files
    assert files[PYC] == {"rename_dst", "read"}
    inferred = aset.programs[VENV_APP].inferred
    assert any(
        i.startswith(f"{PYC} rename_dst: the name main.cpython-311.pyc beside")
        for i in inferred
    )
    assert (
        f"{PYC} read: a file written atomically is read back on the next run"
        in inferred
    )
    text = generate("apparmor", aset)
    assert f'"{PYC}" rw,' in text
    assert f'owner "{PYC}.*" rw,' in text
    assert f"#   {VENV_APP}: {PYC} read: a file written atomically" in text
    tomoyo = generate("tomoyo", aset)
    assert f"file create {PYC}.\\* 0-07777" in tomoyo
    assert f"file read {PYC}\n" in tomoyo


def _rename(src: str, dst: str) -> list[dict[str, Any]]:
    base = {
        "rung": "kprobe",
        "verdict": "allow",
        "ret": 0,
        "errno": None,
        "pid": 7,
        "tgid": 7,
        "ppid": 1,
        "comm": "w",
        "family": "file",
    }
    return [
        {
            **base,
            "ts_ns": 1,
            "kind": "exec",
            "hook": "exec",
            "syscall": "execve",
            "object": {"filename": "/usr/bin/w"},
        },
        {
            **base,
            "ts_ns": 2,
            "kind": "hook",
            "hook": "path_rename",
            "syscall": "rename",
            "object": {"path": src, "path2": dst},
        },
    ]


def test_only_an_atomic_write_target_is_placed() -> None:
    placed = build([({}, _rename("/d/f.txt.4f3Ab9", "f.txt"), "r")])
    assert placed.programs["/usr/bin/w"].files["/d/f.txt"] == {"rename_dst", "read"}
    # `mv a b` (any directory): the name alone says nothing of where
    other = build([({}, _rename("/d/a", "b"), "r")])
    assert "/d/b" not in other.programs["/usr/bin/w"].files
    assert [u.name for u in other.unplaced] == ["b"]
    # a full path is used as it is, and an ordinary rename is not read back
    full = build([({}, _rename("/d/a", "/e/b"), "r")])
    assert full.programs["/usr/bin/w"].files["/e/b"] == {"rename_dst"}


def test_inherited_fd_is_the_new_programs(aset: Any) -> None:
    # the wrapper's child opened last-run (`cat "$t" > last-run`), cat writes it
    cat = aset.programs["/usr/bin/cat"].files
    assert cat["/var/lib/lsmt-wrap/last-run"] == {"write"}
    text = generate("apparmor", aset)
    child = text[text.index("profile lsmtrace-cat {") :]
    assert '"/var/lib/lsmt-wrap/last-run" w,' in child[: child.index("}")]
    # writes to a pipe (stdout) name "/" and are no file access
    assert "/" not in cat
    assert "/" not in aset.programs["/usr/bin/grep"].files


def test_fd_use_of_a_pipe_is_no_access() -> None:
    base = {
        "rung": "fexit",
        "verdict": "allow",
        "ret": 0,
        "errno": None,
        "pid": 8,
        "tgid": 8,
        "ppid": 1,
        "comm": "x",
        "family": "file",
        "kind": "hook",
        "hook": "file_permission",
        "syscall": "write",
    }
    evs = [
        {**base, "ts_ns": 1, "object": {"path": "/", "mask": 2, "mode": "0o10600"}},
        {
            **base,
            "ts_ns": 2,
            "object": {
                "path": "/var/log/x.log",
                "mask": 2,
                "flags": 0o2001,
                "mode": "0o100640",
            },
        },
    ]
    s = build([({}, evs, "r")])
    assert s.programs["comm:x"].files == {"/var/log/x.log": {"append"}}


def test_live_check_passes_the_real_recording(tmp_path: Path) -> None:
    """What the kernel allowed while recording the suite, the policies
    generated from it allow in the live audit mode too (the exec-time
    accesses are held for the new program there as well)."""
    from lsmtrace.policy import load
    from lsmtrace.policy.live import LiveCheck
    from lsmtrace.record import read_recording

    for target in ("apparmor", "tomoyo", "landlock", "selinux"):
        p = tmp_path / f"suite.{target}"
        p.write_text(generate(target, load_access_set([str(REC)])))
        lc = LiveCheck(load(str(p)))
        evs = [copy.deepcopy(e) for e in read_recording(str(REC)).events]
        for e in evs:
            lc.add(e)
        marked = [e["would_deny"] for e in evs if "would_deny" in e]
        assert marked == [], (target, marked[:3])
        assert lc.summary()["checked"] > 100


def test_directory_opened_without_o_directory() -> None:
    """grep -r opens the tree without O_DIRECTORY first: on the hook rungs
    the object's mode is the inode's, and says it is a directory; a
    syscall's `mode` is the mode argument, which says nothing of the kind."""
    base = {
        "verdict": "allow",
        "ret": 0,
        "errno": None,
        "pid": 9,
        "tgid": 9,
        "ppid": 1,
        "comm": "grep",
        "family": "file",
        "syscall": "openat",
    }
    hook = {
        **base,
        "rung": "kprobe",
        "kind": "hook",
        "hook": "file_open",
        "ts_ns": 1,
        "object": {"path": "/srv/t", "flags": 0o400400, "mode": "0o40755"},
    }
    sysc = {
        **base,
        "rung": "tracepoint",
        "kind": "syscall",
        "hook": "sys_openat",
        "ts_ns": 2,
        "object": {"path": "/srv/u", "flags": 0o400, "mode": "0o40755"},
    }
    files = build([({}, [hook, sysc], "r")]).programs["comm:grep"].files
    assert files == {"/srv/t": {"readdir"}, "/srv/u": {"read"}}


def _elf_interp(path: str) -> str | None:
    from lsmtrace import sandbox

    return sandbox.interpreter(path)


def test_sandbox_follows_a_script_interpreters_chain(tmp_path: Path) -> None:
    """A script whose #! interpreter is a dynamic ELF (a venv's console
    script): the kernel opens the interpreter and then its ld.so to execute
    them; the sandbox grants execute on both (it granted only the first)."""
    from lsmtrace import sandbox

    elf = os.path.realpath(sys.executable)
    ld = _elf_interp(elf)
    if ld is None:
        pytest.skip(f"{elf} has no PT_INTERP (a static interpreter)")
    script = tmp_path / "app"
    script.write_text(f"#!{elf}\nprint('hi')\n")
    script.chmod(0o755)
    policy = {
        "handled_access_fs": ["execute", "read_file"],
        "rules": [{"path": str(script), "access": ["execute", "read_file"]}],
    }
    plan = sandbox.plan(policy, abi=4)
    rights = {os.path.realpath(p): r for p, r in plan.rules}
    execute = 1  # LANDLOCK_ACCESS_FS_EXECUTE
    assert rights[elf] & execute
    assert rights[os.path.realpath(ld)] & execute
