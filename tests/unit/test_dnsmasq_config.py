"""pvc.drivers.dnsmasq's pure part: the configuration, host and lease files it renders."""

import pytest

from pvc.drivers import dnsmasq
from pvc.errors import InvalidInput
from pvc.ops.network_records import Network

PATHS = dnsmasq.Paths.of("/run/pvc", "100")
NET = Network(
    100,
    "test",
    "managed",
    domain="net100.test",
    ip4_network="10.100.0.0/24",
    ip4_gateway="10.100.0.1",
    dhcp4=True,
    dhcp4_start="10.100.0.100",
    dhcp4_end="10.100.0.200",
)


def lines(text: str) -> list[str]:
    return text.splitlines()


def test_network_binds_only_its_bridge_and_serves_dhcp_with_the_gateway():
    config = lines(dnsmasq.network_config(NET, PATHS))
    assert config[:3] == ["interface=vmbr100", "except-interface=lo", "bind-dynamic"]
    assert "dhcp-authoritative" in config
    assert "dhcp-range=10.100.0.100,10.100.0.200,255.255.255.0,48h" in config
    for option in ("router", "dns-server"):
        assert f"dhcp-option=option:{option},10.100.0.1" in config
    assert "ntp-server" not in "".join(config)  # pvc runs no NTP server on the gateway
    assert "dhcp-leasefile=/run/pvc/dnsmasq/100/leases" in config
    assert "dhcp-hostsdir=/run/pvc/dnsmasq/100/dhcp-hosts" in config
    assert "no-hosts" in config and "enable-ra" not in config


def test_network_domain_is_answered_locally_never_forwarded():
    config = lines(dnsmasq.network_config(NET, PATHS))
    assert {"domain=net100.test", "local=/net100.test/", "expand-hosts"} <= set(config)
    assert "no-resolv" not in config  # other names: the node's resolver
    with_servers = lines(dnsmasq.network_config(_with(name_servers=("9.9.9.9",)), PATHS))
    assert "no-resolv" in with_servers and "server=9.9.9.9" in with_servers


def test_network_without_dhcp4_only_answers_dns():
    config = dnsmasq.network_config(_with(dhcp4=False), PATHS)
    assert "dhcp-range" not in config and "domain=net100.test" in config


def test_network_mtu_is_handed_out():
    assert "dhcp-option=option:mtu,1400" in lines(dnsmasq.network_config(_with(mtu=1400), PATHS))


def test_the_bridge_mtu_is_handed_out_by_dhcp_and_router_advertisements():
    """A VXLAN network's MTU (1450 on a 1500 underlay) when the network sets none."""
    network = _with(ip6_network="fd00:100::/64", ip6_gateway="fd00:100::1")
    config = lines(dnsmasq.network_config(network, PATHS, mtu=1450))
    assert "dhcp-option=option:mtu,1450" in config and "ra-param=vmbr100,mtu:1450,60" in config


def test_no_ipv6_on_the_node_leaves_ipv4_dhcp():
    network = _with(ip6_network="fd00:100::/64", ip6_gateway="fd00:100::1")
    config = dnsmasq.network_config(network, PATHS, ipv6=False)
    assert "enable-ra" not in config and "constructor" not in config
    assert "dhcp-range=10.100.0.100" in config


@pytest.mark.parametrize(
    ("dhcp6", "expected"),
    [
        (False, "dhcp-range=::,constructor:vmbr100,ra-stateless,64"),
        (True, "dhcp-range=::1000,::ffff,constructor:vmbr100,64,48h"),
    ],
)
def test_ipv6_gets_router_advertisements_and_dhcp6_when_asked(dhcp6, expected):
    network = _with(ip6_network="fd00:100::/64", ip6_gateway="fd00:100::1", dhcp6=dhcp6)
    config = lines(dnsmasq.network_config(network, PATHS))
    assert "enable-ra" in config and expected in config
    assert "dhcp-option=option6:dns-server,[fd00:100::1]" in config


def test_a_line_break_in_a_value_is_refused():
    with pytest.raises(InvalidInput, match="line break"):
        dnsmasq.network_config(_with(domain="a.test\ndhcp-script=/bin/sh"), PATHS)


def test_forwarder_listens_on_the_given_addresses_and_sends_domains_to_gateways():
    config = lines(dnsmasq.forwarder_config(["10.0.0.254", "192.0.2.10"], PATHS))
    assert config[:2] == ["listen-address=10.0.0.254", "listen-address=192.0.2.10"]
    assert "no-resolv" in config and "servers-file=/run/pvc/dnsmasq/100/servers" in config
    assert "dhcp-range" not in "".join(config)
    bridged = Network(7, "b", "bridged", domain="b.test")
    no_domain = _with(vni=101, domain=None)
    assert lines(dnsmasq.forwarder_servers([NET, bridged, no_domain])) == [
        "server=/net100.test/10.100.0.1",
        "rev-server=10.100.0.0/24,10.100.0.1",
    ]
    assert dnsmasq.forwarder_servers([bridged]) == ""


def test_host_files_one_per_reserved_mac():
    files = dnsmasq.host_files(
        {
            "52:54:00:00:00:01": {"ip": "10.100.0.10", "hostname": "web"},
            "52:54:00:00:00:02": {"ip": "10.100.0.11", "hostname": None},
        }
    )
    assert files == {
        ("dhcp-hosts", "52-54-00-00-00-01"): "52:54:00:00:00:01,10.100.0.10,web\n",
        ("hosts", "52-54-00-00-00-01"): "10.100.0.10 web\n",
        ("dhcp-hosts", "52-54-00-00-00-02"): "52:54:00:00:00:02,10.100.0.11\n",
    }


def test_lease_file_round_trip_and_partial_lines_skipped():
    leases = {
        "52:54:00:00:00:01": {
            "ip": "10.100.0.10",
            "hostname": "web",
            "expiry": 1796372349,
            "client_id": "01:52:54:00:00:00:01",
        },
        "52:54:00:00:00:02": {
            "ip": "10.100.0.150",
            "hostname": None,
            "expiry": 1796372350,
            "client_id": None,
        },
    }
    text = dnsmasq.lease_file(leases)
    assert "1796372350 52:54:00:00:00:02 10.100.0.150 * *" in text
    assert dnsmasq.parse_leases(text) == leases
    ipv6 = "duid 00:01:00:01\n1796372349 1234 fd00::1000 web 00:01\n"
    cut = "1796372349 52:54:00:00:00:03 10.100"
    assert dnsmasq.parse_leases(text + ipv6 + cut) == leases


def _with(**changes) -> Network:
    fields = {**NET.__dict__, **changes}
    return Network(**fields)
