"""Links of client networks (bridges, VXLANs, VLANs, FDB entries) through netlink (pyroute2), in
the caller's network namespace.

Contract (`with opened() as kernel:` gives a `Kernel` on one netlink socket):
- `ensure_bridge(name, mtu)`, `ensure_vxlan(name, vni, local, device, mtu)`,
  `ensure_vlan(name, device, tag, mtu)`: make the link if absent, mark it as pvc's
  (IFLA_IFALIAS `pvc`), bring what differs in line (MTU, bridge STP off and forward delay 0,
  no IPv6 autoconfiguration or RAs accepted on a bridge, up), and return True if anything
  changed. What is already right is not touched (no down/up, no re-create): a VM's port on
  the bridge never flaps because a daemon restarted.
  A VXLAN or VLAN whose identity differs (VNI, port, local address, lower device, tag) is
  made again. A link of that name that pvc did not make is never changed: `Unavailable`.
- `ensure_port(bridge, port)` enslaves `port` to `bridge` and brings it up; `release(port)`
  frees a port from its bridge; `addresses(name)` lists a device's addresses (IPv6
  link-local ones aside); `set_fdb_peers(vxlan, peers)` makes the all-zero FDB entries
  (`00:00:00:00:00:00 dst <peer>`: where broadcast and unknown traffic goes) exactly `peers`.
- `delete(name)` removes a link only if pvc made it (False otherwise, or if absent);
  `pvc_links()` names every link pvc made here.
Every kernel refusal raises `Unavailable` naming the link, in the kernel's words.
"""

import errno
import ipaddress
import os
import socket
import struct
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from pvc.errors import Unavailable

if TYPE_CHECKING:  # pyroute2 loads only once a link is touched (it costs 0.2-0.5 s)
    from pyroute2 import IPRoute

MARK = "pvc"  # IFLA_IFALIAS of every link pvc makes
ZERO_MAC = "00:00:00:00:00:00"
_ZERO_MAC_BYTES = bytes(6)
VXLAN_PORT = 4789
IFF_UP = 0x1
IFA_F_SECONDARY = 0x1
# raw rtnetlink, for the FDB dump (linux/netlink.h, linux/rtnetlink.h, linux/neighbour.h)
_SOL_NETLINK = 270
_NETLINK_GET_STRICT_CHK = 12
_RTM_GETNEIGH = 30
_NLM_F_REQUEST_DUMP = 0x1 | 0x300
_NLMSG_ERROR = 2
_NLMSG_DONE = 3
_AF_BRIDGE = 7
_NDA_DST = 1
_NDA_LLADDR = 2


def fdb_changes(present: Iterable[str], wanted: Iterable[str]) -> tuple[list[str], list[str]]:
    """The peers to add and the peers to remove, each sorted, to go from `present` to `wanted`."""
    have, want = set(present), set(wanted)
    return sorted(want - have), sorted(have - want)


def _reason(exc: Exception) -> str:
    code = getattr(exc, "code", None)
    return os.strerror(code) if isinstance(code, int) and code > 0 else str(exc)


def _info(message: Any) -> tuple[str | None, dict[str, Any]]:
    """A link's kind and its kind's attributes (IFLA_INFO_DATA) as a dict."""
    info = message.get("IFLA_LINKINFO")
    if info is None:
        return None, {}
    data = info.get("IFLA_INFO_DATA")
    attrs = dict(data["attrs"]) if data is not None else {}
    return info.get("IFLA_INFO_KIND"), attrs


