"""Cluster endpoints: status, maintenance mode, initialisation."""

from typing import Any

from pvc.api.app import Context, Param, endpoint
from pvc.ops import cluster


@endpoint(
    "GET",
    "/status",
    summary="Cluster status: primary, maintenance, nodes by state",
    tags=("cluster",),
    responses={404: "The cluster is not initialised"},
)
def get_status(ctx: Context) -> dict[str, Any]:
    return cluster.status(ctx.zk, ctx.config.get("vm.memory_overcommit_ratio"))


@endpoint(
    "POST",
    "/status",
    summary="Turn maintenance mode on or off",
    tags=("cluster",),
    params=(Param("maintenance", bool, "true: suppress fencing and automatic actions", True),),
    responses={400: "Bad parameter", 404: "The cluster is not initialised"},
)
def post_status(ctx: Context, maintenance: bool) -> dict[str, Any]:
    return cluster.set_maintenance(ctx.zk, maintenance)


@endpoint(
    "POST",
    "/initialize",
    summary="Create the cluster's Zookeeper tree",
    tags=("cluster",),
    params=(
        Param(
            "overwrite",
            bool,
            "Wipe an initialised cluster and start afresh (every node daemon stopped)",
            default=False,
        ),
        Param("name", str, "Cluster name", default="pvc"),
    ),
    responses={
        400: "Bad parameter, or a cluster name outside the name rule",
        409: "Already initialised (and overwrite not set), or node daemons are alive",
    },
)
def post_initialize(ctx: Context, overwrite: bool, name: str) -> dict[str, Any]:
    return cluster.initialize(ctx.zk, overwrite=overwrite, name=name)
