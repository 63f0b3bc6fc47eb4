"""Addresses on local interfaces, through netlink (pyroute2), in the caller's network namespace.

This module implements pvc.drivers.contracts.AddressDriver with its functions.
Contract: `add_address` and `remove_address` are idempotent (adding a present address or
removing an absent one succeeds) and raise `Unavailable` with the kernel's reason otherwise.
`announce_address` tells the segment where an address now lives (gratuitous ARP for IPv4,
unsolicited neighbour advertisement for IPv6), so hosts and switches stop sending to the MAC
of the node that held it before.
"""

import errno
import ipaddress
import socket
import struct
from typing import TYPE_CHECKING

from pvc.errors import Unavailable

if TYPE_CHECKING:  # pyroute2 loads only once an address is touched (it costs 0.2-0.5 s)
    from pyroute2 import IPRoute


IFA_F_NODAD = 0x02  # linux/if_addr.h


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


RT_SCOPE_LINK = 253


def add_address(interface: str, cidr: str) -> None:
    from pyroute2 import IPRoute
    from pyroute2.netlink.exceptions import NetlinkError

    address, prefix = _parse(cidr)
    with IPRoute() as ipr:
        try:
            # an IPv6 address without duplicate address detection: usable at once after a
            # takeover (not tentative for a second), and never "dadfailed" because the old
            # primary's copy was still answering
            options: dict[str, int] = {"flags": IFA_F_NODAD} if ":" in address else {}
            if ipaddress.ip_address(address).is_link_local:
                # 169.254.169.254 on lo is the metadata service's, not the node's own address:
                # link scope keeps it out of "the node's global addresses" (source selection,
                # a listener that binds the first global address)
                options["scope"] = RT_SCOPE_LINK
            ipr.addr("add", index=_index(ipr, interface), address=address, prefixlen=prefix,
                     **options)  # fmt: skip
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


RTPROT_PVC = 0x50  # the protocol of the routes pvc adds (rtnetlink: 0-255, unassigned)
MAIN_TABLE = 254


def _default_routes(ipr: "IPRoute", gateway: str) -> list:
    family = socket.AF_INET6 if ":" in gateway else socket.AF_INET
    routes = ipr.get_routes(family=family, table=MAIN_TABLE)
    return [route for route in routes if route.get("dst_len") == 0]


def add_default_route(interface: str, gateway: str) -> bool:
    """A default route via `gateway` on `interface`, marked as pvc's (RTPROT_PVC), at metric 0:
    it wins over one from DHCP or SLAAC (metric 100 and up). True once pvc's route is there;
    False when the same route is there already, not pvc's (the node's own: pvc leaves it
    alone). Unavailable when another default route holds metric 0 (replacing the node's
    own route could cut it off)."""
    from pyroute2 import IPRoute
    from pyroute2.netlink.exceptions import NetlinkError

    with IPRoute() as ipr:
        index = _index(ipr, interface)
        for route in _default_routes(ipr, gateway):
            if (route.get("RTA_PRIORITY") or 0) != 0:
                continue
            if route.get("RTA_GATEWAY") == gateway and route.get("RTA_OIF") == index:
                return route["proto"] == RTPROT_PVC
            raise Unavailable(
                f"the node has a default route via {route.get('RTA_GATEWAY')} already: "
                f"none via {gateway} on {interface} added"
            )
        try:
            ipr.route("add", dst="default", gateway=gateway, oif=index, proto=RTPROT_PVC)
        except NetlinkError as exc:
            raise Unavailable(f"cannot route via {gateway} on {interface}: {exc}") from None
    return True


