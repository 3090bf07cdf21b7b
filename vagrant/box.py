#!/usr/bin/python3
"""A vagrant-libvirt box made from the VM stage's image (no box download).

    /usr/bin/python3 vagrant/box.py OUT.box [--kernel 6.12]

The image of vagrant/vmtest.py (built or reused) becomes a libvirt box: its ext4
root file system converted to qcow2 (box.img), the kernel and initrd next to it,
the image's ssh key, metadata.json and a box Vagrantfile. The image has no
bootloader, so the box Vagrantfile has libvirt boot the kernel directly with the
VM stage's command line (lsm=...,bpf); root logs in with the image's key; qemu runs
under TCG (driver "qemu", CX16 hidden as in vmtest.py, see docs/vm.md) and the
management network is isolated (no route out: the box has every package the
Vagrantfile's provisioning needs). `make test-vagrant` adds it under the box name
vagrant/Vagrantfile uses, in a private VAGRANT_HOME.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import vmtest  # the image recipe and cache of the VM stage

BOX_VAGRANTFILE = """\
# The lsmtrace VM stage's image as a vagrant-libvirt box (vagrant/box.py).
# No bootloader in the image: libvirt boots the kernel next to this file.
Vagrant.configure("2") do |config|
  config.ssh.username = "root"
  config.ssh.private_key_path = File.join(File.dirname(__FILE__), "id_ed25519")
  config.ssh.insert_key = false
  config.vm.provider :libvirt do |lv|
    lv.driver = "qemu"  # TCG: /dev/kvm here is KVM-PVM only
    lv.cpu_mode = "custom"
    lv.cpu_model = "qemu64"
    # qemu 7.2's TCG mis-emulates CMPXCHG16B in 6.12's SLUB (docs/vm.md)
    lv.cpu_feature name: "cx16", policy: "disable"
    lv.kernel = File.join(File.dirname(__FILE__), "vmlinuz")
    lv.initrd = File.join(File.dirname(__FILE__), "initrd")
    lv.cmd_line = "@CMDLINE@"
    lv.disk_bus = "virtio"
    # host <-> guest only: the box needs no network
    lv.management_network_mode = "none"
  end
end
"""


def build_box(out: Path, kernel: str, repo: Path = vmtest.REPO) -> Path:
    img, _, _ = vmtest.build_image(repo=repo)
    vmlinuz, initrd = img.kernel_files(kernel)
    with tempfile.TemporaryDirectory(prefix="box-", dir=out.parent) as tmp:
        d = Path(tmp)
        subprocess.run(
            ["qemu-img", "convert", "-O", "qcow2", str(img.rootfs), str(d / "box.img")],
            check=True,
        )
        size_gb = math.ceil(img.rootfs.stat().st_size / 2**30)
        (d / "metadata.json").write_text(
            json.dumps(
                {"provider": "libvirt", "format": "qcow2", "virtual_size": size_gb}
            )
        )
        cmdline = vmtest.kernel_cmdline().replace(" panic=1", "")
        (d / "Vagrantfile").write_text(BOX_VAGRANTFILE.replace("@CMDLINE@", cmdline))
        with tarfile.open(out, "w") as tar:
            for name, src in (
                ("metadata.json", d / "metadata.json"),
                ("Vagrantfile", d / "Vagrantfile"),
                ("vmlinuz", vmlinuz),
                ("initrd", initrd),
                ("id_ed25519", img.key),
                ("box.img", d / "box.img"),
            ):
                tar.add(str(src), arcname=name)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out", type=Path)
    p.add_argument(
        "--kernel", choices=list(vmtest.KERNELS), default=vmtest.DEFAULT_KERNEL
    )
    p.add_argument(
        "--image-root",
        type=Path,
        default=vmtest.REPO,
        help="where .cache/vm/ with the image is (default: the repository)",
    )
    args = p.parse_args()
    t0 = time.monotonic()
    box = build_box(args.out.resolve(), args.kernel, args.image_root.resolve())
    size = box.stat().st_size / 2**20
    vmtest.log(
        f"box {box} ({size:.0f} MiB, kernel {args.kernel}) in "
        f"{vmtest.format_duration(time.monotonic() - t0)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
