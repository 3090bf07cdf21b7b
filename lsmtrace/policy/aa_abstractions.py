"""The AppArmor abstractions the generator folds into `#include` lines. Pure.

The rules below are copied verbatim from the abstractions Debian 12 ships
(apparmor 3.0.8, /etc/apparmor.d/abstractions/); a test compares them with the
host's files, so a rule that a newer release dropped is noticed rather than
folded away. Only what lsmtrace can evaluate is kept: file rules and
`network` rules; the other rules of base that matter to a recording are
flags (`SELF_RULES`). Under-folding is harmless (a rule is listed that the
include also grants); over-folding would deny, so nothing is guessed.

  base         always included (every profile lsmtrace writes includes it)
  crypto       included by base
  nameservice  included when the program reads /etc/nsswitch.conf (it looked
               up a user, group or host) and used inet sockets: nameservice
               also grants inet/inet6 stream and dgram and netlink raw sockets,
               which a program that only read /etc/passwd did not need
  python       included when it grants a file the program used that base does
               not (read-only: the interpreter's standard library)
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

BASE = r"""
/dev/log                       w,
/dev/random                    r,
/dev/urandom                   r,
@{run}/uuidd/request           r,
@{etc_ro}/locale/**          r,
@{etc_ro}/locale.alias       r,
@{etc_ro}/localtime          r,
/etc/writable/localtime        r,
/usr/share/locale-bundle/**    r,
/usr/share/locale-langpack/**  r,
/usr/share/locale/**           r,
/usr/share/**/locale/**        r,
/usr/share/zoneinfo/           r,
/usr/share/zoneinfo/**         r,
/usr/share/X11/locale/**       r,
@{run}/systemd/journal/dev-log w,
@{run}/systemd/journal/socket  w,
@{run}/systemd/journal/stdout  rw,
/usr/lib{,32,64}/locale/**             mr,
/usr/lib{,32,64}/gconv/*.so            mr,
/usr/lib{,32,64}/gconv/gconv-modules*  mr,
/usr/lib/@{multiarch}/gconv/*.so           mr,
/usr/lib/@{multiarch}/gconv/gconv-modules* mr,
@{etc_ro}/bindresvport.blacklist    r,
@{etc_ro}/ld.so.cache               mr,
@{etc_ro}/ld.so.conf                r,
@{etc_ro}/ld.so.conf.d/{,*.conf}    r,
@{etc_ro}/ld.so.preload             r,
/{usr/,}lib{,32,64}/ld{,32,64}-*.so   mr,
/{usr/,}lib/@{multiarch}/ld{,32,64}-*.so    mr,
/{usr/,}lib{,32,64}/**                r,
/{usr/,}lib{,32,64}/**.so*       mr,
/{usr/,}lib/@{multiarch}/**            r,
/{usr/,}lib/@{multiarch}/**.so*   mr,
/{usr/,}lib{,32,64}/.lib*.so*.hmac      r,
/{usr/,}lib/@{multiarch}/.lib*.so*.hmac r,
/dev/null                      rw,
/dev/zero                      rw,
/dev/full                      rw,
@{PROC}/sys/kernel/version     r,
@{PROC}/sys/kernel/ngroups_max r,
@{PROC}/meminfo                r,
@{PROC}/stat                   r,
@{PROC}/cpuinfo                r,
@{sys}/devices/system/cpu/       r,
@{sys}/devices/system/cpu/online r,
@{sys}/devices/system/cpu/possible r,
@{PROC}/@{pid}/{maps,auxv,status} r,
@{PROC}/sys/crypto/*           r,
/usr/share/common-licenses/**  r,
@{PROC}/filesystems            r,
@{PROC}/sys/vm/overcommit_memory r,
@{PROC}/sys/kernel/cap_last_cap r,
"""

CRYPTO = r"""
@{etc_ro}/gcrypt/hwf.deny r,
@{etc_ro}/gcrypt/random.conf r,
@{PROC}/sys/crypto/fips_enabled r,
@{PROC}/sys/crypto/* r,
/etc/crypto-policies/*/*.txt r,
/usr/share/crypto-policies/*/*.txt r,
"""

NAMESERVICE = r"""
@{etc_ro}/group          r,
@{etc_ro}/host.conf      r,
@{etc_ro}/hosts          r,
@{etc_ro}/nsswitch.conf  r,
@{etc_ro}/gai.conf       r,
@{etc_ro}/passwd         r,
@{etc_ro}/protocols      r,
@{etc_ro}/netconfig r,
@{etc_ro}/resolv.conf r,
@{run}/systemd/resolve/stub-resolv.conf r,
@{etc_ro}/services       r,
/{usr/,}lib{,32,64}/libnss_*.so*      mr,
/{usr/,}lib/@{multiarch}/libnss_*.so*      mr,
@{etc_ro}/default/nss               r,
@{PROC}/@{pid}/net/psched r,
@{PROC}/@{pid}/net/route r,
network inet  stream,
network inet6 stream,
network inet  dgram,
network inet6 dgram,
network netlink raw,
"""

PYTHON = r"""
/usr/{local/,}lib{,32,64}/python{2.[4-7],3,3.[0-9],3.1[0-9]}/**.{pyc,so,so.*[0-9]} mr,
/usr/{local/,}lib{,32,64}/python{2.[4-7],3,3.[0-9],3.1[0-9]}/**.{egg,py,pth}       r,
/usr/{local/,}lib{,32,64}/python{2.[4-7],3,3.[0-9],3.1[0-9]}/{site,dist}-packages/ r,
/usr/{local/,}lib{,32,64}/python{2.[4-7],3,3.[0-9],3.1[0-9]}/{site,dist}-packages/**/ r,
/usr/{local/,}lib{,32,64}/python3.{1,}[0-9]/lib-dynload/*.so            mr,
/etc/python{2.[4-7],3.[0-9],3.1[0-9]}/** r,
/usr/lib/python3/dist-packages/**.so          mr,
"""

TEXT = {"base": BASE, "crypto": CRYPTO, "nameservice": NAMESERVICE, "python": PYTHON}
# an abstraction's own includes (that lsmtrace evaluates)
NESTED = {"base": ("crypto",)}
# what base grants beyond files: signals to and ptrace read of the profile
# itself, and kill(pid, 0) ("exists") to anyone
SELF_RULES = {"base": frozenset({"signal self", "ptrace read self", "signal exists"})}

# tunables/global's variables (Debian 12), as regex fragments
VARIABLES = {
    "PROC": ["/proc/"],
    "pid": ["[0-9]+"],
    "pids": ["[0-9]+"],
    "tid": ["[0-9]+"],
    "sys": ["/sys/"],
    "run": ["/run/", "/var/run/"],
    "etc_ro": ["/etc/", "/usr/etc/"],
    "HOME": ["/root/", "/home/[^/]+/"],
    "HOMEDIRS": ["/home/"],
    "multiarch": ["[^/]*-linux-gnu[^/]*"],
}


@dataclass
class Abstraction:
    name: str
    files: list[tuple[re.Pattern[str], str, str]] = field(default_factory=list)
    network: set[tuple[str, str]] = field(default_factory=set)  # (family, type)
    self_rules: frozenset[str] = frozenset()
    # every file pattern in one alternation: a path none matches is answered
    # with one match instead of one per rule (most paths, in a live check)
    any_file: re.Pattern[str] | None = None


class UnknownVariable(ValueError):
    """A pattern names an @{VARIABLE} this table does not know."""


def glob_to_regex(pat: str) -> str:
    """AppArmor path pattern (quotes removed) -> Python regex source."""
    out: list[str] = []
    i = 0
    depth = 0
    while i < len(pat):
        c = pat[i]
        if c == "\\" and i + 1 < len(pat):
            nxt = pat[i + 1]
            if nxt in "0123" and re.match(r"[0-7]{3}", pat[i + 1 : i + 4]):
                out.append(re.escape(chr(int(pat[i + 1 : i + 4], 8))))
                i += 4
                continue
            out.append(re.escape(nxt))
            i += 2
            continue
        if c == "@" and pat.startswith("@{", i):
            end = pat.index("}", i)
            var = pat[i + 2 : end]
            vals = VARIABLES.get(var)
            if vals is None:
                raise UnknownVariable(f"unknown variable @{{{var}}}")
            out.append("(?:" + "|".join(vals) + ")")
            i = end + 1
            # a value ending in / followed by /: AppArmor collapses the slashes
            if i < len(pat) and pat[i] == "/" and all(v.endswith("/") for v in vals):
                i += 1
            continue
        if pat.startswith("**", i):
            out.append(".*")
            i += 2
        elif c == "*":
            out.append("[^/]*")
            i += 1
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "{":
            out.append("(?:")
            depth += 1
            i += 1
        elif c == "}" and depth:
            out.append(")")
            depth -= 1
            i += 1
        elif c == "," and depth:
            out.append("|")
            i += 1
        elif c == "[":
            end = pat.index("]", i + 1)
            body = pat[i + 1 : end]
            out.append("[" + ("^" + body[1:] if body.startswith("^") else body) + "]")
            i = end + 1
        else:
            out.append(re.escape(c))
            i += 1
    # a run of "/" matches one or more (AppArmor collapses slashes)
    return "".join(out).replace("//", "/")


_CACHE: dict[str, Abstraction] = {}


def load(name: str) -> Abstraction | None:
    """The abstraction `name` with its nested includes; None if unknown."""
    if name in _CACHE:
        return _CACHE[name]
    if name not in TEXT:
        return None
    ab = Abstraction(name, self_rules=SELF_RULES.get(name, frozenset()))
    for line in TEXT[name].strip().splitlines():
        line = line.strip().rstrip(",")
        words = line.split()
        if words[0] == "network":
            ab.network.add((words[1], words[2] if len(words) > 2 else ""))
            continue
        pat, perms = words[0], words[1]
        ab.files.append((re.compile(glob_to_regex(pat) + r"\Z"), perms, line))
    for sub in NESTED.get(name, ()):
        nested = load(sub)
        if nested is not None:
            ab.files += nested.files
            ab.network |= nested.network
            ab.self_rules |= nested.self_rules
    if ab.files:
        ab.any_file = re.compile(
            "|".join(f"(?:{rx.pattern})" for rx, _p, _l in ab.files)
        )
    _CACHE[name] = ab
    return ab


def grants_file(ab: Abstraction, path: str, letters: set[str]) -> bool:
    """Whether the abstraction's rules together grant `letters` on `path`
    (path as byte_str, a directory with its trailing /)."""
    if letters and (ab.any_file is None or not ab.any_file.match(path)):
        return False
    have: set[str] = set()
    for rx, perms, _line in ab.files:
        if rx.match(path):
            have |= set(perms.replace("i", "").replace("k", "").replace("l", ""))
            if "w" in have:
                have.add("a")
            if letters <= have:
                return True
    return letters <= have
