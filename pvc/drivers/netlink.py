"""Addresses on local interfaces, through netlink (pyroute2), in the caller's network namespace.

This module implements pvc.drivers.contracts.AddressDriver with its functions.
Contract: `add_address` and `remove_address` are idempotent (adding a present address or
removing an absent one succeeds) and raise `Unavailable` with the kernel's reason otherwise.
`announce_address` tells the segment where an address now lives (gratuitous ARP), so hosts
and switches stop sending to the MAC of the node that held it before.
"""

import errno
import ipaddress
import socket
import struct
from typing import TYPE_CHECKING

from pvc.errors import Unavailable

if TYPE_CHECKING:  # pyroute2 loads only once an address is touched (it costs 0.2-0.5 s)
    from pyroute2 import IPRoute


def warm_up() -> None:
    """Loads the netlink code and opens a socket once, so the first real change is quick
    (pyroute2's first use costs 0.2-0.5 s, seconds on a loaded host)."""
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        ipr.link_lookup(ifname="lo")


def _parse(cidr: str) -> tuple[str, int]:
    interface = ipaddress.ip_interface(cidr)
    return str(interface.ip), interface.network.prefixlen


def _index(ipr: "IPRoute", interface: str) -> int:
    found = ipr.link_lookup(ifname=interface)
    if not found:
        raise Unavailable(f"interface {interface} does not exist")
    return found[0]


def add_address(interface: str, cidr: str) -> None:
    from pyroute2 import IPRoute
    from pyroute2.netlink.exceptions import NetlinkError

    address, prefix = _parse(cidr)
    with IPRoute() as ipr:
        try:
            ipr.addr("add", index=_index(ipr, interface), address=address, prefixlen=prefix)
        except NetlinkError as exc:
            if exc.code != errno.EEXIST:
                raise Unavailable(f"cannot add {cidr} to {interface}: {exc}") from None


def remove_address(interface: str, cidr: str) -> None:
    from pyroute2 import IPRoute
    from pyroute2.netlink.exceptions import NetlinkError

    address, prefix = _parse(cidr)
    with IPRoute() as ipr:
        found = ipr.link_lookup(ifname=interface)
        if not found:
            return  # no interface, so certainly no address on it
        try:
            ipr.addr("del", index=found[0], address=address, prefixlen=prefix)
        except NetlinkError as exc:
            if exc.code != errno.EADDRNOTAVAIL:
                raise Unavailable(f"cannot remove {cidr} from {interface}: {exc}") from None


def has_address(interface: str, cidr: str) -> bool:
    from pyroute2 import IPRoute

    address, _ = _parse(cidr)
    with IPRoute() as ipr:
        found = ipr.link_lookup(ifname=interface)
        if not found:
            return False
        return any(a.get("IFA_ADDRESS") == address for a in ipr.get_addr(index=found[0]))


def announce_address(interface: str, cidr: str) -> None:
    """Broadcasts a gratuitous ARP for an IPv4 address (IPv6 neighbours learn by themselves)."""
    address = ipaddress.ip_interface(cidr).ip
    if address.version != 4:
        return
    try:
        with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as sock:
            sock.bind((interface, 0))
            mac = sock.getsockname()[4]
            arp = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1)  # Ethernet/IPv4 request
            ip = address.packed
            sock.send(b"\xff" * 6 + mac + b"\x08\x06" + arp + mac + ip + b"\x00" * 6 + ip)
    except OSError as exc:
        raise Unavailable(f"cannot announce {address} on {interface}: {exc.strerror}") from None
