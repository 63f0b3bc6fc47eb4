"""pvc.ops.network, network_dhcp and network_acl on a real Zookeeper: every verb, and every
refusal with its reason, leaving /networks exactly as it was (same keys, values, versions)."""

import pytest

from pvc.errors import Conflict, InvalidInput, NotFound
from pvc.ops import cluster, network, network_acl, network_dhcp, network_records
from tests.integration.test_vm_ops import snapshot

MAC1, MAC2 = "52:54:00:00:00:01", "52:54:00:00:00:02"


def tree(zk, root="/networks") -> dict:
    """Every key under `root` with its value and version."""
    return snapshot(zk, (root,))


def refused(zk, error, verb, *args, **kwargs) -> str:
    """The message of a verb refused with `error`, which changed nothing under /networks."""
    before = tree(zk)
    with pytest.raises(error) as caught:
        verb(zk, *args, **kwargs)
    assert tree(zk) == before
    return caught.value.message


@pytest.fixture
def nets(zk):
    """An initialised cluster with managed network 100 (DHCP) and bridged network 200."""
    cluster.initialize(zk)
    network.add(
        zk, 100, nettype="managed", description="web", domain="web.example",
        ip4_network="10.100.0.0/24", dhcp4=True, dhcp4_start="10.100.0.100",
        dhcp4_end="10.100.0.199", name_servers="1.1.1.1, 9.9.9.9",
    )  # fmt: skip
    network.add(zk, 200, nettype="bridged", vlan=20)
    return zk


def test_add_stores_a_normalised_network_with_defaults(nets):
    web = network_records.read(nets, 100)
    assert (web.type, web.ip4_gateway, web.domain) == ("managed", "10.100.0.1", "web.example")
    assert web.name_servers == ("1.1.1.1", "9.9.9.9") and web.dhcp4 and not web.nat
    answer = network.add(nets, "300", nettype="managed", ip6_network="FD00:300::/64", mtu=1400)
    assert answer["network"]["ip6"] == {
        "network": "fd00:300::/64", "gateway": "fd00:300::1", "dhcp_flag": True
    }  # fmt: skip
    bridged = network.info(nets, 200)
    assert (bridged["type"], bridged["vlan"], bridged["ip4"]["network"]) == ("bridged", 20, None)
    assert [n["vni"] for n in network.list_networks(nets)] == [100, 200, 300]
    assert [n["vni"] for n in network.list_networks(nets, "WEB")] == [100]
    assert [n["vni"] for n in network.list_networks(nets, "30")] == [300]


