"""Ceph snapshot endpoints: list, add, describe, rename, remove and roll back to snapshots of
RBD volumes (pvc.ops.storage_snapshot)."""

from typing import Any

from pvc.api.app import Context, endpoint
from pvc.api.openapi import MESSAGE, listing, record
from pvc.api.params import name_param
from pvc.api.routes.storage_pool import CEPH_DOWN, TAGS
from pvc.ops import storage_snapshot

SNAPSHOT = record("pool", "volume", "name")
NOT_FOUND = "No such pool, volume or snapshot"
PATH = "/storage/ceph/snapshot/<pool>/<volume>/<snapshot>"


@endpoint(
    "GET",
    "/storage/ceph/snapshot",
    summary="Every snapshot (of a pool, of a volume)",
    tags=TAGS,
    params=(
        name_param("pool", "Only the snapshots in this pool", "pool name"),
        name_param("volume", "Only the snapshots of this volume (with pool)", "volume name"),
    ),
    responses={404: "No such pool or volume, or the cluster is not initialised"},
    returns=listing(SNAPSHOT),
)
def get_snapshots(ctx: Context, pool: str | None, volume: str | None) -> list[dict[str, Any]]:
    return storage_snapshot.list_snapshots(ctx.zk, pool, volume)


@endpoint(
    "POST",
    "/storage/ceph/snapshot",
    summary="Take a snapshot of a volume",
    tags=TAGS,
    params=(
        name_param("pool", "The pool", "pool name", required=True),
        name_param("volume", "The volume", "volume name", required=True),
        name_param("snapshot", "The new snapshot's name", "snapshot name", required=True),
    ),
    responses={404: "No such pool or volume", 409: "The snapshot exists", 503: CEPH_DOWN},
    returns=MESSAGE,
)
def post_snapshot(ctx: Context, pool: str, volume: str, snapshot: str) -> dict[str, Any]:
    return storage_snapshot.add(ctx.zk, ctx.config, pool, volume, snapshot)


@endpoint("GET", PATH, summary="One snapshot", tags=TAGS, responses={404: NOT_FOUND},
          returns=SNAPSHOT)  # fmt: skip
def get_snapshot(ctx: Context, pool: str, volume: str, snapshot: str) -> dict[str, Any]:
    return storage_snapshot.info(ctx.zk, pool, volume, snapshot)


@endpoint(
    "PUT",
    PATH,
    summary="Rename a snapshot",
    tags=TAGS,
    params=(name_param("new_name", "The new name", "snapshot name", required=True),),
    responses={404: NOT_FOUND, 409: "The new name exists", 503: CEPH_DOWN},
    returns=MESSAGE,
)
def put_snapshot(
    ctx: Context, pool: str, volume: str, snapshot: str, new_name: str
) -> dict[str, Any]:
    return storage_snapshot.rename(ctx.zk, ctx.config, pool, volume, snapshot, new_name)


@endpoint(
    "DELETE",
    PATH,
    summary="Remove a snapshot",
    tags=TAGS,
    responses={404: NOT_FOUND, 409: "The snapshot has clones", 503: CEPH_DOWN},
    returns=MESSAGE,
)
def delete_snapshot(ctx: Context, pool: str, volume: str, snapshot: str) -> dict[str, Any]:
    return storage_snapshot.remove(ctx.zk, ctx.config, pool, volume, snapshot)


@endpoint(
    "POST",
    PATH + "/rollback",
    summary="Roll a volume back to a snapshot (its later writes are lost)",
    tags=TAGS,
    responses={404: NOT_FOUND, 409: "A running VM uses the volume", 503: CEPH_DOWN},
    returns=MESSAGE,
)
def post_rollback(ctx: Context, pool: str, volume: str, snapshot: str) -> dict[str, Any]:
    return storage_snapshot.rollback(ctx.zk, ctx.config, pool, volume, snapshot)
