"""Cluster-wide verbs: initialise the tree, report status, toggle maintenance; the cluster's
identity.

Initialising writes a fresh tree in one transaction. Overwriting one must leave nothing half,
however large the tree (one transaction is bounded by Zookeeper's buffer, limits.TRANSACTION_MAX,
and thousands of VMs exceed it), so it goes in a safe order:
1. refused while any node daemon is alive (its liveness node present): a running daemon
   would go on half-registered in a tree that no longer knows it;
2. the tree is retired in one transaction guarded by the absence of those liveness nodes:
   its schema version goes, so from then on every reader sees a cluster not initialised;
3. the old roots are removed in batches, each guarded by the tree still being retired;
4. the fresh tree is written in one transaction, guarded the same way.
An initialise interrupted after 2 leaves a cluster not initialised, which any initialise
(a user's, or a daemon's at start) completes the same way.

The cluster's identity (`/config/cluster_uuid`) is a UUID made at initialise, and for a cluster
initialised before it existed, once, by the first caller of `identity` that finds none. Node
daemons mark the libvirt domains they start with it (pvc.node.vms), so a domain can always be
told to be this cluster's, another cluster's or none.
"""

import time
import uuid as uuid_module
from typing import Any

import pvc
from pvc.errors import ConcurrentChange, Conflict, NotFound
from pvc.ops import allocation, placement, user_input
from pvc.zk import migrations, schema
from pvc.zk.handler import ZKHandler

# Roots whose children are removed in batches of WIPE_BATCH by their schema key (a VM's
# subtree is some 20 keys): what stays is small enough for one transaction.
BATCHED_CHILDREN = {
    "base.domains": "domain",
    "base.names.domains": "name.domain",
    "base.nodes": "node",
    "base.jobs": "job",
}
WIPE_BATCH = 200
# What marks a tree as initialised (pvc.zk.migrations.tree_version): removed first.
MARKERS = ("base.schema", "v0.primary_node")
RETIRED = {"base.schema.version": -1}  # the guard of every later step


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
    """Creates the base tree (see the module docstring for the order an overwrite follows).

    An initialised cluster is refused (Conflict) unless `overwrite`, which removes every pvc
    key (nodes, VMs, networks, storage records) and writes a fresh tree; it is refused too
    (Conflict) while any node daemon is alive. A name outside the name rule is InvalidInput.
    """
    user_input.require_name(name, "cluster name")
    if is_initialized(zk):
        if not overwrite:
            raise Conflict(
                "the cluster is already initialised; use overwrite to wipe and recreate it"
            )
        _retire(zk)
    _wipe(zk)
    values: dict[Any, Any] = dict(schema.INITIAL_TREE)
    values["base.config.cluster_name"] = name
    values["base.config.cluster_uuid"] = str(uuid_module.uuid4())
    values["base.config.initialized"] = round(time.time(), 3)
    _guarded(zk, values, [])
    return {"message": f"cluster '{name}' initialised (schema version {schema.VERSION})"}


def _retire(zk: ZKHandler) -> None:
    """Removes what marks the tree initialised, unless a node daemon is alive (checked again
    in the same transaction, by the absence of each node's liveness node)."""
    handler = zk.zk  # Zookeeper itself: a mirror may lag behind a daemon that just registered
    nodes = [node for node in handler.children("base.nodes") if schema.valid_name(node)]
    alive = [node for node in nodes if handler.exists(("node.alive", node))]
    if alive:
        raise Conflict(f"stop the node daemons first: {', '.join(alive)}")
    expect: dict[Any, int] = {("node.alive", node): -1 for node in nodes}
    expect["base.schema.version"] = zk.read_versioned("base.schema.version")[1]
    try:
        zk.write({}, delete=[key for key in MARKERS if zk.exists(key)], expect=expect)
    except ConcurrentChange:
        raise Conflict(
            "the cluster changed while it was being overwritten (a node daemon started?); "
            "nothing was removed, try again"
        ) from None


def _wipe(zk: ZKHandler) -> None:
    """Removes every pvc root of a retired tree, in transactions of bounded size."""
    for root, child in BATCHED_CHILDREN.items():
        names = [name for name in zk.children(root) if schema.valid_component(name)]
        for start in range(0, len(names), WIPE_BATCH):
            _guarded(zk, {}, [(child, name) for name in names[start : start + WIPE_BATCH]])
    _guarded(zk, {}, [key for key in schema.ROOTS if zk.exists(key)])


def _guarded(zk: ZKHandler, values: dict[Any, Any], delete: list[Any]) -> None:
    """One step of an initialise, written only while the tree is still not initialised."""
    try:
        zk.write(values, delete=delete, expect=RETIRED)
    except ConcurrentChange:
        raise Conflict("the cluster was initialised by someone else meanwhile") from None


def identity(zk: ZKHandler) -> str:
    """This cluster's UUID; made (once, whoever asks first) for a cluster initialised before
    pvc gave clusters one."""
    found = zk.read("base.config.cluster_uuid")
    if found:
        return found
    stamp = zk.read_versioned("base.schema.version")[1]
    if stamp < 0:
        raise NotFound("the cluster is not initialised; run 'pvc cluster init'")
    made = str(uuid_module.uuid4())
    expect = {"base.config.cluster_uuid": -1, "base.schema.version": stamp}
    try:
        zk.write({"base.config.cluster_uuid": made}, expect=expect)
    except ConcurrentChange:
        return identity(zk)  # another caller made it first (or the tree was overwritten)
    return made


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
