"""DHCP from the primary (pvc.node.dhcp) on real node daemons: namespace clients standing for
VMs get leases (reserved ones too), leases reach Zookeeper, and the same MAC keeps its
address from a new primary, after a handover and after a kill -9 (the watchdog drops the
old primary's gateways and dnsmasq)."""

import time

import pytest

from pvc.ops import network_records
from pvc.ops import node as node_ops
from pvc.zk import schema
from tests.primary_network_rig import (
    Client,
    addresses,
    in_ns,
    network,
    observer_with,
    processes_in,
    running_cluster,
    serving,
    wait_for,
    write_network,
)

MAC1 = "52:54:00:24:10:01"
MAC2 = "52:54:00:24:10:02"
NET100 = "dnsmasq/100/"  # in the command line of network 100's dnsmasq


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with running_cluster(tmp_path_factory.mktemp("dhcp")) as local:
        for name, mac in (("vm1", MAC1), ("vm2", MAC2)):
            local.clients.append(Client(local.segments[0], name, mac, local.workdir))
        yield local


@pytest.fixture(scope="module")
def observer(cluster):
    yield from observer_with(cluster, network(100))


def test_a_client_gets_a_lease_recorded_in_zookeeper(cluster, observer):
    primary = cluster.wait_for_primary(observer, 10)
    wait_for("dnsmasq on the primary", lambda: serving(cluster, primary))
    address, took = cluster.clients[0].dhcp(hostname="vmone")
    print(f"\nDHCP lease for a namespace client: {took * 1000:.0f} ms (udhcpc start to bound)")
    assert address.startswith("10.100.0.") and 100 <= int(address.rsplit(".", 1)[1]) <= 200
    lease = wait_for("the lease in Zookeeper", lambda: network_records.leases(observer, 100))
    assert lease[MAC1]["ip"] == address and lease[MAC1]["hostname"] == "vmone"
    assert lease[MAC1]["expiry"] > 0
    bridge_mtu = in_ns(cluster.namespace(primary), "cat", "/sys/class/net/vmbr100/mtu")
    assert cluster.clients[0].leased_mtu() == bridge_mtu.stdout.strip()  # none set: the bridge's


def test_a_reserved_mac_gets_its_reserved_address_without_a_restart(cluster, observer):
    primary = cluster.wait_for_primary(observer, 10)
    before = processes_in(cluster.namespace(primary), "dnsmasq", NET100)
    key = ("network.reservation", "100", schema.mac_component(MAC2))
    observer.write({key: {"ip": "10.100.0.42", "hostname": "reserved"}})
    vm2 = cluster.clients[1]
    assert wait_for("the reserved address", lambda: vm2.dhcp()[0] == "10.100.0.42")
    assert processes_in(cluster.namespace(primary), "dnsmasq", NET100) == before  # no restart
    observer.write({key: {"ip": "10.100.0.43", "hostname": "reserved"}})  # a change: SIGHUP
    assert wait_for(
        "the changed reservation", lambda: cluster.clients[1].dhcp()[0] == "10.100.0.43"
    )


def test_a_changed_network_restarts_dnsmasq_with_its_leases(cluster, observer):
    primary = cluster.wait_for_primary(observer, 10)
    ns = cluster.namespace(primary)
    before = processes_in(ns, "dnsmasq", NET100)
    leased = network_records.leases(observer, 100)[MAC1]["ip"]
    write_network(observer, network(100, dhcp4_end="10.100.0.199", mtu=1400))
    wait_for("a new dnsmasq", lambda: processes_in(ns, "dnsmasq", NET100) not in ([], before))
    assert cluster.clients[0].dhcp(hostname="vmone")[0] == leased


def test_router_advertisements_give_a_client_an_ipv6_address(cluster, observer):
    v6 = {"ip6_network": "fd00:24::/64", "ip6_gateway": "fd00:24::1"}
    write_network(observer, network(100, dhcp4_end="10.100.0.199", mtu=1400, **v6))
    client = cluster.clients[0]
    in_prefix = wait_for(
        "a SLAAC address from the gateway's RA",
        lambda: [a for a in addresses(client.namespace, "eth0") if a.startswith("fd00:24:")],
    )
    assert in_prefix[0].endswith("/64")
    assert wait_for("the IPv6 gateway answers", lambda: client.ping("fd00:24::1"))
    ipv6_mtu = in_ns(client.namespace, "sysctl", "-n", "net.ipv6.conf.eth0.mtu")
    assert ipv6_mtu.stdout.strip() == "1400"  # the RA's MTU option


