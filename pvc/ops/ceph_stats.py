"""Ceph's monitor answers (JSON of `ceph status`, `df detail`, `osd dump`, `osd df`, `osd
tree`, `pg dump pools` and the text of `osd status`) as the records pvc keeps in Zookeeper.

Pure functions, no I/O: the primary's collector (pvc.node.storage_stats) asks Ceph and
writes what these return. Every record is small and flat, named in pvc's words (bytes are
`*_bytes`, shares of 100 are `*_percent`, as an OSD's `utilization` is), and holds only what
pvc shows, so that for 1,000 OSDs and 1,000 pools each value stays far below one Zookeeper
transaction (pvc.zk.write_limit): about 120 bytes per OSD in `ceph.status` and 210 per pool
in `ceph.util` (with 50-character names), under 500 bytes per `osd.stats` and `pool.stats`.

Ceph leaves out what is zero (client I/O rates, recovery counters), and an OSD that is down
may be missing from `osd df` or have no host in `osd status`: those read as 0 or None.
"""

from collections.abc import Iterable
from typing import Any

from pvc.limits import one_line

PERCENT_DIGITS = 2  # decimals kept of a percentage
SUMMARY_MAX = 300  # characters of one health check's summary kept in ceph.status
# OSD map flags every Pacific cluster has set: only the others (noout, ...) are shown
STANDING_FLAGS = frozenset(
    ("sortbitwise", "recovery_deletes", "purged_snapdirs", "pglog_hardlimit")
)


def _number(value: Any, default: float | int = 0) -> Any:
    return value if isinstance(value, int | float) and not isinstance(value, bool) else default


def _percent(ratio: Any) -> float:
    """A ratio 0..1 as a percentage, rounded: a change in the last digits of a float is no
    reason to write a value again."""
    return round(100 * float(_number(ratio)), PERCENT_DIGITS)


def crush_hosts(osd_tree: dict[str, Any]) -> dict[int, str]:
    """OSD id -> the CRUSH host bucket it sits in (`osd tree`)."""
    hosts = {}
    for node in osd_tree.get("nodes", ()):
        if node.get("type") == "host":
            for child in node.get("children", ()):
                hosts[child] = node.get("name")
    return hosts


def crush_weights(osd_tree: dict[str, Any]) -> dict[int, float]:
    """OSD id -> its CRUSH weight (TiB of capacity, as `ceph osd tree` shows it)."""
    return {
        node["id"]: float(_number(node.get("crush_weight")))
        for node in osd_tree.get("nodes", ())
        if node.get("type") == "osd"
    }


def cluster_status(
    status: dict[str, Any],
    osd_dump: dict[str, Any],
    osd_tree: dict[str, Any],
    manager_error: str | None = None,
) -> dict[str, Any]:
    """`ceph.status`: health and its checks, monitors, OSDs (counts and each one), flags,
    placement groups by state, client I/O and recovery; `manager_error` when the manager did
    not answer (the OSD and pool stats were not collected)."""
    health = status.get("health", {})
    checks = {
        name: {
            "severity": check.get("severity"),
            "summary": one_line(str(check.get("summary", {}).get("message", "")), SUMMARY_MAX),
            "count": check.get("summary", {}).get("count"),
        }
        for name, check in sorted(health.get("checks", {}).items())
    }
    hosts, weights = crush_hosts(osd_tree), crush_weights(osd_tree)
    osds = {
        str(osd["osd"]): {
            "up": bool(osd.get("up")),
            "in": bool(osd.get("in")),
            "host": hosts.get(osd["osd"]),
            "weight": weights.get(osd["osd"], 0.0),
        }
        for osd in osd_dump.get("osds", ())
    }
    pgmap = status.get("pgmap", {})
    return {
        "health": health.get("status"),
        "manager_error": None if manager_error is None else one_line(manager_error),
        "checks": checks,
        "fsid": status.get("fsid"),
        "monitors": {
            "total": status.get("monmap", {}).get("num_mons"),
            "quorum": list(status.get("quorum_names", ())),
        },
        "osd_count": {
            "total": len(osds),
            "up": sum(osd["up"] for osd in osds.values()),
            "in": sum(osd["in"] for osd in osds.values()),
        },
        "osds": osds,
        "flags": sorted(set(osd_dump.get("flags_set", ())) - STANDING_FLAGS),
        "pgs": {
            "total": pgmap.get("num_pgs", 0),
            "states": {
                entry["state_name"]: entry["count"] for entry in pgmap.get("pgs_by_state", ())
            },
        },
        "io": {
            name: _number(pgmap.get(name))
            for name in ("read_bytes_sec", "write_bytes_sec", "read_op_per_sec", "write_op_per_sec")
        },
        "recovery": {
            name: _number(pgmap.get(name))
            for name in (
                "degraded_objects",
                "degraded_total",
                "misplaced_objects",
                "unfound_objects",
                "recovering_bytes_per_sec",
            )
        },
    }


def _pool_usage(stats: dict[str, Any]) -> dict[str, Any]:
    return {
        "stored_bytes": _number(stats.get("stored")),
        "used_bytes": _number(stats.get("bytes_used")),
        "max_avail_bytes": _number(stats.get("max_avail")),
        "used_percent": _percent(stats.get("percent_used")),  # Ceph's: a ratio
        "objects": _number(stats.get("objects")),
    }


