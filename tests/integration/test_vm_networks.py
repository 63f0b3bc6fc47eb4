"""VMs on networks, on a real Zookeeper: `vm define`/`modify` refuse a NIC on a network that
does not exist or without its MAC, `vm info` shows each NIC's network and address, and a
network a VM uses cannot be removed."""

import pytest

from pvc.errors import Conflict, InvalidInput, NotFound
from pvc.ops import network, network_dhcp, vm
from tests.integration.test_api import call
from tests.integration.test_network_ops import tree
from tests.integration.test_storage_status import until
from tests.integration.test_vm_ops import POLICY, nodes  # noqa: F401 (a fixture)

UUID = "5c1c0a6e-0b5e-4b7e-9f43-3e2a1d0c0b01"
MAC1, MAC2, MAC3 = "52:54:00:00:01:01", "52:54:00:00:01:02", "52:54:00:00:01:03"


def nic(bridge: str, mac: str) -> str:
    return f"<interface type='bridge'><mac address='{mac}'/><source bridge='{bridge}'/></interface>"


def xml_with(*nics: str, name: str = "vm1", uuid: str = UUID) -> str:
    return (
        f"<domain type='qemu'><name>{name}</name><uuid>{uuid}</uuid>"
        "<memory unit='MiB'>128</memory><vcpu>1</vcpu><os><type>hvm</type></os>"
        f"<devices>{''.join(nics)}</devices></domain>"
    )


@pytest.fixture
def net100(nodes):  # noqa: F811
    network.add(nodes, 100, nettype="managed", ip4_network="10.100.0.0/24", dhcp4=True,
                dhcp4_start="10.100.0.100", dhcp4_end="10.100.0.199")  # fmt: skip
    return nodes


def test_define_refuses_a_nic_on_a_missing_network(net100):
    before = tree(net100, "/domains")
    with pytest.raises(NotFound) as caught:
        vm.define(net100, POLICY, xml_with(nic("vmbr100", MAC1), nic("vmbr101", MAC2)))
    assert caught.value.message == "network 101 does not exist (the VM has a NIC on vmbr101)"
    assert tree(net100, "/domains") == before
    # the host's own bridges are not pvc's networks
    vm.define(net100, POLICY, xml_with(nic("vmbr0", MAC1), nic("br-lan", MAC2)))


def test_define_and_modify_refuse_a_nic_on_a_network_without_its_mac(net100):
    """The node's firewall knows a tap's MAC only from the XML (a lease's MAC is a guest's
    word); a NIC on a host bridge may leave the MAC to libvirt."""
    without = "<interface type='bridge'><source bridge='vmbr100'/></interface>"
    before = tree(net100, "/domains")
    with pytest.raises(InvalidInput, match="NIC on vmbr100 has no <mac"):
        vm.define(net100, POLICY, xml_with(without))
    assert tree(net100, "/domains") == before
    vm.define(net100, POLICY, xml_with(nic("vmbr100", MAC1), without.replace("vmbr100", "vmbr0")))
    with pytest.raises(InvalidInput, match="NIC on vmbr100 has no <mac"):
        vm.modify(net100, POLICY, "vm1", xml_with(nic("vmbr100", MAC1), without))


def test_modify_refuses_a_nic_on_a_missing_network(net100):
    vm.define(net100, POLICY, xml_with(nic("vmbr100", MAC1)))
    with pytest.raises(NotFound, match="network 7 does not exist"):
        vm.modify(net100, POLICY, "vm1", xml_with(nic("vmbr100", MAC1), nic("vmbr7", MAC2)))
    vm.modify(net100, POLICY, "vm1", xml_with(nic("vmbr100", MAC1), nic("vmbr100", MAC2)))


def test_info_shows_nics_with_their_lease_or_reservation(net100):
    vm.define(
        net100, POLICY, xml_with(nic("vmbr100", MAC1), nic("vmbr100", MAC2), nic("vmbr0", MAC3))
    )
    network_dhcp.add(net100, 100, MAC1, "10.100.0.10", "vm1")
    net100.write({("network.lease", "100", "52-54-00-00-01-02"): {"ip": "10.100.0.150"}})
    assert vm.info(net100, "vm1")["nics"] == [
        {"mac": MAC1, "bridge": "vmbr100", "vni": 100, "lease_ip": "10.100.0.10"},
        {"mac": MAC2, "bridge": "vmbr100", "vni": 100, "lease_ip": "10.100.0.150"},
        {"mac": MAC3, "bridge": "vmbr0", "vni": None, "lease_ip": None},
    ]


def test_network_remove_is_refused_while_a_vm_uses_it(net100):
    vm.define(net100, POLICY, xml_with(nic("vmbr100", MAC1)))
    before = tree(net100)
    with pytest.raises(Conflict) as caught:
        network.remove(net100, 100)
    assert caught.value.message == (
        "network 100 is in use by VM(s) vm1: remove their NICs on vmbr100 first"
    )
    assert tree(net100) == before
    vm.undefine(net100, "vm1")
    network.remove(net100, 100)
    with pytest.raises(NotFound):
        network.info(net100, 100)


def test_over_the_api_define_is_refused_and_info_shows_nics(api_server, net100):
    status, body = call(api_server, "POST", "/vm", {"xml": xml_with(nic("vmbr300", MAC1))})
    assert (status, body["message"]) == (
        404,
        "network 300 does not exist (the VM has a NIC on vmbr300)",
    )
    status, body = call(api_server, "POST", "/vm", {"xml": xml_with(nic("vmbr100", MAC1))})
    assert status == 200, body
    network_dhcp.add(net100, 100, MAC1, "10.100.0.10")
    # the API reads from its mirror, which has the reservation soon after
    nics = until(
        lambda: (nics := call(api_server, "GET", "/vm/vm1")[1]["nics"])[0]["lease_ip"] and nics
    )
    assert nics == [{"mac": MAC1, "bridge": "vmbr100", "vni": 100, "lease_ip": "10.100.0.10"}]
    status, body = call(api_server, "DELETE", "/network/100")
    assert status == 409 and "in use by VM(s) vm1" in body["message"]
