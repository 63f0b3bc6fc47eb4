"""The storage statistics collector: the primary asks Ceph how it is and records it.

Its shape: a primary-only controller (pvc.node.controller) with one key, started on takeover
and stopped on relinquish by the primary's registry (pvc.node.primary_services); its resync
names that key every `timers.keepalive_interval`, so a collection runs once per interval
(back to back when Ceph is slower than that). Registered only where `ceph.enabled`.

One collection: seven monitor commands through the driver (status, osd dump, osd tree, df
detail, then the manager's osd df, pg dump pools, osd status), each bounded by
`ceph.timeout`, turned into
pvc's records by pvc.ops.ceph_stats: `ceph.status`, `ceph.util`, `osd.stats` for every OSD
with an `osd` record and `pool.stats` for every pool with a `pool` record (other verbs make
and remove those records; this collector is the only writer of these keys). Only values that
differ from what the mirror holds are written, with `ceph.updated` (this node's clock), in ONE
transaction; readers (pvc.ops.storage_status) tell stale data by that time. Each stats key
is written with a version check of its record, so a record removed meanwhile is never made
again by a stats write (the transaction fails; the next interval writes what is left).
A change larger than CHUNK_BYTES (thousands of OSDs and pools all changing at once) goes in
several transactions of at most that size, the stats first, then `ceph.status`, `ceph.util`
and `ceph.updated`.

Ceph not answering within `ceph.timeout` (CephUnavailable): `ceph.status` becomes
{"health": "unreachable", "error": ..., "since": ...}; the last utilisation and stats stay.
Only the manager not answering: the status and utilisation are written, the status with its
`manager_error`, and the last OSD and pool stats stay.

Acting only while this node holds the primary lease (as the fence monitor does): a collector
still running after a relinquish writes nothing.
"""

import logging
import time
from dataclasses import dataclass
from typing import Any

from pvc.config import Config
from pvc.drivers.ceph import Ceph, CephError, CephUnavailable
from pvc.errors import ConcurrentChange, PvcError
from pvc.limits import TRANSACTION_MAX
from pvc.node.controller import Controller
from pvc.node.lease import PrimaryLease
from pvc.ops import ceph_stats
from pvc.zk import schema
from pvc.zk.cache import CachedView
from pvc.zk.handler import resolve
from pvc.zk.schema import Key

log = logging.getLogger("pvc.node.storage_stats")
KEY = "ceph"  # the controller's one key
CHUNK_BYTES = TRANSACTION_MAX // 2  # one transaction's share of changed stats
WRITE_OVERHEAD = 64  # bytes a set or check adds to a transaction beyond its path and value


@dataclass(frozen=True)
class Collection:
    """What one collection did (for logs and scripts/bench/storage_status_cost)."""

    seconds_ceph: float  # asking Ceph and building the records
    seconds_write: float  # writing the changes to Zookeeper
    keys: int  # keys collected
    written: int  # keys written (changed ones, and ceph.updated)
    bytes: int  # their paths and values
    transactions: int
    reachable: bool


def write_size(key: Key, value: Any) -> int:
    """Bytes `key` = `value` adds to a transaction (its path, its value, the framing)."""
    path, kind = resolve(key)
    return len(path) + len(schema.encode(value, kind)) + WRITE_OVERHEAD


def chunks(values: dict[Key, Any], limit: int = CHUNK_BYTES) -> list[dict[Key, Any]]:
    """`values` in groups of at most `limit` bytes, in their order (a value larger than
    `limit` goes alone)."""
    groups: list[dict[Key, Any]] = [{}]
    size = 0
    for key, value in values.items():
        cost = write_size(key, value)
        if groups[-1] and size + cost > limit:
            groups.append({})
            size = 0
        groups[-1][key] = value
        size += cost
    return groups


