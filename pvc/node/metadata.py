"""The metadata service: EC2-style answers for VMs on managed networks, on the primary only.

It listens on 169.254.169.254:80 (bound with IP_FREEBIND, so it does not wait for the address
the gateways put on `lo`) and answers
  /<version>/meta-data/              the listing below
  /<version>/meta-data/instance-id   the VM's UUID;  name: its name;  hostname and
                                     local-hostname: its name, plus `.<domain>` of the network
  .../local-ipv4, mac, network       the calling NIC's address, MAC, and the network's VNI
  .../profile                        the provisioner profile the VM was built from (404 if none)
  /<version>/user-data               the userdata of that profile, rendered for the VM
                                     (`user_data`; 404 "no user-data" when there is none)
with <version> "latest" or a dated one (cloud-init asks for /2009-04-04/...).

Who is calling is decided from the TCP source address alone, never from anything the caller
sends (`identify`): the managed network whose subnet holds it -> the kernel's neighbour entry
for that address on the network's bridge (the MAC that really answered the TCP handshake) ->
a DHCP lease or reservation of that address FOR THAT MAC -> the one VM whose stored XML has a
NIC with that MAC on that bridge. A VM that takes another's address with its own MAC is
refused (the lease names another MAC), and one that also forges the MAC is stopped at its
bridge port by the firewall's anti-spoofing. Whoever is not identified gets 403 with a
one-line reason and no data. Everything is read from the daemon's in-memory view.

Requests are served by at most WORKERS threads, at most PER_SOURCE of them for one source
address; a connection beyond either is closed at once. A request has REQUEST_DEADLINE seconds
in all, from its connection to its answer, then its connection is shut: a guest that trickles
a byte at a time holds its slots that long, never longer, and never all of them.
"""

import contextlib
import ipaddress
import logging
import re
import socket
import socketserver
import sys
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any

from pvc.drivers import neighbours
from pvc.errors import PvcError
from pvc.ops import domain_xml, network_records, provisioner_store
from pvc.ops import userdata as userdata_text
from pvc.ops.network_records import Network
from pvc.zk.cache import CachedView
from pvc.zk.store import Store

LISTEN_ADDRESS = "169.254.169.254"
PORT = 80
IP_FREEBIND = 15  # linux/in.h: bind an address that is not (yet) on this node
WORKERS = 16
PER_SOURCE = 4  # requests of one source address at once: one guest never takes every worker
REQUEST_DEADLINE = 5.0  # seconds for a whole request (cloud-init sends each in one packet)
BIND_RETRY_MAX = 30.0
META_DATA = (
    "instance-id", "name", "hostname", "local-hostname", "local-ipv4", "mac", "network", "profile",
)  # fmt: skip
_PATH = re.compile(r"/(latest|\d{4}-\d{2}-\d{2})(/.*)?")
log = logging.getLogger("pvc.node.metadata")


class NotIdentified(Exception):
    """The caller is not a VM we can name; the message says why, in one line."""


@dataclass(frozen=True)
class Caller:
    uuid: str
    name: str
    ip: str
    mac: str
    network: Network

    @property
    def hostname(self) -> str:
        return f"{self.name}.{self.network.domain}" if self.network.domain else self.name


def _network_of(view: CachedView, address: ipaddress.IPv4Address) -> Network:
    for network in network_records.networks(view):
        subnet = network.ip4_network
        if network.managed and subnet and address in ipaddress.ip_network(subnet, strict=False):
            return network
    raise NotIdentified(f"{address} is on no managed network")


def _vm_with_nic(view: CachedView, mac: str, bridge: str) -> str:
    """The UUID of the one VM whose stored XML has a NIC with `mac` on `bridge`."""
    found = []
    for uuid in view.children("base.domains"):
        nics = view.memoized(("domain", uuid), lambda uuid=uuid: _nics(view, uuid))
        if any(nic.mac == mac and nic.bridge == bridge for nic in nics):
            found.append(uuid)
    if not found:
        raise NotIdentified(f"no VM has a NIC with MAC {mac} on {bridge}")
    if len(found) > 1:
        raise NotIdentified(f"several VMs have a NIC with MAC {mac} on {bridge}")
    return found[0]


def _nics(view: CachedView, uuid: str) -> list[domain_xml.Nic]:
    xml = view.read(("domain.xml", uuid))
    if not xml:
        return []
    try:
        return domain_xml.interfaces(xml)
    except PvcError:
        return []  # a stored XML we cannot read names no NIC


