"""Namespaces to test pvc's firewall with packets: a node, VMs on its bridge, an outside host.

- `<p>-node`: bridge vmbr100 with the gateway 10.100.0.1/24, 169.254.169.254/32 on lo,
  forwarding on, and `up0` 192.0.2.1/24 towards the outside (the upstream device);
- `<p>-vmN`: `eth0` (MAC 52:54:00:00:01:0N, 10.100.0.1N/24, default via the gateway) on a
  veth whose node end `vnetN` has libvirt's tap MAC (fe:54:00:00:01:0N) in vmbr100;
- `<p>-out`: `eth0` 192.0.2.2/24, with a route to 10.100.0.0/24 via the node; `eth1`
  198.51.100.2/24 on a second veth whose node end `clu0` (198.51.100.1/24) stands for the
  node's cluster network.
`<p>` is `fw<PVC_TEST_SLOT>`; given `node`, an existing namespace (a LocalCluster node's,
where a real daemon runs the firewall) is the node instead, and stays when the rig goes.
The firewall is loaded in the node namespace by this file run as a script (`load`: Records
as JSON on stdin, through pvc.node.firewall.load, the bridge ports found in that namespace);
`serve` answers TCP/UDP with the caller's address, `ask` prints that answer or exits 1 when
none comes.
"""

import argparse
import json
import os
import socket
import socketserver
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
PYTHON = str(REPO / ".venv" / "bin" / "python")
GATEWAY = "10.100.0.1"
METADATA = "169.254.169.254"
OUTSIDE = "192.0.2.2"
UPSTREAM = "up0"
CLUSTER = "clu0"  # the node's cluster device, towards the outside host's CLUSTER_PEER
CLUSTER_PEER = "198.51.100.2"
DROP_WAIT = 3.0  # s an answer may take before a port counts as dropped (a loaded host)


def vm_mac(index: int) -> str:
    return f"52:54:00:00:01:{index:02x}"


def vm_ip(index: int) -> str:
    return f"10.100.0.{10 + index}"


