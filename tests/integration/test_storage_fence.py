"""The storage fence on the session's real Ceph: the fence blocklists a dead node's storage
address for ten years and records it, a recovery waits while Ceph cannot blocklist, the fence
monitor fences storage before it recovers, and a node's own daemon publishes its address and
lifts its fence once it runs again (real daemons in their own network namespaces)."""

import time
from datetime import datetime, timedelta

import pytest

from pvc import config as pvc_config
from pvc.drivers.ceph import Ceph
from pvc.errors import Conflict
from pvc.node.fencing import FenceMonitor
from pvc.node.lease import PrimaryLease
from pvc.node.watchdog_process import WatchdogProcess
from pvc.ops import cluster, storage_fence, vm
from pvc.ops import node as node_ops
from pvc.zk.cache import CachedView, open_mirror
from tests.conftest import free_port
from tests.integration.test_fence_ops import place
from tests.integration.test_node_ops import add_node
from tests.local_cluster import LocalCluster

DEAD_ADDRESS = "10.249.99.7"  # no client comes from there: blocklisting it harms nobody


@pytest.fixture(scope="module")
def ceph(ceph_service):
    driver = Ceph(str(ceph_service.conf), "admin", str(ceph_service.keyring), 5)
    yield driver
    driver.close()


def unreachable_settings(tmp_path) -> dict:
    conf = tmp_path / "ceph.conf"
    conf.write_text("[global]\nmon_host = 127.0.0.1:9\n")  # nothing listens there
    keyring = tmp_path / "keyring"
    keyring.write_text("[client.admin]\n\tkey = AQBXAAAAAAAAABAAAAAAAAAAAAAAAAAAAAAAAA==\n")
    return {"enabled": True, "config_file": str(conf), "keyring": str(keyring), "timeout": 1}


def blocklist(ceph) -> dict[str, str]:
    """Entry -> until when, as Ceph lists it."""
    return {item["addr"]: item["until"] for item in ceph.command("osd blocklist ls") or []}


def test_the_fence_blocklists_the_whole_address_for_ten_years_and_lift_removes_it(zk, ceph):
    cluster.initialize(zk)
    add_node(zk, "node2", storage_address=DEAD_ADDRESS)
    outcome = storage_fence.fence(zk, ceph, "node2")
    entry = f"{DEAD_ADDRESS}:0/0"
    try:
        assert outcome.may_recover and entry in outcome.detail
        until = datetime.fromisoformat(blocklist(ceph)[entry].split(".")[0])
        assert until > datetime.now() + timedelta(days=9 * 365)
        assert zk.read(("node.storage_fence", "node2"))["addr"] == entry
        with pytest.raises(Conflict, match="storage-fenced"):
            node_ops.set_domain_state(zk, "node2", "ready")  # no VM comes home while fenced
        assert "lifted" in storage_fence.lift(zk, ceph, "node2")
        assert entry not in blocklist(ceph)
        assert zk.read(("node.storage_fence", "node2")) is None
        assert storage_fence.lift(zk, ceph, "node2") is None  # nothing left to lift
    finally:
        storage_fence.lift(zk, ceph, "node2")


def test_nothing_to_blocklist_lets_the_recovery_go_on_and_says_why(zk, ceph):
    cluster.initialize(zk)
    add_node(zk, "node2")
    outcome = storage_fence.fence(zk, ceph, "node2")
    assert outcome.may_recover and "no storage address" in outcome.detail
    zk.write({("node.storage_address", "node2"): DEAD_ADDRESS})
    outcome = storage_fence.fence(zk, None, "node2")
    assert outcome.may_recover and "Ceph is not enabled" in outcome.detail
    assert zk.read(("node.storage_fence", "node2")) is None


def test_a_ceph_that_does_not_answer_stops_the_recovery(zk, tmp_path):
    cluster.initialize(zk)
    add_node(zk, "node2", storage_address=DEAD_ADDRESS)
    settings = unreachable_settings(tmp_path)
    driver = Ceph(settings["config_file"], "admin", settings["keyring"], 1)
    outcome = storage_fence.fence(zk, driver, "node2")
    assert not outcome.may_recover
    assert "storage fence failed" in outcome.detail and "\n" not in outcome.detail
    # the record stays (the monitors may have applied it all the same): the node lifts it
    assert zk.read(("node.storage_fence", "node2"))["addr"] == f"{DEAD_ADDRESS}:0/0"


# --- the fence monitor ---------------------------------------------------------------------------