def identify(view: CachedView, source: str, neighbour: Any = neighbours.link_address) -> Caller:
    """The VM calling from `source`; NotIdentified with the reason otherwise. `neighbour`
    (interface, address) -> MAC or None is the kernel's neighbour table."""
    try:
        address = ipaddress.ip_address(source)
    except ValueError:
        raise NotIdentified(f"{source} is not an address") from None
    if not isinstance(address, ipaddress.IPv4Address):
        raise NotIdentified(f"{address} is not an IPv4 address")
    network = _network_of(view, address)
    mac = neighbour(network.bridge, str(address))
    if mac is None:
        raise NotIdentified(f"no neighbour entry for {address} on {network.bridge}")
    holders = [
        record_mac
        for records in (
            network_records.leases(view, network.vni),
            network_records.reservations(view, network.vni),
        )
        for record_mac, record in records.items()
        if record.get("ip") == str(address)
    ]
    if not holders:
        raise NotIdentified(f"no DHCP lease or reservation for {address} on network {network.vni}")
    if mac not in holders:
        raise NotIdentified(f"{address} is leased to another interface than {mac}")
    uuid = _vm_with_nic(view, mac, network.bridge)
    name = view.read(("domain", uuid)) or uuid
    return Caller(uuid, name, str(address), mac, network)


def profile(view: Store, uuid: str) -> str | None:
    """The name of the profile the VM was provisioned from (domain.profile), None if none."""
    return view.read(("domain.profile", uuid)) or None


def user_data(view: Store, uuid: str, hostname: str | None = None) -> bytes | None:
    """The VM's user-data: its profile's userdata record with the placeholders vm_name,
    vm_uuid, hostname (default: the VM's name) and profile filled in; None when the VM has no
    profile, the profile names no userdata, or either record is gone (removed since)."""
    profile_name = profile(view, uuid)
    record = view.read(provisioner_store.key("profile", profile_name)) if profile_name else None
    userdata_name = record.get("userdata") if record else None
    userdata = userdata_name and view.read(provisioner_store.key("userdata", userdata_name))
    if not userdata:
        return None
    name = view.read(("domain", uuid)) or uuid
    variables = {
        "vm_name": name,
        "vm_uuid": uuid,
        "hostname": hostname or name,
        "profile": profile_name,
    }
    return userdata_text.render_userdata(userdata["text"], variables).encode()


def answer(view: Store, caller: Caller, path: str) -> tuple[int, bytes]:
    """(HTTP status, body) for an identified caller's GET of `path`."""
    path = path.split("?", 1)[0]
    if path in ("", "/"):
        return 200, b"latest\n"
    match = _PATH.fullmatch(path)
    rest = (match.group(2) or "/") if match else None
    if rest == "/":
        return 200, b"meta-data/\nuser-data\n"
    if rest in ("/meta-data", "/meta-data/"):
        return 200, "".join(f"{key}\n" for key in META_DATA).encode()
    if rest in ("/user-data", "/user-data/"):
        data = user_data(view, caller.uuid, caller.hostname)
        return (404, b"no user-data\n") if data is None else (200, data)
    values: dict[str, str | None] = {
        "instance-id": caller.uuid,
        "name": caller.name,
        "hostname": caller.hostname,
        "local-hostname": caller.hostname,
        "local-ipv4": caller.ip,
        "mac": caller.mac,
        "network": str(caller.network.vni),
        "profile": profile(view, caller.uuid),
    }
    key = rest[len("/meta-data/") :].rstrip("/") if rest and rest.startswith("/meta-data/") else ""
    value = values.get(key)
    if value is not None:
        return 200, f"{value}\n".encode()
    return 404, b"not found\n"


class _Handler(BaseHTTPRequestHandler):
    server: "_Server"
    timeout = REQUEST_DEADLINE  # per read; the server shuts it at the deadline anyway
    server_version = "pvc-metadata"
    sys_version = ""

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self._respond(body=True)

    def do_HEAD(self) -> None:  # noqa: N802
        self._respond(body=False)

    def _respond(self, body: bool) -> None:
        view = self.server.view
        try:
            caller = identify(view, self.client_address[0])
            status, data = answer(view, caller, self.path)
        except NotIdentified as exc:
            log.warning("metadata request from %s refused: %s", self.client_address[0], exc)
            status, data = 403, f"not identified: {exc}\n".encode()
        except PvcError as exc:
            log.warning("metadata request from %s failed: %s", self.client_address[0], exc)
            status, data = 503, f"unavailable: {exc.message}\n".encode()
        except Exception:
            log.exception("metadata request from %s failed", self.client_address[0])
            status, data = 500, b"internal error\n"
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        self.end_headers()
        if body:
            self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (its signature)
        log.debug("%s %s", self.client_address[0], format % args)


