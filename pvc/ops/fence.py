"""Fencing's cluster operations: a node's fence log and state, and recovery of a fenced node's VMs.

The fence monitor (pvc.node.fencing) decides when a node is dead and powers it off; what it
then writes to the cluster lives here, next to the other cluster operations.

Recovery is safe only once the dead node cannot run anything: after its BMC reported the chassis
off, or after its self-fence deadline passed. Then, for each VM:
- reported running on the dead node (`observed`): the report becomes "fenced", so a node waiting
  for that VM to be let go (a migration in flight) may start it;
- assigned to the dead node and meant to run: if it runs on another node (a migration from
  there had not finished) it stays there; otherwise it starts on the node its selector picks,
  with `lastnode` recorded so `unmigrate` or `node ready` brings it home; with no such node
  it is stopped with autostart set, to start when the node is ready again.
A VM that was shutting down is stopped. Each VM is written in one transaction guarded by the
versions read, so a user's concurrent change wins and the VM is looked at again, by the
absence of the dead node's liveness node: a daemon that registers meanwhile keeps its VMs (it
starts VMs only once registered), and by its target's allocation version (pvc.ops.allocation),
so recovery and concurrent starts cannot over-commit a node together. The node ends `flushed`.
The storage fence (pvc.ops.storage_fence) comes first: once the dead node's Ceph clients are
blocklisted, a recovered VM's QEMU takes its volumes' exclusive locks cleanly (librbd breaks
the dead owner's lock).
"""

import logging
import time
from typing import Any

from pvc.errors import ConcurrentChange, Conflict
from pvc.limits import one_line
from pvc.ops import allocation, placement
from pvc.ops import vm as vm_ops
from pvc.zk.handler import ZKHandler

log = logging.getLogger("pvc.ops.fence")
LOG_ENTRIES = 50
SHOULD_RUN = ("start", "restart", "migrate")


def record(
    zk: ZKHandler,
    node: str,
    event: str,
    detail: str,
    state: str | None = None,
    steps: list[str] | None = None,
) -> None:
    """Appends to a node's fence log (and sets its daemon state), in one transaction; `steps`:
    the timed steps of an IPMI fence. Detail and steps (a BMC's words among them) are kept on
    one line each (limits.one_line)."""
    entry: dict[str, Any] = {"time": round(time.time(), 3), "event": event,
                             "detail": one_line(detail)}  # fmt: skip
    if steps:
        entry["steps"] = [one_line(step) for step in steps]
    entries = [*(zk.read(("node.fence_log", node)) or []), entry]
    values: dict[Any, Any] = {("node.fence_log", node): entries[-LOG_ENTRIES:]}
    if state is not None:
        values[("node.state.daemon", node)] = state
    zk.write(values)
    log.warning("node %s: %s: %s", node, event, detail)


def recover_vms(zk: ZKHandler, policy: placement.Policy, dead: str) -> list[str]:
    """Restarts elsewhere what the fenced node `dead` ran; one line per VM acted on."""
    done = []
    for uuid in zk.children("base.domains"):
        for _ in range(5):  # a concurrent change: read again and retry
            try:
                line = _recover(zk, policy, dead, uuid)
                break
            except ConcurrentChange:
                if zk.exists(("node.alive", dead)):
                    return [*done, f"{dead} registered again: the rest stays with it"]
        else:
            line = f"VM {uuid}: kept changing; left as it is"
        if line:
            done.append(line)
            log.info("recovery from %s: %s", dead, line)
    zk.write({("node.state.domain", dead): "flushed"})
    return done


def _recover(zk: ZKHandler, policy: placement.Policy, dead: str, uuid: str) -> str | None:
    state, state_version = zk.read_versioned(("domain.state", uuid))
    observed, observed_version = zk.read_versioned(("domain.observed", uuid))
    name, node, lastnode = zk.read_many(
        [("domain", uuid), ("domain.node", uuid), ("domain.lastnode", uuid)]
    )
    observed = observed or {}
    values: dict[Any, Any] = {}
    expect: dict[Any, int] = {
        ("domain.state", uuid): state_version,
        ("domain.observed", uuid): observed_version,
        ("node.alive", dead): -1,  # the dead node did not come back meanwhile
    }
    if observed.get("node") == dead:
        values[("domain.observed", uuid)] = {"node": dead, "state": "fenced"}
    line = target = None
    if node == dead and state in SHOULD_RUN and name is not None:
        elsewhere = (
            observed.get("node") not in (None, dead) and observed.get("state") in vm_ops.RUNNING
        )
        if elsewhere:
            values |= {("domain.node", uuid): observed["node"], ("domain.state", uuid): "start"}
            line = f"VM {name} keeps running on {observed['node']}"
        else:
            loads, claims = allocation.claims(zk)
            target = _target(zk, policy, uuid, dead, loads)
            if target:
                values |= {
                    ("domain.node", uuid): target,
                    ("domain.lastnode", uuid): lastnode or dead,
                    ("domain.state", uuid): "start",
                }
                line = f"VM {name} starts on {target}"
            else:
                values |= {("domain.state", uuid): "stop", ("domain.node_autostart", uuid): True}
                line = f"VM {name} stopped (no node can take it); it starts when {dead} is ready"
    elif node == dead and state == "shutdown":
        values[("domain.state", uuid)] = "stop"  # it was going down, and now it is
        line = f"VM {name} stopped (it was shutting down)"
    if not values:
        return None
    if target:
        memory = zk.read(("domain.memory", uuid)) or 0
        allocation.allocate(
            zk,
            target,
            values,
            expect,
            lambda claim: _check_room(claim, policy, memory),
            claims[target],
        )
    else:
        zk.write(values, expect=expect)
    return line or f"VM {name or uuid}: released from {dead}"


def _check_room(claim: allocation.Claim, policy: placement.Policy, memory: int) -> None:
    """The target still has room, by loads as new as its allocation version; if not (another
    allocation took it meanwhile), the VM is looked at again and may go elsewhere."""
    try:
        claim.check(policy, memory)
    except Conflict as refused:
        raise ConcurrentChange(refused.message) from None


def _target(
    zk: ZKHandler,
    policy: placement.Policy,
    uuid: str,
    dead: str,
    loads: dict[str, placement.NodeLoad],
) -> str | None:
    """The node the VM's selector picks, among nodes with room for its memory."""
    limit, selector, memory = zk.read_many(
        [("domain.node_limit", uuid), ("domain.node_selector", uuid), ("domain.memory", uuid)]
    )
    room = [
        node
        for node in loads.values()
        if placement.overcommit_complaint(node, memory or 0, policy.overcommit_ratio) is None
    ]
    return placement.choose_target_node(room, selector or policy.selector, limit or None, (dead,))
