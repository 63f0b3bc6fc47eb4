"""Refusals that must come before any damage, against the session's real Ceph: a volume
removal refused (a running VM, an open image, a snapshot with clones) keeps every snapshot in
Ceph and Zookeeper; a rollback or shrink is refused while a VM runs (wanted or observed) or a
client has the image open; a failed clone leaves its snapshot unprotected; a clone's fill
check uses the snapshot's size."""

import json
import uuid

import pytest

from pvc.errors import Conflict
from pvc.ops import cluster, storage_ceph, storage_pool, storage_snapshot, storage_volume
from tests.storage_rig import Storage, ceph_config, remove_ceph_pool


@pytest.fixture
def setup(zk, ceph_service):
    pool = f"r{uuid.uuid4().hex[:8]}"  # a pool of each test's own
    cluster.initialize(zk)
    config = ceph_config(ceph_service)
    storage_pool.add(zk, config, pool, 8, 1, 1)
    storage_volume.add(zk, config, pool, "v1", "8M")
    for snapshot in ("s1", "s2"):
        storage_snapshot.add(zk, config, pool, "v1", snapshot)
    yield zk, config, Storage(None, None, ceph_service, zk, pool)
    remove_ceph_pool(ceph_service, pool)


def _snapshots_kept(rig: Storage, volume: str = "v1") -> None:
    pool = rig.pool
    result = rig.ceph.rbd("snap", "ls", f"{pool}/{volume}", "--format", "json")
    assert sorted(s["name"] for s in json.loads(result.stdout)) == ["s1", "s2"]
    assert rig.zk.children(("snapshots.volume", pool, volume)) == ["s1", "s2"]
    assert rig.zk.exists(("volume", pool, volume))


def test_a_refused_removal_keeps_every_snapshot(setup):
    zk, config, rig = setup
    pool = rig.pool
    # a VM that runs: refused even with force
    vm = rig.use(f"{pool}/v1", state="start")
    with pytest.raises(Conflict, match="running VM"):
        storage_volume.remove(zk, config, pool, "v1", force=True)
    _snapshots_kept(rig)
    # stopped, but its node still sees it running: refused
    zk.write({("domain.state", vm): "stop", ("domain.observed", vm): {"state": "running"}})
    with pytest.raises(Conflict, match="running VM"):
        storage_volume.remove(zk, config, pool, "v1", force=True)
    zk.write({("domain.observed", vm): {"state": "stopped"}})
    # the image open by a client (a watcher, as a running QEMU is): refused by Ceph's check
    opened = storage_ceph.images(config).writer(pool, "v1")
    with opened, pytest.raises(Conflict, match="is open by"):
        storage_volume.remove(zk, config, pool, "v1", force=True)
    _snapshots_kept(rig)
    # s2 has a clone (s1 would have been removed first): refused, both kept
    storage_volume.clone(zk, config, pool, "v1", "c1", "s2")
    with pytest.raises(Conflict, match="has clones"):
        storage_volume.remove(zk, config, pool, "v1", force=True)
    _snapshots_kept(rig)
    assert rig.rbd_info("v1")["size"] == 8 << 20
    # once the clone is gone, the removal goes through
    storage_volume.remove(zk, config, pool, "c1")
    storage_volume.remove(zk, config, pool, "v1", force=True)
    assert rig.rbd_ls() == [] and zk.children(("volumes.pool", pool)) == []


def test_rollback_and_shrink_are_refused_while_in_use(setup):
    zk, config, rig = setup
    pool = rig.pool
    vm = rig.use(f"{pool}/v1", state="stop")
    zk.write({("domain.observed", vm): {"state": "running"}})
    with pytest.raises(Conflict, match="running VM"):
        storage_snapshot.rollback(zk, config, pool, "v1", "s1")
    with pytest.raises(Conflict, match="running VM"):
        storage_volume.resize(zk, config, pool, "v1", "4M", shrink=True)
    zk.write({("domain.observed", vm): {"state": "stopped"}})
    with storage_ceph.images(config).writer(pool, "v1") as image:
        image.write(b"x" * 4096, 0)  # takes the exclusive lock, as a guest's write does
        with pytest.raises(Conflict, match="is open"):
            storage_snapshot.rollback(zk, config, pool, "v1", "s1")
        with pytest.raises(Conflict, match="is open"):
            storage_volume.resize(zk, config, pool, "v1", "4M", shrink=True)
        storage_volume.resize(zk, config, pool, "v1", "16M")  # growing stays allowed
    storage_snapshot.rollback(zk, config, pool, "v1", "s1")
    storage_volume.resize(zk, config, pool, "v1", "4M", shrink=True)


def test_a_failed_clone_unprotects_and_fill_uses_the_snapshot_size(setup, ceph_service):
    zk, config, rig = setup
    pool = rig.pool
    ceph_service.rbd("create", f"{pool}/outside", "--size", "4M")  # a name Ceph refuses
    with pytest.raises(Conflict, match="exists already in Ceph"):
        storage_volume.clone(zk, config, pool, "v1", "outside", "s1")
    assert not any(
        s["protected"] for s in storage_ceph.images(config).info(pool, "v1")["snapshots"]
    )
    # the snapshot's recorded size (say, before a shrink) is what a clone may come to hold
    zk.write({("snapshot.stats", pool, "v1", "s1"): {"size": 1 << 50}})
    with pytest.raises(Conflict, match="past storage.max_fill_ratio"):
        storage_volume.clone(zk, config, pool, "v1", "c1", "s1")
    storage_volume.clone(zk, config, pool, "v1", "c1", "s2")
    assert rig.rbd_info("c1")["parent"]["snapshot"] == "s2"
