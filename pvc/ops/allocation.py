"""Placement against the cluster's state: every node's load, the node a VM goes to, and the
guarded allocation of memory to a node.

Loads: a store backed by a mirror (pvc.zk.cache.CachedView) has one `LoadTally` per mirror,
fed by the mirror's listener, so a verb reads every node's figures from memory in O(nodes)
instead of reading four keys of every VM; a plain ZKHandler reads them from Zookeeper, once
per verb.

Guarded allocation: every verb that puts memory to use on a node (start; migrate, move and
unmigrate of a running VM; modify with restart; fence recovery) takes a `Claim` on it: the
version of the node's `node.allocation` key, read from Zookeeper, then the node's loads at
least that new (the mirror synced, or read afresh). It checks the over-commit ratio against
those loads and writes its change plus a bump of that key in ONE transaction expecting the
version: of two allocations to one node that both passed their check, the second's
transaction fails, and it checks again (`retrying`) against loads that include the first.
Within a process, claims on one node take turns (`allocate`) instead of racing.
"""

import random
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from pvc.errors import ConcurrentChange, Conflict, InvalidInput, NotFound, Unavailable
from pvc.ops import placement
from pvc.ops.placement import LoadTally, NodeLoad, Policy
from pvc.zk import schema
from pvc.zk.handler import ZKHandler

T = TypeVar("T")
# A verb that lost a race (ConcurrentChange) runs again from the start this many times in all.
ATTEMPTS = 8
RETRY_PAUSE = 0.005  # seconds; a random pause up to this times the attempt number

# What a tally follows: schema key -> LoadTally field (VM keys and node keys).
VM_KEYS = {"domain.node": "node", "domain.state": "state", "domain.memory": "memory",
           "domain.vcpus": "vcpus"}  # fmt: skip
NODE_KEYS = {"node.state.daemon": "daemon_state", "node.state.domain": "domain_state",
             "node.stats": "stats"}  # fmt: skip


def _routes() -> dict[tuple[str, str | None], str]:
    """(first path component, last one or None) -> schema key, for the keys a tally follows:
    all are /<root>/<name> or /<root>/<name>/<leaf>."""
    routes = {}
    for key in ("domain", *VM_KEYS, "node", *NODE_KEYS):
        parts = schema.KEYS[key][0].strip("/").split("/")
        routes[(parts[0], parts[2] if len(parts) == 3 else None)] = key
    return routes


_ROUTES = _routes()
_GROUPS = (("base.nodes", "node", NODE_KEYS), ("base.domains", "domain", VM_KEYS))
_TALLIES: "weakref.WeakKeyDictionary[Any, LoadTally]" = weakref.WeakKeyDictionary()
_TALLIES_LOCK = threading.Lock()
_NODE_LOCKS: dict[str, threading.Lock] = {}
_NODE_LOCKS_LOCK = threading.Lock()


def _feed(tally: LoadTally, key: str, name: str, value: Any, removed: bool = False) -> None:
    """One key's new value (or its removal) into the tally."""
    if key == "domain":
        if removed:
            tally.drop_vm(name)
    elif key == "node":
        if removed:
            tally.drop_node(name)
        else:
            tally.set_node(name)
    elif key in VM_KEYS:
        tally.set_vm(name, VM_KEYS[key], value)
    else:
        tally.set_node(name, NODE_KEYS[key], value)


def _listener(tally: LoadTally) -> Callable[[str, bytes | None], None]:
    def on_change(path: str, data: bytes | None) -> None:
        parts = path.strip("/").split("/")
        if len(parts) not in (2, 3):
            return
        key = _ROUTES.get((parts[0], parts[2] if len(parts) == 3 else None))
        if key is not None:
            value = None if data is None else schema.decode(data, schema.kind(key))
            _feed(tally, key, parts[1], value, removed=data is None)

    return on_change


def _read_into(tally: LoadTally, zk: ZKHandler) -> LoadTally:
    """Every node's and VM's figures, read through `zk` (in bulk), into `tally`."""
    for root, name_key, keys in _GROUPS:
        names = zk.children(root)
        values = zk.read_many([(key, name) for name in names for key in keys])
        for index, name in enumerate(names):
            _feed(tally, name_key, name, None)
            for offset, key in enumerate(keys):
                _feed(tally, key, name, values[index * len(keys) + offset])
    return tally


