"""The storage statistics collector (pvc.node.storage_stats) in this process, against the
session's real Ceph and a real Zookeeper; and what the API answers about what it wrote:
- one collection writes status, utilisation and the stats of recorded OSDs and pools, as Ceph
  itself sees them; a second with nothing changed writes only the time;
- a Ceph that does not answer is "unreachable" on one line within its timeout, and the last
  utilisation and stats stay; the API says so, and says when the data is stale or absent;
- a manager that does not answer leaves the status and utilisation collected, saying so, and
  the last OSD and pool stats."""

import json
import re
import time
import urllib.request

import pytest

from pvc.drivers.ceph import CephUnavailable
from tests.conftest import ok
from tests.storage_status_cost import collector

POOL = "collected"


@pytest.fixture
def pool(ceph_service):
    ceph_service.ceph("osd", "pool", "create", POOL, "8")
    deadline = time.monotonic() + 30
    while POOL not in [p["name"] for p in ceph_service.ceph("df")["pools"]]:
        assert time.monotonic() < deadline, "the new pool is not in ceph df"
        time.sleep(0.2)  # the manager reports a new pool's usage a moment later
    yield POOL
    ceph_service.ceph("osd", "pool", "delete", POOL, POOL, "--yes-i-really-really-mean-it")


def get(api_server, path: str) -> dict:
    request = urllib.request.Request(api_server.url + path, headers={"X-Api-Key": api_server.key})
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.status == 200
        return json.loads(answer.read())


def until(read, freshness: str, timeout: float = 10) -> dict:
    deadline = time.monotonic() + timeout
    while (answer := read())["freshness"] != freshness:
        assert time.monotonic() < deadline, answer
        time.sleep(0.1)
    return answer


def test_a_collection_records_what_ceph_sees_and_then_only_what_changed(zk, ceph_service, pool):
    zk.write({("osd", "0"): "node1", ("pool", POOL): "", ("pool", "not-in-ceph"): ""})
    with collector(zk, ceph_service.settings()) as stats:
        first = stats.collect_and_write()
        second = stats.collect_and_write()
    assert first.reachable and first.transactions == 1
    status = zk.read("ceph.status")
    tree = ceph_service.ceph("osd", "tree")
    hosts = {c: n["name"] for n in tree["nodes"] if n["type"] == "host" for c in n["children"]}
    assert status["health"] in ("HEALTH_OK", "HEALTH_WARN")
    assert {int(osd): value["host"] for osd, value in status["osds"].items()} == hosts
    assert status["monitors"] == {"total": 1, "quorum": ["a"]}
    util = zk.read("ceph.util")
    assert POOL in util["pools"] and util["raw"]["total_bytes"] > 0
    assert zk.read(("osd.stats", "0"))["host"] == "ceph-base"
    pool_stats = zk.read(("pool.stats", POOL))
    assert (pool_stats["pg_num"], pool_stats["size"], pool_stats["objects"]) == (8, 1, 0)
    assert zk.read(("pool.stats", "not-in-ceph")) is None  # a record Ceph does not have
    assert not zk.exists(("osd", "1"))  # no stats, and no record, for an OSD pvc does not know
    # nothing changed in Ceph: at most the time and the few values that moved are written
    assert second.written < first.written and second.bytes < first.bytes


def test_stats_never_recreate_a_record_removed_meanwhile(zk, ceph_service, pool):
    zk.write({("pool", POOL): ""})
    with collector(zk, ceph_service.settings()) as stats:
        values = stats.collect()
        zk.delete(("pool", POOL))  # removed by a verb while the collector asked Ceph
        stats.write(values)
    assert not zk.exists(("pool", POOL))
    assert zk.read("ceph.status")["health"] in ("HEALTH_OK", "HEALTH_WARN")