class Kernel:
    """Links on one netlink socket; see the module docstring."""

    def __init__(self, ipr: "IPRoute"):
        self._ipr = ipr

    # --- reading ------------------------------------------------------------------------------

    def _link(self, name: str) -> Any | None:
        found = self._ipr.link_lookup(ifname=name)
        return self._ipr.get_links(found[0])[0] if found else None

    def _index(self, name: str) -> int:
        found = self._ipr.link_lookup(ifname=name)
        if not found:
            raise Unavailable(f"device {name} does not exist on this node")
        return found[0]

    def exists(self, name: str) -> bool:
        return bool(self._ipr.link_lookup(ifname=name))

    def mtu(self, name: str) -> int:
        return self._link_or_fail(name).get("IFLA_MTU")

    def master(self, name: str) -> str | None:
        """The bridge `name` is a port of (None: none, or no such link)."""
        link = self._link(name)
        index = link.get("IFLA_MASTER") if link is not None else None
        if not index:
            return None
        return self._ipr.get_links(index)[0].get("IFLA_IFNAME")

    def ipv4_addresses(self, name: str) -> list[str]:
        """The device's IPv4 addresses (a.b.c.d), primary ones first."""
        found = self._ipr.get_addr(family=2, index=self._index(name))
        ordered = sorted(found, key=lambda a: bool(a["flags"] & IFA_F_SECONDARY))
        return [a.get("IFA_ADDRESS") for a in ordered]

    def addresses(self, name: str) -> list[str]:
        """The device's addresses, IPv4 and IPv6, but IPv6 link-local ones (every device with
        IPv6 has one; nothing of the node's is reached through it)."""
        found = (a.get("IFA_ADDRESS") for a in self._ipr.get_addr(index=self._index(name)))
        return [
            a for a in found
            if ipaddress.ip_address(a).version == 4 or not ipaddress.ip_address(a).is_link_local
        ]  # fmt: skip

    def made_by_pvc(self, name: str) -> bool:
        link = self._link(name)
        return link is not None and link.get("IFLA_IFALIAS") == MARK

    def pvc_links(self) -> list[str]:
        return sorted(
            link.get("IFLA_IFNAME")
            for link in self._ipr.get_links()
            if link.get("IFLA_IFALIAS") == MARK
        )

    def fdb_peers(self, vxlan: str) -> set[str]:
        """The destinations of the VXLAN's all-zero FDB entries."""
        index = self._index(vxlan)
        try:
            entries = _fdb_dump(index)
        except OSError as exc:
            raise Unavailable(f"cannot read the FDB of {vxlan}: {exc.strerror}") from None
        return {dst for mac, dst in entries if mac == _ZERO_MAC_BYTES and dst}

    def _link_or_fail(self, name: str) -> Any:
        link = self._link(name)
        if link is None:
            raise Unavailable(f"device {name} does not exist on this node")
        return link

    # --- changing -----------------------------------------------------------------------------

    def _do(self, what: str, name: str, method: str, *args: Any, **kwargs: Any) -> None:
        from pyroute2.netlink.exceptions import NetlinkError

        try:
            getattr(self._ipr, method)(*args, **kwargs)
        except NetlinkError as exc:
            raise Unavailable(f"cannot {what} {name}: {_reason(exc)}") from None

    def _mine_or_absent(self, name: str) -> Any | None:
        """The link if pvc made it, None if absent; a link pvc did not make: Unavailable."""
        link = self._link(name)
        if link is not None and link.get("IFLA_IFALIAS") != MARK:
            raise Unavailable(f"{name} exists on this node and was not made by pvc")
        return link

    def _create(self, name: str, **kwargs: Any) -> None:
        """Makes the link and marks it (the kernel takes no alias at creation); if the mark
        cannot be set, the unmarked link is removed again."""
        self._do("create", name, "link", "add", ifname=name, **kwargs)
        index = self._index(name)
        try:
            self._do("mark", name, "link", "set", index=index, ifalias=MARK)
        except Unavailable:
            self._do("remove", name, "link", "del", index=index)
            raise

    def _tune(self, link: Any, mtu: int) -> bool:
        """MTU, then up; True if either changed."""
        changed = False
        name, index = link.get("IFLA_IFNAME"), link["index"]
        if link.get("IFLA_MTU") != mtu:
            self._do(f"set MTU {mtu} on", name, "link", "set", index=index, mtu=mtu)
            changed = True
        if not link["flags"] & IFF_UP:
            self._do("bring up", name, "link", "set", index=index, state="up")
            changed = True
        return changed

    def ensure_bridge(self, name: str, mtu: int) -> bool:
        link = self._mine_or_absent(name)
        changed = False
        if link is not None and _info(link)[0] != "bridge":
            self.delete(name)
            link = None
        if link is None:
            self._create(name, kind="bridge", br_stp_state=0, br_forward_delay=0, mtu=mtu)
            link, changed = self._link_or_fail(name), True
        changed = _no_ipv6_autoconf(name) or changed
        data = _info(link)[1]
        if data.get("IFLA_BR_STP_STATE") != 0 or data.get("IFLA_BR_FORWARD_DELAY") != 0:
            self._do(
                "turn STP off on", name, "link", "set", index=link["index"], kind="bridge",
                br_stp_state=0, br_forward_delay=0,
            )  # fmt: skip
            changed = True
        return self._tune(link, mtu) or changed

    def ensure_vxlan(self, name: str, vni: int, local: str, device: str, mtu: int) -> bool:
        lower = self._index(device)
        wanted = {
            "IFLA_VXLAN_ID": vni,
            "IFLA_VXLAN_LOCAL": local,
            "IFLA_VXLAN_LINK": lower,
            "IFLA_VXLAN_PORT": VXLAN_PORT,
            "IFLA_VXLAN_LEARNING": 1,
        }
        return self._ensure_kind(
            name, "vxlan", wanted, mtu,
            vxlan_id=vni, vxlan_local=local, vxlan_link=lower, vxlan_port=VXLAN_PORT,
            vxlan_learning=1,
        )  # fmt: skip

    def ensure_vlan(self, name: str, device: str, tag: int, mtu: int) -> bool:
        lower = self._index(device)
        return self._ensure_kind(
            name, "vlan", {"IFLA_VLAN_ID": tag}, mtu, link=lower, vlan_id=tag, lower=lower
        )

    def _ensure_kind(
        self, name: str, kind: str, wanted: dict[str, Any], mtu: int, lower: int | None = None,
        **create: Any,
    ) -> bool:  # fmt: skip
        """A link of `kind` whose attributes include `wanted` (made again if not)."""
        link = self._mine_or_absent(name)
        if link is not None:
            found_kind, data = _info(link)
            same_lower = lower is None or link.get("IFLA_LINK") == lower
            if (
                found_kind != kind
                or not same_lower
                or any(data.get(key) != value for key, value in wanted.items())
            ):
                self.delete(name)
                link = None
        if link is not None:
            return self._tune(link, mtu)
        self._create(name, kind=kind, mtu=mtu, **create)
        self._tune(self._link_or_fail(name), mtu)
        return True

    def ensure_port(self, bridge: str, port: str) -> bool:
        """`port` in `bridge` and up; True if either changed."""
        link = self._link_or_fail(port)
        changed = False
        bridge_index = self._index(bridge)
        if link.get("IFLA_MASTER") != bridge_index:
            self._do(f"add to {bridge}", port, "link", "set", index=link["index"],
                     master=bridge_index)  # fmt: skip
            changed = True
        if not link["flags"] & IFF_UP:
            self._do("bring up", port, "link", "set", index=link["index"], state="up")
            changed = True
        return changed

    def release(self, port: str) -> bool:
        link = self._link(port)
        if link is None or not link.get("IFLA_MASTER"):
            return False
        self._do("release", port, "link", "set", index=link["index"], master=0)
        return True

    def set_mtu(self, name: str, mtu: int) -> bool:
        link = self._link_or_fail(name)
        if link.get("IFLA_MTU") == mtu:
            return False
        self._do(f"set MTU {mtu} on", name, "link", "set", index=link["index"], mtu=mtu)
        return True

    def set_fdb_peers(self, vxlan: str, peers: Iterable[str]) -> tuple[list[str], list[str]]:
        """Makes the VXLAN's all-zero FDB entries exactly `peers`; returns (added, removed)."""
        index = self._index(vxlan)
        added, removed = fdb_changes(self.fdb_peers(vxlan), peers)
        for peer in added:
            self._do(f"add peer {peer} to", vxlan, "fdb", "append", ifindex=index,
                     lladdr=ZERO_MAC, dst=peer)  # fmt: skip
        for peer in removed:
            self._do(f"remove peer {peer} from", vxlan, "fdb", "del", ifindex=index,
                     lladdr=ZERO_MAC, dst=peer)  # fmt: skip
        return added, removed

    def delete(self, name: str) -> bool:
        """Removes the link if pvc made it; False if absent or not pvc's."""
        from pyroute2.netlink.exceptions import NetlinkError

        link = self._link(name)
        if link is None or link.get("IFLA_IFALIAS") != MARK:
            return False
        try:
            self._ipr.link("del", index=link["index"])
        except NetlinkError as exc:
            if exc.code == errno.ENODEV:
                return False
            raise Unavailable(f"cannot remove {name}: {_reason(exc)}") from None
        return True


