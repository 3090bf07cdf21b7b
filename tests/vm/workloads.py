"""The realistic workload suite of the VM stage (issue 14): four programs as
users run them, each with the run that must keep working under a generated
policy and a deviation that the policy must deny.

  venv     a Python app installed in a virtualenv, started by its console
           script (`#!/srv/lsmt-venv/venv/bin/python`, a symlink to the system
           interpreter): imports its package (writes the .pyc files on the first
           run, reads them afterwards), reads its config, writes a temporary
           file (tempfile: honours TMPDIR) and its state
  wrapper  a `#!/bin/sh` wrapper that makes its state directory, uses mktemp
           (honours TMPDIR), cat and rm in children, then execs the real binary
  daemon   a C daemon that binds 127.0.0.1:80 (CAP_NET_BIND_SERVICE, enforced),
           forks two workers that each accept one connection, serve a file and
           append to a log; the parent waits for them
  grep     `grep -r` over a tree: fts opens every file and directory with
           openat(dirfd, "name")

The deviation of each reads a file the recorded run never touched. Every
process of a workload is started inside one cgroup (`Suite.cgroup`), so one
`lsmtrace record --cgroup` serves all four.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

PY = f"python{sys.version_info.major}.{sys.version_info.minor}"
ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": "/root",
    "LANG": "C.UTF-8",
}

VENV_ROOT = Path("/srv/lsmt-venv")
VENV = VENV_ROOT / "venv"
VENV_APP = VENV / "bin" / "lsmt-venv-app"
VENV_PKG = VENV / "lib" / PY / "site-packages" / "lsmt_app"

WRAP_ROOT = Path("/srv/lsmt-wrap")
WRAPPER = Path("/usr/local/bin/lsmt-wrap")
WRAPPED = Path("/usr/local/libexec/lsmt-wrapped")
WRAP_STATE = Path("/var/lib/lsmt-wrap")

DAEMON_ROOT = Path("/srv/lsmt-minid")
DAEMON = Path("/usr/local/sbin/lsmt-minid")
DAEMON_LOG = Path("/var/log/lsmt-minid.log")
DAEMON_PORT = 80

GREP_ROOT = Path("/srv/lsmt-grep")

APP_MAIN = '''\
"""lsmt_app: reads its config, keeps state, uses a temporary file."""
import argparse
import tempfile

from lsmt_app import render


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--read", help="also print this file")
    args = p.parse_args()
    with open("/srv/lsmt-venv/etc/app.conf") as f:
        conf = f.read()
    with tempfile.NamedTemporaryFile("w+", prefix="lsmt-app-") as t:
        t.write(conf)
        t.flush()
        t.seek(0)
        text = render.render(t.read())
    with open("/srv/lsmt-venv/var/state.txt", "w") as f:
        f.write(text)
    print(text, end="")
    if args.read:
        with open(args.read) as f:
            print(f.read(), end="")
    return 0
'''

APP_RENDER = """\
def render(conf: str) -> str:
    return "".join(f"app: {line}\\n" for line in conf.splitlines())
