"""pvc's nftables ruleset as text: the records in, one `nft -f` file out (no I/O here).

The file replaces pvc's own tables and nothing else, in one transaction: each table is first
declared (so the delete that follows cannot fail on a node where it does not exist yet), then
deleted and defined again. The kernel holds the old tables or the new ones, never a half.

- `table inet pvc`:
  - input: what a managed network's bridge may send to this node: replies, ICMP/ICMPv6
    (neighbour discovery), DHCP, DHCPv6, DNS, NTP, and the metadata service only from a
    (MAC, IPv4) pair that a lease or reservation gives out (set `guests`), so the metadata
    service may trust a source address; the rest is dropped.
  - forward-guard (priority -1, before any ACL): nothing from a network's bridge (set
    `bridges`, managed and bridged) is routed into the node's cluster or storage networks
    (set `internal_devices`, `lo`; their subnets and 169.254.0.0/16 in `internal_ipv4/6`):
    Zookeeper, Ceph and libvirt's migrations are not a guest's to reach; a guest only answers
    what the cluster side opened (an administrator's ping or ssh). A device that is also
    the upstream device is guarded by its subnets only (NAT leaves through it).
  - forward: per managed network a chain `vxlan<vni>-out` (iifname vmbr<vni>) and
    `vxlan<vni>-in` (oifname vmbr<vni>) with the user's ACLs in order, then fall through to
    the base chain's policy, accept. The `out` and `in` jumps sit in two base chains of their
    own (priorities 0 and 1): an ACL's accept ends its own base chain only, so a packet from
    one network to another meets the source's `out` ACLs and then the destination's `in` ACLs.
    A network whose ACLs fail to load (`without_acls`) fails closed: its chains drop all.
    ACLs see routed traffic only: every jump, and the guard, needs different in and out
    interfaces, so frames bridged within a network are never theirs, also where br_netfilter
    is loaded (as here, and wherever Docker runs) and shows bridged frames to the inet hooks
    with the bridge as both interfaces.
  - postrouting (nat): networks with `nat` masquerade their IPv4 subnet out of the upstream
    device.
- `table bridge pvc`: a frame entering a network's bridge through a port that is not pvc's
  own link (its VXLAN, VLAN, the bridge device), set `ports`, passes only as (port, MAC) in
  `port_macs`: a VM's tap sends with that VM's MAC, and a port with no known VM NIC, or with
  two that fit, drops everything: fail closed. The ports are the kernel's when the ruleset was
  rendered (this kernel's bridge family has no `meta ibrname` to name a bridge in a rule): a
  tap newer than that is not filtered until pvc.node.firewall's port watch rebuilds (~1 s).
"""

import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from pvc.ops.network_records import VLAN, Acl, Network

TABLE = "pvc"
METADATA_ADDRESS = "169.254.169.254"
LINK_LOCAL = "169.254.0.0/16"  # never routed from a guest (the metadata address is local)
PRIORITY_GUARD = -1
PRIORITY_OUT = 0
PRIORITY_IN = 1
TAP_FIRST_OCTETS = ("fe", "fa")  # libvirt's tap MAC: the VM's with this first octet (fa if
# the VM's own starts with fe)
_NETWORK_CHAIN = re.compile(r"^  chain vxlan(\d+)-(?:in|out) \{$")
_NETWORK_JUMP = re.compile(r"jump vxlan(\d+)-(?:in|out)$")


@dataclass(frozen=True)
class Records:
    """Everything the ruleset is built from (read by pvc.node.firewall)."""

    networks: tuple[Network, ...] = ()
    acls: Mapping[int, list[Acl]] = field(default_factory=dict)  # vni -> its ACLs, in order
    guests: frozenset[tuple[str, str]] = frozenset()  # (MAC, IPv4) given out by DHCP
    ports: Mapping[str, str | None] = field(default_factory=dict)  # tap -> the VM NIC's MAC
    # (None: no one VM NIC known, the tap drops all)
    upstream_device: str | None = None
    bridge_device: str | None = None  # bridged networks' device: pvc's own port, untagged
    internal_devices: tuple[str, ...] = ()  # the cluster and storage devices
    internal_subnets: tuple[str, ...] = ()  # their subnets (CIDR)
    without_acls: frozenset[int] = frozenset()  # networks whose ACLs fail to load: left out


