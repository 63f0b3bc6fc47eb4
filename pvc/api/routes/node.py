"""Node endpoints: list and describe nodes, their states, moving the primary coordinator role,
flush and ready (tasks: see routes/tasks.py)."""

from typing import Any

from pvc.api.app import Context, endpoint
from pvc.api.openapi import MAYBE_TASK, MESSAGE, listing, record
from pvc.api.params import Param
from pvc.limits import NAME_MAX
from pvc.ops import node as node_ops

NOT_FOUND = "The node does not exist, or the cluster is not initialised"
BAD_NAME = "Invalid node name"
NODE = record("name")
STATE = record("name", state={"type": "string", "nullable": True})


@endpoint(
    "GET",
    "/node",
    summary="All nodes: states, liveness, version, hardware and resource use",
    tags=("node",),
    params=(
        Param(
            "limit",
            str,
            "Only nodes whose name contains this text",
            max_length=NAME_MAX,
            pattern=r"^[A-Za-z0-9._-]*$",
            label="node name part",
            rule="letters, digits, '.', '-' and '_'",
        ),
    ),
    responses={400: "Bad parameter", 404: "The cluster is not initialised"},
    returns=listing(NODE),
)
def get_nodes(ctx: Context, limit: str | None) -> list[dict[str, Any]]:
    return node_ops.list_nodes(ctx.zk, limit)


@endpoint(
    "GET",
    "/node/<node>",
    summary="One node: states, liveness, version, hardware and resource use",
    tags=("node",),
    responses={400: BAD_NAME, 404: NOT_FOUND},
    returns=NODE,
)
def get_node(ctx: Context, node: str) -> dict[str, Any]:
    return node_ops.info(ctx.zk, node)


@endpoint(
    "GET",
    "/node/<node>/daemon-state",
    summary="The node daemon's state: init, run, shutdown, stop or dead",
    tags=("node",),
    responses={400: BAD_NAME, 404: NOT_FOUND},
    returns=STATE,
)
def get_daemon_state(ctx: Context, node: str) -> dict[str, Any]:
    return node_ops.state(ctx.zk, node, "daemon")


@endpoint(
    "GET",
    "/node/<node>/coordinator-state",
    summary="The node's coordinator state: client, secondary, takeover, primary or relinquish",
    tags=("node",),
    responses={400: BAD_NAME, 404: NOT_FOUND},
    returns=STATE,
)
def get_coordinator_state(ctx: Context, node: str) -> dict[str, Any]:
    return node_ops.state(ctx.zk, node, "coordinator")


@endpoint(
    "POST",
    "/node/<node>/coordinator-state",
    summary="Make a coordinator primary, or make the primary give up its role",
    tags=("node",),
    params=(
        Param("state", str, "The role to move to", required=True, choices=("primary", "secondary")),
        Param(
            "force",
            bool,
            "secondary: give up the role even if no other coordinator can take over (primary "
            "ignores it)",
            default=False,
        ),
    ),
    responses={
        400: "Bad parameter or name, a hypervisor, a node not alive or running, "
        "or (secondary) a node that is not primary",
        404: NOT_FOUND,
        409: "No other coordinator can take over (secondary without force), "
        "or the primary changed meanwhile",
    },
    returns=MESSAGE,
)
def post_coordinator_state(ctx: Context, node: str, state: str, force: bool) -> dict[str, Any]:
    if state == "secondary":
        return node_ops.set_secondary(ctx.zk, node, force=force)
    return node_ops.set_primary(ctx.zk, node)  # force applies to secondary only: ignored


@endpoint(
    "GET",
    "/node/<node>/domain-state",
    summary="The node's VM hosting state: ready, flush, flushed or unflush",
    tags=("node",),
    responses={400: BAD_NAME, 404: NOT_FOUND},
    returns=STATE,
)
def get_domain_state(ctx: Context, node: str) -> dict[str, Any]:
    return node_ops.state(ctx.zk, node, "domain")


@endpoint(
    "POST",
    "/node/<node>/domain-state",
    summary="Flush a node (move its VMs away) or make it ready (take them back): a task its "
    "daemon runs (202 with the task's id; 200 with no task if there is nothing to do)",
    tags=("node",),
    params=(Param("state", str, "flush or ready", required=True, choices=("flush", "ready")),),
    responses={
        400: "Bad parameter or name, or a stopped node",
        404: NOT_FOUND,
        409: "The domain state changed meanwhile",
    },
    returns=MAYBE_TASK,
)
def post_domain_state(ctx: Context, node: str, state: str) -> tuple[int, dict[str, Any]]:
    answer = node_ops.set_domain_state(ctx.zk, node, state)
    return (200 if answer["task"] is None else 202), answer
