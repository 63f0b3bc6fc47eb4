"""What pvc reads of one OSD from the real Ceph (pvc.drivers.ceph_osds): its `osd dump` entry,
and the PGs mapped to it, which a drain counts; a remove never wipes a real disk that does
not carry its OSD's bluestore label (here: a loop device that now holds ext4); the OSD of a
dead node is purged at once."""

import subprocess
import time
import uuid
from types import SimpleNamespace

import pytest

from pvc.drivers.ceph import Ceph
from pvc.drivers.ceph_osds import dumped_osd, pgs_of
from pvc.drivers.ceph_volume import CephVolume
from pvc.node.osd_jobs import OsdRemove
from pvc.ops import cluster, storage_osd
from tests.processes import COMMAND_TIMEOUT
from tests.storage_rig import ceph_config


def sh(*args: str) -> str:
    return subprocess.run(
        args, check=True, capture_output=True, text=True, timeout=COMMAND_TIMEOUT
    ).stdout


@pytest.fixture(scope="module")
def ceph(ceph_service):
    ceph_service.ceph("osd", "pool", "create", "f3drain", "8")
    yield Ceph.from_config(ceph_config(ceph_service))
    ceph_service.ceph("osd", "pool", "delete", "f3drain", "f3drain",
                      "--yes-i-really-really-mean-it", check=False)  # fmt: skip


def test_dumped_osd_finds_the_osd_or_none(ceph):
    osd = dumped_osd(ceph, 0)
    assert osd is not None and osd["osd"] == 0 and osd["up"] == 1
    assert dumped_osd(ceph, 999) is None


def test_the_pgs_of_an_osd_are_those_mapped_to_it(ceph):
    deadline = time.monotonic() + 60
    while len(pgs_of(ceph, 0)) < 9 and time.monotonic() < deadline:  # .mgr's and the pool's
        time.sleep(0.5)
    pgs = pgs_of(ceph, 0)
    assert len(pgs) >= 9
    assert all(0 in pg["up"] or 0 in pg["acting"] for pg in pgs)
    assert pgs_of(ceph, 999) == []


def test_a_remove_whose_recorded_device_now_holds_ext4_leaves_it_untouched(tmp_path, ceph_service):
    backing = tmp_path / "disk.img"
    with open(backing, "wb") as file:
        file.truncate(64 * 1024**2)
    device = sh("losetup", "--find", "--show", str(backing)).strip()
    try:
        sh("mkfs.ext4", "-q", "-U", "11111111-2222-3333-4444-555555555555", device)
        volumes = CephVolume(str(ceph_service.conf))
        controller = SimpleNamespace(ceph=None, devices=volumes, processes=None)
        remover = OsdRemove("node1", controller)  # type: ignore[arg-type]
        assert remover._wipe(device, "9b1c7c8e-0000-4000-8000-000000000001") is False
        assert volumes.signatures(device) == ["ext4"]
        assert "555555555555" in sh("blkid", "-o", "value", "-s", "UUID", device)
    finally:
        subprocess.run(["losetup", "-d", device], capture_output=True, timeout=COMMAND_TIMEOUT)


def test_the_osd_of_a_dead_node_is_purged_at_once(ceph, ceph_service, zk):
    """No task can run on a node declared dead: its OSD is purged from the API's host, with
    its empty CRUSH host, and its records go (the disk, on the dead node, stays as it is)."""
    cluster.initialize(zk)
    osd_uuid = str(uuid.uuid4())
    made = ceph_service.ceph("osd", "new", osd_uuid)
    number = made["osdid"] if isinstance(made, dict) else int(made)
    ceph_service.ceph("osd", "crush", "add", f"osd.{number}", "0", "root=default", "host=ghost")
    key = str(number)
    zk.write(
        {("osd", key): "ghost", ("osd.node", key): "ghost", ("osd.device", key): "/dev/sdz",
         ("osd.fsid", key): osd_uuid, ("node.state.daemon", "ghost"): "dead"}
    )  # fmt: skip
    try:
        answer = storage_osd.remove(zk, ceph, number)
        assert answer["task"] is None and "dead node 'ghost' purged" in answer["message"]
        assert dumped_osd(ceph, number) is None
        hosts = {b["name"] for b in ceph.command("osd tree")["nodes"] if b["type"] == "host"}
        assert "ghost" not in hosts
        assert not zk.exists(("osd", key))
    finally:
        ceph_service.ceph("osd", "purge", key, "--yes-i-really-mean-it", check=False)
        ceph_service.ceph("osd", "crush", "rm", "ghost", check=False)
