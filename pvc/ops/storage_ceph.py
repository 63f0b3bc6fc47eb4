"""What the storage verbs share: the Ceph connection and images of this process, Ceph's
refusals as pvc's errors, the records' existence checks, and the pool fill check.

Ceph is the truth of what exists; the records (`/ceph/pools`, `/ceph/volumes`, ...) are what
pvc made. A verb checks the records first, so a missing or duplicate name gets a clear 404 or
409 naming it, and Ceph's own refusal (a race, or something made outside pvc) is mapped the
same way: ENOENT -> 404, EEXIST -> 409, EBUSY (clones, a VM's open image) -> 409.
"""

import errno
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pvc.config import Config
from pvc.drivers import ceph, rbd_locks
from pvc.drivers.ceph_images import Images
from pvc.errors import Conflict, NotFound, PvcError
from pvc.ops import user_input, vm_volumes
from pvc.ops.cluster import require_initialized
from pvc.ops.sizes import format_size
from pvc.zk.locks import exclusive_lock
from pvc.zk.store import Store

log = logging.getLogger("pvc.ops.storage")
LOCK_TIMEOUT = 30.0  # a full copy of a large volume holds its pool's lock


def connection(config: Config) -> ceph.Ceph:
    return ceph.shared(config)


def images(config: Config) -> Images:
    return Images(connection(config))


@contextmanager
def refusals(what: str) -> Iterator[None]:
    """Ceph's refusals about `what` (e.g. "volume 'p/v'") as 404/409; others pass."""
    try:
        yield
    except ceph.CephUnavailable:
        raise
    except ceph.CephError as exc:
        raise _as_pvc_error(exc, what) from None


def _as_pvc_error(exc: ceph.CephError, what: str) -> PvcError:
    if exc.errno == errno.ENOENT:
        return NotFound(f"{what} does not exist in Ceph")
    if exc.errno == errno.EEXIST:
        return Conflict(
            f"{what} exists already in Ceph without a pvc record (made outside pvc, or left by "
            "a change Ceph did not answer that could not be undone: see the log); remove it "
            "with Ceph's own tools to use the name"
        )
    if exc.errno in (errno.EBUSY, errno.ENOTEMPTY):
        return Conflict(f"{what} is in use (open by a VM, or a snapshot with clones): {exc}")
    return exc


def undo(action: Any, *args: Any) -> None:
    """Undoes a Ceph action after a failed record write, or after the action itself failed
    in a way that leaves unknown whether Ceph applied it (a timeout). ENOENT means there is
    nothing to undo (the action was not applied). Any other failure must not hide the first
    error, so it is logged, naming what is left over, instead of raised: Ceph then holds an
    object without a record, whose name pvc refuses ("exists already in Ceph") until an
    administrator removes it with Ceph's own tools (`rbd rm POOL/VOLUME`, `rbd snap rm
    POOL/VOLUME@SNAPSHOT`, `rbd mv`, `ceph osd pool delete`), as the log says."""
    try:
        action(*args)
    except ceph.CephError as exc:
        if exc.errno == errno.ENOENT:
            log.info("nothing to undo (%s%s): %s", action.__name__, args, exc.message)
            return
        log.error(
            "could not undo a Ceph change (%s%s): %s; it is left in Ceph without a pvc record "
            "(remove it with Ceph's tools)",
            action.__name__,
            args,
            exc.message,
        )
    except PvcError as exc:
        log.error("could not undo a Ceph change (%s%s): %s", action.__name__, args, exc.message)


def apply(what: str, action: Any, args: tuple[Any, ...], undo_action: Any, *undo_args: Any) -> None:
    """Runs the Ceph `action(*args)` with Ceph's refusals about `what` as 404/409; when it
    fails without an answer (CephUnavailable: Ceph may have applied it all the same), it is
    undone (`undo_action(*undo_args)`) before the error is raised."""
    try:
        with refusals(what):
            action(*args)
    except ceph.CephUnavailable:
        undo(undo_action, *undo_args)
        raise


