"""Cluster-wide verbs: initialise the tree, report status, toggle maintenance."""

import time
from typing import Any

import pvc
from pvc.errors import Conflict, NotFound
from pvc.ops import allocation, placement
from pvc.zk import migrations, schema
from pvc.zk.handler import ZKHandler


def is_initialized(zk: ZKHandler) -> bool:
    return migrations.tree_version(zk) is not None


# Daemon states of a node the fence monitor is dealing with, or has dealt with.
FENCE_STATES = ("dead", "fenced", "fence-failed")


def require_initialized(zk: ZKHandler) -> None:
    if not is_initialized(zk):
        zk.catch_up()
    if not is_initialized(zk):
        raise NotFound("the cluster is not initialised; run 'pvc cluster init'")


def initialize(zk: ZKHandler, *, overwrite: bool = False, name: str = "pvc") -> dict[str, Any]:
    """Creates the base tree in one transaction.

    An initialised cluster is refused (Conflict) unless `overwrite`, which removes every pvc
    key (nodes, VMs, networks, storage records) and writes a fresh tree in the same
    transaction, so no reader ever sees a half-made tree.
    """
    present = [key for key in schema.ROOTS if zk.exists(key)]
    if is_initialized(zk) and not overwrite:
        raise Conflict("the cluster is already initialised; use overwrite to wipe and recreate it")
    values: dict[Any, Any] = dict(schema.INITIAL_TREE)
    values["base.config.cluster_name"] = name
    values["base.config.initialized"] = round(time.time(), 3)
    zk.write(values, delete=present)
    return {"message": f"cluster '{name}' initialised (schema version {schema.VERSION})"}


def set_maintenance(zk: ZKHandler, enabled: bool) -> dict[str, Any]:
    require_initialized(zk)
    zk.write({"base.config.maintenance": enabled})
    state = "on" if enabled else "off"
    return {"message": f"maintenance mode {state}"}


def status(zk: ZKHandler, overcommit_ratio: float = 1.0) -> dict[str, Any]:
    """A summary of the cluster: version, primary, maintenance, nodes by state, and whether
    every running VM would still fit if the largest node were lost (N+1)."""
    require_initialized(zk)
    name, maintenance, primary, version = zk.read_many(
        [
            "base.config.cluster_name",
            "base.config.maintenance",
            "base.config.primary_node",
            "base.schema.version",
        ]
    )
    names = zk.children("base.nodes")
    states = zk.read_many(
        [
            key
            for node in names
            for key in (("node.state.daemon", node), ("node.state.router", node))
        ]
    )
    nodes = [
        {
            "name": node,
            "daemon_state": states[2 * i] or "unknown",
            "coordinator_state": states[2 * i + 1] or "unknown",
        }
        for i, node in enumerate(names)
    ]
    by_state: dict[str, int] = {}
    for node in nodes:
        by_state[node["daemon_state"]] = by_state.get(node["daemon_state"], 0) + 1
    troubled = [node for node in nodes if node["daemon_state"] in FENCE_STATES]
    logs = zk.read_many([("node.fence_log", node["name"]) for node in troubled])
    fencing = [
        {
            "name": node["name"],
            "daemon_state": node["daemon_state"],
            "last_event": (log or [None])[-1],
        }
        for node, log in zip(troubled, logs, strict=True)
    ]
    return {
        "cluster": name or "pvc",
        "pvc_version": pvc.__version__,
        "schema_version": version,
        "maintenance": bool(maintenance),
        "primary_node": None if primary in (None, "none") else primary,
        "nodes": {"total": len(nodes), "by_state": by_state, "list": nodes},
        "fencing": fencing,
        "vms": {"total": len(zk.children("base.domains"))},
        "survives_node_loss": placement.survives_largest_node_loss(
            allocation.node_loads(zk).values(), overcommit_ratio
        ),
        "networks": {"total": len(zk.children("base.networks"))},
    }
