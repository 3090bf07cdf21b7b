"""explain(): who denied and the rule that would allow it, per target."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lsmtrace import audit
from lsmtrace.tui.explain import explain, file_access


def by(events: list[dict[str, Any]], **kw: Any) -> dict[str, Any]:
    return next(e for e in events if all(e.get(k) == v for k, v in kw.items()))


def text(ev: dict[str, Any]) -> str:
    return "\n".join(explain(ev))


def test_apparmor_file_rule(lsm_events: list[dict[str, Any]]) -> None:
    t = text(by(lsm_events, lsm="apparmor", hook="file_open"))
    assert "Who: AppArmor." in t
    assert '"/srv/www/secret.conf" r,' in t
    assert "CAP_DAC" not in t  # a capability never bypasses a MAC policy


def test_apparmor_exec_rule(lsm_events: list[dict[str, Any]]) -> None:
    assert '"/usr/bin/curl" ix,' in text(by(lsm_events, hook="bprm_check_security"))


def test_selinux_avc_gives_the_exact_allow_rule(
    lsm_events: list[dict[str, Any]],
) -> None:
    t = text(by(lsm_events, hook="selinux_audited"))
    assert "allow httpd_t user_home_t:file { read };" in t
    assert "audit2allow" in t


def test_landlock_access_right(lsm_events: list[dict[str, Any]]) -> None:
    t = text(by(lsm_events, lsm="landlock"))
    assert "LANDLOCK_ACCESS_FS_READ_FILE" in t
    assert "/home/alice/.ssh/id_ed25519" in t


def test_yama_ptrace(lsm_events: list[dict[str, Any]]) -> None:
    t = text(by(lsm_events, lsm="yama"))
    assert "ptrace_scope" in t
    assert "CAP_SYS_PTRACE" in t


def test_dac_write_create(lsm_events: list[dict[str, Any]]) -> None:
    ev = by(lsm_events, lsm="dac")
    assert file_access(ev) == ["write", "create", "truncate"]
    t = text(ev)
    assert "setfacl -m u:1000:w /var/lib/db/data" in t
    assert "setfacl -m u:1000:wx /var/lib/db " in t
    assert "CAP_DAC_OVERRIDE" in t


def test_capability_grant(lsm_events: list[dict[str, Any]]) -> None:
    t = text(by(lsm_events, hook="capable"))
    assert "setcap cap_net_bind_service+ep" in t
    t = text(by(lsm_events, hook="socket_bind"))
    assert "CAP_NET_BIND_SERVICE" in t


def test_failure_is_not_a_decision(lsm_events: list[dict[str, Any]]) -> None:
    lines = explain(by(lsm_events, verdict="error"))
    assert lines[0].startswith("FAILED")
    assert "not a security decision" in lines[1]


def test_tracepoint_rung_lists_every_target(
    denial_events: list[dict[str, Any]],
) -> None:
    """Real event: uid 65534 cat /etc/shadow on the tracepoint rung (lsm null)."""
    ev = by(denial_events, hook="sys_openat", verdict="deny", comm="cat")
    t = text(ev)
    assert "cannot tell on the tracepoint rung" in t
    for needle in (
        "setfacl -m u:65534:r /etc/shadow",
        "CAP_DAC_READ_SEARCH",
        'AppArmor    "/etc/shadow" r,',
        "SELinux     allow <domain_t> <file_t>:file { open read };",
        "LANDLOCK_ACCESS_FS_READ_FILE",
    ):
        assert needle in t


def test_tomoyo_file_rule() -> None:
    """A TOMOYO denial names the ACL in TOMOYO's names and escaping."""
    ev = {
        "verdict": "deny",
        "hook": "file_open",
        "kind": "hook",
        "errno": "EPERM",
        "lsm": "tomoyo",
        "rung": "fexit",
        "comm": "cat",
        "tgid": 1,
        "uid": 0,
        "object": {"path": "/srv/a b", "flags": 0o1},
    }
    t = text(ev)
    assert "Who: TOMOYO" in t
    assert "TOMOYO      file write /srv/a\\040b   (in the domain of cat)" in t
    ev["object"] = {"path": "/proc/42/status", "flags": 0o100}  # O_CREAT|O_RDONLY
    assert (
        "file read proc:/42/status\nTOMOYO      file create proc:/42/status 0-07777"
        in "\n".join(ln.strip() for ln in explain(ev))
    )


