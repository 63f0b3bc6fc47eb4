"""Network namespaces standing in for VMs and outside hosts, for the guest-network tests and
scripts/bench/network.

- `in_namespace(name)`: runs a block with this THREAD in a network namespace; sockets made and
  threads started inside stay there (a server started in it serves in it).
- `http_get_in(namespace, url)`: (status, body) of a GET from inside a namespace, 4xx included;
  `wait_for_http_in` retries it while nothing listens yet.
- `Segment`: a bridge in a "host" namespace with veth "NICs" of namespaces attached (given
  MAC and address), to build a managed network's bridge without the network code.
- `guest_network_cluster`: three node daemons with libvirtd, a managed network, a namespace
  outside it; `boot_guest` starts a tiny guest on it through the API; `until` retries.
"""

import contextlib
import ctypes
import http.client
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from pvc.ops import network_records
from pvc.ops import node as node_ops
from pvc.ops.network_records import Network
from pvc.zk.handler import ZKHandler
from tests.conftest import free_port
from tests.integration.test_vm_real import api
from tests.libvirt_nodes import LibvirtNodes, build_guest, linux_domain_xml
from tests.local_cluster import LocalCluster
from tests.processes import COMMAND_TIMEOUT

CLONE_NEWNET = 0x40000000


def sh(*args: str) -> str:
    return subprocess.run(
        args, check=True, capture_output=True, text=True, timeout=COMMAND_TIMEOUT
    ).stdout


@contextlib.contextmanager
def in_namespace(namespace: str) -> Iterator[None]:
    libc = ctypes.CDLL(None, use_errno=True)
    with open(f"/run/netns/{namespace}") as target, open("/proc/thread-self/ns/net") as home:
        if libc.setns(target.fileno(), CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"cannot enter network namespace {namespace}")
        try:
            yield
        finally:
            if libc.setns(home.fileno(), CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "cannot return to the network namespace")


def http_get_in(namespace: str, url: str, timeout: float = 10) -> tuple[int, str]:
    """A GET of `url` from `namespace`: (status, body); OSError if no connection."""
    parts = urllib.parse.urlsplit(url)
    with in_namespace(namespace):
        sock = socket.create_connection((parts.hostname, parts.port or 80), timeout=timeout)
    connection = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=timeout)
    connection.sock = sock
    try:
        connection.request("GET", parts.path or "/")
        reply = connection.getresponse()
        return reply.status, reply.read().decode()
    finally:
        connection.close()


def wait_for_http_in(namespace: str, url: str, timeout: float = 30) -> tuple[int, str]:
    """The first answer to a GET of `url` from `namespace`, retrying while nothing listens."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return http_get_in(namespace, url, timeout=min(5.0, timeout))
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


class Segment:
    """Bridge `bridge` in namespace `host` (None: the host's own), with namespaces attached
    as "VMs" or outside hosts."""

    def __init__(self, host: str | None, bridge: str):
        self.host = host
        self.bridge = bridge
        self.members: list[str] = []

    def _ip(self, *args: str) -> None:
        sh("ip", *(["-n", self.host] if self.host else []), *args)

    def create_host(self) -> "Segment":
        assert self.host is not None
        subprocess.run(["ip", "netns", "del", self.host], capture_output=True, check=False)
        sh("ip", "netns", "add", self.host)
        self._ip("link", "set", "lo", "up")
        self._ip("link", "add", self.bridge, "type", "bridge")
        self._ip("link", "set", self.bridge, "up")
        return self

    def attach(
        self, namespace: str, mac: str | None, cidr: str, gateway: str | None = None
    ) -> None:
        """A namespace whose eth0 (`mac`, if given, and `cidr`) is a port of the bridge,
        `gateway` its default route."""
        subprocess.run(["ip", "netns", "del", namespace], capture_output=True, check=False)
        sh("ip", "netns", "add", namespace)
        port = f"p{len(self.members)}{self.bridge}"[:15]
        self._ip("link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", namespace)
        self._ip("link", "set", port, "master", self.bridge, "up")
        if mac:
            sh("ip", "-n", namespace, "link", "set", "eth0", "address", mac)
        sh("ip", "-n", namespace, "addr", "add", cidr, "dev", "eth0")
        sh("ip", "-n", namespace, "link", "set", "eth0", "up")
        sh("ip", "-n", namespace, "link", "set", "lo", "up")
        if gateway:
            sh("ip", "-n", namespace, "route", "add", "default", "via", gateway)
        self.members.append(namespace)

    def destroy(self) -> None:
        for namespace in [*self.members, *([self.host] if self.host else [])]:
            subprocess.run(["ip", "netns", "del", namespace], capture_output=True, check=False)
        self.members.clear()


# --- a cluster with a managed network and guests on it -------------------------------------


def until(check: Callable[[], Any], timeout: float, what: str) -> Any:
    """check()'s first true result, retrying while it is false or fails (the last failure is
    in the message at timeout)."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if result := check():
                return result
        except (urllib.error.URLError, OSError, AssertionError) as exc:
            last = exc
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}; last: {last}")


