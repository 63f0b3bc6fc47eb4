"""Checks of a network's settings, alone and against the other networks: pure, no store.

`built` turns what a user gave (the API's field names; on a change, only the fields given)
into a whole `Network`, normalised (canonical addresses, defaults filled in) and consistent
in itself; `require_fits` compares it with the cluster's other networks. A verb runs both
before it writes anything, so every refusal names its reason and nothing is half-written.

Defaults: an IPv4 gateway is the subnet's first host and an IPv6 gateway `<net>::1` unless
given; DHCPv6 is on once an IPv6 network is set. A changed subnet keeps the old gateway if it
lies inside the new one. An IPv6 network is a /64 (dnsmasq's router advertisements and
DHCPv6 range are built for one), and no address takes an IPv6 scope ID. A bridged network
gets no L3 service from pvc, so it takes none of the L3 settings; a managed network has no
VLAN tag (its traffic is VXLAN).
"""

import dataclasses
import ipaddress
import re
from collections.abc import Iterable
from typing import Any

from pvc.errors import Conflict, InvalidInput
from pvc.ops import user_input
from pvc.ops.network_records import BRIDGED, MANAGED, TYPES, VNI_MAX, Network

MTU_MIN, MTU_MAX = 576, 65535
VLAN_MIN, VLAN_MAX = 1, 4094
DESCRIPTION_MAX = 128
NAME_SERVERS_MAX = 8
# What a user may set, by the API's names ("nettype" is the record's `type`).
FIELDS = (
    "description", "nettype", "domain", "name_servers", "mtu", "vlan", "nat", "ip4_network",
    "ip4_gateway", "dhcp4", "dhcp4_start", "dhcp4_end", "ip6_network", "ip6_gateway", "dhcp6",
)  # fmt: skip
L3_FIELDS = (
    "domain", "name_servers", "nat", "ip4_network", "ip4_gateway", "dhcp4", "dhcp4_start",
    "dhcp4_end", "ip6_network", "ip6_gateway", "dhcp6",
)  # fmt: skip
_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")


def require_vni(vni: Any) -> int:
    """`vni` as a number if it is a VXLAN network identifier (1 to 2^24 - 1)."""
    text = str(vni)
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text[:9]) <= VNI_MAX:
        raise InvalidInput(f"invalid VNI {user_input.quoted(vni)}: a number from 1 to {VNI_MAX}")
    return int(text)


def valid_label(text: Any) -> bool:
    """Whether `text` is one DNS label (a host name in a network's domain)."""
    return isinstance(text, str) and _LABEL.fullmatch(text) is not None


def require_domain(domain: str) -> str:
    """`domain` in lower case if it is a DNS name (labels of letters, digits and '-')."""
    name = domain.rstrip(".").lower()
    if len(name) > 253 or not all(valid_label(label) for label in name.split(".")):
        raise InvalidInput(
            f"invalid domain {user_input.quoted(domain)}: a DNS name such as 'net100.example', "
            "labels of 1 to 63 letters, digits and '-'"
        )
    return name


