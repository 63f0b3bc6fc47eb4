"""DHCP and DNS for each managed network: one dnsmasq per network, on the primary.

A primary-only controller (pvc.node.controller), after the gateways in the primary's
registry (REFERENCE 1.4 phase G): its dnsmasq binds to the gateway addresses, so a step waits
(GATEWAY_WAIT) until they are on the bridge. Keys: VNIs. A managed network with a gateway
gets a dnsmasq (pvc.drivers.dnsmasq.network_config), its files in
`<networks.run_directory>/dnsmasq/<vni>`:
- before it starts, its lease file is written from the leases in Zookeeper, so a new primary
  hands every MAC the address the old one gave it;
- reservations: one file per MAC in its hosts folders. A new one is read by dnsmasq itself
  (inotify); a changed or removed one is followed by a SIGHUP (dnsmasq keeps what it read);
- leases go back to Zookeeper by polling the lease file every LEASE_POLL seconds (a step
  asks to run again then): when its modification time moved, the file is read whole (a read
  during dnsmasq's rewrite is seen by the stamp changing under it, and retried) and every
  difference from Zookeeper is written in ONE transaction, checked against the version of
  the network's type (a network removed meanwhile is not made again by its leases) and of
  the primary's name, which must be this node's (an old primary thawed after a takeover
  cannot overwrite the new one's leases, even when it froze right after its lease check).
  Polling rather than `--dhcp-script`: no process per lease event, no Zookeeper credentials
  handed to a script, a burst of leases is one transaction, and a lease a dead script lost
  is found again;
- a change of the network's settings restarts its dnsmasq (after a last poll of its leases);
  a network removed (or no longer managed) stops it and its files go.
Each dnsmasq is held under the primary lease (`process_item(pid, "dnsmasq")`) right after it
is spawned (its PID is unknown before; until then PR_SET_PDEATHSIG ties it to the daemon) and
started only while the lease is valid. Stop (relinquish): a last poll of every network's
leases while the lease still holds, then every dnsmasq stops, and a network with IPv6 gets
a router advertisement of lifetime 0 (netlink.withdraw_router): guests route by the RA's
source, this node's own link-local address, and would keep it for minutes.
"""

import logging
import os
import shutil
from typing import Any

from pvc.config import Config
from pvc.drivers import dnsmasq, links, netlink
from pvc.errors import ConcurrentChange, PvcError, Unavailable
from pvc.node.lease import PrimaryLease
from pvc.node.network_service import NetworkService
from pvc.node.watchdog_process import process_item
from pvc.ops import network_records
from pvc.ops.network_records import Network
from pvc.zk import schema
from pvc.zk.cache import CachedView

log = logging.getLogger("pvc.node.dhcp")
LEASE_POLL = 1.0  # seconds between looks at a lease file
GATEWAY_WAIT = 0.5  # seconds between looks for the gateway addresses
FOLDERS = ("dhcp-hosts", "hosts")  # dnsmasq.host_files' folders
PRIMARY = "base.config.primary_node"  # the fence of a lease write


class HeldDnsmasq:
    """A dnsmasq this primary runs, held under its lease until stopped."""

    def __init__(self, paths: dnsmasq.Paths, config: str, lease: PrimaryLease):
        dnsmasq.write_file(paths.config, config)
        self.paths = paths
        self.config = config
        self.lease = lease
        self.process = dnsmasq.start(paths)
        self.item = process_item(self.process.pid, "dnsmasq")
        lease.hold(self.item)
        self.hosts: dict[tuple[str, str], str] = {}  # the host files written
        self.stamp: tuple[int, int] | None = None  # the lease file's when last read
        self.servers = ""  # the forwarder's servers file
        self.advertises: str | None = None  # the bridge it sends router advertisements on

    def check(self, what: str) -> None:
        """Raises (the step is tried again with a backoff) if dnsmasq ended by itself."""
        if not self.process.alive():
            self.stop()
            raise Unavailable(f"{what}: {self.process.reason()}")

    def stop(self) -> None:
        self.process.stop()
        self.lease.unhold(self.item)


def make_folders(paths: dnsmasq.Paths, *children: str) -> None:
    """Readable by dnsmasq once it dropped its privileges (it reads new host files then)."""
    for folder in (paths.folder, *(paths.folder / child for child in children)):
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o755)


def ipv6_on(bridge: str) -> bool:
    """Whether the bridge can carry IPv6: on a host (or bridge) with IPv6 disabled, the IPv6
    gateway never comes, and the network is served IPv4 only rather than not at all."""
    return links.read_sysctl(f"net/ipv6/conf/{bridge}/disable_ipv6") == "0"


def serves(network: Network | None) -> bool:
    return network is not None and network.managed and bool(network.gateway_cidrs())


