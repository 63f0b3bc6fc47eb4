"""Node verbs: list and describe nodes, read their states, move the primary coordinator role,
flush a node and make it ready.

The node daemons write their records; these verbs read them, and move the primary role only by
writing `base.config.primary_node` (a node name, or "none" for an election among the live
coordinators), which the daemons watch and act on. Flush and ready create jobs (pvc.ops.jobs)
the node's daemon runs.
"""

import time
from typing import Any

from pvc.errors import Conflict, InvalidInput, NotFound
from pvc.ops import jobs, patterns, user_input
from pvc.ops.cluster import require_initialized
from pvc.zk.handler import ZKHandler

# Node names are host names; anything else cannot be a Zookeeper path component safely.
# What a node record holds: JSON field -> schema key, in the order the records show them.
FIELDS = {
    "mode": "node.mode",
    "daemon_state": "node.state.daemon",
    "coordinator_state": "node.state.router",
    "domain_state": "node.state.domain",
    "keepalive": "node.keepalive",
    "version": "node.version",
    "static": "node.static",
    "stats": "node.stats",
    "fence_log": "node.fence_log",
}

# The jobs that move a node's VMs (one at a time per node: a new one cancels the other).
DOMAIN_JOBS = ("flush", "unflush")

# The states GET /node/<node>/<kind>-state reports.
STATE_KEYS = {
    "daemon": "node.state.daemon",
    "coordinator": "node.state.router",
    "domain": "node.state.domain",
}


def list_nodes(zk: ZKHandler, limit: str | None = None) -> list[dict[str, Any]]:
    """Every node's record, sorted by name; `limit` keeps the names containing that text."""
    if limit is not None:
        patterns.check_length(limit, "node name filter (limit)")
    require_initialized(zk)
    names = [name for name in zk.children("base.nodes") if not limit or limit in name]
    return _records(zk, names)


def info(zk: ZKHandler, name: str) -> dict[str, Any]:
    """One node's record: states, liveness, keepalive and its age, version, hardware, stats."""
    _require_node(zk, name)
    return _records(zk, [name])[0]


def state(zk: ZKHandler, name: str, kind: str) -> dict[str, Any]:
    """{"name", "state"} for the node's daemon, coordinator or domain state."""
    _require_node(zk, name)
    return {"name": name, "state": _read_registered(zk, [(STATE_KEYS[kind], name)])[0]}


def set_primary(zk: ZKHandler, name: str) -> dict[str, Any]:
    """Hands the primary role to a live, running coordinator."""
    node = info(zk, name)
    _require_coordinator(node)
    if not node["alive"]:
        raise InvalidInput(f"node '{name}' is not alive: its daemon is not connected to Zookeeper")
    if node["daemon_state"] != "run":
        raise InvalidInput(
            f"node '{name}' is not running (daemon state: {node['daemon_state'] or 'unknown'})"
        )
    primary, version = zk.read_versioned("base.config.primary_node")
    if primary == name:
        return {"message": f"node '{name}' is already primary"}
    zk.write({"base.config.primary_node": name}, expect={"base.config.primary_node": version})
    return {"message": f"primary role moving to '{name}'"}


def set_secondary(zk: ZKHandler, name: str, force: bool = False) -> dict[str, Any]:
    """Makes the primary give up its role, for another live coordinator to take over.

    Refused (Conflict) when no other coordinator is alive and running, unless `force`, which
    leaves the cluster without a primary until one is.
    """
    node = info(zk, name)
    _require_coordinator(node)
    primary, version = zk.read_versioned("base.config.primary_node")
    if primary != name:
        current = "none" if primary in (None, "none") else f"'{primary}'"
        raise InvalidInput(f"node '{name}' is not primary (primary: {current})")
    zk.catch_up()  # whether another can take over is decided on the newest states
    can_take_over = any(
        other["name"] != name and _can_be_primary(other) for other in list_nodes(zk)
    )
    if not can_take_over and not force:
        raise Conflict(
            "no other coordinator is alive to take over; "
            "use force to leave the cluster without a primary"
        )
    zk.write({"base.config.primary_node": "none"}, expect={"base.config.primary_node": version})
    after = "another coordinator takes over" if can_take_over else "the cluster has no primary"
    return {"message": f"node '{name}' is giving up the primary role; {after}"}