def monitor_config(ceph_settings: dict) -> pvc_config.Config:
    return pvc_config.from_dict(
        {
            "node": {"name": "node1"},
            "cluster": {"coordinators": ["node1", "node2"]},
            "timers": {"keepalive_interval": 0.2, "fence_intervals": 3},
            "fencing": {"failed_fence": "migrate"},
            "api": {"authentication": {"enabled": False}},
            "ceph": ceph_settings,
        }
    )


@pytest.fixture
def dead_node2(zk):
    """node1 primary; node2 (no IPMI, self-fence after 0.5 s) silent and gone, running VM
    `disk-vm` (no other node can take it: a recovery stops it, to start when node2 is ready).
    Yields a function that starts the monitor."""
    cluster.initialize(zk)
    add_node(zk, "node1", router="primary", keepalive=time.time())
    add_node(zk, "node2", keepalive=time.time(), alive=False, storage_address=DEAD_ADDRESS,
             static={"self_fence_after": 0.5})  # fmt: skip
    place(zk, "disk-vm", "node2")
    started = []

    def start(config: pvc_config.Config) -> FenceMonitor:
        watchdog = WatchdogProcess()
        lease = PrimaryLease(zk, watchdog)
        monitor = FenceMonitor(zk, CachedView(zk, open_mirror(zk)), "node1", config, lease)
        started.append((monitor, lease, watchdog))
        monitor.start()
        assert lease.grant()
        return monitor

    yield start
    for monitor, lease, watchdog in started:
        monitor.stop()
        lease.close()
        watchdog.close()


def events(zk, node: str) -> list[str]:
    return [entry["event"] for entry in zk.read(("node.fence_log", node)) or []]


def wait_for_event(zk, node: str, event: str, timeout: float = 20) -> list[str]:
    deadline = time.monotonic() + timeout
    while event not in (seen := events(zk, node)):
        assert time.monotonic() < deadline, seen
        time.sleep(0.05)
    return seen


def test_the_monitor_fences_storage_before_it_recovers(zk, ceph, ceph_service, dead_node2):
    dead_node2(monitor_config(ceph_service.settings()))
    try:
        seen = wait_for_event(zk, "node2", "recovered")
        assert seen == ["dead", "fence-failed", "storage-fence", "recovered"]
        assert f"{DEAD_ADDRESS}:0/0" in blocklist(ceph)
        record = vm.info(zk, "disk-vm")
        assert (record["state"], record["node_autostart"]) == ("stop", True)  # recovered
    finally:
        storage_fence.lift(zk, ceph, "node2")


def test_the_vms_wait_while_the_storage_fence_fails(zk, tmp_path, dead_node2):
    dead_node2(monitor_config(unreachable_settings(tmp_path)))
    wait_for_event(zk, "node2", "storage-fence-failed")
    time.sleep(1.0)  # tried again meanwhile, never recovered
    log = zk.read(("node.fence_log", "node2"))
    assert "recovered" not in events(zk, "node2")
    assert "did not answer" in log[-1]["detail"] or "cannot" in log[-1]["detail"]
    assert zk.read(("node.state.daemon", "node2")) == "fence-failed"
    assert vm.info(zk, "disk-vm")["state"] == "start"  # not recovered


# --- node daemons ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ceph_nodes(tmp_path_factory, ceph_service):
    local = LocalCluster(
        tmp_path_factory.mktemp("storage-fence"), 2, prefix="pvcs", subnet="10.217.0",
        zk_port=free_port(),
    ).up()  # fmt: skip
    try:
        local.use_ceph(ceph_service)
        local.start_all()
        yield local
    finally:
        local.down()


def wait_for(check, timeout: float = 30):
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    return found


def test_each_daemon_publishes_its_address_and_lifts_its_fence_when_back(ceph_nodes, ceph):
    zk = ceph_nodes.running_observer(30)
    try:
        for index, name in enumerate(ceph_nodes.names, start=1):
            address = wait_for(lambda name=name: zk.read(("node.storage_address", name)))
            assert address == f"{ceph_nodes.subnet}.{10 + index}"  # its own, not the host's
        # node2 was fenced while it seemed dead; it runs (no VMs): its daemon lifts the fence
        outcome = storage_fence.fence(zk, ceph, "node2")
        entry = f"{ceph_nodes.subnet}.12:0/0"
        assert outcome.may_recover and entry in outcome.detail
        wait_for(lambda: zk.read(("node.storage_fence", "node2")) is None)
        assert entry not in blocklist(ceph)
    finally:
        storage_fence.lift(zk, ceph, "node2")
        zk.close()
