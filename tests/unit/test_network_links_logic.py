"""The pure choices behind a node's network links: MTUs, FDB changes, VNIs of pvc's links."""

from pvc.drivers.links import fdb_changes
from pvc.node.networks import bridged_mtu, managed_mtu, vnis_of_links


def test_managed_mtu_leaves_room_for_the_vxlan_headers():
    assert managed_mtu(1500, None) == 1450
    assert managed_mtu(9000, None) == 8950


def test_managed_mtu_takes_a_smaller_request_but_never_a_larger_one():
    assert managed_mtu(1500, 1400) == 1400
    assert managed_mtu(1500, 9000) == 1450


def test_bridged_mtu_never_exceeds_the_device():
    assert bridged_mtu(1500, None, None) == 1500
    assert bridged_mtu(9000, 1500, None) == 1500
    assert bridged_mtu(1500, 9000, 9000) == 1500
    assert bridged_mtu(9000, None, 1400) == 1400


def test_fdb_changes_adds_new_peers_and_removes_gone_ones():
    assert fdb_changes({"10.0.0.2", "10.0.0.3"}, ["10.0.0.3", "10.0.0.4"]) == (
        ["10.0.0.4"],
        ["10.0.0.2"],
    )
    assert fdb_changes(["10.0.0.2"], {"10.0.0.2"}) == ([], [])
    assert fdb_changes([], ["10.0.0.5", "10.0.0.1"]) == (["10.0.0.1", "10.0.0.5"], [])


def test_vnis_of_links_reads_only_network_link_names():
    names = ["vmbr100", "vxlan100", "vlan7", "vmbr100x", "eth0", "vxlan", "br-vmbr5"]
    assert vnis_of_links(names) == {100, 7}
