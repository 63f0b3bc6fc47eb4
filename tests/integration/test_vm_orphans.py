"""Orphans (pvc.node.vms with the cluster's mark, pvc.drivers.libvirt): a VM removed while its
node's daemon is down is gone from that node once the daemon returns; domains that are not
this cluster's (unmarked, or another cluster's) stay; a domain pvc started before it marked
domains is marked, and then removed like any other. Two node daemons, each with its own real
libvirtd, firmware-only guests."""

import time
import uuid
from collections.abc import Iterator

import libvirt
import pytest

from pvc.drivers.libvirt import MARK_NAMESPACE, marked
from pvc.ops import cluster, placement, vm, vm_state
from tests.conftest import free_port
from tests.libvirt_nodes import LibvirtNodes, firmware_domain_xml
from tests.local_cluster import LocalCluster

POLICY = placement.Policy(selector="vms")


@pytest.fixture(scope="module")
def local(tmp_path_factory) -> Iterator[LocalCluster]:
    workdir = tmp_path_factory.mktemp("orph")  # short: it holds the libvirtd sockets
    cluster_ = LocalCluster(workdir, 2, prefix="pvco", subnet="10.216.0", zk_port=free_port())
    nodes = LibvirtNodes(workdir / "libvirt")
    try:
        cluster_.up()
        cluster_.use_libvirt(nodes.start_cluster(cluster_))
        cluster_.start_all()
        yield cluster_
    finally:
        cluster_.down()
        nodes.stop()


@pytest.fixture(scope="module")
def zk(local):
    handler = local.running_observer(60)
    yield handler
    handler.close()


@pytest.fixture
def node1(local) -> Iterator[libvirt.virConnect]:
    """A connection of the test's own to node1's libvirtd."""
    conn = libvirt.open(local.libvirt["node1"]["uri"])
    yield conn
    conn.close()


def owner(conn: libvirt.virConnect, domain_uuid: str) -> str | None:
    try:
        mark = conn.lookupByUUIDString(domain_uuid).metadata(
            libvirt.VIR_DOMAIN_METADATA_ELEMENT, MARK_NAMESPACE, 0
        )
    except libvirt.libvirtError:
        return None
    return mark.split('uuid="')[1].split('"')[0]


def present(conn: libvirt.virConnect, domain_uuid: str) -> bool:
    try:
        conn.lookupByUUIDString(domain_uuid)
        return True
    except libvirt.libvirtError:
        return False


def until(check, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def define_running(zk, name: str) -> str:
    vm_uuid = str(uuid.uuid4())
    vm.define(zk, POLICY, firmware_domain_xml(name, vm_uuid), node="node1")
    vm_state.start(zk, POLICY, name)
    record = vm_state.wait_for(zk, name, ("start",), 60)
    assert record["observed"] == {**record["observed"], "node": "node1", "state": "running"}
    return vm_uuid


def restart_node1(local: LocalCluster, zk, while_down) -> None:
    """Stops node1's daemon, runs `while_down()`, starts the daemon and waits until it runs."""
    assert local.stop("node1") == 0
    until(lambda: not zk.exists(("node.alive", "node1")), 30, "node1's daemon to go")
    while_down()
    local.start("node1")
    until(lambda: zk.read(("node.state.daemon", "node1")) == "run", 60, "node1's daemon")


def test_a_vm_removed_while_its_daemon_was_down_is_gone_when_it_returns(local, zk, node1):
    identity = cluster.identity(zk)
    removed = define_running(zk, "removed")
    assert owner(node1, removed) == identity  # pvc marked the domain it started
    unmarked, foreign = str(uuid.uuid4()), str(uuid.uuid4())
    node1.createXML(firmware_domain_xml("unmarked", unmarked), 0)  # someone else's guests
    node1.createXML(marked(firmware_domain_xml("foreign", foreign), "another-cluster"), 0)

    log_file = local.workdir / "node1" / "pvc.log"
    returned_at = []  # where the log of the returning daemon begins

    def remove() -> None:
        vm.undefine(zk, "removed", force=True)
        returned_at.append(len(log_file.read_text()))

    restart_node1(local, zk, remove)
    until(lambda: not present(node1, removed), 30, "the orphan to be removed")
    said = (
        f"domain {removed} is this cluster's but its VM is gone: removing it",
        f"domain {unmarked} is not marked as any cluster's: leaving it alone",
        f"domain {foreign} is another cluster's: leaving it alone",
    )  # each domain is handled by its own worker: the lines come in any order
    until(lambda: all(line in log_file.read_text()[returned_at[0] :] for line in said), 30,
          "the three domains' log lines")  # fmt: skip
    for kept in (unmarked, foreign):
        assert node1.lookupByUUIDString(kept).isActive()
    time.sleep(local.keepalive_interval * 2)  # a resync or two later: still left alone, once
    log = log_file.read_text()[returned_at[0] :]
    assert log.count(f"domain {unmarked} is not marked") == 1
    assert all(node1.lookupByUUIDString(kept).isActive() for kept in (unmarked, foreign))
    for kept in (unmarked, foreign):
        node1.lookupByUUIDString(kept).destroy()


def test_a_domain_started_before_marks_is_marked_then_removed_as_an_orphan(local, zk, node1):
    """A VM running unmarked, as a pvc without marks started it: the returning daemon marks
    it; removed while the daemon is down once more, it is an orphan like any other."""
    legacy = define_running(zk, "legacy")

    def unmark() -> None:
        domain = node1.lookupByUUIDString(legacy)
        domain.setMetadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, None, None, MARK_NAMESPACE,
                           libvirt.VIR_DOMAIN_AFFECT_LIVE)  # fmt: skip
        assert owner(node1, legacy) is None

    restart_node1(local, zk, unmark)
    until(lambda: owner(node1, legacy) == cluster.identity(zk), 30, "the domain's mark")
    assert node1.lookupByUUIDString(legacy).isActive()  # marked, not disturbed

    restart_node1(local, zk, lambda: vm.undefine(zk, "legacy", force=True))
    until(lambda: not present(node1, legacy), 30, "the orphan to be removed")
