"""High availability on a real 3-node cluster: real libvirtds with firmware-only VMs, a
simulated BMC per node whose power control really kills and boots the node, and an observer
that asks every libvirtd (and /proc) where each VM runs. Fast profile: keepalive 1 s,
dead after 3, self-fence after 4 (failed_fence: migrate).

Each test leaves the cluster as it found it (every node run and ready)."""

import time
from collections.abc import Iterator

import pytest

from pvc.node.fencing import SAVING_THROWS, self_fence_margin
from tests.chaos.ha_cluster import HaCluster, Timers, fence_events, ha_cluster, wait_fence_event

TIMERS = Timers()
DETECT = TIMERS.keepalive_interval * (TIMERS.fence_intervals + SAVING_THROWS)
# death -> VMs running elsewhere: detection, a fence (~1 s) and a start, with room for a
# loaded machine; the self-fence path waits for the self-fence deadline and its margin
BOUND = DETECT + 15
SELF_FENCE_BOUND = (
    TIMERS.keepalive_interval * TIMERS.suicide_intervals
    + self_fence_margin(TIMERS.keepalive_interval)
    + 15
)


@pytest.fixture(scope="module")
def ha(tmp_path_factory) -> Iterator[HaCluster]:
    with ha_cluster(tmp_path_factory.mktemp("ha"), 3, "pvci", "10.212.0", TIMERS) as cluster:
        cluster.define_vms(4)
        yield cluster
        assert cluster.observer.violations() == []


@pytest.fixture
def zk(ha):
    handler = ha.zk()
    yield handler
    handler.close()


def victim_with_vms(ha: HaCluster, zk) -> tuple[str, list[str]]:
    """A node that is not primary and runs at least one VM, and the VMs it runs."""
    primary = zk.read("base.config.primary_node")
    for node in ha.cluster.names:
        running = sorted(ha.observer.on_node(node))
        if node != primary and running:
            return node, running
    raise AssertionError("no secondary runs a VM")


def test_a_crashed_node_is_fenced_and_its_vms_run_elsewhere(ha, zk):
    node, vms = victim_with_vms(ha, zk)
    since = time.time()
    died = time.monotonic()
    ha.faults.power_off(node)
    seconds = ha.observer.wait_running(ha.vms.values(), BOUND, avoid=[node])
    assert seconds >= TIMERS.keepalive_interval * TIMERS.fence_intervals  # not before dead
    assert wait_fence_event(zk, node, "fence-complete", since) == [
        "dead",
        "fenced",
        "storage-fence",  # here: "no storage fence" (no Ceph), said before the recovery
        "fence-complete",
    ]
    for vm in vms:
        record = ha.api("GET", f"/vm/{vm}")
        assert record["lastnode"] == node and record["node"] != node
    # the BMC powered the node on again: it comes back, and `ready` brings its VMs home
    ha.bring_back(zk, node)
    ha.observer.wait_running(ha.vms.values(), 60)
    assert set(vms) <= ha.observer.on_node(node)
    # booting again is not dying again: the node got a whole window after its fence
    assert fence_events(zk, node, since) == ["dead", "fenced", "storage-fence", "fence-complete"]
    print(f"crash -> VMs running elsewhere: {time.monotonic() - died:.1f} s")


def test_a_frozen_daemon_is_fenced_although_its_vms_still_run(ha, zk):
    node, vms = victim_with_vms(ha, zk)
    since = time.time()
    ha.faults.freeze(node)  # the daemon stops; libvirtd and the VMs go on
    ha.observer.wait_running(ha.vms.values(), BOUND, avoid=[node])
    assert not (set(vms) & ha.observer.on_node(node))
    wait_fence_event(zk, node, "fence-complete", since)
    ha.bring_back(zk, node)


def test_a_node_cut_off_from_the_network_is_fenced_through_its_bmc(ha, zk):
    node, vms = victim_with_vms(ha, zk)
    since = time.time()
    ha.faults.cut(node)
    ha.observer.wait_running(ha.vms.values(), BOUND, avoid=[node])
    wait_fence_event(zk, node, "fence-complete", since)
    ha.bring_back(zk, node)


def test_wrong_ipmi_credentials_fail_the_fence_and_self_fencing_recovers(ha, zk):
    node, vms = victim_with_vms(ha, zk)
    since = time.time()
    good = zk.read_private(("private.ipmi", node))
    zk.write_private(("private.ipmi", node), good | {"password": "wrong-password"})
    try:
        ha.faults.freeze(node)  # its VMs keep running until its watchdog self-fences them
        ha.wait_node(zk, node, ("fence-failed",), DETECT + 15)
        log = zk.read(("node.fence_log", node))
        assert "credentials" in log[-1]["detail"]
        assert "wrong-password" not in str(log)
        ha.observer.wait_running(ha.vms.values(), SELF_FENCE_BOUND, avoid=[node])
        wait_fence_event(zk, node, "recovered", since)
        assert ha.bmcs.power(node) == "on"  # nobody powered it off
    finally:
        zk.write_private(("private.ipmi", node), good)
        ha.bring_back(zk, node)
    status = ha.api("GET", "/status")
    assert status["fencing"] == []  # every node is back to run


def test_the_api_never_shows_ipmi_credentials(ha, zk):
    passwords = [zk.read_private(("private.ipmi", node))["password"] for node in ha.cluster.names]
    for path in ["/node", "/status"] + [f"/node/{node}" for node in ha.cluster.names]:
        text = str(ha.api("GET", path))
        assert not any(password in text for password in passwords)
    logs = "".join((ha.cluster.workdir / node / "pvc.log").read_text() for node in ha.cluster.names)
    assert not any(password in logs for password in passwords)
