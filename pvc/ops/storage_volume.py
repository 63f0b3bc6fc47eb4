"""Volume verbs: RBD images in a pool: add, remove, resize, rename, clone, list, describe.

Each change runs under its pool's lock (storage_ceph.pool_lock): checks against the records
(404/409 naming the object; the fill check for what adds bytes), the Ceph action, then one
transaction for the records, `volume` + `volume.stats` ({"size", "features", "parent"}) and
their snapshots'. If that write fails the Ceph action is undone, so there is never a volume
without a record or a record without a volume. A removal deletes the image first and then
its records: one interrupted between the two is finished by running it again.

A resize writes the new size into `volume.stats`; the node running a VM that uses the volume
sees the size grow and tells the guest (libvirt blockResize).
"""

from typing import Any

from pvc.config import Config
from pvc.drivers.ceph_images import Images
from pvc.errors import Conflict, InvalidInput, NotFound
from pvc.ops import storage_ceph, vm_volumes
from pvc.ops.cluster import require_initialized
from pvc.ops.sizes import format_size, parse_size
from pvc.ops.storage_ceph import apply, refusals, undo
from pvc.zk.store import Store


def stats_of(info: dict[str, Any]) -> dict[str, Any]:
    """What `volume.stats` holds, from the driver's info."""
    return {"size": info["size"], "features": info["features"], "parent": info["parent"]}


def label(pool: str, volume: str) -> str:
    return f"volume '{pool}/{volume}'"


def record_values(pool: str, volume: str, stats: dict[str, Any]) -> dict[Any, Any]:
    """The values that record a new volume (for the caller's transaction)."""
    return {("volume", pool, volume): "", ("volume.stats", pool, volume): stats}


def add(store: Store, config: Config, pool: str, volume: str, size: str) -> dict[str, Any]:
    """Creates a volume of `size` (a size with a unit: pvc.ops.sizes)."""
    storage_ceph.require_pool(store, pool)
    storage_ceph.require_no_volume(store, pool, volume)
    size_bytes = parse_size(size)
    images = storage_ceph.images(config)
    with storage_ceph.pool_lock(store, pool):
        storage_ceph.require_no_volume(store, pool, volume)
        storage_ceph.check_room(store, config, pool, size_bytes)
        apply(label(pool, volume), images.create, (pool, volume, size_bytes),
              images.remove, pool, volume)  # fmt: skip
        try:
            stats = stats_of(images.info(pool, volume))
            store.write(record_values(pool, volume, stats), expect={("volume", pool, volume): -1})
        except Exception:
            undo(images.remove, pool, volume)
            raise
    return {"message": f"{label(pool, volume)} added ({format_size(size_bytes)})"}


def remove(
    store: Store, config: Config, pool: str, volume: str, force: bool = False
) -> dict[str, Any]:
    """Removes a volume and its snapshots; refused while a defined VM uses it, unless
    `force`; refused even then while a VM using it runs, a client has it open, or a
    snapshot of it has clones (checked before anything is removed)."""
    storage_ceph.require_volume(store, pool, volume)
    images = storage_ceph.images(config)
    with storage_ceph.pool_lock(store, pool):
        users = vm_volumes.users(store, pool, volume)
        if users and not force:
            raise Conflict(
                f"{label(pool, volume)} is used by VM(s) {', '.join(users)}; use force to "
                "remove it anyway"
            )
        running = vm_volumes.running_users(store, pool, volume)
        if running:
            raise Conflict(
                f"{label(pool, volume)} is used by running VM(s) {', '.join(running)}: "
                "stop them first"
            )
        try:
            with refusals(label(pool, volume)):
                images.remove(pool, volume)
        except NotFound:
            pass  # already gone from Ceph (an earlier removal stopped half way)
        store.write({}, delete=[("volume", pool, volume), ("snapshots.volume", pool, volume)])
    return {"message": f"{label(pool, volume)} removed"}


def resize(
    store: Store, config: Config, pool: str, volume: str, size: str, shrink: bool = False
) -> dict[str, Any]:
    """Sets a volume's size; growing is checked against the pool's fill, shrinking (which
    discards the data past the new end) needs `shrink`."""
    storage_ceph.require_volume(store, pool, volume)
    size_bytes = parse_size(size)
    images = storage_ceph.images(config)
    with storage_ceph.pool_lock(store, pool):
        stats, version = store.read_versioned(("volume.stats", pool, volume))
        current = int((stats or {}).get("size") or images.info(pool, volume)["size"])
        if size_bytes == current:
            return {"message": f"{label(pool, volume)} is already {format_size(current)}"}
        if size_bytes < current and not shrink:
            raise InvalidInput(
                f"{label(pool, volume)} is {format_size(current)}: shrinking it to "
                f"{format_size(size_bytes)} discards data; confirm it (shrink=true)"
            )
        if size_bytes < current:
            storage_ceph.require_not_open(store, config, pool, volume, "shrinking it")
        storage_ceph.check_room(store, config, pool, size_bytes - current)
        with refusals(label(pool, volume)):
            images.resize(pool, volume, size_bytes)
        try:
            new_stats = (stats or {}) | {"size": size_bytes}
            store.write(
                {("volume.stats", pool, volume): new_stats},
                expect={("volume.stats", pool, volume): version},
            )
        except Exception:
            undo(images.resize, pool, volume, current)
            raise
    return {
        "message": f"{label(pool, volume)} resized from {format_size(current)} to "
        f"{format_size(size_bytes)}"
    }