def _address(text: Any, what: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        address = ipaddress.ip_address(str(text).strip())
    except ValueError:
        raise InvalidInput(f"invalid {what} {user_input.quoted(text)}: not an IP address") from None
    _require_no_scope(address, text, what)
    return address


def _require_no_scope(address: Any, text: Any, what: str) -> None:
    """Refuses an IPv6 scope ID ("fe80::1%eth0"): ipaddress keeps any text after '%', which
    then reaches dnsmasq's files (which refuse it: DHCP dead) and the DNS forwarder's."""
    if getattr(address, "scope_id", None) is not None:
        raise InvalidInput(f"invalid {what} {user_input.quoted(text)}: no scope ID ('%') allowed")


def _subnet(text: Any, version: int) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    what, example = {4: ("ipnet", "10.100.0.0/24"), 6: ("ipnet6", "fd00:100::/64")}[version]
    try:
        net = ipaddress.ip_network(str(text).strip())
    except ValueError as exc:
        raise InvalidInput(
            f"invalid {what} {user_input.quoted(text)}: a subnet such as {example} ({exc})"
        ) from None
    if net.version != version:
        raise InvalidInput(f"invalid {what} {user_input.quoted(text)}: not an IPv{version} subnet")
    _require_no_scope(net.network_address, text, what)
    if version == 4 and net.prefixlen > 30:
        raise InvalidInput(f"{what} {net} is too small: at most /30")
    if version == 6 and net.prefixlen != 64:
        # dnsmasq's router advertisements (SLAAC) and DHCPv6 range are built for a /64
        raise InvalidInput(f"{what} {net} is not a /64: IPv6 networks are /64 (SLAAC, DHCPv6)")
    return net


def _host_in(net: Any, text: Any, what: str) -> str:
    """`text` as an address of a host in `net` (not its network or broadcast address)."""
    address = _address(text, what)
    if address not in net:
        raise InvalidInput(f"{what} {address} is outside the network {net}")
    if address == net.network_address or (net.version == 4 and address == net.broadcast_address):
        raise InvalidInput(f"{what} {address} is the network's own or broadcast address ({net})")
    return str(address)


def _default_gateway(net: Any) -> str:
    return str(net.network_address + 1)


def _text_or_none(value: Any) -> Any:
    return None if value == "" else value


def merged(old: Network | None, vni: int, given: dict[str, Any]) -> dict[str, Any]:
    """The network's fields after the change `given` (None: unchanged; "" or 0: cleared)."""
    fields = dataclasses.asdict(old or Network(vni, "", MANAGED))
    fields.pop("nodes")
    changes = {name: value for name, value in given.items() if value is not None}
    unknown = sorted(set(changes) - set(FIELDS))
    if unknown:
        raise InvalidInput(f"unknown network setting '{unknown[0]}'")
    if "nettype" in changes:
        fields["type"] = changes.pop("nettype")
    for name in ("ip4_network", "ip6_network"):  # a new subnet: its gateway follows it
        gateway = name.replace("network", "gateway")
        if changes.get(name, fields[name]) != fields[name] and gateway not in changes:
            kept = fields[gateway] and inside(fields[gateway], changes[name])
            changes[gateway] = fields[gateway] if kept else ""
    if changes.get("ip6_network") and not fields["ip6_network"]:
        changes.setdefault("dhcp6", True)
    if changes.get("ip6_network") == "":
        changes.setdefault("dhcp6", False)
    for name, value in changes.items():
        fields[name] = (value or None) if name in ("mtu", "vlan") else _text_or_none(value)
    return fields


def inside(address: str, subnet: str) -> bool:
    try:
        return ipaddress.ip_address(address) in ipaddress.ip_network(subnet)
    except ValueError:
        return False


def built(old: Network | None, vni: int, given: dict[str, Any]) -> Network:
    """The network after applying `given` to `old` (None: a new one), checked in itself."""
    fields = merged(old, vni, given)
    if fields["type"] not in TYPES:
        raise InvalidInput(
            f"invalid network type {user_input.quoted(fields['type'])}: managed or bridged"
        )
    if old is not None and fields["type"] != old.type:
        raise InvalidInput(
            f"network {vni} is {old.type}: a network's type cannot change "
            "(remove it and add it again)"
        )
    description = fields["description"] = fields["description"] or ""
    if len(description) > DESCRIPTION_MAX or not description.isprintable():
        raise InvalidInput(
            f"a description is at most {DESCRIPTION_MAX} printable characters on one line"
        )
    if fields["mtu"] is not None and not MTU_MIN <= fields["mtu"] <= MTU_MAX:
        raise InvalidInput(f"invalid MTU {fields['mtu']}: from {MTU_MIN} to {MTU_MAX}")
    if fields["type"] == BRIDGED:
        _require_no_l3(vni, fields)
        if old is None and given.get("vlan") is None:  # the original's: tagged with the VNI
            if vni > VLAN_MAX:
                raise InvalidInput(
                    f"bridged network {vni} is tagged with its VNI by default, which is over "
                    f"{VLAN_MAX}: give a VLAN tag, or 0 for untagged"
                )
            fields["vlan"] = vni
        if fields["vlan"] is not None and not VLAN_MIN <= fields["vlan"] <= VLAN_MAX:
            raise InvalidInput(
                f"invalid VLAN {fields['vlan']}: from {VLAN_MIN} to {VLAN_MAX} (0: untagged)"
            )
        return Network(**_cleared(fields, L3_FIELDS))
    if fields["vlan"] is not None:
        raise InvalidInput(f"a VLAN tag is for bridged networks; managed network {vni} is a VXLAN")
    _check_l3(fields)
    return Network(**fields)


def _require_no_l3(vni: int, fields: dict[str, Any]) -> None:
    set_ = [name for name in L3_FIELDS if fields.get(name) not in (None, False, [], ())]
    if set_:
        raise InvalidInput(
            f"bridged network {vni} gets no L3 service from pvc: {', '.join(set_)} "
            "are for managed networks"
        )


def _cleared(fields: dict[str, Any], names: Iterable[str]) -> dict[str, Any]:
    return (
        fields
        | {name: (False if name in ("nat", "dhcp4", "dhcp6") else None) for name in names}
        | {"name_servers": ()}
    )


def _check_l3(fields: dict[str, Any]) -> None:
    """Normalises and checks a managed network's addresses, DHCP, domain and name servers."""
    if fields["domain"] is not None:
        fields["domain"] = require_domain(fields["domain"])
    servers = fields["name_servers"] or ()
    if isinstance(servers, str):
        servers = [part for part in servers.split(",") if part.strip()]
    if len(servers) > NAME_SERVERS_MAX:
        raise InvalidInput(f"at most {NAME_SERVERS_MAX} name servers")
    fields["name_servers"] = tuple(str(_address(server, "name server")) for server in servers)
    net4 = _subnet(fields["ip4_network"], 4) if fields["ip4_network"] else None
    if net4 is None:
        for name, what in (("ip4_gateway", "a gateway"), ("dhcp4", "DHCP"), ("nat", "NAT")):
            if fields[name]:
                raise InvalidInput(f"{what} needs an IPv4 network (ipnet)")
        fields["dhcp4_start"] = fields["dhcp4_end"] = None
    else:
        fields["ip4_network"] = str(net4)
        gateway = fields["ip4_gateway"] or _default_gateway(net4)
        fields["ip4_gateway"] = _host_in(net4, gateway, "gateway")
        _check_range(fields, net4)
    net6 = _subnet(fields["ip6_network"], 6) if fields["ip6_network"] else None
    if net6 is None:
        for name, what in (("ip6_gateway", "an IPv6 gateway"), ("dhcp6", "DHCPv6")):
            if fields[name]:
                raise InvalidInput(f"{what} needs an IPv6 network (ipnet6)")
    else:
        fields["ip6_network"] = str(net6)
        gateway = fields["ip6_gateway"] or _default_gateway(net6)
        fields["ip6_gateway"] = _host_in(net6, gateway, "IPv6 gateway")
    fields["nat"], fields["dhcp4"], fields["dhcp6"] = (
        bool(fields["nat"]),
        bool(fields["dhcp4"]),
        bool(fields["dhcp6"]),
    )


def _check_range(fields: dict[str, Any], net: Any) -> None:
    start, end = fields["dhcp4_start"], fields["dhcp4_end"]
    if start is None and end is None:
        if fields["dhcp4"]:
            raise InvalidInput("DHCP needs a range: dhcp-start and dhcp-end")
        return
    if start is None or end is None:
        raise InvalidInput("a DHCP range needs both dhcp-start and dhcp-end")
    first = ipaddress.ip_address(_host_in(net, start, "DHCP start"))
    last = ipaddress.ip_address(_host_in(net, end, "DHCP end"))
    if first > last:
        raise InvalidInput(f"the DHCP range starts after it ends ({first} > {last})")
    gateway = ipaddress.ip_address(fields["ip4_gateway"])
    if first <= gateway <= last:
        raise InvalidInput(f"the DHCP range {first}-{last} contains the gateway {gateway}")
    fields["dhcp4_start"], fields["dhcp4_end"] = str(first), str(last)


def require_fits(network: Network, others: Iterable[Network]) -> None:
    """Refuses (409) a network that overlaps another's subnet, repeats a managed network's
    domain, or a bridged network's VLAN (untagged included) on the same device."""
    for other in others:
        if other.vni == network.vni:
            continue
        for mine, theirs in (
            (network.ip4_network, other.ip4_network),
            (network.ip6_network, other.ip6_network),
        ):
            if (
                mine
                and theirs
                and ipaddress.ip_network(mine).overlaps(ipaddress.ip_network(theirs))
            ):
                raise Conflict(f"subnet {mine} overlaps {theirs} of network {other.vni}")
        if network.managed and other.managed and network.domain and network.domain == other.domain:
            raise Conflict(f"domain {network.domain} is network {other.vni}'s already")
        if not network.managed and not other.managed and network.vlan == other.vlan:
            tag = f"VLAN {network.vlan}" if network.vlan else "untagged traffic"
            raise Conflict(
                f"bridged network {other.vni} carries {tag} on the bridge device already"
            )
