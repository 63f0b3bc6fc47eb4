"""DHCP reservations of a managed network (a fixed IPv4 address, and a host name, for a MAC)
and the leases the primary's dnsmasq hands out, listed together.

A reservation is added under `lock.networks` (pvc.ops.network.networks_lock), after checks
against the network's reservations and live leases, in one transaction that expects the
network unchanged: a network removed or re-addressed meanwhile fails the write whole.
Leases are written by the primary's DHCP server, never here; one whose expiry (seconds since
the epoch) has passed no longer holds its address.
"""

import ipaddress
import re
import time
from typing import Any

from pvc.errors import Conflict, InvalidInput, NotFound
from pvc.ops import network_checks, network_records, user_input
from pvc.ops.network import networks_lock, require
from pvc.ops.network_records import Network
from pvc.zk import schema
from pvc.zk.store import Store

_MAC = re.compile(r"[0-9a-f]{2}(?:([:-])[0-9a-f]{2})(?:\1[0-9a-f]{2}){4}")


def parse_mac(mac: Any) -> str | None:
    """`mac` as 52:54:00:ab:cd:ef if it is six hex pairs (':' or '-' between), else None."""
    text = mac.strip().lower() if isinstance(mac, str) else ""
    return text.replace("-", ":") if _MAC.fullmatch(text) else None


def require_mac(mac: Any) -> str:
    """`mac` normalised, if it is a unicast MAC address a NIC can have."""
    found = parse_mac(mac)
    if found is None:
        raise InvalidInput(
            f"invalid MAC address {user_input.quoted(mac)}: six hex pairs, e.g. 52:54:00:12:34:56"
        )
    if int(found[:2], 16) & 1:
        raise InvalidInput(f"MAC address {found} is a multicast address, not a NIC's")
    if found == "00:00:00:00:00:00":
        raise InvalidInput("MAC address 00:00:00:00:00:00 is no NIC's")
    return found


def _require_dhcp_network(store: Store, vni: Any) -> Network:
    network = require(store, vni)
    if not network.managed or not network.ip4_network:
        raise InvalidInput(
            f"network {network.vni} has no IPv4 service from pvc (bridged, or no ipnet): "
            "no reservations"
        )
    return network


def live(lease: dict[str, Any], now: float) -> bool:
    expiry = lease.get("expiry")
    return not isinstance(expiry, int | float) or expiry == 0 or expiry > now


def add(store: Store, vni: Any, mac: Any, ip: Any, hostname: str | None = None) -> dict[str, Any]:
    """Reserves `ip` (and `hostname`) for `mac` on a managed network."""
    mac = require_mac(mac)
    if hostname is not None and hostname != "" and not network_checks.valid_label(hostname):
        raise InvalidInput(
            f"invalid host name {user_input.quoted(hostname)}: one DNS label, 1 to 63 letters, "
            "digits and '-', not starting or ending with '-'"
        )
    _require_dhcp_network(store, vni)
    with networks_lock(store):
        network = _require_dhcp_network(store, vni)
        address = _require_host(network, ip)
        _require_free(store, network.vni, mac, address)
        key = str(network.vni)
        version = store.read_versioned(("network", key))[1]
        reservation_key = ("network.reservation", key, schema.mac_component(mac))
        store.write(
            {reservation_key: {"ip": address, "hostname": hostname or None}},
            expect={("network", key): version, reservation_key: -1},
        )
    return {"message": f"{address} reserved for {mac} on network {network.vni}"}


def _require_host(network: Network, ip: Any) -> str:
    try:
        address = ipaddress.ip_address(str(ip).strip())
    except ValueError:
        raise InvalidInput(f"invalid IP address {user_input.quoted(ip)}") from None
    subnet = ipaddress.ip_network(network.ip4_network)
    if address not in subnet or address in (subnet.network_address, subnet.broadcast_address):
        raise InvalidInput(f"{address} is not a host address of network {network.vni} ({subnet})")
    if str(address) == network.ip4_gateway:
        raise InvalidInput(f"{address} is the gateway of network {network.vni}")
    return str(address)


def _require_free(store: Store, vni: int, mac: str, address: str) -> None:
    reservations = network_records.reservations(store, vni)
    if mac in reservations:
        raise Conflict(
            f"{mac} has a reservation on network {vni} already ({reservations[mac].get('ip')})"
        )
    for other, reservation in reservations.items():
        if reservation.get("ip") == address:
            raise Conflict(f"{address} is reserved for {other} already")
    now = time.time()
    for other, lease in network_records.leases(store, vni).items():
        if other != mac and lease.get("ip") == address and live(lease, now):
            raise Conflict(f"{address} is leased to {other}")


def remove(store: Store, vni: Any, mac: Any) -> dict[str, Any]:
    """Removes the reservation of `mac`; its lease, if any, runs out by itself."""
    network = require(store, vni)
    found = parse_mac(mac)
    key = ("network.reservation", str(network.vni), schema.mac_component(found or "x"))
    with networks_lock(store):
        version = store.read_versioned(key)[1] if found else -1
        if version < 0:
            raise NotFound(f"no reservation for {user_input.quoted(mac)} on network {network.vni}")
        store.write({}, delete=[key], expect={key: version})
    return {"message": f"reservation of {found} on network {network.vni} removed"}


def _rows(store: Store, vni: int, static: bool) -> list[dict[str, Any]]:
    reservations = network_records.reservations(store, vni)
    leases = {} if static else network_records.leases(store, vni)
    rows = []
    for mac in sorted(set(reservations) | set(leases)):
        lease, reserved = leases.get(mac, {}), reservations.get(mac)
        given = reserved or lease
        rows.append({
            "mac": mac, "ip": given.get("ip"), "hostname": given.get("hostname"),
            "static": reserved is not None, "expiry": lease.get("expiry"),
            "client_id": lease.get("client_id"),
        })  # fmt: skip
    return rows


def list_leases(store: Store, vni: Any, static: bool = False) -> list[dict[str, Any]]:
    """The network's reservations and leases, one row per MAC (a reservation's address and
    name win over its lease's); with `static`, the reservations only."""
    return _rows(store, require(store, vni).vni, static)


def info(store: Store, vni: Any, mac: Any) -> dict[str, Any]:
    network = require(store, vni)
    found = parse_mac(mac)
    for row in _rows(store, network.vni, False):
        if row["mac"] == found:
            return row
    raise NotFound(f"no reservation or lease for {user_input.quoted(mac)} on network {network.vni}")
