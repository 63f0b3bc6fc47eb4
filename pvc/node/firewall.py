"""This node's firewall: pvc's nftables tables made to match Zookeeper, on every node.

A node-wide controller (pvc.node.controller) with one key. Changes under /networks (networks,
ACLs, leases, reservations) and to a VM's XML, node or observed report queue it; so does a
change of the bridges' ports, polled every PORTS_INTERVAL (a tap newer than the ruleset is
not filtered until the ruleset names it, and a reused tap name keeps its old MAC); a resync
every keepalive interval does too (it puts the tables back if something removed them).
Its step renders the ruleset (pvc.node.firewall_rules) from the mirror and the kernel's
bridge ports and loads it in one `nft -f` transaction, only when the text changed.

A tap's allowed MAC comes from the stored XML of the VMs this node runs or is told to run
(domain.node, or domain.observed's node while a migration leaves), never from leases: a guest
chooses the MAC its DHCP request names. (`vm define` refuses a NIC on a network's bridge
without a MAC, so every such NIC is known.)

An ACL the kernel refuses (nft's check at `acl add` cannot see everything the kernel
validates) fails its network closed, not the node's firewall: the ruleset is loaded with that
network's ACL chains dropping everything and with its base rules, and `node.firewall` says
"failed" with nft's words. If the base rules themselves fail, nothing is loaded and the kernel
keeps the last ruleset (as after a crash: the tables stay when the daemon stops or dies).
"""

import ipaddress
import logging
import threading
import time
from collections.abc import Collection
from dataclasses import replace
from typing import Any

from pvc.drivers import nft
from pvc.errors import PvcError
from pvc.node import firewall_rules
from pvc.node.controller import Controller
from pvc.node.firewall_rules import Records
from pvc.ops import acl_rules, domain_xml, network_records
from pvc.zk.cache import CachedView
from pvc.zk.handler import resolve

log = logging.getLogger("pvc.node.firewall")

CHANGED = "changed"
RESYNC = "resync"
COALESCE = 0.1  # s: a burst of lease writes is one rebuild
PORTS_INTERVAL = 1.0  # s between looks at the bridges' ports (one netlink dump)
BRIDGE_PREFIX = "vmbr"
NOT_TAPS = ("vxlan", "vlan")
DOMAIN_KEYS = ("/xml", "/node", "/observed")  # what decides which NIC MACs are this node's


def bridge_ports(names: Collection[str] | None = None) -> dict[str, str]:
    """The ports of the bridges `names` (None: every vmbr*) that are not pvc's own links, as
    name -> MAC."""
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        links = ipr.get_links()
    bridges = {
        link["index"]
        for link in links
        if (name := link.get_attr("IFLA_IFNAME") or "").startswith(BRIDGE_PREFIX)
        and (names is None or name in names)
    }
    return {
        name: link.get_attr("IFLA_ADDRESS")
        for link in links
        if link.get_attr("IFLA_MASTER") in bridges
        and (name := link.get_attr("IFLA_IFNAME"))
        and not name.startswith(NOT_TAPS)
        and link.get_attr("IFLA_ADDRESS")
    }


def host_records(config: Any) -> Records:
    """The node configuration's part of the records: its upstream device, its bridged
    networks' device, and the cluster and storage networks guests may not be routed into."""
    roles = ("cluster", "storage")
    subnets = [
        str(ipaddress.ip_interface(cidr).network)
        for role in roles
        for item in ("address", "floating_ip")
        if (cidr := config.get(f"networks.{role}.{item}"))
    ]
    return Records(
        upstream_device=config.get("networks.upstream.device"),
        bridge_device=config.get("networks.bridge_device"),
        internal_devices=tuple(
            device for role in roles if (device := config.get(f"networks.{role}.device"))
        ),
        internal_subnets=tuple(subnets),
    )


def local_macs(view: CachedView, node: str) -> set[str]:
    """The NIC MACs in the stored XML of the VMs `node` runs or is to run."""
    known: set[str] = set()
    for uuid in view.children("base.domains"):
        observed = view.read(("domain.observed", uuid))
        observed_node = observed.get("node") if isinstance(observed, dict) else None
        if node not in (view.read(("domain.node", uuid)), observed_node):
            continue
        try:
            known |= {nic.mac for nic in domain_xml.interfaces(view.read(("domain.xml", uuid)))}
        except PvcError:
            continue  # a VM whose XML is unreadable has no NIC pvc knows: its taps drop
    known.discard(None)
    return known