def _require_node(zk: ZKHandler, name: str) -> None:
    user_input.require_name(name, "node name")
    require_initialized(zk)
    if not zk.exists(("node", name)):
        zk.catch_up()
        if not zk.exists(("node", name)):
            raise NotFound(f"node '{name}' does not exist")


def _require_coordinator(node: dict[str, Any]) -> None:
    if node["mode"] != "coordinator":
        mode = "a hypervisor" if node["mode"] == "hypervisor" else f"of mode {node['mode']}"
        raise InvalidInput(f"node '{node['name']}' is {mode}, not a coordinator")


def _can_be_primary(node: dict[str, Any]) -> bool:
    return node["mode"] == "coordinator" and node["alive"] and node["daemon_state"] == "run"


# Written with the node key in the transaction that registers a node: a node the mirror shows
# without them is one whose registration it has only partly applied yet.
REGISTERED = frozenset(STATE_KEYS.values()) | {"node.mode"}


def _read_registered(zk: ZKHandler, keys: list[tuple[str, str]]) -> list[Any]:
    """The values of node keys; read again after a catch-up when a key every registered node
    has is missing (another session's registration, seen only in part so far)."""
    values = zk.read_many(keys)
    pairs = zip(keys, values, strict=True)
    if any(value is None and key in REGISTERED for (key, _), value in pairs):
        zk.catch_up()
        values = zk.read_many(keys)
    return values


def _records(zk: ZKHandler, names: list[str]) -> list[dict[str, Any]]:
    keys = list(FIELDS.values())
    values = _read_registered(zk, [(key, name) for name in names for key in keys])
    now = time.time()
    records = []
    for index, name in enumerate(names):
        stored = values[index * len(keys) : (index + 1) * len(keys)]
        record = {"name": name, **dict(zip(FIELDS, stored, strict=True))}
        record["alive"] = zk.exists(("node.alive", name))
        record["fence_log"] = record["fence_log"] or []
        keepalive = record["keepalive"]
        record["keepalive_age"] = None if keepalive is None else round(now - keepalive, 1)
        records.append(record)
    return records


def set_domain_state(zk: ZKHandler, name: str, action: str) -> dict[str, Any]:
    """Asks a node to flush (move its VMs away) or to become ready (take its VMs back).

    Either is a job its own daemon runs (pvc.node.flush), created in the transaction that sets
    the domain state (flush, or unflush for ready) and cancels the flush or unflush in progress.
    Answers {"message", "task"}: the new job's id, or the one already doing it (None when the
    node is already flushed or ready).
    """
    if action not in ("flush", "ready"):
        raise InvalidInput("the domain state action must be flush or ready")
    node = info(zk, name)
    if not node["alive"] and action == "ready":
        raise InvalidInput(f"node '{name}' is not running; it cannot take VMs back")
    fence = zk.read(("node.storage_fence", name)) if action == "ready" else None
    if fence:
        raise Conflict(
            f"node '{name}' is still storage-fenced ({fence.get('addr')} blocklisted in Ceph): "
            "its daemon lifts the fence once its old VM processes are gone; try again then"
        )
    doing, done = ("flush", "flushed") if action == "flush" else ("unflush", "ready")
    key = ("node.state.domain", name)
    current, version = zk.read_versioned(key)
    active = jobs.active(zk, DOMAIN_JOBS, name)
    same = [job["id"] for job in active if job["kind"] == doing]
    if current == done or (current == doing and same):
        return {"message": f"node '{name}' is already {current}", "task": same[0] if same else None}
    task, values = jobs.creation(doing, {"node": name}, runner=name)
    values[key] = doing
    expect = {key: version}
    for job in active:  # a new request cancels the one in progress
        cancel_values, cancel_expect, _ = jobs.cancellation(zk, job["id"])
        values |= cancel_values
        expect |= cancel_expect
    zk.write(values, expect=expect)
    verb = "flushing: its VMs move to other nodes" if doing == "flush" else "taking its VMs back"
    return {"message": f"node '{name}' {verb} (task {task})", "task": task}