def utilization(df: dict[str, Any]) -> dict[str, Any]:
    """`ceph.util`: raw capacity (in all and per device class) and every pool's usage."""

    def raw(stats: dict[str, Any]) -> dict[str, Any]:
        return {
            "total_bytes": _number(stats.get("total_bytes")),
            "used_bytes": _number(stats.get("total_used_raw_bytes")),
            "avail_bytes": _number(stats.get("total_avail_bytes")),
            "used_percent": _percent(stats.get("total_used_raw_ratio")),
        }

    return {
        "raw": raw(df.get("stats", {})),
        "classes": {name: raw(stats) for name, stats in df.get("stats_by_class", {}).items()},
        "pools": {
            pool["name"]: {"id": pool["id"], **_pool_usage(pool.get("stats", {}))}
            for pool in df.get("pools", ())
        },
    }


def pool_stats(
    pools: Iterable[str],
    df: dict[str, Any],
    osd_dump: dict[str, Any],
    pg_dump_pools: dict[str, Any] | list[Any],
) -> dict[str, dict[str, Any]]:
    """`pool.stats` for each pool of `pools` (those pvc has a record of) that Ceph has: usage,
    object counts (degraded, misplaced, unfound), I/O counters, size, min_size, pg_num."""
    usage = {pool["name"]: pool for pool in df.get("pools", ())}
    settings = {pool["pool_name"]: pool for pool in osd_dump.get("pools", ())}
    entries = pg_dump_pools.get("pool_stats", ()) if isinstance(pg_dump_pools, dict) else ()
    sums = {entry["poolid"]: entry.get("stat_sum", {}) for entry in entries}
    result = {}
    for name in pools:
        if name not in usage or name not in settings:
            continue
        stats, pool = usage[name].get("stats", {}), settings[name]
        objects = sums.get(pool["pool"], {})
        result[name] = {
            "id": pool["pool"],
            **_pool_usage(stats),
            "degraded_objects": _number(objects.get("num_objects_degraded")),
            "misplaced_objects": _number(objects.get("num_objects_misplaced")),
            "unfound_objects": _number(objects.get("num_objects_unfound")),
            "read_ops": _number(stats.get("rd")),
            "read_bytes": _number(stats.get("rd_bytes")),
            "write_ops": _number(stats.get("wr")),
            "write_bytes": _number(stats.get("wr_bytes")),
            "size": pool.get("size"),
            "min_size": pool.get("min_size"),
            "pg_num": pool.get("pg_num"),
        }
    return result


# `ceph osd status` has no JSON form in Pacific: its table's columns, per OSD row.
OSD_STATUS_COLUMNS = ("used", "avail", "write_ops_sec", "write_bytes_sec", "read_ops_sec",
                      "read_bytes_sec")  # fmt: skip
_SUFFIXES = {"": 0, "k": 1, "M": 2, "G": 3, "T": 4, "P": 5, "E": 6}


def _unit_number(text: str, factor: int) -> int | None:
    """A number as the manager's format_units writes it ("0", "1.2k", "290M"), whole."""
    suffix = text[-1] if text and text[-1] in _SUFFIXES else ""
    try:
        value = float(text[: len(text) - len(suffix)])
    except ValueError:
        return None
    return round(value * factor ** _SUFFIXES[suffix])


def osd_io_rates(osd_status_text: str) -> dict[int, dict[str, int | None]]:
    """OSD id -> its client I/O rates, from the text of `ceph osd status` (ID HOST USED AVAIL
    WR OPS WR DATA RD OPS RD DATA STATE; the host is empty for an OSD that never started)."""
    rates = {}
    for line in osd_status_text.splitlines()[1:]:
        words = line.split()
        if len(words) < 8 or not words[0].isdigit():
            continue
        values = dict(zip(OSD_STATUS_COLUMNS, words[-7:-1], strict=True))
        rates[int(words[0])] = {
            name: _unit_number(values[name], 1000 if name.endswith("ops_sec") else 1024)
            for name in OSD_STATUS_COLUMNS[2:]
        }
    return rates


def osd_stats(
    osds: Iterable[str],
    osd_dump: dict[str, Any],
    osd_df: dict[str, Any],
    osd_tree: dict[str, Any],
    io_rates: dict[int, dict[str, int | None]],
) -> dict[str, dict[str, Any]]:
    """`osd.stats` for each OSD of `osds` (ids pvc has a record of) that Ceph has: up/in,
    CRUSH host and weight, reweight, class, utilisation, PGs, size/used/avail and I/O rates."""
    states = {osd["osd"]: osd for osd in osd_dump.get("osds", ())}
    usage = {node["id"]: node for node in osd_df.get("nodes", ())}
    hosts, weights = crush_hosts(osd_tree), crush_weights(osd_tree)
    result = {}
    for text in osds:
        if not text.isdigit() or int(text) not in states:
            continue
        number = int(text)
        state, used = states[number], usage.get(number, {})
        rates = io_rates.get(number, {})
        result[text] = {
            "id": number,
            "uuid": state.get("uuid"),
            "up": bool(state.get("up")),
            "in": bool(state.get("in")),
            "host": hosts.get(number),
            "class": used.get("device_class"),
            "weight": weights.get(number, 0.0),
            "reweight": float(_number(state.get("weight"))),
            "primary_affinity": float(_number(state.get("primary_affinity"), 1.0)),
            "utilization": round(float(_number(used.get("utilization"))), PERCENT_DIGITS),
            "var": round(float(_number(used.get("var"))), 3),
            "pgs": _number(used.get("pgs")),
            "size_bytes": _number(used.get("kb")) * 1024,
            "used_bytes": _number(used.get("kb_used")) * 1024,
            "avail_bytes": _number(used.get("kb_avail")) * 1024,
            **{name: rates.get(name) for name in OSD_STATUS_COLUMNS[2:]},
        }
    return result


def unreachable(error: str, since: float) -> dict[str, Any]:
    """`ceph.status` when Ceph does not answer: the reason on one line, and since when."""
    return {"health": "unreachable", "error": one_line(error), "since": since}
