"""Cluster endpoints: status, maintenance mode, initialisation."""

from typing import Any

from pvc.api.app import Context, endpoint
from pvc.api.openapi import MESSAGE, record
from pvc.api.params import Param, name_param
from pvc.ops import cluster


@endpoint(
    "GET",
    "/status",
    summary="Cluster status: primary, maintenance, nodes by state",
    tags=("cluster",),
    responses={404: "The cluster is not initialised"},
    returns=record("cluster"),
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
    returns=MESSAGE,
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
        name_param("name", "Cluster name", "cluster name", default="pvc"),
    ),
    responses={
        400: "Bad parameter, or a cluster name outside the name rule",
        409: "Already initialised (and overwrite not set), or node daemons are alive",
    },
    returns=MESSAGE,
)
def post_initialize(ctx: Context, overwrite: bool, name: str) -> dict[str, Any]:
    return cluster.initialize(ctx.zk, overwrite=overwrite, name=name)
