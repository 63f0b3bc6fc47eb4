"""Placement against the cluster's state: every node's load, the node a VM goes to, and
whether a node has room for more memory.

Pure placement rules (selectors, over-commit) live in pvc.ops.placement; this module feeds
them the cluster's figures.
"""

from typing import Any

from pvc.errors import Conflict, InvalidInput, NotFound
from pvc.ops import placement
from pvc.ops.placement import Policy
from pvc.zk.handler import ZKHandler


def node_loads(zk: ZKHandler) -> dict[str, placement.NodeLoad]:
    """Every node's figures for placement: its keepalive plus the VMs assigned to it."""
    names = zk.children("base.nodes")
    keys = ("node.state.daemon", "node.state.domain", "node.stats")
    values = zk.read_many([(key, name) for name in names for key in keys])
    nodes = {}
    for index, name in enumerate(names):
        daemon, domain, stats = values[index * 3 : index * 3 + 3]
        stats = stats or {}
        nodes[name] = placement.NodeLoad(
            name,
            daemon or "unknown",
            domain or "unknown",
            stats.get("mem_total", 0),
            stats.get("mem_free", 0),
            stats.get("load", 0.0),
        )
    placement.add_vm_loads(nodes, vm_loads(zk))
    return nodes


def vm_loads(zk: ZKHandler) -> list[placement.VmLoad]:
    uuids = zk.children("base.domains")
    keys = ("domain.node", "domain.state", "domain.memory", "domain.vcpus")
    values = zk.read_many([(key, uuid) for uuid in uuids for key in keys])
    return [
        placement.VmLoad(values[i * 4] or "", values[i * 4 + 1] or "", values[i * 4 + 2] or 0,
                         values[i * 4 + 3] or 0)
        for i in range(len(uuids))
    ]  # fmt: skip


def target(
    zk: ZKHandler,
    policy: Policy,
    record: dict[str, Any],
    requested: str | None,
    exclude: tuple[str, ...] = (),
) -> str:
    """The node a VM should go to: the requested one (checked) or the selector's choice."""
    nodes = node_loads(zk)
    limit = record["node_limit"] or None
    if requested:
        node = nodes.get(requested)
        if node is None:
            raise NotFound(f"node '{requested}' does not exist")
        if limit and requested not in limit:
            raise InvalidInput(
                f"node {requested} is outside the VM's node limit ({', '.join(limit)})"
            )
        if not node.usable:
            raise InvalidInput(
                f"node {requested} cannot take VMs: daemon {node.daemon_state}, "
                f"domain state {node.domain_state} (needs run and ready)"
            )
        if requested in exclude:
            raise InvalidInput(f"the VM is already on node {requested}")
        return requested
    selector = record["node_selector"] or policy.selector
    chosen = placement.choose_target_node(nodes.values(), selector, limit, exclude)
    if chosen is None:
        raise InvalidInput("no node in run and ready state can take the VM")
    return chosen


def check_memory(zk: ZKHandler, policy: Policy, node: str, memory: int) -> None:
    complaint = placement.overcommit_complaint(
        node_loads(zk)[node], memory, policy.overcommit_ratio
    )
    if complaint:
        raise Conflict(f"refused: {complaint}")
