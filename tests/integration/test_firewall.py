"""pvc's firewall base rules, proven with packets in real namespaces (tests/firewall_rig.py):
what a VM may reach on its gateway, the metadata service's (MAC, IP) check, MAC
anti-spoofing at a VM's port (fail closed), no route into the cluster network, NAT, and that
a failed load and the host's tables are safe."""

import pytest

from tests.firewall_rig import (
    CLUSTER,
    CLUSTER_PEER,
    GATEWAY,
    METADATA,
    OUTSIDE,
    UPSTREAM,
    Rig,
    network,
    records,
    vm_ip,
    vm_mac,
)


@pytest.fixture(scope="module")
def rig():
    rig = Rig(vms=3).up()  # vm3's port is not a known VM NIC: its frames are dropped
    try:
        rig.serve(
            rig.node,
            f"udp:{GATEWAY}:53", f"tcp:{GATEWAY}:53", "udp:0.0.0.0:67", f"udp:{GATEWAY}:123",
            f"tcp:{GATEWAY}:22", f"tcp:{METADATA}:80",
        )  # fmt: skip
        rig.serve(rig.outside, "tcp:0.0.0.0:7000")
        yield rig
    finally:
        rig.down()


def leased(*indexes):
    return [(vm_mac(index), vm_ip(index)) for index in indexes]


def known(*indexes):
    return [vm_mac(index) for index in indexes]


def base(**fields):
    return records([network(**fields)], guests=leased(1, 2), known=known(1, 2))


def test_a_vm_reaches_dhcp_dns_ntp_and_metadata_on_its_gateway_but_not_other_ports(rig):
    rig.run(rig.node, "nft", "delete", "table", "inet", "pvc", check=False)
    assert rig.ask(rig.vms[1], "tcp", GATEWAY, 22) == vm_ip(1)  # open without pvc's rules
    rig.load(base())
    vm = rig.vms[1]
    for proto, port in (("udp", 53), ("tcp", 53), ("udp", 67), ("udp", 123)):
        assert rig.ask(vm, proto, GATEWAY, port) == vm_ip(1), f"{proto} {port}"
    assert rig.ask(vm, "tcp", METADATA, 80) == vm_ip(1)
    assert rig.ping(vm, GATEWAY)
    assert rig.ask(vm, "tcp", GATEWAY, 22) is None


def test_metadata_answers_a_leased_mac_and_ip_but_not_a_vm_that_took_another_vms_ip(rig):
    rig.load(base())
    assert rig.ask(rig.vms[1], "tcp", METADATA, 80) == vm_ip(1)
    assert rig.ask(rig.vms[2], "tcp", METADATA, 80) == vm_ip(2)
    assert rig.ask(rig.vms[2], "tcp", METADATA, 80, source=vm_ip(1)) is None
    assert rig.ask(rig.vms[3], "tcp", METADATA, 80) is None  # no lease at all
    rig.load(records([network()], guests=leased(1), known=known(1, 2)))  # vm2's lease ended
    assert rig.ask(rig.vms[2], "tcp", METADATA, 80) is None
    assert rig.ask(rig.vms[2], "udp", GATEWAY, 53) == vm_ip(2)  # DNS still answers it


def test_a_vm_frame_with_another_vms_mac_is_dropped_at_its_port(rig):
    rig.load(base())
    vm2 = rig.vms[2]
    try:
        rig.run(vm2, "ip", "link", "set", "eth0", "address", vm_mac(1))
        assert not rig.ping(vm2, GATEWAY)
    finally:
        rig.run(vm2, "ip", "link", "set", "eth0", "address", vm_mac(2))
    assert rig.ping(vm2, GATEWAY)


