"""The primary's gateway addresses: each managed network's gateways on its bridge, the
metadata address on `lo`, and the default route via the upstream gateway.

A primary-only controller (pvc.node.controller), after the fence monitor in the primary's
registry (pvc.node.primary_services): REFERENCE 1.4's phases E and F. Keys: a network's VNI
(its `Network.gateway_cidrs()` on `vmbr<vni>`), METADATA (169.254.169.254/32 on `lo`,
where the metadata service listens) and UPSTREAM (a default route via
networks.upstream.gateway on the upstream device, when both are configured, so NAT leaves by
the upstream network; netlink.add_default_route leaves a route of the node's own alone). A
step makes the key's addresses match the network: addresses it no longer has go (removed,
then unheld), and, while this node holds the primary lease, missing ones are held under it
(`lease.hold(address_item(...))`, `route_item` for the route, so the watchdog drops them if
the daemon freezes or dies) BEFORE they are added, then announced (gratuitous ARP,
unsolicited NA) so the segment forgets the old primary's MAC at once. A gateway that cannot
be added (no bridge yet, IPv6 disabled) keeps none of the others off. The node routes for
its managed networks: IP forwarding is turned on with their first gateway.
The bridge is the links controller's (on every node): until it is there the step fails to
add and asks to be run again in BRIDGE_WAIT seconds. Stop (relinquish) removes everything
this controller added. Changes arrive from the mirror (any key of a network but its leases);
the resync every keepalive interval repairs an address someone removed.
"""

import logging

from pvc.config import Config
from pvc.config_networks import CLUSTER_NETWORKS
from pvc.drivers import links, netlink
from pvc.errors import PvcError
from pvc.node.lease import PrimaryLease
from pvc.node.network_service import NetworkService
from pvc.node.watchdog_process import address_item, route_item
from pvc.ops import network_records
from pvc.zk.cache import CachedView

log = logging.getLogger("pvc.node.gateways")
METADATA = "metadata"  # the key of the metadata address
METADATA_INTERFACE = "lo"
METADATA_CIDR = "169.254.169.254/32"
UPSTREAM = "upstream"  # the key of the default route
BRIDGE_WAIT = 1.0  # seconds between looks for a bridge the links controller has yet to make


class Gateways(NetworkService):
    """The controller; a PrimaryService for the registry."""

    name = "network gateways"

    def __init__(self, view: CachedView, config: Config, lease: PrimaryLease):
        self._added: dict[str, tuple[str, set[str]]] = {}  # key -> (interface, cidrs added)
        self._waiting: set[tuple[str, str]] = set()  # (key, cidr) that failed (logged once)
        # the node's own networks: they keep taking router advertisements once it routes
        self._devices = [config.get(f"networks.{role}.device") for role in CLUSTER_NETWORKS]
        gateway = config.get("networks.upstream.gateway")
        routed = gateway and self._devices[0]
        self._upstream = (self._devices[0], {gateway}) if routed else ("", set())
        super().__init__(view, config, lease, "gateways")

    def _release(self) -> None:
        for key in list(self._added):
            self._remove(key, set())

    def _keys(self) -> list[str]:
        with self._lock:
            added = list(self._added)
        vnis = {str(vni) for vni in network_records.vnis(self.view)}
        return [METADATA, UPSTREAM, *vnis | set(added)]

    def _wanted(self, key: str) -> tuple[str, set[str]]:
        if key == METADATA:
            return METADATA_INTERFACE, {METADATA_CIDR}
        if key == UPSTREAM:
            return self._upstream
        network = network_records.read(self.view, int(key))
        if network is None or not network.managed:
            return "", set()
        return network.bridge, set(network.gateway_cidrs())

    def _step(self, key: str) -> float | None:
        interface, wanted = self._wanted(key)
        self._remove(key, wanted)
        if not wanted or not self.lease.valid():
            return None
        if key not in (METADATA, UPSTREAM):
            links.enable_forwarding(self._devices, ipv6=any(":" in cidr for cidr in wanted))
        return self._add(key, interface, wanted)

    def _add(self, key: str, interface: str, wanted: set[str]) -> float | None:
        """Adds each missing address; one that fails (no bridge yet, IPv6 disabled) does not
        keep the others off, and is tried again in BRIDGE_WAIT seconds."""
        added = self._added.setdefault(key, (interface, set()))[1]
        again = None
        for cidr in sorted(wanted):
            route = key == UPSTREAM
            has = netlink.has_default_route if route else netlink.has_address
            if cidr in added and has(interface, cidr):
                continue
            item = (route_item if route else address_item)(interface, cidr)
            self.lease.hold(item)
            try:
                ours = self._put(route, interface, cidr)
            except PvcError as exc:
                self.lease.unhold(item)
                if (key, cidr) not in self._waiting:
                    self._waiting.add((key, cidr))
                    log.warning("gateway %s waits for %s: %s", cidr, interface, exc.message)
                again = BRIDGE_WAIT
                continue
            self._waiting.discard((key, cidr))
            if not ours:  # the node's own route: not pvc's to hold or remove
                self.lease.unhold(item)
                continue
            added.add(cidr)
            log.info("added %s %s on %s", "default route via" if route else "gateway", cidr,
                     interface)  # fmt: skip
        return again

    @staticmethod
    def _put(route: bool, interface: str, cidr: str) -> bool:
        """Adds a default route or an address (announced); False: the node's own route."""
        if route:
            return netlink.add_default_route(interface, cidr)
        netlink.add_address(interface, cidr)
        try:
            netlink.announce_address(interface, cidr)
        except PvcError as exc:
            log.warning("%s (neighbours learn it when they ask)", exc.message)
        return True

    def _remove(self, key: str, keep: set[str]) -> None:
        """Removes the key's addresses not in `keep` (the lock held)."""
        interface, added = self._added.get(key, ("", set()))
        for cidr in sorted(added - keep):
            if key == UPSTREAM:
                netlink.remove_default_route(interface, cidr)
                self.lease.unhold(route_item(interface, cidr))
            else:
                netlink.remove_address(interface, cidr)
                self.lease.unhold(address_item(interface, cidr))
            added.discard(cidr)
            log.info("removed gateway %s from %s", cidr, interface)
        if not added:
            self._added.pop(key, None)
