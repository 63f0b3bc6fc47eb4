"""Pure checks of network settings (pvc.ops.network_checks), MACs and bridge names."""

import pytest

from pvc.errors import Conflict, InvalidInput
from pvc.ops import network_checks, network_dhcp, network_vms
from pvc.ops.network_records import Network

NET = Network(100, "web", "managed", ip4_network="10.100.0.0/24", ip4_gateway="10.100.0.1",
              ip6_network="fd00:100::/64", ip6_gateway="fd00:100::1", dhcp6=True)  # fmt: skip


def test_a_new_managed_network_gets_its_defaults():
    built = network_checks.built(
        None, 5, {"ip4_network": "10.5.0.0/16", "ip6_network": "fd00::/64"}
    )
    assert (built.type, built.ip4_gateway, built.ip6_gateway) == ("managed", "10.5.0.1", "fd00::1")
    assert built.dhcp6 and not built.dhcp4 and not built.nat


def test_a_new_subnet_keeps_a_gateway_inside_it_and_moves_one_outside():
    assert (
        network_checks.built(NET, 100, {"ip4_network": "10.100.0.0/16"}).ip4_gateway == "10.100.0.1"
    )
    assert network_checks.built(NET, 100, {"ip4_network": "10.7.0.0/24"}).ip4_gateway == "10.7.0.1"
    cleared = network_checks.built(NET, 100, {"ip6_network": ""})
    assert (cleared.ip6_network, cleared.ip6_gateway, cleared.dhcp6) == (None, None, False)


def test_a_bridged_network_refuses_l3_settings_and_a_managed_one_a_vlan():
    with pytest.raises(InvalidInput, match="no L3 service from pvc: domain, nat"):
        network_checks.built(None, 7, {"nettype": "bridged", "domain": "a.b", "nat": True})
    with pytest.raises(InvalidInput, match="a VLAN tag is for bridged networks"):
        network_checks.built(NET, 100, {"vlan": 10})
    assert network_checks.built(None, 7, {"nettype": "bridged", "vlan": 0}).vlan is None


@pytest.mark.parametrize("vni", [1, "16777215", 42])
def test_vnis_in_range(vni):
    assert network_checks.require_vni(vni) == int(vni)


@pytest.mark.parametrize("vni", [0, -1, "16777216", "", "1.5", "١٢", "99999999999999999999"])
def test_vnis_out_of_range(vni):
    with pytest.raises(InvalidInput, match="a number from 1 to 16777215"):
        network_checks.require_vni(vni)


@pytest.mark.parametrize("domain", ["example", "a-b.example.", "X1.Example"])
def test_domains(domain):
    assert network_checks.require_domain(domain) == domain.rstrip(".").lower()


@pytest.mark.parametrize("domain", ["-a.example", "a..b", "a_b.c", "x" * 64 + ".c", "a b"])
def test_bad_domains(domain):
    with pytest.raises(InvalidInput, match="invalid domain"):
        network_checks.require_domain(domain)


def test_fits_refuses_overlap_domain_and_vlan_twins():
    other = Network(101, "", "managed", domain="web.example", ip4_network="10.0.0.0/8")
    with pytest.raises(Conflict, match="overlaps 10.0.0.0/8 of network 101"):
        network_checks.require_fits(NET, [other])
    with pytest.raises(Conflict, match="domain web.example is network 101's"):
        network_checks.require_fits(Network(102, "", "managed", domain="web.example"), [other])
    bridged = Network(200, "", "bridged", vlan=None)
    with pytest.raises(Conflict, match="untagged traffic"):
        network_checks.require_fits(Network(201, "", "bridged"), [bridged])
    network_checks.require_fits(Network(201, "", "bridged", vlan=3), [bridged, other])
    network_checks.require_fits(NET, [NET])  # itself, on a change


@pytest.mark.parametrize(
    "text, mac",
    [("52:54:00:AB:cd:EF", "52:54:00:ab:cd:ef"), ("52-54-00-ab-cd-ef", "52:54:00:ab:cd:ef"),
     ("52:54-00:ab:cd:ef", None), ("5254.00ab.cdef", None),
     (" 52:54:00:ab:cd:ef", "52:54:00:ab:cd:ef"), ("52:54:00:ab:cd", None), (None, None)],
)  # fmt: skip
def test_parse_mac(text, mac):
    assert network_dhcp.parse_mac(text) == mac


@pytest.mark.parametrize(
    "bridge, vni",
    [("vmbr100", 100), ("vmbr0", None), ("vmbr0100", None), ("vmbr16777216", None),
     ("br-lan", None), (None, None), ("vmbr", None), ("vmbr١", None)],
)  # fmt: skip
def test_bridge_vni(bridge, vni):
    assert network_vms.bridge_vni(bridge) == vni


@pytest.mark.parametrize(
    "settings",
    [{"ip6_network": "fd00::%x/64"}, {"ip6_network": "fd00::/64", "ip6_gateway": "fd00::1%a,b"},
     {"ip6_network": "fd00::/64", "ip6_gateway": "fe80::1%eth0"},
     {"name_servers": "fd00:100::1%a,b"}],
)  # fmt: skip
def test_an_ipv6_scope_id_is_refused(settings):
    """dnsmasq refuses a configuration with one: the network's DHCP would be dead."""
    with pytest.raises(InvalidInput, match="no scope ID"):
        network_checks.built(None, 5, settings)


@pytest.mark.parametrize("subnet", ["fd00::/48", "fd00::/96", "fd00::/126"])
def test_an_ipv6_network_is_a_64(subnet):
    """dnsmasq's router advertisements and DHCPv6 range are for a /64."""
    with pytest.raises(InvalidInput, match="is not a /64"):
        network_checks.built(None, 5, {"ip6_network": subnet})
