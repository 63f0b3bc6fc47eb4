"""Ceph pool endpoints: list, add, describe and remove pools (pvc.ops.storage_pool)."""

from typing import Any

from pvc.api.app import Context, endpoint
from pvc.api.openapi import MESSAGE, listing, record
from pvc.api.params import Param, name_param
from pvc.ops import storage_pool

TAGS = ("storage",)
POOL = record("name")
CEPH_DOWN = "Ceph is not configured on this node, or does not answer"


@endpoint(
    "GET",
    "/storage/ceph/pool",
    summary="Every pool pvc made: PGs, copies, volume count and usage statistics",
    tags=TAGS,
    responses={404: "The cluster is not initialised"},
    returns=listing(POOL),
)
def get_pools(ctx: Context) -> list[dict[str, Any]]:
    return storage_pool.list_pools(ctx.zk)


@endpoint(
    "POST",
    "/storage/ceph/pool",
    summary="Add a replicated RBD pool",
    tags=TAGS,
    params=(
        name_param("pool", "The pool's name", "pool name", required=True),
        Param(
            "pgs",
            int,
            "Placement groups: a power of two",
            required=True,
            minimum=1,
            maximum=storage_pool.PGS_MAX,
        ),
        Param(
            "copies",
            int,
            "Copies of each object (size)",
            default=3,
            minimum=1,
            maximum=storage_pool.COPIES_MAX,
        ),
        Param(
            "mincopies",
            int,
            "Copies needed to serve I/O (min_size)",
            default=2,
            minimum=1,
            maximum=storage_pool.COPIES_MAX,
        ),
    ),  # fmt: skip
    responses={
        400: "Bad parameter (PGs not a power of two, mincopies above copies)",
        404: "The cluster is not initialised",
        409: "The pool exists, or more copies than OSDs up and in",
        502: "Ceph refused it",
        503: CEPH_DOWN,
    },
    returns=MESSAGE,
)
def post_pool(ctx: Context, pool: str, pgs: int, copies: int, mincopies: int) -> dict[str, Any]:
    return storage_pool.add(ctx.zk, ctx.config, pool, pgs, copies, mincopies)


@endpoint(
    "GET",
    "/storage/ceph/pool/<pool>",
    summary="One pool: PGs, copies, volume count and usage statistics",
    tags=TAGS,
    responses={404: "No such pool"},
    returns=POOL,
)
def get_pool(ctx: Context, pool: str) -> dict[str, Any]:
    return storage_pool.info(ctx.zk, pool)


@endpoint(
    "DELETE",
    "/storage/ceph/pool/<pool>",
    summary="Remove a pool with every volume and snapshot in it",
    tags=TAGS,
    params=(Param("confirm", bool, "Must be true: the pool's data is destroyed", default=False),),
    responses={
        400: "Not confirmed",
        404: "No such pool",
        409: "A VM uses a volume of the pool",
        502: "Ceph refused it",
        503: CEPH_DOWN,
    },
    returns=MESSAGE,
)
def delete_pool(ctx: Context, pool: str, confirm: bool) -> dict[str, Any]:
    return storage_pool.remove(ctx.zk, ctx.config, pool, confirm)