def _tally_of(zk: ZKHandler) -> LoadTally | None:
    """The tally kept current from `zk`'s mirror (made on first use), or None without one."""
    mirror = getattr(zk, "mirror", None)
    if mirror is None:
        return None
    with _TALLIES_LOCK:
        tally = _TALLIES.get(mirror)
        if tally is None:
            tally = LoadTally()
            # Held while seeding: changes arriving meanwhile wait, then set their newer values.
            with tally.lock:
                mirror.listen(_listener(tally))
                _read_into(tally, zk)
            _TALLIES[mirror] = tally
    return tally


def node_loads(zk: ZKHandler) -> dict[str, NodeLoad]:
    """Every node's figures for placement: its keepalive plus the VMs assigned to it."""
    tally = _tally_of(zk)
    return (tally or _read_into(LoadTally(), zk)).loads()


def retrying(verb: Callable[[], T]) -> T:
    """`verb()`, run again (after a short random pause) when it lost a race: it reads, checks
    and writes anew; the last of ATTEMPTS stands, a ConcurrentChange (a Conflict) included."""
    for attempt in range(1, ATTEMPTS):
        try:
            return verb()
        except ConcurrentChange:
            time.sleep(random.uniform(0, RETRY_PAUSE * attempt))
    return verb()


@dataclass(frozen=True)
class Claim:
    """A node's allocation version and every node's loads, at least that new."""

    node: str
    version: int
    loads: dict[str, NodeLoad]

    def check(self, policy: Policy, memory: int) -> None:
        """Refuses (Conflict) if `memory` MiB more would over-commit the node (NotFound if it
        does not exist)."""
        if self.node not in self.loads:
            raise NotFound(f"node '{self.node}' does not exist")
        complaint = placement.overcommit_complaint(
            self.loads[self.node], memory, policy.overcommit_ratio
        )
        if complaint:
            raise Conflict(f"refused: {complaint}")


def allocate(
    zk: ZKHandler,
    node: str,
    values: dict[Any, Any],
    expect: dict[Any, int],
    check: Callable[[Claim], None],
    claim: Claim | None = None,
) -> None:
    """Writes `values` (expecting `expect`) and the bump of `node`'s allocation version in ONE
    transaction, once `check(claim)` passed on loads at least as new as that version (`claim`:
    one made already, by `claims`). Allocations to one node in this process take turns (they
    would only make each other retry); those from other processes meet at the version check
    (ConcurrentChange)."""
    with _NODE_LOCKS_LOCK:
        lock = _NODE_LOCKS.setdefault(node, threading.Lock())
    with lock:
        claim = claim or Claim(node, _version(zk, node), _loads_since(zk))
        check(claim)
        key = ("node.allocation", node)
        zk.write({**values, key: claim.version + 1}, expect={**expect, key: claim.version})


def claims(zk: ZKHandler) -> tuple[dict[str, NodeLoad], dict[str, Claim]]:
    """Every node's loads and a claim on every node, from one read of the loads: for a verb
    that chooses its node from the loads it checks."""
    versions = {node: _version(zk, node) for node in zk.children("base.nodes")}
    loads = {node: load for node, load in _loads_since(zk).items() if node in versions}
    return loads, {node: Claim(node, version, loads) for node, version in versions.items()}


def _version(zk: ZKHandler, node: str) -> int:
    """The node's allocation version, from Zookeeper (-1: never allocated to)."""
    return zk.read_versioned(("node.allocation", node))[1]


def _loads_since(zk: ZKHandler) -> dict[str, NodeLoad]:
    """Every node's loads, at least as new as any version read from Zookeeper before."""
    mirror = getattr(zk, "mirror", None)
    if mirror is not None and not mirror.sync():
        raise Unavailable("the cluster state in memory is not current yet; try again")
    return node_loads(zk)


def target(
    zk: ZKHandler,
    policy: Policy,
    record: dict[str, Any],
    requested: str | None,
    exclude: tuple[str, ...] = (),
) -> str:
    """The node a VM should go to: the requested one (checked) or the selector's choice.

    A refusal is made only from figures caught up with Zookeeper: the in-memory copy may not
    show yet a node another session registered (or made ready) just before."""
    try:
        return _target(node_loads(zk), policy, record, requested, exclude)
    except (NotFound, InvalidInput):
        zk.catch_up()
        return _target(node_loads(zk), policy, record, requested, exclude)


def _target(
    nodes: dict[str, NodeLoad],
    policy: Policy,
    record: dict[str, Any],
    requested: str | None,
    exclude: tuple[str, ...],
) -> str:
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