def read_records(view: CachedView, node: str, host: Records) -> Records:
    """What the ruleset is built from: the mirror's networks and this node's VMs, the host's
    configuration (`host_records`), the ports of the networks' bridges."""
    networks = tuple(network_records.networks(view))
    ports = bridge_ports({network.bridge for network in networks})
    managed = [network.vni for network in networks if network.managed]
    leases = [network_records.leases(view, vni) for vni in managed]
    reservations = [network_records.reservations(view, vni) for vni in managed]
    return replace(
        host,
        networks=networks,
        acls={vni: network_records.acls(view, vni) for vni in managed},
        guests=firewall_rules.guests(leases, reservations),
        ports=firewall_rules.port_macs(ports, local_macs(view, node)),
    )


def load(records: Records) -> dict[int, str]:
    """Loads the ruleset; networks whose ACLs had to be left out (their chains drop all) ->
    why. Raises what nft said if even the base rules do not load (nothing changed then)."""
    refused = {
        vni: f"ACL {acl.description!r}: {problem}"
        for vni, acls in records.acls.items()
        for acl in acls
        if (problem := acl_rules.rule_problem(acl.rule.strip()))
    }
    while True:
        text = firewall_rules.render(replace(records, without_acls=frozenset(refused)))
        try:
            nft.load(text)
            return refused
        except nft.NftError as exc:
            vni = None if exc.line is None else firewall_rules.network_at(text, exc.line)
            if vni is None or vni in refused:
                raise
            refused[vni] = exc.message


class Firewall:
    """See the module docstring."""

    def __init__(self, view: CachedView, name: str, host: Records, interval: float):
        self.view = view
        self.name = name
        self.host = host
        self._ports: dict[str, str] = {}  # the bridges' ports the watch saw last
        self._stopped = threading.Event()  # set: the port watch ends
        self._watch: threading.Thread | None = None
        self._loaded: str | None = None  # the full rendering last handled (loaded, or
        # loaded without the networks it reported)
        self._state = ("ok", "")  # what the last load says (published until written)
        self._report: tuple[str, str] | None = None  # what node.firewall says
        self._prefixes = (resolve("base.networks")[0] + "/", resolve("base.domains")[0] + "/")
        self.controller = Controller(
            "firewall", self._step, resync=lambda: [RESYNC], resync_interval=interval
        )

    def start(self) -> None:
        self.view.mirror.listen(self._on_mirror)
        self.controller.start()
        self._stopped.clear()
        self._watch = threading.Thread(target=self._watch_ports, name="firewall-ports", daemon=True)
        self._watch.start()

    def stop(self) -> None:
        """Stops reconciling; the tables stay (a node without its daemon keeps its rules)."""
        self._stopped.set()
        if self._watch is not None:
            self._watch.join(PORTS_INTERVAL * 5)
        self.controller.stop()

    def _watch_ports(self) -> None:
        """Queues a rebuild when the bridges' ports change (a tap came, went or was reused)."""
        while not self._stopped.wait(PORTS_INTERVAL):
            try:
                ports = bridge_ports()
            except OSError as exc:
                log.warning("could not list the bridges' ports: %s", exc)
            else:
                if ports != self._ports:
                    self._ports = ports
                    self.controller.enqueue(CHANGED)

    def _on_mirror(self, path: str, _data: bytes | None) -> None:
        if path.startswith(self._prefixes[0]) or (
            path.startswith(self._prefixes[1]) and path.endswith(DOMAIN_KEYS)
        ):
            self.controller.enqueue(CHANGED, COALESCE)

    def _step(self, key: str) -> None:
        records = read_records(self.view, self.name, self.host)
        text = firewall_rules.render(records)
        missing = key == RESYNC and f"inet {firewall_rules.TABLE}" not in nft.tables()
        if text == self._loaded and not missing:
            self._publish(*self._state)  # again if writing it failed
            return
        try:
            refused = load(records)
        except PvcError as exc:
            self._publish("failed", f"not loaded (the previous ruleset stays): {exc.message}")
            raise
        self._loaded = text
        if refused:
            detail = "; ".join(
                f"network {vni}: closed, its ACLs refused: {why}" for vni, why in refused.items()
            )
            log.error("firewall loaded with some networks closed: %s", detail)
            self._state = ("failed", detail)
        else:
            log.info("firewall loaded (%d networks)", len(records.networks))
            self._state = ("ok", "")
        self._publish(*self._state)

    def _publish(self, state: str, detail: str) -> None:
        """Writes `node.firewall` when it says something new."""
        if self._report == (state, detail):
            return
        try:
            self.view.write(
                {
                    ("node.firewall", self.name): {
                        "state": state,
                        "detail": detail,
                        "time": time.time(),
                    }
                }
            )
            self._report = (state, detail)
        except PvcError as exc:
            log.warning("could not record the firewall's state: %s", exc.message)