def remove_default_route(interface: str, gateway: str) -> None:
    """Removes pvc's default route via `gateway` on `interface` (any other is left)."""
    from pyroute2 import IPRoute
    from pyroute2.netlink.exceptions import NetlinkError

    with IPRoute() as ipr:
        found = ipr.link_lookup(ifname=interface)
        for route in _default_routes(ipr, gateway):
            ours = route["proto"] == RTPROT_PVC and route.get("RTA_GATEWAY") == gateway
            if not (found and ours and route.get("RTA_OIF") == found[0]):
                continue
            try:
                ipr.route("del", dst="default", gateway=gateway, oif=found[0], proto=RTPROT_PVC)
            except NetlinkError as exc:
                if exc.code != errno.ESRCH:
                    raise Unavailable(f"cannot remove the route via {gateway}: {exc}") from None


def has_default_route(interface: str, gateway: str) -> bool:
    """pvc's default route via `gateway` on `interface` is there."""
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        found = ipr.link_lookup(ifname=interface)
        return bool(found) and any(
            route["proto"] == RTPROT_PVC
            and route.get("RTA_GATEWAY") == gateway
            and route.get("RTA_OIF") == found[0]
            for route in _default_routes(ipr, gateway)
        )


def mtu(interface: str) -> int | None:
    """The interface's MTU; None if it does not exist. (Not /sys/class/net: that shows the
    namespace sysfs was mounted in, not the caller's.)"""
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        found = ipr.link_lookup(ifname=interface)
        return ipr.get_links(found[0])[0].get("IFLA_MTU") if found else None


def announce_address(interface: str, cidr: str) -> None:
    """Tells the segment where the address lives now: a gratuitous ARP for IPv4, an
    unsolicited neighbour advertisement (override flag, to all nodes) for IPv6."""
    address = ipaddress.ip_interface(cidr).ip
    try:
        if address.version == 4:
            _gratuitous_arp(interface, address.packed)
        else:
            _unsolicited_advertisement(interface, address.packed)
    except OSError as exc:
        raise Unavailable(f"cannot announce {address} on {interface}: {exc.strerror}") from None


def _gratuitous_arp(interface: str, ip: bytes) -> None:
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as sock:
        sock.bind((interface, 0))
        mac = sock.getsockname()[4]
        arp = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1)  # Ethernet/IPv4 request
        sock.send(b"\xff" * 6 + mac + b"\x08\x06" + arp + mac + ip + b"\x00" * 6 + ip)


ICMPV6_ROUTER_ADVERTISEMENT = 134
ICMPV6_NEIGHBOUR_ADVERTISEMENT = 136
NA_OVERRIDE = 0x20000000
ALL_NODES = "ff02::1"


def _unsolicited_advertisement(interface: str, ip: bytes) -> None:
    """RFC 4861 7.2.6: hop limit 255, target = the address, its link-layer address as an
    option; the kernel fills in the checksum of an ICMPv6 raw socket."""
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as probe:
        probe.bind((interface, 0))
        mac = probe.getsockname()[4]
    index = socket.if_nametoindex(interface)
    with socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6) as sock:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, index)
        header = struct.pack("!BBHI", ICMPV6_NEIGHBOUR_ADVERTISEMENT, 0, 0, NA_OVERRIDE)
        option = struct.pack("!BB", 2, 1) + mac  # target link-layer address, 8 bytes
        sock.sendto(header + ip + option, (ALL_NODES, 0, 0, index))


def withdraw_router(interface: str) -> None:
    """A router advertisement with router lifetime 0 from the interface's link-local address
    (RFC 4861 6.2.5, a router that stops being one): hosts on the segment drop this node as
    their IPv6 default router at once, instead of when the last advertisement's lifetime
    ends, and use the new primary's (a different link-local address) as soon as it sends."""
    try:
        index = socket.if_nametoindex(interface)
        with socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6) as sock:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, index)
            # type, code, checksum, hop limit, flags, router lifetime, reachable, retransmit
            message = struct.pack("!BBHBBHII", ICMPV6_ROUTER_ADVERTISEMENT, 0, 0, 0, 0, 0, 0, 0)
            sock.sendto(message, (ALL_NODES, 0, 0, index))
    except OSError as exc:
        reason = exc.strerror or exc
        raise Unavailable(f"cannot withdraw the router on {interface}: {reason}") from None