def guests(
    leases: Iterable[Mapping[str, Mapping]], reservations: Iterable[Mapping[str, Mapping]]
) -> frozenset[tuple[str, str]]:
    """(MAC, IPv4) pairs from leases and reservations (MAC -> {ip, ...} maps)."""
    found = set()
    for records in (*leases, *reservations):
        for mac, record in records.items():
            ip = record.get("ip") if isinstance(record, Mapping) else None
            if isinstance(ip, str) and ip.count(".") == 3:
                found.add((mac.lower(), ip))
    return frozenset(found)


def port_macs(ports: Mapping[str, str], known: Iterable[str]) -> dict[str, str | None]:
    """tap -> its VM NIC's MAC, for the bridge ports (name -> MAC): the one known NIC MAC
    whose libvirt tap MAC the port has, else None (the ruleset drops the port's frames)."""
    by_rest: dict[str, set[str]] = {}
    for mac in known:
        by_rest.setdefault(mac.lower()[2:], set()).add(mac.lower())
    found: dict[str, str | None] = {}
    for port, mac in ports.items():
        mac = mac.lower()
        candidates = {vm for vm in by_rest.get(mac[2:], ()) if vm[:2] != mac[:2]}
        fits = mac[:2] in TAP_FIRST_OCTETS and len(candidates) == 1
        found[port] = candidates.pop() if fits else None
    return found


def network_at(text: str, line: int) -> int | None:
    """The VNI whose ACLs `line` (1-based) of a rendered file belongs to: a rule of its
    `vxlan<vni>-in/out` chain or the jump to it (where the kernel reports a rule it refuses
    in that chain); None for pvc's base rules."""
    lines = text.splitlines()
    if not 1 <= line <= len(lines):
        return None
    jump = _NETWORK_JUMP.search(lines[line - 1])
    if jump:
        return int(jump.group(1))
    for previous in reversed(lines[:line]):
        if previous.startswith("  chain "):
            chain = _NETWORK_CHAIN.match(previous)
            return int(chain.group(1)) if chain else None
    return None


def render(records: Records) -> str:
    """The whole file: both of pvc's tables, replaced."""
    return render_inet(records) + _bridge(records)


def _replace(family: str, body: list[str], table: str = TABLE) -> str:
    """Declare, delete, define: one table swapped in the file's transaction."""
    lines = [
        f"table {family} {table}",
        f"delete table {family} {table}",
        f"table {family} {table} {{",
    ]
    return "\n".join([*lines, *body, "}", ""])


def _set(name: str, kind: str, elements: Iterable[str], interval: bool = False) -> list[str]:
    listed = sorted(set(elements))
    lines = [f"  set {name} {{", f"    type {kind}"]
    if interval:
        lines.append("    flags interval")
    if listed:
        lines.append(f"    elements = {{ {', '.join(listed)} }}")
    return [*lines, "  }"]


def _chain(name: str, hook: str | None, rules: Iterable[str]) -> list[str]:
    head = [f"  chain {name} {{"]
    if hook:
        head.append(f"    {hook}")
    return [*head, *(f"    {rule}" for rule in rules), "  }"]


