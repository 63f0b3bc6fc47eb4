"""pvc.ops.ceph_stats: Ceph's monitor answers (shapes as Ceph 16.2 gives them, trimmed) become
pvc's records; only recorded OSDs and pools get stats; what Ceph leaves out reads as 0/None;
and the records of a cluster of 1,000 OSDs and 1,000 pools stay small enough to write
(pvc.node.storage_stats.chunks keeps every transaction under the limit)."""

import json

from pvc.limits import TRANSACTION_MAX
from pvc.node.storage_stats import CHUNK_BYTES, chunks, write_size
from pvc.ops import ceph_stats

STATUS = {
    "fsid": "47fae4b0-68ff-4654-90ce-5f1bf05eba88",
    "health": {
        "status": "HEALTH_WARN",
        "checks": {
            "OSDMAP_FLAGS": {
                "severity": "HEALTH_WARN",
                "summary": {"message": "noout flag(s) set", "count": 1},
                "muted": False,
            },
            "PG_DEGRADED": {
                "severity": "HEALTH_WARN",
                "summary": {"message": "Degraded data\nredundancy: 3 pgs", "count": 3},
                "muted": False,
            },
        },
        "mutes": [],
    },
    "quorum_names": ["a"],
    "monmap": {"epoch": 1, "num_mons": 1},
    "osdmap": {"num_osds": 3, "num_up_osds": 2, "num_in_osds": 3},
    "pgmap": {
        "pgs_by_state": [
            {"state_name": "active+clean", "count": 30},
            {"state_name": "active+undersized+degraded", "count": 3},
        ],
        "num_pgs": 33,
        "write_bytes_sec": 90596966,
        "write_op_per_sec": 21,
        "degraded_objects": 12,
        "degraded_total": 300,
    },
}
OSD_DUMP = {
    "flags_set": ["noout", "pglog_hardlimit", "purged_snapdirs", "recovery_deletes", "sortbitwise"],
    "pools": [
        {"pool": 1, "pool_name": "device_health_metrics", "size": 1, "min_size": 1, "pg_num": 1},
        {"pool": 2, "pool_name": "vms", "size": 2, "min_size": 1, "pg_num": 32},
    ],
    "osds": [
        {"osd": 0, "uuid": "u0", "up": 1, "in": 1, "weight": 1, "primary_affinity": 1},
        {"osd": 1, "uuid": "u1", "up": 1, "in": 1, "weight": 0.5, "primary_affinity": 1},
        {"osd": 2, "uuid": "u2", "up": 0, "in": 1, "weight": 1, "primary_affinity": 1},
    ],
}
OSD_TREE = {
    "nodes": [
        {"id": -1, "name": "default", "type": "root", "children": [-3, -2]},
        {"id": -3, "name": "ceph-base", "type": "host", "children": [0]},
        {"id": -2, "name": "node1", "type": "host", "children": [2, 1]},
        {"id": 0, "name": "osd.0", "type": "osd", "crush_weight": 0.0078, "status": "up"},
        {"id": 1, "name": "osd.1", "type": "osd", "crush_weight": 0.0048, "status": "up"},
        {"id": 2, "name": "osd.2", "type": "osd", "crush_weight": 0.0048, "status": "down"},
    ],
}
OSD_DF = {
    "nodes": [
        {"id": 1, "device_class": "hdd", "kb": 5242880, "kb_used": 297176, "kb_avail": 4945704,
         "utilization": 5.668, "var": 1.2, "pgs": 17},
    ],
}  # fmt: skip
DF = {
    "stats": {"total_bytes": 8589934592, "total_avail_bytes": 8285626368,
              "total_used_raw_bytes": 304308224, "total_used_raw_ratio": 0.0354},
    "stats_by_class": {"hdd": {"total_bytes": 8589934592, "total_avail_bytes": 8285626368,
                               "total_used_raw_bytes": 304308224, "total_used_raw_ratio": 0.0354}},
    "pools": [
        {"name": "device_health_metrics", "id": 1, "stats": {"stored": 0, "objects": 0,
         "bytes_used": 0, "percent_used": 0, "max_avail": 7856129536}},
        {"name": "vms", "id": 2, "stats": {"stored": 1296039936, "objects": 309,
         "bytes_used": 2592079872, "percent_used": 0.1639, "max_avail": 6610388480, "rd": 4,
         "rd_bytes": 16384, "wr": 309, "wr_bytes": 1296039936}},
    ],
}  # fmt: skip
PG_DUMP_POOLS = {
    "pg_ready": True,
    "pool_stats": [
        {"poolid": 2, "num_pg": 32, "stat_sum": {"num_objects_degraded": 12,
         "num_objects_misplaced": 4, "num_objects_unfound": 1}},
    ],
}  # fmt: skip
OSD_STATUS = (
    "ID  HOST       USED  AVAIL  WR OPS  WR DATA  RD OPS  RD DATA  STATE      \n"
    " 0  vm         494M  7697M     21     86.4M      0        0   exists,up  \n"
    " 1  node1      290M  4829M   1.2k     1024       3      512k  exists,up  \n"
    " 2                0      0      0        0       0        0   exists     \n"
)


