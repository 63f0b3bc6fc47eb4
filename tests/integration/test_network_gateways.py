"""The primary's gateway addresses (pvc.node.gateways) on real node daemons in namespaces:
on the primary only, following the network's records, waiting for a bridge, moving on
handover."""

import ipaddress
import os
import subprocess
import sys

import pytest

from pvc.ops import node as node_ops
from tests import processes
from tests.local_cluster import REPO, sh
from tests.primary_network_rig import (
    Client,
    addresses,
    in_ns,
    network,
    observer_with,
    running_cluster,
    wait_for,
    write_network,
)

V6 = {"ip6_network": "fd00:24::/64", "ip6_gateway": "fd00:24::1"}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with running_cluster(tmp_path_factory.mktemp("gateways")) as local:
        yield local


@pytest.fixture(scope="module")
def observer(cluster):
    yield from observer_with(cluster)


def holders(cluster, interface: str, cidr: str) -> list[str]:
    return [n for n in cluster.names if cidr in addresses(cluster.namespace(n), interface)]


PRIMARY_ADDRESSES = (
    ("vmbr100", "10.100.0.1/24"),
    ("vmbr100", "fd00:24::1/64"),
    ("lo", "169.254.169.254/32"),
)


def only_on(cluster, node: str) -> bool:
    """Network 100's gateways and the metadata address are on `node` and nowhere else."""
    return all(holders(cluster, iface, cidr) == [node] for iface, cidr in PRIMARY_ADDRESSES)


def test_gateways_and_the_metadata_address_are_on_the_primary_only(cluster, observer, tmp_path):
    write_network(observer, network(100, **V6))
    primary = cluster.wait_for_primary(observer, 10)
    wait_for("the primary's addresses on the primary", lambda: only_on(cluster, primary))
    client = Client(cluster.segments[0], "gw1", "52:54:00:24:01:01", tmp_path)
    cluster.clients.append(client)
    client.dhcp()
    assert client.ping("10.100.0.1")


def test_the_ipv6_gateway_skips_dad_and_the_node_keeps_taking_router_advertisements(
    cluster, observer
):
    """No duplicate address detection: a new primary's IPv6 gateway is usable at once, never
    tentative (nor dadfailed while the old one's copy still answers). IPv6 forwarding on: the
    cluster device takes router advertisements still (accept_ra 2)."""
    write_network(observer, network(100, **V6))
    primary = cluster.wait_for_primary(observer, 10)
    ns = cluster.namespace(primary)
    wait_for("the IPv6 gateway", lambda: "fd00:24::1/64" in addresses(ns, "vmbr100"))
    shown = in_ns(ns, "ip", "-6", "-o", "addr", "show", "dev", "vmbr100").stdout
    line = next(line for line in shown.splitlines() if "fd00:24::1/64" in line)
    assert "nodad" in line and "tentative" not in line, line
    forwarding = in_ns(ns, "sysctl", "-n", "net.ipv6.conf.all.forwarding").stdout.strip()
    accept_ra = in_ns(ns, "sysctl", "-n", "net.ipv6.conf.eth0.accept_ra").stdout.strip()
    assert (forwarding, accept_ra) == ("1", "2")


def test_a_bridge_without_ipv6_still_gets_its_ipv4_gateway_and_dhcp(cluster, observer, tmp_path):
    """IPv6 disabled on the bridge: the IPv6 gateway cannot be added; IPv4 is served anyway."""
    primary = cluster.wait_for_primary(observer, 10)
    segment = cluster.segments[0]
    for name in cluster.names:
        sh("ip", "netns", "exec", cluster.namespace(name), "sysctl", "-qw",
           "net.ipv6.conf.vmbr100.disable_ipv6=1")  # fmt: skip
    try:
        write_network(observer, network(100, ip6_network="fd00:2a::/64", ip6_gateway="fd00:2a::1"))
        ns = cluster.namespace(primary)
        wait_for("the IPv4 gateway", lambda: "10.100.0.1/24" in addresses(ns, "vmbr100"))
        client = Client(segment, "gw6", "52:54:00:24:01:06", tmp_path)
        cluster.clients.append(client)
        address, _ = client.dhcp(tries=20)
        assert address.startswith("10.100.0.")
    finally:
        write_network(observer, network(100, **V6))
        for name in cluster.names:
            sh("ip", "netns", "exec", cluster.namespace(name), "sysctl", "-qw",
               "net.ipv6.conf.vmbr100.disable_ipv6=0")  # fmt: skip