@pytest.mark.parametrize(
    "vni, settings, error, reason",
    [
        (0, {}, InvalidInput, "a number from 1 to 16777215"),
        (16777216, {}, InvalidInput, "a number from 1 to 16777215"),
        ("1e3", {}, InvalidInput, "invalid VNI"),
        (100, {}, Conflict, "network 100 exists already"),
        (101, {"ip4_network": "10.100.0.128/25"}, Conflict,
         "overlaps 10.100.0.0/24 of network 100"),
        (101, {"ip4_network": "10.101.0.0/24", "ip4_gateway": "10.102.0.1"}, InvalidInput,
         "outside the network"),
        (101, {"ip4_network": "10.101.0.0/24", "ip4_gateway": "10.101.0.255"}, InvalidInput,
         "broadcast"),
        (101, {"ip4_network": "10.101.0.1/24"}, InvalidInput, "host bits set"),
        (101, {"ip4_network": "fd00::/64"}, InvalidInput, "not an IPv4 subnet"),
        (101, {"ip4_network": "10.101.0.0/31"}, InvalidInput, "too small"),
        (101, {"ip4_network": "10.101.0.0/24", "dhcp4": True, "dhcp4_start": "10.101.0.10",
               "dhcp4_end": "10.101.1.10"}, InvalidInput, "outside the network"),
        (101, {"ip4_network": "10.101.0.0/24", "dhcp4": True, "dhcp4_start": "10.101.0.90",
               "dhcp4_end": "10.101.0.10"}, InvalidInput, "starts after it ends"),
        (101, {"ip4_network": "10.101.0.0/24", "dhcp4": True, "dhcp4_start": "10.101.0.1",
               "dhcp4_end": "10.101.0.10"}, InvalidInput, "contains the gateway"),
        (101, {"ip4_network": "10.101.0.0/24", "dhcp4": True}, InvalidInput, "needs a range"),
        (101, {"dhcp4": True}, InvalidInput, "DHCP needs an IPv4 network"),
        (101, {"nat": True}, InvalidInput, "NAT needs an IPv4 network"),
        (101, {"dhcp6": True}, InvalidInput, "DHCPv6 needs an IPv6 network"),
        (101, {"domain": "bad_domain.example"}, InvalidInput, "invalid domain"),
        (101, {"domain": "web.example"}, Conflict, "domain web.example is network 100's"),
        (101, {"name_servers": "1.1.1.1,dns.example"}, InvalidInput, "not an IP address"),
        (101, {"mtu": 500}, InvalidInput, "invalid MTU 500: from 576 to 65535"),
        (101, {"mtu": 70000}, InvalidInput, "invalid MTU"),
        (101, {"vlan": 5}, InvalidInput, "a VLAN tag is for bridged networks"),
        (101, {"nettype": "routed"}, InvalidInput, "managed or bridged"),
        (201, {"nettype": "bridged", "ip4_network": "10.201.0.0/24"}, InvalidInput,
         "no L3 service from pvc: ip4_network"),
        (201, {"nettype": "bridged", "vlan": 20}, Conflict, "carries VLAN 20"),
        (201, {"nettype": "bridged", "vlan": 5000}, InvalidInput, "invalid VLAN 5000"),
        (101, {"description": "two\nlines"}, InvalidInput, "printable characters on one line"),
    ],
)  # fmt: skip
def test_add_refusals_name_the_reason_and_write_nothing(nets, vni, settings, error, reason):
    assert reason in refused(nets, error, network.add, vni, **settings)


def test_ipv6_overlap_and_untagged_bridged_networks_are_refused(nets):
    network.add(nets, 300, nettype="managed", ip6_network="fd00:300::/64")
    message = refused(nets, Conflict, network.add, 301, ip6_network="fd00:300::/64")
    assert "overlaps fd00:300::/64 of network 300" in message
    message = refused(nets, InvalidInput, network.add, 301, ip6_network="fd00:300::/48")
    assert "not a /64" in message
    network.add(nets, 201, nettype="bridged", vlan=0)
    message = refused(nets, Conflict, network.add, 202, nettype="bridged", vlan=0)
    assert "untagged traffic" in message


def test_a_bridged_network_is_tagged_with_its_vni_by_default(nets):
    network.add(nets, 202, nettype="bridged")
    assert network_records.read(nets, 202).vlan == 202
    message = refused(nets, InvalidInput, network.add, 5000, nettype="bridged")
    assert "give a VLAN tag, or 0 for untagged" in message
    network.add(nets, 5000, nettype="bridged", vlan=50)
    assert network_records.read(nets, 5000).vlan == 50


def test_modify_changes_what_is_given_and_keeps_the_rest(nets):
    network.modify(nets, 100, description="web tier", mtu=1400, nat=True)
    web = network_records.read(nets, 100)
    assert (web.description, web.mtu, web.nat, web.domain) == (
        "web tier",
        1400,
        True,
        "web.example",
    )
    # a new subnet: the gateway follows it; the DHCP range must be given anew
    assert "outside the network" in refused(nets, InvalidInput, network.modify, 100,
                                            ip4_network="10.110.0.0/24")  # fmt: skip
    network.modify(nets, 100, ip4_network="10.110.0.0/24", dhcp4_start="10.110.0.10",
                   dhcp4_end="10.110.0.20")  # fmt: skip
    web = network_records.read(nets, 100)
    assert (web.ip4_gateway, web.dhcp4_start) == ("10.110.0.1", "10.110.0.10")
    network.modify(nets, 100, dhcp4=False, nat=False, ip4_network="", domain="", mtu=0)
    web = network_records.read(nets, 100)
    assert (web.ip4_network, web.ip4_gateway, web.dhcp4, web.domain, web.mtu) == (
        None, None, False, None, None
    )  # fmt: skip
    network.modify(nets, 200, vlan=0)
    assert network_records.read(nets, 200).vlan is None