def test_the_cluster_status_keeps_health_checks_osds_pgs_and_io():
    status = ceph_stats.cluster_status(STATUS, OSD_DUMP, OSD_TREE)
    assert status["health"] == "HEALTH_WARN" and status["manager_error"] is None
    assert status["checks"]["PG_DEGRADED"] == {
        "severity": "HEALTH_WARN",
        "summary": "Degraded data redundancy: 3 pgs",  # one line
        "count": 3,
    }
    assert status["monitors"] == {"total": 1, "quorum": ["a"]}
    assert status["osd_count"] == {"total": 3, "up": 2, "in": 3}
    assert status["osds"]["1"] == {"up": True, "in": True, "host": "node1", "weight": 0.0048}
    assert status["osds"]["2"]["up"] is False
    assert status["flags"] == ["noout"]  # the flags every cluster has are left out
    assert status["pgs"] == {
        "total": 33,
        "states": {"active+clean": 30, "active+undersized+degraded": 3},
    }
    assert status["io"] == {
        "read_bytes_sec": 0,  # left out by Ceph when zero
        "write_bytes_sec": 90596966,
        "read_op_per_sec": 0,
        "write_op_per_sec": 21,
    }
    assert status["recovery"]["degraded_objects"] == 12


def test_a_manager_error_is_kept_on_one_line():
    status = ceph_stats.cluster_status(STATUS, OSD_DUMP, OSD_TREE, manager_error="ceph osd df:\nno")
    assert status["manager_error"] == "ceph osd df: no" and status["health"] == "HEALTH_WARN"


def test_utilization_has_raw_totals_classes_and_every_pool():
    util = ceph_stats.utilization(DF)
    assert util["raw"] == {
        "total_bytes": 8589934592,
        "used_bytes": 304308224,
        "avail_bytes": 8285626368,
        "used_percent": 3.54,
    }
    assert set(util["classes"]) == {"hdd"}
    assert set(util["pools"]) == {"device_health_metrics", "vms"}
    assert util["pools"]["vms"] == {
        "id": 2,
        "stored_bytes": 1296039936,
        "used_bytes": 2592079872,
        "max_avail_bytes": 6610388480,
        "used_percent": 16.39,
        "objects": 309,
    }


def test_pool_stats_only_for_recorded_pools_that_ceph_has():
    stats = ceph_stats.pool_stats(["vms", "gone"], DF, OSD_DUMP, PG_DUMP_POOLS)
    assert set(stats) == {"vms"}
    vms = stats["vms"]
    assert (vms["id"], vms["size"], vms["min_size"], vms["pg_num"]) == (2, 2, 1, 32)
    assert (vms["degraded_objects"], vms["misplaced_objects"], vms["unfound_objects"]) == (12, 4, 1)
    assert (vms["read_ops"], vms["read_bytes"], vms["write_ops"], vms["write_bytes"]) == (
        4, 16384, 309, 1296039936)  # fmt: skip
    assert vms["used_percent"] == 16.39
    # a pool without a pg dump entry (no PGs reported yet) has zero counts
    assert ceph_stats.pool_stats(["vms"], DF, OSD_DUMP, {})["vms"]["degraded_objects"] == 0


def test_osd_io_rates_are_read_from_the_osd_status_table():
    rates = ceph_stats.osd_io_rates(OSD_STATUS)
    assert rates[0] == {
        "write_ops_sec": 21.0,
        "write_bytes_sec": round(86.4 * 1024**2),
        "read_ops_sec": 0.0,
        "read_bytes_sec": 0.0,
    }
    assert rates[1]["write_ops_sec"] == 1200.0  # decimal for counts
    assert rates[1]["read_bytes_sec"] == 512 * 1024  # binary for bytes
    assert rates[2]["write_ops_sec"] == 0.0  # no host column for an OSD never started
    assert ceph_stats.osd_io_rates("not a table") == {}


def test_osd_stats_only_for_recorded_osds_that_ceph_has():
    rates = ceph_stats.osd_io_rates(OSD_STATUS)
    stats = ceph_stats.osd_stats(["1", "2", "7", "x"], OSD_DUMP, OSD_DF, OSD_TREE, rates)
    assert set(stats) == {"1", "2"}
    one = stats["1"]
    assert one["host"] == "node1" and one["class"] == "hdd"
    assert (one["up"], one["in"], one["weight"], one["reweight"]) == (True, True, 0.0048, 0.5)
    assert (one["size_bytes"], one["used_bytes"], one["avail_bytes"]) == (
        5242880 * 1024, 297176 * 1024, 4945704 * 1024)  # fmt: skip
    assert (one["utilization"], one["pgs"], one["write_ops_sec"]) == (5.67, 17, 1200)  # rounded
    # down, and missing from osd df: zero usage, not an error
    assert stats["2"]["up"] is False and stats["2"]["size_bytes"] == 0


