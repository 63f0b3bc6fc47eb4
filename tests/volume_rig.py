"""What the volume image and install script tests share: a Ceph connection (the driver) on
the session's real Ceph, a pool of the test's own (removed afterwards with its images), and
Ceph's own view of an image's used bytes (`rbd du`)."""

import json
import time
import uuid
from collections.abc import Iterator

import pytest

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
