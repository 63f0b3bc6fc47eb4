"""The VM controller never waits through a guest's shutdown timeout on a worker: guests that
ignore ACPI (firmware only, no OS to hear the power button) are asked to shut down, restart and
move by shutdown-and-start, all at once and more of them than the controller has workers, and
another VM of the node still starts while they all wait; at the deadline each ends as its
request says. Two node daemons, each with its own real libvirtd."""

import time
import uuid
from collections.abc import Iterator

import libvirt
import pytest

from pvc.node.vms import WORKERS
from pvc.ops import placement, vm, vm_move, vm_state
from tests.conftest import free_port
from tests.libvirt_nodes import LibvirtNodes, firmware_domain_xml
from tests.local_cluster import LocalCluster

POLICY = placement.Policy(selector="vms")
TIMEOUT = 30.0  # timers.vm_shutdown_timeout: ample for a loaded machine to start one guest
KEPT = ["kept1", "kept2"]  # shutdown: at the deadline it gives up, the guest runs on
FORCED = ["forced1", "forced2"]  # shutdown --force: at the deadline it is destroyed
ASKED = [*KEPT, *FORCED, "restarted", "mover"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[LocalCluster]:
    workdir = tmp_path_factory.mktemp("sd")  # short: it holds the libvirtd sockets
    local = LocalCluster(workdir, 2, prefix="pvcg", subnet="10.215.0", zk_port=free_port())
    local.settings = {"timers": {"vm_shutdown_timeout": TIMEOUT}}
    nodes = LibvirtNodes(workdir / "libvirt")
    try:
        local.up()
        local.use_libvirt(nodes.start_cluster(local))
        local.start_all()
        yield local
    finally:
        local.down()
        nodes.stop()


def running_on(zk, name: str, node: str, timeout: float) -> dict:
    record = vm_state.wait_for(zk, name, ("start",), timeout)
    assert record["state"] == "start" and not record["failed_reason"], record
    assert record["node"] == node and record["observed"]["node"] == node, record
    assert record["observed"]["state"] == "running", record
    return record


def wait_for_log(path, lines: list[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not all(line in path.read_text() for line in lines):
        assert time.monotonic() < deadline, [line for line in lines if line not in path.read_text()]
        time.sleep(0.1)


def test_guests_ignoring_acpi_hold_no_worker_and_end_as_asked(cluster):
    assert len(ASKED) > WORKERS
    zk = cluster.observer()
    cluster.wait_for_primary(zk, 30)
    deadline = time.monotonic() + 20
    while any(zk.read(("node.stats", node)) is None for node in cluster.names):
        assert time.monotonic() < deadline, "no keepalive from every node"
        time.sleep(0.1)
    uuids = {}
    for name in [*ASKED, "quick"]:
        uuids[name] = str(uuid.uuid4())
        method = "shutdown" if name == "mover" else "live"
        xml = firmware_domain_xml(name, uuids[name])
        vm.define(zk, POLICY, xml, node="node1", migration_method=method)
    for name in ASKED:
        vm_state.start(zk, POLICY, name)
    for name in ASKED:
        running_on(zk, name, "node1", 60)
    node1 = libvirt.open(cluster.libvirt["node1"]["uri"])
    first_run = node1.lookupByUUIDString(uuids["restarted"]).ID()

    for name in KEPT:
        vm_state.shutdown(zk, name)
    for name in FORCED:
        vm_state.shutdown(zk, name, force=True)
    vm_state.restart(zk, "restarted")
    vm_move.migrate(zk, POLICY, "mover", "node2")
    log = cluster.workdir / "node1" / "pvc.log"
    wait_for_log(log, [f"VM {name}: shutdown requested (ACPI)" for name in ASKED], 20)

    vm_state.start(zk, POLICY, "quick")
    running_on(zk, "quick", "node1", TIMEOUT)
    # every guest asked to go off still runs, still within its time: no worker waits for one
    states = {name: vm.info(zk, name)["state"] for name in ASKED}
    assert states == {
        **{name: "shutdown" for name in KEPT + FORCED},
        "restarted": "restart",
        "mover": "migrate",
    }

    for name in KEPT:
        record = vm_state.wait_for(zk, name, ("stop",), TIMEOUT + 30)
        assert record["state"] == "start", record
        assert record["failed_reason"] == (
            f"the guest did not shut down within {TIMEOUT:g} s; it still runs"
        )
        assert node1.lookupByUUIDString(uuids[name]).isActive()
    for name in FORCED:
        record = vm_state.wait_for(zk, name, ("stop",), TIMEOUT + 30)
        assert record["state"] == "stop" and record["observed"]["state"] == "shutoff", record
        assert uuids[name] not in [d.UUIDString() for d in node1.listAllDomains()]
    running_on(zk, "restarted", "node1", TIMEOUT + 30)
    assert node1.lookupByUUIDString(uuids["restarted"]).ID() != first_run  # a new run
    running_on(zk, "mover", "node2", TIMEOUT + 30)
    assert uuids["mover"] not in [d.UUIDString() for d in node1.listAllDomains()]
    node1.close()
    zk.close()