def test_an_unreachable_ceph_is_one_line():
    status = ceph_stats.unreachable("ceph status: Ceph did not answer\nwithin 5 s", 100.0)
    assert status == {
        "health": "unreachable",
        "error": "ceph status: Ceph did not answer within 5 s",
        "since": 100.0,
    }


def large_cluster(count: int) -> tuple[dict, ...]:
    """Ceph's answers for `count` OSDs (one host each, long names) and `count` pools."""
    hosts = [f"hypervisor-{n:04d}-" + "x" * 40 for n in range(count)]
    osd_dump = {
        "flags_set": ["noout"],
        "osds": [{"osd": n, "uuid": f"{n:036d}", "up": 1, "in": 1, "weight": 1,
                  "primary_affinity": 1} for n in range(count)],
        "pools": [{"pool": n, "pool_name": f"pool-{n:04d}-" + "p" * 40, "size": 3,
                   "min_size": 2, "pg_num": 128} for n in range(count)],
    }  # fmt: skip
    tree = {
        "nodes": [{"id": -1 - n, "name": hosts[n], "type": "host", "children": [n]}
                  for n in range(count)]
        + [{"id": n, "type": "osd", "crush_weight": 7.27659606933593} for n in range(count)]
    }  # fmt: skip
    osd_df = {
        "nodes": [{"id": n, "device_class": "nvme", "kb": 7814026584, "kb_used": 3907013292,
                   "kb_avail": 3907013292, "utilization": 50.00000123456789,
                   "var": 1.0000001234567, "pgs": 384} for n in range(count)]
    }  # fmt: skip
    big = 123456789012345
    df = {
        "stats": {"total_bytes": big, "total_avail_bytes": big, "total_used_raw_bytes": big,
                  "total_used_raw_ratio": 0.5000001234},
        "pools": [{"name": pool["pool_name"], "id": pool["pool"],
                   "stats": {"stored": big, "objects": big, "bytes_used": big,
                             "percent_used": 0.50000012345, "max_avail": big, "rd": big,
                             "rd_bytes": big, "wr": big, "wr_bytes": big}}
                  for pool in osd_dump["pools"]],
    }  # fmt: skip
    pg_pools = {
        "pool_stats": [{"poolid": n, "stat_sum": {"num_objects_degraded": big,
                        "num_objects_misplaced": big, "num_objects_unfound": big}}
                       for n in range(count)]
    }  # fmt: skip
    rates = {n: dict.fromkeys(ceph_stats.OSD_STATUS_COLUMNS[2:], 123456789) for n in range(count)}
    return osd_dump, tree, osd_df, df, pg_pools, rates


def test_a_thousand_osds_and_pools_fit_in_bounded_writes():
    osd_dump, tree, osd_df, df, pg_pools, rates = large_cluster(1000)
    status = ceph_stats.cluster_status({"health": {"status": "HEALTH_OK"}}, osd_dump, tree)
    util = ceph_stats.utilization(df)
    osds = ceph_stats.osd_stats([str(n) for n in range(1000)], osd_dump, osd_df, tree, rates)
    pools = ceph_stats.pool_stats([p["pool_name"] for p in osd_dump["pools"]], df, osd_dump,
                                  pg_pools)  # fmt: skip
    assert len(osds) == len(pools) == 1000
    sizes = {
        "status": len(json.dumps(status)),
        "util": len(json.dumps(util)),
        "osd": max(len(json.dumps(value)) for value in osds.values()),
        "pool": max(len(json.dumps(value)) for value in pools.values()),
    }
    # each value well under one transaction (status ~ 120 bytes per OSD with long host names)
    assert sizes["status"] < TRANSACTION_MAX / 4 and sizes["util"] < TRANSACTION_MAX / 4
    assert sizes["osd"] < 1024 and sizes["pool"] < 1024
    values = {("osd.stats", k): v for k, v in osds.items()}
    values.update({("pool.stats", k): v for k, v in pools.items()})
    groups = chunks(values)
    assert sum(len(group) for group in groups) == 2000
    assert len(groups) > 1  # all of it changing at once does not fit in one transaction
    for group in groups:
        assert sum(write_size(key, value) for key, value in group.items()) <= CHUNK_BYTES
    # the last transaction carries the cluster-wide keys
    assert write_size("ceph.status", status) + write_size("ceph.util", util) < TRANSACTION_MAX