def require_not_open(store: Store, config: Config, pool: str, volume: str, doing: str) -> None:
    """Refuses (409) `doing` to `pool/volume` while a VM that uses it runs (by its wanted or
    observed state), or while a client has the image open (watchers) or holds its lock."""
    label = f"volume '{pool}/{volume}'"
    running = vm_volumes.running_users(store, pool, volume)
    if running:
        raise Conflict(
            f"{label} is in use by running VM(s) {', '.join(running)}: stop them before {doing}"
        )
    with refusals(label):
        holders = images(config).watchers(pool, volume)
        holders += rbd_locks.owners(connection(config), pool, volume)
    if holders:
        raise Conflict(f"{label} is open ({', '.join(holders)}): close it before {doing}")


@contextmanager
def pool_lock(store: Store, pool: str) -> Iterator[None]:
    """Holds the lock that makes storage changes in `pool` one at a time, with the store
    caught up, so a check made under it (a name is free) still holds when the records are
    written, and an undo never removes what a concurrent request made."""
    with exclusive_lock(store, ("lock.storage_pool", pool), LOCK_TIMEOUT):
        store.catch_up()
        yield


# --- records ---------------------------------------------------------------------------------


def require_pool(store: Store, pool: str) -> None:
    user_input.require_name(pool, "pool name")
    require_initialized(store)
    if not store.exists(("pool", pool)):
        store.catch_up()
        if not store.exists(("pool", pool)):
            raise NotFound(f"pool '{pool}' does not exist")


def require_volume(store: Store, pool: str, volume: str) -> dict[str, Any]:
    """The volume's stats record; 404 naming the pool or the volume."""
    require_pool(store, pool)
    user_input.require_name(volume, "volume name")
    stats, version = store.read_versioned(("volume.stats", pool, volume))
    if version < 0:
        store.catch_up()
        stats, version = store.read_versioned(("volume.stats", pool, volume))
        if version < 0:
            raise NotFound(f"volume '{pool}/{volume}' does not exist")
    return stats or {}


def require_snapshot(store: Store, pool: str, volume: str, snapshot: str) -> None:
    require_volume(store, pool, volume)
    user_input.require_name(snapshot, "snapshot name")
    if not store.exists(("snapshot", pool, volume, snapshot)):
        store.catch_up()
        if not store.exists(("snapshot", pool, volume, snapshot)):
            raise NotFound(f"snapshot '{pool}/{volume}@{snapshot}' does not exist")


def require_no_volume(store: Store, pool: str, volume: str) -> None:
    user_input.require_name(volume, "volume name")
    if store.exists(("volume", pool, volume)):
        raise Conflict(f"volume '{pool}/{volume}' exists already")


# --- the fill check --------------------------------------------------------------------------


def check_room(store: Store, config: Config, pool: str, added: int) -> None:
    """Refuses (409) a change that provisions `added` more bytes in `pool` if it would take
    the pool past storage.max_fill_ratio, read live from `ceph df detail`:

        (stored + added) / (stored + max_avail)  >  max_fill_ratio  ->  refused

    `stored` is the pool's data per copy and `max_avail` what can still be written to it per
    copy (Ceph divides by the copies), so the ratio is the pool's fill, per copy, if the new
    bytes were all written. Thin provisioning is not counted: this guards the next write,
    not the promises already made. A pool the manager has not reported yet (it was made
    seconds ago) counts as empty, with the cluster's free bytes divided by its copies."""
    if added <= 0:
        return
    ratio = float(config.get("storage.max_fill_ratio"))
    with refusals(f"pool '{pool}'"):
        df = connection(config).command("df", detail="detail")
    stats = next((p["stats"] for p in df["pools"] if p["name"] == pool), None)
    if stats is None:
        copies = max(1, int(store.read(("pool.copies", pool)) or 1))
        stats = {"stored": 0, "max_avail": int(df["stats"]["total_avail_bytes"]) // copies}
    stored, available = int(stats["stored"]), int(stats["max_avail"])
    capacity = stored + available
    after = (stored + added) / capacity if capacity else float("inf")
    if after > ratio:
        raise Conflict(
            f"pool '{pool}' would be {after:.0%} full (stored {format_size(stored)} + "
            f"{format_size(added)} of {format_size(capacity)} per copy), past "
            f"storage.max_fill_ratio {ratio:g}"
        )