def _no_ipv6_autoconf(bridge: str) -> bool:
    """Turns off IPv6 autoconfiguration and router advertisements on a bridge: a node takes
    no address or route of its own from a guest's RA. True if anything changed."""
    changed = False
    for setting in ("autoconf", "accept_ra"):
        changed |= set_sysctl(f"net/ipv6/conf/{bridge}/{setting}", "0")
    return changed


def enable_forwarding(devices: Iterable[str | None], ipv6: bool = False) -> None:
    """Lets this node route (the primary routes its managed networks through their
    gateways): IPv4 forwarding, and IPv6 forwarding when a network has IPv6. A forwarding
    kernel ignores router advertisements on interfaces whose accept_ra is 1, so a node whose
    upstream IPv6 route comes by SLAAC would lose it: `devices` (the node's own networks) get
    accept_ra 2 (take them even when forwarding) first; one set to 0 is left without."""
    set_sysctl("net/ipv4/ip_forward", "1")
    if ipv6:
        for device in devices:
            name = f"net/ipv6/conf/{device}/accept_ra"
            if device and read_sysctl(name) == "1":
                set_sysctl(name, "2")
        set_sysctl("net/ipv6/conf/all/forwarding", "1")


def read_sysctl(name: str) -> str | None:
    """/proc/sys/`name` in this network namespace; None if it does not exist."""
    try:
        with open(f"/proc/sys/{name}") as sysctl:
            return sysctl.read().strip()
    except FileNotFoundError:
        return None


