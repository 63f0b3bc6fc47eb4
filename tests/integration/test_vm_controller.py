"""VMs through real node daemons, each on its own libvirt test:///default connection."""

import time
import uuid

import pytest

from pvc.limits import REASON_MAX
from pvc.ops import node as node_ops
from pvc.ops import placement, vm, vm_move, vm_state
from tests.conftest import free_port
from tests.local_cluster import LocalCluster

POLICY = placement.Policy(selector="vms")


def domain(name: str, memory: int = 256) -> str:
    return (
        f"<domain type='test'><name>{name}</name><uuid>{uuid.uuid4()}</uuid>"
        f"<memory unit='MiB'>{memory}</memory><vcpu>1</vcpu><os><type>hvm</type></os></domain>"
    )


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    local = LocalCluster(
        tmp_path_factory.mktemp("vms"), 3, prefix="pvcw", subnet="10.204.0", zk_port=free_port()
    ).up()
    local.start_all()
    yield local
    local.down()


@pytest.fixture(scope="module")
def zk(cluster):
    handler = cluster.running_observer()
    yield handler
    handler.close()


def running_on(zk, name: str, node: str, timeout: float = 10) -> dict:
    record = vm_state.wait_for(zk, name, ("start",), timeout)
    assert record["state"] == "start", record
    assert record["node"] == node and record["observed"]["node"] == node
    assert record["observed"]["state"] == "running"
    return record


def wait_figure(zk, node: str, field: str, value: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while (zk.read(("node.stats", node)) or {}).get(field) != value:
        assert time.monotonic() < deadline, (node, field, zk.read(("node.stats", node)))
        time.sleep(0.1)


def test_define_spreads_and_start_runs_each_on_its_node(cluster, zk):
    nodes = [vm.define(zk, POLICY, domain(f"web{i}"))["node"] for i in range(3)]
    assert sorted(nodes) == cluster.names  # the vms selector spread them
    for i in range(3):
        vm_state.start(zk, POLICY, f"web{i}")
    for i, node in enumerate(nodes):
        running_on(zk, f"web{i}", node)
    for node in cluster.names:
        wait_figure(zk, node, "vms_running", 1)


def test_migrate_and_unmigrate(cluster, zk):
    home = vm.info(zk, "web0")["node"]
    target = next(n for n in cluster.names if n != home)
    vm_move.migrate(zk, POLICY, "web0", target)
    record = running_on(zk, "web0", target)
    assert record["lastnode"] == home
    vm_move.unmigrate(zk, POLICY, "web0")
    record = running_on(zk, "web0", home)
    assert record["lastnode"] == ""


def test_flush_moves_everything_away_and_ready_brings_it_back(cluster, zk):
    node = vm.info(zk, "web1")["node"]
    node_ops.set_domain_state(zk, node, "flush")
    deadline = time.monotonic() + 30
    while zk.read(("node.state.domain", node)) != "flushed":
        assert time.monotonic() < deadline, "flush did not finish"
        time.sleep(0.1)
    assert vm.list_vms(zk, node=node) == []
    moved = running_on(zk, "web1", vm.info(zk, "web1")["node"])
    assert moved["node"] != node and moved["lastnode"] == node
    wait_figure(zk, node, "vms_running", 0)
    node_ops.set_domain_state(zk, node, "ready")
    deadline = time.monotonic() + 30
    while zk.read(("node.state.domain", node)) != "ready":
        assert time.monotonic() < deadline, "ready did not finish"
        time.sleep(0.1)
    running_on(zk, "web1", node)


def test_shutdown_stop_disable_restart(cluster, zk):
    vm_state.shutdown(zk, "web2")
    record = vm_state.wait_for(zk, "web2", ("stop",), 10)
    assert record["state"] == "stop" and record["observed"]["state"] == "shutoff"
    vm_state.start(zk, POLICY, "web2")
    node = running_on(zk, "web2", vm.info(zk, "web2")["node"])["node"]
    vm_state.disable(zk, "web2")
    deadline = time.monotonic() + 10
    while vm.info(zk, "web2")["observed"]["state"] != "shutoff":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    with pytest.raises(Exception, match="disabled"):
        vm_state.start(zk, POLICY, "web2")
    vm_state.start(zk, POLICY, "web2", force=True)
    running_on(zk, "web2", node)
    vm_state.restart(zk, "web2")
    running_on(zk, "web2", node)


def test_remove_with_force_destroys_the_running_vm(cluster, zk):
    """The test driver's domains are private to each daemon: its log is what we can see."""
    record = running_on(zk, "web2", vm.info(zk, "web2")["node"])
    with pytest.raises(Exception, match="running"):
        vm.undefine(zk, "web2")
    vm.undefine(zk, "web2", force=True)
    log = cluster.workdir / record["node"] / "pvc.log"
    deadline = time.monotonic() + 10
    removed = f"domain {record['uuid']} is this cluster's but its VM is gone: removing it"
    while removed not in log.read_text():
        assert time.monotonic() < deadline, "the removed VM was not destroyed"
        time.sleep(0.1)
    assert "web2" not in [r["name"] for r in vm.list_vms(zk)]


def test_a_vm_that_fails_to_start_says_why(cluster, zk):
    # Valid XML (define checks it), but test:///default runs a domain named "test" already.
    node = vm.define(zk, POLICY, domain("test"))["node"]
    vm_state.start(zk, POLICY, "test")
    record = vm_state.wait_for(zk, "test", ("start",), 10)
    assert record["state"] == "fail"
    assert "domain 'test' already exists" in record["failed_reason"]
    assert record["node"] == node


def test_a_failed_reason_from_libvirt_is_one_bounded_line(cluster, zk):
    """libvirt's error echoes what it refused: here 200 KB over 50,000 lines. The reason
    recorded (and shown by the CLI) is one line of at most limits.REASON_MAX characters."""
    xml = domain("echoed")
    vm_uuid = vm.define(zk, POLICY, xml)["uuid"]
    refused = xml.replace("<type>hvm</type>", "<type>" + "x\ny " * 50_000 + "</type>")
    zk.write({("domain.xml", vm_uuid): refused})  # libvirt refuses it only at start
    vm_state.start(zk, POLICY, "echoed")
    record = vm_state.wait_for(zk, "echoed", ("start",), 10)
    assert record["state"] == "fail"
    reason = record["failed_reason"]
    assert "\n" not in reason and len(reason) <= REASON_MAX
    assert reason.startswith("unsupported configuration: unknown OS type 'x y x y"), reason[:80]
