"""What the primary's collector (pvc.node.storage_stats) last recorded about Ceph, read from
memory, with how fresh it is: the answers of GET /storage, /storage/ceph/status and
/storage/ceph/utilization.

Freshness, from `ceph.updated` (the collecting primary's clock) against this process's clock:
- "current": collected within STALE_INTERVALS keepalive intervals plus one `ceph.timeout`
  (a collection may wait that long for Ceph);
- "stale": older: no primary is collecting (none has Ceph enabled, or it is stuck);
- "absent": never collected (Ceph not enabled on any coordinator, or a new cluster).
A Ceph that does not answer is not stale: the collector records `health: unreachable` with
its reason. Clocks of the nodes are assumed to agree within a few seconds (NTP).
"""

import time
from typing import Any

from pvc.config import Config
from pvc.zk.store import Store

STALE_INTERVALS = 3


def stale_after(config: Config) -> float:
    """Seconds after which recorded statistics count as stale."""
    return STALE_INTERVALS * config.get("timers.keepalive_interval") + config.get("ceph.timeout")


def freshness(zk: Store, config: Config) -> dict[str, Any]:
    """{"freshness", "updated", "age", "message"} of the recorded statistics."""
    updated = zk.read("ceph.updated")
    if updated is None:
        return {
            "freshness": "absent",
            "updated": None,
            "age": None,
            "message": "no Ceph status has been collected: Ceph is not enabled on the "
            "coordinators (ceph.enabled), or the primary has not collected it yet",
        }
    age = max(0.0, time.time() - updated)
    if age > stale_after(config):
        return {
            "freshness": "stale",
            "updated": updated,
            "age": round(age, 1),
            "message": f"the Ceph status is {age:.0f} s old: no primary is collecting it "
            "(is Ceph enabled on the primary coordinator?)",
        }
    return {"freshness": "current", "updated": updated, "age": round(age, 1), "message": None}


def status(zk: Store, config: Config) -> dict[str, Any]:
    """GET /storage/ceph/status: the recorded `ceph.status` and its freshness."""
    return {**freshness(zk, config), "status": zk.read("ceph.status")}


def utilization(zk: Store, config: Config) -> dict[str, Any]:
    """GET /storage/ceph/utilization: the recorded `ceph.util` and its freshness."""
    return {**freshness(zk, config), "utilization": zk.read("ceph.util")}


def summary(zk: Store, config: Config) -> dict[str, Any]:
    """GET /storage: health, OSD and PG counts, raw usage, and what pvc has records of."""
    recorded = zk.read("ceph.status") or {}
    util = zk.read("ceph.util") or {}
    pgs = recorded.get("pgs") or {}
    return {
        **freshness(zk, config),
        "health": recorded.get("health"),
        "error": recorded.get("error"),
        "checks": sorted(recorded.get("checks") or {}),
        "osd_count": recorded.get("osd_count"),
        "pgs": {
            "total": pgs.get("total"),
            "active_clean": (pgs.get("states") or {}).get("active+clean"),
        }
        if pgs
        else None,
        "raw": util.get("raw"),
        "records": {
            "osds": len(zk.children("base.ceph.osds")),
            "pools": len(zk.children("base.ceph.pools")),
            "volumes": sum(
                len(zk.children(("volumes.pool", pool)))
                for pool in zk.children("base.ceph.volumes")
            ),
        },
    }
