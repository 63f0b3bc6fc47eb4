"""Where VMs run: one `choose_target_node()` for define, migrate, flush and recovery.

Resource figures come from two places: the node's own keepalive (real memory and load) and the
VM records in Zookeeper (memory and vCPUs allocated to the VMs assigned to each node), which
are current the moment a VM is assigned, so placing many VMs in a row spreads them.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pvc.config import VM_SELECTORS as SELECTORS
from pvc.errors import InvalidInput

if TYPE_CHECKING:
    from pvc.config import Config

# VM states in which a VM holds memory on its node.
ACTIVE_STATES = ("start", "restart", "migrate", "shutdown", "provision")


@dataclass
class NodeLoad:
    """One node as placement sees it."""

    name: str
    daemon_state: str = "run"
    domain_state: str = "ready"
    mem_total: int = 0  # MiB
    mem_free: int = 0  # MiB, as the node measured it
    load: float = 0.0
    mem_allocated: int = 0  # MiB of its active VMs
    mem_provisioned: int = 0  # MiB of all VMs assigned to it
    vcpus_allocated: int = 0
    vms: int = 0

    @property
    def usable(self) -> bool:
        """It may take VMs: running, and ready (or taking its own VMs back)."""
        return self.daemon_state == "run" and self.domain_state in ("ready", "unflush")


@dataclass(frozen=True)
class VmLoad:
    """What one VM asks of its node."""

    node: str
    state: str
    memory: int  # MiB
    vcpus: int


def add_vm_loads(nodes: dict[str, NodeLoad], vms: Iterable[VmLoad]) -> None:
    for vm in vms:
        node = nodes.get(vm.node)
        if node is None:
            continue
        node.mem_provisioned += vm.memory
        node.vms += 1
        if vm.state in ACTIVE_STATES:
            node.mem_allocated += vm.memory
            node.vcpus_allocated += vm.vcpus


def _score(node: NodeLoad, selector: str) -> float:
    """Lower is better."""
    if selector == "mem":
        return -node.mem_free
    if selector == "memprov":
        return -(node.mem_total - node.mem_provisioned)
    if selector == "load":
        return node.load
    if selector == "vcpus":
        return node.vcpus_allocated
    return node.vms


def check_selector(selector: str) -> str:
    if selector not in SELECTORS:
        raise InvalidInput(f"unknown node selector '{selector}' (use {', '.join(SELECTORS)})")
    return selector


def candidates(
    nodes: Iterable[NodeLoad], limit: list[str] | None = None, exclude: Iterable[str] = ()
) -> list[NodeLoad]:
    """Nodes a VM may go to: in run and ready, inside its node limit, not excluded."""
    excluded = set(exclude)
    return [
        node
        for node in nodes
        if node.usable and node.name not in excluded and (not limit or node.name in limit)
    ]


def choose_target_node(
    nodes: Iterable[NodeLoad],
    selector: str,
    limit: list[str] | None = None,
    exclude: Iterable[str] = (),
) -> str | None:
    """The best node for a VM by `selector`, or None if no node qualifies (ties: by name)."""
    check_selector(selector)
    usable = candidates(nodes, limit, exclude)
    if not usable:
        return None
    return min(usable, key=lambda node: (_score(node, selector), node.name)).name


def overcommit_complaint(node: NodeLoad, memory: int, ratio: float) -> str | None:
    """Why starting `memory` MiB more on `node` would over-commit it, or None if it fits."""
    limit = node.mem_total * ratio
    wanted = node.mem_allocated + memory
    if wanted <= limit:
        return None
    return (
        f"node {node.name} would have {wanted} MiB allocated to VMs, more than its "
        f"{node.mem_total} MiB x {ratio:g} = {int(limit)} MiB"
    )


def survives_largest_node_loss(nodes: Iterable[NodeLoad], ratio: float) -> dict:
    """N+1: could every active VM still run if the largest usable node were lost?"""
    usable = [node for node in nodes if node.usable]
    allocated = sum(node.mem_allocated for node in usable)
    if not usable:
        return {"ok": allocated == 0, "allocated": allocated, "capacity_without_largest": 0}
    largest = max(usable, key=lambda node: node.mem_total)
    capacity = sum(node.mem_total for node in usable if node is not largest) * ratio
    return {
        "ok": allocated <= capacity,
        "allocated": allocated,
        "capacity_without_largest": int(capacity),
        "largest_node": largest.name,
    }


@dataclass(frozen=True)
class Policy:
    """Cluster-wide VM settings from the configuration."""

    selector: str = "mem"
    overcommit_ratio: float = 1.0

    @classmethod
    def from_config(cls, config: "Config") -> "Policy":
        return cls(config.get("vm.default_selector"), config.get("vm.memory_overcommit_ratio"))
