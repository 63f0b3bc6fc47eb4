"""The libvirt infrastructure the VM tests stand on, through the libvirt binding alone: two
libvirtd nodes, each in the network namespace of a LocalCluster node, run the tiny Linux guest
and live-migrate it over the bridge while its console keeps ticking (~15 s)."""

import uuid
from collections.abc import Iterator

import libvirt
import pytest

from tests.conftest import free_port
from tests.libvirt_nodes import (
    LibvirtNode,
    LibvirtNodes,
    build_guest,
    linux_domain_xml,
    ticks,
    wait_for_tick,
)
from tests.local_cluster import LocalCluster


@pytest.fixture
def libvirt_pair(tmp_path_factory) -> Iterator[list[LibvirtNode]]:
    """Two libvirt nodes in the namespaces pvcl-node1 (10.203.0.11) and pvcl-node2 (.12)."""
    workdir = tmp_path_factory.mktemp("lv")  # a short path: it holds the libvirtd sockets
    cluster = LocalCluster(workdir, nodes=2, prefix="pvcl", subnet="10.203.0", zk_port=free_port())
    nodes = LibvirtNodes(workdir / "libvirt")
    try:
        cluster.up()
        yield nodes.start_cluster(cluster)
    finally:
        nodes.stop()
        cluster.down()


def test_guest_live_migrates_while_ticking(libvirt_pair, tmp_path):
    node_a, node_b = libvirt_pair
    console_log = tmp_path / "console.log"
    name = "pvcl-guest"
    xml = linux_domain_xml(name, str(uuid.uuid4()), build_guest(), console_log)
    source, target = libvirt.open(node_a.uri), libvirt.open(node_b.uri)
    try:
        domain = source.createXML(xml)
        wait_for_tick(console_log, 1, timeout=20)

        flags = libvirt.VIR_MIGRATE_LIVE | libvirt.VIR_MIGRATE_PEER2PEER
        params = {libvirt.VIR_MIGRATE_PARAM_URI: f"tcp://{node_b.address}"}
        domain.migrateToURI3(node_b.tcp_uri, params, flags)
        assert source.listAllDomains() == []
        moved = target.lookupByName(name)
        assert moved.state()[0] == libvirt.VIR_DOMAIN_RUNNING
        wait_for_tick(console_log, max(ticks(console_log)) + 2, timeout=10)

        # One boot, then one unbroken count: the guest went on where it was.
        assert console_log.read_text().count("pvc-guest booted") == 1
        counted = ticks(console_log)
        assert counted == list(range(len(counted)))

        moved.destroy()
        assert target.listAllDomains() == []
    finally:
        source.close()
        target.close()
