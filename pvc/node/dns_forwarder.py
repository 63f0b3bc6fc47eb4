"""The cluster's DNS forwarder: one dnsmasq on the primary's cluster and upstream floating
addresses, port 53, answering every managed network's domain by asking its gateway.

A primary-only controller (pvc.node.controller), last in the primary's registry (after the
per-network dnsmasqs it forwards to; the original's PowerDNS aggregator). One key. It runs
only where a cluster or upstream floating address is configured and while some managed
network has a domain, once the registry's floating addresses are up (ADDRESS_WAIT between
looks). Which domain goes to which gateway is in a
servers file (pvc.drivers.dnsmasq.forwarder_servers) that dnsmasq reads again on SIGHUP, so
a network added, changed or removed is a rewrite and a SIGHUP, never a restart. Other names
are refused: the forwarder is no open resolver. Held under the primary lease, as the
per-network dnsmasqs are (pvc.node.dhcp.HeldDnsmasq); stop (relinquish) stops it.
"""

import ipaddress
import logging

from pvc.config import Config
from pvc.drivers import dnsmasq, netlink
from pvc.errors import Unavailable
from pvc.node.dhcp import HeldDnsmasq, make_folders
from pvc.node.lease import PrimaryLease
from pvc.node.network_service import NetworkService
from pvc.ops import network_records
from pvc.zk.cache import CachedView

log = logging.getLogger("pvc.node.dns_forwarder")
KEY = "forwarder"
LISTEN_ON = ("cluster", "upstream")  # the networks whose floating address it answers on
ADDRESS_WAIT = 0.5


class DnsForwarder(NetworkService):
    """The controller; a PrimaryService for the registry."""

    name = "DNS forwarder"

    def __init__(self, view: CachedView, config: Config, lease: PrimaryLease):
        self.floating = [
            (config.get(f"networks.{net}.device"), config.get(f"networks.{net}.floating_ip"))
            for net in LISTEN_ON
            if config.get(f"networks.{net}.device") and config.get(f"networks.{net}.floating_ip")
        ]
        self.paths = dnsmasq.Paths.of(config.get("networks.run_directory"), KEY)
        self._served: HeldDnsmasq | None = None
        super().__init__(view, config, lease, "dns-forwarder")

    def _release(self) -> None:
        if self._served:
            self._served.stop()
            self._served = None

    def _network_changed(self, vni: str) -> None:
        self.controller.enqueue(KEY)

    def _keys(self) -> list[str]:
        return [KEY]

    def _step(self, _key: str) -> float | None:
        if not self.floating or not self.lease.valid() or not self.view.mirror.loaded:
            return None
        servers = dnsmasq.forwarder_servers(network_records.networks(self.view))
        served = self._served
        if served:
            try:
                served.check("the DNS forwarder")
            except Unavailable:
                self._served = None
                raise
            if not servers:
                self._release()  # nothing left to forward
                log.info("DNS forwarder stopped: no managed network has a domain")
            elif servers != served.servers:
                dnsmasq.write_file(self.paths.servers, servers)
                served.process.reload()
                served.servers = servers
                log.info("DNS forwarder: networks changed; servers read again")
            return None
        if not servers:
            return None  # started once a managed network has a domain
        if not all(netlink.has_address(device, cidr) for device, cidr in self.floating):
            return ADDRESS_WAIT
        make_folders(self.paths)
        dnsmasq.write_file(self.paths.servers, servers)
        listen = [str(ipaddress.ip_interface(cidr).ip) for _, cidr in self.floating]
        served = self._served = HeldDnsmasq(
            self.paths, dnsmasq.forwarder_config(listen, self.paths), self.lease
        )
        served.servers = servers
        log.info("DNS forwarder %d started on %s", served.process.pid, ", ".join(listen))
        return None
