"""Reading client networks from the cluster's state: one shape for every reader.

The verbs (pvc.ops.network*) write these records; the node's controllers (links, firewall,
gateways, DHCP and DNS, metadata) and the API read them through here, from a Store (the
daemon's and the API's mirror-backed view answer from memory).

Names on a node: a network's bridge is `vmbr<vni>`, a managed network's VXLAN `vxlan<vni>`,
a bridged network's VLAN link `vlan<vni>` (BRIDGE, VXLAN, VLAN below).
"""

import ipaddress
from dataclasses import dataclass, field
from typing import Any

from pvc.zk import schema
from pvc.zk.store import Store

MANAGED = "managed"
BRIDGED = "bridged"
TYPES = (MANAGED, BRIDGED)
VNI_MAX = 2**24 - 1  # VXLAN's 24 bits
BRIDGE = "vmbr{vni}"
VXLAN = "vxlan{vni}"
VLAN = "vlan{vni}"
VXLAN_OVERHEAD = 50  # bytes of outer IPv4, UDP and VXLAN headers


@dataclass(frozen=True)
class Network:
    vni: int
    description: str
    type: str  # managed | bridged
    domain: str | None = None
    name_servers: tuple[str, ...] = ()
    mtu: int | None = None
    vlan: int | None = None  # bridged: the tag on networks.bridge_device (None: untagged)
    nat: bool = False
    ip4_network: str | None = None  # "10.100.0.0/24"
    ip4_gateway: str | None = None  # "10.100.0.1"
    dhcp4: bool = False
    dhcp4_start: str | None = None
    dhcp4_end: str | None = None
    ip6_network: str | None = None
    ip6_gateway: str | None = None
    dhcp6: bool = False
    nodes: dict[str, Any] = field(default_factory=dict, compare=False)  # node -> its state

    @property
    def bridge(self) -> str:
        return BRIDGE.format(vni=self.vni)

    @property
    def vxlan(self) -> str:
        return VXLAN.format(vni=self.vni)

    @property
    def managed(self) -> bool:
        return self.type == MANAGED

    def gateway_cidrs(self) -> list[str]:
        """The gateway addresses with their prefix lengths, as they go on the bridge."""
        found = []
        for gateway, network in (
            (self.ip4_gateway, self.ip4_network),
            (self.ip6_gateway, self.ip6_network),
        ):
            if gateway and network:
                prefix = ipaddress.ip_network(network, strict=False).prefixlen
                found.append(f"{gateway}/{prefix}")
        return found

    def as_dict(self) -> dict[str, Any]:
        """The API's shape (the original's: ip4/ip6 groups with dhcp_flag)."""
        return {
            "vni": self.vni,
            "description": self.description,
            "type": self.type,
            "domain": self.domain,
            "name_servers": list(self.name_servers),
            "mtu": self.mtu,
            "vlan": self.vlan,
            "nat": self.nat,
            "ip4": {
                "network": self.ip4_network,
                "gateway": self.ip4_gateway,
                "dhcp_flag": self.dhcp4,
                "dhcp_start": self.dhcp4_start,
                "dhcp_end": self.dhcp4_end,
            },
            "ip6": {
                "network": self.ip6_network,
                "gateway": self.ip6_gateway,
                "dhcp_flag": self.dhcp6,
            },
            "nodes": self.nodes,
        }


_FIELDS = (
    "type", "domain", "name_servers", "mtu", "vlan", "nat", "ip4_network", "ip4_gateway",
    "dhcp4", "dhcp4_start", "dhcp4_end", "ip6_network", "ip6_gateway", "dhcp6",
)  # fmt: skip


def vnis(store: Store) -> list[int]:
    """Every network's VNI, in order."""
    return sorted(int(name) for name in store.children("base.networks") if name.isdigit())


def read(store: Store, vni: int) -> Network | None:
    """The network, or None if there is none with that VNI (or it is half-written)."""
    key = str(vni)
    description = store.read(("network", key))
    values = store.read_many([(f"network.{name}", key) for name in _FIELDS])
    if description is None and values[0] is None:
        return None
    given = dict(zip(_FIELDS, values, strict=True))
    if given["type"] not in TYPES:
        return None
    nodes = {
        node: store.read(("network.node", key, node))
        for node in store.children(("network.nodes", key))
    }
    return Network(
        vni=int(vni),
        description=description or "",
        type=given["type"],
        domain=given["domain"],
        name_servers=tuple(given["name_servers"] or ()),
        mtu=given["mtu"],
        vlan=given["vlan"],
        nat=bool(given["nat"]),
        ip4_network=given["ip4_network"],
        ip4_gateway=given["ip4_gateway"],
        dhcp4=bool(given["dhcp4"]),
        dhcp4_start=given["dhcp4_start"],
        dhcp4_end=given["dhcp4_end"],
        ip6_network=given["ip6_network"],
        ip6_gateway=given["ip6_gateway"],
        dhcp6=bool(given["dhcp6"]),
        nodes=nodes,
    )


def networks(store: Store) -> list[Network]:
    return [network for vni in vnis(store) if (network := read(store, vni)) is not None]


def values(network: Network) -> dict[Any, Any]:
    """The keys and values that store `network` (its description and every field; not its
    nodes' states, which the nodes write): for a verb's one transaction."""
    key = str(network.vni)
    stored: dict[Any, Any] = {("network", key): network.description}
    for name in _FIELDS:
        value = getattr(network, name)
        stored[(f"network.{name}", key)] = list(value) if name == "name_servers" else value
    return stored


def _by_mac(store: Store, parent: str, vni: int, child: str) -> dict[str, dict[str, Any]]:
    key = str(vni)
    found = {}
    for name in store.children((parent, key)):
        record = store.read((child, key, name))
        if isinstance(record, dict):
            found[schema.mac_from_component(name)] = record
    return found


def reservations(store: Store, vni: int) -> dict[str, dict[str, Any]]:
    """MAC (with ':') -> {ip, hostname}."""
    return _by_mac(store, "network.reservations", vni, "network.reservation")


def leases(store: Store, vni: int) -> dict[str, dict[str, Any]]:
    """MAC (with ':') -> {ip, hostname, expiry, client_id}."""
    return _by_mac(store, "network.leases", vni, "network.lease")


@dataclass(frozen=True)
class Acl:
    direction: str  # in | out
    description: str
    rule: str
    order: int


DIRECTIONS = ("in", "out")


def acls(store: Store, vni: int) -> list[Acl]:
    """The network's ACLs, `in` then `out`, each in order (ties by description)."""
    key = str(vni)
    found = []
    for direction in DIRECTIONS:
        for name in store.children(("network.acls.direction", key, direction)):
            record = store.read(("network.acl", key, direction, name))
            if isinstance(record, dict) and isinstance(record.get("rule"), str):
                found.append(Acl(direction, name, record["rule"], int(record.get("order", 0))))
    return sorted(
        found, key=lambda acl: (DIRECTIONS.index(acl.direction), acl.order, acl.description)
    )
