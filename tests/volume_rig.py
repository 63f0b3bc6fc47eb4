"""What the volume image and install script tests share: a Ceph connection (the driver) on
the session's real Ceph, a pool of the test's own (removed afterwards with its images), and
Ceph's own view of an image's used bytes (`rbd du`), a clone of a base image made to measure."""

import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pvc.drivers import volume_images
from pvc.drivers.ceph import Ceph
from pvc.drivers.ceph_images import Images
from tests.storage_rig import remove_ceph_pool

MIB = 1024 * 1024


@pytest.fixture
def ceph(ceph_service) -> Iterator[Ceph]:
    driver = Ceph(str(ceph_service.conf), "admin", str(ceph_service.keyring), 10)
    yield driver
    driver.close()


@pytest.fixture
def rbd_pool(ceph_service) -> Iterator[str]:
    pool = f"vi{uuid.uuid4().hex[:8]}"
    ceph_service.ceph("osd", "pool", "create", pool, "8")
    ceph_service.ceph("osd", "pool", "application", "enable", pool, "rbd")
    yield pool
    remove_ceph_pool(ceph_service, pool)


@pytest.fixture
def images(ceph) -> Images:
    return Images(ceph)


def used_bytes(ceph_service, pool: str, image: str) -> int:
    """The bytes `rbd du` says the image itself holds (a clone: what it no longer shares)."""
    deadline = time.monotonic() + 60
    while True:
        result = ceph_service.rbd("du", f"{pool}/{image}", "--format", "json")
        if result.returncode == 0:
            return int(json.loads(result.stdout)["images"][0]["used_size"])
        assert time.monotonic() < deadline, result.stderr
        time.sleep(1)


def disk(pool: str, volume: str, disk_id: str = "vda", size: int = 64 * MIB, **given) -> dict:
    """A disk of an install script's context (the shape pvc.node.install_script documents)."""
    return {"disk_id": disk_id, "pool": pool, "volume": volume, "size": size,
            "filesystem": None, "filesystem_args": [], "mountpoint": None,
            "source_volume": None, **given}  # fmt: skip


def context(disks: list[dict], name: str = "vm1", arguments: dict | None = None) -> dict:
    vm_uuid = str(uuid.uuid4())
    return {
        "vm_name": name, "vm_uuid": vm_uuid, "profile": "demo", "arguments": arguments or {},
        "disks": disks, "networks": [{"vni": 100, "mac": "52:54:00:00:00:01", "bridge": "vmbr100"}],
        "xml": f"<domain type='kvm'><name>{name}</name><uuid>{vm_uuid}</uuid></domain>",
    }  # fmt: skip


def clone_of_base(tmp_path: Path, ceph: Ceph, images: Images, pool: str, clone: str,
                  fill: Callable[[Path], None]) -> None:  # fmt: skip
    """Volume `clone` in `pool`: a clone of the new volume "base" (snapshot "golden"), whose
    ext4 filesystem `fill` wrote into while it was mounted at the path it is given."""
    base = tmp_path / "clone_of_base.img"
    volume_images.make_filesystem(str(base), 64 * MIB, "ext4")
    mounted = tmp_path / "clone_of_base.mnt"
    mounted.mkdir()
    volume_images.mount(str(base), str(mounted))
    try:
        fill(mounted)
    finally:
        volume_images.unmount(str(mounted))
    mounted.rmdir()
    images.create(pool, "base", 64 * MIB)
    volume_images.import_image(ceph, pool, "base", str(base))
    images.snapshot_create(pool, "base", "golden")
    images.clone(pool, "base", clone, "golden")
    base.unlink()
