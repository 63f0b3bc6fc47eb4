"""Usage:
  pvc network add <vni> --type TYPE [options] [--name-server IP]...
  pvc network modify <vni> [--type TYPE] [options] [--name-server IP]...
  pvc network remove <vni> [--yes]
  pvc network info <vni> [--format FORMAT]
  pvc network list [<limit>] [--format FORMAT]
  pvc network dhcp ...
  pvc network acl ...
  pvc network -h | --help

Commands:
  add     Add a network: managed (a VXLAN with gateway, DHCP and DNS from the primary) or
          bridged (a VLAN, or untagged, on the nodes' bridge device; no L3 service from pvc).
  modify  Change the settings given ('' clears a text, 0 the MTU or VLAN).
  remove  Remove a network with its reservations, leases and ACLs (asks first unless --yes);
          refused while a VM has a NIC on it.
  info    One network, and how each node built it.
  list    The networks; <limit>: only those whose VNI or description contains it.
  dhcp    Reservations and leases ('pvc network dhcp --help').
  acl     Firewall rules ('pvc network acl --help').

Options:
  --type TYPE                 managed or bridged
  --description D             what the network is for
  --domain D                  DNS domain (managed)
  --ipnet CIDR                IPv4 subnet, e.g. 10.100.0.0/24
  --gateway IP                IPv4 gateway (default: the subnet's first host)
  --ipnet6 CIDR               IPv6 subnet, e.g. fd00:100::/64
  --gateway6 IP               IPv6 gateway (default: <net>::1)
  --dhcp                      DHCPv4 on the network (needs --dhcp-start and --dhcp-end)
  --dhcp-start IP             first address of the DHCPv4 range
  --dhcp-end IP               last address of the DHCPv4 range
  --dhcp6                     DHCPv6 and router advertisements (default with --ipnet6)
  --no-dhcp6                  no DHCPv6
  --name-server IP            a name server DHCP hands out (repeat for more)
  --mtu N                     MTU (default: the largest the underlay allows)
  --vlan N                    bridged: the VLAN tag (default: the VNI; 0: untagged)
  --nat                       managed: source NAT to the upstream network
  --no-dhcp                   modify: turn DHCPv4 off
  --no-nat                    modify: turn NAT off
  -y, --yes                   do not ask for confirmation
  -f FORMAT, --format FORMAT  output: pretty, json or json-pretty [default: pretty]
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from pvc.cli import client
from pvc.cli.cluster import confirm_or_stop
from pvc.cli.format import check_format, key_values, render, table
from pvc.cli.parse import parse
from pvc.cli.storage_pool import whole_number
from pvc.errors import UsageError

if TYPE_CHECKING:
    from pvc.__main__ import Globals

SUBGROUPS = {"dhcp": "pvc.cli.network_dhcp", "acl": "pvc.cli.network_acl"}
LIST_HEADERS = ("VNI", "TYPE", "DESCRIPTION", "DOMAIN", "IPV4", "GATEWAY", "DHCP", "IPV6",
                "MTU", "NODES")  # fmt: skip
TEXT_OPTIONS = {
    "--description": "description", "--domain": "domain", "--ipnet": "ip4_network",
    "--gateway": "ip4_gateway", "--ipnet6": "ip6_network", "--gateway6": "ip6_gateway",
    "--dhcp-start": "dhcp4_start", "--dhcp-end": "dhcp4_end",
}  # fmt: skip
# flag options: (on, off) -> the setting they switch
FLAGS = {("--dhcp", "--no-dhcp"): "dhcp4", ("--nat", "--no-nat"): "nat",
         ("--dhcp6", "--no-dhcp6"): "dhcp6"}  # fmt: skip


def main(args: list[str], options: Globals) -> int:
    if args and args[0] in SUBGROUPS:
        return importlib.import_module(SUBGROUPS[args[0]]).main(args, options)
    arguments = parse(__doc__, args, "network")
    api = client.for_options(options)
    vni = arguments["<vni>"]
    if arguments["add"]:
        params = settings(arguments) | {"vni": whole_number(vni, "<vni>")}
        print(api.post("/network", params | {"nettype": arguments["--type"]})["message"])
        return 0
    if arguments["modify"]:
        if arguments["--type"]:
            raise UsageError("a network's type cannot change: remove it and add it again")
        print(api.request("PUT", network_path(vni), settings(arguments))["message"])
        return 0
    if arguments["remove"]:
        question = f"Remove network {vni} with its reservations and ACLs? (y/N) "
        confirm_or_stop(question, arguments["--yes"])
        print(api.request("DELETE", network_path(vni))["message"])
        return 0
    output_format = check_format(arguments["--format"])
    if arguments["info"]:
        print(render(api.get(network_path(vni)), output_format, info_text))
        return 0
    found = api.get("/network", {"limit": arguments["<limit>"]})
    print(render(found, output_format, list_text))
    return 0


def network_path(vni: str) -> str:
    """The network's path; the API refuses a VNI that is not a number."""
    return f"/network/{whole_number(vni, '<vni>')}"


