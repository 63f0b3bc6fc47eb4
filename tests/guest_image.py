"""The bootable test image (scripts/mkimage), for VMs that boot from a volume, as provisioned
ones do: a raw disk holding extlinux, scripts/mkguest's kernel and initrd on one ext4
filesystem. The guest mounts that filesystem read-only and prints the files of its
/etc/pvc-guest ("pvc-guest: file <name>: <first line>"); it never writes ticks to it."""

import functools
import re
import subprocess
from pathlib import Path

from tests.libvirt_nodes import GUEST_DIR, build_guest, linux_domain_xml
from tests.local_cluster import REPO
from tests.processes import COMMAND_TIMEOUT

MKIMAGE = REPO / "scripts" / "mkimage"
DISK_BOOT = "<os><type arch='x86_64' machine='pc'>hvm</type><boot dev='hd'/></os>"


@functools.cache
def build_image(folder: Path = GUEST_DIR) -> Path:
    """The image's path, built into `folder` unless it is there already (once per session)."""
    result = subprocess.run(
        [str(MKIMAGE), str(folder)], capture_output=True, text=True, timeout=COMMAND_TIMEOUT
    )
    if result.returncode != 0:
        raise RuntimeError(f"scripts/mkimage failed: {result.stderr.strip()}")
    return Path(result.stdout.strip())


def import_image(ceph_service, pool: str, volume: str) -> int:
    """Imports the image into a new RBD volume `pool/volume` with the rbd CLI (which skips its
    zero blocks); the volume's size in bytes."""
    image = build_image()
    result = ceph_service.rbd("import", "--no-progress", str(image), f"{pool}/{volume}")
    if result.returncode != 0:
        raise RuntimeError(f"rbd import failed: {result.stderr.strip()}")
    return image.stat().st_size


def image_domain_xml(name: str, uuid: str, console_log: Path, disks: str) -> str:
    """The tiny guest booted by SeaBIOS from its first disk (`disks`: the <disk> elements),
    its serial console logged to `console_log` as linux_domain_xml's is."""
    xml = linux_domain_xml(name, uuid, build_guest(), console_log)
    xml = re.sub(r"<os>.*?</os>", DISK_BOOT, xml, count=1, flags=re.S)
    return xml.replace("<devices>", "<devices>" + disks, 1)
