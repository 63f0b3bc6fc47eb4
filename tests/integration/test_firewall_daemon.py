"""The node daemon's firewall (pvc.node.firewall) on a real node: it follows Zookeeper's
networks, ACLs and this node's VMs' NICs, reports an ACL the kernel refuses (failing its
network closed), follows new taps, and its rules outlive the daemon.
Proven with packets through the node's namespace (tests/firewall_rig.py)."""

import time

import pytest

from pvc.ops import network_records
from pvc.ops.network_records import Network
from tests.conftest import free_port
from tests.firewall_rig import GATEWAY, OUTSIDE, UPSTREAM, Rig, vm_ip, vm_mac
from tests.libvirt_nodes import firmware_domain_xml
from tests.local_cluster import LocalCluster

WAIT = 30.0  # s for the daemon to follow a change, on a loaded host


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    """One daemon (node1) with a managed network's bridge, VM 1 (defined, on node1), VM 2
    (not yet) and an outside host."""
    cluster = LocalCluster(
        tmp_path_factory.mktemp("fw"), 1, zk_port=free_port(), keepalive_interval=10.0
    )
    cluster.settings["networks"] = {
        "cluster": {"device": "eth0", "floating_ip": f"{cluster.floating}/24"},
        "upstream": {"device": UPSTREAM},
    }
    cluster.up()
    rig = Rig(vms=2, node=cluster.namespace("node1"))
    try:
        rig.up()
        rig.serve(rig.node, f"tcp:{GATEWAY}:22")
        rig.serve(rig.vms[1], "tcp:0.0.0.0:8080", "tcp:0.0.0.0:8081")
        cluster.start("node1")
        zk = cluster.running_observer()
        yield cluster, rig, zk
        zk.close()
    finally:
        rig.down()
        cluster.down()


UUIDS = {index: f"5c1c0a6e-0b5e-4b7e-9f43-3e2a1d0c0b0{index}" for index in (1, 2)}


def define(index, node="node1"):
    """VM `index` as Zookeeper holds it: its XML with its NIC on vmbr100, and its node."""
    uuid = UUIDS[index]
    xml = firmware_domain_xml(f"vm{index}", uuid, nic="vmbr100", mac=vm_mac(index))
    return {("domain", uuid): f"vm{index}", ("domain.xml", uuid): xml, ("domain.node", uuid): node}


def until(condition, what):
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, f"not within {WAIT} s: {what}"
        time.sleep(0.5)


def acl(zk, description, rule, order):
    zk.write({("network.acl", "100", "in", description): {"rule": rule, "order": order}})


def firewall_state(zk):
    return (zk.read(("node.firewall", "node1")) or {}).get("state")


def test_the_daemon_builds_the_firewall_from_zookeeper_and_follows_acls(node):
    cluster, rig, zk = node
    until(lambda: firewall_state(zk) == "ok", "the firewall loaded at start")
    assert rig.ask(rig.vms[1], "tcp", GATEWAY, 22) == vm_ip(1)  # no network yet: not guarded
    network = Network(
        vni=100, description="guests", type="managed", ip4_network="10.100.0.0/24",
        ip4_gateway="10.100.0.1", nat=True,
    )  # fmt: skip
    zk.write(
        {
            **network_records.values(network),
            ("network.reservation", "100", "52-54-00-00-01-01"): {"ip": vm_ip(1), "hostname": "a"},
            **define(1),
        }
    )
    until(lambda: rig.ask(rig.vms[1], "tcp", GATEWAY, 22) is None, "the node's port 22 closed")
    assert rig.ping(rig.vms[1], GATEWAY)
    acl(zk, "web", "tcp dport 8080 drop", 1)
    until(lambda: rig.ask(rig.outside, "tcp", vm_ip(1), 8080) is None, "the ACL dropping 8080")
    assert rig.ask(rig.outside, "tcp", vm_ip(1), 8081) == OUTSIDE

    acl(zk, "bad", "masquerade", 2)  # passes nft's check, not the kernel's: stored directly
    until(lambda: firewall_state(zk) == "failed", "the refused ACL reported")
    assert "network 100" in zk.read(("node.firewall", "node1"))["detail"]
    assert "nft: Error" in zk.read(("node.firewall", "node1"))["detail"]
    assert rig.ask(rig.outside, "tcp", vm_ip(1), 8081) is None  # its network failed closed
    assert rig.ask(rig.vms[1], "tcp", GATEWAY, 22) is None  # ...with its base rules
    assert rig.ping(rig.vms[1], GATEWAY)

    zk.delete(("network.acl", "100", "in", "bad"))
    until(lambda: firewall_state(zk) == "ok", "the firewall whole again")
    until(lambda: rig.ask(rig.outside, "tcp", vm_ip(1), 8080) is None, "8080 dropped again")
    assert rig.ask(rig.outside, "tcp", vm_ip(1), 8081) == OUTSIDE


