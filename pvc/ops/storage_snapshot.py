"""Snapshot verbs: add, rename, remove, roll back a volume to one, list.

As with volumes (pvc.ops.storage_volume): under the pool's lock, records checked first, the
Ceph action, one transaction for the records (`snapshot` + `snapshot.stats` {"size",
"created"}), the Ceph action undone if that write fails. A rollback rewrites the volume with
the snapshot's data, so it is refused while a VM that is not stopped uses the volume.
"""

import time
from typing import Any

from pvc.config import Config
from pvc.errors import Conflict, NotFound
from pvc.ops import storage_ceph, user_input
from pvc.ops.cluster import require_initialized
from pvc.ops.storage_ceph import apply, refusals, undo
from pvc.zk.store import Store


def _label(pool: str, volume: str, snapshot: str) -> str:
    return f"snapshot '{pool}/{volume}@{snapshot}'"


def _require_no_snapshot(store: Store, pool: str, volume: str, snapshot: str) -> None:
    user_input.require_name(snapshot, "snapshot name")
    if store.exists(("snapshot", pool, volume, snapshot)):
        raise Conflict(f"{_label(pool, volume, snapshot)} exists already")


def add(store: Store, config: Config, pool: str, volume: str, snapshot: str) -> dict[str, Any]:
    stats = storage_ceph.require_volume(store, pool, volume)
    _require_no_snapshot(store, pool, volume, snapshot)
    images = storage_ceph.images(config)
    with storage_ceph.pool_lock(store, pool):
        _require_no_snapshot(store, pool, volume, snapshot)
        apply(_label(pool, volume, snapshot), images.snapshot_create, (pool, volume, snapshot),
              images.snapshot_remove, pool, volume, snapshot)  # fmt: skip
        try:
            store.write(
                {
                    ("snapshot", pool, volume, snapshot): "",
                    ("snapshot.stats", pool, volume, snapshot): {
                        "size": stats.get("size"),
                        "created": time.time(),
                    },
                },
                expect={("snapshot", pool, volume, snapshot): -1},
            )
        except Exception:
            undo(images.snapshot_remove, pool, volume, snapshot)
            raise
    return {"message": f"{_label(pool, volume, snapshot)} added"}


def rename(
    store: Store, config: Config, pool: str, volume: str, snapshot: str, new_name: str
) -> dict[str, Any]:
    storage_ceph.require_snapshot(store, pool, volume, snapshot)
    _require_no_snapshot(store, pool, volume, new_name)
    images = storage_ceph.images(config)
    with storage_ceph.pool_lock(store, pool):
        _require_no_snapshot(store, pool, volume, new_name)
        stats = store.read(("snapshot.stats", pool, volume, snapshot))
        apply(_label(pool, volume, snapshot), images.snapshot_rename,
              (pool, volume, snapshot, new_name),
              images.snapshot_rename, pool, volume, new_name, snapshot)  # fmt: skip
        try:
            store.write(
                {
                    ("snapshot", pool, volume, new_name): "",
                    ("snapshot.stats", pool, volume, new_name): stats,
                },
                expect={("snapshot", pool, volume, new_name): -1},
                delete=[("snapshot", pool, volume, snapshot)],
            )
        except Exception:
            undo(images.snapshot_rename, pool, volume, new_name, snapshot)
            raise
    return {"message": f"{_label(pool, volume, snapshot)} renamed to '{new_name}'"}


def remove(store: Store, config: Config, pool: str, volume: str, snapshot: str) -> dict[str, Any]:
    """Removes a snapshot; refused (409) while clones of it exist."""
    storage_ceph.require_snapshot(store, pool, volume, snapshot)
    images = storage_ceph.images(config)
    with storage_ceph.pool_lock(store, pool):
        try:
            with refusals(_label(pool, volume, snapshot)):
                images.snapshot_remove(pool, volume, snapshot)
        except NotFound:
            pass  # already gone from Ceph (an earlier removal stopped half way)
        store.write({}, delete=[("snapshot", pool, volume, snapshot)])
    return {"message": f"{_label(pool, volume, snapshot)} removed"}


def rollback(store: Store, config: Config, pool: str, volume: str, snapshot: str) -> dict[str, Any]:
    """Rewrites the volume with the snapshot's data; refused while a VM that uses the volume
    runs or a client has it open (storage_ceph.require_not_open)."""
    storage_ceph.require_snapshot(store, pool, volume, snapshot)
    images = storage_ceph.images(config)
    with storage_ceph.pool_lock(store, pool):
        storage_ceph.require_not_open(store, config, pool, volume, "rolling it back")
        with refusals(_label(pool, volume, snapshot)):
            images.snapshot_rollback(pool, volume, snapshot)
    return {"message": f"volume '{pool}/{volume}' rolled back to snapshot '{snapshot}'"}


def _record(store: Store, pool: str, volume: str, snapshot: str) -> dict[str, Any]:
    stats = store.read(("snapshot.stats", pool, volume, snapshot)) or {}
    return {"pool": pool, "volume": volume, "name": snapshot, **stats}


def list_snapshots(
    store: Store, pool: str | None = None, volume: str | None = None
) -> list[dict[str, Any]]:
    """Every snapshot (of `pool`, of `pool/volume`), sorted, from Zookeeper."""
    if volume is not None and pool is not None:
        storage_ceph.require_volume(store, pool, volume)
        pairs = [(pool, volume)]
    else:
        if pool is not None:
            storage_ceph.require_pool(store, pool)
        require_initialized(store)
        pools = [pool] if pool is not None else store.children("base.ceph.pools")
        pairs = [(p, v) for p in pools for v in store.children(("snapshots.pool", p))]
    return [
        _record(store, p, v, s)
        for p, v in pairs
        for s in store.children(("snapshots.volume", p, v))
    ]


def info(store: Store, pool: str, volume: str, snapshot: str) -> dict[str, Any]:
    storage_ceph.require_snapshot(store, pool, volume, snapshot)
    return _record(store, pool, volume, snapshot)
