"""The services only the primary coordinator runs, in the order takeover starts them.

Relinquish stops them in reverse order. A service is anything with a `name` and idempotent
`start`, `stop` and `running` (PrimaryService): the floating addresses of the upstream,
cluster and storage networks in that order (REFERENCE 1.4's phases C and D), then the
primary-only controllers (pvc.node.controller; the fence monitor first, then gateways, DHCP
and DNS per network, the metadata service, storage statistics), so these start last and stop
first. `running()` says whether a service is up, so the coordinator can reconcile (start
what should run and does not) instead of trusting what it did before.
A service must not rely on having been started to act safely: one that acts on the cluster
checks the primary lease itself (a stop may come after the lease has already ended).

The API is not among them: it runs warm on every coordinator, in a process of its own
(pvc.node.api_process), and the floating address decides which one receives requests.
"""

import logging
from collections.abc import Sequence
from typing import Protocol

from pvc.config import Config
from pvc.config_networks import CLUSTER_NETWORKS
from pvc.drivers import netlink
from pvc.node.lease import PrimaryLease
from pvc.node.watchdog_process import address_item

log = logging.getLogger("pvc.node.primary")


class PrimaryService(Protocol):
    """What the registry runs; a Controller (pvc.node.controller) has this shape."""

    name: str

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def running(self) -> bool: ...


class FloatingAddress:
    """A floating address on its interface, held under the primary lease (the watchdog drops
    it if the daemon cannot)."""

    def __init__(self, interface: str, cidr: str, lease: PrimaryLease | None = None):
        self.name = f"floating address {cidr} on {interface}"
        self.interface = interface
        self.cidr = cidr
        self.lease = lease
        self._item = address_item(interface, cidr)

    def start(self) -> None:
        if self.lease:
            self.lease.hold(self._item)
        netlink.add_address(self.interface, self.cidr)
        netlink.announce_address(self.interface, self.cidr)

    def stop(self) -> None:
        netlink.remove_address(self.interface, self.cidr)
        if self.lease:
            self.lease.unhold(self._item)

    def running(self) -> bool:
        return netlink.has_address(self.interface, self.cidr)


class PrimaryServices:
    """The ordered registry: start all, stop all (reverse order), and repair what is down."""

    def __init__(self, services: list[PrimaryService]):
        self.services = services

    def start_all(self) -> None:
        for service in self.services:
            log.info("starting %s", service.name)
            service.start()

    def stop_all(self) -> None:
        """Stops every service, even when one fails, so nothing is left running."""
        for service in reversed(self.services):
            try:
                service.stop()
                log.info("stopped %s", service.name)
            except Exception as exc:
                log.error("could not stop %s: %s", service.name, exc)

    def repair(self) -> None:
        for service in self.services:
            if not service.running():
                log.warning("%s is down; starting it again", service.name)
                service.start()


def for_node(
    config: Config, lease: PrimaryLease | None, controllers: Sequence[PrimaryService] = ()
) -> PrimaryServices:
    """The primary services this node's configuration asks for: the floating addresses of the
    upstream, cluster and storage networks, then the primary-only `controllers` in order."""
    services: list[PrimaryService] = []
    for network in CLUSTER_NETWORKS:
        cidr = config.get(f"networks.{network}.floating_ip")
        interface = config.get(f"networks.{network}.device")
        if cidr and interface:
            address = FloatingAddress(interface, cidr, lease)
            address.running()  # loads the netlink code now, not during a takeover
            services.append(address)
    return PrimaryServices([*services, *controllers])