def settings(arguments: dict[str, Any]) -> dict[str, Any]:
    """The settings the command line gives (the others stay as they are)."""
    params: dict[str, Any] = {
        name: arguments[option] for option, name in TEXT_OPTIONS.items()
    }  # fmt: skip
    for (on, off), name in FLAGS.items():
        params[name] = True if arguments.get(on) else False if arguments.get(off) else None
    if arguments["--name-server"]:
        params["name_servers"] = ",".join(arguments["--name-server"])
    for option, name in (("--mtu", "mtu"), ("--vlan", "vlan")):
        if arguments[option] is not None:
            params[name] = whole_number(arguments[option], option)
    return params


def _dhcp(ip4: dict[str, Any]) -> str | None:
    return f"{ip4['dhcp_start']}-{ip4['dhcp_end']}" if ip4["dhcp_flag"] else None


def _nodes(network: dict[str, Any]) -> str | None:
    states = network.get("nodes") or {}
    failed = sorted(node for node, state in states.items() if (state or {}).get("state") != "ok")
    if not states:
        return None
    return f"{len(states) - len(failed)} ok" + (f", failed: {', '.join(failed)}" if failed else "")


def list_text(networks: list[dict[str, Any]]) -> str:
    rows = [
        [n["vni"], n["type"], n["description"] or None, n["domain"], n["ip4"]["network"],
         n["ip4"]["gateway"], _dhcp(n["ip4"]), n["ip6"]["network"], n["mtu"], _nodes(n)]
        for n in networks
    ]  # fmt: skip
    return table(LIST_HEADERS, rows) if rows else "no networks"


def info_text(network: dict[str, Any]) -> str:
    ip4, ip6 = network["ip4"], network["ip6"]
    pairs = [
        ("vni", network["vni"]),
        ("type", network["type"]),
        ("description", network["description"] or None),
        ("bridge", f"vmbr{network['vni']}"),
        ("mtu", network["mtu"] or "largest the underlay allows"),
    ]
    if network["type"] == "bridged":
        pairs.append(("vlan", network["vlan"] or "untagged"))
    else:
        pairs += [
            ("domain", network["domain"]),
            ("name servers", ", ".join(network["name_servers"]) or None),
            ("ipv4 network", ip4["network"]),
            ("ipv4 gateway", ip4["gateway"]),
            ("dhcp", _dhcp(ip4) or "off"),
            ("ipv6 network", ip6["network"]),
            ("ipv6 gateway", ip6["gateway"]),
            ("dhcpv6", ip6["dhcp_flag"]),
            ("nat", network["nat"]),
        ]
    for node, state in sorted((network.get("nodes") or {}).items()):
        state = state or {}
        detail = f" ({state['detail']})" if state.get("detail") else ""
        pairs.append((f"node {node}", f"{state.get('state')}{detail}"))
    return key_values(pairs)
