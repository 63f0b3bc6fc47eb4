"""`pvc network` (with dhcp and acl) run as the built dist/pvc against a real API and
Zookeeper: tables an admin can read, JSON output, and one readable line on a refusal."""

import json

import pytest

from pvc.ops import cluster
from tests.conftest import fails, ok


@pytest.fixture
def pvc(run_pvc, api_server, zk):
    cluster.initialize(zk)

    def run(*args: str, **kwargs):
        return run_pvc("--config", str(api_server.config_path), *args, **kwargs)

    ok(run("network", "add", "100", "--type", "managed", "--description", "web",
           "--domain", "web.example", "--ipnet", "10.100.0.0/24", "--dhcp",
           "--dhcp-start", "10.100.0.100", "--dhcp-end", "10.100.0.199",
           "--name-server", "1.1.1.1", "--name-server", "9.9.9.9"))  # fmt: skip
    return run


def test_add_list_info_modify_remove(pvc):
    assert ok(pvc("network", "add", "200", "--type", "bridged", "--vlan", "20")).strip() == (
        "network 200 added (bridged)"
    )
    lines = ok(pvc("network", "list")).splitlines()
    assert lines[0].split() == ["VNI", "TYPE", "DESCRIPTION", "DOMAIN", "IPV4", "GATEWAY", "DHCP",
                                "IPV6", "MTU", "NODES"]  # fmt: skip
    assert lines[1].split() == ["100", "managed", "web", "web.example", "10.100.0.0/24",
                                "10.100.0.1", "10.100.0.100-10.100.0.199", "-", "-",
                                "-"]  # fmt: skip
    assert lines[2].split()[:2] == ["200", "bridged"]
    assert [n["vni"] for n in json.loads(ok(pvc("network", "list", "web", "-f", "json")))] == [100]
    info = ok(pvc("network", "info", "100"))
    assert (
        "name servers:  1.1.1.1, 9.9.9.9" in info
        and "dhcp:          10.100.0.100-10.100.0.199" in info
    )
    ok(pvc("network", "modify", "100", "--no-dhcp", "--nat", "--mtu", "1400"))
    record = json.loads(ok(pvc("network", "info", "100", "-f", "json-pretty")))
    assert (record["ip4"]["dhcp_flag"], record["nat"], record["mtu"]) == (False, True, 1400)
    assert "vlan:         20" in ok(pvc("network", "info", "200"))
    assert ok(pvc("network", "remove", "200", "--yes")).strip() == "network 200 removed"
    assert fails(pvc("network", "remove", "100", input="n\n")).endswith("(y/N) pvc: not removed")


@pytest.mark.parametrize(
    "args, code, line",
    [
        (("network", "add", "100", "--type", "managed"), 1, "pvc: network 100 exists already"),
        (("network", "add", "101", "--type", "managed", "--ipnet", "10.100.0.0/16"), 1,
         "pvc: subnet 10.100.0.0/16 overlaps 10.100.0.0/24 of network 100"),
        (("network", "add", "101", "--type", "managed", "--ipnet", "10.101.0.0/24", "--gateway",
          "10.9.0.1"), 1, "pvc: gateway 10.9.0.1 is outside the network 10.101.0.0/24"),
        (("network", "add", "x1", "--type", "managed"), 2,
         "pvc: <vni> must be a whole number, not 'x1'"),
        (("network", "add", "101"), 2,
         "pvc: invalid arguments for 'pvc network'; see 'pvc network --help'"),
        (("network", "modify", "100", "--type", "bridged"), 2,
         "pvc: a network's type cannot change: remove it and add it again"),
        (("network", "info", "999"), 1, "pvc: network 999 does not exist"),
        (("network", "dhcp", "add", "100", "52:54:00:00:00", "10.100.0.5"), 1,
         "pvc: invalid MAC address '52:54:00:00:00': six hex pairs, e.g. 52:54:00:12:34:56"),
        (("network", "dhcp", "frob"), 2,
         "pvc: invalid arguments for 'pvc network dhcp'; see 'pvc network dhcp --help'"),
        (("network", "acl", "add", "100", "x", "--direction", "in", "--rule", "jump x"), 1,
         "pvc: an ACL rule may not use 'jump': it stays inside its network's chain"),
    ],
)  # fmt: skip
def test_refusals_are_one_line(pvc, args, code, line):
    assert fails(pvc(*args), code) == line


def test_dhcp_reservations_and_leases(pvc, zk):
    out = ok(pvc("network", "dhcp", "add", "100", "52:54:00:00:00:01", "10.100.0.10",
                 "--hostname", "www"))  # fmt: skip
    assert out.strip() == "10.100.0.10 reserved for 52:54:00:00:00:01 on network 100"
    lines = ok(pvc("network", "dhcp", "list", "100")).splitlines()
    assert [line.split() for line in lines] == [
        ["MAC", "IP", "HOSTNAME", "STATIC", "EXPIRES"],
        ["52:54:00:00:00:01", "10.100.0.10", "www", "yes", "-"],
    ]
    rows = json.loads(ok(pvc("network", "dhcp", "list", "100", "--static", "-f", "json")))
    assert [row["ip"] for row in rows] == ["10.100.0.10"]
    line = fails(pvc("network", "dhcp", "add", "100", "52:54:00:00:00:02", "10.100.0.10"))
    assert line == "pvc: 10.100.0.10 is reserved for 52:54:00:00:00:01 already"
    ok(pvc("network", "dhcp", "remove", "100", "52:54:00:00:00:01"))
    assert ok(pvc("network", "dhcp", "list", "100")).strip() == "no reservations or leases"


def test_acls(pvc):
    ok(pvc("network", "acl", "add", "100", "ssh", "--direction", "in", "--rule",
           "tcp dport 22 accept"))  # fmt: skip
    ok(pvc("network", "acl", "add", "100", "web", "--direction", "in", "--order", "0",
           "--rule", "tcp dport { 80, 443 } accept"))  # fmt: skip
    lines = ok(pvc("network", "acl", "list", "100")).splitlines()
    assert [line.split(None, 3) for line in lines] == [
        ["DIRECTION", "ORDER", "DESCRIPTION", "RULE"],
        ["in", "0", "web", "tcp dport { 80, 443 } accept"],
        ["in", "1", "ssh", "tcp dport 22 accept"],
    ]
    line = fails(pvc("network", "acl", "add", "100", "bad", "--direction", "out", "--rule",
                     "tcp dport 22 acept"))  # fmt: skip
    assert line.startswith("pvc: nft: Error")
    ok(pvc("network", "acl", "remove", "100", "web"))
    rows = json.loads(ok(pvc("network", "acl", "list", "100", "--direction", "in", "-f", "json")))
    assert [row["description"] for row in rows] == ["ssh"]
