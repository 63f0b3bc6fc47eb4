"""The node's hypervisor, through libvirt (python3-libvirt from Debian): the only module that
opens libvirt, for the node daemon and for its watchdog's self-fence alike.

`Hypervisor` implements pvc.drivers.contracts.HypervisorDriver:
- Domains are always transient: started with `createXML` from the XML in Zookeeper, so
  libvirt never keeps a definition that could disagree with the cluster's.
- `domains()` is what runs here now: {uuid: state}, state one of running, paused, shutoff,
  crashed, other. A domain that is not listed does not exist here.
- Every domain pvc starts carries its cluster's mark: `start(xml, owner)` adds an element in
  MARK_NAMESPACE to the domain's <metadata> (replacing any mark the XML brought along) with
  the cluster's identity; the mark travels with a live migration; `mark` adds it to a running
  domain (one started before pvc marked its domains), `owner` reads it (None: unmarked).
- `start`, `shutdown` (ACPI, returns at once), `destroy`, `remove` and `migrate` raise
  `HypervisorError` with libvirt's message on one line; `destroy` and `remove` of a domain
  that is not here succeed.
- `grow_disk` lets a running guest see its disk grown (blockResize), only ever larger.
- `define_ceph_secret` gives libvirt the cephx key QEMU opens RBD disks with, as a private
  secret (libvirt never hands its value back).
- Lifecycle events call the callback given to `Hypervisor(uri, on_event)` with the domain's
  UUID, from libvirt's event loop thread: it must not block. Without a callback no event loop
  is started, so the watchdog opens libvirt without threads of libvirt's.
- Calls are bounded when events are on: the connection's keepalive (which needs the event
  loop) closes a connection whose libvirtd stopped answering, so a call to a frozen libvirtd
  fails after about KEEPALIVE_INTERVAL x (KEEPALIVE_COUNT + 1) seconds with HypervisorError
  instead of holding its caller forever. The next call opens the connection again (waiting,
  as the first open does, while libvirtd does not answer); events missed meanwhile are for the
  caller's resync to catch. A connection without events has no such bound.
The URI selects the driver: qemu:///system on real nodes, test:///default for many-node tests.
"""

import base64
import contextlib
import functools
import logging
import threading
import xml.etree.ElementTree as ET
from types import ModuleType
from typing import Any
from xml.dom import minidom
from xml.sax.saxutils import escape, quoteattr

from pvc.drivers import import_binding
from pvc.drivers.contracts import EventCallback, HypervisorError

__all__ = ["Hypervisor", "HypervisorError"]
log = logging.getLogger("pvc.libvirt")
KEEPALIVE_INTERVAL = 5  # seconds between probes of an idle connection
KEEPALIVE_COUNT = 3  # probes unanswered before the connection is closed
MARK_NAMESPACE = "urn:pvc:cluster"  # of the <metadata> element naming a domain's cluster
MARK_PREFIX = "pvc"
_event_loop_started = threading.Lock()
_event_loop_running = False


@functools.cache
def _libvirt() -> ModuleType:
    """The binding, told not to print errors (they come back as exceptions)."""
    libvirt = import_binding("libvirt")
    libvirt.registerErrorHandler(lambda *_: None, None)
    return libvirt


def _start_event_loop() -> None:
    """libvirt's default event loop, on a daemon thread; once per process, before the open of
    a connection whose events are wanted."""
    global _event_loop_running
    libvirt = _libvirt()
    with _event_loop_started:
        if _event_loop_running:
            return
        libvirt.virEventRegisterDefaultImpl()

        def run() -> None:
            while True:
                libvirt.virEventRunDefaultImpl()

        threading.Thread(target=run, name="libvirt-events", daemon=True).start()
        _event_loop_running = True


_STATES = {1: "running", 2: "other", 3: "paused", 4: "shutdown", 5: "shutoff", 6: "crashed",
           7: "paused"}  # fmt: skip