def test_a_port_with_no_one_known_vm_nic_drops_all_but_pvcs_own_links_pass(rig):
    """Fail closed: vm3's tap has no known VM NIC; a tap whose MAC two known NICs fit (one
    a MAC a guest could name in a DHCP request) is not guarded by guessing either."""
    rig.load(base())
    vm3 = rig.vms[3]
    assert not rig.ping(vm3, GATEWAY)
    rig.load(
        records([network()], guests=leased(1, 2), known=[*known(1, 2, 3), "02" + vm_mac(3)[2:]])
    )
    assert not rig.ping(vm3, GATEWAY)
    rig.load(records([network()], guests=leased(1, 2), known=known(1, 2, 3)))
    assert rig.ping(vm3, GATEWAY)
    rig.load(base())
    try:
        rig.run(rig.node, "ip", "link", "del", "vnet3")
        rig.add_tap(3, tap="vxlan100")  # a network's own link (its VXLAN) carries any MAC
        rig.load(base())
        assert rig.ping(vm3, GATEWAY)
    finally:
        rig.run(rig.node, "ip", "link", "del", "vxlan100", check=False)
        rig.run(vm3, "ip", "link", "del", "eth0", check=False)
        rig.add_tap(3)


def test_a_vm_is_not_routed_into_the_cluster_network(rig):
    open_records = records([network()], guests=leased(1, 2), known=known(1, 2), internal=([], []))
    rig.load(open_records)
    assert rig.ask(rig.vms[1], "tcp", CLUSTER_PEER, 7000) == vm_ip(1)  # routed without the guard
    rig.load(base())  # the cluster device and its subnet
    assert rig.ask(rig.vms[1], "tcp", CLUSTER_PEER, 7000) is None
    rig.load(open_records | {"internal": ([], ["198.51.100.0/24"])})  # the subnet alone
    assert rig.ask(rig.vms[1], "tcp", CLUSTER_PEER, 7000) is None
    rig.load(open_records | {"internal": ([CLUSTER], [])})  # the device alone
    assert rig.ask(rig.vms[1], "tcp", CLUSTER_PEER, 7000) is None
    assert rig.ask(rig.vms[1], "tcp", OUTSIDE, 7000) == vm_ip(1)  # the rest is routed
    rig.load(base(nat=True) | {"internal": ([UPSTREAM], [])})  # upstream is cluster too: NAT
    assert rig.ask(rig.vms[1], "tcp", OUTSIDE, 7000) == "192.0.2.1"


def test_nat_rewrites_the_network_source_address_only_when_on(rig):
    rig.load(base(nat=True))
    assert rig.ask(rig.vms[1], "tcp", OUTSIDE, 7000) == "192.0.2.1"
    rig.load(base(nat=False))
    assert rig.ask(rig.vms[1], "tcp", OUTSIDE, 7000) == vm_ip(1)
    rig.load(records([network(nat=True)], guests=leased(1), known=known(1), upstream=None))
    assert rig.ask(rig.vms[1], "tcp", OUTSIDE, 7000) == vm_ip(1)  # no upstream device: no NAT


def test_a_ruleset_whose_base_rules_fail_is_not_loaded_and_the_previous_stays(rig):
    rig.load(base())
    before = rig.table(), rig.table("bridge")
    failed = rig.load(base(nat=True) | {"upstream": 'up0" accept'}, check=False)
    assert failed.returncode != 0 and "nft: Error" in failed.stderr
    assert (rig.table(), rig.table("bridge")) == before
    assert rig.ask(rig.vms[1], "tcp", GATEWAY, 22) is None


def test_the_hosts_own_tables_are_left_alone(rig):
    rig.run(rig.node, "nft", "add", "table", "ip", "hostown")
    rig.run(rig.node, "nft", "add", "chain", "ip", "hostown", "input",
            "{ type filter hook input priority 10; policy accept; }")  # fmt: skip
    rig.run(rig.node, "nft", "add", "rule", "ip", "hostown", "input", "tcp dport 4444 counter")
    try:
        before = rig.run(rig.node, "nft", "list", "table", "ip", "hostown").stdout
        rig.load(base())
        rig.load(base(nat=True))
        assert rig.run(rig.node, "nft", "list", "table", "ip", "hostown").stdout == before
    finally:
        rig.run(rig.node, "nft", "delete", "table", "ip", "hostown")