@contextlib.contextmanager
def guest_network_cluster(
    workdir: Path, prefix: str, subnet: str, network: Network, primary: str = "node2"
) -> Iterator[tuple[LocalCluster, ZKHandler]]:
    """Three node daemons with a libvirtd each, `primary` made primary, `network` written
    to Zookeeper, and a namespace `<prefix>-out` on the cluster bridge that reaches the
    network through the floating address (`outside(cluster)`); all gone afterwards."""
    cluster = LocalCluster(workdir, 3, prefix=prefix, subnet=subnet, zk_port=free_port())
    libvirt = LibvirtNodes(workdir / "libvirt")
    zk = None
    try:
        cluster.up()
        for name in cluster.names:  # the namespaces share one file system
            cluster.node_settings[name] = {"networks": {"run_directory": str(workdir / name)}}
        cluster.use_libvirt(libvirt.start_cluster(cluster))
        cluster.start_all()
        zk = cluster.running_observer(60)
        node_ops.set_primary(zk, primary)
        until(lambda: cluster.wait_for_primary(zk, 5) == primary, 60, f"{primary} as primary")
        zk.write(network_records.values(network))
        _attach_outside(cluster, network)
        until(lambda: api(cluster, "GET", "/node"), 30, "the API")
        yield cluster, zk
    finally:
        if zk is not None:
            zk.close()
        cluster.down()
        libvirt.stop()
        subprocess.run(["ip", "netns", "del", outside(cluster)], capture_output=True, check=False)


def outside(cluster: LocalCluster) -> str:
    return f"{cluster.prefix}-out"


def _attach_outside(cluster: LocalCluster, network: Network) -> None:
    namespace = outside(cluster)
    Segment(None, cluster.bridge).attach(namespace, None, f"{cluster.subnet}.50/24")
    sh("ip", "-n", namespace, "route", "add", str(network.ip4_network), "via", cluster.floating)


def boot_guest(
    cluster: LocalCluster, workdir: Path, name: str, node: str, mac: str, network: Network
) -> tuple[str, Path]:
    """Defines and starts the tiny guest `name` on `node` through the API, its NIC (`mac`) on
    the network's bridge; its UUID and the path of its shell socket (tests.guest_shell)."""
    vm_uuid = str(uuid.uuid4())
    socket_path = workdir / f"{name}.sock"
    xml = linux_domain_xml(
        name, vm_uuid, build_guest(), workdir / f"{name}.log", nic=network.bridge,
        hostname=name, mac=mac, shell_socket=socket_path,
    )  # fmt: skip
    api(cluster, "POST", "/vm", {"xml": xml, "node": node})
    api(cluster, "POST", f"/vm/{name}/state", {"state": "start"})
    return vm_uuid, socket_path
