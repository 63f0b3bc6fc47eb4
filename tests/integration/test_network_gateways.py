"""The primary's gateway addresses (pvc.node.gateways) on real node daemons in namespaces:
on the primary only, following the network's records, waiting for a bridge, moving on
handover."""

import time

import pytest

from pvc.ops import node as node_ops
from tests.primary_network_rig import (
    Client,
    Segment,
    addresses,
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
    write_network(observer, network(101))
    late = Segment(cluster, 101, nodes=[])  # no bridge on any node yet
    try:
        time.sleep(2)  # the gateway's steps find no bridge, and ask again later
        late.add_bridge(primary)
        wait_for("the gateway on the late bridge",
                 lambda: holders(cluster, "vmbr101", "10.101.0.1/24") == [primary])  # fmt: skip
    finally:
        observer.delete(("network", "101"))
        late.down()


def test_handover_moves_every_gateway(cluster, observer):
    write_network(observer, network(100, **V6))
    old = cluster.wait_for_primary(observer, 10)
    wait_for("the gateway", lambda: holders(cluster, "vmbr100", "10.100.0.1/24") == [old])
    new = next(name for name in cluster.names if name != old)
    node_ops.set_primary(observer, new)
    assert cluster.wait_for_primary(observer, 20, not_=old) == new
    wait_for(f"the primary's addresses on {new} only", lambda: only_on(cluster, new))
