#!/bin/sh
# Install lsmtrace from a wheel into a venv that sees Debian's bcc.
#
#   deploy/install.sh WHEEL [WHEELHOUSE]
#
# WHEEL       lsmtrace-*.whl (`pip wheel --no-deps .`, or vagrant/vmtest.py dist)
# WHEELHOUSE  a directory of wheels for the dependencies (`pip wheel -w DIR WHEEL`):
#             pip then installs from it alone and never asks an index (offline hosts,
#             VM guests, image builds). Without it, pip fetches them from PyPI.
# PREFIX      (environment) the venv to create, default /opt/lsmtrace; the command is
#             $PREFIX/bin/lsmtrace (what deploy/systemd/lsmtrace-exporter.service runs).
# PYTHON      (environment) the interpreter of the venv, default /usr/bin/python3.
#
# Needs: python3, python3-venv and python3-bpfcc from Debian. bcc is not a PyPI
# package (the PyPI project named "bcc" is unrelated): the venv is made with
# --system-site-packages so that it imports Debian's bcc module.
#
# The same script installs lsmtrace in deploy/container/Dockerfile, in the VM guest
# of vagrant/vmtest.py and in the Vagrant box (vagrant/Vagrantfile).
set -eu

die() {
    echo "error: $*" >&2
    exit 1
}

[ $# -ge 1 ] && [ $# -le 2 ] || die "usage: $0 WHEEL [WHEELHOUSE]"
wheel=$1
wheelhouse=${2:-}
prefix=${PREFIX:-/opt/lsmtrace}
python=${PYTHON:-/usr/bin/python3}

[ -f "$wheel" ] || die "no such wheel: $wheel"
case $wheel in *.whl) ;; *) die "not a wheel: $wheel" ;; esac
[ -z "$wheelhouse" ] || [ -d "$wheelhouse" ] || die "no such wheelhouse: $wheelhouse"
"$python" -c 'import ensurepip' 2>/dev/null ||
    die "$python cannot create venvs: apt-get install python3-venv"
"$python" -c 'import bcc' 2>/dev/null ||
    die "$python cannot import bcc: apt-get install python3-bpfcc"

"$python" -m venv --system-site-packages "$prefix"
if [ -n "$wheelhouse" ]; then
    set -- --no-index --find-links "$wheelhouse"
else
    set --
fi
PIP_DISABLE_PIP_VERSION_CHECK=1 "$prefix/bin/python" -m pip install -q --no-cache-dir \
    "$@" "$wheel"

# The installed package, not a source tree, from a neutral directory.
cd /
"$prefix/bin/python" -c 'import bcc, lsmtrace' ||
    die "lsmtrace was installed in $prefix but does not import"
echo "lsmtrace installed: $prefix/bin/lsmtrace ($("$prefix/bin/lsmtrace" --version 2>&1))"
