"""The network endpoints over real HTTP (dist/pvc api serve) on a real Zookeeper: every
endpoint, the VNI and MAC path arguments, and refusals as 4xx with the reason."""

import pytest

from pvc.ops import cluster
from tests.integration.test_api import call
from tests.integration.test_network_ops import tree
from tests.integration.test_storage_status import until

WEB = {"vni": 100, "nettype": "managed", "domain": "web.example", "ip4_network": "10.100.0.0/24",
       "dhcp4": True, "dhcp4_start": "10.100.0.100", "dhcp4_end": "10.100.0.199"}  # fmt: skip


@pytest.fixture
def api(api_server, zk):
    cluster.initialize(zk)
    status, body = call(api_server, "POST", "/network", WEB)
    assert status == 200, body
    return api_server


def test_networks_are_added_listed_changed_and_removed(api):
    status, body = call(api, "POST", "/network?vni=200&nettype=bridged&vlan=0")
    assert status == 200 and body["network"]["vlan"] is None
    status, body = call(api, "GET", "/network")
    assert status == 200 and [n["vni"] for n in body] == [100, 200]
    assert [n["vni"] for n in call(api, "GET", "/network?limit=10")[1]] == [100]
    status, body = call(api, "GET", "/network/100")
    assert status == 200 and body["ip4"]["gateway"] == "10.100.0.1" and body["nodes"] == {}
    status, body = call(api, "PUT", "/network/100", {"description": "web", "mtu": 1400})
    assert status == 200 and body["message"] == "network 100 modified"
    assert call(api, "GET", "/network/100")[1]["mtu"] == 1400
    assert call(api, "DELETE", "/network/200") == (200, {"message": "network 200 removed"})
    assert call(api, "GET", "/network/200") == (404, {"message": "network 200 does not exist"})


@pytest.mark.parametrize(
    "method, path, body, status, reason",
    [
        ("POST", "/network", WEB, 409, "network 100 exists already"),
        ("POST", "/network", WEB | {"vni": 101}, 409, "overlaps 10.100.0.0/24"),
        ("POST", "/network", {"vni": 101, "nettype": "managed", "ip4_network": "10.1.0.0/24",
                              "ip4_gateway": "10.2.0.1"}, 400, "outside the network"),
        ("POST", "/network", {"vni": 0, "nettype": "managed"}, 400, "must be at least 1"),
        ("POST", "/network", {"vni": 101, "nettype": "vlan"}, 400, "managed, bridged"),
        ("POST", "/network", {"vni": 101, "nettype": "managed", "mtu": 100}, 400, "invalid MTU"),
        ("PUT", "/network/100", {}, 400, "nothing to change"),
        ("PUT", "/network/100", {"dhcp4_start": "10.100.0.1"}, 400, "contains the gateway"),
        ("PUT", "/network/12345678", {"mtu": 1400}, 404, "does not exist"),
        ("GET", "/network/abc", None, 400, "a number"),
        ("DELETE", "/network/101", None, 404, "network 101 does not exist"),
    ],
)  # fmt: skip
def test_refusals_name_the_reason_and_change_nothing(api, zk, method, path, body, status, reason):
    before = tree(zk)
    answer = call(api, method, path, body)
    assert answer[0] == status and reason in answer[1]["message"], answer
    assert tree(zk) == before


def test_reservations_and_leases(api, zk):
    reservation = {"mac": "52:54:00:AA:00:01", "ip": "10.100.0.10", "hostname": "www"}
    status, body = call(api, "POST", "/network/100/lease", reservation)
    assert status == 200, body
    # as the primary's DHCP server writes it; the API sees it once its mirror has it
    zk.write({("network.lease", "100", "52-54-00-aa-00-02"): {"ip": "10.100.0.150"}})
    rows = until(lambda: len(leases := call(api, "GET", "/network/100/lease")[1]) == 2 and leases)
    assert [(r["mac"], r["static"]) for r in rows] == [
        ("52:54:00:aa:00:01", True), ("52:54:00:aa:00:02", False)
    ]  # fmt: skip
    assert len(call(api, "GET", "/network/100/lease?static=true")[1]) == 1
    status, row = call(api, "GET", "/network/100/lease/52:54:00:aa:00:02")
    assert status == 200 and row["ip"] == "10.100.0.150"
    status, body = call(api, "POST", "/network/100/lease",
                        {"mac": "52:54:00:aa:00:03", "ip": "10.100.0.10"})  # fmt: skip
    assert status == 409 and "reserved for 52:54:00:aa:00:01" in body["message"]
    status, body = call(
        api, "POST", "/network/100/lease", {"mac": "ff:ff:ff:ff:ff:ff", "ip": "10.100.0.11"}
    )
    assert status == 400 and "multicast" in body["message"]
    assert call(api, "GET", "/network/100/lease/52-54-00-aa-00-09")[0] == 404
    assert call(api, "GET", "/network/100/lease/not-a-mac")[0] == 400
    assert call(api, "DELETE", "/network/100/lease/52-54-00-AA-00-01")[0] == 200
    assert call(api, "DELETE", "/network/100/lease/52:54:00:aa:00:01")[0] == 404


def test_acls(api):
    rule = {"direction": "in", "description": "ssh", "rule": "tcp dport 22 accept"}
    assert call(api, "POST", "/network/100/acl", rule)[0] == 200
    assert call(api, "POST", "/network/100/acl", rule | {"direction": "out", "order": 5})[0] == 200
    status, body = call(api, "POST", "/network/100/acl", rule)
    assert status == 409 and "already" in body["message"]
    status, body = call(
        api, "POST", "/network/100/acl", rule | {"description": "x", "rule": "tcp dport 22 acept"}
    )
    assert status == 400 and "nft: Error" in body["message"]
    status, rows = call(api, "GET", "/network/100/acl")
    assert [(r["direction"], r["order"]) for r in rows] == [("in", 1), ("out", 5)]
    assert [r["direction"] for r in call(api, "GET", "/network/100/acl?direction=out")[1]] == [
        "out"
    ]
    assert call(api, "GET", "/network/100/acl/ssh")[0] == 400  # in both directions
    status, row = call(api, "GET", "/network/100/acl/ssh?direction=out")
    assert status == 200 and row["order"] == 5
    assert call(api, "DELETE", "/network/100/acl/ssh?direction=in")[0] == 200
    assert call(api, "DELETE", "/network/100/acl/ssh")[0] == 200
    assert call(api, "GET", "/network/100/acl") == (200, [])
