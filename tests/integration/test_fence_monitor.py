"""The fence monitor's rules on a real Zookeeper with a real primary lease: it acts only while
this node holds the lease and the primary's registry runs it, never in maintenance mode, and a
node without IPMI ends fence-failed with its VMs kept (no self-fencing). No node daemons: the
records are written as daemons would, and the "dead" node simply stops sending keepalives."""

import time

import pytest

from pvc import config as pvc_config
from pvc.node.fencing import FenceMonitor
from pvc.node.lease import PrimaryLease
from pvc.node.primary_services import PrimaryServices
from pvc.node.watchdog_process import WatchdogProcess
from pvc.ops import cluster
from pvc.zk.cache import CachedView, open_mirror
from tests.integration.test_node_ops import add_node

CONFIG = pvc_config.from_dict(
    {
        "node": {"name": "node1"},
        "cluster": {"coordinators": ["node1", "node2"]},
        "timers": {"keepalive_interval": 0.2, "fence_intervals": 3},
        "api": {"authentication": {"enabled": False}},
    }
)


@pytest.fixture
def monitor(zk):
    cluster.initialize(zk)
    add_node(zk, "node1", router="primary", keepalive=time.time())
    add_node(zk, "node2", keepalive=time.time())
    watchdog = WatchdogProcess()
    lease = PrimaryLease(zk, watchdog)
    fence_monitor = FenceMonitor(zk, CachedView(zk, open_mirror(zk)), "node1", CONFIG, lease)
    fence_monitor.start()
    yield fence_monitor
    fence_monitor.stop()
    lease.close()
    watchdog.close()


def fence_log(zk, node: str) -> list[str]:
    return [entry["event"] for entry in zk.read(("node.fence_log", node)) or []]


def wait_for_log(zk, node: str, events: list[str], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while fence_log(zk, node) != events:
        assert time.monotonic() < deadline, fence_log(zk, node)
        time.sleep(0.05)


def test_only_the_lease_holder_fences_and_a_node_without_ipmi_keeps_its_vms(zk, monitor):
    time.sleep(1.5)  # node2 silent for 2.5 x its dead time, but no lease: nothing happens
    assert fence_log(zk, "node2") == []
    assert zk.read(("node.state.daemon", "node2")) == "run"
    assert monitor.lease.grant()
    wait_for_log(zk, "node2", ["dead", "fence-failed", "vms-kept"])
    assert zk.read(("node.state.daemon", "node2")) == "fence-failed"
    assert "no IPMI" in zk.read(("node.fence_log", "node2"))[1]["detail"]
    assert fence_log(zk, "node1") == []  # never itself


def test_maintenance_mode_suppresses_fencing(zk, monitor):
    zk.write({"base.config.maintenance": True})
    assert monitor.lease.grant()
    time.sleep(1.5)
    assert fence_log(zk, "node2") == []
    zk.write({"base.config.maintenance": False})
    wait_for_log(zk, "node2", ["dead", "fence-failed", "vms-kept"])


def test_a_keepalive_during_the_saving_throws_cancels_the_fence(zk, monitor):
    assert monitor.lease.grant()
    wait_for_log(zk, "node2", ["dead"])
    zk.write({("node.keepalive", "node2"): time.time(), ("node.state.daemon", "node2"): "run"})
    wait_for_log(zk, "node2", ["dead", "alive"])
    assert zk.read(("node.state.daemon", "node2")) == "run"


def test_the_registry_runs_the_monitor_and_each_start_gives_a_whole_window(zk, monitor):
    registry = PrimaryServices([monitor])
    registry.stop_all()  # a relinquish
    assert not monitor.running()
    assert monitor.lease.grant()
    time.sleep(1.5)  # node2 silent for 2.5 x its dead time, lease held, monitor stopped
    assert fence_log(zk, "node2") == []
    started = time.monotonic()
    registry.start_all()  # a takeover
    assert monitor.running()
    wait_for_log(zk, "node2", ["dead", "fence-failed", "vms-kept"])
    assert time.monotonic() - started >= monitor.window  # counted from the start, not before