"""

WRAPPER_SH = f"""\
#!/bin/sh
# start lsmt-wrapped with its state directory and a scratch file
set -e
mkdir -p {WRAP_STATE}
t=$(mktemp)
echo "run $$" > "$t"
cat "$t" > {WRAP_STATE}/last-run
rm -f "$t"
exec {WRAPPED} {WRAP_ROOT}/data.txt "$@"
"""

DAEMON_C = r"""
/* lsmt-minid PORT FILE LOG: bind 127.0.0.1:PORT, fork two workers that each
 * accept one connection, send FILE and append a line to LOG; wait for them. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static int serve(int ls, const char *file, const char *log)
{
	char buf[4096];
	int c = accept(ls, NULL, NULL);
	if (c < 0)
		return 2;
	int fd = open(file, O_RDONLY);
	if (fd < 0) {
		perror(file);
		write(c, "error\n", 6);
		close(c);
		return 3;
	}
	ssize_t n;
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		write(c, buf, n);
	close(fd);
	close(c);
	FILE *l = fopen(log, "a");
	if (!l)
		return 4;
	fprintf(l, "worker %d served %s\n", (int)getpid(), file);
	fclose(l);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc != 4)
		return 64;
	int ls = socket(AF_INET, SOCK_STREAM, 0);
	int one = 1;
	setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[1]))};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(ls, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(ls, 8) < 0) {
		perror("bind");
		return 1;
	}
	printf("ready\n");
	fflush(stdout);
	for (int i = 0; i < 2; i++) {
		pid_t p = fork();
		if (p == 0)
			_exit(serve(ls, argv[2], argv[3]));
	}
	int status, worst = 0;
	while (wait(&status) > 0)
		if (!WIFEXITED(status) || WEXITSTATUS(status))
			worst = WIFEXITED(status) ? WEXITSTATUS(status) : 128;
	return worst;
}
"""


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)


def setup() -> None:
    """Install the four workloads (idempotent: a previous run is removed)."""
    teardown()
    # venv: its console script runs the app through the venv's symlinked python
    subprocess.run(
        ["/usr/bin/python3", "-m", "venv", "--without-pip", str(VENV)],
        check=True,
        timeout=300,
        env=ENV,
    )
    _write(VENV_PKG / "__init__.py", "")
    _write(VENV_PKG / "main.py", APP_MAIN)
    _write(VENV_PKG / "render.py", APP_RENDER)
    _write(
        VENV_APP,
        f"#!{VENV}/bin/python\nimport sys\nfrom lsmt_app.main import main\n"
        "sys.exit(main())\n",
        0o755,
    )
    _write(VENV_ROOT / "etc" / "app.conf", "colour = blue\nsize = 3\n")
    (VENV_ROOT / "var").mkdir()
    _write(VENV_ROOT / "secret.txt", "venv secret\n")
    # wrapper: a shell script that execs a copy of cat
    _write(WRAPPER, WRAPPER_SH, 0o755)
    WRAPPED.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy("/usr/bin/cat", WRAPPED)
    _write(WRAP_ROOT / "data.txt", "wrapped data\n")
    _write(WRAP_ROOT / "secret.txt", "wrap secret\n")
    # daemon
    src = DAEMON_ROOT / "minid.c"
    _write(src, DAEMON_C)
    subprocess.run(["gcc", "-O2", "-o", str(DAEMON), str(src)], check=True, timeout=300)
    _write(DAEMON_ROOT / "index.html", "<p>minid</p>\n")
    _write(DAEMON_ROOT / "secret.html", "<p>secret</p>\n")
    # grep: a tree, and another one
    for top in ("tree", "other"):
        _write(GREP_ROOT / top / "a.txt", "needle a\nhay\n")
        _write(GREP_ROOT / top / "sub" / "b.txt", "hay\nneedle b\n")
        _write(GREP_ROOT / top / "sub" / "deeper" / "c.txt", "needle c\n")


def teardown() -> None:
    for d in (VENV_ROOT, WRAP_ROOT, WRAP_STATE, DAEMON_ROOT, GREP_ROOT):
        shutil.rmtree(d, ignore_errors=True)
    for f in (WRAPPER, WRAPPED, DAEMON, DAEMON_LOG):
        f.unlink(missing_ok=True)


@dataclass
class Result:
    rc: int
    out: str
    err: str
    pids: list[int]  # the workload's first process (and the daemon's)


Prefix = list[str]  # what to run the workload through (e.g. lsmtrace sandbox)


@dataclass
class Workload:
    name: str
    # the programs the workload runs (for `policy generate --program`)
    programs: list[str]
    run: Callable[[Suite, Prefix, bool], Result]
    expect: str  # in the good run's output
    denied_message: str = "Permission denied"  # in the deviation's stderr
    extra: dict[str, str] = field(default_factory=dict)


class Suite:
    """Runs workloads inside one cgroup (so one cgroup-scoped tracer sees all)."""

    def __init__(self, cgroup: Path) -> None:
        self.cgroup = cgroup

    def _join(self) -> None:
        (self.cgroup / "cgroup.procs").write_text("0")

    def popen(self, argv: list[str], **kw: object) -> subprocess.Popen[str]:
        return subprocess.Popen(
            argv,
            env=ENV,
            cwd="/",
            text=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            preexec_fn=self._join,
            **kw,
        )  # type: ignore[call-overload]

    def run(self, argv: list[str], timeout: float = 120) -> Result:
        p = self.popen(argv)
        out, err = p.communicate(timeout=timeout)
        return Result(p.returncode, out, err, [p.pid])


def _venv(s: Suite, prefix: Prefix, deviate: bool) -> Result:
    extra = ["--read", str(VENV_ROOT / "secret.txt")] if deviate else []
    return s.run([*prefix, str(VENV_APP), *extra])


def _wrapper(s: Suite, prefix: Prefix, deviate: bool) -> Result:
    extra = [str(WRAP_ROOT / "secret.txt")] if deviate else []
    return s.run([*prefix, str(WRAPPER), *extra])


def fetch(port: int, timeout: float = 60) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as c:
        chunks = []
        while data := c.recv(4096):
            chunks.append(data)
    return b"".join(chunks).decode(errors="replace")


def _daemon(s: Suite, prefix: Prefix, deviate: bool) -> Result:
    page = DAEMON_ROOT / ("secret.html" if deviate else "index.html")
    p = s.popen([*prefix, str(DAEMON), str(DAEMON_PORT), str(page), str(DAEMON_LOG)])
    assert p.stdout is not None
    try:
        ready = p.stdout.readline()
        if ready != "ready\n":
            out, err = p.communicate(timeout=60)
            return Result(p.returncode, ready + out, err, [p.pid])
        pages = [fetch(DAEMON_PORT), fetch(DAEMON_PORT)]
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    return Result(p.returncode, "".join(pages) + out, err, [p.pid])


def _grep(s: Suite, prefix: Prefix, deviate: bool) -> Result:
    top = GREP_ROOT / ("other" if deviate else "tree")
    return s.run([*prefix, "/usr/bin/grep", "-r", "needle", str(top)])


WRAPPER_PROGRAMS = [
    str(WRAPPER),
    str(WRAPPED),
    "/usr/bin/mkdir",
    "/usr/bin/mktemp",
    "/usr/bin/cat",
    "/usr/bin/rm",
]
WORKLOADS = [
    Workload("venv", [str(VENV_APP)], _venv, "app: colour = blue"),
    Workload("wrapper", WRAPPER_PROGRAMS, _wrapper, "wrapped data"),
    Workload("daemon", [str(DAEMON)], _daemon, "<p>minid</p>"),
    Workload("grep", ["/usr/bin/grep"], _grep, "needle c"),
]


@contextlib.contextmanager
def cgroup(name: str) -> Iterator[Path]:
    """A child cgroup of the root for the suite's processes."""
    path = Path("/sys/fs/cgroup") / name
    if path.exists():
        _drain(path)
        path.rmdir()
    path.mkdir()
    try:
        yield path
    finally:
        _drain(path)
        with contextlib.suppress(OSError):
            path.rmdir()


def _drain(path: Path) -> None:
    """Kill what is left in the cgroup and wait until it is empty."""
    deadline = time.monotonic() + 30
    while True:
        pids = [int(p) for p in (path / "cgroup.procs").read_text().split()]
        if not pids or time.monotonic() > deadline:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 9)
        time.sleep(0.1)


def active_lsms() -> list[str]:
    try:
        return Path("/sys/kernel/security/lsm").read_text().strip().split(",")
    except OSError:
        return []


def tomoyo_ready(lsms: list[str]) -> str | None:
    """None when TOMOYO enforces policy loaded with tomoyo-loadpolicy, else why not."""
    if "tomoyo" not in lsms:
        return "tomoyo is not in /sys/kernel/security/lsm"
    if shutil.which("tomoyo-loadpolicy") is None:
        return "tomoyo-loadpolicy is not installed (Debian package tomoyo-tools)"
    try:
        head = Path("/sys/kernel/security/tomoyo/profile").read_text()[:64]
    except OSError as e:
        return f"/sys/kernel/security/tomoyo/profile: {e.strerror}"
    if "PROFILE_VERSION=" not in head:
        return "TOMOYO's policy is not loaded (/sbin/tomoyo-init did not run at boot)"
    return None


def tomoyo_load(flag: str, text: str) -> None:
    subprocess.run(
        ["tomoyo-loadpolicy", flag], input=text, text=True, check=True, timeout=60
    )


# A child that refuses itself a syscall with a seccomp filter: open(2)
# (x86_64 nr 2; Python and libc use openat, so nothing else is refused)
# returns EPERM. argv: PATH [log]. With `log` the filter is installed with
# SECCOMP_FILTER_FLAG_LOG: the kernel audits the refusal (type 1326).
SECCOMP_CHILD = r"""
import ctypes, errno, os, struct, sys
print(os.getpid(), flush=True)
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
def stmt(code, k):
    return struct.pack("HBBI", code, 0, 0, k)
def jump(code, k, jt, jf):
    return struct.pack("HBBI", code, jt, jf, k)
BPF_LD_W_ABS, BPF_JEQ_K, BPF_RET_K = 0x20, 0x15, 0x06
prog = b"".join([
    stmt(BPF_LD_W_ABS, 4),                   # seccomp_data.arch
    jump(BPF_JEQ_K, 0xC000003E, 1, 0),       # AUDIT_ARCH_X86_64
    stmt(BPF_RET_K, 0x7FFF0000),             # other arch: allow
    stmt(BPF_LD_W_ABS, 0),                   # seccomp_data.nr
    jump(BPF_JEQ_K, 2, 0, 1),                # open(2)
    stmt(BPF_RET_K, 0x00050000 | errno.EPERM),  # SECCOMP_RET_ERRNO | EPERM
    stmt(BPF_RET_K, 0x7FFF0000),             # SECCOMP_RET_ALLOW
])
buf = ctypes.create_string_buffer(prog, len(prog))
fprog = struct.pack("HxxxxxxQ", len(prog) // 8, ctypes.addressof(buf))
fbuf = ctypes.create_string_buffer(fprog, len(fprog))
assert libc.prctl(38, 1, 0, 0, 0) == 0  # PR_SET_NO_NEW_PRIVS
flags = 2 if sys.argv[2:] == ["log"] else 0  # SECCOMP_FILTER_FLAG_LOG
rc = libc.syscall(317, 1, flags, fbuf)  # seccomp(SECCOMP_SET_MODE_FILTER)
assert rc == 0, ctypes.get_errno()
r = libc.syscall(2, sys.argv[1].encode(), os.O_RDONLY)
print("allowed" if r >= 0 else errno.errorcode[ctypes.get_errno()], flush=True)
"""
