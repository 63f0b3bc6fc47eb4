"""Network endpoints: list, add, describe, change and remove client networks (pvc.ops.network);
reservations and leases: pvc.api.routes.network_dhcp; ACLs: pvc.api.routes.network_acl."""

from typing import Any

from pvc.api.app import Context, endpoint
from pvc.api.openapi import MESSAGE, listing
from pvc.api.params import Param
from pvc.ops import network as network_ops
from pvc.ops import network_checks
from pvc.ops.network_records import TYPES, VNI_MAX

TAGS = ("network",)
NETWORK = {
    "type": "object",
    "required": ["vni", "type"],
    "properties": {"vni": {"type": "integer"}, "type": {"type": "string"}},
}
NOT_FOUND = "No such network, or the cluster is not initialised"
ADDRESS_MAX = 64  # characters of an address or subnet (an IPv6 one with /128 is 49)
SETTINGS = (
    Param("description", str, "What the network is for (printable, one line)",
          max_length=network_checks.DESCRIPTION_MAX),
    Param("domain", str, "DNS domain of a managed network ('' clears it)", max_length=253),
    Param("name_servers", str, "Name servers DHCP hands out: comma-separated IP addresses",
          max_length=network_checks.NAME_SERVERS_MAX * (ADDRESS_MAX + 1)),
    Param("mtu", int, f"MTU, {network_checks.MTU_MIN} to {network_checks.MTU_MAX} (0: the "
          "largest the underlay allows)", minimum=0, maximum=network_checks.MTU_MAX),
    Param("vlan", int, "Bridged only: VLAN tag on the bridge device (default: the VNI; 0: "
          "untagged)",
          minimum=0, maximum=network_checks.VLAN_MAX),
    Param("nat", bool, "Managed only: source NAT to the upstream network"),
    Param("ip4_network", str, "IPv4 subnet, e.g. 10.100.0.0/24 ('' clears it)",
          max_length=ADDRESS_MAX),
    Param("ip4_gateway", str, "IPv4 gateway (default: the subnet's first host)",
          max_length=ADDRESS_MAX),
    Param("dhcp4", bool, "DHCPv4 on the network (needs dhcp4_start and dhcp4_end)"),
    Param("dhcp4_start", str, "First address of the DHCPv4 range", max_length=ADDRESS_MAX),
    Param("dhcp4_end", str, "Last address of the DHCPv4 range", max_length=ADDRESS_MAX),
    Param("ip6_network", str, "IPv6 subnet, e.g. fd00:100::/64 ('' clears it)",
          max_length=ADDRESS_MAX),
    Param("ip6_gateway", str, "IPv6 gateway (default: <net>::1)", max_length=ADDRESS_MAX),
    Param("dhcp6", bool, "DHCPv6 and router advertisements (default: on with an IPv6 subnet)"),
)  # fmt: skip
REFUSED = "Bad setting: an address outside its subnet, a bad DHCP range, L3 settings on a "
REFUSED += "bridged network, a VLAN on a managed one..."


@endpoint(
    "GET",
    "/network",
    summary="Every network, by VNI",
    tags=TAGS,
    params=(
        Param(
            "limit",
            str,
            "Only networks whose VNI or description contains this",
            max_length=network_checks.DESCRIPTION_MAX,
        ),
    ),  # fmt: skip
    responses={404: "The cluster is not initialised"},
    returns=listing(NETWORK),
)
def get_networks(ctx: Context, limit: str | None) -> list[dict[str, Any]]:
    return network_ops.list_networks(ctx.zk, limit)


@endpoint(
    "POST",
    "/network",
    summary="Add a network: managed (VXLAN, with gateway, DHCP and DNS) or bridged",
    tags=TAGS,
    params=(
        Param("vni", int, "The network's VNI", required=True, minimum=1, maximum=VNI_MAX),
        Param("nettype", str, "managed or bridged", required=True, choices=TYPES),
        *SETTINGS,
    ),
    responses={
        400: REFUSED,
        404: "The cluster is not initialised",
        409: "The VNI is used, or the subnet, domain or VLAN is another network's",
    },
    returns=MESSAGE,
)
def post_network(ctx: Context, vni: int, **settings: Any) -> dict[str, Any]:
    return network_ops.add(ctx.zk, vni, **settings)


@endpoint(
    "GET",
    "/network/<vni>",
    summary="One network: type, addresses, DHCP, DNS domain, and its state on each node",
    tags=TAGS,
    responses={404: NOT_FOUND},
    returns=NETWORK,
)
def get_network(ctx: Context, vni: str) -> dict[str, Any]:
    return network_ops.info(ctx.zk, vni)


@endpoint(
    "PUT",
    "/network/<vni>",
    summary="Change a network's settings (those given; '' clears a text, 0 the MTU or VLAN)",
    tags=TAGS,
    params=SETTINGS,
    responses={
        400: REFUSED + " or nothing to change",
        404: NOT_FOUND,
        409: "The subnet, domain or VLAN is another network's, or a reservation would not fit",
    },
    returns=MESSAGE,
)
def put_network(ctx: Context, vni: str, **settings: Any) -> dict[str, Any]:
    return network_ops.modify(ctx.zk, vni, **settings)


@endpoint(
    "DELETE",
    "/network/<vni>",
    summary="Remove a network with its reservations, leases and ACLs",
    tags=TAGS,
    responses={404: NOT_FOUND, 409: "A VM has a NIC on the network"},
    returns=MESSAGE,
)
def delete_network(ctx: Context, vni: str) -> dict[str, Any]:
    return network_ops.remove(ctx.zk, vni)
