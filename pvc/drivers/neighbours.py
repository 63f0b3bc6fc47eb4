"""The kernel's neighbour table (ARP/NDP), read through netlink (pyroute2), in the caller's
network namespace.

Contract: `link_address(interface, address)` is the link-layer address the kernel has for
`address` on `interface` (lowercase "52:54:00:ab:cd:ef"), or None when it has none it
trusts (no entry, an incomplete or failed resolution, no such interface). It never changes
the table. It is how the metadata service learns which MAC really sent a request: the
entry exists once a TCP handshake with that address has completed.
"""

from pvc.errors import Unavailable

NUD_INCOMPLETE = 0x01  # linux/neighbour.h
NUD_FAILED = 0x20
NUD_NOARP = 0x40


def warm_up() -> None:
    """Loads the netlink code now (its first use costs 0.2-0.5 s), not during a request."""
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        ipr.link_lookup(ifname="lo")


def link_address(interface: str, address: str) -> str | None:
    from pyroute2 import IPRoute
    from pyroute2.netlink.exceptions import NetlinkError

    try:
        with IPRoute() as ipr:
            found = ipr.link_lookup(ifname=interface)
            if not found:
                return None
            entries = ipr.get_neighbours(ifindex=found[0], dst=address)
    except NetlinkError as exc:
        raise Unavailable(f"cannot read the neighbours of {interface}: {exc}") from None
    for entry in entries:
        if entry["state"] & (NUD_INCOMPLETE | NUD_FAILED | NUD_NOARP):
            continue
        mac = entry.get_attr("NDA_LLADDR")
        if mac:
            return mac.lower()
    return None
