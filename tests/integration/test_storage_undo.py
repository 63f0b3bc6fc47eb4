"""Nothing half-made: when Zookeeper refuses the records after Ceph acted (here a store whose
transaction fails), the storage verbs undo Ceph's part, checked in Ceph's own view."""

import pytest

from pvc.errors import ConcurrentChange
from pvc.ops import cluster, storage_pool, storage_snapshot, storage_volume
from tests.storage_rig import ceph_config, remove_ceph_pool


class FailingWrites:
    """The test's Zookeeper handler, whose transactions fail while `failing` is set."""

    def __init__(self, zk):
        self._zk = zk
        self.failing = False

    def __getattr__(self, name):
        return getattr(self._zk, name)

    def write(self, *args, **kwargs):
        if self.failing:
            raise ConcurrentChange("the test's Zookeeper refuses this transaction")
        return self._zk.write(*args, **kwargs)


@pytest.fixture
def setup(zk, ceph_service):
    cluster.initialize(zk)
    config = ceph_config(ceph_service)
    store = FailingWrites(zk)
    yield store, config
    remove_ceph_pool(ceph_service, "undo1")


def test_a_failed_record_write_undoes_ceph(setup, ceph_service):
    store, config = setup
    pools = lambda: ceph_service.ceph("osd", "pool", "ls")  # noqa: E731
    store.failing = True
    with pytest.raises(ConcurrentChange):
        storage_pool.add(store, config, "undo1", 8, 1, 1)
    assert "undo1" not in pools()
    store.failing = False
    storage_pool.add(store, config, "undo1", 8, 1, 1)
    storage_volume.add(store, config, "undo1", "v1", "8M")
    storage_snapshot.add(store, config, "undo1", "v1", "s1")
    images = lambda: ceph_service.rbd("ls", "undo1").stdout.split()  # noqa: E731
    snaps = lambda v: ceph_service.rbd("snap", "ls", f"undo1/{v}").stdout  # noqa: E731

    store.failing = True
    for verb in (
        lambda: storage_volume.add(store, config, "undo1", "v2", "8M"),
        lambda: storage_volume.clone(store, config, "undo1", "v1", "v3", "s1"),
        lambda: storage_volume.clone(store, config, "undo1", "v1", "v4"),
        lambda: storage_volume.rename(store, config, "undo1", "v1", "v5"),
        lambda: storage_volume.resize(store, config, "undo1", "v1", "16M"),
        lambda: storage_snapshot.add(store, config, "undo1", "v1", "s2"),
        lambda: storage_snapshot.rename(store, config, "undo1", "v1", "s1", "s3"),
    ):
        with pytest.raises(ConcurrentChange):
            verb()
    assert images() == ["v1"]
    assert "s1" in snaps("v1") and "s2" not in snaps("v1") and "s3" not in snaps("v1")
    assert "8 MiB" in ceph_service.rbd("info", "undo1/v1").stdout
    store.failing = False
    assert store.children(("volumes.pool", "undo1")) == ["v1"]
    assert store.children(("snapshots.volume", "undo1", "v1")) == ["s1"]
