"""Generators on realistic workloads (tests/data/recordings/make_workloads.py and
two real recordings of this host): unique names, wrapper chains, folded
includes, capabilities only on evidence, narrow temporary files, no invented
paths, instructions that work as written, `diff` generalised, and every
policy through its real validator. A validator that is not installed skips
with the reason (`make deps` installs them)."""

from __future__ import annotations

import io
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from lsmtrace import cli
from lsmtrace.policy import check, generate, landlock, load_access_set, tomoyo
from lsmtrace.policy.model import build

REPO = Path(__file__).resolve().parents[2]
REC = REPO / "tests" / "data" / "recordings"
WORKLOADS = (
    "pyenv_shim",
    "venv_app",
    "wrapper_exec",
    "forking_daemon",
    "grep_dirfd",
    "bash_true_twice",
    "grep_r_legacy",
)
TARGETS = ("apparmor", "selinux", "tomoyo", "landlock")


def rec(name: str) -> str:
    return str(REC / f"{name}.jsonl")


def gen(target: str, *names: str, **kw: str) -> str:
    return generate(target, load_access_set([rec(n) for n in names]), **kw)


def tool(name: str) -> str:
    from test_policy_targets import tool as find

    return find(name)


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    """The command in-process: (exit code, stdout, stderr)."""
    args = cli.build_parser().parse_args(argv)
    out, err = io.StringIO(), io.StringIO()
    old, sys.stderr = sys.stderr, err
    try:
        rc = args.func(args, out)
    finally:
        sys.stderr = old
    return rc, out.getvalue(), err.getvalue()


def apparmor_parse(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool("apparmor_parser"), "-Q", "-K", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )


def rules_of(text: str) -> list[str]:
    return [
        ln.strip()
        for ln in text.splitlines()
        if ln.strip() and not ln.strip().startswith("#")
    ]


# -- 1. unique, stable names ---------------------------------------------------------


def test_shim_and_real_binary_get_distinct_profiles(tmp_path: Path) -> None:
    """The issue's reproducer: a pyenv shim `python3` and the interpreter it
    execs, also `python3`: two profiles, named from their paths; loads."""
    text = gen("apparmor", "pyenv_shim")
    names = re.findall(r"^\s*profile (\S+)", text, re.M)
    assert len(names) == len(set(names))
    assert "lsmtrace-root.pyenv.shims.python3" in names
    assert "lsmtrace-root.pyenv.versions.3.11.7.bin.python3" in names
    p = tmp_path / "shim.aa"
    p.write_text(text)
    r = apparmor_parse(p)
    assert r.returncode == 0, r.stderr
    assert "Multiple definitions" not in r.stderr


def sh_true_twice(usr_reads: bool = True) -> list[dict[str, object]]:
    """`/bin/sh -c '/bin/true; /usr/bin/true'`, each true reading a file of
    its own (so each needs a profile of its own)."""

    def e(
        kind: str, hook: str, pid: int, ts: int, obj: dict[str, object]
    ) -> dict[str, object]:
        return {
            "kind": kind,
            "hook": hook,
            "verdict": "allow",
            "ret": 0,
            "pid": pid,
            "tgid": pid,
            "ppid": 1 if pid == 10 else 10,
            "comm": "sh",
            "ts_ns": ts,
            "object": obj,
        }

    evs = [
        e("exec", "exec", 10, 1, {"filename": "/bin/sh"}),
        e("fork", "fork", 10, 2, {"child_pid": 11}),
        e("exec", "exec", 11, 3, {"filename": "/bin/true"}),
        e("syscall", "sys_openat", 11, 4, {"path": "/etc/a", "path_kind": "exact"}),
        e("exec", "exec", 10, 5, {"filename": "/usr/bin/true"}),
    ]
    if usr_reads:
        evs.append(
            e("syscall", "sys_openat", 10, 6, {"path": "/etc/b", "path_kind": "exact"})
        )
    return evs


