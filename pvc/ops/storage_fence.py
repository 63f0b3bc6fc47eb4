"""The storage fence: a dead node's Ceph clients are blocklisted before its VMs run elsewhere.

Each node's daemon publishes the address Ceph sees its clients come from (`node.storage_
address`, pvc.node.storage_client). Before the fence monitor recovers a dead node's VMs,
`fence` records a blocklist entry for that whole address (`IP:0/0`: every client of the node,
its QEMU processes included) in `node.storage_fence` ({addr, time}) and adds it, so a node
that only seemed dead (frozen, cut off) can never write to a volume again, even if it thaws
before its watchdog acts. The entry lasts BLOCKLIST_SECONDS (ten years): one that expired
while the node is still out would let it write again. `lift` removes entry and record; the
node's own daemon calls it once it runs again and its old QEMU processes are gone (a raw
rados client revives when its address is unblocked; librbd handles stay dead).

A fence that cannot add the entry says so and the recovery waits (the node's VMs stay where
they are, as after a failed IPMI fence; the record stays, since the monitors may have applied
the entry all the same, and the node lifts it when it is back); a node without a storage
address, or a fence monitor without Ceph, has nothing to blocklist: the recovery goes on and
the fence log says why.
"""

import logging
import time
from dataclasses import dataclass

from pvc.drivers.ceph import CephError
from pvc.drivers.contracts import CephDriver
from pvc.errors import PvcError
from pvc.zk.store import Store

log = logging.getLogger("pvc.ops.storage_fence")
BLOCKLIST_SECONDS = 10 * 365 * 24 * 3600.0


@dataclass(frozen=True)
class FenceOutcome:
    """Whether the dead node's VMs may be recovered now, and what happened, in one line."""

    may_recover: bool
    detail: str


def entry_for(address: str) -> str:
    """The blocklist entry for every client from `address` (an IP)."""
    return f"{address}:0/0"


def fence(store: Store, ceph: CephDriver | None, node: str) -> FenceOutcome:
    """Blocklists the node's storage address and records it (see the module docstring)."""
    address = store.read(("node.storage_address", node))
    if not address:
        return FenceOutcome(True, f"no storage fence: {node} has published no storage address")
    entry = entry_for(address)
    if ceph is None:
        return FenceOutcome(
            True, f"no storage fence: Ceph is not enabled on this node ({entry} not blocklisted)"
        )
    blocklist = {"prefix": "osd blocklist", "blocklistop": "add", "addr": entry,
                 "expire": BLOCKLIST_SECONDS}  # fmt: skip
    # The record comes first: a blocklist command that times out may still have been applied
    # by the monitors, and only a record gets an entry lifted when the node is back.
    try:
        store.write({("node.storage_fence", node): {"addr": entry, "time": round(time.time(), 3)}})
    except PvcError as exc:
        return FenceOutcome(False, f"storage fence failed: cannot record it: {exc.message}")
    try:
        ceph.mon_command(blocklist)
    except CephError as exc:  # the record stays: lifting an entry that is not there is harmless
        return FenceOutcome(False, f"storage fence failed: cannot blocklist {entry}: {exc.message}")
    return FenceOutcome(True, f"storage fence: {entry} blocklisted")


def lift(store: Store, ceph: CephDriver, node: str) -> str | None:
    """Removes the node's blocklist entry, then its record; what was done (None: no fence).
    CephError if Ceph cannot remove it (the record stays, to be tried again)."""
    record = store.read(("node.storage_fence", node))
    if not record:
        return None
    entry = record.get("addr") if isinstance(record, dict) else None
    if entry:
        _remove_entry(ceph, entry)
    store.delete(("node.storage_fence", node))
    return f"storage fence lifted: {entry} no longer blocklisted"


def _remove_entry(ceph: CephDriver, entry: str) -> None:
    """Removes a blocklist entry; one that is not there is fine (Ceph says so with ret 0)."""
    ceph.mon_command({"prefix": "osd blocklist", "blocklistop": "rm", "addr": entry})


def blocklisted(ceph: CephDriver) -> list[str]:
    """Every blocklist entry ("IP:port/nonce"), as Ceph lists them."""
    return [item.get("addr", "") for item in ceph.command("osd blocklist ls") or []]
