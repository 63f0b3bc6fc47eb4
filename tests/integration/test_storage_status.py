"""Storage status through real node daemons (two coordinators, each in its network namespace,
reaching the session's real Ceph from its own address): the primary collects Ceph's status,
utilisation and the stats of recorded OSDs and pools every keepalive interval; `pvc storage
status|util` (the built dist/pvc, through the API the primary serves) show them; unchanged
values are not written again; when the primary role moves or the primary stops, the new
primary collects."""

import json
import subprocess
import time

import pytest

from pvc.ops import node as node_ops
from tests.conftest import free_port, ok
from tests.local_cluster import LocalCluster
from tests.processes import COMMAND_TIMEOUT

POOL = "statuspool"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, ceph_service):
    local = LocalCluster(
        tmp_path_factory.mktemp("storage-status"), 2, prefix="pvcu", subnet="10.219.0",
        zk_port=free_port(),
    )  # fmt: skip
    local.up()
    local.use_ceph(ceph_service)
    local.start_all()
    yield local
    local.down()


@pytest.fixture(scope="module")
def zk(cluster):
    handler = cluster.running_observer()
    yield handler
    handler.close()


@pytest.fixture(scope="module")
def pool(ceph_service, zk):
    """A real pool and pvc's record of it (made here as pvc's pool verb would)."""
    ceph_service.ceph("osd", "pool", "create", POOL, "8")
    zk.write({("pool", POOL): "", ("osd", "0"): "ceph-base"})
    yield POOL
    ceph_service.ceph("osd", "pool", "delete", POOL, POOL, "--yes-i-really-really-mean-it")


@pytest.fixture
def pvc(run_pvc, cluster, zk):
    """dist/pvc on the API of the cluster's primary (on the floating address)."""
    ok(run_pvc("connection", "add", "t", "-a", cluster.floating, "-p", "7370",
               "-k", cluster.api_key))  # fmt: skip

    def run(*args: str, **kwargs):
        return run_pvc("-c", "t", *args, **kwargs)

    return run


def until(condition, timeout: float = 30):
    deadline = time.monotonic() + timeout
    while not (found := condition()):
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)
    return found


def collected_after(zk, moment: float, timeout: float = 30) -> float:
    """Waits for a collection written after `moment` (the collector's clock is this host's)."""
    return until(lambda: (zk.read("ceph.updated") or 0) > moment and zk.read("ceph.updated"),
                 timeout)  # fmt: skip


def test_the_primary_collects_status_util_and_recorded_stats(zk, pool, ceph_service):
    collected_after(zk, time.time())
    status = zk.read("ceph.status")
    assert status["health"] in ("HEALTH_OK", "HEALTH_WARN")
    dump = ceph_service.ceph("osd", "dump")
    assert sorted(int(osd) for osd in status["osds"]) == sorted(o["osd"] for o in dump["osds"])
    assert status["osd_count"]["up"] == sum(o["up"] for o in dump["osds"])
    stats = until(lambda: zk.read(("pool.stats", POOL)))
    assert (stats["pg_num"], stats["size"], stats["min_size"]) == (8, 1, 1)
    assert (
        POOL
        in until(lambda: POOL in zk.read("ceph.util")["pools"] and zk.read("ceph.util"))["pools"]
    )
    osd = until(lambda: zk.read(("osd.stats", "0")))
    assert (osd["host"], osd["up"], osd["in"]) == ("ceph-base", True, True)
    # stats follow Ceph: an object written into the pool shows in its next collection
    subprocess.run(
        ["rados", "-c", str(ceph_service.conf), "-p", POOL, "put", "one", "/etc/hostname"],
        check=True, capture_output=True, timeout=COMMAND_TIMEOUT,
    )  # fmt: skip
    until(lambda: zk.read(("pool.stats", POOL))["objects"] == 1)