class ManagerDown:
    """The session's Ceph, but the manager's commands time out, as they do (measured) while
    no manager is active: the monitors still answer status, osd dump, osd tree and df."""

    MANAGER = ("osd df", "pg dump", "osd status")

    def __init__(self, ceph):
        self.ceph = ceph

    def command(self, prefix: str, **arguments):
        if prefix in self.MANAGER:
            raise CephUnavailable(f"ceph {prefix}: Ceph did not answer within 5 s")
        return self.ceph.command(prefix, **arguments)


def test_without_a_manager_the_status_is_written_and_the_stats_kept(zk, ceph_service, pool):
    zk.write({("pool", POOL): ""})
    with collector(zk, ceph_service.settings()) as stats:
        stats.collect_and_write()
        kept = zk.read(("pool.stats", POOL))
        stats.ceph = ManagerDown(stats.ceph)
        result = stats.collect_and_write()
    assert result.reachable
    status = zk.read("ceph.status")
    assert status["health"] in ("HEALTH_OK", "HEALTH_WARN") and status["osds"]
    assert status["manager_error"] == "ceph osd df: Ceph did not answer within 5 s"
    assert POOL in zk.read("ceph.util")["pools"]
    assert zk.read(("pool.stats", POOL)) == kept


def test_an_unreachable_ceph_is_one_line_and_keeps_the_last_figures(
    zk, ceph_service, tmp_path, start_api, run_pvc
):
    zk.write({("pool", "kept"): ""})
    with collector(zk, ceph_service.settings()) as stats:
        stats.collect_and_write()
    util = zk.read("ceph.util")
    dead = tmp_path / "ceph.conf"
    dead.write_text("[global]\nmon_host = 127.0.0.1:9\n")  # nothing listens there
    settings = {**ceph_service.settings(timeout=1), "config_file": str(dead)}
    with collector(zk, settings) as stats:
        started = time.monotonic()
        result = stats.collect_and_write()
        took = time.monotonic() - started
        since = zk.read("ceph.status")["since"]
        stats.collect_and_write()  # still unreachable: the same since
    assert not result.reachable and took < 10
    status = zk.read("ceph.status")
    assert status["health"] == "unreachable" and status["since"] == since
    assert "did not answer within 1 s" in status["error"] and "\n" not in status["error"]
    assert zk.read("ceph.util") == util  # the last figures stay

    api = start_api()
    answer = until(lambda: get(api, "/storage/ceph/status"), "current")
    assert answer["status"]["health"] == "unreachable"
    summary = get(api, "/storage")
    assert summary["health"] == "unreachable" and summary["error"] == status["error"]
    assert summary["records"] == {"osds": 0, "pools": 1, "volumes": 0}
    assert get(api, "/storage/ceph/utilization")["utilization"] == util
    lines = ok(run_pvc("--config", str(api.config_path), "storage", "status")).splitlines()
    assert lines[0].split() == ["health:", "unreachable"]
    assert lines[1].startswith("error:") and lines[1].endswith(status["error"])


def test_the_api_says_when_statistics_are_absent_or_stale(zk, start_api, run_pvc):
    api = start_api()
    for path in ("/storage", "/storage/ceph/status", "/storage/ceph/utilization"):
        answer = get(api, path)
        assert answer["freshness"] == "absent" and "not enabled" in answer["message"]
    pvc = ("--config", str(api.config_path))
    assert ok(run_pvc(*pvc, "storage", "status")).startswith("note: no Ceph status")
    zk.write({"ceph.updated": time.time() - 3600, "ceph.status": {"health": "HEALTH_OK"}})
    answer = until(lambda: get(api, "/storage/ceph/status"), "stale")  # once the API's copy has it
    assert answer["age"] >= 3600
    assert "no primary is collecting" in answer["message"]
    text = ok(run_pvc(*pvc, "storage", "status"))
    first = text.splitlines()[0]  # the age grows while the test runs: 3600 s, or a few more
    assert re.match(r"note: the Ceph status is 36[0-9][0-9] s old: no primary is collecting", first)
    assert json.loads(ok(run_pvc(*pvc, "storage", "util", "-f", "json")))["freshness"] == "stale"