def test_a_changed_gateway_moves_and_a_removed_network_loses_it(cluster, observer):
    primary = cluster.wait_for_primary(observer, 10)
    ns = cluster.namespace(primary)
    write_network(observer, network(100, ip4_gateway="10.100.0.254", **V6))
    wait_for("the new gateway", lambda: "10.100.0.254/24" in addresses(ns, "vmbr100"))
    wait_for("the old gateway gone", lambda: "10.100.0.1/24" not in addresses(ns, "vmbr100"))
    observer.delete(("network", "100"))
    gateways = {"10.100.0.254/24", "fd00:24::1/64"}
    wait_for("no gateway left", lambda: not gateways & set(addresses(ns, "vmbr100")))
    assert "169.254.169.254/32" in addresses(ns, "lo")  # the metadata address stays


def test_a_gateway_waits_for_its_bridge(cluster, observer):
    primary = cluster.wait_for_primary(observer, 10)
    write_network(observer, network(101))  # the links controller makes vmbr101 meanwhile
    try:
        wait_for("the gateway on the links controller's bridge",
                 lambda: holders(cluster, "vmbr101", "10.101.0.1/24") == [primary])  # fmt: skip
    finally:
        observer.delete(("network", "101"))


def test_handover_moves_every_gateway(cluster, observer):
    write_network(observer, network(100, **V6))
    old = cluster.wait_for_primary(observer, 10)
    wait_for("the gateway", lambda: holders(cluster, "vmbr100", "10.100.0.1/24") == [old])
    new = next(name for name in cluster.names if name != old)
    cluster.wait_for_run(observer, new)
    node_ops.set_primary(observer, new)
    assert cluster.wait_for_primary(observer, 20, not_=old) == new
    wait_for(f"the primary's addresses on {new} only", lambda: only_on(cluster, new))


CAPTURE = """
import socket, sys, time
sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x86DD))
sock.bind(("eth0", 0))
sock.settimeout(1)
print("ready", flush=True)
deadline = time.monotonic() + 20
while time.monotonic() < deadline:
    try:
        frame = sock.recv(2048)
    except TimeoutError:
        continue
    icmp = frame[14 + 40:]
    if frame[14 + 6] == 58 and icmp[0] == 136:  # ICMPv6 neighbour advertisement
        print(icmp[8:24].hex(), icmp[4:8].hex(), frame[14 + 7], frame[14 + 24:14 + 40].hex())
        sys.exit(0)
sys.exit(1)
"""


def test_an_ipv6_address_is_announced_by_an_unsolicited_advertisement(tmp_path):
    """netlink.announce_address, for IPv6: an NA to all nodes, override flag, hop limit 255,
    seen by a neighbour on the segment."""
    slot = os.environ.get("PVC_TEST_SLOT", "")
    sender, receiver = f"pvcna{slot}-a", f"pvcna{slot}-b"
    try:
        for ns in (sender, receiver):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)
            sh("ip", "netns", "add", ns)
        sh("ip", "-n", sender, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0",
           "netns", receiver)  # fmt: skip
        for ns in (sender, receiver):
            sh("ip", "-n", ns, "link", "set", "eth0", "up")
        sh("ip", "-n", sender, "addr", "add", "fd00:24::1/64", "dev", "eth0", "nodad")
        with processes.running(
            ["ip", "netns", "exec", receiver, sys.executable, "-c", CAPTURE],
            stdout=subprocess.PIPE, text=True,
        ) as capture:  # fmt: skip
            assert capture.stdout.readline().strip() == "ready"
            announce = (
                "from pvc.drivers import netlink; netlink.announce_address('eth0', 'fd00:24::1/64')"
            )
            subprocess.run(["ip", "netns", "exec", sender, sys.executable, "-c", announce],
                           cwd=REPO, check=True, capture_output=True, timeout=60)  # fmt: skip
            assert capture.wait(30) == 0
            target, flags, hops, to = capture.stdout.readline().split()
        assert ipaddress.ip_address(bytes.fromhex(target)) == ipaddress.ip_address("fd00:24::1")
        assert ipaddress.ip_address(bytes.fromhex(to)) == ipaddress.ip_address("ff02::1")
        assert int(flags, 16) & 0x20000000 and hops == "255"  # override; not routed
    finally:
        for ns in (sender, receiver):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)