def test_bin_true_and_usr_bin_true(tmp_path: Path) -> None:
    """`/bin/sh -c '/bin/true; /usr/bin/true'`: two programs of the same
    basename. Where each is a domain of its own (SELinux: two recorded
    commands) they get names from their paths; AppArmor and TOMOYO, which name
    an executed file by its resolved path, see one file on a merged-/usr system
    and give it one profile (both exec rules, one transition: no conflicting
    x modifiers)."""
    from lsmtrace.policy import apparmor, selinux

    aset = build([({"command": ["/bin/sh", "-c", "x"]}, sh_true_twice(), "t")])
    assert {"/bin/true", "/usr/bin/true"} <= set(aset.programs)
    assert apparmor.profile_names(aset)["/bin/true"] == "lsmtrace-bin.true"
    assert apparmor.profile_names(aset)["/usr/bin/true"] == "lsmtrace-usr.bin.true"
    text = apparmor.render(aset)
    assert '"/{,usr/}bin/true" Px -> lsmtrace-true,' in text
    assert '"/usr/bin/true" Px -> lsmtrace-true,' in text
    assert '"/etc/a" r,' in text.split("profile lsmtrace-true {")[1]
    p = tmp_path / "t.aa"
    p.write_text(text)
    r = apparmor_parse(p)
    assert r.returncode == 0, r.stderr
    tm = tomoyo.render(aset)
    assert "<kernel> /bin/sh /usr/bin/true" in tm
    assert "aggregator /usr/bin/true /bin/true" not in tm  # it would hide /usr/bin/true
    # SELinux: two recorded commands named true: two domains, from their paths
    evs = sh_true_twice()
    two = build([({}, [evs[2], evs[3]], "a"), ({}, [evs[4], evs[5]], "b")])
    assert two.roots == {"/bin/true", "/usr/bin/true"}
    assert selinux.domains(two) == {
        "/bin/true": ["lsmtrace_bin_true_t"],
        "/usr/bin/true": ["lsmtrace_usr_bin_true_t"],
    }
    te = tmp_path / "two.te"
    te.write_text(selinux.render(two, "two"))
    r = subprocess.run(
        [
            tool("checkmodule"),
            "-M",
            "-m",
            "-o",
            str(tmp_path / "lsmtrace_two.mod"),
            str(te),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert r.returncode == 0, r.stdout + r.stderr


# -- 2. wrapper chains ---------------------------------------------------------------


def test_apparmor_transitions_chosen_and_explained() -> None:
    text = gen("apparmor", "wrapper_exec")
    lines = text.splitlines()

    def rule_and_why(target: str) -> tuple[str, str]:
        i = next(
            i for i, ln in enumerate(lines) if ln.strip().startswith(f'"{target}"')
        )
        return lines[i].strip(), lines[i - 1].strip()

    rule, why = rule_and_why("/usr/local/libexec/app-real")
    assert rule == '"/usr/local/libexec/app-real" Px -> lsmtrace-app-real,'
    assert why.startswith("# Px: /usr/local/libexec/app-real: takes over this process")
    rule, why = rule_and_why("/usr/bin/mkdir")
    assert rule == '"/usr/bin/mkdir" Cx -> lsmtrace-mkdir,'
    assert "a child process that needs more than this profile" in why
    rule, why = rule_and_why("/usr/bin/true")
    assert rule == '"/usr/bin/true" ix,'
    assert "needs nothing this profile does not grant" in why
    # the child profiles sit inside the wrapper's; the real binary's is top level
    # and not attached (only the recorded command is)
    assert re.search(
        r'^profile lsmtrace-app-wrapper "/usr/local/bin/app-wrapper" \{$'
        r"(?:\n(?!\}).*)*\n  profile lsmtrace-mkdir \{",
        text,
        re.M,
    )
    assert "\nprofile lsmtrace-app-real {\n" in text
    # the #! interpreter of the wrapper (from the exec's argv), merged /usr
    assert '  "/{,usr/}bin/sh" mr,' in text


def test_apparmor_bash_true_inherits() -> None:
    """bash -c '/bin/true; /bin/true' (real recording): true needs nothing bash
    lacks: ix, no profile of its own, and no sys_admin anywhere."""
    text = gen("apparmor", "bash_true_twice")
    assert re.findall(r"^profile (\S+)", text, re.M) == ["lsmtrace-bash"]
    assert '  "/{,usr/}bin/true" ix,' in text
    assert "capability" not in "\n".join(rules_of(text))


def test_tomoyo_domains_follow_the_exec_chains() -> None:
    text = gen("tomoyo", "wrapper_exec")
    doms = re.findall(r"^<kernel> .*$", text, re.M)
    w = "/usr/local/bin/app-wrapper"
    assert doms == [
        f"<kernel> {w}",
        f"<kernel> {w} /usr/bin/mkdir",
        f"<kernel> {w} /usr/bin/mktemp",
        f"<kernel> {w} /usr/bin/true",
        f"<kernel> {w} /usr/local/libexec/app-real",
    ]
    parts = tomoyo.sections(text)
    assert parts["exception"] == f"initialize_domain {w} from any\n"  # the root only
    real = text.split(f"<kernel> {w} /usr/local/libexec/app-real\n")[1]
    assert "file read /etc/app.conf" in real
    wrapper = text.split(f"<kernel> {w}\n")[1].split("<kernel>")[0]
    assert "file execute /usr/local/libexec/app-real" in wrapper
    assert "file read /bin/sh" in wrapper  # TOMOYO checks the interpreter's read
    # merged /usr: the recorded /bin names are the ones TOMOYO uses
    bash = gen("tomoyo", "bash_true_twice")
    assert "#   aggregator /usr/bin/bash /bin/bash" in bash
    assert "#   aggregator /usr/bin/true /bin/true" in bash
    assert "<kernel> /bin/bash /bin/true" in bash


def test_selinux_one_domain_for_the_chain() -> None:
    text = gen("selinux", "wrapper_exec", name="wrapper")
    assert re.findall(r"^type (lsmtrace_\w+_t);", text, re.M) == [
        "lsmtrace_app_wrapper_t",
        "lsmtrace_app_wrapper_tmp_t",
    ]
    allows = [ln for ln in text.splitlines() if ln.startswith("allow ")]
    assert all(ln.startswith("allow lsmtrace_app_wrapper_t ") for ln in allows)
    # execs stay in the domain; the wrapper's own file may enter it
    assert (
        "allow lsmtrace_app_wrapper_t bin_t:file { entrypoint execute execute_no_trans "
        "getattr map open read };"
    ) in allows
    assert (
        "allow lsmtrace_app_wrapper_t usr_t:file { execute execute_no_trans getattr map "
        "open read };"
    ) in allows
    # app-real's accesses are the domain's
    assert (
        "allow lsmtrace_app_wrapper_t etc_t:file { getattr map open read };" in allows
    )


def test_landlock_one_ruleset_for_the_chain() -> None:
    doc = landlock.parse(gen("landlock", "wrapper_exec"))
    rules = {r["path"]: r["access"] for r in doc["rules"]}
    assert rules["/usr/local/libexec/app-real"] == ["execute", "read_file"]
    assert rules["/etc/app.conf"] == ["read_file"]  # the real binary's
    assert rules["/var/lib"] == ["make_dir"]  # mkdir's
    assert any("inherited across fork and exec" in c for c in doc["comment"])


# -- 3. what the includes grant is folded ------------------------------------------


def test_apparmor_folds_base_nameservice_python(tmp_path: Path) -> None:
    cat = gen("apparmor", "cat_two_files")
    rules = "\n".join(ln for ln in cat.splitlines() if not ln.lstrip().startswith("#"))
    for folded in ("LC_", "ld.so.cache", "libc"):
        assert folded not in rules
    assert (
        "# Not listed, granted by the includes: 18 access(es) by abstractions/base"
        in cat
    )

    def prog(files: dict[str, set[str]], net: bool) -> str:
        from lsmtrace.policy import apparmor
        from lsmtrace.policy.model import AccessSet, NetAccess

        aset = AccessSet(roots={"/usr/bin/w"})
        p = aset.program("/usr/bin/w", "/usr/bin/w")
        p.files = files
        if net:
            p.network.add(NetAccess("connect", "AF_INET", "SOCK_STREAM", 443))
        return apparmor.render(aset)

    ns = {
        "/etc/nsswitch.conf": {"read"},
        "/etc/hosts": {"read"},
        "/etc/passwd": {"read"},
    }
    text = prog(ns, net=True)
    assert "#include <abstractions/nameservice>" in text
    assert "/etc/hosts" not in text
    assert "network inet stream" not in text
    # without inet sockets nameservice would grant more than was used: listed
    text = prog(ns, net=False)
    assert "nameservice" not in text
    assert '"/etc/passwd" r,' in text
    py = prog(
        {"/usr/local/lib/python3.11/dist-packages/x/__init__.py": {"read"}}, False
    )
    assert "#include <abstractions/python>" in py
    assert "dist-packages" not in py
    p = tmp_path / "py.aa"
    p.write_text(py)
    assert apparmor_parse(p).returncode == 0


def test_embedded_abstractions_match_the_hosts() -> None:
    """Every rule lsmtrace folds into an include is in the host's copy of that
    abstraction (a newer AppArmor dropping one would be noticed here)."""
    from lsmtrace.policy import aa_abstractions

    root = Path("/etc/apparmor.d/abstractions")
    if not (root / "base").is_file():
        pytest.skip(
            "/etc/apparmor.d/abstractions/base missing (Debian package apparmor)"
        )
    for name, text in aa_abstractions.TEXT.items():
        host = {" ".join(ln.split()) for ln in (root / name).read_text().splitlines()}
        for rule in text.strip().splitlines():
            assert " ".join(rule.split()) in host, (name, rule)


def test_selinux_names_the_refpolicy_interface() -> None:
    text = gen("selinux", "cat_two_files", name="cat")
    assert "# refpolicy miscfiles_read_localization(lsmtrace_cat_t) grants this" in text
    # one example per rule: the locale directories' and the files'
    assert text.count("e.g. /usr/lib/locale/C.utf8/LC_") == 1
    assert text.count("e.g. /usr/lib/locale)") == 1


# -- 4. capabilities only on evidence -----------------------------------------------


def test_capabilities_only_on_enforced_checks() -> None:
    for target in ("apparmor", "selinux"):
        text = gen(target, "bash_true_twice", "wrapper_exec", "pyenv_shim", "venv_app")
        assert "sys_admin" not in "\n".join(rules_of(text)), target
    aa = gen("apparmor", "forking_daemon")
    assert "  capability net_bind_service," in aa
    assert rules_of(aa).count("capability net_bind_service,") == 1
    te = gen("selinux", "forking_daemon")
    assert "allow lsmtrace_minid_t self:capability { net_bind_service };" in te
    # and it says what it did not grant, and why
    rc, _out, err = run_cli(
        ["policy", "generate", "--target", "apparmor", rec("bash_true_twice")]
    )
    assert rc == 0
    assert (
        "note: not granted: CAP_SYS_ADMIN by /bin/bash: in clone: the kernel's "
        "memory-accounting probe or a namespace check"
    ) in err


# -- 5. temporary files as narrowly as each target can express -----------------------


def test_temp_files_narrow() -> None:
    aa = gen("apparmor", "wrapper_exec", "venv_app")
    assert '  owner "/tmp/tmp.*" rw,' in aa
    assert f'  owner "/tmp/{"[a-zA-Z0-9_]" * 8}" rw,' in aa  # Python's probe name
    assert '  owner "/tmp/tmp*" rw,' in aa
    assert '  owner "/srv/app/__pycache__/mod.cpython-311.pyc.*" rw,' in aa
    assert '"/tmp/' not in aa.replace('"/tmp/tmp', "").replace('"/tmp/[', "")
    tm = gen("tomoyo", "wrapper_exec", "venv_app")
    assert "file create /tmp/tmp.\\* 0-07777" in tm
    assert "file unlink /tmp/" + "\\?" * 8 in tm
    assert "file create /srv/app/__pycache__/mod.cpython-311.pyc.\\* 0-07777" in tm
    te = gen("selinux", "wrapper_exec", name="w")
    assert (
        "type_transition lsmtrace_app_wrapper_t tmp_t:file lsmtrace_app_wrapper_tmp_t;"
        in te
    )
    assert re.search(
        r"allow lsmtrace_app_wrapper_t lsmtrace_app_wrapper_tmp_t:file \{[^}]*"
        r"unlink",
        te,
    )
    assert not [
        ln for ln in te.splitlines() if ln.startswith("allow") and " tmp_t:file" in ln
    ]


def test_landlock_temp_files_in_a_private_tmpdir() -> None:
    rc, out, err = run_cli(
        [
            "policy",
            "generate",
            "--target",
            "landlock",
            rec("wrapper_exec"),
            rec("venv_app"),
        ]
    )
    assert rc == 0
    doc = landlock.parse(out)
    assert "/tmp" not in {r["path"] for r in doc["rules"]}
    assert doc["private_tmp"]["under"] == "/tmp"
    assert set(doc["private_tmp"]["access"]) == {
        "write_file",
        "read_file",
        "remove_file",
        "make_reg",
        "truncate",
    }
    assert "note: random temporary names directly under /tmp" in err
    assert any("points TMPDIR at it" in c for c in doc["comment"])
    # the .pyc temporary: its directory (it exists), not the file name
    rules = {r["path"]: r["access"] for r in doc["rules"]}
    assert "make_reg" in rules["/srv/app/__pycache__"]


# -- 6. never invent a path ----------------------------------------------------------


@pytest.mark.parametrize("target", TARGETS)
def test_no_ghost_paths(target: str) -> None:
    rc, out, err = run_cli(
        [
            "policy",
            "generate",
            "--target",
            target,
            rec("grep_r_legacy"),
            rec("grep_dirfd"),
        ]
    )
    assert rc == 0
    body = (
        "\n".join(rules_of(out))
        if target != "landlock"
        else json.dumps([r["path"] for r in json.loads(out)["rules"]])
    )
    # grep_r_legacy ran from /tmp, grep_dirfd from /home/u: no rule may name those
    for ghost in ("/tmp/f1.txt", "/tmp/sub", "/home/u/f3.txt", "/tmp/wl/f1.txt"):
        assert ghost not in body, (target, ghost)
    assert "warning: no rule for f1.txt (read) by /usr/bin/grep: a relative name" in err
    assert "warning: no rule for f3.txt (read) by /usr/bin/grep: a relative name" in err
    assert "f3.txt (read) by /usr/bin/grep" in out  # and the policy says so
    if target == "apparmor":  # dirfd-relative opens of the new format: exact rules
        assert '"/data/tree/sub/f2.txt" r,' in out


# -- 7. instructions that work as written --------------------------------------------


def comment_commands(text: str, prefix: str) -> list[str]:
    return [
        ln[len(prefix) :].strip() for ln in text.splitlines() if ln.startswith(prefix)
    ]


def test_apparmor_instructions_run(tmp_path: Path) -> None:
    tool("apparmor_parser")
    out = tmp_path / "app.aa"
    rc, _o, _e = run_cli(
        [
            "policy",
            "generate",
            "--target",
            "apparmor",
            rec("wrapper_exec"),
            "-o",
            str(out),
        ]
    )
    assert rc == 0
    text = out.read_text()
    (check_,) = comment_commands(text, "# Check:")
    assert check_ == f"apparmor_parser -Q -K {out}"
    r = subprocess.run(check_, shell=True, capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr
    # the load lines (no AppArmor in this kernel): their options parse (-Q: no load)
    for prefix in ("# Load in complain mode first:", "# enforce:"):
        (cmd,) = comment_commands(text, prefix)
        r = subprocess.run(
            cmd + " -Q -K", shell=True, capture_output=True, text=True, check=False
        )
        assert r.returncode == 0, (cmd, r.stderr)


def test_selinux_build_lines_run(tmp_path: Path) -> None:
    tool("checkmodule")
    tool("semodule_package")
    for output, module in (("m.te", "m"), (None, "lsmtrace_generated")):
        argv = ["policy", "generate", "--target", "selinux", rec("wrapper_exec")]
        if output:
            argv += ["-o", output]
        cwd = os.getcwd()
        os.chdir(tmp_path)
        try:
            rc, out, _e = run_cli(argv)
        finally:
            os.chdir(cwd)
        assert rc == 0
        text = (tmp_path / output).read_text() if output else out
        if not output:
            assert f"# Save this file as {module}.te" in text
            (tmp_path / f"{module}.te").write_text(text)
        assert f"\nmodule {module} 1.0;\n" in text
        cmds = comment_commands(text, "#   ")[:3]
        assert cmds[0].startswith(f"checkmodule -M -m -o {module}.mod ")
        assert cmds[2] == f"semodule -i {module}.pp"  # loading needs SELinux: not here
        for cmd in cmds[:2]:
            r = subprocess.run(
                cmd,
                shell=True,
                cwd=tmp_path,
                capture_output=True,
                text=True,
                check=False,
            )
            assert r.returncode == 0, (cmd, r.stdout + r.stderr)
        assert (tmp_path / f"{module}.pp").stat().st_size > 0


def test_tomoyo_load_lines_run(tmp_path: Path) -> None:
    """The three tomoyo-loadpolicy lines of the header, as written, with a
    tomoyo-loadpolicy that checks instead of loading (tomoyo-checkpolicy for
    the exception and domain parts; the profile lines' form for -p)."""
    checker = tool("tomoyo-checkpolicy")
    out = tmp_path / "w.tomoyo"
    rc, _o, _e = run_cli(
        [
            "policy",
            "generate",
            "--target",
            "tomoyo",
            rec("wrapper_exec"),
            rec("bash_true_twice"),
            "-o",
            str(out),
        ]
    )
    assert rc == 0
    fake = tmp_path / "bin" / "tomoyo-loadpolicy"
    fake.parent.mkdir()
    fake.write_text(f"""#!/bin/sh
cat > "{tmp_path}/loaded$1"
case "$1" in
  -e) exec {checker} e < "{tmp_path}/loaded$1" ;;
  -d) exec {checker} d < "{tmp_path}/loaded$1" ;;
  -p) ! grep -qv '^[0-9][0-9]*-[A-Z:a-z_]*=' "{tmp_path}/loaded$1" ;;
esac
""")
    fake.chmod(0o755)
    cmds = [
        c for c in comment_commands(out.read_text(), "#   ") if "tomoyo-loadpolicy" in c
    ]
    assert len(cmds) == 3
    env = dict(os.environ, PATH=f"{fake.parent}:{os.environ['PATH']}")
    for cmd in cmds:
        r = subprocess.run(
            cmd, shell=True, env=env, capture_output=True, text=True, check=False
        )
        assert r.returncode == 0, (cmd, r.stdout + r.stderr)
        if "-p" not in cmd:
            assert " 0 Error" in r.stdout + r.stderr, (cmd, r.stdout + r.stderr)
    parts = tomoyo.sections(out.read_text())
    for flag, part in (("-e", "exception"), ("-p", "profile"), ("-d", "domain")):
        assert (tmp_path / f"loaded{flag}").read_text().strip() == parts[part].strip()
    assert "aggregator /usr/bin/bash /bin/bash" in parts["exception"]


def test_landlock_run_line_runs(tmp_path: Path) -> None:
    from lsmtrace import sandbox

    if sandbox.abi_version() <= 0:
        pytest.skip("Landlock is not active on this kernel (/sys/kernel/security/lsm)")
    out = tmp_path / "w.landlock.json"
    rc, _o, _e = run_cli(
        [
            "policy",
            "generate",
            "--target",
            "landlock",
            rec("wrapper_exec"),
            "-o",
            str(out),
        ]
    )
    assert rc == 0
    (line,) = [
        c for c in json.loads(out.read_text())["comment"] if c.startswith("Run: ")
    ]
    argv = shlex.split(line[len("Run: ") :])
    assert argv[:4] == ["lsmtrace", "sandbox", "--policy", str(out)]
    assert argv[4:] == ["--", "/usr/local/bin/app-wrapper", "--serve"]
    lsmtrace = [sys.executable, "-m", "lsmtrace"]
    r = subprocess.run(
        [*lsmtrace, *argv[1:4], "--dry-run", *argv[4:]],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    assert "allow TMPDIR (a new directory under /tmp for each run)" in r.stdout


# -- 8. diff generalises like generate -------------------------------------------------


def test_diff_ignores_random_names(tmp_path: Path) -> None:
    text = Path(rec("venv_app")).read_text()
    other = (
        text.replace("tmpk2j3a9xq", "tmpq9w8e7r6")
        .replace("ndr1hauu", "zz7y6x5w")
        .replace("pyc.140234567890123", "pyc.139999999999999")
    )
    assert other != text
    second = tmp_path / "venv_app2.jsonl"
    second.write_text(other)
    rc, out, _e = run_cli(["policy", "diff", rec("venv_app"), str(second)])
    assert (rc, out) == (0, "0 added, 0 removed\n")
    # a real change still shows
    third = tmp_path / "venv_app3.jsonl"
    third.write_text(other.replace("/etc/localtime", "/etc/timezone"))
    rc, out, _e = run_cli(["policy", "diff", rec("venv_app"), str(third)])
    assert rc == 1
    assert "+ /srv/app/venv/bin/python: file /etc/timezone read" in out
    assert "- /srv/app/venv/bin/python: file /etc/localtime read" in out


# -- 9. every policy through its real validator, and back through check -------------


@pytest.mark.parametrize("name", WORKLOADS)
def test_validators_accept_every_workload(tmp_path: Path, name: str) -> None:
    aa = tmp_path / f"{name}.aa"
    aa.write_text(gen("apparmor", name))
    r = apparmor_parse(aa)
    assert r.returncode == 0, r.stderr
    te = tmp_path / "w.te"
    te.write_text(gen("selinux", name, filename=str(te)))
    r = subprocess.run(
        [tool("checkmodule"), "-M", "-m", "-o", str(tmp_path / "w.mod"), str(te)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    parts = tomoyo.sections(gen("tomoyo", name))
    for kind, part in (("e", "exception"), ("d", "domain")):
        r = subprocess.run(
            [tool("tomoyo-checkpolicy"), kind],
            input=parts[part],
            capture_output=True,
            text=True,
            check=False,
        )
        assert " 0 Error" in r.stdout + r.stderr, (kind, r.stdout + r.stderr)
    from lsmtrace import sandbox

    plan = sandbox.plan(landlock.parse(gen("landlock", name)), abi=6)
    assert plan.handled_fs


@pytest.mark.parametrize("name", WORKLOADS)
@pytest.mark.parametrize("target", TARGETS)
def test_own_policy_allows_its_recording(
    tmp_path: Path, target: str, name: str
) -> None:
    pol = tmp_path / f"p.{target}"
    pol.write_text(gen(target, name))
    res = check(str(pol), load_access_set([rec(name)]))
    assert res.denied == [], [str(a) for a in res.denied]
    assert res.unused == [], res.unused


def test_apparmor_check_reads_child_profiles_and_inherited(tmp_path: Path) -> None:
    """check evaluates each program in the profile it runs under: a Cx child
    in its child profile, an ix program in its caller's."""
    pol = tmp_path / "w.aa"
    text = gen("apparmor", "wrapper_exec")
    # mkdir's only rule is in its child profile; true runs under the wrapper's
    edited = text.replace('    "/var/lib/app/" w,\n', "")
    assert edited != text
    pol.write_text(edited)
    res = check(str(pol), load_access_set([rec("wrapper_exec")]))
    assert [str(a) for a in res.denied] == ["/usr/bin/mkdir: file /var/lib/app mkdir"]
    pol.write_text(text.replace("# lsmtrace inherits: /usr/bin/true\n", ""))
    res = check(str(pol), load_access_set([rec("wrapper_exec")]))
    assert res.denied  # true's accesses have no profile any more


def test_program_filter_leaves_execs_fail_closed() -> None:
    rc, out, _err = run_cli(
        [
            "policy",
            "generate",
            "--target",
            "apparmor",
            rec("wrapper_exec"),
            "--program",
            "/usr/local/bin/app-wrapper",
        ]
    )
    assert rc == 0
    assert '  "/usr/local/libexec/app-real" Px,' in out  # no profile here: denied
    assert "has no profile in this file (left out with --program)" in out


def test_landlock_kernel_enforces_the_real_recording(tmp_path: Path) -> None:
    """The Landlock kernel as the validator: the policy of the real
    `/bin/bash -c '/bin/true; /bin/true'` recording runs that command in
    `lsmtrace sandbox`, and denies reading a file it never read."""
    from lsmtrace import sandbox

    if sandbox.abi_version() <= 0:
        pytest.skip("Landlock is not active on this kernel (/sys/kernel/security/lsm)")
    pol = tmp_path / "bash.landlock.json"
    pol.write_text(gen("landlock", "bash_true_twice"))
    lsmtrace = [sys.executable, "-m", "lsmtrace", "sandbox", "--policy", str(pol), "--"]
    ok = subprocess.run(
        [*lsmtrace, "/bin/bash", "-c", "/bin/true; /bin/true"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert ok.returncode == 0, ok.stderr
    bad = subprocess.run(
        [*lsmtrace, "/bin/bash", "-c", "/bin/true; read x < /etc/hostname"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode != 0
    assert "Permission denied" in bad.stderr
