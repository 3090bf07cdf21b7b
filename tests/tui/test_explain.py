"""explain(): who denied and the rule that would allow it, per target."""

from __future__ import annotations

from typing import Any

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
    for needle in ("setfacl -m u:65534:r /etc/shadow", "CAP_DAC_READ_SEARCH",
                   'AppArmor    "/etc/shadow" r,', "SELinux     allow <domain_t> <file_t>:file "
                   "{ open read };", "LANDLOCK_ACCESS_FS_READ_FILE"):  # fmt: skip
        assert needle in t


def test_tomoyo_file_rule() -> None:
    """A TOMOYO denial names the ACL in TOMOYO's names and escaping."""
    ev = {"verdict": "deny", "hook": "file_open", "kind": "hook", "errno": "EPERM",
          "lsm": "tomoyo", "rung": "fexit", "comm": "cat", "tgid": 1, "uid": 0,
          "object": {"path": "/srv/a b", "flags": 0o1}}  # fmt: skip
    t = text(ev)
    assert "Who: TOMOYO" in t
    assert "TOMOYO      file write /srv/a\\040b   (in the domain of cat)" in t
    ev["object"] = {"path": "/proc/42/status", "flags": 0o100}  # O_CREAT|O_RDONLY
    assert "file read proc:/42/status\nTOMOYO      file create proc:/42/status 0-07777" in \
        "\n".join(ln.strip() for ln in explain(ev))  # fmt: skip


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
    ev = {"verdict": "deny", "hook": "sys_openat", "kind": "syscall", "errno": "EACCES",
          "lsm": None, "rung": "tracepoint", "comm": "x\x1b[2J", "tgid": 1, "uid": 1,
          "euid": 1, "object": {"path": "/tmp/\x1b]0;pwned\x07"}}  # fmt: skip
    t = text(ev)
    assert "\x1b" not in t
    assert "\x07" not in t
    assert "\\x1b" in t


def test_apparmor_rule_escapes_hostile_names_like_the_generator() -> None:
    """A glob or quote in a file name must not widen the suggested rule."""
    from lsmtrace.policy.apparmor import escape_literal

    ev = {"verdict": "deny", "hook": "file_open", "errno": "EACCES", "lsm": "apparmor",
          "kind": "hook", "comm": "x", "uid": 1, "euid": 1,
          "object": {"path": '/srv/a*b"c {x}'}}  # fmt: skip
    lines = "\n".join(explain(ev))
    assert f'"{escape_literal(chr(47) + "srv/a*b" + chr(34) + "c {x}")}" r,' in lines
    assert '"/srv/a\\*b\\"c\\040\\{x\\}" r,' in lines