class Dhcp(NetworkService):
    """The controller; a PrimaryService for the registry."""

    name = "network DHCP and DNS"

    def __init__(self, view: CachedView, config: Config, lease: PrimaryLease):
        self.run_directory = config.get("networks.run_directory")
        self.node_name = config.node_name
        self._served: dict[int, HeldDnsmasq] = {}
        super().__init__(view, config, lease, "dhcp")

    def _release(self) -> None:
        for vni, served in list(self._served.items()):
            try:
                self._sync_leases(vni, served)  # the next primary starts from these
            except PvcError as exc:
                log.warning("network %s: last leases not recorded: %s", vni, exc.message)
            self._halt(vni)
            if served.advertises:  # guests move to the new primary's router at once
                try:
                    netlink.withdraw_router(served.advertises)
                except PvcError as exc:
                    log.warning("%s (guests drop it when its lifetime ends)", exc.message)

    def _keys(self) -> list[str]:
        with self._lock:
            served = set(self._served)
        return [str(vni) for vni in sorted(set(network_records.vnis(self.view)) | served)]

    def _paths(self, vni: int) -> dnsmasq.Paths:
        return dnsmasq.Paths.of(self.run_directory, str(vni))

    def _step(self, key: str) -> float | None:
        vni = int(key)
        network = network_records.read(self.view, vni)
        if not serves(network):
            self._halt(vni, remove_files=True)
            return None
        assert network is not None
        if not self.lease.valid() or not self.view.mirror.loaded:
            return None
        served = self._served.get(vni)
        if served:
            try:
                served.check(f"dnsmasq of network {vni}")
            except Unavailable:
                del self._served[vni]
                raise
        ipv6 = ipv6_on(network.bridge)
        mtu = netlink.mtu(network.bridge)
        config = dnsmasq.network_config(network, self._paths(vni), mtu, ipv6)
        if served and served.config != config:
            log.info("network %s changed: restarting its dnsmasq", vni)
            self._sync_leases(vni, served)
            self._halt(vni)
            served = None
        if served is None:
            gateways = [c for c in network.gateway_cidrs() if ipv6 or ":" not in c]
            if not all(netlink.has_address(network.bridge, c) for c in gateways):
                return GATEWAY_WAIT
            served = self._launch(vni, config)
            served.advertises = network.bridge if ipv6 and network.ip6_gateway else None
        self._sync_hosts(vni, served)
        self._sync_leases(vni, served)
        return LEASE_POLL

    def _launch(self, vni: int, config: str) -> HeldDnsmasq:
        paths = self._paths(vni)
        for folder in FOLDERS:
            shutil.rmtree(paths.folder / folder, ignore_errors=True)  # an earlier term's
        make_folders(paths, *FOLDERS)
        dnsmasq.write_file(paths.leases, dnsmasq.lease_file(network_records.leases(self.view, vni)))
        hosts = self._host_files(vni)
        for (folder, name), text in hosts.items():
            dnsmasq.write_file(paths.folder / folder / name, text)
        served = self._served[vni] = HeldDnsmasq(paths, config, self.lease)
        served.hosts = hosts
        log.info("network %s: dnsmasq %d started", vni, served.process.pid)
        return served

    def _halt(self, vni: int, remove_files: bool = False) -> None:
        served = self._served.pop(vni, None)
        if served:
            served.stop()
            log.info("network %s: dnsmasq %d stopped", vni, served.process.pid)
        if remove_files:
            shutil.rmtree(self._paths(vni).folder, ignore_errors=True)

    def _host_files(self, vni: int) -> dict[tuple[str, str], str]:
        return dnsmasq.host_files(network_records.reservations(self.view, vni))

    def _sync_hosts(self, vni: int, served: HeldDnsmasq) -> None:
        wanted = self._host_files(vni)
        if wanted == served.hosts:
            return
        for (folder, name), text in wanted.items():
            if served.hosts.get((folder, name)) != text:
                dnsmasq.write_file(served.paths.folder / folder / name, text)
        for folder, name in set(served.hosts) - set(wanted):
            (served.paths.folder / folder / name).unlink(missing_ok=True)
        if any(wanted.get(file) != text for file, text in served.hosts.items()):
            served.process.reload()  # dnsmasq forgets a changed or removed host only then
        served.hosts = wanted

    def _sync_leases(self, vni: int, served: HeldDnsmasq) -> None:
        """Writes what the lease file says to Zookeeper (only while primary)."""
        if not self.lease.valid():
            return
        try:
            before = os.stat(served.paths.leases)
            stamp = (before.st_mtime_ns, before.st_size)
            if stamp == served.stamp:
                return
            text = served.paths.leases.read_text()
            after = os.stat(served.paths.leases)
        except FileNotFoundError:
            return
        if (after.st_mtime_ns, after.st_size) != stamp:
            return  # dnsmasq is rewriting it: next poll
        found = dnsmasq.parse_leases(text)
        known = network_records.leases(self.view, vni)
        changed = {mac: record for mac, record in found.items() if known.get(mac) != record}
        values: dict[Any, Any] = {_lease_key(vni, mac): record for mac, record in changed.items()}
        gone = [_lease_key(vni, mac) for mac in known if mac not in found]
        if values or gone:
            # only into a network that still exists: a removal meanwhile fails the write
            # instead of leaving a lease folder behind, and so does a change (next poll)
            _, version = self.view.read_versioned(("network.type", str(vni)))
            # and only while this node is the primary: one that froze after its lease check
            # and thawed after a takeover must not delete the new primary's leases
            primary, primary_version = self.view.read_versioned(PRIMARY)
            router_key = ("node.state.router", self.node_name)
            router, router_version = self.view.read_versioned(router_key)
            # a graceful handover names the successor first: the leases this node's dnsmasq
            # gave out meanwhile are still recorded while it relinquishes
            if version < 0 or (primary != self.node_name and router != "relinquish"):
                return
            fence = {("network.type", str(vni)): version, PRIMARY: primary_version,
                     router_key: router_version}  # fmt: skip
            try:
                self.view.write(values, delete=gone, expect=fence)
            except ConcurrentChange:
                log.info("network %s changed while its leases were recorded: next poll", vni)
                return
            log.info("network %s: %d leases recorded, %d ended", vni, len(values), len(gone))
        served.stamp = stamp


def _lease_key(vni: int, mac: str) -> tuple[str, str, str]:
    return ("network.lease", str(vni), schema.mac_component(mac))
