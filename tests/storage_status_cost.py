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
