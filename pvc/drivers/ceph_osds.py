"""What Ceph says of one OSD: its entry in `osd dump`, and the placement groups still mapped to
it while it drains: those whose up or acting set holds it, from `pg dump pgs_brief` (`pg
ls-by-osd` refuses an OSD that is down: "osd N is not up").

A drain counts only this OSD's PGs: a PG elsewhere that peers, recovers or is stuck (e.g.
backfill_toofull on another OSD) is no reason to wait, and must not make it wait forever.
"""

from typing import Any

from pvc.drivers.contracts import CephDriver

# words of PG states moving data, and of states that will not change by waiting
MOVING = ("recover", "backfill", "peer", "activating", "remapped")
STUCK = ("toofull", "incomplete", "stale", "down", "unknown", "inactive")


def dumped_osd(ceph: CephDriver, osd_id: int) -> dict[str, Any] | None:
    """The OSD's entry in `osd dump` (with "up" and "in"); None if Ceph has no such OSD."""
    for osd in ceph.command("osd dump")["osds"]:
        if osd["osd"] == osd_id:
            return osd
    return None


def purge(ceph: CephDriver, osd_id: int, host: str) -> None:
    """Removes a stopped (or lost) OSD from Ceph: its id, key and CRUSH item; then the CRUSH
    host bucket `host` if it is now empty. Doing it again is harmless."""
    if dumped_osd(ceph, osd_id) is not None:
        # stopped, but the monitors may not have seen it yet: purge wants it down
        ceph.mon_command({"prefix": "osd down", "ids": [str(osd_id)]})
        ceph.mgr_command({"prefix": "osd purge", "id": osd_id, "yes_i_really_mean_it": True})
    for bucket in ceph.command("osd tree")["nodes"]:
        if bucket["type"] == "host" and bucket["name"] == host and not bucket.get("children"):
            ceph.mon_command({"prefix": "osd crush rm", "name": host})


def pg_stats(answer: Any) -> list[dict[str, Any]]:
    """The PG list of a `pg dump pgs_brief` answer ({"pg_stats": [...]}, or a bare list)."""
    if isinstance(answer, dict):
        answer = answer.get("pg_stats")
    return [pg for pg in answer or [] if isinstance(pg, dict)]


def on_osd(stats: list[dict[str, Any]], osd_id: int) -> list[dict[str, Any]]:
    """The PGs whose up or acting set holds the OSD."""
    return [pg for pg in stats if osd_id in pg.get("up", []) or osd_id in pg.get("acting", [])]


def stuck_states(stats: list[dict[str, Any]]) -> list[str]:
    """The distinct states of the PGs that waiting will not clear, e.g. backfill_toofull."""
    found = [pg.get("state", "") for pg in stats]
    return sorted({state for state in found if any(word in state for word in STUCK)})


def pgs_of(ceph: CephDriver, osd_id: int) -> list[dict[str, Any]]:
    """The PGs mapped to the OSD now (its up or acting set)."""
    brief = ceph.command("pg dump", dumpcontents=["pgs_brief"])
    return on_osd(pg_stats(brief), osd_id)
