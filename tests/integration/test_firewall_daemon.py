"""The node daemon's firewall (pvc.node.firewall) on a real node: it follows Zookeeper's
networks and ACLs, reports an ACL the kernel refuses, and its rules outlive the daemon.
Proven with packets through the node's namespace (tests/firewall_rig.py)."""

import time

import pytest

from pvc.ops import network_records
from pvc.ops.network_records import Network
from tests.conftest import free_port
from tests.firewall_rig import GATEWAY, OUTSIDE, UPSTREAM, Rig, vm_ip, vm_mac
from tests.local_cluster import LocalCluster

WAIT = 30.0  # s for the daemon to follow a change, on a loaded host


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    """One daemon (node1) with a managed network's bridge, a VM and an outside host."""
    cluster = LocalCluster(tmp_path_factory.mktemp("fw"), 1, zk_port=free_port())
    cluster.settings["networks"] = {
        "cluster": {"device": "eth0", "floating_ip": f"{cluster.floating}/24"},
        "upstream": {"device": UPSTREAM},
    }
    cluster.up()
    rig = Rig(vms=1, node=cluster.namespace("node1"))
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
        }
    )
    until(lambda: rig.ask(rig.vms[1], "tcp", GATEWAY, 22) is None, "the node's port 22 closed")
    acl(zk, "web", "tcp dport 8080 drop", 1)
    until(lambda: rig.ask(rig.outside, "tcp", vm_ip(1), 8080) is None, "the ACL dropping 8080")
    assert rig.ask(rig.outside, "tcp", vm_ip(1), 8081) == OUTSIDE

    acl(zk, "bad", "masquerade", 2)  # passes nft's check, not the kernel's: stored directly
    until(lambda: firewall_state(zk) == "failed", "the refused ACL reported")
    assert "network 100" in zk.read(("node.firewall", "node1"))["detail"]
    assert "nft: Error" in zk.read(("node.firewall", "node1"))["detail"]
    assert rig.ask(rig.outside, "tcp", vm_ip(1), 8080) == OUTSIDE  # loaded without its ACLs
    assert rig.ask(rig.vms[1], "tcp", GATEWAY, 22) is None  # ...but with its base rules

    zk.delete(("network.acl", "100", "in", "bad"))
    until(lambda: firewall_state(zk) == "ok", "the firewall whole again")
    until(lambda: rig.ask(rig.outside, "tcp", vm_ip(1), 8080) is None, "8080 dropped again")


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