def test_dnsmasq_binds_only_its_bridge_and_gateway(cluster, observer):
    primary = cluster.wait_for_primary(observer, 10)
    wait_for("dnsmasq on the primary", lambda: serving(cluster, primary))
    result = in_ns(cluster.namespace(primary), "ss", "-H", "-lnup")
    bound = [line.split()[3] for line in result.stdout.splitlines() if "dnsmasq" in line]
    floating = f"{cluster.floating}:53"
    assert bound and all(
        address in (floating, "10.100.0.1:53", "0.0.0.0%vmbr100:67", "[fd00:24::1]:53")
        or address.endswith("%vmbr100:53")  # the bridge's link-local address
        or address.endswith("%vmbr100:547")  # DHCPv6/RA on the bridge
        for address in bound
    ), bound


def link_local(namespace: str, interface: str) -> str:
    shown = in_ns(namespace, "ip", "-6", "-o", "addr", "show", "dev", interface, "scope", "link")
    return shown.stdout.split("inet6 ", 1)[1].split("/", 1)[0]


def ipv6_routers(client) -> str:
    """The client's IPv6 default routes (learnt from router advertisements)."""
    return in_ns(client.namespace, "ip", "-6", "route", "show", "default").stdout


def test_handover_keeps_each_mac_on_its_address_and_moves_the_ipv6_router(cluster, observer):
    """Guests route IPv6 by the RA's source, the primary's own link-local address: the old
    primary withdraws it (lifetime 0) as it hands over, the new one's comes at once."""
    old = cluster.wait_for_primary(observer, 10)
    leases = network_records.leases(observer, 100)
    old_router = link_local(cluster.namespace(old), "vmbr100")
    client = cluster.clients[0]
    wait_for("the client routes by the primary", lambda: old_router in ipv6_routers(client))
    new = next(name for name in cluster.names if name != old)
    cluster.wait_for_run(observer, new)
    node_ops.set_primary(observer, new)
    assert cluster.wait_for_primary(observer, 20, not_=old) == new
    wait_for("DHCP on the new primary", lambda: serving(cluster, new))
    assert processes_in(cluster.namespace(old), "dnsmasq") == []
    assert "10.100.0.1/24" not in addresses(cluster.namespace(old), "vmbr100")
    assert cluster.clients[0].dhcp(hostname="vmone")[0] == leases[MAC1]["ip"]
    new_router = link_local(cluster.namespace(new), "vmbr100")
    wait_for("the old router dropped", lambda: old_router not in ipv6_routers(client), 5)
    wait_for("the new router learnt", lambda: new_router in ipv6_routers(client), 10)


def test_kill_9_of_the_primary_the_watchdog_drops_its_services(cluster, observer):
    old = cluster.wait_for_primary(observer, 10)
    leased = network_records.leases(observer, 100)[MAC1]["ip"]
    old_ns = cluster.namespace(old)
    assert processes_in(old_ns, "dnsmasq")
    cluster.kill(old)
    wait_for("the old primary's dnsmasq gone", lambda: processes_in(old_ns, "dnsmasq") == [])
    wait_for("its gateways gone", lambda: not {"10.100.0.1/24"} & set(addresses(old_ns, "vmbr100")))
    assert "169.254.169.254/32" not in addresses(old_ns, "lo")
    new = cluster.wait_for_primary(observer, 30, not_=old)
    wait_for("DHCP on the new primary", lambda: serving(cluster, new))
    assert cluster.clients[0].dhcp(hostname="vmone")[0] == leased


def test_a_removed_network_stops_its_dnsmasq_and_leaves_nothing_behind(cluster, observer):
    primary = cluster.wait_for_primary(observer, 30)
    wait_for("DHCP on the primary", lambda: serving(cluster, primary))
    folder = cluster.run_root / primary / "dnsmasq" / "100"
    assert (folder / "leases").exists()
    observer.delete(("network", "100"))
    ns = cluster.namespace(primary)
    wait_for("dnsmasq stopped", lambda: processes_in(ns, "dnsmasq", NET100) == [])
    wait_for("its files gone", lambda: not folder.exists())
    time.sleep(2)  # lease polls that were due: none may write into the removed network
    assert not observer.exists(("network", "100"))
    assert "10.100.0.1/24" not in addresses(ns, "vmbr100")
