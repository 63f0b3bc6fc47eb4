"""Ceph volume endpoints: list, add, describe, resize/rename, remove and clone RBD volumes
(pvc.ops.storage_volume); uploads: pvc.api.routes.storage_upload."""

from typing import Any

from pvc.api.app import Context, endpoint
from pvc.api.openapi import MESSAGE, listing, record
from pvc.api.params import Param, name_param
from pvc.api.routes.storage_pool import CEPH_DOWN, TAGS
from pvc.errors import InvalidInput
from pvc.ops import storage_volume

VOLUME = record("pool", "name")
SIZE_MAX_LENGTH = 40
NOT_FOUND = "No such pool or volume"


def size_param(required: bool) -> Param:
    return Param("size", str, "A size with a unit: 10G, 512M, 4096B (binary units B to P)",
                 required=required, max_length=SIZE_MAX_LENGTH)  # fmt: skip


@endpoint(
    "GET",
    "/storage/ceph/volume",
    summary="Every volume (of a pool): size, features, parent, snapshots",
    tags=TAGS,
    params=(name_param("pool", "Only the volumes of this pool", "pool name"),),
    responses={404: "No such pool, or the cluster is not initialised"},
    returns=listing(VOLUME),
)
def get_volumes(ctx: Context, pool: str | None) -> list[dict[str, Any]]:
    return storage_volume.list_volumes(ctx.zk, pool)


@endpoint(
    "POST",
    "/storage/ceph/volume",
    summary="Add an RBD volume",
    tags=TAGS,
    params=(
        name_param("pool", "The pool", "pool name", required=True),
        name_param("volume", "The new volume's name", "volume name", required=True),
        size_param(required=True),
    ),
    responses={
        400: "Bad parameter or size",
        404: "No such pool",
        409: "The volume exists, or it would fill the pool past storage.max_fill_ratio",
        502: "Ceph refused it",
        503: CEPH_DOWN,
    },
    returns=MESSAGE,
)
def post_volume(ctx: Context, pool: str, volume: str, size: str) -> dict[str, Any]:
    return storage_volume.add(ctx.zk, ctx.config, pool, volume, size)


@endpoint(
    "GET",
    "/storage/ceph/volume/<pool>/<volume>",
    summary="One volume: size, features, parent, snapshots, the VMs using it",
    tags=TAGS,
    responses={404: NOT_FOUND},
    returns=VOLUME,
)
def get_volume(ctx: Context, pool: str, volume: str) -> dict[str, Any]:
    return storage_volume.info(ctx.zk, pool, volume)


@endpoint(
    "PUT",
    "/storage/ceph/volume/<pool>/<volume>",
    summary="Resize a volume (size) and/or rename it (new_name)",
    tags=TAGS,
    params=(
        size_param(required=False),
        Param(
            "shrink", bool, "Confirms a size below the current one (data is lost)", default=False
        ),
        name_param("new_name", "The volume's new name", "volume name"),
    ),  # fmt: skip
    responses={
        400: "Bad parameter or size, nothing to change, or a shrink not confirmed",
        404: NOT_FOUND,
        409: "The new name exists, a VM uses it (rename), or the pool would fill",
        502: "Ceph refused it",
        503: CEPH_DOWN,
    },
    returns=MESSAGE,
)
def put_volume(
    ctx: Context, pool: str, volume: str, size: str | None, shrink: bool, new_name: str | None
) -> dict[str, Any]:
    if size is None and new_name is None:
        raise InvalidInput("give a new size, a new_name, or both")
    messages = []
    if size is not None:
        messages.append(storage_volume.resize(ctx.zk, ctx.config, pool, volume, size, shrink))
    if new_name is not None:
        messages.append(storage_volume.rename(ctx.zk, ctx.config, pool, volume, new_name))
    return {"message": "; ".join(m["message"] for m in messages)}


@endpoint(
    "DELETE",
    "/storage/ceph/volume/<pool>/<volume>",
    summary="Remove a volume and its snapshots",
    tags=TAGS,
    params=(Param("force", bool, "Remove it even if a defined VM uses it", default=False),),
    responses={
        404: NOT_FOUND,
        409: "A VM uses it (without force), it is open, or a snapshot has clones",
        502: "Ceph refused it",
        503: CEPH_DOWN,
    },
    returns=MESSAGE,
)
def delete_volume(ctx: Context, pool: str, volume: str, force: bool) -> dict[str, Any]:
    return storage_volume.remove(ctx.zk, ctx.config, pool, volume, force)


@endpoint(
    "POST",
    "/storage/ceph/volume/<pool>/<volume>/clone",
    summary="Clone a volume: copy-on-write from a snapshot, or a full copy without one",
    tags=TAGS,
    params=(
        name_param("new_volume", "The new volume's name", "volume name", required=True),
        name_param("snapshot", "Clone from this snapshot (copy-on-write)", "snapshot name"),
    ),
    responses={
        404: "No such pool, volume or snapshot",
        409: "The new volume exists, or it would fill the pool past storage.max_fill_ratio",
        502: "Ceph refused it",
        503: CEPH_DOWN,
    },
    returns=MESSAGE,
)
def post_clone(
    ctx: Context, pool: str, volume: str, new_volume: str, snapshot: str | None
) -> dict[str, Any]:
    return storage_volume.clone(ctx.zk, ctx.config, pool, volume, new_volume, snapshot)
