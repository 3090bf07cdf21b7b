"""The access model: recorded events -> per-program access set (pure)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lsmtrace.policy import model
from lsmtrace.policy.model import build, from_files, resolve, temp_glob

DATA = Path(__file__).resolve().parents[1] / "data" / "recordings"
CAT = str(DATA / "cat_two_files.jsonl")


def ev(hook: str, obj: dict[str, Any], ts: int, verdict: str = "allow", **kw: Any) -> dict[str, Any]:
    d: dict[str, Any] = {"kind": "syscall", "hook": hook, "verdict": verdict,
                         "ret": 0 if verdict == "allow" else -13, "pid": 10, "tgid": 10,
                         "ppid": 1, "comm": "w", "ts_ns": ts, "object": obj,
                         "syscall": hook.removeprefix("sys_"), "family": "file"}  # fmt: skip
    d.update(kw)
    return d


def exec_ev(path: str, ts: int, pid: int = 10) -> dict[str, Any]:
    return ev("exec", {"filename": path}, ts, kind="exec", pid=pid, tgid=pid,
              family="process")  # fmt: skip


def test_real_recording_cat() -> None:
    aset = from_files([CAT])
    assert sorted(aset.programs) == ["/usr/bin/cat"]
    cat = aset.programs["/usr/bin/cat"]
    assert cat.files["/tmp/lsmtrace-fixture/a"] == {"read"}  # relative "a" + cwd
    assert cat.files["/tmp/lsmtrace-fixture/b"] == {"read"}
    assert cat.files["/usr/bin/cat"] == {"exec"}
    # tracepoint rung: PROT_EXEC mmap of fd 3 after opening libc
    assert cat.files["/lib/x86_64-linux-gnu/libc.so.6"] == {"read", "mmap_exec"}
    # failed opens (ENOENT) are no decision: not in the set
    assert "/usr/lib/locale/locale-archive" not in cat.files
    # CAP_SYS_ADMIN inside mmap/execve is memory accounting, not a use
    assert "CAP_SYS_ADMIN" not in cat.caps
    assert aset.sources == ["cat_two_files.jsonl"]


def test_deterministic_and_merge_idempotent() -> None:
    a = from_files([CAT]).to_json()
    assert a == from_files([CAT]).to_json()
    assert from_files([CAT, CAT]).to_json() == a


def test_open_flags_to_accesses() -> None:
    evs = [exec_ev("/usr/bin/w", 1),
           ev("sys_openat", {"path": "/r", "flags": 0o2000000}, 2),
           ev("sys_openat", {"path": "/w", "flags": 0o1101}, 3),  # WRONLY|CREAT|TRUNC
           ev("sys_openat", {"path": "/rw", "flags": 2}, 4),
           ev("sys_openat", {"path": "/ap", "flags": 0o2001}, 5),
           ev("sys_openat", {"path": "/d", "flags": 0o200000}, 6),
           ev("sys_openat", {"path": "/p", "flags": 0o10000000}, 7),  # O_PATH
           ev("sys_unlinkat", {"path": "/u", "flags": 0}, 8),
           ev("sys_unlinkat", {"path": "/rd", "flags": 0x200}, 9),
           ev("sys_renameat2", {"path": "/s", "path2": "/t"}, 10),
           ev("sys_mkdir", {"path": "/m"}, 11),
           ev("sys_openat", {"path": "/denied"}, 12, verdict="deny"),
           ev("sys_openat", {"path": "/enoent"}, 13, verdict="error")]  # fmt: skip
    files = build([({}, evs, "t")]).programs["/usr/bin/w"].files
    assert files["/r"] == {"read"}
    assert files["/w"] == {"write", "create", "truncate"}
    assert files["/rw"] == {"read", "write"}
    assert files["/ap"] == {"append"}
    assert files["/d"] == {"readdir"}
    assert files["/u"] == {"unlink"}
    assert files["/rd"] == {"rmdir"}
    assert files["/s"] == {"rename_src"}
    assert files["/t"] == {"rename_dst"}
    assert files["/m"] == {"mkdir"}
    for absent in ("/p", "/denied", "/enoent"):
        assert absent not in files
    with_denied = build([({}, evs, "t")], include_denied=True)
    assert "/denied" in with_denied.programs["/usr/bin/w"].files


def test_exec_belongs_to_the_caller_and_fork_inherits() -> None:
    evs = [exec_ev("/bin/sh", 1),
           ev("fork", {"child_pid": 11}, 2, kind="fork"),
           ev("sys_openat", {"path": "/before-exec"}, 3, pid=11, tgid=11, ppid=10),
           exec_ev("/usr/bin/cat", 4, pid=11),
           ev("sys_openat", {"path": "/after-exec"}, 5, pid=11, tgid=11, ppid=10)]  # fmt: skip
    progs = build([({}, evs, "t")]).programs
    assert progs["/bin/sh"].files == {"/bin/sh": {"exec"}, "/before-exec": {"read"},
                                      "/usr/bin/cat": {"exec"}}  # fmt: skip
    assert progs["/usr/bin/cat"].files == {"/after-exec": {"read"}}


def test_events_sorted_by_kernel_time() -> None:
    evs = [ev("sys_openat", {"path": "/x"}, 5), exec_ev("/usr/bin/w", 1)]
    assert "/usr/bin/w" in build([({}, evs, "t")]).programs


def test_relative_paths_need_cwd() -> None:
    evs = [exec_ev("/usr/bin/w", 1), ev("sys_openat", {"path": "rel/x"}, 2)]
    aset = build([({}, evs, "t")])
    assert aset.unresolved == {"rel/x"}
    aset = build([({"cwd": "/srv"}, evs, "t")])
    assert "/srv/rel/x" in aset.programs["/usr/bin/w"].files
    assert resolve("a/../../b", "/x") == "/b"


def test_caps_net_signals() -> None:
    evs = [exec_ev("/usr/bin/w", 1),
           ev("capable", {"cap": 23, "cap_name": "CAP_SYS_NICE"}, 2, kind="capable",
              syscall="setpriority", family="capability"),
           ev("capable", {"cap": 21, "cap_name": "CAP_SYS_ADMIN"}, 3, kind="capable",
              syscall="mmap"),
           ev("sys_connect", {"family": "AF_INET", "addr": "1.2.3.4", "port": 443}, 4,
              family="network"),
           ev("sys_socket", {"family": "AF_INET", "type": "SOCK_STREAM"}, 5, family="network"),
           ev("sys_kill", {"sig": 15, "sig_name": "SIGTERM", "target_pid": 99}, 6,
              family="task")]  # fmt: skip
    p = build([({}, evs, "t")]).programs["/usr/bin/w"]
    assert p.caps == {"CAP_SYS_NICE"}
    assert model.NetAccess("connect", "AF_INET", "", 443) in p.network
    assert model.NetAccess("socket", "AF_INET", "SOCK_STREAM", None) in p.network
    assert p.signals == {("SIGTERM", "other")}


def test_own_proc_paths() -> None:
    evs = [exec_ev("/usr/bin/w", 1), ev("sys_openat", {"path": "/proc/10/status"}, 2),
           ev("sys_openat", {"path": "/proc/77/stat"}, 3)]  # fmt: skip
    p = build([({}, evs, "t")]).programs["/usr/bin/w"]
    assert p.own_proc == {"/proc/10/status"}


def test_temp_glob() -> None:
    assert temp_glob("/tmp/lsmtrace-test-k2j3ab9x/out") == ("/tmp/lsmtrace-test-", "/out")
    assert temp_glob("/tmp/tmpk2j3a9xq") == ("/tmp/tmp", "")
    assert temp_glob("/tmp/ccAbCdEf.o") == ("/tmp/ccAbCdEf.", "") or temp_glob(
        "/tmp/ccAbCdEf.o") is None  # fmt: skip
    assert temp_glob("/tmp/stable-name/file") is None  # no digit, one case
    assert temp_glob("/etc/abc123def") is None
    assert temp_glob("/tmp/a*b123456") is None  # not alphanumeric: never globbed


def test_directories_inferred_from_children() -> None:
    evs = [exec_ev("/usr/bin/w", 1), ev("sys_openat", {"path": "/a/d"}, 2),
           ev("sys_openat", {"path": "/a/d/f"}, 3)]  # fmt: skip
    assert build([({}, evs, "t")]).directories() == {"/a/d"}