def test_a_tap_passes_only_its_vms_mac_from_the_xml_of_this_nodes_vms(node):
    """Not a lease's MAC (a guest names it); a VM not defined here, or a new tap the ruleset
    does not name yet, is dropped; the port watch names a new tap within a second or so."""
    cluster, rig, zk = node
    assert not rig.ping(rig.vms[2], GATEWAY)  # no VM has its NIC
    # a lease vm1's guest asked for with a MAC of vm1's tap's form: no second candidate
    lease = {"ip": "10.100.0.150", "hostname": "x", "expiry": 0, "client_id": None}
    zk.write({("network.lease", "100", "02-54-00-00-01-01"): lease})
    time.sleep(2)
    try:
        rig.run(rig.vms[1], "ip", "link", "set", "eth0", "address", "02:54:00:00:01:01")
        assert not rig.ping(rig.vms[1], GATEWAY)
    finally:
        rig.run(rig.vms[1], "ip", "link", "set", "eth0", "address", vm_mac(1))
    zk.write({**define(2, node="node2")})
    time.sleep(2)
    assert not rig.ping(rig.vms[2], GATEWAY)  # defined, but another node's
    zk.write({("domain.node", UUIDS[2]): "node1"})
    until(lambda: rig.ping(rig.vms[2], GATEWAY), "vm2's tap allowed its MAC")
    rig.run(rig.node, "ip", "link", "del", "vnet2")
    rig.add_tap(2)  # as a VM's restart makes a new tap
    started = time.monotonic()
    until(lambda: rig.ping(rig.vms[2], GATEWAY), "the new tap named")
    assert time.monotonic() - started < cluster.keepalive_interval  # not the resync: the watch


def test_the_rules_outlive_a_killed_daemon_and_a_restart_keeps_them(node):
    cluster, rig, zk = node
    until(lambda: rig.ask(rig.outside, "tcp", vm_ip(1), 8080) is None, "the ACL in force")
    cluster.kill("node1")
    # the watchdog drops the dead primary's gateway; put it back to route through the node
    until(lambda: rig.run(rig.node, "ip", "-o", "addr", "show", "dev", "vmbr100").stdout
          .find(f" {GATEWAY}/") < 0, "the gateway dropped by the watchdog")  # fmt: skip
    rig.run(rig.node, "ip", "addr", "add", f"{GATEWAY}/24", "dev", "vmbr100")
    assert rig.ask(rig.outside, "tcp", vm_ip(1), 8081) == OUTSIDE
    assert rig.ask(rig.outside, "tcp", vm_ip(1), 8080) is None  # the rules stayed
    zk.write({("node.firewall", "node1"): None})
    cluster.start("node1")
    until(lambda: firewall_state(zk) == "ok", "the firewall loaded by the new daemon")
    assert rig.ask(rig.outside, "tcp", vm_ip(1), 8080) is None
    zk.delete(("network.acl", "100", "in", "web"))
    until(lambda: rig.ask(rig.outside, "tcp", vm_ip(1), 8080) == OUTSIDE, "the ACL removed")
    assert rig.ask(rig.vms[1], "tcp", GATEWAY, 22) is None
    vm = rig.vms[1]  # its tap is guarded with its reserved MAC
    try:
        rig.run(vm, "ip", "link", "set", "eth0", "address", "52:54:00:00:09:09")
        assert not rig.ping(vm, GATEWAY)
    finally:
        rig.run(vm, "ip", "link", "set", "eth0", "address", vm_mac(1))
    assert rig.ping(vm, GATEWAY)