def rename(store: Store, config: Config, pool: str, volume: str, new_name: str) -> dict[str, Any]:
    """Renames a volume (its snapshots follow); refused while a VM uses it (its XML names
    the volume)."""
    storage_ceph.require_volume(store, pool, volume)
    storage_ceph.require_no_volume(store, pool, new_name)
    images = storage_ceph.images(config)
    with storage_ceph.pool_lock(store, pool):
        storage_ceph.require_no_volume(store, pool, new_name)
        users = vm_volumes.users(store, pool, volume)
        if users:
            raise Conflict(f"{label(pool, volume)} is used by VM(s) {', '.join(users)}")
        stats = store.read(("volume.stats", pool, volume))
        snapshots = store.children(("snapshots.volume", pool, volume))
        snapshot_stats = store.read_many([("snapshot.stats", pool, volume, s) for s in snapshots])
        apply(label(pool, volume), images.rename, (pool, volume, new_name),
              images.rename, pool, new_name, volume)  # fmt: skip
        values = record_values(pool, new_name, stats)
        for snapshot, their_stats in zip(snapshots, snapshot_stats, strict=True):
            values[("snapshot", pool, new_name, snapshot)] = ""
            values[("snapshot.stats", pool, new_name, snapshot)] = their_stats
        try:
            store.write(
                values,
                expect={("volume", pool, new_name): -1},
                delete=[("volume", pool, volume), ("snapshots.volume", pool, volume)],
            )
        except Exception:
            undo(images.rename, pool, new_name, volume)
            raise
    return {"message": f"{label(pool, volume)} renamed to '{new_name}'"}


def clone(
    store: Store,
    config: Config,
    pool: str,
    volume: str,
    new_name: str,
    snapshot: str | None = None,
) -> dict[str, Any]:
    """A new volume `new_name` in the same pool: a copy-on-write clone of `volume@snapshot`,
    or a full copy of `volume` without a snapshot. Either is checked against the pool's fill
    with the source's full size (a clone may come to hold all of it: the snapshot's size)."""
    if snapshot is None:
        stats = storage_ceph.require_volume(store, pool, volume)
    else:
        storage_ceph.require_snapshot(store, pool, volume, snapshot)
        stats = store.read(("snapshot.stats", pool, volume, snapshot)) or {}
    storage_ceph.require_no_volume(store, pool, new_name)
    images = storage_ceph.images(config)
    source = f"{pool}/{volume}" + (f"@{snapshot}" if snapshot else "")
    with storage_ceph.pool_lock(store, pool):
        storage_ceph.require_no_volume(store, pool, new_name)
        storage_ceph.check_room(store, config, pool, int(stats.get("size") or 0))
        apply(f"'{source}' or {label(pool, new_name)}", images.clone,
              (pool, volume, new_name, snapshot), _undo_clone, images, pool, volume, new_name,
              snapshot)  # fmt: skip
        try:
            new_stats = stats_of(images.info(pool, new_name))
            expect = {("volume", pool, new_name): -1}
            store.write(record_values(pool, new_name, new_stats), expect=expect)
        except Exception:
            undo(_undo_clone, images, pool, volume, new_name, snapshot)
            raise
    how = "cloned (copy-on-write)" if snapshot else "copied"
    return {"message": f"'{source}' {how} to {label(pool, new_name)}"}


def _undo_clone(
    images: Images, pool: str, volume: str, new_name: str, snapshot: str | None
) -> None:
    """Removes a clone (or copy) made by `clone`, and unprotects its snapshot if nothing
    else is cloned from it (pvc protected it for this clone)."""
    try:
        images.remove(pool, new_name)
    finally:
        if snapshot is not None:
            images.unprotect_unused(pool, volume, snapshot)


def _record(store: Store, pool: str, volume: str) -> dict[str, Any]:
    stats = store.read(("volume.stats", pool, volume)) or {}
    return {
        "pool": pool,
        "name": volume,
        "size": stats.get("size"),
        "features": stats.get("features", []),
        "parent": stats.get("parent"),
        "snapshots": store.children(("snapshots.volume", pool, volume)),
    }


def list_volumes(store: Store, pool: str | None = None) -> list[dict[str, Any]]:
    """Every volume (of `pool`, if given), sorted by pool and name, from Zookeeper."""
    if pool is None:
        require_initialized(store)
        pools = store.children("base.ceph.pools")
    else:
        storage_ceph.require_pool(store, pool)
        pools = [pool]
    return [
        _record(store, name, volume)
        for name in pools
        for volume in store.children(("volumes.pool", name))
    ]


def info(store: Store, pool: str, volume: str) -> dict[str, Any]:
    storage_ceph.require_volume(store, pool, volume)
    return _record(store, pool, volume) | {"users": vm_volumes.users(store, pool, volume)}
