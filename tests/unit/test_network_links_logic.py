"""The pure choices behind a node's network links: MTUs, FDB changes, VNIs of pvc's links,
the node's cluster address, the devices an untagged network may not take."""

from pvc.drivers.links import fdb_changes
from pvc.node.networks import (
    bridged_mtu,
    cluster_address,
    managed_mtu,
    untagged_refusal,
    vnis_of_links,
)

FLOATING = ["10.0.0.254/24", "192.0.2.254/24", "10.1.0.254/24"]  # cluster, upstream, storage


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


def test_cluster_address_is_never_a_floating_address():
    for floating in FLOATING:
        assert cluster_address([floating.split("/")[0], "10.0.0.5"], FLOATING, None) == "10.0.0.5"
    assert cluster_address(["10.0.0.254", "192.0.2.254"], FLOATING, None) is None
    assert cluster_address(["10.0.0.9"], [None, "10.0.0.9/24", None], None) is None


def test_cluster_address_prefers_the_cluster_floating_subnet_then_the_current_one():
    found = ["198.51.100.5", "10.0.0.7", "10.0.0.5"]
    assert cluster_address(found, FLOATING, None) == "10.0.0.7"
    assert cluster_address(found, FLOATING, "10.0.0.5") == "10.0.0.5"  # it stays
    assert cluster_address(found, FLOATING, "198.51.100.5") == "10.0.0.7"
    assert cluster_address(["198.51.100.5"], FLOATING, None) == "198.51.100.5"
    assert cluster_address(found, [None, None, None], None) == "198.51.100.5"
    assert cluster_address([], FLOATING, "10.0.0.5") is None


def test_untagged_refusal_names_cluster_devices_and_addresses():
    assert untagged_refusal("eth1", [], []) is None
    assert untagged_refusal("bond0", ["upstream", "cluster"], []) == (
        "device bond0 is this node's upstream and cluster network device"
    )
    assert untagged_refusal("eth1", [], ["192.0.2.1", "2001:db8::1"]) == (
        "device eth1 carries this node's addresses (192.0.2.1, 2001:db8::1)"
    )