def _sh(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(args, check=check, capture_output=True, text=True, timeout=60)


class Rig:
    """The namespaces above, with `vms` VMs."""

    def __init__(self, vms: int = 2, node: str | None = None):
        self.prefix = f"fw{os.environ.get('PVC_TEST_SLOT', '')}"
        self.node = node or f"{self.prefix}-node"
        self._own = [self.node] if node is None else []
        self.outside = f"{self.prefix}-out"
        self.vms = {index: f"{self.prefix}-vm{index}" for index in range(1, vms + 1)}
        self._servers: list[subprocess.Popen] = []

    def up(self) -> "Rig":
        self.down()
        node = self.node
        for ns in (*self._own, self.outside, *self.vms.values()):
            _sh("ip", "netns", "add", ns)
            _sh("ip", "-n", ns, "link", "set", "lo", "up")
        _sh("ip", "netns", "exec", node, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        _sh("ip", "-n", node, "link", "add", "vmbr100", "type", "bridge")
        _sh("ip", "-n", node, "addr", "add", f"{GATEWAY}/24", "dev", "vmbr100")
        _sh("ip", "-n", node, "link", "set", "vmbr100", "up")
        _sh("ip", "-n", node, "addr", "add", f"{METADATA}/32", "dev", "lo")
        self._outside_link(UPSTREAM, "eth0", "192.0.2.1", OUTSIDE)
        _sh("ip", "-n", self.outside, "route", "add", "10.100.0.0/24", "via", "192.0.2.1")
        self._outside_link(CLUSTER, "eth1", "198.51.100.1", CLUSTER_PEER)
        for index in self.vms:
            self.add_tap(index)
        return self

    def _outside_link(self, name: str, peer: str, address: str, peer_address: str) -> None:
        """A veth from the node (`name`, `address`/24) to the outside host (`peer`)."""
        _sh("ip", "-n", self.node, "link", "add", name, "type", "veth", "peer", "name", peer,
            "netns", self.outside)  # fmt: skip
        _sh("ip", "-n", self.node, "addr", "add", f"{address}/24", "dev", name)
        _sh("ip", "-n", self.node, "link", "set", name, "up")
        _sh("ip", "-n", self.outside, "addr", "add", f"{peer_address}/24", "dev", peer)
        _sh("ip", "-n", self.outside, "link", "set", peer, "up")

    def add_tap(self, index: int, tap: str = "") -> None:
        """VM `index`'s NIC: `eth0` in its namespace, the veth's node end (`vnet<index>` unless
        named) in vmbr100 with libvirt's tap MAC of the VM's."""
        node, ns, tap = self.node, self.vms[index], tap or f"vnet{index}"
        _sh("ip", "-n", node, "link", "add", tap, "type", "veth", "peer", "name", "eth0",
            "netns", ns)  # fmt: skip
        _sh("ip", "-n", node, "link", "set", tap, "address", "fe" + vm_mac(index)[2:])
        _sh("ip", "-n", node, "link", "set", tap, "master", "vmbr100", "up")
        _sh("ip", "-n", ns, "link", "set", "eth0", "address", vm_mac(index))
        _sh("ip", "-n", ns, "addr", "add", f"{vm_ip(index)}/24", "dev", "eth0")
        _sh("ip", "-n", ns, "link", "set", "eth0", "up")
        _sh("ip", "-n", ns, "route", "add", "default", "via", GATEWAY)

    def down(self) -> None:
        for process in self._servers:
            process.kill()
            process.wait(10)
        self._servers = []
        for ns in (*self._own, self.outside, *self.vms.values()):
            _sh("ip", "netns", "del", ns, check=False)
        if not self._own:  # the node's links go with the VMs' namespaces but its bridge stays
            _sh("ip", "-n", self.node, "link", "del", "vmbr100", check=False)
            _sh("ip", "-n", self.node, "addr", "del", f"{METADATA}/32", "dev", "lo", check=False)

    # --- in the namespaces ----------------------------------------------------------------------

    def run(self, ns: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return _sh("ip", "netns", "exec", ns, *args, check=check)

    def serve(self, ns: str, *endpoints: str) -> None:
        """Answers on each "tcp|udp:address:port" in `ns` until the rig goes down."""
        process = subprocess.Popen(
            ["ip", "netns", "exec", ns, PYTHON, __file__, "serve", *endpoints],
            stdout=subprocess.PIPE,
            text=True,
        )
        self._servers.append(process)
        assert process.stdout is not None and process.stdout.readline().strip() == "ready"

    def ask(self, ns: str, proto: str, address: str, port: int, source: str = "") -> str | None:
        """The caller's address as the server at address:port saw it; None: no answer."""
        extra = ["--source", source] if source else []
        result = self.run(
            ns, PYTHON, __file__, "ask", proto, address, str(port), *extra, check=False
        )
        return result.stdout.strip() if result.returncode == 0 else None

    def load(self, records: dict[str, Any], check: bool = True) -> subprocess.CompletedProcess:
        """pvc.node.firewall.load of `records` (see `_records`) in the node namespace; its
        stdout is the JSON of the networks it left ACLs out of."""
        return subprocess.run(
            ["ip", "netns", "exec", self.node, PYTHON, __file__, "load"],
            input=json.dumps(records),
            check=check,
            capture_output=True,
            text=True,
            timeout=60,
        )

    def table(self, family: str = "inet") -> str:
        return self.run(self.node, "nft", "-s", "list", "table", family, "pvc", check=False).stdout

    def ping(self, ns: str, address: str) -> bool:
        return self.run(ns, "ping", "-c", "1", "-W", "3", address, check=False).returncode == 0


def network(vni: int = 100, **fields: Any) -> dict[str, Any]:
    """A managed network's fields as `load` takes them."""
    return {
        "vni": vni,
        "description": f"net{vni}",
        "type": "managed",
        "ip4_network": f"10.{vni}.0.0/24",
        "ip4_gateway": f"10.{vni}.0.1",
        **fields,
    }


def records(
    networks: list[dict[str, Any]],
    acls: dict[int, list[tuple[str, str, str, int]]] | None = None,
    guests: list[tuple[str, str]] = (),
    known: list[str] = (),
    upstream: str | None = UPSTREAM,
    internal: tuple[list[str], list[str]] = ([CLUSTER], ["198.51.100.0/24"]),
) -> dict[str, Any]:
    """Input of `load`: ACLs as vni -> [(direction, description, rule, order)]; `internal`:
    the cluster devices and subnets."""
    return {
        "networks": networks,
        "acls": {str(vni): found for vni, found in (acls or {}).items()},
        "guests": list(guests),
        "known": list(known),
        "upstream": upstream,
        "internal": internal,
    }


# --- run as a script, inside a namespace ----------------------------------------------------------


def _load(document: dict[str, Any]) -> None:
    sys.path.insert(0, str(REPO))
    from pvc.node import firewall, firewall_rules
    from pvc.ops.network_records import Acl, Network

    acls = {
        int(vni): sorted((Acl(*acl) for acl in found), key=lambda acl: (acl.direction, acl.order))
        for vni, found in document["acls"].items()
    }
    networks = tuple(Network(**fields) for fields in document["networks"])
    ports = firewall.bridge_ports({network.bridge for network in networks})
    loaded = firewall.load(
        firewall_rules.Records(
            networks=networks,
            acls=acls,
            guests=frozenset(tuple(pair) for pair in document["guests"]),
            ports=firewall_rules.port_macs(ports, document["known"]),
            upstream_device=document["upstream"],
            internal_devices=tuple(document["internal"][0]),
            internal_subnets=tuple(document["internal"][1]),
        )
    )
    print(json.dumps({str(vni): why for vni, why in loaded.items()}))


def _serve(endpoints: list[str]) -> None:
    class Tcp(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            self.request.sendall(self.client_address[0].encode())

    class Udp(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            self.request[1].sendto(self.client_address[0].encode(), self.client_address)

    for endpoint in endpoints:
        proto, address, port = endpoint.split(":")
        kind = socketserver.ThreadingTCPServer if proto == "tcp" else socketserver.UDPServer
        kind.allow_reuse_address = True
        server = kind((address, int(port)), Tcp if proto == "tcp" else Udp)
        threading.Thread(target=server.serve_forever, daemon=True).start()
    print("ready", flush=True)
    while True:
        time.sleep(3600)


def _ask(proto: str, address: str, port: int, source: str) -> int:
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.settimeout(DROP_WAIT)
        if source:
            sock.setsockopt(socket.SOL_IP, 15, 1)  # IP_FREEBIND: an address not on a link
            sock.bind((source, 0))
        try:
            if proto == "tcp":
                sock.connect((address, port))
                answer = sock.recv(100)
            else:
                sock.sendto(b"?", (address, port))
                answer = sock.recv(100)
        except OSError:
            return 1
    print(answer.decode())
    return 0


def main() -> int:
    parser = argparse.ArgumentParser()
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("load")
    commands.add_parser("serve").add_argument("endpoints", nargs="+")
    ask = commands.add_parser("ask")
    ask.add_argument("proto", choices=("tcp", "udp"))
    ask.add_argument("address")
    ask.add_argument("port", type=int)
    ask.add_argument("--source", default="")
    arguments = parser.parse_args()
    if arguments.command == "load":
        _load(json.load(sys.stdin))
        return 0
    if arguments.command == "serve":
        _serve(arguments.endpoints)
    return _ask(arguments.proto, arguments.address, arguments.port, arguments.source)


if __name__ == "__main__":
    sys.exit(main())
