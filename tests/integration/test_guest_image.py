"""The bootable test image (scripts/mkimage, tests.guest_image): what the file holds, and a
VM that SeaBIOS boots from it on an RBD volume, on a node daemon with its own libvirtd and the
session's Ceph: the guest mounts the volume's filesystem read-only, shows its files, and leaves
the volume as it was imported."""

import hashlib
import os
import uuid
from collections.abc import Iterator

import pytest

from tests.conftest import free_port
from tests.guest_image import MKIMAGE, build_image, image_domain_xml, import_image
from tests.integration.test_storage_vm_disks import api, console, rbd_disk
from tests.integration.test_vm_real import until
from tests.libvirt_nodes import GUEST_DIR, LibvirtNodes
from tests.local_cluster import LocalCluster
from tests.storage_rig import remove_ceph_pool

POOL = "guestimage"
IMAGE_SIZE = 64 << 20


@pytest.fixture(scope="module")
def rig(tmp_path_factory, ceph_service) -> Iterator[LocalCluster]:
    ceph_service.ceph("osd", "pool", "create", POOL, "8")
    ceph_service.ceph("osd", "pool", "application", "enable", POOL, "rbd")
    workdir = tmp_path_factory.mktemp("gimg")  # short: it holds the libvirtd sockets
    cluster = LocalCluster(workdir, 1, prefix="pvci", subnet="10.223.0", zk_port=free_port())
    libvirt = LibvirtNodes(workdir / "libvirt")
    try:
        cluster.up()
        cluster.use_libvirt(libvirt.start_cluster(cluster))
        cluster.use_ceph(ceph_service)
        cluster.start_all()
        zk = cluster.running_observer(60)
        zk.close()
        yield cluster
    finally:
        cluster.down()
        libvirt.stop()
        remove_ceph_pool(ceph_service, POOL)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_the_image_is_a_sparse_ext4_disk_with_a_boot_sector_and_no_partition_table():
    image = build_image()
    data = image.read_bytes()
    assert len(data) == IMAGE_SIZE
    assert data[510:512] == b"\x55\xaa"  # extlinux's boot sector: what SeaBIOS runs
    assert data[1080:1082] == b"\x53\xef"  # the ext magic at 1024 + 56: the filesystem is at 0
    assert os.stat(image).st_blocks * 512 < IMAGE_SIZE // 2  # sparse
    for text in (b"/boot/vmlinuz", b"/boot/initrd.gz", b"console=ttyS0", b"PROMPT 0"):
        assert text in data  # extlinux.conf (small files sit whole in one block)
    mtime = image.stat().st_mtime_ns
    again = build_image.__wrapped__()  # the script again, past the session's cache
    assert again == image and image.stat().st_mtime_ns == mtime  # nothing changed: not rebuilt
    assert MKIMAGE.exists() and (GUEST_DIR / ".image-stamp").exists()


def test_a_vm_boots_the_image_from_rbd_and_shows_its_files_without_writing(
    rig, ceph_service, tmp_path
):
    cluster = rig
    size = import_image(ceph_service, POOL, "root")
    zk = cluster.running_observer(60)
    try:
        zk.write({("volume", POOL, "root"): "", ("volume.stats", POOL, "root"): {"size": size}})
    finally:
        zk.close()
    name = "imaged"
    xml = image_domain_xml(name, str(uuid.uuid4()), tmp_path / "c.log", rbd_disk(f"{POOL}/root"))
    api(cluster, "POST", "/vm", {"xml": xml, "node": "node1"})
    api(cluster, "POST", f"/vm/{name}/state", {"state": "start"})
    until(lambda: "tick 3" in console(cluster, name), 180, "the guest booted from its volume")
    lines = console(cluster, name)
    assert any(line.startswith("pvc-guest booted: kernel ") for line in lines)
    assert "pvc-guest: disk vda 131072 sectors" in lines
    (image_line,) = [line for line in lines if line.startswith("pvc-guest: file ")]
    assert image_line.startswith("pvc-guest: file image: pvc-guest image ")
    assert "pvc-guest: root hostname pvc-guest" in lines
    assert not [line for line in lines if "disk tick" in line or "writes from sector" in line]
    api(cluster, "POST", f"/vm/{name}/state", {"state": "stop"})
    until(lambda: (api(cluster, "GET", f"/vm/{name}")["observed"] or {}).get("state")
          == "shutoff", 60, "the stop")  # fmt: skip
    exported = tmp_path / "exported.img"
    result = ceph_service.rbd("export", "--no-progress", f"{POOL}/root", str(exported))
    assert result.returncode == 0, result.stderr
    assert sha256(exported.read_bytes()) == sha256(build_image().read_bytes())  # never written
    api(cluster, "DELETE", f"/vm/{name}")