def set_sysctl(name: str, value: str) -> bool:
    """Sets /proc/sys/`name` to `value` in this network namespace; True if it changed. A
    setting that does not exist (no IPv6 here) is left alone."""
    try:
        with open(f"/proc/sys/{name}", "r+") as sysctl:
            if sysctl.read().strip() == value:
                return False
            sysctl.seek(0)
            sysctl.write(value)
            return True
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise Unavailable(f"cannot set {name.replace('/', '.')}: {exc.strerror}") from None


def _fdb_dump(index: int) -> list[tuple[bytes, str | None]]:
    """(MAC, destination) of each FDB entry of link `index`, from one RTM_GETNEIGH dump on a
    raw netlink socket with strict checking, so the kernel walks that link only: pyroute2
    dumps every link's entries and parses them all (60 ms with 100 networks, growing)."""
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE) as sock:
        sock.settimeout(5)
        sock.setsockopt(_SOL_NETLINK, _NETLINK_GET_STRICT_CHK, 1)
        found: list[tuple[bytes, str | None]] = []
        # ndmsg: family, pads, ifindex (the kernel's filter), state, flags, type
        request = struct.pack("=BBHiHBB", _AF_BRIDGE, 0, 0, index, 0, 0, 0)
        for data, start, end in netlink_dump(sock, _RTM_GETNEIGH, request):
            if struct.unpack_from("=i", data, start + 4)[0] != index:
                continue
            attrs = netlink_attributes(data, start + 12, end)  # past the ndmsg
            dst = attrs.get(_NDA_DST)
            family = socket.AF_INET if dst and len(dst) == 4 else socket.AF_INET6
            found.append((attrs.get(_NDA_LLADDR, b""),
                          socket.inet_ntop(family, dst) if dst else None))  # fmt: skip
        return found


def netlink_dump(
    sock: socket.socket, kind: int, payload: bytes
) -> Iterator[tuple[bytes, int, int]]:
    """Sends one rtnetlink dump request of type `kind`; yields each answer as (buffer, start,
    end) of its payload (past the nlmsghdr). A refusal raises OSError with the kernel's code."""
    # nlmsghdr: length, type, flags, sequence, port
    sock.send(struct.pack("=IHHII", 16 + len(payload), kind, _NLM_F_REQUEST_DUMP, 1, 0) + payload)
    while True:
        data = sock.recv(65536)
        offset = 0
        while offset < len(data):
            length, answer = struct.unpack_from("=IH", data, offset)
            if answer == _NLMSG_DONE:
                return
            if answer == _NLMSG_ERROR:
                code = -struct.unpack_from("=i", data, offset + 16)[0]
                raise OSError(code, os.strerror(code))
            yield data, offset + 16, offset + length
            offset += (length + 3) & ~3


def netlink_attributes(data: bytes, start: int, end: int) -> dict[int, bytes]:
    """The rtattrs between `start` and `end`: type -> value."""
    found = {}
    while start < end:
        size, name = struct.unpack_from("=HH", data, start)
        found[name] = data[start + 4 : start + size]
        start += (size + 3) & ~3
    return found


@contextmanager
def opened() -> Iterator[Kernel]:
    """A Kernel on a fresh netlink socket, closed after use."""
    from pyroute2 import IPRoute

    ipr = IPRoute()
    try:
        yield Kernel(ipr)
    finally:
        ipr.close()