class StorageStats:
    """The collector; a PrimaryService (name, start, stop, running) for the registry."""

    name = "storage statistics"

    def __init__(self, view: CachedView, config: Config, lease: PrimaryLease, ceph: Ceph) -> None:
        self.view = view
        self.lease = lease
        self.ceph = ceph
        self.controller = Controller(
            "storage-stats",
            self._step,
            resync=lambda: [KEY],
            resync_interval=config.get("timers.keepalive_interval"),
        )

    def start(self) -> None:
        self.controller.start()

    def stop(self) -> None:
        self.controller.stop(timeout=0)  # a collection in progress finds the lease gone

    def running(self) -> bool:
        return self.controller.running()

    def _step(self, _key: str) -> None:
        if self.lease.valid() and self.view.mirror.loaded:
            self.collect_and_write()

    # --- one collection -----------------------------------------------------------------------

    def collect_and_write(self) -> Collection:
        started = time.monotonic()
        try:
            values = self.collect()
            reachable = True
        except CephUnavailable as exc:
            values = {"ceph.status": self._unreachable(exc.message)}
            reachable = False
        collected = time.monotonic()
        self._log_change(self.view.read("ceph.status") or {}, values["ceph.status"])
        written, size, transactions = self.write(values)
        return Collection(
            collected - started,
            time.monotonic() - collected,
            len(values),
            written,
            size,
            transactions,
            reachable,
        )

    def collect(self) -> dict[Key, Any]:
        """Every record, as Ceph answers now (CephUnavailable when the monitors do not).

        The monitors answer status, osd dump, osd tree and df themselves; osd df, pg dump
        and osd status are the manager's. A manager that does not answer (down, or failing
        over) leaves the status and utilisation collected, saying so in the status's
        `manager_error`, and the last OSD and pool stats as they were."""
        command = self.ceph.command
        status = command("status")
        osd_dump = command("osd dump")
        osd_tree = command("osd tree")
        df = command("df", detail="detail")
        values: dict[Key, Any] = {"ceph.util": ceph_stats.utilization(df)}
        try:
            osd_df = command("osd df")
            pg_pools = command("pg dump", dumpcontents=["pools"])
            osd_status = command("osd status")  # a table: Pacific has no JSON form of it
        except CephError as exc:
            values["ceph.status"] = ceph_stats.cluster_status(
                status, osd_dump, osd_tree, manager_error=exc.message
            )
            return values
        rates = ceph_stats.osd_io_rates(osd_status if isinstance(osd_status, str) else "")
        osds = self.view.children("base.ceph.osds")
        pools = self.view.children("base.ceph.pools")
        for osd, stats in ceph_stats.osd_stats(osds, osd_dump, osd_df, osd_tree, rates).items():
            values[("osd.stats", osd)] = stats
        for pool, stats in ceph_stats.pool_stats(pools, df, osd_dump, pg_pools).items():
            values[("pool.stats", pool)] = stats
        values["ceph.status"] = ceph_stats.cluster_status(status, osd_dump, osd_tree)
        return values

    @staticmethod
    def _log_change(before: dict[str, Any], now: dict[str, Any]) -> None:
        """Logs Ceph or its manager ceasing or starting again to answer (not every interval)."""
        for field, what in (("error", "Ceph"), ("manager_error", "Ceph's manager")):
            if now.get(field) and not before.get(field):
                log.warning("%s does not answer: %s", what, now[field])
            elif before.get(field) and not now.get(field):
                log.info("%s answers again", what)

    def _unreachable(self, error: str) -> dict[str, Any]:
        """The unreachable status, since the first collection that found Ceph so (kept
        across primaries: it is read back from the tree)."""
        previous = self.view.read("ceph.status") or {}
        since = previous.get("since") if previous.get("health") == "unreachable" else None
        return ceph_stats.unreachable(error, since or time.time())

    def write(self, values: dict[Key, Any]) -> tuple[int, int, int]:
        """Writes what changed, and the time; returns (keys, bytes, transactions) written."""
        changed = {key: value for key, value in values.items() if self.view.read(key) != value}
        records = {
            ("osd", key[1]) if key[0] == "osd.stats" else ("pool", key[1]): key
            for key in changed
            if isinstance(key, tuple)
        }
        versions = self.view.zk.versions(records)
        for record, key in records.items():
            if record not in versions:
                del changed[key]  # removed since the collection began
        # the stats first, the cluster-wide keys and the time last (and so in the last
        # transaction when the change is too large for one)
        ordered = sorted(changed.items(), key=lambda item: not isinstance(item[0], tuple))
        groups = chunks({**dict(ordered), "ceph.updated": time.time()})
        written = size = 0
        for group in groups:
            expect = {record: versions[record] for record, key in records.items() if key in group}
            if not self.lease.valid():
                break
            try:
                self.view.write(group, expect=expect)
            except ConcurrentChange:
                log.info("a storage record changed while its statistics were written")
                continue
            except PvcError as exc:
                log.warning("could not record the storage statistics: %s", exc.message)
                break
            written += len(group)
            size += sum(write_size(key, value) for key, value in group.items())
        return written, size, len(groups)
