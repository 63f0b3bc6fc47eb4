"""DHCP endpoints of a network: its reservations and leases (pvc.ops.network_dhcp)."""

from typing import Any

from pvc.api.app import MAC_LENGTH, Context, endpoint
from pvc.api.openapi import MESSAGE, listing, record
from pvc.api.params import Param
from pvc.api.routes.network import ADDRESS_MAX, TAGS
from pvc.ops import network_dhcp

LEASE = record("mac", static={"type": "boolean"})
NOT_FOUND = "No such network"


@endpoint(
    "GET",
    "/network/<vni>/lease",
    summary="The network's reservations and leases, one per MAC",
    tags=TAGS,
    params=(Param("static", bool, "Reservations only", default=False),),
    responses={404: NOT_FOUND},
    returns=listing(LEASE),
)
def get_leases(ctx: Context, vni: str, static: bool) -> list[dict[str, Any]]:
    return network_dhcp.list_leases(ctx.zk, vni, static)


@endpoint(
    "POST",
    "/network/<vni>/lease",
    summary="Reserve an IPv4 address (and a host name) for a MAC on a managed network",
    tags=TAGS,
    params=(
        Param(
            "mac",
            str,
            "The MAC address, e.g. 52:54:00:12:34:56",
            required=True,
            max_length=MAC_LENGTH,
        ),
        Param(
            "ip", str, "The address, in the network's subnet", required=True, max_length=ADDRESS_MAX
        ),
        Param("hostname", str, "Its host name: one DNS label", max_length=63),
    ),  # fmt: skip
    responses={
        400: "Bad MAC, address or host name, or the network has no IPv4 service from pvc",
        404: NOT_FOUND,
        409: "The MAC has a reservation, or the address is reserved or leased to another MAC",
    },
    returns=MESSAGE,
)
def post_lease(ctx: Context, vni: str, mac: str, ip: str, hostname: str | None) -> dict[str, Any]:
    return network_dhcp.add(ctx.zk, vni, mac, ip, hostname)


@endpoint(
    "GET",
    "/network/<vni>/lease/<mac>",
    summary="One MAC's reservation and lease",
    tags=TAGS,
    responses={404: "No such network, or no reservation or lease for the MAC"},
    returns=LEASE,
)
def get_lease(ctx: Context, vni: str, mac: str) -> dict[str, Any]:
    return network_dhcp.info(ctx.zk, vni, mac)


@endpoint(
    "DELETE",
    "/network/<vni>/lease/<mac>",
    summary="Remove a MAC's reservation",
    tags=TAGS,
    responses={404: "No such network, or no reservation for the MAC"},
    returns=MESSAGE,
)
def delete_lease(ctx: Context, vni: str, mac: str) -> dict[str, Any]:
    return network_dhcp.remove(ctx.zk, vni, mac)