def test_modify_refusals(nets):
    assert "nothing to change" in refused(nets, InvalidInput, network.modify, 100)
    assert "does not exist" in refused(nets, NotFound, network.modify, 999, mtu=1400)
    assert "type cannot change" in refused(nets, InvalidInput, network.modify, 200,
                                           nettype="managed")  # fmt: skip
    network.add(nets, 101, nettype="managed", ip4_network="10.101.0.0/24")
    assert "overlaps" in refused(nets, Conflict, network.modify, 101, ip4_network="10.100.0.0/16")
    assert "DHCP needs an IPv4 network" in refused(nets, InvalidInput, network.modify, 100,
                                                   ip4_network="")  # fmt: skip
    network_dhcp.add(nets, 100, MAC1, "10.100.0.50")
    assert "reservation of 52:54:00:00:00:01 (10.100.0.50) would be outside" in refused(
        nets, Conflict, network.modify, 100, ip4_network="10.120.0.0/24",
        dhcp4_start="10.120.0.100", dhcp4_end="10.120.0.199",
    )  # fmt: skip
    assert "reserved for" in refused(nets, Conflict, network.modify, 100, ip4_gateway="10.100.0.50")


def test_remove_takes_reservations_leases_and_acls_with_it(nets):
    network_dhcp.add(nets, 100, MAC1, "10.100.0.50", "www")
    nets.write({("network.lease", "100", "52-54-00-00-00-02"): {"ip": "10.100.0.120"}})
    network_acl.add(nets, 100, "in", "ssh", "tcp dport 22 accept")
    assert network.remove(nets, 100)["message"] == "network 100 removed"
    assert not tree(nets, "/networks/100")
    assert network_records.vnis(nets) == [200]
    assert "does not exist" in refused(nets, NotFound, network.remove, 100)


def test_reservations_and_leases(nets):
    answer = network_dhcp.add(nets, 100, "52-54-00-00-00-01", "10.100.0.50", "www")
    assert answer["message"] == "10.100.0.50 reserved for 52:54:00:00:00:01 on network 100"
    lease = {"ip": "10.100.0.120", "hostname": "db", "expiry": 4102444800, "client_id": "x"}
    nets.write({("network.lease", "100", "52-54-00-00-00-02"): lease})
    rows = network_dhcp.list_leases(nets, 100)
    assert [(r["mac"], r["ip"], r["hostname"], r["static"]) for r in rows] == [
        (MAC1, "10.100.0.50", "www", True), (MAC2, "10.100.0.120", "db", False)
    ]  # fmt: skip
    assert [r["mac"] for r in network_dhcp.list_leases(nets, 100, static=True)] == [MAC1]
    assert network_dhcp.info(nets, 100, MAC2)["expiry"] == 4102444800
    assert network_dhcp.remove(nets, 100, MAC1.upper())["message"].startswith("reservation of")
    assert network_records.reservations(nets, 100) == {}