def test_unchanged_values_are_not_written_again(zk, pool):
    collected_after(zk, time.time())
    _, updated_version = zk.read_versioned("ceph.updated")
    _, status_version = zk.read_versioned("ceph.status")
    until(lambda: zk.read_versioned("ceph.updated")[1] >= updated_version + 5)
    # an idle cluster: the status rarely moves, while the time is written every interval
    assert zk.read_versioned("ceph.status")[1] - status_version < 5


def test_pvc_storage_status_and_util(pvc, zk, pool, ceph_service):
    until(lambda: zk.read(("pool.stats", POOL)))
    document = json.loads(ok(pvc("storage", "status", "-f", "json")))
    assert document["freshness"] == "current" and document["age"] < 30
    assert document["status"]["monitors"]["quorum"] == ["a"]
    lines = ok(pvc("storage", "status")).splitlines()
    fields = {line.split(":", 1)[0]: line.split(":", 1)[1].strip() for line in lines if ":" in line}
    assert fields["health"] == document["status"]["health"]
    count = len(ceph_service.ceph("osd", "dump")["osds"])
    assert fields["osds"].startswith(f"{count} total")
    assert fields["monitors"] == "1 (quorum: a)"
    assert "active+clean" in fields["pgs"]
    util = json.loads(ok(pvc("storage", "util", "-f", "json-pretty")))
    assert POOL in util["utilization"]["pools"]
    text = ok(pvc("storage", "util"))
    assert text.startswith("raw: ") and " total, " in text.splitlines()[0]
    rows = {line.split()[0]: line.split() for line in text.splitlines() if line}
    assert rows["POOL"][:3] == ["POOL", "ID", "STORED"]
    assert rows[POOL][1] == str(util["utilization"]["pools"][POOL]["id"])
    summary = json.loads(ok(pvc("storage", "status", "-f", "json")))
    assert summary["status"]["health"] == fields["health"]


def test_the_new_primary_collects(cluster, zk, pvc):
    first = cluster.wait_for_primary(zk, 20)
    ok(pvc("node", "secondary", first, "--wait"))
    second = cluster.wait_for_primary(zk, 20, not_=first)
    collected_after(zk, time.time())
    # the new primary dies too: only the first, primary again, can be collecting now
    cluster.stop(second)
    stopped = time.time()
    assert cluster.wait_for_primary(zk, 30, not_=second) == first
    collected_after(zk, stopped)
    answer = json.loads(ok(pvc("storage", "status", "-f", "json")))
    assert answer["freshness"] == "current"
    cluster.start(second)
    until(lambda: node_ops.info(zk, second)["daemon_state"] == "run")


@pytest.fixture(scope="module")
def cut_off(tmp_path_factory, ceph_service):
    """One node whose Ceph configuration points at an address where nothing answers."""
    workdir = tmp_path_factory.mktemp("storage-cut-off")
    dead = workdir / "ceph.conf"
    dead.write_text("[global]\nmon_host = 127.0.0.1:9\n")
    local = LocalCluster(workdir, 1, prefix="pvcv", subnet="10.220.0", zk_port=free_port())
    local.up()
    local.settings["ceph"] = {**ceph_service.settings(timeout=1), "config_file": str(dead)}
    local.write_config("node1")
    local.start_all()
    yield local
    local.down()


def test_a_ceph_that_does_not_answer_is_unreachable_in_one_line(cut_off, run_pvc):
    zk = cut_off.running_observer()
    try:
        status = until(lambda: zk.read("ceph.status"))
        keepalive = zk.read(("node.keepalive", "node1"))
        # the daemon goes on: its keepalives are not held up by Ceph's timeouts
        until(lambda: zk.read(("node.keepalive", "node1")) > keepalive + 2)
    finally:
        zk.close()
    assert status["health"] == "unreachable" and "\n" not in status["error"]
    assert "did not answer within 1 s" in status["error"]
    ok(run_pvc("connection", "add", "t", "-a", cut_off.floating, "-p", "7370",
               "-k", cut_off.api_key))  # fmt: skip
    lines = until(lambda: (r := run_pvc("-c", "t", "storage", "status")).returncode == 0 and r)
    assert lines.stdout.splitlines()[0].split() == ["health:", "unreachable"]
