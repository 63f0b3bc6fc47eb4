"""Where VMs run: one `choose_target_node()` for define, migrate, flush and recovery.

Resource figures come from two places: the node's own keepalive (real memory and load) and the
VM records in Zookeeper (memory and vCPUs allocated to the VMs assigned to each node), which
are current the moment a VM is assigned, so placing many VMs in a row spreads them. A
`LoadTally` adds them up per node, kept current change by change (pvc.ops.allocation feeds it
from the mirror). Everything here is pure: no Zookeeper.
"""

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pvc.config import VM_SELECTORS as SELECTORS
from pvc.errors import InvalidInput

if TYPE_CHECKING:
    from pvc.config import Config

# VM states in which a VM holds memory on its node.
ACTIVE_STATES = ("start", "restart", "migrate", "shutdown", "provision")


def is_running(state: str | None, observed: dict[str, Any] | None) -> bool:
    """A VM runs, or is about to: its wanted state is an active one, or its node saw it
    running (a stop not yet carried out)."""
    return (observed or {}).get("state") == "running" or state in ACTIVE_STATES


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


@dataclass
class _VmFigures:
    """What one VM asks of its node, as last seen."""

    node: str | None = None
    state: str | None = None
    memory: int = 0  # MiB
    vcpus: int = 0


class LoadTally:
    """Every node's figures for placement, kept current one changed key at a time.

    Fed the newest value of a VM's node, state, memory or vCPUs (`set_vm`) or of a node's
    states and statistics (`set_node`), it takes the VM's old contribution off its node's
    totals and puts the new one on: a change costs O(1), a read O(nodes). Values are set,
    never added, so seeing one change twice counts it once. Thread-safe.
    """

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._vms: dict[str, _VmFigures] = {}
        self._present: set[str] = set()
        self._nodes: dict[str, dict[str, Any]] = {}  # node -> daemon_state, domain_state, stats
        # node -> [mem_allocated, mem_provisioned, vcpus_allocated, vms]
        self._totals: dict[str, list[int]] = {}

    def set_vm(self, uuid: str, field: str, value: Any) -> None:
        """One of a VM's figures: node, state, memory (MiB) or vcpus."""
        with self.lock:
            vm = self._vms.get(uuid)
            if vm is None:
                if value is None:
                    return  # a key of a removed VM going away
                vm = self._vms[uuid] = _VmFigures()
            self._count(vm, -1)
            if value is None and field in ("memory", "vcpus"):
                value = 0
            setattr(vm, field, value)
            self._count(vm, +1)

    def drop_vm(self, uuid: str) -> None:
        with self.lock:
            vm = self._vms.pop(uuid, None)
            if vm is not None:
                self._count(vm, -1)

    def set_node(self, node: str, field: str | None = None, value: Any = None) -> None:
        """Records that a node exists (no `field`), or one of its figures."""
        with self.lock:
            if field is None:
                self._present.add(node)
            elif value is not None or node in self._nodes:
                self._nodes.setdefault(node, {})[field] = value

    def drop_node(self, node: str) -> None:
        with self.lock:
            self._present.discard(node)
            self._nodes.pop(node, None)

    def _count(self, vm: _VmFigures, sign: int) -> None:
        if not vm.node:
            return
        totals = self._totals.setdefault(vm.node, [0, 0, 0, 0])
        totals[1] += sign * vm.memory
        totals[3] += sign
        if vm.state in ACTIVE_STATES:
            totals[0] += sign * vm.memory
            totals[2] += sign * vm.vcpus
        if totals[3] == 0:
            del self._totals[vm.node]

    def loads(self) -> dict[str, NodeLoad]:
        """A fresh NodeLoad for every known node."""
        with self.lock:
            return {
                name: self._load(name, self._nodes.get(name, {})) for name in sorted(self._present)
            }

    def _load(self, name: str, figures: dict[str, Any]) -> NodeLoad:
        stats = figures.get("stats") or {}
        allocated, provisioned, vcpus, vms = self._totals.get(name, (0, 0, 0, 0))
        return NodeLoad(
            name,
            figures.get("daemon_state") or "unknown",
            figures.get("domain_state") or "unknown",
            stats.get("mem_total", 0),
            stats.get("mem_free", 0),
            stats.get("load", 0.0),
            allocated,
            provisioned,
            vcpus,
            vms,
        )


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