@pytest.mark.parametrize(
    "vni, mac, ip, hostname, error, reason",
    [
        (100, "52:54:00:00:00", "10.100.0.60", None, InvalidInput, "six hex pairs"),
        (100, "52:54:00:00:00:0g", "10.100.0.60", None, InvalidInput, "six hex pairs"),
        (100, "01:00:5e:00:00:01", "10.100.0.60", None, InvalidInput, "multicast"),
        (100, MAC2, "10.101.0.60", None, InvalidInput, "not a host address of network 100"),
        (100, MAC2, "10.100.0.255", None, InvalidInput, "not a host address"),
        (100, MAC2, "10.100.0.1", None, InvalidInput, "is the gateway"),
        (100, MAC2, "nonsense", None, InvalidInput, "invalid IP address"),
        (100, MAC2, "10.100.0.60", "web_1", InvalidInput, "invalid host name"),
        (100, MAC1, "10.100.0.61", None, Conflict, "has a reservation on network 100 already"),
        (100, MAC2, "10.100.0.50", None, Conflict, "10.100.0.50 is reserved for 52:54:00:00:00:01"),
        (100, "52:54:00:00:00:03", "10.100.0.120", None, Conflict, "leased to 52:54:00:00:00:02"),
        (200, MAC2, "10.100.0.60", None, InvalidInput, "no IPv4 service from pvc"),
        (999, MAC2, "10.100.0.60", None, NotFound, "network 999 does not exist"),
    ],
)  # fmt: skip
def test_reservation_refusals(nets, vni, mac, ip, hostname, error, reason):
    network_dhcp.add(nets, 100, MAC1, "10.100.0.50")
    nets.write({("network.lease", "100", "52-54-00-00-00-02"): {"ip": "10.100.0.120"}})
    assert reason in refused(nets, error, network_dhcp.add, vni, mac, ip, hostname)


def test_an_expired_lease_does_not_hold_its_address(nets):
    nets.write({("network.lease", "100", "52-54-00-00-00-02"): {"ip": "10.100.0.120", "expiry": 1}})
    network_dhcp.add(nets, 100, MAC1, "10.100.0.120")
    assert network_records.reservations(nets, 100)[MAC1]["ip"] == "10.100.0.120"
    assert "no reservation" in refused(nets, NotFound, network_dhcp.remove, 100, MAC2)


def test_acls_in_order(nets):
    network_acl.add(nets, 100, "in", "ssh", "tcp dport 22 accept")
    network_acl.add(nets, 100, "in", "web", "tcp dport { 80, 443 } accept", order=10)
    network_acl.add(nets, 100, "in", "first", "icmp type echo-request accept", order=0)
    network_acl.add(nets, 100, "out", "ssh", "tcp dport 22 drop")
    rows = network_acl.list_acls(nets, 100)
    assert [(r["direction"], r["description"], r["order"]) for r in rows] == [
        ("in", "first", 0), ("in", "ssh", 1), ("in", "web", 10), ("out", "ssh", 1)
    ]  # fmt: skip
    assert [r["description"] for r in network_acl.list_acls(nets, 100, "out")] == ["ssh"]
    assert network_acl.info(nets, 100, "web")["rule"] == "tcp dport { 80, 443 } accept"
    assert "both directions" in refused(nets, InvalidInput, network_acl.remove, 100, "ssh")
    network_acl.remove(nets, 100, "ssh", "out")
    network_acl.remove(nets, 100, "ssh")
    assert [r["description"] for r in network_acl.list_acls(nets, 100)] == ["first", "web"]


@pytest.mark.parametrize(
    "vni, direction, description, rule, error, reason",
    [
        (100, "in", "bad", "tcp dport 22 acept", InvalidInput, "nft: Error"),
        (100, "in", "jump", "jump elsewhere", InvalidInput, "may not use 'jump'"),
        (100, "in", "two", "accept; drop", InvalidInput, "no ';'"),
        (100, "in", "tbl", "meta mark set 1 table inet x", InvalidInput, "may not use 'table'"),
        (100, "sideways", "x", "accept", InvalidInput, "in or out"),
        (100, "in", "bad name", "accept", InvalidInput, "invalid ACL description"),
        (100, "in", "ssh", "tcp dport 23 accept", Conflict, "has an 'in' ACL 'ssh' already"),
        (200, "in", "x", "accept", InvalidInput, "bridged"),
        (999, "in", "x", "accept", NotFound, "does not exist"),
    ],
)  # fmt: skip
def test_acl_refusals(nets, vni, direction, description, rule, error, reason):
    network_acl.add(nets, 100, "in", "ssh", "tcp dport 22 accept")
    assert reason in refused(nets, error, network_acl.add, vni, direction, description, rule)