class _Server(socketserver.ThreadingMixIn, socketserver.TCPServer):
    """A thread per request, at most WORKERS at once and PER_SOURCE per source address (more
    are closed unanswered); a request still running at its deadline has its connection shut
    (checked by `serve_forever` every poll interval, in `service_actions`)."""

    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 64  # the listen backlog: guests booting together all find a place

    def __init__(self, view: CachedView, address: str, port: int):
        super().__init__((address, port), _Handler, bind_and_activate=False)
        self.view = view
        self._lock = threading.Lock()
        self._by_source: dict[str, int] = {}  # source address -> its requests running
        self._deadlines: dict[socket.socket, float] = {}  # running request -> its deadline
        self.socket.setsockopt(socket.IPPROTO_IP, IP_FREEBIND, 1)
        try:
            self.server_bind()
            self.server_activate()
        except OSError:
            self.server_close()
            raise

    def process_request(self, request: Any, client_address: Any) -> None:
        source = client_address[0]
        with self._lock:
            running = self._by_source.get(source, 0)
            refused = len(self._deadlines) >= WORKERS or running >= PER_SOURCE
            if not refused:
                self._by_source[source] = running + 1
                self._deadlines[request] = time.monotonic() + REQUEST_DEADLINE
        if refused:
            log.warning("metadata: %d requests in progress (%d from %s); closing one more",
                        len(self._deadlines), running, source)  # fmt: skip
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:  # no thread started (the caller closes the connection)
            self._finished(request, source)
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._finished(request, client_address[0])

    def _finished(self, request: Any, source: str) -> None:
        with self._lock:
            self._deadlines.pop(request, None)
            left = self._by_source.pop(source) - 1
            if left:
                self._by_source[source] = left

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A connection that broke (shut at its deadline, or by the guest): one debug line,
        not socketserver's traceback on stderr."""
        log.debug("metadata request from %s ended: %s", client_address[0], sys.exc_info()[1])

    def service_actions(self) -> None:
        """Shuts the connections of requests past their deadline: their reads end at once."""
        now = time.monotonic()
        with self._lock:
            late = [request for request, deadline in self._deadlines.items() if deadline < now]
        for request in late:
            with contextlib.suppress(OSError):  # closed meanwhile
                request.shutdown(socket.SHUT_RDWR)


class MetadataService:
    """The primary-only service (pvc.node.primary_services.PrimaryService): a thread that binds
    (retrying with a backoff while the port is taken: the node stays primary meanwhile) and
    serves until `stop`."""

    def __init__(self, view: CachedView, address: str = LISTEN_ADDRESS, port: int = PORT):
        self.name = f"metadata service on {address}:{port}"
        self.view = view
        self.address = address
        self.port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        neighbours.warm_up()

    def start(self) -> None:
        if self.running():
            return
        self._stopping = threading.Event()
        self._thread = threading.Thread(
            target=self._serve, args=(self._stopping,), name="metadata", daemon=True
        )
        self._thread.start()

    def _serve(self, stopping: threading.Event) -> None:
        delay = 1.0
        while not stopping.is_set():
            try:
                server = _Server(self.view, self.address, self.port)
                break
            except OSError as exc:
                log.error(
                    "cannot listen on %s:%d: %s; trying again in %g s",
                    self.address, self.port, exc.strerror, delay,
                )  # fmt: skip
                stopping.wait(delay)
                delay = min(delay * 2, BIND_RETRY_MAX)
        else:
            return
        self._server = server
        if stopping.is_set():  # `stop` came while binding: it may not have seen the server
            server.server_close()
            return
        log.info("serving metadata on %s:%d", self.address, self.port)
        server.serve_forever(poll_interval=0.2)
        server.server_close()

    def stop(self) -> None:
        self._stopping.set()
        server, thread = self._server, self._thread
        if server is not None:
            server.shutdown()
        if thread is not None:
            thread.join(5.0)
        self._server = self._thread = None

    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()
