"""The node's networks: its three cluster networks and the links of every client network.

A node-wide controller (pvc.node.controller) run by every daemon. Keys:
- `cluster`: the upstream, cluster and storage devices of the configuration (`networks.*`):
  their MTU and this node's address on them when configured; then this node's address on the
  cluster network (the configured one, else one the device has: `cluster_address`) is
  published as `node.cluster_address`: the VXLAN underlay address peers send to.
- a VNI: the network's links, made to match Zookeeper (pvc.ops.network_records):
  managed: `vxlan<vni>` over the cluster device (unicast: an all-zero FDB entry per other
  node's cluster address) in bridge `vmbr<vni>`, MTU = cluster device MTU - 50 unless the
  network asks for less; bridged: `vlan<vni>` on `networks.bridge_device` (or that device
  itself, untagged, when the network has no VLAN) in `vmbr<vni>`. A device in a bridge stops
  carrying the node's own traffic, and every node builds a network at once: an untagged
  network on a device that has an address, or is one of the node's cluster network devices,
  fails on that node instead (the device leaves the bridge if it was in). A network gone from
  Zookeeper loses exactly the links pvc made for it (pvc.drivers.links marks them): deleting
  the bridge detaches whatever VM taps libvirt still has on it, and leaves them to libvirt.
  Each network's state here is written to `network.node` (ok, or failed with the reason, e.g.
  a device missing on this node) only when it changes; what a step cannot finish it does not
  leave half-made: the port is made before the bridge, and links of a network that had no
  bridge before the step go again.
Changes arrive from the mirror (a network's fields, any node's cluster address); a resync
names every network and every VNI pvc has links for. Stopping the daemon leaves the links:
the VMs on them keep running.
"""

import ipaddress
import logging
import re
import time
from typing import Any

from pvc.config import Config
from pvc.drivers import links, netlink
from pvc.errors import ConcurrentChange, PvcError, Unavailable
from pvc.node.controller import Controller
from pvc.ops import network_records as records
from pvc.zk.cache import CachedView
from pvc.zk.handler import resolve

log = logging.getLogger("pvc.node.networks")

CLUSTER_KEY = "cluster"
ROLES = ("upstream", "cluster", "storage")
_FLOATING_ORDER = ("cluster", "upstream", "storage")  # as `cluster_address` takes them
RESYNC_INTERVALS = 10  # keepalive intervals between two resyncs
SETTLE = 0.2  # seconds from a change to its step: the rest of its transaction arrives meanwhile
_LINK_NAME = re.compile(r"^(?:vmbr|vxlan|vlan)(\d+)$")
# children of /networks/<vni> that are not the network's own fields (they change often and
# never change links)
_NOT_FIELDS = {
    resolve((key, "0"))[0].rsplit("/", 1)[1]
    for key in ("network.nodes", "network.reservations", "network.leases", "network.acls")
}


def managed_mtu(cluster_mtu: int, requested: int | None) -> int:
    """A managed network's MTU: what the VXLAN underlay leaves, or less if the network asks."""
    largest = cluster_mtu - records.VXLAN_OVERHEAD
    return min(largest, requested) if requested else largest


def bridged_mtu(device_mtu: int, configured: int | None, requested: int | None) -> int:
    """A bridged network's MTU: never above its device's."""
    return min(value for value in (device_mtu, configured, requested) if value)


def cluster_address(found: list[str], floating: list[str], current: str | None) -> str | None:
    """This node's address on the cluster network, from the device's IPv4 addresses `found`
    (primary ones first), when none is configured. Never one of the `floating` addresses
    (a.b.c.d/nn: the cluster's first, then the upstream's and storage's): the primary holds
    them, whichever device they are on, and peers would send the VXLAN traffic of this node to
    whoever holds it next. Among the rest, those in the cluster floating address's subnet
    first (the cluster network's own), then the `current` one if it is still among them (an
    address that moves makes every peer change its FDB entries), else the first."""
    taken = {cidr.split("/")[0] for cidr in floating if cidr}
    candidates = [address for address in found if address not in taken]
    if floating and floating[0]:
        subnet = ipaddress.ip_network(floating[0], strict=False)
        candidates = [a for a in candidates if ipaddress.ip_address(a) in subnet] or candidates
    if current in candidates:
        return current
    return candidates[0] if candidates else None


def untagged_refusal(device: str, roles: list[str], addresses: list[str]) -> str | None:
    """Why `device` must not become an untagged network's bridge port (None: it may): it is
    the device of the node's cluster networks `roles`, or carries `addresses` (a port's
    addresses stop working: Zookeeper, the API, whatever the node reaches through it)."""
    if roles:
        return f"device {device} is this node's {' and '.join(roles)} network device"
    if addresses:
        return f"device {device} carries this node's addresses ({', '.join(addresses)})"
    return None


