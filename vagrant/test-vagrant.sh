#!/usr/bin/env bash
# make test-vagrant: vagrant/Vagrantfile for real, on this host, without any download.
#
# 1. Debian's vagrant + vagrant-libvirt + libvirt (apt, when missing).
# 2. virtlogd and libvirtd started by hand when not running (no systemd as PID 1
#    here) and a "default" storage pool, as vagrant-libvirt needs.
# 3. A libvirt box made from the VM stage's image (vagrant/box.py), added under the
#    box name the Vagrantfile uses, in a private VAGRANT_HOME (.cache/vagrant/home):
#    nothing of the user's ~/.vagrant.d is touched.
# 4. `vagrant up --provider=libvirt`: the Vagrantfile's trigger builds the wheel and
#    wheelhouse (vmtest.py dist), provisioning finds every package in the box (no
#    network), reboots, installs lsmtrace with deploy/install.sh and runs tests/vm.
# 5. `vagrant destroy -f`, whatever happened. The exit code is vagrant up's.
# Root only. Timings go to stderr; see vagrant/README.md for a measured run.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
export VAGRANT_HOME="$repo/.cache/vagrant/home"
box="$repo/.cache/vagrant/lsmtrace-libvirt.box"
log() { echo "test-vagrant: $*" >&2; }
t0=$SECONDS

[ "$(id -u)" = 0 ] || { echo "error: run as root (libvirt system daemon)" >&2; exit 1; }
need="vagrant vagrant-libvirt libvirt-daemon-system libvirt-daemon-driver-qemu \
libvirt-clients dnsmasq-base qemu-system-x86 qemu-utils"
missing=""
for p in $need; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    log "installing:$missing"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
        --no-install-recommends $missing
fi

# vagrant-libvirt talks to the system daemon; without systemd nobody starts it.
pgrep -x virtlogd >/dev/null || { log "starting virtlogd"; virtlogd -d; }
pgrep -x libvirtd >/dev/null || { log "starting libvirtd"; libvirtd -d; sleep 2; }
if ! virsh -q pool-info default >/dev/null 2>&1; then
    log "defining the default storage pool (/var/lib/libvirt/images)"
    virsh -q pool-define-as default dir --target /var/lib/libvirt/images
    virsh -q pool-build default
fi
virsh -q pool-start default >/dev/null 2>&1 || true

mkdir -p "$(dirname "$box")"
# IMAGE_ROOT: take the image from another .cache/vm/ than this checkout's
/usr/bin/python3 vagrant/box.py "$box" --kernel 6.12 ${IMAGE_ROOT:+--image-root "$IMAGE_ROOT"}
vagrant box add --force --name debian/bookworm64 --provider libvirt "$box" >&2
rm -f "$box"  # vagrant keeps its own copy
log "box ready after $((SECONDS - t0)) s"

cd vagrant
rc=0
t_up=$SECONDS
vagrant --no-tty up --provider=libvirt || rc=$?
log "vagrant up exited $rc after $((SECONDS - t_up)) s"
vagrant destroy -f >&2 || true
# the box's image uploaded to the pool by vagrant-libvirt
for vol in $(virsh -q vol-list default 2>/dev/null | awk '/debian-VAGRANTSLASH-bookworm64/ {print $1}'); do
    virsh -q vol-delete --pool default "$vol" >/dev/null || true
done
log "total $((SECONDS - t0)) s"
exit "$rc"
