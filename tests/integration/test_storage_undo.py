"""Nothing half-made: when Zookeeper refuses the records after Ceph acted (here a store whose
transaction fails), or Ceph acted but did not answer in time (CephUnavailable), the storage
verbs undo Ceph's part, checked in Ceph's own view."""

import pytest

from pvc.drivers.ceph import CephUnavailable
from pvc.errors import ConcurrentChange
from pvc.ops import cluster, storage_ceph, storage_pool, storage_snapshot, storage_volume
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
    remove_ceph_pool(ceph_service, "undo2")


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


class AppliedThenTimedOut:
    """A driver object whose first call of `method` does its work in Ceph and then raises
    CephUnavailable, as a call Ceph applied without answering in time; later calls (the
    undo's) pass through."""

    def __init__(self, target, method: str):
        self._target, self._method, self.fired = target, method, False

    def __getattr__(self, name):
        real = getattr(self._target, name)
        if name != self._method or self.fired:
            return real

        def applied_then_timed_out(*args, **kwargs):
            real(*args, **kwargs)
            self.fired = True
            raise CephUnavailable(f"{name}: Ceph did not answer (the test's timeout)")

        return applied_then_timed_out


def test_a_timeout_after_ceph_acted_is_undone(setup, ceph_service, monkeypatch):
    store, config = setup
    images = lambda: ceph_service.rbd("ls", "undo2").stdout.split()  # noqa: E731
    snaps = lambda v: ceph_service.rbd("snap", "ls", f"undo2/{v}").stdout  # noqa: E731

    def timed_out(module, factory, method, verb):
        wrapper = AppliedThenTimedOut(factory(config), method)
        monkeypatch.setattr(module, factory.__name__, lambda _config: wrapper)
        with pytest.raises(CephUnavailable):
            verb()
        monkeypatch.undo()
        assert wrapper.fired

    timed_out(storage_ceph, storage_ceph.connection, "mon_command",
              lambda: storage_pool.add(store, config, "undo2", 8, 1, 1))  # fmt: skip
    assert "undo2" not in ceph_service.ceph("osd", "pool", "ls")
    storage_pool.add(store, config, "undo2", 8, 1, 1)  # the name is free again
    storage_volume.add(store, config, "undo2", "v1", "8M")
    storage_snapshot.add(store, config, "undo2", "v1", "s1")
    for method, verb in (
        ("create", lambda: storage_volume.add(store, config, "undo2", "v2", "8M")),
        ("clone", lambda: storage_volume.clone(store, config, "undo2", "v1", "v3", "s1")),
        ("clone", lambda: storage_volume.clone(store, config, "undo2", "v1", "v4")),
        ("rename", lambda: storage_volume.rename(store, config, "undo2", "v1", "v5")),
        ("snapshot_create", lambda: storage_snapshot.add(store, config, "undo2", "v1", "s2")),
        ("snapshot_rename",
         lambda: storage_snapshot.rename(store, config, "undo2", "v1", "s1", "s3")),
    ):  # fmt: skip
        timed_out(storage_ceph, storage_ceph.images, method, verb)
        assert images() == ["v1"], method
        assert "s1" in snaps("v1") and "s2" not in snaps("v1") and "s3" not in snaps("v1")
    assert store.children(("volumes.pool", "undo2")) == ["v1"]
    assert store.children(("snapshots.volume", "undo2", "v1")) == ["s1"]
    info = storage_ceph.images(config).info("undo2", "v1")
    assert not any(s["protected"] for s in info["snapshots"])  # the clone's protect undone
    # every name is usable again
    storage_volume.clone(store, config, "undo2", "v1", "v3", "s1")
    storage_volume.rename(store, config, "undo2", "v1", "v5")
    storage_snapshot.add(store, config, "undo2", "v5", "s2")
    assert images() == ["v3", "v5"]