class Hypervisor:
    """The libvirt at `uri` (see the module contract); `on_event` gets lifecycle events, and
    `keepalive` is (seconds between probes, probes unanswered) when events are on."""

    def __init__(
        self,
        uri: str,
        on_event: EventCallback | None = None,
        keepalive: tuple[int, int] = (KEEPALIVE_INTERVAL, KEEPALIVE_COUNT),
    ):
        if on_event is not None:
            _start_event_loop()
        self.uri = uri
        self._on_event = on_event
        self._keepalive = keepalive
        self._reopen = threading.Lock()
        self._conn = self._open()

    def _open(self) -> Any:
        libvirt = _libvirt()
        try:
            conn = libvirt.open(self.uri)
        except libvirt.libvirtError as exc:
            raise HypervisorError(f"cannot connect to libvirt at {self.uri}: {exc}") from None
        on_event = self._on_event
        if on_event is not None:
            # a driver without a daemon (test:///) has no keepalive, and no connection to lose
            with contextlib.suppress(libvirt.libvirtError):
                conn.setKeepAlive(*self._keepalive)
            conn.domainEventRegisterAny(
                None,
                libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE,
                lambda _conn, dom, *_: on_event(dom.UUIDString()),
                None,
            )
        return conn

    @property
    def conn(self) -> Any:
        """The libvirt connection, opened again if the keepalive closed it."""
        with self._reopen:
            if not self._conn.isAlive():
                log.warning("the connection to libvirt at %s was lost; opening it again", self.uri)
                with contextlib.suppress(self._error()):
                    self._conn.close()  # frees what the lost connection holds
                self._conn = self._open()
            return self._conn

    def _error(self) -> type[Exception]:
        return _libvirt().libvirtError

    def domains(self) -> dict[str, str]:
        """UUID -> state of every domain; one that goes away while listed is left out."""
        try:
            found = self.conn.listAllDomains(0)
        except self._error() as exc:
            raise HypervisorError(f"cannot list domains: {exc}") from None
        states = {}
        for dom in found:
            try:
                states[dom.UUIDString()] = _STATES.get(dom.state()[0], "other")
            except self._error():
                continue  # a transient domain that stopped, or migrated away, meanwhile
        return states

    def state(self, uuid: str) -> str | None:
        try:
            return _STATES.get(self.conn.lookupByUUIDString(uuid).state()[0], "other")
        except self._error():
            return None

    def start(self, xml: str, owner: str) -> None:
        try:
            self.conn.createXML(marked(xml, owner), 0)
        except self._error() as exc:
            raise HypervisorError(str(exc)) from None

    def owner(self, uuid: str) -> str | None:
        libvirt = _libvirt()
        try:
            mark = self.conn.lookupByUUIDString(uuid).metadata(
                libvirt.VIR_DOMAIN_METADATA_ELEMENT, MARK_NAMESPACE, 0
            )
        except libvirt.libvirtError as exc:
            if exc.get_error_code() in (
                libvirt.VIR_ERR_NO_DOMAIN_METADATA,
                libvirt.VIR_ERR_NO_DOMAIN,
            ):
                return None
            raise HypervisorError(f"cannot read the metadata of domain {uuid}: {exc}") from None
        return ET.fromstring(mark).get("uuid")

    def mark(self, uuid: str, owner: str) -> None:
        libvirt = _libvirt()
        try:
            self.conn.lookupByUUIDString(uuid).setMetadata(
                libvirt.VIR_DOMAIN_METADATA_ELEMENT,
                f"<cluster uuid={quoteattr(owner)}/>",
                MARK_PREFIX,
                MARK_NAMESPACE,
                libvirt.VIR_DOMAIN_AFFECT_LIVE,
            )
        except libvirt.libvirtError as exc:
            raise HypervisorError(f"cannot mark domain {uuid}: {exc}") from None

    def shutdown(self, uuid: str) -> None:
        try:
            self.conn.lookupByUUIDString(uuid).shutdown()
        except self._error() as exc:
            if self.state(uuid) is not None:
                raise HypervisorError(str(exc)) from None

    def destroy(self, uuid: str) -> None:
        try:
            self.conn.lookupByUUIDString(uuid).destroy()
        except self._error() as exc:
            if self.state(uuid) not in (None, "shutoff"):
                raise HypervisorError(str(exc)) from None

    def remove(self, uuid: str) -> None:
        self.destroy(uuid)
        libvirt = _libvirt()
        try:
            domain = self.conn.lookupByUUIDString(uuid)
        except libvirt.libvirtError:
            return  # transient: gone with its destroy
        try:
            domain.undefineFlags(
                libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
                | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
            )
        except libvirt.libvirtError as exc:
            if self.state(uuid) is not None:
                raise HypervisorError(f"cannot undefine domain {uuid}: {exc}") from None

    def resume(self, uuid: str) -> None:
        try:
            self.conn.lookupByUUIDString(uuid).resume()
        except self._error() as exc:
            if self.state(uuid) != "running":
                raise HypervisorError(str(exc)) from None

    def migrate(self, uuid: str, peer_uri: str, address: str | None, max_downtime_ms: int) -> None:
        """Live, peer-to-peer migration to the libvirt at `peer_uri`; the guest moves at once
        or stays here (libvirt pauses it here only once it runs there)."""
        libvirt = _libvirt()
        flags = libvirt.VIR_MIGRATE_LIVE | libvirt.VIR_MIGRATE_PEER2PEER
        params = {}
        if address:
            params[libvirt.VIR_MIGRATE_PARAM_URI] = f"tcp://{address}"
        try:
            domain = self.conn.lookupByUUIDString(uuid)
            domain.migrateSetMaxDowntime(max_downtime_ms, 0)
            domain.migrateToURI3(peer_uri, params, flags)
        except self._error() as exc:
            raise HypervisorError(f"live migration to {peer_uri} failed: {exc}") from None

    def define_ceph_secret(self, uuid: str, usage: str, key: str) -> None:
        """Defines (or updates) the private secret `uuid` of usage type ceph named `usage`,
        whose value is the cephx `key` (base64, as keyrings hold it). Private: libvirt never
        gives the value back; it is never logged nor put in a message."""
        libvirt = _libvirt()
        document = (
            "<secret ephemeral='no' private='yes'>"
            f"<uuid>{escape(uuid)}</uuid><usage type='ceph'><name>{escape(usage)}</name></usage>"
            "</secret>"
        )
        try:
            value = base64.b64decode(key, validate=True)
        except ValueError:
            raise HypervisorError(f"the Ceph key for secret {uuid} is not base64") from None
        try:
            self.conn.secretDefineXML(document, 0).setValue(value, 0)
        except libvirt.libvirtError as exc:
            raise HypervisorError(f"cannot define the Ceph secret {uuid}: {exc}") from None

    def grow_disk(self, uuid: str, source: str, size: int) -> bool:
        """Grows each disk of the running domain whose source is `source` (an RBD disk's
        "pool/volume", or a file's path) to `size` bytes if the guest sees it smaller
        (blockResize); True if one grew. A domain not here has nothing to grow."""
        libvirt = _libvirt()
        try:
            domain = self.conn.lookupByUUIDString(uuid)
            root = ET.fromstring(domain.XMLDesc(0))
        except libvirt.libvirtError:
            return False
        grown = False
        for disk in root.iterfind("devices/disk"):
            found, target = disk.find("source"), disk.find("target")
            if (
                found is None
                or target is None
                or source not in (found.get("name"), found.get("file"), found.get("dev"))
            ):
                continue
            device = target.get("dev")
            try:
                if domain.blockInfo(device, 0)[0] < size:
                    domain.blockResize(device, size, libvirt.VIR_DOMAIN_BLOCK_RESIZE_BYTES)
                    grown = True
            except libvirt.libvirtError as exc:
                raise HypervisorError(f"cannot grow disk {device} of {uuid}: {exc}") from None
        return grown

    def console_file(self, uuid: str) -> str | None:
        """The file the domain's serial console is written to (a pty's <log file>, or a
        file-type serial's source), if it has one."""
        try:
            root = ET.fromstring(self.conn.lookupByUUIDString(uuid).XMLDesc(0))
        except self._error():
            return None
        for serial in root.iterfind("devices/serial"):
            log_element = serial.find("log")
            if log_element is not None and log_element.get("file"):
                return log_element.get("file")
            source = serial.find("source")
            if serial.get("type") == "file" and source is not None and source.get("path"):
                return source.get("path")
        return None

    def destroy_all_running(self) -> bool:
        """Hard off of every active domain, pvc's or not (the self-fence: a VM that may run
        elsewhere by now must not go on here); True once none is active. A domain that fails
        to go is logged, and looked at again by the next call."""
        libvirt = _libvirt()
        active = libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE
        try:
            for domain in self.conn.listAllDomains(active):
                try:
                    domain.destroy()
                    log.warning("destroyed domain %s", domain.name())
                except libvirt.libvirtError as exc:  # gone meanwhile, or stuck
                    log.error("destroying domain %s failed: %s", domain.name(), exc)
            return not self.conn.listAllDomains(active)
        except libvirt.libvirtError as exc:
            raise HypervisorError(f"cannot list domains: {exc}") from None

    def close(self) -> None:
        try:
            self._conn.close()
        except self._error():
            pass


def marked(xml: str, owner: str) -> str:
    """The domain XML with `owner` as its cluster's mark in <metadata> (any mark it had goes);
    the rest of the document is kept as it is (minidom keeps prefixes and attributes)."""
    document = minidom.parseString(xml)
    root = document.documentElement
    metadata = _child(root, "metadata") or root.appendChild(document.createElement("metadata"))
    for element in _elements(metadata):
        if element.namespaceURI == MARK_NAMESPACE:
            metadata.removeChild(element)
    mark = document.createElementNS(MARK_NAMESPACE, f"{MARK_PREFIX}:cluster")
    mark.setAttribute(f"xmlns:{MARK_PREFIX}", MARK_NAMESPACE)
    mark.setAttribute("uuid", owner)
    metadata.appendChild(mark)
    return root.toxml()


def _elements(parent: Any) -> list[Any]:
    return [node for node in parent.childNodes if node.nodeType == node.ELEMENT_NODE]


def _child(parent: Any, tag: str) -> Any:
    return next((node for node in _elements(parent) if node.tagName == tag), None)
