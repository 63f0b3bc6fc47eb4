"""Pool verbs: add (a replicated RBD pool), remove, list and describe.

Ceph accepts a duplicate pool create, a deletion of a missing pool and more copies than there
are OSDs, all with "OK": pvc refuses those itself. A pool's records (`pool`, `pool.pgs`,
`pool.copies`, `pool.mincopies` and the empty parents of its volumes and snapshots) are
written in one transaction after Ceph made the pool; if that write fails, the pool is
deleted again. Removal deletes the Ceph pool first and then its records with every volume and
snapshot record in it, so a removal interrupted between the two is finished by running it
again (Ceph then says the pool is gone).
"""

from typing import Any

from pvc.config import Config
from pvc.errors import Conflict, InvalidInput
from pvc.ops import storage_ceph, user_input, vm_volumes
from pvc.ops.cluster import require_initialized
from pvc.zk.store import Store

PGS_MIN, PGS_MAX = 1, 32768
COPIES_MAX = 10


def _require_settings(pgs: int, copies: int, mincopies: int) -> None:
    if not PGS_MIN <= pgs <= PGS_MAX or pgs & (pgs - 1):
        raise InvalidInput(
            f"invalid PG count {pgs}: a power of two from {PGS_MIN} to {PGS_MAX} (e.g. 64, 128)"
        )
    if not 1 <= copies <= COPIES_MAX:
        raise InvalidInput(f"invalid copies {copies}: from 1 to {COPIES_MAX}")
    if not 1 <= mincopies <= copies:
        raise InvalidInput(f"invalid mincopies {mincopies}: from 1 to copies ({copies})")


def _osds_up_and_in(config: Config) -> int:
    osds = storage_ceph.connection(config).command("osd dump")["osds"]
    return sum(1 for osd in osds if osd["up"] and osd["in"])


def add(
    store: Store, config: Config, pool: str, pgs: int, copies: int = 3, mincopies: int = 2
) -> dict[str, Any]:
    """Creates a replicated pool with `pgs` placement groups, `copies` copies of each
    object (size) and `mincopies` needed to serve I/O (min_size), for RBD."""
    user_input.require_name(pool, "pool name")
    _require_settings(pgs, copies, mincopies)
    require_initialized(store)
    with storage_ceph.pool_lock(store, pool):
        _create(store, config, pool, pgs, copies, mincopies)
    return {"message": f"pool '{pool}' added ({pgs} PGs, {copies} copies, min {mincopies})"}


def _create(store: Store, config: Config, pool: str, pgs: int, copies: int, mincopies: int) -> None:
    if store.exists(("pool", pool)):
        raise Conflict(f"pool '{pool}' exists already")
    ceph = storage_ceph.connection(config)
    if pool in [p["pool_name"] for p in ceph.command("osd pool ls", detail="detail")]:
        raise Conflict(f"a Ceph pool '{pool}' exists already (not made by pvc)")
    available = _osds_up_and_in(config)
    if copies > available:
        raise Conflict(
            f"pool '{pool}' needs {copies} copies but only {available} OSD(s) are up and in"
        )
    create = {"prefix": "osd pool create", "pool": pool, "pg_num": pgs, "pgp_num": pgs}
    try:  # a timed-out create may have been applied: undone too
        ceph.mon_command(create | {"pool_type": "replicated", "autoscale_mode": "off"})
        for var, value in (("size", copies), ("min_size", mincopies)):
            ceph.mon_command({"prefix": "osd pool set", "pool": pool, "var": var,
                              "val": str(value), "yes_i_really_mean_it": True})  # fmt: skip
        ceph.mon_command({"prefix": "osd pool application enable", "pool": pool, "app": "rbd"})
        store.write(
            {
                ("pool", pool): "",
                ("pool.pgs", pool): pgs,
                ("pool.copies", pool): copies,
                ("pool.mincopies", pool): mincopies,
                ("volumes.pool", pool): "",
                ("snapshots.pool", pool): "",
            },
            expect={("pool", pool): -1},
        )
    except Exception:
        storage_ceph.undo(_delete_ceph_pool, config, pool)
        raise


def _delete_ceph_pool(config: Config, pool: str) -> None:
    storage_ceph.connection(config).mon_command(
        {"prefix": "osd pool delete", "pool": pool, "pool2": pool,
         "yes_i_really_really_mean_it": True}
    )  # fmt: skip


def remove(store: Store, config: Config, pool: str, confirm: bool = False) -> dict[str, Any]:
    """Deletes a pool with every volume and snapshot in it; refused while a VM uses one of
    its volumes, and without `confirm`."""
    storage_ceph.require_pool(store, pool)
    if not confirm:
        raise InvalidInput(
            f"removing pool '{pool}' destroys every volume in it: confirm it (confirm=true)"
        )
    with storage_ceph.pool_lock(store, pool):
        users = vm_volumes.users(store, pool)
        if users:
            raise Conflict(f"pool '{pool}' has volumes used by VM(s): {', '.join(users)}")
        _delete_ceph_pool(config, pool)
        records = [("pool", pool), ("volumes.pool", pool), ("snapshots.pool", pool)]
        store.write({}, delete=records)
    return {"message": f"pool '{pool}' removed"}


def _record(store: Store, pool: str) -> dict[str, Any]:
    pgs, copies, mincopies, stats = store.read_many(
        [("pool.pgs", pool), ("pool.copies", pool), ("pool.mincopies", pool), ("pool.stats", pool)]
    )
    return {
        "name": pool,
        "pgs": pgs,
        "copies": copies,
        "mincopies": mincopies,
        "volumes": len(store.children(("volumes.pool", pool))),
        "stats": stats,  # the primary's statistics, when it has collected them
    }


def list_pools(store: Store) -> list[dict[str, Any]]:
    """Every pool pvc made, with its settings, volume count and usage (from Zookeeper)."""
    require_initialized(store)
    return [_record(store, pool) for pool in store.children("base.ceph.pools")]


def info(store: Store, pool: str) -> dict[str, Any]:
    storage_ceph.require_pool(store, pool)
    return _record(store, pool)
