"""DNS from the primary on real node daemons: each network's dnsmasq answers its domain for
leases and reservations and never forwards it (pvc.node.dhcp); the forwarder on the cluster
floating address answers every network's domain (pvc.node.dns_forwarder), a network added
later too; both from the new primary after a handover."""

import subprocess

import pytest

from pvc.ops import node as node_ops
from pvc.zk import schema
from tests.primary_network_rig import (
    Client,
    Segment,
    lookup,
    network,
    observer_with,
    running_cluster,
    wait_for,
    write_network,
)

MAC = "52:54:00:24:30:01"
RESERVED_MAC = "52:54:00:24:30:99"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with running_cluster(tmp_path_factory.mktemp("dns")) as local:
        local.client = Client(local.segments[0], "dns1", MAC, local.workdir)
        local.clients.append(local.client)
        yield local


@pytest.fixture(scope="module")
def observer(cluster):
    reservation = ("network.reservation", "100", schema.mac_component(RESERVED_MAC))
    for zk in observer_with(cluster, network(100)):
        zk.write({reservation: {"ip": "10.100.0.50", "hostname": "beta"}})
        yield zk


def from_host(name: str, server: str) -> list[str]:
    """What `server` answers the host's namespace (beside the nodes' cluster network)."""
    return lookup([], name, server)


def test_a_lease_hostname_and_a_reservation_resolve_on_the_gateway(cluster, observer):
    address, _ = cluster.client.dhcp(hostname="alpha")
    client = cluster.client
    resolved = wait_for("alpha", lambda: client.resolve("alpha.net100.test", "10.100.0.1"))
    assert resolved == [address]
    # a reservation is in DNS before its VM ever asked for a lease
    assert client.resolve("beta.net100.test", "10.100.0.1") == ["10.100.0.50"]


def test_the_network_domain_is_never_forwarded(cluster, observer):
    cluster.client.dhcp(hostname="alpha")
    result = subprocess.run(
        ["ip", "netns", "exec", cluster.client.namespace, "busybox", "nslookup",
         "nobody.net100.test", "10.100.0.1"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    # answered at once by the gateway itself (forwarded, it would fail: no upstream here)
    assert "NXDOMAIN" in result.stdout + result.stderr


def test_the_forwarder_on_the_floating_address_answers_every_domain(cluster, observer):
    address, _ = cluster.client.dhcp(hostname="alpha")
    floating = cluster.floating
    assert wait_for("alpha", lambda: from_host("alpha.net100.test", floating)) == [address]
    assert from_host("beta.net100.test", floating) == ["10.100.0.50"]
    assert from_host("example.org", floating) == []  # no open resolver
    segment = Segment(cluster, 101)  # a network added now: the forwarder reads it on SIGHUP
    cluster.segments.append(segment)
    observer.write({("network.reservation", "101", "52-54-00-24-31-01"): {"ip": "10.101.0.9",
                    "hostname": "gamma"}})  # fmt: skip
    write_network(observer, network(101))
    assert wait_for("gamma", lambda: from_host("gamma.net101.test", floating)) == ["10.101.0.9"]


def test_dns_follows_the_primary(cluster, observer):
    address, _ = cluster.client.dhcp(hostname="alpha")
    old = cluster.wait_for_primary(observer, 10)
    new = next(name for name in cluster.names if name != old)
    cluster.wait_for_run(observer, new)
    node_ops.set_primary(observer, new)
    assert cluster.wait_for_primary(observer, 20, not_=old) == new
    client = cluster.client
    assert wait_for("alpha", lambda: client.resolve("alpha.net100.test", "10.100.0.1")) == [address]
    assert wait_for("alpha", lambda: from_host("alpha.net100.test", cluster.floating)) == [address]