def render_inet(records: Records, table: str = TABLE) -> str:
    """The inet table alone (named `table`: acl_rules checks an ACL in a copy of it)."""
    managed = [network for network in records.networks if network.managed]
    body = _set("guests", "ether_addr . ipv4_addr", (f"{m} . {ip}" for m, ip in records.guests))
    body += _guard(records)
    body += _chain(
        "input",
        "type filter hook input priority filter; policy accept;",
        (f'iifname "{network.bridge}" jump guest-input' for network in managed),
    )
    body += _chain(
        "guest-input",
        None,
        [
            "ct state established,related accept",
            "meta l4proto { icmp, ipv6-icmp } accept",
            "udp dport { 53, 67, 123, 547 } accept",
            "tcp dport 53 accept",
            f"ip daddr {METADATA_ADDRESS} tcp dport 80 ether saddr . ip saddr @guests accept",
            "counter drop",
        ],
    )
    body += _chain(
        "forward-out",
        f"type filter hook forward priority {PRIORITY_OUT}; policy accept;",
        (
            f'iifname "{network.bridge}" oifname != "{network.bridge}" jump {network.vxlan}-out'
            for network in managed
        ),
    )
    body += _chain(
        "forward-in",
        f"type filter hook forward priority {PRIORITY_IN}; policy accept;",
        (
            f'oifname "{network.bridge}" iifname != "{network.bridge}" jump {network.vxlan}-in'
            for network in managed
        ),
    )
    for network in managed:
        acls = records.acls.get(network.vni, [])
        for direction in ("in", "out"):
            rules = [f"counter {acl.rule.strip()}" for acl in acls if acl.direction == direction]
            body += _chain(
                f"{network.vxlan}-{direction}",
                None,
                ["counter drop"]
                if network.vni in records.without_acls
                else ["ct state established,related accept", *rules],
            )
    body += _chain(
        "postrouting", "type nat hook postrouting priority srcnat; policy accept;", _nat(records)
    )
    return _replace("inet", body, table)


def _guard(records: Records) -> list[str]:
    """Sets and chain of forward-guard (see the module docstring)."""
    devices = [d for d in records.internal_devices if d and d != records.upstream_device]
    subnets = [str(ipaddress.ip_network(s, strict=False)) for s in records.internal_subnets]
    body = _set("bridges", "ifname", (f'"{network.bridge}"' for network in records.networks))
    body += _set("internal_devices", "ifname", (f'"{device}"' for device in (*devices, "lo")))
    v4 = [subnet for subnet in subnets if ":" not in subnet]
    body += _set("internal_ipv4", "ipv4_addr", [*v4, LINK_LOCAL], interval=True)
    body += _set("internal_ipv6", "ipv6_addr", [s for s in subnets if ":" in s], interval=True)
    return body + _chain(
        "forward-guard",
        f"type filter hook forward priority {PRIORITY_GUARD}; policy accept;",
        [
            "ct state established,related accept",  # replies to what the cluster side opened
            "iifname @bridges oifname @internal_devices counter drop",
            "iifname @bridges oifname != @bridges ip daddr @internal_ipv4 counter drop",
            "iifname @bridges oifname != @bridges ip6 daddr @internal_ipv6 counter drop",
        ],
    )


def _nat(records: Records) -> list[str]:
    if not records.upstream_device:
        return []
    return [
        f'ip saddr {network.ip4_network} oifname "{records.upstream_device}" masquerade'
        for network in records.networks
        if network.managed and network.nat and network.ip4_network
    ]


def _bridge(records: Records) -> str:
    uplinks = {records.bridge_device, *(VLAN.format(vni=n.vni) for n in records.networks)}
    ports = {port: mac for port, mac in records.ports.items() if port not in uplinks}
    body = _set("ports", "ifname", (f'"{port}"' for port in ports))
    body += _set(
        "port_macs",
        "ifname . ether_addr",
        (f'"{port}" . {mac}' for port, mac in ports.items() if mac),
    )
    body += _chain(
        "prerouting",
        "type filter hook prerouting priority filter; policy accept;",
        ["iifname @ports iifname . ether saddr != @port_macs counter drop"],
    )
    return _replace("bridge", body)
