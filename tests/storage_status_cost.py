"""The storage statistics collector run in this process, against a real Ceph and Zookeeper:
for tests (tests/integration/test_storage_stats_collector.py) and the cost figures of
scripts/bench/storage_status_cost (`measure`)."""

import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pvc.config import Config, from_dict
from pvc.drivers.ceph import Ceph
from pvc.node.storage_stats import Collection, StorageStats
from pvc.zk.cache import CachedView, open_mirror
from pvc.zk.handler import ZKHandler


class HeldLease:
    """A primary lease that is always held (one collector, no contention)."""

    def valid(self) -> bool:
        return True


def collector_config(ceph_settings: dict[str, Any], interval: float = 1.0) -> Config:
    return from_dict(
        {
            "node": {"name": "node1"},
            "cluster": {"coordinators": ["node1"]},
            "zookeeper": {"hosts": "127.0.0.1:2181", "secret": "unused"},
            "api": {"authentication": {"enabled": False}},
            "timers": {"keepalive_interval": interval},
            "ceph": ceph_settings,
        }
    )


@contextmanager
def collector(zk: ZKHandler, ceph_settings: dict[str, Any]) -> Iterator[StorageStats]:
    """A StorageStats on `zk` (its own mirror) and a Ceph connection of its own, not started:
    call `collect_and_write()`."""
    config = collector_config(ceph_settings)
    view = CachedView(zk, open_mirror(zk))
    ceph = Ceph.from_config(config)
    try:
        yield StorageStats(view, config, HeldLease(), ceph)  # type: ignore[arg-type]
    finally:
        ceph.close()
        view.mirror.close()


def measure(zk: ZKHandler, ceph_settings: dict[str, Any], rounds: int = 20) -> dict[str, Any]:
    """The cost of `rounds` collections, one after another, as a primary makes them every
    interval: the first (everything new) apart, then medians and totals of the others."""
    with collector(zk, ceph_settings) as stats:
        first = stats.collect_and_write()
        rest: list[Collection] = []
        for _ in range(rounds):
            time.sleep(0.2)
            rest.append(stats.collect_and_write())

    def median(name: str) -> float:
        return statistics.median(getattr(c, name) for c in rest)

    return {
        "first": first,
        "rounds": rounds,
        "median_seconds_ceph": median("seconds_ceph"),
        "median_seconds_write": median("seconds_write"),
        "median_keys_written": median("written"),
        "median_bytes_written": median("bytes"),
        "max_bytes_written": max(c.bytes for c in rest),
    }


def measure_at_scale(zk: ZKHandler, count: int = 1000) -> dict[str, Any]:
    """The cost for `count` OSDs and `count` pools, each with a pvc record, from Ceph answers
    made up in their real shapes (tests/unit/test_ceph_stats.py): building the records, then
    writing them all (everything new), then again with nothing changed."""
    from pvc.ops import ceph_stats
    from tests.unit.test_ceph_stats import large_cluster

    osd_dump, tree, osd_df, df, pg_pools, rates = large_cluster(count)
    osds = [str(n) for n in range(count)]
    pools = [pool["pool_name"] for pool in osd_dump["pools"]]
    records: dict[Any, Any] = {("osd", osd): "node" for osd in osds}
    records.update({("pool", pool): "" for pool in pools})
    for start in range(0, len(records), 500):
        zk.write(dict(list(records.items())[start : start + 500]))
    started = time.monotonic()
    values: dict[Any, Any] = {
        ("osd.stats", k): v
        for k, v in ceph_stats.osd_stats(osds, osd_dump, osd_df, tree, rates).items()
    }
    values.update(
        {
            ("pool.stats", k): v
            for k, v in ceph_stats.pool_stats(pools, df, osd_dump, pg_pools).items()
        }
    )
    values["ceph.status"] = ceph_stats.cluster_status({"health": {}}, osd_dump, tree)
    values["ceph.util"] = ceph_stats.utilization(df)
    build = time.monotonic() - started
    view = CachedView(zk, open_mirror(zk))
    try:
        stats = StorageStats(view, collector_config({}), HeldLease(), None)  # type: ignore[arg-type]
        started = time.monotonic()
        written, size, transactions = stats.write(values)
        first = time.monotonic() - started
        view.mirror.sync()
        started = time.monotonic()
        again = stats.write(values)
        unchanged = time.monotonic() - started
    finally:
        view.mirror.close()
    return {
        "count": count,
        "seconds_build": build,
        "seconds_write_all": first,
        "keys_written": written,
        "bytes_written": size,
        "transactions": transactions,
        "seconds_write_unchanged": unchanged,
        "keys_written_unchanged": again[0],
        "bytes_written_unchanged": again[1],
    }
