"""Renderers: golden files per target, the real validators, hostile names, check.

Validators run for real (apparmor_parser -Q -K, checkmodule -M -m,
tomoyo-checkpolicy); a test skips with the reason only when the tool is not
installed (`make deps` installs them: apparmor, checkpolicy, tomoyo-tools).
LSMTRACE_UPDATE_GOLDEN=1 rewrites the golden files.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from lsmtrace import cli
from lsmtrace.policy import apparmor, check, generate, landlock, load_access_set, tomoyo

DATA = Path(__file__).resolve().parents[1] / "data"
REC = DATA / "recordings"
GOLDEN = DATA / "golden"
CAT = str(REC / "cat_two_files.jsonl")
HOSTILE = str(REC / "hostile.jsonl")
GREP = str(REC / "grep_dirfd.jsonl")
# golden files: a recording without path_kind (its relative names get no
# rule) and one of the current format (exec chain, temp files, folding)
GOLDEN_RECS = ("cat_two_files", "wrapper_exec")
SUFFIX = {
    "apparmor": "apparmor",
    "selinux": "te",
    "landlock": "landlock.json",
    "tomoyo": "tomoyo",
}


def tool(name: str) -> str:
    for d in ("/usr/sbin", "/sbin", "/usr/bin"):
        if os.access(f"{d}/{name}", os.X_OK):
            return f"{d}/{name}"
    found = shutil.which(name)
    if not found:
        pytest.skip(f"{name} not installed (make deps installs it)")
    return found


def apparmor_ok(path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool("apparmor_parser"), "-Q", "-K", *extra, str(path)],
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.parametrize("rec", GOLDEN_RECS)
@pytest.mark.parametrize("target", sorted(SUFFIX))
def test_golden(target: str, rec: str) -> None:
    name = rec.split("_")[0] if target == "selinux" else None
    text = generate(target, load_access_set([str(REC / f"{rec}.jsonl")]), name=name)
    golden = GOLDEN / f"{rec}.{SUFFIX[target]}"
    if os.environ.get("LSMTRACE_UPDATE_GOLDEN"):
        golden.write_text(text)
    assert text == golden.read_text()


@pytest.mark.parametrize("rec", GOLDEN_RECS)
def test_apparmor_parser_accepts_golden(rec: str) -> None:
    r = apparmor_ok(GOLDEN / f"{rec}.apparmor")
    assert r.returncode == 0, r.stderr


def _write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text, errors="surrogateescape")
    return p


def test_apparmor_hostile_names_stay_literal(tmp_path: Path) -> None:
    text = generate("apparmor", load_access_set([HOSTILE]))
    # no abstractions: the expression tree then holds only our rules
    bare = text.replace("  #include <abstractions/base>\n", "")
    p = _write(tmp_path, "hostile", bare)
    r = apparmor_ok(p)
    assert r.returncode == 0, r.stderr
    tree = apparmor_ok(p, "-D", "expr-tree")
    out = tree.stdout + tree.stderr
    assert "Expression Tree" in out
    # a glob shows as [^\x0/] or (.)* in the tree: nothing of ours may be one
    assert "[^" not in out, out
    assert "(.)" not in out, out
    # (the tree factors common prefixes, so look for each name's distinctive tail)
    for literal in (
        r"\*glob",
        r"new\nline",
        "@{HOME}var",
        r"\xff\xfeutf8",
        r"\ ace,comma",
        r"\e\[31mred",
        "w{x}",
    ):
        assert literal in out, literal
    # the injected newline started no rule of its own
    rules = [
        ln
        for ln in bare.splitlines()
        if ln.startswith("  ") and not ln.startswith("  #")
    ]
    assert len(rules) == 11
    # the relative name got no rule; the comment saying so is one line
    assert "#   relative\\\\file (read) by /usr/bin/host*ile: a relative name" in bare
    assert all(
        re.match(r'^  "[^"\\]*(\\.[^"\\]*)*" [mrwalxiP]+,$', ln) for ln in rules
    ), rules


def test_apparmor_generalisations(tmp_path: Path) -> None:
    from lsmtrace.policy.model import build

    def ev(path: str, ts: int, flags: int = 0) -> dict[str, object]:
        return {
            "kind": "syscall",
            "hook": "sys_openat",
            "verdict": "allow",
            "ret": 0,
            "pid": 321,
            "tgid": 321,
            "ppid": 1,
            "comm": "w",
            "ts_ns": ts,
            "object": {"path": path, "flags": flags},
        }

    evs = [
        {
            "kind": "exec",
            "hook": "exec",
            "verdict": "allow",
            "ret": 0,
            "pid": 321,
            "tgid": 321,
            "ppid": 1,
            "comm": "w",
            "ts_ns": 0,
            "object": {"filename": "/usr/bin/w"},
        },
        ev("/proc/321/environ", 1),
        ev("/proc/self/mounts", 2),
        ev("/proc/1/stat", 3),
        ev("/tmp/w-Ab12Cd/out", 4, 0o101),
        ev("/usr/lib/x86_64-linux-gnu/libz.so.1", 5),
        ev("/proc/321/status", 6),
        ev("/bin/busybox", 7),
    ]
    text = apparmor.render(build([({}, evs, "g")]))
    assert 'owner "@{PROC}/@{pid}/environ" r,' in text
    assert 'owner "@{PROC}/@{pid}/mounts" r,' in text
    assert '"@{PROC}/@{pids}/stat" r,' in text
    assert 'owner "/tmp/w-*/out" w,' in text
    assert '"/{,usr/}bin/busybox" r,' in text
    # abstractions/base grants these: folded, not listed
    assert "libz" not in text
    assert "status" not in text
    assert (
        "# Not listed, granted by the includes: 2 access(es) by abstractions/base"
        in text
    )
    assert "#   random temp names -> * (a name random throughout" in text
    assert "#   merged /usr: /bin/x -> /{,usr/}bin/x" in text
    r = apparmor_ok(_write(tmp_path, "gen", text))
    assert r.returncode == 0, r.stderr


def test_selinux_module_compiles(tmp_path: Path) -> None:
    checkmodule = tool("checkmodule")
    for src, name in ((CAT, "cat"), (HOSTILE, "hostile")):
        text = generate("selinux", load_access_set([src]), name=name)
        te = _write(tmp_path, f"lsmtrace_{name}.te", text)
        r = subprocess.run(
            [
                checkmodule,
                "-M",
                "-m",
                "-o",
                str(tmp_path / f"lsmtrace_{name}.mod"),
                str(te),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        assert r.returncode == 0, r.stdout + r.stderr
        assert (tmp_path / f"lsmtrace_{name}.mod").stat().st_size > 0
        # paths only ever appear in comments
        for ln in text.splitlines():
            assert ln.startswith("#") or "/" not in ln, ln


def test_tomoyo_checkpolicy(tmp_path: Path) -> None:
    checker = tool("tomoyo-checkpolicy")
    for src in (CAT, HOSTILE):
        text = generate("tomoyo", load_access_set([src]))
        r = subprocess.run(
            [checker, "d"], input=text, capture_output=True, text=True, check=False
        )
        assert r.returncode == 0, r.stdout + r.stderr
        assert " 0 Error" in r.stdout + r.stderr
    text = generate("tomoyo", load_access_set([HOSTILE]))
    assert 'file read /tmp/lsmtrace-fixture/new\\012line"\\040r,\\012' in text
    assert "\nfile read /tmp/lsmtrace-fixture/sp\\040ace,comma\n" in text


def test_tomoyo_encode() -> None:
    assert tomoyo.encode("a b\\c*\n\udcff") == "a\\040b\\\\c*\\012\\377"


def test_landlock_rules_exact_and_parse_back() -> None:
    text = generate("landlock", load_access_set([GREP]))
    doc = landlock.parse(text)
    rules = {r["path"]: r["access"] for r in doc["rules"]}
    assert rules["/data/tree/f1.txt"] == ["read_file"]  # dirfd-relative, exact
    assert rules["/data/tree/sub"] == ["read_dir"]
    assert rules["/usr/bin/grep"] == ["execute", "read_file"]
    assert "/data" not in rules  # exact paths, no parent widening
    assert "/home/u/f3.txt" not in rules  # the as_given name: no ghost
    assert set(doc["handled_access_fs"]) == set(landlock.FS_RIGHTS)


def test_landlock_created_file_grants_directory() -> None:
    text = generate("landlock", load_access_set([HOSTILE]))
    rules = {r["path"]: r["access"] for r in landlock.parse(text)["rules"]}
    assert rules["/tmp/lsmtrace-fixture"] == ["write_file", "make_reg", "truncate"]
    assert rules["/tmp/lsmtrace-fixture/star*glob"] == ["read_file"]


@pytest.mark.parametrize(
    "bad",
    [
        '{"x": 1}',
        "not json",
        json.dumps({"lsmtrace_landlock": 1, "rules": [{"path": "rel", "access": []}]}),
        json.dumps(
            {"lsmtrace_landlock": 1, "rules": [{"path": "/x", "access": ["fly"]}]}
        ),
    ],
)
def test_landlock_parse_rejects(bad: str) -> None:
    with pytest.raises(landlock.PolicyFormatError):
        landlock.parse(bad)


# -- check and diff through the commands ---------------------------------------------


def run(argv: list[str]) -> tuple[int, str]:
    args = cli.build_parser().parse_args(argv)
    out = io.StringIO()
    return args.func(args, out), out.getvalue()


@pytest.mark.parametrize("target", ["apparmor", "landlock", "tomoyo"])
def test_check_own_recording_passes_then_denies_removed_rule(
    tmp_path: Path, target: str
) -> None:
    pol = tmp_path / f"p.{target}"
    rc, _ = run(["policy", "generate", "--target", target, GREP, "-o", str(pol)])
    assert rc == 0
    rc, out = run(["policy", "check", "--policy", str(pol), GREP])
    assert rc == 0, out
    assert out.startswith("0 recorded access(es) would be denied")
    # drop the rule for file f2.txt: that access is now reported, exit 1
    text = pol.read_text()
    if target == "landlock":
        doc = json.loads(text)
        doc["rules"] = [r for r in doc["rules"] if r["path"] != "/data/tree/sub/f2.txt"]
        doc["rules"].append({"path": "/srv/never", "access": ["read_file"]})
        text = json.dumps(doc)
    else:
        text = "\n".join(ln for ln in text.splitlines() if "sub/f2.txt" not in ln)
    pol.write_text(text)
    rc, out = run(["policy", "check", "--policy", str(pol), GREP, "--json"])
    assert rc == 1
    findings = [json.loads(ln) for ln in out.splitlines()]
    denied = [f for f in findings if f["finding"] == "would_deny"]
    assert denied == [
        {
            "finding": "would_deny",
            "program": "/usr/bin/grep",
            "kind": "file",
            "what": "/data/tree/sub/f2.txt",
            "access": "read",
        }
    ]
    if target == "landlock":
        assert {"finding": "unused_rule", "rule": "/srv/never read_file"} in findings


def test_check_hostile_roundtrip_all_targets(tmp_path: Path) -> None:
    for target in ("apparmor", "landlock", "tomoyo", "selinux"):
        pol = _write(
            tmp_path, f"h.{target}", generate(target, load_access_set([HOSTILE]))
        )
        res = check(str(pol), load_access_set([HOSTILE]))
        assert res.denied == [], (target, res.denied)
        assert res.unused == [], (target, res.unused)


def test_check_merges_recordings(tmp_path: Path) -> None:
    pol = tmp_path / "p.json"
    run(["policy", "generate", "--target", "landlock", CAT, HOSTILE, "-o", str(pol)])
    rc, out = run(["policy", "check", "--policy", str(pol), CAT, HOSTILE])
    assert rc == 0, out
    pol2 = tmp_path / "p2.json"
    run(["policy", "generate", "--target", "landlock", CAT, "-o", str(pol2)])
    rc, out = run(["policy", "check", "--policy", str(pol2), CAT, HOSTILE])
    assert rc == 1
    assert "star*glob" in out


def test_diff() -> None:
    rc, out = run(["policy", "diff", CAT, CAT])
    assert rc == 0
    assert out == "0 added, 0 removed\n"
    rc, out = run(["policy", "diff", "--json", GREP, HOSTILE])
    assert rc == 1
    changes = [json.loads(ln) for ln in out.splitlines()]
    assert {
        "change": "+",
        "program": "/usr/bin/host*ile",
        "kind": "file",
        "what": "/tmp/lsmtrace-fixture/star*glob",
        "access": "read",
    } in changes
    assert {
        "change": "-",
        "program": "/usr/bin/grep",
        "kind": "file",
        "what": "/data/tree/f1.txt",
        "access": "read",
    } in changes


def test_generate_is_deterministic() -> None:
    for target in SUFFIX:
        a = generate(target, load_access_set([CAT, HOSTILE]))
        assert a == generate(target, load_access_set([CAT, HOSTILE]))


def test_landlock_temp_private_only_for_created() -> None:
    from lsmtrace.policy.model import build

    def ev(hook: str, path: str, ts: int, flags: int = 0) -> dict[str, object]:
        return {
            "kind": "syscall",
            "hook": hook,
            "verdict": "allow",
            "ret": 0,
            "pid": 5,
            "tgid": 5,
            "ppid": 1,
            "comm": "w",
            "ts_ns": ts,
            "object": {"path": path, "flags": flags},
        }

    evs = [
        ev("sys_openat", "/tmp/in-Ab12Cd/existing", 1),
        ev("sys_mkdir", "/tmp/out-Zz98Yy", 2),
        ev("sys_openat", "/tmp/out-Zz98Yy/result", 3, 0o101),
    ]
    doc = landlock.parse(landlock.render(build([({}, evs, "t")])))
    rules = {r["path"]: r["access"] for r in doc["rules"]}
    assert rules == {"/tmp/in-Ab12Cd/existing": ["read_file"]}  # exact: it existed
    # created under a random name: the per-run private TMPDIR, never /tmp
    assert doc["private_tmp"]["under"] == "/tmp"
    assert doc["private_tmp"]["access"] == ["write_file", "make_dir", "make_reg"]


def test_pure_modules_import_without_bcc() -> None:
    import subprocess
    import sys

    mods = [
        "lsmtrace.record",
        "lsmtrace.commands.replay",
        "lsmtrace.commands.policy",
        "lsmtrace.sandbox",
        "lsmtrace.policy",
        "lsmtrace.policy.model",
        "lsmtrace.policy.apparmor",
        "lsmtrace.policy.selinux",
        "lsmtrace.policy.landlock",
        "lsmtrace.policy.tomoyo",
    ]
    code = (
        "import importlib, sys\nfor m in sys.argv[1:]: importlib.import_module(m)\n"
        "print(sorted(k for k in sys.modules if k.split('.')[0] in ('bcc', 'textual')))"
    )
    r = subprocess.run(
        [sys.executable, "-c", code, *mods],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert r.stdout.strip() == "[]"


def _events(*specs: tuple[str, str, int]) -> list[dict[str, object]]:
    """exec of /usr/bin/w by pid 5, then (hook, path, open flags) events of it."""
    base = {"verdict": "allow", "ret": 0, "pid": 5, "tgid": 5, "ppid": 1, "comm": "w"}
    evs: list[dict[str, object]] = [
        {
            **base,
            "kind": "exec",
            "hook": "sched_process_exec",
            "ts_ns": 0,
            "object": {"filename": "/usr/bin/w"},
        }
    ]
    for ts, (hook, path, flags) in enumerate(specs, 1):
        evs.append(
            {
                **base,
                "kind": "syscall",
                "hook": hook,
                "ts_ns": ts,
                "object": {"path": path, "flags": flags},
            }
        )
    return evs


def test_tomoyo_names_and_sections(tmp_path: Path) -> None:
    """TOMOYO's own names: proc:/self for the caller's pid, proc:/\\$ for
    others, devpts:/; create allows any mode; the three parts split for
    tomoyo-loadpolicy, each accepted by tomoyo-checkpolicy."""
    from lsmtrace.policy.model import build

    aset = build(
        [
            (
                {},
                _events(
                    ("sys_openat", "/proc/5/status", 0),
                    ("sys_openat", "/proc/77/cmdline", 0),
                    ("sys_openat", "/dev/pts/3", 1),
                    ("sys_openat", "/srv/out", 0o101),
                ),
                "t",
            )
        ]
    )
    text = tomoyo.render(aset)
    lines = set(text.splitlines())
    assert {
        "file read proc:/self/status",
        "file read proc:/\\$/cmdline",
        "file write devpts:/3",
        "file create /srv/out 0-07777",
        "file write /srv/out",
    } <= lines
    assert not any("/proc/" in ln for ln in lines if not ln.startswith("#"))
    parts = tomoyo.sections(text)
    assert parts["exception"] == "initialize_domain /usr/bin/w from any\n"
    assert parts["domain"].startswith(
        f"<kernel> /usr/bin/w\nuse_profile {tomoyo.PROFILE}\n"
    )
    prof = parts["profile"].splitlines()
    assert (
        f"{tomoyo.PROFILE}-CONFIG={{ mode=disabled grant_log=no reject_log=yes }}"
        in prof
    )
    assert (
        f"{tomoyo.PROFILE}-CONFIG::file::open={{ mode=enforcing grant_log=no "
        "reject_log=yes }" in prof
    )
    for kind in ("e", "d"):
        r = subprocess.run(
            [tool("tomoyo-checkpolicy"), kind],
            input=parts["exception" if kind == "e" else "domain"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert r.returncode == 0, r.stdout + r.stderr
        assert " 0 Error" in r.stdout + r.stderr, r.stdout + r.stderr
    # check() names the recorded paths the same way: its own policy denies nothing
    pol = _write(tmp_path, "w.tomoyo", text)
    assert check(str(pol), aset).denied == []
    pol.write_text(text.replace("file read proc:/\\$/cmdline\n", ""))
    assert [str(a) for a in check(str(pol), aset).denied] == [
        "/usr/bin/w: file /proc/77/cmdline read"
    ]


def test_tomoyo_network_acls_generated_and_checked(tmp_path: Path) -> None:
    from lsmtrace.policy.model import AccessSet, NetAccess

    aset = AccessSet()
    prog = aset.program("/usr/bin/w", "/usr/bin/w")
    prog.network.add(NetAccess("connect", "AF_INET", "SOCK_DGRAM", 53))
    prog.network.add(NetAccess("connect", "AF_INET", "SOCK_STREAM", 80))
    prog.network.add(NetAccess("send", "AF_INET", "SOCK_STREAM", 80))  # not checked
    text = tomoyo.render(aset)
    stream = "network inet stream connect 0.0.0.0-255.255.255.255 80"
    assert "network inet dgram send 0.0.0.0-255.255.255.255 53" in text
    assert stream in text
    assert "dgram connect" not in text
    assert "stream send" not in text
    r = subprocess.run(
        [tool("tomoyo-checkpolicy"), "d"],
        input=tomoyo.sections(text)["domain"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert " 0 Error" in r.stdout + r.stderr, r.stdout + r.stderr
    pol = _write(tmp_path, "w.tomoyo", text)
    res = check(str(pol), aset)
    assert (res.denied, res.unused) == ([], [])
    # the audit step sees a missing network rule; a port range grants; an
    # unused rule is listed
    pol.write_text(
        text.replace(
            stream,
            "network inet stream connect 0.0.0.0 443\n"
            "network inet stream bind 0.0.0.0 8000-8080",
        )
    )
    res = check(str(pol), aset)
    assert [str(a) for a in res.denied] == [
        "/usr/bin/w: net connect AF_INET SOCK_STREAM port 80 connect"
    ]
    assert len(res.unused) == 2
    pol.write_text(text.replace(stream, "network inet stream connect 0.0.0.0 79-81"))
    assert check(str(pol), aset).denied == []
    pol.write_text(text.replace(stream, "network inet stream connect 0.0.0.0 http"))
    with pytest.raises(tomoyo.TomoyoParseError, match="port 'http' is not a number"):
        check(str(pol), aset)


def test_selinux_check_reads_the_module_back(tmp_path: Path) -> None:
    """check evaluates a .te module with generation's own mapping: the module
    passes its recording; a permission removed by hand is reported as the
    accesses that needed it, and a rule nothing used as unused."""
    text = generate("selinux", load_access_set([GREP]), name="grep")
    rc, out = run(
        ["policy", "check", "--policy", str(_write(tmp_path, "c.te", text)), GREP]
    )
    assert rc == 0, out
    rule = next(
        ln
        for ln in text.splitlines()
        if ln.startswith("allow lsmtrace_grep_t root_t:file")
    )
    assert "read" in rule
    edited = text.replace(rule, rule.replace(" read ", " ")) + (
        "allow lsmtrace_grep_t shadow_t:file { read };\n"
    )
    pol = _write(tmp_path, "e.te", edited)
    rc, out = run(["policy", "check", "--policy", str(pol), GREP, "--json"])
    assert rc == 1
    findings = [json.loads(ln) for ln in out.splitlines()]
    denied = sorted(f["what"] for f in findings if f["finding"] == "would_deny")
    assert denied == ["/data/tree/f1.txt", "/data/tree/sub/f2.txt"]
    assert {
        "finding": "unused_rule",
        "rule": "allow lsmtrace_grep_t shadow_t:file { read }",
    } in findings


def test_selinux_check_errors(tmp_path: Path) -> None:
    from lsmtrace.policy import selinux

    with pytest.raises(selinux.SelinuxParseError, match=r"no 'module NAME VERSION;'"):
        selinux.parse("allow a b:file read;\n", "x.te")
    bad = "module m 1.0;\n\nrequire {\n\ttype b;\n}\n# c\nallow a b read;\n"
    with pytest.raises(selinux.SelinuxParseError, match=r"x\.te: line 7: cannot read"):
        selinux.parse(bad, "x.te")
    rules = selinux.parse(
        "module m 1.0;\nallow { a c } b:{ file dir } { read open };\n"
        "allow a self:capability sys_admin;\n"
    )
    assert rules[("c", "b", "dir")] == {"read", "open"}
    assert rules[("a", "self", "capability")] == {"sys_admin"}


def test_selinux_types_from_audited_avcs() -> None:
    """Where SELinux is active, the AVC audited inside a hook labels the path of
    the decision that follows on the same thread; the table fills the rest."""
    from lsmtrace.policy import selinux
    from lsmtrace.policy.model import build

    def avc(tclass: str, tcontext: str, ts: int) -> dict[str, object]:
        return {
            "kind": "avc",
            "hook": "selinux_audited",
            "verdict": "allow",
            "pid": 5,
            "tgid": 5,
            "ppid": 1,
            "comm": "w",
            "ts_ns": ts,
            "object": {"tclass": tclass, "tcontext": tcontext},
        }

    evs = _events(("sys_openat", "/srv/data/x", 0), ("sys_openat", "/srv/data/y", 0))
    evs[1]["ts_ns"], evs[2]["ts_ns"] = 3, 5
    evs += [
        avc("dir", "system_u:object_r:var_t:s0", 1),
        avc("file", "system_u:object_r:httpd_sys_content_t:s0", 2),
        avc("file", "system_u:object_r:bad-type;x:s0", 4),
    ]
    aset = build([({}, evs, "t")])
    assert aset.labels == {"/srv/data/x": "httpd_sys_content_t"}
    text = selinux.render(aset, "w")
    assert (
        "allow lsmtrace_w_t httpd_sys_content_t:file { getattr map open read };" in text
    )
    assert (
        "allow lsmtrace_w_t var_t:file { getattr map open read };" in text
    )  # y: the table


def _selinux_audit(tclass: str, tcontext: str, **obj: str) -> dict[str, object]:
    """The `audit` object the join attaches for an SELinux AVC (docs/events.md)."""
    return {
        "serial": 1,
        "time": "2026-11-29T16:00:00.000Z",
        "lsm": "selinux",
        "result": "denied",
        "pid": 5,
        "comm": "w",
        "exe": "/usr/bin/w",
        "syscall": 257,
        "exit": -13,
        "rule": "selinux",
        "types": [1400],
        "perms": ["read"],
        "scontext": "system_u:system_r:w_t:s0",
        "tcontext": tcontext,
        "tclass": tclass,
        "permissive": False,
        **obj,
    }


def test_selinux_types_from_joined_audit_records() -> None:
    """An AVC joined to a denial (`audit`) labels the object it names: by its
    path, or by its name (the decision's file, or that file's directory).
    Used or not (a denial is not granted), the record tells the file's type;
    the same AVC seen as a tracepoint `avc` event gives the same label."""
    from lsmtrace.policy import selinux
    from lsmtrace.policy.model import build

    evs = _events(
        ("sys_openat", "/srv/data/x", 0),
        ("sys_openat", "/srv/data/y", 0),
        ("sys_openat", "/srv/data/new", 0o101),
        ("sys_openat", "/srv/data/x", 0),
        ("sys_openat", "/srv/data/y", 0),
        ("sys_openat", "/srv/other/z", 0),
    )
    web = "system_u:object_r:httpd_sys_content_t:s0"
    for i, audited in (
        (1, _selinux_audit("file", web, name="x")),
        (2, _selinux_audit("file", web, path="/srv/data/y")),
        (3, _selinux_audit("dir", "system_u:object_r:var_www_t:s0", name="data")),
        (6, _selinux_audit("file", "system_u:object_r:bad-type;x:s0", name="z")),
    ):
        evs[i].update(verdict="deny", ret=-13, audit=audited)
    evs[6]["audit"] = {**evs[6]["audit"], "lsm": "apparmor"}  # type: ignore[dict-item]
    aset = build([({}, evs, "t")])
    assert aset.labels == {
        "/srv/data/x": "httpd_sys_content_t",
        "/srv/data/y": "httpd_sys_content_t",
        "/srv/data": "var_www_t",
    }
    text = selinux.render(aset, "w")
    assert (
        "allow lsmtrace_w_t httpd_sys_content_t:file { getattr map open read };" in text
    )
    # complain-mode learning grants the denied create: in the labelled directory
    learned = selinux.render(build([({}, evs, "t")], include_denied=True), "w")
    assert "allow lsmtrace_w_t var_www_t:dir { add_name search write };" in learned
    # one mapping: the tracepoint rung's AVC event for that same access
    avc = {
        "kind": "avc",
        "hook": "selinux_audited",
        "verdict": "allow",
        "pid": 5,
        "tgid": 5,
        "ppid": 1,
        "comm": "w",
        "ts_ns": 0,
        "object": {"tclass": "file", "tcontext": web},
    }
    plain = _events(("sys_openat", "/srv/data/x", 0))
    plain[1]["ts_ns"], avc["ts_ns"] = 2, 1
    assert build([({}, [*plain, avc], "t")]).labels == {
        "/srv/data/x": "httpd_sys_content_t"
    }