def vnis_of_links(names: list[str]) -> set[int]:
    """The VNIs that links named like a network's (vmbr100, vxlan100, vlan100) belong to."""
    return {int(match.group(1)) for name in names if (match := _LINK_NAME.match(name))}


def _link_names(vni: int) -> list[str]:
    """Every link pvc may make for a network: its bridge, VXLAN and VLAN."""
    return [name.format(vni=vni) for name in (records.BRIDGE, records.VXLAN, records.VLAN)]


class NodeNetworks:
    """See the module docstring."""

    def __init__(self, view: CachedView, name: str, config: Config):
        self.view = view
        self.name = name
        self.config = config
        self.interval = config.get("timers.keepalive_interval")
        self._published: str | None = None
        self._problems: str | None = None  # the cluster networks' last logged problems
        self._address_suffix = resolve(("node.cluster_address", "x"))[0].rsplit("/", 1)[1]
        self.controller = Controller(
            "networks",
            self._step,
            workers=2,
            resync=self._resync,
            resync_interval=self.interval * RESYNC_INTERVALS,
        )

    def start(self) -> None:
        self.view.mirror.listen(self._on_mirror)
        self.controller.start()

    def stop(self) -> None:
        """Stops reconciling; the links stay (VMs run on them)."""
        self.controller.stop()

    # --- keys ---------------------------------------------------------------------------------

    def _resync(self) -> list[str]:
        with links.opened() as kernel:
            made = vnis_of_links(kernel.pvc_links())
        return [CLUSTER_KEY] + [str(vni) for vni in sorted(made | set(records.vnis(self.view)))]

    def _on_mirror(self, path: str, data: bytes | None) -> None:
        parts = path.split("/")
        if len(parts) >= 3 and parts[1] == "networks" and parts[2].isdigit():
            if len(parts) == 3 or parts[3] not in _NOT_FIELDS:
                self.controller.enqueue(parts[2], SETTLE)
        elif len(parts) == 4 and parts[1] == "nodes" and parts[3] == self._address_suffix:
            if parts[2] == self.name:
                self.controller.enqueue(CLUSTER_KEY)
            else:  # a peer came, went or moved: every VXLAN's FDB
                self.controller.enqueue_all(str(vni) for vni in records.vnis(self.view))

    def _step(self, key: str) -> float | None:
        if key == CLUSTER_KEY:
            return self._cluster_step()
        return self._network_step(int(key))

    # --- the cluster networks -----------------------------------------------------------------

    def _cluster_step(self) -> float | None:
        problems = []
        for role in ROLES:
            try:
                self._cluster_device(role)
            except PvcError as exc:
                problems.append(f"{role} network: {exc.message}")
        with links.opened() as kernel:
            address = self._local_address(kernel)
        if address is None:
            problems.append("no IPv4 address on the cluster device: VXLANs cannot be built")
        else:
            if self.view.read(("node.cluster_address", self.name)) != address:
                self.view.write({("node.cluster_address", self.name): address})
                log.info("cluster address %s published", address)
            if address != self._published:  # the VXLANs' local address
                self._published = address
                self.controller.enqueue_all(str(vni) for vni in records.vnis(self.view))
        report = "; ".join(problems) or None
        if report != self._problems:
            log.log(logging.WARNING if report else logging.INFO, "cluster networks: %s",
                    report or "as configured")  # fmt: skip
            self._problems = report
        return self.interval if problems else None

    def _cluster_device(self, role: str) -> None:
        device = self.config.get(f"networks.{role}.device")
        if not device:
            return
        mtu = self.config.get(f"networks.{role}.mtu")
        with links.opened() as kernel:
            if mtu:
                kernel.set_mtu(device, mtu)
            elif not kernel.exists(device):
                raise Unavailable(f"device {device} does not exist on this node")
        address = self.config.get(f"networks.{role}.address")
        if address and not netlink.has_address(device, address):
            netlink.add_address(device, address)

    def _local_address(self, kernel: links.Kernel) -> str | None:
        configured = self.config.get("networks.cluster.address")
        if configured:
            return configured.split("/")[0]
        device = self.config.get("networks.cluster.device")
        if not device or not kernel.exists(device):
            return None
        floating = [self.config.get(f"networks.{role}.floating_ip") for role in _FLOATING_ORDER]
        current = self.view.read(("node.cluster_address", self.name))
        return cluster_address(kernel.ipv4_addresses(device), floating, current)

    # --- client networks ----------------------------------------------------------------------

    def _network_step(self, vni: int) -> float | None:
        # a verb's transaction reaches the mirror one key at a time: wait until it shows all
        # that Zookeeper committed, so a network is never built from half of a change
        # (and never tear a network down from a copy that is not whole: look again later)
        if not self.view.mirror.sync():
            return self.interval
        network = records.read(self.view, vni)
        with links.opened() as kernel:
            if network is None:
                removed = [name for name in _link_names(vni) if kernel.delete(name)]
                if removed:
                    log.info("network %s removed: %s deleted", vni, ", ".join(removed))
                return None
            existed = kernel.made_by_pvc(network.bridge)
            try:
                if network.managed:
                    detail = self._build_managed(kernel, network)
                else:
                    detail = self._build_bridged(kernel, network)
                state = "ok"
            except Unavailable as exc:
                if not existed:
                    for name in _link_names(vni):
                        kernel.delete(name)
                state, detail = "failed", exc.message
        self._report(network, state, detail)
        return None

    def _build_managed(self, kernel: links.Kernel, network: records.Network) -> str:
        device = self.config.get("networks.cluster.device")
        if not device:
            raise Unavailable("networks.cluster.device is not set on this node")
        local = self._local_address(kernel)
        if local is None:
            raise Unavailable(f"no IPv4 address on the cluster device {device}")
        mtu = managed_mtu(kernel.mtu(device), network.mtu)
        vlan = records.VLAN.format(vni=network.vni)
        kernel.delete(vlan)  # left from a bridged network of that VNI
        self._release_bridge_device(kernel, network.bridge)
        kernel.ensure_vxlan(network.vxlan, network.vni, local, device, mtu)
        kernel.ensure_bridge(network.bridge, mtu)
        kernel.ensure_port(network.bridge, network.vxlan)
        added, removed = kernel.set_fdb_peers(network.vxlan, self._peers())
        if added or removed:
            log.info("network %s: peers added %s, removed %s", network.vni, added, removed)
        return f"{network.vxlan} in {network.bridge}, MTU {mtu}"

    def _build_bridged(self, kernel: links.Kernel, network: records.Network) -> str:
        device = self.config.get("networks.bridge_device")
        if not device:
            raise Unavailable("networks.bridge_device is not set on this node")
        if not kernel.exists(device):
            raise Unavailable(f"device {device} does not exist on this node")
        mtu = bridged_mtu(kernel.mtu(device), self.config.get("networks.bridge_mtu"), network.mtu)
        kernel.delete(network.vxlan)  # left from a managed network of that VNI
        vlan = records.VLAN.format(vni=network.vni)
        if network.vlan is None:
            holder = kernel.master(device)
            if holder not in (None, network.bridge):
                raise Unavailable(f"device {device} is already in {holder}")
            self._check_untagged(kernel, device, network.bridge)
            kernel.delete(vlan)
            port = device
        else:
            self._release_bridge_device(kernel, network.bridge)
            port = vlan
        if network.vlan is not None:  # the port first: if it cannot be made, no bridge is
            kernel.ensure_vlan(vlan, device, network.vlan, mtu)
        kernel.ensure_bridge(network.bridge, mtu)
        kernel.ensure_port(network.bridge, port)
        return f"{port} in {network.bridge}, MTU {mtu}"

    def _check_untagged(self, kernel: links.Kernel, device: str, bridge: str) -> None:
        """Unavailable if `device` must not be `bridge`'s port (`untagged_refusal`); it leaves
        the bridge if a step before put it there."""
        roles = [role for role in ROLES if self.config.get(f"networks.{role}.device") == device]
        reason = untagged_refusal(device, roles, kernel.addresses(device))
        if reason is None:
            return
        if kernel.master(device) == bridge:
            kernel.release(device)
        raise Unavailable(f"{reason}: an untagged network would take it from the node")

    def _release_bridge_device(self, kernel: links.Kernel, bridge: str) -> None:
        """Frees the bridge device from `bridge` (it was untagged there before a change)."""
        device = self.config.get("networks.bridge_device")
        if device and kernel.master(device) == bridge:
            kernel.release(device)

    def _peers(self) -> set[str]:
        """The cluster addresses of every other node."""
        found = set()
        for node in self.view.children("base.nodes"):
            address = self.view.read(("node.cluster_address", node)) if node != self.name else None
            if address:
                found.add(address)
        return found

    def _report(self, network: records.Network, state: str, detail: str) -> None:
        """Writes this node's state of the network if it changed; never for a network
        removed meanwhile (that would leave a half-written network)."""
        current = network.nodes.get(self.name)
        if isinstance(current, dict) and (current.get("state"), current.get("detail")) == (
            state,
            detail,
        ):
            return
        key = ("network", str(network.vni))
        _, version = self.view.read_versioned(key)
        if version < 0:
            return
        record: dict[str, Any] = {"state": state, "detail": detail, "time": time.time()}
        try:
            self.view.write(
                {("network.node", str(network.vni), self.name): record}, expect={key: version}
            )
        except ConcurrentChange:
            self.controller.enqueue(str(network.vni), 1.0)  # changed or removed: look again
            return
        log.log(logging.INFO if state == "ok" else logging.WARNING, "network %s: %s (%s)",
                network.vni, state, detail)  # fmt: skip