def test_real_nice_denial_names_cap_sys_nice(
    denial_events: list[dict[str, Any]],
) -> None:
    t = text(by(denial_events, hook="sys_setpriority", verdict="deny"))
    assert "Who: the capability module" in t
    assert "CAP_SYS_NICE" in t


def test_dac_capability_probe_is_explained(denial_events: list[dict[str, Any]]) -> None:
    ev = next(
        e for e in denial_events if e["object"].get("cap_name") == "CAP_DAC_OVERRIDE"
    )
    assert "the DAC decision itself" in text(ev)


def test_every_fixture_event_explains_without_error(
    denial_events: list[dict[str, Any]], lsm_events: list[dict[str, Any]]
) -> None:
    for ev in denial_events + lsm_events:
        lines = explain(ev)
        assert lines
        assert all(isinstance(x, str) and "\n" not in x for x in lines)


def test_hostile_path_is_escaped() -> None:
    ev = {
        "verdict": "deny",
        "hook": "sys_openat",
        "kind": "syscall",
        "errno": "EACCES",
        "lsm": None,
        "rung": "tracepoint",
        "comm": "x\x1b[2J",
        "tgid": 1,
        "uid": 1,
        "euid": 1,
        "object": {"path": "/tmp/\x1b]0;pwned\x07"},
    }
    t = text(ev)
    assert "\x1b" not in t
    assert "\x07" not in t
    assert "\\x1b" in t


def test_apparmor_rule_escapes_hostile_names_like_the_generator() -> None:
    """A glob or quote in a file name must not widen the suggested rule."""
    from lsmtrace.policy.apparmor import escape_literal

    ev = {
        "verdict": "deny",
        "hook": "file_open",
        "errno": "EACCES",
        "lsm": "apparmor",
        "kind": "hook",
        "comm": "x",
        "uid": 1,
        "euid": 1,
        "object": {"path": '/srv/a*b"c {x}'},
    }
    lines = "\n".join(explain(ev))
    assert f'"{escape_literal(chr(47) + "srv/a*b" + chr(34) + "c {x}")}" r,' in lines
    assert '"/srv/a\\*b\\"c\\040\\{x\\}" r,' in lines


# -- the LSM's own audit record (issue 15 item 4) -------------------------------------

AUDIT_DIR = Path(__file__).resolve().parents[1] / "data" / "audit"


def audited(records: str) -> dict[str, Any]:
    """The `audit` object the join attaches, from records in the kernel's
    format (`TYPE audit(...): fields`, one a line)."""
    recs = [r for r in map(audit.parse_line, records.strip().splitlines()) if r]
    g = audit.Grouper(clock=lambda: 0.0)
    objs = [a for a in map(audit.summarize, g.add_records(recs) + g.drain()) if a]
    return objs[0]


def denial(a: dict[str, Any], lsm: str | None = None, **kw: Any) -> dict[str, Any]:
    """A tracepoint-rung denial the join attached `a` to (lsm from the record)."""
    ev: dict[str, Any] = {
        "kind": "syscall",
        "hook": "sys_openat",
        "verdict": "deny",
        "errno": "EACCES",
        "rung": "tracepoint",
        "lsm": lsm or a["lsm"],
        "lsm_source": "audit",
        "comm": "app",
        "tgid": 42,
        "uid": 1000,
        "euid": 1000,
        "syscall": "openat",
        "object": {"path": "/etc/shadow", "flags": 0},
        "audit": a,
    }
    ev.update(kw)
    return ev


def test_apparmor_line_for_that_profile() -> None:
    a = audited(
        '1400 audit(1795964100.100:500): apparmor="DENIED" operation="open" '
        'class="file" profile="/usr/bin/foo" name="/etc/shadow" pid=42 comm="foo" '
        'requested_mask="rw" denied_mask="w" fsuid=1000 ouid=0'
    )
    t = text(denial(a))
    assert "Audit record: apparmor profile=/usr/bin/foo w (serial 500)" in t
    assert "Who: AppArmor (its audit record says so)." in t
    rule = t.split("Rule that would allow it:\n", 1)[1]
    assert rule.splitlines()[0] == (
        '  AppArmor    "/etc/shadow" w,   (in profile /usr/bin/foo)'
    )
    assert "<placeholder" not in t


