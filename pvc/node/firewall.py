"""This node's firewall: pvc's nftables tables made to match Zookeeper, on every node.

A node-wide controller (pvc.node.controller) with one key. Changes under /networks (networks,
ACLs, leases, reservations) and to a VM's XML queue it; a resync every keepalive interval
does too (taps come and go with VMs, and it puts the tables back if something removed them).
Its step renders the ruleset (pvc.node.firewall_rules) from the mirror and the kernel's
bridge ports and loads it in one `nft -f` transaction, only when the text changed.

An ACL the kernel refuses (nft's check at `acl add` cannot see everything the kernel
validates) costs its network its ACLs, not the node its firewall: the ruleset is loaded
without that network's ACLs but with its base rules, and `node.firewall` says "failed" with
nft's words. If the base rules themselves fail, nothing is loaded and the kernel keeps the
last ruleset (as after a crash: the tables stay when the daemon stops or dies).
"""

import logging
import time
from dataclasses import replace

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
BRIDGE_PREFIX = "vmbr"
NOT_TAPS = ("vxlan", "vlan")


def bridge_ports() -> dict[str, str]:
    """The ports of pvc's bridges that are not pvc's own links, as name -> MAC."""
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        links = ipr.get_links()
    bridges = {
        link["index"]
        for link in links
        if (link.get_attr("IFLA_IFNAME") or "").startswith(BRIDGE_PREFIX)
    }
    return {
        name: link.get_attr("IFLA_ADDRESS")
        for link in links
        if link.get_attr("IFLA_MASTER") in bridges
        and (name := link.get_attr("IFLA_IFNAME"))
        and not name.startswith(NOT_TAPS)
        and link.get_attr("IFLA_ADDRESS")
    }


def read_records(view: CachedView, upstream_device: str | None) -> Records:
    """What the ruleset is built from, as the mirror holds it, with this node's taps."""
    networks = tuple(network_records.networks(view))
    managed = [network.vni for network in networks if network.managed]
    leases = [network_records.leases(view, vni) for vni in managed]
    reservations = [network_records.reservations(view, vni) for vni in managed]
    known = {mac for records in (*leases, *reservations) for mac in records}
    for uuid in view.children("base.domains"):
        try:
            known |= {nic.mac for nic in domain_xml.interfaces(view.read(("domain.xml", uuid)))}
        except PvcError:
            continue  # a VM whose XML is unreadable has no NIC pvc can guard
    known.discard(None)
    return Records(
        networks=networks,
        acls={vni: network_records.acls(view, vni) for vni in managed},
        guests=firewall_rules.guests(leases, reservations),
        ports=firewall_rules.port_macs(bridge_ports(), known),
        upstream_device=upstream_device,
    )


def load(records: Records) -> dict[int, str]:
    """Loads the ruleset; networks whose ACLs had to be left out -> why. Raises what nft
    said if even the base rules do not load (nothing changed then)."""
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

    def __init__(self, view: CachedView, name: str, upstream_device: str | None, interval: float):
        self.view = view
        self.name = name
        self.upstream_device = upstream_device
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

    def stop(self) -> None:
        """Stops reconciling; the tables stay (a node without its daemon keeps its rules)."""
        self.controller.stop()

    def _on_mirror(self, path: str, _data: bytes | None) -> None:
        if path.startswith(self._prefixes[0]) or (
            path.startswith(self._prefixes[1]) and path.endswith("/xml")
        ):
            self.controller.enqueue(CHANGED, COALESCE)

    def _step(self, key: str) -> None:
        records = read_records(self.view, self.upstream_device)
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
                f"network {vni}: ACLs left out: {why}" for vni, why in refused.items()
            )
            log.error("firewall loaded without some ACLs: %s", detail)
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
