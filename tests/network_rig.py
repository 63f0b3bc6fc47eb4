"""Network namespaces standing in for VMs and outside hosts, for the guest-network tests and
scripts/bench/network.

- `in_namespace(name)`: runs a block with this THREAD in a network namespace; sockets made and
  threads started inside stay there (a server started in it serves in it).
- `http_get_in(namespace, url)`: (status, body) of a GET from inside a namespace, 4xx included;
  `wait_for_http_in` retries it while nothing listens yet.
- `Segment`: a bridge in a "host" namespace with veth "NICs" of namespaces attached (given
  MAC and address), to build a managed network's bridge without the network code.
"""

import contextlib
import ctypes
import http.client
import socket
import subprocess
import time
import urllib.parse
from collections.abc import Iterator

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
    """Bridge `bridge` in namespace `host`, with namespaces attached as "VMs"."""

    def __init__(self, host: str, bridge: str):
        self.host = host
        self.bridge = bridge
        self.members: list[str] = []

    def create_host(self) -> "Segment":
        subprocess.run(["ip", "netns", "del", self.host], capture_output=True, check=False)
        sh("ip", "netns", "add", self.host)
        sh("ip", "-n", self.host, "link", "set", "lo", "up")
        sh("ip", "-n", self.host, "link", "add", self.bridge, "type", "bridge")
        sh("ip", "-n", self.host, "link", "set", self.bridge, "up")
        return self

    def attach(self, namespace: str, mac: str, cidr: str, gateway: str | None = None) -> None:
        """A namespace whose eth0 (`mac`, `cidr`) is a port of the bridge, `gateway` its
        default route."""
        subprocess.run(["ip", "netns", "del", namespace], capture_output=True, check=False)
        sh("ip", "netns", "add", namespace)
        port = f"p{len(self.members)}{self.bridge}"[:15]
        sh("ip", "-n", self.host, "link", "add", port, "type", "veth",
           "peer", "name", "eth0", "netns", namespace)  # fmt: skip
        sh("ip", "-n", self.host, "link", "set", port, "master", self.bridge, "up")
        sh("ip", "-n", namespace, "link", "set", "eth0", "address", mac)
        sh("ip", "-n", namespace, "addr", "add", cidr, "dev", "eth0")
        sh("ip", "-n", namespace, "link", "set", "eth0", "up")
        sh("ip", "-n", namespace, "link", "set", "lo", "up")
        if gateway:
            sh("ip", "-n", namespace, "route", "add", "default", "via", gateway)
        self.members.append(namespace)

    def destroy(self) -> None:
        for namespace in [*self.members, self.host]:
            subprocess.run(["ip", "netns", "del", namespace], capture_output=True, check=False)
        self.members.clear()
