"""The firewall's pure parts: which taps are guarded, which network a failing line belongs
to, the (MAC, IP) pairs, what the rendering leaves out, and the ACL text's own checks."""

import pytest

from pvc.node.firewall_rules import Records, guests, network_at, port_macs, render
from pvc.ops.acl_rules import rule_problem
from pvc.ops.network_records import Acl, Network


def managed(vni, **fields):
    return Network(vni=vni, description="", type="managed", ip4_network=f"10.{vni}.0.0/24",
                   ip4_gateway=f"10.{vni}.0.1", **fields)  # fmt: skip


def test_a_tap_is_guarded_with_the_one_vm_mac_libvirt_derived_it_from_or_closed():
    ports = {
        "vnet0": "FE:54:00:AA:BB:01",  # 52:54:00:aa:bb:01's tap
        "vnet1": "fa:54:00:aa:bb:02",  # a VM MAC starting with fe gets an fa tap
        "vnet2": "fe:54:00:aa:bb:03",  # no known VM NIC
        "veth9": "02:00:00:00:00:01",  # not libvirt's tap
        "vnet3": "fe:54:00:aa:bb:04",  # two NICs would fit: ambiguous
    }
    known = ["52:54:00:aa:bb:01", "fe:54:00:aa:bb:02", "52:54:00:aa:bb:04", "54:54:00:aa:bb:04"]
    assert port_macs(ports, known) == {
        "vnet0": "52:54:00:aa:bb:01",
        "vnet1": "fe:54:00:aa:bb:02",
        "vnet2": None,
        "veth9": None,
        "vnet3": None,
    }


def test_every_port_but_pvcs_own_links_is_filtered_and_an_unknown_one_gets_no_mac():
    bridged = Network(vni=8, description="", type="bridged", vlan=None)
    ports = {"vnet0": "52:54:00:aa:bb:01", "vnet1": None, "eth1": None, "vlan8": None}
    text = render(Records(networks=(managed(7), bridged), ports=ports, bridge_device="eth1"))
    assert 'elements = { "vnet0", "vnet1" }' in text
    assert 'elements = { "vnet0" . 52:54:00:aa:bb:01 }' in text


def test_guests_are_not_routed_into_the_cluster_networks_but_upstream_stays_open():
    records = Records(
        networks=(managed(7),),
        upstream_device="eth0",
        internal_devices=("eth0", "eth1"),
        internal_subnets=("10.0.0.5/24", "fd00:1::5/64"),
    )
    text = render(records)
    assert 'elements = { "eth1", "lo" }' in text  # eth0 carries NAT: its subnet guards it
    assert "elements = { 10.0.0.0/24, 169.254.0.0/16 }" in text
    assert "elements = { fd00:1::/64 }" in text
    assert text.index("chain forward-guard") < text.index("chain forward-out")


def test_guests_are_the_ipv4_pairs_of_leases_and_reservations():
    leases = [{"52:54:00:00:00:01": {"ip": "10.1.0.5"}, "52:54:00:00:00:02": {"ip": None}}]
    reservations = [{"52:54:00:00:00:03": {"ip": "10.1.0.9", "hostname": "x"}}]
    assert guests(leases, reservations) == {
        ("52:54:00:00:00:01", "10.1.0.5"),
        ("52:54:00:00:00:03", "10.1.0.9"),
    }


def test_a_failing_line_is_traced_to_its_network_or_to_the_base_rules():
    acls = {7: [Acl("in", "a", "tcp dport 1 drop", 1)], 9: [Acl("out", "b", "udp dport 2 drop", 1)]}
    text = render(Records(networks=(managed(7), managed(9)), acls=acls))
    lines = text.splitlines()
    at = {line.strip(): number for number, line in enumerate(lines, start=1)}
    assert network_at(text, at["counter tcp dport 1 drop"]) == 7
    assert network_at(text, at["counter udp dport 2 drop"]) == 9
    assert network_at(text, at['iifname "vmbr9" oifname != "vmbr9" jump vxlan9-out']) == 9
    assert network_at(text, at["tcp dport 53 accept"]) is None
    assert network_at(text, 0) is None and network_at(text, len(lines) + 1) is None


def test_rendering_leaves_out_the_acls_of_refused_networks_and_nat_without_upstream():
    acls = {7: [Acl("in", "a", "tcp dport 1 drop", 1)]}
    text = render(Records(networks=(managed(7, nat=True),), acls=acls, without_acls=frozenset({7})))
    assert "tcp dport 1 drop" not in text and "masquerade" not in text
    assert "jump vxlan7-in" in text  # the network keeps its chains and base rules
    assert "  chain vxlan7-in {\n    counter drop\n  }" in text  # ...which fail closed
    bridged = Network(vni=8, description="", type="bridged")
    text = render(Records(networks=(bridged,), upstream_device="eth0"))
    assert 'iifname "vmbr8"' not in text and "vxlan8-" not in text  # only guarded from routing
    assert 'elements = { "vmbr8" }' in text


def test_acls_keep_their_order_within_a_chain():
    acls = {7: [Acl("in", "b", "tcp dport 2 drop", 1), Acl("in", "a", "tcp dport 1 drop", 2)]}
    text = render(Records(networks=(managed(7),), acls=acls))
    assert text.index("tcp dport 2 drop") < text.index("tcp dport 1 drop")


@pytest.mark.parametrize(
    ("rule", "problem"),
    [
        ("", "must not be empty"),
        ("tcp dport 1 drop; flush ruleset", "no ';'"),
        ("ip saddr $trusted accept", "may not name a set"),
        ('log prefix "a" } table ip x {', "'}' without"),
        ("tcp dport { 1, 2 drop", "'{' without"),
        ("goto elsewhere", "may not use 'goto'"),
        ("meter m { ip saddr limit rate 1/second } accept", "may not use 'meter'"),
        ('log prefix "x', "closing"),
    ],
)
def test_rule_problem_names_what_keeps_a_rule_from_its_chain(rule, problem):
    assert problem in rule_problem(rule)


def test_rule_problem_passes_words_and_braces_inside_strings():
    assert rule_problem('log prefix "table {" tcp dport { 80, 443 } accept') is None