def test_apparmor_capability_and_hostile_name() -> None:
    cap = audited(
        '1400 audit(1795964100.200:501): apparmor="DENIED" operation="capable" '
        'class="cap" profile=2F6F70742F6D79206170702F62696E pid=4243 '
        'comm=6D7920617070 capability=12  capname="net_admin"'
    )
    assert "AppArmor    capability net_admin,   (in profile /opt/my app/bin)" in text(
        denial(
            cap,
            kind="capable",
            hook="capable",
            object={"cap": 12, "cap_name": "CAP_NET_ADMIN"},
        )
    )
    # a name with a glob character and an escape sequence, hex-encoded by audit
    name = b"/tmp/a*b\x1b[31m".hex().upper()
    f = audited(
        '1400 audit(1795964100.300:502): apparmor="DENIED" operation="open" '
        f'class="file" profile="p" name={name} pid=42 comm="x" '
        'requested_mask="r" denied_mask="r" fsuid=0 ouid=0'
    )
    t = text(denial(f))
    assert '"/tmp/a\\*b\\033\\[31m" r,' in t
    assert "\x1b" not in t


def test_selinux_allow_rule_as_audit2allow_writes_it() -> None:
    a = audited(
        "1400 audit(1795964100.400:503): avc:  denied  { read open } for  "
        'pid=1467 comm="httpd" name="index.html" dev="dm-0" ino=1051592 '
        "scontext=system_u:system_r:httpd_t:s0 "
        "tcontext=unconfined_u:object_r:user_home_t:s0 tclass=file permissive=0"
    )
    t = text(denial(a))
    assert "allow httpd_t user_home_t:file { read open };" in t
    own = audited(
        "1400 audit(1795964100.600:505): avc:  denied  { net_admin } for  "
        'pid=77 comm="ip" capability=12  scontext=system_u:system_r:ifconfig_t:s0 '
        "tcontext=system_u:system_r:ifconfig_t:s0 tclass=capability permissive=0"
    )
    assert "allow ifconfig_t self:capability { net_admin };" in text(denial(own))


def test_landlock_right_the_domain_lacks() -> None:
    """A captured record (tests/data/audit): the blocker, the path, the domain
    and the process that created it."""
    records = (AUDIT_DIR / "landlock_context.records").read_text()
    first = "\n".join(ln for ln in records.splitlines() if ":3): " in ln)
    a = audited(first)
    t = text(denial(a, object={"path": a["path"], "flags": 0}))
    assert f"LANDLOCK_ACCESS_FS_READ_FILE in a path_beneath rule on {a['path']}" in t
    assert f"domain {a['domain']}, created by /usr/bin/python3.11" in t
    assert "setfacl" not in t  # the decider is known: no DAC candidates


def test_seccomp_says_no_lsm_rule() -> None:
    a = audited((AUDIT_DIR / "seccomp_context.records").read_text())
    assert a["lsm"] == "seccomp"
    t = text(denial(a, errno="EPERM"))
    assert "Who: a seccomp filter, not an LSM (its audit record says so)." in t
    assert "a seccomp filter refused openat (action errno): no LSM rule allows it" in t


def test_disagreement_shows_both() -> None:
    a = audited(
        '1400 audit(1795964100.100:500): apparmor="DENIED" operation="open" '
        'class="file" profile="/usr/bin/foo" name="/etc/shadow" pid=42 comm="foo" '
        'requested_mask="r" denied_mask="r" fsuid=1000 ouid=0'
    )
    a["disagrees"] = True
    t = text(denial(a, lsm="landlock", lsm_source="hook"))
    assert "The record names apparmor, the rung landlock" in t
    assert "LANDLOCK_ACCESS_FS_READ_FILE" in t
    assert '"/etc/shadow" r,   (in profile /usr/bin/foo)' in t


def test_would_deny_first() -> None:
    ev = {
        "kind": "syscall",
        "hook": "sys_openat",
        "verdict": "allow",
        "comm": "cat",
        "tgid": 5,
        "object": {"path": "/tmp/x/c", "flags": 0},
        "would_deny": {
            "policy": "p.json",
            "target": "landlock",
            "context": "ruleset x",
            "program": "/usr/bin/cat",
            "access": ["file /tmp/x/c read"],
            "missing": ['{"path": "/tmp/x/c", "access": ["read_file"]}'],
        },
    }
    lines = explain(ev)
    assert lines[1:5] == [
        "Would deny: policy p.json (landlock), ruleset x",
        "  needs file /tmp/x/c read",
        "Rule the policy lacks:",
        '  {"path": "/tmp/x/c", "access": ["read_file"]}',
    ]
