"""Network ACLs in pvc's firewall, proven with packets (tests/firewall_rig.py): `in` and `out`
chains, `order`, removal, and a rule the kernel or the check refuses (its network fails
closed)."""

import json

import pytest

from pvc.drivers import nft
from pvc.errors import InvalidInput
from pvc.ops.acl_rules import CHECK_TABLE, check_acl_rule
from pvc.ops.network_records import Acl, Network
from tests.firewall_rig import GATEWAY, OUTSIDE, Rig, network, records, vm_ip, vm_mac


@pytest.fixture(scope="module")
def rig():
    rig = Rig(vms=1).up()
    try:
        rig.serve(rig.vms[1], "tcp:0.0.0.0:8080", "tcp:0.0.0.0:8081")
        rig.serve(rig.outside, "tcp:0.0.0.0:9090", "tcp:0.0.0.0:9091")
        rig.serve(rig.node, f"tcp:{GATEWAY}:22")
        yield rig
    finally:
        rig.down()


def with_acls(acls, *more_networks):
    return records(
        [network(), *more_networks],
        acls=acls,
        guests=[(vm_mac(1), vm_ip(1))],
        known=[vm_mac(1)],
    )


def reaches_vm(rig, port):
    return rig.ask(rig.outside, "tcp", vm_ip(1), port) == OUTSIDE


def test_an_in_acl_drops_its_port_passes_the_rest_and_removing_it_restores(rig):
    rig.load(with_acls({100: [("in", "web", "tcp dport 8080 drop", 10)]}))
    assert not reaches_vm(rig, 8080)
    assert reaches_vm(rig, 8081)
    assert rig.ping(rig.outside, vm_ip(1))
    assert rig.ask(rig.vms[1], "tcp", OUTSIDE, 9090) == vm_ip(1)  # `in` only: out is free
    rig.load(with_acls({}))
    assert reaches_vm(rig, 8080)


def test_order_decides_between_an_accept_and_a_drop(rig):
    accept = ("in", "allow", "tcp dport 8080 accept", 1)
    drop = ("in", "deny", "ip saddr 192.0.2.0/24 drop", 2)
    rig.load(with_acls({100: [accept, drop]}))
    assert reaches_vm(rig, 8080)
    assert not reaches_vm(rig, 8081)
    rig.load(with_acls({100: [accept[:3] + (3,), drop]}))  # the drop comes first now
    assert not reaches_vm(rig, 8080)


def test_an_out_acl_drops_traffic_leaving_the_network(rig):
    rig.load(with_acls({100: [("out", "no-9090", "tcp dport 9090 drop", 1)]}))
    assert rig.ask(rig.vms[1], "tcp", OUTSIDE, 9090) is None
    assert rig.ask(rig.vms[1], "tcp", OUTSIDE, 9091) == vm_ip(1)
    assert reaches_vm(rig, 8080)  # replies to `in` traffic pass the `out` chain


def test_an_acl_the_kernel_refuses_fails_only_its_network_closed(rig):
    """`masquerade` passes nft's check but not the kernel's in a filter chain."""
    other = network(101)  # no bridge here: only its ACLs matter
    loaded = rig.load(
        with_acls(
            {100: [("in", "web", "tcp dport 8080 drop", 1)], 101: [("in", "bad", "masquerade", 1)]},
            other,
        )
    )
    refused = json.loads(loaded.stdout)
    assert list(refused) == ["101"] and "nft: Error" in refused["101"]
    assert not reaches_vm(rig, 8080)  # network 100's ACL holds
    assert reaches_vm(rig, 8081)
    assert rig.ask(rig.vms[1], "tcp", GATEWAY, 22) is None  # the base rules hold
    loaded = rig.load(
        with_acls({100: [("in", "web", "tcp dport 8080 drop", 1), ("in", "bad", "masquerade", 2)]})
    )
    assert list(json.loads(loaded.stdout)) == ["100"]
    assert not reaches_vm(rig, 8081)  # closed: not open without its ACLs
    assert rig.ask(rig.vms[1], "tcp", OUTSIDE, 9091) is None
    assert rig.ping(rig.vms[1], GATEWAY)  # the node's own services still answer it


def test_a_stored_meter_never_reaches_the_kernel_and_fails_its_network_closed(rig):
    """A meter named like pvc's set (or two ACLs' meters of one name) would fail the load."""
    meter = "meter guests { ether saddr . ip saddr counter } accept"
    loaded = rig.load(with_acls({100: [("in", "m", meter, 1)]}))
    assert "may not use 'meter'" in json.loads(loaded.stdout)["100"]
    assert "meter" not in rig.table()
    assert not reaches_vm(rig, 8081)


def test_a_stored_rule_that_escapes_its_chain_never_reaches_the_kernel(rig):
    rig.load(with_acls({}))
    clean = rig.table()
    escaping = "tcp dport 8080 drop } chain input { type filter hook input priority -1"
    loaded = rig.load(with_acls({100: [("in", "evil", escaping, 1)]}))
    assert "ACL 'evil'" in json.loads(loaded.stdout)["100"]
    table = rig.table()
    assert "8080" not in table and table.count("chain ") == clean.count("chain ")
    assert not reaches_vm(rig, 8080)  # its network failed closed


@pytest.mark.parametrize(
    ("rule", "words"),
    [
        ("tcp dport eighty drop", "nft: Error"),
        ("update @guests { ether saddr . ip saddr }", "may not name a set"),
        ('log prefix "x" } chain evil {', "'}' without its '{'"),
        ("jump input", "may not use 'jump'"),
        ("meter m { ip saddr limit rate 1/second } accept", "may not use 'meter'"),
        ('log prefix "unclosed', "without its closing"),
    ],
)
def test_acl_add_refuses_a_bad_rule_with_the_reason(rule, words):
    with pytest.raises(InvalidInput) as refused:
        check_acl_rule(rule, Network(**network()), "in")
    assert words in refused.value.message
    assert f"inet {CHECK_TABLE}" not in nft.tables()


def test_acl_add_accepts_rules_with_braces_and_words_inside_strings():
    rule = ' log prefix "add {drop}" tcp dport { 80, 443 } accept '
    assert check_acl_rule(rule, Network(**network()), "out") == rule.strip()


def test_acl_add_checks_the_rule_after_the_networks_acls_in_pvcs_table():
    """The check is the node's inet table: pvc's chains and the network's other ACLs."""
    existing = [Acl("in", "a", "tcp dport 22 accept", 1), Acl("out", "b", "tcp dport x drop", 1)]
    with pytest.raises(InvalidInput, match="nft: Error"):  # a stored one nft refuses
        check_acl_rule("tcp dport 80 accept", Network(**network()), "in", existing)
    assert check_acl_rule("tcp dport 80 accept", Network(**network()), "in", existing[:1])
    assert f"inet {CHECK_TABLE}" not in nft.tables()
