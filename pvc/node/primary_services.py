"""The services only the primary coordinator runs, in the order takeover starts them.

Relinquish stops them in reverse order. A service is anything with a `name` and idempotent
`start`, `stop` and `running` (PrimaryService): the floating address, the API, and the
primary-only controllers (pvc.node.controller; the fence monitor first, later DHCP and DNS per
network, the metadata service, storage statistics), which come after the built-in services, so
they start last and stop first. `running()` says whether a service is up, so the coordinator
can reconcile (start what should run and does not) instead of trusting what it did before.
A service must not rely on having been started to act safely: one that acts on the cluster
checks the primary lease itself (a stop may come after the lease has already ended).
"""

import logging
import threading
from collections.abc import Sequence
from typing import Any, Protocol

from pvc.config import Config
from pvc.drivers import netlink
from pvc.zk.cache import CachedView
from pvc.zk.handler import ZKHandler

log = logging.getLogger("pvc.node.primary")


class PrimaryService(Protocol):
    """What the registry runs; a Controller (pvc.node.controller) has this shape."""

    name: str

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def running(self) -> bool: ...


class FloatingAddress:
    """The cluster floating address on its interface."""

    def __init__(self, interface: str, cidr: str):
        self.name = f"floating address {cidr} on {interface}"
        self.interface = interface
        self.cidr = cidr

    def start(self) -> None:
        netlink.add_address(self.interface, self.cidr)
        netlink.announce_address(self.interface, self.cidr)

    def stop(self) -> None:
        netlink.remove_address(self.interface, self.cidr)

    def running(self) -> bool:
        return netlink.has_address(self.interface, self.cidr)


class ApiService:
    """The REST API, served by waitress on a thread of the daemon, on the daemon's session."""

    name = "API"

    def __init__(self, zk: ZKHandler, config: Config, view: CachedView):
        from pvc.api.app import Context, make_app

        self.zk = zk
        self.config = config
        self._app = make_app(Context(zk, config), view)  # built now, so takeover is quick
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self.running():
            return
        from pvc.api.server import api_server, listening_socket

        self._server = api_server(self._app, listening_socket(self.config), self.config)
        self._thread = threading.Thread(target=self._server.run, name="api", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        from waitress import wasyncore

        # Close every socket from inside the server's own loop, which then ends.
        server.trigger.pull_trigger(lambda: wasyncore.close_all(server._map))
        thread.join(timeout=5)
        server.task_dispatcher.shutdown(cancel_pending=True, timeout=2)
        self._server = self._thread = None

    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()


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
    zk: ZKHandler,
    config: Config,
    view: CachedView,
    controllers: Sequence[PrimaryService] = (),
) -> PrimaryServices:
    """The primary services this node's configuration asks for, then the primary-only
    `controllers` in their order."""
    services: list[PrimaryService] = []
    cidr, interface = config.get("cluster.floating_ip"), config.get("cluster.floating_interface")
    if cidr and interface:
        address = FloatingAddress(interface, cidr)
        address.running()  # loads the netlink code now, not during a takeover
        services.append(address)
    if config.get("api.serve_on_primary"):
        services.append(ApiService(zk, config, view))
    return PrimaryServices([*services, *controllers])
